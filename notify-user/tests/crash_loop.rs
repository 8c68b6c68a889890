//! Crash loops on the host (issue #12 item 3): the agent's journal and replay duties, killed with
//! SIGKILL at random points 50 times in a row while notifications arrive and replays run,
//! against a real XFS on a loop device with real mapper processes.
//!
//! The kernel's side cannot run here: this host has no pmem and no memory_failure() to drop a
//! notification, so "a notification arrives" is the journal append the agent makes for one (the
//! `journal-replay-loop` child of tests/common), and the replay is the one the agent runs
//! (`agent::replay::replay` with the SIGKILL policy, then `mark_replayed`), from a dax offset
//! that is a victim file's block on the loop device (no partition: dax offset = device offset).

mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    fs::File,
    time::{Duration, Instant},
};

use common::{Helper, Xfs, require_root, termsig, write_file};
use notify::{agent::journal::Journal, resolve::fiemap::fiemap};
use notify_model::journal::Status;

#[test]
fn __child_entry() {
    common::child_main();
}

const VICTIMS: usize = 48;
const INNOCENTS: usize = 8;
const KILLS: usize = 50;

/// A small xorshift: the kill points, reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// What the replayer said before it died.
#[derive(Default)]
struct Said {
    stored: BTreeMap<u64, u64>,
    replayed: BTreeSet<u64>,
    /// Every SIGKILL it reported sending, by pid.
    signalled: BTreeMap<i32, usize>,
    done: bool,
}

impl Said {
    fn take(&mut self, m: &str) {
        let f: Vec<&str> = m.split(' ').collect();
        match f[0] {
            "STORED" => {
                self.stored
                    .insert(f[1].parse().unwrap(), f[2].parse().unwrap());
            }
            "REPLAYED" => {
                self.replayed.insert(f[1].parse().unwrap());
            }
            "DECISION" if f[2] == "Signalled" => {
                *self.signalled.entry(f[1].parse().unwrap()).or_default() += 1;
            }
            "DECISION" => {}
            "DONE" => self.done = true,
            other => panic!("unexpected line {other:?}"),
        }
    }
}

