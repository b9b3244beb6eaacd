//! Object identifiers of the govtrust certificate profile.
//!
//! The profile lives under a UUID-derived arc (`2.25.<uuid>`, ITU-T X.667),
//! which needs no registration. Its second arc does not fit in 64 bits, so
//! the identifiers are kept as their DER content octets: that is the form
//! both rustls-webpki and x509-parser compare against, and it avoids any
//! big-integer arithmetic at verification time.

/// Dotted form of the private arc, for documentation and display.
pub const ARC_DOTTED: &str = "2.25.232602010215861917599387974036895384766";

/// Builds the DER content octets of `ARC.<leaf>` at compile time.
const fn arc_child(leaf: u8) -> [u8; 21] {
    let arc = ARC_CONTENT;
    let mut out = [0u8; 21];
    let mut i = 0;
    while i < arc.len() {
        out[i] = arc[i];
        i += 1;
    }
    out[20] = leaf;
    out
}

/// DER content octets of the arc itself (`2.25.232602010215861917599387974036895384766`).
const ARC_CONTENT: [u8; 20] = [
    0x69, 0x82, 0xdd, 0xfd, 0xc2, 0xa1, 0xab, 0xc9, 0xf2, 0x8c, 0xa3, 0x9c, 0x82, 0xf1, 0xbf, 0xfa,
    0xf2, 0xd5, 0x89, 0x3e,
];

/// ARC.1 — EKU: the certificate attests a Matrix device's Ed25519 key.
pub const EKU_DEVICE_ATTESTATION: &[u8] = &arc_child(1);
/// ARC.2 — EKU: the certificate attests a user's cross-signing master key.
pub const EKU_IDENTITY_ATTESTATION: &[u8] = &arc_child(2);
/// ARC.3 — EKU: an agency's enrollment client (mTLS to the service).
pub const EKU_ENROLLMENT_CLIENT: &[u8] = &arc_child(3);
/// ARC.4 — EKU: official document seal (reserved; never issued yet).
pub const EKU_DOCUMENT_SEAL: &[u8] = &arc_child(4);
/// ARC.5 — EKU: Matrix identity signing (`io.element.x509`): the RSA key
/// signs the user's cross-signing master key in Element's X.509 identity
/// verification format (CMS, RSASSA-PSS-SHA512).
pub const EKU_IDENTITY_SIGNING: &[u8] = &arc_child(5);
/// ARC.6 — EKU: Matrix citizen attestation: the certificate attests a
/// pseudonymous citizen's device Ed25519 key and the eIDAS assurance level
/// of the identification behind it, without naming the citizen.
pub const EKU_CITIZEN_ATTESTATION: &[u8] = &arc_child(6);
/// ARC.10 — non-critical extension carrying the Matrix device ID (UTF8String).
pub const EXT_DEVICE_ID: &[u8] = &arc_child(10);
/// ARC.11 — non-critical extension on issuing CAs: the Matrix server names
/// the CA may certify (SEQUENCE OF UTF8String).
pub const EXT_PERMITTED_SERVERS: &[u8] = &arc_child(11);
/// ARC.12 — non-critical extension on citizen attestations: the eIDAS
/// level of assurance of the citizen's identification, DER `ENUMERATED`
/// { low (1), substantial (2), high (3) }.
pub const EXT_ASSURANCE_LEVEL: &[u8] = &arc_child(12);
/// `pseudonym` (X.520, 2.5.4.65), content octets: the only subject
/// attribute of a citizen attestation.
pub const AT_PSEUDONYM: &[u8] = &[0x55, 0x04, 0x41];

