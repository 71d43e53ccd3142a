//! `amictl create` against moto.

use crate::support::metadata::Metadata;
use std::time::Duration;

use crate::support::proxy::{Fault, Misbehaviour, Proxy};
use crate::support::{TestEnv, assert_refused_before_any_request, refused_url, tag_map};

#[test]
fn creates_a_tagged_image_with_tagged_snapshots_and_warns_about_integrity() {
    let env = TestEnv::new();
    let instance = env.run_instance(Some("web-server"));

    let run = env
        .amictl()
        .args(["-o", "json", "create", "--instance-id", &instance, "--name", "web-1"])
        .args([
            "--description",
            "nightly web",
            "--no-reboot",
            "--tag",
            "team=web",
            "--snapshot-tag",
            "cost=ci",
        ])
        .run();

    run.assert_code(0);
    let created = run.json();
    let image_id = created["image_id"].as_str().expect("image_id");
    assert_eq!(created["no_reboot"], true);
    assert_eq!(created["name"], "web-1");
    assert_eq!(created["instance_id"], instance.as_str());
    assert_eq!(created["description"], "nightly web");
    assert_eq!(created["tags"], serde_json::json!({"team": "web"}));
    assert_eq!(created["dry_run"], false);
    assert!(
        run.stderr
            .contains("file-system integrity of the image is not guaranteed"),
        "{}",
        run.stderr
    );

    let images = env.own_images();
    assert_eq!(images.len(), 1, "exactly one image was created");
    let image = &images[0];
    assert_eq!(image.image_id(), Some(image_id));
    assert_eq!(image.name(), Some("web-1"));
    assert_eq!(image.description(), Some("nightly web"));
    assert_eq!(image.source_instance_id(), Some(instance.as_str()));
    assert_eq!(tag_map(image.tags()).get("team").map(String::as_str), Some("web"));
    let snapshot = image.block_device_mappings()[0].ebs().unwrap().snapshot_id().unwrap();
    assert_eq!(created["snapshot_ids"], serde_json::json!([snapshot]));
    assert_eq!(env.snapshot_tags(snapshot).get("cost").map(String::as_str), Some("ci"));
}

#[test]
fn without_no_reboot_it_says_the_instance_reboots_and_does_not_warn() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);

    let run = env
        .amictl()
        .args(["create", "--instance-id", &instance, "--name", "reboot-1", "-o", "json"])
        .run();

    assert_eq!(run.assert_code(0).json()["no_reboot"], false);
    assert!(
        run.stderr.contains(&format!("EC2 will reboot instance {instance}")),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
}

#[test]
fn quiet_silences_everything_but_the_result() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);

    let run = env
        .amictl()
        .args([
            "create",
            "-q",
            "--instance-id",
            &instance,
            "--name",
            "quiet-1",
            "--no-reboot",
            "--wait",
        ])
        .run();

    run.assert_code(0);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    assert!(run.stdout.contains("quiet-1"), "{}", run.stdout);
}

#[test]
fn a_missing_instance_exits_1_naming_it_and_the_region() {
    let env = TestEnv::new();

    let run = env
        .amictl()
        .args(["create", "--instance-id", "i-0123456789abcdef0", "--name", "x-1"])
        .run();

    run.assert_code(1);
    assert!(
        run.stderr.contains("instance i-0123456789abcdef0 not found"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains(&env.region), "{}", run.stderr);
    assert!(env.own_images().is_empty());
}

#[test]
fn a_terminated_instance_exits_1() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    env.terminate(&instance);

    let run = env
        .amictl()
        .args(["create", "--instance-id", &instance, "--name", "gone-1"])
        .run();

    run.assert_code(1);
    assert!(run.stderr.contains("is terminated"), "{}", run.stderr);
    assert!(env.own_images().is_empty(), "nothing was created");
}

