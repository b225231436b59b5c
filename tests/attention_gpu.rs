//! Attention kernels on the GPU (Mesa lavapipe in CI) against the CPU reference: prefill,
//! decode (flash-decoding up to 32k keys), block-sparse (identical selection), fully masked
//! rows, large logits, typed errors, and the benchmark matmul. A missing adapter is a failure.
//!
//! Accuracy norm: per output row (query, head), `max_d |gpu - cpu| / max_d |cpu| <= 1e-3`;
//! rows whose reference is zero must be exactly zero (`row_relative_error`).
#![cfg(not(target_arch = "wasm32"))]

use std::sync::OnceLock;

use mnemo::kernels::attention::{
    attention, attention_cpu, decode::decode_splits, decode_attention, matmul,
    prefill::prefill_tiles, row_relative_error, sparse_attention, sparse_attention_cpu,
    sparse_attention_cpu_with, sparse_attention_gpu_with_selection, sparse_select_cpu,
    AttentionArgs, SparseParams, NO_BLOCK,
};
use mnemo::rng::Rng;
use mnemo::Compute;

const TOL: f32 = 1e-3;

fn gpu() -> &'static Compute {
    static GPU: OnceLock<Compute> = OnceLock::new();
    GPU.get_or_init(|| pollster::block_on(mnemo::testing::require_gpu()))
}

struct Case {
    tq: usize,
    tk: usize,
    heads: usize,
    kv_heads: usize,
    d: usize,
    causal: bool,
    mask: Option<Vec<u8>>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
}

impl Case {
    #[allow(clippy::too_many_arguments)]
    fn random(
        rng: &mut Rng,
        tq: usize,
        tk: usize,
        heads: usize,
        kv_heads: usize,
        d: usize,
        causal: bool,
        masked: bool,
    ) -> Case {
        let mask = masked.then(|| (0..tk).map(|_| (rng.below(5) != 0) as u8).collect());
        Case {
            tq,
            tk,
            heads,
            kv_heads,
            d,
            causal,
            mask,
            q: (0..tq * heads * d).map(|_| rng.normal()).collect(),
            k: (0..tk * kv_heads * d).map(|_| rng.normal()).collect(),
            v: rng.vec_f32(tk * kv_heads * d),
        }
    }

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

    fn name(&self) -> String {
        format!(
            "tq={} tk={} heads={} kv_heads={} d={} causal={} mask={}",
            self.tq,
            self.tk,
            self.heads,
            self.kv_heads,
            self.d,
            self.causal,
            self.mask.is_some()
        )
    }
}

fn check_rows(what: &str, got: &[f32], want: &[f32], d: usize) -> f32 {
    assert!(
        got.iter().all(|x| x.is_finite()),
        "{what}: non-finite output"
    );
    row_relative_error(what, got, want, d, TOL).unwrap_or_else(|m| panic!("{m}"))
}

const HEADS: [(usize, usize); 5] = [(1, 1), (4, 4), (4, 2), (8, 1), (6, 3)];

#[test]
fn prefill_matches_cpu_on_seeded_shapes() {
    let c = gpu();
    let mut rng = Rng::new(0xA77E);
    let tqs = [1usize, 7, 16, 33, 100, 130];
    let tks = [1usize, 8, 17, 64, 129, 300];
    let ds = [32usize, 64, 128, 40, 7];
    let mut worst = 0.0f32;
    for n in 0..30 {
        let (h, kvh) = *rng.pick(&HEADS);
        let d = if n < 15 { ds[n % 3] } else { *rng.pick(&ds) };
        let (tq, tk) = (*rng.pick(&tqs), *rng.pick(&tks));
        let case = Case::random(&mut rng, tq, tk, h, kvh, d, n % 2 == 0, n % 3 == 0);
        let want = attention_cpu(&case.args()).unwrap();
        let got = pollster::block_on(attention(c, &case.args())).unwrap();
        let e = check_rows(
            &format!("prefill case {n}: {}", case.name()),
            &got,
            &want,
            d,
        );
        worst = worst.max(e);
    }
    println!("prefill: 30 seeded cases, worst row relative error {worst:.2e} (tolerance {TOL:e})");
}

