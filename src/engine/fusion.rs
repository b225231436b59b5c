//! Fusion of the vector, lexical, recency and importance evidence of recall candidates:
//! `score = Σ weight · part`, every part on `[0, 1]`, ties by lower id.
//!
//! Parts (see [`VectorNorm`] and [`LexicalNorm`] for the alternatives evaluated):
//! - **vector**: the exact cosine of the query and the episode's stored L2-normalised embedding,
//!   normalised per query (default [`VectorNorm::MaxScaled`]: `max(cos, 0) / max cos` over the
//!   candidates, so the best vector match is 1);
//! - **lexical**: BM25 normalised per query (default [`LexicalNorm::MaxScaled`]: `bm25 / max bm25`
//!   over the candidates, 0 for an episode sharing no query token), since raw BM25 is unbounded
//!   and its scale varies with the query's length and idf;
//! - **recency**: [`Recency::part`] of the event time (halves every half-life);
//! - **importance**: the episode's importance in `[0, 1]` as stored.
//!
//! Both max-scaled parts depend only on the best candidate of each list, which every candidate
//! pool contains (the vector and lexical top-1 are always fetched), so the fused order of the
//! pool's members does not depend on how deep the pools are.

use std::cmp::Ordering;

use super::error::EngineError;
use super::recency::Recency;
use super::DocId;
use crate::num_fmt::Num;

/// Weights of the four parts (non-negative, finite, not all zero).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights {
    /// Weight of the vector part.
    pub vector: f64,
    /// Weight of the lexical (BM25) part.
    pub lexical: f64,
    /// Weight of the recency part.
    pub recency: f64,
    /// Weight of the importance part.
    pub importance: f64,
}

impl Weights {
    /// The default weights. `vector : lexical = 0.55 : 0.45` was chosen on the LoCoMo dev
    /// conversations by leave-one-conversation-out cross-validation (every fold chose 0.55 or
    /// 0.60); recency 0 because the same cross-validation did not pick it (LoCoMo asks about
    /// the whole history); importance 0.05 is **not** fitted (LoCoMo has no importance labels,
    /// and a constant importance leaves rankings unchanged): a mild boost for episodes an app
    /// marks important. See the README's retrieval section.
    pub const DEFAULT: Weights = Weights {
        vector: 0.55,
        lexical: 0.45,
        recency: 0.0,
        importance: 0.05,
    };

    /// Vector only.
    pub const VECTOR: Weights = Weights {
        vector: 1.0,
        lexical: 0.0,
        recency: 0.0,
        importance: 0.0,
    };

    /// Lexical only.
    pub const LEXICAL: Weights = Weights {
        vector: 0.0,
        lexical: 1.0,
        recency: 0.0,
        importance: 0.0,
    };

    /// `Ok` if every weight is finite and ≥ 0 and at least one is > 0.
    pub fn validate(&self) -> Result<(), EngineError> {
        let w = [self.vector, self.lexical, self.recency, self.importance];
        if w.iter().any(|v| !v.is_finite() || *v < 0.0) || w.iter().all(|v| *v == 0.0) {
            return Err(EngineError::invalid(
                "weights",
                format!(
                    "need finite weights >= 0, not all 0; got vector = {}, lexical = {}, \
                     recency = {}, importance = {}",
                    Num(self.vector),
                    Num(self.lexical),
                    Num(self.recency),
                    Num(self.importance)
                ),
            ));
        }
        Ok(())
    }
}

impl Default for Weights {
    fn default() -> Self {
        Weights::DEFAULT
    }
}

/// How the cosine becomes the vector part.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum VectorNorm {
    /// `max(cos, 0)`.
    Clamped,
    /// `max(cos, 0) / max cos` over the candidates (1 for the best).
    MaxScaled,
    /// `(cos − min) / (max − min)` over the candidates (depends on the pool's depth).
    MinMax,
    /// `(c + 1) / (c + rank)`, rank 1-based among the candidates (reciprocal-rank part).
    Rank(f64),
}

