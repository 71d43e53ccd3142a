//! Logs go to stderr, never stdout. `-v` raises amictl's level, `-vv` and `-vvv` the SDK's too;
//! RUST_LOG replaces both.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The SDK's request signer logs canonical requests, session-token header included, at debug
/// and trace. It is held at info whatever the verbosity or RUST_LOG asks, so no log carries a
/// secret.
const SECRET_SAFE: &str = "aws_sigv4=info";

pub fn init(verbose: u8, quiet: bool) {
    let wanted = match std::env::var("RUST_LOG") {
        Ok(value) if !value.is_empty() => value,
        _ => match (quiet, verbose) {
            (true, 0) => "off".to_owned(),
            (false, 0) => "amictl=warn".to_owned(),
            (_, 1) => "amictl=info".to_owned(),
            (_, 2) => "amictl=debug,aws_config=info,aws_smithy_runtime=info".to_owned(),
            _ => "amictl=trace,aws_config=debug,aws_smithy_runtime=debug,aws_smithy_http_client=debug".to_owned(),
        },
    };
    let filter = EnvFilter::builder().parse_lossy(format!("{wanted},{SECRET_SAFE}"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()))
        .with_target(true)
        .init();
}
