//! Seeded, clustered, L2-normalised synthetic data for the recall tests and the benchmarks.
//!
//! Two scales of structure, like sentence embeddings: `topics` random unit directions; each of
//! `clusters` cluster centres is a topic plus noise; each point is a cluster centre plus noise,
//! normalised. Queries are drawn the same way (fresh points, not rows of the bank).

use crate::rng::Rng;

/// Parameters of [`clustered`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clustered {
    /// Vectors to draw.
    pub n: usize,
    /// Dimensions.
    pub d: usize,
    /// Cluster centres (points are drawn around them).
    pub clusters: usize,
    /// Topics (cluster centres are drawn around them).
    pub topics: usize,
    /// Norm of the noise added to a topic to make a cluster centre.
    pub topic_spread: f32,
    /// Norm of the noise added to a cluster centre to make a point.
    pub point_spread: f32,
    /// Seed.
    pub seed: u64,
}

impl Clustered {
    /// The default shape for `n` vectors of `d` dimensions: one cluster per 100 points, one topic
    /// per 20 clusters, spreads 0.8 and 1.2 (same-cluster cosine ≈ 0.4, random pairs ≈ 0).
    pub fn new(n: usize, d: usize, seed: u64) -> Clustered {
        let clusters = (n / 100).max(4);
        Clustered {
            n,
            d,
            clusters,
            topics: (clusters / 20).max(2),
            topic_spread: 0.8,
            point_spread: 1.2,
            seed,
        }
    }
}

fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        for x in v {
            *x /= norm;
        }
    }
}

fn around(rng: &mut Rng, centre: &[f32], spread: f32, out: &mut [f32]) {
    let scale = spread / (centre.len() as f32).sqrt();
    for (o, c) in out.iter_mut().zip(centre) {
        *o = c + scale * rng.normal();
    }
    normalise(out);
}

/// The data and `queries` query vectors of `p` (queries use the same generator, other draws).
/// Returns `(bank [n, d], queries [queries, d])`.
pub fn clustered(p: &Clustered, queries: usize) -> (Vec<f32>, Vec<f32>) {
    let d = p.d;
    let mut rng = Rng::new(p.seed);
    let mut topics = vec![0.0f32; p.topics.max(1) * d];
    for t in topics.chunks_exact_mut(d) {
        for x in t.iter_mut() {
            *x = rng.normal();
        }
        normalise(t);
    }
    let mut centres = vec![0.0f32; p.clusters.max(1) * d];
    for c in centres.chunks_exact_mut(d) {
        let t = rng.below(p.topics.max(1));
        around(&mut rng, &topics[t * d..(t + 1) * d], p.topic_spread, c);
    }
    let draw = |count: usize, rng: &mut Rng| {
        let mut out = vec![0.0f32; count * d];
        for v in out.chunks_exact_mut(d) {
            let c = rng.below(p.clusters.max(1));
            around(rng, &centres[c * d..(c + 1) * d], p.point_spread, v);
        }
        out
    };
    let bank = draw(p.n, &mut rng);
    let mut qrng = Rng::new(p.seed ^ 0x5155_4552_5953);
    let qs = draw(queries, &mut qrng);
    (bank, qs)
}
