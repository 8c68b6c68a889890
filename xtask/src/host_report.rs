//! The host side of every lab session: each session file the guest sent back (a scenario's agent
//! `--session`, the mount suite's `notify record`) is rendered with the host's `notify report`
//! next to it under `target/lab/<kernel>/<flavour>/<scenario>/` (report.txt, report.svg, and
//! report.png when rsvg-convert exists). The checks read the text and SVG
//! (`crate::checks`).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use crate::{util, vm};

/// The host's notify binary for `notify report`: the one given with --agent, else the
/// workspace's debug or release build.
pub fn host_notify(agent: Option<&Path>) -> Option<PathBuf> {
    if let Some(a) = agent {
        return Some(a.to_path_buf());
    }
    ["debug", "release"]
        .iter()
        .map(|p| util::target_dir().join(p).join("notify"))
        .find(|p| p.exists())
}

/// The transcript with the host's reports of every session that came back ([`host_report`]).
pub fn with_host_report(
    mut t: vm::Transcript,
    out: &Path,
    notify: Option<&Path>,
) -> vm::Transcript {
    host_report(&mut t, out, notify);
    t
}

/// The report files of a session file: `session.json` -> `report`, `session_X.json` ->
/// `report_X`; None for a file that is not a session.
pub fn report_stem(session: &str) -> Option<String> {
    let rest = session.strip_prefix("session")?.strip_suffix(".json")?;
    (rest.is_empty() || rest.starts_with('_')).then(|| format!("report{rest}"))
}

/// Renders every session the guest sent (each scenario's agent writes one with `--session`;
/// the mount suite's comes from `notify record`) with the host's `notify report`, next to it
/// under `out/<scenario>/`: report.txt and report.svg go into the transcript (the checks read
/// them), report.png is drawn when rsvg-convert exists. Says what it did on stderr; a failure
/// leaves the report files out (the checks say so).
pub fn host_report(t: &mut vm::Transcript, out: &Path, notify: Option<&Path>) {
    let sessions: Vec<(String, String, String)> = t
        .files
        .iter()
        .filter_map(|(k, body)| {
            let (sc, name) = k.split_once('/')?;
            let stem = report_stem(name)?;
            Some((format!("{sc}/{name}"), stem, body.clone()))
        })
        .collect();
    if sessions.is_empty() {
        return;
    }
    let Some(notify) = host_notify(notify) else {
        eprintln!("lab: no host notify binary for `notify report`");
        return;
    };
    let png_tool = on_path("rsvg-convert");
    let mut done = Vec::new();
    for (key, stem, body) in sessions {
        let sc = key.split_once('/').map_or("", |(s, _)| s).to_string();
        let dir = out.join(&sc);
        let session = out.join(&key);
        if let Err(e) = util::mkdirp(&dir)
            .and_then(|_| std::fs::write(&session, &body).map_err(anyhow::Error::from))
        {
            eprintln!("lab: writing {}: {e:#}", session.display());
            continue;
        }
        let svg = dir.join(format!("{stem}.svg"));
        let mut c = Command::new(&notify);
        c.arg("report").arg(&session).arg("--svg").arg(&svg);
        if png_tool {
            c.arg("--png").arg(dir.join(format!("{stem}.png")));
        }
        match c.output() {
            Ok(o) if o.status.success() => {
                let text = String::from_utf8_lossy(&o.stdout).into_owned();
                t.files.insert(format!("{sc}/{stem}.txt"), text);
                if let Ok(s) = std::fs::read_to_string(&svg) {
                    t.files.insert(format!("{sc}/{stem}.svg"), s);
                }
                done.push(format!("{sc}/{stem}"));
            }
            Ok(o) => eprintln!(
                "lab: notify report {key} failed ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => eprintln!("lab: running {}: {e}", notify.display()),
        }
    }
    if !done.is_empty() {
        eprintln!(
            "lab: {} report -> {}.{{txt,svg{}}}",
            notify.display(),
            done.join(", "),
            if png_tool { ",png" } else { "" }
        );
    }
}

fn on_path(prog: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
}
