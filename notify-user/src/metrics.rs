//! The agent's Prometheus endpoint: `/metrics` (OpenMetrics text, `prometheus-client`) and
//! `/healthz`, served by a minimal HTTP/1.1 responder on tokio's TcpListener.
//!
//! Metrics are event-driven: counters move as events and agent records flow through
//! [`Metrics::on_event`] and [`Metrics::on_action`]. The one thing read at scrape time is the
//! kernel's per-CPU LOST counter map (a map lookup, no polling loop).
//!
//! The list of metrics is in docs/AGENT.md.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use aya::maps::{MapData, PerCpuArray};
use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use serde::Serialize;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use crate::{
    agent::Action,
    enforce::{self, Decision},
    event::{EventData, TraceEvent},
    probes::Outcome,
    trace::Totals,
};

type Labels = Vec<(&'static str, String)>;

/// Whether every required probe is attached, for `/healthz`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Health {
    pub status: &'static str,
    /// hook -> method, for attached hooks.
    pub attached: BTreeMap<&'static str, String>,
    pub missing_required: Vec<&'static str>,
    pub skipped_optional: Vec<&'static str>,
    pub kernel: String,
    pub version: &'static str,
}

impl Health {
    pub fn from_outcomes(outcomes: &[Outcome], kernel: &str) -> Health {
        let mut h = Health {
            kernel: kernel.to_string(),
            version: env!("CARGO_PKG_VERSION"),
            ..Health::default()
        };
        for o in outcomes {
            match (o.method, o.required) {
                (Some(m), _) => {
                    h.attached.insert(o.hook, m.to_string());
                }
                (None, true) => h.missing_required.push(o.hook),
                (None, false) => h.skipped_optional.push(o.hook),
            }
        }
        h.status = if h.missing_required.is_empty() {
            "ok"
        } else {
            "degraded"
        };
        h
    }

    pub fn ok(&self) -> bool {
        self.missing_required.is_empty()
    }
}

pub struct Metrics {
    registry: Registry,
    events: Family<Labels, Counter>,
    notifications: Family<Labels, Counter>,
    premature: Family<Labels, Counter>,
    journaled: Family<Labels, Counter>,
    unidentified: Counter,
    replayed: Family<Labels, Counter>,
    owners: Family<Labels, Counter>,
    decisions: Family<Labels, Counter>,
    mount_not_visible: Counter,
    journal_recovered: Counter,
    lost_kernel: Counter,
    seq_gaps: Counter,
    undecodable: Counter,
    journal_pending: Gauge,
    probes: Family<Labels, Gauge>,
    probes_missing: Gauge,
    reloads: Family<Labels, Counter>,
    // Last totals seen, to turn the pipeline's running totals into counter increments.
    last_gaps: AtomicU64,
    last_undecodable: AtomicU64,
    last_lost: AtomicU64,
    kernel: Family<Labels, Gauge>,
    lost_map: Mutex<Option<PerCpuArray<MapData, u64>>>,
    health: Mutex<Health>,
}

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

/// A small, fixed set of reason classes for decisions, for metric labels (the reason text
/// itself has pids and paths in it).
pub fn reason_class(d: &Decision) -> &'static str {
    let r = d.reason.as_str();
    match d.action {
        enforce::Action::Refused => {
            if r.starts_with("pid 1 ") {
                "pid1"
            } else if r.contains("agent itself") {
                "self"
            } else if r.starts_with("pid ") && r.ends_with("is allowlisted") {
                "allow_pid"
            } else if r.starts_with("comm ") {
                "allow_comm"
            } else if r.starts_with("cgroup ") {
                "allow_cgroup"
            } else if r.starts_with("pid reused") {
                "pid_reused"
            } else if r.starts_with("kernel thread") {
                "kernel_thread"
            } else if r.starts_with("invalid pid") {
                "invalid_pid"
            } else {
                "other"
            }
        }
        enforce::Action::Signalled => match d.exited {
            Some(true) => "exited",
            Some(false) => "survived",
            None => "sent",
        },
        enforce::Action::WouldSignal => "dry_run",
        enforce::Action::Reported => "policy_report",
        enforce::Action::NotMapping => "unmapped",
        enforce::Action::Gone => "exited_before",
        enforce::Action::Failed => {
            if r.starts_with("pidfd_open") {
                "pidfd_open"
            } else if r.starts_with("pidfd_send_signal") {
                "pidfd_send_signal"
            } else {
                "other"
            }
        }
    }
}

