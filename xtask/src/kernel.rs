//! Debian kernel packages for the lab: downloaded with apt through a private
//! sources list and state directory per kernel line (the system's apt
//! configuration is left alone), unpacked with `dpkg -x`, and cached under
//! `target/lab/cache/`.
//!
//! Two package layouts: up to 6.12 (`Layout::Image`) one
//! `linux-image-V-amd64-unsigned` holds `boot/vmlinuz-V` and the modules.
//! From 6.19 on in the archive (`Layout::Split`) `linux-image-V-amd64` is a
//! metapackage whose Depends name `linux-binary-V-amd64`
//! (`usr/lib/modules/V/vmlinuz`), `linux-modules-V-amd64` (the `.ko` files) and
//! `linux-base-V-amd64` (`modules.builtin`, `config`, `System.map`): the lab
//! reads those names and versions from the metapackage and unpacks them all
//! into one root.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, Result, bail};

use crate::util::{self, natural_cmp, output, run};

/// A kernel line the lab knows how to fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// Debian bookworm's 6.1 (`linux-image-6.1.0-N-amd64-unsigned`).
    V6_1,
    /// 6.12 from bookworm-security/backports (`linux-image-6.12.N+...-amd64-unsigned`).
    V6_12,
    /// 7.2 from sid (metapackage `linux-image-7.2.N+debXX-amd64`).
    V7_2,
    /// 7.3 from trixie-backports (metapackage `linux-image-7.3.N+debXX-amd64`).
    V7_3,
}

/// How a line's packages are cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// One `linux-image-V-amd64-unsigned` with `boot/vmlinuz-V` and the modules.
    Image,
    /// A `linux-image-V-amd64` metapackage depending on `linux-binary-V-amd64`,
    /// `linux-modules-V-amd64` and `linux-base-V-amd64`.
    Split,
}

/// Every line the lab knows, oldest first.
pub const KNOWN: &[Flavor] = &[Flavor::V6_1, Flavor::V6_12, Flavor::V7_2, Flavor::V7_3];

/// The newest line the lab knows (`--kernel newest`; with 6.1 and 6.12, `--kernel all`).
pub const NEWEST: Flavor = Flavor::V7_3;

/// `--kernel all`: the two bookworm-era lines and the newest.
pub const ALL: &[Flavor] = &[Flavor::V6_1, Flavor::V6_12, NEWEST];

/// Suites of the system's bookworm mirror the 6.1 and 6.12 images come from.
const BOOKWORM_SUITES: &[&str] = &["bookworm", "bookworm-updates", "bookworm-backports"];

