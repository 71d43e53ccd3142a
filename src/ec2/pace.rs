//! Pacing: EC2 throttles each action per account and region with a token bucket (for
//! DeregisterImage and DeleteSnapshot about 100 requests of burst, refilling at about 5 a
//! second). Every paced action of a client (one account, one region) is a *stream* with one
//! rate, shared by all the workers that send it, learned from EC2's answers:
//!
//! - until EC2 first throttles the stream, its requests go at full speed: that is the burst;
//! - a throttled answer means the bucket is empty. Between two moments the bucket was empty,
//!   every request that got through was paid by the refill, so the refill rate is the
//!   stream's successes in between divided by the time (give or take one token). From the
//!   first throttle on, the stream is paced at that measure, rounded up by one token, over
//!   the last [`WINDOW`]: a hair over the refill, so the bucket stays empty (no refill is
//!   lost) and few requests are throttled; a throttled request takes the stream's next slot,
//!   not an exponential backoff;
//! - a stream that has not been throttled for a while probes up ([`PROBE`]), in case the
//!   refill grew or the measure fell short;
//! - `--max-rate N` caps every stream at N requests a second, for accounts whose buckets
//!   other tools need;
//! - throttling fails a request only when its stream has had nothing get through for the
//!   request budget (`--timeout`); from then on the stream's other requests fail at once,
//!   so that a lasting throttle ends the run within that budget, not one budget per request.
//!
//! The SDK retries what else is transient (with its backoff and `--max-attempts`); throttled
//! answers it hands back at once ([`ThrottlingIsPaced`]), since they are the pacer's to act on.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_sdk_ec2::config::retry::RetryConfig;
use aws_smithy_runtime_api::client::interceptors::context::InterceptorContext;
use aws_smithy_runtime_api::client::retries::ErrorKind;
use aws_smithy_runtime_api::client::retries::classifiers::{
    ClassifyRetry, RetryAction, RetryClassifierPriority, RetryReason,
};

use super::budget::{Budget, Gate, Turn};
use crate::error::Error;

/// The reads made once per image or snapshot (launch permissions, create-volume
/// permissions, whether the Recycle Bin holds an image just deregistered): EC2 meters its
/// non-mutating actions from one bucket, so they are one stream with one learned rate. Two
/// streams on one bucket would each learn half its refill, and the one left alone would crawl.
pub const PER_ITEM_READS: &str =
    "per-image read (DescribeImageAttribute, DescribeSnapshotAttribute, ListImagesInRecycleBin)";

/// How far back the refill is measured: long enough for a tight measure, short enough to
/// follow an account whose other tools start or stop drawing on the bucket.
const WINDOW: Duration = Duration::from_secs(10);

/// How fast a stream that has not been throttled probes up: this share of its rate, a second.
const PROBE: f64 = 0.05;

/// The streams of one client, by action.
#[derive(Debug)]
pub struct Streams {
    streams: Mutex<HashMap<&'static str, Arc<Stream>>>,
    /// `--max-rate`: requests a second per stream.
    max_rate: Option<f64>,
    /// `--max-attempts`, when given (for what the SDK retries: transient errors).
    max_attempts: Option<u32>,
    /// The run's requests made at once: a paced request takes a slot once its pace lets it go.
    requests: Arc<Budget>,
    /// How long a stream may go with nothing getting through before its requests fail.
    budget: Duration,
}

/// One action's requests to one account and region.
#[derive(Debug)]
pub struct Stream {
    action: &'static str,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// When the next request may go.
    next_slot: Instant,
    /// Moments the bucket was found empty (a throttled answer), at most one a second, over
    /// the last [`WINDOW`] (and the newest always); none until the first throttle.
    empty: VecDeque<Empty>,
    /// The refill measured at the last throttle, requests a second.
    refill: Option<f64>,
    /// When the stream was last throttled.
    last_throttle: Option<Instant>,
    /// When a request of the stream last got through (or the first one was sent).
    last_success: Option<Instant>,
    stuck: bool,
}

