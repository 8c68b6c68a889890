//! The notification journal on a real filesystem: reopen, kill -9 of a writer, torn and
//! corrupted files.

mod common;

use std::{
    collections::BTreeMap,
    fs::{self, OpenOptions},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use common::{Helper, TempDir};
use notify::agent::journal::{HEADER_LEN, Journal, JournalError, scan_frames};
use notify_model::journal::{Damage as Notification, DaxDevice, Reason, Status as State};

#[test]
fn __child_entry() {
    common::child_main();
}

fn note(seq: u64) -> Notification {
    Notification {
        dax: DaxDevice {
            name: "pmem0".into(),
            major: 259,
            minor: 0,
        },
        dax_offset: 0x4000_0000 + seq * 4096,
        len: 4096,
        mf_flags: 0x20,
        kernel_seq: seq,
        ktime_ns: 10 * seq,
        wall_ns: 1_700_000_000_000_000_000 + seq,
        reason: if seq.is_multiple_of(2) {
            Reason::Premature
        } else {
            Reason::NoHolder
        },
        namespace: None,
    }
}

fn journal_with(n: u64) -> (TempDir, PathBuf) {
    let d = TempDir::new("journal");
    let p = d.path().join("pending.journal");
    let (mut j, rec) = Journal::open(&p).unwrap();
    assert!(rec.created && rec.is_clean());
    for i in 1..=n {
        assert_eq!(j.append(note(i)).unwrap(), i);
    }
    (d, p)
}

/// Absolute offsets of the frames in a journal file.
fn frame_offsets(p: &Path) -> Vec<(u64, usize)> {
    let data = fs::read(p).unwrap();
    scan_frames(&data[HEADER_LEN as usize..], HEADER_LEN)
        .good
        .iter()
        .map(|g| (g.0, g.1))
        .collect()
}

#[test]
fn append_reopen_and_replayed_state_survive() {
    let (_d, p) = journal_with(3);
    {
        let (mut j, rec) = Journal::open(&p).unwrap();
        assert!(rec.is_clean() && !rec.created);
        assert_eq!(rec.records, 3);
        assert_eq!(j.list().len(), 3);
        assert_eq!(j.get(2).unwrap().damage, note(2));
        assert!(j.mark_replayed(2, "killed 1 of 1 mappers").unwrap());
        // Second mark is a no-op (idempotent), unknown id an error.
        assert!(!j.mark_replayed(2, "again").unwrap());
        assert!(matches!(
            j.mark_replayed(99, ""),
            Err(JournalError::UnknownId(99))
        ));
        // One writer at a time.
        let other = Journal::open(&p);
        assert!(
            matches!(other, Err(JournalError::Locked { .. })),
            "second open not refused"
        );
    }
    let (mut j, rec) = Journal::open(&p).unwrap();
    assert!(rec.is_clean());
    let pending: Vec<u64> = j.pending().iter().map(|r| r.id).collect();
    assert_eq!(pending, vec![1, 3]);
    let r2 = j.get(2).unwrap();
    assert_eq!(r2.state, State::Replayed);
    assert_eq!(r2.note.as_deref(), Some("killed 1 of 1 mappers"));
    // New ids continue after the highest.
    assert_eq!(j.append(note(4)).unwrap(), 4);

    // compact keeps pending records and their ids; survives reopen.
    assert_eq!(j.compact().unwrap(), 1);
    drop(j);
    let (mut j, rec) = Journal::open(&p).unwrap();
    assert!(rec.is_clean());
    assert_eq!(
        j.list().iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![1, 3, 4]
    );
    assert_eq!(j.clear().unwrap(), 3);
    drop(j);
    let (mut j, rec) = Journal::open(&p).unwrap();
    assert!(rec.is_clean());
    assert!(j.list().is_empty());
    // Ids are not reused after clear, across a reopen.
    assert_eq!(j.append(note(5)).unwrap(), 5);
    // No temp files left behind.
    let names: Vec<String> = fs::read_dir(p.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
}

#[test]
fn kill_9_of_an_appending_writer_loses_nothing_it_reported_stored() {
    // A SIGKILL cannot tear a single write(2) to a local file, so this mostly proves the
    // ordering contract (Ok only after fdatasync, so "STORED" implies durable) and that a
    // reopen after an abrupt death is clean or cut cleanly; torn frames (power loss) are
    // covered by the truncation/corruption tests below.
    let d = TempDir::new("journal-kill");
    let p = d.path().join("j");
    let ps = p.to_str().unwrap();
    let mut stored: BTreeMap<u64, u64> = BTreeMap::new();
    for round in 0..4 {
        let mut h = Helper::spawn("journal-append", &[ps]);
        h.wait_ready();
        let t0 = Instant::now();
        let mut n = 0;
        // Let it append for a while, then kill it at an arbitrary point.
        while t0.elapsed() < Duration::from_millis(150 + 70 * round) {
            let m = h.next_msg().expect("writer died");
            let f: Vec<u64> = m
                .strip_prefix("STORED ")
                .unwrap()
                .split(' ')
                .map(|x| x.parse().unwrap())
                .collect();
            stored.insert(f[0], f[1]);
            n += 1;
        }
        // SAFETY: SIGKILL to our own child.
        unsafe { libc::kill(h.pid(), libc::SIGKILL) };
        // Whatever it printed before dying was stored too.
        while let Some(m) = h.try_msg(Duration::from_millis(500)) {
            let f: Vec<u64> = m
                .strip_prefix("STORED ")
                .unwrap()
                .split(' ')
                .map(|x| x.parse().unwrap())
                .collect();
            stored.insert(f[0], f[1]);
        }
        let st = h.wait_status(Duration::from_secs(5)).unwrap();
        assert_eq!(common::termsig(st), Some(libc::SIGKILL));
        assert!(n > 0, "round {round}: nothing appended");

        let (j, rec) = Journal::open(&p).unwrap();
        // Clean, or at most the tail cut.
        assert!(rec.cuts.len() <= 1 && !rec.rewritten, "{rec:?}");
        if let Some(c) = rec.cuts.first() {
            eprintln!("round {round}: tail cut {c:?}");
        }
        for (id, seq) in &stored {
            let r = j
                .get(*id)
                .unwrap_or_else(|| panic!("reported-stored record {id} missing"));
            assert_eq!(r.damage.kernel_seq, *seq);
        }
        eprintln!(
            "round {round}: {} reported stored, {} in journal",
            stored.len(),
            j.list().len()
        );
        // The child may have stored one more than it managed to print, never fewer.
        assert!(j.list().len() >= stored.len());
    }
}

#[test]
fn kill_9_of_a_group_committing_writer_loses_nothing_it_acknowledged() {
    // The batch form of the test above: a writer appending batches of 1..=32 records with one
    // write and one fdatasync each, killed mid-batch at arbitrary points. Every record it
    // acknowledged (printed after `append_batch` returned) is in the journal after each kill,
    // and the journal opens clean or with only its tail cut.
    let d = TempDir::new("journal-kill-batch");
    let p = d.path().join("j");
    let ps = p.to_str().unwrap();
    let mut stored: BTreeMap<u64, u64> = BTreeMap::new();
    let parse = |m: &str| -> (u64, u64) {
        let f: Vec<u64> = m
            .strip_prefix("STORED ")
            .unwrap_or_else(|| panic!("unexpected line {m:?}"))
            .split(' ')
            .map(|x| x.parse().unwrap())
            .collect();
        (f[0], f[1])
    };
    for round in 0..4 {
        let mut h = Helper::spawn("journal-append-batch", &[ps]);
        h.wait_ready();
        let t0 = Instant::now();
        let before = stored.len();
        while t0.elapsed() < Duration::from_millis(120 + 60 * round) {
            let (id, seq) = parse(&h.next_msg().expect("writer died"));
            stored.insert(id, seq);
        }
        // SAFETY: SIGKILL to our own child.
        unsafe { libc::kill(h.pid(), libc::SIGKILL) };
        while let Some(m) = h.try_msg(Duration::from_millis(500)) {
            let (id, seq) = parse(&m);
            stored.insert(id, seq);
        }
        let st = h.wait_status(Duration::from_secs(5)).unwrap();
        assert_eq!(common::termsig(st), Some(libc::SIGKILL));
        assert!(stored.len() > before, "round {round}: nothing acknowledged");

        let (j, rec) = Journal::open(&p).unwrap();
        assert!(rec.cuts.len() <= 1 && !rec.rewritten, "{rec:?}");
        for (id, seq) in &stored {
            let r = j
                .get(*id)
                .unwrap_or_else(|| panic!("acknowledged record {id} missing"));
            assert_eq!(r.damage.kernel_seq, *seq);
        }
        // Ids are dense (a batch takes consecutive ids) and each writer may have stored one
        // batch more than it acknowledged (killed between the flush and its print), never less.
        let ids: Vec<u64> = j.list().iter().map(|r| r.id).collect();
        assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());
        assert!(ids.len() >= stored.len());
        assert!(ids.len() <= stored.len() + 32 * (round as usize + 1));
        eprintln!(
            "round {round}: {} acknowledged, {} in journal",
            stored.len(),
            ids.len()
        );
    }
}

#[test]
fn a_batch_torn_by_power_loss_keeps_its_whole_frames_and_cuts_the_rest() {
    // A crash of the machine mid-flush can leave any prefix of a batch's bytes on disk; none of
    // the batch was acknowledged (that waits for the fdatasync), so the reopen must keep the
    // records before the batch, the batch's whole frames, and cut the torn one as a tail.
    let (_d, p) = journal_with(3);
    {
        let (mut j, _) = Journal::open(&p).unwrap();
        assert_eq!(
            j.append_batch((4..=11).map(note).collect()).unwrap(),
            (4..=11).collect::<Vec<_>>()
        );
    }
    let frames = frame_offsets(&p);
    assert_eq!(frames.len(), 11);
    // Torn inside the 6th record of the batch (id 9).
    let (off9, len9) = frames[8];
    let f = OpenOptions::new().write(true).open(&p).unwrap();
    f.set_len(off9 + len9 as u64 / 2).unwrap();
    drop(f);
    let (mut j, rec) = Journal::open(&p).unwrap();
    assert_eq!(rec.cuts.len(), 1, "{rec:?}");
    assert_eq!(rec.cuts[0].offset, off9);
    assert!(!rec.rewritten);
    assert_eq!(
        j.list().iter().map(|r| r.id).collect::<Vec<_>>(),
        (1..=8).collect::<Vec<_>>()
    );
    // Ids go on after the last whole record.
    assert_eq!(j.append_batch(vec![note(12)]).unwrap(), vec![9]);
}

#[test]
fn truncated_tail_is_detected_reported_and_cut() {
    let (_d, p) = journal_with(5);
    let frames = frame_offsets(&p);
    let (last_off, last_len) = frames[4];
    let full = fs::metadata(&p).unwrap().len();
    assert_eq!(full, last_off + last_len as u64);
    // Every torn length of the last frame (header torn, payload torn).
    for keep in [
        1u64,
        5,
        11,
        12,
        13,
        last_len as u64 / 2,
        last_len as u64 - 1,
    ] {
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.set_len(last_off + keep).unwrap();
        drop(f);
        let (j, rec) = Journal::open(&p).unwrap();
        assert_eq!(rec.cuts.len(), 1, "keep {keep}: {rec:?}");
        assert_eq!(rec.cuts[0].offset, last_off);
        assert_eq!(rec.cuts[0].len, keep);
        assert!(
            rec.cuts[0].reason.contains("torn"),
            "{}",
            rec.cuts[0].reason
        );
        assert!(!rec.rewritten);
        assert_eq!(j.list().len(), 4);
        assert_eq!(fs::metadata(&p).unwrap().len(), last_off, "not truncated");
        drop(j);
        // Reopen: clean now. Re-append the lost record for the next iteration.
        let (mut j, rec) = Journal::open(&p).unwrap();
        assert!(rec.is_clean(), "{rec:?}");
        assert_eq!(j.append(note(5)).unwrap(), 5);
    }
}

fn flip(p: &Path, at: u64) {
    let f = OpenOptions::new().read(true).write(true).open(p).unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, at).unwrap();
    b[0] ^= 0x10;
    f.write_all_at(&b, at).unwrap();
}

