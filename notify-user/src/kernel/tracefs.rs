//! tracefs: tracepoint existence and formats, ftrace's list of hookable functions, and whether
//! kprobes can be attached.
//!
//! aya 0.14 looks for tracefs at `/sys/kernel/tracing` then `/sys/kernel/debug/tracing` (a
//! non-empty directory), and attaches kprobes on kernels >= 4.17 only through the perf `kprobe`
//! PMU (`/sys/bus/event_source/devices/kprobe/type`), never through `kprobe_events`. So "kprobes
//! supported" here means: that PMU exists.

use std::{
    collections::BTreeMap,
    collections::HashMap,
    fmt, io,
    path::{Path, PathBuf},
};

/// Where tracefs normally lives.
pub const TRACEFS_PATH: &str = "/sys/kernel/tracing";
/// Where it lives when only debugfs is mounted.
pub const DEBUGFS_TRACING_PATH: &str = "/sys/kernel/debug/tracing";
/// perf event sources (PMUs) in sysfs.
pub const EVENT_SOURCE_DEVICES: &str = "/sys/bus/event_source/devices";

/// Errors from tracefs.
#[derive(Debug)]
pub enum TracefsError {
    /// Neither location holds a mounted tracefs.
    NotMounted { tried: Vec<PathBuf>, detail: String },
    /// Mounting failed.
    MountFailed { path: PathBuf, source: io::Error },
    /// A tracepoint does not exist.
    NoTracepoint {
        group: String,
        name: String,
        root: PathBuf,
    },
    /// A tracepoint has no such field.
    NoField {
        event: String,
        field: String,
        fields: Vec<String>,
    },
    /// Reading a file failed.
    Io { path: PathBuf, source: io::Error },
    /// A format file could not be parsed.
    BadFormat { path: PathBuf, detail: String },
}

impl fmt::Display for TracefsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotMounted { tried, detail } => write!(
                f,
                "tracefs is not mounted (tried {tried:?}){detail}: as root, run `mount -t \
                 tracefs nodev /sys/kernel/tracing`; a kernel without CONFIG_TRACING has none"
            ),
            Self::MountFailed { path, source } => write!(
                f,
                "cannot mount tracefs on {}: {source} (needs root/CAP_SYS_ADMIN and \
                 CONFIG_TRACING)",
                path.display()
            ),
            Self::NoTracepoint { group, name, root } => write!(
                f,
                "no tracepoint {group}:{name} (no {}/events/{group}/{name}): this kernel does \
                 not define it (config option off, renamed, or its module not loaded)",
                root.display()
            ),
            Self::NoField {
                event,
                field,
                fields,
            } => write!(
                f,
                "tracepoint {event} has no field `{field}` (fields: {}): its layout changed in \
                 this kernel version",
                fields.join(", ")
            ),
            Self::Io { path, source } if source.kind() == io::ErrorKind::PermissionDenied => {
                write!(
                    f,
                    "permission denied reading {}: {source}; tracefs needs root, and if root \
                     is refused too, kernel lockdown or a security module hides this file",
                    path.display()
                )
            }
            Self::Io { path, source } => write!(f, "cannot read {}: {source}", path.display()),
            Self::BadFormat { path, detail } => {
                write!(f, "cannot parse {}: {detail}", path.display())
            }
        }
    }
}

impl std::error::Error for TracefsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::MountFailed { source, .. } | Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// One field of a tracepoint's record, from its `format` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracepointField {
    pub name: String,
    /// The C declaration without the name, e.g. `unsigned long`, `char[16]`,
    /// `__data_loc char[]`.
    pub c_type: String,
    pub offset: u32,
    pub size: u32,
    pub signed: bool,
    /// `common_*` header fields (type, flags, preempt count, pid).
    pub common: bool,
    /// `__data_loc` fields hold `(len << 16) | offset` of dynamic data, not the data.
    pub data_loc: bool,
    /// Element count for fixed arrays (`char comm[16]` -> 16).
    pub array_len: Option<u32>,
}

/// A parsed `events/<group>/<name>/format` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracepointFormat {
    pub group: String,
    pub name: String,
    /// The event id (for perf_event_open).
    pub id: Option<u32>,
    pub fields: Vec<TracepointField>,
    pub print_fmt: Option<String>,
}

