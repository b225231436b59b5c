//! GPU host code of the linear recurrence: the recurrent kernel
//! (`shaders/recurrence_recurrent.wgsl`) and the two chunked passes
//! (`shaders/recurrence_chunk_prep.wgsl`, `shaders/recurrence_chunk_scan.wgsl`).

use super::{
    check, Decay, DecayKind, Form, RecurrenceConfig, RecurrenceInput, RecurrenceOutput, CHUNK,
    GPU_MAX_DK_CHUNKED, GPU_MAX_DK_RECURRENT,
};
use crate::gpu::{GpuContext, GpuError, PipelineKey};
use crate::kernels::KernelError;

/// Scratch memory the chunked form may use per segment; longer sequences run in several
/// segments (the state is carried on the GPU), so memory stays bounded for any `T`.
const SEGMENT_BYTES: u64 = 64 << 20;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct RecParams {
    t: u32,
    heads: u32,
    dk: u32,
    dv: u32,
    scale: f32,
    has_state: u32,
    state_off: u32,
    decay: u32,
    delta: u32,
    _pad: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ChunkParams {
    t: u32,
    heads: u32,
    dk: u32,
    dv: u32,
    chunk0: u32,
    n_chunks: u32,
    off_kh: u32,
    off_w: u32,
    off_qm: u32,
    off_gam: u32,
    scale: f32,
    has_state: u32,
    state_off: u32,
    decay: u32,
    delta: u32,
    _pad: u32,
}

/// Work split of the recurrent kernel: `r` invocations per column, `bv` columns per workgroup,
/// `rows` state rows per invocation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecLayout {
    r: u32,
    bv: u32,
    rows: u32,
}

impl RecLayout {
    pub(crate) fn new(dk: usize, dv: usize) -> Self {
        let r = (dk.div_ceil(16).next_power_of_two() as u32).clamp(1, 64);
        let bv = (256 / r).min(dv.next_power_of_two() as u32).max(1);
        let rows = (dk as u32).div_ceil(r);
        RecLayout { r, bv, rows }
    }

    fn wg(&self) -> u32 {
        self.r * self.bv
    }
}

fn decay_code(kind: DecayKind) -> u32 {
    match kind {
        DecayKind::None => 0,
        DecayKind::Scalar => 1,
        DecayKind::Vector => 2,
    }
}

/// Check what the GPU kernels support beyond [`check`]: `dk` bounds and dispatch sizes.
pub(crate) fn check_gpu_limits(
    ctx: &GpuContext,
    cfg: &RecurrenceConfig,
    form: Form,
) -> Result<(), KernelError> {
    let max_dk = match form {
        Form::Recurrent => GPU_MAX_DK_RECURRENT,
        Form::Chunked => GPU_MAX_DK_CHUNKED,
    };
    if cfg.dk > max_dk {
        return Err(KernelError::InvalidArgument {
            name: "dk",
            reason: format!(
                "the GPU {form:?} form supports dk up to {max_dk}, got {} (the CPU path has no limit)",
                cfg.dk
            ),
        });
    }
    if cfg.heads > ctx.max_workgroups_per_dim() as usize {
        return Err(KernelError::InvalidArgument {
            name: "heads",
            reason: format!(
                "at most {} heads, got {}",
                ctx.max_workgroups_per_dim(),
                cfg.heads
            ),
        });
    }
    Ok(())
}

/// Device buffers of one call's inputs (absent gates bound to a 4-byte dummy).
pub(crate) struct Inputs {
    q: wgpu::Buffer,
    k: wgpu::Buffer,
    v: wgpu::Buffer,
    decay: wgpu::Buffer,
    beta: wgpu::Buffer,
}

impl Inputs {
    pub(crate) fn upload(
        ctx: &GpuContext,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        decay: Decay<'_>,
        beta: Option<&[f32]>,
    ) -> Result<Inputs, GpuError> {
        for (what, len) in [("recurrence q", q.len()), ("recurrence v", v.len())] {
            ctx.check_binding(what, (len * 4) as u64)?;
        }
        let decay_data: &[f32] = match decay {
            Decay::None => &[0.0],
            Decay::Scalar(d) | Decay::Vector(d) => d,
        };
        ctx.check_binding("recurrence decay", (decay_data.len() * 4) as u64)?;
        Ok(Inputs {
            q: ctx.upload("recurrence q", q),
            k: ctx.upload("recurrence k", k),
            v: ctx.upload("recurrence v", v),
            decay: ctx.upload("recurrence decay", decay_data),
            beta: ctx.upload("recurrence beta", beta.unwrap_or(&[0.0])),
        })
    }
}

