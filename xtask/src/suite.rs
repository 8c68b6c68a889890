//! The `mount_suite` scenario: a small mount test suite (lab/mount_suite.sh) run in the guest
//! under `notify record`, with the fleet agent (`notify agent --metrics-addr`) alongside.
//!
//! Host side: the session file that came back is rendered with the host's `notify report`
//! (report.txt, report.svg, report.png when rsvg-convert exists), next to it under
//! `target/lab/<kernel>/<flavour>/mount_suite/`. Assertions: the suite's own facts
//! (result.txt, dmesg), the session (exit status, holder states per sub-test, tied to the
//! sub-test by the pid of its mount), the report's text and SVG, and the agent's /healthz and
//! /metrics scrapes.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;

use crate::{
    check::{Check, EIO, Event, Evidence, Outcome, parse_num},
    util, vm,
};

pub const SCENARIO: &str = "mount_suite";

/// The host's notify binary for `notify report`: the one given with --agent, else the
/// workspace's debug or release build.
pub fn host_notify(agent: Option<&Path>) -> Option<PathBuf> {
    if let Some(a) = agent {
        return Some(a.to_path_buf());
    }
    ["debug", "release"]
        .iter()
        .map(|p| util::target_dir().join(p).join("notify"))
        .find(|p| p.exists())
}

/// The transcript with the host's reports of every session that came back ([`host_report`]).
pub fn with_host_report(
    mut t: vm::Transcript,
    out: &Path,
    notify: Option<&Path>,
) -> vm::Transcript {
    host_report(&mut t, out, notify);
    t
}

/// The report files of a session file: `session.json` -> `report`, `session_X.json` ->
/// `report_X`; None for a file that is not a session.
pub fn report_stem(session: &str) -> Option<String> {
    let rest = session.strip_prefix("session")?.strip_suffix(".json")?;
    (rest.is_empty() || rest.starts_with('_')).then(|| format!("report{rest}"))
}

/// Renders every session the guest sent (each scenario's agent writes one with `--session`;
/// the mount suite's comes from `notify record`) with the host's `notify report`, next to it
/// under `out/<scenario>/`: report.txt and report.svg go into the transcript (the checks read
/// them), report.png is drawn when rsvg-convert exists. Says what it did on stderr; a failure
/// leaves the report files out (the checks say so).
pub fn host_report(t: &mut vm::Transcript, out: &Path, notify: Option<&Path>) {
    let sessions: Vec<(String, String, String)> = t
        .files
        .iter()
        .filter_map(|(k, body)| {
            let (sc, name) = k.split_once('/')?;
            let stem = report_stem(name)?;
            Some((format!("{sc}/{name}"), stem, body.clone()))
        })
        .collect();
    if sessions.is_empty() {
        return;
    }
    let Some(notify) = host_notify(notify) else {
        eprintln!("lab: no host notify binary for `notify report`");
        return;
    };
    let png_tool = on_path("rsvg-convert");
    let mut done = Vec::new();
    for (key, stem, body) in sessions {
        let sc = key.split_once('/').map_or("", |(s, _)| s).to_string();
        let dir = out.join(&sc);
        let session = out.join(&key);
        if let Err(e) = util::mkdirp(&dir)
            .and_then(|_| std::fs::write(&session, &body).map_err(anyhow::Error::from))
        {
            eprintln!("lab: writing {}: {e:#}", session.display());
            continue;
        }
        let svg = dir.join(format!("{stem}.svg"));
        let mut c = Command::new(&notify);
        c.arg("report").arg(&session).arg("--svg").arg(&svg);
        if png_tool {
            c.arg("--png").arg(dir.join(format!("{stem}.png")));
        }
        match c.output() {
            Ok(o) if o.status.success() => {
                let text = String::from_utf8_lossy(&o.stdout).into_owned();
                t.files.insert(format!("{sc}/{stem}.txt"), text);
                if let Ok(s) = std::fs::read_to_string(&svg) {
                    t.files.insert(format!("{sc}/{stem}.svg"), s);
                }
                done.push(format!("{sc}/{stem}"));
            }
            Ok(o) => eprintln!(
                "lab: notify report {key} failed ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => eprintln!("lab: running {}: {e}", notify.display()),
        }
    }
    if !done.is_empty() {
        eprintln!(
            "lab: {} report -> {}.{{txt,svg{}}}",
            notify.display(),
            done.join(", "),
            if png_tool { ",png" } else { "" }
        );
    }
}

fn on_path(prog: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
}

fn ck(o: &mut Outcome, what: impl Into<String>, ok: bool, detail: impl Into<String>) -> bool {
    o.checks.push(Check {
        what: what.into(),
        ok,
        detail: detail.into(),
    });
    ok
}

fn get<'a>(r: &'a BTreeMap<String, String>, k: &str) -> &'a str {
    r.get(k).map_or("<absent>", String::as_str)
}

