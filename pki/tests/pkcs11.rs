//! PKCS#11 signer against SoftHSM2.
//!
//! The test binary creates its own SoftHSM tokens in a temporary directory
//! (through `SOFTHSM2_CONF`, which is process-wide, hence one fixture per
//! binary) and every test uses its own key labels, so tests run in
//! parallel and never touch a developer's real tokens.
//!
//! Without SoftHSM the tests print a notice and pass, except when `CI` is
//! set: CI installs SoftHSM (`scripts/softhsm-setup.sh`), so a missing module
//! there is a broken pipeline, not a reason to skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use govtrust_pki::signer::{KeyAlgorithm, Pkcs11Config, Pkcs11Signer, Signer};
use ring::signature as sig;

/// The token most tests share (with unique key labels).
const TOKEN: &str = "govtrust-test";
/// A token only `wrong_pin_and_missing_objects` logs in to, so that its
/// first login really reaches `C_Login`.
const TOKEN_LOGIN: &str = "govtrust-login";
/// A token only `reconnects_after_logout` uses: it logs the token out.
const TOKEN_RECONNECT: &str = "govtrust-reconnect";
const SO_PIN: &str = "so-pin-12345";
const PIN: &str = "user-pin-1234";

/// Where SoftHSM keeps its module on common systems.
const MODULE_CANDIDATES: &[&str] = &[
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
];

/// A SoftHSM set up for this test binary.
struct SoftHsm {
    module: PathBuf,
    /// Keeps the token directory alive for the whole run.
    _dir: tempfile::TempDir,
}

impl SoftHsm {
    /// A configuration for `key_label` on the shared test token.
    fn config(&self, key_label: &str) -> Pkcs11Config {
        self.config_on(TOKEN, key_label)
    }

    fn config_on(&self, token: &str, key_label: &str) -> Pkcs11Config {
        Pkcs11Config::new(&self.module, token, key_label, PIN)
    }
}

/// The SoftHSM fixture, or `None` (after a notice) when SoftHSM is not
/// installed outside CI.
fn softhsm() -> Option<&'static SoftHsm> {
    static FIXTURE: OnceLock<Option<SoftHsm>> = OnceLock::new();
    FIXTURE.get_or_init(set_up_softhsm).as_ref()
}

fn set_up_softhsm() -> Option<SoftHsm> {
    let module = std::env::var_os("GOVTRUST_PKCS11_MODULE")
        .map(PathBuf::from)
        .or_else(|| {
            MODULE_CANDIDATES
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file())
        })
        .filter(|p| p.is_file());
    let util = Command::new("softhsm2-util").arg("--version").output();
    let (Some(module), Ok(_)) = (module, util) else {
        let notice = "SoftHSM2 not found (module or softhsm2-util); \
                      run scripts/softhsm-setup.sh or set GOVTRUST_PKCS11_MODULE";
        if std::env::var_os("CI").is_some() {
            panic!("{notice}");
        }
        eprintln!("NOTICE: {notice}; skipping PKCS#11 tests");
        return None;
    };

    let dir = tempfile::tempdir().expect("temp dir");
    let tokens = dir.path().join("tokens");
    std::fs::create_dir(&tokens).expect("token dir");
    let conf = dir.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
            tokens.display()
        ),
    )
    .expect("softhsm2.conf");
    // Before any thread loads the module, which reads it in C_Initialize.
    std::env::set_var("SOFTHSM2_CONF", &conf);
    for label in [TOKEN, TOKEN_LOGIN, TOKEN_RECONNECT] {
        init_token(&conf, label);
    }
    Some(SoftHsm { module, _dir: dir })
}

