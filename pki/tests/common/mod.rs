//! Shared fixture for the pki integration tests (`rejections`, `proptest`).
//!
//! Builds one hierarchy per test binary — a pinned root, an issuing CA for
//! `id.bund.example` (and `matrix.bund.example`), fresh CRLs from both, a
//! second root and an impostor CA with the issuing CA's name — and hands out
//! [`Scenario`]s: a valid attestation *as templates plus inputs*, so a test
//! can change exactly one thing, sign, and verify.
//!
//! Templates are signed directly (`CertificateTemplate::sign`), bypassing the
//! CA's self-check on purpose: the point is to produce what a CA must never
//! issue and watch the verifier refuse it.
#![allow(dead_code)] // each test binary uses a different part of the fixture

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use govtrust_pki::crl::CrlTemplate;
use govtrust_pki::der::{ext, key_identifier, DistinguishedName, Extension};
use govtrust_pki::profile::{self, IssuerInfo};
use govtrust_pki::signer::{FileSigner, KeyAlgorithm, Signer};
use govtrust_pki::template::CertificateTemplate;
use govtrust_pki::{AttestationRequest, IssuingCa, RevokedCertificate, RootCa, Validity};
use govtrust_verifier::event::{AttestationContent, AttestationKind};
use govtrust_verifier::{
    AuthorityRecord, CertificateDer, Crl, CrlPolicy, CrlSet, DeviceId, Ed25519Key, Error, Expected,
    IssuerMemoStats, Subject, TrustAnchors, UnixTime, UserId, VerifiedAttestation, Verifier,
};
use time::OffsetDateTime;

/// The server names the issuing CA may certify (ARC.11), in this order.
pub const SERVERS: [&str; 2] = ["id.bund.example", "matrix.bund.example"];
/// The attested agency user of the baseline.
pub const USER: &str = "@office:id.bund.example";
/// The attested device of the baseline.
pub const DEVICE: &str = "AGENCYDEV";
/// CRL distribution point written into the certificates.
pub const CRL_URL: &str = "https://ca.id.bund.example/crl/issuing.crl";

/// Extension OIDs (content octets) the tests remove or look up.
pub mod oids {
    // Each test binary uses a different subset.
    #[allow(unused_imports)]
    pub use govtrust_verifier::oid::{
        EXT_AUTHORITY_KEY_ID as AUTHORITY_KEY_ID, EXT_BASIC_CONSTRAINTS as BASIC_CONSTRAINTS,
        EXT_EXTENDED_KEY_USAGE as EXT_KEY_USAGE, EXT_KEY_USAGE as KEY_USAGE,
        EXT_SUBJECT_ALT_NAME as SUBJECT_ALT_NAME, EXT_SUBJECT_KEY_ID as SUBJECT_KEY_ID,
    };
    pub const SERIAL_NUMBER_ATTR: &[u8] = &[0x55, 0x04, 0x05];
    /// id-kp-serverAuth.
    pub const SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
    /// id-kp-clientAuth.
    pub const CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];
}

