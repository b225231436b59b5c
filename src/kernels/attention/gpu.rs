//! GPU plumbing shared by the attention kernels: the uniform block every attention shader
//! declares, input upload with binding-size checks, bind groups and folded dispatches.

use super::{pack_mask, AttentionArgs, AttentionShape};
use crate::gpu::{fold_workgroups, GpuContext};
use crate::kernels::KernelError;

/// The `Params` struct of `shaders/attention_*.wgsl` (same field order, 64 bytes).
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Params {
    pub tq: u32,
    pub tk: u32,
    pub heads: u32,
    pub kv_heads: u32,
    pub group: u32,
    pub causal: u32,
    pub has_mask: u32,
    pub q_blocks: u32,
    pub scale: f32,
    pub offset: i32,
    pub window: u32,
    pub block_size: u32,
    pub n_blocks: u32,
    pub top: u32,
    pub chunk: u32,
    pub splits: u32,
}

impl Params {
    pub(crate) fn new(a: &AttentionArgs, s: &AttentionShape) -> Params {
        Params {
            tq: s.tq as u32,
            tk: s.tk as u32,
            heads: s.heads as u32,
            kv_heads: s.kv_heads as u32,
            group: s.group() as u32,
            causal: a.causal as u32,
            has_mask: a.mask.is_some() as u32,
            scale: s.scale(),
            offset: s.offset() as i32,
            ..Params::default()
        }
    }
}

/// q, k, v and the packed mask on the device.
pub(crate) struct Inputs {
    pub q: wgpu::Buffer,
    pub k: wgpu::Buffer,
    pub v: wgpu::Buffer,
    pub mask: wgpu::Buffer,
}

/// Check binding sizes, then upload the inputs (call inside the error scope).
pub(crate) fn check_inputs(ctx: &GpuContext, a: &AttentionArgs) -> Result<(), KernelError> {
    ctx.check_binding("attention q", std::mem::size_of_val(a.q) as u64)?;
    ctx.check_binding("attention k", std::mem::size_of_val(a.k) as u64)?;
    ctx.check_binding("attention v", std::mem::size_of_val(a.v) as u64)?;
    Ok(())
}

pub(crate) fn upload_inputs(ctx: &GpuContext, a: &AttentionArgs, s: &AttentionShape) -> Inputs {
    Inputs {
        q: ctx.upload("attention q", a.q),
        k: ctx.upload("attention k", a.k),
        v: ctx.upload("attention v", a.v),
        mask: ctx.upload("attention mask", &pack_mask(a.mask, s.tk)),
    }
}

/// Record `groups` linear workgroups of `pipeline`, folded over (x, y).
pub(crate) fn dispatch(
    ctx: &GpuContext,
    pass: &mut wgpu::ComputePass,
    pipeline: &wgpu::ComputePipeline,
    bind: &wgpu::BindGroup,
    groups: u32,
) {
    let (gx, gy) = fold_workgroups(groups, ctx.max_workgroups_per_dim());
    pass.set_pipeline(pipeline);
    pass.set_bind_group(0, bind, &[]);
    pass.dispatch_workgroups(gx, gy, 1);
}

/// Linear workgroup count as u32, or a limit error.
pub(crate) fn groups_u32(what: &'static str, n: usize) -> Result<u32, KernelError> {
    let max = ctx_max_groups();
    if n as u64 > max {
        return Err(crate::gpu::GpuError::Limit {
            what,
            needed: n as u64,
            allowed: max,
        }
        .into());
    }
    Ok(n as u32)
}

/// Folding over (x, y) reaches 65535^2 workgroups; keep well inside u32.
fn ctx_max_groups() -> u64 {
    65_535u64 * 65_535
}

/// Read `len` f32 values of `src` after submitting `encoder`.
pub(crate) async fn read_f32(
    ctx: &GpuContext,
    encoder: wgpu::CommandEncoder,
    src: &wgpu::Buffer,
    len: usize,
) -> Result<Vec<f32>, crate::gpu::GpuError> {
    let bytes = ctx.submit_and_read(encoder, src, (len * 4) as u64).await?;
    Ok(bytemuck::pod_collect_to_vec(&bytes))
}
