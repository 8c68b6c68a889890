//! The `mount_suite` scenario: a small mount test suite (lab/mount_suite.sh) run in the guest
//! under `notify record`, with the fleet agent (`notify agent --metrics-addr`) alongside.
//! Assertions: the suite's own facts (result.txt, dmesg), the session (exit status, holder
//! states per sub-test, tied to the sub-test by the pid of its mount), the host report's text
//! and SVG, and the fleet agent's /healthz and /metrics scrapes ([`crate::checks::suite_fleet`]).

use notify_model::{
    Derived, Item, Phase, State, Transition, Verdict,
    session::{ExitStatus, FORMAT, SessionFile},
};

use crate::checks::{
    events::EIO,
    evidence::Evidence,
    outcome::Outcome,
    results::{AgentState, Fact, Inject, Results},
    steps::{Kind, brief, field},
    suite_fleet,
};

pub const SCENARIO: &str = "mount_suite";

/// What the suite measured (lab/mount_suite.sh), by sub-test.
struct Facts {
    agent: Fact<AgentState>,
    record_exit: Fact<i32>,
    suite_done: Fact<bool>,
    // clean
    mkfs_clean_rc: Fact<i32>,
    mount_clean_rc: Fact<i32>,
    clean_victim_exit: Fact<i32>,
    umount_clean_rc: Fact<i32>,
    clean_physoff: Fact<u64>,
    // recovery
    shutdown_rc: Fact<i32>,
    umount_recovery_first_rc: Fact<i32>,
    mount_recovery_rc: Fact<i32>,
    recovered_files: Fact<u32>,
    // corrupt
    mount_corrupt_inode_rc: Fact<i64>,
    mount_corrupt_magic_rc: Fact<i64>,
    // premature
    mount_premature_rc: Fact<i32>,
    premature_mounted_before_inject: bool,
    premature_mount_secs: Fact<String>,
    premature_inject: Inject,
    premature_physoff: Fact<u64>,
    // unmount
    mount_unmount_setup_rc: Fact<i32>,
    umount_unmount_rc: Fact<i32>,
    umount_unmount_pid: Fact<u32>,
    /// The pid of each sub-test's mount (`mount_<key>_pid`): it ties the session's holder
    /// registrations to the sub-test.
    mount_clean_pid: Fact<u32>,
    mount_recovery_pid: Fact<u32>,
    mount_corrupt_inode_pid: Fact<u32>,
    mount_corrupt_magic_pid: Fact<u32>,
    mount_premature_pid: Fact<u32>,
    mount_unmount_setup_pid: Fact<u32>,
}

impl Facts {
    fn read(r: &Results) -> Facts {
        Facts {
            agent: r.fact("agent"),
            record_exit: r.fact("record_exit"),
            suite_done: r.fact("suite_done"),
            mkfs_clean_rc: r.fact("mkfs_clean_rc"),
            mount_clean_rc: r.fact("mount_clean_rc"),
            clean_victim_exit: r.fact("clean_victim_exit"),
            umount_clean_rc: r.fact("umount_clean_rc"),
            clean_physoff: r.fact("clean_physoff"),
            shutdown_rc: r.fact("shutdown_rc"),
            umount_recovery_first_rc: r.fact("umount_recovery_first_rc"),
            mount_recovery_rc: r.fact("mount_recovery_rc"),
            recovered_files: r.fact("recovered_files"),
            mount_corrupt_inode_rc: r.fact("mount_corrupt_inode_rc"),
            mount_corrupt_magic_rc: r.fact("mount_corrupt_magic_rc"),
            mount_premature_rc: r.fact("mount_premature_rc"),
            premature_mounted_before_inject: r.has("premature_mounted_before_inject"),
            premature_mount_secs: r.fact("premature_mount_secs"),
            premature_inject: Inject::read(r, "premature_inject"),
            premature_physoff: r.fact("premature_physoff"),
            mount_unmount_setup_rc: r.fact("mount_unmount_setup_rc"),
            umount_unmount_rc: r.fact("umount_unmount_rc"),
            umount_unmount_pid: r.fact("umount_unmount_pid"),
            mount_clean_pid: r.fact("mount_clean_pid"),
            mount_recovery_pid: r.fact("mount_recovery_pid"),
            mount_corrupt_inode_pid: r.fact("mount_corrupt_inode_pid"),
            mount_corrupt_magic_pid: r.fact("mount_corrupt_magic_pid"),
            mount_premature_pid: r.fact("mount_premature_pid"),
            mount_unmount_setup_pid: r.fact("mount_unmount_setup_pid"),
        }
    }
}

