//! The WGSL sources of every kernel, compiled into the binary from `shaders/*.wgsl`.
//!
//! One file per kernel. `tests/shaders.rs` checks that every file in `shaders/` is registered
//! here and that each one parses and validates with naga under WebGPU's capabilities.
//! The registry is split by kernel family (one list each) so that families evolve independently.

/// Foundation kernels.
const CORE: &[(&str, &str)] = &[("scores", include_str!("../shaders/scores.wgsl"))];

/// Memory fetch: flat top-k, gather, quantised banks.
const FETCH: &[(&str, &str)] = &[
    ("fetch_topk", include_str!("../shaders/fetch_topk.wgsl")),
    ("fetch_gather", include_str!("../shaders/fetch_gather.wgsl")),
    (
        "fetch_scatter",
        include_str!("../shaders/fetch_scatter.wgsl"),
    ),
    ("fetch_copy", include_str!("../shaders/fetch_copy.wgsl")),
];

/// Hierarchical memory bank and product-key lookup.
const HIER: &[(&str, &str)] = &[
    ("hier_assign", include_str!("../shaders/hier_assign.wgsl")),
    ("hier_update", include_str!("../shaders/hier_update.wgsl")),
    ("hier_scan", include_str!("../shaders/hier_scan.wgsl")),
    ("hier_expand", include_str!("../shaders/hier_expand.wgsl")),
    ("hier_gather", include_str!("../shaders/hier_gather.wgsl")),
    ("pkm", include_str!("../shaders/pkm.wgsl")),
];

/// Linear recurrence (recurrent and chunked forms).
const RECURRENCE: &[(&str, &str)] = &[
    (
        "recurrence_recurrent",
        include_str!("../shaders/recurrence_recurrent.wgsl"),
    ),
    (
        "recurrence_chunk_prep",
        include_str!("../shaders/recurrence_chunk_prep.wgsl"),
    ),
    (
        "recurrence_chunk_scan",
        include_str!("../shaders/recurrence_chunk_scan.wgsl"),
    ),
];

/// Attention: prefill, decode, block-sparse.
const ATTENTION: &[(&str, &str)] = &[
    (
        "attention_prefill",
        include_str!("../shaders/attention_prefill.wgsl"),
    ),
    (
        "attention_decode",
        include_str!("../shaders/attention_decode.wgsl"),
    ),
    (
        "attention_sparse",
        include_str!("../shaders/attention_sparse.wgsl"),
    ),
    ("matmul", include_str!("../shaders/matmul.wgsl")),
];

/// The built-in text encoder (MiniLM): dense layer with bias (+ GELU), LayerNorm (+ residual).
const ENCODER: &[(&str, &str)] = &[
    (
        "encoder_linear",
        include_str!("../shaders/encoder_linear.wgsl"),
    ),
    (
        "encoder_layernorm",
        include_str!("../shaders/encoder_layernorm.wgsl"),
    ),
];

/// Every family, in order.
const FAMILIES: &[&[(&str, &str)]] = &[CORE, FETCH, HIER, RECURRENCE, ATTENTION, ENCODER];

/// Every registered shader as (name, source).
pub fn all() -> impl Iterator<Item = (&'static str, &'static str)> {
    FAMILIES.iter().flat_map(|f| f.iter().copied())
}

/// The WGSL source registered under `name`.
pub fn source(name: &str) -> Option<&'static str> {
    all().find(|(n, _)| *n == name).map(|(_, s)| s)
}
