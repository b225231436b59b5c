//! The recall pipeline on the CPU, over one namespace: vector candidates by exact cosine,
//! lexical candidates from the BM25 index, their union scored with every part, fused, top k.
//!
//! This is the reference the engine's recall follows: the engine swaps the exact vector scan
//! for the memory-fetch kernel (GPU top-k or the hierarchical index) and keeps the rest. The
//! union is re-scored exactly (cosine of every candidate in f64 over the stored f32
//! embeddings, BM25 of every candidate), so a candidate's parts do not depend on which list
//! brought it in.

use std::collections::HashMap;

use super::error::{check_vector, EngineError};
use super::fading::FadingState;
use super::fusion::{
    fuse, lexical_parts, vector_parts, Candidate, FusionConfig, Hit, LexicalNorm, VectorNorm,
};
use super::lexical::{Allow, LexicalIndex};
use super::DocId;

/// Default candidates fetched from each list: `max(DEFAULT_DEPTH_MIN, DEPTH_FACTOR · k)`.
pub const DEFAULT_DEPTH_MIN: usize = 100;
/// See [`DEFAULT_DEPTH_MIN`].
pub const DEPTH_FACTOR: usize = 5;

/// The episodes of one namespace as recall sees them.
pub trait Corpus {
    /// Embedding dimension.
    fn dims(&self) -> usize;
    /// Number of episodes.
    fn len(&self) -> usize;
    /// Whether there is no episode.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Id of the episode in `row`.
    fn id(&self, row: usize) -> DocId;
    /// Its stored L2-normalised embedding.
    fn embedding(&self, row: usize) -> &[f32];
    /// Its event time, ms since the Unix epoch.
    fn time_ms(&self, row: usize) -> f64;
    /// Its importance in `[0, 1]`.
    fn importance(&self, row: usize) -> f64;
    /// The row of `id`, if present.
    fn row_of(&self, id: DocId) -> Option<usize>;
}

/// A simple in-memory [`Corpus`].
#[derive(Debug, Clone, Default)]
pub struct MemCorpus {
    dims: usize,
    ids: Vec<DocId>,
    embeddings: Vec<f32>,
    times: Vec<f64>,
    importance: Vec<f64>,
    rows: HashMap<DocId, usize>,
}

impl MemCorpus {
    /// An empty corpus of `dims`-dimensional embeddings.
    pub fn new(dims: usize) -> Self {
        MemCorpus {
            dims,
            ..MemCorpus::default()
        }
    }

    /// Append an episode (duplicate id, wrong dimension or non-finite values are errors).
    pub fn push(
        &mut self,
        id: DocId,
        embedding: &[f32],
        time_ms: f64,
        importance: f64,
    ) -> Result<(), EngineError> {
        check_vector("embedding", embedding, self.dims)?;
        if self.rows.contains_key(&id) {
            return Err(EngineError::DuplicateId { id });
        }
        self.rows.insert(id, self.ids.len());
        self.ids.push(id);
        self.embeddings.extend_from_slice(embedding);
        self.times.push(time_ms);
        self.importance.push(importance);
        Ok(())
    }
}

impl Corpus for MemCorpus {
    fn dims(&self) -> usize {
        self.dims
    }
    fn len(&self) -> usize {
        self.ids.len()
    }
    fn id(&self, row: usize) -> DocId {
        self.ids[row]
    }
    fn embedding(&self, row: usize) -> &[f32] {
        &self.embeddings[row * self.dims..(row + 1) * self.dims]
    }
    fn time_ms(&self, row: usize) -> f64 {
        self.times[row]
    }
    fn importance(&self, row: usize) -> f64 {
        self.importance[row]
    }
    fn row_of(&self, id: DocId) -> Option<usize> {
        self.rows.get(&id).copied()
    }
}

/// Exact dot product in f64 (the baseline's arithmetic).
pub fn dot_f64(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
}

