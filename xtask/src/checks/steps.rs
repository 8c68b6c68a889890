//! Expected event sequences over typed items: a [`Step`] is a [`Kind`] of item and constraints
//! on its typed fields; [`expect_sequence`] finds the steps in order and, when one is missing,
//! says which, with the candidates of that kind and why each does not match.

use std::fmt::Write as _;

use notify_model::{
    AgentRecord, EventData, Item, Phase, Readiness, Verdict, journal::Reason, record::IdentifiedBy,
};

/// The kinds of item the checks look for. Matched on the typed item, never on its JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    MemoryFailureEnter,
    MemoryFailureExit,
    MfEvent,
    NotifyEnter,
    NotifyExit,
    XfsNotifyExit,
    HolderGet,
    HolderPut,
    /// A step of the XFS mount path.
    Mount(Phase),
    SyscallExit,
    XfsTracepoint,
    HolderState,
    Notification,
    Journaled,
    Replayed,
    Enforcement,
}

impl Kind {
    /// Its `kind` in JSON (docs/EVENTS.md), for messages.
    pub fn name(self) -> &'static str {
        match self {
            Kind::MemoryFailureEnter => "memory_failure_enter",
            Kind::MemoryFailureExit => "memory_failure_exit",
            Kind::MfEvent => "mf_event",
            Kind::NotifyEnter => "notify_enter",
            Kind::NotifyExit => "notify_exit",
            Kind::XfsNotifyExit => "xfs_notify_exit",
            Kind::HolderGet => "holder_get",
            Kind::HolderPut => "holder_put",
            Kind::Mount(p) => p.kind_name(),
            Kind::SyscallExit => "syscall_exit",
            Kind::XfsTracepoint => "xfs_tracepoint",
            Kind::HolderState => "holder_state",
            Kind::Notification => "notification",
            Kind::Journaled => "journaled",
            Kind::Replayed => "replayed",
            Kind::Enforcement => "enforcement",
        }
    }

    pub fn of(self, i: &Item) -> bool {
        use EventData as D;
        match i {
            Item::Kernel(e) => match (self, &e.data) {
                (Kind::Mount(p), d) => d.mount_step().is_some_and(|(q, _)| q == p),
                (Kind::MemoryFailureEnter, D::MemoryFailureEnter { .. })
                | (Kind::MemoryFailureExit, D::MemoryFailureExit { .. })
                | (Kind::MfEvent, D::MfEvent { .. })
                | (Kind::NotifyEnter, D::NotifyEnter { .. })
                | (Kind::NotifyExit, D::NotifyExit { .. })
                | (Kind::XfsNotifyExit, D::XfsNotifyExit { .. })
                | (Kind::HolderGet, D::HolderGet { .. })
                | (Kind::HolderPut, D::HolderPut { .. })
                | (Kind::SyscallExit, D::SyscallExit { .. })
                | (Kind::XfsTracepoint, D::XfsTracepoint { .. }) => true,
                _ => false,
            },
            Item::HolderState(_) => self == Kind::HolderState,
            Item::Notification(_) => self == Kind::Notification,
            Item::Record(AgentRecord::Journaled { .. }) => self == Kind::Journaled,
            Item::Record(AgentRecord::Replayed { .. }) => self == Kind::Replayed,
            Item::Record(AgentRecord::Enforcement { .. }) => self == Kind::Enforcement,
            Item::Record(_) | Item::FsError(_) | Item::Health(_) => false,
        }
    }
}

/// Typed fields of items, by the name docs/EVENTS.md gives them; None for an item without it.
pub mod field {
    use super::*;

    fn kernel(i: &Item) -> Option<&EventData> {
        i.kernel().map(|e| &e.data)
    }

    fn record(i: &Item) -> Option<&AgentRecord> {
        match i {
            Item::Record(r) => Some(r),
            _ => None,
        }
    }

    /// The process (tgid) of a kernel event, or of the event a derived item comes from.
    pub fn pid(i: &Item) -> Option<u32> {
        match i {
            Item::Kernel(e) => Some(e.pid),
            Item::HolderState(d) => Some(d.at.pid),
            Item::Notification(d) => Some(d.at.pid),
            Item::Record(_) | Item::FsError(_) | Item::Health(_) => None,
        }
    }

