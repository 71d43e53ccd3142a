//! The pipeline `deregister` and `cleanup` share: read once, decide purely, then act.
//!
//! ```text
//! select    which own images the user means             the command, from all own images
//! inventory what uses them; the account's snapshots     read_inventory: a few paginated scans
//! plan      inventory + policy -> Plan                  plan::plan, pure
//! show      the Plan as table / JSON; --dry-run stops   the command
//! execute   DeregisterImage, then DeleteSnapshot        execute::execute, bounded concurrency
//! report    the Plan with each entry's result           the command
//! ```

pub mod execute;
pub mod plan;
mod report;

use crate::cli::ExecutionArgs;
use crate::ec2::Ec2;
use crate::error::Error;
use crate::model::Image;
use crate::output::Printer;
use execute::{Execution, Interrupt, execute};
use plan::{Inventory, Plan};

/// How long DeleteSnapshot may keep saying "in use" by an image this run just deregistered
/// before the snapshot is reported as kept (EC2 is eventually consistent).
const IN_USE_PATIENCE: std::time::Duration = std::time::Duration::from_mins(2);

/// Carries the plan out (a progress bar on a terminal; Ctrl-C stops cleanly), prints the
/// report, and says how the run ended: interrupted (130), with failures (1), or done.
///
/// With several regions (one client each), each region's part of the plan is carried out by
/// its own client, all at once.
pub async fn carry_out(
    clients: &[&Ec2],
    printer: &Printer,
    plan: &mut Plan,
    args: &ExecutionArgs,
    what: &str,
) -> Result<(), Error> {
    let steps = plan.images.len() + plan.snapshots().count();
    let counter = printer.counter(steps, what);
    let how = Execution {
        concurrency: usize::from(args.concurrency),
        in_use_patience: IN_USE_PATIENCE,
    };
    let interrupt = Interrupt::watch(printer);
    let mut parts: Vec<Plan> = clients
        .iter()
        .map(|ec2| plan.of_scope(ec2.region(), ec2.account_id()))
        .collect();
    futures::future::join_all(
        clients
            .iter()
            .zip(parts.iter_mut())
            .map(|(ec2, part)| execute(ec2, part, how, &counter, &interrupt)),
    )
    .await;
    *plan = Plan::merge(parts, plan.dry_run);
    counter.finish();
    plan.summarize(args.snapshot_price.0);
    printer
        .print(plan)
        .map_err(|e| Error::Failed(format!("cannot print the report: {e}")))?;
    if interrupt.is_stopped() {
        return Err(Error::Interrupted(
            "interrupted: the report says what was done and what was not; run the same command again to finish"
                .to_owned(),
        ));
    }
    if plan.summary.failures > 0 {
        return Err(Error::Failed(format!(
            "{} step(s) failed (see RESULT); run the same command again to finish the job",
            plan.summary.failures
        )));
    }
    Ok(())
}

/// Completes the inventory around the account's images: what uses the candidate images,
/// and with `orphans` the account's snapshots, read concurrently.
pub async fn read_inventory(
    ec2: &Ec2,
    images: Vec<Image>,
    candidates: &[String],
    orphans: bool,
) -> Result<Inventory, Error> {
    let snapshots = async {
        if orphans {
            ec2.own_snapshots().await
        } else {
            Ok(Vec::new())
        }
    };
    let (users, snapshots) = futures::try_join!(ec2.image_users(candidates), snapshots)?;
    Ok(Inventory {
        images,
        users,
        snapshots,
    })
}
