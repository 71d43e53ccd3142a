//! One file per verb. Each takes its parsed arguments and a [`Context`], asks the service
//! layer for what it needs, and hands a result to the printer.

mod cleanup;
mod create;
mod deregister;
mod describe;
mod permissions;

use crate::cli::{Cli, Command};
use crate::ec2::{self, ConnectOptions, Ec2};
use crate::error::Error;
use crate::output::Printer;

/// What every command runs with: the EC2 client of its region and the printer.
pub struct Context {
    pub ec2: Ec2,
    pub printer: Printer,
}

/// Runs the command the user asked for.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let global = cli.global;
    let printer = Printer::new(global.output, global.color, global.quiet);
    // `create` without --instance-id images the machine amictl runs on: the metadata service
    // says which, and in which region, before anything else is asked.
    let this_instance = match &cli.command {
        Command::Create(args) if args.instance_id.is_none() => Some(ec2::this_instance().await?),
        _ => None,
    };
    let options = ConnectOptions {
        region: global.region,
        profile: global.profile,
        endpoint_url: global.endpoint_url,
        fallback_region: this_instance.as_ref().map(|this| this.region.clone()),
        max_attempts: global.max_attempts,
        timeout: global.timeout.map(|t| t.0),
    };
    let ctx = Context {
        ec2: Ec2::connect(&options).await?,
        printer,
    };
    match cli.command {
        Command::Cleanup(args) => cleanup::run(&ctx, args).await,
        Command::Create(args) => {
            let target = create::Target::new(&args, this_instance.as_ref())
                .ok_or_else(|| Error::Usage("create needs --instance-id".to_owned()))?;
            create::run(&ctx, args, target).await
        }
        Command::Deregister(args) => deregister::run(&ctx, args).await,
        Command::Describe(args) => describe::run(&ctx, args).await,
        Command::Permissions(command) => permissions::run(&ctx, command).await,
    }
}
