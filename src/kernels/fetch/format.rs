//! Bank storage formats and the blocked row layout shared by the GPU kernels and the CPU path.
//!
//! A bank is stored as `u32` words in blocks of [`BLOCK_ROWS`] rows. A row has `W` data words,
//! `W` a multiple of 4 (zero padding). A block holds, for int8 banks, first the per-row scales
//! (f32 bits, one word per row), then the data in slabs of four words per row: data word `j` of
//! row `r` is at `header + (j / 4) * 4 * BLOCK_ROWS + 4 * r + j % 4`. A block of 8 rows is one
//! contiguous run of memory: one GPU invocation per row loads a `vec4<u32>` per slab and the 8
//! invocations of a block read one 128-byte line per slab (coalesced on a GPU; a sequential
//! stream for a software rasteriser's 8-wide SIMD group), and the CPU loop reads the block
//! front to back with four accumulator lanes per row.
//! The host keeps exactly the GPU's words, so a chunk of the CPU mirror is byte-for-byte the GPU
//! buffer.
//!
//! A data word holds one f32 ([`BankFormat::F32`]), two f16 ([`BankFormat::F16`], low half
//! first, as WGSL's `unpack2x16float` reads it) or four int8 ([`BankFormat::Int8`], lowest byte
//! first; the row's value is `q * scale`). Padding columns are zero.
//!
//! Dot products are accumulated in four lanes, lane `t` summing data word `4 * s + t` of each
//! slab `s` in order (for packed formats: the low halves, then the high halves; bytes 0 to 3),
//! and the lanes are combined as `(l0 + l1) + (l2 + l3)`: the same order on the GPU and the CPU.

use crate::kernels::KernelError;

/// Rows per block of the layout (`BR` in the shaders).
pub const BLOCK_ROWS: usize = 8;

/// Largest magnitude representable in f16; larger values cannot be stored in an f16 bank.
pub const F16_MAX: f32 = 65504.0;

/// How a bank stores its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BankFormat {
    /// 32-bit floats (exact).
    #[default]
    F32,
    /// IEEE half floats, two per word (half the bytes; ~3 significant digits).
    F16,
    /// Signed bytes with one f32 scale per row (`max |x| / 127`): a quarter of the bytes.
    Int8,
}

impl BankFormat {
    /// Parse the JS spelling: `"f32"`, `"f16"` or `"int8"` (also `"i8"`).
    pub fn parse(s: &str) -> Option<BankFormat> {
        match s {
            "f32" => Some(BankFormat::F32),
            "f16" => Some(BankFormat::F16),
            "int8" | "i8" => Some(BankFormat::Int8),
            _ => None,
        }
    }

    /// `"f32"`, `"f16"` or `"int8"`.
    pub fn as_str(self) -> &'static str {
        match self {
            BankFormat::F32 => "f32",
            BankFormat::F16 => "f16",
            BankFormat::Int8 => "int8",
        }
    }

    /// The `FORMAT` override constant of the shaders.
    pub fn shader_id(self) -> u32 {
        match self {
            BankFormat::F32 => 0,
            BankFormat::F16 => 1,
            BankFormat::Int8 => 2,
        }
    }

    /// Values per data word.
    pub fn per_word(self) -> usize {
        match self {
            BankFormat::F32 => 1,
            BankFormat::F16 => 2,
            BankFormat::Int8 => 4,
        }
    }

    /// Header words per row (the int8 scale).
    pub fn header(self) -> usize {
        match self {
            BankFormat::Int8 => 1,
            _ => 0,
        }
    }
}

/// The word geometry of a bank with `dims` dimensions in `format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Storage format.
    pub format: BankFormat,
    /// Dimensions of a row.
    pub dims: usize,
    /// Data words per row.
    pub words: usize,
}

impl Layout {
    /// The layout of `dims`-dimensional rows in `format` (`dims >= 1`).
    pub fn new(format: BankFormat, dims: usize) -> Layout {
        Layout {
            format,
            dims,
            words: dims.div_ceil(format.per_word()).next_multiple_of(4),
        }
    }

    /// Padded columns (`words * per_word`): queries are zero-padded to this length.
    pub fn cols(&self) -> usize {
        self.words * self.format.per_word()
    }

