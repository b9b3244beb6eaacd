//! The RFC 5652 `SignedData` structure of an `io.element.x509` signature,
//! with the certificates kept as raw DER.
//!
//! It exists apart from the profile parser ([`super::cms`]) because it is
//! the one ASN.1 type both directions share: the verifier decodes it, and
//! the issuer (`govtrust-pki`) encodes signatures with it and
//! [`content_info_der`].

use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{DigestAlgorithmIdentifiers, EncapsulatedContentInfo, SignerInfos};
use der::asn1::{Any, ObjectIdentifier, SetOfVec};
use der::Encode;

/// id-signedData, the content type of the `ContentInfo`.
pub(super) const ID_SIGNED_DATA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");

/// RFC 5652 `SignedData` with the certificates and CRLs kept as raw DER.
///
/// This is the one structure written here rather than taken from the cms
/// crate: cms decodes every included certificate as an x509-cert
/// `Certificate`, whose OIDs (const-oid) hold only 32-bit arcs, so it
/// cannot decode a govtrust issuing CA certificate (its ARC.11 extension ID
/// lies under `2.25.<128-bit UUID>`). Every other component is cms's own
/// type; the certificates are decoded by x509-parser and rustls-webpki, as
/// everywhere else in the verifier. The encoding is identical to cms's
/// `SignedData`.
#[derive(Clone, Debug, Eq, PartialEq, der::Sequence)]
pub struct SignedDataRawCerts {
    /// CMSVersion (the profile: 3).
    pub version: CmsVersion,
    /// digestAlgorithms (the profile: { sha512 }).
    pub digest_algorithms: DigestAlgorithmIdentifiers,
    /// encapContentInfo (the profile: id-data, no eContent).
    pub encap_content_info: EncapsulatedContentInfo,
    /// certificates `[0] IMPLICIT CertificateSet`, each element raw.
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    pub certificates: Option<SetOfVec<Any>>,
    /// crls `[1] IMPLICIT RevocationInfoChoices`, each element raw (the
    /// profile: absent).
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub crls: Option<SetOfVec<Any>>,
    /// signerInfos (the profile: exactly one).
    pub signer_infos: SignerInfos,
}

/// The `ContentInfo` (id-signedData) DER of `data`.
pub fn content_info_der(data: &SignedDataRawCerts) -> Result<Vec<u8>, der::Error> {
    ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(data)?,
    }
    .to_der()
}
