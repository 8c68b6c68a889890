//! `cargo xtask bench journal`: journal appends per second, one fdatasync per record against
//! group commit, side by side on one filesystem.
//!
//! The filesystem is a real XFS on a loop device over a sparse image in the target directory
//! (this host's disk), so every fdatasync reaches the disk under it: tmpfs would measure
//! memcpy, not durability. In alternated rounds (the order rotates every round), each variant
//! writes RECORDS notifications into a fresh journal:
//!
//! - `per_record`: `Journal::append` for each (one write + one fdatasync per record: the
//!   journal before group commit);
//! - `batch_8`, `batch_64`: `Journal::append_batch` of 8 or 64 at a time (drained batches of
//!   a trickle and of a modest storm);
//! - `drain`: a producer thread sends notifications as fast as it can over a channel and the
//!   writer drains whatever arrived into one `append_batch` (the agent's intake: each drain of
//!   the ring buffer is one group commit), so the batch size is what arrived during the last
//!   flush (a producer this fast outruns every flush: the upper bound, not a typical batch).
//!
//! Every variant's journal is reopened afterwards and must hold exactly its records. Ratios
//! are taken per round against `per_record`, then the median. Results are `@@BENCH ...` lines.
//! Needs root (mkfs, losetup, mount). Not part of `cargo test` (`bench = false`).

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    sync::mpsc,
    time::Instant,
};

use notify::agent::journal::{self, Journal};
use notify_model::journal::{Damage, DaxDevice, Reason};

const RECORDS: u64 = 3000;

struct Xfs {
    dir: PathBuf,
    loopdev: Option<String>,
    mounted: bool,
}

impl Xfs {
    fn mnt(&self) -> PathBuf {
        self.dir.join("mnt")
    }
}

impl Drop for Xfs {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(self.mnt()).status();
        }
        if let Some(d) = &self.loopdev {
            let _ = Command::new("losetup").args(["-d", d]).status();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn sh(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn xfs() -> Xfs {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-journal");
    let _ = Command::new("umount")
        .arg(dir.join("mnt"))
        .stderr(std::process::Stdio::null())
        .status();
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("mnt")).unwrap();
    let img = dir.join("img");
    fs::File::create(&img).unwrap().set_len(512 << 20).unwrap();
    let mut x = Xfs {
        dir,
        loopdev: None,
        mounted: false,
    };
    sh(Command::new("mkfs.xfs").args(["-q", "-f"]).arg(&img));
    x.loopdev = Some(sh(Command::new("losetup").args(["-f", "--show"]).arg(&img)));
    sh(Command::new("mount")
        .arg(x.loopdev.as_ref().unwrap())
        .arg(x.mnt()));
    x.mounted = true;
    x
}

fn note(seq: u64) -> Damage {
    Damage {
        dax: DaxDevice {
            name: "pmem0".into(),
            major: 259,
            minor: 0,
        },
        dax_offset: seq * 4096,
        len: 4096,
        mf_flags: 0x20,
        kernel_seq: seq,
        ktime_ns: seq,
        wall_ns: journal::now_ns(),
        reason: Reason::Premature,
        namespace: None,
    }
}

/// Writes RECORDS notifications the variant's way; returns (seconds, fdatasyncs).
fn run(variant: &str, path: &Path) -> (f64, u64) {
    let _ = fs::remove_file(path);
    let (mut j, _) = Journal::open(path).unwrap();
    let t = Instant::now();
    let mut flushes = 0;
    match variant {
        "per_record" => {
            for s in 0..RECORDS {
                j.append(note(s)).unwrap();
                flushes += 1;
            }
        }
        "batch_8" | "batch_64" => {
            let n = if variant == "batch_8" { 8 } else { 64 };
            for chunk in (0..RECORDS).collect::<Vec<_>>().chunks(n) {
                j.append_batch(chunk.iter().map(|&s| note(s)).collect())
                    .unwrap();
                flushes += 1;
            }
        }
        "drain" => {
            let (tx, rx) = mpsc::channel();
            let producer = std::thread::spawn(move || {
                for s in 0..RECORDS {
                    tx.send(note(s)).unwrap();
                }
            });
            let mut stored = 0;
            while stored < RECORDS {
                // Wait for one, then take whatever else is there: one drain, one flush.
                let mut batch = vec![rx.recv().unwrap()];
                batch.extend(rx.try_iter());
                stored += batch.len() as u64;
                j.append_batch(batch).unwrap();
                flushes += 1;
            }
            producer.join().unwrap();
        }
        v => panic!("unknown variant {v}"),
    }
    let secs = t.elapsed().as_secs_f64();
    drop(j);
    let (j, rec) = Journal::open(path).unwrap();
    assert!(rec.is_clean(), "{variant}: {rec:?}");
    assert_eq!(j.list().len() as u64, RECORDS, "{variant}: records lost");
    (secs, flushes)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    // SAFETY: geteuid cannot fail.
    assert!(
        unsafe { libc::geteuid() } == 0,
        "the journal bench needs root (mkfs.xfs, losetup, mount)"
    );
    let rounds: usize = std::env::var("NOTIFY_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let x = xfs();
    let backing = sh(Command::new("findmnt")
        .args(["-n", "-o", "FSTYPE,SOURCE", "-T"])
        .arg(env!("CARGO_TARGET_TMPDIR")));
    let variants = ["per_record", "batch_8", "batch_64", "drain"];
    let mut rate: Vec<Vec<f64>> = vec![vec![]; variants.len()];
    let mut ratio: Vec<Vec<f64>> = vec![vec![]; variants.len()];
    let mut per_flush: Vec<Vec<f64>> = vec![vec![]; variants.len()];
    for round in 0..rounds {
        let mut secs = vec![0.0; variants.len()];
        for k in 0..variants.len() {
            let i = (k + round) % variants.len();
            let (s, flushes) = run(variants[i], &x.mnt().join(variants[i]));
            secs[i] = s;
            rate[i].push(RECORDS as f64 / s);
            per_flush[i].push(RECORDS as f64 / flushes as f64);
        }
        for i in 0..variants.len() {
            ratio[i].push(secs[0] / secs[i]);
        }
        eprintln!(
            "round {round}: {}",
            variants
                .iter()
                .zip(&secs)
                .map(|(v, s)| format!("{v} {:.0}/s", RECORDS as f64 / s))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for i in 0..variants.len() {
        println!(
            "@@BENCH variant={} records={RECORDS} rounds={rounds} median_rate={:.0} \
             ratio_vs_per_record={:.2} records_per_fdatasync={:.1} fs=xfs-on-{} backing={}",
            variants[i],
            median(&mut rate[i]),
            median(&mut ratio[i]),
            median(&mut per_flush[i]),
            x.loopdev
                .as_deref()
                .unwrap_or("?")
                .trim_start_matches("/dev/"),
            backing.split_whitespace().collect::<Vec<_>>().join(":"),
        );
    }
}
