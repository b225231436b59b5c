//! Attention kernels: tiled online-softmax prefill, flash-decoding over a KV cache, top-k
//! block-sparse attention, and the tiled matmul that measures the adapter's peak for the
//! benchmarks.
//!
//! # Layouts and semantics (shared by every entry point)
//!
//! - `q` and the output are `[Tq, heads, head_dim]`, `k` and `v` are `[Tk, kv_heads, head_dim]`,
//!   row-major (token-major). Query head `h` reads kv head `h / (heads / kv_heads)`
//!   (grouped-query attention; `kv_heads` must divide `heads`).
//! - Scale: `1 / sqrt(head_dim)`.
//! - **Alignment**: the queries are the *last* `Tq` positions of the key sequence, so query `i`
//!   sits at position `pos(i) = i + Tk - Tq` (may be negative when `Tq > Tk`). With `causal`,
//!   query `i` sees key `j` only if `j <= pos(i)`.
//! - **Key padding mask**: optional, one byte per key (`[Tk]`), non-zero = the key takes part,
//!   zero = the key is ignored by every query and head.
//! - **Fully masked rows** (a query that sees no key at all) produce zeros, on every path.
//! - Logits are computed with a running maximum (online softmax), so large logits never
//!   overflow; inputs must be finite and `max|q| * max|k| * head_dim * scale` must stay below
//!   `1e30` (checked up front: [`KernelError::InvalidArgument`] on `q`), so that no logit can
//!   leave the f32 range.
//!
//! # Accuracy (the norm the tests use)
//!
//! GPU results are compared with the CPU reference per output row (one query, one head):
//! `max_d |gpu - cpu| / max_d |cpu| <= 1e-3` (relative error in the infinity norm of the row);
//! a row whose reference is exactly zero (fully masked) must be exactly zero. See
//! [`row_relative_error`].

pub mod cpu;
pub mod decode;
pub(crate) mod gpu;
pub mod matmul;
pub mod prefill;
pub mod sparse;

pub use cpu::{
    attention_cpu, sparse_attention_cpu, sparse_attention_cpu_with, sparse_select_cpu, Selection,
    NO_BLOCK,
};
pub use decode::{decode_attention, decode_attention_gpu, decode_attention_gpu_repeated};
pub use prefill::{attention, attention_gpu, attention_gpu_repeated};
pub use sparse::{sparse_attention, sparse_attention_gpu, sparse_attention_gpu_with_selection};

use super::{check_finite, KernelError};

/// Largest supported head dimension.
pub const MAX_HEAD_DIM: usize = 128;

/// Largest supported `top_blocks` of the block-sparse kernel.
pub const MAX_TOP_BLOCKS: usize = 32;

/// Bound on `max|q| * max|k| * head_dim * scale` (see the module docs).
pub const LOGIT_BOUND: f32 = 1e30;

/// The arguments of an attention call (prefill, decode or block-sparse).
#[derive(Debug, Clone, Copy)]
pub struct AttentionArgs<'a> {
    /// Queries `[Tq, heads, head_dim]`.
    pub q: &'a [f32],
    /// Keys `[Tk, kv_heads, head_dim]`.
    pub k: &'a [f32],
    /// Values `[Tk, kv_heads, head_dim]`.
    pub v: &'a [f32],
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (divides `heads`).
    pub kv_heads: usize,
    /// Head dimension, 1..=128.
    pub head_dim: usize,
    /// Causal masking with the queries aligned to the last `Tq` key positions.
    pub causal: bool,
    /// Optional key padding mask `[Tk]`: non-zero keeps the key.
    pub mask: Option<&'a [u8]>,
}

/// The block-sparse parameters: key blocks of `block_size`, the `top_blocks` best-scoring
/// blocks per (query, head), plus a local window of the last `window` positions up to the
/// query's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SparseParams {
    /// Keys per block (>= 1).
    pub block_size: usize,
    /// Blocks kept per (query, head), 0..=[`MAX_TOP_BLOCKS`].
    pub top_blocks: usize,
    /// Local window in positions (0 = none).
    pub window: usize,
}

/// A validated attention shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionShape {
    /// Query rows.
    pub tq: usize,
    /// Key rows.
    pub tk: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Head dimension.
    pub head_dim: usize,
}

impl AttentionShape {
    /// Query heads per kv head.
    pub fn group(&self) -> usize {
        self.heads / self.kv_heads
    }

    /// `1 / sqrt(head_dim)`.
    pub fn scale(&self) -> f32 {
        1.0 / (self.head_dim as f32).sqrt()
    }

    /// `Tk - Tq`: the position offset of query 0.
    pub fn offset(&self) -> i64 {
        self.tk as i64 - self.tq as i64
    }

    /// Output length `Tq * heads * head_dim`.
    pub fn out_len(&self) -> usize {
        self.tq * self.heads * self.head_dim
    }
}

