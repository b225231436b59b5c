//! Browser tests (wasm-bindgen-test in headless Chromium): the kernels on WebGPU (SwiftShader in
//! CI) against the CPU reference, the backend observable, and the CPU-forced path identical to
//! the reference. A missing WebGPU adapter fails the test.
#![cfg(target_arch = "wasm32")]

use mnemo::kernels::scores::{scores, scores_cpu};
use mnemo::rng::Rng;
use mnemo::testing::{assert_close, require_gpu};
use mnemo::{Backend, Compute, Prefer};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn webgpu_adapter_is_used() {
    let c = require_gpu().await;
    assert_eq!(c.backend(), Backend::Gpu);
    let info = c.adapter_info().expect("adapter info");
    assert_eq!(info.api, "webgpu", "{info:?}");
    web_sys::console::log_1(&format!("WebGPU adapter: {info:?}").into());
}

#[wasm_bindgen_test]
async fn scores_webgpu_matches_cpu_on_seeded_shapes() {
    let c = require_gpu().await;
    let mut rng = Rng::new(0xB0B);
    let ns = [0usize, 1, 63, 65, 1000, 4097];
    let ds = [1usize, 3, 33, 384];
    let bs = [1usize, 5, 64];
    for case in 0..16 {
        let (n, d, b) = (*rng.pick(&ns), *rng.pick(&ds), *rng.pick(&bs));
        let bank = rng.vec_f32(n * d);
        let queries = rng.vec_f32(b * d);
        let want = scores_cpu(&bank, d, &queries).unwrap();
        let got = scores(&c, &bank, d, &queries).await.unwrap();
        assert_close(
            &format!("case {case}: n={n} d={d} b={b}"),
            &got,
            &want,
            1e-5,
            1e-5 * d as f32,
        );
    }
}

#[wasm_bindgen_test]
async fn cpu_forced_run_is_identical_to_reference() {
    let c = Compute::new(Prefer::Cpu).await;
    assert_eq!(c.backend(), Backend::Cpu);
    let mut rng = Rng::new(5);
    let bank = rng.vec_f32(300 * 33);
    let q = rng.vec_f32(4 * 33);
    let got = scores(&c, &bank, 33, &q).await.unwrap();
    assert_eq!(got, scores_cpu(&bank, 33, &q).unwrap());
    // And the GPU run on the same input agrees with it.
    let g = require_gpu().await;
    let got_gpu = scores(&g, &bank, 33, &q).await.unwrap();
    assert_close("gpu vs cpu-forced", &got_gpu, &got, 1e-5, 1e-4);
}

#[wasm_bindgen_test]
async fn js_api_errors_carry_a_code() {
    let k = mnemo::wasm::Kernels::create(None).await.unwrap();
    assert_eq!(k.backend(), "webgpu");
    let err = k
        .scores(vec![1.0, 2.0, 3.0], 2, vec![1.0, 2.0])
        .await
        .unwrap_err();
    let code = js_sys::Reflect::get(&err, &"code".into()).unwrap();
    assert_eq!(code.as_string().as_deref(), Some("SHAPE_MISMATCH"));
}