fn init_token(conf: &Path, label: &str) {
    let out = Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", conf)
        .args(["--init-token", "--free", "--label", label])
        .args(["--so-pin", SO_PIN, "--pin", PIN])
        .output()
        .expect("run softhsm2-util");
    assert!(
        out.status.success(),
        "softhsm2-util --init-token {label}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A key label no other test uses.
fn unique_label(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Reusable fixture: a fresh key of `algorithm` in SoftHSM, or `None` when
/// SoftHSM is unavailable (outside CI). Use it for tests that need a
/// PKCS#11-backed CA, e.g. issuing a certificate with an HSM issuing key.
fn softhsm_signer(algorithm: KeyAlgorithm) -> Option<(Pkcs11Config, Pkcs11Signer)> {
    let hsm = softhsm()?;
    let config = hsm.config(&unique_label("key"));
    let signer = Pkcs11Signer::generate(&config, algorithm)
        .unwrap_or_else(|e| panic!("generate {algorithm:?} key in SoftHSM: {e}"));
    Some((config, signer))
}

/// Splits an SPKI into its AlgorithmIdentifier DER and raw public key.
fn parse_spki(spki: &[u8]) -> (Vec<u8>, Vec<u8>) {
    yasna::parse_der(spki, |r| {
        r.read_sequence(|r| {
            let algorithm = r.next().read_der()?;
            let (key, _bits) = r.next().read_bitvec_bytes()?;
            Ok((algorithm, key))
        })
    })
    .expect("SPKI DER")
}

/// Verifies `signature` over `message` the way a relying party would:
/// from the signer's SPKI, with ring.
fn assert_verifies(signer: &dyn Signer, message: &[u8], signature: &[u8]) {
    let (algorithm_der, key) = parse_spki(signer.spki_der());
    let (expected_oids, verification): (&[u8], &dyn sig::VerificationAlgorithm) =
        match signer.algorithm() {
            KeyAlgorithm::EcdsaP256 => (
                // id-ecPublicKey, prime256v1
                &[
                    0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
                    0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
                ],
                &sig::ECDSA_P256_SHA256_ASN1,
            ),
            KeyAlgorithm::EcdsaP384 => (
                // id-ecPublicKey, secp384r1
                &[
                    0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05,
                    0x2b, 0x81, 0x04, 0x00, 0x22,
                ],
                &sig::ECDSA_P384_SHA384_ASN1,
            ),
            KeyAlgorithm::Ed25519 => (&[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70], &sig::ED25519),
        };
    assert_eq!(algorithm_der, expected_oids, "SPKI algorithm");
    sig::UnparsedPublicKey::new(verification, &key)
        .verify(message, signature)
        .expect("signature verifies against the SPKI");
}

fn sign_and_verify(algorithm: KeyAlgorithm) {
    let Some((_config, signer)) = softhsm_signer(algorithm) else {
        return;
    };
    assert_eq!(signer.algorithm(), algorithm);
    for message in [&b""[..], b"tbsCertificate bytes", &[0xa5; 10_000]] {
        let signature = signer.sign(message).expect("sign");
        assert_verifies(&signer, message, &signature);
        let mut tampered = message.to_vec();
        tampered.push(0);
        let (_, key) = parse_spki(signer.spki_der());
        let verification: &dyn sig::VerificationAlgorithm = match algorithm {
            KeyAlgorithm::EcdsaP256 => &sig::ECDSA_P256_SHA256_ASN1,
            KeyAlgorithm::EcdsaP384 => &sig::ECDSA_P384_SHA384_ASN1,
            KeyAlgorithm::Ed25519 => &sig::ED25519,
        };
        assert!(sig::UnparsedPublicKey::new(verification, &key)
            .verify(&tampered, &signature)
            .is_err());
    }
}

#[test]
fn p256_signs_verifiable_der_signatures() {
    sign_and_verify(KeyAlgorithm::EcdsaP256);
}

#[test]
fn p384_signs_verifiable_der_signatures() {
    sign_and_verify(KeyAlgorithm::EcdsaP384);
}

#[test]
fn ed25519_signs_verifiable_signatures() {
    sign_and_verify(KeyAlgorithm::Ed25519);
}

#[test]
fn reopen_by_label_gives_same_key() {
    let Some((config, generated)) = softhsm_signer(KeyAlgorithm::EcdsaP256) else {
        return;
    };
    let reopened = Pkcs11Signer::open(&config).expect("open by label");
    assert_eq!(reopened.spki_der(), generated.spki_der());
    assert_eq!(reopened.algorithm(), KeyAlgorithm::EcdsaP256);
    // Each signer's signatures verify under the shared SPKI.
    let signature = reopened.sign(b"reopened").expect("sign");
    assert_verifies(&generated, b"reopened", &signature);
    // Still usable after the generating signer's session is gone.
    drop(generated);
    let signature = reopened.sign(b"after drop").expect("sign");
    assert_verifies(&reopened, b"after drop", &signature);
}

#[test]
fn generate_refuses_existing_label() {
    let Some((config, _signer)) = softhsm_signer(KeyAlgorithm::EcdsaP256) else {
        return;
    };
    let err = Pkcs11Signer::generate(&config, KeyAlgorithm::EcdsaP384)
        .expect_err("second key with the same label");
    assert!(err.to_string().contains("already holds"), "{err}");
}

#[test]
fn wrong_pin_and_missing_objects() {
    let Some(hsm) = softhsm() else {
        return;
    };
    let label = unique_label("login");
    let mut wrong = hsm.config_on(TOKEN_LOGIN, &label);
    wrong.pin = String::from("not-the-pin").into();

    // Nobody is logged in yet: the token itself rejects the PIN.
    let err = Pkcs11Signer::open(&wrong).expect_err("wrong PIN, fresh login");
    assert!(err.to_string().contains("wrong PIN"), "{err}");
    let err =
        Pkcs11Signer::generate(&wrong, KeyAlgorithm::EcdsaP256).expect_err("wrong PIN, generate");
    assert!(err.to_string().contains("wrong PIN"), "{err}");

    // While another signer keeps the token logged in, C_Login would not
    // check the PIN; the signer still must.
    let right = hsm.config_on(TOKEN_LOGIN, &label);
    let signer = Pkcs11Signer::generate(&right, KeyAlgorithm::EcdsaP256).expect("generate");
    let err = Pkcs11Signer::open(&wrong).expect_err("wrong PIN, token logged in");
    assert!(err.to_string().contains("wrong PIN"), "{err}");
    Pkcs11Signer::open(&right).expect("right PIN, token logged in");

    let err = Pkcs11Signer::open(&hsm.config_on(TOKEN_LOGIN, "no-such-key"))
        .expect_err("unknown key label");
    assert!(err.to_string().contains("no private key"), "{err}");

    let err = Pkcs11Signer::open(&hsm.config_on("no-such-token", &label))
        .expect_err("unknown token label");
    assert!(err.to_string().contains("no token labelled"), "{err}");

    let mut no_module = right.clone();
    no_module.module = PathBuf::from("/nonexistent/libpkcs11.so");
    let err = Pkcs11Signer::open(&no_module).expect_err("missing module");
    assert!(err.to_string().contains("cannot load"), "{err}");

    // The PIN never shows up in logs of either type.
    assert!(!format!("{right:?} {signer:?}").contains(PIN));
}

#[test]
fn signs_from_four_threads() {
    let Some((_config, signer)) = softhsm_signer(KeyAlgorithm::EcdsaP256) else {
        return;
    };
    std::thread::scope(|scope| {
        for thread in 0..4 {
            let signer = &signer;
            scope.spawn(move || {
                for i in 0..25 {
                    let message = format!("thread {thread} message {i}");
                    let signature = signer.sign(message.as_bytes()).expect("sign");
                    assert_verifies(signer, message.as_bytes(), &signature);
                }
            });
        }
    });
}

#[test]
fn usable_as_shared_trait_object() {
    let Some((_config, signer)) = softhsm_signer(KeyAlgorithm::EcdsaP384) else {
        return;
    };
    let shared: std::sync::Arc<dyn Signer> = std::sync::Arc::new(signer);
    let clone = std::sync::Arc::clone(&shared);
    let signature = std::thread::spawn(move || clone.sign(b"arc").expect("sign"))
        .join()
        .expect("thread");
    assert_verifies(&*shared, b"arc", &signature);
}

/// The generated private key stays in the token, and a signer survives
/// its session being logged out (as after an HSM restart).
#[test]
fn key_is_non_extractable_and_signer_reconnects() {
    let Some(hsm) = softhsm() else {
        return;
    };
    let config = hsm.config_on(TOKEN_RECONNECT, &unique_label("reconnect"));
    let signer = Pkcs11Signer::generate(&config, KeyAlgorithm::EcdsaP256).expect("generate");

    // Inspect and log out through a separate handle on the same module (the
    // module is initialised once per process; PKCS#11 login state is shared
    // by all sessions of the process on a token).
    let pkcs11 = Pkcs11::new(&hsm.module).expect("load module");
    match pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(())
        | Err(cryptoki::error::Error::Pkcs11(
            cryptoki::error::RvError::CryptokiAlreadyInitialized,
            _,
        )) => {}
        Err(e) => panic!("initialise: {e}"),
    }
    let slot = pkcs11
        .get_slots_with_initialized_token()
        .expect("slots")
        .into_iter()
        .find(|s| {
            pkcs11
                .get_token_info(*s)
                .map(|i| i.label() == TOKEN_RECONNECT)
                .unwrap_or(false)
        })
        .expect("reconnect token");
    let session = pkcs11.open_ro_session(slot).expect("session");
    match session.login(UserType::User, Some(&AuthPin::new(PIN.into()))) {
        Ok(())
        | Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::UserAlreadyLoggedIn, _)) => {
        }
        Err(e) => panic!("login: {e}"),
    }
    let private = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(config.key_label.as_bytes().to_vec()),
        ])
        .expect("find")
        .pop()
        .expect("private key");
    let attributes = session
        .get_attributes(
            private,
            &[
                AttributeType::Token,
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::Sign,
            ],
        )
        .expect("attributes");
    for expected in [
        Attribute::Token(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
    ] {
        assert!(
            attributes.contains(&expected),
            "{expected:?} in {attributes:?}"
        );
    }
    assert!(session
        .get_attributes(private, &[AttributeType::Value])
        .map(|values| values.is_empty())
        .unwrap_or(true));

    // Logging out logs out every session of the process on this token,
    // including the signer's: its key handle becomes invalid.
    session.logout().expect("logout");
    drop(session);
    let signature = signer.sign(b"after logout").expect("sign after reconnect");
    assert_verifies(&signer, b"after logout", &signature);
}

