//! The CPU path of the flat top-k: the fallback when no GPU exists (or when the GPU's readback
//! latency dominates) and the oracle the GPU kernels are tested against.
//!
//! It scans the same blocked words as the GPU (see [`super::format`]) one block of
//! [`BLOCK_ROWS`] rows at a time, with explicit vectors ([`super::simd`]: SSE2 natively, AVX2
//! with two rows per vector when the CPU has it (detected at run time), `simd128` in the
//! browser). A register tile ([`tile`]) keeps four accumulator lanes per (row, query) pair: 8
//! rows for one query, or 4 rows (AVX2: 8) x [`CPU_QUERIES`] queries with the
//! queries packed so both operands are contiguous loads (a small GEMM: each word is loaded once
//! per tile, each query vector once per slab). Several queries over an f16 or int8 bank share
//! one decode of each block into f32. Each row's dot product is summed in the same order as the
//! GPU kernel whatever the tile. Selection keeps a sorted list per query behind a threshold
//! test, so almost every row costs one compare.

use super::format::{BankFormat, Layout, BLOCK_ROWS};
use super::simd::{avx2, prefetch_ahead, Avx2, FloatLanes, IntLanes, Lanes, X4};
use super::{TopkResult, NO_ID};

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

/// Words of one slab: four data words for each of the block's rows.
const SLAB: usize = 4 * BLOCK_ROWS;

/// How a format's data words hold values: `P` per word, value `e` of four words decoded into
/// f32 lanes (four per row; AVX2 holds two rows) by [`Words::decode`] (exactly the value the
/// format stores).
trait Words {
    const P: usize;
    fn decode<U: IntLanes>(x: U, e: usize) -> U::F;
}

/// f32 banks (and blocks already decoded by [`decode_block`]): one value per word.
struct F32Words;

/// f16 banks: the low half (`e = 0`), then the high half of each word.
struct F16Words;

/// int8 banks: bytes 0 (lowest) to 3 of each word, before the row's scale.
struct I8Words;

impl Words for F32Words {
    const P: usize = 1;
    #[inline(always)]
    fn decode<U: IntLanes>(x: U, _e: usize) -> U::F {
        x.cast_f32()
    }
}

impl Words for F16Words {
    const P: usize = 2;
    /// [`IntLanes::f16_half`]: exact for every finite half, subnormals included, and bit for bit
    /// [`super::format::f16_bits_to_f32`].
    #[inline(always)]
    fn decode<U: IntLanes>(x: U, e: usize) -> U::F {
        x.f16_half(e)
    }
}

impl Words for I8Words {
    const P: usize = 4;
    /// Byte `e` sign-extended by a left then an arithmetic right shift, converted exactly.
    #[inline(always)]
    fn decode<U: IntLanes>(x: U, e: usize) -> U::F {
        match e {
            0 => x.shl::<24>().sar::<24>(),
            1 => x.shl::<16>().sar::<24>(),
            2 => x.shl::<8>().sar::<24>(),
            _ => x.sar::<24>(),
        }
        .to_f32()
    }
}

/// int8 banks scanned with queries pre-scaled by 2^-24 ([`top_scaled`]): byte `e` of each word
/// is moved to the top byte ([`IntLanes::byte_top`]) and converted, which gives the byte times
/// 2^24 exactly, one or two operations fewer than sign-extending it first. Each product
/// `(b * 2^24) * (q * 2^-24)` is the same real number as `b * q`, so it rounds to the same
/// f32 and every sum is bit for bit that of [`I8Words`].
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
struct I8Top;

impl Words for I8Top {
    const P: usize = 4;
    #[inline(always)]
    fn decode<U: IntLanes>(x: U, e: usize) -> U::F {
        x.byte_top(e).to_f32()
    }
}

/// `queries * 2^-24` when that is exact for every value (each is zero or at least 2^-102 in
/// magnitude, so the scaled value stays a normal f32), else `None` (then [`I8Words`] is used).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn top_scaled(queries: &[f32]) -> Option<Vec<f32>> {
    const SCALE: f32 = 1.0 / (1u32 << 24) as f32;
    const SMALLEST: f32 = f32::MIN_POSITIVE * (1u32 << 24) as f32;
    queries
        .iter()
        .map(|&q| (q == 0.0 || q.abs() >= SMALLEST || !q.is_finite()).then_some(q * SCALE))
        .collect()
}

