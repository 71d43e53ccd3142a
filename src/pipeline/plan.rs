//! The plan: which images to deregister and which snapshots to delete, decided from the
//! inventory alone. Nothing here does I/O: every safety rule is a lookup, and every rule is
//! unit-tested with made-up inventories.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::selection::Selection;
use crate::model::{Backing, Image, ImageUser, LaunchPermissions, RecycleBin, Snapshot, UsageMap};
use crate::types::{ImageId, SnapshotId};

/// The format of saved plans; `--apply-plan` refuses any other.
pub const PLAN_FORMAT: u32 = 2;

/// What the account has, read once before planning.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Every image the account owns in the region, disabled and deprecated ones included.
    pub images: Vec<Image>,
    /// What can launch each candidate image, and what could not be checked.
    pub usage: UsageMap,
    /// Who besides the owner may launch each candidate (read unless shared images may go).
    pub shared: BTreeMap<ImageId, LaunchPermissions>,
    /// The account's snapshots; read only when orphans are looked for.
    pub snapshots: Vec<Snapshot>,
    /// Images in the Recycle Bin: their snapshots are not orphans.
    pub recycle_bin: RecycleBin,
    /// Checks the endpoint doesn't offer, to be said once on stderr.
    pub notes: Vec<String>,
}

impl Inventory {
    /// Snapshot ID to the images that reference it.
    fn references(&self) -> BTreeMap<&str, BTreeSet<&str>> {
        let mut references: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for image in &self.images {
            for snapshot in &image.snapshot_ids {
                references
                    .entry(snapshot.as_str())
                    .or_default()
                    .insert(image.image_id.as_str());
            }
        }
        references
    }

    /// The accounts whose images these are.
    fn accounts(&self) -> Vec<String> {
        let accounts: BTreeSet<&str> = self
            .images
            .iter()
            .filter_map(|i| i.account_id.as_deref().or(i.owner_id.as_deref()))
            .collect();
        accounts.into_iter().map(str::to_owned).collect()
    }

    /// Who else may launch the image: `public`, accounts, organizations, OUs.
    fn shared_with(&self, image: &Image) -> Vec<String> {
        let permissions = self.shared.get(&image.image_id);
        let mut shared = Vec::new();
        if image.public == Some(true) || permissions.is_some_and(|p| p.public) {
            shared.push("public".to_owned());
        }
        if let Some(p) = permissions {
            shared.extend(p.accounts.iter().cloned());
            shared.extend(p.organization_arns.iter().cloned());
            shared.extend(p.organizational_unit_arns.iter().cloned());
        }
        shared
    }
}

/// How images are grouped for `--keep`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum GroupBy {
    /// The whole selection is one group.
    #[default]
    None,
    /// Names equal once a trailing build stamp (date, timestamp, build number) is stripped.
    Name,
    /// The value of a tag.
    Tag(String),
}

impl FromStr for GroupBy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(GroupBy::None),
            "name" => Ok(GroupBy::Name),
            _ => match s.strip_prefix("tag:") {
                Some(key) if !key.is_empty() => Ok(GroupBy::Tag(key.to_owned())),
                _ => Err(format!("'{s}' is not a grouping: expected none, name or tag:KEY")),
            },
        }
    }
}

impl std::fmt::Display for GroupBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GroupBy::None => f.write_str("none"),
            GroupBy::Name => f.write_str("name"),
            GroupBy::Tag(key) => write!(f, "tag:{key}"),
        }
    }
}

crate::types::serde_as_typed_text!(GroupBy);

impl GroupBy {
    /// The image's group; `None` for an image with no name (or without the tag), which is a
    /// group of its own: never lumped together with others it has nothing in common with.
    fn key(&self, image: &Image) -> Option<String> {
        match self {
            GroupBy::None => Some(String::new()),
            GroupBy::Name => image.name.as_deref().map(|n| name_family(n).to_owned()),
            GroupBy::Tag(key) => image.tags.get(key).cloned(),
        }
    }

    /// The group as the plan shows it; `None` without grouping.
    fn label(&self, image: &Image) -> Option<String> {
        match self {
            GroupBy::None => None,
            GroupBy::Name => self.key(image),
            GroupBy::Tag(key) => self.key(image).map(|value| format!("{key}={value}")),
        }
    }

    fn describe(&self, key: Option<&str>) -> String {
        match (self, key) {
            (GroupBy::None, _) => "the selection".to_owned(),
            (GroupBy::Name, Some(family)) => format!("the images named '{family}…'"),
            (GroupBy::Name, None) => "its own group (it has no name)".to_owned(),
            (GroupBy::Tag(tag), Some(value)) => format!("the images tagged {tag}={value}"),
            (GroupBy::Tag(tag), None) => format!("its own group (it has no {tag} tag)"),
        }
    }
}

/// A name without its trailing build stamp: a date (`20240101`, `2024-01-01`), a timestamp
/// (`20240101-120000`, `2024-01-01T12-00-00Z`, seconds since 1970) or a build number (`42`,
/// `v7`, `build42`), after a separator. What comes before it stays, release lines included:
/// `ubuntu-20.04-20240101` is `ubuntu-20.04`, apart from `ubuntu-22.04-20240301`. A name with
/// no such stamp is a family of its own (the end of a dotted version such as `app-1.2.3` or
/// `ubuntu-20.04` is not a build stamp).
pub fn name_family(name: &str) -> &str {
    static STAMP: std::sync::LazyLock<regex_lite::Regex> = std::sync::LazyLock::new(|| {
        regex_lite::Regex::new(
            r"^(?P<family>.+?)(?P<sep>[-_. /:])(?:\d{4}[-_.]?\d{2}[-_.]?\d{2}(?:[T_ .-]?\d{2}[-_:.]?\d{2}(?:[-_:.]?\d{2})?)?Z?|(?:v|build|b|r)?\d+)$",
        )
        .expect("a valid pattern")
    });
    let Some(found) = STAMP.captures(name) else {
        return name;
    };
    let family = found.name("family").map_or(name, |m| m.as_str());
    let dotted_version = &found["sep"] == "." && family.ends_with(|c: char| c.is_ascii_digit());
    if dotted_version { name } else { family }
}

