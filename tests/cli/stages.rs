//! Retirement in stages: deprecate, protect, disable (recording the launch permissions),
//! enable again, and the cleanups that select by stage. moto 5.2.5 lacks deprecation,
//! deregistration protection and LastLaunchedTime, and keeps launch permissions on a disabled
//! image; tests/support/moto_stages.py adds them to moto's own images as the EC2 API
//! reference documents them, so that the binary is tested end to end.

use crate::support::TestEnv;
use crate::support::proxy::{Fault, Misbehaviour, Proxy};

const PARTNER: &str = "111122223333";

fn image_json(env: &TestEnv, image: &str) -> serde_json::Value {
    let listed = env
        .amictl()
        .args(["describe", image, "-o", "json"])
        .run()
        .assert_code(0)
        .json();
    listed[0].clone()
}

fn launch_accounts(env: &TestEnv, image: &str) -> serde_json::Value {
    env.amictl()
        .args(["permissions", "show", image, "-o", "json"])
        .run()
        .assert_code(0)
        .json()["accounts"]
        .clone()
}

#[test]
fn an_image_walks_every_stage_and_only_the_last_one_deletes() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);

    // Created with a deprecation time 90 days out.
    let created = env
        .amictl()
        .args(["-o", "json", "create", "--instance-id", &instance, "--name", "walk-1"])
        .args(["--no-reboot", "--deprecate-in", "90d"])
        .run()
        .assert_code(0)
        .json();
    let image = created["image_id"].as_str().unwrap().to_owned();
    let snapshot = env.snapshot_of(&image);
    let deprecation: jiff::Timestamp = created["deprecation_time"].as_str().unwrap().parse().unwrap();
    let days = deprecation.duration_since(jiff::Timestamp::now()).as_hours() / 24;
    assert!((89..=90).contains(&days), "deprecated in {days} days");
    assert_eq!(image_json(&env, &image)["stage"], "deprecating");
    env.share_image(&image, PARTNER);

    // Protected: a cleanup keeps it and says why.
    let protected = env.amictl().args(["protect", &image, "-o", "json"]).run();
    assert_eq!(protected.assert_code(0).json()[0]["outcome"], "changed");
    let kept = env.json_of(&["cleanup", &image, "--include-shared", "--yes"]);
    assert_eq!(kept["images"][0]["action"], "keep");
    assert!(
        kept["images"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("deregistration protection is on"),
        "{kept}"
    );
    assert!(env.image_ids().contains(&image));

    // Unprotected, then disabled by a cleanup: the image and its snapshot stay, the launch
    // permission goes, and amictl has recorded it.
    env.amictl().args(["unprotect", &image]).run().assert_code(0);
    let disabled = env.json_of(&["cleanup", &image, "--disable", "--include-shared", "--yes"]);
    assert_eq!(disabled["images"][0]["action"], "disable");
    assert_eq!(disabled["images"][0]["snapshots"][0]["action"], "keep");
    assert_eq!(disabled["summary"]["images_disabled"], 1);
    let described = image_json(&env, &image);
    assert_eq!(described["state"], "disabled");
    assert_eq!(described["tags"]["amictl:launch-permissions"], PARTNER);
    assert!(env.snapshot_ids().contains(&snapshot), "snapshots stay");
    assert_eq!(launch_accounts(&env, &image), serde_json::json!([]), "EC2 removed it");

    // A disabled image's snapshot is no orphan.
    let orphans = env.json_of(&["cleanup", "--orphans", "--orphans-older-than", "0s", "--dry-run"]);
    assert_eq!(orphans["orphan_snapshots"], serde_json::json!([]));

    // Enabled with its permissions back.
    let enabled = env.json_of(&["enable", &image, "--restore-permissions"]);
    assert_eq!(enabled[0]["state"], "available");
    assert_eq!(launch_accounts(&env, &image), serde_json::json!([PARTNER]));
    assert_eq!(image_json(&env, &image)["tags"].get("amictl:launch-permissions"), None);

    // Disabled again, and deregistered by the cleanup of what amictl disabled.
    env.amictl()
        .args(["disable", &image, "--include-shared"])
        .run()
        .assert_code(0);
    let other = env.create_image(&instance, "walk-2", &[]);
    env.disable_image(&other); // disabled without amictl: not its to clean up
    let cleaned = env.json_of(&["cleanup", "--disabled-for", "0s", "--yes"]);
    assert_eq!(cleaned["summary"]["images_deregistered"], 1, "{cleaned}");
    assert!(!env.image_ids().contains(&image));
    assert!(!env.snapshot_ids().contains(&snapshot), "deleted with its image");
    assert_eq!(image_json(&env, &other)["state"], "disabled", "left alone");
}

