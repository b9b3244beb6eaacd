//! Command-line interface definitions (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// govtrust — a government PKI that makes Matrix clients trust agency devices.
///
/// govtrust issues X.509 certificates that bind an agency's Matrix devices
/// (and cross-signing identities) to official authority records, and
/// verifies them. A typical first session:
///
///   govtrust demo                                   # the whole story, with a local Synapse
///   govtrust demo --offline                         # the PKI alone, in a temp dir
///   govtrust ca init --dir ca --servers id.bund.example
///   govtrust issue device --dir ca --user @office:id.bund.example \
///       --device AGENCYDEV --key <B64> --authority office.json > chain.pem
///   govtrust crl --dir ca --out ca.crl && govtrust crl --dir ca --root --out root.crl
///   govtrust verify --root ca/root/cert.pem --chain chain.pem \
///       --user @office:id.bund.example --device AGENCYDEV --key <B64> \
///       --crl ca.crl --crl root.crl
#[derive(Debug, Parser)]
#[command(name = "govtrust", version, verbatim_doc_comment)]
pub struct Cli {
    /// Print machine-readable JSON instead of human text.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage the CA hierarchy: create a root and issuing CAs.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Issue device, identity or enrollment-client certificates.
    #[command(subcommand)]
    Issue(IssueCommand),
    /// Revoke a certificate or an issuing CA (takes effect with the next CRL).
    Revoke(RevokeArgs),
    /// Sign a fresh CRL for an issuing CA or the root.
    Crl(CrlArgs),
    /// Decide whether a chain attests a Matrix device or identity.
    ///
    /// Exit status: 0 trusted (the authority record is printed), 1 not
    /// trusted (the reason is printed; also for unreadable or malformed
    /// certificates), 2 usage error.
    Verify(VerifyArgs),
    /// Explain a certificate, CRL or attestation event against the profile.
    ///
    /// Prints each object's fields, its SHA-256 fingerprint (compare it
    /// out of band, e.g. the root's before pinning it) and one finding per
    /// profile rule; a CRL is judged fresh or stale now.
    ///
    /// Exit status: 0 every finding holds, 1 a finding does not (stale CRL,
    /// certificate outside the profile) or the file cannot be read, 2 usage
    /// error. `--json` prints the report as JSON.
    Inspect(InspectArgs),
    /// The whole story in about a minute, narrated: a local Synapse, the
    /// service, an agency enrolling its device, a citizen's client trusting
    /// it automatically, and the trust withdrawn on revocation.
    ///
    /// The first run installs Synapse from PyPI into a virtualenv (about
    /// half a minute; reused afterwards). `--offline` tours the PKI alone:
    /// hierarchy, issuance, verification and revocation with the CLI's
    /// own commands, no homeserver.
    Demo(DemoArgs),
    /// Run the enrollment & attestation service (HTTPS API).
    ///
    /// With no configuration it runs on embedded defaults: SQLite under the
    /// data dir, file keys, a development CA created on first start, HTTPS
    /// on 127.0.0.1:7443, Matrix publishing off until a homeserver is
    /// configured. The first operator token is written to
    /// <data dir>/operator-token.
    Serve(ServeArgs),
    /// Check a service configuration file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage the authority registry over the service's API (list and
    /// import can also work on the database directly).
    #[command(subcommand, after_long_help = OPERATOR_HELP)]
    Authority(AuthorityCommand),
    /// List, show and revoke issued certificates over the service's API.
    #[command(subcommand, after_long_help = OPERATOR_HELP)]
    Cert(CertCommand),
    /// Issue and revoke agencies' enrollment-client (mTLS) certificates
    /// over the service's API.
    #[command(subcommand, after_long_help = OPERATOR_HELP)]
    EnrollmentClient(EnrollmentClientCommand),
    /// Manage operator tokens and their roles over the service's API
    /// (needs an admin token).
    #[command(subcommand, after_long_help = OPERATOR_HELP)]
    Token(TokenCommand),
    /// Read the audit log and check its hash chain.
    #[command(subcommand, after_long_help = OPERATOR_HELP)]
    Audit(AuditCommand),
    /// Print a shell completion script.
    ///
    /// Examples:
    ///
    ///   govtrust completions bash > /etc/bash_completion.d/govtrust
    ///   govtrust completions zsh > "${fpath[1]}/_govtrust"
    ///   govtrust completions fish > ~/.config/fish/completions/govtrust.fish
    #[command(verbatim_doc_comment)]
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Write man pages (govtrust.1 and one per subcommand) into DIR.
    ///
    /// Example: govtrust man /usr/local/share/man/man1
    Man {
        /// Directory to write the pages into (created if missing).
        dir: PathBuf,
    },
    /// The agency side: enroll a Matrix device with the service.
    #[command(subcommand)]
    Agency(AgencyCommand),
    /// Sealed-document archives: re-verify offline.
    #[command(subcommand)]
    Archive(ArchiveCommand),
}

