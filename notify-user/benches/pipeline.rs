//! `cargo xtask bench pipeline`: events/s through what `notify trace`/`notify agent` do with
//! every ring-buffer record: decode -> reorder -> readiness tracker (+ journal append for the
//! notifications the kernel dropped).
//!
//! Input: raw `notify_common::Event` records, built from the VM lab's recorded runs
//! (xtask/tests/fixtures/6.1-kprobe/{remount,premature}/events.jsonl): the real mount sequence,
//! then the real 7-event poison sequence (memory_failure_enter, notify_enter, sigbus, xfs_notify_exit,
//! notify_exit, mf_event, memory_failure_exit) repeated with fresh pfns/offsets and sequence
//! numbers. Every 16th pair of records is swapped, as two CPUs committing out of order would.
//!
//! Two parts, one binary:
//! 1. criterion benchmarks (statistics, HTML report under target/criterion);
//! 2. the figures for docs/BENCHMARKS.md: the variants run in alternated rounds (A B C D, then
//!    B C D A, ...) so that noise from other load on the machine hits all of them alike;
//!    medians of per-round times, ratios against raw decode taken per round. Printed as
//!    `@@BENCH key=value...` lines that `cargo xtask bench pipeline` parses.
//!
//! Not part of `cargo test --all-targets` (`bench = false` in Cargo.toml; run it by name).

use std::{
    fs,
    hint::black_box,
    io::Write as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use criterion::{BatchSize, Criterion, Throughput};
use notify::{
    agent::journal::{self, Journal},
    export::sink::{Format, Sink},
    probe::ring::RawSink,
    stream::{
        decode as event,
        pipeline::{Pipeline, REORDER_WINDOW},
        reorder::Reorder,
    },
};
use notify_common::{self as abi, kind};
use notify_model::{
    Derived, EventData, Item, MountStep, Notification, Readiness, TraceEvent,
    journal::{Damage, DaxDevice, Reason},
};

/// Records per drain of the ring buffer (the trace loop calls `ready` once per wakeup).
const DRAIN: usize = 256;
/// Poison sequences in the delivered stream (7 records each).
const READY_POISONS: usize = 5_000;
/// Poison sequences in the premature stream: each one is journaled (one fdatasync each).
const PREMATURE_POISONS: usize = 200;
/// Records per fdatasync in the batching emulation.
const FSYNC_BATCH: usize = 64;

// ---------------------------------------------------------------------------------------------
// Input
// ---------------------------------------------------------------------------------------------

fn fixture(name: &str) -> Vec<TraceEvent> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../xtask/tests/fixtures/6.1-kprobe")
        .join(name)
        .join("events.jsonl");
    let text = fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    text.lines()
        .filter(|l| l.contains("\"seq\""))
        .filter(|l| {
            !l.contains("\"kind\":\"holder_state\"") && !l.contains("\"kind\":\"notification\"")
        })
        .map(|l| serde_json::from_str(l).expect("fixture line"))
        .collect()
}

