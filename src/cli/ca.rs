//! `govtrust ca …`: create a CA hierarchy in a directory, plus the CA
//! directory and key options other offline commands share.

use std::path::PathBuf;

use clap::{Args, Subcommand};

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
