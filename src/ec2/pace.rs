//! Pacing: EC2 throttles each action per account and region with a token bucket (for
//! DeregisterImage and DeleteSnapshot about 100 requests of burst, refilling at about 5 a
//! second). Every paced action of a client (one account, one region) is a *stream* with one
//! rate, shared by all the workers that send it:
//!
//! - the rate is learned from EC2's answers by the SDK's adaptive rate limiter (CUBIC: the
//!   burst goes at full speed, a throttle cuts the rate, quiet time probes it back up), one
//!   limiter per stream, so that a throttled DeleteSnapshot never slows DeregisterImage;
//! - `--max-rate N` caps every stream at N requests a second, for accounts whose buckets
//!   other tools need;
//! - throttling fails a request only when its stream has had nothing get through for the
//!   request budget (`--timeout`); from then on the stream's other requests fail at once,
//!   so that a lasting throttle ends the run within that budget, not one budget per request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_sdk_ec2::config::retry::RetryConfig;
use aws_smithy_runtime::client::retries::{ClientRateLimiter, RetryPartition, TokenBucket};

use crate::error::Error;

/// Attempts of one paced request, throttled ones included, unless `--max-attempts` says
/// otherwise: the rate limiter makes throttles rare, and the budget bounds the rest.
const PACED_MAX_ATTEMPTS: u32 = 100;

/// The streams of one client, by action.
#[derive(Debug)]
pub struct Streams {
    streams: Mutex<HashMap<&'static str, Arc<Stream>>>,
    /// `--max-rate`: requests a second per stream.
    max_rate: Option<f64>,
    /// `--max-attempts`, when given.
    max_attempts: Option<u32>,
    /// How long a stream may go with nothing getting through before its requests fail.
    budget: Duration,
}

/// One action's requests to one account and region.
#[derive(Debug)]
pub struct Stream {
    action: &'static str,
    partition: RetryPartition,
    /// With `--max-rate`: when the next request may go.
    next_slot: Mutex<Instant>,
    /// When a request of the stream last got through (or the first one was sent).
    last_success: Mutex<Option<Instant>>,
    stuck: AtomicBool,
}

impl Streams {
    pub fn new(max_rate: Option<f64>, max_attempts: Option<u32>, budget: Duration) -> Streams {
        Streams {
            streams: Mutex::new(HashMap::new()),
            max_rate,
            max_attempts,
            budget,
        }
    }

    /// The stream of an action (made on first use).
    pub fn of(&self, action: &'static str) -> Arc<Stream> {
        let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(streams.entry(action).or_insert_with(|| {
            Arc::new(Stream {
                action,
                partition: RetryPartition::custom(format!("amictl-{action}"))
                    .token_bucket(TokenBucket::new(super::retry::RETRY_QUOTA))
                    .client_rate_limiter(ClientRateLimiter::new(seconds_since_epoch()))
                    .build(),
                next_slot: Mutex::new(Instant::now()),
                last_success: Mutex::new(None),
                stuck: AtomicBool::new(false),
            })
        }))
    }

    /// The configuration of one request of the stream: its own adaptive rate limiter and
    /// retry quota.
    fn config(&self, stream: &Stream) -> aws_sdk_ec2::config::Builder {
        aws_sdk_ec2::config::Builder::default()
            .retry_partition(stream.partition.clone())
            .retry_config(RetryConfig::adaptive().with_max_attempts(self.max_attempts.unwrap_or(PACED_MAX_ATTEMPTS)))
    }

