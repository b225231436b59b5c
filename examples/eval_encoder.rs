//! LoCoMo re-embedded by mnemo's own text encoder (`make eval-encoder`; CPU path, release build).
//!
//! Embeds every turn (`embed_text`) and every question of `$MNEMO_EVAL_DIR/locomo` (default
//! `../shared/eval`) with `mnemo::encoder::TextEncoder` (weights from `.cache/minilm` or
//! `$MNEMO_MINILM_DIR`, `make setup`), compares the vectors with the stored sentence-transformers
//! ones (cosine), ranks every question's conversation by cosine through the retrieval core
//! (vector-only, the same pipeline as `make eval-native`), and checks that every metric of every
//! subset is within 0.005 of the README's `cosine` baseline. Exits 1 if not, 2 without the data.

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    native::main();
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::path::PathBuf;
    use std::time::Instant;

    use mnemo::encoder::TextEncoder;
    use mnemo::engine::eval::{max_abs_diff, metrics, standard_subsets, table, Row};
    use mnemo::engine::fusion::{FusionConfig, Weights};
    use mnemo::engine::locomo::{parse_baselines, Locomo};
    use mnemo::Compute;

    const TOLERANCE: f64 = 0.005;

    fn eval_dir() -> PathBuf {
        std::env::var_os("MNEMO_EVAL_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/eval"))
    }

    fn minilm(name: &str) -> Vec<u8> {
        let dir = std::env::var_os("MNEMO_MINILM_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/minilm"));
        let p = dir.join(name);
        std::fs::read(&p).unwrap_or_else(|e| {
            eprintln!(
                "eval-encoder: {} missing ({e}): run `make setup` (or set MNEMO_MINILM_DIR)",
                p.display()
            );
            std::process::exit(1);
        })
    }

    fn embed(enc: &TextEncoder, texts: &[&str], what: &str) -> Vec<f32> {
        let t0 = Instant::now();
        let v = pollster::block_on(enc.embed(&Compute::cpu(), texts)).expect("embedding runs");
        let s = t0.elapsed().as_secs_f64();
        let tokens: usize = texts.iter().map(|t| enc.tokenizer.encode(t).len()).sum();
        println!(
            "embedded {} {what} ({tokens} tokens) in {s:.1} s: {:.1} texts/s, {:.0} tokens/s (CPU path, batches of 32 sorted by length)",
            texts.len(),
            texts.len() as f64 / s,
            tokens as f64 / s
        );
        v
    }

    fn cosine_stats(a: &[f32], b: &[f32], d: usize) -> (f64, f64) {
        let (mut min, mut sum, mut n) = (f64::INFINITY, 0.0, 0usize);
        for (x, y) in a.chunks_exact(d).zip(b.chunks_exact(d)) {
            let dot: f64 = x.iter().zip(y).map(|(p, q)| *p as f64 * *q as f64).sum();
            let nx: f64 = x.iter().map(|p| (*p as f64).powi(2)).sum::<f64>().sqrt();
            let ny: f64 = y.iter().map(|p| (*p as f64).powi(2)).sum::<f64>().sqrt();
            let c = dot / (nx * ny);
            min = min.min(c);
            sum += c;
            n += 1;
        }
        (min, sum / n.max(1) as f64)
    }

    pub fn main() {
        let dir = eval_dir().join("locomo");
        if !dir.join("turns.jsonl").exists() {
            eprintln!(
                "eval-encoder: no LoCoMo data at {} (set MNEMO_EVAL_DIR); NOTHING CHECKED",
                dir.display()
            );
            std::process::exit(2);
        }
        let mut data = Locomo::load_dir(&dir).expect("LoCoMo data parses");
        let baselines = std::fs::read_to_string(dir.join("baseline_results.json"))
            .ok()
            .and_then(|j| parse_baselines(&j).ok())
            .unwrap_or_default();
        let vocab = String::from_utf8(minilm("vocab.txt")).expect("vocab.txt is UTF-8");
        let t0 = Instant::now();
        let enc = TextEncoder::all_minilm_l6_v2(&vocab, &minilm("model.safetensors"))
            .expect("weights load");
        println!(
            "all-MiniLM-L6-v2 loaded in {:.0} ms",
            t0.elapsed().as_secs_f64() * 1e3
        );
        let d = enc.dims();
        assert_eq!(d, data.dims, "the stored vectors are {}-d", data.dims);
        let turns: Vec<&str> = data.turns.iter().map(|t| t.embed_text.as_str()).collect();
        let questions: Vec<&str> = data.questions.iter().map(|q| q.question.as_str()).collect();
        let tv = embed(&enc, &turns, "turns");
        let qv = embed(&enc, &questions, "questions");
        let (tmin, tmean) = cosine_stats(&tv, &data.turn_vectors, d);
        let (qmin, qmean) = cosine_stats(&qv, &data.question_vectors, d);
        println!(
            "vs the stored sentence-transformers vectors: turns min cosine {tmin:.6} (mean {tmean:.7}), questions min {qmin:.6} (mean {qmean:.7})"
        );
        data.turn_vectors = tv;
        data.question_vectors = qv;
        let idx = data.index(&data.turn_vectors, d).expect("index builds");
        let outcomes = data
            .outcomes(
                &idx,
                &data.question_vectors,
                FusionConfig {
                    weights: Weights::VECTOR,
                    ..FusionConfig::new(0.0)
                },
                None,
            )
            .expect("recall runs");
        let mut rows = Vec::new();
        let mut worst: f64 = 0.0;
        for s in standard_subsets() {
            let m = metrics(
                outcomes
                    .iter()
                    .zip(&data.questions)
                    .filter(|(_, q)| s.contains(q.category))
                    .map(|(o, _)| o),
            );
            if let Some(b) = baselines.get(&(s.name.clone(), "cosine".to_string())) {
                worst = worst.max(max_abs_diff(&m, b));
                rows.push(Row {
                    subset: s.name.clone(),
                    method: "baseline: cosine".into(),
                    metrics: *b,
                });
            }
            rows.push(Row {
                subset: s.name.clone(),
                method: "vector-only, mnemo encoder".into(),
                metrics: m,
            });
        }
        println!("\n{}", table(&rows));
        if baselines.is_empty() {
            println!("no baseline_results.json: NOTHING CHECKED");
            std::process::exit(2);
        }
        let ok = worst <= TOLERANCE;
        println!(
            "check: vector-only with mnemo's embeddings vs baseline cosine, max |diff| over every subset and metric = {worst:.4} (limit {TOLERANCE}): {}",
            if ok { "ok" } else { "FAILED" }
        );
        if !ok {
            std::process::exit(1);
        }
    }
}
