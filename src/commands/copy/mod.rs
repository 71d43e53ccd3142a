//! `amictl copy`: an image into the regions that launch it, all at once, safe to re-run.
//!
//! Reads first, in the source region: the image, its launch permissions (`--copy-permissions`)
//! and the account's regions. Then each target region, side by side: the copies made there
//! before (found by their source tags) and any image with the copy's name, a decision
//! (`plan`, no I/O), and the copy (or the earlier one), its tags, the wait and the launch
//! permissions. A region that fails is a row of its own; the others go on.

pub mod plan;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use comfy_table::{Color, Table};
use serde::Serialize;

use super::publish::{self, Published};
use super::{Context, Reach, Waiting};
use crate::ec2::{CopySpec, Ec2, Ending, Grants, RegionInfo, WaitPolicy};
use crate::error::Error;
use crate::model::{Image, ImageState};
use crate::output::{Printer, ProgressLines, Render, elapsed};
use crate::types::{ImageId, KmsKey, NameTemplate, Placeholder, Region, SnapshotId};
use plan::Step;

/// Where to copy to.
#[derive(Debug, Clone)]
pub enum Targets {
    Regions(Vec<Region>),
    /// Every region enabled for the account.
    All,
}

/// A copy asked for, checked as far as it can be without a request.
#[derive(Debug, Clone)]
pub struct Request {
    pub source: ImageId,
    pub targets: Targets,
    /// `None`: the source's name.
    pub name: Option<NameTemplate>,
    /// `None`: the source's description.
    pub description: Option<String>,
    pub copy_tags: bool,
    pub tags: BTreeMap<String, String>,
    pub snapshot_tags: BTreeMap<String, String>,
    pub copy_permissions: CopyPermissions,
    pub encrypt: bool,
    pub kms_keys: Vec<KmsKey>,
    /// When the copies are deprecated.
    pub deprecation: Deprecation,
    /// Wait for every copy to be available.
    pub waiting: Waiting,
    /// What each copy is published to once it is available.
    pub publish: super::publish::Request,
    pub dry_run: bool,
}

/// When the copies are deprecated. CopyImage gives a copy no deprecation time of its own, so
/// an image retired on schedule would leave its copies in other regions behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deprecation {
    /// At the source's deprecation time, if it has one (the default).
    AsTheSource,
    /// This long after the run's clock (`--deprecate-in`; `create --deprecate-in` makes the
    /// image's own time the source's).
    In(jiff::SignedDuration),
    /// None set (`--no-deprecation`); an earlier copy's is left as it is.
    Unset,
}

/// Whether the copies get the source's launch permissions (`--copy-permissions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyPermissions {
    No,
    /// Yes, but not a public one: that is refused.
    Yes,
    /// Yes, a public one too (`--yes`).
    EvenPublic,
}

impl Request {
    /// The copies `create --copy-to-regions` makes of the image it made: its name, tags and
    /// snapshot tags.
    pub fn after_create(
        source: ImageId,
        regions: Vec<Region>,
        snapshot_tags: BTreeMap<String, String>,
        waiting: Waiting,
    ) -> Request {
        Request {
            source,
            targets: Targets::Regions(regions),
            name: None,
            description: None,
            copy_tags: true,
            tags: BTreeMap::new(),
            snapshot_tags,
            copy_permissions: CopyPermissions::No,
            encrypt: false,
            kms_keys: Vec::new(),
            deprecation: Deprecation::AsTheSource,
            waiting,
            publish: super::publish::Request::default(),
            dry_run: false,
        }
    }

    /// Copies wait for availability with `--wait`, and before being given launch permissions.
    fn waits(&self) -> bool {
        self.waiting.wait || self.copy_permissions != CopyPermissions::No || !self.publish.is_empty()
    }
}

pub async fn run(reach: &Reach<'_>, request: &Request) -> anyhow::Result<()> {
    let home = reach.home();
    let copies = copy(reach, &home, request).await?;
    home.printer.print(&copies)?;
    match copies.failure() {
        Some(failure) => Err(failure.into()),
        None => Ok(()),
    }
}

/// The copies, one row per region asked for.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct Copies {
    pub rows: Vec<CopyRow>,
    #[serde(skip)]
    interrupted: bool,
}

