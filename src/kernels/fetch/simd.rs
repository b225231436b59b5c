//! Four-lane vectors for the CPU scan of the flat top-k ([`super::cpu`]): an f32 vector [`F4`]
//! and a 32-bit integer vector [`U4`], with exactly the operations the scan needs (load, separate
//! multiply and add — never fused —, shifts, mask, int-to-float, bit casts).
//!
//! Three implementations with identical results: SSE2 on x86-64 (part of the x86-64 baseline,
//! so always present: no runtime detection, no AVX), `simd128` on wasm32 (the browser build
//! enables it in `.cargo/config.toml`), and plain arrays elsewhere. Explicit intrinsics rather
//! than auto-vectorisation because LLVM's SLP vectoriser packs the register-blocked scan the
//! wrong way round (across rows, with shuffles and broadcasts and spilled accumulators: several
//! times slower), and because the browser package is built with low inlining/unrolling
//! thresholds.

pub(crate) use imp::{F4, U4};

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