    pub fn pfn(i: &Item) -> Option<u64> {
        match kernel(i)? {
            EventData::MemoryFailureEnter { pfn, .. }
            | EventData::MemoryFailureExit { pfn, .. }
            | EventData::MfEvent { pfn, .. } => Some(*pfn),
            _ => None,
        }
    }

    /// Byte offset on the dax device of a notification (entry, returns, derived).
    pub fn offset(i: &Item) -> Option<u64> {
        if let Item::Notification(n) = i {
            return Some(n.data.offset);
        }
        match kernel(i)? {
            EventData::NotifyEnter { offset, .. }
            | EventData::NotifyExit { offset, .. }
            | EventData::XfsNotifyExit { offset, .. } => Some(*offset),
            _ => None,
        }
    }

    pub fn len(i: &Item) -> Option<u64> {
        match i {
            Item::Notification(n) => Some(n.data.len),
            Item::Record(AgentRecord::Journaled { len, .. }) => Some(*len),
            Item::Record(AgentRecord::Replayed { report, .. }) => Some(report.len),
            _ => match kernel(i)? {
                EventData::NotifyEnter { len, .. }
                | EventData::NotifyExit { len, .. }
                | EventData::XfsNotifyExit { len, .. } => Some(*len),
                _ => None,
            },
        }
    }

    /// A return value: the notify returns, the mount path's exits, syscalls, memory_failure.
    pub fn ret(i: &Item) -> Option<i64> {
        if let Item::Notification(n) = i {
            return Some(n.data.ret);
        }
        let d = kernel(i)?;
        if let Some((_, s)) = d.mount_step() {
            return Some(s.ret);
        }
        match d {
            EventData::NotifyExit { ret, .. }
            | EventData::XfsNotifyExit { ret, .. }
            | EventData::MemoryFailureExit { ret, .. }
            | EventData::SyscallExit { ret, .. } => Some(*ret),
            _ => None,
        }
    }

    pub fn readiness(i: &Item) -> Option<Readiness> {
        match kernel(i)? {
            EventData::NotifyEnter { readiness, .. } => Some(*readiness),
            _ => None,
        }
    }

    /// The holder (`struct xfs_mount *`).
    pub fn holder(i: &Item) -> Option<u64> {
        match i {
            Item::HolderState(d) => Some(d.data.holder),
            Item::Notification(n) => Some(n.data.holder),
            _ => {
                let d = kernel(i)?;
                if let Some((_, s)) = d.mount_step() {
                    return Some(s.holder);
                }
                match d {
                    EventData::NotifyEnter { holder, .. }
                    | EventData::HolderGet { holder, .. }
                    | EventData::HolderPut { holder, .. } => Some(*holder),
                    _ => None,
                }
            }
        }
    }

    pub fn dax_dev(i: &Item) -> Option<u64> {
        match i {
            Item::HolderState(d) => Some(d.data.dax_dev),
            Item::Notification(n) => Some(n.data.dax_dev),
            _ => match kernel(i)? {
                EventData::NotifyEnter { dax_dev, .. }
                | EventData::NotifyExit { dax_dev, .. }
                | EventData::XfsNotifyExit { dax_dev, .. }
                | EventData::HolderGet { dax_dev, .. }
                | EventData::HolderPut { dax_dev, .. } => Some(*dax_dev),
                _ => None,
            },
        }
    }

    pub fn verdict(i: &Item) -> Option<Verdict> {
        i.notification().map(|n| n.data.verdict)
    }

    /// The journal record a record is about.
    pub fn id(i: &Item) -> Option<u64> {
        match record(i)? {
            AgentRecord::Journaled { id, .. }
            | AgentRecord::Replayed { id, .. }
            | AgentRecord::Enforcement { id, .. } => Some(*id),
            _ => None,
        }
    }

    pub fn dax_offset(i: &Item) -> Option<u64> {
        match record(i)? {
            AgentRecord::Journaled { dax_offset, .. }
            | AgentRecord::Unidentified { dax_offset, .. } => Some(*dax_offset),
            AgentRecord::Replayed { report, .. } => Some(report.dax_offset),
            _ => None,
        }
    }

