//! Native LoCoMo retrieval evaluation of the retrieval core (`make eval-native`).
//!
//! Loads `$MNEMO_EVAL_DIR/locomo` (default `../shared/eval` next to the crate), one namespace per
//! conversation, asks every question against its own conversation and prints any@k / all@k / MRR
//! tables for vector-only, lexical-only, the default fusion and fusion + fading context (plus the
//! built-in hashed-ngrams embedder), beside the README's baselines. With `--tune` it also prints
//! the leave-one-conversation-out cross-validation used to choose the default weights.

/// The runner needs files and the native clock; on wasm32 `make eval` drives the engine instead.
#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    native::main();
}

#[cfg(not(target_arch = "wasm32"))]
mod native {

    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::time::Instant;

    use mnemo::engine::eval::{
        leave_one_group_out, max_abs_diff, metrics, outcome, rank_scores, rrf, standard_subsets,
        table, Fold, Metrics, Outcome, Row,
    };
    use mnemo::engine::fading::{decay_for_half_life, FadingConfig, FadingMode, FadingState};
    use mnemo::engine::fusion::{fuse, Candidate, FusionConfig, LexicalNorm, VectorNorm, Weights};
    use mnemo::engine::locomo::{parse_baselines, Indexed, Locomo};
    use mnemo::engine::recall::{dot_f64, recall, Corpus, RecallRequest};
    use mnemo::engine::recency::{Recency, DAY_MS};
    use mnemo::engine::{DocId, HashedNgrams};

    fn eval_dir() -> PathBuf {
        match std::env::var_os("MNEMO_EVAL_DIR") {
            Some(d) => PathBuf::from(d),
            None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/eval"),
        }
    }

    /// Raw evidence of every turn of a question's conversation.
    struct QueryData {
        conv: u32,
        category: u8,
        evidence: Vec<DocId>,
        now_ms: f64,
        /// (id, cosine MiniLM, bm25 or None, time)
        cands: Vec<Candidate>,
    }

    fn candidates(
        corpus: &dyn Corpus,
        lexical: &mnemo::engine::LexicalIndex,
        ns: &str,
        qvec: &[f32],
        text: &str,
    ) -> Vec<Candidate> {
        let q = lexical.query(ns, text);
        (0..corpus.len())
            .map(|r| {
                let id = corpus.id(r);
                Candidate {
                    id,
                    cosine: Some(dot_f64(qvec, corpus.embedding(r))),
                    bm25: q.score(id),
                    time_ms: corpus.time_ms(r),
                    importance: corpus.importance(r),
                }
            })
            .collect()
    }

    fn fused_ranking(cands: &[Candidate], cfg: &FusionConfig) -> Vec<DocId> {
        fuse(cands, cfg)
            .expect("valid fusion config")
            .into_iter()
            .map(|h| h.id)
            .collect()
    }

    fn with_cos(cands: &[Candidate], cos: &[f64]) -> Vec<Candidate> {
        cands
            .iter()
            .zip(cos)
            .map(|(c, &x)| Candidate {
                cosine: Some(x),
                ..*c
            })
            .collect()
    }

    struct Method {
        name: String,
        outcomes: Vec<Outcome>,
    }

    fn rows_for(methods: &[&Method], qs: &[QueryData]) -> Vec<Row> {
        let mut rows = Vec::new();
        for s in standard_subsets() {
            for m in methods {
                let sel = m
                    .outcomes
                    .iter()
                    .zip(qs)
                    .filter(|(_, q)| s.contains(q.category))
                    .map(|(o, _)| o);
                rows.push(Row {
                    subset: s.name.clone(),
                    method: m.name.clone(),
                    metrics: metrics(sel),
                });
            }
        }
        rows
    }

    fn subset_metrics(m: &Method, qs: &[QueryData], cats: &[u8], conv: Option<u32>) -> Metrics {
        metrics(
            m.outcomes
                .iter()
                .zip(qs)
                .filter(|(_, q)| cats.contains(&q.category) && conv.is_none_or(|c| q.conv == c))
                .map(|(o, _)| o),
        )
    }

