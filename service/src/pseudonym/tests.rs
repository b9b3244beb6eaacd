//! Privacy properties of the pseudonym feature, end to end inside the
//! process: one citizen at two authorities gets two pseudonyms, two
//! citizen attestations and log output in which neither the stable ID nor
//! the other pseudonym appears.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use govtrust_pki::der::DistinguishedName;
use govtrust_pki::profile::CitizenAttestationRequest;
use govtrust_pki::signer::{FileSigner, KeyAlgorithm, Signer};
use govtrust_pki::{IssuingCa, RootCa, Validity};
use govtrust_verifier::profile::{AssuranceLevel, CitizenExpected};
use govtrust_verifier::{
    CrlPolicy, CrlSet, DeviceId, Ed25519Key, TrustAnchors, UnixTime, Verifier,
};
use ring::signature::{Ed25519KeyPair, KeyPair};

use super::*;
use crate::config::Config;

const STABLE_ID: &str = "bundid:7f3a9c2e-0b41-4d8e-9a55-stable-citizen";
const SERVER: &str = "id.bund.example";

/// Records every event and span field as text.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<String>>);

struct Text<'a>(&'a mut String);

impl tracing::field::Visit for Text<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={value:?} ", field.name());
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut out = self.0.lock().unwrap_or_else(|e| e.into_inner());
        span.record(&mut Text(&mut out));
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut out = self.0.lock().unwrap_or_else(|e| e.into_inner());
        values.record(&mut Text(&mut out));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut out = self.0.lock().unwrap_or_else(|e| e.into_inner());
        event.record(&mut Text(&mut out));
        out.push('\n');
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn hierarchy() -> (RootCa<FileSigner>, IssuingCa<FileSigner>) {
    let root = RootCa::create(
        &DistinguishedName::ca("Test Root", None).unwrap(),
        FileSigner::generate(KeyAlgorithm::EcdsaP256).unwrap(),
        Validity::from_now(Duration::from_secs(86400 * 30)),
    )
    .unwrap();
    let ica_key = FileSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let ica_der = root
        .issue_issuing_ca(
            &DistinguishedName::ca("Test Issuing CA", None).unwrap(),
            ica_key.spki_der().to_vec(),
            &[SERVER.to_string()],
            Validity::from_now(Duration::from_secs(86400 * 20)),
            None,
        )
        .unwrap();
    let ica = IssuingCa::load(ica_der, root.certificate().der().clone(), ica_key, None).unwrap();
    (root, ica)
}

fn device_key() -> Ed25519Key {
    let signer = FileSigner::generate(KeyAlgorithm::Ed25519).unwrap();
    Ed25519Key::from_bytes(signer.spki_der()[12..].try_into().unwrap())
}

