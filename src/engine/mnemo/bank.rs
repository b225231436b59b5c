//! The engine's vector bank: every episode's *search vector* by row, held in a memory-fetch
//! [`FlatBank`] (f32, so scores are exact f32 dot products; on the GPU when the engine has one,
//! always with its CPU mirror), and the vector candidates of a recall — the top `depth` rows by
//! dot product among the allowed rows, the recall's filter passed as the kernel's allow-mask.
//!
//! Search vectors: an embedding whose L2 norm is within 1e-3 of 1 is kept as given (so scores of
//! normalised embeddings are bit-for-bit plain dot products, as the baselines compute); any other
//! is divided by its norm (a zero vector stays zero). The store keeps the embedding as given.
//!
//! Rows: bank row `r` is the engine's row `r` ([`super::rows`]); a removed row is masked out of
//! the bank's live bitset (and is never in a recall's allow-mask either).
//!
//! Paths (see [`VectorPath`], chosen per query by [`VectorBank::search`]):
//! - [`VectorPath::CpuFlat`]: the fetch kernel's CPU path (blocked layout, SIMD-friendly scan,
//!   masked blocks skipped); for `depth` above the kernel's [`MAX_K`] the same scores are
//!   streamed into a bounded heap ([`select_top`]) instead — still exact;
//! - [`VectorPath::GpuFlat`]: the fetch kernel's GPU top-k (`depth ≤ MAX_K`) when the policy
//!   allows it (see [`AUTO_GPU_MIN_BYTES`]).
//!
//! Both are exact up to the last bits of an f32 dot product (a GPU may fuse multiply-add); the
//! engine re-scores every candidate in f64, so the ranking does not depend on the path.

use std::cmp::Ordering;

use crate::compute::{Backend, Compute};
use crate::engine::DocId;
use crate::kernels::fetch::{BankFormat, FetchPath, FlatBank, FlatBankOptions, MAX_K, NO_ID};
use crate::kernels::hier::{HierIndex, SearchOptions};

use super::error::Result;
use super::rows::{Allowed, Row};
use super::FetchPolicy;

/// [`FetchPolicy::Auto`] runs a query's flat top-k on the GPU only when the engine's GPU is a
/// hardware adapter and the allowed rows hold at least this many bytes (rows × dims × 4), i.e.
/// when the CPU scan they would cost is longer than a WebGPU submission + readback (the CPU path
/// scans ~1-2 ms per 16 MiB on the machines measured; a readback costs milliseconds). Software
/// adapters (lavapipe, SwiftShader) always lose to the CPU path: measured through the engine,
/// see README ("Memory engine", vector path).
pub const AUTO_GPU_MIN_BYTES: usize = 16 << 20;

/// The hierarchical index is kept (built, loaded, updated) once the store holds at least this
/// many live episodes, and answers a recall whose filter allows at least this many rows (under
/// the `auto` and `cpu` policies; `webgpu` keeps the exact GPU scan). Measured: see README
/// ("Memory engine", vector path). The index is faster from a few thousand rows, but its recall
/// depends on how clustered the data is: 0.995 on clustered synthetic data and LoCoMo, but 0.833
/// at 100k on the peer benchmark's weakly clustered synthetic set (`make bench-peers`). So the
/// default keeps the exact scan up to 250,000 rows; `index_min_rows` lowers it for data known to
/// cluster.
pub const HIER_MIN_ROWS: usize = 250_000;

/// The deepest candidate list the hierarchical index is asked for (deeper lists — `k` over about
/// 200 — use the exact flat path).
const HIER_MAX_DEPTH: usize = 1024;

