//! The usage map against moto: each consumer that can still launch an image, built the way a
//! real account has it, keeps that image and its snapshot from `cleanup --yes` and
//! `deregister --delete-snapshots`, naming the consumer, while a control image beside it goes.

use serde_json::Value;

use crate::support::proxy::Proxy;
use crate::support::{TestEnv, plan_entry as entry};

const ACCOUNT: &str = "111122223333";

/// An account with images named `NAME-…`: the one something launches, and a control image
/// nothing uses.
struct Scene {
    env: TestEnv,
    instance: String,
    consumed: String,
    control: String,
}

impl Scene {
    fn new(name: &str) -> Scene {
        let env = TestEnv::new();
        let instance = env.run_instance(None);
        let consumed = env.create_image(&instance, &format!("{name}-consumed"), &[]);
        let control = env.create_image(&instance, &format!("{name}-control"), &[]);
        Scene {
            env,
            instance,
            consumed,
            control,
        }
    }

    /// Another image, outside the `NAME-*` selection (e.g. a template's current version).
    fn other_image(&self, name: &str) -> String {
        self.env.create_image(&self.instance, name, &[])
    }

    /// `cleanup --name 'NAME-*' --yes` keeps the consumed image and its snapshot, naming
    /// `why`, and removes the control image with its snapshot; `deregister --delete-snapshots`
    /// then refuses the consumed image the same way. Returns the cleanup's entry for it.
    fn assert_kept(&self, name: &str, why: &[&str]) -> Value {
        let env = &self.env;
        let consumed_snapshot = env.snapshot_of(&self.consumed);
        let control_snapshot = env.snapshot_of(&self.control);

        let cleanup = env
            .amictl()
            .args(["cleanup", "--name", &format!("{name}-*"), "--yes", "-o", "json"])
            .run();
        let report = cleanup.assert_code(0).json();
        let kept = entry(&report, &self.consumed).clone();
        assert_eq!(kept["action"], "keep", "{report}");
        let reason = kept["reason"].as_str().unwrap();
        for text in why {
            assert!(reason.contains(text), "the reason names {text:?}: {reason}");
        }
        assert_eq!(entry(&report, &self.control)["result"]["status"], "done", "{report}");
        assert!(
            env.image_ids().contains(&self.consumed),
            "the consumed image is still there"
        );
        let snapshots = env.snapshot_ids();
        assert!(snapshots.contains(&consumed_snapshot), "and its snapshot");
        assert!(!env.image_ids().contains(&self.control), "the control image is gone");
        assert!(!snapshots.contains(&control_snapshot), "with its snapshot");

        let refused = env
            .amictl()
            .args(["deregister", &self.consumed, "--delete-snapshots", "-o", "json"])
            .run();
        let report = refused.assert_code(1).json();
        let reason = report["images"][0]["reason"].as_str().unwrap();
        for text in why {
            assert!(reason.contains(text), "deregister names {text:?}: {reason}");
        }
        assert!(env.image_ids().contains(&self.consumed));
        assert!(env.snapshot_ids().contains(&consumed_snapshot));
        kept
    }
}

