//! Emitting Element's `io.element.x509` identity signature: a CMS
//! `SignedData` (RSASSA-PSS-SHA512, detached, no signed attributes) over the
//! canonical JSON of a user's cross-signing master key, made with the key
//! of a govtrust **identity-signing** certificate
//! ([`crate::IssuingCa::issue_identity_signing`]).
//!
//! The format and the checks a relying party applies are documented in
//! [`govtrust_verifier::element_x509`]; everything built here is read back
//! by that parser in the tests.
//!
//! The RSA key sits behind [`IdentitySigner`], so an HSM (PKCS#11
//! `CKM_SHA512_RSA_PKCS_PSS`) can replace the file key later;
//! [`FileIdentitySigner`] holds a PKCS#8 RSA key in memory and signs with
//! ring.

use std::path::Path;

use base64::Engine as _;
use cms::cert::x509::ext::pkix::SubjectKeyIdentifier;
use cms::cert::x509::spki::{AlgorithmIdentifierOwned, AlgorithmIdentifierRef};
use cms::content_info::CmsVersion;
use cms::signed_data::{EncapsulatedContentInfo, SignerIdentifier, SignerInfo, SignerInfos};
use der::asn1::{Any, AnyRef, ObjectIdentifier, OctetString, SetOfVec};
use der::Decode;
use govtrust_verifier::canonical_json::signing_bytes;
use govtrust_verifier::element_x509::{
    content_info_der, SignedDataRawCerts, KEY_ID_PREFIX, PEM_LABEL,
};
use govtrust_verifier::{CertificateDer, UserId};
use ring::rand::SystemRandom;
use ring::signature::{KeyPair, RsaKeyPair};
use serde_json::{Map, Value};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};
use zeroize::Zeroizing;

use crate::Error;

const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ID_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const ID_RSASSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const ID_MGF1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.8");
/// DER AlgorithmIdentifier of rsaEncryption with NULL parameters.
const RSA_ENCRYPTION_ALG: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

/// An RSA private key that makes `io.element.x509` signatures.
///
/// Implementations must be usable from several threads.
pub trait IdentitySigner: Send + Sync {
    /// The public key as SubjectPublicKeyInfo DER (rsaEncryption).
    fn spki_der(&self) -> &[u8];

    /// RSASSA-PSS over `message`: SHA-512, MGF1-SHA-512, salt length 64,
    /// trailer 0xBC (RFC 8017 §8.1). Returns the signature (modulus length).
    fn sign_rsa_pss_sha512(&self, message: &[u8]) -> Result<Vec<u8>, Error>;
}

/// An identity-signing key loaded from an unencrypted PKCS#8 RSA private
/// key (DER, or PEM `PRIVATE KEY`).
pub struct FileIdentitySigner {
    key: RsaKeyPair,
    spki: Vec<u8>,
    rng: SystemRandom,
}

impl std::fmt::Debug for FileIdentitySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileIdentitySigner")
            .field("modulus_bits", &(self.key.public().modulus_len() * 8))
            .finish_non_exhaustive()
    }
}

impl FileIdentitySigner {
    /// Loads a PKCS#8 DER RSA private key (2048 to 8192 bits).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, Error> {
        let key = RsaKeyPair::from_pkcs8(der)
            .map_err(|e| Error::Key(format!("not a usable PKCS#8 RSA private key: {e}")))?;
        let bits = key.public().modulus_len() * 8;
        if !(2048..=8192).contains(&bits) {
            return Err(Error::Key(format!(
                "identity-signing RSA keys must have 2048 to 8192 bits, not {bits}"
            )));
        }
        let rsa_public_key = key.public_key().as_ref();
        let spki = yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_der(RSA_ENCRYPTION_ALG);
                w.next()
                    .write_bitvec_bytes(rsa_public_key, rsa_public_key.len() * 8);
            })
        });
        Ok(FileIdentitySigner {
            key,
            spki,
            rng: SystemRandom::new(),
        })
    }

    /// Loads a PEM `PRIVATE KEY` (PKCS#8) RSA key.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, Error> {
        let (label, der) =
            der::pem::decode_vec(pem.as_bytes()).map_err(|e| Error::Key(format!("PEM: {e}")))?;
        let der = Zeroizing::new(der);
        if label != "PRIVATE KEY" {
            return Err(Error::Key(format!(
                "PEM label is {label:?}, expected \"PRIVATE KEY\" (unencrypted PKCS#8)"
            )));
        }
        FileIdentitySigner::from_pkcs8_der(&der)
    }

    /// Reads a PEM PKCS#8 RSA key file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let pem = Zeroizing::new(std::fs::read_to_string(path)?);
        FileIdentitySigner::from_pkcs8_pem(&pem)
    }
}

