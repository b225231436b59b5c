//! Linear recurrence kernels (linear attention, decayed, GLA, delta rule, gated delta rule) in
//! recurrent and chunked forms.
//!
//! Per head, a state `S` (`dk × dv`) folds a stream of tokens. For token `t` with query `q_t`,
//! key `k_t` (length `dk`), value `v_t` (length `dv`), decay `a_t` and write strength `β_t`:
//!
//! ```text
//! S'  = diag(a_t) · S_{t-1}                         (a_t scalar, or a vector over dk)
//! S_t = S' + β_t · k_t · (v_t − S'ᵀ k_t)ᵀ            (delta variants: `beta` given)
//! S_t = S' + k_t · v_tᵀ                              (otherwise)
//! o_t = scale · S_tᵀ q_t
//! ```
//!
//! No decay and no beta is plain linear attention; a scalar decay per head and step is
//! RetNet / Mamba-2; a vector decay over `dk` is GLA; beta alone is DeltaNet; beta with a decay
//! is the gated delta rule.
//!
//! Two forms compute the same thing:
//! - [`Form::Recurrent`] processes tokens in order (decode, streaming). [`RecurrentState`] keeps
//!   the state between calls (on the host or on the GPU) for token-by-token use.
//! - [`Form::Chunked`] (prefill) splits the sequence into chunks of [`CHUNK`] tokens computed in
//!   parallel inside the chunk, with the state carried between chunks. Decays enter as
//!   cumulative log-decays relative to the chunk start, so every factor is `exp(b_i − b_j) ≤ 1`
//!   (no division by small cumulative products). The delta variants use the WY/UT form: the
//!   pseudo-values `U = (I + tril(diag(β) A, −1))⁻¹ diag(β) (V − (K ⊙ Γ) S₀)` by forward
//!   substitution, with `A_ij = Σ_d k_id k_jd exp(b_id − b_jd)`.
//!
//! Layouts (row-major, token-major): `q`, `k` `[T, heads, dk]`; `v` and outputs
//! `[T, heads, dv]`; scalar decay and `beta` `[T, heads]`; vector decay `[T, heads, dk]`;
//! state `[heads, dk, dv]`.

mod cpu;
mod gpu;
mod stream;
#[doc(hidden)]
pub mod synth;

pub use cpu::{chunked_cpu, recurrent_cpu, recurrent_cpu_into};
pub use gpu::{linear_recurrence_gpu, linear_recurrence_gpu_segmented};
pub use stream::RecurrentState;

use super::{check_finite, KernelError};
use crate::compute::Compute;

/// Tokens per chunk of the chunked form (CPU and GPU). The chunk's `C × C` matrices and its
/// staging tiles fit WebGPU's default 16 KiB of workgroup memory.
pub const CHUNK: usize = 32;

/// Largest `dk` the GPU recurrent form accepts (16 state rows per invocation, 64 row groups).
pub const GPU_MAX_DK_RECURRENT: usize = 1024;

/// Largest `dk` the GPU chunked form accepts (the state tile `dk × 8` lives in workgroup memory).
pub const GPU_MAX_DK_CHUNKED: usize = 256;

/// Which form computes the recurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Form {
    /// Token by token (decode, streaming).
    #[default]
    Recurrent,
    /// Chunks of [`CHUNK`] tokens in parallel, state carried between chunks (prefill).
    Chunked,
}

impl Form {
    /// Parse the JS spelling `'recurrent'` / `'chunked'`.
    pub fn parse(s: &str) -> Option<Form> {
        match s {
            "recurrent" => Some(Form::Recurrent),
            "chunked" => Some(Form::Chunked),
            _ => None,
        }
    }
}

/// The decay gate of one call.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Decay<'a> {
    /// No decay (`a = 1`).
    #[default]
    None,
    /// One multiplicative decay per token and head, `[T, heads]`, each in `(0, 1]`.
    Scalar(&'a [f32]),
    /// One decay per token, head and key dimension, `[T, heads, dk]`, each in `(0, 1]`.
    Vector(&'a [f32]),
}

/// The kind of decay, without data (part of a validated shape and of a streaming state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DecayKind {
    /// No decay.
    #[default]
    None,
    /// Scalar per head and step.
    Scalar,
    /// Vector over `dk`.
    Vector,
}

