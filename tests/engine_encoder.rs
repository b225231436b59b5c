//! The MiniLM text encoder as the engine's embedder, natively on the in-memory store backend:
//! text-only remember / rememberMany / recall / update embed through it, `Mnemo::embed` equals
//! the encoder's own output and the reference embeddings of `$MNEMO_EVAL_DIR/minilm` (default
//! `../shared/eval/minilm`), `dims` other than 384 is a typed error, and the GPU path (lavapipe)
//! runs when asked for and agrees with the CPU path.
//!
//! The weights come from `make setup` (`.cache/minilm`, or `$MNEMO_MINILM_DIR`): without them
//! these tests FAIL, naming `make setup`. Without the reference data the reference check says so
//! loudly and checks nothing else.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::rc::Rc;

use mnemo::encoder::TextEncoder;
use mnemo::engine::fusion::Weights;
use mnemo::engine::mnemo::{EmbedderKind, EncoderPath, Memory, Mnemo, MnemoOptions, RecallQuery};
use mnemo::store::testing::{Factory, MemoryFactory};
use mnemo::store::Patch;
use mnemo::{Backend, Compute};

const D: usize = 384;

fn encoder() -> Rc<TextEncoder> {
    let vocab = String::from_utf8(common::weights_file("vocab.txt")).expect("vocab.txt is UTF-8");
    Rc::new(
        TextEncoder::all_minilm_l6_v2(&vocab, &common::weights_file("model.safetensors")).unwrap(),
    )
}

fn opts(encoder: &Rc<TextEncoder>, path: EncoderPath) -> MnemoOptions {
    MnemoOptions {
        embedder: EmbedderKind::Encoder {
            encoder: encoder.clone(),
            path,
        },
        ..Default::default()
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// The reference texts and embeddings, or `None` (said loudly) when the data is absent.
fn reference() -> Option<(Vec<String>, Vec<f32>)> {
    let dir = common::eval_dir(
        "minilm",
        "engine_encoder (the reference parity of Mnemo::embed)",
        &["sentences.jsonl"],
    )?;
    let lines = std::fs::read_to_string(dir.join("sentences.jsonl")).unwrap();
    let texts = lines
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["text"].as_str().unwrap().to_string()
        })
        .collect();
    let bytes = std::fs::read(dir.join("embeddings.f32")).unwrap();
    Some((texts, bytemuck::pod_collect_to_vec(&bytes)))
}

const NOTES: [&str; 5] = [
    "My dog Rex is a golden retriever who loves the beach",
    "I work night shifts as a nurse at the children's hospital",
    "We are planning a trip to Kyoto in April to see the cherry blossoms",
    "I'm allergic to peanuts, so never suggest satay",
    "My sister Ana just started learning the cello",
];

