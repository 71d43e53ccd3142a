//! Image usage reports: EC2's answer to "which other accounts use this image", from their
//! instances and launch templates (CreateImageUsageReport, DescribeImageUsageReports,
//! DescribeImageUsageReportEntries). A report is made per image, is `pending` for a while (the
//! EC2 documentation gives no time), and lives 30 days; a fresh one is reused rather than made
//! again. The "View your AMI usage" guide warns that a report may miss instance activity of the
//! past 24 hours and launch template activity of the past few days.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_ec2::types::ImageUsageResourceTypeRequest;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::super::errors::{not_offered, send_probing};
use super::super::{Ec2, one_try};
use crate::error::Error;
use crate::types::ImageId;

/// The consumers a report counts: instances and launch templates.
pub const REPORTED_KINDS: [&str; 2] = ["ec2:Instance", "ec2:LaunchTemplate"];
/// DescribeImageUsageReports and DescribeImageUsageReportEntries take at most this many IDs.
const IDS_PER_READ: usize = 200;

/// A report's state, as EC2 names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportState {
    Pending,
    Available,
    /// It could not be made, and why.
    Error(String),
}

/// An image usage report, as DescribeImageUsageReports describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageReport {
    pub report_id: String,
    pub image_id: ImageId,
    pub state: ReportState,
    pub created: Option<Timestamp>,
    /// The accounts it was asked for (empty: all).
    pub accounts: Vec<String>,
    pub resource_types: Vec<String>,
}

impl UsageReport {
    /// Whether it answers for every account and for instances and launch templates both.
    pub fn covers_everyone(&self) -> bool {
        self.accounts.is_empty()
            && REPORTED_KINDS
                .iter()
                .all(|kind| self.resource_types.iter().any(|r| r == kind))
    }
}

/// One line of a report: an account and how many of one kind of its resources name the image.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ReportEntry {
    pub account_id: String,
    /// `ec2:Instance` or `ec2:LaunchTemplate`.
    pub resource_type: String,
    pub usage_count: i64,
}

/// What a report says of one image: who uses it, or why that can't be told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum ReportAnswer {
    Read {
        report_id: String,
        created: Option<Timestamp>,
        /// Made by this run (else reused).
        made_now: bool,
        entries: Vec<ReportEntry>,
    },
    Unchecked {
        why: String,
    },
}

/// How long a report is reused, and how long to wait for one being made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportWait {
    /// A report older than this is not reused (`--max-report-age`).
    pub max_age: SignedDuration,
    /// Reports still pending after this long leave their images unchecked (`--report-timeout`).
    pub within: Duration,
    /// The first pause between looks (doubling to 30 s).
    pub first: Duration,
}

impl Default for ReportWait {
    fn default() -> ReportWait {
        ReportWait {
            max_age: SignedDuration::from_hours(24),
            within: Duration::from_mins(10),
            first: Duration::from_millis(500),
        }
    }
}

/// The reports' answers, or why the endpoint gives none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reports {
    NotOffered(String),
    Answers(BTreeMap<ImageId, ReportAnswer>),
}

