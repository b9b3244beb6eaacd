//! The govtrust certificate profile, issuer side: which fields and
//! extensions each kind of certificate gets (docs/profile.md).

use std::time::Duration;

use govtrust_verifier::oid;
use govtrust_verifier::{AuthorityRecord, Ed25519Key, Subject, UserId};
use time::OffsetDateTime;

use crate::der::ext::{self, KeyUsageBit};
use crate::der::{key_identifier, DistinguishedName};
use crate::template::{random_serial, CertificateTemplate};
use crate::Error;

const DAY: u64 = 24 * 60 * 60;
/// Default lifetime of device and identity attestations: short, renewed
/// automatically, so revocation matters only inside a small window.
pub const ATTESTATION_VALIDITY: Duration = Duration::from_secs(30 * DAY);
/// Default lifetime of agency enrollment-client certificates.
pub const ENROLLMENT_CLIENT_VALIDITY: Duration = Duration::from_secs(365 * DAY);
/// Default lifetime of TLS server certificates for the service.
pub const TLS_SERVER_VALIDITY: Duration = Duration::from_secs(90 * DAY);
/// Default lifetime of issuing CAs.
pub const ISSUING_CA_VALIDITY: Duration = Duration::from_secs(5 * 365 * DAY);
/// Default lifetime of roots.
pub const ROOT_VALIDITY: Duration = Duration::from_secs(20 * 365 * DAY);
/// Backdating of notBefore, to tolerate clients whose clocks run behind.
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// RFC 3339 text of a time, for output and API responses (falls back to
/// the debug form for the years RFC 3339 cannot express).
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// A validity period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    /// Start.
    pub not_before: OffsetDateTime,
    /// End.
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// From `now - CLOCK_SKEW` for `lifetime`.
    pub fn from_now(lifetime: Duration) -> Self {
        Validity::starting(OffsetDateTime::now_utc(), lifetime)
    }

    /// From `start - CLOCK_SKEW` for `lifetime`.
    /// Times are truncated to whole seconds, the precision certificates carry.
    pub fn starting(start: OffsetDateTime, lifetime: Duration) -> Self {
        let start = start.replace_nanosecond(0).unwrap_or(start);
        let not_before = start - CLOCK_SKEW;
        Validity {
            not_before,
            not_after: start + lifetime,
        }
    }
}

/// The issuer fields a certificate copies from its CA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuerInfo {
    /// The CA's subject `Name` DER.
    pub subject: Vec<u8>,
    /// The CA's key identifier.
    pub key_id: Vec<u8>,
    /// The CA's validity end: nothing it issues may outlive it.
    pub not_after: OffsetDateTime,
}

/// What an attestation certifies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttestationRequest {
    /// The agency's Matrix user.
    pub user_id: UserId,
    /// The device, or the cross-signing identity.
    pub subject: Subject,
    /// The Ed25519 key (device key or master key).
    pub key: Ed25519Key,
    /// The authority the account belongs to.
    pub authority: AuthorityRecord,
}

fn clamp(validity: Validity, issuer: &IssuerInfo) -> Result<Validity, Error> {
    let not_after = validity.not_after.min(issuer.not_after);
    if not_after <= validity.not_before {
        return Err(Error::InvalidRequest(
            "the issuing CA expires before the certificate would start".into(),
        ));
    }
    Ok(Validity {
        not_before: validity.not_before,
        not_after,
    })
}

/// IA5String fields (URIs, DNS names) must be ASCII; checked here so a
/// bad configuration value is an error, never a panic in the encoder.
fn check_ia5(what: &str, values: &[&str]) -> Result<(), Error> {
    match values.iter().find(|v| !v.is_ascii() || v.is_empty()) {
        Some(v) => Err(Error::InvalidRequest(format!(
            "{what} {v:?} must be non-empty ASCII"
        ))),
        None => Ok(()),
    }
}

fn end_entity(
    subject: Vec<u8>,
    spki: Vec<u8>,
    issuer: &IssuerInfo,
    validity: Validity,
    crl_url: Option<&str>,
    mut extensions: Vec<crate::der::Extension>,
) -> Result<CertificateTemplate, Error> {
    let validity = clamp(validity, issuer)?;
    check_ia5("CRL distribution point", crl_url.as_slice())?;
    let mut all = vec![
        ext::basic_constraints(false, None),
        ext::authority_key_identifier(&issuer.key_id),
        ext::subject_key_identifier(&key_identifier(&spki)?),
    ];
    if let Some(url) = crl_url {
        all.push(ext::crl_distribution_points(&[url]));
    }
    all.append(&mut extensions);
    Ok(CertificateTemplate {
        serial: random_serial()?,
        issuer: issuer.subject.clone(),
        subject,
        not_before: validity.not_before,
        not_after: validity.not_after,
        spki,
        extensions: all,
    })
}

