//! Assertions over what one lab scenario left behind: the script's
//! `result.txt` facts, the guest's dmesg and the agent's JSON lines.
//! Plain functions over strings, so they run against recorded fixtures.

use std::{collections::BTreeMap, fmt::Write as _};

use serde_json::{Map, Value};

/// pmem0 starts at this pfn with `memmap=1G!1G`.
pub const PMEM_BASE_PFN: u64 = 0x40000;
pub const PAGE: u64 = 4096;
pub const EOPNOTSUPP: i64 = -95;
pub const EIO: i64 = -5;
/// si_code of a SIGBUS for an action-required memory error.
pub const BUS_MCEERR_AR: &str = "4";

/// One event of the agent: a JSON object.
#[derive(Clone, Debug)]
pub struct Event(pub Map<String, Value>);

impl Event {
    pub fn kind(&self) -> &str {
        self.0.get("kind").and_then(Value::as_str).unwrap_or("")
    }
    pub fn seq(&self) -> u64 {
        self.0
            .get("seq")
            .and_then(Value::as_u64)
            .unwrap_or(u64::MAX)
    }
    /// A numeric field: JSON numbers, or strings in decimal or 0x-hex.
    pub fn num(&self, k: &str) -> Option<i128> {
        as_num(self.0.get(k)?)
    }
    pub fn str(&self, k: &str) -> Option<&str> {
        self.0.get(k).and_then(Value::as_str)
    }
    /// A compact one-line rendering for failure reports.
    pub fn brief(&self) -> String {
        let mut s = if self.0.contains_key("seq") {
            format!("#{} {}", self.seq(), self.kind())
        } else {
            // An agent record (docs/EVENTS.md): no kernel header.
            format!("[agent] {}", self.kind())
        };
        for (k, v) in &self.0 {
            if matches!(k.as_str(), "seq" | "kind" | "ktime_ns" | "cpu" | "tid") {
                continue;
            }
            match (k.as_str(), v.as_u64()) {
                ("pfn" | "offset" | "dax_offset", Some(n)) => {
                    let _ = write!(s, " {k}={n:#x}");
                }
                _ => {
                    let _ = write!(s, " {k}={v}");
                }
            }
        }
        s
    }
}

fn as_num(v: &Value) -> Option<i128> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from)),
        Value::String(s) => parse_num(s),
        _ => None,
    }
}

/// Decimal or 0x-hex, optionally negative.
pub fn parse_num(s: &str) -> Option<i128> {
    let s = s.trim();
    let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
    let v = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => i128::from_str_radix(h, 16).ok()?,
        None => s.parse::<i128>().ok()?,
    };
    Some(if neg { -v } else { v })
}

/// Parses JSON lines into events sorted by `seq`; bad lines are returned too.
pub fn parse_events(text: &str) -> (Vec<Event>, Vec<String>) {
    let mut evs = Vec::new();
    let mut bad = Vec::new();
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Value>(l) {
            Ok(Value::Object(m)) => evs.push(Event(m)),
            _ => bad.push(l.to_string()),
        }
    }
    evs.sort_by_key(Event::seq);
    (evs, bad)
}

/// JSON lines in file order: the agent writes its records (which have no `seq`) right after
/// the event that caused them, so their place in the file is their place in the story.
pub fn parse_in_order(text: &str) -> Vec<Event> {
    text.lines()
        .filter_map(|l| match serde_json::from_str::<Value>(l) {
            Ok(Value::Object(m)) => Some(Event(m)),
            _ => None,
        })
        .collect()
}

