//! Making CA hierarchies in a CA directory: a root with its first issuing
//! CA (`govtrust ca init`, and the service's development CA on first
//! start), and further issuing CAs under an existing root (rotation).
//!
//! The parameters are plain structs, not command-line types, so that the
//! operator CLI and the service build the same hierarchy from their own
//! inputs; every input is checked before any key is generated.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use govtrust_pki::der::DistinguishedName;
use govtrust_pki::signer::{KeyAlgorithm, Signer};
use govtrust_pki::{RootCa, Validity};
use govtrust_verifier::AuthorityRecord;

use crate::cadir::{CaDir, CaState, KeyLocation};

const DAY: u64 = 24 * 60 * 60;

/// How a new CA key is made and kept.
#[derive(Clone, Debug)]
pub struct KeySpec {
    /// Signature algorithm of the CA key.
    pub algorithm: KeyAlgorithm,
    /// File or PKCS#11 token; the root key is always a file (it lives offline).
    pub location: KeyLocation,
    /// Passphrase to encrypt a key file with (`None`: unencrypted).
    pub passphrase: Option<String>,
}

impl KeySpec {
    /// An unencrypted P-256 file key: the development default.
    pub fn development() -> Self {
        KeySpec {
            algorithm: KeyAlgorithm::EcdsaP256,
            location: KeyLocation::File,
            passphrase: None,
        }
    }
}

/// A new issuing CA under an existing root.
#[derive(Clone, Debug)]
pub struct IssuingSpec {
    /// Its ID in the CA directory (letters, digits, `-` and `_`).
    pub id: String,
    /// Common name of its certificate.
    pub common_name: String,
    /// Organisation record put into its name.
    pub organisation: Option<AuthorityRecord>,
    /// Matrix server names it may certify (ARC.11); at least one, lower case.
    pub servers: Vec<String>,
    /// CRL distribution point base URL: what it issues points at
    /// `<URL>/<id>.crl`, its own certificate at `<URL>/root.crl`.
    pub crl_base_url: Option<String>,
    /// Validity in days.
    pub days: u32,
    /// Its key.
    pub key: KeySpec,
}

impl IssuingSpec {
    /// The default common name of issuing CA `id`.
    pub fn default_common_name(id: &str) -> String {
        format!("govtrust Issuing CA {id}")
    }
}

/// A new hierarchy: a root and its first issuing CA.
#[derive(Clone, Debug)]
pub struct HierarchySpec {
    /// The CA directory to create (must not hold a hierarchy yet).
    pub dir: PathBuf,
    /// Common name of the root.
    pub root_name: String,
    /// Root validity in days.
    pub root_days: u32,
    /// The first issuing CA; its organisation also goes into the root's name.
    pub issuing: IssuingSpec,
}

impl HierarchySpec {
    /// A development hierarchy: P-256 file keys, default names and validity,
    /// one issuing CA `issuing-1` for `servers`.
    pub fn development(dir: PathBuf, servers: Vec<String>, crl_base_url: Option<String>) -> Self {
        HierarchySpec {
            dir,
            root_name: "govtrust Development Root CA".into(),
            root_days: 3650,
            issuing: IssuingSpec {
                id: "issuing-1".into(),
                common_name: IssuingSpec::default_common_name("issuing-1"),
                organisation: None,
                servers,
                crl_base_url,
                days: 1825,
                key: KeySpec::development(),
            },
        }
    }
}

/// Creates a root and its first issuing CA in a new directory. On failure
/// nothing half-made is left behind to block a retry.
pub fn create_hierarchy(spec: &HierarchySpec) -> Result<()> {
    validate_servers(&spec.issuing.servers)?;
    if spec.dir.join("root").exists() {
        bail!(
            "{} already holds a CA hierarchy; refusing to overwrite it",
            spec.dir.display()
        );
    }
    let existed = spec.dir.exists();
    let result = create_in(spec);
    if result.is_err() {
        let _ = if existed {
            ["root", "issuing", "issued"].iter().try_for_each(|d| {
                match std::fs::remove_dir_all(spec.dir.join(d)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                    _ => Ok(()),
                }
            })
        } else {
            std::fs::remove_dir_all(&spec.dir)
        };
    }
    result
}

/// Checks server names before any key is generated: at least one, each a
/// valid Matrix server name in lower case (the form the SAN check compares).
pub fn validate_servers(servers: &[String]) -> Result<()> {
    if servers.is_empty() {
        bail!("give at least one Matrix server name");
    }
    for server in servers {
        govtrust_verifier::validate_server_name(server)
            .map_err(|why| anyhow::anyhow!("server name {server:?}: {why}"))?;
        if server.bytes().any(|b| b.is_ascii_uppercase()) {
            bail!("server name {server:?} must be lower case");
        }
    }
    Ok(())
}

fn create_in(spec: &HierarchySpec) -> Result<()> {
    let dir = CaDir::create(&spec.dir)?;
    let root_dir = dir.path().join("root");
    let root_signer = CaDir::generate_key(
        &root_dir,
        spec.issuing.key.algorithm,
        &KeyLocation::File,
        spec.issuing.key.passphrase.as_deref(),
    )?;
    let root = RootCa::create(
        &DistinguishedName::ca(&spec.root_name, spec.issuing.organisation.as_ref())?,
        root_signer,
        Validity::from_now(Duration::from_secs(u64::from(spec.root_days) * DAY)),
    )?;
    dir.write_root(
        root.certificate().der(),
        &CaState {
            next_crl_number: 1,
            ..Default::default()
        },
    )?;
    add_issuing_ca(&dir, &root, &spec.issuing)
}

/// Adds an issuing CA under `root`, then loads it, which proves its chain
/// with a probe attestation through the verifier.
pub fn add_issuing_ca<S: Signer>(dir: &CaDir, root: &RootCa<S>, spec: &IssuingSpec) -> Result<()> {
    validate_servers(&spec.servers)?;
    let ca_dir = dir.new_issuing_dir(&spec.id)?;
    let signer = CaDir::generate_key(
        &ca_dir,
        spec.key.algorithm,
        &spec.key.location,
        spec.key.passphrase.as_deref(),
    )?;
    // The issuing CA's own certificate is revoked on the root's CRL; what
    // it issues is revoked on its own.
    let cert = root.issue_issuing_ca(
        &DistinguishedName::ca(&spec.common_name, spec.organisation.as_ref())?,
        signer.spki_der().to_vec(),
        &spec.servers,
        Validity::from_now(Duration::from_secs(u64::from(spec.days) * DAY)),
        crl_url(spec.crl_base_url.as_deref(), "root").as_deref(),
    )?;
    dir.write_issuing(
        &spec.id,
        &cert,
        &CaState {
            key: spec.key.location.clone(),
            crl_url: crl_url(spec.crl_base_url.as_deref(), &spec.id),
            next_crl_number: 1,
            revoked: Vec::new(),
        },
    )?;
    dir.issuing_ca(&spec.id)
        .with_context(|| format!("the new issuing CA {} failed its self-test", spec.id))?;
    Ok(())
}

fn crl_url(base: Option<&str>, id: &str) -> Option<String> {
    base.map(|b| format!("{}/{id}.crl", b.trim_end_matches('/')))
}