fn snake(v: impl Serialize) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut r = Registry::with_prefix("notify");
        let events = Family::<Labels, Counter>::default();
        r.register(
            "events",
            "Events the agent processed, kernel and derived, by kind",
            events.clone(),
        );
        let notifications = Family::<Labels, Counter>::default();
        r.register(
            "notifications",
            "Memory-failure notifications (dax_holder_notify_failure) by device and verdict",
            notifications.clone(),
        );
        let premature = Family::<Labels, Counter>::default();
        r.register(
            "notifications_premature",
            "Notifications XFS dropped because the filesystem was not ready, by device",
            premature.clone(),
        );
        let journaled = Family::<Labels, Counter>::default();
        r.register(
            "journaled",
            "Notifications stored in the journal for replay, by reason",
            journaled.clone(),
        );
        let unidentified = Counter::default();
        r.register(
            "unidentified",
            "Notifications needing replay whose pmem disk could not be identified (or whose \
             journal append failed)",
            unidentified.clone(),
        );
        let replayed = Family::<Labels, Counter>::default();
        r.register(
            "replayed",
            "Journal records replayed on a ready filesystem, by disk and result (ok, error)",
            replayed.clone(),
        );
        let owners = Family::<Labels, Counter>::default();
        r.register(
            "owners_resolved",
            "Owners of damaged blocks resolved through GETFSMAP during replays (file, metadata)",
            owners.clone(),
        );
        let decisions = Family::<Labels, Counter>::default();
        r.register(
            "enforcement_decisions",
            "Decisions on processes mapping damaged ranges, by action (signalled, refused, \
             ...), reason class and signal",
            decisions.clone(),
        );
        let mount_not_visible = Counter::default();
        r.register(
            "mount_not_visible",
            "Filesystems that became ready but never appeared in the agent's mount namespace",
            mount_not_visible.clone(),
        );
        let journal_recovered = Counter::default();
        r.register(
            "journal_recoveries",
            "Journal opens that had to cut or skip damaged records",
            journal_recovered.clone(),
        );
        let lost_kernel = Counter::default();
        r.register(
            "ringbuf_lost_events",
            "Events the BPF side could not reserve in the ring buffer (kernel LOST counter)",
            lost_kernel.clone(),
        );
        let seq_gaps = Counter::default();
        r.register(
            "sequence_gaps",
            "Sequence numbers that never arrived in user space",
            seq_gaps.clone(),
        );
        let undecodable = Counter::default();
        r.register(
            "undecodable_events",
            "Ring-buffer records that could not be decoded",
            undecodable.clone(),
        );
        let journal_pending = Gauge::default();
        r.register(
            "journal_pending",
            "Journal records awaiting replay (kept across restarts)",
            journal_pending.clone(),
        );
        let probes = Family::<Labels, Gauge>::default();
        r.register(
            "probes_attached",
            "Probes attached, by method (fentry, kprobe, tracepoint)",
            probes.clone(),
        );
        let probes_missing = Gauge::default();
        r.register(
            "probes_required_missing",
            "Required probes that did not attach (/healthz is 503 while this is not 0)",
            probes_missing.clone(),
        );
        let reloads = Family::<Labels, Counter>::default();
        r.register(
            "config_reloads",
            "SIGHUP configuration reloads, by result (ok, error)",
            reloads.clone(),
        );
        let start_time = Gauge::<i64>::default();
        r.register(
            "start_time_seconds",
            "Unix time the agent started",
            start_time.clone(),
        );
        let build = Family::<Labels, Gauge>::default();
        r.register("build_info", "The agent's version (value 1)", build.clone());
        build
            .get_or_create(&labels(&[("version", env!("CARGO_PKG_VERSION"))]))
            .set(1);
        let kernel = Family::<Labels, Gauge>::default();
        r.register(
            "kernel_info",
            "The running kernel's release (value 1)",
            kernel.clone(),
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        start_time.set(now);
        Metrics {
            registry: r,
            events,
            notifications,
            premature,
            journaled,
            unidentified,
            replayed,
            owners,
            decisions,
            mount_not_visible,
            journal_recovered,
            lost_kernel,
            seq_gaps,
            undecodable,
            journal_pending,
            probes,
            probes_missing,
            reloads,
            last_gaps: AtomicU64::new(0),
            last_undecodable: AtomicU64::new(0),
            last_lost: AtomicU64::new(0),
            kernel,
            lost_map: Mutex::new(None),
            health: Mutex::new(Health::default()),
        }
    }

    /// Records the session: kernel release, probes by method, health.
    pub fn set_session(&self, outcomes: &[Outcome], kernel_release: &str) {
        self.kernel
            .get_or_create(&labels(&[("release", kernel_release)]))
            .set(1);
        for m in ["fentry", "kprobe", "tracepoint"] {
            let n = outcomes
                .iter()
                .filter(|o| o.method.map(|x| x.to_string()).as_deref() == Some(m))
                .count();
            self.probes
                .get_or_create(&labels(&[("method", m)]))
                .set(n as i64);
        }
        let h = Health::from_outcomes(outcomes, kernel_release);
        self.probes_missing.set(h.missing_required.len() as i64);
        *self.health.lock().unwrap() = h;
    }

    /// The kernel's per-CPU lost-event counters, read at each scrape.
    pub fn set_lost_map(&self, m: PerCpuArray<MapData, u64>) {
        *self.lost_map.lock().unwrap() = Some(m);
    }

    pub fn health(&self) -> Health {
        self.health.lock().unwrap().clone()
    }

    pub fn on_event(&self, ev: &TraceEvent) {
        self.events
            .get_or_create(&labels(&[("kind", ev.data.kind_name())]))
            .inc();
        if let EventData::Notification(n) = &ev.data {
            let dev = n.dev.to_string();
            self.notifications
                .get_or_create(&labels(&[("dev", &dev), ("verdict", n.verdict.name())]))
                .inc();
            if n.verdict == crate::readiness::Verdict::Premature {
                self.premature
                    .get_or_create(&labels(&[("dev", &dev)]))
                    .inc();
            }
        }
    }

    pub fn on_action(&self, a: &Action) {
        match a {
            Action::Journaled { reason, .. } => {
                self.journaled
                    .get_or_create(&labels(&[("reason", &snake(reason))]))
                    .inc();
            }
            Action::Unidentified { .. } => {
                self.unidentified.inc();
            }
            Action::Replayed { disk, report, .. } => {
                let result = if report.error.is_some() {
                    "error"
                } else {
                    "ok"
                };
                self.replayed
                    .get_or_create(&labels(&[("disk", disk), ("result", result)]))
                    .inc();
                for o in &report.owners {
                    let kind = if o.metadata { "metadata" } else { "file" };
                    self.owners.get_or_create(&labels(&[("kind", kind)])).inc();
                }
            }
            Action::Enforcement { decision, .. } => {
                self.decisions
                    .get_or_create(&labels(&[
                        ("action", &snake(decision.action)),
                        ("reason_class", reason_class(decision)),
                        ("signal", decision.signal.unwrap_or("none")),
                    ]))
                    .inc();
            }
            Action::MountNotVisible { .. } => {
                self.mount_not_visible.inc();
            }
            Action::JournalRecovered { .. } => {
                self.journal_recovered.inc();
            }
        }
    }

    /// The pipeline's running totals (sequence gaps, undecodable records).
    pub fn on_totals(&self, t: &Totals) {
        let bump = |last: &AtomicU64, now: u64, c: &Counter| {
            let before = last.swap(now, Ordering::Relaxed);
            if now > before {
                c.inc_by(now - before);
            }
        };
        bump(&self.last_gaps, t.seq_gaps, &self.seq_gaps);
        bump(&self.last_undecodable, t.undecodable, &self.undecodable);
    }

    pub fn set_journal_pending(&self, n: usize) {
        self.journal_pending.set(n as i64);
    }

    pub fn on_reload(&self, ok: bool) {
        self.reloads
            .get_or_create(&labels(&[("result", if ok { "ok" } else { "error" })]))
            .inc();
    }

    /// The OpenMetrics text of every metric (reads the LOST map first).
    pub fn render(&self) -> String {
        if let Some(m) = self.lost_map.lock().unwrap().as_ref() {
            let now = crate::trace::lost_in_kernel(m);
            let before = self.last_lost.swap(now, Ordering::Relaxed);
            if now > before {
                self.lost_kernel.inc_by(now - before);
            }
        }
        let mut s = String::new();
        let _ = encode(&mut s, &self.registry);
        s
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const MAX_REQUEST: usize = 16 << 10;
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A parsed request line.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
}

