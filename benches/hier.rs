//! Hierarchical memory bank and product-key lookup benchmarks (numbers, never assertions).
//!
//! For N = 10k, 100k, 1M rows × 384 dims of seeded clustered, L2-normalised data (see
//! `mnemo::kernels::hier::synth`; `MNEMO_HIER_SIZES=10000,100000` to choose), it prints:
//! build throughput (vectors/s, CPU path; GPU build where the bank fits one binding), and per
//! beam: recall@10 against exact search, bytes read per query and the ratio to the flat scan, and
//! query latency (median and p95 over single-query calls, B = 1; and B = 16 batches). The flat
//! exact scan on the CPU is measured in the same run as the baseline. Criterion then measures
//! the default configuration. The GPU rows run on whatever adapter is present (lavapipe here:
//! a software rasteriser, so GPU numbers are for ratios and regressions only).

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::hint::black_box;
    use std::time::{Duration, Instant};

    use criterion::{criterion_group, Criterion};
    use mnemo::kernels::hier::gpu::build_gpu;
    use mnemo::kernels::hier::gpu_search::{search_gpu, HierGpu};
    use mnemo::kernels::hier::pkm::{pkm_cpu, pkm_gpu, PkmArgs, PkmGpu};
    use mnemo::kernels::hier::synth::{clustered, Clustered};
    use mnemo::kernels::hier::topk::{exact_topk, recall};
    use mnemo::kernels::hier::{HierConfig, HierIndex, SearchOptions};
    use mnemo::rng::Rng;

    const D: usize = 384;

    fn sizes() -> Vec<usize> {
        std::env::var("MNEMO_HIER_SIZES")
            .ok()
            .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
            .unwrap_or_else(|| vec![10_000, 100_000, 1_000_000])
    }

    fn percentile(sorted: &[f64], p: f64) -> f64 {
        if sorted.is_empty() {
            return f64::NAN;
        }
        let i = ((sorted.len() - 1) as f64 * p).round() as usize;
        sorted[i]
    }

    /// Median and p95 (µs) of single-query latencies of `f` over `queries` (each run `reps` times).
    fn latency(queries: &[f32], reps: usize, mut f: impl FnMut(&[f32])) -> (f64, f64) {
        let mut t = Vec::new();
        for _ in 0..reps {
            for q in queries.chunks_exact(D) {
                let t0 = Instant::now();
                f(q);
                t.push(t0.elapsed().as_secs_f64() * 1e6);
            }
        }
        t.sort_by(f64::total_cmp);
        (percentile(&t, 0.5), percentile(&t, 0.95))
    }

    fn bench_hier(c: &mut Criterion) {
        for n in sizes() {
            let nq = if n >= 1_000_000 { 100 } else { 200 };
            println!("\n=== hier: N = {n} x {D} (clustered, seed 7), {nq} queries, k = 10 ===");
            let t0 = Instant::now();
            let (bank, qs) = clustered(&Clustered::new(n, D, 7), nq);
            println!("data generated in {:.1} s", t0.elapsed().as_secs_f64());
            // MNEMO_HIER_SHAPE=branching,depth overrides the automatic configuration.
            let cfg = match std::env::var("MNEMO_HIER_SHAPE").ok().and_then(|v| {
                let p: Vec<usize> = v.split(',').filter_map(|x| x.trim().parse().ok()).collect();
                (p.len() == 2).then(|| (p[0], p[1]))
            }) {
                Some((b, dp)) => HierConfig::with_shape(n, b, dp),
                None => HierConfig::auto(n),
            };
            // MNEMO_HIER_TRAIN=samples_per_centroid,iterations overrides the k-means training.
            let cfg = match std::env::var("MNEMO_HIER_TRAIN").ok().and_then(|v| {
                let p: Vec<usize> = v.split(',').filter_map(|x| x.trim().parse().ok()).collect();
                (p.len() == 2).then(|| (p[0], p[1]))
            }) {
                Some((t, it)) => HierConfig {
                    train_per_centroid: t,
                    iterations: it,
                    ..cfg
                },
                None => cfg,
            };
            let t0 = Instant::now();
            let idx = HierIndex::build(&bank, D, None, Some(cfg)).unwrap();
            let build_s = t0.elapsed().as_secs_f64();
            let st = idx.stats();
            println!(
                "CPU build: {build_s:.2} s = {:.0} vectors/s (hnswlib-wasm in the browser: ~3,200/s); \
                 branching {}, depth {}, k-means {} samples/centroid x {} iterations; \
                 {} leaves (max {} rows), height {}",
                n as f64 / build_s,
                cfg.branching,
                cfg.depth,
                cfg.train_per_centroid,
                cfg.iterations,
                st.leaves,
                st.max_leaf_rows,
                st.height
            );
            // Exact ground truth; its per-query time is the flat-scan baseline.
            let t0 = Instant::now();
            let (truth, _) = exact_topk(&bank, D, None, &qs, 10, None);
            let flat_us = t0.elapsed().as_secs_f64() * 1e6 / nq as f64;
            let flat_bytes = (n * D * 4) as f64;
            let (flat_p50, flat_p95) = if n <= 100_000 {
                latency(&qs[..20 * D], 1, |q| {
                    black_box(exact_topk(&bank, D, None, q, 10, None));
                })
            } else {
                (flat_us, f64::NAN)
            };
            println!(
                "flat exact scan (CPU): {flat_p50:.0} us median, {flat_p95:.0} us p95 per query; \
                 {flat_bytes:.0} bytes/query"
            );
            let leaves = st.leaves;
            let mut beams: Vec<usize> = [1usize, 2, 4, 8, 16, 32, 64, 128, 256, 512]
                .into_iter()
                .filter(|&b| b <= leaves)
                .collect();
            if !beams.contains(&st.default_beam) {
                beams.push(st.default_beam);
                beams.sort_unstable();
            }
            println!("beam | recall@10 | bytes/query | fewer than flat | B=1 median us | B=1 p95 us | B=16 us/query");
            for &beam in &beams {
                let o = SearchOptions {
                    k: 10,
                    beam: Some(beam),
                    mask: None,
                };
                let r = idx.search(&qs, &o).unwrap();
                let rc = recall(&r.ids, &truth, 10);
                let bytes = r.stats.bytes_read as f64 / nq as f64;
                let (p50, p95) = latency(&qs, 3, |q| {
                    black_box(idx.search(q, &o).unwrap());
                });
                let t0 = Instant::now();
                for batch in qs.chunks(16 * D) {
                    black_box(idx.search(batch, &o).unwrap());
                }
                let b16 = t0.elapsed().as_secs_f64() * 1e6 / nq as f64;
                println!(
                    "{beam:4}{} | {rc:.4} | {bytes:.0} | {:.1}x | {p50:.1} | {p95:.1} | {b16:.1}",
                    if beam == st.default_beam { "*" } else { " " },
                    flat_bytes / bytes
                );
            }
            println!("(* = default beam)");
            let o = SearchOptions {
                k: 10,
                beam: None,
                mask: None,
            };
            let mut g = c.benchmark_group(format!("hier_{n}"));
            g.sample_size(20)
                .warm_up_time(Duration::from_millis(500))
                .measurement_time(Duration::from_secs(2));
            let mut i = 0;
            g.bench_function("cpu_search_b1_k10_default_beam", |b| {
                b.iter(|| {
                    i = (i + 1) % nq;
                    black_box(idx.search(&qs[i * D..(i + 1) * D], &o).unwrap())
                })
            });
            g.bench_function("cpu_search_b16_k10_default_beam", |b| {
                b.iter(|| black_box(idx.search(&qs[..16 * D], &o).unwrap()))
            });
            g.finish();
            // GPU rows (where the bank fits one storage binding of the adapter).
            let gpu = pollster::block_on(mnemo::testing::require_gpu());
            let ctx = gpu.gpu_context().unwrap();
            let adapter = &ctx.adapter_info().name;
            match pollster::block_on(async {
                let t0 = Instant::now();
                let g = build_gpu(ctx, &bank, D, None, Some(cfg)).await?;
                Ok::<_, mnemo::kernels::hier::HierError>((g, t0.elapsed().as_secs_f64()))
            }) {
                Ok((g, s)) => println!(
                    "GPU build ({adapter}): {s:.2} s = {:.0} vectors/s; identical to the CPU build: {}",
                    n as f64 / s,
                    g.to_bytes(false) == idx.to_bytes(false)
                ),
                Err(e) => println!("GPU build ({adapter}): not run: {e}"),
            }
            match HierGpu::upload(ctx, &idx) {
                Ok(m) => {
                    let run = |q: &[f32]| {
                        pollster::block_on(search_gpu(ctx, &idx, &m, q, &o, false)).unwrap()
                    };
                    let r = run(&qs);
                    let rc = recall(&r.0.ids, &truth, 10);
                    let (p50, p95) = latency(&qs[..20 * D], 1, |q| {
                        black_box(run(q));
                    });
                    let t0 = Instant::now();
                    black_box(run(&qs[..16 * D]));
                    let b16 = t0.elapsed().as_secs_f64() * 1e6 / 16.0;
                    println!(
                        "GPU search ({adapter}), default beam: recall@10 {rc:.4}; B=1 median {p50:.0} us, \
                         p95 {p95:.0} us; B=16 {b16:.0} us/query (one submission + readback per call)"
                    );
                }
                Err(e) => println!("GPU search ({adapter}): not run: {e}"),
            }
        }
    }

    fn bench_pkm(c: &mut Criterion) {
        // A PKM layer: 512-dim queries, 2 x 256 sub-keys (65,536 slots), 256-dim values, k = 32.
        let (d, n1, n2, dv, k) = (512usize, 256usize, 256usize, 256usize, 32usize);
        let mut rng = Rng::new(5);
        let queries = rng.vec_f32(16 * d);
        let keys1 = rng.vec_f32(n1 * d / 2);
        let keys2 = rng.vec_f32(n2 * d / 2);
        let values = rng.vec_f32(n1 * n2 * dv);
        let args = |b: usize| PkmArgs {
            queries: &queries[..b * d],
            dims: d,
            keys1: &keys1,
            keys2: &keys2,
            values: &values,
            value_dims: dv,
            k,
        };
        println!("\n=== PKM: d = {d}, {n1} x {n2} slots, values {dv}, k = {k} ===");
        let mut g = c.benchmark_group("pkm");
        g.sample_size(20)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        for b in [1usize, 16] {
            g.bench_function(format!("cpu_b{b}"), |bn| {
                bn.iter(|| black_box(pkm_cpu(&args(b)).unwrap()))
            });
        }
        let gpu = pollster::block_on(mnemo::testing::require_gpu());
        let ctx = gpu.gpu_context().unwrap();
        // Resident memory (uploaded once), as a model layer would hold it.
        let layer = PkmGpu::upload(ctx, d, &keys1, &keys2, &values, dv).unwrap();
        for b in [1usize, 16] {
            g.bench_function(format!("gpu_resident_b{b}"), |bn| {
                bn.iter(|| {
                    black_box(pollster::block_on(layer.lookup(ctx, &queries[..b * d], k)).unwrap())
                })
            });
        }
        g.sample_size(10);
        g.bench_function("gpu_one_shot_upload_and_lookup_b1", |bn| {
            bn.iter(|| black_box(pollster::block_on(pkm_gpu(ctx, &args(1))).unwrap()))
        });
        g.finish();
    }

    criterion_group!(benches, bench_hier, bench_pkm);
}

#[cfg(not(target_arch = "wasm32"))]
criterion::criterion_main!(native::benches);

/// Benchmarks run natively only.
#[cfg(target_arch = "wasm32")]
fn main() {}