/// The inverse of `event::decode_event`: what the BPF side writes.
fn encode(ev: &TraceEvent) -> abi::Event {
    let mut comm = [0u8; abi::COMM_LEN];
    let n = ev.comm.len().min(abi::COMM_LEN - 1);
    comm[..n].copy_from_slice(&ev.comm.as_bytes()[..n]);
    let mut out = abi::Event::default();
    let mount = |m: &MountStep| abi::Mount {
        holder: m.holder,
        arg: 0,
        s_flags: m.s_flags,
        ret: m.ret,
        dev: m.dev.0,
        _pad: 0,
    };
    let ret = |object, offset, len, ret| abi::Return {
        object,
        offset,
        len,
        ret,
    };
    let (k, payload) = match &ev.data {
        EventData::NotifyEnter {
            dax_dev,
            holder,
            holder_ops,
            offset,
            len,
            s_flags,
            mf_flags,
            readiness,
            dev,
        } => (
            kind::NOTIFY_ENTER,
            abi::Payload {
                notify: abi::Notify {
                    dax_dev: *dax_dev,
                    holder: *holder,
                    holder_ops: *holder_ops,
                    offset: *offset,
                    len: *len,
                    s_flags: *s_flags,
                    mf_flags: *mf_flags,
                    readiness: match readiness {
                        Readiness::NoHolder => abi::readiness::NO_HOLDER,
                        Readiness::Unknown => abi::readiness::UNKNOWN,
                        Readiness::NotBorn => abi::readiness::NOT_BORN,
                        Readiness::Born => abi::readiness::BORN,
                    },
                    dev: dev.0,
                    _pad: 0,
                },
            },
        ),
        EventData::NotifyExit {
            dax_dev,
            offset,
            len,
            ret: r,
        } => (
            kind::NOTIFY_EXIT,
            abi::Payload {
                ret: ret(*dax_dev, *offset, *len, *r),
            },
        ),
        EventData::XfsNotifyExit {
            dax_dev,
            offset,
            len,
            ret: r,
        } => (
            kind::XFS_NOTIFY_EXIT,
            abi::Payload {
                ret: ret(*dax_dev, *offset, *len, *r),
            },
        ),
        EventData::HolderGet {
            dax_dev,
            holder,
            holder_ops,
            start_off,
            dev,
        } => (
            kind::HOLDER_GET,
            abi::Payload {
                holder: abi::Holder {
                    dax_dev: *dax_dev,
                    holder: *holder,
                    holder_ops: *holder_ops,
                    start_off: *start_off,
                    dev: dev.0,
                    _pad: 0,
                },
            },
        ),
        EventData::HolderPut { dax_dev, holder } => (
            kind::HOLDER_PUT,
            abi::Payload {
                holder: abi::Holder {
                    dax_dev: *dax_dev,
                    holder: *holder,
                    ..Default::default()
                },
            },
        ),
        EventData::FillSuperEnter(m) => (kind::FILL_SUPER_ENTER, abi::Payload { mount: mount(m) }),
        EventData::FillSuperExit(m) => (kind::FILL_SUPER_EXIT, abi::Payload { mount: mount(m) }),
        EventData::MountfsEnter(m) => (kind::MOUNTFS_ENTER, abi::Payload { mount: mount(m) }),
        EventData::MountfsExit(m) => (kind::MOUNTFS_EXIT, abi::Payload { mount: mount(m) }),
        EventData::LogRecoverEnter(m) => {
            (kind::LOG_RECOVER_ENTER, abi::Payload { mount: mount(m) })
        }
        EventData::LogRecoverExit(m) => (kind::LOG_RECOVER_EXIT, abi::Payload { mount: mount(m) }),
        EventData::LogRecoverFinishEnter(m) => (
            kind::LOG_RECOVER_FINISH_ENTER,
            abi::Payload { mount: mount(m) },
        ),
        EventData::LogRecoverFinishExit(m) => (
            kind::LOG_RECOVER_FINISH_EXIT,
            abi::Payload { mount: mount(m) },
        ),
        EventData::GetTreeExit(m) => (kind::GET_TREE_EXIT, abi::Payload { mount: mount(m) }),
        EventData::PutSuper(m) => (kind::PUT_SUPER, abi::Payload { mount: mount(m) }),
        EventData::MemoryFailureEnter { pfn, flags } => (
            kind::MEMORY_FAILURE_ENTER,
            abi::Payload {
                mf: abi::MemoryFailure {
                    pfn: *pfn,
                    flags: *flags,
                    ..Default::default()
                },
            },
        ),
        EventData::MemoryFailureExit { pfn, flags, ret } => (
            kind::MEMORY_FAILURE_EXIT,
            abi::Payload {
                mf: abi::MemoryFailure {
                    pfn: *pfn,
                    flags: *flags,
                    ret: *ret,
                    ..Default::default()
                },
            },
        ),
        EventData::MfEvent {
            pfn,
            mf_type,
            result,
            ..
        } => (
            kind::MF_EVENT,
            abi::Payload {
                mf: abi::MemoryFailure {
                    pfn: *pfn,
                    mf_type: *mf_type,
                    result: *result,
                    ..Default::default()
                },
            },
        ),
        EventData::SyscallExit { syscall, ret } => (
            kind::SYSCALL_EXIT,
            abi::Payload {
                mount: abi::Mount {
                    arg: match syscall.as_str() {
                        "mount" => abi::syscall::MOUNT,
                        "fsconfig" => abi::syscall::FSCONFIG,
                        "fsmount" => abi::syscall::FSMOUNT,
                        _ => abi::syscall::UMOUNT,
                    },
                    ret: *ret,
                    ..Default::default()
                },
            },
        ),
        EventData::XfsTracepoint { tracepoint, dev } => (
            kind::XFS_TRACEPOINT,
            abi::Payload {
                mount: abi::Mount {
                    arg: if tracepoint == "xfs_log_recover" {
                        abi::xfs_tp::LOG_RECOVER
                    } else {
                        abi::xfs_tp::LOG_UMOUNT_WRITE
                    },
                    dev: dev.0,
                    ..Default::default()
                },
            },
        ),
        EventData::Sigbus {
            target,
            target_comm,
            code,
            result,
        } => {
            let mut tc = [0u8; abi::COMM_LEN];
            let n = target_comm.len().min(abi::COMM_LEN - 1);
            tc[..n].copy_from_slice(&target_comm.as_bytes()[..n]);
            (
                kind::SIGBUS,
                abi::Payload {
                    signal: abi::Signal {
                        sig: 7,
                        code: *code,
                        target: *target as i32,
                        result: *result,
                        comm: tc,
                    },
                },
            )
        }
        other => panic!("fixture has an unexpected kind {}", other.kind_name()),
    };
    out.header = abi::Header {
        seq: ev.seq,
        ktime_ns: ev.ktime_ns,
        pid_tgid: ((ev.pid as u64) << 32) | ev.tid as u64,
        cpu: ev.cpu,
        kind: k,
        comm,
    };
    out.payload = payload;
    out
}

