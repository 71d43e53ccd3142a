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
use crate::model::{Image, LaunchPermissions};
use crate::output::{Printer, Render};
use crate::types::ImageId;

/// What to do to each image.
#[derive(Debug, Clone, Copy)]
pub enum StageChange {
    /// Deprecate at this time; `None`: cancel the deprecation.
    Deprecate(Option<Timestamp>),
    /// EnableImage; with `true`, also give back the launch permissions amictl recorded.
    Enable {
        restore_permissions: bool,
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
    pub state: Option<String>,
    pub stage: String,
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
    let now = ctx.printer.now();
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

/// Restores images from the Recycle Bin.
pub async fn restore(ctx: &Context<'_>, ids: &[ImageId]) -> anyhow::Result<()> {
    let ids = unique(ids);
    let Some(binned) = ctx.ec2.recycle_bin_entries(&ids).await? else {
        return Err(Error::Failed(format!(
            "the endpoint {} does not support ListImagesInRecycleBin: nothing to restore from",
            ctx.ec2.endpoint()
        ))
        .into());
    };
    let registered = ctx.ec2.describe_images(&query(&ids)).await.unwrap_or_default();
    let missing: Vec<&str> = ids
        .iter()
        .filter(|id| !binned.iter().any(|b| &b.image_id == *id) && !registered.iter().any(|i| &i.image_id == *id))
        .map(ImageId::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(Error::NotFound {
            what: format!(
                "image {} (neither registered nor in the Recycle Bin)",
                missing.join(", ")
            ),
            region: ctx.ec2.region().to_owned(),
        }
        .into());
    }
    let mut results = Vec::new();
    for id in &ids {
        let (outcome, detail) = if registered.iter().any(|i| &i.image_id == id) {
            (
                Outcome::Unchanged,
                "registered already: not in the Recycle Bin".to_owned(),
            )
        } else {
            match ctx.ec2.restore_image(id).await {
                Ok(()) => (Outcome::Changed, "restored from the Recycle Bin".to_owned()),
                Err(err) => (Outcome::Failed, err.to_string()),
            }
        };
        results.push(StageResult {
            image_id: id.clone(),
            outcome,
            detail,
            after: None,
        });
    }
    report(ctx, &ids, results, ctx.printer.now()).await
}

/// Reads the images back, prints what happened to each, and fails (exit 1) if anything did.
async fn report(
    ctx: &Context<'_>,
    ids: &[ImageId],
    mut results: Vec<StageResult>,
    now: Timestamp,
) -> anyhow::Result<()> {
    // What EC2 holds now; an image that can't be read back shows without it.
    let after = ctx.ec2.describe_images(&query(ids)).await.unwrap_or_default();
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
            region: ctx.ec2.region().to_owned(),
        });
    }
    Ok(images)
}

/// Makes the change; `Ok(None)` when the image is in that stage already.
async fn apply(ctx: &Context<'_>, image: &Image, change: StageChange, now: Timestamp) -> Result<Option<String>, Error> {
    let id = &image.image_id;
    match change {
        StageChange::Deprecate(Some(at)) => {
            // EC2 keeps deprecation times to the minute.
            if image
                .deprecation_time
                .is_some_and(|t| t.as_second() / 60 == at.as_second() / 60)
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
        StageChange::Enable { restore_permissions } => {
            let mut done = Vec::new();
            if image.state.as_deref() == Some("disabled") {
                ctx.ec2.enable_image(id).await?;
                done.push("enabled".to_owned());
            }
            if restore_permissions {
                let Some(recorded) = LaunchPermissions::from_tags(&image.tags) else {
                    if image.tags.contains_key(crate::model::DISABLED_AT_TAG) {
                        // amictl disabled it when nobody else could launch it.
                        ctx.ec2
                            .untag_image(id, &LaunchPermissions::recorded_tag_keys(&image.tags))
                            .await?;
                        done.push("it had no launch permissions to give back".to_owned());
                        return Ok(Some(done.join("; ")));
                    }
                    return Err(Error::Failed(format!(
                        "{}amictl has no record of its launch permissions (it did not disable it); grant them with `amictl permissions add`",
                        if done.is_empty() {
                            String::new()
                        } else {
                            format!("{}, but ", done.join("; "))
                        }
                    )));
                };
                ctx.ec2
                    .change_launch_permissions(id, &Grants::all_of(&recorded), &Grants::default(), false)
                    .await?;
                ctx.ec2
                    .untag_image(id, &LaunchPermissions::recorded_tag_keys(&image.tags))
                    .await?;
                done.push(format!(
                    "launch permissions given back ({})",
                    recorded.words().join(", ")
                ));
            }
            Ok((!done.is_empty()).then(|| done.join("; ")))
        }
    }
}

/// Why nothing was sent for an image already in the asked-for stage.
fn already(image: &Image, change: StageChange) -> String {
    match change {
        StageChange::Deprecate(Some(_)) => "deprecation set for that time already".to_owned(),
        StageChange::Deprecate(None) => "no deprecation scheduled".to_owned(),
        StageChange::Protect { .. } => "protected already".to_owned(),
        StageChange::Unprotect => "not protected (or its cooldown runs already)".to_owned(),
        StageChange::Enable { .. } => format!("{} already", image.state.as_deref().unwrap_or("enabled")),
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
    with_deprecation(image.stage(now), image.deprecation_time)
}

fn with_deprecation(stage: String, deprecation_time: Option<Timestamp>) -> String {
    match deprecation_time {
        Some(at) if stage == "deprecating" || stage == "deprecated" => format!("{stage} ({at})"),
        _ => stage,
    }
}

impl After {
    fn stage_text(&self) -> String {
        with_deprecation(self.stage.clone(), self.deprecation_time)
    }
}