    /// Waits for the stream's turn under `--max-rate`; fails at once when the stream is stuck.
    async fn before(&self, stream: &Stream) -> Result<(), Error> {
        if stream.stuck.load(Ordering::SeqCst) {
            return Err(self.stuck_error(stream));
        }
        // The budget counts from the stream's first request.
        stream
            .last_success
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(Instant::now);
        if let Some(rate) = self.max_rate {
            let interval = Duration::from_secs_f64(1.0 / rate);
            let wait = {
                let mut slot = stream.next_slot.lock().unwrap_or_else(PoisonError::into_inner);
                let now = Instant::now();
                let at = (*slot).max(now);
                *slot = at + interval;
                at - now
            };
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    /// Sends one request of the stream (`send` makes and sends it with the configuration it
    /// is given) until it gets an answer other than throttling or silence, or the stream is
    /// stuck: while anything of the stream gets through, throttling fails no request.
    pub async fn send<T, F, Fut>(&self, stream: &Stream, send: F) -> Result<T, Error>
    where
        F: Fn(aws_sdk_ec2::config::Builder) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        loop {
            self.before(stream).await?;
            match self.settle(stream, send(self.config(stream)).await) {
                Err(err) if is_throttling_or_silence(&err) && !stream.stuck.load(Ordering::SeqCst) => {
                    tracing::debug!(action = stream.action, "throttled, but the stream moves: again ({err})");
                }
                other => return other,
            }
        }
    }

    /// Records how a request ended. A failure that throttling (or no answer) can explain,
    /// with nothing of the stream getting through for the whole budget, makes the stream
    /// stuck, and becomes an error that says so.
    fn settle<T>(&self, stream: &Stream, result: Result<T, Error>) -> Result<T, Error> {
        let now = Instant::now();
        let mut last = stream.last_success.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(value) => {
                *last = Some(now);
                stream.stuck.store(false, Ordering::SeqCst);
                Ok(value)
            }
            Err(err)
                if is_throttling_or_silence(&err) && last.is_some_and(|at| now.duration_since(at) >= self.budget) =>
            {
                stream.stuck.store(true, Ordering::SeqCst);
                Err(self.stuck_error(stream))
            }
            Err(err) => Err(err),
        }
    }

    fn stuck_error(&self, stream: &Stream) -> Error {
        Error::Failed(format!(
            "no {} got through for {} (EC2 kept throttling it, or did not answer); run the same command again later, or with --max-rate to leave room for the account's other tools",
            stream.action,
            humantime::format_duration(Duration::from_secs(self.budget.as_secs()))
        ))
    }
}

/// Now, as the SDK's rate limiter counts time (it measures the send rate in time buckets from
/// its start, which must be now, not 1970).
fn seconds_since_epoch() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Throttling that outlasted the attempts, or a request that ran out of time (waiting for its
/// turn counts). Not a refused connection: nothing listens there, and that is final.
fn is_throttling_or_silence(err: &Error) -> bool {
    match err {
        Error::Unreachable { detail, .. } => detail == super::errors::NO_ANSWER_IN_TIME,
        other => matches!(
            other.aws_code(),
            Some("RequestLimitExceeded" | "Throttling" | "ThrottlingException" | "RequestThrottled")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aws(code: &str) -> Error {
        Error::Aws {
            action: "DeregisterImage",
            region: "eu-west-1".to_owned(),
            code: code.to_owned(),
            message: String::new(),
        }
    }

    fn unreachable(detail: &str) -> Error {
        Error::Unreachable {
            endpoint: "http://127.0.0.1:1".to_owned(),
            detail: detail.to_owned(),
        }
    }

    #[test]
    fn only_throttling_and_silence_are_the_stream_s_to_wait_out() {
        assert!(is_throttling_or_silence(&aws("RequestLimitExceeded")));
        assert!(is_throttling_or_silence(&unreachable(
            super::super::errors::NO_ANSWER_IN_TIME
        )));
        assert!(
            !is_throttling_or_silence(&unreachable("Connection refused (os error 111)")),
            "final"
        );
        assert!(!is_throttling_or_silence(&aws("InvalidAMIID.Malformed")));
    }

    #[test]
    fn a_stream_with_nothing_through_for_the_budget_is_stuck_and_fails_at_once() {
        let streams = Streams::new(None, None, Duration::ZERO);
        let stream = streams.of("DeregisterImage");
        *stream.last_success.lock().unwrap() = Some(Instant::now());

        let first = streams.settle::<()>(&stream, Err(aws("RequestLimitExceeded")));
        let next = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(streams.before(&stream));

        assert!(
            first
                .unwrap_err()
                .to_string()
                .starts_with("no DeregisterImage got through")
        );
        assert!(next.is_err(), "the stream's next request fails without being sent");
        assert!(
            streams.settle(&stream, Ok(())).is_ok(),
            "anything getting through unsticks it"
        );
        assert!(!stream.stuck.load(Ordering::SeqCst));
    }
}