/// Lifetime of the baseline leaf on either side of [`Fixture::now`].
pub const LEAF_HALF_LIFE: Duration = Duration::from_secs(3600);
/// How long before [`Fixture::now`] the fixture CRLs were issued.
pub const CRL_AGE: Duration = Duration::from_secs(2 * 3600);
/// Lifetime (thisUpdate to nextUpdate) of the fixture CRLs.
pub const CRL_LIFETIME: Duration = Duration::from_secs(24 * 3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// The CA hierarchy and keys every scenario is built from.
pub struct Fixture {
    /// The validation time of every scenario (whole seconds).
    pub now: OffsetDateTime,
    pub root: RootCa<Arc<FileSigner>>,
    pub root_signer: Arc<FileSigner>,
    pub root_info: IssuerInfo,
    pub ica: IssuingCa<Arc<FileSigner>>,
    pub ica_signer: Arc<FileSigner>,
    pub ica_name: DistinguishedName,
    /// The template the issuing CA certificate was signed from.
    pub ica_template: CertificateTemplate,
    pub ica_info: IssuerInfo,
    /// Empty CRL of the issuing CA, thisUpdate `now - CRL_AGE`.
    pub ica_crl: Vec<u8>,
    /// Empty CRL of the root, thisUpdate `now - CRL_AGE`.
    pub root_crl: Vec<u8>,
    /// A second, unpinned root.
    pub other_root: RootCa<Arc<FileSigner>>,
    pub other_root_signer: Arc<FileSigner>,
    pub other_root_info: IssuerInfo,
    /// A CA under `other_root` with exactly the issuing CA's subject name.
    pub impostor_ica: IssuingCa<Arc<FileSigner>>,
    /// Key for a CA below the issuing CA (path length tests).
    pub sub_ca_signer: Arc<FileSigner>,
    /// A P-256 key, for a leaf whose SPKI is not Ed25519.
    pub p256_key: Arc<FileSigner>,
    /// The device's `ed25519:<DEVICE>` key.
    pub device_key: Ed25519Key,
    /// The user's cross-signing master key.
    pub identity_key: Ed25519Key,
    /// Some Ed25519 key that is neither.
    pub stranger_key: Ed25519Key,
    pub authority: AuthorityRecord,
}

/// The fixture, built once per test binary.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(Fixture::new)
}

fn p256() -> Arc<FileSigner> {
    Arc::new(FileSigner::generate(KeyAlgorithm::EcdsaP256).expect("P-256 key"))
}

/// A fresh, real Ed25519 public key.
pub fn ed25519_key() -> Ed25519Key {
    let signer = FileSigner::generate(KeyAlgorithm::Ed25519).expect("Ed25519 key");
    let raw: [u8; 32] = signer.spki_der()[12..].try_into().expect("32 bytes");
    Ed25519Key::from_bytes(raw)
}

/// Seconds-precision `UnixTime` of an instant.
pub fn unix(t: OffsetDateTime) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(
        u64::try_from(t.unix_timestamp()).expect("after 1970"),
    ))
}

/// Issuer fields for certificates signed by `signer` as `subject`.
pub fn issuer_info(subject: &[u8], signer: &dyn Signer, not_after: OffsetDateTime) -> IssuerInfo {
    IssuerInfo {
        subject: subject.to_vec(),
        key_id: key_identifier(signer.spki_der()).expect("key id"),
        not_after,
    }
}

/// Signs a CRL for the CA named `issuer` whose key is `signer`.
pub fn sign_crl(
    signer: &dyn Signer,
    issuer: &[u8],
    revoked: &[RevokedCertificate],
    this_update: OffsetDateTime,
    lifetime: Duration,
) -> Vec<u8> {
    let key_id = key_identifier(signer.spki_der()).expect("key id");
    CrlTemplate {
        issuer,
        issuer_key_id: &key_id,
        number: 1,
        this_update,
        next_update: this_update + lifetime,
        revoked,
    }
    .sign(signer)
    .expect("sign CRL")
}

