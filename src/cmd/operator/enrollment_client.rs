//! `govtrust enrollment-client …` over the API: issue an agency's mTLS
//! certificate for its public key, and revoke one.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use govtrust_service::api::EnrollmentClientRequest;

use super::call;
use crate::cli::{CertRevokeArgs, EnrollmentClientIssueArgs};
use crate::output::Output;

/// `govtrust enrollment-client issue AUTHORITY --public-key FILE`
pub fn enrollment_client_issue(args: &EnrollmentClientIssueArgs, out: Output) -> Result<ExitCode> {
    let public_key_pem = std::fs::read_to_string(&args.public_key)
        .with_context(|| format!("reading {}", args.public_key.display()))?;
    if !public_key_pem.contains("-----BEGIN PUBLIC KEY-----") {
        bail!(
            "{} is not a PEM public key (openssl pkey -in KEY -pubout)",
            args.public_key.display()
        );
    }
    let request = EnrollmentClientRequest {
        public_key_pem,
        lifetime_days: args.days,
    };
    let authority = args.authority.clone();
    let issued = call(&args.server, |c| async move {
        c.issue_enrollment_client(&authority, &request).await
    })?;
    match &args.out {
        Some(path) => govtrust_service::cadir::write_atomic(path, issued.chain_pem.as_bytes())?,
        None if !out.json => print!("{}", issued.chain_pem),
        None => {}
    }
    if args.out.is_some() || out.json {
        out.emit(&issued, || {
            format!(
                "issued enrollment client {} for {}, valid until {}{}",
                issued.serial,
                args.authority,
                issued.not_after,
                args.out
                    .as_ref()
                    .map(|p| format!("; chain written to {}", p.display()))
                    .unwrap_or_default()
            )
        });
    } else {
        eprintln!(
            "issued enrollment client {} for {}, valid until {}",
            issued.serial, args.authority, issued.not_after
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `govtrust enrollment-client revoke SERIAL`: refuses a serial that is
/// not an enrollment client.
pub fn enrollment_client_revoke(args: &CertRevokeArgs, out: Output) -> Result<ExitCode> {
    let serial = args.serial.clone();
    let reason = args.reason.clone();
    let r = call(&args.server, |c| async move {
        let cert = c.get_certificate(&serial).await?;
        if cert.kind != "enrollment_client" {
            return Err(
                govtrust_service::operator_client::OperatorClientError::Config(format!(
                "{serial} is a {} certificate, not an enrollment client (use govtrust cert revoke)",
                cert.kind
            )),
            );
        }
        c.revoke_certificate(&serial, reason.as_deref()).await
    })?;
    out.emit(&r, || match r.revoked_now {
        true => format!(
            "revoked enrollment client {}; the agency is refused from its next request",
            r.serial
        ),
        false => format!("{} was already revoked", r.serial),
    });
    Ok(ExitCode::SUCCESS)
}
