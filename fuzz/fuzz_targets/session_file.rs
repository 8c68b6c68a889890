//! A session file as `notify report` reads it: parse, then everything the report derives from
//! it (timeline, text, SVG, findings), all on the file's events. A file that parses writes
//! back to one that parses to the same session (what `notify record` writes, report reads).
#![no_main]
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use notify::session::{
    findings::{FailOn, findings},
    svg::render_svg,
    text::render_text,
    timeline::Timeline,
};
use notify_model::session::SessionFile;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(s) = SessionFile::parse(text, Path::new("fuzz.json")) else {
        return;
    };
    let tl = Timeline::build(&s.events);
    let _ = render_text(&s, &tl);
    let _ = render_svg(&s, &tl);
    let _ = findings(&s, &[FailOn::Premature, FailOn::Lost, FailOn::Kill]);
    let mut out = Vec::new();
    s.write_to(&mut out).expect("writing to memory");
    let again = std::str::from_utf8(&out).expect("the writer writes UTF-8");
    let back = SessionFile::parse(again, Path::new("again.json"))
        .unwrap_or_else(|e| panic!("a written session does not parse: {e}\n{again}"));
    assert_eq!(back, s, "the session changed on a write and read");
});
