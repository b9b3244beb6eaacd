//! `govtrust verify`: the offline verdict on one chain.
//!
//! Exit status: 0 trusted, 1 not trusted (including unreadable or malformed
//! certificates and CRLs), 2 usage error (malformed user ID, device ID,
//! key or time — errors in what the caller asked, not in what was presented).

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use govtrust_verifier::{
    Crl, CrlPolicy, CrlSet, Error, Expected, TrustAnchors, UnixTime, VerifiedAttestation, Verifier,
};
use serde::Serialize;

use crate::cli::VerifyArgs;
use crate::cmd::{EXIT_FAILURE, EXIT_USAGE};
use crate::output::Output;

#[derive(Serialize)]
struct Verdict<'a> {
    trusted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    attestation: Option<&'a VerifiedAttestation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Runs `govtrust verify` and returns its exit status.
pub fn verify(args: &VerifyArgs, out: Output) -> ExitCode {
    if let Some(master_key) = &args.element_x509 {
        return super::element_x509::verify(args, master_key, out);
    }
    let result = decide(args);
    let verdict = match &result {
        Ok(att) => Verdict {
            trusted: true,
            attestation: Some(att),
            reason: None,
            error: None,
        },
        Err(e) => Verdict {
            trusted: false,
            attestation: None,
            reason: Some(e.code()),
            error: Some(e.to_string()),
        },
    };
    out.emit(&verdict, || match &result {
        Ok(att) => format!(
            "TRUSTED: {} {} of {}\n  authority: {}\n  authority ID: {}\n  issued by: {}\n  root: {}\n  serial {}, valid until {}",
            att.subject.kind(),
            match &att.subject {
                govtrust_verifier::Subject::Device(d) => d.to_string(),
                govtrust_verifier::Subject::Identity => "(master key)".to_owned(),
            },
            att.user_id,
            att.authority,
            att.authority.id,
            att.issuer,
            att.root,
            att.serial,
            time::OffsetDateTime::from_unix_timestamp(att.not_after)
                .map(govtrust_pki::rfc3339)
                .unwrap_or_default(),
        ),
        Err(e) => format!("NOT TRUSTED ({}): {e}", e.code()),
    });
    exit_status(&result)
}

/// The exit status of a verdict: 0 trusted, 2 usage error, 1 otherwise.
pub(super) fn exit_status<T>(result: &Result<T, Error>) -> ExitCode {
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(Error::InvalidInput(_)) => ExitCode::from(EXIT_USAGE),
        Err(_) => ExitCode::from(EXIT_FAILURE),
    }
}

fn decide(args: &VerifyArgs) -> Result<VerifiedAttestation, Error> {
    let (Some(key), Some(chain)) = (&args.key, &args.chain) else {
        return Err(Error::InvalidInput(
            "--chain and --key are required (or --element-x509)".into(),
        ));
    };
    let expected = Expected::new(&args.user, args.device.as_deref(), key)?;
    let roots = read(&args.root, "root file")?;
    let anchors = TrustAnchors::from_pem(&roots)?;
    let chain = govtrust_verifier::pem::certificates(&read(chain, "chain file")?)?;
    let (crls, policy, at) = revocation_and_time(args)?;
    Verifier::new(anchors, policy).verify(&expected, &chain, &crls, at)
}

/// The CRLs (`--crl`), the CRL policy (`--require-crl`,
/// `--crl-max-age-hours`) and the time to verify at (`--at`, else now).
pub(super) fn revocation_and_time(
    args: &VerifyArgs,
) -> Result<(CrlSet, CrlPolicy, UnixTime), Error> {
    let crls = args
        .crl
        .iter()
        .map(|p| Crl::from_pem_or_der(&read(p, "CRL file")?))
        .collect::<Result<CrlSet, Error>>()?;
    let policy = CrlPolicy {
        require: args.require_crl || args.crl_max_age_hours.is_some(),
        max_age: args
            .crl_max_age_hours
            .map(|h| Duration::from_secs(h * 3600)),
    };
    let at = match args.at {
        Some(t) => UnixTime::since_unix_epoch(Duration::from_secs(
            u64::try_from(t.unix_timestamp())
                .map_err(|_| Error::InvalidInput("--at is before 1970".into()))?,
        )),
        None => UnixTime::now(),
    };
    Ok((crls, policy, at))
}

/// Reads a file the verdict depends on; an unreadable one is malformed input.
pub(super) fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::Malformed {
        what,
        detail: format!("{}: {e}", path.display()),
    })
}
