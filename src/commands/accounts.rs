//! The accounts a run works in beyond the caller's own: `--org` (the organization's active
//! accounts), `--accounts` and `--accounts-file`, each through `--role-name`, less
//! `--exclude-accounts`, cut to `--shard I/N`. Everything the command line says is checked
//! before any request; the organization is listed once, with the caller's credentials.

use std::collections::{BTreeSet, HashSet};

use futures::StreamExt;
use std::path::Path;

use crate::ec2::Session;
use crate::error::Error;
use crate::types::{AccountId, RoleArn, RoleName, Shard};

/// The accounts asked for, as the command line says them.
#[derive(Debug, Clone)]
pub struct AccountsAsked {
    pub org: bool,
    /// `--accounts` and the lines of `--accounts-file`.
    pub listed: Vec<AccountId>,
    pub exclude: Vec<AccountId>,
    pub include_self: bool,
    pub shard: Option<Shard>,
    pub role_name: RoleName,
}

/// One account to work in: through a role, or (`None`) with the caller's own credentials.
#[derive(Debug, Clone)]
pub struct Target {
    pub role: Option<RoleArn>,
    /// The account's name, where the organization gives it.
    pub name: Option<String>,
}

impl AccountsAsked {
    /// The accounts to work in, each once, as they come: the caller's own first with
    /// `--include-self`, then the organization's active ones a ListAccounts page at a time
    /// (each page in the order of the IDs), then the listed ones the organization didn't give;
    /// less the excluded, cut to the shard. The organization is listed as the run takes its
    /// accounts, a few pages ahead, not before the work starts: an organization of thousands
    /// is being worked while it is still being listed.
    pub fn targets(&self, session: Session) -> impl futures::Stream<Item = Result<Target, Error>> + Send + 'static {
        let (sender, receiver) = tokio::sync::mpsc::channel(TARGETS_AHEAD);
        let asked = self.clone();
        tokio::spawn(async move {
            if let Err(err) = asked.send_targets(&session, &sender).await {
                // The run hears of it after the accounts before it.
                let _ = sender.send(Err(err)).await;
            }
        });
        futures::stream::unfold(receiver, |mut receiver| async move {
            let target = receiver.recv().await?;
            Some((target, receiver))
        })
    }

    /// Sends the targets in order; stops early when the run no longer takes them.
    async fn send_targets(
        &self,
        session: &Session,
        sender: &tokio::sync::mpsc::Sender<Result<Target, Error>>,
    ) -> Result<(), Error> {
        // The caller's account is asked alongside the organization's first page.
        let mut pages = self.org.then(|| Box::pin(session.organization_pages()));
        let (caller, first) = match &mut pages {
            Some(pages) => {
                let (caller, first) = futures::join!(session.caller_account(), pages.next());
                (Some(caller?), first)
            }
            None if self.include_self => (Some(session.caller_account().await?), None),
            None => (None, None),
        };
        let mut given: HashSet<AccountId> = HashSet::new();
        // Whether an account is one to work in, once.
        let mut take = |account: &AccountId| {
            caller.as_ref() != Some(account)
                && !self.exclude.contains(account)
                && self.in_shard(account)
                && given.insert(account.clone())
        };
        let through_role = |account: &AccountId, name: Option<String>| Target {
            role: Some(RoleArn::in_account(account, &self.role_name, session.region())),
            name,
        };
        let mut sent = 0_usize;
        if caller
            .as_ref()
            .is_some_and(|c| self.include_self && !self.exclude.contains(c) && self.in_shard(c))
        {
            sent += 1;
            if sender.send(Ok(Target { role: None, name: None })).await.is_err() {
                return Ok(());
            }
        }
        if let Some(mut pages) = pages {
            let mut page = first;
            while let Some(listed) = page {
                for account in listed? {
                    if take(&account.id) {
                        sent += 1;
                        if sender.send(Ok(through_role(&account.id, account.name))).await.is_err() {
                            return Ok(());
                        }
                    }
                }
                page = pages.next().await;
            }
        }
        let listed: BTreeSet<&AccountId> = self.listed.iter().collect();
        for account in listed {
            if take(account) {
                sent += 1;
                if sender.send(Ok(through_role(account, None))).await.is_err() {
                    return Ok(());
                }
            }
        }
        // A shard of a small organization may hold no account: nothing to do there, which a
        // CI matrix job must not take for a failure.
        if sent == 0 && self.shard.is_none() {
            return Err(Error::Failed(if self.exclude.is_empty() {
                "no account to work in: the organization lists no active account but the caller's own, which --org leaves out without --include-self".to_owned()
            } else {
                "no account to work in: --exclude-accounts leaves none".to_owned()
            }));
        }
        Ok(())
    }

    fn in_shard(&self, account: &AccountId) -> bool {
        self.shard.is_none_or(|shard| shard.holds(account))
    }
}

/// Accounts listed ahead of the run's work: a few ListAccounts pages.
const TARGETS_AHEAD: usize = 64;

/// Account IDs, one a line; blank lines and `#` comments are skipped.
pub fn read_accounts_file(path: &Path) -> Result<Vec<AccountId>, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Usage(format!("cannot read the accounts file {}: {e}", path.display())))?;
    parse_accounts(&text).map_err(|(line, why)| Error::Usage(format!("{}:{line}: {why}", path.display())))
}

fn parse_accounts(text: &str) -> Result<Vec<AccountId>, (usize, String)> {
    let mut accounts = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let id = line.split('#').next().unwrap_or_default().trim();
        if id.is_empty() {
            continue;
        }
        accounts.push(id.parse().map_err(|why| (number + 1, why))?);
    }
    Ok(accounts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_accounts_file_has_one_id_a_line_with_comments() {
        let accounts = parse_accounts("# production\n111122223333\n\n444455556666  # staging\n").unwrap();
        let ids: Vec<&str> = accounts.iter().map(AccountId::as_str).collect();
        assert_eq!(ids, ["111122223333", "444455556666"]);
        let (line, why) = parse_accounts("111122223333\n12345\n").unwrap_err();
        assert_eq!(line, 2);
        assert!(why.contains("not an AWS account ID"), "{why}");
    }
}
