//! Browser tests of the flat top-k (wasm-bindgen-test in headless Chromium, WebGPU on SwiftShader):
//! the WGSL kernels against the CPU path (compiled with simd128) over seeded shapes, exact ties,
//! a chunked 100k x 384 bank, a folded dispatch, the multi-query barrier-free scan, incremental
//! updates, gather, and the JS API.
//! A missing WebGPU adapter fails the tests.
#![cfg(target_arch = "wasm32")]

use js_sys::{Float32Array, Object, Reflect, Uint32Array};
use mnemo::kernels::fetch::{
    agreement, topk_cpu, BankFormat, FetchPath, FlatBank, FlatBankOptions, GatherIds, TopkOptions,
    TopkResult, Tuning, NO_ID,
};
use mnemo::rng::Rng;
use mnemo::testing::require_gpu;
use mnemo::Compute;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const FORMATS: [BankFormat; 3] = [BankFormat::F32, BankFormat::F16, BankFormat::Int8];

fn eps(d: usize) -> f32 {
    2e-6 * d as f32
}

fn log(s: &str) {
    web_sys::console::log_1(&s.into());
}

async fn both(
    fb: &FlatBank,
    q: &[f32],
    k: usize,
    mask: Option<&[u32]>,
) -> (TopkResult, TopkResult) {
    let g = fb.topk(q, k, mask, FetchPath::Gpu).await.unwrap();
    let c = fb.topk(q, k, mask, FetchPath::Cpu).await.unwrap();
    (g, c)
}

fn allowed<'a>(fb: &'a FlatBank, mask: Option<&'a [u32]>) -> impl Fn(u32) -> bool + 'a {
    move |i: u32| {
        let i = i as usize;
        fb.is_live(i) && mask.is_none_or(|m| (m[i / 32] >> (i % 32)) & 1 == 1)
    }
}

