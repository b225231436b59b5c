//! The k-means tree: arena of nodes, build, beam search, incremental insert/remove with splits.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::dot::dot;
use super::kmeans::{
    best_centroid, kmeanspp, run_ready, sample_indices, set_bias, two_means, CpuEngine, Group,
    KmeansEngine, LevelProblem,
};
use super::topk::{mask_allows, TopK};
use super::{auto_beam, invalid, HierConfig, HierError};
use crate::compute::Backend;
use crate::kernels::{check_finite, rows_of, KernelError};
use crate::rng::Rng;

pub(crate) const NO_NODE: u32 = u32::MAX;

static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A generation number never handed out before (so GPU mirrors of different indices, or of
/// different states of one index, never compare equal).
pub(crate) fn next_generation() -> u64 {
    GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A multiplicative hasher for `u32` ids (the default SipHash is needlessly slow here).
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x0100_0000_01B3);
        }
    }
    fn write_u32(&mut self, i: u32) {
        self.0 = (i as u64 ^ 0x9E37_79B9_7F4A_7C15).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        self.0 ^= self.0 >> 29;
    }
}

pub(crate) type IdMap<V> = HashMap<u32, V, BuildHasherDefault<IdHasher>>;

/// An internal node: the centroids of its children (stride `d + 1`, bias last).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Internal {
    pub parent: u32,
    pub children: Vec<u32>,
    pub cents: Vec<f32>,
    /// Rows in the subtree.
    pub rows: u64,
}

/// A leaf: its rows' ids and vectors (contiguous).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Leaf {
    pub parent: u32,
    pub ids: Vec<u32>,
    pub vecs: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Internal(Internal),
    Leaf(Leaf),
    Free,
}

/// A hierarchical (k-means tree) index over the rows of a bank. See the module docs of
/// [`crate::kernels::hier`].
#[derive(Debug, Clone)]
pub struct HierIndex {
    pub(crate) d: usize,
    pub(crate) cfg: HierConfig,
    pub(crate) nodes: Vec<Node>,
    pub(crate) free: Vec<u32>,
    pub(crate) root: u32,
    /// Levels of internal nodes (root = level 0); leaves are children of level `height - 1`.
    pub(crate) height: usize,
    pub(crate) loc: IdMap<(u32, u32)>,
    pub(crate) generation: u64,
    pub(crate) built_on: Backend,
}

/// Options of a search.
#[derive(Debug, Clone, Copy, Default)]
pub struct SearchOptions<'a> {
    /// Results per query (at least 1).
    pub k: usize,
    /// Nodes kept per level; `None` is [`auto_beam`] of the leaf count.
    pub beam: Option<usize>,
    /// Allow-mask: bit `id` of the little-endian `u32` words must be set for row `id` to be
    /// returned. With a mask the beam is widened by `rows / allowed` (capped at the leaf count)
    /// so that restrictive filters keep their recall.
    pub mask: Option<&'a [u32]>,
}

/// What a search read (totals over the queries of the call).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SearchStats {
    /// Centroids scored while routing.
    pub centroids_scanned: u64,
    /// Rows scored in the probed leaves.
    pub rows_scanned: u64,
    /// Leaves probed.
    pub leaves_probed: u64,
    /// Bytes read: centroids (`(d + 1) × 4` each), scored rows (`d × 4 + 4` each, vector and id),
    /// ids of rows skipped by the mask (4 each).
    pub bytes_read: u64,
}

/// Results of a search: row-major `[B, k]`, sorted by score (ties: lower id), padded with
/// ([`NO_ID`](super::topk::NO_ID), `-inf`) when fewer than `k` rows are eligible.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchResult {
    /// Results per query.
    pub k: usize,
    /// Row ids.
    pub ids: Vec<u32>,
    /// Dot-product scores.
    pub scores: Vec<f32>,
    /// What was read.
    pub stats: SearchStats,
}

/// Shape and size of an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct HierStats {
    /// Rows in the index.
    pub rows: usize,
    /// Dimensions.
    pub dims: usize,
    /// Leaves (including empty ones).
    pub leaves: usize,
    /// Internal nodes.
    pub internal_nodes: usize,
    /// Levels of internal nodes.
    pub height: usize,
    /// Largest leaf.
    pub max_leaf_rows: usize,
    /// Smallest leaf.
    pub min_leaf_rows: usize,
    /// Most children of one internal node.
    pub max_fanout: usize,
    /// Build branching factor.
    pub branching: usize,
    /// Leaf split threshold.
    pub max_leaf: usize,
    /// Bytes held (vectors, ids, centroids).
    pub bytes: usize,
    /// The default beam ([`auto_beam`] of the leaf count).
    pub default_beam: usize,
}

