//! The service's CAs (`govtrust_service::pki::ServicePki`): what it refuses
//! to sign with.

use govtrust_service::cadir::{CaDir, RevokedEntry};
use govtrust_service::config::Config;
use govtrust_service::pki::ServicePki;

/// An issuing CA the root revoked must not issue: the service refuses to
/// start with it configured (clients would reject everything it signs).
#[test]
fn refuses_a_configured_issuing_ca_the_root_revoked() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let config = Config::from_toml(&format!(
        "data_dir = {:?}",
        tmp.path().display().to_string()
    ))
    .expect("config");
    // First start: a development hierarchy, issuing CA `issuing-1`.
    ServicePki::open_or_create(&config).expect("development CA");

    let dir = CaDir::open(&config.ca_dir()).expect("CA dir");
    let cert = dir
        .issuing_cert("issuing-1")
        .expect("issuing CA certificate");
    let (_, parsed) = x509_parser::parse_x509_certificate(&cert).expect("parses");
    let mut root = dir.root_state().expect("root state");
    root.revoked.push(RevokedEntry {
        serial: govtrust_pki::hex(parsed.raw_serial()),
        revoked_at: time::OffsetDateTime::now_utc(),
        reason: "ca_compromise".into(),
    });
    dir.save_root_state(&root).expect("save root state");

    let err = ServicePki::open_or_create(&config)
        .err()
        .expect("a revoked issuing CA must not be loaded for issuance");
    assert!(format!("{err:#}").contains("revoked"), "{err:#}");
}
