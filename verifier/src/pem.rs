//! Reading certificates given as PEM or DER.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::Error;

/// All certificates in `bytes`: every `CERTIFICATE` block of a PEM file, or
/// a single DER certificate if the input is not PEM.
pub fn certificates(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, Error> {
    if !bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        if bytes.first() == Some(&0x30) {
            return Ok(vec![CertificateDer::from(bytes.to_vec())]);
        }
        return Err(Error::malformed("certificate file", "neither PEM nor DER"));
    }
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::malformed("certificate PEM", format!("{e:?}")))?;
    if certs.is_empty() {
        return Err(Error::malformed("certificate PEM", "no CERTIFICATE block"));
    }
    Ok(certs)
}
