//! `amictl publish`: a new image to the launch templates that launch it.

use serde_json::Value;

use crate::support::proxy::Proxy;
use crate::support::{TestEnv, assert_refused_before_any_request, block_on};

/// The template's default version: its number, image and instance type, as EC2 describes it.
fn default_of(env: &TestEnv, template: &str) -> (i64, String, String) {
    let client = env.client();
    let template = template.to_owned();
    let output = block_on(async move {
        client
            .describe_launch_template_versions()
            .launch_template_name(template)
            .versions("$Default")
            .send()
            .await
    })
    .expect("DescribeLaunchTemplateVersions");
    let version = &output.launch_template_versions()[0];
    let data = version.launch_template_data().expect("launch template data");
    (
        version.version_number().unwrap_or_default(),
        data.image_id().unwrap_or_default().to_owned(),
        data.instance_type().map(|t| t.as_str().to_owned()).unwrap_or_default(),
    )
}

fn row<'a>(rows: &'a Value, template: &str) -> &'a Value {
    (rows.as_array().expect("an array").iter())
        .find(|r| r["launch_template"] == template)
        .unwrap_or_else(|| panic!("no row for {template}: {rows}"))
}

#[test]
fn publish_gives_each_template_a_new_default_version_once_and_cleanup_follows() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let old = env.create_image(&instance, "pub-1", &[]);
    let new = env.create_image(&instance, "pub-2", &[]);
    env.create_launch_template("pub-web", &old);
    let proxy = Proxy::start(&env.endpoint);
    let publish = |extra: &[&str]| {
        env.amictl()
            .env("AWS_ENDPOINT_URL", proxy.url())
            .args(["-o", "json", "publish", &new, "--launch-template", "pub-web"])
            .args(extra)
            .run()
    };

    let dry = publish(&["--dry-run"]).assert_code(0).json();
    assert!(
        proxy.mutations().is_empty(),
        "a dry run changes nothing: {:?}",
        proxy.mutations()
    );
    assert_eq!(row(&dry, "pub-web")["previous_image_id"], old.as_str());
    assert!(row(&dry, "pub-web")["version"].is_null());
    let published = publish(&[]).assert_code(0).json();
    let again = publish(&[]);

    let done = row(&published, "pub-web");
    assert_eq!(
        (done["changed"].clone(), done["version"].clone()),
        (true.into(), 2.into()),
        "{done}"
    );
    assert_eq!(done["default"], true);
    assert_eq!(
        default_of(&env, "pub-web"),
        (2, new.clone(), "t3.micro".to_owned()),
        "only the image changed"
    );
    assert_eq!(row(&again.assert_code(0).json(), "pub-web")["changed"], false);
    assert_eq!(
        proxy.count("CreateLaunchTemplateVersion"),
        1,
        "a re-run makes no version"
    );

    // The template launches the new image now: cleanup keeps it and lets the old one go.
    let plan = env.json_of(&["cleanup", "--name", "pub-*", "--dry-run"]);
    let action = |id: &str| {
        (plan["images"].as_array().unwrap().iter())
            .find(|i| i["image_id"] == id)
            .map(|i| i["action"].clone())
    };
    assert_eq!(action(&new), Some("keep".into()), "{plan}");
    assert_eq!(action(&old), Some("deregister".into()), "{plan}");
}

#[test]
fn without_default_a_template_gets_one_version_and_a_missing_one_fails_alone() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let old = env.create_image(&instance, "nodef-1", &[]);
    let new = env.create_image(&instance, "nodef-2", &[]);
    env.create_launch_template("nodef-api", &old);
    let publish = || {
        env.amictl()
            .args(["-o", "json", "publish", &new, "--no-default"])
            .args(["--launch-template", "nodef-api", "--launch-template", "nodef-gone"])
            .run()
    };

    let first = publish();
    let second = publish();

    first.assert_code(1);
    assert!(first.stderr.contains("nodef-gone"), "{}", first.stderr);
    let rows = first.json();
    assert_eq!(row(&rows, "nodef-api")["version"], 2);
    assert_eq!(row(&rows, "nodef-api")["default"], false);
    assert!(
        row(&rows, "nodef-gone")["error"]
            .as_str()
            .unwrap()
            .contains("not found")
    );
    assert_eq!(default_of(&env, "nodef-api").1, old, "the default stays");
    let rows = second.json();
    assert_eq!(row(&rows, "nodef-api")["version"], 2, "the same version: {rows}");
    assert_eq!(row(&rows, "nodef-api")["changed"], false);
}

#[test]
fn bad_publish_requests_are_refused_before_any_request() {
    assert_refused_before_any_request(
        &["publish", "ami-0123456789abcdef0"],
        &[
            (&[], "--launch-template"),
            (&["--launch-template", "x"], "not a launch template"),
            (&["--launch-template", "web template"], "not a launch template"),
        ],
    );
}
