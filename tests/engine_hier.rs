//! The memory engine's hierarchical-index path (`kernels::hier::HierIndex` over the bank rows,
//! CPU search with the recall's filter as allow-mask): recall@10 of vector-only recalls against
//! the exact cosine top-10 on clustered synthetic data (`kernels::hier::synth`) — unfiltered and
//! per namespace, after forgets / remembers / embedding updates, and after reopening (the index
//! is loaded from the engine blob, not rebuilt) — and on the LoCoMo turn embeddings when
//! `$MNEMO_EVAL_DIR/locomo` (default `../shared/eval/locomo`) exists (otherwise that test says
//! so and checks nothing). Prints every recall@10 (`-- --nocapture`); asserts >= 0.99.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::collections::BTreeMap;

use mnemo::compute::Compute;
use mnemo::engine::fusion::Weights;
use mnemo::engine::mnemo::{Filter, Memory, Mnemo, MnemoOptions, RecallQuery, VectorPath};
use mnemo::engine::DocId;
use mnemo::kernels::hier::synth::{clustered, Clustered};
use mnemo::rng::Rng;
use mnemo::store::testing::{Factory, MemoryFactory};
use mnemo::store::Patch;

type Engine = Mnemo<<MemoryFactory as Factory>::B>;

async fn open(f: &MemoryFactory, name: &str, fresh: bool, dims: usize, min: usize) -> Engine {
    let b = if fresh {
        f.fresh(name).await
    } else {
        f.connect(name).await.expect("connect")
    };
    Mnemo::open(
        b,
        Compute::cpu(),
        MnemoOptions {
            dims: Some(dims),
            index_min_rows: min,
            ..Default::default()
        },
    )
    .await
    .expect("open engine")
}

const VECTOR_ONLY: Weights = Weights {
    vector: 1.0,
    lexical: 0.0,
    recency: 0.0,
    importance: 0.0,
};

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
}

/// The exact top-10 ids of `q` among `eps` (`(namespace, vector)` by id) in `ns` (or all).
fn exact_top10(
    eps: &BTreeMap<DocId, (String, Vec<f32>)>,
    q: &[f32],
    ns: Option<&str>,
) -> Vec<DocId> {
    let mut all: Vec<(f64, DocId)> = eps
        .iter()
        .filter(|(_, (n, _))| ns.is_none_or(|x| x == n))
        .map(|(id, (_, v))| (dot(q, v), *id))
        .collect();
    all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    all.into_iter().take(10).map(|x| x.1).collect()
}

/// Mean recall@10 of the engine's vector-only recalls for `qs` against the exact top-10;
/// `ns_of(i)` is query i's namespace filter. Checks the hierarchical path ran.
async fn recall_at_10(
    m: &Engine,
    eps: &BTreeMap<DocId, (String, Vec<f32>)>,
    qs: &[Vec<f32>],
    ns_of: &dyn Fn(usize) -> Option<String>,
) -> f64 {
    let mut total = 0.0;
    for (i, q) in qs.iter().enumerate() {
        let ns = ns_of(i);
        let hits = m
            .recall(&RecallQuery {
                embedding: Some(q.clone()),
                k: 10,
                weights: Some(VECTOR_ONLY),
                payload: false,
                filter: Filter {
                    namespaces: ns.clone().map(|n| vec![n]),
                    ..Default::default()
                },
                ..Default::default()
            })
            .await
            .expect("recall");
        assert_eq!(m.stats().path, VectorPath::Hierarchical, "query {i}");
        let want = exact_top10(eps, q, ns.as_deref());
        for h in &hits {
            assert!(
                eps.contains_key(&h.id),
                "query {i}: a forgotten episode came back"
            );
        }
        let got = want
            .iter()
            .filter(|id| hits.iter().any(|h| h.id == **id))
            .count();
        total += got as f64 / want.len().max(1) as f64;
    }
    total / qs.len() as f64
}

