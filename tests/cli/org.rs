//! An organization's worth of accounts: `--org` and `--accounts` through `--role-name`, shards
//! for CI matrices, one AssumeRole per account. moto serves Organizations and STS: images are
//! made in member accounts through assumed roles, as amictl reaches them.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::support::TestEnv;
use crate::support::assert_refused_before_any_request;
use crate::support::proxy::{Fault, Misbehaviour, Proxy};

const REGIONS: &str = "eu-west-1,us-west-2";

/// (account ID, region) of each image in describe's rows, or a plan's.
fn places(rows: &Value) -> BTreeSet<(String, String)> {
    rows.as_array()
        .expect("rows")
        .iter()
        .map(|i| {
            (
                i["account_id"].as_str().expect("an account").to_owned(),
                i["region"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn accounts_of(rows: &Value) -> BTreeSet<String> {
    places(rows).into_iter().map(|(account, _)| account).collect()
}

/// An image named `PREFIX-ACCOUNT` in eu-west-1 of each member account, made through its role.
fn image_in_each(env: &TestEnv, members: &[(String, String)], prefix: &str) {
    for (id, _) in members {
        let there = env
            .elsewhere("eu-west-1")
            .as_role(&format!("arn:aws:iam::{id}:role/amictl"));
        there.create_image(&there.run_instance(None), &format!("{prefix}-{id}"), &[]);
    }
}

/// An organization of three member accounts with an image in each of [`REGIONS`], and one
/// image of the caller's own, on a server of its own (Organizations state is per server).
struct Organization {
    env: TestEnv,
    members: Vec<(String, String)>,
    /// (account, region) of every member image.
    expected: BTreeSet<(String, String)>,
    /// The caller's own account, where its image is.
    home: TestEnv,
}

impl Organization {
    fn new() -> Organization {
        let env = TestEnv::on_its_own_server();
        let members = env.organization(&["prod", "staging", "dev"]);
        let mut expected = BTreeSet::new();
        for (id, _) in &members {
            for region in REGIONS.split(',') {
                let there = env.elsewhere(region).as_role(&format!("arn:aws:iam::{id}:role/amictl"));
                there.create_image(&there.run_instance(None), &format!("org-{id}"), &[]);
                expected.insert((id.clone(), region.to_owned()));
            }
        }
        let home = env.elsewhere("eu-west-1");
        home.create_image(&home.run_instance(None), "own-1", &[]);
        Organization {
            env,
            members,
            expected,
            home,
        }
    }
}

const ORG: [&str; 5] = ["--org", "--role-name", "amictl", "--regions", REGIONS];

#[test]
fn an_organization_is_worked_account_by_account_through_one_role_each() {
    let Organization {
        env, members, expected, ..
    } = Organization::new();
    let proxy = Proxy::start(&env.endpoint);

    let described = env.through(&proxy).args(["describe", "-o", "json"]).args(ORG).run();
    let assumed = proxy.count("AssumeRole");
    let table = env.amictl().arg("describe").args(ORG).run();
    let planned = env
        .amictl()
        .args(["cleanup", "--all", "--dry-run", "-o", "json"])
        .args(ORG)
        .run();
    let listed = env
        .amictl()
        .args(["describe", "-o", "json", "--role-name", "amictl", "--regions", REGIONS])
        .args(["--accounts", &members[0].0, "--include-self"])
        .run();

    let rows = described.assert_code(0).json();
    assert_eq!(
        places(&rows),
        expected,
        "every member account in both regions, not the caller's"
    );
    let names: BTreeSet<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["account_name"].as_str())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["dev", "prod", "staging"]),
        "the organization's names"
    );
    assert_eq!(
        assumed,
        members.len(),
        "one AssumeRole per account for two regions: {:?}",
        proxy.counts()
    );
    assert_eq!(proxy.count("ListAccounts"), 1);
    assert!(table.assert_code(0).stdout.contains("(staging)"), "{}", table.stdout);
    assert_eq!(places(&planned.assert_code(0).json()["images"]), expected);
    let listed: BTreeSet<String> = listed
        .assert_code(0)
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["account_id"].as_str().unwrap_or("own").to_owned())
        .collect();
    assert_eq!(listed, BTreeSet::from([members[0].0.clone(), "own".to_owned()]));
}

#[test]
fn shards_cover_every_account_once_and_a_refused_account_fails_alone() {
    let Organization { env, members, home, .. } = Organization::new();

    let shards: Vec<Value> = ["1/2", "2/2"]
        .iter()
        .map(|shard| {
            env.amictl()
                .args(["describe", "-o", "json", "--shard", shard])
                .args(ORG)
                .run()
                .assert_code(0)
                .json()
        })
        .collect();
    // One account's role can't be assumed (a service control policy, say).
    let refused = Proxy::start(&env.endpoint);
    refused.fail_matching("AssumeRole", &members[1].0, Fault::always(Fault::unauthorized()));
    let partial = env.through(&refused).args(["describe", "-o", "json"]).args(ORG).run();

    let (first, second) = (accounts_of(&shards[0]), accounts_of(&shards[1]));
    assert!(
        first.is_disjoint(&second),
        "no account in two shards: {first:?} {second:?}"
    );
    let all: BTreeSet<String> = first.union(&second).cloned().collect();
    assert_eq!(
        all,
        members.iter().map(|(id, _)| id.clone()).collect(),
        "the shards cover every account"
    );
    partial.assert_code(1);
    let others: BTreeSet<String> = [&members[0].0, &members[2].0].into_iter().cloned().collect();
    assert_eq!(accounts_of(&partial.json()), others, "the others are listed");
    assert!(
        partial.stderr.contains(&members[1].0),
        "names the account: {}",
        partial.stderr
    );

    a_plan_across_the_organization_is_applied_through_its_accounts(&env, &members, &home);
}

/// A plan saved across the organization is applied through the same accounts; through fewer,
/// what no session reached is reported (exit 1).
fn a_plan_across_the_organization_is_applied_through_its_accounts(
    env: &TestEnv,
    members: &[(String, String)],
    home: &TestEnv,
) {
    let saved = crate::support::Scratch::new("org-plan");
    let plan = saved.path().join("plan.json");
    let plan = plan.to_str().unwrap();
    env.amictl()
        .args(["cleanup", "--all", "--save-plan", plan])
        .args(ORG)
        .run()
        .assert_code(0);
    let applied = env
        .amictl()
        .args([
            "cleanup",
            "--apply-plan",
            plan,
            "--yes",
            "--org",
            "--role-name",
            "amictl",
            "-o",
            "json",
        ])
        .run();
    let report = applied.assert_code(0).json();
    assert_eq!(report["summary"]["images_deregistered"], 6, "{}", applied.stderr);

    let left = env.amictl().args(["describe", "-o", "json"]).args(ORG).run();
    assert!(
        left.assert_code(0).json().as_array().unwrap().is_empty(),
        "{}",
        left.stdout
    );
    assert_eq!(home.image_ids().len(), 1, "the caller's own image stays");
    // Applied through fewer accounts than it was made in: what no session reached is
    // reported, and the run exits 1, rather than the entries silently dropped.
    image_in_each(env, members, "again");
    env.amictl()
        .args(["cleanup", "--all", "--save-plan", plan])
        .args(ORG)
        .run()
        .assert_code(0);
    let part = env
        .amictl()
        .args(["cleanup", "--apply-plan", plan, "--yes", "--accounts", &members[0].0])
        .args(["--role-name", "amictl", "-o", "json"])
        .run();
    part.assert_code(1);
    let report = part.json();
    let unreached: Vec<&Value> = (report["images"].as_array().unwrap().iter())
        .filter(|i| {
            i["result"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("did not reach"))
        })
        .collect();
    assert_eq!(unreached.len(), 2, "the two other accounts' images: {report}");
    assert_eq!(report["summary"]["images_deregistered"], 1);
}

#[test]
fn bad_account_options_are_refused_before_any_request() {
    let file = std::env::temp_dir().join(format!("amictl-accounts-{}.txt", std::process::id()));
    std::fs::write(&file, "111122223333\n# staging\n12345\n").unwrap();
    let file_arg = file.to_str().unwrap().to_owned();
    let bad_line = format!("{file_arg}:3:");
    assert_refused_before_any_request(
        &["describe"],
        &[
            (&["--org"], "--role-name"),
            (&["--accounts", "111122223333"], "--role-name"),
            (&["--accounts", "1111", "--role-name", "r"], "not an AWS account ID"),
            (&["--accounts-file", &file_arg, "--role-name", "r"], &bad_line),
            (&["--org", "--role-name", "r", "--shard", "3/2"], "names no part"),
            (&["--org", "--role-name", "r", "--shard", "0/2"], "names no part"),
            (&["--role-name", "amictl"], "--org"),
            (&["--org", "--role-name", "a b"], "not an IAM role name"),
            (&["--shard", "1/2"], "--org"),
        ],
    );
    std::fs::remove_file(file).unwrap();
}

/// The role ARN asked of STS is in the partition of the region: the proxy refuses exactly the
/// AssumeRole whose RoleArn is the right one for each partition, with a message amictl passes
/// on, so each run shows the ARN it sent.
#[test]
fn the_role_arn_asked_of_sts_is_in_the_regions_partition() {
    let env = TestEnv::new();
    let account = "111122223333";
    for (region, partition) in [
        ("us-east-1", "aws"),
        ("cn-north-1", "aws-cn"),
        ("us-gov-west-1", "aws-us-gov"),
        ("us-iso-east-1", "aws-iso"),
        ("us-isob-east-1", "aws-iso-b"),
        ("eu-isoe-west-1", "aws-iso-e"),
        ("us-isof-south-1", "aws-iso-f"),
        ("eusc-de-east-1", "aws-eusc"),
    ] {
        let proxy = Proxy::start(&env.endpoint);
        let arn = format!("arn:{partition}:iam::{account}:role/amictl");
        // As the query body carries it: URL-encoded, and ending where the next field starts.
        let encoded = arn.replace(':', "%3A").replace('/', "%2F") + "&";
        proxy.fail_matching(
            "AssumeRole",
            &format!("RoleArn={encoded}"),
            Fault::always(Misbehaviour::Error {
                status: 403,
                code: "AccessDenied".to_owned(),
                message: format!("asked for {arn}"),
            }),
        );
        let run = TestEnv::amictl_at(proxy.url())
            .env("AWS_REGION", region)
            .args(["describe", "--accounts", account, "--role-name", "amictl", "-o", "json"])
            .run();
        assert!(
            run.stderr.contains(&format!("asked for {arn}")),
            "{region}: {}",
            run.stderr
        );
        assert_eq!(proxy.count("AssumeRole"), 1, "{region}");
    }
}

/// With `--all-regions` each account is asked for its regions first: an account whose role
/// is refused fails alone there too, named, and the others' images in every region are listed.
#[test]
fn a_refused_account_fails_alone_with_all_regions_too() {
    let Organization {
        env, members, expected, ..
    } = Organization::new();
    let refused = Proxy::start(&env.endpoint);
    refused.fail_matching("AssumeRole", &members[1].0, Fault::always(Fault::unauthorized()));

    let run = env
        .through(&refused)
        .args([
            "describe",
            "-o",
            "json",
            "--org",
            "--role-name",
            "amictl",
            "--all-regions",
        ])
        .run();

    run.assert_code(1);
    let others: BTreeSet<(String, String)> = expected
        .into_iter()
        .filter(|(account, _)| *account != members[1].0)
        .collect();
    assert_eq!(places(&run.json()), others, "the others' images, in every region");
    let said: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(said.len(), 1, "{}", run.stderr);
    assert!(
        said[0].contains(&members[1].0) && said[0].contains("UnauthorizedOperation"),
        "{}",
        said[0]
    );
}

/// Organizations answering a ListAccounts page with the token it was asked with can't be listed
/// past it: the listing fails rather than end there as if complete, and a cleanup changes
/// nothing anywhere (its plan would miss the accounts after that page).
#[test]
fn a_listing_that_repeats_its_page_token_changes_nothing() {
    let env = TestEnv::on_its_own_server();
    let members = env.organization(&["member-a", "member-b"]);
    image_in_each(&env, &members, "org");
    let org = ["--org", "--role-name", "amictl", "--regions", "eu-west-1"];
    let proxy = Proxy::start(&env.endpoint);
    proxy.fail("ListAccounts", Fault::always(Misbehaviour::RepeatsItsToken));

    let cleaned = env
        .through(&proxy)
        .args(["cleanup", "--all", "--yes", "-o", "json"])
        .args(org)
        .run();

    cleaned.assert_code(1);
    assert!(
        cleaned.stderr.contains("ListAccounts")
            && cleaned.stderr.contains("the token it was asked with")
            && cleaned.stderr.contains("nothing was planned or changed"),
        "{}",
        cleaned.stderr
    );
    assert_eq!(proxy.count("ListAccounts"), 2, "asked again once, not forever");
    let changes: Vec<String> = (proxy.mutations().into_iter())
        .filter(|action| action != "AssumeRole")
        .collect();
    assert!(changes.is_empty(), "{changes:?}");
    let after = env.amictl().args(["describe", "-o", "json"]).args(org).run();
    assert_eq!(
        accounts_of(&after.assert_code(0).json()).len(),
        members.len(),
        "every member's image is still there"
    );
}

/// An organization is worked while it is still being listed: when a later ListAccounts page
/// fails, describe shows what it read (valid JSON, the accounts of the first page) and fails
/// saying the output is partial; a cleanup changes nothing anywhere, since its plan would miss
/// the accounts not listed.
#[test]
fn a_listing_that_fails_after_its_first_page_changes_nothing_and_says_the_output_is_partial() {
    let env = TestEnv::on_its_own_server();
    // Organizations answers 20 accounts a page: the management account and 20 members are two.
    let names: Vec<String> = (0..20).map(|n| format!("member-{n:02}")).collect();
    let members = env.organization(&names.iter().map(String::as_str).collect::<Vec<_>>());
    image_in_each(&env, &members, "org");
    let org = ["--org", "--role-name", "amictl", "--regions", "eu-west-1"];
    let proxy = Proxy::start(&env.endpoint);
    proxy.fail("ListAccounts", Fault::after(1, Fault::unauthorized()));

    let described = env.through(&proxy).args(["describe", "-o", "json"]).args(org).run();
    // A fresh proxy: its first page goes through again.
    let proxy = Proxy::start(&env.endpoint);
    proxy.fail("ListAccounts", Fault::after(1, Fault::unauthorized()));
    let cleaned = env
        .through(&proxy)
        .args(["cleanup", "--all", "--yes", "-o", "json"])
        .args(org)
        .run();
    let after = env.amictl().args(["describe", "-o", "json"]).args(org).run();
    // Refused from the first page: nothing was read, and nothing is said to be partial.
    let refused = Proxy::start(&env.endpoint);
    refused.fail("ListAccounts", Fault::always(Fault::unauthorized()));
    let unlisted = env.through(&refused).args(["describe", "-o", "json"]).args(org).run();

    described.assert_code(1);
    let read = accounts_of(&described.json());
    assert!(
        !read.is_empty() && read.len() < members.len(),
        "the first page's accounts, not all: {read:?}"
    );
    assert!(
        described.stderr.matches("could not all be listed").count() == 1 && described.stderr.contains("partial"),
        "said once: {}",
        described.stderr
    );
    unlisted.assert_code(1);
    assert!(unlisted.stdout.is_empty(), "{}", unlisted.stdout);
    assert!(
        unlisted.stderr.contains("ListAccounts") && !unlisted.stderr.contains("partial"),
        "{}",
        unlisted.stderr
    );
    cleaned.assert_code(1);
    assert!(
        cleaned.stderr.contains("ListAccounts") && cleaned.stderr.contains("nothing was planned or changed"),
        "{}",
        cleaned.stderr
    );
    assert_eq!(proxy.count("DeregisterImage"), 0, "{:?}", proxy.counts());
    assert_eq!(
        accounts_of(&after.assert_code(0).json()).len(),
        members.len(),
        "every member's image is still there"
    );
}

/// STS meters AssumeRole by the calling account: every AssumeRole of an organization run is
/// the management account's, and a large organization can meet STS's throttling ("Rate
/// exceeded"). Each throttled AssumeRole is asked again, however many accounts are throttled:
/// through aws-config's AssumeRoleProvider, the SDK's process-wide retry quota for STS ran
/// dry (here: 51 accounts throttled three times each; verified to fail before) and the
/// accounts after that were left out. A role STS throttles through every retry fails its
/// account alone, saying so (not "log in again").
#[test]
fn a_throttled_sts_is_asked_again_for_every_account_however_many() {
    let env = TestEnv::on_its_own_server();
    let names: Vec<String> = (0..51).map(|i| format!("member-{i}")).collect();
    let members = env.organization(&names.iter().map(String::as_str).collect::<Vec<_>>());
    let throttled = || Misbehaviour::Error {
        status: 400,
        code: "Throttling".to_owned(),
        message: "Rate exceeded".to_owned(),
    };
    let proxy = Proxy::start(&env.endpoint);
    for (id, _) in &members {
        proxy.fail_matching("AssumeRole", id, Fault::first(3, throttled()));
    }
    let org = ["--org", "--role-name", "amictl", "--regions", "eu-west-1"];
    let described = env.through(&proxy).args(["describe", "-o", "json"]).args(org).run();
    let lasting = Proxy::start(&env.endpoint);
    lasting.fail_matching("AssumeRole", &members[7].0, Fault::always(throttled()));
    let partial = env
        .through(&lasting)
        .args(["describe", "-o", "json", "--max-attempts", "2"])
        .args(org)
        .run();

    described.assert_code(0);
    assert_eq!(
        proxy.count("AssumeRole"),
        4 * members.len(),
        "each account's role asked four times: {:?}",
        proxy.counts()
    );
    assert_eq!(proxy.count("DescribeImages"), members.len(), "every account read");
    partial.assert_code(1);
    assert_eq!(lasting.count("AssumeRole"), members.len() + 1, "{:?}", lasting.counts());
    assert_eq!(lasting.count("DescribeImages"), members.len() - 1, "the others read");
    assert!(
        partial.stderr.contains(&members[7].0)
            && partial.stderr.contains("STS throttled AssumeRole")
            && partial.stderr.contains("run again later")
            && !partial.stderr.contains("sso"),
        "{}",
        partial.stderr
    );
}
