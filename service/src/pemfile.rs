//! Reading and writing PEM files at the CLI's edge.

use std::path::Path;

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use govtrust_verifier::CertificateDer;

/// PEM-encodes DER with a label, 64 columns.
pub fn encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// One certificate as PEM.
pub fn cert_pem(cert: &CertificateDer<'_>) -> String {
    encode("CERTIFICATE", cert)
}

/// A chain as concatenated PEM, leaf first.
pub fn chain_pem(chain: &[CertificateDer<'_>]) -> String {
    chain.iter().map(|c| cert_pem(c)).collect()
}

/// What an mTLS client presents (reqwest's `Identity::from_pem`, the
/// agency's `ServiceClient`): its certificate chain, PEM, followed by its
/// unencrypted PKCS#8 key.
pub fn client_identity(
    chain_pem: &str,
    key: &govtrust_pki::signer::FileSigner,
) -> Result<zeroize::Zeroizing<String>> {
    let key = key.to_pem(None)?;
    Ok(zeroize::Zeroizing::new(format!(
        "{chain_pem}{}",
        key.as_str()
    )))
}

/// Reads all certificates (PEM or DER) from a file.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    govtrust_verifier::pem::certificates(&bytes).with_context(|| format!("{}", path.display()))
}

/// Reads exactly one certificate from a file.
pub fn read_one_cert(path: &Path) -> Result<CertificateDer<'static>> {
    let mut certs = read_certs(path)?;
    if certs.len() != 1 {
        bail!(
            "{} holds {} certificates, expected one",
            path.display(),
            certs.len()
        );
    }
    Ok(certs.remove(0))
}
