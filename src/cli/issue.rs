//! `govtrust issue …`: offline issuance of device, identity and
//! enrollment-client certificates from a CA directory.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::ca::DirArg;

/// `govtrust issue …`
#[derive(Debug, Subcommand)]
pub enum IssueCommand {
    /// Attest a device's Ed25519 key (`ed25519:<DEVICE_ID>` in /keys/query).
    Device(IssueDeviceArgs),
    /// Attest a user's cross-signing master key.
    Identity(IssueIdentityArgs),
    /// Certify an agency's enrollment client (mTLS to the service, EKU ARC.3).
    EnrollmentClient(IssueEnrollmentArgs),
}

/// Options shared by attestation issuance.
#[derive(Debug, Args)]
pub struct AttestationArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// Issuing CA ID (default: the first one).
    #[arg(long)]
    pub ca: Option<String>,
    /// The agency's Matrix user ID, e.g. @office:id.bund.example.
    #[arg(long)]
    pub user: String,
    /// The Ed25519 key, standard base64 as Matrix prints it (padding optional).
    #[arg(long)]
    pub key: String,
    /// Authority record JSON: {"id","name","unit","street","postal_code","locality","state","country"}.
    #[arg(long)]
    pub authority: PathBuf,
    /// Validity in days (default 30).
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// Write the PEM chain here instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also write the io.govtrust.attestation event content JSON here.
    #[arg(long)]
    pub event_out: Option<PathBuf>,
}

/// `govtrust issue device`
#[derive(Debug, Args)]
pub struct IssueDeviceArgs {
    #[command(flatten)]
    pub common: AttestationArgs,
    /// The Matrix device ID.
    #[arg(long)]
    pub device: String,
}

/// `govtrust issue identity`
#[derive(Debug, Args)]
pub struct IssueIdentityArgs {
    #[command(flatten)]
    pub common: AttestationArgs,
}

/// `govtrust issue enrollment-client`
#[derive(Debug, Args)]
pub struct IssueEnrollmentArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// Issuing CA ID (default: the first one).
    #[arg(long)]
    pub ca: Option<String>,
    /// Authority record JSON; its `id` becomes the subject serialNumber.
    #[arg(long)]
    pub authority: PathBuf,
    /// Certify the key of this PKCS#10 CSR (PEM or DER; its signature is checked).
    #[arg(long, conflicts_with = "new_key")]
    pub csr: Option<PathBuf>,
    /// Generate a new P-256 key and write it here (mode 0600).
    #[arg(long)]
    pub new_key: Option<PathBuf>,
    /// Validity in days.
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    /// Write the PEM chain here instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
}
