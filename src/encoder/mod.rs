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
//! The engine runs it as an embedder (`crate::engine::mnemo`, `EmbedderKind::Encoder`; JS
//! `embedder: { model: 'all-MiniLM-L6-v2', weights, vocab }`, weights cached in IndexedDB by
//! `src/wasm/model_cache.rs`).

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

/// Texts per forward pass of [`TextEncoder::embed`] (after sorting by length), at most.
pub const BATCH: usize = 32;

/// Padded tokens (texts × the longest one) per forward pass of [`TextEncoder::embed`], at most,
/// unless a single text is longer.
pub const BATCH_TOKENS: usize = 2048;

/// What one more forward pass costs in [`batches`], in padded tokens (a submission, a readback).
const BATCH_COST: usize = 64;

/// `order` (indices into `lens`, sorted by ascending length) cut into the batches
/// [`TextEncoder::embed`] runs: consecutive runs of at most [`BATCH`] texts and [`BATCH_TOKENS`]
/// padded tokens (a longer text runs alone) that minimise the padded tokens plus [`BATCH_COST`]
/// per batch (dynamic programming over the cut points). With plain runs of 32, the 231 reference
/// texts' last batch padded 29 texts of 72–95 tokens to the three 256-token ones (8,192 rows:
/// 60% of their time on lavapipe).
pub fn batches(order: &[usize], lens: &[usize]) -> Vec<std::ops::Range<usize>> {
    let n = order.len();
    // best[j]: the least cost of batching order[..j]; from[j]: where its last batch starts.
    let mut best = vec![usize::MAX; n + 1];
    let mut from = vec![0; n + 1];
    best[0] = 0;
    for j in 1..=n {
        let longest = lens[order[j - 1]];
        for i in (j.saturating_sub(BATCH)..j).rev() {
            let padded = (j - i) * longest;
            if j - i > 1 && padded > BATCH_TOKENS {
                break;
            }
            let cost = best[i].saturating_add(padded + BATCH_COST);
            if cost < best[j] {
                best[j] = cost;
                from[j] = i;
            }
        }
    }
    let mut out = Vec::new();
    let mut j = n;
    while j > 0 {
        out.push(from[j]..j);
        j = from[j];
    }
    out.reverse();
    out
}

/// Tokenizer + model: texts in, L2-normalised sentence embeddings out, on the GPU or the CPU.
///
/// The GPU path keeps the weights resident on the device it last ran on (uploaded on the first
/// GPU call for that [`GpuContext`](crate::gpu::GpuContext), again only when the context
/// changes); a clone starts without them.
#[derive(Debug, Clone)]
pub struct TextEncoder {
    /// The WordPiece tokenizer.
    pub tokenizer: WordPiece,
    /// The model's weights.
    pub model: MiniLm,
    resident: Resident,
}

/// The weights resident on one device (see [`TextEncoder`]); cloning gives an empty slot.
#[derive(Debug, Default)]
struct Resident(std::sync::Mutex<Option<std::sync::Arc<gpu::GpuModel>>>);

impl Clone for Resident {
    fn clone(&self) -> Self {
        Resident::default()
    }
}

impl TextEncoder {
    /// The model's name in the JS API (`embedder: { model: 'all-MiniLM-L6-v2' }`).
    pub const ALL_MINILM_L6_V2: &'static str = "all-MiniLM-L6-v2";

    /// all-MiniLM-L6-v2 from the text of its `vocab.txt` and the bytes of its
    /// `model.safetensors`.
    pub fn all_minilm_l6_v2(vocab: &str, weights: &[u8]) -> Result<TextEncoder, EncoderError> {
        Ok(TextEncoder {
            tokenizer: WordPiece::from_vocab(vocab)?,
            model: MiniLm::from_safetensors(weights, MiniLmConfig::ALL_MINILM_L6_V2)?,
            resident: Resident::default(),
        })
    }

    /// Tokenizer + model as given (the GPU weights are uploaded on first use).
    pub fn new(tokenizer: WordPiece, model: MiniLm) -> TextEncoder {
        TextEncoder {
            tokenizer,
            model,
            resident: Resident::default(),
        }
    }

    /// The model's weights on `ctx`'s device: the resident copy when it lives there, else
    /// uploaded now (replacing the copy on another device).
    pub fn gpu_model(
        &self,
        ctx: &crate::gpu::GpuContext,
    ) -> Result<std::sync::Arc<gpu::GpuModel>, EncoderError> {
        let mut slot = self.resident.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = slot.as_ref().filter(|m| m.context_id() == ctx.id()) {
            return Ok(m.clone());
        }
        *slot = None;
        let m = std::sync::Arc::new(gpu::GpuModel::upload(ctx, &self.model)?);
        *slot = Some(m.clone());
        Ok(m)
    }

