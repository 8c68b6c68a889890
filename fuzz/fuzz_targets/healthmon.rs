//! One record read from an XFS health monitor fd.
#![no_main]
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use notify::probe::healthmon::decode;
use notify_model::Dev;

fuzz_target!(|data: &[u8]| {
    let _ = decode(data, Dev(0x10300001), Path::new("/mnt"));
});
