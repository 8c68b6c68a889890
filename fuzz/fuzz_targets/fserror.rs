//! A buffer read() from a fanotify group: FAN_FS_ERROR records with their info records.
#![no_main]
use libfuzzer_sys::fuzz_target;
use notify::probe::fserror::parse;

fuzz_target!(|data: &[u8]| {
    let _ = parse(data);
});
