//! k-means for the tree build, batched over every node of one level at once.
//!
//! A [`LevelProblem`] holds, for one level of the tree, the points of every node (grouped, each
//! group contiguous) and each group's own centroids. One k-means step is an *assignment* (each
//! point to the best centroid of its own group: top-1 of `x·c − ½‖c‖²`, ties to the lower
//! centroid index) and an *update* (each centroid becomes the mean of its points, summed in point
//! order; a centroid without points keeps its value). [`assign_cpu`] and [`update_cpu`] are the
//! CPU references of the GPU kernels `hier_assign` and `hier_update`; [`KmeansEngine`] abstracts
//! the two so that the CPU and GPU builds share one control flow.
//!
//! Centroids are stored with a stride of `d + 1`: the last column is the bias `−½‖c‖²`.

use std::future::Future;

use super::dot::dot;
use super::HierError;
use crate::rng::Rng;

/// Offsets of one group in a [`LevelProblem`]: its points `pts[pstart .. pstart + pcount]` and its
/// centroids `cstart .. cstart + ccount`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
pub struct Group {
    /// First point of the group (index into `pts`).
    pub pstart: u32,
    /// Points in the group.
    pub pcount: u32,
    /// First centroid of the group.
    pub cstart: u32,
    /// Centroids of the group.
    pub ccount: u32,
}

/// One level's k-means problem (see the module docs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LevelProblem {
    /// Dimensions.
    pub d: usize,
    /// Bank row (position) of every point, grouped.
    pub pts: Vec<u32>,
    /// Group of every point (parallel to `pts`).
    pub pgrp: Vec<u32>,
    /// The groups.
    pub groups: Vec<Group>,
    /// Group of every centroid.
    pub cgrp: Vec<u32>,
    /// Centroids, `[C, d + 1]` with the bias in the last column.
    pub cents: Vec<f32>,
}

impl LevelProblem {
    /// Number of centroids.
    pub fn centroids(&self) -> usize {
        self.cgrp.len()
    }

    /// A copy of this problem over other points (same groups and centroids): `pts` grouped like
    /// `groups_points[g]`.
    pub fn with_points(&self, groups_points: &[&[u32]]) -> LevelProblem {
        let mut p = LevelProblem {
            d: self.d,
            pts: Vec::new(),
            pgrp: Vec::new(),
            groups: self.groups.clone(),
            cgrp: self.cgrp.clone(),
            cents: self.cents.clone(),
        };
        for (g, pts) in groups_points.iter().enumerate() {
            p.groups[g].pstart = p.pts.len() as u32;
            p.groups[g].pcount = pts.len() as u32;
            p.pts.extend_from_slice(pts);
            p.pgrp.extend(std::iter::repeat_n(g as u32, pts.len()));
        }
        p
    }
}

/// Set the bias column of a centroid row (`d + 1` values): `−½‖c‖²`.
#[inline]
pub fn set_bias(row: &mut [f32]) {
    let d = row.len() - 1;
    row[d] = -0.5 * dot(&row[..d], &row[..d]);
}

/// The best centroid (global index) among `cents[cstart .. cstart + ccount]` for `x`, by
/// `x·c + bias`, ties to the lower index. `None` when the group has no centroid.
#[inline]
pub fn best_centroid(x: &[f32], cents: &[f32], cstart: usize, ccount: usize) -> Option<u32> {
    let d = x.len();
    let mut best: Option<(f32, u32)> = None;
    for c in cstart..cstart + ccount {
        let row = &cents[c * (d + 1)..(c + 1) * (d + 1)];
        let s = dot(x, &row[..d]) + row[d];
        if best.is_none_or(|(bs, _)| s > bs) {
            best = Some((s, c as u32));
        }
    }
    best.map(|(_, c)| c)
}

