//! The WGSL sources of every kernel, compiled into the binary from `shaders/*.wgsl`.
//!
//! One file per kernel, minified at build time (`build.rs`, [`crate::wgsl_minify`]: no comments
//! or indentation in the binary). Each shader is a `static` [`Shader`] that its kernel's host code
//! names directly, so a build that does not use a kernel does not carry its source.
//! `tests/shaders.rs` checks that every file in `shaders/` is registered here, that the registered
//! source is the minified file, and that both forms parse and validate with naga under WebGPU's
//! capabilities. The registry is split by kernel family (one list each) so that families evolve
//! independently.

/// A registered WGSL shader: its name (the file stem in `shaders/`) and its minified source.
/// Equality and hashing go by name (the pipeline cache keys on it).
pub struct Shader {
    /// The file stem in `shaders/`.
    pub name: &'static str,
    /// The minified WGSL source.
    pub source: &'static str,
}

impl PartialEq for Shader {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Shader {}

impl std::hash::Hash for Shader {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl std::fmt::Debug for Shader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Shader({})", self.name)
    }
}

/// `pub static NAME: Shader` for `shaders/<file>.wgsl`, minified by `build.rs`.
macro_rules! shader {
    ($(#[$doc:meta])* $id:ident = $file:literal) => {
        $(#[$doc])*
        pub static $id: Shader = Shader {
            name: $file,
            source: include_str!(concat!(env!("OUT_DIR"), "/shaders/", $file, ".wgsl")),
        };
    };
}

shader!(/// Batched dot-product scores.
    SCORES = "scores");
shader!(/// Flat top-k: fused scores + per-workgroup top-k (`scan`) and list reduction (`merge`).
    FETCH_TOPK = "fetch_topk");
shader!(/// Gather rows or blocks into a contiguous f32 buffer.
    FETCH_GATHER = "fetch_gather");
shader!(/// Write appended rows into the blocked bank layout.
    FETCH_SCATTER = "fetch_scatter");
shader!(/// The copy-bandwidth baseline.
    FETCH_COPY = "fetch_copy");
shader!(/// Hierarchical bank build: assign points to centroids.
    HIER_ASSIGN = "hier_assign");
shader!(/// Hierarchical bank build: centroid update.
    HIER_UPDATE = "hier_update");
shader!(/// Hierarchical search: routing scan and selection.
    HIER_SCAN = "hier_scan");
shader!(/// Hierarchical search: expand the chosen nodes.
    HIER_EXPAND = "hier_expand");
shader!(/// Hierarchical search: gather the hits' vectors.
    HIER_GATHER = "hier_gather");
shader!(/// Product-key lookup.
    PKM = "pkm");
shader!(/// Linear recurrence, recurrent form.
    RECURRENCE_RECURRENT = "recurrence_recurrent");
shader!(/// Linear recurrence, chunked form, pass 1.
    RECURRENCE_CHUNK_PREP = "recurrence_chunk_prep");
shader!(/// Linear recurrence, chunked form, pass 2.
    RECURRENCE_CHUNK_SCAN = "recurrence_chunk_scan");
shader!(/// Attention prefill.
    ATTENTION_PREFILL = "attention_prefill");
shader!(/// Attention decode (partial + combine) and sparse attend.
    ATTENTION_DECODE = "attention_decode");
shader!(/// Block-sparse attention: block means and selection.
    ATTENTION_SPARSE = "attention_sparse");
shader!(/// Tiled matmul (benchmark).
    MATMUL = "matmul");
shader!(/// Encoder dense layer (+ GELU).
    ENCODER_LINEAR = "encoder_linear");
shader!(/// The text encoder's dense layer for CPU-backed adapters: 8 x 8 register blocks from vec4
    /// loads, no workgroup memory.
    ENCODER_LINEAR_V4 = "encoder_linear_v4");
shader!(/// The text encoder's self-attention for CPU-backed adapters (head size 32, one dispatch
    /// per batch, no workgroup memory).
    ENCODER_ATTENTION = "encoder_attention");
shader!(/// Encoder LayerNorm (+ residual).
    ENCODER_LAYERNORM = "encoder_layernorm");

/// Foundation kernels.
const CORE: &[&Shader] = &[&SCORES];

/// Memory fetch: flat top-k, gather, quantised banks.
const FETCH: &[&Shader] = &[&FETCH_TOPK, &FETCH_GATHER, &FETCH_SCATTER, &FETCH_COPY];

/// Hierarchical memory bank and product-key lookup.
const HIER: &[&Shader] = &[
    &HIER_ASSIGN,
    &HIER_UPDATE,
    &HIER_SCAN,
    &HIER_EXPAND,
    &HIER_GATHER,
    &PKM,
];

/// Linear recurrence (recurrent and chunked forms).
const RECURRENCE: &[&Shader] = &[
    &RECURRENCE_RECURRENT,
    &RECURRENCE_CHUNK_PREP,
    &RECURRENCE_CHUNK_SCAN,
];

/// Attention: prefill, decode, block-sparse.
const ATTENTION: &[&Shader] = &[
    &ATTENTION_PREFILL,
    &ATTENTION_DECODE,
    &ATTENTION_SPARSE,
    &MATMUL,
];

/// The built-in text encoder (MiniLM): dense layer with bias (+ GELU), LayerNorm (+ residual).
const ENCODER: &[&Shader] = &[
    &ENCODER_LINEAR,
    &ENCODER_LINEAR_V4,
    &ENCODER_ATTENTION,
    &ENCODER_LAYERNORM,
];

/// Every family, in order.
const FAMILIES: &[&[&Shader]] = &[CORE, FETCH, HIER, RECURRENCE, ATTENTION, ENCODER];

/// Every registered shader as (name, minified source).
pub fn all() -> impl Iterator<Item = (&'static str, &'static str)> {
    FAMILIES
        .iter()
        .flat_map(|f| f.iter().map(|s| (s.name, s.source)))
}

/// The minified WGSL source registered under `name`.
pub fn source(name: &str) -> Option<&'static str> {
    all().find(|(n, _)| *n == name).map(|(_, s)| s)
}
