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

use super::dot::dot;
use super::topk::TopK;
use super::{invalid, HierError};
use crate::compute::Compute;
use crate::gpu::{fold_workgroups, GpuContext, PipelineKey};
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
    // Values are checked where they are read: the selected rows on the CPU path, all of them once
    // when a GPU layer is uploaded (a memory layer's values are large and static).
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
        for &(_, slot) in top {
            let row = &a.values[slot as usize * s.dv..(slot as usize + 1) * s.dv];
            if let Some(j) = row.iter().position(|v| !v.is_finite()) {
                return Err(HierError::Kernel(KernelError::NonFinite {
                    name: "values",
                    index: slot as usize * s.dv + j,
                }));
            }
        }
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

/// A product-key memory resident on the GPU: sub-keys and values uploaded (and checked) once,
/// then any number of lookups.
pub struct PkmGpu {
    dims: usize,
    h1: usize,
    n1: usize,
    n2: usize,
    dv: usize,
    keys1: wgpu::Buffer,
    keys2: wgpu::Buffer,
    values: wgpu::Buffer,
}

impl std::fmt::Debug for PkmGpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PkmGpu")
            .field("dims", &self.dims)
            .field("slots", &(self.n1 * self.n2))
            .field("value_dims", &self.dv)
            .finish_non_exhaustive()
    }
}

impl PkmGpu {
    /// Check (shapes, finiteness of everything) and upload a memory: `keys1` `[n1, dims/2]`,
    /// `keys2` `[n2, dims − dims/2]`, `values` `[n1 · n2, value_dims]`.
    pub fn upload(
        ctx: &GpuContext,
        dims: usize,
        keys1: &[f32],
        keys2: &[f32],
        values: &[f32],
        value_dims: usize,
    ) -> Result<PkmGpu, HierError> {
        // Shapes through `check` with a dummy query and k = 1.
        let q = vec![0.0f32; dims.max(2)];
        let s = check(&PkmArgs {
            queries: &q[..dims.max(1).min(q.len())],
            dims,
            keys1,
            keys2,
            values,
            value_dims,
            k: 1,
        })?;
        check_finite("values", values)?;
        ctx.check_alive()?;
        for (what, bytes) in [
            ("pkm keys1", keys1.len() * 4),
            ("pkm keys2", keys2.len() * 4),
            ("pkm values", values.len() * 4),
        ] {
            ctx.check_binding(what, bytes as u64)?;
        }
        Ok(PkmGpu {
            dims,
            h1: s.h1,
            n1: s.n1,
            n2: s.n2,
            dv: s.dv,
            keys1: ctx.upload("pkm keys1", keys1),
            keys2: ctx.upload("pkm keys2", keys2),
            values: ctx.upload("pkm values", values),
        })
    }

    /// Look up `queries` (`[B, dims]`), `k` slots each (1..=32, at most the sub-key counts).
    pub async fn lookup(
        &self,
        ctx: &GpuContext,
        queries: &[f32],
        k: usize,
    ) -> Result<PkmOutput, HierError> {
        let b = rows_of("queries", queries, self.dims)?;
        if b == 0 {
            return Err(invalid("queries", "at least one query is required"));
        }
        if b > 65_535 {
            return Err(invalid(
                "queries",
                format!("at most 65535 queries, got {b}"),
            ));
        }
        if k == 0 || k > PKM_MAX_K || k > self.n1 || k > self.n2 {
            return Err(invalid(
                "k",
                format!(
                    "must be in 1..={} (and at most the sub-key counts {}, {}), got {k}",
                    PKM_MAX_K, self.n1, self.n2
                ),
            ));
        }
        check_finite("queries", queries)?;
        ctx.check_alive()?;
        let out_bytes = (b * self.dv * 4) as u64;
        let sel_bytes = (b * k * 12) as u64;
        ctx.check_binding("pkm output", out_bytes + sel_bytes)?;
        ctx.check_binding("pkm queries", (queries.len() * 4) as u64)?;
        let out = ctx.storage("pkm output", out_bytes + sel_bytes)?;
        let scope = ctx.error_scope();
        let pipeline = ctx.pipeline(
            &PipelineKey::new(&crate::shaders::PKM, "pkm")
                .with_constant("WG", PKM_WORKGROUP as f64),
        );
        let params = ctx.uniform(
            "pkm params",
            &Params {
                b: b as u32,
                d: self.dims as u32,
                h1: self.h1 as u32,
                n1: self.n1 as u32,
                n2: self.n2 as u32,
                dv: self.dv as u32,
                k: k as u32,
                _pad: 0,
            },
        );
        let qb = ctx.upload("pkm queries", queries);
        let bind = ctx.bind_buffers(
            &pipeline,
            "pkm",
            &[&params, &qb, &self.keys1, &self.keys2, &self.values, &out],
        );
        let (gx, gy) = fold_workgroups(b as u32, ctx.max_workgroups_per_dim());
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
        let nout = b * self.dv;
        let output: Vec<f32> = words[..nout].iter().map(|&w| f32::from_bits(w)).collect();
        let sel = &words[nout..];
        let bk = b * k;
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
}

/// GPU path, one shot: upload the memory ([`PkmGpu::upload`]) and look up once. Keep a
/// [`PkmGpu`] instead when the memory is reused.
pub async fn pkm_gpu(ctx: &GpuContext, a: &PkmArgs<'_>) -> Result<PkmOutput, HierError> {
    check(a)?;
    let layer = PkmGpu::upload(ctx, a.dims, a.keys1, a.keys2, a.values, a.value_dims)?;
    layer.lookup(ctx, a.queries, a.k).await
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
    fn non_finite_values_are_reported_where_read() {
        let mut values: Vec<f32> = (0..4).map(|i| i as f32).collect();
        values[3] = f32::NAN; // slot 3: never selected below
        let a = PkmArgs {
            queries: &[1.0, 2.0],
            dims: 2,
            keys1: &[1.0, -1.0],
            keys2: &[0.5, 1.0],
            values: &values,
            value_dims: 1,
            k: 1,
        };
        assert!(pkm_cpu(&a).is_ok());
        let mut bad = values.clone();
        bad[1] = f32::INFINITY; // the selected slot
        let a = PkmArgs { values: &bad, ..a };
        assert_eq!(
            pkm_cpu(&a).unwrap_err(),
            HierError::Kernel(KernelError::NonFinite {
                name: "values",
                index: 1
            })
        );
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
