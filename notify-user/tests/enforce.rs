//! Enforcement against real processes mapping a file on a real XFS (loop device).
//!
//! The pipeline is the replay's: physical range -> GETFSMAP owners -> /proc maps scan ->
//! pidfd signal, and the wait status of each child says what really happened to it.

mod common;

use std::{
    fs::File,
    io::Write,
    os::fd::AsFd,
    path::{Path, PathBuf},
    time::Duration,
};

use common::{Helper, Xfs, exit_code, termsig, write_file};
use notify::{
    enforce::{
        self, Allowlist, Config, SigbusInfo,
        pidfd::{self, BUS_MCEERR_AO, RawSiginfo, SI_QUEUE, SI_USER},
        policy::parse_cgroup,
    },
    resolve::{
        fiemap::fiemap,
        fsmap::Filesystem,
        mappers::{self, Mapper, Target},
    },
};
use notify_model::decision::{Act as Action, Policy};

#[test]
fn __child_entry() {
    common::child_main();
}

const MIB: u64 = 1 << 20;
const KIB: u64 = 1 << 10;

/// A 1 MiB file on a fresh XFS, and the damaged range: 4 KiB at file offset 256 KiB, found the
/// way replay finds it (physical block -> GETFSMAP -> targets).
struct Setup {
    x: Xfs,
    file: PathBuf,
    targets: Vec<Target>,
}

fn setup() -> Setup {
    let x = Xfs::new("rmapbt=1,reflink=1");
    let file = x.path("data");
    write_file(&file, MIB as usize, 9);
    let e = fiemap(&File::open(&file).unwrap()).unwrap()[0];
    assert!(e.logical == 0 && e.length >= 512 * KIB, "{e:?}");
    let fs = Filesystem::open(&x.mnt).unwrap();
    let r = fs.resolve(e.physical + 256 * KIB, 4 * KIB).unwrap();
    let targets: Vec<Target> = r
        .files()
        .into_iter()
        .flat_map(|(ino, ranges)| {
            ranges.into_iter().map(move |fr| Target {
                major: fs.dev.0,
                minor: fs.dev.1,
                inode: ino,
                offset: fr.offset,
                length: fr.length,
            })
        })
        .collect();
    assert_eq!(targets.len(), 1);
    assert_eq!((targets[0].offset, targets[0].length), (256 * KIB, 4 * KIB));
    Setup { x, file, targets }
}

fn spawn_map(file: &Path, offset: u64, len: u64) -> Helper {
    let f = file.to_str().unwrap();
    let mut h = Helper::spawn("map", &[f, &offset.to_string(), &len.to_string()]);
    let m = h.next_msg().unwrap();
    assert!(m.starts_with("MAPPED "), "{m}");
    h.wait_ready();
    h
}

fn scan_ours(targets: &[Target], ours: &[i32]) -> Vec<Mapper> {
    let (mut v, stats) = mappers::scan(targets).unwrap();
    // The kernel's iterator (which loads on this host) reads only candidates in /proc: none
    // when nobody maps the range any more.
    assert!(stats.processes > 0 || stats.kernel_iterator, "{stats:?}");
    v.retain(|m| ours.contains(&m.pid));
    v
}

fn cfg(policy: Policy) -> Config {
    Config {
        policy,
        ..Config::default()
    }
}

