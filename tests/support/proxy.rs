//! A recording, fault-injecting HTTP proxy between amictl and moto.
//!
//! It reads each request's `Action` from its query-protocol form body (EC2, Auto Scaling, STS)
//! or its `X-Amz-Target` header (SSM's JSON protocol: `AmazonSSM.GetParameters` counts as
//! `GetParameters`), counts it, and either forwards the request to moto or answers it with a
//! scripted error in the protocol's own shape. One request per
//! connection (`Connection: close`), which the SDK's HTTP client handles as a real server's.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// What the proxy does to a request instead of forwarding it.
#[derive(Debug, Clone)]
pub enum Misbehaviour {
    /// Answers with an EC2 error.
    Error { status: u16, code: String, message: String },
    /// Closes the connection without an answer.
    Drop,
    /// What an endpoint that lacks the action answers (moto: an HTML page with a 500).
    NotImplemented,
    /// Forwards the request after this long.
    Delay(Duration),
    /// Forwards the request as its first page (any `NextToken` left out), and answers with
    /// the page and the token `again`: an endpoint that repeats a page's token (EC2's XML, or
    /// a JSON service's `NextToken`).
    RepeatsItsToken,
}

/// A scripted misbehaviour for one action.
#[derive(Debug, Clone)]
pub struct Fault {
    pub what: Misbehaviour,
    /// Which requests: every `every`-th one (1: all), counting from the first.
    pub every: usize,
    /// At most this many times; `None`: as long as the proxy runs.
    pub times: Option<usize>,
    /// Requests let through untouched before the fault starts.
    pub skip: usize,
    seen: usize,
}

impl Fault {
    /// Every request of the action gets `what`.
    pub fn always(what: Misbehaviour) -> Fault {
        Fault {
            what,
            every: 1,
            times: None,
            skip: 0,
            seen: 0,
        }
    }

    /// Every `n`-th request (the 1st, the n+1-th …) gets `what`.
    pub fn every(n: usize, what: Misbehaviour) -> Fault {
        Fault {
            what,
            every: n,
            times: None,
            skip: 0,
            seen: 0,
        }
    }

    /// The first `n` requests get `what`.
    pub fn first(n: usize, what: Misbehaviour) -> Fault {
        Fault {
            what,
            every: 1,
            times: Some(n),
            skip: 0,
            seen: 0,
        }
    }

    /// Every request after the first `n` gets `what`.
    pub fn after(n: usize, what: Misbehaviour) -> Fault {
        Fault {
            skip: n,
            ..Fault::always(what)
        }
    }

    /// EC2's throttling answer.
    pub fn throttled() -> Misbehaviour {
        Misbehaviour::Error {
            status: 503,
            code: "RequestLimitExceeded".to_owned(),
            message: "Request limit exceeded.".to_owned(),
        }
    }

    /// EC2's internal error.
    pub fn internal_error() -> Misbehaviour {
        Misbehaviour::Error {
            status: 500,
            code: "InternalError".to_owned(),
            message: "An internal error has occurred".to_owned(),
        }
    }

    /// EC2's refusal for lack of permission: not worth retrying.
    pub fn unauthorized() -> Misbehaviour {
        Misbehaviour::Error {
            status: 403,
            code: "UnauthorizedOperation".to_owned(),
            message: "You are not authorized to perform this operation.".to_owned(),
        }
    }

    /// Whether this request is one to misbehave on; counts it.
    fn applies(&mut self) -> bool {
        if self.skip > 0 {
            self.skip -= 1;
            return false;
        }
        let index = self.seen;
        self.seen += 1;
        let chosen = index.is_multiple_of(self.every.max(1));
        match &mut self.times {
            Some(0) => false,
            Some(left) if chosen => {
                *left -= 1;
                true
            }
            _ => chosen,
        }
    }
}

