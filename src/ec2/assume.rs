//! A role's credentials in another account: AssumeRole, asked once per account, through an STS
//! client made like amictl's other clients (its retries, its retry quota).
//!
//! STS meters AssumeRole by the calling account, so every AssumeRole of an organization run
//! counts against the one account amictl runs as, and a large organization can meet STS's
//! throttling. The SDK's own credentials provider (aws-config's `AssumeRoleProvider`) asks
//! through an STS client with the SDK's default retry quota, one for the whole process: each
//! throttled retry that is itself throttled again spends a share of it for good, and an
//! organization's throttled AssumeRoles ran it dry (measured: 51 accounts throttled three
//! times each), after which every throttled AssumeRole failed at once and its account was left
//! out of the run. Here each account's AssumeRole is retried (with the SDK's backoff) up to
//! the run's attempts, from a quota of its own.

use std::fmt;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{self, ProvideCredentials};
use aws_sdk_sts::error::ProvideErrorMetadata;

use crate::types::RoleArn;

/// The session name amictl's assumed roles carry (CloudTrail shows it).
const SESSION_NAME: &str = "amictl";

/// A role's credentials, assumed once and kept until five minutes before they expire; a
/// refusal is kept too (the STS client has retried what is worth retrying), so that asking
/// ahead (`Session::warm`) never makes a second AssumeRole.
#[derive(Debug)]
pub(super) struct Assumed {
    sts: aws_sdk_sts::Client,
    role: RoleArn,
    kept: tokio::sync::Mutex<Option<Result<Credentials, Refused>>>,
}

/// Why a role could not be assumed, as STS said it (kept, and said again on every request of
/// the account).
#[derive(Debug, Clone)]
pub(super) struct Refused {
    pub role: String,
    /// STS's error code; none when no answer came (a timeout, a connection that failed).
    pub code: Option<String>,
    pub message: String,
}

impl Refused {
    /// Whether STS throttled it (through every retry).
    pub fn throttled(&self) -> bool {
        self.code.as_deref().is_some_and(super::retry::is_throttling_code)
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "AssumeRole {}: {code}: {}", self.role, self.message),
            None => write!(f, "AssumeRole {}: {}", self.role, self.message),
        }
    }
}

impl std::error::Error for Refused {}

impl Assumed {
    /// `sts` asks with the caller's own credentials.
    pub fn new(sts: aws_sdk_sts::Client, role: RoleArn) -> Assumed {
        Assumed {
            sts,
            role,
            kept: tokio::sync::Mutex::new(None),
        }
    }

    async fn credentials(&self) -> provider::Result {
        let mut kept = self.kept.lock().await;
        let fresh = |credentials: &Credentials| {
            credentials
                .expiry()
                .is_none_or(|at| at > SystemTime::now() + Duration::from_mins(5))
        };
        match kept.as_ref() {
            Some(Ok(credentials)) if fresh(credentials) => return Ok(credentials.clone()),
            Some(Err(refused)) => return Err(CredentialsError::provider_error(refused.clone())),
            _ => {}
        }
        let answer = self.assume().await;
        *kept = Some(answer.clone());
        answer.map_err(CredentialsError::provider_error)
    }

    async fn assume(&self) -> Result<Credentials, Refused> {
        let refused = |code: Option<&str>, message: String| Refused {
            role: self.role.as_str().to_owned(),
            code: code.map(str::to_owned),
            message,
        };
        let answer = (self.sts.assume_role())
            .role_arn(self.role.as_str())
            .role_session_name(SESSION_NAME)
            .send()
            .await
            .map_err(|err| {
                // STS's message; else (no answer) the innermost cause, the SDK's outer layers
                // saying only "dispatch failure".
                let innermost = || {
                    std::iter::successors(Some(&err as &dyn std::error::Error), |e| e.source())
                        .last()
                        .map_or_else(String::new, ToString::to_string)
                };
                refused(err.code(), err.message().map_or_else(innermost, str::to_owned))
            })?;
        let Some(given) = answer.credentials else {
            return Err(refused(None, "STS answered without credentials".to_owned()));
        };
        let expiry = SystemTime::try_from(given.expiration).ok();
        Ok(Credentials::new(
            given.access_key_id,
            given.secret_access_key,
            Some(given.session_token),
            expiry,
            "amictl: AssumeRole",
        ))
    }
}

impl ProvideCredentials for Assumed {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(self.credentials())
    }
}
