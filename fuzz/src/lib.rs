//! Shared fixture of the govtrust fuzz targets.
//!
//! Every target verifies against one real hierarchy, built once per process
//! with govtrust-pki from the FUZZ-ONLY keys in `certs-example/fuzz-keys/` (published on
//! purpose, never trusted anywhere): because the keys are fixed, the seeds
//! that `cargo run --example seeds` writes chain to this root in every later
//! run, so the fuzzer starts from inputs that reach path validation, the
//! profile checks and the CRL checks rather than stopping at the parser.
//!
//! The hierarchy:
//! - root (ECDSA P-256), pinned;
//! - issuing CA A (ECDSA P-256), permitted server `id.bund.example`;
//! - issuing CA B (Ed25519), permitted server `matrix.bund.example`;
//! - fresh CRLs from all three at [`now`], A's revoking one serial;
//! - the example hierarchy in `certs-example/` is pinned too (its root, its
//!   CRLs and its two events' expectations), so those files are deep seeds.
//!
//! Validation happens at the fixed instant [`NOW`] so that a run is
//! reproducible and the seeds never expire.

use std::sync::OnceLock;
use std::time::Duration;

use govtrust_pki::der::DistinguishedName;
use govtrust_pki::signer::{FileSigner, Signer};
use govtrust_pki::{
    AttestationRequest, IssuedCertificate, IssuingCa, RevocationReason, RevokedCertificate, RootCa,
    Validity,
};
use govtrust_verifier::event::AttestationContent;
use govtrust_verifier::{
    AuthorityRecord, CertificateDer, Crl, CrlPolicy, CrlSet, DeviceId, Ed25519Key, Expected,
    Subject, TrustAnchors, UnixTime, UserId, Verifier,
};
use time::OffsetDateTime;

/// The validation time of every target: 2026-11-30T12:00:00Z (inside the
/// validity and CRL windows of `certs-example/` as committed).
pub const NOW: u64 = 1_796_040_000;
/// Start of the fuzz CAs' validity: 2026-01-01T00:00:00Z.
const CA_START: i64 = 1_767_225_600;
const DAY: u64 = 24 * 3600;

/// The fixed validation time as rustls-pki-types wants it.
pub fn now() -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(NOW))
}

fn now_odt() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(NOW as i64).expect("NOW is a valid time")
}

/// The agency user of the fuzz hierarchy on issuing CA A.
pub const USER_A: &str = "@office:id.bund.example";
/// The agency user on issuing CA B.
pub const USER_B: &str = "@agency:matrix.bund.example";
/// The attested device of the fuzz hierarchy.
pub const DEVICE: &str = "FUZZDEV";

/// One attestation the fixture issued, with what a client would expect.
pub struct Issued {
    /// The expectation that accepts it.
    pub expected: Expected,
    /// What the CA issued (leaf, issuing CA).
    pub cert: IssuedCertificate,
    /// The request it was issued for.
    pub request: AttestationRequest,
}

impl Issued {
    /// Its `io.govtrust.attestation` content JSON.
    pub fn event_json(&self) -> String {
        self.cert.attestation_content(&self.request).to_json()
    }
}

/// Everything the targets verify against.
pub struct Fixture {
    /// Pinned: the fuzz root and the `certs-example/` root.
    pub verifier: Verifier,
    /// Pinned for `validate_path` with the extended (RSA) algorithms: the
    /// above plus the NIST PKITS trust anchors (RSA and P-256 re-signed).
    pub extended_anchors: TrustAnchors,
    /// Fresh CRLs of the fuzz root and both issuing CAs, and the
    /// `certs-example/` CRLs.
    pub crls: CrlSet,
    /// CRLs for the PKITS anchors, for `validate_path`.
    pub extended_crls: CrlSet,
    /// Expectations the event and chain targets try: device and identity on
    /// CA A, device on CA B, and the two `certs-example/` events.
    pub expectations: Vec<Expected>,
    /// Valid device attestation on CA A (passes under REQUIRE_FRESH).
    pub device_a: Issued,
    /// Valid identity attestation on CA A.
    pub identity_a: Issued,
    /// Valid device attestation on CA B (Ed25519 issuing CA).
    pub device_b: Issued,
    /// Device attestation on CA A whose serial CA A's CRL revokes.
    pub revoked_a: Issued,
    /// Keys CRL signatures are checked against (full SPKI DER), with the
    /// subject Name DER of their CA: root, CA A, CA B, example issuing CA.
    pub crl_keys: Vec<(Vec<u8>, Vec<u8>)>,
    /// Issuing CA A (for the seed generator).
    pub ica_a: IssuingCa<FileSigner>,
    /// The DER CRLs in [`Fixture::crls`], for seeds: root, A, B.
    pub crl_der: Vec<Vec<u8>>,
    /// The fuzz root certificate.
    pub root_der: CertificateDer<'static>,
}

