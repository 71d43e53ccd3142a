//! `amictl cleanup`: remove the images a policy selects, with their snapshots, and orphaned
//! snapshots; never what is in use, protected, or still referenced.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use futures::{StreamExt, TryStreamExt};

use super::contexts::Contexts;
use super::plan_view::PlanView;
use super::{Context, Scope};
use crate::ec2::Ec2;
use crate::error::Error;
use crate::model::Image;
use crate::pipeline::plan::{PLAN_FORMAT, Plan, Policy, READABLE_PLAN_FORMATS, Rules, plan_rules, recheck};
use crate::pipeline::selection::Selection;
use crate::pipeline::{Carry, Reading, Reads, read_inventory};
use crate::policy_file::PolicyFile;
use crate::types::{AccountId, ImageId, Region, RoleArn};

/// What `cleanup` was asked: what it plans from, where, and how the plan ends.
pub struct Settings {
    pub plan_from: PlanFrom,
    pub scope: Scope,
    pub finish: Finish,
}

/// The plan's source, read and checked before any request.
pub enum PlanFrom {
    /// The selectors and options on the command line.
    Flags(Rules),
    /// `--policy FILE`.
    File(PolicyFile),
    /// `--apply-plan FILE`.
    Saved(Plan),
}

/// How the plan ends: shown (`--dry-run`), saved (`--save-plan`), or carried out (`--yes`,
/// or a yes at the terminal).
pub struct Finish {
    pub show_kept: bool,
    pub yes: bool,
    pub dry_run: bool,
    pub save_plan: Option<PathBuf>,
    pub carry: Carry,
}

/// What a cleanup plans from, once the run's regions are known: the flags, a policy file, or
/// a saved plan to check again.
pub enum Source {
    Flags(Rules),
    /// A policy file, with the run's own region (for the policies that name no region).
    File {
        file: PolicyFile,
        home: Region,
    },
    Saved(Plan),
}

/// Plans in each context's region (concurrently, as the contexts come), shows or saves the
/// plan, and with `--yes` carries it out. A region whose reading fails is reported (exit 1)
/// without losing the others' plans; accounts that could not all be listed fail the run
/// before anything is shown or carried out. With `--apply-plan`, the contexts are the saved
/// plan's regions; with `--policy`, the regions its policies name.
pub async fn run(contexts: Contexts<'static>, finish: &Finish, source: Source) -> anyhow::Result<()> {
    let (printer, unreached) = (contexts.printer, contexts.unreached());
    let source = std::sync::Arc::new(source);
    // A plan that misses the accounts not listed is no plan to act on.
    let unlisted = |err: Error| match err {
        Error::PartlyListed { .. } => Error::Failed(format!("{err}; nothing was planned or changed")),
        err => err,
    };
    let (contexts, planned) = if asks_unused(&source) {
        // Who in the run uses whose shared images needs every account read first.
        let (contexts, _) = contexts.all().await.map_err(unlisted)?;
        if super::across::applies(&contexts) {
            let planned = planned_across(&contexts, finish, &source).await;
            (contexts, planned)
        } else {
            planned_each(
                futures::stream::iter(contexts.into_iter().map(Ok)),
                printer,
                finish,
                &source,
            )
            .await?
        }
    } else {
        planned_each(contexts, printer, finish, &source)
            .await
            .map_err(unlisted)?
    };
    if contexts.is_empty() {
        if unreached.list().is_empty() {
            printer.note("no account in this shard: nothing to clean up");
        }
        return nothing(printer);
    }
    let mut plans = Vec::new();
    let mut failures = Vec::new();
    let mut notes = BTreeSet::new();
    for (ctx, planned) in contexts.iter().zip(planned) {
        match planned {
            Ok((plan, said)) => {
                plans.push(plan);
                notes.extend(said);
            }
            Err(err) if contexts.len() == 1 => return Err(err.into()),
            Err(err) => failures.push(format!("{}: {err}", ctx.ec2.place())),
        }
    }
    for note in notes {
        printer.note(note);
    }
    let mut plan = merged(&contexts, &source, plans);
    carry(&contexts, finish, &mut plan).await?;
    what_went_wrong(&plan, &failures)
}

