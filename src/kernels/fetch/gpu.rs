//! GPU side of a flat bank: chunked storage that grows without re-uploading, and the launches of
//! the top-k (`shaders/fetch_topk.wgsl`), gather, scatter and copy kernels.
//!
//! Storage: the bank's blocked words (see [`super::format`]) live in chunks, each at most the
//! portable storage-binding limit (128 MiB, or less when the device allows less), a whole number
//! of blocks; every chunk but the last is full. The last chunk grows geometrically (capacity
//! doubles up to the chunk size); growing allocates a bigger buffer and copies the used part
//! GPU-to-GPU (no re-upload from the host). The live bitset grows the same way.
//!
//! Appends and row updates upload only the new rows, row-major, into a small staging buffer
//! (at most [`STAGE_BYTES`]); the scatter kernel writes them into the blocked layout. Deleting a
//! row rewrites one word of the live bitset.
//!
//! Top-k: one query runs two phases: `score1` (every invocation scores 4 rows per round with no
//! barrier into a score scratch, one dispatch per chunk), then one `pick` dispatch over the whole
//! bank (few large workgroups, each offering only rows that beat its list's K-th entry).
//! Several queries run `scorem` on a software adapter (the barrier-free scoring of the whole
//! batch in each workgroup: 4 rows x 4 queries per pass, the bank read from memory once per
//! batch), then `pick` per query; on a GPU `scan` (up to 16 queries per workgroup, selection
//! after every round of 256 rows); `Tuning` overrides the choice. Merge passes reduce the
//! per-workgroup lists to one. The two-phase scans' score scratch (`[B, N]` f32) is kept with
//! the store and reused by later calls (grown when a call needs more, never shrunk), so a query
//! allocates no scratch; calls are ordered on the device queue, so reusing it between
//! submissions is safe.

use super::format::{Layout, BLOCK_ROWS};
use super::TopkResult;
use crate::gpu::{fold_workgroups, GpuContext, GpuError, PipelineKey};
use crate::kernels::KernelError;

/// Invocations per workgroup of every fetch kernel.
pub(crate) const WG: usize = 256;

/// The portable maximum storage-binding size (WebGPU's default limit): chunks never exceed it.
pub const PORTABLE_BINDING_BYTES: u64 = 128 << 20;

/// Largest staging upload per scatter dispatch.
pub const STAGE_BYTES: usize = 8 << 20;

/// Queries per GPU top-k launch (larger batches are split).
pub(crate) const MAX_BATCH: usize = 64;

/// Budget for one candidate-list buffer of the top-k passes.
const CANDIDATE_BYTES: usize = 32 << 20;

/// Smallest capacity (rows) of a freshly allocated chunk.
const MIN_CHUNK_ROWS: usize = 1024;

/// Per-call tuning of the GPU top-k (defaults are chosen per call when `None`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tuning {
    /// Bank rows each workgroup reduces to one list (rounded up to a multiple of 256): the
    /// `scan` workgroups, or the `pick` workgroups of the two-phase scans (default 32 Ki rows on
    /// a software adapter, 4 Ki on a GPU).
    pub rows_per_group: Option<usize>,
    /// Lists each merge workgroup reduces to one (at least 2).
    pub merge_fanin: Option<usize>,
    /// Queries one scan workgroup scores together (1..=16; default 16 on a GPU, fewer when k
    /// is large: each bank row is read once per group of queries; 1 on a software adapter).
    pub queries_per_group: Option<usize>,
    /// Rows each invocation scores per round in the barrier-free scoring passes (`score1`, one
    /// query per workgroup: 1..=8; `scorem`: 1..=4), default 4 (each query vec4 is loaded once
    /// for them).
    pub rows_per_invocation: Option<usize>,
    /// Queries the multi-query barrier-free scoring pass (`scorem`) scores per pass over a
    /// round's rows: 1..=4, default 4 (each bank vec4 is loaded once for them).
    pub queries_per_pass: Option<usize>,
    /// Run B > 1 queries with `scorem` + `pick` (one workgroup scores every query of the batch
    /// with no barrier, then `pick` selects per query: each row read once for the batch). Default: on a
    /// software adapter unless `queries_per_group` is set; `Some(true)` forces it (when the
    /// `[B, N]` score scratch fits one storage binding), `Some(false)` forbids it.
    pub multi_query_scan: Option<bool>,
    /// Decode f16 banks with integer ops instead of `unpack2x16float` (same values; which is
    /// faster depends on the adapter). Default: off.
    pub f16_integer_decode: Option<bool>,
}

