//! The plan: which images to deregister and which snapshots to delete, decided from the
//! inventory alone. Nothing here does I/O: every safety rule is a lookup, and every rule is
//! unit-tested with made-up inventories.
//!
//! This file holds the plan as data (what is saved, shown and carried out) and the policy
//! that makes it; `decide` makes a plan from an inventory, `recheck` checks a saved one again.

mod decide;
mod recheck;

use std::borrow::BorrowMut;
use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::selection::Selection;
use crate::model::{Image, ImageState, ImageUser, LaunchPermissions, RecycleBin, Snapshot, UsageMap};
use crate::types::{AccountId, ImageId, Region, SnapshotId};
pub use decide::{plan, plan_rules};
pub use recheck::recheck;

/// The format of saved plans: 3 adds the policies of a policy file. `--apply-plan` reads
/// [`READABLE_PLAN_FORMATS`] and refuses any other.
pub const PLAN_FORMAT: u32 = 3;

/// The formats `--apply-plan` reads: 2 is 3 without policy files (its new fields default).
pub const READABLE_PLAN_FORMATS: [u32; 2] = [2, 3];

/// What the account has, read once before planning.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Every image the account owns in the region, disabled and deprecated ones included.
    pub images: Vec<Image>,
    /// What can launch each candidate image, and what could not be checked.
    pub usage: UsageMap,
    /// Who besides the owner may launch each candidate (read unless shared images may go).
    pub shared: BTreeMap<ImageId, LaunchPermissions>,
    /// Who uses the shared candidates in other accounts, by usage reports (read for
    /// `--include-shared=unused` only).
    pub shared_usage: Option<crate::ec2::Reports>,
    /// In a run over several accounts: what the run's other accounts run from each shared
    /// candidate (`--include-shared=unused`).
    pub run_usage: BTreeMap<ImageId, RunUsage>,
    /// Who besides the owner may create volumes from each snapshot that may go (read unless
    /// shared images and snapshots may go).
    pub snapshot_sharing: BTreeMap<SnapshotId, crate::ec2::SnapshotSharing>,
    /// The account's snapshots; read only when orphans are looked for.
    pub snapshots: Vec<Snapshot>,
    /// Images in the Recycle Bin: their snapshots are not orphans.
    pub recycle_bin: RecycleBin,
    /// Checks the endpoint doesn't offer, to be said once on stderr.
    pub notes: Vec<String>,
}

impl Inventory {
    /// Snapshot ID to the images that reference it.
    pub(super) fn references(&self) -> BTreeMap<&str, BTreeSet<&str>> {
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
    pub(super) fn accounts(&self) -> Vec<String> {
        let accounts: BTreeSet<&str> = self.images.iter().filter_map(Image::account).collect();
        accounts.into_iter().map(str::to_owned).collect()
    }

    /// Who else may launch the image: `public`, accounts, organizations, OUs.
    pub(super) fn shared_with(&self, image: &Image) -> Vec<String> {
        LaunchPermissions::shared_with(image, self.shared.get(&image.image_id))
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
    pub(super) fn key(&self, image: &Image) -> Option<String> {
        match self {
            GroupBy::None => Some(String::new()),
            GroupBy::Name => image.name.as_deref().map(|n| name_family(n).to_owned()),
            GroupBy::Tag(key) => image.tags.get(key).cloned(),
        }
    }

    /// The group as the plan shows it; `None` without grouping.
    pub(super) fn label(&self, image: &Image) -> Option<String> {
        match self {
            GroupBy::None => None,
            GroupBy::Name => self.key(image),
            GroupBy::Tag(key) => self.key(image).map(|value| format!("{key}={value}")),
        }
    }

    pub(super) fn describe(&self, key: Option<&str>) -> String {
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

/// One named policy of a policy file (`cleanup --policy`): which images, and what to do with
/// them. A plan made from flags has one rule without a name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rules {
    pub name: Option<String>,
    pub selection: Selection,
    pub policy: Policy,
    /// The regions the policy runs in, as a saved plan records them (`--apply-plan` asks it
    /// there only); empty: every region of the run.
    #[serde(default)]
    pub regions: Vec<Region>,
}

/// Why a policy can't be built (each front end, flags or policy file, says it in its words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RulesError {
    /// No image is selected, and orphaned snapshots aren't asked for.
    SelectsNothing,
    /// `disabled-for` selects images amictl disabled: disabling them again does nothing.
    DisabledForWithDisable,
}

impl Rules {
    /// One policy, checked as the flags and a policy file both need it: it selects something,
    /// and its selection and action don't contradict each other.
    pub fn build(name: Option<String>, selection: Selection, policy: Policy) -> Result<Rules, RulesError> {
        if policy.disables() && selection.disabled_for.is_some() {
            return Err(RulesError::DisabledForWithDisable);
        }
        if !selection.selects_images() && policy.orphans.is_none() {
            return Err(RulesError::SelectsNothing);
        }
        Ok(Rules {
            name,
            selection,
            policy,
            regions: Vec::new(),
        })
    }

    /// Whether the policy runs in this region.
    pub fn runs_in(&self, region: &Region) -> bool {
        self.regions.is_empty() || self.regions.contains(region)
    }
}

/// What the user asked for, besides which images. A saved plan records it in the flat form
/// of [`PolicyDoc`] (docs/json-output.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "PolicyDoc", from = "PolicyDoc")]
pub struct Policy {
    /// Keep this many of the newest launchable images of each group.
    pub keep: usize,
    pub group_by: GroupBy,
    /// What becomes of a selected image.
    pub removal: Removal,
    /// Whether an image something can launch is kept (`--allow-in-use` ignores them).
    pub in_use: Consumers,
    /// Whether an image other accounts may launch is kept (`--include-shared` ignores them;
    /// `--include-shared=unused` only where no other account uses it).
    pub shared: Shared,
    /// Orphaned snapshots at least this old are deleted (`--orphans`; a younger one may belong
    /// to an image still being made); `None`: orphans are left alone.
    pub orphans: Option<SignedDuration>,
}

/// What becomes of a selected image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// DeregisterImage; with `delete_snapshots`, its snapshots nothing else needs go too.
    Deregister { delete_snapshots: bool },
    /// DisableImage (reversible); its snapshots stay.
    Disable,
}

/// Whether a kind of consumer keeps an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consumers {
    /// The image is kept while any of them may launch it (or amictl can't tell).
    #[default]
    Keep,
    /// They don't count: the user said so.
    Ignore,
}

