//! Block-sparse ("memory sparse") attention: every (query, head) attends its local window plus
//! the `top_blocks` key blocks whose integer mean key best matches its query.
//!
//! Three dispatches: block means and unmasked ranges (`attention_sparse.wgsl`,
//! `sparse_block_means`), the selection (`sparse_select`), and the attention over the window and
//! the selected blocks (`attention_decode.wgsl`, `sparse_attend`). The quantisation scales are
//! computed on the host by the same code as the CPU reference, and the selection itself is
//! integer arithmetic on both paths, so the GPU and the CPU always select the same blocks
//! (see [`sparse_select_cpu`](super::sparse_select_cpu) for the exact definition).

use super::cpu::{quant_scales, sparse_attention_cpu, Selection};
use super::gpu::{check_inputs, dispatch, groups_u32, read_f32, upload_inputs, Params};
use super::{check, check_sparse, AttentionArgs, SparseParams};
use crate::compute::Compute;
use crate::gpu::{GpuContext, PipelineKey};
use crate::kernels::KernelError;

/// The blocks the GPU selected, `[Tq, heads, top_blocks]` (same type as the CPU's).
pub type SparseSelection = Selection;

/// Block-sparse attention on whichever backend `compute` chose: `[Tq, heads, head_dim]`.
pub async fn sparse_attention(
    compute: &Compute,
    a: &AttentionArgs<'_>,
    p: &SparseParams,
) -> Result<Vec<f32>, KernelError> {
    match compute.gpu_context() {
        Some(ctx) => sparse_attention_gpu(ctx, a, p).await,
        None => sparse_attention_cpu(a, p),
    }
}

/// GPU block-sparse attention.
pub async fn sparse_attention_gpu(
    ctx: &GpuContext,
    a: &AttentionArgs<'_>,
    p: &SparseParams,
) -> Result<Vec<f32>, KernelError> {
    Ok(sparse_attention_gpu_with_selection(ctx, a, p).await?.0)
}

/// GPU block-sparse attention, also returning the selection the GPU made (for tests: it must
/// equal [`sparse_select_cpu`](super::sparse_select_cpu)).
pub async fn sparse_attention_gpu_with_selection(
    ctx: &GpuContext,
    a: &AttentionArgs<'_>,
    p: &SparseParams,
) -> Result<(Vec<f32>, SparseSelection), KernelError> {
    let s = check(a)?;
    check_sparse(p)?;
    ctx.check_alive()?;
    check_inputs(ctx, a)?;
    let d = s.head_dim;
    let rows = s.tq * s.heads;
    let out_len = s.out_len();
    let nb = s.tk.div_ceil(p.block_size);
    let top = p.top_blocks;
    let means_bytes = (nb * s.kv_heads * d * 4) as u64;
    let sel_len = rows * top;
    ctx.check_binding("attention output", (out_len * 4) as u64)?;
    ctx.check_binding("sparse block means", means_bytes)?;
    ctx.check_binding("sparse selection", (sel_len * 4) as u64)?;
    let mean_groups = groups_u32("sparse workgroups", nb * s.kv_heads)?;
    let select_groups = groups_u32("sparse workgroups", rows.div_ceil(64))?;
    let attend_groups = groups_u32("sparse workgroups", rows)?;
    let (kscale, qscale) = quant_scales(a, &s);

    let scope = ctx.error_scope();
    let key = |shader, entry| PipelineKey::new(shader, entry).with_constant("D", d as f64);
    let means_p = ctx.pipeline(&key(
        &crate::shaders::ATTENTION_SPARSE,
        "sparse_block_means",
    ));
    let select_p = ctx.pipeline(&key(&crate::shaders::ATTENTION_SPARSE, "sparse_select"));
    let attend_p = ctx.pipeline(&key(&crate::shaders::ATTENTION_DECODE, "sparse_attend"));
    let params = Params {
        window: p.window as u32,
        block_size: p.block_size as u32,
        n_blocks: nb as u32,
        top: top as u32,
        ..Params::new(a, &s)
    };
    let params = ctx.uniform("attention params", &params);
    let inputs = upload_inputs(ctx, a, &s);
    let kscale = ctx.upload("sparse kscale", &kscale);
    let qscale = ctx.upload("sparse qscale", &qscale);
    let means = ctx.storage("sparse block means", means_bytes)?;
    let ranges = ctx.storage("sparse block ranges", (nb * 16) as u64)?;
    let sel = ctx.storage("sparse selection", (sel_len * 4) as u64)?;
    let out = ctx.storage("attention output", (out_len * 4) as u64)?;
    let bg_means = ctx.bind_group(
        &means_p,
        "sparse means",
        &[
            (0, &params),
            (2, &inputs.k),
            (4, &inputs.mask),
            (8, &kscale),
            (10, &means),
            (11, &ranges),
        ],
    );
    let bg_select = ctx.bind_group(
        &select_p,
        "sparse select",
        &[
            (0, &params),
            (1, &inputs.q),
            (9, &qscale),
            (10, &means),
            (11, &ranges),
            (12, &sel),
        ],
    );
    let bg_attend = ctx.bind_group(
        &attend_p,
        "sparse attend",
        &[
            (0, &params),
            (1, &inputs.q),
            (2, &inputs.k),
            (3, &inputs.v),
            (4, &inputs.mask),
            (5, &out),
            (7, &sel),
        ],
    );
    let mut encoder = ctx
        .device()
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("sparse attention"),
        });
    {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("sparse attention"),
            timestamp_writes: None,
        });
        dispatch(ctx, &mut pass, &means_p, &bg_means, mean_groups);
        dispatch(ctx, &mut pass, &select_p, &bg_select, select_groups);
        dispatch(ctx, &mut pass, &attend_p, &bg_attend, attend_groups);
    }
    let out_read = read_f32(ctx, encoder, &out, out_len).await;
    let sel_read = if sel_len > 0 && out_read.is_ok() {
        let encoder = ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("sparse selection readback"),
            });
        Some(
            ctx.submit_and_read(encoder, &sel, (sel_len * 4) as u64)
                .await,
        )
    } else {
        None
    };
    scope.finish("sparse attention").await?;
    let out = out_read?;
    let blocks = match sel_read {
        Some(bytes) => bytemuck::pod_collect_to_vec(&bytes?),
        None => Vec::new(),
    };
    Ok((
        out,
        Selection {
            top_blocks: top,
            blocks,
        },
    ))
}
