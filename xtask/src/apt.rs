//! apt for the lab's kernels: a private sources list, lists and archive cache per kernel line
//! under `target/lab/cache/apt/<line>/` (the system's apt configuration is left alone), reusing
//! the mirrors the system is configured with.

use std::{fs, path::PathBuf, process::Command};

use anyhow::{Context as _, Result};

use crate::{
    kernel_line::Flavor,
    util::{self, natural_cmp, output, run},
};

/// apt with its own sources list, lists and archive cache under
/// `target/lab/cache/apt/<line>/`, reusing the mirrors the system is configured with.
pub struct PrivateApt {
    dir: PathBuf,
}

impl PrivateApt {
    pub fn new(flavor: Flavor) -> Result<Self> {
        let dir = util::lab_cache_dir().join("apt").join(flavor.label());
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

    pub fn cmd(&self, prog: &str) -> Command {
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

    pub fn update(&self) -> Result<()> {
        eprintln!(
            "lab: apt-get update (private lists in {})",
            self.dir.display()
        );
        output(self.cmd("apt-get").arg("-q").arg("update")).map(|_| ())
    }

    pub fn newest(&self, flavor: Flavor) -> Result<String> {
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
    pub fn download(&self, spec: &str) -> Result<PathBuf> {
        let debs = util::lab_cache_dir().join("debs");
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
pub fn sources_list(
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

pub fn parse_mirrors(text: &str) -> Option<(String, Option<String>)> {
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
