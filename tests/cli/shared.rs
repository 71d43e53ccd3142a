//! Shared images: `--include-shared=unused` removes one only where no other account uses it,
//! by EC2's image usage reports (modelled in the test server from the API reference: a report
//! is pending for a moment, then counts the other accounts' instances and launch templates).

use serde_json::Value;

use crate::support::proxy::{Fault, Misbehaviour, Proxy};
use crate::support::{TestEnv, assert_refused_before_any_request, plan_entry};

/// An account other than the test's, whose instances moto lets name any image.
const USER: &str = "111111111111";
const IDLE: &str = "222222222222";

/// Three images a few days old: one shared with two accounts, one of which runs an instance
/// from it; one shared with an account that runs nothing; one public.
struct Shared {
    env: TestEnv,
    used: String,
    unused: String,
    public: String,
}

impl Shared {
    fn new() -> Shared {
        let env = TestEnv::new();
        let instance = env.run_instance(None);
        let [used, unused, public] = ["sh-used", "sh-unused", "sh-public"].map(|name| {
            let image = env.create_image(&instance, name, &[]);
            env.age_image(&image, 3);
            image
        });
        env.share_image(&used, USER);
        env.share_image(&used, IDLE);
        env.share_image(&unused, IDLE);
        env.make_public(&public);
        env.as_role(&format!("arn:aws:iam::{USER}:role/app"))
            .run_instance_from(&used);
        Shared {
            env,
            used,
            unused,
            public,
        }
    }
}

