//! HMAC-SHA-256 keys in a PKCS#11 token (SoftHSM2): generation, import,
//! agreement with the file backend for the same secret, and refusals.
//!
//! Own SoftHSM fixture (SOFTHSM2_CONF is process-wide, so one per test
//! binary); skipped with a notice when SoftHSM is missing, except in CI.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use govtrust_pki::signer::{
    FileMacKey, KeyAlgorithm, MacKey, Pkcs11Config, Pkcs11MacKey, Pkcs11Signer,
};

const TOKEN: &str = "govtrust-mac-test";
const PIN: &str = "user-pin-1234";

struct SoftHsm {
    module: PathBuf,
    _dir: tempfile::TempDir,
}

fn softhsm() -> Option<&'static SoftHsm> {
    static FIXTURE: OnceLock<Option<SoftHsm>> = OnceLock::new();
    FIXTURE
        .get_or_init(|| {
            let module = std::env::var_os("GOVTRUST_PKCS11_MODULE")
                .map(PathBuf::from)
                .or_else(|| {
                    [
                        "/usr/lib/softhsm/libsofthsm2.so",
                        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
                        "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
                        "/usr/local/lib/softhsm/libsofthsm2.so",
                    ]
                    .iter()
                    .map(PathBuf::from)
                    .find(|p| p.is_file())
                })
                .filter(|p| p.is_file());
            let util = Command::new("softhsm2-util").arg("--version").output();
            let (Some(module), Ok(_)) = (module, util) else {
                let notice = "SoftHSM2 not found; run scripts/softhsm-setup.sh";
                if std::env::var_os("CI").is_some() {
                    panic!("{notice}");
                }
                eprintln!("NOTICE: {notice}; skipping PKCS#11 MAC tests");
                return None;
            };
            let dir = tempfile::tempdir().expect("temp dir");
            let tokens = dir.path().join("tokens");
            std::fs::create_dir(&tokens).expect("token dir");
            let conf = dir.path().join("softhsm2.conf");
            std::fs::write(
                &conf,
                format!(
                    "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                    tokens.display()
                ),
            )
            .expect("conf");
            std::env::set_var("SOFTHSM2_CONF", &conf);
            let out = Command::new("softhsm2-util")
                .env("SOFTHSM2_CONF", &conf)
                .args(["--init-token", "--free", "--label", TOKEN])
                .args(["--so-pin", "so-pin-12345", "--pin", PIN])
                .output()
                .expect("softhsm2-util");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(SoftHsm { module, _dir: dir })
        })
        .as_ref()
}

fn config(prefix: &str) -> Option<Pkcs11Config> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let hsm = softhsm()?;
    let label = format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed));
    Some(Pkcs11Config::new(&hsm.module, TOKEN, label, PIN))
}

#[test]
fn generated_key_is_deterministic_and_reopens() {
    let Some(config) = config("mac") else { return };
    let key = Pkcs11MacKey::generate(&config).expect("generate MAC key");
    let a = key.hmac_sha256(b"message").unwrap();
    assert_eq!(a, key.hmac_sha256(b"message").unwrap());
    assert_ne!(a, key.hmac_sha256(b"other message").unwrap());
    // Another handle on the same token object (as after a restart).
    let reopened = Pkcs11MacKey::open(&config).expect("reopen");
    assert_eq!(a, reopened.hmac_sha256(b"message").unwrap());
    // A label is never reused.
    assert!(Pkcs11MacKey::generate(&config).is_err());
}

#[test]
fn imported_secret_agrees_with_the_file_backend() {
    let Some(cfg) = config("import") else { return };
    let secret = [0x5au8; 32];
    let token = Pkcs11MacKey::import(&cfg, &secret).expect("import");
    let file = FileMacKey::from_bytes(&secret).unwrap();
    for message in [b"".as_slice(), b"abc", &[0u8; 1000]] {
        assert_eq!(
            token.hmac_sha256(message).unwrap(),
            file.hmac_sha256(message).unwrap()
        );
    }
    assert!(Pkcs11MacKey::import(&config("short").unwrap(), &[1u8; 16]).is_err());
}

#[test]
fn refuses_a_missing_key_a_signing_key_and_a_wrong_pin() {
    let Some(missing) = config("missing") else {
        return;
    };
    assert!(Pkcs11MacKey::open(&missing).is_err());
    // An EC signing key under the label is not a MAC key.
    let ec = config("ec").unwrap();
    Pkcs11Signer::generate(&ec, KeyAlgorithm::EcdsaP256).expect("EC key");
    assert!(Pkcs11MacKey::open(&ec).is_err());
    // Nor may a MAC key be created beside it under the same label: one
    // label names one key, whatever its kind.
    assert!(Pkcs11MacKey::generate(&ec).is_err());
    let good = config("pin").unwrap();
    Pkcs11MacKey::generate(&good).unwrap();
    let mut wrong = good.clone();
    wrong.pin = String::from("wrong-pin-0000").into();
    assert!(Pkcs11MacKey::open(&wrong).is_err());
}
