//! Cleanup policies as a file: `cleanup --policy FILE` runs its named policies as one plan,
//! `policy check FILE` checks it offline.

use std::path::PathBuf;

use crate::support::{Scratch, TestEnv, Tripwire, plan_entry};

/// A policy file in a fresh scratch directory.
fn policy_file(text: &str) -> (Scratch, PathBuf) {
    let dir = Scratch::new("policy");
    let path = dir.path().join("amictl.toml");
    std::fs::write(&path, text).expect("write the policy file");
    (dir, path)
}

#[test]
fn two_policies_plan_in_one_run_each_entry_naming_its_policy() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let web: Vec<String> = (1..=3)
        .map(|n| env.create_image(&instance, &format!("web-{n}"), &[]))
        .collect();
    let ci: Vec<String> = ["a", "a", "b", "b"]
        .iter()
        .enumerate()
        .map(|(n, app)| env.create_image(&instance, &format!("ci-build-{n}"), &[("env", "ci"), ("app", app)]))
        .collect();
    let (_dir, file) = policy_file(
        r#"
[policies.web]
name = "web-*"
keep = 2
group-by = "name"

[policies.ci]
tags = ["env=ci"]
keep = 1
group-by = "tag:app"
stage = "disable"
"#,
    );
    let file = file.to_str().unwrap();

    let plan = env
        .amictl()
        .args(["cleanup", "--policy", file, "--dry-run", "-o", "json"])
        .run()
        .assert_code(0)
        .json();
    let table = env.amictl().args(["cleanup", "--policy", file, "--dry-run"]).run();

    let decided = |id: &str| {
        let entry = plan_entry(&plan, id);
        (
            entry["action"].as_str().unwrap().to_owned(),
            entry["policy"].as_str().unwrap().to_owned(),
        )
    };
    assert_eq!(decided(&web[0]), ("deregister".to_owned(), "web".to_owned()));
    assert_eq!(decided(&web[1]), ("keep".to_owned(), "web".to_owned()));
    assert_eq!(decided(&web[2]), ("keep".to_owned(), "web".to_owned()));
    assert_eq!(decided(&ci[0]), ("disable".to_owned(), "ci".to_owned()));
    assert_eq!(
        decided(&ci[1]),
        ("keep".to_owned(), "ci".to_owned()),
        "the newest of app=a"
    );
    assert_eq!(decided(&ci[2]), ("disable".to_owned(), "ci".to_owned()));
    assert_eq!(
        decided(&ci[3]),
        ("keep".to_owned(), "ci".to_owned()),
        "the newest of app=b"
    );
    let policies: Vec<&str> = plan["policies"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(policies, ["ci", "web"]);
    let table = &table.assert_code(0).stdout;
    assert!(table.contains("POLICY"), "{table}");
    assert!(
        table.contains("images to deregister") && table.contains("images to disable"),
        "{table}"
    );

    env.amictl()
        .args(["cleanup", "--policy", file, "--yes"])
        .run()
        .assert_code(0);

    let mut left = env.image_ids();
    left.sort();
    let mut expected = vec![web[1].clone(), web[2].clone(), ci[1].clone(), ci[3].clone()];
    expected.sort();
    assert_eq!(
        left, expected,
        "web-1 deregistered; ci-build-0 and -2 disabled (not listed)"
    );
}

#[test]
fn a_policy_plan_saved_is_applied_as_it_was_planned() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let old = env.create_image(&instance, "nightly-1", &[]);
    let new = env.create_image(&instance, "nightly-2", &[]);
    let (dir, file) = policy_file("[policies.nightly]\nname = \"nightly-*\"\nkeep = 1\n");
    let saved = dir.path().join("plan.json");

    env.amictl()
        .args(["cleanup", "--policy", file.to_str().unwrap()])
        .args(["--save-plan", saved.to_str().unwrap()])
        .run()
        .assert_code(0);
    let applied = env
        .amictl()
        .args([
            "cleanup",
            "--apply-plan",
            saved.to_str().unwrap(),
            "--yes",
            "-o",
            "json",
        ])
        .run()
        .assert_code(0)
        .json();

    assert_eq!(plan_entry(&applied, &old)["result"]["status"], "done");
    assert_eq!(plan_entry(&applied, &old)["policy"], "nightly");
    assert_eq!(env.image_ids(), [new]);
}

