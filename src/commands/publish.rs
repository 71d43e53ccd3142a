//! `amictl publish IMAGE --launch-template …`: a new image to what launches it. Each launch
//! template gets a new version, its default version with only the image changed, made the
//! default (unless `--no-default`); a template that names the image already gets nothing, so a
//! re-run changes nothing. One template's failure is its own row.

use comfy_table::{Color, Table};
use serde::Serialize;

use super::Context;
use crate::ec2::TemplateVersion;
use crate::error::Error;
use crate::output::{Printer, Render};
use crate::types::{ImageId, LaunchTemplateRef};

/// What `publish` was asked (`crate::settings` fills it from the command line).
#[derive(Debug, Clone)]
pub struct Settings {
    pub image: ImageId,
    pub templates: Vec<LaunchTemplateRef>,
    /// Make each new version the template's default (not with `--no-default`).
    pub set_default: bool,
    pub dry_run: bool,
}

/// One template: what it launched, and what it launches now. The JSON array holds these.
#[derive(Debug, Serialize)]
pub struct Published {
    /// The template as named on the command line.
    pub launch_template: String,
    pub template_id: Option<String>,
    pub template_name: Option<String>,
    /// The default version before, and the image it named.
    pub previous_version: Option<i64>,
    pub previous_image_id: Option<String>,
    pub image_id: ImageId,
    /// The version that names the image (new or found); `None` on a dry run or a failure.
    pub version: Option<i64>,
    /// Whether that version is the default.
    pub default: bool,
    /// Whether this run made a version.
    pub changed: bool,
    pub error: Option<String>,
}

#[derive(Serialize)]
#[serde(transparent)]
struct Rows(Vec<Published>);

/// Publishes the image to each template, then prints a row each; exit 1 naming each template
/// that failed.
pub async fn run(ctx: &Context<'_>, settings: &Settings) -> anyhow::Result<()> {
    let image = ctx.ec2.image(&settings.image).await?.ok_or_else(|| Error::NotFound {
        what: format!("image {}", settings.image),
        region: ctx.ec2.region().to_string(),
    })?;
    super::require_available(&image, "only an available image can be published", "publish")?;
    let mut rows = Vec::new();
    for template in &settings.templates {
        rows.push(publish_to(ctx, settings, template).await);
    }
    if settings.dry_run {
        ctx.printer.note("dry run: nothing was changed");
    }
    let rows = Rows(rows);
    ctx.printer.print(&rows)?;
    match rows.failure() {
        Some(err) => Err(err.into()),
        None => Ok(()),
    }
}

/// One template, start to end; whatever happens ends as its row.
async fn publish_to(ctx: &Context<'_>, settings: &Settings, template: &LaunchTemplateRef) -> Published {
    let mut row = Published {
        launch_template: template.to_string(),
        template_id: None,
        template_name: None,
        previous_version: None,
        previous_image_id: None,
        image_id: settings.image.clone(),
        version: None,
        default: false,
        changed: false,
        error: None,
    };
    if let Err(err) = publish_into(ctx, settings, template, &mut row).await {
        row.error = Some(err.to_string());
    }
    row
}

async fn publish_into(
    ctx: &Context<'_>,
    settings: &Settings,
    template: &LaunchTemplateRef,
    row: &mut Published,
) -> Result<(), Error> {
    let (default, latest) = ctx.ec2.default_and_latest_versions(template).await?;
    row.template_id = Some(default.template_id.clone());
    row.template_name = Some(default.template_name.clone());
    row.previous_version = Some(default.number);
    row.previous_image_id.clone_from(&default.image);
    let names_it = |version: &TemplateVersion| version.image.as_deref() == Some(settings.image.as_str());
    if names_it(&default) {
        (row.version, row.default) = (Some(default.number), true);
        return Ok(());
    }
    // An earlier run with --no-default made the latest version: that one, not another.
    let found = names_it(&latest).then_some(latest.number);
    if settings.dry_run {
        return Ok(());
    }
    let version = if let Some(version) = found {
        version
    } else {
        let made = ctx.ec2.new_template_version(&default, &settings.image).await?;
        row.changed = true;
        made
    };
    row.version = Some(version);
    if settings.set_default {
        ctx.ec2
            .set_default_template_version(&default.template_id, version)
            .await
            .map_err(|err| Error::Failed(format!("version {version} was made, but not made the default: {err}")))?;
        (row.default, row.changed) = (true, true);
    }
    Ok(())
}

impl Rows {
    fn failure(&self) -> Option<Error> {
        let failed: Vec<String> = (self.0.iter())
            .filter_map(|r| Some(format!("{}: {}", r.launch_template, r.error.as_ref()?)))
            .collect();
        (!failed.is_empty()).then(|| Error::Failed(format!("publishing failed for {}", failed.join("; "))))
    }
}

impl Render for Rows {
    fn title(&self) -> Option<String> {
        Some("Published".to_owned())
    }

    fn tables(&self, printer: &Printer) -> Vec<Table> {
        let mut table = printer.table(&["LAUNCH TEMPLATE", "BEFORE", "NOW", "RESULT"]);
        for row in &self.0 {
            let before = match (row.previous_version, &row.previous_image_id) {
                (Some(v), Some(image)) => format!("v{v}: {image}"),
                (Some(v), None) => format!("v{v}: no image"),
                _ => "-".to_owned(),
            };
            let now = row
                .version
                .map_or_else(|| "-".to_owned(), |v| format!("v{v}: {}", row.image_id));
            let (result, color) = match (&row.error, row.changed, row.version) {
                (Some(why), ..) => (format!("failed: {why}"), Some(Color::Red)),
                (None, true, _) if row.default => ("new default version".to_owned(), Some(Color::Green)),
                (None, true, _) => ("new version, not the default".to_owned(), Some(Color::Green)),
                (None, false, Some(_)) => ("names it already".to_owned(), None),
                (None, false, None) => ("would get a new version (dry run)".to_owned(), Some(Color::Yellow)),
            };
            table.add_row(vec![
                printer.colored(&row.launch_template, None),
                printer.colored(before, None),
                printer.colored(now, None),
                printer.colored(result, color),
            ]);
        }
        vec![table]
    }
}
