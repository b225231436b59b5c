//! Attention benchmarks on the native GPU (Mesa lavapipe in CI): numbers, never assertions.
//!
//! - `attention_matmul/1024`: the tiled matmul (1024^3, 3 dispatches per call): the adapter's
//!   measured arithmetic peak in this run.
//! - `attention_prefill/{noncausal,causal}_1024`: tiled prefill, T = 1024, 8 heads, 2 kv heads,
//!   head dim 64, 3 dispatches per call. Throughput is reported in elements = FLOPs (4 * D per
//!   visible (query, key) pair per head), i.e. criterion's `Gelem/s` reads as GFLOP/s.
//! - `attention_decode/call_{kv}` and `attention_decode/kernel9_{kv}`: one query, 8 heads,
//!   2 kv heads, head dim 64, KV length 1k..32k; `call` is one end-to-end call (upload of the
//!   KV cache included), `kernel9` runs the two passes 9 times in one call, so that the kernel
//!   alone costs (kernel9 - call) / 8.
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

    const REPEAT: u32 = 3;
    const MM: usize = 1024;
    const T: usize = 1024;
    const H: usize = 8;
    const KVH: usize = 2;
    const D: usize = 64;
    const KV_LENS: [usize; 6] = [1024, 2048, 4096, 8192, 16384, 32768];

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
        let mut c = Criterion::default()
            .configure_from_args()
            .sample_size(10)
            .warm_up_time(Duration::from_millis(if quick { 200 } else { 1000 }))
            .measurement_time(Duration::from_secs(if quick { 2 } else { 5 }));
        let mut rng = Rng::new(42);

        {
            let a = rng.vec_f32(MM * MM);
            let b = rng.vec_f32(MM * MM);
            let mut g = c.benchmark_group("attention_matmul");
            g.throughput(Throughput::Elements(
                (2 * MM * MM * MM) as u64 * REPEAT as u64,
            ));
            g.bench_function(MM.to_string(), |bch| {
                bch.iter(|| {
                    pollster::block_on(matmul_gpu(ctx, &a, &b, MM, MM, MM, REPEAT)).unwrap()
                })
            });
            g.finish();
        }

        let q: Vec<f32> = (0..T * H * D).map(|_| rng.normal()).collect();
        let k: Vec<f32> = (0..T * KVH * D).map(|_| rng.normal()).collect();
        let v = rng.vec_f32(T * KVH * D);
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
                    prefill_flops(T, causal) * REPEAT as u64,
                ));
                let id = format!("{}_{T}", if causal { "causal" } else { "noncausal" });
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
                for rep in [1u32, 9] {
                    let id = if rep == 1 {
                        format!("call_{kv}")
                    } else {
                        format!("kernel9_{kv}")
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
        let peak = median_ns("attention_matmul", &MM.to_string())
            .map(|ns| gflops((2 * MM * MM * MM) as u64 * REPEAT as u64, ns));
        match peak {
            Some(p) => println!("matmul {MM}^3 peak: {p:.2} GFLOP/s"),
            None => println!("matmul peak: n/a (no criterion estimate)"),
        }
        for causal in [false, true] {
            let id = format!("{}_{T}", if causal { "causal" } else { "noncausal" });
            if let Some(ns) = median_ns("attention_prefill", &id) {
                let g = gflops(prefill_flops(T, causal) * REPEAT as u64, ns);
                let frac = peak
                    .map(|p| format!("{:.1}% of matmul peak", 100.0 * g / p))
                    .unwrap_or_default();
                println!(
                    "prefill {id} (H={H}, kvH={KVH}, D={D}): {g:.2} GFLOP/s, {:.1} ms per pass, {:.0} tokens/s; {frac}",
                    ns / REPEAT as f64 / 1e6,
                    T as f64 * REPEAT as f64 / (ns / 1e9)
                );
            }
        }
        println!("decode (1 query, H={H}, kvH={KVH}, D={D}):   kv | call (ms) | kernel only (ms)");
        for &kv in &KV_LENS {
            let call = median_ns("attention_decode", &format!("call_{kv}"));
            let k9 = median_ns("attention_decode", &format!("kernel9_{kv}"));
            if let (Some(c1), Some(c9)) = (call, k9) {
                println!(
                    "  {kv:>6} | {:>9.3} | {:>9.3}",
                    c1 / 1e6,
                    ((c9 - c1) / 8.0).max(0.0) / 1e6
                );
            }
        }
    }
}
