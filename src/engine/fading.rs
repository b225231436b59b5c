//! Fading context: a per-namespace linear-recurrence state updated with every remembered
//! embedding, whose readout can be mixed into a recall query so that vague follow-up questions
//! lean towards what the conversation was recently about.
//!
//! The state is one head of the linear-recurrence kernel family in recurrent form,
//! `S ← a·S + k·vᵀ` and readout `o = Sᵀ·q`, written here as a small CPU version
//! ([`recurrent_step`], [`readout`]) behind a single-token interface so the GPU/CPU kernel of
//! the sequence-kernels issue can replace it. Two ways to feed it ([`FadingMode`]):
//! - `Centroid` (`k = [1]`, `v = e`, `dk = 1`): `o = Σ aᵗ⁻ⁱ eᵢ`, an exponentially fading mean of
//!   recent embeddings — what the conversation is about lately;
//! - `Associative` (`k = v = e`, `dk = dv = dims`): `o = Σ aᵗ⁻ⁱ eᵢ (eᵢ·q)`, recent embeddings
//!   weighted by their similarity to the query — recent context *related to the question*.
//!
//! The query used for vector search is `normalise(q + mix · normalise(o))`. The feature is off
//! by default: on LoCoMo it does not help (README, retrieval section).

use super::codec::{self, Writer};
use super::error::{check_vector, EngineError};

const MAGIC: &[u8; 8] = b"MNMOFADE";
/// Version of the serialised state.
pub const FORMAT_VERSION: u32 = 1;

/// How embeddings feed the recurrence (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FadingMode {
    /// Fading mean of recent embeddings (`dk = 1`).
    Centroid,
    /// Fading similarity-weighted memory (`dk = dv = dims`).
    Associative,
}

/// Fading-context settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FadingConfig {
    /// How embeddings feed the state.
    pub mode: FadingMode,
    /// Multiplicative decay per remembered embedding, in `(0, 1]`.
    pub decay: f32,
    /// Weight of the normalised readout added to the normalised query (≥ 0).
    pub mix: f32,
}

impl Default for FadingConfig {
    fn default() -> Self {
        FadingConfig {
            mode: FadingMode::Centroid,
            decay: decay_for_half_life(8.0),
            mix: 0.2,
        }
    }
}

impl FadingConfig {
    /// `Ok` if `decay ∈ (0, 1]` and `mix` is finite and ≥ 0.
    pub fn validate(&self) -> Result<(), EngineError> {
        if !(self.decay > 0.0 && self.decay <= 1.0) {
            return Err(EngineError::invalid(
                "decay",
                format!(
                    "must be in (0, 1], got {}",
                    crate::num_fmt::Num(self.decay.into())
                ),
            ));
        }
        if !(self.mix.is_finite() && self.mix >= 0.0) {
            return Err(EngineError::invalid(
                "mix",
                format!(
                    "must be finite and >= 0, got {}",
                    crate::num_fmt::Num(self.mix.into())
                ),
            ));
        }
        Ok(())
    }
}

/// The per-step decay whose weight halves after `turns` embeddings (`turns > 0`).
pub fn decay_for_half_life(turns: f32) -> f32 {
    0.5f32.powf(1.0 / turns)
}

/// One recurrent step of a single head: `S ← decay·S + k·vᵀ`, `S` row-major `[dk, dv]`.
/// Lengths are the caller's contract (`state = dk·dv`, `k = dk`, `v = dv`).
pub fn recurrent_step(state: &mut [f32], dk: usize, dv: usize, decay: f32, k: &[f32], v: &[f32]) {
    for (i, row) in state.chunks_exact_mut(dv).take(dk).enumerate() {
        let ki = k[i];
        for (s, &vj) in row.iter_mut().zip(v) {
            *s = decay * *s + ki * vj;
        }
    }
}

