//! `/proc/kallsyms`, read once.
//!
//! Reading it is slow under emulation (about a second per read under qemu TCG), so
//! [`Kallsyms::load`] reads it a single time into memory and answers every question from there.
//! Lines look like `ffffffff819291c0 t xfs_fs_fill_super` (vmlinux) or
//! `ffffffffc0a1b2c0 t xfs_fs_fill_super\t[xfs]` (module).
//!
//! Compiler clones matter for kprobes: a kprobe must name the exact symbol, and a function that
//! exists only as `foo.isra.0` or `foo.constprop.0` must be probed under that name (with the
//! caveat that a clone may have a changed argument list). `foo.cold` is the out-of-line cold
//! part of `foo`, never its entry.

use std::{fmt, path::PathBuf, sync::OnceLock};

use crate::kernel::names::NameIndex;

/// Where the kernel publishes its symbol table.
pub const KALLSYMS_PATH: &str = "/proc/kallsyms";

/// One symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    pub name: String,
    /// 0 when `kernel.kptr_restrict` (or missing privileges) hides addresses.
    pub address: u64,
    /// nm-style type letter: `t`/`T` text, `d`/`D` data, `b`/`B` bss, `r`/`R` rodata...
    pub kind: char,
    /// `None` for vmlinux, `Some("xfs")` for a module (also `bpf`, `__builtin__ftrace`...).
    pub module: Option<String>,
}

impl Symbol {
    /// Whether this is a text (code) symbol.
    pub fn is_text(&self) -> bool {
        matches!(self.kind, 't' | 'T' | 'w' | 'W')
    }
}

/// What a kprobe on a function should target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTarget {
    /// The exact symbol to give the kprobe (may be `foo.isra.0`).
    pub symbol: String,
    /// The module holding it (`None`: vmlinux).
    pub module: Option<String>,
    /// Whether `symbol` is the requested name itself rather than a compiler clone.
    pub exact: bool,
    /// How many text symbols share `symbol`. A kprobe by name on a non-unique symbol fails
    /// with EADDRNOTAVAIL on kernels from 6.5 on (and is a guess before).
    pub count: usize,
    /// Caveats for `notify doctor` (clone, duplicates, hidden addresses).
    pub notes: Vec<String>,
}

/// Errors from reading or querying kallsyms.
#[derive(Debug)]
pub enum KallsymsError {
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file had no parsable symbol lines.
    Empty { path: PathBuf },
    /// No text symbol with this name or a clone of it.
    NotFound { name: String, cold_only: bool },
    /// Only several compiler clones exist: the caller must pick one.
    AmbiguousClones { name: String, clones: Vec<String> },
}

impl fmt::Display for KallsymsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, source } => write!(
                f,
                "cannot read {}: {source} (is /proc mounted? the file is world-readable, \
                 addresses need root)",
                path.display()
            ),
            Self::Empty { path } => write!(
                f,
                "{} has no symbols: the kernel was built without CONFIG_KALLSYMS, so notify \
                 cannot check which functions exist; use BTF (has_func) instead",
                path.display()
            ),
            Self::NotFound {
                name,
                cold_only: false,
            } => write!(
                f,
                "no function `{name}` (nor a compiler clone like `{name}.isra.0`) in kallsyms: it \
                 was inlined, renamed, or lives in a module that is not loaded"
            ),
            Self::NotFound {
                name,
                cold_only: true,
            } => write!(
                f,
                "only `{name}.cold` is in kallsyms: that is the function's cold tail, not its \
                 entry; the entry was inlined into its callers and cannot be probed"
            ),
            Self::AmbiguousClones { name, clones } => write!(
                f,
                "`{name}` exists only as several compiler clones {clones:?}: probe each one, or \
                 pick the one the code path uses"
            ),
        }
    }
}

impl std::error::Error for KallsymsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// An in-memory copy of `/proc/kallsyms`.
///
/// The file is kept as read; an entry is a few offsets into it, indexed by name and by base
/// name ([`NameIndex`]: no allocation per symbol). A [`Symbol`] is built only for what a query
/// returns.
#[derive(Debug, Clone, Default)]
pub struct Kallsyms {
    text: String,
    entries: Vec<Entry>,
    /// Module names, interned: `Entry::module` is an index + 1 (0: vmlinux).
    module_names: Vec<String>,
    by_name: NameIndex,
    /// Dotted names (`foo.isra.0`, `foo.cold`) by their base (before the first '.'), built on
    /// the first [`Kallsyms::variants`] (`doctor`, kprobe targets): the agent's start never
    /// asks.
    clones: OnceLock<NameIndex>,
    addresses_hidden: bool,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Byte range of the name in `text`.
    name: (u32, u32),
    address: u64,
    kind: u8,
    module: u16,
}

