//! How `describe` shows images: a list (a REGION column over several regions), one image in
//! detail (permissions, storage cost), or the Recycle Bin; as JSON, the images each with its
//! stage.

use comfy_table::{Color, Table};
use serde::Serialize;

use crate::model::{Backing, BinnedImage, Image, ImageState, LaunchPermissions, Stage};
use crate::output::{LongTable, Printer, Render, Rows, Shown, date_and_age, yes_no};
use crate::types::{Price, SnapshotId};

/// The images found; JSON is always an array of them, each with its stage.
#[derive(Debug)]
pub(super) struct Described {
    pub(super) images: Vec<Image>,
    pub(super) view: View,
    /// Several regions: the table gets a REGION column.
    pub(super) several: bool,
    /// Some accounts or regions could not be read: none found says less.
    pub(super) partial: bool,
    pub(super) now: jiff::Timestamp,
}

/// An image in describe's JSON: its fields, and where it stands on the way out.
#[derive(Serialize)]
pub(super) struct Staged<'a> {
    #[serde(flatten)]
    image: &'a Image,
    /// `available`, `deprecating`, `deprecated`, `disabled`, or another state.
    stage: Stage,
    /// Whether deregistration protection keeps it now (a running cooldown counts).
    protected: bool,
}

impl<'a> Staged<'a> {
    pub(super) fn of(image: &'a Image, now: jiff::Timestamp) -> Staged<'a> {
        Staged {
            image,
            stage: image.stage(now),
            protected: image.protection(now).reason().is_some(),
        }
    }
}

impl Serialize for Described {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.images.iter().map(|image| Staged::of(image, self.now)))
    }
}

#[derive(Debug, Serialize)]
#[serde(transparent)]
pub(super) struct Binned {
    pub(super) entries: Vec<BinnedImage>,
}

impl Render for Binned {
    fn tables(&self, printer: &Printer) -> Vec<Table> {
        if self.entries.is_empty() {
            return Vec::new();
        }
        let mut table = printer.table(&["IMAGE ID", "NAME", "DEREGISTERED", "RESTORABLE UNTIL"]);
        let time = |t: Option<jiff::Timestamp>| t.map_or_else(|| "-".to_owned(), |t| t.to_string());
        for entry in &self.entries {
            table.add_row(vec![
                printer.colored(&entry.image_id, None),
                printer.colored(entry.name.as_deref().unwrap_or("-"), None),
                printer.colored(time(entry.recycle_bin_enter_time), None),
                printer.colored(time(entry.recycle_bin_exit_time), None),
            ]);
        }
        vec![table]
    }

    fn empty_note(&self) -> Option<String> {
        Some("no images in the Recycle Bin".to_owned())
    }
}

#[derive(Debug, Default)]
pub(super) enum View {
    #[default]
    List,
    /// One image, as key/value rows with its block devices and launch permissions.
    Detail {
        permissions: Result<LaunchPermissions, String>,
        price: Price,
    },
}

impl Render for Described {
    fn tables(&self, printer: &Printer) -> Vec<Table> {
        self.shown(printer).into_iter().map(Shown::into_table).collect()
    }

    /// One image's details; or the images, a row each, made as written (an organization's
    /// thousands are never all held as cells).
    fn shown<'a>(&'a self, printer: &'a Printer) -> Vec<Shown<'a>> {
        match (&self.view, self.images.as_slice()) {
            (View::Detail { permissions, price }, [image]) => (detail_tables(printer, image, permissions, *price))
                .into_iter()
                .map(Shown::Table)
                .collect(),
            _ if self.images.is_empty() => Vec::new(),
            _ => vec![Shown::Long(list_table(printer, &self.images, self.several, self.now))],
        }
    }

    fn empty_note(&self) -> Option<String> {
        Some(if self.partial {
            "no images found in the accounts and regions that could be read".to_owned()
        } else {
            "no images found".to_owned()
        })
    }

    fn title(&self) -> Option<String> {
        Some(match self.images.as_slice() {
            [one] => format!("Image {}", one.image_id),
            many => format!("{} images", many.len()),
        })
    }
}

