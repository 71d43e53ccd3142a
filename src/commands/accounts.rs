//! The accounts a run works in beyond the caller's own: `--org` (the organization's active
//! accounts), `--accounts` and `--accounts-file`, each through `--role-name`, less
//! `--exclude-accounts`, cut to `--shard I/N`. Everything the command line says is checked
//! before any request; the organization is listed once, with the caller's credentials.

use std::collections::BTreeMap;
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
    /// The accounts to work in, sorted by ID, each once: the organization's active ones (the
    /// caller's own left out unless `--include-self`) and the listed ones, less the excluded,
    /// cut to the shard.
    pub async fn targets(&self, session: &Session) -> Result<Vec<Target>, Error> {
        let mut names: BTreeMap<String, Option<String>> = BTreeMap::new();
        if self.org {
            for account in session.organization_accounts().await? {
                names.insert(account.id.to_string(), account.name);
            }
        }
        let caller = if self.org || self.include_self {
            Some(session.caller_account().await?)
        } else {
            None
        };
        if let Some(caller) = &caller {
            names.remove(caller.as_str());
        }
        for account in &self.listed {
            names.entry(account.to_string()).or_insert(None);
        }
        for account in &self.exclude {
            names.remove(account.as_str());
        }
        let mut targets = Vec::new();
        for (id, name) in names {
            let account: AccountId = id.parse().map_err(Error::Failed)?;
            let own = caller.as_ref() == Some(&account);
            if own || !self.in_shard(&account) {
                continue;
            }
            targets.push((
                account.clone(),
                Target {
                    role: Some(RoleArn::in_account(&account, &self.role_name, session.region())),
                    name,
                },
            ));
        }
        if let Some(caller) = caller.filter(|c| self.include_self && !self.exclude.contains(c) && self.in_shard(c)) {
            targets.push((caller, Target { role: None, name: None }));
        }
        targets.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        // A shard of a small organization may hold no account: nothing to do there, which a
        // CI matrix job must not take for a failure.
        if targets.is_empty() && self.shard.is_none() {
            return Err(Error::Failed(if self.exclude.is_empty() {
                "no account to work in: the organization lists no active account but the caller's own, which --org leaves out without --include-self".to_owned()
            } else {
                "no account to work in: --exclude-accounts leaves none".to_owned()
            }));
        }
        Ok(targets.into_iter().map(|(_, target)| target).collect())
    }

    fn in_shard(&self, account: &AccountId) -> bool {
        self.shard.is_none_or(|shard| shard.holds(account))
    }
}

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
