//! Bytes a client sends the metrics endpoint: where the head ends, the request line, and the
//! response to it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use notify::export::metrics::{
    Metrics,
    http::{head_end, parse_request, respond},
};

fuzz_target!(|data: &[u8]| {
    let end = head_end(data).unwrap_or(data.len());
    assert!(end <= data.len());
    if let Some(req) = parse_request(&data[..end]) {
        let m = Metrics::new();
        let (code, _, _) = respond(&m, &req);
        assert!([200, 404, 405, 503].contains(&code), "status {code}");
    }
});
