//! [`FlatBank`]: a resident memory bank for the flat top-k, on the GPU and/or the CPU.

use std::ops::Range;

use super::cpu;
use super::format::{BankFormat, Layout, BLOCK_ROWS};
use super::gpu::{self, GpuStore};
use super::{check_query, TopkResult, NO_ID};
use crate::compute::Compute;
use crate::gpu::{GpuContext, GpuError};
use crate::kernels::KernelError;

pub use super::gpu::Tuning;

/// Where a top-k runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FetchPath {
    /// The GPU for banks of at least [`FlatBankOptions::auto_gpu_min_bytes`], else the CPU
    /// (a WebGPU readback costs milliseconds, more than a CPU scan of a small bank); always the
    /// CPU on a software adapter (lavapipe, SwiftShader: the same CPU, far slower). Whichever
    /// exists when the bank has only one.
    #[default]
    Auto,
    /// The GPU kernels (error `GPU_UNAVAILABLE` without a GPU).
    Gpu,
    /// The CPU path (error `INVALID_INPUT` for a bank created without a CPU mirror).
    Cpu,
}

impl FetchPath {
    /// Parse the JS spelling: `"auto"`, `"gpu"`/`"webgpu"` or `"cpu"`.
    pub fn parse(s: &str) -> Option<FetchPath> {
        match s {
            "auto" => Some(FetchPath::Auto),
            "gpu" | "webgpu" => Some(FetchPath::Gpu),
            "cpu" => Some(FetchPath::Cpu),
            _ => None,
        }
    }
}

/// How a [`FlatBank`] stores its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlatBankOptions {
    /// Storage format (default f32).
    pub format: BankFormat,
    /// Keep a CPU copy of the words so the CPU path can answer (default true). Always on when
    /// the `Compute` has no GPU.
    pub cpu_mirror: bool,
    /// Rows to allocate up front (default 0; the bank grows as needed).
    pub capacity: usize,
    /// Cap on a GPU chunk's size in bytes (default: the portable 128 MiB storage-binding limit,
    /// or the device's limit if smaller). Banks larger than this are split into chunks.
    pub max_chunk_bytes: Option<u64>,
    /// [`FetchPath::Auto`] uses the GPU for banks of at least this many bytes (default 16 MiB).
    pub auto_gpu_min_bytes: usize,
    /// GPU launch tuning (defaults per call).
    pub tuning: Tuning,
}

impl Default for FlatBankOptions {
    fn default() -> Self {
        FlatBankOptions {
            format: BankFormat::F32,
            cpu_mirror: true,
            capacity: 0,
            max_chunk_bytes: None,
            auto_gpu_min_bytes: 16 << 20,
            tuning: Tuning::default(),
        }
    }
}

/// Row ids to gather: on the host, or already on the GPU (e.g. a [`GpuTopk`]'s ids).
#[derive(Debug, Clone, Copy)]
pub enum GatherIds<'a> {
    /// Ids in host memory (uploaded for the gather).
    Host(&'a [u32]),
    /// `count` u32 ids at the start of a GPU storage buffer.
    Gpu {
        /// The buffer.
        buffer: &'a wgpu::Buffer,
        /// How many ids it holds.
        count: usize,
    },
}

/// Rows gathered on the GPU: row-major `[rows, dims]` f32 in `buffer`, ready for a model to
/// bind without a CPU round trip; [`GpuRows::read`] copies them back.
#[derive(Debug)]
pub struct GpuRows {
    /// The output storage buffer (`rows * dims` f32).
    pub buffer: wgpu::Buffer,
    /// Rows gathered (`ids * block`).
    pub rows: usize,
    /// Dimensions per row.
    pub dims: usize,
    compute: Compute,
}

impl GpuRows {
    /// Read the rows back to the host.
    pub async fn read(&self) -> Result<Vec<f32>, KernelError> {
        let ctx = gpu_of(&self.compute)?;
        let bytes = (self.rows * self.dims * 4) as u64;
        if bytes == 0 {
            return Ok(Vec::new());
        }
        let enc = ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("fetch gather read"),
            });
        let data = ctx.submit_and_read(enc, &self.buffer, bytes).await?;
        Ok(bytemuck::pod_collect_to_vec(&data))
    }
}

