//! Errors of the Matrix module, typed so that callers (the HTTP API, the
//! enrollment logic) can tell "the homeserver is unreachable, retry later"
//! from "this enrollment must be refused".

use std::fmt;

use matrix_sdk::ruma::api::error::ErrorKind;

/// Everything that can go wrong talking to the homeserver or checking what
/// it served.
#[derive(Debug)]
#[non_exhaustive]
pub enum MatrixError {
    /// The configuration is unusable (bad user ID, alias, URL, ...).
    Config(String),
    /// Reading or writing the store directory or the saved session failed.
    Store(String),
    /// A matrix-sdk operation failed (includes crypto store errors).
    Sdk(Box<matrix_sdk::Error>),
    /// An HTTP request to the homeserver failed or returned an error.
    Http(Box<matrix_sdk::HttpError>),
    /// The directory alias exists but points to a room the bot did not
    /// create, so the bot cannot trust its power levels (alias squatting).
    DirectoryAliasTaken {
        /// The alias, `#localpart:server`.
        alias: String,
        /// Who created the room the alias points to, if known.
        creator: Option<String>,
    },
    /// The state key is not acceptable (empty, or starts with `@`, which
    /// the spec reserves for that user).
    InvalidStateKey(String),
    /// The event content is larger than the module's limit, which keeps it
    /// far below Matrix's 65,536-byte event limit.
    ContentTooLarge {
        /// Size of the content JSON in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// The homeserver served keys that are malformed or do not belong to
    /// the requested user/device.
    InvalidKeys(String),
    /// The target device is not known (not in `/keys/query`, or rejected by
    /// matrix-sdk because its self-signature is invalid).
    UnknownDevice {
        /// User ID of the device owner.
        user_id: String,
        /// The device ID.
        device_id: String,
    },
    /// An Olm-encrypted to-device message could not be delivered (no Olm
    /// session could be established, or the homeserver refused it).
    DeliveryFailed {
        /// User ID of the recipient.
        user_id: String,
        /// Device ID of the recipient.
        device_id: String,
    },
    /// Waiting for something (a challenge) timed out.
    Timeout,
    /// The event handler that feeds a receiver is gone (client dropped).
    Closed,
}

impl MatrixError {
    /// The Matrix error code (`M_FORBIDDEN`, ...) if the homeserver answered
    /// with a client-server API error.
    pub fn error_kind(&self) -> Option<&ErrorKind> {
        match self {
            MatrixError::Sdk(e) => e.client_api_error_kind(),
            MatrixError::Http(e) => e.client_api_error_kind(),
            _ => None,
        }
    }

    /// Whether retrying later may help: transport failures and homeserver
    /// errors other than refusals. The API layer maps this to 503 rather
    /// than to a rejection of the enrollment.
    pub fn is_transient(&self) -> bool {
        match self {
            MatrixError::Http(e) => is_transient_http(e),
            MatrixError::Sdk(e) => match e.as_ref() {
                matrix_sdk::Error::Http(h) => is_transient_http(h),
                _ => false,
            },
            MatrixError::DeliveryFailed { .. } | MatrixError::Timeout => true,
            _ => false,
        }
    }
}

fn is_transient_http(e: &matrix_sdk::HttpError) -> bool {
    match e.client_api_error_kind() {
        Some(kind) => matches!(kind, ErrorKind::LimitExceeded(_) | ErrorKind::Unknown),
        None => true,
    }
}

impl From<govtrust_api::Error> for MatrixError {
    /// The contract's checks refuse only what the homeserver served.
    fn from(e: govtrust_api::Error) -> Self {
        match e {
            govtrust_api::Error::InvalidKeys(why) => MatrixError::InvalidKeys(why),
            other => MatrixError::InvalidKeys(other.to_string()),
        }
    }
}

impl fmt::Display for MatrixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MatrixError::Config(why) => write!(f, "Matrix configuration: {why}"),
            MatrixError::Store(why) => write!(f, "Matrix store: {why}"),
            MatrixError::Sdk(e) => write!(f, "Matrix client: {e}"),
            MatrixError::Http(e) => write!(f, "homeserver request failed: {e}"),
            MatrixError::DirectoryAliasTaken { alias, creator } => match creator {
                Some(c) => write!(
                    f,
                    "directory alias {alias} points to a room created by {c}, not by the bot"
                ),
                None => write!(
                    f,
                    "directory alias {alias} points to a room the bot did not create"
                ),
            },
            MatrixError::InvalidStateKey(key) => write!(
                f,
                "invalid state key {key:?}: must be non-empty and must not start with @"
            ),
            MatrixError::ContentTooLarge { size, limit } => {
                write!(f, "event content is {size} bytes, limit {limit}")
            }
            MatrixError::InvalidKeys(why) => write!(f, "homeserver served invalid keys: {why}"),
            MatrixError::UnknownDevice { user_id, device_id } => {
                write!(f, "device {device_id} of {user_id} is unknown or invalid")
            }
            MatrixError::DeliveryFailed { user_id, device_id } => write!(
                f,
                "could not deliver an encrypted to-device message to {user_id} {device_id}"
            ),
            MatrixError::Timeout => f.write_str("timed out"),
            MatrixError::Closed => f.write_str("the Matrix client was shut down"),
        }
    }
}

impl std::error::Error for MatrixError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MatrixError::Sdk(e) => Some(e.as_ref()),
            MatrixError::Http(e) => Some(e.as_ref()),
            _ => None,
        }
    }
}

impl From<matrix_sdk::Error> for MatrixError {
    fn from(e: matrix_sdk::Error) -> Self {
        MatrixError::Sdk(Box::new(e))
    }
}

impl From<matrix_sdk::HttpError> for MatrixError {
    fn from(e: matrix_sdk::HttpError) -> Self {
        MatrixError::Http(Box::new(e))
    }
}

impl From<matrix_sdk::encryption::CryptoStoreError> for MatrixError {
    fn from(e: matrix_sdk::encryption::CryptoStoreError) -> Self {
        MatrixError::Sdk(Box::new(matrix_sdk::Error::from(e)))
    }
}
