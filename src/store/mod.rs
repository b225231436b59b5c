//! The episodic store: episodes, validation, the backend trait, the in-memory and IndexedDB
//! backends, the change feed, engine blobs, and the portable export/import format.
//!
//! Layers (see `ARCHITECTURE.md`, "Episodic store"):
//! - [`episode`]: the model, its limits and validation (before any write);
//! - [`codec`]: the bytes both backends store (episode records packed in pages, packed vector
//!   segments, state, change records, blobs);
//! - [`plan`](self) (private): which segments and pages a write rewrites, merges or deletes;
//! - [`Store`]: operations as one read-only snapshot plus one conditional commit;
//! - [`backend`]: the trait, with [`MemoryBackend`] and (wasm32) [`idb::IdbBackend`];
//! - [`export`]: the portable file format and its hardened parser;
//! - [`journal`]: the second copy of committed writes outside the database (OPFS in the
//!   browser), replayed when the browser discarded the database;
//! - [`testing`]: the contract suite and the model-based test, generic over the backend.

pub mod backend;
pub mod codec;
mod core;
pub mod episode;
pub mod error;
pub mod export;
#[cfg(target_arch = "wasm32")]
pub mod idb;
pub mod journal;
pub(crate) mod lock;
pub mod memory;
#[cfg(target_arch = "wasm32")]
pub mod opfs;
#[cfg(target_arch = "wasm32")]
pub mod opfs_worker;
mod plan;
#[doc(hidden)]
pub mod testing;

pub use backend::{
    Backend, Durability, Fault, JournalDir, SegmentSource, VecSink, VectorSink, SCHEMA_VERSION,
};
pub use codec::Blob;
pub use core::{
    default_segment_capacity, Changes, CompactionHook, ImportReport, OpenOptions, Recovery,
    ScanQuery, Store, StoreStats, VectorSet, DEFAULT_CHANGE_RETENTION,
};
pub use episode::{
    Episode, Metadata, NewEpisode, Patch, MAX_DIMS, MAX_METADATA_BYTES, MAX_NAMESPACE_BYTES,
    MAX_ROLE_BYTES, MAX_TAGS, MAX_TAG_BYTES, MAX_TEXT_BYTES,
};
pub use error::StoreError;
pub use memory::{MemoryBackend, MemoryJournal};