/// The extensions every certificate naming a Matrix user carries, in this
/// order: keyUsage digitalSignature, EKU exactly `eku`, and the user's
/// `matrix:u/` URI as SAN.
fn user_signing_extensions(eku: &'static [u8], user_id: &UserId) -> Vec<crate::der::Extension> {
    vec![
        ext::key_usage(&[KeyUsageBit::DigitalSignature]),
        ext::extended_key_usage(&[eku]),
        ext::subject_alt_name_uris(&[&user_id.to_matrix_uri()]),
    ]
}

/// Decodes a SubjectPublicKeyInfo, refusing trailing bytes.
fn parse_spki(spki: &[u8]) -> Result<x509_parser::x509::SubjectPublicKeyInfo<'_>, Error> {
    use x509_parser::prelude::{FromDer, SubjectPublicKeyInfo};
    let (rest, info) = SubjectPublicKeyInfo::from_der(spki)
        .map_err(|e| Error::InvalidRequest(format!("public key is not a valid SPKI: {e}")))?;
    if !rest.is_empty() {
        return Err(Error::InvalidRequest(
            "public key: trailing bytes after the SPKI".into(),
        ));
    }
    Ok(info)
}

/// A device or identity attestation certificate.
pub fn attestation(
    request: &AttestationRequest,
    issuer: &IssuerInfo,
    validity: Validity,
    crl_url: Option<&str>,
) -> Result<CertificateTemplate, Error> {
    let mut extensions = user_signing_extensions(request.subject.eku(), &request.user_id);
    if let Subject::Device(device) = &request.subject {
        extensions.push(ext::device_id(device.as_str()));
    }
    end_entity(
        DistinguishedName::from_authority(&request.authority)?.to_der(),
        request.key.to_spki_der(),
        issuer,
        validity,
        crl_url,
        extensions,
    )
}

/// What an identity-signing certificate (`io.element.x509`) certifies: the
/// agency's RSA key that signs the user's cross-signing master key in
/// Element's X.509 identity verification format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentitySigningRequest {
    /// The agency's Matrix user (the SAN `matrix:u/` URI).
    pub user_id: UserId,
    /// The authority the account belongs to (the subject DN).
    pub authority: AuthorityRecord,
    /// The RSA public key (SubjectPublicKeyInfo DER, rsaEncryption,
    /// 2048 to 8192 bits) the agency holds.
    pub spki: Vec<u8>,
}

/// An identity-signing certificate: the authority record as subject, the
/// user's `matrix:u/` URI as SAN, EKU exactly ARC.5, keyUsage
/// digitalSignature, SKI (the CMS signer identifier), AKI and CRL DP.
pub fn identity_signing(
    request: &IdentitySigningRequest,
    issuer: &IssuerInfo,
    validity: Validity,
    crl_url: Option<&str>,
) -> Result<CertificateTemplate, Error> {
    check_rsa_key(&request.spki)?;
    end_entity(
        DistinguishedName::from_authority(&request.authority)?.to_der(),
        request.spki.clone(),
        issuer,
        validity,
        crl_url,
        user_signing_extensions(oid::EKU_IDENTITY_SIGNING, &request.user_id),
    )
}

/// `io.element.x509` signs with RSASSA-PSS only: the key must be an
/// rsaEncryption SPKI (NULL parameters) of 2048 to 8192 bits, the range the
/// verifier's RSA_PSS_2048_8192_SHA512 accepts.
fn check_rsa_key(spki: &[u8]) -> Result<(), Error> {
    use x509_parser::public_key::PublicKey;
    const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
    let info = parse_spki(spki)?;
    let algorithm = info.algorithm.algorithm.to_id_string();
    let null_params = info
        .algorithm
        .parameters
        .as_ref()
        .is_some_and(|p| p.header.tag() == x509_parser::der_parser::asn1_rs::Tag::Null);
    if algorithm != RSA_ENCRYPTION || !null_params {
        return Err(Error::InvalidRequest(format!(
            "identity-signing keys must be RSA (rsaEncryption, NULL parameters); got algorithm {algorithm}"
        )));
    }
    let bits = match info.parsed() {
        Ok(PublicKey::RSA(rsa)) => rsa.key_size(),
        _ => {
            return Err(Error::InvalidRequest(
                "the RSA public key cannot be decoded".into(),
            ))
        }
    };
    if !(2048..=8192).contains(&bits) {
        return Err(Error::InvalidRequest(format!(
            "identity-signing RSA keys must have 2048 to 8192 bits, not {bits}"
        )));
    }
    Ok(())
}

