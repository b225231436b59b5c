//! Linear recurrence on the GPU (Mesa lavapipe in CI) against the CPU recurrent reference:
//! both forms, every variant, seeded random shapes (T not a multiple of the chunk, non-zero
//! initial states, decays from 0.5 to 0.9999), streaming state, typed errors.
//!
//! Error norm (`max_rel_err_per_head`): per head, max |got − ref| / max |ref| over all tokens
//! and channels of that head (outputs), and over the head's dk·dv state. Tolerance 1e-3.
#![cfg(not(target_arch = "wasm32"))]

use std::sync::OnceLock;

use mnemo::kernels::recurrence::synth::{Case, Variant};
use mnemo::kernels::recurrence::*;
use mnemo::rng::Rng;
use mnemo::{Compute, KernelError};

const TOL: f32 = 1e-3;

fn gpu() -> &'static Compute {
    static GPU: OnceLock<Compute> = OnceLock::new();
    GPU.get_or_init(|| pollster::block_on(mnemo::testing::require_gpu()))
}

fn assert_agree(what: &str, got: &RecurrenceOutput, want: &RecurrenceOutput, c: &Case) -> f32 {
    let (eo, ho) = max_rel_err_per_head(&got.out, &want.out, c.h, c.dv);
    let (es, hs) = max_rel_err_per_head(&got.state, &want.state, c.h, c.dk * c.dv);
    assert!(
        eo <= TOL && es <= TOL,
        "{what} [{}]: outputs rel err {eo:e} (head {ho}), state rel err {es:e} (head {hs})",
        c.label
    );
    eo.max(es)
}

/// Run one case: GPU recurrent and GPU chunked against the CPU reference and each other.
fn check_case(c: &Case) {
    let input = c.input();
    let want = recurrent_cpu(&input).unwrap();
    let rec = pollster::block_on(linear_recurrence(gpu(), &input, Form::Recurrent)).unwrap();
    let chk = pollster::block_on(linear_recurrence(gpu(), &input, Form::Chunked)).unwrap();
    let e1 = assert_agree("gpu recurrent vs cpu", &rec, &want, c);
    let e2 = assert_agree("gpu chunked vs cpu", &chk, &want, c);
    let e3 = assert_agree("gpu chunked vs gpu recurrent", &chk, &rec, c);
    println!(
        "{}: recurrent {e1:.2e}, chunked {e2:.2e}, chunked vs recurrent {e3:.2e}",
        c.label
    );
}

const DECAYS: [(f32, f32); 5] = [
    (0.5, 0.5),
    (0.5, 0.7),
    (0.8, 0.99),
    (0.99, 0.9999),
    (0.9999, 0.9999),
];

#[test]
fn seeded_random_shapes_all_variants() {
    let mut rng = Rng::new(0x5EC0);
    let ts = [1usize, 2, 31, 32, 33, 65, 100, 257, 500];
    let dims = [16usize, 32, 64, 128];
    for i in 0..30 {
        let variant = Variant::ALL[i % Variant::ALL.len()];
        let t = *rng.pick(&ts);
        let h = 1 + rng.below(16);
        let dk = *rng.pick(&dims);
        let dv = *rng.pick(&dims);
        // Keep the CPU reference and lavapipe fast: shrink heads for the biggest states.
        let h = if dk * dv >= 64 * 128 { h.min(3) } else { h };
        let decays = *rng.pick(&DECAYS);
        let c = Case::new(&mut rng, t, h, dk, dv, variant, decays, i % 2 == 0);
        check_case(&c);
    }
}

#[test]
fn every_dk_and_dv_with_sixteen_heads() {
    let mut rng = Rng::new(16);
    for (i, (dk, dv)) in [(16, 128), (32, 64), (64, 32), (128, 16), (128, 128)]
        .into_iter()
        .enumerate()
    {
        let h = if dk * dv > 4096 { 2 } else { 16 };
        let c = Case::new(
            &mut rng,
            77,
            h,
            dk,
            dv,
            Variant::ALL[(i + 3) % 6],
            (0.5, 0.9999),
            true,
        );
        check_case(&c);
    }
}

#[test]
fn long_sequences_t_4096() {
    let mut rng = Rng::new(4096);
    // Gated delta rule over the whole decay range, from a non-zero state.
    check_case(&Case::new(
        &mut rng,
        4096,
        2,
        64,
        64,
        Variant::GatedDelta,
        (0.5, 0.9999),
        true,
    ));
    // Plain GLA with slow decay: the state grows over 4,096 tokens.
    check_case(&Case::new(
        &mut rng,
        4095,
        1,
        32,
        32,
        Variant::Vector,
        (0.9999, 0.9999),
        false,
    ));
}

#[test]
fn chunked_state_crosses_segments() {
    let ctx = gpu().gpu_context().unwrap();
    let mut rng = Rng::new(99);
    for variant in [Variant::GatedDeltaVector, Variant::Scalar] {
        let c = Case::new(&mut rng, 300, 3, 32, 16, variant, (0.5, 0.9999), true);
        let input = c.input();
        let want = recurrent_cpu(&input).unwrap();
        // A budget of one chunk per segment: ten segments, the state carried on the GPU.
        let got = pollster::block_on(linear_recurrence_gpu_segmented(
            ctx,
            &input,
            Form::Chunked,
            1,
        ))
        .unwrap();
        assert_agree("segmented chunked vs cpu", &got, &want, &c);
    }
}

#[test]
fn tiny_decays_stay_finite_and_exact() {
    // Decays far below 0.5 (down to 1e-6) over full chunks: no overflow, no NaN.
    let mut rng = Rng::new(7);
    for variant in [
        Variant::Vector,
        Variant::GatedDeltaVector,
        Variant::GatedDelta,
    ] {
        let c = Case::new(&mut rng, 96, 2, 16, 16, variant, (1e-6, 0.3), true);
        check_case(&c);
    }
}

