//! amictl under throttling, server errors, dropped connections, hung endpoints and Ctrl-C,
//! with a fault-injecting proxy between it and moto. After each run the state in moto says
//! what happened: what must stay stays; what must go is gone after the run or one re-run.

use std::time::Duration;

use serde_json::Value;

use crate::support::TestEnv;
use crate::support::proxy::{Fault, Misbehaviour, Proxy};

/// `n` images of one instance, named `batch-1` … `batch-n`.
fn images(env: &TestEnv, n: usize) -> Vec<String> {
    let instance = env.run_instance(None);
    (1..=n)
        .map(|i| env.create_image(&instance, &format!("batch-{i}"), &[]))
        .collect()
}

fn statuses(report: &Value) -> Vec<String> {
    report["images"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| {
            std::iter::once(&i["result"]).chain(i["snapshots"].as_array().unwrap().iter().map(|s| &s["result"]))
        })
        .map(|r| r["status"].as_str().unwrap_or("none").to_owned())
        .collect()
}

#[test]
fn cleanup_finishes_when_its_writes_start_throttled_and_a_quarter_of_its_reads_fail() {
    // Another tool emptied the buckets just before: the first writes of each action are
    // throttled. (Throttling by rate is the test below; this one is about retrying.)
    let env = TestEnv::new();
    images(&env, 20);
    let proxy = Proxy::start(&env.endpoint);
    for action in ["DeregisterImage", "DeleteSnapshot"] {
        proxy.fail(action, Fault::first(3, Fault::throttled()));
    }
    for action in [
        "DescribeImages",
        "DescribeInstances",
        "DescribeLaunchTemplateVersions",
        "DescribeLaunchConfigurations",
    ] {
        proxy.fail(action, Fault::every(4, Fault::internal_error()));
    }

    let run = env
        .through(&proxy)
        .args(["cleanup", "--all", "--yes", "-o", "json"])
        .run();

    let report = run.assert_code(0).json();
    assert_eq!(report["summary"]["images_deregistered"], 20);
    assert_eq!(report["summary"]["snapshots_deleted"], 20);
    assert!(proxy.count("DeregisterImage") > 20, "throttled calls were retried");
    assert!(env.image_ids().is_empty());
    assert!(env.snapshot_ids().is_empty());
}

#[test]
fn a_lasting_refusal_of_delete_snapshot_names_each_snapshot_left_and_orphans_finish_the_job() {
    let env = TestEnv::new();
    images(&env, 4);
    let snapshots = env.snapshot_ids();
    let proxy = Proxy::start(&env.endpoint);
    proxy.fail("DeleteSnapshot", Fault::always(Fault::unauthorized()));

    let refused = env
        .through(&proxy)
        .args(["cleanup", "--all", "--yes", "-o", "json"])
        .run();

    let report = refused.assert_code(1).json();
    assert!(refused.elapsed < Duration::from_mins(1), "took {:?}", refused.elapsed);
    let failed: Vec<&str> = report["images"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| i["snapshots"].as_array().unwrap())
        .filter(|s| s["result"]["status"] == "failed")
        .map(|s| s["snapshot_id"].as_str().unwrap())
        .collect();
    let mut failed: Vec<String> = failed.into_iter().map(str::to_owned).collect();
    failed.sort();
    assert_eq!(failed, snapshots, "each snapshot left is named");
    assert_eq!(report["summary"]["failures"], 4);
    assert_eq!(
        proxy.count("DeleteSnapshot"),
        4,
        "an authorization error is not retried"
    );
    assert!(env.image_ids().is_empty());
    assert_eq!(env.snapshot_ids(), snapshots);

    let rerun = env
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

    assert_eq!(rerun.assert_code(0).json()["summary"]["snapshots_deleted"], 4);
    assert!(env.snapshot_ids().is_empty());
}

#[test]
fn dropped_connections_are_retried() {
    let env = TestEnv::new();
    images(&env, 4);
    let proxy = Proxy::start(&env.endpoint);
    proxy.fail("DescribeImages", Fault::first(1, Misbehaviour::Drop));
    proxy.fail("DeregisterImage", Fault::every(2, Misbehaviour::Drop));
    proxy.fail("DeleteSnapshot", Fault::every(2, Misbehaviour::Drop));

    let run = env
        .through(&proxy)
        .args(["cleanup", "--all", "--yes", "-o", "json"])
        .run();

    let report = run.assert_code(0).json();
    assert!(statuses(&report).iter().all(|s| s == "done"), "{report}");
    assert!(env.image_ids().is_empty());
    assert!(env.snapshot_ids().is_empty());
}

