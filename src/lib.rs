//! mnemo: an on-device memory engine for browser AI apps.
//!
//! Layers, from the inside out (see `ARCHITECTURE.md`):
//! - [`kernels`]: compute kernels, each a WGSL shader with a CPU reference beside it;
//! - [`gpu`]: the GPU runtime (device, pipeline cache, buffers, error scopes) over wgpu;
//! - [`compute`]: the GPU-or-CPU choice every kernel takes;
//! - [`encoder`]: the built-in text encoder (MiniLM tokenizer, weights, forward pass);
//! - `wasm` (wasm32 only): the wasm-bindgen API, the only code that knows `JsValue`.

// wasm32 is single-threaded and wgpu's WebGPU handles are not `Send`; the one `Arc`-based code
// path serves both targets.
#![cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]

pub mod compute;
pub mod encoder;
pub mod engine;
pub mod gpu;
pub mod kernels;
pub(crate) mod num_fmt;
pub mod rng;
pub mod shaders;
pub(crate) mod sort;
pub mod store;
#[doc(hidden)]
pub mod testing;
pub mod wgsl_minify;

#[cfg(target_arch = "wasm32")]
pub mod wasm;

pub use compute::{Backend, Compute, Prefer};
pub use gpu::{AdapterSummary, GpuError};
pub use kernels::KernelError;