/// One recall request.
#[derive(Clone, Copy)]
pub struct RecallRequest<'a> {
    /// Results wanted.
    pub k: usize,
    /// Query embedding (L2-normalised, `dims` values), if any.
    pub embedding: Option<&'a [f32]>,
    /// Query text for BM25, if any.
    pub text: Option<&'a str>,
    /// Weights, recency and normalisation.
    pub fusion: FusionConfig,
    /// Candidates per list (`None`: [`DEFAULT_DEPTH_MIN`] / [`DEPTH_FACTOR`] rule).
    pub depth: Option<usize>,
    /// Filter (time range, tags...), by id.
    pub allow: Option<&'a dyn Fn(DocId) -> bool>,
    /// Fading context: mix the state's readout into the query embedding with this weight.
    pub context: Option<(&'a FadingState, f32)>,
}

impl<'a> RecallRequest<'a> {
    /// A request for `k` hits with the default fusion at `now_ms`.
    pub fn new(k: usize, now_ms: f64) -> Self {
        RecallRequest {
            k,
            embedding: None,
            text: None,
            fusion: FusionConfig::new(now_ms),
            depth: None,
            allow: None,
            context: None,
        }
    }
}

/// Recall over one namespace: `corpus` holds its episodes, `lexical` indexes them under
/// `namespace`. Hits are sorted by fused score, ties by lower id; at most `k`.
///
/// Candidates: with a query embedding (and a vector weight > 0) every allowed episode is a
/// candidate (each has a cosine); otherwise, with text (and a lexical weight > 0), the episodes
/// holding a query token — none if no episode does; with neither an embedding nor text, every
/// allowed episode (ranked by recency and importance: "what happened lately"). The vector and lexical lists are cut at
/// `depth`, their union is scored exactly and fused. With max-scaled, clamped or saturating
/// normalisations the cut is then checked with the threshold-algorithm bound (no episode
/// outside the union can score above `w·(part of the depth-th vector score) + w·(part of the
/// depth-th BM25 score) + w·(max recency) + w·(max importance)`); if the k-th hit does not beat
/// the bound, the depth is quadrupled and the recall repeated. So for those normalisations the
/// result equals fusing every candidate, whatever `depth` is. (Min-max and rank normalisations
/// depend on the pool and are computed over the pool at the given depth.)
pub fn recall(
    corpus: &dyn Corpus,
    lexical: &LexicalIndex,
    namespace: &str,
    req: &RecallRequest<'_>,
) -> Result<Vec<Hit>, EngineError> {
    req.fusion.validate()?;
    if req.k == 0 || corpus.is_empty() {
        return Ok(Vec::new());
    }
    let mixed;
    let embedding = match (req.embedding, req.context) {
        (Some(e), Some((state, mix))) => {
            check_vector("embedding", e, corpus.dims())?;
            mixed = state.mix_query(e, mix)?;
            Some(mixed.as_slice())
        }
        (Some(e), None) => {
            check_vector("embedding", e, corpus.dims())?;
            Some(e)
        }
        (None, _) => None,
    };
    let cfg = &req.fusion;
    let w = cfg.weights;
    let allowed: Vec<usize> = (0..corpus.len())
        .filter(|&r| req.allow.is_none_or(|f| f(corpus.id(r))))
        .collect();
    if allowed.is_empty() {
        return Ok(Vec::new());
    }
    let query = req.text.map(|t| lexical.query(namespace, t));
    let has_lex = query.as_ref().is_some_and(|q| !q.is_empty());
    let use_vec = embedding.is_some() && w.vector > 0.0;
    let use_lex = has_lex && w.lexical > 0.0;
    if !use_vec && !use_lex && (req.embedding.is_some() || req.text.is_some()) {
        // A similarity query with nothing similar (e.g. text that no episode shares).
        return Ok(Vec::new());
    }
    let cmp_id = |a: &(usize, f64), b: &(usize, f64)| {
        b.1.total_cmp(&a.1)
            .then(corpus.id(a.0).cmp(&corpus.id(b.0)))
    };

    // Every candidate universe member's cosine (the exact scan the memory-fetch kernel replaces).
    let vec_all: Vec<(usize, f64)> = match embedding {
        Some(e) if use_vec => allowed
            .iter()
            .map(|&r| (r, dot_f64(e, corpus.embedding(r))))
            .collect(),
        _ => Vec::new(),
    };
    let max_recency = allowed
        .iter()
        .map(|&r| cfg.recency.part(corpus.time_ms(r), cfg.now_ms))
        .fold(0.0, f64::max);
    let max_importance = allowed
        .iter()
        .map(|&r| clamp01(corpus.importance(r)))
        .fold(0.0, f64::max);
    let exact_bound = matches!(cfg.vector_norm, VectorNorm::MaxScaled | VectorNorm::Clamped)
        && matches!(
            cfg.lexical_norm,
            LexicalNorm::MaxScaled | LexicalNorm::Saturating(_)
        );

    let mut depth = req
        .depth
        .unwrap_or(DEFAULT_DEPTH_MIN.max(DEPTH_FACTOR.saturating_mul(req.k)))
        .max(req.k)
        .max(1);
    loop {
        let mut rows: Vec<usize> = Vec::new();
        let mut vec_cut: Option<f64> = None; // cosine of the depth-th vector candidate
        if use_vec {
            let mut v = vec_all.clone();
            if v.len() > depth {
                v.select_nth_unstable_by(depth - 1, cmp_id);
                v.truncate(depth);
                vec_cut = v.iter().map(|x| x.1).reduce(f64::min);
            }
            rows.extend(v.iter().map(|x| x.0));
        } else if !use_lex {
            rows.extend(allowed.iter().copied());
        }
        let mut lex_cut: Option<f64> = None; // BM25 of the depth-th lexical candidate
        if use_lex {
            let q = query.as_ref().expect("use_lex implies a query");
            let hits = match req.allow {
                Some(f) => q.top_k(depth, Allow::Predicate(f)),
                None => q.top_k(depth, Allow::All),
            };
            if hits.len() == depth {
                lex_cut = hits.last().map(|h| h.score);
            }
            rows.extend(hits.iter().filter_map(|h| corpus.row_of(h.id)));
        }
        rows.sort_unstable();
        rows.dedup();
        let cands: Vec<Candidate> = rows
            .iter()
            .map(|&r| {
                let id = corpus.id(r);
                Candidate {
                    id,
                    cosine: embedding.map(|e| dot_f64(e, corpus.embedding(r))),
                    bm25: query.as_ref().and_then(|q| q.score(id)),
                    time_ms: corpus.time_ms(r),
                    importance: corpus.importance(r),
                }
            })
            .collect();
        let mut hits = fuse(&cands, cfg)?;
        // Every candidate of the universe is in the union: nothing was cut.
        let covered = vec_cut.is_none() && lex_cut.is_none();
        if covered || !exact_bound {
            hits.truncate(req.k);
            return Ok(hits);
        }
        // Threshold-algorithm bound for every episode outside the union.
        let probe = |cos: Option<f64>, bm25: Option<f64>| Candidate {
            id: DocId::MAX,
            cosine: cos,
            bm25,
            time_ms: 0.0,
            importance: 0.0,
        };
        let mut with_probe = cands.clone();
        with_probe.push(probe(
            if use_vec {
                vec_cut.or(Some(f64::NEG_INFINITY))
            } else {
                None
            },
            lex_cut,
        ));
        let vp = if use_vec {
            vector_parts(&with_probe, cfg.vector_norm)[cands.len()]
        } else {
            0.0
        };
        let lp = if use_lex {
            lexical_parts(&with_probe, cfg.lexical_norm)[cands.len()]
        } else {
            0.0
        };
        let bound = w.vector * vp
            + w.lexical * lp
            + w.recency * max_recency
            + w.importance * max_importance;
        if hits.len() >= req.k && hits[req.k - 1].score > bound {
            hits.truncate(req.k);
            return Ok(hits);
        }
        depth = depth.saturating_mul(4);
    }
}

fn clamp01(v: f64) -> f64 {
    if v.is_finite() {
        v.clamp(0.0, 1.0)
    } else {
        0.0
    }
}