/// PKCS#11: issue with an issuing-CA key held in SoftHSM2, verify the result.
///
/// The root is a file key (it lives offline); the issuing CA's key is
/// generated in the token and never leaves it. Everything the CA signs —
/// the probe attestation `IssuingCa::load` runs, device and identity
/// attestations, its CRLs — goes through the PKCS#11 signer and is checked
/// by the relying party's verifier under the production CRL policy.
mod issuance {
    use std::time::Duration;

    use govtrust_pki::der::DistinguishedName;
    use govtrust_pki::signer::{FileSigner, KeyAlgorithm, Pkcs11Signer, Signer};
    use govtrust_pki::{
        AttestationRequest, IssuedCertificate, IssuingCa, RevocationReason, RevokedCertificate,
        RootCa, Validity,
    };
    use govtrust_verifier::{
        AuthorityRecord, Crl, CrlPolicy, CrlSet, DeviceId, Ed25519Key, Error, Expected,
        PathPosition, Subject, TrustAnchors, UnixTime, UserId, VerifiedAttestation, Verifier,
    };
    use time::OffsetDateTime;

    use super::softhsm_signer;

    const DAY: Duration = Duration::from_secs(24 * 60 * 60);
    const HOUR: Duration = Duration::from_secs(60 * 60);
    const SERVER: &str = "id.bund.example";
    const USER: &str = "@registration.office:id.bund.example";
    const CRL_URL: &str = "https://govtrust.id.bund.example/v1/crl/hsm.crl";
    const ISSUING_CA_NAME: &str = "govtrust Issuing CA in SoftHSM";

