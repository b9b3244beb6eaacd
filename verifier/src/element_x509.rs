//! Interoperability with Element's experimental `io.element.x509` identity
//! verification (matrix-rust-sdk `crates/matrix-sdk-crypto/src/x509/`).
//!
//! # The format
//!
//! A user's cross-signing **master key** object gets one more entry in its
//! `signatures` map, under the user's own Matrix ID:
//!
//! ```json
//! "signatures": { "@alice:example.org": {
//!     "ed25519:…": "…",
//!     "io.element.x509:<unpadded base64 SKI>": "-----BEGIN CMS-----\n…\n-----END CMS-----\n"
//! } }
//! ```
//!
//! - the **key ID** is `io.element.x509:` followed by the unpadded standard
//!   base64 of the subjectKeyIdentifier of the CA that issued the top
//!   certificate of the chain (for govtrust: the pinned root's SKI);
//! - the **signed message** is the canonical JSON of the master key object
//!   without `signatures` and `unsigned` (the Matrix signing rules);
//! - the **value** is a PEM (`-----BEGIN CMS-----`) CMS `ContentInfo`
//!   holding a `SignedData` (RFC 5652) with this exact profile, which
//!   [`parse_cms_pem`] enforces:
//!   - `SignedData` version 3, `digestAlgorithms` = { sha512 };
//!   - `encapContentInfo` = id-data with **no** `eContent` (detached);
//!   - `certificates` = the signer certificate and its intermediates (at
//!     most [`MAX_CHAIN_LEN`](crate::event::MAX_CHAIN_LEN) in all), X.509
//!     only; **no** `crls`;
//!   - exactly **one** `SignerInfo`, version 3, identified by
//!     subjectKeyIdentifier, **no** signed and no unsigned attributes,
//!     digest sha512, signature RSASSA-PSS with SHA-512, MGF1-SHA-512,
//!     salt length 64 and trailer field 1. Every parameter is checked in the
//!     `AlgorithmIdentifier`; the signature itself is checked with ring's
//!     `RSA_PSS_2048_8192_SHA512`, which fixes the salt length to 64.
//!
//! # What govtrust accepts
//!
//! [`ElementX509Verifier::verify_master_key`] accepts a signature only if,
//! besides the CMS profile, the signer certificate is a govtrust
//! **identity-signing** certificate (docs/profile.md §5.7) that validates to
//! the pinned root under exactly the path rules, CRL policy and reject
//! reasons of attestations ([`crate::path::validate_path`], EKU ARC.5 on
//! every non-root certificate that has an EKU); its SAN is exactly the
//! `matrix:u/` URI of the master key's user; its issuing CA lists ARC.5 and
//! permits the user's server (ARC.11); the key ID names the root the chain
//! leads to; and the RSASSA-PSS signature verifies over the canonical JSON.
//!
//! # Canonical JSON
//!
//! The verifier computes the signed bytes itself ([`signing_bytes`],
//! [`canonical_json`]) from the object as received, so that a caller cannot
//! pass bytes that differ from the object it then trusts. It does not use
//! ruma (the api crate does): ruma would pull a large dependency tree into a
//! crate that must stay small and wasm-buildable, and canonical JSON over a
//! `serde_json::Value` is a few lines (sorted keys, no insignificant
//! whitespace, integers in ±(2^53−1), no floats, serde_json's string
//! escaping — which is the spec's). Callers that already hold the signed
//! bytes (e.g. from ruma) can use [`ElementX509Verifier::verify_signature`].
//!
//! # The matrix-rust-sdk adapter
//!
//! [`RawX509Verifier`] has the shape of matrix-rust-sdk's trait of the same
//! name (`fn verify(&self, message: &[u8], signature: &RawX509Signature) ->
//! bool`, `Debug + Send + Sync`); [`GovtrustRawX509Verifier`] implements it
//! with the rules above, so an application embedding matrix-sdk can wrap it
//! in a one-line `impl matrix_sdk_crypto::x509::RawX509Verifier`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    DigestAlgorithmIdentifiers, EncapsulatedContentInfo, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{Any, ObjectIdentifier, SetOfVec};
use der::{Decode, Encode, Tagged};
use pkcs1::RsaPssParams;
use rustls_pki_types::{CertificateDer, UnixTime};
use serde::Serialize;
use serde_json::{Map, Value};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::event::MAX_CHAIN_LEN;
use crate::path::{validate_path, PathOptions, TrustAnchors};
use crate::signature::PROFILE_ALGORITHMS;
use crate::{oid, profile, AuthorityRecord, CrlPolicy, CrlSet, Ed25519Key, Error, UserId};