const ROOT_KEY: &str = include_str!("../../certs-example/fuzz-keys/root-p256.pem");
const ICA_A_KEY: &str = include_str!("../../certs-example/fuzz-keys/issuing-a-p256.pem");
const ICA_B_KEY: &str = include_str!("../../certs-example/fuzz-keys/issuing-b-ed25519.pem");

const EXAMPLE_ROOT: &[u8] = include_bytes!("../../certs-example/ca/root/cert.pem");
const EXAMPLE_ICA: &[u8] = include_bytes!("../../certs-example/ca/issuing/issuing-1/cert.pem");
const EXAMPLE_ICA_CRL: &[u8] = include_bytes!("../../certs-example/issuing-1.crl");
const EXAMPLE_ROOT_CRL: &[u8] = include_bytes!("../../certs-example/root.crl");
const EXAMPLE_DEVICE_EVENT: &[u8] = include_bytes!("../../certs-example/device-event.json");
const EXAMPLE_IDENTITY_EVENT: &[u8] = include_bytes!("../../certs-example/identity-event.json");

const PKITS_RSA_ROOT: &[u8] = include_bytes!(
    "../../verifier/tests/data/conformance/pkits-2048/certs/TrustAnchorRootCertificate.crt"
);
const PKITS_RSA_ROOT_CRL: &[u8] =
    include_bytes!("../../verifier/tests/data/conformance/pkits-2048/crls/TrustAnchorRootCRL.crl");
const PKITS_RSA_GOOD_CA_CRL: &[u8] =
    include_bytes!("../../verifier/tests/data/conformance/pkits-2048/crls/GoodCACRL.crl");
const PKITS_P256_ROOT: &[u8] = include_bytes!(
    "../../verifier/tests/data/conformance/pkits-p256/certs/TrustAnchorRootCertificate.crt"
);

/// The process-wide fixture, built on first use.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(build)
}

fn signer(pem: &str) -> FileSigner {
    FileSigner::from_pem(pem, None).expect("fuzz key")
}

fn one_cert(pem: &[u8]) -> CertificateDer<'static> {
    govtrust_verifier::pem::certificates(pem)
        .expect("certificate")
        .remove(0)
}

fn authority(id: &str, name: &str) -> AuthorityRecord {
    AuthorityRecord {
        id: id.into(),
        name: name.into(),
        street: Some("Donaustraße 29".into()),
        postal_code: Some("12043".into()),
        locality: Some("Berlin".into()),
        country: Some("DE".into()),
        ..Default::default()
    }
}