fn eq(o: &mut Outcome, what: &str, r: &BTreeMap<String, String>, k: &str, want: &str) -> bool {
    let got = get(r, k);
    ck(o, what, got == want, format!("{k}={got}, want {want}"))
}

fn nonzero(o: &mut Outcome, what: &str, r: &BTreeMap<String, String>, k: &str) -> bool {
    let got = get(r, k);
    ck(
        o,
        what,
        got != "0" && got != "<absent>",
        format!("{k}={got}, want non-zero"),
    )
}

fn dmesg_has(o: &mut Outcome, dmesg: &str, needle: &str) {
    let hit = dmesg.lines().find(|l| l.contains(needle));
    ck(
        o,
        format!("dmesg says {needle:?}"),
        hit.is_some(),
        hit.map_or(format!("no line containing {needle:?}"), |l| {
            l.trim().to_string()
        }),
    );
}

/// All assertions of the scenario. `require_agent`: a missing agent fails.
pub fn check(o: &mut Outcome, r: &BTreeMap<String, String>, ev: &Evidence, require_agent: bool) {
    kernel_side(o, r, ev.dmesg);
    match get(r, "agent") {
        "missing" | "<absent>" if !require_agent => {
            o.skipped
                .push("agent missing: session, report and metrics checks skipped".into());
            return;
        }
        "missing" | "<absent>" => {
            ck(
                o,
                "agent present",
                false,
                "the notify binary was not in the guest",
            );
            return;
        }
        _ => {}
    }
    eq(o, "notify record exited 0", r, "record_exit", "0");
    match ev.extra.get("session.json") {
        Some(text) => session(o, r, text, ev),
        None => {
            ck(o, "session.json came back", false, "no session.json");
        }
    }
    metrics(o, r, ev);
}

/// What the suite measured itself, agent or not.
fn kernel_side(o: &mut Outcome, r: &BTreeMap<String, String>, dmesg: &str) {
    eq(o, "the suite ran to its end", r, "suite_done", "yes");
    // clean
    eq(o, "clean: mkfs.xfs succeeded", r, "mkfs_clean_rc", "0");
    eq(o, "clean: mount succeeded", r, "mount_clean_rc", "0");
    eq(
        o,
        "clean: the victim died of SIGBUS (exit 135)",
        r,
        "clean_victim_exit",
        "135",
    );
    eq(o, "clean: umount succeeded", r, "umount_clean_rc", "0");
    // recovery
    eq(
        o,
        "recovery: xfs_io shutdown -f succeeded",
        r,
        "shutdown_rc",
        "0",
    );
    eq(
        o,
        "recovery: umount of the shut-down filesystem succeeded",
        r,
        "umount_recovery_first_rc",
        "0",
    );
    eq(
        o,
        "recovery: mount with a dirty log succeeded",
        r,
        "mount_recovery_rc",
        "0",
    );
    eq(
        o,
        "recovery: the 8 files written before the shutdown are there",
        r,
        "recovered_files",
        "8",
    );
    dmesg_has(o, dmesg, "Starting recovery");
    dmesg_has(o, dmesg, "Ending recovery");
    // corrupt
    nonzero(
        o,
        "corrupt: mount with a zeroed root inode failed",
        r,
        "mount_corrupt_inode_rc",
    );
    nonzero(
        o,
        "corrupt: mount with a zeroed superblock magic failed",
        r,
        "mount_corrupt_magic_rc",
    );
    // premature
    eq(
        o,
        "premature: the slow mount succeeded",
        r,
        "mount_premature_rc",
        "0",
    );
    ck(
        o,
        "premature: the mount was still in progress at injection",
        !r.contains_key("premature_mounted_before_inject"),
        format!("mount took {} s", get(r, "premature_mount_secs")),
    );
    nonzero(
        o,
        "premature: corrupt-pfn write failed (XFS not ready: EIO)",
        r,
        "premature_inject_rc",
    );
    dmesg_has(o, dmesg, "filesystem is not ready for notify_failure()!");
    // unmount
    eq(
        o,
        "unmount: mount succeeded",
        r,
        "mount_unmount_setup_rc",
        "0",
    );
    eq(o, "unmount: umount succeeded", r, "umount_unmount_rc", "0");
}

