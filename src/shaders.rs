//! The WGSL sources of every kernel, compiled into the binary from `shaders/*.wgsl`.
//!
//! One file per kernel. `tests/shaders.rs` checks that every file in `shaders/` is registered
//! here and that each one parses and validates with naga under WebGPU's capabilities.
//! The registry is split by kernel family (one list each) so that families evolve independently.

/// Foundation kernels.
const CORE: &[(&str, &str)] = &[("scores", include_str!("../shaders/scores.wgsl"))];

/// Memory fetch: flat top-k, gather, quantised banks.
const FETCH: &[(&str, &str)] = &[];

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
const RECURRENCE: &[(&str, &str)] = &[];

/// Attention: prefill, decode, block-sparse.
const ATTENTION: &[(&str, &str)] = &[];

/// Every family, in order.
const FAMILIES: &[&[(&str, &str)]] = &[CORE, FETCH, HIER, RECURRENCE, ATTENTION];

/// Every registered shader as (name, source).
pub fn all() -> impl Iterator<Item = (&'static str, &'static str)> {
    FAMILIES.iter().flat_map(|f| f.iter().copied())
}

/// The WGSL source registered under `name`.
pub fn source(name: &str) -> Option<&'static str> {
    all().find(|(n, _)| *n == name).map(|(_, s)| s)
}