/// Prefix of the key ID of an `io.element.x509` signature.
pub const KEY_ID_PREFIX: &str = "io.element.x509:";
/// PEM label of the signature value.
pub const PEM_LABEL: &str = "CMS";
/// Largest signature value (PEM text) the verifier decodes: four
/// certificates of [`crate::event::MAX_CERT_BYTES`] plus the CMS wrapping,
/// in base64.
pub const MAX_CMS_PEM_BYTES: usize = 32 * 1024;
/// Largest master key object (JSON) the verifier reads: the Matrix limit of
/// a whole event.
pub const MAX_MASTER_KEY_BYTES: usize = 65_536;
/// Human name of the identity-signing EKU, as reject reasons print it.
pub const EKU_NAME: &str = "Matrix identity signing (io.element.x509) (ARC.5)";
/// Largest integer canonical JSON allows (2^53 − 1).
const CANONICAL_INT_MAX: i64 = (1 << 53) - 1;

const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ID_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const ID_RSASSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const ID_MGF1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.8");
/// rsaEncryption (1.2.840.113549.1.1.1), DER content octets.
const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

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

/// A certificate's subjectKeyIdentifier, if it has one.
fn subject_key_id(der: &[u8]) -> Result<Option<Vec<u8>>, Error> {
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

fn parse_cert<'a>(der: &'a [u8], what: &'static str) -> Result<X509Certificate<'a>, Error> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| Error::malformed(what, e))?;
    if !rest.is_empty() {
        return Err(Error::malformed(what, "trailing data"));
    }
    Ok(cert)
}

/// Canonical JSON (Matrix specification, appendix "Canonical JSON") of a
/// value: object keys sorted by code point, no insignificant whitespace,
/// integers only, in ±(2^53 − 1), strings escaped as serde_json does
/// (`\"`, `\\`, the short escapes and `\u00xx` for other control
/// characters, everything else as UTF-8).
pub fn canonical_json(value: &Value) -> Result<String, Error> {
    let mut out = String::new();
    write_canonical(value, &mut out, 0)?;
    Ok(out)
}

/// Nesting bound for [`canonical_json`] (serde_json parses at most 128).
const MAX_DEPTH: usize = 128;

fn write_canonical(value: &Value, out: &mut String, depth: usize) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Err(Error::MasterKeyInvalid("JSON nested too deeply".into()));
    }
    let quote = |s: &str, out: &mut String| -> Result<(), Error> {
        let quoted = serde_json::to_string(s)
            .map_err(|e| Error::MasterKeyInvalid(format!("string: {e}")))?;
        out.push_str(&quoted);
        Ok(())
    };
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match n.as_i64() {
            Some(i) if (-CANONICAL_INT_MAX..=CANONICAL_INT_MAX).contains(&i) => {
                out.push_str(&i.to_string())
            }
            _ => {
                return Err(Error::MasterKeyInvalid(format!(
                    "{n} is not an integer canonical JSON allows"
                )))
            }
        },
        Value::String(s) => quote(s, out)?,
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out, depth + 1)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Sorting UTF-8 byte strings sorts by code point; sorted here
            // whatever order serde_json's map keeps.
            let sorted: BTreeMap<&str, &Value> = map.iter().map(|(k, v)| (k.as_str(), v)).collect();
            out.push('{');
            for (i, (key, item)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                quote(key, out)?;
                out.push(':');
                write_canonical(item, out, depth + 1)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

/// The bytes the Matrix signing rules sign for `object`: the canonical JSON
/// of the object without `signatures` and `unsigned`.
pub fn signing_bytes(object: &Map<String, Value>) -> Result<Vec<u8>, Error> {
    let mut stripped = object.clone();
    stripped.remove("signatures");
    stripped.remove("unsigned");
    Ok(canonical_json(&Value::Object(stripped))?.into_bytes())
}

/// The key ID for a root (or any CA) key identifier:
/// `io.element.x509:<unpadded base64>`.
pub fn key_id_for(ca_key_identifier: &[u8]) -> String {
    format!(
        "{KEY_ID_PREFIX}{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(ca_key_identifier)
    )
}

/// What a valid signer certificate proves, before the signature itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifiedSigner {
    /// The user the certificate's SAN names.
    pub user_id: UserId,
    /// The official authority record (the verified badge).
    pub authority: AuthorityRecord,
    /// Signer certificate serial, lower-case hex.
    pub serial: String,
    /// Signer certificate notAfter, seconds since the Unix epoch.
    pub not_after: i64,
    /// Subject of the issuing CA, RFC 4514.
    pub issuer: String,
    /// Subject of the pinned root, RFC 4514.
    pub root: String,
    /// The key ID the chain calls for (`io.element.x509:` + root SKI).
    pub key_id: String,
}

