//! Pseudonym derivation: a keyed PRF (HMAC-SHA-256) over the citizen's
//! stable ID and the authority ID, with domain separation and length
//! prefixes, encoded as a Matrix localpart.
//!
//! ```text
//! message   = "govtrust/pseudonym/v1" 0x00
//!             ‖ u32be(len(citizen_id)) ‖ citizen_id
//!             ‖ u32be(len(authority_id)) ‖ authority_id
//! localpart = "p-" ‖ base32-lower-nopad(HMAC-SHA-256(key, message)[0..16])
//! ```
//!
//! The same key and inputs always give the same pseudonym (in either key
//! backend, since both compute plain HMAC-SHA-256); without the key the
//! pseudonyms of one citizen at two authorities are unlinkable (PRF
//! security), and 128 bits make collisions negligible. The length prefixes
//! make the encoding injective (`("ab", "c")` and `("a", "bc")` differ), and
//! the domain tag keeps this key's MACs apart from any other use.

use std::fmt;

use govtrust_pki::signer::MacKey;
use govtrust_verifier::UserId;

/// Domain-separation tag; a new derivation gets a new version.
pub const DOMAIN: &[u8] = b"govtrust/pseudonym/v1\0";
/// Prefix of every pseudonymous localpart.
pub const LOCALPART_PREFIX: &str = "p-";
/// Bytes of the MAC the localpart encodes (128 bits).
pub const PSEUDONYM_BYTES: usize = 16;
/// Longest accepted citizen ID or authority ID, in bytes.
pub const MAX_INPUT_BYTES: usize = 1024;