/// All assertions of the scenario. `require_agent`: a missing agent fails.
pub fn check(o: &mut Outcome, ev: &Evidence, require_agent: bool) {
    let r = Facts::read(&ev.results);
    kernel_side(o, &r, &ev.dmesg);
    match r.agent.value {
        Some(AgentState::Missing) | None if !require_agent => {
            o.skipped
                .push("agent missing: session, report and metrics checks skipped".into());
            return;
        }
        Some(AgentState::Missing) | None => {
            o.check(
                "agent present",
                false,
                "the notify binary was not in the guest",
            );
            return;
        }
        _ => {}
    }
    o.fact_eq("notify record exited 0", &r.record_exit, 0);
    match ev.session("session.json") {
        Some(Ok(s)) => {
            session(o, &r, s);
            suite_fleet::report(o, s, ev);
        }
        Some(Err(e)) => {
            o.check("session.json is a session file", false, e.to_string());
        }
        None => {
            o.check("session.json came back", false, "no session.json");
        }
    }
    suite_fleet::metrics(o, ev);
}

/// What the suite measured itself, agent or not.
fn kernel_side(o: &mut Outcome, r: &Facts, dmesg: &str) {
    o.fact_eq("the suite ran to its end", &r.suite_done, true);
    // clean
    o.fact_eq("clean: mkfs.xfs succeeded", &r.mkfs_clean_rc, 0);
    o.fact_eq("clean: mount succeeded", &r.mount_clean_rc, 0);
    o.fact_eq(
        "clean: the victim died of SIGBUS (exit 135)",
        &r.clean_victim_exit,
        135,
    );
    o.fact_eq("clean: umount succeeded", &r.umount_clean_rc, 0);
    // recovery
    o.fact_eq("recovery: xfs_io shutdown -f succeeded", &r.shutdown_rc, 0);
    o.fact_eq(
        "recovery: umount of the shut-down filesystem succeeded",
        &r.umount_recovery_first_rc,
        0,
    );
    o.fact_eq(
        "recovery: mount with a dirty log succeeded",
        &r.mount_recovery_rc,
        0,
    );
    o.fact_eq(
        "recovery: the 8 files written before the shutdown are there",
        &r.recovered_files,
        8,
    );
    o.dmesg(dmesg, "Starting recovery", false);
    o.dmesg(dmesg, "Ending recovery", false);
    // corrupt
    o.fact_nonzero(
        "corrupt: mount with a zeroed root inode failed",
        &r.mount_corrupt_inode_rc,
    );
    o.fact_nonzero(
        "corrupt: mount with a zeroed superblock magic failed",
        &r.mount_corrupt_magic_rc,
    );
    // premature
    o.fact_eq(
        "premature: the slow mount succeeded",
        &r.mount_premature_rc,
        0,
    );
    o.check(
        "premature: the mount was still in progress at injection",
        !r.premature_mounted_before_inject,
        format!("mount took {} s", r.premature_mount_secs.raw_or("<absent>")),
    );
    o.fact_nonzero(
        "premature: corrupt-pfn write failed (XFS not ready: EIO)",
        &r.premature_inject.rc,
    );
    o.dmesg(
        dmesg,
        "filesystem is not ready for notify_failure()!",
        false,
    );
    // unmount
    o.fact_eq("unmount: mount succeeded", &r.mount_unmount_setup_rc, 0);
    o.fact_eq("unmount: umount succeeded", &r.umount_unmount_rc, 0);
}

/// A registration's states: (index of the holder_state item, state it went to).
type States = Vec<(usize, State)>;