impl Flavor {
    pub fn label(self) -> &'static str {
        match self {
            Flavor::V6_1 => "6.1",
            Flavor::V6_12 => "6.12",
            Flavor::V7_2 => "7.2",
            Flavor::V7_3 => "7.3",
        }
    }

    pub fn layout(self) -> Layout {
        match self {
            Flavor::V6_1 | Flavor::V6_12 => Layout::Image,
            Flavor::V7_2 | Flavor::V7_3 => Layout::Split,
        }
    }

    /// Suites of the Debian mirror to search, and whether to add bookworm-security.
    fn suites(self) -> (&'static [&'static str], bool) {
        match self {
            Flavor::V6_1 | Flavor::V6_12 => (BOOKWORM_SUITES, true),
            Flavor::V7_2 => (&["sid"], false),
            Flavor::V7_3 => (&["trixie-backports"], false),
        }
    }

    /// One `--kernel` value: a line, `newest`, `all`, or a comma-separated list of those
    /// (in order, each line once).
    pub fn parse(s: &str) -> Result<Vec<Flavor>> {
        let mut out: Vec<Flavor> = Vec::new();
        for item in s.split(',').map(str::trim) {
            let add: Vec<Flavor> = match item {
                "all" => ALL.to_vec(),
                "newest" => vec![NEWEST],
                _ => match KNOWN.iter().find(|f| f.label() == item) {
                    Some(f) => vec![*f],
                    None => bail!(
                        "unknown kernel {item:?}: use {}, newest (= {}) or all ({})",
                        KNOWN
                            .iter()
                            .map(|f| f.label())
                            .collect::<Vec<_>>()
                            .join(", "),
                        NEWEST.label(),
                        ALL.iter().map(|f| f.label()).collect::<Vec<_>>().join(", "),
                    ),
                },
            };
            for f in add {
                if !out.contains(&f) {
                    out.push(f);
                }
            }
        }
        Ok(out)
    }

    /// Whether an apt package name is the image package of this kernel line
    /// (for `Layout::Split`, the metapackage). Cloud, rt and debug variants are not.
    pub fn matches(self, pkg: &str) -> bool {
        let suffix = match self.layout() {
            Layout::Image => "-amd64-unsigned",
            Layout::Split => "-amd64",
        };
        let Some(rest) = pkg
            .strip_prefix("linux-image-")
            .and_then(|r| r.strip_suffix(suffix))
        else {
            return false;
        };
        // N[+tag]: 117+deb12, 9+bpo, 38, 4+deb13.
        let patch_tag = |r: &str| {
            let (num, tag) = r.split_once('+').unwrap_or((r, "x"));
            !num.is_empty()
                && num.chars().all(|c| c.is_ascii_digit())
                && !tag.is_empty()
                && tag
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '~')
        };
        match self {
            // 6.1.0-56
            Flavor::V6_1 => rest
                .strip_prefix("6.1.0-")
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())),
            Flavor::V6_12 => rest.strip_prefix("6.12.").is_some_and(patch_tag),
            Flavor::V7_2 => rest.strip_prefix("7.2.").is_some_and(patch_tag),
            Flavor::V7_3 => rest.strip_prefix("7.3.").is_some_and(patch_tag),
        }
    }

    /// `apt-cache search --names-only` pattern for candidates (filtered by `matches`).
    fn search_pattern(self) -> String {
        let line = self.label().replace('.', "\\.");
        match self.layout() {
            Layout::Image => format!("^linux-image-{line}\\.[0-9.]+.*-amd64-unsigned$"),
            Layout::Split => format!("^linux-image-{line}\\.[0-9]+.*-amd64$"),
        }
    }
}

/// The kernel release (`uname -r`) a Split metapackage is for:
/// `linux-image-7.3.4+deb13-amd64` -> `7.3.4+deb13-amd64`.
pub fn release_of_image(pkg: &str) -> Option<&str> {
    pkg.strip_prefix("linux-image-").filter(|r| !r.is_empty())
}

/// One entry of a Depends field: the package and its `(= version)` pin, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dep {
    pub name: String,
    /// Only an exact `(= V)` pin is kept.
    pub exact: Option<String>,
    /// Part of an `a | b` alternative.
    pub alternative: bool,
}

/// A field of one control stanza (`apt-cache show` output), continuation lines joined.
pub fn control_field(stanza: &str, field: &str) -> Option<String> {
    let mut lines = stanza.lines();
    while let Some(l) = lines.next() {
        if l.trim().is_empty() {
            // Only the first stanza.
            return None;
        }
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        if k == field {
            let mut value = v.trim().to_string();
            for c in lines.by_ref() {
                if c.starts_with([' ', '\t']) && !c.trim().is_empty() {
                    value.push(' ');
                    value.push_str(c.trim());
                } else {
                    break;
                }
            }
            return Some(value);
        }
    }
    None
}

