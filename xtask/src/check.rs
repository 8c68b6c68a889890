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
        let mut s = format!("#{} {}", self.seq(), self.kind());
        for (k, v) in &self.0 {
            if matches!(k.as_str(), "seq" | "kind" | "ktime_ns" | "cpu" | "tid") {
                continue;
            }
            match (k.as_str(), v.as_u64()) {
                ("pfn" | "offset", Some(n)) => {
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
    fn check(&mut self, what: impl Into<String>, ok: bool, detail: impl Into<String>) -> bool {
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
}

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
    let events = agent_events(&mut o, &r, ev, require_agent);
    let events = events.as_deref();
    match scenario {
        "no_holder" => no_holder(&mut o, &r, ev.dmesg, events),
        "mounted" => mounted(&mut o, &r, ev.dmesg, events),
        "remount" => remount(&mut o, &r, ev.dmesg, events),
        "premature" => premature(&mut o, &r, ev.dmesg, events),
        other => {
            o.check(
                "known scenario",
                false,
                format!("no assertions for {other:?}"),
            );
        }
    }
    o
}

/// The agent's events if it ran; records the agent's own health checks.
fn agent_events(
    o: &mut Outcome,
    r: &BTreeMap<String, String>,
    ev: &Evidence,
    require_agent: bool,
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
    o.eq("agent exited 0 on SIGINT", r, "agent_exit", "0");
    let Some(text) = ev.events else {
        o.check("events.jsonl came back", false, "no events.jsonl");
        return None;
    };
    let (events, bad) = parse_events(text);
    o.check(
        "events.jsonl is JSON lines",
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
        "kernel events have unique seq numbers",
        dups.is_empty(),
        format!("{kernel} kernel events, duplicated seq: {dups:?}"),
    );
    let backwards = seq_backwards(text);
    o.check(
        "events are written in seq order",
        backwards.is_none(),
        backwards.map_or("ok".into(), |(a, b)| format!("seq {b} written after {a}")),
    );
    Some(events)
}

/// Kinds the agent derives from a kernel event; they carry their cause's seq.
pub const DERIVED_KINDS: &[&str] = &["holder_state", "notification"];

/// Number of kernel (non-derived) events, and the seq numbers more than one of them has.
pub fn kernel_seq_duplicates(events: &[Event]) -> (usize, Vec<u64>) {
    let mut seqs: Vec<u64> = events
        .iter()
        .filter(|e| !DERIVED_KINDS.contains(&e.kind()))
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
        let s = m.get("seq").and_then(Value::as_u64)?;
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
                let ev = Evidence {
                    result: &result,
                    dmesg: dmesg.as_deref().unwrap_or(""),
                    events: events.as_deref(),
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
        let run = |events: &str, dmesg: &str| {
            let ev = Evidence {
                result: &result,
                dmesg,
                events: Some(events),
            };
            check_scenario("premature", &ev, true)
        };
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
        };
        let o = check_scenario("no_holder", &ev, false);
        assert!(o.passed(), "{o:?}");
        assert_eq!(o.skipped.len(), 1);
        assert!(!check_scenario("no_holder", &ev, true).passed());
    }
}
