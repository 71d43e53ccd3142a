//! `amictl permissions` against moto.

use serde_json::{Value, json};

use crate::support::proxy::Proxy;
use crate::support::{TestEnv, assert_refused_before_any_request};

const ACCOUNT: &str = "111122223333";
const ORG: &str = "arn:aws:organizations::111122223333:organization/o-abcdefghij";
const OU: &str = "arn:aws:organizations::111122223333:ou/o-abcdefghij/ou-ab12-cdefgh34";

fn image(env: &TestEnv, name: &str) -> String {
    let instance = env.run_instance(None);
    env.create_image(&instance, name, &[])
}

fn show(env: &TestEnv, image: &str) -> Value {
    env.amictl()
        .args(["permissions", "show", image, "-o", "json"])
        .run()
        .assert_code(0)
        .json()
}

#[test]
fn share_show_publish_unpublish_and_reset() {
    let env = TestEnv::new();
    let image = image(&env, "share-1");
    let proxy = Proxy::start(&env.endpoint);

    let added = env
        .amictl()
        .args(["permissions", "add", &image, "--account", ACCOUNT, "-o", "json"])
        .run();
    let table = env.amictl().args(["permissions", "show", &image]).run();
    let refused = env.through(&proxy).args(["permissions", "public", &image]).run();
    let public = env
        .amictl()
        .args(["permissions", "public", &image, "--yes", "-o", "json"])
        .run();
    let private = env
        .amictl()
        .args(["permissions", "private", &image, "-o", "json"])
        .run();
    let org = env
        .amictl()
        .args(["permissions", "add", &image, "--org", ORG, "--ou", OU, "-o", "json"])
        .run();
    let reset = env.amictl().args(["permissions", "reset", &image, "-o", "json"]).run();

    assert_eq!(
        added.assert_code(0).json(),
        json!({"image_id": image, "owner_id": "123456789012", "public": false, "accounts": [ACCOUNT],
               "organization_arns": [], "organizational_unit_arns": [], "shared_snapshots": []})
    );
    let row = table
        .assert_code(0)
        .stdout
        .lines()
        .find(|l| l.contains(&image))
        .unwrap()
        .to_owned();
    assert!(row.contains(ACCOUNT) && row.contains("123456789012"), "{row}");
    refused.assert_code(2);
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    assert_eq!(proxy.total(), 0, "nothing was sent");
    assert_eq!(public.assert_code(0).json()["public"], true);
    assert!(
        public.stderr.contains("could not check image block public access"),
        "{}",
        public.stderr
    );
    let private = private.assert_code(0).json();
    assert_eq!(
        (private["public"].clone(), private["accounts"].clone()),
        (json!(false), json!([ACCOUNT])),
        "explicit grants stay"
    );
    let org = org.assert_code(0).json();
    assert_eq!(org["organization_arns"], json!([ORG]));
    assert_eq!(org["organizational_unit_arns"], json!([OU]));
    let reset = reset.assert_code(0).json();
    assert_eq!(
        (
            &reset["public"],
            &reset["accounts"],
            &reset["organization_arns"],
            &reset["organizational_unit_arns"]
        ),
        (&json!(false), &json!([]), &json!([]), &json!([])),
        "moto lacks ResetImageAttribute: the fallback removed every grant"
    );
    assert_eq!(show(&env, &image), reset);
}

#[test]
fn changes_are_idempotent_and_several_images_give_an_array() {
    let env = TestEnv::new();
    let first = image(&env, "idem-1");
    let second = image(&env, "idem-2");

    for _ in 0..2 {
        env.amictl()
            .args(["permissions", "add", &first, &second, "--account", ACCOUNT])
            .run()
            .assert_code(0);
    }
    let removed = env
        .amictl()
        .args(["permissions", "remove", &first, "--account", ACCOUNT])
        .run();
    let again = env
        .amictl()
        .args(["permissions", "remove", &first, "--account", ACCOUNT])
        .run();
    let both = env
        .amictl()
        .args(["permissions", "show", &first, &second, "-o", "json"])
        .run();

    removed.assert_code(0);
    again.assert_code(0);
    let both = both.assert_code(0).json();
    assert_eq!(both.as_array().unwrap().len(), 2);
    assert_eq!(both[0]["accounts"], json!([]));
    assert_eq!(both[1]["accounts"], json!([ACCOUNT]));
}