impl HierIndex {
    /// An empty index of `d` dimensions.
    pub fn empty(d: usize, cfg: HierConfig) -> Result<HierIndex, HierError> {
        if d == 0 {
            return Err(invalid("dims", "must be at least 1"));
        }
        cfg.validate()?;
        Ok(HierIndex {
            d,
            cfg,
            nodes: vec![Node::Internal(Internal {
                parent: NO_NODE,
                children: Vec::new(),
                cents: Vec::new(),
                rows: 0,
            })],
            free: Vec::new(),
            root: 0,
            height: 1,
            loc: IdMap::default(),
            generation: next_generation(),
            built_on: Backend::Cpu,
        })
    }

    /// Build on the CPU over `bank` (`[N, d]`); row `i` gets id `ids[i]` (or `i`). `cfg` defaults
    /// to [`HierConfig::auto`].
    pub fn build(
        bank: &[f32],
        d: usize,
        ids: Option<&[u32]>,
        cfg: Option<HierConfig>,
    ) -> Result<HierIndex, HierError> {
        let n = check_bank(bank, d, ids)?;
        let cfg = cfg.unwrap_or_else(|| HierConfig::auto(n));
        let mut engine = CpuEngine { bank };
        run_ready(build_with(bank, d, ids, cfg, &mut engine, Backend::Cpu))
    }

    /// Dimensions.
    pub fn dims(&self) -> usize {
        self.d
    }

    /// Rows in the index.
    pub fn len(&self) -> usize {
        self.loc.len()
    }

    /// `true` when the index holds no row.
    pub fn is_empty(&self) -> bool {
        self.loc.is_empty()
    }

    /// The build configuration.
    pub fn config(&self) -> &HierConfig {
        &self.cfg
    }

    /// Levels of internal nodes (the tree depth; it grows when the root splits).
    pub fn height(&self) -> usize {
        self.height
    }

    /// Which path built the index.
    pub fn built_on(&self) -> Backend {
        self.built_on
    }

    /// Changes on every mutation (GPU mirrors use it to know they are stale).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// `true` when row `id` is in the index.
    pub fn contains(&self, id: u32) -> bool {
        self.loc.contains_key(&id)
    }

    /// The vector of row `id`.
    pub fn vector(&self, id: u32) -> Option<&[f32]> {
        let &(leaf, slot) = self.loc.get(&id)?;
        match &self.nodes[leaf as usize] {
            Node::Leaf(l) => Some(&l.vecs[slot as usize * self.d..(slot as usize + 1) * self.d]),
            _ => None,
        }
    }

    /// Gather: the vectors of `ids`, row-major `[ids.len(), d]` (zeros for ids not in the index,
    /// e.g. the padding of a search result).
    pub fn gather(&self, ids: &[u32]) -> Vec<f32> {
        let mut out = vec![0.0f32; ids.len() * self.d];
        for (o, &id) in out.chunks_exact_mut(self.d).zip(ids) {
            if let Some(v) = self.vector(id) {
                o.copy_from_slice(v);
            }
        }
        out
    }