impl Fixture {
    fn new() -> Self {
        let now = OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .expect("whole seconds");
        let ca_validity = Validity::starting(now - DAY, 365 * DAY);
        let servers: Vec<String> = SERVERS.iter().map(|s| s.to_string()).collect();

        let root_signer = p256();
        let root = RootCa::create(
            &DistinguishedName::ca("govtrust Test Root", None).expect("root name"),
            root_signer.clone(),
            Validity::starting(now - 2 * DAY, 3650 * DAY),
        )
        .expect("root");
        let root_info = issuer_info(
            root.certificate().subject_der(),
            &*root_signer,
            root.certificate().not_after(),
        );

        let ica_signer = p256();
        let ica_name =
            DistinguishedName::ca("govtrust Test Issuing CA", None).expect("issuing CA name");
        let ica_template = profile::issuing_ca(
            &ica_name,
            ica_signer.spki_der().to_vec(),
            &servers,
            &root_info,
            ca_validity,
            Some("https://ca.id.bund.example/crl/root.crl"),
        )
        .expect("issuing CA template");
        let ica_der = ica_template.sign(&*root_signer).expect("sign issuing CA");
        let ica = IssuingCa::load(
            ica_der,
            root.certificate().der().clone(),
            ica_signer.clone(),
            Some(CRL_URL.into()),
        )
        .expect("issuing CA loads (its probe attestation verifies)");
        let ica_info = issuer_info(&ica_template.subject, &*ica_signer, ica_template.not_after);

        let crl_time = now - CRL_AGE;
        let ica_crl = ica.crl(&[], 1, crl_time, CRL_LIFETIME).expect("CA CRL");
        let root_crl = root.crl(&[], 1, crl_time, CRL_LIFETIME).expect("root CRL");

        let other_root_signer = p256();
        let other_root = RootCa::create(
            &DistinguishedName::ca("govtrust Other Root", None).expect("name"),
            other_root_signer.clone(),
            Validity::starting(now - 2 * DAY, 3650 * DAY),
        )
        .expect("other root");
        let other_root_info = issuer_info(
            other_root.certificate().subject_der(),
            &*other_root_signer,
            other_root.certificate().not_after(),
        );
        let impostor_signer = p256();
        let impostor_der = other_root
            .issue_issuing_ca(
                &ica_name,
                impostor_signer.spki_der().to_vec(),
                &servers,
                ca_validity,
                None,
            )
            .expect("impostor CA");
        let impostor_ica = IssuingCa::load(
            impostor_der,
            other_root.certificate().der().clone(),
            impostor_signer,
            None,
        )
        .expect("impostor CA loads");
        assert_eq!(
            impostor_ica.certificate().subject_der(),
            ica.certificate().subject_der(),
            "the impostor must carry the issuing CA's name"
        );

        Fixture {
            now,
            root,
            root_signer,
            root_info,
            ica,
            ica_signer,
            ica_name,
            ica_template,
            ica_info,
            ica_crl,
            root_crl,
            other_root,
            other_root_signer,
            other_root_info,
            impostor_ica,
            sub_ca_signer: p256(),
            p256_key: p256(),
            device_key: ed25519_key(),
            identity_key: ed25519_key(),
            stranger_key: ed25519_key(),
            authority: AuthorityRecord {
                id: "DE-BE-11000000-BA-NK".into(),
                name: "Registration Office Berlin".into(),
                unit: Some("Bürgeramt Neukölln".into()),
                street: Some("Donaustraße 29".into()),
                postal_code: Some("12043".into()),
                locality: Some("Berlin".into()),
                state: Some("Berlin".into()),
                country: Some("DE".into()),
            },
        }
    }

    /// The baseline leaf's validity: `now ± LEAF_HALF_LIFE`.
    pub fn leaf_validity(&self) -> Validity {
        Validity {
            not_before: self.now - LEAF_HALF_LIFE,
            not_after: self.now + LEAF_HALF_LIFE,
        }
    }

    /// The request of the baseline device attestation.
    pub fn device_request(&self) -> AttestationRequest {
        AttestationRequest {
            user_id: UserId::parse(USER).expect("user"),
            subject: Subject::Device(DeviceId::parse(DEVICE).expect("device")),
            key: self.device_key,
            authority: self.authority.clone(),
        }
    }

    /// The request of the baseline identity attestation.
    pub fn identity_request(&self) -> AttestationRequest {
        AttestationRequest {
            user_id: UserId::parse(USER).expect("user"),
            subject: Subject::Identity,
            key: self.identity_key,
            authority: self.authority.clone(),
        }
    }

