//! The text encoder's GPU path: host code of its WGSL kernels over [`GpuContext`], and the
//! whole-model forward pass on them.
//!
//! - [`linear_gpu`]: `shaders/encoder_linear.wgsl`, `y = x Wᵀ + b` (optionally GELU), 64 × 64
//!   tiles staged in workgroup memory; [`linear_v4_gpu`]: `shaders/encoder_linear_v4.wgsl`, the
//!   same with 8 × 8 register blocks from vec4 loads and no workgroup memory (for CPU-backed
//!   adapters);
//! - [`attention_v4_gpu`]: `shaders/encoder_attention.wgsl`, self-attention of a padded batch
//!   (head size 32) in one dispatch, the one used on CPU-backed adapters;
//! - [`layer_norm_gpu`]: `shaders/encoder_layernorm.wgsl`, `LayerNorm(x [+ residual])`;
//! - attention: the prefill kernel of [`crate::kernels::attention`], one dispatch per sequence of
//!   the padded batch (its rows of q, k, v bound at an offset) with its key padding mask.
//!
//! [`GpuModel`] holds the model's weights resident on one device (uploaded once; dense weights
//! as stored by PyTorch, the fused QKV projection split into q, k, v; `linear_v4` on CPU-backed
//! adapters when the hidden and FFN widths are multiples of 4, the tiled `linear` otherwise).
//! [`GpuModel::embed_ids`] runs a batch padded to its longest sequence (pad id `[PAD]` = 0, mask
//! 0) as one command buffer — embedding LayerNorm, 6 × (3 projections, attention per sequence,
//! output projection, residual LayerNorm, FFN with GELU, residual LayerNorm) — with one upload
//! (the gathered embeddings), one submission and one readback (the last hidden states, pooled on
//! the host). [`embed_ids_gpu`] is the same with the weights uploaded for the one call.

use super::model::{mean_pool_normalize, Linear, MiniLm};
use super::EncoderError;
use crate::gpu::{fold_workgroups, GpuContext, GpuError, PipelineKey};
use crate::kernels::attention::gpu::{dispatch, Params as AttnParams};
use crate::kernels::attention::pack_mask;
use crate::kernels::attention::prefill::{prefill_tiles, PREFILL_WG};
use crate::kernels::{check_finite, KernelError};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct LinearDims {
    m: u32,
    n: u32,
    k: u32,
    tiles_n: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct LnParams {
    rows: u32,
    h: u32,
    has_residual: u32,
    eps: f32,
}

/// Uniform of `shaders/encoder_attention.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct AttnV4Params {
    l: u32,
    ls: u32,
    heads: u32,
    q_blocks: u32,
    scale: f32,
    _pad: [u32; 3],
}

/// Queries per workgroup of the `attention_v4` kernel.
const ATTENTION_V4_QUERIES: usize = 16;

/// Rows and columns of `y` per workgroup of the `linear_v4` kernel.
const LINEAR_V4_ROWS: usize = 16;
const LINEAR_V4_COLS: usize = 256;

/// The widest row [`layer_norm_gpu`] takes (the shader's workgroup buffer).
pub const MAX_LAYER_NORM_WIDTH: usize = 1024;

fn shape(name: &'static str, expected: String, got: usize) -> EncoderError {
    KernelError::Shape {
        name,
        expected,
        got,
    }
    .into()
}

fn groups(what: &'static str, n: usize) -> Result<u32, EncoderError> {
    let max = 65_535u64 * 65_535;
    if n as u64 > max {
        return Err(GpuError::Limit {
            what,
            needed: n as u64,
            allowed: max,
        }
        .into());
    }
    Ok(n as u32)
}

async fn run(
    ctx: &GpuContext,
    key: PipelineKey,
    label: &str,
    buffers: &[&wgpu::Buffer],
    groups: u32,
    out: &wgpu::Buffer,
    out_len: usize,
) -> Result<Vec<f32>, GpuError> {
    let pipeline = ctx.pipeline(&key);
    let entries: Vec<wgpu::BindGroupEntry> = buffers
        .iter()
        .enumerate()
        .map(|(i, b)| wgpu::BindGroupEntry {
            binding: i as u32,
            resource: b.as_entire_binding(),
        })
        .collect();
    let bind = ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &entries,
    });
    let mut encoder = ctx
        .device()
        .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
    {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(label),
            timestamp_writes: None,
        });
        let (gx, gy) = fold_workgroups(groups, ctx.max_workgroups_per_dim());
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind, &[]);
        pass.dispatch_workgroups(gx, gy, 1);
    }
    let bytes = ctx
        .submit_and_read(encoder, out, (out_len * 4) as u64)
        .await?;
    Ok(bytemuck::pod_collect_to_vec(&bytes))
}

