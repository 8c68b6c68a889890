//! A ring-buffer record as the BPF side would write it (any bytes: an object from another
//! build, a corrupt record).
#![no_main]
use libfuzzer_sys::fuzz_target;
use notify::stream::decode::decode;

fuzz_target!(|data: &[u8]| {
    let _ = decode(data);
});