fn invalid(name: &'static str, reason: impl Into<String>) -> KernelError {
    KernelError::InvalidArgument {
        name,
        reason: reason.into(),
    }
}

fn max_abs(values: &[f32]) -> f32 {
    values.iter().fold(0.0f32, |m, x| m.max(x.abs()))
}

/// Check the arguments of an attention call: head counts, head dimension, buffer lengths,
/// finiteness and the logit bound. Nothing runs when this fails.
pub fn check(a: &AttentionArgs) -> Result<AttentionShape, KernelError> {
    if a.heads == 0 {
        return Err(invalid("heads", "must be at least 1"));
    }
    if a.kv_heads == 0 {
        return Err(invalid("kvHeads", "must be at least 1"));
    }
    if !a.heads.is_multiple_of(a.kv_heads) {
        return Err(invalid(
            "kvHeads",
            format!("must divide heads = {}, got {}", a.heads, a.kv_heads),
        ));
    }
    if a.head_dim == 0 || a.head_dim > MAX_HEAD_DIM {
        return Err(invalid(
            "headDim",
            format!("must be in 1..={MAX_HEAD_DIM}, got {}", a.head_dim),
        ));
    }
    let q_row = a.heads * a.head_dim;
    let kv_row = a.kv_heads * a.head_dim;
    if a.q.is_empty() || !a.q.len().is_multiple_of(q_row) {
        return Err(KernelError::Shape {
            name: "q",
            expected: format!(
                "a non-zero multiple of heads * headDim = {q_row} ([Tq, heads, headDim])"
            ),
            got: a.q.len(),
        });
    }
    if !a.k.len().is_multiple_of(kv_row) {
        return Err(KernelError::Shape {
            name: "k",
            expected: format!(
                "a multiple of kvHeads * headDim = {kv_row} ([Tk, kvHeads, headDim])"
            ),
            got: a.k.len(),
        });
    }
    if a.v.len() != a.k.len() {
        return Err(KernelError::Shape {
            name: "v",
            expected: format!("{} values, the length of k", a.k.len()),
            got: a.v.len(),
        });
    }
    let tq = a.q.len() / q_row;
    let tk = a.k.len() / kv_row;
    if let Some(m) = a.mask {
        if m.len() != tk {
            return Err(KernelError::Shape {
                name: "mask",
                expected: format!("Tk = {tk} bytes (one per key)"),
                got: m.len(),
            });
        }
    }
    if tq > u32::MAX as usize / 2 || tk > u32::MAX as usize / 2 {
        return Err(invalid("q", "sequence too long"));
    }
    check_finite("q", a.q)?;
    check_finite("k", a.k)?;
    check_finite("v", a.v)?;
    let shape = AttentionShape {
        tq,
        tk,
        heads: a.heads,
        kv_heads: a.kv_heads,
        head_dim: a.head_dim,
    };
    let bound =
        max_abs(a.q) as f64 * max_abs(a.k) as f64 * a.head_dim as f64 * shape.scale() as f64;
    if bound >= LOGIT_BOUND as f64 {
        return Err(invalid(
            "q",
            format!(
                "max|q| * max|k| * headDim * scale = {bound:e} reaches {LOGIT_BOUND:e}: logits could overflow f32"
            ),
        ));
    }
    Ok(shape)
}

/// Check the block-sparse parameters.
pub fn check_sparse(p: &SparseParams) -> Result<(), KernelError> {
    if p.block_size == 0 || p.block_size > 1 << 20 {
        return Err(invalid(
            "blockSize",
            format!("must be in 1..=1048576, got {}", p.block_size),
        ));
    }
    if p.top_blocks > MAX_TOP_BLOCKS {
        return Err(invalid(
            "topBlocks",
            format!("must be in 0..={MAX_TOP_BLOCKS}, got {}", p.top_blocks),
        ));
    }
    if p.window > u32::MAX as usize / 2 {
        return Err(invalid("window", "too large"));
    }
    Ok(())
}

/// The key padding mask packed one bit per key (bit `j % 32` of word `j / 32`), all ones when
/// there is no mask. At least one word.
pub fn pack_mask(mask: Option<&[u8]>, tk: usize) -> Vec<u32> {
    let mut words = vec![0u32; tk.div_ceil(32).max(1)];
    for j in 0..tk {
        if mask.is_none_or(|m| m[j] != 0) {
            words[j / 32] |= 1 << (j % 32);
        }
    }
    words
}