/// A region's plan (boxed: across an organization, thousands wait to be merged), and what
/// to say of what its endpoint lacks; or why it has none.
type Planned = Result<(Box<Plan>, Vec<String>), Error>;

/// Reads and plans each context as it comes, at most `--concurrency` at once (the run's
/// requests share one budget: while one waits on an answer, another's take the slots);
/// returns the contexts, in their order, with their plans.
async fn planned_each(
    contexts: impl futures::Stream<Item = Result<Context<'static>, Error>>,
    printer: &crate::output::Printer,
    finish: &Finish,
    source: &std::sync::Arc<Source>,
) -> Result<(Vec<Context<'static>>, Vec<Planned>), Error> {
    let changes = !finish.dry_run && finish.save_plan.is_none();
    let counter = printer.growing_counter("accounts × regions read");
    let mut planned: Vec<(usize, Context<'static>, Planned)> = contexts
        .enumerate()
        .map(|(i, ctx)| {
            let (counter, source) = (&counter, std::sync::Arc::clone(source));
            async move {
                let ctx = ctx?;
                counter.more();
                let (ctx, planned) = super::on_its_own_task(async move {
                    let planned = read_sent(&ctx, &source).await.map(|reading| planned(&ctx, reading));
                    if changes {
                        // Its clients are made again if the plan is carried out there.
                        ctx.ec2.release();
                    } else {
                        // A dry run (or a plan saved) is done with this account and region.
                        ctx.ec2.forget();
                    }
                    (ctx, planned)
                })
                .await;
                counter.inc();
                Ok::<_, Error>((i, ctx, planned))
            }
        })
        .buffer_unordered(finish.carry.reads)
        .try_collect()
        .await?;
    counter.finish();
    planned.sort_by_key(|(i, _, _)| *i);
    Ok(planned.into_iter().map(|(_, ctx, planned)| (ctx, planned)).unzip())
}

/// [`read`], as a future checked `Send` here, for a task of its own.
fn read_sent<'a>(
    ctx: &'a Context<'static>,
    source: &'a Source,
) -> futures::future::BoxFuture<'a, Result<Reading, Error>> {
    Box::pin(read(ctx, source, true))
}

