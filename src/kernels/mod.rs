//! Compute kernels. Each kernel is one WGSL file in `shaders/`, its host code here, and a CPU
//! reference beside it that is both the test oracle and the fallback when no GPU exists.
//!
//! A kernel entry point takes a [`Compute`](crate::Compute), validates shapes first (typed
//! [`KernelError`], nothing launched), then runs on the GPU or the CPU.

pub mod attention;
pub mod cpu;
pub mod fetch;
pub mod hier;
pub mod recurrence;
pub mod scores;

use thiserror::Error;

use crate::gpu::GpuError;

/// Errors of the kernels: bad shapes or values (raised before any work starts) or a GPU failure.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum KernelError {
    /// A buffer's length does not fit the declared shape.
    #[error("{name}: expected {expected} values, got {got}")]
    Shape {
        /// The argument's name.
        name: &'static str,
        /// What the shape requires, e.g. `a multiple of dims = 384`.
        expected: String,
        /// The length received.
        got: usize,
    },
    /// A vector's dimension differs from the bank's.
    #[error("{name}: dimension mismatch, expected {expected}, got {got}")]
    DimensionMismatch {
        /// The argument's name.
        name: &'static str,
        /// The dimension required.
        expected: usize,
        /// The dimension received.
        got: usize,
    },
    /// An argument is out of its allowed range.
    #[error("{name}: {reason}")]
    InvalidArgument {
        /// The argument's name.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// NaN or infinity in an input.
    #[error("{name}: non-finite value at index {index}")]
    NonFinite {
        /// The argument's name.
        name: &'static str,
        /// Index of the first non-finite element.
        index: usize,
    },
    /// The GPU failed while running the kernel.
    #[error(transparent)]
    Gpu(#[from] GpuError),
}

impl KernelError {
    /// A stable, machine-readable code for this error (the JS `Error.code`).
    pub fn code(&self) -> &'static str {
        match self {
            KernelError::Shape { .. } => "SHAPE_MISMATCH",
            KernelError::DimensionMismatch { .. } => "DIMENSION_MISMATCH",
            KernelError::InvalidArgument { .. } => "INVALID_INPUT",
            KernelError::NonFinite { .. } => "NON_FINITE",
            KernelError::Gpu(e) => e.code(),
        }
    }
}

/// `Err(NonFinite)` at the first NaN/Inf of `values`.
pub fn check_finite(name: &'static str, values: &[f32]) -> Result<(), KernelError> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(KernelError::NonFinite { name, index }),
        None => Ok(()),
    }
}

/// The number of rows of a row-major `[rows, dims]` buffer, or a `Shape` error.
pub fn rows_of(name: &'static str, values: &[f32], dims: usize) -> Result<usize, KernelError> {
    if dims == 0 {
        return Err(KernelError::InvalidArgument {
            name: "dims",
            reason: "must be at least 1".into(),
        });
    }
    if !values.len().is_multiple_of(dims) {
        return Err(KernelError::Shape {
            name,
            expected: format!("a multiple of dims = {dims}"),
            got: values.len(),
        });
    }
    Ok(values.len() / dims)
}
