//! The memory engine on a GPU `Compute` (Mesa lavapipe natively): the GPU flat top-k answers
//! vector candidates when a recall asks for `backend: 'webgpu'`, and the engine returns the same
//! hits as on the CPU path; the model-based test with random `backend` choices; and the measured
//! CPU/GPU crossover of a recall (printed with `--nocapture`, never asserted).
//! Fails loudly without a GPU adapter (`mnemo::testing::require_gpu`).
#![cfg(not(target_arch = "wasm32"))]

use std::sync::OnceLock;
use std::time::Instant;

use mnemo::compute::Compute;
use mnemo::engine::fusion::Weights;
use mnemo::engine::mnemo::testing::{model_run_on, unit, EngineModelConfig};
use mnemo::engine::mnemo::{FetchPolicy, Filter, Memory, Mnemo, MnemoOptions, RecallQuery};
use mnemo::kernels::hier::synth::{clustered, Clustered};
use mnemo::rng::Rng;
use mnemo::store::testing::{Factory, MemoryFactory};

fn gpu() -> &'static Compute {
    static GPU: OnceLock<Compute> = OnceLock::new();
    GPU.get_or_init(|| pollster::block_on(mnemo::testing::require_gpu()))
}

type Engine = Mnemo<<MemoryFactory as Factory>::B>;

async fn engine(f: &MemoryFactory, name: &str, dims: usize) -> Engine {
    engine_on(f.fresh(name).await, dims, usize::MAX).await
}

async fn engine_on(b: <MemoryFactory as Factory>::B, dims: usize, index_min_rows: usize) -> Engine {
    Mnemo::open(
        b,
        gpu().clone(),
        MnemoOptions {
            dims: Some(dims),
            index_min_rows,
            ..Default::default()
        },
    )
    .await
    .expect("open engine on the GPU")
}

const WORDS: [&str; 8] = [
    "apple", "river", "cello", "lease", "garden", "train", "coffee", "winter",
];

#[test]
fn model_based_on_gpu() {
    let f = MemoryFactory::default();
    pollster::block_on(model_run_on(
        &f,
        "model-gpu",
        EngineModelConfig {
            seed: 11,
            steps: 600,
            reopen_every: 157,
            dims: 8,
        },
        gpu().clone(),
    ));
}

#[test]
fn gpu_and_cpu_paths_give_the_same_hits() {
    pollster::block_on(async {
        let f = MemoryFactory::default();
        let dims = 48;
        let m = engine(&f, "gpu-same", dims).await;
        let mut rng = Rng::new(21);
        let n = 3000;
        let items: Vec<Memory> = (0..n)
            .map(|i| {
                let text = format!(
                    "{} {} {}",
                    WORDS[rng.below(8)],
                    WORDS[rng.below(8)],
                    WORDS[rng.below(8)]
                );
                let mut mem = Memory::new(format!("ns{}", i % 3), text)
                    .with_embedding(unit(&mut rng, dims))
                    .at(i as f64 * 1000.0);
                mem.tags = if i % 5 == 0 { vec!["t".into()] } else { vec![] };
                mem
            })
            .collect();
        let ids = m.remember_many(items).await.expect("rememberMany");
        for &id in ids.iter().step_by(11) {
            m.forget(id).await.expect("forget");
        }
        let mut gpu_runs = 0;
        for t in 0..40 {
            let k = [1usize, 10, 50, 100][t % 4];
            let mut q = RecallQuery {
                embedding: Some(unit(&mut rng, dims)),
                k,
                now_ms: Some(n as f64 * 1000.0),
                payload: false,
                ..Default::default()
            };
            if t % 3 == 1 {
                q.text = Some(format!("{} {}", WORDS[t % 8], WORDS[(t * 3) % 8]));
            } else {
                q.weights = Some(Weights {
                    vector: 1.0,
                    lexical: 0.0,
                    recency: 0.0,
                    importance: 0.0,
                });
            }
            q.filter = match t % 5 {
                0 => Filter::default(),
                1 => Filter {
                    namespaces: Some(vec!["ns1".into()]),
                    ..Default::default()
                },
                2 => Filter {
                    since: Some(500_000.0),
                    until: Some(2_000_000.0),
                    ..Default::default()
                },
                3 => Filter {
                    tags: Some(vec!["t".into()]),
                    ..Default::default()
                },
                _ => Filter {
                    namespaces: Some(vec!["ns0".into(), "ns2".into()]),
                    since: Some(1_000_000.0),
                    ..Default::default()
                },
            };
            let on_cpu = m
                .recall(&RecallQuery {
                    fetch: Some(FetchPolicy::Cpu),
                    ..q.clone()
                })
                .await
                .expect("recall on the CPU path");
            assert_eq!(m.stats().backend.as_str(), "cpu");
            let on_gpu = m
                .recall(&RecallQuery {
                    fetch: Some(FetchPolicy::Gpu),
                    ..q.clone()
                })
                .await
                .expect("recall on the GPU path");
            // Depth max(100, 5k) <= 256 runs on the GPU; deeper lists use the CPU scan.
            let want = if 5 * k <= 256 { "webgpu" } else { "cpu" };
            assert_eq!(m.stats().backend.as_str(), want, "query {t} k {k}");
            gpu_runs += usize::from(want == "webgpu");
            // Candidates are re-scored exactly (f64), so both paths give the same hits.
            assert_eq!(on_gpu.len(), on_cpu.len(), "query {t}");
            for (g, c) in on_gpu.iter().zip(&on_cpu) {
                assert_eq!(g.id, c.id, "query {t} {q:?}");
                assert!(
                    (g.score - c.score).abs() <= 1e-12,
                    "query {t}: {g:?} vs {c:?}"
                );
            }
            // Auto on a software adapter (lavapipe) stays on the CPU.
            m.recall(&q).await.expect("recall auto");
            assert_eq!(m.stats().backend.as_str(), "cpu");
            assert!(m.stats().gpu);
        }
        assert!(gpu_runs >= 20);
        m.destroy().await.unwrap();
    });
}