/// `key=value` lines of a scenario's result.txt.
pub fn parse_results(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// An expected field value in a sequence step.
#[derive(Clone, Debug)]
pub enum Want {
    Num(i128),
    Str(&'static str),
    /// Non-zero number.
    NonZero,
}

/// One step of an expected event sequence: a kind and field constraints.
#[derive(Clone, Debug)]
pub struct Step {
    pub kind: &'static str,
    pub fields: Vec<(&'static str, Want)>,
}

impl Step {
    pub fn new(kind: &'static str) -> Self {
        Self {
            kind,
            fields: Vec::new(),
        }
    }
    pub fn num(mut self, k: &'static str, v: impl Into<i128>) -> Self {
        self.fields.push((k, Want::Num(v.into())));
        self
    }
    pub fn str(mut self, k: &'static str, v: &'static str) -> Self {
        self.fields.push((k, Want::Str(v)));
        self
    }
    pub fn nonzero(mut self, k: &'static str) -> Self {
        self.fields.push((k, Want::NonZero));
        self
    }
    /// Why `e` does not match, or None if it does.
    pub fn mismatch(&self, e: &Event) -> Option<String> {
        if e.kind() != self.kind {
            return Some(format!("kind {} != {}", e.kind(), self.kind));
        }
        for (k, w) in &self.fields {
            let ok = match w {
                Want::Num(n) => e.num(k) == Some(*n),
                Want::Str(s) => e.str(k) == Some(*s),
                Want::NonZero => e.num(k).is_some_and(|v| v != 0),
            };
            if !ok {
                return Some(format!("{k}={} (want {})", field_str(e, k), want_str(w)));
            }
        }
        None
    }
    pub fn describe(&self) -> String {
        let mut s = self.kind.to_string();
        for (k, w) in &self.fields {
            let _ = write!(s, " {k}={}", want_str(w));
        }
        s
    }
}

fn field_str(e: &Event, k: &str) -> String {
    e.0.get(k).map_or("<absent>".into(), |v| v.to_string())
}

fn want_str(w: &Want) -> String {
    match w {
        Want::Num(n) if *n >= 0x10000 => format!("{n:#x}"),
        Want::Num(n) => n.to_string(),
        Want::Str(s) => format!("{s:?}"),
        Want::NonZero => "non-zero".into(),
    }
}

/// Finds `steps` in order (each strictly after the previous match). On
/// failure, says which step is missing and shows the events around where it
/// should have been plus every event of the wanted kind with its mismatch.
pub fn expect_sequence(events: &[Event], steps: &[Step]) -> Result<Vec<usize>, String> {
    let mut found = Vec::new();
    let mut from = 0;
    for (i, step) in steps.iter().enumerate() {
        match (from..events.len()).find(|&j| step.mismatch(&events[j]).is_none()) {
            Some(j) => {
                found.push(j);
                from = j + 1;
            }
            None => {
                let mut msg = format!(
                    "step {} of {} missing: {}",
                    i + 1,
                    steps.len(),
                    step.describe()
                );
                if i > 0 {
                    let prev = &events[from - 1];
                    let _ = write!(msg, "\n  after step {} matched {}", i, prev.brief());
                }
                let same: Vec<_> = events.iter().filter(|e| e.kind() == step.kind).collect();
                if same.is_empty() {
                    let _ = write!(msg, "\n  no {} event at all", step.kind);
                } else {
                    for e in same.iter().take(6) {
                        let why = step
                            .mismatch(e)
                            .unwrap_or_else(|| "matches, but too early".into());
                        let _ = write!(msg, "\n  candidate {} -> {why}", e.brief());
                    }
                }
                msg.push_str("\n  events around it:");
                msg.push_str(&context(events, from.saturating_sub(4), 10));
                return Err(msg);
            }
        }
    }
    Ok(found)
}

/// `n` events from index `from`, one per line.
pub fn context(events: &[Event], from: usize, n: usize) -> String {
    let mut s = String::new();
    for e in events.iter().skip(from).take(n) {
        let _ = write!(s, "\n    {}", e.brief());
    }
    if events.is_empty() {
        s.push_str("\n    (no events)");
    }
    s
}

/// One assertion's verdict.
#[derive(Clone, Debug)]
pub struct Check {
    pub what: String,
    pub ok: bool,
    pub detail: String,
}

/// The verdicts of one scenario.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub scenario: String,
    pub checks: Vec<Check>,
    /// Why some checks did not run (e.g. the agent is missing).
    pub skipped: Vec<String>,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
    pub fn check(&mut self, what: impl Into<String>, ok: bool, detail: impl Into<String>) -> bool {
        self.checks.push(Check {
            what: what.into(),
            ok,
            detail: detail.into(),
        });
        ok
    }
    fn eq(&mut self, what: &str, r: &BTreeMap<String, String>, key: &str, want: &str) -> bool {
        let got = r.get(key).map(String::as_str).unwrap_or("<absent>");
        self.check(what, got == want, format!("{key}={got}, want {want}"))
    }
    fn dmesg(&mut self, dmesg: &str, needle: &str) -> bool {
        let hit = dmesg.lines().find(|l| l.contains(needle));
        let detail = match hit {
            Some(l) => l.trim().to_string(),
            None => format!(
                "no line containing {needle:?}; dmesg tail:{}",
                tail(dmesg, 12)
            ),
        };
        self.check(format!("dmesg says {needle:?}"), hit.is_some(), detail)
    }
    fn seq(&mut self, what: &str, events: &[Event], steps: &[Step]) -> Option<Vec<usize>> {
        match expect_sequence(events, steps) {
            Ok(idx) => {
                let shown: Vec<String> = idx.iter().map(|&i| events[i].brief()).collect();
                self.check(what, true, shown.join("\n    "));
                Some(idx)
            }
            Err(e) => {
                self.check(what, false, e);
                None
            }
        }
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    let mut out = String::new();
    for l in &lines[lines.len().saturating_sub(n)..] {
        let _ = write!(out, "\n    {l}");
    }
    out
}

/// What one scenario left behind, as text.
#[derive(Clone, Debug, Default)]
pub struct Evidence<'a> {
    pub result: &'a str,
    pub dmesg: &'a str,
    /// None when the file never came back.
    pub events: Option<&'a str>,
    /// The scenario's other files by name ([`EXTRA_FILES`]: the replay scenario's later agent
    /// runs and journal listings).
    pub extra: BTreeMap<&'static str, &'a str>,
}

/// Files beyond result/dmesg/events that a scenario may send back for its assertions.
pub const EXTRA_FILES: &[&str] = &[
    "events_restart.jsonl",
    "events_again.jsonl",
    "journal_killed.jsonl",
    "journal_end.jsonl",
    "journal_killed.txt",
    "journal_end.txt",
    // Every scenario's session (its agent's --session; mount_suite's `notify record`) and its
    // host report (crate::sessions, crate::suite).
    "session.json",
    "report.txt",
    "report.svg",
    "session_restart.json",
    "report_restart.txt",
    "report_restart.svg",
    "session_again.json",
    "report_again.txt",
    "report_again.svg",
    // mount_suite (crate::suite): the agent's scrapes.
    "healthz.txt",
    "metrics_delivered.txt",
    "metrics_premature.txt",
    "metrics_replayed.txt",
    "metrics_end.txt",
    "agent_events.jsonl",
];

/// Runs every assertion of `scenario`. `require_agent`: a missing agent fails
/// instead of skipping the event checks.
pub fn check_scenario(scenario: &str, ev: &Evidence, require_agent: bool) -> Outcome {
    let mut o = Outcome {
        scenario: scenario.to_string(),
        ..Default::default()
    };
    let r = parse_results(ev.result);
    if ev.result.is_empty() {
        o.check(
            "scenario reported results",
            false,
            "no result.txt came back (did the guest finish?)",
        );
        return o;
    }
    if scenario == "doctor" {
        if r.contains_key("doctor_rc") {
            o.eq("notify doctor exited 0", &r, "doctor_rc", "0");
        } else if require_agent {
            o.check(
                "agent present",
                false,
                "the notify binary was not in the guest",
            );
        } else {
            o.skipped.push("agent missing: no doctor".into());
        }
        return o;
    }
    // The mount suite's events are in its recorded session, not an events.jsonl.
    if scenario == crate::suite::SCENARIO {
        crate::suite::check(&mut o, &r, ev, require_agent);
        return o;
    }
    // The replay scenario kills its first agent with SIGKILL on purpose.
    let events = agent_events(&mut o, &r, ev, require_agent, scenario == "replay");
    let events = events.as_deref();
    match scenario {
        "no_holder" => no_holder(&mut o, &r, ev.dmesg, events),
        "mounted" => mounted(&mut o, &r, ev.dmesg, events),
        "remount" => remount(&mut o, &r, ev.dmesg, events),
        "premature" => premature(&mut o, &r, ev.dmesg, events),
        "replay" => replay(&mut o, &r, ev, events.is_some()),
        other => {
            o.check(
                "known scenario",
                false,
                format!("no assertions for {other:?}"),
            );
        }
    }
    if events.is_some() {
        crate::sessions::check(&mut o, scenario, &r, ev);
    }
    o
}

/// The agent's events if it ran; records the agent's own health checks.
fn agent_events(
    o: &mut Outcome,
    r: &BTreeMap<String, String>,
    ev: &Evidence,
    require_agent: bool,
    killed: bool,
) -> Option<Vec<Event>> {
    match r.get("agent").map(String::as_str) {
        Some("running") => {}
        Some("missing") | None => {
            if require_agent {
                o.check(
                    "agent present",
                    false,
                    "the notify binary was not in the guest",
                );
            } else {
                o.skipped
                    .push("agent missing: event assertions skipped".into());
            }
            return None;
        }
        Some(other) => {
            o.check(
                "agent started",
                false,
                format!(
                    "agent {other}, exit {}",
                    r.get("agent_exit").map_or("?", |s| s)
                ),
            );
            return None;
        }
    }
    if killed {
        o.eq("agent died of kill -9 (137)", r, "agent_exit", "137");
    } else {
        o.eq("agent exited 0 on SIGINT", r, "agent_exit", "0");
    }
    let Some(text) = ev.events else {
        o.check("events.jsonl came back", false, "no events.jsonl");
        return None;
    };
    Some(well_formed(o, "events.jsonl", text))
}

/// The JSON-lines checks every agent output file must pass; its events sorted by seq.
fn well_formed(o: &mut Outcome, name: &str, text: &str) -> Vec<Event> {
    // events.jsonl keeps its checks' historical names.
    let what = |w: &str| {
        if name == "events.jsonl" {
            w.to_string()
        } else {
            format!("{name}: {w}")
        }
    };
    let (events, bad) = parse_events(text);
    o.check(
        format!("{name} is JSON lines"),
        bad.is_empty(),
        format!(
            "{} events, {} bad lines{}",
            events.len(),
            bad.len(),
            bad.first()
                .map_or(String::new(), |b| format!(", first: {b}"))
        ),
    );
    let (kernel, dups) = kernel_seq_duplicates(&events);
    o.check(
        what("kernel events have unique seq numbers"),
        dups.is_empty(),
        format!("{kernel} kernel events, duplicated seq: {dups:?}"),
    );
    let backwards = seq_backwards(text);
    o.check(
        what("events are written in seq order"),
        backwards.is_none(),
        backwards.map_or("ok".into(), |(a, b)| format!("seq {b} written after {a}")),
    );
    events
}

/// Kinds the agent derives from a kernel event; they carry their cause's seq.
pub const DERIVED_KINDS: &[&str] = &["holder_state", "notification"];
/// The agent's records (`notify agent`): no kernel header, no seq.
pub const RECORD_KINDS: &[&str] = &[
    "journaled",
    "unidentified",
    "replayed",
    "enforcement",
    "mount_not_visible",
    "journal_recovered",
];

/// Number of kernel (non-derived) events, and the seq numbers more than one of them has.
pub fn kernel_seq_duplicates(events: &[Event]) -> (usize, Vec<u64>) {
    let mut seqs: Vec<u64> = events
        .iter()
        .filter(|e| !DERIVED_KINDS.contains(&e.kind()) && !RECORD_KINDS.contains(&e.kind()))
        .map(Event::seq)
        .collect();
    let n = seqs.len();
    seqs.sort_unstable();
    let mut dups: Vec<u64> = seqs
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    dups.dedup();
    if seqs.contains(&u64::MAX) {
        dups.push(u64::MAX);
    }
    (n, dups)
}

/// The first place where the file's seq goes down: (previous, next).
pub fn seq_backwards(text: &str) -> Option<(u64, u64)> {
    let mut last = 0u64;
    for l in text.lines() {
        let Ok(Value::Object(m)) = serde_json::from_str::<Value>(l) else {
            continue;
        };
        // Agent records carry no seq; an event without one is caught by kernel_seq_duplicates.
        let Some(s) = m.get("seq").and_then(Value::as_u64) else {
            continue;
        };
        if s < last {
            return Some((last, s));
        }
        last = s;
    }
    None
}

/// The agent's own conclusion about the notification for `off`, when it
/// emits `notification` events (an addition to the kernel events).
fn verdict(o: &mut Outcome, ev: &[Event], off: i128, want: &'static str) {
    if !ev.iter().any(|e| e.kind() == "notification") {
        o.skipped
            .push("no notification events: the agent's verdict was not checked".into());
        return;
    }
    o.seq(
        &format!("agent's verdict on the notification is {want:?}"),
        ev,
        &[Step::new("notification")
            .num("offset", off)
            .str("verdict", want)],
    );
}

fn num(r: &BTreeMap<String, String>, k: &str) -> Option<i128> {
    r.get(k).and_then(|v| parse_num(v))
}

fn pfn_offset(pfn: i128) -> i128 {
    (pfn - i128::from(PMEM_BASE_PFN)) * i128::from(PAGE)
}

fn no_holder(o: &mut Outcome, r: &BTreeMap<String, String>, dmesg: &str, events: Option<&[Event]>) {
    o.check(
        "corrupt-pfn write failed (no holder: EBUSY)",
        r.get("inject_rc").is_some_and(|v| v != "0"),
        format!(
            "inject_rc={} err={}",
            r.get("inject_rc").map_or("?", |s| s),
            r.get("inject_err").map_or("?", |s| s)
        ),
    );
    o.dmesg(dmesg, "recovery action for dax page: Failed");
    let (Some(ev), Some(pfn)) = (events, num(r, "pfn")) else {
        return;
    };
    let off = pfn_offset(pfn);
    o.seq(
        "memory_failure -> notify_enter(no_holder) -> notify_exit(-EOPNOTSUPP)",
        ev,
        &[
            Step::new("memory_failure_enter").num("pfn", pfn),
            Step::new("notify_enter")
                .num("offset", off)
                .num("len", PAGE)
                .str("readiness", "no_holder"),
            Step::new("notify_exit")
                .num("offset", off)
                .num("ret", EOPNOTSUPP),
        ],
    );
    verdict(o, ev, off, "no_holder");
    let xfs = ev.iter().filter(|e| e.kind() == "xfs_notify_exit").count();
    o.check(
        "XFS was not called",
        xfs == 0,
        format!("{xfs} xfs_notify_exit events"),
    );
}

fn victim_killed(o: &mut Outcome, r: &BTreeMap<String, String>, dmesg: &str) {
    o.eq("victim died of SIGBUS (exit 135)", r, "victim_exit", "135");
    o.eq(
        "victim's SIGBUS is BUS_MCEERR_AR (si_code 4)",
        r,
        "victim_sicode",
        BUS_MCEERR_AR,
    );
    o.dmesg(dmesg, "Sending SIGBUS to victim");
}

/// The kernel path of a poisoned page that XFS handled: returns the indices.
fn born_path(
    o: &mut Outcome,
    what: &str,
    r: &BTreeMap<String, String>,
    ev: &[Event],
    first: Vec<Step>,
) -> Option<Vec<usize>> {
    let (Some(pfn), Some(off)) = (num(r, "pfn"), num(r, "physoff")) else {
        o.check(
            "victim reported its pfn and physoff",
            false,
            format!("{r:?}"),
        );
        return None;
    };
    o.check(
        "pfn matches the file's physical offset",
        pfn_offset(pfn) == off,
        format!(
            "pfn {pfn:#x} -> offset {:#x}, FIEMAP {off:#x}",
            pfn_offset(pfn)
        ),
    );
    let mut steps = first;
    steps.extend([
        Step::new("memory_failure_enter").num("pfn", pfn),
        Step::new("notify_enter")
            .num("offset", off)
            .num("len", PAGE)
            .str("readiness", "born"),
        Step::new("xfs_notify_exit")
            .num("offset", off)
            .num("len", PAGE)
            .num("ret", 0),
        Step::new("notify_exit")
            .num("offset", off)
            .num("len", PAGE)
            .num("ret", 0),
    ]);
    o.seq(what, ev, &steps)
}

fn mounted(o: &mut Outcome, r: &BTreeMap<String, String>, dmesg: &str, events: Option<&[Event]>) {
    o.eq("mkfs.xfs succeeded", r, "mkfs_rc", "0");
    o.eq("mount -o dax=always succeeded", r, "mount_rc", "0");
    victim_killed(o, r, dmesg);
    o.eq(
        "bystander (another file) survived",
        r,
        "bystander_exit",
        "0",
    );
    o.dmesg(dmesg, "recovery action for dax page: Recovered");
    if let Some(ev) = events {
        born_path(
            o,
            "memory_failure -> notify_enter(born) -> xfs_notify_exit(0) -> notify_exit(0)",
            r,
            ev,
            Vec::new(),
        );
    }
}

fn remount(o: &mut Outcome, r: &BTreeMap<String, String>, dmesg: &str, events: Option<&[Event]>) {
    o.eq("umount succeeded", r, "umount_rc", "0");
    o.eq("mount again succeeded", r, "mount_rc", "0");
    victim_killed(o, r, dmesg);
    let Some(ev) = events else { return };
    let Some(idx) = born_path(
        o,
        "holder_put -> holder_get -> get_tree_exit(0) -> memory_failure -> notify(born) -> XFS(0)",
        r,
        ev,
        vec![
            Step::new("holder_put"),
            Step::new("holder_get").nonzero("holder"),
            Step::new("get_tree_exit").num("ret", 0),
        ],
    ) else {
        return;
    };
    let (get, notify) = (&ev[idx[1]], &ev[idx[4]]);
    o.check(
        "the notification went to the fresh holder",
        get.num("holder").is_some() && get.num("holder") == notify.num("holder"),
        format!(
            "holder_get holder={} notify_enter holder={}",
            field_str(get, "holder"),
            field_str(notify, "holder")
        ),
    );
}

fn premature(o: &mut Outcome, r: &BTreeMap<String, String>, dmesg: &str, events: Option<&[Event]>) {
    o.eq("mkfs.xfs with an external log succeeded", r, "mkfs_rc", "0");
    o.eq("the slow mount succeeded", r, "mount_rc", "0");
    o.check(
        "the mount was still in progress at injection",
        !r.contains_key("mounted_before_inject"),
        format!("mount took {} s", r.get("mount_secs").map_or("?", |s| s)),
    );
    o.check(
        "corrupt-pfn write failed (XFS not ready: EIO)",
        r.get("inject_rc").is_some_and(|v| v != "0"),
        format!(
            "inject_rc={} err={}",
            r.get("inject_rc").map_or("?", |s| s),
            r.get("inject_err").map_or("?", |s| s)
        ),
    );
    o.dmesg(dmesg, "filesystem is not ready for notify_failure()!");
    o.dmesg(dmesg, "recovery action for dax page: Failed");
    let Some(ev) = events else { return };
    let (Some(pfn), Some(off)) = (num(r, "pfn"), num(r, "physoff")) else {
        o.check(
            "script reported the data page's pfn",
            false,
            format!("{r:?}"),
        );
        return;
    };
    o.seq(
        "mountfs_enter -> memory_failure -> notify_enter(not_born) -> xfs(-EIO) -> notify_exit(-EIO) -> get_tree_exit(0)",
        ev,
        &[
            Step::new("holder_get").nonzero("dax_dev"),
            Step::new("mountfs_enter"),
            Step::new("memory_failure_enter").num("pfn", pfn),
            Step::new("notify_enter").num("offset", off).num("len", PAGE).str("readiness", "not_born"),
            Step::new("xfs_notify_exit").num("offset", off).num("ret", EIO),
            Step::new("notify_exit").num("offset", off).num("ret", EIO),
            Step::new("get_tree_exit").num("ret", 0),
        ],
    );
    verdict(o, ev, off, "premature");
}

// ---------------------------------------------------------------------------------------------
// replay: the enforcing agent end to end (lab/scenarios.sh `sc_replay`)
// ---------------------------------------------------------------------------------------------

/// The agent's records of `kind` in an agent output file.
fn records_of<'e>(evs: &'e [Event], kind: &str) -> Vec<&'e Event> {
    evs.iter().filter(|e| e.kind() == kind).collect()
}

