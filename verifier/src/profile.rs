//! The govtrust certificate profile rules that sit above path validation:
//! what an attestation leaf must say, and what its issuing CA must permit.

use serde::Serialize;
use x509_parser::asn1_rs::{FromDer as _, Utf8String};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, X509Extension};
use x509_parser::oid_registry::Oid;

use crate::matrix_id::{DeviceId, Ed25519Key, UserId};
use crate::{oid, AuthorityRecord, Error};

/// What an attestation certifies: a device key or a cross-signing identity.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", content = "device_id", rename_all = "snake_case")]
pub enum Subject {
    /// The device's `ed25519:<DEVICE_ID>` key.
    Device(DeviceId),
    /// The user's cross-signing master key.
    Identity,
}

impl Subject {
    /// The EKU the leaf must carry for this kind of attestation.
    pub fn eku(&self) -> &'static [u8] {
        match self {
            Subject::Device(_) => oid::EKU_DEVICE_ATTESTATION,
            Subject::Identity => oid::EKU_IDENTITY_ATTESTATION,
        }
    }

    /// Lower-case kind name as used in state keys and JSON (`device`, `identity`).
    pub fn kind(&self) -> &'static str {
        match self {
            Subject::Device(_) => "device",
            Subject::Identity => "identity",
        }
    }

    fn eku_name(&self) -> &'static str {
        match self {
            Subject::Device(_) => "Matrix device attestation (ARC.1)",
            Subject::Identity => "Matrix identity attestation (ARC.2)",
        }
    }
}

/// What the caller holds and wants confirmed: the user, the device (or the
/// identity), and the Ed25519 key from the caller's own crypto store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    /// The Matrix user the key belongs to.
    pub user_id: UserId,
    /// The device, or the cross-signing identity.
    pub subject: Subject,
    /// The key as the caller's crypto store holds it — never a key copied
    /// from the attestation event.
    pub key: Ed25519Key,
}

/// Checks the leaf against the expectation and the profile (key, EKU, key
/// usage, not a CA, SAN, device extension, authority record); returns the
/// authority record from its subject. Path rules are not checked here.
pub fn check_leaf(
    leaf: &X509Certificate<'_>,
    expected: &Expected,
) -> Result<AuthorityRecord, Error> {
    check_spki(leaf, &expected.key)?;
    check_leaf_eku(leaf, &expected.subject)?;
    check_leaf_key_usage(leaf)?;
    check_not_ca(leaf)?;
    check_san(leaf, &expected.user_id)?;
    check_device(leaf, &expected.subject)?;
    authority_record(leaf)
}

fn check_spki(leaf: &X509Certificate<'_>, key: &Ed25519Key) -> Result<(), Error> {
    let spki = leaf.public_key();
    if spki.algorithm.algorithm.as_bytes() != oid::ED25519 || spki.algorithm.parameters.is_some() {
        return Err(Error::KeyNotEd25519);
    }
    if spki.raw.strip_prefix(oid::ED25519_SPKI_PREFIX.as_slice()) != Some(key.as_bytes().as_slice())
    {
        return Err(Error::KeyMismatch);
    }
    Ok(())
}

fn check_leaf_eku(leaf: &X509Certificate<'_>, subject: &Subject) -> Result<(), Error> {
    check_eku_exactly(leaf, subject.eku(), subject.eku_name())
}

/// Whether an EKU extension lists exactly `eku_oid` and nothing else (no
/// anyExtendedKeyUsage, no well-known purpose, no other OID).
pub(crate) fn eku_is_exactly(
    e: &x509_parser::extensions::ExtendedKeyUsage<'_>,
    eku_oid: &[u8],
) -> bool {
    !(e.any
        || e.server_auth
        || e.client_auth
        || e.code_signing
        || e.email_protection
        || e.time_stamping
        || e.ocsp_signing)
        && e.other.len() == 1
        && e.other[0].as_bytes() == eku_oid
}

/// A leaf must not be a CA (basicConstraints cA absent or false).
pub(crate) fn check_not_ca(leaf: &X509Certificate<'_>) -> Result<(), Error> {
    if leaf
        .basic_constraints()
        .map_err(|e| Error::malformed("basic constraints", e))?
        .is_some_and(|bc| bc.value.ca)
    {
        return Err(Error::LeafIsCa);
    }
    Ok(())
}

/// keyUsage present, critical, exactly digitalSignature.
pub(crate) fn check_leaf_key_usage(leaf: &X509Certificate<'_>) -> Result<(), Error> {
    let ku = leaf
        .key_usage()
        .map_err(|e| Error::malformed("key usage", e))?
        .ok_or(Error::WrongKeyUsage)?;
    // The profile fixes keyUsage to exactly digitalSignature, critical.
    let v = ku.value;
    if ku.critical && v.digital_signature() && v.flags == 1 {
        Ok(())
    } else {
        Err(Error::WrongKeyUsage)
    }
}