/// CPU reference of the assignment kernel: the best centroid of its own group for every point
/// (scores `x·c + bias`, strict `>` in increasing centroid order, so ties go to the lower index).
///
/// Runs 4 points × 2 centroids at a time ([`block_scores`]): the build's hot loop.
pub fn assign_cpu(bank: &[f32], p: &LevelProblem) -> Vec<u32> {
    let d = p.d;
    let mut out = vec![u32::MAX; p.pts.len()];
    let row = |r: u32| &bank[r as usize * d..(r as usize + 1) * d];
    for g in &p.groups {
        let (ps, pc) = (g.pstart as usize, g.pcount as usize);
        let (cs, cc) = (g.cstart as usize, g.ccount as usize);
        if cc == 0 {
            continue;
        }
        let cent = |c: usize| &p.cents[c * (d + 1)..(c + 1) * (d + 1)];
        for j0 in (ps..ps + pc).step_by(4) {
            // Pad the last block with its last point (scores computed and discarded).
            let idx: [usize; 4] = std::array::from_fn(|t| (j0 + t).min(ps + pc - 1));
            let xs: [&[f32]; 4] = std::array::from_fn(|t| row(p.pts[idx[t]]));
            let mut best = [(f32::NEG_INFINITY, u32::MAX); 4];
            for c0 in (cs..cs + cc).step_by(2) {
                let c1 = (c0 + 1).min(cs + cc - 1);
                let (r0, r1) = (cent(c0), cent(c1));
                let sc = block_scores(xs, [&r0[..d], &r1[..d]]);
                for t in 0..4 {
                    for (k, c) in [(0usize, c0), (1, c1)] {
                        let s = sc[t][k] + if k == 0 { r0[d] } else { r1[d] };
                        if best[t].1 == u32::MAX || s > best[t].0 {
                            best[t] = (s, c as u32);
                        }
                    }
                }
            }
            for t in 0..4 {
                if j0 + t < ps + pc {
                    out[j0 + t] = best[t].1;
                }
            }
        }
    }
    out
}

/// Dot products of 4 points with 2 centroids (all of the same length): `out[point][centroid]`.
/// Four-lane accumulation per pair, eight independent accumulators: SSE2 natively, `simd128` on
/// wasm, scalar elsewhere (the same summation order on every path).
#[inline]
pub fn block_scores(xs: [&[f32]; 4], cs: [&[f32]; 2]) -> [[f32; 2]; 4] {
    let d = cs[0].len();
    let xs: [&[f32]; 4] = std::array::from_fn(|t| &xs[t][..d]);
    let c1 = &cs[1][..d];
    let chunks = d / 4;
    let mut out = block_imp::scores(xs, [cs[0], c1], chunks);
    for i in chunks * 4..d {
        for (t, x) in xs.iter().enumerate() {
            out[t][0] += x[i] * cs[0][i];
            out[t][1] += x[i] * c1[i];
        }
    }
    out
}

#[cfg(target_arch = "x86_64")]
mod block_imp {
    use std::arch::x86_64::*;

    #[inline]
    fn hsum(v: __m128) -> f32 {
        let mut a = [0.0f32; 4];
        // SAFETY: `a` holds 4 f32; unaligned store.
        unsafe { _mm_storeu_ps(a.as_mut_ptr(), v) };
        (a[0] + a[1]) + (a[2] + a[3])
    }

    #[inline]
    pub fn scores(xs: [&[f32]; 4], cs: [&[f32]; 2], chunks: usize) -> [[f32; 2]; 4] {
        // SAFETY: SSE is part of the x86_64 baseline; every load reads 4 f32 at offset
        // 4 * k < 4 * chunks <= len of each slice (all slices hold at least 4 * chunks values).
        unsafe {
            let z = _mm_setzero_ps();
            let mut acc = [[z; 2]; 4];
            for k in 0..chunks {
                let o = 4 * k;
                let c0 = _mm_loadu_ps(cs[0].as_ptr().add(o));
                let c1 = _mm_loadu_ps(cs[1].as_ptr().add(o));
                for t in 0..4 {
                    let x = _mm_loadu_ps(xs[t].as_ptr().add(o));
                    acc[t][0] = _mm_add_ps(acc[t][0], _mm_mul_ps(x, c0));
                    acc[t][1] = _mm_add_ps(acc[t][1], _mm_mul_ps(x, c1));
                }
            }
            std::array::from_fn(|t| [hsum(acc[t][0]), hsum(acc[t][1])])
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod block_imp {
    use core::arch::wasm32::*;

    #[inline]
    fn hsum(v: v128) -> f32 {
        (f32x4_extract_lane::<0>(v) + f32x4_extract_lane::<1>(v))
            + (f32x4_extract_lane::<2>(v) + f32x4_extract_lane::<3>(v))
    }

    #[inline]
    pub fn scores(xs: [&[f32]; 4], cs: [&[f32]; 2], chunks: usize) -> [[f32; 2]; 4] {
        let z = f32x4_splat(0.0);
        let mut acc = [[z; 2]; 4];
        for k in 0..chunks {
            let o = 4 * k;
            // SAFETY: each load reads 4 f32 at offset 4 * k < 4 * chunks <= every slice's length;
            // wasm loads have no alignment requirement.
            unsafe {
                let c0 = v128_load(cs[0].as_ptr().add(o) as *const v128);
                let c1 = v128_load(cs[1].as_ptr().add(o) as *const v128);
                for t in 0..4 {
                    let x = v128_load(xs[t].as_ptr().add(o) as *const v128);
                    acc[t][0] = f32x4_add(acc[t][0], f32x4_mul(x, c0));
                    acc[t][1] = f32x4_add(acc[t][1], f32x4_mul(x, c1));
                }
            }
        }
        std::array::from_fn(|t| [hsum(acc[t][0]), hsum(acc[t][1])])
    }
}

#[cfg(not(any(
    target_arch = "x86_64",
    all(target_arch = "wasm32", target_feature = "simd128")
)))]
mod block_imp {
    #[inline]
    pub fn scores(xs: [&[f32]; 4], cs: [&[f32]; 2], chunks: usize) -> [[f32; 2]; 4] {
        let mut acc = [[[0.0f32; 4]; 2]; 4];
        for k in 0..chunks {
            let o = 4 * k;
            for t in 0..4 {
                for c in 0..2 {
                    for l in 0..4 {
                        acc[t][c][l] += xs[t][o + l] * cs[c][o + l];
                    }
                }
            }
        }
        let h = |a: [f32; 4]| (a[0] + a[1]) + (a[2] + a[3]);
        std::array::from_fn(|t| [h(acc[t][0]), h(acc[t][1])])
    }
}

