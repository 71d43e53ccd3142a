//! `amictl publish IMAGE --ssm-parameter … --launch-template …`: a new image to what launches
//! it, in each region its copy is in. A launch template gets a new version, its default version
//! with only the image changed, made the default (unless `--no-default`); an SSM parameter gets
//! the image as a new value of data type `aws:ec2:image` (and `--label` moved to it), read back
//! once SSM has checked it. What names the image already gets nothing, so a re-run changes
//! nothing. Each template and parameter is a row, its failure its own, listing the launchers
//! that follow the change and those that stay (`followers`). `create` and `copy` publish the
//! same way once their images are available (`into_regions`).

pub mod followers;

use comfy_table::{Color, Table};
use serde::Serialize;

use super::{Context, Reach};
use crate::ec2::{LaunchPaths, SettleWait, Settled, TemplateVersion};
use crate::error::Error;
use crate::model::{Image, ImageState};
use crate::output::{Printer, Render};
use crate::types::{ImageId, LaunchTemplateRef, ParameterLabel, ParameterName, Region};
use followers::{Followers, TemplateAfter};

/// What to publish an image to, and how (`publish`, and `create` and `copy` with the same
/// flags).
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub templates: Vec<LaunchTemplateRef>,
    pub parameters: Vec<ParameterName>,
    /// Moved to each parameter's new version (`--label`).
    pub label: Option<ParameterLabel>,
    /// Make each template's new version its default (not with `--no-default`).
    pub set_default: bool,
    pub dry_run: bool,
    /// How long to wait for SSM to take a value.
    pub settle: SettleWait,
}

impl Request {
    /// Whether there is anything to publish to.
    pub fn is_empty(&self) -> bool {
        self.templates.is_empty() && self.parameters.is_empty()
    }
}

/// What `publish` was asked (`crate::settings` fills it from the command line).
#[derive(Debug, Clone)]
pub struct Settings {
    pub image: ImageId,
    /// Where to publish: each region's copy of the image (empty: `--region`, the image's own).
    pub regions: Vec<Region>,
    pub request: Request,
}

/// What is published to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    LaunchTemplate,
    SsmParameter,
}

/// One template or parameter in one region: what it launched, and what it launches now. The
/// JSON array holds these.
#[derive(Debug, Serialize)]
pub struct Published {
    pub region: Region,
    pub kind: Kind,
    /// The template or parameter as named on the command line.
    pub target: String,
    pub template_id: Option<String>,
    pub template_name: Option<String>,
    /// The template's default version, or the parameter's version, before; and its image.
    pub previous_version: Option<i64>,
    pub previous_image_id: Option<String>,
    /// The image published in this region (the source's copy there); `None`: none found.
    pub image_id: Option<ImageId>,
    /// The version that names the image (new or found); `None` on a dry run or a failure.
    pub version: Option<i64>,
    /// A template's: whether that version is the default.
    pub default: Option<bool>,
    /// A parameter's: the label that version carries (`--label`).
    pub label: Option<String>,
    /// Whether this run changed the template or parameter.
    pub changed: bool,
    /// On a dry run, what would be done (`None`: nothing, or not a dry run).
    pub planned: Option<String>,
    /// Who launches through it, and whether they follow; `None`: not read (see stderr).
    pub followers: Option<Followers>,
    pub error: Option<String>,
}

#[derive(Serialize)]
#[serde(transparent)]
struct Rows(Vec<Published>);

/// Publishes the image (in each region, its copy) to each template and parameter, then prints
/// a row each; exit 1 naming each one that failed.
pub async fn run(reach: &Reach<'_>, settings: &Settings) -> anyhow::Result<()> {
    let home = reach.home();
    let image = home.ec2.image(&settings.image).await?.ok_or_else(|| Error::NotFound {
        what: format!("image {}", settings.image),
        region: home.ec2.region().to_string(),
    })?;
    super::require_available(&image, "only an available image can be published", "publish")?;
    let here = home.ec2.region().clone();
    let regions = if settings.regions.is_empty() {
        vec![here.clone()]
    } else {
        settings.regions.clone()
    };
    let found = futures::future::join_all(regions.into_iter().map(|region| {
        let (image, here) = (&image, &here);
        async move {
            let found = image_in(&reach.region(&region), image, here).await;
            (region, found)
        }
    }))
    .await;
    let rows = Rows(into_regions(reach, &settings.request, found).await);
    if settings.request.dry_run {
        home.printer.note("dry run: nothing was changed");
    }
    home.printer.print(&rows)?;
    match failure(&rows.0) {
        Some(err) => Err(err.into()),
        None => Ok(()),
    }
}

