//! `Compute`: the choice between the GPU and the CPU reference path, made once and observable.
//!
//! Every kernel takes a `&Compute`. With a GPU it runs the WGSL kernel; without one (no adapter,
//! or the caller asked for the CPU) it runs the Rust CPU reference, which gives the same results.

use std::sync::Arc;

use crate::gpu::{AdapterSummary, GpuContext, GpuError};

/// Which implementation the caller would like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Prefer {
    /// Use the GPU when an adapter exists, otherwise fall back to the CPU.
    #[default]
    Gpu,
    /// Always use the CPU reference path.
    Cpu,
}

impl Prefer {
    /// Parse the JS spelling: `"webgpu"`/`"gpu"` or `"cpu"`.
    pub fn parse(s: &str) -> Option<Prefer> {
        match s {
            "webgpu" | "gpu" => Some(Prefer::Gpu),
            "cpu" => Some(Prefer::Cpu),
            _ => None,
        }
    }
}

/// Which implementation actually runs kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Backend {
    /// WGSL kernels through wgpu (WebGPU in the browser; Vulkan natively).
    #[serde(rename = "webgpu")]
    Gpu,
    /// The Rust CPU reference path.
    #[serde(rename = "cpu")]
    Cpu,
}

impl Backend {
    /// `"webgpu"` or `"cpu"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Gpu => "webgpu",
            Backend::Cpu => "cpu",
        }
    }
}

/// A compute backend: a live GPU device, or the CPU.
#[derive(Clone, Debug)]
pub struct Compute {
    gpu: Option<Arc<GpuContext>>,
    fallback_reason: Option<String>,
}

impl Compute {
    /// Use the GPU if `prefer` asks for it and an adapter exists; otherwise the CPU, remembering
    /// why (see [`Compute::fallback_reason`]).
    pub async fn new(prefer: Prefer) -> Compute {
        match prefer {
            Prefer::Cpu => Compute::cpu(),
            Prefer::Gpu => match GpuContext::acquire().await {
                Ok(ctx) => Compute::from_context(ctx),
                Err(e) => Compute {
                    gpu: None,
                    fallback_reason: Some(e.to_string()),
                },
            },
        }
    }

    /// The GPU or an error: for callers (and tests) that must not fall back silently.
    pub async fn gpu() -> Result<Compute, GpuError> {
        GpuContext::acquire().await.map(Compute::from_context)
    }

    /// The CPU reference path.
    pub fn cpu() -> Compute {
        Compute {
            gpu: None,
            fallback_reason: None,
        }
    }

    /// Wrap an existing device.
    pub fn from_context(ctx: GpuContext) -> Compute {
        Compute {
            gpu: Some(Arc::new(ctx)),
            fallback_reason: None,
        }
    }

    /// Which path kernels take.
    pub fn backend(&self) -> Backend {
        if self.gpu.is_some() {
            Backend::Gpu
        } else {
            Backend::Cpu
        }
    }

    /// The adapter, when running on a GPU.
    pub fn adapter_info(&self) -> Option<&AdapterSummary> {
        self.gpu.as_deref().map(GpuContext::adapter_info)
    }

    /// Why the GPU was not used although it was preferred (no adapter, device request failed).
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback_reason.as_deref()
    }

    /// The GPU device, when there is one.
    pub fn gpu_context(&self) -> Option<&GpuContext> {
        self.gpu.as_deref()
    }
}