/// SAN: exactly one URI, `matrix:u/`, byte-identical to the user's
/// canonical URI.
pub(crate) fn check_san(leaf: &X509Certificate<'_>, user: &UserId) -> Result<(), Error> {
    let san = leaf
        .subject_alternative_name()
        .map_err(|e| Error::malformed("subject alternative name", e))?
        .ok_or_else(|| Error::SanInvalid("missing".into()))?;
    let uri = match san.value.general_names.as_slice() {
        [GeneralName::URI(uri)] => *uri,
        [_] => return Err(Error::SanInvalid("the one name is not a URI".into())),
        names => {
            return Err(Error::SanInvalid(format!(
                "{} names, the profile allows exactly one",
                names.len()
            )))
        }
    };
    if !uri.starts_with("matrix:u/") {
        return Err(Error::SanInvalid(format!("{uri:?} is not a matrix:u/ URI")));
    }
    if uri != user.to_matrix_uri() {
        return Err(Error::UserMismatch {
            expected: user.to_matrix_uri(),
            found: uri.to_owned(),
        });
    }
    Ok(())
}

fn check_device(leaf: &X509Certificate<'_>, subject: &Subject) -> Result<(), Error> {
    let found = find_extension(leaf, oid::EXT_DEVICE_ID)?
        .map(|ext| decode_utf8_string(ext.value, "device ID extension"))
        .transpose()?;
    let expected = match subject {
        Subject::Device(d) => Some(d.as_str()),
        Subject::Identity => None,
    };
    if found.as_deref() == expected {
        Ok(())
    } else {
        Err(Error::DeviceMismatch {
            expected: expected.map(str::to_owned),
            found,
        })
    }
}

/// Reads the authority record from a certificate's subject DN.
pub fn authority_record(cert: &X509Certificate<'_>) -> Result<AuthorityRecord, Error> {
    let mut record = AuthorityRecord::default();
    for attr in cert.subject().iter_attributes() {
        let value = attr.as_str().map_err(|_| {
            Error::AuthorityRecordInvalid("a subject attribute is not a string".into())
        })?;
        record.set_by_oid(attr.attr_type().as_bytes(), value.to_owned())?;
    }
    record.validate()?;
    Ok(record)
}

/// Checks what the leaf's issuing CA must permit: the leaf's EKU in its own
/// EKU list, and the user's server in its ARC.11 permitted server names.
pub(crate) fn check_issuer(issuer: &X509Certificate<'_>, expected: &Expected) -> Result<(), Error> {
    let eku = issuer
        .extended_key_usage()
        .map_err(|e| Error::malformed("issuer extended key usage", e))?
        .ok_or(Error::IssuerEkuMissing)?;
    if !eku
        .value
        .other
        .iter()
        .any(|o| o.as_bytes() == expected.subject.eku())
    {
        return Err(Error::IssuerEkuMissing);
    }
    let server = expected.user_id.server_name();
    let permitted = permitted_servers(issuer)?;
    if permitted.iter().any(|p| p == server) {
        Ok(())
    } else {
        Err(Error::ServerNotPermitted {
            server: server.to_owned(),
        })
    }
}

/// The issuing CA's ARC.11 permitted Matrix server names (empty if absent).
pub fn permitted_servers(ca: &X509Certificate<'_>) -> Result<Vec<String>, Error> {
    let Some(ext) = find_extension(ca, oid::EXT_PERMITTED_SERVERS)? else {
        return Ok(Vec::new());
    };
    let (rest, names) = <Vec<Utf8String>>::from_der(ext.value)
        .map_err(|e| Error::malformed("permitted servers extension", e))?;
    if !rest.is_empty() {
        return Err(Error::malformed(
            "permitted servers extension",
            "trailing data",
        ));
    }
    Ok(names.into_iter().map(|n| n.string()).collect())
}

/// The device ID a certificate's ARC.10 extension names, if any.
pub fn device_id(cert: &X509Certificate<'_>) -> Result<Option<String>, Error> {
    find_extension(cert, oid::EXT_DEVICE_ID)?
        .map(|ext| decode_utf8_string(ext.value, "device ID extension"))
        .transpose()
}

fn find_extension<'a>(
    cert: &'a X509Certificate<'_>,
    content: &[u8],
) -> Result<Option<&'a X509Extension<'a>>, Error> {
    let oid = Oid::new(content.into());
    cert.get_extension_unique(&oid)
        .map_err(|e| Error::malformed("extensions", e))
}