    /// A valid attestation of `request` from the issuing CA, as a scenario
    /// that passes: REQUIRE_FRESH with fresh CRLs of both CAs, at `now`.
    pub fn scenario(&self, request: &AttestationRequest) -> Scenario {
        let leaf =
            profile::attestation(request, &self.ica_info, self.leaf_validity(), Some(CRL_URL))
                .expect("attestation template");
        Scenario {
            leaf,
            leaf_signer: self.ica_signer.clone(),
            leaf_alg_override: None,
            cas: vec![Issued {
                template: self.ica_template.clone(),
                signer: self.root_signer.clone(),
            }],
            anchors: vec![self.root.certificate().der().clone()],
            policy: CrlPolicy::REQUIRE_FRESH,
            ica_crl: Some(self.ica_crl.clone()),
            root_crl: Some(self.root_crl.clone()),
            extra_crls: Vec::new(),
            expected: Expected {
                user_id: request.user_id.clone(),
                subject: request.subject.clone(),
                key: request.key,
            },
            time: unix(self.now),
            input: Input::Chain,
            leaf_der_edit: None,
            content_edit: None,
        }
    }

    /// The baseline device attestation scenario.
    pub fn device_scenario(&self) -> Scenario {
        self.scenario(&self.device_request())
    }

    /// The baseline identity attestation scenario.
    pub fn identity_scenario(&self) -> Scenario {
        self.scenario(&self.identity_request())
    }

    /// A CRL of the issuing CA (signed through `IssuingCa::crl`).
    pub fn ica_crl_with(
        &self,
        revoked: &[RevokedCertificate],
        this_update: OffsetDateTime,
        lifetime: Duration,
    ) -> Vec<u8> {
        self.ica
            .crl(revoked, 2, this_update, lifetime)
            .expect("CA CRL")
    }

    /// A CRL of the root (signed through `RootCa::crl`).
    pub fn root_crl_with(
        &self,
        revoked: &[RevokedCertificate],
        this_update: OffsetDateTime,
        lifetime: Duration,
    ) -> Vec<u8> {
        self.root
            .crl(revoked, 2, this_update, lifetime)
            .expect("root CRL")
    }
}

/// A CA certificate on the presented chain: its template and the key of the
/// CA that signs it.
#[derive(Clone)]
pub struct Issued {
    pub template: CertificateTemplate,
    pub signer: Arc<dyn Signer>,
}

/// How the chain reaches the verifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// `Verifier::verify` with the DER chain.
    Chain,
    /// `Verifier::verify_event` with `io.govtrust.attestation` content JSON.
    Event,
}

/// Everything one verification depends on, before signing.
#[derive(Clone)]
pub struct Scenario {
    /// The attestation certificate.
    pub leaf: CertificateTemplate,
    /// The key of the CA that signs the leaf.
    pub leaf_signer: Arc<dyn Signer>,
    /// If set, the leaf's signatureAlgorithm (TBS and outer) is this
    /// AlgorithmIdentifier DER instead of the signer's.
    pub leaf_alg_override: Option<&'static [u8]>,
    /// The CA certificates sent after the leaf (issuing CA first).
    pub cas: Vec<Issued>,
    /// The pinned roots.
    pub anchors: Vec<CertificateDer<'static>>,
    pub policy: CrlPolicy,
    /// The issuing CA's CRL (covers the leaf).
    pub ica_crl: Option<Vec<u8>>,
    /// The root's CRL (covers the issuing CA).
    pub root_crl: Option<Vec<u8>>,
    pub extra_crls: Vec<Vec<u8>>,
    /// What the relying party holds.
    pub expected: Expected,
    /// Validation time.
    pub time: UnixTime,
    pub input: Input,
    /// Applied to the signed leaf DER (signature corruption, truncation).
    pub leaf_der_edit: Option<fn(&mut Vec<u8>)>,
    /// Applied to the event content before serialisation ([`Input::Event`]).
    pub content_edit: Option<fn(&mut AttestationContent)>,
}

