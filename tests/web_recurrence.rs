//! Linear recurrence in headless Chromium (WebGPU on SwiftShader) against the CPU reference,
//! part 1: dk/dv = 16/128 and 32/64 with every variant, a T = 4,096 case, non-zero states,
//! streaming state, and the JS API (`Kernels.linearRecurrence`) with its error codes. Part 2 is
//! `web_recurrence_dims.rs` (split so that each binary stays well inside wasm-bindgen-test's
//! default 20 s: SwiftShader compiles each pipeline layout in seconds). Error norm: per head,
//! max |diff| / max |ref| over outputs and over the state, tolerance 1e-3.
#![cfg(target_arch = "wasm32")]

use js_sys::{Float32Array, Object, Reflect};
use mnemo::kernels::recurrence::synth::{Case, Variant};
use mnemo::kernels::recurrence::*;
use mnemo::rng::Rng;
use mnemo::testing::require_gpu;
use mnemo::Compute;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const TOL: f32 = 1e-3;

async fn check(c: &Case, gpu: &Compute) {
    let input = c.input();
    let want = recurrent_cpu(&input).unwrap();
    for form in [Form::Recurrent, Form::Chunked] {
        let t0 = js_sys::Date::now();
        let got = linear_recurrence(gpu, &input, form).await.unwrap();
        let ms = js_sys::Date::now() - t0;
        let (eo, ho) = max_rel_err_per_head(&got.out, &want.out, c.h, c.dv);
        let (es, hs) = max_rel_err_per_head(&got.state, &want.state, c.h, c.dk * c.dv);
        assert!(
            eo <= TOL && es <= TOL,
            "{} {form:?}: out rel err {eo:e} (head {ho}), state {es:e} (head {hs})",
            c.label
        );
        web_sys::console::log_1(
            &format!("{} {form:?}: {eo:.1e}/{es:.1e} in {ms:.0} ms", c.label).into(),
        );
    }
}

#[wasm_bindgen_test]
async fn recurrence_webgpu_matches_cpu_16_128_and_32_64() {
    let gpu = require_gpu().await;
    let mut rng = Rng::new(0xC0DE);
    for (i, variant) in Variant::ALL.into_iter().enumerate() {
        let (dk, dv) = if i % 2 == 0 { (16, 128) } else { (32, 64) };
        let t = [33, 70, 45, 1, 65, 31][i];
        let h = [3, 2, 1, 4, 2, 5][i];
        let decays = [(0.5, 0.6), (0.9, 0.9999), (0.5, 1.0)][i % 3];
        let c = Case::new(&mut rng, t, h, dk, dv, variant, decays, i != 2);
        check(&c, &gpu).await;
    }
}

#[wasm_bindgen_test]
async fn recurrence_webgpu_t_4096() {
    let gpu = require_gpu().await;
    let mut rng = Rng::new(4096);
    let c = Case::new(
        &mut rng,
        4096,
        1,
        16,
        128,
        Variant::GatedDelta,
        (0.5, 0.9999),
        true,
    );
    check(&c, &gpu).await;
}

fn options(c: &Case, form: &str) -> Object {
    let o = Object::new();
    let set = |k: &str, v: JsValue| Reflect::set(&o, &k.into(), &v).unwrap();
    set("q", Float32Array::from(c.q.as_slice()).into());
    set("k", Float32Array::from(c.k.as_slice()).into());
    set("v", Float32Array::from(c.v.as_slice()).into());
    if !c.decay.is_empty() {
        set("decay", Float32Array::from(c.decay.as_slice()).into());
    }
    if c.variant.delta() {
        set("beta", Float32Array::from(c.beta.as_slice()).into());
    }
    if let Some(s) = &c.state {
        set("state", Float32Array::from(s.as_slice()).into());
    }
    set("heads", (c.h as f64).into());
    set("dk", (c.dk as f64).into());
    set("dv", (c.dv as f64).into());
    set("form", form.into());
    o
}

