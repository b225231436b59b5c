//! Browser tests of the attention kernels (wasm-bindgen-test in headless Chromium, WebGPU on
//! SwiftShader): prefill, decode (including a 32k-key cache), block-sparse with the identical
//! selection, fully masked rows and large logits against the CPU reference, and the JS API
//! (`kernels.attention` / `decodeAttention` / `sparseAttention` / `matmul`) with typed errors.
//!
//! Accuracy norm: per output row, `max_d |gpu - cpu| / max_d |cpu| <= 1e-3`; rows whose
//! reference is zero must be exactly zero.
#![cfg(target_arch = "wasm32")]

use mnemo::kernels::attention::{
    attention, attention_cpu, decode_attention, matmul, row_relative_error,
    sparse_attention_cpu_with, sparse_attention_gpu_with_selection, sparse_select_cpu,
    AttentionArgs, SparseParams,
};
use mnemo::rng::Rng;
use mnemo::Compute;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const TOL: f32 = 1e-3;

struct Case {
    heads: usize,
    kv_heads: usize,
    d: usize,
    causal: bool,
    mask: Option<Vec<u8>>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
}

#[allow(clippy::too_many_arguments)]
fn case(
    rng: &mut Rng,
    tq: usize,
    tk: usize,
    heads: usize,
    kv_heads: usize,
    d: usize,
    causal: bool,
    masked: bool,
) -> Case {
    Case {
        heads,
        kv_heads,
        d,
        causal,
        mask: masked.then(|| (0..tk).map(|_| (rng.below(5) != 0) as u8).collect()),
        q: (0..tq * heads * d).map(|_| rng.normal()).collect(),
        k: (0..tk * kv_heads * d).map(|_| rng.normal()).collect(),
        v: rng.vec_f32(tk * kv_heads * d),
    }
}

impl Case {
    fn args(&self) -> AttentionArgs<'_> {
        AttentionArgs {
            q: &self.q,
            k: &self.k,
            v: &self.v,
            heads: self.heads,
            kv_heads: self.kv_heads,
            head_dim: self.d,
            causal: self.causal,
            mask: self.mask.as_deref(),
        }
    }
}

thread_local! {
    static GPU: std::cell::RefCell<Option<Compute>> = const { std::cell::RefCell::new(None) };
}

/// One WebGPU device for all tests of this file (pipelines compile once per device, and
/// compiling is the slow part on SwiftShader).
async fn require_gpu() -> Compute {
    if let Some(c) = GPU.with(|g| g.borrow().clone()) {
        return c;
    }
    let c = mnemo::testing::require_gpu().await;
    GPU.with(|g| *g.borrow_mut() = Some(c.clone()));
    c
}

fn check_rows(what: &str, got: &[f32], want: &[f32], d: usize) -> f32 {
    assert!(
        got.iter().all(|x| x.is_finite()),
        "{what}: non-finite output"
    );
    row_relative_error(what, got, want, d, TOL).unwrap_or_else(|m| panic!("{m}"))
}

