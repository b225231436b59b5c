//! CPU references of the attention kernels: the test oracle and the fallback path.
//!
//! Plain two-pass softmax per (query, head) row: scores, their maximum, `exp(s - max)`, the
//! weighted sum of values divided by the sum of weights. Rows that see no key are zeros.
//!
//! The block-sparse selection is computed here in **exact integer arithmetic** (see
//! [`sparse_select_cpu`]), and the GPU computes the very same integers, so both paths always
//! pick the same blocks: no last-bit difference in a float score can change the selection.

use super::{check, check_sparse, AttentionArgs, AttentionShape, SparseParams};
use crate::kernels::cpu::dot;
use crate::kernels::KernelError;

/// Empty slot in a selection (fewer candidate blocks than `top_blocks`).
pub const NO_BLOCK: u32 = u32::MAX;

/// Attention over the keys `keys` (ascending or not) for one (query row, head): writes
/// `out` (`head_dim` values), zeros when `keys` is empty.
#[allow(clippy::too_many_arguments)]
fn attend_row(
    q: &[f32],
    a: &AttentionArgs,
    s: &AttentionShape,
    kvh: usize,
    keys: impl Iterator<Item = usize>,
    out: &mut [f32],
    scores: &mut Vec<(usize, f32)>,
) {
    let d = s.head_dim;
    let stride = s.kv_heads * d;
    let scale = s.scale();
    scores.clear();
    for j in keys {
        let kb = j * stride + kvh * d;
        scores.push((j, dot(q, &a.k[kb..kb + d]) * scale));
    }
    out.fill(0.0);
    if scores.is_empty() {
        return;
    }
    let m = scores.iter().fold(f32::NEG_INFINITY, |m, &(_, x)| m.max(x));
    let mut l = 0.0f32;
    for &(j, x) in scores.iter() {
        let p = (x - m).exp();
        l += p;
        let vb = j * stride + kvh * d;
        for (o, &vv) in out.iter_mut().zip(&a.v[vb..vb + d]) {
            *o += p * vv;
        }
    }
    let inv = 1.0 / l;
    for o in out.iter_mut() {
        *o *= inv;
    }
}

fn keep(a: &AttentionArgs, j: usize) -> bool {
    a.mask.is_none_or(|m| m[j] != 0)
}

/// Reference attention (prefill and decode semantics are identical; see the module docs of
/// [`super`]): `[Tq, heads, head_dim]`.
pub fn attention_cpu(a: &AttentionArgs) -> Result<Vec<f32>, KernelError> {
    let s = check(a)?;
    let d = s.head_dim;
    let mut out = vec![0.0f32; s.out_len()];
    let mut scratch = Vec::with_capacity(s.tk);
    for i in 0..s.tq {
        let pos = i as i64 + s.offset();
        let end = if a.causal {
            (pos + 1).clamp(0, s.tk as i64) as usize
        } else {
            s.tk
        };
        for h in 0..s.heads {
            let row = (i * s.heads + h) * d;
            let keys = (0..end).filter(|&j| keep(a, j));
            attend_row(
                &a.q[row..row + d],
                a,
                &s,
                h / s.group(),
                keys,
                &mut out[row..row + d],
                &mut scratch,
            );
        }
    }
    Ok(out)
}

/// The power-of-two quantisation scale of a vector whose largest magnitude is `max_abs`:
/// `2^(6 - E)` with `E = floor(log2 max_abs)` read from the float's exponent bits, so that
/// `|x * scale| < 128`; `0` (everything quantises to zero) when `max_abs < 2^-100`.
/// Multiplying by it is exact, so the GPU and the CPU quantise identically.
pub fn quant_scale(max_abs: f32) -> f32 {
    let bits = max_abs.to_bits();
    let e = ((bits >> 23) & 0xff) as i32 - 127;
    if !(-100..=127).contains(&e) || max_abs == 0.0 {
        return 0.0;
    }
    f32::from_bits(((6 - e + 127) as u32) << 23)
}

/// `round_half_even(x * scale)` as an integer in `[-128, 128]`.
#[inline]
pub fn quantize(x: f32, scale: f32) -> i32 {
    (x * scale).round_ties_even() as i32
}

/// The per-kv-head key scales and per-(query, head) query scales of the block selection.
pub fn quant_scales(a: &AttentionArgs, s: &AttentionShape) -> (Vec<f32>, Vec<f32>) {
    let d = s.head_dim;
    let mut kmax = vec![0.0f32; s.kv_heads];
    for row in a.k.chunks_exact(d).enumerate() {
        let (r, vals) = row;
        let m = &mut kmax[r % s.kv_heads];
        *m = vals.iter().fold(*m, |m, x| m.max(x.abs()));
    }
    let kscale = kmax.into_iter().map(quant_scale).collect();
    let qscale =
        a.q.chunks_exact(d)
            .map(|r| quant_scale(r.iter().fold(0.0f32, |m, x| m.max(x.abs()))))
            .collect();
    (kscale, qscale)
}

