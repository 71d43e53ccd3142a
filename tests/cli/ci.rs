//! At home in CI: the GitHub Action's install script against a local release server, the
//! action's definition, and the workflows of docs/ci.md.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Scratch, python};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A static file server on 127.0.0.1 (Python's, from the test venv), stopped when dropped.
struct FileServer {
    url: String,
    child: Child,
}

impl FileServer {
    fn serve(dir: &Path) -> FileServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(python())
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python's http.server");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the file server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        FileServer {
            url: format!("http://127.0.0.1:{port}"),
            child,
        }
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The runner's platform as GitHub names it, and the release target it means.
fn platform() -> (&'static str, &'static str, String) {
    let (os, os_part) = match std::env::consts::OS {
        "macos" => ("macOS", "apple-darwin"),
        _ => ("Linux", "unknown-linux-gnu"),
    };
    let (arch, arch_part) = match std::env::consts::ARCH {
        "aarch64" => ("ARM64", "aarch64"),
        _ => ("X64", "x86_64"),
    };
    (os, arch, format!("{arch_part}-{os_part}"))
}

/// A release as .github/workflows/release.yml makes it: `VERSION/amictl-VERSION-TARGET.tar.gz`
/// holding `amictl-VERSION-TARGET/amictl` (here the test binary), and its `.sha256`, whose
/// checksum is `checksum` or, for `None`, the archive's own.
fn publish(releases: &Path, version: &str, checksum: Option<&str>) {
    let (_, _, target) = platform();
    let name = format!("amictl-{version}-{target}");
    let dir = releases.join(version);
    std::fs::create_dir_all(dir.join(&name)).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_amictl"), dir.join(&name).join("amictl")).unwrap();
    let archive = format!("{name}.tar.gz");
    let packed = Command::new("tar")
        .args(["czf", &archive, &name])
        .current_dir(&dir)
        .status()
        .expect("tar");
    assert!(packed.success());
    let digest = Command::new("sha256sum")
        .arg(&archive)
        .current_dir(&dir)
        .output()
        .expect("sha256sum");
    let line = String::from_utf8(digest.stdout).unwrap();
    let line = match checksum {
        Some(wrong) => format!("{wrong}  {archive}\n"),
        None => line,
    };
    std::fs::write(dir.join(format!("{archive}.sha256")), line).unwrap();
}

/// Runs scripts/install as the action does, against `url`, into `scratch/VERSION`, with a
/// PATH of the system's tools only (no `gh`: provenance can't be checked).
fn install(url: &str, version: &str, scratch: &Path) -> (std::process::Output, PathBuf, PathBuf) {
    install_with(url, version, scratch, &[], "/usr/bin:/bin")
}

/// scripts/install with more settings and a PATH of its own.
fn install_with(
    url: &str,
    version: &str,
    scratch: &Path,
    settings: &[(&str, &str)],
    path: &str,
) -> (std::process::Output, PathBuf, PathBuf) {
    let (os, arch, _) = platform();
    let bin = scratch.join(version).join("bin");
    let github_path = scratch.join(format!("{version}.path"));
    let output = Command::new("bash")
        .arg(Path::new(ROOT).join("scripts/install"))
        .env("AMICTL_VERSION", version)
        .env("AMICTL_DOWNLOAD_URL", url)
        .env("AMICTL_INSTALL_DIR", &bin)
        .env("GITHUB_PATH", &github_path)
        .env("RUNNER_OS", os)
        .env("RUNNER_ARCH", arch)
        .env("PATH", path)
        .env_remove("AMICTL_PROVENANCE")
        .envs(settings.iter().copied())
        .output()
        .expect("scripts/install");
    (output, bin, github_path)
}

/// A stand-in for the GitHub CLI that knows which archives the release workflow attested (their
/// SHA-256s, a line each, in `attested`), as GitHub's attestation store would: its
/// `gh attestation verify FILE --repo … --signer-workflow …` answers from that list, and it
/// writes each call to `calls`. Returns the directory to put first on PATH.
fn stub_gh(scratch: &Path, attested: &Path, calls: &Path) -> PathBuf {
    let dir = scratch.join("gh-bin");
    std::fs::create_dir_all(&dir).unwrap();
    let script = format!(
        "#!/bin/bash\n[ \"$1 $2\" = 'attestation verify' ] || exit 1\n[ \"$3\" = --help ] && exit 0\n\
         printf '%s\\n' \"$*\" >> '{calls}'\n\
         digest=$(sha256sum \"$3\" | awk '{{print $1}}')\n\
         grep -qx \"$digest\" '{attested}' && exit 0\n\
         echo \"no attestations found for $3\" >&2\nexit 1\n",
        calls = calls.display(),
        attested = attested.display()
    );
    std::fs::write(dir.join("gh"), script).unwrap();
    Command::new("chmod").arg("+x").arg(dir.join("gh")).status().unwrap();
    dir
}

