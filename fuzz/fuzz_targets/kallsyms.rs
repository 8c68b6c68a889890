//! /proc/kallsyms text, and the probe-target question asked of it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use notify::kernel::kallsyms::Kallsyms;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let k = Kallsyms::parse(text);
    let _ = k.modules();
    for name in ["xfs_dax_notify_failure", "memory_failure", "kill_dax"] {
        let _ = k.probe_target(name);
        let _ = k.variants(name);
    }
    if let Some(first) = text.split_whitespace().nth(2) {
        let _ = k.probe_target(first);
    }
});
