//! GPU build of the hierarchical index: the k-means assignment (`shaders/hier_assign.wgsl`, a
//! top-1 kernel) and centroid update (`shaders/hier_update.wgsl`) on the GPU, driven by the same
//! control flow as the CPU build (`tree::build_with`).
//!
//! What matches the CPU: the assignment kernel picks the same centroid as [`assign_cpu`] except
//! where the two best scores of a point are within float rounding of each other (both sides
//! break exact ties to the lower index); the update kernel sums in the same (point) order as
//! [`update_cpu`], so centroids agree to rounding (WGSL division is not correctly rounded).
//! A whole GPU build therefore equals the CPU build up to near-tie flips, which tests measure
//! (partition agreement, recall) rather than require bit-exactness. A GPU build is
//! deterministic: the same input gives the same bytes.
//!
//! [`assign_cpu`]: super::kmeans::assign_cpu
//! [`update_cpu`]: super::kmeans::update_cpu

use super::kmeans::{KmeansEngine, LevelProblem};
use super::tree::{build_with, check_bank};
use super::{HierConfig, HierError, HierIndex};
use crate::compute::{Backend, Compute};
use crate::gpu::{fold_workgroups, GpuContext, PipelineKey};

/// Invocations per workgroup of the assignment kernel.
pub const ASSIGN_WG: u32 = 64;
/// Invocations per workgroup of the update kernel (a power of two).
pub const UPDATE_WG: u32 = 64;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params4 {
    a: u32,
    b: u32,
    _p0: u32,
    _p1: u32,
}

/// Record one dispatch of `groups` linear workgroups (folded over x, y).
pub(crate) fn dispatch(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    pipeline: &wgpu::ComputePipeline,
    bind: &wgpu::BindGroup,
    groups: u32,
    label: &str,
) {
    let (gx, gy) = fold_workgroups(groups, ctx.max_workgroups_per_dim());
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some(label),
        timestamp_writes: None,
    });
    pass.set_pipeline(pipeline);
    pass.set_bind_group(0, bind, &[]);
    pass.dispatch_workgroups(gx, gy, 1);
}

/// One level problem on the GPU.
struct LevelBuffers {
    pts: wgpu::Buffer,
    pgrp: wgpu::Buffer,
    groups: wgpu::Buffer,
    cgrp: wgpu::Buffer,
    cents: wgpu::Buffer,
    assign: wgpu::Buffer,
    counts: wgpu::Buffer,
    npts: u32,
    ncent: u32,
}

fn upload_level(ctx: &GpuContext, p: &LevelProblem) -> Result<LevelBuffers, HierError> {
    ctx.check_binding("hier centroids", (p.cents.len() * 4) as u64)?;
    ctx.check_binding("hier points", (p.pts.len() * 4) as u64)?;
    Ok(LevelBuffers {
        pts: ctx.upload("hier pts", &p.pts),
        pgrp: ctx.upload("hier pgrp", &p.pgrp),
        groups: ctx.upload("hier groups", &p.groups),
        cgrp: ctx.upload("hier cgrp", &p.cgrp),
        cents: ctx.upload("hier cents", &p.cents),
        assign: ctx.storage("hier assign", (p.pts.len() * 4) as u64)?,
        counts: ctx.storage("hier counts", (p.cgrp.len() * 4) as u64)?,
        npts: p.pts.len() as u32,
        ncent: p.cgrp.len() as u32,
    })
}

fn encode_assign(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    bank: &wgpu::Buffer,
    lb: &LevelBuffers,
    d: usize,
) {
    if lb.npts == 0 || lb.ncent == 0 {
        return;
    }
    let pipeline = ctx.pipeline(
        &PipelineKey::new(&crate::shaders::HIER_ASSIGN, "assign_points")
            .with_constant("WG", ASSIGN_WG as f64),
    );
    let params = ctx.uniform(
        "hier assign params",
        &Params4 {
            a: lb.npts,
            b: d as u32,
            _p0: 0,
            _p1: 0,
        },
    );
    let bg = ctx.bind_group(
        &pipeline,
        "hier assign",
        &[
            (0, &params),
            (1, bank),
            (2, &lb.pts),
            (3, &lb.pgrp),
            (4, &lb.groups),
            (5, &lb.cents),
            (6, &lb.assign),
        ],
    );
    dispatch(
        ctx,
        encoder,
        &pipeline,
        &bg,
        lb.npts.div_ceil(ASSIGN_WG),
        "hier assign",
    );
}

