//! Product-key lookup (PKM / UltraMem memory layers).
//!
//! For each query `q` (`d` dims, split into `q1 = q[..d/2]` and `q2 = q[d/2..]`):
//! 1. score `q1` against the `n1` sub-keys `K1` (`[n1, d/2]`) and `q2` against the `n2` sub-keys
//!    `K2` (`[n2, d − d/2]`); keep the top `k` of each (ties: lower sub-key index);
//! 2. score the `k²` combinations `s1[a] + s2[b]`, slot `i1[a] · n2 + i2[b]` of the `n1 · n2`
//!    memory slots; keep the top `k` (ties: lower slot);
//! 3. softmax the `k` scores; return the weighted sum of the selected rows of `values`
//!    (`[n1 · n2, dv]`), plus the slots and weights.
//!
//! [`pkm_cpu`] is the reference; [`pkm_gpu`] runs `shaders/pkm.wgsl` (one workgroup per query).

use super::topk::TopK;
use super::{invalid, HierError};
use crate::compute::Compute;
use crate::gpu::{fold_workgroups, GpuContext, PipelineKey};
use crate::kernels::cpu::dot;
use crate::kernels::{check_finite, rows_of, KernelError};

/// Largest `k` of the lookup (the GPU sorts the `k²` combinations in one 1024-entry tile).
pub const PKM_MAX_K: usize = 32;
/// Threads per workgroup of the GPU kernel.
pub const PKM_WORKGROUP: u32 = 256;

/// Arguments of a product-key lookup.
#[derive(Debug, Clone, Copy)]
pub struct PkmArgs<'a> {
    /// Queries, `[B, dims]`.
    pub queries: &'a [f32],
    /// Query dimensions (at least 2).
    pub dims: usize,
    /// First half's sub-keys, `[n1, dims / 2]`.
    pub keys1: &'a [f32],
    /// Second half's sub-keys, `[n2, dims − dims / 2]`.
    pub keys2: &'a [f32],
    /// Memory values, `[n1 · n2, value_dims]`.
    pub values: &'a [f32],
    /// Value dimensions.
    pub value_dims: usize,
    /// Slots per query (1..=32, at most `n1` and `n2`).
    pub k: usize,
}

/// Validated shape of a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PkmShape {
    /// Queries.
    pub b: usize,
    /// Query dims.
    pub d: usize,
    /// First half's dims (`d / 2`).
    pub h1: usize,
    /// Sub-keys of the first half.
    pub n1: usize,
    /// Sub-keys of the second half.
    pub n2: usize,
    /// Value dims.
    pub dv: usize,
    /// Slots per query.
    pub k: usize,
}

/// Output of a lookup: `[B, dv]` weighted sums, and per query the `k` slots (sorted by score)
/// with their softmax weights.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PkmOutput {
    /// Weighted sums, `[B, value_dims]`.
    pub output: Vec<f32>,
    /// Selected slots, `[B, k]`.
    pub ids: Vec<u32>,
    /// Softmax weights, `[B, k]`.
    pub weights: Vec<f32>,
    /// Combined scores of the selected slots, `[B, k]`.
    pub scores: Vec<f32>,
}

/// Check the arguments of a lookup.
pub fn check(a: &PkmArgs) -> Result<PkmShape, HierError> {
    if a.dims < 2 {
        return Err(invalid(
            "dims",
            format!("must be at least 2, got {}", a.dims),
        ));
    }
    let h1 = a.dims / 2;
    let h2 = a.dims - h1;
    let b = rows_of("queries", a.queries, a.dims)?;
    if b == 0 {
        return Err(invalid("queries", "at least one query is required"));
    }
    if b > 65_535 {
        return Err(invalid(
            "queries",
            format!("at most 65535 queries, got {b}"),
        ));
    }
    let n1 = rows_of("keys1", a.keys1, h1)?;
    let n2 = rows_of("keys2", a.keys2, h2)?;
    if a.value_dims == 0 {
        return Err(invalid("valueDims", "must be at least 1"));
    }
    let slots = n1 as u64 * n2 as u64;
    if slots > u32::MAX as u64 {
        return Err(invalid("keys", "n1 · n2 must fit in 32 bits"));
    }
    let nv = rows_of("values", a.values, a.value_dims)?;
    if nv as u64 != slots {
        return Err(HierError::Kernel(KernelError::Shape {
            name: "values",
            expected: format!(
                "{slots} rows (n1 · n2 = {n1} · {n2}) of {} values",
                a.value_dims
            ),
            got: a.values.len(),
        }));
    }
    if a.k == 0 || a.k > PKM_MAX_K {
        return Err(invalid(
            "k",
            format!("must be in 1..={PKM_MAX_K}, got {}", a.k),
        ));
    }
    if a.k > n1 || a.k > n2 {
        return Err(invalid(
            "k",
            format!(
                "must be at most the sub-key counts ({n1}, {n2}), got {}",
                a.k
            ),
        ));
    }
    check_finite("queries", a.queries)?;
    check_finite("keys1", a.keys1)?;
    check_finite("keys2", a.keys2)?;
    check_finite("values", a.values)?;
    Ok(PkmShape {
        b,
        d: a.dims,
        h1,
        n1,
        n2,
        dv: a.value_dims,
        k: a.k,
    })
}