    pub fn reason(i: &Item) -> Option<Reason> {
        match record(i)? {
            AgentRecord::Journaled { reason, .. } => Some(*reason),
            _ => None,
        }
    }

    pub fn disk(i: &Item) -> Option<String> {
        match record(i)? {
            AgentRecord::Journaled { disk, .. } | AgentRecord::Replayed { disk, .. } => {
                Some(disk.clone())
            }
            _ => None,
        }
    }

    /// "namespace0.0 region0": the disk's names as ndctl prints them.
    pub fn ndctl(i: &Item) -> Option<String> {
        match record(i)? {
            AgentRecord::Journaled { ndctl, .. } | AgentRecord::Replayed { ndctl, .. } => {
                Some(format!(
                    "{} {}",
                    ndctl.namespace.as_deref().unwrap_or("null"),
                    ndctl.region.as_deref().unwrap_or("null")
                ))
            }
            _ => None,
        }
    }

    pub fn identified_by(i: &Item) -> Option<IdentifiedBy> {
        match record(i)? {
            AgentRecord::Journaled { identified_by, .. } => Some(*identified_by),
            _ => None,
        }
    }

    pub fn mount_point(i: &Item) -> Option<String> {
        match record(i)? {
            AgentRecord::Replayed { report, .. } => {
                Some(report.mount_point.to_string_lossy().into_owned())
            }
            _ => None,
        }
    }
}

/// A field value as messages show it: large numbers in hex, names quoted as in JSON.
pub trait Shown {
    fn shown(&self) -> String;
}

impl Shown for u64 {
    fn shown(&self) -> String {
        if *self >= 0x10000 {
            format!("{self:#x}")
        } else {
            self.to_string()
        }
    }
}

impl Shown for i64 {
    fn shown(&self) -> String {
        if *self >= 0x10000 {
            format!("{self:#x}")
        } else {
            self.to_string()
        }
    }
}

impl Shown for String {
    fn shown(&self) -> String {
        format!("{self:?}")
    }
}

macro_rules! shown_as_json {
    ($($t:ty),*) => {$(
        impl Shown for $t {
            fn shown(&self) -> String {
                serde_json::to_string(self).unwrap_or_else(|_| format!("{self:?}"))
            }
        }
    )*};
}
shown_as_json!(Readiness, Verdict, Reason, IdentifiedBy);

/// A test of one field: (whether it matches, the item's value shown), or None when the item
/// has no such field.
type FieldTest = Box<dyn Fn(&Item) -> Option<(bool, String)>>;

struct Field {
    name: &'static str,
    want: String,
    test: FieldTest,
}

/// One step of an expected sequence: a kind and constraints on its typed fields.
pub struct Step {
    pub kind: Kind,
    fields: Vec<Field>,
}

impl Step {
    pub fn new(kind: Kind) -> Step {
        Step {
            kind,
            fields: Vec::new(),
        }
    }

    /// A step of the mount path.
    pub fn mount(phase: Phase) -> Step {
        Step::new(Kind::Mount(phase))
    }

