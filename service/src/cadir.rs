//! The CA directory: the file layout the operator CLI keeps a hierarchy in.
//!
//! ```text
//! DIR/root/cert.pem           root certificate
//! DIR/root/key.pem            root key (PKCS#8, 0600; move it offline)
//! DIR/root/state.json         CRL number and revoked issuing CAs
//! DIR/issuing/<ID>/cert.pem   issuing CA certificate
//! DIR/issuing/<ID>/key.pem    its key, or key.json naming a PKCS#11 key
//! DIR/issuing/<ID>/state.json CRL URL, CRL number, revoked certificates
//! DIR/issued/<SERIAL>.pem     every certificate issued, with its chain
//! ```
//!
//! Writes go to a temporary file that is renamed into place, so an
//! interrupted command never leaves a half-written state file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use govtrust_pki::signer::{FileSigner, KeyAlgorithm, Pkcs11Config, Pkcs11Signer, Signer};
use govtrust_pki::{IssuedCertificate, IssuingCa, RevocationReason, RevokedCertificate, RootCa};
use govtrust_verifier::CertificateDer;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::pemfile;

/// Environment variable holding the passphrase of encrypted key files.
pub const PASSPHRASE_ENV: &str = "GOVTRUST_KEY_PASSPHRASE";
/// Environment variable holding the PKCS#11 user PIN.
pub const PKCS11_PIN_ENV: &str = "GOVTRUST_PKCS11_PIN";

/// Where a CA key lives.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "backend", rename_all = "snake_case")]
pub enum KeyLocation {
    /// `key.pem` beside the certificate.
    #[default]
    File,
    /// A key inside a PKCS#11 token.
    Pkcs11 {
        /// Path of the PKCS#11 module (e.g. libsofthsm2.so).
        module: PathBuf,
        /// Token label.
        token: String,
        /// Key label (CKA_LABEL).
        label: String,
    },
}

/// Mutable state of one CA.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CaState {
    /// Where the key lives.
    #[serde(default = "file_key")]
    pub key: KeyLocation,
    /// CRL distribution point URL written into certificates.
    #[serde(default)]
    pub crl_url: Option<String>,
    /// Number of the next CRL.
    pub next_crl_number: u64,
    /// Certificates this CA revoked.
    #[serde(default)]
    pub revoked: Vec<RevokedEntry>,
}

fn file_key() -> KeyLocation {
    KeyLocation::File
}

/// One revocation as stored.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RevokedEntry {
    /// Serial, lower-case hex.
    pub serial: String,
    /// Revocation time, RFC 3339.
    #[serde(with = "time::serde::rfc3339")]
    pub revoked_at: OffsetDateTime,
    /// Reason name.
    pub reason: String,
}

impl RevokedEntry {
    fn to_pki(&self) -> Result<RevokedCertificate> {
        Ok(RevokedCertificate {
            serial: parse_hex(&self.serial)?,
            revoked_at: self.revoked_at,
            reason: RevocationReason::parse(&self.reason)?,
        })
    }
}

/// Parses a hex serial (colons and spaces allowed, as OpenSSL prints them).
pub fn parse_hex(s: &str) -> Result<Vec<u8>> {
    let clean: String = s.chars().filter(|c| !matches!(c, ':' | ' ')).collect();
    if clean.is_empty() || clean.len() % 2 != 0 || clean.len() > 40 {
        bail!("serial {s:?} is not 1 to 20 bytes of hex");
    }
    (0..clean.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&clean[i..i + 2], 16)
                .with_context(|| format!("serial {s:?} is not hex"))
        })
        .collect()
}

/// A CA directory on disk.
pub struct CaDir {
    root: PathBuf,
}

impl CaDir {
    /// Opens an existing CA directory.
    pub fn open(dir: &Path) -> Result<Self> {
        let ca = CaDir {
            root: dir.to_path_buf(),
        };
        if !ca.root_dir().join("cert.pem").exists() {
            bail!(
                "{} is not a govtrust CA directory (no root/cert.pem); create one with `govtrust ca init --dir {}`",
                dir.display(),
                dir.display()
            );
        }
        Ok(ca)
    }