/// `y[m, n] = x[m, k] · w[n, k]ᵀ + bias[n]`, then exact GELU when `gelu`, on the GPU. Shapes are
/// checked first (nothing launched on a mismatch).
#[allow(clippy::too_many_arguments)]
pub async fn linear_gpu(
    ctx: &GpuContext,
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    m: usize,
    n: usize,
    k: usize,
    gelu: bool,
) -> Result<Vec<f32>, EncoderError> {
    if m == 0 || n == 0 || k == 0 {
        return Err(KernelError::InvalidArgument {
            name: "m, n, k",
            reason: format!("must all be at least 1, got {m}, {n}, {k}"),
        }
        .into());
    }
    if x.len() != m * k {
        return Err(shape("x", format!("m * k = {}", m * k), x.len()));
    }
    if w.len() != n * k {
        return Err(shape("w", format!("n * k = {}", n * k), w.len()));
    }
    if bias.len() != n {
        return Err(shape("bias", format!("n = {n}"), bias.len()));
    }
    check_finite("x", x)?;
    ctx.check_alive()?;
    ctx.check_binding("encoder linear x", (x.len() * 4) as u64)?;
    ctx.check_binding("encoder linear w", (w.len() * 4) as u64)?;
    ctx.check_binding("encoder linear y", (m * n * 4) as u64)?;
    let tiles_n = n.div_ceil(64);
    let g = groups("encoder linear workgroups", m.div_ceil(64) * tiles_n)?;
    let scope = ctx.error_scope();
    let dims = ctx.uniform(
        "encoder linear dims",
        &LinearDims {
            m: m as u32,
            n: n as u32,
            k: k as u32,
            tiles_n: tiles_n as u32,
        },
    );
    let xb = ctx.upload("encoder linear x", x);
    let wb = ctx.upload("encoder linear w", w);
    let bb = ctx.upload("encoder linear bias", bias);
    let y = ctx.storage("encoder linear y", (m * n * 4) as u64)?;
    let key = PipelineKey::new(&crate::shaders::ENCODER_LINEAR, "linear")
        .with_constant("GELU", gelu as u32 as f64);
    let out = run(
        ctx,
        key,
        "encoder linear",
        &[&dims, &xb, &wb, &bb, &y],
        g,
        &y,
        m * n,
    )
    .await;
    scope.finish("encoder linear").await?;
    Ok(out?)
}