pub(crate) struct Chunk {
    pub(crate) buf: wgpu::Buffer,
    pub(crate) cap_rows: usize,
}

/// The GPU copy of a bank.
pub(crate) struct GpuStore {
    pub(crate) layout: Layout,
    /// Rows of a full chunk (a multiple of `BLOCK_ROWS`).
    pub(crate) chunk_rows: usize,
    pub(crate) chunks: Vec<Chunk>,
    pub(crate) live: wgpu::Buffer,
    pub(crate) live_cap_words: usize,
    /// Bytes written from the host through the queue (staging + live words).
    pub(crate) uploaded: u64,
    /// Bytes copied GPU-to-GPU when buffers grew.
    pub(crate) grown: u64,
    /// A software adapter (lavapipe, SwiftShader): tunes the launch defaults.
    pub(crate) software: bool,
    /// The two-phase scans' score scratch, reused across calls (see the module docs).
    scratch: std::sync::Mutex<Option<wgpu::Buffer>>,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct TopkParams {
    rows: u32,
    row0: u32,
    words: u32,
    block_words: u32,
    rounds: u32,
    groups: u32,
    list0: u32,
    lists: u32,
    b: u32,
    use_mask: u32,
    per: u32,
    neg_inf: f32,
    total: u32,
    _p: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GatherParams {
    out_rows: u32,
    block: u32,
    d: u32,
    words: u32,
    block_words: u32,
    row0: u32,
    rows: u32,
    id_limit: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ScatterParams {
    n: u32,
    words: u32,
    hdr: u32,
    block_words: u32,
    dst0: u32,
    _p: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct CopyParams {
    n4: u32,
    _p: [u32; 3],
}

fn entry(binding: u32, buf: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: buf.as_entire_binding(),
    }
}

fn dispatch(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    pipeline: &wgpu::ComputePipeline,
    entries: &[wgpu::BindGroupEntry<'_>],
    groups: usize,
    z: usize,
    label: &str,
) -> Result<(), KernelError> {
    let groups = u32::try_from(groups).map_err(|_| GpuError::Limit {
        what: "workgroups per dispatch",
        needed: groups as u64,
        allowed: u32::MAX as u64,
    })?;
    let bind = ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout: &pipeline.get_bind_group_layout(0),
        entries,
    });
    let (gx, gy) = fold_workgroups(groups, ctx.max_workgroups_per_dim());
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some(label),
        timestamp_writes: None,
    });
    pass.set_pipeline(pipeline);
    pass.set_bind_group(0, &bind, &[]);
    pass.dispatch_workgroups(gx, gy, z as u32);
    Ok(())
}

fn encoder(ctx: &GpuContext, label: &str) -> wgpu::CommandEncoder {
    ctx.device()
        .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) })
}

/// The launch geometry of one top-k call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopkPlan {
    /// Slots per list (k).
    pub k: usize,
    /// Power of two >= k kept in workgroup memory.
    pub k2: usize,
    /// Queries per scan workgroup.
    pub qb: usize,
    /// Query groups (the z dimension of the scan).
    pub qgroups: usize,
    /// The two-phase scan (score every row into a scratch with no barrier, then select):
    /// `score1` (one query per workgroup) or, with `multi_query`, `scorem`; then `pick`.
    pub two_phase: bool,
    /// Every query of the batch in each scoring workgroup (`scorem`; dispatch z = 1).
    pub multi_query: bool,
    /// Rows each invocation scores per round (`score1`, `scorem`; 1 for `scan`).
    pub rows_per_invocation: usize,
    /// Queries scored per pass over a round's rows (`scorem`; 1 otherwise).
    pub queries_per_pass: usize,
    /// f16 rows decoded with integer ops (`F16INT`) instead of `unpack2x16float`.
    pub f16_integer_decode: bool,
    /// Rounds of `256 * rows_per_invocation` rows per scan (or scoring) workgroup.
    pub rounds: usize,
    /// Two-phase scans: rounds of 256 rows per selection (`pick`) workgroup, which covers
    /// `256 * pick_rounds` rows of the whole bank (all chunks) and writes one list; 0 otherwise.
    pub pick_rounds: usize,
    /// First-pass lists per query: scan workgroups per query group summed over chunks, or
    /// `pick` workgroups (two-phase scans).
    pub lists: usize,
    /// Lists per merge workgroup.
    pub fanin: usize,
    /// Largest number of workgroups of one dispatch.
    pub max_dispatch: usize,
}