/// Top-k results kept on the GPU: `[queries, k]` ids (u32) and scores (f32) buffers, for
/// [`FlatBank::gather_gpu`] or a model; [`GpuTopk::read`] copies them back.
#[derive(Debug)]
pub struct GpuTopk {
    /// Row ids, `NO_ID` in unfilled slots.
    pub ids: wgpu::Buffer,
    /// Scores, -inf in unfilled slots.
    pub scores: wgpu::Buffer,
    /// Queries.
    pub queries: usize,
    /// Slots per query.
    pub k: usize,
    compute: Compute,
}

impl GpuTopk {
    /// Read the results back to the host.
    pub async fn read(&self) -> Result<TopkResult, KernelError> {
        let ctx = gpu_of(&self.compute)?;
        let bytes = (self.queries * self.k * 4) as u64;
        let enc = ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("fetch topk read"),
            });
        let i = ctx.submit_and_read(enc, &self.ids, bytes).await?;
        let enc = ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("fetch topk read"),
            });
        let s = ctx.submit_and_read(enc, &self.scores, bytes).await?;
        Ok(TopkResult {
            ids: bytemuck::pod_collect_to_vec(&i),
            scores: bytemuck::pod_collect_to_vec(&s),
            queries: self.queries,
            k: self.k,
        })
    }
}

fn gpu_of(compute: &Compute) -> Result<&GpuContext, KernelError> {
    compute
        .gpu_context()
        .ok_or_else(|| GpuError::NoAdapter("this Compute runs on the CPU".into()).into())
}

/// A resident memory bank for the flat top-k.
///
/// Rows get ids `0, 1, 2, ...` in append order; ids are stable (removal masks a row, it never
/// renumbers). The bank holds the rows on the GPU when its `Compute` has one, and a CPU mirror
/// of the same words unless created with `cpu_mirror: false`; every query can run on either
/// path ([`FetchPath`]).
///
/// Updates never re-upload the bank: [`append`](FlatBank::append) uploads only the new rows
/// (the last GPU chunk grows geometrically; growing copies its used part GPU-to-GPU),
/// [`set_row`](FlatBank::set_row) uploads one row, and [`remove`](FlatBank::remove) rewrites
/// one word of the live bitset. [`FlatBank::uploaded_bytes`] counts what went to the GPU.
pub struct FlatBank {
    compute: Compute,
    layout: Layout,
    n: usize,
    live: Vec<u32>,
    live_count: usize,
    mirror: Option<Vec<u32>>,
    gpu: Option<GpuStore>,
    opts: FlatBankOptions,
}

impl std::fmt::Debug for FlatBank {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlatBank")
            .field("dims", &self.layout.dims)
            .field("format", &self.layout.format)
            .field("len", &self.n)
            .field("live", &self.live_count)
            .field("gpu", &self.gpu.is_some())
            .field("cpu_mirror", &self.mirror.is_some())
            .finish()
    }
}

impl FlatBank {
    /// An empty bank of `dims`-dimensional rows on `compute`'s device (if any).
    pub fn new(
        compute: &Compute,
        dims: usize,
        opts: FlatBankOptions,
    ) -> Result<FlatBank, KernelError> {
        if dims == 0 {
            return Err(KernelError::InvalidArgument {
                name: "dims",
                reason: "must be at least 1".into(),
            });
        }
        let layout = Layout::new(opts.format, dims);
        let gpu = match compute.gpu_context() {
            Some(ctx) => {
                ctx.check_alive()?;
                Some(GpuStore::new(
                    ctx,
                    layout,
                    opts.max_chunk_bytes,
                    opts.capacity,
                )?)
            }
            None => None,
        };
        let mirror = (opts.cpu_mirror || gpu.is_none())
            .then(|| Vec::with_capacity(opts.capacity.div_ceil(BLOCK_ROWS) * layout.block_words()));
        Ok(FlatBank {
            compute: compute.clone(),
            layout,
            n: 0,
            live: Vec::new(),
            live_count: 0,
            mirror,
            gpu,
            opts,
        })
    }