/// Parses a Depends value: `a | b (>= 1), c (= 2)`.
pub fn parse_depends(value: &str) -> Result<Vec<Dep>> {
    let mut out = Vec::new();
    for group in value.split(',').map(str::trim) {
        if group.is_empty() {
            continue;
        }
        let alts: Vec<&str> = group.split('|').map(str::trim).collect();
        for a in &alts {
            let end = a.find(['(', '[', '<', ' ']).unwrap_or(a.len());
            let name = &a[..end];
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.:".contains(c))
            {
                bail!("bad Depends entry {a:?} in {value:?}");
            }
            let rest = a[end..].trim_start();
            let mut exact = None;
            if let Some(r) = rest.strip_prefix('(') {
                let Some((inner, _)) = r.split_once(')') else {
                    bail!("unclosed version in Depends entry {a:?}");
                };
                let inner = inner.trim();
                // "= V" is exact; ">= V", "<< V", ... are not (they do not start with '=').
                if let Some(v) = inner.strip_prefix('=') {
                    let v = v.trim();
                    if v.is_empty() {
                        bail!("empty version in Depends entry {a:?}");
                    }
                    exact = Some(v.to_string());
                }
            }
            out.push(Dep {
                name: name.to_string(),
                exact,
                alternative: alts.len() > 1,
            });
        }
    }
    Ok(out)
}

/// The packages of a Split kernel named by its metapackage's `apt-cache show` stanza: every
/// Depends entry for this kernel release (`linux-*-<release>`). Fails unless there is a
/// `linux-binary-` and a `linux-modules-` one.
pub fn split_parts(image_pkg: &str, stanza: &str) -> Result<Vec<Dep>> {
    let release = release_of_image(image_pkg)
        .with_context(|| format!("{image_pkg:?} is not a linux-image-<release> name"))?;
    let depends = control_field(stanza, "Depends")
        .with_context(|| format!("{image_pkg}: no Depends field in its apt record"))?;
    let tail = format!("-{release}");
    let parts: Vec<Dep> = parse_depends(&depends)?
        .into_iter()
        .filter(|d| d.name.starts_with("linux-") && d.name.ends_with(&tail) && d.name != image_pkg)
        .collect();
    if let Some(d) = parts.iter().find(|d| d.alternative) {
        bail!("{image_pkg}: {} is an alternative, not a part", d.name);
    }
    for want in ["linux-binary-", "linux-modules-"] {
        if !parts.iter().any(|d| d.name == format!("{want}{release}")) {
            bail!(
                "{image_pkg} does not depend on {want}{release} (Depends: {depends}): not the \
                 split kernel layout this lab knows"
            );
        }
    }
    Ok(parts)
}

/// An unpacked kernel package.
#[derive(Clone, Debug)]
pub struct Kernel {
    pub flavor: Flavor,
    /// The apt package it came from (for `Layout::Split`, the metapackage).
    pub package: String,
    /// `uname -r`, e.g. `6.1.0-56-amd64`.
    pub release: String,
    pub vmlinuz: PathBuf,
    /// `lib/modules/<release>` inside the unpacked package.
    pub moddir: PathBuf,
}

pub fn cache_dir() -> PathBuf {
    util::target_dir().join("lab/cache")
}

/// Returns the cached kernel, downloading and unpacking it on first use.
pub fn ensure(flavor: Flavor) -> Result<Kernel> {
    let dir = cache_dir().join(flavor.label());
    let stamp = dir.join("package.txt");
    if let Ok(text) = fs::read_to_string(&stamp)
        && let Some(pkg) = text.lines().next()
        && let Ok(k) = locate(flavor, pkg.trim(), &dir.join("root"))
    {
        return Ok(k);
    }
    let t0 = Instant::now();
    let apt = PrivateApt::new(flavor)?;
    apt.update()?;
    let pkg = apt.newest(flavor)?;
    // name[=version] of every .deb to unpack.
    let parts: Vec<String> = match flavor.layout() {
        Layout::Image => vec![pkg.clone()],
        Layout::Split => {
            let stanza = output(
                apt.cmd("apt-cache")
                    .args(["show", "--no-all-versions"])
                    .arg(&pkg),
            )?;
            split_parts(&pkg, &stanza)?
                .into_iter()
                .map(|d| match d.exact {
                    Some(v) => format!("{}={v}", d.name),
                    None => d.name,
                })
                .collect()
        }
    };
    let t_dl = Instant::now();
    let mut debs = Vec::new();
    for p in &parts {
        eprintln!("lab: downloading {p}");
        debs.push(apt.download(p)?);
    }
    let dl = t_dl.elapsed();
    let t_unpack = Instant::now();
    let root = dir.join("root");
    let _ = fs::remove_dir_all(&root);
    util::mkdirp(&root)?;
    for deb in &debs {
        run(Command::new("dpkg").arg("-x").arg(deb).arg(&root))?;
    }
    let k = locate(flavor, &pkg, &root)?;
    let mut text = format!("{pkg}\n");
    for p in &parts {
        text.push_str(&format!("{p}\n"));
    }
    fs::write(&stamp, text)?;
    let mb: u64 = debs
        .iter()
        .filter_map(|d| fs::metadata(d).ok())
        .map(|m| m.len())
        .sum::<u64>()
        >> 20;
    eprintln!(
        "lab: unpacked {} ({}): {} package(s), {mb} MiB, download {:.1?}, unpack {:.1?}, \
         {:.1?} in all with apt",
        k.release,
        k.vmlinuz.display(),
        debs.len(),
        dl,
        t_unpack.elapsed(),
        t0.elapsed()
    );
    Ok(k)
}