fn array<'e>(e: &'e Event, k: &str) -> &'e [Value] {
    e.0.get(k)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// A `replayed` record's owners, one compact line each, for failure details.
fn owners_brief(e: &Event) -> String {
    let owners: Vec<String> = array(e, "owners").iter().map(Value::to_string).collect();
    let decisions: Vec<String> = array(e, "decisions").iter().map(Value::to_string).collect();
    format!(
        "{}\n    owners: {}\n    decisions: {}",
        e.brief(),
        if owners.is_empty() {
            "none".into()
        } else {
            owners.join("\n            ")
        },
        if decisions.is_empty() {
            "none".into()
        } else {
            decisions.join("\n               ")
        }
    )
}

/// One file owner of a `replayed` record.
struct FileOwner {
    ino: i128,
    /// Damaged file ranges: (offset, len).
    ranges: Vec<(i128, i128)>,
    shared: bool,
}

/// File owners of a `replayed` record.
fn file_owners(e: &Event) -> Vec<FileOwner> {
    array(e, "owners")
        .iter()
        .filter(|w| w.get("metadata") == Some(&Value::Bool(false)))
        .map(|w| FileOwner {
            ino: w.get("ino").and_then(as_num).unwrap_or(-1),
            ranges: w
                .get("ranges")
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice)
                .iter()
                .filter_map(|r| Some((as_num(r.get(0)?)?, as_num(r.get(1)?)?)))
                .collect(),
            shared: w.get("shared") == Some(&Value::Bool(true)),
        })
        .collect()
}