    /// A CPU-only bank (no device involved).
    pub fn new_cpu(dims: usize, format: BankFormat, capacity: usize) -> FlatBank {
        let layout = Layout::new(format, dims.max(1));
        FlatBank {
            compute: Compute::cpu(),
            layout,
            n: 0,
            live: Vec::new(),
            live_count: 0,
            mirror: Some(Vec::with_capacity(
                capacity.div_ceil(BLOCK_ROWS) * layout.block_words(),
            )),
            gpu: None,
            opts: FlatBankOptions {
                format,
                ..FlatBankOptions::default()
            },
        }
    }

    /// Rows appended so far (removed rows included: ids are stable).
    pub fn len(&self) -> usize {
        self.n
    }

    /// No rows appended yet.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Rows not removed.
    pub fn live_count(&self) -> usize {
        self.live_count
    }

    /// Whether row `i` exists and is not removed.
    pub fn is_live(&self, i: usize) -> bool {
        i < self.n && (self.live[i / 32] >> (i % 32)) & 1 == 1
    }

    /// Dimensions per row.
    pub fn dims(&self) -> usize {
        self.layout.dims
    }

    /// Storage format.
    pub fn format(&self) -> BankFormat {
        self.layout.format
    }

    /// The word layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Whether the rows are on the GPU.
    pub fn has_gpu(&self) -> bool {
        self.gpu.is_some()
    }

    /// Whether the CPU path can answer.
    pub fn has_cpu_mirror(&self) -> bool {
        self.mirror.is_some()
    }

    /// GPU chunks currently allocated (0 without a GPU).
    pub fn chunk_count(&self) -> usize {
        self.gpu.as_ref().map_or(0, |g| g.chunks.len())
    }

    /// Rows per full GPU chunk (0 without a GPU).
    pub fn chunk_rows(&self) -> usize {
        self.gpu.as_ref().map_or(0, |g| g.chunk_rows)
    }

    /// Bytes of the stored rows (`len * row bytes`, int8 scales included): what a full scan
    /// reads.
    pub fn bank_bytes(&self) -> u64 {
        (self.n * self.layout.row_bytes()) as u64
    }

    /// Bytes of GPU memory allocated for the bank (capacity, not just rows).
    pub fn gpu_capacity_bytes(&self) -> u64 {
        self.gpu.as_ref().map_or(0, |g| g.capacity_bytes())
    }

    /// Bytes of the two-phase scans' score scratch kept for later calls (0 before the first).
    pub fn gpu_scratch_bytes(&self) -> u64 {
        self.gpu.as_ref().map_or(0, |g| g.scratch_bytes())
    }

    /// Bytes uploaded host-to-GPU since creation (new rows, updated rows, live-bitset words).
    pub fn uploaded_bytes(&self) -> u64 {
        self.gpu.as_ref().map_or(0, |g| g.uploaded)
    }

    /// Bytes copied GPU-to-GPU when buffers grew.
    pub fn grown_bytes(&self) -> u64 {
        self.gpu.as_ref().map_or(0, |g| g.grown)
    }

    /// The options the bank was created with.
    pub fn options(&self) -> &FlatBankOptions {
        &self.opts
    }

    /// Append rows (row-major `[m, dims]`); returns their ids. Uploads only these rows.
    pub async fn append(&mut self, rows: &[f32]) -> Result<Range<usize>, KernelError> {
        let m = self.layout.check_rows("rows", rows)?;
        let first = self.n;
        if m == 0 {
            return Ok(first..first);
        }
        let staged = self.layout.encode_rows(rows);
        let live = self.live_after_append(m);
        if let (Some(store), Some(ctx)) = (self.gpu.as_mut(), self.compute.gpu_context()) {
            ctx.check_alive()?;
            let scope = ctx.error_scope();
            store.reserve(ctx, first, first + m);
            let wrote = store.write_rows(ctx, first, &staged);
            if wrote.is_ok() {
                let w0 = first / 32;
                store.write_live(ctx, w0, &live[w0..]);
            }
            let scoped = scope.finish("fetch append").await;
            wrote?;
            scoped?;
        }
        self.commit_append(&staged, m, live);
        Ok(first..first + m)
    }

