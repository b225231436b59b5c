//! The dot product of the hierarchical index's CPU paths (routing, leaf scans, the exact oracle,
//! k-means): 16 independent lanes (four 4-wide vectors), enough instruction-level parallelism to
//! keep SSE2 natively and wasm `simd128` busy; explicit `simd128` intrinsics on wasm. Every score
//! the index compares comes from this one function, so a full-beam search equals the exact scan
//! bit for bit.

/// Dot product of two equal-length slices (extra elements of the longer one are ignored).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    imp::dot(&a[..n], &b[..n])
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod imp {
    use core::arch::wasm32::*;

    #[inline]
    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let chunks = n / 16;
        let (mut v0, mut v1, mut v2, mut v3) = (
            f32x4_splat(0.0),
            f32x4_splat(0.0),
            f32x4_splat(0.0),
            f32x4_splat(0.0),
        );
        for c in 0..chunks {
            let x = &a[c * 16..c * 16 + 16];
            let y = &b[c * 16..c * 16 + 16];
            // SAFETY: x and y hold 16 f32 each (bounds checked by the slicing above); wasm
            // loads have no alignment requirement.
            unsafe {
                let xp = x.as_ptr() as *const v128;
                let yp = y.as_ptr() as *const v128;
                v0 = f32x4_add(v0, f32x4_mul(v128_load(xp), v128_load(yp)));
                v1 = f32x4_add(v1, f32x4_mul(v128_load(xp.add(1)), v128_load(yp.add(1))));
                v2 = f32x4_add(v2, f32x4_mul(v128_load(xp.add(2)), v128_load(yp.add(2))));
                v3 = f32x4_add(v3, f32x4_mul(v128_load(xp.add(3)), v128_load(yp.add(3))));
            }
        }
        let v = f32x4_add(f32x4_add(v0, v1), f32x4_add(v2, v3));
        let mut s = (f32x4_extract_lane::<0>(v) + f32x4_extract_lane::<1>(v))
            + (f32x4_extract_lane::<2>(v) + f32x4_extract_lane::<3>(v));
        for i in chunks * 16..n {
            s += a[i] * b[i];
        }
        s
    }
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
mod imp {
    #[inline]
    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let chunks = n / 16;
        let mut acc = [0.0f32; 16];
        for c in 0..chunks {
            let x = &a[c * 16..c * 16 + 16];
            let y = &b[c * 16..c * 16 + 16];
            for l in 0..16 {
                acc[l] += x[l] * y[l];
            }
        }
        let mut v = [0.0f32; 4];
        for (l, vl) in v.iter_mut().enumerate() {
            *vl = (acc[l] + acc[l + 4]) + (acc[l + 8] + acc[l + 12]);
        }
        let mut s = (v[0] + v[1]) + (v[2] + v[3]);
        for i in chunks * 16..n {
            s += a[i] * b[i];
        }
        s
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn matches_naive_on_odd_lengths() {
        for n in [0usize, 1, 3, 15, 16, 17, 33, 384, 385] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let naive: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            assert!((super::dot(&a, &b) as f64 - naive).abs() < 1e-4, "n = {n}");
        }
    }
}
