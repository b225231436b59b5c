//! Browser tests (headless Chromium, WebGPU on SwiftShader) of the hierarchical index and the
//! product-key lookup: the WGSL kernels against their CPU references under the rules of
//! `mnemo::kernels::hier::check`, and the JS API (`Kernels.hierBuild` / `hierSearch` /
//! `productKeyLookup`, the `HierIndex` class) with its typed errors. Sizes are small: SwiftShader
//! is a software rasteriser.
#![cfg(target_arch = "wasm32")]

use mnemo::kernels::hier::check;
use mnemo::kernels::hier::gpu::{assign_gpu, build_gpu, update_gpu};
use mnemo::kernels::hier::gpu_search::{search_gpu, HierGpu};
use mnemo::kernels::hier::kmeans::{assign_cpu, set_bias, update_cpu, Group, LevelProblem};
use mnemo::kernels::hier::pkm::{pkm_cpu, pkm_gpu, PkmArgs};
use mnemo::kernels::hier::synth::{clustered, Clustered};
use mnemo::kernels::hier::topk::NO_ID;
use mnemo::kernels::hier::{HierConfig, HierIndex, SearchOptions};
use mnemo::rng::Rng;
use mnemo::testing::{assert_close, require_gpu};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn problem(rng: &mut Rng, n: usize, d: usize, groups: usize) -> (Vec<f32>, LevelProblem) {
    let bank = rng.vec_f32(n * d);
    let mut p = LevelProblem {
        d,
        ..Default::default()
    };
    for g in 0..groups {
        let count = rng.below(n / groups + 70);
        let ccount = 1 + rng.below(6);
        p.groups.push(Group {
            pstart: p.pts.len() as u32,
            pcount: count as u32,
            cstart: p.cgrp.len() as u32,
            ccount: ccount as u32,
        });
        for _ in 0..count {
            p.pts.push(rng.below(n) as u32);
            p.pgrp.push(g as u32);
        }
        for _ in 0..ccount {
            let r = rng.below(n);
            p.cents.extend_from_slice(&bank[r * d..(r + 1) * d]);
            p.cents.push(0.0);
            let at = p.cents.len() - (d + 1);
            set_bias(&mut p.cents[at..]);
            p.cgrp.push(g as u32);
        }
    }
    (bank, p)
}

#[wasm_bindgen_test]
async fn kmeans_kernels_match_cpu_on_webgpu() {
    let c = require_gpu().await;
    let ctx = c.gpu_context().unwrap();
    let mut rng = Rng::new(0x3EB);
    for case in 0..4 {
        let d = [3usize, 33, 64, 384][case];
        let (bank, p) = problem(&mut rng, 300 + case * 77, d, 1 + case);
        let want = assign_cpu(&bank, &p);
        let got = assign_gpu(ctx, &bank, &p).await.unwrap();
        check::assignments(&bank, &p, &got, &want)
            .unwrap_or_else(|m| panic!("case {case} d={d}: {m}"));
        let mut pc = p.clone();
        let counts_cpu = update_cpu(&bank, &mut pc, &want);
        let mut pg = p.clone();
        let counts_gpu = update_gpu(ctx, &bank, &mut pg, &want).await.unwrap();
        assert_eq!(counts_gpu, counts_cpu, "case {case}: counts");
        assert_close(
            &format!("case {case}: centroids"),
            &pg.cents,
            &pc.cents,
            1e-5,
            1e-6,
        );
    }
}