    /// [`append`](FlatBank::append) for a bank without a GPU (synchronous).
    pub fn append_cpu(&mut self, rows: &[f32]) -> Result<Range<usize>, KernelError> {
        if self.gpu.is_some() {
            return Err(KernelError::InvalidArgument {
                name: "bank",
                reason: "append_cpu is for CPU-only banks; use append".into(),
            });
        }
        let m = self.layout.check_rows("rows", rows)?;
        let first = self.n;
        let staged = self.layout.encode_rows(rows);
        let live = self.live_after_append(m);
        self.commit_append(&staged, m, live);
        Ok(first..first + m)
    }

    fn live_after_append(&self, m: usize) -> Vec<u32> {
        let mut live = self.live.clone();
        live.resize((self.n + m).div_ceil(32), 0);
        for i in self.n..self.n + m {
            live[i / 32] |= 1 << (i % 32);
        }
        live
    }

    fn commit_append(&mut self, staged: &[u32], m: usize, live: Vec<u32>) {
        let first = self.n;
        if let Some(words) = self.mirror.as_mut() {
            let need = (first + m).div_ceil(BLOCK_ROWS) * self.layout.block_words();
            if words.len() < need {
                words.resize(need, 0);
            }
            cpu::scatter(&self.layout, words, first, staged);
        }
        self.live = live;
        self.n += m;
        self.live_count += m;
    }

    fn check_row(&self, i: usize) -> Result<(), KernelError> {
        if i >= self.n {
            return Err(KernelError::InvalidArgument {
                name: "row",
                reason: format!("row {i} does not exist (the bank has {} rows)", self.n),
            });
        }
        Ok(())
    }

    /// Replace row `i`'s values (uploads one row). Does not change whether it is live.
    pub async fn set_row(&mut self, i: usize, values: &[f32]) -> Result<(), KernelError> {
        self.check_row(i)?;
        let m = self.layout.check_rows("values", values)?;
        if m != 1 {
            return Err(KernelError::DimensionMismatch {
                name: "values",
                expected: self.layout.dims,
                got: values.len(),
            });
        }
        let staged = self.layout.encode_rows(values);
        if let (Some(store), Some(ctx)) = (self.gpu.as_mut(), self.compute.gpu_context()) {
            ctx.check_alive()?;
            let scope = ctx.error_scope();
            let wrote = store.write_rows(ctx, i, &staged);
            let scoped = scope.finish("fetch set_row").await;
            wrote?;
            scoped?;
        }
        if let Some(words) = self.mirror.as_mut() {
            cpu::scatter(&self.layout, words, i, &staged);
        }
        Ok(())
    }

    /// Mask row `i` out of every later result (rewrites one bitset word). Returns whether it was
    /// live.
    pub fn remove(&mut self, i: usize) -> Result<bool, KernelError> {
        self.set_live(i, false)
    }

    /// Undo [`remove`](FlatBank::remove). Returns whether it was removed.
    pub fn restore(&mut self, i: usize) -> Result<bool, KernelError> {
        self.set_live(i, true)
    }

    fn set_live(&mut self, i: usize, live: bool) -> Result<bool, KernelError> {
        self.check_row(i)?;
        if self.is_live(i) == live {
            return Ok(false);
        }
        let w = i / 32;
        self.live[w] ^= 1 << (i % 32);
        if live {
            self.live_count += 1;
        } else {
            self.live_count -= 1;
        }
        if let (Some(store), Some(ctx)) = (self.gpu.as_mut(), self.compute.gpu_context()) {
            ctx.check_alive()?;
            store.write_live(ctx, w, &self.live[w..w + 1]);
        }
        Ok(true)
    }

    /// Dequantised values of row `i` (from the CPU mirror; `None` without one or out of range).
    pub fn row(&self, i: usize) -> Option<Vec<f32>> {
        let words = self.mirror.as_ref()?;
        if i >= self.n {
            return None;
        }
        let mut out = vec![0.0; self.layout.dims];
        cpu::read_row(&self.layout, words, i, &mut out);
        Some(out)
    }

    fn software_adapter(&self) -> bool {
        self.compute
            .adapter_info()
            .is_some_and(|a| a.device_type == "cpu")
    }

