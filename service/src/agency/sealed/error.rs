//! What can go wrong while sealing, sending or archiving, and the I/O
//! error mapping the file-reading parts share.

use std::path::{Path, PathBuf};

/// Why sealing, sending or archiving failed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The sealing key could not be read or used.
    #[error("sealing key: {0}")]
    Key(String),
    /// The sealing certificate chain does not attest the sealing key.
    #[error("sealing certificate: {0}")]
    Certificate(String),
    /// The document cannot be sealed (not canonical JSON, too large).
    #[error("document: {0}")]
    Document(String),
    /// The document names a `$schema` the agency has not configured.
    #[error("no schema with $id {0} in the schema directory")]
    UnknownSchema(String),
    /// The document does not conform to its schema.
    #[error("the document does not conform to {schema}: {errors}")]
    Schema {
        /// The schema's `$id`.
        schema: String,
        /// The validation errors, joined.
        errors: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {detail}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The homeserver or matrix-sdk failed.
    #[error("Matrix: {0}")]
    Matrix(String),
}

/// Maps an I/O error on `path` to [`SealError::Io`].
pub(super) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SealError + '_ {
    move |e| SealError::Io {
        path: path.to_owned(),
        detail: e.to_string(),
    }
}