    pub fn main() {
        let tune = std::env::args().any(|a| a == "--tune");
        let embed = std::env::args().any(|a| a == "--embed-tune");
        let dir = eval_dir().join("locomo");
        if !dir.join("turns.jsonl").exists() {
            eprintln!(
                "eval-native: no LoCoMo data at {} (set MNEMO_EVAL_DIR); nothing to evaluate",
                dir.display()
            );
            std::process::exit(2);
        }
        let t0 = Instant::now();
        let data = Locomo::load_dir(&dir).expect("LoCoMo data parses");
        let baselines = std::fs::read_to_string(dir.join("baseline_results.json"))
            .ok()
            .and_then(|j| parse_baselines(&j).ok())
            .unwrap_or_default();
        if embed {
            embed_tune(&data);
            return;
        }
        let idx: Indexed = data
            .index(&data.turn_vectors, data.dims)
            .expect("index builds");
        let hasher = HashedNgrams::new(data.dims).expect("embedder");
        let texts: Vec<&str> = data.turns.iter().map(|t| t.embed_text.as_str()).collect();
        let hashed_turns = hasher.embed_batch(&texts);
        let hashed_idx = data.index(&hashed_turns, data.dims).expect("index builds");
        println!(
        "LoCoMo at {}: {} turns, {} questions, {} conversations, dims {} (loaded and indexed in {:.0} ms)",
        dir.display(),
        data.turns.len(),
        data.questions.len(),
        data.conversations().len(),
        data.dims,
        t0.elapsed().as_secs_f64() * 1e3
    );

        // Raw evidence per question, over its whole conversation.
        let qs: Vec<QueryData> = data
            .questions
            .iter()
            .enumerate()
            .map(|(qi, q)| {
                let ns = data.namespace(q.conv);
                let corpus = &idx.corpora[&q.conv];
                let cands = candidates(
                    corpus,
                    &idx.lexical,
                    ns,
                    data.question_vector(qi),
                    &q.question,
                );
                QueryData {
                    conv: q.conv,
                    category: q.category,
                    evidence: q.evidence.clone(),
                    now_ms: data.end_time_ms(q.conv) as f64,
                    cands,
                }
            })
            .collect();

        let run = |name: &str, rank: &dyn Fn(&QueryData) -> Vec<DocId>| Method {
            name: name.to_string(),
            outcomes: qs.iter().map(|q| outcome(&rank(q), &q.evidence)).collect(),
        };
        let cfg = |q: &QueryData, w: Weights| FusionConfig {
            weights: w,
            ..FusionConfig::new(q.now_ms)
        };
        let cos_rank = |q: &QueryData| {
            rank_scores(
                &q.cands
                    .iter()
                    .map(|c| (c.id, c.cosine.unwrap()))
                    .collect::<Vec<_>>(),
            )
        };
        let bm25_rank = |q: &QueryData| {
            rank_scores(
                &q.cands
                    .iter()
                    .map(|c| (c.id, c.bm25.unwrap_or(0.0)))
                    .collect::<Vec<_>>(),
            )
        };
        // The table's rows go through the recall pipeline (library code shared with wasm):
        // k = every turn, so MRR sees full rankings.
        let lib = |name: &str, ix: &Indexed, qv: &[f32], w: Weights, ctx| Method {
            name: name.to_string(),
            outcomes: data
                .outcomes(
                    ix,
                    qv,
                    FusionConfig {
                        weights: w,
                        ..FusionConfig::new(0.0)
                    },
                    ctx,
                )
                .expect("recall runs"),
        };
        let vector = lib(
            "vector-only",
            &idx,
            &data.question_vectors,
            Weights::VECTOR,
            None,
        );
        let lexical = lib(
            "lexical-only",
            &idx,
            &data.question_vectors,
            Weights::LEXICAL,
            None,
        );
        let rrf_m = run("hybrid RRF (reproduced)", &|q| {
            rrf(&[&cos_rank(q), &bm25_rank(q)], 60.0)
        });
        let default = lib(
            "default fusion",
            &idx,
            &data.question_vectors,
            Weights::DEFAULT,
            None,
        );
        // Fading context: the state after every turn of the conversation (the questions are
        // asked after the conversation), default mode / decay / mix.
        let fading = FadingConfig::default();
        let states = data
            .final_states(&idx, fading.mode, fading.decay)
            .expect("states build");
        let with_context = lib(
            "fusion + fading context",
            &idx,
            &data.question_vectors,
            Weights::DEFAULT,
            Some((&states, fading.mix)),
        );
        let hashed_q = hasher.embed_batch(
            &data
                .questions
                .iter()
                .map(|q| q.question.as_str())
                .collect::<Vec<_>>(),
        );
        let hashed_vec = lib(
            "hashed-ngrams vector-only",
            &hashed_idx,
            &hashed_q,
            Weights::VECTOR,
            None,
        );
        let hashed_fusion = lib(
            "hashed-ngrams + BM25 fusion",
            &hashed_idx,
            &hashed_q,
            Weights::DEFAULT,
            None,
        );
        // The same rankings from fusing every turn directly must agree.
        let direct = run("direct", &|q| {
            fused_ranking(&q.cands, &cfg(q, Weights::DEFAULT))
        });
        let agree = direct.outcomes == default.outcomes;
        let qvecs: Vec<&[f32]> = (0..data.questions.len())
            .map(|i| data.question_vector(i))
            .collect();

        // The engine's path: recall() with k = 20 and the default candidate depth must give the
        // same top 20 as fusing every turn.
        let mut same = 0;
        for (qi, q) in data.questions.iter().enumerate() {
            let corpus = &idx.corpora[&q.conv];
            let mut req = RecallRequest::new(20, data.end_time_ms(q.conv) as f64);
            req.embedding = Some(data.question_vector(qi));
            req.text = Some(&q.question);
            let hits = recall(corpus, &idx.lexical, data.namespace(q.conv), &req).unwrap();
            let got: Vec<DocId> = hits.iter().map(|h| h.id).collect();
            let full = fused_ranking(&qs[qi].cands, &cfg(&qs[qi], Weights::DEFAULT));
            if got[..] == full[..got.len().min(20)] {
                same += 1;
            }
        }

        if let Some(path) = std::env::args().skip_while(|a| a != "--dump").nth(1) {
            let mut out = String::new();
            for m in [&vector, &lexical, &rrf_m] {
                for (qi, o) in m.outcomes.iter().enumerate() {
                    out.push_str(&format!(
                        "{{\"q\": {qi}, \"method\": \"{}\", \"first\": {}, \"last\": {}}}\n",
                        m.name,
                        o.first.unwrap_or(0),
                        o.last.unwrap_or(0)
                    ));
                }
            }
            std::fs::write(&path, out).expect("write dump");
            println!("per-question first/last ranks written to {path}");
        }
        let ours = [
            &vector,
            &lexical,
            &rrf_m,
            &default,
            &with_context,
            &hashed_vec,
            &hashed_fusion,
        ];
        let mut rows = Vec::new();
        for r in rows_for(&ours, &qs) {
            for (method, label) in [
                ("cosine", "baseline: cosine"),
                ("bm25", "baseline: bm25"),
                ("hybrid_rrf", "baseline: hybrid_rrf"),
            ] {
                if r.method == "vector-only" {
                    if let Some(b) = baselines.get(&(r.subset.clone(), method.to_string())) {
                        rows.push(Row {
                            subset: r.subset.clone(),
                            method: label.into(),
                            metrics: *b,
                        });
                    }
                }
            }
            rows.push(r);
        }
        println!(
            "\n## LoCoMo dev (conversations 0-4), every question against its own conversation\n"
        );
        println!("{}", table(&rows));
        println!(
        "default fusion = {:?}, vector {:?} / lexical {:?}, recency half-life {} days; fading context = {:?}",
        Weights::DEFAULT,
        FusionConfig::new(0.0).vector_norm,
        FusionConfig::new(0.0).lexical_norm,
        Recency::default().half_life_ms / DAY_MS,
        fading
    );

        // Reproduction checks against the README's baselines.
        let check = |m: &Method, base: &str| {
            let worst = standard_subsets()
                .iter()
                .filter_map(|s| {
                    let b = baselines.get(&(s.name.clone(), base.to_string()))?;
                    Some(max_abs_diff(
                        &subset_metrics(m, &qs, &s.categories, None),
                        b,
                    ))
                })
                .fold(0.0, f64::max);
            println!(
                "check: {:<24} vs baseline {:<10} max |diff| over every subset and metric = {:.4}",
                m.name, base, worst
            );
        };
        if baselines.is_empty() {
            println!("(no baseline_results.json: no reproduction check)");
        } else {
            check(&vector, "cosine");
            check(&lexical, "bm25");
            check(&rrf_m, "hybrid_rrf");
        }
        println!(
        "check: recall() with k = 20 and the default candidate depth returns the full fusion's top 20 for {same}/{} questions; recall(k = all) outcomes equal direct fusion of every turn: {agree}",
        data.questions.len()
    );
        let c14 = [1, 2, 3, 4];
        println!(
            "any@10 cat 1-4: default fusion {:.3} vs hybrid RRF {:.3} (baseline 0.642)",
            subset_metrics(&default, &qs, &c14, None).any_at(10),
            subset_metrics(&rrf_m, &qs, &c14, None).any_at(10)
        );

        if tune {
            tune_report(&data, &qs, &idx, &rrf_m, &qvecs);
        }
    }

