//! `amictl copy` and `create --copy-to-regions`: an image into other regions of the account.
//! moto copies images between regions; tests/support/moto_stages.py makes its CopyImage apply
//! TagSpecifications, Encrypted and KmsKeyId and keep the copy `pending` a while, as EC2 does.
//! Each test has a server of its own, so that it can use any region.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::Filter;
use serde_json::Value;

use crate::support::{TestEnv, assert_refused_before_any_request, block_on, tag_map};

const PARTNER: &str = "111122223333";

/// The source region of every test here, on the test's own server.
fn source() -> TestEnv {
    TestEnv::on_its_own_server()
}

/// The account's images in `region` (on the source's server), with their tags.
fn images_in(source: &TestEnv, region: &str) -> Vec<(String, String, BTreeMap<String, String>)> {
    let client = source.elsewhere(region).client();
    let images = block_on(async move { client.describe_images().owners("self").send().await })
        .expect("DescribeImages")
        .images
        .unwrap_or_default();
    images
        .into_iter()
        .map(|i| {
            (
                i.image_id.unwrap_or_default(),
                i.name.unwrap_or_default(),
                tag_map(i.tags.as_deref().unwrap_or_default()),
            )
        })
        .collect()
}

/// An image of the source region, available, with tags.
fn source_image(env: &TestEnv, name: &str, tags: &[(&str, &str)]) -> String {
    env.create_image(&env.run_instance(None), name, tags)
}

/// `amictl -o json copy IMAGE --to-regions REGIONS`, from the source's region.
fn copy(env: &TestEnv, image: &str, regions: &str) -> crate::support::Amictl {
    env.amictl()
        .args(["-o", "json", "copy", image, "--to-regions", regions])
}

fn row<'a>(copies: &'a Value, region: &str) -> &'a Value {
    copies
        .as_array()
        .expect("an array of copies")
        .iter()
        .find(|c| c["region"] == region)
        .unwrap_or_else(|| panic!("no row for {region}: {copies}"))
}