/// The register tile of the scan: `N` vectors of rows (`N * V::ROWS` rows from `r0`) of a block
/// against `Q` queries, `N * Q` vector accumulators (four lanes per row and query). `data` is
/// the block's slabs, `qp` the queries packed by [`pack_queries`]: for each slab `s` and value
/// `e`, the `Q` queries' lane vectors, so the inner loop reads both operands contiguously and
/// each word is loaded and decoded once for the `Q` queries. Lane `t` of (row, query) sums
/// value `e` of word `4 * s + t` over `s` then `e` in order, then the lanes are combined as
/// `(l0 + l1) + (l2 + l3)`: the order of the GPU kernels ([`super::format`]) whatever the
/// backend, `N` and `Q`.
#[inline(always)]
fn tile<V: Lanes, W: Words, const N: usize, const Q: usize>(
    v: V,
    data: &[u32],
    r0: usize,
    qp: &[[f32; 4]],
    out: &mut [[f32; BLOCK_ROWS]; Q],
) {
    let mut acc = [[v.zero(); N]; Q];
    for (slab, qs) in data.chunks_exact(SLAB).zip(qp.chunks_exact(W::P * Q)) {
        prefetch_ahead(slab);
        let x: [V::U; N] = std::array::from_fn(|i| v.load_rows(&slab[4 * (r0 + i * V::ROWS)..]));
        for e in 0..W::P {
            let d: [V::F; N] = std::array::from_fn(|i| W::decode(x[i], e));
            for (a, q) in acc.iter_mut().zip(&qs[e * Q..(e + 1) * Q]) {
                let q = v.load_query(q);
                for (ai, &di) in a.iter_mut().zip(&d) {
                    *ai = ai.mul_add(di, q);
                }
            }
        }
    }
    for (o, a) in out.iter_mut().zip(&acc) {
        for (i, ai) in a.iter().enumerate() {
            v.row_sums(*ai, &mut o[r0 + i * V::ROWS..]);
        }
    }
}

/// All rows of a block against `Q` packed queries, `N` vectors of rows at a time.
#[inline(always)]
fn score_rows<V: Lanes, W: Words, const N: usize, const Q: usize>(
    v: V,
    data: &[u32],
    qp: &[[f32; 4]],
    out: &mut [[f32; BLOCK_ROWS]; Q],
) {
    for g in 0..BLOCK_ROWS / (N * V::ROWS) {
        tile::<V, W, N, Q>(v, data, g * N * V::ROWS, qp, out);
    }
}

/// Decode a packed block's slabs (`data`) into f32 bits in `dst` (`P` times as many words):
/// value `e` of slab `s` becomes slab `s * P + e`, so the [`F32Words`] tiles over `dst` with
/// the same packed queries compute the same products in the same order. Done once per block
/// when several queries share it.
#[inline(always)]
fn decode_block<V: Lanes, W: Words>(v: V, data: &[u32], dst: &mut [u32]) {
    for (slab, d) in data
        .chunks_exact(SLAB)
        .zip(dst.chunks_exact_mut(SLAB * W::P))
    {
        prefetch_ahead(slab);
        for r in (0..BLOCK_ROWS).step_by(V::ROWS) {
            let x = v.load_rows(&slab[4 * r..]);
            for e in 0..W::P {
                v.store_bits(W::decode(x, e), &mut d[e * SLAB + 4 * r..]);
            }
        }
    }
}

/// [`score_rows`] on the AVX2 backend: the `#[target_feature]` function the tiles are inlined
/// into, so they compile to 256-bit instructions.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,f16c")]
fn avx2_rows<W: Words, const N: usize, const Q: usize>(
    v: Avx2,
    data: &[u32],
    qp: &[[f32; 4]],
    out: &mut [[f32; BLOCK_ROWS]; Q],
) {
    score_rows::<Avx2, W, N, Q>(v, data, qp, out)
}

