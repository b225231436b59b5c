//! Lane vectors for the CPU scan of the flat top-k ([`super::cpu`]): four-lane f32 / 32-bit
//! integer vectors [`F4`] / [`U4`] on every target and, on x86-64 with AVX2, eight-lane ones
//! holding two rows at once, with exactly the operations the scan needs (load, separate multiply
//! and add — never fused —, shifts, mask, int-to-float, bit casts).
//!
//! The scan is written once, generic over [`Lanes`] (a backend token that makes the vectors) and
//! the [`FloatLanes`] / [`IntLanes`] operations. Backends, with identical results lane for lane:
//! - [`X4`], four lanes = one row's four accumulator lanes: SSE2 on x86-64 (the x86-64 baseline,
//!   always present), `simd128` on wasm32 (the browser build enables it in
//!   `.cargo/config.toml`), plain arrays elsewhere;
//! - [`Avx2`] (x86-64 only), eight lanes = two adjacent rows of a slab (one contiguous 32-byte
//!   load), the query's four lanes duplicated into both halves, so each lane computes the same
//!   products and sums in the same order as with [`X4`]; half the instructions per row; f16
//!   halves converted by F16C's `vcvtph2ps` (exact, and without the microcode assist the shift
//!   decode's multiply takes on subnormal halves). Chosen at run time by [`avx2`]
//!   (`is_x86_feature_detected!` AVX2 and F16C, checked once; `MNEMO_CPU_NO_AVX2=1` forces
//!   [`X4`], for A/B benchmarks). No FMA and no AVX-512 (FMA would change the scores).
//!
//! Explicit intrinsics rather than auto-vectorisation because LLVM's SLP vectoriser packs the
//! register-blocked scan the wrong way round (across rows, with shuffles and broadcasts and
//! spilled accumulators: several times slower), and because the browser package is built with
//! low inlining/unrolling thresholds.

pub(crate) use imp::{F4, U4};
#[cfg(all(target_arch = "x86_64", test))]
pub(crate) use x86_avx2::avx2_detected;
#[cfg(target_arch = "x86_64")]
pub(crate) use x86_avx2::{avx2, Avx2};

/// Bytes ahead of the current slab that the scan asks the CPU to fetch ([`prefetch_ahead`]).
/// The hardware prefetcher alone keeps too few lines in flight once the decode work sits
/// between the loads (an f16 scan of a 77 MB bank streamed at about half the speed of a plain
/// read); 4–8 KiB ahead closed most of that gap on the 2-core Xeon here.
#[cfg(target_arch = "x86_64")]
pub(crate) const PREFETCH_BYTES: usize = 6144;

/// Hint that the two cache lines [`PREFETCH_BYTES`] past the start of `w` will be read soon
/// (x86-64: `prefetcht0`, which never faults, so the address may lie past the bank; elsewhere
/// nothing: wasm has no prefetch).
#[inline(always)]
pub(crate) fn prefetch_ahead(w: &[u32]) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = w.as_ptr().wrapping_byte_add(PREFETCH_BYTES) as *const i8;
        // SAFETY: `prefetcht0` (SSE, in the x86-64 baseline) only hints; it reads nothing
        // architecturally and does not fault, whatever the address.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(p);
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(64));
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = w;
}

/// f32 lanes: the arithmetic of the scan.
pub(crate) trait FloatLanes: Copy {
    /// `self + a * b`, rounded after the multiply and after the add.
    fn mul_add(self, a: Self, b: Self) -> Self;
    /// `self * x` in every lane.
    fn mul_splat(self, x: f32) -> Self;
}

