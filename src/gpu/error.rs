//! `GpuError`: every way the GPU runtime can fail, as one typed enum.
//!
//! Validation and out-of-memory errors are captured with WebGPU error scopes around each kernel
//! launch and come back here instead of panicking; a lost device is reported as
//! [`GpuError::DeviceLost`] by every later call instead of hanging.

use thiserror::Error;

/// Errors of the GPU runtime (`crate::gpu`).
#[derive(Debug, Clone, Error, PartialEq)]
pub enum GpuError {
    /// No WebGPU adapter is available (no `navigator.gpu`, or `requestAdapter` returned null,
    /// or no Vulkan driver natively).
    #[error("no GPU adapter available: {0}")]
    NoAdapter(String),
    /// The adapter refused the device request (limits or features it cannot offer).
    #[error("GPU device request failed: {0}")]
    RequestDevice(String),
    /// A WebGPU validation error captured by an error scope around `op`.
    #[error("GPU validation error in {op}: {message}")]
    Validation {
        /// The operation (kernel / pipeline) the scope wrapped.
        op: String,
        /// The driver's message.
        message: String,
    },
    /// The device ran out of memory during `op`.
    #[error("GPU out of memory in {op}: {message}")]
    OutOfMemory {
        /// The operation the scope wrapped.
        op: String,
        /// The driver's message.
        message: String,
    },
    /// An internal error from the implementation during `op`.
    #[error("GPU internal error in {op}: {message}")]
    Internal {
        /// The operation the scope wrapped.
        op: String,
        /// The driver's message.
        message: String,
    },
    /// The device was lost (driver reset, `destroy()`, tab backgrounded for too long...).
    /// Every call after the loss returns this error; create a new `Compute` to recover.
    #[error("GPU device lost: {0}")]
    DeviceLost(String),
    /// Mapping a buffer for readback failed.
    #[error("GPU buffer readback failed: {0}")]
    Readback(String),
    /// A request exceeds what the device allows (e.g. a buffer over `max_buffer_size`).
    #[error("GPU limit exceeded: {what} needs {needed}, the device allows {allowed}")]
    Limit {
        /// The limit's name.
        what: &'static str,
        /// What the request needed.
        needed: u64,
        /// What the device allows.
        allowed: u64,
    },
}

impl GpuError {
    /// A stable, machine-readable code for this error (the JS `Error.code`).
    pub fn code(&self) -> &'static str {
        match self {
            GpuError::NoAdapter(_) => "GPU_UNAVAILABLE",
            GpuError::RequestDevice(_) => "GPU_UNAVAILABLE",
            GpuError::Validation { .. } => "GPU_VALIDATION",
            GpuError::OutOfMemory { .. } => "GPU_OUT_OF_MEMORY",
            GpuError::Internal { .. } => "GPU_INTERNAL",
            GpuError::DeviceLost(_) => "GPU_DEVICE_LOST",
            GpuError::Readback(_) => "GPU_READBACK",
            GpuError::Limit { .. } => "GPU_LIMIT",
        }
    }

    pub(crate) fn from_wgpu(op: &str, err: wgpu::Error) -> GpuError {
        match err {
            wgpu::Error::OutOfMemory { source } => GpuError::OutOfMemory {
                op: op.to_string(),
                message: source.to_string(),
            },
            wgpu::Error::Validation { description, .. } => GpuError::Validation {
                op: op.to_string(),
                message: description,
            },
            wgpu::Error::Internal { description, .. } => GpuError::Internal {
                op: op.to_string(),
                message: description,
            },
        }
    }
}