#[derive(Default)]
struct State {
    actions: Vec<String>,
    faults: HashMap<String, Fault>,
    /// Faults for the requests of an action whose body holds a text (e.g. one account's ID).
    matching: Vec<(String, String, Fault)>,
    /// Requests of each action being answered now, and the most there ever were at once.
    in_flight: HashMap<String, (usize, usize)>,
    buckets: HashMap<String, Bucket>,
    throttled: HashMap<String, usize>,
}

/// One request being answered, counted in `State::in_flight` until dropped.
/// The key under which [`Proxy::most_at_once`] counts every action together.
pub const ALL_ACTIONS: &str = "*";

struct InFlight<'a> {
    state: &'a Mutex<State>,
    action: String,
}

impl<'a> InFlight<'a> {
    fn start(state: &'a Mutex<State>, action: &str) -> InFlight<'a> {
        let mut locked = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for key in [action, ALL_ACTIONS] {
            let (now, most) = locked.in_flight.entry(key.to_owned()).or_insert((0, 0));
            *now += 1;
            *most = (*most).max(*now);
        }
        InFlight {
            state,
            action: action.to_owned(),
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut locked = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for key in [self.action.as_str(), ALL_ACTIONS] {
            if let Some((now, _)) = locked.in_flight.get_mut(key) {
                *now -= 1;
            }
        }
    }
}

impl State {
    /// Counts a request, and says what to do to it instead of forwarding it (if anything):
    /// throttle it when its bucket is empty, else a fault scripted for it.
    fn arrived(&mut self, action: &str, body: &str) -> Option<Misbehaviour> {
        self.actions.push(action.to_owned());
        if self.buckets.get_mut(action).is_some_and(|bucket| !bucket.take()) {
            *self.throttled.entry(action.to_owned()).or_insert(0) += 1;
            return Some(Fault::throttled());
        }
        let matching = self
            .matching
            .iter_mut()
            .find(|(a, needle, _)| a == action && body.contains(needle.as_str()))
            .and_then(|(_, _, fault)| fault.applies().then(|| fault.what.clone()));
        matching.or_else(|| {
            self.faults
                .get_mut(action)
                .and_then(|fault| fault.applies().then(|| fault.what.clone()))
        })
    }
}

/// EC2's throttling of one action: a token bucket of `burst` requests refilled at `per_second`.
/// A request that finds it empty is answered `RequestLimitExceeded`, as EC2 does.
#[derive(Debug, Clone)]
struct Bucket {
    burst: f64,
    per_second: f64,
    tokens: f64,
    refilled: std::time::Instant,
}

impl Bucket {
    /// Takes a token if there is one.
    fn take(&mut self) -> bool {
        let now = std::time::Instant::now();
        let earned = now.duration_since(self.refilled).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + earned).min(self.burst);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

pub struct Proxy {
    url: String,
    state: Arc<Mutex<State>>,
}

/// EC2's actions that change nothing.
fn is_read(action: &str) -> bool {
    action.starts_with("Describe") || action.starts_with("Get") || action.starts_with("List")
}

impl Proxy {
    /// Starts a proxy in front of `upstream` (e.g. `http://127.0.0.1:5000`).
    pub fn start(upstream: &str) -> Proxy {
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (upstream, state) = (upstream.clone(), Arc::clone(&shared));
                thread::spawn(move || {
                    let _ = serve(client, &upstream, &state);
                });
            }
        });
        Proxy { url, state }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Answers `action` with an EC2 error instead of forwarding it.
    pub fn fail(&self, action: &str, fault: Fault) {
        self.lock().faults.insert(action.to_owned(), fault);
    }

    /// Answers the requests of `action` whose body contains `needle` (e.g. an account ID in an
    /// AssumeRole's RoleArn) with `fault`; the others go through.
    pub fn fail_matching(&self, action: &str, needle: &str, fault: Fault) {
        self.lock().matching.push((action.to_owned(), needle.to_owned(), fault));
    }

    /// Throttles `action` the way EC2 does: a token bucket of `burst` requests, refilled at
    /// `per_second` (a full bucket to start with).
    pub fn limit(&self, action: &str, burst: u32, per_second: f64) {
        self.lock().buckets.insert(
            action.to_owned(),
            Bucket {
                burst: f64::from(burst),
                per_second,
                tokens: f64::from(burst),
                refilled: std::time::Instant::now(),
            },
        );
    }

    /// How many requests for `action` its bucket turned away.
    pub fn throttled(&self, action: &str) -> usize {
        self.lock().throttled.get(action).copied().unwrap_or(0)
    }

    /// The most requests for `action` the proxy was answering at once ([`ALL_ACTIONS`]: of
    /// every action together).
    pub fn most_at_once(&self, action: &str) -> usize {
        self.lock().in_flight.get(action).map_or(0, |(_, most)| *most)
    }

    /// How many requests for `action` arrived (failed ones included).
    pub fn count(&self, action: &str) -> usize {
        self.lock().actions.iter().filter(|a| *a == action).count()
    }

    /// How many requests arrived, by action.
    pub fn counts(&self) -> std::collections::BTreeMap<String, usize> {
        let mut counts = std::collections::BTreeMap::new();
        for action in &self.lock().actions {
            *counts.entry(action.clone()).or_insert(0) += 1;
        }
        counts
    }

    /// Waits (up to 30 s) until `n` requests for `action` have arrived: a test's cue, rather
    /// than a guess at how long the steps before take.
    pub fn wait_for(&self, action: &str, n: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while self.count(action) < n {
            assert!(
                std::time::Instant::now() < deadline,
                "{action} was not requested {n} times"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// How many requests arrived at all.
    pub fn total(&self) -> usize {
        self.lock().actions.len()
    }

    /// Every request that could have changed something.
    pub fn mutations(&self) -> Vec<String> {
        self.lock().actions.iter().filter(|a| !is_read(a)).cloned().collect()
    }

    /// Forgets what was recorded.
    pub fn reset(&self) {
        self.lock().actions.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A request as it arrived: its head lines (without `Connection:`), its body, and its
/// `X-Amz-Target` operation if any; `None` if the client closed first.
struct Request {
    head: Vec<String>,
    body: Vec<u8>,
    target: Option<String>,
}

fn read_request(client: &TcpStream) -> std::io::Result<Option<Request>> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = Vec::new();
    let mut content_length = 0;
    let mut target = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        if line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(value) = lower.strip_prefix("content-length:") {
            content_length = value.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("x-amz-target:") {
            target = line.split_once('.').map(|(_, operation)| operation.trim().to_owned());
        }
        if !lower.starts_with("connection:") {
            head.push(line);
        }
    }
    let mut body = vec![0; content_length];
    reader.read_exact(&mut body)?;
    Ok(Some(Request { head, body, target }))
}

fn serve(client: TcpStream, upstream: &str, state: &Mutex<State>) -> std::io::Result<()> {
    let Some(Request {
        mut head,
        mut body,
        target,
    }) = read_request(&client)?
    else {
        return Ok(());
    };
    let json = target.is_some();
    let action = target
        .or_else(|| form_value(&String::from_utf8_lossy(&body), "Action"))
        .unwrap_or_default();

    let misbehaviour = state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .arrived(&action, &String::from_utf8_lossy(&body));
    let answering = InFlight::start(state, &action);
    let mut client = client;
    match misbehaviour {
        Some(Misbehaviour::Error { status, code, message }) => {
            let (content_type, answer) = error_answer(&code, &message, json, &String::from_utf8_lossy(&body));
            write!(
                client,
                "HTTP/1.1 {status} Fault\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            )?;
            return client.flush();
        }
        Some(Misbehaviour::Drop) => return client.shutdown(std::net::Shutdown::Both),
        Some(Misbehaviour::NotImplemented) => {
            let answer = "<!doctype html>\n<title>500 Internal Server Error</title>\n<h1>Internal Server Error</h1>\n";
            write!(
                client,
                "HTTP/1.1 500 INTERNAL SERVER ERROR\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            )?;
            return client.flush();
        }
        Some(Misbehaviour::Delay(pause)) => thread::sleep(pause),
        Some(Misbehaviour::RepeatsItsToken) | None => {}
    }
    let repeats = matches!(misbehaviour, Some(Misbehaviour::RepeatsItsToken));
    if repeats {
        body = as_first_page(&mut head, &body, json);
    }

    let mut server = TcpStream::connect(upstream)?;
    for line in &head {
        server.write_all(line.as_bytes())?;
    }
    server.write_all(b"Connection: close\r\n\r\n")?;
    server.write_all(&body)?;
    let mut response = Vec::new();
    server.read_to_end(&mut response)?;
    if repeats {
        response = with_token_again(&response, json);
    }
    // Tell the client this connection ends here, whatever moto said, so that it never
    // sends a second request down a connection this proxy is about to close.
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(response.len(), |p| p + 2);
    let (head, rest) = response.split_at(split);
    for line in String::from_utf8_lossy(head).split_inclusive("\r\n") {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            client.write_all(line.as_bytes())?;
        }
    }
    client.write_all(b"Connection: close\r\n")?;
    // Out of flight before the client can have the whole answer: else, on a busy machine, the
    // client's next request could arrive while this thread has yet to count this one done.
    drop(answering);
    client.write_all(rest)?;
    client.flush()
}

/// A request's body (a form, or JSON) without its `NextToken`, and its head with the length
/// that makes.
fn as_first_page(head: &mut Vec<String>, body: &[u8], json: bool) -> Vec<u8> {
    let body = if json {
        let mut request: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(body).expect("a JSON request");
        request.remove("NextToken");
        serde_json::to_vec(&request).expect("JSON")
    } else {
        let form = String::from_utf8_lossy(body);
        let first_page: Vec<&str> = form.split('&').filter(|pair| !pair.starts_with("NextToken=")).collect();
        first_page.join("&").into_bytes()
    };
    head.retain(|line| !line.to_ascii_lowercase().starts_with("content-length:"));
    head.push(format!("Content-Length: {}\r\n", body.len()));
    body
}

/// An answer with the token `again`: EC2's `<nextToken>` before its closing tag, or a JSON
/// service's `NextToken`; and the length that makes.
fn with_token_again(response: &[u8], json: bool) -> Vec<u8> {
    let text = String::from_utf8_lossy(response);
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let body = if json {
        let mut answer: serde_json::Map<String, serde_json::Value> = serde_json::from_str(body).expect("a JSON answer");
        answer.insert("NextToken".to_owned(), "again".into());
        serde_json::to_string(&answer).expect("JSON")
    } else {
        let close = body.rfind("</").expect("an XML answer");
        format!("{}<nextToken>again</nextToken>{}", &body[..close], &body[close..])
    };
    let head: Vec<&str> = head
        .split("\r\n")
        .filter(|line| !line.to_ascii_lowercase().starts_with("content-length:"))
        .collect();
    format!("{}\r\nContent-Length: {}\r\n\r\n{body}", head.join("\r\n"), body.len()).into_bytes()
}

/// An error answer in the service's own shape: JSON for the JSON services, EC2's XML for EC2,
/// the other query services' (STS, Auto Scaling) XML otherwise.
fn error_answer(code: &str, message: &str, json: bool, body: &str) -> (&'static str, String) {
    if json {
        (
            "application/x-amz-json-1.1",
            format!("{{\"__type\":\"{code}\",\"message\":\"{message}\"}}"),
        )
    } else if body.contains("Version=2016-11-15") {
        (
            "text/xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>amictl-test</RequestID></Response>"
            ),
        )
    } else {
        (
            "text/xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>amictl-test</RequestId></ErrorResponse>"
            ),
        )
    }
}

/// A value from an `application/x-www-form-urlencoded` body.
fn form_value(body: &str, key: &str) -> Option<String> {
    body.split('&')
        .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
        .map(str::to_owned)
}
