//! `amictl deregister` and `amictl disable`: exactly the named images; their snapshots only
//! when asked (and never when disabling).

use super::Context;
use crate::cli::{DeregisterArgs, DisableArgs, ExecutionArgs};
use crate::error::Error;
use crate::pipeline::plan::{ImageAction, Policy, plan};
use crate::pipeline::selection::Selection;
use crate::pipeline::{Carry, Reads, carry_out, read_inventory};
use crate::types::ImageId;

pub async fn run(ctx: &Context<'_>, args: DeregisterArgs) -> anyhow::Result<()> {
    let policy = Policy {
        delete_snapshots: args.delete_snapshots,
        allow_in_use: args.allow_in_use,
        include_shared: args.include_shared,
        ..Policy::default()
    };
    named(ctx, &args.image_ids, &policy, args.dry_run, &args.execution).await
}

/// Disables the named images (recording their launch permissions); snapshots stay.
pub async fn disable(ctx: &Context<'_>, args: DisableArgs) -> anyhow::Result<()> {
    let policy = Policy {
        allow_in_use: args.allow_in_use,
        include_shared: args.include_shared,
        disable: true,
        ..Policy::default()
    };
    named(ctx, &args.image_ids, &policy, args.dry_run, &args.execution).await
}

/// Plans the named images under the policy, and carries the plan out unless `dry_run`.
async fn named(
    ctx: &Context<'_>,
    image_ids: &[ImageId],
    policy: &Policy,
    dry_run: bool,
    execution: &ExecutionArgs,
) -> anyhow::Result<()> {
    let images = ctx.ec2.all_own_images().await?;
    // Each image once, in the order named.
    let selection = Selection::of_ids(image_ids);
    let missing = selection.missing(&images);
    if !missing.is_empty() {
        return Err(Error::NotFound {
            what: format!("image {} (among this account's own images)", missing.join(", ")),
            region: ctx.ec2.region().to_owned(),
        }
        .into());
    }
    let named = selection.image_ids.clone();
    let inventory = read_inventory(&ctx.ec2, images, &named, Reads::for_policy(policy)).await?;
    for note in &inventory.notes {
        ctx.printer.note(note);
    }
    let mut plan = plan(&inventory, &selection, policy, ctx.printer.now());
    plan.regions = vec![ctx.ec2.region().to_owned()];
    plan.dry_run = dry_run;
    let verb = if policy.disable { "disabled" } else { "deregistered" };

    if dry_run {
        plan.summarize(execution.snapshot_price.0);
        ctx.printer.print(&plan)?;
    } else {
        carry_out(
            &[&ctx.ec2],
            ctx.printer,
            ctx.interrupt,
            &mut plan,
            Carry::from(execution),
            if policy.disable { "disabling" } else { "deregistering" },
        )
        .await?;
    }

    // A disabled image asked to be disabled is `unchanged`: no refusal.
    let refused = (plan.images.iter())
        .filter(|i| i.action == ImageAction::Keep && !i.unchanged)
        .count();
    if refused > 0 {
        return Err(Error::Failed(format!("{refused} image(s) were not {verb} (see REASON)")).into());
    }
    Ok(())
}