#[test]
fn one_citizen_two_authorities_nothing_links_them() {
    let capture = Capture::default();
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        data_dir: dir.path().to_owned(),
        ..Config::default()
    };
    config.pseudonyms.enabled = true;
    let idp_key = Ed25519KeyPair::from_pkcs8(
        Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
            .unwrap()
            .as_ref(),
    )
    .unwrap();
    let idp = StaticTestIdp::new(
        Ed25519Key::from_bytes(idp_key.public_key().as_ref().try_into().unwrap()),
        "https://govtrust.example",
    );
    let assertion = StaticTestIdp::sign(
        &idp_key,
        &TestAssertion {
            iss: StaticTestIdp::ISSUER.into(),
            aud: "https://govtrust.example".into(),
            sub: STABLE_ID.into(),
            loa: AssuranceLevel::Substantial,
            exp: i64::MAX,
        },
    );
    let (root, ica) = hierarchy();

    let (pseudonyms, certificates) = tracing::subscriber::with_default(capture.clone(), || {
        // First start generates the key; a "restart" reads it back.
        let key = open_key(&config).unwrap();
        let identified = idp.verify(&assertion, 0).unwrap();
        tracing::info!(citizen = ?identified.citizen, "identified (Debug is redacted)");
        let a = derive(key.as_ref(), &identified.citizen, "DE-BE-AGENCY-A").unwrap();
        let b = derive(key.as_ref(), &identified.citizen, "DE-BE-AGENCY-B").unwrap();
        let restarted = open_key(&config).unwrap();
        assert_eq!(
            derive(restarted.as_ref(), &identified.citizen, "DE-BE-AGENCY-A").unwrap(),
            a,
            "stable across restarts"
        );
        assert_ne!(a, b, "different per authority");
        let mut certificates = Vec::new();
        for p in [&a, &b] {
            let user = p.user_id(SERVER).unwrap();
            tracing::info!(user = %user, "pseudonymous account ensured");
            let issued = ica
                .issue_citizen_attestation(
                    &CitizenAttestationRequest {
                        user_id: user.clone(),
                        device_id: DeviceId::parse("CITIZENDEV").unwrap(),
                        key: device_key(),
                        level: identified.level,
                    },
                    Validity::from_now(Duration::from_secs(3600)),
                )
                .unwrap();
            certificates.push(issued);
        }
        ((a, b), certificates)
    });

    let (a, b) = pseudonyms;
    let logs = capture.0.lock().unwrap().clone();
    assert!(logs.contains(a.localpart()), "the capture works: {logs}");
    assert!(!logs.contains(STABLE_ID), "stable ID logged: {logs}");
    assert!(!logs.contains("7f3a9c2e"), "part of the stable ID logged");

    for (mine, other, issued) in [(&a, &b, &certificates[0]), (&b, &a, &certificates[1])] {
        let der = issued.certificate().as_ref();
        assert!(contains(der, mine.localpart().as_bytes()));
        assert!(!contains(der, STABLE_ID.as_bytes()), "stable ID certified");
        assert!(
            !contains(der, other.localpart().as_bytes()),
            "the other pseudonym is certified"
        );
        // The agency's verifier accepts it at `substantial`, refuses `high`.
        let verifier = Verifier::new(
            TrustAnchors::from_der([root.certificate().der().clone()]).unwrap(),
            CrlPolicy::ALLOW_MISSING,
        );
        let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
        let key = Ed25519Key::from_bytes(cert.public_key().raw[12..].try_into().unwrap());
        let mut expected = CitizenExpected {
            user_id: mine.user_id(SERVER).unwrap(),
            device_id: DeviceId::parse("CITIZENDEV").unwrap(),
            key,
            minimum_level: Some(AssuranceLevel::Substantial),
        };
        let now = UnixTime::now();
        assert_eq!(
            verifier
                .verify_citizen(&expected, &issued.chain, &CrlSet::new(), now)
                .unwrap()
                .level,
            AssuranceLevel::Substantial
        );
        expected.minimum_level = Some(AssuranceLevel::High);
        assert_eq!(
            verifier
                .verify_citizen(&expected, &issued.chain, &CrlSet::new(), now)
                .unwrap_err()
                .code(),
            "assurance_too_low"
        );
    }
    // The key file is private.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(default_key_file(&config))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn disabled_by_default_and_validated_when_enabled() {
    let config = Config::default();
    assert!(!config.pseudonyms.enabled);
    assert!(Pseudonyms::from_config(&config).unwrap().is_none());
    let mut enabled = Config::default();
    enabled.pseudonyms.enabled = true;
    assert!(
        enabled.pseudonyms.validate().is_err(),
        "needs server, admin API, IdP"
    );
    enabled.pseudonyms.server_name = Some(SERVER.into());
    enabled.pseudonyms.homeserver_admin_url = Some("http://127.0.0.1:8008".parse().unwrap());
    enabled.pseudonyms.admin_token_file = Some("/nonexistent".into());
    enabled.pseudonyms.identity_provider = Some("bundid".into());
    assert!(
        enabled.pseudonyms.validate().is_err(),
        "no BundID adapter yet"
    );
    enabled.pseudonyms.identity_provider = Some("static-test".into());
    assert!(
        enabled.pseudonyms.validate().is_err(),
        "needs the test IdP key"
    );
    enabled.pseudonyms.test_idp_public_key = Some(device_key().to_base64());
    enabled.pseudonyms.validate().unwrap();
}
