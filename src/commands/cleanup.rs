//! `amictl cleanup`: remove the images a policy selects, with their snapshots, and orphaned
//! snapshots; never what is in use, protected, or still referenced.

use std::collections::BTreeSet;
use std::path::Path;

use jiff::{SignedDuration, Timestamp};

use super::Context;
use crate::cli::CleanupArgs;
use crate::ec2::Ec2;
use crate::error::Error;
use crate::model::Image;
use crate::output;
use crate::pipeline::plan::{Plan, Policy, plan, recheck};
use crate::pipeline::{carry_out, read_inventory};
use crate::types::{ImageId, NameGlob, RoleArn, Tag};

/// Plans in each context's region (concurrently), shows or saves the plan, and with `--yes`
/// carries it out. A region whose reading fails is reported (exit 1) without losing the
/// others' plans. With `--apply-plan`, `saved` is that plan and the contexts are its regions.
pub async fn run(contexts: &[Context], args: CleanupArgs, saved: Option<Plan>) -> anyhow::Result<()> {
    if contexts.is_empty() {
        return Err(Error::Failed("no region to clean up".to_owned()).into());
    }
    let source = match saved {
        Some(plan) => Source::Saved(plan),
        None => Source::Policy(Selection::from_args(&args)?),
    };
    let planned = futures::future::join_all(contexts.iter().map(|ctx| async {
        match &source {
            Source::Saved(saved) => {
                saved_plan_rechecked(
                    ctx,
                    &saved.of_scope(ctx.ec2.region(), ctx.ec2.account_id()),
                    args.allow_in_use,
                )
                .await
            }
            Source::Policy(selection) => new_plan(ctx, &args, selection).await,
        }
    }))
    .await;
    let mut plans = Vec::new();
    let mut failures = Vec::new();
    for (ctx, planned) in contexts.iter().zip(planned) {
        match planned {
            Ok(plan) => plans.push(plan),
            Err(err) if contexts.len() == 1 => return Err(err.into()),
            Err(err) => failures.push(format!("{}: {err}", ctx.ec2.region())),
        }
    }
    let mut plan = Plan::merge(plans, false);
    let result = carry(contexts, &args, &mut plan).await;
    match (result, failures.is_empty()) {
        (Err(err), _) => Err(err),
        (Ok(()), true) => Ok(()),
        (Ok(()), false) => Err(Error::Failed(format!("regions left out: {}", failures.join("; "))).into()),
    }
}

/// Where the plan comes from: the policy on the command line, or a saved plan.
enum Source {
    Policy(Selection),
    Saved(Plan),
}

/// Shows or saves the plan, or (after confirmation) carries it out.
async fn carry(contexts: &[Context], args: &CleanupArgs, plan: &mut Plan) -> anyhow::Result<()> {
    let ctx = &contexts[0];

    if args.dry_run || args.save_plan.is_some() {
        plan.dry_run = true;
        plan.summarize(args.execution.snapshot_price.0);
        if let Some(file) = &args.save_plan {
            save(plan, file)?;
            ctx.printer.note(format!(
                "plan saved to {}; carry it out with `amictl cleanup --apply-plan {} --yes`",
                file.display(),
                file.display()
            ));
        }
        return ctx.printer.print(plan);
    }

    plan.summarize(args.execution.snapshot_price.0);
    if plan.has_work() && !args.yes {
        confirm(ctx, plan)?;
    }
    let clients: Vec<&Ec2> = contexts.iter().map(|ctx| &ctx.ec2).collect();
    carry_out(&clients, &ctx.printer, plan, &args.execution, "cleaning up").await?;
    Ok(())
}

/// Which of the account's images the user means.
#[derive(Debug, Default)]
struct Selection {
    ids: Vec<ImageId>,
    name: Option<NameGlob>,
    tags: Vec<Tag>,
    older_than: Option<SignedDuration>,
    exclude_tags: Vec<Tag>,
    all: bool,
}

impl Selection {
    fn from_args(args: &CleanupArgs) -> Result<Selection, Error> {
        let selection = Selection {
            ids: args.image_ids.clone(),
            name: args.name.clone(),
            tags: args.tags.clone(),
            older_than: args
                .older_than
                .map(|d| SignedDuration::try_from(d.0))
                .transpose()
                .map_err(|_| Error::Usage("--older-than is too long".to_owned()))?,
            exclude_tags: args.exclude_tags.clone(),
            all: args.all,
        };
        if !selection.selects_images() && !args.orphans {
            return Err(Error::Usage(
                "cleanup needs a selector: image IDs, --name, --tag, --older-than, --all or --orphans".to_owned(),
            ));
        }
        Ok(selection)
    }