/// The replayed record names exactly the files `inos`, each with the damaged file range
/// `[page * 4096, +4096)`.
fn check_file_owners(o: &mut Outcome, what: &str, e: &Event, inos: &[i128], page: i128) {
    let got = file_owners(e);
    let mut got_inos: Vec<i128> = got.iter().map(|g| g.ino).collect();
    got_inos.sort_unstable();
    let mut want: Vec<i128> = inos.to_vec();
    want.sort_unstable();
    let ranges_ok = got
        .iter()
        .all(|g| g.ranges == [(page * i128::from(PAGE), i128::from(PAGE))]);
    o.check(
        what,
        got_inos == want && ranges_ok && e.0.get("error") == Some(&Value::Null),
        format!(
            "want file owners ino {want:?} each with range [{:#x}, +4096), error null; got {}",
            page * i128::from(PAGE),
            owners_brief(e)
        ),
    );
}

/// The `replayed` record with `dax_offset` `off`, or a failed check showing the records there are.
fn replayed_at<'e>(
    o: &mut Outcome,
    run: &str,
    evs: &'e [Event],
    off: i128,
    what: &str,
) -> Option<&'e Event> {
    let hit = evs
        .iter()
        .find(|e| e.kind() == "replayed" && e.num("dax_offset") == Some(off));
    if hit.is_none() {
        let seen: Vec<String> = records_of(evs, "replayed")
            .iter()
            .map(|e| e.brief())
            .collect();
        o.check(
            format!("{run}: {what}: replayed record at dax_offset {off:#x}"),
            false,
            format!(
                "no replayed record with dax_offset {off:#x}; replayed records: {}\n  records and events at the end:{}",
                if seen.is_empty() {
                    "none".into()
                } else {
                    seen.join("\n    ")
                },
                context(evs, evs.len().saturating_sub(10), 10)
            ),
        );
    }
    hit
}