fn reason(plan: &Value, image: &str) -> String {
    plan_entry(plan, image)["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn unused_removes_only_the_shared_image_no_other_account_uses_and_names_who_keeps_the_other() {
    let shared = Shared::new();
    let env = &shared.env;
    let proxy = Proxy::start(&env.endpoint);
    let cleanup = |extra: &[&str]| {
        env.through(&proxy)
            .args(["cleanup", "--name", "sh-*", "--include-shared=unused", "-o", "json"])
            .args(extra)
            .run()
    };

    let planned = cleanup(&["--dry-run"]).assert_code(0).json();
    let made = proxy.count("CreateImageUsageReport");
    let done = cleanup(&["--yes"]).assert_code(0).json();

    assert_eq!(
        plan_entry(&planned, &shared.unused)["action"],
        "deregister",
        "{planned}"
    );
    assert!(reason(&planned, &shared.unused).contains("no other account uses it"));
    assert_eq!(plan_entry(&planned, &shared.used)["action"], "keep");
    let kept = reason(&planned, &shared.used);
    assert!(kept.contains(&format!("account {USER} (1 instance)")), "{kept}");
    let users = kept.split("used by").nth(1).unwrap_or_default();
    assert!(
        !users.contains(IDLE),
        "an account that runs nothing is not named: {kept}"
    );
    assert_eq!(plan_entry(&planned, &shared.public)["action"], "keep");
    assert!(reason(&planned, &shared.public).contains("never removes a public image"));
    assert_eq!(
        made, 2,
        "one report per image shared with accounts (none for the public one)"
    );
    assert_eq!(
        proxy.count("CreateImageUsageReport"),
        2,
        "the reports of the dry run were fresh, and reused"
    );
    assert_eq!(plan_entry(&done, &shared.unused)["action"], "deregister");
    let left = env.image_ids();
    assert!(!left.contains(&shared.unused), "{left:?}");
    assert!(left.contains(&shared.used) && left.contains(&shared.public), "{left:?}");
}

#[test]
fn a_report_not_ready_within_the_bound_keeps_the_image_unchecked_and_a_later_run_reuses_it() {
    let env = TestEnv::new();
    let image = env.create_image(&env.run_instance(None), "sh-slow", &[]);
    env.age_image(&image, 3);
    env.share_image(&image, IDLE);
    env.tag(&image, "amictl-test:report-seconds", "3600");
    let proxy = Proxy::start(&env.endpoint);
    let deregister = || {
        env.through(&proxy)
            .args([
                "deregister",
                &image,
                "--include-shared=unused",
                "--report-timeout",
                "1s",
            ])
            .args(["-o", "json"])
            .run()
    };

    let first = deregister();
    let second = deregister();

    first.assert_code(1);
    let plan = first.json();
    assert_eq!(plan_entry(&plan, &image)["action"], "keep");
    assert!(reason(&plan, &image).contains("not available within 1s"), "{plan}");
    assert!(first.stderr.contains("not deregistered"), "{}", first.stderr);
    second.assert_code(1);
    assert_eq!(proxy.count("CreateImageUsageReport"), 1, "the pending report is reused");
    assert!(env.image_ids().contains(&image));
}

#[test]
fn include_shared_takes_unused_only_with_an_equals_sign() {
    assert_refused_before_any_request(
        &["cleanup", "--all"],
        &[
            (&["--include-shared=some"], "--include-shared=unused"),
            (&["--max-report-age", "2d"], "--include-shared"),
        ],
    );
    assert_refused_before_any_request(
        &["usage", "ami-0123456789abcdef0"],
        &[
            (
                &["--regions", "us-east-1,eu-west-1"],
                "--regions and --all-regions don't apply",
            ),
            (&["--no-report", "--report-timeout", "1m"], "--report-timeout"),
            (&["--max-report-age", "soon"], "--max-report-age"),
        ],
    );
    assert_refused_before_any_request(
        &["deregister"],
        &[(
            &["--include-shared", "unused", "ami-0123456789abcdef0"],
            "did you mean --include-shared=unused",
        )],
    );
}

#[test]
fn usage_shows_the_report_and_each_member_accounts_own_consumers_and_an_unreached_one() {
    let shared = Shared::new();
    let env = &shared.env;
    let instance = env
        .as_role(&format!("arn:aws:iam::{USER}:role/app"))
        .instances_of(&shared.used)
        .pop()
        .expect("the user's instance");
    let proxy = Proxy::start(&env.endpoint);
    proxy.fail_matching("AssumeRole", "333333333333", Fault::always(Fault::unauthorized()));

    let run = env
        .through(&proxy)
        .args(["usage", &shared.used, &shared.unused, "-o", "json"])
        .args([
            "--accounts",
            &format!("{USER},{IDLE},333333333333"),
            "--role-name",
            "reader",
        ])
        .run();

    run.assert_code(1);
    assert!(
        run.stderr.contains("333333333333"),
        "the unreached account is named: {}",
        run.stderr
    );
    let usage = run.json();
    let image = |id: &str| {
        (usage["images"].as_array().unwrap().iter())
            .find(|i| i["image_id"] == id)
            .unwrap_or_else(|| panic!("{id}: {usage}"))
            .clone()
    };
    let used = image(&shared.used);
    let entries = &used["report"]["entries"];
    assert_eq!(entries[0]["account_id"], USER, "{used}");
    assert_eq!(entries[0]["usage_count"], 1);
    let member = (used["accounts"].as_array().unwrap().iter())
        .find(|a| a["account_id"] == USER)
        .expect("the user's account");
    assert_eq!(member["used_by"][0]["id"], instance.as_str(), "{member}");
    assert_eq!(image(&shared.unused)["report"]["entries"], serde_json::json!([]));
    let refused = (used["accounts"].as_array().unwrap().iter())
        .find(|a| a["account_id"] == "333333333333")
        .expect("the refused account, listed");
    assert!(
        refused["error"].is_string(),
        "its usage is unknown, and said so: {refused}"
    );
}

#[test]
fn in_a_run_over_the_organization_each_members_own_scan_is_the_answer_and_a_refused_one_keeps_its_images() {
    let env = TestEnv::on_its_own_server();
    let members = env.organization(&["app", "idle", "locked"]);
    let [app, idle, locked] = [0, 1, 2].map(|i| members[i].0.clone());
    let instance = env.run_instance(None);
    let [used, unused, locked_image] =
        ["org-used", "org-unused", "org-locked"].map(|name| env.create_image(&instance, name, &[]));
    for image in [&used, &unused] {
        env.share_image(image, &app);
        env.share_image(image, &idle);
    }
    env.share_image(&locked_image, &locked);
    let running = env
        .as_role(&format!("arn:aws:iam::{app}:role/app"))
        .run_instance_from(&used);
    let proxy = Proxy::start(&env.endpoint);
    proxy.fail_matching("AssumeRole", &locked, Fault::always(Fault::unauthorized()));

    let run = env
        .through(&proxy)
        .args([
            "cleanup",
            "--org",
            "--role-name",
            "reader",
            "--include-self",
            "--name",
            "org-*",
        ])
        .args(["--include-shared=unused", "--dry-run", "-o", "json"])
        .run();

    run.assert_code(1);
    let plan = run.json();
    assert_eq!(plan_entry(&plan, &unused)["action"], "deregister", "{plan}");
    assert!(reason(&plan, &unused).contains("each one's own scan"), "{plan}");
    assert_eq!(plan_entry(&plan, &used)["action"], "keep");
    let kept = reason(&plan, &used);
    assert!(
        kept.contains(&running) && kept.contains(&format!("in account {app}")),
        "{kept}"
    );
    assert_eq!(plan_entry(&plan, &locked_image)["action"], "keep");
    let unknown = reason(&plan, &locked_image);
    assert!(
        unknown.starts_with("could not check") && unknown.contains(&locked),
        "{unknown}"
    );
    assert_eq!(
        proxy.count("CreateImageUsageReport"),
        0,
        "the run's own scans answer for every account the images are shared with"
    );
    // The cost: the owner's scan of its candidates, then one scan per member that could be
    // reached for all the shared candidates together; no image listed twice.
    assert_eq!(proxy.count("DescribeInstances"), 3, "{:?}", proxy.counts());
    assert_eq!(proxy.count("DescribeImages"), 3, "{:?}", proxy.counts());
}

#[test]
fn an_endpoint_without_usage_reports_is_said_once_and_its_shared_images_are_kept_unchecked() {
    let env = TestEnv::new();
    let image = env.create_image(&env.run_instance(None), "sh-noreports", &[]);
    env.age_image(&image, 3);
    env.share_image(&image, IDLE);
    let proxy = Proxy::start(&env.endpoint);
    proxy.fail("DescribeImageUsageReports", Fault::always(Misbehaviour::NotImplemented));

    let run = env
        .through(&proxy)
        .args([
            "cleanup",
            "--name",
            "sh-*",
            "--include-shared=unused",
            "--dry-run",
            "-o",
            "json",
        ])
        .run();

    run.assert_code(1);
    let plan = run.json();
    let kept = reason(&plan, &image);
    assert!(
        kept.starts_with("could not check") && kept.contains("no usage reports"),
        "{kept}"
    );
    let said: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("DescribeImageUsageReports"))
        .collect();
    assert_eq!(said.len(), 1, "said once: {}", run.stderr);
    assert_eq!(proxy.count("DescribeImageUsageReports"), 1, "asked once, not retried");
    assert_eq!(proxy.count("CreateImageUsageReport"), 0);
}
