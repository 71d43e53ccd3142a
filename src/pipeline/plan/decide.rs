//! Making a plan: what happens to each selected image and its snapshots, and to orphaned
//! snapshots, from the inventory and the policy alone.

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};

use super::{ImageAction, ImagePlan, Inventory, Plan, Policy, Rules, Shared, SnapshotAction, SnapshotPlan, UNCHECKED};
use crate::ec2::{ReportAnswer, Reports};
use crate::model::{Backing, Image, ImageState, RecycleBin, Snapshot, SnapshotState};
use crate::pipeline::selection::Selection;
use crate::types::{ImageId, SnapshotId};

/// Decides what happens to each image the selection picks and its snapshots, and (with
/// `orphans`) to the snapshots whose image is gone.
pub fn plan(inventory: &Inventory, selection: &Selection, policy: &Policy, now: Timestamp) -> Plan {
    let rules = [Rules {
        name: None,
        selection: selection.clone(),
        policy: policy.clone(),
        regions: Vec::new(),
    }];
    let mut plan = plan_rules(inventory, &rules, now);
    plan.policies = Vec::new();
    plan
}

/// Each image once, with the rule whose decision stands (its index in `rules`).
fn decide_each_once<'a>(
    inventory: &'a Inventory,
    rules: &[Rules],
    now: Timestamp,
) -> Vec<(ImagePlan, &'a Image, usize)> {
    let mut decided: Vec<(ImagePlan, &Image, usize)> = Vec::new();
    let mut at: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, rule) in rules.iter().enumerate() {
        let selected = rule.selection.pick(&inventory.images, now);
        let kept_by_keep = newest_of_each_group(&selected, &rule.policy);
        let reason = rule.selection.reason();
        for image in selected {
            let (action, reason) = decide(
                image,
                inventory,
                &rule.policy,
                &reason,
                kept_by_keep.get(image.image_id.as_str()),
                now,
            );
            let mut entry = image_entry(
                image,
                inventory,
                rule,
                action,
                reason,
                kept_by_keep.contains_key(image.image_id.as_str()),
            );
            entry.unchanged = rule.policy.disables() && image.is_disabled();
            match at.get(image.image_id.as_str()) {
                None => {
                    at.insert(image.image_id.as_str(), decided.len());
                    decided.push((entry, image, index));
                }
                Some(&slot) if stands_instead(&entry, &decided[slot].0) => decided[slot] = (entry, image, index),
                Some(_) => {}
            }
        }
    }
    decided
}

/// One plan for several named policies (a policy file): each decides for the images it
/// selects, and an image two policies select gets the gentler decision (kept if either keeps
/// it; disabled rather than deregistered). Snapshots are decided once, from what the merged
/// plan removes, so a snapshot is deleted only if every image using it leaves.
pub fn plan_rules(inventory: &Inventory, rules: &[Rules], now: Timestamp) -> Plan {
    let decided = decide_each_once(inventory, rules, now);
    let leaving: BTreeSet<String> = decided
        .iter()
        .filter(|(entry, ..)| entry.action == ImageAction::Deregister)
        .map(|(entry, ..)| entry.image_id.to_string())
        .collect();
    let references = inventory.references();
    let mut images = Vec::with_capacity(decided.len());
    for (mut entry, image, index) in decided {
        let policy = &rules[index].policy;
        entry.snapshots = image
            .block_devices
            .iter()
            .filter_map(|device| {
                let id = device.snapshot_id.as_ref()?;
                let (action, reason) = match snapshot_fate(id.as_str(), &entry, policy, &references, &leaving) {
                    (SnapshotAction::Delete, reason) => match needed_elsewhere(inventory, id, policy) {
                        Some(why) => (SnapshotAction::Keep, why),
                        None => (SnapshotAction::Delete, reason),
                    },
                    kept => kept,
                };
                Some(SnapshotPlan {
                    snapshot_id: id.clone(),
                    region: entry.region.clone(),
                    account_id: entry.account_id.clone(),
                    size_gib: device.volume_size_gib,
                    action,
                    reason,
                    result: None,
                    policy: entry.policy.clone(),
                })
            })
            .collect();
        images.push(entry);
    }

    let orphan_snapshots = match rules.iter().find(|r| r.policy.orphans.is_some()) {
        Some(rule) => {
            let mut found = orphans(inventory, &images, &references, &rule.policy, now);
            for snapshot in &mut found {
                snapshot.policy.clone_from(&rule.name);
            }
            found
        }
        None => Vec::new(),
    };
    let (selection, policy) = match rules {
        [one] => (one.selection.clone(), one.policy.clone()),
        _ => (Selection::default(), Policy::default()),
    };
    Plan {
        accounts: inventory.accounts(),
        images,
        orphan_snapshots,
        unchecked: inventory.usage.unchecked.clone(),
        policies: rules.to_vec(),
        ..Plan::empty(&selection, &policy)
    }
}

