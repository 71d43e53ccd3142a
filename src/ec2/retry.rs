//! How amictl retries: enough for bulk work under EC2's throttling, and no retries for what
//! can't succeed on retry.

use std::error::Error as StdError;

use aws_smithy_runtime::client::retries::{RetryPartition, TokenBucket};
use aws_smithy_runtime_api::client::interceptors::context::InterceptorContext;
use aws_smithy_runtime_api::client::retries::classifiers::{ClassifyRetry, RetryAction, RetryClassifierPriority};

/// Attempts per request unless `--max-attempts` or AWS_MAX_ATTEMPTS / AWS_RETRY_MODE say
/// otherwise. The SDK's default of 3 gives up too soon when a cleanup of thousands of images
/// meets EC2's request limits (DeregisterImage and DeleteSnapshot refill at about 5 a second).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;

/// The retry quota of a client amictl makes (each gets a bucket of its own). The SDK's default
/// is one bucket for all of a service's clients in the process: 500 tokens, 5 per throttled
/// retry, and a retry that fails again loses its tokens for good, so it runs dry after about
/// a hundred such retries (an organization's throttled AssumeRoles did); bulk work needs
/// more. It stays a client-side limit: a client whose requests only ever fail stops retrying.
pub fn partition() -> RetryPartition {
    RetryPartition::custom("amictl")
        .token_bucket(TokenBucket::new(RETRY_QUOTA))
        .build()
}

/// The retry quota of a partition, in the SDK's tokens (5 per throttled retry).
pub const RETRY_QUOTA: usize = 25_000;

/// The error codes with which AWS services say a request was throttled: EC2's
/// (`RequestLimitExceeded`, `RequestThrottled`), STS's and the query services' (`Throttling`),
/// the JSON services' (`ThrottlingException`, `TooManyRequestsException`).
pub fn is_throttling_code(code: &str) -> bool {
    matches!(
        code,
        "RequestLimitExceeded" | "RequestThrottled" | "Throttling" | "ThrottlingException" | "TooManyRequestsException"
    )
}

/// A refused connection means nothing listens at the endpoint: retrying only delays the
/// error. (Dropped connections, timeouts, 5xx and throttling are still retried.)
#[derive(Debug, Default)]
pub struct RefusedConnectionIsFinal;

impl ClassifyRetry for RefusedConnectionIsFinal {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let Some(Err(err)) = ctx.output_or_error() else {
            return RetryAction::NoActionIndicated;
        };
        let Some(connector) = err.as_connector_error() else {
            return RetryAction::NoActionIndicated;
        };
        let mut cause: Option<&(dyn StdError + 'static)> = Some(connector);
        while let Some(current) = cause {
            if current
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
            {
                return RetryAction::RetryForbidden;
            }
            cause = current.source();
        }
        RetryAction::NoActionIndicated
    }

    fn name(&self) -> &'static str {
        "amictl: a refused connection is final"
    }

    fn priority(&self) -> RetryClassifierPriority {
        RetryClassifierPriority::run_after(RetryClassifierPriority::transient_error_classifier())
    }
}
