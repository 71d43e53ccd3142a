//! Cleanup policies as a file: `amictl cleanup --policy amictl.toml` runs them as one plan,
//! `amictl policy check amictl.toml` checks them offline. Each named policy is what the flags
//! of one `cleanup` say, in the same words:
//!
//! ```toml
//! [policies.nightly]
//! name = "nightly-*"          # selectors, as the flags: image-ids, name, tags, older-than,
//! older-than = "14d"          #   deprecated, disabled-for, unused-for, all
//! exclude-tags = ["keep=yes"]
//! keep = 3
//! group-by = "name"
//! regions = ["us-east-1", "eu-west-1"]   # default: the run's region
//! stage = "disable"           # or "deregister" (the default)
//!
//! [orphans]                   # optional: orphaned snapshots in every region of the run
//! older-than = "7d"
//! ```
//!
//! Everything is checked before any request: an unknown key, a bad value or options that
//! conflict is a usage error naming the file, line and column.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

use jiff::SignedDuration;
use serde::{Deserialize, Deserializer};
use toml::Spanned;

use crate::error::Error;
use crate::pipeline::plan::{Consumers, GroupBy, Policy, Removal, Rules, RulesError, Shared};
use crate::pipeline::selection::Selection;
use crate::types::{Age, ImageId, NameGlob, Region, Tag, each_once};

/// The name of the rule that cleans up orphaned snapshots (`[orphans]`).
pub const ORPHANS: &str = "orphans";

/// A policy file, checked: its named policies, each with the regions it runs in (empty: the
/// run's own region).
#[derive(Debug, Clone)]
pub struct PolicyFile {
    pub policies: Vec<(Rules, Vec<Region>)>,
    /// `[orphans]`: orphaned snapshots in every region of the run.
    pub orphans: Option<Rules>,
}

impl PolicyFile {
    /// Reads and checks the file.
    pub fn load(path: &Path) -> Result<PolicyFile, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Usage(format!("cannot read the policy file {}: {e}", path.display())))?;
        PolicyFile::parse(&text).map_err(|(offset, message)| {
            let (line, column) = line_and_column(&text, offset);
            Error::Usage(format!("{}:{line}:{column}: {message}", path.display()))
        })
    }

    /// Checks the text of a policy file; an error is the byte offset it is at, and what is wrong.
    pub fn parse(text: &str) -> Result<PolicyFile, (usize, String)> {
        let file: FileText = toml::from_str(text).map_err(|e| {
            let message = e.message().trim().replace('\n', "; ");
            (e.span().map_or(0, |s| s.start), message)
        })?;
        if file.policies.is_empty() {
            return Err((0, "no policies: add a [policies.NAME] table".to_owned()));
        }
        let mut policies = Vec::new();
        for (name, entry) in file.policies {
            let at = entry.span().start;
            let entry = entry.into_inner();
            if name.is_empty() || name == ORPHANS {
                return Err((at, format!("'{name}' can't name a policy; choose another name")));
            }
            policies.push(entry.rules(&name, at)?);
        }
        let orphans = file.orphans.map(|orphans| Rules {
            name: Some(ORPHANS.to_owned()),
            selection: Selection::default(),
            policy: Policy {
                orphans: Some(orphans.older_than.0),
                removal: Removal::Deregister { delete_snapshots: true },
                ..Policy::default()
            },
            regions: Vec::new(),
        });
        Ok(PolicyFile { policies, orphans })
    }

    /// The rules that apply in `region`, given the run's own region for policies that name none.
    pub fn rules_in(&self, region: &Region, home: &Region) -> Vec<Rules> {
        let mut rules: Vec<Rules> = self
            .policies
            .iter()
            .filter(|(_, regions)| {
                if regions.is_empty() {
                    region == home
                } else {
                    regions.contains(region)
                }
            })
            .map(|(rules, _)| rules.clone())
            .collect();
        rules.extend(self.orphans.clone());
        rules
    }

    /// The policies as a saved plan records them, each with the regions it ran in (the run's
    /// own, `home`, for those that name none), then the orphans' rule (every region).
    pub fn recorded(&self, home: &Region) -> Vec<Rules> {
        let mut recorded: Vec<Rules> = self
            .policies
            .iter()
            .map(|(rules, regions)| Rules {
                regions: if regions.is_empty() {
                    vec![home.clone()]
                } else {
                    regions.clone()
                },
                ..rules.clone()
            })
            .collect();
        recorded.extend(self.orphans.clone());
        recorded
    }

    /// Every region a policy runs in, the run's own (`home`) for those that name none.
    pub fn regions(&self, home: &Region) -> Vec<Region> {
        each_once(self.policies.iter().flat_map(|(_, named)| {
            if named.is_empty() {
                std::slice::from_ref(home)
            } else {
                named.as_slice()
            }
            .iter()
            .cloned()
        }))
    }
}

