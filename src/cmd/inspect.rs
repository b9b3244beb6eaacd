//! `govtrust inspect`: explains a certificate, CRL or attestation event
//! against the profile.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use govtrust_pki::rfc3339;
use govtrust_verifier::event::{state_key, AttestationContent};
use govtrust_verifier::profile::{self, Expected, Subject};
use govtrust_verifier::{oid, Crl, DeviceId, Ed25519Key, UserId};
use serde::Serialize;
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::output::Output;

fn unix_rfc3339(secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(secs)
        .map(rfc3339)
        .unwrap_or_else(|_| secs.to_string())
}

/// One observation about an object, against the profile.
#[derive(Serialize)]
struct Finding {
    ok: bool,
    text: String,
}

fn finding(ok: bool, text: impl Into<String>) -> Finding {
    Finding {
        ok,
        text: text.into(),
    }
}

#[derive(Serialize)]
struct CertReport {
    role: &'static str,
    subject: String,
    issuer: String,
    serial: String,
    not_before: String,
    not_after: String,
    public_key: String,
    extended_key_usage: Vec<String>,
    subject_alt_names: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    permitted_servers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    authority: Option<govtrust_verifier::AuthorityRecord>,
    profile: Vec<Finding>,
}

#[derive(Serialize)]
struct CrlReport {
    issuer: String,
    number: Option<String>,
    this_update: String,
    next_update: Option<String>,
    revoked: usize,
    profile: Vec<Finding>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Report {
    Certificates {
        certificates: Vec<CertReport>,
    },
    Crl(CrlReport),
    AttestationEvent {
        state_key: String,
        size_bytes: usize,
        content: AttestationContent,
        certificates: Vec<CertReport>,
    },
}

/// Runs `govtrust inspect FILE`.
pub fn inspect(path: &Path, out: Output) -> Result<ExitCode> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let report = classify(&bytes).with_context(|| format!("{}", path.display()))?;
    out.emit(&report, || render(&report));
    Ok(ExitCode::SUCCESS)
}

fn classify(bytes: &[u8]) -> Result<Report> {
    let text_start = bytes.trim_ascii_start();
    if text_start.starts_with(b"{") {
        let content = AttestationContent::from_json(bytes)?;
        let user = UserId::parse(&content.user_id)?;
        let subject = match &content.device_id {
            Some(d) => Subject::Device(DeviceId::parse(d)?),
            None => Subject::Identity,
        };
        let certificates = content
            .chain_der()?
            .iter()
            .map(|c| explain_cert(c))
            .collect::<Result<_>>()?;
        return Ok(Report::AttestationEvent {
            state_key: state_key(&user, &subject),
            size_bytes: bytes.len(),
            content,
            certificates,
        });
    }
    if text_start.starts_with(b"-----BEGIN X509 CRL") || looks_like_crl(bytes) {
        return Ok(Report::Crl(explain_crl(&Crl::from_pem_or_der(bytes)?)));
    }
    let certs = govtrust_verifier::pem::certificates(bytes)?;
    Ok(Report::Certificates {
        certificates: certs
            .iter()
            .map(|c| explain_cert(c))
            .collect::<Result<_>>()?,
    })
}

fn looks_like_crl(bytes: &[u8]) -> bool {
    !bytes.starts_with(b"-----")
        && X509Certificate::from_der(bytes).is_err()
        && Crl::from_der(bytes).is_ok()
}

fn explain_crl(crl: &Crl) -> CrlReport {
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

fn explain_cert(der: &[u8]) -> Result<CertReport> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| anyhow::anyhow!("not a certificate: {e}"))?;
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
            Vec::new(),
            None,
        )
    };
    Ok(CertReport {
        role,
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        serial: govtrust_pki::hex(cert.raw_serial()),
        not_before: unix_rfc3339(cert.validity().not_before.timestamp()),
        not_after: unix_rfc3339(cert.validity().not_after.timestamp()),
        public_key: key_name(&cert),
        extended_key_usage: eku_names,
        subject_alt_names: sans,
        device_id,
        permitted_servers,
        authority,
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

/// Checks an attestation leaf against the profile with the expectation it
/// names itself (its SAN user, device extension and SPKI key).
fn leaf_findings(
    cert: &X509Certificate<'_>,
    sans: &[String],
    device: Option<&str>,
) -> (Vec<Finding>, Option<govtrust_verifier::AuthorityRecord>) {
    let user = sans
        .first()
        .and_then(|s| s.strip_prefix("URI:"))
        .and_then(|uri| UserId::from_matrix_uri(uri).ok());
    let key = <[u8; 32]>::try_from(cert.public_key().subject_public_key.data.as_ref())
        .ok()
        .map(Ed25519Key::from_bytes);
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

fn render_findings(text: &mut String, findings: &[Finding]) {
    for f in findings {
        text.push_str(&format!(
            "    [{}] {}\n",
            if f.ok { "ok" } else { "!!" },
            f.text
        ));
    }
}

fn render_cert(text: &mut String, c: &CertReport) {
    text.push_str(&format!(
        "{}\n  subject:   {}\n  issuer:    {}\n  serial:    {}\n  validity:  {} .. {}\n  key:       {}\n",
        c.role, c.subject, c.issuer, c.serial, c.not_before, c.not_after, c.public_key
    ));
    if !c.extended_key_usage.is_empty() {
        text.push_str(&format!(
            "  EKU:       {}\n",
            c.extended_key_usage.join(", ")
        ));
    }
    if !c.subject_alt_names.is_empty() {
        text.push_str(&format!(
            "  SAN:       {}\n",
            c.subject_alt_names.join(", ")
        ));
    }
    if let Some(d) = &c.device_id {
        text.push_str(&format!("  device:    {d}\n"));
    }
    if let Some(a) = &c.authority {
        text.push_str(&format!("  authority: {} ({})\n", a, a.id));
    }
    text.push_str("  profile:\n");
    render_findings(text, &c.profile);
}

fn render(report: &Report) -> String {
    let mut text = String::new();
    match report {
        Report::Certificates { certificates } => {
            for c in certificates {
                render_cert(&mut text, c);
            }
        }
        Report::Crl(c) => {
            text.push_str(&format!(
                "CRL\n  issuer:      {}\n  number:      {}\n  thisUpdate:  {}\n  nextUpdate:  {}\n  revoked:     {}\n  profile:\n",
                c.issuer,
                c.number.as_deref().unwrap_or("-"),
                c.this_update,
                c.next_update.as_deref().unwrap_or("-"),
                c.revoked
            ));
            render_findings(&mut text, &c.profile);
        }
        Report::AttestationEvent {
            state_key,
            size_bytes,
            content,
            certificates,
        } => {
            text.push_str(&format!(
                "io.govtrust.attestation event ({size_bytes} bytes of content, limit {})\n  state key: {state_key}\n  kind: {:?}, user {}, key {}{}\n  revoked: {}\n\n",
                govtrust_verifier::event::MAX_CONTENT_BYTES,
                content.kind,
                content.user_id,
                content.key,
                content.device_id.as_ref().map(|d| format!(", device {d}")).unwrap_or_default(),
                content.revoked.as_ref().map_or("no".to_owned(), |r| r.reason.clone()),
            ));
            for c in certificates {
                render_cert(&mut text, c);
            }
        }
    }
    text
}