/// Each account's consumers of the others' shared images count: every context is read
/// first, then each reads the others' shared candidates, then each is planned.
async fn planned_across(contexts: &[Context<'_>], finish: &Finish, source: &Source) -> Vec<Planned> {
    let counter = contexts[0].printer.counter(contexts.len(), "accounts × regions read");
    let mut readings: Vec<Result<Reading, Error>> = futures::stream::iter(contexts.iter().map(|ctx| {
        let counter = &counter;
        async move {
            let reading = Box::pin(read(ctx, source, false)).await;
            ctx.ec2.release();
            counter.inc();
            reading
        }
    }))
    .buffered(finish.carry.reads)
    .collect()
    .await;
    counter.finish();
    super::across::shared_across(contexts, &mut readings, finish.carry.reads).await;
    (contexts.iter().zip(readings))
        .map(|(ctx, reading)| reading.map(|reading| planned(ctx, reading)))
        .collect()
}

/// Whether a policy of the run removes shared images only where nobody uses them.
fn asks_unused(source: &Source) -> bool {
    let unused = |rules: &Rules| rules.policy.shared == crate::pipeline::plan::Shared::IfUnused;
    match source {
        Source::Flags(rules) => unused(rules),
        Source::File { file, .. } => file.policies.iter().any(|(rules, _)| unused(rules)),
        Source::Saved(plan) => plan.rules().iter().any(unused),
    }
}

/// One plan of the contexts' plans, recording what the run planned from.
#[allow(clippy::vec_box)] // as they come: each freed once merged, not held inline twice
fn merged(contexts: &[Context<'_>], source: &Source, plans: Vec<Box<Plan>>) -> Plan {
    match source {
        Source::Flags(rules) => Plan::merge(plans, &rules.selection, &rules.policy),
        Source::Saved(saved) => {
            let mut plan = Plan::merge(plans, &saved.selection, &saved.policy);
            plan.policies.clone_from(&saved.policies);
            let visited: BTreeSet<(&Region, Option<&AccountId>)> = contexts
                .iter()
                .map(|ctx| (ctx.ec2.region(), ctx.ec2.account_id()))
                .collect();
            plan.add_unvisited(saved, &visited);
            plan
        }
        Source::File { file, home } => {
            let mut plan = Plan::merge(plans, &Selection::default(), &Policy::default());
            plan.policies = file.recorded(home);
            plan
        }
    }
}

/// The run's exit: entries of a saved plan this run did not reach, regions left out, images
/// whose consumers could not be read.
fn what_went_wrong(plan: &Plan, failures: &[String]) -> anyhow::Result<()> {
    if plan.dry_run && plan.summary.failures > 0 {
        return Err(Error::Failed(format!(
            "{} entries of the saved plan are in accounts or regions this run did not reach (see RESULT)",
            plan.summary.failures
        ))
        .into());
    }
    if !failures.is_empty() {
        return Err(Error::Failed(format!("regions left out: {}", failures.join("; "))).into());
    }
    if plan.summary.images_unchecked > 0 {
        return Err(Error::Failed(format!(
            "{} image(s) kept because amictl could not check what launches them ({}); make that readable (or pass --allow-in-use; for other accounts, --include-shared), and run again",
            plan.summary.images_unchecked,
            plan.unchecked.first().map_or("see REASON", String::as_str)
        ))
        .into());
    }
    Ok(())
}

/// An empty plan, for a run with no account to clean up (an empty `--shard`).
pub fn nothing(printer: &crate::output::Printer) -> anyhow::Result<()> {
    let mut plan = Plan::merge(Vec::<Plan>::new(), &Selection::default(), &Policy::default());
    plan.dry_run = true;
    plan.summarize(0.0);
    printer.print(&PlanView {
        plan: &plan,
        show_kept: false,
    })
}

/// Shows or saves the plan, or (after confirmation) carries it out.
async fn carry(contexts: &[Context<'_>], finish: &Finish, plan: &mut Plan) -> anyhow::Result<()> {
    let ctx = &contexts[0];

    if finish.dry_run || finish.save_plan.is_some() {
        plan.dry_run = true;
        plan.summarize(finish.carry.snapshot_price);
        if let Some(file) = &finish.save_plan {
            save(plan, file)?;
            ctx.printer.note(format!(
                "plan saved to {}; carry it out with `amictl cleanup --apply-plan {} --yes`",
                file.display(),
                file.display()
            ));
        }
        return ctx.printer.print(&PlanView {
            plan,
            show_kept: finish.show_kept,
        });
    }

    plan.summarize(finish.carry.snapshot_price);
    if plan.has_work() && !finish.yes {
        confirm(ctx, plan, finish.show_kept).await?;
    }
    let clients: Vec<&Ec2> = contexts.iter().map(|ctx| &ctx.ec2).collect();
    super::carry_out_and_report(&clients, ctx, plan, finish.carry, ("cleaning up", finish.show_kept)).await
}

/// Reads what the context's plan needs (with `reports`: usage reports too, where a policy asks
/// `--include-shared=unused`).
async fn read(ctx: &Context<'_>, source: &Source, reports: bool) -> Result<Reading, Error> {
    let (rules, saved) = match source {
        Source::Saved(saved) => return saved_read(ctx, saved, reports).await,
        Source::File { file, home } => (file.rules_in(ctx.ec2.region(), home), None),
        Source::Flags(rules) => (vec![rules.clone()], None),
    };
    let images = ctx.ec2.all_own_images().await?;
    let missing: Vec<&str> = rules.iter().flat_map(|r| r.selection.missing(&images)).collect();
    if !missing.is_empty() {
        ctx.printer.note(format!(
            "not among this account's images in {} (already gone?): {}",
            ctx.ec2.region(),
            missing.join(", ")
        ));
    }
    let candidates = candidates(&rules, &images, ctx.now);
    let inventory = read_inventory(&ctx.ec2, images, &candidates, reads(ctx, &rules, reports)).await?;
    Ok(Reading {
        inventory,
        rules,
        saved,
    })
}

/// What to read for these policies; usage reports only with `reports`.
fn reads(ctx: &Context<'_>, rules: &[Rules], reports: bool) -> Reads {
    let reads = Reads::for_rules(rules).reporting(ctx.reports, ctx.now);
    if reports {
        reads
    } else {
        Reads {
            shared_usage: None,
            ..reads
        }
    }
}

/// One region's plan from its reads, and what to say on stderr about what its endpoint
/// doesn't offer.
fn planned(ctx: &Context<'_>, reading: Reading) -> (Box<Plan>, Vec<String>) {
    let Reading {
        inventory,
        rules,
        saved,
    } = reading;
    let planning = std::time::Instant::now();
    let mut plan = match &saved {
        Some(saved) => recheck(saved, &inventory, ctx.now),
        None => plan_rules(&inventory, &rules, ctx.now),
    };
    // scripts/bench reads this line to show that planning grows linearly with the account.
    tracing::info!(
        region = ctx.ec2.region().as_str(),
        images = inventory.images.len(),
        candidates = plan.images.len(),
        micros = u64::try_from(planning.elapsed().as_micros()).unwrap_or(u64::MAX),
        "planned"
    );
    plan.regions = vec![ctx.ec2.region().to_owned()];
    (Box::new(plan), inventory.notes)
}

/// The images any of the rules selects, each once.
fn candidates(rules: &[Rules], images: &[Image], now: jiff::Timestamp) -> Vec<ImageId> {
    crate::types::each_once(
        rules
            .iter()
            .flat_map(|r| r.selection.pick(images, now))
            .map(|i| i.image_id.clone()),
    )
}

/// Reads a plan saved with `--save-plan`, of this version of the format, whose regions are
/// regions.
pub fn load_plan(file: &Path) -> Result<Plan, Error> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::Usage(format!("cannot read the plan {}: {e}", file.display())))?;
    let not_a_plan = |e: &dyn std::fmt::Display| {
        Error::Usage(format!(
            "{} is not a plan saved by `amictl cleanup --save-plan`: {e}",
            file.display()
        ))
    };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| not_a_plan(&e))?;
    let version = value.get("format_version").and_then(serde_json::Value::as_u64);
    if !version.is_some_and(|v| READABLE_PLAN_FORMATS.iter().any(|r| u64::from(*r) == v)) {
        return Err(Error::Usage(format!(
            "{} was saved in another plan format ({}; this amictl reads 2 and {PLAN_FORMAT}): make the plan again with --save-plan",
            file.display(),
            version.map_or_else(|| "none".to_owned(), |v| v.to_string())
        )));
    }
    // Regions and accounts are checked as they are read: a stranger's value is refused here.
    serde_json::from_value(value).map_err(|e| not_a_plan(&e))
}