#[test]
fn policy_mistakes_are_usage_errors_with_their_line_before_any_request() {
    let (_dir, bad) = policy_file("[policies.web]\nname = \"web-*\"\nkep = 2\n");
    let (_dir2, good) = policy_file("[policies.web]\nname = \"web-*\"\n");
    let bad = bad.to_str().unwrap();
    let tripwire = Tripwire::new();

    let checked = TestEnv::amictl_at(&tripwire.url()).args(["policy", "check", bad]).run();
    let cleanup = TestEnv::amictl_at(&tripwire.url())
        .args(["cleanup", "--policy", bad, "--dry-run"])
        .run();
    let mixed = TestEnv::amictl_at(&tripwire.url())
        .args(["cleanup", "--policy", good.to_str().unwrap(), "--keep", "2"])
        .run();
    let fine = TestEnv::amictl_at(&tripwire.url())
        .env_remove("AWS_REGION")
        .args(["policy", "check", good.to_str().unwrap(), "-o", "json"])
        .run();

    for run in [&checked, &cleanup] {
        run.assert_code(2);
        assert_eq!(run.stderr.lines().count(), 1, "one line: {}", run.stderr);
        assert!(run.stderr.contains(&format!("{bad}:3:1:")), "{}", run.stderr);
        assert!(run.stderr.contains("unknown field `kep`"), "{}", run.stderr);
    }
    mixed.assert_code(2);
    assert!(mixed.stderr.contains("cannot be used with"), "{}", mixed.stderr);
    assert_eq!(
        fine.assert_code(0).json()[0]["name"],
        "web",
        "no region needed to check"
    );
    assert_eq!(tripwire.connections(), 0, "nothing was sent");
}

/// A saved plan remembers where each policy ran: applying it asks a policy again only in its
/// own regions, so a policy of another region can't veto what was reviewed.
#[test]
fn a_saved_plan_asks_each_policy_only_in_its_own_regions() {
    let env = TestEnv::on_its_own_server();
    let here = env.elsewhere("eu-west-1");
    let old = here.create_image(&here.run_instance(None), "nightly-1", &[]);
    let (dir, file) = policy_file(
        "[policies.nightly]\nname = \"nightly-*\"\nregions = [\"eu-west-1\"]\n\n\
         [policies.keepall]\nname = \"nightly-*\"\nkeep = 5\nregions = [\"us-west-2\"]\n",
    );
    let saved = dir.path().join("plan.json");
    here.amictl()
        .args(["cleanup", "--policy", file.to_str().unwrap()])
        .args(["--save-plan", saved.to_str().unwrap()])
        .run()
        .assert_code(0);
    let recorded: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    let nightly = (recorded["policies"].as_array().unwrap().iter())
        .find(|p| p["name"] == "nightly")
        .unwrap();
    assert_eq!(nightly["regions"], serde_json::json!(["eu-west-1"]), "{recorded}");

    let applied = here
        .amictl()
        .args([
            "cleanup",
            "--apply-plan",
            saved.to_str().unwrap(),
            "--yes",
            "-o",
            "json",
        ])
        .run();

    let report = applied.assert_code(0).json();
    assert_eq!(plan_entry(&report, &old)["result"]["status"], "done", "{report}");
    assert!(here.image_ids().is_empty());
}

/// Two policies meet an image amictl disabled two weeks ago (here: just now, with
/// `disabled-for = "0s"`): the one that disables has nothing to do, so it has no vote, and the
/// one that deregisters what has been disabled long enough decides.
#[test]
fn a_policy_whose_stage_the_image_is_in_already_has_no_vote() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let image = env.create_image(&instance, "ci-old-1", &[("env", "ci")]);
    env.amictl().args(["disable", &image]).run().assert_code(0);
    let (_dir, file) = policy_file(
        "[policies.ci]\ntags = [\"env=ci\"]\nstage = \"disable\"\n\n\
         [policies.retired]\ndisabled-for = \"0s\"\n",
    );

    let report = env
        .amictl()
        .args(["cleanup", "--policy", file.to_str().unwrap(), "--yes", "-o", "json"])
        .run()
        .assert_code(0)
        .json();

    let entry = plan_entry(&report, &image);
    assert_eq!(entry["action"], "deregister", "{report}");
    assert_eq!(entry["policy"], "retired");
    assert!(env.image_ids().is_empty());
}
