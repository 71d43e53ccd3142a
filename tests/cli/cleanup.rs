//! `amictl cleanup` against moto, with a recording proxy counting requests by action.

use serde_json::Value;

use crate::support::proxy::{Fault, Proxy};
use crate::support::{TestEnv, Tripwire, plan_entry as entry};

/// Five images `app-1` (oldest) … `app-5`, made in that order: newest first is by creation
/// second, then by name, so they are ordered whether or not a second passes between them.
/// `app-2` runs an instance and `app-3` is a launch template's image.
struct Five {
    env: TestEnv,
    images: Vec<String>,
}

impl Five {
    fn new() -> Five {
        let env = TestEnv::new();
        let instance = env.run_instance(None);
        let mut images = Vec::new();
        for n in 1..=5 {
            images.push(env.create_image(&instance, &format!("app-{n}"), &[]));
        }
        env.run_instance_from(&images[1]);
        env.create_launch_template("web", &images[2]);
        Five { env, images }
    }
}

#[test]
fn keep_two_plans_only_the_old_unused_image_then_removes_it_with_one_call_each() {
    let five = Five::new();
    let env = &five.env;
    let proxy = Proxy::start(&env.endpoint);
    let snapshot = env.snapshot_of(&five.images[0]);
    let images_before = env.image_ids();

    let dry = env
        .through(&proxy)
        .args(["cleanup", "--name", "app-*", "--keep", "2", "--dry-run", "-o", "json"])
        .run();

    let plan = dry.assert_code(0).json();
    assert_eq!(plan["dry_run"], true);
    let deregistered: Vec<&str> = plan["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["action"] == "deregister")
        .map(|i| i["image_id"].as_str().unwrap())
        .collect();
    assert_eq!(deregistered, [five.images[0].as_str()]);
    assert!(
        entry(&plan, &five.images[1])["reason"]
            .as_str()
            .unwrap()
            .contains("in use by instance")
    );
    assert!(
        entry(&plan, &five.images[2])["reason"]
            .as_str()
            .unwrap()
            .contains("launch template web")
    );
    assert!(
        entry(&plan, &five.images[4])["reason"]
            .as_str()
            .unwrap()
            .contains("2 newest")
    );
    let planned = &entry(&plan, &five.images[0])["snapshots"][0];
    assert_eq!(
        (planned["snapshot_id"].as_str(), planned["action"].as_str()),
        (Some(snapshot.as_str()), Some("delete"))
    );
    assert!(
        proxy.mutations().is_empty(),
        "a dry run sends no mutating request: {:?}",
        proxy.mutations()
    );
    assert_eq!(env.image_ids(), images_before);

    proxy.reset();
    let real = env
        .through(&proxy)
        .args(["cleanup", "--name", "app-*", "--keep", "2", "--yes", "-o", "json"])
        .run();

    let report = real.assert_code(0).json();
    assert_eq!(entry(&report, &five.images[0])["result"]["status"], "done");
    assert_eq!(report["summary"]["images_deregistered"], 1);
    assert_eq!(report["summary"]["snapshots_deleted"], 1);
    assert_eq!(proxy.count("DeregisterImage"), 1);
    assert_eq!(proxy.count("DeleteSnapshot"), 1);
    assert_eq!(proxy.mutations().len(), 2, "{:?}", proxy.mutations());
    let mut left = five.images[1..].to_vec();
    left.sort();
    assert_eq!(env.image_ids(), left, "everything else stays");
    assert!(!env.snapshot_ids().contains(&snapshot));
    assert_eq!(env.snapshot_ids().len(), 4);
}

#[test]
fn an_image_a_launch_configuration_names_is_kept() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let image = env.create_image(&instance, "lc-1", &[]);
    env.create_launch_configuration("web-lc", &image);

    let run = env.amictl().args(["cleanup", "--all", "--yes", "-o", "json"]).run();

    let report = run.assert_code(0).json();
    assert_eq!(entry(&report, &image)["action"], "keep");
    assert!(
        entry(&report, &image)["reason"]
            .as_str()
            .unwrap()
            .contains("launch configuration web-lc")
    );
    assert_eq!(env.image_ids(), [image]);
}