/// Whether `new` should stand instead of `old` for an image two policies select. A policy
/// whose stage the image is in already has no vote (a disable policy doesn't keep a disabled
/// image from the policy that deregisters what has been disabled long enough); among the
/// others, keeping beats disabling beats deregistering, and a reason a reviewer must see beats
/// `--keep`.
fn stands_instead(new: &ImagePlan, old: &ImagePlan) -> bool {
    match (old.unchanged, new.unchanged) {
        (true, false) => true,
        (false, true) => false,
        _ => gentler(new, old),
    }
}

fn gentler(new: &ImagePlan, old: &ImagePlan) -> bool {
    let rank = |entry: &ImagePlan| match entry.action {
        ImageAction::Keep => 0,
        ImageAction::Disable => 1,
        ImageAction::Deregister => 2,
    };
    rank(new) < rank(old) || (rank(new) == 0 && rank(old) == 0 && old.kept_by_policy && !new.kept_by_policy)
}

fn image_entry(
    image: &Image,
    inventory: &Inventory,
    rule: &Rules,
    action: ImageAction,
    reason: String,
    kept_by_keep: bool,
) -> ImagePlan {
    ImagePlan {
        image_id: image.image_id.clone(),
        region: image.region.clone(),
        account_id: image.account_id.clone(),
        account_name: image.account_name.clone(),
        name: image.name.clone(),
        creation_date: image.creation_date,
        state: image.state.clone(),
        group: rule.policy.group_by.label(image),
        action,
        reason,
        kept_by_policy: kept_by_keep,
        policy: rule.name.clone(),
        unchanged: false,
        used_by: inventory
            .usage
            .users
            .get(&image.image_id)
            .map(|u| u.iter().cloned().collect())
            .unwrap_or_default(),
        shared_with: inventory.shared_with(image),
        snapshots: Vec::new(),
        result: None,
        recycle_bin: None,
    }
}