impl Ec2 {
    /// Who uses each image by the freshest report: a report made within `wait.max_age` (for
    /// every account, instances and launch templates) is reused, pending or available; else one
    /// is made. Pending ones are waited for, at most `wait.within`.
    pub async fn shared_usage(&self, images: &[ImageId], now: Timestamp, wait: ReportWait) -> Result<Reports, Error> {
        if images.is_empty() {
            return Ok(Reports::Answers(BTreeMap::new()));
        }
        let existing = match self.usage_reports(images, &[], true).await {
            Ok(existing) => existing,
            Err(Probe::NotOffered(why)) => return Ok(Reports::NotOffered(why)),
            Err(Probe::Failed(err)) => return Err(err),
        };
        let mut chosen: BTreeMap<ImageId, (UsageReport, bool)> = BTreeMap::new();
        for image in images {
            let fresh = existing
                .iter()
                .filter(|r| r.image_id == *image && r.covers_everyone() && !matches!(r.state, ReportState::Error(_)))
                .filter(|r| r.created.is_some_and(|at| now.duration_since(at) <= wait.max_age))
                .max_by_key(|r| r.created);
            let report = match fresh {
                Some(report) => (report.clone(), false),
                None => (self.new_usage_report(image).await?, true),
            };
            chosen.insert(image.clone(), report);
        }
        let settled = self.wait_for_reports(chosen, wait).await?;
        let ready: Vec<String> = (settled.values())
            .filter(|(r, _)| r.state == ReportState::Available)
            .map(|(r, _)| r.report_id.clone())
            .collect();
        let mut entries = self.usage_report_entries(&ready).await?;
        Ok(Reports::Answers(
            settled
                .into_iter()
                .map(|(image, (report, made_now))| {
                    let answer = answer_of(report, made_now, &mut entries, wait);
                    (image, answer)
                })
                .collect(),
        ))
    }

    /// Looks again at the pending reports until none is, or `wait.within` has passed.
    async fn wait_for_reports(
        &self,
        mut reports: BTreeMap<ImageId, (UsageReport, bool)>,
        wait: ReportWait,
    ) -> Result<BTreeMap<ImageId, (UsageReport, bool)>, Error> {
        let started = tokio::time::Instant::now();
        let mut pause = wait.first;
        loop {
            let pending: Vec<String> = (reports.values())
                .filter(|(r, _)| r.state == ReportState::Pending)
                .map(|(r, _)| r.report_id.clone())
                .collect();
            if pending.is_empty() || started.elapsed() + pause > wait.within {
                return Ok(reports);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(30));
            let looked = (self.usage_reports(&[], &pending, false).await).map_err(Probe::into_error)?;
            for (report, _) in reports.values_mut() {
                if let Some(now) = looked.iter().find(|r| r.report_id == report.report_id) {
                    *report = now.clone();
                }
            }
        }
    }

    /// A new report on the image, for every account, instances and launch templates.
    async fn new_usage_report(&self, image: &ImageId) -> Result<UsageReport, Error> {
        let mut request = self.ec2().create_image_usage_report().image_id(image.as_str());
        for kind in REPORTED_KINDS {
            request = request.resource_types(ImageUsageResourceTypeRequest::builder().resource_type(kind).build());
        }
        let output = request
            .send()
            .await
            .map_err(|err| self.error("CreateImageUsageReport", &err))?;
        let report_id = output.report_id().unwrap_or_default().to_owned();
        Ok(UsageReport {
            report_id,
            image_id: image.clone(),
            state: ReportState::Pending,
            created: None,
            accounts: Vec::new(),
            resource_types: REPORTED_KINDS.map(str::to_owned).to_vec(),
        })
    }

    /// The reports on these images, or with these IDs, every page (200 IDs a read); `probe`:
    /// the first request is tried once, as not every endpoint offers it.
    async fn usage_reports(&self, images: &[ImageId], ids: &[String], probe: bool) -> Result<Vec<UsageReport>, Probe> {
        let image_ids: Vec<String> = images.iter().map(ToString::to_string).collect();
        let mut found = Vec::new();
        let chunks: Vec<(Vec<String>, Vec<String>)> = if ids.is_empty() {
            image_ids
                .chunks(IDS_PER_READ)
                .map(|c| (c.to_vec(), Vec::new()))
                .collect()
        } else {
            ids.chunks(IDS_PER_READ).map(|c| (Vec::new(), c.to_vec())).collect()
        };
        let mut first = probe;
        for (image_ids, report_ids) in chunks {
            let mut token: Option<String> = None;
            loop {
                let request = (self.ec2().describe_image_usage_reports())
                    .set_image_ids((!image_ids.is_empty()).then(|| image_ids.clone()))
                    .set_report_ids((!report_ids.is_empty()).then(|| report_ids.clone()))
                    .set_next_token(token.clone());
                let page = send_probing(first, |once| once_or_retried!(once, request.clone()))
                    .await
                    .map_err(|err| match not_offered(&err).filter(|_| first) {
                        Some(why) => Probe::NotOffered(why),
                        None => Probe::Failed(self.error("DescribeImageUsageReports", &err)),
                    })?;
                first = false;
                found.extend(page.image_usage_reports().iter().filter_map(report_of));
                match self
                    .page_after("DescribeImageUsageReports", token.as_deref(), page.next_token())
                    .map_err(Probe::Failed)?
                {
                    Some(next) => token = Some(next),
                    None => break,
                }
            }
        }
        Ok(found)
    }

