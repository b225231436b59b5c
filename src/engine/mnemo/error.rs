//! `MnemoError`: every way the memory engine can fail, wrapping the errors of the layers it
//! drives (store, retrieval core, kernels) so that each keeps its stable code.

use thiserror::Error;

use crate::engine::EngineError;
use crate::kernels::KernelError;
use crate::store::StoreError;

/// Errors of [`super::Mnemo`]. [`MnemoError::code`] is the JS `Error.code`.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum MnemoError {
    /// The episodic store failed or rejected the input (validation errors name the field).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The retrieval core rejected the input or a persisted structure.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A kernel (memory fetch, recurrence) rejected its input or the GPU failed.
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// An argument of an engine call is invalid (`field` names it).
    #[error("{field}: {reason}")]
    InvalidInput {
        /// The offending field, e.g. `k` or `episodes[2].embedding`.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A vector's length differs from the store's dimension.
    #[error("{field}: dimension mismatch, expected {expected}, got {got}")]
    DimensionMismatch {
        /// The field.
        field: String,
        /// The store's dimension.
        expected: usize,
        /// The length received.
        got: usize,
    },
    /// An embedding was needed (no `embedding` given) but the engine has no embedder.
    #[error("{field}: no embedding given and the engine was opened without an embedder")]
    NoEmbedder {
        /// The field that needed one.
        field: String,
    },
    /// The built-in text encoder failed (bad weights or vocabulary, not cached, GPU failure).
    #[error(transparent)]
    Encoder(#[from] crate::encoder::EncoderError),
    /// The caller's embedder failed or returned something unusable.
    #[error("embedder: {0}")]
    Embedder(String),
}

impl MnemoError {
    /// A stable, machine-readable code (the JS `Error.code`).
    pub fn code(&self) -> &'static str {
        match self {
            MnemoError::Store(e) => e.code(),
            MnemoError::Engine(e) => e.code(),
            MnemoError::Kernel(e) => e.code(),
            MnemoError::InvalidInput { .. } => "INVALID_INPUT",
            MnemoError::DimensionMismatch { .. } => "DIMENSION_MISMATCH",
            MnemoError::NoEmbedder { .. } => "NO_EMBEDDER",
            MnemoError::Embedder(_) => "EMBEDDER_FAILED",
            MnemoError::Encoder(e) => e.code(),
        }
    }

    /// The offending field of a validation error, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            MnemoError::Store(e) => e.field(),
            MnemoError::InvalidInput { field, .. }
            | MnemoError::DimensionMismatch { field, .. }
            | MnemoError::NoEmbedder { field } => Some(field),
            _ => None,
        }
    }

    /// `InvalidInput` for `field`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        MnemoError::InvalidInput {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<crate::gpu::GpuError> for MnemoError {
    fn from(e: crate::gpu::GpuError) -> Self {
        MnemoError::Kernel(KernelError::Gpu(e))
    }
}

/// Shorthand for engine results.
pub type Result<T, E = MnemoError> = std::result::Result<T, E>;
