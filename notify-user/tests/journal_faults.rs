//! The journal when its storage fails, for real: a full XFS (ENOSPC), a read-only one, and a
//! device failing writes. This host's kernel has no device-mapper (no dm-error or dm-flakey
//! target to load), so the failing device is the nearest real thing: a loop device over an image
//! on a size-limited tmpfs, which fails every write to a block the tmpfs has no room for
//! (BLK_STS_NOSPC) while XFS above it still has free space.
//!
//! What each test asserts: the error names the journal file, the call that failed and the
//! kernel's reason; the agent says what it does about it (`journal_write_failed` record and
//! `notify_journal_write_failures_total`); every record acknowledged before the fault is in the
//! journal after; a notification that could not be stored is held and stored once the storage
//! takes writes again, never silently dropped.

mod common;

use std::{
    fs::{self, File},
    io::Write,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use common::{TempDir, Xfs, require_root};
use notify::{
    agent::{Agent, AgentOptions, badblocks::ByteRange, journal::Journal},
    export::metrics::Metrics,
    kernel::{
        channels::{Channel, Channels},
        pmem::PmemDisk,
    },
};
use notify_model::{Item, dev::Dev, record::AgentRecord, record::IdentifiedBy};

fn disk() -> PmemDisk {
    PmemDisk {
        name: "pmem0".into(),
        dev: Dev::from_user(libc::makedev(259, 0)),
        phys_start: None,
        size: 1 << 30,
        namespace: None,
    }
}

fn agent(journal: &Path) -> Agent {
    Agent::open(AgentOptions {
        journal: journal.to_path_buf(),
        enforce: Default::default(),
        channels: Channels::without_symbols(Channel::of(None, "host test")),
        rescan: None,
        redrive: false,
        metadata_shutdown: false,
    })
    .unwrap()
    .0
}

/// `n` page-sized ranges from page `first` on.
fn ranges(first: u64, n: u64) -> Vec<ByteRange> {
    (first..first + n)
        .map(|p| ByteRange {
            start: p * 8192,
            len: 4096,
        })
        .collect()
}

/// (id, dax_offset) of every `journaled` record.
fn journaled(out: &[AgentRecord]) -> Vec<(u64, u64)> {
    out.iter()
        .filter_map(|r| match r {
            AgentRecord::Journaled { id, dax_offset, .. } => Some((*id, *dax_offset)),
            _ => None,
        })
        .collect()
}

fn failures(out: &[AgentRecord]) -> Vec<(&str, &str, &str)> {
    out.iter()
        .filter_map(|r| match r {
            AgentRecord::JournalWriteFailed {
                op,
                id: None,
                error,
                action,
                ..
            } => Some((op.as_str(), error.as_str(), action.as_str())),
            _ => None,
        })
        .collect()
}

/// Fills the filesystem of `dir` to the last block; returns the filler file.
fn fill(dir: &Path) -> PathBuf {
    let p = dir.join("filler");
    let mut f = File::create(&p).unwrap();
    for chunk in [1 << 20, 4096] {
        let buf = vec![0x5au8; chunk];
        while f.write_all(&buf).and_then(|()| f.sync_data()).is_ok() {}
    }
    p
}

fn metric(records: &[AgentRecord], line: &str) -> bool {
    let m = Metrics::new();
    for r in records {
        m.on_item(&Item::Record(r.clone()));
    }
    m.render().lines().any(|l| l == line)
}

fn sh(cmd: &mut Command) -> Result<String, String> {
    let o = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if o.status.success() {
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).into_owned())
    }
}

