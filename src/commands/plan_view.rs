//! How a plan (cleanup, deregister, disable) is shown: as tables, one row per image with its
//! snapshots, the orphans, a summary; as JSON, the plan itself, every entry.

use comfy_table::{Color, Table};
use serde::{Serialize, Serializer};

use crate::output::{LongTable, Printer, Render, Rows, Shown, date_and_age};
use crate::pipeline::plan::{GroupBy, ImageAction, ImagePlan, Outcome, Plan, SnapshotAction, SnapshotPlan};
use crate::types::Region;

/// A plan as shown: the images kept only by `--keep` listed in the table (`--show-kept`), or
/// counted in one line of the summary. JSON always has every entry.
pub struct PlanView<'a> {
    pub plan: &'a Plan,
    pub show_kept: bool,
}

impl Serialize for PlanView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.plan.serialize(serializer)
    }
}

impl Render for PlanView<'_> {
    fn title(&self) -> Option<String> {
        let executed =
            self.plan.images.iter().any(|i| i.result.is_some()) || self.plan.snapshots().any(|s| s.result.is_some());
        let what = match (executed, self.plan.dry_run) {
            (true, _) => "Report",
            (false, true) => "Plan (nothing changed)",
            (false, false) => "Plan",
        };
        let regions: Vec<&str> = self.plan.regions.iter().map(Region::as_str).collect();
        Some(format!("{what}: {}", regions.join(", ")))
    }

    fn tables(&self, printer: &Printer) -> Vec<Table> {
        self.shown(printer).into_iter().map(Shown::into_table).collect()
    }

    /// The images (a row each, made as written: a plan across an organization has
    /// thousands), the orphaned snapshots, the summary.
    fn shown<'a>(&'a self, printer: &'a Printer) -> Vec<Shown<'a>> {
        let executed =
            self.plan.images.iter().any(|i| i.result.is_some()) || self.plan.snapshots().any(|s| s.result.is_some());
        let mut tables = Vec::new();
        // What changes, and what is kept for a reason a reviewer must see; the images kept
        // only by --keep are one line of the summary, unless --show-kept.
        let show_kept = self.show_kept;
        let shown = move || (self.plan.images.iter()).filter(move |i| show_kept || !i.kept_by_policy);
        if shown().next().is_some() {
            let grouped = self.plan.policy.group_by != GroupBy::None || shown().any(|i| i.group.is_some());
            let named = !self.plan.policies.is_empty();
            let mut header = vec!["IMAGE ID", "NAME", "CREATED"];
            if grouped {
                header.push("GROUP");
            }
            if named {
                header.push("POLICY");
            }
            header.extend(["ACTION", "REASON", "SNAPSHOTS", "GiB"]);
            if executed {
                header.push("RESULT");
            }
            let row = move |image: &ImagePlan| {
                let mut row = image_row(printer, image, executed);
                if named {
                    row.insert(3, printer.colored(image.policy.as_deref().unwrap_or("-"), None));
                }
                if grouped {
                    row.insert(3, printer.colored(image.group.as_deref().unwrap_or("(its own)"), None));
                }
                row
            };
            tables.push(Shown::Long(LongTable {
                head: printer.table(&header),
                rows: Box::new(move || -> Rows<'_> { Box::new(shown().map(row)) }),
            }));
        }
        if !self.plan.orphan_snapshots.is_empty() {
            let mut header = vec!["ORPHANED SNAPSHOT", "GiB", "ACTION", "REASON"];
            if executed {
                header.push("RESULT");
            }
            let mut table = printer.table(&header);
            for snapshot in &self.plan.orphan_snapshots {
                let mut row = vec![
                    printer.colored(&snapshot.snapshot_id, None),
                    printer.colored(gib(snapshot.size_gib), None),
                    snapshot_action(printer, snapshot),
                    printer.colored(&snapshot.reason, None),
                ];
                if executed {
                    row.push(result_cell(printer, snapshot.result.as_ref()));
                }
                table.add_row(row);
            }
            tables.push(Shown::Table(table));
        }
        tables.push(Shown::Table(summary_table(printer, self.plan, self.show_kept)));
        tables
    }
}