#[test]
fn flipped_byte_in_the_middle_is_cut_and_later_records_survive() {
    let (_d, p) = journal_with(5);
    {
        let (mut j, _) = Journal::open(&p).unwrap();
        j.mark_replayed(4, "done").unwrap();
    }
    let frames = frame_offsets(&p);
    assert_eq!(frames.len(), 6);
    // A bit flip inside record 2's payload.
    let (off2, len2) = frames[1];
    flip(&p, off2 + len2 as u64 / 2);
    let (j, rec) = Journal::open(&p).unwrap();
    assert_eq!(rec.cuts.len(), 1, "{rec:?}");
    assert_eq!((rec.cuts[0].offset, rec.cuts[0].len), (off2, len2 as u64));
    assert!(
        rec.cuts[0].reason.contains("checksum"),
        "{}",
        rec.cuts[0].reason
    );
    assert!(rec.rewritten);
    assert_eq!(
        j.list().iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![1, 3, 4, 5]
    );
    assert_eq!(j.get(4).unwrap().state, State::Replayed);
    drop(j);
    let (_, rec) = Journal::open(&p).unwrap();
    assert!(rec.is_clean(), "rewrite left damage: {rec:?}");

    // A flip in a frame's length field: the frame is lost, the scan resynchronises.
    let frames = frame_offsets(&p);
    flip(&p, frames[0].0 + 5);
    let (j, rec) = Journal::open(&p).unwrap();
    assert_eq!(rec.cuts.len(), 1, "{rec:?}");
    assert_eq!(rec.cuts[0].offset, frames[0].0);
    assert_eq!(
        j.list().iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![3, 4, 5]
    );
}