impl Consumers {
    /// `Ignore` where the user's flag (`--allow-in-use`, `--include-shared`) is given.
    pub fn ignored_if(ignore: bool) -> Consumers {
        if ignore { Consumers::Ignore } else { Consumers::Keep }
    }

    pub fn keep(self) -> bool {
        self == Consumers::Keep
    }
}

/// What the accounts of a run (their own usage maps) say of another account's shared image.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunUsage {
    /// Each account's consumers of it: account ID, and what launches it there.
    pub users: Vec<(String, ImageUser)>,
    /// Accounts it is shared with that are in the run and could not be read (or had something
    /// unchecked), and why.
    pub gaps: Vec<String>,
    /// Every account it is shared with is in the run and was read: their maps are the answer.
    pub covered: bool,
}

/// Whether an image other accounts may launch is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shared {
    /// Kept: they may launch it (and their snapshots, which they may create volumes from).
    #[default]
    Keep,
    /// Removed where no other account uses it, by the freshest usage report and the usage maps
    /// of the run's accounts (`--include-shared=unused`); a public image, and shared snapshots,
    /// are kept (nothing can tell who will use them).
    IfUnused,
    /// Removed whoever may launch it (`--include-shared`).
    Ignore,
}

impl Shared {
    /// `--include-shared` (or `= true` in a policy file).
    pub fn ignored_if(ignore: bool) -> Shared {
        if ignore { Shared::Ignore } else { Shared::Keep }
    }
}

/// `include_shared` in a saved plan: `true`, `false`, or `"unused"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
enum IncludeShared {
    Flag(bool),
    Word(Unused),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Unused {
    Unused,
}

impl From<Shared> for IncludeShared {
    fn from(shared: Shared) -> IncludeShared {
        match shared {
            Shared::Keep => IncludeShared::Flag(false),
            Shared::Ignore => IncludeShared::Flag(true),
            Shared::IfUnused => IncludeShared::Word(Unused::Unused),
        }
    }
}

impl From<IncludeShared> for Shared {
    fn from(doc: IncludeShared) -> Shared {
        match doc {
            IncludeShared::Flag(flag) => Shared::ignored_if(flag),
            IncludeShared::Word(Unused::Unused) => Shared::IfUnused,
        }
    }
}

impl Policy {
    /// How old an orphan must be by default (`--orphans-older-than`).
    pub const ORPHANS_OLDER_THAN: SignedDuration = SignedDuration::from_hours(24);

    pub fn disables(&self) -> bool {
        self.removal == Removal::Disable
    }

