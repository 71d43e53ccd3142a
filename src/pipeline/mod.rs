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
pub mod selection;

use crate::ec2::{Ec2, ReportWait, Reports};
use crate::error::Error;
use crate::interrupt::Interrupt;
use crate::model::{Image, RecycleBin};
use crate::types::{AccountId, ImageId, Region, SnapshotId};
use execute::{Execution, execute};
use plan::{Inventory, Plan};

/// How long DeleteSnapshot may keep saying "in use" by an image this run just deregistered
/// before the snapshot is reported as kept (EC2 is eventually consistent).
const IN_USE_PATIENCE: std::time::Duration = std::time::Duration::from_mins(2);

/// How to carry a plan out and count its savings (`--concurrency`, `--snapshot-price`).
#[derive(Debug, Clone, Copy)]
pub struct Carry {
    /// Accounts × regions read at once while planning.
    pub reads: usize,
    /// Removals in flight at once, across the run.
    pub concurrency: usize,
    /// USD per GB-month.
    pub snapshot_price: f64,
}

impl Carry {
    /// Accounts × regions read at once by default. EC2's rate limits are per account and
    /// region, and each context paces its own, so contexts don't compete for EC2's tokens: the
    /// bound is the client's, the run's budget of requests in flight
    /// ([`crate::ec2::IN_FLIGHT`]). A context asks between one and a dozen things at once as
    /// it goes through its phases; 128 of them keep the budget full while each waits on its
    /// next answer (scripts/bench --org-scale).
    pub const READS: usize = 128;
    /// Removals in flight at once by default: what EC2's mutating buckets take.
    pub const REMOVALS: usize = 8;
}

/// What the executor tells as it goes; the command shows it (a progress bar, a note).
pub trait Progress {
    /// One step (an image, a snapshot) is done, whatever its result.
    fn step_done(&self);
    /// Ctrl-C was heard: nothing new starts, the requests in flight end.
    fn stopping(&self);
}

/// How carrying a plan out ended. The plan holds each entry's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Done,
    /// This many steps failed (see each entry's result).
    Failed(usize),
    /// Ctrl-C stopped it: what was started finished, nothing new began.
    Interrupted,
}

impl Ended {
    /// The run's error for an ending that isn't `Done`, said after the report is shown:
    /// interrupted (130), with failures (1).
    pub fn into_result(self) -> Result<(), Error> {
        match self {
            Ended::Done => Ok(()),
            Ended::Interrupted => Err(Error::Interrupted(
                "interrupted: the report says what was done and what was not; run the same command again to finish"
                    .to_owned(),
            )),
            Ended::Failed(failures) => Err(Error::Failed(format!(
                "{failures} step(s) failed (see RESULT); run the same command again to finish the job"
            ))),
        }
    }
}