    /// A fresh Ed25519 key standing in for a Matrix device or master key.
    fn matrix_key() -> Ed25519Key {
        let signer = FileSigner::generate(KeyAlgorithm::Ed25519).expect("Ed25519 key");
        Ed25519Key::from_bytes(signer.spki_der()[12..].try_into().expect("32 bytes"))
    }

    fn request(subject: Subject) -> AttestationRequest {
        AttestationRequest {
            user_id: UserId::parse(USER).expect("user"),
            subject,
            key: matrix_key(),
            authority: AuthorityRecord {
                id: "DE-BE-11000000-BA-NK".into(),
                name: "Registration Office Berlin".into(),
                street: Some("Donaustraße 29".into()),
                postal_code: Some("12043".into()),
                locality: Some("Berlin".into()),
                country: Some("DE".into()),
                ..Default::default()
            },
        }
    }

    fn expected(request: &AttestationRequest) -> Expected {
        Expected {
            user_id: request.user_id.clone(),
            subject: request.subject.clone(),
            key: request.key,
        }
    }

    fn crl_set(crls: &[&[u8]]) -> CrlSet {
        crls.iter()
            .map(|der| Crl::from_der(*der).expect("CRL decodes"))
            .collect()
    }

    /// A root (file key) and an issuing CA whose key is in SoftHSM.
    struct HsmHierarchy {
        root: RootCa<FileSigner>,
        ica: IssuingCa<Pkcs11Signer>,
        config: govtrust_pki::signer::Pkcs11Config,
        /// The SPKI of the token's key, as certified.
        ica_spki: Vec<u8>,
        verifier: Verifier,
    }