/// Why a pseudonym could not be derived.
#[derive(Debug, thiserror::Error)]
pub enum PseudonymError {
    /// An input is empty or too long.
    #[error("invalid {0}: must be 1 to 1024 bytes")]
    InvalidInput(&'static str),
    /// The key backend failed.
    #[error("pseudonym key: {0}")]
    Key(#[from] govtrust_pki::Error),
    /// The resulting user ID is not valid on the configured server.
    #[error("pseudonymous user ID: {0}")]
    UserId(#[from] govtrust_verifier::Error),
}

/// A citizen's stable identifier at the identity provider (e.g. the BundID
/// account's persistent `sub`). Personal data: it has no `Display`, its
/// `Debug` is redacted, and it never leaves this process.
#[derive(Clone, PartialEq, Eq)]
pub struct CitizenId(String);

impl CitizenId {
    /// Wraps the identity provider's stable ID.
    pub fn new(id: impl Into<String>) -> Result<Self, PseudonymError> {
        let id = id.into();
        if id.is_empty() || id.len() > MAX_INPUT_BYTES {
            return Err(PseudonymError::InvalidInput("citizen ID"));
        }
        Ok(CitizenId(id))
    }

    /// The raw ID, for the PRF input only.
    fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for CitizenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CitizenId(<redacted>)")
    }
}

/// A derived pseudonym: the localpart `p-<26 base32 characters>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pseudonym(String);

impl Pseudonym {
    /// The Matrix localpart.
    pub fn localpart(&self) -> &str {
        &self.0
    }

    /// The pseudonymous user on `server`.
    pub fn user_id(&self, server: &str) -> Result<UserId, PseudonymError> {
        Ok(UserId::parse(&format!("@{}:{server}", self.0))?)
    }
}

impl fmt::Display for Pseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The PRF input for (citizen, authority).
pub fn prf_message(citizen: &CitizenId, authority_id: &str) -> Result<Vec<u8>, PseudonymError> {
    if authority_id.is_empty() || authority_id.len() > MAX_INPUT_BYTES {
        return Err(PseudonymError::InvalidInput("authority ID"));
    }
    let mut message = Vec::with_capacity(DOMAIN.len() + 8 + citizen.0.len() + authority_id.len());
    message.extend_from_slice(DOMAIN);
    for field in [citizen.as_bytes(), authority_id.as_bytes()] {
        // Both lengths are at most MAX_INPUT_BYTES, far below u32::MAX.
        let len = u32::try_from(field.len()).map_err(|_| PseudonymError::InvalidInput("input"))?;
        message.extend_from_slice(&len.to_be_bytes());
        message.extend_from_slice(field);
    }
    Ok(message)
}

/// Derives the pseudonym of `citizen` at `authority_id` with `key`.
pub fn derive(
    key: &dyn MacKey,
    citizen: &CitizenId,
    authority_id: &str,
) -> Result<Pseudonym, PseudonymError> {
    let mac = key.hmac_sha256(&prf_message(citizen, authority_id)?)?;
    Ok(Pseudonym(format!(
        "{LOCALPART_PREFIX}{}",
        base32_lower(&mac[..PSEUDONYM_BYTES])
    )))
}

/// RFC 4648 base32, lower-case, without padding: only `a-z2-7`, all valid
/// in Matrix localparts.
pub fn base32_lower(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use govtrust_pki::signer::FileMacKey;

    fn key(byte: u8) -> FileMacKey {
        FileMacKey::from_bytes(&[byte; 32]).unwrap()
    }

    fn citizen(id: &str) -> CitizenId {
        CitizenId::new(id).unwrap()
    }

    #[test]
    fn base32_matches_rfc4648_vectors() {
        for (input, output) in [
            ("", ""),
            ("f", "my"),
            ("fo", "mzxq"),
            ("foo", "mzxw6"),
            ("foob", "mzxw6yq"),
            ("fooba", "mzxw6ytb"),
            ("foobar", "mzxw6ytboi"),
        ] {
            assert_eq!(base32_lower(input.as_bytes()), output);
        }
    }

    #[test]
    fn deterministic_and_a_valid_localpart() {
        let k = key(1);
        let a = derive(&k, &citizen("bundid-sub-4711"), "DE-BE-11000000-BA-NK").unwrap();
        let b = derive(&k, &citizen("bundid-sub-4711"), "DE-BE-11000000-BA-NK").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.localpart().len(), 2 + 26);
        assert!(a.localpart().starts_with("p-"));
        let user = a.user_id("id.bund.example").unwrap();
        assert_eq!(user.localpart(), a.localpart());
        // A restart: the same key bytes from a fresh key object.
        assert_eq!(
            derive(&key(1), &citizen("bundid-sub-4711"), "DE-BE-11000000-BA-NK").unwrap(),
            a
        );
    }

    #[test]
    fn unlinkable_across_authorities_and_keys() {
        let k = key(1);
        let c = citizen("bundid-sub-4711");
        let at_a = derive(&k, &c, "DE-BE-AGENCY-A").unwrap();
        let at_b = derive(&k, &c, "DE-BE-AGENCY-B").unwrap();
        assert_ne!(at_a, at_b);
        assert_ne!(derive(&key(2), &c, "DE-BE-AGENCY-A").unwrap(), at_a);
        assert_ne!(
            derive(&k, &citizen("bundid-sub-4712"), "DE-BE-AGENCY-A").unwrap(),
            at_a
        );
        // Neither pseudonym contains (an encoding of) the citizen ID.
        for p in [&at_a, &at_b] {
            assert!(!p.localpart().contains("4711"));
            assert!(!p.localpart().contains(&base32_lower(b"bundid")));
        }
    }

    #[test]
    fn length_prefixes_make_the_input_injective() {
        let k = key(1);
        assert_ne!(
            derive(&k, &citizen("ab"), "c").unwrap(),
            derive(&k, &citizen("a"), "bc").unwrap()
        );
        let m = prf_message(&citizen("ab"), "c").unwrap();
        assert!(m.starts_with(DOMAIN));
        assert_eq!(&m[DOMAIN.len()..DOMAIN.len() + 4], &[0, 0, 0, 2]);
    }

    #[test]
    fn refuses_empty_and_oversized_inputs_and_redacts_debug() {
        assert!(CitizenId::new("").is_err());
        assert!(CitizenId::new("x".repeat(MAX_INPUT_BYTES + 1)).is_err());
        assert!(derive(&key(1), &citizen("a"), "").is_err());
        assert_eq!(
            format!("{:?}", citizen("secret-id")),
            "CitizenId(<redacted>)"
        );
    }
}
