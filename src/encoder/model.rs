//! all-MiniLM-L6-v2 (a 6-layer BERT encoder) and its CPU reference forward pass.
//!
//! Per sequence of ids: embeddings (word + position + token type 0) → LayerNorm; then per layer
//! self-attention (12 heads of 32, softmax over the sequence's own tokens only: the key padding
//! mask), output projection, residual + LayerNorm, FFN (1536, exact erf GELU), residual +
//! LayerNorm; finally mean pooling over the sequence's tokens and L2 normalisation — the
//! sentence-transformers embedding.
//!
//! A batch is ragged: the sequences' tokens are packed row after row (no padding rows), so the
//! dense layers run as one GEMM over all tokens of the batch and attention and pooling see only
//! each sequence's own tokens — the same result as padding to the longest sequence with an
//! attention mask, without the padded work. Dense weights are repacked at load into column strips
//! of [`STRIP`] so that the GEMM's inner loop is a fixed-width multiply-add the compiler
//! vectorises (SSE/AVX natively, simd128 in wasm).

use super::safetensors::SafeTensors;
use super::EncoderError;

/// Width of the weight column strips of the CPU GEMM.
pub const STRIP: usize = 16;
/// Rows of activations the CPU GEMM's micro-kernel handles at once.
const ROWS: usize = 4;

/// The architecture's sizes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MiniLmConfig {
    /// Vocabulary size.
    pub vocab: usize,
    /// Hidden size (the embedding dimension).
    pub hidden: usize,
    /// Encoder layers.
    pub layers: usize,
    /// Attention heads (`hidden / heads` per head).
    pub heads: usize,
    /// FFN inner size.
    pub ffn: usize,
    /// Position embeddings (the longest sequence the model can take).
    pub max_positions: usize,
    /// LayerNorm epsilon.
    pub eps: f32,
}

impl MiniLmConfig {
    /// sentence-transformers/all-MiniLM-L6-v2.
    pub const ALL_MINILM_L6_V2: MiniLmConfig = MiniLmConfig {
        vocab: 30522,
        hidden: 384,
        layers: 6,
        heads: 12,
        ffn: 1536,
        max_positions: 512,
        eps: 1e-12,
    };
}

/// A dense layer `y = x Wᵀ + b`, `W` `[n, k]` as stored by PyTorch, repacked as `n/STRIP` strips
/// of `[k, STRIP]` (columns padded with zeros to a multiple of `STRIP`).
#[derive(Debug, Clone)]
pub struct Linear {
    /// Input features.
    pub k: usize,
    /// Output features.
    pub n: usize,
    /// The repacked weights.
    packed: Vec<f32>,
    /// The bias, `[n]`.
    pub bias: Vec<f32>,
}

impl Linear {
    /// Repacks `weight` (`[n, k]`, row-major) with `bias` (`[n]`).
    pub fn new(weight: Vec<f32>, bias: Vec<f32>, n: usize, k: usize) -> Linear {
        debug_assert_eq!(weight.len(), n * k);
        let strips = n.div_ceil(STRIP);
        let mut packed = vec![0.0; strips * k * STRIP];
        for col in 0..n {
            let (s, j) = (col / STRIP, col % STRIP);
            let dst = &mut packed[s * k * STRIP..(s + 1) * k * STRIP];
            for (kk, &w) in weight[col * k..(col + 1) * k].iter().enumerate() {
                dst[kk * STRIP + j] = w;
            }
        }
        Linear { k, n, packed, bias }
    }

    /// `W[col, kk]` (output feature `col`, input feature `kk`), read from the packed strips (the
    /// weights are held once, packed).
    pub fn at(&self, col: usize, kk: usize) -> f32 {
        self.packed[(col / STRIP) * self.k * STRIP + kk * STRIP + col % STRIP]
    }

