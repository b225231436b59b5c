//! Linear recurrence in headless Chromium (WebGPU on SwiftShader) against the CPU reference:
//! both forms, every variant, every dk/dv value, a T = 4,096 case, non-zero states, the JS API
//! (`Kernels.linearRecurrence`) and its error codes. Error norm: per head, max |diff| / max |ref|
//! (outputs and state), tolerance 1e-3.
#![cfg(target_arch = "wasm32")]

use js_sys::{Float32Array, Object, Reflect};
use mnemo::kernels::recurrence::*;
use mnemo::rng::Rng;
use mnemo::testing::require_gpu;
use mnemo::Compute;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const TOL: f32 = 1e-3;

struct Case {
    h: usize,
    dk: usize,
    dv: usize,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    decay: Vec<f32>,
    vector: bool,
    beta: Option<Vec<f32>>,
    state: Option<Vec<f32>>,
}

impl Case {
    #[allow(clippy::too_many_arguments)]
    fn new(
        rng: &mut Rng,
        t: usize,
        h: usize,
        dk: usize,
        dv: usize,
        decay_kind: u8,
        delta: bool,
        lo: f32,
    ) -> Case {
        let q = rng.vec_f32(t * h * dk);
        let mut k = rng.vec_f32(t * h * dk);
        if delta {
            for row in k.chunks_mut(dk) {
                let n = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
                row.iter_mut().for_each(|x| *x /= n);
            }
        }
        let per = [0, 1, dk][decay_kind as usize];
        Case {
            h,
            dk,
            dv,
            q,
            k,
            v: rng.vec_f32(t * h * dv),
            decay: (0..t * h * per).map(|_| rng.range_f32(lo, 1.0)).collect(),
            vector: decay_kind == 2,
            beta: delta.then(|| (0..t * h).map(|_| rng.range_f32(0.05, 1.0)).collect()),
            state: Some(rng.vec_f32(h * dk * dv)),
        }
    }

    fn input(&self) -> RecurrenceInput<'_> {
        RecurrenceInput {
            q: &self.q,
            k: &self.k,
            v: &self.v,
            decay: if self.decay.is_empty() {
                Decay::None
            } else if self.vector {
                Decay::Vector(&self.decay)
            } else {
                Decay::Scalar(&self.decay)
            },
            beta: self.beta.as_deref(),
            heads: self.h,
            dk: self.dk,
            dv: self.dv,
            scale: None,
            state: self.state.as_deref(),
        }
    }
}

async fn check(c: &Case, gpu: &Compute, label: &str) {
    let input = c.input();
    let want = recurrent_cpu(&input).unwrap();
    for form in [Form::Recurrent, Form::Chunked] {
        let got = linear_recurrence(gpu, &input, form).await.unwrap();
        let (eo, ho) = max_rel_err_per_head(&got.out, &want.out, c.h, c.dv);
        let (es, hs) = max_rel_err_per_head(&got.state, &want.state, c.h, c.dk * c.dv);
        assert!(
            eo <= TOL && es <= TOL,
            "{label} {form:?}: out rel err {eo:e} (head {ho}), state {es:e} (head {hs})"
        );
    }
}

#[wasm_bindgen_test]
async fn recurrence_webgpu_matches_cpu_on_seeded_shapes() {
    let gpu = require_gpu().await;
    let mut rng = Rng::new(0xC0DE);
    // (T, H, dk, dv, decay kind, delta, lowest decay): every variant, every dk and dv value.
    let cases = [
        (33usize, 3usize, 16usize, 64usize, 0u8, false, 1.0f32),
        (70, 2, 32, 16, 1, false, 0.5),
        (45, 2, 64, 32, 2, false, 0.9),
        (40, 4, 16, 16, 0, true, 1.0),
        (65, 1, 128, 16, 1, true, 0.5),
        (31, 16, 16, 16, 2, true, 0.9999),
        (20, 1, 32, 128, 2, true, 0.5),
    ];
    for (i, &(t, h, dk, dv, dkind, delta, lo)) in cases.iter().enumerate() {
        let c = Case::new(&mut rng, t, h, dk, dv, dkind, delta, lo);
        check(
            &c,
            &gpu,
            &format!("case {i}: T={t} H={h} dk={dk} dv={dv} decay={dkind} delta={delta}"),
        )
        .await;
    }
}