#[test]
fn bad_input_exits_2_before_any_request() {
    let instance = "i-0123456789abcdef0";
    let long_name = "n".repeat(129);
    let long_description = "d".repeat(256);
    let cases: &[(&[&str], &str)] = &[
        (&["--instance-id", "i-123", "--name", "ok-1"], "is not an instance ID"),
        (
            &["--instance-id", instance, "--name", "web:1"],
            "which EC2 does not allow",
        ),
        (&["--instance-id", instance, "--name", "ab"], "EC2 takes 3 to 128"),
        (&["--instance-id", instance, "--name", &long_name], "EC2 takes 3 to 128"),
        (
            &["--instance-id", instance, "--name", "web-{version}"],
            "unknown placeholder {version}",
        ),
        (
            &["--instance-id", instance, "--name", "ok-1", "--tag", "team"],
            "expected KEY=VALUE",
        ),
        (
            &["--instance-id", instance, "--name", "ok-1", "--snapshot-tag", "=x"],
            "empty tag key",
        ),
        (
            &["--instance-id", instance, "--name", "ok-1", "--tag", "aws:team=x"],
            "reserves",
        ),
        (
            &[
                "--instance-id",
                instance,
                "--name",
                "ok-1",
                "--description",
                &long_description,
            ],
            "at most 255",
        ),
        (
            &[
                "--instance-id",
                instance,
                "--name",
                "ok-1",
                "--wait",
                "--wait-timeout",
                "soon",
            ],
            "not a duration",
        ),
        (
            &["--instance-id", instance, "--name", "ok-1", "--wait-timeout", "5m"],
            "--wait",
        ),
    ];

    assert_refused_before_any_request(&["create"], cases);
}

#[test]
fn a_duplicate_name_exits_1_naming_the_existing_image_and_creates_nothing() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let existing = env.create_image(&instance, "taken-1", &[]);

    let run = env
        .amictl()
        .args(["create", "--instance-id", &instance, "--name", "taken-1"])
        .run();

    run.assert_code(1);
    assert!(run.stderr.contains(&existing), "{}", run.stderr);
    assert!(run.stderr.contains("already exists"), "{}", run.stderr);
    assert_eq!(env.own_images().len(), 1, "no second image");
}

#[test]
fn placeholders_are_filled_in_locally() {
    let env = TestEnv::new();
    let instance = env.run_instance(Some("web-server"));
    let today = jiff::Timestamp::now().strftime("%Y-%m-%d").to_string();

    let named = env
        .amictl()
        .args([
            "-o",
            "json",
            "create",
            "--instance-id",
            &instance,
            "--name",
            "{instance_name}-{date}",
        ])
        .run();
    let stamped = env
        .amictl()
        .args([
            "-o",
            "json",
            "create",
            "--instance-id",
            &instance,
            "--name",
            "{instance_id}-{timestamp}",
        ])
        .run();

    assert_eq!(named.assert_code(0).json()["name"], format!("web-server-{today}"));
    let stamped = stamped.assert_code(0).json()["name"].as_str().unwrap().to_owned();
    let stamp = stamped
        .strip_prefix(&format!("{instance}-"))
        .expect("instance ID first");
    assert_eq!(stamp.len(), "20261128-053622".len(), "{stamp}");
    assert!(stamp.starts_with(&today.replace('-', "")), "{stamp}");
    let mut image_names: Vec<String> = env.own_images().iter().map(|i| i.name().unwrap().to_owned()).collect();
    let mut expected = vec![format!("web-server-{today}"), stamped];
    image_names.sort();
    expected.sort();
    assert_eq!(image_names, expected);
}

