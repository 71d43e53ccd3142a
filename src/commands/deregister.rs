//! `amictl deregister`: exactly the named images; their snapshots only when asked.

use super::Context;
use crate::cli::DeregisterArgs;
use crate::error::Error;
use crate::model::Image;
use crate::pipeline::plan::{ImageAction, Policy, plan};
use crate::pipeline::{carry_out, read_inventory};
use crate::types::ImageId;

pub async fn run(ctx: &Context, args: DeregisterArgs) -> anyhow::Result<()> {
    let images = ctx.ec2.all_own_images().await?;
    let missing: Vec<&str> = args
        .image_ids
        .iter()
        .filter(|id| !images.iter().any(|i| i.image_id == id.as_str()))
        .map(ImageId::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(Error::NotFound {
            what: format!("image {} (among this account's own images)", missing.join(", ")),
            region: ctx.ec2.region().to_owned(),
        }
        .into());
    }
    // Each image once, in the order named.
    let mut seen = std::collections::BTreeSet::new();
    let named: Vec<String> = args
        .image_ids
        .iter()
        .map(ToString::to_string)
        .filter(|id| seen.insert(id.clone()))
        .collect();
    let inventory = read_inventory(&ctx.ec2, images, &named, false).await?;
    let selected: Vec<&Image> = named
        .iter()
        .filter_map(|id| inventory.images.iter().find(|i| &i.image_id == id))
        .collect();
    let policy = Policy {
        delete_snapshots: args.delete_snapshots,
        allow_in_use: args.allow_in_use,
        reason: "named on the command line".to_owned(),
        ..Policy::default()
    };
    let mut plan = plan(&inventory, &selected, &policy);
    plan.dry_run = args.dry_run;

    if args.dry_run {
        plan.summarize(args.execution.snapshot_price.0);
        ctx.printer.print(&plan)?;
    } else {
        carry_out(&[&ctx.ec2], &ctx.printer, &mut plan, &args.execution, "deregistering").await?;
    }

    let refused = plan.images.iter().filter(|i| i.action == ImageAction::Keep).count();
    if refused > 0 {
        return Err(Error::Failed(format!("{refused} image(s) were not deregistered (see REASON)")).into());
    }
    Ok(())
}
