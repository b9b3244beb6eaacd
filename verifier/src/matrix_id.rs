//! Matrix identifiers as the profile binds them: user IDs, device IDs,
//! Ed25519 keys, and the `matrix:u/` URI that carries a user ID in the SAN.
//!
//! Parsing is strict about structure (so that two spellings can never name
//! the same subject) and comparison is byte-exact, as Matrix compares IDs.

use std::fmt;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;

use crate::Error;

/// Longest user ID the Matrix specification allows, in bytes.
const MAX_USER_ID_LEN: usize = 255;
/// Longest device ID govtrust accepts, in bytes (the spec sets no limit;
/// homeservers use short opaque strings).
const MAX_DEVICE_ID_LEN: usize = 255;

/// A Matrix user ID `@localpart:server_name`.
///
/// The localpart follows the historical grammar (printable ASCII other
/// than `:`), because clients must accept historical user IDs; the server
/// name must be a valid hostname, IPv4 or bracketed IPv6 literal with an
/// optional port.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId {
    full: String,
    colon: usize,
}

impl UserId {
    /// Parses and validates a user ID.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::InvalidInput(format!("user ID {s:?}: {why}"));
        if s.len() > MAX_USER_ID_LEN {
            return Err(bad("longer than 255 bytes"));
        }
        let rest = s
            .strip_prefix('@')
            .ok_or_else(|| bad("must start with @"))?;
        let colon = rest.find(':').ok_or_else(|| bad("missing :server_name"))?;
        let (localpart, server) = (&rest[..colon], &rest[colon + 1..]);
        if localpart.is_empty() {
            return Err(bad("empty localpart"));
        }
        if !localpart
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b':')
        {
            return Err(bad("localpart has characters outside printable ASCII"));
        }
        validate_server_name(server).map_err(|why| bad(&why))?;
        Ok(UserId {
            full: s.to_owned(),
            colon: colon + 1,
        })
    }

    /// The localpart, without `@`.
    pub fn localpart(&self) -> &str {
        &self.full[1..self.colon]
    }

    /// The server name, which the issuing CA's ARC.11 list must permit.
    pub fn server_name(&self) -> &str {
        &self.full[self.colon + 1..]
    }

    /// The full `@localpart:server` form.
    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// The canonical `matrix:u/<localpart>:<server>` URI the certificate's
    /// SAN must carry, byte for byte.
    ///
    /// Characters outside RFC 3986 `pchar` (notably `/`, `%`, `?`, `#`,
    /// which the historical localpart grammar allows, and the brackets of
    /// IPv6 literals) are percent-encoded with upper-case hex, so the URI has
    /// exactly one spelling; `:` is a `pchar` and stays literal, as in
    /// MSC2312 (`matrix:u/alice:example.org:8448`).
    pub fn to_matrix_uri(&self) -> String {
        let mut uri = String::from("matrix:u/");
        for b in self.localpart().bytes() {
            push_pchar(&mut uri, b);
        }
        uri.push(':');
        for b in self.server_name().bytes() {
            push_pchar(&mut uri, b);
        }
        uri
    }
}

impl UserId {
    /// Reads a user ID back from its canonical `matrix:u/` URI; URIs that
    /// are not in the canonical spelling are refused.
    pub fn from_matrix_uri(uri: &str) -> Result<Self, Error> {
        let bad = || Error::InvalidInput(format!("{uri:?} is not a canonical matrix:u/ URI"));
        let rest = uri.strip_prefix("matrix:u/").ok_or_else(bad)?;
        let mut decoded = Vec::with_capacity(rest.len() + 1);
        decoded.push(b'@');
        let mut bytes = rest.bytes();
        while let Some(b) = bytes.next() {
            if b == b'%' {
                let hex = [bytes.next().ok_or_else(bad)?, bytes.next().ok_or_else(bad)?];
                let hex = std::str::from_utf8(&hex).map_err(|_| bad())?;
                decoded.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            } else {
                decoded.push(b);
            }
        }
        let user = UserId::parse(&String::from_utf8(decoded).map_err(|_| bad())?)?;
        if user.to_matrix_uri() == uri {
            Ok(user)
        } else {
            Err(bad())
        }
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl std::str::FromStr for UserId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        UserId::parse(s)
    }
}

fn push_pchar(out: &mut String, b: u8) {
    let literal = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b);
    if literal {
        out.push(char::from(b));
    } else {
        out.push_str(&format!("%{b:02X}"));
    }
}

