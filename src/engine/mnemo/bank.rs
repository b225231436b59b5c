//! The engine's vector bank: every live episode's *search vector* by row, and the vector
//! candidates of a recall — the top `depth` rows by dot product among the allowed rows.
//!
//! Search vectors: an embedding whose L2 norm is within 1e-3 of 1 is kept as given (so scores of
//! normalised embeddings are bit-for-bit plain dot products, as the baselines compute); any other
//! is divided by its norm (a zero vector stays zero). The store keeps the embedding as given.
//!
//! Paths (see [`VectorPath`]): an exact CPU scan over the allowed rows; and the memory-fetch
//! kernels (flat GPU top-k, hierarchical index) once they are wired in.

use std::cmp::Ordering;

use crate::compute::Backend;
use crate::engine::DocId;
use crate::kernels::cpu::dot;

use super::error::Result;
use super::rows::{Allowed, Row};

/// The search vector of an embedding (see the module documentation).
pub(crate) fn search_vector(v: &[f32]) -> Vec<f32> {
    let n2: f64 = v.iter().map(|x| *x as f64 * *x as f64).sum();
    let n = n2.sqrt();
    if (n - 1.0).abs() <= 1e-3 {
        v.to_vec()
    } else if n > 0.0 && n.is_finite() {
        v.iter().map(|x| (*x as f64 / n) as f32).collect()
    } else {
        vec![0.0; v.len()]
    }
}

/// How the vector candidates of a recall were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectorPath {
    /// Exact scan of the allowed rows on the CPU.
    CpuExact,
    /// Exact flat top-k on the GPU (memory-fetch kernel, allow-mask).
    GpuFlat,
    /// Exact flat top-k on the CPU path of the memory-fetch kernel.
    CpuFlat,
    /// The hierarchical index (approximate), on the CPU.
    Hierarchical,
}

impl VectorPath {
    /// Short name (`stats().index` in JS).
    pub fn as_str(self) -> &'static str {
        match self {
            VectorPath::CpuExact => "exact",
            VectorPath::GpuFlat | VectorPath::CpuFlat => "flat",
            VectorPath::Hierarchical => "hierarchical",
        }
    }
    /// Whether the candidates are the exact top `depth`.
    pub fn exact(self) -> bool {
        !matches!(self, VectorPath::Hierarchical)
    }
    /// Where it ran.
    pub fn backend(self) -> Backend {
        match self {
            VectorPath::GpuFlat => Backend::Gpu,
            _ => Backend::Cpu,
        }
    }
}

/// Vector candidates: `(row, score)` best first (score descending, ties by lower id).
#[derive(Debug, Clone)]
pub(crate) struct Candidates {
    pub hits: Vec<(Row, f32)>,
    pub path: VectorPath,
}

/// The bank.
#[derive(Debug, Clone)]
pub(crate) struct VectorBank {
    dims: usize,
    data: Vec<f32>,
}

impl VectorBank {
    pub(crate) fn new(dims: usize) -> Self {
        VectorBank {
            dims,
            data: Vec::new(),
        }
    }

    /// Rows, holes included.
    pub(crate) fn len(&self) -> usize {
        self.data.len() / self.dims
    }

    /// The search vector of row `r`.
    pub(crate) fn row(&self, r: Row) -> &[f32] {
        let i = r as usize * self.dims;
        &self.data[i..i + self.dims]
    }

    /// Append search vectors (row-major); they get the next rows.
    pub(crate) async fn append(&mut self, rows: &[f32]) -> Result<()> {
        self.data.extend_from_slice(rows);
        Ok(())
    }

    /// Replace row `r`'s search vector.
    pub(crate) async fn set_row(&mut self, r: Row, v: &[f32]) -> Result<()> {
        let i = r as usize * self.dims;
        self.data[i..i + self.dims].copy_from_slice(v);
        Ok(())
    }

    /// Row `r` was removed (its slot is never returned again: the allow-set excludes it).
    pub(crate) fn remove(&mut self, r: Row) {
        let i = r as usize * self.dims;
        self.data[i..i + self.dims].fill(0.0);
    }

