//! Memory fetch: fused similarity + top-k over f32/f16/int8 banks, allow-masks, chunked banks, gather.
//!
//! Given B queries and an N×d bank, find for each query the k rows with the highest dot product
//! (cosine = dot on normalised rows) and fetch them. Two ways in:
//!
//! - [`topk`] / [`topk_cpu`]: stateless, for one-off calls (the JS `kernels.topk`);
//! - [`FlatBank`]: a resident bank in a chosen [`BankFormat`] that the memory engine keeps for
//!   its lifetime. It owns the rows on the GPU (when there is one) *and* a CPU mirror of the same
//!   words, grows by appending without re-uploading what is already there, masks deletions with a
//!   live bitset, and answers [`FlatBank::topk`] on the GPU or the CPU path, chosen per call.
//!
//! # Result semantics
//!
//! Results are `[B, k]`, best first. The order is: higher score first; equal scores by lower row
//! id first — on both paths. When fewer than k rows are allowed (by the live bitset and the
//! optional allow-mask), the remaining slots hold id [`NO_ID`] (`0xFFFFFFFF`) and score
//! `-Infinity`. Scores are computed in f32 from the stored (possibly quantised) values: f16 rows
//! are the f16 values, int8 rows score `scale * Σ q_j x_j`.
//!
//! # GPU versus CPU
//!
//! Both paths sum each dot product in the same order (four lanes over the row's 16-byte slabs,
//! combined as `(l0 + l1) + (l2 + l3)`, see [`format`]), but a GPU driver may fuse multiply and
//! add, so a score can differ in its last bits between paths. The guarantee, checked by
//! [`agreement`] in the tests, for a tolerance `eps` bounding that difference (the tests use
//! `2e-6 · d` for values in [-1, 1]):
//!
//! 1. each list is sorted by the order above, ids unique and allowed, sentinels only at the end,
//!    and both paths fill the same number of slots (`min(k, allowed rows)`);
//! 2. position by position the scores differ by at most `eps`; a row present in both lists has
//!    scores within `eps` of each other;
//! 3. the id sets differ only by rows whose score is within `2·eps` of the other path's k-th
//!    score (the k-th and (k+1)-th rows were a near tie).
//!
//! When scores are exactly equal on both paths (e.g. small-integer data, whose sums are exact)
//! ids and scores are identical, ties included.

mod bank;
pub mod cpu;
pub mod format;
pub(crate) mod gpu;
mod simd;

pub use bank::{
    FetchPath, FlatBank, FlatBankOptions, GatherIds, GpuCopyBench, GpuRows, GpuTopk, Tuning,
};
pub use format::{BankFormat, Layout, BLOCK_ROWS};
pub use gpu::{TopkPlan, PORTABLE_BINDING_BYTES};

use super::{check_finite, rows_of, KernelError};
use crate::compute::Compute;

/// The id in result slots that hold no row.
pub const NO_ID: u32 = u32::MAX;

/// Largest k a top-k call accepts.
pub const MAX_K: usize = 256;

/// Top-k results of B queries: row-major `[B, k]` ids and scores, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct TopkResult {
    /// Row ids (`NO_ID` in unfilled slots).
    pub ids: Vec<u32>,
    /// Scores (`-inf` in unfilled slots).
    pub scores: Vec<f32>,
    /// Queries (B).
    pub queries: usize,
    /// Slots per query (k).
    pub k: usize,
}

impl TopkResult {
    /// B lists of k unfilled slots.
    pub fn empty(queries: usize, k: usize) -> TopkResult {
        TopkResult {
            ids: vec![NO_ID; queries * k],
            scores: vec![f32::NEG_INFINITY; queries * k],
            queries,
            k,
        }
    }

    /// Ids of query `q`.
    pub fn ids_of(&self, q: usize) -> &[u32] {
        &self.ids[q * self.k..(q + 1) * self.k]
    }

    /// Scores of query `q`.
    pub fn scores_of(&self, q: usize) -> &[f32] {
        &self.scores[q * self.k..(q + 1) * self.k]
    }
}

/// Options of the stateless [`topk`].
#[derive(Debug, Clone, Copy, Default)]
pub struct TopkOptions<'a> {
    /// Allow-mask: bit `i % 32` of word `i / 32` set = row `i` may be returned. At least
    /// `ceil(N / 32)` words.
    pub mask: Option<&'a [u32]>,
    /// How the bank is stored for the scan (the values are converted first).
    pub format: BankFormat,
}

