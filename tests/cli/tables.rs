//! What a user sees: the tables, held by snapshot tests (tests/cli/snapshots/), so that a
//! reviewer sees a change to them as a picture. IDs and times are replaced by stable
//! stand-ins of the same width, so the tables keep their shape.

use std::collections::HashMap;

use crate::support::TestEnv;

/// The output with each distinct ID numbered in order of appearance (`ami-00000000000000001`)
/// and clock times as `YYYY-MM-DD hh:mm (0m ago)`.
fn stable(text: &str) -> String {
    let ids = regex_lite::Regex::new(r"\b(ami|snap|i|lt|vol)-[0-9a-f]{17}\b").unwrap();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let numbered = ids.replace_all(text, |found: &regex_lite::Captures<'_>| {
        let next = seen.len() + 1;
        let n = *seen.entry(found[0].to_owned()).or_insert(next);
        format!("{}-{n:017}", &found[1])
    });
    let times = regex_lite::Regex::new(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} \(\d+m ago\)").unwrap();
    let clocked = times.replace_all(&numbered, "YYYY-MM-DD hh:mm (0m ago)");
    let dates = regex_lite::Regex::new(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z").unwrap();
    dates.replace_all(&clocked, "YYYY-MM-DDThh:mm:ssZ").into_owned()
}

/// An account with four images: one nothing uses, one an instance runs from, one a launch
/// template names, one shared with another account. Made in the order of their names, so
/// that newest first (by creation second, then name) lists them the same way every run.
struct Account {
    env: TestEnv,
    free: String,
    shared: String,
}

impl Account {
    fn new() -> Account {
        let env = TestEnv::new();
        let instance = env.run_instance(Some("builder"));
        let free = env.create_image(&instance, "tbl-1-free", &[("team", "web")]);
        let used = env.create_image(&instance, "tbl-2-used", &[]);
        let templated = env.create_image(&instance, "tbl-3-template", &[]);
        let shared = env.create_image(&instance, "tbl-4-shared", &[]);
        env.run_instance_from(&used);
        env.create_launch_template("tbl", &templated);
        env.share_image(&shared, "111122223333");
        env.share_snapshot(&env.snapshot_of(&shared), false, &["111122223333"]);
        Account { env, free, shared }
    }

    /// The output, stable; the test's region (which depends on the order tests start in) is
    /// written `REGION`.
    fn table(&self, args: &[&str]) -> String {
        let run = self.env.amictl().args(args).run();
        stable(&run.assert_code(0).stdout).replace(&self.env.region, "REGION")
    }
}

#[test]
fn tables_show_what_a_user_sees() {
    let account = Account::new();

    insta::assert_snapshot!("describe", account.table(&["describe"]));
    insta::assert_snapshot!("describe_one", account.table(&["describe", &account.free]));
    insta::assert_snapshot!(
        "permissions_show",
        account.table(&["permissions", "show", &account.shared])
    );
    insta::assert_snapshot!(
        "cleanup_plan",
        account.table(&["cleanup", "--name", "tbl-*", "--dry-run"])
    );
    // A dry run only reads, so it may name a region of another test's.
    insta::assert_snapshot!(
        "copy_dry_run",
        account.table(&["copy", &account.free, "--to-regions", "ap-southeast-3", "--dry-run"])
    );
    insta::assert_snapshot!(
        "deregister_dry_run",
        account.table(&["deregister", &account.free, "--delete-snapshots", "--dry-run"])
    );
}

/// `-o markdown`, for `$GITHUB_STEP_SUMMARY` and pull request comments: the same tables in
/// GitHub-flavoured markdown, a summary as a list.
#[test]
fn markdown_shows_the_same_for_a_reviewer() {
    let account = Account::new();
    let markdown = |args: &[&str]| account.table(&[&["-o", "markdown"], args].concat());

    insta::assert_snapshot!("describe_markdown", markdown(&["describe"]));
    insta::assert_snapshot!(
        "copy_markdown",
        markdown(&["copy", &account.free, "--to-regions", "ap-southeast-3", "--dry-run"])
    );
    insta::assert_snapshot!(
        "cleanup_plan_markdown",
        markdown(&["cleanup", "--name", "tbl-*", "--keep", "1", "--dry-run"])
    );
    insta::assert_snapshot!(
        "cleanup_report_markdown",
        markdown(&["cleanup", &account.free, "--yes"])
    );
}
