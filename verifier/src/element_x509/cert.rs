//! Certificate field readers that the CMS profile parser and the signer
//! checks share: strict DER parsing and the subjectKeyIdentifier, which
//! identifies the signer inside the CMS and the root in the key ID.

use x509_parser::prelude::{FromDer, X509Certificate};

use crate::Error;

/// A certificate's subjectKeyIdentifier, if it has one.
pub(super) fn subject_key_id(der: &[u8]) -> Result<Option<Vec<u8>>, Error> {
    let cert = parse_cert(der, "CMS certificate")?;
    for ext in cert.extensions() {
        if let x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(id) =
            ext.parsed_extension()
        {
            return Ok(Some(id.0.to_vec()));
        }
    }
    Ok(None)
}

/// Parses one certificate, refusing trailing data.
pub(super) fn parse_cert<'a>(
    der: &'a [u8],
    what: &'static str,
) -> Result<X509Certificate<'a>, Error> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| Error::malformed(what, e))?;
    if !rest.is_empty() {
        return Err(Error::malformed(what, "trailing data"));
    }
    Ok(cert)
}