fn kinds(entry: &Value) -> Vec<&str> {
    entry["used_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["kind"].as_str().unwrap())
        .collect()
}

#[test]
fn an_auto_scaling_group_pinned_to_an_old_template_version_keeps_its_image() {
    let scene = Scene::new("pinned");
    let env = &scene.env;
    let template = env.create_launch_template("web", &scene.consumed);
    // Eleven versions after it: DescribeImageReferences looks at a template's 10 newest
    // versions only (its default version-depth), so the pin is amictl's own scan's to find.
    let current = scene.other_image("web-current");
    for _ in 0..11 {
        env.new_default_template_version(&template, &current);
    }
    let subnet = env.subnet();
    let groups = env.autoscaling();
    let spec = aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
        .launch_template_id(&template)
        .version("1")
        .build();
    crate::support::block_on(async {
        groups
            .create_auto_scaling_group()
            .auto_scaling_group_name("web-asg")
            .launch_template(spec)
            .min_size(0)
            .max_size(1)
            .desired_capacity(0)
            .vpc_zone_identifier(subnet)
            .send()
            .await
            .expect("CreateAutoScalingGroup");
    });

    let entry = scene.assert_kept(
        "pinned",
        &[&format!(
            "Auto Scaling group web-asg through launch template web ({template}) version 1"
        )],
    );
    assert_eq!(
        kinds(&entry),
        ["auto_scaling_group"],
        "version 1 is no longer $Latest nor $Default"
    );
}

#[test]
fn a_mixed_instances_override_pinned_to_its_own_template_keeps_its_image() {
    let scene = Scene::new("mixed");
    let env = &scene.env;
    let main = env.create_launch_template("main", &scene.other_image("main-current"));
    let other = env.create_launch_template("other", &scene.consumed);
    env.new_default_template_version(&other, &scene.other_image("other-current"));
    let subnet = env.subnet();
    let groups = env.autoscaling();
    crate::support::block_on(async {
        use aws_sdk_autoscaling::types::{
            LaunchTemplate, LaunchTemplateOverrides, LaunchTemplateSpecification, MixedInstancesPolicy,
        };
        let policy = MixedInstancesPolicy::builder()
            .launch_template(
                LaunchTemplate::builder()
                    .launch_template_specification(
                        LaunchTemplateSpecification::builder()
                            .launch_template_id(&main)
                            .version("$Latest")
                            .build(),
                    )
                    .overrides(
                        LaunchTemplateOverrides::builder()
                            .instance_type("t3.large")
                            .launch_template_specification(
                                LaunchTemplateSpecification::builder()
                                    .launch_template_id(&other)
                                    .version("1")
                                    .build(),
                            )
                            .build(),
                    )
                    .build(),
            )
            .build();
        groups
            .create_auto_scaling_group()
            .auto_scaling_group_name("mixed-asg")
            .mixed_instances_policy(policy)
            .min_size(0)
            .max_size(1)
            .desired_capacity(0)
            .vpc_zone_identifier(subnet)
            .send()
            .await
            .expect("CreateAutoScalingGroup");
    });

    scene.assert_kept(
        "mixed",
        &[&format!(
            "Auto Scaling group mixed-asg through launch template other ({other}) version 1"
        )],
    );
}

#[test]
fn an_ec2_fleet_on_a_numbered_template_version_keeps_its_images() {
    let scene = Scene::new("fleet");
    let env = &scene.env;
    let template = env.create_launch_template("fleet", &scene.consumed);
    env.new_default_template_version(&template, &scene.other_image("fleet-current"));
    // An image named in the fleet's override, inside the selection too.
    let overridden = env.create_image(&scene.instance, "fleet-override", &[]);
    let client = env.client();
    let fleet = crate::support::block_on(async {
        use aws_sdk_ec2::types::{
            DefaultTargetCapacityType, FleetLaunchTemplateConfigRequest, FleetLaunchTemplateOverridesRequest,
            FleetLaunchTemplateSpecificationRequest, FleetType, InstanceType, TargetCapacitySpecificationRequest,
        };
        client
            .create_fleet()
            .r#type(FleetType::Maintain)
            .launch_template_configs(
                FleetLaunchTemplateConfigRequest::builder()
                    .launch_template_specification(
                        FleetLaunchTemplateSpecificationRequest::builder()
                            .launch_template_id(&template)
                            .version("1")
                            .build(),
                    )
                    .overrides(
                        FleetLaunchTemplateOverridesRequest::builder()
                            .instance_type(InstanceType::T3Micro)
                            .image_id(&overridden)
                            .build(),
                    )
                    .build(),
            )
            .target_capacity_specification(
                TargetCapacitySpecificationRequest::builder()
                    .total_target_capacity(0)
                    .default_target_capacity_type(DefaultTargetCapacityType::OnDemand)
                    .build(),
            )
            .send()
            .await
            .expect("CreateFleet")
            .fleet_id()
            .expect("a fleet ID")
            .to_owned()
    });

    let entry = scene.assert_kept(
        "fleet",
        &[&format!(
            "EC2 Fleet {fleet} through launch template fleet ({template}) version 1"
        )],
    );
    assert_eq!(kinds(&entry), ["fleet"]);
    let report = env.amictl().args(["deregister", &overridden, "-o", "json"]).run();
    let reason = report.assert_code(1).json()["images"][0]["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(reason.contains(&format!("EC2 Fleet {fleet}")), "{reason}");
}

#[test]
fn a_spot_fleet_request_whose_instance_was_interrupted_keeps_its_image() {
    let scene = Scene::new("spot");
    let env = &scene.env;
    let client = env.client();
    let consumed = scene.consumed.clone();
    let request = crate::support::block_on(async {
        use aws_sdk_ec2::types::{
            AllocationStrategy, InstanceType, SpotFleetLaunchSpecification, SpotFleetRequestConfigData,
        };
        client
            .request_spot_fleet()
            .spot_fleet_request_config(
                SpotFleetRequestConfigData::builder()
                    .iam_fleet_role("arn:aws:iam::123456789012:role/spot-fleet")
                    .allocation_strategy(AllocationStrategy::LowestPrice)
                    .target_capacity(1)
                    .launch_specifications(
                        SpotFleetLaunchSpecification::builder()
                            .image_id(consumed)
                            .instance_type(InstanceType::T3Micro)
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .expect("RequestSpotFleet")
            .spot_fleet_request_id()
            .expect("a request ID")
            .to_owned()
    });
    // The spot instance is interrupted: only the request still names the image.
    for instance in env.instances_of(&scene.consumed) {
        env.terminate(&instance);
    }
    assert!(env.instances_of(&scene.consumed).is_empty());

    let entry = scene.assert_kept("spot", &[&format!("Spot Fleet request {request}")]);
    assert!(kinds(&entry).contains(&"spot_fleet_request"), "{entry}");
}

#[test]
fn a_template_resolving_its_image_through_an_ssm_parameter_keeps_it() {
    let scene = Scene::new("golden");
    let env = &scene.env;
    env.put_image_parameter("/golden/web", &scene.consumed);
    let template = env.create_launch_template("golden-web", "resolve:ssm:/golden/web");

    let entry = scene.assert_kept(
        "golden",
        &[
            &format!("launch template golden-web ({template}) version 1 through SSM parameter /golden/web"),
            "SSM parameter /golden/web",
        ],
    );
    assert_eq!(kinds(&entry), ["launch_template", "ssm_parameter"]);
}

#[test]
fn a_parameter_on_a_later_page_of_the_ssm_scan_keeps_its_image() {
    let scene = Scene::new("paged");
    let env = &scene.env;
    // 55 other parameters first: DescribeParameters answers 50 a page at most, so the one
    // that names the image is on the second page, asked with the first page's token.
    let ssm = env.ssm();
    crate::support::block_on(async move {
        for n in 0..55 {
            (ssm.put_parameter().name(format!("/paged/text-{n:02}")).value("hello"))
                .r#type(aws_sdk_ssm::types::ParameterType::String)
                .send()
                .await
                .expect("PutParameter");
        }
    });
    env.put_image_parameter("/paged/web", &scene.consumed);

    let entry = scene.assert_kept("paged", &["SSM parameter /paged/web"]);
    assert_eq!(kinds(&entry), ["ssm_parameter"]);
}

#[test]
fn images_other_accounts_may_launch_are_kept_unless_included() {
    let scene = Scene::new("shared");
    let env = &scene.env;
    env.share_image(&scene.consumed, ACCOUNT);
    let public = env.create_image(&scene.instance, "shared-public", &[]);
    env.make_public(&public);

    let entry = scene.assert_kept("shared", &[&format!("shared with {ACCOUNT}")]);
    assert_eq!(entry["shared_with"], serde_json::json!([ACCOUNT]));
    let public_refused = env.amictl().args(["deregister", &public, "-o", "json"]).run();
    let public_refused = public_refused.assert_code(1).json();
    assert!(
        public_refused["images"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("public: any AWS account may launch it")
    );

    let included = env
        .amictl()
        .args([
            "cleanup",
            "--name",
            "shared-*",
            "--include-shared",
            "--yes",
            "-o",
            "json",
        ])
        .run();

    included.assert_code(0);
    assert!(env.image_ids().is_empty(), "--include-shared removes them");
}

#[test]
fn a_parameter_that_cannot_be_read_keeps_every_candidate_and_exits_1() {
    let scene = Scene::new("unread");
    let env = &scene.env;
    env.create_launch_template("broken", "resolve:ssm:/golden/missing");
    let before = env.image_ids();

    let run = env
        .amictl()
        .args(["cleanup", "--name", "unread-*", "--yes", "-o", "json"])
        .run();

    let report = run.assert_code(1).json();
    assert!(
        report["images"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["action"] == "keep"),
        "{report}"
    );
    assert!(
        report["unchecked"][0]
            .as_str()
            .unwrap()
            .starts_with("SSM parameter /golden/missing, which launch template broken"),
        "{report}"
    );
    assert!(
        run.stderr.contains("could not check what launches them"),
        "{}",
        run.stderr
    );
    assert_eq!(env.image_ids(), before, "nothing was removed");
}

#[test]
fn the_scans_stay_a_few_pages_for_500_candidate_images() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let images: Vec<String> = (0..500)
        .map(|n| env.create_image(&instance, &format!("bulk-{n:03}"), &[]))
        .collect();
    env.create_launch_template("bulk", &images[0]);
    let proxy = Proxy::start(&env.endpoint);

    let run = env
        .through(&proxy)
        .args(["cleanup", "--name", "bulk-*", "--dry-run", "-o", "json"])
        .run();

    let plan = run.assert_code(0).json();
    assert_eq!(
        plan["summary"]["images_deregistered"], 499,
        "the template's image stays"
    );
    let counts = proxy.counts();
    for (action, most) in [
        ("DescribeImages", 1),
        ("DescribeInstances", 3), // 200 images a filter
        ("DescribeLaunchTemplateVersions", 1),
        ("DescribeLaunchConfigurations", 1),
        ("DescribeAutoScalingGroups", 1),
        ("DescribeFleets", 1),
        ("DescribeSpotFleetRequests", 1),
        ("DescribeSpotInstanceRequests", 1),
        ("DescribeParameters", 2), // moto refuses the data-type filter: asked again without
        ("DescribeImageReferences", 1), // moto lacks it: one try, then the scans answer
    ] {
        let sent = counts.get(action).copied().unwrap_or(0);
        assert!(
            (1..=most).contains(&sent),
            "{action}: {sent} requests, at most {most}: {counts:?}"
        );
    }
    assert_eq!(
        counts.get("DescribeImageAttribute").copied(),
        Some(500),
        "launch permissions: one read per candidate (EC2 has no batched read), never more"
    );
    assert_eq!(
        counts.get("DescribeSnapshotAttribute").copied(),
        Some(500),
        "create-volume permissions: one read per snapshot that may go, never more"
    );
    let known: usize = counts
        .iter()
        .filter(|(action, _)| !matches!(action.as_str(), "DescribeImageAttribute" | "DescribeSnapshotAttribute"))
        .map(|(_, n)| n)
        .sum();
    assert!(known <= 15, "{counts:?}");
    assert!(
        run.stderr.contains("DescribeImageReferences"),
        "said once: {}",
        run.stderr
    );
}

#[test]
fn a_scan_the_caller_may_not_make_stops_the_run_before_any_change() {
    let scene = Scene::new("denied");
    let env = &scene.env;
    let before = env.image_ids();
    let denied = crate::support::proxy::Misbehaviour::Error {
        status: 400,
        code: "AccessDeniedException".to_owned(),
        message: "not authorized to perform ssm:DescribeParameters".to_owned(),
    };

    let mut runs = Vec::new();
    for (action, fault, permission) in [
        (
            "DescribeFleets",
            crate::support::proxy::Fault::unauthorized(),
            "ec2:DescribeFleets",
        ),
        ("DescribeParameters", denied, "ssm:DescribeParameters"),
    ] {
        let proxy = Proxy::start(&env.endpoint);
        proxy.fail(action, crate::support::proxy::Fault::always(fault));
        let run = env
            .through(&proxy)
            .args(["cleanup", "--name", "denied-*", "--yes"])
            .run();
        runs.push((run, permission, proxy.mutations()));
    }

    for (run, permission, mutations) in runs {
        run.assert_code(1);
        assert!(run.stderr.contains(permission), "names {permission}: {}", run.stderr);
        assert!(mutations.is_empty(), "nothing was changed: {mutations:?}");
    }
    assert_eq!(env.image_ids(), before);
}

/// A scan whose endpoint answers a page with the token it was asked with can't be read past
/// it: the run stops before any change (it neither stops reading as if the scan were whole,
/// nor asks for the same page forever). DescribeInstances and the launch templates' scan.
#[test]
fn a_scan_that_repeats_its_page_token_stops_the_run_before_any_change() {
    let scene = Scene::new("repeated");
    let env = &scene.env;
    let before = env.image_ids();

    for action in ["DescribeInstances", "DescribeLaunchTemplateVersions"] {
        let proxy = Proxy::start(&env.endpoint);
        proxy.fail(
            action,
            crate::support::proxy::Fault::always(crate::support::proxy::Misbehaviour::RepeatsItsToken),
        );
        let run = env
            .through(&proxy)
            .args(["cleanup", "--name", "repeated-*", "--yes"])
            .run();

        run.assert_code(1);
        assert!(
            run.stderr.contains(action) && run.stderr.contains("RepeatedNextToken"),
            "names {action} and why: {}",
            run.stderr
        );
        assert!(
            proxy.mutations().is_empty(),
            "nothing was changed: {:?}",
            proxy.mutations()
        );
        assert!(proxy.count(action) <= 4, "not read forever: {:?}", proxy.counts());
    }
    assert_eq!(env.image_ids(), before);
}

/// Snapshots have consumers too: a launch template version or launch configuration whose
/// block device mapping creates a volume from an image's snapshot, and accounts the snapshot
/// is shared with (or everyone). Such a snapshot stays when its image goes, in a cleanup, in
/// `deregister --delete-snapshots` and as an orphan, naming why.
#[test]
fn a_snapshot_something_else_needs_stays_when_its_image_goes() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let template_image = env.create_image(&instance, "snapcons-template", &[]);
    let mapped = env.create_image(&instance, "snapcons-mapped", &[]);
    let configured = env.create_image(&instance, "snapcons-configured", &[]);
    let shared = env.create_image(&instance, "snapcons-shared", &[]);
    let control = env.create_image(&instance, "snapcons-control", &[]);
    let snapshot = |image: &str| env.snapshot_of(image);
    let (mapped_snap, configured_snap, shared_snap, control_snap) = (
        snapshot(&mapped),
        snapshot(&configured),
        snapshot(&shared),
        snapshot(&control),
    );
    env.create_launch_template_with_snapshot("data-volume", &template_image, &mapped_snap);
    env.create_launch_configuration_with_snapshot("data-lc", &template_image, &configured_snap);
    env.share_snapshot(&shared_snap, false, &[ACCOUNT]);

    let report = env.json_of(&["cleanup", &mapped, &configured, &shared, &control, "--yes"]);

    for (image, why) in [
        (&mapped, "launch template data-volume"),
        (&configured, "launch configuration data-lc"),
        (&shared, "shared with 111122223333"),
    ] {
        let entry = entry(&report, image);
        assert_eq!(entry["result"]["status"], "done", "the image goes: {entry}");
        let kept = &entry["snapshots"][0];
        assert_eq!(kept["action"], "keep", "{entry}");
        assert!(kept["reason"].as_str().unwrap().contains(why), "{why}: {kept}");
    }
    assert_eq!(entry(&report, &control)["snapshots"][0]["result"]["status"], "done");
    let left = env.snapshot_ids();
    for kept in [&mapped_snap, &configured_snap, &shared_snap] {
        assert!(left.contains(kept), "{kept} stays");
    }
    assert!(!left.contains(&control_snap));

    // Now orphans: still kept for the same reasons, until the user says otherwise.
    let orphans = env.json_of(&["cleanup", "--orphans", "--orphans-older-than", "0s", "--yes"]);
    let listed = orphans["orphan_snapshots"].as_array().unwrap();
    assert_eq!(listed.len(), 3, "{orphans}");
    assert!(listed.iter().all(|s| s["action"] == "keep"), "{orphans}");
    let forced = env.json_of(&[
        "cleanup",
        "--orphans",
        "--orphans-older-than",
        "0s",
        "--allow-in-use",
        "--include-shared",
        "--yes",
    ]);
    assert_eq!(forced["summary"]["snapshots_deleted"], 3, "{forced}");
}

#[test]
fn deregister_delete_snapshots_keeps_a_snapshot_a_template_maps() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let template_image = env.create_image(&instance, "dsnap-template", &[]);
    let mapped = env.create_image(&instance, "dsnap-mapped", &[]);
    let mapped_snap = env.snapshot_of(&mapped);
    env.create_launch_template_with_snapshot("dsnap-volume", &template_image, &mapped_snap);

    let report = env
        .amictl()
        .args(["deregister", &mapped, "--delete-snapshots", "-o", "json"])
        .run()
        .assert_code(0)
        .json();

    assert_eq!(report["images"][0]["result"]["status"], "done");
    assert_eq!(report["images"][0]["snapshots"][0]["action"], "keep", "{report}");
    assert!(env.snapshot_ids().contains(&mapped_snap));
}
