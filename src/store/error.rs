//! `StoreError`: every way the episodic store can fail, as one typed enum with stable codes.

use thiserror::Error;

/// Errors of the episodic store. Validation errors name the offending field (e.g.
/// `episodes[3].embedding`) and are raised before anything is written.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum StoreError {
    /// An embedding's length differs from the store's dimension (or an open asked for other dims).
    #[error("{field}: dimension mismatch, expected {expected}, got {got}")]
    DimensionMismatch {
        /// The field, e.g. `episodes[2].embedding` or `dims`.
        field: String,
        /// The store's dimension.
        expected: usize,
        /// The length received.
        got: usize,
    },
    /// NaN or infinity in a number or vector.
    #[error("{field}: non-finite value at index {index}")]
    NonFinite {
        /// The field.
        field: String,
        /// Index of the first non-finite element (0 for a scalar).
        index: usize,
    },
    /// A field is empty, too long, out of range or of the wrong kind.
    #[error("{field}: {reason}")]
    InvalidInput {
        /// The field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An id or namespace that does not exist (e.g. update / delete of an unknown id, delete of
    /// an unknown namespace). Nothing was written.
    #[error("not found: {what}")]
    NotFound {
        /// What was looked for, e.g. `episode 17` or `namespace "chat-1"`.
        what: String,
    },
    /// The browser's storage quota is exhausted; the transaction was rolled back, nothing of it
    /// was written, and the store stays usable.
    #[error("storage quota exceeded: {0}")]
    QuotaExceeded(String),
    /// Another tab (or connection) upgraded the database to a newer schema; this connection was
    /// closed and every later call fails with this error. Reload to use the new version.
    #[error("the store was upgraded elsewhere (to schema version {new_version}); this connection is closed")]
    UpgradedElsewhere {
        /// The schema version the other connection asked for.
        new_version: u32,
    },
    /// Another tab (or connection) deleted the database; this connection was closed.
    #[error("the store was destroyed elsewhere; this connection is closed")]
    DestroyedElsewhere,
    /// The stored database was written by a newer mnemo (schema version `found` > `supported`).
    #[error("the store has schema version {found}, newer than this build supports ({supported})")]
    SchemaTooNew {
        /// The schema version on disk.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// Opening (or upgrading, or destroying) waited too long for other connections to close.
    #[error("the store is held open by another connection that does not close: {0}")]
    Blocked(String),
    /// The store was closed (`close()` / `destroy()`); open it again.
    #[error("the store is closed")]
    Closed,
    /// An export file is truncated, corrupted, or not an export at all. Nothing was written.
    #[error("corrupt import at byte {offset}: {reason}")]
    CorruptImport {
        /// Byte offset where parsing failed.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
    /// A stored record does not decode (damaged database or a foreign writer).
    #[error("corrupt store record {what}: {reason}")]
    Corrupt {
        /// Which record.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// The transaction was aborted (by the browser or by a fault injected in tests); nothing of it
    /// was written.
    #[error("transaction aborted: {0}")]
    Aborted(String),
    /// Other writers kept changing the store; the write was retried and gave up. Nothing of it was
    /// written.
    #[error("write conflict: the store kept changing under this write ({0} attempts)")]
    Conflict(u32),
    /// Any other failure of the storage backend (IndexedDB `UnknownError`, unavailable API...).
    #[error("storage backend error: {0}")]
    Backend(String),
}

impl StoreError {
    /// A stable, machine-readable code for this error (the JS `Error.code`).
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::DimensionMismatch { .. } => "DIMENSION_MISMATCH",
            StoreError::NonFinite { .. } => "NON_FINITE",
            StoreError::InvalidInput { .. } => "INVALID_INPUT",
            StoreError::NotFound { .. } => "NOT_FOUND",
            StoreError::QuotaExceeded(_) => "QUOTA_EXCEEDED",
            StoreError::UpgradedElsewhere { .. } => "STORE_UPGRADED_ELSEWHERE",
            StoreError::DestroyedElsewhere => "STORE_DESTROYED_ELSEWHERE",
            StoreError::SchemaTooNew { .. } => "SCHEMA_TOO_NEW",
            StoreError::Blocked(_) => "STORE_BLOCKED",
            StoreError::Closed => "STORE_CLOSED",
            StoreError::CorruptImport { .. } => "CORRUPT_IMPORT",
            StoreError::Corrupt { .. } => "STORE_CORRUPT",
            StoreError::Aborted(_) => "TRANSACTION_ABORTED",
            StoreError::Conflict(_) => "WRITE_CONFLICT",
            StoreError::Backend(_) => "STORE_BACKEND",
        }
    }

    /// The offending field of a validation error, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            StoreError::DimensionMismatch { field, .. }
            | StoreError::NonFinite { field, .. }
            | StoreError::InvalidInput { field, .. } => Some(field),
            _ => None,
        }
    }

    /// `InvalidInput` for `field` with `reason`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        StoreError::InvalidInput {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// `Corrupt` for `what` with `reason`.
    pub fn corrupt(what: impl Into<String>, reason: impl Into<String>) -> Self {
        StoreError::Corrupt {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

/// Shorthand for store results.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