/// 32-bit integer lanes: the decoding of f16 / int8 words.
pub(crate) trait IntLanes: Copy {
    type F: FloatLanes;
    fn shl<const S: i32>(self) -> Self;
    /// Arithmetic (sign-extending) shift right.
    fn sar<const S: i32>(self) -> Self;
    fn and(self, m: u32) -> Self;
    fn cast_f32(self) -> Self::F;
    /// The lanes as signed integers converted to f32 (exact below 2^24).
    fn to_f32(self) -> Self::F;
    /// Half `e` (0 = low) of each lane as f32, exactly (bit for bit
    /// [`super::format::f16_bits_to_f32`], for every finite half): half `e` moved to the top 16
    /// bits; the arithmetic shift by 3 puts its exponent and mantissa at bits 27..13 (an f32's,
    /// exponent 112 too small) and keeps its sign in bit 31; the mask clears the sign copies and
    /// the other half, and one multiply by 2^112 rebiases (the sign rides through it). AVX2
    /// converts with `vcvtph2ps` instead.
    #[inline(always)]
    fn f16_half(self, e: usize) -> Self::F {
        let top = if e == 0 { self.shl::<16>() } else { self };
        top.sar::<3>()
            .and(0x8FFF_E000)
            .cast_f32()
            .mul_splat(super::format::F16_REBIAS)
    }
    /// Byte `e` (0 = lowest) of each lane moved to the top byte, the other bytes cleared (the
    /// signed byte times 2^24 as an i32). Shifts and a mask; AVX2 does it in one byte shuffle.
    #[inline(always)]
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    fn byte_top(self, e: usize) -> Self {
        match e {
            0 => self.shl::<24>(),
            1 => self.shl::<16>().and(0xFF00_0000),
            2 => self.shl::<8>().and(0xFF00_0000),
            _ => self.and(0xFF00_0000),
        }
    }
}

/// A vector backend (a token: holding one proves its instructions can run): `ROWS` rows of a
/// slab per vector, four lanes per row.
pub(crate) trait Lanes: Copy {
    type F: FloatLanes;
    type U: IntLanes<F = Self::F>;
    /// Rows per vector.
    const ROWS: usize;
    fn zero(self) -> Self::F;
    /// The first `4 * ROWS` words of `w` (rows `r..r + ROWS` of a slab from `4 * r`).
    fn load_rows(self, w: &[u32]) -> Self::U;
    /// One row's four query lanes, repeated for each row of the vector.
    fn load_query(self, q: &[f32; 4]) -> Self::F;
    /// Each row's lanes summed as `(l0 + l1) + (l2 + l3)` into `out[..ROWS]`.
    fn row_sums(self, acc: Self::F, out: &mut [f32]);
    /// The lanes' bits into `out[..4 * ROWS]`.
    fn store_bits(self, v: Self::F, out: &mut [u32]);
}

/// The four-lane backend (SSE2 / `simd128` / arrays): always available.
#[derive(Clone, Copy)]
pub(crate) struct X4;

impl FloatLanes for F4 {
    #[inline(always)]
    fn mul_add(self, a: F4, b: F4) -> F4 {
        F4::mul_add(self, a, b)
    }
    #[inline(always)]
    fn mul_splat(self, x: f32) -> F4 {
        self.mul(F4::splat(x))
    }
}

impl IntLanes for U4 {
    type F = F4;
    #[inline(always)]
    fn shl<const S: i32>(self) -> U4 {
        U4::shl::<S>(self)
    }
    #[inline(always)]
    fn sar<const S: i32>(self) -> U4 {
        U4::sar::<S>(self)
    }
    #[inline(always)]
    fn and(self, m: u32) -> U4 {
        U4::and(self, m)
    }
    #[inline(always)]
    fn cast_f32(self) -> F4 {
        U4::cast_f32(self)
    }
    #[inline(always)]
    fn to_f32(self) -> F4 {
        U4::to_f32(self)
    }
}

impl Lanes for X4 {
    type F = F4;
    type U = U4;
    const ROWS: usize = 1;
    #[inline(always)]
    fn zero(self) -> F4 {
        F4::zero()
    }
    #[inline(always)]
    fn load_rows(self, w: &[u32]) -> U4 {
        U4::load(w[..4].try_into().expect("one row"))
    }
    #[inline(always)]
    fn load_query(self, q: &[f32; 4]) -> F4 {
        F4::load(q)
    }
    #[inline(always)]
    fn row_sums(self, acc: F4, out: &mut [f32]) {
        let l = acc.to_array();
        out[0] = (l[0] + l[1]) + (l[2] + l[3]);
    }
    #[inline(always)]
    fn store_bits(self, v: F4, out: &mut [u32]) {
        out[..4].copy_from_slice(&v.to_bits().to_array());
    }
}

/// Stand-in off x86-64: no AVX2 backend (uninhabited).
#[cfg(not(target_arch = "x86_64"))]
#[derive(Clone, Copy)]
pub(crate) enum Avx2 {}

/// Off x86-64: never.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn avx2() -> Option<Avx2> {
    None
}

/// Off x86-64: never.
#[cfg(not(target_arch = "x86_64"))]
#[cfg(test)]
pub(crate) fn avx2_detected() -> Option<Avx2> {
    None
}

