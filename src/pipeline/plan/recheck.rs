//! A saved plan, checked again: its own selection and policy make a fresh plan, and only
//! what both say is carried out.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

use super::{ImageAction, ImagePlan, Inventory, Plan, SnapshotAction, SnapshotPlan, Summary, plan_rules};
use crate::types::{ImageId, SnapshotId};

/// A saved plan, checked again against the account as it is now (`cleanup --apply-plan`):
/// the plan's own selection and policy make a fresh plan, and only what both plans do is
/// carried out. An entry edited in by hand, or turned from keep to deregister, is kept with
/// the reason; nothing beyond the saved plan is ever added.
pub fn recheck(saved: &Plan, inventory: &Inventory, now: Timestamp) -> Plan {
    // Each policy where it ran when the plan was made (a region's part: that region).
    let rules: Vec<_> = (saved.rules().into_iter())
        .filter(|rule| saved.regions.is_empty() || saved.regions.iter().any(|region| rule.runs_in(region)))
        .collect();
    let fresh = plan_rules(inventory, &rules, now);
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
        policies: saved.policies.clone(),
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

#[cfg(test)]
mod tests {
    use super::super::Policy;
    use super::super::plan;
    use super::super::testing::*;
    use super::*;
    use crate::model::{ImageUser, UserKind};
    use crate::pipeline::selection::Selection;

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
}