    /// Which path `path` resolves to for this bank.
    pub fn resolve(&self, path: FetchPath) -> Result<FetchPath, KernelError> {
        match path {
            FetchPath::Gpu if self.gpu.is_none() => {
                Err(GpuError::NoAdapter("the bank has no GPU copy (no adapter)".into()).into())
            }
            FetchPath::Cpu if self.mirror.is_none() => Err(KernelError::InvalidArgument {
                name: "path",
                reason: "the bank was created without a CPU mirror".into(),
            }),
            FetchPath::Auto => Ok(if self.gpu.is_none() {
                FetchPath::Cpu
            } else if self.mirror.is_none() {
                FetchPath::Gpu
            } else if self.software_adapter() {
                // A software adapter runs on the same CPU, much slower than the CPU path.
                FetchPath::Cpu
            } else if self.bank_bytes() >= self.opts.auto_gpu_min_bytes as u64 {
                FetchPath::Gpu
            } else {
                FetchPath::Cpu
            }),
            p => Ok(p),
        }
    }

    /// The `k` best live rows (restricted to `mask` when given) for each query (`[B, dims]`),
    /// on `path`. See the module docs for the result semantics.
    pub async fn topk(
        &self,
        queries: &[f32],
        k: usize,
        mask: Option<&[u32]>,
        path: FetchPath,
    ) -> Result<TopkResult, KernelError> {
        check_query(self.layout.dims, self.n, queries, k, mask)?;
        match self.resolve(path)? {
            FetchPath::Cpu => self.topk_cpu(queries, k, mask),
            _ => self.topk_gpu(queries, k, mask).await,
        }
    }

    /// [`topk`](FlatBank::topk) on the CPU path.
    pub fn topk_cpu(
        &self,
        queries: &[f32],
        k: usize,
        mask: Option<&[u32]>,
    ) -> Result<TopkResult, KernelError> {
        check_query(self.layout.dims, self.n, queries, k, mask)?;
        self.resolve(FetchPath::Cpu)?;
        let words = self.mirror.as_deref().unwrap_or(&[]);
        Ok(cpu::scan(
            &self.layout,
            words,
            self.n,
            &self.live,
            mask,
            queries,
            k,
        ))
    }

    /// Every allowed row's score for one query (`[dims]`) on the CPU path, visited in row order
    /// as `visit(row, score)`: the scores [`topk_cpu`](FlatBank::topk_cpu) ranks, without its
    /// `k ≤ MAX_K` limit (crate-internal: the memory engine's deep candidate lists).
    pub(crate) fn for_each_score_cpu(
        &self,
        query: &[f32],
        mask: Option<&[u32]>,
        mut visit: impl FnMut(u32, f32),
    ) -> Result<(), KernelError> {
        let b = check_query(self.layout.dims, self.n, query, 1, mask)?;
        if b != 1 {
            return Err(KernelError::InvalidArgument {
                name: "queries",
                reason: format!("exactly one query is expected, got {b}"),
            });
        }
        self.resolve(FetchPath::Cpu)?;
        let words = self.mirror.as_deref().unwrap_or(&[]);
        let qp = cpu::query_lanes(&cpu::arrange_queries(&self.layout, query));
        let bw = self.layout.block_words();
        let mut scores = [0.0f32; BLOCK_ROWS];
        for blk in 0..self.n.div_ceil(BLOCK_ROWS) {
            let mut bits = cpu::block_bits(&self.live, mask, blk, self.n);
            if bits == 0 {
                continue;
            }
            cpu::score_block(
                &self.layout,
                &words[blk * bw..(blk + 1) * bw],
                &qp,
                &mut scores,
            );
            let row0 = (blk * BLOCK_ROWS) as u32;
            while bits != 0 {
                let r = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                visit(row0 + r as u32, scores[r]);
            }
        }
        Ok(())
    }

    /// [`topk`](FlatBank::topk) on the GPU (one submission and one readback per 64 queries).
    pub async fn topk_gpu(
        &self,
        queries: &[f32],
        k: usize,
        mask: Option<&[u32]>,
    ) -> Result<TopkResult, KernelError> {
        let b = check_query(self.layout.dims, self.n, queries, k, mask)?;
        self.resolve(FetchPath::Gpu)?;
        let (store, ctx) = self.gpu_parts()?;
        ctx.check_alive()?;
        if self.n == 0 {
            return Ok(TopkResult::empty(b, k));
        }
        let mut out = TopkResult::empty(0, k);
        for batch in queries.chunks(gpu::MAX_BATCH * self.layout.dims) {
            let r = store
                .topk(ctx, self.n, batch, k, mask, &self.opts.tuning)
                .await?;
            out.ids.extend_from_slice(&r.ids);
            out.scores.extend_from_slice(&r.scores);
            out.queries += r.queries;
        }
        Ok(out)
    }