/// Parses the head of an HTTP/1.x request (up to the blank line).
pub fn parse_request(head: &[u8]) -> Option<Request> {
    let text = std::str::from_utf8(head).ok()?;
    let line = text.lines().next()?;
    let mut parts = line.split(' ');
    let method = parts.next()?.to_string();
    let target = parts.next()?;
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") || parts.next().is_some() {
        return None;
    }
    let path = target.split('?').next().unwrap_or(target).to_string();
    Some(Request { method, path })
}

/// Status, content type and body for a request.
pub fn respond(m: &Metrics, req: &Request) -> (u16, &'static str, String) {
    if req.method != "GET" && req.method != "HEAD" {
        return (405, "text/plain; charset=utf-8", "use GET\n".into());
    }
    match req.path.as_str() {
        "/metrics" => (200, OPENMETRICS, m.render()),
        "/healthz" => {
            let h = m.health();
            let code = if h.ok() { 200 } else { 503 };
            let mut body = serde_json::to_string(&h).unwrap_or_default();
            body.push('\n');
            (code, "application/json", body)
        }
        "/" => (
            200,
            "text/plain; charset=utf-8",
            "notify agent: /metrics (Prometheus), /healthz (200 when every required probe is \
             attached, else 503)\n"
                .into(),
        ),
        _ => (
            404,
            "text/plain; charset=utf-8",
            "not found: try /metrics or /healthz\n".into(),
        ),
    }
}

