//! [`RecurrentState`]: a recurrence state kept between calls, for streaming and decode (a
//! conversation fed turn by turn, or the memory engine's "fading context" updated with each
//! remembered embedding).
//!
//! On the CPU the state is a `Vec<f32>` updated in place ([`RecurrentState::step_into`]
//! allocates nothing but a `2·dv` scratch). On the GPU the state stays in a device buffer: a
//! step uploads only the new tokens, runs the recurrent kernel and reads back only the outputs;
//! the state is read back on demand with [`RecurrentState::state`].

use super::gpu::{check_gpu_limits, encode_recurrent, Inputs};
use super::{recurrent_cpu_into, Decay, Form, RecurrenceConfig};
use crate::compute::{Backend, Compute};
use crate::kernels::{check_finite, KernelError};

/// A recurrence state `[heads, dk, dv]` with its configuration, on the host or the GPU.
pub struct RecurrentState {
    cfg: RecurrenceConfig,
    compute: Compute,
    host: Vec<f32>,
    device: Option<wgpu::Buffer>,
}

impl std::fmt::Debug for RecurrentState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecurrentState")
            .field("cfg", &self.cfg)
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

impl RecurrentState {
    /// A zero state for `cfg` on `compute`'s backend.
    pub fn new(compute: &Compute, cfg: RecurrenceConfig) -> Result<Self, KernelError> {
        Self::with_state(compute, cfg, &vec![0.0; cfg.state_len()])
    }

    /// A state starting from `state` (`[heads, dk, dv]`).
    pub fn with_state(
        compute: &Compute,
        cfg: RecurrenceConfig,
        state: &[f32],
    ) -> Result<Self, KernelError> {
        // Validates the dimensions and scale (no tokens).
        super::check_tokens(&cfg, &[], &[], &[], empty_decay(cfg), empty_beta(cfg))?;
        if state.len() != cfg.state_len() {
            return Err(KernelError::Shape {
                name: "state",
                expected: format!("{} values [heads, dk, dv]", cfg.state_len()),
                got: state.len(),
            });
        }
        check_finite("state", state)?;
        let device = match compute.gpu_context() {
            Some(ctx) => {
                check_gpu_limits(ctx, &cfg, Form::Recurrent)?;
                ctx.check_binding("recurrence state", (state.len() * 4) as u64)?;
                Some(ctx.upload("recurrence state", state))
            }
            None => None,
        };
        Ok(RecurrentState {
            cfg,
            compute: compute.clone(),
            host: if device.is_some() {
                Vec::new()
            } else {
                state.to_vec()
            },
            device,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RecurrenceConfig {
        &self.cfg
    }

    /// Where the state lives and the steps run.
    pub fn backend(&self) -> Backend {
        if self.device.is_some() {
            Backend::Gpu
        } else {
            Backend::Cpu
        }
    }

    /// Fold `T ≥ 0` tokens into the state (layouts as in [`super::RecurrenceInput`]) and return
    /// their outputs `[T, heads, dv]`.
    pub async fn step(
        &mut self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        decay: Decay<'_>,
        beta: Option<&[f32]>,
    ) -> Result<Vec<f32>, KernelError> {
        let cfg = self.cfg;
        let t = super::check_tokens(&cfg, q, k, v, decay, beta)?;
        let out_len = t * cfg.heads * cfg.dv;
        let (Some(state), Some(ctx)) = (&self.device, self.compute.gpu_context()) else {
            let mut out = vec![0.0; out_len];
            recurrent_cpu_into(&cfg, q, k, v, decay, beta, &mut self.host, &mut out)?;
            return Ok(out);
        };
        ctx.check_alive()?;
        if t == 0 {
            return Ok(Vec::new());
        }
        let total = out_len + cfg.state_len();
        ctx.check_binding("recurrence output", (total * 4) as u64)?;
        for (what, len) in [
            ("recurrence q", q.len()),
            ("recurrence v", v.len()),
            ("recurrence decay", decay.data().len()),
        ] {
            ctx.check_binding(what, (len * 4) as u64)?;
        }
        let scope = ctx.error_scope();
        let inputs = Inputs::upload(ctx, q, k, v, decay, beta)?;
        let result = ctx.storage("recurrence output", (total * 4) as u64)?;
        let mut encoder = ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("recurrence step"),
            });
        encode_recurrent(ctx, &mut encoder, &cfg, t, &inputs, Some(state), &result);
        // The new state stays on the device; only the outputs come back.
        encoder.copy_buffer_to_buffer(
            &result,
            (out_len * 4) as u64,
            state,
            0,
            (cfg.state_len() * 4) as u64,
        );
        let read = ctx
            .submit_and_read(encoder, &result, (out_len * 4) as u64)
            .await;
        scope.finish("linear recurrence step").await?;
        Ok(bytemuck::pod_collect_to_vec(&read?))
    }

    /// CPU-only, synchronous and allocation-free step: fold the tokens into the host state and
    /// write their outputs into `out`. `INVALID_INPUT` when the state lives on the GPU.
    pub fn step_into(
        &mut self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        decay: Decay<'_>,
        beta: Option<&[f32]>,
        out: &mut [f32],
    ) -> Result<(), KernelError> {
        if self.device.is_some() {
            return Err(KernelError::InvalidArgument {
                name: "state",
                reason: "step_into runs on the CPU; this state lives on the GPU (use step)".into(),
            });
        }
        recurrent_cpu_into(&self.cfg, q, k, v, decay, beta, &mut self.host, out)
    }

    /// The current state `[heads, dk, dv]` (read back from the GPU when it lives there).
    pub async fn state(&self) -> Result<Vec<f32>, KernelError> {
        let (Some(state), Some(ctx)) = (&self.device, self.compute.gpu_context()) else {
            return Ok(self.host.clone());
        };
        ctx.check_alive()?;
        let bytes = (self.cfg.state_len() * 4) as u64;
        let scope = ctx.error_scope();
        let encoder = ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("recurrence state readback"),
            });
        let read = ctx.submit_and_read(encoder, state, bytes).await;
        scope.finish("linear recurrence state").await?;
        Ok(bytemuck::pod_collect_to_vec(&read?))
    }

    /// Reset the state to zeros.
    pub fn reset(&mut self) {
        match (&self.device, self.compute.gpu_context()) {
            (Some(state), Some(ctx)) => {
                let zeros = vec![0u8; self.cfg.state_len() * 4];
                ctx.write(state, 0, &zeros);
            }
            _ => self.host.fill(0.0),
        }
    }
}

fn empty_decay(cfg: RecurrenceConfig) -> Decay<'static> {
    match cfg.decay {
        super::DecayKind::None => Decay::None,
        super::DecayKind::Scalar => Decay::Scalar(&[]),
        super::DecayKind::Vector => Decay::Vector(&[]),
    }
}

fn empty_beta(cfg: RecurrenceConfig) -> Option<&'static [f32]> {
    cfg.delta.then_some(&[][..])
}
