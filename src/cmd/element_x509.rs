//! Element's `io.element.x509` identity signature from the command line:
//! `govtrust agency sign-identity` (sign the agency account's own master
//! key and upload the signature), the identity-signing part of `govtrust
//! agency enroll`, and `govtrust verify --element-x509` (the offline verdict
//! on a master key object).
//!
//! `verify --element-x509` exits like `verify`: 0 trusted, 1 not trusted
//! (including unreadable or malformed files), 2 usage error.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use govtrust_pki::element_x509::FileIdentitySigner;
use govtrust_verifier::element_x509::{ElementX509Verifier, VerifiedIdentitySignature};
use govtrust_verifier::{Error, TrustAnchors, UserId};
use serde::Serialize;

use super::runtime;
use crate::cli::{AgencySignIdentityArgs, VerifyArgs};
use crate::cmd::verify::{exit_status, read, revocation_and_time};
use crate::output::Output;

/// Loads the identity-signing RSA key (PKCS#8 PEM).
pub fn load_signer(path: &Path) -> Result<FileIdentitySigner> {
    FileIdentitySigner::load(path)
        .with_context(|| format!("identity-signing key {}", path.display()))
}

/// `govtrust agency sign-identity`
pub fn sign_identity(args: &AgencySignIdentityArgs, out: Output) -> Result<ExitCode> {
    super::service::init_logging(false);
    let signer = load_signer(&args.key)?;
    let chain = govtrust_verifier::pem::certificates(
        &std::fs::read(&args.chain).with_context(|| format!("reading {}", args.chain.display()))?,
    )
    .with_context(|| format!("identity-signing chain {}", args.chain.display()))?;
    let signed = runtime()?.block_on(async {
        let device = super::sealed::connect(&args.account).await?;
        let signed = govtrust_service::agency::sign_identity(
            device.client(),
            &chain,
            &signer,
            Some(args.account.login.password.as_str()),
        )
        .await;
        device.shutdown();
        signed
    })?;
    if let Some(path) = &args.out {
        let json = serde_json::to_vec_pretty(&signed.master_key)?;
        govtrust_service::cadir::write_atomic(path, &json)?;
    }
    out.emit(&signed, || {
        format!(
            "signed: {}'s master key, {} ({:?})",
            signed.user_id, signed.key_id, signed.uploaded_with
        )
    });
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct Verdict<'a> {
    trusted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    identity_signature: Option<&'a VerifiedIdentitySignature>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// `govtrust verify --element-x509 MASTER_KEY_JSON`: returns the exit status.
pub fn verify(args: &VerifyArgs, master_key: &Path, out: Output) -> ExitCode {
    let result = decide(args, master_key);
    let verdict = match &result {
        Ok(v) => Verdict {
            trusted: true,
            identity_signature: Some(v),
            reason: None,
            error: None,
        },
        Err(e) => Verdict {
            trusted: false,
            identity_signature: None,
            reason: Some(e.code()),
            error: Some(e.to_string()),
        },
    };
    out.emit(&verdict, || match &result {
        Ok(v) => format!(
            "TRUSTED: io.element.x509 signature on the master key {} of {}\n  authority: {}\n  authority ID: {}\n  issued by: {}\n  root: {}\n  key ID: {}\n  serial {}, valid until {}",
            v.master_key.to_base64(),
            v.signer.user_id,
            v.signer.authority,
            v.signer.authority.id,
            v.signer.issuer,
            v.signer.root,
            v.signer.key_id,
            v.signer.serial,
            time::OffsetDateTime::from_unix_timestamp(v.signer.not_after)
                .map(govtrust_pki::rfc3339)
                .unwrap_or_default(),
        ),
        Err(e) => format!("NOT TRUSTED ({}): {e}", e.code()),
    });
    exit_status(&result)
}

fn decide(args: &VerifyArgs, master_key: &Path) -> Result<VerifiedIdentitySignature, Error> {
    let user = UserId::parse(&args.user).map_err(|e| Error::InvalidInput(e.to_string()))?;
    let anchors = TrustAnchors::from_pem(&read(&args.root, "root file")?)?;
    let json = read(master_key, "master key file")?;
    let (crls, policy, at) = revocation_and_time(args)?;
    ElementX509Verifier::new(anchors, policy).verify_master_key(&user, &json, &crls, at)
}
