//! How the engine's default weights for the built-in `'hashed-ngrams'` embedder were chosen
//! (`mnemo::engine::mnemo::HASHED_WEIGHTS`): on the LoCoMo dev conversations, with every turn and
//! question embedded by `HashedNgrams` at 384 dims, fuse max-scaled cosine and max-scaled BM25
//! with vector weight 0, 0.05, ..., 1 (lexical = 1 − vector, importance 0.05 on a constant
//! importance, recency 0) and pick the vector weight by leave-one-conversation-out
//! cross-validation on any@10 (categories 1-4), as the retrieval core's default was picked.
//!
//! `cargo run --release --example eval_hashed_weights` (needs `$MNEMO_EVAL_DIR/locomo`,
//! default `../shared/eval`; says so and exits 0 without it).

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    use std::path::PathBuf;

    use mnemo::engine::eval::{leave_one_group_out, metrics, Outcome};
    use mnemo::engine::fusion::{FusionConfig, Weights};
    use mnemo::engine::locomo::Locomo;
    use mnemo::engine::HashedNgrams;

    let dir = std::env::var_os("MNEMO_EVAL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/eval"))
        .join("locomo");
    if !dir.join("turns.jsonl").exists() {
        println!("no LoCoMo data at {}: nothing to do", dir.display());
        return;
    }
    let data = Locomo::load_dir(&dir).expect("LoCoMo data");
    let dims = 384;
    let h = HashedNgrams::new(dims).expect("embedder");
    let texts: Vec<&str> = data.turns.iter().map(|t| t.embed_text.as_str()).collect();
    let turns = h.embed_batch(&texts);
    let qtexts: Vec<&str> = data.questions.iter().map(|q| q.question.as_str()).collect();
    let qv = h.embed_batch(&qtexts);
    let idx = data.index(&turns, dims).expect("index");
    let include: Vec<bool> = data.questions.iter().map(|q| q.category <= 4).collect();
    let group: Vec<u32> = data.questions.iter().map(|q| q.conv).collect();
    let alphas: Vec<f64> = (0..=20).map(|i| i as f64 * 0.05).collect();
    let mut outcomes: Vec<Vec<Outcome>> = Vec::new();
    println!("hashed-ngrams (384 dims) + BM25, max-scaled fusion, LoCoMo dev, categories 1-4:");
    println!("| vector weight | any@1 | any@5 | any@10 | any@20 | mrr |\n|---:|---:|---:|---:|---:|---:|");
    for &a in &alphas {
        let cfg = FusionConfig {
            weights: Weights {
                vector: a,
                lexical: 1.0 - a,
                recency: 0.0,
                importance: 0.05,
            },
            ..FusionConfig::new(0.0)
        };
        let o = data.outcomes(&idx, &qv, cfg, None).expect("outcomes");
        let m = metrics(o.iter().zip(&include).filter(|(_, i)| **i).map(|(o, _)| o));
        println!(
            "| {a:.2} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
            m.any_at(1),
            m.any_at(5),
            m.any_at(10),
            m.any_at(20),
            m.mrr
        );
        outcomes.push(o);
    }
    let folds = leave_one_group_out(&outcomes, &group, &include, |m| m.any_at(10));
    println!("\nLeave-one-conversation-out (objective any@10):");
    let mut pooled: Vec<&Outcome> = Vec::new();
    for f in &folds {
        println!(
            "  held out conv {}: chose vector weight {:.2} (train any@10 {:.3}), held-out any@10 {:.3} (n = {})",
            f.held_out,
            alphas[f.chosen],
            f.train_objective,
            f.test.any_at(10),
            f.test.n
        );
        pooled.extend(
            outcomes[f.chosen]
                .iter()
                .enumerate()
                .filter(|(q, _)| include[*q] && group[*q] == f.held_out)
                .map(|(_, o)| o),
        );
    }
    let m = metrics(pooled);
    println!(
        "  pooled held-out any@10 {:.3}, mrr {:.3}",
        m.any_at(10),
        m.mrr
    );
}