/// CPU reference of the update kernel: every centroid with at least one point becomes the mean
/// of its points (summed in point order, then divided by the count); returns the counts.
pub fn update_cpu(bank: &[f32], p: &mut LevelProblem, assign: &[u32]) -> Vec<u32> {
    let d = p.d;
    let c = p.centroids();
    let mut sums = vec![0.0f32; c * d];
    let mut counts = vec![0u32; c];
    for (&row, &a) in p.pts.iter().zip(assign) {
        if a as usize >= c {
            continue;
        }
        let x = &bank[row as usize * d..(row as usize + 1) * d];
        let s = &mut sums[a as usize * d..(a as usize + 1) * d];
        for (s, x) in s.iter_mut().zip(x) {
            *s += x;
        }
        counts[a as usize] += 1;
    }
    for (ci, &n) in counts.iter().enumerate() {
        if n == 0 {
            continue;
        }
        let row = &mut p.cents[ci * (d + 1)..(ci + 1) * (d + 1)];
        for (r, s) in row[..d].iter_mut().zip(&sums[ci * d..(ci + 1) * d]) {
            *r = s / n as f32;
        }
        set_bias(row);
    }
    counts
}

/// The two heavy steps of the build, on the CPU or the GPU.
pub trait KmeansEngine {
    /// Run `iterations` rounds of (assign, update) over `p`'s points, updating `p.cents`.
    fn train(
        &mut self,
        p: &mut LevelProblem,
        iterations: usize,
    ) -> impl Future<Output = Result<(), HierError>>;
    /// Assign every point of `p` to the best centroid of its group (global centroid index).
    fn assign(&mut self, p: &LevelProblem) -> impl Future<Output = Result<Vec<u32>, HierError>>;
}

/// The CPU engine over a bank.
pub struct CpuEngine<'a> {
    /// The bank, `[N, d]`.
    pub bank: &'a [f32],
}

impl KmeansEngine for CpuEngine<'_> {
    async fn train(&mut self, p: &mut LevelProblem, iterations: usize) -> Result<(), HierError> {
        let mut last: Option<Vec<u32>> = None;
        for _ in 0..iterations {
            let a = assign_cpu(self.bank, p);
            // Converged: the update would recompute the same centroids (same points, same
            // summation order), so stopping is exactly equivalent to running on.
            if last.as_ref() == Some(&a) {
                break;
            }
            update_cpu(self.bank, p, &a);
            last = Some(a);
        }
        Ok(())
    }

    async fn assign(&mut self, p: &LevelProblem) -> Result<Vec<u32>, HierError> {
        Ok(assign_cpu(self.bank, p))
    }
}

/// Run a future that never waits (the CPU engine's) to completion.
pub(crate) fn run_ready<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => unreachable!("the CPU k-means engine never waits"),
    }
}