#[wasm_bindgen_test]
async fn gpu_build_and_search_match_cpu_on_webgpu() {
    let c = require_gpu().await;
    let ctx = c.gpu_context().unwrap();
    let (n, d) = (1_500, 48);
    let (bank, qs) = clustered(&Clustered::new(n, d, 12), 9);
    let cfg = HierConfig {
        iterations: 4,
        ..HierConfig::with_shape(n, 6, 2)
    };
    let cpu = HierIndex::build(&bank, d, None, Some(cfg)).unwrap();
    let gpu = build_gpu(ctx, &bank, d, None, Some(cfg)).await.unwrap();
    gpu.check_invariants().unwrap();
    let same = cpu.to_bytes(true) == gpu.to_bytes(true);
    web_sys::console::log_1(&format!("WebGPU build identical to the CPU build: {same}").into());
    let mirror = HierGpu::upload(ctx, &cpu).unwrap();
    let leaves = cpu.stats().leaves;
    let mut mask = vec![0u32; n.div_ceil(32)];
    for i in (0..n).step_by(3) {
        mask[i / 32] |= 1 << (i % 32);
    }
    let mut ties = 0;
    for (k, beam, m) in [
        (1usize, Some(1usize), None),
        (10, None, None),
        (10, Some(leaves), None),
        (33, Some(4), Some(mask.as_slice())),
    ] {
        let o = SearchOptions { k, beam, mask: m };
        let (g, rows) = search_gpu(ctx, &cpu, &mirror, &qs, &o, true).await.unwrap();
        ties += check::search(&cpu, &qs, &o, &g, rows.as_deref())
            .unwrap_or_else(|e| panic!("k={k} beam={beam:?} mask={}: {e}", m.is_some()));
    }
    assert!(ties <= 2, "{ties} routing near-ties");
}

#[wasm_bindgen_test]
async fn pkm_matches_cpu_on_webgpu() {
    let c = require_gpu().await;
    let ctx = c.gpu_context().unwrap();
    let mut rng = Rng::new(0x9B);
    for case in 0..3 {
        let (d, n1, n2, dv, k, b) = [
            (2usize, 4usize, 5usize, 3usize, 2usize, 2usize),
            (65, 100, 37, 33, 8, 3),
            (128, 1100, 64, 16, 32, 2),
        ][case];
        let h1 = d / 2;
        let queries = rng.vec_f32(b * d);
        let keys1 = rng.vec_f32(n1 * h1);
        let keys2 = rng.vec_f32(n2 * (d - h1));
        let values = rng.vec_f32(n1 * n2 * dv);
        let a = PkmArgs {
            queries: &queries,
            dims: d,
            keys1: &keys1,
            keys2: &keys2,
            values: &values,
            value_dims: dv,
            k,
        };
        let want = pkm_cpu(&a).unwrap();
        let got = pkm_gpu(ctx, &a).await.unwrap();
        let skipped = check::pkm(&a, &got, &want).unwrap_or_else(|m| panic!("case {case}: {m}"));
        assert!(skipped <= 1);
    }
}

fn get(o: &JsValue, key: &str) -> JsValue {
    js_sys::Reflect::get(o, &key.into()).unwrap()
}

fn code_of<T>(r: Result<T, JsValue>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => get(&e, "code").as_string().unwrap_or_default(),
    }
}

