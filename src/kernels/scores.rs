//! Batched dot-product scores of queries against a bank: `out[b, i] = queries[b] · bank[i]`.
//!
//! The first kernel end to end and the pattern the others follow: shape checks, a CPU
//! reference ([`scores_cpu`]), and the GPU path over `shaders/scores.wgsl`.

use super::{check_finite, cpu::dot, rows_of, KernelError};
use crate::compute::Compute;
use crate::gpu::{fold_workgroups, GpuContext, PipelineKey};

/// Invocations per workgroup (`WG` in the shader).
pub const WORKGROUP: u32 = 64;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    d: u32,
    b: u32,
    _pad: u32,
}

/// Validated shape of a scores call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScoresShape {
    /// Bank rows.
    pub n: usize,
    /// Dimensions.
    pub d: usize,
    /// Queries.
    pub b: usize,
}

/// Check the arguments of a scores call.
pub fn check(bank: &[f32], dims: usize, queries: &[f32]) -> Result<ScoresShape, KernelError> {
    let n = rows_of("bank", bank, dims)?;
    let b = rows_of("queries", queries, dims)?;
    if b == 0 {
        return Err(KernelError::InvalidArgument {
            name: "queries",
            reason: "at least one query is required".into(),
        });
    }
    if b > 65_535 {
        return Err(KernelError::InvalidArgument {
            name: "queries",
            reason: format!("at most 65535 queries per call, got {b}"),
        });
    }
    check_finite("queries", queries)?;
    check_finite("bank", bank)?;
    Ok(ScoresShape { n, d: dims, b })
}

/// CPU reference: row-major `[B, N]` scores.
pub fn scores_cpu(bank: &[f32], dims: usize, queries: &[f32]) -> Result<Vec<f32>, KernelError> {
    let s = check(bank, dims, queries)?;
    let mut out = vec![0.0f32; s.b * s.n];
    for (q, row_out) in queries.chunks_exact(s.d).zip(out.chunks_mut(s.n.max(1))) {
        for (i, o) in row_out.iter_mut().enumerate() {
            *o = dot(q, &bank[i * s.d..(i + 1) * s.d]);
        }
    }
    Ok(out)
}

/// Scores on whichever backend `compute` chose. Row-major `[B, N]`.
pub async fn scores(
    compute: &Compute,
    bank: &[f32],
    dims: usize,
    queries: &[f32],
) -> Result<Vec<f32>, KernelError> {
    match compute.gpu_context() {
        Some(ctx) => scores_gpu(ctx, bank, dims, queries).await,
        None => scores_cpu(bank, dims, queries),
    }
}

/// GPU path: one invocation per (row, query).
pub async fn scores_gpu(
    ctx: &GpuContext,
    bank: &[f32],
    dims: usize,
    queries: &[f32],
) -> Result<Vec<f32>, KernelError> {
    let s = check(bank, dims, queries)?;
    ctx.check_alive()?;
    if s.n == 0 {
        return Ok(Vec::new());
    }
    let out_bytes = (s.b * s.n * 4) as u64;
    ctx.check_binding("scores bank", std::mem::size_of_val(bank) as u64)?;
    ctx.check_binding("scores output", out_bytes)?;

    let scope = ctx.error_scope();
    let pipeline = ctx.pipeline(
        &PipelineKey::new(&crate::shaders::SCORES, "scores").with_constant("WG", WORKGROUP as f64),
    );
    let params = ctx.uniform(
        "scores params",
        &Params {
            n: s.n as u32,
            d: s.d as u32,
            b: s.b as u32,
            _pad: 0,
        },
    );
    let bank_buf = ctx.upload("scores bank", bank);
    let query_buf = ctx.upload("scores queries", queries);
    let out = ctx.storage("scores output", out_bytes)?;
    let bind = ctx.bind_buffers(&pipeline, "scores", &[&params, &bank_buf, &query_buf, &out]);
    let groups = (s.n as u32).div_ceil(WORKGROUP);
    let (gx, gy) = fold_workgroups(groups, ctx.max_workgroups_per_dim());
    let mut encoder = ctx
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("scores"),
        });
    {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("scores"),
            timestamp_writes: None,
        });
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind, &[]);
        pass.dispatch_workgroups(gx, gy, s.b as u32);
    }
    let read = ctx.submit_and_read(encoder, &out, out_bytes).await;
    scope.finish("scores").await?;
    let bytes = read?;
    Ok(bytemuck::pod_collect_to_vec(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_reference_small_case() {
        let bank = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let q = [2.0, 3.0];
        assert_eq!(scores_cpu(&bank, 2, &q).unwrap(), vec![2.0, 3.0, 5.0]);
    }

    #[test]
    fn shape_errors_are_typed() {
        assert!(matches!(
            scores_cpu(&[1.0, 2.0, 3.0], 2, &[1.0, 2.0]),
            Err(KernelError::Shape { name: "bank", .. })
        ));
        assert!(matches!(
            scores_cpu(&[1.0, 2.0], 0, &[1.0, 2.0]),
            Err(KernelError::InvalidArgument { name: "dims", .. })
        ));
        assert!(matches!(
            scores_cpu(&[1.0, 2.0], 2, &[]),
            Err(KernelError::InvalidArgument {
                name: "queries",
                ..
            })
        ));
        assert!(matches!(
            scores_cpu(&[1.0, f32::NAN], 2, &[1.0, 2.0]),
            Err(KernelError::NonFinite {
                name: "bank",
                index: 1
            })
        ));
    }
}