    fn tune_report(
        data: &Locomo,
        qs: &[QueryData],
        idx: &Indexed,
        rrf_m: &Method,
        qvecs: &[&[f32]],
    ) {
        let c14 = [1u8, 2, 3, 4];
        let include: Vec<bool> = qs.iter().map(|q| c14.contains(&q.category)).collect();
        let group: Vec<u32> = qs.iter().map(|q| q.conv).collect();
        let convs = data.conversations();
        let objective = |m: &Metrics| m.any_at(10);

        let norms: Vec<(&str, VectorNorm, LexicalNorm)> = vec![
            (
                "max-scaled cos + max-scaled bm25",
                VectorNorm::MaxScaled,
                LexicalNorm::MaxScaled,
            ),
            (
                "raw cos + max-scaled bm25",
                VectorNorm::Clamped,
                LexicalNorm::MaxScaled,
            ),
            ("min-max + min-max", VectorNorm::MinMax, LexicalNorm::MinMax),
            (
                "max-scaled cos + saturating bm25 (c=10)",
                VectorNorm::MaxScaled,
                LexicalNorm::Saturating(10.0),
            ),
            (
                "rank + rank (c=60, weighted RRF)",
                VectorNorm::Rank(60.0),
                LexicalNorm::Rank(60.0),
            ),
        ];
        let alphas: Vec<f64> = (0..=20).map(|i| i as f64 / 20.0).collect();
        println!(
        "\n## Tuning: leave-one-conversation-out cross-validation (objective any@10, cat 1-4)\n"
    );
        let mut all_configs: Vec<(String, Vec<Outcome>)> = Vec::new();
        for (name, vn, ln) in &norms {
            let mut outcomes = Vec::new();
            let mut line = String::new();
            for &a in &alphas {
                let o: Vec<Outcome> = qs
                    .iter()
                    .map(|q| {
                        let cfg = FusionConfig {
                            weights: Weights {
                                vector: a,
                                lexical: 1.0 - a,
                                recency: 0.0,
                                importance: 0.0,
                            },
                            vector_norm: *vn,
                            lexical_norm: *ln,
                            ..FusionConfig::new(q.now_ms)
                        };
                        outcome(&fused_ranking(&q.cands, &cfg), &q.evidence)
                    })
                    .collect();
                let m = metrics(o.iter().zip(&include).filter(|(_, &i)| i).map(|(o, _)| o));
                line.push_str(&format!(" {a:.2}:{:.3}/{:.3}", m.any_at(10), m.mrr));
                all_configs.push((format!("{name}, vector weight {a:.2}"), o.clone()));
                outcomes.push(o);
            }
            println!("{name}: vector weight: any@10/mrr (all 5 convs, cat 1-4)\n {line}");
            let folds = leave_one_group_out(&outcomes, &group, &include, objective);
            print_folds(
                &folds,
                |c| format!("vector weight {:.2}", alphas[c]),
                rrf_m,
                qs,
                &convs,
            );
        }
        println!("\nJoint choice over every normalisation and weight:");
        let outs: Vec<Vec<Outcome>> = all_configs.iter().map(|(_, o)| o.clone()).collect();
        let folds = leave_one_group_out(&outs, &group, &include, objective);
        print_folds(&folds, |c| all_configs[c].0.clone(), rrf_m, qs, &convs);

        // Recency on top of the default.
        println!("\nRecency (default vector/lexical weights, half-life in days, recency weight):");
        let mut rec_out = Vec::new();
        let mut labels = Vec::new();
        for &w in &[0.0, 0.02, 0.05, 0.1, 0.2] {
            for &hl in &[7.0, 30.0, 90.0, 365.0] {
                if w == 0.0 && hl != 30.0 {
                    continue;
                }
                let o: Vec<Outcome> = qs
                    .iter()
                    .map(|q| {
                        let cfg = FusionConfig {
                            weights: Weights {
                                recency: w,
                                ..Weights::DEFAULT
                            },
                            recency: Recency {
                                half_life_ms: hl * DAY_MS,
                            },
                            ..FusionConfig::new(q.now_ms)
                        };
                        outcome(&fused_ranking(&q.cands, &cfg), &q.evidence)
                    })
                    .collect();
                let m = metrics(o.iter().zip(&include).filter(|(_, &i)| i).map(|(o, _)| o));
                println!(
                    "  recency weight {w:.2}, half-life {hl:>5} d: any@10 {:.3}, mrr {:.3}",
                    m.any_at(10),
                    m.mrr
                );
                labels.push(format!("recency weight {w:.2}, half-life {hl} d"));
                rec_out.push(o);
            }
        }
        let folds = leave_one_group_out(&rec_out, &group, &include, objective);
        print_folds(&folds, |c| labels[c].clone(), rrf_m, qs, &convs);

        // Fading context on top of the default.
        println!("\nFading context (state after all turns of the conversation; mode, half-life in turns, mix):");
        let mut f_out = vec![qs
            .iter()
            .map(|q| {
                outcome(
                    &fused_ranking(&q.cands, &FusionConfig::new(q.now_ms)),
                    &q.evidence,
                )
            })
            .collect::<Vec<_>>()];
        let mut f_labels = vec!["off".to_string()];
        for mode in [FadingMode::Centroid, FadingMode::Associative] {
            for &hl in &[4.0f32, 16.0, 64.0, 1e9] {
                let states: BTreeMap<u32, FadingState> = idx
                    .corpora
                    .iter()
                    .map(|(&c, corpus)| {
                        let mut st =
                            FadingState::new(data.dims, mode, decay_for_half_life(hl)).unwrap();
                        for r in 0..corpus.len() {
                            st.update(corpus.embedding(r)).unwrap();
                        }
                        (c, st)
                    })
                    .collect();
                for &mix in &[0.1f32, 0.25, 0.5] {
                    let o: Vec<Outcome> = qs
                        .iter()
                        .enumerate()
                        .map(|(qi, q)| {
                            let mq = states[&q.conv].mix_query(qvecs[qi], mix).unwrap();
                            let corpus = &idx.corpora[&q.conv];
                            let cos: Vec<f64> = (0..corpus.len())
                                .map(|r| dot_f64(&mq, corpus.embedding(r)))
                                .collect();
                            outcome(
                                &fused_ranking(
                                    &with_cos(&q.cands, &cos),
                                    &FusionConfig::new(q.now_ms),
                                ),
                                &q.evidence,
                            )
                        })
                        .collect();
                    let m = metrics(o.iter().zip(&include).filter(|(_, &i)| i).map(|(o, _)| o));
                    println!(
                        "  {mode:?}, half-life {hl} turns, mix {mix}: any@10 {:.3}, mrr {:.3}",
                        m.any_at(10),
                        m.mrr
                    );
                    f_labels.push(format!("{mode:?} hl {hl} mix {mix}"));
                    f_out.push(o);
                }
            }
        }
        let folds = leave_one_group_out(&f_out, &group, &include, objective);
        print_folds(&folds, |c| f_labels[c].clone(), rrf_m, qs, &convs);
    }

