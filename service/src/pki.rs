//! The service's CAs: the issuing CA it signs with, the root it chains to,
//! CRL signing, and its own TLS server certificate.
//!
//! Keys and certificates live in a CA directory (the same layout the
//! operator CLI manages). With no directory configured, a development
//! hierarchy is created on first start — never do that in production,
//! where the root is made offline (docs/operations.md).

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use govtrust_pki::signer::{FileSigner, KeyAlgorithm, Signer};
use govtrust_pki::{
    AttestationRequest, IssuedCertificate, IssuingCa, RevokedCertificate, Validity,
};
use govtrust_verifier::{CertificateDer, TrustAnchors};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;
use time::OffsetDateTime;

use crate::cadir::CaDir;
use crate::hierarchy::{create_hierarchy, HierarchySpec};
use crate::pemfile;

use crate::config::Config;

/// The CAs the service works with.
pub struct ServicePki {
    issuing: IssuingCa<Box<dyn Signer>>,
    issuing_id: String,
    /// Issuing CAs rotated out of issuance: they still sign the CRLs for
    /// what they issued, until it has expired.
    retired: Vec<(String, IssuingCa<Box<dyn Signer>>)>,
    root_crl_cache: std::sync::Mutex<Option<(i64, Vec<u8>)>>,
    anchors: TrustAnchors,
    ca_dir: CaDir,
    attestation_lifetime: Duration,
    crl_lifetime: Duration,
}

impl ServicePki {
    /// Opens the configured CA directory, creating a development hierarchy
    /// for `ca.dev_servers` if it does not exist yet.
    pub fn open_or_create(config: &Config) -> Result<Self> {
        let dir = config.ca_dir();
        if !dir.join("root").join("cert.pem").exists() {
            tracing::warn!(
                dir = %dir.display(),
                servers = ?config.ca.dev_servers,
                "no CA directory: creating a DEVELOPMENT hierarchy (root key on disk)"
            );
            create_hierarchy(&HierarchySpec::development(
                dir.clone(),
                config.ca.dev_servers.clone(),
                Some(format!("{}/v1/crl", config.public_base())),
            ))?;
        }
        let ca_dir = CaDir::open(&dir)?;
        // The configured CA issues: refused if the root revoked it.
        let issuing = ca_dir
            .issuing_ca_for_issuance(&config.ca.issuing_ca)
            .with_context(|| format!("loading issuing CA {:?}", config.ca.issuing_ca))?;
        let anchors = TrustAnchors::from_der([ca_dir.root_cert()?])?;
        let mut retired = Vec::new();
        for id in ca_dir.issuing_ids()? {
            if id == config.ca.issuing_ca {
                continue;
            }
            match ca_dir.issuing_ca(&id) {
                Ok(ca) => retired.push((id, ca)),
                Err(e) => {
                    tracing::warn!(ca = %id, error = %format!("{e:#}"), "issuing CA not loaded; its CRL is not served")
                }
            }
        }
        Ok(ServicePki {
            issuing,
            issuing_id: config.ca.issuing_ca.clone(),
            retired,
            root_crl_cache: std::sync::Mutex::new(None),
            anchors,
            ca_dir,
            attestation_lifetime: Duration::from_secs(
                u64::from(config.ca.attestation_days) * 86_400,
            ),
            crl_lifetime: Duration::from_secs(u64::from(config.ca.crl_hours) * 3600),
        })
    }

    /// ID of the issuing CA in use (its CRL is `/v1/crl/<id>.crl`).
    pub fn issuing_id(&self) -> &str {
        &self.issuing_id
    }

    /// The pinned root(s), for authenticating agency clients.
    pub fn anchors(&self) -> &TrustAnchors {
        &self.anchors
    }