/// Where the service's configuration comes from.
#[derive(Debug, Args, Clone)]
pub struct ConfigArgs {
    /// TOML configuration file (default: embedded defaults). Environment
    /// variables GOVTRUST_LISTEN, GOVTRUST_DATA_DIR, GOVTRUST_PUBLIC_URL,
    /// GOVTRUST_DATABASE_URL, GOVTRUST_MATRIX_HOMESERVER_URL,
    /// GOVTRUST_MATRIX_USER_ID and GOVTRUST_MATRIX_PASSWORD override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data directory (overrides the file and GOVTRUST_DATA_DIR).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// `govtrust serve`
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Listen address (overrides the file and GOVTRUST_LISTEN).
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// Log as JSON lines instead of human text.
    #[arg(long)]
    pub log_json: bool,
}

/// `govtrust config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Parse and validate a configuration file; explain what is wrong.
    Check {
        /// The TOML file.
        file: PathBuf,
    },
}

/// How an operator command reaches the service.
const OPERATOR_HELP: &str = "\
Connecting to the service:
  --server URL        the service, e.g. https://govtrust.example:7443 (env GOVTRUST_SERVER)
  --token-file FILE   the operator token, e.g. <data dir>/operator-token (env GOVTRUST_TOKEN_FILE)
  --ca-file FILE      the root the service's TLS certificate chains to (env GOVTRUST_CA_FILE)

The token's roles decide what it may do: admin (everything), registrar
(authorities, enrollment clients), revoker (read and revoke certificates),
auditor (read certificates, authorities and the audit log). A refused
command exits 1 with the service's errcode, e.g. GT_FORBIDDEN.

--json prints the API's JSON instead of tables.

Example session:
  export GOVTRUST_SERVER=https://127.0.0.1:7443
  export GOVTRUST_TOKEN_FILE=data/operator-token GOVTRUST_CA_FILE=data/ca/root/cert.pem
  govtrust authority create authority.json
  govtrust enrollment-client issue DE-BE-11000000-BA-NK --public-key agency.pub.pem --out agency.chain.pem
  govtrust cert list --authority DE-BE-11000000-BA-NK --status live
  govtrust token create night-shift --role revoker --expires-in-days 30 --out night-shift.token
  govtrust audit log --since now-1d";