#[test]
fn hierarchical_path_on_clustered_data() {
    pollster::block_on(async {
        let (n, d) = (8000, 64);
        let (bank, qbank) = clustered(&Clustered::new(n + 1000, d, 42), 150);
        let qs: Vec<Vec<f32>> = qbank.chunks_exact(d).map(|q| q.to_vec()).collect();
        let f = MemoryFactory::default();
        // Index from 1,000 rows: built at 8,000, used unfiltered and per namespace (2,000 rows).
        let m = open(&f, "hier-synth", true, d, 1000).await;
        let ns = |i: usize| format!("ns{}", i % 4);
        let mut eps = BTreeMap::new();
        let items: Vec<Memory> = (0..n)
            .map(|i| {
                Memory::new(ns(i), format!("turn {i}"))
                    .with_embedding(bank[i * d..(i + 1) * d].to_vec())
                    .at(i as f64)
            })
            .collect();
        let ids = m.remember_many(items).await.expect("rememberMany");
        for (i, id) in ids.iter().enumerate() {
            eps.insert(*id, (ns(i), bank[i * d..(i + 1) * d].to_vec()));
        }
        let all = recall_at_10(&m, &eps, &qs, &|_| None).await;
        let per_ns = recall_at_10(&m, &eps, &qs, &|i| Some(ns(i))).await;
        println!("synthetic {n} x {d}: recall@10 unfiltered {all:.4}, per namespace {per_ns:.4}");
        assert!(all >= 0.99 && per_ns >= 0.99);

        // Persisted with the blob: a reopen loads it (no rebuild) and answers identically.
        let before: Vec<Vec<DocId>> = {
            let mut v = Vec::new();
            for q in qs.iter().take(20) {
                let h = m
                    .recall(&RecallQuery {
                        embedding: Some(q.clone()),
                        weights: Some(VECTOR_ONLY),
                        payload: false,
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                v.push(h.iter().map(|h| h.id).collect());
            }
            v
        };
        m.close().await.expect("close");
        let m = open(&f, "hier-synth", false, d, 1000).await;
        let r = m.load_report();
        assert!(r.from_blob && r.index_from_blob && r.index, "{r:?}");
        for (q, want) in qs.iter().take(20).zip(&before) {
            let h = m
                .recall(&RecallQuery {
                    embedding: Some(q.clone()),
                    weights: Some(VECTOR_ONLY),
                    payload: false,
                    ..Default::default()
                })
                .await
                .unwrap();
            assert_eq!(&h.iter().map(|h| h.id).collect::<Vec<_>>(), want);
        }

        // Incremental: forget the current best hits and more, remember new rows, move some.
        let mut gone = Vec::new();
        for q in qs.iter().take(30) {
            let top = exact_top10(&eps, q, None);
            gone.extend(top.into_iter().take(3));
        }
        gone.extend(ids.iter().step_by(17).copied());
        gone.sort_unstable();
        gone.dedup();
        m.forget_many(&gone).await.expect("forget");
        for id in &gone {
            eps.remove(id);
        }
        let extra: Vec<Memory> = (n..n + 1000)
            .map(|i| {
                Memory::new(ns(i), format!("turn {i}"))
                    .with_embedding(bank[i * d..(i + 1) * d].to_vec())
                    .at(i as f64)
            })
            .collect();
        let new_ids = m.remember_many(extra).await.expect("remember more");
        for (j, id) in new_ids.iter().enumerate() {
            let i = n + j;
            eps.insert(*id, (ns(i), bank[i * d..(i + 1) * d].to_vec()));
        }
        let mut rng = Rng::new(3);
        let keys: Vec<DocId> = eps.keys().copied().collect();
        for q in qs.iter().take(40) {
            let id = keys[rng.below(keys.len())];
            // Move it next to a query: it must be found there.
            let v: Vec<f32> = q.iter().map(|x| x + 0.01 * rng.normal()).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            let v: Vec<f32> = v.iter().map(|x| x / norm).collect();
            m.update(
                id,
                Patch {
                    embedding: Some(v.clone()),
                    ..Default::default()
                },
            )
            .await
            .expect("update");
            eps.get_mut(&id).expect("live").1 = v;
        }
        let after = recall_at_10(&m, &eps, &qs, &|_| None).await;
        let after_ns = recall_at_10(&m, &eps, &qs, &|i| Some(ns(i))).await;
        println!(
            "after forget/remember/update: unfiltered {after:.4}, per namespace {after_ns:.4}"
        );
        assert!(after >= 0.99 && after_ns >= 0.99);
        // Reopen without a flush: the blob's index plus the changes since (replayed).
        m.close().await.expect("close");
        let m = open(&f, "hier-synth", false, d, 1000).await;
        let r = m.load_report();
        assert!(r.index, "{r:?}");
        let reopened = recall_at_10(&m, &eps, &qs, &|_| None).await;
        println!(
            "after reopen (index from blob: {}): {reopened:.4}",
            r.index_from_blob
        );
        assert!(reopened >= 0.99);
        assert_eq!(m.stats().count, eps.len());
        // Large k: every hit is there (the index when its leaves hold enough rows, else the flat
        // path: depth 5k over 1,024).
        for (k, ns) in [
            (150usize, None),
            (150, Some("ns1")),
            (300, None),
            (1900, Some("ns2")),
        ] {
            let h = m
                .recall(&RecallQuery {
                    embedding: Some(qs[0].clone()),
                    k,
                    weights: Some(VECTOR_ONLY),
                    payload: false,
                    filter: Filter {
                        namespaces: ns.map(|n: &str| vec![n.to_string()]),
                        ..Default::default()
                    },
                    ..Default::default()
                })
                .await
                .unwrap();
            let avail = eps.values().filter(|e| ns.is_none_or(|n| e.0 == n)).count();
            assert_eq!(h.len(), k.min(avail), "k {k} {ns:?}");
            println!("k {k} {ns:?}: path {:?}", m.stats().path);
        }
        m.destroy().await.unwrap();
    });
}

#[test]
fn below_the_threshold_the_flat_path_answers() {
    pollster::block_on(async {
        let d = 16;
        let f = MemoryFactory::default();
        let m = open(&f, "hier-small", true, d, 500).await;
        let (bank, qs) = clustered(&Clustered::new(400, d, 1), 1);
        let items: Vec<Memory> = bank
            .chunks_exact(d)
            .enumerate()
            .map(|(i, v)| Memory::new("a", format!("t{i}")).with_embedding(v.to_vec()))
            .collect();
        m.remember_many(items).await.unwrap();
        let q = RecallQuery {
            embedding: Some(qs),
            payload: false,
            ..Default::default()
        };
        m.recall(&q).await.unwrap();
        assert_eq!(m.stats().path, VectorPath::CpuFlat);
        assert!(!m.load_report().index);
        m.destroy().await.unwrap();
    });
}

/// LoCoMo through the engine with the index forced on (`index_min_rows: 0`; at 2,760 turns the
/// default keeps the exact scan): one namespace per conversation, as `make eval` loads it.
#[test]
fn hierarchical_path_on_locomo() {
    let Some(dir) = common::locomo_dir(
        "hierarchical_path_on_locomo",
        &[
            "turns.f32",
            "questions.f32",
            "turns.jsonl",
            "questions.jsonl",
        ],
    ) else {
        return;
    };
    pollster::block_on(async {
        let d = 384;
        let bank = common::read_f32(&dir.join("turns.f32"));
        let qbank = common::read_f32(&dir.join("questions.f32"));
        let tconv = common::conv_of(&dir.join("turns.jsonl"));
        let qconv = common::conv_of(&dir.join("questions.jsonl"));
        let f = MemoryFactory::default();
        let m = open(&f, "hier-locomo", true, d, 0).await;
        let items: Vec<Memory> = bank
            .chunks_exact(d)
            .zip(&tconv)
            .enumerate()
            .map(|(i, (v, c))| {
                Memory::new(format!("conv-{c}"), format!("turn {i}"))
                    .with_embedding(v.to_vec())
                    .at(i as f64)
            })
            .collect();
        let ids = m.remember_many(items).await.expect("rememberMany");
        let mut eps = BTreeMap::new();
        for (i, id) in ids.iter().enumerate() {
            eps.insert(
                *id,
                (
                    format!("conv-{}", tconv[i]),
                    bank[i * d..(i + 1) * d].to_vec(),
                ),
            );
        }
        let qs: Vec<Vec<f32>> = qbank.chunks_exact(d).map(|q| q.to_vec()).collect();
        let all = recall_at_10(&m, &eps, &qs, &|_| None).await;
        let per_conv = recall_at_10(&m, &eps, &qs, &|i| Some(format!("conv-{}", qconv[i]))).await;
        println!(
            "LoCoMo {} turns, {} questions, engine beam {}: recall@10 unfiltered {all:.4}, \
             per conversation {per_conv:.4}",
            ids.len(),
            qs.len(),
            mnemo::engine::mnemo::engine_beam(
                mnemo::kernels::hier::HierIndex::build(&bank, d, None, None)
                    .unwrap()
                    .stats()
                    .leaves
            )
        );
        assert!(all >= 0.99, "unfiltered recall@10 {all}");
        assert!(per_conv >= 0.99, "per-conversation recall@10 {per_conv}");
        m.destroy().await.unwrap();

        // The default engine at this size: the exact flat path, the exact-cosine ids in order.
        let m = open(
            &f,
            "flat-locomo",
            true,
            d,
            mnemo::engine::mnemo::HIER_MIN_ROWS,
        )
        .await;
        let items: Vec<Memory> = bank
            .chunks_exact(d)
            .zip(&tconv)
            .enumerate()
            .map(|(i, (v, c))| {
                Memory::new(format!("conv-{c}"), format!("turn {i}"))
                    .with_embedding(v.to_vec())
                    .at(i as f64)
            })
            .collect();
        let ids = m.remember_many(items).await.expect("rememberMany");
        let eps: BTreeMap<DocId, (String, Vec<f32>)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                (
                    *id,
                    (
                        format!("conv-{}", tconv[i]),
                        bank[i * d..(i + 1) * d].to_vec(),
                    ),
                )
            })
            .collect();
        for (i, q) in qs.iter().enumerate() {
            let ns = format!("conv-{}", qconv[i]);
            let hits = m
                .recall(&RecallQuery {
                    embedding: Some(q.clone()),
                    k: 10,
                    weights: Some(VECTOR_ONLY),
                    payload: false,
                    filter: Filter {
                        namespaces: Some(vec![ns.clone()]),
                        ..Default::default()
                    },
                    ..Default::default()
                })
                .await
                .unwrap();
            assert_eq!(m.stats().path, VectorPath::CpuFlat);
            let got: Vec<DocId> = hits.iter().map(|h| h.id).collect();
            assert_eq!(got, exact_top10(&eps, q, Some(&ns)), "question {i}");
        }
        println!(
            "flat path: all {} questions give the exact-cosine top-10 ids in order",
            qs.len()
        );
        m.destroy().await.unwrap();
    });
}
