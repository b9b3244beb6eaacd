//! `govtrust revoke` and `govtrust crl`

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use govtrust_pki::{hex, RevocationReason};
use serde::Serialize;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::cli::{CrlArgs, RevokeArgs};
use crate::cmd::write_or_print;
use crate::output::Output;
use govtrust_service::cadir::{parse_hex, CaDir, RevokedEntry};
use govtrust_service::pemfile;

#[derive(Serialize)]
struct Revoked {
    serial: String,
    /// `root` or the issuing CA ID whose CRL will list it.
    crl_of: String,
    reason: String,
    already_revoked: bool,
}

/// `govtrust revoke`
pub fn revoke(args: &RevokeArgs, out: Output) -> Result<ExitCode> {
    let reason = RevocationReason::parse(&args.reason)?;
    let dir = CaDir::open(&args.dir.dir)?;
    let (serial, crl_of) = match (&args.serial, &args.cert, &args.issuing_ca) {
        (_, _, Some(id)) => {
            let cert = dir.issuing_cert(&dir.resolve_issuing_id(Some(id))?)?;
            (serial_of(&cert)?, None)
        }
        (Some(serial), None, None) => (hex(&parse_hex(serial)?), args.ca.clone()),
        (None, Some(path), None) => (serial_of(&pemfile::read_certs(path)?[0])?, args.ca.clone()),
        _ => bail!("say what to revoke: --serial HEX, --cert FILE or --issuing-ca ID"),
    };
    let entry = RevokedEntry {
        serial: serial.clone(),
        revoked_at: OffsetDateTime::now_utc(),
        reason: reason.name().to_owned(),
    };
    let (crl_of, already) = if args.issuing_ca.is_some() {
        let mut state = dir.root_state()?;
        let already = add(&mut state.revoked, entry);
        dir.save_root_state(&state)?;
        ("root".to_owned(), already)
    } else {
        let id = match crl_of {
            Some(id) => dir.resolve_issuing_id(Some(&id))?,
            None => dir.issuer_of(&serial)?.with_context(|| {
                format!("serial {serial} was not issued from this directory; name its CA with --ca")
            })?,
        };
        let mut state = dir.issuing_state(&id)?;
        let already = add(&mut state.revoked, entry);
        dir.save_issuing_state(&id, &state)?;
        (id, already)
    };
    let report = Revoked {
        serial,
        crl_of,
        reason: reason.name().to_owned(),
        already_revoked: already,
    };
    out.emit(&report, || {
        if report.already_revoked {
            format!(
                "serial {} was already revoked; nothing changed",
                report.serial
            )
        } else {
            format!(
                "revoked serial {} ({}); publish it with `govtrust crl --dir {}{}`",
                report.serial,
                report.reason,
                args.dir.dir.display(),
                if report.crl_of == "root" {
                    " --root".to_owned()
                } else {
                    format!(" --ca {}", report.crl_of)
                }
            )
        }
    });
    Ok(ExitCode::SUCCESS)
}

/// Adds a revocation unless the serial is already revoked (revocation is
/// permanent: the first reason and time stand).
fn add(list: &mut Vec<RevokedEntry>, entry: RevokedEntry) -> bool {
    if list.iter().any(|e| e.serial == entry.serial) {
        return true;
    }
    list.push(entry);
    false
}

fn serial_of(cert: &[u8]) -> Result<String> {
    let (_, parsed) =
        X509Certificate::from_der(cert).map_err(|e| anyhow::anyhow!("not a certificate: {e}"))?;
    Ok(hex(parsed.raw_serial()))
}

#[derive(Serialize)]
struct CrlReport {
    ca: String,
    number: u64,
    revoked: usize,
    next_update_hours: u32,
    out: Option<String>,
}

/// `govtrust crl`
pub fn crl(args: &CrlArgs, out: Output) -> Result<ExitCode> {
    let dir = CaDir::open(&args.dir.dir)?;
    let (id, hours) = if args.root {
        (None, args.hours.unwrap_or(720))
    } else {
        (
            Some(dir.resolve_issuing_id(args.ca.as_deref())?),
            args.hours.unwrap_or(24),
        )
    };
    if hours == 0 {
        bail!("--hours must be at least 1");
    }
    if args.out.is_none() && out.json {
        bail!("--json reports on the CRL written with --out FILE");
    }
    let der = dir.sign_crl(id.as_deref(), Duration::from_secs(u64::from(hours) * 3600))?;
    let parsed = govtrust_verifier::Crl::from_der(&der)?;
    let bytes = if args.pem {
        pemfile::encode("X509 CRL", &der).into_bytes()
    } else {
        der
    };
    let Some(path) = args.out.as_deref() else {
        write_or_print(None, &bytes)?;
        return Ok(ExitCode::SUCCESS);
    };
    write_or_print(Some(path), &bytes)?;
    let report = CrlReport {
        ca: id.unwrap_or_else(|| "root".into()),
        number: parsed.number().and_then(|n| n.parse().ok()).unwrap_or(0),
        revoked: parsed.len(),
        next_update_hours: hours,
        out: args.out.as_ref().map(|p| p.display().to_string()),
    };
    out.emit(&report, || {
        format!(
            "CRL #{} of {} lists {} revoked certificate(s), next update in {} h{}",
            report.number,
            report.ca,
            report.revoked,
            report.next_update_hours,
            report
                .out
                .as_ref()
                .map(|p| format!(", written to {p}"))
                .unwrap_or_default()
        )
    });
    Ok(ExitCode::SUCCESS)
}