/// Where an operator command sends its requests.
#[derive(Debug, Args, Clone, Default)]
pub struct ServerArgs {
    /// The service's URL, e.g. https://govtrust.example:7443.
    #[arg(long, env = "GOVTRUST_SERVER", value_name = "URL")]
    pub server: Option<url::Url>,
    /// File holding the operator token (the first one is
    /// <data dir>/operator-token).
    #[arg(long, env = "GOVTRUST_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// The root certificate (PEM) the service's TLS certificate chains to.
    #[arg(long, env = "GOVTRUST_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

/// `govtrust authority …`
#[derive(Debug, Subcommand)]
pub enum AuthorityCommand {
    /// Register an authority from a JSON file.
    ///
    /// The file is an AuthorityInput: {"record": {"id", "name", "unit",
    /// "street", "postal_code", "locality", "state", "country"},
    /// "servers": [...], "user_patterns": [...], "contact": "..."}.
    ///
    /// Example:
    ///
    ///   govtrust authority create neukoelln.json
    #[command(verbatim_doc_comment)]
    Create(AuthorityFileArgs),
    /// List authorities: a table of ID, status, name, servers, patterns.
    ///
    /// With --server (or GOVTRUST_SERVER) it asks the service; with
    /// --config/--data-dir, or without a server, it reads the service's
    /// database directly (run it where the service's files are).
    ///
    /// Examples:
    ///
    ///   govtrust authority list --server https://127.0.0.1:7443 --token-file t --ca-file root.pem
    ///   govtrust authority list --data-dir /var/lib/govtrust
    #[command(verbatim_doc_comment)]
    List(AuthorityListArgs),
    /// Show one authority.
    ///
    /// Example: govtrust authority show DE-BE-11000000-BA-NK
    Show(AuthorityIdArgs),
    /// Replace an authority's record, servers, patterns and contact from a
    /// JSON file (as for create; its record.id must be ID). The status is
    /// kept.
    ///
    /// Example: govtrust authority update DE-BE-11000000-BA-NK neukoelln.json
    Update(AuthorityUpdateArgs),
    /// Suspend an authority: enrollment stops and every live certificate
    /// of it is revoked (privilege_withdrawn). Prints the revoked serials.
    ///
    /// Example: govtrust authority suspend DE-BE-11000000-BA-NK
    Suspend(AuthorityIdArgs),
    /// Activate a suspended authority again (revoked certificates stay
    /// revoked).
    Activate(AuthorityIdArgs),
    /// Import authorities from JSON (an array of {record, servers,
    /// user_patterns, contact}) or CSV (header: id,name,unit,street,
    /// postal_code,locality,state,country,servers,user_patterns,contact;
    /// servers and patterns separated by ';'). Each row is validated and
    /// stored on its own: a bad row is reported and never half-imported,
    /// good rows go in; an existing ID is updated.
    ///
    /// With --server it goes through the API (create, or update when the
    /// ID exists); otherwise it writes the database directly.
    ///
    /// Example: govtrust authority import offices.csv --server https://127.0.0.1:7443
    Import(ImportArgs),
}

/// `govtrust authority create FILE`
#[derive(Debug, Args)]
pub struct AuthorityFileArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The AuthorityInput JSON file.
    pub file: PathBuf,
}

/// `govtrust authority update ID FILE`
#[derive(Debug, Args)]
pub struct AuthorityUpdateArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The authority ID.
    pub id: String,
    /// The AuthorityInput JSON file.
    pub file: PathBuf,
}

/// `govtrust authority show|suspend|activate ID`
#[derive(Debug, Args)]
pub struct AuthorityIdArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The authority ID.
    pub id: String,
}

/// `govtrust authority list`
#[derive(Debug, Args)]
pub struct AuthorityListArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// `govtrust authority import`
#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The file (.json or .csv; see --format).
    pub file: PathBuf,
    /// json or csv (default: from the file extension).
    #[arg(long)]
    pub format: Option<String>,
}

/// `govtrust cert …`
#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// List certificates in issuance order, filtered.
    ///
    /// --status: live (valid, unexpired), revoked, expired (not revoked,
    /// past not_after) or superseded (replaced, unexpired). Times
    /// (--expiring-before) are RFC 3339, milliseconds since the epoch, or
    /// now+30d / now-12h. Prints one page (--limit) and the cursor of the
    /// next; --all follows every page.
    ///
    /// Examples:
    ///
    ///   govtrust cert list --authority DE-BE-11000000-BA-NK --status live
    ///   govtrust cert list --status live --expiring-before now+7d --all
    ///   govtrust cert list --user @office.berlin:id.bund.example --json
    #[command(verbatim_doc_comment)]
    List(CertListArgs),
    /// Show one certificate (--pem: print its chain as PEM).
    ///
    /// Example: govtrust cert show 461f7d667539828e675bf1e785e5b23e --pem > chain.pem
    Show(CertShowArgs),
    /// Revoke a certificate; takes effect with the issuing CA's next CRL,
    /// which the service signs on the next fetch.
    ///
    /// Reasons: unspecified, key_compromise, ca_compromise,
    /// affiliation_changed, superseded, cessation_of_operation,
    /// certificate_hold, privilege_withdrawn.
    ///
    /// Example: govtrust cert revoke 461f7d667539828e675bf1e785e5b23e --reason key_compromise
    Revoke(CertRevokeArgs),
}

