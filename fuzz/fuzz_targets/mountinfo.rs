//! /proc/self/mountinfo, as the bytes the kernel writes (a mount point need not be UTF-8).
#![no_main]
use libfuzzer_sys::fuzz_target;
use notify::kernel::mountinfo::{find, parse};

fuzz_target!(|data: &[u8]| {
    let m = parse(data);
    if let Some(first) = m.first() {
        assert!(find(&m, first.dev).is_some());
    }
});