/// Per key block: the integer mean of the quantised unmasked keys (`[n_blocks, kv_heads,
/// head_dim]`), and the count, first and last unmasked key index of the block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockSummary {
    /// Number of blocks, `ceil(Tk / block_size)`.
    pub n_blocks: usize,
    /// Integer means `[n_blocks, kv_heads, head_dim]` (sum truncated toward zero by count).
    pub means: Vec<i32>,
    /// Per block: (unmasked keys, first unmasked index, last unmasked index); 0/0/0 if none.
    pub ranges: Vec<(u32, u32, u32)>,
}

/// The block summaries the selection scores against.
pub fn block_summary(
    a: &AttentionArgs,
    s: &AttentionShape,
    p: &SparseParams,
    kscale: &[f32],
) -> BlockSummary {
    let d = s.head_dim;
    let bs = p.block_size;
    let nb = s.tk.div_ceil(bs);
    let mut means = vec![0i32; nb * s.kv_heads * d];
    let mut ranges = vec![(0u32, 0u32, 0u32); nb];
    let mut sum = vec![0i32; d];
    for (b, range) in ranges.iter_mut().enumerate() {
        let keys: Vec<usize> = (b * bs..((b + 1) * bs).min(s.tk))
            .filter(|&j| keep(a, j))
            .collect();
        let count = keys.len();
        if count > 0 {
            *range = (count as u32, keys[0] as u32, keys[count - 1] as u32);
        }
        for (kvh, &ks) in kscale.iter().enumerate() {
            sum.fill(0);
            for &j in &keys {
                let kb = (j * s.kv_heads + kvh) * d;
                for (acc, &x) in sum.iter_mut().zip(&a.k[kb..kb + d]) {
                    *acc += quantize(x, ks);
                }
            }
            if count > 0 {
                let mb = (b * s.kv_heads + kvh) * d;
                for (m, &x) in means[mb..mb + d].iter_mut().zip(&sum) {
                    *m = x / count as i32;
                }
            }
        }
    }
    BlockSummary {
        n_blocks: nb,
        means,
        ranges,
    }
}

/// The blocks chosen for every (query, head): `[Tq, heads, top_blocks]` block indices in rank
/// order, [`NO_BLOCK`] for empty slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Slots per (query, head).
    pub top_blocks: usize,
    /// `[Tq, heads, top_blocks]`.
    pub blocks: Vec<u32>,
}

/// Whether block `b` (with unmasked range `r`) can add a key to query position `pos` outside
/// its window.
pub(crate) fn is_candidate(r: (u32, u32, u32), pos: i64, causal: bool, window: usize) -> bool {
    let (count, first, last) = r;
    count > 0 && ((first as i64) <= pos - window as i64 || (!causal && (last as i64) > pos))
}

/// The block selection, defined exactly:
///
/// - keys are quantised per kv head and queries per (query, head) to integers in `[-128, 128]`
///   with a power-of-two scale ([`quant_scale`], [`quantize`]: round half to even);
/// - a block's key is the integer mean (truncated) of its unmasked quantised keys;
/// - a block's score for (query `i`, head `h`) is the integer dot product of the quantised
///   query with the block key of kv head `h / group` (exact in i32);
/// - candidates are blocks with at least one unmasked key that the query may see (causal) and
///   that lies outside its window `(pos - window, pos]`;
/// - the `top_blocks` best candidates by score, ties broken by the lower block index, in that
///   rank order.
///
/// The GPU computes the same integers with the same scales (computed here, on the host), so
/// its selection is identical, bit for bit.
pub fn sparse_select_cpu(a: &AttentionArgs, p: &SparseParams) -> Result<Selection, KernelError> {
    let s = check(a)?;
    check_sparse(p)?;
    let (kscale, qscale) = quant_scales(a, &s);
    let summary = block_summary(a, &s, p, &kscale);
    Ok(select_with(a, &s, p, &summary, &qscale))
}