/// Check `k`, the queries (non-empty, a multiple of `dims`, finite) and the mask length for a
/// bank of `n` rows; returns B.
pub fn check_query(
    dims: usize,
    n: usize,
    queries: &[f32],
    k: usize,
    mask: Option<&[u32]>,
) -> Result<usize, KernelError> {
    if dims == 0 {
        return Err(KernelError::InvalidArgument {
            name: "dims",
            reason: "must be at least 1".into(),
        });
    }
    if queries.is_empty() {
        return Err(KernelError::InvalidArgument {
            name: "queries",
            reason: "at least one query is required".into(),
        });
    }
    if !queries.len().is_multiple_of(dims) {
        return Err(KernelError::DimensionMismatch {
            name: "queries",
            expected: dims,
            got: if queries.len() < dims {
                queries.len()
            } else {
                queries.len() % dims
            },
        });
    }
    if k == 0 || k > MAX_K {
        return Err(KernelError::InvalidArgument {
            name: "k",
            reason: format!("must be between 1 and {MAX_K}, got {k}"),
        });
    }
    if let Some(m) = mask {
        let need = n.div_ceil(32);
        if m.len() < need {
            return Err(KernelError::Shape {
                name: "mask",
                expected: format!("at least ceil(N / 32) = {need} words for N = {n} rows"),
                got: m.len(),
            });
        }
    }
    check_finite("queries", queries)?;
    Ok(queries.len() / dims)
}

/// Check a stateless call; returns (N, B).
fn check_stateless(
    bank: &[f32],
    dims: usize,
    queries: &[f32],
    k: usize,
    opts: &TopkOptions<'_>,
) -> Result<(usize, usize), KernelError> {
    let n = rows_of("bank", bank, dims)?;
    let b = check_query(dims, n, queries, k, opts.mask)?;
    Layout::new(opts.format, dims).check_rows("bank", bank)?;
    Ok((n, b))
}

/// Stateless top-k on whichever backend `compute` chose: the `k` best rows of `bank`
/// (`[N, dims]`) for each query (`[B, dims]`). See the module docs for the result semantics.
pub async fn topk(
    compute: &Compute,
    bank: &[f32],
    dims: usize,
    queries: &[f32],
    k: usize,
    opts: TopkOptions<'_>,
) -> Result<TopkResult, KernelError> {
    check_stateless(bank, dims, queries, k, &opts)?;
    if compute.gpu_context().is_none() {
        return topk_cpu(bank, dims, queries, k, opts);
    }
    let options = FlatBankOptions {
        format: opts.format,
        cpu_mirror: false,
        capacity: bank.len() / dims,
        ..FlatBankOptions::default()
    };
    let mut fb = FlatBank::new(compute, dims, options)?;
    fb.append(bank).await?;
    fb.topk_gpu(queries, k, opts.mask).await
}

/// Stateless top-k on the CPU path (the reference the GPU is tested against).
pub fn topk_cpu(
    bank: &[f32],
    dims: usize,
    queries: &[f32],
    k: usize,
    opts: TopkOptions<'_>,
) -> Result<TopkResult, KernelError> {
    check_stateless(bank, dims, queries, k, &opts)?;
    let mut fb = FlatBank::new_cpu(dims, opts.format, bank.len() / dims);
    fb.append_cpu(bank)?;
    fb.topk_cpu(queries, k, opts.mask)
}

/// Plain reference for tests: dequantised rows, dot products in f64 rounded to f32, sorted by
/// the result order. Slow; validated inputs only.
#[doc(hidden)]
pub fn topk_naive(
    rows: &[f32],
    dims: usize,
    queries: &[f32],
    k: usize,
    allowed: &dyn Fn(usize) -> bool,
) -> TopkResult {
    let n = rows.len() / dims;
    let b = queries.len() / dims;
    let mut out = TopkResult::empty(b, k);
    for (q, qv) in queries.chunks_exact(dims).enumerate() {
        let mut all: Vec<(f32, u32)> = (0..n)
            .filter(|&i| allowed(i))
            .map(|i| {
                let r = &rows[i * dims..(i + 1) * dims];
                let s: f64 = r.iter().zip(qv).map(|(a, b)| *a as f64 * *b as f64).sum();
                (s as f32, i as u32)
            })
            .collect();
        all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        for (t, (s, i)) in all.into_iter().take(k).enumerate() {
            out.ids[q * k + t] = i;
            out.scores[q * k + t] = s;
        }
    }
    out
}