/// A moment the bucket was empty, and the requests sent since that got through: the refill
/// paid for each of them.
#[derive(Debug)]
struct Empty {
    at: Instant,
    through: u32,
}

impl State {
    fn new(now: Instant) -> State {
        State {
            next_slot: now,
            empty: VecDeque::new(),
            refill: None,
            last_throttle: None,
            last_success: None,
            stuck: false,
        }
    }

    /// A request sent at `sent` got through. (Counted by when it was sent: one sent before
    /// an empty moment may have been let in before it, paid by the burst.)
    fn got_through(&mut self, sent: Instant) {
        for empty in self.empty.iter_mut().filter(|e| e.at <= sent) {
            empty.through = empty.through.saturating_add(1);
        }
    }

    /// A throttled answer: the bucket is empty now. Measures the refill since the oldest
    /// such moment in the window.
    fn throttled(&mut self, now: Instant) {
        self.last_throttle = Some(now);
        if self
            .empty
            .back()
            .is_none_or(|e| now.duration_since(e.at) >= Duration::from_secs(1))
        {
            self.empty.push_back(Empty { at: now, through: 0 });
        }
        while self.empty.len() > 1 && self.empty.front().is_some_and(|e| now.duration_since(e.at) > WINDOW) {
            self.empty.pop_front();
        }
        let oldest = &self.empty[0];
        let elapsed = now.duration_since(oldest.at).as_secs_f64();
        if elapsed > 0.0 {
            // Give or take one token: round up, so that the bucket stays empty.
            self.refill = Some(f64::from(oldest.through + 1) / elapsed);
        }
    }

    /// The stream's rate now: none before its first throttle measured anything; the
    /// measured refill after, probing up once it has been quiet for half the window.
    fn rate(&self, now: Instant) -> Option<f64> {
        let refill = self.refill?;
        let quiet = self
            .last_throttle
            .map_or(0.0, |at| now.duration_since(at).as_secs_f64());
        let probing = (quiet - WINDOW.as_secs_f64() / 2.0).max(0.0);
        Some(refill * (1.0 + PROBE * probing).min(2.0))
    }

    /// When a request may go, taking its slot.
    fn slot(&mut self, now: Instant, max_rate: Option<f64>) -> Instant {
        let rate = match (self.rate(now), max_rate) {
            (Some(learned), Some(max)) => Some(learned.min(max)),
            (learned, max) => learned.or(max),
        };
        let Some(rate) = rate.filter(|r| *r > 0.0) else {
            return now;
        };
        let at = self.next_slot.max(now);
        self.next_slot = at + Duration::from_secs_f64(1.0 / rate);
        at
    }
}

impl Streams {
    pub fn new(max_rate: Option<f64>, max_attempts: Option<u32>, budget: Duration, requests: Arc<Budget>) -> Streams {
        Streams {
            streams: Mutex::new(HashMap::new()),
            max_rate,
            max_attempts,
            budget,
            requests,
        }
    }

    /// Where this account and region's requests take their slots among the run's.
    pub fn gate(&self, turn: Turn) -> Gate {
        self.requests.gate(turn)
    }

    /// The stream of an action (made on first use).
    pub fn of(&self, action: &'static str) -> Arc<Stream> {
        let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(streams.entry(action).or_insert_with(|| {
            Arc::new(Stream {
                action,
                state: Mutex::new(State::new(Instant::now())),
            })
        }))
    }

    /// Forgets every stream's rate: for an account and region done with (see `Ec2::forget`).
    pub fn clear(&self) {
        *self.streams.lock().unwrap_or_else(PoisonError::into_inner) = HashMap::new();
    }