fn build() -> Fixture {
    let ca_start = OffsetDateTime::from_unix_timestamp(CA_START).expect("CA start");
    let root = RootCa::create(
        &DistinguishedName::ca("govtrust Fuzz Root CA", None).expect("root name"),
        signer(ROOT_KEY),
        Validity::starting(ca_start, Duration::from_secs(20 * 365 * DAY)),
    )
    .expect("fuzz root");
    let root_der = root.certificate().der().clone();

    let make_ica = |cn: &str, pem: &str, server: &str| {
        let key = signer(pem);
        let cert = root
            .issue_issuing_ca(
                &DistinguishedName::ca(cn, None).expect("CA name"),
                key.spki_der().to_vec(),
                &[server.to_owned()],
                Validity::starting(ca_start, Duration::from_secs(10 * 365 * DAY)),
                Some("https://ca.id.bund.example/crl/root.crl"),
            )
            .expect("issuing CA certificate");
        IssuingCa::load(
            cert,
            root_der.clone(),
            key,
            Some(format!("https://ca.id.bund.example/crl/{cn}.crl")),
        )
        .expect("issuing CA")
    };
    let ica_a = make_ica("govtrust Fuzz Issuing A", ICA_A_KEY, "id.bund.example");
    let ica_b = make_ica("govtrust Fuzz Issuing B", ICA_B_KEY, "matrix.bund.example");

    let leaf_validity = Validity::starting(now_odt() - Duration::from_secs(DAY), {
        Duration::from_secs(30 * DAY)
    });
    let issue = |ca: &IssuingCa<FileSigner>, user: &str, device: Option<&str>, key: u8| {
        let request = AttestationRequest {
            user_id: UserId::parse(user).expect("user"),
            subject: match device {
                Some(d) => Subject::Device(DeviceId::parse(d).expect("device")),
                None => Subject::Identity,
            },
            key: Ed25519Key::from_bytes([key; 32]),
            authority: authority("DE-BE-11000000-BA-NK", "Registration Office Berlin"),
        };
        let cert = ca
            .issue_attestation(&request, leaf_validity)
            .expect("attestation");
        Issued {
            expected: Expected {
                user_id: request.user_id.clone(),
                subject: request.subject.clone(),
                key: request.key,
            },
            cert,
            request,
        }
    };
    let device_a = issue(&ica_a, USER_A, Some(DEVICE), 1);
    let identity_a = issue(&ica_a, USER_A, None, 2);
    let device_b = issue(&ica_b, USER_B, Some(DEVICE), 3);
    let revoked_a = issue(&ica_a, USER_A, Some("REVOKEDDEV"), 4);

    let crl_time = now_odt() - Duration::from_secs(3600);
    let crl_life = Duration::from_secs(2 * DAY);
    let root_crl = root.crl(&[], 1, crl_time, crl_life).expect("root CRL");
    let a_crl = ica_a
        .crl(
            &[RevokedCertificate {
                serial: revoked_a.cert.serial.clone(),
                revoked_at: crl_time,
                reason: RevocationReason::KeyCompromise,
            }],
            7,
            crl_time,
            crl_life,
        )
        .expect("CA A CRL");
    let b_crl = ica_b.crl(&[], 1, crl_time, crl_life).expect("CA B CRL");

    let example_root = one_cert(EXAMPLE_ROOT);
    let example_ica = one_cert(EXAMPLE_ICA);
    let crl = |der: &[u8]| Crl::from_pem_or_der(der).expect("fixture CRL");
    let crls: CrlSet = [
        crl(&root_crl),
        crl(&a_crl),
        crl(&b_crl),
        crl(EXAMPLE_ICA_CRL),
        crl(EXAMPLE_ROOT_CRL),
    ]
    .into_iter()
    .collect();
    let extended_crls: CrlSet = [
        crl(&root_crl),
        crl(&a_crl),
        crl(&b_crl),
        crl(PKITS_RSA_ROOT_CRL),
        crl(PKITS_RSA_GOOD_CA_CRL),
    ]
    .into_iter()
    .collect();

    let verifier = Verifier::new(
        TrustAnchors::from_der([root_der.clone(), example_root.clone()]).expect("anchors"),
        CrlPolicy::REQUIRE_FRESH,
    );
    let extended_anchors = TrustAnchors::from_der([
        root_der.clone(),
        example_root.clone(),
        CertificateDer::from(PKITS_RSA_ROOT.to_vec()),
        CertificateDer::from(PKITS_P256_ROOT.to_vec()),
    ])
    .expect("extended anchors");

    let mut expectations = vec![
        device_a.expected.clone(),
        identity_a.expected.clone(),
        device_b.expected.clone(),
    ];
    for event in [EXAMPLE_DEVICE_EVENT, EXAMPLE_IDENTITY_EVENT] {
        let content = AttestationContent::from_json(event).expect("example event");
        expectations.push(
            Expected::new(&content.user_id, content.device_id.as_deref(), &content.key)
                .expect("example expectation"),
        );
    }

    // (issuer key SPKI, issuer Name content octets as a CRL names it)
    let example_ica_spki = {
        use x509_parser::prelude::{FromDer, X509Certificate};
        let (_, parsed) = X509Certificate::from_der(&example_ica).expect("example issuing CA");
        parsed.public_key().raw.to_vec()
    };
    let crl_keys = vec![
        (
            signer(ROOT_KEY).spki_der().to_vec(),
            crl(&root_crl).issuer_der().to_vec(),
        ),
        (
            signer(ICA_A_KEY).spki_der().to_vec(),
            crl(&a_crl).issuer_der().to_vec(),
        ),
        (
            signer(ICA_B_KEY).spki_der().to_vec(),
            crl(&b_crl).issuer_der().to_vec(),
        ),
        (example_ica_spki, crl(EXAMPLE_ICA_CRL).issuer_der().to_vec()),
    ];

    Fixture {
        verifier,
        extended_anchors,
        crls,
        extended_crls,
        expectations,
        device_a,
        identity_a,
        device_b,
        revoked_a,
        crl_keys,
        ica_a,
        crl_der: vec![root_crl, a_crl, b_crl],
        root_der,
    }
}