/// `govtrust cert list`
#[derive(Debug, Args)]
pub struct CertListArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Only this authority's certificates.
    #[arg(long)]
    pub authority: Option<String>,
    /// Only this Matrix user's certificates.
    #[arg(long)]
    pub user: Option<String>,
    /// live, revoked, expired or superseded.
    #[arg(long)]
    pub status: Option<String>,
    /// Only certificates that expire before this time.
    #[arg(long, value_name = "TIME")]
    pub expiring_before: Option<String>,
    /// Page size (1–1000).
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// Continue after this cursor (printed by the previous page).
    #[arg(long)]
    pub cursor: Option<String>,
    /// Follow every page.
    #[arg(long)]
    pub all: bool,
}

/// `govtrust cert show`
#[derive(Debug, Args)]
pub struct CertShowArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The serial (hex).
    pub serial: String,
    /// Print the certificate chain as PEM instead of its fields.
    #[arg(long)]
    pub pem: bool,
}

/// `govtrust cert revoke`
#[derive(Debug, Args)]
pub struct CertRevokeArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The serial (hex).
    pub serial: String,
    /// RFC 5280 reason name (default unspecified).
    #[arg(long)]
    pub reason: Option<String>,
}

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

/// `govtrust token …`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token. Its secret is shown once: written to --out (mode
    /// 0600) or printed.
    ///
    /// Roles: admin, registrar, revoker, auditor (repeat --role for
    /// several).
    ///
    /// Examples:
    ///
    ///   govtrust token create registry-team --role registrar --out registry-team.token
    ///   govtrust token create siem --role auditor --expires-in-days 90
    #[command(verbatim_doc_comment)]
    Create(TokenCreateArgs),
    /// List tokens: name, roles, state (active, expired, revoked), times.
    List(TokenListArgs),
    /// Give a token a new secret; the old one stops working at once.
    ///
    /// Example: govtrust token rotate siem --out siem.token
    Rotate(TokenSecretArgs),
    /// Revoke a token for good (its name is not reused).
    ///
    /// Example: govtrust token revoke siem
    Revoke(TokenNameArgs),
}

/// `govtrust token create`
#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Name: 1–64 of a-z 0-9 . _ -; it names the operator in the audit log.
    pub name: String,
    /// A role (repeat for several).
    #[arg(long = "role", required = true, value_name = "ROLE")]
    pub roles: Vec<String>,
    /// Expire after this many days (default: never).
    #[arg(long)]
    pub expires_in_days: Option<u32>,
    /// Write the secret to this file (mode 0600) instead of printing it.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `govtrust token list`
#[derive(Debug, Args)]
pub struct TokenListArgs {
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `govtrust token rotate`
#[derive(Debug, Args)]
pub struct TokenSecretArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The token's name.
    pub name: String,
    /// Write the new secret to this file (mode 0600) instead of printing it.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `govtrust token revoke`
#[derive(Debug, Args)]
pub struct TokenNameArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The token's name.
    pub name: String,
}

