//! amictl as a library: the command line (`cli`), the commands, and the layers under them.
//! The binary (src/main.rs) only calls [`main`]; the fuzz targets (fuzz/) use the parsers,
//! the model and the plan directly.
//!
//! The layers, top to bottom (docs/architecture.md): `cli` (clap) → `settings` (what each
//! command is asked, without clap) → `commands` (one file per verb) → `pipeline` (select,
//! plan, execute) → `ec2` (the only module that talks to AWS) → `model` and `types` (plain
//! data, no I/O).

mod cli;
mod commands;
mod ec2;
mod error;
mod interrupt;
mod logging;
pub mod model;
mod output;
pub mod pipeline;
pub mod policy_file;
mod settings;
pub mod types;

use std::process::ExitCode;

use clap::Parser;

use crate::error::Error;
use crate::interrupt::Interrupt;
use crate::output::Printer;

/// Worker threads of the runtime at most.
const MAX_WORKERS: usize = 4;

/// The program: parse the command line, start the runtime, run the command, exit with its
/// code. The run's one printer and one Ctrl-C listener are made here, and only here is the
/// exit code decided.
pub fn main() -> ExitCode {
    // Usage errors exit 2 here, before the runtime starts or any credentials are looked up.
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(&err),
    };
    logging::init(cli.global.verbose, cli.global.quiet);
    // The run's one clock: ages, plans and "in 30 days" all count from it.
    let now = jiff::Timestamp::now();
    // One of each for the whole process: the accounts × regions of a cleanup plan are read on
    // tasks of their own (on every core), which hold them.
    let printer: &'static Printer = Box::leak(Box::new(Printer::new(
        cli.global.output,
        cli.global.color,
        cli.global.quiet,
        now,
    )));
    // Settings are resolved (and files named on the command line read) before any request.
    let settings = match settings::resolve(cli, now) {
        Ok(settings) => settings,
        Err(err) => {
            let err = anyhow::Error::new(err);
            output::print_error(&err);
            return error::exit_code_of(&err);
        }
    };

    // A few worker threads, whatever the machine: at its default 128 requests in flight amictl
    // needs about a core to sign and parse, and each thread costs memory (an allocator arena).
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, MAX_WORKERS));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            output::print_error(&anyhow::Error::new(err).context("cannot start the async runtime"));
            return ExitCode::from(error::EXIT_FAILED);
        }
    };
    let outcome = runtime.block_on(async {
        let interrupt: &'static Interrupt = Box::leak(Box::new(Interrupt::listen()));
        tokio::select! {
            biased;
            () = interrupt.quit() => Err(Error::Interrupted(
                "interrupted; what was started goes on in EC2, and the same command run again finishes the job".to_owned(),
            )
            .into()),
            outcome = commands::run(settings, now, printer, interrupt) => outcome,
        }
    });
    // Whatever is still in flight (a prompt waiting on stdin) is not waited for.
    runtime.shutdown_background();
    match outcome {
        // A closed stdout is no error (the printer stops writing there), so it never hides
        // a failure or an interrupt, and never makes one.
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            output::print_error(&err);
            error::exit_code_of(&err)
        }
    }
}

/// A command line clap refused: help and version as clap prints them; errors as one line
/// naming the option and what is wrong (with clap's suggestion, if it has one), exit 2.
#[allow(clippy::print_stderr)]
fn usage_error(err: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        err.exit();
    }
    let rendered = err.render().to_string();
    let mut lines = rendered.lines();
    let first: Vec<&str> = lines.by_ref().take_while(|l| !l.trim().is_empty()).collect();
    let tips: Vec<&str> = lines.map(str::trim).filter(|l| l.starts_with("tip:")).collect();
    let mut message = first.join(" ");
    for tip in tips {
        message = format!("{message} ({tip})");
    }
    // clap echoes the value it refused: an endpoint URL's password must not show.
    eprintln!("{}", output::for_stderr(&message));
    ExitCode::from(error::EXIT_USAGE)
}
