//! `govtrust issue device | identity | enrollment-client`

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use govtrust_pki::signer::{FileSigner, KeyAlgorithm, Signer};
use govtrust_pki::{AttestationRequest, IssuedCertificate, Validity};
use govtrust_verifier::event::state_key;
use govtrust_verifier::{DeviceId, Ed25519Key, Subject, UserId};
use serde::Serialize;
use x509_parser::prelude::{FromDer, X509CertificationRequest};

use crate::cli::{AttestationArgs, IssueDeviceArgs, IssueEnrollmentArgs, IssueIdentityArgs};
use crate::cmd::{read_authority, write_or_print};
use crate::output::Output;
use govtrust_service::cadir::CaDir;
use govtrust_service::pemfile;

const DAY: u64 = 24 * 60 * 60;

/// What an issuance reports.
#[derive(Serialize)]
pub struct Issued {
    /// Serial, hex.
    pub serial: String,
    /// Issuing CA ID.
    pub ca: String,
    /// RFC 3339 end of validity.
    pub not_after: String,
    /// Where the chain was recorded in the CA directory.
    pub recorded: String,
    /// State key of the attestation event (attestations only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_key: Option<String>,
    /// The PEM chain.
    pub chain_pem: String,
}

/// `govtrust issue device`
pub fn device(args: &IssueDeviceArgs, out: Output) -> Result<ExitCode> {
    let device = DeviceId::parse(&args.device)?;
    attestation(&args.common, Subject::Device(device), out)
}

/// `govtrust issue identity`
pub fn identity(args: &IssueIdentityArgs, out: Output) -> Result<ExitCode> {
    attestation(&args.common, Subject::Identity, out)
}

/// Issues an attestation from parsed arguments; shared by both kinds and
/// by the demo.
pub fn issue_attestation(
    args: &AttestationArgs,
    subject: Subject,
) -> Result<(Issued, IssuedCertificate)> {
    let request = AttestationRequest {
        user_id: UserId::parse(&args.user)?,
        subject,
        key: Ed25519Key::from_base64(&args.key)?,
        authority: read_authority(&args.authority)?,
    };
    let dir = CaDir::open(&args.dir.dir)?;
    let id = dir.resolve_issuing_id(args.ca.as_deref())?;
    let ca = dir.issuing_ca_for_issuance(&id)?;
    let issued = ca.issue_attestation(&request, validity(args.days)?)?;
    let recorded = dir.record_issued(&issued)?;
    if let Some(path) = &args.event_out {
        let mut json = issued.attestation_content(&request).to_json();
        json.push('\n');
        govtrust_service::cadir::write_atomic(path, json.as_bytes())?;
    }
    Ok((
        Issued {
            serial: issued.serial_hex(),
            ca: id,
            not_after: govtrust_pki::rfc3339(issued.not_after),
            recorded: recorded.display().to_string(),
            state_key: Some(state_key(&request.user_id, &request.subject)),
            chain_pem: pemfile::chain_pem(&issued.chain),
        },
        issued,
    ))
}

fn attestation(args: &AttestationArgs, subject: Subject, out: Output) -> Result<ExitCode> {
    let (report, _) = issue_attestation(args, subject)?;
    finish(report, args.out.as_deref(), out)
}

fn validity(days: u32) -> Result<Validity> {
    if days == 0 {
        bail!("--days must be at least 1");
    }
    Ok(Validity::from_now(Duration::from_secs(
        u64::from(days) * DAY,
    )))
}

/// Prints or writes the chain and reports the issuance.
fn finish(report: Issued, path: Option<&Path>, out: Output) -> Result<ExitCode> {
    match path {
        Some(p) => {
            write_or_print(Some(p), report.chain_pem.as_bytes())?;
            out.emit(&report, || {
                format!(
                    "issued serial {} by {} (valid until {}), chain written to {}",
                    report.serial,
                    report.ca,
                    report.not_after,
                    p.display()
                )
            });
        }
        None if out.json => out.emit(&report, String::new),
        None => {
            write_or_print(None, report.chain_pem.as_bytes())?;
            eprintln!(
                "issued serial {} by {} (valid until {})",
                report.serial, report.ca, report.not_after
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `govtrust issue enrollment-client`
pub fn enrollment_client(args: &IssueEnrollmentArgs, out: Output) -> Result<ExitCode> {
    let authority = read_authority(&args.authority)?;
    let spki = match (&args.csr, &args.new_key) {
        (Some(csr), None) => csr_public_key(csr)?,
        (None, Some(key_path)) => {
            let key = FileSigner::generate(KeyAlgorithm::EcdsaP256)?;
            key.save(key_path, None)
                .with_context(|| format!("writing {}", key_path.display()))?;
            key.spki_der().to_vec()
        }
        _ => bail!("give either --csr FILE or --new-key FILE"),
    };
    let dir = CaDir::open(&args.dir.dir)?;
    let id = dir.resolve_issuing_id(args.ca.as_deref())?;
    let issued = dir.issuing_ca_for_issuance(&id)?.issue_enrollment_client(
        &authority,
        spki,
        validity(args.days)?,
    )?;
    let recorded = dir.record_issued(&issued)?;
    let report = Issued {
        serial: issued.serial_hex(),
        ca: id,
        not_after: govtrust_pki::rfc3339(issued.not_after),
        recorded: recorded.display().to_string(),
        state_key: None,
        chain_pem: pemfile::chain_pem(&issued.chain),
    };
    finish(report, args.out.as_deref(), out)
}

/// The public key of a CSR whose self-signature verifies; only EC and
/// Ed25519 keys are certified for enrollment clients.
fn csr_public_key(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let der = if bytes.trim_ascii_start().starts_with(b"-----") {
        let (_, pem) = x509_parser::pem::parse_x509_pem(&bytes)
            .map_err(|e| anyhow::anyhow!("{}: not PEM: {e}", path.display()))?;
        pem.contents
    } else {
        bytes
    };
    let (_, csr) = X509CertificationRequest::from_der(&der)
        .map_err(|e| anyhow::anyhow!("{}: not a PKCS#10 CSR: {e}", path.display()))?;
    csr.verify_signature()
        .map_err(|_| anyhow::anyhow!("{}: the CSR's signature does not verify", path.display()))?;
    let spki = &csr.certification_request_info.subject_pki;
    const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    let alg = spki.algorithm.algorithm.as_bytes();
    if alg != EC_PUBLIC_KEY && alg != govtrust_verifier::oid::ED25519 {
        bail!(
            "{}: only EC (P-256/P-384) and Ed25519 keys are certified",
            path.display()
        );
    }
    Ok(spki.raw.to_vec())
}