/// Readout of a single head: `out = Sᵀ·q` (`out` has `dv` values, overwritten).
pub fn readout(state: &[f32], dk: usize, dv: usize, q: &[f32], out: &mut [f32]) {
    out[..dv].fill(0.0);
    for (row, &qi) in state.chunks_exact(dv).take(dk).zip(q) {
        if qi == 0.0 {
            continue;
        }
        for (o, &s) in out.iter_mut().zip(row) {
            *o += qi * s;
        }
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

/// The fading-context state of one namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct FadingState {
    dims: usize,
    mode: FadingMode,
    decay: f32,
    steps: u64,
    /// Row-major `[dk, dims]` (`dk` = 1 or `dims`).
    state: Vec<f32>,
}

impl FadingState {
    /// An empty state for `dims`-dimensional embeddings.
    pub fn new(dims: usize, mode: FadingMode, decay: f32) -> Result<Self, EngineError> {
        if dims == 0 || dims > 4096 {
            return Err(EngineError::invalid(
                "dims",
                format!("must be in 1..=4096, got {dims}"),
            ));
        }
        FadingConfig {
            mode,
            decay,
            mix: 0.0,
        }
        .validate()?;
        let dk = if mode == FadingMode::Centroid {
            1
        } else {
            dims
        };
        Ok(FadingState {
            dims,
            mode,
            decay,
            steps: 0,
            state: vec![0.0; dk * dims],
        })
    }

    fn dk(&self) -> usize {
        self.state.len() / self.dims
    }

    /// Embeddings folded in so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The mode.
    pub fn mode(&self) -> FadingMode {
        self.mode
    }

    /// Fold one remembered embedding into the state (a single-token recurrent step).
    pub fn update(&mut self, embedding: &[f32]) -> Result<(), EngineError> {
        check_vector("embedding", embedding, self.dims)?;
        let (dk, dv) = (self.dk(), self.dims);
        match self.mode {
            FadingMode::Centroid => {
                recurrent_step(&mut self.state, dk, dv, self.decay, &[1.0], embedding)
            }
            FadingMode::Associative => {
                recurrent_step(&mut self.state, dk, dv, self.decay, embedding, embedding)
            }
        }
        self.steps += 1;
        Ok(())
    }

    /// The state's readout for `query` (`dims` values; zeros before the first update).
    pub fn readout(&self, query: &[f32]) -> Result<Vec<f32>, EngineError> {
        check_vector("query", query, self.dims)?;
        let mut out = vec![0.0; self.dims];
        match self.mode {
            FadingMode::Centroid => readout(&self.state, 1, self.dims, &[1.0], &mut out),
            FadingMode::Associative => readout(&self.state, self.dims, self.dims, query, &mut out),
        }
        Ok(out)
    }

    /// `normalise(q + mix · normalise(readout(q)))`; the query itself (normalised) when the
    /// state is empty or `mix` is 0.
    pub fn mix_query(&self, query: &[f32], mix: f32) -> Result<Vec<f32>, EngineError> {
        let mut r = self.readout(query)?;
        let mut q = query.to_vec();
        normalise(&mut q);
        if mix > 0.0 && normalise(&mut r) {
            for (x, y) in q.iter_mut().zip(&r) {
                *x += mix * y;
            }
            normalise(&mut q);
        }
        Ok(q)
    }

    /// Serialise (versioned, checksummed).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.varint(self.dims as u64);
        w.varint(match self.mode {
            FadingMode::Centroid => 0,
            FadingMode::Associative => 1,
        });
        w.f32(self.decay);
        w.varint(self.steps);
        for &v in &self.state {
            w.f32(v);
        }
        w.finish(MAGIC, FORMAT_VERSION)
    }

    /// Load bytes written by [`FadingState::to_bytes`]; malformed input is a typed error.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EngineError> {
        let mut r = codec::open("fading state", bytes, MAGIC, FORMAT_VERSION)?;
        let dims = r.u32_max(4096, "dims")? as usize;
        let mode = match r.varint()? {
            0 => FadingMode::Centroid,
            1 => FadingMode::Associative,
            m => return Err(r.error(format!("unknown mode {m}"))),
        };
        let decay = r.f32()?;
        let mut st = FadingState::new(dims, mode, decay).map_err(|e| r.error(e.to_string()))?;
        st.steps = r.varint()?;
        if r.remaining() != st.state.len() * 4 {
            return Err(r.error(format!(
                "expected {} state bytes, found {}",
                st.state.len() * 4,
                r.remaining()
            )));
        }
        for v in st.state.iter_mut() {
            *v = r.f32()?;
            if !v.is_finite() {
                return Err(r.error("non-finite state value"));
            }
        }
        r.finish()?;
        Ok(st)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centroid_is_a_fading_sum() {
        let mut s = FadingState::new(2, FadingMode::Centroid, 0.5).unwrap();
        s.update(&[1.0, 0.0]).unwrap();
        s.update(&[0.0, 1.0]).unwrap();
        assert_eq!(s.readout(&[0.3, 0.3]).unwrap(), vec![0.5, 1.0]);
        let q = s.mix_query(&[1.0, 0.0], 0.0).unwrap();
        assert_eq!(q, vec![1.0, 0.0]);
    }

    #[test]
    fn associative_weights_by_similarity() {
        let mut s = FadingState::new(2, FadingMode::Associative, 1.0).unwrap();
        s.update(&[1.0, 0.0]).unwrap();
        s.update(&[0.0, 1.0]).unwrap();
        s.update(&[0.0, 1.0]).unwrap();
        // S = e1 e1ᵀ + 2 e2 e2ᵀ; Sᵀ q = (q1, 2 q2)
        assert_eq!(s.readout(&[1.0, 1.0]).unwrap(), vec![1.0, 2.0]);
    }

    #[test]
    fn bytes_round_trip_and_reject_garbage() {
        let mut s = FadingState::new(3, FadingMode::Associative, 0.9).unwrap();
        s.update(&[0.1, 0.2, 0.3]).unwrap();
        let b = s.to_bytes();
        assert_eq!(FadingState::from_bytes(&b).unwrap(), s);
        for cut in 0..b.len() {
            assert!(FadingState::from_bytes(&b[..cut]).is_err());
        }
        assert!(s.update(&[f32::NAN, 0.0, 0.0]).is_err());
        assert!(s.update(&[0.0, 0.0]).is_err());
        assert!(FadingState::new(3, FadingMode::Centroid, 0.0).is_err());
    }
}
