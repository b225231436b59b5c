//! Flat top-k benchmarks (criterion): query latency (median, p95) of a resident `FlatBank` for
//! N = 10k, 100k, 1M rows, d = 384, k = 10, B = 1 and 16, each format, GPU and CPU paths; plus
//! the physical baselines measured on the same adapter / host in the same run: a plain GPU copy
//! kernel, a host memcpy and a plain host read (one core), and the host's arithmetic peak (one
//! core, 4-wide multiply then add: the CPU scan's roofline for B > 1). Bandwidths count bytes moved: a scan reads the bank once
//! (`bank bytes / time`); a copy of S bytes reads S and writes S (`2 S / time`, the STREAM
//! convention).
//!
//! `cargo bench --bench fetch` runs everything (the 1M GPU cases are slow on a software adapter);
//! `MNEMO_BENCH_N=10000,100000` limits the sizes, `MNEMO_BENCH_FORMATS=f32` the formats,
//! `MNEMO_BENCH_RUNS` sets the interleaved copy/scan pairs of the amortised measurement
//! (default 5), `MNEMO_BENCH_R` / `MNEMO_BENCH_QC` the rows per invocation / queries per pass of
//! the barrier-free scans and `MNEMO_BENCH_MULTI=0|1` forbids/forces the multi-query one
//! (`Tuning`), and criterion's filter selects cases, e.g. `cargo bench --bench fetch --
//! gpu/f32`. A summary table is printed at the end. The `per-call ... (interleaved)` and
//! `amortised` lines time the copy kernel, one top-k call and one amortised submission in turn
//! (same load on a shared machine) and give medians; the criterion `latency` lines use the copy
//! measured at the start.

