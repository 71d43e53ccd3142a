//! One file per verb. Each takes its parsed arguments and a [`Context`], asks the service
//! layer for what it needs, and hands a result to the printer.

mod cleanup;
mod create;
mod deregister;
mod describe;
mod local;
mod permissions;

use crate::cli::{Cli, Command, GlobalArgs, ScopeArgs};
use crate::ec2::{self, ConnectOptions, Ec2, ThisInstance};
use crate::error::Error;
use crate::output::Printer;
use crate::types::{Region, RoleArn};

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
            let scope = match &saved {
                Some(plan) => {
                    let scope = ScopeArgs {
                        regions: cleanup::plan_regions(plan),
                        all_regions: false,
                        role_arns: args.regions.role_arns.clone(),
                    };
                    cleanup::check_roles_cover(plan, &scope.role_arns)?;
                    scope
                }
                None => args.regions.clone(),
            };
            cleanup::run(&contexts(&global, &scope).await?, args, saved).await
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

/// One context per account (`--role-arn`, else the caller's) and region (`--regions`, or the
/// enabled ones with `--all-regions`, else the one region of the options).
async fn contexts(global: &GlobalArgs, scope: &ScopeArgs) -> Result<Vec<Context>, Error> {
    let roles: Vec<Option<&RoleArn>> = if scope.role_arns.is_empty() {
        vec![None]
    } else {
        scope.role_arns.iter().map(Some).collect()
    };
    let mut contexts = Vec::new();
    for role in roles {
        let regions: Vec<Option<Region>> = if scope.all_regions {
            let here = connect_to(global, None, role, None).await?;
            here.ec2.enabled_regions().await?.into_iter().map(Some).collect()
        } else if scope.regions.is_empty() {
            vec![None]
        } else {
            scope.regions.iter().cloned().map(Some).collect()
        };
        for region in regions {
            contexts.push(connect_to(global, region, role, None).await?);
        }
    }
    Ok(contexts)
}

/// The printer and an EC2 client for the region the options (or the instance) name.
async fn connect(global: &GlobalArgs, this_instance: Option<&ThisInstance>) -> Result<Context, Error> {
    connect_to(global, None, None, this_instance).await
}

/// Like [`connect`], in `region` and as `role` when given.
async fn connect_to(
    global: &GlobalArgs,
    region: Option<Region>,
    role: Option<&RoleArn>,
    this_instance: Option<&ThisInstance>,
) -> Result<Context, Error> {
    let options = ConnectOptions {
        region: region.or_else(|| global.region.clone()),
        profile: global.profile.clone(),
        endpoint_url: global.endpoint_url.clone(),
        fallback_region: this_instance.map(|this| this.region.clone()),
        max_attempts: global.max_attempts,
        timeout: global.timeout.map(|t| t.0),
        role: role.cloned(),
    };
    Ok(Context {
        ec2: Ec2::connect(&options).await?,
        printer: Printer::new(global.output, global.color, global.quiet),
    })
}