impl GpuStore {
    /// An empty store for `layout` with room for `capacity` rows.
    pub(crate) fn new(
        ctx: &GpuContext,
        layout: Layout,
        max_chunk_bytes: Option<u64>,
        capacity: usize,
    ) -> Result<GpuStore, KernelError> {
        let limits = ctx.limits();
        let mut limit = PORTABLE_BINDING_BYTES
            .min(limits.max_storage_buffer_binding_size)
            .min(limits.max_buffer_size);
        if let Some(m) = max_chunk_bytes {
            limit = limit.min(m);
        }
        let block_bytes = (layout.block_words() * 4) as u64;
        let blocks = limit / block_bytes;
        if blocks == 0 {
            return Err(GpuError::Limit {
                what: "bank block (8 rows) in one storage binding",
                needed: block_bytes,
                allowed: limit,
            }
            .into());
        }
        let mut store = GpuStore {
            layout,
            chunk_rows: blocks as usize * BLOCK_ROWS,
            chunks: Vec::new(),
            live: Self::buffer(ctx, "fetch live", 4),
            live_cap_words: 1,
            uploaded: 0,
            grown: 0,
            software: ctx.adapter_info().device_type == "cpu",
            scratch: std::sync::Mutex::new(None),
        };
        if capacity > 0 {
            store.reserve(ctx, 0, capacity);
        }
        Ok(store)
    }