#[test]
fn flipped_byte_in_the_tail_is_cut() {
    let (_d, p) = journal_with(3);
    let frames = frame_offsets(&p);
    let (off, len) = frames[2];
    flip(&p, off + len as u64 - 1);
    let (j, rec) = Journal::open(&p).unwrap();
    assert_eq!(rec.cuts.len(), 1);
    assert_eq!(rec.cuts[0].offset, off);
    assert!(rec.cuts[0].reason.contains("end of the file"));
    assert!(!rec.rewritten);
    assert_eq!(fs::metadata(&p).unwrap().len(), off);
    assert_eq!(j.list().len(), 2);
}

#[test]
fn state_record_whose_notification_was_cut_is_reported_as_orphan() {
    let (_d, p) = journal_with(2);
    {
        let (mut j, _) = Journal::open(&p).unwrap();
        j.mark_replayed(1, "done").unwrap();
    }
    let frames = frame_offsets(&p);
    flip(&p, frames[0].0 + frames[0].1 as u64 - 2);
    let (j, rec) = Journal::open(&p).unwrap();
    assert_eq!(rec.orphan_states, vec![1]);
    assert!(j.get(1).is_none());
    assert_eq!(j.pending().len(), 1);
}

#[test]
fn bad_header_is_a_clear_error_and_the_file_is_left_alone() {
    let d = TempDir::new("journal-hdr");
    let p = d.path().join("j");
    fs::write(
        &p,
        b"this is not a journal, just some text that is long enough",
    )
    .unwrap();
    let before = fs::read(&p).unwrap();
    let err = Journal::open(&p).err().expect("garbage accepted");
    assert!(matches!(err, JournalError::BadHeader { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(p.to_str().unwrap()), "{msg}");
    assert!(msg.contains("magic"), "{msg}");
    assert!(msg.contains("mv "), "{msg}");
    assert_eq!(fs::read(&p).unwrap(), before, "a bad journal was modified");

    // A damaged header of a real journal (checksum), and a short file.
    let (_d2, p2) = journal_with(1);
    flip(&p2, 18);
    let msg = Journal::open(&p2).err().unwrap().to_string();
    assert!(msg.contains("header checksum"), "{msg}");
    fs::write(&p, b"NTFY").unwrap();
    let msg = Journal::open(&p).err().unwrap().to_string();
    assert!(msg.contains("shorter than"), "{msg}");

    // A zero-length file holds nothing to lose: it is initialised.
    fs::write(&p, b"").unwrap();
    let (mut j, rec) = Journal::open(&p).unwrap();
    assert!(rec.created);
    assert_eq!(j.append(note(1)).unwrap(), 1);
}

#[test]
fn list_reads_beside_a_writer_that_holds_the_lock_and_repairs_nothing() {
    let (_d, p) = journal_with(3);
    // The agent's journal: open, locked for as long as it runs.
    let (mut j, _) = Journal::open(&p).unwrap();
    assert!(matches!(
        Journal::open(&p),
        Err(JournalError::Locked { .. })
    ));
    j.mark_replayed(2, "replayed in the test").unwrap();
    let list = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_notify"))
            .arg("journal")
            .arg("--journal")
            .arg(&p)
            .arg("list")
            .args(args)
            .output()
            .unwrap()
    };
    let o = list(&["-o", "json"]);
    assert!(
        o.status.success(),
        "list beside a writer failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let states: Vec<(u64, String)> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["id"].as_u64().unwrap(),
                v["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            (1, "pending".to_string()),
            (2, "replayed".to_string()),
            (3, "pending".to_string())
        ]
    );

    // A torn append in progress: the reader reports it and leaves the bytes to the writer.
    let full = fs::metadata(&p).unwrap().len();
    let f = OpenOptions::new().append(true).open(&p).unwrap();
    f.write_at(&0x3152_4A4Eu32.to_le_bytes(), full).unwrap();
    let o = list(&[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("unreadable") && err.contains("append in progress"),
        "{err}"
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 1 + 3);
    assert_eq!(
        fs::metadata(&p).unwrap().len(),
        full + 4,
        "the reader repaired"
    );
    drop(j);
}