/// Per-row relative error of `got` against `want` (rows of `row` values): the largest
/// `max_d |got - want| / max_d |want|` over rows. A row whose reference is all zeros must be
/// exactly zero in `got` (error 0), otherwise the error is infinite. `Err` names the first row
/// over `tol` with both values at its worst index.
pub fn row_relative_error(
    what: &str,
    got: &[f32],
    want: &[f32],
    row: usize,
    tol: f32,
) -> Result<f32, String> {
    if got.len() != want.len() {
        return Err(format!(
            "{what}: length {} != reference length {}",
            got.len(),
            want.len()
        ));
    }
    let mut worst = 0.0f32;
    for (r, (g, w)) in got.chunks(row).zip(want.chunks(row)).enumerate() {
        let norm = max_abs(w);
        let (idx, diff) = g
            .iter()
            .zip(w)
            .map(|(a, b)| (a - b).abs())
            .enumerate()
            .fold((0, 0.0f32), |acc, (i, d)| {
                // NaN compares false: make it the worst.
                if d.is_nan() || d > acc.1 {
                    (i, if d.is_nan() { f32::INFINITY } else { d })
                } else {
                    acc
                }
            });
        let rel = if norm == 0.0 {
            if diff == 0.0 {
                0.0
            } else {
                f32::INFINITY
            }
        } else {
            diff / norm
        };
        if rel.is_nan() || rel > tol {
            return Err(format!(
                "{what}: row {r} (flat index {}): got {:e}, reference {:e}; row relative error {rel:e} > {tol:e} (row max |ref| = {norm:e})",
                r * row + idx,
                g[idx],
                w[idx]
            ));
        }
        worst = worst.max(rel);
    }
    Ok(worst)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args<'a>(
        q: &'a [f32],
        k: &'a [f32],
        v: &'a [f32],
        h: usize,
        kvh: usize,
        d: usize,
    ) -> AttentionArgs<'a> {
        AttentionArgs {
            q,
            k,
            v,
            heads: h,
            kv_heads: kvh,
            head_dim: d,
            causal: false,
            mask: None,
        }
    }

    #[test]
    fn shape_errors_are_typed() {
        let q = [0.0f32; 8];
        let k = [0.0f32; 12];
        assert_eq!(check(&args(&q, &k, &k, 2, 1, 4)).unwrap().tq, 1);
        assert_eq!(check(&args(&q, &k, &k, 2, 1, 4)).unwrap().tk, 3);
        assert_eq!(
            check(&args(&q, &k, &k, 2, 3, 4)).unwrap_err().code(),
            "INVALID_INPUT"
        );
        assert_eq!(
            check(&args(&q, &k, &k, 2, 1, 0)).unwrap_err().code(),
            "INVALID_INPUT"
        );
        assert_eq!(
            check(&args(&q, &k, &k, 3, 1, 4)).unwrap_err().code(),
            "SHAPE_MISMATCH"
        );
        assert_eq!(
            check(&args(&q, &k[..8], &k, 2, 1, 4)).unwrap_err().code(),
            "SHAPE_MISMATCH"
        );
        assert_eq!(
            check(&args(&q, &k[..6], &k[..6], 2, 1, 4))
                .unwrap_err()
                .code(),
            "SHAPE_MISMATCH"
        );
        assert_eq!(
            check(&args(&[], &k, &k, 2, 1, 4)).unwrap_err().code(),
            "SHAPE_MISMATCH"
        );
        let mut bad = k;
        bad[5] = f32::NAN;
        let e = check(&args(&q, &k, &bad, 2, 1, 4)).unwrap_err();
        assert_eq!(
            e,
            KernelError::NonFinite {
                name: "v",
                index: 5
            }
        );
        let mut a = args(&q, &k, &k, 2, 1, 4);
        a.mask = Some(&[1, 0]);
        assert_eq!(check(&a).unwrap_err().code(), "SHAPE_MISMATCH");
        let big = [1e16f32; 8];
        assert_eq!(
            check(&args(&big, &[1e16; 4], &[0.0; 4], 2, 1, 4))
                .unwrap_err()
                .code(),
            "INVALID_INPUT"
        );
        // An empty key sequence is allowed (every row is fully masked).
        assert_eq!(check(&args(&q, &[], &[], 2, 1, 4)).unwrap().tk, 0);
    }

    #[test]
    fn mask_packing() {
        let m = [1u8, 0, 1, 1];
        assert_eq!(pack_mask(Some(&m), 4), vec![0b1101]);
        assert_eq!(pack_mask(None, 33), vec![u32::MAX, 1]);
        assert_eq!(pack_mask(None, 0), vec![0]);
    }

    #[test]
    fn row_error_norm() {
        assert_eq!(
            row_relative_error("x", &[1.0, 2.0], &[1.0, 2.0], 2, 1e-3),
            Ok(0.0)
        );
        assert!(row_relative_error("x", &[1.0, 2.01], &[1.0, 2.0], 2, 1e-3).is_err());
        assert!(row_relative_error("x", &[0.0, 1e-30], &[0.0, 0.0], 2, 1e-3).is_err());
        assert!(row_relative_error("x", &[f32::NAN, 0.0], &[1.0, 0.0], 2, 1e-3).is_err());
        assert!(row_relative_error("x", &[0.0, 0.0], &[0.0, 0.0], 2, 1e-3).is_ok());
    }
}