    fn buffer(ctx: &GpuContext, label: &str, bytes: u64) -> wgpu::Buffer {
        ctx.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(4).next_multiple_of(4),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        })
    }

    fn chunk_bytes(&self, rows: usize) -> u64 {
        (rows.div_ceil(BLOCK_ROWS) * self.layout.block_words() * 4) as u64
    }

    /// Rows held by chunk `c` when the bank has `n` rows.
    pub(crate) fn rows_in_chunk(&self, c: usize, n: usize) -> usize {
        n.saturating_sub(c * self.chunk_rows).min(self.chunk_rows)
    }

    /// The cached score scratch with at least `bytes` (allocated or grown on demand: to twice
    /// the old size when that fits one binding, so a growing bank does not reallocate per call).
    fn scratch(&self, ctx: &GpuContext, bytes: u64) -> Result<wgpu::Buffer, KernelError> {
        let mut cached = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(buf) = cached.as_ref().filter(|b| b.size() >= bytes) {
            return Ok(buf.clone());
        }
        ctx.check_binding("top-k score scratch", bytes)?;
        let old = cached.as_ref().map_or(0, |b| b.size());
        let limits = ctx.limits();
        let limit = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        let size = bytes.max((2 * old).min(limit));
        let buf = ctx.storage("fetch scan scores", size)?;
        *cached = Some(buf.clone());
        Ok(buf)
    }

    /// Bytes of the cached score scratch (0 before the first two-phase scan).
    pub(crate) fn scratch_bytes(&self) -> u64 {
        let cached = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        cached.as_ref().map_or(0, |b| b.size())
    }

    /// Bytes of GPU memory held by the bank's chunks and live bitset.
    pub(crate) fn capacity_bytes(&self) -> u64 {
        self.chunks.iter().map(|c| c.buf.size()).sum::<u64>() + self.live.size()
    }

    /// Make room for `total` rows when `used` are stored: grow the last chunk (copying its used
    /// part on the GPU) or add chunks, and grow the live bitset. Submits its own commands so that
    /// queue writes issued afterwards land in the new buffers.
    pub(crate) fn reserve(&mut self, ctx: &GpuContext, used: usize, total: usize) {
        let mut enc = encoder(ctx, "fetch grow");
        let mut copies = false;
        let needed = total.div_ceil(self.chunk_rows);
        for c in 0..needed {
            let need = self.rows_in_chunk(c, total);
            if c < self.chunks.len() {
                if self.chunks[c].cap_rows >= need {
                    continue;
                }
                let cap = (self.chunks[c].cap_rows * 2)
                    .max(need)
                    .next_multiple_of(BLOCK_ROWS)
                    .min(self.chunk_rows);
                let buf = Self::buffer(ctx, "fetch bank chunk", self.chunk_bytes(cap));
                let used_bytes = self.chunk_bytes(self.rows_in_chunk(c, used));
                if used_bytes > 0 {
                    enc.copy_buffer_to_buffer(&self.chunks[c].buf, 0, &buf, 0, used_bytes);
                    self.grown += used_bytes;
                    copies = true;
                }
                self.chunks[c] = Chunk { buf, cap_rows: cap };
            } else {
                let cap = need
                    .max(MIN_CHUNK_ROWS)
                    .next_multiple_of(BLOCK_ROWS)
                    .min(self.chunk_rows);
                let buf = Self::buffer(ctx, "fetch bank chunk", self.chunk_bytes(cap));
                self.chunks.push(Chunk { buf, cap_rows: cap });
            }
        }
        let words = total.div_ceil(32);
        if words > self.live_cap_words {
            let cap = (self.live_cap_words * 2).max(words).max(64);
            let buf = Self::buffer(ctx, "fetch live", (cap * 4) as u64);
            let used_bytes = (used.div_ceil(32) * 4) as u64;
            if used_bytes > 0 {
                enc.copy_buffer_to_buffer(&self.live, 0, &buf, 0, used_bytes);
                self.grown += used_bytes;
                copies = true;
            }
            self.live = buf;
            self.live_cap_words = cap;
        }
        if copies {
            ctx.submit(enc);
        }
    }

    /// Write staged rows (row-major, `row_words` each) at rows `first..`; capacity must exist.
    pub(crate) fn write_rows(
        &mut self,
        ctx: &GpuContext,
        first: usize,
        staged: &[u32],
    ) -> Result<(), KernelError> {
        let rw = self.layout.row_words();
        let n = staged.len() / rw;
        let max_rows = (STAGE_BYTES / (4 * rw)).max(1);
        let pipeline = ctx.pipeline(&PipelineKey::new(&crate::shaders::FETCH_SCATTER, "scatter"));
        let mut enc = encoder(ctx, "fetch scatter");
        let mut done = 0;
        while done < n {
            let row = first + done;
            let c = row / self.chunk_rows;
            let local = row - c * self.chunk_rows;
            let take = (n - done).min(self.chunk_rows - local).min(max_rows);
            let src = &staged[done * rw..(done + take) * rw];
            let stage = ctx.upload("fetch staging", src);
            self.uploaded += std::mem::size_of_val(src) as u64;
            let params = ctx.uniform(
                "fetch scatter params",
                &ScatterParams {
                    n: take as u32,
                    words: self.layout.words as u32,
                    hdr: self.layout.format.header() as u32,
                    block_words: self.layout.block_words() as u32,
                    dst0: local as u32,
                    _p: [0; 3],
                },
            );
            dispatch(
                ctx,
                &mut enc,
                &pipeline,
                &[
                    entry(0, &params),
                    entry(1, &stage),
                    entry(2, &self.chunks[c].buf),
                ],
                (take * rw).div_ceil(WG),
                1,
                "fetch scatter",
            )?;
            done += take;
        }
        ctx.submit(enc);
        Ok(())
    }

    /// Write live-bitset words starting at word `first`.
    pub(crate) fn write_live(&mut self, ctx: &GpuContext, first: usize, words: &[u32]) {
        ctx.write(&self.live, (first * 4) as u64, bytemuck::cast_slice(words));
        self.uploaded += std::mem::size_of_val(words) as u64;
    }

    /// The launch geometry for `b` queries, `k` results, over `n` rows.
    pub(crate) fn plan(&self, n: usize, b: usize, k: usize, tuning: &Tuning) -> TopkPlan {
        let k2 = k.next_power_of_two();
        // On a software adapter a workgroup per query is faster (its barrier-free `score1` beats
        // 16 accumulators per invocation); on a GPU, queries share each row read.
        let qdefault = if self.software { 1 } else { 16 };
        // The two-phase scans keep a score per query and row: at most one storage binding.
        let fits = ((b * n * 4) as u64) <= PORTABLE_BINDING_BYTES;
        let multi = b > 1
            && fits
            && tuning
                .multi_query_scan
                .unwrap_or(self.software && tuning.queries_per_group.is_none());
        let qmax = if multi {
            1
        } else {
            (1024 / k2)
                .min(tuning.queries_per_group.unwrap_or(qdefault))
                .clamp(1, 16)
        };
        let qgroups = b.div_ceil(qmax.min(b));
        let qb = b.div_ceil(qgroups);
        // One query per workgroup (`score1`) or all of them (`scorem`): the two-phase scans (R
        // rows per invocation and round).
        let one = qb == 1 && fits;
        let qc = if multi {
            tuning.queries_per_pass.unwrap_or(4).clamp(1, 4)
        } else {
            1
        };
        let r = if one {
            // `score1` takes up to 8 rows per invocation, `scorem` up to 4.
            let max_r = if multi { 4 } else { 8 };
            tuning.rows_per_invocation.unwrap_or(4).clamp(1, max_r)
        } else {
            1
        };
        let round_rows = WG * r;
        let max_lists = (CANDIDATE_BYTES / (4 * b * k)).max(1);
        let nchunks = n.div_ceil(self.chunk_rows).max(1);
        let (rounds, pick_rounds, lists, max_scan) = if one {
            // Scoring: 4 Ki rows per workgroup on a software adapter, one round on a GPU (more
            // workgroups in flight). Selection (`pick`, over all chunks at once): 32 Ki rows per
            // workgroup on a software adapter (each `pick` workgroup costs about 2 ms on
            // SwiftShader, whatever its rows: a barrier makes it run as coroutines), 4 Ki on a
            // GPU; at least 16 k2 rows; `rows_per_group` overrides it.
            let rounds = if self.software {
                4096usize.div_ceil(round_rows)
            } else {
                1
            };
            let mut pick_rows = match tuning.rows_per_group {
                Some(rows) => rows.next_multiple_of(WG).max(WG),
                None => (16 * k2)
                    .max(if self.software { 32768 } else { 4096 })
                    .next_multiple_of(WG),
            };
            while n.div_ceil(pick_rows) > max_lists && tuning.rows_per_group.is_none() {
                pick_rows *= 2;
            }
            let lists = n.div_ceil(pick_rows).max(1);
            let max_scan = (0..nchunks)
                .map(|c| self.rows_in_chunk(c, n).div_ceil(round_rows * rounds))
                .max()
                .unwrap_or(1)
                .max(lists);
            (rounds, pick_rows / WG, lists, max_scan)
        } else {
            // Enough rows per workgroup to amortise its selection; bounded candidate memory.
            let mut rounds = match tuning.rows_per_group {
                Some(rows) => rows.div_ceil(round_rows).max(1),
                None => (4 * k2).div_ceil(WG).max(4),
            };
            loop {
                let lists: usize = (0..nchunks)
                    .map(|c| self.rows_in_chunk(c, n).div_ceil(round_rows * rounds))
                    .sum();
                if lists <= max_lists || tuning.rows_per_group.is_some() {
                    break;
                }
                rounds *= 2;
            }
            let lists: usize = (0..nchunks)
                .map(|c| self.rows_in_chunk(c, n).div_ceil(round_rows * rounds))
                .sum::<usize>()
                .max(1);
            let max_scan = (0..nchunks)
                .map(|c| self.rows_in_chunk(c, n).div_ceil(round_rows * rounds))
                .max()
                .unwrap_or(1);
            (rounds, 0, lists, max_scan)
        };
        let fanin = tuning.merge_fanin.unwrap_or((2048 / k).max(2)).max(2);
        let max_dispatch = max_scan.max(if lists > 1 {
            lists.div_ceil(fanin) * b
        } else {
            0
        });
        TopkPlan {
            k,
            k2,
            qb,
            qgroups,
            two_phase: one,
            multi_query: multi,
            rows_per_invocation: r,
            queries_per_pass: qc,
            f16_integer_decode: tuning.f16_integer_decode.unwrap_or(false),
            rounds,
            pick_rounds,
            lists,
            fanin,
            max_dispatch,
        }
    }

    /// Encode a full top-k (scan + merges) of padded queries; returns the buffers whose first
    /// `b * k` entries are the final lists.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn encode_topk(
        &self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        plan: &TopkPlan,
        n: usize,
        queries: &[f32],
        b: usize,
        mask: Option<&wgpu::Buffer>,
    ) -> Result<(wgpu::Buffer, wgpu::Buffer), KernelError> {
        let l = self.layout;
        let (k, qb) = (plan.k, plan.qb);
        // Queries arranged lane-wise, then interleaved per group: [group][slab, e][slot] vec4s.
        let cols = l.cols();
        let arranged = super::cpu::arrange_queries(&l, queries);
        let vecs = cols / 4;
        let mut qdata = vec![0.0f32; plan.qgroups * cols * qb];
        for (q, a) in arranged.chunks_exact(cols).enumerate() {
            let (g, s) = (q / qb, q % qb);
            for v in 0..vecs {
                let at = ((g * vecs + v) * qb + s) * 4;
                qdata[at..at + 4].copy_from_slice(&a[4 * v..4 * v + 4]);
            }
        }
        let qbuf = ctx.upload("fetch queries", &qdata);
        let first_bytes = (b * plan.lists * k * 4) as u64;
        let merge_lists = if plan.lists > 1 {
            plan.lists.div_ceil(plan.fanin)
        } else {
            1
        };
        let second_bytes = (b * merge_lists * k * 4) as u64;
        ctx.check_binding("top-k candidate lists", first_bytes)?;
        let a_s = ctx.storage("fetch cand scores", first_bytes)?;
        let a_i = ctx.storage("fetch cand ids", first_bytes)?;
        let one = plan.two_phase;
        let f16int =
            (plan.f16_integer_decode && l.format == super::format::BankFormat::F16) as u8 as f64;
        let scan = if one {
            // Two phases: scoring (`score1` / `scorem`, no barrier) per chunk, then one
            // selection dispatch (`pick`) over the whole bank.
            let (name, qc) = if plan.multi_query {
                ("scorem", plan.queries_per_pass)
            } else {
                ("score1", 1)
            };
            ctx.pipeline(
                &PipelineKey::new(&crate::shaders::FETCH_TOPK, name)
                    .with_constant("R", plan.rows_per_invocation as f64)
                    .with_constant("QC", qc as f64)
                    .with_constant("FORMAT", l.format.shader_id() as f64)
                    .with_constant("F16INT", f16int),
            )
        } else {
            ctx.pipeline(
                &PipelineKey::new(&crate::shaders::FETCH_TOPK, "scan")
                    .with_constant("K", k as f64)
                    .with_constant("K2", plan.k2 as f64)
                    .with_constant("QB", qb as f64)
                    .with_constant("BEST", (qb * plan.k2) as f64)
                    .with_constant("FORMAT", l.format.shader_id() as f64)
                    .with_constant("F16INT", f16int),
            )
        };
        // The two-phase scans' per-row scores (indexed by global row id, all chunks).
        let scratch = if one {
            Some(self.scratch(ctx, (b * n * 4) as u64)?)
        } else {
            None
        };
        let round_rows = WG * plan.rows_per_invocation;
        let mut list0 = 0usize;
        for (c, chunk) in self.chunks.iter().enumerate() {
            let rows = self.rows_in_chunk(c, n);
            if rows == 0 {
                break;
            }
            let groups = rows.div_ceil(round_rows * plan.rounds);
            let params = ctx.uniform(
                "fetch scan params",
                &TopkParams {
                    rows: rows as u32,
                    row0: (c * self.chunk_rows) as u32,
                    words: l.words as u32,
                    block_words: l.block_words() as u32,
                    rounds: plan.rounds as u32,
                    groups: groups as u32,
                    list0: list0 as u32,
                    lists: plan.lists as u32,
                    b: b as u32,
                    use_mask: mask.is_some() as u32,
                    per: l.format.per_word() as u32,
                    neg_inf: f32::NEG_INFINITY,
                    total: n as u32,
                    _p: [0; 3],
                },
            );
            let mut entries = vec![
                entry(0, &params),
                entry(1, &chunk.buf),
                entry(2, &qbuf),
                entry(3, &self.live),
                entry(4, mask.unwrap_or(&self.live)),
            ];
            if let Some(sc) = &scratch {
                entries.push(entry(9, sc));
            } else {
                entries.push(entry(5, &a_s));
                entries.push(entry(6, &a_i));
            }
            dispatch(
                ctx,
                enc,
                &scan,
                &entries,
                groups,
                if plan.multi_query { 1 } else { plan.qgroups },
                "fetch scan",
            )?;
            list0 += groups;
        }
        if let Some(sc) = &scratch {
            let pick = ctx.pipeline(
                &PipelineKey::new(&crate::shaders::FETCH_TOPK, "pick")
                    .with_constant("K", k as f64)
                    .with_constant("K2", plan.k2 as f64)
                    .with_constant("BEST", plan.k2 as f64),
            );
            let params = ctx.uniform(
                "fetch pick params",
                &TopkParams {
                    rows: n as u32,
                    row0: 0,
                    words: 0,
                    block_words: 0,
                    rounds: plan.pick_rounds as u32,
                    groups: plan.lists as u32,
                    list0: 0,
                    lists: plan.lists as u32,
                    b: b as u32,
                    use_mask: mask.is_some() as u32,
                    per: 0,
                    neg_inf: f32::NEG_INFINITY,
                    total: n as u32,
                    _p: [0; 3],
                },
            );
            dispatch(
                ctx,
                enc,
                &pick,
                &[
                    entry(0, &params),
                    entry(3, &self.live),
                    entry(4, mask.unwrap_or(&self.live)),
                    entry(5, &a_s),
                    entry(6, &a_i),
                    entry(9, sc),
                ],
                plan.lists,
                b,
                "fetch pick",
            )?;
        }
        if plan.lists == 1 {
            return Ok((a_s, a_i));
        }
        let merge = ctx.pipeline(
            &PipelineKey::new(&crate::shaders::FETCH_TOPK, "merge")
                .with_constant("K", k as f64)
                .with_constant("K2", plan.k2 as f64)
                .with_constant("QB", 1.0)
                .with_constant("BEST", plan.k2 as f64),
        );
        let b_s = ctx.storage("fetch cand scores 2", second_bytes)?;
        let b_i = ctx.storage("fetch cand ids 2", second_bytes)?;
        let (mut src, mut dst) = ((a_s, a_i), (b_s, b_i));
        let mut lists = plan.lists;
        while lists > 1 {
            let out = lists.div_ceil(plan.fanin);
            let params = ctx.uniform(
                "fetch merge params",
                &TopkParams {
                    rows: lists as u32,
                    row0: 0,
                    words: 0,
                    block_words: 0,
                    rounds: plan.fanin as u32,
                    groups: out as u32,
                    list0: 0,
                    lists: out as u32,
                    b: b as u32,
                    use_mask: 0,
                    per: 0,
                    neg_inf: f32::NEG_INFINITY,
                    total: n as u32,
                    _p: [0; 3],
                },
            );
            dispatch(
                ctx,
                enc,
                &merge,
                &[
                    entry(0, &params),
                    entry(5, &dst.0),
                    entry(6, &dst.1),
                    entry(7, &src.0),
                    entry(8, &src.1),
                ],
                out * b,
                1,
                "fetch merge",
            )?;
            std::mem::swap(&mut src, &mut dst);
            lists = out;
        }
        Ok(src)
    }

    /// Top-k of up to `MAX_BATCH` validated queries, read back.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn topk(
        &self,
        ctx: &GpuContext,
        n: usize,
        queries: &[f32],
        k: usize,
        mask: Option<&[u32]>,
        tuning: &Tuning,
    ) -> Result<TopkResult, KernelError> {
        let b = queries.len() / self.layout.dims;
        let plan = self.plan(n, b, k, tuning);
        let scope = ctx.error_scope();
        let mask_buf = mask.map(|m| ctx.upload("fetch mask", &m[..n.div_ceil(32).min(m.len())]));
        let mut enc = encoder(ctx, "fetch topk");
        let built = self.encode_topk(ctx, &mut enc, &plan, n, queries, b, mask_buf.as_ref());
        let (fs, fi) = match built {
            Ok(v) => v,
            Err(e) => {
                let _ = scope.finish("fetch topk").await;
                return Err(e);
            }
        };
        let bytes = (b * k * 4) as u64;
        let staging = ctx.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some("fetch readback"),
            size: 2 * bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        enc.copy_buffer_to_buffer(&fs, 0, &staging, 0, bytes);
        enc.copy_buffer_to_buffer(&fi, 0, &staging, bytes, bytes);
        ctx.submit(enc);
        let read = ctx.map_read(&staging, 2 * bytes).await;
        scope.finish("fetch topk").await?;
        let data = read?;
        let (s, i) = data.split_at(bytes as usize);
        Ok(TopkResult {
            ids: bytemuck::pod_collect_to_vec(i),
            scores: bytemuck::pod_collect_to_vec(s),
            queries: b,
            k,
        })
    }

    /// Encode a gather of `count` ids (`ids`, on the GPU) × `block` rows into `out` (cleared
    /// first), one dispatch per chunk.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn encode_gather(
        &self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        n: usize,
        ids: &wgpu::Buffer,
        count: usize,
        block: usize,
        out: &wgpu::Buffer,
    ) -> Result<(), KernelError> {
        let l = self.layout;
        enc.clear_buffer(out, 0, None);
        let out_rows = count * block;
        if out_rows == 0 || n == 0 {
            return Ok(());
        }
        let pipeline = ctx.pipeline(
            &PipelineKey::new(&crate::shaders::FETCH_GATHER, "gather")
                .with_constant("FORMAT", l.format.shader_id() as f64),
        );
        for (c, chunk) in self.chunks.iter().enumerate() {
            let rows = self.rows_in_chunk(c, n);
            if rows == 0 {
                break;
            }
            let params = ctx.uniform(
                "fetch gather params",
                &GatherParams {
                    out_rows: out_rows as u32,
                    block: block as u32,
                    d: l.dims as u32,
                    words: l.words as u32,
                    block_words: l.block_words() as u32,
                    row0: (c * self.chunk_rows) as u32,
                    rows: rows as u32,
                    id_limit: n.div_ceil(block) as u32,
                },
            );
            dispatch(
                ctx,
                enc,
                &pipeline,
                &[
                    entry(0, &params),
                    entry(1, &chunk.buf),
                    entry(2, ids),
                    entry(3, out),
                ],
                (out_rows * l.words / 4).div_ceil(WG),
                1,
                "fetch gather",
            )?;
        }
        Ok(())
    }
}

