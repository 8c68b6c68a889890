//! Journal bytes as read back from disk: the header check, one frame, a whole scan. A frame
//! the encoder wrote must decode to its full length whenever its payload is an entry.
#![no_main]
use libfuzzer_sys::fuzz_target;
use notify::agent::journal::{check_header, decode_frame, encode_frame, scan_frames};

fuzz_target!(|data: &[u8]| {
    let _ = check_header(data);
    if let Ok((_, len)) = decode_frame(data) {
        assert!(len <= data.len(), "frame length past the buffer");
    }
    let scan = scan_frames(data, 32);
    for c in &scan.cuts {
        assert!(c.offset >= 32, "a cut before the scan's base");
    }
    let framed = encode_frame(data);
    if let Ok((_, len)) = decode_frame(&framed) {
        assert_eq!(len, framed.len(), "round trip lost bytes");
    }
});
