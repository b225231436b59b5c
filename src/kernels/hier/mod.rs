//! Hierarchical memory bank (a k-means tree with beam-search fetch) and product-key lookup.
//!
//! # Hierarchical bank ([`HierIndex`])
//! A balanced k-means tree over the rows of a bank: every internal node holds the centroids of
//! its children, every leaf holds its rows (ids and vectors, contiguous). All leaves sit at the
//! same depth. Fetch is a beam search: at each level the `beam` best children (by the routing
//! score `q·c − ½‖c‖²`, i.e. nearest centroid in L2) of the current frontier are kept; the rows
//! of the final `beam` leaves are scored exactly (dot product) and the top `k` returned, sorted
//! by score, ties broken by the lower row id. Rows can be restricted by an allow-mask (a bitset
//! over row ids; it serves filters and tombstones).
//!
//! Build is top-down, level by level: every node's points are clustered into (about) `branching`
//! children by k-means trained on a seeded sample and then assigned exactly (top-1 by the routing
//! score). The two heavy steps — the assignment (a top-1 kernel) and the centroid update — run on
//! the GPU ([`gpu::build_gpu`]) or on the CPU ([`HierIndex::build`]); both follow the same control
//! flow ([`kmeans`]) and give the same tree up to near-ties of floating-point scores.
//!
//! The index is incremental: [`HierIndex::insert`] routes a new row to its nearest leaf; a leaf
//! that grows past `max_leaf` rows is split in two by 2-means, and an internal node that grows past
//! `2 × branching` children is split the same way, up to the root (which then gains a level), so
//! the tree stays balanced. [`HierIndex::remove`] takes a row out of its leaf at once.
//!
//! The index serialises to versioned bytes ([`HierIndex::to_bytes`]) and loads back
//! ([`HierIndex::from_bytes`]); corrupted or truncated bytes give [`HierError::Corrupt`], never a
//! panic.
//!
//! # Product-key lookup ([`pkm`])
//! PKM / UltraMem memory layers: split the query in two halves, top-k each half against its
//! sub-keys, score the k² combinations, keep the top-k, softmax them and return the weighted sum of
//! the selected value rows. CPU reference and GPU kernel.

#[doc(hidden)]
pub mod check;
pub mod dot;
pub mod format;
pub mod gpu;
pub mod gpu_search;
pub mod kmeans;
pub mod pkm;
pub mod synth;
pub mod topk;
mod tree;

pub use tree::{HierIndex, HierStats, SearchOptions, SearchResult, SearchStats};

use thiserror::Error;

use super::KernelError;
use crate::gpu::GpuError;

/// Errors of the hierarchical index and the product-key lookup.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum HierError {
    /// A bad argument or shape (raised before any work), or a GPU failure.
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// Serialised index bytes are malformed (truncated, inconsistent, or failing the checksum).
    #[error("index bytes are corrupt at byte {offset}: {reason}")]
    Corrupt {
        /// Byte offset where the problem was found.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
    /// Serialised index bytes of a format version this build cannot read.
    #[error(
        "index format version {found} is not supported (this build reads version {supported})"
    )]
    Version {
        /// The version in the bytes.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// A row id given to `build`/`insert` is already in the index.
    #[error("row id {id} is already in the index")]
    DuplicateId {
        /// The id.
        id: u32,
    },
    /// A row id given to `remove` is not in the index.
    #[error("row id {id} is not in the index")]
    UnknownId {
        /// The id.
        id: u32,
    },
}

impl HierError {
    /// A stable, machine-readable code for this error (the JS `Error.code`).
    pub fn code(&self) -> &'static str {
        match self {
            HierError::Kernel(e) => e.code(),
            HierError::Corrupt { .. } => "INDEX_CORRUPT",
            HierError::Version { .. } => "INDEX_VERSION",
            HierError::DuplicateId { .. } => "DUPLICATE_ID",
            HierError::UnknownId { .. } => "UNKNOWN_ID",
        }
    }
}

impl From<GpuError> for HierError {
    fn from(e: GpuError) -> Self {
        HierError::Kernel(KernelError::Gpu(e))
    }
}

pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> HierError {
    HierError::Kernel(KernelError::InvalidArgument {
        name,
        reason: reason.into(),
    })
}

/// Largest branching factor accepted.
pub const MAX_BRANCHING: usize = 256;
/// Largest build depth accepted (levels of internal nodes).
pub const MAX_DEPTH: usize = 8;
/// Largest `k` and `beam` accepted by the GPU search (the CPU path accepts any).
pub const GPU_MAX_K: usize = 256;