/// Encode the recurrent kernel for `t` tokens into `encoder`: reads `state` (or zeros), writes
/// the outputs and then the final state into `result` (`[T·H·dv + H·dk·dv]`).
pub(crate) fn encode_recurrent(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    cfg: &RecurrenceConfig,
    t: usize,
    inputs: &Inputs,
    state: Option<&wgpu::Buffer>,
    result: &wgpu::Buffer,
) {
    let lay = RecLayout::new(cfg.dk, cfg.dv);
    let pipeline = ctx.pipeline(
        &PipelineKey::new(&crate::shaders::RECURRENCE_RECURRENT, "recurrent")
            .with_constant("BV", lay.bv as f64)
            .with_constant("R", lay.r as f64)
            .with_constant("ROWS", lay.rows as f64)
            .with_constant("WG", lay.wg() as f64),
    );
    let params = ctx.uniform(
        "recurrence params",
        &RecParams {
            t: t as u32,
            heads: cfg.heads as u32,
            dk: cfg.dk as u32,
            dv: cfg.dv as u32,
            scale: cfg.scale,
            has_state: state.is_some() as u32,
            state_off: (t * cfg.heads * cfg.dv) as u32,
            decay: decay_code(cfg.decay),
            delta: cfg.delta as u32,
            _pad: [0; 3],
        },
    );
    let dummy;
    let state_buf = match state {
        Some(s) => s,
        None => {
            dummy = ctx.upload("recurrence no state", &[0.0f32]);
            &dummy
        }
    };
    let bind = ctx.bind_buffers(
        &pipeline,
        "recurrence recurrent",
        &[
            &params,
            &inputs.q,
            &inputs.k,
            &inputs.v,
            &inputs.decay,
            &inputs.beta,
            state_buf,
            result,
        ],
    );
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some("recurrence recurrent"),
        timestamp_writes: None,
    });
    pass.set_pipeline(&pipeline);
    pass.set_bind_group(0, &bind, &[]);
    pass.dispatch_workgroups((cfg.dv as u32).div_ceil(lay.bv), cfg.heads as u32, 1);
}

/// Columns per workgroup of the chunked scan: the state tile `dk × BV` must fit 2,048 floats of
/// workgroup memory, and `C · BV / 4 ≤ 256` invocations own 4 columns of a chunk row each.
fn scan_tile(dk: usize, dv: usize) -> u32 {
    let by_dk = if dk <= 64 {
        32
    } else if dk <= 128 {
        16
    } else {
        8
    };
    by_dk.min(dv.next_power_of_two().max(4) as u32)
}

/// Segmenting of the chunked form: scratch floats per chunk (all heads) in the two scratch
/// buffers, and chunks per segment.
struct ChunkPlan {
    a_per: usize,
    b_per: usize,
    seg: usize,
}

impl ChunkPlan {
    fn new(
        ctx: &GpuContext,
        cfg: &RecurrenceConfig,
        t: usize,
        segment_bytes: u64,
    ) -> Result<ChunkPlan, GpuError> {
        let (h, dk, dv, c) = (cfg.heads, cfg.dk, cfg.dv, CHUNK);
        let a_per = h * c * dk * if cfg.delta { 3 } else { 2 };
        let b_per = h * (if cfg.delta { c * dv } else { 0 } + c * c + dk);
        let limit = segment_bytes
            .min(ctx.limits().max_storage_buffer_binding_size)
            .min(ctx.limits().max_buffer_size);
        let per_bytes = (a_per.max(b_per) * 4) as u64;
        ctx.check_binding("recurrence chunk scratch", per_bytes)?;
        let seg = ((limit / per_bytes.max(1)) as usize)
            .clamp(1, t.div_ceil(c).max(1))
            .min(ctx.max_workgroups_per_dim() as usize);
        Ok(ChunkPlan { a_per, b_per, seg })
    }
}

