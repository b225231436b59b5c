//! Browser tests (headless Chromium, WebGPU on SwiftShader) of the hierarchical index and the
//! product-key lookup: the WGSL kernels, the GPU build and the GPU search against their CPU
//! references under the rules of `mnemo::kernels::hier::check`. The JS API is tested in
//! `web_hier_api.rs` (a separate binary: wasm-bindgen-test-runner gives each binary 20 s).
//! Sizes are small: SwiftShader is a software rasteriser.
#![cfg(target_arch = "wasm32")]

use mnemo::kernels::hier::check;
use mnemo::kernels::hier::gpu::{assign_gpu, build_gpu, update_gpu};
use mnemo::kernels::hier::gpu_search::{search_gpu, HierGpu};
use mnemo::kernels::hier::kmeans::{assign_cpu, set_bias, update_cpu, Group, LevelProblem};
use mnemo::kernels::hier::pkm::{pkm_cpu, pkm_gpu, PkmArgs};
use mnemo::kernels::hier::synth::{clustered, Clustered};
use mnemo::kernels::hier::{HierConfig, HierIndex, SearchOptions};
use mnemo::rng::Rng;
use mnemo::testing::{assert_close, require_gpu};
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
        let d = [3usize, 33, 64, 130][case];
        let (bank, p) = problem(&mut rng, 200 + case * 77, d, 1 + case);
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
    let (n, d) = (1_000, 32);
    let (bank, qs) = clustered(&Clustered::new(n, d, 12), 6);
    let cfg = HierConfig {
        iterations: 3,
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
            (64, 1030, 40, 16, 32, 1),
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