/// `m` distinct indices of `0..n`, sorted (partial Fisher-Yates with `rng`).
pub fn sample_indices(n: usize, m: usize, rng: &mut Rng) -> Vec<u32> {
    if m >= n {
        return (0..n as u32).collect();
    }
    let mut idx: Vec<u32> = (0..n as u32).collect();
    for i in 0..m {
        let j = i + rng.below(n - i);
        idx.swap(i, j);
    }
    idx.truncate(m);
    crate::sort::sort(&mut idx);
    idx
}

/// k-means++ seeding: `k` centroids (stride `d + 1`, bias set) chosen among the rows `pts` of
/// `bank`, by squared distance to the closest chosen one.
pub fn kmeanspp(bank: &[f32], d: usize, pts: &[u32], k: usize, rng: &mut Rng) -> Vec<f32> {
    let row = |i: u32| &bank[i as usize * d..(i as usize + 1) * d];
    let mut cents = Vec::with_capacity(k * (d + 1));
    if pts.is_empty() || k == 0 {
        return cents;
    }
    let push = |cents: &mut Vec<f32>, x: &[f32]| {
        cents.extend_from_slice(x);
        cents.push(0.0);
        let at = cents.len() - (d + 1);
        set_bias(&mut cents[at..]);
    };
    push(&mut cents, row(pts[rng.below(pts.len())]));
    // dist2 = ‖x‖² − 2·max_c (x·c − ½‖c‖²)
    let norms: Vec<f32> = pts.iter().map(|&i| dot(row(i), row(i))).collect();
    let mut best: Vec<f32> = pts
        .iter()
        .map(|&i| dot(row(i), &cents[..d]) + cents[d])
        .collect();
    for c in 1..k {
        let dist: Vec<f64> = best
            .iter()
            .zip(&norms)
            .map(|(b, n)| ((n - 2.0 * b) as f64).max(0.0))
            .collect();
        let total: f64 = dist.iter().sum();
        let pick = if total <= 0.0 {
            rng.below(pts.len())
        } else {
            let mut target = rng.f32() as f64 * total;
            let mut at = pts.len() - 1;
            for (i, w) in dist.iter().enumerate() {
                if target < *w {
                    at = i;
                    break;
                }
                target -= w;
            }
            at
        };
        push(&mut cents, row(pts[pick]));
        let new = &cents[c * (d + 1)..(c + 1) * (d + 1)];
        for (b, &i) in best.iter_mut().zip(pts) {
            let s = dot(row(i), &new[..d]) + new[d];
            if s > *b {
                *b = s;
            }
        }
    }
    cents
}