impl IdentitySigner for FileIdentitySigner {
    fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    fn sign_rsa_pss_sha512(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        let mut signature = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &ring::signature::RSA_PSS_SHA512,
                &self.rng,
                message,
                &mut signature,
            )
            .map_err(|_| Error::Signer("RSASSA-PSS signing failed".into()))?;
        Ok(signature)
    }
}

/// The `io.element.x509` signature [`sign_master_key`] added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedMasterKey {
    /// `io.element.x509:<unpadded base64 SKI of the CA above the chain>`.
    pub key_id: String,
    /// The signature value: PEM `CMS`.
    pub cms_pem: String,
}

/// Signs a cross-signing master key object for Element's `io.element.x509`
/// and adds the signature to it, under
/// `signatures[<user_id>]["io.element.x509:<SKI>"]`.
///
/// `chain` is the identity-signing certificate of the object's `user_id`,
/// then its issuing CA (as [`crate::IssuingCa::issue_identity_signing`]
/// returns it); `signer` holds the certificate's key. The key ID is the
/// authorityKeyIdentifier of the last certificate of `chain` (for govtrust:
/// the root's key ID), as Element computes it.
pub fn sign_master_key(
    master_key: &mut Map<String, Value>,
    chain: &[CertificateDer<'_>],
    signer: &dyn IdentitySigner,
) -> Result<SignedMasterKey, Error> {
    let user = master_key
        .get("user_id")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::InvalidRequest("the master key has no user_id".into()))?;
    let user = UserId::parse(user).map_err(|e| Error::InvalidRequest(e.to_string()))?;
    let leaf = chain
        .first()
        .ok_or_else(|| Error::InvalidRequest("empty certificate chain".into()))?;
    let (_, leaf_cert) = X509Certificate::from_der(leaf)
        .map_err(|e| Error::InvalidRequest(format!("identity-signing certificate: {e}")))?;
    if leaf_cert.public_key().raw != signer.spki_der() {
        return Err(Error::Key(
            "the signer's key is not the identity-signing certificate's key".into(),
        ));
    }
    if san_uri(&leaf_cert).as_deref() != Some(user.to_matrix_uri().as_str()) {
        return Err(Error::InvalidRequest(format!(
            "the identity-signing certificate is not for {user}"
        )));
    }
    let key_id = key_id_of_chain(chain)?;
    let message =
        signing_bytes(master_key).map_err(|e| Error::InvalidRequest(format!("master key: {e}")))?;
    let signature = signer.sign_rsa_pss_sha512(&message)?;
    let cms_pem = to_pem(&signed_data(chain, signature, pss_sha512_algorithm()?)?)?;

    let signatures = master_key
        .entry("signatures")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(signatures) = signatures else {
        return Err(Error::InvalidRequest(
            "the master key's signatures is not an object".into(),
        ));
    };
    let own = signatures
        .entry(user.as_str())
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(own) = own else {
        return Err(Error::InvalidRequest(format!(
            "the master key's signatures[{user}] is not an object"
        )));
    };
    own.insert(key_id.clone(), Value::String(cms_pem.clone()));
    Ok(SignedMasterKey { key_id, cms_pem })
}

fn san_uri(cert: &X509Certificate<'_>) -> Option<String> {
    let san = cert.subject_alternative_name().ok()??;
    match san.value.general_names.as_slice() {
        [GeneralName::URI(uri)] => Some((*uri).to_owned()),
        _ => None,
    }
}

/// Element's key ID of a chain: `io.element.x509:` + unpadded base64 of the
/// authorityKeyIdentifier keyIdentifier of the last certificate.
pub fn key_id_of_chain(chain: &[CertificateDer<'_>]) -> Result<String, Error> {
    let top = chain
        .last()
        .ok_or_else(|| Error::InvalidRequest("empty certificate chain".into()))?;
    let (_, top) = X509Certificate::from_der(top)
        .map_err(|e| Error::InvalidRequest(format!("certificate: {e}")))?;
    let aki = top
        .extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|id| id.0.to_vec())
            }
            _ => None,
        })
        .ok_or_else(|| {
            Error::InvalidRequest(
                "the last certificate of the chain has no authorityKeyIdentifier".into(),
            )
        })?;
    Ok(format!(
        "{KEY_ID_PREFIX}{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(aki)
    ))
}