#[test]
fn describe_shows_each_stage_in_table_and_json() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let deprecating = env.create_image(&instance, "stage-deprecating", &[]);
    let protected = env.create_image(&instance, "stage-protected", &[]);
    let disabled = env.create_image(&instance, "stage-disabled", &[]);
    let launched = env.create_image(&instance, "stage-launched", &[]);
    env.amictl()
        .args(["deprecate", &deprecating, "--in", "30d"])
        .run()
        .assert_code(0);
    env.amictl()
        .args(["protect", &protected, "--cooldown"])
        .run()
        .assert_code(0);
    env.disable_image(&disabled);
    env.run_instance_from(&launched);

    let listed = env
        .amictl()
        .args(["describe", "--include-disabled", "-o", "json"])
        .run()
        .assert_code(0)
        .json();
    let by_id = |id: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["image_id"] == id)
            .unwrap_or_else(|| panic!("{id} not listed: {listed}"))
            .clone()
    };
    assert_eq!(by_id(&deprecating)["stage"], "deprecating");
    assert!(by_id(&deprecating)["deprecation_time"].is_string());
    assert_eq!(by_id(&protected)["protected"], true);
    assert_eq!(by_id(&protected)["deregistration_protection"], "enabled-with-cooldown");
    assert_eq!(by_id(&disabled)["stage"], "disabled");
    assert!(by_id(&launched)["last_launched_time"].is_string());
    assert!(by_id(&deprecating)["last_launched_time"].is_null());

    let table = env.amictl().args(["describe", "--include-disabled"]).run();
    let stdout = &table.assert_code(0).stdout;
    for expected in [
        "STAGE",
        "LAST LAUNCHED",
        "deprecating (",
        "available, protected",
        "disabled",
        "never",
    ] {
        assert!(stdout.contains(expected), "{expected:?} missing from:\n{stdout}");
    }
    let detail = env.amictl().args(["describe", &protected]).run();
    assert!(
        detail.assert_code(0).stdout.contains("on (24h cooldown)"),
        "{}",
        detail.stdout
    );

    // Listings leave disabled images out unless asked, as EC2 does.
    let default = env
        .amictl()
        .args(["describe", "-o", "json"])
        .run()
        .assert_code(0)
        .json();
    assert!(!default.to_string().contains(&disabled));
}

#[test]
fn cleanup_selects_by_deprecation_and_by_last_launch() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let launched = env.create_image(&instance, "unused-launched", &[]);
    let idle = env.create_image(&instance, "unused-idle", &[]);
    let instance_of_launched = env.run_instance_from(&launched);
    env.terminate(&instance_of_launched);

    // Launched a moment ago: not unused for an hour; never launched but made a moment ago:
    // not either. Unused for 0s: both. (An old image launched lately is in the unit tests:
    // moto can't make an image in the past.)
    let hour = env
        .amictl()
        .args(["cleanup", "--unused-for", "1h", "--dry-run", "-o", "json"])
        .run()
        .assert_code(0)
        .json();
    assert_eq!(hour["images"], serde_json::json!([]));
    let plan = env
        .amictl()
        .args(["cleanup", "--unused-for", "0s", "--dry-run", "-o", "json"])
        .run()
        .assert_code(0)
        .json();
    assert_eq!(plan["images"].as_array().unwrap().len(), 2, "{plan}");

    // Deprecated: only once the time has come (EC2 refuses a time in the past, so the
    // time to come is all a test can set: it selects nothing yet).
    env.amictl()
        .args(["deprecate", &idle, "--in", "1d"])
        .run()
        .assert_code(0);
    let deprecated = env
        .amictl()
        .args(["cleanup", "--deprecated", "--dry-run", "-o", "json"])
        .run()
        .assert_code(0)
        .json();
    assert_eq!(deprecated["images"], serde_json::json!([]));
    assert_eq!(deprecated["selection"]["deprecated"], true);
}

