//! `amictl publish`: a new image to the launch templates that launch it.

use serde_json::Value;

use crate::support::proxy::{Fault, Proxy};
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

fn row<'a>(rows: &'a Value, target: &str) -> &'a Value {
    (rows.as_array().expect("an array").iter())
        .find(|r| r["target"] == target)
        .unwrap_or_else(|| panic!("no row for {target}: {rows}"))
}

/// The row of a target in a region.
fn row_in<'a>(rows: &'a Value, region: &str, target: &str) -> &'a Value {
    (rows.as_array().expect("an array").iter())
        .find(|r| r["target"] == target && r["region"] == region)
        .unwrap_or_else(|| panic!("no row for {target} in {region}: {rows}"))
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
        env.through(&proxy)
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
            (&["--ssm-parameter", "golden/web"], "starts with /"),
            (&["--ssm-parameter", "/aws/service/x"], "reserved"),
            (
                &["--ssm-parameter", "/golden/web", "--label", "1st"],
                "not a parameter label",
            ),
            (&["--launch-template", "web", "--label", "prod"], "--ssm-parameter"),
            (&["--ssm-parameter", "/golden/web", "--no-default"], "--launch-template"),
            (
                &["--ssm-parameter", "/golden/web", "--regions", "nowhere"],
                "not an AWS region",
            ),
        ],
    );
}

/// The image `create` made in a region: itself in its own, else its copy there.
fn made_in(created: &Value, home: &str, region: &str) -> String {
    let id = if region == home {
        &created["image_id"]
    } else {
        &(created["copies"].as_array().expect("copies").iter())
            .find(|c| c["region"] == region)
            .unwrap_or_else(|| panic!("no copy in {region}: {created}"))["image_id"]
    };
    id.as_str().expect("an image ID").to_owned()
}

