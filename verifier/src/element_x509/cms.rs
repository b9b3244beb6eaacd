//! The strict CMS profile of an `io.element.x509` signature value (see the
//! [parent module](super) for the profile): PEM and DER decoding, every
//! algorithm parameter, the detached content and the one signer identified
//! by its subjectKeyIdentifier.
//!
//! It exists so that structure is settled before any certificate or
//! signature is looked at: [`parse_cms_pem`] validates nothing
//! cryptographic, it only turns an untrusted blob into a [`CmsSignature`].

use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{SignerIdentifier, SignerInfo};
use der::asn1::ObjectIdentifier;
use der::{Decode, Encode, Tagged};
use pkcs1::RsaPssParams;
use rustls_pki_types::CertificateDer;
use serde::Serialize;

use super::cert::{parse_cert, subject_key_id};
use super::signed_data::{SignedDataRawCerts, ID_SIGNED_DATA};
use super::{MAX_CMS_PEM_BYTES, PEM_LABEL};
use crate::event::MAX_CHAIN_LEN;
use crate::Error;

const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ID_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const ID_RSASSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const ID_MGF1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.8");

/// The signature schemes of the format (matrix-rust-sdk's
/// `X509SignatureScheme`): only RSASSA-PSS with SHA-512 exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum X509SignatureScheme {
    /// RSASSA-PSS, SHA-512, MGF1-SHA-512, salt length 64 (RFC 8017 §8.1).
    RsaPssSha512,
}

/// A CMS signature value that passed the profile: the signature and the
/// certificates, signer first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CmsSignature {
    /// The RSASSA-PSS signature bytes.
    pub signature: Vec<u8>,
    /// The signer certificate (found by its SKI), then the other included
    /// certificates in the order of the (DER-sorted) `certificates` SET.
    pub chain: Vec<CertificateDer<'static>>,
    /// The signer certificate's subjectKeyIdentifier.
    pub signer_key_id: Vec<u8>,
    /// The scheme (always [`X509SignatureScheme::RsaPssSha512`]).
    pub scheme: X509SignatureScheme,
}

/// Decodes a PEM `CMS` signature value and enforces the profile (see the
/// module documentation). Checks structure only: no certificate or
/// signature is validated here.
pub fn parse_cms_pem(pem: &str) -> Result<CmsSignature, Error> {
    if pem.len() > MAX_CMS_PEM_BYTES {
        return Err(Error::CmsMalformed(format!(
            "{} bytes, above the limit of {MAX_CMS_PEM_BYTES}",
            pem.len()
        )));
    }
    let (label, der) = der::pem::decode_vec(pem.as_bytes())
        .map_err(|e| Error::CmsMalformed(format!("PEM: {e}")))?;
    if label != PEM_LABEL {
        return Err(Error::CmsMalformed(format!(
            "PEM label is {label:?}, not {PEM_LABEL:?}"
        )));
    }
    parse_cms_der(&der)
}

/// [`parse_cms_pem`] for the DER `ContentInfo`.
pub fn parse_cms_der(der: &[u8]) -> Result<CmsSignature, Error> {
    let malformed = |what: &str, e: der::Error| Error::CmsMalformed(format!("{what}: {e}"));
    let info = ContentInfo::from_der(der).map_err(|e| malformed("ContentInfo", e))?;
    if info.content_type != ID_SIGNED_DATA {
        return Err(Error::CmsMalformed(format!(
            "content type {} is not id-signedData",
            info.content_type
        )));
    }
    let data: SignedDataRawCerts = info
        .content
        .decode_as()
        .map_err(|e| malformed("SignedData", e))?;
    if data.version != CmsVersion::V3 {
        return Err(Error::CmsMalformed(format!(
            "SignedData version {:?}, the profile requires 3",
            data.version
        )));
    }
    let digests: Vec<_> = data.digest_algorithms.iter().collect();
    match digests.as_slice() {
        [d] => check_sha512(d, "digestAlgorithms")?,
        _ => {
            return Err(Error::CmsAlgorithm(format!(
                "{} digest algorithms, the profile lists exactly sha512",
                digests.len()
            )))
        }
    }
    if data.encap_content_info.econtent_type != ID_DATA {
        return Err(Error::CmsMalformed(format!(
            "encapsulated content type {} is not id-data",
            data.encap_content_info.econtent_type
        )));
    }
    if data.encap_content_info.econtent.is_some() {
        return Err(Error::CmsNotDetached);
    }
    if data.crls.is_some() {
        return Err(Error::CmsCrlsPresent);
    }
    let certificates = data
        .certificates
        .as_ref()
        .ok_or_else(|| Error::CmsMalformed("no certificates".into()))?;
    if certificates.is_empty() {
        return Err(Error::CmsMalformed("empty certificate set".into()));
    }
    if certificates.len() > MAX_CHAIN_LEN {
        return Err(Error::CmsMalformed(format!(
            "{} certificates, at most {MAX_CHAIN_LEN} allowed",
            certificates.len()
        )));
    }
    let mut certs = Vec::with_capacity(certificates.len());
    for choice in certificates.iter() {
        // CertificateChoices: only `certificate Certificate` (a SEQUENCE);
        // the tagged alternatives (attribute and other certificates) are
        // outside the profile.
        if choice.tag() != der::Tag::Sequence {
            return Err(Error::CmsMalformed("a certificate is not X.509".into()));
        }
        let der = choice.to_der().map_err(|e| malformed("certificate", e))?;
        parse_cert(&der, "CMS certificate")?;
        certs.push(CertificateDer::from(der));
    }
    let signers: Vec<&SignerInfo> = data.signer_infos.0.iter().collect();
    let [signer] = signers.as_slice() else {
        return Err(Error::CmsSignerCount(signers.len()));
    };
    if signer.version != CmsVersion::V3 {
        return Err(Error::CmsMalformed(format!(
            "SignerInfo version {:?}, the profile requires 3",
            signer.version
        )));
    }
    if signer.signed_attrs.is_some() {
        return Err(Error::CmsSignedAttributes);
    }
    if signer.unsigned_attrs.is_some() {
        return Err(Error::CmsMalformed(
            "the SignerInfo has unsigned attributes".into(),
        ));
    }
    check_sha512(&signer.digest_alg, "SignerInfo digestAlgorithm")?;
    check_pss_sha512(&signer.signature_algorithm)?;
    let SignerIdentifier::SubjectKeyIdentifier(ski) = &signer.sid else {
        return Err(Error::CmsSignerId(
            "the signer is identified by issuer and serial, not by subjectKeyIdentifier".into(),
        ));
    };
    let ski = ski.0.as_bytes().to_vec();
    let mut matching = Vec::new();
    for (index, der) in certs.iter().enumerate() {
        if subject_key_id(der)?.as_deref() == Some(ski.as_slice()) {
            matching.push(index);
        }
    }
    let [index] = matching.as_slice() else {
        return Err(Error::CmsSignerId(format!(
            "{} included certificates have the signer's subjectKeyIdentifier, exactly one must",
            matching.len()
        )));
    };
    let signer_cert = certs.remove(*index);
    certs.insert(0, signer_cert);
    Ok(CmsSignature {
        signature: signer.signature.as_bytes().to_vec(),
        chain: certs,
        signer_key_id: ski,
        scheme: X509SignatureScheme::RsaPssSha512,
    })
}