#[test]
fn wait_returns_once_the_image_is_available() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);

    let run = env
        .amictl()
        .args([
            "-o",
            "json",
            "create",
            "--instance-id",
            &instance,
            "--name",
            "wait-1",
            "--wait",
            "--wait-timeout",
            "2m",
        ])
        .run();

    let created = run.assert_code(0).json();
    assert_eq!(created["state"], "available");
    assert!(
        run.stderr.contains(&format!(
            "waiting for {}: available",
            created["image_id"].as_str().unwrap()
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn dry_run_asks_ec2_and_creates_nothing() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);

    let run = env
        .amictl()
        .args([
            "-o",
            "json",
            "create",
            "--instance-id",
            &instance,
            "--name",
            "dry-1",
            "--dry-run",
        ])
        .run();

    let result = run.assert_code(0).json();
    assert_eq!(result["dry_run"], true);
    assert!(result["image_id"].is_null());
    assert!(run.stderr.contains("nothing was created"), "{}", run.stderr);
    assert!(env.own_images().is_empty(), "nothing was created");
}

/// amictl on "the instance itself": metadata names the instance and the region; no region
/// in the environment.
fn on_the_instance(env: &TestEnv, metadata: &Metadata) -> crate::support::Amictl {
    env.amictl()
        .env_remove("AWS_REGION")
        .env_remove("AWS_EC2_METADATA_DISABLED")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", metadata.url())
}

#[test]
fn on_an_instance_create_no_reboot_images_that_instance_under_its_name_and_a_timestamp() {
    let env = TestEnv::new();
    let instance = env.run_instance(Some("build-box"));
    let metadata = Metadata::start(&instance, &env.region);

    let run = on_the_instance(&env, &metadata).args(["create", "--no-reboot"]).run();

    run.assert_code(0);
    let images = env.own_images();
    assert_eq!(images.len(), 1, "{}", run.stderr);
    let image = &images[0];
    assert_eq!(image.source_instance_id(), Some(instance.as_str()));
    let name = image.name().unwrap();
    let stamp = name.strip_prefix("build-box-").expect("named after the Name tag");
    assert_eq!(stamp.len(), "20261128-053622".len(), "{name}");
    assert!(
        run.stdout.contains(image.image_id().unwrap()),
        "prints the ID: {}",
        run.stdout
    );
    assert!(run.stderr.contains(&format!("image name: {name}")), "{}", run.stderr);
    assert!(run.stderr.contains("this very machine"), "{}", run.stderr);
    assert!(run.stderr.contains("file-system integrity"), "{}", run.stderr);
}

#[test]
fn without_a_name_tag_the_default_name_is_the_instance_id_and_a_timestamp() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let metadata = Metadata::start(&instance, &env.region);

    let run = on_the_instance(&env, &metadata)
        .args(["-o", "json", "create", "--no-reboot"])
        .run();

    let name = run.assert_code(0).json()["name"].as_str().unwrap().to_owned();
    assert!(name.starts_with(&format!("{instance}-")), "{name}");
}

#[test]
fn off_ec2_create_without_an_instance_id_exits_2_fast_with_a_hint() {
    let env = TestEnv::new();
    let nowhere = refused_url();

    let silent = env
        .amictl()
        .env_remove("AWS_EC2_METADATA_DISABLED")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &nowhere)
        .args(["create", "--no-reboot"])
        .run();
    let disabled = env.amictl().args(["create", "--no-reboot"]).run();

    for run in [silent, disabled] {
        run.assert_code(2);
        assert!(run.elapsed.as_secs_f64() < 2.0, "took {:?}", run.elapsed);
        assert!(run.stderr.contains("pass --instance-id"), "{}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    }
    assert!(env.own_images().is_empty());
}

#[test]
fn rebooting_this_machine_needs_yes_off_a_terminal() {
    let env = TestEnv::new();
    let instance = env.run_instance(Some("build-box"));
    let metadata = Metadata::start(&instance, &env.region);
    let proxy = Proxy::start(&env.endpoint);

    let refused = on_the_instance(&env, &metadata)
        .env("AWS_ENDPOINT_URL", proxy.url())
        .args(["create"])
        .run();
    let sent_when_refused = proxy.total();
    let agreed = on_the_instance(&env, &metadata)
        .args(["-o", "json", "create", "--yes"])
        .run();

    refused.assert_code(2);
    assert!(refused.stderr.contains("pass --yes"), "{}", refused.stderr);
    assert_eq!(sent_when_refused, 0, "nothing was sent");
    let created = agreed.assert_code(0).json();
    assert_eq!(created["no_reboot"], false);
    assert!(agreed.stderr.contains("reboot this very machine"), "{}", agreed.stderr);
    assert_eq!(env.own_images().len(), 1);
}

#[test]
fn ctrl_c_while_waiting_says_that_creation_goes_on_and_still_gives_the_id() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let proxy = Proxy::start(&env.endpoint);
    // The name check reads images once; every look after CreateImage hangs.
    proxy.fail(
        "DescribeImages",
        Fault::after(1, Misbehaviour::Delay(Duration::from_secs(10))),
    );

    let running = env
        .through(&proxy)
        .args([
            "-o",
            "json",
            "create",
            "--instance-id",
            &instance,
            "--name",
            "patient-1",
            "--no-reboot",
            "--wait",
        ])
        .spawn();
    proxy.wait_for("DescribeImages", 2);
    running.interrupt();
    let run = running.wait();

    let created = run.assert_code(130).json();
    let image = created["image_id"].as_str().expect("the image ID is printed");
    assert!(
        run.stderr.contains(&format!("EC2 goes on creating image {image}")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!("amictl describe {image}")),
        "{}",
        run.stderr
    );
    assert!(run.elapsed < Duration::from_secs(5), "took {:?}", run.elapsed);
    assert_eq!(env.image_ids(), [image.to_owned()], "the image exists");
}