    /// Prepares a new CA directory; refuses to touch an existing hierarchy.
    pub fn create(dir: &Path) -> Result<Self> {
        if dir.join("root").exists() {
            bail!(
                "{} already holds a CA hierarchy; refusing to overwrite it",
                dir.display()
            );
        }
        for sub in ["root", "issuing", "issued"] {
            std::fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("creating {}", dir.join(sub).display()))?;
        }
        Ok(CaDir {
            root: dir.to_path_buf(),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    fn root_dir(&self) -> PathBuf {
        self.root.join("root")
    }

    fn issuing_dir(&self, id: &str) -> PathBuf {
        self.root.join("issuing").join(id)
    }

    /// IDs of the issuing CAs, sorted.
    pub fn issuing_ids(&self) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(self.root.join("issuing"))? {
            let entry = entry?;
            if entry.path().join("cert.pem").exists() {
                ids.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Resolves `--ca`: the given ID, or the only/first issuing CA.
    pub fn resolve_issuing_id(&self, id: Option<&str>) -> Result<String> {
        let ids = self.issuing_ids()?;
        match id {
            Some(id) if ids.iter().any(|i| i == id) => Ok(id.to_owned()),
            Some(id) => bail!("no issuing CA {id:?}; known: {}", ids.join(", ")),
            None => ids.into_iter().next().context(
                "the CA directory has no issuing CA; add one with `govtrust ca issuing-ca`",
            ),
        }
    }

    /// The root certificate.
    pub fn root_cert(&self) -> Result<CertificateDer<'static>> {
        pemfile::read_one_cert(&self.root_dir().join("cert.pem"))
    }

    /// Loads the root CA with its key (needs the key file present).
    pub fn root_ca(&self) -> Result<RootCa<Box<dyn Signer>>> {
        let state = self.root_state()?;
        let signer = self.load_signer(&self.root_dir(), &state.key)?;
        Ok(RootCa::load(self.root_cert()?, signer)?)
    }

    /// Loads an issuing CA with its key; this proves its chain (probe
    /// issuance). It may be revoked: it still signs CRLs; see
    /// [`CaDir::issuing_ca_for_issuance`].
    pub fn issuing_ca(&self, id: &str) -> Result<IssuingCa<Box<dyn Signer>>> {
        let dir = self.issuing_dir(id);
        let state = self.issuing_state(id)?;
        let cert = pemfile::read_one_cert(&dir.join("cert.pem"))?;
        let signer = self.load_signer(&dir, &state.key)?;
        Ok(IssuingCa::load(
            cert,
            self.root_cert()?,
            signer,
            state.crl_url,
        )?)
    }

    /// Loads an issuing CA to issue with: refused if the root revoked it.
    pub fn issuing_ca_for_issuance(&self, id: &str) -> Result<IssuingCa<Box<dyn Signer>>> {
        let cert = self.issuing_cert(id)?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&cert)
            .map_err(|e| anyhow::anyhow!("issuing CA {id}: {e}"))?;
        let serial = govtrust_pki::hex(parsed.raw_serial());
        if self
            .root_state()?
            .revoked
            .iter()
            .any(|r| r.serial == serial)
        {
            bail!("issuing CA {id} is revoked by the root; it can no longer issue");
        }
        self.issuing_ca(id)
    }

    /// The issuing CA certificate only (no key needed).
    pub fn issuing_cert(&self, id: &str) -> Result<CertificateDer<'static>> {
        pemfile::read_one_cert(&self.issuing_dir(id).join("cert.pem"))
    }

    fn load_signer(&self, dir: &Path, key: &KeyLocation) -> Result<Box<dyn Signer>> {
        Ok(match key {
            KeyLocation::File => {
                let path = dir.join("key.pem");
                let pass = std::env::var(PASSPHRASE_ENV).ok();
                Box::new(
                    FileSigner::load(&path, pass.as_deref())
                        .with_context(|| format!("loading {}", path.display()))?,
                )
            }
            KeyLocation::Pkcs11 {
                module,
                token,
                label,
            } => Box::new(Pkcs11Signer::open(&pkcs11_config(module, token, label)?)?),
        })
    }

    /// Generates a key for a new CA at `dir` (file or PKCS#11).
    pub fn generate_key(
        dir: &Path,
        algorithm: KeyAlgorithm,
        location: &KeyLocation,
        passphrase: Option<&str>,
    ) -> Result<Box<dyn Signer>> {
        Ok(match location {
            KeyLocation::File => {
                let signer = FileSigner::generate(algorithm)?;
                signer.save(&dir.join("key.pem"), passphrase)?;
                Box::new(signer)
            }
            KeyLocation::Pkcs11 {
                module,
                token,
                label,
            } => Box::new(Pkcs11Signer::generate(
                &pkcs11_config(module, token, label)?,
                algorithm,
            )?),
        })
    }

    /// Writes the root certificate and initial state.
    pub fn write_root(&self, cert: &CertificateDer<'_>, state: &CaState) -> Result<()> {
        write_atomic(
            &self.root_dir().join("cert.pem"),
            pemfile::cert_pem(cert).as_bytes(),
        )?;
        self.save_root_state(state)
    }

    /// Writes a new issuing CA's certificate and state.
    pub fn write_issuing(
        &self,
        id: &str,
        cert: &CertificateDer<'_>,
        state: &CaState,
    ) -> Result<()> {
        let dir = self.issuing_dir(id);
        write_atomic(&dir.join("cert.pem"), pemfile::cert_pem(cert).as_bytes())?;
        self.save_issuing_state(id, state)
    }

    /// Creates the directory for a new issuing CA, refusing existing IDs.
    pub fn new_issuing_dir(&self, id: &str) -> Result<PathBuf> {
        if id.is_empty()
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            bail!("issuing CA ID {id:?} may only use letters, digits, - and _");
        }
        let dir = self.issuing_dir(id);
        if dir.exists() {
            bail!("issuing CA {id:?} already exists");
        }
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// Root CA state.
    pub fn root_state(&self) -> Result<CaState> {
        read_json(&self.root_dir().join("state.json"))
    }

    /// Saves root CA state.
    pub fn save_root_state(&self, state: &CaState) -> Result<()> {
        write_json(&self.root_dir().join("state.json"), state)
    }

    /// Issuing CA state.
    pub fn issuing_state(&self, id: &str) -> Result<CaState> {
        read_json(&self.issuing_dir(id).join("state.json"))
    }

    /// Saves issuing CA state.
    pub fn save_issuing_state(&self, id: &str, state: &CaState) -> Result<()> {
        write_json(&self.issuing_dir(id).join("state.json"), state)
    }

    /// Records an issued certificate with its chain.
    pub fn record_issued(&self, issued: &IssuedCertificate) -> Result<PathBuf> {
        let path = self
            .root
            .join("issued")
            .join(format!("{}.pem", issued.serial_hex()));
        write_atomic(&path, pemfile::chain_pem(&issued.chain).as_bytes())?;
        Ok(path)
    }

    /// Finds which issuing CA issued `serial` (from the issued/ records).
    pub fn issuer_of(&self, serial_hex: &str) -> Result<Option<String>> {
        let path = self.root.join("issued").join(format!("{serial_hex}.pem"));
        if !path.exists() {
            return Ok(None);
        }
        let chain = pemfile::read_certs(&path)?;
        let Some(issuer) = chain.get(1) else {
            return Ok(None);
        };
        for id in self.issuing_ids()? {
            if self.issuing_cert(&id)?.as_ref() == issuer.as_ref() {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// Signs a CRL for the root (`None`) or an issuing CA, bumping its number.
    pub fn sign_crl(&self, ca: Option<&str>, lifetime: Duration) -> Result<Vec<u8>> {
        let now = OffsetDateTime::now_utc();
        let (mut state, der) = match ca {
            None => {
                let state = self.root_state()?;
                let revoked = to_pki(&state.revoked)?;
                let der = self
                    .root_ca()?
                    .crl(&revoked, state.next_crl_number, now, lifetime)?;
                (state, der)
            }
            Some(id) => {
                let state = self.issuing_state(id)?;
                let revoked = to_pki(&state.revoked)?;
                let der =
                    self.issuing_ca(id)?
                        .crl(&revoked, state.next_crl_number, now, lifetime)?;
                (state, der)
            }
        };
        state.next_crl_number += 1;
        match ca {
            None => self.save_root_state(&state)?,
            Some(id) => self.save_issuing_state(id, &state)?,
        }
        Ok(der)
    }
}

fn to_pki(entries: &[RevokedEntry]) -> Result<Vec<RevokedCertificate>> {
    entries.iter().map(RevokedEntry::to_pki).collect()
}

fn pkcs11_config(module: &Path, token: &str, label: &str) -> Result<Pkcs11Config> {
    let pin = std::env::var(PKCS11_PIN_ENV).with_context(|| {
        format!("the PKCS#11 PIN is read from ${PKCS11_PIN_ENV}, which is not set")
    })?;
    Ok(Pkcs11Config {
        module: module.to_path_buf(),
        token_label: token.to_owned(),
        key_label: label.to_owned(),
        pin: pin.into(),
    })
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is damaged", path.display()))
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// Writes via a temporary file and rename, so readers never see half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
