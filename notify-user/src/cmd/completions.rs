//! `notify completions SHELL`: a shell completion script generated from the command line's
//! own definition.

use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `cli` is the whole command line's definition (`Cli::command()`).
pub fn run(a: CompletionsArgs, mut cli: clap::Command) -> anyhow::Result<ExitCode> {
    clap_complete::generate(a.shell, &mut cli, "notify", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}