    fn field<T: Shown + PartialEq + 'static>(
        mut self,
        name: &'static str,
        get: fn(&Item) -> Option<T>,
        want: T,
    ) -> Step {
        self.fields.push(Field {
            name,
            want: want.shown(),
            test: Box::new(move |i| get(i).map(|g| (g == want, g.shown()))),
        });
        self
    }

    fn nonzero(mut self, name: &'static str, get: fn(&Item) -> Option<u64>) -> Step {
        self.fields.push(Field {
            name,
            want: "non-zero".into(),
            test: Box::new(move |i| get(i).map(|g| (g != 0, g.shown()))),
        });
        self
    }

    pub fn pfn(self, v: u64) -> Step {
        self.field("pfn", field::pfn, v)
    }
    pub fn offset(self, v: u64) -> Step {
        self.field("offset", field::offset, v)
    }
    pub fn len(self, v: u64) -> Step {
        self.field("len", field::len, v)
    }
    pub fn ret(self, v: i64) -> Step {
        self.field("ret", field::ret, v)
    }
    pub fn readiness(self, v: Readiness) -> Step {
        self.field("readiness", field::readiness, v)
    }
    pub fn verdict(self, v: Verdict) -> Step {
        self.field("verdict", field::verdict, v)
    }
    /// A holder pointer was read.
    pub fn holder_known(self) -> Step {
        self.nonzero("holder", field::holder)
    }
    /// A dax device pointer was read.
    pub fn dax_dev_known(self) -> Step {
        self.nonzero("dax_dev", field::dax_dev)
    }
    pub fn dax_offset(self, v: u64) -> Step {
        self.field("dax_offset", field::dax_offset, v)
    }
    pub fn reason(self, v: Reason) -> Step {
        self.field("reason", field::reason, v)
    }
    pub fn disk(self, v: &str) -> Step {
        self.field("disk", field::disk, v.to_string())
    }
    /// The disk's ndctl namespace and region.
    pub fn ndctl(self, namespace: &str, region: &str) -> Step {
        self.field(
            "namespace region",
            field::ndctl,
            format!("{namespace} {region}"),
        )
    }
    pub fn identified_by(self, v: IdentifiedBy) -> Step {
        self.field("identified_by", field::identified_by, v)
    }
    pub fn mount_point(self, v: &str) -> Step {
        self.field("mount_point", field::mount_point, v.to_string())
    }

    /// Why `i` does not match, or None if it does.
    pub fn mismatch(&self, i: &Item) -> Option<String> {
        if !self.kind.of(i) {
            return Some(format!("kind {} != {}", i.kind_name(), self.kind.name()));
        }
        for f in &self.fields {
            match (f.test)(i) {
                Some((true, _)) => {}
                Some((false, got)) => {
                    return Some(format!("{}={got} (want {})", f.name, f.want));
                }
                None => return Some(format!("{}=<absent> (want {})", f.name, f.want)),
            }
        }
        None
    }

    pub fn describe(&self) -> String {
        let mut s = self.kind.name().to_string();
        for f in &self.fields {
            let _ = write!(s, " {}={}", f.name, f.want);
        }
        s
    }
}

/// Finds `steps` in order (each strictly after the previous match). On failure, says which
/// step is missing and shows the items around where it should have been plus every item of
/// the wanted kind with its mismatch.
pub fn expect_sequence(items: &[&Item], steps: &[Step]) -> Result<Vec<usize>, String> {
    let mut found = Vec::new();
    let mut from = 0;
    for (i, step) in steps.iter().enumerate() {
        if let Some(j) = (from..items.len()).find(|&j| step.mismatch(items[j]).is_none()) {
            found.push(j);
            from = j + 1;
            continue;
        }
        let mut msg = format!(
            "step {} of {} missing: {}",
            i + 1,
            steps.len(),
            step.describe()
        );
        if i > 0 {
            let _ = write!(
                msg,
                "\n  after step {} matched {}",
                i,
                brief(items[from - 1])
            );
        }
        let same: Vec<&&Item> = items.iter().filter(|e| step.kind.of(e)).collect();
        if same.is_empty() {
            let _ = write!(msg, "\n  no {} event at all", step.kind.name());
        }
        for e in same.iter().take(6) {
            let why = step
                .mismatch(e)
                .unwrap_or_else(|| "matches, but too early".into());
            let _ = write!(msg, "\n  candidate {} -> {why}", brief(e));
        }
        msg.push_str("\n  events around it:");
        msg.push_str(&context(items, from.saturating_sub(4), 10));
        return Err(msg);
    }
    Ok(found)
}

/// `n` items from index `from`, one per line.
pub fn context(items: &[&Item], from: usize, n: usize) -> String {
    let mut s = String::new();
    for e in items.iter().skip(from).take(n) {
        let _ = write!(s, "\n    {}", brief(e));
    }
    if items.is_empty() {
        s.push_str("\n    (no events)");
    }
    s
}

