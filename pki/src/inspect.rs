//! Explaining a certificate, CRL or attestation event against the govtrust
//! profile (`govtrust inspect`): what it is, its fields, its SHA-256
//! fingerprint, and one finding per profile rule with whether it holds.
//!
//! Operators compare fingerprints out of band and want a non-zero exit
//! status when something is off, so the report says whether every finding
//! holds ([`Report::is_clean`]); rendering it is the caller's business.

use govtrust_verifier::event::{state_key, AttestationContent};
use govtrust_verifier::profile::{self, AssuranceLevel, CitizenExpected, Expected, Subject};
use govtrust_verifier::{oid, AuthorityRecord, Crl, DeviceId, Ed25519Key, UserId};
use serde::Serialize;
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::{hex, rfc3339, Error};

fn unix_rfc3339(secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(secs)
        .map(rfc3339)
        .unwrap_or_else(|_| secs.to_string())
}

/// One observation about an object, against the profile.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// Whether the object meets this rule.
    pub ok: bool,
    /// The rule, or what is wrong, in words.
    pub text: String,
}

fn finding(ok: bool, text: impl Into<String>) -> Finding {
    Finding {
        ok,
        text: text.into(),
    }
}

/// What one certificate is and how it measures against the profile.
#[derive(Clone, Debug, Serialize)]
pub struct CertReport {
    /// Its place in the profile: root CA, issuing CA, device attestation, …
    pub role: &'static str,
    /// Subject DN (RFC 4514).
    pub subject: String,
    /// Issuer DN (RFC 4514).
    pub issuer: String,
    /// Serial number, lower-case hex.
    pub serial: String,
    /// SHA-256 of the DER, upper-case hex pairs joined by `:` (the form
    /// `openssl x509 -fingerprint -sha256` prints), to compare out of band.
    pub sha256_fingerprint: String,
    /// notBefore (RFC 3339).
    pub not_before: String,
    /// notAfter (RFC 3339).
    pub not_after: String,
    /// Key algorithm and size (the Ed25519 key itself for attestations).
    pub public_key: String,
    /// EKU purposes, by profile name where known.
    pub extended_key_usage: Vec<String>,
    /// Subject alternative names.
    pub subject_alt_names: Vec<String>,
    /// ARC.10, the Matrix device ID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// ARC.11, the server names an issuing CA may certify.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub permitted_servers: Vec<String>,
    /// The authority record in the subject (the badge), when valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authority: Option<AuthorityRecord>,
    /// ARC.12, a citizen attestation's eIDAS level of assurance, when valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assurance_level: Option<AssuranceLevel>,
    /// One finding per profile rule.
    pub profile: Vec<Finding>,
}

/// What a CRL says and how fresh it is.
#[derive(Clone, Debug, Serialize)]
pub struct CrlReport {
    /// Issuer DN (RFC 4514).
    pub issuer: String,
    /// CRL number (hex), if present.
    pub number: Option<String>,
    /// SHA-256 of the DER, as for certificates.
    pub sha256_fingerprint: String,
    /// thisUpdate (RFC 3339).
    pub this_update: String,
    /// nextUpdate (RFC 3339), if present.
    pub next_update: Option<String>,
    /// How many certificates it revokes.
    pub revoked: usize,
    /// Findings: CRL number, extensions, freshness now.
    pub profile: Vec<Finding>,
}

/// The report on one file.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Report {
    /// A PEM or DER file of certificates.
    Certificates {
        /// Each certificate, in file order.
        certificates: Vec<CertReport>,
    },
    /// A CRL (PEM or DER).
    Crl(CrlReport),
    /// The content of an `io.govtrust.attestation` state event.
    AttestationEvent {
        /// The state key it belongs under.
        state_key: String,
        /// Size of the content JSON.
        size_bytes: usize,
        /// The parsed content.
        content: AttestationContent,
        /// Its chain, explained.
        certificates: Vec<CertReport>,
    },
}

impl Report {
    /// Every finding about every object.
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        let (certs, crl): (&[CertReport], Option<&CrlReport>) = match self {
            Report::Certificates { certificates }
            | Report::AttestationEvent { certificates, .. } => (certificates, None),
            Report::Crl(c) => (&[], Some(c)),
        };
        certs
            .iter()
            .flat_map(|c| c.profile.iter())
            .chain(crl.into_iter().flat_map(|c| c.profile.iter()))
    }

    /// True when every finding holds and nothing is outside the profile: a
    /// stale CRL, a certificate of no profile role or one breaking a rule
    /// make it false (the CLI's exit status 1).
    pub fn is_clean(&self) -> bool {
        self.findings().all(|f| f.ok)
    }
}

