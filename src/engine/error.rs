//! `EngineError`: the typed errors of the retrieval core (lexical index, embedder, fusion,
//! fading context, evaluation data). Each has a stable [`EngineError::code`] that becomes the JS
//! `Error.code`.

use thiserror::Error;

/// Errors of the retrieval core (`crate::engine`).
#[derive(Debug, Clone, Error, PartialEq)]
pub enum EngineError {
    /// An argument is out of its allowed range (bad weights, zero dims, duplicate id...).
    #[error("{name}: {reason}")]
    InvalidInput {
        /// The argument's name.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A vector's dimension differs from the one required.
    #[error("{name}: dimension mismatch, expected {expected}, got {got}")]
    DimensionMismatch {
        /// The argument's name.
        name: &'static str,
        /// The dimension required.
        expected: usize,
        /// The dimension received.
        got: usize,
    },
    /// NaN or infinity in an input vector.
    #[error("{name}: non-finite value at index {index}")]
    NonFinite {
        /// The argument's name.
        name: &'static str,
        /// Index of the first non-finite element.
        index: usize,
    },
    /// A document id is already present.
    #[error("document {id} is already indexed")]
    DuplicateId {
        /// The id.
        id: u64,
    },
    /// Serialised bytes are truncated, corrupted or inconsistent.
    #[error("{what}: corrupt data at byte {offset}: {reason}")]
    Corrupt {
        /// What was being decoded (e.g. `lexical index`).
        what: &'static str,
        /// Byte offset where decoding failed.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
    /// Serialised bytes were written by an unknown (newer) format version.
    #[error(
        "{what}: format version {found} is not supported (this build reads version {supported})"
    )]
    UnsupportedVersion {
        /// What was being decoded.
        what: &'static str,
        /// The version found in the header.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// Evaluation data (e.g. LoCoMo JSONL) could not be parsed.
    #[error("{file}:{line}: {reason}")]
    EvalData {
        /// The file (or logical source) name.
        file: String,
        /// 1-based line number (0 when not line-oriented).
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

impl EngineError {
    /// A stable, machine-readable code for this error (the JS `Error.code`).
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::InvalidInput { .. } => "INVALID_INPUT",
            EngineError::DimensionMismatch { .. } => "DIMENSION_MISMATCH",
            EngineError::NonFinite { .. } => "NON_FINITE",
            EngineError::DuplicateId { .. } => "DUPLICATE_ID",
            EngineError::Corrupt { .. } => "CORRUPT_DATA",
            EngineError::UnsupportedVersion { .. } => "UNSUPPORTED_VERSION",
            EngineError::EvalData { .. } => "EVAL_DATA",
        }
    }

    pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        EngineError::InvalidInput {
            name,
            reason: reason.into(),
        }
    }
}

/// `Err(NonFinite)` at the first NaN/Inf of `values`.
pub fn check_finite(name: &'static str, values: &[f32]) -> Result<(), EngineError> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(EngineError::NonFinite { name, index }),
        None => Ok(()),
    }
}

/// `Err(DimensionMismatch)` unless `values.len() == dims`, then [`check_finite`].
pub fn check_vector(name: &'static str, values: &[f32], dims: usize) -> Result<(), EngineError> {
    if values.len() != dims {
        return Err(EngineError::DimensionMismatch {
            name,
            expected: dims,
            got: values.len(),
        });
    }
    check_finite(name, values)
}
