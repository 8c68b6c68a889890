//! Room on disk for a test run, checked before anything is built or downloaded.
//!
//! A run that fills the disk fails minutes in, inside rustc or qemu, with an error about an
//! output stream ("IO failure on output stream: No space left on device") that says nothing of
//! what to free. CI once failed that way after 72 s, on a machine whose disk other clones of the
//! repository had filled. The test command checks first and says what it needs.

use std::{path::Path, process::Command};

use anyhow::{Context, Result, bail};

use crate::util;

const GIB: u64 = 1 << 30;

/// What a full run writes, measured with `du` on clean clones at the end of their run: 5.7 GiB
/// (debug build 3.4, fuzz build 1.2, kernel images and VM images under target/lab 0.5-1.0, the
/// package); rounded up to leave room for /tmp and the guests' scratch files.
pub const NEEDED_BYTES: u64 = 8 * GIB;

/// Bytes free on the filesystem of `path`, as `df` reports them (what a non-root writer may
/// still use: root's reserve left out).
pub fn free_bytes(path: &Path) -> Result<u64> {
    let out = util::output(Command::new("df").args(["--output=avail", "-B1"]).arg(path))?;
    out.lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .with_context(|| {
            format!(
                "df --output=avail {}: unexpected output {out:?}",
                path.display()
            )
        })
}

/// Fails, naming the filesystem, what is free and what is needed, when the target directory's
/// filesystem has less room than a test run writes.
pub fn check_room(needed: u64) -> Result<()> {
    let target = util::target_dir();
    let free = free_bytes(&target)?;
    if free < needed {
        bail!(
            "{} has {:.1} GiB free; a full test run writes about {:.0} GiB (builds, kernel \
             images, VM images): free some space (old clones' target/ directories, `cargo \
             clean`) or point CARGO_TARGET_DIR at a larger filesystem",
            target.display(),
            free as f64 / GIB as f64,
            needed as f64 / GIB as f64
        );
    }
    eprintln!(
        "xtask test: {:.1} GiB free under {} (a run needs about {:.0})",
        free as f64 / GIB as f64,
        target.display(),
        needed as f64 / GIB as f64
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_needing_more_than_the_disk_has_is_refused_by_name() {
        // df's answer for this filesystem parsed (any other failure names df, not GiB).
        let err = check_room(u64::MAX).unwrap_err().to_string();
        assert!(err.contains("GiB free"), "{err}");
        assert!(err.contains("free some space"), "{err}");
    }

    #[test]
    fn a_missing_directory_is_an_error_not_a_panic() {
        assert!(free_bytes(Path::new("/nonexistent/notify-disk-check")).is_err());
    }
}
