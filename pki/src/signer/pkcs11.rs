//! PKCS#11 signer (placeholder, being written).
use super::{KeyAlgorithm, Signer};
use crate::Error;

/// Where to find a key in a PKCS#11 token.
#[derive(Clone, Debug)]
pub struct Pkcs11Config;

/// A signer whose key stays inside a PKCS#11 token.
pub struct Pkcs11Signer;

impl Signer for Pkcs11Signer {
    fn algorithm(&self) -> KeyAlgorithm {
        KeyAlgorithm::EcdsaP256
    }
    fn spki_der(&self) -> &[u8] {
        &[]
    }
    fn sign(&self, _message: &[u8]) -> Result<Vec<u8>, Error> {
        Err(Error::Pkcs11("not yet".into()))
    }
}
