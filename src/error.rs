//! What can go wrong, said so that the reader knows what to do next, and mapped to exit codes.

use std::process::ExitCode;

/// Exit code of a run whose operation failed: an AWS error, something not found, a partial failure.
pub const EXIT_FAILED: u8 = 1;
/// Exit code of a usage error: bad flags or values, or a refused destructive action.
pub const EXIT_USAGE: u8 = 2;
/// Exit code of a run stopped by Ctrl-C (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: u8 = 130;

/// amictl's errors. Each message names the resource, the region and the next step.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line asks for something amictl can't do; nothing was sent.
    #[error("{0}")]
    Usage(String),

    /// A named resource does not exist (or is not visible to this account).
    #[error("{what} not found in {region}; check the ID, or --region if it lives elsewhere")]
    NotFound { what: String, region: String },

    /// The endpoint could not be reached or did not answer in time.
    #[error("cannot reach the EC2 endpoint {endpoint} ({detail}); check --endpoint-url, --region and the network")]
    Unreachable { endpoint: String, detail: String },

    /// No credentials were found, or AWS refused the ones given.
    #[error("{0}")]
    Credentials(String),

    /// The caller is not allowed to do this. `action` is an EC2 API name, or `service:Action`
    /// for other services.
    #[error(
        "access denied: {action} in {region} was refused ({code}: {message}); the caller needs the {} permission",
        permission(action)
    )]
    AccessDenied {
        action: &'static str,
        region: String,
        code: String,
        message: String,
    },

    /// The operation can't be done, for a reason the message gives (e.g. a duplicate name).
    #[error("{0}")]
    Failed(String),

    /// The run's accounts were being listed when a page failed, after some were reached: the
    /// run has seen only part of them.
    #[error("the run's accounts could not all be listed ({reached} accounts × regions were reached before): {cause}")]
    PartlyListed { reached: usize, cause: String },

    /// The user interrupted the run (Ctrl-C); the message says what goes on without amictl.
    #[error("{0}")]
    Interrupted(String),

    /// Any other error EC2 answered with; the code is kept so callers can tell fates apart.
    #[error("{action} failed in {region}: {message} ({code})")]
    Aws {
        action: &'static str,
        region: String,
        code: String,
        message: String,
    },
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => EXIT_USAGE,
            Error::Interrupted(_) => EXIT_INTERRUPTED,
            _ => EXIT_FAILED,
        }
    }

    /// EC2's error code, for errors EC2 answered with.
    pub fn aws_code(&self) -> Option<&str> {
        match self {
            Error::Aws { code, .. } | Error::AccessDenied { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// The IAM permission an API action needs: `ec2:Action` unless another service is named.
fn permission(action: &str) -> String {
    if action.contains(':') {
        action.to_owned()
    } else {
        format!("ec2:{action}")
    }
}

/// The exit code for an error that reached `main`: a usage error is 2, anything else 1.
pub fn exit_code_of(err: &anyhow::Error) -> ExitCode {
    let code = err
        .chain()
        .find_map(|cause| cause.downcast_ref::<Error>())
        .map_or(EXIT_FAILED, Error::exit_code);
    ExitCode::from(code)
}

/// True when the error is a write to a stdout whose reader went away (`amictl describe | head -1`).
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