fn select_with(
    a: &AttentionArgs,
    s: &AttentionShape,
    p: &SparseParams,
    sum: &BlockSummary,
    qscale: &[f32],
) -> Selection {
    let d = s.head_dim;
    let top = p.top_blocks;
    let mut blocks = vec![NO_BLOCK; s.tq * s.heads * top];
    let mut qq = vec![0i32; d];
    let mut best: Vec<(i32, u32)> = Vec::with_capacity(top + 1);
    for i in 0..s.tq {
        let pos = i as i64 + s.offset();
        for h in 0..s.heads {
            let row = i * s.heads + h;
            for (x, &v) in qq.iter_mut().zip(&a.q[row * d..row * d + d]) {
                *x = quantize(v, qscale[row]);
            }
            let kvh = h / s.group();
            best.clear();
            for b in 0..sum.n_blocks {
                if !is_candidate(sum.ranges[b], pos, a.causal, p.window) {
                    continue;
                }
                let mb = (b * s.kv_heads + kvh) * d;
                let score: i32 = qq
                    .iter()
                    .zip(&sum.means[mb..mb + d])
                    .map(|(x, y)| x * y)
                    .sum();
                // Insert after every entry with a score >= this one (earlier blocks win ties).
                let at = best
                    .iter()
                    .position(|&(sc, _)| sc < score)
                    .unwrap_or(best.len());
                if at < top {
                    best.insert(at, (score, b as u32));
                    best.truncate(top);
                }
            }
            for (slot, &(_, b)) in blocks[row * top..row * top + top].iter_mut().zip(&best) {
                *slot = b;
            }
        }
    }
    Selection {
        top_blocks: top,
        blocks,
    }
}

/// Reference block-sparse attention with a given selection: query `i`, head `h` attends the
/// keys it may see (mask, causal) that are in its window `(pos - window, pos]` or in one of its
/// selected blocks.
pub fn sparse_attention_cpu_with(
    a: &AttentionArgs,
    p: &SparseParams,
    sel: &Selection,
) -> Result<Vec<f32>, KernelError> {
    let s = check(a)?;
    check_sparse(p)?;
    let d = s.head_dim;
    let top = sel.top_blocks;
    if sel.blocks.len() != s.tq * s.heads * top {
        return Err(KernelError::Shape {
            name: "selection",
            expected: format!("Tq * heads * topBlocks = {}", s.tq * s.heads * top),
            got: sel.blocks.len(),
        });
    }
    let mut out = vec![0.0f32; s.out_len()];
    let mut scratch = Vec::new();
    let mut in_sel = vec![false; s.tk.div_ceil(p.block_size)];
    for i in 0..s.tq {
        let pos = i as i64 + s.offset();
        for h in 0..s.heads {
            let row = i * s.heads + h;
            in_sel.fill(false);
            for &b in &sel.blocks[row * top..row * top + top] {
                if b != NO_BLOCK {
                    in_sel[b as usize] = true;
                }
            }
            let keys = (0..s.tk).filter(|&j| {
                let jj = j as i64;
                keep(a, j)
                    && (!a.causal || jj <= pos)
                    && ((jj <= pos && jj > pos - p.window as i64) || in_sel[j / p.block_size])
            });
            attend_row(
                &a.q[row * d..row * d + d],
                a,
                &s,
                h / s.group(),
                keys,
                &mut out[row * d..row * d + d],
                &mut scratch,
            );
        }
    }
    Ok(out)
}

