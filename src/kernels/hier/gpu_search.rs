//! GPU beam search over a hierarchical index: the whole fetch (routing through every level, the
//! exact top-k inside the probed leaves, the gather of the selected rows) is one submission with
//! one readback.
//!
//! [`HierGpu`] mirrors an index on the device in level order (per level: centroids with their
//! bias column, the arena node ids used as tie-breakers, and each entry's child range; the rows
//! in leaf order with their ids). Per level, `hier_scan` scores the children of the current beam
//! and keeps the best `beam` per tile, `select` passes reduce the tiles to one, and `hier_expand`
//! turns the selected entries into the next level's candidate ranges. The leaves are scanned the
//! same way with the allow-mask, keeping `k`; `hier_gather` copies the selected rows into one
//! `[B, k, d]` buffer.
//!
//! What matches the CPU search ([`HierIndex::search`]): the same beam (including the mask
//! widening), the same tie rules (scores, then node id / row id). The results are identical
//! except where float rounding reorders near-ties — at a beam boundary while routing or at the
//! k-th result; [`HierIndex::probe`] reports the routing gap so tests can tell the cases apart.

use super::gpu::dispatch;
use super::topk::NO_ID;
use super::tree::{Node, SearchOptions, SearchResult};
use super::{invalid, HierError, HierIndex, GPU_MAX_K};
use crate::compute::{Backend, Compute};
use crate::gpu::{GpuContext, PipelineKey};

/// Candidates per workgroup tile of `hier_scan` (`TILE` in the shader).
pub const TILE: u32 = 1024;
/// Invocations per workgroup of `hier_scan`.
pub const SCAN_WG: u32 = 256;

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct ScanParams {
    nq: u32,
    d: u32,
    stride: u32,
    has_bias: u32,
    nranges: u32,
    keep: u32,
    tiles: u32,
    use_mask: u32,
    mask_words: u32,
    incount: u32,
    _pad0: u32,
    _pad1: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params4 {
    a: u32,
    b: u32,
    _p0: u32,
    _p1: u32,
}

struct GpuLevel {
    cents: wgpu::Buffer,
    ids: wgpu::Buffer,
    nodes: wgpu::Buffer,
    count: u32,
    /// Largest child range of this level's entries.
    max_children: u32,
}

/// An index mirrored on the GPU (see the module docs). Re-upload after the index changes:
/// [`HierGpu::is_current`] compares generations.
pub struct HierGpu {
    generation: u64,
    d: usize,
    levels: Vec<GpuLevel>,
    rows: wgpu::Buffer,
    row_ids: wgpu::Buffer,
    nrows: usize,
    leaves: usize,
}

impl std::fmt::Debug for HierGpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HierGpu")
            .field("generation", &self.generation)
            .field("rows", &self.nrows)
            .field("levels", &self.levels.len())
            .finish_non_exhaustive()
    }
}

impl HierGpu {
    /// Upload `index`. `Err(GPU_LIMIT)` when its rows do not fit one storage binding.
    pub fn upload(ctx: &GpuContext, index: &HierIndex) -> Result<HierGpu, HierError> {
        ctx.check_alive()?;
        let flat = index.flatten(true);
        ctx.check_binding("hier rows", (flat.rows.len() * 4) as u64)?;
        let mut levels = Vec::with_capacity(flat.levels.len());
        for l in &flat.levels {
            ctx.check_binding("hier level centroids", (l.cents.len() * 4) as u64)?;
            levels.push(GpuLevel {
                cents: upload_nonempty(ctx, "hier level cents", &l.cents),
                ids: upload_nonempty(ctx, "hier level ids", &l.nodes),
                nodes: upload_nonempty(ctx, "hier level ranges", &l.ranges),
                count: l.nodes.len() as u32,
                max_children: l.ranges.iter().map(|r| r[1]).max().unwrap_or(0),
            });
        }
        Ok(HierGpu {
            generation: index.generation(),
            d: index.dims(),
            levels,
            rows: upload_nonempty(ctx, "hier rows", &flat.rows),
            row_ids: upload_nonempty(ctx, "hier row ids", &flat.row_ids),
            nrows: flat.row_ids.len(),
            leaves: flat.levels.last().map_or(0, |l| l.nodes.len()),
        })
    }

    /// `true` when this mirror reflects `index` as it is now.
    pub fn is_current(&self, index: &HierIndex) -> bool {
        self.generation == index.generation() && self.d == index.dims()
    }