/// The image to publish in a region: the source in its own, elsewhere its newest available
/// copy (found by its source tags, as `copy` finds it); `Err`: why there is none.
async fn image_in(ctx: &Context<'_>, source: &Image, source_region: &Region) -> Result<ImageId, String> {
    if ctx.ec2.region() == source_region {
        return Ok(source.image_id.clone());
    }
    let mut copies = (ctx.ec2.copies_of(&source.image_id, source_region).await).map_err(|err| err.to_string())?;
    // The tags are anyone's to write: an image EC2 says was copied from elsewhere is not it.
    copies.retain(|copy| super::copy::plan::copied_from(copy, &source.image_id, source_region));
    copies.sort_by(Image::newest_first);
    if let Some(copy) = copies
        .iter()
        .find(|c| c.state.as_ref().is_some_and(ImageState::is_launchable))
    {
        return Ok(copy.image_id.clone());
    }
    let copy_it = format!(
        "`amictl copy {} --to-regions {} --wait`",
        source.image_id,
        ctx.ec2.region()
    );
    Err(match copies.first() {
        Some(copy) => format!(
            "its copy there, {}, is {}: wait for it ({copy_it} waits), then publish",
            copy.image_id,
            copy.state.as_ref().map_or("in an unknown state", ImageState::as_str)
        ),
        None => format!("no copy of {} is there: copy it first ({copy_it})", source.image_id),
    })
}

/// Publishes each region's image (or fails its rows with why there is none), the regions side
/// by side.
pub async fn into_regions(
    reach: &Reach<'_>,
    request: &Request,
    images: Vec<(Region, Result<ImageId, String>)>,
) -> Vec<Published> {
    let regions = images
        .into_iter()
        .map(|(region, image)| async move { in_region(&reach.region(&region), request, image).await });
    futures::future::join_all(regions).await.into_iter().flatten().collect()
}