/// `sha512` with NULL parameters (the digest AlgorithmIdentifier).
pub fn sha512_algorithm() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: ID_SHA512,
        parameters: Some(Any::null()),
    }
}

/// RSASSA-PSS with SHA-512, MGF1-SHA-512, salt length 64 (trailer field
/// default), as Element encodes it.
pub fn pss_sha512_algorithm() -> Result<AlgorithmIdentifierOwned, Error> {
    pss_algorithm(64)
}

/// RSASSA-PSS parameters with SHA-512 and the given salt length (tests use
/// other lengths to prove they are refused).
pub fn pss_algorithm(salt_len: u8) -> Result<AlgorithmIdentifierOwned, Error> {
    let sha512 = AlgorithmIdentifierRef {
        oid: ID_SHA512,
        parameters: Some(AnyRef::NULL),
    };
    let params = pkcs1::RsaPssParams {
        hash: sha512,
        mask_gen: cms::cert::x509::spki::AlgorithmIdentifier {
            oid: ID_MGF1,
            parameters: Some(sha512),
        },
        salt_len,
        trailer_field: pkcs1::TrailerField::BC,
    };
    Ok(AlgorithmIdentifierOwned {
        oid: ID_RSASSA_PSS,
        parameters: Some(Any::encode_from(&params).map_err(der_error)?),
    })
}

fn der_error(e: der::Error) -> Error {
    Error::InvalidRequest(format!("CMS encoding: {e}"))
}

/// The profile's `SignedData` for `signature` by the first certificate of
/// `chain` (which needs a subjectKeyIdentifier), with every certificate of
/// `chain` included. `certificates` is a DER SET OF, so the encoder sorts
/// the certificates by their encoding (the signer is found by its SKI).
pub fn signed_data(
    chain: &[CertificateDer<'_>],
    signature: Vec<u8>,
    signature_algorithm: AlgorithmIdentifierOwned,
) -> Result<SignedDataRawCerts, Error> {
    let leaf = chain
        .first()
        .ok_or_else(|| Error::InvalidRequest("empty certificate chain".into()))?;
    let (_, leaf_cert) = X509Certificate::from_der(leaf)
        .map_err(|e| Error::InvalidRequest(format!("identity-signing certificate: {e}")))?;
    let ski = leaf_cert
        .extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
            _ => None,
        })
        .ok_or_else(|| {
            Error::InvalidRequest(
                "the signer certificate has no subjectKeyIdentifier (CMS names the signer by it)"
                    .into(),
            )
        })?;
    let certificates = chain
        .iter()
        .map(|c| Any::from_der(c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(der_error)?;
    let signer_info = SignerInfo {
        version: CmsVersion::V3,
        sid: SignerIdentifier::SubjectKeyIdentifier(SubjectKeyIdentifier(
            OctetString::new(ski).map_err(der_error)?,
        )),
        digest_alg: sha512_algorithm(),
        signed_attrs: None,
        signature_algorithm,
        signature: OctetString::new(signature).map_err(der_error)?,
        unsigned_attrs: None,
    };
    Ok(SignedDataRawCerts {
        version: CmsVersion::V3,
        digest_algorithms: SetOfVec::try_from(vec![sha512_algorithm()]).map_err(der_error)?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: None,
        },
        certificates: Some(SetOfVec::try_from(certificates).map_err(der_error)?),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![signer_info]).map_err(der_error)?),
    })
}

/// PEM `CMS` of a `ContentInfo` wrapping `signed_data`: 64-column base64,
/// LF line ends, one trailing newline (byte-identical to Element's output).
pub fn to_pem(signed_data: &SignedDataRawCerts) -> Result<String, Error> {
    let der_bytes = content_info_der(signed_data).map_err(der_error)?;
    der::pem::encode_string(PEM_LABEL, der::pem::LineEnding::LF, &der_bytes)
        .map_err(|e| Error::InvalidRequest(format!("PEM encoding: {e}")))
}