fn reason_phrase(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "",
    }
}

async fn handle(mut sock: TcpStream, m: Arc<Metrics>) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break Some(p);
        }
        if let Some(p) = buf.windows(2).position(|w| w == b"\n\n") {
            break Some(p);
        }
        if buf.len() > MAX_REQUEST {
            break None;
        }
        let mut chunk = [0u8; 2048];
        let n = match tokio::time::timeout(READ_TIMEOUT, sock.read(&mut chunk)).await {
            Ok(r) => r?,
            Err(_) => return Ok(()),
        };
        if n == 0 {
            break None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let req = head_end.and_then(|e| parse_request(&buf[..e]));
    let (code, ctype, body, head_only) = match req {
        Some(r) => {
            let (c, t, b) = respond(&m, &r);
            (c, t, b, r.method == "HEAD")
        }
        None => (
            400,
            "text/plain; charset=utf-8",
            "bad request\n".into(),
            false,
        ),
    };
    let mut out = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: \
         close\r\n\r\n",
        reason_phrase(code),
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    sock.write_all(&out).await?;
    sock.shutdown().await
}

/// Binds the endpoint (port 0 picks a free one: the bound address is returned).
pub async fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves until the runtime stops. One task per connection; scrapes are tiny.
pub async fn serve(listener: TcpListener, m: Arc<Metrics>) {
    loop {
        match listener.accept().await {
            Ok((sock, _)) => {
                let m = m.clone();
                tokio::spawn(async move {
                    if let Err(e) = handle(sock, m).await {
                        log::debug!("metrics connection: {e}");
                    }
                });
            }
            Err(e) => {
                log::warn!("metrics endpoint accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::Method;

    fn outcome(hook: &'static str, method: Option<Method>, required: bool) -> Outcome {
        Outcome {
            hook,
            target: hook.into(),
            method,
            notes: vec![],
            required,
        }
    }

    #[test]
    fn request_line_parsing() {
        assert_eq!(
            parse_request(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a"),
            Some(Request {
                method: "GET".into(),
                path: "/metrics".into()
            })
        );
        assert!(parse_request(b"GET /metrics").is_none());
        assert!(parse_request(b"\xff\xfe").is_none());
    }

    #[test]
    fn healthz_is_503_naming_missing_required_probes() {
        let m = Metrics::new();
        m.set_session(
            &[
                outcome("notify", None, true),
                outcome("memory_failure", None, false),
                outcome("sys_exit_mount", Some(Method::Tracepoint), false),
            ],
            "6.1.0-test",
        );
        let get = |p: &str| {
            respond(
                &m,
                &Request {
                    method: "GET".into(),
                    path: p.into(),
                },
            )
        };
        let (code, _, body) = get("/healthz");
        assert_eq!(code, 503);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["missing_required"], serde_json::json!(["notify"]));
        assert_eq!(v["attached"]["sys_exit_mount"], "tracepoint");
        let (code, ctype, text) = get("/metrics");
        assert_eq!((code, ctype), (200, OPENMETRICS));
        assert!(
            text.contains("notify_probes_attached{method=\"tracepoint\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("notify_kernel_info{release=\"6.1.0-test\"} 1"),
            "{text}"
        );
        assert!(text.contains("notify_build_info{version="), "{text}");
        assert!(text.contains("notify_probes_required_missing 1"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert_eq!(get("/nope").0, 404);

        let ok = Metrics::new();
        ok.set_session(&[outcome("notify", Some(Method::Kprobe), true)], "x");
        assert!(ok.health().ok());
    }

    /// Every metric the agent exports is in docs/AGENT.md's table, and every one there exists.
    #[test]
    fn docs_list_exactly_the_exported_metrics() {
        use crate::{
            event::Dev,
            journal::{Reason, Recovery},
            readiness::{Notification, Verdict},
            replay::ReplayReport,
        };
        let m = Metrics::new();
        m.set_session(&[outcome("notify", None, true)], "6.1");
        let n = Notification {
            dax_dev: 1,
            holder: 2,
            dev: Dev(1),
            start_off: 0,
            offset: 0,
            len: 4096,
            mf_flags: 0,
            ret: -5,
            xfs_ret: None,
            readiness: None,
            state: None,
            verdict: Verdict::Premature,
            enter_seq: None,
            exit_seq: 1,
        };
        m.on_event(&TraceEvent {
            seq: 1,
            ktime_ns: 0,
            cpu: 0,
            pid: 1,
            tid: 1,
            comm: "x".into(),
            data: EventData::Notification(n),
        });
        m.on_action(&Action::Journaled {
            id: 1,
            reason: Reason::Premature,
            disk: "pmem0".into(),
            dax_offset: 0,
            len: 4096,
            identified_by: "test",
        });
        m.on_action(&Action::Replayed {
            id: 1,
            disk: "pmem0".into(),
            report: ReplayReport {
                mount_point: "/mnt".into(),
                dax_offset: 0,
                len: 4096,
                fs_range: None,
                owners: vec![crate::replay::OwnerReport {
                    kind: "file".into(),
                    ino: Some(1),
                    paths: vec![],
                    ranges: vec![],
                    physical: 0,
                    length: 4096,
                    shared: false,
                    metadata: false,
                }],
                decisions: vec![],
                error: None,
            },
        });
        m.on_action(&Action::Enforcement {
            id: 1,
            decision: Decision {
                pid: 5,
                comm: "c".into(),
                action: enforce::Action::Signalled,
                reason: "maps the damaged range".into(),
                policy: enforce::Policy::Sigbus,
                signal: Some("SIGBUS"),
                si_code: Some(0),
                dry_run: false,
                addr: None,
                exited: None,
            },
        });
        m.on_action(&Action::JournalRecovered {
            recovery: Recovery::default(),
        });
        m.on_reload(true);
        let text = m.render();
        let exported: std::collections::BTreeSet<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split(['{', ' ']).next().unwrap())
            .collect();
        let doc = include_str!("../../docs/AGENT.md");
        let documented: std::collections::BTreeSet<&str> = doc
            .lines()
            .filter_map(|l| l.strip_prefix("| `notify_"))
            .map(|l| &l[..l.find('`').unwrap()])
            .collect();
        let exported: std::collections::BTreeSet<&str> = exported
            .iter()
            .map(|n| n.strip_prefix("notify_").unwrap())
            .collect();
        assert_eq!(
            exported, documented,
            "docs/AGENT.md's metric table vs /metrics"
        );
    }

    #[test]
    fn decisions_are_counted_by_action_and_reason_class() {
        let allow = enforce::Allowlist {
            pids: vec![42],
            comms: vec!["db".into()],
            cgroup_prefixes: vec!["/system.slice/db.service".into()],
        };
        // The classes follow enforce::refusal's real reasons.
        let cases = [
            (enforce::refusal(1, "init", &[], 99, &allow), "pid1"),
            (enforce::refusal(99, "notify", &[], 99, &allow), "self"),
            (enforce::refusal(42, "x", &[], 99, &allow), "allow_pid"),
            (enforce::refusal(43, "db", &[], 99, &allow), "allow_comm"),
            (
                enforce::refusal(44, "y", &["/system.slice/db.service/x".into()], 99, &allow),
                "allow_cgroup",
            ),
            (enforce::refusal(0, "y", &[], 99, &allow), "invalid_pid"),
        ];
        let m = Metrics::new();
        for (reason, class) in cases {
            let d = Decision {
                pid: 5,
                comm: "c".into(),
                action: enforce::Action::Refused,
                reason: reason.expect("refused"),
                policy: enforce::Policy::Sigbus,
                signal: None,
                si_code: None,
                dry_run: false,
                addr: None,
                exited: None,
            };
            assert_eq!(reason_class(&d), class, "{}", d.reason);
            m.on_action(&Action::Enforcement { id: 1, decision: d });
        }
        let text = m.render();
        assert!(
            text.contains(
                "notify_enforcement_decisions_total{action=\"refused\",reason_class=\"pid1\",signal=\"none\"} 1"
            ),
            "{text}"
        );
    }
}