#[test]
#[ignore = "needs root (BPF, loop devices, mount): run as root with --include-ignored"]
fn procmap_query_and_maps_text_find_the_same_mappings() {
    common::require_root("procmap_query_and_maps_text_find_the_same_mappings");
    let s = setup();
    let whole = spawn_map(&s.file, 0, MIB);
    let part = spawn_map(&s.file, 128 * KIB, 256 * KIB);
    let other = spawn_map(&s.file, 512 * KIB, 256 * KIB);
    let ours = [whole.pid(), part.pid(), other.pid()];
    let run = |m: mappers::Method| {
        let (mut v, stats) = mappers::scan_with(Path::new("/proc"), &s.targets, m).unwrap();
        v.retain(|x| ours.contains(&x.pid));
        (v, stats)
    };
    let (text, text_stats) = run(mappers::Method::Text);
    let (auto, auto_stats) = run(mappers::Method::Auto);
    assert_eq!(text_stats.queried, 0);
    eprintln!("text {text_stats:?}\nauto {auto_stats:?}");
    // This host runs Linux 6.18: the ioctl is there and read every process auto read (all, or
    // the iterator's candidates).
    assert!(
        auto_stats.queried > 0 && auto_stats.parsed == 0,
        "{auto_stats:?}"
    );
    // Same processes, VMAs, permissions, paths and damaged sub-ranges either way.
    assert_eq!(auto, text);
    assert_eq!(auto.iter().map(|m| m.pid).collect::<Vec<_>>(), {
        let mut v = vec![whole.pid(), part.pid()];
        v.sort();
        v
    });
    let h = &auto[0].hits[0];
    assert_eq!(h.path.as_deref(), s.file.to_str(), "{h:?}");
    assert_eq!(h.perms, "rw-s", "{h:?}");
    let (procfs, _) = run(mappers::Method::Proc);
    assert_eq!(procfs, text);
    // The kernel's VMA iterator: where it loads (this host: iterators need no trampolines,
    // unlike fentry) it must find the same mappers, and auto, which loads it only once its /proc
    // scans have paid for the load, must use it once it is loaded; where it does not load, it
    // must fail with a reason and auto must have read /proc.
    match mappers::scan_with(Path::new("/proc"), &s.targets, mappers::Method::Kernel) {
        Ok((mut v, st)) => {
            v.retain(|x| ours.contains(&x.pid));
            assert!(st.kernel_iterator, "{st:?}");
            assert_eq!(v, text);
            let (loaded, loaded_stats) = run(mappers::Method::Auto);
            assert!(loaded_stats.kernel_iterator, "{loaded_stats:?}");
            assert_eq!(loaded, text);
        }
        Err(e) => {
            eprintln!("no kernel VMA iterator on this kernel: {e}");
            assert_eq!(e.kind(), std::io::ErrorKind::Unsupported, "{e}");
            assert!(!auto_stats.kernel_iterator, "{auto_stats:?}");
        }
    }
}

#[test]
#[ignore = "needs root (BPF, loop devices, mount): run as root with --include-ignored"]
fn sigbus_kills_only_processes_mapping_the_damaged_range() {
    common::require_root("sigbus_kills_only_processes_mapping_the_damaged_range");
    let s = setup();
    let f = s.file.to_str().unwrap();
    let mut victim = spawn_map(&s.file, 0, MIB);
    let other_range = spawn_map(&s.file, 512 * KIB, 256 * KIB);
    let edge = spawn_map(&s.file, 0, 256 * KIB); // ends exactly where the damage starts
    let mut opener = Helper::spawn("open", &[f]);
    opener.wait_ready();
    let mut bystander = Helper::spawn("idle", &[]);
    bystander.wait_ready();
    let all = [
        victim.pid(),
        other_range.pid(),
        edge.pid(),
        opener.pid(),
        bystander.pid(),
    ];

    // The whole /proc scan finds exactly the victim among ours (and nobody else maps the file).
    let t0 = std::time::Instant::now();
    let (everyone, stats) = mappers::scan(&s.targets).unwrap();
    eprintln!(
        "scan of {} processes took {:?}: {stats:?}",
        stats.processes,
        t0.elapsed()
    );
    assert_eq!(
        everyone.iter().map(|m| m.pid).collect::<Vec<_>>(),
        vec![victim.pid()]
    );
    let m = &everyone[0];
    assert_eq!(m.hits.len(), 1);
    assert_eq!(
        (m.hits[0].file_lo, m.hits[0].file_hi),
        (256 * KIB, 260 * KIB)
    );

    let d = enforce::enforce_all(&cfg(Policy::Sigbus), &everyone);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].action, Action::Signalled, "{:?}", d[0]);
    assert_eq!(d[0].signal, Some("SIGBUS".into()));
    assert_eq!(d[0].si_code, Some(SI_USER));
    assert!(!d[0].dry_run);
    // The decision is a loggable event.
    let json = serde_json::to_string(&d[0]).unwrap();
    assert!(json.contains("\"action\":\"signalled\""), "{json}");

    let st = victim
        .wait_status(Duration::from_secs(10))
        .expect("victim survived");
    assert_eq!(termsig(st), Some(libc::SIGBUS), "status {st:#x}");
    std::thread::sleep(Duration::from_millis(200));
    for h in [&other_range, &edge, &opener, &bystander] {
        assert!(h.alive(), "pid {} was hit", h.pid());
    }
    // A second scan: nobody maps the damage any more.
    assert!(scan_ours(&s.targets, &all).is_empty());
    drop((other_range, edge, opener, bystander));
    drop(s.x);
}

