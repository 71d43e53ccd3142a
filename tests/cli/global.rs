//! What every command shares: global options, credentials, regions, endpoints, exit codes.

use crate::support::proxy::Proxy;
use crate::support::{Amictl, TestEnv, Tripwire, assert_refused_before_any_request, refused_url};

#[test]
fn global_options_work_before_and_after_the_command() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let image = env.create_image(&instance, "global-1", &[]);
    let other_region = if env.region == "us-east-1" {
        "us-west-2"
    } else {
        "us-east-1"
    };

    // The environment names another region: --region must win, wherever it stands.
    let before = env
        .amictl()
        .env("AWS_REGION", other_region)
        .args(["--region", &env.region, "-o", "json", "describe"])
        .run();
    let after = env
        .amictl()
        .env("AWS_REGION", other_region)
        .args(["describe", "--region", &env.region, "--output", "json"])
        .run();

    for run in [before, after] {
        assert_eq!(run.assert_code(0).json()[0]["image_id"], image.as_str());
    }
}

#[test]
fn endpoint_url_flag_and_ec2_specific_variable_both_reach_the_server() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let image = env.create_image(&instance, "endpoint-1", &[]);

    let flag = env
        .amictl()
        .env_remove("AWS_ENDPOINT_URL")
        .args(["describe", "--endpoint-url", &env.endpoint, "-o", "json"])
        .run();
    let service_variable = env
        .amictl()
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_ENDPOINT_URL_EC2", &env.endpoint)
        .args(["describe", "-o", "json"])
        .run();

    for run in [flag, service_variable] {
        assert_eq!(run.assert_code(0).json()[0]["image_id"], image.as_str());
    }
}

#[test]
fn endpoint_url_is_for_ec2_alone_other_services_keep_their_own() {
    // As with an EC2 VPC endpoint: EC2 through --endpoint-url (here a proxy that counts),
    // STS and Auto Scaling where AWS_ENDPOINT_URL says (moto itself).
    let env = TestEnv::new();
    let role = "arn:aws:iam::333333333333:role/amictl";
    let theirs = env.as_role(role);
    let image = theirs.create_image(&theirs.run_instance(None), "vpce-1", &[]);
    let proxy = Proxy::start(&env.endpoint);

    let described = env
        .amictl()
        .args([
            "describe",
            "--role-arn",
            role,
            "--endpoint-url",
            proxy.url(),
            "-o",
            "json",
        ])
        .run();
    let planned = env
        .amictl()
        .args([
            "cleanup",
            "--all",
            "--role-arn",
            role,
            "--endpoint-url",
            proxy.url(),
            "--dry-run",
        ])
        .run();

    assert_eq!(described.assert_code(0).json()[0]["image_id"], image.as_str());
    planned.assert_code(0);
    assert!(proxy.count("DescribeImages") >= 2, "{:?}", proxy.counts());
    assert_eq!(
        proxy.count("AssumeRole"),
        0,
        "STS is not EC2's endpoint: {:?}",
        proxy.counts()
    );
    assert_eq!(
        proxy.count("DescribeAutoScalingGroups")
            + proxy.count("DescribeLaunchConfigurations")
            + proxy.count("DescribeParameters"),
        0,
        "nor are Auto Scaling and SSM: {:?}",
        proxy.counts()
    );
    assert!(
        !described.stderr.contains("plain http"),
        "loopback is fine: {}",
        described.stderr
    );
}

#[test]
fn a_plain_http_endpoint_off_this_machine_is_warned_about_once() {
    let run = TestEnv::amictl_at(&refused_url())
        .env("AWS_ENDPOINT_URL_SSM", "http://10.255.255.1:4566")
        .args(["--max-attempts", "1", "describe"])
        .run();

    let warnings: Vec<&str> = run.stderr.lines().filter(|l| l.contains("plain http")).collect();
    assert_eq!(warnings.len(), 1, "{}", run.stderr);
    assert!(warnings[0].contains("http://10.255.255.1:4566"), "{}", run.stderr);
}