/// How to build a hierarchical index. [`HierConfig::auto`] picks every field from the row count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HierConfig {
    /// Children per internal node at build time (nodes may hold up to twice this after inserts).
    pub branching: usize,
    /// Levels of internal nodes at build time (the root is level 0; leaves sit below the last).
    pub depth: usize,
    /// A leaf that grows past this many rows is split in two (build splits oversized leaves too).
    pub max_leaf: usize,
    /// k-means iterations per level.
    pub iterations: usize,
    /// k-means trains on at most this many sampled points per centroid.
    pub train_per_centroid: usize,
    /// Seed of the sampling and initialisation (same seed, same data: same tree).
    pub seed: u64,
}

impl HierConfig {
    /// A configuration for `n` rows: leaves of about `√n` rows clamped to 32..=160, one level
    /// (a flat list of leaves) up to 64 leaves, otherwise two levels with up to 256 children per
    /// node (three only past 65,536 leaves). Shallow and wide on purpose: measured at 1M × 384,
    /// routing errors compound with depth (branching 18 × depth 3 reached recall@10 0.906 where
    /// branching 72 × depth 2 reached 0.983 for the same bytes), and leaves much larger than the
    /// data's natural clusters scatter neighbours over many leaves.
    pub fn auto(n: usize) -> HierConfig {
        let leaf = ((n as f64).sqrt().ceil() as usize).clamp(32, 160);
        let leaves = n.div_ceil(leaf).max(1);
        let mut depth = 1;
        if leaves > 64 {
            depth = 2;
            while (leaves as f64).powf(1.0 / depth as f64) > MAX_BRANCHING as f64
                && depth < MAX_DEPTH
            {
                depth += 1;
            }
        }
        let branching =
            ((leaves as f64).powf(1.0 / depth as f64).ceil() as usize).clamp(2, MAX_BRANCHING);
        HierConfig {
            branching,
            depth,
            max_leaf: Self::default_max_leaf(n, branching, depth),
            iterations: 8,
            train_per_centroid: 64,
            seed: 0x4D4E_454D_4F48_4945,
        }
    }

    /// `auto(n)` with `branching` and `depth` given (the leaf limit follows from them).
    pub fn with_shape(n: usize, branching: usize, depth: usize) -> HierConfig {
        HierConfig {
            branching,
            depth,
            max_leaf: Self::default_max_leaf(n, branching.max(1), depth.max(1)),
            ..HierConfig::auto(n)
        }
    }

    /// Twice the average leaf size of a full tree of this shape over `n` rows (at least 64).
    pub fn default_max_leaf(n: usize, branching: usize, depth: usize) -> usize {
        let leaves = (branching as f64)
            .powi(depth.min(MAX_DEPTH) as i32)
            .max(1.0);
        ((2.0 * n as f64 / leaves).ceil() as usize).max(64)
    }

    /// `Err(INVALID_INPUT)` naming the first field out of range.
    pub fn validate(&self) -> Result<(), HierError> {
        if !(2..=MAX_BRANCHING).contains(&self.branching) {
            return Err(invalid(
                "branching",
                format!("must be in 2..={MAX_BRANCHING}, got {}", self.branching),
            ));
        }
        if !(1..=MAX_DEPTH).contains(&self.depth) {
            return Err(invalid(
                "depth",
                format!("must be in 1..={MAX_DEPTH}, got {}", self.depth),
            ));
        }
        if self.max_leaf < 2 || self.max_leaf > (1 << 24) {
            return Err(invalid(
                "maxLeaf",
                format!("must be in 2..=16777216, got {}", self.max_leaf),
            ));
        }
        if self.iterations > 100 {
            return Err(invalid(
                "iterations",
                format!("must be at most 100, got {}", self.iterations),
            ));
        }
        if self.train_per_centroid == 0 || self.train_per_centroid > 1 << 16 {
            return Err(invalid(
                "trainPerCentroid",
                format!("must be in 1..=65536, got {}", self.train_per_centroid),
            ));
        }
        Ok(())
    }

    /// The most children an internal node may hold before it is split.
    pub fn max_fanout(&self) -> usize {
        self.branching * 2
    }
}

/// The default beam for an index with `leaves` leaves: about 1/24 of the leaves, clamped to
/// 8..=256 (256 is the GPU search's limit).
///
/// On the seeded clustered data of the benchmarks this gives recall@10 ≈ 0.98–0.998 (10k to 1M
/// rows); callers needing a guarantee on their data (the engine asks for 0.99) pass a beam
/// measured for it (see the README for recall/bytes curves).
pub fn auto_beam(leaves: usize) -> usize {
    (leaves / 24).clamp(8, GPU_MAX_K)
}
