//! `Kernels` methods for the linear-recurrence kernels (a separate `#[wasm_bindgen] impl Kernels` block).