/// The eight-lane AVX2 backend: two rows per 256-bit vector.
#[cfg(target_arch = "x86_64")]
mod x86_avx2 {
    // SAFETY (every `unsafe` block in this module): the intrinsics are AVX/AVX2/F16C, and the
    // vectors `F8` / `U8` (private fields) are only created by methods of an `Avx2` token, or
    // from other such vectors; a token exists only after `is_x86_feature_detected!` found both
    // "avx2" (which also checks that the OS saves the 256-bit registers) and "f16c" (every AVX2
    // CPU has it), so the instructions can run.
    // Loads and stores touch the 16 / 32 bytes of a `&[_; 4]` / `&[_; 8]` (unaligned).
    use super::{FloatLanes, IntLanes, Lanes};
    use core::arch::x86_64::*;
    use std::sync::OnceLock;

    /// Proof that AVX2 is available (see [`avx2`]).
    #[derive(Clone, Copy)]
    pub(crate) struct Avx2(());

    /// Eight f32 lanes: two rows' four lanes.
    #[derive(Clone, Copy)]
    pub(crate) struct F8(__m256);

    /// Eight 32-bit integer lanes: two rows' four words.
    #[derive(Clone, Copy)]
    pub(crate) struct U8(__m256i);

    /// The AVX2 backend when this CPU has it and `MNEMO_CPU_NO_AVX2` is unset, empty or `0`
    /// (both read once per process).
    pub(crate) fn avx2() -> Option<Avx2> {
        static ON: OnceLock<bool> = OnceLock::new();
        let on = *ON.get_or_init(|| {
            avx2_detected().is_some()
                && std::env::var_os("MNEMO_CPU_NO_AVX2").is_none_or(|v| v.is_empty() || v == "0")
        });
        if on {
            avx2_detected()
        } else {
            None
        }
    }

    /// The AVX2 backend when this CPU has it, whatever the environment.
    pub(crate) fn avx2_detected() -> Option<Avx2> {
        (is_x86_feature_detected!("avx2") && is_x86_feature_detected!("f16c")).then_some(Avx2(()))
    }

    impl FloatLanes for F8 {
        #[inline(always)]
        fn mul_add(self, a: F8, b: F8) -> F8 {
            F8(unsafe { _mm256_add_ps(self.0, _mm256_mul_ps(a.0, b.0)) })
        }
        #[inline(always)]
        fn mul_splat(self, x: f32) -> F8 {
            F8(unsafe { _mm256_mul_ps(self.0, _mm256_set1_ps(x)) })
        }
    }

    impl IntLanes for U8 {
        type F = F8;
        #[inline(always)]
        fn shl<const S: i32>(self) -> U8 {
            U8(unsafe { _mm256_slli_epi32::<S>(self.0) })
        }
        #[inline(always)]
        fn sar<const S: i32>(self) -> U8 {
            U8(unsafe { _mm256_srai_epi32::<S>(self.0) })
        }
        #[inline(always)]
        fn and(self, m: u32) -> U8 {
            U8(unsafe { _mm256_and_si256(self.0, _mm256_set1_epi32(m as i32)) })
        }
        #[inline(always)]
        fn cast_f32(self) -> F8 {
            F8(unsafe { _mm256_castsi256_ps(self.0) })
        }
        #[inline(always)]
        fn to_f32(self) -> F8 {
            F8(unsafe { _mm256_cvtepi32_ps(self.0) })
        }
        /// `vcvtph2ps` (F16C): one in-lane byte shuffle gathers each row's low halves into its
        /// lane's low 8 bytes and high halves into the high 8, a cross-lane qword permute puts
        /// both rows' halves `e` in one 128-bit half, which converts exactly — subnormal halves
        /// included, without the microcode assist that the shift decode's multiply of a
        /// subnormal f32 by 2^112 takes on x86 (~0.1% of a normalised embedding's halves are
        /// subnormal; at 1M rows those assists were a tenth of the scan). The two calls for
        /// `e = 0, 1` share the shuffle and permute once inlined.
        #[inline(always)]
        fn f16_half(self, e: usize) -> F8 {
            unsafe {
                let g = _mm256_shuffle_epi8(
                    self.0,
                    _mm256_setr_epi8(
                        0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15, 0, 1, 4, 5, 8, 9, 12,
                        13, 2, 3, 6, 7, 10, 11, 14, 15,
                    ),
                );
                // qwords [0, 2, 1, 3]: both rows' low halves, then both rows' high halves.
                let p = _mm256_permute4x64_epi64::<0b11_01_10_00>(g);
                let h = if e == 0 {
                    _mm256_castsi256_si128(p)
                } else {
                    _mm256_extracti128_si256::<1>(p)
                };
                F8(_mm256_cvtph_ps(h))
            }
        }
        /// One `vpshufb` (a shuffle port) instead of two shifts (the ports the conversion and
        /// the multiply-add compete for): control byte 3 of each lane picks byte `e` of the
        /// lane, the others have their top bit set (zero).
        #[inline(always)]
        fn byte_top(self, e: usize) -> U8 {
            let pick = |l: u32| 0x0080_8080 | ((4 * l + e as u32) << 24);
            let c = [pick(0), pick(1), pick(2), pick(3)].map(|w| w as i32);
            U8(unsafe {
                _mm256_shuffle_epi8(
                    self.0,
                    _mm256_setr_epi32(c[0], c[1], c[2], c[3], c[0], c[1], c[2], c[3]),
                )
            })
        }
    }

