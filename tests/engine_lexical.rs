//! The BM25 index of the retrieval core: hand-computed scores (and `rank_bm25`'s values),
//! per-namespace statistics, filtered top-k with ties by lower id, incremental add/remove
//! equal to a rebuild (model-based, seeded), canonical serialisation, and untrusted bytes.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::BTreeMap;

use mnemo::engine::codec::{crc32, Writer, HEADER_LEN};
use mnemo::engine::lexical::{Allow, Bm25Params, LexicalIndex};
use mnemo::engine::tokenize::tokenize;
use mnemo::engine::{DocId, EngineError};
use mnemo::rng::Rng;

const DOCS: [&str; 5] = [
    "Alice likes green apples",
    "Bob likes red apples and red cars",
    "Carol drives a green car",
    "Dave reads books",
    "Eve likes books about cars and apples",
];

fn small() -> LexicalIndex {
    let mut ix = LexicalIndex::new();
    for (i, d) in DOCS.iter().enumerate() {
        ix.add(i as DocId, "x", d).unwrap();
    }
    ix
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * b.abs().max(1.0)
}

#[test]
fn bm25_matches_hand_computation_and_rank_bm25() {
    let ix = small();
    // N = 5 documents, 26 tokens, avgdl = 5.2. df: green 2, apples 3 (negative idf, floored).
    let (k1, b, avgdl) = (1.5f64, 0.75f64, 5.2f64);
    let idf = |df: f64| (5.0 - df + 0.5f64).ln() - (df + 0.5f64).ln();
    // 17 distinct terms: 11 with df 1, 4 with df 2, 2 with df 3.
    let mean_idf = (11.0 * idf(1.0) + 4.0 * idf(2.0) + 2.0 * idf(3.0)) / 17.0;
    let floor = 0.25 * mean_idf;
    let term =
        |idf: f64, tf: f64, dl: f64| idf * tf * (k1 + 1.0) / (tf + k1 * (1.0 - b + b * dl / avgdl));

    let q = ix.query("x", "green apples");
    assert_eq!(q.idfs(), vec![idf(2.0), floor]);
    let want0 = term(idf(2.0), 1.0, 4.0) + term(floor, 1.0, 4.0);
    assert!(close(q.score(0).unwrap(), want0));
    // rank_bm25 0.2.2 BM25Okapi on the same tokens gives these values.
    let rank_bm25 = [
        0.5848160724625643,
        0.16232733232033983,
        0.3423983621194339,
        0.0,
        0.16232733232033983,
    ];
    let all = q.scores_all();
    for (i, &want) in rank_bm25.iter().enumerate() {
        assert_eq!(all[i].0, i as DocId);
        assert!(close(all[i].1, want), "doc {i}: {} vs {want}", all[i].1);
    }
    // Repeated query tokens count again.
    let q = ix.query("x", "red red cars");
    assert!(close(q.score(1).unwrap(), 3.1157390963969047));
    assert!(close(q.score(4).unwrap(), 0.2911240649634455));
    assert_eq!(q.score(0), None, "no query token: not a lexical match");
    assert!(ix.query("x", "zebra").is_empty());
    assert!(ix.query("nope", "green").top_k(5, Allow::All).is_empty());
}

#[test]
fn negative_mean_idf_floor_as_rank_bm25() {
    // Tiny corpus where most terms occur in most documents: rank_bm25 floors at a negative value.
    let mut ix = LexicalIndex::new();
    for (i, d) in ["the cat sat", "the dog", "cat cat dog bird"]
        .iter()
        .enumerate()
    {
        ix.add(i as DocId, "t", d).unwrap();
    }
    let all = ix.query("t", "cat bird").scores_all();
    let want = [-0.025541281188299535, 0.0, 0.411239702723252];
    for (i, w) in want.iter().enumerate() {
        assert!(close(all[i].1, *w), "doc {i}: {} vs {w}", all[i].1);
    }
}

