//! `govtrust enrollment-client …`: agencies' mTLS certificates over the API.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::cert::CertRevokeArgs;
use super::operator::ServerArgs;

/// `govtrust enrollment-client …`
#[derive(Debug, Subcommand)]
pub enum EnrollmentClientCommand {
    /// Issue an enrollment-client certificate for an agency's public key.
    ///
    /// The agency makes its key pair and sends only the public key, e.g.
    ///   openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out agency.key
    ///   openssl pkey -in agency.key -pubout -out agency.pub.pem
    /// The chain (certificate + issuing CA) goes to --out or standard output.
    ///
    /// Example:
    ///
    ///   govtrust enrollment-client issue DE-BE-11000000-BA-NK --public-key agency.pub.pem --days 365 --out agency.chain.pem
    #[command(verbatim_doc_comment)]
    Issue(EnrollmentClientIssueArgs),
    /// Revoke an enrollment-client certificate: the agency's next request
    /// is refused (GT_CLIENT_CERT_REJECTED).
    ///
    /// Example: govtrust enrollment-client revoke 5f0c… --reason key_compromise
    Revoke(CertRevokeArgs),
}

/// `govtrust enrollment-client issue`
#[derive(Debug, Args)]
pub struct EnrollmentClientIssueArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The authority ID.
    pub authority: String,
    /// The agency's public key (PEM SubjectPublicKeyInfo: P-256, P-384 or
    /// Ed25519).
    #[arg(long, value_name = "FILE")]
    pub public_key: PathBuf,
    /// Validity in days (1–398; the service's default is 365).
    #[arg(long)]
    pub days: Option<u32>,
    /// Write the PEM chain here instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
}