impl Kallsyms {
    /// Reads `/proc/kallsyms` (once: keep the result).
    pub fn load() -> Result<Self, KallsymsError> {
        Self::from_path(KALLSYMS_PATH)
    }

    /// Reads a kallsyms-format file.
    pub fn from_path(path: impl Into<PathBuf>) -> Result<Self, KallsymsError> {
        let path = path.into();
        let text = std::fs::read(&path).map_err(|source| KallsymsError::Io {
            path: path.clone(),
            source,
        })?;
        let text = String::from_utf8(text)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        let k = Self::from_text(text);
        if k.is_empty() {
            return Err(KallsymsError::Empty { path });
        }
        Ok(k)
    }

    /// Parses kallsyms text; malformed lines are skipped.
    pub fn parse(text: &str) -> Self {
        Self::from_text(text.to_string())
    }

    fn from_text(text: String) -> Self {
        let mut k = Self::default();
        let mut hidden = true;
        let mut pos = 0usize;
        for line in text.split_inclusive('\n') {
            let at = pos;
            pos += line.len();
            let line = line.strip_suffix('\n').unwrap_or(line);
            let Some(p) = parse_line(line) else {
                continue;
            };
            // The text is at most a few tens of MiB: offsets fit in u32.
            let (Ok(start), Ok(len)) = (u32::try_from(at + p.name.0), u32::try_from(p.name.1))
            else {
                continue;
            };
            let module = match p.module {
                None => 0,
                Some(m) => match k.module_names.iter().rposition(|n| n == m) {
                    Some(i) => i + 1,
                    None => {
                        k.module_names.push(m.to_string());
                        k.module_names.len()
                    }
                },
            };
            hidden &= p.address == 0;
            k.entries.push(Entry {
                name: (start, len),
                address: p.address,
                kind: p.kind,
                module: u16::try_from(module).unwrap_or(u16::MAX),
            });
        }
        let name = |i: usize| {
            let (a, n) = k.entries[i].name;
            text.as_bytes().get(a as usize..(a + n) as usize)
        };
        k.by_name = NameIndex::build(k.entries.len(), name);
        k.addresses_hidden = !k.entries.is_empty() && hidden;
        k.text = text;
        k
    }

    fn name_of(&self, e: &Entry) -> &str {
        &self.text[e.name.0 as usize..(e.name.0 + e.name.1) as usize]
    }

    fn module_name(&self, e: &Entry) -> Option<&str> {
        match e.module {
            0 => None,
            m => self
                .module_names
                .get(usize::from(m) - 1)
                .map(String::as_str),
        }
    }

    fn symbol(&self, e: &Entry) -> Symbol {
        Symbol {
            name: self.name_of(e).to_string(),
            address: e.address,
            kind: char::from(e.kind),
            module: self.module_name(e).map(str::to_string),
        }
    }

    fn name_bytes(&self, i: usize) -> Option<&[u8]> {
        let (a, n) = self.entries.get(i)?.name;
        self.text.as_bytes().get(a as usize..(a + n) as usize)
    }

    /// Entries named exactly `name`, in file order.
    fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.by_name
            .find(name.as_bytes(), |i| self.name_bytes(i))
            .map(|i| &self.entries[i])
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no symbol was read.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether every address reads 0: `kernel.kptr_restrict` (or running without
    /// CAP_SYSLOG) hides them. Names are still valid; addresses are not.
    pub fn addresses_hidden(&self) -> bool {
        self.addresses_hidden
    }

    /// Whether a symbol with exactly this name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.named(name).next().is_some()
    }

    /// All symbols with exactly this name.
    pub fn lookup(&self, name: &str) -> Vec<Symbol> {
        self.named(name).map(|e| self.symbol(e)).collect()
    }

