//! Fusion, recency, the recall pipeline (exactness of the candidate cut), the built-in
//! embedder and the fading context of the retrieval core. No eval data needed.
#![cfg(not(target_arch = "wasm32"))]

use mnemo::engine::embed::{HashedNgrams, NgramConfig};
use mnemo::engine::fading::{FadingMode, FadingState};
use mnemo::engine::fusion::{
    fuse, score, Candidate, FusionConfig, LexicalNorm, VectorNorm, Weights,
};
use mnemo::engine::recall::{dot_f64, recall, Corpus, MemCorpus, RecallRequest};
use mnemo::engine::recency::{Recency, DAY_MS};
use mnemo::engine::{DocId, EngineError, LexicalIndex};
use mnemo::rng::Rng;

fn cand(id: DocId, cosine: Option<f64>, bm25: Option<f64>) -> Candidate {
    Candidate {
        id,
        cosine,
        bm25,
        time_ms: 0.0,
        importance: 0.5,
    }
}

#[test]
fn parts_are_normalised_and_sum_to_the_score() {
    let cands = [
        cand(1, Some(0.8), Some(12.0)),
        cand(2, Some(0.4), None),
        cand(3, Some(-0.2), Some(3.0)),
        cand(4, None, Some(6.0)),
    ];
    let cfg = FusionConfig::new(0.0);
    let hits = fuse(&cands, &cfg).unwrap();
    let by_id = |id| hits.iter().find(|h| h.id == id).unwrap();
    assert_eq!(by_id(1).parts.vector, 1.0);
    assert_eq!(by_id(1).parts.lexical, 1.0);
    assert!((by_id(2).parts.vector - 0.5).abs() < 1e-12);
    assert_eq!(
        by_id(2).parts.lexical,
        0.0,
        "no query token: lexical part 0"
    );
    assert_eq!(by_id(3).parts.vector, 0.0, "negative cosine clamps to 0");
    assert!((by_id(3).parts.lexical - 0.25).abs() < 1e-12);
    assert_eq!(by_id(4).parts.vector, 0.0);
    for h in &hits {
        assert_eq!(h.score, score(&cfg.weights, &h.parts));
        for p in [
            h.parts.vector,
            h.parts.lexical,
            h.parts.recency,
            h.parts.importance,
        ] {
            assert!((0.0..=1.0).contains(&p));
        }
    }
    assert_eq!(hits[0].id, 1);
}

#[test]
fn ordering_and_ties_by_lower_id() {
    // Equal evidence, shuffled input: ties come out by ascending id, deterministically.
    let mut rng = Rng::new(3);
    let mut cands: Vec<Candidate> = (0..50)
        .map(|i| cand(1000 - i, Some(0.5), Some(2.0)))
        .collect();
    cands.push(cand(5000, Some(0.9), Some(2.0)));
    for i in (1..cands.len()).rev() {
        let j = rng.below(i + 1);
        cands.swap(i, j);
    }
    let hits = fuse(&cands, &FusionConfig::new(0.0)).unwrap();
    assert_eq!(hits[0].id, 5000);
    let rest: Vec<DocId> = hits[1..].iter().map(|h| h.id).collect();
    let mut sorted = rest.clone();
    sorted.sort_unstable();
    assert_eq!(rest, sorted);
    assert_eq!(hits, fuse(&cands, &FusionConfig::new(0.0)).unwrap());
}

#[test]
fn weights_recency_and_importance() {
    let now = 100.0 * DAY_MS;
    let old = Candidate {
        id: 1,
        cosine: Some(0.9),
        bm25: None,
        time_ms: now - 60.0 * DAY_MS,
        importance: 0.0,
    };
    let new = Candidate {
        id: 2,
        cosine: Some(0.85),
        bm25: None,
        time_ms: now,
        importance: 1.0,
    };
    let mut cfg = FusionConfig::new(now);
    cfg.weights = Weights::VECTOR;
    assert_eq!(fuse(&[old, new], &cfg).unwrap()[0].id, 1);
    cfg.weights.recency = 0.2;
    cfg.recency = Recency {
        half_life_ms: 30.0 * DAY_MS,
    };
    let hits = fuse(&[old, new], &cfg).unwrap();
    assert_eq!(hits[0].id, 2, "recency lifts the recent episode");
    let p_old = hits.iter().find(|h| h.id == 1).unwrap().parts.recency;
    assert!((p_old - 0.25).abs() < 1e-12, "two half-lives: {p_old}");
    cfg.weights = Weights {
        importance: 0.2,
        ..Weights::VECTOR
    };
    assert_eq!(
        fuse(&[old, new], &cfg).unwrap()[0].id,
        2,
        "importance lifts too"
    );
    // Invalid settings are typed errors.
    for bad in [
        Weights {
            vector: -1.0,
            ..Weights::DEFAULT
        },
        Weights {
            lexical: f64::NAN,
            ..Weights::DEFAULT
        },
        Weights {
            vector: 0.0,
            lexical: 0.0,
            recency: 0.0,
            importance: 0.0,
        },
    ] {
        let c = FusionConfig {
            weights: bad,
            ..FusionConfig::new(0.0)
        };
        assert_eq!(fuse(&[old], &c).unwrap_err().code(), "INVALID_INPUT");
    }
    let c = FusionConfig {
        recency: Recency { half_life_ms: 0.0 },
        ..FusionConfig::new(0.0)
    };
    assert!(fuse(&[old], &c).is_err());
    // NaN evidence is treated as absent, not propagated.
    let nan = cand(9, Some(f64::NAN), Some(f64::NAN));
    let h = fuse(&[nan, old], &FusionConfig::new(now)).unwrap();
    assert!(h.iter().all(|h| h.score.is_finite()));
}