impl TracepointFormat {
    /// Parses the text of a format file.
    pub fn parse(group: &str, name: &str, text: &str) -> Result<Self, String> {
        let mut fields = Vec::new();
        let mut id = None;
        let mut print_fmt = None;
        let mut common = true;
        let mut seen_format = false;
        for line in text.lines() {
            let trimmed = line.trim();
            if let Some(rest) = trimmed.strip_prefix("ID:") {
                id = rest.trim().parse().ok();
            } else if trimmed == "format:" {
                seen_format = true;
            } else if let Some(rest) = trimmed.strip_prefix("print fmt:") {
                print_fmt = Some(rest.trim().to_string());
            } else if trimmed.is_empty() {
                // The blank line separates common fields from the event's own.
                if !fields.is_empty() {
                    common = false;
                }
            } else if trimmed.starts_with("field:") {
                let mut field = parse_field(trimmed).ok_or_else(|| format!("bad line `{line}`"))?;
                field.common = common && field.name.starts_with("common_");
                fields.push(field);
            }
        }
        if !seen_format && fields.is_empty() {
            return Err("no `format:` section".into());
        }
        Ok(Self {
            group: group.into(),
            name: name.into(),
            id,
            fields,
            print_fmt,
        })
    }

    /// The field with this name.
    pub fn field(&self, name: &str) -> Option<&TracepointField> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Offset of a field in the raw record (what a BPF tracepoint program reads at ctx+offset).
    pub fn field_offset(&self, name: &str) -> Result<u32, TracefsError> {
        self.field(name)
            .map(|f| f.offset)
            .ok_or_else(|| TracefsError::NoField {
                event: format!("{}:{}", self.group, self.name),
                field: name.into(),
                fields: self.fields.iter().map(|f| f.name.clone()).collect(),
            })
    }
}

impl TracepointFormat {
    /// The value -> name table of a `__print_symbolic(REC->field, { v, "name" }, ...)` in the
    /// print format, keyed by value (tables can skip values: 6.12's page types skip 2, so a
    /// position is not a value). None when the format has no such table or a key is not a
    /// number (an enum the kernel did not resolve to its value).
    pub fn symbols(&self, field: &str) -> Option<BTreeMap<i64, String>> {
        let fmt = self.print_fmt.as_deref()?;
        let open = format!("__print_symbolic(REC->{field},");
        let start = fmt.find(&open)? + open.len();
        let mut map = BTreeMap::new();
        let mut rest = &fmt[start..];
        loop {
            rest = rest.trim_start_matches([' ', ',']);
            if rest.starts_with(')') || rest.is_empty() {
                break;
            }
            let body = rest.strip_prefix('{')?;
            let close = body.find('}')?;
            let (key, name) = body[..close].split_once(',')?;
            let key = key.trim();
            let value = match key.strip_prefix("0x") {
                Some(h) => i64::from_str_radix(h, 16).ok()?,
                None => key.parse().ok()?,
            };
            let name = name.trim().strip_prefix('"')?.strip_suffix('"')?;
            map.insert(value, name.to_string());
            rest = &body[close + 1..];
        }
        (!map.is_empty()).then_some(map)
    }
}

/// `field:unsigned char comm[16];\toffset:8;\tsize:16;\tsigned:0;`
fn parse_field(line: &str) -> Option<TracepointField> {
    let mut decl = None;
    let (mut offset, mut size, mut signed) = (None, None, None);
    for part in line.split(';') {
        let part = part.trim();
        if let Some(d) = part.strip_prefix("field:") {
            decl = Some(d.trim());
        } else if let Some(v) = part.strip_prefix("offset:") {
            offset = v.trim().parse::<u32>().ok();
        } else if let Some(v) = part.strip_prefix("size:") {
            size = v.trim().parse::<u32>().ok();
        } else if let Some(v) = part.strip_prefix("signed:") {
            signed = Some(v.trim() == "1");
        }
    }
    let decl = decl?;
    // Split off a trailing array suffix: `comm[16]`, `scontext` of `char[]` style types.
    let (head, array) = match decl.rfind('[') {
        Some(i) if decl.ends_with(']') && !decl[..i].ends_with(char::is_whitespace) => {
            (&decl[..i], Some(&decl[i..]))
        }
        _ => (decl, None),
    };
    let split = head.rfind(|c: char| c.is_ascii_whitespace() || c == '*')?;
    let name = head[split + 1..].trim();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    let mut c_type = head[..=split].trim().to_string();
    let mut array_len = None;
    if let Some(a) = array {
        array_len = a[1..a.len() - 1].trim().parse().ok();
        c_type.push_str(a);
    }
    Some(TracepointField {
        name: name.to_string(),
        data_loc: c_type.contains("__data_loc"),
        c_type,
        offset: offset?,
        size: size?,
        signed: signed.unwrap_or(false),
        common: false,
        array_len,
    })
}