/// One region's copy, as the JSON array holds it.
#[derive(Debug, Serialize)]
pub struct CopyRow {
    pub region: String,
    /// `None`: nothing there (a dry run, or a region that failed before copying).
    pub image_id: Option<ImageId>,
    pub source_image_id: ImageId,
    pub source_region: Region,
    pub name: String,
    pub state: Option<ImageState>,
    pub tags: BTreeMap<String, String>,
    pub snapshot_ids: Vec<SnapshotId>,
    /// When the copy is deprecated (`None`: never; on a dry run, when it would be).
    pub deprecation_time: Option<jiff::Timestamp>,
    /// Made before this run (or the source itself, in its own region).
    pub existing: bool,
    /// Why this region failed; `None` when it did not.
    pub error: Option<String>,
    /// What the copy was published to (`--ssm-parameter`, `--launch-template`).
    pub published: Vec<Published>,
    /// What happened, for the table.
    #[serde(skip)]
    what: Cow<'static, str>,
}

impl CopyRow {
    /// The row of a region nothing has happened in yet.
    fn new(job: &Job<'_>, region: &Region) -> CopyRow {
        CopyRow {
            region: region.to_string(),
            image_id: None,
            source_image_id: job.source.image_id.clone(),
            source_region: job.source_region.clone(),
            name: job.spec.name.clone(),
            state: None,
            tags: job.spec.image_tags.clone(),
            snapshot_ids: Vec::new(),
            deprecation_time: None,
            existing: false,
            error: None,
            published: Vec::new(),
            what: Cow::Borrowed(""),
        }
    }

    fn update_from(&mut self, image: &Image) {
        self.state.clone_from(&image.state);
        self.snapshot_ids.clone_from(&image.snapshot_ids);
        self.tags.clone_from(&image.tags);
        self.deprecation_time = image.deprecation_time;
    }

    /// The region failed, for this reason; the table says it too (a job summary has no stderr).
    fn fail(mut self, why: impl std::fmt::Display) -> CopyRow {
        let why = why.to_string();
        self.what = if self.image_id.is_some() {
            format!("copied, then failed: {why}").into()
        } else {
            format!("failed: {why}").into()
        };
        self.error = Some(why);
        self
    }
}

impl Copies {
    /// The error to exit with once the rows are printed: every failed region named, or the
    /// interruption with the copies EC2 goes on making.
    pub fn failure(&self) -> Option<Error> {
        if self.interrupted {
            let going: Vec<String> = self
                .rows
                .iter()
                .filter(|r| r.state.as_ref().is_some_and(ImageState::is_transient))
                .filter_map(|r| Some(format!("{} in {}", r.image_id.as_ref()?, r.region)))
                .collect();
            return Some(Error::Interrupted(if going.is_empty() {
                "interrupted while waiting for the copies".to_owned()
            } else {
                format!(
                    "interrupted: EC2 goes on copying without amictl ({}); check with `amictl describe --regions …`",
                    going.join(", ")
                )
            }));
        }
        let failed: Vec<String> = self
            .rows
            .iter()
            .filter_map(|r| Some(format!("{}: {}", r.region, r.error.as_ref()?)))
            .collect();
        let copying = match failed.as_slice() {
            [] => None,
            [one] => Some(format!("the copy failed in {one}")),
            many => Some(format!(
                "the copies failed in {} regions: {}",
                many.len(),
                many.join("; ")
            )),
        };
        let published: Vec<&Published> = self.rows.iter().flat_map(|r| &r.published).collect();
        let publishing = publish::failure(published).map(|e| e.to_string());
        match (copying, publishing) {
            (None, None) => None,
            (Some(one), None) | (None, Some(one)) => Some(Error::Failed(one)),
            (Some(copying), Some(publishing)) => Some(Error::Failed(format!("{copying}; {publishing}"))),
        }
    }
}

/// Publishes each region's copy, once available, to the parameters and templates asked for;
/// a region without one gets rows saying why (it fails alone).
async fn publish_copies(reach: &Reach<'_>, request: &publish::Request, rows: &mut [CopyRow]) {
    let images = rows
        .iter()
        .filter_map(|row| {
            let region: Region = row.region.parse().ok()?;
            let available = row.state.as_ref().is_some_and(ImageState::is_launchable);
            let image = match (&row.error, &row.image_id) {
                (Some(why), _) => Err(format!("the copy failed: {why}")),
                (None, Some(id)) if available => Ok(id.clone()),
                (None, Some(id)) => Err(format!(
                    "the copy {id} is {}, not available",
                    row.state.as_ref().map_or("in an unknown state", ImageState::as_str)
                )),
                (None, None) => Err("there is no copy".to_owned()),
            };
            Some((region, image))
        })
        .collect();
    let mut published = publish::into_regions(reach, request, images).await;
    for row in rows {
        let (mine, rest) = published.into_iter().partition(|p| p.region.as_str() == row.region);
        row.published = mine;
        published = rest;
    }
}