#[test]
fn statistics_are_per_namespace() {
    let alone = small();
    let mut mixed = LexicalIndex::new();
    mixed
        .add(100, "y", "green green green apples everywhere")
        .unwrap();
    for (i, d) in DOCS.iter().enumerate() {
        mixed.add(i as DocId, "x", d).unwrap();
        mixed
            .add(1000 + i as DocId, "y", "apples apples and more apples")
            .unwrap();
    }
    for q in ["green apples", "likes red cars", "books"] {
        assert_eq!(
            alone.query("x", q).scores_all(),
            mixed.query("x", q).scores_all(),
            "{q}"
        );
    }
    assert_eq!(mixed.namespaces(), vec!["x", "y"]);
    assert_eq!(mixed.namespace_len("y"), 6);
    assert_eq!(mixed.namespace_of(100), Some("y"));
    assert!(
        mixed.query("y", "green").score(0).is_none(),
        "doc 0 is in another namespace"
    );
}

#[test]
fn top_k_filters_and_ties_by_lower_id() {
    let mut ix = LexicalIndex::new();
    // Identical texts score identically: ties must come out by ascending id.
    for id in [9u64, 3, 7, 1, 5] {
        ix.add(id, "n", "same words here").unwrap();
    }
    ix.add(4, "n", "other words").unwrap();
    ix.add(2, "n", "same same same").unwrap();
    // Filler so that "same" is rare enough for a positive idf.
    for id in 100..120u64 {
        ix.add(id, "n", &format!("filler {id}")).unwrap();
    }
    let q = ix.query("n", "same");
    let ids = |h: Vec<mnemo::engine::LexHit>| h.into_iter().map(|h| h.id).collect::<Vec<_>>();
    assert_eq!(ids(q.top_k(10, Allow::All)), vec![2, 1, 3, 5, 7, 9]);
    assert_eq!(ids(q.top_k(3, Allow::All)), vec![2, 1, 3]);
    let only = [9u64, 7, 4, 7, 12345];
    assert_eq!(ids(q.top_k(10, Allow::Only(&only))), vec![7, 9]);
    let odd = |id: DocId| id % 2 == 1 && id > 1;
    assert_eq!(ids(q.top_k(10, Allow::Predicate(&odd))), vec![3, 5, 7, 9]);
    assert!(q.top_k(0, Allow::All).is_empty());
    // Allow::Only scores document by document: same values as the postings walk.
    let a = q.top_k(10, Allow::All);
    let b = q.top_k(10, Allow::Only(&[1, 2, 3, 4, 5, 7, 9]));
    assert_eq!(a, b);
}

#[test]
fn duplicate_ids_and_removal() {
    let mut ix = small();
    assert_eq!(
        ix.add(2, "x", "again"),
        Err(EngineError::DuplicateId { id: 2 })
    );
    assert_eq!(
        ix.add(2, "other", "again").unwrap_err().code(),
        "DUPLICATE_ID"
    );
    assert!(ix.remove(2));
    assert!(!ix.remove(2));
    assert!(!ix.contains(2));
    assert_eq!(ix.len(), 4);
    assert_eq!(ix.remove_namespace("x"), 4);
    assert!(ix.is_empty());
    assert!(ix.namespaces().is_empty());
    assert_eq!(
        ix.stats().terms,
        0,
        "vocabulary released with the last document"
    );
    // A text without tokens is still a document (it counts in N and avgdl).
    ix.add(1, "z", "東京 ...").unwrap();
    ix.add(2, "z", "tokyo").unwrap();
    assert_eq!(ix.namespace_len("z"), 2);
    assert_eq!(ix.ids("z"), vec![1, 2]);
}

