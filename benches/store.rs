//! Criterion benchmarks of the store on the in-memory backend: the store core's own cost
//! (validation, encoding, segment planning) without IndexedDB. The browser numbers (durable
//! writes, cold open on IndexedDB) come from `make bench-store`.
// Native only (criterion and pollster are native dev-dependencies).
#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
criterion::criterion_main!(native::benches);

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use criterion::{criterion_group, BatchSize, Criterion, Throughput};

    use mnemo::rng::Rng;
    use mnemo::store::testing::episode;
    use mnemo::store::{MemoryBackend, NewEpisode, OpenOptions, Store};

    const DIMS: usize = 384;

    fn batch(rng: &mut Rng, n: usize) -> Vec<NewEpisode> {
        (0..n)
            .map(|i| {
                episode(
                    rng,
                    "bench",
                    &format!("episode {i}: the quick brown fox"),
                    DIMS,
                )
            })
            .collect()
    }

    fn store() -> Store<MemoryBackend> {
        pollster::block_on(Store::open(
            MemoryBackend::new(),
            OpenOptions {
                dims: Some(DIMS),
                ..Default::default()
            },
        ))
        .unwrap()
    }

    fn filled(n: usize) -> Store<MemoryBackend> {
        let s = store();
        let mut rng = Rng::new(2);
        for _ in 0..n / 1000 {
            pollster::block_on(s.put_many(batch(&mut rng, 1000))).unwrap();
        }
        s
    }

    pub fn bench(c: &mut Criterion) {
        let mut rng = Rng::new(1);
        let mut g = c.benchmark_group("store_memory");
        g.sample_size(10);

        g.throughput(Throughput::Elements(1000));
        g.bench_function("put_many_1000x384", |b| {
            let s = store();
            b.iter_batched(
                || batch(&mut rng, 1000),
                |eps| pollster::block_on(s.put_many(eps)).unwrap(),
                BatchSize::LargeInput,
            )
        });

        g.throughput(Throughput::Elements(1));
        g.bench_function("put_1x384", |b| {
            let s = store();
            b.iter_batched(
                || batch(&mut rng, 1).pop().unwrap(),
                |e| pollster::block_on(s.put(e)).unwrap(),
                BatchSize::SmallInput,
            )
        });

        let s10k = filled(10_000);
        g.throughput(Throughput::Elements(10_000));
        g.bench_function("load_vectors_10k_x384", |b| {
            b.iter(|| pollster::block_on(s10k.load_vectors()).unwrap().len())
        });
        g.bench_function("export_10k_x384", |b| {
            b.iter(|| pollster::block_on(s10k.export()).unwrap().len())
        });
        let bytes = pollster::block_on(s10k.export()).unwrap();
        g.bench_function("validate_export_10k_x384", |b| {
            b.iter(|| mnemo::store::export::validate(&bytes, true).unwrap().count)
        });
        g.bench_function("import_10k_x384_into_fresh", |b| {
            b.iter_batched(
                store,
                |s| pollster::block_on(s.import(&bytes)).unwrap().imported,
                BatchSize::LargeInput,
            )
        });
        g.throughput(Throughput::Elements(100));
        g.bench_function("get_many_100_of_10k", |b| {
            let ids: Vec<u64> = (0..100).map(|i| 1 + i * 97).collect();
            b.iter(|| pollster::block_on(s10k.get_many(&ids)).unwrap().len())
        });
        g.finish();
    }

    criterion_group!(benches, bench);
}