/// The same dense layer on the `linear_v4` kernel (`shaders/encoder_linear_v4.wgsl`: 8 × 8
/// register blocks from vec4 loads, no workgroup memory; the fast one on CPU-backed adapters).
/// `w` is `[n, k]` as for [`linear_gpu`]; when `k` is not a multiple of 4, `x` and `w` are
/// zero-padded to the next one on the host.
#[allow(clippy::too_many_arguments)]
pub async fn linear_v4_gpu(
    ctx: &GpuContext,
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    m: usize,
    n: usize,
    k: usize,
    gelu: bool,
) -> Result<Vec<f32>, EncoderError> {
    if m == 0 || n == 0 || k == 0 {
        return Err(KernelError::InvalidArgument {
            name: "m, n, k",
            reason: format!("must all be at least 1, got {m}, {n}, {k}"),
        }
        .into());
    }
    if x.len() != m * k {
        return Err(shape("x", format!("m * k = {}", m * k), x.len()));
    }
    if w.len() != n * k {
        return Err(shape("w", format!("n * k = {}", n * k), w.len()));
    }
    if bias.len() != n {
        return Err(shape("bias", format!("n = {n}"), bias.len()));
    }
    check_finite("x", x)?;
    ctx.check_alive()?;
    let kp = k.next_multiple_of(4);
    ctx.check_binding("encoder linear x", (m * kp * 4) as u64)?;
    ctx.check_binding("encoder linear w", (n * kp * 4) as u64)?;
    ctx.check_binding("encoder linear y", (m * n * 4) as u64)?;
    fn pad(a: &[f32], k: usize, kp: usize) -> std::borrow::Cow<'_, [f32]> {
        if kp == k {
            return a.into();
        }
        let mut out = vec![0.0f32; a.len() / k * kp];
        for (dst, src) in out.chunks_exact_mut(kp).zip(a.chunks_exact(k)) {
            dst[..k].copy_from_slice(src);
        }
        out.into()
    }
    let (xp, wp) = (pad(x, k, kp), pad(w, k, kp));
    let tiles_n = n.div_ceil(LINEAR_V4_COLS);
    let g = groups(
        "encoder linear workgroups",
        m.div_ceil(LINEAR_V4_ROWS) * tiles_n,
    )?;
    let scope = ctx.error_scope();
    let dims = ctx.uniform(
        "encoder linear dims",
        &LinearDims {
            m: m as u32,
            n: n as u32,
            k: (kp / 4) as u32,
            tiles_n: tiles_n as u32,
        },
    );
    let xb = ctx.upload("encoder linear x", &xp);
    let wb = ctx.upload("encoder linear w", &wp);
    let bb = ctx.upload("encoder linear bias", bias);
    let y = ctx.storage("encoder linear y", (m * n * 4) as u64)?;
    let key = PipelineKey::new(&crate::shaders::ENCODER_LINEAR_V4, "linear_v4")
        .with_constant("GELU", gelu as u32 as f64);
    let out = run(
        ctx,
        key,
        "encoder linear",
        &[&dims, &xb, &wb, &bb, &y],
        g,
        &y,
        m * n,
    )
    .await;
    scope.finish("encoder linear").await?;
    Ok(out?)
}

/// Self-attention of a padded batch on the `attention_v4` kernel
/// (`shaders/encoder_attention.wgsl`, head size 32, the one used on CPU-backed adapters):
/// `q`, `k`, `v` are `[lens.len() * l, heads * 32]` (sequence `b`'s position `i` at row
/// `b * l + i`); each sequence attends to its first `lens[b]` keys. Returns the same shape.
pub async fn attention_v4_gpu(
    ctx: &GpuContext,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    lens: &[usize],
    l: usize,
    heads: usize,
) -> Result<Vec<f32>, EncoderError> {
    const D: usize = 32;
    if lens.is_empty() || l == 0 || heads == 0 {
        return Err(KernelError::InvalidArgument {
            name: "lens, l, heads",
            reason: format!(
                "must all be non-empty / at least 1, got {} sequences, {l}, {heads}",
                lens.len()
            ),
        }
        .into());
    }
    if let Some(&bad) = lens.iter().find(|&&n| n == 0 || n > l) {
        return Err(KernelError::InvalidArgument {
            name: "lens",
            reason: format!("{bad}, expected 1..={l}"),
        }
        .into());
    }
    let len = lens.len() * l * heads * D;
    for (name, a) in [("q", q), ("k", k), ("v", v)] {
        if a.len() != len {
            return Err(shape(
                name,
                format!("sequences * l * heads * 32 = {len}"),
                a.len(),
            ));
        }
        check_finite(name, a)?;
    }
    ctx.check_alive()?;
    ctx.check_binding("encoder attention q", (len * 4) as u64)?;
    let q_blocks = l.div_ceil(ATTENTION_V4_QUERIES);
    let g = groups("attention workgroups", lens.len() * heads * q_blocks)?;
    let scope = ctx.error_scope();
    let params = ctx.uniform(
        "encoder attention params",
        &AttnV4Params {
            l: l as u32,
            ls: l as u32,
            heads: heads as u32,
            q_blocks: q_blocks as u32,
            scale: 1.0 / (D as f32).sqrt(),
            _pad: [0; 3],
        },
    );
    let lens: Vec<u32> = lens.iter().map(|&n| n as u32).collect();
    let bufs = [
        params,
        ctx.upload("encoder attention q", q),
        ctx.upload("encoder attention k", k),
        ctx.upload("encoder attention v", v),
        ctx.upload("encoder lengths", &lens),
        ctx.storage("encoder attention out", (len * 4) as u64)?,
    ];
    let key = PipelineKey::new(&crate::shaders::ENCODER_ATTENTION, "attention_v4");
    let refs: Vec<&wgpu::Buffer> = bufs.iter().collect();
    let out = run(ctx, key, "encoder attention", &refs, g, &bufs[5], len).await;
    scope.finish("encoder attention").await?;
    Ok(out?)
}