    /// Output features `cols` of the weights as stored, `[cols.len(), k]` row-major.
    pub fn weight_rows(&self, cols: std::ops::Range<usize>) -> Vec<f32> {
        cols.flat_map(|c| (0..self.k).map(move |kk| self.at(c, kk)))
            .collect()
    }

    /// Output features `cols` of the weights transposed, `[k, cols.len()]` row-major.
    pub fn transposed_rows(&self, cols: std::ops::Range<usize>) -> Vec<f32> {
        (0..self.k)
            .flat_map(|kk| cols.clone().map(move |c| self.at(c, kk)))
            .collect()
    }

    /// The weights as stored, `[n, k]` row-major.
    pub fn weight(&self) -> Vec<f32> {
        self.weight_rows(0..self.n)
    }

    /// The weights transposed, `[k, n]` row-major.
    pub fn transposed(&self) -> Vec<f32> {
        self.transposed_rows(0..self.n)
    }

    /// `y[m, n] = x[m, k] · Wᵀ + b` for `m = x.len() / k` rows.
    pub fn forward(&self, x: &[f32]) -> Vec<f32> {
        let (k, n) = (self.k, self.n);
        let m = x.len() / k;
        let mut y = vec![0.0f32; m * n];
        for (s, strip) in self.packed.chunks_exact(k * STRIP).enumerate() {
            let c0 = s * STRIP;
            let width = STRIP.min(n - c0);
            let mut bias = [0.0f32; STRIP];
            bias[..width].copy_from_slice(&self.bias[c0..c0 + width]);
            let mut r0 = 0;
            while r0 < m {
                let rows = ROWS.min(m - r0);
                let mut acc = [bias; ROWS];
                if rows == ROWS {
                    let xs: [&[f32]; ROWS] =
                        std::array::from_fn(|r| &x[(r0 + r) * k..(r0 + r + 1) * k]);
                    for (kk, w) in strip.chunks_exact(STRIP).enumerate() {
                        let w: &[f32; STRIP] = w.try_into().unwrap();
                        for r in 0..ROWS {
                            let xv = xs[r][kk];
                            for j in 0..STRIP {
                                acc[r][j] += xv * w[j];
                            }
                        }
                    }
                } else {
                    for (r, a) in acc.iter_mut().enumerate().take(rows) {
                        let xr = &x[(r0 + r) * k..(r0 + r + 1) * k];
                        for (kk, w) in strip.chunks_exact(STRIP).enumerate() {
                            for j in 0..STRIP {
                                a[j] += xr[kk] * w[j];
                            }
                        }
                    }
                }
                for (r, a) in acc.iter().enumerate().take(rows) {
                    y[(r0 + r) * n + c0..(r0 + r) * n + c0 + width].copy_from_slice(&a[..width]);
                }
                r0 += rows;
            }
        }
        y
    }
}

/// One encoder layer's weights.
#[derive(Debug, Clone)]
pub struct Layer {
    /// Query, key and value projections fused: `[3 * hidden, hidden]` (q rows, then k, then v).
    pub qkv: Linear,
    /// Attention output projection.
    pub attn_out: Linear,
    /// LayerNorm after attention: (gamma, beta).
    pub ln1: (Vec<f32>, Vec<f32>),
    /// FFN up-projection (followed by GELU).
    pub ffn_in: Linear,
    /// FFN down-projection.
    pub ffn_out: Linear,
    /// LayerNorm after the FFN: (gamma, beta).
    pub ln2: (Vec<f32>, Vec<f32>),
}

/// The all-MiniLM-L6-v2 weights, ready for the CPU forward pass.
#[derive(Debug, Clone)]
pub struct MiniLm {
    /// The sizes.
    pub config: MiniLmConfig,
    /// Word embeddings `[vocab, hidden]`.
    pub word: Vec<f32>,
    /// Position embeddings `[max_positions, hidden]`.
    pub position: Vec<f32>,
    /// Token-type-0 embedding `[hidden]` (single-segment input).
    pub token_type: Vec<f32>,
    /// Embedding LayerNorm: (gamma, beta).
    pub emb_ln: (Vec<f32>, Vec<f32>),
    /// The encoder layers.
    pub layers: Vec<Layer>,
}

