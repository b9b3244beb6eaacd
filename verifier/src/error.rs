//! The one error type of the verifier: every way an attestation can fail.

use std::fmt;

/// Which certificate of a path a revocation applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PathPosition {
    /// The attestation (end-entity) certificate.
    Leaf,
    /// A CA certificate between the leaf and the pinned root.
    Issuer,
}

impl fmt::Display for PathPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathPosition::Leaf => "leaf certificate",
            PathPosition::Issuer => "issuing CA certificate",
        })
    }
}

/// Why an attestation was not accepted.
///
/// Each variant names exactly one rule of the acceptance rule in
/// `docs/profile.md`, so an application can show, log and count rejections
/// by reason; [`Error::code`] gives the stable machine name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The caller's expectation (user ID, device ID, key, policy) is itself
    /// invalid; this is a usage error, not a verdict on the certificate.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A certificate, CRL or event could not be decoded.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// What was being decoded.
        what: &'static str,
        /// What was wrong with it.
        detail: String,
    },
    /// The attestation event content exceeds the size limit.
    #[error("attestation event is {size} bytes, above the limit of {limit}")]
    EventTooLarge {
        /// Size of the content as received.
        size: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The chain does not lead to any pinned root.
    #[error("the chain does not lead to a pinned root")]
    UnknownIssuer,
    /// A signature on the path does not verify.
    #[error("a certificate signature on the path does not verify")]
    BadSignature,
    /// A signature algorithm outside the profile (e.g. SHA-1, DSA).
    #[error("unsupported signature algorithm")]
    UnsupportedAlgorithm,
    /// A certificate on the path has expired at the validation time.
    #[error("a certificate on the path has expired")]
    Expired,
    /// A certificate on the path is not yet valid at the validation time.
    #[error("a certificate on the path is not yet valid")]
    NotYetValid,
    /// A certificate used to issue another is not a CA (no `CA:true`).
    #[error("an issuing certificate is not a CA")]
    IssuerNotCa,
    /// A CA's path length constraint is exceeded.
    #[error("path length constraint exceeded")]
    PathLenExceeded,
    /// The attestation certificate is itself a CA.
    #[error("the attestation certificate is a CA certificate")]
    LeafIsCa,
    /// A certificate carries a critical extension the verifier does not know.
    #[error("unsupported critical extension")]
    UnsupportedCriticalExtension,
    /// The leaf's extended key usage is missing or not the expected attestation EKU.
    #[error("the leaf's extended key usage is not {expected}")]
    WrongEku {
        /// The EKU the attestation kind requires.
        expected: &'static str,
    },
    /// The issuing CA's EKU list does not include the leaf's EKU.
    #[error("the issuing CA is not permitted to issue this kind of attestation (EKU)")]
    IssuerEkuMissing,
    /// The leaf's key usage is missing, not critical, or anything but exactly digitalSignature.
    #[error("the leaf's key usage is not a critical digitalSignature")]
    WrongKeyUsage,
    /// The subject alternative name is not exactly one `matrix:u/` URI.
    #[error("subject alternative name: {0}")]
    SanInvalid(String),
    /// The certificate is for another Matrix user.
    #[error("certificate is for {found}, expected {expected}")]
    UserMismatch {
        /// The user the caller expected.
        expected: String,
        /// The user the certificate names.
        found: String,
    },
    /// The certificate is for another device, or lacks/has the device extension
    /// contrary to the attestation kind.
    #[error(
        "certificate is for {}, expected {}",
        describe_device(found.as_deref()),
        describe_device(expected.as_deref())
    )]
    DeviceMismatch {
        /// The device the caller expected (`None` for an identity attestation).
        expected: Option<String>,
        /// The device the certificate names (`None` if it names none).
        found: Option<String>,
    },
    /// The certificate's public key is not an Ed25519 key.
    #[error("the certificate's public key is not Ed25519")]
    KeyNotEd25519,
    /// The certificate's Ed25519 key is not the key the caller holds.
    #[error("the certificate's key is not the expected key")]
    KeyMismatch,
    /// The issuing CA is not permitted to certify users of this server.
    #[error("the issuing CA may not certify users on {server}")]
    ServerNotPermitted {
        /// The user's server name.
        server: String,
    },
    /// The subject DN does not hold a valid authority record.
    #[error("authority record: {0}")]
    AuthorityRecordInvalid(String),
    /// A certificate on the path is revoked by a valid CRL.
    #[error("the {position} is revoked")]
    Revoked {
        /// Which certificate is revoked.
        position: PathPosition,
    },
    /// The policy requires a CRL for a certificate's issuer and none was given.
    #[error("no CRL from the issuer of the {position}")]
    CrlMissing {
        /// Which certificate lacks revocation information.
        position: PathPosition,
    },
    /// The only CRLs for an issuer are past nextUpdate or older than the policy allows.
    #[error("the CRL for the {position} is stale")]
    CrlStale {
        /// Which certificate's CRL is stale.
        position: PathPosition,
    },
    /// A CRL names a CA on the path as issuer but is not signed by its key.
    #[error("a CRL naming the issuer of the {position} is not signed by it")]
    CrlWrongIssuer {
        /// Which certificate's issuer the CRL claims to come from.
        position: PathPosition,
    },
    /// Any other path-validation failure reported by the path builder.
    #[error("path validation failed: {0}")]
    PathInvalid(String),
    /// `io.element.x509`: the master key object is not a valid cross-signing
    /// master key (not a JSON object, no `keys`, wrong `usage`, not
    /// expressible in canonical JSON, too large).
    #[error("master key: {0}")]
    MasterKeyInvalid(String),
    /// `io.element.x509`: the master key carries no `io.element.x509:*`
    /// signature under its user's own ID.
    #[error("the master key carries no io.element.x509 signature by its user")]
    IdentitySignatureMissing,
    /// `io.element.x509`: the signature value is not a PEM CMS SignedData
    /// of the profile (undecodable, wrong version or content type, no
    /// certificates, unsigned attributes, too many certificates).
    #[error("CMS signature: {0}")]
    CmsMalformed(String),
    /// `io.element.x509`: the CMS carries the signed content (the profile
    /// requires a detached signature over the canonical JSON).
    #[error("the CMS signature is not detached (it encapsulates content)")]
    CmsNotDetached,
    /// `io.element.x509`: the CMS carries CRLs (the profile forbids them:
    /// revocation comes from the caller's CRLs only).
    #[error("the CMS signature carries CRLs")]
    CmsCrlsPresent,
    /// `io.element.x509`: the CMS does not hold exactly one SignerInfo.
    #[error("the CMS signature has {0} signers, the profile allows exactly one")]
    CmsSignerCount(usize),
    /// `io.element.x509`: the SignerInfo has signed attributes (the profile
    /// signs the content itself).
    #[error("the CMS SignerInfo has signed attributes")]
    CmsSignedAttributes,
    /// `io.element.x509`: the SignerInfo does not name exactly one included
    /// certificate by subjectKeyIdentifier.
    #[error("CMS signer identifier: {0}")]
    CmsSignerId(String),
    /// `io.element.x509`: digest or signature algorithm other than SHA-512
    /// and RSASSA-PSS (SHA-512, MGF1-SHA-512, salt 64, trailer 1).
    #[error("CMS algorithm: {0}")]
    CmsAlgorithm(String),
    /// `io.element.x509`: the key ID does not name the CA that issued the
    /// top certificate of the validated chain (the pinned root's SKI).
    #[error("key ID {found} does not name the root the chain leads to ({expected})")]
    KeyIdMismatch {
        /// The key ID the validated chain calls for.
        expected: String,
        /// The key ID the signature was published under.
        found: String,
    },
    /// `io.element.x509`: the signer certificate's key is not an RSA key.
    #[error("the identity-signing certificate's public key is not RSA")]
    KeyNotRsa,
    /// `io.element.x509`: the RSASSA-PSS signature does not verify over the
    /// canonical JSON of the master key.
    #[error("the io.element.x509 signature does not verify over the master key")]
    IdentitySignatureInvalid,
    /// `io.govtrust.sealed`: the content names another room than the one
    /// it was found in (a copy replayed elsewhere).
    #[error("sealed for room {found}, found in {expected}")]
    SealedWrongRoom {
        /// The room the event was found in.
        expected: String,
        /// The room the content names.
        found: String,
    },
    /// `io.govtrust.sealed`: the content's sender or signer is not the
    /// event's sender.
    #[error("sealed by {found}, but sent by {expected}")]
    SealedWrongSender {
        /// The event's sender.
        expected: String,
        /// The sender or signer user the content names.
        found: String,
    },
    /// `io.govtrust.sealed`: the document does not hash to `document_sha256`.
    #[error("the sealed document does not match its hash (tampered)")]
    SealedDocumentTampered,
    /// `io.govtrust.sealed`: the signature is missing or does not verify
    /// with the signer's key over the content.
    #[error("the seal's signature does not verify")]
    SealedSignatureInvalid,
    /// `io.govtrust.sealed`: the signer's attestation does not hold at
    /// `issued_at` (the attestation rule's reason inside).
    #[error("the signer is not attested: {0}")]
    SignerNotAttested(Box<Error>),
    /// `io.govtrust.sealed`: a certificate on the signer's path was revoked
    /// at or before `issued_at`.
    #[error("the {position} was revoked at {revoked_at}, before the seal's issued_at {issued_at}")]
    RevokedBeforeSigning {
        /// Which certificate.
        position: PathPosition,
        /// The CRL entry's revocation date, seconds since the epoch.
        revoked_at: i64,
        /// The seal's issued_at, seconds since the epoch.
        issued_at: i64,
    },
    /// `io.govtrust.sealed`: the metadata names another authority than the
    /// signer's certificate.
    #[error("sealed in the name of {claimed}, but the signer's certificate is for {certified}")]
    SealedAuthorityMismatch {
        /// The authority ID the metadata claims.
        claimed: String,
        /// The authority ID of the signer's authority record.
        certified: String,
    },
    /// `io.govtrust.receipt`: a field does not match the sealed event or
    /// the receipt's sender/device.
    #[error("the receipt's {field} does not match")]
    ReceiptMismatch {
        /// The field that differs.
        field: &'static str,
    },
    /// `io.govtrust.receipt`: the signature is missing or does not verify
    /// with the citizen's device key.
    #[error("the receipt's signature does not verify with the device key")]
    ReceiptSignatureInvalid,
    /// Citizen attestation: the ARC.12 level of assurance is missing,
    /// malformed, critical, or not one of low, substantial, high.
    #[error("level of assurance: {0}")]
    AssuranceLevelInvalid(String),
    /// Citizen attestation: the certified level of assurance is below the
    /// minimum the caller demands (the certificate itself is valid).
    #[error("level of assurance {found} is below the required {required}")]
    AssuranceTooLow {
        /// The minimum the caller demanded.
        required: &'static str,
        /// The level the certificate attests.
        found: &'static str,
    },
    /// Citizen attestation: the subject DN is not exactly one `pseudonym`
    /// attribute equal to the user's localpart (a name, or anything else
    /// that could identify the citizen, is a rejection).
    #[error("citizen subject: {0}")]
    CitizenSubjectInvalid(String),
}