#[test]
#[ignore = "needs root (loop devices, mount): run as root with --include-ignored"]
fn a_full_filesystem_fails_the_append_clearly_and_the_held_record_is_stored_later() {
    require_root("a_full_filesystem_fails_the_append_clearly");
    let x = Xfs::new("crc=1");
    let jp = x.path("journal");
    let mut a = agent(&jp);
    let acked = journaled(&a.journal_bad_ranges(&disk(), &ranges(0, 2)));
    assert_eq!(acked.len(), 2);
    let filler = fill(&x.mnt);
    let size = fs::metadata(&jp).unwrap().len();

    // 64 records (~20 KiB): more than the room left in the journal's last block (XFS took
    // back its speculative preallocation past EOF when the filler met ENOSPC).
    let out = a.journal_bad_ranges(&disk(), &ranges(10, 64));
    let f = failures(&out);
    assert_eq!(f.len(), 64, "{out:?}");
    let (op, error, action) = f[0];
    assert_eq!(op, "append");
    assert!(
        error.contains(jp.to_str().unwrap()) && error.contains("No space left on device"),
        "{error}"
    );
    assert!(action.contains("held in memory"), "{action}");
    assert!(journaled(&out).is_empty(), "acknowledged without storage");
    assert!(metric(
        &out,
        "notify_journal_write_failures_total{op=\"append\"} 64"
    ));
    assert_eq!(
        fs::metadata(&jp).unwrap().len(),
        size,
        "the failed append was not cut back off the file"
    );
    // Still full: the retry stores nothing and says nothing new; the same range again is not
    // a second record.
    let t0 = Instant::now();
    assert!(a.poll(t0).is_empty());
    assert!(a.journal_bad_ranges(&disk(), &ranges(10, 1)).is_empty());

    fs::remove_file(&filler).unwrap();
    let out = a.poll(t0 + Duration::from_secs(2));
    let stored = journaled(&out);
    assert_eq!(stored.len(), 64, "{out:?}");
    assert_eq!(stored[0].1, 10 * 8192);
    assert!(matches!(
        out[0],
        AgentRecord::Journaled {
            identified_by: IdentifiedBy::BadblocksList,
            ..
        }
    ));
    drop(a);
    let (j, rec) = Journal::open(&jp).unwrap();
    assert!(rec.is_clean(), "{rec:?}");
    let ids: Vec<(u64, u64)> = j
        .list()
        .iter()
        .map(|r| (r.id, r.damage.dax_offset))
        .collect();
    // The failed append's ids are never reused: the retry got new ones.
    assert_eq!(ids, [acked.clone(), stored.clone()].concat());
    assert!(stored[0].0 > acked[1].0 + 64, "{ids:?}");
}

#[test]
#[ignore = "needs root (loop devices, mount): run as root with --include-ignored"]
fn a_read_only_journal_is_listed_but_the_agent_refuses_to_start_saying_why() {
    require_root("a_read_only_journal_is_listed_but_the_agent_refuses_to_start");
    let x = Xfs::new("crc=1");
    let jp = x.path("journal");
    {
        let (mut j, _) = Journal::open(&jp).unwrap();
        j.append_batch(
            ranges(0, 2)
                .into_iter()
                .map(|r| notify_model::journal::Damage {
                    dax: notify_model::journal::DaxDevice {
                        name: "pmem0".into(),
                        major: 259,
                        minor: 0,
                    },
                    dax_offset: r.start,
                    len: r.len,
                    mf_flags: 0,
                    kernel_seq: 0,
                    ktime_ns: 0,
                    wall_ns: 0,
                    reason: notify_model::journal::Reason::Badblocks,
                    namespace: None,
                })
                .collect(),
        )
        .unwrap();
        // While a writer holds the journal, the kernel refuses to make its filesystem
        // read-only (a file open for writing): a running agent cannot meet a read-only
        // journal, only a starting one.
        let busy = sh(Command::new("mount").args(["-o", "remount,ro"]).arg(&x.mnt));
        assert!(busy.as_ref().is_err_and(|e| e.contains("busy")), "{busy:?}");
        j.mark_replayed(1, "still writable").unwrap();
    }
    sh(Command::new("mount").args(["-o", "remount,ro"]).arg(&x.mnt)).unwrap();
    let notify = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_notify"))
            .arg("journal")
            .arg("--journal")
            .arg(&jp)
            .args(args)
            .output()
            .unwrap()
    };
    let list = notify(&["list", "-o", "json"]);
    assert!(list.status.success(), "{list:?}");
    assert_eq!(String::from_utf8_lossy(&list.stdout).lines().count(), 2);
    let replay = notify(&["replay"]);
    let err = String::from_utf8_lossy(&replay.stderr);
    assert!(
        !replay.status.success(),
        "replay on a read-only journal: {err}"
    );
    assert!(
        err.contains(jp.to_str().unwrap())
            && err.contains("Read-only file system")
            && err.contains("does not start without a journal it can write"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    sh(Command::new("mount").args(["-o", "remount,rw"]).arg(&x.mnt)).unwrap();
    let (j, rec) = Journal::open(&jp).unwrap();
    assert!(rec.is_clean());
    assert_eq!(j.list().len(), 2);
    assert_eq!(j.pending().len(), 1);
}

/// XFS on a loop device over a sparse image on a tmpfs of `tmpfs_mb`: a device that fails
/// writes once the tmpfs is full. Drop undoes it in order.
struct FailingDevice {
    dir: TempDir,
    loopdev: Option<String>,
    xfs_mounted: bool,
    tmpfs_mounted: bool,
}

impl FailingDevice {
    fn new(tmpfs_mb: u32) -> FailingDevice {
        common::reap_stale();
        let dir = TempDir::new("xfs-failing");
        let mut d = FailingDevice {
            dir,
            loopdev: None,
            xfs_mounted: false,
            tmpfs_mounted: false,
        };
        fs::create_dir(d.backing()).unwrap();
        fs::create_dir(d.mnt()).unwrap();
        sh(Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={tmpfs_mb}m"),
                "notify-test",
            ])
            .arg(d.backing()))
        .unwrap();
        d.tmpfs_mounted = true;
        let img = d.backing().join("img");
        File::create(&img).unwrap().set_len(512 << 20).unwrap();
        sh(Command::new("mkfs.xfs").args(["-q", "-f"]).arg(&img)).unwrap();
        d.loopdev = Some(
            sh(Command::new("losetup").args(["-f", "--show"]).arg(&img))
                .unwrap()
                .trim()
                .to_string(),
        );
        d.mount();
        d
    }
    fn backing(&self) -> PathBuf {
        self.dir.path().join("backing")
    }
    fn mnt(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }
    fn mount(&mut self) {
        sh(Command::new("mount")
            .arg(self.loopdev.as_ref().unwrap())
            .arg(self.mnt()))
        .unwrap();
        self.xfs_mounted = true;
    }
    fn umount(&mut self) {
        sh(Command::new("umount").arg(self.mnt())).unwrap();
        self.xfs_mounted = false;
    }
}