/// What the user asked for, besides which images. A saved plan records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// Keep this many of the newest launchable images of each group.
    pub keep: usize,
    pub group_by: GroupBy,
    pub delete_snapshots: bool,
    /// Deregister images even when something can launch them.
    pub allow_in_use: bool,
    /// Deregister images other accounts may launch (public or shared).
    pub include_shared: bool,
    /// Also delete snapshots made for images that no longer exist…
    pub orphans: bool,
    /// …that are at least this old (a younger one may belong to an image still being made).
    pub orphans_older_than: SignedDuration,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            keep: 0,
            group_by: GroupBy::None,
            delete_snapshots: false,
            allow_in_use: false,
            include_shared: false,
            orphans: false,
            orphans_older_than: SignedDuration::from_hours(24),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageAction {
    Deregister,
    Keep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotAction {
    Delete,
    Keep,
}

/// What happened to one entry when the plan was carried out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "reason")]
pub enum Outcome {
    /// Deregistered or deleted now.
    Done,
    /// It was gone already (e.g. a re-run after a partial failure).
    AlreadyGone,
    /// EC2 refused because something still uses it; kept, which is not a failure.
    Kept(String),
    /// Not attempted, e.g. a snapshot whose image could not be deregistered.
    NotAttempted(String),
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotPlan {
    pub snapshot_id: SnapshotId,
    pub region: String,
    /// The account, when amictl works through `--role-arn`.
    pub account_id: Option<String>,
    pub size_gib: Option<i64>,
    pub action: SnapshotAction,
    pub reason: String,
    pub result: Option<Outcome>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImagePlan {
    pub image_id: ImageId,
    pub region: String,
    /// The account, when amictl works through `--role-arn`.
    pub account_id: Option<String>,
    pub name: Option<String>,
    pub creation_date: Option<Timestamp>,
    pub state: Option<String>,
    /// Its group for `--keep` (`--group-by`); `None` without grouping, or alone in its own.
    pub group: Option<String>,
    pub action: ImageAction,
    pub reason: String,
    /// What can launch it.
    pub used_by: Vec<ImageUser>,
    /// Who else may launch it: `public`, accounts, organizations, OUs.
    pub shared_with: Vec<String>,
    pub snapshots: Vec<SnapshotPlan>,
    pub result: Option<Outcome>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub images_deregistered: usize,
    pub snapshots_deleted: usize,
    pub gib_freed: i64,
    pub images_kept: usize,
    /// Images kept only because something that might launch them could not be checked.
    pub images_unchecked: usize,
    pub failures: usize,
    /// GiB freed × the snapshot price: an upper bound, as snapshots are incremental.
    pub estimated_monthly_saving_usd: f64,
}

/// The plan, and after it is carried out, the report: the same value, with results. A saved
/// plan records what made it (selection, policy, accounts, regions), so that applying it asks
/// the same question again and carries out only what both answers say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: u32,
    pub dry_run: bool,
    pub selection: Selection,
    pub policy: Policy,
    /// The accounts the plan was made in (the owners of the images read).
    pub accounts: Vec<String>,
    pub regions: Vec<String>,
    pub images: Vec<ImagePlan>,
    pub orphan_snapshots: Vec<SnapshotPlan>,
    /// What could not be checked; every candidate image was kept for it.
    pub unchecked: Vec<String>,
    pub summary: Summary,
}

impl Plan {
    /// Whether carrying the plan out would change anything.
    pub fn has_work(&self) -> bool {
        self.images.iter().any(|i| i.action == ImageAction::Deregister)
            || self.orphan_snapshots.iter().any(|s| s.action == SnapshotAction::Delete)
    }

    /// The plans of several regions (and accounts) as one; every entry carries its region.
    pub fn merge(plans: Vec<Plan>, selection: &Selection, policy: &Policy) -> Plan {
        let mut merged = Plan::empty(selection, policy);
        let mut accounts = BTreeSet::new();
        let mut regions = BTreeSet::new();
        for plan in plans {
            accounts.extend(plan.accounts);
            regions.extend(plan.regions);
            merged.images.extend(plan.images);
            merged.orphan_snapshots.extend(plan.orphan_snapshots);
            merged.unchecked.extend(plan.unchecked);
        }
        merged.accounts = accounts.into_iter().collect();
        merged.regions = regions.into_iter().collect();
        merged
    }

    fn empty(selection: &Selection, policy: &Policy) -> Plan {
        Plan {
            format_version: PLAN_FORMAT,
            dry_run: false,
            selection: selection.clone(),
            policy: policy.clone(),
            accounts: Vec::new(),
            regions: Vec::new(),
            images: Vec::new(),
            orphan_snapshots: Vec::new(),
            unchecked: Vec::new(),
            summary: Summary::default(),
        }
    }

    /// The entries of one region (of one account, with `--role-arn`).
    pub fn of_scope(&self, region: &str, account_id: Option<&str>) -> Plan {
        let here =
            |entry_region: &str, entry_account: Option<&str>| entry_region == region && entry_account == account_id;
        Plan {
            regions: vec![region.to_owned()],
            images: self
                .images
                .iter()
                .filter(|i| here(&i.region, i.account_id.as_deref()))
                .cloned()
                .collect(),
            orphan_snapshots: (self.orphan_snapshots.iter())
                .filter(|s| here(&s.region, s.account_id.as_deref()))
                .cloned()
                .collect(),
            unchecked: Vec::new(),
            summary: Summary::default(),
            ..self.clone()
        }
    }

    /// The accounts the plan's entries live in (`None`: the caller's own).
    pub fn entry_accounts(&self) -> BTreeSet<Option<&str>> {
        self.images
            .iter()
            .map(|i| i.account_id.as_deref())
            .chain(self.orphan_snapshots.iter().map(|s| s.account_id.as_deref()))
            .collect()
    }

    /// Every snapshot entry: those of images, then orphans.
    pub fn snapshots(&self) -> impl Iterator<Item = &SnapshotPlan> {
        self.images
            .iter()
            .flat_map(|i| &i.snapshots)
            .chain(&self.orphan_snapshots)
    }

    /// Counts what was done, or before (or without) execution, what would be done.
    /// A snapshot listed under several images counts once.
    pub fn summarize(&mut self, price_per_gib_month: f64) {
        let executed = self.images.iter().any(|i| i.result.is_some()) || self.snapshots().any(|s| s.result.is_some());
        let counts = |action_taken: bool, result: Option<&Outcome>| {
            if executed {
                result == Some(&Outcome::Done)
            } else {
                action_taken
            }
        };
        let mut summary = Summary {
            images_deregistered: self
                .images
                .iter()
                .filter(|i| counts(i.action == ImageAction::Deregister, i.result.as_ref()))
                .count(),
            images_kept: self.images.iter().filter(|i| i.action == ImageAction::Keep).count(),
            images_unchecked: self
                .images
                .iter()
                .filter(|i| i.action == ImageAction::Keep && i.reason.starts_with(UNCHECKED))
                .count(),
            failures: self
                .images
                .iter()
                .filter_map(|i| i.result.as_ref())
                .chain(self.snapshots().filter_map(|s| s.result.as_ref()))
                .filter(|r| matches!(r, Outcome::Failed(_)))
                .count(),
            ..Summary::default()
        };
        let mut seen = BTreeSet::new();
        for snapshot in self.snapshots() {
            if counts(snapshot.action == SnapshotAction::Delete, snapshot.result.as_ref())
                && seen.insert(snapshot.snapshot_id.as_str())
            {
                summary.snapshots_deleted += 1;
                summary.gib_freed += snapshot.size_gib.unwrap_or(0);
            }
        }
        #[allow(clippy::cast_precision_loss)] // GiB counts are far below 2^52
        let saving = summary.gib_freed as f64 * price_per_gib_month;
        summary.estimated_monthly_saving_usd = (saving * 100.0).round() / 100.0;
        self.summary = summary;
    }
}

/// How a kept image's reason starts when what might launch it could not be checked.
const UNCHECKED: &str = "could not check what launches it";

/// Decides what happens to each image the selection picks and its snapshots, and (with
/// `orphans`) to the snapshots whose image is gone.
pub fn plan(inventory: &Inventory, selection: &Selection, policy: &Policy, now: Timestamp) -> Plan {
    let selected = selection.pick(&inventory.images, now);
    let kept_by_keep = newest_of_each_group(&selected, policy);
    let reason = selection.reason();
    let mut images: Vec<ImagePlan> = selected
        .iter()
        .map(|image| {
            let (action, reason) = decide(
                image,
                inventory,
                policy,
                &reason,
                kept_by_keep.get(image.image_id.as_str()),
            );
            ImagePlan {
                image_id: image.image_id.clone(),
                region: image.region.clone(),
                account_id: image.account_id.clone(),
                name: image.name.clone(),
                creation_date: image.creation_date,
                state: image.state.clone(),
                group: policy.group_by.label(image),
                action,
                reason,
                used_by: inventory
                    .usage
                    .users
                    .get(&image.image_id)
                    .map(|u| u.iter().cloned().collect())
                    .unwrap_or_default(),
                shared_with: inventory.shared_with(image),
                snapshots: Vec::new(),
                result: None,
            }
        })
        .collect();

    let leaving: BTreeSet<String> = images
        .iter()
        .filter(|i| i.action == ImageAction::Deregister)
        .map(|i| i.image_id.to_string())
        .collect();
    let references = inventory.references();
    for (entry, image) in images.iter_mut().zip(&selected) {
        entry.snapshots = image
            .block_devices
            .iter()
            .filter_map(|device| {
                let id = device.snapshot_id.as_ref()?;
                let (action, reason) = snapshot_fate(id.as_str(), entry, policy, &references, &leaving);
                Some(SnapshotPlan {
                    snapshot_id: id.clone(),
                    region: entry.region.clone(),
                    account_id: entry.account_id.clone(),
                    size_gib: device.volume_size_gib,
                    action,
                    reason,
                    result: None,
                })
            })
            .collect();
    }

    let orphan_snapshots = if policy.orphans {
        orphans(inventory, &images, &references, policy, now)
    } else {
        Vec::new()
    };
    Plan {
        accounts: inventory.accounts(),
        images,
        orphan_snapshots,
        unchecked: inventory.usage.unchecked.clone(),
        ..Plan::empty(selection, policy)
    }
}

/// A saved plan, checked again against the account as it is now (`cleanup --apply-plan`):
/// the plan's own selection and policy make a fresh plan, and only what both plans do is
/// carried out. An entry edited in by hand, or turned from keep to deregister, is kept with
/// the reason; nothing beyond the saved plan is ever added.
pub fn recheck(saved: &Plan, inventory: &Inventory, now: Timestamp) -> Plan {
    let fresh = plan(inventory, &saved.selection, &saved.policy, now);
    let mut fresh_images: BTreeMap<ImageId, ImagePlan> =
        fresh.images.into_iter().map(|i| (i.image_id.clone(), i)).collect();
    let existing: BTreeSet<&str> = inventory.images.iter().map(|i| i.image_id.as_str()).collect();
    let still_orphans: BTreeSet<SnapshotId> = fresh
        .orphan_snapshots
        .into_iter()
        .filter(|s| s.action == SnapshotAction::Delete)
        .map(|s| s.snapshot_id)
        .collect();

    let images = saved
        .images
        .iter()
        .map(|old| {
            let why_gone = if existing.contains(old.image_id.as_str()) {
                "the plan's selection does not pick it (was the plan edited?)"
            } else {
                "it no longer exists"
            };
            recheck_image(old, fresh_images.remove(&old.image_id), why_gone)
        })
        .collect();
    let orphan_snapshots = saved
        .orphan_snapshots
        .iter()
        .map(|old| {
            let mut entry = SnapshotPlan {
                result: None,
                ..old.clone()
            };
            if old.action == SnapshotAction::Delete && !still_orphans.contains(&old.snapshot_id) {
                entry.action = SnapshotAction::Keep;
                entry.reason = format!("{CHANGED}: it is gone, an image uses it now, or it is not an orphan");
            }
            entry
        })
        .collect();
    Plan {
        dry_run: false,
        accounts: saved.accounts.clone(),
        regions: saved.regions.clone(),
        images,
        orphan_snapshots,
        unchecked: fresh.unchecked,
        summary: Summary::default(),
        ..Plan::empty(&saved.selection, &saved.policy)
    }
}

/// How `recheck` says that the saved plan and the account as it is now disagree.
const CHANGED: &str = "changed since the plan";

/// One image of a saved plan, given what a fresh plan says of it now (`None`: the selection
/// doesn't pick it, for `why_gone`).
fn recheck_image(old: &ImagePlan, fresh: Option<ImagePlan>, why_gone: &str) -> ImagePlan {
    let keep_all = |reason: String| ImagePlan {
        action: ImageAction::Keep,
        reason,
        snapshots: old
            .snapshots
            .iter()
            .map(|s| SnapshotPlan {
                action: SnapshotAction::Keep,
                reason: "its image is kept".to_owned(),
                result: None,
                ..s.clone()
            })
            .collect(),
        result: None,
        ..old.clone()
    };
    if old.action == ImageAction::Keep {
        return keep_all(old.reason.clone());
    }
    let Some(mut new) = fresh else {
        return keep_all(format!("{CHANGED}: {why_gone}"));
    };
    if new.action == ImageAction::Keep {
        new.reason = format!("{CHANGED}: {}", new.reason);
        return new;
    }
    // Only what the saved plan deletes is deleted, and only if that still holds.
    let planned: BTreeSet<&str> = old
        .snapshots
        .iter()
        .filter(|s| s.action == SnapshotAction::Delete)
        .map(|s| s.snapshot_id.as_str())
        .collect();
    for snapshot in &mut new.snapshots {
        match (snapshot.action, planned.contains(snapshot.snapshot_id.as_str())) {
            (SnapshotAction::Delete, false) => {
                snapshot.action = SnapshotAction::Keep;
                "the saved plan keeps it".clone_into(&mut snapshot.reason);
            }
            (SnapshotAction::Keep, true) => {
                snapshot.reason = format!("{CHANGED}: {}", snapshot.reason);
            }
            _ => {}
        }
    }
    new
}

/// Whether an image can be launched now: only those count for `--keep`.
fn launchable(image: &Image) -> bool {
    image.state.as_deref().is_none_or(|s| s == "available")
}

/// The images `--keep` keeps, with the reason: the newest launchable ones of each group
/// (a failed or pending newest image never pushes out the last good one).
fn newest_of_each_group<'a>(selected: &[&'a Image], policy: &Policy) -> BTreeMap<&'a str, String> {
    let mut kept = BTreeMap::new();
    if policy.keep == 0 {
        return kept;
    }
    // An image without a group key is a group of its own.
    let mut groups: BTreeMap<Result<String, &str>, Vec<&Image>> = BTreeMap::new();
    for image in selected.iter().filter(|i| launchable(i)) {
        let key = policy.group_by.key(image).ok_or(image.image_id.as_str());
        groups.entry(key).or_default().push(image);
    }
    for (key, mut members) in groups {
        members.sort_by(|a, b| Image::newest_first(a, b));
        let newest = match policy.keep {
            1 => "the newest".to_owned(),
            n => format!("one of the {n} newest"),
        };
        let group = policy.group_by.describe(key.as_deref().ok());
        for image in members.into_iter().take(policy.keep) {
            kept.insert(image.image_id.as_str(), format!("{newest} of {group}"));
        }
    }
    kept
}