fn bytes(ev: &abi::Event) -> Vec<u8> {
    // SAFETY: abi::Event is plain data; we copy its bytes.
    unsafe {
        std::slice::from_raw_parts(
            (ev as *const abi::Event).cast::<u8>(),
            size_of::<abi::Event>(),
        )
    }
    .to_vec()
}

/// Shift a poison sequence to page `i`: fresh pfn, offset and timestamps.
fn shift(ev: &TraceEvent, i: u64) -> TraceEvent {
    let mut e = ev.clone();
    let page = i * 4096;
    e.ktime_ns += i * 20_000;
    match &mut e.data {
        EventData::MemoryFailureEnter { pfn, .. }
        | EventData::MemoryFailureExit { pfn, .. }
        | EventData::MfEvent { pfn, .. } => *pfn += i,
        EventData::NotifyEnter { offset, .. }
        | EventData::NotifyExit { offset, .. }
        | EventData::XfsNotifyExit { offset, .. } => *offset += page,
        _ => {}
    }
    e
}

/// A stream: `mount` events, then `n` copies of `poison`, then `tail`; renumbered from 1, with
/// every 16th adjacent pair swapped (out-of-order commits from two CPUs).
fn stream(
    mount: &[TraceEvent],
    poison: &[TraceEvent],
    n: usize,
    tail: &[TraceEvent],
) -> Vec<Vec<u8>> {
    let mut evs: Vec<TraceEvent> = mount.to_vec();
    for i in 0..n as u64 {
        evs.extend(poison.iter().map(|e| shift(e, i)));
    }
    evs.extend(tail.iter().cloned());
    for (i, e) in evs.iter_mut().enumerate() {
        e.seq = i as u64 + 1;
    }
    let mut raw: Vec<Vec<u8>> = evs.iter().map(|e| bytes(&encode(e))).collect();
    let mut i = 7;
    while i + 1 < raw.len() {
        raw.swap(i, i + 1);
        i += 16;
    }
    raw
}

fn by_kind(evs: &[TraceEvent], seqs: std::ops::RangeInclusive<u64>) -> Vec<TraceEvent> {
    evs.iter()
        .filter(|e| seqs.contains(&e.seq))
        .cloned()
        .collect()
}

/// The delivered stream: a full mount (remount fixture: fill_super .. mount syscall exit), then
/// READY_POISONS poisoned pages on the ready filesystem. Nothing is journaled.
fn ready_stream() -> Vec<Vec<u8>> {
    let evs = fixture("remount");
    let mount = by_kind(&evs, 5..=13);
    // The kernel's own SIGBUS of the mapper (XFS's kill) is part of it since the fixtures
    // were recorded with the signal probe.
    let poison = by_kind(&evs, 14..=20);
    assert_eq!(poison.len(), 7, "remount fixture: poison sequence");
    stream(&mount, &poison, READY_POISONS, &[])
}