fn describe_device(device: Option<&str>) -> String {
    device.map_or_else(
        || "no device (identity)".to_owned(),
        |d| format!("device {d}"),
    )
}

impl Error {
    /// Stable, machine-readable name of the failed rule (snake case), used in
    /// JSON output, metrics labels and the service's error codes.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidInput(_) => "invalid_input",
            Error::Malformed { .. } => "malformed",
            Error::EventTooLarge { .. } => "event_too_large",
            Error::UnknownIssuer => "unknown_issuer",
            Error::BadSignature => "bad_signature",
            Error::UnsupportedAlgorithm => "unsupported_algorithm",
            Error::Expired => "expired",
            Error::NotYetValid => "not_yet_valid",
            Error::IssuerNotCa => "issuer_not_ca",
            Error::PathLenExceeded => "path_len_exceeded",
            Error::LeafIsCa => "leaf_is_ca",
            Error::UnsupportedCriticalExtension => "unsupported_critical_extension",
            Error::WrongEku { .. } => "wrong_eku",
            Error::IssuerEkuMissing => "issuer_eku_missing",
            Error::WrongKeyUsage => "wrong_key_usage",
            Error::SanInvalid(_) => "san_invalid",
            Error::UserMismatch { .. } => "user_mismatch",
            Error::DeviceMismatch { .. } => "device_mismatch",
            Error::KeyNotEd25519 => "key_not_ed25519",
            Error::KeyMismatch => "key_mismatch",
            Error::ServerNotPermitted { .. } => "server_not_permitted",
            Error::AuthorityRecordInvalid(_) => "authority_record_invalid",
            Error::Revoked {
                position: PathPosition::Leaf,
            } => "revoked",
            Error::Revoked {
                position: PathPosition::Issuer,
            } => "issuer_revoked",
            Error::CrlMissing { .. } => "crl_missing",
            Error::CrlStale { .. } => "crl_stale",
            Error::CrlWrongIssuer { .. } => "crl_wrong_issuer",
            Error::PathInvalid(_) => "path_invalid",
            Error::MasterKeyInvalid(_) => "master_key_invalid",
            Error::IdentitySignatureMissing => "identity_signature_missing",
            Error::CmsMalformed(_) => "cms_malformed",
            Error::CmsNotDetached => "cms_not_detached",
            Error::CmsCrlsPresent => "cms_crls_present",
            Error::CmsSignerCount(_) => "cms_signer_count",
            Error::CmsSignedAttributes => "cms_signed_attributes",
            Error::CmsSignerId(_) => "cms_signer_id",
            Error::CmsAlgorithm(_) => "cms_algorithm",
            Error::KeyIdMismatch { .. } => "key_id_mismatch",
            Error::KeyNotRsa => "key_not_rsa",
            Error::IdentitySignatureInvalid => "identity_signature_invalid",
            Error::SealedWrongRoom { .. } => "sealed_wrong_room",
            Error::SealedWrongSender { .. } => "sealed_wrong_sender",
            Error::SealedDocumentTampered => "sealed_document_tampered",
            Error::SealedSignatureInvalid => "sealed_signature_invalid",
            Error::SignerNotAttested(_) => "signer_not_attested",
            Error::RevokedBeforeSigning { .. } => "revoked_before_signing",
            Error::SealedAuthorityMismatch { .. } => "sealed_authority_mismatch",
            Error::ReceiptMismatch { .. } => "receipt_mismatch",
            Error::ReceiptSignatureInvalid => "receipt_signature_invalid",
            Error::AssuranceLevelInvalid(_) => "assurance_level_invalid",
            Error::AssuranceTooLow { .. } => "assurance_too_low",
            Error::CitizenSubjectInvalid(_) => "citizen_subject_invalid",
        }
    }

    pub(crate) fn malformed(what: &'static str, detail: impl fmt::Display) -> Self {
        Error::Malformed {
            what,
            detail: detail.to_string(),
        }
    }
}
