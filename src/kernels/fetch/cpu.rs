//! The CPU path of the flat top-k: the fallback when no GPU exists (or when the GPU's readback
//! latency dominates) and the oracle the GPU kernels are tested against.
//!
//! It scans the same blocked words as the GPU (see [`super::format`]) one block of
//! [`BLOCK_ROWS`] rows at a time. The inner loop reads each slab contiguously and keeps four
//! accumulator lanes per row for eight rows, so it auto-vectorises natively (SSE) and into wasm
//! `simd128` in the browser build, and each row's dot product is summed in the same order as the
//! GPU kernel. Selection keeps a sorted list per query behind a threshold test, so almost every
//! row costs one compare.

use super::format::{f16_bits_to_f32, i8_of, BankFormat, Layout, BLOCK_ROWS};
use super::{TopkResult, NO_ID};

/// Rows per accumulator pass (the whole block): 8 rows x 4 lanes = 8 vector registers.
const ROWS_PER_PASS: usize = BLOCK_ROWS;

/// `a` comes before `b` in the result order: higher score, then lower row id.
#[inline(always)]
pub fn better(a_s: f32, a_i: u32, b_s: f32, b_i: u32) -> bool {
    a_s > b_s || (a_s == b_s && a_i < b_i)
}

/// The k best (score, id) pairs seen so far, best first.
#[derive(Debug, Clone)]
pub(crate) struct Selector {
    k: usize,
    s: Vec<f32>,
    i: Vec<u32>,
    th_s: f32,
    th_i: u32,
}

impl Selector {
    pub(crate) fn new(k: usize) -> Selector {
        Selector {
            k,
            s: Vec::with_capacity(k + 1),
            i: Vec::with_capacity(k + 1),
            th_s: f32::NEG_INFINITY,
            th_i: NO_ID,
        }
    }

    /// Offer one candidate.
    #[inline(always)]
    pub(crate) fn offer(&mut self, s: f32, id: u32) {
        if better(s, id, self.th_s, self.th_i) {
            self.insert(s, id);
        }
    }

    #[inline(never)]
    fn insert(&mut self, s: f32, id: u32) {
        let at = self
            .s
            .iter()
            .zip(&self.i)
            .position(|(&bs, &bi)| better(s, id, bs, bi))
            .unwrap_or(self.s.len());
        self.s.insert(at, s);
        self.i.insert(at, id);
        if self.s.len() > self.k {
            self.s.pop();
            self.i.pop();
        }
        if self.s.len() == self.k {
            self.th_s = self.s[self.k - 1];
            self.th_i = self.i[self.k - 1];
        }
    }

    /// Write the list into `ids`/`scores` (`k` slots; unused slots get `NO_ID` / -inf).
    pub(crate) fn write(&self, ids: &mut [u32], scores: &mut [f32]) {
        for (t, (id, sc)) in ids.iter_mut().zip(scores.iter_mut()).enumerate() {
            if t < self.s.len() {
                *id = self.i[t];
                *sc = self.s[t];
            } else {
                *id = NO_ID;
                *sc = f32::NEG_INFINITY;
            }
        }
    }
}

/// Scores of one query (arranged by [`Layout::arrange_query`]) against one block: `out[r]`
/// for the block's rows (all are computed; rows past the end read zero padding).
#[inline]
pub(crate) fn score_block(layout: &Layout, block: &[u32], q: &[f32], out: &mut [f32; BLOCK_ROWS]) {
    let hdr = layout.format.header() * BLOCK_ROWS;
    let data = &block[hdr..hdr + layout.words * BLOCK_ROWS];
    match layout.format {
        BankFormat::F32 => score_lanes::<1>(data, q, out, |w, _| f32::from_bits(w)),
        BankFormat::F16 => score_lanes::<2>(data, q, out, |w, e| {
            f16_bits_to_f32(if e == 0 { w & 0xFFFF } else { w >> 16 })
        }),
        BankFormat::Int8 => {
            score_lanes::<4>(data, q, out, |w, e| i8_of(w, e) as f32);
            for (o, &sw) in out.iter_mut().zip(&block[..BLOCK_ROWS]) {
                *o *= f32::from_bits(sw);
            }
        }
    }
}