/// The AlgorithmIdentifier must be sha512 with absent or NULL parameters.
fn check_sha512(alg: &spki_alg::AlgorithmIdentifierOwned, what: &'static str) -> Result<(), Error> {
    if alg.oid != ID_SHA512 {
        return Err(Error::CmsAlgorithm(format!(
            "{what} {} is not sha512",
            alg.oid
        )));
    }
    match &alg.parameters {
        None => Ok(()),
        Some(p) if p.is_null() => Ok(()),
        Some(_) => Err(Error::CmsAlgorithm(format!(
            "{what} sha512 has parameters other than NULL"
        ))),
    }
}

/// The signature AlgorithmIdentifier must be RSASSA-PSS with hash sha512,
/// MGF1 over sha512, salt length 64 and trailer field 1.
fn check_pss_sha512(alg: &spki_alg::AlgorithmIdentifierOwned) -> Result<(), Error> {
    if alg.oid != ID_RSASSA_PSS {
        return Err(Error::CmsAlgorithm(format!(
            "signature algorithm {} is not RSASSA-PSS",
            alg.oid
        )));
    }
    let params: RsaPssParams<'_> = alg
        .parameters
        .as_ref()
        .ok_or_else(|| Error::CmsAlgorithm("RSASSA-PSS without parameters".into()))?
        .decode_as()
        .map_err(|e| Error::CmsAlgorithm(format!("RSASSA-PSS parameters: {e}")))?;
    let sha512_ref = |a: &spki_alg::AlgorithmIdentifierRef<'_>| {
        a.oid == ID_SHA512 && a.parameters.as_ref().is_none_or(|p| p.is_null())
    };
    if !sha512_ref(&params.hash) {
        return Err(Error::CmsAlgorithm(format!(
            "RSASSA-PSS hash {} is not sha512",
            params.hash.oid
        )));
    }
    if params.mask_gen.oid != ID_MGF1 {
        return Err(Error::CmsAlgorithm(format!(
            "RSASSA-PSS mask generation {} is not MGF1",
            params.mask_gen.oid
        )));
    }
    if !params.mask_gen.parameters.as_ref().is_some_and(sha512_ref) {
        return Err(Error::CmsAlgorithm(
            "RSASSA-PSS MGF1 hash is not sha512".into(),
        ));
    }
    if params.salt_len != 64 {
        return Err(Error::CmsAlgorithm(format!(
            "RSASSA-PSS salt length {}, the profile requires 64",
            params.salt_len
        )));
    }
    if params.trailer_field != pkcs1::TrailerField::BC {
        return Err(Error::CmsAlgorithm(
            "RSASSA-PSS trailer field is not 1".into(),
        ));
    }
    Ok(())
}

/// The AlgorithmIdentifier types cms uses (re-exported through x509-cert).
mod spki_alg {
    pub use cms::cert::x509::spki::{AlgorithmIdentifierOwned, AlgorithmIdentifierRef};
}
