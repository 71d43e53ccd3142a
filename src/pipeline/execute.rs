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

use super::Progress;
use super::plan::{ImageAction, Outcome, Plan, SnapshotAction};
use crate::ec2::{Deregistered, Ec2, SnapshotDeletion};
use crate::error::Error;
use crate::interrupt::Interrupt;
use crate::model::{BinnedImage, DISABLED_AT_TAG, LaunchPermissions, PERMISSIONS_TAG};
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
        /// The snapshots only this image uses, deleted right after it.
        own_snapshots: Vec<SnapshotId>,
        /// Whether any snapshot of it is to go (its own, or one shared with other planned
        /// images): then the Recycle Bin is asked about it first.
        has_snapshots_to_delete: bool,
    },
    /// DisableImage, after recording the launch permissions it removes.
    Disable {
        index: usize,
        image_id: ImageId,
    },
    Orphan(SnapshotId),
}

/// What a task did: the image's outcome (for image tasks), each snapshot's, and for an image
/// deregistered, whether the Recycle Bin holds it.
type Done = (Option<(usize, Outcome)>, Vec<(SnapshotId, Outcome)>, Option<Binned>);

/// Whether the Recycle Bin holds an image this run deregistered: read before any of its
/// snapshots is deleted, since an image whose snapshots were deleted can't be restored.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Binned {
    /// A retention rule kept it, until then (where EC2 says).
    Until(Option<jiff::Timestamp>),
    /// Gone for good: no rule kept it.
    No,
    /// The endpoint has no Recycle Bin.
    NotOffered,
    /// The bin could not be read: its snapshots are kept, as amictl can't tell.
    Unknown(String),
}

impl Binned {
    /// What the bin's answer about one image says: its entry, or none (gone for good).
    fn of(entry: Option<&BinnedImage>) -> Binned {
        entry.map_or(Binned::No, |e| Binned::Until(e.recycle_bin_exit_time))
    }

    /// Whether the image's snapshots may be deleted.
    fn lets_snapshots_go(&self) -> bool {
        matches!(self, Binned::No | Binned::NotOffered)
    }

    /// Why its snapshots are kept, where they are.
    fn keeps_snapshots_because(&self, image: &ImageId) -> Option<Outcome> {
        match self {
            Binned::Until(until) => Some(Outcome::Kept(format!(
                "its image {image} is in the Recycle Bin{}: kept so that `amictl restore {image}` can bring it back; `amictl cleanup --orphans` deletes it once the image has left the bin",
                until.map(|t| format!(" until {t}")).unwrap_or_default()
            ))),
            Binned::Unknown(why) => Some(Outcome::Failed(format!(
                "not deleted: could not tell whether its image {image} is in the Recycle Bin ({why}); an image whose snapshots are deleted can't be restored. `amictl cleanup --orphans` deletes it once the bin can be read"
            ))),
            Binned::No | Binned::NotOffered => None,
        }
    }

    /// The report's word on the image.
    fn fate(&self, image: &ImageId, kept_snapshots: bool) -> Option<String> {
        match self {
            Binned::Until(until) => Some(format!(
                "{} (`amictl restore {image}`){}",
                until.map_or_else(|| "in the Recycle Bin".to_owned(), |t| format!("restorable until {t}")),
                if kept_snapshots {
                    "; its snapshots are kept until then, `--orphans` deletes them after"
                } else {
                    ""
                }
            )),
            Binned::No => Some("gone for good (no Recycle Bin rule covers it)".to_owned()),
            Binned::Unknown(why) => Some(format!("the Recycle Bin could not be read ({why})")),
            Binned::NotOffered => None,
        }
    }
}