/// The premature stream: a mount held in log recovery (premature fixture: fill_super ..
/// log_recover_enter), PREMATURE_POISONS poisoned pages XFS drops (-EIO, not_born), then the
/// rest of the mount. Every notification needs a journal record.
fn premature_stream() -> Vec<Vec<u8>> {
    let evs = fixture("premature");
    let mount = by_kind(&evs, 1..=5);
    let poison = by_kind(&evs, 6..=11);
    let tail = by_kind(&evs, 12..=16);
    assert_eq!(poison.len(), 6, "premature fixture: poison sequence");
    stream(&mount, &poison, PREMATURE_POISONS, &tail)
}

// ---------------------------------------------------------------------------------------------
// The variants
// ---------------------------------------------------------------------------------------------

fn decode_only(raw: &[Vec<u8>]) -> usize {
    let mut n = 0;
    for r in raw {
        n += black_box(event::decode(r).expect("decodes")).seq as usize & 1;
    }
    n
}

fn decode_reorder(raw: &[Vec<u8>]) -> usize {
    let mut ro: Reorder<TraceEvent> = Reorder::new(1, REORDER_WINDOW);
    let mut n = 0;
    let now = Instant::now();
    for chunk in raw.chunks(DRAIN) {
        for r in chunk {
            ro.push(event::decode(r).expect("decodes"), now);
        }
        n += ro.pop_ready(now).len();
    }
    n += ro.flush().len();
    assert_eq!(n, raw.len());
    n
}

/// The trace loop's drain: `Pipeline::push_raw` per record, `ready` after every `DRAIN` records
/// and once at the end (derived events on, as the agent runs it), each batch handed to `batch`.
/// Returns how many items came out, and the pipeline (for its totals).
fn drain(raw: &[Vec<u8>], mut batch: impl FnMut(Vec<Item>)) -> (usize, Pipeline) {
    let mut p = Pipeline::new();
    let mut out = 0;
    let now = Instant::now();
    let mut take = |items: Vec<Item>| {
        out += items.len();
        batch(items);
    };
    for chunk in raw.chunks(DRAIN) {
        for r in chunk {
            p.push_raw(r, now);
        }
        take(p.ready(now, false));
    }
    take(p.ready(now, true));
    assert_eq!(p.totals.events as usize, raw.len());
    (out, p)
}

/// What the trace loop does: [`drain`]. With `journal`, every notification the tracker says
/// needs replay is appended (fsynced) to the journal, as the agent's `journal_notification`
/// does once it has identified the pmem disk (identification reads sysfs and is left out).
fn pipeline(raw: &[Vec<u8>], mut journal: Option<&mut Journal>) -> (usize, usize) {
    let mut appended = 0;
    let (out, p) = drain(raw, |evs| {
        if let Some(j) = journal.as_deref_mut() {
            for ev in &evs {
                if let Item::Notification(n) = ev
                    && n.data.verdict.needs_replay()
                {
                    j.append(journal_record(n)).expect("journal append");
                    appended += 1;
                }
            }
        }
        black_box(evs);
    });
    assert_eq!(p.totals.seq_gaps, 0);
    (out, appended)
}

/// What `notify trace -o json` adds: every item of the pipeline (derived ones included) written
/// as a JSON line (the wall-time stamp, the host name, the item), here into `io::sink()`.
fn pipeline_json(raw: &[Vec<u8>]) -> usize {
    let mut sink = Sink::new(Format::Json, Box::new(std::io::sink()));
    drain(raw, |items| {
        for i in &items {
            sink.write(i).expect("a JSON line");
        }
    })
    .0
}

fn journal_record(d: &Derived<Notification>) -> Damage {
    let n = &d.data;
    Damage {
        dax: DaxDevice {
            name: "pmem0".into(),
            major: 259,
            minor: 0,
        },
        dax_offset: n.offset,
        len: n.len,
        mf_flags: n.mf_flags,
        kernel_seq: n.exit_seq,
        ktime_ns: d.at.ktime_ns,
        wall_ns: journal::now_ns(),
        reason: Reason::Premature,
        namespace: None,
    }
}