    /// The `depth` best allowed rows for `q` (a search vector), best first.
    pub(crate) async fn search(
        &self,
        q: &[f32],
        depth: usize,
        allowed: &Allowed,
        id_of: &dyn Fn(Row) -> DocId,
    ) -> Result<Candidates> {
        let mut hits: Vec<(Row, f32)> = allowed
            .rows
            .iter()
            .map(|&r| (r, dot(q, self.row(r))))
            .collect();
        select_top(&mut hits, depth, id_of);
        Ok(Candidates {
            hits,
            path: VectorPath::CpuExact,
        })
    }
}

/// One entry of [`select_top`]'s heap.
#[derive(Clone, Copy)]
struct Entry {
    score: f32,
    id: DocId,
    row: Row,
}

/// Whether `a` ranks below `b` (lower score; equal scores: higher id).
fn worse(a: &Entry, b: &Entry) -> bool {
    match a.score.total_cmp(&b.score) {
        Ordering::Less => true,
        Ordering::Greater => false,
        Ordering::Equal => a.id > b.id,
    }
}

/// Restore the heap (every parent ranks below its children) downwards from `i`.
fn sift_down(h: &mut [Entry], mut i: usize) {
    loop {
        let (l, r) = (2 * i + 1, 2 * i + 2);
        let mut m = i;
        if l < h.len() && worse(&h[l], &h[m]) {
            m = l;
        }
        if r < h.len() && worse(&h[r], &h[m]) {
            m = r;
        }
        if m == i {
            return;
        }
        h.swap(i, m);
        i = m;
    }
}

/// Keep the best `k` of `hits` (score descending, ties by lower id), sorted: a bounded heap
/// whose root is the worst kept entry, O(n log k), then a heapsort. (Hand-written and not
/// generic: the wasm build carries one small routine instead of the standard sorts' instances.)
pub(crate) fn select_top(hits: &mut Vec<(Row, f32)>, k: usize, id_of: &dyn Fn(Row) -> DocId) {
    let mut heap: Vec<Entry> = Vec::with_capacity(k.min(hits.len()));
    for &(row, score) in hits.iter() {
        if heap.len() < k {
            heap.push(Entry {
                score,
                id: id_of(row),
                row,
            });
            let mut i = heap.len() - 1;
            while i > 0 {
                let p = (i - 1) / 2;
                if worse(&heap[i], &heap[p]) {
                    heap.swap(i, p);
                    i = p;
                } else {
                    break;
                }
            }
        } else if k > 0 && score.total_cmp(&heap[0].score) != Ordering::Less {
            let e = Entry {
                score,
                id: id_of(row),
                row,
            };
            if worse(&heap[0], &e) {
                heap[0] = e;
                sift_down(&mut heap, 0);
            }
        }
    }
    // Heapsort: move the worst remaining entry to the end, so the array ends best first.
    let mut n = heap.len();
    while n > 1 {
        heap.swap(0, n - 1);
        n -= 1;
        sift_down(&mut heap[..n], 0);
    }
    hits.clear();
    hits.extend(heap.iter().map(|e| (e.row, e.score)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_vectors() {
        let unit = [0.6f32, 0.8];
        assert_eq!(search_vector(&unit), unit.to_vec());
        let v = search_vector(&[3.0, 4.0]);
        assert!((v[0] - 0.6).abs() < 1e-7 && (v[1] - 0.8).abs() < 1e-7);
        assert_eq!(search_vector(&[0.0, 0.0]), vec![0.0, 0.0]);
    }

    #[test]
    fn top_k_ties_by_id() {
        let mut h = vec![(3, 1.0), (1, 2.0), (2, 1.0), (0, 0.5)];
        select_top(&mut h, 3, &|r| 10 - r as DocId);
        assert_eq!(h, vec![(1, 2.0), (3, 1.0), (2, 1.0)]);
        // Against a full sort, with many ties.
        let mut rng = crate::rng::Rng::new(5);
        for n in [0usize, 1, 7, 100, 1000] {
            for k in [1usize, 3, 10, 2000] {
                let v: Vec<(Row, f32)> = (0..n as Row)
                    .map(|r| (r, (rng.below(20) as f32) * 0.5))
                    .collect();
                let mut want = v.clone();
                want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                want.truncate(k);
                let mut got = v;
                select_top(&mut got, k, &|r| r as DocId);
                assert_eq!(got, want, "n {n} k {k}");
            }
        }
    }
}