/// What a citizen attestation (EKU ARC.6) certifies: a pseudonymous
/// citizen's device key and the level of assurance of the identification
/// behind the pseudonym. It carries no name: the subject is the pseudonym.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CitizenAttestationRequest {
    /// The pseudonymous Matrix user (`@p-…:server`); its localpart is the
    /// subject's `pseudonym` attribute.
    pub user_id: UserId,
    /// The pseudonym's device (ARC.10).
    pub device_id: govtrust_verifier::DeviceId,
    /// The device's Ed25519 key (the SPKI).
    pub key: Ed25519Key,
    /// The eIDAS level of assurance of the identification (ARC.12).
    pub level: govtrust_verifier::profile::AssuranceLevel,
}

/// A citizen attestation: subject `pseudonym=<localpart>` only, SPKI the
/// device's Ed25519 key, EKU exactly ARC.6, keyUsage digitalSignature,
/// SAN `matrix:u/<pseudonym>:<server>`, ARC.10 device ID, ARC.12 level of
/// assurance (`ENUMERATED`, non-critical), AKI/SKI and CRL DP.
pub fn citizen_attestation(
    request: &CitizenAttestationRequest,
    issuer: &IssuerInfo,
    validity: Validity,
    crl_url: Option<&str>,
) -> Result<CertificateTemplate, Error> {
    let subject = DistinguishedName(vec![crate::der::NameAttribute {
        oid: oid::AT_PSEUDONYM,
        string: govtrust_verifier::DnString::Utf8,
        value: request.user_id.localpart().to_owned(),
    }]);
    let mut extensions = user_signing_extensions(oid::EKU_CITIZEN_ATTESTATION, &request.user_id);
    extensions.push(ext::device_id(request.device_id.as_str()));
    extensions.push(ext::raw(
        oid::EXT_ASSURANCE_LEVEL,
        false,
        request.level.to_der().to_vec(),
    ));
    end_entity(
        subject.to_der(),
        request.key.to_spki_der(),
        issuer,
        validity,
        crl_url,
        extensions,
    )
}

/// An agency's enrollment-client certificate (mTLS to the service): EKU
/// ARC.3 plus clientAuth (so standard TLS stacks accept it), the authority
/// ID in the subject serialNumber.
pub fn enrollment_client(
    authority: &AuthorityRecord,
    spki: Vec<u8>,
    issuer: &IssuerInfo,
    validity: Validity,
    crl_url: Option<&str>,
) -> Result<CertificateTemplate, Error> {
    const CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];
    check_client_key(&spki)?;
    end_entity(
        DistinguishedName::from_authority(authority)?.to_der(),
        spki,
        issuer,
        validity,
        crl_url,
        vec![
            ext::key_usage(&[KeyUsageBit::DigitalSignature]),
            ext::extended_key_usage(&[oid::EKU_ENROLLMENT_CLIENT, CLIENT_AUTH]),
        ],
    )
}

/// An agency authenticates with a key of the profile's algorithms (ECDSA
/// P-256 or P-384, Ed25519), like every other key in the hierarchy: the
/// service's TLS stack would accept RSA, but the profile does not, and an
/// operator should learn that at issuance rather than at an audit.
fn check_client_key(spki: &[u8]) -> Result<(), Error> {
    const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
    const P256: &str = "1.2.840.10045.3.1.7";
    const P384: &str = "1.3.132.0.34";
    const ED25519: &str = "1.3.101.112";
    let info = parse_spki(spki)?;
    let algorithm = info.algorithm.algorithm.to_id_string();
    let curve = info
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|o| o.to_id_string());
    match (algorithm.as_str(), curve.as_deref()) {
        (EC_PUBLIC_KEY, Some(P256 | P384)) | (ED25519, None) => Ok(()),
        _ => Err(Error::InvalidRequest(format!(
            "enrollment-client keys must be ECDSA P-256, P-384 or Ed25519; got algorithm {algorithm}{}",
            curve.map(|c| format!(" with parameters {c}")).unwrap_or_default()
        ))),
    }
}