/// The kernel image in an unpacked root: `boot/vmlinuz-<release>` (Layout::Image) or
/// `usr/lib/modules/<release>/vmlinuz` (Layout::Split).
fn locate(flavor: Flavor, pkg: &str, root: &Path) -> Result<Kernel> {
    let mut found: Vec<(String, PathBuf)> = Vec::new();
    match flavor.layout() {
        Layout::Image => {
            let boot = root.join("boot");
            for e in fs::read_dir(&boot)
                .with_context(|| format!("reading {}", boot.display()))?
                .filter_map(|e| e.ok())
            {
                if let Some(r) = e
                    .file_name()
                    .to_str()
                    .and_then(|n| n.strip_prefix("vmlinuz-"))
                {
                    found.push((r.to_string(), e.path()));
                }
            }
        }
        Layout::Split => {
            for d in ["usr/lib/modules", "lib/modules"] {
                let Ok(rd) = fs::read_dir(root.join(d)) else {
                    continue;
                };
                for e in rd.filter_map(|e| e.ok()) {
                    let v = e.path().join("vmlinuz");
                    if let (Some(r), true) = (e.file_name().to_str(), v.is_file()) {
                        found.push((r.to_string(), v));
                    }
                }
            }
        }
    }
    let (release, vmlinuz) = match found.len() {
        1 => found.remove(0),
        0 => bail!("no vmlinuz of {pkg} under {}", root.display()),
        _ => bail!(
            "more than one kernel under {}: {:?}",
            root.display(),
            found.iter().map(|f| &f.0).collect::<Vec<_>>()
        ),
    };
    if flavor.layout() == Layout::Split && release_of_image(pkg) != Some(release.as_str()) {
        bail!("{pkg} unpacked a kernel {release}, not the one its name says");
    }
    let moddir = ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|d| root.join(d).join(&release))
        .find(|d| d.join("kernel").is_dir())
        .with_context(|| format!("no modules for {release} under {}", root.display()))?;
    Ok(Kernel {
        flavor,
        package: pkg.to_string(),
        release,
        vmlinuz,
        moddir,
    })
}

/// apt with its own sources list, lists and archive cache under
/// `target/lab/cache/apt/<line>/`, reusing the mirrors the system is configured with.
struct PrivateApt {
    dir: PathBuf,
}

impl PrivateApt {
    fn new(flavor: Flavor) -> Result<Self> {
        let dir = cache_dir().join("apt").join(flavor.label());
        util::mkdirp(&dir.join("lists/partial"))?;
        util::mkdirp(&dir.join("cache/archives/partial"))?;
        let (main, security) = system_mirrors()?;
        let (suites, with_security) = flavor.suites();
        fs::write(
            dir.join("sources.list"),
            sources_list(&main, security.as_deref(), suites, with_security),
        )?;
        Ok(Self { dir })
    }

