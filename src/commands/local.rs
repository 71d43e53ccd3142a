//! The commands that talk to nobody: `completions` and `man` (generated from the command
//! line's definition) and `policy check`.

use comfy_table::Table;
use serde::Serialize;

use crate::output::{Printer, Render};
use crate::pipeline::plan::Rules;
use crate::policy_file::PolicyFile;

/// `amictl completions SHELL`, from the command line's definition.
pub fn completions(
    printer: &Printer,
    shell: clap_complete::Shell,
    mut definition: clap::Command,
) -> anyhow::Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut definition, "amictl", &mut script);
    printer.raw(&script)
}

/// `amictl man`, from the command line's definition.
pub fn man(printer: &Printer, definition: clap::Command) -> anyhow::Result<()> {
    let mut page = Vec::new();
    clap_mangen::Man::new(definition).render(&mut page)?;
    printer.raw(&page)
}

/// `amictl policy check FILE`: the file's policies as amictl reads them, or the first mistake
/// with its line and column (exit 2). Nothing is sent anywhere.
pub fn check_policy(printer: &Printer, path: &std::path::Path) -> anyhow::Result<()> {
    let file = PolicyFile::load(path)?;
    let mut policies: Vec<CheckedPolicy> = file
        .policies
        .into_iter()
        .map(|(rules, regions)| CheckedPolicy {
            regions: regions.iter().map(ToString::to_string).collect(),
            rules,
        })
        .collect();
    policies.extend(file.orphans.map(|rules| CheckedPolicy {
        rules,
        regions: Vec::new(),
    }));
    printer.print(&Checked { policies })
}

#[derive(Debug, Serialize)]
#[serde(transparent)]
struct Checked {
    policies: Vec<CheckedPolicy>,
}

/// One policy as `cleanup --policy` will run it.
#[derive(Debug, Serialize)]
struct CheckedPolicy {
    #[serde(flatten)]
    rules: Rules,
    /// Empty: the run's own region (for `[orphans]`: every region of the run).
    regions: Vec<String>,
}

impl Render for Checked {
    fn title(&self) -> Option<String> {
        Some(format!("{} policies", self.policies.len()))
    }

    fn tables(&self, printer: &Printer) -> Vec<Table> {
        let mut table = printer.table(&["POLICY", "SELECTS", "KEEP", "GROUP BY", "STAGE", "REGIONS"]);
        for checked in &self.policies {
            let rules = &checked.rules;
            let orphans = rules.policy.orphans.is_some();
            table.add_row(vec![
                rules.name.clone().unwrap_or_default(),
                if let Some(older_than) = rules.policy.orphans {
                    format!(
                        "orphaned snapshots at least {} old",
                        humantime::format_duration(std::time::Duration::try_from(older_than).unwrap_or_default())
                    )
                } else {
                    rules.selection.reason()
                },
                rules.policy.keep.to_string(),
                rules.policy.group_by.to_string(),
                (if orphans {
                    "delete"
                } else if rules.policy.disables() {
                    "disable"
                } else {
                    "deregister"
                })
                .to_owned(),
                if checked.regions.is_empty() {
                    if orphans {
                        "every region of the run"
                    } else {
                        "the run's region"
                    }
                    .to_owned()
                } else {
                    checked.regions.join(", ")
                },
            ]);
        }
        vec![table]
    }
}
