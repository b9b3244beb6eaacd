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
