//! The embedders the engine runs itself when a call gives text without an embedding: the
//! built-in `'hashed-ngrams'` ([`HashedNgrams`], no model) and the MiniLM text encoder
//! ([`TextEncoder`], all-MiniLM-L6-v2), behind one async [`Embedder::embed`] so that remember,
//! recall, update and [`super::Mnemo::embed`] do not care which one runs.
//!
//! The encoder runs on the engine's GPU device or on its CPU path, chosen once at open by
//! [`EncoderPath`]: `Auto` takes the GPU only on a hardware adapter (the encoder's GPU path is
//! several times slower than its CPU path on the software adapters measured, lavapipe and
//! SwiftShader, like the memory-fetch kernels), `Gpu` whenever the engine has a device, `Cpu`
//! never.

#[cfg(feature = "encoder")]
use std::rc::Rc;

use super::error::{MnemoError, Result};
use crate::compute::{Backend, Compute};
#[cfg(feature = "encoder")]
use crate::encoder::TextEncoder;
use crate::engine::embed::HashedNgrams;

/// Which path runs the text encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EncoderPath {
    /// The engine's GPU device when it is a hardware adapter; otherwise the CPU path.
    #[default]
    Auto,
    /// The engine's GPU device whenever it has one (the CPU path without one).
    Gpu,
    /// Always the CPU path.
    Cpu,
}

impl EncoderPath {
    /// Parse the JS spelling: `'auto'`, `'webgpu'`/`'gpu'` or `'cpu'`.
    pub fn parse(s: &str) -> Option<EncoderPath> {
        match s {
            "auto" => Some(EncoderPath::Auto),
            "webgpu" | "gpu" => Some(EncoderPath::Gpu),
            "cpu" => Some(EncoderPath::Cpu),
            _ => None,
        }
    }

    /// The compute the encoder runs on, given the engine's.
    pub fn compute(self, engine: &Compute) -> Compute {
        let hardware = engine
            .adapter_info()
            .is_some_and(|a| a.device_type != "cpu");
        match self {
            EncoderPath::Gpu if engine.gpu_context().is_some() => engine.clone(),
            EncoderPath::Auto if hardware => engine.clone(),
            _ => Compute::cpu(),
        }
    }
}

/// What the engine knows about its embedder (for stats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbedderInfo {
    /// `'hashed-ngrams'` or the encoder's model name.
    pub name: &'static str,
    /// Where it runs.
    pub backend: Backend,
}

/// A configured embedder.
pub(crate) enum Embedder {
    /// `'hashed-ngrams'`.
    Hashed(HashedNgrams),
    /// The MiniLM encoder on its compute.
    #[cfg(feature = "encoder")]
    Encoder {
        encoder: Rc<TextEncoder>,
        compute: Compute,
    },
}

impl Embedder {
    /// Name and backend.
    pub(crate) fn info(&self) -> EmbedderInfo {
        match self {
            Embedder::Hashed(_) => EmbedderInfo {
                name: HashedNgrams::NAME,
                backend: Backend::Cpu,
            },
            #[cfg(feature = "encoder")]
            Embedder::Encoder { compute, .. } => EmbedderInfo {
                name: TextEncoder::ALL_MINILM_L6_V2,
                backend: compute.backend(),
            },
        }
    }

    /// One embedding per text, in order. The encoder runs them in length-sorted batches.
    pub(crate) async fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        match self {
            Embedder::Hashed(h) => Ok(texts.iter().map(|t| h.embed(t)).collect()),
            #[cfg(feature = "encoder")]
            Embedder::Encoder { encoder, compute } => {
                if texts.is_empty() {
                    return Ok(Vec::new());
                }
                let d = encoder.dims();
                let flat = encoder
                    .embed(compute, texts)
                    .await
                    .map_err(MnemoError::Encoder)?;
                Ok(flat.chunks_exact(d).map(<[f32]>::to_vec).collect())
            }
        }
    }

    /// The embedding of one text.
    pub(crate) async fn embed_one(&self, text: &str) -> Result<Vec<f32>> {
        let mut v = self.embed(&[text]).await?;
        v.pop()
            .ok_or_else(|| MnemoError::Embedder("the embedder returned no vector".into()))
    }
}