/// The regions a saved plan is carried out in (checked by [`load_plan`]).
pub fn plan_regions(plan: &Plan) -> Vec<Region> {
    let mut regions: BTreeSet<&Region> = plan.regions.iter().collect();
    regions.extend(plan.images.iter().map(|i| &i.region));
    regions.extend(plan.orphan_snapshots.iter().map(|s| &s.region));
    regions.into_iter().cloned().collect()
}

/// A saved plan made through `--role-arn` is carried out through the same roles' accounts.
pub fn check_roles_cover(plan: &Plan, roles: &[RoleArn]) -> Result<(), Error> {
    let given: BTreeSet<Option<&AccountId>> = if roles.is_empty() {
        BTreeSet::from([None])
    } else {
        roles.iter().map(|r| Some(r.account_id())).collect()
    };
    let needed = plan.entry_accounts();
    if needed.is_empty() || needed == given {
        return Ok(());
    }
    let name = |account: Option<&AccountId>| account.map_or_else(|| "the caller's own".to_owned(), ToString::to_string);
    Err(Error::Usage(format!(
        "the plan covers the accounts {} and --role-arn names {}: pass one --role-arn per account of the plan, or the --org / --accounts and --role-name it was made with",
        needed.iter().map(|a| name(*a)).collect::<Vec<_>>().join(", "),
        given.iter().map(|a| name(*a)).collect::<Vec<_>>().join(", ")
    )))
}

