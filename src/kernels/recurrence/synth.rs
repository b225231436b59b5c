//! Seeded synthetic inputs for the recurrence's tests and benchmarks (native, browser and
//! bench harnesses share them): every variant, L2-normalised keys for the delta rule, decays
//! drawn from a range, optional random initial state.

use super::{Decay, RecurrenceInput};
use crate::rng::Rng;

/// The five variants of the issue, plus the gated delta rule with a vector decay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Plain linear attention: no decay, no delta.
    Linear,
    /// Scalar decay per head and step (RetNet / Mamba-2).
    Scalar,
    /// Vector decay over dk (GLA).
    Vector,
    /// Delta rule (DeltaNet).
    Delta,
    /// Gated delta rule (scalar decay + delta).
    GatedDelta,
    /// Delta rule with a vector decay.
    GatedDeltaVector,
}

impl Variant {
    /// Every variant.
    pub const ALL: [Variant; 6] = [
        Variant::Linear,
        Variant::Scalar,
        Variant::Vector,
        Variant::Delta,
        Variant::GatedDelta,
        Variant::GatedDeltaVector,
    ];

    /// Whether the variant uses the delta rule.
    pub fn delta(self) -> bool {
        matches!(
            self,
            Variant::Delta | Variant::GatedDelta | Variant::GatedDeltaVector
        )
    }

    /// Decay values per token and head: 0, 1 or dk.
    pub fn decay_width(self, dk: usize) -> usize {
        match self {
            Variant::Linear | Variant::Delta => 0,
            Variant::Scalar | Variant::GatedDelta => 1,
            Variant::Vector | Variant::GatedDeltaVector => dk,
        }
    }
}

/// One seeded test case with owned data.
#[derive(Debug, Clone)]
pub struct Case {
    /// Tokens.
    pub t: usize,
    /// Heads.
    pub h: usize,
    /// Key dimension.
    pub dk: usize,
    /// Value dimension.
    pub dv: usize,
    /// Variant.
    pub variant: Variant,
    /// Queries.
    pub q: Vec<f32>,
    /// Keys (unit length for the delta variants).
    pub k: Vec<f32>,
    /// Values.
    pub v: Vec<f32>,
    /// Decays (empty without decay).
    pub decay: Vec<f32>,
    /// Betas in [0.05, 1) (used by the delta variants).
    pub beta: Vec<f32>,
    /// Initial state, if any.
    pub state: Option<Vec<f32>>,
    /// A one-line description for messages.
    pub label: String,
}

impl Case {
    /// A case with inputs uniform in [-1, 1), decays uniform in `decays` (capped at 1).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        rng: &mut Rng,
        t: usize,
        h: usize,
        dk: usize,
        dv: usize,
        variant: Variant,
        decays: (f32, f32),
        with_state: bool,
    ) -> Case {
        let q = rng.vec_f32(t * h * dk);
        let mut k = rng.vec_f32(t * h * dk);
        if variant.delta() {
            // DeltaNet's L2-normalised keys: the update is a contraction for β ∈ (0, 1].
            for row in k.chunks_mut(dk) {
                let n = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
                row.iter_mut().for_each(|x| *x /= n);
            }
        }
        let v = rng.vec_f32(t * h * dv);
        let decay = (0..t * h * variant.decay_width(dk))
            .map(|_| rng.range_f32(decays.0, decays.1).min(1.0))
            .collect();
        let beta = (0..t * h).map(|_| rng.range_f32(0.05, 1.0)).collect();
        let state = with_state.then(|| rng.vec_f32(h * dk * dv));
        let label = format!(
            "{variant:?} T={t} H={h} dk={dk} dv={dv} decay in [{}, {}] state={with_state}",
            decays.0, decays.1
        );
        Case {
            t,
            h,
            dk,
            dv,
            variant,
            q,
            k,
            v,
            decay,
            beta,
            state,
            label,
        }
    }

    /// The case as a call's input (default scale).
    pub fn input(&self) -> RecurrenceInput<'_> {
        RecurrenceInput {
            q: &self.q,
            k: &self.k,
            v: &self.v,
            decay: match self.variant.decay_width(self.dk) {
                0 => Decay::None,
                1 if !matches!(self.variant, Variant::Vector | Variant::GatedDeltaVector) => {
                    Decay::Scalar(&self.decay)
                }
                _ => Decay::Vector(&self.decay),
            },
            beta: self.variant.delta().then_some(&self.beta[..]),
            heads: self.h,
            dk: self.dk,
            dv: self.dv,
            scale: None,
            state: self.state.as_deref(),
        }
    }
}