#[test]
fn encoder_embedder_on_the_cpu_path() {
    let enc = encoder();
    pollster::block_on(async {
        let f = MemoryFactory::default();
        let m = Mnemo::open(
            f.fresh("enc-cpu").await,
            Compute::cpu(),
            opts(&enc, EncoderPath::Auto),
        )
        .await
        .expect("open with the encoder (dims defaults to 384)");
        assert_eq!(m.dims(), D);
        let info = m.embedder().expect("an embedder");
        assert_eq!(info.name, "all-MiniLM-L6-v2");
        assert_eq!(info.backend, Backend::Cpu);
        assert_eq!(m.weights(), Weights::DEFAULT);

        // embed() is the encoder's output, bit for bit.
        let texts: Vec<&str> = NOTES.to_vec();
        let got = m.embed(&texts).await.unwrap();
        let want = enc.embed(&Compute::cpu(), &texts).await.unwrap();
        assert_eq!(got.concat(), want);
        assert!(m.embed(&[]).await.unwrap().is_empty());
        let long = "x".repeat(70_000);
        let e = m.embed(&[long.as_str()]).await.unwrap_err();
        assert_eq!((e.code(), e.field()), ("INVALID_INPUT", Some("texts[0]")));

        // Text-only rememberMany / remember embed through the encoder (one batch).
        let items: Vec<Memory> = NOTES[..4].iter().map(|t| Memory::new("me", *t)).collect();
        let ids = m.remember_many(items).await.unwrap();
        let id5 = m.remember(Memory::new("me", NOTES[4])).await.unwrap();
        let stored = m.store().get_many(&ids).await.unwrap();
        for (i, ep) in stored.iter().enumerate() {
            let ep = ep.as_ref().expect("stored");
            assert_eq!(ep.embedding, got[i], "stored embedding of note {i}");
        }
        // A paraphrase with no word in common: found by the vector part alone.
        let vector_only = Weights {
            vector: 1.0,
            lexical: 0.0,
            recency: 0.0,
            importance: 0.0,
        };
        for (q, want) in [
            ("What breed is my pet?", ids[0]),
            ("Which food must I avoid?", ids[3]),
            ("Who plays a string instrument?", id5),
        ] {
            let hits = m
                .recall(&RecallQuery {
                    text: Some(q.into()),
                    k: 2,
                    weights: Some(vector_only),
                    ..Default::default()
                })
                .await
                .unwrap();
            println!(
                "  {q:?} -> {:?} (vector {:.3})",
                hits[0].payload.as_ref().unwrap().text,
                hits[0].parts.vector
            );
            assert_eq!(hits[0].id, want, "{q}");
        }
        // Default weights, text-only: both parts take part.
        let hits = m
            .recall(&RecallQuery {
                text: Some("Am I allergic to anything?".into()),
                k: 1,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(hits[0].id, ids[3]);
        assert!(hits[0].parts.vector > 0.0 && hits[0].parts.lexical > 0.0);
        // update(text) re-embeds.
        m.update(
            ids[1],
            Patch {
                text: Some("I adopted a grey cat named Miso".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let ep = m.store().get(ids[1]).await.unwrap().unwrap();
        let want = m.embed(&["I adopted a grey cat named Miso"]).await.unwrap();
        assert_eq!(ep.embedding, want[0]);
        m.close().await.unwrap();
    });
}

#[test]
fn encoder_embedder_matches_the_reference() {
    let enc = encoder();
    let Some((texts, reference)) = reference() else {
        return;
    };
    pollster::block_on(async {
        let f = MemoryFactory::default();
        let m = Mnemo::open(
            f.fresh("enc-ref").await,
            Compute::cpu(),
            opts(&enc, EncoderPath::Cpu),
        )
        .await
        .unwrap();
        // The 31 edge cases and the first 10 LoCoMo turns (all 231: `encoder_parity`).
        let t: Vec<&str> = texts.iter().take(41).map(String::as_str).collect();
        let got = m.embed(&t).await.unwrap();
        let mut min = f64::INFINITY;
        for (i, v) in got.iter().enumerate() {
            let c = cosine(v, &reference[i * D..(i + 1) * D]);
            assert!(c >= 0.999, "text {i} {:?}: cosine {c}", texts[i]);
            min = min.min(c);
        }
        println!(
            "Mnemo::embed (CPU path) vs sentence-transformers: min cosine {min:.6} over {} texts",
            got.len()
        );
    });
}

#[test]
fn encoder_embedder_needs_384_dims() {
    let enc = encoder();
    pollster::block_on(async {
        let f = MemoryFactory::default();
        let e = Mnemo::open(
            f.fresh("enc-dims").await,
            Compute::cpu(),
            MnemoOptions {
                dims: Some(256),
                ..opts(&enc, EncoderPath::Cpu)
            },
        )
        .await
        .err()
        .expect("dims 256 with the encoder is an error");
        assert_eq!((e.code(), e.field()), ("DIMENSION_MISMATCH", Some("dims")));
        // An existing store of another dimension.
        let b = f.fresh("enc-dims-8").await;
        drop(
            Mnemo::open(
                b,
                Compute::cpu(),
                MnemoOptions {
                    dims: Some(8),
                    ..Default::default()
                },
            )
            .await
            .unwrap(),
        );
        let b = f.connect("enc-dims-8").await.unwrap();
        let e = Mnemo::open(b, Compute::cpu(), opts(&enc, EncoderPath::Cpu))
            .await
            .err()
            .expect("an 8-dims store with the encoder is an error");
        assert_eq!(e.code(), "DIMENSION_MISMATCH");
        // No embedder: embed() is NO_EMBEDDER.
        let m = Mnemo::open(
            f.fresh("enc-none").await,
            Compute::cpu(),
            MnemoOptions {
                dims: Some(D),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(m.embed(&["x"]).await.unwrap_err().code(), "NO_EMBEDDER");
    });
}

#[test]
fn encoder_embedder_on_the_gpu_path() {
    let enc = encoder();
    pollster::block_on(async {
        let gpu = mnemo::testing::require_gpu().await;
        let software = gpu.adapter_info().is_some_and(|a| a.device_type == "cpu");
        let f = MemoryFactory::default();
        // Auto: the GPU only on a hardware adapter.
        let m = Mnemo::open(
            f.fresh("enc-auto").await,
            gpu.clone(),
            opts(&enc, EncoderPath::Auto),
        )
        .await
        .unwrap();
        let want = if software { Backend::Cpu } else { Backend::Gpu };
        assert_eq!(m.embedder().unwrap().backend, want);
        drop(m);
        let m = Mnemo::open(
            f.fresh("enc-gpu").await,
            gpu.clone(),
            opts(&enc, EncoderPath::Gpu),
        )
        .await
        .unwrap();
        assert_eq!(m.embedder().unwrap().backend, Backend::Gpu);
        let texts = &NOTES[..3];
        let got = m.embed(texts).await.unwrap();
        let cpu = enc.embed(&Compute::cpu(), texts).await.unwrap();
        let mut min = f64::INFINITY;
        for (i, v) in got.iter().enumerate() {
            min = min.min(cosine(v, &cpu[i * D..(i + 1) * D]));
        }
        println!("engine encoder on the GPU vs the CPU path: min cosine {min:.7} over 3 texts");
        assert!(min >= 0.99999, "GPU vs CPU cosine {min}");
        // Text-only remember + recall on the GPU path.
        let ids = m
            .remember_many(texts.iter().map(|t| Memory::new("g", *t)).collect())
            .await
            .unwrap();
        let hits = m
            .recall(&RecallQuery {
                text: Some("What breed is my pet?".into()),
                k: 1,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(hits[0].id, ids[0]);
    });
}