    /// Rows mirrored.
    pub fn rows(&self) -> usize {
        self.nrows
    }

    /// Leaves mirrored.
    pub fn leaves(&self) -> usize {
        self.leaves
    }
}

/// Upload `data`, or one zeroed element when it is empty (a binding must hold at least one
/// element of its array type).
fn upload_nonempty<T: bytemuck::Pod + bytemuck::Zeroable>(
    ctx: &GpuContext,
    label: &str,
    data: &[T],
) -> wgpu::Buffer {
    if data.is_empty() {
        ctx.upload(label, &[T::zeroed()])
    } else {
        ctx.upload(label, data)
    }
}

/// A fetch whose outputs stay on the GPU: the selected items (`[B, k]` of (score, id, row
/// position), 12 bytes each) and, when asked, the gathered rows (`[B, k, d]` f32).
pub struct GpuFetch {
    /// Queries.
    pub b: usize,
    /// Results per query.
    pub k: usize,
    /// `[B, k]` items.
    pub items: wgpu::Buffer,
    /// `[B, k, d]` gathered rows (zeros for empty slots).
    pub rows: Option<wgpu::Buffer>,
}

struct Encoded {
    encoder: wgpu::CommandEncoder,
    fetch: GpuFetch,
}

fn item_buffer(ctx: &GpuContext, items: u64) -> Result<wgpu::Buffer, HierError> {
    Ok(ctx.storage("hier items", items.max(1) * 12)?)
}

/// Record scan + select passes over one candidate set; returns the `[nq, keep]` items.
#[allow(clippy::too_many_arguments)]
fn encode_scan(
    ctx: &GpuContext,
    enc: &mut wgpu::CommandEncoder,
    queries: &wgpu::Buffer,
    data: &wgpu::Buffer,
    ids: &wgpu::Buffer,
    mask: &wgpu::Buffer,
    ranges: &wgpu::Buffer,
    base: ScanParams,
    max_candidates: u64,
) -> Result<wgpu::Buffer, HierError> {
    let nq = base.nq;
    let keep = base.keep;
    let mut tiles = max_candidates.div_ceil(TILE as u64).max(1);
    let groups = nq as u64 * tiles;
    if groups > u32::MAX as u64 / 2 {
        return Err(invalid("queries", "too many candidates for one dispatch"));
    }
    let scan = ctx.pipeline(
        &PipelineKey::new(&crate::shaders::HIER_SCAN, "scan").with_constant("WG", SCAN_WG as f64),
    );
    let params = ctx.uniform(
        "hier scan params",
        &ScanParams {
            tiles: tiles as u32,
            ..base
        },
    );
    let mut cur = item_buffer(ctx, groups * keep as u64)?;
    let bg = ctx.bind_group(
        &scan,
        "hier scan",
        &[
            (0, &params),
            (1, queries),
            (2, data),
            (3, ids),
            (4, mask),
            (5, ranges),
            (6, &cur),
        ],
    );
    dispatch(ctx, enc, &scan, &bg, groups as u32, "hier scan");
    let select = ctx.pipeline(
        &PipelineKey::new(&crate::shaders::HIER_SCAN, "select").with_constant("WG", SCAN_WG as f64),
    );
    while tiles > 1 {
        let incount = tiles * keep as u64;
        let out_tiles = incount.div_ceil(TILE as u64);
        let next = item_buffer(ctx, nq as u64 * out_tiles * keep as u64)?;
        let params = ctx.uniform(
            "hier select params",
            &ScanParams {
                nq,
                keep,
                tiles: out_tiles as u32,
                incount: incount as u32,
                ..Default::default()
            },
        );
        let bg = ctx.bind_group(
            &select,
            "hier select",
            &[(0, &params), (6, &next), (7, &cur)],
        );
        dispatch(
            ctx,
            enc,
            &select,
            &bg,
            (nq as u64 * out_tiles) as u32,
            "hier select",
        );
        cur = next;
        tiles = out_tiles;
    }
    Ok(cur)
}