    fn selects_images(&self) -> bool {
        self.all || !self.ids.is_empty() || self.name.is_some() || !self.tags.is_empty() || self.older_than.is_some()
    }

    /// Every given criterion must hold; `--exclude-tag` takes images out again.
    fn matches(&self, image: &Image, now: Timestamp) -> bool {
        if !self.selects_images() {
            return false;
        }
        let id_ok = self.ids.is_empty() || self.ids.iter().any(|id| id.as_str() == image.image_id);
        let name_ok = self
            .name
            .as_ref()
            .is_none_or(|glob| image.name.as_deref().is_some_and(|n| glob.is_match(n)));
        let has = |tag: &Tag| image.tags.get(&tag.key) == Some(&tag.value);
        let tags_ok = self.tags.iter().all(has);
        let excluded = self.exclude_tags.iter().any(has);
        let old_enough = self.older_than.is_none_or(|age| {
            image
                .creation_date
                .is_some_and(|created| now.duration_since(created) > age)
        });
        id_ok && name_ok && tags_ok && !excluded && old_enough
    }

    /// The reason a selected image goes, in the user's own terms.
    fn reason(&self) -> String {
        let mut parts = Vec::new();
        if !self.ids.is_empty() {
            parts.push("named on the command line".to_owned());
        }
        if let Some(name) = &self.name {
            parts.push(format!("name matches {}", name.pattern()));
        }
        for tag in &self.tags {
            parts.push(format!("tagged {}={}", tag.key, tag.value));
        }
        if let Some(age) = self.older_than {
            let age = std::time::Duration::try_from(age).unwrap_or_default();
            parts.push(format!("older than {}", humantime::format_duration(age)));
        }
        if parts.is_empty() {
            parts.push("--all".to_owned());
        }
        parts.join(", ")
    }
}

async fn new_plan(ctx: &Context, args: &CleanupArgs, selection: &Selection) -> Result<Plan, Error> {
    let images = ctx.ec2.all_own_images().await?;
    let missing: Vec<&str> = selection
        .ids
        .iter()
        .filter(|id| !images.iter().any(|i| i.image_id == id.as_str()))
        .map(ImageId::as_str)
        .collect();
    if !missing.is_empty() {
        ctx.printer.note(format!(
            "not among this account's images in {} (already gone?): {}",
            ctx.ec2.region(),
            missing.join(", ")
        ));
    }
    let now = ctx.printer.now();
    let candidates: Vec<String> = images
        .iter()
        .filter(|i| selection.matches(i, now))
        .map(|i| i.image_id.clone())
        .collect();
    let inventory = read_inventory(&ctx.ec2, images, &candidates, args.orphans).await?;
    let selected: Vec<&Image> = inventory
        .images
        .iter()
        .filter(|i| candidates.contains(&i.image_id))
        .collect();
    let policy = Policy {
        keep: args.keep,
        group_by: args.group_by.clone(),
        delete_snapshots: true,
        allow_in_use: args.allow_in_use,
        orphans: args.orphans,
        reason: selection.reason(),
    };
    Ok(plan(&inventory, &selected, &policy))
}

/// Reads a plan saved with `--save-plan`.
pub fn load_plan(file: &Path) -> Result<Plan, Error> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::Usage(format!("cannot read the plan {}: {e}", file.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        Error::Usage(format!(
            "{} is not a plan saved by `amictl cleanup --save-plan`: {e}",
            file.display()
        ))
    })
}

/// A saved plan made through `--role-arn` is carried out through the same roles' accounts.
pub fn check_roles_cover(plan: &Plan, roles: &[RoleArn]) -> Result<(), Error> {
    let given: BTreeSet<Option<&str>> = if roles.is_empty() {
        BTreeSet::from([None])
    } else {
        roles.iter().map(|r| Some(r.account_id().as_str())).collect()
    };
    let needed = plan.accounts();
    if needed.is_empty() || needed == given {
        return Ok(());
    }
    let name = |account: Option<&str>| account.unwrap_or("the caller's own").to_owned();
    Err(Error::Usage(format!(
        "the plan covers the accounts {} and --role-arn names {}: pass one --role-arn per account of the plan",
        needed.iter().map(|a| name(*a)).collect::<Vec<_>>().join(", "),
        given.iter().map(|a| name(*a)).collect::<Vec<_>>().join(", ")
    )))
}

/// One region's part of a saved plan, checked again against the account as it is now.
async fn saved_plan_rechecked(ctx: &Context, saved: &Plan, allow_in_use: bool) -> Result<Plan, Error> {
    let images = ctx.ec2.all_own_images().await?;
    let candidates: Vec<String> = saved.images.iter().map(|i| i.image_id.clone()).collect();
    let inventory = read_inventory(&ctx.ec2, images, &candidates, !saved.orphan_snapshots.is_empty()).await?;
    Ok(recheck(saved, &inventory, allow_in_use))
}