/// Explains `bytes`: an attestation event's content JSON, a CRL (PEM or
/// DER), or certificates (PEM or DER), at the current time.
pub fn inspect(bytes: &[u8]) -> Result<Report, Error> {
    classify(bytes)
}

fn unreadable(e: impl std::fmt::Display) -> Error {
    Error::Unreadable(e.to_string())
}

/// The DER of a CRL file (PEM is unwrapped; anything else is taken as DER).
fn crl_der(bytes: &[u8]) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateRevocationListDer::from_pem_slice(bytes)
        .map(|der| der.as_ref().to_vec())
        .unwrap_or_else(|_| bytes.to_vec())
}

/// SHA-256 of `der` as `AB:CD:…`.
pub fn sha256_fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let hex = hex(digest.as_ref()).to_ascii_uppercase();
    hex.as_bytes()
        .chunks(2)
        .map(|pair| String::from_utf8_lossy(pair).into_owned())
        .collect::<Vec<_>>()
        .join(":")
}

fn classify(bytes: &[u8]) -> Result<Report, Error> {
    let text_start = bytes.trim_ascii_start();
    if text_start.starts_with(b"{") {
        let content = AttestationContent::from_json(bytes).map_err(unreadable)?;
        let user = UserId::parse(&content.user_id).map_err(unreadable)?;
        let subject = match &content.device_id {
            Some(d) => Subject::Device(DeviceId::parse(d).map_err(unreadable)?),
            None => Subject::Identity,
        };
        let certificates = content
            .chain_der()
            .map_err(unreadable)?
            .iter()
            .map(|c| explain_cert(c))
            .collect::<Result<_, _>>()?;
        return Ok(Report::AttestationEvent {
            state_key: state_key(&user, &subject),
            size_bytes: bytes.len(),
            content,
            certificates,
        });
    }
    if text_start.starts_with(b"-----BEGIN X509 CRL") || looks_like_crl(bytes) {
        let crl = Crl::from_pem_or_der(bytes).map_err(unreadable)?;
        return Ok(Report::Crl(explain_crl(&crl, bytes)));
    }
    let certs = govtrust_verifier::pem::certificates(bytes).map_err(unreadable)?;
    Ok(Report::Certificates {
        certificates: certs
            .iter()
            .map(|c| explain_cert(c))
            .collect::<Result<_, _>>()?,
    })
}

fn looks_like_crl(bytes: &[u8]) -> bool {
    !bytes.starts_with(b"-----")
        && X509Certificate::from_der(bytes).is_err()
        && Crl::from_der(bytes).is_ok()
}

fn explain_crl(crl: &Crl, bytes: &[u8]) -> CrlReport {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let mut findings = vec![
        finding(crl.number().is_some(), "carries a CRL number"),
        finding(
            crl.unusable_reason().is_none(),
            crl.unusable_reason()
                .map_or("uses only supported extensions".to_owned(), |r| {
                    r.to_owned()
                }),
        ),
    ];
    findings.push(match crl.next_update() {
        Some(next) if next >= now => finding(true, format!("fresh until {}", unix_rfc3339(next))),
        Some(next) => finding(false, format!("stale since {}", unix_rfc3339(next))),
        None => finding(false, "has no nextUpdate"),
    });
    CrlReport {
        issuer: x509_parser::x509::X509Name::from_der(&wrap_name(crl.issuer_der()))
            .map(|(_, n)| n.to_string())
            .unwrap_or_default(),
        number: crl.number().map(str::to_owned),
        sha256_fingerprint: sha256_fingerprint(&crl_der(bytes)),
        this_update: unix_rfc3339(crl.this_update()),
        next_update: crl.next_update().map(unix_rfc3339),
        revoked: crl.len(),
        profile: findings,
    }
}

/// Re-adds the SEQUENCE header to a Name's content octets.
fn wrap_name(content: &[u8]) -> Vec<u8> {
    let mut der = vec![0x30];
    let len = content.len();
    if len < 0x80 {
        der.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        der.push(0x80 | (bytes.len() - skip) as u8);
        der.extend_from_slice(&bytes[skip..]);
    }
    der.extend_from_slice(content);
    der
}