/// The states one registration went through: the holder_state items from the registration
/// made by process `pid` (its mount) up to its release.
fn states_of(items: &[Item], pid: u32) -> Option<States> {
    fn transition(i: &Item) -> Option<&Derived<Transition>> {
        match i {
            Item::HolderState(d) => Some(d),
            _ => None,
        }
    }
    let start = items.iter().position(|i| {
        transition(i).is_some_and(|d| d.data.to == State::Registered && d.at.pid == pid)
    })?;
    let first = transition(&items[start])?;
    let (dax, holder) = (first.data.dax_dev, first.data.holder);
    let mut out = Vec::new();
    for (i, t) in items.iter().enumerate().skip(start) {
        let Some(t) = transition(t).filter(|t| t.data.dax_dev == dax) else {
            continue;
        };
        if i > start && t.data.to == State::Registered {
            break;
        }
        if t.data.holder != holder {
            continue;
        }
        out.push((i, t.data.to));
        if t.data.to == State::Released {
            break;
        }
    }
    Some(out)
}

fn names(states: &[(usize, State)]) -> String {
    states
        .iter()
        .map(|(_, s)| s.name())
        .collect::<Vec<_>>()
        .join(" -> ")
}

/// Whether `want` occur in this order in `states`.
fn in_order(states: &[(usize, State)], want: &[State]) -> bool {
    let mut it = states.iter();
    want.iter().all(|w| it.any(|(_, s)| s == w))
}

fn ever(states: &[(usize, State)], s: State) -> bool {
    states.iter().any(|(_, t)| *t == s)
}

/// Items of `kind` by process `pid`.
fn by_pid(items: &[Item], kind: Kind, pid: u32) -> Vec<&Item> {
    items
        .iter()
        .filter(|i| kind.of(i) && field::pid(i) == Some(pid))
        .collect()
}

fn briefs(items: &[&Item]) -> String {
    items
        .iter()
        .map(|i| brief(i))
        .collect::<Vec<_>>()
        .join("\n    ")
}

/// The registration of the sub-test `key`'s mount (its pid `fact`): its pid and states, or a
/// failed check.
fn registration(
    o: &mut Outcome,
    items: &[Item],
    key: &str,
    fact: &Fact<u32>,
) -> Option<(u32, States)> {
    let Some(pid) = fact.value else {
        o.check(
            format!("{key}: the suite recorded its mount's pid"),
            false,
            format!("no {}", fact.key),
        );
        return None;
    };
    if let Some(st) = states_of(items, pid) {
        return Some((pid, st));
    }
    let seen: Vec<String> = items
        .iter()
        .filter(|i| matches!(i, Item::HolderState(d) if d.data.to == State::Registered))
        .map(brief)
        .collect();
    o.check(
        format!("{key}: the mount (pid {pid}) registered a dax holder"),
        false,
        format!("registrations seen:\n    {}", seen.join("\n    ")),
    );
    None
}

/// The notification at dax offset `off`.
fn notification_at(items: &[Item], off: Option<u64>) -> Option<(usize, &Item)> {
    let off = off?;
    items
        .iter()
        .enumerate()
        .find(|(_, i)| i.notification().is_some_and(|n| n.data.offset == off))
}

/// The session `notify record` wrote: its envelope, then the holder states of each sub-test.
fn session(o: &mut Outcome, r: &Facts, s: &SessionFile) {
    o.check(
        "session.json is notify-session version 1",
        s.format == FORMAT && s.version == 1,
        format!("format={:?} version={}", s.format, s.version),
    );
    o.check(
        "session: the suite exited 0",
        s.exit_status == ExitStatus::Code(0),
        format!(
            "exit_status={}",
            serde_json::to_string(&s.exit_status).unwrap_or_default()
        ),
    );
    o.check(
        "session: nothing lost",
        !s.lost.any(),
        format!(
            "lost={}",
            serde_json::to_string(&s.lost).unwrap_or_default()
        ),
    );
    o.check(
        "session: no error",
        s.error.is_none(),
        format!("error={:?}", s.error),
    );
    let kernel = s.events.iter().filter(|i| !i.is_derived()).count();
    o.check(
        "session has events",
        kernel > 0,
        format!("{} events ({kernel} kernel)", s.events.len()),
    );
    clean(o, r, &s.events);
    recovery(o, r, s);
    corrupt(o, r, s);
    premature(o, r, &s.events);
    unmount(o, r, &s.events);
}

