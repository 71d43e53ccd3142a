//! The accounts of a run beyond the caller's own: the organization's (Organizations
//! ListAccounts) and the caller's (STS GetCallerIdentity), asked with the caller's credentials.

use aws_sdk_ec2::error::ProvideErrorMetadata;

use super::Session;
use crate::error::Error;
use crate::types::AccountId;

/// An active account of the organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgAccount {
    pub id: AccountId,
    pub name: Option<String>,
}

impl Session {
    /// The organization's active accounts (ListAccounts, every page). Only the management
    /// account or a delegated administrator may list them.
    pub async fn organization_accounts(&self) -> Result<Vec<OrgAccount>, Error> {
        let client = aws_sdk_organizations::Client::new(&self.config);
        let mut pages = client.list_accounts().into_paginator().send();
        let mut accounts = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| {
                let code = err.code().unwrap_or("RequestFailed").to_owned();
                let message = err.message().map_or_else(|| super::errors::root_cause(&err), str::to_owned);
                match code.as_str() {
                    "AccessDeniedException" | "AccessDenied" => Error::AccessDenied {
                        action: "organizations:ListAccounts",
                        region: self.region.to_string(),
                        code,
                        message: format!("{message} (only the management account or a delegated administrator may list accounts)"),
                    },
                    "AWSOrganizationsNotInUseException" => Error::Failed(format!(
                        "--org: the caller's account is not in an organization ({message}); name the accounts with --accounts"
                    )),
                    _ => Error::Failed(format!("--org: Organizations ListAccounts failed: {message} ({code})")),
                }
            })?;
            for account in page.accounts() {
                // `State` replaced `Status` (retired in September 2026); either says ACTIVE.
                let state = account
                    .state()
                    .map(|s| s.as_str().to_owned())
                    .or_else(|| account.status().map(|s| s.as_str().to_owned()));
                if state.as_deref() != Some("ACTIVE") {
                    continue;
                }
                if let Some(id) = account.id().and_then(|id| id.parse().ok()) {
                    accounts.push(OrgAccount {
                        id,
                        name: account.name().map(str::to_owned),
                    });
                }
            }
        }
        accounts.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
        Ok(accounts)
    }

    /// The caller's own account (GetCallerIdentity).
    pub async fn caller_account(&self) -> Result<AccountId, Error> {
        let client = aws_sdk_sts::Client::new(&self.config);
        let identity = client.get_caller_identity().send().await.map_err(|err| {
            let message = err
                .message()
                .map_or_else(|| super::errors::root_cause(&err), str::to_owned);
            Error::Credentials(format!(
                "could not tell the caller's own account (STS GetCallerIdentity: {message}); check the credentials"
            ))
        })?;
        identity
            .account()
            .and_then(|id| id.parse().ok())
            .ok_or_else(|| Error::Failed("STS GetCallerIdentity named no account".to_owned()))
    }
}