    pub fn deletes_snapshots(&self) -> bool {
        self.removal == (Removal::Deregister { delete_snapshots: true })
    }
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            keep: 0,
            group_by: GroupBy::None,
            removal: Removal::Deregister {
                delete_snapshots: false,
            },
            in_use: Consumers::Keep,
            shared: Shared::Keep,
            orphans: None,
        }
    }
}

/// A policy as a saved plan and the JSON output write it: flat, one field per flag.
#[derive(Serialize, Deserialize)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "the documented JSON of a saved plan, one field per flag; Policy is the typed form"
)]
pub struct PolicyDoc {
    keep: usize,
    group_by: GroupBy,
    delete_snapshots: bool,
    allow_in_use: bool,
    include_shared: IncludeShared,
    orphans: bool,
    orphans_older_than: SignedDuration,
    #[serde(default)]
    disable: bool,
}

impl From<Policy> for PolicyDoc {
    fn from(policy: Policy) -> PolicyDoc {
        PolicyDoc {
            delete_snapshots: policy.deletes_snapshots(),
            disable: policy.disables(),
            allow_in_use: !policy.in_use.keep(),
            include_shared: policy.shared.into(),
            orphans: policy.orphans.is_some(),
            orphans_older_than: policy.orphans.unwrap_or(Policy::ORPHANS_OLDER_THAN),
            keep: policy.keep,
            group_by: policy.group_by,
        }
    }
}

