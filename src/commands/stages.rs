//! `amictl deprecate`, `enable`, `protect`, `unprotect` and `restore`: move named images
//! between the stages of retirement that can be undone. (`disable` is a removal: it plans
//! like `deregister`, in deregister.rs.)
//!
//! Each image is read first (it must exist), changed unless it is in the asked-for stage
//! already (which is no error), and read back: the output is what EC2 holds afterwards.

use comfy_table::Color;
use jiff::Timestamp;
use serde::Serialize;

use super::Context;
use crate::ec2::{Grants, ImageQuery};
use crate::error::Error;
use crate::model::{DISABLED_AT_TAG, Image, ImageState, LaunchPermissions, PERMISSIONS_TAG, Stage};
use crate::output::{Printer, Render};
use crate::types::{ImageId, SnapshotId, deprecation_as_kept};

/// What to do to each image.
#[derive(Debug, Clone, Copy)]
pub enum StageChange {
    /// Deprecate at this time; `None`: cancel the deprecation.
    Deprecate(Option<Timestamp>),
    /// EnableImage; with `restore_permissions`, also give back the launch permissions amictl
    /// recorded (a public one only with `yes`).
    Enable {
        restore_permissions: bool,
        yes: bool,
    },
    /// Deregistration protection on (with the cooldown or not).
    Protect {
        cooldown: bool,
    },
    Unprotect,
}

/// How one image's change went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Changed,
    /// In the asked-for stage already: nothing sent.
    Unchanged,
    Failed,
}

#[derive(Debug, Serialize)]
pub struct StageResult {
    pub image_id: ImageId,
    pub outcome: Outcome,
    /// What was done, or why not.
    pub detail: String,
    /// The image as EC2 holds it afterwards (`None`: it could not be read back).
    #[serde(flatten)]
    pub after: Option<After>,
}

/// An image's stage as EC2 holds it after the change.
#[derive(Debug, Serialize)]
pub struct After {
    pub name: Option<String>,
    pub state: Option<ImageState>,
    pub stage: Stage,
    pub deprecation_time: Option<Timestamp>,
    pub deregistration_protection: Option<String>,
    pub protected: bool,
    /// The table's PROTECTION cell.
    #[serde(skip)]
    protection: String,
}