/// clean: registered ... ready ... released, and the victim's notification delivered.
fn clean(o: &mut Outcome, r: &Facts, items: &[Item]) {
    let Some((_, st)) = registration(o, items, "clean", &r.mount_clean_pid) else {
        return;
    };
    o.check(
        "clean: holder registered -> ready -> released",
        in_order(&st, &[State::Registered, State::Ready, State::Released])
            && !ever(&st, State::Failed),
        names(&st),
    );
    let off = r.clean_physoff.value;
    let n = notification_at(items, off).map(|(_, i)| i);
    o.check(
        "clean: the victim's notification was delivered while ready",
        n.and_then(Item::notification).is_some_and(|n| {
            n.data.verdict == Verdict::Delivered && n.data.state == Some(State::Ready)
        }),
        n.map_or(format!("no notification at offset {off:?}"), brief),
    );
}

/// recovery: the mount after the shutdown recovered the log.
fn recovery(o: &mut Outcome, r: &Facts, s: &SessionFile) {
    let items = &s.events;
    let recover_tp = s
        .probes
        .iter()
        .any(|p| p.target.contains("xfs_log_recover") && p.method.is_some());
    let Some((pid, st)) = registration(o, items, "recovery", &r.mount_recovery_pid) else {
        return;
    };
    o.check(
        "recovery: holder registered -> recovering -> ready -> released",
        in_order(
            &st,
            &[
                State::Registered,
                State::Recovering,
                State::Ready,
                State::Released,
            ],
        ),
        names(&st),
    );
    let recovering = by_pid(items, Kind::Mount(Phase::LogRecoverEnter), pid);
    o.check(
        "recovery: log_recover_enter by the recovery mount",
        !recovering.is_empty(),
        recovering.first().map_or("none".into(), |i| brief(i)),
    );
    if !recover_tp {
        o.skipped
            .push("xfs:xfs_log_recover not attached: real recovery not told apart".into());
        return;
    }
    // xfs:xfs_log_recover fires only when the log really needs replaying: not for the clean
    // mount.
    let tp = |pid| {
        by_pid(items, Kind::XfsTracepoint, pid)
            .into_iter()
            .filter(|i| {
                matches!(i.kernel().map(|e| &e.data),
                    Some(notify_model::EventData::XfsTracepoint { tracepoint, .. })
                        if tracepoint.contains("xfs_log_recover"))
            })
            .count()
    };
    let clean = r.mount_clean_pid.value.map_or(0, tp);
    o.check(
        "recovery: xfs:xfs_log_recover fired for the dirty log, not for the clean mount",
        tp(pid) > 0 && clean == 0,
        format!("recovery mount: {}, clean mount: {clean}", tp(pid)),
    );
}