/// Median latency (ms) of vector-only recalls (k = 10, payload off: the candidate search
/// dominates) of `qs` on `policy`, the first call excluded (warm-up).
async fn median_ms(m: &Engine, qs: &[Vec<f32>], policy: FetchPolicy) -> f64 {
    let mut times = Vec::new();
    for (i, e) in qs.iter().enumerate() {
        let q = RecallQuery {
            embedding: Some(e.clone()),
            k: 10,
            payload: false,
            fetch: Some(policy),
            weights: Some(Weights {
                vector: 1.0,
                lexical: 0.0,
                recency: 0.0,
                importance: 0.0,
            }),
            ..Default::default()
        };
        let t0 = Instant::now();
        m.recall(&q).await.expect("recall");
        if i > 0 {
            times.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// The measured crossovers: recall latency on the CPU flat path, the GPU flat path and the
/// hierarchical index (forced on), for growing stores of clustered synthetic 384-d vectors.
/// `cargo test --release --test engine_gpu crossover -- --nocapture` prints the table
/// (`MNEMO_CROSSOVER_SIZES=1000,4000,16000,64000` for other sizes).
#[test]
fn crossover_cpu_vs_gpu() {
    pollster::block_on(async {
        let dims = 384;
        let sizes: Vec<usize> = std::env::var("MNEMO_CROSSOVER_SIZES")
            .ok()
            .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
            .unwrap_or_else(|| vec![1_000, 4_000, 16_000]);
        let adapter = gpu()
            .adapter_info()
            .map(|a| format!("{} ({})", a.name, a.device_type))
            .unwrap_or_default();
        println!("engine recall, k = 10, d = {dims}, adapter {adapter}");
        println!(
            "| N | bank MiB | CPU flat ms | GPU flat ms | GPU / CPU | hierarchical ms | \
             CPU flat / hierarchical |"
        );
        println!("|---|---|---|---|---|---|---|");
        for &n in &sizes {
            let (bank, qbank) = clustered(&Clustered::new(n, dims, 9), 9);
            let qs: Vec<Vec<f32>> = qbank.chunks_exact(dims).map(|q| q.to_vec()).collect();
            let f = MemoryFactory::default();
            // The index on (min rows 0): `cpu` searches it, `webgpu` scans on the GPU.
            let m = engine_on(f.fresh("crossover").await, dims, 0).await;
            for start in (0..n).step_by(2000) {
                let items: Vec<Memory> = (start..(start + 2000).min(n))
                    .map(|i| {
                        Memory::new("c", format!("turn {i}"))
                            .with_embedding(bank[i * dims..(i + 1) * dims].to_vec())
                            .at(i as f64)
                    })
                    .collect();
                m.remember_many(items).await.expect("rememberMany");
            }
            let hier = median_ms(&m, &qs, FetchPolicy::Cpu).await;
            assert_eq!(m.stats().path.as_str(), "hierarchical");
            let gpu_ms = median_ms(&m, &qs, FetchPolicy::Gpu).await;
            assert_eq!(m.stats().backend.as_str(), "webgpu");
            m.close().await.unwrap();
            // The same store without the index: the exact CPU scan.
            let m = engine_on(f.connect("crossover").await.unwrap(), dims, usize::MAX).await;
            let cpu = median_ms(&m, &qs, FetchPolicy::Cpu).await;
            assert_eq!(m.stats().path.as_str(), "flat");
            println!(
                "| {n} | {:.1} | {cpu:.2} | {gpu_ms:.2} | {:.1}x | {hier:.3} | {:.1}x |",
                (n * dims * 4) as f64 / (1 << 20) as f64,
                gpu_ms / cpu,
                cpu / hier
            );
            m.destroy().await.unwrap();
        }
    });
}

/// A lost device never breaks the engine: writes degrade the bank to its CPU mirror, recalls
/// answer on the CPU (same hits as before), and an engine opens on a lost device.
#[test]
fn device_lost_degrades_to_the_cpu() {
    pollster::block_on(async {
        let own = Compute::gpu().await.expect("a GPU adapter (lavapipe)");
        let f = MemoryFactory::default();
        let dims = 16;
        let open = |b| {
            let own = own.clone();
            async move {
                Mnemo::open(
                    b,
                    own,
                    MnemoOptions {
                        dims: Some(dims),
                        ..Default::default()
                    },
                )
                .await
            }
        };
        let m = open(f.fresh("lost").await).await.expect("open");
        let mut rng = Rng::new(8);
        let items: Vec<Memory> = (0..300)
            .map(|i| Memory::new("a", format!("t{i}")).with_embedding(unit(&mut rng, dims)))
            .collect();
        let ids = m.remember_many(items).await.unwrap();
        let q = RecallQuery {
            embedding: Some(unit(&mut rng, dims)),
            payload: false,
            ..Default::default()
        };
        let gpu_q = RecallQuery {
            fetch: Some(FetchPolicy::Gpu),
            ..q.clone()
        };
        let before = m.recall(&gpu_q).await.unwrap();
        assert_eq!(m.stats().backend.as_str(), "webgpu");
        own.gpu_context().unwrap().destroy();
        // `auto` answers on the CPU mirror.
        let after = m.recall(&q).await.unwrap();
        assert_eq!(
            after.iter().map(|h| h.id).collect::<Vec<_>>(),
            before.iter().map(|h| h.id).collect::<Vec<_>>()
        );
        // An explicit `webgpu` recall reports the lost device (nothing changed).
        assert_eq!(
            m.recall(&gpu_q).await.unwrap_err().code(),
            "GPU_DEVICE_LOST"
        );
        // Writes go on; the bank continues on the CPU and so does `webgpu`.
        m.forget(ids[0]).await.unwrap();
        m.remember(Memory::new("a", "new").with_embedding(unit(&mut rng, dims)))
            .await
            .unwrap();
        let hits = m.recall(&gpu_q).await.unwrap();
        assert_eq!(m.stats().backend.as_str(), "cpu");
        assert!(hits.iter().all(|h| h.id != ids[0]));
        assert_eq!(m.stats().count, 300);
        m.close().await.unwrap();
        // Reopening on the lost device works too.
        let m = open(f.connect("lost").await.unwrap())
            .await
            .expect("reopen");
        let hits = m.recall(&gpu_q).await.unwrap();
        assert!(!hits.is_empty() && hits.iter().all(|h| h.id != ids[0]));
        assert_eq!(m.stats().count, 300);
        m.destroy().await.unwrap();
    });
}