fn explain_cert(der: &[u8]) -> Result<CertReport, Error> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| Error::Unreadable(format!("not a certificate: {e}")))?;
    let eku_oids: Vec<Vec<u8>> = cert
        .extended_key_usage()
        .ok()
        .flatten()
        .map(|e| {
            e.value
                .other
                .iter()
                .map(|o| o.as_bytes().to_vec())
                .collect()
        })
        .unwrap_or_default();
    let mut eku_names: Vec<String> = eku_oids
        .iter()
        .map(|o| oid::profile_name(o).map_or_else(|| format!("{o:02x?}"), str::to_owned))
        .collect();
    if let Ok(Some(e)) = cert.extended_key_usage() {
        for (set, name) in [
            (e.value.server_auth, "serverAuth"),
            (e.value.client_auth, "clientAuth"),
            (e.value.any, "anyExtendedKeyUsage"),
        ] {
            if set {
                eku_names.push(name.to_owned());
            }
        }
    }
    let sans: Vec<String> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|s| {
            s.value
                .general_names
                .iter()
                .map(|n| match n {
                    GeneralName::URI(u) => format!("URI:{u}"),
                    GeneralName::DNSName(d) => format!("DNS:{d}"),
                    other => format!("{other:?}"),
                })
                .collect()
        })
        .unwrap_or_default();
    let device_id = profile::device_id(&cert).ok().flatten();
    let permitted_servers = profile::permitted_servers(&cert).unwrap_or_default();
    let has = |o: &[u8]| eku_oids.iter().any(|e| e == o);
    let mut assurance_level = None;
    let (role, findings, authority) = if cert.is_ca() && cert.subject() == cert.issuer() {
        ("root CA", ca_findings(&cert, false), None)
    } else if cert.is_ca() {
        ("issuing CA", ca_findings(&cert, true), None)
    } else if has(oid::EKU_DEVICE_ATTESTATION) || has(oid::EKU_IDENTITY_ATTESTATION) {
        let (findings, authority) = leaf_findings(&cert, &sans, device_id.as_deref());
        (
            if has(oid::EKU_DEVICE_ATTESTATION) {
                "device attestation"
            } else {
                "identity attestation"
            },
            findings,
            authority,
        )
    } else if has(oid::EKU_CITIZEN_ATTESTATION) {
        let (findings, level) = citizen_findings(&cert, &sans, device_id.as_deref());
        assurance_level = level;
        ("citizen attestation", findings, None)
    } else if has(oid::EKU_ENROLLMENT_CLIENT) {
        let authority = profile::authority_record(&cert);
        let findings = vec![finding(
            authority.is_ok(),
            match &authority {
                Ok(a) => format!("enrollment client of authority {}", a.id),
                Err(e) => e.to_string(),
            },
        )];
        ("agency enrollment client", findings, authority.ok())
    } else {
        (
            "other (not a govtrust profile certificate)",
            vec![finding(false, "has no govtrust profile role")],
            None,
        )
    };
    Ok(CertReport {
        role,
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        serial: hex(cert.raw_serial()),
        sha256_fingerprint: sha256_fingerprint(der),
        not_before: unix_rfc3339(cert.validity().not_before.timestamp()),
        not_after: unix_rfc3339(cert.validity().not_after.timestamp()),
        public_key: key_name(&cert),
        extended_key_usage: eku_names,
        subject_alt_names: sans,
        device_id,
        permitted_servers,
        authority,
        assurance_level,
        profile: findings,
    })
}

fn key_name(cert: &X509Certificate<'_>) -> String {
    let spki = cert.public_key();
    let alg = spki.algorithm.algorithm.as_bytes();
    if alg == oid::ED25519 {
        let raw = &spki.subject_public_key.data;
        format!(
            "Ed25519 {}",
            Ed25519Key::from_bytes(raw.as_ref().try_into().unwrap_or([0; 32]))
        )
    } else {
        match spki.parsed() {
            Ok(x509_parser::public_key::PublicKey::EC(p)) => format!("EC {} bits", p.key_size()),
            Ok(x509_parser::public_key::PublicKey::RSA(r)) => format!("RSA {} bits", r.key_size()),
            _ => format!("algorithm {}", spki.algorithm.algorithm),
        }
    }
}