#[test]
fn an_unreachable_endpoint_fails_fast_naming_it() {
    let url = refused_url();

    let run = TestEnv::amictl_at(&url).args(["describe"]).run();

    run.assert_code(1);
    assert!(run.elapsed.as_secs() < 20, "took {:?}", run.elapsed);
    assert!(run.stderr.contains(&url), "{}", run.stderr);
    assert!(run.stderr.contains("cannot reach"), "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "one line: {}", run.stderr);
}

#[test]
fn no_region_anywhere_is_a_usage_error_with_a_hint() {
    let tripwire = Tripwire::new();

    let run = TestEnv::amictl_at(&tripwire.url())
        .env_remove("AWS_REGION")
        .args(["describe"])
        .run();

    run.assert_code(2);
    assert!(run.stderr.contains("--region"), "{}", run.stderr);
    assert_eq!(tripwire.connections(), 0);
}

#[test]
fn a_malformed_region_or_endpoint_is_a_usage_error() {
    let tripwire = Tripwire::new();

    let region = TestEnv::amictl_at(&tripwire.url())
        .args(["describe", "--region", "mars"])
        .run();
    let endpoint = TestEnv::amictl_at(&tripwire.url())
        .args(["describe", "--endpoint-url", "localhost:5000"])
        .run();
    let format = TestEnv::amictl_at(&tripwire.url())
        .args(["describe", "-o", "yaml"])
        .run();

    assert!(
        region.assert_code(2).stderr.contains("not an AWS region"),
        "{}",
        region.stderr
    );
    assert!(
        endpoint.assert_code(2).stderr.contains("not an endpoint URL"),
        "{}",
        endpoint.stderr
    );
    format.assert_code(2);
    assert_eq!(tripwire.connections(), 0);
}

#[test]
fn no_credentials_say_how_to_provide_them() {
    let tripwire = Tripwire::new();

    let run = TestEnv::amictl_at(&tripwire.url())
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .args(["describe"])
        .run();

    run.assert_code(1);
    assert!(run.stderr.contains("no AWS credentials found"), "{}", run.stderr);
    assert!(run.stderr.contains("AWS_PROFILE"), "{}", run.stderr);
    assert_eq!(
        run.stderr.lines().count(),
        1,
        "one line, not an SDK dump: {}",
        run.stderr
    );
    assert_eq!(tripwire.connections(), 0, "nothing is sent without credentials");
}

#[test]
fn secrets_never_reach_the_output_of_any_command_at_any_verbosity() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let image = env.create_image(&instance, "secret-1", &[]);
    let secret = "SECRETKEYthatmustnotleak";
    let token = "SESSIONTOKENthatmustnotleak";
    let commands: Vec<Vec<&str>> = vec![
        vec!["describe", "-vvv"],
        vec!["describe", &image, "-vvv"],
        vec![
            "create",
            "--instance-id",
            &instance,
            "--name",
            "secret-2",
            "--no-reboot",
            "-vvv",
        ],
        vec!["permissions", "add", &image, "--account", "111122223333", "-vvv"],
        vec!["cleanup", "--name", "secret-*", "--dry-run", "-vvv"],
        vec!["deregister", &image, "--delete-snapshots", "--include-shared", "-vvv"],
        vec!["describe"],
    ];

    for (n, args) in commands.iter().enumerate() {
        let mut amictl = env
            .amictl()
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_SESSION_TOKEN", token)
            .args(args);
        if n == commands.len() - 1 {
            amictl = amictl.env("RUST_LOG", "trace");
        }
        let run = amictl.run();
        run.assert_code(0);
        assert!(run.stderr.contains("DescribeImages"), "the logs are on for {args:?}");
        for output in [&run.stdout, &run.stderr] {
            assert!(!output.contains(secret), "the secret key leaked from {args:?}");
            assert!(!output.contains(token), "the session token leaked from {args:?}");
        }
    }
}

