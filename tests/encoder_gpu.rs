//! The text encoder's GPU kernels on lavapipe against the CPU reference: the dense layer (with
//! and without the GELU epilogue) and LayerNorm (with and without the fused residual) on seeded
//! shapes that are not multiples of the workgroup tiles, typed errors before any launch, and the
//! whole model against sentence-transformers when the weights (`make setup`) and the reference
//! data (`$MNEMO_EVAL_DIR/minilm`) are there. A missing adapter is a failure.
#![cfg(not(target_arch = "wasm32"))]

use std::sync::OnceLock;

use mnemo::encoder::gpu::{attention_v4_gpu, layer_norm_gpu, linear_gpu, linear_v4_gpu};
use mnemo::encoder::model::{gelu, layer_norm, Linear};
use mnemo::rng::Rng;
use mnemo::testing::assert_close;
use mnemo::Compute;

fn gpu() -> &'static Compute {
    static GPU: OnceLock<Compute> = OnceLock::new();
    GPU.get_or_init(|| pollster::block_on(mnemo::testing::require_gpu()))
}

#[test]
fn linear_matches_cpu_on_seeded_shapes() {
    let ctx = gpu().gpu_context().unwrap();
    let mut rng = Rng::new(11);
    for &(m, n, k) in &[
        (1, 1, 1),
        (7, 65, 17),
        (70, 130, 385),
        (33, 384, 384),
        (5, 1536, 384),
        (1, 1, 3),
        (17, 257, 6),
        (16, 256, 384),
        (45, 300, 385),
    ] {
        for gelu_on in [false, true] {
            let w = rng.vec_f32(n * k);
            let b = rng.vec_f32(n);
            let x = rng.vec_f32(m * k);
            let mut want = Linear::new(w.clone(), b.clone(), n, k).forward(&x);
            if gelu_on {
                want.iter_mut().for_each(|v| *v = gelu(*v));
            }
            let got = pollster::block_on(linear_gpu(ctx, &x, &w, &b, m, n, k, gelu_on)).unwrap();
            assert_close(
                &format!("linear m={m} n={n} k={k} gelu={gelu_on}"),
                &got,
                &want,
                1e-4,
                1e-4,
            );
            let got = pollster::block_on(linear_v4_gpu(ctx, &x, &w, &b, m, n, k, gelu_on)).unwrap();
            assert_close(
                &format!("linear_v4 m={m} n={n} k={k} gelu={gelu_on}"),
                &got,
                &want,
                1e-4,
                1e-4,
            );
        }
    }
}

/// Masked self-attention of a padded batch, straight from the definition (f64 accumulation).
fn attention_reference(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    lens: &[usize],
    l: usize,
    heads: usize,
) -> Vec<f32> {
    const D: usize = 32;
    let w = heads * D;
    let mut out = vec![0.0f32; q.len()];
    for (b, &len) in lens.iter().enumerate() {
        for h in 0..heads {
            for i in 0..l {
                let qi = (b * l + i) * w + h * D;
                let s: Vec<f64> = (0..len)
                    .map(|j| {
                        let kj = (b * l + j) * w + h * D;
                        (0..D)
                            .map(|t| q[qi + t] as f64 * k[kj + t] as f64)
                            .sum::<f64>()
                            / (D as f64).sqrt()
                    })
                    .collect();
                let mx = s.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = s.iter().map(|x| (x - mx).exp()).collect();
                let z: f64 = e.iter().sum();
                for t in 0..D {
                    let acc: f64 = (0..len)
                        .map(|j| e[j] * v[(b * l + j) * w + h * D + t] as f64)
                        .sum();
                    out[qi + t] = (acc / z) as f32;
                }
            }
        }
    }
    out
}

