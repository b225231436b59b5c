//! The engine's test suite, written once and generic over a store backend
//! [`Factory`](crate::store::testing::Factory): `tests/engine_mnemo.rs` runs it natively on the
//! memory backend, `tests/web_engine.rs` in Chromium on IndexedDB.
//!
//! The heart is [`model_run`]: seeded random sequences of remember / rememberMany / update /
//! forget / forgetNamespace / recall — with a second connection (another tab) writing too and the
//! engine reopened now and then — where every recall is compared with a brute-force oracle that
//! fuses *every* allowed episode of a plain map ([`oracle_recall`]).

use std::collections::BTreeMap;

use crate::compute::Compute;
use crate::engine::fusion::{fuse, Candidate, FusionConfig, Weights};
use crate::engine::lexical::LexicalIndex;
use crate::engine::recall::dot_f64;
use crate::engine::recency::Recency;
use crate::engine::DocId;
use crate::rng::Rng;
use crate::store::testing::Factory;
use crate::store::{Metadata, Patch};

use super::{
    EmbedderKind, FetchPolicy, Filter, Memory, Mnemo, MnemoOptions, RecallHit, RecallQuery,
};

const WORDS: [&str; 24] = [
    "apple", "river", "cello", "lease", "flat", "dog", "peanut", "flight", "sister", "teacher",
    "deposit", "garden", "train", "coffee", "winter", "beach", "novel", "piano", "market",
    "bridge", "lamp", "storm", "violet", "engine",
];
const NAMESPACES: [&str; 4] = ["n0", "n1", "n2", "n3"];
const TAGS: [&str; 3] = ["a", "b", "c"];

/// A unit vector of `dims` values.
pub fn unit(rng: &mut Rng, dims: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..dims).map(|_| rng.normal()).collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
    v.iter_mut().for_each(|x| *x /= n);
    v
}

fn text(rng: &mut Rng) -> String {
    let n = 2 + rng.below(6);
    (0..n)
        .map(|_| *rng.pick(&WORDS))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The model's view of an episode.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelEpisode {
    /// Namespace.
    pub namespace: String,
    /// Text.
    pub text: String,
    /// Embedding (unit length).
    pub embedding: Vec<f32>,
    /// Event time.
    pub time: f64,
    /// Importance.
    pub importance: f32,
    /// Tags.
    pub tags: Vec<String>,
}

/// The brute-force recall: every allowed episode is a candidate (those sharing a query token
/// for a lexical-only query), scored exactly and fused; the first `k`. Returns `(id, score)`.
pub fn oracle_recall(
    eps: &BTreeMap<DocId, ModelEpisode>,
    q: &RecallQuery,
    weights: Weights,
    half_life_ms: f64,
) -> Vec<(DocId, f64)> {
    let f = &q.filter;
    let allowed: Vec<(&DocId, &ModelEpisode)> = eps
        .iter()
        .filter(|(_, e)| {
            f.namespaces
                .as_ref()
                .is_none_or(|ns| ns.contains(&e.namespace))
                && f.since.is_none_or(|s| e.time >= s)
                && f.until.is_none_or(|u| e.time <= u)
                && f.tags
                    .as_ref()
                    .is_none_or(|ts| e.tags.iter().any(|t| ts.contains(t)))
        })
        .collect();
    let w = q.weights.unwrap_or(weights);
    let mut lex = LexicalIndex::new();
    for (id, e) in eps {
        lex.add(*id, &e.namespace, &e.text).expect("oracle index");
    }
    let use_vec = q.embedding.is_some() && w.vector > 0.0;
    let has_match = |id: DocId, e: &ModelEpisode| {
        q.text
            .as_ref()
            .and_then(|t| lex.query(&e.namespace, t).score(id))
    };
    let any_lex = allowed.iter().any(|(id, e)| has_match(**id, e).is_some());
    let use_lex = any_lex && w.lexical > 0.0;
    if !use_vec && !use_lex && (q.embedding.is_some() || q.text.is_some()) {
        return Vec::new();
    }
    let cands: Vec<Candidate> = allowed
        .iter()
        .filter(|(id, e)| use_vec || !use_lex || has_match(**id, e).is_some())
        .map(|(id, e)| Candidate {
            id: **id,
            cosine: if use_vec {
                q.embedding.as_ref().map(|v| dot_f64(v, &e.embedding))
            } else {
                None
            },
            bm25: has_match(**id, e),
            time_ms: e.time,
            importance: e.importance as f64,
        })
        .collect();
    let cfg = FusionConfig {
        weights: w,
        recency: Recency {
            half_life_ms: q.half_life_ms.unwrap_or(half_life_ms),
        },
        now_ms: q.now_ms.expect("the model passes now"),
        ..FusionConfig::new(0.0)
    };
    let mut hits = fuse(&cands, &cfg).expect("oracle fusion");
    hits.truncate(q.k);
    hits.into_iter().map(|h| (h.id, h.score)).collect()
}