/// The beam the engine searches the index with, for an index of `leaves` leaves: a twelfth of the
/// leaves, at least 24 (all of them when fewer). Chosen for recall@10 >= 0.99 against the exact
/// scan: 24 of LoCoMo's 56 leaves gives 0.995 (the kernel's default 8 gives 0.961); at 1M
/// clustered rows a twelfth (~500 leaves) gives 0.998 where the kernel's default 256 gives 0.984
/// (README, hierarchical bank). A restrictive filter widens it further (`SearchOptions::mask`).
pub fn engine_beam(leaves: usize) -> usize {
    (leaves / 12).max(24).min(leaves.max(1))
}

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
    /// No vector search ran (a lexical-only or filter-only recall).
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
#[derive(Debug)]
pub(crate) struct VectorBank {
    dims: usize,
    flat: FlatBank,
    /// The GPU is a software adapter (lavapipe, SwiftShader): `Auto` never picks it.
    software: bool,
    /// The hierarchical index over the live rows (ids = rows), once there are enough of them.
    hier: Option<HierIndex>,
    /// [`HIER_MIN_ROWS`] unless the options say otherwise.
    hier_min_rows: usize,
}

impl VectorBank {
    /// An empty bank on `compute`'s device (if any) with a CPU mirror.
    pub(crate) fn new(compute: &Compute, dims: usize, hier_min_rows: usize) -> Result<Self> {
        let opts = FlatBankOptions {
            format: BankFormat::F32,
            cpu_mirror: true,
            auto_gpu_min_bytes: AUTO_GPU_MIN_BYTES,
            ..FlatBankOptions::default()
        };
        let flat = match FlatBank::new(compute, dims, opts) {
            Ok(f) => f,
            // A GPU that cannot hold the bank (e.g. lost) must not keep the engine from opening.
            Err(_) if compute.gpu_context().is_some() && dims > 0 => {
                FlatBank::new_cpu(dims, BankFormat::F32, 0)
            }
            Err(e) => return Err(e.into()),
        };
        let software = compute
            .adapter_info()
            .is_some_and(|a| a.device_type == "cpu");
        Ok(VectorBank {
            dims,
            flat,
            software,
            hier: None,
            hier_min_rows,
        })
    }

    /// The index's minimum row count.
    pub(crate) fn hier_min_rows(&self) -> usize {
        self.hier_min_rows
    }

    /// Whether the hierarchical index is present.
    pub(crate) fn has_index(&self) -> bool {
        self.hier.is_some()
    }

    /// Forget the index (rebuilt by [`VectorBank::ensure_index`] when needed).
    pub(crate) fn drop_index(&mut self) {
        self.hier = None;
    }

    /// The index's bytes for the engine blob (structure only: the vectors are the bank's rows).
    pub(crate) fn index_bytes(&self) -> Option<Vec<u8>> {
        self.hier.as_ref().map(|h| h.to_bytes(false))
    }

    /// Load a persisted index; `bank` is every row's search vector (row-major, holes zero).
    /// Returns whether it was usable (bytes of another dimension or corrupt: not loaded).
    pub(crate) fn load_index(&mut self, bytes: &[u8], bank: &[f32]) -> bool {
        match HierIndex::from_bytes(bytes, Some(bank)) {
            Ok(h) if h.dims() == self.dims => {
                self.hier = Some(h);
                true
            }
            _ => false,
        }
    }

    /// Make the index hold exactly the live rows `live` (ascending) and re-route `moved` rows
    /// (whose vectors changed since the index was written). Any inconsistency drops the index
    /// (it is rebuilt by [`VectorBank::ensure_index`]).
    pub(crate) fn reconcile_index(&mut self, live: &[Row], moved: &[Row]) {
        let Some(h) = self.hier.as_mut() else {
            return;
        };
        let mut stale: Vec<Row> = h
            .ids()
            .into_iter()
            .filter(|r| live.binary_search(r).is_err())
            .collect();
        stale.extend(moved.iter().copied().filter(|&r| h.contains(r)));
        crate::sort::sort(&mut stale);
        stale.dedup();
        let ok = h.remove(&stale).is_ok();
        let add: Vec<Row> = live.iter().copied().filter(|&r| !h.contains(r)).collect();
        let mut vecs = Vec::with_capacity(add.len() * self.dims);
        for &r in &add {
            vecs.extend_from_slice(&self.flat.row(r as usize).unwrap_or_default());
        }
        if !ok || h.insert(&add, &vecs).is_err() || h.len() != live.len() {
            self.hier = None;
        }
    }