fn ca_findings(cert: &X509Certificate<'_>, issuing: bool) -> Vec<Finding> {
    let bc = cert
        .basic_constraints()
        .ok()
        .flatten()
        .map(|b| (b.critical, b.value.ca, b.value.path_len_constraint));
    let ku = cert.key_usage().ok().flatten();
    let mut f = vec![
        finding(
            bc.is_some_and(|(critical, ca, _)| critical && ca),
            "basicConstraints critical CA:true",
        ),
        finding(
            ku.is_some_and(|k| k.critical && k.value.key_cert_sign() && k.value.crl_sign()),
            "keyUsage critical keyCertSign + cRLSign",
        ),
    ];
    if issuing {
        let eku = cert.extended_key_usage().ok().flatten();
        let lists = |o: &[u8]| {
            eku.as_ref()
                .is_some_and(|e| e.value.other.iter().any(|x| x.as_bytes() == o))
        };
        f.push(finding(
            bc.is_some_and(|(_, _, path_len)| path_len == Some(0)),
            "pathLen 0 (issues only end entities)",
        ));
        f.push(finding(
            lists(oid::EKU_DEVICE_ATTESTATION) || lists(oid::EKU_IDENTITY_ATTESTATION),
            "EKU lists the attestation EKUs it may issue",
        ));
        let servers = profile::permitted_servers(cert).unwrap_or_default();
        f.push(finding(
            !servers.is_empty(),
            format!(
                "ARC.11 permits Matrix servers: {}",
                if servers.is_empty() {
                    "none".into()
                } else {
                    servers.join(", ")
                }
            ),
        ));
    } else {
        f.push(finding(
            cert.extended_key_usage().ok().flatten().is_none(),
            "no EKU (roots are not restricted)",
        ));
    }
    f
}

/// The user a leaf names itself (its first SAN, if a `matrix:u/` URI) and
/// its key (if the SPKI holds 32 bytes, as an Ed25519 key).
fn claimed_user_and_key(
    cert: &X509Certificate<'_>,
    sans: &[String],
) -> (Option<UserId>, Option<Ed25519Key>) {
    let user = sans
        .first()
        .and_then(|s| s.strip_prefix("URI:"))
        .and_then(|uri| UserId::from_matrix_uri(uri).ok());
    let key = <[u8; 32]>::try_from(cert.public_key().subject_public_key.data.as_ref())
        .ok()
        .map(Ed25519Key::from_bytes);
    (user, key)
}

/// Checks an attestation leaf against the profile with the expectation it
/// names itself (its SAN user, device extension and SPKI key).
fn leaf_findings(
    cert: &X509Certificate<'_>,
    sans: &[String],
    device: Option<&str>,
) -> (Vec<Finding>, Option<AuthorityRecord>) {
    let (user, key) = claimed_user_and_key(cert, sans);
    let (Some(user_id), Some(key)) = (user, key) else {
        return (
            vec![finding(
                false,
                "SAN is not one matrix:u/ URI, or the key is not Ed25519",
            )],
            None,
        );
    };
    let subject = match device.map(DeviceId::parse) {
        Some(Ok(d)) => Subject::Device(d),
        Some(Err(e)) => return (vec![finding(false, e.to_string())], None),
        None => Subject::Identity,
    };
    let expected = Expected {
        user_id: user_id.clone(),
        subject,
        key,
    };
    match profile::check_leaf(cert, &expected) {
        Ok(authority) => (
            vec![
                finding(true, format!("attests {user_id}, key {key}")),
                finding(
                    true,
                    "key usage, EKU, SAN, device extension and subject follow the leaf profile",
                ),
                finding(true, format!("badge: {authority}")),
            ],
            Some(authority),
        ),
        Err(e) => (vec![finding(false, format!("{} ({})", e, e.code()))], None),
    }
}

