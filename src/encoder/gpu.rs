//! The text encoder's GPU path: host code of its WGSL kernels over [`GpuContext`], and the
//! whole-model forward pass on them.
//!
//! - [`linear_gpu`]: `shaders/encoder_linear.wgsl`, `y = x Wᵀ + b` (optionally GELU), 64 × 64
//!   tiles staged in workgroup memory; [`linear_t_gpu`]: the same from `Wᵀ` without workgroup
//!   memory;
//! - [`layer_norm_gpu`]: `shaders/encoder_layernorm.wgsl`, `LayerNorm(x [+ residual])`;
//! - attention: the prefill kernel of [`crate::kernels::attention`], one call per sequence of the
//!   padded batch with its key padding mask.
//!
//! [`embed_ids_gpu`] runs a batch padded to its longest sequence (pad id `[PAD]` = 0, mask 0),
//! attention and mean pooling restricted by the mask. This first version makes one round trip per
//! kernel call (activations go back to the host between kernels): correct, not yet fast.

use super::model::{mean_pool_normalize, Linear, MiniLm};
use super::EncoderError;
use crate::gpu::{fold_workgroups, GpuContext, GpuError, PipelineKey};
use crate::kernels::attention::{attention_gpu, AttentionArgs};
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

/// The same dense layer with `wt` = `wᵀ` (`[k, n]`, `n` a multiple of 4), on the
/// workgroup-memory-free entry point `linear_t` (faster on CPU-backed adapters).
#[allow(clippy::too_many_arguments)]
pub async fn linear_t_gpu(
    ctx: &GpuContext,
    x: &[f32],
    wt: &[f32],
    bias: &[f32],
    m: usize,
    n: usize,
    k: usize,
    gelu: bool,
) -> Result<Vec<f32>, EncoderError> {
    if m == 0 || n == 0 || k == 0 || !n.is_multiple_of(4) {
        return Err(KernelError::InvalidArgument {
            name: "m, n, k",
            reason: format!("must all be at least 1 and n a multiple of 4, got {m}, {n}, {k}"),
        }
        .into());
    }
    if x.len() != m * k {
        return Err(shape("x", format!("m * k = {}", m * k), x.len()));
    }
    if wt.len() != n * k {
        return Err(shape("wt", format!("k * n = {}", n * k), wt.len()));
    }
    if bias.len() != n {
        return Err(shape("bias", format!("n = {n}"), bias.len()));
    }
    check_finite("x", x)?;
    ctx.check_alive()?;
    ctx.check_binding("encoder linear x", (x.len() * 4) as u64)?;
    ctx.check_binding("encoder linear w", (wt.len() * 4) as u64)?;
    ctx.check_binding("encoder linear y", (m * n * 4) as u64)?;
    let groups_n = (n / 4).div_ceil(64);
    let g = groups("encoder linear workgroups", m.div_ceil(4) * groups_n)?;
    let scope = ctx.error_scope();
    let dims = ctx.uniform(
        "encoder linear dims",
        &LinearDims {
            m: m as u32,
            n: n as u32,
            k: k as u32,
            tiles_n: groups_n as u32,
        },
    );
    let xb = ctx.upload("encoder linear x", x);
    let wb = ctx.upload("encoder linear w", wt);
    let bb = ctx.upload("encoder linear bias", bias);
    let y = ctx.storage("encoder linear y", (m * n * 4) as u64)?;
    let key = PipelineKey::new(&crate::shaders::ENCODER_LINEAR, "linear_t")
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

/// One dense layer of the model on the GPU (`linear_t` from the transposed weights when
/// `transposed`).
async fn dense(
    ctx: &GpuContext,
    x: &[f32],
    lin: &Linear,
    rows: usize,
    transposed: bool,
    gelu: bool,
) -> Result<Vec<f32>, EncoderError> {
    if transposed {
        let wt = lin.transposed();
        linear_t_gpu(ctx, x, &wt, &lin.bias, rows, lin.n, lin.k, gelu).await
    } else {
        linear_gpu(ctx, x, &lin.weight, &lin.bias, rows, lin.n, lin.k, gelu).await
    }
}

/// The sentence embeddings of a batch of id sequences on the GPU: `[batch.len(), hidden]`, each
/// row L2-normalised. The batch is padded to its longest sequence with `[PAD]` (id 0) and a key
/// padding mask.
pub async fn embed_ids_gpu(
    ctx: &GpuContext,
    model: &MiniLm,
    batch: &[Vec<u32>],
) -> Result<Vec<f32>, EncoderError> {
    model.check_ids(batch)?;
    let c = model.config;
    let h = c.hidden;
    let d = h / c.heads;
    let Some(l) = batch.iter().map(Vec::len).max() else {
        return Ok(Vec::new());
    };
    let rows = batch.len() * l;
    // Embeddings of the padded batch (a gather: on the host).
    let mut x = Vec::with_capacity(rows * h);
    for ids in batch {
        for pos in 0..l {
            let id = ids.get(pos).copied().unwrap_or(0) as usize;
            let w = &model.word[id * h..(id + 1) * h];
            let p = &model.position[pos * h..(pos + 1) * h];
            x.extend((0..h).map(|i| w[i] + p[i] + model.token_type[i]));
        }
    }
    let mut x = layer_norm_gpu(ctx, &x, None, &model.emb_ln.0, &model.emb_ln.1, c.eps).await?;
    // Dense layers: transposed weights for `linear_t` on CPU-backed adapters.
    let transposed = ctx.adapter_info().device_type == "cpu";
    let masks: Vec<Vec<u8>> = batch
        .iter()
        .map(|ids| (0..l).map(|i| (i < ids.len()) as u8).collect())
        .collect();
    for layer in &model.layers {
        let qkv = dense(ctx, &x, &layer.qkv, rows, transposed, false).await?;
        // Split [rows, 3h] into q, k, v, each [rows, heads, d].
        let mut parts = [
            vec![0.0f32; rows * h],
            vec![0.0; rows * h],
            vec![0.0; rows * h],
        ];
        for (r, src) in qkv.chunks_exact(3 * h).enumerate() {
            for (p, part) in parts.iter_mut().enumerate() {
                part[r * h..(r + 1) * h].copy_from_slice(&src[p * h..(p + 1) * h]);
            }
        }
        let mut ctxv = Vec::with_capacity(rows * h);
        for (b, mask) in masks.iter().enumerate() {
            let span = b * l * h..(b + 1) * l * h;
            let args = AttentionArgs {
                q: &parts[0][span.clone()],
                k: &parts[1][span.clone()],
                v: &parts[2][span],
                heads: c.heads,
                kv_heads: c.heads,
                head_dim: d,
                causal: false,
                mask: Some(mask),
            };
            ctxv.extend(attention_gpu(ctx, &args).await?);
        }
        let a = dense(ctx, &ctxv, &layer.attn_out, rows, transposed, false).await?;
        let a = layer_norm_gpu(ctx, &a, Some(&x), &layer.ln1.0, &layer.ln1.1, c.eps).await?;
        let up = dense(ctx, &a, &layer.ffn_in, rows, transposed, true).await?;
        let down = dense(ctx, &up, &layer.ffn_out, rows, transposed, false).await?;
        x = layer_norm_gpu(ctx, &down, Some(&a), &layer.ln2.0, &layer.ln2.1, c.eps).await?;
    }
    // Mean pooling over the mask: keep each sequence's own rows, then pool.
    let lens: Vec<usize> = batch.iter().map(Vec::len).collect();
    let mut kept = Vec::with_capacity(lens.iter().sum::<usize>() * h);
    for (b, &len) in lens.iter().enumerate() {
        kept.extend_from_slice(&x[b * l * h..(b * l + len) * h]);
    }
    Ok(mean_pool_normalize(&kept, &lens, h))
}