/// ftrace's `available_filter_functions`: what ftrace (and fentry/kprobe via ftrace) can hook.
#[derive(Debug, Clone, Default)]
pub struct FilterFunctions {
    /// Name -> modules (`None` for vmlinux); a name can appear more than once.
    functions: HashMap<String, Vec<Option<String>>>,
}

impl FilterFunctions {
    /// Parses `name` / `name [module]` lines.
    pub fn parse(text: &str) -> Self {
        let mut functions: HashMap<String, Vec<Option<String>>> = HashMap::new();
        for line in text.lines() {
            let mut parts = line.split_whitespace();
            let Some(name) = parts.next() else { continue };
            let module = parts
                .next()
                .and_then(|m| m.strip_prefix('[')?.strip_suffix(']'))
                .map(str::to_string);
            functions.entry(name.to_string()).or_default().push(module);
        }
        Self { functions }
    }

    /// Whether ftrace can hook `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.functions.contains_key(name)
    }

    /// `None`: not hookable; `Some(None)`: vmlinux; `Some(Some(m))`: module `m`.
    pub fn module_of(&self, name: &str) -> Option<Option<&str>> {
        self.functions.get(name)?.first().map(|m| m.as_deref())
    }

    /// How many entries share this name (several static functions can).
    pub fn count(&self, name: &str) -> usize {
        self.functions.get(name).map_or(0, Vec::len)
    }

    pub fn len(&self) -> usize {
        self.functions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.functions.is_empty()
    }
}

/// Whether kprobes can be attached (the way aya 0.14 does it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KprobeSupport {
    pub supported: bool,
    /// `/sys/bus/event_source/devices/kprobe/type` exists (perf kprobe PMU, what aya uses).
    pub pmu: bool,
    /// `<tracefs>/kprobe_events` exists (legacy text interface).
    pub kprobe_events: bool,
    /// One sentence for `notify doctor`.
    pub reason: String,
}

impl KprobeSupport {
    /// Decides from a PMU directory (`/sys/bus/event_source/devices`) and an optional tracefs.
    pub fn detect_at(event_source_devices: &Path, tracefs: Option<&Path>) -> Self {
        let pmu_type = event_source_devices.join("kprobe").join("type");
        let pmu = pmu_type.is_file();
        let kprobe_events = tracefs.is_some_and(|t| t.join("kprobe_events").is_file());
        let reason = match (pmu, kprobe_events) {
            (true, _) => format!(
                "kprobes supported: perf kprobe PMU present ({})",
                pmu_type.display()
            ),
            (false, true) => format!(
                "kprobes unsupported for aya: {} is missing (kernel < 4.17?) although \
                 kprobe_events exists in tracefs; aya 0.14 only attaches through the PMU on \
                 kernels >= 4.17",
                pmu_type.display()
            ),
            (false, false) => format!(
                "kprobes unsupported: no perf kprobe PMU ({} missing) and no kprobe_events in \
                 tracefs{}: the kernel was built without CONFIG_KPROBES/CONFIG_KPROBE_EVENTS; \
                 use tracepoints or fentry, or boot a kernel with kprobes",
                pmu_type.display(),
                if tracefs.is_none() {
                    " (tracefs not found)"
                } else {
                    ""
                }
            ),
        };
        Self {
            supported: pmu,
            pmu,
            kprobe_events,
            reason,
        }
    }
}

/// A located tracefs mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracefs {
    root: PathBuf,
}

fn is_tracefs_dir(p: &Path) -> bool {
    // Same test as aya: the directory exists and is not empty (an unmounted
    // /sys/kernel/tracing is an empty directory).
    std::fs::read_dir(p).is_ok_and(|mut d| d.next().is_some()) && p.join("events").is_dir()
}

impl Tracefs {
    /// Uses `root` as tracefs without checking (tests, unusual mounts).
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Finds a mounted tracefs at `/sys/kernel/tracing` or `/sys/kernel/debug/tracing`.
    pub fn find() -> Result<Self, TracefsError> {
        let tried = [TRACEFS_PATH, DEBUGFS_TRACING_PATH].map(PathBuf::from);
        for p in &tried {
            if is_tracefs_dir(p) {
                return Ok(Self::at(p.clone()));
            }
        }
        Err(TracefsError::NotMounted {
            tried: tried.to_vec(),
            detail: String::new(),
        })
    }