#[test]
fn selects_by_tag_and_age_and_leaves_out_excluded_tags() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let ci = env.create_image(&instance, "ci-1", &[("env", "ci")]);
    let pinned = env.create_image(&instance, "ci-2", &[("env", "ci"), ("pin", "yes")]);
    let prod = env.create_image(&instance, "prod-1", &[("env", "prod")]);

    let young = env
        .amictl()
        .args([
            "cleanup",
            "--tag",
            "env=ci",
            "--older-than",
            "1h",
            "--yes",
            "-o",
            "json",
        ])
        .run();
    let tagged = env
        .amictl()
        .args([
            "cleanup",
            "--tag",
            "env=ci",
            "--exclude-tag",
            "pin=yes",
            "--yes",
            "-o",
            "json",
        ])
        .run();

    assert_eq!(
        young.assert_code(0).json()["images"],
        serde_json::json!([]),
        "nothing is an hour old"
    );
    let report = tagged.assert_code(0).json();
    assert_eq!(report["images"].as_array().unwrap().len(), 1);
    assert_eq!(entry(&report, &ci)["result"]["status"], "done");
    let mut left = vec![pinned, prod];
    left.sort();
    assert_eq!(env.image_ids(), left);
}

#[test]
fn orphans_go_and_hand_made_snapshots_stay() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let gone = env.create_image(&instance, "gone-1", &[]);
    let live = env.create_image(&instance, "live-1", &[]);
    let orphan = env.snapshot_of(&gone);
    let live_snapshot = env.snapshot_of(&live);
    env.deregister(&gone);
    let hand_made = env.hand_made_snapshot();

    let run = env
        .amictl()
        .args([
            "cleanup",
            "--orphans",
            "--orphans-older-than",
            "0s",
            "--yes",
            "-o",
            "json",
        ])
        .run();

    let report = run.assert_code(0).json();
    let orphans = report["orphan_snapshots"].as_array().unwrap();
    assert_eq!(orphans.len(), 1, "{report}");
    assert_eq!(orphans[0]["snapshot_id"], orphan.as_str());
    assert_eq!(orphans[0]["result"]["status"], "done");
    assert!(
        report["images"].as_array().unwrap().is_empty(),
        "--orphans alone selects no image"
    );
    let mut left = vec![live_snapshot, hand_made];
    left.sort();
    assert_eq!(env.snapshot_ids(), left);
    assert_eq!(env.image_ids(), [live]);
}

#[test]
fn without_yes_off_a_terminal_it_shows_the_plan_and_exits_2_changing_nothing() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let image = env.create_image(&instance, "ask-1", &[]);
    let proxy = Proxy::start(&env.endpoint);

    // Deregistering or disabling: either needs --yes.
    for args in [&["cleanup", "--all"][..], &["cleanup", "--all", "--disable"]] {
        let run = env.through(&proxy).args(args).run();

        run.assert_code(2);
        assert!(run.stdout.is_empty(), "{}", run.stdout);
        assert!(run.stderr.contains(&image), "the plan is shown: {}", run.stderr);
        assert!(run.stderr.contains("--yes"), "{}", run.stderr);
        assert!(proxy.mutations().is_empty(), "{args:?}: {:?}", proxy.mutations());
    }
    assert_eq!(env.image_ids(), [image]);
}

#[test]
fn no_selector_is_a_usage_error_before_any_request() {
    let tripwire = Tripwire::new();

    for args in [
        &["cleanup"][..],
        &["cleanup", "--keep", "2"],
        &["cleanup", "--exclude-tag", "a=b", "--yes"],
    ] {
        let run = TestEnv::amictl_at(&tripwire.url()).args(args).run();
        run.assert_code(2);
        assert!(run.stderr.contains("needs a selector"), "{}", run.stderr);
    }
    // Each refused for what it says, not for something else (the plan file here exists and
    // is a valid plan: only the conflict with --all can refuse it).
    let plan = std::env::temp_dir().join(format!("amictl-conflict-{}.json", std::process::id()));
    let saved = TestEnv::new()
        .amictl()
        .args(["cleanup", "--name", "none-*", "--save-plan", plan.to_str().unwrap()])
        .run();
    saved.assert_code(0);
    for (args, says) in [
        (&["cleanup", "--all", "--older-than", "soon"][..], "--older-than"),
        (&["cleanup", "--all", "--group-by", "size"], "--group-by"),
        (&["cleanup", "--all", "--concurrency", "0"], "--concurrency"),
        (
            &["cleanup", "--apply-plan", plan.to_str().unwrap(), "--all"],
            "cannot be used with",
        ),
        (
            &["cleanup", "--apply-plan", plan.to_str().unwrap(), "--allow-in-use"],
            "cannot be used with",
        ),
    ] {
        let run = TestEnv::amictl_at(&tripwire.url()).args(args).run();
        run.assert_code(2);
        assert!(run.stderr.contains(says), "{args:?} says {says:?}: {}", run.stderr);
    }
    std::fs::remove_file(plan).unwrap();
    assert_eq!(tripwire.connections(), 0, "nothing was sent");
}