/// A compact one-line rendering for failure reports: its JSON form (docs/EVENTS.md) without
/// the header fields nobody reads there, offsets in hex.
pub fn brief(i: &Item) -> String {
    let mut s = match i.seq() {
        Some(seq) => format!("#{seq} {}", i.kind_name()),
        // An agent record: no kernel header.
        None => format!("[agent] {}", i.kind_name()),
    };
    let Ok(serde_json::Value::Object(m)) = serde_json::to_value(i) else {
        return s;
    };
    for (k, v) in &m {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn items(lines: &[&str]) -> Vec<Item> {
        lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    const HEAD: &str = r#""ktime_ns":1,"cpu":0,"pid":7,"tid":7,"comm":"sh""#;

    #[test]
    fn sequence_in_order_and_reports_missing_step() {
        let owned = items(&[
            &format!(r#"{{"seq":0,{HEAD},"kind":"memory_failure_enter","pfn":262145,"flags":0}}"#),
            &format!(
                r#"{{"seq":1,{HEAD},"kind":"notify_enter","dax_dev":"0x1","holder":"0x0","holder_ops":"0x0","offset":4096,"len":4096,"s_flags":0,"mf_flags":0,"readiness":"no_holder"}}"#
            ),
            &format!(
                r#"{{"seq":2,{HEAD},"kind":"notify_exit","dax_dev":"0x1","offset":4096,"len":4096,"ret":-95}}"#
            ),
        ]);
        let ev: Vec<&Item> = owned.iter().collect();
        let steps = [
            Step::new(Kind::MemoryFailureEnter).pfn(0x40001),
            Step::new(Kind::NotifyEnter)
                .offset(4096)
                .readiness(Readiness::NoHolder),
            Step::new(Kind::NotifyExit).ret(-95),
        ];
        assert_eq!(expect_sequence(&ev, &steps), Ok(vec![0, 1, 2]));
        let bad = [Step::new(Kind::NotifyExit).ret(-5)];
        let err = expect_sequence(&ev, &bad).unwrap_err();
        assert!(
            err.contains("step 1 of 1 missing: notify_exit ret=-5"),
            "{err}"
        );
        assert!(err.contains("ret=-95 (want -5)"), "{err}");
        // Order matters: notify_enter must come after memory_failure_enter.
        let rev = [Step::new(Kind::NotifyExit), Step::new(Kind::NotifyEnter)];
        assert!(
            expect_sequence(&ev, &rev)
                .unwrap_err()
                .contains("matches, but too early")
        );
        let ready = [Step::new(Kind::NotifyEnter).readiness(Readiness::Born)];
        let err = expect_sequence(&ev, &ready).unwrap_err();
        assert!(
            err.contains(r#"readiness="no_holder" (want "born")"#),
            "{err}"
        );
        assert!(
            brief(ev[1]).starts_with("#1 notify_enter comm=\"sh\" dax_dev=\"0x1\""),
            "{}",
            brief(ev[1])
        );
        assert!(brief(ev[0]).contains("pfn=0x40001"), "{}", brief(ev[0]));
    }

    #[test]
    fn every_kind_is_named_as_the_model_names_it() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut all: Vec<Item> = ["events.jsonl", "events_restart.jsonl"]
            .iter()
            .flat_map(|f| {
                let p = root.join("6.12-kprobe/replay").join(f);
                std::fs::read_to_string(p)
                    .unwrap()
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .filter_map(|l| serde_json::from_str(&l).ok())
            .collect();
        let suite = root.join("6.12-kprobe/mount_suite/session.json");
        all.extend(
            notify_model::session::SessionFile::load(&suite)
                .unwrap()
                .events,
        );
        let mut kinds = vec![
            Kind::MemoryFailureEnter,
            Kind::MemoryFailureExit,
            Kind::MfEvent,
            Kind::NotifyEnter,
            Kind::NotifyExit,
            Kind::XfsNotifyExit,
            Kind::HolderGet,
            Kind::HolderPut,
            Kind::SyscallExit,
            Kind::XfsTracepoint,
            Kind::HolderState,
            Kind::Notification,
            Kind::Journaled,
            Kind::Replayed,
            Kind::Enforcement,
        ];
        kinds.extend(
            [
                Phase::FillSuperEnter,
                Phase::FillSuperExit,
                Phase::MountfsEnter,
                Phase::MountfsExit,
                Phase::GetTreeExit,
                Phase::PutSuper,
            ]
            .map(Kind::Mount),
        );
        for k in kinds {
            let n = all.iter().filter(|i| k.of(i)).count();
            assert!(n > 0, "{k:?}: none in the fixtures");
            for i in &all {
                assert_eq!(k.of(i), i.kind_name() == k.name(), "{k:?} vs {}", brief(i));
            }
        }
    }
}