/// Check that `got` is a well-formed result and agrees with `want` under the GPU/CPU semantics
/// of the module docs, with score tolerance `eps`. `allowed(i)` says whether row `i` may appear.
/// The message names the query, the slot and both values.
pub fn agreement(
    what: &str,
    got: &TopkResult,
    want: &TopkResult,
    eps: f32,
    allowed: &dyn Fn(u32) -> bool,
) -> Result<(), String> {
    if got.queries != want.queries || got.k != want.k {
        return Err(format!(
            "{what}: shape [{}, {}] != reference [{}, {}]",
            got.queries, got.k, want.queries, want.k
        ));
    }
    for (name, r) in [("result", got), ("reference", want)] {
        well_formed(r, allowed).map_err(|m| format!("{what}: {name} {m}"))?;
    }
    for q in 0..got.queries {
        let (gi, gs) = (got.ids_of(q), got.scores_of(q));
        let (wi, ws) = (want.ids_of(q), want.scores_of(q));
        let gm = gi.iter().filter(|&&i| i != NO_ID).count();
        let wm = wi.iter().filter(|&&i| i != NO_ID).count();
        if gm != wm {
            return Err(format!(
                "{what}: query {q}: {gm} filled slots, reference has {wm}"
            ));
        }
        for t in 0..gm {
            if (gs[t] - ws[t]).abs() > eps {
                return Err(format!(
                    "{what}: query {q} slot {t}: score {} (id {}) vs reference {} (id {}), eps {eps}",
                    gs[t], gi[t], ws[t], wi[t]
                ));
            }
        }
        if gm == 0 {
            continue;
        }
        for (a_ids, a_s, b_ids, b_s, side) in
            [(gi, gs, wi, ws, "result"), (wi, ws, gi, gs, "reference")]
        {
            let b_kth = b_s[gm - 1];
            for t in 0..gm {
                match b_ids[..gm].iter().position(|&x| x == a_ids[t]) {
                    Some(u) => {
                        if (a_s[t] - b_s[u]).abs() > eps {
                            return Err(format!(
                                "{what}: query {q}: id {} scored {} vs {} on the other side",
                                a_ids[t], a_s[t], b_s[u]
                            ));
                        }
                    }
                    None => {
                        if a_s[t] > b_kth + 2.0 * eps {
                            return Err(format!(
                                "{what}: query {q}: {side} has id {} (score {}, slot {t}) that \
                                 the other misses although its k-th score is {b_kth} (eps {eps})",
                                a_ids[t], a_s[t]
                            ));
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

fn well_formed(r: &TopkResult, allowed: &dyn Fn(u32) -> bool) -> Result<(), String> {
    for q in 0..r.queries {
        let (ids, s) = (r.ids_of(q), r.scores_of(q));
        let m = ids.iter().take_while(|&&i| i != NO_ID).count();
        for t in m..r.k {
            if ids[t] != NO_ID || s[t] != f32::NEG_INFINITY {
                return Err(format!(
                    "query {q} slot {t}: id {} score {} after an empty slot",
                    ids[t], s[t]
                ));
            }
        }
        for t in 0..m {
            if !allowed(ids[t]) {
                return Err(format!("query {q} slot {t}: id {} is not allowed", ids[t]));
            }
            if t + 1 < m && !cpu::better(s[t], ids[t], s[t + 1], ids[t + 1]) {
                return Err(format!(
                    "query {q} slots {t},{}: ({}, id {}) then ({}, id {}) is out of order",
                    t + 1,
                    s[t],
                    ids[t],
                    s[t + 1],
                    ids[t + 1]
                ));
            }
        }
        let mut sorted = ids[..m].to_vec();
        sorted.sort_unstable();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            return Err(format!("query {q}: duplicate ids {:?}", &ids[..m]));
        }
    }
    Ok(())
}

/// Recall@k of `got` against `exact`: the mean fraction of each query's exact ids that `got`
/// also returns (unfilled slots excluded).
pub fn recall(got: &TopkResult, exact: &TopkResult) -> f64 {
    let mut total = 0.0;
    for q in 0..exact.queries {
        let want: Vec<u32> = exact
            .ids_of(q)
            .iter()
            .copied()
            .filter(|&i| i != NO_ID)
            .collect();
        if want.is_empty() {
            total += 1.0;
            continue;
        }
        let hit = want.iter().filter(|i| got.ids_of(q).contains(i)).count();
        total += hit as f64 / want.len() as f64;
    }
    total / exact.queries.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn errors_are_typed() {
        let bank = vec![0.5f32; 12];
        let o = TopkOptions::default();
        let e = topk_cpu(&bank, 3, &[1.0, 2.0, 3.0], 0, o).unwrap_err();
        assert!(matches!(e, KernelError::InvalidArgument { name: "k", .. }));
        let e = topk_cpu(&bank, 3, &[1.0, 2.0, 3.0], 257, o).unwrap_err();
        assert!(matches!(e, KernelError::InvalidArgument { name: "k", .. }));
        let e = topk_cpu(&bank, 3, &[1.0, 2.0], 1, o).unwrap_err();
        assert_eq!(e.code(), "DIMENSION_MISMATCH");
        let e = topk_cpu(&bank, 3, &[], 1, o).unwrap_err();
        assert!(matches!(
            e,
            KernelError::InvalidArgument {
                name: "queries",
                ..
            }
        ));
        let e = topk_cpu(&bank[..11], 3, &[1.0, 2.0, 3.0], 1, o).unwrap_err();
        assert_eq!(e.code(), "SHAPE_MISMATCH");
        let m = TopkOptions {
            mask: Some(&[]),
            ..o
        };
        let e = topk_cpu(&bank, 3, &[1.0, 2.0, 3.0], 1, m).unwrap_err();
        assert!(matches!(e, KernelError::Shape { name: "mask", .. }));
        let f = TopkOptions {
            format: BankFormat::F16,
            ..o
        };
        let e = topk_cpu(&[1e6, 0.0, 0.0], 3, &[1.0, 2.0, 3.0], 1, f).unwrap_err();
        assert!(matches!(
            e,
            KernelError::InvalidArgument { name: "bank", .. }
        ));
        let e = topk_cpu(&bank, 3, &[1.0, f32::NAN, 3.0], 1, o).unwrap_err();
        assert_eq!(e.code(), "NON_FINITE");
    }

    #[test]
    fn cpu_path_agrees_with_naive_reference() {
        let mut rng = Rng::new(0xFE7C);
        for case in 0..60 {
            let n = *rng.pick(&[0usize, 1, 5, 63, 64, 65, 200, 1000]);
            let d = *rng.pick(&[1usize, 2, 3, 5, 8, 33, 100]);
            let b = *rng.pick(&[1usize, 2, 7]);
            let k = *rng.pick(&[1usize, 3, 10, 64, 256]);
            let format = *rng.pick(&[BankFormat::F32, BankFormat::F16, BankFormat::Int8]);
            let bank = rng.vec_f32(n * d);
            let queries = rng.vec_f32(b * d);
            let mask: Vec<u32> = (0..n.div_ceil(32)).map(|_| rng.next_u64() as u32).collect();
            let use_mask = rng.below(2) == 1;
            let opts = TopkOptions {
                mask: use_mask.then_some(&mask[..]),
                format,
            };
            let got = topk_cpu(&bank, d, &queries, k, opts).unwrap();
            // The naive reference scores the stored (dequantised) values.
            let layout = Layout::new(format, d);
            let mut deq = vec![0.0f32; n * d];
            for (src, dst) in layout
                .encode_rows(&bank)
                .chunks_exact(layout.row_words())
                .zip(deq.chunks_exact_mut(d))
            {
                layout.decode_row(src, dst);
            }
            let allowed = |i: usize| !use_mask || (mask[i / 32] >> (i % 32)) & 1 == 1;
            let want = topk_naive(&deq, d, &queries, k, &allowed);
            let eps = 2e-6 * d as f32;
            agreement(
                &format!("case {case} n={n} d={d} b={b} k={k} {format:?}"),
                &got,
                &want,
                eps,
                &|i| allowed(i as usize),
            )
            .unwrap();
        }
    }

    #[test]
    fn integer_data_gives_identical_ties() {
        // Every score is an exact small integer: many exact ties, broken by lower id.
        let mut rng = Rng::new(9);
        let (n, d) = (500, 7);
        let bank: Vec<f32> = (0..n * d).map(|_| rng.below(3) as f32 - 1.0).collect();
        let q: Vec<f32> = (0..d).map(|_| rng.below(3) as f32 - 1.0).collect();
        let got = topk_cpu(&bank, d, &q, 50, TopkOptions::default()).unwrap();
        let want = topk_naive(&bank, d, &q, 50, &|_| true);
        assert_eq!(got, want);
    }
}