    fn cmd(&self, prog: &str) -> Command {
        let d = |s: &str| self.dir.join(s).display().to_string();
        let mut c = Command::new(prog);
        for (k, v) in [
            ("Dir::Etc::SourceList", d("sources.list")),
            ("Dir::Etc::SourceParts", "/dev/null".to_string()),
            ("Dir::State::Lists", d("lists")),
            ("Dir::Cache", d("cache")),
            // Download as root into our own directory (no _apt sandbox user).
            ("APT::Sandbox::User", "root".to_string()),
            // Only the Packages lists: no AppStream metadata (sid's is 6 MB).
            (
                "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled",
                "false".to_string(),
            ),
            (
                "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled",
                "false".to_string(),
            ),
            (
                "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled",
                "false".to_string(),
            ),
        ] {
            c.arg("-o").arg(format!("{k}={v}"));
        }
        c
    }

    fn update(&self) -> Result<()> {
        eprintln!(
            "lab: apt-get update (private lists in {})",
            self.dir.display()
        );
        output(self.cmd("apt-get").arg("-q").arg("update")).map(|_| ())
    }

    fn newest(&self, flavor: Flavor) -> Result<String> {
        let out = output(self.cmd("apt-cache").args([
            "search",
            "--names-only",
            &flavor.search_pattern(),
        ]))?;
        newest_of(flavor, &out).with_context(|| {
            format!(
                "no linux-image for {} in the package lists ({})",
                flavor.label(),
                self.dir.join("sources.list").display()
            )
        })
    }

    /// `apt-get download NAME[=VERSION]` into the shared .deb cache.
    fn download(&self, spec: &str) -> Result<PathBuf> {
        let debs = cache_dir().join("debs");
        util::mkdirp(&debs)?;
        run(self
            .cmd("apt-get")
            .current_dir(&debs)
            .args(["-q", "download", spec]))?;
        let (pkg, version) = match spec.split_once('=') {
            Some((p, v)) => (p, Some(v)),
            None => (spec, None),
        };
        // apt writes NAME_VERSION_ARCH.deb with the version's ':' as "%3a".
        let prefix = match version {
            Some(v) => format!("{pkg}_{}_", v.replace(':', "%3a")),
            None => format!("{pkg}_"),
        };
        fs::read_dir(&debs)?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
            })
            .with_context(|| format!("apt-get download {spec} left no .deb"))
    }
}

/// The newest package of `flavor` in `apt-cache search` output.
pub fn newest_of(flavor: Flavor, search: &str) -> Option<String> {
    let mut pkgs: Vec<&str> = search
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|p| flavor.matches(p))
        .collect();
    pkgs.sort_by(|a, b| natural_cmp(a, b));
    pkgs.last().map(|s| s.to_string())
}

/// The private sources list: `suites` of the main mirror, and bookworm-security when asked
/// and known. Verified with the host's Debian archive keyring (debian-archive-keyring
/// 2023.3+deb12u2 on bookworm 12.11 holds the 12/bookworm and 13/trixie archive keys; the
/// trixie-backports and sid Release files are signed by both).
fn sources_list(
    main: &str,
    security: Option<&str>,
    suites: &[&str],
    with_security: bool,
) -> String {
    let key = "/usr/share/keyrings/debian-archive-keyring.gpg";
    let mut list = String::new();
    for suite in suites {
        list.push_str(&format!("deb [signed-by={key}] {main} {suite} main\n"));
    }
    if let (Some(sec), true) = (security, with_security) {
        list.push_str(&format!(
            "deb [signed-by={key}] {sec} bookworm-security main\n"
        ));
    }
    list
}

/// The Debian archive and security mirrors from the system's apt sources
/// (one-line `.list` and deb822 `.sources` files).
fn system_mirrors() -> Result<(String, Option<String>)> {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(rd) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    let mut text = String::new();
    for f in files {
        if let Ok(t) = fs::read_to_string(&f) {
            text.push_str(&t);
            text.push('\n');
        }
    }
    parse_mirrors(&text)
        .context("no Debian mirror (an entry for suite bookworm) in /etc/apt/sources.list{,.d/*}")
}