#[test]
fn a_partial_failure_keeps_going_exits_1_and_a_rerun_finishes_the_job() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let images: Vec<String> = (1..=3)
        .map(|n| env.create_image(&instance, &format!("batch-{n}"), &[]))
        .collect();
    let proxy = Proxy::start(&env.endpoint);
    proxy.fail("DeregisterImage", Fault::first(1, Fault::unauthorized()));

    let first = env
        .through(&proxy)
        .args(["cleanup", "--name", "batch-*", "--yes", "-o", "json"])
        .run();

    let report = first.assert_code(1).json();
    assert_eq!(report["summary"]["failures"], 1, "{report}");
    assert_eq!(report["summary"]["images_deregistered"], 2);
    assert!(first.stderr.contains("run the same command again"), "{}", first.stderr);
    let failed: Vec<&Value> = report["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["result"]["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0]["result"]["reason"]
            .as_str()
            .unwrap()
            .contains("UnauthorizedOperation")
    );
    let left = failed[0]["image_id"].as_str().unwrap().to_owned();
    assert_eq!(env.image_ids(), std::slice::from_ref(&left), "the others went");
    assert_eq!(
        env.snapshot_ids(),
        [env.snapshot_of(&left)],
        "its snapshot was not touched"
    );

    let second = env
        .amictl()
        .args(["cleanup", "--name", "batch-*", "--yes", "-o", "json"])
        .run();

    assert_eq!(second.assert_code(0).json()["summary"]["images_deregistered"], 1);
    assert!(env.image_ids().is_empty());
    assert!(env.snapshot_ids().is_empty());
    assert!(images.contains(&left));
}

#[test]
fn a_saved_plan_is_applied_later_skipping_what_changed() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let stays_unused = env.create_image(&instance, "plan-1", &[]);
    let gets_used = env.create_image(&instance, "plan-2", &[]);
    let file = std::env::temp_dir().join(format!("amictl-plan-{}-{}.json", std::process::id(), env.region));

    let save = env
        .amictl()
        .args(["cleanup", "--name", "plan-*", "--save-plan", file.to_str().unwrap()])
        .run();
    save.assert_code(0);
    assert_eq!(env.image_ids().len(), 2, "saving a plan changes nothing");
    env.run_instance_from(&gets_used);

    let apply = env
        .amictl()
        .args(["cleanup", "--apply-plan", file.to_str().unwrap(), "--yes", "-o", "json"])
        .run();

    let report = apply.assert_code(0).json();
    assert_eq!(entry(&report, &stays_unused)["result"]["status"], "done");
    assert_eq!(entry(&report, &gets_used)["action"], "keep");
    assert!(
        entry(&report, &gets_used)["reason"]
            .as_str()
            .unwrap()
            .starts_with("changed since the plan: in use by instance"),
        "{report}"
    );
    assert_eq!(env.image_ids(), [gets_used]);
    std::fs::remove_file(file).unwrap();
}

#[test]
fn release_lines_are_families_of_their_own_under_group_by_name() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let focal = env.create_image(&instance, "ubuntu-20.04-20240101", &[]);
    let jammy_old = env.create_image(&instance, "ubuntu-22.04-20240101", &[]);
    // Made after it, and later by name: the newest in either order.
    let jammy_new = env.create_image(&instance, "ubuntu-22.04-20240301", &[]);

    let json = env
        .amictl()
        .args([
            "cleanup",
            "--name",
            "ubuntu-*",
            "--keep",
            "1",
            "--group-by",
            "name",
            "--dry-run",
            "-o",
            "json",
        ])
        .run();
    let table = env
        .amictl()
        .args([
            "cleanup",
            "--name",
            "ubuntu-*",
            "--keep",
            "1",
            "--group-by",
            "name",
            "--dry-run",
            "--show-kept",
        ])
        .run();

    let plan = json.assert_code(0).json();
    assert_eq!(
        entry(&plan, &focal)["action"],
        "keep",
        "the 20.04 line's only image stays"
    );
    assert_eq!(entry(&plan, &focal)["group"], "ubuntu-20.04");
    assert_eq!(entry(&plan, &jammy_new)["action"], "keep");
    assert_eq!(entry(&plan, &jammy_old)["action"], "deregister");
    assert_eq!(entry(&plan, &jammy_old)["group"], "ubuntu-22.04");
    let table = &table.assert_code(0).stdout;
    assert!(table.contains("GROUP"), "{table}");
    let focal_row = table.lines().find(|l| l.contains(&focal)).unwrap();
    assert!(
        focal_row.contains("ubuntu-20.04 ") && focal_row.contains("keep"),
        "{focal_row}"
    );
}