/// `cleanup --name golden-* --dry-run` over the regions: each image's action.
fn cleanup_actions(env: &TestEnv, regions: &str) -> std::collections::BTreeMap<String, String> {
    let plan = env.json_of(&["cleanup", "--regions", regions, "--name", "golden-*", "--dry-run"]);
    (plan["images"].as_array().expect("images").iter())
        .map(|i| {
            (
                i["image_id"].as_str().unwrap().to_owned(),
                i["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Three regions, each with a template `golden-web`; an image published by `create` to them
/// and to `/golden/web` (with its copies), and a newer one copied but not published yet.
struct Golden {
    env: TestEnv,
    home: String,
    all: String,
    old: Value,
    new: Value,
}

impl Golden {
    fn new() -> Golden {
        let env = TestEnv::on_its_own_server();
        let home = env.region.clone();
        let all = format!("{home},eu-west-1,us-west-2");
        for region in all.split(',') {
            env.elsewhere(region)
                .create_launch_template("golden-web", "ami-00000000000000000");
        }
        let instance = env.run_instance(None);
        let create = |name: &str, publish: &[&str]| {
            (env.amictl())
                .args(["-o", "json", "create", "--instance-id", &instance, "--name", name])
                .args(["--no-reboot", "--copy-to-regions", "eu-west-1,us-west-2"])
                .args(publish)
                .run()
                .assert_code(0)
                .json()
        };
        let old = create(
            "golden-1",
            &["--ssm-parameter", "/golden/web", "--launch-template", "golden-web"],
        );
        let new = create("golden-2", &["--wait"]);
        Golden {
            env,
            home,
            all,
            old,
            new,
        }
    }

    fn regions(&self) -> Vec<&str> {
        self.all.split(',').collect()
    }

    /// The old (`old`) or new image in a region.
    fn image(&self, old: bool, region: &str) -> String {
        made_in(if old { &self.old } else { &self.new }, &self.home, region)
    }
}

#[test]
fn each_region_publishes_its_own_copy_once_and_cleanup_lets_the_old_one_go_when_nothing_pins_it() {
    let golden = Golden::new();
    let (env, all) = (&golden.env, golden.all.as_str());
    // create published the image, and each copy in its region, once they were available.
    for region in golden.regions() {
        let (there, made) = (env.elsewhere(region), golden.image(true, region));
        assert_eq!(there.parameter("/golden/web"), Some((made.clone(), 1)), "{region}");
        assert_eq!(default_of(&there, "golden-web").1, made, "{region}");
    }
    assert_eq!(golden.old["published"].as_array().map(Vec::len), Some(2));
    let new_id = golden.image(false, &golden.home);
    // In eu-west-1 a template launches version 1 of the parameter: the old copy there.
    let pinned = env
        .elsewhere("eu-west-1")
        .create_launch_template("pinned-old", "resolve:ssm:/golden/web:1");

    let proxy = Proxy::start(&env.endpoint);
    let publish = |regions: &str, extra: &[&str]| {
        env.through(&proxy)
            .args(["-o", "json", "publish", &new_id, "--regions", regions])
            .args(["--ssm-parameter", "/golden/web", "--launch-template", "golden-web"])
            .args(extra)
            .run()
    };
    let dry = publish(&format!("{all},ca-central-1"), &["--dry-run"]);
    assert!(
        proxy.mutations().is_empty(),
        "a dry run changes nothing: {:?}",
        proxy.mutations()
    );
    let published = publish(all, &[]).assert_code(0).json();
    proxy.reset();
    let again = publish(all, &[]).assert_code(0).json();
    let rerun_mutations = proxy.mutations();

    // The dry run: a region without a copy fails alone; the pinned template stays.
    dry.assert_code(1);
    let dry = dry.json();
    let nowhere = row_in(&dry, "ca-central-1", "/golden/web")["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(nowhere.contains("no copy"), "{nowhere}");
    let eu = row_in(&dry, "eu-west-1", "/golden/web");
    assert_eq!(eu["previous_image_id"], golden.image(true, "eu-west-1").as_str());
    assert_eq!(eu["planned"], "write the image as version 2");
    assert_eq!(
        row_in(&dry, "eu-west-1", "golden-web")["planned"],
        "make version 3 from version 2 with only the image changed, the default"
    );
    let stays = eu["followers"]["stay"].to_string();
    assert!(stays.contains(&pinned) && stays.contains("/golden/web:1"), "{eu}");
    // Each region names its own copy, in a new parameter version and template default version.
    for region in golden.regions() {
        let (there, made) = (env.elsewhere(region), golden.image(false, region));
        assert_eq!(there.parameter("/golden/web"), Some((made.clone(), 2)), "{region}");
        assert_eq!(
            default_of(&there, "golden-web"),
            (3, made.clone(), "t3.micro".to_owned())
        );
        assert_eq!(row_in(&published, region, "golden-web")["changed"], true);
        assert_eq!(row_in(&again, region, "/golden/web")["changed"], false, "{again}");
    }
    assert!(
        rerun_mutations.is_empty(),
        "a re-run changes nothing: {rerun_mutations:?}"
    );

    cleanup_lets_the_old_image_go_once_nothing_pins_it(&golden, pinned);
}

#[test]
fn a_label_moves_to_the_new_version_and_a_parameter_of_another_data_type_is_left_untouched() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let old = env.create_image(&instance, "lab-1", &[]);
    let new = env.create_image(&instance, "lab-2", &[]);
    let ssm = env.ssm();
    block_on(async move {
        (ssm.put_parameter().name("/lab/text").value("hello"))
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .send()
            .await
    })
    .expect("PutParameter");
    let proxy = Proxy::start(&env.endpoint);
    let publish = |image: &str, args: &[&str]| {
        env.through(&proxy)
            .args(["-o", "json", "publish", image, "--ssm-parameter", "/lab/web"])
            .args(args)
            .run()
    };

    publish(&old, &["--label", "prod"]).assert_code(0);
    proxy.reset();
    let moved = publish(&new, &["--label", "prod", "--ssm-parameter", "/lab/text"]);
    let puts = proxy.count("PutParameter");
    let relabelled = publish(&new, &["--label", "stable"]).assert_code(0).json();
    let again = publish(&new, &["--label", "stable"]).assert_code(0).json();

    moved.assert_code(1);
    assert!(
        moved.stderr.contains("/lab/text") && moved.stderr.contains("data type text"),
        "{}",
        moved.stderr
    );
    assert_eq!(puts, 1, "the text parameter got no PutParameter");
    assert_eq!(env.parameter("/lab/text"), Some(("hello".to_owned(), 1)));
    assert_eq!(
        env.parameter("/lab/web:prod"),
        Some((new.clone(), 2)),
        "the label moved"
    );
    assert_eq!(env.parameter("/lab/web:stable"), Some((new.clone(), 2)));
    let row = row(&relabelled, "/lab/web");
    assert_eq!(
        (row["changed"].clone(), row["version"].clone()),
        (true.into(), 2.into()),
        "{row}"
    );
    assert_eq!(again[0]["changed"], false, "{again}");
    assert_eq!(proxy.count("PutParameter"), 1, "labelling writes no value");
}

/// cleanup keeps what is published; the old image too where version 1 of the parameter still
/// launches it, until nothing does.
fn cleanup_lets_the_old_image_go_once_nothing_pins_it(golden: &Golden, pinned: String) {
    let (env, all) = (&golden.env, golden.all.as_str());
    let actions = cleanup_actions(env, all);
    for region in golden.regions() {
        let (old_there, new_there) = (golden.image(true, region), golden.image(false, region));
        assert_eq!(actions[&new_there], "keep", "{region}");
        let expected = if region == "eu-west-1" { "keep" } else { "deregister" };
        assert_eq!(actions[&old_there], expected, "{region}: {actions:?}");
    }
    let client = env.elsewhere("eu-west-1").client();
    block_on(async move { client.delete_launch_template().launch_template_id(pinned).send().await })
        .expect("DeleteLaunchTemplate");
    let actions = cleanup_actions(env, all);
    assert_eq!(
        actions[&golden.image(true, "eu-west-1")],
        "deregister",
        "nothing pins it now"
    );
}

#[test]
fn a_publish_that_fails_halfway_is_finished_by_the_next_run_without_a_second_version() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let old = env.create_image(&instance, "half-1", &[]);
    let new = env.create_image(&instance, "half-2", &[]);
    env.create_launch_template("half-web", &old);
    let proxy = Proxy::start(&env.endpoint);
    // The new version is made, then making it the default is refused; the value is written,
    // then the label is refused.
    proxy.fail("ModifyLaunchTemplate", Fault::first(1, Fault::unauthorized()));
    proxy.fail("LabelParameterVersion", Fault::first(1, Fault::unauthorized()));
    let publish = || {
        env.through(&proxy)
            .args(["-o", "json", "publish", &new, "--launch-template", "half-web"])
            .args(["--ssm-parameter", "/half/web", "--label", "prod"])
            .run()
    };

    let first = publish();
    let second = publish();

    first.assert_code(1);
    let rows = first.json();
    let template = row(&rows, "half-web")["error"].as_str().unwrap_or_default().to_owned();
    assert!(
        template.contains("version 2 was made, but not made the default"),
        "{template}"
    );
    let parameter = row(&rows, "/half/web")["error"].as_str().unwrap_or_default().to_owned();
    assert!(parameter.contains("version 1 names the image"), "{parameter}");
    second.assert_code(0);
    assert_eq!(default_of(&env, "half-web"), (2, new.clone(), "t3.micro".to_owned()));
    assert_eq!(env.parameter("/half/web:prod"), Some((new.clone(), 1)));
    assert_eq!(proxy.count("CreateLaunchTemplateVersion"), 1, "no second version");
    assert_eq!(proxy.count("PutParameter"), 1, "no second value");
}