/// A template or a parameter, to publish to.
#[derive(Clone, Copy)]
enum Target<'a> {
    Template(&'a LaunchTemplateRef),
    Parameter(&'a ParameterName),
}

/// One region: who launches through what (for the followers), then each template and
/// parameter in turn.
pub async fn in_region(ctx: &Context<'_>, request: &Request, image: Result<ImageId, String>) -> Vec<Published> {
    let paths = match &image {
        Ok(_) if !request.is_empty() => match ctx.ec2.launch_paths().await {
            Ok(paths) => Some(paths),
            Err(err) => {
                ctx.printer.warn(format!(
                    "who follows the change in {} could not be told: {err}",
                    ctx.ec2.region()
                ));
                None
            }
        },
        _ => None,
    };
    let templates = request.templates.iter().map(Target::Template);
    let mut rows = Vec::new();
    for target in templates.chain(request.parameters.iter().map(Target::Parameter)) {
        let (kind, named) = match target {
            Target::Template(template) => (Kind::LaunchTemplate, template.to_string()),
            Target::Parameter(name) => (Kind::SsmParameter, name.to_string()),
        };
        let mut row = Published::new(ctx.ec2.region(), kind, named, &image);
        if let Ok(image) = &image {
            let paths = paths.as_ref();
            let done = match target {
                Target::Template(template) => to_template(ctx, request, template, image, paths, &mut row).await,
                Target::Parameter(name) => to_parameter(ctx, request, name, image, paths, &mut row).await,
            };
            if let Err(err) = done {
                row.error = Some(err.to_string());
            }
        }
        rows.push(row);
    }
    rows
}

async fn to_template(
    ctx: &Context<'_>,
    request: &Request,
    template: &LaunchTemplateRef,
    image: &ImageId,
    paths: Option<&LaunchPaths>,
    row: &mut Published,
) -> Result<(), Error> {
    let (default, latest) = ctx.ec2.default_and_latest_versions(template).await?;
    row.template_id = Some(default.template_id.clone());
    row.template_name = Some(default.template_name.clone());
    row.previous_version = Some(default.number);
    row.previous_image_id.clone_from(&default.image);
    row.default = Some(false);
    let names_it = |version: &TemplateVersion| version.image.as_deref() == Some(image.as_str());
    // An earlier run with --no-default made the latest version: that one, not another.
    let found = if names_it(&default) {
        Some(default.number)
    } else {
        names_it(&latest).then_some(latest.number)
    };
    let naming = found.unwrap_or(latest.number + 1);
    let becomes_default = naming == default.number || request.set_default;
    let after = TemplateAfter {
        template_id: &default.template_id,
        template_name: &default.template_name,
        default: if becomes_default { naming } else { default.number },
        latest: latest.number.max(naming),
        naming,
    };
    row.followers = paths.map(|paths| followers::of_template(paths, &after));
    if found == Some(default.number) {
        (row.version, row.default) = (Some(default.number), Some(true));
        return Ok(());
    }
    if request.dry_run {
        row.planned = Some(match found {
            Some(version) if !request.set_default => {
                row.version = Some(version);
                return Ok(());
            }
            Some(version) => format!("make version {version}, which names the image, the default"),
            None if request.set_default => format!(
                "make version {naming} from version {} with only the image changed, the default",
                default.number
            ),
            None => format!(
                "make version {naming} from version {} with only the image changed",
                default.number
            ),
        });
        return Ok(());
    }
    let version = if let Some(version) = found {
        version
    } else {
        let made = ctx.ec2.new_template_version(&default, image).await?;
        row.changed = true;
        made
    };
    row.version = Some(version);
    if request.set_default {
        ctx.ec2
            .set_default_template_version(&default.template_id, version)
            .await
            .map_err(|err| Error::Failed(format!("version {version} was made, but not made the default: {err}")))?;
        (row.default, row.changed) = (Some(true), true);
    }
    Ok(())
}

async fn to_parameter(
    ctx: &Context<'_>,
    request: &Request,
    name: &ParameterName,
    image: &ImageId,
    paths: Option<&LaunchPaths>,
    row: &mut Published,
) -> Result<(), Error> {
    let label = request.label.as_ref();
    let now = ctx.ec2.image_parameter_now(name, label).await?;
    if let Some(now) = &now {
        row.previous_version = Some(now.version);
        row.previous_image_id = Some(now.value.clone());
        refuse_unlike(name, now)?;
    }
    let current = now.as_ref().filter(|now| now.value == image.as_str());
    let labelled = |version: i64| label.is_none() || now.as_ref().and_then(|n| n.labelled) == Some(version);
    let predicted = current.map_or_else(|| now.as_ref().map_or(1, |n| n.version + 1), |n| n.version);
    row.followers = paths.map(|paths| followers::of_parameter(paths, name, label, Some(predicted)));
    if let Some(current) = current
        && labelled(current.version)
    {
        row.version = Some(current.version);
        row.label = label.map(ToString::to_string);
        return Ok(());
    }
    if request.dry_run {
        let moved =
            |version: i64| label.map_or_else(String::new, |l| format!(", with label {l} moved to version {version}"));
        row.planned = Some(match current {
            Some(current) => format!("leave the value{}", moved(current.version)),
            None => format!("write the image as version {predicted}{}", moved(predicted)),
        });
        return Ok(());
    }
    let version = if let Some(current) = current {
        current.version
    } else {
        let version = ctx.ec2.put_image_parameter(name, image).await?;
        row.changed = true;
        settle(ctx, request, name, version, image).await?;
        version
    };
    row.version = Some(version);
    if let Some(label) = label {
        ctx.ec2
            .label_parameter(name, version, label)
            .await
            .map_err(|err| Error::Failed(format!("version {version} names the image, but {err}")))?;
        row.label = Some(label.to_string());
        row.changed = true;
    }
    Ok(())
}

/// A parameter that isn't a `String` of data type `aws:ec2:image` is refused: SSM can't
/// change a parameter's data type to or from `aws:ec2:image`.
fn refuse_unlike(name: &ParameterName, now: &crate::ec2::ParameterNow) -> Result<(), Error> {
    let data_type = now.data_type.as_deref().unwrap_or("text");
    let kind = now.kind.as_deref().unwrap_or("String");
    if data_type == crate::ec2::IMAGE_DATA_TYPE && kind == "String" {
        return Ok(());
    }
    Err(Error::Failed(format!(
        "parameter {name} is a {kind} of data type {data_type}, not a String of data type {}, and SSM can't change \
         that: name another parameter, or delete this one first",
        crate::ec2::IMAGE_DATA_TYPE
    )))
}

/// Waits for SSM to take the value: PutParameter answers before SSM has checked an
/// `aws:ec2:image` value, and a value it refuses is dropped without an error.
async fn settle(
    ctx: &Context<'_>,
    request: &Request,
    name: &ParameterName,
    version: i64,
    image: &ImageId,
) -> Result<(), Error> {
    match ctx.ec2.settled_parameter(name, version, image, request.settle).await? {
        Settled::Took => Ok(()),
        Settled::Superseded { version: later, value } => Err(Error::Failed(format!(
            "version {version} was written, but another writer's version {later} (naming {value}) came after it; \
             see who else writes {name} before publishing again"
        ))),
        Settled::NotTaken { version: seen } => Err(Error::Failed(format!(
            "SSM did not take {image}: version {version} did not read back within {}s ({}); SSM checks aws:ec2:image \
             values after PutParameter answers and drops one it refuses (the image must be available to this \
             account in this region)",
            request.settle.within.as_secs(),
            seen.map_or_else(
                || "the parameter does not exist".to_owned(),
                |v| format!("it is at version {v}")
            )
        ))),
    }
}

impl Published {
    fn new(region: &Region, kind: Kind, target: String, image: &Result<ImageId, String>) -> Published {
        Published {
            region: region.clone(),
            kind,
            target,
            template_id: None,
            template_name: None,
            previous_version: None,
            previous_image_id: None,
            image_id: image.as_ref().ok().cloned(),
            version: None,
            default: None,
            label: None,
            changed: false,
            planned: None,
            followers: None,
            error: image.as_ref().err().cloned(),
        }
    }

    fn result(&self) -> (String, Option<Color>) {
        match (&self.error, self.changed, self.version) {
            (Some(why), ..) => (format!("failed: {why}"), Some(Color::Red)),
            (None, true, _) => match (self.kind, self.default) {
                (Kind::LaunchTemplate, Some(true)) => ("new default version".to_owned(), Some(Color::Green)),
                (Kind::LaunchTemplate, _) => ("new version, not the default".to_owned(), Some(Color::Green)),
                (Kind::SsmParameter, _) => ("published".to_owned(), Some(Color::Green)),
            },
            (None, false, Some(_)) => ("names it already".to_owned(), None),
            (None, false, None) => match &self.planned {
                Some(planned) => (format!("would {planned} (dry run)"), Some(Color::Yellow)),
                None => ("-".to_owned(), None),
            },
        }
    }

    fn followers_text(&self) -> String {
        let Some(followers) = &self.followers else {
            return if self.error.is_some() { "-" } else { "not read" }.to_owned();
        };
        let lines: Vec<String> = (followers.follow.iter().map(|u| format!("follows: {u}")))
            .chain(followers.stay.iter().map(|u| format!("stays: {u}")))
            .collect();
        if lines.is_empty() {
            "nothing found".to_owned()
        } else {
            lines.join("\n")
        }
    }
}

/// The run's failure: every template and parameter that failed, with why.
pub fn failure<'a>(rows: impl IntoIterator<Item = &'a Published>) -> Option<Error> {
    let failed: Vec<String> = (rows.into_iter())
        .filter_map(|r| Some(format!("{} in {}: {}", r.target, r.region, r.error.as_ref()?)))
        .collect();
    (!failed.is_empty()).then(|| Error::Failed(format!("publishing failed for {}", failed.join("; "))))
}

