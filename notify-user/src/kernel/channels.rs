//! The ways this kernel lets userspace tell XFS about damage, and hear what XFS concluded: XFS 7.x
//! reports errors through fserror (fanotify's FAN_FS_ERROR, any number of listeners) and its
//! health monitor (`XFS_IOC_HEALTH_MONITOR`, one client per filesystem, which xfs_healer takes),
//! and can be told to verify a range (`XFS_IOC_VERIFY_MEDIA`); every kernel with memory hotplug
//! has the `hard_offline_page` testing interface that re-drives `memory_failure()`.
//!
//! Found from the kernel's own symbols (kallsyms, XFS's when its module is loaded) and sysfs; a
//! health monitor already held is found the only way there is without taking the slot: a
//! process holding an `anon_inode:xfs_healthmon` fd, whose fdinfo names the filesystem.

use std::{fs, path::Path};

use notify_model::Dev;
use serde::Serialize;

use crate::kernel::kallsyms::Kallsyms;

/// The testing interface that runs `memory_failure(pfn, MF_SW_SIMULATED)`.
pub const HARD_OFFLINE_PAGE: &str = "/sys/devices/system/memory/hard_offline_page";

/// Whether a channel exists, and how we know.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Channel {
    pub present: Option<bool>,
    pub reason: String,
}

impl Channel {
    pub fn of(present: Option<bool>, reason: impl Into<String>) -> Channel {
        Channel {
            present,
            reason: reason.into(),
        }
    }

    pub fn is_present(&self) -> bool {
        self.present == Some(true)
    }
}

/// A process holding a filesystem's health monitor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MonitorHolder {
    pub pid: i32,
    pub comm: String,
    /// The monitored filesystem's device.
    pub dev: Dev,
    /// `alive`, or `dead` once the filesystem went away.
    pub state: String,
}

/// What this kernel offers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Channels {
    pub fserror: Channel,
    pub healthmon: Channel,
    pub verify_media: Channel,
    pub hard_offline_page: Channel,
    /// Health monitors already held (each filesystem allows one).
    pub monitors: Vec<MonitorHolder>,
}

/// A symbol of XFS: present, absent, or unknown because XFS is not loaded.
fn xfs_symbol(ksyms: &Kallsyms, name: &str, what: &str) -> Channel {
    if ksyms.contains(name) {
        Channel::of(Some(true), format!("{what}: {name} in kallsyms"))
    } else if !ksyms.contains("xfs_mountfs") {
        Channel::of(
            None,
            "XFS is not loaded: mount an XFS (or modprobe xfs) and ask again",
        )
    } else {
        Channel::of(
            Some(false),
            format!("not on this kernel: XFS has no {name} (XFS 7.0 or later has it)"),
        )
    }
}

/// The re-drive interface: a sysfs file, there or not.
fn hard_offline_page() -> Channel {
    if Path::new(HARD_OFFLINE_PAGE).exists() {
        Channel::of(
            Some(true),
            format!("{HARD_OFFLINE_PAGE} exists (a testing interface: opt-in only)"),
        )
    } else {
        Channel::of(
            Some(false),
            format!("no {HARD_OFFLINE_PAGE} (CONFIG_MEMORY_HOTPLUG and MEMORY_FAILURE)"),
        )
    }
}

impl Channels {
    /// The channels a one-shot replay needs, without the kernel's symbols (reading and parsing
    /// /proc/kallsyms is most of a replay's start-up): whether XFS takes verify-media, as its
    /// caller asked a mounted XFS (`agent::tell::answers`); the others are not looked up.
    pub fn without_symbols(verify_media: Channel) -> Channels {
        let unasked = || Channel::of(None, "not looked up (no kernel symbols read)");
        Channels {
            fserror: unasked(),
            healthmon: unasked(),
            verify_media,
            hard_offline_page: hard_offline_page(),
            monitors: Vec::new(),
        }
    }

    pub fn detect(ksyms: &Kallsyms) -> Channels {
        let fserror = if ksyms.contains("fserror_report") {
            Channel::of(
                Some(true),
                "fserror_report in kallsyms: XFS reports data loss, metadata errors and \
                 shutdowns as fanotify FAN_FS_ERROR",
            )
        } else {
            Channel::of(
                Some(false),
                "not on this kernel: no fserror_report (Linux 7.0 or later); XFS sends no \
                 FAN_FS_ERROR",
            )
        };
        let hard_offline_page = hard_offline_page();
        Channels {
            fserror,
            healthmon: xfs_symbol(ksyms, "xfs_ioc_health_monitor", "XFS health monitor"),
            verify_media: xfs_symbol(ksyms, "xfs_ioc_verify_media", "XFS media verification"),
            hard_offline_page,
            monitors: monitor_holders(Path::new("/proc")),
        }
    }
}

/// `dev:` and `state:` of a health monitor fd's fdinfo (7.3 xfs_healthmon.c
/// `xfs_healthmon_show_fdinfo`: "state:\talive\ndev:\t8:1\nformat:\tv0\n...").
pub fn parse_monitor_fdinfo(text: &str) -> Option<(Dev, String)> {
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()))
    };
    let dev = Dev::parse(&field("dev:")?)?;
    Some((dev, field("state:").unwrap_or_default()))
}

/// Every process holding an `anon_inode:xfs_healthmon` fd under `proc` (root can read them all).
pub fn monitor_holders(proc: &Path) -> Vec<MonitorHolder> {
    let mut out = Vec::new();
    let Ok(dir) = fs::read_dir(proc) else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(fds) = fs::read_dir(e.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let is_monitor =
                fs::read_link(fd.path()).is_ok_and(|t| t.as_os_str() == "anon_inode:xfs_healthmon");
            if !is_monitor {
                continue;
            }
            let info = e.path().join("fdinfo").join(fd.file_name());
            if let Some((dev, state)) = fs::read_to_string(info)
                .ok()
                .and_then(|t| parse_monitor_fdinfo(&t))
            {
                let comm = fs::read_to_string(e.path().join("comm"))
                    .map(|c| c.trim().to_string())
                    .unwrap_or_default();
                out.push(MonitorHolder {
                    pid,
                    comm,
                    dev,
                    state,
                });
            }
        }
    }
    out.sort_by_key(|m| (m.dev, m.pid));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_fdinfo_names_the_filesystem() {
        let t = "pos:\t0\nflags:\t02000000\nmnt_id:\t15\nino:\t1057\nstate:\talive\ndev:\t259:0\n\
                 format:\tv0\nevents:\t3\nlost:\t0\n";
        assert_eq!(
            parse_monitor_fdinfo(t),
            Some((Dev::new(259, 0), "alive".to_string()))
        );
        assert_eq!(parse_monitor_fdinfo("pos:\t0\n"), None);
        assert_eq!(parse_monitor_fdinfo("dev:\tnot-a-dev\n"), None);
    }
}
