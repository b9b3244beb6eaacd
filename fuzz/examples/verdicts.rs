//! Prints what the fixture verifier says about each seed of the
//! `event_json` and `crl_parse` corpora: a quick check that the seeds reach
//! deep code (a seed that verifies, or fails late, exercises the whole path).
//!
//!     cargo run --manifest-path fuzz/Cargo.toml --example verdicts

use std::fs;
use std::path::Path;

use govtrust_fuzz::{fixture, now};
use govtrust_verifier::{Crl, CrlSet};

fn main() {
    let fx = fixture();
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut files: Vec<_> = fs::read_dir(corpus.join("event_json"))
        .expect("event_json corpus")
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    for path in files {
        let data = fs::read(&path).expect("read");
        let verdicts: Vec<String> = fx
            .expectations
            .iter()
            .map(
                |e| match fx.verifier.verify_event(e, &data, &fx.crls, now()) {
                    Ok(_) => "OK".to_owned(),
                    Err(e) => e.code().to_owned(),
                },
            )
            .collect();
        println!(
            "event_json {:?}: {}",
            path.file_name().unwrap(),
            verdicts.join(" ")
        );
    }
    let mut files: Vec<_> = fs::read_dir(corpus.join("crl_parse"))
        .expect("crl_parse corpus")
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    for path in files {
        let data = fs::read(&path).expect("read");
        let verdict = match Crl::from_pem_or_der(&data) {
            Err(e) => format!("parse: {}", e.code()),
            Ok(crl) => {
                let signed = fx
                    .crl_keys
                    .iter()
                    .position(|(spki, name)| {
                        name.as_slice() == crl.issuer_der() && crl.verify_signed_by(spki).is_ok()
                    })
                    .map_or("-".to_owned(), |i| format!("key {i}"));
                let mut set = CrlSet::new();
                set.push(crl);
                set.push(Crl::from_der(&fx.crl_der[0]).expect("root CRL"));
                let v =
                    fx.verifier
                        .verify(&fx.device_a.expected, &fx.device_a.cert.chain, &set, now());
                format!(
                    "signed by {signed}; device A: {}",
                    v.map_or_else(|e| e.code().to_owned(), |_| "OK".to_owned())
                )
            }
        };
        println!("crl_parse {:?}: {verdict}", path.file_name().unwrap());
    }
}