    /// `None`: absent; `Some(None)`: in vmlinux; `Some(Some("xfs"))`: in module xfs. With
    /// duplicates, the first one (vmlinux is listed before modules).
    pub fn module_of(&self, name: &str) -> Option<Option<&str>> {
        self.named(name).next().map(|e| self.module_name(e))
    }

    /// Address of the first symbol with this name. `Some(0)` when addresses are hidden (see
    /// [`Kallsyms::addresses_hidden`]).
    pub fn address(&self, name: &str) -> Option<u64> {
        self.named(name).next().map(|e| e.address)
    }

    /// Compiler clones and parts of `name`: `name.isra.0`, `name.constprop.0`, `name.part.0`,
    /// `name.cold`, `name.llvm.123`... (not `name` itself).
    pub fn variants(&self, name: &str) -> Vec<Symbol> {
        let base = |i: usize| {
            let n = self.name_bytes(i)?;
            let dot = n.iter().position(|&b| b == b'.').filter(|&d| d > 0)?;
            Some(&n[..dot])
        };
        self.clones
            .get_or_init(|| NameIndex::build(self.entries.len(), base))
            .find(name.as_bytes(), base)
            .map(|i| self.symbol(&self.entries[i]))
            .collect()
    }

    /// Module-filtered lookup: symbols named `name` in `module` (`None`: vmlinux).
    pub fn lookup_in(&self, name: &str, module: Option<&str>) -> Vec<Symbol> {
        self.lookup(name)
            .into_iter()
            .filter(|s| s.module.as_deref() == module)
            .collect()
    }

    /// What a kprobe on function `name` should target: the exact text symbol if present,
    /// else its single non-cold compiler clone. Never a `.cold` part.
    pub fn probe_target(&self, name: &str) -> Result<ProbeTarget, KallsymsError> {
        let mut notes = Vec::new();
        if self.addresses_hidden {
            notes.push(
                "kallsyms addresses are hidden (kernel.kptr_restrict or no CAP_SYSLOG): names \
                 are reliable, addresses read 0"
                    .to_string(),
            );
        }
        let exact: Vec<Symbol> = self
            .lookup(name)
            .into_iter()
            .filter(|s| s.is_text())
            .collect();
        if let Some(first) = exact.first() {
            if exact.len() > 1 {
                notes.push(format!(
                    "{} text symbols are named `{name}` (static functions in different files): \
                     a kprobe by name fails with EADDRNOTAVAIL from kernel 6.5 on; attach by \
                     address or to a caller",
                    exact.len()
                ));
            }
            let clones: Vec<String> = self
                .variants(name)
                .into_iter()
                .filter(|s| s.is_text() && !is_cold(&s.name))
                .map(|s| s.name)
                .collect();
            if !clones.is_empty() {
                notes.push(format!(
                    "compiler clones {clones:?} also exist: some callers reach those instead of \
                     `{name}`"
                ));
            }
            return Ok(ProbeTarget {
                symbol: name.to_string(),
                module: first.module.clone(),
                exact: true,
                count: exact.len(),
                notes,
            });
        }
        let variants: Vec<Symbol> = self
            .variants(name)
            .into_iter()
            .filter(|s| s.is_text())
            .collect();
        let clones: Vec<&Symbol> = variants.iter().filter(|s| !is_cold(&s.name)).collect();
        let mut names: Vec<String> = clones.iter().map(|s| s.name.clone()).collect();
        names.sort_unstable();
        names.dedup();
        match names.len() {
            0 => Err(KallsymsError::NotFound {
                name: name.to_string(),
                cold_only: !variants.is_empty(),
            }),
            1 => {
                let first = clones[0];
                notes.push(format!(
                    "`{name}` exists only as the compiler clone `{}`: the kprobe must name the \
                     clone, and its arguments may differ from the source (isra/constprop drop \
                     or fold parameters)",
                    first.name
                ));
                Ok(ProbeTarget {
                    symbol: first.name.clone(),
                    module: first.module.clone(),
                    exact: false,
                    count: clones.len(),
                    notes,
                })
            }
            _ => Err(KallsymsError::AmbiguousClones {
                name: name.to_string(),
                clones: names,
            }),
        }
    }

    /// Names of modules that have symbols here (loaded modules, plus `bpf` etc.).
    pub fn modules(&self) -> Vec<&str> {
        let mut m: Vec<&str> = self.module_names.iter().map(String::as_str).collect();
        m.sort_unstable();
        m.dedup();
        m
    }
}

