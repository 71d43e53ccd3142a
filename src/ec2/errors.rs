//! SDK errors become amictl errors here, keeping EC2's error code.

use std::error::Error as StdError;

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};

use super::Ec2;
use super::pages::{PageError, Repeated, after};
use crate::error::Error;

impl Ec2 {
    /// Turns an SDK error from `action` (the EC2 API name, e.g. `DescribeImages`) into an
    /// amictl error that says what happened and what to do.
    pub(super) fn error<E>(&self, action: &'static str, err: &SdkError<E, HttpResponse>) -> Error
    where
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    {
        if let Some(code) = err.code() {
            let code = code.to_owned();
            let message = err.message().unwrap_or("no message").to_owned();
            return self.service_error(action, code, message);
        }
        if let Some(credentials) = find_source::<CredentialsError>(err) {
            return Error::Credentials(credentials_message(credentials));
        }
        match err {
            SdkError::TimeoutError(_) => Error::Unreachable {
                endpoint: self.endpoint.clone(),
                detail: NO_ANSWER_IN_TIME.to_owned(),
            },
            SdkError::DispatchFailure(failure) if failure.is_io() || failure.is_timeout() => Error::Unreachable {
                endpoint: self.endpoint.clone(),
                detail: root_cause(err),
            },
            SdkError::ResponseError(_) => Error::Aws {
                action,
                region: self.region.to_string(),
                code: "UnreadableResponse".to_owned(),
                message: format!(
                    "the endpoint {} answered something that is not an EC2 response: {}",
                    self.endpoint,
                    root_cause(err)
                ),
            },
            _ => Error::Aws {
                action,
                region: self.region.to_string(),
                code: "RequestFailed".to_owned(),
                message: root_cause(err),
            },
        }
    }

    /// A paged read's error from `action`: a page refused, or one that came back with the
    /// token it was asked with.
    pub(super) fn page_error<E>(&self, action: &'static str, err: &PageError<SdkError<E, HttpResponse>>) -> Error
    where
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    {
        match err {
            PageError::Refused(err) => self.error(action, err),
            PageError::Repeated(repeated) => self.repeated(action, repeated),
        }
    }

    /// The token to ask for the page of `action` after one asked with `sent` that answered
    /// `next` (`None`: that was the last), for a read that pages by hand ([`after`]).
    pub(super) fn page_after(
        &self,
        action: &'static str,
        sent: Option<&str>,
        next: Option<&str>,
    ) -> Result<Option<String>, Error> {
        after(sent, next).map_err(|repeated| self.repeated(action, &repeated))
    }

    /// A page of `action` came back with the token it was asked with: the pages after it
    /// can't be read, so the read is incomplete and nothing may be decided on it.
    fn repeated(&self, action: &'static str, Repeated(token): &Repeated) -> Error {
        Error::Aws {
            action,
            region: self.region.to_string(),
            code: "RepeatedNextToken".to_owned(),
            message: format!(
                "a page came back with the token it was asked with ({token}), so the pages after it could not be read; run again, and report it if it persists"
            ),
        }
    }

    fn service_error(&self, action: &'static str, code: String, message: String) -> Error {
        match code.as_str() {
            "AuthFailure" | "InvalidClientTokenId" | "SignatureDoesNotMatch" | "UnrecognizedClientException" => {
                Error::Credentials(format!(
                    "AWS refused the credentials ({code}: {message}); check AWS_ACCESS_KEY_ID, AWS_PROFILE or --profile"
                ))
            }
            "ExpiredToken" | "ExpiredTokenException" | "RequestExpired" => Error::Credentials(format!(
                "the AWS credentials have expired ({code}); refresh them (e.g. `aws sso login`) and run again"
            )),
            "UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException" => Error::AccessDenied {
                action,
                region: self.region.to_string(),
                code,
                message,
            },
            _ => Error::Aws {
                action,
                region: self.region.to_string(),
                code,
                message,
            },
        }
    }
}

/// How a request that ran out of time is described.
pub(super) const NO_ANSWER_IN_TIME: &str = "no answer in time";

/// The error codes with which EC2 says a launch template doesn't exist (or can't, by its ID).
pub(super) fn launch_template_gone(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(
            "InvalidLaunchTemplateId.NotFound"
                | "InvalidLaunchTemplateName.NotFoundException"
                | "InvalidLaunchTemplateId.Malformed"
        )
    )
}

fn credentials_message(err: &CredentialsError) -> String {
    if let Some(refused) = find_source::<super::assume::Refused>(err) {
        return if refused.throttled() {
            format!(
                "STS throttled AssumeRole of {} through every retry ({}); it counts an organization's AssumeRoles against the account amictl runs as: run again later, or with a lower --concurrency",
                refused.role, refused.message
            )
        } else if refused.code.is_none() {
            format!(
                "no answer from STS to assume the role ({refused}); check the network, or the STS endpoint (AWS_ENDPOINT_URL_STS)"
            )
        } else {
            format!(
                "could not assume the role ({refused}); check that the role exists in that account and trusts the account amictl runs as"
            )
        };
    }
    match err {
        CredentialsError::CredentialsNotLoaded(_) => "no AWS credentials found: set AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY, pick a profile with --profile or AWS_PROFILE, or log in with `aws sso login`"
            .to_owned(),
        other => format!(
            "could not load AWS credentials ({}); check the profile, or log in again with `aws sso login`",
            root_cause(other)
        ),
    }
}

/// A server error, or no answer at all: worth another try, or another way.
pub(super) fn is_server_side<E>(err: &SdkError<E, HttpResponse>) -> bool {
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => true,
        _ => err.raw_response().is_some_and(|r| r.status().is_server_error()),
    }
}

/// The endpoint doesn't know the action: it says so with one of these codes, or (moto) answers
/// with a server error that isn't an EC2 error at all. A throttle or an EC2 `InternalError`
/// is not that: those are retried as usual.
pub(super) fn not_offered<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Option<String> {
    match err.code() {
        Some(code @ ("InvalidAction" | "UnsupportedOperation" | "NotImplemented" | "UnknownOperationException")) => {
            Some(format!("the endpoint does not offer it ({code})"))
        }
        None if is_server_side(err) && err.raw_response().is_some() => {
            Some("the endpoint answered with a server error, not an EC2 answer".to_owned())
        }
        _ => None,
    }
}

/// Sends a request; the first of an action not every endpoint offers (`probe`) is tried once
/// (`send(true)`), since an endpoint that lacks it would otherwise be asked ten times. Anything
/// else that first try meets (a throttle, an EC2 `InternalError`) gets the usual retries.
pub(super) async fn send_probing<T, E, F, Fut>(probe: bool, send: F) -> Result<T, SdkError<E, HttpResponse>>
where
    E: ProvideErrorMetadata,
    F: Fn(bool) -> Fut,
    Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
{
    if !probe {
        return send(false).await;
    }
    match send(true).await {
        Err(err) if not_offered(&err).is_none() => send(false).await,
        tried => tried,
    }
}

/// The first error of type `T` in the source chain.
fn find_source<'a, T: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// The innermost cause: the SDK's outer layers say only "dispatch failure".
pub(super) fn root_cause(err: &(dyn StdError + 'static)) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}
