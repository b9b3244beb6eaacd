//! Path validation below the govtrust profile: chain building, signatures,
//! validity, basic constraints, name chaining and EKU chaining (delegated to
//! rustls-webpki) plus revocation by CRL for every certificate on the path.
//!
//! This layer knows nothing about Matrix; it is public so the conformance
//! suites (x509-limbo, NIST PKITS) can exercise exactly the code the
//! attestation verifier runs.

use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, KeyUsage};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::crl::{CertUnderCheck, CrlPolicy, CrlSet};
use crate::{Error, PathPosition};

/// The pinned roots a path must end in.
#[derive(Debug)]
pub struct TrustAnchors {
    /// Parallel to `roots`, in the form rustls-webpki takes.
    anchors: Vec<TrustAnchor<'static>>,
    roots: Vec<Root>,
}

#[derive(Debug)]
struct Root {
    der: CertificateDer<'static>,
    subject: Vec<u8>,
    spki: Vec<u8>,
    can_sign_crls: bool,
}

impl TrustAnchors {
    /// Pins the given root certificates (DER).
    pub fn from_der<I>(roots: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = CertificateDer<'static>>,
    {
        let (mut anchors, mut pinned) = (Vec::new(), Vec::new());
        for der in roots {
            let anchor = webpki::anchor_from_trusted_cert(&der)
                .map_err(|e| Error::malformed("root certificate", format!("{e:?}")))?
                .to_owned();
            pinned.push(Root {
                subject: anchor.subject.as_ref().to_vec(),
                spki: webpki::spki_for_anchor(&anchor).as_ref().to_vec(),
                can_sign_crls: can_sign_crls(&der)?,
                der,
            });
            anchors.push(anchor);
        }
        if pinned.is_empty() {
            return Err(Error::InvalidInput("no root certificate given".into()));
        }
        Ok(TrustAnchors {
            anchors,
            roots: pinned,
        })
    }

    /// Pins every certificate in a PEM bundle.
    pub fn from_pem(pem: &[u8]) -> Result<Self, Error> {
        TrustAnchors::from_der(crate::pem::certificates(pem)?)
    }

    /// The pinned root certificates.
    pub fn roots(&self) -> impl Iterator<Item = &CertificateDer<'static>> {
        self.roots.iter().map(|r| &r.der)
    }
}

/// Everything path validation depends on besides the certificates.
#[derive(Clone, Copy)]
pub struct PathOptions<'a> {
    /// Signature algorithms accepted on certificates.
    pub algorithms: &'a [&'a dyn SignatureVerificationAlgorithm],
    /// EKU every non-root certificate must list if it has an EKU extension.
    /// `None` accepts any EKU.
    pub eku: Option<&'static [u8]>,
    /// Validation time.
    pub time: UnixTime,
    /// CRLs available for revocation checking.
    pub crls: &'a CrlSet,
    /// What is demanded of revocation information.
    pub crl_policy: CrlPolicy,
}

/// A path that validated: the end entity, the CAs above it, and its root.
#[derive(Debug)]
pub struct ValidatedPath {
    /// The end-entity certificate first, then each CA up to (excluding) the root.
    pub certificates: Vec<CertificateDer<'static>>,
    /// The pinned root the path ends in.
    pub root: CertificateDer<'static>,
}

impl ValidatedPath {
    /// The certificate that issued the end entity: the first intermediate,
    /// or the root if the root signed the leaf directly.
    pub fn leaf_issuer(&self) -> &CertificateDer<'static> {
        self.certificates.get(1).unwrap_or(&self.root)
    }
}