impl Drop for FailingDevice {
    fn drop(&mut self) {
        if self.xfs_mounted {
            let _ = sh(Command::new("umount").arg(self.mnt()));
        }
        if let Some(l) = self.loopdev.take() {
            let _ = sh(Command::new("losetup").args(["-d", &l]));
        }
        if self.tmpfs_mounted {
            let _ = sh(Command::new("umount").arg(self.backing()));
        }
    }
}

#[test]
#[ignore = "needs root (loop devices, mount): run as root with --include-ignored"]
fn a_device_failing_writes_fails_the_flush_and_loses_no_acknowledged_record() {
    require_root("a_device_failing_writes_fails_the_flush");
    // mkfs.xfs writes ~65 MiB of this image (its log included): room for that and no more
    // once the filler takes the rest.
    let mut dev = FailingDevice::new(96);
    let jp = dev.mnt().join("journal");
    let mut a = agent(&jp);
    // Acknowledged while the device takes writes: 4 records, then 4 batches of 64 (~55 KiB).
    let mut acked = journaled(&a.journal_bad_ranges(&disk(), &ranges(0, 4)));
    for b in 0..4 {
        acked.extend(journaled(
            &a.journal_bad_ranges(&disk(), &ranges(100 + 64 * b, 64)),
        ));
    }
    assert_eq!(acked.len(), 4 + 4 * 64);
    // Now the device fails every write to a block it has no room for; the very next batch
    // must fail. (Batches acknowledged *after* the fill, on blocks mkfs had written, are not
    // counted: in one such run an acknowledged page read back as a hole after the remount, a
    // device keeping less than it acknowledged, which the frame checksums caught and cut;
    // docs/RELIABILITY.md.)
    let filler = fill(&dev.backing());
    let out = a.journal_bad_ranges(&disk(), &ranges(1000, 64));
    assert!(
        journaled(&out).is_empty(),
        "stored on a failing device: {out:?}"
    );
    assert_eq!(failures(&out).len(), 64, "a batch is stored or not, whole");
    assert!(metric(
        &out,
        "notify_journal_write_failures_total{op=\"append\"} 64"
    ));
    let failed = failures(&out)
        .first()
        .map(|&(o, e, a)| (o.to_string(), e.to_string(), a.to_string()));
    let (op, error, action) = failed.expect("the device never failed a write");
    eprintln!("device fault: {error}");
    assert_eq!(op, "append");
    // The write(2) went into the page cache (XFS has room); the device failed it at
    // writeback, which the flush reports.
    assert!(
        error.contains(jp.to_str().unwrap()) && error.contains("fdatasync"),
        "{error}"
    );
    assert!(action.contains("held in memory"), "{action}");
    let free = nix_free(&dev.mnt());
    assert!(
        free > 100 << 20,
        "XFS itself is not full ({free} bytes free)"
    );

    // The device takes writes again: the held batch is stored, then everything survives a
    // remount (log recovery from what the device holds).
    fs::remove_file(&filler).unwrap();
    let out = a.poll(Instant::now() + Duration::from_secs(2));
    assert_eq!(journaled(&out).len(), 64, "{out:?}");
    acked.extend(journaled(&out));
    drop(a);
    dev.umount();
    dev.mount();
    let (j, rec) = Journal::open(&jp).unwrap();
    assert!(rec.cuts.len() <= 1, "{rec:?}");
    for (id, off) in &acked {
        let r = j
            .get(*id)
            .unwrap_or_else(|| panic!("acknowledged record {id} lost"));
        assert_eq!(r.damage.dax_offset, *off);
    }
    assert_eq!(j.list().len(), acked.len(), "a record nobody acknowledged");
}

/// Free bytes of the filesystem of `p`.
fn nix_free(p: &Path) -> u64 {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: statvfs into a zeroed struct.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut s) }, 0);
    s.f_bavail * s.f_frsize
}