/// Carries the plan out (Ctrl-C stops cleanly), records each entry's result in it, and says
/// how it ended. `progress` hears each step (`Plan::steps` of them).
///
/// With several regions (one client each), each region's part of the plan is carried out by
/// its own client, all at once.
pub async fn carry_out(
    clients: &[&Ec2],
    interrupt: &Interrupt,
    plan: &mut Plan,
    carry: Carry,
    progress: &dyn Progress,
) -> Ended {
    let how = Execution {
        concurrency: carry.concurrency,
        in_use_patience: IN_USE_PATIENCE,
    };
    // One limit for the whole run, however many accounts and regions its parts are in.
    let slots = tokio::sync::Semaphore::new(carry.concurrency.max(1));
    // The first Ctrl-C stops new work; the report then says what was done and what was not.
    let _handling = interrupt.handle();
    let mut parts: Vec<Plan> = clients
        .iter()
        .map(|ec2| plan.of_scope(ec2.region(), ec2.account_id()))
        .collect();
    {
        let work = futures::future::join_all(
            clients
                .iter()
                .zip(parts.iter_mut())
                .map(|(ec2, part)| execute(ec2, part, how, &slots, progress, interrupt)),
        );
        tokio::pin!(work);
        tokio::select! {
            biased;
            _ = &mut work => {}
            () = interrupt.stopped() => {
                progress.stopping();
                work.await;
            }
        }
    }
    // The parts' entries, with their results, back into the plan; the rest of it stays, and
    // so do entries of an account or region no client reached (a saved plan's, reported).
    let reached = |region: &Region, account: Option<&AccountId>| {
        clients
            .iter()
            .any(|c| c.region() == region && c.account_id() == account)
    };
    let done = Plan::merge(parts, &plan.selection, &plan.policy);
    let unreached_images: Vec<_> = (plan.images.iter())
        .filter(|i| !reached(&i.region, i.account_id.as_ref()))
        .cloned()
        .collect();
    let unreached_orphans: Vec<_> = (plan.orphan_snapshots.iter())
        .filter(|s| !reached(&s.region, s.account_id.as_ref()))
        .cloned()
        .collect();
    plan.images = done.images;
    plan.images.extend(unreached_images);
    plan.orphan_snapshots = done.orphan_snapshots;
    plan.orphan_snapshots.extend(unreached_orphans);
    plan.summarize(carry.snapshot_price);
    if interrupt.is_stopped() {
        Ended::Interrupted
    } else if plan.summary.failures > 0 {
        Ended::Failed(plan.summary.failures)
    } else {
        Ended::Done
    }
}

/// One account × region's reads, before its plan (`cleanup`).
pub struct Reading {
    pub inventory: Inventory,
    /// The policies that run there.
    pub rules: Vec<plan::Rules>,
    /// `--apply-plan`: its part of the saved plan, to check again.
    pub saved: Option<Plan>,
}

/// What to read besides the images and what can launch them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reads {
    /// The account's snapshots and the Recycle Bin, for orphans.
    pub orphans: bool,
    /// Who else may launch each candidate (not needed when shared images may go), and who
    /// else may create volumes from the snapshots that may go.
    pub launch_permissions: bool,
    /// What creates volumes from snapshots, where snapshots may be deleted (theirs or orphans).
    pub snapshot_consumers: bool,
    /// Who uses the shared candidates in other accounts: usage reports
    /// (`--include-shared=unused`), reused and waited for as this says.
    pub shared_usage: Option<ReportsAsOf>,
}

/// How usage reports are reused and waited for, as of the run's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReportsAsOf {
    pub wait: ReportWait,
    pub now: jiff::Timestamp,
}

impl Reads {
    /// What a plan with this policy needs: snapshots and the Recycle Bin for orphans, launch
    /// permissions unless shared images may go anyway.
    pub fn for_policy(policy: &plan::Policy) -> Reads {
        Reads {
            orphans: policy.orphans.is_some(),
            launch_permissions: policy.shared != plan::Shared::Ignore,
            snapshot_consumers: policy.deletes_snapshots() || policy.orphans.is_some(),
            shared_usage: (policy.shared == plan::Shared::IfUnused).then(ReportsAsOf::default),
        }
    }

    /// Usage reports, where read, are reused and waited for so, as of `now`.
    #[must_use]
    pub fn reporting(self, wait: ReportWait, now: jiff::Timestamp) -> Reads {
        Reads {
            shared_usage: self.shared_usage.map(|_| ReportsAsOf { wait, now }),
            ..self
        }
    }

    /// What a plan of several policies needs: what any of them needs.
    pub fn for_rules(rules: &[plan::Rules]) -> Reads {
        rules.iter().fold(Reads::default(), |reads, rule| {
            let more = Reads::for_policy(&rule.policy);
            Reads {
                orphans: reads.orphans || more.orphans,
                launch_permissions: reads.launch_permissions || more.launch_permissions,
                snapshot_consumers: reads.snapshot_consumers || more.snapshot_consumers,
                shared_usage: reads.shared_usage.or(more.shared_usage),
            }
        })
    }
}