/// Check engine hits against the oracle's (same ids in the same order, scores within 1e-9).
pub fn assert_same(got: &[RecallHit], want: &[(DocId, f64)], what: &str) {
    let g: Vec<DocId> = got.iter().map(|h| h.id).collect();
    let w: Vec<DocId> = want.iter().map(|h| h.0).collect();
    assert_eq!(g, w, "{what}: ids differ\n got {got:?}\nwant {want:?}");
    for (a, b) in got.iter().zip(want) {
        assert!(
            (a.score - b.1).abs() <= 1e-9,
            "{what}: score of {} is {} , oracle {}",
            a.id,
            a.score,
            b.1
        );
        let p = a.parts;
        for v in [p.vector, p.lexical, p.recency, p.importance] {
            assert!((0.0..=1.0).contains(&v), "{what}: part {v} outside [0, 1]");
        }
    }
}

/// Options of [`model_run`].
#[derive(Debug, Clone, Copy)]
pub struct EngineModelConfig {
    /// Seed.
    pub seed: u64,
    /// Steps.
    pub steps: usize,
    /// Reopen the engine every this many steps (0: never).
    pub reopen_every: usize,
    /// Dimension.
    pub dims: usize,
}

fn random_memory(rng: &mut Rng, dims: usize) -> (Memory, ModelEpisode) {
    let ns = rng.pick(&NAMESPACES).to_string();
    let t = text(rng);
    let e = unit(rng, dims);
    let time = (rng.below(1_000_000)) as f64;
    let importance = (rng.below(11) as f32) / 10.0;
    let tags: Vec<String> = TAGS
        .iter()
        .filter(|_| rng.below(3) == 0)
        .map(|s| s.to_string())
        .collect();
    let m = Memory {
        text: t.clone(),
        embedding: Some(e.clone()),
        namespace: ns.clone(),
        time: Some(time),
        role: "user".into(),
        meta: Metadata::parse(&format!("{{\"n\":{}}}", rng.below(100))).expect("meta"),
        importance: Some(importance),
        tags: tags.clone(),
    };
    let me = ModelEpisode {
        namespace: ns,
        text: t,
        embedding: e,
        time,
        importance,
        tags,
    };
    (m, me)
}

fn random_query(rng: &mut Rng, model: &BTreeMap<DocId, ModelEpisode>, dims: usize) -> RecallQuery {
    let mut q = RecallQuery {
        k: 1 + rng.below(12),
        now_ms: Some(1_000_000.0),
        half_life_ms: Some(200_000.0),
        ..Default::default()
    };
    match rng.below(4) {
        0 => {}
        1 if !model.is_empty() => {
            // Near an existing episode.
            let keys: Vec<&DocId> = model.keys().collect();
            let e = &model[keys[rng.below(keys.len())]].embedding;
            let mut v: Vec<f32> = e
                .iter()
                .map(|x| x + 0.3 * rng.normal() / dims as f32)
                .collect();
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= n);
            q.embedding = Some(v);
        }
        _ => q.embedding = Some(unit(rng, dims)),
    }
    if rng.below(3) > 0 {
        q.text = Some(text(rng));
    }
    if rng.below(2) == 0 {
        let n = 1 + rng.below(2);
        q.filter.namespaces = Some((0..n).map(|_| rng.pick(&NAMESPACES).to_string()).collect());
    }
    if rng.below(4) == 0 {
        q.filter.since = Some(rng.below(600_000) as f64);
    }
    if rng.below(4) == 0 {
        q.filter.until = Some(400_000.0 + rng.below(600_000) as f64);
    }
    if rng.below(5) == 0 {
        q.filter.tags = Some(vec![rng.pick(&TAGS).to_string()]);
    }
    if rng.below(2) == 0 {
        q.depth = Some(1 + rng.below(4));
    }
    // From `k` (already random), not a new draw: the random sequences of the model test stay
    // those it has always run.
    q.fetch = match q.k % 4 {
        0 => None,
        1 => Some(FetchPolicy::Auto),
        2 => Some(FetchPolicy::Gpu),
        _ => Some(FetchPolicy::Cpu),
    };
    q.weights = match rng.below(6) {
        0 => Some(Weights {
            vector: 1.0,
            lexical: 0.0,
            recency: 0.0,
            importance: 0.0,
        }),
        1 => Some(Weights {
            vector: 0.0,
            lexical: 1.0,
            recency: 0.0,
            importance: 0.0,
        }),
        2 => Some(Weights {
            vector: 0.4,
            lexical: 0.3,
            recency: 0.2,
            importance: 0.1,
        }),
        _ => None,
    };
    q
}

