//! `amictl deregister` and `amictl disable`: exactly the named images; their snapshots only
//! when asked (and never when disabling).

use super::Context;
use super::plan_view::PlanView;
use crate::error::Error;
use crate::pipeline::plan::{ImageAction, Policy, plan};
use crate::pipeline::selection::Selection;
use crate::pipeline::{Carry, Reads, read_inventory};
use crate::types::ImageId;

/// What `deregister` or `disable` was asked (`crate::settings` fills it from the command line).
pub struct Settings {
    pub image_ids: Vec<ImageId>,
    /// Deregister (with or without the snapshots) or disable, and the safety rules.
    pub policy: Policy,
    pub dry_run: bool,
    pub carry: Carry,
}

/// Plans exactly the named images under the policy, and carries the plan out unless `dry_run`.
pub async fn run(ctx: &Context<'_>, settings: &Settings) -> anyhow::Result<()> {
    named(
        ctx,
        &settings.image_ids,
        &settings.policy,
        settings.dry_run,
        settings.carry,
    )
    .await
}

/// Plans the named images under the policy, and carries the plan out unless `dry_run`.
async fn named(
    ctx: &Context<'_>,
    image_ids: &[ImageId],
    policy: &Policy,
    dry_run: bool,
    carry: Carry,
) -> anyhow::Result<()> {
    let images = ctx.ec2.all_own_images().await?;
    // Each image once, in the order named.
    let selection = Selection::of_ids(image_ids);
    let missing = selection.missing(&images);
    if !missing.is_empty() {
        return Err(Error::NotFound {
            what: format!("image {} (among this account's own images)", missing.join(", ")),
            region: ctx.ec2.region().to_string(),
        }
        .into());
    }
    let named = selection.image_ids.clone();
    let inventory = read_inventory(
        &ctx.ec2,
        images,
        &named,
        Reads::for_policy(policy).reporting(ctx.reports, ctx.now),
    )
    .await?;
    for note in &inventory.notes {
        ctx.printer.note(note);
    }
    let mut plan = plan(&inventory, &selection, policy, ctx.now);
    plan.regions = vec![ctx.ec2.region().to_owned()];
    plan.dry_run = dry_run;
    let verb = if policy.disables() { "disabled" } else { "deregistered" };

    if dry_run {
        plan.summarize(carry.snapshot_price);
        ctx.printer.print(&PlanView {
            plan: &plan,
            show_kept: false,
        })?;
    } else {
        let what = if policy.disables() {
            "disabling"
        } else {
            "deregistering"
        };
        super::carry_out_and_report(&[&ctx.ec2], ctx, &mut plan, carry, (what, false)).await?;
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