/// (uri, suites) pairs of every `deb` entry in apt sources text.
fn source_entries(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    // One-line format.
    for l in text.lines() {
        let l = l.trim();
        if let Some(rest) = l.strip_prefix("deb ") {
            let mut toks: Vec<&str> = Vec::new();
            let mut in_opts = false;
            for t in rest.split_whitespace() {
                if t.starts_with('[') {
                    in_opts = !t.ends_with(']');
                    continue;
                }
                if in_opts {
                    in_opts = !t.ends_with(']');
                    continue;
                }
                toks.push(t);
            }
            if toks.len() >= 2 {
                out.push((toks[0].to_string(), vec![toks[1].to_string()]));
            }
        }
    }
    // deb822 stanzas.
    for stanza in text.split("\n\n") {
        let mut uris = Vec::new();
        let mut suites = Vec::new();
        let mut is_deb = false;
        for l in stanza.lines() {
            if let Some((k, v)) = l.split_once(':') {
                match k.trim() {
                    "Types" => is_deb = v.split_whitespace().any(|t| t == "deb"),
                    "URIs" => uris = v.split_whitespace().map(String::from).collect(),
                    "Suites" => suites = v.split_whitespace().map(String::from).collect(),
                    _ => {}
                }
            }
        }
        if is_deb {
            for u in uris {
                out.push((u, suites.clone()));
            }
        }
    }
    out
}