    /// Header plus data words of one row in the row-major staging format.
    pub fn row_words(&self) -> usize {
        self.format.header() + self.words
    }

    /// Words per block of [`BLOCK_ROWS`] rows.
    pub fn block_words(&self) -> usize {
        BLOCK_ROWS * self.row_words()
    }

    /// Bytes per row in the bank (including its share of the header).
    pub fn row_bytes(&self) -> usize {
        4 * self.row_words()
    }

    /// Index of data word `j` of chunk-local row `local` within a chunk's words.
    #[inline]
    pub fn word_index(&self, local: usize, j: usize) -> usize {
        let (blk, r) = (local / BLOCK_ROWS, local % BLOCK_ROWS);
        blk * self.block_words()
            + self.format.header() * BLOCK_ROWS
            + (j / 4) * 4 * BLOCK_ROWS
            + 4 * r
            + j % 4
    }

    /// A query (`dims` values) arranged for the lane-wise dot product: for each slab `s`, for
    /// each sub-value `e` of a word (0 for f32; low/high half; byte 0..3), the four lanes' query
    /// values `q[(4 * s + t) * per_word + e]`, zero-padded. Length `words * per_word`.
    pub fn arrange_query(&self, q: &[f32], out: &mut [f32]) {
        let p = self.format.per_word();
        for s in 0..self.words / 4 {
            for e in 0..p {
                for t in 0..4 {
                    let col = (4 * s + t) * p + e;
                    out[(s * p + e) * 4 + t] = q.get(col).copied().unwrap_or(0.0);
                }
            }
        }
    }

    /// Index of the int8 scale of chunk-local row `local`.
    #[inline]
    pub fn scale_index(&self, local: usize) -> usize {
        (local / BLOCK_ROWS) * self.block_words() + local % BLOCK_ROWS
    }

    /// Check that `rows` (row-major `[n, dims]`) can be stored in this format.
    pub fn check_rows(&self, name: &'static str, rows: &[f32]) -> Result<usize, KernelError> {
        let n = crate::kernels::rows_of(name, rows, self.dims)?;
        crate::kernels::check_finite(name, rows)?;
        if self.format == BankFormat::F16 {
            if let Some(index) = rows.iter().position(|v| v.abs() > F16_MAX) {
                return Err(KernelError::InvalidArgument {
                    name,
                    reason: format!(
                        "value {} at index {index} is outside the f16 range (|x| <= 65504)",
                        crate::num_fmt::Num(rows[index].into())
                    ),
                });
            }
        }
        Ok(n)
    }

    /// Encode row-major `rows` into the row-major staging format: per row, `header` words then
    /// `words` data words. The values must have passed [`Layout::check_rows`].
    pub fn encode_rows(&self, rows: &[f32]) -> Vec<u32> {
        let n = rows.len() / self.dims;
        let mut out = vec![0u32; n * self.row_words()];
        for (row, dst) in rows
            .chunks_exact(self.dims)
            .zip(out.chunks_exact_mut(self.row_words()))
        {
            self.encode_row(row, dst);
        }
        out
    }

    /// Encode one row into `dst` (`row_words` long, zeroed).
    pub fn encode_row(&self, row: &[f32], dst: &mut [u32]) {
        match self.format {
            BankFormat::F32 => {
                for (d, &x) in dst.iter_mut().zip(row) {
                    *d = x.to_bits();
                }
            }
            BankFormat::F16 => {
                for (d, pair) in dst.iter_mut().zip(row.chunks(2)) {
                    let lo = f32_to_f16_bits(pair[0]) as u32;
                    let hi = pair.get(1).map_or(0, |&x| f32_to_f16_bits(x) as u32);
                    *d = lo | (hi << 16);
                }
            }
            BankFormat::Int8 => {
                let (scale, inv) = int8_scale(row);
                dst[0] = scale.to_bits();
                for (d, quad) in dst[1..].iter_mut().zip(row.chunks(4)) {
                    let mut w = 0u32;
                    for (t, &x) in quad.iter().enumerate() {
                        w |= (quantize_i8(x, inv) as u8 as u32) << (8 * t);
                    }
                    *d = w;
                }
            }
        }
    }