    fn print_folds(
        folds: &[Fold],
        label: impl Fn(usize) -> String,
        rrf_m: &Method,
        qs: &[QueryData],
        _convs: &[u32],
    ) {
        let c14 = [1u8, 2, 3, 4];
        let mut deltas = Vec::new();
        for f in folds {
            let r = subset_metrics(rrf_m, qs, &c14, Some(f.held_out));
            let d = f.test.any_at(10) - r.any_at(10);
            deltas.push(d);
            println!(
            "  held out conv {}: chose [{}] (train any@10 {:.3}); held-out any@10 {:.3} (RRF {:.3}, {:+.3}), mrr {:.3} (RRF {:.3}), n = {}",
            f.held_out,
            label(f.chosen),
            f.train_objective,
            f.test.any_at(10),
            r.any_at(10),
            d,
            f.test.mrr,
            r.mrr,
            f.test.n
        );
        }
        let n: usize = folds.iter().map(|f| f.test.n).sum();
        let pooled: f64 = folds
            .iter()
            .map(|f| f.test.any_at(10) * f.test.n as f64)
            .sum::<f64>()
            / n as f64;
        let mean = deltas.iter().sum::<f64>() / deltas.len() as f64;
        let sd = (deltas.iter().map(|d| (d - mean).powi(2)).sum::<f64>()
            / (deltas.len() - 1).max(1) as f64)
            .sqrt();
        println!(
        "  => pooled held-out any@10 {pooled:.3}; per-fold gain over RRF mean {mean:+.3}, sd {sd:.3}, min {:+.3}, max {:+.3}",
        deltas.iter().cloned().fold(f64::INFINITY, f64::min),
        deltas.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
    );
    }

