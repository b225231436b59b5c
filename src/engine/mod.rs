//! The memory engine's retrieval core: remember / recall with hybrid ranking (vector + BM25 +
//! recency + importance), in pure Rust so it is tested natively and runs unchanged in wasm.
//!
//! - [`lexical`]: the per-namespace BM25 inverted index (incremental, persisted);
//! - [`embed`]: the built-in `'hashed-ngrams'` embedder (no model, lexical quality);
//!   [`lower`] is its Unicode lowercasing from a compact table;
//! - [`fusion`] and [`recency`]: fusion of vector, lexical, recency and importance parts;
//! - [`fading`]: the per-namespace fading-context state (a linear recurrence);
//! - [`recall`]: the CPU recall pipeline tying them together over an in-memory corpus;
//! - [`mnemo`]: the memory engine [`Mnemo`] over the episodic store (remember / recall /
//!   forget, persisted derived indexes, other tabs' writes, the memory-fetch kernels);
//! - [`eval`] and [`locomo`]: retrieval metrics and the LoCoMo evaluation pipeline (pure
//!   functions over bytes, reusable from wasm).

pub mod codec;
pub mod embed;
pub mod error;
pub mod eval;
pub mod fading;
pub mod fusion;
pub mod lexical;
pub mod locomo;
pub mod lower;
pub mod mnemo;
pub mod recall;
pub mod recency;
pub mod tokenize;

/// A document (episode) id: stable and monotonic in the store, so ascending ids follow
/// insertion (conversation) order and break ties.
pub type DocId = u64;

pub use error::EngineError;

pub use embed::HashedNgrams;
pub use fusion::{fuse, Candidate, FusionConfig, Hit, Parts, Weights};
pub use lexical::{Allow, Bm25Params, LexHit, LexicalIndex, LexicalQuery};
pub use mnemo::{Memory, Mnemo, MnemoError, MnemoOptions, RecallHit, RecallQuery};