#[test]
fn a_bad_value_on_any_option_is_one_line_naming_it_exit_2_and_nothing_sent() {
    let tripwire = Tripwire::new();
    let image = "ami-0123456789abcdef0";
    let long_key = format!("{}=v", "k".repeat(200));
    let mut thousands: Vec<String> = (0..3000).map(|n| format!("ami-{n:08x}")).collect();
    thousands.push("ami-nothex00".to_owned());
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["describe", "--region", ""], "--region"),
        (
            vec!["describe", "--region", "a-very-long-region-name-that-is-not-one-1"],
            "--region",
        ),
        (vec!["describe", "--profile", ""], "--profile"),
        (vec!["describe", "--endpoint-url", ""], "--endpoint-url"),
        (
            vec!["describe", "--endpoint-url", "ftp://example.com"],
            "--endpoint-url",
        ),
        (vec!["describe", "-o", "yaml"], "--output"),
        (vec!["describe", "--color", "sometimes"], "--color"),
        (vec!["describe", "--max-attempts", "0"], "--max-attempts"),
        (vec!["describe", "--timeout", "soon"], "--timeout"),
        (vec!["cleanup", "--all", "--max-rate", "0"], "--max-rate"),
        (vec!["cleanup", "--all", "--max-rate", "fast"], "--max-rate"),
        (vec!["describe", "--owner", ""], "--owner"),
        (vec!["describe", "--name", ""], "--name"),
        (vec!["describe", "--tag", ""], "--tag"),
        (vec!["describe", "--tag", &long_key], "--tag"),
        (vec!["describe", "--backing", "floppy"], "--backing"),
        (vec!["describe", "--snapshot-price", "free"], "--snapshot-price"),
        (vec!["create", "--instance-id", "", "--name", "ok-1"], "--instance-id"),
        (vec!["create", "--instance-id", "i-12345678", "--name", ""], "--name"),
        (
            vec![
                "create",
                "--instance-id",
                "i-12345678",
                "--name",
                "ok-1",
                "--snapshot-tag",
                "x",
            ],
            "--snapshot-tag",
        ),
        (
            vec![
                "create",
                "--instance-id",
                "i-12345678",
                "--name",
                "ok-1",
                "--wait",
                "--wait-timeout",
                "",
            ],
            "--wait-timeout",
        ),
        (vec!["deregister", ""], "IMAGE_ID"),
        (vec!["deregister", image, "--concurrency", "513"], "--concurrency"),
        (vec!["cleanup", "--older-than", ""], "--older-than"),
        (vec!["cleanup", "--all", "--keep", "many"], "--keep"),
        (vec!["cleanup", "--all", "--group-by", "tag:"], "--group-by"),
        (vec!["cleanup", "--all", "--exclude-tag", "x"], "--exclude-tag"),
        (vec!["permissions", "add", image, "--account", ""], "--account"),
        (vec!["permissions", "add", image, "--org", ""], "--org"),
        (vec!["permissions", "add", image, "--ou", ""], "--ou"),
    ];

    let cases: Vec<(&[&str], &str)> = cases.iter().map(|(args, option)| (args.as_slice(), *option)).collect();
    assert_refused_before_any_request(&[], &cases);
    let run = TestEnv::amictl_at(&tripwire.url())
        .arg("describe")
        .args(&thousands)
        .run();
    run.assert_code(2);
    assert!(
        run.stderr.contains("ami-nothex00"),
        "names the bad one among thousands: {}",
        run.stderr
    );
    assert_eq!(tripwire.connections(), 0, "nothing was sent");
}

#[test]
fn help_and_version_exit_0_and_a_typo_exits_2() {
    let help = Amictl::new().args(["--help"]).run();
    let version = Amictl::new().args(["--version"]).run();
    let typo = Amictl::new().args(["describ"]).run();

    assert!(help.assert_code(0).stdout.contains("describe"));
    assert!(version.assert_code(0).stdout.starts_with("amictl "));
    assert!(
        typo.assert_code(2).stderr.contains("describe"),
        "suggests the command: {}",
        typo.stderr
    );
}

#[test]
fn a_named_profile_supplies_region_and_credentials() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let image = env.create_image(&instance, "profile-1", &[]);
    let dir = std::env::temp_dir().join(format!("amictl-profile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config");
    let credentials = dir.join("credentials");
    std::fs::write(&config, format!("[profile ci]\nregion = {}\n", env.region)).unwrap();
    std::fs::write(
        &credentials,
        "[ci]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = profile-secret\n",
    )
    .unwrap();

    let run = env
        .amictl()
        .env_remove("AWS_REGION")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_CONFIG_FILE", config.to_str().unwrap())
        .env("AWS_SHARED_CREDENTIALS_FILE", credentials.to_str().unwrap())
        .args(["describe", "--profile", "ci", "-o", "json"])
        .run();

    assert_eq!(run.assert_code(0).json()[0]["image_id"], image.as_str());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn colour_only_when_asked_for_or_on_a_terminal() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    env.create_image(&instance, "colour-1", &[]);

    let always = env.amictl().args(["describe", "--color", "always"]).run();
    let never = env.amictl().args(["describe", "--color", "never"]).run();
    let auto_off_terminal = env.amictl().env_remove("NO_COLOR").args(["describe"]).run();

    assert!(always.assert_code(0).stdout.contains("\u{1b}["), "{}", always.stdout);
    assert!(!never.assert_code(0).stdout.contains('\u{1b}'));
    assert!(!auto_off_terminal.assert_code(0).stdout.contains('\u{1b}'));
}

#[test]
fn completions_and_the_man_page_need_no_region_or_credentials() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let run = Amictl::new().args(["completions", shell]).run();
        assert!(run.assert_code(0).stdout.contains("amictl"), "{shell}");
        assert!(run.stdout.contains("cleanup"), "{shell} completes the commands");
    }
    let man = Amictl::new().args(["man"]).run();
    assert!(
        man.assert_code(0).stdout.contains(".TH amictl 1"),
        "{}",
        &man.stdout[..200.min(man.stdout.len())]
    );
    assert!(man.stdout.contains("permissions"));
    Amictl::new().args(["completions", "tcsh"]).run().assert_code(2);
}