    /// The root certificate.
    pub fn root(&self) -> &CertificateDer<'static> {
        self.issuing.root()
    }

    /// The issuing CA certificate (second element of every chain).
    pub fn issuing_der(&self) -> &CertificateDer<'static> {
        self.issuing.certificate().der()
    }

    /// Every issuing CA the service holds: the active one first, then the
    /// retired ones.
    fn all(&self) -> impl Iterator<Item = (&str, &IssuingCa<Box<dyn Signer>>)> {
        std::iter::once((self.issuing_id.as_str(), &self.issuing))
            .chain(self.retired.iter().map(|(id, ca)| (id.as_str(), ca)))
    }

    /// IDs of every issuing CA whose CRL the service signs and serves.
    pub fn ca_ids(&self) -> Vec<String> {
        self.all().map(|(id, _)| id.to_owned()).collect()
    }

    /// The certificate of issuing CA `id` (to complete a stored leaf's chain).
    pub fn ca_der(&self, id: &str) -> Option<&CertificateDer<'static>> {
        self.all()
            .find(|(i, _)| *i == id)
            .map(|(_, ca)| ca.certificate().der())
    }

    /// The Matrix servers the issuing CA may certify.
    pub fn permitted_servers(&self) -> &[String] {
        self.issuing.certificate().permitted_servers()
    }

    /// Issues an attestation (verified by the client verifier before return).
    pub fn issue(
        &self,
        request: &AttestationRequest,
    ) -> Result<IssuedCertificate, govtrust_pki::Error> {
        self.issuing
            .issue_attestation(request, Validity::from_now(self.attestation_lifetime))
    }

    /// Issues an identity-signing certificate (EKU ARC.5, `io.element.x509`)
    /// for an agency's RSA key, with the lifetime of attestations.
    pub fn issue_identity_signing(
        &self,
        request: &govtrust_pki::IdentitySigningRequest,
    ) -> Result<IssuedCertificate, govtrust_pki::Error> {
        self.issuing
            .issue_identity_signing(request, Validity::from_now(self.attestation_lifetime))
    }

    /// Issues a citizen attestation (EKU ARC.6, level of assurance in
    /// ARC.12) for a pseudonymous citizen's device, with the lifetime of
    /// attestations (docs/pseudonyms.md).
    pub fn issue_citizen(
        &self,
        request: &govtrust_pki::profile::CitizenAttestationRequest,
    ) -> Result<IssuedCertificate, govtrust_pki::Error> {
        self.issuing
            .issue_citizen_attestation(request, Validity::from_now(self.attestation_lifetime))
    }

    /// Issues an agency's enrollment-client certificate (EKU ARC.3) for
    /// `spki` (operator tooling and tests; the same as
    /// `govtrust issue enrollment-client`).
    pub fn issue_enrollment_client(
        &self,
        authority: &govtrust_verifier::AuthorityRecord,
        spki: Vec<u8>,
        lifetime: Duration,
    ) -> Result<IssuedCertificate, govtrust_pki::Error> {
        self.issuing
            .issue_enrollment_client(authority, spki, Validity::from_now(lifetime))
    }

    /// Signs the CRL of issuing CA `id`, returned as the CA's self-check
    /// decoded it (signature verified), so its fields need no second decode.
    pub fn sign_crl(
        &self,
        id: &str,
        revoked: &[RevokedCertificate],
        number: u64,
    ) -> Result<govtrust_verifier::Crl> {
        let (_, ca) = self
            .all()
            .find(|(i, _)| *i == id)
            .with_context(|| format!("no issuing CA {id}"))?;
        Ok(ca.crl_checked(
            revoked,
            number,
            OffsetDateTime::now_utc(),
            self.crl_lifetime,
        )?)
    }

    /// CRL lifetime (nextUpdate − thisUpdate).
    pub fn crl_lifetime(&self) -> Duration {
        self.crl_lifetime
    }

    /// The root's CRL: the operator's offline-signed `root/crl.der` if
    /// present, otherwise signed here when the root key is available
    /// (development), otherwise none.
    pub fn root_crl(&self) -> Result<Option<Vec<u8>>> {
        let published = self.ca_dir.path().join("root").join("crl.der");
        if published.exists() {
            return Ok(Some(std::fs::read(&published)?));
        }
        if !self.ca_dir.path().join("root").join("key.pem").exists() {
            return Ok(None);
        }
        // Development: sign here, and reuse it for half its 30-day life.
        const LIFETIME: Duration = Duration::from_secs(30 * 86_400);
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let mut cache = self
            .root_crl_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some((signed_at, der)) = cache.as_ref() {
            if now - signed_at < i64::try_from(LIFETIME.as_secs() / 2).unwrap_or(i64::MAX) {
                return Ok(Some(der.clone()));
            }
        }
        let der = self.ca_dir.sign_crl(None, LIFETIME)?;
        *cache = Some((now, der.clone()));
        Ok(Some(der))
    }

    /// The TLS server configuration over `certs` (see [`Self::tls_load`]).
    pub fn tls_config(
        &self,
        certs: Arc<crate::tls::CertHolder>,
    ) -> Result<Arc<rustls::ServerConfig>> {
        let hints = vec![rustls::DistinguishedName::from(
            x509_subject(self.root()).context("root subject")?,
        )];
        crate::tls::server_config(certs, hints)
    }

    /// The TLS certificate and key to serve: the configured files, or the
    /// certificate the issuing CA issued for this service (kept in
    /// `<data_dir>/tls`), re-issued first if it is missing or has less
    /// than `tls.renew_before_secs` left.
    pub fn tls_load(&self, config: &Config) -> Result<TlsMaterial> {
        let (cert_path, key_path, self_issued) = match (&config.tls.cert, &config.tls.key) {
            (Some(c), Some(k)) => (c.clone(), k.clone(), false),
            _ => {
                let dir = config.data_dir.join("tls");
                let (c, k) = (dir.join("server.pem"), dir.join("server.key.pem"));
                if needs_renewal(&c, Duration::from_secs(config.tls.renew_before_secs))? {
                    self.issue_tls(&dir, config)?;
                }
                (c, k, true)
            }
        };
        let chain = pemfile::read_certs(&cert_path)?;
        let key = PrivateKeyDer::from_pem_file(&key_path)
            .with_context(|| format!("reading key {}", key_path.display()))?;
        let not_after = match chain.first() {
            Some(leaf) => not_after(leaf)
                .with_context(|| format!("TLS certificate {}", cert_path.display()))?,
            None => anyhow::bail!("{} holds no certificate", cert_path.display()),
        };
        Ok(TlsMaterial {
            chain,
            key,
            not_after,
            self_issued,
        })
    }

    /// The root's and each issuing CA's `notAfter` (unix seconds), the
    /// root as `root`.
    pub fn ca_expiries(&self) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        if let Ok(t) = not_after(self.root()) {
            out.push(("root".to_owned(), t));
        }
        for (id, ca) in self.all() {
            if let Ok(t) = not_after(ca.certificate().der()) {
                out.push((id.to_owned(), t));
            }
        }
        out
    }

    fn issue_tls(&self, dir: &Path, config: &Config) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        let key = FileSigner::generate(KeyAlgorithm::EcdsaP256)?;
        let mut ips: Vec<IpAddr> =
            vec![[127, 0, 0, 1].into(), std::net::Ipv6Addr::LOCALHOST.into()];
        if !config.listen.ip().is_unspecified() && !ips.contains(&config.listen.ip()) {
            ips.push(config.listen.ip());
        }
        let host = url::Url::parse(&config.public_base())
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .filter(|h| h.parse::<IpAddr>().is_err());
        let mut dns = vec!["localhost"];
        if let Some(h) = host.as_deref() {
            dns.push(h);
        }
        let issued = self.issuing.issue_tls_server(
            "govtrust service",
            &dns,
            &ips,
            key.spki_der().to_vec(),
            Validity::from_now(Duration::from_secs(config.tls.validity_secs)),
        )?;
        let key_path = dir.join("server.key.pem");
        let _ = std::fs::remove_file(&key_path);
        key.save(&key_path, None)?;
        crate::cadir::write_atomic(
            &dir.join("server.pem"),
            pemfile::chain_pem(&issued.chain).as_bytes(),
        )?;
        Ok(())
    }
}

