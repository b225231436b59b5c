//! The JavaScript API (wasm-bindgen). The only module that knows `JsValue`: it converts typed
//! arrays and option objects into core types, calls the core, and turns typed errors into JS
//! `Error` objects carrying a stable `code`.

mod embedder;
mod engine;
mod errors;
mod kernels;
mod kernels_attention;
mod kernels_fetch;
mod kernels_hier;
mod kernels_recurrence;
mod model_cache;
mod store;

pub use errors::to_js_error;
pub use kernels::Kernels;
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