#[wasm_bindgen_test]
async fn js_api_hier_and_pkm() {
    let (n, d) = (800, 16);
    let (bank, qs) = clustered(&Clustered::new(n, d, 4), 3);
    for prefer in ["webgpu", "cpu"] {
        let opts = js_sys::Object::new();
        js_sys::Reflect::set(&opts, &"prefer".into(), &prefer.into()).unwrap();
        let k = mnemo::wasm::Kernels::create(Some(opts.unchecked_into()))
            .await
            .unwrap();
        let build_opts = js_sys::Object::new();
        js_sys::Reflect::set(&build_opts, &"branching".into(), &6.into()).unwrap();
        js_sys::Reflect::set(&build_opts, &"depth".into(), &2.into()).unwrap();
        let idx = k
            .hier_build(bank.clone(), d, Some(build_opts.unchecked_into()))
            .await
            .unwrap();
        assert_eq!(idx.size(), n);
        assert_eq!(idx.built_on(), prefer);
        // Synchronous CPU search and the Kernels search agree (k = 5, default beam).
        let cpu = idx.search(&qs, 5, None).unwrap();
        let via = k.hier_search(&idx, qs.clone(), 5, None).await.unwrap();
        assert_eq!(get(&via, "backend").as_string().unwrap(), prefer);
        let a = js_sys::Uint32Array::from(get(&cpu, "ids")).to_vec();
        let b = js_sys::Uint32Array::from(get(&via, "ids")).to_vec();
        assert_eq!(a.len(), 15);
        assert_eq!(a, b, "{prefer}: hierSearch vs HierIndex.search");
        // Round trip through bytes, incremental changes, masks.
        let bytes = idx.to_bytes(None);
        let back = mnemo_hier_from_bytes(&bytes);
        let again =
            js_sys::Uint32Array::from(get(&back.search(&qs, 5, None).unwrap(), "ids")).to_vec();
        assert_eq!(again, a);
        back.insert(&[5000], &qs[..d]).unwrap();
        let top = js_sys::Uint32Array::from(get(&back.search(&qs[..d], 1, None).unwrap(), "ids"))
            .to_vec();
        assert_eq!(top, vec![5000]);
        back.remove(&[5000]).unwrap();
        let so = js_sys::Object::new();
        js_sys::Reflect::set(
            &so,
            &"mask".into(),
            &js_sys::Uint32Array::new_with_length(25),
        )
        .unwrap();
        let none = back.search(&qs, 2, Some(so.unchecked_into())).unwrap();
        let ids = js_sys::Uint32Array::from(get(&none, "ids")).to_vec();
        assert!(ids.iter().all(|&i| i == NO_ID));
        // Typed errors.
        assert_eq!(code_of(idx.search(&qs, 0, None)), "INVALID_INPUT");
        assert_eq!(
            code_of(idx.search(&qs[..d - 1], 1, None)),
            "DIMENSION_MISMATCH"
        );
        assert_eq!(code_of(idx.remove(&[99_999])), "UNKNOWN_ID");
        assert_eq!(code_of(idx.insert(&[1], &qs[..d])), "DUPLICATE_ID");
        let mut bad = bytes.clone();
        bad[30] ^= 0xFF;
        let e = mnemo_hier_from_bytes_err(&bad);
        assert_eq!(code_of::<()>(Err(e)), "INDEX_CORRUPT");
        let bo = js_sys::Object::new();
        js_sys::Reflect::set(&bo, &"mask".into(), &JsValue::from_str("nope")).unwrap();
        assert_eq!(
            code_of(idx.search(&qs, 1, Some(bo.unchecked_into()))),
            "INVALID_INPUT"
        );
        // Product keys.
        let pk = k
            .product_key_lookup(
                vec![1.0, 2.0],
                2,
                vec![1.0, -1.0],
                vec![0.5, 1.0],
                vec![0.0, 1.0, 2.0, 3.0],
                1,
                1,
            )
            .await
            .unwrap();
        assert_eq!(js_sys::Uint32Array::from(get(&pk, "ids")).to_vec(), vec![1]);
        assert_eq!(
            js_sys::Float32Array::from(get(&pk, "output")).to_vec(),
            vec![1.0]
        );
        let e = k
            .product_key_lookup(
                vec![1.0, 2.0],
                2,
                vec![1.0, -1.0],
                vec![0.5, 1.0],
                vec![0.0; 3],
                1,
                1,
            )
            .await;
        assert_eq!(code_of(e), "SHAPE_MISMATCH");
    }
}

fn mnemo_hier_from_bytes(bytes: &[u8]) -> mnemo::wasm::HierIndex {
    mnemo::wasm::HierIndex::from_bytes(bytes, None).unwrap()
}

fn mnemo_hier_from_bytes_err(bytes: &[u8]) -> JsValue {
    match mnemo::wasm::HierIndex::from_bytes(bytes, None) {
        Ok(_) => panic!("corrupt bytes loaded"),
        Err(e) => e,
    }
}