    /// Every row id, in leaf order.
    pub fn ids(&self) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.len());
        for leaf in self.leaves_in_order() {
            if let Node::Leaf(l) = &self.nodes[leaf as usize] {
                out.extend_from_slice(&l.ids);
            }
        }
        out
    }

    /// Rows per leaf, in the leaf order of [`HierIndex::ids`].
    pub fn leaf_sizes(&self) -> Vec<usize> {
        self.leaves_in_order()
            .iter()
            .map(|&l| match &self.nodes[l as usize] {
                Node::Leaf(x) => x.ids.len(),
                _ => 0,
            })
            .collect()
    }

    /// Leaves in depth-first (= breadth-first per level) child order.
    pub(crate) fn leaves_in_order(&self) -> Vec<u32> {
        let mut level = vec![self.root];
        for _ in 0..self.height {
            let mut next = Vec::new();
            for &n in &level {
                if let Node::Internal(i) = &self.nodes[n as usize] {
                    next.extend_from_slice(&i.children);
                }
            }
            level = next;
        }
        level
    }

    /// Shape and size.
    pub fn stats(&self) -> HierStats {
        let mut s = HierStats {
            rows: self.len(),
            dims: self.d,
            leaves: 0,
            internal_nodes: 0,
            height: self.height,
            max_leaf_rows: 0,
            min_leaf_rows: usize::MAX,
            max_fanout: 0,
            branching: self.cfg.branching,
            max_leaf: self.cfg.max_leaf,
            bytes: 0,
            default_beam: 0,
        };
        for n in &self.nodes {
            match n {
                Node::Internal(i) => {
                    s.internal_nodes += 1;
                    s.max_fanout = s.max_fanout.max(i.children.len());
                    s.bytes += i.cents.len() * 4 + i.children.len() * 4;
                }
                Node::Leaf(l) => {
                    s.leaves += 1;
                    s.max_leaf_rows = s.max_leaf_rows.max(l.ids.len());
                    s.min_leaf_rows = s.min_leaf_rows.min(l.ids.len());
                    s.bytes += l.vecs.len() * 4 + l.ids.len() * 4;
                }
                Node::Free => {}
            }
        }
        if s.leaves == 0 {
            s.min_leaf_rows = 0;
        }
        s.default_beam = auto_beam(s.leaves);
        s
    }

    fn leaf_count(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| matches!(n, Node::Leaf(_)))
            .count()
    }

    /// Check the arguments of a search; returns the number of queries and the beam to use.
    pub fn check_search(
        &self,
        queries: &[f32],
        opts: &SearchOptions,
    ) -> Result<(usize, usize), HierError> {
        let b = rows_of("queries", queries, self.d).map_err(|e| match e {
            KernelError::Shape { got, .. } if self.d > 0 && got % self.d != 0 => {
                KernelError::DimensionMismatch {
                    name: "queries",
                    expected: self.d,
                    got: got % self.d,
                }
            }
            e => e,
        })?;
        if b == 0 {
            return Err(invalid("queries", "at least one query is required"));
        }
        if opts.k == 0 {
            return Err(invalid("k", "must be at least 1"));
        }
        if opts.k > 1 << 20 {
            return Err(invalid(
                "k",
                format!("must be at most 1048576, got {}", opts.k),
            ));
        }
        if opts.beam == Some(0) {
            return Err(invalid("beam", "must be at least 1"));
        }
        check_finite("queries", queries)?;
        let leaves = self.leaf_count().max(1);
        let mut beam = opts.beam.unwrap_or_else(|| auto_beam(leaves));
        if let Some(mask) = opts.mask {
            let allowed: u64 = mask.iter().map(|w| w.count_ones() as u64).sum();
            let rows = self.len().max(1) as u64;
            if allowed > 0 && allowed < rows {
                let widened = (beam as u64 * rows).div_ceil(allowed.max(1));
                beam = widened.min(leaves as u64).max(beam as u64) as usize;
            }
        }
        Ok((b, beam.min(leaves.max(1)).max(1)))
    }

    /// Beam search (see the module docs), on the CPU.
    pub fn search(&self, queries: &[f32], opts: &SearchOptions) -> Result<SearchResult, HierError> {
        let (b, beam) = self.check_search(queries, opts)?;
        let mut res = SearchResult {
            k: opts.k,
            ids: Vec::with_capacity(b * opts.k),
            scores: Vec::with_capacity(b * opts.k),
            stats: SearchStats::default(),
        };
        let mut scratch = Scratch::default();
        let mut top = TopK::new(opts.k);
        for q in queries.chunks_exact(self.d) {
            top.clear();
            self.route(q, beam, &mut scratch, &mut res.stats);
            self.scan_leaves(q, &scratch.frontier, opts.mask, &mut top, &mut res.stats);
            top.write_padded(&mut res.ids, &mut res.scores);
        }
        Ok(res)
    }

    /// The leaves a query's beam search probes (for tests and the GPU comparison), and the
    /// smallest score gap at a beam boundary on the way (near-ties there may route differently
    /// under other rounding).
    pub fn probe(&self, query: &[f32], beam: usize) -> (Vec<u32>, f32) {
        let mut scratch = Scratch::default();
        let mut stats = SearchStats::default();
        self.route(query, beam, &mut scratch, &mut stats);
        let mut leaves = scratch.frontier.clone();
        crate::sort::sort(&mut leaves);
        (leaves, scratch.min_gap)
    }

    fn route(&self, q: &[f32], beam: usize, s: &mut Scratch, stats: &mut SearchStats) {
        let d = self.d;
        s.frontier.clear();
        s.frontier.push(self.root);
        s.min_gap = f32::INFINITY;
        for _ in 0..self.height {
            s.cand.clear();
            for &n in &s.frontier {
                if let Node::Internal(node) = &self.nodes[n as usize] {
                    for (row, &child) in node.cents.chunks_exact(d + 1).zip(&node.children) {
                        s.cand.push((dot(q, &row[..d]) + row[d], child));
                    }
                    stats.centroids_scanned += node.children.len() as u64;
                    stats.bytes_read += (node.children.len() * (d + 1) * 4) as u64;
                }
            }
            if s.cand.len() > beam {
                let cmp = |a: &(f32, u32), b: &(f32, u32)| {
                    b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1))
                };
                crate::sort::select_nth_by(&mut s.cand, beam, cmp);
                let cut = s.cand[beam].0;
                let kept_min = s.cand[..beam]
                    .iter()
                    .map(|c| c.0)
                    .fold(f32::INFINITY, f32::min);
                s.min_gap = s.min_gap.min(kept_min - cut);
                s.cand.truncate(beam);
            }
            s.frontier.clear();
            s.frontier.extend(s.cand.iter().map(|c| c.1));
        }
    }

    fn scan_leaves(
        &self,
        q: &[f32],
        leaves: &[u32],
        mask: Option<&[u32]>,
        top: &mut TopK,
        stats: &mut SearchStats,
    ) {
        let d = self.d;
        let mut scored = 0u64;
        let mut skipped = 0u64;
        for &leaf in leaves {
            let Node::Leaf(l) = &self.nodes[leaf as usize] else {
                continue;
            };
            stats.leaves_probed += 1;
            match mask {
                None => {
                    scan_rows(q, &l.vecs, &l.ids, d, top);
                    scored += l.ids.len() as u64;
                }
                Some(m) => {
                    for (slot, &id) in l.ids.iter().enumerate() {
                        if !mask_allows(m, id) {
                            skipped += 1;
                            continue;
                        }
                        top.push(dot(q, &l.vecs[slot * d..(slot + 1) * d]), id);
                        scored += 1;
                    }
                }
            }
        }
        stats.rows_scanned += scored;
        stats.bytes_read += scored * (d as u64 * 4 + 4) + skipped * 4;
    }
}