    impl Lanes for Avx2 {
        type F = F8;
        type U = U8;
        const ROWS: usize = 2;
        #[inline(always)]
        fn zero(self) -> F8 {
            F8(unsafe { _mm256_setzero_ps() })
        }
        #[inline(always)]
        fn load_rows(self, w: &[u32]) -> U8 {
            let w: &[u32; 8] = w[..8].try_into().expect("two rows");
            U8(unsafe { _mm256_loadu_si256(w.as_ptr() as *const __m256i) })
        }
        #[inline(always)]
        fn load_query(self, q: &[f32; 4]) -> F8 {
            F8(unsafe {
                let x = _mm_loadu_ps(q.as_ptr());
                _mm256_set_m128(x, x)
            })
        }
        #[inline(always)]
        fn row_sums(self, acc: F8, out: &mut [f32]) {
            let mut l = [0.0f32; 8];
            unsafe { _mm256_storeu_ps(l.as_mut_ptr(), acc.0) };
            out[0] = (l[0] + l[1]) + (l[2] + l[3]);
            out[1] = (l[4] + l[5]) + (l[6] + l[7]);
        }
        #[inline(always)]
        fn store_bits(self, v: F8, out: &mut [u32]) {
            let out: &mut [u32; 8] = (&mut out[..8]).try_into().expect("two rows");
            unsafe {
                _mm256_storeu_si256(out.as_mut_ptr() as *mut __m256i, _mm256_castps_si256(v.0))
            };
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod imp {
    // SAFETY (every `unsafe` block in this module): the intrinsics are SSE/SSE2, which every
    // x86-64 CPU has (the target's baseline features), so calling them cannot execute an
    // unsupported instruction; they are `unsafe` only for being `#[target_feature]` functions.
    // The two loads read the 16 bytes of a `&[_; 4]` (unaligned loads).
    use core::arch::x86_64::*;

    /// Four f32 lanes.
    #[derive(Clone, Copy)]
    pub(crate) struct F4(__m128);

    /// Four 32-bit integer lanes.
    #[derive(Clone, Copy)]
    pub(crate) struct U4(__m128i);

    impl F4 {
        #[inline(always)]
        pub(crate) fn zero() -> F4 {
            F4(unsafe { _mm_setzero_ps() })
        }
        #[inline(always)]
        pub(crate) fn splat(x: f32) -> F4 {
            F4(unsafe { _mm_set1_ps(x) })
        }
        #[inline(always)]
        pub(crate) fn load(a: &[f32; 4]) -> F4 {
            F4(unsafe { _mm_loadu_ps(a.as_ptr()) })
        }
        /// `self + a * b`, rounded after the multiply and after the add.
        #[inline(always)]
        pub(crate) fn mul_add(self, a: F4, b: F4) -> F4 {
            F4(unsafe { _mm_add_ps(self.0, _mm_mul_ps(a.0, b.0)) })
        }
        #[inline(always)]
        pub(crate) fn mul(self, b: F4) -> F4 {
            F4(unsafe { _mm_mul_ps(self.0, b.0) })
        }
        #[inline(always)]
        pub(crate) fn to_bits(self) -> U4 {
            U4(unsafe { _mm_castps_si128(self.0) })
        }
        #[inline(always)]
        pub(crate) fn to_array(self) -> [f32; 4] {
            let mut o = [0.0f32; 4];
            unsafe { _mm_storeu_ps(o.as_mut_ptr(), self.0) };
            o
        }
    }

    impl U4 {
        #[inline(always)]
        pub(crate) fn load(a: &[u32; 4]) -> U4 {
            U4(unsafe { _mm_loadu_si128(a.as_ptr() as *const __m128i) })
        }
        #[inline(always)]
        pub(crate) fn shl<const S: i32>(self) -> U4 {
            U4(unsafe { _mm_slli_epi32::<S>(self.0) })
        }
        /// Arithmetic (sign-extending) shift right.
        #[inline(always)]
        pub(crate) fn sar<const S: i32>(self) -> U4 {
            U4(unsafe { _mm_srai_epi32::<S>(self.0) })
        }
        #[inline(always)]
        pub(crate) fn and(self, m: u32) -> U4 {
            U4(unsafe { _mm_and_si128(self.0, _mm_set1_epi32(m as i32)) })
        }
        #[inline(always)]
        pub(crate) fn cast_f32(self) -> F4 {
            F4(unsafe { _mm_castsi128_ps(self.0) })
        }
        /// The lanes as signed integers converted to f32 (exact below 2^24).
        #[inline(always)]
        pub(crate) fn to_f32(self) -> F4 {
            F4(unsafe { _mm_cvtepi32_ps(self.0) })
        }
        #[inline(always)]
        pub(crate) fn to_array(self) -> [u32; 4] {
            let mut o = [0u32; 4];
            unsafe { _mm_storeu_si128(o.as_mut_ptr() as *mut __m128i, self.0) };
            o
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod imp {
    use core::arch::wasm32::*;

    /// Four f32 lanes.
    #[derive(Clone, Copy)]
    pub(crate) struct F4(v128);

    /// Four 32-bit integer lanes.
    #[derive(Clone, Copy)]
    pub(crate) struct U4(v128);

    impl F4 {
        #[inline(always)]
        pub(crate) fn zero() -> F4 {
            F4(f32x4_splat(0.0))
        }
        #[inline(always)]
        pub(crate) fn splat(x: f32) -> F4 {
            F4(f32x4_splat(x))
        }
        #[inline(always)]
        pub(crate) fn load(a: &[f32; 4]) -> F4 {
            // SAFETY: reads the 16 bytes of `a`; wasm loads have no alignment requirement.
            F4(unsafe { v128_load(a.as_ptr() as *const v128) })
        }
        /// `self + a * b`, rounded after the multiply and after the add.
        #[inline(always)]
        pub(crate) fn mul_add(self, a: F4, b: F4) -> F4 {
            F4(f32x4_add(self.0, f32x4_mul(a.0, b.0)))
        }
        #[inline(always)]
        pub(crate) fn mul(self, b: F4) -> F4 {
            F4(f32x4_mul(self.0, b.0))
        }
        #[inline(always)]
        pub(crate) fn to_bits(self) -> U4 {
            U4(self.0)
        }
        #[inline(always)]
        pub(crate) fn to_array(self) -> [f32; 4] {
            [
                f32x4_extract_lane::<0>(self.0),
                f32x4_extract_lane::<1>(self.0),
                f32x4_extract_lane::<2>(self.0),
                f32x4_extract_lane::<3>(self.0),
            ]
        }
    }

    impl U4 {
        #[inline(always)]
        pub(crate) fn load(a: &[u32; 4]) -> U4 {
            // SAFETY: reads the 16 bytes of `a`; wasm loads have no alignment requirement.
            U4(unsafe { v128_load(a.as_ptr() as *const v128) })
        }
        #[inline(always)]
        pub(crate) fn shl<const S: i32>(self) -> U4 {
            U4(i32x4_shl(self.0, S as u32))
        }
        /// Arithmetic (sign-extending) shift right.
        #[inline(always)]
        pub(crate) fn sar<const S: i32>(self) -> U4 {
            U4(i32x4_shr(self.0, S as u32))
        }
        #[inline(always)]
        pub(crate) fn and(self, m: u32) -> U4 {
            U4(v128_and(self.0, u32x4_splat(m)))
        }
        #[inline(always)]
        pub(crate) fn cast_f32(self) -> F4 {
            F4(self.0)
        }
        /// The lanes as signed integers converted to f32 (exact below 2^24).
        #[inline(always)]
        pub(crate) fn to_f32(self) -> F4 {
            F4(f32x4_convert_i32x4(self.0))
        }
        #[inline(always)]
        pub(crate) fn to_array(self) -> [u32; 4] {
            [
                u32x4_extract_lane::<0>(self.0),
                u32x4_extract_lane::<1>(self.0),
                u32x4_extract_lane::<2>(self.0),
                u32x4_extract_lane::<3>(self.0),
            ]
        }
    }
}

#[cfg(not(any(
    target_arch = "x86_64",
    all(target_arch = "wasm32", target_feature = "simd128")
)))]
mod imp {
    /// Four f32 lanes.
    #[derive(Clone, Copy)]
    pub(crate) struct F4([f32; 4]);

