//! Browser test of the text encoder's GPU kernels (wasm-bindgen-test in headless Chromium,
//! WebGPU on SwiftShader): the dense layer (tiled and vec4 register-block kernels, with and without GELU)
//! and LayerNorm (with and without the fused residual) against the CPU reference, on small seeded
//! shapes that are not multiples of the tiles. Kept tiny: SwiftShader is slow.
#![cfg(target_arch = "wasm32")]

use mnemo::encoder::gpu::{layer_norm_gpu, linear_gpu, linear_v4_gpu};
use mnemo::encoder::model::{gelu, layer_norm, Linear};
use mnemo::rng::Rng;
use mnemo::testing::assert_close;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn encoder_kernels_webgpu_match_cpu() {
    let c = mnemo::testing::require_gpu().await;
    let ctx = c.gpu_context().unwrap();
    let mut rng = Rng::new(21);
    for &(m, n, k) in &[(5, 67, 19), (70, 132, 40), (17, 300, 24)] {
        for gelu_on in [false, true] {
            let w = rng.vec_f32(n * k);
            let b = rng.vec_f32(n);
            let x = rng.vec_f32(m * k);
            let lin = Linear::new(w.clone(), b.clone(), n, k);
            let mut want = lin.forward(&x);
            if gelu_on {
                want.iter_mut().for_each(|v| *v = gelu(*v));
            }
            let what = format!("m={m} n={n} k={k} gelu={gelu_on}");
            let got = linear_gpu(ctx, &x, &w, &b, m, n, k, gelu_on).await.unwrap();
            assert_close(&format!("linear {what}"), &got, &want, 1e-4, 1e-4);
            let got = linear_v4_gpu(ctx, &x, &w, &b, m, n, k, gelu_on)
                .await
                .unwrap();
            assert_close(&format!("linear_v4 {what}"), &got, &want, 1e-4, 1e-4);
        }
    }
    let (rows, h) = (9, 384);
    let x: Vec<f32> = (0..rows * h).map(|_| rng.normal() * 2.0 + 0.5).collect();
    let r = rng.vec_f32(rows * h);
    let g = rng.vec_f32(h);
    let b = rng.vec_f32(h);
    for residual in [None, Some(&r[..])] {
        let mut want: Vec<f32> = match residual {
            Some(r) => x.iter().zip(r).map(|(a, b)| a + b).collect(),
            None => x.clone(),
        };
        layer_norm(&mut want, &g, &b, 1e-12);
        let got = layer_norm_gpu(ctx, &x, residual, &g, &b, 1e-12)
            .await
            .unwrap();
        assert_close("layernorm", &got, &want, 1e-4, 1e-4);
    }
}