/// Credentials in an endpoint URL (`user:password@`) never show: not in errors, warnings or
/// logs, whichever way the URL came in.
#[test]
fn an_endpoint_urls_userinfo_never_shows() {
    let url = refused_url();
    let with_secret = url.replacen("http://", "http://amictl:s3cret-word@", 1);
    let off_machine = "http://ops:s3cret-word@10.255.255.1:4566";

    let runs = [
        TestEnv::amictl_at(&url)
            .args(["-vv", "--endpoint-url", &with_secret, "describe"])
            .run(),
        TestEnv::amictl_at(&with_secret).args(["-vv", "describe"]).run(),
        TestEnv::amictl_at(&url)
            .env("AWS_ENDPOINT_URL_SSM", off_machine)
            .args(["describe"])
            .run(),
        TestEnv::amictl_at(&url)
            .args(["--endpoint-url", "http://ops:s3cret-word@", "describe"])
            .run(),
    ];

    for run in &runs {
        assert!(!run.stderr.contains("s3cret"), "{}", run.stderr);
        assert!(!run.stdout.contains("s3cret"), "{}", run.stdout);
    }
    assert!(
        runs[0].stderr.contains(&url.replacen("http://", "", 1)),
        "{}",
        runs[0].stderr
    );
    assert!(
        runs[2].stderr.contains("http://10.255.255.1:4566"),
        "{}",
        runs[2].stderr
    );
    assert_eq!(runs[3].code, 2, "{}", runs[3].stderr);
}

/// STS answers with credentials: an STS endpoint on plain http to another machine is refused
/// before any request, unless the user says the network is theirs.
#[test]
fn a_plain_http_sts_endpoint_off_this_machine_is_refused_unless_allowed() {
    let tripwire = Tripwire::new();

    let refused = TestEnv::amictl_at(&tripwire.url())
        .env("AWS_ENDPOINT_URL_STS", "http://10.255.255.1:4566")
        .args(["describe"])
        .run();
    let allowed = TestEnv::amictl_at(&refused_url())
        .env("AWS_ENDPOINT_URL_STS", "http://10.255.255.1:4566")
        .args(["--allow-http-sts", "describe"])
        .run();
    let allowed_by_environment = TestEnv::amictl_at(&refused_url())
        .env("AWS_ENDPOINT_URL_STS", "http://10.255.255.1:4566")
        .env("AMICTL_ALLOW_HTTP_STS", "1")
        .args(["describe"])
        .run();
    assert!(
        allowed_by_environment.stderr.contains("cannot reach"),
        "{}",
        allowed_by_environment.stderr
    );

    refused.assert_code(2);
    assert!(
        refused.stderr.contains("STS endpoint http://10.255.255.1:4566") && refused.stderr.contains("--allow-http-sts"),
        "{}",
        refused.stderr
    );
    assert_eq!(tripwire.connections(), 0, "nothing was sent");
    assert!(
        allowed.stderr.contains("cannot reach"),
        "went on to EC2: {}",
        allowed.stderr
    );
}

/// A role assumed through an STS endpoint nobody answers at fails saying so, and where the
/// endpoint comes from; not "log in again", which it said when the credentials provider was
/// aws-config's. No EC2 request goes without the role's credentials.
#[test]
fn a_role_whose_sts_does_not_answer_says_so() {
    let env = TestEnv::new();
    let proxy = Proxy::start(&env.endpoint);

    let run = env
        .amictl()
        .env("AWS_ENDPOINT_URL_STS", &refused_url())
        .args(["describe", "--role-arn", "arn:aws:iam::333333333333:role/amictl"])
        .args(["--endpoint-url", proxy.url(), "-o", "json"])
        .run();

    let table = env
        .amictl()
        .env("AWS_ENDPOINT_URL_STS", &refused_url())
        .args(["describe", "--role-arn", "arn:aws:iam::333333333333:role/amictl"])
        .args(["--endpoint-url", proxy.url()])
        .run();

    table.assert_code(1);
    assert!(
        table
            .stderr
            .contains("no images found in the accounts and regions that could be read"),
        "not \"no images found\" alone, when nothing could be read: {}",
        table.stderr
    );
    run.assert_code(1);
    assert!(
        run.stderr.contains("no answer from STS")
            && run.stderr.contains("AWS_ENDPOINT_URL_STS")
            && run.stderr.contains("333333333333")
            && !run.stderr.contains("sso"),
        "{}",
        run.stderr
    );
    assert_eq!(proxy.count("DescribeImages"), 0, "{:?}", proxy.counts());
}