    impl HsmHierarchy {
        /// `None` when SoftHSM is unavailable (outside CI).
        fn new(algorithm: KeyAlgorithm) -> Option<Self> {
            let (config, signer) = softhsm_signer(algorithm)?;
            assert_eq!(signer.algorithm(), algorithm);
            let ica_spki = signer.spki_der().to_vec();
            let root = RootCa::create(
                &DistinguishedName::ca("govtrust PKCS#11 Test Root", None).expect("name"),
                FileSigner::generate(KeyAlgorithm::EcdsaP256).expect("root key"),
                Validity::from_now(3650 * DAY),
            )
            .expect("root");
            let ica = Self::load_ica(&root, signer, &config.key_label);
            let verifier = Verifier::new(
                TrustAnchors::from_der([root.certificate().der().clone()]).expect("anchors"),
                CrlPolicy::REQUIRE_FRESH,
            );
            Some(HsmHierarchy {
                root,
                ica,
                config,
                ica_spki,
                verifier,
            })
        }

        fn load_ica(
            root: &RootCa<FileSigner>,
            signer: Pkcs11Signer,
            key_label: &str,
        ) -> IssuingCa<Pkcs11Signer> {
            let cert = root
                .issue_issuing_ca(
                    &DistinguishedName::ca(&format!("{ISSUING_CA_NAME} {key_label}"), None)
                        .expect("name"),
                    signer.spki_der().to_vec(),
                    &[SERVER.to_owned()],
                    Validity::from_now(365 * DAY),
                    Some(CRL_URL),
                )
                .expect("issuing CA certificate for the token's key");
            IssuingCa::load(
                cert,
                root.certificate().der().clone(),
                signer,
                Some(CRL_URL.into()),
            )
            .expect("issuing CA loads (its probe attestation, signed in the token, verifies)")
        }

        fn issue(&self, request: &AttestationRequest) -> IssuedCertificate {
            self.ica
                .issue_attestation(request, Validity::from_now(30 * DAY))
                .expect("issue in the token")
        }

        /// Fresh CRLs: the issuing CA's (signed in the token) listing
        /// `revoked`, and the root's.
        fn crls(&self, revoked: &[RevokedCertificate], number: u64) -> CrlSet {
            let now = OffsetDateTime::now_utc();
            let ica_crl = self
                .ica
                .crl(revoked, number, now, HOUR)
                .expect("CRL signed in the token");
            let root_crl = self.root.crl(&[], number, now, HOUR).expect("root CRL");
            crl_set(&[&ica_crl, &root_crl])
        }

        fn verify(
            &self,
            request: &AttestationRequest,
            issued: &IssuedCertificate,
            crls: &CrlSet,
        ) -> Result<VerifiedAttestation, Error> {
            self.verifier
                .verify(&expected(request), &issued.chain, crls, UnixTime::now())
        }
    }

