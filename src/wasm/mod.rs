//! The JavaScript API (wasm-bindgen). The only module that knows `JsValue`: it converts typed
//! arrays and option objects into core types, calls the core, and turns typed errors into JS
//! `Error` objects carrying a stable `code`.

#[cfg(all(feature = "js-engine", feature = "encoder"))]
mod embedder;
#[cfg(feature = "js-engine")]
mod engine;
mod errors;
#[cfg(feature = "js-kernels")]
mod kernels;
#[cfg(feature = "js-kernels")]
mod kernels_attention;
#[cfg(feature = "js-kernels")]
mod kernels_fetch;
#[cfg(feature = "js-kernels")]
mod kernels_hier;
#[cfg(feature = "js-kernels")]
mod kernels_recurrence;
#[cfg(all(feature = "js-engine", feature = "encoder"))]
mod model_cache;
#[cfg(feature = "js-store")]
mod store;

pub use errors::to_js_error;
#[cfg(feature = "js-kernels")]
pub use kernels::Kernels;
#[cfg(feature = "js-kernels")]
pub use kernels_hier::HierIndexJs as HierIndex;

use wasm_bindgen::prelude::*;

/// Install the panic hook so that a bug shows its Rust message in the console.
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

/// The crate version.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}