#[test]
fn other_normalisations_stay_in_range() {
    let cands: Vec<Candidate> = (0..20)
        .map(|i| {
            cand(
                i,
                Some(i as f64 / 20.0 - 0.3),
                (i % 3 != 0).then_some(i as f64),
            )
        })
        .collect();
    for (vn, ln) in [
        (VectorNorm::Clamped, LexicalNorm::MinMax),
        (VectorNorm::MinMax, LexicalNorm::Saturating(5.0)),
        (VectorNorm::Rank(60.0), LexicalNorm::Rank(60.0)),
    ] {
        let cfg = FusionConfig {
            vector_norm: vn,
            lexical_norm: ln,
            ..FusionConfig::new(0.0)
        };
        for h in fuse(&cands, &cfg).unwrap() {
            assert!(
                (0.0..=1.0).contains(&h.parts.vector) && (0.0..=1.0).contains(&h.parts.lexical)
            );
        }
    }
    let bad = FusionConfig {
        lexical_norm: LexicalNorm::Rank(0.0),
        ..FusionConfig::new(0.0)
    };
    assert!(bad.validate().is_err());
}

fn unit(rng: &mut Rng, d: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..d).map(|_| rng.normal()).collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

/// Fusing every episode of the namespace: what recall must equal.
fn full_fusion(
    corpus: &MemCorpus,
    lex: &LexicalIndex,
    ns: &str,
    q: &[f32],
    text: &str,
    cfg: &FusionConfig,
    k: usize,
) -> Vec<(DocId, f64)> {
    let lq = lex.query(ns, text);
    let cands: Vec<Candidate> = (0..corpus.len())
        .map(|r| Candidate {
            id: corpus.id(r),
            cosine: Some(dot_f64(q, corpus.embedding(r))),
            bm25: lq.score(corpus.id(r)),
            time_ms: corpus.time_ms(r),
            importance: corpus.importance(r),
        })
        .collect();
    fuse(&cands, cfg)
        .unwrap()
        .into_iter()
        .take(k)
        .map(|h| (h.id, h.score))
        .collect()
}

#[test]
fn recall_equals_full_fusion_whatever_the_depth() {
    let words = [
        "red", "green", "blue", "cat", "dog", "tree", "house", "river", "stone", "cloud",
    ];
    let mut rng = Rng::new(11);
    let d = 16;
    let mut corpus = MemCorpus::new(d);
    let mut lex = LexicalIndex::new();
    for id in 0..400u64 {
        let text: Vec<&str> = (0..1 + rng.below(6)).map(|_| *rng.pick(&words)).collect();
        lex.add(id, "ns", &text.join(" ")).unwrap();
        corpus
            .push(
                id,
                &unit(&mut rng, d),
                rng.range_f32(0.0, 1e9) as f64,
                rng.f32() as f64,
            )
            .unwrap();
    }
    for trial in 0..60 {
        let q = unit(&mut rng, d);
        let text = format!("{} {}", rng.pick(&words), rng.pick(&words));
        let mut cfg = FusionConfig::new(1e9);
        cfg.weights = Weights {
            vector: rng.f32() as f64,
            lexical: rng.f32() as f64,
            recency: if trial % 3 == 0 { 0.3 } else { 0.0 },
            importance: if trial % 2 == 0 { 0.1 } else { 0.0 },
        };
        cfg.recency = Recency { half_life_ms: 1e8 };
        let k = 1 + rng.below(15);
        let want = full_fusion(&corpus, &lex, "ns", &q, &text, &cfg, k);
        for depth in [1usize, 3, 10, 1000] {
            let mut req = RecallRequest::new(k, 1e9);
            req.fusion = cfg;
            req.embedding = Some(&q);
            req.text = Some(&text);
            req.depth = Some(depth);
            let got: Vec<(DocId, f64)> = recall(&corpus, &lex, "ns", &req)
                .unwrap()
                .into_iter()
                .map(|h| (h.id, h.score))
                .collect();
            assert_eq!(got, want, "trial {trial} depth {depth} k {k}");
        }
    }
}

