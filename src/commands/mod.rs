//! One file per verb. Each takes its parsed arguments and a [`Context`], asks the service
//! layer for what it needs, and hands a result to the printer.

mod cleanup;
mod create;
mod deregister;
mod describe;
mod permissions;

use std::time::Duration;

use crate::cli::{Cli, Command};
use crate::ec2::{ConnectOptions, Ec2};
use crate::output::Printer;

/// How long DeleteSnapshot may keep saying "in use" by an image this run just deregistered
/// before the snapshot is reported as kept (EC2 is eventually consistent).
const IN_USE_PATIENCE: Duration = Duration::from_mins(2);

/// What every command runs with: the EC2 client of its region and the printer.
pub struct Context {
    pub ec2: Ec2,
    pub printer: Printer,
}

/// Runs the command the user asked for.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let global = cli.global;
    let printer = Printer::new(global.output, global.color, global.quiet);
    let options = ConnectOptions {
        region: global.region,
        profile: global.profile,
        endpoint_url: global.endpoint_url,
    };
    let ctx = Context {
        ec2: Ec2::connect(&options).await?,
        printer,
    };
    match cli.command {
        Command::Cleanup(args) => cleanup::run(&ctx, args).await,
        Command::Create(args) => create::run(&ctx, args).await,
        Command::Deregister(args) => deregister::run(&ctx, args).await,
        Command::Describe(args) => describe::run(&ctx, args).await,
        Command::Permissions(command) => permissions::run(&ctx, command).await,
    }
}