#[test]
fn prefill_tiles_edges_and_causal_alignment() {
    // Lengths around the tile sizes of each head dim, causal with Tq < Tk and Tq > Tk.
    let c = gpu();
    let mut rng = Rng::new(77);
    for d in [32usize, 64, 128] {
        let t = prefill_tiles(d);
        let (bq, bk) = (t.bq as usize, t.bk as usize);
        for (tq, tk) in [
            (bq - 1, bk + 1),
            (bq + 1, bk - 1),
            (bq * 2, bk * 3),
            (3, 2 * bk + 1),
            (bq + 3, 5),
        ] {
            let case = Case::random(&mut rng, tq, tk, 2, 1, d, true, false);
            let want = attention_cpu(&case.args()).unwrap();
            let got = pollster::block_on(attention(c, &case.args())).unwrap();
            check_rows(&format!("tile edges: {}", case.name()), &got, &want, d);
        }
    }
}

#[test]
fn fully_masked_rows_are_zero_on_both_paths() {
    let c = gpu();
    let cpu = Compute::cpu();
    let mut rng = Rng::new(5);
    // (a) every key masked; (b) causal with more queries than keys: the first rows see nothing;
    // (c) no keys at all; (d) keys masked only before some queries' causal horizon.
    let mut all_masked = Case::random(&mut rng, 9, 40, 4, 2, 64, false, false);
    all_masked.mask = Some(vec![0; 40]);
    let more_q = Case::random(&mut rng, 50, 20, 2, 2, 32, true, false);
    let no_keys = Case::random(&mut rng, 3, 0, 2, 1, 128, false, false);
    let mut late = Case::random(&mut rng, 30, 30, 2, 1, 64, true, false);
    late.mask = Some((0..30).map(|j| (j >= 12) as u8).collect());
    for case in [all_masked, more_q, no_keys, late] {
        let a = case.args();
        let want = attention_cpu(&a).unwrap();
        let zero_rows = want
            .chunks(case.d)
            .filter(|r| r.iter().all(|&x| x == 0.0))
            .count();
        assert!(zero_rows > 0, "{}: expected fully masked rows", case.name());
        let paths: [(&str, &Compute); 2] = [("gpu", c), ("cpu", &cpu)];
        for (path, comp) in paths {
            for (kernel, got) in [
                ("prefill", pollster::block_on(attention(comp, &a)).unwrap()),
                (
                    "decode",
                    pollster::block_on(decode_attention(comp, &a)).unwrap(),
                ),
            ] {
                assert!(got.iter().all(|x| !x.is_nan()), "{path} {kernel}: NaN");
                check_rows(
                    &format!("{path} {kernel} masked rows: {}", case.name()),
                    &got,
                    &want,
                    case.d,
                );
            }
        }
        println!(
            "masked rows: {}: {zero_rows} zero rows on both paths",
            case.name()
        );
    }
}

#[test]
fn large_logits_do_not_overflow() {
    // Logits up to about +-3000 (exp overflows f32 past 88.7): q and k scaled by 20 each.
    let c = gpu();
    let mut rng = Rng::new(0xB16);
    for (n, d) in [32usize, 64, 128].into_iter().enumerate() {
        let mut case = Case::random(&mut rng, 40, 200, 4, 2, d, n == 1, n == 2);
        case.q.iter_mut().for_each(|x| *x *= 20.0);
        case.k.iter_mut().for_each(|x| *x *= 20.0);
        let a = case.args();
        let want = attention_cpu(&a).unwrap();
        let max_logit = {
            let s = mnemo::kernels::attention::check(&a).unwrap();
            (0..s.tk)
                .map(|j| {
                    mnemo::kernels::cpu::dot(
                        &case.q[..d],
                        &case.k[j * s.kv_heads * d..j * s.kv_heads * d + d],
                    )
                    .abs()
                        * s.scale()
                })
                .fold(0.0f32, f32::max)
        };
        assert!(max_logit > 500.0, "test setup: max logit {max_logit}");
        for (kernel, got) in [
            ("prefill", pollster::block_on(attention(c, &a)).unwrap()),
            (
                "decode",
                pollster::block_on(decode_attention(c, &a)).unwrap(),
            ),
        ] {
            let e = check_rows(
                &format!("large logits {kernel}: {}", case.name()),
                &got,
                &want,
                d,
            );
            println!(
                "large logits (max |logit| {max_logit:.0}) {kernel} d={d}: worst row error {e:.2e}"
            );
        }
    }
}