/// `govtrust audit …`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Read the audit log in chain order: seq, time, actor, action,
    /// subject. --since takes RFC 3339, milliseconds, or now-7d / now-12h.
    ///
    /// Examples:
    ///
    ///   govtrust audit log --since now-1d
    ///   govtrust audit log --all --json > audit.json
    #[command(verbatim_doc_comment)]
    Log(AuditLogArgs),
    /// Recompute the hash chain; name the first broken entry. Exit status
    /// 1 if it is broken.
    ///
    /// With --server it asks the service; with --config/--data-dir, or
    /// without a server, it reads the database directly.
    Verify(AuditVerifyArgs),
}

/// `govtrust audit log`
#[derive(Debug, Args)]
pub struct AuditLogArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Only entries at or after this time.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Page size (1–1000).
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// Continue after this cursor (printed by the previous page).
    #[arg(long)]
    pub cursor: Option<String>,
    /// Follow every page.
    #[arg(long)]
    pub all: bool,
}

/// `govtrust audit verify`
#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub config: ConfigArgs,
}

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
    SignIdentity(AgencySignIdentityArgs),
    /// Create the agency's sealing key: an Ed25519 key registered as its
    /// own Matrix device of the agency user and enrolled with the service
    /// (device attestation, `signature` proof). matrix-sdk 0.18 cannot sign
    /// with a client's own device key; docs/profile.md §15 explains.
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
    /// Homeserver URL of the agency's Matrix account.
    #[arg(long)]
    pub homeserver: url::Url,
    /// The agency's Matrix user ID.
    #[arg(long)]
    pub user: String,
    /// Its password (prefer $GOVTRUST_AGENCY_PASSWORD). Also authorises
    /// the re-upload of the master key where the homeserver refuses the
    /// signature in /keys/signatures/upload (older Synapse releases).
    #[arg(long, env = "GOVTRUST_AGENCY_PASSWORD", hide_env_values = true)]
    pub password: String,
    /// Directory for the device's matrix-sdk store (keeps the device).
    #[arg(long)]
    pub store: PathBuf,
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

/// The agency's Matrix account (matrix-sdk device kept in --store).
#[derive(Debug, Args)]
pub struct AgencyAccountArgs {
    /// Homeserver URL of the agency's Matrix account.
    #[arg(long)]
    pub homeserver: url::Url,
    /// The agency's Matrix user ID.
    #[arg(long)]
    pub user: String,
    /// Its password (prefer $GOVTRUST_AGENCY_PASSWORD).
    #[arg(long, env = "GOVTRUST_AGENCY_PASSWORD", hide_env_values = true)]
    pub password: String,
    /// Directory for the device's matrix-sdk store (keeps the device).
    #[arg(long)]
    pub store: PathBuf,
}