    fn issue_and_verify_with_hsm_issuing_ca(algorithm: KeyAlgorithm) {
        let Some(h) = HsmHierarchy::new(algorithm) else {
            return;
        };
        let device = request(Subject::Device(
            DeviceId::parse("AGENCYDEV1").expect("device"),
        ));
        let identity = request(Subject::Identity);
        let device_cert = h.issue(&device);
        let identity_cert = h.issue(&identity);
        assert_eq!(device_cert.chain.len(), 2, "leaf and issuing CA");
        assert_eq!(
            device_cert.chain[1],
            *h.ica.certificate().der(),
            "the chain carries the HSM CA's certificate"
        );

        let fresh = h.crls(&[], 1);
        for (request, issued) in [(&device, &device_cert), (&identity, &identity_cert)] {
            let verified = h
                .verify(request, issued, &fresh)
                .unwrap_or_else(|e| panic!("{:?} attestation: {e:?}", request.subject));
            assert_eq!(verified.user_id, request.user_id);
            assert_eq!(verified.subject, request.subject);
            assert_eq!(verified.key, request.key);
            assert_eq!(verified.authority, request.authority);
            assert_eq!(verified.serial, issued.serial_hex());
            assert!(
                verified.issuer.contains(ISSUING_CA_NAME),
                "{}",
                verified.issuer
            );
            assert!(
                verified.root.contains("PKCS#11 Test Root"),
                "{}",
                verified.root
            );
        }

        // REQUIRE_FRESH really requires the token-signed CRL.
        let err = h
            .verify(&device, &device_cert, &CrlSet::new())
            .expect_err("no CRLs");
        assert!(
            matches!(
                err,
                Error::CrlMissing {
                    position: PathPosition::Leaf
                }
            ),
            "{err:?}"
        );

        // Revoke the device certificate with a new CRL signed in the token.
        let revoked = [RevokedCertificate {
            serial: device_cert.serial.clone(),
            revoked_at: OffsetDateTime::now_utc(),
            reason: RevocationReason::KeyCompromise,
        }];
        let after = h.crls(&revoked, 2);
        let err = h
            .verify(&device, &device_cert, &after)
            .expect_err("revoked device");
        assert_eq!(err.code(), "revoked", "{err:?}");
        h.verify(&identity, &identity_cert, &after)
            .expect("the identity attestation is not revoked");

        // After a restart the CA reopens its key by label and keeps issuing
        // certificates the same root vouches for.
        let reopened = Pkcs11Signer::open(&h.config).expect("reopen the key by label");
        assert_eq!(reopened.spki_der(), h.ica_spki.as_slice());
        let ica = IssuingCa::load(
            h.ica.certificate().der().clone(),
            h.root.certificate().der().clone(),
            reopened,
            Some(CRL_URL.into()),
        )
        .expect("issuing CA reloads with the reopened key");
        let again = request(Subject::Identity);
        let issued = ica
            .issue_attestation(&again, Validity::from_now(DAY))
            .expect("issue after reopening");
        h.verify(&again, &issued, &fresh)
            .expect("certificate from the reopened key verifies");
    }

    #[test]
    fn p256_issuing_ca_in_softhsm_issues_verifiable_attestations() {
        issue_and_verify_with_hsm_issuing_ca(KeyAlgorithm::EcdsaP256);
    }

    #[test]
    fn p384_issuing_ca_in_softhsm_issues_verifiable_attestations() {
        issue_and_verify_with_hsm_issuing_ca(KeyAlgorithm::EcdsaP384);
    }

    #[test]
    fn ed25519_issuing_ca_in_softhsm_issues_verifiable_attestations() {
        issue_and_verify_with_hsm_issuing_ca(KeyAlgorithm::Ed25519);
    }

    /// A CA certificate whose key is somewhere else than the token is
    /// refused when the CA is loaded, before it signs anything.
    #[test]
    fn issuing_ca_refuses_a_certificate_for_another_key() {
        let Some(h) = HsmHierarchy::new(KeyAlgorithm::EcdsaP256) else {
            return;
        };
        let Some((_config, other)) = softhsm_signer(KeyAlgorithm::EcdsaP256) else {
            return;
        };
        assert!(IssuingCa::load(
            h.ica.certificate().der().clone(),
            h.root.certificate().der().clone(),
            other,
            None,
        )
        .is_err());
    }
}