fn encode_update(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    bank: &wgpu::Buffer,
    lb: &LevelBuffers,
    d: usize,
) {
    if lb.ncent == 0 {
        return;
    }
    let pipeline = ctx.pipeline(
        &PipelineKey::new(&crate::shaders::HIER_UPDATE, "update_centroids")
            .with_constant("WG", UPDATE_WG as f64),
    );
    let params = ctx.uniform(
        "hier update params",
        &Params4 {
            a: lb.ncent,
            b: d as u32,
            _p0: 0,
            _p1: 0,
        },
    );
    let bg = ctx.bind_group(
        &pipeline,
        "hier update",
        &[
            (0, &params),
            (1, bank),
            (2, &lb.pts),
            (3, &lb.assign),
            (4, &lb.cgrp),
            (5, &lb.groups),
            (6, &lb.cents),
            (7, &lb.counts),
        ],
    );
    dispatch(ctx, encoder, &pipeline, &bg, lb.ncent, "hier update");
}

fn upload_bank(ctx: &GpuContext, bank: &[f32]) -> Result<wgpu::Buffer, HierError> {
    ctx.check_binding("hier bank", std::mem::size_of_val(bank) as u64)?;
    Ok(ctx.upload("hier bank", bank))
}

fn encoder(ctx: &GpuContext, label: &str) -> wgpu::CommandEncoder {
    ctx.device()
        .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) })
}

async fn read_u32(
    ctx: &GpuContext,
    enc: wgpu::CommandEncoder,
    buf: &wgpu::Buffer,
    words: usize,
    op: &str,
) -> Result<Vec<u32>, HierError> {
    let scope = ctx.error_scope();
    let read = ctx.submit_and_read(enc, buf, (words * 4) as u64).await;
    scope.finish(op).await?;
    Ok(bytemuck::pod_collect_to_vec(&read?))
}

fn check_problem(bank: &[f32], p: &LevelProblem) -> Result<(), HierError> {
    let n = bank.len() / p.d.max(1);
    let bad = p.pts.iter().any(|&r| r as usize >= n)
        || p.pgrp.len() != p.pts.len()
        || p.cgrp.len() * (p.d + 1) != p.cents.len()
        || p.pgrp.iter().any(|&g| g as usize >= p.groups.len())
        || p.cgrp.iter().any(|&g| g as usize >= p.groups.len())
        || p.groups.iter().any(|g| {
            (g.pstart + g.pcount) as usize > p.pts.len()
                || (g.cstart + g.ccount) as usize > p.cgrp.len()
        });
    if bad {
        return Err(super::invalid("problem", "inconsistent level problem"));
    }
    Ok(())
}

/// The assignment kernel alone (for tests against [`super::kmeans::assign_cpu`]).
pub async fn assign_gpu(
    ctx: &GpuContext,
    bank: &[f32],
    p: &LevelProblem,
) -> Result<Vec<u32>, HierError> {
    check_problem(bank, p)?;
    ctx.check_alive()?;
    if p.pts.is_empty() {
        return Ok(Vec::new());
    }
    let bank_buf = upload_bank(ctx, bank)?;
    let lb = upload_level(ctx, p)?;
    let mut enc = encoder(ctx, "hier assign");
    encode_assign(ctx, &mut enc, &bank_buf, &lb, p.d);
    read_u32(ctx, enc, &lb.assign, p.pts.len(), "hier_assign").await
}