struct Loader<'a> {
    st: SafeTensors<'a>,
}

impl Loader<'_> {
    fn tensor(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, EncoderError> {
        let t = self
            .st
            .get(name)
            .ok_or_else(|| EncoderError::MissingTensor {
                name: name.to_string(),
            })?;
        let values = if t.shape == shape { t.to_f32() } else { None };
        values.ok_or_else(|| EncoderError::TensorMismatch {
            name: name.to_string(),
            expected: format!("F32/F16/BF16 {shape:?}"),
            got: format!("{} {:?}", t.dtype.name(), t.shape),
        })
    }

    fn linear(&self, prefix: &str, n: usize, k: usize) -> Result<Linear, EncoderError> {
        let w = self.tensor(&format!("{prefix}.weight"), &[n, k])?;
        let b = self.tensor(&format!("{prefix}.bias"), &[n])?;
        Ok(Linear::new(w, b, n, k))
    }

    fn ln(&self, prefix: &str, h: usize) -> Result<(Vec<f32>, Vec<f32>), EncoderError> {
        Ok((
            self.tensor(&format!("{prefix}.weight"), &[h])?,
            self.tensor(&format!("{prefix}.bias"), &[h])?,
        ))
    }
}

impl MiniLm {
    /// Loads the weights from a safetensors file with the Hugging Face `BertModel` tensor names
    /// (as in all-MiniLM-L6-v2's `model.safetensors`; F32, F16 or BF16).
    /// Every tensor is checked for presence, dtype and shape against `config`.
    pub fn from_safetensors(bytes: &[u8], config: MiniLmConfig) -> Result<MiniLm, EncoderError> {
        let l = Loader {
            st: SafeTensors::parse(bytes)?,
        };
        let (h, f) = (config.hidden, config.ffn);
        if config.heads == 0 || !h.is_multiple_of(config.heads) {
            return Err(EncoderError::TensorMismatch {
                name: "config".into(),
                expected: "hidden divisible by heads".into(),
                got: format!("hidden {h}, heads {}", config.heads),
            });
        }
        let word = l.tensor("embeddings.word_embeddings.weight", &[config.vocab, h])?;
        let position = l.tensor(
            "embeddings.position_embeddings.weight",
            &[config.max_positions, h],
        )?;
        let types = l.tensor("embeddings.token_type_embeddings.weight", &[2, h])?;
        let emb_ln = l.ln("embeddings.LayerNorm", h)?;
        let mut layers = Vec::with_capacity(config.layers);
        for i in 0..config.layers {
            let p = format!("encoder.layer.{i}");
            let mut w = Vec::with_capacity(3 * h * h);
            let mut b = Vec::with_capacity(3 * h);
            for part in ["query", "key", "value"] {
                w.extend(l.tensor(&format!("{p}.attention.self.{part}.weight"), &[h, h])?);
                b.extend(l.tensor(&format!("{p}.attention.self.{part}.bias"), &[h])?);
            }
            layers.push(Layer {
                qkv: Linear::new(w, b, 3 * h, h),
                attn_out: l.linear(&format!("{p}.attention.output.dense"), h, h)?,
                ln1: l.ln(&format!("{p}.attention.output.LayerNorm"), h)?,
                ffn_in: l.linear(&format!("{p}.intermediate.dense"), f, h)?,
                ffn_out: l.linear(&format!("{p}.output.dense"), h, f)?,
                ln2: l.ln(&format!("{p}.output.LayerNorm"), h)?,
            });
        }
        Ok(MiniLm {
            config,
            word,
            position,
            token_type: types[..h].to_vec(),
            emb_ln,
            layers,
        })
    }