/// `govtrust agency sealing-device`
#[derive(Debug, Args)]
pub struct AgencySealingDeviceArgs {
    /// Homeserver URL of the agency's Matrix account.
    #[arg(long)]
    pub homeserver: url::Url,
    /// The agency's Matrix user ID.
    #[arg(long)]
    pub user: String,
    /// Its password (prefer $GOVTRUST_AGENCY_PASSWORD).
    #[arg(long, env = "GOVTRUST_AGENCY_PASSWORD", hide_env_values = true)]
    pub password: String,
    /// Where to write the new sealing key (PKCS#8 PEM, mode 0600).
    #[arg(long)]
    pub new_key: PathBuf,
    /// The service's base URL.
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

/// `govtrust archive …`
#[derive(Debug, Subcommand)]
pub enum ArchiveCommand {
    /// Re-verify an archive of sealed documents offline: each record's seal
    /// as of its issued_at with the CRLs stored in it, and its receipts.
    /// Exit status 1 if any record or receipt fails.
    Verify(ArchiveVerifyArgs),
}

/// `govtrust archive verify`
#[derive(Debug, Args)]
pub struct ArchiveVerifyArgs {
    /// The archive directory (one JSON record per file).
    pub dir: PathBuf,
    /// The pinned root certificate(s) (PEM).
    #[arg(long)]
    pub root: PathBuf,
    /// Accept records without CRLs (default: a CRL valid at issued_at is
    /// required for every certificate on the path).
    #[arg(long)]
    pub allow_missing_crl: bool,
}

/// `govtrust agency enroll`
#[derive(Debug, Args)]
pub struct AgencyEnrollArgs {
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
    /// Homeserver URL of the agency's Matrix account.
    #[arg(long)]
    pub homeserver: url::Url,
    /// The agency's Matrix user ID.
    #[arg(long)]
    pub user: String,
    /// Its password (prefer $GOVTRUST_AGENCY_PASSWORD).
    #[arg(long, env = "GOVTRUST_AGENCY_PASSWORD", hide_env_values = true)]
    pub password: String,
    /// Directory for the device's matrix-sdk store (keeps the device).
    #[arg(long)]
    pub store: PathBuf,
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

/// `govtrust ca …`
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create a root CA and a first issuing CA in a new directory.
    ///
    /// The root key is written to DIR/root/key.pem (mode 0600): in
    /// production move it offline (docs/operations.md). Set
    /// GOVTRUST_KEY_PASSPHRASE to encrypt key files.
    Init(CaInitArgs),
    /// Create another issuing CA under the root, for its own server names.
    IssuingCa(IssuingCaArgs),
    /// List the CAs in a directory.
    List(DirArg),
}

/// The CA directory argument.
#[derive(Debug, Args)]
pub struct DirArg {
    /// CA directory (created by `govtrust ca init`).
    #[arg(long, default_value = "ca")]
    pub dir: PathBuf,
}

/// Key options for a new CA.
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// Key algorithm: p256 (default), p384 or ed25519.
    #[arg(long, default_value = "p256")]
    pub key_algorithm: String,
    /// Encrypt new key files with the passphrase in $GOVTRUST_KEY_PASSPHRASE.
    #[arg(long)]
    pub encrypt_key: bool,
    /// Keep the issuing CA key in a PKCS#11 token (module path, e.g.
    /// /usr/lib/softhsm/libsofthsm2.so); the PIN is read from
    /// $GOVTRUST_PKCS11_PIN.
    #[arg(long, requires = "pkcs11_token")]
    pub pkcs11_module: Option<PathBuf>,
    /// PKCS#11 token label.
    #[arg(long, requires = "pkcs11_module")]
    pub pkcs11_token: Option<String>,
    /// PKCS#11 key label (default: govtrust-<issuing CA ID>).
    #[arg(long)]
    pub pkcs11_key_label: Option<String>,
}

impl Default for KeyArgs {
    /// P-256 file keys, unencrypted: the development default.
    fn default() -> Self {
        KeyArgs {
            key_algorithm: "p256".into(),
            encrypt_key: false,
            pkcs11_module: None,
            pkcs11_token: None,
            pkcs11_key_label: None,
        }
    }
}

/// `govtrust ca init`
#[derive(Debug, Args)]
pub struct CaInitArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// Common name of the root CA.
    #[arg(long, default_value = "govtrust Root CA")]
    pub root_name: String,
    /// Organisation record (JSON, as for --authority) put into the CA names.
    #[arg(long)]
    pub organisation: Option<PathBuf>,
    /// Matrix server names the first issuing CA may certify (comma-separated).
    #[arg(long, value_delimiter = ',', required = true)]
    pub servers: Vec<String>,
    /// ID of the first issuing CA.
    #[arg(long, default_value = "issuing-1")]
    pub issuing_id: String,
    /// CRL distribution point base URL: what an issuing CA issues points at
    /// <URL>/<CA ID>.crl, the issuing CA's own certificate at <URL>/root.crl.
    #[arg(long)]
    pub crl_base_url: Option<String>,
    /// Root validity in days.
    #[arg(long, default_value_t = 7300)]
    pub root_days: u32,
    /// Issuing CA validity in days.
    #[arg(long, default_value_t = 1825)]
    pub issuing_days: u32,
    #[command(flatten)]
    pub key: KeyArgs,
}

