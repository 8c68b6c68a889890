//! A snapshot of what the running kernel offers notify, each fact with a reason string that
//! `notify doctor` can print as is.
//!
//! Nothing here loads BPF: whether BPF trampolines (fentry/fexit) work is only known by trying,
//! so [`KernelInfo::fentry`] starts as "untested" and the loader fills it in with
//! [`KernelInfo::set_fentry`].

use std::{
    fmt,
    path::{Path, PathBuf},
};

use crate::kernel::{btf, tracefs};

/// Where the lockdown state is published (securityfs).
pub const LOCKDOWN_PATH: &str = "/sys/kernel/security/lockdown";
pub const UNPRIVILEGED_BPF_DISABLED_PATH: &str = "/proc/sys/kernel/unprivileged_bpf_disabled";
pub const PERF_EVENT_PARANOID_PATH: &str = "/proc/sys/kernel/perf_event_paranoid";

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// The kernel's page size (4096 if sysconf does not say).
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as usize,
        _ => 4096,
    }
}

/// A value and why it is what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact<T> {
    pub value: T,
    pub reason: String,
}

impl<T> Fact<T> {
    fn new(value: T, reason: impl Into<String>) -> Self {
        Self {
            value,
            reason: reason.into(),
        }
    }
}

/// Kernel lockdown mode (security/lockdown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lockdown {
    None,
    /// Blocks changing the running kernel (unsigned modules, /dev/mem, kexec, bpf_probe_write_user).
    Integrity,
    /// Also blocks reading kernel memory: bpf_probe_read_kernel, tracefs, kprobe reads.
    Confidentiality,
}

impl Lockdown {
    /// Parses `none [integrity] confidentiality` (the bracketed word is the mode).
    pub fn parse(text: &str) -> Option<Self> {
        let word = text
            .split_whitespace()
            .find_map(|w| w.strip_prefix('[')?.strip_suffix(']'))?;
        match word {
            "none" => Some(Self::None),
            "integrity" => Some(Self::Integrity),
            "confidentiality" => Some(Self::Confidentiality),
            _ => None,
        }
    }
}

/// How much [`KernelInfo::collect_with`] may change the system to find out.
#[derive(Debug, Clone, Copy, Default)]
pub struct CollectOptions {
    /// Mount tracefs on `/sys/kernel/tracing` if it is missing and we are root (it stays
    /// mounted: aya needs it there).
    pub mount_tracefs: bool,
    /// If securityfs is not mounted and we are root, mount it on a private temporary directory
    /// just long enough to read the lockdown mode, then unmount it.
    pub probe_lockdown: bool,
}

/// Health of one check, for `notify doctor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Warn,
    Fail,
    Unknown,
}

/// One line of a doctor report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub value: String,
    pub reason: String,
}

/// What the running kernel offers.
#[derive(Debug, Clone)]
pub struct KernelInfo {
    /// `uname -r`.
    pub release: String,
    /// `/sys/kernel/btf/vmlinux` exists.
    pub btf_vmlinux: Fact<bool>,
    /// Modules with BTF in `/sys/kernel/btf` (loaded modules only).
    pub module_btf: Fact<Vec<String>>,
    /// Mounted tracefs, if any.
    pub tracefs: Fact<Option<PathBuf>>,
    /// Kprobes attachable the way aya 0.14 attaches them.
    pub kprobes: Fact<bool>,
    /// BPF trampolines (fentry/fexit): `None` until the loader tries to load one.
    pub fentry: Fact<Option<bool>>,
    /// Effective uid 0.
    pub root: Fact<bool>,
    /// Has CAP_BPF+CAP_PERFMON (or CAP_SYS_ADMIN): enough to load and attach.
    pub bpf_capable: Fact<Option<bool>>,
    pub lockdown: Fact<Option<Lockdown>>,
    pub unprivileged_bpf_disabled: Fact<Option<i64>>,
    pub perf_event_paranoid: Fact<Option<i64>>,
}

