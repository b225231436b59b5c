//! Prefill throughput of the linear recurrence (reported, never asserted): T = 1,024 and 4,096,
//! H = 8, dk = dv = 64, for the gated delta rule (scalar decay + beta) and GLA (vector decay):
//! GPU chunked, GPU recurrent, CPU recurrent (the reference) and CPU chunked. After criterion's
//! run a table prints tokens/s from criterion's medians and the ratios chunked/recurrent (same
//! adapter) and GPU/CPU.
//!
//! `cargo bench --bench recurrence` (Mesa lavapipe natively: software, ratios only);
//! `MNEMO_BENCH_VARIANTS=gated_delta,gla` adds GLA. Flat sampling, 10 samples: one GPU run at
//! T = 4,096 takes seconds on a software adapter.

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
    use mnemo::kernels::recurrence::{
        linear_recurrence_cpu, linear_recurrence_gpu, Decay, Form, RecurrenceInput,
    };
    use mnemo::rng::Rng;
    use mnemo::Compute;

    const H: usize = 8;
    const D: usize = 64;
    const TS: [usize; 2] = [1024, 4096];
    /// Variants benchmarked: `MNEMO_BENCH_VARIANTS` (comma-separated among `gated_delta`, `gla`),
    /// default `gated_delta`.
    fn variants() -> Vec<String> {
        std::env::var("MNEMO_BENCH_VARIANTS")
            .unwrap_or_else(|_| "gated_delta".into())
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| s == "gated_delta" || s == "gla")
            .collect()
    }
    const IMPLS: [&str; 4] = [
        "gpu_chunked",
        "gpu_recurrent",
        "cpu_recurrent",
        "cpu_chunked",
    ];

    struct Data {
        q: Vec<f32>,
        k: Vec<f32>,
        v: Vec<f32>,
        decay: Vec<f32>,
        beta: Vec<f32>,
    }

    fn data(t: usize, variant: &str) -> Data {
        let mut rng = Rng::new(t as u64);
        let q = rng.vec_f32(t * H * D);
        let mut k = rng.vec_f32(t * H * D);
        for row in k.chunks_mut(D) {
            let n = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
            row.iter_mut().for_each(|x| *x /= n);
        }
        let per = if variant == "gla" { D } else { 1 };
        Data {
            q,
            k,
            v: rng.vec_f32(t * H * D),
            decay: (0..t * H * per).map(|_| rng.range_f32(0.9, 1.0)).collect(),
            beta: (0..t * H).map(|_| rng.range_f32(0.1, 1.0)).collect(),
        }
    }

    fn input<'a>(d: &'a Data, variant: &str) -> RecurrenceInput<'a> {
        RecurrenceInput {
            q: &d.q,
            k: &d.k,
            v: &d.v,
            decay: if variant == "gla" {
                Decay::Vector(&d.decay)
            } else {
                Decay::Scalar(&d.decay)
            },
            beta: (variant == "gated_delta").then_some(&d.beta[..]),
            heads: H,
            dk: D,
            dv: D,
            scale: None,
            state: None,
        }
    }

    fn run(gpu: &Compute, imp: &str, i: &RecurrenceInput<'_>) {
        let ctx = gpu.gpu_context().expect("GPU");
        let r = match imp {
            "gpu_chunked" => pollster::block_on(linear_recurrence_gpu(ctx, i, Form::Chunked)),
            "gpu_recurrent" => pollster::block_on(linear_recurrence_gpu(ctx, i, Form::Recurrent)),
            "cpu_recurrent" => linear_recurrence_cpu(i, Form::Recurrent),
            _ => linear_recurrence_cpu(i, Form::Chunked),
        };
        std::hint::black_box(r.expect("recurrence"));
    }

    fn median_ns(group: &str, id: &str) -> Option<f64> {
        let dir = std::env::var("CARGO_TARGET_DIR")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target").to_string());
        let path = format!("{dir}/criterion/{group}/{id}/new/estimates.json");
        let text = std::fs::read_to_string(path).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v["median"]["point_estimate"].as_f64()
    }

    pub fn main() {
        let gpu = pollster::block_on(mnemo::testing::require_gpu());
        let adapter = gpu
            .adapter_info()
            .map(|a| a.name.clone())
            .unwrap_or_default();
        let mut c = Criterion::default()
            .sample_size(10)
            .warm_up_time(std::time::Duration::from_millis(500))
            .measurement_time(std::time::Duration::from_secs(3))
            .configure_from_args();
        let variants = variants();
        for variant in &variants {
            let variant = variant.as_str();
            let group_name = format!("recurrence_{variant}");
            let mut group = c.benchmark_group(&group_name);
            group.sampling_mode(SamplingMode::Flat);
            for t in TS {
                let d = data(t, variant);
                let i = input(&d, variant);
                group.throughput(Throughput::Elements(t as u64));
                for imp in IMPLS {
                    group.bench_with_input(BenchmarkId::new(imp, t), &i, |b, i| {
                        b.iter(|| run(&gpu, imp, i))
                    });
                }
            }
            group.finish();
        }
        c.final_summary();

        println!(
            "\nlinear recurrence prefill, H={H}, dk=dv={D}, adapter: {adapter} (criterion medians)"
        );
        println!(
            "{:<12} {:>5} {:>14} {:>14} {:>14} {:>14} {:>10} {:>10}",
            "variant",
            "T",
            "gpu chunked",
            "gpu recurrent",
            "cpu recurrent",
            "cpu chunked",
            "chk/rec",
            "gpu/cpu"
        );
        for variant in &variants {
            for t in TS {
                let tps: Vec<Option<f64>> = IMPLS
                    .iter()
                    .map(|imp| {
                        median_ns(&format!("recurrence_{variant}"), &format!("{imp}/{t}"))
                            .map(|ns| t as f64 / (ns * 1e-9))
                    })
                    .collect();
                let f = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.0} tok/s"));
                let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
                    (Some(a), Some(b)) => format!("{:.2}x", a / b),
                    _ => "-".into(),
                };
                println!(
                    "{:<12} {:>5} {:>14} {:>14} {:>14} {:>14} {:>10} {:>10}",
                    variant,
                    t,
                    f(tps[0]),
                    f(tps[1]),
                    f(tps[2]),
                    f(tps[3]),
                    ratio(tps[0], tps[1]),
                    ratio(tps[0], tps[2]),
                );
            }
        }
        println!("chk/rec = GPU chunked over GPU recurrent (target >= 4x); gpu/cpu = GPU chunked over the CPU recurrent reference.");
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    native::main();
}

/// Nothing to run on wasm32 (the browser benchmark is `www/bench/recurrence*`).
#[cfg(target_arch = "wasm32")]
fn main() {}