/// The session file: one JSON document, events one per line.
struct Session {
    doc: Value,
    events: Vec<Event>,
}

fn parse_session(text: &str) -> Result<Session, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let events = doc
        .get("events")
        .and_then(Value::as_array)
        .ok_or("no events array")?
        .iter()
        .filter_map(|e| e.as_object().cloned().map(Event))
        .collect();
    Ok(Session { doc, events })
}

/// The states one registration went through: the holder_state events from the registration
/// made by process `pid` (its mount) up to its release, as (index, to).
/// A registration's dax device, holder, and its states as (index of the event, state).
type Registration = (String, String, Vec<(usize, String)>);

fn states_of(events: &[Event], pid: i128) -> Option<Registration> {
    let start = events.iter().position(|e| {
        e.kind() == "holder_state" && e.str("to") == Some("registered") && e.num("pid") == Some(pid)
    })?;
    let (dax, holder) = (
        events[start].str("dax_dev")?.to_string(),
        events[start].str("holder")?.to_string(),
    );
    let mut out = Vec::new();
    for (i, e) in events.iter().enumerate().skip(start) {
        if e.kind() != "holder_state" || e.str("dax_dev") != Some(&dax) {
            continue;
        }
        if i > start && e.str("to") == Some("registered") {
            break;
        }
        if e.str("holder") != Some(&holder) {
            continue;
        }
        let to = e.str("to").unwrap_or("?").to_string();
        let done = to == "released";
        out.push((i, to));
        if done {
            break;
        }
    }
    Some((dax, holder, out))
}

fn names(states: &[(usize, String)]) -> String {
    states
        .iter()
        .map(|(_, s)| s.as_str())
        .collect::<Vec<_>>()
        .join(" -> ")
}

/// Whether `want` occur in this order in `states`.
fn in_order(states: &[(usize, String)], want: &[&str]) -> bool {
    let mut it = states.iter();
    want.iter().all(|w| it.any(|(_, s)| s == w))
}

/// `kind` events of process `pid`.
fn by_pid<'a>(events: &'a [Event], kind: &str, pid: i128) -> Vec<&'a Event> {
    events
        .iter()
        .filter(|e| e.kind() == kind && e.num("pid") == Some(pid))
        .collect()
}

fn pid_of(r: &BTreeMap<String, String>, k: &str) -> Option<i128> {
    r.get(k).and_then(|v| parse_num(v))
}

/// The registration of the mount `key` (mount_<key>_pid): its states, or a failed check.
fn registration(
    o: &mut Outcome,
    events: &[Event],
    r: &BTreeMap<String, String>,
    key: &str,
) -> Option<(i128, Vec<(usize, String)>)> {
    let k = format!("mount_{key}_pid");
    let Some(pid) = pid_of(r, &k) else {
        ck(
            o,
            format!("{key}: the suite recorded its mount's pid"),
            false,
            format!("no {k}"),
        );
        return None;
    };
    match states_of(events, pid) {
        Some((_, _, st)) => Some((pid, st)),
        None => {
            let seen: Vec<String> = events
                .iter()
                .filter(|e| e.kind() == "holder_state" && e.str("to") == Some("registered"))
                .map(Event::brief)
                .collect();
            ck(
                o,
                format!("{key}: the mount (pid {pid}) registered a dax holder"),
                false,
                format!("registrations seen:\n    {}", seen.join("\n    ")),
            );
            None
        }
    }
}

