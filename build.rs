//! Puts the git commit into `amictl --version` when built from a checkout.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    let version = env!("CARGO_PKG_VERSION");
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map(|commit| commit.trim().to_owned())
        .filter(|commit| !commit.is_empty());
    match commit {
        Some(commit) => println!("cargo:rustc-env=AMICTL_VERSION={version} ({commit})"),
        None => println!("cargo:rustc-env=AMICTL_VERSION={version}"),
    }
}