fn list_table<'a>(printer: &'a Printer, images: &'a [Image], with_region: bool, now: jiff::Timestamp) -> LongTable<'a> {
    let mut header = vec![
        "IMAGE ID",
        "NAME",
        "STAGE",
        "BACKING",
        "VISIBILITY",
        "CREATED",
        "GiB",
        "SNAPSHOTS",
        "ARCH",
        "LAST LAUNCHED",
    ];
    let with_account = images.iter().any(|i| i.account_id.is_some());
    if with_region {
        header.insert(0, "REGION");
    }
    if with_account {
        header.insert(0, "ACCOUNT");
    }
    let row = move |image: &Image| {
        let mut row = Vec::new();
        if with_account {
            let account = match (&image.account_id, &image.account_name) {
                (Some(id), Some(name)) => format!("{id} ({name})"),
                (Some(id), None) => id.to_string(),
                (None, _) => "-".to_owned(),
            };
            row.push(printer.colored(account, None));
        }
        if with_region {
            row.push(printer.colored(&image.region, None));
        }
        row.extend([
            printer.colored(&image.image_id, None),
            printer.colored(image.name.as_deref().unwrap_or("-"), None),
            printer.colored(stage_cell(image, now), state_color(image.state.as_ref())),
            printer.colored(image.backing.as_str(), None),
            printer.colored(
                match image.public {
                    Some(true) => "public",
                    Some(false) => "not public",
                    None => "-",
                },
                (image.public == Some(true)).then_some(Color::Yellow),
            ),
            printer.colored(created(printer, image), None),
            printer.colored(image.size_gib, None),
            printer.colored(image.snapshot_ids.len(), None),
            printer.colored(image.architecture.as_deref().unwrap_or("-"), None),
            printer.colored(last_launched(image, now), None),
        ]);
        row
    };
    LongTable {
        head: printer.table(&header),
        rows: Box::new(move || -> Rows<'a> { Box::new(images.iter().map(row)) }),
    }
}

fn detail_tables(
    printer: &Printer,
    image: &Image,
    permissions: &Result<LaunchPermissions, String>,
    price: Price,
) -> Vec<Table> {
    let mut table = printer.table(&[]);
    let dash = |v: Option<&str>| v.filter(|s| !s.is_empty()).unwrap_or("-").to_owned();
    let tags = if image.tags.is_empty() {
        "-".to_owned()
    } else {
        image
            .tags
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let rows = [
        ("Image ID", image.image_id.to_string()),
        ("Name", dash(image.name.as_deref())),
        ("Description", dash(image.description.as_deref())),
        ("State", dash(image.state.as_ref().map(ImageState::as_str))),
        ("Owner", dash(image.owner_id.as_deref())),
        ("Created", created(printer, image)),
        ("Backing", image.backing.explanation().to_owned()),
        ("Root device", dash(image.root_device_name.as_deref())),
        ("Architecture", dash(image.architecture.as_deref())),
        ("Launch permissions", launch_permissions_text(image, permissions)),
        (
            "Size",
            format!("{} GiB in {} snapshot(s)", image.size_gib, image.snapshot_ids.len()),
        ),
        ("Snapshot storage", storage_cost_text(image, price)),
        ("Tags", tags),
        (
            "Deprecation",
            image
                .deprecation_time
                .map_or_else(|| "not scheduled".to_owned(), |t| t.to_string()),
        ),
        ("Stage", image.stage(printer.now()).to_string()),
        ("Deregistration protection", image.protection(printer.now()).label()),
        ("Last launched", last_launched(image, printer.now())),
    ];
    for (key, value) in rows {
        table.add_row(vec![printer.colored(key, None), printer.colored(value, None)]);
    }

    let mut devices = printer.table(&[
        "DEVICE",
        "SNAPSHOT",
        "GiB",
        "TYPE",
        "ENCRYPTED",
        "DELETE ON TERMINATION",
        "VIRTUAL NAME",
    ]);
    for device in &image.block_devices {
        devices.add_row(vec![
            dash(device.device_name.as_deref()),
            dash(device.snapshot_id.as_ref().map(SnapshotId::as_str)),
            device.volume_size_gib.map_or_else(|| "-".to_owned(), |g| g.to_string()),
            dash(device.volume_type.as_deref()),
            yes_no(device.encrypted).to_owned(),
            yes_no(device.delete_on_termination).to_owned(),
            dash(device.virtual_name.as_deref()),
        ]);
    }
    if image.block_devices.is_empty() {
        vec![table]
    } else {
        vec![table, devices]
    }
}

/// The stage, with protection where it is on.
fn stage_cell(image: &Image, now: jiff::Timestamp) -> String {
    let stage = crate::commands::stages::stage_text(image, now);
    match image.protection(now).reason() {
        Some(_) => format!("{stage}, protected"),
        None => stage,
    }
}

/// When an instance was last launched from the image (EC2 lags up to a day), or never.
fn last_launched(image: &Image, now: jiff::Timestamp) -> String {
    image
        .last_launched_time
        .map_or_else(|| "never".to_owned(), |t| date_and_age(t, now))
}

fn created(printer: &Printer, image: &Image) -> String {
    image
        .creation_date
        .map_or_else(|| "-".to_owned(), |t| date_and_age(t, printer.now()))
}

fn state_color(state: Option<&ImageState>) -> Option<Color> {
    let state = state?;
    if state.is_launchable() {
        Some(Color::Green)
    } else if state.is_transient() {
        Some(Color::Yellow)
    } else if state.is_dead_end() || *state == ImageState::Disabled {
        Some(Color::Red)
    } else {
        None
    }
}

/// The three kinds of launch permission: implicit (owner), explicit (grants), public.
fn launch_permissions_text(image: &Image, permissions: &Result<LaunchPermissions, String>) -> String {
    let owner = format!("owner {} (implicit)", image.owner_id.as_deref().unwrap_or("unknown"));
    let permissions = match permissions {
        Ok(p) => p,
        Err(why) => {
            let public = match image.public {
                Some(true) => "public",
                Some(false) => "not public",
                None => "public: unknown",
            };
            return format!("{owner}\n{public}; explicit grants not readable: {why}");
        }
    };
    let list = |items: &[String]| {
        if items.is_empty() {
            "none".to_owned()
        } else {
            items.join(", ")
        }
    };
    let summary = match (permissions.public, permissions.explicit_count()) {
        (true, _) => "public: every AWS account may launch it".to_owned(),
        (false, 0) => "private: only the owner may launch it".to_owned(),
        (false, n) => format!("shared with {n}"),
    };
    format!(
        "{summary}\n{owner}\naccounts: {}\norganizations: {}\norganizational units: {}",
        list(&permissions.accounts),
        list(&permissions.organization_arns),
        list(&permissions.organizational_unit_arns)
    )
}

/// GiB × price: an upper bound, because snapshots store only changed blocks.
fn storage_cost_text(image: &Image, price: Price) -> String {
    if image.backing == Backing::InstanceStore && image.snapshot_ids.is_empty() {
        return "none: the image lives in S3, not in EBS snapshots".to_owned();
    }
    #[allow(clippy::cast_precision_loss)] // GiB counts are far below 2^52
    let monthly = image.size_gib as f64 * price.0;
    format!(
        "at most ${monthly:.2}/month ({} GiB × ${price} per GB-month; an upper-bound estimate, since snapshot storage is incremental)",
        image.size_gib
    )
}
