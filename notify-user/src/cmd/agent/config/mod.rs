//! `notify agent` configuration: a flat TOML file (`--config`, default /etc/notify/agent.toml
//! when it exists) under the command-line flags. Precedence: built-in defaults, then the file,
//! then flags (a flag given on the command line always wins, also across SIGHUP reloads).
//!
//! Every key is the long flag's name with `_` for `-` (lists take the plural: `--allow-pid` ->
//! `allow_pids`). Errors name the file, the line and column, the key, and the fix.

use std::{
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use toml::de::{DeTable, DeValue};

use notify_model::decision::Policy;

use crate::{
    enforce::{self, Allowlist},
    export::sink::Format,
    probe::AttachMode,
};

/// Where the agent looks for its configuration when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "/etc/notify/agent.toml";
pub const DEFAULT_JOURNAL: &str = "/var/lib/notify/journal";
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9464";
pub const DEFAULT_ROTATE_SIZE: u64 = 64 << 20;
pub const DEFAULT_ROTATE_KEEP: usize = 5;
/// Longest `comm` the kernel keeps (TASK_COMM_LEN - 1).
const COMM_MAX: usize = 15;

/// One configuration key.
#[derive(Debug)]
pub struct Key {
    pub name: &'static str,
    /// The command-line flag that overrides it.
    pub flag: &'static str,
    /// Whether a SIGHUP reload applies a change; otherwise it needs a restart.
    pub live: bool,
    pub help: &'static str,
}

/// Every key: the single list the parser, the reload and docs/AGENT.md follow.
pub const KEYS: &[Key] = &[
    Key {
        name: "format",
        flag: "--format",
        live: false,
        help: "\"json\" (JSON lines, docs/EVENTS.md) or \"table\"",
    },
    Key {
        name: "attach",
        flag: "--attach",
        live: false,
        help: "\"auto\", \"fentry\" or \"kprobe\"",
    },
    Key {
        name: "journal",
        flag: "--journal",
        live: false,
        help: "absolute path of the journal of dropped notifications",
    },
    Key {
        name: "verbose",
        flag: "--verbose",
        live: false,
        help: "true: also write the derived holder_state and notification events",
    },
    Key {
        name: "output",
        flag: "--output",
        live: false,
        help: "file for the event log (\"-\" or absent: standard output)",
    },
    Key {
        name: "rotate_size",
        flag: "--rotate-size",
        live: true,
        help: "rotate the output file at this size: bytes or \"64M\"-style; 0 never rotates",
    },
    Key {
        name: "rotate_keep",
        flag: "--rotate-keep",
        live: true,
        help: "rotated files kept (FILE.1 ... FILE.N), 0 to 1000",
    },
    Key {
        name: "badblocks_rescan",
        flag: "--badblocks-rescan",
        live: false,
        help: "seconds between extra reads of the pmem bad-block lists, for lists written by \
               hand (the driver's own changes are waited for; additions are never signalled); \
               0: none",
    },
    Key {
        name: "ring_size",
        flag: "--ring-size",
        live: false,
        help: "size of the probes' ring buffer: a power of two from 64K to 1G, bytes or \
               \"1M\"-style (default 1M; each record ~112 bytes; twice the size in RSS while read)",
    },
    Key {
        name: "metrics_addr",
        flag: "--metrics-addr",
        live: false,
        help: "IP:PORT of the Prometheus endpoint, or \"off\"",
    },
    Key {
        name: "policy",
        flag: "--policy",
        live: true,
        help: "\"report\", \"sigbus\" or \"sigkill\"",
    },
    Key {
        name: "dry_run",
        flag: "--dry-run",
        live: true,
        help: "true: decide and log, send no signal",
    },
    Key {
        name: "allow_pids",
        flag: "--allow-pid",
        live: true,
        help: "pids never signalled, e.g. [1234]",
    },
    Key {
        name: "allow_comms",
        flag: "--allow-comm",
        live: true,
        help: "process names (comm, at most 15 bytes) never signalled",
    },
    Key {
        name: "allow_cgroups",
        flag: "--allow-cgroup",
        live: true,
        help: "cgroup path prefixes never signalled, e.g. [\"/system.slice/db.service\"]",
    },
];

pub fn key(name: &str) -> &'static Key {
    KEYS.iter().find(|k| k.name == name).expect("known key")
}