/// The lane-wise dot products of a block's rows, `P` values per word decoded by `val(word, e)`.
/// Rows are processed `ROWS_PER_PASS` at a time with 4 accumulator lanes each (one vector
/// register per row); each slab contributes 4 consecutive words per row.
#[inline(always)]
fn score_lanes<const P: usize>(
    data: &[u32],
    q: &[f32],
    out: &mut [f32; BLOCK_ROWS],
    val: impl Fn(u32, usize) -> f32 + Copy,
) {
    const SLAB: usize = 4 * BLOCK_ROWS;
    for g in 0..BLOCK_ROWS / ROWS_PER_PASS {
        let mut acc = [[0.0f32; 4]; ROWS_PER_PASS];
        for (slab, qs) in data.chunks_exact(SLAB).zip(q.chunks_exact(4 * P)) {
            let x: &[u32; 4 * ROWS_PER_PASS] = slab
                [g * 4 * ROWS_PER_PASS..(g + 1) * 4 * ROWS_PER_PASS]
                .try_into()
                .expect("slab slice");
            for e in 0..P {
                let q4: &[f32; 4] = qs[4 * e..4 * e + 4].try_into().expect("query lanes");
                for (rr, a) in acc.iter_mut().enumerate() {
                    for t in 0..4 {
                        a[t] += val(x[4 * rr + t], e) * q4[t];
                    }
                }
            }
        }
        for (rr, a) in acc.iter().enumerate() {
            out[g * ROWS_PER_PASS + rr] = (a[0] + a[1]) + (a[2] + a[3]);
        }
    }
}

/// Queries scored together per pass over a block on the CPU (decoded words are reused).
pub(crate) const CPU_QUERIES: usize = 4;

/// [`score_block`] for [`CPU_QUERIES`] queries at once: each slab is loaded and decoded once
/// and multiplied into every query's lanes, two rows at a time (16 accumulator vectors). The
/// per-query summation order is that of [`score_block`], so the scores are identical.
#[inline]
pub(crate) fn score_block_multi(
    layout: &Layout,
    block: &[u32],
    qs: [&[f32]; CPU_QUERIES],
    out: &mut [[f32; BLOCK_ROWS]; CPU_QUERIES],
) {
    let hdr = layout.format.header() * BLOCK_ROWS;
    let data = &block[hdr..hdr + layout.words * BLOCK_ROWS];
    match layout.format {
        BankFormat::F32 => score_lanes_multi::<1>(data, qs, out, |w, _| f32::from_bits(w)),
        BankFormat::F16 => score_lanes_multi::<2>(data, qs, out, |w, e| {
            f16_bits_to_f32(if e == 0 { w & 0xFFFF } else { w >> 16 })
        }),
        BankFormat::Int8 => {
            score_lanes_multi::<4>(data, qs, out, |w, e| i8_of(w, e) as f32);
            for o in out.iter_mut() {
                for (v, &sw) in o.iter_mut().zip(&block[..BLOCK_ROWS]) {
                    *v *= f32::from_bits(sw);
                }
            }
        }
    }
}

