//! `govtrust demo`: the README's first command. By default the whole story
//! with real parts ([`live`]); `--offline` the PKI alone ([`tour`]).

mod live;
mod tour;

use std::process::ExitCode;

use anyhow::Result;
use govtrust_verifier::AuthorityRecord;

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

/// The authority record both demos certify: what citizens see as the badge.
fn berlin() -> AuthorityRecord {
    AuthorityRecord {
        id: "DE-BE-11000000-BA-NK".into(),
        name: "Registration Office Berlin".into(),
        unit: None,
        street: Some("Donaustraße 29".into()),
        postal_code: Some("12043".into()),
        locality: Some("Berlin".into()),
        state: Some("Berlin".into()),
        country: Some("DE".into()),
    }
}