    /// Checks a batch of id sequences: each non-empty, at most `max_positions` long, every id in
    /// the vocabulary.
    pub fn check_ids(&self, batch: &[Vec<u32>]) -> Result<(), EncoderError> {
        for (index, ids) in batch.iter().enumerate() {
            if ids.is_empty() || ids.len() > self.config.max_positions {
                return Err(EncoderError::BadInput {
                    index,
                    reason: format!(
                        "{} ids, expected 1..={}",
                        ids.len(),
                        self.config.max_positions
                    ),
                });
            }
            if let Some(&id) = ids.iter().find(|&&id| id as usize >= self.config.vocab) {
                return Err(EncoderError::BadInput {
                    index,
                    reason: format!("id {id} outside the vocabulary of {}", self.config.vocab),
                });
            }
        }
        Ok(())
    }

    /// The sentence embeddings of a batch of id sequences (each `[CLS] … [SEP]`, as from
    /// [`WordPiece::encode`](super::WordPiece::encode)) on the CPU: `[batch.len(), hidden]`,
    /// each row L2-normalised.
    pub fn embed_ids(&self, batch: &[Vec<u32>]) -> Result<Vec<f32>, EncoderError> {
        self.check_ids(batch)?;
        let h = self.config.hidden;
        let eps = self.config.eps;
        let lens: Vec<usize> = batch.iter().map(Vec::len).collect();
        // Embeddings, packed rows.
        let mut x = Vec::with_capacity(lens.iter().sum::<usize>() * h);
        for ids in batch {
            for (pos, &id) in ids.iter().enumerate() {
                let w = &self.word[id as usize * h..(id as usize + 1) * h];
                let p = &self.position[pos * h..(pos + 1) * h];
                x.extend((0..h).map(|i| w[i] + p[i] + self.token_type[i]));
            }
        }
        layer_norm(&mut x, &self.emb_ln.0, &self.emb_ln.1, eps);
        for layer in &self.layers {
            let qkv = layer.qkv.forward(&x);
            let ctx = attention(&qkv, &lens, h, self.config.heads);
            let mut a = layer.attn_out.forward(&ctx);
            add_assign(&mut a, &x);
            layer_norm(&mut a, &layer.ln1.0, &layer.ln1.1, eps);
            let mut up = layer.ffn_in.forward(&a);
            up.iter_mut().for_each(|v| *v = gelu(*v));
            let mut out = layer.ffn_out.forward(&up);
            add_assign(&mut out, &a);
            layer_norm(&mut out, &layer.ln2.0, &layer.ln2.1, eps);
            x = out;
        }
        Ok(mean_pool_normalize(&x, &lens, h))
    }
}

/// `a += b`, elementwise.
pub fn add_assign(a: &mut [f32], b: &[f32]) {
    a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
}

/// LayerNorm of each row of `x` (`gamma.len()` wide) in place: biased variance, `eps` inside the
/// square root.
pub fn layer_norm(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let h = gamma.len();
    for row in x.chunks_exact_mut(h) {
        let mean = row.iter().sum::<f32>() / h as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / h as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
            *v = (*v - mean) * inv * g + b;
        }
    }
}

/// The error function, |error| < 1.5e-7 (Abramowitz & Stegun 7.1.26); the WGSL kernel uses the
/// same formula.
pub fn erf(x: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    let y = 1.0 - poly * (-x * x).exp();
    y.copysign(x)
}