fn uname_release() -> Option<String> {
    // SAFETY: utsname is plain data; uname fills it with NUL-terminated strings.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return None;
    }
    let bytes: Vec<u8> = u
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// `major.minor.patch` from a release string like `6.18.44-fc-v669` or `6.1.0-56-amd64`.
pub fn parse_release(release: &str) -> Option<(u32, u32, u32)> {
    let mut it = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|s| s.parse::<u32>());
    let major = it.next()?.ok()?;
    let minor = it.next()?.ok()?;
    let patch = it.next().and_then(Result::ok).unwrap_or(0);
    Some((major, minor, patch))
}

fn read_sysctl(path: &str) -> Result<i64, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    text.trim()
        .parse()
        .map_err(|e| format!("cannot parse {path} ({:?}): {e}", text.trim()))
}

/// Effective capability mask of this process from `/proc/self/status`.
fn cap_eff() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_cap_eff(&status)
}

fn parse_cap_eff(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line["CapEff:".len()..].trim(), 16).ok()
}

fn has_cap(mask: u64, cap: u32) -> bool {
    mask & (1u64 << cap) != 0
}

fn lockdown_fact(opts: &CollectOptions, root: bool) -> Fact<Option<Lockdown>> {
    let describe = |mode: Lockdown, how: &str| {
        let why = match mode {
            Lockdown::None => "kernel lockdown off".to_string(),
            Lockdown::Integrity => "lockdown=integrity: BPF programs load and read kernel \
                                    memory; writing user memory (bpf_probe_write_user) and \
                                    unsigned modules are refused"
                .to_string(),
            Lockdown::Confidentiality => "lockdown=confidentiality: bpf_probe_read_kernel, \
                                          kprobe reads and tracefs are refused; notify's probes \
                                          cannot read kernel structs (boot with lockdown=integrity \
                                          or none)"
                .to_string(),
        };
        Fact::new(Some(mode), format!("{why} ({how})"))
    };
    match std::fs::read_to_string(LOCKDOWN_PATH) {
        Ok(text) => match Lockdown::parse(&text) {
            Some(m) => return describe(m, LOCKDOWN_PATH),
            None => {
                return Fact::new(
                    None,
                    format!("cannot parse {LOCKDOWN_PATH}: {:?}", text.trim()),
                );
            }
        },
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Fact::new(None, format!("cannot read {LOCKDOWN_PATH}: {e}"));
        }
        Err(_) => {}
    }
    let securityfs_mounted =
        std::fs::read_dir("/sys/kernel/security").is_ok_and(|mut d| d.next().is_some());
    if securityfs_mounted {
        return Fact::new(
            Some(Lockdown::None),
            "no lockdown file in securityfs: kernel built without CONFIG_SECURITY_LOCKDOWN_LSM",
        );
    }
    if opts.probe_lockdown && root {
        match read_lockdown_via_temp_mount() {
            Ok(Some(text)) => {
                if let Some(m) = Lockdown::parse(&text) {
                    return describe(m, "read through a temporary securityfs mount");
                }
            }
            Ok(None) => {
                return Fact::new(
                    Some(Lockdown::None),
                    "securityfs has no lockdown file: kernel built without \
                     CONFIG_SECURITY_LOCKDOWN_LSM",
                );
            }
            Err(e) => {
                return Fact::new(
                    None,
                    format!("cannot mount securityfs to read lockdown: {e}"),
                );
            }
        }
    }
    Fact::new(
        None,
        "unknown: securityfs is not mounted at /sys/kernel/security (as root: `mount -t \
         securityfs securityfs /sys/kernel/security`, then read lockdown)",
    )
}

/// Mounts securityfs on a fresh private directory, reads `lockdown`, unmounts.
fn read_lockdown_via_temp_mount() -> std::io::Result<Option<String>> {
    let dir = std::env::temp_dir().join(format!("notify-securityfs-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = tracefs::mount_pseudo("securityfs", &dir).map(|()| {
        let text = std::fs::read_to_string(dir.join("lockdown")).ok();
        if let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) {
            // SAFETY: valid NUL-terminated path.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
        text
    });
    let _ = std::fs::remove_dir(&dir);
    result
}