impl Render for Copies {
    fn title(&self) -> Option<String> {
        let first = self.rows.first()?;
        let failed = self.rows.iter().filter(|r| r.error.is_some()).count();
        let regions = match self.rows.len() {
            1 => "1 region".to_owned(),
            n => format!("{n} regions"),
        };
        Some(format!(
            "Copies of {} ({}) in {regions}, {failed} failed",
            first.source_image_id, first.source_region
        ))
    }

    fn tables(&self, printer: &Printer) -> Vec<Table> {
        copy_tables(&self.rows, printer)
    }
}

/// The copies as a table, and what they were published to (none for no rows).
pub fn copy_tables(rows: &[CopyRow], printer: &Printer) -> Vec<Table> {
    let published: Vec<&Published> = rows.iter().flat_map(|r| &r.published).collect();
    let mut tables: Vec<Table> = copy_table(rows, printer).into_iter().collect();
    if !published.is_empty() {
        tables.push(publish::table(published, printer));
    }
    tables
}

/// The copies as a table (none for no rows).
fn copy_table(rows: &[CopyRow], printer: &Printer) -> Option<Table> {
    if rows.is_empty() {
        return None;
    }
    let mut table = printer.table(&["REGION", "IMAGE ID", "NAME", "STATE", "RESULT"]);
    for row in rows {
        let color = if row.error.is_some() { Some(Color::Red) } else { None };
        table.add_row(vec![
            printer.colored(&row.region, None),
            printer.colored(row.image_id.as_ref().map_or("-", ImageId::as_str), None),
            printer.colored(&row.name, None),
            printer.colored(row.state.as_ref().map_or("-", ImageState::as_str), None),
            printer.colored(&row.what, color),
        ]);
    }
    Some(table)
}

/// What every region's copy shares, known once the source has been read.
struct Job<'a> {
    request: &'a Request,
    source: Image,
    source_region: Region,
    spec: CopySpec,
    /// The launch permissions to give each copy (`--copy-permissions`).
    grants: Option<Grants>,
    /// All the account's regions, when DescribeRegions could be read.
    regions: Option<Vec<RegionInfo>>,
    /// When each copy is deprecated (`None`: no time set).
    deprecate_at: Option<jiff::Timestamp>,
}

/// Copies the source into each target region, side by side.
pub async fn copy(reach: &Reach<'_>, home: &Context<'_>, request: &Request) -> Result<Copies, Error> {
    let job = prepare(home, request).await?;
    let targets = match &request.targets {
        Targets::Regions(regions) => regions.clone(),
        Targets::All => {
            let Some(regions) = &job.regions else {
                return Err(Error::Failed(format!(
                    "--all-regions needs the account's regions, and DescribeRegions could not be read in {}; name them with --to-regions",
                    job.source_region
                )));
            };
            let enabled: Vec<Region> = regions
                .iter()
                .filter(|r| r.is_enabled() && r.name != job.source_region.as_str())
                .filter_map(|r| r.name.parse().ok())
                .collect();
            if let Some(why) = plan::kms_refusal(&request.kms_keys, &enabled) {
                return Err(Error::Usage(why));
            }
            enabled
        }
    };
    if request.dry_run {
        home.printer
            .note("dry run: EC2 is asked whether each copy can be made; nothing is copied");
        if !request.publish.is_empty() {
            home.printer
                .note("dry run: nothing is published; `amictl publish IMAGE --regions … --dry-run` shows it for existing copies");
        }
    }
    let _handling = home.interrupt.handle();
    let lines = home.printer.progress_lines();
    let mut rows =
        futures::future::join_all(targets.iter().map(|region| one_region(reach, &job, region, &lines))).await;
    let interrupted = home.interrupt.is_stopped();
    if !request.publish.is_empty() && !request.dry_run && !interrupted {
        publish_copies(reach, &request.publish, &mut rows).await;
    }
    Ok(Copies { rows, interrupted })
}