    /// The GPU top-k kept on the GPU (at most 64 queries), e.g. to gather the rows for a model
    /// without a CPU round trip.
    pub async fn topk_gpu_resident(
        &self,
        queries: &[f32],
        k: usize,
        mask: Option<&[u32]>,
    ) -> Result<GpuTopk, KernelError> {
        let b = check_query(self.layout.dims, self.n, queries, k, mask)?;
        if b > gpu::MAX_BATCH {
            return Err(KernelError::InvalidArgument {
                name: "queries",
                reason: format!("at most {} queries per resident call", gpu::MAX_BATCH),
            });
        }
        self.resolve(FetchPath::Gpu)?;
        let (store, ctx) = self.gpu_parts()?;
        ctx.check_alive()?;
        let bytes = (b * k * 4) as u64;
        let ids = ctx.storage("fetch topk ids", bytes)?;
        let scores = ctx.storage("fetch topk scores", bytes)?;
        let scope = ctx.error_scope();
        let mut enc = ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("fetch topk resident"),
            });
        let built = if self.n == 0 {
            // No rows: every slot is unfilled.
            ctx.write(&ids, 0, bytemuck::cast_slice(&vec![NO_ID; b * k]));
            ctx.write(
                &scores,
                0,
                bytemuck::cast_slice(&vec![f32::NEG_INFINITY; b * k]),
            );
            Ok(())
        } else {
            let plan = store.plan(self.n, b, k, &self.opts.tuning);
            let mask_buf = mask.map(|m| ctx.upload("fetch mask", &m[..self.n.div_ceil(32)]));
            store
                .encode_topk(ctx, &mut enc, &plan, self.n, queries, b, mask_buf.as_ref())
                .map(|(fs, fi)| {
                    enc.copy_buffer_to_buffer(&fs, 0, &scores, 0, bytes);
                    enc.copy_buffer_to_buffer(&fi, 0, &ids, 0, bytes);
                })
        };
        ctx.submit(enc);
        let scoped = scope.finish("fetch topk resident").await;
        built?;
        scoped?;
        Ok(GpuTopk {
            ids,
            scores,
            queries: b,
            k,
            compute: self.compute.clone(),
        })
    }

    fn gpu_parts(&self) -> Result<(&GpuStore, &GpuContext), KernelError> {
        match (self.gpu.as_ref(), self.compute.gpu_context()) {
            (Some(s), Some(c)) => Ok((s, c)),
            _ => Err(GpuError::NoAdapter("the bank has no GPU copy".into()).into()),
        }
    }

    fn check_block(block: usize) -> Result<(), KernelError> {
        if block == 0 {
            return Err(KernelError::InvalidArgument {
                name: "block",
                reason: "must be at least 1 row".into(),
            });
        }
        Ok(())
    }

    /// Gather on the CPU: for each id, rows `id * block .. id * block + block` (dequantised),
    /// row-major `[ids * block, dims]`. Missing rows (`NO_ID`, past the end) are zeros; removed
    /// rows are still returned (their data is kept).
    pub fn gather_cpu(&self, ids: &[u32], block: usize) -> Result<Vec<f32>, KernelError> {
        Self::check_block(block)?;
        self.resolve(FetchPath::Cpu)?;
        let d = self.layout.dims;
        let words = self.mirror.as_deref().unwrap_or(&[]);
        let mut out = vec![0.0f32; ids.len() * block * d];
        for (t, &id) in ids.iter().enumerate() {
            if id == NO_ID {
                continue;
            }
            for r in 0..block {
                let row = id as usize * block + r;
                if row >= self.n {
                    break;
                }
                let o = (t * block + r) * d;
                cpu::read_row(&self.layout, words, row, &mut out[o..o + d]);
            }
        }
        Ok(out)
    }

    /// Gather on the GPU into one contiguous f32 buffer `[ids * block, dims]` that stays on the
    /// GPU (same semantics as [`gather_cpu`](FlatBank::gather_cpu)).
    pub async fn gather_gpu(
        &self,
        ids: GatherIds<'_>,
        block: usize,
    ) -> Result<GpuRows, KernelError> {
        Self::check_block(block)?;
        self.resolve(FetchPath::Gpu)?;
        let (store, ctx) = self.gpu_parts()?;
        ctx.check_alive()?;
        let d = self.layout.dims;
        let (count, host_buf) = match ids {
            GatherIds::Host(v) => (v.len(), Some(ctx.upload("fetch gather ids", v))),
            GatherIds::Gpu { count, .. } => (count, None),
        };
        let id_buf = match (&host_buf, ids) {
            (Some(b), _) => b,
            (None, GatherIds::Gpu { buffer, .. }) => buffer,
            (None, GatherIds::Host(_)) => unreachable!("host ids are uploaded"),
        };
        let rows = count * block;
        let out_bytes = (rows * d * 4) as u64;
        let out = ctx.storage("fetch gathered rows", out_bytes)?;
        let scope = ctx.error_scope();
        let mut enc = ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("fetch gather"),
            });
        let built = store.encode_gather(ctx, &mut enc, self.n, id_buf, count, block, &out);
        ctx.submit(enc);
        let scoped = scope.finish("fetch gather").await;
        built?;
        scoped?;
        Ok(GpuRows {
            buffer: out,
            rows,
            dims: d,
            compute: self.compute.clone(),
        })
    }

    /// Benchmark helper: run `reps` complete GPU top-k computations in one submission and wait
    /// for them (so per-call submission and readback overheads are amortised).
    #[doc(hidden)]
    pub async fn bench_gpu_scans(
        &self,
        queries: &[f32],
        k: usize,
        reps: usize,
    ) -> Result<(), KernelError> {
        let b = check_query(self.layout.dims, self.n, queries, k, None)?;
        let (store, ctx) = self.gpu_parts()?;
        if self.n == 0 || b > gpu::MAX_BATCH {
            return Err(KernelError::InvalidArgument {
                name: "queries",
                reason: "bench needs rows and at most 64 queries".into(),
            });
        }
        let plan = store.plan(self.n, b, k, &self.opts.tuning);
        let mut enc = ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("fetch bench"),
            });
        let mut keep = Vec::new();
        for _ in 0..reps {
            keep.push(store.encode_topk(ctx, &mut enc, &plan, self.n, queries, b, None)?);
        }
        gpu::sync(ctx, enc).await
    }

    /// The GPU launch plan a top-k of `b` queries would use (for tests and benchmarks).
    #[doc(hidden)]
    pub fn gpu_plan(&self, b: usize, k: usize) -> Option<gpu::TopkPlan> {
        self.gpu
            .as_ref()
            .map(|s| s.plan(self.n, b, k, &self.opts.tuning))
    }
}

