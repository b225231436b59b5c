//! The WGSL sources of every kernel, compiled into the binary from `shaders/*.wgsl`.
//!
//! One file per kernel. `tests/shaders.rs` checks that every file in `shaders/` is registered
//! here and that each one parses and validates with naga under WebGPU's capabilities.

/// (name, source) of every shader.
pub const ALL: &[(&str, &str)] = &[("scores", include_str!("../shaders/scores.wgsl"))];

/// The WGSL source registered under `name`.
pub fn source(name: &str) -> Option<&'static str> {
    ALL.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}