/// Whether an image can be launched now: only those count for `--keep`.
fn launchable(image: &Image) -> bool {
    image.state.as_ref().is_none_or(ImageState::is_launchable)
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
    now: Timestamp,
) -> (ImageAction, String) {
    if let Some(state) = image.state.as_ref().filter(|state| state.is_transient()) {
        return (
            ImageAction::Keep,
            format!("{state}: EC2 is still making it; never removed while it is"),
        );
    }
    if let Some(reason) = kept {
        return (ImageAction::Keep, reason.clone());
    }
    // Kept in both modes: whoever protected an image meant it to stay.
    if let Some(why) = image.protection(now).reason() {
        return (ImageAction::Keep, why);
    }
    if policy.disables() && image.is_disabled() {
        return (ImageAction::Keep, "disabled already".to_owned());
    }
    let mut reason = selected_because.to_owned();
    if let Some(users) = inventory.usage.users.get(&image.image_id).filter(|u| !u.is_empty()) {
        let users: Vec<String> = users.iter().map(ToString::to_string).collect();
        if policy.in_use.keep() {
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
        match policy.shared {
            Shared::Keep => {
                return (
                    ImageAction::Keep,
                    format!("{whom}; --include-shared deregisters it anyway"),
                );
            }
            Shared::IfUnused => match unused_elsewhere(inventory, image, &shared) {
                Ok(why) => reason = format!("{reason}; {whom}, but {why}"),
                // Unchecked first, as the summary counts (and the exit code says) them.
                Err(why) if why.starts_with(UNCHECKED) => return (ImageAction::Keep, format!("{why}; {whom}")),
                Err(why) => return (ImageAction::Keep, format!("{whom}; {why}")),
            },
            Shared::Ignore => reason = format!("{reason}; {whom}, deregistered as --include-shared says"),
        }
    }
    if !inventory.usage.unchecked.is_empty() && policy.in_use.keep() {
        let more = match inventory.usage.unchecked.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        return (
            ImageAction::Keep,
            format!("{UNCHECKED}: {}{more}", inventory.usage.unchecked[0]),
        );
    }
    if policy.disables() {
        return (ImageAction::Disable, reason);
    }
    if image.backing == Backing::InstanceStore {
        reason.push_str("; instance-store-backed: its bundle in S3 is not touched");
    }
    (ImageAction::Deregister, reason)
}

/// Whether no other account uses a shared image (`--include-shared=unused`): `Ok` says how that
/// is known; `Err` why it is kept. A public image is always kept: anyone may launch it at any
/// time, and no report can say who will. An image launched lately is kept too: the "View your
/// AMI usage" guide says a report may miss the past 24 hours of instance activity.
fn unused_elsewhere(inventory: &Inventory, image: &Image, shared: &[String]) -> Result<String, String> {
    if shared.iter().any(|s| s == "public") {
        return Err(
            "--include-shared=unused never removes a public image: anyone may launch it, and no report can say who will (--include-shared does)"
                .to_owned(),
        );
    }
    if let Some(run) = inventory.run_usage.get(&image.image_id) {
        if !run.users.is_empty() {
            let used: Vec<String> = (run.users.iter())
                .map(|(account, user)| format!("{user} in account {account}"))
                .collect();
            return Err(format!(
                "used by {}; --include-shared removes it anyway",
                used.join(", ")
            ));
        }
        if let Some(gap) = run.gaps.first() {
            return Err(format!("{UNCHECKED} in other accounts: {gap}"));
        }
        if run.covered {
            return Ok("no account it is shared with uses it (each one's own scan, in this run)".to_owned());
        }
    }
    let answer = match &inventory.shared_usage {
        Some(Reports::Answers(answers)) => answers.get(&image.image_id),
        Some(Reports::NotOffered(why)) => {
            return Err(format!(
                "{UNCHECKED} in other accounts: the endpoint has no usage reports ({why})"
            ));
        }
        None => None,
    };
    match answer {
        None => Err(format!("{UNCHECKED} in other accounts: no usage report was read")),
        Some(ReportAnswer::Unchecked { why }) => Err(format!("{UNCHECKED} in other accounts: {why}")),
        Some(ReportAnswer::Read { report_id, entries, .. }) if !entries.is_empty() => {
            let mut by_account: BTreeMap<&str, Vec<String>> = BTreeMap::new();
            for entry in entries {
                let kind = match entry.resource_type.as_str() {
                    "ec2:Instance" => "instance",
                    "ec2:LaunchTemplate" => "launch template",
                    other => other,
                };
                let plural = if entry.usage_count == 1 { "" } else { "s" };
                by_account
                    .entry(entry.account_id.as_str())
                    .or_default()
                    .push(format!("{} {kind}{plural}", entry.usage_count));
            }
            let used: Vec<String> = (by_account.into_iter())
                .map(|(account, what)| format!("account {account} ({})", what.join(", ")))
                .collect();
            Err(format!(
                "used by {} (usage report {report_id}); --include-shared removes it anyway",
                used.join(", ")
            ))
        }
        Some(ReportAnswer::Read { report_id, created, .. }) => {
            // Neither the report nor EC2's last launch time (which lags up to a day) shows a
            // launch of the past 24 hours: an image made or launched within them stays.
            if let (Some(seen), Some(created)) = (image.last_used(), created)
                && seen
                    >= created
                        .saturating_sub(SignedDuration::from_hours(24))
                        .unwrap_or(*created)
            {
                let what = if image.last_launched_time.is_some() {
                    "launched"
                } else {
                    "made"
                };
                return Err(format!(
                    "{what} {seen}, within the 24 hours before usage report {report_id} that it may not show; run again a day later"
                ));
            }
            Ok(format!("no other account uses it (usage report {report_id})"))
        }
    }
}

fn snapshot_fate(
    id: &str,
    image: &ImagePlan,
    policy: &Policy,
    references: &BTreeMap<&str, BTreeSet<&str>>,
    leaving: &BTreeSet<String>,
) -> (SnapshotAction, String) {
    match image.action {
        ImageAction::Keep => return (SnapshotAction::Keep, "its image is kept".to_owned()),
        ImageAction::Disable => {
            return (
                SnapshotAction::Keep,
                "its image is only disabled (`amictl enable` brings it back)".to_owned(),
            );
        }
        ImageAction::Deregister => {}
    }
    if !policy.deletes_snapshots() {
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

/// Why a snapshot no image of the plan keeps is still needed: a launch template version or
/// launch configuration creates volumes from it (kept unless `--allow-in-use`), or other
/// accounts may create volumes from it (kept unless `--include-shared`), as for images.
fn needed_elsewhere(inventory: &Inventory, id: &SnapshotId, policy: &Policy) -> Option<String> {
    if policy.in_use.keep()
        && let Some(users) = inventory.usage.snapshot_users.get(id).filter(|u| !u.is_empty())
    {
        let users: Vec<String> = users.iter().map(ToString::to_string).collect();
        return Some(format!(
            "{} creates volumes from it; --allow-in-use deletes it anyway",
            users.join(", ")
        ));
    }
    if policy.shared != Shared::Ignore
        && let Some(sharing) = inventory.snapshot_sharing.get(id)
    {
        let whom = if sharing.public {
            "public: any AWS account may create volumes from it".to_owned()
        } else {
            format!(
                "shared with {}: they may create volumes from it",
                sharing.accounts.join(", ")
            )
        };
        return Some(format!("{whom}; --include-shared deletes it anyway"));
    }
    None
}

/// Snapshots made for an image that no longer exists (nor waits in the Recycle Bin), which no
/// existing image references, complete and old enough not to belong to an image in the making.
/// One that something else still needs (a template, a configuration, another account) is
/// listed as kept, with the reason.
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
        s.state == Some(SnapshotState::Completed)
            && s.start_time.is_some_and(|started| {
                now.duration_since(started) >= policy.orphans.unwrap_or(Policy::ORPHANS_OLDER_THAN)
            })
    };
    inventory
        .snapshots
        .iter()
        .filter(|s| !listed.contains(s.snapshot_id.as_str()) && !references.contains_key(s.snapshot_id.as_str()))
        .filter(|s| old_enough(s))
        .filter_map(|s| {
            let image = s.made_for_image()?;
            let gone = !existing.contains(image.as_str()) && !in_recycle_bin.contains(image.as_str());
            let (action, reason) = match needed_elsewhere(inventory, &s.snapshot_id, policy) {
                Some(why) => (SnapshotAction::Keep, why),
                None => (
                    SnapshotAction::Delete,
                    format!("made for {image}, which no longer exists"),
                ),
            };
            gone.then(|| SnapshotPlan {
                snapshot_id: s.snapshot_id.clone(),
                region: s.region.clone(),
                account_id: s.account_id.clone(),
                size_gib: s.size_gib,
                action,
                reason,
                result: None,
                policy: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use jiff::SignedDuration;

    use super::super::testing::*;
    use super::super::{Consumers, GroupBy, Outcome, Removal};
    use super::*;
    use crate::model::{ImageUser, LaunchPermissions, UserKind};
    use crate::types::SnapshotId;

    fn rule(name: &str, selection: Selection, policy: Policy) -> Rules {
        Rules {
            name: Some(name.to_owned()),
            selection,
            policy,
            regions: Vec::new(),
        }
    }

    /// A policy that disables, meeting an image disabled already, has no vote: the policy
    /// that deregisters what has been disabled long enough decides.
    #[test]
    fn a_policy_whose_stage_the_image_is_in_already_has_no_vote() {
        let mut disabled = image("ami-00000001", "ci-1", "2026-01-01T00:00:00Z");
        disabled.state = Some(ImageState::Disabled);
        disabled.tags.insert(
            crate::model::DISABLED_AT_TAG.to_owned(),
            "2026-02-01T00:00:00Z".to_owned(),
        );
        let inventory = of(&[disabled]);
        let disable_ci = rule(
            "ci",
            all(),
            Policy {
                removal: Removal::Disable,
                ..cleanup_policy()
            },
        );
        let deregister_disabled = rule(
            "retired",
            Selection {
                disabled_for: Some(SignedDuration::from_hours(24 * 14)),
                ..Selection::default()
            },
            cleanup_policy(),
        );

        for rules in [
            [disable_ci.clone(), deregister_disabled.clone()],
            [deregister_disabled.clone(), disable_ci.clone()],
        ] {
            let plan = plan_rules(&inventory, &rules, now());
            assert_eq!(actions(&plan), [("ami-00000001", ImageAction::Deregister)], "{plan:#?}");
            assert_eq!(plan.images[0].policy.as_deref(), Some("retired"));
        }

        let alone = plan_rules(&inventory, std::slice::from_ref(&disable_ci), now());
        assert_eq!(actions(&alone), [("ami-00000001", ImageAction::Keep)]);
        assert!(alone.images[0].unchanged, "disabled already: unchanged, no refusal");
    }

    #[test]
    fn two_policies_make_one_plan_and_an_image_either_keeps_is_kept() {
        use crate::types::NameGlob;
        let nightly = |n: u32| {
            image(
                &format!("ami-0000000{n}"),
                &format!("nightly-{n}"),
                &format!("2026-0{n}-01T00:00:00Z"),
            )
        };
        let mut images = vec![nightly(1), nightly(2), nightly(3)];
        let mut ci = image("ami-00000009", "ci-9", "2026-05-01T00:00:00Z");
        ci.tags.insert("env".to_owned(), "ci".to_owned());
        images.push(ci);
        // nightly-3 is also tagged env=ci: the ci policy would disable it, the nightly one keeps it.
        images[2].tags.insert("env".to_owned(), "ci".to_owned());
        let by_name = rule(
            "nightly",
            Selection {
                name: Some("nightly-*".parse::<NameGlob>().unwrap()),
                ..Selection::default()
            },
            Policy {
                keep: 1,
                group_by: GroupBy::Name,
                ..cleanup_policy()
            },
        );
        let by_tag = rule(
            "ci",
            Selection {
                tags: vec!["env=ci".parse().unwrap()],
                ..Selection::default()
            },
            Policy {
                removal: Removal::Disable,
                ..cleanup_policy()
            },
        );

        let plan = plan_rules(&of(&images), &[by_name, by_tag], now());

        let decided: Vec<(&str, ImageAction, Option<&str>, bool)> = plan
            .images
            .iter()
            .map(|i| (i.image_id.as_str(), i.action, i.policy.as_deref(), i.kept_by_policy))
            .collect();
        assert_eq!(
            decided,
            [
                ("ami-00000001", ImageAction::Deregister, Some("nightly"), false),
                ("ami-00000002", ImageAction::Deregister, Some("nightly"), false),
                ("ami-00000003", ImageAction::Keep, Some("nightly"), true),
                ("ami-00000009", ImageAction::Disable, Some("ci"), false),
            ]
        );
        assert_eq!(plan.policies.len(), 2, "the plan records its policies");
        assert!(
            plan.images[1]
                .snapshots
                .iter()
                .all(|s| s.policy.as_deref() == Some("nightly"))
        );
    }

    #[test]
    fn a_snapshot_is_deleted_only_if_every_policy_lets_all_its_images_go() {
        let mut going = image("ami-00000001", "old-1", "2026-01-01T00:00:00Z");
        let mut staying = image("ami-00000002", "new-1", "2026-02-01T00:00:00Z");
        staying.block_devices = going.block_devices.clone();
        staying.snapshot_ids = going.snapshot_ids.clone();
        going.tags.insert("env".to_owned(), "ci".to_owned());
        staying.tags.insert("env".to_owned(), "ci".to_owned());
        let all_ci = Selection {
            tags: vec!["env=ci".parse().unwrap()],
            ..Selection::default()
        };
        // One policy would remove both (and so the shared snapshot); the other keeps the newer.
        let both = rule("both", all_ci.clone(), cleanup_policy());
        let newest = rule(
            "newest",
            all_ci,
            Policy {
                keep: 1,
                ..cleanup_policy()
            },
        );

        let plan = plan_rules(&of(&[going, staying]), &[both, newest], now());

        assert_eq!(
            actions(&plan),
            [
                ("ami-00000001", ImageAction::Deregister),
                ("ami-00000002", ImageAction::Keep)
            ]
        );
        let snapshot = &plan.images[0].snapshots[0];
        assert_eq!(snapshot.action, SnapshotAction::Keep, "{}", snapshot.reason);
        assert!(
            snapshot.reason.contains("still used by ami-00000002"),
            "{}",
            snapshot.reason
        );
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
                in_use: Consumers::Ignore,
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
                shared: Shared::Ignore,
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
    fn unused_removes_a_shared_image_only_on_a_report_that_answers_for_it_and_the_past_day() {
        use crate::ec2::ReportAnswer;
        let shared = |id: &str| {
            let mut image = image(id, id, "2026-01-01T00:00:00Z");
            image.image_id = ImageId::from_ec2(id);
            image
        };
        let ids = ["ami-00000001", "ami-00000002", "ami-00000003", "ami-00000004"];
        let mut recent = shared(ids[3]);
        recent.last_launched_time = Some("2026-05-31T12:00:00Z".parse().unwrap());
        let mut inventory = of(&[shared(ids[0]), shared(ids[1]), shared(ids[2]), recent]);
        for id in ids {
            inventory.shared.insert(
                ImageId::from_ec2(id),
                LaunchPermissions {
                    accounts: vec!["111122223333".to_owned()],
                    ..LaunchPermissions::default()
                },
            );
        }
        let read = |entries| ReportAnswer::Read {
            report_id: "amiur-1".to_owned(),
            created: Some("2026-06-01T00:00:00Z".parse().unwrap()),
            made_now: false,
            entries,
        };
        let answers = [
            (ids[0], read(Vec::new())),
            (
                ids[2],
                ReportAnswer::Unchecked {
                    why: "usage report amiur-2 was not available".to_owned(),
                },
            ),
            (ids[3], read(Vec::new())),
        ];
        inventory.shared_usage = Some(Reports::Answers(
            answers.into_iter().map(|(id, a)| (ImageId::from_ec2(id), a)).collect(),
        ));
        let unused = Policy {
            shared: Shared::IfUnused,
            ..cleanup_policy()
        };

        let mut planned = plan(&inventory, &all(), &unused, now());
        planned.summarize(0.05);
        inventory.shared_usage = Some(Reports::NotOffered("InvalidAction".to_owned()));
        let without_reports = plan(&inventory, &all(), &unused, now());

        let actions: Vec<ImageAction> = planned.images.iter().map(|i| i.action).collect();
        assert_eq!(
            actions,
            [
                ImageAction::Deregister,
                ImageAction::Keep,
                ImageAction::Keep,
                ImageAction::Keep
            ]
        );
        assert!(planned.images[1].reason.contains("no usage report was read"));
        assert!(
            planned.images[3]
                .reason
                .contains("launched 2026-05-31T12:00:00Z, within the 24 hours")
        );
        assert_eq!(
            planned.summary.images_unchecked, 2,
            "no report, and one not ready: unchecked"
        );
        assert!(without_reports.images.iter().all(|i| i.action == ImageAction::Keep));
        assert!(without_reports.images[0].reason.contains("no usage reports"));
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
        pending.state = Some(ImageState::Pending);
        let mut failed = image("ami-00000002", "app-2", "2026-02-01T00:00:00Z");
        failed.state = Some(ImageState::Failed);
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
            region: "eu-west-1".parse().unwrap(),
            account_id: None,
            size_gib: Some(15),
            description: Some(description.to_owned()),
            state: Some(SnapshotState::parse(state)),
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
            orphans: Some(Policy::ORPHANS_OLDER_THAN),
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
                plan.summary.images_disabled,
                plan.summary.snapshots_deleted,
                plan.summary.failures
            ),
            (1, 0, 0, 1),
            "the image deregistered is not counted as disabled too"
        );

        // A policy file may disable one image and deregister another in the same run.
        plan.images[1].action = ImageAction::Disable;
        plan.images[1].result = Some(Outcome::Done);
        plan.summarize(0.05);
        assert_eq!(
            (plan.summary.images_deregistered, plan.summary.images_disabled),
            (1, 1),
            "each done image counted once, by what was done to it"
        );
    }
}