    /// The configuration of one request of a stream: the SDK retries transient errors and
    /// hands throttled answers back to the pacer.
    fn config(&self) -> aws_sdk_ec2::config::Builder {
        aws_sdk_ec2::config::Builder::default()
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(self.max_attempts.unwrap_or(super::retry::DEFAULT_MAX_ATTEMPTS)),
            )
            .retry_classifier(ThrottlingIsPaced)
    }

    /// Waits for the stream's slot and says when that was; fails at once when the stream
    /// is stuck.
    async fn before(&self, stream: &Stream) -> Result<Instant, Error> {
        let wait = {
            let mut state = stream.state.lock().unwrap_or_else(PoisonError::into_inner);
            if state.stuck {
                return Err(self.stuck_error(stream));
            }
            let now = Instant::now();
            // The budget counts from the stream's first request.
            state.last_success.get_or_insert(now);
            state.slot(now, self.max_rate) - now
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(Instant::now())
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
            let sent_at = self.before(stream).await?;
            let slot = Arc::clone(&self.requests).slot(Turn::GoesOn).await;
            let answer = send(self.config()).await;
            drop(slot);
            match self.settle(stream, sent_at, answer) {
                Err(err) if is_throttling_or_silence(&err) && !stream.is_stuck() => {
                    tracing::debug!(action = stream.action, "throttled, but the stream moves: again ({err})");
                }
                other => return other,
            }
        }
    }

    /// Records how a request ended. A failure that throttling (or no answer) can explain,
    /// with nothing of the stream getting through for the whole budget, makes the stream
    /// stuck, and becomes an error that says so.
    fn settle<T>(&self, stream: &Stream, sent: Instant, result: Result<T, Error>) -> Result<T, Error> {
        let now = Instant::now();
        let mut state = stream.state.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(value) => {
                state.got_through(sent);
                state.last_success = Some(now);
                state.stuck = false;
                Ok(value)
            }
            Err(err) if is_throttling_or_silence(&err) => {
                if is_throttling(&err) {
                    state.throttled(now);
                    tracing::debug!(action = stream.action, rate = ?state.rate(now), "throttled");
                }
                if state
                    .last_success
                    .is_some_and(|at| now.duration_since(at) >= self.budget)
                {
                    state.stuck = true;
                    return Err(self.stuck_error(stream));
                }
                Err(err)
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

impl Stream {
    fn is_stuck(&self) -> bool {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).stuck
    }
}

/// Throttled answers of paced requests are not the SDK's to retry (with its backoff): the
/// stream's pacer resends them at its next slot.
#[derive(Debug, Default)]
struct ThrottlingIsPaced;

impl ClassifyRetry for ThrottlingIsPaced {
    fn classify_retry(&self, _ctx: &InterceptorContext) -> RetryAction {
        RetryAction::NoActionIndicated
    }

    fn classify_retry_v2(&self, _ctx: &InterceptorContext, previous: &RetryAction) -> RetryAction {
        match previous {
            RetryAction::RetryIndicated(RetryReason::RetryableError {
                kind: ErrorKind::ThrottlingError,
                ..
            }) => RetryAction::RetryForbidden,
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "amictl: throttling is the pacer's"
    }

    fn priority(&self) -> RetryClassifierPriority {
        // After every other classifier, the SDK's and amictl's.
        RetryClassifierPriority::run_after(RetryClassifierPriority::run_after(
            RetryClassifierPriority::transient_error_classifier(),
        ))
    }
}

fn is_throttling(err: &Error) -> bool {
    err.aws_code().is_some_and(super::retry::is_throttling_code)
}

/// Throttling, or a request that ran out of time (waiting for its turn counts). Not a
/// refused connection: nothing listens there, and that is final.
fn is_throttling_or_silence(err: &Error) -> bool {
    match err {
        Error::Unreachable { detail, .. } => detail == super::errors::NO_ANSWER_IN_TIME,
        other => is_throttling(other),
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

    fn seconds(s: f64) -> Duration {
        Duration::from_secs_f64(s)
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

    /// `n` requests sent at `sent` that got through.
    fn through(state: &mut State, sent: Instant, n: u32) {
        for _ in 0..n {
            state.got_through(sent);
        }
    }

    #[test]
    fn the_burst_goes_unpaced_and_the_first_throttles_bring_the_rate_down_to_the_refill() {
        let t0 = Instant::now();
        let mut state = State::new(t0);
        for _ in 0..100 {
            assert_eq!(state.slot(t0, None), t0, "no wait before the first throttle");
            state.got_through(t0);
        }

        state.throttled(t0 + seconds(0.01));
        assert_eq!(
            state.rate(t0 + seconds(0.01)),
            None,
            "one empty moment measures nothing yet"
        );
        through(&mut state, t0, 3);
        state.throttled(t0 + seconds(0.11));
        let early = state.rate(t0 + seconds(0.11)).unwrap();
        assert!(
            (early - 10.0).abs() < 0.01,
            "one token in 0.1 s; the burst's late answers don't count: {early}"
        );

        // A bucket refilling at 5 a second: 5 through a second, a throttle now and then.
        for tenth in 2..=40 {
            let at = t0 + seconds(0.01 + f64::from(tenth) / 10.0);
            if tenth % 2 == 0 {
                state.got_through(at);
            } else {
                state.throttled(at);
            }
        }
        let rate = state.rate(t0 + seconds(4.01)).unwrap();
        assert!((5.0..5.5).contains(&rate), "a hair over the refill: {rate}");
    }

    #[test]
    fn a_quiet_stream_probes_up_and_max_rate_caps_it() {
        let t0 = Instant::now();
        let mut state = State::new(t0);
        state.throttled(t0);
        through(&mut state, t0, 9);
        state.throttled(t0 + seconds(2.0));
        assert!((state.rate(t0 + seconds(2.0)).unwrap() - 5.0).abs() < 0.01);
        assert!(
            (state.rate(t0 + seconds(7.0)).unwrap() - 5.0).abs() < 0.01,
            "quiet, not for long"
        );
        let later = state.rate(t0 + seconds(11.0)).unwrap();
        assert!((later - 6.0).abs() < 0.01, "20% up after 4 more quiet seconds: {later}");
        assert!(
            (state.rate(t0 + seconds(600.0)).unwrap() - 10.0).abs() < 0.01,
            "at most twice"
        );

        let first = state.slot(t0 + seconds(11.0), Some(2.0));
        let second = state.slot(t0 + seconds(11.0), Some(2.0));
        assert_eq!(second - first, seconds(0.5), "--max-rate 2 wins over the learned 6");
    }

    #[test]
    fn an_old_empty_moment_leaves_the_window() {
        let t0 = Instant::now();
        let mut state = State::new(t0);
        state.throttled(t0);
        through(&mut state, t0, 100);
        state.throttled(t0 + seconds(5.0));
        // The bucket got slower (another tool draws on it): 1 a second from here.
        through(&mut state, t0 + seconds(5.0), 10);
        state.throttled(t0 + seconds(15.0));
        through(&mut state, t0 + seconds(15.0), 5);
        state.throttled(t0 + seconds(20.0));
        let rate = state.rate(t0 + seconds(20.0)).unwrap();
        assert!((rate - 1.2).abs() < 0.01, "measured over the last 10 s: {rate}");
    }

    #[test]
    fn a_stream_with_nothing_through_for_the_budget_is_stuck_and_fails_at_once() {
        let streams = Streams::new(None, None, Duration::ZERO, Budget::new(1));
        let stream = streams.of("DeregisterImage");
        stream.state.lock().unwrap().last_success = Some(Instant::now());

        let first = streams.settle::<()>(&stream, Instant::now(), Err(aws("RequestLimitExceeded")));
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
            streams.settle(&stream, Instant::now(), Ok(())).is_ok(),
            "anything getting through unsticks it"
        );
        assert!(!stream.is_stuck());
    }
}
