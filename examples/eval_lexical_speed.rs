//! Speed and size of the BM25 index (`make eval-native` runs it after the retrieval tables):
//! build (incremental adds), serialise, load, query top-10, add and remove, on the LoCoMo turns
//! (if present) and on a synthetic corpus of 100,000 short documents. Prints medians and p95;
//! numbers, not assertions. Run it in release mode: `cargo run --release --example eval_lexical_speed`.

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

    use mnemo::engine::eval::synthetic_texts;
    use mnemo::engine::lexical::{Allow, LexicalIndex};
    use mnemo::engine::locomo::Locomo;
    use mnemo::rng::Rng;

    fn ms(t: Instant) -> f64 {
        t.elapsed().as_secs_f64() * 1e3
    }

    fn percentile(v: &mut [f64], p: f64) -> f64 {
        v.sort_by(f64::total_cmp);
        v[((v.len() as f64 - 1.0) * p).round() as usize]
    }

    /// Build from `(namespace, text)`, then time serialisation, loading and `queries`.
    fn report(name: &str, docs: &[(String, String)], queries: &[(String, String)]) {
        let t = Instant::now();
        let mut ix = LexicalIndex::new();
        for (i, (ns, text)) in docs.iter().enumerate() {
            ix.add(i as u64, ns, text).unwrap();
        }
        let build = ms(t);
        let st = ix.stats();
        // Serialise and load: median of a few repetitions (single shots are noisy here).
        let reps = if docs.len() > 10_000 { 5 } else { 21 };
        let mut bytes = Vec::new();
        let mut sers: Vec<f64> = (0..reps)
            .map(|_| {
                let t = Instant::now();
                bytes = ix.to_bytes();
                ms(t)
            })
            .collect();
        let mut loads: Vec<f64> = (0..reps)
            .map(|_| {
                let t = Instant::now();
                let back = LexicalIndex::from_bytes(&bytes).unwrap();
                let dt = ms(t);
                assert_eq!(back.len(), ix.len());
                dt
            })
            .collect();
        let (ser, load) = (percentile(&mut sers, 0.5), percentile(&mut loads, 0.5));
        // Warm-up, then one timed pass over the queries.
        for (ns, q) in queries.iter().take(20) {
            std::hint::black_box(ix.query(ns, q).top_k(10, Allow::All));
        }
        let mut lat: Vec<f64> = queries
            .iter()
            .map(|(ns, q)| {
                let t = Instant::now();
                std::hint::black_box(ix.query(ns, q).top_k(10, Allow::All));
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        let (p50, p95) = (percentile(&mut lat, 0.5), percentile(&mut lat, 0.95));
        // Incremental maintenance on the built index: remove then re-add 1,000 documents.
        let n = docs.len().min(1000);
        let t = Instant::now();
        for i in 0..n {
            ix.remove(i as u64);
        }
        let remove = ms(t) * 1e3 / n as f64;
        let t = Instant::now();
        for (i, (ns, text)) in docs.iter().enumerate().take(n) {
            ix.add(i as u64, ns, text).unwrap();
        }
        let add = ms(t) * 1e3 / n as f64;
        println!("{name}:");
        println!(
            "  {} docs, {} namespaces, {} terms, {} postings, {} tokens",
            st.docs, st.namespaces, st.terms, st.postings, st.tokens
        );
        println!(
            "  build (incremental adds) {build:.1} ms = {:.0} docs/s; heap ~{:.1} MB",
            st.docs as f64 / build * 1e3,
            st.heap_bytes as f64 / 1e6
        );
        println!(
            "  serialised {} bytes ({:.1} bytes/doc); to_bytes {ser:.1} ms, from_bytes {load:.1} ms (medians of {reps})",
            bytes.len(),
            bytes.len() as f64 / st.docs as f64
        );
        println!(
            "  query top-10 over {} queries: median {p50:.1} us, p95 {p95:.1} us",
            queries.len()
        );
        println!("  on the built index: remove {remove:.1} us/doc, add {add:.1} us/doc");
    }

    pub fn main() {
        let dir = std::env::var_os("MNEMO_EVAL_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/eval"))
            .join("locomo");
        println!(
            "BM25 index speed and size (single thread, this machine; numbers, not assertions)"
        );
        match Locomo::load_dir(&dir) {
            Ok(data) => {
                let docs: Vec<(String, String)> = data
                    .turns
                    .iter()
                    .map(|t| (t.sample_id.clone(), t.embed_text.clone()))
                    .collect();
                let queries: Vec<(String, String)> = data
                    .questions
                    .iter()
                    .map(|q| (data.namespace(q.conv).to_string(), q.question.clone()))
                    .collect();
                report(
                    "LoCoMo dev turns (5 namespaces), its 996 questions",
                    &docs,
                    &queries,
                );
            }
            Err(e) => println!("LoCoMo: not available ({e}); skipped"),
        }
        let texts = synthetic_texts(42, 100_000, 30_000);
        let docs: Vec<(String, String)> = texts
            .iter()
            .map(|t| ("synthetic".to_string(), t.clone()))
            .collect();
        let mut rng = Rng::new(7);
        let queries: Vec<(String, String)> = (0..1000)
            .map(|_| {
                let t = &texts[rng.below(texts.len())];
                let words: Vec<&str> = t.split(' ').collect();
                let k = 3 + rng.below(6);
                let q: Vec<&str> = (0..k).map(|_| *rng.pick(&words)).collect();
                ("synthetic".to_string(), q.join(" "))
            })
            .collect();
        report(
            "synthetic: 100,000 docs of 5-45 Zipf(1) tokens over 30,000 words, 1 namespace, 1,000 queries of 3-8 tokens",
            &docs,
            &queries,
        );
    }
}