/// Reads the source (and its permissions and the account's regions) and refuses, before any
/// copy, what can't work.
async fn prepare<'a>(home: &Context<'_>, request: &'a Request) -> Result<Job<'a>, Error> {
    let ec2 = &home.ec2;
    let source = ec2.image(&request.source).await?.ok_or_else(|| Error::NotFound {
        what: format!("image {}", request.source),
        region: ec2.region().to_string(),
    })?;
    super::require_available(&source, "EC2 copies available images only", "copy")?;
    let name = copy_name(request, &source, home.now)?;
    let grants = if request.copy_permissions == CopyPermissions::No {
        None
    } else {
        Some(grants_to_copy(ec2, request, &source).await?)
    };
    let regions = match ec2.all_regions().await {
        Ok(regions) => Some(regions),
        Err(err) => {
            home.printer.warn(format!(
                "could not list the account's regions ({err}); each region named is tried as it is"
            ));
            None
        }
    };
    let records_key = request.encrypt && !request.kms_keys.is_empty();
    let image_tags = plan::copy_tags(&source, request.copy_tags, &request.tags, records_key).map_err(Error::Failed)?;
    let spec = CopySpec {
        source_image_id: source.image_id.clone(),
        source_region: ec2.region().clone(),
        name,
        description: request.description.clone().or_else(|| source.description.clone()),
        encrypted: request.encrypt,
        kms_key_id: None,
        image_tags,
        snapshot_tags: request.snapshot_tags.clone(),
    };
    Ok(Job {
        request,
        source_region: ec2.region().clone(),
        deprecate_at: plan::deprecation_of_copies(request.deprecation, source.deprecation_time, home.now),
        source,
        spec,
        grants,
        regions,
    })
}

/// The copies' name: `--name` filled in, else the source's.
fn copy_name(request: &Request, source: &Image, now: jiff::Timestamp) -> Result<String, Error> {
    match &request.name {
        None => source.name.clone().ok_or_else(|| {
            Error::Failed(format!(
                "image {} has no name to give its copies; pass --name",
                source.image_id
            ))
        }),
        Some(template) => template
            .expand(|placeholder| name_value(placeholder, source, now))
            .map_err(Error::Usage),
    }
}

/// `--copy-permissions`: the source's grants, refused where a copy can't have them (public
/// without `--yes`; public with encrypted snapshots, which EC2 can't make public).
async fn grants_to_copy(ec2: &Ec2, request: &Request, source: &Image) -> Result<Grants, Error> {
    let permissions = ec2.launch_permissions(&source.image_id).await?;
    if permissions.public {
        if request.copy_permissions != CopyPermissions::EvenPublic && !request.dry_run {
            return Err(Error::Usage(format!(
                "{} is public, so --copy-permissions would make every copy public too; pass --yes if that is what you want",
                source.image_id
            )));
        }
        let encrypted = request.encrypt || source.block_devices.iter().any(|d| d.encrypted == Some(true));
        if encrypted {
            return Err(Error::Failed(format!(
                "{} is public, but its copies' snapshots would be encrypted, and EC2 can't make such images public; \
                 leave out --copy-permissions (and share with `amictl permissions add`), or --encrypt",
                source.image_id
            )));
        }
    }
    Ok(Grants::all_of(&permissions))
}

fn name_value(placeholder: Placeholder, source: &Image, now: jiff::Timestamp) -> Result<String, String> {
    match placeholder {
        Placeholder::Date => Ok(Placeholder::date_of(now)),
        Placeholder::Timestamp => Ok(Placeholder::timestamp_of(now)),
        Placeholder::SourceRegion => Ok(source.region.to_string()),
        Placeholder::SourceName => source
            .name
            .clone()
            .ok_or_else(|| format!("image {} has no name to fill {{source_name}} with", source.image_id)),
        Placeholder::InstanceId => source.source_instance_id.clone().ok_or_else(|| {
            format!(
                "EC2 does not say which instance image {} was made from, to fill {{instance_id}} with",
                source.image_id
            )
        }),
        Placeholder::InstanceName => Err("{instance_name} is create's".to_owned()),
    }
}

