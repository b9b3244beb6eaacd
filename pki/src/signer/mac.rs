//! HMAC-SHA-256 keys in the CA key backends: the secret of a keyed PRF
//! (the service derives citizens' per-agency pseudonyms with it).
//!
//! Like CA signing keys, a MAC key lives either in a file of the CA
//! directory (32 random bytes, mode 0600, development) or in a PKCS#11 token
//! as a `CKK_GENERIC_SECRET` key used with `CKM_SHA256_HMAC`
//! ([`super::Pkcs11MacKey`], production), where it never leaves the token.
//! Both compute plain HMAC-SHA-256 (RFC 2104), so the same 32-byte secret
//! gives the same output in either backend.

use std::path::Path;

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::Error;

/// Length of a generated MAC key: 32 bytes, the HMAC-SHA-256 block-size
/// recommendation of RFC 2104 (the output length).
pub const MAC_KEY_LEN: usize = 32;

/// A secret HMAC-SHA-256 key that can MAC but never reveals itself.
pub trait MacKey: Send + Sync {
    /// HMAC-SHA-256 of `message` (32 bytes).
    fn hmac_sha256(&self, message: &[u8]) -> Result<[u8; 32], Error>;
}

impl<K: MacKey + ?Sized> MacKey for Box<K> {
    fn hmac_sha256(&self, message: &[u8]) -> Result<[u8; 32], Error> {
        (**self).hmac_sha256(message)
    }
}

impl<K: MacKey + ?Sized> MacKey for std::sync::Arc<K> {
    fn hmac_sha256(&self, message: &[u8]) -> Result<[u8; 32], Error> {
        (**self).hmac_sha256(message)
    }
}

/// An HMAC-SHA-256 key held in memory (read from a key file).
pub struct FileMacKey {
    key: hmac::Key,
}

impl std::fmt::Debug for FileMacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileMacKey(..)")
    }
}

impl FileMacKey {
    /// A key from its secret bytes (exactly [`MAC_KEY_LEN`]).
    pub fn from_bytes(secret: &[u8]) -> Result<Self, Error> {
        if secret.len() != MAC_KEY_LEN {
            return Err(Error::Key(format!(
                "a MAC key must be {MAC_KEY_LEN} bytes, not {}",
                secret.len()
            )));
        }
        Ok(FileMacKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        })
    }

    /// Reads a key file: exactly [`MAC_KEY_LEN`] raw bytes. On Unix the
    /// file must not be readable by group or others.
    pub fn load(path: &Path) -> Result<Self, Error> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(Error::Key(format!(
                    "MAC key file {} has mode {:o}; it must be 0600",
                    path.display(),
                    mode & 0o777
                )));
            }
        }
        let secret = Zeroizing::new(std::fs::read(path)?);
        Self::from_bytes(&secret)
            .map_err(|e| Error::Key(format!("MAC key file {}: {e}", path.display())))
    }

    /// Generates a new random key and writes it to `path` with mode 0600,
    /// refusing to overwrite an existing file (a replaced PRF key silently
    /// changes every pseudonym).
    pub fn generate(path: &Path) -> Result<Self, Error> {
        let mut secret = Zeroizing::new([0u8; MAC_KEY_LEN]);
        SystemRandom::new()
            .fill(secret.as_mut())
            .map_err(|_| Error::Key("no randomness for the MAC key".into()))?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path)?;
        std::io::Write::write_all(&mut file, secret.as_ref())?;
        file.sync_all()?;
        Self::from_bytes(secret.as_ref())
    }

    /// Loads the key at `path`, or generates it there if no file exists;
    /// `true` when it was generated.
    pub fn load_or_generate(path: &Path) -> Result<(Self, bool), Error> {
        match Self::generate(path) {
            Ok(key) => Ok((key, true)),
            Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Ok((Self::load(path)?, false))
            }
            Err(e) => Err(e),
        }
    }
}

impl MacKey for FileMacKey {
    fn hmac_sha256(&self, message: &[u8]) -> Result<[u8; 32], Error> {
        let tag = hmac::sign(&self.key, message);
        tag.as_ref()
            .try_into()
            .map_err(|_| Error::Signer("HMAC-SHA-256 output is not 32 bytes".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4231_test_case_2_shape() {
        // RFC 4231 test case 2 uses a 4-byte key; file keys are 32 bytes, so
        // check against ring directly with a 32-byte key instead.
        let secret = [7u8; 32];
        let key = FileMacKey::from_bytes(&secret).unwrap();
        let expected = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &secret), b"abc");
        assert_eq!(
            key.hmac_sha256(b"abc").unwrap().as_slice(),
            expected.as_ref()
        );
        assert!(FileMacKey::from_bytes(&[0u8; 31]).is_err());
    }

    #[test]
    fn generated_file_is_private_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pseudonym.key");
        let (a, generated) = FileMacKey::load_or_generate(&path).unwrap();
        assert!(generated);
        let (b, generated) = FileMacKey::load_or_generate(&path).unwrap();
        assert!(!generated);
        assert_eq!(a.hmac_sha256(b"x").unwrap(), b.hmac_sha256(b"x").unwrap());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(FileMacKey::load(&path).is_err());
        }
        assert!(FileMacKey::generate(&path).is_err(), "never overwrites");
    }
}
