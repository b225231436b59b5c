//! Attention benchmarks on the native GPU (Mesa lavapipe in CI): numbers, never assertions.
//!
//! - `attention_matmul/{MM}`: the tiled matmul (MM^3, default 512): the adapter's measured
//!   arithmetic peak in this run.
//! - `attention_prefill/{noncausal,causal}_{T}`: tiled prefill, T = 512 by default, 8 heads,
//!   2 kv heads, head dim 64. Throughput is reported in elements = FLOPs (4 * D per visible
//!   (query, key) pair per head), i.e. criterion's `Gelem/s` reads as GFLOP/s.
//! - Sizes: `MNEMO_BENCH_MM` and `MNEMO_BENCH_T` (e.g. 1024 / 1024 or 4096 on a real GPU; the
//!   defaults keep a lavapipe run on a busy 2-core machine to a few minutes).
//! - `attention_decode/call_{kv}` and `attention_decode/kernel5_{kv}`: one query, 8 heads,
//!   2 kv heads, head dim 64, KV length 1k..32k; `call` is one end-to-end call (upload of the
//!   KV cache included), `kernel5` runs the two passes 5 times in one call, so that the kernel
//!   alone costs (kernel5 - call) / 4.
//!
//! After criterion, a summary prints prefill GFLOP/s as a fraction of the matmul peak and the
//! decode latencies, read back from criterion's estimates (medians) under `target/criterion`.
//! Run: `cargo bench --bench attention` (set `MNEMO_BENCH_QUICK=1` for fewer samples).

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    native::main();
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::path::PathBuf;
    use std::time::Duration;

    use criterion::{Criterion, Throughput};
    use mnemo::kernels::attention::{
        attention_gpu_repeated, decode_attention_gpu_repeated, matmul::matmul_gpu, AttentionArgs,
    };
    use mnemo::rng::Rng;

    const REPEAT: u32 = 1;
    const H: usize = 8;
    const KVH: usize = 2;
    const D: usize = 64;
    const KV_LENS: [usize; 6] = [1024, 2048, 4096, 8192, 16384, 32768];

    fn env_size(name: &str, default: usize) -> usize {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    fn prefill_flops(t: usize, causal: bool) -> u64 {
        let pairs = if causal { t * (t + 1) / 2 } else { t * t };
        (4 * D * H * pairs) as u64
    }

    fn median_ns(group: &str, id: &str) -> Option<f64> {
        let root = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
        let path = root
            .join("criterion")
            .join(group)
            .join(id)
            .join("new/estimates.json");
        let text = std::fs::read_to_string(path).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v["median"]["point_estimate"].as_f64()
    }

    pub fn main() {
        let compute = pollster::block_on(mnemo::testing::require_gpu());
        let ctx = compute.gpu_context().expect("gpu");
        let info = compute.adapter_info().expect("adapter");
        println!(
            "adapter: {} ({}, {})",
            info.name, info.api, info.device_type
        );
        let quick = std::env::var_os("MNEMO_BENCH_QUICK").is_some();
        let mm = env_size("MNEMO_BENCH_MM", 512);
        let t = env_size("MNEMO_BENCH_T", 512);
        println!("sizes: matmul {mm}^3, prefill T = {t}");
        let mut c = Criterion::default()
            .configure_from_args()
            .sample_size(10)
            .warm_up_time(Duration::from_millis(if quick { 200 } else { 1000 }))
            .measurement_time(Duration::from_secs(if quick { 2 } else { 5 }));
        let mut rng = Rng::new(42);

        {
            let a = rng.vec_f32(mm * mm);
            let b = rng.vec_f32(mm * mm);
            let mut g = c.benchmark_group("attention_matmul");
            g.throughput(Throughput::Elements(
                (2 * mm * mm * mm) as u64 * REPEAT as u64,
            ));
            g.bench_function(mm.to_string(), |bch| {
                bch.iter(|| {
                    pollster::block_on(matmul_gpu(ctx, &a, &b, mm, mm, mm, REPEAT)).unwrap()
                })
            });
            g.finish();
        }

        let q: Vec<f32> = (0..t * H * D).map(|_| rng.normal()).collect();
        let k: Vec<f32> = (0..t * KVH * D).map(|_| rng.normal()).collect();
        let v = rng.vec_f32(t * KVH * D);
        {
            let mut g = c.benchmark_group("attention_prefill");
            for causal in [false, true] {
                let a = AttentionArgs {
                    q: &q,
                    k: &k,
                    v: &v,
                    heads: H,
                    kv_heads: KVH,
                    head_dim: D,
                    causal,
                    mask: None,
                };
                g.throughput(Throughput::Elements(
                    prefill_flops(t, causal) * REPEAT as u64,
                ));
                let id = format!("{}_{t}", if causal { "causal" } else { "noncausal" });
                g.bench_function(id, |bch| {
                    bch.iter(|| {
                        pollster::block_on(attention_gpu_repeated(ctx, &a, REPEAT)).unwrap()
                    })
                });
            }
            g.finish();
        }

        let kmax = KV_LENS[KV_LENS.len() - 1];
        let kc: Vec<f32> = (0..kmax * KVH * D).map(|_| rng.normal()).collect();
        let vc = rng.vec_f32(kmax * KVH * D);
        let q1: Vec<f32> = (0..H * D).map(|_| rng.normal()).collect();
        {
            let mut g = c.benchmark_group("attention_decode");
            for &kv in &KV_LENS {
                let a = AttentionArgs {
                    q: &q1,
                    k: &kc[..kv * KVH * D],
                    v: &vc[..kv * KVH * D],
                    heads: H,
                    kv_heads: KVH,
                    head_dim: D,
                    causal: false,
                    mask: None,
                };
                for rep in [1u32, 5] {
                    let id = if rep == 1 {
                        format!("call_{kv}")
                    } else {
                        format!("kernel5_{kv}")
                    };
                    g.bench_function(id, |bch| {
                        bch.iter(|| {
                            pollster::block_on(decode_attention_gpu_repeated(ctx, &a, rep)).unwrap()
                        })
                    });
                }
            }
            g.finish();
        }
        c.final_summary();

        println!(
            "\n== attention summary (medians from criterion; adapter {}) ==",
            info.name
        );
        let gflops = |flops: u64, ns: f64| flops as f64 / ns;
        let peak = median_ns("attention_matmul", &mm.to_string())
            .map(|ns| gflops((2 * mm * mm * mm) as u64 * REPEAT as u64, ns));
        match peak {
            Some(p) => println!("matmul {mm}^3 peak: {p:.2} GFLOP/s"),
            None => println!("matmul peak: n/a (no criterion estimate)"),
        }
        for causal in [false, true] {
            let id = format!("{}_{t}", if causal { "causal" } else { "noncausal" });
            if let Some(ns) = median_ns("attention_prefill", &id) {
                let g = gflops(prefill_flops(t, causal) * REPEAT as u64, ns);
                let frac = peak
                    .map(|p| format!("{:.1}% of matmul peak", 100.0 * g / p))
                    .unwrap_or_default();
                println!(
                    "prefill {id} (H={H}, kvH={KVH}, D={D}): {g:.2} GFLOP/s, {:.1} ms per pass, {:.0} tokens/s; {frac}",
                    ns / REPEAT as f64 / 1e6,
                    t as f64 * REPEAT as f64 / (ns / 1e9)
                );
            }
        }
        println!("decode (1 query, H={H}, kvH={KVH}, D={D}):   kv | call (ms) | kernel only (ms)");
        for &kv in &KV_LENS {
            let call = median_ns("attention_decode", &format!("call_{kv}"));
            let k9 = median_ns("attention_decode", &format!("kernel5_{kv}"));
            if let (Some(c1), Some(c9)) = (call, k9) {
                println!(
                    "  {kv:>6} | {:>9.3} | {:>9.3}",
                    c1 / 1e6,
                    ((c9 - c1) / 4.0).max(0.0) / 1e6
                );
            }
        }
    }
}
