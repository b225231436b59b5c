//! Decode: flash-decoding over `shaders/attention_decode.wgsl`. The keys are split into chunks;
//! one workgroup per (split, query row, head) writes a partial (max, sum, accumulator) and a
//! combine pass merges them. Meant for one query (or a few) against a long KV cache; the
//! semantics are those of [`attention_cpu`] (any `Tq`, causal with the last-positions alignment).

use super::gpu::{check_inputs, dispatch, groups_u32, read_f32, upload_inputs, Params};
use super::{attention_cpu, check, AttentionArgs};
use crate::compute::Compute;
use crate::gpu::{GpuContext, PipelineKey};
use crate::kernels::KernelError;

/// Keys per chunk inside a workgroup (`CH` in the shader).
pub const DECODE_CHUNK: usize = 128;

/// Splits aimed for on long caches.
pub const TARGET_SPLITS: usize = 32;

/// Keys per split and number of splits for `tk` keys: a multiple of 128 keys per split, about
/// [`TARGET_SPLITS`] splits on long caches, at least one split.
pub fn decode_splits(tk: usize) -> (usize, usize) {
    let chunk = DECODE_CHUNK * tk.div_ceil(DECODE_CHUNK * TARGET_SPLITS).max(1);
    (chunk, tk.div_ceil(chunk).max(1))
}

/// Decode attention on whichever backend `compute` chose: `[Tq, heads, head_dim]`.
pub async fn decode_attention(
    compute: &Compute,
    a: &AttentionArgs<'_>,
) -> Result<Vec<f32>, KernelError> {
    match compute.gpu_context() {
        Some(ctx) => decode_attention_gpu(ctx, a).await,
        None => attention_cpu(a),
    }
}

/// GPU decode attention (split keys + combine).
pub async fn decode_attention_gpu(
    ctx: &GpuContext,
    a: &AttentionArgs<'_>,
) -> Result<Vec<f32>, KernelError> {
    decode_attention_gpu_repeated(ctx, a, 1).await
}

/// GPU decode attention with both passes dispatched `repeat` times in one submission (for
/// benchmarks; the output is the same).
pub async fn decode_attention_gpu_repeated(
    ctx: &GpuContext,
    a: &AttentionArgs<'_>,
    repeat: u32,
) -> Result<Vec<f32>, KernelError> {
    let s = check(a)?;
    ctx.check_alive()?;
    check_inputs(ctx, a)?;
    let d = s.head_dim;
    let rows = s.tq * s.heads;
    let out_len = s.out_len();
    let (chunk, splits) = decode_splits(s.tk);
    let part_bytes = (rows * splits * (d + 2) * 4) as u64;
    ctx.check_binding("attention output", (out_len * 4) as u64)?;
    ctx.check_binding("decode partials", part_bytes)?;
    let partial_groups = groups_u32("decode workgroups", rows * splits)?;
    let combine_groups = groups_u32("decode workgroups", rows)?;

    let scope = ctx.error_scope();
    let partial = ctx.pipeline(
        &PipelineKey::new(&crate::shaders::ATTENTION_DECODE, "decode_partial")
            .with_constant("D", d as f64),
    );
    let combine = ctx.pipeline(
        &PipelineKey::new(&crate::shaders::ATTENTION_DECODE, "decode_combine")
            .with_constant("D", d as f64),
    );
    let params = Params {
        chunk: chunk as u32,
        splits: splits as u32,
        ..Params::new(a, &s)
    };
    let params = ctx.uniform("attention params", &params);
    let inputs = upload_inputs(ctx, a, &s);
    let out = ctx.storage("attention output", (out_len * 4) as u64)?;
    let part = ctx.storage("decode partials", part_bytes)?;
    let bg_partial = ctx.bind_group(
        &partial,
        "decode partial",
        &[
            (0, &params),
            (1, &inputs.q),
            (2, &inputs.k),
            (3, &inputs.v),
            (4, &inputs.mask),
            (6, &part),
        ],
    );
    let bg_combine = ctx.bind_group(
        &combine,
        "decode combine",
        &[(0, &params), (5, &out), (6, &part)],
    );
    let mut encoder = ctx
        .device()
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("attention decode"),
        });
    {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("attention decode"),
            timestamp_writes: None,
        });
        for _ in 0..repeat.max(1) {
            dispatch(ctx, &mut pass, &partial, &bg_partial, partial_groups);
            dispatch(ctx, &mut pass, &combine, &bg_combine, combine_groups);
        }
    }
    let read = read_f32(ctx, encoder, &out, out_len).await;
    scope.finish("attention decode").await?;
    Ok(read?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_cover_the_keys() {
        for tk in [0usize, 1, 127, 128, 129, 4095, 4096, 4097, 32768, 100_000] {
            let (chunk, splits) = decode_splits(tk);
            assert!(chunk % DECODE_CHUNK == 0 && splits >= 1);
            assert!(
                chunk * splits >= tk && (splits - 1) * chunk < tk.max(1),
                "tk = {tk}"
            );
            assert!(splits <= TARGET_SPLITS, "tk = {tk}");
        }
    }
}