/// Logs the test's wall time when dropped.
struct Timer(&'static str, f64);

impl Drop for Timer {
    fn drop(&mut self) {
        log(&format!(
            "{}: {:.0} ms",
            self.0,
            js_sys::Date::now() - self.1
        ));
    }
}

fn timer(name: &'static str) -> Timer {
    Timer(name, js_sys::Date::now())
}

fn log(s: &str) {
    web_sys::console::log_1(&s.into());
}

#[wasm_bindgen_test]
async fn prefill_webgpu_matches_cpu() {
    let _t = timer("prefill_webgpu_matches_cpu");
    let c = require_gpu().await;
    let mut rng = Rng::new(0xAB1);
    let shapes = [
        (1, 1, 1, 1, 64, false, false),
        (17, 33, 4, 2, 64, true, false),
        (40, 129, 2, 1, 128, false, true),
        (100, 70, 4, 4, 64, true, true),
        (9, 300, 8, 2, 64, true, false),
        (31, 31, 3, 1, 32, false, false),
    ];
    let mut worst = 0.0f32;
    for (n, &(tq, tk, h, kvh, d, causal, masked)) in shapes.iter().enumerate() {
        let cs = case(&mut rng, tq, tk, h, kvh, d, causal, masked);
        let want = attention_cpu(&cs.args()).unwrap();
        let got = attention(&c, &cs.args()).await.unwrap();
        worst = worst.max(check_rows(&format!("prefill case {n}"), &got, &want, d));
    }
    log(&format!(
        "prefill on WebGPU: worst row relative error {worst:.2e}"
    ));
}

#[wasm_bindgen_test]
async fn decode_webgpu_matches_cpu_including_32k_keys() {
    let _t = timer("decode_webgpu_matches_cpu_including_32k_keys");
    let c = require_gpu().await;
    let mut rng = Rng::new(0xDE1);
    for (n, &(tk, h, kvh, d, masked)) in [
        (1, 2, 1, 64, false),
        (129, 4, 2, 128, true),
        (5000, 4, 4, 32, false),
        (32768, 2, 1, 64, true),
    ]
    .iter()
    .enumerate()
    {
        let cs = case(&mut rng, 1, tk, h, kvh, d, false, masked);
        let want = attention_cpu(&cs.args()).unwrap();
        let got = decode_attention(&c, &cs.args()).await.unwrap();
        let e = check_rows(&format!("decode case {n} tk={tk}"), &got, &want, d);
        log(&format!(
            "decode on WebGPU tk={tk} d={d}: row error {e:.2e}"
        ));
    }
}

#[wasm_bindgen_test]
async fn sparse_webgpu_selects_the_same_blocks() {
    let _t = timer("sparse_webgpu_selects_the_same_blocks");
    let c = require_gpu().await;
    let ctx = c.gpu_context().unwrap();
    let mut rng = Rng::new(0x5B1);
    for (n, &(tq, tk, h, kvh, d, causal, masked, block_size, top_blocks, window)) in [
        (1, 8192, 4, 2, 64, true, false, 64, 8, 256),
        (24, 400, 2, 1, 32, true, true, 16, 5, 32),
        (7, 100, 2, 2, 128, false, false, 9, 3, 10),
    ]
    .iter()
    .enumerate()
    {
        let cs = case(&mut rng, tq, tk, h, kvh, d, causal, masked);
        let p = SparseParams {
            block_size,
            top_blocks,
            window,
        };
        let sel = sparse_select_cpu(&cs.args(), &p).unwrap();
        let (got, gsel) = sparse_attention_gpu_with_selection(ctx, &cs.args(), &p)
            .await
            .unwrap();
        assert_eq!(gsel, sel, "sparse case {n}: selection differs");
        let want = sparse_attention_cpu_with(&cs.args(), &p, &sel).unwrap();
        check_rows(&format!("sparse case {n}"), &got, &want, d);
    }
}

#[wasm_bindgen_test]
async fn masked_rows_and_large_logits_on_webgpu() {
    let _t = timer("masked_rows_and_large_logits_on_webgpu");
    let c = require_gpu().await;
    let mut rng = Rng::new(0x11);
    // Causal with more queries than keys plus a padding mask: rows that see nothing are zeros.
    let mut cs = case(&mut rng, 24, 10, 2, 1, 64, true, false);
    cs.mask = Some((0..10).map(|j| (j >= 4) as u8).collect());
    let want = attention_cpu(&cs.args()).unwrap();
    assert!(
        want.chunks(64)
            .filter(|r| r.iter().all(|&x| x == 0.0))
            .count()
            > 0
    );
    for got in [
        attention(&c, &cs.args()).await.unwrap(),
        decode_attention(&c, &cs.args()).await.unwrap(),
    ] {
        assert!(got.iter().all(|x| !x.is_nan()));
        check_rows("masked rows", &got, &want, 64);
    }
    // Logits around +-1000.
    let mut cs = case(&mut rng, 20, 150, 2, 2, 64, false, false);
    cs.q.iter_mut().for_each(|x| *x *= 20.0);
    cs.k.iter_mut().for_each(|x| *x *= 20.0);
    let want = attention_cpu(&cs.args()).unwrap();
    for got in [
        attention(&c, &cs.args()).await.unwrap(),
        decode_attention(&c, &cs.args()).await.unwrap(),
    ] {
        check_rows("large logits", &got, &want, 64);
    }
}

fn set(o: &js_sys::Object, k: &str, v: &JsValue) {
    js_sys::Reflect::set(o, &JsValue::from_str(k), v).unwrap();
}

fn f32a(v: &[f32]) -> JsValue {
    js_sys::Float32Array::from(v).into()
}

fn error_code(e: &JsValue) -> String {
    js_sys::Reflect::get(e, &"code".into())
        .unwrap()
        .as_string()
        .unwrap_or_default()
}

fn err_of<T>(r: Result<T, JsValue>) -> JsValue {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

fn out_of(r: &JsValue) -> Vec<f32> {
    js_sys::Reflect::get(r, &"out".into())
        .unwrap()
        .dyn_into::<js_sys::Float32Array>()
        .unwrap()
        .to_vec()
}

#[wasm_bindgen_test]
async fn js_api_attention_decode_sparse_matmul() {
    let _t = timer("js_api_attention_decode_sparse_matmul");
    let k = mnemo::wasm::Kernels::create(None).await.unwrap();
    assert_eq!(k.backend(), "webgpu");
    let mut rng = Rng::new(3);
    let cs = case(&mut rng, 5, 40, 4, 2, 64, true, true);
    let o = js_sys::Object::new();
    set(&o, "q", &f32a(&cs.q));
    set(&o, "k", &f32a(&cs.k));
    set(&o, "v", &f32a(&cs.v));
    set(&o, "heads", &4.into());
    set(&o, "kvHeads", &2.into());
    set(&o, "headDim", &64.into());
    set(&o, "causal", &true.into());
    set(
        &o,
        "mask",
        &js_sys::Uint8Array::from(cs.mask.as_deref().unwrap()).into(),
    );
    let want = attention_cpu(&cs.args()).unwrap();
    let r = k.attention(o.clone().unchecked_into()).await.unwrap();
    check_rows("js attention", &out_of(&r), &want, 64);
    let r = k
        .decode_attention(o.clone().unchecked_into())
        .await
        .unwrap();
    check_rows("js decodeAttention", &out_of(&r), &want, 64);
    set(&o, "blockSize", &8.into());
    set(&o, "topBlocks", &2.into());
    set(&o, "window", &4.into());
    let p = SparseParams {
        block_size: 8,
        top_blocks: 2,
        window: 4,
    };
    let want_sparse = mnemo::kernels::attention::sparse_attention_cpu(&cs.args(), &p).unwrap();
    let r = k
        .sparse_attention(o.clone().unchecked_into())
        .await
        .unwrap();
    check_rows("js sparseAttention", &out_of(&r), &want_sparse, 64);

    // The CPU-forced path gives the reference exactly.
    let opts = js_sys::Object::new();
    set(&opts, "prefer", &"cpu".into());
    let kc = mnemo::wasm::Kernels::create(Some(opts.unchecked_into()))
        .await
        .unwrap();
    assert_eq!(kc.backend(), "cpu");
    let r = kc.attention(o.clone().unchecked_into()).await.unwrap();
    assert_eq!(out_of(&r), want);

    // Typed errors.
    let bad = js_sys::Object::new();
    for key in ["q", "k", "v", "heads", "kvHeads", "headDim"] {
        set(&bad, key, &js_sys::Reflect::get(&o, &key.into()).unwrap());
    }
    set(&bad, "v", &f32a(&cs.v[..cs.v.len() - 64]));
    let e = err_of(k.attention(bad.clone().unchecked_into()).await);
    assert_eq!(error_code(&e), "SHAPE_MISMATCH");
    let mut nan = cs.q.clone();
    nan[7] = f32::NAN;
    set(&bad, "v", &f32a(&cs.v));
    set(&bad, "q", &f32a(&nan));
    let e = err_of(k.decode_attention(bad.clone().unchecked_into()).await);
    assert_eq!(error_code(&e), "NON_FINITE");
    set(&bad, "q", &f32a(&cs.q));
    set(&bad, "kvHeads", &3.into());
    let e = err_of(k.attention(bad.clone().unchecked_into()).await);
    assert_eq!(error_code(&e), "INVALID_INPUT");
    set(&bad, "kvHeads", &2.into());
    set(&bad, "mask", &js_sys::Array::new().into());
    let e = err_of(k.attention(bad.clone().unchecked_into()).await);
    assert_eq!(error_code(&e), "INVALID_INPUT");
    set(&bad, "mask", &JsValue::UNDEFINED);
    set(&bad, "q", &js_sys::Array::new().into());
    let e = err_of(k.attention(bad.clone().unchecked_into()).await);
    assert_eq!(error_code(&e), "INVALID_INPUT");
    set(&bad, "q", &f32a(&cs.q));
    let e = err_of(k.sparse_attention(bad.clone().unchecked_into()).await);
    assert_eq!(error_code(&e), "INVALID_INPUT", "blockSize is required");

    // matmul
    let a = rng.vec_f32(70 * 30);
    let b = rng.vec_f32(30 * 65);
    let mo = js_sys::Object::new();
    set(&mo, "a", &f32a(&a));
    set(&mo, "b", &f32a(&b));
    set(&mo, "m", &70.into());
    set(&mo, "k", &30.into());
    set(&mo, "n", &65.into());
    set(&mo, "repeat", &3.into());
    let r = k.matmul(mo.unchecked_into()).await.unwrap();
    let want = matmul::matmul_cpu(&a, &b, 70, 30, 65).unwrap();
    mnemo::testing::assert_close("js matmul", &out_of(&r), &want, 1e-4, 1e-3);
}