/// Parses one certificate, refusing trailing data; `what` names it in the
/// error.
pub(crate) fn parse_cert<'a>(
    der: &'a [u8],
    what: &'static str,
) -> Result<X509Certificate<'a>, Error> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| Error::malformed(what, e))?;
    if !rest.is_empty() {
        return Err(Error::malformed(what, "trailing data"));
    }
    Ok(cert)
}

fn decode_utf8_string(der: &[u8], what: &'static str) -> Result<String, Error> {
    let (rest, s) = Utf8String::from_der(der).map_err(|e| Error::malformed(what, e))?;
    if !rest.is_empty() {
        return Err(Error::malformed(what, "trailing data"));
    }
    Ok(s.string())
}

/// eIDAS level of assurance (Regulation (EU) 910/2014, Art. 8) of the
/// identification behind a citizen attestation, ordered `Low < Substantial
/// < High`. Certificates carry it in the ARC.12 extension as a DER
/// `ENUMERATED` with the values 1, 2 and 3.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum AssuranceLevel {
    /// eIDAS "low".
    Low,
    /// eIDAS "substantial" (e.g. BundID with the online ID card at a
    /// substantial flow, ELSTER certificate).
    Substantial,
    /// eIDAS "high" (e.g. the online ID card function).
    High,
}

impl AssuranceLevel {
    /// All levels, lowest first.
    pub const ALL: [AssuranceLevel; 3] = [
        AssuranceLevel::Low,
        AssuranceLevel::Substantial,
        AssuranceLevel::High,
    ];

    /// Lower-case name (`low`, `substantial`, `high`).
    pub fn as_str(self) -> &'static str {
        match self {
            AssuranceLevel::Low => "low",
            AssuranceLevel::Substantial => "substantial",
            AssuranceLevel::High => "high",
        }
    }

    /// Parses the lower-case name.
    pub fn parse(name: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|l| l.as_str() == name)
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "level of assurance {name:?} is not low, substantial or high"
                ))
            })
    }

    /// The ENUMERATED value in ARC.12.
    pub fn enumerated(self) -> u8 {
        match self {
            AssuranceLevel::Low => 1,
            AssuranceLevel::Substantial => 2,
            AssuranceLevel::High => 3,
        }
    }

    /// DER of the ARC.12 extension value: `ENUMERATED <n>`.
    pub fn to_der(self) -> [u8; 3] {
        [0x0a, 0x01, self.enumerated()]
    }

    /// Decodes the ARC.12 extension value: exactly the three DER octets
    /// `0a 01 0n` with n in 1..=3 (DER admits no other encoding).
    pub fn from_der(der: &[u8]) -> Result<Self, Error> {
        match der {
            [0x0a, 0x01, n] => Self::ALL
                .into_iter()
                .find(|l| l.enumerated() == *n)
                .ok_or_else(|| Error::AssuranceLevelInvalid(format!("unknown value {n}"))),
            _ => Err(Error::AssuranceLevelInvalid(
                "not a DER ENUMERATED of one octet".into(),
            )),
        }
    }
}

impl std::fmt::Display for AssuranceLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an agency holds about a pseudonymous citizen and wants confirmed
/// by a citizen attestation (EKU ARC.6): the pseudonymous user, the
/// device, its key from the caller's own crypto store, and optionally the
/// lowest level of assurance the agency accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CitizenExpected {
    /// The pseudonymous Matrix user (`@p-…:server`).
    pub user_id: UserId,
    /// The pseudonym's device.
    pub device_id: DeviceId,
    /// The device's Ed25519 key as the caller's crypto store holds it.
    pub key: Ed25519Key,
    /// The lowest acceptable level; `None` accepts any valid level.
    pub minimum_level: Option<AssuranceLevel>,
}

/// A citizen attestation that passed every rule: a device of a pseudonymous
/// citizen identified at `level`. It names no person and no authority.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifiedCitizen {
    /// The pseudonymous user.
    pub user_id: UserId,
    /// The attested device.
    pub device_id: DeviceId,
    /// The attested key (equal to the expected key).
    pub key: Ed25519Key,
    /// The certified level of assurance (at least the demanded minimum).
    pub level: AssuranceLevel,
    /// Leaf serial number, lower-case hex.
    pub serial: String,
    /// Leaf notAfter, seconds since the Unix epoch.
    pub not_after: i64,
    /// Subject of the issuing CA, RFC 4514 form.
    pub issuer: String,
    /// Subject of the pinned root the chain ends in, RFC 4514 form.
    pub root: String,
}