#[wasm_bindgen_test]
async fn recurrence_webgpu_t_4096() {
    let gpu = require_gpu().await;
    let mut rng = Rng::new(4096);
    let c = Case::new(&mut rng, 4096, 1, 16, 16, 1, true, 0.5);
    check(&c, &gpu, "T=4096 gated delta").await;
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
    if let Some(b) = &c.beta {
        set("beta", Float32Array::from(b.as_slice()).into());
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

#[wasm_bindgen_test]
async fn js_api_linear_recurrence_and_error_codes() {
    let k = mnemo::wasm::Kernels::create(None).await.unwrap();
    assert_eq!(k.backend(), "webgpu");
    let mut rng = Rng::new(77);
    let c = Case::new(&mut rng, 40, 2, 16, 8, 2, true, 0.5);
    let want = recurrent_cpu(&c.input()).unwrap();
    for form in ["recurrent", "chunked"] {
        let r: JsValue = k
            .linear_recurrence(options(&c, form).unchecked_into())
            .await
            .unwrap()
            .into();
        let out: Float32Array = Reflect::get(&r, &"out".into()).unwrap().unchecked_into();
        let state: Float32Array = Reflect::get(&r, &"state".into()).unwrap().unchecked_into();
        let (eo, _) = max_rel_err_per_head(&out.to_vec(), &want.out, c.h, c.dv);
        let (es, _) = max_rel_err_per_head(&state.to_vec(), &want.state, c.h, c.dk * c.dv);
        assert!(eo <= TOL && es <= TOL, "{form}: {eo:e} {es:e}");
    }
    // Errors carry codes.
    let bad = options(&c, "chunked");
    Reflect::set(&bad, &"v".into(), &Float32Array::new_with_length(3).into()).unwrap();
    let e = err_of(k.linear_recurrence(bad.unchecked_into()).await);
    assert_eq!(code_of(&e).as_deref(), Some("SHAPE_MISMATCH"));
    let mut c2 = Case::new(&mut rng, 4, 1, 4, 4, 1, false, 0.5);
    c2.decay[2] = 1.5;
    let e = err_of(
        k.linear_recurrence(options(&c2, "recurrent").unchecked_into())
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
    let no_q = options(&c, "chunked");
    Reflect::set(
        &no_q,
        &"q".into(),
        &JsValue::from(
            vec![1.0f64, 2.0]
                .into_iter()
                .map(JsValue::from)
                .collect::<js_sys::Array>(),
        ),
    )
    .unwrap();
    let e = err_of(k.linear_recurrence(no_q.unchecked_into()).await);
    assert_eq!(code_of(&e).as_deref(), Some("INVALID_INPUT"));
    // The CPU path gives the reference itself.
    let cpu = mnemo::wasm::Kernels::create(Some(
        {
            let o = Object::new();
            Reflect::set(&o, &"prefer".into(), &"cpu".into()).unwrap();
            o
        }
        .unchecked_into(),
    ))
    .await
    .unwrap();
    let r: JsValue = cpu
        .linear_recurrence(options(&c, "recurrent").unchecked_into())
        .await
        .unwrap()
        .into();
    let out: Float32Array = Reflect::get(&r, &"out".into()).unwrap().unchecked_into();
    assert_eq!(out.to_vec(), want.out);
}

#[wasm_bindgen_test]
async fn streaming_state_on_webgpu() {
    let gpu = require_gpu().await;
    let mut rng = Rng::new(5);
    let c = Case::new(&mut rng, 12, 2, 32, 16, 1, true, 0.8);
    let want = recurrent_cpu(&c.input()).unwrap();
    let cfg = RecurrenceConfig::new(c.h, c.dk, c.dv, DecayKind::Scalar, true);
    let mut st = RecurrentState::with_state(&gpu, cfg, c.state.as_deref().unwrap()).unwrap();
    let (hk, hv, h) = (c.h * c.dk, c.h * c.dv, c.h);
    let beta = c.beta.as_deref().unwrap();
    let mut out = Vec::new();
    for t in 0..12 {
        let o = st
            .step(
                &c.q[t * hk..(t + 1) * hk],
                &c.k[t * hk..(t + 1) * hk],
                &c.v[t * hv..(t + 1) * hv],
                Decay::Scalar(&c.decay[t * h..(t + 1) * h]),
                Some(&beta[t * h..(t + 1) * h]),
            )
            .await
            .unwrap();
        out.extend(o);
    }
    let (eo, _) = max_rel_err_per_head(&out, &want.out, c.h, c.dv);
    let (es, _) = max_rel_err_per_head(&st.state().await.unwrap(), &want.state, c.h, c.dk * c.dv);
    assert!(eo <= TOL && es <= TOL, "{eo:e} {es:e}");
}