    /// Like [`Tracefs::find`], but mounts tracefs on `/sys/kernel/tracing` when it is absent
    /// and we are root (aya looks only at the two standard places).
    pub fn find_or_mount() -> Result<Self, TracefsError> {
        if let Ok(t) = Self::find() {
            return Ok(t);
        }
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(TracefsError::NotMounted {
                tried: vec![TRACEFS_PATH.into(), DEBUGFS_TRACING_PATH.into()],
                detail: " and not running as root, so it cannot be mounted".into(),
            });
        }
        let path = PathBuf::from(TRACEFS_PATH);
        mount_pseudo("tracefs", &path).map_err(|source| TracefsError::MountFailed {
            path: path.clone(),
            source,
        })?;
        if is_tracefs_dir(&path) {
            Ok(Self::at(path))
        } else {
            Err(TracefsError::NotMounted {
                tried: vec![path],
                detail: " (mounted, but it has no events directory)".into(),
            })
        }
    }

    /// The mount point.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn event_dir(&self, group: &str, name: &str) -> Option<PathBuf> {
        let ok = |s: &str| {
            !s.is_empty() && s != "." && s != ".." && !s.contains('/') && !s.contains('\0')
        };
        (ok(group) && ok(name)).then(|| self.root.join("events").join(group).join(name))
    }

    /// Whether tracepoint `group:name` exists.
    pub fn has_tracepoint(&self, group: &str, name: &str) -> bool {
        self.event_dir(group, name).is_some_and(|d| d.is_dir())
    }

    /// The first of several `(group, name)` candidates that exists (e.g.
    /// `memory_failure_event` moved between `ras` and `memory_failure`).
    pub fn first_tracepoint<'a>(
        &self,
        candidates: &[(&'a str, &'a str)],
    ) -> Option<(&'a str, &'a str)> {
        candidates
            .iter()
            .copied()
            .find(|(g, n)| self.has_tracepoint(g, n))
    }

    /// Parses `events/<group>/<name>/format`.
    pub fn tracepoint_format(
        &self,
        group: &str,
        name: &str,
    ) -> Result<TracepointFormat, TracefsError> {
        let no_tp = || TracefsError::NoTracepoint {
            group: group.into(),
            name: name.into(),
            root: self.root.clone(),
        };
        let dir = self.event_dir(group, name).ok_or_else(no_tp)?;
        if !dir.is_dir() {
            return Err(no_tp());
        }
        let path = dir.join("format");
        let text = std::fs::read_to_string(&path).map_err(|source| TracefsError::Io {
            path: path.clone(),
            source,
        })?;
        TracepointFormat::parse(group, name, &text)
            .map_err(|detail| TracefsError::BadFormat { path, detail })
    }

    /// Offset of `field` in tracepoint `group:name`'s record.
    pub fn field_offset(&self, group: &str, name: &str, field: &str) -> Result<u32, TracefsError> {
        self.tracepoint_format(group, name)?.field_offset(field)
    }

    /// Reads `available_filter_functions`. Root only; refused even to root under lockdown
    /// "confidentiality" or by some security modules (as on this project's firecracker host).
    pub fn available_filter_functions(&self) -> Result<FilterFunctions, TracefsError> {
        let path = self.root.join("available_filter_functions");
        let text =
            std::fs::read_to_string(&path).map_err(|source| TracefsError::Io { path, source })?;
        Ok(FilterFunctions::parse(&text))
    }

    /// Whether kprobes can be attached, judged from sysfs and this tracefs.
    pub fn kprobe_support(&self) -> KprobeSupport {
        KprobeSupport::detect_at(Path::new(EVENT_SOURCE_DEVICES), Some(&self.root))
    }
}

/// Kprobe support without a tracefs handle (tracefs looked up, never mounted).
pub fn kprobe_support() -> KprobeSupport {
    let tracefs = Tracefs::find().ok();
    KprobeSupport::detect_at(
        Path::new(EVENT_SOURCE_DEVICES),
        tracefs.as_ref().map(Tracefs::root),
    )
}

