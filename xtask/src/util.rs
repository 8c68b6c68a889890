//! Small process and file helpers shared by the subcommands.

use std::{
    ffi::OsStr,
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

/// The workspace root (the parent of this crate's manifest directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

/// Downloaded kernels and packages of the lab (`target/lab/cache/`).
pub fn lab_cache_dir() -> PathBuf {
    target_dir().join("lab/cache")
}

/// `target/` of the workspace, honouring CARGO_TARGET_DIR.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => PathBuf::from(d),
        None => workspace_root().join("target"),
    }
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs a command with inherited stdio; fails on a non-zero exit.
pub fn run(cmd: &mut Command) -> Result<()> {
    let what = describe(cmd);
    let status = cmd.status().with_context(|| format!("spawning `{what}`"))?;
    if !status.success() {
        bail!("`{what}` failed: {status}");
    }
    Ok(())
}

/// Runs a command and returns its stdout; fails (with stderr) on a non-zero exit.
pub fn output(cmd: &mut Command) -> Result<String> {
    let what = describe(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("spawning `{what}`"))?;
    if !out.status.success() {
        bail!(
            "`{what}` failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Like [`output`] but `None` when the program is missing or fails.
pub fn try_output<S: AsRef<OsStr>>(prog: &str, args: &[S]) -> Option<String> {
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// True when we run as root (`id -u` is 0).
pub fn is_root() -> bool {
    try_output::<&str>("id", &["-u"]).is_some_and(|s| s.trim() == "0")
}

/// Creates a directory and its parents.
pub fn mkdirp(p: &Path) -> Result<()> {
    fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))
}

/// Compares version-like strings by their numeric and textual runs
/// ("6.12.9" < "6.12.117", "6.1.0-9" < "6.1.0-56").
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn runs(s: &str) -> Vec<(bool, String)> {
        let mut v: Vec<(bool, String)> = Vec::new();
        for c in s.chars() {
            let d = c.is_ascii_digit();
            match v.last_mut() {
                Some((isd, run)) if *isd == d => run.push(c),
                _ => v.push((d, c.to_string())),
            }
        }
        v
    }
    let (ra, rb) = (runs(a), runs(b));
    for (x, y) in ra.iter().zip(rb.iter()) {
        let ord = match (x.0, y.0) {
            (true, true) => {
                let (xa, ya) = (x.1.trim_start_matches('0'), y.1.trim_start_matches('0'));
                xa.len().cmp(&ya.len()).then_with(|| xa.cmp(ya))
            }
            _ => x.1.cmp(&y.1),
        };
        if ord.is_ne() {
            return ord;
        }
    }
    ra.len().cmp(&rb.len())
}

#[cfg(test)]
mod tests {
    use super::natural_cmp;

    #[test]
    fn natural_order() {
        let mut v = [
            "linux-image-6.12.117+deb12-amd64-unsigned",
            "linux-image-6.12.9+bpo-amd64-unsigned",
            "linux-image-6.12.111+deb12-amd64-unsigned",
        ];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            v.last().unwrap(),
            &"linux-image-6.12.117+deb12-amd64-unsigned"
        );
        let mut w = ["6.1.0-9-amd64", "6.1.0-56-amd64", "6.1.0-55-amd64"];
        w.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(w, ["6.1.0-9-amd64", "6.1.0-55-amd64", "6.1.0-56-amd64"]);
    }
}