#[wasm_bindgen_test]
async fn webgpu_topk_matches_cpu_on_seeded_shapes() {
    let c = require_gpu().await;
    let mut rng = Rng::new(0xB0B5);
    let ns = [0usize, 1, 63, 65, 257, 1000, 4097];
    let ds = [1usize, 3, 33, 384, 385];
    let ks = [1usize, 10, 100, 256];
    let bs = [1usize, 5, 64];
    for case in 0..18 {
        let (n, d, k, b) = (
            *rng.pick(&ns),
            *rng.pick(&ds),
            *rng.pick(&ks),
            *rng.pick(&bs),
        );
        let n = if n * d > 400_000 { n / 4 } else { n };
        let format = FORMATS[case % 3];
        let mut fb = FlatBank::new(
            &c,
            d,
            FlatBankOptions {
                format,
                // Odd cases force the multi-query `scan`; even ones run the two phases: the
                // barrier-free `score1` (B = 1; rows per invocation 1..=8) or `scorem` (the
                // software adapter's default for B > 1; 1..=4), then `pick`.
                tuning: Tuning {
                    queries_per_group: (case % 2 == 1).then_some(16),
                    rows_per_invocation: Some(1 + case % 8),
                    rows_per_group: (case % 3 == 0).then_some(1024),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .unwrap();
        fb.append(&rng.vec_f32(n * d)).await.unwrap();
        if n > 3 {
            fb.remove(n / 3).unwrap();
        }
        let mode = case % 4;
        let mask: Vec<u32> = (0..n.div_ceil(32))
            .map(|_| if mode == 2 { 0 } else { rng.next_u64() as u32 })
            .collect();
        let mask = (mode != 0).then_some(&mask[..]);
        let q = rng.vec_f32(b * d);
        let (g, cpu) = both(&fb, &q, k, mask).await;
        let what = format!("case {case}: n={n} d={d} k={k} b={b} {format:?} mask mode {mode}");
        agreement(&what, &g, &cpu, eps(d), &allowed(&fb, mask)).unwrap();
        if mode == 2 || n == 0 {
            assert!(g.ids.iter().all(|&i| i == NO_ID), "{what}");
        }
    }
}

#[wasm_bindgen_test]
async fn multi_query_scan_on_webgpu_chunks_masks_and_ties() {
    // `scorem` + `pick` forced: B = 2, 16, 64; rows per invocation and queries per pass vary; N not a
    // multiple of a round; k = 1 and k > N; a mask allowing nothing; small chunks; small-integer
    // data (exact scores: ids and scores identical to the CPU path, ties by lower id).
    let c = require_gpu().await;
    let mut rng = Rng::new(0x5CA3);
    for case in 0..9 {
        let format = FORMATS[case % 3];
        let b = [2usize, 16, 64][case / 3];
        let (r, qc) = (1 + case % 4, 4 - case % 4);
        let d = *rng.pick(&[3usize, 19]);
        let n = *rng.pick(&[257usize, 1025, 3000]);
        let k = [1usize, 10, n + 1][case % 3].min(256);
        let chunks = (case % 2 == 0).then_some(7 * 1024 + 16);
        let mut fb = FlatBank::new(
            &c,
            d,
            FlatBankOptions {
                format,
                max_chunk_bytes: chunks,
                tuning: Tuning {
                    rows_per_invocation: Some(r),
                    queries_per_pass: Some(qc),
                    multi_query_scan: Some(true),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .unwrap();
        let rows: Vec<f32> = (0..n * d).map(|_| rng.below(3) as f32 - 1.0).collect();
        fb.append(&rows).await.unwrap();
        fb.remove(n / 3).unwrap();
        let mask: Vec<u32> = (0..n.div_ceil(32))
            .map(|_| if case == 4 { 0 } else { rng.next_u64() as u32 })
            .collect();
        let mask = (case % 2 == 0).then_some(&mask[..]);
        let q: Vec<f32> = (0..b * d).map(|_| rng.below(5) as f32 - 2.0).collect();
        let plan = fb.gpu_plan(b, k).unwrap();
        assert!(plan.multi_query, "case {case}: {plan:?}");
        let (g, cpu) = both(&fb, &q, k, mask).await;
        let what = format!(
            "case {case}: n={n} d={d} k={k} b={b} R={r} QC={qc} {format:?} chunks={}",
            fb.chunk_count()
        );
        if let Some(i) = (0..g.ids.len()).find(|&i| g.ids[i] != cpu.ids[i]) {
            panic!(
                "{what}: slot {i}: GPU id {}, CPU id {}",
                g.ids[i], cpu.ids[i]
            );
        }
        if let Some(i) = (0..g.scores.len()).find(|&i| g.scores[i] != cpu.scores[i]) {
            panic!(
                "{what}: slot {i}: GPU score {}, CPU score {}",
                g.scores[i], cpu.scores[i]
            );
        }
        if case == 4 {
            assert!(
                g.ids.iter().all(|&i| i == NO_ID),
                "{what}: mask allows nothing"
            );
        }
    }
}

#[wasm_bindgen_test]
async fn exact_ties_are_identical_on_webgpu() {
    let c = require_gpu().await;
    let mut rng = Rng::new(6);
    for format in FORMATS {
        let (n, d, k, b) = (3000usize, 13usize, 64usize, 3usize);
        let rows: Vec<f32> = (0..n * d).map(|_| rng.below(3) as f32 - 1.0).collect();
        let q: Vec<f32> = (0..b * d).map(|_| rng.below(5) as f32 - 2.0).collect();
        let mut fb = FlatBank::new(
            &c,
            d,
            FlatBankOptions {
                format,
                ..Default::default()
            },
        )
        .unwrap();
        fb.append(&rows).await.unwrap();
        fb.append(&rows[..500 * d]).await.unwrap();
        let (g, cpu) = both(&fb, &q, k, None).await;
        assert_eq!(g, cpu, "{format:?}");
    }
}

#[wasm_bindgen_test]
async fn chunked_100k_x_384_f32_bank_on_webgpu() {
    let c = require_gpu().await;
    let (n, d) = (100_000usize, 384usize);
    let mut rng = Rng::new(100);
    let mut fb = FlatBank::new(
        &c,
        d,
        FlatBankOptions {
            capacity: n,
            ..Default::default()
        },
    )
    .unwrap();
    // Append in 4 pieces (no full-bank staging copy in wasm memory).
    for _ in 0..4 {
        fb.append(&rng.vec_f32(n / 4 * d)).await.unwrap();
    }
    assert_eq!(fb.bank_bytes(), 153_600_000);
    assert!(fb.chunk_count() >= 2, "{} chunks", fb.chunk_count());
    let boundary = fb.chunk_rows();
    let mut q = fb.row(boundary).unwrap();
    q.extend(rng.vec_f32(d));
    let (g, cpu) = both(&fb, &q, 10, None).await;
    agreement("100k x 384", &g, &cpu, eps(d), &|_| true).unwrap();
    assert_eq!(g.ids_of(0)[0], boundary as u32);
    log(&format!(
        "100k x 384 f32 in {} chunks of {} rows: GPU and CPU agree",
        fb.chunk_count(),
        boundary
    ));
}

#[wasm_bindgen_test]
async fn folded_dispatch_over_65535_workgroups_on_webgpu() {
    let c = require_gpu().await;
    let n = 2049 * 256 - 5;
    let b = 64;
    let mut rng = Rng::new(65535);
    let rows: Vec<f32> = (0..n)
        .map(|_| rng.below(1 << 20) as f32 / (1 << 20) as f32)
        .collect();
    let opts = FlatBankOptions {
        tuning: Tuning {
            rows_per_group: Some(256),
            merge_fanin: Some(2),
            ..Default::default()
        },
        ..Default::default()
    };
    let mut fb = FlatBank::new(&c, 1, opts).unwrap();
    fb.append(&rows).await.unwrap();
    let plan = fb.gpu_plan(b, 1).unwrap();
    assert!(plan.max_dispatch > 65_535, "{plan:?}");
    let q: Vec<f32> = (0..b).map(|i| [1.0, -1.0, 0.5, -0.25][i % 4]).collect();
    let (g, cpu) = both(&fb, &q, 1, None).await;
    assert_eq!(g, cpu);
}

#[wasm_bindgen_test]
async fn incremental_updates_and_gather_on_webgpu() {
    let c = require_gpu().await;
    let mut rng = Rng::new(8);
    for format in FORMATS {
        let d = 37;
        let mut fb = FlatBank::new(
            &c,
            d,
            FlatBankOptions {
                format,
                ..Default::default()
            },
        )
        .unwrap();
        fb.append(&rng.vec_f32(2000 * d)).await.unwrap();
        let before = fb.uploaded_bytes();
        fb.append(&rng.vec_f32(3 * d)).await.unwrap();
        assert_eq!(
            fb.uploaded_bytes() - before,
            (3 * fb.layout().row_bytes() + 4) as u64
        );
        let before = fb.uploaded_bytes();
        fb.remove(7).unwrap();
        assert_eq!(fb.uploaded_bytes() - before, 4);
        let q = rng.vec_f32(2 * d);
        let (g, cpu) = both(&fb, &q, 12, None).await;
        agreement(
            &format!("{format:?}"),
            &g,
            &cpu,
            eps(d),
            &allowed(&fb, None),
        )
        .unwrap();
        // Gather the selected rows on the GPU, straight from the resident result.
        let res = fb.topk_gpu_resident(&q, 12, None).await.unwrap();
        let rows = fb
            .gather_gpu(
                GatherIds::Gpu {
                    buffer: &res.ids,
                    count: 24,
                },
                1,
            )
            .await
            .unwrap();
        let top = res.read().await.unwrap();
        assert_eq!(
            rows.read().await.unwrap(),
            fb.gather_cpu(&top.ids, 1).unwrap()
        );
    }
}

fn get(o: &JsValue, k: &str) -> JsValue {
    Reflect::get(o, &k.into()).unwrap()
}

fn code_of(e: &JsValue) -> String {
    get(e, "code").as_string().unwrap_or_default()
}

#[wasm_bindgen_test]
async fn js_topk_api_shapes_sentinels_and_error_codes() {
    let k = mnemo::wasm::Kernels::create(None).await.unwrap();
    assert_eq!(k.backend(), "webgpu");
    let d = 5;
    let mut rng = Rng::new(3);
    let bank = rng.vec_f32(3 * d);
    let queries = rng.vec_f32(2 * d);
    let opts = Object::new();
    Reflect::set(&opts, &"format".into(), &"f16".into()).unwrap();
    Reflect::set(&opts, &"mask".into(), &Uint32Array::from(&[0b101u32][..])).unwrap();
    let r: JsValue = k
        .topk(
            bank.clone(),
            d,
            queries.clone(),
            4,
            Some(JsValue::from(opts).unchecked_into()),
        )
        .await
        .unwrap()
        .into();
    let ids: Uint32Array = get(&r, "ids").dyn_into().unwrap();
    let scores: Float32Array = get(&r, "scores").dyn_into().unwrap();
    assert_eq!(ids.length(), 8);
    assert_eq!(scores.length(), 8);
    let ids = ids.to_vec();
    let scores = scores.to_vec();
    // Two rows allowed (0 and 2): slots 2 and 3 of each query are unfilled.
    for q in 0..2 {
        assert_eq!(&ids[q * 4 + 2..q * 4 + 4], &[NO_ID, NO_ID]);
        assert_eq!(scores[q * 4 + 3], f32::NEG_INFINITY);
        let mut got = ids[q * 4..q * 4 + 2].to_vec();
        got.sort();
        assert_eq!(got, vec![0, 2]);
    }
    let want = topk_cpu(
        &bank,
        d,
        &queries,
        4,
        TopkOptions {
            mask: Some(&[0b101]),
            format: BankFormat::F16,
        },
    )
    .unwrap();
    assert_eq!(ids, want.ids);
    // Typed errors.
    let err = k
        .topk(bank.clone(), d, queries.clone(), 0, None)
        .await
        .err()
        .expect("an error");
    assert_eq!(code_of(&err), "INVALID_INPUT");
    let err = k
        .topk(bank.clone(), d, vec![1.0; 4], 1, None)
        .await
        .err()
        .expect("an error");
    assert_eq!(code_of(&err), "DIMENSION_MISMATCH");
    let err = k
        .topk(bank.clone(), d, vec![], 1, None)
        .await
        .err()
        .expect("an error");
    assert_eq!(code_of(&err), "INVALID_INPUT");
    let bad = Object::new();
    Reflect::set(&bad, &"format".into(), &"f8".into()).unwrap();
    let err = k
        .topk(
            bank,
            d,
            queries,
            1,
            Some(JsValue::from(bad).unchecked_into()),
        )
        .await
        .err()
        .expect("an error");
    assert_eq!(code_of(&err), "INVALID_INPUT");
}

#[wasm_bindgen_test]
async fn js_flat_bank_gpu_and_cpu_paths_agree() {
    let k = mnemo::wasm::Kernels::create(None).await.unwrap();
    let d = 16;
    let mut rng = Rng::new(4);
    let fb = k.flat_bank(d, None).unwrap();
    let first = fb.append(rng.vec_f32(500 * d)).await.unwrap();
    assert_eq!(first, 0);
    assert_eq!(fb.append(rng.vec_f32(10 * d)).await.unwrap(), 500);
    assert!(fb.remove(3).unwrap());
    assert_eq!(fb.len().unwrap(), 510);
    assert_eq!(fb.live_count().unwrap(), 509);
    assert!(fb.has_gpu().unwrap());
    let q = rng.vec_f32(2 * d);
    let mut out = Vec::new();
    for path in ["gpu", "cpu"] {
        let o = Object::new();
        Reflect::set(&o, &"path".into(), &path.into()).unwrap();
        let r: JsValue = fb
            .topk(q.clone(), 7, Some(JsValue::from(o).unchecked_into()))
            .await
            .unwrap()
            .into();
        let ids: Uint32Array = get(&r, "ids").dyn_into().unwrap();
        let scores: Float32Array = get(&r, "scores").dyn_into().unwrap();
        out.push(TopkResult {
            ids: ids.to_vec(),
            scores: scores.to_vec(),
            queries: 2,
            k: 7,
        });
    }
    agreement("js FlatBank", &out[0], &out[1], eps(d), &|i| i != 3).unwrap();
    let rows = fb.gather(vec![0, NO_ID, 509], None).await.unwrap();
    assert_eq!(rows.len(), 3 * d);
    assert!(rows[d..2 * d].iter().all(|&x| x == 0.0));
    let err = fb.remove(9999).unwrap_err();
    assert_eq!(code_of(&err), "INVALID_INPUT");
    // The CPU-only Kernels give the same ids through the stateless API.
    let cpu = mnemo::wasm::Kernels::create(Some(
        JsValue::from({
            let o = Object::new();
            Reflect::set(&o, &"prefer".into(), &"cpu".into()).unwrap();
            o
        })
        .unchecked_into(),
    ))
    .await
    .unwrap();
    assert_eq!(cpu.backend(), "cpu");
    let bank = rng.vec_f32(300 * d);
    let r1: JsValue = cpu
        .topk(bank.clone(), d, q.clone(), 5, None)
        .await
        .unwrap()
        .into();
    let r2: JsValue = k.topk(bank, d, q, 5, None).await.unwrap().into();
    let a: Uint32Array = get(&r1, "ids").dyn_into().unwrap();
    let b: Uint32Array = get(&r2, "ids").dyn_into().unwrap();
    assert_eq!(a.to_vec(), b.to_vec());
}

#[wasm_bindgen_test]
async fn cpu_compute_runs_the_flat_bank_without_a_gpu() {
    let c = Compute::cpu();
    let mut fb = FlatBank::new(&c, 8, FlatBankOptions::default()).unwrap();
    fb.append(&[0.5; 8 * 40]).await.unwrap();
    let r = fb.topk(&[1.0; 8], 3, None, FetchPath::Auto).await.unwrap();
    assert_eq!(r.ids, vec![0, 1, 2]);
    let e = fb
        .topk(&[1.0; 8], 3, None, FetchPath::Gpu)
        .await
        .expect_err("an error");
    assert_eq!(e.code(), "GPU_UNAVAILABLE");
}