/// Encode `reps` copies of `src` into `dst` (`n4` vec4s) with the plain copy kernel.
pub(crate) fn encode_copy(
    ctx: &GpuContext,
    enc: &mut wgpu::CommandEncoder,
    src: &wgpu::Buffer,
    dst: &wgpu::Buffer,
    n4: usize,
    reps: usize,
) -> Result<(), KernelError> {
    let pipeline = ctx.pipeline(&PipelineKey::new(&crate::shaders::FETCH_COPY, "copy"));
    let params = ctx.uniform(
        "fetch copy params",
        &CopyParams {
            n4: n4 as u32,
            _p: [0; 3],
        },
    );
    for _ in 0..reps {
        dispatch(
            ctx,
            enc,
            &pipeline,
            &[entry(0, &params), entry(1, src), entry(2, dst)],
            n4.div_ceil(WG),
            1,
            "fetch copy",
        )?;
    }
    Ok(())
}

/// Allocate two buffers of `bytes` for the copy benchmark.
pub(crate) fn copy_buffers(
    ctx: &GpuContext,
    bytes: u64,
) -> Result<(wgpu::Buffer, wgpu::Buffer), KernelError> {
    let bytes = bytes.next_multiple_of(16);
    ctx.check_binding("copy benchmark buffer", bytes)?;
    Ok((
        ctx.storage("fetch copy src", bytes)?,
        ctx.storage("fetch copy dst", bytes)?,
    ))
}

/// Wait until all submitted work is done (a tiny readback).
pub(crate) async fn sync(ctx: &GpuContext, enc: wgpu::CommandEncoder) -> Result<(), KernelError> {
    let probe = ctx.storage("fetch sync", 4)?;
    ctx.submit_and_read(enc, &probe, 4).await?;
    Ok(())
}