/// Split weighted points (`[n, d]`) into two sides by 2-means (seeded). Returns the side (0 or 1)
/// of every point and the two centroids (stride `d + 1`, bias set). Each side gets at least a
/// quarter of the points: a lopsided result (an outlier against the rest, or points 2-means
/// cannot separate) is cut at the median of the score margin instead. `n` must be at least 2.
pub fn two_means(
    points: &[f32],
    d: usize,
    weights: Option<&[f32]>,
    seed: u64,
) -> (Vec<u8>, [Vec<f32>; 2]) {
    let n = points.len() / d;
    let row = |i: usize| &points[i * d..(i + 1) * d];
    let w = |i: usize| weights.map_or(1.0, |w| w[i].max(1e-6));
    let mut rng = Rng::new(seed);
    // Seeds: a random point and the point farthest from it.
    let a = rng.below(n);
    let far = |from: &[f32]| {
        let mut best = (f32::NEG_INFINITY, 0usize);
        for i in 0..n {
            let x = row(i);
            let dist: f32 = x.iter().zip(from).map(|(p, q)| (p - q) * (p - q)).sum();
            if dist > best.0 {
                best = (dist, i);
            }
        }
        best.1
    };
    let b = far(row(a));
    let mut cents = [row(a).to_vec(), row(b).to_vec()];
    for c in cents.iter_mut() {
        c.push(0.0);
        set_bias(c);
    }
    let mut side = vec![0u8; n];
    for _ in 0..8 {
        for (i, s) in side.iter_mut().enumerate() {
            let x = row(i);
            let s0 = dot(x, &cents[0][..d]) + cents[0][d];
            let s1 = dot(x, &cents[1][..d]) + cents[1][d];
            *s = u8::from(s1 > s0);
        }
        for (k, c) in cents.iter_mut().enumerate() {
            let mut sum = vec![0.0f64; d];
            let mut total = 0.0f64;
            for i in (0..n).filter(|&i| side[i] as usize == k) {
                let wi = w(i) as f64;
                for (s, x) in sum.iter_mut().zip(row(i)) {
                    *s += wi * *x as f64;
                }
                total += wi;
            }
            if total > 0.0 {
                for (cv, s) in c[..d].iter_mut().zip(&sum) {
                    *cv = (*s / total) as f32;
                }
                set_bias(c);
            }
        }
    }
    // Lopsided splits (an outlier against the rest, or points 2-means cannot separate) are cut
    // at the median of the margin instead: both sides get at least a quarter, so recursive
    // splits of a leaf go at most log2(n) deep.
    let ones = side.iter().filter(|&&s| s == 1).count();
    if ones.min(n - ones) < n.div_ceil(4) {
        let mut order: Vec<(f32, usize)> = (0..n)
            .map(|i| {
                let x = row(i);
                let m =
                    (dot(x, &cents[1][..d]) + cents[1][d]) - (dot(x, &cents[0][..d]) + cents[0][d]);
                (m, i)
            })
            .collect();
        crate::sort::sort_by(&mut order, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for (rank, &(_, i)) in order.iter().enumerate() {
            side[i] = u8::from(rank >= n / 2);
        }
        for (k, c) in cents.iter_mut().enumerate() {
            let members: Vec<usize> = (0..n).filter(|&i| side[i] as usize == k).collect();
            let total: f32 = members.iter().map(|&i| w(i)).sum();
            for (j, cj) in c[..d].iter_mut().enumerate() {
                *cj = members.iter().map(|&i| w(i) * row(i)[j]).sum::<f32>() / total;
            }
            set_bias(c);
        }
    }
    (side, cents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_means_separates_two_blobs_and_handles_duplicates() {
        let pts = [0.0, 0.0, 0.1, 0.0, 10.0, 10.0, 10.1, 10.0];
        let (side, _) = two_means(&pts, 2, None, 1);
        assert_eq!(side[0], side[1]);
        assert_eq!(side[2], side[3]);
        assert_ne!(side[0], side[2]);
        let same = [1.0f32; 10];
        let (side, _) = two_means(&same, 2, None, 1);
        assert_eq!(side, vec![0, 0, 1, 1, 1]);
        // One far outlier: still split into halves.
        let mut pts: Vec<f32> = (0..40).map(|i| (i % 7) as f32 * 0.01).collect();
        pts[0] = 1000.0;
        let (side, _) = two_means(&pts, 1, None, 3);
        let ones = side.iter().filter(|&&s| s == 1).count();
        assert_eq!(ones, 20);
    }

    #[test]
    fn block_scores_match_dot_products() {
        let mut rng = Rng::new(5);
        for d in [1usize, 3, 4, 7, 16, 385] {
            let xs: Vec<Vec<f32>> = (0..4).map(|_| rng.vec_f32(d)).collect();
            let cs: Vec<Vec<f32>> = (0..2).map(|_| rng.vec_f32(d)).collect();
            let got = block_scores(
                std::array::from_fn(|t| xs[t].as_slice()),
                [cs[0].as_slice(), cs[1].as_slice()],
            );
            for t in 0..4 {
                for c in 0..2 {
                    let want: f32 = xs[t].iter().zip(&cs[c]).map(|(a, b)| a * b).sum();
                    assert!((got[t][c] - want).abs() < 1e-4, "d={d} t={t} c={c}");
                }
            }
        }
    }

    #[test]
    fn assignment_ties_go_to_the_lower_centroid() {
        let bank = [1.0, 0.0];
        let mut cents = vec![0.0, 1.0, 0.0, 0.0, 1.0, 0.0];
        set_bias(&mut cents[..3]);
        set_bias(&mut cents[3..]);
        assert_eq!(best_centroid(&bank, &cents, 0, 2), Some(0));
        let p = LevelProblem {
            d: 2,
            pts: vec![0],
            pgrp: vec![0],
            groups: vec![Group {
                pstart: 0,
                pcount: 1,
                cstart: 0,
                ccount: 2,
            }],
            cgrp: vec![0, 0],
            cents: cents.clone(),
        };
        assert_eq!(assign_cpu(&bank, &p), vec![0]);
    }
}