#[inline(always)]
fn score_lanes_multi<const P: usize>(
    data: &[u32],
    qs: [&[f32]; CPU_QUERIES],
    out: &mut [[f32; BLOCK_ROWS]; CPU_QUERIES],
    val: impl Fn(u32, usize) -> f32 + Copy,
) {
    const SLAB: usize = 4 * BLOCK_ROWS;
    const PAIR: usize = 2;
    for g in 0..BLOCK_ROWS / PAIR {
        let mut acc = [[[0.0f32; 4]; PAIR]; CPU_QUERIES];
        for (s, slab) in data.chunks_exact(SLAB).enumerate() {
            let x: &[u32; 4 * PAIR] = slab[g * 4 * PAIR..(g + 1) * 4 * PAIR]
                .try_into()
                .expect("slab slice");
            for e in 0..P {
                let mut v = [[0.0f32; 4]; PAIR];
                for (rr, vr) in v.iter_mut().enumerate() {
                    for t in 0..4 {
                        vr[t] = val(x[4 * rr + t], e);
                    }
                }
                for (a, q) in acc.iter_mut().zip(qs) {
                    let q4: &[f32; 4] = q[(s * P + e) * 4..(s * P + e) * 4 + 4]
                        .try_into()
                        .expect("query lanes");
                    for (ar, vr) in a.iter_mut().zip(&v) {
                        for t in 0..4 {
                            ar[t] += vr[t] * q4[t];
                        }
                    }
                }
            }
        }
        for (o, a) in out.iter_mut().zip(&acc) {
            for (rr, ar) in a.iter().enumerate() {
                o[g * PAIR + rr] = (ar[0] + ar[1]) + (ar[2] + ar[3]);
            }
        }
    }
}

/// Arrange each of the `b` queries (`[b, dims]`) for the lane-wise dot product
/// ([`Layout::arrange_query`]); `layout.cols()` values per query.
pub(crate) fn arrange_queries(layout: &Layout, queries: &[f32]) -> Vec<f32> {
    let cols = layout.cols();
    let mut out = vec![0.0f32; queries.len() / layout.dims * cols];
    for (src, dst) in queries
        .chunks_exact(layout.dims)
        .zip(out.chunks_exact_mut(cols))
    {
        layout.arrange_query(src, dst);
    }
    out
}

/// The allowed-row bits of block `blk` (8 rows: one byte of a bitset word), rows >= `n`
/// cleared.
#[inline]
pub(crate) fn block_bits(live: &[u32], mask: Option<&[u32]>, blk: usize, n: usize) -> u32 {
    let (w, shift) = (blk * BLOCK_ROWS / 32, (blk * BLOCK_ROWS) % 32);
    let byte = |v: &[u32]| (v.get(w).copied().unwrap_or(0) >> shift) & 0xFF;
    let mut bits = byte(live);
    if let Some(m) = mask {
        bits &= byte(m);
    }
    let rows = n.saturating_sub(blk * BLOCK_ROWS).min(BLOCK_ROWS);
    bits & ((1u32 << rows) - 1)
}

/// Top-k of every query over the first `n` rows of `words` (the blocked layout), restricted to
/// rows whose `live` bit (and `mask` bit, when given) is set. Arguments must be validated.
pub(crate) fn scan(
    layout: &Layout,
    words: &[u32],
    n: usize,
    live: &[u32],
    mask: Option<&[u32]>,
    queries: &[f32],
    k: usize,
) -> TopkResult {
    let b = queries.len() / layout.dims;
    let qp = arrange_queries(layout, queries);
    let cols = layout.cols();
    let bw = layout.block_words();
    let mut sel: Vec<Selector> = (0..b).map(|_| Selector::new(k)).collect();
    let mut scores = [0.0f32; BLOCK_ROWS];
    let mut multi = [[0.0f32; BLOCK_ROWS]; CPU_QUERIES];
    for blk in 0..n.div_ceil(BLOCK_ROWS) {
        let bits = block_bits(live, mask, blk, n);
        if bits == 0 {
            continue;
        }
        let block = &words[blk * bw..(blk + 1) * bw];
        let row0 = (blk * BLOCK_ROWS) as u32;
        let offer = |s: &mut Selector, scores: &[f32; BLOCK_ROWS]| {
            if bits == 0xFF {
                for (r, &sc) in scores.iter().enumerate() {
                    s.offer(sc, row0 + r as u32);
                }
            } else {
                let mut rest = bits;
                while rest != 0 {
                    let r = rest.trailing_zeros() as usize;
                    rest &= rest - 1;
                    s.offer(scores[r], row0 + r as u32);
                }
            }
        };
        let mut q0 = 0;
        while q0 + CPU_QUERIES <= b {
            let qs: [&[f32]; CPU_QUERIES] =
                std::array::from_fn(|i| &qp[(q0 + i) * cols..(q0 + i + 1) * cols]);
            score_block_multi(layout, block, qs, &mut multi);
            for (s, sc) in sel[q0..q0 + CPU_QUERIES].iter_mut().zip(&multi) {
                offer(s, sc);
            }
            q0 += CPU_QUERIES;
        }
        for (s, q) in sel[q0..].iter_mut().zip(qp[q0 * cols..].chunks_exact(cols)) {
            score_block(layout, block, q, &mut scores);
            offer(s, &scores);
        }
    }
    let mut out = TopkResult::empty(b, k);
    for (q, s) in sel.iter().enumerate() {
        s.write(
            &mut out.ids[q * k..(q + 1) * k],
            &mut out.scores[q * k..(q + 1) * k],
        );
    }
    out
}

