//! The only code that deregisters images and deletes snapshots: carries a plan out and
//! writes each entry's result into it.
//!
//! Images first, all of them; then the snapshots whose every planned image is gone. A
//! snapshot is never deleted before its image's DeregisterImage succeeded. An image to
//! disable has its launch permissions recorded in its tags first, then DisableImage; its
//! snapshots are not touched.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::Semaphore;

use super::plan::{ImageAction, Outcome, Plan, SnapshotAction};
use crate::ec2::{Deregistered, Ec2, SnapshotDeletion};
use crate::error::Error;
use crate::interrupt::Interrupt;
use crate::model::{DISABLED_AT_TAG, LaunchPermissions};
use crate::output::Counter;
use crate::types::{ImageId, SnapshotId};

fn interrupted() -> Outcome {
    Outcome::NotAttempted("interrupted; run the same command again to finish".to_owned())
}

/// How to carry a plan out.
#[derive(Debug, Clone, Copy)]
pub struct Execution {
    /// Requests in flight at once.
    pub concurrency: usize,
    /// How long to keep asking when DeleteSnapshot says the snapshot is in use by an image
    /// this run just deregistered (EC2 is eventually consistent).
    pub in_use_patience: Duration,
}

/// One unit of work: an image and the snapshots only it uses, or an orphaned snapshot.
enum Task {
    Image {
        index: usize,
        image_id: ImageId,
        own_snapshots: Vec<SnapshotId>,
    },
    /// DisableImage, after recording the launch permissions it removes.
    Disable {
        index: usize,
        image_id: ImageId,
    },
    Orphan(SnapshotId),
}

/// What a task did: the image's outcome (for image tasks) and each snapshot's.
type Done = (Option<(usize, Outcome)>, Vec<(SnapshotId, Outcome)>);

