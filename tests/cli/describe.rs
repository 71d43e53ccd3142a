//! `amictl describe` against moto.

use serde_json::Value;

use crate::support::{TestEnv, Tripwire};

fn ids(images: &Value) -> Vec<String> {
    let mut ids: Vec<String> = images
        .as_array()
        .expect("a JSON array")
        .iter()
        .map(|i| i["image_id"].as_str().expect("image_id").to_owned())
        .collect();
    ids.sort();
    ids
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

#[test]
fn lists_own_images_made_from_instances_as_ebs_with_every_field() {
    let env = TestEnv::new();
    let instance = env.run_instance(Some("web-server"));
    let first = env.create_image(&instance, "web-1", &[("team", "web")]);
    let second = env.create_image(&instance, "web-2", &[]);

    let run = env.amictl().args(["describe", "-o", "json"]).run();

    run.assert_code(0);
    let images = run.json();
    assert_eq!(ids(&images), sorted(vec![first.clone(), second]));
    let dates: Vec<&str> = images
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["creation_date"].as_str().unwrap())
        .collect();
    assert!(dates.windows(2).all(|w| w[0] >= w[1]), "newest first: {dates:?}");

    let image = images
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["image_id"] == first.as_str())
        .unwrap();
    assert_eq!(image["name"], "web-1");
    assert_eq!(
        image["backing"], "ebs",
        "moto reports RootDeviceType 'standard'; the EBS root mapping decides"
    );
    assert_eq!(image["state"], "available");
    assert_eq!(image["owner_id"], "123456789012");
    assert_eq!(image["public"], false);
    assert_eq!(image["tags"], serde_json::json!({"team": "web"}));
    assert!(image["deprecation_time"].is_null());
    assert!(
        image["creation_date"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .is_ok(),
        "creation_date is RFC 3339: {}",
        image["creation_date"]
    );
    let devices = image["block_devices"].as_array().unwrap();
    assert_eq!(devices.len(), 1);
    let root = &devices[0];
    assert_eq!(root["device_name"], image["root_device_name"]);
    assert!(root["snapshot_id"].as_str().unwrap().starts_with("snap-"));
    assert_eq!(image["snapshot_ids"], serde_json::json!([root["snapshot_id"]]));
    assert_eq!(image["size_gib"], root["volume_size_gib"]);
    for key in ["volume_type", "encrypted", "delete_on_termination", "virtual_name"] {
        assert!(root.as_object().unwrap().contains_key(key), "block device has {key}");
    }
    assert!(root["virtual_name"].is_null(), "absent values are null");
}

#[test]
fn filters_by_name_glob_and_tag() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let web1 = env.create_image(&instance, "web-1", &[("team", "web")]);
    let web2 = env.create_image(&instance, "web-2", &[("team", "data")]);
    let db = env.create_image(&instance, "db-1", &[("team", "web")]);

    let by_name = env.amictl().args(["describe", "--name", "web-*", "-o", "json"]).run();
    let by_tag = env.amictl().args(["describe", "--tag", "team=web", "-o", "json"]).run();
    let both = env
        .amictl()
        .args(["describe", "--name", "web-*", "--tag", "team=web", "-o", "json"])
        .run();
    let braces = env
        .amictl()
        .args(["describe", "--name", "{db,web}-1", "-o", "json"])
        .run();

    assert_eq!(ids(&by_name.assert_code(0).json()), sorted(vec![web1.clone(), web2]));
    assert_eq!(
        ids(&by_tag.assert_code(0).json()),
        sorted(vec![web1.clone(), db.clone()])
    );
    assert_eq!(ids(&both.assert_code(0).json()), vec![web1.clone()]);
    assert_eq!(
        ids(&braces.assert_code(0).json()),
        sorted(vec![web1, db]),
        "globs EC2 lacks are matched locally"
    );
}

#[test]
fn the_table_shows_one_row_per_image_and_no_sdk_debug_forms() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let image = env.create_image(&instance, "table-1", &[]);

    let run = env.amictl().args(["describe"]).run();

    run.assert_code(0);
    let row = run
        .stdout
        .lines()
        .find(|l| l.contains(&image))
        .expect("a row for the image");
    for cell in ["table-1", "available", "ebs", "not public", "x86_64", "0m ago"] {
        assert!(row.contains(cell), "row has {cell:?}: {row}");
    }
    assert!(!run.stdout.contains("Unknown("), "{}", run.stdout);
    assert!(run.stderr.is_empty(), "nothing on stderr: {}", run.stderr);
}

