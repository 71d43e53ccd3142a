//! The accounts × regions of a run, made as they are reached: an organization's accounts come
//! in as ListAccounts pages do, each account's role is assumed a few accounts ahead of the
//! work, and each account × region is a [`Context`] once its turn comes. The work starts with
//! the first page; the contexts done with are dropped while the rest are still being listed.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;

use futures::StreamExt;
use futures::stream::BoxStream;
use jiff::Timestamp;

use super::Context;
use super::accounts::Target;
use crate::ec2::{ReportWait, Session};
use crate::error::Error;
use crate::interrupt::Interrupt;
use crate::output::Printer;
use crate::types::Region;

/// The contexts of a run, in the order of the accounts (as they are listed) and regions. An
/// error ends it: the accounts could not be listed (the contexts before it are good).
pub struct Contexts<'run> {
    stream: BoxStream<'run, Result<Context<'run>, Error>>,
    /// The contexts given so far.
    given: usize,
    unreached: Unreached,
    pub printer: &'run Printer,
    pub now: Timestamp,
}

/// The accounts whose regions could not be read (the role refused, DescribeRegions denied),
/// each named: they fail the run (exit 1) after the others are worked.
#[derive(Clone, Default)]
pub struct Unreached(Arc<Mutex<Vec<String>>>);

impl Unreached {
    fn push(&self, why: String) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push(why);
    }

    /// Those found so far.
    pub fn list(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// Where a run works, as the command line says it: the accounts (each through its role, or
/// the caller's own) and the regions (`None`: each account's enabled ones, `--all-regions`).
pub struct Where<'run> {
    pub home: Session,
    pub targets: BoxStream<'static, Result<Target, Error>>,
    pub regions: Option<Vec<Option<Region>>>,
    pub printer: &'run Printer,
    pub interrupt: &'run Interrupt,
    pub now: Timestamp,
    pub reports: ReportWait,
}

impl<'run> Contexts<'run> {
    /// The contexts of these accounts and regions. Each account's credentials are got once
    /// (one AssumeRole), whatever the number of regions, [`ACCOUNTS_AHEAD`] accounts ahead of
    /// the work (and, with `--all-regions`, its enabled regions with them).
    pub fn new(places: Where<'run>) -> Contexts<'run> {
        let Where {
            home,
            targets,
            regions,
            printer,
            interrupt,
            now,
            reports,
        } = places;
        let unreached = Unreached::default();
        let accounts = targets
            .map(move |target| {
                let (home, regions) = (home.clone(), regions.clone());
                async move {
                    let target = target?;
                    let session = match &target.role {
                        None => home,
                        Some(role) => home.assumed(role, target.name),
                    };
                    let regions = match regions {
                        Some(regions) => {
                            if session.is_assumed() {
                                session.clone().warm().await;
                            }
                            Ok(regions)
                        }
                        None => (session.client(None).enabled_regions().await)
                            .map(|enabled| enabled.into_iter().map(Some).collect()),
                    };
                    Ok::<_, Error>((session, regions))
                }
            })
            .buffered(ACCOUNTS_AHEAD);
        let found = unreached.clone();
        let stream = accounts
            .flat_map(move |account| {
                let contexts: Vec<Result<Context<'run>, Error>> = match account {
                    Err(listing) => vec![Err(listing)],
                    Ok((session, Ok(regions))) => (regions.into_iter())
                        .map(|region| {
                            Ok(Context {
                                ec2: session.client(region),
                                printer,
                                interrupt,
                                now,
                                reports,
                            })
                        })
                        .collect(),
                    Ok((session, Err(err))) => {
                        found.push(format!(
                            "{}: its regions could not be read: {err}",
                            session.client(None).place()
                        ));
                        Vec::new()
                    }
                };
                futures::stream::iter(contexts)
            })
            .boxed();
        Contexts {
            stream,
            given: 0,
            unreached,
            printer,
            now,
        }
    }

    /// The accounts not reached, to be read once the contexts are worked.
    pub fn unreached(&self) -> Unreached {
        self.unreached.clone()
    }

    /// Every context at once, for work that needs them all together (who in the run uses
    /// whose shared images), with the accounts not reached.
    pub async fn all(self) -> Result<(Vec<Context<'run>>, Vec<String>), Error> {
        let unreached = self.unreached.clone();
        let contexts: Vec<Context<'run>> = self
            .stream
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        Ok((contexts, unreached.list()))
    }
}

impl<'run> futures::Stream for Contexts<'run> {
    type Item = Result<Context<'run>, Error>;

    /// The next context. An error after some were given (a ListAccounts page that failed)
    /// says so: the run has seen only part of the accounts.
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Option<Self::Item>> {
        let next = self.stream.poll_next_unpin(cx);
        match next {
            Poll::Ready(Some(Ok(_))) => self.given += 1,
            Poll::Ready(Some(Err(err))) if self.given > 0 => {
                return Poll::Ready(Some(Err(Error::PartlyListed {
                    reached: self.given,
                    cause: err.to_string(),
                })));
            }
            _ => {}
        }
        next
    }
}

/// Accounts whose roles are assumed at once, ahead of their work: enough that the accounts ×
/// regions at work never wait for AssumeRole (it answers in a round trip; an account's
/// regions are worked in a few).
pub const ACCOUNTS_AHEAD: usize = 32;