/// [`decode_block`] on the AVX2 backend.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,f16c")]
fn avx2_decode<W: Words>(v: Avx2, data: &[u32], dst: &mut [u32]) {
    decode_block::<Avx2, W>(v, data, dst)
}

/// [`score_rows`] on AVX2 when `wide` is given (`N8` vectors of two rows), else on four lanes
/// (`N4` vectors of one row): the same scores bit for bit.
#[inline(always)]
fn rows<W: Words, const N4: usize, const N8: usize, const Q: usize>(
    wide: Option<Avx2>,
    data: &[u32],
    qp: &[[f32; 4]],
    out: &mut [[f32; BLOCK_ROWS]; Q],
) {
    #[cfg(target_arch = "x86_64")]
    if let Some(v) = wide {
        // SAFETY: an `Avx2` token exists only when the CPU has AVX2.
        return unsafe { avx2_rows::<W, N8, Q>(v, data, qp, out) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = wide;
    score_rows::<X4, W, N4, Q>(X4, data, qp, out)
}

/// [`decode_block`] on AVX2 when `wide` is given, else on four lanes.
#[inline(always)]
fn decode_on<W: Words>(wide: Option<Avx2>, data: &[u32], dst: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(v) = wide {
        // SAFETY: an `Avx2` token exists only when the CPU has AVX2.
        return unsafe { avx2_decode::<W>(v, data, dst) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = wide;
    decode_block::<X4, W>(X4, data, dst)
}

/// The data words of `block` (after the int8 scales).
#[inline]
fn block_data<'a>(layout: &Layout, block: &'a [u32]) -> &'a [u32] {
    let hdr = layout.format.header() * BLOCK_ROWS;
    &block[hdr..hdr + layout.words * BLOCK_ROWS]
}

/// Multiply int8 scores by their rows' scales (the block's first words); other formats as is.
#[inline]
fn apply_scales(layout: &Layout, block: &[u32], out: &mut [f32; BLOCK_ROWS]) {
    if layout.format == BankFormat::Int8 {
        for (o, &sw) in out.iter_mut().zip(&block[..BLOCK_ROWS]) {
            *o *= f32::from_bits(sw);
        }
    }
}

/// Scores of one query (arranged by [`Layout::arrange_query`], as lane vectors: see
/// [`query_lanes`]) against one block: `out[r]` for the block's rows (all are computed; rows
/// past the end read zero padding).
#[inline]
pub(crate) fn score_block(
    layout: &Layout,
    block: &[u32],
    q: &[[f32; 4]],
    out: &mut [f32; BLOCK_ROWS],
) {
    score_block_on(avx2(), layout, block, q, out)
}

/// [`score_block`] on the given backend ([`avx2`] or not).
#[inline]
fn score_block_on(
    wide: Option<Avx2>,
    layout: &Layout,
    block: &[u32],
    q: &[[f32; 4]],
    out: &mut [f32; BLOCK_ROWS],
) {
    let data = block_data(layout, block);
    let one: &mut [[f32; BLOCK_ROWS]; 1] = std::array::from_mut(out);
    match layout.format {
        BankFormat::F32 => rows::<F32Words, BLOCK_ROWS, 4, 1>(wide, data, q, one),
        BankFormat::F16 => rows::<F16Words, BLOCK_ROWS, 4, 1>(wide, data, q, one),
        BankFormat::Int8 => rows::<I8Words, BLOCK_ROWS, 4, 1>(wide, data, q, one),
    }
    apply_scales(layout, block, out);
}

/// One arranged query ([`Layout::arrange_query`]) as lane vectors.
pub(crate) fn query_lanes(q: &[f32]) -> Vec<[f32; 4]> {
    q.chunks_exact(4)
        .map(|c| c.try_into().expect("four lanes"))
        .collect()
}

/// Queries `q0..q0 + nq` of the arranged `qp` (`cols` values each) packed for a tile of `nq`
/// queries: for each slab and value (`i = s * P + e`), the queries' lane vectors in turn.
fn pack_queries(qp: &[f32], cols: usize, q0: usize, nq: usize) -> Vec<[f32; 4]> {
    let mut out = vec![[0.0f32; 4]; cols / 4 * nq];
    for j in 0..nq {
        let q = &qp[(q0 + j) * cols..(q0 + j + 1) * cols];
        for (i, lanes) in q.chunks_exact(4).enumerate() {
            out[i * nq + j] = lanes.try_into().expect("four lanes");
        }
    }
    out
}

/// Queries per multi-query tile (with [`MULTI_ROWS`] rows: 8 accumulators in registers).
pub(crate) const CPU_QUERIES: usize = 2;

/// Rows per multi-query tile on four lanes (AVX2: twice as many, in [`MULTI_ROWS`] vectors).
const MULTI_ROWS: usize = 4;

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
    scan_on(avx2(), layout, words, n, live, mask, queries, k)
}

/// [`scan`] on the given backend ([`avx2`] or not).
#[allow(clippy::too_many_arguments)]
fn scan_on(
    wide: Option<Avx2>,
    layout: &Layout,
    words: &[u32],
    n: usize,
    live: &[u32],
    mask: Option<&[u32]>,
    queries: &[f32],
    k: usize,
) -> TopkResult {
    let b = queries.len() / layout.dims;
    let sel = match layout.format {
        BankFormat::F32 => scan_with::<F32Words>(wide, layout, words, n, live, mask, queries, k),
        BankFormat::F16 => scan_with::<F16Words>(wide, layout, words, n, live, mask, queries, k),
        // x86-64 only: elsewhere (wasm) the byte shuffle is not one instruction, the gain is
        // one shift in seven and the second instance would cost the package ~1.5 KB.
        #[cfg(target_arch = "x86_64")]
        BankFormat::Int8 => match top_scaled(queries) {
            Some(q) => scan_with::<I8Top>(wide, layout, words, n, live, mask, &q, k),
            None => scan_with::<I8Words>(wide, layout, words, n, live, mask, queries, k),
        },
        #[cfg(not(target_arch = "x86_64"))]
        BankFormat::Int8 => scan_with::<I8Words>(wide, layout, words, n, live, mask, queries, k),
    };
    let mut out = TopkResult::empty(b, k);
    for (q, s) in sel.iter().enumerate() {
        s.write(
            &mut out.ids[q * k..(q + 1) * k],
            &mut out.scores[q * k..(q + 1) * k],
        );
    }
    out
}

/// [`scan`] for one format. Queries are scored [`CPU_QUERIES`] at a time against each block
/// (register tiles of [`MULTI_ROWS`] rows), the remaining ones alone; with several queries, f16
/// and int8 blocks are decoded once into f32 first ([`decode_block`]) rather than once per
/// tile. Every query's scores are those of [`score_block`], bit for bit, on either backend.
#[allow(clippy::too_many_arguments)]
fn scan_with<W: Words>(
    wide: Option<Avx2>,
    layout: &Layout,
    words: &[u32],
    n: usize,
    live: &[u32],
    mask: Option<&[u32]>,
    queries: &[f32],
    k: usize,
) -> Vec<Selector> {
    let b = queries.len() / layout.dims;
    let qp = arrange_queries(layout, queries);
    let cols = layout.cols();
    let bw = layout.block_words();
    let groups: Vec<Vec<[f32; 4]>> = (0..b / CPU_QUERIES)
        .map(|g| pack_queries(&qp, cols, g * CPU_QUERIES, CPU_QUERIES))
        .collect();
    // The queries after the last full group, one at a time.
    let tail: Vec<(usize, Vec<[f32; 4]>)> = (groups.len() * CPU_QUERIES..b)
        .map(|q| (q, pack_queries(&qp, cols, q, 1)))
        .collect();
    // f16/int8 with several queries: decode each block once into f32 words.
    let decode = W::P > 1 && b > 1;
    let mut decoded = vec![0u32; if decode { cols * BLOCK_ROWS } else { 0 }];
    let mut sel: Vec<Selector> = (0..b).map(|_| Selector::new(k)).collect();
    let mut multi = [[0.0f32; BLOCK_ROWS]; CPU_QUERIES];
    let mut one = [[0.0f32; BLOCK_ROWS]; 1];
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
        let data = block_data(layout, block);
        let data = if decode {
            decode_on::<W>(wide, data, &mut decoded);
            &decoded[..]
        } else {
            data
        };
        for (g, qg) in groups.iter().enumerate() {
            rows::<F32Words, MULTI_ROWS, MULTI_ROWS, CPU_QUERIES>(wide, data, qg, &mut multi);
            for (j, m) in multi.iter_mut().enumerate() {
                apply_scales(layout, block, m);
                offer(&mut sel[g * CPU_QUERIES + j], m);
            }
        }
        for (qi, q) in &tail {
            if decode || W::P == 1 {
                rows::<F32Words, BLOCK_ROWS, 4, 1>(wide, data, q, &mut one);
            } else {
                rows::<W, BLOCK_ROWS, 4, 1>(wide, data, q, &mut one);
            }
            apply_scales(layout, block, &mut one[0]);
            offer(&mut sel[*qi], &one[0]);
        }
    }
    sel
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

    use crate::kernels::fetch::format::{f16_bits_to_f32, i8_of};
    use crate::kernels::fetch::simd::U4;

    /// Scalar reference of the scan's summation order (the GPU kernels' order): lane `t` sums
    /// value `e` of word `4 * s + t` over `s` then `e`, lanes combined `(l0 + l1) + (l2 + l3)`,
    /// times the int8 scale.
    fn reference_block(l: &Layout, block: &[u32], q: &[f32]) -> [f32; BLOCK_ROWS] {
        let p = l.format.per_word();
        let data = block_data(l, block);
        let mut out = [0.0f32; BLOCK_ROWS];
        for (r, o) in out.iter_mut().enumerate() {
            let mut acc = [0.0f32; 4];
            for s in 0..l.words / 4 {
                for e in 0..p {
                    for (t, a) in acc.iter_mut().enumerate() {
                        let w = data[s * SLAB + 4 * r + t];
                        let v = match l.format {
                            BankFormat::F32 => f32::from_bits(w),
                            BankFormat::F16 => {
                                f16_bits_to_f32(if e == 0 { w & 0xFFFF } else { w >> 16 })
                            }
                            BankFormat::Int8 => i8_of(w, e) as f32,
                        };
                        *a += v * q[(s * p + e) * 4 + t];
                    }
                }
            }
            *o = (acc[0] + acc[1]) + (acc[2] + acc[3]);
            if l.format == BankFormat::Int8 {
                *o *= f32::from_bits(block[r]);
            }
        }
        out
    }

    fn random_bank(rng: &mut crate::rng::Rng, l: &Layout, n: usize) -> Vec<u32> {
        let mut words = vec![0u32; n.div_ceil(BLOCK_ROWS) * l.block_words()];
        // Mixed magnitudes, exact zeros and (for f16) subnormal halves.
        let rows: Vec<f32> = (0..n * l.dims)
            .map(|i| match i % 7 {
                0 => 0.0,
                1 => rng.normal() * 1e-6,
                _ => rng.normal(),
            })
            .collect();
        scatter(l, &mut words, 0, &l.encode_rows(&rows));
        words
    }

    #[test]
    fn packed_decoders_equal_scalar_decode() {
        for h in 0u32..=0xFFFF {
            let w = [h, h << 16, h | (h << 16), h ^ 0x5A5A_0000];
            let x = U4::load(&w);
            for (e, got) in [F16Words::decode(x, 0), F16Words::decode(x, 1)]
                .iter()
                .enumerate()
            {
                let want = w.map(|w| f16_bits_to_f32(if e == 0 { w & 0xFFFF } else { w >> 16 }));
                assert_eq!(
                    got.to_array().map(f32::to_bits),
                    want.map(f32::to_bits),
                    "{w:x?} e={e}"
                );
            }
        }
        // Both backends (AVX2 converts with F16C) over every finite half, in either position.
        let finite: Vec<u32> = (0u32..=0xFFFF).filter(|h| h & 0x7C00 != 0x7C00).collect();
        let mut data: Vec<u32> = finite
            .iter()
            .zip(finite.iter().rev())
            .map(|(&lo, &hi)| lo | (hi << 16))
            .collect();
        data.resize(data.len().next_multiple_of(SLAB), 0);
        for wide in [None, crate::kernels::fetch::simd::avx2_detected()] {
            let mut dst = vec![0u32; 2 * data.len()];
            decode_on::<F16Words>(wide, &data, &mut dst);
            for (s, (slab, d)) in data
                .chunks_exact(SLAB)
                .zip(dst.chunks_exact(2 * SLAB))
                .enumerate()
            {
                for (i, &w) in slab.iter().enumerate() {
                    for e in 0..2 {
                        let want = f16_bits_to_f32((w >> (16 * e)) & 0xFFFF).to_bits();
                        assert_eq!(
                            d[e * SLAB + i],
                            want,
                            "word {:#x} half {e} (slab {s}, avx2 {})",
                            w,
                            wide.is_some()
                        );
                    }
                }
            }
        }
        let mut rng = crate::rng::Rng::new(3);
        for _ in 0..1000 {
            let w: [u32; 4] = std::array::from_fn(|_| rng.next_u64() as u32);
            for e in 0..4 {
                let got = I8Words::decode(U4::load(&w), e).to_array();
                assert_eq!(got, w.map(|w| i8_of(w, e) as f32));
                let top = I8Top::decode(U4::load(&w), e).to_array();
                assert_eq!(top, w.map(|w| i8_of(w, e) as f32 * 16_777_216.0));
            }
        }
    }

    #[test]
    fn tiles_equal_the_scalar_order_bitwise() {
        let mut rng = crate::rng::Rng::new(44);
        for format in [BankFormat::F32, BankFormat::F16, BankFormat::Int8] {
            for dims in [1usize, 3, 5, 7, 33, 384, 385] {
                let l = Layout::new(format, dims);
                let words = random_bank(&mut rng, &l, BLOCK_ROWS);
                let cols = l.cols();
                let qp = arrange_queries(&l, &rng.vec_f32(CPU_QUERIES * dims));
                let want: Vec<[f32; BLOCK_ROWS]> = qp
                    .chunks_exact(cols)
                    .map(|q| reference_block(&l, &words, q))
                    .collect();
                let bits = |s: &[f32; BLOCK_ROWS]| s.map(f32::to_bits);
                for wide in backends() {
                    let on = if wide.is_some() { "avx2" } else { "4 lanes" };
                    for (q, w) in qp.chunks_exact(cols).zip(&want) {
                        let mut single = [0.0f32; BLOCK_ROWS];
                        score_block_on(wide, &l, &words, &query_lanes(q), &mut single);
                        assert_eq!(bits(&single), bits(w), "{format:?} d={dims} {on} single");
                    }
                    // Decoded once into f32, then the multi-query and one-query f32 tiles.
                    let data = block_data(&l, &words);
                    let mut decoded = vec![0u32; cols * BLOCK_ROWS];
                    let data = match format {
                        BankFormat::F32 => data,
                        BankFormat::F16 => {
                            decode_on::<F16Words>(wide, data, &mut decoded);
                            &decoded[..]
                        }
                        BankFormat::Int8 => {
                            decode_on::<I8Words>(wide, data, &mut decoded);
                            &decoded[..]
                        }
                    };
                    let mut multi = [[0.0f32; BLOCK_ROWS]; CPU_QUERIES];
                    rows::<F32Words, MULTI_ROWS, MULTI_ROWS, CPU_QUERIES>(
                        wide,
                        data,
                        &pack_queries(&qp, cols, 0, CPU_QUERIES),
                        &mut multi,
                    );
                    for (m, w) in multi.iter_mut().zip(&want) {
                        apply_scales(&l, &words, m);
                        assert_eq!(bits(m), bits(w), "{format:?} d={dims} {on} multi");
                    }
                    let mut one = [[0.0f32; BLOCK_ROWS]; 1];
                    rows::<F32Words, BLOCK_ROWS, 4, 1>(
                        wide,
                        data,
                        &pack_queries(&qp, cols, 1, 1),
                        &mut one,
                    );
                    apply_scales(&l, &words, &mut one[0]);
                    assert_eq!(
                        bits(&one[0]),
                        bits(&want[1]),
                        "{format:?} d={dims} {on} decoded"
                    );
                }
            }
        }
    }

    /// The backends to test: four lanes, and AVX2 when this CPU has it (whatever
    /// `MNEMO_CPU_NO_AVX2` says).
    fn backends() -> Vec<Option<Avx2>> {
        let wide = crate::kernels::fetch::simd::avx2_detected();
        if wide.is_none() {
            eprintln!("no AVX2 on this CPU: only the four-lane path is tested");
        }
        [None].into_iter().chain(wide.map(Some)).collect()
    }

    #[test]
    fn scan_equals_reference_selection_on_seeded_shapes() {
        let mut rng = crate::rng::Rng::new(0x5CA7);
        for case in 0..90 {
            let format = [BankFormat::F32, BankFormat::F16, BankFormat::Int8][case % 3];
            let n = *rng.pick(&[0usize, 1, 5, 8, 13, 64, 131, 300]);
            let dims = *rng.pick(&[1usize, 3, 6, 9, 33, 100, 300]);
            let b = *rng.pick(&[1usize, 2, 3, 5, 16, 64]);
            let k = *rng.pick(&[1usize, 4, 10, 400]);
            let l = Layout::new(format, dims);
            let words = random_bank(&mut rng, &l, n);
            let words32 = n.div_ceil(32).max(1);
            let live: Vec<u32> = (0..words32)
                .map(|_| rng.next_u64() as u32 | 0x0F0F_0F0F)
                .collect();
            let mask_mode = rng.below(3);
            let mask: Vec<u32> = (0..words32)
                .map(|_| {
                    if mask_mode == 1 {
                        0
                    } else {
                        rng.next_u64() as u32
                    }
                })
                .collect();
            let mask = (mask_mode != 0).then_some(&mask[..]);
            let mut queries = rng.vec_f32(b * dims);
            if case % 9 == 2 {
                // A value below 2^-102: int8 cannot pre-scale these queries (`top_scaled`).
                queries[b * dims / 2] = 3.0e-33;
            }
            let qp = arrange_queries(&l, &queries);
            let mut want = TopkResult::empty(b, k);
            for (qi, q) in qp.chunks_exact(l.cols()).enumerate() {
                let mut all = Vec::new();
                for blk in 0..n.div_ceil(BLOCK_ROWS) {
                    let bits = block_bits(&live, mask, blk, n);
                    let s =
                        reference_block(&l, &words[blk * l.block_words()..][..l.block_words()], q);
                    for (r, &sc) in s.iter().enumerate() {
                        if bits >> r & 1 == 1 {
                            all.push((sc, (blk * BLOCK_ROWS + r) as u32));
                        }
                    }
                }
                // Equal scores (0.0 and -0.0 included) by lower row id, as `better`.
                all.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap().then(a.1.cmp(&b.1)));
                for (t, (s, i)) in all.into_iter().take(k).enumerate() {
                    want.ids[qi * k + t] = i;
                    want.scores[qi * k + t] = s;
                }
            }
            for wide in backends() {
                let got = scan_on(wide, &l, &words, n, &live, mask, &queries, k);
                let what = format!(
                    "case {case}: {format:?} n={n} d={dims} b={b} k={k} mask={mask_mode} avx2={}",
                    wide.is_some()
                );
                assert_eq!(got.ids, want.ids, "{what}");
                assert_eq!(
                    got.scores.iter().map(|s| s.to_bits()).collect::<Vec<_>>(),
                    want.scores.iter().map(|s| s.to_bits()).collect::<Vec<_>>(),
                    "{what}"
                );
                if mask_mode == 1 {
                    assert!(got.ids.iter().all(|&i| i == NO_ID), "{what}");
                }
            }
        }
    }

    #[test]
    fn int8_prescaling_is_exact_or_refused() {
        let ok = top_scaled(&[0.0, -0.0, 1.0, -3.5e-20, 1.98e-31, 3.0e38]).unwrap();
        assert_eq!(ok[2], 1.0 / 16_777_216.0);
        assert_eq!(ok[4] * 16_777_216.0, 1.98e-31);
        assert!(top_scaled(&[1.0, 1.9e-31]).is_none());
        assert!(top_scaled(&[f32::from_bits(1)]).is_none());
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