    /// Four 32-bit integer lanes.
    #[derive(Clone, Copy)]
    pub(crate) struct U4([u32; 4]);

    impl F4 {
        #[inline(always)]
        pub(crate) fn zero() -> F4 {
            F4([0.0; 4])
        }
        #[inline(always)]
        pub(crate) fn splat(x: f32) -> F4 {
            F4([x; 4])
        }
        #[inline(always)]
        pub(crate) fn load(a: &[f32; 4]) -> F4 {
            F4(*a)
        }
        /// `self + a * b`, rounded after the multiply and after the add.
        #[inline(always)]
        pub(crate) fn mul_add(self, a: F4, b: F4) -> F4 {
            F4(std::array::from_fn(|t| self.0[t] + a.0[t] * b.0[t]))
        }
        #[inline(always)]
        pub(crate) fn mul(self, b: F4) -> F4 {
            F4(std::array::from_fn(|t| self.0[t] * b.0[t]))
        }
        #[inline(always)]
        pub(crate) fn to_bits(self) -> U4 {
            U4(self.0.map(f32::to_bits))
        }
        #[inline(always)]
        pub(crate) fn to_array(self) -> [f32; 4] {
            self.0
        }
    }

    impl U4 {
        #[inline(always)]
        pub(crate) fn load(a: &[u32; 4]) -> U4 {
            U4(*a)
        }
        #[inline(always)]
        pub(crate) fn shl<const S: i32>(self) -> U4 {
            U4(self.0.map(|w| w << S))
        }
        /// Arithmetic (sign-extending) shift right.
        #[inline(always)]
        pub(crate) fn sar<const S: i32>(self) -> U4 {
            U4(self.0.map(|w| ((w as i32) >> S) as u32))
        }
        #[inline(always)]
        pub(crate) fn and(self, m: u32) -> U4 {
            U4(self.0.map(|w| w & m))
        }
        #[inline(always)]
        pub(crate) fn cast_f32(self) -> F4 {
            F4(self.0.map(f32::from_bits))
        }
        /// The lanes as signed integers converted to f32 (exact below 2^24).
        #[inline(always)]
        pub(crate) fn to_f32(self) -> F4 {
            F4(self.0.map(|w| w as i32 as f32))
        }
        #[inline(always)]
        pub(crate) fn to_array(self) -> [u32; 4] {
            self.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_ops_match_scalar() {
        let w = [0x8000_0001u32, 0x7FFF_FFFF, 0x1234_5678, 0xFEDC_BA98];
        let u = U4::load(&w);
        assert_eq!(u.shl::<16>().to_array(), w.map(|x| x << 16));
        assert_eq!(u.sar::<3>().to_array(), w.map(|x| ((x as i32) >> 3) as u32));
        assert_eq!(u.and(0x8FFF_E000).to_array(), w.map(|x| x & 0x8FFF_E000));
        assert_eq!(
            u.to_f32().to_array().map(f32::to_bits),
            w.map(|x| (x as i32 as f32).to_bits())
        );
        assert_eq!(u.cast_f32().to_bits().to_array(), w);
        let a = [1.5f32, -2.25, 1e-3, 3.0e38];
        let b = [0.1f32, 7.0, -1e-3, 2.0];
        let acc = F4::load(&[1.0, 2.0, 3.0, 4.0]).mul_add(F4::load(&a), F4::load(&b));
        let want: [f32; 4] = std::array::from_fn(|t| [1.0f32, 2.0, 3.0, 4.0][t] + a[t] * b[t]);
        assert_eq!(acc.to_array().map(f32::to_bits), want.map(f32::to_bits));
        assert_eq!(
            F4::splat(2.0).mul(F4::load(&a)).to_array(),
            a.map(|x| x * 2.0)
        );
        assert_eq!(F4::zero().to_array(), [0.0; 4]);
    }
}
