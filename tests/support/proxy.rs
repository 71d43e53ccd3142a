//! A recording, fault-injecting HTTP proxy between amictl and moto.
//!
//! It reads each request's `Action` from its query-protocol form body, counts it, and either
//! forwards the request to moto or answers it with a scripted EC2 error. One request per
//! connection (`Connection: close`), which the SDK's HTTP client handles as a real server's.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

/// A scripted answer to an action instead of moto's.
#[derive(Debug, Clone)]
pub struct Fault {
    pub status: u16,
    pub code: String,
    pub message: String,
    /// How many requests it answers before moto answers again; `None`: all of them.
    pub times: Option<usize>,
}

#[derive(Default)]
struct State {
    actions: Vec<String>,
    faults: HashMap<String, Fault>,
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

    /// How many requests for `action` arrived (failed ones included).
    pub fn count(&self, action: &str) -> usize {
        self.lock().actions.iter().filter(|a| *a == action).count()
    }

    /// How many requests arrived at all.
    pub fn total(&self) -> usize {
        self.lock().actions.len()
    }

    /// Every request that could have changed something.
    pub fn mutations(&self) -> Vec<String> {
        self.lock()
            .actions
            .iter()
            .filter(|a| !is_read(a))
            .cloned()
            .collect()
    }

    /// Forgets what was recorded.
    pub fn reset(&self) {
        self.lock().actions.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn serve(client: TcpStream, upstream: &str, state: &Mutex<State>) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = Vec::new();
    let mut content_length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(value) = lower.strip_prefix("content-length:") {
            content_length = value.trim().parse().unwrap_or(0);
        }
        if !lower.starts_with("connection:") {
            head.push(line);
        }
    }
    let mut body = vec![0; content_length];
    reader.read_exact(&mut body)?;
    let action = form_value(&String::from_utf8_lossy(&body), "Action").unwrap_or_default();

    let fault = {
        let mut state = state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.actions.push(action.clone());
        state
            .faults
            .get_mut(&action)
            .and_then(|fault| match &mut fault.times {
                Some(0) => None,
                Some(n) => {
                    *n -= 1;
                    Some(fault.clone())
                }
                None => Some(fault.clone()),
            })
    };
    let mut client = client;
    if let Some(fault) = fault {
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{}</Code><Message>{}</Message></Error></Errors><RequestID>amictl-test</RequestID></Response>",
            fault.code, fault.message
        );
        write!(
            client,
            "HTTP/1.1 {} Fault\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
            fault.status,
            xml.len()
        )?;
        return client.flush();
    }

    let mut server = TcpStream::connect(upstream)?;
    for line in &head {
        server.write_all(line.as_bytes())?;
    }
    server.write_all(b"Connection: close\r\n\r\n")?;
    server.write_all(&body)?;
    let mut response = Vec::new();
    server.read_to_end(&mut response)?;
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
    client.write_all(rest)?;
    client.flush()
}

/// A value from an `application/x-www-form-urlencoded` body.
fn form_value(body: &str, key: &str) -> Option<String> {
    body.split('&')
        .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
        .map(str::to_owned)
}
