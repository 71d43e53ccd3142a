//! The Recycle Bin as a stage: an image a retention rule keeps is restorable only with its
//! snapshots, so a cleanup keeps them while the image is in the bin, and `restore` brings
//! back the image with its snapshots. moto 5.2.5 has no Recycle Bin; tests/support/
//! moto_stages.py adds one as the EC2 API reference and the Recycle Bin guide describe it.

use crate::support::TestEnv;

fn snapshot_entry(plan: &serde_json::Value) -> &serde_json::Value {
    &plan["images"][0]["snapshots"][0]
}

#[test]
fn a_cleanup_keeps_the_snapshots_of_an_image_the_recycle_bin_holds() {
    let env = TestEnv::new();
    env.retention_rule("image", 7);
    let instance = env.run_instance(None);
    let image = env.create_image(&instance, "binned-1", &[]);
    let snapshot = env.snapshot_of(&image);

    let report = env
        .amictl()
        .args(["cleanup", &image, "--yes", "-o", "json"])
        .run()
        .assert_code(0)
        .json();

    assert_eq!(report["images"][0]["result"]["status"], "done", "{report}");
    let fate = report["images"][0]["recycle_bin"].as_str().unwrap_or_default();
    assert!(fate.starts_with("restorable until "), "{fate}");
    assert!(fate.contains("its snapshots are kept until then"), "{fate}");
    assert_eq!(snapshot_entry(&report)["result"]["status"], "kept", "{report}");
    assert!(
        snapshot_entry(&report)["result"]["reason"]
            .as_str()
            .unwrap()
            .contains("is in the Recycle Bin until"),
        "{report}"
    );
    assert_eq!(report["summary"]["snapshots_deleted"], 0);
    assert!(env.snapshot_ids().contains(&snapshot), "the snapshot stays");
    assert_eq!(env.binned_images(), std::slice::from_ref(&image));

    // While the image waits in the bin, its snapshot is no orphan.
    let orphans = env
        .amictl()
        .args([
            "cleanup",
            "--orphans",
            "--orphans-older-than",
            "0s",
            "--dry-run",
            "-o",
            "json",
        ])
        .run()
        .assert_code(0)
        .json();
    assert_eq!(orphans["orphan_snapshots"], serde_json::json!([]));

    // And the report's promise holds: the image comes back, launchable.
    let restored = env
        .amictl()
        .args(["restore", &image, "-o", "json"])
        .run()
        .assert_code(0)
        .json();
    assert_eq!(restored[0]["outcome"], "changed", "{restored}");
    assert_eq!(restored[0]["state"], "available");
    assert!(env.image_ids().contains(&image));
}

#[test]
fn without_a_retention_rule_the_image_is_gone_for_good_and_so_are_its_snapshots() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let image = env.create_image(&instance, "unbinned-1", &[]);
    let snapshot = env.snapshot_of(&image);

    let report = env
        .amictl()
        .args(["cleanup", &image, "--yes", "-o", "json"])
        .run()
        .assert_code(0)
        .json();

    assert_eq!(
        report["images"][0]["recycle_bin"],
        "gone for good (no Recycle Bin rule covers it)"
    );
    assert_eq!(snapshot_entry(&report)["result"]["status"], "done");
    assert!(!env.snapshot_ids().contains(&snapshot));
}

#[test]
fn restore_brings_back_the_image_with_its_snapshots_from_the_bin() {
    let env = TestEnv::new();
    env.retention_rule("image", 7);
    env.retention_rule("snapshot", 7);
    let instance = env.run_instance(None);
    let image = env.create_image(&instance, "both-binned-1", &[]);
    let snapshot = env.snapshot_of(&image);
    // Another tool deregistered the image and deleted its snapshot: both wait in the bins.
    env.deregister(&image);
    env.delete_snapshot(&snapshot);
    assert_eq!(env.binned_snapshots(), std::slice::from_ref(&snapshot));

    let restored = env
        .amictl()
        .args(["restore", &image, "-o", "json"])
        .run()
        .assert_code(0)
        .json();

    assert_eq!(restored[0]["outcome"], "changed", "{restored}");
    assert!(
        restored[0]["detail"].as_str().unwrap().contains(&snapshot),
        "{restored}"
    );
    assert!(env.snapshot_ids().contains(&snapshot), "the snapshot is back");
    assert!(env.binned_snapshots().is_empty());
    assert_eq!(restored[0]["state"], "available");
}

