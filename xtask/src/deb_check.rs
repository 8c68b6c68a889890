//! `cargo xtask deb --check` (and a step of `cargo xtask test`): installs the package with dpkg
//! on this machine, runs what it installed, removes it and purges it, checking each step on
//! the real filesystem. Needs root; refuses when a notify package is installed already (the
//! check would remove someone's install).

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, Result, bail};

use crate::{deb, util};

/// Files the package must install and that remove (not purge) must take away.
const PROGRAM_FILES: &[&str] = &[
    "/usr/bin/notify",
    "/lib/systemd/system/notify-agent.service",
    "/usr/lib/modules-load.d/notify.conf",
    "/usr/share/man/man1/notify.1.gz",
    "/usr/share/man/man1/notify-agent.1.gz",
    "/usr/share/man/man1/notify-journal-list.1.gz",
    "/usr/share/bash-completion/completions/notify",
    "/usr/share/zsh/vendor-completions/_notify",
    "/usr/share/fish/vendor_completions.d/notify.fish",
    "/usr/share/doc/notify/AGENT.md",
    "/usr/share/notify/prometheus/notify.rules.yml",
    "/usr/share/notify/grafana/notify.json",
];

pub fn check(deb: &Path) -> Result<()> {
    let t0 = Instant::now();
    if !util::is_root() {
        bail!(
            "the package check installs with dpkg: run it as root (sudo -E cargo xtask deb --check)"
        );
    }
    if known() {
        bail!(
            "a notify package is on this machine already ({}): the check would purge it; \
             `dpkg --purge notify` first if it may go",
            status().trim()
        );
    }
    let _guard = Purge;
    util::run(Command::new("dpkg").arg("-i").arg(deb)).context("dpkg -i")?;
    if !installed() {
        bail!(
            "dpkg -i {} succeeded but dpkg-query does not list notify",
            deb.display()
        );
    }
    for f in PROGRAM_FILES.iter().chain(deb::CONFFILES) {
        if !Path::new(f).exists() {
            let hint = if f.starts_with("/usr/share/man") || f.starts_with("/usr/share/doc") {
                " (a path-exclude in /etc/dpkg/dpkg.cfg.d/ drops it?)"
            } else {
                ""
            };
            bail!("the installed package has no {f}{hint}");
        }
    }

    // What runs is the packaged binary, on the PATH, with its version.
    let v = util::output(Command::new("notify").arg("--version"))?;
    let want = util::output(Command::new("dpkg-query").args(["-W", "-f=${Version}", "notify"]))?;
    if v.trim() != format!("notify {}", want.trim()) {
        bail!("notify --version says {v:?}, the package is {want:?}");
    }
    let which = util::output(Command::new("sh").args(["-c", "command -v notify"]))?;
    if which.trim() != "/usr/bin/notify" {
        bail!("`notify` on the PATH is {which:?}, not the packaged /usr/bin/notify");
    }
    // The installed unit runs the installed binary (verify fails on a missing ExecStart path).
    util::run(
        Command::new("systemd-analyze")
            .args(["verify", "/lib/systemd/system/notify-agent.service"]),
    )
    .context("systemd-analyze verify of the installed unit")?;
    // man finds the pages through its own search path (man-db), not by a path we give it.
    for page in ["notify", "notify-agent", "notify-journal-list"] {
        let w = util::output(Command::new("man").args(["-w", page]))
            .with_context(|| format!("man -w {page} (man-db: cargo xtask setup installs it)"))?;
        let want = format!("/usr/share/man/man1/{page}.1.gz");
        if w.trim() != want {
            bail!("man -w {page} says {w:?}, want {want}");
        }
    }
    let conffiles =
        util::output(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", "notify"]))?;
    for c in deb::CONFFILES {
        if !conffiles.contains(c) {
            bail!("dpkg does not list {c} as a conffile: {conffiles:?}");
        }
    }

    // Remove: the program goes, the conffile stays (that is what a conffile is).
    util::run(Command::new("dpkg").args(["-r", "notify"])).context("dpkg -r notify")?;
    let left = existing(PROGRAM_FILES);
    if !left.is_empty() {
        bail!("dpkg -r left {left:?}");
    }
    for c in deb::CONFFILES {
        if !Path::new(c).exists() {
            bail!("dpkg -r removed the conffile {c}: only purge may");
        }
    }
    // Purge: nothing of it is left.
    util::run(Command::new("dpkg").args(["--purge", "notify"])).context("dpkg --purge notify")?;
    let left = existing(deb::CONFFILES);
    if !left.is_empty() {
        bail!("dpkg --purge left {left:?}");
    }
    if Path::new("/etc/notify").exists() {
        bail!("dpkg --purge left /etc/notify");
    }
    if known() {
        bail!("dpkg still knows notify after --purge: {}", status().trim());
    }
    eprintln!(
        "deb check: installed, ran notify --version and man -w, removed (conffile kept), purged \
         (nothing left) in {:.1?}",
        t0.elapsed()
    );
    Ok(())
}

fn existing(list: &[&str]) -> Vec<PathBuf> {
    list.iter()
        .map(PathBuf::from)
        .filter(|p| p.exists())
        .collect()
}

fn status() -> String {
    util::try_output("dpkg-query", &["-W", "-f=${Status}", "notify"]).unwrap_or_default()
}

fn installed() -> bool {
    status().contains("install ok installed")
}

/// Installed, half-way, or removed with its conffiles still there ("config-files"): any state
/// but never heard of or "not-installed".
fn known() -> bool {
    let s = status();
    s.split_whitespace()
        .last()
        .is_some_and(|state| state != "not-installed")
}

/// Purges the package whatever happened, so that a failed check leaves no install behind.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        if known() {
            let _ = Command::new("dpkg").args(["--purge", "notify"]).status();
        }
    }
}
