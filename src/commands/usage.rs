//! `amictl usage IMAGE…`: who uses each image. In the owner's account, the usage map (as
//! cleanup builds it); in other accounts, EC2's image usage report (made, or reused while
//! fresh); and with `--org`/`--accounts`, the usage map of each member account, naming each
//! consumer there. Read-only; exit 1 where something could not be read.

use comfy_table::{Color, Table};
use serde::Serialize;

use super::Context;
use crate::ec2::{ReportAnswer, Reports};
use crate::error::Error;
use crate::model::{Image, ImageUser, LaunchPermissions};
use crate::output::{Printer, Render};
use crate::types::ImageId;

/// What `usage` was asked (`crate::settings` fills it from the command line).
#[derive(Debug, Clone)]
pub struct Settings {
    pub image_ids: Vec<ImageId>,
    /// Read (or make) usage reports; `false` with `--no-report`.
    pub reports: bool,
    /// The member accounts to read (`--org`, `--accounts`, …); none without.
    pub scope: super::Scope,
}

/// One image, and everyone who uses it. The JSON array holds these.
#[derive(Debug, Serialize)]
pub struct ImageUsage {
    pub image_id: ImageId,
    pub name: Option<String>,
    /// Who besides the owner may launch it: `public`, accounts, organizations, OUs.
    pub shared_with: Vec<String>,
    /// The owner's account: what launches it there.
    pub owner: AccountUsage,
    /// EC2's usage report (other accounts' instances and launch templates); `None`: not read
    /// (not shared, `--no-report`, or the endpoint has none: `report_note` says which).
    pub report: Option<ReportAnswer>,
    pub report_note: Option<String>,
    /// Each member account read (`--org`, `--accounts`): what launches it there.
    pub accounts: Vec<AccountUsage>,
}

/// One account's consumers of an image.
#[derive(Debug, Clone, Serialize)]
pub struct AccountUsage {
    pub account_id: Option<String>,
    pub account_name: Option<String>,
    pub used_by: Vec<ImageUser>,
    /// What could not be checked there (an SSM parameter that can't be read, …).
    pub unchecked: Vec<String>,
    /// Why the account could not be read at all.
    pub error: Option<String>,
}

#[derive(Serialize)]
struct Usage {
    images: Vec<ImageUsage>,
    /// Accounts the run could not reach (a role refused, …): their usage is unknown.
    unreached: Vec<String>,
}