#[test]
fn restore_works_id_by_id_on_binned_registered_lost_and_unknown_images() {
    let env = TestEnv::new();
    env.retention_rule("image", 7);
    let instance = env.run_instance(None);
    let binned = env.create_image(&instance, "mix-binned", &[]);
    let registered = env.create_image(&instance, "mix-registered", &[]);
    let lost = env.create_image(&instance, "mix-lost", &[]);
    let unknown = "ami-0123456789abcdef0";
    let lost_snapshot = env.snapshot_of(&lost);
    env.deregister(&binned);
    // Its snapshot deleted for good (no snapshot rule): the image can't come back.
    env.deregister(&lost);
    env.delete_snapshot(&lost_snapshot);

    let run = env
        .amictl()
        .args(["restore", &binned, &registered, &lost, unknown, "-o", "json"])
        .run();

    run.assert_code(1);
    let results = run.json();
    let outcome = |i: usize| {
        (
            results[i]["image_id"].as_str().unwrap(),
            results[i]["outcome"].as_str().unwrap(),
        )
    };
    assert_eq!(
        [outcome(0), outcome(1), outcome(2), outcome(3)],
        [
            (binned.as_str(), "changed"),
            (registered.as_str(), "unchanged"),
            (lost.as_str(), "failed"),
            (unknown, "failed")
        ],
        "{results}"
    );
    assert!(
        results[2]["detail"]
            .as_str()
            .unwrap()
            .contains("can't restore an image without them"),
        "{results}"
    );
    assert!(run.stderr.contains("2 images were not changed"), "{}", run.stderr);
    assert_eq!(
        results[0]["state"], "available",
        "read back, whatever the other IDs: {results}"
    );
    assert!(env.image_ids().contains(&binned));
    assert!(
        env.binned_images().contains(&lost),
        "still in the bin, for whatever can still be done"
    );
}

const ACCOUNTS: [&str; 3] = ["111122223333", "444455556666", "777788889999"];
const BY_HAND: &str = "222233334444";

fn accounts(env: &TestEnv, image: &str) -> Vec<String> {
    let shown = env
        .amictl()
        .args(["permissions", "show", image, "-o", "json"])
        .run()
        .assert_code(0)
        .json();
    let mut accounts: Vec<String> = shown["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    accounts.sort();
    accounts
}

fn ok(env: &TestEnv, args: &[&str]) -> serde_json::Value {
    let run = env.amictl().args(args).args(["-o", "json"]).run();
    assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
    run.json()
}

/// One image through every stage, twice, in different orders, with changes made behind
/// amictl's back between them: each walk ends exactly as its report said (restorable, and
/// restored; or gone for good), and every account that could launch the image before can
/// launch it again after `enable --restore-permissions`.
#[test]
fn two_walks_through_every_stage_end_as_their_reports_said() {
    // First walk: a retention rule keeps deregistered images.
    let env = TestEnv::new();
    env.retention_rule("image", 7);
    let instance = env.run_instance(None);
    let image = env.create_image(&instance, "walk-a", &[]);
    let snapshot = env.snapshot_of(&image);
    for account in ACCOUNTS {
        env.share_image(&image, account);
    }
    ok(&env, &["deprecate", &image, "--in", "30d"]);
    ok(&env, &["protect", &image]);
    ok(&env, &["unprotect", &image]);
    ok(&env, &["disable", &image, "--include-shared"]);
    // The console enables it and grants one more account; amictl disables it again.
    env.enable_image(&image);
    env.share_image(&image, BY_HAND);
    ok(&env, &["disable", &image, "--include-shared"]);
    assert!(accounts(&env, &image).is_empty(), "EC2 removed every grant");
    ok(&env, &["enable", &image, "--restore-permissions"]);
    let mut everyone: Vec<String> = ACCOUNTS.iter().chain(&[BY_HAND]).map(|a| (*a).to_owned()).collect();
    everyone.sort();
    assert_eq!(accounts(&env, &image), everyone);
    let report = ok(&env, &["cleanup", &image, "--include-shared", "--yes"]);
    let fate = report["images"][0]["recycle_bin"].as_str().unwrap().to_owned();
    assert!(fate.starts_with("restorable until"), "{fate}");
    assert!(env.binned_images().contains(&image) && env.snapshot_ids().contains(&snapshot));
    let restored = ok(&env, &["restore", &image]);
    assert_eq!(restored[0]["state"], "available", "as the report said: {fate}");
    assert_eq!(accounts(&env, &image), everyone, "still launchable by every account");

    // Second walk, another order, no retention rule: disabled first, enabled with its
    // permissions, deprecated, disabled by a cleanup, then deregistered for good.
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let image = env.create_image(&instance, "walk-b", &[]);
    let snapshot = env.snapshot_of(&image);
    for account in ACCOUNTS {
        env.share_image(&image, account);
    }
    ok(&env, &["disable", &image, "--include-shared"]);
    ok(&env, &["disable", &image, "--include-shared"]); // again: unchanged
    ok(&env, &["enable", &image, "--restore-permissions"]);
    assert_eq!(accounts(&env, &image), ACCOUNTS);
    ok(&env, &["deprecate", &image, "--in", "1d"]);
    ok(&env, &["cleanup", &image, "--disable", "--include-shared", "--yes"]);
    // The console enables and disables it again: the disable time amictl recorded still
    // stands (no launch in between), so the cleanup of what amictl disabled takes it.
    env.enable_image(&image);
    env.disable_image(&image);
    let report = ok(&env, &["cleanup", "--disabled-for", "0s", "--include-shared", "--yes"]);
    assert_eq!(report["images"][0]["image_id"], image.as_str(), "{report}");
    assert_eq!(
        report["images"][0]["recycle_bin"],
        "gone for good (no Recycle Bin rule covers it)"
    );
    assert!(!env.image_ids().contains(&image) && env.binned_images().is_empty());
    assert!(!env.snapshot_ids().contains(&snapshot), "its snapshot went with it");
    let gone = env.amictl().args(["restore", &image]).run();
    gone.assert_code(1);
    assert!(
        gone.stderr.contains("neither registered nor in the Recycle Bin"),
        "{}",
        gone.stderr
    );
}