/// Where the Prometheus endpoint listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricsAddr {
    Off,
    At(SocketAddr),
}

impl fmt::Display for MetricsAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricsAddr::Off => f.write_str("off"),
            MetricsAddr::At(a) => write!(f, "{a}"),
        }
    }
}

/// One layer of settings (the file, or the flags): `None` where that layer says nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Layer {
    pub format: Option<Format>,
    pub attach: Option<AttachMode>,
    pub journal: Option<PathBuf>,
    pub verbose: Option<bool>,
    /// `Some(None)`: standard output, said explicitly.
    pub output: Option<Option<PathBuf>>,
    pub rotate_size: Option<u64>,
    pub rotate_keep: Option<usize>,
    pub badblocks_rescan: Option<u64>,
    pub ring_size: Option<u32>,
    pub metrics_addr: Option<MetricsAddr>,
    pub policy: Option<Policy>,
    pub dry_run: Option<bool>,
    pub allow_pids: Option<Vec<i32>>,
    pub allow_comms: Option<Vec<String>>,
    pub allow_cgroups: Option<Vec<String>>,
}

impl Layer {
    /// Names of the keys this layer sets.
    pub fn keys(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        macro_rules! k {
            ($($f:ident),*) => { $( if self.$f.is_some() { v.push(stringify!($f)); } )* };
        }
        k!(
            format,
            attach,
            journal,
            verbose,
            output,
            rotate_size,
            rotate_keep,
            badblocks_rescan,
            ring_size,
            metrics_addr,
            policy,
            dry_run,
            allow_pids,
            allow_comms,
            allow_cgroups
        );
        v
    }
}

/// The agent's effective settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub format: Format,
    pub attach: AttachMode,
    pub journal: PathBuf,
    pub verbose: bool,
    pub output: Option<PathBuf>,
    pub rotate_size: u64,
    pub rotate_keep: usize,
    /// None: off.
    pub badblocks_rescan: Option<Duration>,
    /// Bytes of the probes' ring buffer.
    pub ring_size: u32,
    pub metrics_addr: MetricsAddr,
    pub enforce: enforce::Config,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            format: Format::Table,
            attach: AttachMode::Auto,
            journal: PathBuf::from(DEFAULT_JOURNAL),
            verbose: false,
            output: None,
            rotate_size: DEFAULT_ROTATE_SIZE,
            rotate_keep: DEFAULT_ROTATE_KEEP,
            // No timer: the agent waits for the pmem driver's notification of a changed list
            // (probe/bbnotify.rs), so an idle agent is never woken. A timer is only for lists
            // written by hand, which the driver does not announce.
            badblocks_rescan: None,
            ring_size: notify_common::RING_BYTES,
            metrics_addr: MetricsAddr::At(DEFAULT_METRICS_ADDR.parse().unwrap()),
            enforce: enforce::Config::default(),
        }
    }
}

