//! A small instance metadata service (IMDSv2): a session token first, then the instance ID
//! and region documents, as EC2's link-local service serves them.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::thread;

const TOKEN: &str = "amictl-test-imds-token";

pub struct Metadata {
    url: String,
}

impl Metadata {
    /// Serves `instance_id` and `region` to clients that fetched a token first.
    pub fn start(instance_id: &str, region: &str) -> Metadata {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the metadata service");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let (instance_id, region) = (instance_id.to_owned(), region.to_owned());
        thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().expect("clone the stream"));
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                let mut has_token = false;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if lower.starts_with("x-aws-ec2-metadata-token:") && line.contains(TOKEN) {
                        has_token = true;
                    }
                }
                let mut parts = request_line.split_whitespace();
                let (method, path) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
                let (status, body) = match (method, path) {
                    ("PUT", "/latest/api/token") => ("200 OK", TOKEN.to_owned()),
                    (_, _) if !has_token => ("401 Unauthorized", String::new()),
                    ("GET", "/latest/meta-data/instance-id") => ("200 OK", instance_id.clone()),
                    ("GET", "/latest/meta-data/placement/region") => ("200 OK", region.clone()),
                    _ => ("404 Not Found", String::new()),
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nx-aws-ec2-metadata-token-ttl-seconds: 21600\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Metadata { url }
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}