#[test]
fn every_command_absorbs_throttling_and_server_errors() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let proxy = Proxy::start(&env.endpoint);
    for action in [
        "CreateImage",
        "ModifyImageAttribute",
        "DeregisterImage",
        "DescribeImageAttribute",
    ] {
        proxy.fail(action, Fault::first(1, Fault::throttled()));
    }
    proxy.fail("DescribeImages", Fault::every(3, Fault::internal_error()));
    proxy.fail("DescribeInstances", Fault::first(1, Fault::internal_error()));

    let created = env
        .through(&proxy)
        .args([
            "-o",
            "json",
            "create",
            "--instance-id",
            &instance,
            "--name",
            "steady-1",
            "--no-reboot",
        ])
        .run();
    let image = created.assert_code(0).json()["image_id"].as_str().unwrap().to_owned();
    let described = env.through(&proxy).args(["describe", "-o", "json"]).run();
    let shared = env
        .through(&proxy)
        .args(["permissions", "add", &image, "--account", "111122223333"])
        .run();
    let deregistered = env
        .through(&proxy)
        .args(["deregister", &image, "--delete-snapshots", "--include-shared"])
        .run();

    assert_eq!(env.own_images().len(), 0, "one image was made, and it is gone");
    assert_eq!(
        proxy.count("CreateImage"),
        2,
        "the throttled CreateImage was tried again, once"
    );
    assert_eq!(described.assert_code(0).json()[0]["image_id"], image.as_str());
    shared.assert_code(0);
    deregistered.assert_code(0);
    assert!(env.snapshot_ids().is_empty());
}

#[test]
fn a_hung_endpoint_costs_the_timeout_not_minutes() {
    let env = TestEnv::new();
    let proxy = Proxy::start(&env.endpoint);
    proxy.fail(
        "DescribeImages",
        Fault::always(Misbehaviour::Delay(Duration::from_secs(20))),
    );

    let run = env.through(&proxy).args(["describe", "--timeout", "2s"]).run();

    run.assert_code(1);
    assert!(run.elapsed < Duration::from_secs(6), "took {:?}", run.elapsed);
    assert!(run.stderr.contains("no answer in time"), "{}", run.stderr);
}

#[test]
fn ctrl_c_stops_a_cleanup_cleanly_and_a_rerun_finishes_the_job() {
    let env = TestEnv::new();
    images(&env, 6);
    let proxy = Proxy::start(&env.endpoint);
    proxy.fail(
        "DeregisterImage",
        Fault::always(Misbehaviour::Delay(Duration::from_millis(600))),
    );

    let running = env
        .through(&proxy)
        .args(["cleanup", "--all", "--yes", "--concurrency", "1", "-o", "json"])
        .spawn();
    // The second DeregisterImage starts once the first is done: interrupt then.
    proxy.wait_for("DeregisterImage", 2);
    running.interrupt();
    let interrupted = running.wait();

    let report = interrupted.assert_code(130).json();
    let statuses = statuses(&report);
    assert!(statuses.iter().any(|s| s == "done"), "{statuses:?}");
    assert!(statuses.iter().any(|s| s == "not_attempted"), "{statuses:?}");
    assert!(interrupted.stderr.contains("interrupted"), "{}", interrupted.stderr);
    let left = env.image_ids().len();
    assert!(left > 0 && left < 6, "{left} images left");

    let rerun = env
        .amictl()
        .args(["cleanup", "--all", "--yes", "--orphans", "--orphans-older-than", "0s"])
        .run();

    rerun.assert_code(0);
    assert!(env.image_ids().is_empty());
    assert!(env.snapshot_ids().is_empty());
}

#[test]
fn a_second_ctrl_c_quits_at_once() {
    let env = TestEnv::new();
    images(&env, 2);
    let proxy = Proxy::start(&env.endpoint);
    proxy.fail(
        "DeregisterImage",
        Fault::always(Misbehaviour::Delay(Duration::from_secs(10))),
    );

    let running = env.through(&proxy).args(["cleanup", "--all", "--yes"]).spawn();
    proxy.wait_for("DeregisterImage", 1);
    running.interrupt();
    running.wait_for_stderr("Ctrl-C again quits at once");
    running.interrupt();
    let run = running.wait();

    run.assert_code(130);
    assert!(run.elapsed < Duration::from_secs(5), "took {:?}", run.elapsed);
}