/// `LayerNorm(x + residual)` per row of `gamma.len()` values (residual optional), on the GPU.
pub async fn layer_norm_gpu(
    ctx: &GpuContext,
    x: &[f32],
    residual: Option<&[f32]>,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) -> Result<Vec<f32>, EncoderError> {
    let h = gamma.len();
    if h == 0 || h > MAX_LAYER_NORM_WIDTH {
        return Err(KernelError::InvalidArgument {
            name: "gamma",
            reason: format!("row width {h}, expected 1..={MAX_LAYER_NORM_WIDTH}"),
        }
        .into());
    }
    if beta.len() != h {
        return Err(shape("beta", format!("gamma's length {h}"), beta.len()));
    }
    if x.is_empty() || !x.len().is_multiple_of(h) {
        return Err(shape("x", format!("a positive multiple of {h}"), x.len()));
    }
    if let Some(r) = residual {
        if r.len() != x.len() {
            return Err(shape(
                "residual",
                format!("x's length {}", x.len()),
                r.len(),
            ));
        }
    }
    if !(eps > 0.0 && eps.is_finite()) {
        return Err(KernelError::InvalidArgument {
            name: "eps",
            reason: format!("{eps}, expected a positive finite value"),
        }
        .into());
    }
    check_finite("x", x)?;
    ctx.check_alive()?;
    ctx.check_binding("encoder layernorm x", (x.len() * 4) as u64)?;
    let rows = x.len() / h;
    let g = groups("encoder layernorm workgroups", rows)?;
    let scope = ctx.error_scope();
    let params = ctx.uniform(
        "encoder layernorm params",
        &LnParams {
            rows: rows as u32,
            h: h as u32,
            has_residual: residual.is_some() as u32,
            eps,
        },
    );
    let xb = ctx.upload("encoder layernorm x", x);
    let rb = ctx.upload("encoder layernorm residual", residual.unwrap_or(&[0.0]));
    let gb = ctx.upload("encoder layernorm gamma", gamma);
    let bb = ctx.upload("encoder layernorm beta", beta);
    let y = ctx.storage("encoder layernorm y", (x.len() * 4) as u64)?;
    let key = PipelineKey::new(&crate::shaders::ENCODER_LAYERNORM, "layernorm");
    let out = run(
        ctx,
        key,
        "encoder layernorm",
        &[&params, &xb, &rb, &gb, &bb, &y],
        g,
        &y,
        x.len(),
    )
    .await;
    scope.finish("encoder layernorm").await?;
    Ok(out?)
}

/// One dense layer's weights on the device: `w` as `[n, k]`, `bias` `[n]`.
struct DenseWeights {
    w: wgpu::Buffer,
    bias: wgpu::Buffer,
    n: usize,
    k: usize,
}

impl DenseWeights {
    /// Rows `rows` of `lin` (output features `rows.start..rows.end`) as a dense layer of their own.
    fn upload(ctx: &GpuContext, lin: &Linear, rows: std::ops::Range<usize>) -> DenseWeights {
        let (n, k) = (rows.len(), lin.k);
        let w = ctx.upload("encoder weights", &lin.weight_rows(rows.clone()));
        DenseWeights {
            w,
            bias: ctx.upload("encoder bias", &lin.bias[rows]),
            n,
            k,
        }
    }
}

/// One encoder layer's weights on the device (the fused QKV projection split in three, so that
/// each of q, k, v is a `[rows, hidden]` buffer the attention kernel reads directly).
struct LayerWeights {
    q: DenseWeights,
    k: DenseWeights,
    v: DenseWeights,
    attn_out: DenseWeights,
    ln1: (wgpu::Buffer, wgpu::Buffer),
    ffn_in: DenseWeights,
    ffn_out: DenseWeights,
    ln2: (wgpu::Buffer, wgpu::Buffer),
}