/// Carries out the plan's deregistrations and deletions, recording each result in it.
/// Keeps going after a failure: every failure is recorded, nothing is left half-said.
///
/// Each image is deregistered and then, at once, the snapshots only it uses are deleted, so
/// that the work flows like the fastest hand-written loop; orphans run alongside. Snapshots
/// that several planned images use go last, once all of those images are gone. Ctrl-C stops
/// new images from starting; an image already deregistered still gets its snapshots deleted,
/// so nothing is left that a re-run could not find.
///
/// `slots` bounds the tasks in flight across every part of a run (all its accounts and
/// regions): `--concurrency` is one limit for the whole run.
pub async fn execute(
    ec2: &Ec2,
    plan: &mut Plan,
    how: Execution,
    slots: &Semaphore,
    counter: &Counter,
    interrupt: &Interrupt,
) {
    let concurrency = how.concurrency.max(1);
    let owners = snapshot_owners(plan);
    let mut tasks: Vec<Task> = plan
        .images
        .iter()
        .enumerate()
        .filter_map(|(index, image)| match image.action {
            ImageAction::Deregister => Some(Task::Image {
                index,
                image_id: image.image_id.clone(),
                own_snapshots: image
                    .snapshots
                    .iter()
                    .filter(|s| s.action == SnapshotAction::Delete && owners[s.snapshot_id.as_str()].len() == 1)
                    .map(|s| s.snapshot_id.clone())
                    .collect(),
            }),
            ImageAction::Disable => Some(Task::Disable {
                index,
                image_id: image.image_id.clone(),
            }),
            ImageAction::Keep => None,
        })
        .collect();
    tasks.extend(
        plan.orphan_snapshots
            .iter()
            .filter(|s| s.action == SnapshotAction::Delete)
            .map(|s| Task::Orphan(s.snapshot_id.clone())),
    );

    let done: Vec<Done> = futures::stream::iter(tasks)
        .map(|task| async move {
            let _slot = slots.acquire().await;
            run_task(ec2, task, how, counter, interrupt).await
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut snapshot_results: BTreeMap<SnapshotId, Outcome> = BTreeMap::new();
    for (image, snapshots) in done {
        if let Some((index, outcome)) = image {
            plan.images[index].result = Some(outcome);
        }
        snapshot_results.extend(snapshots);
    }

    // Shared snapshots: only once every planned image that uses them is gone.
    let gone: BTreeSet<ImageId> = plan
        .images
        .iter()
        .filter(|i| matches!(i.result, Some(Outcome::Done | Outcome::AlreadyGone)))
        .map(|i| i.image_id.clone())
        .collect();
    let shared: Vec<SnapshotId> = owners
        .iter()
        .filter(|(_, images)| images.len() > 1 && images.iter().all(|i| gone.contains(i)))
        .map(|(id, _)| id.clone())
        .collect();
    let shared_results: Vec<(SnapshotId, Outcome)> = futures::stream::iter(shared)
        .map(|id| {
            let gone = &gone;
            async move {
                let _slot = slots.acquire().await;
                if interrupt.is_stopped() {
                    return (id, interrupted());
                }
                let outcome = delete_with_patience(ec2, &id, gone, how.in_use_patience).await;
                counter.inc();
                (id, outcome)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    snapshot_results.extend(shared_results);

    for image in &mut plan.images {
        let image_gone = gone.contains(&image.image_id);
        for snapshot in image
            .snapshots
            .iter_mut()
            .filter(|s| s.action == SnapshotAction::Delete)
        {
            snapshot.result = Some(match snapshot_results.get(&snapshot.snapshot_id) {
                Some(outcome) => outcome.clone(),
                None if interrupt.is_stopped() => interrupted(),
                None if image_gone => {
                    Outcome::NotAttempted("another image that uses it was not deregistered".to_owned())
                }
                None => Outcome::NotAttempted("its image was not deregistered".to_owned()),
            });
        }
    }
    for snapshot in plan
        .orphan_snapshots
        .iter_mut()
        .filter(|s| s.action == SnapshotAction::Delete)
    {
        snapshot.result = snapshot_results.get(&snapshot.snapshot_id).cloned();
    }
    say_whether_restorable(ec2, plan).await;
}

/// Whether each image deregistered now can still be restored: the Recycle Bin holds it (a
/// retention rule covers it) until a time, or it is gone for good. Said only where the
/// endpoint can say; a failed read of it fails nothing that was done.
async fn say_whether_restorable(ec2: &Ec2, plan: &mut Plan) {
    let deregistered: Vec<ImageId> = plan
        .images
        .iter()
        .filter(|i| i.action == ImageAction::Deregister && i.result == Some(Outcome::Done))
        .map(|i| i.image_id.clone())
        .collect();
    if deregistered.is_empty() {
        return;
    }
    let binned = match ec2.recycle_bin_entries(&deregistered).await {
        Ok(Some(binned)) => binned,
        Ok(None) => return,
        Err(err) => {
            tracing::debug!("could not read the Recycle Bin after deregistering: {err}");
            return;
        }
    };
    for image in plan.images.iter_mut().filter(|i| deregistered.contains(&i.image_id)) {
        image.recycle_bin = Some(match binned.iter().find(|b| b.image_id == image.image_id) {
            Some(entry) => match entry.recycle_bin_exit_time {
                Some(until) => format!("restorable until {until} (`amictl restore {}`)", image.image_id),
                None => format!("in the Recycle Bin (`amictl restore {}`)", image.image_id),
            },
            None => "gone for good (no Recycle Bin rule covers it)".to_owned(),
        });
    }
}

/// Each snapshot to delete, with the planned images that use it.
fn snapshot_owners(plan: &Plan) -> BTreeMap<SnapshotId, Vec<ImageId>> {
    let mut owners: BTreeMap<SnapshotId, Vec<ImageId>> = BTreeMap::new();
    for image in plan.images.iter().filter(|i| i.action == ImageAction::Deregister) {
        for snapshot in image.snapshots.iter().filter(|s| s.action == SnapshotAction::Delete) {
            owners
                .entry(snapshot.snapshot_id.clone())
                .or_default()
                .push(image.image_id.clone());
        }
    }
    owners
}

async fn run_task(ec2: &Ec2, task: Task, how: Execution, counter: &Counter, interrupt: &Interrupt) -> Done {
    match task {
        Task::Disable { index, image_id } => {
            if interrupt.is_stopped() {
                return (Some((index, interrupted())), Vec::new());
            }
            let outcome = match disable_recording(ec2, &image_id).await {
                Ok(()) => Outcome::Done,
                Err(err) => Outcome::Failed(err.to_string()),
            };
            counter.inc();
            (Some((index, outcome)), Vec::new())
        }
        Task::Orphan(id) => {
            if interrupt.is_stopped() {
                return (None, vec![(id, interrupted())]);
            }
            let outcome = delete_with_patience(ec2, &id, &BTreeSet::new(), how.in_use_patience).await;
            counter.inc();
            (None, vec![(id, outcome)])
        }
        Task::Image {
            index,
            image_id,
            own_snapshots,
        } => {
            if interrupt.is_stopped() {
                return (Some((index, interrupted())), Vec::new());
            }
            let outcome = match ec2.deregister_image(&image_id).await {
                Ok(Deregistered::Now) => Outcome::Done,
                Ok(Deregistered::AlreadyGone) => Outcome::AlreadyGone,
                Err(err) => Outcome::Failed(err.to_string()),
            };
            counter.inc();
            let mut snapshots = Vec::new();
            if matches!(outcome, Outcome::Done | Outcome::AlreadyGone) {
                let this_image = BTreeSet::from([image_id]);
                for id in own_snapshots {
                    let deleted = delete_with_patience(ec2, &id, &this_image, how.in_use_patience).await;
                    counter.inc();
                    snapshots.push((id, deleted));
                }
            }
            (Some((index, outcome)), snapshots)
        }
    }
}

/// Records the image's launch permissions (and when) in its tags, then disables it, which
/// removes them: `amictl enable --restore-permissions` gives them back from the record.
async fn disable_recording(ec2: &Ec2, id: &ImageId) -> Result<(), Error> {
    let permissions = ec2.launch_permissions(id).await?;
    let mut record = permissions.to_tags();
    // A longer record from an earlier disable must not outlive this one.
    ec2.untag_image(id, &LaunchPermissions::spill_keys_after(record.len()))
        .await?;
    record.insert(DISABLED_AT_TAG.to_owned(), jiff::Timestamp::now().to_string());
    ec2.tag_image(id, &record).await?;
    ec2.disable_image(id).await
}

/// Deletes a snapshot. "In use" by an image this run deregistered is EC2 catching up, so it
/// is asked again, with backoff, for a while; in use by anything else, it is kept at once.
async fn delete_with_patience(
    ec2: &Ec2,
    id: &SnapshotId,
    deregistered: &BTreeSet<ImageId>,
    patience: Duration,
) -> Outcome {
    let started = Instant::now();
    let mut pause = Duration::from_millis(500);
    loop {
        match ec2.delete_snapshot(id).await {
            Ok(SnapshotDeletion::Deleted) => return Outcome::Done,
            Ok(SnapshotDeletion::AlreadyGone) => return Outcome::AlreadyGone,
            Ok(SnapshotDeletion::InUse(message)) => {
                let users = ImageId::find_in(&message);
                let catching_up = !users.is_empty() && users.iter().all(|u| deregistered.contains(u));
                if !catching_up || started.elapsed() + pause > patience {
                    return Outcome::Kept(message);
                }
                tracing::debug!(
                    snapshot = id.as_str(),
                    "still in use by a deregistered image; asking again in {pause:?}"
                );
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(15));
            }
            Err(err) => return Outcome::Failed(err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    //! moto never answers `InvalidSnapshot.InUse` once an image is deregistered, nor for a
    //! snapshot another account's or a hidden image uses, so those fates are tested here.

    use aws_sdk_ec2::Client;
    use aws_sdk_ec2::operation::delete_snapshot::{DeleteSnapshotError, DeleteSnapshotOutput};
    use aws_sdk_ec2::operation::deregister_image::DeregisterImageOutput;
    use aws_smithy_mocks::{RuleMode, mock};

    use super::*;
    use crate::ec2::mock::{aws_error, mock_ec2};
    use crate::model::Image;
    use crate::output::{ColorChoice, OutputFormat, Printer};
    use crate::pipeline::plan::{Inventory, Policy, plan};

    fn one_image_plan() -> Plan {
        let image = Image::for_tests("ami-00000001");
        let inventory = Inventory {
            images: vec![image.clone()],
            ..Inventory::default()
        };
        let policy = Policy {
            delete_snapshots: true,
            ..Policy::default()
        };
        let selection = crate::pipeline::selection::Selection::of_ids(&["ami-00000001".parse().unwrap()]);
        plan(&inventory, &selection, &policy, jiff::Timestamp::now())
    }

    fn quiet_counter() -> Counter {
        Printer::new(OutputFormat::Json, ColorChoice::Never, true).counter(0, "")
    }

    fn in_use(by: &'static str) -> impl Fn() -> DeleteSnapshotError {
        move || {
            DeleteSnapshotError::generic(aws_error(
                "InvalidSnapshot.InUse",
                &format!("The snapshot snap-00000001 is currently in use by {by}"),
            ))
        }
    }

    /// After deregistering, amictl asks whether the image went into the Recycle Bin: no rule.
    fn empty_recycle_bin() -> aws_smithy_mocks::Rule {
        mock!(Client::list_images_in_recycle_bin).then_output(|| {
            aws_sdk_ec2::operation::list_images_in_recycle_bin::ListImagesInRecycleBinOutput::builder().build()
        })
    }

    const PATIENT: Execution = Execution {
        concurrency: 4,
        in_use_patience: Duration::from_secs(5),
    };

    /// Carries the plan out patiently, four at a time, quietly, with no Ctrl-C.
    async fn carry(ec2: &Ec2, plan: &mut Plan) {
        execute(
            ec2,
            plan,
            PATIENT,
            &Semaphore::new(4),
            &quiet_counter(),
            &Interrupt::never(),
        )
        .await;
    }

    #[tokio::test]
    async fn a_snapshot_in_use_by_another_image_is_kept_not_failed() {
        let deregister = mock!(Client::deregister_image).then_output(|| DeregisterImageOutput::builder().build());
        let delete = mock!(Client::delete_snapshot).then_error(in_use("ami-0fedcba9876543210"));
        let bin = empty_recycle_bin();
        let ec2 = mock_ec2(RuleMode::MatchAny, &[&deregister, &delete, &bin]);
        let mut plan = one_image_plan();

        carry(&ec2, &mut plan).await;
        plan.summarize(0.05);

        assert_eq!(plan.images[0].result, Some(Outcome::Done));
        match &plan.images[0].snapshots[0].result {
            Some(Outcome::Kept(why)) => assert!(why.contains("ami-0fedcba9876543210"), "{why}"),
            other => panic!("expected kept, got {other:?}"),
        }
        assert_eq!(delete.num_calls(), 1, "another image's use is final at once");
        assert_eq!((plan.summary.failures, plan.summary.snapshots_deleted), (0, 0));
    }

    #[tokio::test]
    async fn in_use_by_the_image_just_deregistered_is_eventual_consistency_and_is_retried() {
        let deregister = mock!(Client::deregister_image).then_output(|| DeregisterImageOutput::builder().build());
        let delete = mock!(Client::delete_snapshot)
            .sequence()
            .error(in_use("ami-00000001"))
            .output(|| DeleteSnapshotOutput::builder().build())
            .build();
        let bin = empty_recycle_bin();
        let ec2 = mock_ec2(RuleMode::MatchAny, &[&deregister, &delete, &bin]);
        let mut plan = one_image_plan();

        carry(&ec2, &mut plan).await;

        assert_eq!(plan.images[0].snapshots[0].result, Some(Outcome::Done));
        assert_eq!(delete.num_calls(), 2);
    }

    #[tokio::test]
    async fn a_failed_deregistration_leaves_its_snapshots_alone() {
        let deregister = mock!(Client::deregister_image).then_error(|| {
            aws_sdk_ec2::operation::deregister_image::DeregisterImageError::generic(aws_error(
                "UnauthorizedOperation",
                "You are not authorized to perform this operation.",
            ))
        });
        let delete = mock!(Client::delete_snapshot).then_output(|| DeleteSnapshotOutput::builder().build());
        let ec2 = mock_ec2(RuleMode::MatchAny, &[&deregister, &delete]);
        let mut plan = one_image_plan();

        carry(&ec2, &mut plan).await;
        plan.summarize(0.05);

        assert!(matches!(plan.images[0].result, Some(Outcome::Failed(_))));
        assert!(matches!(
            plan.images[0].snapshots[0].result,
            Some(Outcome::NotAttempted(_))
        ));
        assert_eq!(delete.num_calls(), 0, "never before its image is gone");
        assert_eq!(plan.summary.failures, 1);
    }

    #[tokio::test]
    async fn what_is_already_gone_is_not_an_error() {
        let deregister = mock!(Client::deregister_image).then_error(|| {
            aws_sdk_ec2::operation::deregister_image::DeregisterImageError::generic(aws_error(
                "InvalidAMIID.Unavailable",
                "The image id '[ami-00000001]' is no longer available",
            ))
        });
        let delete = mock!(Client::delete_snapshot)
            .then_error(|| DeleteSnapshotError::generic(aws_error("InvalidSnapshot.NotFound", "gone")));
        let ec2 = mock_ec2(RuleMode::MatchAny, &[&deregister, &delete]);
        let mut plan = one_image_plan();

        carry(&ec2, &mut plan).await;
        plan.summarize(0.05);

        assert_eq!(plan.images[0].result, Some(Outcome::AlreadyGone));
        assert_eq!(plan.images[0].snapshots[0].result, Some(Outcome::AlreadyGone));
        assert_eq!(plan.summary.failures, 0);
    }

    #[tokio::test]
    async fn the_report_says_whether_a_deregistered_image_can_still_be_restored() {
        use aws_sdk_ec2::operation::list_images_in_recycle_bin::ListImagesInRecycleBinOutput;
        use aws_sdk_ec2::primitives::DateTime;
        use aws_sdk_ec2::types::ImageRecycleBinInfo;

        for (binned, says) in [
            (true, "restorable until 2025-12-05T00:00:00Z"),
            (false, "gone for good"),
        ] {
            let deregister = mock!(Client::deregister_image).then_output(|| DeregisterImageOutput::builder().build());
            let delete = mock!(Client::delete_snapshot).then_output(|| DeleteSnapshotOutput::builder().build());
            // As the API reference shapes it: the images asked about that the bin holds.
            let bin = mock!(Client::list_images_in_recycle_bin)
                .match_requests(|req| req.image_ids() == ["ami-00000001"])
                .then_output(move || {
                    let entry = ImageRecycleBinInfo::builder()
                        .image_id("ami-00000001")
                        .recycle_bin_exit_time(DateTime::from_secs(1_764_892_800))
                        .build();
                    ListImagesInRecycleBinOutput::builder()
                        .set_images(Some(if binned { vec![entry] } else { Vec::new() }))
                        .build()
                });
            let ec2 = mock_ec2(RuleMode::MatchAny, &[&deregister, &delete, &bin]);
            let mut plan = one_image_plan();

            carry(&ec2, &mut plan).await;

            let fate = plan.images[0].recycle_bin.clone().unwrap_or_default();
            assert!(fate.starts_with(says), "{fate}");
            assert_eq!(bin.num_calls(), 1);
        }
    }
}
