//! Prefill: tiled softmax attention with online softmax over `shaders/attention_prefill.wgsl`.

use super::gpu::{check_inputs, dispatch, groups_u32, read_f32, upload_inputs, Params};
use super::{attention_cpu, check, AttentionArgs};
use crate::compute::Compute;
use crate::gpu::{GpuContext, PipelineKey};
use crate::kernels::KernelError;

/// Invocations per prefill workgroup.
pub const PREFILL_WG: u32 = 128;

/// WebGPU's default `maxComputeWorkgroupStorageSize`.
pub const WORKGROUP_BYTES: usize = 16 * 1024;

/// Tile sizes of the prefill kernel for one head dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefillTiles {
    /// Queries per workgroup.
    pub bq: u32,
    /// Keys per K/V tile.
    pub bk: u32,
    /// Invocations per query (`bq * tpq = 128`).
    pub tpq: u32,
}

impl PrefillTiles {
    /// Workgroup memory the kernel declares with these tiles, in bytes.
    pub fn workgroup_bytes(&self, d: usize) -> usize {
        let (bq, bk) = (self.bq as usize, self.bk as usize);
        4 * (bq * d + bk * (d + 1) + bk * d + bq * bk)
    }
}

/// The tiles for head dimension `d` (1..=128): enough invocations per query that each holds at
/// most 16 accumulator dims, 128 invocations, and the largest K/V tile (at most 32 keys) that
/// keeps workgroup memory within 16 KiB.
pub fn prefill_tiles(d: usize) -> PrefillTiles {
    let tpq = d.div_ceil(16).next_power_of_two().clamp(1, 8);
    let bq = PREFILL_WG as usize / tpq;
    let floats = WORKGROUP_BYTES / 4;
    let bk = ((floats - bq * d) / (2 * d + 1 + bq)).clamp(1, 32);
    PrefillTiles {
        bq: bq as u32,
        bk: bk as u32,
        tpq: tpq as u32,
    }
}

/// Attention on whichever backend `compute` chose: `[Tq, heads, head_dim]`.
pub async fn attention(compute: &Compute, a: &AttentionArgs<'_>) -> Result<Vec<f32>, KernelError> {
    match compute.gpu_context() {
        Some(ctx) => attention_gpu(ctx, a).await,
        None => attention_cpu(a),
    }
}

/// GPU prefill attention.
pub async fn attention_gpu(
    ctx: &GpuContext,
    a: &AttentionArgs<'_>,
) -> Result<Vec<f32>, KernelError> {
    attention_gpu_repeated(ctx, a, 1).await
}

/// GPU prefill attention with the kernel dispatched `repeat` times in one submission (for
/// benchmarks: the output is the same; upload and readback happen once).
pub async fn attention_gpu_repeated(
    ctx: &GpuContext,
    a: &AttentionArgs<'_>,
    repeat: u32,
) -> Result<Vec<f32>, KernelError> {
    let s = check(a)?;
    ctx.check_alive()?;
    check_inputs(ctx, a)?;
    let out_len = s.out_len();
    ctx.check_binding("attention output", (out_len * 4) as u64)?;
    let d = s.head_dim;
    let tiles = prefill_tiles(d);
    let q_blocks = s.tq.div_ceil(tiles.bq as usize);
    let groups = groups_u32("attention workgroups", q_blocks * s.heads)?;

    let scope = ctx.error_scope();
    let pipeline = ctx.pipeline(
        &PipelineKey::new(&crate::shaders::ATTENTION_PREFILL, "prefill")
            .with_constant("D", d as f64)
            .with_constant("BQ", tiles.bq as f64)
            .with_constant("BK", tiles.bk as f64)
            .with_constant("TPQ", tiles.tpq as f64)
            .with_constant("WG", PREFILL_WG as f64),
    );
    let params = Params {
        q_blocks: q_blocks as u32,
        ..Params::new(a, &s)
    };
    let params = ctx.uniform("attention params", &params);
    let inputs = upload_inputs(ctx, a, &s);
    let out = ctx.storage("attention output", (out_len * 4) as u64)?;
    let bg = ctx.bind_group(
        &pipeline,
        "attention prefill",
        &[
            (0, &params),
            (1, &inputs.q),
            (2, &inputs.k),
            (3, &inputs.v),
            (4, &inputs.mask),
            (5, &out),
        ],
    );
    let mut encoder = ctx
        .device()
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("attention prefill"),
        });
    {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("attention prefill"),
            timestamp_writes: None,
        });
        for _ in 0..repeat.max(1) {
            dispatch(ctx, &mut pass, &pipeline, &bg, groups);
        }
    }
    let read = read_f32(ctx, encoder, &out, out_len).await;
    scope.finish("attention prefill").await?;
    Ok(read?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_fit_workgroup_memory_for_every_head_dim() {
        for d in 1..=super::super::MAX_HEAD_DIM {
            let t = prefill_tiles(d);
            assert_eq!(t.bq * t.tpq, PREFILL_WG, "d = {d}");
            assert!(d.div_ceil(t.tpq as usize) <= 16, "d = {d}: {t:?}");
            assert!(t.workgroup_bytes(d) <= WORKGROUP_BYTES, "d = {d}: {t:?}");
            assert!(t.bk >= 4, "d = {d}: {t:?}");
        }
    }
}