#[test]
fn decode_matches_cpu_up_to_32k_keys() {
    let c = gpu();
    let mut rng = Rng::new(0xDEC0);
    let tks = [1usize, 2, 127, 128, 129, 1000, 4097, 9000, 32768];
    let mut worst = 0.0f32;
    for (n, &tk) in tks.iter().enumerate() {
        let (h, kvh) = HEADS[n % HEADS.len()];
        let d = [32usize, 64, 128][n % 3];
        // Mostly one query; a few cases with 3 causal queries (the last three positions).
        let tq = if n % 4 == 3 { 3 } else { 1 };
        let case = Case::random(&mut rng, tq, tk, h, kvh, d, tq > 1, n % 2 == 1);
        let want = attention_cpu(&case.args()).unwrap();
        let got = pollster::block_on(decode_attention(c, &case.args())).unwrap();
        let e = check_rows(&format!("decode case {n}: {}", case.name()), &got, &want, d);
        println!(
            "decode {} (splits {:?}): row error {e:.2e}",
            case.name(),
            decode_splits(tk)
        );
        worst = worst.max(e);
    }
    println!("decode: worst row relative error {worst:.2e} (tolerance {TOL:e})");
}

#[test]
fn sparse_selection_is_identical_and_output_matches() {
    let c = gpu().gpu_context().unwrap();
    let mut rng = Rng::new(0x5BA5);
    // (tq, tk, heads, kv_heads, d, causal, masked, block, top, window)
    let cases = [
        (1, 4096, 8, 2, 64, false, false, 64, 8, 256),
        (1, 32768, 4, 4, 32, true, true, 256, 16, 512),
        (1, 5000, 4, 1, 128, true, false, 100, 4, 0),
        (64, 700, 4, 2, 64, true, false, 32, 4, 64),
        (33, 333, 2, 2, 32, false, true, 16, 6, 20),
        (20, 150, 6, 3, 40, true, true, 7, 32, 9),
        (5, 64, 2, 1, 64, true, false, 64, 3, 0),
        (10, 90, 2, 2, 32, false, false, 10, 0, 15),
    ];
    for (n, &(tq, tk, h, kvh, d, causal, masked, block_size, top_blocks, window)) in
        cases.iter().enumerate()
    {
        let case = Case::random(&mut rng, tq, tk, h, kvh, d, causal, masked);
        let a = case.args();
        let p = SparseParams {
            block_size,
            top_blocks,
            window,
        };
        let want_sel = sparse_select_cpu(&a, &p).unwrap();
        let (got, sel) =
            pollster::block_on(sparse_attention_gpu_with_selection(c, &a, &p)).unwrap();
        let what = format!(
            "sparse case {n}: {} block={block_size} top={top_blocks} window={window}",
            case.name()
        );
        if top_blocks > 0 {
            assert_eq!(
                sel, want_sel,
                "{what}: GPU selection differs from the CPU's"
            );
        }
        let want = sparse_attention_cpu_with(&a, &p, &want_sel).unwrap();
        let e = check_rows(&what, &got, &want, d);
        let filled = want_sel.blocks.iter().filter(|&&b| b != NO_BLOCK).count();
        println!("{what}: selection identical ({filled} blocks chosen), row error {e:.2e}");
    }
}

