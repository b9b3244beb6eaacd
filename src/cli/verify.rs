//! `govtrust verify`: decide whether a chain attests a Matrix device or
//! identity.

use std::path::PathBuf;

use clap::Args;

/// `govtrust verify`
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Pinned root certificate(s), PEM (several roots may be concatenated).
    #[arg(long)]
    pub root: PathBuf,
    /// The chain, PEM: the leaf followed by its issuing CA.
    #[arg(long, required_unless_present = "element_x509")]
    pub chain: Option<PathBuf>,
    /// The Matrix user the key belongs to.
    #[arg(long)]
    pub user: String,
    /// The device ID (device attestation).
    #[arg(
        long,
        required_unless_present_any = ["identity", "element_x509"],
        conflicts_with_all = ["identity", "element_x509"]
    )]
    pub device: Option<String>,
    /// Verify an identity (cross-signing master key) attestation.
    #[arg(long, conflicts_with = "element_x509")]
    pub identity: bool,
    /// The Ed25519 key from your own crypto store, standard base64.
    #[arg(long, required_unless_present = "element_x509")]
    pub key: Option<String>,
    /// Instead of an attestation chain: verify the io.element.x509
    /// signature on this master key object (JSON, as /keys/query returns
    /// it under master_keys[<user>]); the chain is inside the signature.
    #[arg(long, value_name = "MASTER_KEY_JSON", conflicts_with_all = ["chain", "key"])]
    pub element_x509: Option<PathBuf>,
    /// CRL file (PEM or DER); repeat for each issuer. Given CRLs are checked.
    #[arg(long)]
    pub crl: Vec<PathBuf>,
    /// Require a fresh CRL from every issuer on the path.
    #[arg(long)]
    pub require_crl: bool,
    /// Reject CRLs older than this many hours (implies --require-crl).
    #[arg(long)]
    pub crl_max_age_hours: Option<u64>,
    /// Validation time, RFC 3339 (default: now).
    #[arg(long, value_parser = parse_rfc3339)]
    pub at: Option<time::OffsetDateTime>,
}

fn parse_rfc3339(s: &str) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("not an RFC 3339 time such as 2026-11-30T12:00:00Z: {e}"))
}