/// A from-scratch BM25 over plain maps: the model the index is checked against.
fn reference_scores(
    docs: &BTreeMap<DocId, (String, String)>,
    ns: &str,
    query: &str,
) -> BTreeMap<DocId, f64> {
    let p = Bm25Params::default();
    let members: Vec<(DocId, Vec<String>)> = docs
        .iter()
        .filter(|(_, (n, _))| n == ns)
        .map(|(&id, (_, t))| (id, tokenize(t)))
        .collect();
    let n = members.len() as f64;
    let mut df: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, toks) in &members {
        let mut u: Vec<&str> = toks.iter().map(|s| s.as_str()).collect();
        u.sort_unstable();
        u.dedup();
        for t in u {
            *df.entry(t).or_insert(0) += 1;
        }
    }
    let raw = |c: usize| (n - c as f64 + 0.5).ln() - (c as f64 + 0.5).ln();
    let mean = df.values().map(|&c| raw(c)).sum::<f64>() / df.len().max(1) as f64;
    let avgdl = members.iter().map(|(_, t)| t.len()).sum::<usize>() as f64 / n;
    let mut out = BTreeMap::new();
    for (id, toks) in &members {
        let mut s = 0.0;
        for q in tokenize(query) {
            let Some(&c) = df.get(q.as_str()) else {
                continue;
            };
            let idf = if raw(c) < 0.0 {
                p.epsilon * mean
            } else {
                raw(c)
            };
            let tf = toks.iter().filter(|t| **t == q).count() as f64;
            s += idf * tf * (p.k1 + 1.0)
                / (tf + p.k1 * (1.0 - p.b + p.b * toks.len() as f64 / avgdl));
        }
        out.insert(*id, s);
    }
    out
}