/// Benchmark helper: the plain copy kernel over two GPU buffers of `bytes`. Time
/// [`GpuCopyBench::run`] to get the adapter's copy bandwidth (`2 * bytes * reps / seconds`:
/// every byte is read once and written once).
#[doc(hidden)]
pub struct GpuCopyBench {
    src: wgpu::Buffer,
    dst: wgpu::Buffer,
    bytes: u64,
    compute: Compute,
}

impl GpuCopyBench {
    /// Allocate the two buffers (at most one storage binding each).
    pub fn new(compute: &Compute, bytes: u64) -> Result<GpuCopyBench, KernelError> {
        let ctx = gpu_of(compute)?;
        let (src, dst) = gpu::copy_buffers(ctx, bytes)?;
        Ok(GpuCopyBench {
            src,
            dst,
            bytes: bytes.next_multiple_of(16),
            compute: compute.clone(),
        })
    }

    /// Bytes copied per run.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// `reps` copies in one submission, waited for.
    pub async fn run(&self, reps: usize) -> Result<(), KernelError> {
        let ctx = gpu_of(&self.compute)?;
        let mut enc = ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("fetch copy bench"),
            });
        gpu::encode_copy(
            ctx,
            &mut enc,
            &self.src,
            &self.dst,
            (self.bytes / 16) as usize,
            reps,
        )?;
        gpu::sync(ctx, enc).await
    }
}
