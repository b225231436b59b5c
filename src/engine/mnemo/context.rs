//! Fading context per namespace: the linear-recurrence kernel's [`RecurrentState`] (one head,
//! `dk = 1`, `dv = dims`, scalar decay, CPU path) folding every remembered embedding of the
//! namespace, `S ← a·S + 1·eᵀ`, so its readout `Sᵀ·[1]` is an exponentially fading mean of the
//! recent embeddings — the "centroid" mode of [`crate::engine::fading`], which this replaces in
//! the engine. `recall({ context: true })` searches with `normalise(q + mix · normalise(S))`.
//!
//! **Definition** (what makes context recall deterministic for a given store state): the state
//! of a namespace is the fold of its *live* episodes' search vectors in id order. Appending a
//! newer episode is one recurrent step; a delete, an embedding update or an out-of-order id marks
//! the namespace dirty and its state is recomputed from its rows at the next context recall (one
//! multi-token call of the same kernel). Nothing is persisted: the state is a function of the
//! store. The CPU path is used because a step is one token (a GPU round trip would cost far more
//! than the `dims` multiply-adds it does).

use std::collections::HashMap;

use crate::compute::Compute;
use crate::engine::fading::{decay_for_half_life, FadingConfig};
use crate::engine::DocId;
use crate::kernels::recurrence::{Decay, DecayKind, RecurrenceConfig, RecurrentState};

use super::error::{MnemoError, Result};

/// Fading-context settings of the engine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContextConfig {
    /// Remembered embeddings after which an episode's weight in the state has halved (> 0).
    pub half_life_turns: f32,
    /// Weight of the normalised readout added to the normalised query (≥ 0).
    pub mix: f32,
}

impl Default for ContextConfig {
    /// The retrieval core's defaults (untuned; see the README): half-life 8 turns, mix 0.2.
    fn default() -> Self {
        ContextConfig {
            half_life_turns: 8.0,
            mix: FadingConfig::default().mix,
        }
    }
}

impl ContextConfig {
    /// `Ok` if the half-life is positive (infinity allowed: no decay) and `mix` finite ≥ 0.
    pub fn validate(&self) -> Result<()> {
        if self.half_life_turns.is_nan() || self.half_life_turns <= 0.0 {
            return Err(MnemoError::invalid(
                "context.halfLife",
                format!(
                    "must be > 0 turns, got {}",
                    crate::num_fmt::Num(self.half_life_turns.into())
                ),
            ));
        }
        if !(self.mix.is_finite() && self.mix >= 0.0) {
            return Err(MnemoError::invalid(
                "context.mix",
                format!(
                    "must be finite and >= 0, got {}",
                    crate::num_fmt::Num(self.mix.into())
                ),
            ));
        }
        Ok(())
    }

    /// The per-step decay.
    pub fn decay(&self) -> f32 {
        if self.half_life_turns.is_infinite() {
            1.0
        } else {
            decay_for_half_life(self.half_life_turns)
        }
    }
}

/// Lists a namespace's live `(id, search vector)` rows in id order (called only when needed).
pub(crate) type RowsFn<'a> = Box<dyn FnOnce() -> Vec<(DocId, Vec<f32>)> + 'a>;

struct NsState {
    state: RecurrentState,
    /// The readout after the last step (`Sᵀ·[1]` = the state row).
    readout: Vec<f32>,
    last_id: DocId,
    dirty: bool,
}

/// Every namespace's fading state.
pub(crate) struct Contexts {
    cfg: ContextConfig,
    dims: usize,
    compute: Compute,
    per_ns: HashMap<u32, NsState>,
}