fn random_text(rng: &mut Rng, vocab: &[&str]) -> String {
    let n = rng.below(9);
    (0..n)
        .map(|_| *rng.pick(vocab))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn incremental_equals_rebuild_model_based() {
    let vocab = [
        "apple", "Banana", "cherry", "date", "elder", "fig", "grape", "the", "a", "of", "x1",
        "Zürich", "naïve", "!!", "42",
    ];
    let namespaces = ["alpha", "beta", "gamma"];
    for seed in 0..4u64 {
        let mut rng = Rng::new(0xB25 + seed);
        let mut ix = LexicalIndex::new();
        let mut model: BTreeMap<DocId, (String, String)> = BTreeMap::new();
        let mut next_id: DocId = 0;
        for step in 0..600 {
            let op = rng.below(100);
            if op < 55 || model.is_empty() {
                // ids mostly ascending, sometimes reusing a freed or skipped id
                let id = if rng.below(10) == 0 && next_id > 0 {
                    rng.below(next_id as usize) as DocId
                } else {
                    next_id
                };
                next_id = next_id.max(id + 1);
                let ns = rng.pick(&namespaces).to_string();
                let text = random_text(&mut rng, &vocab);
                let res = ix.add(id, &ns, &text);
                match model.entry(id) {
                    std::collections::btree_map::Entry::Occupied(_) => {
                        assert_eq!(res, Err(EngineError::DuplicateId { id }));
                    }
                    std::collections::btree_map::Entry::Vacant(v) => {
                        res.unwrap();
                        v.insert((ns, text));
                    }
                }
            } else if op < 95 {
                let keys: Vec<DocId> = model.keys().copied().collect();
                let id = *rng.pick(&keys);
                assert!(ix.remove(id));
                model.remove(&id);
            } else {
                let ns = rng.pick(&namespaces);
                let before = model.len();
                model.retain(|_, (n, _)| n != ns);
                assert_eq!(ix.remove_namespace(ns), before - model.len());
            }
            if step % 25 != 0 {
                continue;
            }
            // Rebuild from the model and compare: canonical bytes, and scores.
            let mut rebuilt = LexicalIndex::new();
            for (&id, (ns, text)) in &model {
                rebuilt.add(id, ns, text).unwrap();
            }
            assert_eq!(ix.len(), model.len());
            assert_eq!(
                ix.to_bytes(),
                rebuilt.to_bytes(),
                "seed {seed} step {step}: bytes differ"
            );
            for _ in 0..4 {
                let ns = rng.pick(&namespaces);
                let q = random_text(&mut rng, &vocab);
                let got = ix.query(ns, &q).scores_all();
                assert_eq!(
                    got,
                    rebuilt.query(ns, &q).scores_all(),
                    "seed {seed} step {step}"
                );
                let want = reference_scores(&model, ns, &q);
                assert_eq!(got.len(), want.len());
                for ((id, s), (wid, w)) in got.iter().zip(&want) {
                    assert_eq!(id, wid);
                    assert!(
                        (s - w).abs() <= 1e-9 * w.abs().max(1.0),
                        "seed {seed} step {step} doc {id}: {s} vs {w} for {q:?}"
                    );
                }
                let top = ix.query(ns, &q).top_k(5, Allow::All);
                let mut want_top: Vec<(DocId, f64)> = want
                    .iter()
                    .filter(|(id, _)| {
                        let t = tokenize(&model[id].1);
                        tokenize(&q).iter().any(|w| t.contains(w))
                    })
                    .map(|(&id, &s)| (id, s))
                    .collect();
                want_top.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                let top_ids: Vec<DocId> = top.iter().map(|h| h.id).collect();
                let want_ids: Vec<DocId> = want_top.iter().take(5).map(|x| x.0).collect();
                // Reference scores differ from the index's in the last bits only; compare
                // orders where the reference has no near-ties.
                let near_tie = want_top
                    .windows(2)
                    .take(6)
                    .any(|w| (w[0].1 - w[1].1).abs() < 1e-9);
                if !near_tie {
                    assert_eq!(top_ids, want_ids, "seed {seed} step {step} query {q:?}");
                }
            }
        }
    }
}

#[test]
fn serialisation_round_trip() {
    let mut ix = small();
    ix.add(77, "other ns ✓", "Unicode namespace names are fine")
        .unwrap();
    ix.add(78, "", "empty namespace name").unwrap();
    let bytes = ix.to_bytes();
    let back = LexicalIndex::from_bytes(&bytes).unwrap();
    assert_eq!(back.to_bytes(), bytes);
    assert_eq!(back.len(), ix.len());
    assert_eq!(back.params(), ix.params());
    for q in ["green apples", "red red cars", "unicode"] {
        for ns in ["x", "other ns ✓", ""] {
            assert_eq!(back.query(ns, q).scores_all(), ix.query(ns, q).scores_all());
        }
    }
    // Still incremental after loading.
    let mut back = back;
    back.add(5, "x", "fresh apples").unwrap();
    assert!(back.remove(0));
    let mut fresh = LexicalIndex::new();
    for (i, d) in DOCS.iter().enumerate().skip(1) {
        fresh.add(i as DocId, "x", d).unwrap();
    }
    fresh.add(5, "x", "fresh apples").unwrap();
    fresh
        .add(77, "other ns ✓", "Unicode namespace names are fine")
        .unwrap();
    fresh.add(78, "", "empty namespace name").unwrap();
    assert_eq!(back.to_bytes(), fresh.to_bytes());
    // Custom parameters travel with the index.
    let p = Bm25Params {
        k1: 1.2,
        b: 0.5,
        epsilon: 0.1,
    };
    let mut c = LexicalIndex::with_params(p).unwrap();
    c.add(1, "n", "a b c").unwrap();
    assert_eq!(LexicalIndex::from_bytes(&c.to_bytes()).unwrap().params(), p);
    assert!(LexicalIndex::with_params(Bm25Params { b: 1.5, ..p }).is_err());
    assert!(LexicalIndex::from_bytes(&LexicalIndex::new().to_bytes())
        .unwrap()
        .is_empty());
}

fn rewrap(original: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut magic = [0u8; 8];
    magic.copy_from_slice(&original[..8]);
    let version = u32::from_le_bytes(original[8..12].try_into().unwrap());
    let mut w = Writer::new();
    w.bytes(payload);
    w.finish(&magic, version)
}

#[test]
fn corrupted_bytes_give_typed_errors_never_panics() {
    let mut ix = small();
    ix.add(10, "y", "another namespace with words").unwrap();
    let good = ix.to_bytes();
    // Every truncation.
    for cut in 0..good.len() {
        let e = LexicalIndex::from_bytes(&good[..cut]).unwrap_err();
        assert!(matches!(e, EngineError::Corrupt { .. }), "cut {cut}: {e:?}");
    }
    // Trailing garbage, wrong magic, newer version.
    let mut longer = good.clone();
    longer.push(0);
    assert_eq!(
        LexicalIndex::from_bytes(&longer).unwrap_err().code(),
        "CORRUPT_DATA"
    );
    let mut magic = good.clone();
    magic[0] ^= 0x20;
    assert!(LexicalIndex::from_bytes(&magic).is_err());
    let mut newer = good.clone();
    newer[8..12].copy_from_slice(&99u32.to_le_bytes());
    assert_eq!(
        LexicalIndex::from_bytes(&newer).unwrap_err().code(),
        "UNSUPPORTED_VERSION"
    );
    // Single bit flips anywhere: the checksum (or the header checks) catch them.
    let mut rng = Rng::new(7);
    for _ in 0..2000 {
        let mut b = good.clone();
        let i = rng.below(b.len());
        b[i] ^= 1 << rng.below(8);
        assert!(
            LexicalIndex::from_bytes(&b).is_err(),
            "bit flip at {i} accepted"
        );
    }
    // Mutated payloads with a *valid* checksum exercise the decoder itself: every outcome is Ok
    // (and then re-serialises canonically) or a typed error.
    let payload = &good[HEADER_LEN..];
    assert_eq!(crc32(payload).to_le_bytes(), good[20..24]);
    let mut accepted = 0;
    for round in 0..20_000 {
        let mut p = payload.to_vec();
        match round % 4 {
            0 => {
                let i = rng.below(p.len());
                p[i] = rng.next_u64() as u8;
            }
            1 => {
                let i = rng.below(p.len());
                p.truncate(i);
            }
            2 => {
                // A huge declared length / count somewhere.
                let i = rng.below(p.len());
                let huge = [0xFF, 0xFF, 0xFF, 0xFF, 0x0F];
                p.splice(i..(i + 1).min(p.len()), huge);
            }
            _ => {
                let i = rng.below(p.len());
                let j = rng.below(p.len());
                p.swap(i, j);
            }
        }
        match LexicalIndex::from_bytes(&rewrap(&good, &p)) {
            Ok(ix2) => {
                accepted += 1;
                let again = ix2.to_bytes();
                assert_eq!(LexicalIndex::from_bytes(&again).unwrap().to_bytes(), again);
            }
            Err(e) => assert!(matches!(e, EngineError::Corrupt { .. }), "{e:?}"),
        }
    }
    // Some mutations (e.g. a changed tf) are valid indexes; most are not.
    assert!(accepted < 20_000);
    // Random garbage with a valid header.
    for len in [0usize, 1, 7, 100, 1000] {
        let p: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        let _ = LexicalIndex::from_bytes(&rewrap(&good, &p));
    }
}

#[test]
fn arbitrary_unicode_text_never_panics() {
    let mut rng = Rng::new(99);
    let mut ix = LexicalIndex::new();
    for id in 0..300u64 {
        let bytes: Vec<u8> = (0..rng.below(64)).map(|_| rng.next_u64() as u8).collect();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let cps: String = (0..rng.below(16))
            .filter_map(|_| char::from_u32(rng.below(0x11_0000) as u32))
            .collect();
        ix.add(id, "u", &format!("{text}{cps}")).unwrap();
        let _ = ix.query("u", &cps).top_k(5, Allow::All);
    }
    let back = LexicalIndex::from_bytes(&ix.to_bytes()).unwrap();
    assert_eq!(back.len(), 300);
}

#[test]
fn heavy_removal_compacts_and_still_equals_rebuild() {
    let mut ix = LexicalIndex::new();
    for id in 0..500u64 {
        ix.add(id, "n", &format!("doc {} word{} shared", id, id % 7))
            .unwrap();
    }
    for id in (0..500u64).filter(|id| id % 10 != 3) {
        assert!(ix.remove(id));
    }
    let mut rebuilt = LexicalIndex::new();
    for id in (0..500u64).filter(|id| id % 10 == 3) {
        rebuilt
            .add(id, "n", &format!("doc {} word{} shared", id, id % 7))
            .unwrap();
    }
    assert_eq!(ix.to_bytes(), rebuilt.to_bytes());
    for q in ["shared word3", "doc 13", "word0 word1 word2"] {
        assert_eq!(
            ix.query("n", q).top_k(20, Allow::All),
            rebuilt.query("n", q).top_k(20, Allow::All)
        );
    }
    assert_eq!(ix.stats().postings, rebuilt.stats().postings);
    // Adding after compaction keeps ids and scores right.
    ix.add(1000, "n", "shared late").unwrap();
    rebuilt.add(1000, "n", "shared late").unwrap();
    assert_eq!(
        ix.query("n", "late shared").scores_all(),
        rebuilt.query("n", "late shared").scores_all()
    );
}
