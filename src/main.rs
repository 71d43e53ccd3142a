//! amictl: parse the command line, start the runtime, run the command, exit with its code.

mod cli;
mod commands;
mod ec2;
mod error;
mod logging;
mod model;
mod output;
mod pipeline;
mod types;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Usage errors exit 2 here, before the runtime starts or any credentials are looked up.
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return output::usage_error(&err),
    };
    logging::init(cli.global.verbose, cli.global.quiet);

    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            output::print_error(&anyhow::Error::new(err).context("cannot start the async runtime"));
            return ExitCode::from(error::EXIT_FAILED);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // `amictl describe | head -1`: the reader has what it wanted.
        Err(err) if error::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            output::print_error(&err);
            error::exit_code_of(&err)
        }
    }
}