/// Validates a Matrix server name: `host[:port]`, where host is a DNS name,
/// an IPv4 literal or a bracketed IPv6 literal.
pub fn validate_server_name(server: &str) -> Result<(), String> {
    if server.is_empty() {
        return Err("empty server name".into());
    }
    let (host, port) = match server.strip_prefix('[') {
        Some(rest) => {
            let (v6, after) = rest.split_once(']').ok_or("unterminated IPv6 literal")?;
            v6.parse::<std::net::Ipv6Addr>()
                .map_err(|_| "invalid IPv6 literal")?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or("junk after IPv6 literal")?),
            };
            (None, port)
        }
        None => match server.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(server), None),
        },
    };
    if let Some(port) = port {
        if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err("invalid port".into());
        }
        if port.parse::<u32>().map_or(true, |p| p == 0 || p > 65535) {
            return Err("port out of range".into());
        }
    }
    if let Some(host) = host {
        if host.is_empty() || host.len() > 253 {
            return Err("invalid host name length".into());
        }
        let labels_ok = host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
        if !labels_ok {
            return Err("invalid host name".into());
        }
    }
    Ok(())
}

/// A Matrix device ID: an opaque, non-empty string without control
/// characters or `|` (which separates the parts of the attestation state key).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(String);

impl DeviceId {
    /// Validates a device ID.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::InvalidInput(format!("device ID {s:?}: {why}"));
        if s.is_empty() || s.len() > MAX_DEVICE_ID_LEN {
            return Err(bad("must be 1 to 255 bytes"));
        }
        if s.chars()
            .any(|c| c.is_control() || c == '|' || c.is_whitespace())
        {
            return Err(bad("contains whitespace, control characters or |"));
        }
        Ok(DeviceId(s.to_owned()))
    }

    /// The device ID as Matrix prints it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for DeviceId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        DeviceId::parse(s)
    }
}

/// A raw 32-byte Ed25519 public key: a device's `ed25519:<DEVICE_ID>` key or
/// a cross-signing master key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ed25519Key([u8; 32]);

impl Ed25519Key {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Ed25519Key(bytes)
    }

    /// Parses standard base64, unpadded (as Matrix prints keys) or padded.
    pub fn from_base64(s: &str) -> Result<Self, Error> {
        let s = s.trim();
        let bytes = STANDARD_NO_PAD
            .decode(s)
            .or_else(|_| STANDARD.decode(s))
            .map_err(|e| Error::InvalidInput(format!("Ed25519 key is not base64: {e}")))?;
        let raw: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            Error::InvalidInput(format!("Ed25519 key must be 32 bytes, got {}", b.len()))
        })?;
        Ok(Ed25519Key(raw))
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Unpadded standard base64, the form Matrix uses in `/keys/query`.
    pub fn to_base64(&self) -> String {
        STANDARD_NO_PAD.encode(self.0)
    }

    /// The RFC 8410 SubjectPublicKeyInfo DER that an attestation
    /// certificate for this key must carry.
    pub fn to_spki_der(&self) -> Vec<u8> {
        let mut spki = crate::oid::ED25519_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(&self.0);
        spki
    }
}

impl fmt::Debug for Ed25519Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ed25519Key({})", self.to_base64())
    }
}

impl fmt::Display for Ed25519Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

/// Identifiers serialise as the strings Matrix prints, so JSON output and
/// the event content use one spelling.
macro_rules! serialize_as_string {
    ($($t:ty),*) => {$(
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    )*};
}
serialize_as_string!(UserId, DeviceId, Ed25519Key);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids() {
        let u = UserId::parse("@office.berlin:id.bund.example").unwrap();
        assert_eq!(u.localpart(), "office.berlin");
        assert_eq!(u.server_name(), "id.bund.example");
        assert_eq!(u.to_matrix_uri(), "matrix:u/office.berlin:id.bund.example");
        let p = UserId::parse("@a/b%c:[::1]:8448").unwrap();
        assert_eq!(p.server_name(), "[::1]:8448");
        assert_eq!(p.to_matrix_uri(), "matrix:u/a%2Fb%25c:%5B::1%5D:8448");
        assert_eq!(UserId::from_matrix_uri(&p.to_matrix_uri()).unwrap(), p);
        assert_eq!(UserId::from_matrix_uri(&u.to_matrix_uri()).unwrap(), u);
        assert!(UserId::from_matrix_uri("matrix:u/a%2fb:server").is_err());
        assert!(UserId::from_matrix_uri("matrix:r/room:server").is_err());
        for bad in [
            "",
            "user:server",
            "@:server",
            "@user",
            "@user:",
            "@us er:server",
            "@user:ser_ver",
            "@user:server:0",
            "@user:server:99999",
            "@user:[zz]",
            "@user:-bad.example",
        ] {
            assert!(UserId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn device_ids_and_keys() {
        assert!(DeviceId::parse("ABCDEFGH").is_ok());
        for bad in ["", "a|b", "a b", "a\nb"] {
            assert!(DeviceId::parse(bad).is_err(), "{bad:?}");
        }
        let k = Ed25519Key::from_bytes([7; 32]);
        assert_eq!(Ed25519Key::from_base64(&k.to_base64()).unwrap(), k);
        let padded = STANDARD.encode([7u8; 32]);
        assert_eq!(Ed25519Key::from_base64(&padded).unwrap(), k);
        assert!(Ed25519Key::from_base64("AAAA").is_err());
        assert!(Ed25519Key::from_base64("not base64!").is_err());
        assert_eq!(k.to_spki_der().len(), 44);
    }
}