fn save(plan: &Plan, file: &Path) -> Result<(), Error> {
    let json = serde_json::to_string_pretty(plan).map_err(|e| Error::Failed(format!("cannot write the plan: {e}")))?;
    std::fs::write(file, json + "\n")
        .map_err(|e| Error::Failed(format!("cannot write the plan to {}: {e}", file.display())))
}

/// `--yes` was not given: a person at a terminal is asked; anything else (CI) is shown the
/// plan and refused, with nothing sent.
fn confirm(ctx: &Context, plan: &Plan) -> Result<(), Error> {
    let summary = &plan.summary;
    let what = format!(
        "deregister {} image(s) and delete {} snapshot(s) ({} GiB)",
        summary.images_deregistered, summary.snapshots_deleted, summary.gib_freed
    );
    // Shown as a plan: "to deregister", not "deregistered".
    ctx.printer.show_on_stderr(&Plan {
        dry_run: true,
        ..plan.clone()
    });
    if !output::can_ask() {
        return Err(Error::Usage(format!(
            "not carrying out the plan above without --yes: it would {what}; review it, then run again with --yes (or use --dry-run)"
        )));
    }
    let question = format!("{}{}?", what[..1].to_uppercase(), &what[1..]);
    match output::ask(&question) {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::Usage("nothing was changed".to_owned())),
        Err(e) => Err(Error::Usage(format!(
            "could not read an answer ({e}); nothing was changed"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selection(older_than: Option<&str>) -> Selection {
        Selection {
            name: Some("app-*".parse().unwrap()),
            tags: vec!["env=ci".parse().unwrap()],
            exclude_tags: vec!["keep=yes".parse().unwrap()],
            older_than: older_than.map(|d| SignedDuration::try_from(humantime::parse_duration(d).unwrap()).unwrap()),
            ..Selection::default()
        }
    }

    fn image(name: &str, created: &str, tags: &[(&str, &str)]) -> Image {
        let mut image = Image::for_tests("ami-12345678");
        image.name = Some(name.to_owned());
        image.creation_date = Some(created.parse().unwrap());
        image.tags = tags.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        image
    }

    #[test]
    fn every_criterion_must_hold_and_exclusions_win() {
        let now: Timestamp = "2026-06-01T00:00:00Z".parse().unwrap();
        let old = "2026-01-01T00:00:00Z";
        let yesterday = "2026-05-31T00:00:00Z";
        let pick = selection(Some("30d"));

        assert!(pick.matches(&image("app-1", old, &[("env", "ci")]), now));
        assert!(
            !pick.matches(&image("app-1", yesterday, &[("env", "ci")]), now),
            "too young"
        );
        assert!(!pick.matches(&image("db-1", old, &[("env", "ci")]), now), "wrong name");
        assert!(
            !pick.matches(&image("app-1", old, &[("env", "prod")]), now),
            "wrong tag"
        );
        assert!(
            !pick.matches(&image("app-1", old, &[("env", "ci"), ("keep", "yes")]), now),
            "excluded"
        );
        assert_eq!(pick.reason(), "name matches app-*, tagged env=ci, older than 30days");
    }

    #[test]
    fn a_saved_plan_is_carried_out_through_the_roles_of_its_accounts() {
        let mut image = Image::for_tests("ami-12345678");
        image.account_id = Some("111111111111".to_owned());
        let inventory = crate::pipeline::plan::Inventory {
            images: vec![image.clone()],
            ..Default::default()
        };
        let saved = plan(&inventory, &[&image], &Policy::default());
        let role = |arn: &str| -> RoleArn { arn.parse().unwrap() };

        assert!(check_roles_cover(&saved, &[role("arn:aws:iam::111111111111:role/amictl")]).is_ok());
        assert!(
            check_roles_cover(&saved, &[]).is_err(),
            "without the role, the caller's own account is not the plan's"
        );
        assert!(check_roles_cover(&saved, &[role("arn:aws:iam::222222222222:role/amictl")]).is_err());
    }

    #[test]
    fn orphans_alone_select_no_image() {
        let nothing = Selection::default();
        assert!(!nothing.matches(&image("app-1", "2026-01-01T00:00:00Z", &[]), Timestamp::now()));
        let all = Selection {
            all: true,
            ..Selection::default()
        };
        assert!(all.matches(&image("app-1", "2026-01-01T00:00:00Z", &[]), Timestamp::now()));
    }
}
