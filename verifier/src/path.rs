//! Path validation below the govtrust profile: chain building, signatures,
//! validity, basic constraints, name chaining and EKU chaining (delegated to
//! rustls-webpki) plus revocation by CRL for every certificate on the path.
//!
//! This layer knows nothing about Matrix; it is public so the conformance
//! suites (x509-limbo, NIST PKITS) can exercise exactly the code the
//! attestation verifier runs.
//!
//! Beyond what rustls-webpki checks, every candidate path must also satisfy
//! (found missing by those suites): each CA on the path, the pinned root
//! included, may sign certificates (key usage, if present, asserts
//! keyCertSign — RFC 5280 4.2.1.3, PKITS 4.7.1/4.7.2); the pinned root is a
//! CA (basicConstraints cA) and within its validity period; and a leaf that
//! asserts keyCertSign is a CA (RFC 5280 4.2.1.9), so it is rejected as one.

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
pub(crate) struct Root {
    pub(crate) der: CertificateDer<'static>,
    /// Subject Name, DER content octets (as rustls-webpki compares names).
    pub(crate) subject: Vec<u8>,
    /// SubjectPublicKeyInfo, full DER.
    pub(crate) spki: Vec<u8>,
    pub(crate) usage: CaUsage,
    /// notBefore and notAfter, seconds since the Unix epoch.
    not_before: i64,
    not_after: i64,
}