/// One target region, start to end; whatever happens ends as its row.
async fn one_region(reach: &Reach<'_>, job: &Job<'_>, region: &Region, lines: &ProgressLines) -> CopyRow {
    let mut row = CopyRow::new(job, region);
    if *region == job.source_region {
        row.image_id = Some(job.source.image_id.clone());
        row.name = job.source.name.clone().unwrap_or_default();
        row.update_from(&job.source);
        row.existing = true;
        row.what = "the source".into();
        return row;
    }
    if let Some(why) = plan::region_refusal(region, &job.source_region, job.regions.as_deref()) {
        return row.fail(why);
    }
    let ctx = reach.region(region);
    match copy_into(&ctx, job, region, &mut row, lines).await {
        Ok(()) => row,
        Err(err) => row.fail(err),
    }
}

async fn copy_into(
    ctx: &Context<'_>,
    job: &Job<'_>,
    region: &Region,
    row: &mut CopyRow,
    lines: &ProgressLines,
) -> Result<(), Error> {
    let ec2 = &ctx.ec2;
    let request = job.request;
    let earlier = ec2.copies_of(&job.source.image_id, &job.source_region).await?;
    let named = ec2.own_images_named(&job.spec.name).await?;
    let kms_key = plan::kms_key_for(&request.kms_keys, region);
    let wanted = plan::Wanted {
        source: &job.source.image_id,
        source_region: &job.source_region,
        encrypt: request.encrypt,
        kms_key,
    };
    let image = match plan::decide(&earlier, &named, &job.spec.name, region, &wanted) {
        Step::Refuse(why) => return Err(Error::Failed(why)),
        Step::Reuse(image) => {
            row.existing = true;
            row.what = "copied before".into();
            *image
        }
        Step::Copy { failed_before } => match start_copy(ctx, job, kms_key, &failed_before, row).await? {
            Some(image) => image,
            None => return Ok(()),
        },
    };
    row.image_id = Some(image.image_id.clone());
    row.update_from(&image);
    if request.dry_run {
        return Ok(());
    }
    finish_tags(ctx, job, &image, row).await?;
    finish_deprecation(ctx, job, &image, row).await?;
    let image = if request.waits() && !image.state.as_ref().is_some_and(ImageState::is_launchable) {
        match wait_for(ctx, job, &image.image_id, region, lines).await? {
            Some(image) => {
                row.update_from(&image);
                image
            }
            None => return Ok(()),
        }
    } else {
        image
    };
    if let Some(grants) = job.grants.as_ref().filter(|g| !g.is_empty())
        && image.state.as_ref().is_some_and(ImageState::is_launchable)
    {
        ec2.change_launch_permissions(&image.image_id, grants, &Grants::default(), false)
            .await
            .map_err(|err| Error::Failed(format!("its launch permissions could not be given: {err}")))?;
    }
    Ok(())
}

/// Sends CopyImage (or, with `--dry-run`, asks whether it would work) and waits briefly for
/// the new image to show up; `None`: nothing to go on with (a dry run, or not visible yet).
async fn start_copy(
    ctx: &Context<'_>,
    job: &Job<'_>,
    kms_key: Option<&str>,
    failed_before: &[ImageId],
    row: &mut CopyRow,
) -> Result<Option<Image>, Error> {
    let ec2 = &ctx.ec2;
    if let Some(grants) = &job.grants
        && grants.public
    {
        super::permissions::check_block_public_access(ctx).await?;
    }
    let mut spec = CopySpec {
        kms_key_id: kms_key.map(str::to_owned),
        ..job.spec.clone()
    };
    if let Some(key) = kms_key {
        spec.image_tags.insert(plan::KMS_KEY_TAG.to_owned(), key.to_owned());
    }
    if job.request.dry_run {
        ec2.copy_image_dry_run(&spec).await?;
        row.what = "can be copied (dry run)".into();
        row.deprecation_time = job.deprecate_at;
        return Ok(None);
    }
    let id = ec2.copy_image(&spec).await?;
    row.image_id = Some(id.clone());
    row.state = Some(ImageState::Pending);
    row.what = if failed_before.is_empty() {
        "copied".into()
    } else {
        format!(
            "copied again ({} failed)",
            failed_before.iter().map(ImageId::as_str).collect::<Vec<_>>().join(", ")
        )
        .into()
    };
    // A new image can take a moment to show up: wait for it, briefly.
    let policy = WaitPolicy::with_timeout(Duration::from_mins(1));
    let end = ec2
        .watch_image(&id, policy, |_| true, ctx.interrupt.stopped(), |_, _| {})
        .await?;
    Ok(end.image)
}