/// The work of a plan, one task per image to deregister or disable (with the snapshots only
/// it uses) and per orphaned snapshot to delete.
fn tasks_of(plan: &Plan, owners: &BTreeMap<SnapshotId, Vec<ImageId>>) -> Vec<Task> {
    let mut tasks: Vec<Task> = plan
        .images
        .iter()
        .enumerate()
        .filter_map(|(index, image)| match image.action {
            ImageAction::Deregister => Some(Task::Image {
                index,
                image_id: image.image_id.clone(),
                has_snapshots_to_delete: image.snapshots.iter().any(|s| s.action == SnapshotAction::Delete),
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
    tasks
}

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
    progress: &dyn Progress,
    interrupt: &Interrupt,
) {
    let concurrency = how.concurrency.max(1);
    let owners = snapshot_owners(plan);
    let tasks = tasks_of(plan, &owners);

    let done: Vec<Done> = futures::stream::iter(tasks)
        .map(|task| async move {
            let _slot = slots.acquire().await;
            run_task(ec2, task, how, progress, interrupt).await
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut snapshot_results: BTreeMap<SnapshotId, Outcome> = BTreeMap::new();
    let mut bin: BTreeMap<ImageId, Binned> = BTreeMap::new();
    for (image, snapshots, binned) in done {
        if let Some((index, outcome)) = image {
            if let Some(binned) = binned {
                bin.insert(plan.images[index].image_id.clone(), binned);
            }
            plan.images[index].result = Some(outcome);
        }
        snapshot_results.extend(snapshots);
    }

    // Shared snapshots: only once every planned image that uses them is gone for good (an
    // image in the Recycle Bin needs them to be restored).
    let gone: BTreeSet<ImageId> = plan
        .images
        .iter()
        .filter(|i| matches!(i.result, Some(Outcome::Done | Outcome::AlreadyGone)))
        .filter(|i| bin.get(&i.image_id).is_none_or(Binned::lets_snapshots_go))
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
                progress.step_done();
                (id, outcome)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    snapshot_results.extend(shared_results);

    record_snapshot_results(plan, &snapshot_results, &owners, &gone, &bin, interrupt.is_stopped());
    for snapshot in plan
        .orphan_snapshots
        .iter_mut()
        .filter(|s| s.action == SnapshotAction::Delete)
    {
        snapshot.result = snapshot_results.get(&snapshot.snapshot_id).cloned();
    }
    say_whether_restorable(ec2, plan, &bin).await;
}

/// Writes each image's snapshot results into the plan: what was done, or why not (kept for
/// an image in the Recycle Bin that uses it, interrupted, or its image not deregistered).
fn record_snapshot_results(
    plan: &mut Plan,
    snapshot_results: &BTreeMap<SnapshotId, Outcome>,
    owners: &BTreeMap<SnapshotId, Vec<ImageId>>,
    gone: &BTreeSet<ImageId>,
    bin: &BTreeMap<ImageId, Binned>,
    interrupted_now: bool,
) {
    // A snapshot several planned images use is held by whichever of them is in the bin.
    let holder = |snapshot: &SnapshotId| {
        owners
            .get(snapshot)
            .into_iter()
            .flatten()
            .find_map(|owner| bin.get(owner).and_then(|binned| binned.keeps_snapshots_because(owner)))
    };
    for image in &mut plan.images {
        let image_gone = gone.contains(&image.image_id);
        for snapshot in image
            .snapshots
            .iter_mut()
            .filter(|s| s.action == SnapshotAction::Delete)
        {
            snapshot.result = Some(
                match (
                    snapshot_results.get(&snapshot.snapshot_id),
                    holder(&snapshot.snapshot_id),
                ) {
                    (Some(outcome), _) => outcome.clone(),
                    (None, Some(kept)) => kept,
                    (None, None) if interrupted_now => interrupted(),
                    (None, None) if image_gone => {
                        Outcome::NotAttempted("another image that uses it was not deregistered".to_owned())
                    }
                    (None, None) => Outcome::NotAttempted("its image was not deregistered".to_owned()),
                },
            );
        }
    }
}

/// Whether each image deregistered now can still be restored: the Recycle Bin holds it (a
/// retention rule covers it) until a time, or it is gone for good. The images whose snapshots
/// were to go were looked up before those were deleted (`bin`); the others are read here in
/// one request, where the endpoint can say; a failed read of it fails nothing that was done.
async fn say_whether_restorable(ec2: &Ec2, plan: &mut Plan, bin: &BTreeMap<ImageId, Binned>) {
    let unread: Vec<ImageId> = plan
        .images
        .iter()
        .filter(|i| i.action == ImageAction::Deregister && i.result == Some(Outcome::Done))
        .filter(|i| !bin.contains_key(&i.image_id))
        .map(|i| i.image_id.clone())
        .collect();
    let mut read: BTreeMap<ImageId, Binned> = BTreeMap::new();
    if !unread.is_empty() {
        match ec2.recycle_bin_entries(&unread).await {
            Ok(Some(binned)) => {
                for id in unread {
                    let entry = binned.iter().find(|b| b.image_id == id);
                    read.insert(id, Binned::of(entry));
                }
            }
            Ok(None) => {}
            Err(err) => tracing::debug!("could not read the Recycle Bin after deregistering: {err}"),
        }
    }
    for image in plan.images.iter_mut().filter(|i| {
        i.action == ImageAction::Deregister && matches!(i.result, Some(Outcome::Done | Outcome::AlreadyGone))
    }) {
        let Some(binned) = bin.get(&image.image_id).or_else(|| read.get(&image.image_id)) else {
            continue;
        };
        let kept = image.snapshots.iter().any(|s| {
            s.action == SnapshotAction::Delete && matches!(s.result, Some(Outcome::Kept(_) | Outcome::Failed(_)))
        });
        image.recycle_bin = binned.fate(&image.image_id, kept);
    }
}

/// Whether the Recycle Bin holds an image just deregistered.
async fn bin_check(ec2: &Ec2, id: &ImageId) -> Binned {
    match ec2.recycle_bin_entry(id).await {
        Ok(Some(entry)) => Binned::of(entry.as_ref()),
        Ok(None) => Binned::NotOffered,
        Err(err) => Binned::Unknown(err.to_string()),
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

async fn run_task(ec2: &Ec2, task: Task, how: Execution, progress: &dyn Progress, interrupt: &Interrupt) -> Done {
    match task {
        Task::Disable { index, image_id } => {
            if interrupt.is_stopped() {
                return (Some((index, interrupted())), Vec::new(), None);
            }
            let outcome = match disable_recording(ec2, &image_id).await {
                Ok(()) => Outcome::Done,
                Err(err) => Outcome::Failed(err.to_string()),
            };
            progress.step_done();
            (Some((index, outcome)), Vec::new(), None)
        }
        Task::Orphan(id) => {
            if interrupt.is_stopped() {
                return (None, vec![(id, interrupted())], None);
            }
            let outcome = delete_with_patience(ec2, &id, &BTreeSet::new(), how.in_use_patience).await;
            progress.step_done();
            (None, vec![(id, outcome)], None)
        }
        Task::Image {
            index,
            image_id,
            own_snapshots,
            has_snapshots_to_delete,
        } => {
            if interrupt.is_stopped() {
                return (Some((index, interrupted())), Vec::new(), None);
            }
            let outcome = match ec2.deregister_image(&image_id).await {
                Ok(Deregistered::Now) => Outcome::Done,
                Ok(Deregistered::AlreadyGone) => Outcome::AlreadyGone,
                Err(err) => Outcome::Failed(err.to_string()),
            };
            progress.step_done();
            if !matches!(outcome, Outcome::Done | Outcome::AlreadyGone) || !has_snapshots_to_delete {
                return (Some((index, outcome)), Vec::new(), None);
            }
            // Before any of its snapshots goes: an image the Recycle Bin holds needs them.
            let binned = bin_check(ec2, &image_id).await;
            let mut snapshots = Vec::new();
            if let Some(kept) = binned.keeps_snapshots_because(&image_id) {
                for id in own_snapshots {
                    progress.step_done();
                    snapshots.push((id, kept.clone()));
                }
            } else {
                let this_image = BTreeSet::from([image_id]);
                for id in own_snapshots {
                    let deleted = delete_with_patience(ec2, &id, &this_image, how.in_use_patience).await;
                    progress.step_done();
                    snapshots.push((id, deleted));
                }
            }
            (Some((index, outcome)), snapshots, Some(binned))
        }
    }
}

/// Records the image's launch permissions (and when) in its tags, then disables it, which
/// removes them: `amictl enable --restore-permissions` gives them back from the record.
///
/// The record survives any sequence of disables and enables: a record left by an earlier
/// disable (enabled since without `--restore-permissions`) is merged with the grants the
/// image has now, never overwritten by them. It is read back before DisableImage is sent:
/// nothing is disabled whose record isn't safely written, and one that can't be (a record
/// that is not amictl's to trust, or more tags than EC2 takes) stops that image alone.
async fn disable_recording(ec2: &Ec2, id: &ImageId) -> Result<(), Error> {
    let refused = |why: String| Error::Failed(format!("not disabled: {why}"));
    let image = ec2
        .image(id)
        .await?
        .ok_or_else(|| refused("the image no longer exists".to_owned()))?;
    let earlier = LaunchPermissions::from_tags(&image.tags).map_err(|bad| {
        refused(format!(
            "its record of launch permissions (tags {PERMISSIONS_TAG}…) can't be trusted: {bad}; correct or remove those tags"
        ))
    })?;
    let current = ec2.launch_permissions(id).await?;
    let merged = earlier.unwrap_or_default().union(&current);
    if let Some(why) = merged.record_fits(&image.tags) {
        return Err(refused(why));
    }
    let mut record = merged.to_tags();
    // A longer record from an earlier disable must not outlive this one.
    let stale: Vec<String> = LaunchPermissions::recorded_tag_keys(&image.tags)
        .into_iter()
        .filter(|k| k != DISABLED_AT_TAG && !record.contains_key(k))
        .collect();
    ec2.untag_image(id, &stale).await?;
    record.insert(DISABLED_AT_TAG.to_owned(), jiff::Timestamp::now().to_string());
    ec2.tag_image(id, &record).await?;
    let written = ec2
        .image(id)
        .await?
        .ok_or_else(|| refused("the image no longer exists".to_owned()))?;
    let read_back = LaunchPermissions::from_tags(&written.tags)
        .ok()
        .flatten()
        .unwrap_or_default();
    if read_back != merged || written.tags.get(DISABLED_AT_TAG) != record.get(DISABLED_AT_TAG) {
        return Err(refused(format!(
            "its launch permissions ({}) did not read back from its tags as written; run the same command again",
            merged.words().join(" ")
        )));
    }
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

    use crate::pipeline::plan::Removal;
    use aws_sdk_ec2::Client;
    use aws_sdk_ec2::operation::delete_snapshot::{DeleteSnapshotError, DeleteSnapshotOutput};
    use aws_sdk_ec2::operation::deregister_image::DeregisterImageOutput;
    use aws_smithy_mocks::{RuleMode, mock};

    use super::*;
    use crate::ec2::mock::{aws_error, mock_ec2};
    use crate::model::Image;
    use crate::pipeline::plan::{Inventory, Policy, plan};

    fn one_image_plan() -> Plan {
        let image = Image::for_tests("ami-00000001");
        let inventory = Inventory {
            images: vec![image.clone()],
            ..Inventory::default()
        };
        let policy = Policy {
            removal: Removal::Deregister { delete_snapshots: true },
            ..Policy::default()
        };
        let selection = crate::pipeline::selection::Selection::of_ids(&["ami-00000001".parse().unwrap()]);
        plan(&inventory, &selection, &policy, jiff::Timestamp::now())
    }

    /// Progress nobody watches.
    struct Unwatched;

    impl Progress for Unwatched {
        fn step_done(&self) {}
        fn stopping(&self) {}
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
        execute(ec2, plan, PATIENT, &Semaphore::new(4), &Unwatched, &Interrupt::never()).await;
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

    fn unavailable() -> aws_smithy_mocks::Rule {
        mock!(Client::deregister_image).then_error(|| {
            aws_sdk_ec2::operation::deregister_image::DeregisterImageError::generic(aws_error(
                "InvalidAMIID.Unavailable",
                "The image id '[ami-00000001]' is no longer available",
            ))
        })
    }

    /// DescribeImages filtered by `image-id`: the image in `state`, or (`None`) nothing.
    fn looked_up(state: Option<&'static str>) -> aws_smithy_mocks::Rule {
        use aws_sdk_ec2::operation::describe_images::DescribeImagesOutput;
        mock!(Client::describe_images)
            .match_requests(|req| req.filters().iter().any(|f| f.name() == Some("image-id")))
            .then_output(move || {
                let images = state.map(|state| {
                    aws_sdk_ec2::types::Image::builder()
                        .image_id("ami-00000001")
                        .state(aws_sdk_ec2::types::ImageState::from(state))
                        .build()
                });
                DescribeImagesOutput::builder()
                    .set_images(Some(images.into_iter().collect()))
                    .build()
            })
    }

    #[tokio::test]
    async fn what_is_already_gone_is_not_an_error() {
        let deregister = unavailable();
        let gone = looked_up(None);
        let delete = mock!(Client::delete_snapshot)
            .then_error(|| DeleteSnapshotError::generic(aws_error("InvalidSnapshot.NotFound", "gone")));
        let bin = empty_recycle_bin();
        let ec2 = mock_ec2(RuleMode::MatchAny, &[&deregister, &gone, &delete, &bin]);
        let mut plan = one_image_plan();

        carry(&ec2, &mut plan).await;
        plan.summarize(0.05);

        assert_eq!(plan.images[0].result, Some(Outcome::AlreadyGone));
        assert_eq!(plan.images[0].snapshots[0].result, Some(Outcome::AlreadyGone));
        assert_eq!(plan.summary.failures, 0);
    }

    /// EC2's `InvalidAMIID.Unavailable` also answers an image that exists in a state that
    /// can't be changed: that one is not gone, and its snapshots stay.
    #[tokio::test]
    async fn unavailable_but_still_there_is_a_failure_not_already_gone() {
        let deregister = unavailable();
        let there = looked_up(Some("pending"));
        let delete = mock!(Client::delete_snapshot).then_output(|| DeleteSnapshotOutput::builder().build());
        let ec2 = mock_ec2(RuleMode::MatchAny, &[&deregister, &there, &delete]);
        let mut plan = one_image_plan();

        carry(&ec2, &mut plan).await;

        match &plan.images[0].result {
            Some(Outcome::Failed(why)) => assert!(why.contains("the image exists, pending"), "{why}"),
            other => panic!("expected a failure, got {other:?}"),
        }
        assert_eq!(delete.num_calls(), 0, "its snapshots stay");
    }

    /// An image in the Recycle Bin needs its snapshots to be restored: they are kept, and a
    /// bin that can't be read keeps them too (a failure to say, not a guess).
    #[tokio::test]
    async fn the_snapshots_of_an_image_in_the_recycle_bin_or_an_unreadable_bin_stay() {
        use aws_sdk_ec2::operation::list_images_in_recycle_bin::{
            ListImagesInRecycleBinError, ListImagesInRecycleBinOutput,
        };
        use aws_sdk_ec2::types::ImageRecycleBinInfo;
        let binned = mock!(Client::list_images_in_recycle_bin).then_output(|| {
            ListImagesInRecycleBinOutput::builder()
                .images(ImageRecycleBinInfo::builder().image_id("ami-00000001").build())
                .build()
        });
        let denied = mock!(Client::list_images_in_recycle_bin).then_error(|| {
            ListImagesInRecycleBinError::generic(aws_error(
                "UnauthorizedOperation",
                "You are not authorized to perform: ec2:ListImagesInRecycleBin",
            ))
        });
        for (bin, kept) in [(binned, true), (denied, false)] {
            let deregister = mock!(Client::deregister_image).then_output(|| DeregisterImageOutput::builder().build());
            let delete = mock!(Client::delete_snapshot).then_output(|| DeleteSnapshotOutput::builder().build());
            let ec2 = mock_ec2(RuleMode::MatchAny, &[&deregister, &delete, &bin]);
            let mut plan = one_image_plan();

            carry(&ec2, &mut plan).await;

            assert_eq!(plan.images[0].result, Some(Outcome::Done));
            assert_eq!(delete.num_calls(), 0, "never deleted while the image may need it");
            match (&plan.images[0].snapshots[0].result, kept) {
                (Some(Outcome::Kept(why)), true) => assert!(why.contains("is in the Recycle Bin"), "{why}"),
                (Some(Outcome::Failed(why)), false) => {
                    assert!(why.contains("could not tell whether its image"), "{why}");
                }
                (other, _) => panic!("unexpected {other:?}"),
            }
        }
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