#[test]
fn asking_for_the_stage_an_image_is_in_is_no_error() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let image = env.create_image(&instance, "again-1", &[]);
    for _ in 0..2 {
        env.amictl().args(["protect", &image]).run().assert_code(0);
    }
    let again = env.amictl().args(["protect", &image, "-o", "json"]).run();
    assert_eq!(again.assert_code(0).json()[0]["outcome"], "unchanged");
    // EC2 rounds a deprecation time's seconds to the nearest minute: 00:00:45 is kept as
    // 00:01:00, and asking for 00:00:45 again changes nothing.
    let minute = jiff::Timestamp::now().as_second() / 60 * 60;
    let at = jiff::Timestamp::from_second(minute + 30 * 86_400 + 45)
        .unwrap()
        .to_string();
    for expected in ["changed", "unchanged"] {
        let deprecate = env
            .amictl()
            .args(["deprecate", &image, "--at", &at, "-o", "json"])
            .run();
        assert_eq!(deprecate.assert_code(0).json()[0]["outcome"], expected, "{at}");
    }
    env.amictl()
        .args(["deprecate", &image, "--cancel"])
        .run()
        .assert_code(0);
    let cancel = env.amictl().args(["deprecate", &image, "--cancel", "-o", "json"]).run();
    assert_eq!(cancel.assert_code(0).json()[0]["outcome"], "unchanged");
    let enable = env.amictl().args(["enable", &image, "-o", "json"]).run();
    assert_eq!(enable.assert_code(0).json()[0]["outcome"], "unchanged");

    // But restoring permissions amictl never recorded is a failure that says so.
    let restore = env.amictl().args(["enable", &image, "--restore-permissions"]).run();
    assert!(
        restore
            .assert_code(1)
            .stderr
            .contains("no record of its launch permissions")
    );
}

#[test]
fn bad_stage_input_is_refused_before_any_request() {
    let proxy = Proxy::start(&TestEnv::new().endpoint);
    let env = TestEnv::new();
    let run = |args: &[&str]| env.through(&proxy).args(args).run();
    for (args, says) in [
        (vec!["deprecate", "ami-12345678", "--at", "2020-01-01"], "in the past"),
        (vec!["deprecate", "ami-12345678", "--in", "11years"], "ten years"),
        (
            vec!["deprecate", "ami-12345678", "--in", "99999999999999999999d"],
            "not a duration",
        ),
        (vec!["deprecate", "ami-12345678"], "--at"),
        (
            vec!["deprecate", "ami-12345678", "--in", "1d", "--cancel"],
            "cannot be used with",
        ),
        (vec!["protect", "snap-12345678"], "snap-12345678"),
        (vec!["enable"], "IMAGE_ID"),
        (
            vec!["cleanup", "--all", "--disable", "--orphans"],
            "cannot be used with",
        ),
        (
            vec!["create", "--instance-id", "i-12345678", "--deprecate-in", "0s"],
            "more than zero",
        ),
    ] {
        let refused = run(&args);
        refused.assert_code(2);
        assert!(refused.stderr.contains(says), "{args:?}: {}", refused.stderr);
    }
    assert_eq!(proxy.total(), 0, "nothing was sent");
}

