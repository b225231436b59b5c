//! `Kernels` methods for the attention kernels (a separate `#[wasm_bindgen] impl Kernels` block).
