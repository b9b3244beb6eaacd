//! File signer: a PKCS#8 private key on disk, optionally encrypted with a
//! passphrase (PBES2, scrypt + AES-256-CBC). For development and for roots
//! kept offline on removable media; production issuing keys belong in an
//! HSM ([`super::Pkcs11Signer`]).

use std::path::Path;

use pkcs8::der::pem::LineEnding;
use pkcs8::der::Decode;
use pkcs8::{EncryptedPrivateKeyInfo, PrivateKeyInfo};
use ring::rand::SystemRandom;
use ring::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use zeroize::Zeroizing;

use super::{KeyAlgorithm, Signer};
use crate::Error;

enum Key {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A signer whose key is held in memory, loaded from (or generated into) a
/// PKCS#8 document.
pub struct FileSigner {
    key: Key,
    algorithm: KeyAlgorithm,
    spki: Vec<u8>,
    rng: SystemRandom,
    pkcs8: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for FileSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSigner")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl FileSigner {
    /// Generates a fresh key.
    pub fn generate(algorithm: KeyAlgorithm) -> Result<Self, Error> {
        let rng = SystemRandom::new();
        let doc = match algorithm {
            KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 => {
                EcdsaKeyPair::generate_pkcs8(ecdsa_alg(algorithm), &rng)
            }
            KeyAlgorithm::Ed25519 => Ed25519KeyPair::generate_pkcs8(&rng),
        }
        .map_err(|_| Error::Key("key generation failed".into()))?;
        FileSigner::from_pkcs8_der(doc.as_ref())
    }

    /// Loads an unencrypted PKCS#8 DER key, detecting its algorithm.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, Error> {
        let rng = SystemRandom::new();
        let (key, algorithm) = [KeyAlgorithm::EcdsaP256, KeyAlgorithm::EcdsaP384]
            .into_iter()
            .find_map(|alg| {
                EcdsaKeyPair::from_pkcs8(ecdsa_alg(alg), der, &rng)
                    .ok()
                    .map(|k| (Key::Ecdsa(k), alg))
            })
            .or_else(|| {
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                    .ok()
                    .map(|k| (Key::Ed25519(k), KeyAlgorithm::Ed25519))
            })
            .ok_or_else(|| {
                Error::Key("not a PKCS#8 ECDSA P-256/P-384 or Ed25519 private key".into())
            })?;
        let public = match &key {
            Key::Ecdsa(k) => k.public_key().as_ref().to_vec(),
            Key::Ed25519(k) => k.public_key().as_ref().to_vec(),
        };
        Ok(FileSigner {
            spki: algorithm.spki_der(&public),
            key,
            algorithm,
            rng,
            pkcs8: Zeroizing::new(der.to_vec()),
        })
    }

    /// Loads a PEM key: `PRIVATE KEY`, or `ENCRYPTED PRIVATE KEY` with a
    /// passphrase.
    pub fn from_pem(pem: &str, passphrase: Option<&str>) -> Result<Self, Error> {
        let (label, doc) = pkcs8::SecretDocument::from_pem(pem)
            .map_err(|e| Error::Key(format!("not a PEM private key: {e}")))?;
        match (label, passphrase) {
            ("PRIVATE KEY", _) => FileSigner::from_pkcs8_der(doc.as_bytes()),
            ("ENCRYPTED PRIVATE KEY", Some(pass)) => {
                let info = EncryptedPrivateKeyInfo::from_der(doc.as_bytes())
                    .map_err(|e| Error::Key(format!("encrypted key: {e}")))?;
                let plain = info
                    .decrypt(pass)
                    .map_err(|_| Error::Key("wrong passphrase or damaged key file".into()))?;
                FileSigner::from_pkcs8_der(plain.as_bytes())
            }
            ("ENCRYPTED PRIVATE KEY", None) => Err(Error::Key(
                "the key is encrypted: a passphrase is needed".into(),
            )),
            (other, _) => Err(Error::Key(format!("unexpected PEM label {other:?}"))),
        }
    }

    /// Reads a PEM key file.
    pub fn load(path: &Path, passphrase: Option<&str>) -> Result<Self, Error> {
        let pem = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| Error::Key(format!("cannot read {}: {e}", path.display())))?,
        );
        FileSigner::from_pem(&pem, passphrase)
    }

    /// The key as PEM, encrypted when a passphrase is given.
    pub fn to_pem(&self, passphrase: Option<&str>) -> Result<Zeroizing<String>, Error> {
        let info = PrivateKeyInfo::from_der(&self.pkcs8)
            .map_err(|e| Error::Key(format!("PKCS#8: {e}")))?;
        let encoding = |e: &dyn std::fmt::Display| Error::Key(format!("PKCS#8 encoding: {e}"));
        let (label, doc) = match passphrase {
            Some(pass) => (
                "ENCRYPTED PRIVATE KEY",
                info.encrypt(rand_core::OsRng, pass)
                    .map_err(|e| encoding(&e))?,
            ),
            None => (
                "PRIVATE KEY",
                pkcs8::SecretDocument::try_from(info).map_err(|e| encoding(&e))?,
            ),
        };
        doc.to_pem(label, LineEnding::LF).map_err(|e| encoding(&e))
    }

    /// Writes the key as PEM with mode 0600, refusing to overwrite an
    /// existing file (a CA key is never silently replaced).
    pub fn save(&self, path: &Path, passphrase: Option<&str>) -> Result<(), Error> {
        use std::io::Write;
        let pem = self.to_pem(passphrase)?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(path)
            .map_err(|e| Error::Key(format!("cannot create {}: {e}", path.display())))?;
        file.write_all(pem.as_bytes())?;
        file.sync_all()?;
        Ok(())
    }
}

fn ecdsa_alg(alg: KeyAlgorithm) -> &'static sig::EcdsaSigningAlgorithm {
    match alg {
        KeyAlgorithm::EcdsaP384 => &sig::ECDSA_P384_SHA384_ASN1_SIGNING,
        _ => &sig::ECDSA_P256_SHA256_ASN1_SIGNING,
    }
}

impl Signer for FileSigner {
    fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        match &self.key {
            Key::Ecdsa(k) => k
                .sign(&self.rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| Error::Signer("ECDSA signing failed".into())),
            Key::Ed25519(k) => Ok(k.sign(message).as_ref().to_vec()),
        }
    }
}