fn parse_mirrors(text: &str) -> Option<(String, Option<String>)> {
    let entries = source_entries(text);
    let main = entries
        .iter()
        .find(|(_, s)| s.iter().any(|s| s == "bookworm"))?
        .0
        .clone();
    let security = entries
        .iter()
        .find(|(_, s)| s.iter().any(|s| s == "bookworm-security"))
        .map(|e| e.0.clone());
    Some((main, security))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names() {
        assert!(Flavor::V6_1.matches("linux-image-6.1.0-56-amd64-unsigned"));
        assert!(!Flavor::V6_1.matches("linux-image-6.1.0-56-cloud-amd64-unsigned"));
        assert!(!Flavor::V6_1.matches("linux-image-6.12.117+deb12-amd64-unsigned"));
        assert!(Flavor::V6_12.matches("linux-image-6.12.117+deb12-amd64-unsigned"));
        assert!(Flavor::V6_12.matches("linux-image-6.12.9+bpo-amd64-unsigned"));
        assert!(!Flavor::V6_12.matches("linux-image-6.12.117+deb12-rt-amd64-unsigned"));
        assert!(!Flavor::V6_12.matches("linux-image-6.12.117+deb12-cloud-amd64-unsigned"));
        // Split layout (trixie-backports, sid): the metapackage, not its parts or variants.
        assert!(Flavor::V7_3.matches("linux-image-7.3.4+deb13-amd64"));
        assert!(!Flavor::V7_3.matches("linux-image-7.3.4+deb13-cloud-amd64"));
        assert!(!Flavor::V7_3.matches("linux-image-7.3.4+deb13-rt-amd64"));
        assert!(!Flavor::V7_3.matches("linux-binary-7.3.4+deb13-amd64"));
        assert!(!Flavor::V7_3.matches("linux-modules-7.3.4+deb13-amd64"));
        assert!(!Flavor::V7_3.matches("linux-image-amd64"));
        assert!(!Flavor::V7_3.matches("linux-image-7.3.4+deb13-amd64-dbg"));
        assert!(!Flavor::V7_3.matches("linux-image-7.2.13+deb14-amd64"));
        assert!(Flavor::V7_2.matches("linux-image-7.2.13+deb14-amd64"));
        assert!(Flavor::V7_2.matches("linux-image-7.2.6+deb13-amd64"));
        assert!(!Flavor::V7_2.matches("linux-image-7.20.1+deb14-amd64"));
        // 6.18 in trixie-backports is a full image, but not a line the lab fetches.
        assert!(!Flavor::V6_12.matches("linux-image-6.18.15+deb13-amd64"));
        assert!(!Flavor::V6_12.matches("linux-image-6.12.117+deb12-amd64"));
    }

    #[test]
    fn kernel_names() {
        let labels = |v: Vec<Flavor>| v.iter().map(|f| f.label()).collect::<Vec<_>>();
        assert_eq!(
            labels(Flavor::parse("all").unwrap()),
            ["6.1", "6.12", "7.3"]
        );
        assert_eq!(labels(Flavor::parse("newest").unwrap()), ["7.3"]);
        assert_eq!(labels(Flavor::parse("7.2").unwrap()), ["7.2"]);
        assert_eq!(
            labels(Flavor::parse("6.12,newest,7.3").unwrap()),
            ["6.12", "7.3"]
        );
        assert_eq!(
            labels(Flavor::parse("all,7.2").unwrap()),
            ["6.1", "6.12", "7.3", "7.2"]
        );
        for bad in ["7.4", "", "6.1,", "6.1.0", "latest"] {
            let e = Flavor::parse(bad).unwrap_err().to_string();
            assert!(
                e.contains("use 6.1, 6.12, 7.2, 7.3, newest (= 7.3)"),
                "{bad}: {e}"
            );
        }
        // The newest line the lab knows is the newest of KNOWN.
        assert!(
            KNOWN
                .iter()
                .all(|f| natural_cmp(f.label(), NEWEST.label()).is_le())
        );
    }

    #[test]
    fn newest_in_search_output() {
        // apt-cache search output seen with trixie-backports and sid.
        let out = "linux-image-7.2.11+deb13-amd64 - Linux 7.2.11 for 64-bit PCs\n\
                   linux-image-7.2.13+deb14-amd64 - Linux 7.2.13 for 64-bit PCs\n\
                   linux-image-7.2.13+deb14-cloud-amd64 - Linux 7.2.13 for x86-64 cloud\n\
                   linux-image-7.2.9+deb13-amd64 - Linux 7.2.9 for 64-bit PCs\n\
                   linux-image-7.3.4+deb13-amd64 - Linux 7.3.4 for 64-bit PCs\n\
                   linux-image-7.3.4+deb13-rt-amd64 - Linux 7.3.4 for 64-bit PCs, PREEMPT_RT\n";
        assert_eq!(
            newest_of(Flavor::V7_2, out).as_deref(),
            Some("linux-image-7.2.13+deb14-amd64")
        );
        assert_eq!(
            newest_of(Flavor::V7_3, out).as_deref(),
            Some("linux-image-7.3.4+deb13-amd64")
        );
        assert_eq!(newest_of(Flavor::V6_12, out), None);
        assert_eq!(
            release_of_image("linux-image-7.3.4+deb13-amd64"),
            Some("7.3.4+deb13-amd64")
        );
        assert_eq!(release_of_image("linux-binary-7.3.4+deb13-amd64"), None);
    }

    /// `apt-cache show --no-all-versions linux-image-7.3.4+deb13-amd64` (trixie-backports).
    const META_7_3: &str = "Package: linux-image-7.3.4+deb13-amd64\n\
Source: linux-signed-amd64 (7.3.4+1~bpo13+1)\n\
Version: 7.3.4-1~bpo13+1\n\
Installed-Size: 15\n\
Maintainer: Debian Kernel Team <debian-kernel@lists.debian.org>\n\
Architecture: amd64\n\
Depends: dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, linux-base-7.3.4+deb13-amd64 (= 7.3.4-1~bpo13+1), linux-binary-7.3.4+deb13-amd64 (= 7.3.4-1~bpo13+1), linux-modules-7.3.4+deb13-amd64 (= 7.3.4-1~bpo13+1)\n\
Pre-Depends: linux-base (>= 4.17~)\n\
Recommends: apparmor\n\
Breaks: fwupdate (<< 12-7), initramfs-tools (<< 0.120+deb8u2), wireless-regdb (<< 2019.06.03-1~)\n\
Description: Linux 7.3.4 for 64-bit PCs\n\
Size: 1900\n\
\n";

    #[test]
    fn metapackage_depends() {
        let parts = split_parts("linux-image-7.3.4+deb13-amd64", META_7_3).unwrap();
        let specs: Vec<String> = parts
            .iter()
            .map(|d| format!("{}={}", d.name, d.exact.as_deref().unwrap_or("?")))
            .collect();
        assert_eq!(
            specs,
            [
                "linux-base-7.3.4+deb13-amd64=7.3.4-1~bpo13+1",
                "linux-binary-7.3.4+deb13-amd64=7.3.4-1~bpo13+1",
                "linux-modules-7.3.4+deb13-amd64=7.3.4-1~bpo13+1",
            ]
        );
        // The whole field: alternatives and inexact versions are kept apart.
        let deps = parse_depends(&control_field(META_7_3, "Depends").unwrap()).unwrap();
        assert_eq!(deps.len(), 6);
        assert_eq!(
            deps[1],
            Dep {
                name: "initramfs-tools".into(),
                exact: None,
                alternative: true
            }
        );
        assert_eq!(
            control_field(META_7_3, "Pre-Depends").as_deref(),
            Some("linux-base (>= 4.17~)")
        );
        // sid's 7.2, Depends folded over two lines.
        let sid = "Package: linux-image-7.2.13+deb14-amd64\nVersion: 7.2.13-1\nDepends: dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool,\n linux-base-7.2.13+deb14-amd64 (= 7.2.13-1), linux-binary-7.2.13+deb14-amd64 (= 7.2.13-1),\n linux-modules-7.2.13+deb14-amd64 (= 7.2.13-1)\nSize: 1892\n";
        let parts = split_parts("linux-image-7.2.13+deb14-amd64", sid).unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[2].name, "linux-modules-7.2.13+deb14-amd64");
        assert_eq!(parts[2].exact.as_deref(), Some("7.2.13-1"));
    }

    #[test]
    fn metapackage_errors() {
        // 6.18 (trixie-backports) is still a full image: no parts.
        let full = "Package: linux-image-6.18.15+deb13-amd64\nVersion: 6.18.15-1~bpo13+1\nDepends: dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, kmod, linux-base-6.18.15+deb13-amd64 (= 6.18.15-1~bpo13+1)\n";
        let e = split_parts("linux-image-6.18.15+deb13-amd64", full)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("does not depend on linux-binary-6.18.15+deb13-amd64"),
            "{e}"
        );
        // A stanza whose only Depends is in the second stanza does not count.
        let e = split_parts(
            "linux-image-7.3.4+deb13-amd64",
            "Package: x\n\nDepends: y\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no Depends field"), "{e}");
        assert!(split_parts("linux-modules-7.3.4+deb13-amd64", META_7_3).is_err());
        assert!(parse_depends("a (= 1").is_err());
        assert!(parse_depends("a (= )").is_err());
        assert!(parse_depends("(= 1)").is_err());
        assert!(parse_depends("a, , b").unwrap().len() == 2);
    }

    #[test]
    fn mirrors_from_both_formats() {
        let deb822 = "Types: deb\n# comment\nURIs: http://m.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: http://m.example/debian-security\nSuites: bookworm-security\nComponents: main\n";
        assert_eq!(
            parse_mirrors(deb822),
            Some((
                "http://m.example/debian".into(),
                Some("http://m.example/debian-security".into())
            ))
        );
        assert_eq!(
            sources_list(
                "http://m/debian",
                Some("http://m/sec"),
                &["trixie-backports"],
                false
            ),
            "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://m/debian trixie-backports main\n"
        );
        assert!(
            sources_list(
                "http://m/debian",
                Some("http://m/sec"),
                BOOKWORM_SUITES,
                true
            )
            .ends_with(" http://m/sec bookworm-security main\n")
        );
        let oneline = "deb [arch=amd64 signed-by=/k.gpg] http://x/debian bookworm main\n";
        assert_eq!(
            parse_mirrors(oneline),
            Some(("http://x/debian".into(), None))
        );
    }
}
