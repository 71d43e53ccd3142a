//! `--include-shared=unused` in a cleanup over several accounts: each account of the run reads
//! its own consumers of the others' shared candidates in its region (its usage map of those
//! images), so an image shared with accounts of the run is judged by what they run now, not by
//! a report alone. Where those maps cover every account an image is shared with (explicit
//! account grants, each read), they are the answer and no report is made; otherwise the owner's
//! usage report is asked too. An account of the run the image is shared with that can't be read
//! leaves the image unchecked.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;

use super::Context;
use crate::ec2::Reports;
use crate::error::Error;
use crate::model::UsageMap;
use crate::pipeline::Reading;
use crate::pipeline::plan::{RunUsage, Shared};
use crate::types::{ImageId, Region};

/// Whether a run whose policy asks `unused` needs it: several accounts.
pub fn applies(contexts: &[Context<'_>]) -> bool {
    let accounts: BTreeSet<_> = contexts.iter().map(|ctx| ctx.ec2.account_id()).collect();
    accounts.len() > 1
}

/// A shared candidate of the run: whose it is, and whom it is shared with.
struct Candidate {
    owner: usize,
    accounts: BTreeSet<String>,
    /// Shared with an organization or OU: who is in it, the run can't tell.
    wide: bool,
}

/// Fills each reading's `run_usage` (and, where the run can't answer alone, its usage
/// reports).
pub async fn shared_across(contexts: &[Context<'_>], readings: &mut [Result<Reading, Error>], concurrency: usize) {
    let shared = candidates(contexts, readings);
    if shared.is_empty() {
        return;
    }
    let accounts: Vec<Option<String>> = (contexts.iter().zip(readings.iter()))
        .map(|(ctx, reading)| account_of(ctx, reading.as_ref().ok()))
        .collect();
    let scans: Vec<(usize, Result<UsageMap, Error>)> = futures::stream::iter(contexts.iter().enumerate())
        .filter_map(|(j, ctx)| {
            let foreign: Vec<ImageId> = (shared.get(ctx.ec2.region()).into_iter().flatten())
                .filter(|(_, c)| c.owner != j)
                .map(|(id, _)| id.clone())
                .collect();
            async move {
                (!foreign.is_empty()).then_some(async move {
                    let scan = ctx.ec2.usage_map(&foreign, false).await;
                    ctx.ec2.release();
                    (j, scan)
                })
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut found: BTreeMap<ImageId, RunUsage> = BTreeMap::new();
    let mut read: BTreeMap<&Region, BTreeSet<String>> = BTreeMap::new();
    for (j, scan) in scans {
        let region = contexts[j].ec2.region();
        let account = accounts[j].clone().unwrap_or_else(|| "the caller's own".to_owned());
        let concerned = |c: &Candidate| c.wide || c.accounts.contains(&account);
        for (id, candidate) in shared[region].iter().filter(|(_, c)| c.owner != j) {
            let run = found.entry(id.clone()).or_default();
            match &scan {
                Ok(map) => {
                    let users = map.users.get(id).into_iter().flatten();
                    run.users.extend(users.map(|user| (account.clone(), user.clone())));
                    if let Some(why) = map.unchecked.first().filter(|_| concerned(candidate)) {
                        run.gaps.push(format!("account {account}: {why}"));
                    }
                }
                Err(err) if concerned(candidate) => {
                    run.gaps
                        .push(format!("account {account}, in this run, could not be read: {err}"));
                }
                Err(_) => {}
            }
        }
        if scan.is_ok() {
            read.entry(region).or_default().insert(account);
        }
    }
    let mut asked: BTreeMap<usize, Vec<ImageId>> = BTreeMap::new();
    for (region, images) in &shared {
        let read_here = read.get(region).cloned().unwrap_or_default();
        for (id, candidate) in images {
            let mut run = found.remove(id).unwrap_or_default();
            run.covered = !candidate.wide && candidate.accounts.is_subset(&read_here);
            if !run.covered && run.users.is_empty() && run.gaps.is_empty() {
                asked.entry(candidate.owner).or_default().push(id.clone());
            }
            if let Ok(reading) = &mut readings[candidate.owner] {
                reading.inventory.run_usage.insert(id.clone(), run);
            }
        }
    }
    reports_for(contexts, readings, asked).await;
}

/// The run's shared candidates (shared with accounts, organizations or OUs, not public), by
/// region, of the contexts whose policies ask `unused`.
fn candidates(
    contexts: &[Context<'_>],
    readings: &[Result<Reading, Error>],
) -> BTreeMap<Region, BTreeMap<ImageId, Candidate>> {
    let mut shared: BTreeMap<Region, BTreeMap<ImageId, Candidate>> = BTreeMap::new();
    for (owner, (ctx, reading)) in contexts.iter().zip(readings).enumerate() {
        let Ok(reading) = reading else { continue };
        if !reading.rules.iter().any(|r| r.policy.shared == Shared::IfUnused) {
            continue;
        }
        for (id, grants) in &reading.inventory.shared {
            if !grants.shared_but_not_public() {
                continue;
            }
            let candidate = Candidate {
                owner,
                accounts: grants.accounts.iter().cloned().collect(),
                wide: !grants.organization_arns.is_empty() || !grants.organizational_unit_arns.is_empty(),
            };
            shared
                .entry(ctx.ec2.region().clone())
                .or_default()
                .insert(id.clone(), candidate);
        }
    }
    shared
}

/// The context's account: its role's, else (the caller's own) its images' owner.
fn account_of(ctx: &Context<'_>, reading: Option<&Reading>) -> Option<String> {
    (ctx.ec2.account_id().map(ToString::to_string))
        .or_else(|| reading?.inventory.images.iter().find_map(|i| i.owner_id.clone()))
}

/// Usage reports, in each owner's context, for the images the run can't answer for alone.
async fn reports_for(
    contexts: &[Context<'_>],
    readings: &mut [Result<Reading, Error>],
    asked: BTreeMap<usize, Vec<ImageId>>,
) {
    let reports = futures::future::join_all(asked.into_iter().map(|(owner, ids)| async move {
        let ctx = &contexts[owner];
        (
            owner,
            ids.clone(),
            ctx.ec2.shared_usage(&ids, ctx.now, ctx.reports).await,
        )
    }))
    .await;
    for (owner, ids, report) in reports {
        let Ok(reading) = &mut readings[owner] else { continue };
        match report {
            Ok(Reports::NotOffered(why)) => {
                reading.inventory.notes.push(format!(
                    "DescribeImageUsageReports: {why}; images shared outside this run are kept (--include-shared=unused)"
                ));
                reading.inventory.shared_usage = Some(Reports::NotOffered(why));
            }
            Ok(answers) => reading.inventory.shared_usage = Some(answers),
            Err(err) => {
                for id in ids {
                    let run = reading.inventory.run_usage.entry(id).or_default();
                    run.gaps.push(format!("its usage report could not be read: {err}"));
                }
            }
        }
    }
}
