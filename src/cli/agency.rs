//! `govtrust agency …`: the agency side — enrolling its Matrix device,
//! signing its identity, its sealing device, sending and archiving sealed
//! documents.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// `govtrust agency …`
#[derive(Debug, Subcommand)]
pub enum AgencyCommand {
    /// Enroll this Matrix device: log in (or reuse the session in --store),
    /// request a challenge over mTLS, receive it on the device (Olm-encrypted
    /// to-device message), answer it, print the certificate chain.
    Enroll(AgencyEnrollArgs),
    /// Sign the account's own cross-signing master key in Element's
    /// io.element.x509 format with the agency's identity-signing RSA key
    /// (from `agency enroll --identity-signing-key`) and upload the
    /// signature to the homeserver. The key is a PKCS#8 PEM file; PKCS#11
    /// keys are not supported by this command yet.
    ///
    /// The password also authorises the re-upload of the master key where
    /// the homeserver refuses the signature in /keys/signatures/upload
    /// (older Synapse releases).
    SignIdentity(AgencySignIdentityArgs),
    /// Create the agency's sealing key: an Ed25519 key registered as its
    /// own Matrix device of the agency user and enrolled with the service
    /// (device attestation, `signature` proof). matrix-sdk 0.18 cannot sign
    /// with a client's own device key; docs/profile.md §16 explains.
    SealingDevice(AgencySealingDeviceArgs),
    /// Seal a JSON document (e.g. a FIM decision) with the sealing key and
    /// send it as an `io.govtrust.sealed` event into a room.
    SendSealed(AgencySendSealedArgs),
    /// Export the room's sealed events, the receipts that verify and the
    /// CRLs given into an archive directory (`govtrust archive verify`).
    Archive(AgencyArchiveArgs),
}

/// `govtrust agency sign-identity`
#[derive(Debug, Args)]
pub struct AgencySignIdentityArgs {
    #[command(flatten)]
    pub account: AgencyAccountArgs,
    /// The identity-signing RSA key (PKCS#8 PEM, unencrypted).
    #[arg(long)]
    pub key: PathBuf,
    /// The identity-signing chain (PEM): the certificate, then its issuing CA.
    #[arg(long)]
    pub chain: PathBuf,
    /// Also write the signed master key object (as served afterwards) here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The agency's Matrix login.
#[derive(Debug, Args)]
pub struct AgencyLoginArgs {
    /// Homeserver URL of the agency's Matrix account.
    #[arg(long)]
    pub homeserver: url::Url,
    /// The agency's Matrix user ID.
    #[arg(long)]
    pub user: String,
    /// Its password (prefer $GOVTRUST_AGENCY_PASSWORD).
    #[arg(long, env = "GOVTRUST_AGENCY_PASSWORD", hide_env_values = true)]
    pub password: String,
}

/// The agency's Matrix account (matrix-sdk device kept in --store).
#[derive(Debug, Args)]
pub struct AgencyAccountArgs {
    #[command(flatten)]
    pub login: AgencyLoginArgs,
    /// Directory for the device's matrix-sdk store (keeps the device).
    #[arg(long)]
    pub store: PathBuf,
}

/// The service the agency enrolls with, over mTLS with its
/// enrollment-client certificate.
#[derive(Debug, Args)]
pub struct AgencyServiceArgs {
    /// The service's base URL, e.g. https://govtrust.example:7443.
    #[arg(long)]
    pub service: url::Url,
    /// Root certificate (PEM) the service's TLS certificate chains to.
    #[arg(long)]
    pub service_root: PathBuf,
    /// The agency's enrollment-client certificate chain (PEM).
    #[arg(long)]
    pub client_cert: PathBuf,
    /// Its private key (PKCS#8 PEM).
    #[arg(long)]
    pub client_key: PathBuf,
}

/// `govtrust agency sealing-device`
#[derive(Debug, Args)]
pub struct AgencySealingDeviceArgs {
    #[command(flatten)]
    pub login: AgencyLoginArgs,
    /// Where to write the new sealing key (PKCS#8 PEM, mode 0600).
    #[arg(long)]
    pub new_key: PathBuf,
    #[command(flatten)]
    pub service: AgencyServiceArgs,
    /// Where to write the sealing key's attestation chain (PEM).
    #[arg(long)]
    pub out: PathBuf,
}

/// `govtrust agency send-sealed`
#[derive(Debug, Args)]
pub struct AgencySendSealedArgs {
    #[command(flatten)]
    pub account: AgencyAccountArgs,
    /// The room to send into (ID).
    #[arg(long)]
    pub room: String,
    /// The JSON document to seal.
    #[arg(long)]
    pub document: PathBuf,
    /// The agency's reference number.
    #[arg(long, default_value = "")]
    pub reference: String,
    /// Directory of JSON Schemas (by `$id`): a document with `$schema` must
    /// conform to the schema of that ID found here. Nothing is fetched.
    #[arg(long)]
    pub schema_dir: Option<PathBuf>,
    /// The sealing key (PKCS#8 PEM or DER).
    #[arg(long)]
    pub sealing_key: PathBuf,
    /// Its attestation chain (PEM).
    #[arg(long)]
    pub sealing_chain: PathBuf,
}

/// `govtrust agency archive`
#[derive(Debug, Args)]
pub struct AgencyArchiveArgs {
    #[command(flatten)]
    pub account: AgencyAccountArgs,
    /// The room to archive (ID).
    #[arg(long)]
    pub room: String,
    /// CRLs (DER or PEM) to store with every record: those of the signer's
    /// issuing CA and of the root, as of now.
    #[arg(long = "crl")]
    pub crls: Vec<PathBuf>,
    /// The archive directory.
    #[arg(long)]
    pub out: PathBuf,
}

/// `govtrust agency enroll`
#[derive(Debug, Args)]
pub struct AgencyEnrollArgs {
    #[command(flatten)]
    pub service: AgencyServiceArgs,
    #[command(flatten)]
    pub account: AgencyAccountArgs,
    /// The service bot's user ID (challenges from anyone else are ignored).
    #[arg(long)]
    pub service_bot: String,
    /// Also enroll the user's cross-signing identity (master key).
    #[arg(long)]
    pub identity: bool,
    /// Also enroll an identity-signing certificate (io.element.x509) for
    /// this RSA key (PKCS#8 PEM, 2048 to 8192 bits); its chain goes to
    /// --identity-signing-out.
    #[arg(long, requires = "identity_signing_out")]
    pub identity_signing_key: Option<PathBuf>,
    /// Where to write the identity-signing chain (PEM).
    #[arg(long, requires = "identity_signing_key")]
    pub identity_signing_out: Option<PathBuf>,
    /// Write the PEM chain(s) here instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
}