/// The rows as a table.
pub fn table<'a>(rows: impl IntoIterator<Item = &'a Published>, printer: &Printer) -> Table {
    let mut table = printer.table(&[
        "REGION",
        "PUBLISHED TO",
        "BEFORE",
        "NOW",
        "RESULT",
        "WHO LAUNCHES THROUGH IT",
    ]);
    for row in rows {
        let before = match (row.previous_version, &row.previous_image_id) {
            (Some(v), Some(image)) => format!("v{v}: {image}"),
            (Some(v), None) => format!("v{v}: no image"),
            _ => "-".to_owned(),
        };
        let now = match (row.version, &row.image_id) {
            (Some(v), Some(image)) => format!("v{v}: {image}"),
            _ => "-".to_owned(),
        };
        let target = match row.kind {
            Kind::LaunchTemplate => format!("launch template {}", row.target),
            Kind::SsmParameter => format!("SSM parameter {}", row.target),
        };
        let (result, color) = row.result();
        table.add_row(vec![
            printer.colored(row.region.as_str(), None),
            printer.colored(target, None),
            printer.colored(before, None),
            printer.colored(now, None),
            printer.colored(result, color),
            printer.colored(row.followers_text(), None),
        ]);
    }
    table
}

impl Render for Rows {
    fn title(&self) -> Option<String> {
        Some("Published".to_owned())
    }

    fn tables(&self, printer: &Printer) -> Vec<Table> {
        vec![table(&self.0, printer)]
    }
}
