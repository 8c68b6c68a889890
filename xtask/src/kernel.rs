//! Debian kernel packages for the lab: downloaded with apt through a private
//! sources list and state directory (the system's apt configuration is left
//! alone), unpacked with `dpkg -x`, and cached under `target/lab/cache/`.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::util::{self, natural_cmp, output, run};

/// A kernel the lab knows how to fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// Debian bookworm's 6.1 (`linux-image-6.1.0-N-amd64-unsigned`).
    V6_1,
    /// 6.12 from bookworm-security/backports (`linux-image-6.12.N+...-amd64-unsigned`).
    V6_12,
}

impl Flavor {
    pub fn label(self) -> &'static str {
        match self {
            Flavor::V6_1 => "6.1",
            Flavor::V6_12 => "6.12",
        }
    }

    pub fn parse(s: &str) -> Result<Vec<Flavor>> {
        Ok(match s {
            "6.1" => vec![Flavor::V6_1],
            "6.12" => vec![Flavor::V6_12],
            "all" => vec![Flavor::V6_1, Flavor::V6_12],
            _ => bail!("unknown kernel {s:?}: use 6.1, 6.12 or all"),
        })
    }

    /// Whether an apt package name is an image of this kernel line.
    pub fn matches(self, pkg: &str) -> bool {
        let Some(rest) = pkg
            .strip_prefix("linux-image-")
            .and_then(|r| r.strip_suffix("-amd64-unsigned"))
        else {
            return false;
        };
        match self {
            // 6.1.0-56
            Flavor::V6_1 => rest
                .strip_prefix("6.1.0-")
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())),
            // 6.12.117+deb12, 6.12.9+bpo, 6.12.38
            Flavor::V6_12 => rest.strip_prefix("6.12.").is_some_and(|r| {
                let (num, tag) = r.split_once('+').unwrap_or((r, "x"));
                !num.is_empty()
                    && num.chars().all(|c| c.is_ascii_digit())
                    && !tag.is_empty()
                    && tag
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '~')
            }),
        }
    }
}

/// An unpacked kernel package.
#[derive(Clone, Debug)]
pub struct Kernel {
    pub flavor: Flavor,
    /// The apt package it came from.
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
    if let Ok(pkg) = fs::read_to_string(&stamp)
        && let Ok(k) = locate(flavor, pkg.trim(), &dir.join("root"))
    {
        return Ok(k);
    }
    let apt = PrivateApt::new()?;
    apt.update()?;
    let pkg = apt.newest(flavor)?;
    eprintln!("lab: downloading {pkg}");
    let deb = apt.download(&pkg)?;
    let root = dir.join("root");
    let _ = fs::remove_dir_all(&root);
    util::mkdirp(&root)?;
    run(Command::new("dpkg").arg("-x").arg(&deb).arg(&root))?;
    let k = locate(flavor, &pkg, &root)?;
    fs::write(&stamp, format!("{pkg}\n"))?;
    eprintln!("lab: unpacked {} ({})", k.release, k.vmlinuz.display());
    Ok(k)
}

fn locate(flavor: Flavor, pkg: &str, root: &Path) -> Result<Kernel> {
    let boot = root.join("boot");
    let vmlinuz = fs::read_dir(&boot)
        .with_context(|| format!("reading {}", boot.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .with_context(|| format!("no vmlinuz in {}", boot.display()))?;
    let release = vmlinuz
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .context("vmlinuz name")?
        .to_string();
    let moddir = ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|d| root.join(d).join(&release))
        .find(|d| d.is_dir())
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
/// `target/lab/cache/apt`, reusing the mirrors the system is configured with.
struct PrivateApt {
    dir: PathBuf,
}

impl PrivateApt {
    fn new() -> Result<Self> {
        let dir = cache_dir().join("apt");
        util::mkdirp(&dir.join("lists/partial"))?;
        util::mkdirp(&dir.join("cache/archives/partial"))?;
        let (main, security) = system_mirrors()?;
        let key = "/usr/share/keyrings/debian-archive-keyring.gpg";
        let mut list = String::new();
        for suite in ["bookworm", "bookworm-updates", "bookworm-backports"] {
            list.push_str(&format!("deb [signed-by={key}] {main} {suite} main\n"));
        }
        if let Some(sec) = security {
            list.push_str(&format!(
                "deb [signed-by={key}] {sec} bookworm-security main\n"
            ));
        }
        fs::write(dir.join("sources.list"), list)?;
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
            "^linux-image-6\\.[0-9.]+.*-amd64-unsigned$",
        ]))?;
        let mut pkgs: Vec<&str> = out
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|p| flavor.matches(p))
            .collect();
        pkgs.sort_by(|a, b| natural_cmp(a, b));
        pkgs.last()
            .map(|s| s.to_string())
            .with_context(|| format!("no linux-image for {} in the package lists", flavor.label()))
    }

    fn download(&self, pkg: &str) -> Result<PathBuf> {
        let debs = cache_dir().join("debs");
        util::mkdirp(&debs)?;
        run(self
            .cmd("apt-get")
            .current_dir(&debs)
            .args(["-q", "download", pkg]))?;
        fs::read_dir(&debs)?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{pkg}_")) && n.ends_with(".deb"))
            })
            .with_context(|| format!("apt-get download {pkg} left no .deb"))
    }
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
        let oneline = "deb [arch=amd64 signed-by=/k.gpg] http://x/debian bookworm main\n";
        assert_eq!(
            parse_mirrors(oneline),
            Some(("http://x/debian".into(), None))
        );
    }
}
