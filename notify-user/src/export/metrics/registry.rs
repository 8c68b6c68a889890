//! The registry of every metric the agent exports, moved by the items of the stream.

use std::sync::{
    Mutex,
    atomic::{AtomicU64, Ordering},
};

use aya::maps::{MapData, PerCpuArray};
use notify_model::{EventData, Item, event::bus_code_name, record::AgentRecord};
use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use crate::{probe::Outcome, probe::ring::lost_in_kernel, stream::Totals};

use crate::export::metrics::health::Health;

type Labels = Vec<(&'static str, String)>;

pub struct Metrics {
    registry: Registry,
    events: Family<Labels, Counter>,
    notifications: Family<Labels, Counter>,
    journaled: Family<Labels, Counter>,
    unidentified: Counter,
    replayed: Family<Labels, Counter>,
    owners: Family<Labels, Counter>,
    decisions: Family<Labels, Counter>,
    mount_not_visible: Counter,
    xfs_told: Family<Labels, Counter>,
    xfs_reported: Family<Labels, Counter>,
    closed: Counter,
    removals: Counter,
    redrives: Family<Labels, Counter>,
    fs_errors: Family<Labels, Counter>,
    sigbus: Family<Labels, Counter>,
    health_events: Family<Labels, Counter>,
    kernel_kills: Family<Labels, Counter>,
    journal_recovered: Counter,
    journal_write_failed: Family<Labels, Counter>,
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
        let journaled = Family::<Labels, Counter>::default();
        r.register(
            "journaled",
            "Notifications stored in the journal for replay, by pmem disk and reason",
            journaled.clone(),
        );
        let unidentified = Counter::default();
        r.register(
            "unidentified",
            "Notifications needing replay whose pmem disk could not be identified",
            unidentified.clone(),
        );
        let journal_write_failed = Family::<Labels, Counter>::default();
        r.register(
            "journal_write_failures",
            "Journal writes that failed, by operation (append: a notification not stored; \
             mark_replayed, mark_told, mark_redriven, close: a state change not stored)",
            journal_write_failed.clone(),
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
        let xfs_told = Family::<Labels, Counter>::default();
        r.register(
            "xfs_told",
            "Journal records XFS itself was told of (XFS_IOC_VERIFY_MEDIA, 7.0+), by disk and \
             result (ok, error)",
            xfs_told.clone(),
        );
        let xfs_reported = Family::<Labels, Counter>::default();
        r.register(
            "xfs_owners",
            "File owners of told ranges, by whether XFS reported their data loss (reported, \
             missing)",
            xfs_reported.clone(),
        );
        let closed = Counter::default();
        r.register(
            "journal_closed",
            "Journal records closed without acting (stale namespace, no XFS holder ever)",
            closed.clone(),
        );
        let redrives = Family::<Labels, Counter>::default();
        r.register(
            "redrives",
            "Opt-in kernel re-drives through hard_offline_page, by result (written, dry_run, \
             error, refused)",
            redrives.clone(),
        );
        let removals = Counter::default();
        r.register(
            "device_removals",
            "Notifications that a dax device is going away (not poison, not journaled)",
            removals.clone(),
        );
        let fs_errors = Family::<Labels, Counter>::default();
        r.register(
            "fs_errors",
            "XFS's own error reports (FAN_FS_ERROR, 7.0+), by device and what they say \
             (data_lost, inode_metadata, metadata, shutdown, other)",
            fs_errors.clone(),
        );
        let sigbus = Family::<Labels, Counter>::default();
        r.register(
            "sigbus",
            "SIGBUS sent (signal:signal_generate), by si_code: BUS_MCEERR_AR/AO and BUS_ADRERR are \
             the kernel's (memory-failure kills, DAX faults on a listed sector), SI_USER and \
             SI_QUEUE a process's",
            sigbus.clone(),
        );
        let health_events = Family::<Labels, Counter>::default();
        r.register(
            "health_events",
            "Records of XFS's health monitor (held only with --healthmon), by device, domain and \
             what",
            health_events.clone(),
        );
        let kernel_kills = Family::<Labels, Counter>::default();
        r.register(
            "kernel_kills",
            "SIGBUS the kernel sent while handling a notification (XFS's own kill), by device and \
             si_code",
            kernel_kills.clone(),
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
            journaled,
            unidentified,
            replayed,
            owners,
            decisions,
            mount_not_visible,
            xfs_told,
            xfs_reported,
            closed,
            removals,
            redrives,
            fs_errors,
            sigbus,
            health_events,
            kernel_kills,
            journal_recovered,
            journal_write_failed,
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

    /// Counts one item of the stream: kernel events and derived items by kind, notifications
    /// by device and verdict, agent records by what they say.
    pub fn on_item(&self, item: &Item) {
        if let Item::Record(r) = item {
            self.on_record(r);
            return;
        }
        self.events
            .get_or_create(&labels(&[("kind", item.kind_name())]))
            .inc();
        if let Item::Kernel(ev) = item
            && let EventData::Sigbus { code, .. } = &ev.data
        {
            self.sigbus
                .get_or_create(&labels(&[("code", bus_code_name(*code))]))
                .inc();
        }
        if let Item::Health(h) = item {
            self.health_events
                .get_or_create(&labels(&[
                    ("dev", &h.dev.to_string()),
                    ("domain", &h.domain),
                    ("what", &h.what),
                ]))
                .inc();
        }
        if let Item::FsError(e) = item {
            self.fs_errors
                .get_or_create(&labels(&[
                    ("dev", &e.dev.to_string()),
                    ("what", e.what.name()),
                ]))
                .inc();
        }
        if let Item::Notification(d) = item {
            let n = &d.data;
            let dev = n.dev.to_string();
            self.notifications
                .get_or_create(&labels(&[("dev", &dev), ("verdict", n.verdict.name())]))
                .inc();
            for k in &n.kills {
                self.kernel_kills
                    .get_or_create(&labels(&[("dev", &dev), ("code", bus_code_name(k.code))]))
                    .inc();
            }
        }
    }

    fn on_record(&self, a: &AgentRecord) {
        match a {
            AgentRecord::Journaled { reason, disk, .. } => {
                self.journaled
                    .get_or_create(&labels(&[("disk", disk), ("reason", reason.name())]))
                    .inc();
            }
            AgentRecord::Unidentified { .. } => {
                self.unidentified.inc();
            }
            AgentRecord::Replayed { disk, report, .. } => {
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
            AgentRecord::Enforcement { decision, .. } => {
                self.decisions
                    .get_or_create(&labels(&[
                        ("action", decision.action.name()),
                        ("reason_class", decision.class.name()),
                        ("signal", decision.signal.as_deref().unwrap_or("none")),
                    ]))
                    .inc();
            }
            AgentRecord::MountNotVisible { .. } => {
                self.mount_not_visible.inc();
            }
            AgentRecord::XfsTold { disk, error, .. } => {
                let result = if error.is_some() { "error" } else { "ok" };
                self.xfs_told
                    .get_or_create(&labels(&[("disk", disk), ("result", result)]))
                    .inc();
            }
            AgentRecord::XfsReported {
                reported, missing, ..
            } => {
                for (what, n) in [("reported", reported.len()), ("missing", missing.len())] {
                    self.xfs_reported
                        .get_or_create(&labels(&[("result", what)]))
                        .inc_by(n as u64);
                }
            }
            AgentRecord::Closed { .. } => {
                self.closed.inc();
            }
            AgentRecord::DeviceRemoval { .. } => {
                self.removals.inc();
            }
            AgentRecord::Redriven { dry_run, error, .. } => {
                let result = match (dry_run, error) {
                    (_, Some(_)) => "error",
                    (true, None) => "dry_run",
                    (false, None) => "written",
                };
                self.redrives
                    .get_or_create(&labels(&[("result", result)]))
                    .inc();
            }
            AgentRecord::MetadataShutdown { .. } => {
                self.redrives
                    .get_or_create(&labels(&[("result", "metadata_shutdown")]))
                    .inc();
            }
            AgentRecord::RedriveRefused { .. } => {
                self.redrives
                    .get_or_create(&labels(&[("result", "refused")]))
                    .inc();
            }
            AgentRecord::JournalRecovered { .. } => {
                self.journal_recovered.inc();
            }
            AgentRecord::JournalWriteFailed { op, .. } => {
                self.journal_write_failed
                    .get_or_create(&labels(&[("op", op)]))
                    .inc();
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
            let now = lost_in_kernel(m);
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