#[test]
fn an_endpoint_without_the_action_is_said_in_one_line_after_one_try() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let image = env.create_image(&instance, "lacking-1", &[]);
    let proxy = Proxy::start(&env.endpoint);
    proxy.fail("EnableImageDeprecation", Fault::always(Misbehaviour::NotImplemented));

    let run = env.through(&proxy).args(["deprecate", &image, "--in", "30d"]).run();

    run.assert_code(1);
    let said: Vec<&str> = run.stderr.lines().filter(|l| l.contains("does not support")).collect();
    assert_eq!(said.len(), 1, "{}", run.stderr);
    assert!(said[0].contains("EnableImageDeprecation"), "{}", said[0]);
    assert_eq!(proxy.count("EnableImageDeprecation"), 1, "one try, no retries");
    assert!(image_json(&env, &image)["deprecation_time"].is_null());
}

const SECOND: &str = "444455556666";
const THIRD: &str = "777788889999";

fn sorted_accounts(env: &TestEnv, image: &str) -> Vec<String> {
    let mut accounts: Vec<String> = launch_accounts(env, image)
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    accounts.sort();
    accounts
}

/// disable, a plain enable, a grant re-added by hand, disable again: the second disable
/// merges with the first's record instead of overwriting it, so every account that could
/// launch the image before can launch it again.
#[test]
fn the_permission_record_survives_disable_enable_and_disable_again() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let image = env.create_image(&instance, "record-1", &[]);
    env.share_image(&image, PARTNER);
    env.share_image(&image, SECOND);

    env.amictl()
        .args(["disable", &image, "--include-shared"])
        .run()
        .assert_code(0);
    let enabled = env.amictl().args(["enable", &image, "-o", "json"]).run();
    let detail = enabled.assert_code(0).json()[0]["detail"].as_str().unwrap().to_owned();
    assert!(
        detail.contains("a record of its launch permissions remains"),
        "{detail}"
    );
    assert!(detail.contains("--restore-permissions"), "{detail}");
    let tags = image_json(&env, &image)["tags"].clone();
    assert!(tags.get("amictl:disabled-at").is_none(), "the disable is over: {tags}");
    assert!(tags.get("amictl:launch-permissions").is_some(), "{tags}");

    // Someone grants one account again by hand; then the image is disabled once more.
    env.share_image(&image, THIRD);
    env.amictl()
        .args(["disable", &image, "--include-shared"])
        .run()
        .assert_code(0);
    assert_eq!(
        sorted_accounts(&env, &image),
        Vec::<String>::new(),
        "EC2 removed them all"
    );

    let restored = env
        .amictl()
        .args(["enable", &image, "--restore-permissions", "-o", "json"])
        .run();
    assert_eq!(restored.assert_code(0).json()[0]["state"], "available");
    assert_eq!(sorted_accounts(&env, &image), [PARTNER, SECOND, THIRD]);
    let tags = image_json(&env, &image)["tags"].clone();
    assert!(
        tags.as_object().unwrap().keys().all(|k| !k.starts_with("amictl:")),
        "the record is gone once given back: {tags}"
    );
}

#[test]
fn disabling_a_disabled_image_is_unchanged_and_no_error() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let image = env.create_image(&instance, "twice-1", &[]);
    env.amictl().args(["disable", &image]).run().assert_code(0);

    let again = env.amictl().args(["disable", &image, "-o", "json"]).run();

    let plan = again.assert_code(0).json();
    assert_eq!(plan["images"][0]["action"], "keep", "{plan}");
    assert_eq!(plan["images"][0]["unchanged"], true, "{plan}");
    let cleanup = env
        .amictl()
        .args(["cleanup", &image, "--disable", "--yes", "-o", "json"])
        .run();
    assert_eq!(cleanup.assert_code(0).json()["images"][0]["unchanged"], true);
}