/// Validates a path from `leaf` through any of `intermediates` to one of
/// `anchors`, then checks every certificate on it against the CRLs.
pub fn validate_path(
    anchors: &TrustAnchors,
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    options: &PathOptions<'_>,
) -> Result<ValidatedPath, Error> {
    let end_entity = EndEntityCert::try_from(leaf).map_err(map_webpki)?;
    let verified = match options.eku {
        Some(oid) => end_entity.verify_for_usage(
            options.algorithms,
            &anchors.anchors,
            intermediates,
            options.time,
            KeyUsage::required_if_present(oid),
            None,
            None,
        ),
        None => end_entity.verify_for_usage(
            options.algorithms,
            &anchors.anchors,
            intermediates,
            options.time,
            AnyEku,
            None,
            None,
        ),
    }
    .map_err(map_webpki)?;

    let anchor_spki = webpki::spki_for_anchor(verified.anchor());
    let root = anchors
        .roots
        .iter()
        .find(|r| r.spki == anchor_spki.as_ref() && r.subject == verified.anchor().subject.as_ref())
        .ok_or(Error::UnknownIssuer)?;

    let mut certificates = vec![CertificateDer::from(leaf.as_ref().to_vec())];
    let mut chain: Vec<&webpki::Cert<'_>> = vec![&end_entity];
    for ca in verified.intermediate_certificates() {
        certificates.push(CertificateDer::from(ca.der().as_ref().to_vec()));
        chain.push(ca);
    }

    for (index, cert) in chain.iter().enumerate() {
        // rustls-webpki's `Cert::issuer()` is the Name without its SEQUENCE
        // header, whereas a CRL's issuer (`Crl::issuer_der`) is the full DER
        // Name: compare like with like, or no CRL ever matches (found by the
        // PKITS conformance suite: every CRL was "missing").
        let issuer_name = issuer_name_der(&cert.der())?;
        let (issuer_spki, issuer_can_sign_crls) = match chain.get(index + 1) {
            Some(issuer) => (
                issuer.subject_public_key_info().as_ref().to_vec(),
                can_sign_crls(&issuer.der())?,
            ),
            None => (root.spki.clone(), root.can_sign_crls),
        };
        options.crls.check(
            CertUnderCheck {
                position: if index == 0 {
                    PathPosition::Leaf
                } else {
                    PathPosition::Issuer
                },
                serial: cert.serial(),
                issuer_name: &issuer_name,
                issuer_spki: &issuer_spki,
                issuer_can_sign_crls,
            },
            options.time,
            &options.crl_policy,
        )?;
    }

    Ok(ValidatedPath {
        certificates,
        root: root.der.clone(),
    })
}

/// The certificate's issuer Name as full DER (SEQUENCE header included), the
/// form CRL issuers are stored in.
fn issuer_name_der(der: &[u8]) -> Result<Vec<u8>, Error> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| Error::malformed("certificate", e))?;
    Ok(cert.issuer().as_raw().to_vec())
}

/// Whether a CA certificate's key usage permits signing CRLs (absent key
/// usage permits everything, RFC 5280 4.2.1.3).
fn can_sign_crls(der: &[u8]) -> Result<bool, Error> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| Error::malformed("CA certificate", e))?;
    Ok(match cert.key_usage() {
        Ok(Some(ku)) => ku.value.crl_sign(),
        Ok(None) => true,
        Err(e) => return Err(Error::malformed("CA key usage", e)),
    })
}

/// EKU validator for callers that do not restrict the purpose.
struct AnyEku;

impl webpki::ExtendedKeyUsageValidator for AnyEku {
    fn validate(&self, iter: webpki::KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        for id in iter {
            id?;
        }
        Ok(())
    }
}

/// Maps rustls-webpki's error to the verifier's reason, so that each failed
/// rule keeps its own name.
#[allow(deprecated)] // the context-free variants are still produced
fn map_webpki(e: webpki::Error) -> Error {
    use webpki::Error as W;
    match e {
        W::UnknownIssuer => Error::UnknownIssuer,
        W::InvalidSignatureForPublicKey | W::SignatureAlgorithmMismatch => Error::BadSignature,
        W::UnsupportedSignatureAlgorithm
        | W::UnsupportedSignatureAlgorithmContext(_)
        | W::UnsupportedSignatureAlgorithmForPublicKey
        | W::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => Error::UnsupportedAlgorithm,
        W::CertExpired { .. } => Error::Expired,
        W::CertNotValidYet { .. } => Error::NotYetValid,
        W::EndEntityUsedAsCa => Error::IssuerNotCa,
        W::CaUsedAsEndEntity => Error::LeafIsCa,
        W::PathLenConstraintViolated => Error::PathLenExceeded,
        W::RequiredEkuNotFound | W::RequiredEkuNotFoundContext(_) => Error::IssuerEkuMissing,
        W::UnsupportedCriticalExtension => Error::UnsupportedCriticalExtension,
        W::BadDer
        | W::BadDerTime
        | W::TrailingData(_)
        | W::MalformedExtensions
        | W::ExtensionValueInvalid
        | W::InvalidSerialNumber
        | W::InvalidCertValidity
        | W::UnsupportedCertVersion
        | W::EmptyEkuExtension => Error::malformed("certificate", format!("{e:?}")),
        other => Error::PathInvalid(format!("{other:?}")),
    }
}