#[test]
fn sparse_ties_go_to_the_lower_block() {
    // Every block has the same keys, so every block scores the same: the lowest indices win.
    let c = gpu();
    let (tk, d, bs) = (64usize, 32usize, 8usize);
    let mut rng = Rng::new(1);
    let row: Vec<f32> = rng.vec_f32(d);
    let k: Vec<f32> = (0..tk).flat_map(|_| row.clone()).collect();
    let v = rng.vec_f32(tk * d);
    let q = rng.vec_f32(d);
    let a = AttentionArgs {
        q: &q,
        k: &k,
        v: &v,
        heads: 1,
        kv_heads: 1,
        head_dim: d,
        causal: true,
        mask: None,
    };
    let p = SparseParams {
        block_size: bs,
        top_blocks: 3,
        window: 8,
    };
    let sel = sparse_select_cpu(&a, &p).unwrap();
    assert_eq!(sel.blocks, vec![0, 1, 2]);
    let (got, gsel) = pollster::block_on(sparse_attention_gpu_with_selection(
        c.gpu_context().unwrap(),
        &a,
        &p,
    ))
    .unwrap();
    assert_eq!(gsel, sel);
    let want = sparse_attention_cpu(&a, &p).unwrap();
    check_rows("sparse ties", &got, &want, d);
    // The public entry point agrees too.
    let got = pollster::block_on(sparse_attention(c, &a, &p)).unwrap();
    check_rows("sparse ties (public)", &got, &want, d);
}

#[test]
fn bad_inputs_are_typed_errors_on_the_gpu_path() {
    let c = gpu();
    let q = vec![0.0f32; 64];
    let k = vec![0.0f32; 128];
    let a = AttentionArgs {
        q: &q,
        k: &k,
        v: &k,
        heads: 2,
        kv_heads: 1,
        head_dim: 32,
        causal: false,
        mask: None,
    };
    let bad_v = AttentionArgs { v: &k[..96], ..a };
    assert_eq!(
        pollster::block_on(attention(c, &bad_v)).unwrap_err().code(),
        "SHAPE_MISMATCH"
    );
    assert_eq!(
        pollster::block_on(decode_attention(c, &bad_v))
            .unwrap_err()
            .code(),
        "SHAPE_MISMATCH"
    );
    let bad_heads = AttentionArgs { kv_heads: 3, ..a };
    assert_eq!(
        pollster::block_on(attention(c, &bad_heads))
            .unwrap_err()
            .code(),
        "INVALID_INPUT"
    );
    let mut nan = q.clone();
    nan[3] = f32::INFINITY;
    let bad = AttentionArgs { q: &nan, ..a };
    assert_eq!(
        pollster::block_on(attention(c, &bad)).unwrap_err().code(),
        "NON_FINITE"
    );
    let p = SparseParams {
        block_size: 0,
        top_blocks: 1,
        window: 0,
    };
    assert_eq!(
        pollster::block_on(sparse_attention(c, &a, &p))
            .unwrap_err()
            .code(),
        "INVALID_INPUT"
    );
    let p = SparseParams {
        block_size: 4,
        top_blocks: 33,
        window: 0,
    };
    assert_eq!(
        pollster::block_on(sparse_attention(c, &a, &p))
            .unwrap_err()
            .code(),
        "INVALID_INPUT"
    );
}

#[test]
fn matmul_matches_cpu() {
    let c = gpu();
    let mut rng = Rng::new(8);
    for (m, k, n) in [
        (1usize, 1usize, 1usize),
        (64, 16, 64),
        (65, 17, 63),
        (100, 300, 7),
        (128, 128, 128),
    ] {
        let a = rng.vec_f32(m * k);
        let b = rng.vec_f32(k * n);
        let want = matmul::matmul_cpu(&a, &b, m, k, n).unwrap();
        let got = pollster::block_on(matmul::matmul(c, &a, &b, m, k, n)).unwrap();
        mnemo::testing::assert_close(
            &format!("matmul {m}x{k}x{n}"),
            &got,
            &want,
            1e-4,
            1e-4 * k as f32,
        );
    }
}