/// The update kernel alone (for tests against [`super::kmeans::update_cpu`]): updates
/// `p.cents` from `assign` and returns the counts.
pub async fn update_gpu(
    ctx: &GpuContext,
    bank: &[f32],
    p: &mut LevelProblem,
    assign: &[u32],
) -> Result<Vec<u32>, HierError> {
    check_problem(bank, p)?;
    if assign.len() != p.pts.len() {
        return Err(super::invalid("assign", "one assignment per point"));
    }
    ctx.check_alive()?;
    if p.cgrp.is_empty() {
        return Ok(Vec::new());
    }
    let bank_buf = upload_bank(ctx, bank)?;
    let lb = upload_level(ctx, p)?;
    ctx.write(&lb.assign, 0, bytemuck::cast_slice(assign));
    let mut enc = encoder(ctx, "hier update");
    encode_update(ctx, &mut enc, &bank_buf, &lb, p.d);
    let nc = p.cgrp.len();
    let stage = ctx.storage("hier update out", (p.cents.len() * 4 + nc * 4) as u64)?;
    enc.copy_buffer_to_buffer(&lb.cents, 0, &stage, 0, (p.cents.len() * 4) as u64);
    enc.copy_buffer_to_buffer(
        &lb.counts,
        0,
        &stage,
        (p.cents.len() * 4) as u64,
        (nc * 4) as u64,
    );
    let words = read_u32(ctx, enc, &stage, p.cents.len() + nc, "hier_update").await?;
    for (c, w) in p.cents.iter_mut().zip(&words) {
        *c = f32::from_bits(*w);
    }
    Ok(words[p.cents.len()..].to_vec())
}

/// The GPU k-means engine over a bank uploaded once.
pub struct GpuEngine<'a> {
    ctx: &'a GpuContext,
    bank: wgpu::Buffer,
    d: usize,
}

impl<'a> GpuEngine<'a> {
    /// Upload `bank` (`[N, d]`).
    pub fn new(ctx: &'a GpuContext, bank: &[f32], d: usize) -> Result<Self, HierError> {
        ctx.check_alive()?;
        Ok(GpuEngine {
            ctx,
            bank: upload_bank(ctx, bank)?,
            d,
        })
    }
}

impl KmeansEngine for GpuEngine<'_> {
    async fn train(&mut self, p: &mut LevelProblem, iterations: usize) -> Result<(), HierError> {
        if p.pts.is_empty() || p.cgrp.is_empty() || iterations == 0 {
            return Ok(());
        }
        let lb = upload_level(self.ctx, p)?;
        let mut enc = encoder(self.ctx, "hier train");
        for _ in 0..iterations {
            encode_assign(self.ctx, &mut enc, &self.bank, &lb, self.d);
            encode_update(self.ctx, &mut enc, &self.bank, &lb, self.d);
        }
        let words = read_u32(self.ctx, enc, &lb.cents, p.cents.len(), "hier train").await?;
        for (c, w) in p.cents.iter_mut().zip(&words) {
            *c = f32::from_bits(*w);
        }
        Ok(())
    }

    async fn assign(&mut self, p: &LevelProblem) -> Result<Vec<u32>, HierError> {
        if p.pts.is_empty() {
            return Ok(Vec::new());
        }
        let lb = upload_level(self.ctx, p)?;
        let mut enc = encoder(self.ctx, "hier assign");
        encode_assign(self.ctx, &mut enc, &self.bank, &lb, self.d);
        read_u32(self.ctx, enc, &lb.assign, p.pts.len(), "hier_assign").await
    }
}

/// Build on the GPU (the k-means steps on the device, the control flow and leaf splits on the
/// CPU). `Err(GPU_LIMIT)` when the bank does not fit one storage binding of this device.
pub async fn build_gpu(
    ctx: &GpuContext,
    bank: &[f32],
    d: usize,
    ids: Option<&[u32]>,
    cfg: Option<HierConfig>,
) -> Result<HierIndex, HierError> {
    let n = check_bank(bank, d, ids)?;
    let cfg = cfg.unwrap_or_else(|| HierConfig::auto(n));
    cfg.validate()?;
    let mut engine = GpuEngine::new(ctx, bank, d)?;
    build_with(bank, d, ids, cfg, &mut engine, Backend::Gpu).await
}

/// Build on whichever backend `compute` chose; on the GPU path a bank larger than one storage
/// binding is built on the CPU instead ([`HierIndex::built_on`] says which ran).
pub async fn build(
    compute: &Compute,
    bank: &[f32],
    d: usize,
    ids: Option<&[u32]>,
    cfg: Option<HierConfig>,
) -> Result<HierIndex, HierError> {
    match compute.gpu_context() {
        Some(ctx)
            if ctx
                .check_binding("hier bank", std::mem::size_of_val(bank) as u64)
                .is_ok() =>
        {
            build_gpu(ctx, bank, d, ids, cfg).await
        }
        _ => HierIndex::build(bank, d, ids, cfg),
    }
}
