//! The built-in text encoder (work in progress): all-MiniLM-L6-v2 sentence embeddings computed by
//! mnemo itself, with no other ML runtime.
//!
//! - [`tokenizer`]: the BERT uncased WordPiece tokenizer (basic tokenizer + greedy longest-match
//!   WordPiece), truncation to [`MAX_TOKENS`] word pieces including `[CLS]`/`[SEP]`;
//! - [`safetensors`]: a parser of the weights file (untrusted bytes → typed errors, never a panic);
//! - [`model`]: the weights of the BERT encoder and its CPU reference forward pass (6 layers,
//!   hidden 384, 12 heads, FFN 1536, exact GELU, LayerNorm, mean pooling over the attention mask,
//!   L2 normalisation), batched.
//!
//! - [`gpu`]: the GPU path on WGSL kernels (dense layer with bias and fused GELU, LayerNorm with
//!   fused residual, the attention prefill kernel with a key padding mask), checked against the
//!   CPU reference.
//!
//! The engine hook-up (`embedder: { model: 'all-MiniLM-L6-v2', weights }`) is not built yet.

pub mod gpu;
pub mod model;
pub mod safetensors;
pub mod tokenizer;

use thiserror::Error;

use crate::gpu::GpuError;
use crate::kernels::KernelError;

pub use model::{MiniLm, MiniLmConfig};
pub use tokenizer::WordPiece;

/// The longest token sequence the encoder accepts, `[CLS]` and `[SEP]` included (the model's
/// `max_seq_length` in sentence-transformers).
pub const MAX_TOKENS: usize = 256;

/// Errors of the text encoder: a bad vocabulary, a malformed or incomplete weights file, or bad
/// input ids. Raised before any work starts.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum EncoderError {
    /// The vocabulary (`vocab.txt`) is unusable.
    #[error("vocabulary: {reason}")]
    Vocab {
        /// What is wrong with it.
        reason: String,
    },
    /// The safetensors file is malformed (truncated, bad header, overlapping or out-of-range data).
    #[error("safetensors: {reason}")]
    Safetensors {
        /// What is wrong with it.
        reason: String,
    },
    /// A tensor the model needs is absent from the weights.
    #[error("weights: tensor `{name}` is missing")]
    MissingTensor {
        /// The tensor's name.
        name: String,
    },
    /// A tensor has the wrong dtype or shape.
    #[error("weights: tensor `{name}` is {got}, expected {expected}")]
    TensorMismatch {
        /// The tensor's name.
        name: String,
        /// What the model requires, e.g. `F32 [384, 384]`.
        expected: String,
        /// What the file holds.
        got: String,
    },
    /// A token id sequence cannot be encoded (empty, too long, or an id outside the vocabulary).
    #[error("input {index}: {reason}")]
    BadInput {
        /// Index of the offending sequence in the batch.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A kernel of the GPU path rejected its input or failed.
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// The GPU failed while running the encoder.
    #[error(transparent)]
    Gpu(#[from] GpuError),
}

impl EncoderError {
    /// A stable, machine-readable code for this error (the JS `Error.code`).
    pub fn code(&self) -> &'static str {
        match self {
            EncoderError::Vocab { .. } => "ENCODER_BAD_VOCAB",
            EncoderError::Safetensors { .. } => "ENCODER_BAD_WEIGHTS",
            EncoderError::MissingTensor { .. } => "ENCODER_MISSING_TENSOR",
            EncoderError::TensorMismatch { .. } => "ENCODER_TENSOR_MISMATCH",
            EncoderError::BadInput { .. } => "INVALID_INPUT",
            EncoderError::Kernel(e) => e.code(),
            EncoderError::Gpu(e) => e.code(),
        }
    }
}
