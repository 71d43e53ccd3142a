//! The plan: which images to deregister and which snapshots to delete, decided from the
//! inventory alone. Nothing here does I/O: every safety rule is a lookup, and every rule is
//! unit-tested with made-up inventories.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::model::{Backing, Image, ImageUsers, Snapshot};

/// What the account has, read once before planning.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Every image the account owns in the region, disabled and deprecated ones included.
    pub images: Vec<Image>,
    /// What uses each candidate image (instances, launch templates, launch configurations).
    pub users: ImageUsers,
    /// The account's snapshots; read only when orphans are looked for.
    pub snapshots: Vec<Snapshot>,
}

impl Inventory {
    /// Snapshot ID to the images that reference it.
    fn references(&self) -> BTreeMap<&str, BTreeSet<&str>> {
        let mut references: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for image in &self.images {
            for snapshot in &image.snapshot_ids {
                references.entry(snapshot).or_default().insert(&image.image_id);
            }
        }
        references
    }
}

/// How images are grouped for `--keep`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum GroupBy {
    /// The whole selection is one group.
    #[default]
    None,
    /// Names equal once a trailing version or timestamp is stripped.
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

impl GroupBy {
    fn key(&self, image: &Image) -> String {
        match self {
            GroupBy::None => String::new(),
            GroupBy::Name => name_family(image.name.as_deref().unwrap_or_default()).to_owned(),
            GroupBy::Tag(key) => image.tags.get(key).cloned().unwrap_or_default(),
        }
    }

    fn describe(&self, key: &str) -> String {
        match self {
            GroupBy::None => "the selection".to_owned(),
            GroupBy::Name => format!("the images named '{key}…'"),
            GroupBy::Tag(tag) => format!("the images tagged {tag}={key}"),
        }
    }
}

/// A name without its trailing version or timestamp: `app-1.2.3`, `app-v2` and
/// `app-20240101-120000` are all `app`.
pub fn name_family(name: &str) -> &str {
    let trimmed = name.trim_end_matches(|c: char| c.is_ascii_digit() || ".-_".contains(c));
    if !name[trimmed.len()..].chars().any(|c| c.is_ascii_digit()) {
        return name;
    }
    let trimmed = trimmed
        .strip_suffix('v')
        .filter(|t| t.is_empty() || t.ends_with(['-', '_', '.']))
        .unwrap_or(trimmed);
    trimmed.trim_end_matches(['-', '_', '.'])
}

/// What the user asked for, besides which images.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Keep this many of the newest images of each group.
    pub keep: usize,
    pub group_by: GroupBy,
    pub delete_snapshots: bool,
    pub allow_in_use: bool,
    pub orphans: bool,
    /// Why a selected image is to go, in the user's terms (e.g. "named on the command line").
    pub reason: String,
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
    pub snapshot_id: String,
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
    pub image_id: String,
    pub region: String,
    /// The account, when amictl works through `--role-arn`.
    pub account_id: Option<String>,
    pub name: Option<String>,
    pub creation_date: Option<Timestamp>,
    pub action: ImageAction,
    pub reason: String,
    pub snapshots: Vec<SnapshotPlan>,
    pub result: Option<Outcome>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub images_deregistered: usize,
    pub snapshots_deleted: usize,
    pub gib_freed: i64,
    pub images_kept: usize,
    pub failures: usize,
    /// GiB freed × the snapshot price: an upper bound, as snapshots are incremental.
    pub estimated_monthly_saving_usd: f64,
}

/// The plan, and after it is carried out, the report: the same value, with results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub dry_run: bool,
    pub images: Vec<ImagePlan>,
    pub orphan_snapshots: Vec<SnapshotPlan>,
    pub summary: Summary,
}

impl Plan {
    /// Whether carrying the plan out would change anything.
    pub fn has_work(&self) -> bool {
        self.images.iter().any(|i| i.action == ImageAction::Deregister)
            || self.orphan_snapshots.iter().any(|s| s.action == SnapshotAction::Delete)
    }

    /// The plans of several regions as one; every entry carries its region.
    pub fn merge(plans: Vec<Plan>, dry_run: bool) -> Plan {
        let mut merged = Plan {
            dry_run,
            images: Vec::new(),
            orphan_snapshots: Vec::new(),
            summary: Summary::default(),
        };
        for plan in plans {
            merged.images.extend(plan.images);
            merged.orphan_snapshots.extend(plan.orphan_snapshots);
        }
        merged
    }

