//! /sys/block/pmemN/badblocks: parsed ranges are non-empty and merging keeps them sorted and
//! disjoint.
#![no_main]
use libfuzzer_sys::fuzz_target;
use notify::agent::badblocks::{merge, parse, subtract};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(v) = parse(text) else {
        return;
    };
    assert!(v.iter().all(|r| r.len > 0), "an empty range parsed");
    let m = merge(v.clone());
    assert!(
        m.windows(2)
            .all(|w| w[0].start.saturating_add(w[0].len) < w[1].start),
        "merged ranges overlap or touch: {m:?}"
    );
    let _ = subtract(&v, &m[..m.len() / 2]);
});