impl Settings {
    /// Defaults, then each layer in order (later layers win).
    pub fn merge(layers: &[&Layer]) -> Settings {
        let mut s = Settings::default();
        for l in layers {
            macro_rules! set {
                ($($f:ident),*) => { $( if let Some(v) = &l.$f { s.$f = v.clone(); } )* };
            }
            set!(
                format,
                attach,
                journal,
                verbose,
                output,
                rotate_size,
                rotate_keep,
                ring_size,
                metrics_addr
            );
            if let Some(n) = l.badblocks_rescan {
                s.badblocks_rescan = (n > 0).then(|| Duration::from_secs(n));
            }
            if let Some(p) = l.policy {
                s.enforce.policy = p;
            }
            if let Some(d) = l.dry_run {
                s.enforce.dry_run = d;
            }
            if let Some(v) = &l.allow_pids {
                s.enforce.allow.pids = v.clone();
            }
            if let Some(v) = &l.allow_comms {
                s.enforce.allow.comms = v.clone();
            }
            if let Some(v) = &l.allow_cgroups {
                s.enforce.allow.cgroup_prefixes = v.clone();
            }
        }
        s
    }

    /// Keys whose value differs between `self` and `new`.
    pub fn changed(&self, new: &Settings) -> Vec<&'static str> {
        let mut v = Vec::new();
        macro_rules! c {
            ($($f:ident),*) => { $( if self.$f != new.$f { v.push(stringify!($f)); } )* };
        }
        c!(
            format,
            attach,
            journal,
            verbose,
            output,
            rotate_size,
            rotate_keep,
            badblocks_rescan,
            ring_size,
            metrics_addr
        );
        let (a, b) = (&self.enforce, &new.enforce);
        if a.policy != b.policy {
            v.push("policy");
        }
        if a.dry_run != b.dry_run {
            v.push("dry_run");
        }
        let (a, b): (&Allowlist, &Allowlist) = (&a.allow, &b.allow);
        if a.pids != b.pids {
            v.push("allow_pids");
        }
        if a.comms != b.comms {
            v.push("allow_comms");
        }
        if a.cgroup_prefixes != b.cgroup_prefixes {
            v.push("allow_cgroups");
        }
        v
    }
}

/// A configuration error: where, which key, what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the error is about the whole file.
    pub line: usize,
    pub col: usize,
    pub key: Option<String>,
    pub msg: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.col)?;
        }
        if let Some(k) = &self.key {
            write!(f, ": {k}")?;
        }
        write!(f, ": {}", self.msg)
    }
}

impl std::error::Error for ConfigError {}

fn line_col(text: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(text.len());
    let before = &text[..pos];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Parses a size: bytes, or a number with K/M/G (optionally followed by "iB" or "B"), binary
/// multiples: "64M" is 64 MiB.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let upper = t.to_ascii_uppercase();
    let stem = upper
        .strip_suffix("IB")
        .or_else(|| upper.strip_suffix('B'))
        .unwrap_or(&upper);
    let (digits, mult) = match stem.chars().last() {
        Some('K') => (&stem[..stem.len() - 1], 1u64 << 10),
        Some('M') => (&stem[..stem.len() - 1], 1 << 20),
        Some('G') => (&stem[..stem.len() - 1], 1 << 30),
        _ => (stem, 1),
    };
    digits
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|v| v.checked_mul(mult))
        .ok_or_else(|| format!("{s:?} is not a size: write bytes (67108864) or 64M, 512K, 1G"))
}

/// Parses `--metrics-addr`: IP:PORT (no host names: nothing is resolved at start) or "off".
pub fn parse_metrics_addr(s: &str) -> Result<MetricsAddr, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(MetricsAddr::Off);
    }
    s.parse::<SocketAddr>().map(MetricsAddr::At).map_err(|_| {
        format!(
            "{s:?} is not an address: write IP:PORT such as 127.0.0.1:9464 or [::1]:9464 (host \
             names are not resolved), or \"off\" to disable the endpoint"
        )
    })
}

fn rotate_keep_ok(n: u64) -> Result<usize, String> {
    if n > 1000 {
        return Err(format!("{n} rotated files is too many: use 0 to 1000"));
    }
    Ok(n as usize)
}

fn comm_ok(c: &str) -> Result<(), String> {
    if c.is_empty() || c.len() > COMM_MAX {
        return Err(format!(
            "{c:?} can never match: a comm is 1 to {COMM_MAX} bytes (the kernel truncates \
             longer names; use the first {COMM_MAX} bytes)"
        ));
    }
    Ok(())
}

