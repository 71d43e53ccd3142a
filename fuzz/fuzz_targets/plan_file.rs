//! Plan files (`cleanup --save-plan` / `--apply-plan`): whatever a file holds, reading it
//! and checking it again must not panic, and a plan reads back as it was written.
#![no_main]

use amictl::pipeline::plan;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut saved) = serde_json::from_slice::<plan::Plan>(data) else {
        return;
    };
    let written = serde_json::to_string(&saved).expect("a plan serializes");
    let read_back: plan::Plan = serde_json::from_str(&written).expect("a written plan reads back");
    assert_eq!(read_back, saved);
    let _ = plan::recheck(&saved, &plan::Inventory::default(), jiff::Timestamp::UNIX_EPOCH);
    saved.summarize(0.05);
    let _ = saved.has_work();
});