/// Reference block-sparse attention: [`sparse_select_cpu`] then [`sparse_attention_cpu_with`].
pub fn sparse_attention_cpu(a: &AttentionArgs, p: &SparseParams) -> Result<Vec<f32>, KernelError> {
    let sel = sparse_select_cpu(a, p)?;
    sparse_attention_cpu_with(a, p, &sel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn naive(a: &AttentionArgs) -> Vec<f64> {
        // f64 textbook softmax attention, straight from the definition.
        let s = check(a).unwrap();
        let d = s.head_dim;
        let mut out = vec![0.0f64; s.out_len()];
        for i in 0..s.tq {
            for h in 0..s.heads {
                let kvh = h / s.group();
                let pos = i as i64 + s.offset();
                let keys: Vec<usize> = (0..s.tk)
                    .filter(|&j| keep(a, j) && (!a.causal || j as i64 <= pos))
                    .collect();
                let sc: Vec<f64> = keys
                    .iter()
                    .map(|&j| {
                        (0..d)
                            .map(|x| {
                                a.q[(i * s.heads + h) * d + x] as f64
                                    * a.k[(j * s.kv_heads + kvh) * d + x] as f64
                            })
                            .sum::<f64>()
                            / (d as f64).sqrt()
                    })
                    .collect();
                let m = sc.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let l: f64 = sc.iter().map(|x| (x - m).exp()).sum();
                for (&j, x) in keys.iter().zip(&sc) {
                    for e in 0..d {
                        out[(i * s.heads + h) * d + e] +=
                            (x - m).exp() / l * a.v[(j * s.kv_heads + kvh) * d + e] as f64;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn reference_matches_f64_definition() {
        let mut rng = Rng::new(9);
        for case in 0..20 {
            let (h, kvh) = *rng.pick(&[(1, 1), (4, 2), (4, 1), (3, 3)]);
            let d = *rng.pick(&[1usize, 5, 16]);
            let tq = 1 + rng.below(7);
            let tk = rng.below(9);
            let q = rng.vec_f32(tq * h * d);
            let k = rng.vec_f32(tk * kvh * d);
            let v = rng.vec_f32(tk * kvh * d);
            let mask: Vec<u8> = (0..tk).map(|_| (rng.below(4) != 0) as u8).collect();
            let a = AttentionArgs {
                q: &q,
                k: &k,
                v: &v,
                heads: h,
                kv_heads: kvh,
                head_dim: d,
                causal: case % 2 == 0,
                mask: if case % 3 == 0 { Some(&mask) } else { None },
            };
            let got = attention_cpu(&a).unwrap();
            let want = naive(&a);
            for (g, w) in got.iter().zip(&want) {
                assert!((*g as f64 - w).abs() < 1e-5, "case {case}: {g} vs {w}");
            }
        }
    }

    #[test]
    fn quant_scale_is_a_power_of_two_bounding_at_128() {
        for &m in &[1.0f32, 0.75, 127.9, 1e-30, 3.0e38, 1e-5] {
            let s = quant_scale(m);
            assert!(s > 0.0 && s.to_bits() & 0x7fffff == 0, "{m}: {s}");
            assert!(m * s < 128.0 && m * s >= 64.0, "{m}: {}", m * s);
        }
        assert_eq!(quant_scale(0.0), 0.0);
        assert_eq!(quant_scale(1e-35), 0.0);
        assert_eq!(quantize(0.5, 1.0), 0);
        assert_eq!(quantize(1.5, 1.0), 2);
        assert_eq!(quantize(-2.5, 1.0), -2);
    }

    #[test]
    fn selection_is_top_k_with_ties_to_lower_index() {
        // Four blocks of two keys, d = 1: block keys 1, 3, 3, 2 (scaled), query 1.
        let k = [1.0f32, 1.0, 3.0, 3.0, 3.0, 3.0, 2.0, 2.0];
        let v = [0.0f32; 8];
        let q = [1.0f32];
        let a = AttentionArgs {
            q: &q,
            k: &k,
            v: &v,
            heads: 1,
            kv_heads: 1,
            head_dim: 1,
            causal: true,
            mask: None,
        };
        let p = SparseParams {
            block_size: 2,
            top_blocks: 2,
            window: 0,
        };
        assert_eq!(sparse_select_cpu(&a, &p).unwrap().blocks, vec![1, 2]);
        // With a window of 3 the last block is all window, block 2 still has key 4 outside.
        let p = SparseParams {
            window: 3,
            top_blocks: 4,
            ..p
        };
        assert_eq!(
            sparse_select_cpu(&a, &p).unwrap().blocks,
            vec![1, 2, 0, NO_BLOCK]
        );
        // Masking every key of block 1 removes it.
        let mask = [1u8, 1, 0, 0, 1, 1, 1, 1];
        let a = AttentionArgs {
            mask: Some(&mask),
            ..a
        };
        assert_eq!(
            sparse_select_cpu(&a, &p).unwrap().blocks,
            vec![2, 0, NO_BLOCK, NO_BLOCK]
        );
    }

    #[test]
    fn sparse_with_everything_selected_is_dense() {
        let mut rng = Rng::new(4);
        let (tq, tk, h, kvh, d) = (5, 37, 4, 2, 8);
        let q = rng.vec_f32(tq * h * d);
        let k = rng.vec_f32(tk * kvh * d);
        let v = rng.vec_f32(tk * kvh * d);
        for causal in [false, true] {
            let a = AttentionArgs {
                q: &q,
                k: &k,
                v: &v,
                heads: h,
                kv_heads: kvh,
                head_dim: d,
                causal,
                mask: None,
            };
            let p = SparseParams {
                block_size: 4,
                top_blocks: 10,
                window: 3,
            };
            let dense = attention_cpu(&a).unwrap();
            let sparse = sparse_attention_cpu(&a, &p).unwrap();
            for (x, y) in dense.iter().zip(&sparse) {
                assert!((x - y).abs() < 1e-5);
            }
        }
    }
}
