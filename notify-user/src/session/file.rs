//! Writing a session file (notify_model::session holds the format): the envelope of a run, the
//! names of the block devices its events name. (The path is checked before a run starts, by
//! `cmd::preflight`.)

use std::collections::{BTreeMap, BTreeSet};

use notify_model::{
    Dev, Item,
    session::{ExitStatus, FORMAT, Lost, ProbeRecord, SessionFile, VERSION},
};

use crate::probe::{AttachMode, Outcome};

impl From<&Outcome> for ProbeRecord {
    fn from(o: &Outcome) -> Self {
        ProbeRecord {
            hook: o.hook.to_string(),
            target: o.target.clone(),
            method: o.method.map(|m| m.to_string()),
            notes: o.notes.clone(),
        }
    }
}

/// A session of this format version over `events`, with the device names read from sysfs
/// now; how the run ended (losses, command, status, times, error) is left neutral for the
/// writer to set: `notify record`, and `notify trace/agent --session`.
pub fn new_session(
    kernel: String,
    attach: AttachMode,
    probes: Vec<ProbeRecord>,
    events: Vec<Item>,
) -> SessionFile {
    SessionFile {
        format: FORMAT.into(),
        version: VERSION,
        kernel,
        attach: serde_json::to_value(attach)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "auto".into()),
        probes,
        lost: Lost::default(),
        command: Vec::new(),
        exit_status: ExitStatus::Code(0),
        started_wall: String::new(),
        duration_ns: 0,
        error: None,
        devices: device_names(&events),
        events,
    }
}

/// Block-device names from sysfs for every device the events name ("259:0" -> "pmem0").
pub fn device_names(events: &[Item]) -> BTreeMap<String, String> {
    let mut devs = BTreeSet::new();
    for e in events {
        let d = match e {
            Item::Kernel(ev) => ev.data.dev(),
            Item::HolderState(t) => t.data.dev,
            Item::Notification(n) => n.data.dev,
            Item::FsError(e) => e.dev,
            Item::Health(h) => h.dev,
            Item::Record(_) => Dev(0),
        };
        if d.is_known() {
            devs.insert(d);
        }
    }
    devs.into_iter()
        .filter_map(|d| {
            let uevent = std::fs::read_to_string(format!("/sys/dev/block/{d}/uevent")).ok()?;
            let name = uevent
                .lines()
                .find_map(|l| l.strip_prefix("DEVNAME="))?
                .to_string();
            Some((d.to_string(), name))
        })
        .collect()
}