impl Contexts {
    pub(crate) fn new(dims: usize, cfg: ContextConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Contexts {
            cfg,
            dims,
            compute: Compute::cpu(),
            per_ns: HashMap::new(),
        })
    }

    pub(crate) fn config(&self) -> ContextConfig {
        self.cfg
    }

    fn rcfg(&self) -> RecurrenceConfig {
        RecurrenceConfig::new(1, 1, self.dims, DecayKind::Scalar, false)
    }

    fn fresh(&self) -> Result<NsState> {
        Ok(NsState {
            state: RecurrentState::new(&self.compute, self.rcfg())?,
            readout: vec![0.0; self.dims],
            last_id: 0,
            dirty: false,
        })
    }

    /// A new episode `id` with search vector `v` joined namespace `ns`; `first` says whether it
    /// is the namespace's only live episode (otherwise an absent state is recomputed later).
    pub(crate) fn on_append(&mut self, ns: u32, id: DocId, v: &[f32], first: bool) -> Result<()> {
        if !self.per_ns.contains_key(&ns) {
            let mut s = self.fresh()?;
            s.dirty = !first;
            self.per_ns.insert(ns, s);
        }
        let decay = [self.cfg.decay()];
        let s = self.per_ns.get_mut(&ns).expect("inserted above");
        if s.dirty || id <= s.last_id {
            s.dirty = true;
            return Ok(());
        }
        s.state.step_into(
            &[1.0],
            &[1.0],
            v,
            Decay::Scalar(&decay),
            None,
            &mut s.readout,
        )?;
        s.last_id = id;
        Ok(())
    }

    /// Namespace `ns` lost an episode or an embedding changed: recompute before the next use.
    pub(crate) fn invalidate(&mut self, ns: u32) {
        if let Some(s) = self.per_ns.get_mut(&ns) {
            s.dirty = true;
        }
    }

    /// The readout of namespace `ns`, recomputing it first if dirty from `rows` (its live
    /// episodes in id order, as `(id, vector)`).
    fn readout(
        &mut self,
        ns: u32,
        rows: impl FnOnce() -> Vec<(DocId, Vec<f32>)>,
    ) -> Result<Vec<f32>> {
        let need = self.per_ns.get(&ns).is_none_or(|s| s.dirty);
        if need {
            let rows = rows();
            let mut s = self.fresh()?;
            if !rows.is_empty() {
                let t = rows.len();
                let mut v = Vec::with_capacity(t * self.dims);
                for (_, x) in &rows {
                    v.extend_from_slice(x);
                }
                let ones = vec![1.0f32; t];
                let decay = vec![self.cfg.decay(); t];
                let mut out = vec![0.0f32; t * self.dims];
                s.state
                    .step_into(&ones, &ones, &v, Decay::Scalar(&decay), None, &mut out)?;
                s.readout.copy_from_slice(&out[(t - 1) * self.dims..]);
                s.last_id = rows[t - 1].0;
            }
            self.per_ns.insert(ns, s);
        }
        Ok(self.per_ns[&ns].readout.clone())
    }

    /// `normalise(q + mix · normalise(Σ readouts))` over the namespaces `scope` (each given with
    /// a closure listing its live `(id, vector)` rows in id order, called only if it is dirty);
    /// `q` itself when every state is empty or `mix` is 0.
    pub(crate) fn mix_query<'a>(
        &mut self,
        q: &[f32],
        scope: Vec<(u32, RowsFn<'a>)>,
    ) -> Result<Vec<f32>> {
        let mut sum = vec![0.0f32; self.dims];
        for (ns, rows) in scope {
            let r = self.readout(ns, rows)?;
            for (s, x) in sum.iter_mut().zip(&r) {
                *s += x;
            }
        }
        let mut out = q.to_vec();
        normalise(&mut out);
        if self.cfg.mix > 0.0 && normalise(&mut sum) {
            for (x, y) in out.iter_mut().zip(&sum) {
                *x += self.cfg.mix * y;
            }
            normalise(&mut out);
        }
        Ok(out)
    }
}

fn normalise(v: &mut [f32]) -> bool {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 && n.is_finite() {
        v.iter_mut().for_each(|x| *x /= n);
        true
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fading::{FadingMode, FadingState};

    #[test]
    fn matches_the_retrieval_core_centroid_state() {
        let dims = 6;
        let cfg = ContextConfig::default();
        let mut c = Contexts::new(dims, cfg).unwrap();
        let mut reference = FadingState::new(dims, FadingMode::Centroid, cfg.decay()).unwrap();
        let vecs: Vec<Vec<f32>> = (0..20)
            .map(|i| {
                (0..dims)
                    .map(|d| ((i * 7 + d) as f32 * 0.31).sin())
                    .collect()
            })
            .collect();
        for (i, v) in vecs.iter().enumerate() {
            c.on_append(0, i as DocId + 1, v, i == 0).unwrap();
            reference.update(v).unwrap();
        }
        let q = vec![0.5f32, -0.1, 0.2, 0.0, 0.3, 0.9];
        let want = reference.mix_query(&q, cfg.mix).unwrap();
        let got = c.mix_query(&q, vec![(0, Box::new(Vec::new))]).unwrap();
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() < 1e-5, "{got:?} vs {want:?}");
        }
        // Dirty: recomputed from the rows in one multi-token call, same result.
        c.invalidate(0);
        let rows: Vec<(DocId, Vec<f32>)> = vecs
            .iter()
            .enumerate()
            .map(|(i, v)| (i as DocId + 1, v.clone()))
            .collect();
        let again = c.mix_query(&q, vec![(0, Box::new(move || rows))]).unwrap();
        for (a, b) in again.iter().zip(&want) {
            assert!((a - b).abs() < 1e-5);
        }
    }
}