fn is_cold(name: &str) -> bool {
    name.split('.').skip(1).any(|part| part == "cold")
}

/// One line's fields; `name` is (offset in the line, length).
struct Parsed<'a> {
    name: (usize, usize),
    address: u64,
    kind: u8,
    module: Option<&'a str>,
}

/// `addr kind name` or `addr kind name\t[module]` (some kernels: `addr kind name [module]`).
/// This runs for every one of the ~120k-200k lines at every start: the kernel's own layout (a
/// 16-digit address, `ADDR K NAME` then an optional `\t[MODULE]`) takes a fast path, anything
/// else the general split.
fn parse_line(line: &str) -> Option<Parsed<'_>> {
    fast_line(line).or_else(|| general_line(line))
}

/// `ffffffff81000000 T name` / `...\t[module]`, exactly as the kernel prints it on 64 bits.
fn fast_line(line: &str) -> Option<Parsed<'_>> {
    let b = line.as_bytes();
    if b.len() < 20 || b[16] != b' ' || b[18] != b' ' || !b[17].is_ascii_graphic() {
        return None;
    }
    let mut address = 0u64;
    for &c in &b[..16] {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return None,
        };
        address = address << 4 | u64::from(d);
    }
    let rest = &b[19..];
    let end = rest.iter().position(|&c| c == b'\t').unwrap_or(rest.len());
    let name = &rest[..end];
    if name.is_empty() || name.contains(&b' ') {
        return None;
    }
    let module = if end < rest.len() {
        let m = line[19 + end + 1..].trim();
        let m = m.strip_prefix('[')?.strip_suffix(']')?;
        if m.contains([' ', '\t']) {
            return None;
        }
        Some(m)
    } else {
        None
    };
    Some(Parsed {
        name: (19, end),
        address,
        kind: b[17],
        module,
    })
}