/// A record is read back as a stranger's input: a word that is no grant refuses the whole
/// record before anything changes, and a public grant needs --yes as `permissions public` does.
#[test]
fn a_record_is_checked_before_anything_is_given_back() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let image = env.create_image(&instance, "hostile-1", &[]);
    env.amictl().args(["disable", &image]).run().assert_code(0);

    env.tag(&image, "amictl:launch-permissions", "111122223333 $(touch /tmp/x)");
    let hostile = env.amictl().args(["enable", &image, "--restore-permissions"]).run();
    hostile.assert_code(1);
    assert!(hostile.stderr.contains("can't be trusted"), "{}", hostile.stderr);
    assert_eq!(image_json(&env, &image)["state"], "disabled", "nothing changed");

    env.tag(&image, "amictl:launch-permissions", "public");
    let public = env.amictl().args(["enable", &image, "--restore-permissions"]).run();
    public.assert_code(2);
    assert!(public.stderr.contains("--yes"), "{}", public.stderr);
    assert_eq!(image_json(&env, &image)["state"], "disabled", "nothing changed");

    env.amictl()
        .args(["enable", &image, "--restore-permissions", "--yes"])
        .run()
        .assert_code(0);
    assert_eq!(image_json(&env, &image)["public"], true);
}

/// A disable time from an earlier disable is not trusted for the disable in force: after
/// another tool enabled the image, someone launched it, and the tool disabled it again, the
/// image was disabled a moment ago, not when amictl's tag says.
#[test]
fn a_stale_disable_time_selects_nothing() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let image = env.create_image(&instance, "stale-1", &[]);
    env.amictl().args(["disable", &image]).run().assert_code(0);
    env.enable_image(&image);
    env.run_instance_from(&image);
    env.disable_image(&image);

    let plan = env
        .amictl()
        .args(["cleanup", "--disabled-for", "0s", "--dry-run", "-o", "json"])
        .run()
        .assert_code(0)
        .json();

    assert_eq!(plan["images"], serde_json::json!([]), "{plan}");
}

#[test]
fn a_record_that_does_not_fit_ec2s_tag_limit_disables_nothing() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let image = env.create_image(&instance, "crowded-1", &[]);
    env.share_image(&image, PARTNER);
    // 49 tags, then the record (one tag) and the disable time: 51.
    for i in 0..49 {
        env.tag(&image, &format!("k{i}"), "v");
    }

    let run = env
        .amictl()
        .args(["disable", &image, "--include-shared", "-o", "json"])
        .run();

    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let result = run.json()["images"][0]["result"].clone();
    assert_eq!(result["status"], "failed", "{result}");
    assert!(result["reason"].as_str().unwrap().contains("EC2 takes 50"), "{result}");
    assert_eq!(
        launch_accounts(&env, &image),
        serde_json::json!([PARTNER]),
        "nothing removed"
    );
    assert_eq!(image_json(&env, &image)["state"], "available", "not disabled");
}

/// `amictl:` keys are amictl's records: refused at a user's word, never copied.
#[test]
fn amictl_tag_keys_are_refused_and_never_copied() {
    let env = TestEnv::new();
    let instance = env.run_instance(Some("web"));
    env.tag(&instance, "amictl:disabled-at", "2020-01-01T00:00:00Z");
    let refused = env
        .amictl()
        .args([
            "create",
            "--instance-id",
            &instance,
            "--tag",
            "amictl:disabled-at=2020-01-01T00:00:00Z",
        ])
        .run();
    refused.assert_code(2);
    assert!(refused.stderr.contains("amictl:"), "{}", refused.stderr);

    let created = env
        .amictl()
        .args([
            "-o",
            "json",
            "create",
            "--instance-id",
            &instance,
            "--name",
            "copied-tags-1",
        ])
        .args(["--no-reboot", "--copy-instance-tags"])
        .run()
        .assert_code(0)
        .json();
    assert_eq!(created["tags"]["Name"], "web");
    assert!(created["tags"].get("amictl:disabled-at").is_none(), "{created}");
}