/// A master key whose `io.element.x509` signature passed every rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifiedIdentitySignature {
    /// The user, the signer certificate and the authority record.
    pub signer: VerifiedSigner,
    /// The master key (its one `ed25519:` key) that is now vouched for.
    pub master_key: Ed25519Key,
}

/// Verifies `io.element.x509` signatures against pinned govtrust roots under
/// a CRL policy.
#[derive(Debug)]
pub struct ElementX509Verifier {
    anchors: TrustAnchors,
    crl_policy: CrlPolicy,
}

impl ElementX509Verifier {
    /// A verifier that trusts `anchors` and applies `crl_policy`.
    pub fn new(anchors: TrustAnchors, crl_policy: CrlPolicy) -> Self {
        ElementX509Verifier {
            anchors,
            crl_policy,
        }
    }

    /// Verifies the `io.element.x509` signature of a cross-signing master
    /// key object (the JSON as `/keys/query` returns it under
    /// `master_keys[user]`) for `user`, at `now`, with `crls`.
    ///
    /// Order of the checks (the first failure is the reason):
    /// the object is JSON ≤ [`MAX_MASTER_KEY_BYTES`] (`master_key_invalid`);
    /// its `user_id` is `user` (`user_mismatch`); `usage` lists `master`
    /// and `keys` holds exactly one `ed25519:<k>` = `k`
    /// (`master_key_invalid`); `signatures[user]` has an
    /// `io.element.x509:*` entry (`identity_signature_missing`); then
    /// [`ElementX509Verifier::verify_signature`] over [`signing_bytes`].
    /// If several `io.element.x509` entries exist, the first that verifies
    /// wins; if none does, the first one's reason is returned.
    pub fn verify_master_key(
        &self,
        user: &UserId,
        master_key_json: &[u8],
        crls: &CrlSet,
        now: UnixTime,
    ) -> Result<VerifiedIdentitySignature, Error> {
        if master_key_json.len() > MAX_MASTER_KEY_BYTES {
            return Err(Error::MasterKeyInvalid(format!(
                "{} bytes, above the limit of {MAX_MASTER_KEY_BYTES}",
                master_key_json.len()
            )));
        }
        let object: Map<String, Value> = serde_json::from_slice(master_key_json)
            .map_err(|e| Error::MasterKeyInvalid(format!("not a JSON object: {e}")))?;
        let found = object.get("user_id").and_then(Value::as_str);
        if found != Some(user.as_str()) {
            return Err(Error::UserMismatch {
                expected: user.to_string(),
                found: found.unwrap_or("(no user_id)").to_owned(),
            });
        }
        let is_master = object
            .get("usage")
            .and_then(Value::as_array)
            .is_some_and(|u| u.iter().any(|v| v.as_str() == Some("master")));
        if !is_master {
            return Err(Error::MasterKeyInvalid(
                "usage does not list \"master\"".into(),
            ));
        }
        let master_key = master_key_of(&object)?;
        let signatures: Vec<(&String, &Value)> = object
            .get("signatures")
            .and_then(Value::as_object)
            .and_then(|s| s.get(user.as_str()))
            .and_then(Value::as_object)
            .map(|sigs| {
                sigs.iter()
                    .filter(|(id, _)| id.starts_with(KEY_ID_PREFIX))
                    .collect()
            })
            .unwrap_or_default();
        if signatures.is_empty() {
            return Err(Error::IdentitySignatureMissing);
        }
        let message = signing_bytes(&object)?;
        let mut first_error = None;
        for (key_id, value) in signatures {
            let result = match value.as_str() {
                Some(pem) => self.verify_signature(user, key_id, &message, pem, crls, now),
                None => Err(Error::CmsMalformed("the signature is not a string".into())),
            };
            match result {
                Ok(signer) => return Ok(VerifiedIdentitySignature { signer, master_key }),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or(Error::IdentitySignatureMissing))
    }

    /// Verifies one signature value (`cms_pem`, published under `key_id`)
    /// over `message` — the signed bytes the caller computed, e.g. with
    /// ruma's canonical JSON — for `user`.
    ///
    /// Order: the CMS profile ([`parse_cms_pem`]: `cms_*` reasons); the
    /// signer certificate's EKU, if present, is exactly ARC.5
    /// (`wrong_eku`); path validation to a pinned root and revocation of
    /// every certificate on the path under the CRL policy, exactly as for
    /// attestations (`unknown_issuer`, `bad_signature`, `expired`,
    /// `revoked`, `crl_stale`, …); the signer certificate: EKU present
    /// (`wrong_eku`), key usage critical digitalSignature only
    /// (`wrong_key_usage`), not a CA (`leaf_is_ca`), RSA key
    /// (`key_not_rsa`), SAN exactly the user's `matrix:u/` URI
    /// (`san_invalid`, `user_mismatch`), authority record
    /// (`authority_record_invalid`); the issuing CA lists ARC.5
    /// (`issuer_eku_missing`) and permits the user's server
    /// (`server_not_permitted`); `key_id` names the root's SKI
    /// (`key_id_mismatch`); the RSASSA-PSS-SHA512 signature verifies
    /// (`identity_signature_invalid`).
    pub fn verify_signature(
        &self,
        user: &UserId,
        key_id: &str,
        message: &[u8],
        cms_pem: &str,
        crls: &CrlSet,
        now: UnixTime,
    ) -> Result<VerifiedSigner, Error> {
        let cms = parse_cms_pem(cms_pem)?;
        let signer = self.verify_signer(user, &cms.chain, &cms.signature, message, crls, now)?;
        if signer.key_id != key_id {
            return Err(Error::KeyIdMismatch {
                expected: signer.key_id,
                found: key_id.to_owned(),
            });
        }
        Ok(signer)
    }

    /// Checks a signer chain (signer certificate first) for `user` and the
    /// RSASSA-PSS-SHA512 `signature` over `message`: every rule of
    /// [`ElementX509Verifier::verify_signature`] except the CMS profile and
    /// the key ID, which the caller does not have in the matrix-rust-sdk
    /// adapter shape.
    pub fn verify_signer(
        &self,
        user: &UserId,
        chain: &[CertificateDer<'_>],
        signature: &[u8],
        message: &[u8],
        crls: &CrlSet,
        now: UnixTime,
    ) -> Result<VerifiedSigner, Error> {
        let (signer, leaf_der) = self.check_signer_certificate(user, chain, crls, now)?;
        let leaf = parse_cert(leaf_der, "identity-signing certificate")?;
        let rsa_public_key = &leaf.public_key().subject_public_key.data;
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PSS_2048_8192_SHA512,
            rsa_public_key.as_ref(),
        )
        .verify(message, signature)
        .map_err(|_| Error::IdentitySignatureInvalid)?;
        Ok(signer)
    }

    /// Every rule about the signer chain (path, CRLs, profile of the signer
    /// certificate and of its issuing CA) without any signature over a
    /// message: what an issuer self-checks a fresh identity-signing
    /// certificate with. Returns the verdict and the signer certificate.
    pub fn check_signer_certificate<'c>(
        &self,
        user: &UserId,
        chain: &'c [CertificateDer<'c>],
        crls: &CrlSet,
        now: UnixTime,
    ) -> Result<(VerifiedSigner, &'c CertificateDer<'c>), Error> {
        let (leaf_der, intermediates) = chain
            .split_first()
            .ok_or_else(|| Error::malformed("chain", "no certificate"))?;
        if chain.len() > MAX_CHAIN_LEN {
            return Err(Error::malformed("chain", "too many certificates"));
        }
        let leaf = parse_cert(leaf_der, "identity-signing certificate")?;
        let eku = leaf
            .extended_key_usage()
            .map_err(|e| Error::malformed("extended key usage", e))?;
        let wrong_eku = Error::WrongEku { expected: EKU_NAME };
        if let Some(eku) = &eku {
            if !only_identity_signing(eku.value) {
                return Err(wrong_eku);
            }
        }
        let path = validate_path(
            &self.anchors,
            leaf_der,
            intermediates,
            &PathOptions {
                algorithms: PROFILE_ALGORITHMS,
                eku: Some(oid::EKU_IDENTITY_SIGNING),
                time: now,
                crls,
                crl_policy: self.crl_policy,
            },
        )?;
        if eku.is_none() {
            return Err(wrong_eku);
        }
        check_key_usage(&leaf)?;
        if leaf
            .basic_constraints()
            .map_err(|e| Error::malformed("basic constraints", e))?
            .is_some_and(|bc| bc.value.ca)
        {
            return Err(Error::LeafIsCa);
        }
        let spki = &leaf.public_key().algorithm;
        if spki.algorithm.as_bytes() != RSA_ENCRYPTION {
            return Err(Error::KeyNotRsa);
        }
        check_san(&leaf, user)?;
        let authority = profile::authority_record(&leaf)?;

        let issuer = parse_cert(path.leaf_issuer(), "issuing CA certificate")?;
        let lists_arc5 = issuer
            .extended_key_usage()
            .map_err(|e| Error::malformed("issuer extended key usage", e))?
            .is_some_and(|e| {
                e.value
                    .other
                    .iter()
                    .any(|o| o.as_bytes() == oid::EKU_IDENTITY_SIGNING)
            });
        if !lists_arc5 {
            return Err(Error::IssuerEkuMissing);
        }
        let server = user.server_name();
        if !profile::permitted_servers(&issuer)?
            .iter()
            .any(|p| p == server)
        {
            return Err(Error::ServerNotPermitted {
                server: server.to_owned(),
            });
        }
        let root = parse_cert(&path.root, "root certificate")?;
        let root_ski = subject_key_id(&path.root)?.ok_or_else(|| Error::KeyIdMismatch {
            expected: "(the root has no subjectKeyIdentifier)".into(),
            found: String::new(),
        })?;
        Ok((
            VerifiedSigner {
                user_id: user.clone(),
                authority,
                serial: leaf.raw_serial_as_string().replace(':', ""),
                not_after: leaf.validity().not_after.timestamp(),
                issuer: issuer.subject().to_string(),
                root: root.subject().to_string(),
                key_id: key_id_for(&root_ski),
            },
            leaf_der,
        ))
    }
}

