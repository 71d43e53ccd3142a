//! `amictl deregister` against moto.

use crate::support::TestEnv;
use crate::support::proxy::Proxy;

#[test]
fn deregisters_and_lists_the_snapshots_it_keeps_with_their_size() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let image = env.create_image(&instance, "dereg-1", &[]);
    let snapshot = env.snapshot_of(&image);

    let run = env.amictl().args(["deregister", &image, "-o", "json"]).run();

    let report = run.assert_code(0).json();
    let entry = &report["images"][0];
    assert_eq!(entry["image_id"], image.as_str());
    assert_eq!(entry["action"], "deregister");
    assert_eq!(entry["result"]["status"], "done");
    let kept = &entry["snapshots"][0];
    assert_eq!(kept["snapshot_id"], snapshot.as_str());
    assert_eq!(kept["action"], "keep");
    assert_eq!(kept["size_gib"], 15);
    assert!(kept["reason"].as_str().unwrap().contains("--delete-snapshots"));
    assert!(env.image_ids().is_empty());
    assert_eq!(env.snapshot_ids(), [snapshot], "the snapshot stays");
}

#[test]
fn delete_snapshots_removes_them_after_the_image() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let image = env.create_image(&instance, "dereg-2", &[]);
    let proxy = Proxy::start(&env.endpoint);

    let run = env
        .through(&proxy)
        .args(["deregister", &image, "--delete-snapshots"])
        .run();

    run.assert_code(0);
    assert!(run.stdout.contains("snapshots deleted"), "{}", run.stdout);
    assert_eq!(
        proxy.mutations(),
        ["DeregisterImage", "DeleteSnapshot"],
        "in this order, once each"
    );
    assert!(env.image_ids().is_empty());
    assert!(env.snapshot_ids().is_empty());
}

#[test]
fn an_image_in_use_is_refused_naming_what_uses_it_unless_allowed() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let image = env.create_image(&instance, "dereg-3", &[]);
    let user = env.run_instance_from(&image);

    let refused = env.amictl().args(["deregister", &image, "--delete-snapshots"]).run();
    let still_there = env.image_ids();
    let allowed = env
        .amictl()
        .args(["deregister", &image, "--allow-in-use", "-o", "json"])
        .run();

    refused.assert_code(1);
    assert!(
        refused.stdout.contains(&format!("in use by instance {user}")),
        "{}",
        refused.stdout
    );
    assert!(refused.stderr.contains("not deregistered"), "{}", refused.stderr);
    assert_eq!(still_there, [image]);
    assert_eq!(allowed.assert_code(0).json()["images"][0]["result"]["status"], "done");
    assert!(env.image_ids().is_empty());
}

#[test]
fn a_missing_image_exits_1_and_dry_run_changes_nothing() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let image = env.create_image(&instance, "dereg-4", &[]);
    let proxy = Proxy::start(&env.endpoint);

    let missing = env.amictl().args(["deregister", "ami-0123456789abcdef0"]).run();
    let dry = env
        .through(&proxy)
        .args(["deregister", &image, "--delete-snapshots", "--dry-run", "-o", "json"])
        .run();

    missing.assert_code(1);
    assert!(missing.stderr.contains("ami-0123456789abcdef0"), "{}", missing.stderr);
    let plan = dry.assert_code(0).json();
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["images"][0]["action"], "deregister");
    assert!(plan["images"][0]["result"].is_null());
    assert!(proxy.mutations().is_empty(), "{:?}", proxy.mutations());
    assert_eq!(env.image_ids(), [image]);
}
