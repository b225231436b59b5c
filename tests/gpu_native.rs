//! Native GPU tests: the WGSL kernels on a real Vulkan adapter (Mesa lavapipe in CI) against
//! the CPU reference. A missing adapter is a failure, never a skip.
#![cfg(not(target_arch = "wasm32"))]

use std::sync::OnceLock;

use mnemo::kernels::scores::{scores, scores_cpu};
use mnemo::rng::Rng;
use mnemo::testing::assert_close;
use mnemo::{Backend, Compute, GpuError, KernelError, Prefer};

fn gpu() -> &'static Compute {
    static GPU: OnceLock<Compute> = OnceLock::new();
    GPU.get_or_init(|| {
        let c = pollster::block_on(mnemo::testing::require_gpu());
        eprintln!("GPU adapter: {:?}", c.adapter_info());
        c
    })
}

#[test]
fn adapter_is_a_real_vulkan_device() {
    let c = gpu();
    assert_eq!(c.backend(), Backend::Gpu);
    let info = c.adapter_info().expect("adapter info");
    assert_eq!(info.api, "vulkan", "{info:?}");
    assert!(!info.name.is_empty(), "{info:?}");
    if let Ok(expected) = std::env::var("MNEMO_EXPECT_ADAPTER") {
        if !expected.is_empty() {
            assert!(
                info.name.to_lowercase().contains(&expected.to_lowercase()),
                "expected adapter containing {expected:?}, got {info:?}"
            );
        }
    }
    println!(
        "adapter: {} ({}, {})",
        info.name, info.device_type, info.driver
    );
}

#[test]
fn scores_gpu_matches_cpu_on_seeded_shapes() {
    let c = gpu();
    let mut rng = Rng::new(0x5C0E5);
    let ns = [0usize, 1, 63, 64, 65, 127, 1000, 4097];
    let ds = [1usize, 3, 16, 33, 384, 385];
    let bs = [1usize, 2, 5, 64];
    for case in 0..40 {
        let (n, d, b) = (*rng.pick(&ns), *rng.pick(&ds), *rng.pick(&bs));
        let bank = rng.vec_f32(n * d);
        let queries = rng.vec_f32(b * d);
        let want = scores_cpu(&bank, d, &queries).unwrap();
        let got = pollster::block_on(scores(c, &bank, d, &queries)).unwrap();
        let what = format!("case {case}: n={n} d={d} b={b}");
        assert_close(&what, &got, &want, 1e-5, 1e-5 * d as f32);
    }
}

#[test]
fn scores_folds_dispatches_over_65535_workgroups() {
    let c = gpu();
    // 4.2M rows at 64 rows per workgroup is 65,625 workgroups: more than one dimension allows.
    let n = 4_200_000usize;
    let mut rng = Rng::new(11);
    let bank = rng.vec_f32(n);
    let queries = vec![0.5f32];
    let want = scores_cpu(&bank, 1, &queries).unwrap();
    let got = pollster::block_on(scores(c, &bank, 1, &queries)).unwrap();
    assert_close("folded dispatch", &got, &want, 1e-6, 1e-7);
}

#[test]
fn pipeline_cache_compiles_once() {
    let c = pollster::block_on(Compute::gpu()).unwrap();
    let ctx = c.gpu_context().unwrap();
    for _ in 0..3 {
        pollster::block_on(scores(&c, &[1.0, 2.0], 2, &[3.0, 4.0])).unwrap();
    }
    assert_eq!(ctx.pipeline_count(), 1);
}

#[test]
fn cpu_forced_gives_identical_results() {
    let c = pollster::block_on(Compute::new(Prefer::Cpu));
    assert_eq!(c.backend(), Backend::Cpu);
    assert!(c.adapter_info().is_none());
    let mut rng = Rng::new(3);
    let bank = rng.vec_f32(100 * 7);
    let q = rng.vec_f32(3 * 7);
    let got = pollster::block_on(scores(&c, &bank, 7, &q)).unwrap();
    assert_eq!(got, scores_cpu(&bank, 7, &q).unwrap());
}

#[test]
fn device_lost_is_reported_not_hung() {
    let c = pollster::block_on(Compute::gpu()).unwrap();
    c.gpu_context().unwrap().destroy();
    let r = pollster::block_on(scores(&c, &[1.0, 2.0], 2, &[3.0, 4.0]));
    match r {
        Err(KernelError::Gpu(GpuError::DeviceLost(_))) => {}
        other => panic!("expected DeviceLost, got {other:?}"),
    }
}

#[test]
fn bad_shapes_are_typed_errors_on_the_gpu_path() {
    let c = gpu();
    let r = pollster::block_on(scores(c, &[1.0, 2.0, 3.0], 2, &[1.0, 2.0]));
    assert_eq!(r.unwrap_err().code(), "SHAPE_MISMATCH");
    let r = pollster::block_on(scores(c, &[1.0, 2.0], 2, &[]));
    assert_eq!(r.unwrap_err().code(), "INVALID_INPUT");
}

#[test]
fn validation_errors_become_typed_gpu_errors() {
    let c = pollster::block_on(Compute::gpu()).unwrap();
    let ctx = c.gpu_context().unwrap();
    let scope = ctx.error_scope();
    // A storage buffer whose size is not a multiple of 4 and that is mapped at creation is
    // invalid in WebGPU.
    let _bad = ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("invalid on purpose"),
        size: 6,
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: true,
    });
    let r = pollster::block_on(scope.finish("test-op"));
    match r {
        Err(GpuError::Validation { op, message }) => {
            assert_eq!(op, "test-op");
            assert!(!message.is_empty());
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
    // The device stays usable afterwards.
    let got = pollster::block_on(scores(&c, &[1.0, 2.0], 2, &[3.0, 4.0])).unwrap();
    assert_eq!(got, vec![11.0]);
    assert!(ctx.take_uncaptured_errors().is_empty());
}