    /// `--embed-tune`: variants of the hashed-ngrams embedder, vector-only, cat 1-4.
    #[allow(dead_code)]
    fn embed_tune(data: &Locomo) {
        use mnemo::engine::embed::NgramConfig;
        let texts: Vec<&str> = data.turns.iter().map(|t| t.embed_text.as_str()).collect();
        let d = NgramConfig::default();
        let variants: Vec<(&str, NgramConfig)> = vec![
            ("default", d),
            (
                "no stop-word skipping",
                NgramConfig {
                    skip_stop_words: false,
                    ..d
                },
            ),
            (
                "sublinear tf",
                NgramConfig {
                    sublinear: true,
                    ..d
                },
            ),
            (
                "words only",
                NgramConfig {
                    bigram: 0.0,
                    chars: 0.0,
                    ..d
                },
            ),
            ("words + bigrams", NgramConfig { chars: 0.0, ..d }),
            (
                "words + chars 0.5",
                NgramConfig {
                    bigram: 0.0,
                    chars: 0.5,
                    ..d
                },
            ),
            ("words + chars 1", NgramConfig { bigram: 0.0, ..d }),
            (
                "words + chars 2",
                NgramConfig {
                    bigram: 0.0,
                    chars: 2.0,
                    ..d
                },
            ),
            ("chars 3-4", NgramConfig { char_max: 4, ..d }),
        ];
        for dims in [384usize, 1024] {
            for (name, cfg) in &variants {
                let e = HashedNgrams::with_config(dims, *cfg).unwrap();
                let tv = e.embed_batch(&texts);
                let o: Vec<Outcome> = data
                    .questions
                    .iter()
                    .filter(|q| q.category != 5)
                    .map(|q| {
                        let qv = e.embed(&q.question);
                        let sc: Vec<(DocId, f64)> = data
                            .turn_ids(q.conv)
                            .into_iter()
                            .map(|id| {
                                (
                                    id,
                                    dot_f64(&qv, &tv[id as usize * dims..(id as usize + 1) * dims]),
                                )
                            })
                            .collect();
                        outcome(&rank_scores(&sc), &q.evidence)
                    })
                    .collect();
                let m = metrics(&o);
                println!(
                    "  dims {dims:>4} {name:<24} any@10 {:.3} mrr {:.3}",
                    m.any_at(10),
                    m.mrr
                );
            }
        }
    }
}