/// Reads every image's users and prints them; exit 1 if any of it could not be read.
pub async fn run(
    home: &Context<'_>,
    members: &[Context<'_>],
    unreached: &[String],
    settings: &Settings,
) -> anyhow::Result<()> {
    let ids = &settings.image_ids;
    let images = images_named(home, ids).await?;
    let private: Vec<&ImageId> = images
        .iter()
        .filter(|i| i.public != Some(true))
        .map(|i| &i.image_id)
        .collect();
    let (owner_map, permissions) =
        futures::try_join!(home.ec2.usage_map(ids, false), home.ec2.launch_permissions_of(&private))?;
    let shared_with = |image: &Image| LaunchPermissions::shared_with(image, permissions.get(&image.image_id));
    let shared: Vec<ImageId> = images
        .iter()
        .filter(|i| !shared_with(i).is_empty())
        .map(|i| i.image_id.clone())
        .collect();
    let reports = if settings.reports {
        Some(home.ec2.shared_usage(&shared, home.now, home.reports).await?)
    } else {
        None
    };
    let member_maps = futures::future::join_all(members.iter().map(|ctx| member_usage(ctx, ids))).await;
    let mut rows = Vec::new();
    for image in &images {
        let owner = AccountUsage {
            account_id: image.owner_id.clone(),
            account_name: None,
            used_by: owner_map
                .users
                .get(&image.image_id)
                .map(|u| u.iter().cloned().collect())
                .unwrap_or_default(),
            unchecked: owner_map.unchecked.clone(),
            error: None,
        };
        let is_shared = shared.contains(&image.image_id);
        let (report, report_note) = report_of(reports.as_ref(), &image.image_id, is_shared);
        rows.push(ImageUsage {
            image_id: image.image_id.clone(),
            name: image.name.clone(),
            shared_with: shared_with(image),
            owner,
            report,
            report_note,
            accounts: member_maps
                .iter()
                .map(|(maps, account)| account.with(maps, &image.image_id))
                .collect(),
        });
    }
    let usage = Usage {
        images: rows,
        unreached: unreached.to_vec(),
    };
    home.printer.print(&usage)?;
    match usage.failure() {
        Some(err) => Err(err.into()),
        None => Ok(()),
    }
}

/// The images named, each of which must exist.
async fn images_named(home: &Context<'_>, ids: &[ImageId]) -> Result<Vec<Image>, Error> {
    let query = crate::ec2::ImageQuery {
        image_ids: ids.to_vec(),
        include_deprecated: true,
        include_disabled: true,
        ..crate::ec2::ImageQuery::default()
    };
    let images = home.ec2.describe_images(&query).await?;
    if let Some(missing) = ids.iter().find(|id| !images.iter().any(|i| i.image_id == **id)) {
        return Err(Error::NotFound {
            what: format!("image {missing}"),
            region: home.ec2.region().to_string(),
        });
    }
    Ok(images)
}

/// One member account's usage map of the images, or why it couldn't be read.
async fn member_usage(ctx: &Context<'_>, ids: &[ImageId]) -> (Result<crate::model::UsageMap, String>, AccountUsage) {
    let account = AccountUsage {
        account_id: ctx.ec2.account_id().map(ToString::to_string),
        account_name: ctx.ec2.account_name().map(str::to_owned),
        used_by: Vec::new(),
        unchecked: Vec::new(),
        error: None,
    };
    (
        ctx.ec2.usage_map(ids, false).await.map_err(|err| err.to_string()),
        account,
    )
}

impl AccountUsage {
    /// This account's users of the image, from its usage map (or its error).
    fn with(&self, map: &Result<crate::model::UsageMap, String>, image: &ImageId) -> AccountUsage {
        let mut account = self.clone();
        match map {
            Ok(map) => {
                account.used_by = map
                    .users
                    .get(image)
                    .map(|u| u.iter().cloned().collect())
                    .unwrap_or_default();
                account.unchecked.clone_from(&map.unchecked);
            }
            Err(why) => account.error = Some(why.clone()),
        }
        account
    }

    fn label(&self) -> String {
        match (&self.account_id, &self.account_name) {
            (Some(id), Some(name)) => format!("{id} ({name})"),
            (Some(id), None) => id.clone(),
            _ => "this account".to_owned(),
        }
    }
}

/// The report's answer for an image, or a note on why there is none.
fn report_of(reports: Option<&Reports>, image: &ImageId, shared: bool) -> (Option<ReportAnswer>, Option<String>) {
    match reports {
        None => (None, Some("not read (--no-report)".to_owned())),
        Some(_) if !shared => (None, Some("not shared: no other account may launch it".to_owned())),
        Some(Reports::NotOffered(why)) => (None, Some(format!("the endpoint has no usage reports ({why})"))),
        Some(Reports::Answers(answers)) => (answers.get(image).cloned(), None),
    }
}

impl Usage {
    fn failure(&self) -> Option<Error> {
        let mut gaps: Vec<String> = self.unreached.clone();
        for image in &self.images {
            if let Some(ReportAnswer::Unchecked { why }) = &image.report {
                gaps.push(format!("{}: {why}", image.image_id));
            }
            for account in std::iter::once(&image.owner).chain(&image.accounts) {
                if let Some(why) = &account.error {
                    gaps.push(format!("{} in account {}: {why}", image.image_id, account.label()));
                }
            }
        }
        gaps.sort();
        gaps.dedup();
        (!gaps.is_empty()).then(|| Error::Failed(format!("usage could not be read everywhere: {}", gaps.join("; "))))
    }
}

impl Render for Usage {
    fn title(&self) -> Option<String> {
        Some("Who uses the images".to_owned())
    }

    fn tables(&self, printer: &Printer) -> Vec<Table> {
        let mut table = printer.table(&["IMAGE ID", "NAME", "SHARED WITH", "WHERE", "USED BY"]);
        for image in &self.images {
            let mut first = true;
            let mut row = |place: String, used: String, color: Option<Color>| {
                let (id, name, shared) = if std::mem::take(&mut first) {
                    let shared = if image.shared_with.is_empty() {
                        "-".to_owned()
                    } else {
                        image.shared_with.join(", ")
                    };
                    (
                        image.image_id.to_string(),
                        image.name.clone().unwrap_or_default(),
                        shared,
                    )
                } else {
                    (String::new(), String::new(), String::new())
                };
                table.add_row(vec![
                    printer.colored(id, None),
                    printer.colored(name, None),
                    printer.colored(shared, None),
                    printer.colored(place, None),
                    printer.colored(used, color),
                ]);
            };
            let owner = users_text(&image.owner);
            row("this account".to_owned(), owner.0, owner.1);
            let report = report_text(image);
            row("other accounts (usage report)".to_owned(), report.0, report.1);
            for account in &image.accounts {
                let (used, color) = users_text(account);
                row(format!("account {}", account.label()), used, color);
            }
        }
        vec![table]
    }
}

fn users_text(account: &AccountUsage) -> (String, Option<Color>) {
    if let Some(why) = &account.error {
        return (format!("could not be read: {why}"), Some(Color::Red));
    }
    let mut lines: Vec<String> = account.used_by.iter().map(ToString::to_string).collect();
    lines.extend(account.unchecked.iter().map(|u| format!("unchecked: {u}")));
    if lines.is_empty() {
        ("nothing".to_owned(), None)
    } else {
        (lines.join("\n"), Some(Color::Yellow))
    }
}

fn report_text(image: &ImageUsage) -> (String, Option<Color>) {
    match (&image.report, &image.report_note) {
        (Some(ReportAnswer::Read { report_id, entries, .. }), _) if entries.is_empty() => {
            (format!("no other account ({report_id})"), None)
        }
        (Some(ReportAnswer::Read { report_id, entries, .. }), _) => {
            let mut lines: Vec<String> = (entries.iter())
                .map(|e| format!("account {}: {} {}", e.account_id, e.usage_count, e.resource_type))
                .collect();
            lines.push(format!("({report_id})"));
            (lines.join("\n"), Some(Color::Yellow))
        }
        (Some(ReportAnswer::Unchecked { why }), _) => (format!("unknown: {why}"), Some(Color::Red)),
        (None, Some(note)) => (note.clone(), None),
        (None, None) => ("-".to_owned(), None),
    }
}