/// Exact GELU: `x · Φ(x) = ½ x (1 + erf(x / √2))`.
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// Multi-head self-attention over packed sequences: `qkv` rows are `[q | k | v]` (`3·h` wide),
/// each sequence (`lens`, consecutive rows) attends only to its own tokens. Returns the context
/// rows, `h` wide.
pub fn attention(qkv: &[f32], lens: &[usize], h: usize, heads: usize) -> Vec<f32> {
    let d = h / heads;
    let scale = 1.0 / (d as f32).sqrt();
    let rows = qkv.len() / (3 * h);
    let mut ctx = vec![0.0f32; rows * h];
    let mut scores = Vec::new();
    let mut start = 0;
    for &len in lens {
        for head in 0..heads {
            for i in 0..len {
                let q = &qkv[(start + i) * 3 * h + head * d..][..d];
                scores.clear();
                let mut max = f32::NEG_INFINITY;
                for j in 0..len {
                    let k = &qkv[(start + j) * 3 * h + h + head * d..][..d];
                    let s = q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>() * scale;
                    max = max.max(s);
                    scores.push(s);
                }
                let mut sum = 0.0;
                for s in scores.iter_mut() {
                    *s = (*s - max).exp();
                    sum += *s;
                }
                let out = &mut ctx[(start + i) * h + head * d..][..d];
                for (j, &p) in scores.iter().enumerate() {
                    let v = &qkv[(start + j) * 3 * h + 2 * h + head * d..][..d];
                    let p = p / sum;
                    out.iter_mut().zip(v).for_each(|(o, v)| *o += p * v);
                }
            }
        }
        start += len;
    }
    ctx
}

/// Mean of each sequence's rows (`lens`, consecutive), then L2 normalisation: `[lens.len(), h]`.
pub fn mean_pool_normalize(x: &[f32], lens: &[usize], h: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; lens.len() * h];
    let mut start = 0;
    for (b, &len) in lens.iter().enumerate() {
        let o = &mut out[b * h..(b + 1) * h];
        for row in x[start * h..(start + len) * h].chunks_exact(h) {
            add_assign(o, row);
        }
        let norm = o.iter().map(|v| v * v).sum::<f32>().sqrt();
        let norm = if norm > 0.0 { norm } else { 1.0 };
        o.iter_mut().for_each(|v| *v /= norm);
        start += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn linear_matches_naive() {
        let mut rng = Rng::new(3);
        for &(m, n, k) in &[(1, 1, 1), (5, 17, 3), (9, 48, 37), (4, 16, 16), (3, 33, 70)] {
            let w = rng.vec_f32(n * k);
            let b = rng.vec_f32(n);
            let x = rng.vec_f32(m * k);
            let lin = Linear::new(w.clone(), b.clone(), n, k);
            assert_eq!(lin.weight(), w, "the weights read back from the strips");
            let t = lin.transposed();
            assert!(
                (0..n * k).all(|i| t[(i % k) * n + i / k] == w[i]),
                "transposed"
            );
            let got = lin.forward(&x);
            let want: Vec<f32> = (0..m * n)
                .map(|i| {
                    let (r, c) = (i / n, i % n);
                    b[c] + (0..k).map(|j| x[r * k + j] * w[c * k + j]).sum::<f32>()
                })
                .collect();
            crate::testing::assert_close("linear", &got, &want, 1e-5, 1e-5);
        }
    }

    #[test]
    fn erf_and_gelu_reference_values() {
        for &(x, want) in &[
            (0.0f32, 0.0f32),
            (0.5, 0.520_499_9),
            (1.0, 0.842_700_8),
            (-2.0, -0.995_322_3),
            (3.5, 0.999_999_3),
        ] {
            assert!((erf(x) - want).abs() < 3e-7, "erf({x}) = {}", erf(x));
        }
        assert!((gelu(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((gelu(-1.0) + 0.158_655_3).abs() < 1e-6);
    }

    #[test]
    fn attention_masks_other_sequences() {
        // Two sequences packed: the first one's context must not change when the second does.
        let (h, heads) = (8, 2);
        let mut rng = Rng::new(5);
        let a = rng.vec_f32(3 * 3 * h);
        let b1 = rng.vec_f32(2 * 3 * h);
        let b2 = rng.vec_f32(2 * 3 * h);
        let one = attention(&[a.clone(), b1].concat(), &[3, 2], h, heads);
        let two = attention(&[a.clone(), b2].concat(), &[3, 2], h, heads);
        assert_eq!(one[..3 * h], two[..3 * h]);
        assert_eq!(one[..3 * h], attention(&a, &[3], h, heads)[..]);
    }
}