#[test]
fn odd_dimensions() {
    let mut rng = Rng::new(3);
    for (dk, dv) in [(1, 1), (5, 7), (33, 3), (200, 20)] {
        let c = Case::new(
            &mut rng,
            45,
            2,
            dk,
            dv,
            Variant::GatedDeltaVector,
            (0.6, 1.0),
            true,
        );
        check_case(&c);
    }
    // dk above the chunked limit still runs recurrently on the GPU.
    let c = Case::new(&mut rng, 9, 1, 384, 8, Variant::Scalar, (0.9, 1.0), true);
    let input = c.input();
    let want = recurrent_cpu(&input).unwrap();
    let rec = pollster::block_on(linear_recurrence(gpu(), &input, Form::Recurrent)).unwrap();
    assert_agree("dk=384 recurrent", &rec, &want, &c);
    let err = pollster::block_on(linear_recurrence(gpu(), &input, Form::Chunked)).unwrap_err();
    assert_eq!(err.code(), "INVALID_INPUT", "{err}");
}

#[test]
fn streaming_state_turn_by_turn_on_gpu_and_cpu() {
    let mut rng = Rng::new(21);
    let c = Case::new(
        &mut rng,
        60,
        2,
        32,
        16,
        Variant::GatedDelta,
        (0.8, 1.0),
        true,
    );
    let want = recurrent_cpu(&c.input()).unwrap();
    let cfg = RecurrenceConfig::new(c.h, c.dk, c.dv, DecayKind::Scalar, true);
    for compute in [gpu().clone(), Compute::cpu()] {
        let mut st =
            RecurrentState::with_state(&compute, cfg, c.state.as_deref().unwrap()).unwrap();
        let mut out = Vec::new();
        let (hk, hv) = (c.h * c.dk, c.h * c.dv);
        for (a, b) in [(0usize, 1usize), (1, 8), (8, 8), (8, 47), (47, 60)] {
            let o = pollster::block_on(st.step(
                &c.q[a * hk..b * hk],
                &c.k[a * hk..b * hk],
                &c.v[a * hv..b * hv],
                Decay::Scalar(&c.decay[a * c.h..b * c.h]),
                Some(&c.beta[a * c.h..b * c.h]),
            ))
            .unwrap();
            out.extend(o);
        }
        let got = RecurrenceOutput {
            out,
            state: pollster::block_on(st.state()).unwrap(),
        };
        assert_agree(&format!("streaming on {:?}", st.backend()), &got, &want, &c);
    }
    // The CPU's allocation-free path, one token at a time.
    let mut st =
        RecurrentState::with_state(&Compute::cpu(), cfg, c.state.as_deref().unwrap()).unwrap();
    let mut out = vec![0.0; c.t * c.h * c.dv];
    let (hk, hv) = (c.h * c.dk, c.h * c.dv);
    for t in 0..c.t {
        st.step_into(
            &c.q[t * hk..(t + 1) * hk],
            &c.k[t * hk..(t + 1) * hk],
            &c.v[t * hv..(t + 1) * hv],
            Decay::Scalar(&c.decay[t * c.h..(t + 1) * c.h]),
            Some(&c.beta[t * c.h..(t + 1) * c.h]),
            &mut out[t * hv..(t + 1) * hv],
        )
        .unwrap();
    }
    assert_eq!(out, want.out, "step_into is the reference, token by token");
}

#[test]
fn bad_inputs_are_typed_and_launch_nothing() {
    let c = pollster::block_on(Compute::gpu()).unwrap();
    let ctx = c.gpu_context().unwrap();
    let q = [0.5f32; 8];
    let v = [1.0f32; 4];
    let base = RecurrenceInput {
        q: &q,
        k: &q,
        v: &v,
        heads: 2,
        dk: 2,
        dv: 1,
        ..Default::default()
    };
    let run = |i: &RecurrenceInput<'_>, f| pollster::block_on(linear_recurrence(&c, i, f));
    for form in [Form::Recurrent, Form::Chunked] {
        let mut i = base;
        i.v = &v[..3];
        assert_eq!(run(&i, form).unwrap_err().code(), "SHAPE_MISMATCH");
        let mut i = base;
        i.decay = Decay::Scalar(&[0.5, 0.5, 1.2, 0.5]);
        assert_eq!(run(&i, form).unwrap_err().code(), "INVALID_INPUT");
        i.decay = Decay::Vector(&[0.5; 7]);
        assert_eq!(run(&i, form).unwrap_err().code(), "SHAPE_MISMATCH");
        let mut i = base;
        let bad = [0.5, 0.5, f32::NAN, 0.5, 0.5, 0.5, 0.5, 0.5];
        i.k = &bad;
        assert_eq!(
            run(&i, form).unwrap_err(),
            KernelError::NonFinite {
                name: "k",
                index: 2
            }
        );
        let mut i = base;
        i.state = Some(&[0.0; 3]);
        assert_eq!(run(&i, form).unwrap_err().code(), "SHAPE_MISMATCH");
    }
    assert_eq!(
        ctx.pipeline_count(),
        0,
        "no pipeline was compiled for bad inputs"
    );
    // And a good call afterwards works; T = 0 returns the state unchanged.
    let ok = run(&base, Form::Chunked).unwrap();
    assert_eq!(ok.out.len(), 4);
    let mut empty = base;
    empty.q = &[];
    empty.k = &[];
    empty.v = &[];
    empty.state = Some(&[1.0, 2.0, 3.0, 4.0]);
    assert_eq!(
        run(&empty, Form::Recurrent).unwrap().state,
        vec![1.0, 2.0, 3.0, 4.0]
    );
}