/// What a batch API could do: the same frames (`journal::encode_frame` of the same JSON), one
/// write each, one fdatasync per FSYNC_BATCH records and at the end of the drain. Not the
/// journal: its contract is one fdatasync per record, and this does not change it.
fn batched_frames(raw: &[Vec<u8>], file: &mut fs::File) -> (usize, usize) {
    let mut p = Pipeline::new();
    let mut out = 0;
    let mut appended = 0;
    let mut unsynced = 0;
    let now = Instant::now();
    let mut id = 0u64;
    let mut handle = |evs: Vec<Item>, appended: &mut usize, unsynced: &mut usize| {
        let n = evs.len();
        for ev in &evs {
            if let Item::Notification(n) = ev
                && n.data.verdict.needs_replay()
            {
                id += 1;
                let e = journal::Entry::Notification {
                    id,
                    n: journal_record(n),
                };
                let frame = journal::encode_frame(&serde_json::to_vec(&e).unwrap());
                file.write_all(&frame).unwrap();
                *appended += 1;
                *unsynced += 1;
                if *unsynced == FSYNC_BATCH {
                    file.sync_data().unwrap();
                    *unsynced = 0;
                }
            }
        }
        if *unsynced > 0 {
            file.sync_data().unwrap();
            *unsynced = 0;
        }
        n
    };
    for chunk in raw.chunks(DRAIN) {
        for r in chunk {
            p.push_raw(r, now);
        }
        out += handle(p.ready(now, false), &mut appended, &mut unsynced);
    }
    out += handle(p.ready(now, true), &mut appended, &mut unsynced);
    (out, appended)
}

fn scratch_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-pipeline");
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn fresh_journal(dir: &Path, round: usize) -> Journal {
    let p = dir.join(format!("journal-{round}"));
    let _ = fs::remove_file(&p);
    Journal::open(&p).expect("journal open").0
}

fn fstype(dir: &Path) -> String {
    let out = std::process::Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(dir)
        .output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// criterion
// ---------------------------------------------------------------------------------------------

fn criterion_benches(c: &mut Criterion) {
    let ready = ready_stream();
    let mut g = c.benchmark_group("pipeline_ready");
    g.throughput(Throughput::Elements(ready.len() as u64));
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));
    g.sample_size(30);
    g.bench_function("decode", |b| b.iter(|| decode_only(&ready)));
    g.bench_function("decode_reorder", |b| b.iter(|| decode_reorder(&ready)));
    g.bench_function("decode_reorder_tracker", |b| {
        b.iter(|| pipeline(&ready, None))
    });
    g.finish();

    let prem = premature_stream();
    let dir = scratch_dir();
    let mut g = c.benchmark_group("pipeline_premature");
    g.throughput(Throughput::Elements(prem.len() as u64));
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("decode_reorder_tracker", |b| {
        b.iter(|| pipeline(&prem, None))
    });
    let mut round = 0;
    g.bench_function("journal_fsync_per_record", |b| {
        b.iter_batched(
            || {
                round += 1;
                fresh_journal(&dir, round)
            },
            |mut j| pipeline(&prem, Some(&mut j)),
            BatchSize::PerIteration,
        )
    });
    g.finish();
    let _ = fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// Alternated rounds (the figures)
// ---------------------------------------------------------------------------------------------

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Runs `variants` in rotated order for `rounds` rounds; returns per-variant per-round seconds.
fn alternate(
    rounds: usize,
    variants: &mut [(&str, &mut dyn FnMut(usize) -> f64)],
) -> Vec<Vec<f64>> {
    let k = variants.len();
    let mut times = vec![Vec::with_capacity(rounds); k];
    for r in 0..rounds {
        for j in 0..k {
            let i = (r + j) % k;
            times[i].push((variants[i].1)(r));
        }
    }
    times
}