/// The error of a call that must fail.
fn err_of<T>(r: Result<T, JsValue>) -> JsValue {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

fn code_of(err: &JsValue) -> Option<String> {
    Reflect::get(err, &"code".into()).ok()?.as_string()
}

fn field(r: &JsValue, name: &str) -> Vec<f32> {
    Reflect::get(r, &name.into())
        .unwrap()
        .unchecked_into::<Float32Array>()
        .to_vec()
}

#[wasm_bindgen_test]
async fn js_api_linear_recurrence_and_error_codes() {
    let k = mnemo::wasm::Kernels::create(None).await.unwrap();
    assert_eq!(k.backend(), "webgpu");
    let mut rng = Rng::new(77);
    for variant in [Variant::GatedDeltaVector, Variant::Linear] {
        let c = Case::new(&mut rng, 40, 2, 16, 128, variant, (0.5, 1.0), true);
        let want = recurrent_cpu(&c.input()).unwrap();
        for form in ["recurrent", "chunked"] {
            let r: JsValue = k
                .linear_recurrence(options(&c, form).unchecked_into())
                .await
                .unwrap()
                .into();
            let (eo, _) = max_rel_err_per_head(&field(&r, "out"), &want.out, c.h, c.dv);
            let (es, _) = max_rel_err_per_head(&field(&r, "state"), &want.state, c.h, c.dk * c.dv);
            assert!(eo <= TOL && es <= TOL, "{variant:?} {form}: {eo:e} {es:e}");
        }
    }
    let c = Case::new(
        &mut rng,
        6,
        2,
        16,
        128,
        Variant::GatedDelta,
        (0.5, 1.0),
        true,
    );
    // Errors carry codes.
    let bad = options(&c, "chunked");
    Reflect::set(&bad, &"v".into(), &Float32Array::new_with_length(3).into()).unwrap();
    let e = err_of(k.linear_recurrence(bad.unchecked_into()).await);
    assert_eq!(code_of(&e).as_deref(), Some("SHAPE_MISMATCH"));
    let mut c2 = c.clone();
    c2.decay[2] = 1.5;
    let e = err_of(
        k.linear_recurrence(options(&c2, "recurrent").unchecked_into())
            .await,
    );
    assert_eq!(code_of(&e).as_deref(), Some("INVALID_INPUT"));
    c2.decay[2] = 0.0;
    let e = err_of(
        k.linear_recurrence(options(&c2, "chunked").unchecked_into())
            .await,
    );
    assert_eq!(code_of(&e).as_deref(), Some("INVALID_INPUT"));
    c2.decay[2] = f32::NAN;
    let e = err_of(
        k.linear_recurrence(options(&c2, "recurrent").unchecked_into())
            .await,
    );
    assert_eq!(code_of(&e).as_deref(), Some("NON_FINITE"));
    let e = err_of(
        k.linear_recurrence(options(&c, "parallel").unchecked_into())
            .await,
    );
    assert_eq!(code_of(&e).as_deref(), Some("INVALID_INPUT"));
    let plain = options(&c, "chunked");
    let arr: js_sys::Array = [1.0f64, 2.0].iter().map(|&x| JsValue::from(x)).collect();
    Reflect::set(&plain, &"q".into(), &arr).unwrap();
    let e = err_of(k.linear_recurrence(plain.unchecked_into()).await);
    assert_eq!(code_of(&e).as_deref(), Some("INVALID_INPUT"));
    // The CPU path gives the reference itself.
    let prefer = Object::new();
    Reflect::set(&prefer, &"prefer".into(), &"cpu".into()).unwrap();
    let cpu = mnemo::wasm::Kernels::create(Some(prefer.unchecked_into()))
        .await
        .unwrap();
    let r: JsValue = cpu
        .linear_recurrence(options(&c, "recurrent").unchecked_into())
        .await
        .unwrap()
        .into();
    assert_eq!(field(&r, "out"), recurrent_cpu(&c.input()).unwrap().out);
}

#[wasm_bindgen_test]
async fn streaming_state_on_webgpu() {
    let gpu = require_gpu().await;
    let mut rng = Rng::new(5);
    let c = Case::new(
        &mut rng,
        12,
        2,
        32,
        64,
        Variant::GatedDelta,
        (0.8, 1.0),
        true,
    );
    let want = recurrent_cpu(&c.input()).unwrap();
    let cfg = RecurrenceConfig::new(c.h, c.dk, c.dv, DecayKind::Scalar, true);
    let mut st = RecurrentState::with_state(&gpu, cfg, c.state.as_deref().unwrap()).unwrap();
    let (hk, hv, h) = (c.h * c.dk, c.h * c.dv, c.h);
    let mut out = Vec::new();
    for (a, b) in [(0usize, 1usize), (1, 2), (2, 9), (9, 12)] {
        let o = st
            .step(
                &c.q[a * hk..b * hk],
                &c.k[a * hk..b * hk],
                &c.v[a * hv..b * hv],
                Decay::Scalar(&c.decay[a * h..b * h]),
                Some(&c.beta[a * h..b * h]),
            )
            .await
            .unwrap();
        out.extend(o);
    }
    let (eo, _) = max_rel_err_per_head(&out, &want.out, c.h, c.dv);
    let state = st.state().await.unwrap();
    let (es, _) = max_rel_err_per_head(&state, &want.state, c.h, c.dk * c.dv);
    assert!(eo <= TOL && es <= TOL, "{eo:e} {es:e}");
}