/// Deprecates the copy when the job says (a copy made before, too, whose time differs); an
/// earlier copy's own time stays with `--no-deprecation`.
async fn finish_deprecation(ctx: &Context<'_>, job: &Job<'_>, image: &Image, row: &mut CopyRow) -> Result<(), Error> {
    let Some(at) = job.deprecate_at else {
        return Ok(());
    };
    if image
        .deprecation_time
        .is_some_and(|set| crate::types::deprecation_as_kept(set) == at)
    {
        return Ok(());
    }
    ctx.ec2
        .set_deprecation(&image.image_id, Some(at))
        .await
        .map_err(|err| {
            Error::Failed(format!(
                "its deprecation could not be set ({err}); set it with `amictl deprecate {} --at {at}` in {}",
                image.image_id,
                ctx.ec2.region()
            ))
        })?;
    row.deprecation_time = Some(at);
    Ok(())
}

/// Puts on the tags CopyImage should have put on and an endpoint left off (or an earlier copy
/// lacks): the image's, and the snapshots' where they are known.
async fn finish_tags(ctx: &Context<'_>, job: &Job<'_>, image: &Image, row: &mut CopyRow) -> Result<(), Error> {
    let missing = plan::missing_tags(image, &job.spec.image_tags);
    // An endpoint that left the image's tags off left the snapshots' off too.
    let left_off = !missing.is_empty();
    if left_off {
        ctx.ec2.tag_image(&image.image_id, &missing).await?;
        row.tags.extend(missing);
    }
    if !job.spec.snapshot_tags.is_empty() && (row.existing || left_off) {
        if image.snapshot_ids.is_empty() {
            ctx.printer.warn(format!(
                "the snapshots of {} in {} are not known yet, so --snapshot-tag could not be checked there; a re-run tags them",
                image.image_id,
                ctx.ec2.region()
            ));
        }
        ctx.ec2
            .tag_snapshots(&image.snapshot_ids, &job.spec.snapshot_tags)
            .await?;
    }
    Ok(())
}

/// Waits until the copy is available, with its own progress line. `None`: the user stopped
/// the wait (the row keeps what was last seen).
async fn wait_for(
    ctx: &Context<'_>,
    job: &Job<'_>,
    id: &ImageId,
    region: &Region,
    lines: &ProgressLines,
) -> Result<Option<Image>, Error> {
    let timeout = job.request.waiting.timeout;
    let mut progress = lines.line();
    let end = ctx
        .ec2
        .watch_image(
            id,
            WaitPolicy::with_timeout(timeout),
            |image| image.state.as_ref().is_some_and(ImageState::is_launchable),
            ctx.interrupt.stopped(),
            |look, since| {
                let (state, message) = super::waiting_text(id, look, since);
                progress.update(state, &format!("{region}: {message}"));
            },
        )
        .await;
    progress.finish();
    let end = end?;
    let state = end
        .image
        .as_ref()
        .and_then(|i| i.state.as_ref())
        .map_or_else(|| "unknown".to_owned(), ToString::to_string);
    match end.how {
        Ending::Done => Ok(end.image),
        Ending::Interrupted => Ok(None),
        Ending::Failed => Err(Error::Failed(format!(
            "copy {id} is {state}: {}",
            end.image
                .as_ref()
                .and_then(|i| i.state_reason.as_deref())
                .unwrap_or("EC2 gave no reason")
        ))),
        Ending::TimedOut => Err(Error::Failed(format!(
            "copy {id} is still {state} after {}; EC2 goes on copying, and a re-run picks it up",
            elapsed(timeout)
        ))),
    }
}

#[cfg(test)]
mod tests {
    //! What moto can't show: EC2 tags a copy in CopyImage itself, so nothing is tagged
    //! afterwards; an endpoint that ignores the tags gets them with CreateTags.

    use aws_sdk_ec2::Client;
    use aws_sdk_ec2::operation::copy_image::CopyImageOutput;
    use aws_sdk_ec2::operation::create_tags::CreateTagsOutput;
    use aws_sdk_ec2::operation::describe_images::DescribeImagesOutput;
    use aws_sdk_ec2::types as sdk;
    use aws_smithy_mocks::{Rule, RuleMode, mock};

    use super::*;
    use crate::ec2::mock::mock_ec2;

    const SOURCE: &str = "ami-0123456789abcdef0";
    const COPY: &str = "ami-0fedcba9876543210";

