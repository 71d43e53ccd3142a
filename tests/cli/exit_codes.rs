//! The exit-code rule, as a matrix: each command, succeeding or failing in its own way, with
//! stdout read to the end and with stdout's reader gone before anything was written
//! (`amictl … | head -0`). A closed stdout alone is no failure (0), and never hides one: a
//! failed operation is still 1, an interrupt still 130, a usage error still 2.

use std::time::Duration;

use crate::support::proxy::{Fault, Misbehaviour, Proxy};
use crate::support::{Amictl, TestEnv};

/// One row: what runs (the first time with stdout read, the second with it closed), the exit
/// code it must end with either way, and what stderr must say (empty: anything).
struct Case<'a> {
    what: &'static str,
    amictl: Box<dyn Fn(usize) -> Amictl + 'a>,
    code: i32,
    says: &'static str,
}

/// A row of the table.
fn case<'a>(what: &'static str, code: i32, says: &'static str, amictl: impl Fn(usize) -> Amictl + 'a) -> Case<'a> {
    Case {
        what,
        amictl: Box::new(amictl),
        code,
        says,
    }
}

/// Each case, with stdout read and with it closed: the same exit code, the same words.
fn assert_exit_codes(cases: &[Case<'_>]) {
    for case in cases {
        let open = (case.amictl)(0).run();
        let closed = (case.amictl)(1).run_with_closed_stdout();
        assert_eq!(open.code, case.code, "{}, stdout read: {}", case.what, open.stderr);
        assert_eq!(
            closed.code, case.code,
            "{}, stdout closed: {}",
            case.what, closed.stderr
        );
        for run in [&open, &closed] {
            assert!(
                run.stderr.contains(case.says),
                "{} says {:?}: {}",
                case.what,
                case.says,
                run.stderr
            );
        }
        assert!(
            !closed.stderr.contains("cannot print"),
            "{}: a closed stdout is not reported as a failure: {}",
            case.what,
            closed.stderr
        );
    }
}

#[test]
fn a_closed_stdout_never_hides_a_failure_nor_makes_one() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let used = env.create_image(&instance, "exit-used", &[]);
    env.run_instance_from(&used);
    env.create_image(&instance, "exit-free", &[]);
    let refused = Proxy::start(&env.endpoint);
    refused.fail("DescribeImages", Fault::always(Fault::unauthorized()));
    let no_deregistering = Proxy::start(&env.endpoint);
    no_deregistering.fail("DeregisterImage", Fault::always(Fault::unauthorized()));
    // The new image never shows up while the one-second wait polls (after the name check):
    // EC2's eventual consistency, for longer than the wait.
    let slow = [Proxy::start(&env.endpoint), Proxy::start(&env.endpoint)];
    for proxy in &slow {
        let not_yet = Misbehaviour::Error {
            status: 400,
            code: "InvalidAMIID.NotFound".to_owned(),
            message: "The image id does not exist".to_owned(),
        };
        proxy.fail("DescribeImages", Fault::after(1, not_yet));
    }
    let through = |proxy: &Proxy| env.through(proxy);

    let cases = vec![
        case("describe", 0, "", |_| env.amictl().args(["describe"])),
        case("describe, refused", 1, "access denied: DescribeImages", |_| {
            through(&refused).args(["describe", "-o", "json"])
        }),
        case("create --wait, timed out", 1, "gave up waiting for image", |run| {
            through(&slow[run]).args([
                "create",
                "--instance-id",
                &instance,
                "--name",
                "exit-{timestamp}",
                "--no-reboot",
                "--wait",
                "--wait-timeout",
                "1s",
            ])
        }),
        case("deregister, in use", 1, "were not deregistered", |_| {
            env.amictl().args(["deregister", &used, "-o", "json"])
        }),
        case("cleanup, a deregistration refused", 1, "step(s) failed", |_| {
            env.through(&no_deregistering)
                .args(["cleanup", "--name", "exit-free", "--yes"])
        }),
        case("cleanup --yes, its report printed", 0, "", |_| {
            env.amictl().args(["cleanup", "--name", "exit-none-*", "--yes"])
        }),
        case("cleanup --dry-run", 0, "", |_| {
            env.amictl().args(["cleanup", "--all", "--dry-run"])
        }),
        case("permissions show, no such image", 1, "not found", |_| {
            env.amictl().args(["permissions", "show", "ami-0123456789abcdef0"])
        }),
        case("a usage error", 2, "--keep", |_| {
            env.amictl().args(["cleanup", "--keep", "two"])
        }),
        case("completions", 0, "", |_| env.amictl().args(["completions", "bash"])),
    ];

    assert_exit_codes(&cases);
}

#[test]
fn an_interrupt_is_130_with_stdout_closed_too() {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    for n in 1..=2 {
        env.create_image(&instance, &format!("exit-stop-{n}"), &[]);
    }
    let proxy = Proxy::start(&env.endpoint);
    proxy.fail(
        "DeregisterImage",
        Fault::always(Misbehaviour::Delay(Duration::from_millis(600))),
    );

    let mut running = env
        .through(&proxy)
        .args(["cleanup", "--all", "--yes", "--concurrency", "1"])
        .spawn();
    running.close_stdout();
    proxy.wait_for("DeregisterImage", 1);
    running.interrupt();
    let run = running.wait();

    run.assert_code(130);
    assert!(run.stderr.contains("interrupted"), "{}", run.stderr);
}
