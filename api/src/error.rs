//! The crate's one error type.

/// Why input was refused. Each variant is a different caller's mistake, so
/// the service can map it to its own answer (an API errcode, a row of an
/// import report, a refused homeserver answer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A field of a request or record is unacceptable; the text names it.
    #[error("{0}")]
    InvalidParam(String),
    /// The homeserver served keys that are malformed or that belong to
    /// another user or device than the ones asked for.
    #[error("homeserver served invalid keys: {0}")]
    InvalidKeys(String),
    /// An import file is unusable as a whole (not UTF-8, not a JSON array,
    /// an unknown CSV column); row problems are reported per row instead.
    #[error("{0}")]
    ImportFile(String),
    /// A stored or transmitted name of an enum value is not one of its
    /// names.
    #[error("unknown {what} {value:?}")]
    UnknownValue {
        /// Which enum.
        what: &'static str,
        /// The text that matched none of its names.
        value: String,
    },
}