    fn request() -> Request {
        let mut request = Request::after_create(
            SOURCE.parse().unwrap(),
            vec!["eu-west-1".parse().unwrap()],
            BTreeMap::new(),
            Waiting {
                wait: false,
                timeout: Duration::from_secs(1),
            },
        );
        request.tags = BTreeMap::from([("team".to_owned(), "web".to_owned())]);
        request
    }

    fn job(request: &Request) -> Job<'_> {
        let mut source = Image::for_tests(SOURCE);
        source.region = "us-east-1".parse().unwrap();
        let image_tags = plan::copy_tags(&source, false, &request.tags, false).unwrap();
        Job {
            request,
            spec: CopySpec {
                source_image_id: source.image_id.clone(),
                source_region: "us-east-1".parse().unwrap(),
                name: "web-1".to_owned(),
                description: None,
                encrypted: false,
                kms_key_id: None,
                image_tags,
                snapshot_tags: BTreeMap::new(),
            },
            deprecate_at: None,
            source,
            source_region: "us-east-1".parse().unwrap(),
            grants: None,
            regions: None,
        }
    }

    /// No earlier copy and no image of that name; the copy, read back with `tags`.
    fn describe(tags: &'static [(&'static str, &'static str)]) -> Rule {
        mock!(Client::describe_images)
            .match_requests(|req| !req.image_ids().is_empty())
            .then_output(move || {
                let mut image = sdk::Image::builder()
                    .image_id(COPY)
                    .name("web-1")
                    .state(sdk::ImageState::Pending);
                for (k, v) in tags {
                    image = image.tags(sdk::Tag::builder().key(*k).value(*v).build());
                }
                DescribeImagesOutput::builder().images(image.build()).build()
            })
    }

    fn nothing_there() -> Rule {
        mock!(Client::describe_images)
            .match_requests(|req| req.image_ids().is_empty())
            .then_output(|| DescribeImagesOutput::builder().build())
    }

    fn copy_image() -> Rule {
        mock!(Client::copy_image)
            .match_requests(|req| {
                // The SDK's idempotency token: its retries can't make a second copy.
                req.client_token().is_some_and(|t| !t.is_empty())
                    && req.source_region() == Some("us-east-1")
                    && req
                        .tag_specifications()
                        .iter()
                        .any(|spec| spec.tags().iter().any(|t| t.key() == Some("amictl:source-image-id")))
            })
            .then_output(|| CopyImageOutput::builder().image_id(COPY).build())
    }

    fn create_tags() -> Rule {
        mock!(Client::create_tags).then_output(|| CreateTagsOutput::builder().build())
    }

    async fn copy_there(rules: &[&Rule]) -> CopyRow {
        let ctx = Context::for_tests(mock_ec2(RuleMode::MatchAny, rules));
        let request = request();
        let job = job(&request);
        let region: Region = "eu-west-1".parse().unwrap();
        let mut row = CopyRow::new(&job, &region);
        copy_into(&ctx, &job, &region, &mut row, &ctx.printer.progress_lines())
            .await
            .expect("copied");
        row
    }

    #[tokio::test]
    async fn ec2_tags_the_copy_in_copy_image_so_nothing_is_tagged_afterwards() {
        let tags = create_tags();
        let (copy, nothing) = (copy_image(), nothing_there());
        let described = describe(&[
            ("amictl:source-image-id", SOURCE),
            ("amictl:source-region", "us-east-1"),
            ("team", "web"),
        ]);

        let row = copy_there(&[&copy, &nothing, &described, &tags]).await;

        assert_eq!(copy.num_calls(), 1);
        assert_eq!(tags.num_calls(), 0, "CopyImage tagged it");
        assert_eq!(row.image_id.as_ref().map(ImageId::as_str), Some(COPY));
        assert_eq!(row.state, Some(ImageState::Pending));
    }

    #[tokio::test]
    async fn an_endpoint_that_ignores_the_tags_gets_them_afterwards() {
        let tags = create_tags();
        let (copy, nothing) = (copy_image(), nothing_there());
        let described = describe(&[]);

        let row = copy_there(&[&copy, &nothing, &described, &tags]).await;

        assert_eq!(tags.num_calls(), 1);
        assert_eq!(
            row.tags.get("amictl:source-region").map(String::as_str),
            Some("us-east-1")
        );
        assert_eq!(row.tags.get("team").map(String::as_str), Some("web"));
    }
}