fn encode_fetch(
    ctx: &GpuContext,
    index: &HierIndex,
    mirror: &HierGpu,
    queries: &[f32],
    opts: &SearchOptions,
    gather: bool,
) -> Result<Encoded, HierError> {
    let (b, beam) = index.check_search(queries, opts)?;
    if !mirror.is_current(index) {
        return Err(invalid(
            "mirror",
            "the GPU mirror is stale: upload the index again",
        ));
    }
    if opts.k > GPU_MAX_K || beam > GPU_MAX_K {
        return Err(invalid(
            "k",
            format!(
                "the GPU search supports k and beam up to {GPU_MAX_K} (k = {}, beam = {beam})",
                opts.k
            ),
        ));
    }
    if b > 65_535 {
        return Err(invalid(
            "queries",
            format!("at most 65535 queries, got {b}"),
        ));
    }
    ctx.check_alive()?;
    let d = index.dims();
    let nq = b as u32;
    let qbuf = ctx.upload("hier queries", queries);
    let (mask_buf, mask_words) = match opts.mask {
        Some(m) => {
            ctx.check_binding("hier mask", (m.len() * 4) as u64)?;
            (ctx.upload("hier mask", m), m.len() as u32)
        }
        None => (ctx.upload("hier mask", &[0u32]), 0),
    };
    let mut enc = ctx
        .device()
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("hier fetch"),
        });
    // Level 0: one range, the root's children.
    let c0 = mirror.levels.first().map_or(0, |l| l.count);
    let beam32 = beam as u32;
    let mut r0 = Vec::with_capacity(b * (beam + 1));
    for _ in 0..b {
        r0.push([0u32, 0u32]);
        for _ in 0..beam {
            r0.push([0u32, c0]);
        }
    }
    let mut ranges = ctx.upload("hier ranges", &r0);
    let mut max_candidates = c0 as u64;
    let expand = ctx.pipeline(
        &PipelineKey::new(&crate::shaders::HIER_EXPAND, "expand").with_constant("WG", 64.0),
    );
    for level in &mirror.levels {
        let sel = encode_scan(
            ctx,
            &mut enc,
            &qbuf,
            &level.cents,
            &level.ids,
            &mask_buf,
            &ranges,
            ScanParams {
                nq,
                d: d as u32,
                stride: d as u32 + 1,
                has_bias: 1,
                nranges: beam32,
                keep: beam32,
                ..Default::default()
            },
            max_candidates,
        )?;
        let next = ctx.storage("hier ranges", (b * (beam + 1) * 8) as u64)?;
        let params = ctx.uniform(
            "hier expand params",
            &Params4 {
                a: nq,
                b: beam32,
                _p0: 0,
                _p1: 0,
            },
        );
        let bg = ctx.bind_group(
            &expand,
            "hier expand",
            &[(0, &params), (1, &sel), (2, &level.nodes), (3, &next)],
        );
        dispatch(ctx, &mut enc, &expand, &bg, nq.div_ceil(64), "hier expand");
        ranges = next;
        max_candidates = beam as u64 * level.max_children as u64;
    }
    let k = opts.k as u32;
    let items = encode_scan(
        ctx,
        &mut enc,
        &qbuf,
        &mirror.rows,
        &mirror.row_ids,
        &mask_buf,
        &ranges,
        ScanParams {
            nq,
            d: d as u32,
            stride: d as u32,
            has_bias: 0,
            nranges: beam32,
            keep: k,
            use_mask: u32::from(opts.mask.is_some()),
            mask_words,
            ..Default::default()
        },
        if mirror.levels.is_empty() {
            0
        } else {
            max_candidates
        },
    )?;
    let rows = if gather {
        let out_bytes = (b * opts.k * d * 4) as u64;
        let out = ctx.storage("hier gathered", out_bytes)?;
        let pipeline = ctx.pipeline(
            &PipelineKey::new(&crate::shaders::HIER_GATHER, "gather").with_constant("WG", 64.0),
        );
        let params = ctx.uniform(
            "hier gather params",
            &Params4 {
                a: nq * k,
                b: d as u32,
                _p0: 0,
                _p1: 0,
            },
        );
        let bg = ctx.bind_group(
            &pipeline,
            "hier gather",
            &[(0, &params), (1, &items), (2, &mirror.rows), (3, &out)],
        );
        dispatch(ctx, &mut enc, &pipeline, &bg, nq * k, "hier gather");
        Some(out)
    } else {
        None
    };
    Ok(Encoded {
        encoder: enc,
        fetch: GpuFetch {
            b,
            k: opts.k,
            items,
            rows,
        },
    })
}

/// Fetch on the GPU and keep the outputs there (for models that consume the rows directly).
pub fn fetch_gpu(
    ctx: &GpuContext,
    index: &HierIndex,
    mirror: &HierGpu,
    queries: &[f32],
    opts: &SearchOptions,
    gather: bool,
) -> Result<GpuFetch, HierError> {
    let e = encode_fetch(ctx, index, mirror, queries, opts, gather)?;
    ctx.submit(e.encoder);
    Ok(e.fetch)
}

