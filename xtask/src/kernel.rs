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

use crate::apt::PrivateApt;
use crate::kernel_line::{Flavor, Layout};
use crate::util::{self, output, run};

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

/// Returns the cached kernel, downloading and unpacking it on first use.
pub fn ensure(flavor: Flavor) -> Result<Kernel> {
    let dir = util::lab_cache_dir().join(flavor.label());
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

#[cfg(test)]
#[path = "kernel_tests.rs"]
mod tests;