#[test]
#[ignore = "needs root (BPF, loop devices, mount): run as root with --include-ignored"]
fn dry_run_and_report_send_nothing() {
    common::require_root("dry_run_and_report_send_nothing");
    let s = setup();
    let victim = spawn_map(&s.file, 0, MIB);
    let ms = scan_ours(&s.targets, &[victim.pid()]);
    assert_eq!(ms.len(), 1);

    let mut c = cfg(Policy::Sigkill);
    c.dry_run = true;
    let d = enforce::enforce(&c, &ms[0]);
    assert_eq!(d.action, Action::WouldSignal, "{d:?}");
    assert_eq!(d.signal, Some("SIGKILL".into()));
    assert!(d.dry_run);

    let d = enforce::enforce(&cfg(Policy::Report), &ms[0]);
    assert_eq!(d.action, Action::Reported, "{d:?}");
    assert_eq!(d.signal, None);

    std::thread::sleep(Duration::from_millis(200));
    assert!(victim.alive(), "dry run or report killed the process");

    // And the same mapper with the real policy does die: the dry run was not a no-op by accident.
    let mut victim = victim;
    let d = enforce::enforce(&cfg(Policy::Sigkill), &ms[0]);
    assert_eq!(d.action, Action::Signalled);
    let st = victim.wait_status(Duration::from_secs(10)).unwrap();
    assert_eq!(termsig(st), Some(libc::SIGKILL));
}

fn mapper_for(pid: i32) -> Mapper {
    let st = mappers::read_stat(Path::new("/proc"), pid).unwrap();
    Mapper {
        pid,
        comm: st.comm,
        start_time: st.start_time,
        hits: vec![],
    }
}

#[test]
#[ignore = "needs root (BPF, loop devices, mount): run as root with --include-ignored"]
fn pid1_self_and_allowlisted_processes_are_refused_with_reasons() {
    common::require_root("pid1_self_and_allowlisted_processes_are_refused_with_reasons");
    let s = setup();
    let f = s.file.to_str().unwrap();
    let c = cfg(Policy::Sigkill);

    let d = enforce::enforce(&c, &mapper_for(1));
    assert_eq!(d.action, Action::Refused);
    assert!(d.reason.contains("pid 1"), "{}", d.reason);
    let d = enforce::enforce(&c, &mapper_for(std::process::id() as i32));
    assert_eq!(d.action, Action::Refused);
    assert!(d.reason.contains("agent itself"), "{}", d.reason);

    // Allowlisted by comm: the child renames itself.
    let mut by_comm = Helper::spawn("map", &[f, "0", &MIB.to_string(), "allowme"]);
    by_comm.next_msg();
    by_comm.wait_ready();
    let by_pid = spawn_map(&s.file, 0, MIB);
    let by_cgroup = spawn_map(&s.file, 0, MIB);
    let ms = scan_ours(&s.targets, &[by_comm.pid(), by_pid.pid(), by_cgroup.pid()]);
    assert_eq!(ms.len(), 3);
    let find = |pid: i32| ms.iter().find(|m| m.pid == pid).unwrap();
    assert_eq!(find(by_comm.pid()).comm, "allowme");

    let cg = std::fs::read_to_string(format!("/proc/{}/cgroup", by_cgroup.pid())).unwrap();
    let cg_path = parse_cgroup(&cg)[0].clone();
    let mut c = cfg(Policy::Sigkill);
    c.allow = Allowlist {
        pids: vec![by_pid.pid()],
        comms: vec!["allowme".into()],
        cgroup_prefixes: vec![],
    };
    let d = enforce::enforce(&c, find(by_comm.pid()));
    assert_eq!(d.action, Action::Refused);
    assert!(
        d.reason.contains("comm \"allowme\" is allowlisted"),
        "{}",
        d.reason
    );
    let d = enforce::enforce(&c, find(by_pid.pid()));
    assert_eq!(d.action, Action::Refused);
    assert!(d.reason.contains("allowlisted"), "{}", d.reason);
    // All our children share the test's cgroup: allowlist it by prefix.
    c.allow.cgroup_prefixes = vec![cg_path.clone()];
    let d = enforce::enforce(&c, find(by_cgroup.pid()));
    assert_eq!(d.action, Action::Refused, "{d:?}");
    assert!(d.reason.contains("cgroup"), "{}", d.reason);

    std::thread::sleep(Duration::from_millis(200));
    assert!(by_comm.alive() && by_pid.alive() && by_cgroup.alive());

    // Without the allowlist the same process is signalled (the refusal was the rule's doing).
    c.allow = Allowlist::default();
    let d = enforce::enforce(&c, find(by_comm.pid()));
    assert_eq!(d.action, Action::Signalled, "{d:?}");
    let st = by_comm.wait_status(Duration::from_secs(10)).unwrap();
    assert_eq!(termsig(st), Some(libc::SIGKILL));
}