fn only_identity_signing(e: &x509_parser::extensions::ExtendedKeyUsage<'_>) -> bool {
    !(e.any
        || e.server_auth
        || e.client_auth
        || e.code_signing
        || e.email_protection
        || e.time_stamping
        || e.ocsp_signing)
        && e.other.len() == 1
        && e.other[0].as_bytes() == oid::EKU_IDENTITY_SIGNING
}

/// keyUsage present, critical, exactly digitalSignature (as attestations).
fn check_key_usage(leaf: &X509Certificate<'_>) -> Result<(), Error> {
    let ku = leaf
        .key_usage()
        .map_err(|e| Error::malformed("key usage", e))?
        .ok_or(Error::WrongKeyUsage)?;
    if ku.critical && ku.value.digital_signature() && ku.value.flags == 1 {
        Ok(())
    } else {
        Err(Error::WrongKeyUsage)
    }
}

/// SAN: exactly one URI, `matrix:u/`, byte-identical to the user's canonical URI.
fn check_san(leaf: &X509Certificate<'_>, user: &UserId) -> Result<(), Error> {
    let san = leaf
        .subject_alternative_name()
        .map_err(|e| Error::malformed("subject alternative name", e))?
        .ok_or_else(|| Error::SanInvalid("missing".into()))?;
    let uri = match san.value.general_names.as_slice() {
        [GeneralName::URI(uri)] => *uri,
        [_] => return Err(Error::SanInvalid("the one name is not a URI".into())),
        names => {
            return Err(Error::SanInvalid(format!(
                "{} names, the profile allows exactly one",
                names.len()
            )))
        }
    };
    if !uri.starts_with("matrix:u/") {
        return Err(Error::SanInvalid(format!("{uri:?} is not a matrix:u/ URI")));
    }
    let expected = user.to_matrix_uri();
    if uri != expected {
        return Err(Error::UserMismatch {
            expected,
            found: uri.to_owned(),
        });
    }
    Ok(())
}

