//! Several regions at once: `--regions` and `--all-regions` on describe and cleanup.

use serde_json::Value;

use crate::support::{Run, TestEnv};

/// (image ID, region) of the `multi-*` images among JSON rows, ordered by region.
fn by_region(rows: &Value) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = rows
        .as_array()
        .expect("an array of rows")
        .iter()
        .filter(|i| i["name"].as_str().is_some_and(|n| n.starts_with("multi-")))
        .map(|i| {
            (
                i["image_id"].as_str().unwrap().to_owned(),
                i["region"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    found.sort_by(|a, b| a.1.cmp(&b.1));
    found
}

fn described(run: &Run) -> Vec<(String, String)> {
    by_region(&run.json())
}

fn planned(run: &Run) -> Vec<(String, String)> {
    by_region(&run.json()["images"])
}

/// `cleanup … --dry-run -o json`.
fn planned_dry(env: &TestEnv, args: &[&str]) -> Run {
    env.amictl()
        .arg("cleanup")
        .args(args)
        .args(["--dry-run", "-o", "json"])
        .run()
}

#[test]
fn describe_and_cleanup_work_several_regions_at_once_and_one_failing_region_loses_nothing() {
    // --all-regions makes moto set up every region: a server of its own spares the others.
    let env = TestEnv::on_its_own_server();
    let (south, spain) = (env.in_region("ap-southeast-3"), env.in_region("eu-south-2"));
    let in_south = south.create_image(&south.run_instance(None), "multi-1", &[]);
    let in_spain = spain.create_image(&spain.run_instance(None), "multi-2", &[]);
    let expected = vec![
        (in_south, "ap-southeast-3".to_owned()),
        (in_spain, "eu-south-2".to_owned()),
    ];
    let both = "ap-southeast-3,eu-south-2";

    let listed = env.amictl().args(["describe", "--regions", both, "-o", "json"]).run();
    let every = env
        .amictl()
        .args(["describe", "--all-regions", "--name", "multi-*", "-o", "json"])
        .run();
    let table = env.amictl().args(["describe", "--regions", both]).run();
    let one_fails = env
        .amictl()
        .args(["describe", "--regions", "ap-southeast-3,zz-nowhere-1", "-o", "json"])
        .run();
    let plan = planned_dry(&env, &["--regions", both, "--all"]);
    let plan_one_fails = planned_dry(&env, &["--regions", "ap-southeast-3,zz-nowhere-1", "--all"]);
    let named_twice = planned_dry(
        &env,
        &["--regions", "ap-southeast-3,eu-south-2,ap-southeast-3", "--all"],
    );
    let plan_everywhere = planned_dry(&env, &["--all-regions", "--name", "multi-*"]);

    assert_eq!(described(listed.assert_code(0)), expected);
    assert_eq!(described(every.assert_code(0)), expected);
    let header = table.assert_code(0).stdout.lines().nth(1).unwrap().to_owned();
    assert!(header.contains("REGION"), "{header}");
    one_fails.assert_code(1);
    assert_eq!(
        described(&one_fails),
        expected[..1],
        "the good region's images are printed"
    );
    assert!(one_fails.stderr.contains("zz-nowhere-1"), "{}", one_fails.stderr);
    assert_eq!(planned(plan.assert_code(0)), expected);
    plan_one_fails.assert_code(1);
    assert_eq!(planned(&plan_one_fails), expected[..1], "the good region is planned");
    assert!(
        plan_one_fails.stderr.contains("zz-nowhere-1"),
        "{}",
        plan_one_fails.stderr
    );
    assert_eq!(
        planned(named_twice.assert_code(0)),
        expected,
        "a region named twice is planned once"
    );
    assert_eq!(planned(plan_everywhere.assert_code(0)), expected);
    assert_eq!(
        south.image_ids().len() + spain.image_ids().len(),
        2,
        "dry runs change nothing"
    );

    let cleaned = env
        .amictl()
        .args(["cleanup", "--regions", both, "--all", "--yes", "-o", "json"])
        .run();

    assert_eq!(cleaned.assert_code(0).json()["summary"]["images_deregistered"], 2);
    assert!(south.image_ids().is_empty() && spain.image_ids().is_empty());
    assert!(south.snapshot_ids().is_empty() && spain.snapshot_ids().is_empty());
}

#[test]
fn describe_and_cleanup_work_several_accounts_through_their_roles() {
    let env = TestEnv::new();
    let (first, second) = (
        "arn:aws:iam::111111111111:role/amictl",
        "arn:aws:iam::222222222222:role/amictl",
    );
    let (one, two) = (env.as_role(first), env.as_role(second));
    let in_one = one.create_image(&one.run_instance(None), "acct-1", &[]);
    let in_two = two.create_image(&two.run_instance(None), "acct-2", &[]);
    let accounts = |rows: &Value| -> Vec<(String, String)> {
        let mut found: Vec<(String, String)> = rows
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["image_id"].as_str().unwrap().to_owned(),
                    i["account_id"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        found.sort_by(|a, b| a.1.cmp(&b.1));
        found
    };
    let expected = vec![(in_one, "111111111111".to_owned()), (in_two, "222222222222".to_owned())];

    let described = env
        .amictl()
        .args(["describe", "--role-arn", first, "--role-arn", second, "-o", "json"])
        .run();
    let planned = planned_dry(&env, &["--all", "--role-arn", first, "--role-arn", second]);
    let table = env
        .amictl()
        .args(["describe", "--role-arn", first, "--role-arn", second])
        .run();
    // Two roles in one account plan its images once; one AssumeRole per account, whatever
    // the number of regions.
    let same_account = "arn:aws:iam::111111111111:role/another";
    let twice = planned_dry(&env, &["--all", "--role-arn", first, "--role-arn", same_account]);
    let proxy = crate::support::proxy::Proxy::start(&env.endpoint);
    let regions = format!("{},eu-central-2", env.region);
    let two_regions = env
        .through(&proxy)
        .args(["describe", "--role-arn", first, "--regions", &regions, "-o", "json"])
        .run();

    assert_eq!(accounts(&described.assert_code(0).json()), expected);
    assert_eq!(accounts(&planned.assert_code(0).json()["images"]), expected);
    assert!(
        table.assert_code(0).stdout.lines().nth(1).unwrap().contains("ACCOUNT"),
        "{}",
        table.stdout
    );
    assert!(env.image_ids().is_empty(), "the caller's own account has none of them");
    assert_eq!(accounts(&twice.assert_code(0).json()["images"]), expected[..1]);
    assert!(
        twice.stderr.contains("arn:aws:iam::111111111111:role/another"),
        "{}",
        twice.stderr
    );
    assert_eq!(accounts(&two_regions.assert_code(0).json()), expected[..1]);
    assert_eq!(proxy.count("AssumeRole"), 1, "{:?}", proxy.counts());

    let cleaned = env
        .amictl()
        .args(["cleanup", "--all", "--role-arn", first, "--role-arn", second, "--yes"])
        .run();

    cleaned.assert_code(0);
    assert!(one.image_ids().is_empty() && two.image_ids().is_empty());
    assert!(one.snapshot_ids().is_empty() && two.snapshot_ids().is_empty());
}

#[test]
fn many_regions_are_read_at_most_concurrency_at_a_time() {
    let env = TestEnv::new();
    let proxy = crate::support::proxy::Proxy::start(&env.endpoint);
    // Each answer takes a while, so that reads overlap as much as amictl lets them.
    proxy.fail(
        "DescribeImages",
        crate::support::proxy::Fault::always(crate::support::proxy::Misbehaviour::Delay(
            std::time::Duration::from_millis(150),
        )),
    );
    let regions = "us-east-1,us-east-2,us-west-1,us-west-2,eu-west-1,eu-west-2,eu-west-3,eu-central-1";

    let run = env
        .through(&proxy)
        .args(["describe", "--regions", regions, "--concurrency", "3", "-o", "json"])
        .run();

    run.assert_code(0);
    assert_eq!(proxy.count("DescribeImages"), 8);
    let most = proxy.most_at_once("DescribeImages");
    assert!(
        (2..=3).contains(&most),
        "side by side, never more than three at once: {most}"
    );
}

/// `--concurrency` also caps the run's requests in flight, every action and region together: a
/// cleanup plan reads its images, the scans of what launches them and the per-image reads side
/// by side, which without the cap puts more than two in flight at once.
#[test]
fn concurrency_caps_the_requests_in_flight_of_the_whole_run() {
    use crate::support::proxy::{ALL_ACTIONS, Fault, Misbehaviour, Proxy};
    let env = TestEnv::new();
    env.create_image(&env.run_instance(None), "capped-1", &[]);
    let regions = "us-east-1,eu-west-1,us-west-2";
    let slow = || Fault::always(Misbehaviour::Delay(std::time::Duration::from_millis(50)));
    let plan = |cap: Option<&str>| {
        let proxy = Proxy::start(&env.endpoint);
        for action in ["DescribeImages", "DescribeInstances", "DescribeLaunchTemplateVersions"] {
            proxy.fail(action, slow());
        }
        let mut args = vec!["cleanup", "--all", "--dry-run", "-o", "json", "--regions", regions];
        if let Some(cap) = cap {
            args.extend(["--concurrency", cap]);
        }
        env.through(&proxy).args(args).run().assert_code(0);
        proxy.most_at_once(ALL_ACTIONS)
    };

    let (free, capped) = (plan(None), plan(Some("2")));

    assert!(free > 2, "side by side without the cap: {free}");
    assert!((1..=2).contains(&capped), "never more than two at once: {capped}");
}
