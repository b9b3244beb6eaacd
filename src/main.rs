//! `govtrust`: the operator CLI and the enrollment service.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = govtrust::cli::Cli::parse();
    match govtrust::cmd::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(govtrust::cmd::EXIT_FAILURE)
        }
    }
}
