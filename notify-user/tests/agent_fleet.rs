//! The fleet agent for real: the `notify` binary as `notify agent` on this host, against a real
//! XFS on a loop device.
//!
//! - Every line it writes validates against docs/EVENTS.md's "Fields by kind" table (parsed
//!   here, so doc and code cannot drift), across rotated files, and one value of every variant
//!   in the code does too.
//! - A real Prometheus server (Debian's `prometheus`, started directly) scrapes its /metrics;
//!   values are read back through Prometheus's query API: events counted as they flow, the
//!   journal's pending depth kept across a restart, probes by method, build and kernel info,
//!   SIGHUP reloads; /healthz agrees with the probes.
//!
//! This host's kernel has tracepoints only (no kprobes, no trampolines): the events driven here
//! are mount/umount syscall exits and XFS tracepoints. Real notifications are the VM lab's.

mod common;
#[path = "common/schema.rs"]
mod schema;

use std::{
    collections::BTreeSet,
    fs,
    io::{BufRead, BufReader, Write},
    net::{TcpListener, TcpStream},
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::{TempDir, Xfs};
use notify::{
    agent::journal,
    export::{
        rotate,
        sink::{Format, Sink},
    },
};
use notify_model::{
    Derived, Dev, EventData, Header, Item, MountStep, Notification, Readiness, State, TraceEvent,
    Transition, Verdict,
    decision::{Act, Decision, Policy, Why},
    journal::{Cut, Reason, Recovery},
    record::{AgentRecord as Action, IdentifiedBy, NdctlNames, OwnerReport, ReplayReport},
};

// ---------------------------------------------------------------------------------------------
// Doc <-> code, no root needed
// ---------------------------------------------------------------------------------------------

fn every_event() -> Vec<EventData> {
    let step = MountStep {
        holder: 0xffff_8880_0000_1000,
        dev: Dev::from_user(libc::makedev(259, 1)),
        s_flags: 0x7000_0000,
        ret: -5,
    };
    let dev = step.dev;
    vec![
        EventData::NotifyEnter {
            dax_dev: 0xffff_8880_047e_0000,
            holder: 0,
            holder_ops: 0,
            offset: 1 << 20,
            len: 4096,
            s_flags: 0,
            mf_flags: 0x20,
            readiness: Readiness::NotBorn,
            dev: Dev(0),
        },
        EventData::NotifyExit {
            dax_dev: 1,
            offset: 0,
            len: 4096,
            ret: -5,
        },
        EventData::XfsNotifyExit {
            dax_dev: 1,
            offset: 0,
            len: 4096,
            ret: -5,
        },
        EventData::HolderGet {
            dax_dev: 1,
            holder: 2,
            holder_ops: 3,
            start_off: 0,
            dev,
        },
        EventData::HolderPut {
            dax_dev: 1,
            holder: 2,
        },
        EventData::FillSuperEnter(step),
        EventData::FillSuperExit(step),
        EventData::MountfsEnter(step),
        EventData::MountfsExit(step),
        EventData::LogRecoverEnter(step),
        EventData::LogRecoverExit(step),
        EventData::LogRecoverFinishEnter(step),
        EventData::LogRecoverFinishExit(step),
        EventData::GetTreeExit(step),
        EventData::PutSuper(step),
        EventData::MemoryFailureEnter {
            pfn: 0x12345,
            flags: 0x20,
        },
        EventData::MemoryFailureExit {
            pfn: 0x12345,
            flags: 0x20,
            ret: 0,
        },
        EventData::MfEvent {
            pfn: 0x12345,
            mf_type: 10,
            result: 3,
            type_name: Some("dax page".into()),
            result_name: None,
        },
        EventData::SyscallExit {
            syscall: "mount".into(),
            ret: 0,
        },
        EventData::XfsTracepoint {
            tracepoint: "xfs_log_umount_write".into(),
            dev,
        },
        EventData::Sigbus {
            target: 4242,
            target_comm: "victim".into(),
            code: 4,
            result: 0,
        },
        EventData::Unknown { raw_kind: 99 },
    ]
}

/// One derived item of each kind, with the header of its cause.
fn every_derived() -> Vec<Item> {
    let fs_error = Item::FsError(notify_model::fserror::FsError {
        ktime_ns: 5,
        dev: Dev::from_user(libc::makedev(259, 1)),
        mount_point: "/mnt/pmem".into(),
        what: notify_model::fserror::FsErrorKind::DataLost,
        error: 5,
        error_count: 1,
        ino: Some(131),
        generation: Some(7),
        path: Some("/mnt/pmem/f".into()),
        notification_seq: Some(9),
    });
    let dev = Dev::from_user(libc::makedev(259, 1));
    let at = Header {
        seq: 1,
        ktime_ns: 2,
        cpu: 0,
        pid: 3,
        tid: 3,
        comm: "mount".into(),
    };
    let health = Item::Health(notify_model::health::Health {
        ktime_ns: 5,
        time_ns: 6,
        dev: Dev::from_user(libc::makedev(259, 1)),
        mount_point: "/mnt/pmem".into(),
        domain: "datadev".into(),
        what: "media_error".into(),
        structures: vec![],
        group: None,
        ino: None,
        generation: None,
        daddr: Some(2048),
        sectors: Some(8),
        pos: None,
        len: None,
        error: None,
        lost: None,
        reasons: vec![],
    });
    vec![
        fs_error,
        health,
        Item::HolderState(Derived {
            at: at.clone(),
            data: Transition {
                dax_dev: 1,
                holder: 2,
                dev,
                from: None,
                to: State::Registered,
                cause: "holder_get".into(),
            },
        }),
        Item::Notification(Derived {
            at,
            data: Notification {
                dax_dev: 1,
                holder: 2,
                dev,
                dev_from: None,
                pfn: None,
                start_off: 0,
                offset: 1 << 20,
                len: 4096,
                mf_flags: 0x20,
                ret: -5,
                xfs_ret: Some(-5),
                readiness: None,
                state: Some(State::Mounting),
                verdict: Verdict::Premature,
                enter_seq: None,
                exit_seq: 7,
                kills: vec![],
            },
        }),
    ]
}

fn decision() -> Decision {
    Decision {
        pid: 4242,
        comm: "victim".into(),
        action: Act::Signalled,
        class: Why::Sent,
        reason: "maps the damaged range".into(),
        policy: Policy::Sigbus,
        signal: Some("SIGBUS".into()),
        si_code: Some(0),
        dry_run: false,
        addr: Some(0x7f00_0000_0000),
        exited: None,
    }
}

fn every_action() -> Vec<Action> {
    let report = ReplayReport {
        mount_point: "/mnt/pmem".into(),
        dax_offset: 1 << 20,
        len: 4096,
        fs_range: None,
        owners: vec![OwnerReport {
            kind: "file".into(),
            ino: Some(131),
            paths: vec!["/mnt/pmem/f".into()],
            ranges: vec![(0, 4096)],
            physical: 1 << 20,
            length: 4096,
            shared: false,
            metadata: false,
        }],
        decisions: vec![decision()],
        error: None,
        xfs_told: true,
        advice: vec!["unmount /mnt/pmem and run `xfs_repair` on its device".into()],
    };
    vec![
        Action::Journaled {
            id: 1,
            reason: Reason::Premature,
            disk: "pmem0".into(),
            ndctl: NdctlNames {
                namespace: Some("namespace0.0".into()),
                region: Some("region0".into()),
            },
            dax_offset: 1 << 20,
            len: 4096,
            identified_by: IdentifiedBy::HolderRegistration,
        },
        Action::Unidentified {
            dax_offset: 0,
            len: 4096,
            why: "no holder".into(),
        },
        Action::Replayed {
            id: 1,
            disk: "pmem0".into(),
            ndctl: NdctlNames {
                namespace: Some("namespace0.0".into()),
                region: Some("region0".into()),
            },
            report: report.clone(),
        },
        Action::Replayed {
            id: 2,
            disk: "pmem0".into(),
            // A disk outside libnvdimm: no names.
            ndctl: NdctlNames::default(),
            report: ReplayReport {
                error: Some("not mounted".into()),
                owners: vec![],
                decisions: vec![],
                ..report
            },
        },
        Action::Enforcement {
            id: 1,
            decision: decision(),
        },
        Action::Enforcement {
            id: 1,
            decision: Decision {
                action: Act::Refused,
                class: Why::Pid1,
                signal: None,
                si_code: None,
                addr: None,
                exited: Some(false),
                ..decision()
            },
        },
        Action::MountNotVisible {
            dev: Dev::from_user(libc::makedev(259, 1)),
            waited_ms: 10_000,
        },
        Action::XfsTold {
            id: 1,
            disk: "pmem0".into(),
            mount_point: "/mnt/pmem".into(),
            mount: "0b9c7e7c-boot/42".into(),
            start: 2048,
            end: 2056,
            bad: vec![(2048, 8)],
            error: None,
        },
        Action::XfsReported {
            id: 1,
            disk: "pmem0".into(),
            reported: vec![131],
            owners: vec![131, 132],
            missing: vec![132],
            merged: 0,
        },
        Action::Closed {
            id: 2,
            disk: "pmem0".into(),
            why: "stale".into(),
        },
        Action::Redriven {
            id: 1,
            disk: "pmem0".into(),
            phys: vec![0x4010_0000],
            dry_run: false,
            error: None,
        },
        Action::RedriveRefused {
            id: 1,
            disk: "pmem0".into(),
            why: "metadata".into(),
        },
        Action::MetadataShutdown {
            id: 1,
            disk: "pmem0".into(),
            mount_point: "/mnt/pmem".into(),
            metadata: vec!["ag header".into()],
            dry_run: true,
            error: None,
        },
        Action::JournalWriteFailed {
            op: "append".into(),
            id: None,
            disk: "pmem0".into(),
            dax_offset: 1 << 20,
            len: 4096,
            error: "journal /var/lib/notify/journal: append: No space left on device".into(),
            action: "held in memory, retried".into(),
        },
        Action::DeviceRemoval {
            dax_offset: 0,
            len: u64::MAX,
            mf_flags: 0x80,
            disk: Some("pmem0".into()),
        },
        Action::JournalRecovered {
            recovery: Recovery {
                path: "/var/lib/notify/journal".into(),
                created: false,
                records: 3,
                cuts: vec![Cut {
                    offset: 100,
                    len: 20,
                    reason: "torn tail".into(),
                }],
                rewritten: false,
                orphan_states: vec![9],
            },
        },
    ]
}

/// A writer the test can read back: what a `Sink` wrote.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The JSON line the agent's sink writes for one item (wall time and host name included).
fn sink_line(item: &Item) -> String {
    let buf = Shared::default();
    let mut sink = Sink::new(Format::Json, Box::new(buf.clone()));
    sink.write(item).unwrap();
    sink.flush().unwrap();
    let bytes = buf.0.lock().unwrap().clone();
    let line = String::from_utf8(bytes).unwrap();
    assert!(
        line.ends_with('\n') && line.matches('\n').count() == 1,
        "{line:?}"
    );
    // The VM lab's checks read these lines back as items: the stamp must not get in the way.
    if let Err(e) = serde_json::from_str::<Item>(&line) {
        panic!("a sink line does not read back as an item ({e}): {line}");
    }
    line.trim_end().to_string()
}

/// One sink line of every variant in the code.
fn every_kind_lines() -> Vec<String> {
    let mut lines = Vec::new();
    for data in every_event() {
        let ev = TraceEvent {
            seq: 1,
            ktime_ns: 2,
            cpu: 0,
            pid: 3,
            tid: 3,
            comm: "mount".into(),
            data,
        };
        lines.push(sink_line(&Item::Kernel(ev)));
    }
    lines.extend(every_derived().iter().map(sink_line));
    lines.extend(
        every_action()
            .into_iter()
            .map(|a| sink_line(&Item::Record(a))),
    );
    lines
}

const T: &str = r#""time":"2026-12-01T15:54:50.123456789Z","host":"h""#;

/// Lines the schema must reject: a missing field, an undocumented one, a wrong type, an unknown
/// kind, no wall time, a wall time that is not RFC 3339 with nanoseconds, no host.
fn bad_lines() -> Vec<String> {
    vec![
        format!(
            r#"{{{T},"kind":"journaled","id":1,"reason":"premature","disk":"pmem0","dax_offset":0,"len":1}}"#
        ),
        format!(r#"{{{T},"kind":"unidentified","dax_offset":0,"len":1,"why":"x","extra":1}}"#),
        format!(r#"{{{T},"kind":"mount_not_visible","dev":"259","waited_ms":1}}"#),
        format!(r#"{{{T},"kind":"syscall_exit","syscall":"mount","ret":0}}"#),
        format!(r#"{{{T},"kind":"no_such_kind"}}"#),
        r#"{"host":"h","kind":"unidentified","dax_offset":0,"len":1,"why":"x"}"#.into(),
        r#"{"time":"2026-12-01 15:54:50","host":"h","kind":"unidentified","dax_offset":0,"len":1,"why":"x"}"#.into(),
        r#"{"time":"2026-12-01T15:54:50.123456789Z","kind":"unidentified","dax_offset":0,"len":1,"why":"x"}"#.into(),
    ]
}

#[test]
fn every_kind_in_the_code_is_documented() {
    let schema = schema::parse(schema::EVENTS_MD);
    let seen: BTreeSet<String> = every_kind_lines()
        .iter()
        .map(|l| schema::validate(&schema, l).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let documented: BTreeSet<String> = schema.keys().cloned().collect();
    assert_eq!(
        seen, documented,
        "docs/EVENTS.md lists kinds the code does not make, or this test misses a variant"
    );
    // The validator really rejects.
    let ok = format!(r#"{{{T},"kind":"unidentified","dax_offset":0,"len":1,"why":"x"}}"#);
    schema::validate(&schema, &ok).unwrap_or_else(|e| panic!("{e}"));
    for b in bad_lines() {
        assert!(schema::validate(&schema, &b).is_err(), "accepted {b}");
    }
}

const SCHEMA_JSON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/events.schema.json");

/// docs/events.schema.json is generated from docs/EVENTS.md's table; NOTIFY_BLESS=1 rewrites it.
#[test]
fn events_schema_json_is_generated_from_events_md() {
    let schema = schema::parse(schema::EVENTS_MD);
    let want = serde_json::to_string_pretty(&schema::json_schema(&schema)).unwrap() + "\n";
    if std::env::var_os("NOTIFY_BLESS").is_some() {
        fs::write(SCHEMA_JSON, &want).unwrap();
    }
    let have = fs::read_to_string(SCHEMA_JSON).unwrap_or_default();
    assert!(
        have == want,
        "docs/events.schema.json is not what docs/EVENTS.md's table generates: run \
         `NOTIFY_BLESS=1 cargo test -p notify-user --test agent_fleet events_schema_json` and \
         commit it"
    );
}

/// The published schema, checked by an independent validator (Python's `jsonschema`, installed
/// by `cargo xtask setup`): every variant's real sink line passes, every bad line fails.
#[test]
fn every_kind_validates_against_events_schema_json() {
    let tmp = TempDir::new("schema-py");
    let good = tmp.path().join("good.jsonl");
    let bad = tmp.path().join("bad.jsonl");
    fs::write(&good, every_kind_lines().join("\n") + "\n").unwrap();
    fs::write(&bad, bad_lines().join("\n") + "\n").unwrap();
    let script = r#"
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
v = jsonschema.Draft202012Validator(schema)
fails = 0
for line in open(sys.argv[2]):
    errs = list(v.iter_errors(json.loads(line)))
    if errs:
        fails += 1
        print("REJECTED GOOD", errs[0].message, line.strip())
for line in open(sys.argv[3]):
    if v.is_valid(json.loads(line)):
        fails += 1
        print("ACCEPTED BAD", line.strip())
sys.exit(1 if fails else 0)
"#;
    let out = Command::new("python3")
        .args(["-c", script, SCHEMA_JSON])
        .arg(&good)
        .arg(&bad)
        .output()
        .expect("python3 (cargo xtask setup installs its jsonschema module)");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !text.contains("No module named 'jsonschema'"),
        "Python's jsonschema is missing: run `cargo xtask setup`"
    );
    assert!(out.status.success(), "jsonschema disagrees:\n{text}");
}

// ---------------------------------------------------------------------------------------------
// The real agent
// ---------------------------------------------------------------------------------------------

/// A running `notify agent`; stderr is collected in the background.
struct AgentProc {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl AgentProc {
    fn start(args: &[&str]) -> AgentProc {
        let a = AgentProc::spawn(args, &[]);
        // Ready once the journal line is out (after attach, metrics, journal open).
        a.wait_stderr("notify: journal ", Duration::from_secs(60));
        a
    }

    fn spawn(args: &[&str], env: &[(&str, &str)]) -> AgentProc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_notify"))
            .arg("agent")
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn notify agent");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for l in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(l);
            }
        });
        AgentProc { child, stderr }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    fn wait_stderr(&self, needle: &str, t: Duration) -> String {
        let deadline = Instant::now() + t;
        loop {
            if let Some(l) = self
                .stderr
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return l.clone();
            }
            if Instant::now() > deadline {
                panic!("agent never said {needle:?}; stderr:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// SIGTERM, and the exit code.
    fn stop(mut self) -> (i32, String) {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                return (st.code().unwrap_or(-1), self.stderr());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("agent did not exit on SIGTERM:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn metrics_addr(&self) -> String {
        let l = self.wait_stderr("notify: metrics on http://", Duration::from_secs(10));
        l.split("http://")
            .nth(1)
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_string()
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Held by the tests of this binary that mount and unmount (every agent here sees the host's
/// mount syscalls and XFS tracepoints) and by the idle test, whose window must see none: the
/// tests of a binary run in parallel threads, and a sibling's mount woke the idle agent once in
/// CI.
static HOST_MOUNTS: Mutex<()> = Mutex::new(());

/// [`HOST_MOUNTS`], also when a test that held it panicked.
fn host_mounts() -> std::sync::MutexGuard<'static, ()> {
    HOST_MOUNTS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Unmount and mount again `n` times (the XFS stays mounted at the end, for its Drop).
fn cycle_mount(x: &Xfs, n: usize) {
    let dev = x.loopdev.clone().unwrap();
    for _ in 0..n {
        run(Command::new("umount").arg(&x.mnt));
        run(Command::new("mount").arg(&dev).arg(&x.mnt));
    }
}

/// Now, as notify writes it.
fn wall_now() -> String {
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    notify::export::stamp::rfc3339(ns as i128)
}

fn output_files(path: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = (1..100)
        .map(|i| rotate::rotated_name(path, i))
        .take_while(|p| p.exists())
        .collect();
    v.reverse();
    v.push(path.to_path_buf());
    v
}

#[test]
#[ignore = "needs root (BPF, loop devices, mount): run as root with --include-ignored"]
fn agent_output_validates_against_events_md() {
    common::require_root("agent_output_validates_against_events_md");
    let _mounts = host_mounts();
    let schema = schema::parse(schema::EVENTS_MD);
    let xfs = Xfs::new("rmapbt=1");
    let tmp = TempDir::new("agent-schema");
    let journal = tmp.path().join("journal");
    common::seed_journal(&journal, true);
    let out = tmp.path().join("log").join("events.jsonl");
    let began = wall_now();
    let agent = AgentProc::start(&[
        "-o",
        "json",
        "--verbose",
        "--journal",
        journal.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--rotate-size",
        "4K",
        "--rotate-keep",
        "50",
        "--metrics-addr",
        "off",
    ]);
    // ~3 events of ~140 bytes per cycle: 30 cycles rotate the 4K file a few times.
    cycle_mount(&xfs, 30);
    std::thread::sleep(Duration::from_millis(300));
    let (code, stderr) = agent.stop();
    let ended = wall_now();
    assert_eq!(code, 0, "agent must exit 0 on SIGTERM:\n{stderr}");
    assert!(stderr.contains("1 pending"), "{stderr}");
    let host = notify::export::stamp::host_name();
    assert!(!host.is_empty());

    let files = output_files(&out);
    assert!(files.len() > 1, "4K rotation never happened: {files:?}");
    let mut kinds = BTreeSet::new();
    let mut last_seq = None;
    let mut n = 0;
    for f in &files {
        let text = fs::read_to_string(f).unwrap();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{} ends mid-line",
            f.display()
        );
        if f != &out {
            assert!(
                text.len() <= 4096,
                "{} is {} bytes",
                f.display(),
                text.len()
            );
        }
        for line in text.lines() {
            n += 1;
            let kind = schema::validate(&schema, line).unwrap_or_else(|e| panic!("{e}"));
            // Kernel order survives rotation: seq never goes back from one file to the next.
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            // Wall time: of the event (kernel events) or of the record, inside this test's run
            // (RFC 3339 UTC of fixed width sorts as time does); the host is this one.
            let t = v["time"].as_str().unwrap();
            assert!(
                began.as_str() <= t && t <= ended.as_str(),
                "{t} outside {began}..{ended}: {line}"
            );
            assert_eq!(v["host"], host.as_str(), "{line}");
            if let Some(s) = v["seq"].as_u64() {
                assert!(
                    last_seq.is_none_or(|l| l <= s),
                    "seq {s} after {last_seq:?}"
                );
                last_seq = Some(s);
            }
            kinds.insert(kind);
        }
    }
    eprintln!("{n} lines in {} files, kinds {kinds:?}", files.len());
    for k in ["syscall_exit", "xfs_tracepoint", "journal_recovered"] {
        assert!(kinds.contains(k), "no {k} in the agent's output: {kinds:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// systemd readiness (Type=notify)
// ---------------------------------------------------------------------------------------------

/// The messages the agent sends to a real AF_UNIX datagram socket named by NOTIFY_SOCKET (as
/// systemd creates for a Type=notify unit), until `until` is in one; each message is one
/// datagram of newline-separated assignments.
fn recv_until(sock: &UnixDatagram, until: &str, agent: &AgentProc) -> Vec<String> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut buf = vec![0u8; 4096];
    while Instant::now() < deadline {
        match sock.recv(&mut buf) {
            Ok(n) => {
                let m = String::from_utf8_lossy(&buf[..n]).to_string();
                let done = m.lines().any(|l| l == until);
                got.push(m);
                if done {
                    return got;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("recv on the notification socket: {e}"),
        }
    }
    panic!("no {until} in {got:?}; stderr:\n{}", agent.stderr());
}

#[test]
#[ignore = "needs root (BPF, loop devices, mount): run as root with --include-ignored"]
fn agent_says_ready_to_systemd_only_after_start_up() {
    common::require_root("agent_says_ready_to_systemd_only_after_start_up");
    let tmp = TempDir::new("sd-notify");
    let abstract_name = format!("notify-test-{}", std::process::id());
    for (label, value) in [
        ("path", tmp.path().join("notify.sock").display().to_string()),
        ("abstract", format!("@{abstract_name}")),
    ] {
        let sock = match label {
            "path" => UnixDatagram::bind(&value).unwrap(),
            _ => {
                use std::os::linux::net::SocketAddrExt;
                let a = std::os::unix::net::SocketAddr::from_abstract_name(&abstract_name).unwrap();
                UnixDatagram::bind_addr(&a).unwrap()
            }
        };
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let journal = tmp.path().join(format!("journal-{label}"));
        // A torn tail: the start-up work writes a journal_recovered record before READY.
        common::seed_journal(&journal, true);
        let out = tmp.path().join(format!("events-{label}.jsonl"));
        let agent = AgentProc::spawn(
            &[
                "-o",
                "json",
                "--journal",
                journal.to_str().unwrap(),
                "--output",
                out.to_str().unwrap(),
                "--metrics-addr",
                "off",
            ],
            &[("NOTIFY_SOCKET", value.as_str())],
        );
        let msgs = recv_until(&sock, "READY=1", &agent);
        // At READY: probes attached, journal opened and its start-up work written out. The
        // agent writes those stderr lines (write(2), unbuffered) before it sends READY=1, so
        // they are in the pipe by then; but this process's reader thread may not have read
        // them yet when READY arrives (seen under load with several agents starting at once),
        // so wait for the reader. The order itself is what the event file shows below: the
        // start-up records are written before READY=1.
        agent.wait_stderr("notify: journal ", Duration::from_secs(10));
        let stderr = agent.stderr();
        assert!(stderr.contains("notify: attached "), "{label}: {stderr}");
        assert!(stderr.contains("notify: journal "), "{label}: {stderr}");
        let written = fs::read_to_string(&out).unwrap_or_default();
        assert!(
            written.contains("\"kind\":\"journal_recovered\""),
            "{label}: READY=1 came before the start-up records were written: {written:?}"
        );
        let (before, ready) = msgs.split_at(msgs.len() - 1);
        assert!(
            before
                .iter()
                .any(|m| m.starts_with("STATUS=attaching probes")),
            "{label}: no STATUS while starting: {msgs:?}"
        );
        assert!(
            !before.iter().any(|m| m.contains("READY=1")),
            "{label}: {msgs:?}"
        );
        let ready = &ready[0];
        assert!(
            ready.contains(&format!("MAINPID={}", agent.child.id())),
            "{label}: {ready}"
        );
        assert!(ready.contains("probes attached"), "{label}: {ready}");
        agent.signal(libc::SIGTERM);
        let stop = recv_until(&sock, "STOPPING=1", &agent);
        assert!(!stop.is_empty());
        let (code, stderr) = agent.stop();
        assert_eq!(code, 0, "{label}: {stderr}");
        eprintln!("{label}: {msgs:?} then {stop:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Prometheus
// ---------------------------------------------------------------------------------------------

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Prometheus {
    child: Child,
    addr: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn prometheus_binary() -> Option<PathBuf> {
    let p = PathBuf::from("/usr/bin/prometheus");
    if p.exists() {
        return Some(p);
    }
    eprintln!("prometheus not installed: trying apt-get install -y prometheus");
    let _ = Command::new("apt-get")
        .args(["install", "-y", "-q", "prometheus"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status();
    p.exists().then_some(p)
}

impl Prometheus {
    fn start(dir: &Path, target: &str) -> Option<Prometheus> {
        let bin = prometheus_binary()?;
        let cfg = dir.join("prometheus.yml");
        fs::write(
            &cfg,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - \
                 job_name: notify\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let log = fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn prometheus");
        let p = Prometheus { child, addr };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if TcpStream::connect(&p.addr).is_ok() && common::http_get(&p.addr, "/-/ready").0 == 200
            {
                return Some(p);
            }
            assert!(
                Instant::now() < deadline,
                "prometheus never became ready:\n{}",
                fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Instant query; every sample as (labels, value).
    fn query(&self, q: &str) -> Vec<(serde_json::Value, f64)> {
        let (code, body) =
            common::http_get(&self.addr, &format!("/api/v1/query?query={}", urlencode(q)));
        assert_eq!(code, 200, "query {q}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["metric"].clone(),
                    r["value"][1].as_str().unwrap().parse().unwrap(),
                )
            })
            .collect()
    }

    /// Waits until `q` has a sample satisfying `ok` (scrapes are every second).
    fn wait_for(&self, q: &str, ok: impl Fn(f64) -> bool) -> Vec<(serde_json::Value, f64)> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = self.query(q);
            if r.iter().any(|(_, v)| ok(*v)) {
                return r;
            }
            if Instant::now() > deadline {
                let targets = common::http_get(&self.addr, "/api/v1/targets").1;
                panic!("query {q} never satisfied; last answer {r:?}\ntargets: {targets}");
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

#[test]
#[ignore = "needs root (BPF, loop devices, mount): run as root with --include-ignored"]
fn prometheus_scrapes_the_agent() {
    common::require_root("prometheus_scrapes_the_agent");
    let _mounts = host_mounts();
    let tmp = TempDir::new("agent-prom");
    let xfs = Xfs::new("rmapbt=1");
    // "Restart keeps pending journal records and says so in the metrics": the journal already
    // holds one pending record when the agent starts.
    let journal = tmp.path().join("journal");
    common::seed_journal(&journal, false);
    let cfg = tmp.path().join("agent.toml");
    fs::write(
        &cfg,
        format!(
            "format = \"json\"\npolicy = \"report\"\nmetrics_addr = \"127.0.0.1:0\"\njournal = \
             \"{}\"\n",
            journal.display()
        ),
    )
    .unwrap();
    let out = tmp.path().join("events.jsonl");
    let agent = AgentProc::start(&[
        "--config",
        cfg.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    let target = agent.metrics_addr();
    let Some(prom) = Prometheus::start(tmp.path(), &target) else {
        panic!(
            "prometheus_scrapes_the_agent needs Debian's prometheus (cargo xtask setup installs \
             it): not found"
        );
    };

    // The target is up and the pending record is reported.
    prom.wait_for("up{job=\"notify\"}", |v| v == 1.0);
    prom.wait_for("notify_journal_pending", |v| v == 1.0);

    // Drive events: 3 umount+mount cycles of a real XFS.
    let before = prom
        .query("sum(notify_events_total{kind=\"syscall_exit\"})")
        .first()
        .map_or(0.0, |s| s.1);
    cycle_mount(&xfs, 3);
    prom.wait_for("sum(notify_events_total{kind=\"syscall_exit\"})", |v| {
        v >= before + 6.0
    });
    prom.wait_for("notify_events_total{kind=\"xfs_tracepoint\"}", |v| v >= 3.0);

    // What attached, and build/kernel info.
    let tp = prom.wait_for("notify_probes_attached{method=\"tracepoint\"}", |v| v > 0.0);
    assert!(tp[0].1 >= 1.0);
    let release = fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap()
        .trim()
        .to_string();
    let k = prom.wait_for("notify_kernel_info", |v| v == 1.0);
    assert_eq!(k[0].0["release"], release.as_str());
    let b = prom.wait_for("notify_build_info", |v| v == 1.0);
    assert_eq!(b[0].0["version"], env!("CARGO_PKG_VERSION"));
    for zero in [
        "notify_ringbuf_lost_events_total",
        "notify_sequence_gaps_total",
        "notify_undecodable_events_total",
    ] {
        prom.wait_for(zero, |v| v == 0.0);
    }

    // /healthz agrees with the probes: 503 naming the missing required ones, or 200.
    let missing = prom.wait_for("notify_probes_required_missing", |_| true)[0].1;
    let (code, body) = common::http_get(&target, "/healthz");
    let h: serde_json::Value = serde_json::from_str(&body).unwrap();
    let named = h["missing_required"].as_array().unwrap().len();
    assert_eq!(named as f64, missing, "{body}");
    if missing > 0.0 {
        assert_eq!(code, 503, "{body}");
        assert!(
            body.contains("\"notify\""),
            "the notification probe is required: {body}"
        );
    } else {
        assert_eq!(code, 200, "{body}");
    }

    // SIGHUP: a live key applies, a start-only key is named as needing a restart.
    fs::write(
        &cfg,
        format!(
            "format = \"json\"\npolicy = \"sigbus\"\nattach = \"kprobe\"\nmetrics_addr = \
             \"127.0.0.1:0\"\njournal = \"{}\"\n",
            journal.display()
        ),
    )
    .unwrap();
    agent.signal(libc::SIGHUP);
    let line = agent.wait_stderr("SIGHUP: reloaded", Duration::from_secs(10));
    assert!(line.contains("applied policy"), "{line}");
    assert!(
        line.contains("restart the agent to apply): attach"),
        "{line}"
    );
    prom.wait_for("notify_config_reloads_total{result=\"ok\"}", |v| v == 1.0);
    // A broken file is refused and the agent keeps running.
    fs::write(&cfg, "policy = \"sigterm\"\n").unwrap();
    agent.signal(libc::SIGHUP);
    let line = agent.wait_stderr("keeping the running configuration", Duration::from_secs(10));
    assert!(line.contains("agent.toml:1:10: policy"), "{line}");
    prom.wait_for("notify_config_reloads_total{result=\"error\"}", |v| {
        v == 1.0
    });

    let (code, stderr) = agent.stop();
    assert_eq!(code, 0, "agent must exit 0 on SIGTERM:\n{stderr}");
    // The pending record survived: the journal still says so for the next start.
    let (j, _) = journal::Journal::open(&journal).unwrap();
    assert_eq!(j.pending().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// The systemd unit
// ---------------------------------------------------------------------------------------------

#[test]
fn systemd_unit_verifies() {
    let unit = include_str!("../../packaging/notify-agent.service");
    assert!(
        Command::new("systemd-analyze")
            .arg("--version")
            .output()
            .is_ok(),
        "systemd_unit_verifies needs systemd-analyze (cargo xtask setup installs systemd)"
    );
    // The capabilities notify needs are all granted, each explained.
    for cap in [
        "CAP_BPF",
        "CAP_PERFMON",
        "CAP_SYS_ADMIN",
        "CAP_KILL",
        "CAP_SYS_PTRACE",
        "CAP_DAC_READ_SEARCH",
    ] {
        for key in ["CapabilityBoundingSet=", "AmbientCapabilities="] {
            let line = unit.lines().find(|l| l.starts_with(key)).unwrap();
            assert!(line.contains(cap), "{key} lacks {cap}");
        }
        assert!(
            unit.lines().any(|l| l.starts_with(&format!("#   {cap} "))),
            "no comment explains {cap}"
        );
    }
    assert!(
        unit.contains("ProtectSystem=strict") && unit.contains("ReadWritePaths=/var/lib/notify")
    );
    // systemd waits for the agent's READY=1 (agent_says_ready_to_systemd_only_after_start_up).
    assert!(
        unit.lines().any(|l| l == "Type=notify") && unit.lines().any(|l| l == "NotifyAccess=main"),
        "the unit must wait for the agent's READY=1"
    );
    // Verify a copy whose ExecStart is this build (verify checks the binary exists); any
    // complaint about the unit (an unknown key is only a warning) fails the test.
    let tmp = TempDir::new("unit");
    let path = tmp.path().join("notify-agent.service");
    fs::write(
        &path,
        unit.replace("/usr/local/bin/notify", env!("CARGO_BIN_EXE_notify")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let about_us: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("notify-agent.service"))
        .collect();
    assert!(
        out.status.success() && about_us.is_empty(),
        "systemd-analyze verify: {}\n{err}",
        out.status
    );
    // ExecStart's arguments are ones the agent accepts.
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart=/usr/local/bin/notify "))
        .unwrap();
    let mut args: Vec<&str> = exec.split_whitespace().collect();
    args.push("--help");
    let help = Command::new(env!("CARGO_BIN_EXE_notify"))
        .args(&args)
        .output()
        .unwrap();
    assert!(
        help.status.success(),
        "{exec}: {}",
        String::from_utf8_lossy(&help.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// Help and completions
// ---------------------------------------------------------------------------------------------

#[test]
fn every_flag_has_help_and_completions_generate() {
    let bin = env!("CARGO_BIN_EXE_notify");
    let sub = |args: &[&str]| {
        let o = Command::new(bin).args(args).output().unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    // Every command and subcommand, found by walking the "Commands:" sections; in each, every
    // option has a description.
    let mut todo: Vec<Vec<String>> = vec![vec![]];
    let mut seen = 0;
    while let Some(path) = todo.pop() {
        seen += 1;
        let mut cmd: Vec<&str> = path.iter().map(String::as_str).collect();
        cmd.push("--help");
        let text = sub(&cmd);
        if let Some(cmds) = text.split("\nCommands:\n").nth(1) {
            for l in cmds.lines().take_while(|l| l.starts_with("  ")) {
                let name = l.split_whitespace().next().unwrap();
                if name != "help" {
                    let mut p = path.clone();
                    p.push(name.to_string());
                    todo.push(p);
                }
            }
        }
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let t = l.trim_start();
            if l.starts_with("  ") && t.starts_with('-') && !l.starts_with("      ") {
                // Short help: "  -x, --flag <V>  text"; long help: the text on the next line.
                // Clap's own "[default: ..]" / "Possible values:" lines are not help.
                let real = |x: &str| {
                    let x = x.trim();
                    !x.is_empty() && !x.starts_with('[') && !x.starts_with("Possible values")
                };
                let same_line = t.split_once("  ").is_some_and(|(_, r)| real(r));
                let next = lines.get(i + 1).copied().unwrap_or("");
                assert!(
                    same_line || (next.starts_with("          ") && real(next)),
                    "{cmd:?}: option without help: {l:?}\n{text}"
                );
            }
        }
    }
    assert!(seen >= 10, "only {seen} commands found");
    let agent = sub(&["agent", "--help"]);
    for s in [
        "CONFIGURATION:",
        "SIGNALS:",
        "SIGHUP",
        "/healthz",
        "EXIT STATUS:",
    ] {
        assert!(agent.contains(s), "agent --help lacks {s}");
    }
    for (shell, marker) in [
        ("bash", "_notify()"),
        ("zsh", "#compdef notify"),
        ("fish", "complete -c notify"),
    ] {
        let script = sub(&["completions", shell]);
        assert!(script.contains(marker), "{shell}: {marker} missing");
        assert!(
            script.contains("metrics-addr"),
            "{shell}: agent flags missing"
        );
    }
}

/// Context switches of every thread of `pid` (voluntary and not): each one is a wakeup.
fn ctxt_switches(pid: u32) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for t in fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let Ok(status) = fs::read_to_string(t.path().join("status")) else {
            continue;
        };
        let field = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        let comm = status
            .lines()
            .find_map(|l| l.strip_prefix("Name:"))
            .unwrap_or("?")
            .trim()
            .to_string();
        let n = field("voluntary_ctxt_switches:") + field("nonvoluntary_ctxt_switches:");
        out.push((format!("{comm}/{}", t.file_name().to_string_lossy()), n));
    }
    out.sort();
    out
}

/// Wakeups of `pid`'s threads over `window`, per thread that woke.
fn wakeups_over(pid: u32, window: Duration) -> Vec<(String, u64)> {
    let before = ctxt_switches(pid);
    std::thread::sleep(window);
    let after = ctxt_switches(pid);
    after
        .into_iter()
        .filter_map(|(t, n)| {
            let was = before.iter().find(|(b, _)| *b == t).map_or(0, |(_, v)| *v);
            (n > was).then(|| (t, n - was))
        })
        .collect()
}

#[test]
#[ignore = "needs root (BPF): run as root with --include-ignored"]
fn an_idle_agent_is_never_woken() {
    common::require_root("an_idle_agent_is_never_woken");
    let _mounts = host_mounts();
    let tmp = TempDir::new("agent-idle");
    let start = |name: &str, extra: &[&str]| {
        let journal = tmp.path().join(format!("journal-{name}"));
        let out = tmp.path().join(format!("events-{name}.jsonl"));
        let port = format!("127.0.0.1:{}", free_port());
        let mut args = vec![
            "-o",
            "json",
            "--journal",
            journal.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            // The metrics endpoint on, as a fleet runs it: it must not wake the agent either.
            "--metrics-addr",
            &port,
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let a = AgentProc::spawn(&refs, &[]);
        a.wait_stderr("notify: ready", Duration::from_secs(60));
        // Settle: the start-up threads end, the first scrape-less second passes.
        std::thread::sleep(Duration::from_secs(1));
        a
    };
    // The defaults: no timer anywhere (bad-block lists are waited for, not polled).
    let idle = start("default", &[]);
    let events = tmp.path().join("events-default.jsonl");
    let before = fs::read_to_string(&events).unwrap_or_default();
    let woke = wakeups_over(idle.child.id(), Duration::from_secs(5));
    // What it wrote in the window: a kernel event from elsewhere on the host (another process
    // mounting, a SIGBUS) is a wakeup with a cause, and says which.
    let after = fs::read_to_string(&events).unwrap_or_default();
    assert!(
        woke.is_empty(),
        "an idle agent woke in 5 s: {woke:?}\nwritten in the window:\n{}\nstderr:\n{}",
        after.get(before.len()..).unwrap_or(""),
        idle.stderr()
    );
    drop(idle);
    // The measurement can see a wakeup: the same agent with a 1 s rescan timer wakes for it.
    let timed = start("rescan", &["--badblocks-rescan", "1"]);
    let woke = wakeups_over(timed.child.id(), Duration::from_secs(5));
    let total: u64 = woke.iter().map(|(_, n)| n).sum();
    assert!(
        total >= 3,
        "a 1 s rescan timer should wake the agent ~5 times in 5 s: {woke:?}"
    );
}