/// The file as written. Keys are the flags' names.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileText {
    #[serde(default)]
    policies: BTreeMap<String, Spanned<PolicyText>>,
    orphans: Option<OrphansText>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct OrphansText {
    #[serde(default = "a_day")]
    older_than: Duration,
}

fn a_day() -> Duration {
    Duration(SignedDuration::from_hours(24))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct PolicyText {
    #[serde(default)]
    image_ids: Vec<ImageId>,
    name: Option<NameGlob>,
    #[serde(default)]
    tags: Vec<Tag>,
    #[serde(default)]
    exclude_tags: Vec<Tag>,
    older_than: Option<Duration>,
    #[serde(default)]
    all: bool,
    #[serde(default)]
    deprecated: bool,
    disabled_for: Option<Spanned<Duration>>,
    unused_for: Option<Duration>,
    #[serde(default)]
    keep: usize,
    #[serde(default)]
    group_by: Parsed<GroupBy>,
    #[serde(default)]
    regions: Vec<Region>,
    stage: Option<Spanned<Stage>>,
    #[serde(default, deserialize_with = "ignored_if_true")]
    allow_in_use: Consumers,
    #[serde(default, deserialize_with = "shared_images")]
    include_shared: Shared,
}

impl PolicyText {
    fn rules(self, name: &str, at: usize) -> Result<(Rules, Vec<Region>), (usize, String)> {
        let disable = self.stage.as_ref().is_some_and(|s| *s.get_ref() == Stage::Disable);
        let disabled_for_at = self.disabled_for.as_ref().map_or(at, |d| d.span().start);
        let selection = Selection {
            image_ids: self.image_ids,
            name: self.name,
            tags: self.tags,
            exclude_tags: self.exclude_tags,
            older_than: self.older_than.map(|d| d.0),
            all: self.all,
            deprecated: self.deprecated,
            disabled_for: self.disabled_for.map(|d| d.into_inner().0),
            unused_for: self.unused_for.map(|d| d.0),
        };
        let policy = Policy {
            keep: self.keep,
            group_by: self.group_by.0,
            removal: if disable {
                Removal::Disable
            } else {
                Removal::Deregister { delete_snapshots: true }
            },
            in_use: self.allow_in_use,
            shared: self.include_shared,
            ..Policy::default()
        };
        let rules = Rules::build(Some(name.to_owned()), selection, policy).map_err(|err| match err {
            RulesError::DisabledForWithDisable => (
                disabled_for_at,
                "disabled-for selects images already disabled, so it can't go with stage = \"disable\"".to_owned(),
            ),
            RulesError::SelectsNothing => (
                at,
                format!(
                    "policy '{name}' selects nothing: give image-ids, name, tags, older-than, deprecated, disabled-for, unused-for or all = true"
                ),
            ),
        })?;
        Ok((rules, each_once(self.regions)))
    }
}

/// `allow-in-use = true`: those consumers are ignored.
fn ignored_if_true<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Consumers, D::Error> {
    bool::deserialize(deserializer).map(Consumers::ignored_if)
}

/// `include-shared = true` (every shared image may go), `false`, or `"unused"` (those no other
/// account uses).
fn shared_images<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Shared, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Flag(bool),
        Word(String),
    }
    match Written::deserialize(deserializer)? {
        Written::Flag(flag) => Ok(Shared::ignored_if(flag)),
        Written::Word(word) if word == "unused" => Ok(Shared::IfUnused),
        Written::Word(word) => Err(serde::de::Error::custom(format!(
            "include-shared is true, false or \"unused\", not \"{word}\""
        ))),
    }
}

/// What a policy does to the images it selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Stage {
    Deregister,
    Disable,
}

/// A value in the flags' own syntax, parsed by its type's `FromStr`.
#[derive(Debug, Default)]
struct Parsed<T>(T);

impl<'de, T: FromStr<Err = String>> Deserialize<'de> for Parsed<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map(Parsed).map_err(serde::de::Error::custom)
    }
}

/// A duration as the flags take it (`14d`, `12h`, `0s`).
#[derive(Debug, Clone, Copy)]
struct Duration(SignedDuration);

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let Parsed(Age(age)) = Parsed::<Age>::deserialize(deserializer)?;
        SignedDuration::try_from(age)
            .map(Duration)
            .map_err(|_| serde::de::Error::custom("the duration is too long"))
    }
}