/// Per query, the smallest score gap at a selection boundary (sub-key top-k of either half, or
/// the top-k of the combinations): where it is tiny, another rounding may select differently.
pub fn boundary_gaps(a: &PkmArgs) -> Result<Vec<f32>, HierError> {
    let s = check(a)?;
    let mut out = Vec::with_capacity(s.b);
    for q in a.queries.chunks_exact(s.d) {
        let (q1, q2) = q.split_at(s.h1);
        let mut g = f32::INFINITY;
        let mut all1: Vec<f32> = a.keys1.chunks_exact(s.h1).map(|k| dot(q1, k)).collect();
        let mut all2: Vec<f32> = a
            .keys2
            .chunks_exact(s.d - s.h1)
            .map(|k| dot(q2, k))
            .collect();
        for all in [&mut all1, &mut all2] {
            all.sort_by(|x, y| y.total_cmp(x));
            if all.len() > s.k {
                g = g.min(all[s.k - 1] - all[s.k]);
            }
        }
        let mut combos: Vec<f32> = all1[..s.k]
            .iter()
            .flat_map(|x| all2[..s.k].iter().map(move |y| x + y))
            .collect();
        combos.sort_by(|x, y| y.total_cmp(x));
        if combos.len() > s.k {
            g = g.min(combos[s.k - 1] - combos[s.k]);
        }
        out.push(g);
    }
    Ok(out)
}

/// CPU reference.
pub fn pkm_cpu(a: &PkmArgs) -> Result<PkmOutput, HierError> {
    let s = check(a)?;
    let h2 = s.d - s.h1;
    let mut out = PkmOutput {
        output: vec![0.0; s.b * s.dv],
        ids: Vec::with_capacity(s.b * s.k),
        weights: Vec::with_capacity(s.b * s.k),
        scores: Vec::with_capacity(s.b * s.k),
    };
    let mut t1 = TopK::new(s.k);
    let mut t2 = TopK::new(s.k);
    let mut tc = TopK::new(s.k);
    for (qi, q) in a.queries.chunks_exact(s.d).enumerate() {
        let (q1, q2) = q.split_at(s.h1);
        t1.clear();
        t2.clear();
        tc.clear();
        for (i, key) in a.keys1.chunks_exact(s.h1).enumerate() {
            t1.push(dot(q1, key), i as u32);
        }
        for (i, key) in a.keys2.chunks_exact(h2).enumerate() {
            t2.push(dot(q2, key), i as u32);
        }
        for &(sa, ia) in t1.items() {
            for &(sb, ib) in t2.items() {
                tc.push(sa + sb, ia * s.n2 as u32 + ib);
            }
        }
        let top = tc.items();
        let max = top[0].0;
        let exps: Vec<f32> = top.iter().map(|&(sc, _)| (sc - max).exp()).collect();
        let total: f32 = exps.iter().sum();
        let o = &mut out.output[qi * s.dv..(qi + 1) * s.dv];
        for (&(sc, slot), e) in top.iter().zip(&exps) {
            let w = e / total;
            out.ids.push(slot);
            out.weights.push(w);
            out.scores.push(sc);
            let v = &a.values[slot as usize * s.dv..(slot as usize + 1) * s.dv];
            for (o, v) in o.iter_mut().zip(v) {
                *o += w * v;
            }
        }
    }
    Ok(out)
}