    /// Build the index over `live` (ascending live rows) when there are at least
    /// `hier_min_rows` of them and none exists; drop it when they fall under half that.
    pub(crate) fn ensure_index(&mut self, live: &[Row]) {
        let n = live.len();
        if self.hier.is_some() {
            if n < self.hier_min_rows / 2 {
                self.hier = None;
            }
            return;
        }
        if n == 0 || n < self.hier_min_rows {
            return;
        }
        let mut vecs = Vec::with_capacity(n * self.dims);
        for &r in live {
            vecs.extend_from_slice(&self.flat.row(r as usize).unwrap_or_default());
        }
        self.hier = HierIndex::build(&vecs, self.dims, Some(live), None).ok();
    }

    /// Rows, holes included.
    pub(crate) fn len(&self) -> usize {
        self.flat.len()
    }

    /// The search vector of row `r` (a copy from the CPU mirror: the exact f32 values).
    pub(crate) fn row(&self, r: Row) -> Vec<f32> {
        self.flat
            .row(r as usize)
            .unwrap_or_else(|| vec![0.0; self.dims])
    }

    /// Append search vectors (row-major) of new live episodes; they get the next rows (uploads
    /// only these rows) and join the index, if there is one.
    pub(crate) async fn append(&mut self, rows: &[f32]) -> Result<()> {
        let range = match self.flat.append(rows).await {
            Ok(r) => r,
            Err(_) if self.flat.has_gpu() => {
                // The GPU failed (e.g. device lost): keep serving from the CPU mirror.
                self.degrade_to_cpu();
                self.flat.append_cpu(rows)?
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(h) = self.hier.as_mut() {
            let ids: Vec<Row> = range.map(|r| r as Row).collect();
            if h.insert(&ids, rows).is_err() {
                self.hier = None;
            }
        }
        Ok(())
    }

    /// Replace row `r`'s search vector.
    pub(crate) async fn set_row(&mut self, r: Row, v: &[f32]) -> Result<()> {
        match self.flat.set_row(r as usize, v).await {
            Ok(()) => {}
            Err(_) if self.flat.has_gpu() => {
                self.degrade_to_cpu();
                self.flat.set_row(r as usize, v).await?;
            }
            Err(e) => return Err(e.into()),
        }
        if let Some(h) = self.hier.as_mut() {
            if h.contains(r) && (h.remove(&[r]).is_err() || h.insert(&[r], v).is_err()) {
                self.hier = None;
            }
        }
        Ok(())
    }

    /// Replace the bank by a CPU-only copy of its mirror (after a GPU failure: a write of the
    /// store has committed, so the indexes must follow it without the GPU).
    fn degrade_to_cpu(&mut self) {
        let n = self.flat.len();
        let mut all = Vec::with_capacity(n * self.dims);
        for i in 0..n {
            all.extend(self.flat.row(i).unwrap_or_else(|| vec![0.0; self.dims]));
        }
        let mut cpu = FlatBank::new_cpu(self.dims, BankFormat::F32, n);
        let _ = cpu.append_cpu(&all);
        for i in (0..n).filter(|&i| !self.flat.is_live(i)) {
            let _ = cpu.remove(i);
        }
        self.flat = cpu;
    }

    /// Row `r` was removed: it is masked out of the bank (and of every allow-set).
    pub(crate) fn remove(&mut self, r: Row) {
        let _ = self.flat.remove(r as usize);
        if let Some(h) = self.hier.as_mut() {
            if h.contains(r) && h.remove(&[r]).is_err() {
                self.hier = None;
            }
        }
    }

    /// Where `policy` runs a flat top-k over `allowed_rows` rows.
    pub(crate) fn choose(&self, policy: FetchPolicy, allowed_rows: usize) -> FetchPath {
        if !self.flat.has_gpu() {
            return FetchPath::Cpu;
        }
        match policy {
            FetchPolicy::Cpu => FetchPath::Cpu,
            FetchPolicy::Gpu => FetchPath::Gpu,
            FetchPolicy::Auto => {
                if !self.software && allowed_rows * self.dims * 4 >= AUTO_GPU_MIN_BYTES {
                    FetchPath::Gpu
                } else {
                    FetchPath::Cpu
                }
            }
        }
    }

    /// The `depth` best allowed rows for `q` (a search vector), best first (ties by lower id),
    /// on the path `policy` picks (see the module documentation).
    pub(crate) async fn search(
        &self,
        q: &[f32],
        depth: usize,
        allowed: &Allowed,
        policy: FetchPolicy,
        id_of: &dyn Fn(Row) -> DocId,
    ) -> Result<Candidates> {
        let depth = depth.min(allowed.len());
        if depth == 0 {
            return Ok(Candidates {
                hits: Vec::new(),
                path: VectorPath::CpuFlat,
            });
        }
        let mask = Some(&allowed.mask[..]);
        let mut hits: Vec<(Row, f32)>;
        let path;
        let hier = self.hier.as_ref().filter(|_| {
            policy != FetchPolicy::Gpu
                && allowed.len() >= self.hier_min_rows
                && depth <= HIER_MAX_DEPTH
        });
        // The index answers when its probed leaves hold `depth` allowed rows; otherwise (a very
        // deep list) the flat path does.
        let found = hier.and_then(|h| {
            let beam = engine_beam(h.stats().leaves);
            let o = SearchOptions {
                k: depth,
                beam: Some(beam),
                mask,
            };
            h.search(q, &o)
                .ok()
                .filter(|r| r.ids.iter().filter(|&&i| i != NO_ID).count() >= depth)
        });
        if let Some(r) = found {
            hits = r
                .ids
                .iter()
                .zip(&r.scores)
                .filter(|(&i, _)| i != NO_ID)
                .map(|(&i, &s)| (i, s))
                .collect();
            path = VectorPath::Hierarchical;
        } else if depth > MAX_K {
            // Deeper than the kernel's k: every allowed row's score (the CPU path's sums) into a
            // bounded heap.
            hits = Vec::with_capacity(allowed.len());
            self.flat
                .for_each_score_cpu(q, mask, |r, s| hits.push((r, s)))?;
            path = VectorPath::CpuFlat;
        } else {
            let want = self.choose(policy, allowed.len());
            let res = match want {
                FetchPath::Gpu => match self.flat.topk_gpu(q, depth, mask).await {
                    Ok(r) => Ok((r, VectorPath::GpuFlat)),
                    // Auto never fails over a GPU fault: the CPU mirror answers.
                    Err(_) if policy == FetchPolicy::Auto => self
                        .flat
                        .topk_cpu(q, depth, mask)
                        .map(|r| (r, VectorPath::CpuFlat)),
                    Err(e) => Err(e),
                },
                _ => self
                    .flat
                    .topk_cpu(q, depth, mask)
                    .map(|r| (r, VectorPath::CpuFlat)),
            };
            let (r, p) = res?;
            hits = r
                .ids_of(0)
                .iter()
                .zip(r.scores_of(0))
                .filter(|(&i, _)| i != NO_ID)
                .map(|(&i, &s)| (i, s))
                .collect();
            path = p;
        }
        // Ties by lower id (the kernel breaks them by lower row; rows are in id order except
        // after an out-of-order insert).
        select_top(&mut hits, depth, id_of);
        Ok(Candidates { hits, path })
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