    /// Decode one staged row (`row_words` words) back to `dims` f32 values (dequantised).
    pub fn decode_row(&self, src: &[u32], out: &mut [f32]) {
        match self.format {
            BankFormat::F32 => {
                for (o, &w) in out.iter_mut().zip(src) {
                    *o = f32::from_bits(w);
                }
            }
            BankFormat::F16 => {
                for (c, o) in out.iter_mut().enumerate() {
                    let w = src[c / 2];
                    *o = f16_bits_to_f32(if c % 2 == 0 { w & 0xFFFF } else { w >> 16 });
                }
            }
            BankFormat::Int8 => {
                let scale = f32::from_bits(src[0]);
                for (c, o) in out.iter_mut().enumerate() {
                    *o = i8_of(src[1 + c / 4], c % 4) as f32 * scale;
                }
            }
        }
    }
}

/// The int8 scale of a row (`max |x| / 127`) and the quantisation factor (`127 / max |x|`);
/// both zero for an all-zero row.
pub fn int8_scale(row: &[f32]) -> (f32, f32) {
    let m = row.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if m == 0.0 {
        (0.0, 0.0)
    } else {
        (m / 127.0, 127.0 / m)
    }
}

/// Quantise one value: `round(x * inv)` (half away from zero), clamped to [-127, 127].
#[inline]
pub fn quantize_i8(x: f32, inv: f32) -> i8 {
    (x * inv).round().clamp(-127.0, 127.0) as i8
}

/// Signed byte `t` (0 = lowest) of `w` (shift left, then arithmetic shift right: vectorises).
#[inline(always)]
pub fn i8_of(w: u32, t: usize) -> i8 {
    (((w << (24 - 8 * t)) as i32) >> 24) as i8
}

/// f32 to IEEE half bits, round to nearest even.
pub fn f32_to_f16_bits(x: f32) -> u16 {
    half::f16::from_f32(x).to_bits()
}

/// `2^112`: rebiases an f16 exponent placed in an f32's exponent bits (shared with the CPU
/// scan's vector decode).
pub(crate) const F16_REBIAS: f32 = f32::from_bits(0x7780_0000);

/// IEEE half bits (low 16 bits of `h`) to f32, branch-free so that loops over it vectorise.
/// Exact for every finite half, subnormals included (f16 banks never store inf or NaN).
#[inline(always)]
pub fn f16_bits_to_f32(h: u32) -> f32 {
    // Shift exponent and mantissa into place, then rebias the exponent with one multiply by
    // 2^112: exact for normal and subnormal halves alike.
    let mag = f32::from_bits((h & 0x7FFF) << 13) * F16_REBIAS;
    f32::from_bits(mag.to_bits() | ((h & 0x8000) << 16))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_conversion_matches_half_for_every_finite_half() {
        for h in 0u32..=0xFFFF {
            let want = half::f16::from_bits(h as u16);
            if !want.is_finite() {
                continue;
            }
            let got = f16_bits_to_f32(h);
            assert_eq!(got.to_bits(), want.to_f32().to_bits(), "half bits {h:#06x}");
        }
    }

    #[test]
    fn encode_decode_roundtrip() {
        let mut rng = crate::rng::Rng::new(1);
        for &format in &[BankFormat::F32, BankFormat::F16, BankFormat::Int8] {
            for dims in [1usize, 2, 3, 4, 5, 7, 384, 385] {
                let l = Layout::new(format, dims);
                let row = rng.vec_f32(dims);
                let words = l.encode_rows(&row);
                assert_eq!(words.len(), l.row_words());
                let mut back = vec![0.0; dims];
                l.decode_row(&words, &mut back);
                let tol = match format {
                    BankFormat::F32 => 0.0,
                    BankFormat::F16 => 1e-3,
                    BankFormat::Int8 => 1.0 / 127.0,
                };
                for (a, b) in row.iter().zip(&back) {
                    assert!((a - b).abs() <= tol, "{format:?} dims {dims}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn int8_zero_row_is_zero() {
        let l = Layout::new(BankFormat::Int8, 5);
        let w = l.encode_rows(&[0.0; 5]);
        let mut back = vec![1.0; 5];
        l.decode_row(&w, &mut back);
        assert_eq!(back, vec![0.0; 5]);
    }
}