/// Lookup on whichever backend `compute` chose.
pub async fn pkm(compute: &Compute, a: &PkmArgs<'_>) -> Result<PkmOutput, HierError> {
    match compute.gpu_context() {
        Some(ctx) => pkm_gpu(ctx, a).await,
        None => pkm_cpu(a),
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    b: u32,
    d: u32,
    h1: u32,
    n1: u32,
    n2: u32,
    dv: u32,
    k: u32,
    _pad: u32,
}

/// GPU path: `shaders/pkm.wgsl`, one workgroup per query.
pub async fn pkm_gpu(ctx: &GpuContext, a: &PkmArgs<'_>) -> Result<PkmOutput, HierError> {
    let s = check(a)?;
    ctx.check_alive()?;
    for (what, bytes) in [
        ("pkm queries", a.queries.len() * 4),
        ("pkm keys1", a.keys1.len() * 4),
        ("pkm keys2", a.keys2.len() * 4),
        ("pkm values", a.values.len() * 4),
    ] {
        ctx.check_binding(what, bytes as u64)?;
    }
    let out_bytes = (s.b * s.dv * 4) as u64;
    let sel_bytes = (s.b * s.k * 12) as u64;
    ctx.check_binding("pkm output", out_bytes + sel_bytes)?;
    let out = ctx.storage("pkm output", out_bytes + sel_bytes)?;
    let scope = ctx.error_scope();
    let pipeline =
        ctx.pipeline(&PipelineKey::new("pkm", "pkm").with_constant("WG", PKM_WORKGROUP as f64));
    let params = ctx.uniform(
        "pkm params",
        &Params {
            b: s.b as u32,
            d: s.d as u32,
            h1: s.h1 as u32,
            n1: s.n1 as u32,
            n2: s.n2 as u32,
            dv: s.dv as u32,
            k: s.k as u32,
            _pad: 0,
        },
    );
    let qb = ctx.upload("pkm queries", a.queries);
    let k1 = ctx.upload("pkm keys1", a.keys1);
    let k2 = ctx.upload("pkm keys2", a.keys2);
    let vb = ctx.upload("pkm values", a.values);
    let entries: Vec<wgpu::BindGroupEntry> = [&params, &qb, &k1, &k2, &vb, &out]
        .iter()
        .enumerate()
        .map(|(i, b)| wgpu::BindGroupEntry {
            binding: i as u32,
            resource: b.as_entire_binding(),
        })
        .collect();
    let bind = ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("pkm"),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &entries,
    });
    let (gx, gy) = fold_workgroups(s.b as u32, ctx.max_workgroups_per_dim());
    let mut encoder = ctx
        .device()
        .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("pkm") });
    {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("pkm"),
            timestamp_writes: None,
        });
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind, &[]);
        pass.dispatch_workgroups(gx, gy, 1);
    }
    let read = ctx
        .submit_and_read(encoder, &out, out_bytes + sel_bytes)
        .await;
    scope.finish("pkm").await?;
    let bytes = read?;
    let words: Vec<u32> = bytemuck::pod_collect_to_vec(&bytes);
    let nout = s.b * s.dv;
    let output: Vec<f32> = words[..nout].iter().map(|&w| f32::from_bits(w)).collect();
    let sel = &words[nout..];
    let bk = s.b * s.k;
    Ok(PkmOutput {
        output,
        ids: sel[..bk].to_vec(),
        weights: sel[bk..2 * bk].iter().map(|&w| f32::from_bits(w)).collect(),
        scores: sel[2 * bk..3 * bk]
            .iter()
            .map(|&w| f32::from_bits(w))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_lookup_by_hand() {
        // d = 2: q1 = 1, q2 = 2; keys1 = [1, -1], keys2 = [0.5, 1]; values = slot index.
        let values: Vec<f32> = (0..4).map(|i| i as f32).collect();
        let a = PkmArgs {
            queries: &[1.0, 2.0],
            dims: 2,
            keys1: &[1.0, -1.0],
            keys2: &[0.5, 1.0],
            values: &values,
            value_dims: 1,
            k: 1,
        };
        let o = pkm_cpu(&a).unwrap();
        // best: key1 0 (1) + key2 1 (2) = slot 0 * 2 + 1 = 1, weight 1.
        assert_eq!(o.ids, vec![1]);
        assert_eq!(o.weights, vec![1.0]);
        assert_eq!(o.output, vec![1.0]);
    }

    #[test]
    fn shape_errors_are_typed() {
        let v = vec![0.0; 4];
        let ok = PkmArgs {
            queries: &[1.0, 2.0],
            dims: 2,
            keys1: &[1.0, -1.0],
            keys2: &[0.5, 1.0],
            values: &v,
            value_dims: 1,
            k: 1,
        };
        assert!(pkm_cpu(&ok).is_ok());
        assert_eq!(
            pkm_cpu(&PkmArgs { k: 0, ..ok }).unwrap_err().code(),
            "INVALID_INPUT"
        );
        assert_eq!(
            pkm_cpu(&PkmArgs { k: 3, ..ok }).unwrap_err().code(),
            "INVALID_INPUT"
        );
        assert_eq!(
            pkm_cpu(&PkmArgs {
                values: &v[..3],
                ..ok
            })
            .unwrap_err()
            .code(),
            "SHAPE_MISMATCH"
        );
        assert_eq!(
            pkm_cpu(&PkmArgs { queries: &[], ..ok }).unwrap_err().code(),
            "INVALID_INPUT"
        );
        assert_eq!(
            pkm_cpu(&PkmArgs {
                queries: &[f32::NAN, 0.0],
                ..ok
            })
            .unwrap_err()
            .code(),
            "NON_FINITE"
        );
    }
}