/// A TLS server certificate for the service's HTTPS endpoint.
pub fn tls_server(
    common_name: &str,
    dns_names: &[&str],
    ips: &[std::net::IpAddr],
    spki: Vec<u8>,
    issuer: &IssuerInfo,
    validity: Validity,
) -> Result<CertificateTemplate, Error> {
    const SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
    check_ia5("DNS name", dns_names)?;
    if dns_names.is_empty() && ips.is_empty() {
        return Err(Error::InvalidRequest(
            "a TLS server certificate needs a DNS name or IP address".into(),
        ));
    }
    end_entity(
        DistinguishedName::ca(common_name, None)?.to_der(),
        spki,
        issuer,
        validity,
        None,
        vec![
            ext::key_usage(&[KeyUsageBit::DigitalSignature]),
            ext::extended_key_usage(&[SERVER_AUTH]),
            ext::subject_alt_name_hosts(dns_names, ips),
        ],
    )
}

/// EKUs an issuing CA lists by default: everything it may issue.
pub const ISSUING_CA_EKUS: &[&[u8]] = &[
    oid::EKU_DEVICE_ATTESTATION,
    oid::EKU_IDENTITY_ATTESTATION,
    oid::EKU_ENROLLMENT_CLIENT,
    oid::EKU_IDENTITY_SIGNING,
    oid::EKU_CITIZEN_ATTESTATION,
    &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01], // serverAuth
    &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02], // clientAuth
];

/// An issuing CA certificate: pathLen 0, keyCertSign + cRLSign, the EKUs
/// it may issue, and the Matrix server names it may certify (ARC.11).
pub fn issuing_ca(
    name: &DistinguishedName,
    spki: Vec<u8>,
    permitted_servers: &[String],
    issuer: &IssuerInfo,
    validity: Validity,
    crl_url: Option<&str>,
) -> Result<CertificateTemplate, Error> {
    if permitted_servers.is_empty() {
        return Err(Error::InvalidRequest(
            "an issuing CA needs at least one permitted Matrix server name".into(),
        ));
    }
    for server in permitted_servers {
        govtrust_verifier::validate_server_name(server)
            .map_err(|why| Error::InvalidRequest(format!("server name {server:?}: {why}")))?;
        if server.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(Error::InvalidRequest(format!(
                "server name {server:?} must be lower case"
            )));
        }
    }
    let validity = clamp(validity, issuer)?;
    check_ia5("CRL distribution point", crl_url.as_slice())?;
    let mut extensions = vec![
        ext::basic_constraints(true, Some(0)),
        ext::key_usage(&[KeyUsageBit::KeyCertSign, KeyUsageBit::CrlSign]),
        ext::extended_key_usage(ISSUING_CA_EKUS),
        ext::subject_key_identifier(&key_identifier(&spki)?),
        ext::authority_key_identifier(&issuer.key_id),
        ext::permitted_servers(permitted_servers),
    ];
    if let Some(url) = crl_url {
        extensions.push(ext::crl_distribution_points(&[url]));
    }
    Ok(CertificateTemplate {
        serial: random_serial()?,
        issuer: issuer.subject.clone(),
        subject: name.to_der(),
        not_before: validity.not_before,
        not_after: validity.not_after,
        spki,
        extensions,
    })
}

/// A self-signed root: CA without path length limit, keyCertSign + cRLSign,
/// no EKU.
pub fn root(
    name: &DistinguishedName,
    spki: Vec<u8>,
    validity: Validity,
) -> Result<CertificateTemplate, Error> {
    let key_id = key_identifier(&spki)?;
    Ok(CertificateTemplate {
        serial: random_serial()?,
        issuer: name.to_der(),
        subject: name.to_der(),
        not_before: validity.not_before,
        not_after: validity.not_after,
        extensions: vec![
            ext::basic_constraints(true, None),
            ext::key_usage(&[KeyUsageBit::KeyCertSign, KeyUsageBit::CrlSign]),
            ext::subject_key_identifier(&key_id),
        ],
        spki,
    })
}