/// Any layout with fields split on spaces and tabs: `ADDR K NAME [MODULE]`.
fn general_line(line: &str) -> Option<Parsed<'_>> {
    let bytes = line.as_bytes();
    // Up to 5 fields split on spaces and tabs: one more than a valid line has, to reject it.
    let mut fields: [(usize, usize); 5] = [(0, 0); 5];
    let mut n = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b' ' || bytes[i] == b'\t' {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && bytes[i] != b' ' && bytes[i] != b'\t' {
            i += 1;
        }
        if n == fields.len() {
            return None;
        }
        fields[n] = (start, i - start);
        n += 1;
    }
    if !(3..=4).contains(&n) {
        return None;
    }
    let field = |k: usize| &line[fields[k].0..fields[k].0 + fields[k].1];
    let address = u64::from_str_radix(field(0), 16).ok()?;
    let kind = match field(1).as_bytes() {
        [k] if k.is_ascii() => *k,
        _ => return None,
    };
    let module = match n {
        4 => Some(field(3).strip_prefix('[')?.strip_suffix(']')?),
        _ => None,
    };
    Some(Parsed {
        name: fields[2],
        address,
        kind,
        module,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
ffffffff81000000 T _stext
ffffffff81200100 t __pfx_class_preempt_notrace_destructor.isra.0
ffffffff81200110 t class_preempt_notrace_destructor.isra.0
ffffffff8120020d t wait_for_initramfs.cold
ffffffff81300000 t wait_for_initramfs
ffffffff81400000 t only_cold.cold
ffffffff81500000 t two_clones.isra.0
ffffffff81500100 t two_clones.constprop.0
ffffffff81600000 t dup_static
ffffffff81600100 t dup_static
ffffffff81da0140 T dax_holder_notify_failure
ffffffff82000000 D some_data
ffffffffc0a1b2c0 t xfs_fs_fill_super\t[xfs]
ffffffffc0a1b400 t xfs_dax_notify_failure.isra.0\t[xfs]
ffffffffc0201000 t ftrace_trampoline\t[__builtin__ftrace]
garbage line
zzzz t bad_address
ffffffff81000000 TT bad_kind
";

    #[test]
    fn parses_modules_and_vmlinux() {
        let k = Kallsyms::parse(SAMPLE);
        assert_eq!(k.len(), 15);
        assert!(k.contains("dax_holder_notify_failure"));
        assert!(!k.contains("bad_address"));
        assert_eq!(k.module_of("dax_holder_notify_failure"), Some(None));
        assert_eq!(k.module_of("xfs_fs_fill_super"), Some(Some("xfs")));
        assert_eq!(k.module_of("absent"), None);
        assert_eq!(k.address("xfs_fs_fill_super"), Some(0xffffffffc0a1b2c0));
        assert!(!k.addresses_hidden());
        assert_eq!(k.modules(), vec!["__builtin__ftrace", "xfs"]);
        assert_eq!(k.lookup_in("xfs_fs_fill_super", Some("xfs")).len(), 1);
        assert!(k.lookup_in("xfs_fs_fill_super", None).is_empty());
    }

    #[test]
    fn probe_targets_handle_clones() {
        let k = Kallsyms::parse(SAMPLE);
        let t = k.probe_target("wait_for_initramfs").unwrap();
        assert!(t.exact && t.symbol == "wait_for_initramfs" && t.count == 1);
        let t = k.probe_target("class_preempt_notrace_destructor").unwrap();
        assert!(!t.exact);
        assert_eq!(t.symbol, "class_preempt_notrace_destructor.isra.0");
        assert!(t.notes.iter().any(|n| n.contains("clone")));
        let t = k.probe_target("xfs_dax_notify_failure").unwrap();
        assert_eq!(t.module.as_deref(), Some("xfs"));
        assert_eq!(t.symbol, "xfs_dax_notify_failure.isra.0");
        let e = k.probe_target("only_cold").unwrap_err();
        assert!(
            matches!(
                e,
                KallsymsError::NotFound {
                    cold_only: true,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("cold"));
        let e = k.probe_target("two_clones").unwrap_err();
        assert!(matches!(e, KallsymsError::AmbiguousClones { .. }), "{e}");
        let e = k.probe_target("nothing").unwrap_err();
        assert!(matches!(
            e,
            KallsymsError::NotFound {
                cold_only: false,
                ..
            }
        ));
        let t = k.probe_target("dup_static").unwrap();
        assert_eq!(t.count, 2);
        assert!(t.notes.iter().any(|n| n.contains("EADDRNOTAVAIL")));
        // Data symbols are not probe targets.
        assert!(k.probe_target("some_data").is_err());
        // `__pfx_` padding symbols are not variants of the function.
        assert_eq!(k.variants("class_preempt_notrace_destructor").len(), 1);
        assert_eq!(
            k.variants("wait_for_initramfs")[0].name,
            "wait_for_initramfs.cold"
        );
    }

    /// The fast path takes the kernel's own layout and must read it exactly as the general
    /// split does; other layouts fall through to the general split.
    #[test]
    fn fast_and_general_line_parsers_agree() {
        let real = std::fs::read_to_string(KALLSYMS_PATH).unwrap_or_default();
        let extra = "ffffffff81000000 t name [mod]\nffffffffc0000000 t x\t[m] \n\
                     ffffffffc0000000 t x\t[m n]\nffffffff8100000g t bad_hex\n";
        let mut fast = 0;
        for line in SAMPLE
            .lines()
            .chain(extra.lines())
            .chain(real.lines().take(20_000))
        {
            let g = general_line(line).map(|p| (p.name, p.address, p.kind, p.module));
            if let Some(f) = fast_line(line) {
                fast += 1;
                assert_eq!(Some((f.name, f.address, f.kind, f.module)), g, "{line:?}");
            }
        }
        assert!(fast >= 10, "the fast path took only {fast} lines");
    }

    #[test]
    fn hidden_addresses_are_detected() {
        let k = Kallsyms::parse("0000000000000000 T a\n0000000000000000 t b\t[m]\n");
        assert!(k.addresses_hidden());
        assert_eq!(k.address("b"), Some(0));
        assert!(
            k.probe_target("a").unwrap().notes[0].contains("hidden"),
            "hidden addresses must be reported"
        );
    }

    #[test]
    fn garbage_is_skipped_not_fatal() {
        assert!(Kallsyms::parse("").is_empty());
        assert!(Kallsyms::parse("\0\0\n\t\t[\n ff").is_empty());
        let bytes: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
        let _ = Kallsyms::parse(&String::from_utf8_lossy(&bytes));
        let e = Kallsyms::from_path("/nonexistent/kallsyms").unwrap_err();
        assert!(matches!(e, KallsymsError::Io { .. }));
    }
}