/// Line and column (from 1) of a byte offset.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> (usize, usize, String) {
        let (offset, message) = PolicyFile::parse(text).expect_err("refused");
        let (line, column) = line_and_column(text, offset);
        (line, column, message)
    }

    #[test]
    fn two_policies_read_as_the_flags_would_say_them() {
        let file = PolicyFile::parse(
            r#"
[policies.nightly]
name = "nightly-*"
older-than = "14d"
keep = 3
group-by = "name"
regions = ["eu-west-1", "us-east-1", "eu-west-1"]

[policies.ci]
tags = ["env=ci"]
exclude-tags = ["keep=yes"]
keep = 1
group-by = "tag:app"
stage = "disable"

[orphans]
older-than = "7d"
"#,
        )
        .unwrap();

        let (ci, ci_regions) = &file.policies[0];
        let (nightly, nightly_regions) = &file.policies[1];
        assert_eq!(ci.name.as_deref(), Some("ci"));
        assert!(ci.policy.disables() && ci.policy.keep == 1);
        assert_eq!(ci.policy.group_by, GroupBy::Tag("app".to_owned()));
        assert!(ci_regions.is_empty());
        assert_eq!(nightly.selection.older_than, Some(SignedDuration::from_hours(24 * 14)));
        assert_eq!(nightly.policy.group_by, GroupBy::Name);
        assert!(nightly.policy.deletes_snapshots() && !nightly.policy.disables());
        let named: Vec<&str> = nightly_regions.iter().map(Region::as_str).collect();
        assert_eq!(named, ["eu-west-1", "us-east-1"], "each region once");
        let orphans = file.orphans.as_ref().unwrap();
        assert_eq!(orphans.policy.orphans, Some(SignedDuration::from_hours(24 * 7)));

        let home: Region = "ap-south-1".parse().unwrap();
        let everywhere: Vec<String> = file.regions(&home).iter().map(ToString::to_string).collect();
        assert_eq!(everywhere, ["ap-south-1", "eu-west-1", "us-east-1"]);
        let policies_of = |rules: Vec<Rules>| rules.into_iter().filter_map(|r| r.name).collect::<Vec<_>>();
        assert_eq!(
            policies_of(file.rules_in(&"ap-south-1".parse().unwrap(), &"ap-south-1".parse().unwrap())),
            ["ci", "orphans"]
        );
        assert_eq!(
            policies_of(file.rules_in(&"eu-west-1".parse().unwrap(), &"ap-south-1".parse().unwrap())),
            ["nightly", "orphans"]
        );
    }

    #[test]
    fn include_shared_is_true_false_or_unused() {
        let shared = |value: &str| {
            PolicyFile::parse(&format!("[policies.a]\nname = \"a-*\"\ninclude-shared = {value}\n"))
                .map(|file| file.policies[0].0.policy.shared)
        };
        assert_eq!(shared("true").unwrap(), Shared::Ignore);
        assert_eq!(shared("false").unwrap(), Shared::Keep);
        assert_eq!(shared("\"unused\"").unwrap(), Shared::IfUnused);
        assert!(shared("\"some\"").unwrap_err().1.contains("true, false or \"unused\""));
    }

    #[test]
    fn mistakes_are_named_with_their_line_and_column() {
        let (line, column, message) = error("[policies.a]\nname = \"a-*\"\nkep = 2\n");
        assert_eq!((line, column), (3, 1));
        assert!(message.contains("unknown field `kep`"), "{message}");

        let (line, column, message) = error("[policies.a]\nname = \"a-*\"\nolder-than = \"soon\"\n");
        assert_eq!((line, column), (3, 14));
        assert!(message.contains("not a duration"), "{message}");

        let (line, _, message) = error("[policies.a]\nname = \"a-*\"\nregions = [\"moon\"]\n");
        assert_eq!(line, 3);
        assert!(message.contains("not an AWS region"), "{message}");

        let (line, _, message) = error("[policies.a]\nkeep = 2\n");
        assert_eq!(line, 1);
        assert!(message.contains("policy 'a' selects nothing"), "{message}");

        let (line, column, message) = error("[policies.a]\nall = true\nstage = \"disable\"\ndisabled-for = \"1d\"\n");
        assert_eq!((line, column), (4, 16));
        assert!(message.contains("can't go with stage"), "{message}");

        let (_, _, message) = error("[policies.a]\nall = true\nstage = \"delete\"\n");
        assert!(message.contains("unknown variant `delete`"), "{message}");
        let (_, _, message) = error("# nothing here\n");
        assert!(message.contains("no policies"), "{message}");
        let (line, _, message) = error("[policies.a]\nall = tru\n");
        assert_eq!(line, 2);
        assert!(!message.contains('\n'), "one line: {message}");
    }
}