/// Scan every row of a leaf (no mask).
#[inline]
fn scan_rows(q: &[f32], vecs: &[f32], ids: &[u32], d: usize, top: &mut TopK) {
    for (row, &id) in vecs.chunks_exact(d).zip(ids) {
        let s = dot(q, row);
        if s >= top.floor() {
            top.push(s, id);
        }
    }
}

#[derive(Default)]
struct Scratch {
    frontier: Vec<u32>,
    cand: Vec<(f32, u32)>,
    min_gap: f32,
}

pub(crate) fn check_bank(bank: &[f32], d: usize, ids: Option<&[u32]>) -> Result<usize, HierError> {
    let n = rows_of("bank", bank, d)?;
    if n > u32::MAX as usize - 1 {
        return Err(invalid("bank", "too many rows"));
    }
    if let Some(ids) = ids {
        if ids.len() != n {
            return Err(HierError::Kernel(KernelError::Shape {
                name: "ids",
                expected: format!("{n} ids (one per bank row)"),
                got: ids.len(),
            }));
        }
        if let Some(i) = ids.iter().position(|&i| i == u32::MAX) {
            return Err(invalid(
                "ids",
                format!("id 4294967295 (at index {i}) is reserved"),
            ));
        }
    }
    check_finite("bank", bank)?;
    Ok(n)
}

