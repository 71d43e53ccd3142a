//! The accounts of a run beyond the caller's own: the organization's (Organizations
//! ListAccounts) and the caller's (STS GetCallerIdentity), asked with the caller's credentials.

use aws_sdk_ec2::error::ProvideErrorMetadata;

use futures::StreamExt as _;

use super::Session;
use super::pages::{PageError, Repeated};
use crate::error::Error;
use crate::types::AccountId;

/// Accounts asked for a ListAccounts page: the most Organizations answers (its API reference
/// caps MaxResults at 20), asked for explicitly so that every endpoint pages alike.
const ACCOUNTS_PAGE: i32 = 20;

/// An active account of the organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgAccount {
    pub id: AccountId,
    pub name: Option<String>,
}

impl Session {
    /// The organization's active accounts (ListAccounts), a page at a time as they come, each
    /// page's accounts in the order of their IDs: an organization of thousands is worked while
    /// it is still being listed. Only the management account or a delegated administrator may
    /// list them; a page that fails ends the stream with its error.
    pub fn organization_pages(&self) -> impl futures::Stream<Item = Result<Vec<OrgAccount>, Error>> + Send + 'static {
        let client = aws_sdk_organizations::Client::new(&self.config);
        let region = self.region.to_string();
        let pages = super::pages::pages(
            self.requests.gate(super::budget::Turn::Opens),
            move |token| {
                (client.list_accounts())
                    .max_results(ACCOUNTS_PAGE)
                    .set_next_token(token)
                    .send()
            },
            aws_sdk_organizations::operation::list_accounts::ListAccountsOutput::next_token,
        );
        // After a failure, nothing more: `pages` ends there.
        pages.map(move |page| match page {
            Ok(page) => Ok(active_accounts(page.accounts())),
            Err(PageError::Refused(err)) => Err(list_failure(&err, &region)),
            Err(PageError::Repeated(Repeated(token))) => Err(Error::Failed(format!(
                "--org: Organizations ListAccounts answered a page with the token it was asked with ({token}), so the accounts after it could not be listed; run again"
            ))),
        })
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

/// The active accounts of a ListAccounts page, in the order of their IDs.
fn active_accounts(accounts: &[aws_sdk_organizations::types::Account]) -> Vec<OrgAccount> {
    let mut active: Vec<OrgAccount> = accounts
        .iter()
        .filter(|account| {
            // `State` replaced `Status` (retired in September 2026); either says ACTIVE.
            let state = account
                .state()
                .map(|s| s.as_str().to_owned())
                .or_else(|| account.status().map(|s| s.as_str().to_owned()));
            state.as_deref() == Some("ACTIVE")
        })
        .filter_map(|account| {
            Some(OrgAccount {
                id: account.id()?.parse().ok()?,
                name: account.name().map(str::to_owned),
            })
        })
        .collect();
    active.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    active
}

/// What a failed ListAccounts page says, as amictl's error.
fn list_failure<E: ProvideErrorMetadata + std::error::Error + 'static>(err: &E, region: &str) -> Error {
    let code = err.code().unwrap_or("RequestFailed").to_owned();
    let message = err
        .message()
        .map_or_else(|| super::errors::root_cause(err), str::to_owned);
    match code.as_str() {
        "AccessDeniedException" | "AccessDenied" => Error::AccessDenied {
            action: "organizations:ListAccounts",
            region: region.to_owned(),
            code,
            message: format!("{message} (only the management account or a delegated administrator may list accounts)"),
        },
        "AWSOrganizationsNotInUseException" => Error::Failed(format!(
            "--org: the caller's account is not in an organization ({message}); name the accounts with --accounts"
        )),
        _ => Error::Failed(format!("--org: Organizations ListAccounts failed: {message} ({code})")),
    }
}
