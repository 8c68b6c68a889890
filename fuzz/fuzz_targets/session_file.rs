//! A session file as `notify report` reads it: parse, then everything the report derives from
//! it (timeline, text, SVG, findings), all on the file's events.
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
});