#[test]
fn attention_v4_matches_cpu_on_seeded_shapes() {
    let ctx = gpu().gpu_context().unwrap();
    let mut rng = Rng::new(14);
    for (lens, l, heads) in [
        (vec![1], 1, 1),
        (vec![5, 17, 1], 17, 3),
        (vec![40, 33], 40, 12),
    ] {
        let n = lens.len() * l * heads * 32;
        let (q, k, v) = (rng.vec_f32(n), rng.vec_f32(n), rng.vec_f32(n));
        let want = attention_reference(&q, &k, &v, &lens, l, heads);
        let got = pollster::block_on(attention_v4_gpu(ctx, &q, &k, &v, &lens, l, heads)).unwrap();
        assert_close(
            &format!("attention_v4 lens={lens:?} l={l} heads={heads}"),
            &got,
            &want,
            1e-4,
            1e-4,
        );
    }
    let e = pollster::block_on(attention_v4_gpu(
        ctx,
        &[0.0; 64],
        &[0.0; 64],
        &[0.0; 64],
        &[3],
        2,
        1,
    ))
    .unwrap_err();
    assert_eq!(e.code(), "INVALID_INPUT", "{e}");
    let e = pollster::block_on(attention_v4_gpu(
        ctx,
        &[0.0; 63],
        &[0.0; 64],
        &[0.0; 64],
        &[2],
        2,
        1,
    ))
    .unwrap_err();
    assert_eq!(e.code(), "SHAPE_MISMATCH", "{e}");
}

#[test]
fn layer_norm_matches_cpu_on_seeded_shapes() {
    let ctx = gpu().gpu_context().unwrap();
    let mut rng = Rng::new(12);
    for &(rows, h) in &[(1, 1), (3, 37), (70, 384), (5, 1000)] {
        let x: Vec<f32> = (0..rows * h).map(|_| rng.normal() * 3.0 + 1.0).collect();
        let r = rng.vec_f32(rows * h);
        let g = rng.vec_f32(h);
        let b = rng.vec_f32(h);
        for residual in [None, Some(&r[..])] {
            let mut want: Vec<f32> = match residual {
                Some(r) => x.iter().zip(r).map(|(a, b)| a + b).collect(),
                None => x.clone(),
            };
            layer_norm(&mut want, &g, &b, 1e-12);
            let got = pollster::block_on(layer_norm_gpu(ctx, &x, residual, &g, &b, 1e-12)).unwrap();
            assert_close(
                &format!(
                    "layernorm rows={rows} h={h} residual={}",
                    residual.is_some()
                ),
                &got,
                &want,
                1e-4,
                1e-4,
            );
        }
    }
}

#[test]
fn bad_shapes_are_typed_errors() {
    let ctx = gpu().gpu_context().unwrap();
    let e = pollster::block_on(linear_gpu(
        ctx, &[1.0; 5], &[1.0; 6], &[0.0; 2], 2, 2, 3, false,
    ))
    .unwrap_err();
    assert_eq!(e.code(), "SHAPE_MISMATCH", "{e}");
    let e = pollster::block_on(linear_gpu(ctx, &[], &[], &[], 0, 1, 1, false)).unwrap_err();
    assert_eq!(e.code(), "INVALID_INPUT", "{e}");
    let e = pollster::block_on(linear_v4_gpu(
        ctx, &[1.0; 6], &[1.0; 8], &[0.0; 3], 2, 3, 3, false,
    ))
    .unwrap_err();
    assert_eq!(e.code(), "SHAPE_MISMATCH", "{e}");
    let e = pollster::block_on(linear_v4_gpu(ctx, &[], &[], &[], 0, 3, 3, false)).unwrap_err();
    assert_eq!(e.code(), "INVALID_INPUT", "{e}");
    let e = pollster::block_on(layer_norm_gpu(
        ctx, &[1.0; 5], None, &[1.0; 2], &[0.0; 2], 1e-5,
    ))
    .unwrap_err();
    assert_eq!(e.code(), "SHAPE_MISMATCH", "{e}");
    let e = pollster::block_on(layer_norm_gpu(
        ctx, &[1.0; 4], None, &[1.0; 2], &[0.0; 2], 0.0,
    ))
    .unwrap_err();
    assert_eq!(e.code(), "INVALID_INPUT", "{e}");
}

fn minilm_file(name: &str) -> Vec<u8> {
    let dir = std::env::var_os("MNEMO_MINILM_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/minilm")
        });
    let p = dir.join(name);
    std::fs::read(&p).unwrap_or_else(|e| {
        panic!(
            "all-MiniLM-L6-v2 weights missing: {} ({e}). Run `make setup` (it fetches them into \
             .cache/minilm) or set MNEMO_MINILM_DIR.",
            p.display()
        )
    })
}