fn cgroup_ok(c: &str) -> Result<(), String> {
    if !c.starts_with('/') || c.len() < 2 {
        return Err(format!(
            "{c:?} is not a cgroup path: write it as in /proc/PID/cgroup, e.g. \
             \"/system.slice/db.service\""
        ));
    }
    Ok(())
}

impl Layer {
    /// Parses and validates a configuration file's text; `file` is for messages.
    pub fn from_toml(text: &str, file: &Path) -> Result<Layer, ConfigError> {
        let err = |span: Option<std::ops::Range<usize>>, key: Option<&str>, msg: String| {
            let (line, col) = span.map_or((0, 0), |s| line_col(text, s.start));
            ConfigError {
                file: file.to_path_buf(),
                line,
                col,
                key: key.map(str::to_string),
                msg,
            }
        };
        let table = DeTable::parse(text).map_err(|e| {
            err(
                e.span(),
                None,
                format!("not valid TOML: {}", e.message().trim_end()),
            )
        })?;
        let mut l = Layer::default();
        for (k, v) in table.get_ref().iter() {
            let name: &str = k.get_ref();
            let ks = Some(k.span());
            let vs = Some(v.span());
            let Some(key) = KEYS.iter().find(|key| key.name == name) else {
                let best = KEYS
                    .iter()
                    .map(|key| (edit_distance(name, key.name), key.name))
                    .min()
                    .filter(|(d, _)| *d <= 3);
                let hint = match (best, v.get_ref()) {
                    (_, DeValue::Table(_)) => {
                        "keys are flat (policy = \"sigbus\" at the top level), there are no \
                         sections"
                            .to_string()
                    }
                    (Some((_, b)), _) => format!("did you mean `{b}`?"),
                    _ => String::new(),
                };
                let known: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
                return Err(err(
                    ks,
                    Some(name),
                    format!(
                        "unknown key; {hint}{}known keys: {}",
                        if hint.is_empty() { "" } else { "; " },
                        known.join(", ")
                    ),
                ));
            };
            let want = |what: &str| {
                err(
                    vs.clone(),
                    Some(name),
                    format!(
                        "expected {what}, got a {} ({})",
                        v.get_ref().type_str(),
                        key.help
                    ),
                )
            };
            let bad = |msg: String| err(vs.clone(), Some(name), format!("{msg} ({})", key.help));
            let string = || v.get_ref().as_str().ok_or_else(|| want("a string"));
            let boolean = || v.get_ref().as_bool().ok_or_else(|| want("true or false"));
            let uint = |val: &DeValue<'_>| {
                val.as_integer()
                    .and_then(|i| u64::from_str_radix(i.as_str(), i.radix()).ok())
            };
            match name {
                "format" => {
                    l.format = Some(match string()? {
                        "json" => Format::Json,
                        "table" => Format::Table,
                        o => return Err(bad(format!("unknown format {o:?}"))),
                    })
                }
                "attach" => {
                    l.attach = Some(string()?.parse::<AttachMode>().map_err(bad)?);
                }
                "journal" => {
                    let p = string()?;
                    if !p.starts_with('/') {
                        return Err(bad(format!("{p:?} is not an absolute path")));
                    }
                    l.journal = Some(PathBuf::from(p));
                }
                "verbose" => l.verbose = Some(boolean()?),
                "output" => {
                    let p = string()?;
                    l.output = Some(match p {
                        "" | "-" => None,
                        p if p.starts_with('/') => Some(PathBuf::from(p)),
                        p => return Err(bad(format!("{p:?} is not an absolute path"))),
                    });
                }
                "rotate_size" => {
                    let n = match v.get_ref() {
                        DeValue::String(s) => parse_size(s).map_err(bad)?,
                        other => uint(other).ok_or_else(|| want("a size (bytes or \"64M\")"))?,
                    };
                    if n != 0 && n < 4096 {
                        return Err(bad(format!(
                            "{n} bytes is too small to rotate at: use at least 4K, or 0"
                        )));
                    }
                    l.rotate_size = Some(n);
                }
                "ring_size" => {
                    let n = match v.get_ref() {
                        DeValue::String(s) => parse_size(s).map_err(bad)?,
                        other => uint(other).ok_or_else(|| want("a size (bytes or \"1M\")"))?,
                    };
                    l.ring_size = Some(crate::probe::ring::ring_size_ok(n).map_err(bad)?);
                }
                "rotate_keep" => {
                    let n = uint(v.get_ref()).ok_or_else(|| want("a count"))?;
                    l.rotate_keep = Some(rotate_keep_ok(n).map_err(bad)?);
                }
                "badblocks_rescan" => {
                    let n = uint(v.get_ref()).ok_or_else(|| want("a number of seconds"))?;
                    l.badblocks_rescan = Some(rescan_ok(n).map_err(bad)?);
                }
                "metrics_addr" => {
                    l.metrics_addr = Some(parse_metrics_addr(string()?).map_err(bad)?);
                }
                "policy" => {
                    l.policy = Some(string()?.parse::<Policy>().map_err(bad)?);
                }
                "dry_run" => l.dry_run = Some(boolean()?),
                "allow_pids" | "allow_comms" | "allow_cgroups" => {
                    let arr = v.get_ref().as_array().ok_or_else(|| want("an array"))?;
                    let mut pids = Vec::new();
                    let mut strs = Vec::new();
                    for item in arr.iter() {
                        let ierr = |msg: String| err(Some(item.span()), Some(name), msg);
                        if name == "allow_pids" {
                            match uint(item.get_ref()) {
                                Some(p) if p > 1 && p <= i32::MAX as u64 => pids.push(p as i32),
                                Some(p) if p <= 1 => {
                                    return Err(ierr(format!(
                                        "pid {p} need not be listed: pid 1 and invalid pids are \
                                         never signalled"
                                    )));
                                }
                                _ => {
                                    return Err(ierr(format!(
                                        "expected a pid (a positive integer), got a {}",
                                        item.get_ref().type_str()
                                    )));
                                }
                            }
                        } else {
                            let s = item.get_ref().as_str().ok_or_else(|| {
                                ierr(format!(
                                    "expected a string, got a {}",
                                    item.get_ref().type_str()
                                ))
                            })?;
                            if name == "allow_comms" {
                                comm_ok(s).map_err(ierr)?;
                            } else {
                                cgroup_ok(s).map_err(ierr)?;
                            }
                            strs.push(s.to_string());
                        }
                    }
                    match name {
                        "allow_pids" => l.allow_pids = Some(pids),
                        "allow_comms" => l.allow_comms = Some(strs),
                        _ => l.allow_cgroups = Some(strs),
                    }
                }
                other => unreachable!("key {other} in KEYS but not parsed"),
            }
        }
        Ok(l)
    }

    /// Reads and validates a configuration file.
    pub fn from_file(path: &Path) -> Result<Layer, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: 0,
            col: 0,
            key: None,
            msg: format!(
                "cannot read the configuration: {e} (give an existing file with --config, or \
                 omit --config to use {DEFAULT_CONFIG} when it exists)"
            ),
        })?;
        Layer::from_toml(&text, path)
    }
}

