//! The journal's unit tests: frames, torn tails, recovery.

use super::*;
use notify_model::journal::{DaxDevice, Reason};

fn note(i: u64) -> Damage {
    Damage {
        dax: DaxDevice {
            name: "pmem0".into(),
            major: 259,
            minor: 0,
        },
        dax_offset: 0x10_0000 + i * 4096,
        len: 4096,
        mf_flags: 0x20,
        kernel_seq: i,
        ktime_ns: 1_000 + i,
        wall_ns: 2_000 + i,
        reason: Reason::Premature,
        namespace: None,
    }
}

fn frames(n: u64) -> Vec<u8> {
    let mut v = Vec::new();
    for i in 1..=n {
        v.extend(encode_frame(
            &serde_json::to_vec(&Entry::Notification { id: i, n: note(i) }).unwrap(),
        ));
    }
    v
}

#[test]
fn header_round_trip_and_errors() {
    let h = encode_header(5);
    assert!(check_header(&h).is_ok());
    let mut bad = h;
    bad[0] = b'X';
    assert!(check_header(&bad).unwrap_err().contains("magic"));
    let mut bad = h;
    bad[20] ^= 1;
    assert!(check_header(&bad).unwrap_err().contains("checksum"));
    assert!(check_header(&h[..10]).unwrap_err().contains("shorter"));
}

#[test]
fn clean_frames_scan_clean() {
    let d = frames(3);
    let s = scan_frames(&d, 32);
    assert_eq!(s.good.len(), 3);
    assert!(s.cuts.is_empty());
    assert_eq!(s.good[1].0, 32 + s.good[0].1 as u64);
}

#[test]
fn every_truncation_point_is_cut_cleanly() {
    let d = frames(3);
    let first = decode_frame(&d).unwrap().1;
    for cut in 1..d.len() {
        let s = scan_frames(&d[..cut], 0);
        let whole: usize = s.good.iter().map(|g| g.1).sum();
        assert_eq!(
            whole + s.cuts.iter().map(|c| c.len as usize).sum::<usize>(),
            cut
        );
        assert!(s.cuts.len() <= 1, "truncation gives at most one cut");
        if cut >= first {
            assert!(!s.good.is_empty());
        }
    }
}

#[test]
fn a_flipped_byte_anywhere_is_detected_and_later_records_survive() {
    let d = frames(3);
    let lens: Vec<usize> = scan_frames(&d, 0).good.iter().map(|g| g.1).collect();
    for i in 0..d.len() {
        let mut c = d.clone();
        c[i] ^= 0x40;
        let s = scan_frames(&c, 0);
        assert_eq!(s.cuts.len(), 1, "byte {i}: {:?}", s.cuts);
        // Exactly the damaged frame is lost.
        assert_eq!(s.good.len(), 2, "byte {i}");
        let which = if i < lens[0] {
            0
        } else if i < lens[0] + lens[1] {
            1
        } else {
            2
        };
        assert_eq!(s.cuts[0].len as usize, lens[which], "byte {i}");
    }
}

#[test]
fn zero_filled_tail_is_cut() {
    let mut d = frames(2);
    let good = d.len();
    d.extend(std::iter::repeat_n(0u8, 4096));
    let s = scan_frames(&d, 0);
    assert_eq!(s.good.len(), 2);
    assert_eq!(s.cuts.len(), 1);
    assert_eq!(s.cuts[0].offset as usize, good);
    assert!(s.cuts[0].reason.contains("end of the file"));
}