/// How BM25 becomes the lexical part.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LexicalNorm {
    /// `max(bm25, 0) / max bm25` over the candidates (1 for the best, 0 without a query token).
    MaxScaled,
    /// `(bm25 − min) / (max − min)` over the candidates.
    MinMax,
    /// `bm25 / (bm25 + c)` (a fixed saturation, no per-query statistics).
    Saturating(f64),
    /// `(c + 1) / (c + rank)` among the candidates with a query token, 0 for the others.
    Rank(f64),
}

/// Everything fusion needs besides the candidates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FusionConfig {
    /// Part weights.
    pub weights: Weights,
    /// Time decay of the recency part.
    pub recency: Recency,
    /// "Now" for the recency part, ms since the Unix epoch (the query's time).
    pub now_ms: f64,
    /// Vector-part normalisation.
    pub vector_norm: VectorNorm,
    /// Lexical-part normalisation.
    pub lexical_norm: LexicalNorm,
}

impl FusionConfig {
    /// The default fusion at `now_ms`.
    pub fn new(now_ms: f64) -> Self {
        FusionConfig {
            weights: Weights::DEFAULT,
            recency: Recency::default(),
            now_ms,
            vector_norm: VectorNorm::MaxScaled,
            lexical_norm: LexicalNorm::MaxScaled,
        }
    }

    /// `Ok` if weights, half-life, `now` and normalisation constants are valid.
    pub fn validate(&self) -> Result<(), EngineError> {
        self.weights.validate()?;
        self.recency.validate()?;
        if !self.now_ms.is_finite() {
            return Err(EngineError::invalid("now", "must be finite"));
        }
        let c_ok = |c: f64| c.is_finite() && c > 0.0;
        let ok = match (self.vector_norm, self.lexical_norm) {
            (VectorNorm::Rank(c), _) if !c_ok(c) => false,
            (_, LexicalNorm::Rank(c)) | (_, LexicalNorm::Saturating(c)) if !c_ok(c) => false,
            _ => true,
        };
        if !ok {
            return Err(EngineError::invalid(
                "normalisation",
                "constants must be > 0",
            ));
        }
        Ok(())
    }
}

/// A recall candidate with its raw evidence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// The episode.
    pub id: DocId,
    /// Cosine with the query embedding (`None`: no query embedding).
    pub cosine: Option<f64>,
    /// BM25 score (`None`: the episode has no query token, or no query text).
    pub bm25: Option<f64>,
    /// Event time, ms since the Unix epoch.
    pub time_ms: f64,
    /// Importance in `[0, 1]`.
    pub importance: f64,
}

/// The normalised parts of a hit; `score = Σ weight · part`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Parts {
    /// Vector part in `[0, 1]`.
    pub vector: f64,
    /// Lexical part in `[0, 1]`.
    pub lexical: f64,
    /// Recency part in `[0, 1]`.
    pub recency: f64,
    /// Importance part in `[0, 1]`.
    pub importance: f64,
}

/// A fused result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// The episode.
    pub id: DocId,
    /// `Σ weight · part`.
    pub score: f64,
    /// The parts.
    pub parts: Parts,
}

/// Score descending, then id ascending.
pub fn by_score_then_id(a: &Hit, b: &Hit) -> Ordering {
    b.score.total_cmp(&a.score).then(a.id.cmp(&b.id))
}

/// Ranks (1-based) of `values` among themselves, descending, ties by lower id. `None` values
/// get no rank.
/// (Not generic over the value, so the wasm build carries one instance of its sort.)
fn ranks(cands: &[Candidate], values: &[Option<f64>]) -> Vec<Option<usize>> {
    let mut order: Vec<(usize, f64)> = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| (i, v)))
        .collect();
    crate::sort::sort_by(&mut order, |a, b| {
        b.1.total_cmp(&a.1).then(cands[a.0].id.cmp(&cands[b.0].id))
    });
    let mut out = vec![None; cands.len()];
    for (r, (i, _)) in order.into_iter().enumerate() {
        out[i] = Some(r + 1);
    }
    out
}