fn module_btf_list(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n != "vmlinux")
        .collect();
    v.sort();
    v
}

impl KernelInfo {
    /// Reads everything without changing the system.
    pub fn collect() -> Self {
        Self::collect_with(&CollectOptions::default())
    }

    /// Reads everything, mounting what `opts` allows.
    pub fn collect_with(opts: &CollectOptions) -> Self {
        let release = uname_release().unwrap_or_else(|| "unknown".into());

        let vmlinux = Path::new(btf::VMLINUX_BTF_PATH);
        let btf_vmlinux = match std::fs::metadata(vmlinux) {
            Ok(m) => Fact::new(
                true,
                format!("{} present ({} bytes)", vmlinux.display(), m.len()),
            ),
            Err(e) => Fact::new(
                false,
                format!(
                    "no BTF at {} ({e}): this kernel was built without CONFIG_DEBUG_INFO_BTF; \
                     notify needs it to find struct offsets and for fentry",
                    vmlinux.display()
                ),
            ),
        };
        let modules = module_btf_list(Path::new(btf::SYS_BTF_DIR));
        let module_btf = if modules.is_empty() && !Path::new("/proc/modules").exists() {
            Fact::new(
                modules,
                "no module BTF: the kernel has no module support (no /proc/modules), so XFS, \
                 DAX and pmem are built in and their types are in vmlinux",
            )
        } else if modules.is_empty() {
            Fact::new(
                modules,
                "no module BTF in /sys/kernel/btf: no modules with BTF are loaded (XFS/pmem may \
                 be built in: then their types are in vmlinux), or the kernel lacks \
                 CONFIG_DEBUG_INFO_BTF_MODULES",
            )
        } else {
            let reason = format!("module BTF for {} module(s)", modules.len());
            Fact::new(modules, reason)
        };

        let tracefs_found = if opts.mount_tracefs {
            tracefs::Tracefs::find_or_mount()
        } else {
            tracefs::Tracefs::find()
        };
        let (tracefs_fact, tracefs_root) = match tracefs_found {
            Ok(t) => {
                let root = t.root().to_path_buf();
                (
                    Fact::new(Some(root.clone()), format!("tracefs at {}", root.display())),
                    Some(root),
                )
            }
            Err(e) => (Fact::new(None, e.to_string()), None),
        };
        let kp = tracefs::KprobeSupport::detect_at(
            Path::new(tracefs::EVENT_SOURCE_DEVICES),
            tracefs_root.as_deref(),
        );
        let kprobes = Fact::new(kp.supported, kp.reason);

        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        let is_root = euid == 0;
        let root = Fact::new(
            is_root,
            if is_root {
                "running as root (euid 0)".to_string()
            } else {
                format!(
                    "running as euid {euid}: loading BPF and attaching probes needs root or \
                     CAP_BPF+CAP_PERFMON"
                )
            },
        );
        let bpf_capable = match cap_eff() {
            Some(mask) => {
                let admin = has_cap(mask, CAP_SYS_ADMIN);
                let ok = admin || (has_cap(mask, CAP_BPF) && has_cap(mask, CAP_PERFMON));
                Fact::new(
                    Some(ok),
                    if ok {
                        format!("CapEff {mask:#x} has CAP_SYS_ADMIN or CAP_BPF+CAP_PERFMON")
                    } else {
                        format!(
                            "CapEff {mask:#x} lacks CAP_BPF+CAP_PERFMON (and CAP_SYS_ADMIN): \
                             run as root or grant them (e.g. setcap cap_bpf,cap_perfmon+ep)"
                        )
                    },
                )
            }
            None => Fact::new(None, "cannot read CapEff from /proc/self/status"),
        };

        let lockdown = lockdown_fact(opts, is_root);

        let unprivileged_bpf_disabled = match read_sysctl(UNPRIVILEGED_BPF_DISABLED_PATH) {
            Ok(v) => {
                let what = match v {
                    0 => "unprivileged BPF allowed",
                    1 => "unprivileged BPF disabled until reboot",
                    2 => "unprivileged BPF disabled (an admin can re-enable it)",
                    _ => "unrecognised value",
                };
                let tail = if is_root {
                    "; irrelevant when running as root"
                } else if v != 0 {
                    "; notify must run as root or with CAP_BPF"
                } else {
                    ""
                };
                Fact::new(
                    Some(v),
                    format!("kernel.unprivileged_bpf_disabled={v}: {what}{tail}"),
                )
            }
            Err(e) => Fact::new(None, e),
        };
        let perf_event_paranoid = match read_sysctl(PERF_EVENT_PARANOID_PATH) {
            Ok(v) => {
                let tail = if is_root {
                    "irrelevant when running as root"
                } else if v > 1 {
                    "attaching kprobes/tracepoints through perf_event_open needs CAP_PERFMON or \
                     root"
                } else {
                    "unprivileged perf events allowed"
                };
                Fact::new(Some(v), format!("kernel.perf_event_paranoid={v}: {tail}"))
            }
            Err(e) => Fact::new(None, e),
        };

        Self {
            release,
            btf_vmlinux,
            module_btf,
            tracefs: tracefs_fact,
            kprobes,
            fentry: Fact::new(
                None,
                "not tested: the loader finds out by loading an fentry program (needs BTF and \
                 BPF trampolines; aya 0.14 attaches fentry only to vmlinux functions, not to \
                 modules)",
            ),
            root,
            bpf_capable,
            lockdown,
            unprivileged_bpf_disabled,
            perf_event_paranoid,
        }
    }