/// The build's control flow over a k-means engine (CPU or GPU): top-down, one level at a time.
pub(crate) async fn build_with<E: KmeansEngine>(
    bank: &[f32],
    d: usize,
    ids: Option<&[u32]>,
    cfg: HierConfig,
    engine: &mut E,
    backend: Backend,
) -> Result<HierIndex, HierError> {
    let n = check_bank(bank, d, ids)?;
    let mut index = HierIndex::empty(d, cfg)?;
    index.built_on = backend;
    let id_of = |pos: u32| ids.map_or(pos, |v| v[pos as usize]);
    {
        let mut seen = IdMap::<()>::default();
        seen.reserve(n);
        for pos in 0..n as u32 {
            if seen.insert(id_of(pos), ()).is_some() {
                return Err(HierError::DuplicateId { id: id_of(pos) });
            }
        }
    }
    if n == 0 {
        return Ok(index);
    }
    // perm: bank positions, grouped by current node; ranges[g] = (start, end) in perm.
    let mut perm: Vec<u32> = (0..n as u32).collect();
    let mut ranges: Vec<(usize, usize)> = vec![(0, n)];
    let mut owners: Vec<u32> = vec![index.root];
    for level in 0..cfg.depth {
        let last = level + 1 == cfg.depth;
        let child_target = (n as f64 / (cfg.branching as f64).powi(level as i32 + 1)).max(1.0);
        let mut problem = LevelProblem {
            d,
            ..Default::default()
        };
        let mut train_points: Vec<Vec<u32>> = Vec::with_capacity(ranges.len());
        for (g, &(start, end)) in ranges.iter().enumerate() {
            let size = end - start;
            let k = ((size as f64 / child_target).round() as usize).clamp(1, cfg.max_fanout());
            let k = k.min(size);
            let mut rng = Rng::new(
                cfg.seed
                    ^ (level as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    ^ (g as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F),
            );
            let m = (k * cfg.train_per_centroid).min(size);
            let sample: Vec<u32> = sample_indices(size, m, &mut rng)
                .into_iter()
                .map(|i| perm[start + i as usize])
                .collect();
            let cents = kmeanspp(bank, d, &sample, k, &mut rng);
            problem.groups.push(Group {
                pstart: 0,
                pcount: 0,
                cstart: problem.cgrp.len() as u32,
                ccount: k as u32,
            });
            problem.cgrp.extend(std::iter::repeat_n(g as u32, k));
            problem.cents.extend_from_slice(&cents);
            train_points.push(sample);
        }
        let refs: Vec<&[u32]> = train_points.iter().map(Vec::as_slice).collect();
        let mut train = problem.with_points(&refs);
        if cfg.iterations > 0 {
            engine.train(&mut train, cfg.iterations).await?;
        }
        drop(train_points);
        // Assign every point with the trained centroids.
        let all: Vec<&[u32]> = ranges.iter().map(|&(s, e)| &perm[s..e]).collect();
        let mut full = train.with_points(&all);
        full.cents = std::mem::take(&mut train.cents);
        let assign = engine.assign(&full).await?;
        // Stable partition of each group by centroid; one child per non-empty centroid.
        let mut next_ranges = Vec::new();
        let mut next_owners = Vec::new();
        for (g, &(start, end)) in ranges.iter().enumerate() {
            let grp = full.groups[g];
            let (c0, kc) = (grp.cstart as usize, grp.ccount as usize);
            let a = &assign[grp.pstart as usize..(grp.pstart + grp.pcount) as usize];
            let mut counts = vec![0usize; kc];
            for &c in a {
                counts[c as usize - c0] += 1;
            }
            let mut offs = vec![0usize; kc + 1];
            for c in 0..kc {
                offs[c + 1] = offs[c] + counts[c];
            }
            let mut sorted = vec![0u32; end - start];
            let mut fill = offs.clone();
            for (&pos, &c) in perm[start..end].iter().zip(a) {
                let c = c as usize - c0;
                sorted[fill[c]] = pos;
                fill[c] += 1;
            }
            perm[start..end].copy_from_slice(&sorted);
            let owner = owners[g];
            for c in 0..kc {
                if counts[c] == 0 {
                    continue;
                }
                let crow = &full.cents[(c0 + c) * (d + 1)..(c0 + c + 1) * (d + 1)];
                let child = if last {
                    let mut leaf = Leaf {
                        parent: owner,
                        ids: Vec::with_capacity(counts[c]),
                        vecs: Vec::with_capacity(counts[c] * d),
                    };
                    for &pos in &perm[start + offs[c]..start + offs[c + 1]] {
                        leaf.ids.push(id_of(pos));
                        leaf.vecs
                            .extend_from_slice(&bank[pos as usize * d..(pos as usize + 1) * d]);
                    }
                    index.alloc(Node::Leaf(leaf))
                } else {
                    index.alloc(Node::Internal(Internal {
                        parent: owner,
                        children: Vec::new(),
                        cents: Vec::new(),
                        rows: counts[c] as u64,
                    }))
                };
                let Node::Internal(o) = &mut index.nodes[owner as usize] else {
                    unreachable!("owners are internal nodes");
                };
                o.children.push(child);
                o.cents.extend_from_slice(crow);
                o.rows = (end - start) as u64;
                next_ranges.push((start + offs[c], start + offs[c + 1]));
                next_owners.push(child);
            }
        }
        ranges = next_ranges;
        owners = next_owners;
        index.height = level + 1;
    }
    // Locations, then split oversized leaves.
    let leaves = index.leaves_in_order();
    index.loc.reserve(n);
    for &leaf in &leaves {
        if let Node::Leaf(l) = &index.nodes[leaf as usize] {
            for (slot, &id) in l.ids.iter().enumerate() {
                index.loc.insert(id, (leaf, slot as u32));
            }
        }
    }
    for leaf in leaves {
        index.split_leaf_if_needed(leaf);
    }
    index.generation = next_generation();
    Ok(index)
}

impl HierIndex {
    pub(crate) fn alloc(&mut self, node: Node) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        }
    }

    fn internal_mut(&mut self, n: u32) -> &mut Internal {
        match &mut self.nodes[n as usize] {
            Node::Internal(i) => i,
            _ => unreachable!("node {n} is not internal"),
        }
    }

    fn parent_of(&self, n: u32) -> u32 {
        match &self.nodes[n as usize] {
            Node::Internal(i) => i.parent,
            Node::Leaf(l) => l.parent,
            Node::Free => NO_NODE,
        }
    }

    fn set_parent(&mut self, n: u32, p: u32) {
        match &mut self.nodes[n as usize] {
            Node::Internal(i) => i.parent = p,
            Node::Leaf(l) => l.parent = p,
            Node::Free => {}
        }
    }

    fn rows_of_node(&self, n: u32) -> u64 {
        match &self.nodes[n as usize] {
            Node::Internal(i) => i.rows,
            Node::Leaf(l) => l.ids.len() as u64,
            Node::Free => 0,
        }
    }

    fn add_rows_up(&mut self, mut n: u32, delta: i64) {
        while n != NO_NODE {
            let p = self.parent_of(n);
            if let Node::Internal(i) = &mut self.nodes[n as usize] {
                i.rows = (i.rows as i64 + delta).max(0) as u64;
            }
            n = p;
        }
    }

    /// The leaf a vector is routed to at beam 1 (greedy descent), creating the first leaf of an
    /// empty index.
    fn route_one(&mut self, x: &[f32]) -> u32 {
        if self.is_empty() && self.node_children(self.root).is_empty() {
            // Reset to a root with one empty leaf whose centroid is x.
            self.nodes.clear();
            self.free.clear();
            self.nodes.push(Node::Internal(Internal {
                parent: NO_NODE,
                children: vec![1],
                cents: Vec::new(),
                rows: 0,
            }));
            self.nodes.push(Node::Leaf(Leaf {
                parent: 0,
                ids: Vec::new(),
                vecs: Vec::new(),
            }));
            self.root = 0;
            self.height = 1;
            let cents = &mut self.internal_mut(0).cents;
            cents.extend_from_slice(x);
            cents.push(0.0);
            set_bias(cents);
        }
        let mut n = self.root;
        loop {
            match &self.nodes[n as usize] {
                Node::Internal(i) => {
                    let c = best_centroid(x, &i.cents, 0, i.children.len())
                        .expect("internal nodes on a routing path have children");
                    n = i.children[c as usize];
                }
                _ => return n,
            }
        }
    }

    fn node_children(&self, n: u32) -> &[u32] {
        match &self.nodes[n as usize] {
            Node::Internal(i) => &i.children,
            _ => &[],
        }
    }

    /// Add rows (`vectors` `[ids.len(), d]`). Every id must be new. Each row joins the leaf it
    /// routes to; leaves over `max_leaf` rows are split (and internal nodes over `2 × branching`
    /// children, up to the root). Nothing changes when an argument is rejected.
    pub fn insert(&mut self, ids: &[u32], vectors: &[f32]) -> Result<(), HierError> {
        let n = rows_of("vectors", vectors, self.d).map_err(|e| match e {
            KernelError::Shape { got, .. } => KernelError::DimensionMismatch {
                name: "vectors",
                expected: self.d,
                got: got % self.d,
            },
            e => e,
        })?;
        check_bank(vectors, self.d, Some(ids)).map_err(|e| match e {
            HierError::Kernel(KernelError::Shape { expected, got, .. }) => {
                HierError::Kernel(KernelError::Shape {
                    name: "ids",
                    expected,
                    got,
                })
            }
            e => e,
        })?;
        let mut batch = IdMap::<()>::default();
        for &id in ids {
            if self.loc.contains_key(&id) || batch.insert(id, ()).is_some() {
                return Err(HierError::DuplicateId { id });
            }
        }
        let d = self.d;
        for (i, &id) in ids.iter().enumerate().take(n) {
            let x = &vectors[i * d..(i + 1) * d];
            let leaf = self.route_one(x);
            let slot = match &mut self.nodes[leaf as usize] {
                Node::Leaf(l) => {
                    l.ids.push(id);
                    l.vecs.extend_from_slice(x);
                    l.ids.len() - 1
                }
                _ => unreachable!("routing ends at a leaf"),
            };
            self.loc.insert(id, (leaf, slot as u32));
            let parent = self.parent_of(leaf);
            self.add_rows_up(parent, 1);
            self.move_centroids(leaf, x, 1.0);
            self.split_leaf_if_needed(leaf);
        }
        self.generation = next_generation();
        Ok(())
    }

    /// Remove rows. Every id must be present. A leaf left empty is detached from the tree.
    /// Nothing changes when an argument is rejected.
    pub fn remove(&mut self, ids: &[u32]) -> Result<(), HierError> {
        let mut batch = IdMap::<()>::default();
        for &id in ids {
            if !self.loc.contains_key(&id) {
                return Err(HierError::UnknownId { id });
            }
            if batch.insert(id, ()).is_some() {
                return Err(invalid("ids", format!("id {id} appears twice")));
            }
        }
        let d = self.d;
        for &id in ids {
            let (leaf, slot) = self.loc.remove(&id).expect("checked above");
            let mut removed_vec = Vec::new();
            let (moved, now_empty) = match &mut self.nodes[leaf as usize] {
                Node::Leaf(l) => {
                    let s = slot as usize;
                    removed_vec.extend_from_slice(&l.vecs[s * d..(s + 1) * d]);
                    let last = l.ids.len() - 1;
                    l.ids.swap_remove(s);
                    if s != last {
                        let (head, tail) = l.vecs.split_at_mut(last * d);
                        head[s * d..(s + 1) * d].copy_from_slice(&tail[..d]);
                    }
                    l.vecs.truncate(last * d);
                    (
                        if s != last { Some(l.ids[s]) } else { None },
                        l.ids.is_empty(),
                    )
                }
                _ => unreachable!("locations point at leaves"),
            };
            if let Some(m) = moved {
                self.loc.insert(m, (leaf, slot));
            }
            let parent = self.parent_of(leaf);
            self.add_rows_up(parent, -1);
            if !now_empty {
                let x = removed_vec.as_slice();
                self.move_centroids(leaf, x, -1.0);
            }
            if now_empty {
                self.detach(leaf);
            }
        }
        self.generation = next_generation();
        Ok(())
    }

    /// Keep the centroids of `leaf` and of its ancestors the running means of their rows after
    /// `x` joined (`sign = 1`) or left (`sign = -1`) the leaf (row counts already updated).
    fn move_centroids(&mut self, leaf: u32, x: &[f32], sign: f32) {
        let d = self.d;
        let mut n = leaf;
        loop {
            let p = self.parent_of(n);
            if p == NO_NODE {
                return;
            }
            let rows = self.rows_of_node(n);
            if rows == 0 {
                return;
            }
            let step = sign / rows as f32;
            let parent = self.internal_mut(p);
            let Some(at) = parent.children.iter().position(|&c| c == n) else {
                return;
            };
            let row = &mut parent.cents[at * (d + 1)..(at + 1) * (d + 1)];
            for (c, v) in row[..d].iter_mut().zip(x) {
                *c += (v - *c) * step;
            }
            set_bias(row);
            n = p;
        }
    }

    /// Detach an empty node from its parent (and the parent too if that leaves it childless),
    /// unless it is the root's last path.
    fn detach(&mut self, n: u32) {
        let p = self.parent_of(n);
        if p == NO_NODE {
            return;
        }
        let d = self.d;
        let parent = self.internal_mut(p);
        let Some(at) = parent.children.iter().position(|&c| c == n) else {
            return;
        };
        parent.children.remove(at);
        parent.cents.drain(at * (d + 1)..(at + 1) * (d + 1));
        let parent_empty = parent.children.is_empty();
        self.nodes[n as usize] = Node::Free;
        self.free.push(n);
        if parent_empty {
            if p == self.root {
                // Empty index: the root keeps no children; height resets on the next insert.
                return;
            }
            self.detach(p);
        }
    }

    pub(crate) fn split_leaf_if_needed(&mut self, leaf: u32) {
        let d = self.d;
        let (parent, vecs) = match &self.nodes[leaf as usize] {
            Node::Leaf(l) if l.ids.len() > self.cfg.max_leaf => (l.parent, l.vecs.clone()),
            _ => return,
        };
        let seed = self.cfg.seed ^ (leaf as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let (side, [c0, c1]) = two_means(&vecs, d, None, seed);
        let Node::Leaf(old) = std::mem::replace(&mut self.nodes[leaf as usize], Node::Free) else {
            unreachable!()
        };
        let mut a = Leaf {
            parent,
            ids: Vec::new(),
            vecs: Vec::new(),
        };
        let mut b = a.clone();
        for (i, &s) in side.iter().enumerate() {
            let dst = if s == 0 { &mut a } else { &mut b };
            dst.ids.push(old.ids[i]);
            dst.vecs.extend_from_slice(&old.vecs[i * d..(i + 1) * d]);
        }
        self.nodes[leaf as usize] = Node::Leaf(a);
        let new = self.alloc(Node::Leaf(b));
        for l in [leaf, new] {
            if let Node::Leaf(x) = &self.nodes[l as usize] {
                for (slot, &id) in x.ids.iter().enumerate() {
                    self.loc.insert(id, (l, slot as u32));
                }
            }
        }
        self.replace_child_centroid(parent, leaf, &c0);
        self.add_child(parent, new, &c1);
        // Recurse: a side may still be oversized (very skewed splits).
        self.split_leaf_if_needed(leaf);
        self.split_leaf_if_needed(new);
    }

    fn replace_child_centroid(&mut self, parent: u32, child: u32, c: &[f32]) {
        let d = self.d;
        let p = self.internal_mut(parent);
        let at = p
            .children
            .iter()
            .position(|&x| x == child)
            .expect("child of its parent");
        p.cents[at * (d + 1)..(at + 1) * (d + 1)].copy_from_slice(c);
    }

    fn add_child(&mut self, parent: u32, child: u32, c: &[f32]) {
        self.set_parent(child, parent);
        let p = self.internal_mut(parent);
        p.children.push(child);
        p.cents.extend_from_slice(c);
        if p.children.len() > self.cfg.max_fanout() {
            self.split_internal(parent);
        }
    }

    /// Weighted mean of an internal node's children centroids (by subtree rows), bias set.
    fn mean_centroid(&self, n: u32) -> Vec<f32> {
        let d = self.d;
        let Node::Internal(i) = &self.nodes[n as usize] else {
            unreachable!()
        };
        let mut sum = vec![0.0f64; d];
        let mut total = 0.0f64;
        for (row, &c) in i.cents.chunks_exact(d + 1).zip(&i.children) {
            let w = self.rows_of_node(c).max(1) as f64;
            for (s, x) in sum.iter_mut().zip(&row[..d]) {
                *s += w * *x as f64;
            }
            total += w;
        }
        let mut out: Vec<f32> = sum.iter().map(|s| (s / total.max(1.0)) as f32).collect();
        out.push(0.0);
        set_bias(&mut out);
        out
    }

    fn split_internal(&mut self, n: u32) {
        let d = self.d;
        if n == self.root {
            let c = self.mean_centroid(n);
            let rows = self.rows_of_node(n);
            let new_root = self.alloc(Node::Internal(Internal {
                parent: NO_NODE,
                children: vec![n],
                cents: c,
                rows,
            }));
            self.set_parent(n, new_root);
            self.root = new_root;
            self.height += 1;
        }
        let parent = self.parent_of(n);
        let (cents, children) = match &self.nodes[n as usize] {
            Node::Internal(i) => (i.cents.clone(), i.children.clone()),
            _ => unreachable!(),
        };
        let points: Vec<f32> = cents
            .chunks_exact(d + 1)
            .flat_map(|r| r[..d].iter().copied())
            .collect();
        let weights: Vec<f32> = children
            .iter()
            .map(|&c| self.rows_of_node(c).max(1) as f32)
            .collect();
        let seed = self.cfg.seed ^ (n as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        let (side, _) = two_means(&points, d, Some(&weights), seed);
        let mut keep = Internal {
            parent,
            children: Vec::new(),
            cents: Vec::new(),
            rows: 0,
        };
        let mut moved = keep.clone();
        for (i, &s) in side.iter().enumerate() {
            let dst = if s == 0 { &mut keep } else { &mut moved };
            dst.children.push(children[i]);
            dst.cents
                .extend_from_slice(&cents[i * (d + 1)..(i + 1) * (d + 1)]);
            dst.rows += self.rows_of_node(children[i]);
        }
        let moved_children = moved.children.clone();
        self.nodes[n as usize] = Node::Internal(keep);
        let q = self.alloc(Node::Internal(moved));
        for c in moved_children {
            self.set_parent(c, q);
        }
        let cn = self.mean_centroid(n);
        let cq = self.mean_centroid(q);
        self.replace_child_centroid(parent, n, &cn);
        self.add_child(parent, q, &cq);
    }

    /// A fresh CPU build over the current rows (with `cfg`, or [`HierConfig::auto`] of the row
    /// count): for when many inserts have made leaves smaller than the data now warrants.
    pub fn rebuild(&self, cfg: Option<HierConfig>) -> Result<HierIndex, HierError> {
        let ids = self.ids();
        let bank = self.gather(&ids);
        let cfg = cfg.unwrap_or_else(|| HierConfig {
            seed: self.cfg.seed,
            ..HierConfig::auto(ids.len())
        });
        HierIndex::build(&bank, self.d, Some(&ids), Some(cfg))
    }

    /// Check the tree's invariants (for tests): balanced depth, parent links, locations, counts.
    pub fn check_invariants(&self) -> Result<(), String> {
        let d = self.d;
        let mut seen = 0usize;
        let mut stack = vec![(self.root, 0usize, NO_NODE)];
        while let Some((n, depth, parent)) = stack.pop() {
            match &self.nodes[n as usize] {
                Node::Internal(i) => {
                    if i.parent != parent {
                        return Err(format!("node {n}: parent {} != {parent}", i.parent));
                    }
                    if depth >= self.height {
                        return Err(format!("internal node {n} at depth {depth}"));
                    }
                    if i.cents.len() != i.children.len() * (d + 1) {
                        return Err(format!("node {n}: centroid count"));
                    }
                    if i.children.len() > self.cfg.max_fanout() {
                        return Err(format!("node {n}: {} children", i.children.len()));
                    }
                    let rows: u64 = i.children.iter().map(|&c| self.rows_of_node(c)).sum();
                    if rows != i.rows {
                        return Err(format!("node {n}: rows {} != {rows}", i.rows));
                    }
                    for &c in &i.children {
                        stack.push((c, depth + 1, n));
                    }
                }
                Node::Leaf(l) => {
                    if l.parent != parent {
                        return Err(format!("leaf {n}: parent {} != {parent}", l.parent));
                    }
                    if depth != self.height {
                        return Err(format!("leaf {n} at depth {depth} != {}", self.height));
                    }
                    if l.ids.len() > self.cfg.max_leaf {
                        return Err(format!("leaf {n}: {} rows", l.ids.len()));
                    }
                    for (slot, id) in l.ids.iter().enumerate() {
                        if self.loc.get(id) != Some(&(n, slot as u32)) {
                            return Err(format!("row {id}: location"));
                        }
                    }
                    seen += l.ids.len();
                }
                Node::Free => return Err(format!("free node {n} in the tree")),
            }
        }
        if seen != self.loc.len() {
            return Err(format!("{seen} rows in leaves, {} located", self.loc.len()));
        }
        Ok(())
    }
}
