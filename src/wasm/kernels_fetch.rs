//! `Kernels` methods for the memory-fetch kernels (top-k, gather) (a separate `#[wasm_bindgen] impl Kernels` block).
