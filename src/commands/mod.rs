//! One file per verb. Each takes its parsed arguments and a [`Context`], asks the service
//! layer for what it needs, and hands a result to the printer.

mod cleanup;
mod create;
mod deregister;
mod describe;
mod local;
mod permissions;

use crate::cli::{Cli, Command, GlobalArgs, RegionsArgs};
use crate::ec2::{self, ConnectOptions, Ec2, ThisInstance};
use crate::error::Error;
use crate::output::Printer;
use crate::types::Region;

/// What every command runs with: the EC2 client of its region and the printer.
pub struct Context {
    pub ec2: Ec2,
    pub printer: Printer,
}

/// Runs the command the user asked for.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let Cli { global, command } = cli;
    match command {
        // These talk to nobody: no region, no credentials.
        Command::Completions { shell } => local::completions(shell),
        Command::Man => local::man(),
        Command::Cleanup(args) => {
            // A saved plan names its regions; else --regions / --all-regions / the one region.
            let saved = args.apply_plan.as_deref().map(cleanup::load_plan).transpose()?;
            let regions = match &saved {
                Some(plan) => RegionsArgs {
                    regions: plan.regions().into_iter().filter_map(|r| r.parse().ok()).collect(),
                    all_regions: false,
                },
                None => args.regions.clone(),
            };
            cleanup::run(&contexts(&global, &regions).await?, args, saved).await
        }
        Command::Create(args) => {
            // Without --instance-id, amictl images the machine it runs on: the metadata
            // service says which, and in which region, before anything else is asked.
            let this_instance = match &args.instance_id {
                Some(_) => None,
                None => Some(ec2::this_instance().await?),
            };
            let ctx = connect(&global, this_instance.as_ref()).await?;
            let target = create::Target::new(&args, this_instance.as_ref())
                .ok_or_else(|| Error::Usage("create needs --instance-id".to_owned()))?;
            create::run(&ctx, args, target).await
        }
        Command::Deregister(args) => deregister::run(&connect(&global, None).await?, args).await,
        Command::Describe(args) => describe::run(&contexts(&global, &args.regions).await?, args).await,
        Command::Permissions(command) => permissions::run(&connect(&global, None).await?, command).await,
    }
}

/// One context per region `--regions` names, or per enabled region with `--all-regions`;
/// else the one region of the options.
async fn contexts(global: &GlobalArgs, regions: &RegionsArgs) -> Result<Vec<Context>, Error> {
    let regions = if regions.all_regions {
        connect(global, None).await?.ec2.enabled_regions().await?
    } else {
        regions.regions.clone()
    };
    if regions.is_empty() {
        return Ok(vec![connect(global, None).await?]);
    }
    let mut contexts = Vec::with_capacity(regions.len());
    for region in regions {
        contexts.push(connect_to(global, Some(region), None).await?);
    }
    Ok(contexts)
}

/// The printer and an EC2 client for the region the options (or the instance) name.
async fn connect(global: &GlobalArgs, this_instance: Option<&ThisInstance>) -> Result<Context, Error> {
    connect_to(global, None, this_instance).await
}

/// Like [`connect`], in `region` when given.
async fn connect_to(
    global: &GlobalArgs,
    region: Option<Region>,
    this_instance: Option<&ThisInstance>,
) -> Result<Context, Error> {
    let options = ConnectOptions {
        region: region.or_else(|| global.region.clone()),
        profile: global.profile.clone(),
        endpoint_url: global.endpoint_url.clone(),
        fallback_region: this_instance.map(|this| this.region.clone()),
        max_attempts: global.max_attempts,
        timeout: global.timeout.map(|t| t.0),
    };
    Ok(Context {
        ec2: Ec2::connect(&options).await?,
        printer: Printer::new(global.output, global.color, global.quiet),
    })
}