/// The model's weights resident on one device, uploaded once ([`GpuModel::upload`]); a forward
/// pass ([`GpuModel::embed_ids`]) then uploads only the batch's embeddings and reads back only
/// the last hidden states, in one submission.
pub struct GpuModel {
    ctx_id: u64,
    vec4: bool,
    emb_ln: (wgpu::Buffer, wgpu::Buffer),
    layers: Vec<LayerWeights>,
    bytes: u64,
}

impl std::fmt::Debug for GpuModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuModel")
            .field("context", &self.ctx_id)
            .field("vec4", &self.vec4)
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

/// Activation buffers of one forward pass (`rows` rows of the padded batch).
struct Activations {
    emb: wgpu::Buffer,
    x: wgpu::Buffer,
    q: wgpu::Buffer,
    k: wgpu::Buffer,
    v: wgpu::Buffer,
    cx: wgpu::Buffer,
    a0: wgpu::Buffer,
    a: wgpu::Buffer,
    up: wgpu::Buffer,
    down: wgpu::Buffer,
    mask: wgpu::Buffer,
}

/// Bytes between consecutive sequences' masks in the packed mask buffer (a multiple of every
/// storage-offset alignment WebGPU allows).
const MASK_STRIDE: usize = 256;

impl GpuModel {
    /// Upload `model`'s weights to `ctx`'s device (dense layers on `linear_v4` on CPU-backed
    /// adapters when the hidden and FFN widths are multiples of 4, on the tiled `linear`
    /// otherwise).
    pub fn upload(ctx: &GpuContext, model: &MiniLm) -> Result<GpuModel, EncoderError> {
        ctx.check_alive()?;
        let c = model.config;
        let h = c.hidden;
        let vec4 = ctx.adapter_info().device_type == "cpu"
            && h.is_multiple_of(4)
            && c.ffn.is_multiple_of(4);
        if h > MAX_LAYER_NORM_WIDTH {
            return Err(shape(
                "hidden",
                format!("at most {MAX_LAYER_NORM_WIDTH}"),
                h,
            ));
        }
        ctx.check_binding("encoder weights", (c.ffn * h * 4) as u64)?;
        let ln = |(g, b): &(Vec<f32>, Vec<f32>)| {
            (
                ctx.upload("encoder layernorm gamma", g),
                ctx.upload("encoder layernorm beta", b),
            )
        };
        let layers = model
            .layers
            .iter()
            .map(|l| LayerWeights {
                q: DenseWeights::upload(ctx, &l.qkv, 0..h),
                k: DenseWeights::upload(ctx, &l.qkv, h..2 * h),
                v: DenseWeights::upload(ctx, &l.qkv, 2 * h..3 * h),
                attn_out: DenseWeights::upload(ctx, &l.attn_out, 0..l.attn_out.n),
                ln1: ln(&l.ln1),
                ffn_in: DenseWeights::upload(ctx, &l.ffn_in, 0..l.ffn_in.n),
                ffn_out: DenseWeights::upload(ctx, &l.ffn_out, 0..l.ffn_out.n),
                ln2: ln(&l.ln2),
            })
            .collect::<Vec<_>>();
        let per_layer = 4 * (4 * h * h + 2 * h * c.ffn + 9 * h + c.ffn);
        Ok(GpuModel {
            ctx_id: ctx.id(),
            vec4,
            emb_ln: ln(&model.emb_ln),
            layers,
            bytes: (per_layer * c.layers + 8 * h) as u64,
        })
    }

    /// The context this model's buffers live on ([`GpuContext::id`]).
    pub fn context_id(&self) -> u64 {
        self.ctx_id
    }