#[test]
#[ignore = "needs root (BPF, loop devices, mount): run as root with --include-ignored"]
fn exited_reused_and_unmapped_processes_are_not_signalled() {
    common::require_root("exited_reused_and_unmapped_processes_are_not_signalled");
    let s = setup();
    let c = cfg(Policy::Sigkill);

    // Exited and reaped before the signal.
    let mut gone = spawn_map(&s.file, 0, MIB);
    let ms = scan_ours(&s.targets, &[gone.pid()]);
    assert_eq!(ms.len(), 1);
    gone.child.kill().unwrap();
    gone.child.wait().unwrap();
    let d = enforce::enforce(&c, &ms[0]);
    assert_eq!(d.action, Action::Gone, "{d:?}");
    assert!(
        d.reason.contains("exited before the signal"),
        "{}",
        d.reason
    );

    // Exited, not yet reaped (zombie): still has a pid, must not count as signalled.
    let mut zombie = spawn_map(&s.file, 0, MIB);
    let ms = scan_ours(&s.targets, &[zombie.pid()]);
    // SAFETY: SIGKILL to our own child.
    unsafe { libc::kill(zombie.pid(), libc::SIGKILL) };
    while zombie.alive() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let d = enforce::enforce(&c, &ms[0]);
    assert_eq!(d.action, Action::Gone, "{d:?}");
    let st = zombie.wait_status(Duration::from_secs(5)).unwrap();
    assert_eq!(termsig(st), Some(libc::SIGKILL));

    // The pid now belongs to another process (simulated: same pid, another start time). The
    // pidfd is opened, the start time disagrees, nothing is sent.
    let live = spawn_map(&s.file, 0, MIB);
    let mut ms = scan_ours(&s.targets, &[live.pid()]);
    ms[0].start_time -= 1;
    let d = enforce::enforce(&c, &ms[0]);
    assert_eq!(d.action, Action::Refused, "{d:?}");
    assert!(d.reason.contains("pid reused"), "{}", d.reason);
    std::thread::sleep(Duration::from_millis(100));
    assert!(live.alive());

    // Unmapped since the scan: the re-check sees it and skips it.
    let f = s.file.to_str().unwrap();
    let mut unm = Helper::spawn_piped("map-unmap", &[f, "0", &MIB.to_string()]);
    unm.wait_ready();
    let ms = scan_ours(&s.targets, &[unm.pid()]);
    assert_eq!(ms.len(), 1);
    unm.child
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"go\n")
        .unwrap();
    assert_eq!(unm.next_msg().as_deref(), Some("UNMAPPED"));
    let d = enforce::enforce(&c, &ms[0]);
    assert_eq!(d.action, Action::NotMapping, "{d:?}");
    assert!(unm.alive());
}

fn parse_siginfo(msg: &str) -> (i32, i32, u64, u64) {
    // "SIGINFO code=C pid=P w16=0x.. w24=0x.."
    let f: Vec<&str> = msg.split_whitespace().collect();
    let v = |i: usize| {
        f.get(i)
            .and_then(|x| x.split_once('='))
            .unwrap_or_else(|| panic!("bad SIGINFO message {msg:?}"))
            .1
            .to_string()
    };
    let hex = |s: String| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
    (
        v(1).parse().unwrap(),
        v(2).parse().unwrap(),
        hex(v(3)),
        hex(v(4)),
    )
}