impl Root {
    /// The checks rustls-webpki leaves out for a trust anchor: the root
    /// must be a CA that may sign certificates, valid at `time`.
    pub(crate) fn check(&self, time: UnixTime) -> Result<(), webpki::Error> {
        if !(self.usage.is_ca && self.usage.can_sign_certs) {
            return Err(webpki::Error::EndEntityUsedAsCa);
        }
        let now = i64::try_from(time.as_secs()).unwrap_or(i64::MAX);
        let unix = |secs: i64| {
            UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                u64::try_from(secs).unwrap_or(0),
            ))
        };
        if now < self.not_before {
            return Err(webpki::Error::CertNotValidYet {
                time,
                not_before: unix(self.not_before),
            });
        }
        if now > self.not_after {
            return Err(webpki::Error::CertExpired {
                time,
                not_after: unix(self.not_after),
            });
        }
        Ok(())
    }
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
            let (_, cert) = X509Certificate::from_der(&der)
                .map_err(|e| Error::malformed("root certificate", e))?;
            pinned.push(Root {
                subject: anchor.subject.as_ref().to_vec(),
                spki: webpki::spki_for_anchor(&anchor).as_ref().to_vec(),
                usage: CaUsage::of(&cert)?,
                not_before: cert.validity().not_before.timestamp(),
                not_after: cert.validity().not_after.timestamp(),
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

    /// The pinned root a rustls-webpki trust anchor was made from.
    fn root_for(&self, anchor: &TrustAnchor<'_>) -> Option<&Root> {
        let spki = webpki::spki_for_anchor(anchor);
        self.roots
            .iter()
            .find(|r| r.spki == spki.as_ref() && r.subject == anchor.subject.as_ref())
    }

    /// The pinned root at `index` (as returned by
    /// [`TrustAnchors::sole_issuer_of`]).
    pub(crate) fn root(&self, index: usize) -> Option<&Root> {
        self.roots.get(index)
    }

    /// For a CA certificate named `subject` and issued by `issuer` (DER
    /// content octets): the index of the one pinned root path building can
    /// take as its issuer, if exactly one root is named `issuer`, that root
    /// has no name constraints, and no root is named `subject` (so no path
    /// can skip the CA). `None` otherwise.
    pub(crate) fn sole_issuer_of(&self, subject: &[u8], issuer: &[u8]) -> Option<usize> {
        if self.roots.iter().any(|r| r.subject == subject) {
            return None;
        }
        let mut named = self
            .roots
            .iter()
            .enumerate()
            .filter(|(_, r)| r.subject == issuer);
        let (index, _) = named.next()?;
        if named.next().is_some() || self.anchors[index].name_constraints.is_some() {
            return None;
        }
        Some(index)
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
    // Run inside path building, so that a candidate path failing them lets
    // rustls-webpki try the next candidate.
    let extra_checks = |path: &webpki::VerifiedPath<'_>| -> Result<(), webpki::Error> {
        CaUsage::of_der(&path.end_entity().der())?.check_end_entity()?;
        for ca in path.intermediate_certificates() {
            if !CaUsage::of_der(&ca.der())?.can_sign_certs {
                return Err(webpki::Error::EndEntityUsedAsCa);
            }
        }
        anchors
            .root_for(path.anchor())
            .ok_or(webpki::Error::UnknownIssuer)?
            .check(options.time)
    };
    let verified = match options.eku {
        Some(oid) => end_entity.verify_for_usage(
            options.algorithms,
            &anchors.anchors,
            intermediates,
            options.time,
            KeyUsage::required_if_present(oid),
            None,
            Some(&extra_checks),
        ),
        None => end_entity.verify_for_usage(
            options.algorithms,
            &anchors.anchors,
            intermediates,
            options.time,
            AnyEku,
            None,
            Some(&extra_checks),
        ),
    }
    .map_err(map_webpki)?;

    let root = anchors
        .root_for(verified.anchor())
        .ok_or(Error::UnknownIssuer)?;

    let mut certificates = vec![CertificateDer::from(leaf.as_ref().to_vec())];
    let mut chain: Vec<&webpki::Cert<'_>> = vec![&end_entity];
    for ca in verified.intermediate_certificates() {
        certificates.push(CertificateDer::from(ca.der().as_ref().to_vec()));
        chain.push(ca);
    }

    for (index, cert) in chain.iter().enumerate() {
        let (issuer_spki, issuer_can_sign_crls) = match chain.get(index + 1) {
            Some(issuer) => (
                issuer.subject_public_key_info().as_ref().to_vec(),
                CaUsage::of_der(&issuer.der())
                    .map_err(|_| Error::malformed("CA certificate", "undecodable"))?
                    .can_sign_crls,
            ),
            None => (root.spki.clone(), root.usage.can_sign_crls),
        };
        options.crls.check(
            CertUnderCheck {
                position: if index == 0 {
                    PathPosition::Leaf
                } else {
                    PathPosition::Issuer
                },
                serial: cert.serial(),
                issuer_name: cert.issuer(),
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

/// What a certificate's basic constraints and key usage permit (absent key
/// usage permits everything, RFC 5280 4.2.1.3).
#[derive(Clone, Copy, Debug)]
pub(crate) struct CaUsage {
    /// basicConstraints is present with cA true.
    is_ca: bool,
    /// Key usage is absent or asserts keyCertSign.
    pub(crate) can_sign_certs: bool,
    /// Key usage is absent or asserts cRLSign.
    pub(crate) can_sign_crls: bool,
    /// Key usage is present and asserts keyCertSign.
    asserts_key_cert_sign: bool,
}

impl CaUsage {
    /// Not a CA, key usage exactly digitalSignature: an attestation leaf.
    pub(crate) const DIGITAL_SIGNATURE_ONLY: CaUsage = CaUsage {
        is_ca: false,
        can_sign_certs: false,
        can_sign_crls: false,
        asserts_key_cert_sign: false,
    };

    pub(crate) fn of(cert: &X509Certificate<'_>) -> Result<Self, Error> {
        let is_ca = match cert.basic_constraints() {
            Ok(bc) => bc.is_some_and(|bc| bc.value.ca),
            Err(e) => return Err(Error::malformed("basic constraints", e)),
        };
        let ku = cert
            .key_usage()
            .map_err(|e| Error::malformed("key usage", e))?
            .map(|ku| ku.value);
        Ok(CaUsage {
            is_ca,
            can_sign_certs: ku.is_none_or(|ku| ku.key_cert_sign()),
            can_sign_crls: ku.is_none_or(|ku| ku.crl_sign()),
            asserts_key_cert_sign: ku.is_some_and(|ku| ku.key_cert_sign()),
        })
    }

    /// For an end entity: one that asserts keyCertSign is a CA (RFC 5280
    /// 4.2.1.9), rejected as one, even without basicConstraints cA.
    pub(crate) fn check_end_entity(&self) -> Result<(), webpki::Error> {
        if self.asserts_key_cert_sign && !self.is_ca {
            return Err(webpki::Error::CaUsedAsEndEntity);
        }
        Ok(())
    }

    /// Decodes `der`; inside path building, a certificate rustls-webpki
    /// accepted but x509-parser cannot read is reported as bad DER.
    pub(crate) fn of_der(der: &[u8]) -> Result<Self, webpki::Error> {
        let (_, cert) = X509Certificate::from_der(der).map_err(|_| webpki::Error::BadDer)?;
        CaUsage::of(&cert).map_err(|_| webpki::Error::BadDer)
    }
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