#[test]
fn copies_go_to_each_region_with_name_and_tags_a_bogus_region_fails_alone_and_a_rerun_copies_nothing() {
    let env = source();
    let image = source_image(&env, "web-7", &[("team", "web"), ("env", "staging")]);

    let first = copy(&env, &image, "eu-west-1,zz-nowhere-1,us-west-2")
        .args(["--copy-tags", "--tag", "env=prod", "--snapshot-tag", "cost=images"])
        .run();

    first.assert_code(1);
    assert_eq!(first.stderr.lines().count(), 1, "one line: {}", first.stderr);
    assert!(
        first.stderr.contains("zz-nowhere-1") && first.stderr.contains("EC2 knows no region"),
        "{}",
        first.stderr
    );
    let copies = first.json();
    assert_eq!(copies.as_array().unwrap().len(), 3, "a row per region asked for");
    assert!(row(&copies, "zz-nowhere-1")["image_id"].is_null());
    for region in ["eu-west-1", "us-west-2"] {
        let copy = row(&copies, region);
        assert!(copy["error"].is_null(), "{copy}");
        assert_eq!(copy["existing"], false);
        assert_eq!(copy["source_image_id"], image.as_str());
        assert_eq!(copy["source_region"], "us-east-1");
        let there = images_in(&env, region);
        assert_eq!(there.len(), 1, "one copy in {region}: {there:?}");
        let (id, name, tags) = &there[0];
        assert_eq!(copy["image_id"], id.as_str());
        assert_eq!(name, "web-7", "the source's name");
        let expected: BTreeMap<String, String> = [
            ("amictl:source-image-id", image.as_str()),
            ("amictl:source-region", "us-east-1"),
            ("env", "prod"),
            ("team", "web"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(tags, &expected, "the source's tags, --tag winning, and the source tags");
        let snapshot = copy["snapshot_ids"][0].as_str().expect("the copy's snapshot");
        assert_eq!(env.elsewhere(region).snapshot_tags(snapshot)["cost"], "images");
    }

    // A re-run with one more tag: no second copy, and the earlier copies get the tag.
    let again = copy(&env, &image, "eu-west-1,us-west-2,us-east-1")
        .args(["--copy-tags", "--tag", "env=prod", "--tag", "release=2"])
        .run();

    let rerun = again.assert_code(0).json();
    for region in ["eu-west-1", "us-west-2"] {
        assert_eq!(row(&rerun, region)["existing"], true);
        assert_eq!(row(&rerun, region)["image_id"], row(&copies, region)["image_id"]);
        let there = images_in(&env, region);
        assert_eq!(there.len(), 1, "no second copy in {region}");
        assert_eq!(there[0].2.get("release").map(String::as_str), Some("2"), "{region}");
    }
    let home = row(&rerun, "us-east-1");
    assert_eq!(
        home["image_id"],
        image.as_str(),
        "the source's own region is the source"
    );
    assert_eq!(home["existing"], true);
}

#[test]
fn copy_permissions_replays_the_source_grants_and_public_needs_yes() {
    let env = source();
    let image = source_image(&env, "shared-1", &[]);
    env.share_image(&image, PARTNER);

    let copied = copy(&env, &image, "eu-west-1")
        .args(["--copy-permissions"])
        .run()
        .assert_code(0)
        .json();

    let copy = row(&copied, "eu-west-1");
    assert_eq!(
        copy["state"], "available",
        "permissions are given once the copy is available"
    );
    let there = env.elsewhere("eu-west-1");
    let shown = there
        .amictl()
        .args(["permissions", "show", copy["image_id"].as_str().unwrap(), "-o", "json"])
        .run()
        .assert_code(0)
        .json();
    assert_eq!(shown["accounts"], serde_json::json!([PARTNER]));

    let public = source_image(&env, "public-1", &[]);
    env.make_public(&public);
    let refused = env
        .amictl()
        .args(["copy", &public, "--to-regions", "us-west-2", "--copy-permissions"])
        .run();
    refused.assert_code(2);
    assert!(refused.stderr.contains("pass --yes"), "{}", refused.stderr);
    assert!(images_in(&env, "us-west-2").is_empty(), "nothing was copied");
}

#[test]
fn a_dry_run_asks_ec2_and_copies_nothing() {
    let env = source();
    let image = source_image(&env, "dry-1", &[]);

    let run = copy(&env, &image, "eu-west-1,us-west-2").args(["--dry-run"]).run();

    let copies = run.assert_code(0).json();
    for region in ["eu-west-1", "us-west-2"] {
        assert!(row(&copies, region)["image_id"].is_null());
        assert!(row(&copies, region)["error"].is_null());
        assert!(images_in(&env, region).is_empty(), "nothing copied to {region}");
    }
    assert!(run.stderr.contains("dry run"), "{}", run.stderr);
}

#[test]
fn each_region_is_encrypted_with_its_own_key() {
    let env = source();
    let image = source_image(&env, "sealed-1", &[]);

    let copies = copy(&env, &image, "eu-west-1,us-west-2")
        .args(["--encrypt"])
        .args(["--kms-key-id", "eu-west-1=alias/eu", "--kms-key-id", "alias/everywhere"])
        .run()
        .assert_code(0)
        .json();

    for (region, key) in [("eu-west-1", "alias/eu"), ("us-west-2", "alias/everywhere")] {
        let snapshot = row(&copies, region)["snapshot_ids"][0].as_str().unwrap().to_owned();
        let client = env.elsewhere(region).client();
        let found = block_on(async move {
            client
                .describe_snapshots()
                .filters(Filter::builder().name("snapshot-id").values(snapshot).build())
                .send()
                .await
        })
        .expect("DescribeSnapshots")
        .snapshots
        .unwrap_or_default();
        assert_eq!(found[0].encrypted, Some(true), "{region}");
        // EC2 reports the key's ARN (the test server's stand-in for the key behind an alias).
        let arn = format!("arn:aws:kms:{region}:123456789012:key/{}", key.replace('/', "-"));
        assert_eq!(found[0].kms_key_id.as_deref(), Some(arn.as_str()), "{region}");
    }
}

#[test]
fn create_waits_for_its_image_then_copies_it() {
    let env = source();
    let instance = env.run_instance(None);

    let created = env
        .amictl()
        .args([
            "-o",
            "json",
            "create",
            "--instance-id",
            &instance,
            "--name",
            "chain-1",
            "--no-reboot",
        ])
        .args(["--tag", "team=web", "--copy-to-regions", "eu-west-1"])
        .run()
        .assert_code(0)
        .json();

    assert_eq!(created["state"], "available", "the image was waited for");
    let copy = row(&created["copies"], "eu-west-1");
    assert_eq!(copy["source_image_id"], created["image_id"]);
    let there = images_in(&env, "eu-west-1");
    assert_eq!(there.len(), 1);
    assert_eq!(there[0].1, "chain-1");
    assert_eq!(there[0].2["team"], "web", "the image's tags go with it");
}

/// The deprecation time EC2 reports for each image of the account in `region`, by name.
fn deprecations_in(source: &TestEnv, region: &str) -> BTreeMap<String, Option<jiff::Timestamp>> {
    let client = source.elsewhere(region).client();
    let images = block_on(async move {
        client
            .describe_images()
            .owners("self")
            .include_deprecated(true)
            .send()
            .await
    })
    .expect("DescribeImages")
    .images
    .unwrap_or_default();
    (images.into_iter())
        .map(|i| {
            let at = i.deprecation_time.map(|t| t.parse().expect("an RFC 3339 time"));
            (i.name.unwrap_or_default(), at)
        })
        .collect()
}

#[test]
fn copies_are_deprecated_with_their_source_unless_told_otherwise() {
    let env = source();
    let instance = env.run_instance(None);
    let time = |value: &Value| value.as_str().map(|t| t.parse::<jiff::Timestamp>().expect("a time"));
    // create deprecates its image, then its copies at the same time.
    let created = env
        .amictl()
        .args(["-o", "json", "create", "--instance-id", &instance, "--name", "dep-1"])
        .args(["--no-reboot", "--deprecate-in", "90d", "--copy-to-regions", "eu-west-1"])
        .run()
        .assert_code(0)
        .json();
    let at = time(&created["deprecation_time"]).expect("deprecated");
    assert_eq!(
        time(&row(&created["copies"], "eu-west-1")["deprecation_time"]),
        Some(at)
    );
    assert_eq!(deprecations_in(&env, "eu-west-1")["dep-1"], Some(at));

    // copy carries the source's time by default, sets another with --deprecate-in, none
    // with --no-deprecation.
    let image = created["image_id"].as_str().unwrap();
    let carried = copy(&env, image, "us-west-2").run().assert_code(0).json();
    let other = copy(&env, image, "ap-south-1").args(["--deprecate-in", "30d"]).run();
    let none = copy(&env, image, "eu-central-1").args(["--no-deprecation"]).run();

    assert_eq!(deprecations_in(&env, "us-west-2")["dep-1"], Some(at));
    assert_eq!(time(&row(&carried, "us-west-2")["deprecation_time"]), Some(at));
    let in_30_days = deprecations_in(&env, "ap-south-1")["dep-1"].expect("deprecated");
    let days = in_30_days.duration_since(jiff::Timestamp::now()).as_hours() / 24;
    assert!((29..=30).contains(&days), "{in_30_days}");
    let other = other.assert_code(0).json();
    assert_eq!(time(&row(&other, "ap-south-1")["deprecation_time"]), Some(in_30_days));
    assert_eq!(deprecations_in(&env, "eu-central-1")["dep-1"], None);
    assert!(row(&none.assert_code(0).json(), "eu-central-1")["deprecation_time"].is_null());

    // A re-run puts the source's time back on a copy that lost it, and copies nothing.
    let again = copy(&env, image, "eu-central-1").run().assert_code(0).json();
    assert_eq!(row(&again, "eu-central-1")["existing"], true);
    assert_eq!(deprecations_in(&env, "eu-central-1")["dep-1"], Some(at));
    assert_eq!(images_in(&env, "eu-central-1").len(), 1, "copied once");
}

#[test]
fn ctrl_c_while_waiting_leaves_the_copies_going_and_prints_them() {
    let env = source();
    // The test server keeps this image's copies pending for a minute.
    let image = source_image(&env, "slow-1", &[("amictl-test:copy-seconds", "60")]);

    let running = copy(&env, &image, "eu-west-1,us-west-2").args(["--wait"]).spawn();
    running.wait_for_stderr("eu-west-1: waiting for");
    running.wait_for_stderr("us-west-2: waiting for");
    running.interrupt();
    let run = running.wait();

    let copies = run.assert_code(130).json();
    for region in ["eu-west-1", "us-west-2"] {
        let id = row(&copies, region)["image_id"]
            .as_str()
            .expect("the copy's ID")
            .to_owned();
        assert_eq!(row(&copies, region)["state"], "pending");
        assert!(
            run.stderr.contains(&format!("{id} in {region}")),
            "names the copy going on: {}",
            run.stderr
        );
    }
    assert!(run.stderr.contains("EC2 goes on copying"), "{}", run.stderr);
}

#[test]
fn bad_copy_requests_are_refused_before_any_request() {
    let image = "ami-0123456789abcdef0";
    assert_refused_before_any_request(
        &["copy", image],
        &[
            (&[], "--to-regions"),
            (&["--to-regions", "eu-west-1", "--all-regions"], "cannot be used with"),
            (&["--to-regions", "eu west 1"], "not an AWS region"),
            (&["--to-regions", "eu-west-1", "--kms-key-id", "alias/x"], "--encrypt"),
            (
                &[
                    "--to-regions",
                    "eu-west-1",
                    "--encrypt",
                    "--kms-key-id",
                    "us-west-2=alias/x",
                ],
                "names us-west-2, which is not copied to",
            ),
            (
                &[
                    "--to-regions",
                    "eu-west-1,us-west-2",
                    "--encrypt",
                    "--kms-key-id",
                    "arn:aws:kms:eu-west-1:123456789012:alias/x",
                ],
                "can't encrypt the copy in us-west-2",
            ),
            (&["--to-regions", "eu-west-1", "--tag", "aws:x=1"], "reserves"),
            (
                &["--to-regions", "eu-west-1", "--tag", "amictl:source-region=x"],
                "amictl keeps",
            ),
            (&["--to-regions", "eu-west-1", "--name", "{instance_name}"], "create's"),
            (&["--to-regions", "eu-west-1", "--name", "web:{date}"], "does not allow"),
        ],
    );
    assert_refused_before_any_request(
        &["create", "--instance-id", "i-0123456789abcdef0"],
        &[
            (&["--copy-to-regions", "nowhere"], "not an AWS region"),
            (&["--name", "{source_region}"], "is for `amictl copy`"),
        ],
    );
}

/// An earlier copy is the one asked for only if EC2 says it was copied from this source and
/// it is encrypted as asked now; otherwise that region fails, saying why and what to do.
#[test]
fn a_rerun_reuses_only_a_copy_that_is_what_was_asked_for() {
    let env = source();
    let image = source_image(&env, "sealed-again-1", &[]);
    let plain = copy(&env, &image, "eu-west-1")
        .args(["--wait"])
        .run()
        .assert_code(0)
        .json();
    let plain_copy = row(&plain, "eu-west-1")["image_id"].as_str().unwrap().to_owned();

    let encrypted = copy(&env, &image, "eu-west-1").args(["--encrypt"]).run();

    encrypted.assert_code(1);
    let error = row(&encrypted.json(), "eu-west-1")["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(error.contains(&plain_copy) && error.contains("unencrypted"), "{error}");
    assert!(error.contains("amictl deregister"), "{error}");
    assert_eq!(images_in(&env, "eu-west-1").len(), 1, "nothing copied twice");

    // A copy of another image, carrying this source's tags: EC2 says where it came from.
    let other = source_image(&env, "other-1", &[]);
    let elsewhere = copy(&env, &other, "us-west-2")
        .args(["--wait"])
        .run()
        .assert_code(0)
        .json();
    let impostor = row(&elsewhere, "us-west-2")["image_id"].as_str().unwrap().to_owned();
    let target = env.elsewhere("us-west-2");
    target.tag(&impostor, "amictl:source-image-id", &image);

    let tricked = copy(&env, &image, "us-west-2").run();

    tricked.assert_code(1);
    let error = row(&tricked.json(), "us-west-2")["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains(&format!("EC2 says it was copied from {other}")),
        "{error}"
    );
}
