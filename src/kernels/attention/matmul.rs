//! Tiled matmul `C[M, N] = A[M, K] B[K, N]` over `shaders/matmul.wgsl`: the measured
//! arithmetic peak that the attention benchmarks report their GFLOP/s against (same adapter,
//! same run). Row-major f32; any sizes.

use super::gpu::{dispatch, groups_u32, read_f32};
use crate::compute::Compute;
use crate::gpu::{GpuContext, PipelineKey};
use crate::kernels::{check_finite, KernelError};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Dims {
    m: u32,
    n: u32,
    k: u32,
    tiles_n: u32,
}

fn check(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Result<(), KernelError> {
    if m == 0 || k == 0 || n == 0 {
        return Err(KernelError::InvalidArgument {
            name: "m, k, n",
            reason: format!("must all be at least 1, got {m}, {k}, {n}"),
        });
    }
    if a.len() != m * k {
        return Err(KernelError::Shape {
            name: "a",
            expected: format!("m * k = {}", m * k),
            got: a.len(),
        });
    }
    if b.len() != k * n {
        return Err(KernelError::Shape {
            name: "b",
            expected: format!("k * n = {}", k * n),
            got: b.len(),
        });
    }
    check_finite("a", a)?;
    check_finite("b", b)
}

/// CPU reference, `[M, N]`.
pub fn matmul_cpu(
    a: &[f32],
    b: &[f32],
    m: usize,
    k: usize,
    n: usize,
) -> Result<Vec<f32>, KernelError> {
    check(a, b, m, k, n)?;
    let mut c = vec![0.0f32; m * n];
    for i in 0..m {
        let row = &mut c[i * n..(i + 1) * n];
        for kk in 0..k {
            let x = a[i * k + kk];
            for (o, &y) in row.iter_mut().zip(&b[kk * n..(kk + 1) * n]) {
                *o += x * y;
            }
        }
    }
    Ok(c)
}

/// Matmul on whichever backend `compute` chose.
pub async fn matmul(
    compute: &Compute,
    a: &[f32],
    b: &[f32],
    m: usize,
    k: usize,
    n: usize,
) -> Result<Vec<f32>, KernelError> {
    match compute.gpu_context() {
        Some(ctx) => matmul_gpu(ctx, a, b, m, k, n, 1).await,
        None => matmul_cpu(a, b, m, k, n),
    }
}

/// GPU matmul, dispatched `repeat` times in one submission (benchmarks; same output).
pub async fn matmul_gpu(
    ctx: &GpuContext,
    a: &[f32],
    b: &[f32],
    m: usize,
    k: usize,
    n: usize,
    repeat: u32,
) -> Result<Vec<f32>, KernelError> {
    check(a, b, m, k, n)?;
    ctx.check_alive()?;
    ctx.check_binding("matmul a", (a.len() * 4) as u64)?;
    ctx.check_binding("matmul b", (b.len() * 4) as u64)?;
    ctx.check_binding("matmul c", (m * n * 4) as u64)?;
    let tiles_n = n.div_ceil(64);
    let groups = groups_u32("matmul workgroups", m.div_ceil(64) * tiles_n)?;
    let scope = ctx.error_scope();
    let pipeline = ctx.pipeline(&PipelineKey::new(&crate::shaders::MATMUL, "matmul"));
    let dims = ctx.uniform(
        "matmul dims",
        &Dims {
            m: m as u32,
            n: n as u32,
            k: k as u32,
            tiles_n: tiles_n as u32,
        },
    );
    let ab = ctx.upload("matmul a", a);
    let bb = ctx.upload("matmul b", b);
    let c = ctx.storage("matmul c", (m * n * 4) as u64)?;
    let bg = ctx.bind_group(
        &pipeline,
        "matmul",
        &[(0, &dims), (1, &ab), (2, &bb), (3, &c)],
    );
    let mut encoder = ctx
        .device()
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("matmul"),
        });
    {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("matmul"),
            timestamp_writes: None,
        });
        for _ in 0..repeat.max(1) {
            dispatch(ctx, &mut pass, &pipeline, &bg, groups);
        }
    }
    let read = read_f32(ctx, encoder, &c, m * n).await;
    scope.finish("matmul").await?;
    Ok(read?)
}