fn timed(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

fn report(
    stream: &str,
    events: usize,
    names: &[&str],
    times: &[Vec<f64>],
    extra: &[(usize, &str)],
) {
    // Ratio per round against variant 0 (the baseline), then the median of those.
    for (i, name) in names.iter().enumerate() {
        let mut t = times[i].clone();
        let med = median(&mut t);
        let mut ratios: Vec<f64> = times[i].iter().zip(&times[0]).map(|(a, b)| a / b).collect();
        let ratio = median(&mut ratios);
        let mut line = format!(
            "@@BENCH figure=pipeline stream={stream} variant={name} events={events} rounds={} median_s={med:.6} events_per_s={:.0} ratio_vs_decode={ratio:.2}",
            times[i].len(),
            events as f64 / med
        );
        for (j, e) in extra {
            if *j == i {
                line.push(' ');
                line.push_str(e);
            }
        }
        println!("{line}");
    }
}

fn alternated_figures() {
    let rounds: usize = std::env::var("NOTIFY_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let ready = ready_stream();
    let n = ready.len();
    let names = [
        "decode",
        "decode_reorder",
        "decode_reorder_tracker",
        "decode_reorder_tracker_json",
    ];
    let times = alternate(
        rounds,
        &mut [
            ("decode", &mut |_| {
                timed(|| {
                    black_box(decode_only(&ready));
                })
            }),
            ("decode_reorder", &mut |_| {
                timed(|| {
                    black_box(decode_reorder(&ready));
                })
            }),
            ("decode_reorder_tracker", &mut |_| {
                timed(|| {
                    black_box(pipeline(&ready, None));
                })
            }),
            ("decode_reorder_tracker_json", &mut |_| {
                timed(|| {
                    black_box(pipeline_json(&ready));
                })
            }),
        ],
    );
    report("ready", n, &names, &times, &[]);

    let prem = premature_stream();
    let n = prem.len();
    let dir = scratch_dir();
    let fs_name = fstype(&dir);
    let mut appended = 0;
    let mut batched_appended = 0;
    let names = [
        "decode",
        "decode_reorder_tracker",
        "journal_fsync_per_record",
        "frames_fsync_batched",
    ];
    let prem_rounds = rounds.min(7);
    let times = {
        let dir = &dir;
        let prem = &prem;
        let appended = &mut appended;
        let batched_appended = &mut batched_appended;
        alternate(
            prem_rounds,
            &mut [
                ("decode", &mut |_| {
                    timed(|| {
                        black_box(decode_only(prem));
                    })
                }),
                ("decode_reorder_tracker", &mut |_| {
                    timed(|| {
                        black_box(pipeline(prem, None));
                    })
                }),
                ("journal_fsync_per_record", &mut |r| {
                    let mut j = fresh_journal(dir, r);
                    let t = timed(|| {
                        *appended = pipeline(prem, Some(&mut j)).1;
                    });
                    drop(j);
                    t
                }),
                ("frames_fsync_batched", &mut |r| {
                    let p = dir.join(format!("frames-{r}"));
                    let mut f = fs::OpenOptions::new()
                        .create(true)
                        .truncate(true)
                        .write(true)
                        .open(&p)
                        .unwrap();
                    f.sync_all().unwrap();
                    timed(|| {
                        *batched_appended = batched_frames(prem, &mut f).1;
                    })
                }),
            ],
        )
    };
    let mut j_med = times[2].clone();
    let j_med = median(&mut j_med);
    let mut b_med = times[3].clone();
    let b_med = median(&mut b_med);
    let e1 = format!(
        "journal_appends={appended} appends_per_s={:.0} fs={fs_name}",
        appended as f64 / j_med
    );
    let e2 = format!(
        "journal_appends={batched_appended} appends_per_s={:.0} batch={FSYNC_BATCH} fs={fs_name}",
        batched_appended as f64 / b_med
    );
    report("premature", n, &names, &times, &[(2, &e1), (3, &e2)]);
    let _ = fs::remove_dir_all(&dir);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // NOTIFY_BENCH_FIGURES_ONLY=1 skips criterion (cargo xtask bench pipeline --quick).
    if std::env::var_os("NOTIFY_BENCH_FIGURES_ONLY").is_none() {
        let mut c = Criterion::default().configure_from_args();
        criterion_benches(&mut c);
        c.final_summary();
    }
    // criterion's --test mode (cargo test --benches) only checks that the code runs.
    if args.iter().any(|a| a == "--test" || a == "--list") {
        return;
    }
    alternated_figures();
}