/// RFC 5280 certificate extensions (id-ce) the profile writes, content
/// octets: one spelling for the issuer's encoder and the verifier's leaf
/// reader.
pub const EXT_BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];
/// keyUsage (2.5.29.15).
pub const EXT_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x0f];
/// extKeyUsage (2.5.29.37).
pub const EXT_EXTENDED_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25];
/// subjectAltName (2.5.29.17).
pub const EXT_SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
/// subjectKeyIdentifier (2.5.29.14).
pub const EXT_SUBJECT_KEY_ID: &[u8] = &[0x55, 0x1d, 0x0e];
/// authorityKeyIdentifier (2.5.29.35).
pub const EXT_AUTHORITY_KEY_ID: &[u8] = &[0x55, 0x1d, 0x23];
/// cRLDistributionPoints (2.5.29.31).
pub const EXT_CRL_DISTRIBUTION_POINTS: &[u8] = &[0x55, 0x1d, 0x1f];

/// `id-Ed25519` (RFC 8410), content octets.
pub const ED25519: &[u8] = &[0x2b, 0x65, 0x70];

/// DER prefix of an Ed25519 SubjectPublicKeyInfo; the 32 key bytes follow.
pub const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Human name of a profile OID given as content octets, for display.
pub fn profile_name(content: &[u8]) -> Option<&'static str> {
    [
        (EKU_DEVICE_ATTESTATION, "Matrix device attestation (ARC.1)"),
        (
            EKU_IDENTITY_ATTESTATION,
            "Matrix identity attestation (ARC.2)",
        ),
        (EKU_ENROLLMENT_CLIENT, "agency enrollment client (ARC.3)"),
        (EKU_DOCUMENT_SEAL, "official document seal (ARC.4)"),
        (
            EKU_IDENTITY_SIGNING,
            "Matrix identity signing (io.element.x509) (ARC.5)",
        ),
        (
            EKU_CITIZEN_ATTESTATION,
            "Matrix citizen attestation (ARC.6)",
        ),
        (EXT_DEVICE_ID, "Matrix device ID (ARC.10)"),
        (EXT_ASSURANCE_LEVEL, "eIDAS level of assurance (ARC.12)"),
        (
            EXT_PERMITTED_SERVERS,
            "permitted Matrix server names (ARC.11)",
        ),
    ]
    .into_iter()
    .find(|(oid, _)| *oid == content)
    .map(|(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes OID content octets into dotted form with u128 arcs, which is
    /// enough for the profile's 2.25 arc, to check the constants.
    fn dotted(content: &[u8]) -> String {
        let mut arcs: Vec<u128> = Vec::new();
        let mut acc: u128 = 0;
        for &b in content {
            acc = (acc << 7) | u128::from(b & 0x7f);
            if b & 0x80 == 0 {
                arcs.push(acc);
                acc = 0;
            }
        }
        let first = arcs.remove(0);
        let (a, b) = if first >= 80 {
            (2, first - 80)
        } else {
            (first / 40, first % 40)
        };
        let mut s = format!("{a}.{b}");
        for arc in arcs {
            s.push_str(&format!(".{arc}"));
        }
        s
    }

    #[test]
    fn constants_match_the_documented_arc() {
        assert_eq!(dotted(&ARC_CONTENT), ARC_DOTTED);
        assert_eq!(dotted(EKU_DEVICE_ATTESTATION), format!("{ARC_DOTTED}.1"));
        assert_eq!(dotted(EKU_IDENTITY_ATTESTATION), format!("{ARC_DOTTED}.2"));
        assert_eq!(dotted(EKU_ENROLLMENT_CLIENT), format!("{ARC_DOTTED}.3"));
        assert_eq!(dotted(EKU_DOCUMENT_SEAL), format!("{ARC_DOTTED}.4"));
        assert_eq!(dotted(EKU_IDENTITY_SIGNING), format!("{ARC_DOTTED}.5"));
        assert_eq!(dotted(EXT_DEVICE_ID), format!("{ARC_DOTTED}.10"));
        assert_eq!(dotted(EXT_PERMITTED_SERVERS), format!("{ARC_DOTTED}.11"));
        assert_eq!(dotted(EKU_CITIZEN_ATTESTATION), format!("{ARC_DOTTED}.6"));
        assert_eq!(dotted(EXT_ASSURANCE_LEVEL), format!("{ARC_DOTTED}.12"));
        assert_eq!(dotted(AT_PSEUDONYM), "2.5.4.65");
    }
}