fn decide(
    image: &Image,
    inventory: &Inventory,
    policy: &Policy,
    selected_because: &str,
    kept: Option<&String>,
) -> (ImageAction, String) {
    if let Some(state @ ("pending" | "transient")) = image.state.as_deref() {
        return (
            ImageAction::Keep,
            format!("{state}: EC2 is still making it; never removed while it is"),
        );
    }
    if let Some(reason) = kept {
        return (ImageAction::Keep, reason.clone());
    }
    if image.is_protected() {
        return (
            ImageAction::Keep,
            "deregistration protection is on; turn it off first to remove this image".to_owned(),
        );
    }
    let mut reason = selected_because.to_owned();
    if let Some(users) = inventory.usage.users.get(&image.image_id).filter(|u| !u.is_empty()) {
        let users: Vec<String> = users.iter().map(ToString::to_string).collect();
        if !policy.allow_in_use {
            return (
                ImageAction::Keep,
                format!("in use by {}; --allow-in-use deregisters it anyway", users.join(", ")),
            );
        }
        reason = format!(
            "{reason}; in use by {}, deregistered as --allow-in-use says",
            users.join(", ")
        );
    }
    let shared = inventory.shared_with(image);
    if !shared.is_empty() {
        let whom = if shared.iter().any(|s| s == "public") {
            "public: any AWS account may launch it".to_owned()
        } else {
            format!("shared with {}: other accounts may launch it", shared.join(", "))
        };
        if !policy.include_shared {
            return (
                ImageAction::Keep,
                format!("{whom}; --include-shared deregisters it anyway"),
            );
        }
        reason = format!("{reason}; {whom}, deregistered as --include-shared says");
    }
    if !inventory.usage.unchecked.is_empty() && !policy.allow_in_use {
        let more = match inventory.usage.unchecked.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        return (
            ImageAction::Keep,
            format!("{UNCHECKED}: {}{more}", inventory.usage.unchecked[0]),
        );
    }
    if image.backing == Backing::InstanceStore {
        reason.push_str("; instance-store-backed: its bundle in S3 is not touched");
    }
    (ImageAction::Deregister, reason)
}