fn session(o: &mut Outcome, r: &BTreeMap<String, String>, text: &str, ev: &Evidence) {
    let s = match parse_session(text) {
        Ok(s) => s,
        Err(e) => {
            ck(o, "session.json is a session file", false, e);
            return;
        }
    };
    let d = &s.doc;
    ck(
        o,
        "session.json is notify-session version 1",
        d["format"] == "notify-session" && d["version"] == 1,
        format!("format={} version={}", d["format"], d["version"]),
    );
    ck(
        o,
        "session: the suite exited 0",
        d["exit_status"] == serde_json::json!({"code": 0}),
        format!("exit_status={}", d["exit_status"]),
    );
    ck(
        o,
        "session: nothing lost",
        d["lost"]["kernel"] == 0 && d["lost"]["seq_gaps"] == 0,
        format!("lost={}", d["lost"]),
    );
    ck(
        o,
        "session: no error",
        d.get("error").is_none(),
        format!("error={}", d.get("error").unwrap_or(&Value::Null)),
    );
    let ev_all = &s.events;
    let kernel = ev_all
        .iter()
        .filter(|e| e.kind() != "holder_state" && e.kind() != "notification")
        .count();
    ck(
        o,
        "session has events",
        kernel > 0,
        format!("{} events ({kernel} kernel)", ev_all.len()),
    );

    // clean: registered ... ready ... released, and the victim's notification delivered.
    if let Some((_, st)) = registration(o, ev_all, r, "clean") {
        ck(
            o,
            "clean: holder registered -> ready -> released",
            in_order(&st, &["registered", "ready", "released"])
                && !st.iter().any(|(_, s)| s == "failed"),
            names(&st),
        );
        let off = r.get("clean_physoff").and_then(|v| parse_num(v));
        let n = ev_all
            .iter()
            .find(|e| e.kind() == "notification" && off.is_some() && e.num("offset") == off);
        ck(
            o,
            "clean: the victim's notification was delivered while ready",
            n.is_some_and(|n| {
                n.str("verdict") == Some("delivered") && n.str("state") == Some("ready")
            }),
            n.map_or(format!("no notification at offset {off:?}"), Event::brief),
        );
    }

    // recovery: the mount after the shutdown recovered the log.
    let recover_tp = s.doc["probes"].as_array().into_iter().flatten().any(|p| {
        p["target"]
            .as_str()
            .is_some_and(|t| t.contains("xfs_log_recover"))
            && !p["method"].is_null()
    });
    if let Some((pid, st)) = registration(o, ev_all, r, "recovery") {
        ck(
            o,
            "recovery: holder registered -> recovering -> ready -> released",
            in_order(&st, &["registered", "recovering", "ready", "released"]),
            names(&st),
        );
        let recovering = by_pid(ev_all, "log_recover_enter", pid);
        ck(
            o,
            "recovery: log_recover_enter by the recovery mount",
            !recovering.is_empty(),
            recovering.first().map_or("none".into(), |e| e.brief()),
        );
        if recover_tp {
            // xfs:xfs_log_recover fires only when the log really needs replaying: not for
            // the clean mount.
            let tp = |pid| {
                by_pid(ev_all, "xfs_tracepoint", pid)
                    .into_iter()
                    .filter(|e| {
                        e.str("tracepoint")
                            .is_some_and(|t| t.contains("xfs_log_recover"))
                    })
                    .count()
            };
            let clean = pid_of(r, "mount_clean_pid").map_or(0, tp);
            ck(
                o,
                "recovery: xfs:xfs_log_recover fired for the dirty log, not for the clean mount",
                tp(pid) > 0 && clean == 0,
                format!("recovery mount: {}, clean mount: {clean}", tp(pid)),
            );
        } else {
            o.skipped
                .push("xfs:xfs_log_recover not attached: real recovery not told apart".into());
        }
    }

    // corrupt: failed then released, never ready.
    if let Some((pid, st)) = registration(o, ev_all, r, "corrupt_inode") {
        ck(
            o,
            "corrupt (root inode): holder failed -> released, never ready",
            in_order(&st, &["registered", "failed", "released"])
                && !st.iter().any(|(_, s)| s == "ready"),
            names(&st),
        );
        let fails: Vec<_> = ["mountfs_exit", "fill_super_exit"]
            .iter()
            .flat_map(|k| by_pid(ev_all, k, pid))
            .filter(|e| e.num("ret").is_some_and(|v| v < 0))
            .collect();
        ck(
            o,
            "corrupt (root inode): xfs_mountfs returned an error",
            fails.iter().any(|e| e.kind() == "mountfs_exit"),
            fails
                .iter()
                .map(|e| e.brief())
                .collect::<Vec<_>>()
                .join("\n    "),
        );
    }
    if let Some((pid, st)) = registration(o, ev_all, r, "corrupt_magic") {
        ck(
            o,
            "corrupt (superblock magic): holder released, never ready",
            st.last().is_some_and(|(_, s)| s == "released")
                && !st.iter().any(|(_, s)| s == "ready"),
            names(&st),
        );
        // 6.1 releases the holder inside xfs_fs_fill_super (xfs_close_devices on its error
        // path), before fill_super returns the error: the tracker never sees it fail. Later
        // kernels release it from ->kill_sb, after fill_super has returned.
        let in_fill_super = d["kernel"].as_str().is_some_and(|k| k.starts_with("6.1."));
        let failed = st.iter().any(|(_, s)| s == "failed");
        ck(
            o,
            if in_fill_super {
                "corrupt (superblock magic), 6.1: released before fill_super returned, so no failed state"
            } else {
                "corrupt (superblock magic): holder failed before it was released"
            },
            failed != in_fill_super,
            names(&st),
        );
        let fill = by_pid(ev_all, "fill_super_exit", pid);
        ck(
            o,
            "corrupt (superblock magic): fill_super_exit ret < 0, no xfs_mountfs",
            fill.iter().any(|e| e.num("ret").is_some_and(|v| v < 0))
                && by_pid(ev_all, "mountfs_enter", pid).is_empty(),
            fill.iter()
                .map(|e| e.brief())
                .collect::<Vec<_>>()
                .join("\n    "),
        );
    }

    // premature: a premature notification while the holder was not ready.
    if let Some((_, st)) = registration(o, ev_all, r, "premature") {
        ck(
            o,
            "premature: holder registered -> ... -> ready -> released",
            in_order(&st, &["registered", "mounting", "ready", "released"]),
            names(&st),
        );
        let off = r.get("premature_physoff").and_then(|v| parse_num(v));
        let n = ev_all
            .iter()
            .find(|e| e.kind() == "notification" && off.is_some() && e.num("offset") == off);
        let ready_at = st.iter().find(|(_, s)| s == "ready").map(|(i, _)| *i);
        let n_at = n.and_then(|n| ev_all.iter().position(|e| std::ptr::eq(e, n)));
        ck(
            o,
            "premature: a PREMATURE notification (-EIO) in a not-ready state, before ready",
            n.is_some_and(|n| {
                n.str("verdict") == Some("premature")
                    && n.num("ret") == Some(EIO.into())
                    && n.str("state").is_some_and(|s| s != "ready")
            }) && matches!((n_at, ready_at), (Some(a), Some(b)) if a < b),
            n.map_or(format!("no notification at offset {off:?}"), Event::brief),
        );
    }

    // unmount: ready -> unmounting -> released, by the umount.
    if let Some((_, st)) = registration(o, ev_all, r, "unmount_setup") {
        ck(
            o,
            "unmount: holder ready -> unmounting -> released",
            in_order(&st, &["ready", "unmounting", "released"]),
            names(&st),
        );
    }
    if let Some(pid) = pid_of(r, "umount_unmount_pid") {
        let exits = by_pid(ev_all, "syscall_exit", pid);
        ck(
            o,
            "unmount: umount(2) returned 0 and put_super ran in the umount",
            exits
                .iter()
                .any(|e| e.str("syscall") == Some("umount") && e.num("ret") == Some(0))
                && !by_pid(ev_all, "put_super", pid).is_empty(),
            exits
                .iter()
                .map(|e| e.brief())
                .collect::<Vec<_>>()
                .join("\n    "),
        );
    }

    report(o, &s, ev);
}