impl Decay<'_> {
    /// The kind of this decay.
    pub fn kind(&self) -> DecayKind {
        match self {
            Decay::None => DecayKind::None,
            Decay::Scalar(_) => DecayKind::Scalar,
            Decay::Vector(_) => DecayKind::Vector,
        }
    }

    pub(crate) fn data(&self) -> &[f32] {
        match self {
            Decay::None => &[],
            Decay::Scalar(d) | Decay::Vector(d) => d,
        }
    }
}

/// The inputs of one linear-recurrence call.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecurrenceInput<'a> {
    /// Queries `[T, heads, dk]`.
    pub q: &'a [f32],
    /// Keys `[T, heads, dk]`.
    pub k: &'a [f32],
    /// Values `[T, heads, dv]`.
    pub v: &'a [f32],
    /// Decay gate.
    pub decay: Decay<'a>,
    /// Delta-rule write strengths `[T, heads]` (selects the delta variants).
    pub beta: Option<&'a [f32]>,
    /// Heads.
    pub heads: usize,
    /// Key dimension (state rows).
    pub dk: usize,
    /// Value dimension (state columns).
    pub dv: usize,
    /// Output scale; `None` is `1/√dk`.
    pub scale: Option<f32>,
    /// Initial state `[heads, dk, dv]`; `None` is zeros.
    pub state: Option<&'a [f32]>,
}

/// The result of one call: outputs `[T, heads, dv]` and the final state `[heads, dk, dv]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RecurrenceOutput {
    /// Outputs `[T, heads, dv]`.
    pub out: Vec<f32>,
    /// State after the last token, `[heads, dk, dv]`.
    pub state: Vec<f32>,
}

/// The static configuration of a recurrence: dimensions, variant and scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecurrenceConfig {
    /// Heads.
    pub heads: usize,
    /// Key dimension.
    pub dk: usize,
    /// Value dimension.
    pub dv: usize,
    /// Decay kind.
    pub decay: DecayKind,
    /// Delta rule (`beta` given).
    pub delta: bool,
    /// Output scale.
    pub scale: f32,
}

impl RecurrenceConfig {
    /// A configuration with the default scale `1/√dk`.
    pub fn new(heads: usize, dk: usize, dv: usize, decay: DecayKind, delta: bool) -> Self {
        RecurrenceConfig {
            heads,
            dk,
            dv,
            decay,
            delta,
            scale: 1.0 / (dk.max(1) as f32).sqrt(),
        }
    }

    /// Values in one state, `heads · dk · dv`.
    pub fn state_len(&self) -> usize {
        self.heads * self.dk * self.dv
    }

    fn check_dims(&self) -> Result<(), KernelError> {
        for (name, v) in [("heads", self.heads), ("dk", self.dk), ("dv", self.dv)] {
            if v == 0 {
                return Err(KernelError::InvalidArgument {
                    name,
                    reason: "must be at least 1".into(),
                });
            }
        }
        // Bound the sizes so that no length computation overflows (usize is 32-bit on wasm32).
        let state = self
            .heads
            .checked_mul(self.dk)
            .and_then(|x| x.checked_mul(self.dv));
        if state.is_none_or(|n| n > 1 << 28) {
            return Err(KernelError::InvalidArgument {
                name: "dv",
                reason: format!(
                    "heads · dk · dv = {} · {} · {} exceeds 2^28 state values",
                    self.heads, self.dk, self.dv
                ),
            });
        }
        if !self.scale.is_finite() {
            return Err(KernelError::InvalidArgument {
                name: "scale",
                reason: format!(
                    "must be finite, got {}",
                    crate::num_fmt::Num(self.scale.into())
                ),
            });
        }
        Ok(())
    }
}

/// A validated call: the configuration and the number of tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecurrenceShape {
    /// Tokens.
    pub t: usize,
    /// Dimensions, variant, scale.
    pub cfg: RecurrenceConfig,
}

/// Check `values` has exactly `want` elements.
fn expect_len(
    name: &'static str,
    values: &[f32],
    want: usize,
    what: &str,
) -> Result<(), KernelError> {
    if values.len() != want {
        return Err(KernelError::Shape {
            name,
            expected: format!("{want} values ({what})"),
            got: values.len(),
        });
    }
    Ok(())
}