    /// Bytes of weights on the device.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Record one dense layer `y = x Wᵀ + b` (+ GELU) over `m` rows.
    #[allow(clippy::too_many_arguments)]
    fn dense(
        &self,
        ctx: &GpuContext,
        pass: &mut wgpu::ComputePass,
        x: &wgpu::Buffer,
        lin: &DenseWeights,
        y: &wgpu::Buffer,
        m: usize,
        gelu: bool,
    ) -> Result<(), EncoderError> {
        let (n, k) = (lin.n, lin.k);
        let (shader, entry, k, tiles_n, g) = if self.vec4 {
            let tiles_n = n.div_ceil(LINEAR_V4_COLS);
            (
                &crate::shaders::ENCODER_LINEAR_V4,
                "linear_v4",
                k / 4,
                tiles_n,
                m.div_ceil(LINEAR_V4_ROWS) * tiles_n,
            )
        } else {
            let tiles_n = n.div_ceil(64);
            (
                &crate::shaders::ENCODER_LINEAR,
                "linear",
                k,
                tiles_n,
                m.div_ceil(64) * tiles_n,
            )
        };
        let g = groups("encoder linear workgroups", g)?;
        let dims = ctx.uniform(
            "encoder linear dims",
            &LinearDims {
                m: m as u32,
                n: n as u32,
                k: k as u32,
                tiles_n: tiles_n as u32,
            },
        );
        let pipeline = ctx
            .pipeline(&PipelineKey::new(shader, entry).with_constant("GELU", gelu as u32 as f64));
        let bind = ctx.bind_buffers(
            &pipeline,
            "encoder linear",
            &[&dims, x, &lin.w, &lin.bias, y],
        );
        dispatch(ctx, pass, &pipeline, &bind, g);
        Ok(())
    }

    /// Record `LayerNorm(x [+ residual])` over `rows` rows of `h`.
    #[allow(clippy::too_many_arguments)]
    fn layer_norm(
        ctx: &GpuContext,
        pass: &mut wgpu::ComputePass,
        x: &wgpu::Buffer,
        residual: Option<&wgpu::Buffer>,
        ln: &(wgpu::Buffer, wgpu::Buffer),
        y: &wgpu::Buffer,
        rows: usize,
        h: usize,
        eps: f32,
    ) -> Result<(), EncoderError> {
        let g = groups("encoder layernorm workgroups", rows)?;
        let params = ctx.uniform(
            "encoder layernorm params",
            &LnParams {
                rows: rows as u32,
                h: h as u32,
                has_residual: residual.is_some() as u32,
                eps,
            },
        );
        let pipeline = ctx.pipeline(&PipelineKey::new(
            &crate::shaders::ENCODER_LAYERNORM,
            "layernorm",
        ));
        let bind = ctx.bind_buffers(
            &pipeline,
            "encoder layernorm",
            &[&params, x, residual.unwrap_or(x), &ln.0, &ln.1, y],
        );
        dispatch(ctx, pass, &pipeline, &bind, g);
        Ok(())
    }