fn min_max(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// The normalised vector parts of `cands` under `norm`.
pub fn vector_parts(cands: &[Candidate], norm: VectorNorm) -> Vec<f64> {
    let range = min_max(cands.iter().filter_map(|c| c.cosine));
    match norm {
        VectorNorm::Rank(c) => ranks(cands, &cands.iter().map(|x| x.cosine).collect::<Vec<_>>())
            .into_iter()
            .map(|r| r.map_or(0.0, |r| (c + 1.0) / (c + r as f64)))
            .collect(),
        _ => cands
            .iter()
            .map(|x| {
                let Some(cos) = x.cosine else { return 0.0 };
                let (lo, hi) = range.unwrap_or((0.0, 0.0));
                let v = match norm {
                    VectorNorm::Clamped => cos,
                    VectorNorm::MaxScaled if hi > 0.0 => cos.max(0.0) / hi,
                    VectorNorm::MaxScaled => 0.0,
                    VectorNorm::MinMax if hi > lo => (cos - lo) / (hi - lo),
                    VectorNorm::MinMax => 1.0,
                    VectorNorm::Rank(_) => unreachable!("handled above"),
                };
                v.clamp(0.0, 1.0)
            })
            .collect(),
    }
}

/// The normalised lexical parts of `cands` under `norm`.
pub fn lexical_parts(cands: &[Candidate], norm: LexicalNorm) -> Vec<f64> {
    let range = min_max(cands.iter().filter_map(|c| c.bm25));
    match norm {
        LexicalNorm::Rank(c) => ranks(cands, &cands.iter().map(|x| x.bm25).collect::<Vec<_>>())
            .into_iter()
            .map(|r| r.map_or(0.0, |r| (c + 1.0) / (c + r as f64)))
            .collect(),
        _ => cands
            .iter()
            .map(|x| {
                let Some(s) = x.bm25 else { return 0.0 };
                let (lo, hi) = range.unwrap_or((0.0, 0.0));
                let v = match norm {
                    LexicalNorm::MaxScaled if hi > 0.0 => s.max(0.0) / hi,
                    LexicalNorm::MaxScaled => 0.0,
                    LexicalNorm::MinMax if hi > lo => (s - lo) / (hi - lo),
                    LexicalNorm::MinMax => 1.0,
                    LexicalNorm::Saturating(c) => s.max(0.0) / (s.max(0.0) + c),
                    LexicalNorm::Rank(_) => unreachable!("handled above"),
                };
                v.clamp(0.0, 1.0)
            })
            .collect(),
    }
}

/// Fuse `cands` into hits sorted by score descending, ties by lower id. The parts of every
/// hit satisfy `score = Σ weight · part` (computed in that order). Invalid configuration is
/// an error; NaN evidence is treated as absent.
pub fn fuse(cands: &[Candidate], cfg: &FusionConfig) -> Result<Vec<Hit>, EngineError> {
    cfg.validate()?;
    let clean: Vec<Candidate> = cands
        .iter()
        .map(|c| Candidate {
            cosine: c.cosine.filter(|v| v.is_finite()),
            bm25: c.bm25.filter(|v| v.is_finite()),
            ..*c
        })
        .collect();
    let w = cfg.weights;
    let vec_parts = if w.vector > 0.0 {
        vector_parts(&clean, cfg.vector_norm)
    } else {
        vec![0.0; clean.len()]
    };
    let lex_parts = if w.lexical > 0.0 {
        lexical_parts(&clean, cfg.lexical_norm)
    } else {
        vec![0.0; clean.len()]
    };
    let mut hits: Vec<Hit> = clean
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let parts = Parts {
                vector: vec_parts[i],
                lexical: lex_parts[i],
                recency: cfg.recency.part(c.time_ms, cfg.now_ms),
                importance: if c.importance.is_finite() {
                    c.importance.clamp(0.0, 1.0)
                } else {
                    0.0
                },
            };
            Hit {
                id: c.id,
                score: score(&w, &parts),
                parts,
            }
        })
        .collect();
    crate::sort::sort_by(&mut hits, by_score_then_id);
    Ok(hits)
}

/// `Σ weight · part`.
pub fn score(w: &Weights, p: &Parts) -> f64 {
    w.vector * p.vector
        + w.lexical * p.lexical
        + w.recency * p.recency
        + w.importance * p.importance
}