/// `mount -t <fstype> nodev <path>`.
pub(crate) fn mount_pseudo(fstype: &str, path: &Path) -> io::Result<()> {
    use std::{ffi::CString, os::unix::ffi::OsStrExt};
    let target = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let fstype = CString::new(fstype).map_err(io::Error::other)?;
    let source = CString::new("nodev").map_err(io::Error::other)?;
    // SAFETY: all pointers are valid NUL-terminated strings that outlive the call; data is null.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYS_EXIT_MOUNT: &str = "name: sys_exit_mount
ID: 939
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
\tfield:long ret;\toffset:16;\tsize:8;\tsigned:1;

print fmt: \"0x%lx\", REC->ret
";

    #[test]
    fn parses_format_files() {
        let f = TracepointFormat::parse("syscalls", "sys_exit_mount", SYS_EXIT_MOUNT).unwrap();
        assert_eq!(f.id, Some(939));
        assert_eq!(f.fields.len(), 6);
        assert_eq!(f.field_offset("ret").unwrap(), 16);
        let ret = f.field("ret").unwrap();
        assert!(ret.signed && ret.size == 8 && !ret.common && ret.c_type == "long");
        assert!(f.field("common_pid").unwrap().common);
        assert!(!f.field("__syscall_nr").unwrap().common);
        assert_eq!(f.print_fmt.as_deref(), Some("\"0x%lx\", REC->ret"));
        let e = f.field_offset("nope").unwrap_err();
        assert!(e.to_string().contains("__syscall_nr"), "{e}");
    }

    #[test]
    fn parses_arrays_pointers_and_data_loc() {
        let text = "format:
\tfield:char comm[16];\toffset:8;\tsize:16;\tsigned:0;
\tfield:__data_loc char[] scontext;\toffset:24;\tsize:4;\tsigned:0;
\tfield:const char * name;\toffset:32;\tsize:8;\tsigned:0;
\tfield:struct page *page;\toffset:40;\tsize:8;\tsigned:0;
\tfield:unsigned long pfn;\toffset:48;\tsize:8;\tsigned:0;
";
        let f = TracepointFormat::parse("g", "n", text).unwrap();
        let comm = f.field("comm").unwrap();
        assert_eq!(
            (comm.c_type.as_str(), comm.array_len),
            ("char[16]", Some(16))
        );
        let sc = f.field("scontext").unwrap();
        assert!(sc.data_loc && sc.offset == 24 && sc.c_type == "__data_loc char[]");
        assert_eq!(f.field("name").unwrap().c_type, "const char *");
        assert_eq!(f.field("page").unwrap().c_type, "struct page *");
        assert_eq!(f.field_offset("pfn").unwrap(), 48);
    }

    #[test]
    fn bad_formats_are_errors_not_panics() {
        assert!(TracepointFormat::parse("g", "n", "").is_err());
        assert!(TracepointFormat::parse("g", "n", "format:\n\tfield:int;\toffset:0;\n").is_err());
        assert!(
            TracepointFormat::parse("g", "n", "format:\n\tfield:int x;\toffset:q;\tsize:4;\n")
                .is_err()
        );
        for s in [
            "field:",
            "field:[]",
            "field:a[",
            "field:]",
            "field: *;offset:1;size:1;",
            "field:x [3];",
        ] {
            let _ = parse_field(s);
        }
        let bytes: Vec<u8> = (0..2048u32).map(|i| (i * 31 % 127) as u8).collect();
        let _ = TracepointFormat::parse("g", "n", &String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn filter_functions_parse() {
        let f = FilterFunctions::parse("a\nb [xfs]\nb [other]\n\nc\n");
        assert!(f.contains("a") && f.contains("b") && !f.contains("d"));
        assert_eq!(f.module_of("a"), Some(None));
        assert_eq!(f.module_of("b"), Some(Some("xfs")));
        assert_eq!(f.count("b"), 2);
        assert_eq!(f.len(), 3);
    }

    #[test]
    fn kprobe_support_decision() {
        let dir = std::env::temp_dir().join(format!("notify-kprobe-test-{}", std::process::id()));
        let devices = dir.join("devices");
        let tracefs = dir.join("tracing");
        std::fs::create_dir_all(devices.join("tracepoint")).unwrap();
        std::fs::create_dir_all(&tracefs).unwrap();
        let s = KprobeSupport::detect_at(&devices, Some(&tracefs));
        assert!(
            !s.supported && s.reason.contains("CONFIG_KPROBES"),
            "{}",
            s.reason
        );
        std::fs::write(tracefs.join("kprobe_events"), "").unwrap();
        let s = KprobeSupport::detect_at(&devices, Some(&tracefs));
        assert!(
            !s.supported && s.kprobe_events && s.reason.contains("PMU"),
            "{}",
            s.reason
        );
        std::fs::create_dir_all(devices.join("kprobe")).unwrap();
        std::fs::write(devices.join("kprobe/type"), "6\n").unwrap();
        let s = KprobeSupport::detect_at(&devices, None);
        assert!(s.supported && s.pmu, "{}", s.reason);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The memory-failure tracepoint is found in either group: `ras` (every packaged kernel
    /// so far) or `memory_failure` (where a 2025 patch moves it), and `ras` first when both.
    #[test]
    fn the_memory_failure_tracepoint_is_found_in_either_group() {
        let root = std::env::temp_dir().join(format!("notify-tracefs-mf-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let t = Tracefs::at(&root);
        let cands = [
            ("ras", "memory_failure_event"),
            ("memory_failure", "memory_failure_event"),
        ];
        assert_eq!(t.first_tracepoint(&cands), None);
        std::fs::create_dir_all(root.join("events/memory_failure/memory_failure_event")).unwrap();
        assert_eq!(
            t.first_tracepoint(&cands),
            Some(("memory_failure", "memory_failure_event"))
        );
        std::fs::create_dir_all(root.join("events/ras/memory_failure_event")).unwrap();
        assert_eq!(
            t.first_tracepoint(&cands),
            Some(("ras", "memory_failure_event"))
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn event_names_cannot_escape() {
        let t = Tracefs::at("/sys/kernel/tracing");
        assert!(!t.has_tracepoint("..", ".."));
        assert!(!t.has_tracepoint("syscalls/../..", "x"));
        assert!(matches!(
            t.tracepoint_format("../../..", "etc"),
            Err(TracefsError::NoTracepoint { .. })
        ));
    }

    /// The 6.12 `ras:memory_failure_event` format as Debian's 6.12.117 headers produce it (its
    /// page-type table skips value 2).
    fn mf_format_612() -> String {
        [
            "name: memory_failure_event\nID: 1234\nformat:\n",
            "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n",
            "\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n",
            "\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n",
            "\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n",
            "\tfield:unsigned long pfn;\toffset:8;\tsize:8;\tsigned:0;\n",
            "\tfield:int type;\toffset:16;\tsize:4;\tsigned:1;\n",
            "\tfield:int result;\toffset:20;\tsize:4;\tsigned:1;\n\n",
            PRINT_FMT_612,
            "\n",
        ]
        .concat()
    }
    const PRINT_FMT_612: &str = r#"print fmt: "pfn %#lx: recovery action for %s: %s", REC->pfn, __print_symbolic(REC->type, { 0, "reserved kernel page" }, { 1, "high-order kernel page" }, { 3, "huge page" }, { 4, "free huge page" }, { 5, "get hwpoison page" }, { 6, "unmapping failed page" }, { 7, "dirty swapcache page" }, { 8, "clean swapcache page" }, { 9, "dirty mlocked LRU page" }, { 10, "clean mlocked LRU page" }, { 11, "dirty unevictable LRU page" }, { 12, "clean unevictable LRU page" }, { 13, "dirty LRU page" }, { 14, "clean LRU page" }, { 15, "already truncated LRU page" }, { 16, "free buddy page" }, { 17, "dax page" }, { 18, "unsplit thp" }, { 19, "already poisoned" }, { 20, "unknown page" }), __print_symbolic(REC->result, { 0, "Ignored" }, { 1, "Failed" }, { 2, "Delayed" }, { 3, "Recovered" })"#;

    #[test]
    fn symbol_tables_are_keyed_by_value() {
        let f = TracepointFormat::parse("ras", "memory_failure_event", &mf_format_612()).unwrap();
        let types = f.symbols("type").expect("a page type table");
        assert_eq!(types.get(&17).map(String::as_str), Some("dax page"));
        assert_eq!(types.get(&3).map(String::as_str), Some("huge page"));
        assert!(!types.contains_key(&2), "6.12 does not print value 2");
        let results = f.symbols("result").expect("a result table");
        assert_eq!(results.get(&1).map(String::as_str), Some("Failed"));
        assert_eq!(results.get(&3).map(String::as_str), Some("Recovered"));
        assert!(f.symbols("pfn").is_none());
        // An unresolved enum name instead of a number: no table rather than a wrong one.
        let raw = mf_format_612().replace("{ 17,", "{ MF_MSG_DAX,");
        let f = TracepointFormat::parse("ras", "memory_failure_event", &raw).unwrap();
        assert!(f.symbols("type").is_none());
    }
}