/// Encode the chunked form: per segment of chunks, pass 1 (intra-chunk quantities, all chunks
/// in parallel) then pass 2 (state carried across the segment's chunks, outputs written).
#[allow(clippy::too_many_arguments)]
fn encode_chunked(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    cfg: &RecurrenceConfig,
    t: usize,
    inputs: &Inputs,
    state: Option<&wgpu::Buffer>,
    result: &wgpu::Buffer,
    segment_bytes: u64,
) -> Result<(), KernelError> {
    let (h, dk, dv) = (cfg.heads, cfg.dk, cfg.dv);
    let c = CHUNK;
    let n_chunks = t.div_ceil(c);
    let ChunkPlan { a_per, b_per, seg } = ChunkPlan::new(ctx, cfg, t, segment_bytes)?;
    let scratch_a = ctx.storage("recurrence scratch a", (seg * a_per * 4) as u64)?;
    let scratch_b = ctx.storage("recurrence scratch b", (seg * b_per * 4) as u64)?;
    let prep = ctx.pipeline(&PipelineKey::new(
        &crate::shaders::RECURRENCE_CHUNK_PREP,
        "prep",
    ));
    let bv = scan_tile(dk, dv);
    let scan = ctx.pipeline(
        &PipelineKey::new(&crate::shaders::RECURRENCE_CHUNK_SCAN, "scan")
            .with_constant("BV", bv as f64),
    );
    let dummy;
    let state_buf = match state {
        Some(s) => s,
        None => {
            dummy = ctx.upload("recurrence no state", &[0.0f32]);
            &dummy
        }
    };
    let mut chunk0 = 0;
    while chunk0 < n_chunks {
        let nc = seg.min(n_chunks - chunk0);
        let plane = nc * h * c * dk;
        let params = ctx.uniform(
            "recurrence chunk params",
            &ChunkParams {
                t: t as u32,
                heads: h as u32,
                dk: dk as u32,
                dv: dv as u32,
                chunk0: chunk0 as u32,
                n_chunks: nc as u32,
                off_kh: plane as u32,
                off_w: (2 * plane) as u32,
                off_qm: (nc * h * if cfg.delta { c * dv } else { 0 }) as u32,
                off_gam: (nc * h * (if cfg.delta { c * dv } else { 0 } + c * c)) as u32,
                scale: cfg.scale,
                has_state: state.is_some() as u32,
                state_off: (t * h * dv) as u32,
                decay: decay_code(cfg.decay),
                delta: cfg.delta as u32,
                _pad: 0,
            },
        );
        let prep_bind = ctx.bind_buffers(
            &prep,
            "recurrence chunk prep",
            &[
                &params,
                &inputs.q,
                &inputs.k,
                &inputs.v,
                &inputs.decay,
                &inputs.beta,
                &scratch_a,
                &scratch_b,
            ],
        );
        let scan_bind = ctx.bind_buffers(
            &scan,
            "recurrence chunk scan",
            &[
                &params, &inputs.v, &scratch_a, &scratch_b, state_buf, result,
            ],
        );
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("recurrence chunked"),
            timestamp_writes: None,
        });
        pass.set_pipeline(&prep);
        pass.set_bind_group(0, &prep_bind, &[]);
        pass.dispatch_workgroups(nc as u32, h as u32, 1);
        pass.set_pipeline(&scan);
        pass.set_bind_group(0, &scan_bind, &[]);
        pass.dispatch_workgroups((dv as u32).div_ceil(bv), h as u32, 1);
        drop(pass);
        chunk0 += nc;
    }
    Ok(())
}

/// The recurrence on the GPU in `form`. Shapes and values are checked first; nothing is
/// uploaded for a bad input.
pub async fn linear_recurrence_gpu(
    ctx: &GpuContext,
    input: &RecurrenceInput<'_>,
    form: Form,
) -> Result<RecurrenceOutput, KernelError> {
    linear_recurrence_gpu_segmented(ctx, input, form, SEGMENT_BYTES).await
}

/// [`linear_recurrence_gpu`] with the chunked form's scratch budget per segment set to
/// `segment_bytes` (tests use a small budget to exercise the state carried across segments).
#[doc(hidden)]
pub async fn linear_recurrence_gpu_segmented(
    ctx: &GpuContext,
    input: &RecurrenceInput<'_>,
    form: Form,
    segment_bytes: u64,
) -> Result<RecurrenceOutput, KernelError> {
    let shape = check(input)?;
    let cfg = shape.cfg;
    check_gpu_limits(ctx, &cfg, form)?;
    ctx.check_alive()?;
    let t = shape.t;
    if t == 0 {
        return Ok(RecurrenceOutput {
            out: Vec::new(),
            state: input
                .state
                .map_or_else(|| vec![0.0; cfg.state_len()], <[f32]>::to_vec),
        });
    }
    let out_len = t * cfg.heads * cfg.dv;
    let total = out_len + cfg.state_len();
    ctx.check_binding("recurrence output", (total * 4) as u64)?;
    if form == Form::Chunked {
        ChunkPlan::new(ctx, &cfg, t, segment_bytes)?;
    }
    for (what, len) in [
        ("recurrence q", input.q.len()),
        ("recurrence v", input.v.len()),
        ("recurrence decay", input.decay.data().len()),
    ] {
        ctx.check_binding(what, (len * 4) as u64)?;
    }

    let scope = ctx.error_scope();
    let inputs = Inputs::upload(ctx, input.q, input.k, input.v, input.decay, input.beta)?;
    let state = input.state.map(|s| ctx.upload("recurrence state", s));
    let result = ctx.storage("recurrence output", (total * 4) as u64)?;
    let mut encoder = ctx
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("recurrence"),
        });
    match form {
        Form::Recurrent => {
            encode_recurrent(ctx, &mut encoder, &cfg, t, &inputs, state.as_ref(), &result)
        }
        Form::Chunked => encode_chunked(
            ctx,
            &mut encoder,
            &cfg,
            t,
            &inputs,
            state.as_ref(),
            &result,
            segment_bytes,
        )?,
    }
    let read = ctx
        .submit_and_read(encoder, &result, (total * 4) as u64)
        .await;
    scope.finish("linear recurrence").await?;
    let mut all: Vec<f32> = bytemuck::pod_collect_to_vec(&read?);
    let state = all.split_off(out_len);
    Ok(RecurrenceOutput { out: all, state })
}
