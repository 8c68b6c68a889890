//! The journal's bytes: header, frames, and the scan that finds every good frame (pure, no I/O).

use notify_model::journal::Cut;

use super::Entry;

pub const MAGIC: &[u8; 8] = b"NTFYJRNL";
pub const VERSION: u32 = 1;
pub const HEADER_LEN: u64 = 32;
pub const FRAME_MAGIC: u32 = 0x3152_4A4E;
pub(super) const FRAME_HDR: usize = 12;
/// A record is a few hundred bytes; anything near this is corruption, not data.
pub const MAX_PAYLOAD: u32 = 64 << 10;

pub fn encode_header(created_ns: u64) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[0..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
    h[16..24].copy_from_slice(&created_ns.to_le_bytes());
    let crc = crc32fast::hash(&h[0..28]);
    h[28..32].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Validate a header; `Err(detail)` says what is wrong.
pub fn check_header(h: &[u8]) -> std::result::Result<(), String> {
    if h.len() < HEADER_LEN as usize {
        return Err(format!(
            "file is {} bytes, shorter than the {HEADER_LEN}-byte header",
            h.len()
        ));
    }
    if &h[0..8] != MAGIC {
        return Err(format!(
            "magic is {:?}, expected {:?}",
            String::from_utf8_lossy(&h[0..8]),
            String::from_utf8_lossy(MAGIC)
        ));
    }
    let crc = u32::from_le_bytes(h[28..32].try_into().unwrap());
    if crc != crc32fast::hash(&h[0..28]) {
        return Err("header checksum mismatch".into());
    }
    let version = u32::from_le_bytes(h[8..12].try_into().unwrap());
    if version != VERSION {
        return Err(format!(
            "journal format version {version}, this notify reads version {VERSION}"
        ));
    }
    let hl = u32::from_le_bytes(h[12..16].try_into().unwrap());
    if hl as u64 != HEADER_LEN {
        return Err(format!("header length {hl}, expected {HEADER_LEN}"));
    }
    Ok(())
}

pub fn encode_frame(payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut h = crc32fast::Hasher::new();
    h.update(&len.to_le_bytes());
    h.update(payload);
    let mut out = Vec::with_capacity(FRAME_HDR + payload.len());
    out.extend_from_slice(&FRAME_MAGIC.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&h.finalize().to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Try to decode one frame at the start of `buf`: `Ok((entry, frame_len))` or why not.
pub fn decode_frame(buf: &[u8]) -> std::result::Result<(Entry, usize), String> {
    if buf.len() < FRAME_HDR {
        return Err(format!(
            "torn frame header ({} of {FRAME_HDR} bytes)",
            buf.len()
        ));
    }
    let magic = u32::from_le_bytes(buf[0..4].try_into().unwrap());
    if magic != FRAME_MAGIC {
        return Err(format!("bad frame magic {magic:#010x}"));
    }
    let len = u32::from_le_bytes(buf[4..8].try_into().unwrap());
    if len > MAX_PAYLOAD {
        return Err(format!("frame length {len} exceeds {MAX_PAYLOAD}"));
    }
    let total = FRAME_HDR + len as usize;
    if buf.len() < total {
        return Err(format!(
            "torn frame: header says {len} payload bytes, {} present",
            buf.len() - FRAME_HDR
        ));
    }
    let crc = u32::from_le_bytes(buf[8..12].try_into().unwrap());
    let mut h = crc32fast::Hasher::new();
    h.update(&buf[4..8]);
    h.update(&buf[FRAME_HDR..total]);
    if h.finalize() != crc {
        return Err("frame checksum mismatch".into());
    }
    let entry: Entry = serde_json::from_slice(&buf[FRAME_HDR..total])
        .map_err(|e| format!("checksum ok but payload does not decode: {e}"))?;
    Ok((entry, total))
}

/// Result of scanning the frames after the header.
#[derive(Debug, Default)]
pub struct Scan {
    /// (absolute offset, frame length, entry) of every good frame, in order.
    pub good: Vec<(u64, usize, Entry)>,
    pub cuts: Vec<Cut>,
}

/// Scan `data` (the bytes after the header, starting at absolute offset `base`). On a bad frame,
/// resynchronise: look for the next offset where a whole valid frame decodes. Everything in
/// between is one cut. A bad region running to the end is the torn/corrupt tail.
pub fn scan_frames(data: &[u8], base: u64) -> Scan {
    let mut s = Scan::default();
    let mut pos = 0usize;
    while pos < data.len() {
        match decode_frame(&data[pos..]) {
            Ok((e, n)) => {
                s.good.push((base + pos as u64, n, e));
                pos += n;
            }
            Err(why) => {
                let magic = FRAME_MAGIC.to_le_bytes();
                let next = (pos + 1..data.len().saturating_sub(FRAME_HDR - 1))
                    .filter(|&p| data[p..p + 4] == magic)
                    .find(|&p| decode_frame(&data[p..]).is_ok())
                    .unwrap_or(data.len());
                let tail = next == data.len();
                s.cuts.push(Cut {
                    offset: base + pos as u64,
                    len: (next - pos) as u64,
                    reason: if tail {
                        format!("{why}; cut to the end of the file")
                    } else {
                        format!("{why}; resynchronised at the next valid record")
                    },
                });
                pos = next;
            }
        }
    }
    s
}