/// Completes the inventory around the account's images: what can launch the candidate
/// images, who else may launch them, and for orphans the account's snapshots and the Recycle
/// Bin, all read concurrently. What the endpoint doesn't offer is said in `notes`.
pub async fn read_inventory(
    ec2: &Ec2,
    images: Vec<Image>,
    candidates: &[ImageId],
    reads: Reads,
) -> Result<Inventory, Error> {
    // The account's snapshots (for orphans), then who else may create volumes from those
    // that may go: alongside the other reads.
    let snapshots = async {
        let (snapshots, recycle_bin) = if reads.orphans {
            futures::try_join!(ec2.own_snapshots(), ec2.recycle_bin())?
        } else {
            (Vec::new(), RecycleBin::NotOffered)
        };
        let sharing = if reads.launch_permissions && reads.snapshot_consumers {
            ec2.snapshot_sharing_of(&snapshots_that_may_go(&images, candidates, &snapshots))
                .await?
        } else {
            std::collections::BTreeMap::new()
        };
        Ok::<_, Error>((snapshots, recycle_bin, sharing))
    };
    let shared = async {
        let shared = if reads.launch_permissions {
            // A public image is known to be shared from DescribeImages already.
            let wanted: std::collections::HashSet<&ImageId> = candidates.iter().collect();
            let private: Vec<&ImageId> = images
                .iter()
                .filter(|i| i.public != Some(true) && wanted.contains(&i.image_id))
                .map(|i| &i.image_id)
                .collect();
            ec2.launch_permissions_of(&private).await?
        } else {
            std::collections::BTreeMap::new()
        };
        // Usage reports for the images shared with someone (not public ones: no report can say
        // who will launch those).
        let reports = if let Some(asked) = reads.shared_usage {
            let shared: Vec<ImageId> = (shared.iter())
                .filter(|(_, grants)| grants.shared_but_not_public())
                .map(|(id, _)| id.clone())
                .collect();
            Some(ec2.shared_usage(&shared, asked.now, asked.wait).await?)
        } else {
            None
        };
        Ok::<_, Error>((shared, reports))
    };
    let (usage, (snapshots, recycle_bin, snapshot_sharing), (shared, shared_usage)) = futures::try_join!(
        Box::pin(ec2.usage_map(candidates, reads.snapshot_consumers)),
        snapshots,
        shared
    )?;
    let mut notes = usage.not_offered.clone();
    if reads.orphans && recycle_bin == RecycleBin::NotOffered {
        notes.push(
            "ListImagesInRecycleBin: the endpoint does not offer the Recycle Bin; snapshots of images in it can't be told apart from orphans"
                .to_owned(),
        );
    }
    if let Some(Reports::NotOffered(why)) = &shared_usage {
        notes.push(format!(
            "DescribeImageUsageReports: {why}; other accounts' use of shared images can't be told, so --include-shared=unused keeps them"
        ));
    }
    Ok(Inventory {
        images,
        usage,
        shared,
        shared_usage,
        run_usage: std::collections::BTreeMap::new(),
        snapshot_sharing,
        snapshots,
        recycle_bin,
        notes,
    })
}

/// The snapshots a plan might delete: the candidates', and those made for an image that no
/// longer exists (orphans, decided in the plan; the few this takes in besides cost a read).
fn snapshots_that_may_go(
    images: &[Image],
    candidates: &[ImageId],
    snapshots: &[crate::model::Snapshot],
) -> Vec<SnapshotId> {
    let wanted: std::collections::HashSet<&ImageId> = candidates.iter().collect();
    let existing: std::collections::HashSet<&ImageId> = images.iter().map(|i| &i.image_id).collect();
    let of_candidates = images
        .iter()
        .filter(|i| wanted.contains(&i.image_id))
        .flat_map(|i| i.snapshot_ids.iter().cloned());
    let orphaned = snapshots
        .iter()
        .filter(|s| s.made_for_image().is_some_and(|image| !existing.contains(&image)))
        .map(|s| s.snapshot_id.clone());
    crate::types::each_once(of_candidates.chain(orphaned))
}