#[test]
fn one_image_shows_its_devices_permissions_and_storage_cost() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let image = env.create_image(&instance, "detail-1", &[("team", "web")]);
    let snapshot = env.amictl().args(["describe", &image, "-o", "json"]).run().json()[0]["snapshot_ids"][0]
        .as_str()
        .unwrap()
        .to_owned();

    let private = env.amictl().args(["describe", &image, "--snapshot-price", "0.1"]).run();
    env.make_public(&image);
    let public = env.amictl().args(["describe", &image]).run();

    let out = &private.assert_code(0).stdout;
    for text in [
        "detail-1",
        "EBS-backed",
        "private: only the owner may launch it",
        "owner 123456789012 (implicit)",
        &snapshot,
        "team=web",
        "at most $1.50/month",
        "upper-bound estimate",
    ] {
        assert!(out.contains(text), "detail view has {text:?}:\n{out}");
    }
    assert!(
        public
            .assert_code(0)
            .stdout
            .contains("public: every AWS account may launch it"),
        "{}",
        public.stdout
    );
}

#[test]
fn finds_the_instance_store_image_among_amazons() {
    let env = TestEnv::with_amazon_images();

    let run = env
        .amictl()
        .args([
            "describe",
            "--owner",
            "amazon",
            "--backing",
            "instance-store",
            "-o",
            "json",
        ])
        .run();

    let images = run.assert_code(0).json();
    let images = images.as_array().unwrap();
    assert!(!images.is_empty(), "moto ships one instance-store AMI");
    for image in images {
        assert_eq!(image["backing"], "instance-store", "{image}");
        assert_ne!(image["owner_id"], "123456789012");
    }
}

#[test]
fn a_missing_image_exits_1_naming_it_and_the_region() {
    let env = TestEnv::new();

    let run = env.amictl().args(["describe", "ami-0123456789abcdef0"]).run();

    run.assert_code(1);
    assert!(run.stdout.is_empty());
    assert!(run.stderr.contains("ami-0123456789abcdef0"), "{}", run.stderr);
    assert!(run.stderr.contains(&env.region), "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "one line: {}", run.stderr);
}

#[test]
fn a_malformed_image_id_exits_2_before_any_request() {
    let tripwire = Tripwire::new();

    for bad in ["ami-123", "ami-XYZ12345", "i-0123456789abcdef0"] {
        let run = TestEnv::amictl_at(&tripwire.url()).args(["describe", bad]).run();
        run.assert_code(2);
        assert!(run.stderr.contains("is not an image ID"), "{}", run.stderr);
    }
    assert_eq!(tripwire.connections(), 0, "nothing was sent");
}

#[test]
fn bad_filter_values_exit_2_before_any_request() {
    let tripwire = Tripwire::new();

    for args in [
        &["describe", "--tag", "team"][..],
        &["describe", "--owner", "someone"],
        &["describe", "--name", "web-["],
        &["describe", "--backing", "floppy"],
        &["describe", "--snapshot-price", "-1"],
    ] {
        let run = TestEnv::amictl_at(&tripwire.url()).args(args).run();
        run.assert_code(2);
        assert!(run.stderr.starts_with("error:"), "{args:?}: {}", run.stderr);
    }
    assert_eq!(tripwire.connections(), 0, "nothing was sent");
}

#[test]
fn a_closed_stdout_pipe_exits_0_quietly() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    env.create_image(&instance, "pipe-1", &[]);

    let run = env.amictl().args(["describe"]).run_with_closed_stdout();

    run.assert_code(0);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
}

#[test]
fn a_disabled_image_is_listed_as_disabled_when_asked() {
    // moto lists disabled images whatever IncludeDisabled says; that EC2 is asked for them
    // only with --include-disabled is checked in src/ec2/images.rs.
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let disabled = env.create_image(&instance, "hidden-1", &[]);
    env.disable_image(&disabled);

    let asked = env
        .amictl()
        .args(["describe", "--include-disabled", "-o", "json"])
        .run();

    let listed = asked.assert_code(0).json();
    assert_eq!(listed[0]["image_id"], disabled.as_str());
    assert_eq!(listed[0]["state"], "disabled");
}

/// Text from outside (a tag value anyone with CreateTags can write, another account's image
/// description) can carry terminal control sequences: XML keeps out ESC itself, but not the
/// 8-bit C1 controls (CSI U+009B, OSC U+009D) that terminals also obey. The table writes them
/// out, never sends them to the terminal; JSON keeps the value exactly.
#[test]
fn escape_sequences_in_tags_never_reach_the_terminal() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let hostile = "\u{9d}0;pwned\u{9c}\u{9b}2Jgone";
    let image = env.create_image(&instance, "escapes-1", &[("note", hostile)]);

    let table = env.amictl().args(["describe", &image]).run();
    let json = env.amictl().args(["describe", &image, "-o", "json"]).run();

    let stdout = &table.assert_code(0).stdout;
    assert!(!stdout.contains('\u{9b}') && !stdout.contains('\u{9d}'), "{stdout:?}");
    assert!(stdout.contains("\\u{9d}0;pwned"), "{stdout}");
    assert_eq!(json.assert_code(0).json()[0]["tags"]["note"], hostile);
}