impl After {
    fn of(image: &Image, now: Timestamp) -> After {
        let protection = image.protection(now);
        After {
            name: image.name.clone(),
            state: image.state.clone(),
            stage: image.stage(now),
            deprecation_time: image.deprecation_time,
            deregistration_protection: image.deregistration_protection.clone(),
            protected: protection.reason().is_some(),
            protection: protection.label(),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct StageReport {
    pub results: Vec<StageResult>,
}

/// Changes each named image, then reads them all back.
pub async fn run(ctx: &Context<'_>, ids: &[ImageId], change: StageChange) -> anyhow::Result<()> {
    let ids = unique(ids);
    let before = named_images(ctx, &ids).await?;
    if let StageChange::Enable {
        restore_permissions: true,
        yes: false,
    } = change
        && let Some(public) = before
            .iter()
            .find(|image| LaunchPermissions::from_tags(&image.tags).is_ok_and(|r| r.is_some_and(|r| r.public)))
    {
        // Refused before anything changes, as `permissions public` is without --yes.
        return Err(Error::Usage(format!(
            "the record of {} gives public launch permission back: every AWS account could launch it; pass --yes if that is what you want",
            public.image_id
        ))
        .into());
    }
    let now = ctx.now;
    let mut results = Vec::new();
    for image in &before {
        let (outcome, detail) = match apply(ctx, image, change, now).await {
            Ok(Some(done)) => (Outcome::Changed, done),
            Ok(None) => (Outcome::Unchanged, already(image, change)),
            Err(err) => (Outcome::Failed, err.to_string()),
        };
        results.push(StageResult {
            image_id: image.image_id.clone(),
            outcome,
            detail,
            after: None,
        });
    }
    report(ctx, &ids, results, now).await
}

/// Restores images from the Recycle Bin, each on its own: an ID that is registered already is
/// `unchanged`, one that is neither registered nor in the bin fails alone (exit 1), and a
/// binned image's snapshots in the bin are restored first (EC2 can't restore an image whose
/// snapshots are gone).
pub async fn restore(ctx: &Context<'_>, ids: &[ImageId]) -> anyhow::Result<()> {
    let ids = unique(ids);
    let Some(binned) = ctx.ec2.recycle_bin_entries(&ids).await? else {
        return Err(Error::Failed(format!(
            "the endpoint {} does not support ListImagesInRecycleBin: nothing to restore from",
            ctx.ec2.endpoint()
        ))
        .into());
    };
    // Filtered by ID, so that one ID EC2 doesn't know fails no other.
    let registered = ctx.ec2.images_if_any(&ids).await?;
    let snapshots_binned = if binned.is_empty() {
        Some(Vec::new())
    } else {
        // Without this read the images are still tried: EC2 says if one lacks its snapshots.
        ctx.ec2.snapshot_bin_entries(&[]).await.unwrap_or_else(|err| {
            ctx.printer.warn(format!(
                "could not list the snapshots in the Recycle Bin ({err}); restoring the images alone"
            ));
            None
        })
    };
    let mut results = Vec::new();
    for id in &ids {
        let (outcome, detail) = if registered.iter().any(|i| &i.image_id == id) {
            (
                Outcome::Unchanged,
                "registered already: not in the Recycle Bin".to_owned(),
            )
        } else if binned.iter().any(|b| &b.image_id == id) {
            match restore_one(ctx, id, snapshots_binned.as_deref()).await {
                Ok(done) => (Outcome::Changed, done),
                Err(err) => (Outcome::Failed, err.to_string()),
            }
        } else {
            (
                Outcome::Failed,
                format!(
                    "neither registered nor in the Recycle Bin in {} (gone for good, or in another region)",
                    ctx.ec2.region()
                ),
            )
        };
        results.push(StageResult {
            image_id: id.clone(),
            outcome,
            detail,
            after: None,
        });
    }
    report(ctx, &ids, results, ctx.now).await
}

/// Restores one image from the bin: first the snapshots in the bin that were made for it,
/// then the image, then any snapshot its block devices name that is still in the bin.
async fn restore_one(
    ctx: &Context<'_>,
    id: &ImageId,
    snapshots_binned: Option<&[crate::model::BinnedSnapshot]>,
) -> Result<String, Error> {
    let mut restored: Vec<SnapshotId> = Vec::new();
    for snapshot in snapshots_binned
        .unwrap_or_default()
        .iter()
        .filter(|s| s.made_for_image().as_ref() == Some(id))
    {
        ctx.ec2.restore_snapshot(&snapshot.snapshot_id).await?;
        restored.push(snapshot.snapshot_id.clone());
    }
    if let Err(err) = ctx.ec2.restore_image(id).await {
        let gone = if snapshots_binned.is_some() {
            "; its snapshots are not in the Recycle Bin either (deleted for good?): EC2 can't restore an image without them"
        } else {
            ""
        };
        let brought_back = if restored.is_empty() {
            String::new()
        } else {
            format!(" (its snapshots {} were restored)", words(&restored))
        };
        return Err(Error::Failed(format!("{err}{gone}{brought_back}")));
    }
    // A snapshot in the bin whose description doesn't name the image, but which it maps.
    if let Some(binned) = snapshots_binned.filter(|b| !b.is_empty())
        && let Some(image) = ctx.ec2.image(id).await?
    {
        let mapped: Vec<SnapshotId> = binned
            .iter()
            .map(|s| s.snapshot_id.clone())
            .filter(|s| image.snapshot_ids.contains(s) && !restored.contains(s))
            .collect();
        for snapshot in mapped {
            ctx.ec2.restore_snapshot(&snapshot).await?;
            restored.push(snapshot);
        }
    }
    Ok(match restored.as_slice() {
        [] => "restored from the Recycle Bin".to_owned(),
        _ => format!(
            "restored from the Recycle Bin, with its snapshots {} (from the bin too)",
            words(&restored)
        ),
    })
}

fn words(ids: &[SnapshotId]) -> String {
    ids.iter().map(SnapshotId::as_str).collect::<Vec<_>>().join(", ")
}

/// Reads the images back, prints what happened to each, and fails (exit 1) if anything did.
async fn report(
    ctx: &Context<'_>,
    ids: &[ImageId],
    mut results: Vec<StageResult>,
    now: Timestamp,
) -> anyhow::Result<()> {
    // What EC2 holds now; an image that can't be read back shows without it.
    // Filtered by ID: one that is gone (a restore that failed) hides no other.
    let after = ctx.ec2.images_if_any(ids).await.unwrap_or_default();
    for result in &mut results {
        result.after = after
            .iter()
            .find(|i| i.image_id == result.image_id)
            .map(|image| After::of(image, now));
    }
    let failed: Vec<String> = results
        .iter()
        .filter(|r| r.outcome == Outcome::Failed)
        .map(|r| format!("{}: {}", r.image_id, r.detail))
        .collect();
    ctx.printer.print(&StageReport { results })?;
    match failed.as_slice() {
        [] => Ok(()),
        [one] => Err(Error::Failed(one.clone()).into()),
        [first, ..] => {
            Err(Error::Failed(format!("{} images were not changed; the first: {first}", failed.len())).into())
        }
    }
}

/// Each image once, in the order named.
fn unique(ids: &[ImageId]) -> Vec<ImageId> {
    crate::types::each_once(ids.iter().cloned())
}

/// The named images, deprecated and disabled ones included.
fn query(ids: &[ImageId]) -> ImageQuery {
    ImageQuery {
        image_ids: ids.to_vec(),
        include_deprecated: true,
        include_disabled: true,
        ..ImageQuery::default()
    }
}

/// The named images, in the order named; every one must exist.
async fn named_images(ctx: &Context<'_>, ids: &[ImageId]) -> Result<Vec<Image>, Error> {
    let found = ctx.ec2.describe_images(&query(ids)).await?;
    let mut images = Vec::new();
    let mut missing = Vec::new();
    for id in ids {
        match found.iter().find(|i| &i.image_id == id) {
            Some(image) => images.push(image.clone()),
            None => missing.push(id.as_str()),
        }
    }
    if !missing.is_empty() {
        return Err(Error::NotFound {
            what: format!("image {}", missing.join(", ")),
            region: ctx.ec2.region().to_string(),
        });
    }
    Ok(images)
}

/// Makes the change; `Ok(None)` when the image is in that stage already.
async fn apply(ctx: &Context<'_>, image: &Image, change: StageChange, now: Timestamp) -> Result<Option<String>, Error> {
    let id = &image.image_id;
    match change {
        StageChange::Deprecate(Some(at)) => {
            // EC2 keeps deprecation times to the minute, rounding seconds to the nearest one.
            if image
                .deprecation_time
                .is_some_and(|t| deprecation_as_kept(t) == deprecation_as_kept(at))
            {
                return Ok(None);
            }
            ctx.ec2.set_deprecation(id, Some(at)).await?;
            Ok(Some(format!("deprecation set for {at}")))
        }
        StageChange::Deprecate(None) => {
            if image.deprecation_time.is_none() {
                return Ok(None);
            }
            ctx.ec2.set_deprecation(id, None).await?;
            Ok(Some("deprecation cancelled".to_owned()))
        }
        StageChange::Protect { cooldown } => {
            if image.protection(now) == (crate::model::Protection::On { cooldown }) {
                return Ok(None);
            }
            ctx.ec2.set_protection(id, Some(cooldown)).await?;
            Ok(Some(if cooldown {
                "protected, with a 24-hour cooldown".to_owned()
            } else {
                "protected".to_owned()
            }))
        }
        StageChange::Unprotect => match image.protection(now) {
            crate::model::Protection::Off | crate::model::Protection::CoolingDown(_) => Ok(None),
            _ => {
                ctx.ec2.set_protection(id, None).await?;
                Ok(Some("protection turned off".to_owned()))
            }
        },
        StageChange::Enable {
            restore_permissions, ..
        } => enable(ctx, image, restore_permissions).await,
    }
}

/// EnableImage where the image is disabled; with `restore_permissions`, the launch
/// permissions amictl recorded when it disabled the image, given back after checking them as
/// a user's own input would be (a public grant needs `--yes`, checked in `run`, and that EC2
/// would take it).
/// The disable time goes in any case: it belongs to the disable that has just ended.
async fn enable(ctx: &Context<'_>, image: &Image, restore_permissions: bool) -> Result<Option<String>, Error> {
    let id = &image.image_id;
    let recorded = LaunchPermissions::from_tags(&image.tags).map_err(|bad| {
        Error::Failed(format!(
            "its record of launch permissions (tags {PERMISSIONS_TAG}…) can't be trusted: {bad}; nothing changed. Remove those tags, enable it and grant with `amictl permissions add`"
        ))
    })?;
    let recorded = recorded.filter(|r| !r.words().is_empty());
    // A public record without --yes was refused in `run`, before any image changed.
    if restore_permissions && recorded.as_ref().is_some_and(|r| r.public) {
        super::permissions::check_block_public_access(ctx).await?;
        if let Some(why) = super::permissions::refuses_public(image) {
            return Err(Error::Failed(format!("{why}; nothing changed")));
        }
    }
    let mut done = Vec::new();
    if image.is_disabled() {
        ctx.ec2.enable_image(id).await?;
        done.push("enabled".to_owned());
    }
    match (restore_permissions, &recorded) {
        (true, Some(record)) => {
            ctx.ec2
                .change_launch_permissions(id, &Grants::all_of(record), &Grants::default(), false)
                .await?;
            ctx.ec2
                .untag_image(id, &LaunchPermissions::recorded_tag_keys(&image.tags))
                .await?;
            done.push(format!("launch permissions given back ({})", record.words().join(", ")));
        }
        (true, None) if image.tags.contains_key(DISABLED_AT_TAG) => {
            // amictl disabled it when nobody else could launch it.
            ctx.ec2
                .untag_image(id, &LaunchPermissions::recorded_tag_keys(&image.tags))
                .await?;
            done.push("it had no launch permissions to give back".to_owned());
        }
        (true, None) => {
            return Err(Error::Failed(format!(
                "{}amictl has no record of its launch permissions (it did not disable it); grant them with `amictl permissions add`",
                if done.is_empty() {
                    String::new()
                } else {
                    format!("{}, but ", done.join("; "))
                }
            )));
        }
        (false, recorded) => {
            if image.tags.contains_key(DISABLED_AT_TAG) {
                ctx.ec2.untag_image(id, &[DISABLED_AT_TAG.to_owned()]).await?;
                if done.is_empty() {
                    done.push("its disable time, left from an earlier disable, removed".to_owned());
                }
            }
            if let Some(record) = recorded.as_ref().filter(|_| !done.is_empty()) {
                done.push(format!(
                    "a record of its launch permissions remains ({}): `amictl enable {id} --restore-permissions` gives them back",
                    record.words().join(", ")
                ));
            }
        }
    }
    Ok((!done.is_empty()).then(|| done.join("; ")))
}

/// Why nothing was sent for an image already in the asked-for stage.
fn already(image: &Image, change: StageChange) -> String {
    match change {
        StageChange::Deprecate(Some(_)) => "deprecation set for that time already".to_owned(),
        StageChange::Deprecate(None) => "no deprecation scheduled".to_owned(),
        StageChange::Protect { .. } => "protected already".to_owned(),
        StageChange::Unprotect => "not protected (or its cooldown runs already)".to_owned(),
        StageChange::Enable { .. } => format!("{} already", image.state.as_ref().map_or("enabled", ImageState::as_str)),
    }
}

impl Render for StageReport {
    fn tables(&self, printer: &Printer) -> Vec<comfy_table::Table> {
        let mut table = printer.table(&["IMAGE ID", "NAME", "RESULT", "STAGE", "PROTECTION", "DETAIL"]);
        for result in &self.results {
            let after = result.after.as_ref();
            let color = match result.outcome {
                Outcome::Changed => Some(Color::Green),
                Outcome::Unchanged => None,
                Outcome::Failed => Some(Color::Red),
            };
            table.add_row(vec![
                printer.colored(&result.image_id, None),
                printer.colored(after.and_then(|a| a.name.as_deref()).unwrap_or("-"), None),
                printer.colored(
                    match result.outcome {
                        Outcome::Changed => "changed",
                        Outcome::Unchanged => "unchanged",
                        Outcome::Failed => "failed",
                    },
                    color,
                ),
                printer.colored(after.map_or_else(|| "-".to_owned(), After::stage_text), None),
                printer.colored(after.map_or("-", |a| a.protection.as_str()), None),
                printer.colored(&result.detail, None),
            ]);
        }
        vec![table]
    }
}

/// The stage, with the deprecation time where one is set.
pub fn stage_text(image: &Image, now: Timestamp) -> String {
    with_deprecation(&image.stage(now), image.deprecation_time)
}

fn with_deprecation(stage: &Stage, deprecation_time: Option<Timestamp>) -> String {
    match deprecation_time {
        Some(at) if matches!(stage, Stage::Deprecating | Stage::Deprecated) => format!("{stage} ({at})"),
        _ => stage.to_string(),
    }
}

impl After {
    fn stage_text(&self) -> String {
        with_deprecation(&self.stage, self.deprecation_time)
    }
}
