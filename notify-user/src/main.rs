//! The `notify` command line: parse, then hand over to `notify::cmd`.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, parser::ValueSource};
use notify::cmd::{self, Cli, exit, logging};

fn main() -> ExitCode {
    cmd::common::process_memory_setup();
    notify::probe::phases::start();
    logging::init();
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    // Which agent flags were given on the command line (they win over the config file).
    let given: Vec<String> = matches
        .subcommand_matches("agent")
        .map(|m| {
            m.ids()
                .filter(|id| m.value_source(id.as_str()) == Some(ValueSource::CommandLine))
                .map(|id| id.to_string())
                .collect()
        })
        .unwrap_or_default();
    match cmd::run(cli, &given) {
        Ok(code) => code,
        Err(e) => {
            logging::error(&e);
            ExitCode::from(exit::code_of(&e))
        }
    }
}