/// The host's `notify report` of the session: every device lane, the PREMATURE line, the SVG's
/// verdict markers.
fn report(o: &mut Outcome, s: &Session, ev: &Evidence) {
    let Some(text) = ev.extra.get("report.txt") else {
        ck(
            o,
            "notify report rendered the session",
            false,
            "no report.txt (see the lab's stderr)",
        );
        return;
    };
    // Every block device a dax holder registered with is a lane.
    let devices = s.doc["devices"].as_object();
    let mut lanes: Vec<String> = s
        .events
        .iter()
        .filter(|e| e.kind() == "holder_state" && e.str("to") == Some("registered"))
        .filter_map(|e| e.str("dev").map(str::to_string))
        .collect();
    lanes.sort();
    lanes.dedup();
    let mut missing = Vec::new();
    let mut detail = String::new();
    for dev in &lanes {
        let name = devices
            .and_then(|d| d.get(dev))
            .and_then(Value::as_str)
            .unwrap_or("?");
        let label = format!(": {dev} ({name})");
        match text
            .lines()
            .find(|l| l.starts_with("device ") && l.contains(&label))
        {
            Some(l) => {
                let _ = write!(detail, "{l}; ");
            }
            None => missing.push(label),
        }
    }
    ck(
        o,
        "report.txt has a lane for every device a holder registered with",
        !lanes.is_empty() && missing.is_empty(),
        if missing.is_empty() {
            detail
        } else {
            format!(
                "missing {missing:?}; lanes in report: {:?}",
                text.lines()
                    .filter(|l| l.starts_with("device "))
                    .collect::<Vec<_>>()
            )
        },
    );
    let prem = text.lines().find(|l| l.contains("PREMATURE during"));
    ck(
        o,
        "report.txt marks the PREMATURE notification",
        prem.is_some(),
        prem.unwrap_or("no line with \"PREMATURE during\"").trim(),
    );
    let deliv = text.lines().find(|l| l.contains("DELIVERED during ready"));
    ck(
        o,
        "report.txt shows the delivered notification",
        deliv.is_some(),
        deliv
            .unwrap_or("no line with \"DELIVERED during ready\"")
            .trim(),
    );
    match ev.extra.get("report.svg") {
        Some(svg) => {
            let n = |v: &str| {
                svg.matches(&format!(r#"class="marker verdict-{v}""#))
                    .count()
            };
            ck(
                o,
                "report.svg has the premature and delivered verdict markers",
                n("premature") >= 1 && n("delivered") >= 1,
                format!("premature {}, delivered {}", n("premature"), n("delivered")),
            );
        }
        None => {
            ck(o, "report.svg rendered", false, "no report.svg");
        }
    }
}

/// One sample of an OpenMetrics text: the value of `name` whose labels include `labels`.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (head, value) = l.rsplit_once(' ')?;
        let (n, ls) = match head.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (head, ""),
        };
        (n == name
            && labels
                .iter()
                .all(|(k, v)| ls.split(',').any(|p| p == format!("{k}=\"{v}\""))))
        .then(|| value.parse().ok())
        .flatten()
    })
}