/// Command-line values that also get validated like the file's (for `--allow-comm` etc.).
pub fn validate_flags(l: &Layer) -> Result<(), String> {
    for c in l.allow_comms.iter().flatten() {
        comm_ok(c).map_err(|e| format!("--allow-comm: {e}"))?;
    }
    for c in l.allow_cgroups.iter().flatten() {
        cgroup_ok(c).map_err(|e| format!("--allow-cgroup: {e}"))?;
    }
    if let Some(n) = l.rotate_size
        && n != 0
        && n < 4096
    {
        return Err(format!(
            "--rotate-size: {n} bytes is too small: use at least 4K, or 0"
        ));
    }
    if let Some(n) = l.rotate_keep {
        rotate_keep_ok(n as u64).map_err(|e| format!("--rotate-keep: {e}"))?;
    }
    if let Some(n) = l.badblocks_rescan {
        rescan_ok(n).map_err(|e| format!("--badblocks-rescan: {e}"))?;
    }
    Ok(())
}

/// A rescan interval in seconds: 0 (off) or 1 s to a day.
fn rescan_ok(n: u64) -> Result<u64, String> {
    if n > 86_400 {
        return Err(format!(
            "{n} s is more than a day: bad ranges would wait that long; use 1 to 86400, or 0 \
             for only at mounts and at start"
        ));
    }
    Ok(n)
}