/// The master key object's one Ed25519 key (`keys` = {`ed25519:<k>`: `<k>`}).
fn master_key_of(object: &Map<String, Value>) -> Result<Ed25519Key, Error> {
    let bad = |why: &str| Error::MasterKeyInvalid(why.to_owned());
    let keys = object
        .get("keys")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("no keys map"))?;
    let mut entries = keys.iter();
    let (Some((key_id, value)), None) = (entries.next(), entries.next()) else {
        return Err(bad("keys must hold exactly one key"));
    };
    let value = value
        .as_str()
        .ok_or_else(|| bad("the key is not a string"))?;
    if key_id.strip_prefix("ed25519:") != Some(value) {
        return Err(bad("the key ID does not match the key"));
    }
    Ed25519Key::from_base64(value).map_err(|e| bad(&e.to_string()))
}

/// matrix-rust-sdk's `RawX509Signature`: the simplified form its CMS parser
/// hands to a [`RawX509Verifier`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawX509Signature {
    /// The raw signature bytes.
    pub signature_bytes: Vec<u8>,
    /// The certificates as PEM, signer first, then intermediates
    /// (matrix-rust-sdk joins them with CRLF).
    pub certificate_chain: String,
    /// The signature scheme.
    pub signature_scheme: X509SignatureScheme,
}