    /// Records the loader's fentry test result.
    pub fn set_fentry(&mut self, supported: bool, reason: impl Into<String>) {
        self.fentry = Fact::new(Some(supported), reason);
    }

    /// `(major, minor, patch)` of the release.
    pub fn version(&self) -> Option<(u32, u32, u32)> {
        parse_release(&self.release)
    }

    /// The report `notify doctor` prints, one check per line.
    pub fn checks(&self) -> Vec<Check> {
        fn yes_no(b: bool) -> String {
            if b { "yes" } else { "no" }.to_string()
        }
        fn opt<T: fmt::Debug>(v: &Option<T>) -> String {
            v.as_ref()
                .map_or_else(|| "unknown".to_string(), |v| format!("{v:?}"))
        }
        let bool_status = |b: bool, bad: Status| if b { Status::Ok } else { bad };
        vec![
            Check {
                name: "kernel",
                status: Status::Ok,
                value: self.release.clone(),
                reason: "uname -r".into(),
            },
            Check {
                name: "btf",
                status: bool_status(self.btf_vmlinux.value, Status::Fail),
                value: yes_no(self.btf_vmlinux.value),
                reason: self.btf_vmlinux.reason.clone(),
            },
            Check {
                name: "module-btf",
                status: Status::Ok,
                value: if self.module_btf.value.is_empty() {
                    "none".into()
                } else {
                    self.module_btf.value.join(",")
                },
                reason: self.module_btf.reason.clone(),
            },
            Check {
                name: "tracefs",
                status: bool_status(self.tracefs.value.is_some(), Status::Fail),
                value: self
                    .tracefs
                    .value
                    .as_ref()
                    .map_or_else(|| "missing".into(), |p| p.display().to_string()),
                reason: self.tracefs.reason.clone(),
            },
            Check {
                name: "kprobes",
                status: bool_status(self.kprobes.value, Status::Warn),
                value: yes_no(self.kprobes.value),
                reason: self.kprobes.reason.clone(),
            },
            Check {
                name: "fentry",
                status: match self.fentry.value {
                    Some(true) => Status::Ok,
                    Some(false) => Status::Warn,
                    None => Status::Unknown,
                },
                value: self.fentry.value.map_or_else(|| "untested".into(), yes_no),
                reason: self.fentry.reason.clone(),
            },
            Check {
                name: "root",
                status: bool_status(self.root.value, Status::Warn),
                value: yes_no(self.root.value),
                reason: self.root.reason.clone(),
            },
            Check {
                name: "bpf-capable",
                status: match self.bpf_capable.value {
                    Some(true) => Status::Ok,
                    Some(false) => Status::Fail,
                    None => Status::Unknown,
                },
                value: opt(&self.bpf_capable.value),
                reason: self.bpf_capable.reason.clone(),
            },
            Check {
                name: "lockdown",
                status: match self.lockdown.value {
                    Some(Lockdown::Confidentiality) => Status::Fail,
                    Some(_) => Status::Ok,
                    None => Status::Unknown,
                },
                value: opt(&self.lockdown.value).to_lowercase(),
                reason: self.lockdown.reason.clone(),
            },
            Check {
                name: "unprivileged_bpf_disabled",
                status: if self.unprivileged_bpf_disabled.value.is_some() {
                    Status::Ok
                } else {
                    Status::Unknown
                },
                value: opt(&self.unprivileged_bpf_disabled.value),
                reason: self.unprivileged_bpf_disabled.reason.clone(),
            },
            Check {
                name: "perf_event_paranoid",
                status: if self.perf_event_paranoid.value.is_some() {
                    Status::Ok
                } else {
                    Status::Unknown
                },
                value: opt(&self.perf_event_paranoid.value),
                reason: self.perf_event_paranoid.reason.clone(),
            },
        ]
    }
}

