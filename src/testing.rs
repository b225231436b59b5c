//! Helpers shared by the native, browser and benchmark harnesses: comparison of GPU output
//! against the CPU reference with the failing index in the message, and GPU acquisition that
//! fails loudly instead of skipping.

use crate::{Compute, GpuError};

/// Compare `got` (e.g. GPU) against `want` (the CPU reference) elementwise:
/// `|got - want| <= atol + rtol * |want|`. Returns a message naming the first failing index and
/// both values, or `Ok` with the largest absolute error seen.
pub fn compare(what: &str, got: &[f32], want: &[f32], rtol: f32, atol: f32) -> Result<f32, String> {
    if got.len() != want.len() {
        return Err(format!(
            "{what}: length {} != reference length {}",
            got.len(),
            want.len()
        ));
    }
    let mut worst = 0.0f32;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs();
        // Written so that NaN fails too.
        let ok = err <= atol + rtol * w.abs();
        if !ok {
            return Err(format!(
                "{what}: mismatch at index {i}: got {g:e}, reference {w:e} (|diff| = {err:e}, allowed {:e})",
                atol + rtol * w.abs()
            ));
        }
        worst = worst.max(err);
    }
    Ok(worst)
}

/// [`compare`], panicking on mismatch.
#[track_caller]
pub fn assert_close(what: &str, got: &[f32], want: &[f32], rtol: f32, atol: f32) -> f32 {
    compare(what, got, want, rtol, atol).unwrap_or_else(|m| panic!("{m}"))
}

/// The message a GPU-requiring test fails with when there is no adapter.
pub fn no_gpu_message(err: &GpuError) -> String {
    format!(
        "this test needs a GPU adapter and none was found ({err}). Natively install Mesa's \
         lavapipe (`apt-get install mesa-vulkan-drivers`, done by `make setup`); in the browser \
         run Chromium with the WebGPU flags of webdriver.json. GPU tests never skip."
    )
}

/// A GPU `Compute`, or a panic explaining how to get one. Tests that need a GPU call this.
pub async fn require_gpu() -> Compute {
    match Compute::gpu().await {
        Ok(c) => c,
        Err(e) => panic!("{}", no_gpu_message(&e)),
    }
}
