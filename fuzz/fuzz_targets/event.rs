//! A GitHub event payload of each kind strata reads. Any input gives an event or an
//! error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for name in ["pull_request", "push", "workflow_dispatch"] {
        let _ = strata::github::event::parse(name, data);
    }
});
