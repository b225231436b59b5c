//! GPU-against-CPU comparisons shared by the native (lavapipe) and browser (SwiftShader) tests:
//! the single definition of what must match, with the failing index and both values in the
//! message.
//!
//! - assignment: the same centroid, except where the CPU scores of the two centroids are within
//!   `1e-5 · (1 + |score|)` (a near-tie under other rounding);
//! - search: identical ids, scores within `1e-5 · (1 + |score|)`, except (a) queries whose routing
//!   had a near-tie (gap ≤ 1e-4) at a beam boundary — skipped and counted — and (b) result slots
//!   whose CPU score is within rounding of its neighbour's (the order of near-equal scores may
//!   differ); gathered rows equal the rows of the returned ids bit for bit;
//! - PKM: identical slots except queries with a near-tie at a selection boundary (skipped and
//!   counted), weights and outputs within 1e-4.

use super::dot::dot;
use super::kmeans::LevelProblem;
use super::pkm::{boundary_gaps, PkmArgs, PkmOutput};
use super::topk::NO_ID;
use super::{HierIndex, SearchOptions, SearchResult};
use crate::testing::compare;

fn eps(s: f32) -> f32 {
    1e-5 * (1.0 + s.abs())
}

/// Compare GPU assignments with the CPU's; returns the number of near-tie flips.
pub fn assignments(
    bank: &[f32],
    p: &LevelProblem,
    got: &[u32],
    want: &[u32],
) -> Result<usize, String> {
    if got.len() != want.len() {
        return Err(format!(
            "{} assignments, reference has {}",
            got.len(),
            want.len()
        ));
    }
    let d = p.d;
    let score = |row: u32, c: u32| {
        let x = &bank[row as usize * d..(row as usize + 1) * d];
        let cr = &p.cents[c as usize * (d + 1)..(c as usize + 1) * (d + 1)];
        dot(x, &cr[..d]) + cr[d]
    };
    let mut flips = 0;
    for (j, (&g, &w)) in got.iter().zip(want).enumerate() {
        if g == w {
            continue;
        }
        if g as usize >= p.centroids() {
            return Err(format!(
                "point {j}: GPU centroid {g} out of range (CPU {w})"
            ));
        }
        let (sg, sw) = (score(p.pts[j], g), score(p.pts[j], w));
        if (sg - sw).abs() > eps(sw) {
            return Err(format!(
                "point {j}: GPU centroid {g} (score {sg:e}) vs CPU centroid {w} (score {sw:e})"
            ));
        }
        flips += 1;
    }
    Ok(flips)
}

/// Compare a GPU search of `queries` with the CPU search of the same index and options (and
/// the gathered rows, when given). Returns the number of queries skipped for a routing near-tie.
pub fn search(
    idx: &HierIndex,
    queries: &[f32],
    opts: &SearchOptions,
    gpu: &SearchResult,
    gathered: Option<&[f32]>,
) -> Result<usize, String> {
    let d = idx.dims();
    let k = opts.k;
    let cpu = idx.search(queries, opts).map_err(|e| e.to_string())?;
    let cpu1 = idx
        .search(queries, &SearchOptions { k: k + 1, ..*opts })
        .map_err(|e| e.to_string())?;
    let (_, beam) = idx.check_search(queries, opts).map_err(|e| e.to_string())?;
    if gpu.ids.len() != cpu.ids.len() || gpu.scores.len() != cpu.scores.len() {
        return Err(format!(
            "GPU returned {} ids, CPU {}",
            gpu.ids.len(),
            cpu.ids.len()
        ));
    }
    let mut routing_ties = 0;
    for (qi, q) in queries.chunks_exact(d).enumerate() {
        let (_, gap) = idx.probe(q, beam);
        if gap <= 1e-4 {
            routing_ties += 1;
            continue;
        }
        let r = qi * k..(qi + 1) * k;
        let (g, c, gs, cs) = (
            &gpu.ids[r.clone()],
            &cpu.ids[r.clone()],
            &gpu.scores[r.clone()],
            &cpu.scores[r],
        );
        let cs1 = &cpu1.scores[qi * (k + 1)..(qi + 1) * (k + 1)];
        for j in 0..k {
            if c[j] == NO_ID {
                if g[j] != NO_ID {
                    return Err(format!(
                        "query {qi} slot {j}: GPU id {} where the CPU has none",
                        g[j]
                    ));
                }
                continue;
            }
            if (gs[j] - cs[j]).abs() > eps(cs[j]) {
                return Err(format!(
                    "query {qi} slot {j}: GPU score {:e} (id {}) vs CPU {:e} (id {})",
                    gs[j], g[j], cs[j], c[j]
                ));
            }
            if g[j] != c[j] {
                let near_prev = j > 0 && (cs[j - 1] - cs[j]).abs() <= eps(cs[j]);
                let near_next = (cs1[j + 1] - cs[j]).abs() <= eps(cs[j]);
                if !(near_prev || near_next) {
                    return Err(format!(
                        "query {qi} slot {j}: GPU id {} vs CPU id {} (score {:e}, no near-tie)",
                        g[j], c[j], cs[j]
                    ));
                }
            }
        }
        if let Some(rows) = gathered {
            for j in 0..k {
                let got = &rows[(qi * k + j) * d..(qi * k + j + 1) * d];
                let ok = match idx.vector(g[j]) {
                    Some(v) => got == v,
                    None => got.iter().all(|&x| x == 0.0),
                };
                if !ok {
                    return Err(format!(
                        "query {qi} slot {j}: gathered row differs from row {}",
                        g[j]
                    ));
                }
            }
        }
    }
    Ok(routing_ties)
}

/// Compare a GPU product-key lookup with the CPU reference; returns the number of queries
/// skipped for a near-tie at a selection boundary.
pub fn pkm(a: &PkmArgs, gpu: &PkmOutput, cpu: &PkmOutput) -> Result<usize, String> {
    let k = a.k;
    let dv = a.value_dims;
    let gaps = boundary_gaps(a).map_err(|e| e.to_string())?;
    let mut skipped = 0;
    for (q, gap) in gaps.iter().enumerate() {
        if *gap <= 1e-4 * (1.0 + cpu.scores[q * k].abs()) {
            skipped += 1;
            continue;
        }
        let r = q * k..(q + 1) * k;
        if gpu.ids[r.clone()] != cpu.ids[r.clone()] {
            return Err(format!(
                "query {q}: GPU slots {:?} vs CPU {:?}",
                &gpu.ids[r.clone()],
                &cpu.ids[r]
            ));
        }
        compare(
            &format!("query {q} weights"),
            &gpu.weights[r.clone()],
            &cpu.weights[r.clone()],
            1e-4,
            1e-6,
        )?;
        compare(
            &format!("query {q} scores"),
            &gpu.scores[r.clone()],
            &cpu.scores[r],
            1e-5,
            1e-5,
        )?;
        compare(
            &format!("query {q} output"),
            &gpu.output[q * dv..(q + 1) * dv],
            &cpu.output[q * dv..(q + 1) * dv],
            1e-4,
            1e-5,
        )?;
    }
    Ok(skipped)
}