impl Scenario {
    /// Signs the leaf and the CAs: the chain as sent, leaf first.
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        let mut leaf = match self.leaf_alg_override {
            None => self
                .leaf
                .sign(&*self.leaf_signer)
                .expect("sign leaf")
                .to_vec(),
            Some(alg) => sign_with_algorithm_id(&self.leaf, &*self.leaf_signer, alg),
        };
        if let Some(edit) = self.leaf_der_edit {
            edit(&mut leaf);
        }
        let mut chain = vec![CertificateDer::from(leaf)];
        for ca in &self.cas {
            chain.push(ca.template.sign(&*ca.signer).expect("sign CA"));
        }
        chain
    }

    /// The CRLs handed to the verifier.
    pub fn crls(&self) -> CrlSet {
        self.ica_crl
            .iter()
            .chain(&self.root_crl)
            .chain(&self.extra_crls)
            .map(|der| Crl::from_der(der).expect("CRL decodes"))
            .collect()
    }

    /// The attestation event content for the chain.
    pub fn content(&self) -> AttestationContent {
        self.content_for(&self.chain())
    }

    /// The attestation event content for `chain` (signed once by the
    /// caller: the memo keys on the issuing CA's exact bytes).
    fn content_for(&self, chain: &[CertificateDer<'static>]) -> AttestationContent {
        let (kind, device_id) = match &self.expected.subject {
            Subject::Device(d) => (AttestationKind::Device, Some(d.to_string())),
            Subject::Identity => (AttestationKind::Identity, None),
        };
        let mut content = AttestationContent {
            version: 1,
            kind,
            user_id: self.expected.user_id.to_string(),
            device_id,
            key: self.expected.key.to_base64(),
            chain: chain.iter().map(|c| base64(c)).collect(),
            expires_at: u64::try_from(self.leaf.not_after.unix_timestamp() * 1000).ok(),
            revoked: None,
        };
        if let Some(edit) = self.content_edit {
            edit(&mut content);
        }
        content
    }

    /// Runs a fresh verifier on the scenario.
    pub fn run(&self) -> Result<VerifiedAttestation, Error> {
        self.run_on(&self.verifier(), &self.chain())
    }

    /// Runs the scenario on a verifier that has first accepted `warm`'s
    /// leaf under this scenario's issuing-CA certificate (same bytes), with
    /// this scenario's anchors, CRLs and time, so that the issuing CA is
    /// remembered and the verdict comes from the short path wherever that
    /// accepts. Where the warm-up itself is rejected (the violation is not
    /// the leaf's), nothing is remembered and this is a fresh run. Returns
    /// the verdict and the memo's statistics after it.
    pub fn run_warmed(
        &self,
        warm: &Scenario,
    ) -> (Result<VerifiedAttestation, Error>, IssuerMemoStats) {
        let verifier = self.verifier();
        let chain = self.chain();
        if let [_, ica] = chain.as_slice() {
            let warm_leaf = warm.leaf.sign(&*warm.leaf_signer).expect("sign leaf");
            let _ = verifier.verify(
                &warm.expected,
                &[warm_leaf, ica.clone()],
                &self.crls(),
                self.time,
            );
        }
        (self.run_on(&verifier, &chain), verifier.issuer_memo_stats())
    }

    fn verifier(&self) -> Verifier {
        Verifier::new(
            TrustAnchors::from_der(self.anchors.clone()).expect("anchors"),
            self.policy,
        )
    }

    fn run_on(
        &self,
        verifier: &Verifier,
        chain: &[CertificateDer<'static>],
    ) -> Result<VerifiedAttestation, Error> {
        let crls = self.crls();
        match self.input {
            Input::Chain => verifier.verify(&self.expected, chain, &crls, self.time),
            Input::Event => verifier.verify_event(
                &self.expected,
                self.content_for(chain).to_json().as_bytes(),
                &crls,
                self.time,
            ),
        }
    }

    /// The issuing CA's template (first CA on the chain).
    pub fn ica(&mut self) -> &mut CertificateTemplate {
        &mut self.cas[0].template
    }
}

/// Replaces the extension with the same OID in place, or appends it.
pub fn set_ext(template: &mut CertificateTemplate, extension: Extension) {
    match template
        .extensions
        .iter_mut()
        .find(|e| e.oid == extension.oid)
    {
        Some(slot) => *slot = extension,
        None => template.extensions.push(extension),
    }
}

/// Removes the extension with `oid`; panics if there was none (a mutation
/// that changes nothing would make a case meaningless).
pub fn remove_ext(template: &mut CertificateTemplate, oid: &[u8]) {
    let before = template.extensions.len();
    template.extensions.retain(|e| e.oid != oid);
    assert_eq!(
        template.extensions.len() + 1,
        before,
        "extension {oid:02x?} was not present exactly once"
    );
}

/// The extension with `oid`; panics if absent.
pub fn ext_mut<'a>(template: &'a mut CertificateTemplate, oid: &[u8]) -> &'a mut Extension {
    template
        .extensions
        .iter_mut()
        .find(|e| e.oid == oid)
        .unwrap_or_else(|| panic!("extension {oid:02x?} not present"))
}