#[test]
#[ignore = "needs root (BPF, loop devices, mount): run as root with --include-ignored"]
fn what_the_victim_sees_in_siginfo() {
    common::require_root("what_the_victim_sees_in_siginfo");
    let s = setup();
    let f = s.file.to_str().unwrap();
    let me = std::process::id() as i32;
    let spawn_handler = || {
        let mut h = Helper::spawn("map-handler", &[f, "0", &MIB.to_string()]);
        let m = h.next_msg().unwrap();
        let base = u64::from_str_radix(m.strip_prefix("MAPPED 0x").unwrap(), 16).unwrap();
        h.wait_ready();
        (h, base)
    };

    // Default: no siginfo from us -> the kernel fills SI_USER with our pid, like kill(2).
    let (mut h, _) = spawn_handler();
    let ms = scan_ours(&s.targets, &[h.pid()]);
    let d = enforce::enforce(&cfg(Policy::Sigbus), &ms[0]);
    assert_eq!(d.action, Action::Signalled);
    let (code, pid, _, _) = parse_siginfo(&h.next_msg().unwrap());
    assert_eq!((code, pid), (SI_USER, me));
    assert_eq!(
        exit_code(h.wait_status(Duration::from_secs(10)).unwrap()),
        Some(42)
    );

    // SI_QUEUE: allowed for another process; si_value carries the damaged address in the
    // victim (mapping base + 256 KiB).
    let (mut h, base) = spawn_handler();
    let ms = scan_ours(&s.targets, &[h.pid()]);
    let mut c = cfg(Policy::Sigbus);
    c.sigbus_info = SigbusInfo::Queue;
    let d = enforce::enforce(&c, &ms[0]);
    assert_eq!(d.action, Action::Signalled, "{d:?}");
    assert_eq!(d.si_code, Some(SI_QUEUE));
    assert_eq!(d.addr, Some(base + 256 * KIB));
    let (code, pid, _, value) = parse_siginfo(&h.next_msg().unwrap());
    assert_eq!((code, pid, value), (SI_QUEUE, me, base + 256 * KIB));
    assert_eq!(
        exit_code(h.wait_status(Duration::from_secs(10)).unwrap()),
        Some(42)
    );

    // BUS_MCEERR_AO (what the kernel's early kill sends) to another process: EPERM.
    let (h, _) = spawn_handler();
    let fd = pidfd::pidfd_open(h.pid()).unwrap();
    let info = RawSiginfo::mceerr(BUS_MCEERR_AO, base_for_test(), 12);
    let err = pidfd::pidfd_send_signal(fd.as_fd(), libc::SIGBUS, Some(&info)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
    assert!(h.alive());

    // ... "yourself" means the calling *thread*: task_pid(current) must be the pidfd's pid.
    // From a worker thread, a pidfd of the process (its leader) is refused too; a thread pidfd
    // (PIDFD_THREAD) of the calling thread works and si_code/si_addr arrive as sent.
    let mut selfie = Helper::spawn("self-mceerr", &[]);
    selfie.wait_ready();
    assert_eq!(
        selfie.next_msg().as_deref(),
        Some("PROCESS_PIDFD errno=1"),
        "process pidfd from a non-leader thread"
    );
    assert_eq!(selfie.next_msg().as_deref(), Some("THREAD_PIDFD ok"));
    let msg = selfie.next_msg().unwrap();
    let (code, _, addr, lsb) = parse_siginfo(&msg);
    assert_eq!(
        (code, addr, lsb & 0xffff),
        (BUS_MCEERR_AO, 0x7777_0000, 12),
        "{msg}"
    );
    assert_eq!(
        exit_code(selfie.wait_status(Duration::from_secs(10)).unwrap()),
        Some(42)
    );
}

#[test]
#[ignore = "needs root (BPF, loop devices, mount): run as root with --include-ignored"]
fn a_rust_process_survives_its_first_external_sigbus() {
    common::require_root("a_rust_process_survives_its_first_external_sigbus");
    // The Rust runtime's SIGBUS handler (stack-overflow guard) resets SIGBUS to SIG_DFL and
    // returns when the address is not its guard page: a fault then re-faults and dies, but a
    // sent SIGBUS has nothing to re-trigger, so the process lives on. The kernel's own early
    // kill (BUS_MCEERR_AO) is such a sent signal too. `wait_exit` makes this visible.
    let s = setup();
    let f = s.file.to_str().unwrap();
    let mut h = Helper::spawn("map-rust", &[f, "0", &MIB.to_string()]);
    h.next_msg();
    h.wait_ready();
    let ms = scan_ours(&s.targets, &[h.pid()]);
    let mut c = cfg(Policy::Sigbus);
    c.wait_exit = Some(Duration::from_millis(500));
    let d = enforce::enforce(&c, &ms[0]);
    assert_eq!(d.action, Action::Signalled, "{d:?}");
    assert_eq!(d.exited, Some(false), "{d:?}");
    assert!(d.reason.contains("still running"), "{}", d.reason);
    assert!(h.alive());
    // The handler uninstalled itself: the second SIGBUS is fatal.
    let d = enforce::enforce(&c, &ms[0]);
    assert_eq!(d.exited, Some(true), "{d:?}");
    let st = h.wait_status(Duration::from_secs(5)).unwrap();
    assert_eq!(termsig(st), Some(libc::SIGBUS));

    // A C-like process (default disposition) dies from the first one, and wait_exit says so.
    let mut h = spawn_map(&s.file, 0, MIB);
    let ms = scan_ours(&s.targets, &[h.pid()]);
    let d = enforce::enforce(&c, &ms[0]);
    assert_eq!(d.exited, Some(true), "{d:?}");
    assert_eq!(
        termsig(h.wait_status(Duration::from_secs(5)).unwrap()),
        Some(libc::SIGBUS)
    );
}

fn base_for_test() -> u64 {
    0x7000_0000
}
