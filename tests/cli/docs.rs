//! docs/json-output.md held against real output: the fields it documents for each command are
//! exactly the fields that command prints.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::support::TestEnv;
use crate::support::proxy::{Fault, Proxy};

/// Section heading (the command, e.g. "describe") to the paths its table lists.
fn documented() -> BTreeMap<String, BTreeSet<String>> {
    let doc = include_str!("../../docs/json-output.md");
    let mut sections: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut current = None;
    for line in doc.lines() {
        if let Some(heading) = line.strip_prefix("## `") {
            current = heading.split('`').next().map(str::to_owned);
        } else if let (Some(section), Some(row)) = (&current, line.strip_prefix("| `")) {
            let path = row.split('`').next().unwrap_or_default().to_owned();
            sections.entry(section.clone()).or_default().insert(path);
        }
    }
    sections
}

/// Every path in a JSON document, as the doc writes them. Tag maps are leaves: their keys
/// are the user's.
fn paths(value: &Value, prefix: &str, into: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                into.insert(path.clone());
                if key != "tags" {
                    paths(child, &path, into);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                paths(item, &format!("{prefix}[]"), into);
            }
        }
        _ => {}
    }
}

fn printed(documents: &[Value]) -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    for document in documents {
        paths(document, "", &mut all);
    }
    all
}

/// What `policy check` prints (offline: the endpoint is never asked).
fn checked() -> Value {
    let policies = std::env::temp_dir().join(format!("amictl-doc-{}.toml", std::process::id()));
    std::fs::write(&policies, "[policies.web]\nname = \"web-*\"\n\n[orphans]\n").unwrap();
    let checked = TestEnv::amictl_at("http://127.0.0.1:9")
        .args(["policy", "check", policies.to_str().unwrap(), "-o", "json"])
        .run()
        .assert_code(0)
        .json();
    let _ = std::fs::remove_file(&policies);
    checked
}

/// What `copy` prints. Copies go to other regions: a server of their own spares the other tests'.
fn copied() -> Value {
    let env = TestEnv::on_its_own_server();
    let source = env.create_image(&env.run_instance(None), "doc-6", &[]);
    env.amictl()
        .args(["-o", "json", "copy", &source, "--to-regions", "eu-west-1"])
        .run()
        .assert_code(0)
        .json()
}

/// `usage` of an image shared with a member account that runs it, as the owner does: every
/// field.
fn used() -> Value {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let image = env.create_image(&instance, "doc-9", &[]);
    env.share_image(&image, "111111111111");
    env.as_role("arn:aws:iam::111111111111:role/app")
        .run_instance_from(&image);
    env.run_instance_from(&image);
    env.amictl()
        .args([
            "usage",
            &image,
            "--accounts",
            "111111111111",
            "--role-name",
            "reader",
            "-o",
            "json",
        ])
        .run()
        .assert_code(0)
        .json()
}

/// A publish to one template that works and one that doesn't: every field.
fn published() -> Value {
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let old = env.create_image(&instance, "doc-7", &[]);
    let new = env.create_image(&instance, "doc-8", &[]);
    env.create_launch_template("doc-pub", &old);
    env.amictl()
        .args(["-o", "json", "publish", &new, "--launch-template", "doc-pub"])
        .args(["--launch-template", "doc-gone"])
        .run()
        .assert_code(1)
        .json()
}

#[test]
fn the_json_output_doc_lists_exactly_the_fields_each_command_prints() {
    let docs = documented();
    let env = TestEnv::new();
    let instance = env.run_instance(None);
    let image = env.create_image(&instance, "doc-1", &[("team", "web")]);

    let described = env
        .amictl()
        .args(["describe", "-o", "json"])
        .run()
        .assert_code(0)
        .json();
    let created = env
        .amictl()
        .args(["-o", "json", "create", "--instance-id", &instance])
        .args(["--name", "doc-2", "--no-reboot"])
        .run()
        .assert_code(0)
        .json();
    let shown = env
        .amictl()
        .args([
            "permissions",
            "add",
            &image,
            "--account",
            "111122223333",
            "--snapshots",
            "-o",
            "json",
        ])
        .run()
        .assert_code(0)
        .json();
    let staged = env
        .amictl()
        .args(["protect", &image, "-o", "json"])
        .run()
        .assert_code(0)
        .json();
    env.amictl().args(["unprotect", &image]).run().assert_code(0);
    let deregistered = env
        .amictl()
        .args(["deregister", &image, "--include-shared", "-o", "json"])
        .run()
        .assert_code(0)
        .json();
    let cleaned = cleanup_showing_every_field(&env, &instance);

    for (section, documents) in [
        ("copy", vec![copied()]),
        ("policy check", vec![checked()]),
        ("describe", vec![described]),
        ("create", vec![created]),
        ("permissions", vec![shown]),
        ("deprecate", vec![staged]),
        ("deregister", vec![deregistered, cleaned]),
        ("publish", vec![published()]),
        ("usage", vec![used()]),
    ] {
        let documented = docs
            .get(section)
            .unwrap_or_else(|| panic!("docs/json-output.md has no `{section}` section"));
        let printed = printed(&documents);
        let undocumented: Vec<&String> = printed.difference(documented).collect();
        let unprinted: Vec<&String> = documented.difference(&printed).collect();
        assert!(
            undocumented.is_empty(),
            "{section} prints fields the doc lacks: {undocumented:?}"
        );
        assert!(
            unprinted.is_empty(),
            "the doc lists {section} fields never printed: {unprinted:?}"
        );
    }
}

/// A cleanup with an orphan, an image in use, a failed deregistration and failed deletions:
/// its JSON shows every field.
fn cleanup_showing_every_field(env: &TestEnv, instance: &str) -> serde_json::Value {
    let orphaned = env.create_image(instance, "doc-3", &[]);
    env.deregister(&orphaned);
    env.create_image(instance, "doc-4", &[]);
    let used = env.create_image(instance, "doc-5", &[]);
    env.create_launch_template("doc", &used);
    let proxy = Proxy::start(&env.endpoint);
    proxy.fail("DeregisterImage", Fault::first(1, Fault::unauthorized()));
    proxy.fail("DeleteSnapshot", Fault::always(Fault::unauthorized()));
    env.through(&proxy)
        .args(["cleanup", "--all", "--orphans", "--orphans-older-than", "0s"])
        .args(["--yes", "-o", "json"])
        .run()
        .assert_code(1)
        .json()
}
