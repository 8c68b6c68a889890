//! /proc/self/mountinfo text.
#![no_main]
use libfuzzer_sys::fuzz_target;
use notify::kernel::mountinfo::{find, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let m = parse(text);
    if let Some(first) = m.first() {
        assert!(find(&m, first.dev).is_some());
    }
});