/// Check decays are finite and in `(0, 1]`.
fn check_decay(values: &[f32]) -> Result<(), KernelError> {
    check_finite("decay", values)?;
    if let Some(i) = values.iter().position(|&a| !(a > 0.0 && a <= 1.0)) {
        return Err(KernelError::InvalidArgument {
            name: "decay",
            reason: format!(
                "value {} at index {i} is outside (0, 1] (decays are multiplicative)",
                crate::num_fmt::Num(values[i].into())
            ),
        });
    }
    Ok(())
}

/// Check the shapes and values of per-token inputs for `cfg` and return the token count.
fn check_tokens(
    cfg: &RecurrenceConfig,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    decay: Decay<'_>,
    beta: Option<&[f32]>,
) -> Result<usize, KernelError> {
    cfg.check_dims()?;
    let (h, dk, dv) = (cfg.heads, cfg.dk, cfg.dv);
    if !q.len().is_multiple_of(h * dk) {
        return Err(KernelError::Shape {
            name: "q",
            expected: format!("a multiple of heads · dk = {}", h * dk),
            got: q.len(),
        });
    }
    let t = q.len() / (h * dk);
    expect_len("k", k, t * h * dk, &format!("[T={t}, heads={h}, dk={dk}]"))?;
    let v_len = t.checked_mul(h * dv).ok_or_else(|| KernelError::Shape {
        name: "v",
        expected: format!("[T={t}, heads={h}, dv={dv}] (too large)"),
        got: v.len(),
    })?;
    expect_len("v", v, v_len, &format!("[T={t}, heads={h}, dv={dv}]"))?;
    match decay {
        Decay::None => {}
        Decay::Scalar(d) => expect_len("decay", d, t * h, &format!("[T={t}, heads={h}]"))?,
        Decay::Vector(d) => expect_len(
            "decay",
            d,
            t * h * dk,
            &format!("[T={t}, heads={h}, dk={dk}]"),
        )?,
    }
    if decay.kind() != cfg.decay {
        return Err(KernelError::InvalidArgument {
            name: "decay",
            reason: format!("expected {:?} decay, got {:?}", cfg.decay, decay.kind()),
        });
    }
    match beta {
        Some(b) => expect_len("beta", b, t * h, &format!("[T={t}, heads={h}]"))?,
        None if cfg.delta => {
            return Err(KernelError::InvalidArgument {
                name: "beta",
                reason: "the delta rule needs beta".into(),
            })
        }
        None => {}
    }
    if beta.is_some() && !cfg.delta {
        return Err(KernelError::InvalidArgument {
            name: "beta",
            reason: "beta given to a configuration without the delta rule".into(),
        });
    }
    check_finite("q", q)?;
    check_finite("k", k)?;
    check_finite("v", v)?;
    if let Some(b) = beta {
        check_finite("beta", b)?;
    }
    check_decay(decay.data())?;
    Ok(t)
}

/// Check every argument of a call (shapes, finiteness, decay range) before any work.
pub fn check(input: &RecurrenceInput<'_>) -> Result<RecurrenceShape, KernelError> {
    let scale = input
        .scale
        .unwrap_or_else(|| 1.0 / (input.dk.max(1) as f32).sqrt());
    let cfg = RecurrenceConfig {
        heads: input.heads,
        dk: input.dk,
        dv: input.dv,
        decay: input.decay.kind(),
        delta: input.beta.is_some(),
        scale,
    };
    let t = check_tokens(&cfg, input.q, input.k, input.v, input.decay, input.beta)?;
    if let Some(s) = input.state {
        expect_len(
            "state",
            s,
            cfg.state_len(),
            &format!("[heads={}, dk={}, dv={}]", cfg.heads, cfg.dk, cfg.dv),
        )?;
        check_finite("state", s)?;
    }
    Ok(RecurrenceShape { t, cfg })
}

/// The CPU path: the recurrent reference for [`Form::Recurrent`], the chunked algorithm (the
/// same decomposition as the GPU kernels) for [`Form::Chunked`].
pub fn linear_recurrence_cpu(
    input: &RecurrenceInput<'_>,
    form: Form,
) -> Result<RecurrenceOutput, KernelError> {
    match form {
        Form::Recurrent => recurrent_cpu(input),
        Form::Chunked => chunked_cpu(input),
    }
}

