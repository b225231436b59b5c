//! Linear recurrence in headless Chromium (WebGPU on SwiftShader), part 2 (see
//! `web_recurrence.rs`): dk/dv = 64/32 and 128/16 with every variant, T not a multiple of the
//! chunk, 16 heads, decays from 0.5 to 0.9999 and far below 0.5. Error norm: per head,
//! max |diff| / max |ref| over outputs and over the state, tolerance 1e-3.
#![cfg(target_arch = "wasm32")]

use mnemo::kernels::recurrence::synth::{Case, Variant};
use mnemo::kernels::recurrence::*;
use mnemo::rng::Rng;
use mnemo::testing::require_gpu;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn recurrence_webgpu_matches_cpu_64_32_and_128_16() {
    let gpu = require_gpu().await;
    let mut rng = Rng::new(0xD1A5);
    let mut cases = Vec::new();
    for (i, variant) in Variant::ALL.into_iter().enumerate() {
        let (dk, dv) = if i % 2 == 0 { (64, 32) } else { (128, 16) };
        let t = [97, 33, 2, 64, 100, 40][i];
        let h = [2, 1, 16, 2, 1, 3][i];
        let decays = [(0.5, 0.5), (0.9999, 0.9999), (0.5, 0.9999)][i % 3];
        cases.push(Case::new(
            &mut rng,
            t,
            h,
            dk,
            dv,
            variant,
            decays,
            i % 3 != 1,
        ));
    }
    // Decays far below 0.5 stay finite and exact (log-space, exponents <= 0).
    cases.push(Case::new(
        &mut rng,
        70,
        2,
        64,
        32,
        Variant::GatedDeltaVector,
        (1e-6, 0.3),
        true,
    ));
    for c in &cases {
        let input = c.input();
        let want = recurrent_cpu(&input).unwrap();
        for form in [Form::Recurrent, Form::Chunked] {
            let got = linear_recurrence(&gpu, &input, form).await.unwrap();
            let (eo, ho) = max_rel_err_per_head(&got.out, &want.out, c.h, c.dv);
            let (es, hs) = max_rel_err_per_head(&got.state, &want.state, c.h, c.dk * c.dv);
            assert!(
                eo <= 1e-3 && es <= 1e-3,
                "{} {form:?}: out rel err {eo:e} (head {ho}), state {es:e} (head {hs})",
                c.label
            );
        }
    }
}