    /// The embedding dimension (384).
    pub fn dims(&self) -> usize {
        self.model.config.hidden
    }

    /// The embeddings of `texts`, `[texts.len(), dims]` row-major, on whichever backend `compute`
    /// chose. Texts are sorted by token count and run in batches of at most [`BATCH`] texts and
    /// [`BATCH_TOKENS`] padded tokens ([`batches`]; little padding on the GPU path); the rows come
    /// back in the order of `texts`.
    pub async fn embed(
        &self,
        compute: &crate::Compute,
        texts: &[&str],
    ) -> Result<Vec<f32>, EncoderError> {
        let d = self.dims();
        let ids: Vec<Vec<u32>> = texts.iter().map(|t| self.tokenizer.encode(t)).collect();
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| ids[i].len());
        let mut out = vec![0.0f32; texts.len() * d];
        let resident = match compute.gpu_context() {
            Some(ctx) if !texts.is_empty() => Some((ctx, self.gpu_model(ctx)?)),
            _ => None,
        };
        let lens: Vec<usize> = ids.iter().map(Vec::len).collect();
        for range in batches(&order, &lens) {
            let chunk = &order[range];
            let batch: Vec<Vec<u32>> = chunk.iter().map(|&i| ids[i].clone()).collect();
            let rows = match &resident {
                Some((ctx, m)) => m.embed_ids(ctx, &self.model, &batch).await?,
                None => self.model.embed_ids(&batch)?,
            };
            for (&i, row) in chunk.iter().zip(rows.chunks_exact(d)) {
                out[i * d..(i + 1) * d].copy_from_slice(row);
            }
        }
        Ok(out)
    }
}

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
    /// The model's weights are not in this origin's cache (the JS API: pass `weights` and `vocab`
    /// once).
    #[error("model `{model}` is not cached: pass its weights and vocab once")]
    NotCached {
        /// The model's name.
        model: String,
    },
    /// Fetching a model file from its URL failed (network, HTTP status, another origin).
    #[error("model fetch: {0}")]
    Fetch(String),
    /// Reading or writing the weight cache failed (the browser's message).
    #[error("model cache: {0}")]
    Cache(String),
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
            EncoderError::NotCached { .. } => "MODEL_NOT_CACHED",
            EncoderError::Cache(_) => "MODEL_CACHE_FAILED",
            EncoderError::Fetch(_) => "MODEL_FETCH_FAILED",
            EncoderError::Kernel(e) => e.code(),
            EncoderError::Gpu(e) => e.code(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(order: &[usize], lens: &[usize]) -> Vec<std::ops::Range<usize>> {
        let b = batches(order, lens);
        let mut next = 0;
        for r in &b {
            assert_eq!(r.start, next, "{b:?}: not contiguous");
            assert!(!r.is_empty() && r.len() <= BATCH, "{b:?}: {r:?}");
            let padded = r.len() * lens[order[r.end - 1]];
            assert!(
                r.len() == 1 || padded <= BATCH_TOKENS,
                "{b:?}: {r:?} pads {padded}"
            );
            next = r.end;
        }
        assert_eq!(next, order.len(), "{b:?}: not every text");
        b
    }

    #[test]
    fn batches_cut_at_count_and_padded_tokens() {
        // 40 texts of 10 tokens: two batches.
        let b = check(&(0..40).collect::<Vec<_>>(), &[10; 40]);
        assert_eq!(b.len(), 2, "{b:?}");
        // 29 texts of 90 tokens then 3 of 256: the long ones are not padded together with the
        // short ones.
        let mut lens = vec![90; 29];
        lens.extend([256; 3]);
        let b = check(&(0..32).collect::<Vec<_>>(), &lens);
        assert_eq!(b.last(), Some(&(29..32)), "{b:?}");
        // A text longer than the budget runs alone; empty input, no batch.
        assert_eq!(check(&[0, 1], &[3000, 3000]), vec![0..1, 1..2]);
        assert!(check(&[], &[]).is_empty());
        // Mixed lengths, sorted as embed sorts them.
        let lens: Vec<usize> = (0..300).map(|i| 2 + (i * 37) % 250).collect();
        let mut order: Vec<usize> = (0..300).collect();
        order.sort_by_key(|&i| lens[i]);
        check(&order, &lens);
    }
}
