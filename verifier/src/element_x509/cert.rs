//! Certificate field readers that the CMS profile parser and the signer
//! checks share: strict DER parsing and the subjectKeyIdentifier, which
//! identifies the signer inside the CMS and the root in the key ID.

pub(super) use crate::profile::parse_cert;
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
