//! Signers: where a CA's private key lives and how it signs.
//!
//! The CA logic only needs "sign these TBS bytes and tell me your public
//! key and algorithm", so key storage (a PKCS#8 file for development, an
//! HSM over PKCS#11 for production) is a backend behind [`Signer`].

mod file;
pub mod mac;
mod pkcs11;

pub use file::FileSigner;
pub use mac::{FileMacKey, MacKey};
pub use pkcs11::{Pkcs11Config, Pkcs11MacKey, Pkcs11Signer};

use crate::Error;

/// Key algorithms a govtrust CA may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// ECDSA on NIST P-256 with SHA-256 (the default).
    EcdsaP256,
    /// ECDSA on NIST P-384 with SHA-384.
    EcdsaP384,
    /// Ed25519 (RFC 8410).
    Ed25519,
}

impl KeyAlgorithm {
    /// DER of the `AlgorithmIdentifier` this key signs certificates and CRLs with.
    pub fn signature_algorithm_der(self) -> &'static [u8] {
        match self {
            // ecdsa-with-SHA256
            KeyAlgorithm::EcdsaP256 => &[
                0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
            ],
            // ecdsa-with-SHA384
            KeyAlgorithm::EcdsaP384 => &[
                0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03,
            ],
            // id-Ed25519
            KeyAlgorithm::Ed25519 => &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70],
        }
    }

    /// DER of the `AlgorithmIdentifier` of the public key in an SPKI.
    pub(crate) fn spki_algorithm_der(self) -> &'static [u8] {
        match self {
            // id-ecPublicKey, prime256v1
            KeyAlgorithm::EcdsaP256 => &[
                0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
                0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
            ],
            // id-ecPublicKey, secp384r1
            KeyAlgorithm::EcdsaP384 => &[
                0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b,
                0x81, 0x04, 0x00, 0x22,
            ],
            KeyAlgorithm::Ed25519 => &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70],
        }
    }

    /// Builds the SubjectPublicKeyInfo DER for a raw public key of this
    /// algorithm (uncompressed EC point, or 32 Ed25519 bytes).
    pub fn spki_der(self, raw_public_key: &[u8]) -> Vec<u8> {
        yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_der(self.spki_algorithm_der());
                w.next()
                    .write_bitvec_bytes(raw_public_key, raw_public_key.len() * 8);
            })
        })
    }

    /// Parses the names used in configuration and on the command line.
    pub fn parse(name: &str) -> Result<Self, Error> {
        match name.to_ascii_lowercase().as_str() {
            "p256" | "p-256" | "ecdsa-p256" => Ok(KeyAlgorithm::EcdsaP256),
            "p384" | "p-384" | "ecdsa-p384" => Ok(KeyAlgorithm::EcdsaP384),
            "ed25519" => Ok(KeyAlgorithm::Ed25519),
            other => Err(Error::InvalidRequest(format!(
                "unknown key algorithm {other:?} (use p256, p384 or ed25519)"
            ))),
        }
    }
}

/// A CA private key that can sign.
///
/// Implementations must be usable from several threads: the service signs
/// concurrently.
pub trait Signer: Send + Sync {
    /// The key's algorithm, which fixes the signature algorithm.
    fn algorithm(&self) -> KeyAlgorithm;

    /// The public key as SubjectPublicKeyInfo DER.
    fn spki_der(&self) -> &[u8];

    /// Signs `message` and returns the signature as X.509 carries it:
    /// a DER `Ecdsa-Sig-Value` for ECDSA, 64 raw bytes for Ed25519.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error>;
}

impl<S: Signer + ?Sized> Signer for Box<S> {
    fn algorithm(&self) -> KeyAlgorithm {
        (**self).algorithm()
    }
    fn spki_der(&self) -> &[u8] {
        (**self).spki_der()
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        (**self).sign(message)
    }
}

impl<S: Signer + ?Sized> Signer for std::sync::Arc<S> {
    fn algorithm(&self) -> KeyAlgorithm {
        (**self).algorithm()
    }
    fn spki_der(&self) -> &[u8] {
        (**self).spki_der()
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        (**self).sign(message)
    }
}

/// Converts a raw `r || s` ECDSA signature (what PKCS#11 `CKM_ECDSA`
/// returns) into the DER `Ecdsa-Sig-Value` X.509 expects.
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Result<Vec<u8>, Error> {
    if raw.is_empty() || raw.len() % 2 != 0 {
        return Err(Error::Signer(format!(
            "raw ECDSA signature has odd length {}",
            raw.len()
        )));
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    Ok(yasna::construct_der(|w| {
        w.write_sequence(|w| {
            write_unsigned_integer(w.next(), r);
            write_unsigned_integer(w.next(), s);
        })
    }))
}

/// Writes big-endian unsigned bytes as a DER INTEGER (minimal, positive).
pub(crate) fn write_unsigned_integer(w: yasna::DERWriter<'_>, bytes: &[u8]) {
    let trimmed = {
        let zeros = bytes.iter().take_while(|&&b| b == 0).count();
        &bytes[zeros.min(bytes.len().saturating_sub(1))..]
    };
    w.write_bigint_bytes(trimmed, true);
}
