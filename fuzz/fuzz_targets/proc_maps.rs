//! /proc/PID/maps and /proc/PID/stat text; the overlap of a parsed mapping with targets taken
//! from the mappings themselves stays inside both.
#![no_main]
use libfuzzer_sys::fuzz_target;
use notify::resolve::mappers::{Target, match_maps, parse_maps, parse_stat};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_stat(text);
    let entries = parse_maps(text);
    let targets: Vec<Target> = entries
        .iter()
        .take(4)
        .map(|e| Target {
            major: e.major,
            minor: e.minor,
            inode: e.inode,
            offset: e.offset.wrapping_add(e.start & 0xfff),
            length: e.end.wrapping_sub(e.start) / 2,
        })
        .collect();
    for h in match_maps(&entries, &targets) {
        assert!(h.file_lo < h.file_hi, "empty hit {h:?}");
        assert!(
            h.vma_start <= h.addr_lo && h.addr_hi <= h.vma_end,
            "hit outside its VMA {h:?}"
        );
    }
});