async fn open_engine<F: Factory>(f: &F, name: &str, fresh: bool, dims: usize) -> Mnemo<F::B> {
    open_engine_on(f, name, fresh, dims, Compute::cpu()).await
}

async fn open_engine_on<F: Factory>(
    f: &F,
    name: &str,
    fresh: bool,
    dims: usize,
    compute: Compute,
) -> Mnemo<F::B> {
    let b = if fresh {
        f.fresh(name).await
    } else {
        f.connect(name).await.expect("connect")
    };
    Mnemo::open(
        b,
        compute,
        MnemoOptions {
            dims: Some(dims),
            ..Default::default()
        },
    )
    .await
    .expect("open engine")
}

/// Seeded random operations from two connections, every recall against the oracle.
pub async fn model_run<F: Factory>(f: &F, name: &str, cfg: EngineModelConfig) {
    model_run_on(f, name, cfg, Compute::cpu()).await
}

/// [`model_run`] with engines on `compute` (a GPU `Compute` exercises the GPU flat top-k: the
/// random queries ask for `backend` auto / webgpu / cpu).
pub async fn model_run_on<F: Factory>(f: &F, name: &str, cfg: EngineModelConfig, compute: Compute) {
    let dims = cfg.dims;
    let mut rng = Rng::new(cfg.seed);
    let mut a = open_engine_on(f, name, true, dims, compute.clone()).await;
    let b = open_engine_on(f, name, false, dims, compute.clone()).await;
    let weights = a.weights();
    let half_life = MnemoOptions::default().half_life_ms;
    let mut model: BTreeMap<DocId, ModelEpisode> = BTreeMap::new();
    let mut recalls = 0usize;
    let mut nonempty = 0usize;
    let mut gpu_recalls = 0usize;
    for step in 0..cfg.steps {
        let op = rng.below(100);
        let who = if rng.below(5) == 0 { &b } else { &a };
        let ctx = format!("seed {} step {step} op {op}", cfg.seed);
        if std::env::var("MNEMO_DEBUG_MODEL").is_ok() {
            eprintln!("{ctx} model {:?}", model.keys().collect::<Vec<_>>());
        }
        if op < 30 {
            let (m, me) = random_memory(&mut rng, dims);
            let id = who
                .remember(m)
                .await
                .unwrap_or_else(|e| panic!("{ctx}: {e}"));
            model.insert(id, me);
        } else if op < 40 {
            let n = 1 + rng.below(6);
            let (ms, mes): (Vec<_>, Vec<_>) = (0..n).map(|_| random_memory(&mut rng, dims)).unzip();
            let ids = who
                .remember_many(ms)
                .await
                .unwrap_or_else(|e| panic!("{ctx}: {e}"));
            for (id, me) in ids.into_iter().zip(mes) {
                model.insert(id, me);
            }
        } else if op < 48 && !model.is_empty() {
            let keys: Vec<DocId> = model.keys().copied().collect();
            let id = keys[rng.below(keys.len())];
            who.forget(id)
                .await
                .unwrap_or_else(|e| panic!("{ctx}: {e}"));
            model.remove(&id);
        } else if op < 50 && model.len() > 3 {
            let keys: Vec<DocId> = model.keys().copied().collect();
            let ids = [keys[0], keys[keys.len() / 2]];
            who.forget_many(&ids)
                .await
                .unwrap_or_else(|e| panic!("{ctx}: {e}"));
            for id in ids {
                model.remove(&id);
            }
        } else if op < 58 && !model.is_empty() {
            let keys: Vec<DocId> = model.keys().copied().collect();
            let id = keys[rng.below(keys.len())];
            let mut p = Patch::default();
            let me = model.get_mut(&id).expect("present");
            match rng.below(4) {
                0 => {
                    let v = (rng.below(11) as f32) / 10.0;
                    p.importance = Some(v);
                    me.importance = v;
                }
                1 => {
                    let t: Vec<String> = vec![rng.pick(&TAGS).to_string()];
                    p.tags = Some(t.clone());
                    me.tags = t;
                }
                2 => {
                    let t = text(&mut rng);
                    p.text = Some(t.clone());
                    me.text = t;
                }
                _ => {
                    let e = unit(&mut rng, dims);
                    p.embedding = Some(e.clone());
                    me.embedding = e;
                }
            }
            who.update(id, p)
                .await
                .unwrap_or_else(|e| panic!("{ctx}: {e}"));
        } else if op < 60 && !model.is_empty() {
            let ns = rng.pick(&NAMESPACES).to_string();
            let have = model.values().filter(|e| e.namespace == ns).count();
            match who.forget_namespace(&ns).await {
                Ok(n) => assert_eq!(n, have, "{ctx}: forgetNamespace count"),
                Err(e) => assert!(have == 0 && e.code() == "NOT_FOUND", "{ctx}: {e}"),
            }
            model.retain(|_, e| e.namespace != ns);
        } else {
            f.settle().await;
            let q = random_query(&mut rng, &model, dims);
            let reader = if rng.below(4) == 0 { &b } else { &a };
            let got = reader
                .recall(&q)
                .await
                .unwrap_or_else(|e| panic!("{ctx}: {e}"));
            let want = oracle_recall(&model, &q, weights, half_life);
            assert_same(&got, &want, &format!("{ctx} query {q:?}"));
            if !got.is_empty() {
                nonempty += 1;
            }
            if reader.stats().backend == crate::compute::Backend::Gpu {
                gpu_recalls += 1;
            }
            for h in &got {
                let m = &model[&h.id];
                let p = h.payload.as_ref().expect("payload");
                assert_eq!(p.text, m.text, "{ctx}: hit text");
                assert_eq!(h.namespace, m.namespace, "{ctx}: hit namespace");
                assert_eq!(h.time, m.time, "{ctx}: hit time");
            }
            recalls += 1;
        }
        if cfg.reopen_every > 0 && step % cfg.reopen_every == cfg.reopen_every - 1 {
            a.close().await.expect("close");
            a = open_engine_on(f, name, false, dims, compute.clone()).await;
            let r = a.load_report();
            assert_eq!(r.episodes, model.len(), "{ctx}: episodes after reopen");
        }
        if step % 50 == 0 {
            f.settle().await;
            a.sync().await.expect("sync");
            assert_eq!(a.stats().count, model.len(), "{ctx}: count");
        }
    }
    assert!(recalls > cfg.steps / 5, "few recalls checked: {recalls}");
    if compute.gpu_context().is_some() {
        assert!(gpu_recalls > 0, "no recall ran on the GPU");
    }
    assert!(
        nonempty * 3 > recalls * 2,
        "few non-empty recalls: {nonempty} of {recalls}"
    );
    a.close().await.expect("close a");
    b.close().await.expect("close b");
}

