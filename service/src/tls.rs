//! TLS for the service: rustls server configuration, and the client
//! certificate policy.
//!
//! The TLS layer asks every client for a certificate but decides nothing
//! about it beyond proof of key possession (the handshake signature).
//! Whether the chain is an agency's enrollment client — root, EKU ARC.3,
//! revocation, authority record — is decided per request by
//! [`crate::auth`], with the same verifier code as everything else, so a
//! rejected certificate yields a JSON error naming the failed check rather
//! than an opaque handshake failure. Endpoints that need an agency must use
//! the `Agency` extractor; public endpoints ignore the certificate.

use std::sync::{Arc, RwLock};

use anyhow::{Context, Result};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};

/// The server certificate in use, swappable while the service runs: every
/// new TLS handshake takes the current one, established connections keep
/// the one they were made with.
#[derive(Debug)]
pub struct CertHolder {
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertHolder {
    /// A holder serving `chain` (server certificate first) with `key`.
    pub fn new(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<Self> {
        Ok(CertHolder {
            current: RwLock::new(certified_key(chain, key)?),
        })
    }

    /// Serves `chain` and `key` from the next handshake on.
    pub fn replace(
        &self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<()> {
        let new = certified_key(chain, key)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = new;
        Ok(())
    }

    /// The certificate (leaf) served now.
    pub fn leaf(&self) -> Option<CertificateDer<'static>> {
        self.get().cert.first().cloned()
    }

    fn get(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl ResolvesServerCert for CertHolder {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<CertifiedKey>> {
    if chain.is_empty() {
        anyhow::bail!("TLS server certificate chain is empty");
    }
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .context("TLS server key type is not supported")?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        // The key type cannot tell its public key: nothing to compare.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(e) => {
            return Err(anyhow::Error::new(e).context("TLS server certificate and key do not match"))
        }
    }
    Ok(Arc::new(certified))
}

/// Builds the server configuration: the certificate is whatever `certs`
/// holds at each handshake; client certificates are requested, with
/// `root_subjects` as the CA hints, and checked later per request.
pub fn server_config(
    certs: Arc<CertHolder>,
    root_subjects: Vec<DistinguishedName>,
) -> Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(DeferredClientCertVerifier {
        hints: root_subjects,
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(certs);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Requests a client certificate, verifies the handshake signature made
/// with its key, and leaves the chain decision to the request handler.
#[derive(Debug)]
struct DeferredClientCertVerifier {
    hints: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for DeferredClientCertVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Deliberately deferred: see the module documentation. The peer's
        // possession of the key is still proven by the signature checks below.
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
