//! `notify manpages DIR` (hidden): writes notify(1) and one page per subcommand
//! (`notify-agent.1`, `notify-journal-list.1`, ...) from the command line's own definition, so
//! the pages never drift from the flags. The Debian package (`cargo xtask deb`) runs it.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;

#[derive(clap::Args, Debug)]
pub struct ManpagesArgs {
    /// The directory to write the pages into (created if missing).
    pub dir: PathBuf,
}

/// `cli` is the whole command line's definition (`Cli::command()`).
pub fn run(a: ManpagesArgs, cli: clap::Command) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&a.dir)
        .with_context(|| format!("creating {}: give a writable directory", a.dir.display()))?;
    clap_mangen::generate_to(cli, &a.dir)
        .with_context(|| format!("writing man pages into {}", a.dir.display()))?;
    Ok(ExitCode::SUCCESS)
}