/// Dequantised copy of row `row` of the blocked `words`.
pub(crate) fn read_row(layout: &Layout, words: &[u32], row: usize, out: &mut [f32]) {
    let mut staged = vec![0u32; layout.row_words()];
    if layout.format == BankFormat::Int8 {
        staged[0] = words[layout.scale_index(row)];
    }
    let h = layout.format.header();
    for j in 0..layout.words {
        staged[h + j] = words[layout.word_index(row, j)];
    }
    layout.decode_row(&staged, out);
}

/// Write staged rows (row-major, `row_words` each) into the blocked `words` from row `first`.
pub(crate) fn scatter(layout: &Layout, words: &mut [u32], first: usize, staged: &[u32]) {
    let h = layout.format.header();
    for (t, src) in staged.chunks_exact(layout.row_words()).enumerate() {
        let row = first + t;
        if h == 1 {
            words[layout.scale_index(row)] = src[0];
        }
        for j in 0..layout.words {
            words[layout.word_index(row, j)] = src[h + j];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_query_scores_equal_single_query_scores_bitwise() {
        let mut rng = crate::rng::Rng::new(44);
        for format in [BankFormat::F32, BankFormat::F16, BankFormat::Int8] {
            for dims in [1usize, 5, 33, 384] {
                let l = Layout::new(format, dims);
                let mut words = vec![0u32; l.block_words()];
                scatter(
                    &l,
                    &mut words,
                    0,
                    &l.encode_rows(&rng.vec_f32(BLOCK_ROWS * dims)),
                );
                let qp = arrange_queries(&l, &rng.vec_f32(CPU_QUERIES * dims));
                let cols = l.cols();
                let qs: [&[f32]; CPU_QUERIES] =
                    std::array::from_fn(|i| &qp[i * cols..(i + 1) * cols]);
                let mut multi = [[0.0f32; BLOCK_ROWS]; CPU_QUERIES];
                score_block_multi(&l, &words, qs, &mut multi);
                for (q, m) in qs.iter().zip(&multi) {
                    let mut single = [0.0f32; BLOCK_ROWS];
                    score_block(&l, &words, q, &mut single);
                    assert_eq!(
                        single.map(f32::to_bits),
                        m.map(f32::to_bits),
                        "{format:?} d={dims}"
                    );
                }
            }
        }
    }

    #[test]
    fn selector_keeps_best_with_id_ties() {
        let mut s = Selector::new(3);
        for (sc, id) in [(1.0, 5), (2.0, 9), (2.0, 3), (0.5, 1), (2.0, 4), (3.0, 7)] {
            s.offer(sc, id);
        }
        let mut ids = [0u32; 4];
        let mut scores = [0.0f32; 4];
        s.write(&mut ids, &mut scores);
        assert_eq!(ids, [7, 3, 4, NO_ID]);
        assert_eq!(scores[..3], [3.0, 2.0, 2.0]);
        assert_eq!(scores[3], f32::NEG_INFINITY);
    }
}