/// The SHA-256 of a published archive.
fn digest_of(releases: &Path, version: &str) -> String {
    let (_, _, target) = platform();
    let archive = releases.join(version).join(format!("amictl-{version}-{target}.tar.gz"));
    let out = Command::new("sha256sum").arg(archive).output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// A release asset replaced together with its checksum passes the checksum, not the
/// provenance: the installer refuses it, installing nothing; where provenance can't be checked
/// it says so and what it did check, and `require` refuses. Tags are checked before any
/// download.
#[test]
fn the_installer_verifies_provenance_and_refuses_a_replaced_release() {
    let scratch = Scratch::new("provenance");
    let releases = scratch.path().join("releases");
    publish(&releases, "v9.9.9", None);
    publish(&releases, "v9.9.6", None); // replaced: archive and checksum agree, nobody attested it
    let attested = scratch.path().join("attested");
    std::fs::write(&attested, format!("{}\n", digest_of(&releases, "v9.9.9"))).unwrap();
    let calls = scratch.path().join("calls");
    let gh = stub_gh(scratch.path(), &attested, &calls);
    let with_gh = format!("{}:/usr/bin:/bin", gh.display());
    let server = FileServer::serve(&releases);
    let said = |output: &std::process::Output| String::from_utf8_lossy(&output.stderr).into_owned();

    let (genuine, bin, _) = install_with(&server.url, "v9.9.9", scratch.path(), &[], &with_gh);
    assert!(genuine.status.success(), "{}", said(&genuine));
    assert!(
        said(&genuine).contains("provenance: attested by amictl/amictl's release workflow"),
        "{}",
        said(&genuine)
    );
    assert!(bin.join("amictl").exists());
    let asked = std::fs::read_to_string(&calls).unwrap();
    assert!(
        asked.contains("--repo amictl/amictl --signer-workflow amictl/amictl/.github/workflows/release.yml"),
        "{asked}"
    );

    let (replaced, replaced_bin, _) = install_with(&server.url, "v9.9.6", scratch.path(), &[], &with_gh);
    assert_eq!(replaced.status.code(), Some(1), "{}", said(&replaced));
    assert!(
        said(&replaced).contains("has no valid attestation"),
        "{}",
        said(&replaced)
    );
    assert!(!replaced_bin.join("amictl").exists(), "nothing installed");

    let (unchecked, _, _) = install(&server.url, "v9.9.6", scratch.path());
    assert!(unchecked.status.success(), "{}", said(&unchecked));
    assert!(
        said(&unchecked)
            .contains("provenance not checked: the GitHub CLI (gh) is not installed; verified only the SHA-256"),
        "{}",
        said(&unchecked)
    );
    let elsewhere = scratch.path().join("required");
    let (required, required_bin, _) = install_with(
        &server.url,
        "v9.9.9",
        &elsewhere,
        &[("AMICTL_PROVENANCE", "require")],
        "/usr/bin:/bin",
    );
    assert_eq!(required.status.code(), Some(1));
    assert!(
        said(&required).contains("could not check the provenance"),
        "{}",
        said(&required)
    );
    assert!(!required_bin.join("amictl").exists(), "nothing installed");

    for bad in ["v1.2", "v1.2.3/../../x", "v1.2.3?x=1", "v01.2.3", "v1.2.3-", "1.2.3"] {
        let (refused, _, _) = install(&server.url, bad, scratch.path());
        assert_eq!(refused.status.code(), Some(1), "{bad}");
        assert!(
            said(&refused).contains("not a release tag"),
            "{bad}: {}",
            said(&refused)
        );
    }
}

#[test]
fn the_install_script_verifies_the_checksum_and_puts_amictl_on_the_path() {
    let scratch = Scratch::new("install");
    let releases = scratch.path().join("releases");
    publish(&releases, "v9.9.9", None);
    publish(&releases, "v9.9.8", Some(&"0".repeat(64)));
    let server = FileServer::serve(&releases);

    let (good, bin, github_path) = install(&server.url, "v9.9.9", scratch.path());
    let (bad, bad_bin, _) = install(&server.url, "v9.9.8", scratch.path());
    let (missing, _, _) = install(&server.url, "v9.9.7", scratch.path());
    let (branch, _, _) = install(&server.url, "main", scratch.path());

    assert!(good.status.success(), "{}", String::from_utf8_lossy(&good.stderr));
    let version = Command::new(bin.join("amictl")).arg("--version").output().unwrap();
    let ours = Command::new(env!("CARGO_BIN_EXE_amictl"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(version.stdout, ours.stdout, "the released binary runs");
    let on_path = std::fs::read_to_string(github_path).unwrap();
    assert_eq!(on_path.trim(), bin.to_str().unwrap(), "added to GITHUB_PATH");

    assert_eq!(bad.status.code(), Some(1));
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(said.contains("checksum mismatch"), "{said}");
    assert!(!bad_bin.join("amictl").exists(), "nothing installed on a bad checksum");
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("could not download"));
    assert_eq!(branch.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&branch.stderr).contains("not a release tag"));
}

/// Parses YAML documents with PyYAML (from the test venv) into JSON.
fn yaml(documents: &[String]) -> Vec<serde_json::Value> {
    let script = "import json, sys, yaml\nprint(json.dumps([yaml.safe_load(d) for d in json.load(sys.stdin)]))";
    let mut child = Command::new(python())
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python");
    serde_json::to_writer(child.stdin.take().unwrap(), documents).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "not YAML: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn the_action_installs_with_the_script_and_runs_args_only_when_given() {
    let text = std::fs::read_to_string(Path::new(ROOT).join("action.yml")).unwrap();
    let action = &yaml(&[text])[0];

    assert_eq!(action["runs"]["using"], "composite");
    assert!(action["inputs"]["version"].is_object() && action["inputs"]["args"].is_object());
    let steps = action["runs"]["steps"].as_array().unwrap();
    assert!(
        steps[0]["run"]
            .as_str()
            .unwrap()
            .contains("$GITHUB_ACTION_PATH/scripts/install"),
        "{}",
        steps[0]
    );
    assert!(Path::new(ROOT).join("scripts/install").exists());
    assert_eq!(steps[1]["if"], "inputs.args != ''");
}

#[test]
fn the_workflows_in_docs_ci_are_valid_yaml_using_the_action() {
    let text = std::fs::read_to_string(Path::new(ROOT).join("docs/ci.md")).unwrap();
    let blocks: Vec<String> = text
        .split("```yaml\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap().to_owned())
        .collect();
    // Every block parses; those with jobs are whole workflows.
    let workflows: Vec<serde_json::Value> = yaml(&blocks).into_iter().filter(|b| b.get("jobs").is_some()).collect();
    assert!(workflows.len() >= 2, "two workflows at least");

    for workflow in workflows {
        // PyYAML reads the key `on` as true (YAML 1.1); GitHub reads it as `on`.
        assert!(
            workflow.get("on").or_else(|| workflow.get("true")).is_some(),
            "{workflow}"
        );
        let jobs = workflow["jobs"].as_object().expect("jobs");
        let uses_action = jobs.values().any(|job| {
            job["steps"].as_array().is_some_and(|steps| {
                steps
                    .iter()
                    .any(|s| s["uses"].as_str().is_some_and(|u| u.starts_with("amictl/amictl@")))
            })
        });
        assert!(uses_action, "each workflow installs amictl with the action: {workflow}");
    }
}

/// The action's run step, run as GitHub runs a `shell: bash` step (the script in a file,
/// `bash --noprofile --norc -eo pipefail`), with `AMICTL_ARGS` as the input, against a stub
/// `amictl` on PATH that writes each argument it gets on a line of its own.
fn run_step(args: &str, scratch: &Path) -> (std::process::Output, Vec<String>, PathBuf) {
    let text = std::fs::read_to_string(Path::new(ROOT).join("action.yml")).unwrap();
    let action = &yaml(&[text])[0];
    let step = action["runs"]["steps"][1]["run"].as_str().unwrap().to_owned();
    let bin = scratch.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let received = scratch.join("received");
    let stub = bin.join("amictl");
    std::fs::write(
        &stub,
        format!(
            "#!/usr/bin/env bash\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > '{}'\n",
            received.display()
        ),
    )
    .unwrap();
    Command::new("chmod").arg("+x").arg(&stub).status().unwrap();
    let script = scratch.join("step.sh");
    std::fs::write(&script, step).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let output = Command::new("bash")
        .args(["--noprofile", "--norc", "-eo", "pipefail"])
        .arg(&script)
        .env("AMICTL_ARGS", args)
        .env("PATH", path)
        .current_dir(scratch)
        .output()
        .expect("bash");
    let got = std::fs::read_to_string(&received)
        .map(|t| t.lines().map(str::to_owned).collect())
        .unwrap_or_default();
    (output, got, scratch.join("pwned"))
}

/// A branch name or pull request title in `args` can't run anything: quoting works as a user
/// expects, and `;`, `$(…)`, backticks and `$VAR` reach amictl as the text they are.
#[test]
fn the_action_passes_args_to_amictl_without_running_anything_in_them() {
    let scratch = Scratch::new("action-args");
    let hostile = "describe --name 'web *' --tag \"team=a b\" x;touch pwned $(touch pwned) `touch pwned` $HOME";

    let (output, got, pwned) = run_step(hostile, scratch.path());

    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(
        got,
        [
            "describe", "--name", "web *", "--tag", "team=a b", "x;touch", "pwned", "$(touch", "pwned)", "`touch",
            "pwned`", "$HOME",
        ]
    );
    assert!(!pwned.exists(), "nothing in the value was run");

    // An unmatched quote fails the step, naming it, and amictl is not run.
    std::fs::remove_file(scratch.path().join("received")).unwrap();
    let (broken, got, _) = run_step("describe --name 'web", scratch.path());
    let said = String::from_utf8_lossy(&broken.stderr);
    assert!(!broken.status.success() && said.contains("quote"), "{said}");
    assert!(got.is_empty(), "amictl was not run: {got:?}");
}