/// One agent run after the first: present, exited as expected, output well formed; its events
/// in file order.
fn later_run(
    o: &mut Outcome,
    r: &BTreeMap<String, String>,
    ev: &Evidence,
    name: &str,
    file: &'static str,
) -> Option<Vec<Event>> {
    if !o.eq(&format!("{name} started"), r, name, "running") {
        return None;
    }
    o.eq(
        &format!("{name} exited 0 on SIGINT"),
        r,
        &format!("{name}_exit"),
        "0",
    );
    let Some(text) = ev.extra.get(file) else {
        o.check(format!("{file} came back"), false, format!("no {file}"));
        return None;
    };
    well_formed(o, file, text);
    Some(parse_in_order(text))
}

/// `notify journal list -o json`: id -> (state, dax_offset).
fn journal_states(text: &str) -> BTreeMap<i128, (String, i128)> {
    parse_in_order(text)
        .iter()
        .filter_map(|e| {
            let off =
                e.0.get("notification")?
                    .get("dax_offset")
                    .and_then(as_num)?;
            Some((e.num("id")?, (e.str("state")?.to_string(), off)))
        })
        .collect()
}

fn check_journal(
    o: &mut Outcome,
    r: &BTreeMap<String, String>,
    ev: &Evidence,
    name: &str,
    want: &[(i128, &str)],
) {
    o.eq(
        &format!("`notify journal list` ({name}) exited 0"),
        r,
        &format!("{name}_rc"),
        "0",
    );
    let file = if name == "journal_killed" {
        "journal_killed.jsonl"
    } else {
        "journal_end.jsonl"
    };
    let text = ev.extra.get(file).copied().unwrap_or("");
    let table = ev
        .extra
        .get(if name == "journal_killed" {
            "journal_killed.txt"
        } else {
            "journal_end.txt"
        })
        .copied()
        .unwrap_or("(no table)");
    let got = journal_states(text);
    let want_map: BTreeMap<i128, String> = want.iter().map(|(i, s)| (*i, s.to_string())).collect();
    let got_states: BTreeMap<i128, String> =
        got.iter().map(|(i, (s, _))| (*i, s.clone())).collect();
    let desc: Vec<String> = want.iter().map(|(i, s)| format!("{i} {s}")).collect();
    o.check(
        format!("journal list ({name}): {}", desc.join(", ")),
        got_states == want_map,
        format!(
            "want {want_map:?}, got {got_states:?}; table:\n    {}",
            table.trim_end().replace('\n', "\n    ")
        ),
    );
}