#[test]
fn snapshots_flag_grants_and_revokes_create_volume_permission() {
    let env = TestEnv::new();
    let image = image(&env, "snap-share-1");
    let snapshot = env.snapshot_of(&image);

    env.amictl()
        .args(["permissions", "add", &image, "--account", ACCOUNT, "--snapshots"])
        .run()
        .assert_code(0);
    let granted = env.snapshot_volume_accounts(&snapshot);
    env.amictl()
        .args(["permissions", "reset", &image, "--snapshots"])
        .run()
        .assert_code(0);

    assert_eq!(granted, [ACCOUNT]);
    assert!(env.snapshot_volume_accounts(&snapshot).is_empty());
}

#[test]
fn a_public_snapshot_is_shown_and_reset_or_remove_takes_public_access_away() {
    let env = TestEnv::new();
    let reset_image = image(&env, "public-snap-1");
    let removed_image = image(&env, "public-snap-2");
    let (reset_snapshot, removed_snapshot) = (env.snapshot_of(&reset_image), env.snapshot_of(&removed_image));
    for snapshot in [&reset_snapshot, &removed_snapshot] {
        env.share_snapshot(snapshot, true, &[ACCOUNT]);
    }

    let shown = show(&env, &reset_image);
    let table = env.amictl().args(["permissions", "show", &reset_image]).run();
    env.amictl()
        .args(["permissions", "reset", &reset_image, "--snapshots"])
        .run()
        .assert_code(0);
    env.amictl()
        .args([
            "permissions",
            "remove",
            &removed_image,
            "--account",
            ACCOUNT,
            "--snapshots",
        ])
        .run()
        .assert_code(0);

    assert_eq!(
        shown["shared_snapshots"],
        json!([{"snapshot_id": reset_snapshot, "public": true, "accounts": [ACCOUNT]}])
    );
    assert!(
        table
            .assert_code(0)
            .stdout
            .contains(&format!("{reset_snapshot} public, {ACCOUNT}")),
        "{}",
        table.stdout
    );
    for snapshot in [&reset_snapshot, &removed_snapshot] {
        assert_eq!(
            env.snapshot_sharing(snapshot),
            (false, vec![]),
            "{snapshot} is private again"
        );
    }
    assert_eq!(show(&env, &reset_image)["shared_snapshots"], json!([]));
}

#[test]
fn dry_run_and_granting_the_owner_change_nothing() {
    let env = TestEnv::new();
    let image = image(&env, "dry-share-1");
    let proxy = Proxy::start(&env.endpoint);

    let dry = env
        .through(&proxy)
        .args([
            "permissions",
            "add",
            &image,
            "--account",
            ACCOUNT,
            "--dry-run",
            "-o",
            "json",
        ])
        .run();
    let owner = env
        .through(&proxy)
        .args(["permissions", "add", &image, "--account", "123456789012"])
        .run();

    assert_eq!(dry.assert_code(0).json()["accounts"], json!([]));
    assert!(dry.stderr.contains("nothing was changed"), "{}", dry.stderr);
    owner.assert_code(2);
    assert!(owner.stderr.contains("implicit permission"), "{}", owner.stderr);
    assert_eq!(
        proxy.count("ModifyImageAttribute"),
        1,
        "only the dry run's, with DryRun set"
    );
    assert_eq!(show(&env, &image)["accounts"], json!([]));
}

#[test]
fn bad_input_exits_2_before_any_request() {
    let image = "ami-0123456789abcdef0";
    let cases: &[(&[&str], &str)] = &[
        (&["permissions", "add", image, "--account", "1111"][..], "12 digits"),
        (
            &["permissions", "add", image, "--org", "o-abcdefghij"],
            "not an organization ARN",
        ),
        (
            &["permissions", "add", image, "--ou", ORG],
            "not an organizational unit ARN",
        ),
        (&["permissions", "remove", image], "nothing to remove"),
        (&["permissions", "public", image], "--yes"),
        (&["permissions", "show", "ami-1"], "not an image ID"),
        (&["permissions", "show"], "IMAGE_ID"),
    ];
    assert_refused_before_any_request(&[], cases);
}

#[test]
fn an_unknown_image_exits_1_naming_it_and_the_region() {
    let env = TestEnv::new();

    let run = env
        .amictl()
        .args(["permissions", "show", "ami-0123456789abcdef0"])
        .run();

    run.assert_code(1);
    assert!(
        run.stderr.contains("ami-0123456789abcdef0") && run.stderr.contains(&env.region),
        "{}",
        run.stderr
    );
    assert!(run.elapsed.as_secs() < 5, "no retried 500s: {:?}", run.elapsed);
}