/// corrupt: failed then released, never ready.
fn corrupt(o: &mut Outcome, r: &Facts, s: &SessionFile) {
    let items = &s.events;
    let failed_exit = |i: &&Item| field::ret(i).is_some_and(|v| v < 0);
    if let Some((pid, st)) = registration(o, items, "corrupt_inode", &r.mount_corrupt_inode_pid) {
        o.check(
            "corrupt (root inode): holder failed -> released, never ready",
            in_order(&st, &[State::Registered, State::Failed, State::Released])
                && !ever(&st, State::Ready),
            names(&st),
        );
        let fails: Vec<&Item> = [Phase::MountfsExit, Phase::FillSuperExit]
            .iter()
            .flat_map(|p| by_pid(items, Kind::Mount(*p), pid))
            .filter(failed_exit)
            .collect();
        o.check(
            "corrupt (root inode): xfs_mountfs returned an error",
            fails.iter().any(|i| Kind::Mount(Phase::MountfsExit).of(i)),
            briefs(&fails),
        );
    }
    let Some((pid, st)) = registration(o, items, "corrupt_magic", &r.mount_corrupt_magic_pid)
    else {
        return;
    };
    o.check(
        "corrupt (superblock magic): holder released, never ready",
        st.last().is_some_and(|(_, s)| *s == State::Released) && !ever(&st, State::Ready),
        names(&st),
    );
    // 6.1 releases the holder inside xfs_fs_fill_super (xfs_close_devices on its error path),
    // before fill_super returns the error: the tracker never sees it fail. Later kernels
    // release it from ->kill_sb, after fill_super has returned.
    let in_fill_super = s.kernel.starts_with("6.1.");
    o.check(
        if in_fill_super {
            "corrupt (superblock magic), 6.1: released before fill_super returned, so no failed state"
        } else {
            "corrupt (superblock magic): holder failed before it was released"
        },
        ever(&st, State::Failed) != in_fill_super,
        names(&st),
    );
    let fill = by_pid(items, Kind::Mount(Phase::FillSuperExit), pid);
    o.check(
        "corrupt (superblock magic): fill_super_exit ret < 0, no xfs_mountfs",
        fill.iter().any(failed_exit)
            && by_pid(items, Kind::Mount(Phase::MountfsEnter), pid).is_empty(),
        briefs(&fill),
    );
}

/// premature: a premature notification while the holder was not ready.
fn premature(o: &mut Outcome, r: &Facts, items: &[Item]) {
    let Some((_, st)) = registration(o, items, "premature", &r.mount_premature_pid) else {
        return;
    };
    o.check(
        "premature: holder registered -> ... -> ready -> released",
        in_order(
            &st,
            &[
                State::Registered,
                State::Mounting,
                State::Ready,
                State::Released,
            ],
        ),
        names(&st),
    );
    let off = r.premature_physoff.value;
    let n = notification_at(items, off);
    let ready_at = st.iter().find(|(_, s)| *s == State::Ready).map(|(i, _)| *i);
    let premature = n.and_then(|(_, i)| i.notification()).is_some_and(|n| {
        n.data.verdict == Verdict::Premature
            && n.data.ret == EIO
            && n.data.state.is_some_and(|s| s != State::Ready)
    });
    o.check(
        "premature: a PREMATURE notification (-EIO) in a not-ready state, before ready",
        premature && matches!((n, ready_at), (Some((a, _)), Some(b)) if a < b),
        n.map_or(format!("no notification at offset {off:?}"), |(_, i)| {
            brief(i)
        }),
    );
}

/// unmount: ready -> unmounting -> released, by the umount.
fn unmount(o: &mut Outcome, r: &Facts, items: &[Item]) {
    if let Some((_, st)) = registration(o, items, "unmount_setup", &r.mount_unmount_setup_pid) {
        o.check(
            "unmount: holder ready -> unmounting -> released",
            in_order(&st, &[State::Ready, State::Unmounting, State::Released]),
            names(&st),
        );
    }
    let Some(pid) = r.umount_unmount_pid.value else {
        return;
    };
    let exits = by_pid(items, Kind::SyscallExit, pid);
    let umount_0 = exits.iter().any(|i| {
        matches!(i.kernel().map(|e| &e.data),
            Some(notify_model::EventData::SyscallExit { syscall, ret: 0 }) if syscall == "umount")
    });
    o.check(
        "unmount: umount(2) returned 0 and put_super ran in the umount",
        umount_0 && !by_pid(items, Kind::Mount(Phase::PutSuper), pid).is_empty(),
        briefs(&exits),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_order() {
        let st: States = [
            State::Registered,
            State::Mounting,
            State::Failed,
            State::Released,
        ]
        .into_iter()
        .enumerate()
        .collect();
        assert!(in_order(
            &st,
            &[State::Registered, State::Failed, State::Released]
        ));
        assert!(!in_order(&st, &[State::Released, State::Failed]));
        assert_eq!(names(&st), "registered -> mounting -> failed -> released");
    }
}