fn replay(o: &mut Outcome, r: &BTreeMap<String, String>, ev: &Evidence, agent: bool) {
    for (what, key) in [
        ("mkfs.xfs with an external log succeeded", "mkfs_rc"),
        ("first mount succeeded", "mount_rc"),
        ("xfs_io reflink succeeded", "reflink_rc"),
        ("umount before poisoning succeeded", "umount_rc"),
        (
            "the slow mount (log behind dm-delay) succeeded",
            "slow_mount_rc",
        ),
        ("the fast mount after kill -9 succeeded", "mount2_rc"),
        (
            "the mount after the reflink and AG header hits succeeded",
            "mount3_rc",
        ),
    ] {
        o.eq(what, r, key, "0");
    }
    for f in ["a", "b", "c", "d", "r1", "r2"] {
        let (pfn, off) = (num(r, &format!("{f}_pfn")), num(r, &format!("{f}_physoff")));
        o.check(
            format!("/mnt/{f}: FIEMAP offset and pfn agree"),
            matches!((pfn, off), (Some(p), Some(x)) if pfn_offset(p) == x && x > 0),
            format!("{f}_pfn={pfn:x?} {f}_physoff={off:x?}"),
        );
    }
    o.check(
        "r2 shares r1's block (reflink)",
        num(r, "r1_physoff").is_some() && num(r, "r1_physoff") == num(r, "r2_physoff"),
        format!(
            "r1_physoff={} r2_physoff={}",
            r.get("r1_physoff").map_or("?", |s| s),
            r.get("r2_physoff").map_or("?", |s| s)
        ),
    );
    for (key, what, errno) in [
        (
            "inject_a",
            "1. /mnt/a poisoned unmounted: EBUSY (no holder)",
            "busy",
        ),
        (
            "inject_b",
            "2. /mnt/b poisoned while mounting: EIO (not ready)",
            "input/output",
        ),
        ("inject_c", "4. /mnt/c poisoned unmounted: EBUSY", "busy"),
        (
            "inject_r",
            "5. reflinked /mnt/r1 poisoned unmounted: EBUSY",
            "busy",
        ),
        (
            "inject_meta",
            "6. AG 0 header poisoned unmounted: EBUSY",
            "busy",
        ),
    ] {
        let err = r.get(&format!("{key}_err")).map_or("?", |s| s);
        o.check(
            what,
            r.get(&format!("{key}_rc")).is_some_and(|v| v != "0")
                && err.to_lowercase().contains(errno),
            format!(
                "{key}_rc={} err={err}",
                r.get(&format!("{key}_rc")).map_or("?", |s| s)
            ),
        );
    }
    o.check(
        "2. the slow mount was still in progress at injection",
        !r.contains_key("mounted_before_inject"),
        format!("{r:?}"),
    );
    o.dmesg(ev.dmesg, "filesystem is not ready for notify_failure()!");
    o.dmesg(ev.dmesg, "recovery action for dax page: Failed");
    if !agent {
        return;
    }
    let (Some(a), Some(b), Some(c), Some(rf)) = (
        num(r, "a_physoff"),
        num(r, "b_physoff"),
        num(r, "c_physoff"),
        num(r, "r1_physoff"),
    ) else {
        o.check(
            "script reported every file's offset",
            false,
            format!("{r:?}"),
        );
        return;
    };
    let meta = num(r, "meta_pfn").map_or(-1, pfn_offset);
    let ino = |f: &str| num(r, &format!("{f}_ino")).unwrap_or(-1);
    let page = |f: &str| num(r, &format!("{f}_page")).unwrap_or(-1);

    // Run 1: journaled, replayed at the ready edge, then the /mnt/c hit journaled before kill -9.
    let run1 = parse_in_order(ev.events.unwrap_or(""));
    let Some(i1) = o.seq(
        "1. nothing mounted: memory_failure(a) -> notify(no_holder) -> -EOPNOTSUPP -> journaled no_holder pmem0 via the pfn",
        &run1,
        &[
            Step::new("memory_failure_enter").num("pfn", num(r, "a_pfn").unwrap_or(-1)),
            Step::new("notify_enter")
                .num("offset", a)
                .num("len", PAGE)
                .str("readiness", "no_holder"),
            Step::new("notify_exit").num("offset", a).num("ret", EOPNOTSUPP),
            Step::new("journaled")
                .num("dax_offset", a)
                .num("len", PAGE)
                .str("reason", "no_holder")
                .str("disk", "pmem0")
                .str("identified_by", "pfn of memory_failure"),
        ],
    ) else {
        return;
    };
    let Some(i2) = o.seq(
        "2. mounting: memory_failure(b) -> notify(not_born) -> XFS -EIO -> journaled premature pmem0 -> get_tree_exit(0)",
        &run1,
        &[
            Step::new("holder_get").nonzero("dax_dev"),
            Step::new("memory_failure_enter").num("pfn", num(r, "b_pfn").unwrap_or(-1)),
            Step::new("notify_enter")
                .num("offset", b)
                .num("len", PAGE)
                .str("readiness", "not_born"),
            Step::new("xfs_notify_exit").num("offset", b).num("ret", EIO),
            Step::new("journaled")
                .num("dax_offset", b)
                .num("len", PAGE)
                .str("reason", "premature")
                .str("disk", "pmem0"),
            Step::new("get_tree_exit").num("ret", 0),
        ],
    ) else {
        return;
    };
    let (id_a, id_b) = (run1[i1[3]].num("id"), run1[i2[4]].num("id"));
    // Both replayed after the ready edge, in journal order.
    let ready = i2[5];
    let after: Vec<Event> = run1[ready..].to_vec();
    if let Some(ix) = o.seq(
        "3. after get_tree_exit(0): replayed(a) then replayed(b) on /mnt",
        &after,
        &[
            Step::new("replayed")
                .num("dax_offset", a)
                .str("mount_point", "/mnt")
                .str("disk", "pmem0"),
            Step::new("replayed")
                .num("dax_offset", b)
                .str("mount_point", "/mnt")
                .str("disk", "pmem0"),
        ],
    ) {
        let (ra, rb) = (&after[ix[0]], &after[ix[1]]);
        o.check(
            "3. the replayed records are the journaled ones (same ids)",
            id_a.is_some() && ra.num("id") == id_a && rb.num("id") == id_b && id_a != id_b,
            format!(
                "journaled {id_a:?} {id_b:?}; replayed {} / {}",
                ra.brief(),
                rb.brief()
            ),
        );
        check_file_owners(
            o,
            "3. replay of a names /mnt/a and its damaged file range",
            ra,
            &[ino("a")],
            page("a"),
        );
        check_file_owners(
            o,
            "3. replay of b names /mnt/b and its damaged file range",
            rb,
            &[ino("b")],
            page("b"),
        );
        o.check(
            "3. at the ready edge nothing maps the new mount yet: owners, but no process decisions",
            array(ra, "decisions").is_empty() && array(rb, "decisions").is_empty(),
            format!("{}\n{}", owners_brief(ra), owners_brief(rb)),
        );
    }
    let enf1 = records_of(&run1, "enforcement");
    o.check(
        "run 1 signalled nobody",
        enf1.is_empty(),
        enf1.iter()
            .map(|e| e.brief())
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let Some(i4) = o.seq(
        "4. unmounted again: memory_failure(c) -> notify(no_holder) -> journaled no_holder (before kill -9)",
        &after,
        &[
            Step::new("replayed").num("dax_offset", b),
            Step::new("memory_failure_enter").num("pfn", num(r, "c_pfn").unwrap_or(-1)),
            Step::new("notify_enter").num("offset", c).str("readiness", "no_holder"),
            Step::new("journaled")
                .num("dax_offset", c)
                .num("len", PAGE)
                .str("reason", "no_holder")
                .str("disk", "pmem0"),
        ],
    ) else {
        return;
    };
    let id_c = after[i4[3]].num("id");
    if let (Some(ia), Some(ib), Some(ic)) = (id_a, id_b, id_c) {
        check_journal(
            o,
            r,
            ev,
            "journal_killed",
            &[(ia, "replayed"), (ib, "replayed"), (ic, "pending")],
        );
    }

    // Run 2: the restart replays /mnt/c at once and SIGBUSes the victim only.
    let Some(run2) = later_run(o, r, ev, "agent_restart", "events_restart.jsonl") else {
        return;
    };
    let victim = num(r, "victim_pid");
    let bystander = num(r, "bystander_pid");
    if let Some(rc) = replayed_at(o, "events_restart.jsonl", &run2, c, "4. restart") {
        let pos = run2.iter().position(|e| std::ptr::eq(e, rc)).unwrap_or(0);
        let first_kernel = run2.iter().position(|e| e.0.contains_key("seq"));
        o.check(
            "4. the restarted agent replayed the pending record at start (before any kernel event)",
            rc.num("id") == id_c && first_kernel.is_none_or(|k| pos < k),
            format!("journaled id {id_c:?}; {}", rc.brief()),
        );
        check_file_owners(
            o,
            "4. replay of c names /mnt/c and its damaged file range",
            rc,
            &[ino("c")],
            page("c"),
        );
        let d = array(rc, "decisions");
        o.check(
            "4. replay decided on exactly the victim: signalled",
            d.len() == 1
                && d[0].get("pid").and_then(as_num) == victim
                && d[0].get("action").and_then(Value::as_str) == Some("signalled"),
            format!("victim pid {victim:?}; {}", owners_brief(rc)),
        );
    }
    let enf2 = records_of(&run2, "enforcement");
    let enf2_brief = enf2
        .iter()
        .map(|e| e.brief())
        .collect::<Vec<_>>()
        .join("\n");
    o.check(
        "4. one enforcement record: the victim's pid, signalled SIGBUS under policy sigbus",
        enf2.len() == 1
            && enf2[0].num("pid") == victim
            && enf2[0].num("id") == id_c
            && enf2[0].str("action") == Some("signalled")
            && enf2[0].str("signal") == Some("SIGBUS")
            && enf2[0].str("policy") == Some("sigbus"),
        format!("victim pid {victim:?}, record id {id_c:?}; enforcement records:\n{enf2_brief}"),
    );
    o.check(
        "4. no enforcement record names the bystander",
        bystander.is_some() && !enf2.iter().any(|e| e.num("pid") == bystander),
        format!("bystander pid {bystander:?}; {enf2_brief}"),
    );
    o.eq(
        "4. the victim died of SIGBUS (wait status 135)",
        r,
        "victim_exit",
        "135",
    );
    o.eq(
        "4. the bystander was still alive after the replay",
        r,
        "bystander_alive_after_replay",
        "yes",
    );
    o.eq(
        "4. the bystander (another file) ended by our SIGTERM (143), not SIGBUS",
        r,
        "bystander_exit",
        "143",
    );

    // 5 and 6, journaled by the restarted agent and replayed at the next ready edge.
    if let Some(ix) = o.seq(
        "5+6. unmounted: reflinked r1 and AG 0 header journaled no_holder -> get_tree_exit(0) -> both replayed",
        &run2,
        &[
            Step::new("journaled")
                .num("dax_offset", rf)
                .str("reason", "no_holder")
                .str("disk", "pmem0"),
            Step::new("journaled")
                .num("dax_offset", meta)
                .str("reason", "no_holder")
                .str("disk", "pmem0"),
            Step::new("get_tree_exit").num("ret", 0),
            Step::new("replayed").num("dax_offset", rf).str("mount_point", "/mnt"),
            Step::new("replayed").num("dax_offset", meta).str("mount_point", "/mnt"),
        ],
    ) {
        let (jr, jm, rr, rm) = (&run2[ix[0]], &run2[ix[1]], &run2[ix[3]], &run2[ix[4]]);
        o.check(
            "5+6. replayed ids are the journaled ones",
            jr.num("id").is_some() && rr.num("id") == jr.num("id") && rm.num("id") == jm.num("id"),
            format!("{} / {} -> {} / {}", jr.brief(), jm.brief(), rr.brief(), rm.brief()),
        );
        check_file_owners(
            o,
            "5. replay of the reflinked block names both files (r1, r2) with the same range",
            rr,
            &[ino("r1"), ino("r2")],
            page("r1"),
        );
        o.check(
            "5. both owners are marked shared",
            file_owners(rr).iter().all(|f| f.shared) && file_owners(rr).len() == 2,
            owners_brief(rr),
        );
        let owners = array(rm, "owners");
        o.check(
            "6. replay of the AG 0 header reports metadata owners only, no error",
            !owners.is_empty()
                && owners
                    .iter()
                    .all(|w| w.get("metadata") == Some(&Value::Bool(true)))
                && rm.0.get("error") == Some(&Value::Null),
            owners_brief(rm),
        );
        o.check(
            "5+6. nobody maps them: no decisions, no enforcement record",
            array(rr, "decisions").is_empty()
                && array(rm, "decisions").is_empty()
                && !enf2
                    .iter()
                    .any(|e| e.num("id") == rr.num("id") || e.num("id") == rm.num("id")),
            format!("{}\n{}", owners_brief(rr), owners_brief(rm)),
        );
        if let (Some(ia), Some(ib), Some(ic), Some(ir), Some(im)) =
            (id_a, id_b, id_c, rr.num("id"), rm.num("id"))
        {
            // Run 3 below must not change anything: checked on the listing after it.
            check_journal(
                o,
                r,
                ev,
                "journal_end",
                &[
                    (ia, "replayed"),
                    (ib, "replayed"),
                    (ic, "replayed"),
                    (ir, "replayed"),
                    (im, "replayed"),
                ],
            );
        }
    }

    // Run 3: nothing pending, nothing replayed, nobody signalled.
    if let Some(run3) = later_run(o, r, ev, "agent_again", "events_again.jsonl") {
        let acted: Vec<String> = run3
            .iter()
            .filter(|e| matches!(e.kind(), "replayed" | "enforcement" | "journaled"))
            .map(Event::brief)
            .collect();
        o.check(
            "a second restart replays nothing (no double kill)",
            acted.is_empty(),
            acted.join("\n"),
        );
        o.eq(
            "a process mapping the replayed page survives the second restart",
            r,
            "sentinel_alive_after_restart",
            "yes",
        );
        o.eq(
            "the sentinel ended by our SIGTERM (143), not SIGBUS",
            r,
            "sentinel_exit",
            "143",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evs(lines: &[&str]) -> Vec<Event> {
        parse_events(&lines.join("\n")).0
    }

    /// Every recorded run under tests/fixtures must pass its own assertions
    /// (event checks required where the agent ran).
    #[test]
    fn recorded_fixtures_pass() {
        let root = crate::lab::fixtures_dir();
        let mut runs = 0;
        for run in std::fs::read_dir(&root).unwrap() {
            let run = run.unwrap().path();
            if !run.is_dir() {
                continue;
            }
            runs += 1;
            for sc in crate::lab::SCENARIOS {
                let read = |f: &str| std::fs::read_to_string(run.join(sc).join(f)).ok();
                let (result, dmesg, events) =
                    (read("result.txt"), read("dmesg.txt"), read("events.jsonl"));
                let result =
                    result.unwrap_or_else(|| panic!("{}/{sc}: no result.txt", run.display()));
                let agent = result.contains("agent=running");
                let extra: Vec<(&'static str, String)> = EXTRA_FILES
                    .iter()
                    .filter_map(|f| read(f).map(|b| (*f, b)))
                    .collect();
                let ev = Evidence {
                    result: &result,
                    dmesg: dmesg.as_deref().unwrap_or(""),
                    events: events.as_deref(),
                    extra: extra.iter().map(|(f, b)| (*f, b.as_str())).collect(),
                };
                let o = check_scenario(sc, &ev, agent);
                assert!(
                    o.passed(),
                    "{}/{sc}: {:#?}",
                    run.display(),
                    o.checks.iter().filter(|c| !c.ok).collect::<Vec<_>>()
                );
            }
        }
        assert!(runs > 0, "no fixtures in {}", root.display());
    }

    fn fixture(run: &str, sc: &str, f: &str) -> String {
        let p = crate::lab::fixtures_dir().join(run).join(sc).join(f);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    /// A recorded premature run, broken in the ways a regression would break
    /// it: each must fail with a message naming the step.
    #[test]
    fn broken_premature_fixture_fails_clearly() {
        let (result, dmesg, events) = (
            fixture("6.1-kprobe", "premature", "result.txt"),
            fixture("6.1-kprobe", "premature", "dmesg.txt"),
            fixture("6.1-kprobe", "premature", "events.jsonl"),
        );
        let session = ["session.json", "report.txt", "report.svg"]
            .map(|f| (f, fixture("6.1-kprobe", "premature", f)));
        let run_with = |events: &str, dmesg: &str, report: Option<&str>| {
            let mut extra: BTreeMap<&'static str, &str> =
                session.iter().map(|(f, b)| (*f, b.as_str())).collect();
            if let Some(r) = report {
                extra.insert("report.txt", r);
            }
            let ev = Evidence {
                result: &result,
                dmesg,
                events: Some(events),
                extra,
            };
            check_scenario("premature", &ev, true)
        };
        let run = |events: &str, dmesg: &str| run_with(events, dmesg, None);
        assert!(run(&events, &dmesg).passed());
        let failed = |o: &Outcome| -> String {
            o.checks
                .iter()
                .filter(|c| !c.ok)
                .map(|c| format!("{}: {}", c.what, c.detail))
                .collect::<Vec<_>>()
                .join("\n")
        };

        // XFS accepted it: ret 0 instead of -EIO.
        let ok_ret = events
            .lines()
            .map(|l| {
                if l.contains(r#""kind":"notify_exit""#) {
                    l.replace(r#""ret":-5"#, r#""ret":0"#)
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let msg = failed(&run(&ok_ret, &dmesg));
        assert!(msg.contains("step 6 of 7 missing: notify_exit"), "{msg}");
        assert!(msg.contains("ret=0 (want -5)"), "{msg}");

        // The agent thought the filesystem was born.
        let born = events.replace(r#""readiness":"not_born""#, r#""readiness":"born""#);
        let msg = failed(&run(&born, &dmesg));
        assert!(msg.contains("missing: notify_enter"), "{msg}");
        assert!(
            msg.contains(r#"readiness="born" (want "not_born")"#),
            "{msg}"
        );

        // The notification arrived after the mount had completed.
        let no_tree: String = events
            .lines()
            .filter(|l| !l.contains(r#""kind":"get_tree_exit""#))
            .map(|l| format!("{l}\n"))
            .collect();
        let msg = failed(&run(&no_tree, &dmesg));
        assert!(msg.contains("step 7 of 7 missing: get_tree_exit"), "{msg}");
        assert!(msg.contains("no get_tree_exit event at all"), "{msg}");

        // The kernel did not drop it.
        let msg = failed(&run(&events, &dmesg.replace("not ready", "ready")));
        assert!(
            msg.contains("filesystem is not ready for notify_failure()!"),
            "{msg}"
        );

        // The session lost an event the agent printed.
        let rep = &session[1].1;
        let short: String = events
            .lines()
            .filter(|l| !l.contains(r#""kind":"mountfs_enter""#))
            .map(|l| format!("{l}\n"))
            .collect();
        let msg = failed(&run(&short, &dmesg));
        assert!(
            msg.contains("session.json holds the events of events.jsonl in the same order"),
            "{msg}"
        );

        // The report drew the notification with another verdict.
        let msg = failed(&run_with(
            &events,
            &dmesg,
            Some(&rep.replace("PREMATURE during", "DELIVERED during")),
        ));
        assert!(
            msg.contains("report.txt: one line per notification, with the agent's verdict"),
            "{msg}"
        );
    }

    /// A recorded replay run, broken the ways a regression in the agent would break it: each
    /// must fail, naming what went wrong.
    #[test]
    fn broken_replay_fixture_fails_clearly() {
        let run = "6.1-kprobe";
        let file = |f: &str| fixture(run, "replay", f);
        let (result, dmesg, events) = (file("result.txt"), file("dmesg.txt"), file("events.jsonl"));
        let extra: BTreeMap<&'static str, String> = [
            "events_restart.jsonl",
            "events_again.jsonl",
            "journal_killed.jsonl",
            "journal_end.jsonl",
            "journal_killed.txt",
            "journal_end.txt",
            "session_restart.json",
            "report_restart.txt",
            "report_restart.svg",
            "session_again.json",
            "report_again.txt",
            "report_again.svg",
        ]
        .into_iter()
        .map(|f| (f, file(f)))
        .collect();
        let check = |events: &str, extra: &BTreeMap<&'static str, String>| -> String {
            let ev = Evidence {
                result: &result,
                dmesg: &dmesg,
                events: Some(events),
                extra: extra.iter().map(|(k, v)| (*k, v.as_str())).collect(),
            };
            check_scenario("replay", &ev, true)
                .checks
                .iter()
                .filter(|c| !c.ok)
                .map(|c| format!("{}: {}", c.what, c.detail))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(check(&events, &extra), "");
        let with = |name: &'static str, body: String| {
            let mut e = extra.clone();
            e.insert(name, body);
            e
        };

        // The premature notification was journaled as if nothing had been mounting.
        let msg = check(
            &events.replace(r#""reason":"premature""#, r#""reason":"no_holder""#),
            &extra,
        );
        assert!(msg.contains("2. mounting:"), "{msg}");
        assert!(msg.contains("missing: journaled"), "{msg}");
        assert!(
            msg.contains(r#"reason="no_holder" (want "premature")"#),
            "{msg}"
        );

        // The restarted agent signalled nobody.
        let restart = &extra["events_restart.jsonl"];
        let no_kill: String = restart
            .lines()
            .filter(|l| !l.contains(r#""kind":"enforcement""#))
            .map(|l| format!("{l}\n"))
            .collect();
        let msg = check(&events, &with("events_restart.jsonl", no_kill));
        assert!(
            msg.contains("4. one enforcement record: the victim's pid"),
            "{msg}"
        );

        // The bystander was signalled too.
        let r = parse_results(&result);
        let (victim, bystander) = (&r["victim_pid"], &r["bystander_pid"]);
        let also_bystander: String = restart
            .lines()
            .flat_map(|l| {
                let mut v = vec![format!("{l}\n")];
                if l.contains(r#""kind":"enforcement""#) {
                    v.push(format!(
                        "{}\n",
                        l.replace(
                            &format!(r#""pid":{victim}"#),
                            &format!(r#""pid":{bystander}"#)
                        )
                    ));
                }
                v
            })
            .collect();
        let msg = check(&events, &with("events_restart.jsonl", also_bystander));
        assert!(
            msg.contains("4. no enforcement record names the bystander"),
            "{msg}"
        );

        // The reflinked block's second owner was lost.
        let r2 = &r["r2_ino"];
        let one_owner = restart.replace(&format!(r#""ino":{r2}"#), r#""ino":99999"#);
        let msg = check(&events, &with("events_restart.jsonl", one_owner));
        assert!(
            msg.contains("5. replay of the reflinked block names both files"),
            "{msg}"
        );

        // The second restart replayed (and killed) again.
        let replayed = restart
            .lines()
            .find(|l| l.contains(r#""kind":"replayed""#))
            .unwrap()
            .to_string();
        let msg = check(&events, &with("events_again.jsonl", replayed + "\n"));
        assert!(msg.contains("a second restart replays nothing"), "{msg}");

        // The kill -9 lost the pending record.
        let lost: String = extra["journal_killed.jsonl"]
            .lines()
            .filter(|l| !l.contains(r#""state":"pending""#))
            .map(|l| format!("{l}\n"))
            .collect();
        let msg = check(&events, &with("journal_killed.jsonl", lost));
        assert!(msg.contains("journal list (journal_killed)"), "{msg}");
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_num("0x40019"), Some(0x40019));
        assert_eq!(parse_num("-95"), Some(-95));
        assert_eq!(parse_num("nope"), None);
    }

    #[test]
    fn sequence_in_order_and_reports_missing_step() {
        let ev = evs(&[
            r#"{"seq":2,"kind":"notify_exit","offset":4096,"ret":-95}"#,
            r#"{"seq":1,"kind":"notify_enter","offset":"0x1000","readiness":"no_holder"}"#,
            r#"{"seq":0,"kind":"memory_failure_enter","pfn":262145}"#,
        ]);
        let steps = [
            Step::new("memory_failure_enter").num("pfn", 0x40001),
            Step::new("notify_enter")
                .num("offset", 4096)
                .str("readiness", "no_holder"),
            Step::new("notify_exit").num("ret", -95),
        ];
        assert_eq!(expect_sequence(&ev, &steps), Ok(vec![0, 1, 2]));
        let bad = [Step::new("notify_exit").num("ret", -5)];
        let err = expect_sequence(&ev, &bad).unwrap_err();
        assert!(
            err.contains("step 1 of 1 missing: notify_exit ret=-5"),
            "{err}"
        );
        assert!(err.contains("ret=-95 (want -5)"), "{err}");
        // Order matters: notify_enter must come after memory_failure_enter.
        let rev = [Step::new("notify_exit"), Step::new("notify_enter")];
        assert!(
            expect_sequence(&ev, &rev)
                .unwrap_err()
                .contains("matches, but too early")
        );
    }

    #[test]
    fn missing_agent_skips_or_fails() {
        let ev = Evidence {
            result: "scenario=no_holder\nagent=missing\ninject_rc=1\npfn=0x7ff00\n",
            dmesg: "Memory failure: 0x7ff00: recovery action for dax page: Failed\n",
            events: None,
            ..Default::default()
        };
        let o = check_scenario("no_holder", &ev, false);
        assert!(o.passed(), "{o:?}");
        assert_eq!(o.skipped.len(), 1);
        assert!(!check_scenario("no_holder", &ev, true).passed());
    }
}