    /// The prefill attention kernel's pipeline and one bind group per sequence of the batch (its
    /// rows of q, k, v, out bound at an offset, its key padding mask).
    #[allow(clippy::too_many_arguments)]
    #[allow(clippy::type_complexity)]
    fn prefill_binds(
        ctx: &GpuContext,
        act: &Activations,
        l: usize,
        ls: usize,
        d: usize,
        heads: usize,
        row_bytes: usize,
        batch: usize,
    ) -> Result<Vec<(std::sync::Arc<wgpu::ComputePipeline>, wgpu::BindGroup, u32)>, EncoderError>
    {
        // Attention: the prefill kernel once per sequence, on its rows of q, k, v and out.
        let tiles = prefill_tiles(d);
        let q_blocks = l.div_ceil(tiles.bq as usize);
        let attn_groups = groups("attention workgroups", q_blocks * heads)?;
        let attn_pipeline = ctx.pipeline(
            &PipelineKey::new(&crate::shaders::ATTENTION_PREFILL, "prefill")
                .with_constant("D", d as f64)
                .with_constant("BQ", tiles.bq as f64)
                .with_constant("BK", tiles.bk as f64)
                .with_constant("TPQ", tiles.tpq as f64)
                .with_constant("WG", PREFILL_WG as f64),
        );
        let attn_params = ctx.uniform(
            "encoder attention params",
            &AttnParams {
                tq: l as u32,
                tk: l as u32,
                heads: heads as u32,
                kv_heads: heads as u32,
                group: 1,
                causal: 0,
                has_mask: 1,
                q_blocks: q_blocks as u32,
                scale: 1.0 / (d as f32).sqrt(),
                ..AttnParams::default()
            },
        );
        let seq_bytes = (ls * row_bytes) as u64;
        fn span(
            buffer: &wgpu::Buffer,
            b: usize,
            seq_bytes: u64,
            size: u64,
        ) -> wgpu::BindingResource<'_> {
            wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer,
                offset: b as u64 * seq_bytes,
                size: std::num::NonZeroU64::new(size),
            })
        }
        let span = |buffer, b| span(buffer, b, seq_bytes, (l * row_bytes) as u64);
        let mask_bytes = (l.div_ceil(32) * 4) as u64;
        Ok((0..batch)
            .map(|b| {
                let bind = ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("encoder attention"),
                    layout: &attn_pipeline.get_bind_group_layout(0),
                    entries: &[
                        wgpu::BindGroupEntry {
                            binding: 0,
                            resource: attn_params.as_entire_binding(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 1,
                            resource: span(&act.q, b),
                        },
                        wgpu::BindGroupEntry {
                            binding: 2,
                            resource: span(&act.k, b),
                        },
                        wgpu::BindGroupEntry {
                            binding: 3,
                            resource: span(&act.v, b),
                        },
                        wgpu::BindGroupEntry {
                            binding: 4,
                            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                                buffer: &act.mask,
                                offset: (b * MASK_STRIDE) as u64,
                                size: std::num::NonZeroU64::new(mask_bytes),
                            }),
                        },
                        wgpu::BindGroupEntry {
                            binding: 5,
                            resource: span(&act.cx, b),
                        },
                    ],
                });
                (attn_pipeline.clone(), bind, attn_groups)
            })
            .collect())
    }

    /// The sentence embeddings of a batch of id sequences: `[batch.len(), hidden]`, each row
    /// L2-normalised. The batch is padded to its longest sequence (rows past a sequence's end:
    /// `[PAD]` embeddings, masked out of attention and pooling); the whole forward pass is one
    /// command buffer, one submission and one readback.
    pub async fn embed_ids(
        &self,
        ctx: &GpuContext,
        model: &MiniLm,
        batch: &[Vec<u32>],
    ) -> Result<Vec<f32>, EncoderError> {
        model.check_ids(batch)?;
        if ctx.id() != self.ctx_id {
            return Err(KernelError::InvalidArgument {
                name: "ctx",
                reason: "the weights were uploaded to another GPU context".into(),
            }
            .into());
        }
        let c = model.config;
        let h = c.hidden;
        let d = h / c.heads;
        let Some(l) = batch.iter().map(Vec::len).max() else {
            return Ok(Vec::new());
        };
        // Each sequence takes `ls` rows, `ls ≥ l` such that its first row starts at a storage
        // offset the device accepts (for hidden 384: `ls = l`).
        let align = ctx.limits().min_storage_buffer_offset_alignment as usize;
        let row_bytes = h * 4;
        let unit = align / gcd(align, row_bytes);
        let ls = l.next_multiple_of(unit);
        let rows = batch.len() * ls;
        // Embeddings of the padded batch (a gather: on the host).
        let mut emb = vec![0.0f32; rows * h];
        for (b, ids) in batch.iter().enumerate() {
            for pos in 0..l {
                let id = ids.get(pos).copied().unwrap_or(0) as usize;
                let w = &model.word[id * h..(id + 1) * h];
                let p = &model.position[pos * h..(pos + 1) * h];
                let dst = &mut emb[(b * ls + pos) * h..(b * ls + pos + 1) * h];
                for i in 0..h {
                    dst[i] = w[i] + p[i] + model.token_type[i];
                }
            }
        }
        let mut masks = vec![0u32; batch.len() * MASK_STRIDE / 4];
        for (b, ids) in batch.iter().enumerate() {
            let m: Vec<u8> = (0..l).map(|i| (i < ids.len()) as u8).collect();
            let packed = pack_mask(Some(&m), l);
            masks[b * MASK_STRIDE / 4..][..packed.len()].copy_from_slice(&packed);
        }
        ctx.check_alive()?;
        ctx.check_binding("encoder ffn activations", (rows * c.ffn * 4) as u64)?;
        let scope = ctx.error_scope();
        let buf = |label: &'static str, width: usize| ctx.storage(label, (rows * width * 4) as u64);
        let act = Activations {
            emb: ctx.upload("encoder embeddings", &emb),
            x: buf("encoder hidden", h)?,
            q: buf("encoder q", h)?,
            k: buf("encoder k", h)?,
            v: buf("encoder v", h)?,
            cx: buf("encoder attention", h)?,
            a0: buf("encoder attention out", h)?,
            a: buf("encoder attention norm", h)?,
            up: buf("encoder ffn", c.ffn)?,
            down: buf("encoder ffn out", h)?,
            mask: ctx.upload("encoder mask", &masks),
        };
        // Attention: `attention_v4` over the whole batch in one dispatch on CPU-backed adapters
        // (head size 32), else the prefill kernel once per sequence on its rows of q, k, v, out.
        let attn: Vec<(std::sync::Arc<wgpu::ComputePipeline>, wgpu::BindGroup, u32)> =
            if self.vec4 && d == 32 {
                let q_blocks = l.div_ceil(ATTENTION_V4_QUERIES);
                let g = groups("attention workgroups", batch.len() * c.heads * q_blocks)?;
                let params = ctx.uniform(
                    "encoder attention params",
                    &AttnV4Params {
                        l: l as u32,
                        ls: ls as u32,
                        heads: c.heads as u32,
                        q_blocks: q_blocks as u32,
                        scale: 1.0 / (d as f32).sqrt(),
                        _pad: [0; 3],
                    },
                );
                let lens: Vec<u32> = batch.iter().map(|ids| ids.len() as u32).collect();
                let lens = ctx.upload("encoder lengths", &lens);
                let pipeline = ctx.pipeline(&PipelineKey::new(
                    &crate::shaders::ENCODER_ATTENTION,
                    "attention_v4",
                ));
                let bind = ctx.bind_buffers(
                    &pipeline,
                    "encoder attention",
                    &[&params, &act.q, &act.k, &act.v, &lens, &act.cx],
                );
                vec![(pipeline, bind, g)]
            } else {
                Self::prefill_binds(ctx, &act, l, ls, d, c.heads, row_bytes, batch.len())?
            };
        let mut encoder = ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("encoder forward"),
            });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("encoder forward"),
                timestamp_writes: None,
            });
            let p = &mut pass;
            Self::layer_norm(ctx, p, &act.emb, None, &self.emb_ln, &act.x, rows, h, c.eps)?;
            for lw in &self.layers {
                self.dense(ctx, p, &act.x, &lw.q, &act.q, rows, false)?;
                self.dense(ctx, p, &act.x, &lw.k, &act.k, rows, false)?;
                self.dense(ctx, p, &act.x, &lw.v, &act.v, rows, false)?;
                for (pipeline, bind, g) in &attn {
                    dispatch(ctx, p, pipeline, bind, *g);
                }
                self.dense(ctx, p, &act.cx, &lw.attn_out, &act.a0, rows, false)?;
                Self::layer_norm(
                    ctx,
                    p,
                    &act.a0,
                    Some(&act.x),
                    &lw.ln1,
                    &act.a,
                    rows,
                    h,
                    c.eps,
                )?;
                self.dense(ctx, p, &act.a, &lw.ffn_in, &act.up, rows, true)?;
                self.dense(ctx, p, &act.up, &lw.ffn_out, &act.down, rows, false)?;
                Self::layer_norm(
                    ctx,
                    p,
                    &act.down,
                    Some(&act.a),
                    &lw.ln2,
                    &act.x,
                    rows,
                    h,
                    c.eps,
                )?;
            }
        }
        let read = ctx
            .submit_and_read(encoder, &act.x, (rows * row_bytes) as u64)
            .await;
        scope.finish("encoder forward").await?;
        let x: Vec<f32> = bytemuck::pod_collect_to_vec(&read?);
        // Mean pooling over the mask: keep each sequence's own rows, then pool.
        let lens: Vec<usize> = batch.iter().map(Vec::len).collect();
        let mut kept = Vec::with_capacity(lens.iter().sum::<usize>() * h);
        for (b, &len) in lens.iter().enumerate() {
            kept.extend_from_slice(&x[b * ls * h..(b * ls + len) * h]);
        }
        Ok(mean_pool_normalize(&kept, &lens, h))
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The sentence embeddings of a batch of id sequences on the GPU: `[batch.len(), hidden]`, each
/// row L2-normalised. Uploads the weights for this one call ([`GpuModel`] keeps them resident;
/// [`TextEncoder::embed`](super::TextEncoder::embed) does).
pub async fn embed_ids_gpu(
    ctx: &GpuContext,
    model: &MiniLm,
    batch: &[Vec<u32>],
) -> Result<Vec<f32>, EncoderError> {
    model.check_ids(batch)?;
    GpuModel::upload(ctx, model)?
        .embed_ids(ctx, model, batch)
        .await
}