#[test]
#[ignore = "needs root (loop devices, mount, signals): run as root with --include-ignored"]
fn fifty_sigkills_lose_nothing_signal_nobody_twice_and_nobody_wrong() {
    require_root("fifty_sigkills_lose_nothing_signal_nobody_twice_and_nobody_wrong");
    let x = Xfs::new("rmapbt=1");
    let mut victims = Vec::new();
    let mut offsets = Vec::new();
    for i in 0..VICTIMS {
        let f = x.path(&format!("victim{i}"));
        write_file(&f, 16 << 10, i as u8);
        let ext = fiemap(&File::open(&f).unwrap()).unwrap();
        offsets.push(ext[0].physical);
        victims.push(Helper::spawn("map", &[f.to_str().unwrap(), "0", "4096"]));
    }
    let mut innocents = Vec::new();
    for i in 0..INNOCENTS {
        let f = x.path(&format!("innocent{i}"));
        write_file(&f, 16 << 10, 100 + i as u8);
        innocents.push(Helper::spawn("map", &[f.to_str().unwrap(), "0", "4096"]));
    }
    for h in victims.iter_mut().chain(innocents.iter_mut()) {
        h.skip_to_ready();
    }
    // Half the records wait in the journal from before (dropped while the filesystem was not
    // ready); the other half arrive while the replayer runs.
    let jp = x.path("journal");
    let arrivals: Vec<String> = (0..VICTIMS)
        .map(|i| format!("{i}:{}", offsets[i]))
        .collect();
    let first = &arrivals[..VICTIMS / 2];
    let run = |args: &[&str]| {
        let mut h = Helper::spawn("journal-replay-loop", args);
        h.wait_ready();
        h
    };
    let mnt = x.mnt.to_str().unwrap();
    let jps = jp.to_str().unwrap();
    let mut said = Said::default();
    {
        let mut h = run(&[jps, mnt, &first.join(",")]);
        // The first life journals half the notifications (replaying in between), then dies:
        // a backlog of pending records for the lives that follow.
        while said.stored.len() < first.len() {
            said.take(&h.next_msg().expect("replayer died"));
        }
        // SAFETY: SIGKILL to our own child.
        unsafe { libc::kill(h.pid(), libc::SIGKILL) };
        while let Some(m) = h.try_msg(Duration::from_millis(200)) {
            said.take(&m);
        }
        h.wait_status(Duration::from_secs(5)).unwrap();
    }

    let seed = std::process::id() as u64 * 0x9E37_79B9 + 1;
    eprintln!("crash loop: seed {seed}");
    let mut rng = Rng(seed);
    let all = arrivals.join(",");
    let t0 = Instant::now();
    // Lives killed before they were done (the rest died idle, after DONE).
    let mut interrupted = 0;
    for kill in 0..=KILLS {
        let mut h = run(&[jps, mnt, &all]);
        if kill < KILLS {
            // Die anywhere: before the first append, mid-replay, between a signal and its
            // mark, between an append and its print. The point is taken in the life's progress
            // (after 0 or 1 of its lines, then up to 300 us more), not in time, so that every
            // kill lands mid-work however fast this machine's fdatasync is.
            for _ in 0..rng.below(2) {
                said.take(&h.next_msg().expect("replayer died"));
            }
            std::thread::sleep(Duration::from_micros(rng.below(300)));
            // SAFETY: SIGKILL to our own child.
            unsafe { libc::kill(h.pid(), libc::SIGKILL) };
            while let Some(m) = h.try_msg(Duration::from_millis(100)) {
                said.take(&m);
            }
            if !said.done {
                interrupted += 1;
            }
            let st = h.wait_status(Duration::from_secs(5)).unwrap();
            assert_eq!(termsig(st), Some(libc::SIGKILL), "kill {kill}: {st}");
        } else {
            // The last life runs to the end.
            while !said.done {
                said.take(&h.next_msg().expect("replayer died"));
            }
            // SAFETY: SIGKILL to our own child (idle now: it holds the journal's lock).
            unsafe { libc::kill(h.pid(), libc::SIGKILL) };
            h.wait_status(Duration::from_secs(5)).unwrap();
        }
        // Readable after every kill, clean or only its tail cut; every acknowledged record
        // and every acknowledged mark is in it; no notification journaled twice.
        let (j, rec) = Journal::open(&jp).unwrap_or_else(|e| panic!("kill {kill}: {e}"));
        assert!(
            rec.cuts.len() <= 1 && !rec.rewritten,
            "kill {kill}: {rec:?}"
        );
        for (id, seq) in &said.stored {
            let r = j
                .get(*id)
                .unwrap_or_else(|| panic!("kill {kill}: acknowledged record {id} lost"));
            assert_eq!(r.damage.kernel_seq, *seq);
        }
        for id in &said.replayed {
            assert_eq!(j.get(*id).map(|r| r.state), Some(Status::Replayed), "{id}");
        }
        let seqs: Vec<u64> = j.list().iter().map(|r| r.damage.kernel_seq).collect();
        let unique: BTreeSet<u64> = seqs.iter().copied().collect();
        assert_eq!(
            seqs.len(),
            unique.len(),
            "kill {kill}: journaled twice: {seqs:?}"
        );
        if kill == KILLS {
            assert_eq!(unique, (0..VICTIMS as u64).collect(), "not all arrived");
            assert!(j.pending().is_empty(), "{:?}", j.pending());
        }
        drop(j);
        drop(h);
    }
    assert_eq!(interrupted, KILLS, "kills that found the work done already");
    eprintln!(
        "crash loop: {KILLS} kills ({interrupted} mid-work) in {:.1} s; {} acknowledged records, \
         {} acknowledged marks",
        t0.elapsed().as_secs_f64(),
        said.stored.len(),
        said.replayed.len()
    );

    // Every victim died of the policy's SIGKILL, every innocent lives, and no pid was reported
    // signalled twice or is not a victim's.
    let victim_pids: BTreeSet<i32> = victims.iter().map(Helper::pid).collect();
    for (pid, n) in &said.signalled {
        assert!(
            victim_pids.contains(pid),
            "signalled {pid}, not a mapper of a damaged page"
        );
        assert_eq!(*n, 1, "pid {pid} signalled {n} times");
    }
    for h in &mut victims {
        let st = h
            .wait_status(Duration::from_secs(5))
            .unwrap_or_else(|| panic!("victim {} still alive", h.pid()));
        assert_eq!(termsig(st), Some(libc::SIGKILL), "victim {}", h.pid());
    }
    for h in &innocents {
        assert!(h.alive(), "innocent {} was hit", h.pid());
    }
}