impl RawX509Signature {
    /// The raw form of a CMS signature that passed [`parse_cms_pem`].
    pub fn from_cms(cms: &CmsSignature) -> Self {
        let certificate_chain = cms
            .chain
            .iter()
            .map(|c| {
                der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::CRLF, c)
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\r\n");
        RawX509Signature {
            signature_bytes: cms.signature.clone(),
            certificate_chain,
            signature_scheme: cms.scheme,
        }
    }
}

/// Something that can verify an X.509 signature: the shape of
/// matrix-rust-sdk's `x509::RawX509Verifier` trait (Element's
/// `io.element.x509`), so that an application embedding matrix-sdk can
/// forward its trait to [`GovtrustRawX509Verifier`] in one line.
pub trait RawX509Verifier: fmt::Debug + Send + Sync {
    /// Whether `signature` is a valid X.509 signature over `message` by a
    /// certificate issued through a trusted CA.
    fn verify(&self, message: &[u8], signature: &RawX509Signature) -> bool;
}

/// The govtrust [`RawX509Verifier`]: every rule of
/// [`ElementX509Verifier::verify_signer`], with the user taken from the
/// signed message itself.
///
/// matrix-rust-sdk passes only the message (the canonical JSON of the
/// master key) and the signature; it checks the SAN against the user
/// outside the trait and never checks the key ID. This adapter does not
/// rely on that: it parses `message` as the signed master key object and
/// binds the certificate's SAN to its `user_id` (a message that is not such
/// an object is refused), so the trait alone is as strict as
/// [`ElementX509Verifier::verify_master_key`] except for the key ID.
///
/// The trait has no CRL or time parameter: the adapter holds the CRLs
/// ([`GovtrustRawX509Verifier::set_crls`], replaced as the application
/// fetches fresh ones) and uses the system clock unless a fixed time is set
/// for tests. [`GovtrustRawX509Verifier::verify_detailed`] gives the typed
/// reason the `bool` hides.
#[derive(Debug)]
pub struct GovtrustRawX509Verifier {
    verifier: ElementX509Verifier,
    crls: RwLock<Arc<CrlSet>>,
    fixed_time: Option<UnixTime>,
}

impl GovtrustRawX509Verifier {
    /// An adapter over `verifier` with no CRLs yet (under
    /// [`CrlPolicy::REQUIRE_FRESH`] it refuses everything until
    /// [`GovtrustRawX509Verifier::set_crls`] is called).
    pub fn new(verifier: ElementX509Verifier) -> Self {
        GovtrustRawX509Verifier {
            verifier,
            crls: RwLock::new(Arc::new(CrlSet::new())),
            fixed_time: None,
        }
    }

