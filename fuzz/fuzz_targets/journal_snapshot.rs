//! A whole journal as `notify journal list` reads it, with checksums that hold: the input's
//! lines become the payloads of valid frames, so the fuzzer reaches the entries' JSON and the
//! replay of states onto records instead of stopping at the CRC.
#![no_main]
use libfuzzer_sys::fuzz_target;
use notify::agent::journal::{encode_frame, encode_header, snapshot_bytes};

fuzz_target!(|data: &[u8]| {
    let mut file = encode_header(1).to_vec();
    for payload in data.split(|&b| b == b'\n') {
        file.extend(encode_frame(payload));
    }
    let snap = snapshot_bytes(&file).expect("a header the encoder wrote is valid");
    let ids: Vec<u64> = snap.records.iter().map(|r| r.id).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "records out of id order"
    );
});