/// Points a certificate at a new issuer: issuer name and authority key ID.
pub fn reparent(template: &mut CertificateTemplate, issuer: &IssuerInfo) {
    template.issuer = issuer.subject.clone();
    set_ext(template, ext::authority_key_identifier(&issuer.key_id));
}

/// Sets a certificate's public key (and its subject key identifier).
pub fn set_spki(template: &mut CertificateTemplate, spki: Vec<u8>) {
    set_ext(
        template,
        ext::subject_key_identifier(&key_identifier(&spki).expect("key id")),
    );
    template.spki = spki;
}

/// Signs `template` with `signer`, but labels the signature with the
/// AlgorithmIdentifier `alg` (in the TBS and outside): a genuine signature
/// under an algorithm name the profile does not allow.
pub fn sign_with_algorithm_id(
    template: &CertificateTemplate,
    signer: &dyn Signer,
    alg: &[u8],
) -> Vec<u8> {
    let own = signer.algorithm().signature_algorithm_der();
    let tbs = template.tbs_der(signer);
    let at = tbs
        .windows(own.len())
        .position(|w| w == own)
        .expect("TBS names the signer's algorithm");
    let mut patched = tbs[..at].to_vec();
    patched.extend_from_slice(alg);
    patched.extend_from_slice(&tbs[at + own.len()..]);
    // Re-encode the TBS SEQUENCE: its length changes if `alg` is longer.
    let (_, body) = split_tlv(&patched);
    let tbs = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            let mut rest = body;
            while !rest.is_empty() {
                let (tlv, after) = split_first_tlv(rest);
                w.next().write_der(tlv);
                rest = after;
            }
        })
    });
    let signature = signer.sign(&tbs).expect("sign");
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_der(&tbs);
            w.next().write_der(alg);
            w.next().write_bitvec_bytes(&signature, signature.len() * 8);
        })
    })
}

/// Header length and content of a DER TLV whose length may be stale (the
/// content is everything after the header).
fn split_tlv(der: &[u8]) -> (usize, &[u8]) {
    let header = if der[1] < 0x80 {
        2
    } else {
        2 + usize::from(der[1] & 0x7f)
    };
    (header, &der[header..])
}

/// The first complete TLV of `der` and what follows it.
fn split_first_tlv(der: &[u8]) -> (&[u8], &[u8]) {
    let (header, len) = if der[1] < 0x80 {
        (2, usize::from(der[1]))
    } else {
        let n = usize::from(der[1] & 0x7f);
        let len = der[2..2 + n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (2 + n, len)
    };
    der.split_at(header + len)
}

/// Standard, padded base64 (the event's chain encoding).
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn base64_matches_rfc4648_vectors() {
    for (input, output) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64(input.as_bytes()), output);
    }
}