impl From<PolicyDoc> for Policy {
    fn from(doc: PolicyDoc) -> Policy {
        Policy {
            keep: doc.keep,
            group_by: doc.group_by,
            removal: if doc.disable {
                Removal::Disable
            } else {
                Removal::Deregister {
                    delete_snapshots: doc.delete_snapshots,
                }
            },
            in_use: Consumers::ignored_if(doc.allow_in_use),
            shared: doc.include_shared.into(),
            orphans: doc.orphans.then_some(doc.orphans_older_than),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageAction {
    Deregister,
    /// DisableImage: the image stays, with its snapshots, and can be enabled again.
    Disable,
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
    pub region: Region,
    /// The account, when amictl works through `--role-arn`.
    pub account_id: Option<AccountId>,
    pub size_gib: Option<i64>,
    pub action: SnapshotAction,
    pub reason: String,
    pub result: Option<Outcome>,
    /// The policy of a policy file that planned it (an orphan); `None` with flags.
    #[serde(default)]
    pub policy: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImagePlan {
    pub image_id: ImageId,
    pub region: Region,
    /// The account, when amictl works through `--role-arn`.
    pub account_id: Option<AccountId>,
    /// Its name, where the organization gives it (`--org`).
    #[serde(default)]
    pub account_name: Option<String>,
    pub name: Option<String>,
    pub creation_date: Option<Timestamp>,
    pub state: Option<ImageState>,
    /// Its group for `--keep` (`--group-by`); `None` without grouping, or alone in its own.
    pub group: Option<String>,
    pub action: ImageAction,
    pub reason: String,
    /// Kept only because the policy keeps the newest (`--keep`): nothing a reviewer must see,
    /// so the table counts these in one line (`--show-kept` lists them).
    #[serde(default)]
    pub kept_by_policy: bool,
    /// The policy of a policy file whose decision this is; `None` with flags.
    #[serde(default)]
    pub policy: Option<String>,
    /// In the stage its policy asks for already (a disabled image, to disable): nothing to
    /// do, which is no refusal, and no vote when another policy selects it too.
    #[serde(default)]
    pub unchanged: bool,
    /// What can launch it.
    pub used_by: Vec<ImageUser>,
    /// Who else may launch it: `public`, accounts, organizations, OUs.
    pub shared_with: Vec<String>,
    pub snapshots: Vec<SnapshotPlan>,
    pub result: Option<Outcome>,
    /// After a deregistration: `restorable until …` (a Recycle Bin rule kept it) or `gone for
    /// good`; `None` in a plan, or where the endpoint can't say.
    #[serde(default)]
    pub recycle_bin: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub images_deregistered: usize,
    /// Disabled instead (`--disable`): they stay, with their snapshots.
    #[serde(default)]
    pub images_disabled: usize,
    pub snapshots_deleted: usize,
    pub gib_freed: i64,
    pub images_kept: usize,
    /// Of those, kept only because the policy keeps the newest (`--keep`).
    #[serde(default)]
    pub images_kept_by_policy: usize,
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
    pub regions: Vec<Region>,
    pub images: Vec<ImagePlan>,
    pub orphan_snapshots: Vec<SnapshotPlan>,
    /// What could not be checked; every candidate image was kept for it.
    pub unchecked: Vec<String>,
    pub summary: Summary,
    /// The named policies of a policy file that made the plan (`--apply-plan` asks each again);
    /// empty for a plan made from flags, which `selection` and `policy` record.
    #[serde(default)]
    pub policies: Vec<Rules>,
}

impl Plan {
    /// Whether carrying the plan out would change anything.
    pub fn has_work(&self) -> bool {
        self.images.iter().any(|i| i.action != ImageAction::Keep)
            || self.orphan_snapshots.iter().any(|s| s.action == SnapshotAction::Delete)
    }

    /// The plans of several regions (and accounts) as one; every entry carries its region.
    /// Each region's plan is dropped as soon as its entries are moved (boxed, an
    /// organization's thousands of them are a pointer each until then).
    pub fn merge<P: BorrowMut<Plan>>(plans: Vec<P>, selection: &Selection, policy: &Policy) -> Plan {
        let mut merged = Plan::empty(selection, policy);
        // Sized once: across an organization these are thousands of entries, and a vector
        // grown by doubling holds up to twice that.
        merged
            .images
            .reserve_exact(plans.iter().map(|p| p.borrow().images.len()).sum());
        merged
            .orphan_snapshots
            .reserve_exact(plans.iter().map(|p| p.borrow().orphan_snapshots.len()).sum());
        let mut accounts = BTreeSet::new();
        let mut regions = BTreeSet::new();
        for mut plan in plans {
            let plan = plan.borrow_mut();
            accounts.extend(plan.accounts.drain(..));
            regions.extend(plan.regions.drain(..));
            merged.images.append(&mut plan.images);
            merged.orphan_snapshots.append(&mut plan.orphan_snapshots);
            merged.unchecked.append(&mut plan.unchecked);
        }
        merged.accounts = accounts.into_iter().collect();
        merged.regions = regions.into_iter().collect();
        merged
    }

    pub(super) fn empty(selection: &Selection, policy: &Policy) -> Plan {
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
            policies: Vec::new(),
        }
    }

    /// The rules that made the plan: its named policies, or its one selection and policy.
    pub fn rules(&self) -> Vec<Rules> {
        if self.policies.is_empty() {
            vec![Rules {
                name: None,
                selection: self.selection.clone(),
                policy: self.policy.clone(),
                regions: Vec::new(),
            }]
        } else {
            self.policies.clone()
        }
    }

    /// The entries of one region (of one account, with `--role-arn`).
    #[must_use]
    pub fn of_scope(&self, region: &Region, account_id: Option<&AccountId>) -> Plan {
        let here = |entry_region: &Region, entry_account: Option<&AccountId>| {
            entry_region == region && entry_account == account_id
        };
        Plan {
            regions: vec![region.clone()],
            images: self
                .images
                .iter()
                .filter(|i| here(&i.region, i.account_id.as_ref()))
                .cloned()
                .collect(),
            orphan_snapshots: (self.orphan_snapshots.iter())
                .filter(|s| here(&s.region, s.account_id.as_ref()))
                .cloned()
                .collect(),
            unchecked: Vec::new(),
            summary: Summary::default(),
            ..self.clone()
        }
    }

    /// The saved plan's entries in an account and region this run did not reach (no session
    /// for the account, or its reading failed), added as failures: a plan applied only in
    /// part must say so and exit 1, never drop what it didn't visit.
    pub fn add_unvisited(&mut self, saved: &Plan, visited: &BTreeSet<(&Region, Option<&AccountId>)>) {
        let unvisited = |region: &Region, account: Option<&AccountId>| {
            let reached = visited.contains(&(region, account));
            (!reached).then(|| {
                Outcome::Failed(format!(
                    "not carried out: this run did not reach {} in {region}; apply the plan with the accounts it was made in (--org / --accounts with --role-name, or --role-arn)",
                    account.map_or_else(|| "the caller's own account".to_owned(), |a| format!("account {a}"))
                ))
            })
        };
        for image in &saved.images {
            if image.action == ImageAction::Keep && image.snapshots.iter().all(|s| s.action == SnapshotAction::Keep) {
                continue;
            }
            if let Some(failed) = unvisited(&image.region, image.account_id.as_ref()) {
                self.images.push(ImagePlan {
                    result: Some(failed),
                    ..image.clone()
                });
            }
        }
        for snapshot in saved
            .orphan_snapshots
            .iter()
            .filter(|s| s.action == SnapshotAction::Delete)
        {
            if let Some(failed) = unvisited(&snapshot.region, snapshot.account_id.as_ref()) {
                self.orphan_snapshots.push(SnapshotPlan {
                    result: Some(failed),
                    ..snapshot.clone()
                });
            }
        }
    }

    /// The accounts the plan's entries live in (`None`: the caller's own).
    pub fn entry_accounts(&self) -> BTreeSet<Option<&AccountId>> {
        self.images
            .iter()
            .map(|i| i.account_id.as_ref())
            .chain(self.orphan_snapshots.iter().map(|s| s.account_id.as_ref()))
            .collect()
    }

    /// The steps carrying the plan out takes (one per image entry and snapshot entry), for a
    /// progress bar.
    pub fn steps(&self) -> usize {
        self.images.len() + self.snapshots().count()
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
        // A dry run's entries may carry results too (a saved plan's entries no run reached).
        let executed = !self.dry_run
            && (self.images.iter().any(|i| i.result.is_some()) || self.snapshots().any(|s| s.result.is_some()));
        // What the entry is to do, and once carried out, only if it was done: a deregistered
        // image is no disabled one (a policy file may do both in one run).
        let counts = |action_taken: bool, result: Option<&Outcome>| {
            action_taken && (!executed || result == Some(&Outcome::Done))
        };
        let mut summary = Summary {
            images_deregistered: self
                .images
                .iter()
                .filter(|i| counts(i.action == ImageAction::Deregister, i.result.as_ref()))
                .count(),
            images_disabled: self
                .images
                .iter()
                .filter(|i| counts(i.action == ImageAction::Disable, i.result.as_ref()))
                .count(),
            images_kept: self.images.iter().filter(|i| i.action == ImageAction::Keep).count(),
            images_kept_by_policy: self.images.iter().filter(|i| i.kept_by_policy).count(),
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

/// Made-up inventories for the tests of this module and its parts.
#[cfg(test)]
mod testing {
    use super::*;
    use crate::model::ImageUser;

    pub fn image(id: &str, name: &str, created: &str) -> Image {
        let mut image = Image::for_tests(id);
        image.name = Some(name.to_owned());
        image.creation_date = Some(created.parse().unwrap());
        image
    }

    pub fn now() -> Timestamp {
        "2026-06-01T00:00:00Z".parse().unwrap()
    }

    pub fn cleanup_policy() -> Policy {
        Policy {
            removal: Removal::Deregister { delete_snapshots: true },
            ..Policy::default()
        }
    }

    pub fn all() -> Selection {
        Selection {
            all: true,
            ..Selection::default()
        }
    }

    pub fn of(images: &[Image]) -> Inventory {
        Inventory {
            images: images.to_vec(),
            ..Inventory::default()
        }
    }

    pub fn actions(plan: &Plan) -> Vec<(&str, ImageAction)> {
        plan.images.iter().map(|i| (i.image_id.as_str(), i.action)).collect()
    }

    pub fn use_by(inventory: &mut Inventory, image: &str, user: ImageUser) {
        inventory
            .usage
            .users
            .entry(ImageId::from_ec2(image))
            .or_default()
            .insert(user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_is_saved_flat_as_documented_and_reads_back_as_it_was() {
        let policy = Policy {
            keep: 2,
            removal: Removal::Disable,
            shared: Shared::Ignore,
            orphans: Some(SignedDuration::from_hours(48)),
            ..Policy::default()
        };
        let saved = serde_json::to_value(&policy).unwrap();
        assert_eq!(
            saved,
            serde_json::json!({
                "keep": 2, "group_by": "none", "delete_snapshots": false, "allow_in_use": false,
                "include_shared": true, "orphans": true, "orphans_older_than": "PT48H", "disable": true,
            })
        );
        assert_eq!(serde_json::from_value::<Policy>(saved).unwrap(), policy);
        // A plan of format 2 has no `disable`: it deregistered.
        let older = serde_json::json!({
            "keep": 0, "group_by": "none", "delete_snapshots": true, "allow_in_use": true,
            "include_shared": false, "orphans": false, "orphans_older_than": "PT24H",
        });
        let read: Policy = serde_json::from_value(older).unwrap();
        assert!(read.deletes_snapshots() && !read.in_use.keep() && read.orphans.is_none());
        let unused = Policy {
            shared: Shared::IfUnused,
            ..Policy::default()
        };
        let saved = serde_json::to_value(&unused).unwrap();
        assert_eq!(saved["include_shared"], "unused");
        assert_eq!(serde_json::from_value::<Policy>(saved).unwrap(), unused);
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
