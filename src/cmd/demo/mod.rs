//! `govtrust demo`: the README's first command. By default the whole story
//! with real parts ([`live`]); `--offline` the PKI alone ([`tour`]).

mod live;
mod tour;

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::DemoArgs;

/// Runs the demo the arguments ask for.
pub fn demo(args: &DemoArgs) -> Result<ExitCode> {
    if args.offline {
        tour::tour(args)
    } else {
        live::live(args)
    }
}

/// Prints a numbered step heading of the narration.
fn step(n: u32, text: &str) {
    println!("\n== {n}. {text}");
}
