//! The errors of the storage layer: what callers match on (duplicate, not
//! found, unavailable, ...), and how database errors map onto them.

use std::fmt;

use sqlx::migrate::MigrateError;

/// Errors of the storage layer.
///
/// Hand-written rather than `thiserror` because that crate is not a
/// dependency of the root package.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// A row with that key exists already (nothing was written).
    Duplicate {
        /// What kind of row (`authority`, `certificate`, ...).
        entity: &'static str,
        /// Its key.
        key: String,
    },
    /// No row with that key (nothing was written).
    NotFound {
        /// What kind of row.
        entity: &'static str,
        /// Its key.
        key: String,
    },
    /// A reference to a missing row (e.g. a certificate for an unknown
    /// authority) or another constraint violation; nothing was written.
    Constraint(String),
    /// The connection URL or options are unusable.
    InvalidUrl(String),
    /// An argument cannot be stored (e.g. a number out of range).
    InvalidInput(String),
    /// A stored row cannot be decoded (unknown enum value, bad JSON).
    Corrupt(String),
    /// The database failed.
    Database(sqlx::Error),
    /// Applying migrations failed.
    Migrate(MigrateError),
    /// The commit of a batch failed: whether it took effect is unknown.
    /// Look the change up before retrying.
    CommitFailed(String),
    /// The database could not apply the batch this change was part of for a
    /// reason unrelated to the change (connection lost, lock timeout, disk
    /// full, ...). Nothing was written; retrying later is safe.
    Unavailable(String),
    /// The store's writer task is gone (the runtime is shutting down).
    WriterClosed,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Duplicate { entity, key } => write!(f, "{entity} {key:?} already exists"),
            Self::NotFound { entity, key } => write!(f, "{entity} {key:?} not found"),
            Self::Constraint(msg) => write!(f, "constraint violated: {msg}"),
            Self::InvalidUrl(msg) => write!(f, "invalid database URL: {msg}"),
            Self::InvalidInput(msg) => write!(f, "invalid input: {msg}"),
            Self::Corrupt(msg) => write!(f, "corrupt database row: {msg}"),
            Self::Database(e) => write!(f, "database error: {e}"),
            Self::Migrate(e) => write!(f, "database migration failed: {e}"),
            Self::CommitFailed(msg) => write!(f, "commit failed, outcome unknown: {msg}"),
            Self::Unavailable(msg) => write!(f, "database unavailable, nothing written: {msg}"),
            Self::WriterClosed => f.write_str("storage writer has shut down"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Database(e) => Some(e),
            Self::Migrate(e) => Some(e),
            _ => None,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            if db.is_foreign_key_violation() || db.is_check_violation() {
                return Self::Constraint(db.message().to_owned());
            }
        }
        Self::Database(e)
    }
}

impl From<MigrateError> for StoreError {
    fn from(e: MigrateError) -> Self {
        Self::Migrate(e)
    }
}

/// Result type of the storage layer.
pub type StoreResult<T> = Result<T, StoreError>;

/// [`StoreError::Duplicate`] for `entity` `key`.
pub(super) fn duplicate(entity: &'static str, key: &str) -> StoreError {
    StoreError::Duplicate {
        entity,
        key: key.to_owned(),
    }
}

/// [`StoreError::NotFound`] for `entity` `key`.
pub(super) fn not_found(entity: &'static str, key: &str) -> StoreError {
    StoreError::NotFound {
        entity,
        key: key.to_owned(),
    }
}