/// Checks a citizen attestation leaf against the expectation and the
/// profile (key, EKU ARC.6, key usage, not a CA, SAN, device extension,
/// pseudonym-only subject, ARC.12 level); returns the certified level.
/// The minimum level and path rules are not checked here.
pub fn check_citizen_leaf(
    leaf: &X509Certificate<'_>,
    expected: &CitizenExpected,
) -> Result<AssuranceLevel, Error> {
    check_spki(leaf, &expected.key)?;
    check_eku_exactly(
        leaf,
        oid::EKU_CITIZEN_ATTESTATION,
        "Matrix citizen attestation (ARC.6)",
    )?;
    check_leaf_key_usage(leaf)?;
    check_not_ca(leaf)?;
    check_san(leaf, &expected.user_id)?;
    check_device(leaf, &Subject::Device(expected.device_id.clone()))?;
    check_pseudonym_subject(leaf, &expected.user_id)?;
    assurance_level(leaf)
}

fn check_eku_exactly(
    leaf: &X509Certificate<'_>,
    eku_oid: &[u8],
    name: &'static str,
) -> Result<(), Error> {
    let wrong = || Error::WrongEku { expected: name };
    let eku = leaf
        .extended_key_usage()
        .map_err(|e| Error::malformed("extended key usage", e))?
        .ok_or_else(wrong)?;
    if eku_is_exactly(eku.value, eku_oid) {
        Ok(())
    } else {
        Err(wrong())
    }
}

/// The subject must be exactly one RDN holding one `pseudonym` UTF8String
/// equal to the user's localpart: no name, no authority record.
fn check_pseudonym_subject(leaf: &X509Certificate<'_>, user: &UserId) -> Result<(), Error> {
    use x509_parser::asn1_rs::Tag;
    let rdns: Vec<_> = leaf.subject().iter().collect();
    let [rdn] = rdns.as_slice() else {
        return Err(Error::CitizenSubjectInvalid(format!(
            "{} RDNs, the profile allows exactly one (pseudonym)",
            rdns.len()
        )));
    };
    let attrs: Vec<_> = rdn.iter().collect();
    let [attr] = attrs.as_slice() else {
        return Err(Error::CitizenSubjectInvalid(
            "the RDN must hold exactly one attribute".into(),
        ));
    };
    if attr.attr_type().as_bytes() != oid::AT_PSEUDONYM {
        return Err(Error::CitizenSubjectInvalid(format!(
            "attribute {} is not pseudonym (2.5.4.65)",
            attr.attr_type()
        )));
    }
    if attr.attr_value().tag() != Tag::Utf8String {
        return Err(Error::CitizenSubjectInvalid(
            "the pseudonym is not a UTF8String".into(),
        ));
    }
    let value = attr
        .as_str()
        .map_err(|_| Error::CitizenSubjectInvalid("the pseudonym is not a string".into()))?;
    if value != user.localpart() {
        return Err(Error::CitizenSubjectInvalid(format!(
            "pseudonym {value:?} is not the user's localpart {:?}",
            user.localpart()
        )));
    }
    Ok(())
}

/// The level of assurance a citizen attestation carries in ARC.12: the
/// extension must be present exactly once, non-critical, and one of the
/// three values.
pub fn assurance_level(cert: &X509Certificate<'_>) -> Result<AssuranceLevel, Error> {
    let ext = find_extension(cert, oid::EXT_ASSURANCE_LEVEL)
        .map_err(|_| Error::AssuranceLevelInvalid("the extension appears twice".into()))?
        .ok_or_else(|| Error::AssuranceLevelInvalid("missing".into()))?;
    if ext.critical {
        return Err(Error::AssuranceLevelInvalid(
            "the extension is critical; the profile makes it non-critical".into(),
        ));
    }
    AssuranceLevel::from_der(ext.value)
}

/// Checks what a leaf's issuing CA must permit, given the leaf's EKU and
/// the user's server: the EKU in the CA's own EKU list, the server in its
/// ARC.11 permitted server names.
pub(crate) fn check_issuer_permits(
    issuer: &X509Certificate<'_>,
    eku_oid: &[u8],
    server: &str,
) -> Result<(), Error> {
    let eku = issuer
        .extended_key_usage()
        .map_err(|e| Error::malformed("issuer extended key usage", e))?
        .ok_or(Error::IssuerEkuMissing)?;
    if !eku.value.other.iter().any(|o| o.as_bytes() == eku_oid) {
        return Err(Error::IssuerEkuMissing);
    }
    if permitted_servers(issuer)?.iter().any(|p| p == server) {
        Ok(())
    } else {
        Err(Error::ServerNotPermitted {
            server: server.to_owned(),
        })
    }
}