/// Run the recurrence in `form` on whichever backend `compute` chose.
pub async fn linear_recurrence(
    compute: &Compute,
    input: &RecurrenceInput<'_>,
    form: Form,
) -> Result<RecurrenceOutput, KernelError> {
    match compute.gpu_context() {
        Some(ctx) => linear_recurrence_gpu(ctx, input, form).await,
        None => linear_recurrence_cpu(input, form),
    }
}

/// The error norm of the recurrence tests: for each head, `max |got − want| / max |want|` over
/// the head's rows of a `[rows, heads, width]` buffer (outputs: rows = T, width = dv; states:
/// rows = 1, width = dk·dv). Returns the worst head's value and that head. A head whose
/// reference is all zeros is compared absolutely.
pub fn max_rel_err_per_head(got: &[f32], want: &[f32], heads: usize, width: usize) -> (f32, usize) {
    let mut worst = (0.0f32, 0usize);
    if got.len() != want.len() {
        return (f32::INFINITY, 0);
    }
    let rows = want.len() / (heads * width).max(1);
    for h in 0..heads {
        let (mut diff, mut mag) = (0.0f32, 0.0f32);
        for r in 0..rows {
            let b = (r * heads + h) * width;
            for (g, w) in got[b..b + width].iter().zip(&want[b..b + width]) {
                let d = (g - w).abs();
                // NaN-safe: a NaN difference counts as infinite.
                diff = if d.is_nan() {
                    f32::INFINITY
                } else {
                    diff.max(d)
                };
                mag = mag.max(w.abs());
            }
        }
        let e = if mag > 0.0 { diff / mag } else { diff };
        if e > worst.0 || e.is_nan() {
            worst = (e, h);
        }
    }
    worst
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(q: &'a [f32], k: &'a [f32], v: &'a [f32]) -> RecurrenceInput<'a> {
        RecurrenceInput {
            q,
            k,
            v,
            heads: 1,
            dk: 2,
            dv: 1,
            ..Default::default()
        }
    }

    #[test]
    fn shape_errors_are_typed() {
        let q = [1.0, 0.0, 0.0, 1.0];
        let v = [1.0, 2.0];
        assert!(check(&input(&q, &q, &v)).is_ok());
        let e = check(&input(&q[..3], &q, &v)).unwrap_err();
        assert_eq!(e.code(), "SHAPE_MISMATCH");
        let e = check(&input(&q, &q[..2], &v)).unwrap_err();
        assert!(matches!(e, KernelError::Shape { name: "k", .. }), "{e}");
        let e = check(&input(&q, &q, &v[..1])).unwrap_err();
        assert!(matches!(e, KernelError::Shape { name: "v", .. }), "{e}");
        let mut i = input(&q, &q, &v);
        i.decay = Decay::Scalar(&[0.5]);
        assert!(matches!(
            check(&i),
            Err(KernelError::Shape { name: "decay", .. })
        ));
        i.decay = Decay::Scalar(&[0.5, 1.5]);
        let e = check(&i).unwrap_err();
        assert_eq!(e.code(), "INVALID_INPUT");
        assert!(e.to_string().contains("(0, 1]"), "{e}");
        i.decay = Decay::Scalar(&[0.0, 1.0]);
        assert_eq!(check(&i).unwrap_err().code(), "INVALID_INPUT");
        i.decay = Decay::Scalar(&[f32::NAN, 1.0]);
        assert_eq!(check(&i).unwrap_err().code(), "NON_FINITE");
        i.decay = Decay::None;
        i.beta = Some(&[0.5]);
        assert!(matches!(
            check(&i),
            Err(KernelError::Shape { name: "beta", .. })
        ));
        i.beta = None;
        i.state = Some(&[0.0]);
        assert!(matches!(
            check(&i),
            Err(KernelError::Shape { name: "state", .. })
        ));
        i.state = None;
        i.heads = 0;
        assert_eq!(check(&i).unwrap_err().code(), "INVALID_INPUT");
        let mut huge = input(&q, &q, &v);
        (huge.heads, huge.dk, huge.dv) = (1 << 20, 1 << 20, 1 << 20);
        assert_eq!(check(&huge).unwrap_err().code(), "INVALID_INPUT");
        let bad = [1.0, f32::INFINITY, 0.0, 1.0];
        let e = check(&input(&q, &bad, &v)).unwrap_err();
        assert_eq!(
            e,
            KernelError::NonFinite {
                name: "k",
                index: 1
            }
        );
    }
}
