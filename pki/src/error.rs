//! The one error type of the PKI crate.

/// Why a CA operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A request field is invalid (user ID, device ID, authority record,
    /// validity, server name, ...).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A key file could not be read, decrypted or understood.
    #[error("key: {0}")]
    Key(String),
    /// The signer failed to produce a signature.
    #[error("signer: {0}")]
    Signer(String),
    /// A PKCS#11 operation failed.
    #[error("PKCS#11: {0}")]
    Pkcs11(String),
    /// The freshly signed certificate or CRL was rejected by the verifier:
    /// govtrust never hands out what its own verifier would refuse.
    #[error("self-check of the issued object failed: {0}")]
    SelfCheck(#[from] govtrust_verifier::Error),
    /// A file given to [`crate::inspect`] is none of the objects the profile
    /// knows, or cannot be decoded.
    #[error("not understood: {0}")]
    Unreadable(String),
    /// Filesystem I/O failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}