#[test]
fn a_hand_edited_plan_carries_out_only_what_its_own_selection_picks() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let old = env.create_image(&instance, "edit-1", &[]);
    // Made after it, and later by name: the newest in either order.
    let newest = env.create_image(&instance, "edit-2", &[]);
    let unrelated = env.create_image(&instance, "other-1", &[]);
    let snapshots_kept = [env.snapshot_of(&newest), env.snapshot_of(&unrelated)];
    let file = std::env::temp_dir().join(format!("amictl-edited-{}-{}.json", std::process::id(), env.region));

    env.amictl()
        .args([
            "cleanup",
            "--name",
            "edit-*",
            "--keep",
            "1",
            "--save-plan",
            file.to_str().unwrap(),
        ])
        .run()
        .assert_code(0);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "a plan is readable by its owner only");
    }
    let mut plan: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(plan["format_version"], 3);
    assert_eq!(plan["selection"]["name"], "edit-*");
    assert_eq!(plan["policy"]["keep"], 1);
    // By hand: the kept image turned to deregister, an unrelated image added.
    let images = plan["images"].as_array_mut().unwrap();
    let kept = images.iter_mut().find(|i| i["image_id"] == newest.as_str()).unwrap();
    kept["action"] = "deregister".into();
    kept["snapshots"][0]["action"] = "delete".into();
    let mut added = kept.clone();
    added["image_id"] = unrelated.as_str().into();
    added["snapshots"][0]["snapshot_id"] = snapshots_kept[1].as_str().into();
    images.push(added);
    std::fs::write(&file, plan.to_string()).unwrap();

    let apply = env
        .amictl()
        .args(["cleanup", "--apply-plan", file.to_str().unwrap(), "--yes", "-o", "json"])
        .run();

    let report = apply.assert_code(0).json();
    assert_eq!(entry(&report, &old)["result"]["status"], "done");
    assert_eq!(
        entry(&report, &newest)["reason"],
        "changed since the plan: the newest of the selection"
    );
    assert!(
        entry(&report, &unrelated)["reason"]
            .as_str()
            .unwrap()
            .contains("the plan's selection does not pick it"),
        "{report}"
    );
    let mut left = vec![newest, unrelated];
    left.sort();
    assert_eq!(env.image_ids(), left);
    let snapshots = env.snapshot_ids();
    assert!(
        snapshots_kept.iter().all(|s| snapshots.contains(s)),
        "their snapshots stay"
    );
    std::fs::remove_file(file).unwrap();
}

#[test]
fn a_plan_with_a_bad_region_or_of_another_format_is_refused_before_any_request() {
    let tripwire = Tripwire::new();
    let dir = std::env::temp_dir();
    let bad_region = dir.join(format!("amictl-bad-region-{}.json", std::process::id()));
    let old_format = dir.join(format!("amictl-old-format-{}.json", std::process::id()));
    let plan = serde_json::json!({
        "format_version": 2, "dry_run": true,
        "selection": {"image_ids": [], "name": "a-*", "tags": [], "exclude_tags": [], "older_than": null, "all": false},
        "policy": {"keep": 0, "group_by": "none", "delete_snapshots": true, "allow_in_use": false,
                   "include_shared": false, "orphans": false, "orphans_older_than": "PT24H"},
        "accounts": [], "regions": ["eu-west-1", "Not A Region"], "images": [], "orphan_snapshots": [],
        "unchecked": [],
        "summary": {"images_deregistered": 0, "snapshots_deleted": 0, "gib_freed": 0, "images_kept": 0,
                    "images_unchecked": 0, "failures": 0, "estimated_monthly_saving_usd": 0.0}
    });
    std::fs::write(&bad_region, plan.to_string()).unwrap();
    std::fs::write(
        &old_format,
        r#"{"dry_run": true, "images": [], "orphan_snapshots": [], "summary": {}}"#,
    )
    .unwrap();

    let region = TestEnv::amictl_at(&tripwire.url())
        .args(["cleanup", "--apply-plan", bad_region.to_str().unwrap(), "--yes"])
        .run();
    let format = TestEnv::amictl_at(&tripwire.url())
        .args(["cleanup", "--apply-plan", old_format.to_str().unwrap(), "--yes"])
        .run();

    region.assert_code(2);
    assert!(region.stderr.contains("'Not A Region'"), "{}", region.stderr);
    format.assert_code(2);
    assert!(format.stderr.contains("another plan format"), "{}", format.stderr);
    assert_eq!(tripwire.connections(), 0, "nothing was sent");
    for file in [bad_region, old_format] {
        std::fs::remove_file(file).unwrap();
    }
}