impl CaInitArgs {
    /// A development hierarchy: P-256 file keys, default names and validity,
    /// one issuing CA `issuing-1` for `servers`.
    pub fn development(dir: PathBuf, servers: Vec<String>, crl_base_url: Option<String>) -> Self {
        CaInitArgs {
            dir: DirArg { dir },
            root_name: "govtrust Development Root CA".into(),
            organisation: None,
            servers,
            issuing_id: "issuing-1".into(),
            crl_base_url,
            root_days: 3650,
            issuing_days: 1825,
            key: KeyArgs::default(),
        }
    }
}

/// `govtrust ca issuing-ca`
#[derive(Debug, Args)]
pub struct IssuingCaArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// ID of the new issuing CA (letters, digits, - and _).
    #[arg(long)]
    pub id: String,
    /// Matrix server names it may certify (comma-separated).
    #[arg(long, value_delimiter = ',', required = true)]
    pub servers: Vec<String>,
    /// Common name (default: "govtrust Issuing CA <ID>").
    #[arg(long)]
    pub common_name: Option<String>,
    /// Organisation record (JSON) put into the CA name.
    #[arg(long)]
    pub organisation: Option<PathBuf>,
    /// CRL distribution point base URL: what an issuing CA issues points at
    /// <URL>/<CA ID>.crl, the issuing CA's own certificate at <URL>/root.crl.
    #[arg(long)]
    pub crl_base_url: Option<String>,
    /// Validity in days.
    #[arg(long, default_value_t = 1825)]
    pub days: u32,
    #[command(flatten)]
    pub key: KeyArgs,
}

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

/// `govtrust revoke`
#[derive(Debug, Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// Serial number (hex) of the certificate to revoke.
    #[arg(long, conflicts_with_all = ["cert", "issuing_ca"])]
    pub serial: Option<String>,
    /// The certificate (PEM) to revoke.
    #[arg(long, conflicts_with = "issuing_ca")]
    pub cert: Option<PathBuf>,
    /// Revoke this issuing CA (recorded on the root's CRL).
    #[arg(long)]
    pub issuing_ca: Option<String>,
    /// Issuing CA that issued the certificate (default: looked up in DIR/issued).
    #[arg(long)]
    pub ca: Option<String>,
    /// RFC 5280 reason: unspecified, key_compromise, ca_compromise,
    /// affiliation_changed, superseded, cessation_of_operation,
    /// certificate_hold, privilege_withdrawn.
    #[arg(long, default_value = "unspecified")]
    pub reason: String,
}

/// `govtrust crl`
#[derive(Debug, Args)]
pub struct CrlArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// Issuing CA ID (default: the first one).
    #[arg(long, conflicts_with = "root")]
    pub ca: Option<String>,
    /// Sign the root's CRL instead (revoked issuing CAs).
    #[arg(long)]
    pub root: bool,
    /// Hours until nextUpdate (default 24 for issuing CAs, 720 for the root).
    #[arg(long)]
    pub hours: Option<u32>,
    /// Output file (DER unless --pem); standard output if absent.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write PEM instead of DER.
    #[arg(long)]
    pub pem: bool,
}

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

/// `govtrust inspect`
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A certificate or chain (PEM/DER), a CRL (PEM/DER) or an attestation event (JSON).
    pub file: PathBuf,
}

/// `govtrust demo`
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Tour the PKI alone (CA, issue, verify, revoke with the CLI's own
    /// code paths), without a homeserver or the service.
    #[arg(long)]
    pub offline: bool,
    /// Keep the demo's files in this directory instead of a temporary one
    /// (offline: the hierarchy, certificates and CRLs; otherwise the
    /// service's data directory, the Synapse directory and the stores).
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
    /// A Python interpreter with Synapse installed. Default: the virtualenv
    /// the demo sets up from PyPI (`$GOVTRUST_SYNAPSE_VENV`, else
    /// target/synapse-venv of the source tree, else
    /// ~/.cache/govtrust/synapse-venv).
    #[arg(long, value_name = "PYTHON", conflicts_with = "offline")]
    pub synapse_python: Option<PathBuf>,
}