/// Which configuration file to read: `--config` if given (it must exist), else the default if
/// it exists, else none.
pub fn config_path(flag: Option<&Path>) -> Option<PathBuf> {
    match flag {
        Some(p) => Some(p.to_path_buf()),
        None => Path::new(DEFAULT_CONFIG)
            .exists()
            .then(|| PathBuf::from(DEFAULT_CONFIG)),
    }
}

/// The file and the flags, and what they make together.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub file: Option<PathBuf>,
    pub file_layer: Layer,
    pub flags: Layer,
    pub settings: Settings,
}

impl Loaded {
    pub fn load(file: Option<PathBuf>, flags: Layer) -> Result<Loaded, ConfigError> {
        let file_layer = match &file {
            Some(p) => Layer::from_file(p)?,
            None => Layer::default(),
        };
        let settings = Settings::merge(&[&file_layer, &flags]);
        Ok(Loaded {
            file,
            file_layer,
            flags,
            settings,
        })
    }

    /// Re-reads the file (SIGHUP). On success returns the new `Loaded` and a description of
    /// what changed: keys applied live, keys that need a restart, keys the flags pin.
    pub fn reload(&self) -> Result<(Loaded, Reload), ConfigError> {
        let next = Loaded::load(self.file.clone(), self.flags.clone())?;
        let mut r = Reload::default();
        // A key the file changed but a flag overrides: say so, nothing happens.
        let changed_file: Vec<&'static str> = {
            let old = Settings::merge(&[&self.file_layer]);
            let new = Settings::merge(&[&next.file_layer]);
            old.changed(&new)
        };
        let flag_keys = self.flags.keys();
        for k in changed_file {
            if flag_keys.contains(&k) {
                r.pinned.push(k);
            }
        }
        for k in self.settings.changed(&next.settings) {
            if key(k).live {
                r.live.push(k);
            } else {
                r.restart.push(k);
            }
        }
        Ok((next, r))
    }
}

/// What a reload changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reload {
    /// Applied now.
    pub live: Vec<&'static str>,
    /// Changed in the file but only read at start: restart to apply.
    pub restart: Vec<&'static str>,
    /// Changed in the file but set on the command line, which wins.
    pub pinned: Vec<&'static str>,
}

impl Reload {
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.live.is_empty() {
            parts.push(format!("applied {}", self.live.join(", ")));
        }
        if !self.restart.is_empty() {
            parts.push(format!(
                "changed but only read at start (restart the agent to apply): {}",
                self.restart.join(", ")
            ));
        }
        if !self.pinned.is_empty() {
            let flags: Vec<String> = self
                .pinned
                .iter()
                .map(|k| format!("{k} ({})", key(k).flag))
                .collect();
            parts.push(format!(
                "changed in the file but set on the command line, which wins: {}",
                flags.join(", ")
            ));
        }
        if parts.is_empty() {
            "no change".into()
        } else {
            parts.join("; ")
        }
    }
}

#[cfg(test)]
mod tests;
