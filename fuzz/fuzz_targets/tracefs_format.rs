//! A tracepoint's format file (fields and the print format's symbol tables) and
//! available_filter_functions.
#![no_main]
use libfuzzer_sys::fuzz_target;
use notify::kernel::tracefs::{FilterFunctions, TracepointFormat};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(f) = TracepointFormat::parse("g", "n", text) {
        for field in &f.fields {
            let _ = f.symbols(&field.name);
            let _ = f.field_offset(&field.name);
        }
        let _ = f.symbols("type");
    }
    let ff = FilterFunctions::parse(text);
    let _ = ff.module_of("xfs_dax_notify_failure");
});
