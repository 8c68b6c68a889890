//! `notify completions SHELL`: a shell completion script generated from the command line's
//! own definition.

use std::process::ExitCode;

use clap::CommandFactory;

use crate::cmd::Cli;

#[derive(clap::Args, Debug)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

pub fn run(a: CompletionsArgs) -> anyhow::Result<ExitCode> {
    clap_complete::generate(
        a.shell,
        &mut Cli::command(),
        "notify",
        &mut std::io::stdout(),
    );
    Ok(ExitCode::SUCCESS)
}