/// Named cases, each a complete test.
pub mod cases {
    use super::*;
    use crate::store::testing::Factory;

    const DIMS: usize = 8;

    fn mem(ns: &str, text: &str, e: Vec<f32>, time: f64) -> Memory {
        Memory::new(ns, text).with_embedding(e).at(time)
    }

    fn axis(i: usize) -> Vec<f32> {
        let mut v = vec![0.0; DIMS];
        v[i % DIMS] = 1.0;
        v
    }

    /// Remember, recall with parts and payloads, filters, errors with codes.
    pub async fn basics_filters_errors<F: Factory>(f: &F) {
        let m = open_engine(f, "eng-basics", true, DIMS).await;
        let ids = m
            .remember_many(vec![
                mem("chat", "I moved to Lyon in May", axis(0), 1000.0),
                mem("chat", "my sister Maya is vegetarian", axis(1), 2000.0),
                mem("work", "the deposit was paid to Okafor", axis(2), 3000.0),
            ])
            .await
            .expect("rememberMany");
        assert_eq!(ids.len(), 3);
        assert!(ids[0] < ids[1] && ids[1] < ids[2]);
        // BM25 needs a few documents per namespace for non-zero idf.
        m.remember_many(
            (0..4)
                .map(|i| mem("chat", "filler words about nothing much", axis(3 + i), 10.0))
                .collect(),
        )
        .await
        .expect("filler");
        let q = RecallQuery {
            embedding: Some(axis(1)),
            text: Some("Maya sister".into()),
            k: 2,
            ..Default::default()
        };
        let hits = m.recall(&q).await.expect("recall");
        assert_eq!(hits[0].id, ids[1]);
        let p = hits[0].parts;
        assert_eq!((p.vector, p.lexical), (1.0, 1.0));
        assert_eq!(
            hits[0].payload.as_ref().unwrap().text,
            "my sister Maya is vegetarian"
        );
        assert_eq!(hits[0].namespace, "chat");
        // Namespace filter.
        let only_work = m
            .recall(&RecallQuery {
                embedding: Some(axis(1)),
                filter: Filter {
                    namespaces: Some(vec!["work".into()]),
                    ..Default::default()
                },
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(only_work.iter().all(|h| h.namespace == "work"));
        // Time filter.
        let late = m
            .recall(&RecallQuery {
                embedding: Some(axis(0)),
                filter: Filter {
                    since: Some(1500.0),
                    ..Default::default()
                },
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(late.iter().all(|h| h.time >= 1500.0) && !late.is_empty());
        // No query: most recent / important first.
        let recent = m
            .recall(&RecallQuery {
                weights: Some(Weights {
                    vector: 0.0,
                    lexical: 0.0,
                    recency: 1.0,
                    importance: 0.0,
                }),
                now_ms: Some(4000.0),
                half_life_ms: Some(1000.0),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            recent.iter().take(3).map(|h| h.id).collect::<Vec<_>>(),
            vec![ids[2], ids[1], ids[0]]
        );
        // Errors.
        let bad = m
            .remember(Memory::new("x", "t").with_embedding(vec![0.0; DIMS + 1]))
            .await
            .unwrap_err();
        assert_eq!(bad.code(), "DIMENSION_MISMATCH");
        let bad = m
            .remember(Memory::new("x", "no embedding"))
            .await
            .unwrap_err();
        assert_eq!(bad.code(), "NO_EMBEDDER");
        let bad = m
            .remember_many(vec![
                mem("x", "fine", axis(0), 1.0),
                mem("", "empty namespace", axis(0), 1.0),
            ])
            .await
            .unwrap_err();
        assert_eq!(bad.code(), "INVALID_INPUT");
        assert_eq!(bad.field(), Some("episodes[1].namespace"));
        assert_eq!(m.stats().count, 7, "nothing of a bad batch is written");
        let bad = m
            .recall(&RecallQuery {
                k: 0,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(bad.code(), "INVALID_INPUT");
        let bad = m
            .recall(&RecallQuery {
                embedding: Some(vec![f32::NAN; DIMS]),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(bad.code(), "NON_FINITE");
        let bad = m.forget(999_999).await.unwrap_err();
        assert_eq!(bad.code(), "NOT_FOUND");
        // Forget: never comes back.
        m.forget(ids[1]).await.unwrap();
        let hits = m.recall(&q).await.unwrap();
        assert!(hits.iter().all(|h| h.id != ids[1]));
        assert_eq!(m.stats().count, 6);
        m.destroy().await.unwrap();
    }

    /// Candidate lists deeper than the fetch kernel's k limit (256): `k = 80` asks for 400
    /// vector candidates, answered by the CPU path's full scan into a bounded heap; every result
    /// equals the brute-force oracle, with and without filters, after deletions.
    pub async fn deep_candidates<F: Factory>(f: &F) {
        let dims = 8;
        let m = open_engine(f, "eng-deep", true, dims).await;
        let mut rng = Rng::new(77);
        let mut model = BTreeMap::new();
        let (ms, mes): (Vec<_>, Vec<_>) = (0..700).map(|_| random_memory(&mut rng, dims)).unzip();
        let ids = m.remember_many(ms).await.expect("rememberMany");
        for (id, me) in ids.iter().zip(mes) {
            model.insert(*id, me);
        }
        for &id in ids.iter().step_by(7) {
            m.forget(id).await.expect("forget");
            model.remove(&id);
        }
        let weights = m.weights();
        let half_life = MnemoOptions::default().half_life_ms;
        for t in 0..12 {
            let mut q = random_query(&mut rng, &model, dims);
            q.k = 60 + rng.below(60);
            q.depth = if t % 2 == 0 { None } else { Some(300) };
            let got = m.recall(&q).await.expect("recall");
            let want = oracle_recall(&model, &q, weights, half_life);
            assert_same(&got, &want, &format!("deep query {t} {q:?}"));
            assert_eq!(m.stats().backend.as_str(), "cpu");
        }
        m.destroy().await.unwrap();
    }

    /// The built-in hashed-ngrams embedder: text-only remember and recall.
    pub async fn hashed_embedder<F: Factory>(f: &F) {
        let b = f.fresh("eng-hashed").await;
        let m = Mnemo::open(
            b,
            Compute::cpu(),
            MnemoOptions {
                dims: Some(256),
                embedder: EmbedderKind::HashedNgrams,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        for t in [
            "I'm allergic to peanuts, never suggest satay",
            "Started cello lessons with a teacher called Ines",
            "The landlord wants the deposit by bank transfer",
        ] {
            m.remember(Memory::new("demo", t)).await.unwrap();
        }
        let hits = m
            .recall(&RecallQuery {
                text: Some("Am I allergic to anything?".into()),
                k: 1,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(hits[0].payload.as_ref().unwrap().text.contains("peanuts"));
        assert!(hits[0].parts.vector > 0.0 && hits[0].parts.lexical > 0.0);
        // Sub-word match through the hashed vector: "teaching" shares n-grams with "teacher".
        let hits = m
            .recall(&RecallQuery {
                text: Some("who is teaching me the cello".into()),
                k: 1,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(hits[0].payload.as_ref().unwrap().text.contains("Ines"));
        m.destroy().await.unwrap();
    }

    /// Derived indexes persist: a reopen uses the blob and replays only later changes; a blob
    /// from far behind (or none) is rebuilt; results are identical either way.
    pub async fn persistence_and_replay<F: Factory>(f: &F) {
        let mut rng = Rng::new(7);
        let name = "eng-persist";
        let m = open_engine(f, name, true, DIMS).await;
        let mut all = Vec::new();
        for i in 0..60 {
            let (mm, _) = random_memory(&mut rng, DIMS);
            all.push(mm);
            if i % 20 == 19 {
                m.remember_many(std::mem::take(&mut all)).await.unwrap();
            }
        }
        let qs: Vec<RecallQuery> = (0..10)
            .map(|_| {
                let mut q = random_query(&mut rng, &BTreeMap::new(), DIMS);
                q.embedding = Some(unit(&mut rng, DIMS));
                q
            })
            .collect();
        let mut before = Vec::new();
        for q in &qs {
            before.push(m.recall(q).await.unwrap());
        }
        m.close().await.unwrap();
        let m = open_engine(f, name, false, DIMS).await;
        let r = m.load_report();
        assert!(r.from_blob, "reopen uses the blob: {r:?}");
        assert_eq!(r.refetched, 0, "nothing to replay: {r:?}");
        assert_eq!(r.episodes, 60);
        for (q, b) in qs.iter().zip(&before) {
            assert_eq!(&m.recall(q).await.unwrap(), b, "same results after reopen");
        }
        // Another connection writes while this one is closed: the reopen replays just that.
        m.close().await.unwrap();
        let other = open_engine(f, name, false, DIMS).await;
        let (mm, _) = random_memory(&mut rng, DIMS);
        let extra = other.remember(mm).await.unwrap();
        other.forget(extra - 1).await.unwrap();
        // `other` goes away without persisting (a closed tab): close its store connection only.
        other.store().close();
        let m = open_engine(f, name, false, DIMS).await;
        let r = m.load_report();
        assert!(
            r.from_blob && r.refetched == 1,
            "replayed one change: {r:?}"
        );
        assert_eq!(r.episodes, 60);
        // A rebuilt engine (no blob) gives identical results.
        m.store().delete_blob("mnemo-engine").await.unwrap();
        let rebuilt = open_engine(f, name, false, DIMS).await;
        assert!(!rebuilt.load_report().from_blob);
        for q in &qs {
            assert_eq!(m.recall(q).await.unwrap(), rebuilt.recall(q).await.unwrap());
        }
        rebuilt.close().await.unwrap();
        m.destroy().await.unwrap();
    }

    /// The hierarchical index (threshold lowered to 300 rows): recalls take the hierarchical path
    /// with high recall@10 against the exact cosine top-10, forgotten episodes never come back,
    /// and a reopen loads the index from the engine blob (with another connection's writes
    /// replayed into it).
    pub async fn hierarchical_index<F: Factory>(f: &F) {
        use crate::kernels::hier::synth::{clustered, Clustered};
        let (dims, n) = (16, 900);
        let name = "eng-hier";
        let open = |fresh: bool| async move {
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
                    index_min_rows: 300,
                    ..Default::default()
                },
            )
            .await
            .expect("open engine")
        };
        let (bank, qbank) = clustered(&Clustered::new(n + 50, dims, 5), 40);
        let m = open(true).await;
        let items: Vec<Memory> = (0..n)
            .map(|i| {
                mem(
                    ["a", "b"][i % 2],
                    "words",
                    bank[i * dims..(i + 1) * dims].to_vec(),
                    i as f64,
                )
            })
            .collect();
        let ids = m.remember_many(items).await.expect("rememberMany");
        let mut live: BTreeMap<DocId, Vec<f32>> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, bank[i * dims..(i + 1) * dims].to_vec()))
            .collect();
        let gone: Vec<DocId> = ids.iter().copied().step_by(5).collect();
        m.forget_many(&gone).await.expect("forget");
        for id in &gone {
            live.remove(id);
        }
        hier_check(&m, &live, &gone, &qbank, dims, "fresh").await;
        m.close().await.unwrap();
        // Another connection writes while this one is closed: the reopen replays it into the
        // loaded index.
        let other = open(false).await;
        assert!(other.load_report().index_from_blob);
        let v = bank[n * dims..(n + 1) * dims].to_vec();
        let id = other
            .remember(mem("a", "new", v.clone(), 1e6))
            .await
            .unwrap();
        live.insert(id, v);
        other.store().close();
        let m = open(false).await;
        let r = m.load_report();
        assert!(r.from_blob && r.index_from_blob && r.index, "{r:?}");
        hier_check(&m, &live, &gone, &qbank, dims, "reopened").await;
        m.destroy().await.unwrap();
    }

    /// Vector-only recalls of `qbank` take the hierarchical path, never return `gone`, and
    /// reach recall@10 >= 0.95 against the exact cosine top-10 of `live`.
    async fn hier_check<B: crate::store::backend::Backend>(
        m: &Mnemo<B>,
        live: &BTreeMap<DocId, Vec<f32>>,
        gone: &[DocId],
        qbank: &[f32],
        dims: usize,
        what: &str,
    ) {
        let vector_only = Weights {
            vector: 1.0,
            lexical: 0.0,
            recency: 0.0,
            importance: 0.0,
        };
        let mut found = 0usize;
        let qs: Vec<&[f32]> = qbank.chunks_exact(dims).collect();
        for q in &qs {
            let hits = m
                .recall(&RecallQuery {
                    embedding: Some(q.to_vec()),
                    weights: Some(vector_only),
                    payload: false,
                    ..Default::default()
                })
                .await
                .expect("recall");
            assert_eq!(m.stats().path.as_str(), "hierarchical", "{what}");
            assert!(hits.iter().all(|h| !gone.contains(&h.id)), "{what}");
            let mut exact: Vec<(f64, DocId)> =
                live.iter().map(|(id, v)| (dot_f64(q, v), *id)).collect();
            exact.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            found += exact
                .iter()
                .take(10)
                .filter(|(_, id)| hits.iter().any(|h| h.id == *id))
                .count();
        }
        let recall = found as f64 / (10 * qs.len()) as f64;
        assert!(recall >= 0.95, "{what}: recall@10 {recall}");
    }

    /// Export, import into another store, same results; a second tab's write is recalled here.
    pub async fn export_import_and_tabs<F: Factory>(f: &F) {
        let mut rng = Rng::new(11);
        let a = open_engine(f, "eng-exp-a", true, DIMS).await;
        let mut ms = Vec::new();
        for _ in 0..25 {
            ms.push(random_memory(&mut rng, DIMS).0);
        }
        a.remember_many(ms).await.unwrap();
        let bytes = a.export().await.unwrap();
        let b = open_engine(f, "eng-exp-b", true, DIMS).await;
        let rep = b.import(&bytes).await.unwrap();
        assert_eq!(rep.imported, 25);
        let q = RecallQuery {
            embedding: Some(unit(&mut rng, DIMS)),
            text: Some("apple river".into()),
            k: 5,
            now_ms: Some(0.0),
            ..Default::default()
        };
        let ha: Vec<(String, f64)> = a
            .recall(&q)
            .await
            .unwrap()
            .into_iter()
            .map(|h| (h.payload.unwrap().text, h.score))
            .collect();
        let hb: Vec<(String, f64)> = b
            .recall(&q)
            .await
            .unwrap()
            .into_iter()
            .map(|h| (h.payload.unwrap().text, h.score))
            .collect();
        assert_eq!(ha, hb, "imported store recalls the same");
        assert_eq!(
            b.import(&bytes[..bytes.len() - 3])
                .await
                .unwrap_err()
                .code(),
            "CORRUPT_IMPORT"
        );
        // Two tabs.
        let tab2 = open_engine(f, "eng-exp-a", false, DIMS).await;
        let id = tab2
            .remember(mem("n0", "a zebra crossing the bridge", axis(3), 5.0))
            .await
            .unwrap();
        f.settle().await;
        let hits = a
            .recall(&RecallQuery {
                text: Some("zebra".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            hits.first().map(|h| h.id),
            Some(id),
            "the other tab's write is recalled"
        );
        tab2.forget(id).await.unwrap();
        let hits = a
            .recall(&RecallQuery {
                text: Some("zebra".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(hits.is_empty(), "the other tab's delete is respected");
        tab2.close().await.unwrap();
        a.destroy().await.unwrap();
        b.destroy().await.unwrap();
    }

    /// Fading context: a vague follow-up is pulled towards what the namespace was recently about;
    /// the state is a function of the live episodes (a forget changes it deterministically).
    pub async fn fading_context<F: Factory>(f: &F) {
        let m = open_engine(f, "eng-context", true, DIMS).await;
        // Two topics: axis 0-ish and axis 1-ish; the conversation ends on topic 1.
        let mut v0 = axis(0);
        v0[2] = 0.1;
        let mut v1 = axis(1);
        v1[2] = 0.1;
        let ids = m
            .remember_many(vec![
                mem("c", "topic zero", v0.clone(), 1.0),
                mem("c", "topic one", v1.clone(), 2.0),
                mem("c", "more on one", axis(1), 3.0),
                mem("c", "still one", axis(1), 4.0),
            ])
            .await
            .unwrap();
        // A vague query (axis 2, equally far from both) with and without context.
        let q = RecallQuery {
            embedding: Some(axis(2)),
            k: 1,
            weights: Some(Weights {
                vector: 1.0,
                lexical: 0.0,
                recency: 0.0,
                importance: 0.0,
            }),
            ..Default::default()
        };
        let plain = m.recall(&q).await.unwrap();
        assert_eq!(
            plain[0].id, ids[0],
            "without context: tie broken by lower id"
        );
        let with = m
            .recall(&RecallQuery {
                context: true,
                ..q.clone()
            })
            .await
            .unwrap();
        assert_eq!(with[0].id, ids[1], "with context: the recent topic wins");
        m.destroy().await.unwrap();
    }
}

/// Cases as `(name, fn)` for harnesses.
#[macro_export]
#[doc(hidden)]
macro_rules! engine_cases {
    ($m:ident) => {
        $m!(basics_filters_errors);
        $m!(hashed_embedder);
        $m!(persistence_and_replay);
        $m!(export_import_and_tabs);
        $m!(fading_context);
        $m!(deep_candidates);
        $m!(hierarchical_index);
    };
}
