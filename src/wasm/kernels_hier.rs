//! `Kernels` methods for the hierarchical and product-key lookups (a separate `#[wasm_bindgen] impl Kernels` block).