// Native only (criterion, pollster, lavapipe); the wasm32 build of the bench target is empty.
#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    use criterion::{criterion_group, Criterion, SamplingMode};
    use mnemo::kernels::fetch::{
        BankFormat, FetchPath, FlatBank, FlatBankOptions, GpuCopyBench, Tuning,
    };
    use mnemo::rng::Rng;

    const D: usize = 384;
    const K: usize = 10;
    const PIECE: usize = 50_000;

    static SUMMARY: Mutex<Vec<String>> = Mutex::new(Vec::new());

    /// Hint the two cache lines 6 KiB past `c` (the CPU scan's prefetch distance).
    #[inline(always)]
    fn prefetch(c: &[u64]) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let p = c.as_ptr().wrapping_byte_add(6144) as *const i8;
            // SAFETY: `prefetcht0` only hints; it never faults, whatever the address.
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(p);
                _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(64));
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = c;
    }

    fn summary(line: String) {
        println!("{line}");
        SUMMARY.lock().unwrap().push(line);
    }

    /// Interleaved copy/scan pairs per amortised measurement (`MNEMO_BENCH_RUNS`, default 5).
    fn amortised_runs() -> usize {
        std::env::var("MNEMO_BENCH_RUNS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5)
    }

    /// Formats to run (`MNEMO_BENCH_FORMATS=f32,int8`; default all three).
    fn formats() -> Vec<BankFormat> {
        std::env::var("MNEMO_BENCH_FORMATS")
            .ok()
            .map(|s| {
                s.split(',')
                    .filter_map(|x| BankFormat::parse(x.trim()))
                    .collect()
            })
            .unwrap_or_else(|| vec![BankFormat::F32, BankFormat::F16, BankFormat::Int8])
    }

    fn env_usize(name: &str) -> Option<usize> {
        std::env::var(name).ok().and_then(|s| s.parse().ok())
    }

    /// Launch tuning from `MNEMO_BENCH_R`, `MNEMO_BENCH_QC`, `MNEMO_BENCH_MULTI`.
    fn tuning() -> Tuning {
        Tuning {
            rows_per_invocation: env_usize("MNEMO_BENCH_R"),
            queries_per_pass: env_usize("MNEMO_BENCH_QC"),
            multi_query_scan: env_usize("MNEMO_BENCH_MULTI").map(|m| m != 0),
            ..Tuning::default()
        }
    }

    fn sizes() -> Vec<usize> {
        std::env::var("MNEMO_BENCH_N")
            .ok()
            .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
            .unwrap_or_else(|| vec![10_000, 100_000, 1_000_000])
    }

    /// Normalised random rows (piece `p` of the synthetic bank; equal for every format).
    fn piece(p: usize, rows: usize) -> Vec<f32> {
        let mut rng = Rng::new(0xBE7C + p as u64);
        let mut v: Vec<f32> = (0..rows * D).map(|_| rng.normal()).collect();
        for r in v.chunks_exact_mut(D) {
            let n = r.iter().map(|x| x * x).sum::<f32>().sqrt();
            r.iter_mut().for_each(|x| *x /= n);
        }
        v
    }

    const SLOW: Duration = Duration::from_millis(2500);
    const SLOW_SAMPLES: usize = 5;

    /// Whether criterion's command-line filter (if any) selects benchmark `id`.
    fn selected(id: &str) -> bool {
        std::env::args()
            .skip(1)
            .filter(|a| !a.starts_with('-'))
            .all(|f| id.contains(&f))
    }

    fn quantile(sorted: &[f64], q: f64) -> f64 {
        let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
        sorted[i.min(sorted.len() - 1)]
    }

    fn stats(samples: &mut [f64]) -> (f64, f64) {
        samples.sort_by(|a, b| a.total_cmp(b));
        (quantile(samples, 0.5), quantile(samples, 0.95))
    }

    /// Median seconds of `f` over `reps` runs after one warm-up.
    fn time_median(reps: usize, mut f: impl FnMut()) -> f64 {
        f();
        let mut t: Vec<f64> = (0..reps)
            .map(|_| {
                let t0 = Instant::now();
                f();
                t0.elapsed().as_secs_f64()
            })
            .collect();
        stats(&mut t).0
    }

    /// Multiply-adds per second of one core on 4-wide vectors, multiply and add as separate
    /// instructions (what the CPU scan issues; no FMA): `a = a * m + c` on 12 independent
    /// vectors, enough to cover the latency of both. The arithmetic roofline of the CPU scan.
    fn arithmetic_peak() -> f64 {
        const ITERS: usize = 20_000_000;
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let t = Instant::now();
            std::hint::black_box(peak_loop(ITERS));
            best = best.min(t.elapsed().as_secs_f64());
        }
        (ITERS * 12 * 4) as f64 / best
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(never)]
    fn peak_loop(iters: usize) -> [f32; 4] {
        use std::arch::x86_64::*;
        // SAFETY: SSE/SSE2 intrinsics are part of the x86-64 baseline.
        unsafe {
            let m = _mm_set1_ps(std::hint::black_box(0.999_999));
            let c = _mm_set1_ps(std::hint::black_box(1e-7));
            let mut a = [_mm_set1_ps(std::hint::black_box(1.0)); 12];
            for _ in 0..iters {
                for v in a.iter_mut() {
                    *v = _mm_add_ps(_mm_mul_ps(*v, m), c);
                }
            }
            let mut s = _mm_setzero_ps();
            for v in a {
                s = _mm_add_ps(s, v);
            }
            let mut o = [0.0f32; 4];
            _mm_storeu_ps(o.as_mut_ptr(), s);
            o
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    #[inline(never)]
    fn peak_loop(iters: usize) -> [f32; 4] {
        let m = std::hint::black_box(0.999_999f32);
        let c = std::hint::black_box(1e-7f32);
        let mut a = [[std::hint::black_box(1.0f32); 4]; 12];
        for _ in 0..iters {
            for v in a.iter_mut() {
                for x in v.iter_mut() {
                    *x = *x * m + c;
                }
            }
        }
        a[0]
    }

    fn bench_fetch(c: &mut Criterion) {
        let gpu = pollster::block_on(mnemo::testing::require_gpu());
        let info = gpu.adapter_info().unwrap();
        summary(format!(
            "adapter: {} ({}, {}); host: {} threads available; d = {D}, k = {K}",
            info.name,
            info.device_type,
            info.driver,
            std::thread::available_parallelism().map_or(1, |n| n.get())
        ));

        // Baselines, same run: a GPU copy kernel (4 copies per submission) and a host memcpy.
        let copy_bytes: u64 = 96 << 20;
        let cb = GpuCopyBench::new(&gpu, copy_bytes).unwrap();
        let copy_once = || {
            let t = Instant::now();
            pollster::block_on(cb.run(4)).unwrap();
            t.elapsed().as_secs_f64() / 4.0
        };
        let t_copy = time_median(5, || pollster::block_on(cb.run(4)).unwrap()) / 4.0;
        let gpu_copy_bw = 2.0 * copy_bytes as f64 / t_copy;
        summary(format!(
            "GPU copy kernel: {} MiB in {:.2} ms = {:.2} GB/s (read + write)",
            copy_bytes >> 20,
            t_copy * 1e3,
            gpu_copy_bw / 1e9
        ));
        let host_bytes = 256usize << 20;
        let src = vec![1u8; host_bytes];
        let mut dst = vec![0u8; host_bytes];
        let t_memcpy = time_median(5, || {
            dst.copy_from_slice(std::hint::black_box(&src));
            std::hint::black_box(&dst);
        });
        let memcpy_bw = 2.0 * host_bytes as f64 / t_memcpy;
        summary(format!(
            "host memcpy: {} MiB in {:.2} ms = {:.2} GB/s (read + write)",
            host_bytes >> 20,
            t_memcpy * 1e3,
            memcpy_bw / 1e9
        ));
        // A plain read of the same buffer (sixteen independent sums per 128 bytes, with the
        // scan's software prefetch 6 KiB ahead on x86-64): what one core streams when nothing
        // is written, about the ceiling of a scan that reads each byte once.
        let words: &[u64] = bytemuck::cast_slice(&src);
        let t_read = time_median(5, || {
            let mut acc = [0u64; 16];
            for c in std::hint::black_box(words).chunks_exact(16) {
                prefetch(c);
                for (a, &w) in acc.iter_mut().zip(c) {
                    *a = a.wrapping_add(w);
                }
            }
            std::hint::black_box(acc);
        });
        let read_bw = host_bytes as f64 / t_read;
        summary(format!(
            "host read: {} MiB in {:.2} ms = {:.2} GB/s (read only; {:.0}% of memcpy)",
            host_bytes >> 20,
            t_read * 1e3,
            read_bw / 1e9,
            100.0 * read_bw / memcpy_bw
        ));
        drop((src, dst));
        let peak = arithmetic_peak();
        summary(format!(
            "host arithmetic peak: {:.2} G multiply-adds/s (one core, 4-wide SSE2/simd128 multiply then add, 12 independent chains)",
            peak / 1e9
        ));

        for n in sizes() {
            for format in formats() {
                let opts = FlatBankOptions {
                    format,
                    capacity: n,
                    tuning: tuning(),
                    ..FlatBankOptions::default()
                };
                let mut bank = FlatBank::new(&gpu, D, opts).unwrap();
                let t0 = Instant::now();
                for p in 0..n.div_ceil(PIECE) {
                    let rows = piece(p, PIECE.min(n - p * PIECE));
                    pollster::block_on(bank.append(&rows)).unwrap();
                }
                let bytes = bank.bank_bytes() as f64;
                summary(format!(
                    "bank n={n} {}: {:.1} MB in {} GPU chunk(s), built in {:.1} s",
                    format.as_str(),
                    bytes / 1e6,
                    bank.chunk_count(),
                    t0.elapsed().as_secs_f64()
                ));
                let mut group = c.benchmark_group(format!("fetch/n={n}/{}", format.as_str()));
                group
                    .sampling_mode(SamplingMode::Flat)
                    .sample_size(10)
                    .warm_up_time(Duration::from_millis(500))
                    .measurement_time(Duration::from_secs(2));
                for b in [1usize, 16] {
                    let mut rng = Rng::new(b as u64);
                    let q: Vec<f32> = piece(1000 + b, b)
                        .iter()
                        .map(|x| x + 0.01 * rng.normal())
                        .collect();
                    for path in [FetchPath::Gpu, FetchPath::Cpu] {
                        let name = if path == FetchPath::Gpu { "gpu" } else { "cpu" };
                        let mut samples: Vec<f64> = Vec::new();
                        let id = format!("fetch/n={n}/{}/{name}/b={b}", format.as_str());
                        if !selected(&id) {
                            continue;
                        }
                        // Calls slower than SLOW (1M rows on a software adapter) are sampled
                        // SLOW_SAMPLES times outside criterion, which insists on 10 samples.
                        let t = Instant::now();
                        std::hint::black_box(
                            pollster::block_on(bank.topk(&q, K, None, path)).unwrap(),
                        );
                        if t.elapsed() > SLOW {
                            for _ in 0..SLOW_SAMPLES {
                                let t = Instant::now();
                                std::hint::black_box(
                                    pollster::block_on(bank.topk(&q, K, None, path)).unwrap(),
                                );
                                samples.push(t.elapsed().as_secs_f64());
                            }
                        } else {
                            group.bench_function(format!("{name}/b={b}"), |bch| {
                                bch.iter_custom(|iters| {
                                    let mut total = Duration::ZERO;
                                    for _ in 0..iters {
                                        let t = Instant::now();
                                        let r = pollster::block_on(bank.topk(&q, K, None, path))
                                            .unwrap();
                                        let e = t.elapsed();
                                        std::hint::black_box(r);
                                        samples.push(e.as_secs_f64());
                                        total += e;
                                    }
                                    total
                                })
                            });
                        }
                        if samples.is_empty() {
                            continue;
                        }
                        let count = samples.len();
                        let (med, p95) = stats(&mut samples);
                        let bw = bytes / med;
                        let base = if path == FetchPath::Gpu {
                            format!("{:.0}% of GPU copy", 100.0 * bw / gpu_copy_bw)
                        } else {
                            let madds = (n * D * b) as f64 / med;
                            format!(
                                "{:.0}% of memcpy, {:.0}% of a plain read; {:.2} G multiply-adds/s = {:.0}% of the arithmetic peak",
                                100.0 * bw / memcpy_bw,
                                100.0 * bw / read_bw,
                                madds / 1e9,
                                100.0 * madds / peak
                            )
                        };
                        summary(format!(
                            "latency {name} n={n} {} B={b}: median {:.3} ms, p95 {:.3} ms ({count} samples); scan {:.2} GB/s = {base}",
                            format.as_str(),
                            med * 1e3,
                            p95 * 1e3,
                            bw / 1e9
                        ));
                    }
                    // Kernel throughput with submission and readback amortised (4 top-k per submit).
                    if selected(&format!("fetch/n={n}/{}/gpu/b={b}", format.as_str())) {
                        // Interleaved with the copy kernel (the machine is shared: both see
                        // the same load), medians of each.
                        let reps = if bytes > 5e8 { 1 } else { 4 };
                        let scan_once = || {
                            let t = Instant::now();
                            pollster::block_on(bank.bench_gpu_scans(&q, K, reps)).unwrap();
                            t.elapsed().as_secs_f64() / reps as f64
                        };
                        let call_once = || {
                            let t = Instant::now();
                            let r = pollster::block_on(bank.topk(&q, K, None, FetchPath::Gpu));
                            std::hint::black_box(r.unwrap());
                            t.elapsed().as_secs_f64()
                        };
                        scan_once();
                        let (mut tc, mut ts, mut tp) = (Vec::new(), Vec::new(), Vec::new());
                        for _ in 0..amortised_runs() {
                            tc.push(copy_once());
                            tp.push(call_once());
                            ts.push(scan_once());
                        }
                        let t = stats(&mut ts).0;
                        let gpu_copy_bw = 2.0 * cb.bytes() as f64 / stats(&mut tc).0;
                        let t_call = stats(&mut tp).0;
                        summary(format!(
                            "per-call gpu top-k n={n} {} B={b} (interleaved with the copy): {:.3} ms = {:.2} GB/s = {:.0}% of GPU copy",
                            format.as_str(),
                            t_call * 1e3,
                            bytes / t_call / 1e9,
                            100.0 * bytes / t_call / gpu_copy_bw
                        ));
                        let bw = bytes / t;
                        let plan = bank.gpu_plan(b, K).unwrap();
                        let kernel = if plan.multi_query {
                            format!(
                                "scorem, {} rows/invocation/round, {} queries/pass, {} rows/workgroup; pick, {} rows/workgroup",
                                plan.rows_per_invocation,
                                plan.queries_per_pass,
                                256 * plan.rows_per_invocation * plan.rounds,
                                256 * plan.pick_rounds
                            )
                        } else if plan.two_phase {
                            format!(
                                "score1, {} rows/invocation/round, {} rows/workgroup; pick, {} rows/workgroup",
                                plan.rows_per_invocation,
                                256 * plan.rows_per_invocation * plan.rounds,
                                256 * plan.pick_rounds
                            )
                        } else {
                            format!("scan, {} queries/workgroup", plan.qb)
                        };
                        summary(format!(
                            "amortised gpu scan n={n} {} B={b}: {:.3} ms per top-k = {:.2} GB/s = {:.0}% of GPU copy ({:.2} GB/s, interleaved) ({kernel})",
                            format.as_str(),
                            t * 1e3,
                            bw / 1e9,
                            100.0 * bw / gpu_copy_bw,
                            gpu_copy_bw / 1e9
                        ));
                    }
                }
                group.finish();
            }
        }
        println!("\n==== fetch summary ====");
        for line in SUMMARY.lock().unwrap().iter() {
            println!("{line}");
        }
    }

    criterion_group!(benches, bench_fetch);
}

#[cfg(not(target_arch = "wasm32"))]
criterion::criterion_main!(native::benches);

#[cfg(target_arch = "wasm32")]
fn main() {}