fn snapshot_fate(
    id: &str,
    image: &ImagePlan,
    policy: &Policy,
    references: &BTreeMap<&str, BTreeSet<&str>>,
    leaving: &BTreeSet<String>,
) -> (SnapshotAction, String) {
    if image.action == ImageAction::Keep {
        return (SnapshotAction::Keep, "its image is kept".to_owned());
    }
    if !policy.delete_snapshots {
        return (
            SnapshotAction::Keep,
            "--delete-snapshots not given: it stays, and keeps costing money, until deleted".to_owned(),
        );
    }
    let users = references.get(id).cloned().unwrap_or_default();
    let staying: Vec<&str> = users.iter().copied().filter(|i| !leaving.contains(*i)).collect();
    if !staying.is_empty() {
        return (SnapshotAction::Keep, format!("still used by {}", staying.join(", ")));
    }
    let others: Vec<&str> = users
        .iter()
        .copied()
        .filter(|i| *i != image.image_id.as_str())
        .collect();
    if others.is_empty() {
        (SnapshotAction::Delete, "no other image uses it".to_owned())
    } else {
        (
            SnapshotAction::Delete,
            format!("also used by {}, which this plan deregisters too", others.join(", ")),
        )
    }
}

/// Snapshots made for an image that no longer exists (nor waits in the Recycle Bin), which no
/// existing image references, complete and old enough not to belong to an image in the making.
fn orphans(
    inventory: &Inventory,
    images: &[ImagePlan],
    references: &BTreeMap<&str, BTreeSet<&str>>,
    policy: &Policy,
    now: Timestamp,
) -> Vec<SnapshotPlan> {
    let existing: BTreeSet<&str> = inventory.images.iter().map(|i| i.image_id.as_str()).collect();
    let in_recycle_bin = match &inventory.recycle_bin {
        RecycleBin::Images(images) => images.iter().map(ImageId::as_str).collect(),
        RecycleBin::NotOffered => BTreeSet::new(),
    };
    let listed: BTreeSet<&str> = images
        .iter()
        .flat_map(|i| &i.snapshots)
        .map(|s| s.snapshot_id.as_str())
        .collect();
    let old_enough = |s: &Snapshot| {
        s.state.as_deref() == Some("completed")
            && s.start_time
                .is_some_and(|started| now.duration_since(started) >= policy.orphans_older_than)
    };
    inventory
        .snapshots
        .iter()
        .filter(|s| !listed.contains(s.snapshot_id.as_str()) && !references.contains_key(s.snapshot_id.as_str()))
        .filter(|s| old_enough(s))
        .filter_map(|s| {
            let image = s.made_for_image()?;
            let gone = !existing.contains(image.as_str()) && !in_recycle_bin.contains(image.as_str());
            gone.then(|| SnapshotPlan {
                snapshot_id: s.snapshot_id.clone(),
                region: s.region.clone(),
                account_id: s.account_id.clone(),
                size_gib: s.size_gib,
                action: SnapshotAction::Delete,
                reason: format!("made for {image}, which no longer exists"),
                result: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ImageUser, UserKind};

    fn image(id: &str, name: &str, created: &str) -> Image {
        let mut image = Image::for_tests(id);
        image.name = Some(name.to_owned());
        image.creation_date = Some(created.parse().unwrap());
        image
    }

    fn now() -> Timestamp {
        "2026-06-01T00:00:00Z".parse().unwrap()
    }

    fn cleanup_policy() -> Policy {
        Policy {
            delete_snapshots: true,
            ..Policy::default()
        }
    }

    fn all() -> Selection {
        Selection {
            all: true,
            ..Selection::default()
        }
    }

    fn of(images: &[Image]) -> Inventory {
        Inventory {
            images: images.to_vec(),
            ..Inventory::default()
        }
    }

    fn actions(plan: &Plan) -> Vec<(&str, ImageAction)> {
        plan.images.iter().map(|i| (i.image_id.as_str(), i.action)).collect()
    }

    fn use_by(inventory: &mut Inventory, image: &str, user: ImageUser) {
        inventory
            .usage
            .users
            .entry(ImageId::from_ec2(image))
            .or_default()
            .insert(user);
    }

    #[test]
    fn keep_keeps_the_newest_of_each_name_family() {
        let images = [
            image("ami-00000001", "app-20260101", "2026-01-01T00:00:00Z"),
            image("ami-00000002", "app-20260201", "2026-02-01T00:00:00Z"),
            image("ami-00000003", "app-20260301", "2026-03-01T00:00:00Z"),
            image("ami-00000004", "db-v7", "2026-01-01T00:00:00Z"),
            image("ami-00000005", "db-v8", "2026-02-01T00:00:00Z"),
        ];
        let policy = Policy {
            keep: 1,
            group_by: GroupBy::Name,
            ..cleanup_policy()
        };

        let plan = plan(&of(&images), &all(), &policy, now());

        assert_eq!(
            actions(&plan),
            [
                ("ami-00000001", ImageAction::Deregister),
                ("ami-00000002", ImageAction::Deregister),
                ("ami-00000003", ImageAction::Keep),
                ("ami-00000004", ImageAction::Deregister),
                ("ami-00000005", ImageAction::Keep),
            ]
        );
        assert!(
            plan.images[2].reason.contains("the images named 'app…'"),
            "{}",
            plan.images[2].reason
        );
        let groups: Vec<Option<&str>> = plan.images.iter().map(|i| i.group.as_deref()).collect();
        assert_eq!(groups, [Some("app"), Some("app"), Some("app"), Some("db"), Some("db")]);
    }

    #[test]
    fn release_lines_are_families_of_their_own_and_so_is_an_unnamed_image() {
        let mut unnamed = image("ami-00000003", "x", "2026-01-01T00:00:00Z");
        unnamed.name = None;
        let images = [
            image("ami-00000001", "ubuntu-20.04-20240101", "2024-01-01T00:00:00Z"),
            image("ami-00000002", "ubuntu-22.04-20240301", "2024-03-01T00:00:00Z"),
            unnamed,
        ];
        let policy = Policy {
            keep: 1,
            group_by: GroupBy::Name,
            ..cleanup_policy()
        };

        let plan = plan(&of(&images), &all(), &policy, now());

        assert!(plan.images.iter().all(|i| i.action == ImageAction::Keep), "{plan:#?}");
        assert_eq!(plan.images[0].group.as_deref(), Some("ubuntu-20.04"));
        assert_eq!(plan.images[1].group.as_deref(), Some("ubuntu-22.04"));
        assert_eq!(plan.images[2].group, None);
        assert!(plan.images[2].reason.contains("its own group (it has no name)"));
    }

    #[test]
    fn without_grouping_keep_spans_the_whole_selection_and_tags_can_group() {
        let mut images = [
            image("ami-00000001", "a", "2026-01-01T00:00:00Z"),
            image("ami-00000002", "b", "2026-02-01T00:00:00Z"),
            image("ami-00000003", "c", "2026-03-01T00:00:00Z"),
            image("ami-00000004", "d", "2026-04-01T00:00:00Z"),
        ];
        for image in &mut images[..2] {
            image.tags.insert("app".to_owned(), "x".to_owned());
        }
        let inventory = of(&images);

        let one_group = plan(
            &inventory,
            &all(),
            &Policy {
                keep: 2,
                ..cleanup_policy()
            },
            now(),
        );
        let by_tag = plan(
            &inventory,
            &all(),
            &Policy {
                keep: 1,
                group_by: "tag:app".parse().unwrap(),
                ..cleanup_policy()
            },
            now(),
        );

        assert_eq!(
            actions(&one_group),
            [
                ("ami-00000001", ImageAction::Deregister),
                ("ami-00000002", ImageAction::Deregister),
                ("ami-00000003", ImageAction::Keep),
                ("ami-00000004", ImageAction::Keep),
            ]
        );
        assert_eq!(
            actions(&by_tag),
            [
                ("ami-00000001", ImageAction::Deregister),
                ("ami-00000002", ImageAction::Keep),
                ("ami-00000003", ImageAction::Keep),
                ("ami-00000004", ImageAction::Keep),
            ],
            "the two tagged app=x share a group; each untagged one is a group of its own"
        );
        assert_eq!(by_tag.images[1].group.as_deref(), Some("app=x"));
        assert_eq!(by_tag.images[2].group, None);
    }

    #[test]
    fn images_in_use_or_protected_are_kept_naming_why() {
        let used = image("ami-00000001", "used", "2026-01-01T00:00:00Z");
        let mut protected = image("ami-00000002", "protected", "2026-01-01T00:00:00Z");
        protected.deregistration_protection = Some("enabled".to_owned());
        let mut inventory = of(&[used, protected]);
        let template = "web (lt-0123456789abcdef0) version 1";
        for user in [
            ImageUser::new(UserKind::Instance, "i-0123456789abcdef0"),
            ImageUser::new(UserKind::AutoScalingGroup, "web-asg").via(format!("launch template {template}")),
            ImageUser::new(UserKind::LaunchTemplate, "golden (lt-0fedcba9876543210) version 4")
                .via("SSM parameter /golden/web"),
            ImageUser::new(UserKind::LaunchConfiguration, "web-lc"),
        ] {
            use_by(&mut inventory, "ami-00000001", user);
        }

        let safe = plan(&inventory, &all(), &cleanup_policy(), now());
        let forced = plan(
            &inventory,
            &all(),
            &Policy {
                allow_in_use: true,
                ..cleanup_policy()
            },
            now(),
        );

        assert_eq!(safe.images[0].action, ImageAction::Keep);
        for user in [
            "instance i-0123456789abcdef0",
            "Auto Scaling group web-asg through launch template web (lt-0123456789abcdef0) version 1",
            "launch template golden (lt-0fedcba9876543210) version 4 through SSM parameter /golden/web",
            "launch configuration web-lc",
        ] {
            assert!(safe.images[0].reason.contains(user), "{}", safe.images[0].reason);
        }
        assert_eq!(safe.images[0].used_by.len(), 4);
        assert_eq!(safe.images[0].snapshots[0].action, SnapshotAction::Keep);
        assert_eq!(safe.images[1].action, ImageAction::Keep);
        assert!(safe.images[1].reason.contains("deregistration protection"));
        assert_eq!(
            actions(&forced),
            [
                ("ami-00000001", ImageAction::Deregister),
                ("ami-00000002", ImageAction::Keep)
            ]
        );
    }

    #[test]
    fn images_other_accounts_may_launch_are_kept_unless_included() {
        let mut public = image("ami-00000001", "public", "2026-01-01T00:00:00Z");
        public.public = Some(true);
        let shared = image("ami-00000002", "shared", "2026-01-01T00:00:00Z");
        let private = image("ami-00000003", "private", "2026-01-01T00:00:00Z");
        let mut inventory = of(&[public, shared, private]);
        inventory.shared.insert(
            ImageId::from_ec2("ami-00000002"),
            LaunchPermissions {
                accounts: vec!["111122223333".to_owned()],
                organizational_unit_arns: vec!["arn:aws:organizations::123456789012:ou/o-abc/ou-abc-def".to_owned()],
                ..LaunchPermissions::default()
            },
        );

        let safe = plan(&inventory, &all(), &cleanup_policy(), now());
        let included = plan(
            &inventory,
            &all(),
            &Policy {
                include_shared: true,
                ..cleanup_policy()
            },
            now(),
        );

        assert_eq!(
            actions(&safe),
            [
                ("ami-00000001", ImageAction::Keep),
                ("ami-00000002", ImageAction::Keep),
                ("ami-00000003", ImageAction::Deregister),
            ]
        );
        assert!(safe.images[0].reason.starts_with("public"), "{}", safe.images[0].reason);
        assert!(safe.images[1].reason.contains("shared with 111122223333"));
        assert_eq!(safe.images[1].shared_with.len(), 2);
        assert!(included.images.iter().all(|i| i.action == ImageAction::Deregister));
    }

    #[test]
    fn what_could_not_be_checked_keeps_every_candidate() {
        let images = [
            image("ami-00000001", "a", "2026-01-01T00:00:00Z"),
            image("ami-00000002", "b", "2026-01-01T00:00:00Z"),
        ];
        let mut inventory = of(&images);
        inventory.usage.unchecked = vec!["SSM parameter /golden/web, which …: it does not exist".to_owned()];

        let mut plan = plan(&inventory, &all(), &cleanup_policy(), now());
        plan.summarize(0.05);

        assert!(plan.images.iter().all(|i| i.action == ImageAction::Keep));
        assert!(
            plan.images[0]
                .reason
                .starts_with("could not check what launches it: SSM parameter /golden/web")
        );
        assert_eq!(plan.summary.images_unchecked, 2);
        assert_eq!(plan.unchecked.len(), 1);
    }

    #[test]
    fn a_pending_image_is_never_removed_and_keep_counts_only_launchable_ones() {
        let mut pending = image("ami-00000003", "app-3", "2026-03-01T00:00:00Z");
        pending.state = Some("pending".to_owned());
        let mut failed = image("ami-00000002", "app-2", "2026-02-01T00:00:00Z");
        failed.state = Some("failed".to_owned());
        let good = image("ami-00000001", "app-1", "2026-01-01T00:00:00Z");
        let inventory = of(&[pending, failed, good]);

        let plan = plan(
            &inventory,
            &all(),
            &Policy {
                keep: 1,
                ..cleanup_policy()
            },
            now(),
        );

        assert_eq!(
            actions(&plan),
            [
                ("ami-00000003", ImageAction::Keep),
                ("ami-00000002", ImageAction::Deregister),
                ("ami-00000001", ImageAction::Keep),
            ]
        );
        assert!(
            plan.images[0].reason.starts_with("pending"),
            "{}",
            plan.images[0].reason
        );
        assert_eq!(plan.images[2].reason, "the newest of the selection");
    }

    #[test]
    fn a_snapshot_another_image_still_uses_is_kept_naming_it() {
        let mut going = image("ami-00000001", "going", "2026-01-01T00:00:00Z");
        let mut staying = image("ami-00000002", "staying", "2026-01-01T00:00:00Z");
        let mut also_going = image("ami-00000003", "also-going", "2026-01-01T00:00:00Z");
        staying.snapshot_ids = going.snapshot_ids.clone();
        staying.block_devices = going.block_devices.clone();
        also_going.snapshot_ids.push(SnapshotId::from_ec2("snap-shared"));
        going.snapshot_ids.push(SnapshotId::from_ec2("snap-shared"));
        going.block_devices.push(crate::model::BlockDevice {
            snapshot_id: Some(SnapshotId::from_ec2("snap-shared")),
            ..going.block_devices[0].clone()
        });
        let inventory = of(&[going, staying, also_going]);
        let selection = Selection::of_ids(&["ami-00000001".parse().unwrap(), "ami-00000003".parse().unwrap()]);

        let plan = plan(&inventory, &selection, &cleanup_policy(), now());

        let fates: Vec<(&str, SnapshotAction, &str)> = plan.images[0]
            .snapshots
            .iter()
            .map(|s| (s.snapshot_id.as_str(), s.action, s.reason.as_str()))
            .collect();
        assert_eq!(
            fates,
            [
                ("snap-00000001", SnapshotAction::Keep, "still used by ami-00000002"),
                (
                    "snap-shared",
                    SnapshotAction::Delete,
                    "also used by ami-00000003, which this plan deregisters too"
                ),
            ]
        );
    }

    #[test]
    fn without_delete_snapshots_they_are_listed_as_kept_with_their_size() {
        let going = image("ami-00000001", "going", "2026-01-01T00:00:00Z");

        let plan = plan(&of(&[going]), &all(), &Policy::default(), now());

        let snapshot = &plan.images[0].snapshots[0];
        assert_eq!((snapshot.action, snapshot.size_gib), (SnapshotAction::Keep, Some(8)));
        assert!(snapshot.reason.contains("keeps costing money"));
    }

    #[test]
    fn orphans_are_old_complete_snapshots_of_images_gone_for_good() {
        let existing = image("ami-00000001", "here", "2026-01-01T00:00:00Z");
        let made_for = |image: &str| format!("Created by CreateImage(i-0123456789abcdef0) for {image}");
        let snapshot = |id: &str, description: &str, state: &str, age_hours: i64| Snapshot {
            snapshot_id: SnapshotId::from_ec2(id),
            region: "eu-west-1".to_owned(),
            account_id: None,
            size_gib: Some(15),
            description: Some(description.to_owned()),
            state: Some(state.to_owned()),
            start_time: Some(now() - SignedDuration::from_hours(age_hours)),
        };
        let mut inventory = of(&[existing]);
        inventory.snapshots = vec![
            snapshot("snap-orphan", &made_for("ami-0fedcba9876543210"), "completed", 48),
            snapshot("snap-00000001", &made_for("ami-00000001"), "completed", 48),
            snapshot("snap-live", &made_for("ami-00000001"), "completed", 48),
            snapshot("snap-hand", "my nightly backup", "completed", 48),
            snapshot("snap-young", &made_for("ami-0aaaaaaaaaaaaaaaa"), "completed", 2),
            snapshot("snap-pending", &made_for("ami-0bbbbbbbbbbbbbbbb"), "pending", 48),
            snapshot("snap-binned", &made_for("ami-0cccccccccccccccc"), "completed", 48),
        ];
        inventory.recycle_bin = RecycleBin::Images(BTreeSet::from([ImageId::from_ec2("ami-0cccccccccccccccc")]));
        let orphans_only = Policy {
            orphans: true,
            ..cleanup_policy()
        };

        let plan = plan(&inventory, &Selection::default(), &orphans_only, now());

        let ids: Vec<&str> = plan.orphan_snapshots.iter().map(|s| s.snapshot_id.as_str()).collect();
        assert_eq!(
            ids,
            ["snap-orphan"],
            "the live image's, the hand-made, the young, the pending and the binned image's snapshots stay"
        );
        assert!(plan.has_work());
    }

    #[test]
    fn the_summary_counts_each_snapshot_once_and_only_what_was_done_once_executed() {
        let first = image("ami-00000001", "first", "2026-01-01T00:00:00Z");
        let mut second = image("ami-00000002", "second", "2026-01-01T00:00:00Z");
        second.block_devices = first.block_devices.clone();
        second.snapshot_ids = first.snapshot_ids.clone();
        let mut plan = plan(&of(&[first, second]), &all(), &cleanup_policy(), now());

        plan.summarize(0.05);
        assert_eq!(
            (
                plan.summary.images_deregistered,
                plan.summary.snapshots_deleted,
                plan.summary.gib_freed
            ),
            (2, 1, 8)
        );
        assert!((plan.summary.estimated_monthly_saving_usd - 0.4).abs() < 1e-9);

        plan.images[0].result = Some(Outcome::Done);
        plan.images[1].result = Some(Outcome::Failed("throttled".to_owned()));
        plan.images[0].snapshots[0].result = Some(Outcome::NotAttempted("its image stayed".to_owned()));
        plan.summarize(0.05);
        assert_eq!(
            (
                plan.summary.images_deregistered,
                plan.summary.snapshots_deleted,
                plan.summary.failures
            ),
            (1, 0, 1)
        );
    }

    #[test]
    fn a_saved_plan_is_carried_out_only_where_it_still_holds() {
        let stays_true = image("ami-00000001", "a", "2026-01-01T00:00:00Z");
        let now_in_use = image("ami-00000002", "b", "2026-01-01T00:00:00Z");
        let vanished = image("ami-00000003", "c", "2026-01-01T00:00:00Z");
        let before = of(&[stays_true.clone(), now_in_use.clone(), vanished]);
        let saved = plan(&before, &all(), &cleanup_policy(), now());
        let mut after = of(&[stays_true, now_in_use]);
        use_by(
            &mut after,
            "ami-00000002",
            ImageUser::new(UserKind::Instance, "i-0123456789abcdef0"),
        );

        let rechecked = recheck(&saved, &after, now());

        assert_eq!(
            actions(&rechecked),
            [
                ("ami-00000001", ImageAction::Deregister),
                ("ami-00000002", ImageAction::Keep),
                ("ami-00000003", ImageAction::Keep),
            ]
        );
        assert!(
            rechecked.images[1]
                .reason
                .starts_with("changed since the plan: in use by instance")
        );
        assert_eq!(
            rechecked.images[2].reason,
            "changed since the plan: it no longer exists"
        );
        assert_eq!(rechecked.images[0].snapshots[0].action, SnapshotAction::Delete);
        assert!(
            rechecked.images[1..]
                .iter()
                .all(|i| i.snapshots[0].action == SnapshotAction::Keep)
        );
    }

    #[test]
    fn a_hand_edited_plan_carries_out_only_what_its_selection_picks() {
        let old = image("ami-00000001", "app-20260101", "2026-01-01T00:00:00Z");
        let newest = image("ami-00000002", "app-20260201", "2026-02-01T00:00:00Z");
        let unrelated = image("ami-00000003", "db-20260101", "2026-01-01T00:00:00Z");
        let inventory = of(&[newest.clone(), old, unrelated.clone()]);
        let selection = Selection {
            name: Some("app-*".parse().unwrap()),
            ..Selection::default()
        };
        let policy = Policy {
            keep: 1,
            ..cleanup_policy()
        };
        let mut saved = plan(&inventory, &selection, &policy, now());
        assert_eq!(
            actions(&saved),
            [
                ("ami-00000002", ImageAction::Keep),
                ("ami-00000001", ImageAction::Deregister)
            ]
        );
        // Edited by hand: the kept image turned to deregister, an unrelated image added.
        saved.images[0].action = ImageAction::Deregister;
        saved.images[0].snapshots[0].action = SnapshotAction::Delete;
        let mut added = saved.images[1].clone();
        added.image_id = unrelated.image_id.clone();
        added.snapshots[0].snapshot_id = unrelated.snapshot_ids[0].clone();
        saved.images.push(added);

        let rechecked = recheck(&saved, &inventory, now());

        assert_eq!(
            actions(&rechecked),
            [
                ("ami-00000002", ImageAction::Keep),
                ("ami-00000001", ImageAction::Deregister),
                ("ami-00000003", ImageAction::Keep),
            ]
        );
        assert_eq!(
            rechecked.images[0].reason,
            "changed since the plan: the newest of the selection"
        );
        assert!(
            rechecked.images[2]
                .reason
                .contains("the plan's selection does not pick it")
        );
        assert!(
            [&rechecked.images[0], &rechecked.images[2]]
                .iter()
                .all(|i| i.snapshots.iter().all(|s| s.action == SnapshotAction::Keep))
        );
    }

    #[test]
    fn name_families_drop_only_the_trailing_build_stamp() {
        for (name, family) in [
            ("app-20240101", "app"),
            ("app_20240101-120000", "app"),
            ("app-2024-01-01T12-00-00Z", "app"),
            ("app-2024-01-01", "app"),
            ("app-1700000000", "app"),
            ("app-v2", "app"),
            ("app-build42", "app"),
            ("web-server-7", "web-server"),
            ("ubuntu-20.04-20240101", "ubuntu-20.04"),
            ("ubuntu-22.04-20240301", "ubuntu-22.04"),
            (
                "ubuntu/images/ubuntu-jammy-22.04-amd64-server-20240301",
                "ubuntu/images/ubuntu-jammy-22.04-amd64-server",
            ),
            ("app-1.2.3", "app-1.2.3"),
            ("ubuntu-20.04", "ubuntu-20.04"),
            ("app-1.2.3-45", "app-1.2.3"),
            (
                "amzn2-ami-hvm-2.0.20240306.2-x86_64-gp2",
                "amzn2-ami-hvm-2.0.20240306.2-x86_64-gp2",
            ),
            ("dev", "dev"),
            ("base-image", "base-image"),
            ("2024", "2024"),
        ] {
            assert_eq!(name_family(name), family, "{name}");
        }
    }

    #[test]
    fn groupings_parse_and_read_back() {
        assert_eq!("none".parse::<GroupBy>().unwrap(), GroupBy::None);
        assert_eq!("tag:app".parse::<GroupBy>().unwrap(), GroupBy::Tag("app".to_owned()));
        assert!("tag:".parse::<GroupBy>().is_err());
        assert!("size".parse::<GroupBy>().is_err());
        for grouping in ["none", "name", "tag:app"] {
            assert_eq!(grouping.parse::<GroupBy>().unwrap().to_string(), grouping);
        }
    }
}
