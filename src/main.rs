//! `govtrust`: the operator CLI and (later) the enrollment service.
#![forbid(unsafe_code)]

mod cadir;
mod cli;
mod cmd;
mod output;
mod pemfile;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cmd::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(cmd::EXIT_FAILURE)
        }
    }
}