fn image_row(printer: &Printer, image: &ImagePlan, executed: bool) -> Vec<comfy_table::Cell> {
    let snapshots: Vec<String> = image.snapshots.iter().map(snapshot_line).collect();
    let size: i64 = image.snapshots.iter().filter_map(|s| s.size_gib).sum();
    let (action, color) = match image.action {
        ImageAction::Deregister => ("deregister", Color::Red),
        ImageAction::Disable => ("disable", Color::Yellow),
        ImageAction::Keep => ("keep", Color::Green),
    };
    let mut row = vec![
        printer.colored(&image.image_id, None),
        printer.colored(image.name.as_deref().unwrap_or("-"), None),
        printer.colored(
            image
                .creation_date
                .map_or_else(|| "-".to_owned(), |t| date_and_age(t, printer.now())),
            None,
        ),
        printer.colored(action, Some(color)),
        printer.colored(&image.reason, None),
        printer.colored(
            if snapshots.is_empty() {
                "-".to_owned()
            } else {
                snapshots.join("\n")
            },
            None,
        ),
        printer.colored(size, None),
    ];
    if executed {
        let mut cell = result_cell(printer, image.result.as_ref());
        if let Some(fate) = &image.recycle_bin {
            let text = format!("{}; {fate}", image.result.as_ref().map_or("-".to_owned(), outcome_text));
            cell = printer.colored(text, None);
        }
        row.push(cell);
    }
    row
}

/// `snap-… 8 GiB: delete` or `snap-… 8 GiB: keep (still used by ami-…)`, with its result.
fn snapshot_line(snapshot: &SnapshotPlan) -> String {
    let fate = match snapshot.action {
        SnapshotAction::Delete => "delete".to_owned(),
        SnapshotAction::Keep => format!("keep ({})", snapshot.reason),
    };
    let result = snapshot
        .result
        .as_ref()
        .map(|r| format!(" → {}", outcome_text(r)))
        .unwrap_or_default();
    format!("{} {}: {fate}{result}", snapshot.snapshot_id, gib(snapshot.size_gib))
}

fn snapshot_action(printer: &Printer, snapshot: &SnapshotPlan) -> comfy_table::Cell {
    match snapshot.action {
        SnapshotAction::Delete => printer.colored("delete", Some(Color::Red)),
        SnapshotAction::Keep => printer.colored("keep", Some(Color::Green)),
    }
}

fn result_cell(printer: &Printer, outcome: Option<&Outcome>) -> comfy_table::Cell {
    let color = match outcome {
        Some(Outcome::Failed(_)) => Some(Color::Red),
        Some(Outcome::Kept(_) | Outcome::NotAttempted(_)) => Some(Color::Yellow),
        _ => None,
    };
    printer.colored(outcome.map_or("-".to_owned(), outcome_text), color)
}

fn outcome_text(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Done => "done".to_owned(),
        Outcome::AlreadyGone => "already gone".to_owned(),
        Outcome::Kept(why) => format!("kept: {why}"),
        Outcome::NotAttempted(why) => format!("not attempted: {why}"),
        Outcome::Failed(why) => format!("failed: {why}"),
    }
}

fn gib(size: Option<i64>) -> String {
    size.map_or_else(|| "? GiB".to_owned(), |g| format!("{g} GiB"))
}

fn summary_table(printer: &Printer, plan: &Plan, show_kept: bool) -> Table {
    let summary = &plan.summary;
    let verb = |done: &'static str, planned: &'static str| if plan.dry_run { planned } else { done };
    let mut table = printer.table(&[]);
    // What the plan does to images: deregister, disable, or (policies of both kinds) both.
    let disables = plan.policy.disables() || plan.policies.iter().any(|r| r.policy.disables());
    let deregisters = !plan.policy.disables()
        || plan
            .policies
            .iter()
            .any(|r| !r.policy.disables() && r.policy.orphans.is_none());
    let mut rows = Vec::new();
    if deregisters {
        rows.push((
            verb("images deregistered", "images to deregister"),
            summary.images_deregistered.to_string(),
        ));
    }
    if disables {
        rows.push((
            verb("images disabled", "images to disable"),
            summary.images_disabled.to_string(),
        ));
    }
    rows.extend([
        (
            verb("snapshots deleted", "snapshots to delete"),
            summary.snapshots_deleted.to_string(),
        ),
        (verb("GiB freed", "GiB to free"), summary.gib_freed.to_string()),
        (
            "estimated monthly saving",
            format!(
                "at most ${:.2} (snapshot storage is incremental)",
                summary.estimated_monthly_saving_usd
            ),
        ),
        ("images kept", summary.images_kept.to_string()),
    ]);
    for (key, value) in rows {
        table.add_row(vec![key.to_owned(), value]);
    }
    if summary.images_kept_by_policy > 0 && !show_kept {
        let by = if plan.policies.is_empty() {
            format!("--keep {}", plan.policy.keep)
        } else {
            "the policies' keep".to_owned()
        };
        table.add_row(vec![
            format!("  of them by {by}"),
            format!("{} (not listed; --show-kept lists them)", summary.images_kept_by_policy),
        ]);
    }
    table.add_row(vec!["failures".to_owned(), summary.failures.to_string()]);
    if !plan.unchecked.is_empty() {
        table.add_row(vec![
            "could not check (every candidate kept)".to_owned(),
            plan.unchecked.join("\n"),
        ]);
    }
    table
}