#[test]
fn the_table_shows_what_changes_and_counts_what_keep_keeps_in_one_line() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    // Made within a second or two: "newest" among them is decided by build number.
    let images: Vec<String> = (1..=12)
        .map(|n| env.create_image(&instance, &format!("tty-{n}"), &[]))
        .collect();
    let plan = |extra: &[&str]| {
        env.amictl()
            .args(["cleanup", "--name", "tty-*", "--keep", "10", "--dry-run"])
            .args(extra)
            .run()
    };

    let table = plan(&[]).assert_code(0).stdout.clone();
    let listed = plan(&["--show-kept"]).assert_code(0).stdout.clone();
    let json = plan(&["-o", "json"]).assert_code(0).json();

    let leaving: Vec<&str> = json["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["action"] == "deregister")
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    let oldest_two = ["tty-1", "tty-2"];
    let plain_ids = |text: &str| images.iter().filter(|id| text.contains(id.as_str())).count();
    assert_eq!(plain_ids(&table), 2, "only what changes is listed: {table}");
    assert!(
        table.contains("of them by --keep 10") && table.contains("10 (not listed"),
        "{table}"
    );
    assert_eq!(plain_ids(&listed), 12, "--show-kept lists every image: {listed}");
    assert_eq!(json["images"].as_array().unwrap().len(), 12, "JSON keeps every entry");
    assert_eq!(json["summary"]["images_kept_by_policy"], 10);
    // Made in order, and within the same second by build number: tty-10 is newer than tty-9.
    let mut leaving = leaving.clone();
    leaving.sort_unstable();
    assert_eq!(leaving, oldest_two);
    let again = plan(&["-o", "json"]).assert_code(0).json();
    assert_eq!(again["images"], json["images"], "a re-run plans the same");
}

/// At a terminal, a cleanup without --yes asks before changing anything; Ctrl-C at that
/// question ends the run at once with exit 130 (the answer is read off the runtime, which
/// keeps listening for Ctrl-C), and nothing is changed. The terminal is a pseudo-terminal
/// made by Python's `pty` (from the test venv): amictl is its session's foreground process,
/// so Ctrl-C typed there reaches it as a terminal's would.
#[test]
fn ctrl_c_at_the_question_exits_130_at_once_with_nothing_changed() {
    let env = TestEnv::new();
    let image = env.create_image(&env.run_instance(None), "asked-1", &[]);
    let script = r#"
import os, pty, select, signal, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
seen, deadline = b"", time.time() + 60
while b"[y/N]" not in seen and time.time() < deadline:
    if select.select([fd], [], [], 0.5)[0]:
        try:
            seen += os.read(fd, 4096)
        except OSError:
            break
asked = time.time()
os.write(fd, b"\x03")
code = None
while code is None and time.time() < asked + 10:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        code = os.waitstatus_to_exitcode(status)
    else:
        time.sleep(0.05)
if code is None:
    os.kill(pid, signal.SIGKILL)
print(b"[y/N]" in seen, code, round(time.time() - asked, 1))
"#;
    let output = std::process::Command::new(crate::support::python())
        .args(["-c", script, env!("CARGO_BIN_EXE_amictl"), "cleanup", &image])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", std::env::temp_dir())
        .env("AWS_ENDPOINT_URL", &env.endpoint)
        .env("AWS_REGION", &env.region)
        .env("AWS_ACCESS_KEY_ID", "AKIDAMICTLTEST")
        .env("AWS_SECRET_ACCESS_KEY", "amictl-test-secret")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("NO_COLOR", "1")
        .output()
        .expect("python's pty");
    let said = String::from_utf8_lossy(&output.stdout);
    let fields: Vec<&str> = said.split_whitespace().collect();

    assert_eq!(fields.first(), Some(&"True"), "the question was asked: {said}");
    assert_eq!(
        fields.get(1),
        Some(&"130"),
        "Ctrl-C at the question: exit 130 at once: {said}"
    );
    assert!(env.image_ids().contains(&image), "nothing was changed");
}