#[test]
fn recall_filters_and_modalities() {
    let mut rng = Rng::new(5);
    let d = 8;
    let mut corpus = MemCorpus::new(d);
    let mut lex = LexicalIndex::new();
    for id in 0..50u64 {
        let text = if id.is_multiple_of(5) {
            "apple pie"
        } else {
            "something else"
        };
        lex.add(id, "n", text).unwrap();
        corpus.push(id, &unit(&mut rng, d), id as f64, 0.5).unwrap();
    }
    let q = unit(&mut rng, d);
    let even = |id: DocId| id.is_multiple_of(2);
    let mut req = RecallRequest::new(10, 100.0);
    req.embedding = Some(&q);
    req.text = Some("apple");
    req.allow = Some(&even);
    let hits = recall(&corpus, &lex, "n", &req).unwrap();
    assert_eq!(hits.len(), 10);
    assert!(hits.iter().all(|h| h.id.is_multiple_of(2)));
    // Text only: only lexical matches are candidates.
    let mut req = RecallRequest::new(10, 100.0);
    req.text = Some("apple");
    let hits = recall(&corpus, &lex, "n", &req).unwrap();
    assert_eq!(
        hits.iter().map(|h| h.id).collect::<Vec<_>>(),
        vec![0, 5, 10, 15, 20, 25, 30, 35, 40, 45]
    );
    // Text that no episode shares and no embedding: nothing is similar.
    let mut req = RecallRequest::new(10, 100.0);
    req.text = Some("zebra");
    assert!(recall(&corpus, &lex, "n", &req).unwrap().is_empty());
    // Neither embedding nor text: recency decides (recent = higher id here).
    let mut req = RecallRequest::new(3, 100.0);
    req.fusion.weights = Weights {
        recency: 1.0,
        ..Weights::DEFAULT
    };
    let hits = recall(&corpus, &lex, "n", &req).unwrap();
    assert_eq!(
        hits.iter().map(|h| h.id).collect::<Vec<_>>(),
        vec![49, 48, 47]
    );
    // Bad query vector: typed error.
    let mut req = RecallRequest::new(3, 0.0);
    let short = [0.0f32; 3];
    req.embedding = Some(&short);
    assert!(matches!(
        recall(&corpus, &lex, "n", &req),
        Err(EngineError::DimensionMismatch { .. })
    ));
    assert!(corpus.push(0, &q, 0.0, 0.0).is_err(), "duplicate id");
}

#[test]
fn hashed_ngrams_deterministic_with_pinned_values() {
    let e = HashedNgrams::new(64).unwrap();
    let a = e.embed("Caroline went to the LGBTQ support group yesterday!");
    let b = HashedNgrams::new(64)
        .unwrap()
        .embed("Caroline went to the LGBTQ support group yesterday!");
    assert_eq!(a, b);
    let batch = e.embed_batch(&["x y", "Caroline went to the LGBTQ support group yesterday!"]);
    assert_eq!(&batch[64..], &a[..]);
    // The hash and features are part of the stored format: pin a few values.
    let nz: Vec<(usize, f32)> = a
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, v)| *v != 0.0)
        .take(4)
        .collect();
    let pinned = PINNED;
    for ((i, v), (pi, pv)) in nz.iter().zip(pinned.iter()) {
        assert_eq!(i, pi);
        assert!((v - pv).abs() < 1e-6, "bucket {i}: {v} vs pinned {pv}");
    }
    assert!(e.embed_into("x", &mut [0.0; 3]).is_err());
    // Unicode words and arbitrary text.
    let u = e.embed("Zürich naïve 東京 straße");
    assert!((u.iter().map(|v| v * v).sum::<f32>() - 1.0).abs() < 1e-5);
    let cfg = NgramConfig {
        bigram: 0.5,
        skip_stop_words: false,
        sublinear: true,
        ..NgramConfig::default()
    };
    let e2 = HashedNgrams::with_config(32, cfg).unwrap();
    assert_eq!(e2.embed("the the the cat"), e2.embed("the the the cat"));
}

/// First non-zero buckets of the 64-dim embedding of the sentence above (format version 1).
const PINNED: [(usize, f32); 4] = [
    (0, 0.012878651),
    (2, 0.1287865),
    (3, -0.0064393245),
    (4, -0.022077685),
];

#[test]
fn fading_context_pulls_towards_recent_topic() {
    // Two topics; the conversation recently talked about topic A. A vague query halfway between
    // an A memory and a B memory retrieves the A memory once the context is mixed in.
    let d = 4;
    let a = [1.0f32, 0.0, 0.0, 0.0];
    let b = [0.0f32, 1.0, 0.0, 0.0];
    let mut corpus = MemCorpus::new(d);
    corpus.push(1, &b, 0.0, 0.5).unwrap();
    corpus.push(2, &a, 0.0, 0.5).unwrap();
    let lex = LexicalIndex::new();
    let mut st = FadingState::new(d, FadingMode::Centroid, 0.7).unwrap();
    for e in [b, b, a, a, a] {
        st.update(&e).unwrap();
    }
    let s = std::f32::consts::FRAC_1_SQRT_2;
    let vague = [s, s + 0.01, 0.0, 0.0];
    let mut req = RecallRequest::new(1, 0.0);
    req.embedding = Some(&vague);
    let plain = recall(&corpus, &lex, "n", &req).unwrap();
    assert_eq!(plain[0].id, 1);
    req.context = Some((&st, 0.3));
    let with = recall(&corpus, &lex, "n", &req).unwrap();
    assert_eq!(with[0].id, 2);
}