/// Checks a citizen attestation leaf (EKU ARC.6) against the citizen
/// profile with the expectation it names itself (its SAN user, device
/// extension and SPKI key) and any level; returns the findings and the
/// certified level.
fn citizen_findings(
    cert: &X509Certificate<'_>,
    sans: &[String],
    device: Option<&str>,
) -> (Vec<Finding>, Option<AssuranceLevel>) {
    let (user, key) = claimed_user_and_key(cert, sans);
    let device = device.map(DeviceId::parse);
    let (Some(user_id), Some(key), Some(Ok(device_id))) = (user, key, device) else {
        return (
            vec![finding(
                false,
                "SAN is not one matrix:u/ URI, the key is not Ed25519, or the device extension is missing or invalid",
            )],
            None,
        );
    };
    let expected = CitizenExpected {
        user_id: user_id.clone(),
        device_id: device_id.clone(),
        key,
        minimum_level: None,
    };
    match profile::check_citizen_leaf(cert, &expected) {
        Ok(level) => (
            vec![
                finding(
                    true,
                    format!("attests device {device_id} of {user_id}, key {key}"),
                ),
                finding(
                    true,
                    "key usage, EKU, SAN, device extension and pseudonym-only subject follow the citizen profile",
                ),
                finding(true, format!("level of assurance (ARC.12): {level}")),
            ],
            Some(level),
        ),
        Err(e) => (vec![finding(false, format!("{} ({})", e, e.code()))], None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::der::DistinguishedName;
    use crate::profile::{citizen_attestation, CitizenAttestationRequest, IssuerInfo, Validity};
    use crate::signer::{FileSigner, KeyAlgorithm, Signer};

    /// A citizen attestation for `pseudonym` whose subject says `subject`
    /// (equal for a valid one), signed by a throwaway key: inspection
    /// judges the leaf profile, not the chain.
    fn citizen_der(subject: &str) -> Vec<u8> {
        let ca = FileSigner::generate(KeyAlgorithm::EcdsaP256).expect("CA key");
        let device = FileSigner::generate(KeyAlgorithm::Ed25519).expect("device key");
        let key = Ed25519Key::from_bytes(
            device.spki_der()[12..]
                .try_into()
                .expect("Ed25519 SPKI ends in the key"),
        );
        let validity = Validity::from_now(std::time::Duration::from_secs(3600));
        let issuer = IssuerInfo {
            subject: DistinguishedName::ca("Test Issuing CA", None)
                .expect("name")
                .to_der(),
            key_id: vec![1; 20],
            not_after: validity.not_after + time::Duration::days(1),
        };
        let request = |user: &str| CitizenAttestationRequest {
            user_id: UserId::parse(user).expect("user"),
            device_id: DeviceId::parse("CITIZENDEV").expect("device"),
            key,
            level: govtrust_verifier::profile::AssuranceLevel::High,
        };
        let mut template = citizen_attestation(
            &request("@p-aaaaaaaaaaaaaaaaaaaaaaaaaa:id.bund.example"),
            &issuer,
            validity,
            None,
        )
        .expect("template");
        template.subject = citizen_attestation(&request(subject), &issuer, validity, None)
            .expect("template")
            .subject;
        template.sign(&ca).expect("signed").as_ref().to_vec()
    }

    #[test]
    fn classifies_citizen_attestations_with_their_level() {
        let Report::Certificates { certificates } = inspect(&citizen_der(
            "@p-aaaaaaaaaaaaaaaaaaaaaaaaaa:id.bund.example",
        ))
        .expect("report") else {
            panic!("not a certificate report");
        };
        let [cert] = certificates.as_slice() else {
            panic!("one certificate expected");
        };
        assert_eq!(cert.role, "citizen attestation");
        assert_eq!(cert.assurance_level, Some(AssuranceLevel::High));
        assert!(
            cert.authority.is_none(),
            "a citizen attestation has no badge"
        );
        assert!(cert.profile.iter().all(|f| f.ok), "{:?}", cert.profile);
    }

    #[test]
    fn a_citizen_attestation_breaking_the_profile_is_not_clean() {
        // The subject's pseudonym is not the SAN's localpart.
        let report = inspect(&citizen_der(
            "@p-bbbbbbbbbbbbbbbbbbbbbbbbbb:id.bund.example",
        ))
        .expect("report");
        let Report::Certificates { certificates } = &report else {
            panic!("not a certificate report");
        };
        assert_eq!(certificates[0].role, "citizen attestation");
        assert_eq!(certificates[0].assurance_level, None);
        assert!(!report.is_clean());
        assert!(
            certificates[0].profile[0]
                .text
                .contains("citizen_subject_invalid"),
            "{:?}",
            certificates[0].profile
        );
    }
}