    /// The entries of one region (of one account, with `--role-arn`).
    pub fn of_scope(&self, region: &str, account_id: Option<&str>) -> Plan {
        let here =
            |entry_region: &str, entry_account: Option<&str>| entry_region == region && entry_account == account_id;
        Plan {
            dry_run: self.dry_run,
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
            summary: Summary::default(),
        }
    }

    /// The accounts the plan's entries live in (`None`: the caller's own).
    pub fn accounts(&self) -> BTreeSet<Option<&str>> {
        self.images
            .iter()
            .map(|i| i.account_id.as_deref())
            .chain(self.orphan_snapshots.iter().map(|s| s.account_id.as_deref()))
            .collect()
    }

    /// The regions the plan's entries live in.
    pub fn regions(&self) -> BTreeSet<&str> {
        self.images
            .iter()
            .map(|i| i.region.as_str())
            .chain(self.orphan_snapshots.iter().map(|s| s.region.as_str()))
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

/// Decides what happens to each selected image and its snapshots, and (with `orphans`) to
/// the snapshots whose image is gone.
pub fn plan(inventory: &Inventory, selected: &[&Image], policy: &Policy) -> Plan {
    let kept_by_keep = newest_of_each_group(selected, policy);
    let mut images: Vec<ImagePlan> = selected
        .iter()
        .map(|image| {
            let (action, reason) = decide(image, inventory, policy, kept_by_keep.get(image.image_id.as_str()));
            ImagePlan {
                image_id: image.image_id.clone(),
                region: image.region.clone(),
                account_id: image.account_id.clone(),
                name: image.name.clone(),
                creation_date: image.creation_date,
                action,
                reason,
                snapshots: Vec::new(),
                result: None,
            }
        })
        .collect();

    let leaving: BTreeSet<String> = images
        .iter()
        .filter(|i| i.action == ImageAction::Deregister)
        .map(|i| i.image_id.clone())
        .collect();
    let references = inventory.references();
    for (entry, image) in images.iter_mut().zip(selected) {
        entry.snapshots = image
            .block_devices
            .iter()
            .filter_map(|device| {
                let id = device.snapshot_id.as_deref()?;
                let (action, reason) = snapshot_fate(id, entry, policy, &references, &leaving);
                Some(SnapshotPlan {
                    snapshot_id: id.to_owned(),
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
        orphans(inventory, &images, &references)
    } else {
        Vec::new()
    };
    Plan {
        dry_run: false,
        images,
        orphan_snapshots,
        summary: Summary::default(),
    }
}

/// A saved plan, checked again against the account as it is now (`cleanup --apply-plan`):
/// what still holds is carried out exactly as planned, what changed is skipped, saying why.
/// Nothing beyond the saved plan is ever added.
pub fn recheck(saved: &Plan, inventory: &Inventory, allow_in_use: bool) -> Plan {
    let by_id: BTreeMap<&str, &Image> = inventory.images.iter().map(|i| (i.image_id.as_str(), i)).collect();
    let selected: Vec<&Image> = saved
        .images
        .iter()
        .filter(|i| i.action == ImageAction::Deregister)
        .filter_map(|i| by_id.get(i.image_id.as_str()).copied())
        .collect();
    let policy = Policy {
        delete_snapshots: true,
        allow_in_use,
        orphans: true,
        reason: "in the saved plan".to_owned(),
        ..Policy::default()
    };
    let fresh = plan(inventory, &selected, &policy);
    let mut fresh_images: BTreeMap<String, ImagePlan> =
        fresh.images.into_iter().map(|i| (i.image_id.clone(), i)).collect();
    let still_orphans: BTreeSet<String> = fresh.orphan_snapshots.into_iter().map(|s| s.snapshot_id).collect();

    let images = saved
        .images
        .iter()
        .map(|old| recheck_image(old, fresh_images.remove(&old.image_id)))
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
                entry.reason = format!("{CHANGED}: it is gone, or an image uses it now");
            }
            entry
        })
        .collect();
    Plan {
        dry_run: false,
        images,
        orphan_snapshots,
        summary: Summary::default(),
    }
}

/// How `recheck` says that the world moved since the plan was saved.
const CHANGED: &str = "changed since the plan";

/// One image of a saved plan, given what a fresh plan says of it now (`None`: it is gone).
fn recheck_image(old: &ImagePlan, fresh: Option<ImagePlan>) -> ImagePlan {
    if old.action == ImageAction::Keep {
        return ImagePlan {
            result: None,
            ..old.clone()
        };
    }
    let Some(mut new) = fresh else {
        return ImagePlan {
            action: ImageAction::Keep,
            reason: format!("{CHANGED}: it no longer exists"),
            snapshots: old
                .snapshots
                .iter()
                .map(|s| SnapshotPlan {
                    action: SnapshotAction::Keep,
                    reason: format!("{CHANGED}: its image is gone"),
                    result: None,
                    ..s.clone()
                })
                .collect(),
            result: None,
            ..old.clone()
        };
    };
    if new.action == ImageAction::Keep {
        new.reason = format!("{CHANGED}: {}", new.reason);
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

/// The images `--keep` keeps, with the reason.
fn newest_of_each_group<'a>(selected: &[&'a Image], policy: &Policy) -> BTreeMap<&'a str, String> {
    let mut kept = BTreeMap::new();
    if policy.keep == 0 {
        return kept;
    }
    let mut groups: BTreeMap<String, Vec<&Image>> = BTreeMap::new();
    for image in selected {
        groups.entry(policy.group_by.key(image)).or_default().push(image);
    }
    for (key, mut members) in groups {
        // Newest first; images without a date count as oldest.
        members.sort_by(|a, b| {
            b.creation_date
                .cmp(&a.creation_date)
                .then_with(|| b.image_id.cmp(&a.image_id))
        });
        let newest = match policy.keep {
            1 => "the newest".to_owned(),
            n => format!("one of the {n} newest"),
        };
        for image in members.into_iter().take(policy.keep) {
            kept.insert(
                image.image_id.as_str(),
                format!("{newest} of {}", policy.group_by.describe(&key)),
            );
        }
    }
    kept
}

fn decide(image: &Image, inventory: &Inventory, policy: &Policy, kept: Option<&String>) -> (ImageAction, String) {
    if let Some(reason) = kept {
        return (ImageAction::Keep, reason.clone());
    }
    if image.is_protected() {
        return (
            ImageAction::Keep,
            "deregistration protection is on; turn it off first to remove this image".to_owned(),
        );
    }
    let mut reason = policy.reason.clone();
    if let Some(users) = inventory.users.get(&image.image_id).filter(|u| !u.is_empty()) {
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
    let others: Vec<&str> = users.iter().copied().filter(|i| *i != image.image_id).collect();
    if others.is_empty() {
        (SnapshotAction::Delete, "no other image uses it".to_owned())
    } else {
        (
            SnapshotAction::Delete,
            format!("also used by {}, which this plan deregisters too", others.join(", ")),
        )
    }
}

/// Snapshots made for an image that no longer exists, which no existing image references.
fn orphans(
    inventory: &Inventory,
    images: &[ImagePlan],
    references: &BTreeMap<&str, BTreeSet<&str>>,
) -> Vec<SnapshotPlan> {
    let existing: BTreeSet<&str> = inventory.images.iter().map(|i| i.image_id.as_str()).collect();
    let listed: BTreeSet<&str> = images
        .iter()
        .flat_map(|i| &i.snapshots)
        .map(|s| s.snapshot_id.as_str())
        .collect();
    inventory
        .snapshots
        .iter()
        .filter(|s| !listed.contains(s.snapshot_id.as_str()) && !references.contains_key(s.snapshot_id.as_str()))
        .filter_map(|s| {
            let image = s.made_for_image()?;
            (!existing.contains(image.as_str())).then(|| SnapshotPlan {
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
    use crate::model::ImageUser;

    fn image(id: &str, name: &str, created: &str) -> Image {
        let mut image = Image::for_tests(id);
        image.name = Some(name.to_owned());
        image.creation_date = Some(created.parse().unwrap());
        image
    }

    fn cleanup_policy() -> Policy {
        Policy {
            delete_snapshots: true,
            reason: "selected".to_owned(),
            ..Policy::default()
        }
    }

    fn actions(plan: &Plan) -> Vec<(&str, ImageAction)> {
        plan.images.iter().map(|i| (i.image_id.as_str(), i.action)).collect()
    }

    #[test]
    fn keep_keeps_the_newest_of_each_name_family() {
        let images = [
            image("ami-00000001", "app-1.0", "2026-01-01T00:00:00Z"),
            image("ami-00000002", "app-1.1", "2026-02-01T00:00:00Z"),
            image("ami-00000003", "app-1.2", "2026-03-01T00:00:00Z"),
            image("ami-00000004", "db-v7", "2026-01-01T00:00:00Z"),
            image("ami-00000005", "db-v8", "2026-02-01T00:00:00Z"),
        ];
        let inventory = Inventory {
            images: images.to_vec(),
            ..Inventory::default()
        };
        let selected: Vec<&Image> = images.iter().collect();
        let policy = Policy {
            keep: 1,
            group_by: GroupBy::Name,
            ..cleanup_policy()
        };

        let plan = plan(&inventory, &selected, &policy);

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
    }

    #[test]
    fn without_grouping_keep_spans_the_whole_selection_and_tags_can_group() {
        let mut images = [
            image("ami-00000001", "a", "2026-01-01T00:00:00Z"),
            image("ami-00000002", "b", "2026-02-01T00:00:00Z"),
            image("ami-00000003", "c", "2026-03-01T00:00:00Z"),
        ];
        images[0].tags.insert("app".to_owned(), "x".to_owned());
        let inventory = Inventory::default();
        let selected: Vec<&Image> = images.iter().collect();

        let one_group = plan(
            &inventory,
            &selected,
            &Policy {
                keep: 2,
                ..cleanup_policy()
            },
        );
        let by_tag = plan(
            &inventory,
            &selected,
            &Policy {
                keep: 1,
                group_by: "tag:app".parse().unwrap(),
                ..cleanup_policy()
            },
        );

        assert_eq!(
            one_group
                .images
                .iter()
                .filter(|i| i.action == ImageAction::Keep)
                .count(),
            2
        );
        assert_eq!(one_group.images[0].action, ImageAction::Deregister, "the oldest goes");
        assert_eq!(
            actions(&by_tag),
            [
                ("ami-00000001", ImageAction::Keep),
                ("ami-00000002", ImageAction::Deregister),
                ("ami-00000003", ImageAction::Keep),
            ],
            "the tagged one is alone in its group; the untagged two share one"
        );
    }

    #[test]
    fn images_in_use_or_protected_are_kept_naming_why() {
        let used = image("ami-00000001", "used", "2026-01-01T00:00:00Z");
        let mut protected = image("ami-00000002", "protected", "2026-01-01T00:00:00Z");
        protected.deregistration_protection = Some("enabled".to_owned());
        let mut users = ImageUsers::new();
        users.entry("ami-00000001".to_owned()).or_default().extend([
            ImageUser::Instance("i-0123456789abcdef0".to_owned()),
            ImageUser::LaunchTemplate {
                id: "lt-0123456789abcdef0".to_owned(),
                name: "web".to_owned(),
                version: 3,
            },
            ImageUser::LaunchConfiguration("web-lc".to_owned()),
        ]);
        let inventory = Inventory {
            images: vec![used.clone(), protected.clone()],
            users,
            ..Inventory::default()
        };

        let safe = plan(&inventory, &[&used, &protected], &cleanup_policy());
        let forced = plan(
            &inventory,
            &[&used, &protected],
            &Policy {
                allow_in_use: true,
                ..cleanup_policy()
            },
        );

        assert_eq!(safe.images[0].action, ImageAction::Keep);
        for user in [
            "instance i-0123456789abcdef0",
            "launch template web (lt-0123456789abcdef0) version 3",
            "launch configuration web-lc",
        ] {
            assert!(safe.images[0].reason.contains(user), "{}", safe.images[0].reason);
        }
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
    fn a_snapshot_another_image_still_uses_is_kept_naming_it() {
        let going = image("ami-00000001", "going", "2026-01-01T00:00:00Z");
        let mut staying = image("ami-00000002", "staying", "2026-01-01T00:00:00Z");
        let mut also_going = image("ami-00000003", "also-going", "2026-01-01T00:00:00Z");
        staying.snapshot_ids = going.snapshot_ids.clone();
        staying.block_devices = going.block_devices.clone();
        also_going.snapshot_ids.push("snap-shared".to_owned());
        let mut going = going;
        going.snapshot_ids.push("snap-shared".to_owned());
        let inventory = Inventory {
            images: vec![going.clone(), staying, also_going.clone()],
            ..Inventory::default()
        };
        let mut with_shared = going.clone();
        with_shared.block_devices.push(crate::model::BlockDevice {
            snapshot_id: Some("snap-shared".to_owned()),
            ..going.block_devices[0].clone()
        });

        let plan = plan(&inventory, &[&with_shared, &also_going], &cleanup_policy());

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
        let inventory = Inventory {
            images: vec![going.clone()],
            ..Inventory::default()
        };

        let plan = plan(
            &inventory,
            &[&going],
            &Policy {
                delete_snapshots: false,
                ..cleanup_policy()
            },
        );

        let snapshot = &plan.images[0].snapshots[0];
        assert_eq!((snapshot.action, snapshot.size_gib), (SnapshotAction::Keep, Some(8)));
        assert!(snapshot.reason.contains("keeps costing money"));
    }

    #[test]
    fn orphans_are_snapshots_made_for_images_that_are_gone() {
        let existing = image("ami-00000001", "here", "2026-01-01T00:00:00Z");
        let snapshot = |id: &str, description: &str| Snapshot {
            snapshot_id: id.to_owned(),
            region: "eu-west-1".to_owned(),
            account_id: None,
            size_gib: Some(15),
            description: Some(description.to_owned()),
        };
        let inventory = Inventory {
            images: vec![existing.clone()],
            snapshots: vec![
                snapshot(
                    "snap-orphan",
                    "Created by CreateImage(i-0123456789abcdef0) for ami-0fedcba9876543210",
                ),
                snapshot(
                    "snap-00000001",
                    "Created by CreateImage(i-0123456789abcdef0) for ami-00000001",
                ),
                snapshot(
                    "snap-live",
                    "Created by CreateImage(i-0123456789abcdef0) for ami-00000001",
                ),
                snapshot("snap-hand", "my nightly backup"),
            ],
            ..Inventory::default()
        };

        let plan = plan(
            &inventory,
            &[],
            &Policy {
                orphans: true,
                ..cleanup_policy()
            },
        );

        let ids: Vec<&str> = plan.orphan_snapshots.iter().map(|s| s.snapshot_id.as_str()).collect();
        assert_eq!(
            ids,
            ["snap-orphan"],
            "the live image's snapshots and the hand-made one stay"
        );
        assert!(plan.has_work());
    }

    #[test]
    fn the_summary_counts_each_snapshot_once_and_only_what_was_done_once_executed() {
        let going = image("ami-00000001", "going", "2026-01-01T00:00:00Z");
        let inventory = Inventory {
            images: vec![going.clone()],
            ..Inventory::default()
        };
        let mut plan = plan(&inventory, &[&going, &going], &cleanup_policy());

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
        let before = Inventory {
            images: vec![stays_true.clone(), now_in_use.clone(), vanished.clone()],
            ..Inventory::default()
        };
        let saved = plan(&before, &[&stays_true, &now_in_use, &vanished], &cleanup_policy());
        let mut users = ImageUsers::new();
        users
            .entry("ami-00000002".to_owned())
            .or_default()
            .insert(ImageUser::Instance("i-0123456789abcdef0".to_owned()));
        let now = Inventory {
            images: vec![stays_true, now_in_use],
            users,
            ..Inventory::default()
        };

        let rechecked = recheck(&saved, &now, false);

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
    fn name_families_drop_trailing_versions_and_timestamps() {
        for (name, family) in [
            ("app-1.2.3", "app"),
            ("app-v2", "app"),
            ("app_20240101-120000", "app"),
            ("web-server-7", "web-server"),
            ("dev-1", "dev"),
            ("dev", "dev"),
            ("base-image", "base-image"),
            ("2024", ""),
        ] {
            assert_eq!(name_family(name), family, "{name}");
        }
    }

    #[test]
    fn groupings_parse() {
        assert_eq!("none".parse::<GroupBy>().unwrap(), GroupBy::None);
        assert_eq!("tag:app".parse::<GroupBy>().unwrap(), GroupBy::Tag("app".to_owned()));
        assert!("tag:".parse::<GroupBy>().is_err());
        assert!("size".parse::<GroupBy>().is_err());
    }
}