/// The TLS certificate and key the service serves.
pub struct TlsMaterial {
    /// Server certificate first.
    pub chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// Its key.
    pub key: PrivateKeyDer<'static>,
    /// The server certificate's `notAfter`, unix seconds.
    pub not_after: i64,
    /// Issued by this service (and so renewed by it), not configured files.
    pub self_issued: bool,
}

/// A certificate's `notAfter`, unix seconds.
pub fn not_after(der: &[u8]) -> Result<i64> {
    let (_, parsed) =
        x509_parser::parse_x509_certificate(der).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(parsed.validity().not_after.timestamp())
}

/// Whether the TLS certificate at `path` is missing or has less than
/// `renew_before` left.
fn needs_renewal(path: &Path, renew_before: Duration) -> Result<bool> {
    if !path.exists() {
        return Ok(true);
    }
    let cert = pemfile::read_certs(path)?;
    let Some(leaf) = cert.first() else {
        return Ok(true);
    };
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let left = parsed.validity().not_after.timestamp() - OffsetDateTime::now_utc().unix_timestamp();
    Ok(left < i64::try_from(renew_before.as_secs()).unwrap_or(i64::MAX))
}

fn x509_subject(cert: &[u8]) -> Result<Vec<u8>> {
    let (_, parsed) =
        x509_parser::parse_x509_certificate(cert).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(parsed.subject().as_raw().to_vec())
}