    /// The entries of these (available) reports, by report ID, every page.
    async fn usage_report_entries(&self, ids: &[String]) -> Result<BTreeMap<String, Vec<ReportEntry>>, Error> {
        let mut entries: BTreeMap<String, Vec<ReportEntry>> = BTreeMap::new();
        for chunk in ids.chunks(IDS_PER_READ) {
            let mut token: Option<String> = None;
            loop {
                let page = (self.ec2().describe_image_usage_report_entries())
                    .set_report_ids(Some(chunk.to_vec()))
                    .set_next_token(token.clone())
                    .send()
                    .await
                    .map_err(|err| self.error("DescribeImageUsageReportEntries", &err))?;
                for entry in page.image_usage_report_entries() {
                    let (Some(report), Some(account)) = (entry.report_id(), entry.account_id()) else {
                        continue;
                    };
                    entries.entry(report.to_owned()).or_default().push(ReportEntry {
                        account_id: account.to_owned(),
                        resource_type: entry.resource_type().unwrap_or_default().to_owned(),
                        usage_count: entry.usage_count().unwrap_or_default(),
                    });
                }
                match self.page_after("DescribeImageUsageReportEntries", token.as_deref(), page.next_token())? {
                    Some(next) => token = Some(next),
                    None => break,
                }
            }
        }
        Ok(entries)
    }
}

/// A report as amictl keeps it; `None` without an ID or image.
fn report_of(report: &aws_sdk_ec2::types::ImageUsageReport) -> Option<UsageReport> {
    let state = match report.state() {
        Some("available") => ReportState::Available,
        Some("error") => ReportState::Error(report.state_reason().unwrap_or("no reason given").to_owned()),
        _ => ReportState::Pending,
    };
    Some(UsageReport {
        report_id: report.report_id()?.to_owned(),
        image_id: report.image_id()?.parse().ok()?,
        state,
        created: (report.creation_time()).and_then(|t| Timestamp::from_second(t.secs()).ok()),
        accounts: report.account_ids().to_vec(),
        resource_types: (report.resource_types().iter())
            .filter_map(|r| r.resource_type().map(str::to_owned))
            .collect(),
    })
}

/// What the report says of its image, once settled (or not).
fn answer_of(
    report: UsageReport,
    made_now: bool,
    entries: &mut BTreeMap<String, Vec<ReportEntry>>,
    wait: ReportWait,
) -> ReportAnswer {
    let id = report.report_id;
    match report.state {
        ReportState::Available => {
            let mut entries = entries.remove(&id).unwrap_or_default();
            entries.retain(|e| e.usage_count > 0);
            entries.sort();
            ReportAnswer::Read {
                report_id: id,
                created: report.created,
                made_now,
                entries,
            }
        }
        ReportState::Error(why) => ReportAnswer::Unchecked {
            why: format!("usage report {id} could not be made: {why}"),
        },
        ReportState::Pending => ReportAnswer::Unchecked {
            why: format!(
                "usage report {id} was not available within {}s; a later run reuses it when it is",
                wait.within.as_secs()
            ),
        },
    }
}

/// The first request of a run: not offered, or failed.
enum Probe {
    NotOffered(String),
    Failed(Error),
}

impl Probe {
    fn into_error(self) -> Error {
        match self {
            Probe::NotOffered(why) => Error::Failed(format!("DescribeImageUsageReports: {why}")),
            Probe::Failed(err) => err,
        }
    }
}
