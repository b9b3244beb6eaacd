//! `govtrust`: the operator CLI, the service and the demo — a thin shell
//! over the govtrust libraries (`govtrust-service`, `govtrust-pki`,
//! `govtrust-verifier`, `govtrust-agent`): it parses the command line,
//! calls them and prints the result. No business logic lives here.
#![forbid(unsafe_code)]

mod cli;
mod cmd;
mod output;

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