/// One region's part of a saved plan: the reads to check it again against the account as it
/// is now.
async fn saved_read(ctx: &Context<'_>, saved: &Plan, reports: bool) -> Result<Reading, Error> {
    let images = ctx.ec2.all_own_images().await?;
    let here: BTreeSet<&str> = images.iter().filter_map(Image::account).collect();
    if !saved.accounts.is_empty() && !here.is_empty() && !saved.accounts.iter().any(|a| here.contains(a.as_str())) {
        return Err(Error::Usage(format!(
            "the plan was made in account {}, and these credentials work in {}: use the plan's account (--profile, --role-arn)",
            saved.accounts.join(", "),
            here.into_iter().collect::<Vec<_>>().join(", ")
        )));
    }
    // Each policy where it ran when the plan was made, not in every region of the plan.
    let rules: Vec<Rules> = (saved.rules().into_iter())
        .filter(|rule| rule.runs_in(ctx.ec2.region()))
        .collect();
    let candidates = candidates(&rules, &images, ctx.now);
    let inventory = read_inventory(&ctx.ec2, images, &candidates, reads(ctx, &rules, reports)).await?;
    Ok(Reading {
        inventory,
        rules,
        saved: Some(saved.of_scope(ctx.ec2.region(), ctx.ec2.account_id())),
    })
}

/// Writes the plan where no one else can read it, all at once: a reader never sees half a
/// plan, and a failed write leaves the old file (or none).
fn save(plan: &Plan, file: &Path) -> Result<(), Error> {
    use std::io::Write;
    let json = serde_json::to_string_pretty(plan).map_err(|e| Error::Failed(format!("cannot write the plan: {e}")))?;
    let failed = |e: std::io::Error| Error::Failed(format!("cannot write the plan to {}: {e}", file.display()));
    let name = file
        .file_name()
        .ok_or_else(|| Error::Usage(format!("{} is not a file name", file.display())))?;
    let temporary = file.with_file_name(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&temporary).and_then(|mut out| {
        out.write_all(json.as_bytes())?;
        out.write_all(b"\n")?;
        out.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&temporary, file)) {
        let _ = std::fs::remove_file(&temporary);
        return Err(failed(e));
    }
    Ok(())
}

/// `--yes` was not given: a person at a terminal is asked; anything else (CI) is shown the
/// plan and refused, with nothing sent.
async fn confirm(ctx: &Context<'_>, plan: &Plan, show_kept: bool) -> Result<(), Error> {
    let summary = &plan.summary;
    let mut parts = Vec::new();
    if summary.images_deregistered > 0 || summary.snapshots_deleted > 0 {
        parts.push(format!(
            "deregister {} image(s) and delete {} snapshot(s) ({} GiB)",
            summary.images_deregistered, summary.snapshots_deleted, summary.gib_freed
        ));
    }
    if summary.images_disabled > 0 {
        parts.push(format!(
            "disable {} image(s), keeping their snapshots",
            summary.images_disabled
        ));
    }
    let what = parts.join(", and ");
    // Shown as a plan: "to deregister", not "deregistered".
    ctx.printer.show_on_stderr(&PlanView {
        plan: &Plan {
            dry_run: true,
            ..plan.clone()
        },
        show_kept,
    });
    if !ctx.printer.can_ask() {
        return Err(Error::Usage(format!(
            "not carrying out the plan above without --yes: it would {what}; review it, then run again with --yes (or use --dry-run)"
        )));
    }
    let question = format!("{}{}?", what[..1].to_uppercase(), &what[1..]);
    match ctx.printer.ask(&question).await {
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
    use crate::model::Image;
    use crate::pipeline::plan::plan;

    #[test]
    fn a_saved_plan_is_carried_out_through_the_roles_of_its_accounts() {
        let mut image = Image::for_tests("ami-12345678");
        image.account_id = Some("111111111111".parse().unwrap());
        let inventory = crate::pipeline::plan::Inventory {
            images: vec![image],
            ..Default::default()
        };
        let all = Selection {
            all: true,
            ..Selection::default()
        };
        let saved = plan(&inventory, &all, &Policy::default(), jiff::Timestamp::now());
        let role = |arn: &str| -> RoleArn { arn.parse().unwrap() };

        assert!(check_roles_cover(&saved, &[role("arn:aws:iam::111111111111:role/amictl")]).is_ok());
        assert!(
            check_roles_cover(&saved, &[]).is_err(),
            "without the role, the caller's own account is not the plan's"
        );
        assert!(check_roles_cover(&saved, &[role("arn:aws:iam::222222222222:role/amictl")]).is_err());
    }
}