/// The whole model on the GPU: cosine ≥ 0.999 with sentence-transformers for every one of the
/// 231 reference texts, through `TextEncoder::embed` (sorted by length, length-aware batches of up
/// to 32, each padded to its longest text).
#[test]
fn gpu_embeddings_match_sentence_transformers() {
    use mnemo::encoder::TextEncoder;
    const D: usize = 384;
    let ctx = gpu().gpu_context().unwrap();
    let vocab = String::from_utf8(minilm_file("vocab.txt")).unwrap();
    let enc = TextEncoder::all_minilm_l6_v2(&vocab, &minilm_file("model.safetensors")).unwrap();
    let dir = std::env::var_os("MNEMO_EVAL_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/eval")
        })
        .join("minilm");
    let Ok(lines) = std::fs::read_to_string(dir.join("sentences.jsonl")) else {
        println!(
            "MiniLM reference data not found at {} (set MNEMO_EVAL_DIR): nothing to check",
            dir.display()
        );
        return;
    };
    let texts: Vec<String> = lines
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["text"].as_str().unwrap().to_string()
        })
        .collect();
    let want: Vec<f32> = std::fs::read(dir.join("embeddings.f32"))
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(want.len(), texts.len() * D);
    let order: Vec<usize> = (0..texts.len()).collect();
    let subset: Vec<&str> = order.iter().map(|&i| texts[i].as_str()).collect();
    let t = std::time::Instant::now();
    // TextEncoder::embed on the GPU: length-aware batches, each padded to its longest text.
    let out = pollster::block_on(enc.embed(gpu(), &subset)).unwrap();
    let secs = t.elapsed().as_secs_f64();
    let mut worst = (f32::INFINITY, 0);
    let mut failures = Vec::new();
    for (j, &i) in order.iter().enumerate() {
        let (g, w) = (&out[j * D..(j + 1) * D], &want[i * D..(i + 1) * D]);
        let cos: f32 = g.iter().zip(w).map(|(a, b)| a * b).sum();
        if cos < worst.0 {
            worst = (cos, i);
        }
        if cos < 0.999 {
            failures.push(format!("text {i} {:?}: cosine {cos}", texts[i]));
        }
    }
    println!(
        "gpu ({}): min cosine {:.6} (text {}) over {} texts ({} tokens) in {:.2} s",
        ctx.adapter_info().name,
        worst.0,
        worst.1,
        order.len(),
        subset
            .iter()
            .map(|t| enc.tokenizer.encode(t).len())
            .sum::<usize>(),
        secs,
    );
    assert!(
        failures.is_empty(),
        "cosine < 0.999:\n{}",
        failures.join("\n")
    );
}

/// Speed of one dense layer (960 × 1536 × 384: a batch of 32 texts of 30 tokens through the FFN's
/// first projection) on both kernels and the CPU reference, with upload and readback; printed,
/// never asserted. `cargo test --test encoder_gpu dense_layer_speed -- --ignored --nocapture`.
#[test]
#[ignore]
fn dense_layer_speed() {
    let ctx = gpu().gpu_context().unwrap();
    let (m, n, k) = (960, 1536, 384);
    let mut rng = Rng::new(13);
    let w = rng.vec_f32(n * k);
    let b = rng.vec_f32(n);
    let x = rng.vec_f32(m * k);
    let lin = Linear::new(w.clone(), b.clone(), n, k);
    let macs = (m * n * k) as f64;
    let median = |f: &mut dyn FnMut() -> Vec<f32>| {
        let want = lin.forward(&x);
        let mut times = Vec::new();
        for rep in 0..4 {
            let t = std::time::Instant::now();
            let got = f();
            if rep > 0 {
                times.push(t.elapsed().as_secs_f64());
            }
            assert_close("dense layer", &got, &want, 1e-4, 1e-4);
        }
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    };
    let cpu = median(&mut || lin.forward(&x));
    let tiled =
        median(&mut || pollster::block_on(linear_gpu(ctx, &x, &w, &b, m, n, k, false)).unwrap());
    let v4 =
        median(&mut || pollster::block_on(linear_v4_gpu(ctx, &x, &w, &b, m, n, k, false)).unwrap());
    println!(
        "dense {m} x {n} x {k} on {} (median of 3):",
        ctx.adapter_info().name
    );
    for (name, s) in [
        ("CPU reference", cpu),
        ("linear (tiled)", tiled),
        ("linear_v4", v4),
    ] {
        println!(
            "  {name:<15} {s:.3} s  {:.2} G multiply-adds/s",
            macs / s / 1e9
        );
    }
}