fn metric_eq(
    o: &mut Outcome,
    what: &str,
    text: &str,
    name: &str,
    labels: &[(&str, &str)],
    want: f64,
) {
    let got = sample(text, name, labels);
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(name)).collect();
    ck(
        o,
        what,
        got == Some(want),
        format!(
            "{name}{labels:?} = {}, want {want}; samples: {lines:?}",
            got.map_or("absent".into(), |v| v.to_string())
        ),
    );
}

/// The fleet agent's endpoint: /healthz 200, notifications by verdict, journal depth.
fn metrics(o: &mut Outcome, r: &BTreeMap<String, String>, ev: &Evidence) {
    if get(r, "metrics_agent") != "running" {
        ck(
            o,
            "the fleet agent (notify agent --metrics-addr) started",
            false,
            format!(
                "metrics_agent={} exit {}",
                get(r, "metrics_agent"),
                get(r, "metrics_agent_exit")
            ),
        );
        return;
    }
    eq(
        o,
        "fleet agent exited 0 on SIGINT",
        r,
        "metrics_agent_exit",
        "0",
    );
    let health = ev.extra.get("healthz.txt").copied().unwrap_or("");
    ck(
        o,
        "/healthz answers 200 with status ok (every required probe attached)",
        get(r, "healthz_rc") == "0"
            && health.contains("HTTP/1.1 200")
            && health.contains(r#""status":"ok""#),
        health.trim(),
    );
    let file = |f: &str| ev.extra.get(f).copied().unwrap_or("");
    let delivered = file("metrics_delivered.txt");
    metric_eq(
        o,
        "/metrics after the victim: 1 delivered notification, no premature yet",
        delivered,
        "notify_notifications_total",
        &[("verdict", "delivered")],
        1.0,
    );
    let early = sample(
        delivered,
        "notify_notifications_total",
        &[("verdict", "premature")],
    );
    ck(
        o,
        "/metrics after the victim: no premature notification counted yet",
        early.is_none(),
        format!("premature = {early:?}"),
    );
    let prem = file("metrics_premature.txt");
    eq(
        o,
        "/metrics scraped while the premature mount was still running",
        r,
        "metrics_premature_while_mounting",
        "yes",
    );
    metric_eq(
        o,
        "/metrics mid-mount: journal pending depth 1 (the premature notification, not yet replayed)",
        prem,
        "notify_journal_pending",
        &[],
        1.0,
    );
    metric_eq(
        o,
        "/metrics mid-mount: 1 notification journaled for reason premature",
        prem,
        "notify_journaled_total",
        &[("reason", "premature")],
        1.0,
    );
    let end = file("metrics_end.txt");
    for (v, n) in [("delivered", 1.0), ("premature", 1.0)] {
        metric_eq(
            o,
            &format!("/metrics at the end: notifications by verdict {v} = {n}"),
            end,
            "notify_notifications_total",
            &[("dev", "259:0"), ("verdict", v)],
            n,
        );
    }
    metric_eq(
        o,
        "/metrics at the end: premature notifications of 259:0 = 1",
        end,
        "notify_notifications_premature_total",
        &[("dev", "259:0")],
        1.0,
    );
    metric_eq(
        o,
        "/metrics at the end: the ready mount replayed it (replayed ok = 1)",
        end,
        "notify_replayed_total",
        &[("disk", "pmem0"), ("result", "ok")],
        1.0,
    );
    metric_eq(
        o,
        "/metrics at the end: journal pending depth back to 0",
        end,
        "notify_journal_pending",
        &[],
        0.0,
    );
    metric_eq(
        o,
        "/metrics: no required probe missing",
        end,
        "notify_probes_required_missing",
        &[],
        0.0,
    );
    // The agent's own records: journaled, then replayed with the same id.
    let recs: Vec<Event> = file("agent_events.jsonl")
        .lines()
        .filter_map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()?
                .as_object()
                .cloned()
                .map(Event)
        })
        .collect();
    let off = r.get("premature_physoff").and_then(|v| parse_num(v));
    let j = recs.iter().position(|e| {
        e.kind() == "journaled"
            && e.str("reason") == Some("premature")
            && e.num("dax_offset") == off
    });
    let rp = j.and_then(|j| {
        let id = recs[j].num("id");
        recs.iter()
            .skip(j + 1)
            .find(|e| e.kind() == "replayed" && e.num("id") == id)
    });
    ck(
        o,
        "fleet agent: journaled (premature) then replayed the same record",
        j.is_some() && rp.is_some(),
        format!(
            "journaled: {}; replayed: {}",
            j.map_or("none".into(), |j| recs[j].brief()),
            rp.map_or("none".into(), Event::brief)
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(run: &str, f: &str) -> String {
        let p = crate::lab::fixtures_dir().join(run).join(SCENARIO).join(f);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    /// Runs the checks on a recorded run with `edit` applied to file `f`; the failed checks.
    fn failures(run: &str, f: &str, edit: impl Fn(&str) -> String) -> String {
        let files: Vec<(&'static str, String)> = crate::check::EXTRA_FILES
            .iter()
            .filter_map(|n| {
                let p = crate::lab::fixtures_dir().join(run).join(SCENARIO).join(n);
                let body = std::fs::read_to_string(p).ok()?;
                Some((*n, if *n == f { edit(&body) } else { body }))
            })
            .collect();
        let (result, dmesg) = (fixture(run, "result.txt"), fixture(run, "dmesg.txt"));
        let ev = Evidence {
            result: &result,
            dmesg: &dmesg,
            events: None,
            extra: files.iter().map(|(n, b)| (*n, b.as_str())).collect(),
        };
        let o = crate::check::check_scenario(SCENARIO, &ev, true);
        o.checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.what, c.detail))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Each recorded agent run passes, and breaking it the way a regression would fails
    /// naming the sub-test.
    #[test]
    fn recorded_suite_and_its_regressions() {
        for run in ["6.1-kprobe", "6.1-fentry", "6.12-kprobe", "6.12-fentry"] {
            assert_eq!(failures(run, "", str::to_string), "", "{run}");
        }
        let run = "6.1-kprobe";
        // XFS took the poison during the mount: no premature verdict.
        let msg = failures(run, "session.json", |s| {
            s.replace(r#""verdict":"premature""#, r#""verdict":"delivered""#)
        });
        assert!(msg.contains("premature: a PREMATURE notification"), "{msg}");
        // The corrupt mount became ready.
        let pid =
            crate::check::parse_results(&fixture(run, "result.txt"))["mount_corrupt_inode_pid"]
                .clone();
        let msg = failures(run, "session.json", |s| {
            s.lines()
                .map(|l| {
                    if l.contains(&format!(r#""pid":{pid},"#)) {
                        l.replace(r#""to":"failed""#, r#""to":"ready""#)
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
        });
        assert!(
            msg.contains("corrupt (root inode): holder failed -> released, never ready"),
            "{msg}"
        );
        // The agent replayed before the scrape: pending 0 mid-mount.
        let msg = failures(run, "metrics_premature.txt", |s| {
            s.replace("notify_journal_pending 1", "notify_journal_pending 0")
        });
        assert!(msg.contains("journal pending depth 1"), "{msg}");
        // /healthz degraded.
        let msg = failures(run, "healthz.txt", |s| {
            s.replace("200 OK", "503 Service Unavailable")
        });
        assert!(msg.contains("/healthz answers 200"), "{msg}");
        // The recorded command failed.
        let msg = failures(run, "session.json", |s| {
            s.replace(
                r#""exit_status": {"code":0}"#,
                r#""exit_status": {"code":1}"#,
            )
        });
        assert!(msg.contains("session: the suite exited 0"), "{msg}");
    }

    #[test]
    fn samples() {
        let t = "# TYPE notify_notifications_total counter\n\
                 notify_notifications_total{dev=\"259:0\",verdict=\"premature\"} 1\n\
                 notify_notifications_total{dev=\"259:0\",verdict=\"delivered\"} 2\n\
                 notify_journal_pending 0\n";
        assert_eq!(
            sample(t, "notify_notifications_total", &[("verdict", "delivered")]),
            Some(2.0)
        );
        assert_eq!(sample(t, "notify_journal_pending", &[]), Some(0.0));
        assert_eq!(
            sample(t, "notify_notifications_total", &[("verdict", "no_holder")]),
            None
        );
    }

    #[test]
    fn state_order() {
        let st: Vec<(usize, String)> = ["registered", "mounting", "failed", "released"]
            .iter()
            .enumerate()
            .map(|(i, s)| (i, s.to_string()))
            .collect();
        assert!(in_order(&st, &["registered", "failed", "released"]));
        assert!(!in_order(&st, &["released", "failed"]));
    }
}