#[test]
fn ctrl_c_stops_a_deregister_cleanly_too() {
    let env = TestEnv::new();
    let named = images(&env, 3);
    let proxy = Proxy::start(&env.endpoint);
    proxy.fail(
        "DeregisterImage",
        Fault::always(Misbehaviour::Delay(Duration::from_millis(600))),
    );

    let running = env
        .through(&proxy)
        .args(["deregister", "--concurrency", "1", "-o", "json"])
        .args(&named)
        .spawn();
    proxy.wait_for("DeregisterImage", 1);
    running.interrupt();
    let run = running.wait();

    run.assert_code(130);
    let report = run.json();
    let results: Vec<&str> = report["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["result"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        results,
        ["done", "not_attempted", "not_attempted"],
        "the request in flight ends: {report}"
    );
    assert_eq!(env.image_ids().len(), 2, "nothing new was started");
}

#[test]
fn the_flag_wins_over_the_environment_for_attempts() {
    let env = TestEnv::new();
    let proxy = Proxy::start(&env.endpoint);
    proxy.fail("DescribeImages", Fault::always(Fault::throttled()));
    let mut attempts = Vec::new();

    for (flag, variable) in [(Some("2"), None), (None, Some("3")), (Some("2"), Some("3"))] {
        let mut amictl = env.through(&proxy).args(["describe"]);
        if let Some(flag) = flag {
            amictl = amictl.args(["--max-attempts", flag]);
        }
        if let Some(variable) = variable {
            amictl = amictl.env("AWS_MAX_ATTEMPTS", variable);
        }
        amictl.run().assert_code(1);
        attempts.push(proxy.count("DescribeImages"));
        proxy.reset();
    }

    assert_eq!(
        attempts,
        [2, 3, 2],
        "--max-attempts, AWS_MAX_ATTEMPTS, and the flag over the variable"
    );
}

#[test]
fn behind_ec2_like_rate_limits_a_cleanup_finishes_with_few_throttled_answers() {
    let env = TestEnv::new();
    images(&env, 100);
    let proxy = Proxy::start(&env.endpoint);
    for action in ["DeregisterImage", "DeleteSnapshot", "DescribeImageAttribute"] {
        proxy.limit(action, 10, 20.0);
    }

    let run = env
        .through(&proxy)
        .args(["cleanup", "--all", "--yes", "-o", "json"])
        .run();

    let report = run.assert_code(0).json();
    assert_eq!(report["summary"]["images_deregistered"], 100, "{}", run.stderr);
    assert!(env.image_ids().is_empty() && env.snapshot_ids().is_empty());
    let writes = proxy.count("DeregisterImage") + proxy.count("DeleteSnapshot");
    let throttled = proxy.throttled("DeregisterImage") + proxy.throttled("DeleteSnapshot");
    assert!(
        throttled * 4 <= writes,
        "each stream learns its rate: {throttled} of {writes} writes throttled"
    );
}

#[test]
fn a_lasting_throttle_ends_within_the_timeout_with_the_report_and_the_rerun_hint() {
    let env = TestEnv::new();
    images(&env, 6);
    let proxy = Proxy::start(&env.endpoint);
    proxy.fail("DeregisterImage", Fault::always(Fault::throttled()));

    let run = env
        .through(&proxy)
        .args(["cleanup", "--all", "--yes", "--timeout", "3s", "-o", "json"])
        .run();

    run.assert_code(1);
    assert!(run.elapsed < Duration::from_secs(12), "took {:?}", run.elapsed);
    let report = run.json();
    assert_eq!(report["summary"]["failures"], 6, "{report}");
    assert!(run.stderr.contains("run the same command again"), "{}", run.stderr);
    assert!(
        report["images"][0]["result"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("got through") || r.contains("RequestLimitExceeded")),
        "{report}"
    );
    assert_eq!(env.image_ids().len(), 6, "nothing was removed");
}

#[test]
fn max_rate_leaves_the_bucket_alone() {
    let env = TestEnv::new();
    images(&env, 8);
    let proxy = Proxy::start(&env.endpoint);
    // A bucket that a burst would empty at once: 2 of burst, 5 a second.
    proxy.limit("DeregisterImage", 2, 5.0);

    let run = env
        .through(&proxy)
        .args(["cleanup", "--all", "--yes", "--max-rate", "4"])
        .run();

    run.assert_code(0);
    assert_eq!(proxy.count("DeregisterImage"), 8);
    assert_eq!(proxy.throttled("DeregisterImage"), 0, "never faster than the refill");
    assert!(env.image_ids().is_empty());
}