impl fmt::Display for KernelInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.checks() {
            let s = match c.status {
                Status::Ok => "ok",
                Status::Warn => "WARN",
                Status::Fail => "FAIL",
                Status::Unknown => "??",
            };
            writeln!(f, "{s:>4} {:<26} {:<10} {}", c.name, c.value, c.reason)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lockdown() {
        assert_eq!(
            Lockdown::parse("none [integrity] confidentiality\n"),
            Some(Lockdown::Integrity)
        );
        assert_eq!(
            Lockdown::parse("[none] integrity confidentiality"),
            Some(Lockdown::None)
        );
        assert_eq!(
            Lockdown::parse("none integrity [confidentiality]"),
            Some(Lockdown::Confidentiality)
        );
        assert_eq!(Lockdown::parse("none integrity"), None);
        assert_eq!(Lockdown::parse("[bogus]"), None);
        assert_eq!(Lockdown::parse(""), None);
    }

    #[test]
    fn parses_releases() {
        assert_eq!(parse_release("6.18.44-fc-v669"), Some((6, 18, 44)));
        assert_eq!(parse_release("6.1.0-56-amd64"), Some((6, 1, 0)));
        assert_eq!(parse_release("6.12"), Some((6, 12, 0)));
        assert_eq!(parse_release("garbage"), None);
        assert_eq!(parse_release(""), None);
    }

    #[test]
    fn parses_caps() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001fffeffffff\n";
        let m = parse_cap_eff(status).unwrap();
        assert!(has_cap(m, CAP_SYS_ADMIN) && has_cap(m, CAP_BPF) && has_cap(m, CAP_PERFMON));
        assert!(!has_cap(m, 24));
        assert_eq!(parse_cap_eff("CapEff:\tzz\n"), None);
        assert_eq!(parse_cap_eff(""), None);
    }

    #[test]
    fn fentry_is_filled_by_the_loader() {
        let mut k = KernelInfo::collect();
        assert_eq!(k.fentry.value, None);
        let c = k.checks();
        assert_eq!(
            c.iter().find(|c| c.name == "fentry").unwrap().status,
            Status::Unknown
        );
        k.set_fentry(false, "fentry load failed: EINVAL");
        assert_eq!(k.fentry.value, Some(false));
        let line = k.to_string();
        assert!(line.contains("EINVAL"), "{line}");
    }
}
