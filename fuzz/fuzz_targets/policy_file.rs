//! Policy files (`cleanup --policy-file`): whatever the text, checking it must not panic,
//! and an error names a place inside the text.
#![no_main]

use amictl::policy_file::PolicyFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    match PolicyFile::parse(text) {
        Ok(file) => assert!(!file.policies.is_empty()),
        Err((offset, message)) => {
            assert!(offset <= text.len(), "offset {offset} past the end");
            assert!(!message.is_empty());
        }
    }
});
