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
    assert!(env.image_ids().contains(&binned));
    assert!(
        env.binned_images().contains(&lost),
        "still in the bin, for whatever can still be done"
    );
}