/// Search on the GPU and read back ids and scores (and the gathered rows `[B, k, d]` when
/// `gather`). Empty slots are ([`NO_ID`], `-inf`) as on the CPU. The stats are not measured on
/// the GPU (zeros).
pub async fn search_gpu(
    ctx: &GpuContext,
    index: &HierIndex,
    mirror: &HierGpu,
    queries: &[f32],
    opts: &SearchOptions<'_>,
    gather: bool,
) -> Result<(SearchResult, Option<Vec<f32>>), HierError> {
    // Argument errors come before any GPU work and before the error scope opens (a scope must
    // always be finished, never dropped).
    let (b, _) = index.check_search(queries, opts)?;
    let k = opts.k;
    let item_bytes = (b * k * 12) as u64;
    let row_bytes = if gather {
        (b * k * index.dims() * 4) as u64
    } else {
        0
    };
    ctx.check_binding("hier fetch out", item_bytes + row_bytes)?;
    let scope = ctx.error_scope();
    let encoded = encode_fetch(ctx, index, mirror, queries, opts, gather).and_then(|e| {
        let mut enc = e.encoder;
        let stage = ctx.storage("hier fetch out", item_bytes + row_bytes)?;
        enc.copy_buffer_to_buffer(&e.fetch.items, 0, &stage, 0, item_bytes);
        if let Some(r) = &e.fetch.rows {
            enc.copy_buffer_to_buffer(r, 0, &stage, item_bytes, row_bytes);
        }
        Ok((enc, stage))
    });
    let read = match encoded {
        Ok((enc, stage)) => Ok(ctx
            .submit_and_read(enc, &stage, item_bytes + row_bytes)
            .await),
        Err(e) => Err(e),
    };
    scope.finish("hier search").await?;
    let words: Vec<u32> = bytemuck::pod_collect_to_vec(&read??);
    let mut res = SearchResult {
        k,
        ids: Vec::with_capacity(b * k),
        scores: Vec::with_capacity(b * k),
        stats: Default::default(),
    };
    for it in words[..b * k * 3].chunks_exact(3) {
        if it[1] == NO_ID {
            res.ids.push(NO_ID);
            res.scores.push(f32::NEG_INFINITY);
        } else {
            res.ids.push(it[1]);
            res.scores.push(f32::from_bits(it[0]));
        }
    }
    let gathered = gather.then(|| {
        words[b * k * 3..]
            .iter()
            .map(|&w| f32::from_bits(w))
            .collect()
    });
    Ok((res, gathered))
}

/// Search on whichever backend `compute` chose, uploading (or refreshing) the mirror in
/// `mirror` as needed. The GPU path is used when there is a device, the index fits and `k` and
/// the beam are within [`GPU_MAX_K`]; otherwise the CPU path. Returns which one ran.
pub async fn search(
    compute: &Compute,
    index: &HierIndex,
    mirror: &mut Option<HierGpu>,
    queries: &[f32],
    opts: &SearchOptions<'_>,
) -> Result<(SearchResult, Backend), HierError> {
    let (_, beam) = index.check_search(queries, opts)?;
    if let Some(ctx) = compute.gpu_context() {
        if opts.k <= GPU_MAX_K && beam <= GPU_MAX_K && !index.is_empty() {
            if !mirror.as_ref().is_some_and(|m| m.is_current(index)) {
                *mirror = None;
                match HierGpu::upload(ctx, index) {
                    Ok(m) => *mirror = Some(m),
                    Err(HierError::Kernel(crate::kernels::KernelError::Gpu(
                        crate::gpu::GpuError::Limit { .. },
                    ))) => {}
                    Err(e) => return Err(e),
                }
            }
            if let Some(m) = mirror.as_ref() {
                let (r, _) = search_gpu(ctx, index, m, queries, opts, false).await?;
                return Ok((r, Backend::Gpu));
            }
        }
    }
    Ok((index.search(queries, opts)?, Backend::Cpu))
}

impl HierIndex {
    /// Largest leaf (for dispatch sizing and tests).
    pub fn max_leaf_rows(&self) -> usize {
        self.nodes
            .iter()
            .map(|n| match n {
                Node::Leaf(l) => l.ids.len(),
                _ => 0,
            })
            .max()
            .unwrap_or(0)
    }
}