    /// Verifies at `time` instead of the system clock (tests, replays).
    pub fn at_time(mut self, time: UnixTime) -> Self {
        self.fixed_time = Some(time);
        self
    }

    /// Replaces the CRLs used from now on.
    pub fn set_crls(&self, crls: CrlSet) {
        let fresh = Arc::new(crls);
        match self.crls.write() {
            Ok(mut guard) => *guard = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
    }

    /// [`RawX509Verifier::verify`] with the reason for a refusal.
    pub fn verify_detailed(
        &self,
        message: &[u8],
        signature: &RawX509Signature,
    ) -> Result<VerifiedSigner, Error> {
        let X509SignatureScheme::RsaPssSha512 = signature.signature_scheme;
        let object: Map<String, Value> = serde_json::from_slice(message).map_err(|e| {
            Error::MasterKeyInvalid(format!("the signed message is not a JSON object: {e}"))
        })?;
        let user = object
            .get("user_id")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::MasterKeyInvalid("the signed object has no user_id".into()))?;
        let user = UserId::parse(user)?;
        let chain = crate::pem::certificates(signature.certificate_chain.as_bytes())?;
        let crls = match self.crls.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        };
        let now = self.fixed_time.unwrap_or_else(UnixTime::now);
        self.verifier.verify_signer(
            &user,
            &chain,
            &signature.signature_bytes,
            message,
            &crls,
            now,
        )
    }
}

impl RawX509Verifier for GovtrustRawX509Verifier {
    fn verify(&self, message: &[u8], signature: &RawX509Signature) -> bool {
        self.verify_detailed(message, signature).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_matches_the_specification_examples() {
        let cases = [
            ("{}", "{}"),
            (r#"{"one": 1, "two": "Two"}"#, r#"{"one":1,"two":"Two"}"#),
            (r#"{"b": "2", "a": "1"}"#, r#"{"a":"1","b":"2"}"#),
            (
                r#"{"auth":{"success":true,"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"medium":"email","address":"john.doe@example.org"},{"medium":"msisdn","address":"123456789"}]}}}"#,
                r#"{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"address":"john.doe@example.org","medium":"email"},{"address":"123456789","medium":"msisdn"}]},"success":true}}"#,
            ),
            (r#"{"a": "日本語"}"#, r#"{"a":"日本語"}"#),
            (r#"{"本": 2, "日": 1}"#, r#"{"日":1,"本":2}"#),
            (r#"{"a": "\u65E5"}"#, r#"{"a":"日"}"#),
            (r#"{"a": null}"#, r#"{"a":null}"#),
            (r#"{"a": "\u0001\n\"\\"}"#, r#"{"a":"\u0001\n\"\\"}"#),
        ];
        for (input, expected) in cases {
            let value: Value = serde_json::from_str(input).expect("test JSON");
            assert_eq!(canonical_json(&value).expect("canonical"), expected);
        }
    }

    #[test]
    fn canonical_json_refuses_floats_and_big_integers() {
        for input in ["[1.5]", "[9007199254740992]", "[-9007199254740992]"] {
            let value: Value = serde_json::from_str(input).expect("test JSON");
            assert_eq!(
                canonical_json(&value).map_err(|e| e.code()),
                Err("master_key_invalid"),
                "{input}"
            );
        }
        let max: Value = serde_json::from_str("[9007199254740991]").expect("test JSON");
        assert_eq!(
            canonical_json(&max).expect("canonical"),
            "[9007199254740991]"
        );
    }

    #[test]
    fn key_id_is_unpadded_base64() {
        let ski = [
            0xd8, 0x5e, 0x91, 0x9a, 0x17, 0xf0, 0xc3, 0x5b, 0x13, 0xdb, 0x75, 0x42, 0x7d, 0x21,
            0x37, 0x9a, 0xdf, 0x3e, 0x96, 0x11,
        ];
        assert_eq!(
            key_id_for(&ski),
            "io.element.x509:2F6Rmhfww1sT23VCfSE3mt8+lhE"
        );
    }
}
