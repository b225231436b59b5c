//! [`Mnemo`]: the memory engine — remember / recall with hybrid ranking over the episodic store.
//!
//! The store ([`crate::store::Store`]) is the source of truth; the engine keeps derived,
//! in-memory indexes of it and never anything the store could not rebuild:
//! - the **row table** (`rows`): id, namespace, event time, importance, tags per live episode;
//! - the **vector bank** (`bank`): every episode's search vector in a memory-fetch `FlatBank`
//!   (f32; GPU + CPU mirror), searched per query by the exact flat top-k on the CPU or the GPU,
//!   or — for stores of at least [`HIER_MIN_ROWS`] episodes — by the hierarchical index
//!   (`HierIndex`, ids = rows, kept incrementally and persisted in the engine blob);
//! - the **BM25 index** ([`crate::engine::lexical`]), statistics per namespace;
//! - the **fading context** per namespace (`context`, the recurrence kernel's state).
//!
//! Invariants (checked by the model-based tests):
//! - **Consistency with a sequence.** The indexes reflect exactly the store's state at the change
//!   sequence `seq` they record. A write of this engine is applied to them right after its commit
//!   when it was the only change since `seq`; otherwise (another tab wrote) the engine catches up
//!   through the store's change feed (`changes_since` + `get_many`), which is idempotent.
//! - **One operation at a time.** Every operation on the indexes holds an async lock, so a JS
//!   caller never sees a half-applied write.
//! - **Deleted episodes never come back.** A delete removes the row from the allow-set, the bank
//!   and the BM25 index before the call resolves; a recall that races another tab's delete
//!   fetches its hits' records and, if one is gone, catches up and ranks again.
//! - **Deterministic.** With the exact flat paths (CPU or GPU), for a given store state, recall's
//!   result does not depend on the history of the indexes or on the path: candidates are
//!   re-scored exactly (f64 cosine of the stored vectors, BM25), ties go to the lower id, and the
//!   candidate cut is verified with the threshold-algorithm bound (see
//!   [`crate::engine::recall`]). The hierarchical path (large stores) is approximate
//!   (recall@10 >= 0.99 against exact on the data measured) and claims no exactness
//!   ([`VectorPath::exact`] is false: no deepening, no bound); its answer is deterministic for a
//!   given index, and the index's shape depends on the order of the writes that built it.
//! - **Persisted derived state is consistent.** The engine blob (BM25 + attributes + the
//!   hierarchical index's structure, whose vectors are the bank rows) is written
//!   with the sequence it reflects; open loads it and applies `changes_since(blob.seq)` instead of
//!   rebuilding, and rebuilds from the records when the blob is missing, stale beyond the change
//!   log, corrupt, or disagrees with the vectors.

mod bank;
mod context;
mod embedder;
mod error;
mod persist;
mod rows;
#[doc(hidden)]
pub mod testing;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

pub use bank::{engine_beam, VectorPath, AUTO_GPU_MIN_BYTES, HIER_MIN_ROWS};
pub use context::ContextConfig;
pub use embedder::{EmbedderInfo, EncoderPath};
pub use error::{MnemoError, Result};
pub use rows::Filter;

use crate::compute::{Backend, Compute};
use crate::engine::embed::HashedNgrams;
use crate::engine::fusion::{
    fuse, lexical_parts, vector_parts, Candidate, FusionConfig, LexicalNorm, Parts, VectorNorm,
    Weights,
};
use crate::engine::lexical::{by_score_then_id, Allow, LexHit, LexicalIndex, LexicalQuery};
use crate::engine::recall::dot_f64;
use crate::engine::recency::{Recency, DEFAULT_HALF_LIFE_MS};
use crate::engine::DocId;
use crate::gpu::AdapterSummary;
use crate::store::backend::Backend as StoreBackend;
use crate::store::episode::{
    norm_time, now_ms, validate_new_in, validate_patch, DEFAULT_IMPORTANCE,
};
use crate::store::{
    Durability, Episode, ImportReport, Metadata, NewEpisode, OpenOptions, Patch, Store, StoreError,
    VectorSet,
};

use crate::store::lock::AsyncLock;
use bank::{search_vector, VectorBank};
use context::Contexts;
use embedder::Embedder;
use rows::{Attrs, Row, RowTable};

/// Largest `k` of a recall.
pub const MAX_K: usize = 10_000;
/// `k` when the caller does not say.
pub const DEFAULT_K: usize = 10;
/// Episodes fetched per `get_many` when the engine reads records in bulk (rebuilds).
const FETCH_CHUNK: usize = 1024;

/// Default weights for stores whose embeddings come from the built-in `'hashed-ngrams'`
/// embedder (lexical quality): BM25 carries the ranking, the hashed vector adds sub-word
/// matches. Chosen like [`Weights::DEFAULT`], by leave-one-conversation-out cross-validation on
/// the LoCoMo dev conversations with hashed-ngrams embeddings (every fold chose vector 0.35;
/// pooled held-out any@10 0.596 against 0.580 for BM25 alone and 0.563 with the MiniLM
/// weights): `cargo run --release --example eval_hashed_weights`.
pub const HASHED_WEIGHTS: Weights = Weights {
    vector: 0.35,
    lexical: 0.65,
    recency: 0.0,
    importance: 0.05,
};

/// Which memory-fetch path answers vector candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FetchPolicy {
    /// Per query, the path measured to be fastest for the bank's size (GPU readback costs
    /// milliseconds, so small banks stay on the CPU).
    #[default]
    Auto,
    /// The GPU whenever there is one.
    Gpu,
    /// Always the CPU.
    Cpu,
}

impl FetchPolicy {
    /// Parse the JS spelling: `'auto'`, `'webgpu'`/`'gpu'` or `'cpu'`.
    pub fn parse(s: &str) -> Option<FetchPolicy> {
        match s {
            "auto" => Some(FetchPolicy::Auto),
            "webgpu" | "gpu" => Some(FetchPolicy::Gpu),
            "cpu" => Some(FetchPolicy::Cpu),
            _ => None,
        }
    }
}

/// The embedder the engine runs itself when a call gives text without an embedding.
#[derive(Clone, Default)]
pub enum EmbedderKind {
    /// None: every `remember` must carry its embedding (the JS layer also accepts a function).
    #[default]
    None,
    /// The built-in `'hashed-ngrams'` embedder ([`HashedNgrams`]).
    HashedNgrams,
    /// The MiniLM text encoder (all-MiniLM-L6-v2, 384 dims: the store's `dims` must be 384),
    /// on the engine's GPU device or its CPU path per `path` (Cargo feature `encoder`).
    #[cfg(feature = "encoder")]
    Encoder {
        /// The loaded model (shared: engines opened on the same weights can share it).
        encoder: Rc<crate::encoder::TextEncoder>,
        /// Where it runs.
        path: EncoderPath,
    },
}

impl EmbedderKind {
    /// The default fusion weights for embeddings of this kind.
    pub fn default_weights(&self) -> Weights {
        match self {
            EmbedderKind::HashedNgrams => HASHED_WEIGHTS,
            EmbedderKind::None => Weights::DEFAULT,
            #[cfg(feature = "encoder")]
            EmbedderKind::Encoder { .. } => Weights::DEFAULT,
        }
    }
}

impl std::fmt::Debug for EmbedderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EmbedderKind::None => f.write_str("None"),
            EmbedderKind::HashedNgrams => f.write_str("HashedNgrams"),
            #[cfg(feature = "encoder")]
            EmbedderKind::Encoder { path, .. } => f
                .debug_struct("Encoder")
                .field("model", &crate::encoder::TextEncoder::ALL_MINILM_L6_V2)
                .field("path", path)
                .finish(),
        }
    }
}

/// Options of [`Mnemo::open`].
#[derive(Debug, Clone)]
pub struct MnemoOptions {
    /// Embedding dimension: required to create a store, checked against an existing one.
    pub dims: Option<usize>,
    /// Write durability of the store (default strict).
    pub durability: Durability,
    /// The built-in embedder, if any.
    pub embedder: EmbedderKind,
    /// Memory-fetch path policy (default auto); a recall may override it.
    pub fetch: FetchPolicy,
    /// Default fusion weights (default: [`Weights::DEFAULT`], or [`HASHED_WEIGHTS`] with the
    /// hashed-ngrams embedder).
    pub weights: Option<Weights>,
    /// Default recency half-life in ms (default 30 days).
    pub half_life_ms: f64,
    /// Fading-context settings.
    pub context: ContextConfig,
    /// Keep the hierarchical index once the store holds this many live episodes, and search it
    /// for recalls whose filter allows this many (default [`HIER_MIN_ROWS`]; `usize::MAX`: never).
    pub index_min_rows: usize,
}

impl Default for MnemoOptions {
    fn default() -> Self {
        MnemoOptions {
            dims: None,
            durability: Durability::Strict,
            embedder: EmbedderKind::None,
            fetch: FetchPolicy::Auto,
            weights: None,
            half_life_ms: DEFAULT_HALF_LIFE_MS,
            context: ContextConfig::default(),
            index_min_rows: HIER_MIN_ROWS,
        }
    }
}

/// Something to remember.
#[derive(Debug, Clone, PartialEq)]
pub struct Memory {
    /// The text (1..=64 KiB of UTF-8).
    pub text: String,
    /// Its embedding (`dims` values); `None` = computed by the engine's embedder.
    pub embedding: Option<Vec<f32>>,
    /// Namespace (a conversation, user, agent...).
    pub namespace: String,
    /// Event time, ms since the Unix epoch (default: now).
    pub time: Option<f64>,
    /// Role or speaker.
    pub role: String,
    /// Metadata (a JSON object).
    pub meta: Metadata,
    /// Importance in `[0, 1]` (default 0.5).
    pub importance: Option<f32>,
    /// Tags.
    pub tags: Vec<String>,
}

impl Memory {
    /// `text` in `namespace`, everything else default.
    pub fn new(namespace: impl Into<String>, text: impl Into<String>) -> Self {
        Memory {
            text: text.into(),
            embedding: None,
            namespace: namespace.into(),
            time: None,
            role: String::new(),
            meta: Metadata::empty(),
            importance: None,
            tags: Vec::new(),
        }
    }

    /// With an embedding.
    pub fn with_embedding(mut self, e: Vec<f32>) -> Self {
        self.embedding = Some(e);
        self
    }

    /// With an event time.
    pub fn at(mut self, t: f64) -> Self {
        self.time = Some(t);
        self
    }
}

/// A recall.
#[derive(Debug, Clone, PartialEq)]
pub struct RecallQuery {
    /// Query embedding (`None`: computed from `text` by the embedder, if there is one).
    pub embedding: Option<Vec<f32>>,
    /// Query text for BM25 (and for the embedder).
    pub text: Option<String>,
    /// Hits wanted (1..=[`MAX_K`]).
    pub k: usize,
    /// Namespace / time / tag filters.
    pub filter: Filter,
    /// Fusion weights (default: the engine's).
    pub weights: Option<Weights>,
    /// Recency half-life in ms (default: the engine's).
    pub half_life_ms: Option<f64>,
    /// "Now" for recency, ms since the epoch (default: the clock).
    pub now_ms: Option<f64>,
    /// Mix the fading context of the namespaces in scope into the query embedding.
    pub context: bool,
    /// Memory-fetch path for this query (default: the engine's policy).
    pub fetch: Option<FetchPolicy>,
    /// Read each hit's record (text, role, metadata, tags); `false` returns ids, scores and
    /// parts only (no store read).
    pub payload: bool,
    /// Candidates fetched per list before the threshold check deepens (default
    /// `max(100, 5k)`); small values exercise the deepening in tests.
    #[doc(hidden)]
    pub depth: Option<usize>,
}

impl Default for RecallQuery {
    fn default() -> Self {
        RecallQuery {
            embedding: None,
            text: None,
            k: DEFAULT_K,
            filter: Filter::default(),
            weights: None,
            half_life_ms: None,
            now_ms: None,
            context: false,
            fetch: None,
            payload: true,
            depth: None,
        }
    }
}

/// The record part of a hit.
#[derive(Debug, Clone, PartialEq)]
pub struct HitPayload {
    /// Text.
    pub text: String,
    /// Role.
    pub role: String,
    /// Metadata.
    pub meta: Metadata,
    /// Tags.
    pub tags: Vec<String>,
}

/// One recalled episode.
#[derive(Debug, Clone, PartialEq)]
pub struct RecallHit {
    /// Episode id.
    pub id: DocId,
    /// Fused score `Σ weight · part`.
    pub score: f64,
    /// The parts.
    pub parts: Parts,
    /// Namespace.
    pub namespace: String,
    /// Event time.
    pub time: f64,
    /// Importance.
    pub importance: f32,
    /// Text, role, metadata, tags (when the query asked for them).
    pub payload: Option<HitPayload>,
}

/// Counters of the engine (no I/O).
#[derive(Debug, Clone, PartialEq)]
pub struct MnemoStats {
    /// Live episodes.
    pub count: usize,
    /// Embedding dimension.
    pub dims: usize,
    /// Namespaces with episodes.
    pub namespaces: usize,
    /// Where the last recall's vector search ran.
    pub backend: Backend,
    /// How the last recall found its vector candidates.
    pub path: VectorPath,
    /// Whether a GPU device is available to the engine.
    pub gpu: bool,
    /// The GPU adapter, if any.
    pub adapter: Option<AdapterSummary>,
    /// Estimated bytes the store holds for this engine (records, vectors, engine blob).
    pub bytes_on_disk: u64,
    /// The store sequence the indexes reflect.
    pub seq: u64,
}

/// How the last load of the indexes went (open, or a reload after the change log was lost).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoadReport {
    /// The persisted engine blob was used (not rebuilt from the records).
    pub from_blob: bool,
    /// Episodes whose records had to be read (changes since the blob, or all on a rebuild).
    pub refetched: usize,
    /// Episodes loaded.
    pub episodes: usize,
    /// The hierarchical index was loaded from the blob (not rebuilt).
    pub index_from_blob: bool,
    /// The hierarchical index is present after the load.
    pub index: bool,
}

/// The in-memory indexes.
struct Inner {
    rows: RowTable,
    bank: VectorBank,
    lexical: LexicalIndex,
    contexts: Contexts,
    seq: u64,
    dirty_ops: usize,
    dirty_rows: usize,
}

/// A row to insert.
struct NewRow {
    id: DocId,
    namespace: String,
    time: f64,
    search: Vec<f32>,
    attrs: Attrs,
    text: String,
}

/// Called with the new sequence after another connection committed a write.
pub type ChangeHook = Rc<dyn Fn(u64)>;

/// What the engine learned from other connections' notices.
#[derive(Default)]
struct Notices {
    seq: Cell<u64>,
    forced: Cell<bool>,
    hook: RefCell<Option<ChangeHook>>,
}

/// The indexes taken out of their cell for the duration of an operation (under the lock);
/// put back on drop.
struct Taken<'a> {
    cell: &'a RefCell<Option<Inner>>,
    inner: Option<Inner>,
}

impl std::ops::Deref for Taken<'_> {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        self.inner.as_ref().expect("present until dropped")
    }
}

impl std::ops::DerefMut for Taken<'_> {
    fn deref_mut(&mut self) -> &mut Inner {
        self.inner.as_mut().expect("present until dropped")
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        *self.cell.borrow_mut() = self.inner.take();
    }
}

/// A ranked hit before its record is read.
#[derive(Debug, Clone)]
struct Ranked {
    id: DocId,
    score: f64,
    parts: Parts,
    namespace: String,
    time: f64,
    importance: f32,
}

fn record_bytes(
    ns: &str,
    role: &str,
    text: &str,
    meta: &Metadata,
    tags: &[String],
    dims: usize,
) -> u32 {
    let b = 56
        + ns.len()
        + role.len()
        + text.len()
        + meta.as_str().len()
        + tags.iter().map(|t| t.len() + 2).sum::<usize>()
        + dims * 4;
    b.min(u32::MAX as usize) as u32
}

impl Inner {
    fn new(compute: &Compute, dims: usize, ctx: ContextConfig, index_min: usize) -> Result<Self> {
        Ok(Inner {
            rows: RowTable::default(),
            bank: VectorBank::new(compute, dims, index_min)?,
            lexical: LexicalIndex::new(),
            contexts: Contexts::new(dims, ctx)?,
            seq: 0,
            dirty_ops: 0,
            dirty_rows: 0,
        })
    }

    /// Insert new episodes (ids not yet present).
    async fn insert(&mut self, rows: Vec<NewRow>) -> Result<()> {
        let mut search = Vec::with_capacity(rows.iter().map(|r| r.search.len()).sum());
        for r in &rows {
            search.extend_from_slice(&r.search);
        }
        self.bank.append(&search).await?;
        debug_assert_eq!(self.bank.len(), self.rows.len() + rows.len());
        for r in rows {
            let row = self.rows.push(r.id, &r.namespace, r.time, &r.attrs);
            self.lexical.add(r.id, &r.namespace, &r.text)?;
            let ns = self.rows.ns_index(row);
            let first = self.rows.namespace_len(ns) == 1;
            self.contexts.on_append(ns, r.id, &r.search, first)?;
        }
        Ok(())
    }

    /// Remove episode `id` wherever it is indexed; whether it was.
    fn delete(&mut self, id: DocId) -> bool {
        let lex = self.lexical.remove(id);
        match self.rows.row_of(id) {
            Some(r) => {
                let ns = self.rows.ns_index(r);
                self.rows.remove(r);
                self.bank.remove(r);
                self.contexts.invalidate(ns);
                true
            }
            None => lex,
        }
    }

    /// Rebuild the row table and the bank without holes once removed rows outnumber live ones
    /// (and at least 1,024): rows are renumbered in order, so id order is kept.
    async fn maybe_compact(&mut self, compute: &Compute, dims: usize) -> Result<()> {
        let holes = self.rows.len() - self.rows.live_count();
        if holes < 1024 || holes < self.rows.live_count() {
            return Ok(());
        }
        let mut rows = RowTable::default();
        let mut bank = VectorBank::new(compute, dims, self.bank.hier_min_rows())?;
        let mut search = Vec::with_capacity(self.rows.live_count() * dims);
        for r in self.rows.live_rows() {
            rows.push(
                self.rows.id(r),
                self.rows.namespace(r),
                self.rows.time(r),
                &self.rows.attrs(r),
            );
            search.extend_from_slice(&self.bank.row(r));
        }
        bank.append(&search).await?;
        self.rows = rows;
        self.bank = bank;
        self.ensure_index();
        // Namespace numbers changed: every fading state is recomputed at its next use.
        self.contexts = Contexts::new(dims, self.contexts.config())?;
        Ok(())
    }

    /// Build (or drop) the hierarchical index as the live row count asks.
    fn ensure_index(&mut self) {
        let (n, min) = (self.rows.live_count(), self.bank.hier_min_rows());
        let wanted = if self.bank.has_index() {
            n < min / 2
        } else {
            n > 0 && n >= min
        };
        if wanted {
            // Only then the O(rows) list of live rows.
            let live: Vec<Row> = self.rows.live_rows().collect();
            self.bank.ensure_index(&live);
        }
    }

    /// Make the indexes hold `eps` as they are now (insert new ones, refresh known ones).
    async fn upsert(&mut self, eps: Vec<Episode>, dims: usize) -> Result<()> {
        let mut new = Vec::new();
        for e in eps {
            let search = search_vector(&e.embedding);
            let attrs = Attrs {
                importance: e.importance,
                bytes: record_bytes(&e.namespace, &e.role, &e.text, &e.metadata, &e.tags, dims),
                tags: e.tags,
            };
            match self.rows.row_of(e.id) {
                Some(r) => {
                    if self.bank.row(r) != search.as_slice() {
                        self.bank.set_row(r, &search).await?;
                        let ns = self.rows.ns_index(r);
                        self.contexts.invalidate(ns);
                    }
                    self.rows.set_attrs(r, &attrs);
                    self.lexical.remove(e.id);
                    self.lexical.add(e.id, &e.namespace, &e.text)?;
                }
                None => {
                    // New ids must follow every row (rows are in id order); anything else is
                    // inserted too, it only loses that property (ties are broken by id anyway).
                    self.lexical.remove(e.id);
                    new.push(NewRow {
                        id: e.id,
                        namespace: e.namespace,
                        time: e.event_time,
                        search,
                        attrs,
                        text: e.text,
                    });
                }
            }
        }
        if !new.is_empty() {
            self.insert(new).await?;
        }
        Ok(())
    }
}

/// The memory engine over a store backend `B` (IndexedDB in the browser, memory natively).
pub struct Mnemo<B: StoreBackend> {
    store: Store<B>,
    compute: Compute,
    opts: MnemoOptions,
    weights: Weights,
    embedder: Option<Embedder>,
    lock: AsyncLock,
    inner: RefCell<Option<Inner>>,
    notices: Rc<Notices>,
    last_path: Cell<VectorPath>,
    counts: Cell<(usize, usize, u64, u64)>,
    blob_bytes: Cell<u64>,
    load_report: Cell<LoadReport>,
}

impl<B: StoreBackend> Mnemo<B> {
    /// Open (or create, with `opts.dims`) the engine over the store on `backend`, running
    /// kernels on `compute`. Loads the vectors and the persisted engine blob and applies the
    /// changes made since the blob was written.
    pub async fn open(backend: B, compute: Compute, opts: MnemoOptions) -> Result<Self> {
        opts.context.validate()?;
        #[cfg(feature = "encoder")]
        let mut opts = opts;
        #[cfg(feature = "encoder")]
        if let EmbedderKind::Encoder { encoder, .. } = &opts.embedder {
            let d = encoder.dims();
            match opts.dims {
                None => opts.dims = Some(d),
                Some(got) if got != d => {
                    return Err(MnemoError::DimensionMismatch {
                        field: "dims".into(),
                        expected: d,
                        got,
                    })
                }
                Some(_) => {}
            }
        }
        if let Some(w) = &opts.weights {
            w.validate()?;
        }
        Recency {
            half_life_ms: opts.half_life_ms,
        }
        .validate()?;
        let store = Store::open(
            backend,
            OpenOptions {
                dims: opts.dims,
                durability: opts.durability,
                ..Default::default()
            },
        )
        .await?;
        let dims = store.dims();
        let embedder = match &opts.embedder {
            EmbedderKind::HashedNgrams => Some(Embedder::Hashed(HashedNgrams::new(dims)?)),
            #[cfg(feature = "encoder")]
            EmbedderKind::Encoder { encoder, path } => {
                if encoder.dims() != dims {
                    // An existing store of another dimension.
                    return Err(MnemoError::DimensionMismatch {
                        field: "dims".into(),
                        expected: encoder.dims(),
                        got: dims,
                    });
                }
                Some(Embedder::Encoder {
                    encoder: encoder.clone(),
                    compute: path.compute(&compute),
                })
            }
            EmbedderKind::None => None,
        };
        let weights = opts
            .weights
            .unwrap_or_else(|| opts.embedder.default_weights());
        let notices = Rc::new(Notices::default());
        let n = notices.clone();
        store.on_remote_change(Some(Rc::new(move |seq: u64| {
            if seq > n.seq.get() {
                n.seq.set(seq);
            }
            let hook = n.hook.borrow().clone();
            if let Some(h) = hook {
                h(seq);
            }
        })));
        let m = Mnemo {
            store,
            compute,
            opts,
            weights,
            embedder,
            lock: AsyncLock::default(),
            inner: RefCell::new(None),
            notices,
            last_path: Cell::new(VectorPath::CpuExact),
            counts: Cell::new((0, 0, 0, 0)),
            blob_bytes: Cell::new(0),
            load_report: Cell::new(LoadReport::default()),
        };
        {
            let _g = m.lock.lock().await;
            let (mut inner, replayed) = m.load().await?;
            if replayed > 0 {
                // The blob was missing or behind: write the current one so the next open is fast.
                let _ = m.persist(&mut inner).await;
            }
            m.update_counts(&inner);
            *m.inner.borrow_mut() = Some(inner);
        }
        Ok(m)
    }

    /// How the indexes were last loaded (at open, or after the change log was lost).
    pub fn load_report(&self) -> LoadReport {
        self.load_report.get()
    }

    /// The store underneath (reads, export; writes should go through the engine).
    pub fn store(&self) -> &Store<B> {
        &self.store
    }

    /// Embedding dimension.
    pub fn dims(&self) -> usize {
        self.store.dims()
    }

    /// The compute device.
    pub fn compute(&self) -> &Compute {
        &self.compute
    }

    /// The default fusion weights.
    pub fn weights(&self) -> Weights {
        self.weights
    }

    /// The engine's own embedder (name and where it runs), if configured.
    pub fn embedder(&self) -> Option<EmbedderInfo> {
        self.embedder.as_ref().map(Embedder::info)
    }

    /// The embeddings of `texts` by the engine's embedder (`NO_EMBEDDER` without one), one
    /// vector of `dims` values per text, in order; the text encoder runs them in length-sorted
    /// batches of 32. Texts may be empty; each is at most 64 KiB (`INVALID_INPUT` naming
    /// `texts[i]`). Touches no index and no store.
    pub async fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let Some(e) = &self.embedder else {
            return Err(MnemoError::NoEmbedder {
                field: "texts".into(),
            });
        };
        for (i, t) in texts.iter().enumerate() {
            if t.len() > crate::store::MAX_TEXT_BYTES {
                return Err(MnemoError::invalid(
                    format!("texts[{i}]"),
                    format!("longer than {} bytes", crate::store::MAX_TEXT_BYTES),
                ));
            }
        }
        e.embed(texts).await
    }

    /// Call `f(seq)` after another connection (tab) committed a write, once the engine noted it
    /// (the JS layer uses it to catch up in the background). `None` removes it.
    pub fn set_change_hook(&self, f: Option<ChangeHook>) {
        *self.notices.hook.borrow_mut() = f;
    }

    /// Counters (no I/O).
    pub fn stats(&self) -> MnemoStats {
        let (count, namespaces, bytes, seq) = self.counts.get();
        let path = self.last_path.get();
        MnemoStats {
            count,
            dims: self.dims(),
            namespaces,
            backend: path.backend(),
            path,
            gpu: self.compute.gpu_context().is_some(),
            adapter: self.compute.adapter_info().cloned(),
            bytes_on_disk: bytes + self.blob_bytes.get(),
            seq,
        }
    }

    fn update_counts(&self, inner: &Inner) {
        self.counts.set((
            inner.rows.live_count(),
            inner.rows.live_namespace_count(),
            inner.rows.live_bytes(),
            inner.seq,
        ));
    }

    fn take(&self) -> Result<Taken<'_>> {
        let inner = self.inner.borrow_mut().take().ok_or_else(|| {
            MnemoError::Store(StoreError::Backend(
                "the engine's indexes are unavailable (an earlier operation was interrupted)"
                    .into(),
            ))
        })?;
        Ok(Taken {
            cell: &self.inner,
            inner: Some(inner),
        })
    }

    fn behind(&self, inner: &Inner) -> bool {
        self.notices.forced.get()
            || self.notices.seq.get() > inner.seq
            || self.store.stats().seq > inner.seq
    }

    // -----------------------------------------------------------------------------------------
    // Loading and catching up

    /// Build the indexes from the store: the blob if usable, the vectors, then the changes since
    /// the blob. Returns the indexes and how many changes had to be replayed (episodes refetched).
    async fn load(&self) -> Result<(Inner, usize)> {
        let dims = self.dims();
        for _ in 0..4 {
            let blob = match self.store.get_blob(persist::BLOB_NAME).await? {
                Some(b) if b.version == persist::BLOB_VERSION => match persist::decode(&b.bytes) {
                    Ok(d) if d.dims == dims => {
                        self.blob_bytes.set(b.bytes.len() as u64);
                        Some((b.seq, d))
                    }
                    _ => None,
                },
                _ => None,
            };
            let vs = self.store.load_vectors().await?;
            if blob.as_ref().is_some_and(|(s, _)| *s > vs.seq) {
                continue; // another tab persisted after our vector snapshot: read again
            }
            if let Some(r) = self.build(vs, blob).await? {
                return Ok(r);
            }
        }
        Err(MnemoError::Store(StoreError::Conflict(4)))
    }

    /// Indexes from a vector snapshot and an optional blob; `None` if the store changed so much
    /// meanwhile that the change log cannot bring them up to date (the caller reads again).
    async fn build(
        &self,
        vs: VectorSet,
        blob: Option<(u64, persist::EngineBlob)>,
    ) -> Result<Option<(Inner, usize)>> {
        let dims = self.dims();
        let mut inner = Inner::new(
            &self.compute,
            dims,
            self.opts.context,
            self.opts.index_min_rows,
        )?;
        let (from_seq, mut attrs, order, index) = match blob {
            Some((s, b)) => {
                inner.lexical = b.lexical;
                (Some(s), b.attrs, b.rows, b.index)
            }
            None => (None, Default::default(), Vec::new(), None),
        };
        // Rows: the persisted row order first (episodes gone since become holes), then the
        // episodes the blob does not know, in id order.
        let mut placed = vec![false; vs.len()];
        let mut slots: Vec<Option<usize>> = Vec::with_capacity(order.len() + vs.len());
        for &id in &order {
            match (id != 0).then(|| vs.ids.binary_search(&id).ok()).flatten() {
                Some(i) if !placed[i] => {
                    placed[i] = true;
                    slots.push(Some(i));
                }
                _ => slots.push(None),
            }
        }
        slots.extend((0..vs.len()).filter(|&i| !placed[i]).map(Some));
        let mut missing: Vec<DocId> = Vec::new();
        let mut search = Vec::with_capacity(slots.len() * dims);
        for slot in slots {
            let Some(i) = slot else {
                inner.rows.push_hole();
                search.resize(search.len() + dims, 0.0);
                continue;
            };
            let id = vs.ids[i];
            let a = attrs
                .binary_search_by_key(&id, |e| e.0)
                .ok()
                .and_then(|i| attrs[i].1.take());
            let a = a.unwrap_or_else(|| {
                missing.push(id);
                Attrs {
                    importance: DEFAULT_IMPORTANCE,
                    tags: Vec::new(),
                    bytes: 0,
                }
            });
            let s = search_vector(vs.row(i));
            let row = inner.rows.push(
                id,
                &vs.namespaces[vs.namespace_of[i] as usize],
                vs.event_time[i],
                &a,
            );
            let ns = inner.rows.ns_index(row);
            let first = inner.rows.namespace_len(ns) == 1;
            inner.contexts.on_append(ns, id, &s, first)?;
            search.extend_from_slice(&s);
        }
        inner.bank.append(&search).await?;
        // The persisted index (row ids = the blob's rows, kept above), vectors from the bank.
        let index_from_blob = match &index {
            Some(b) if self.opts.index_min_rows != usize::MAX => inner.bank.load_index(b, &search),
            _ => false,
        };
        drop(search);
        for r in 0..inner.rows.len() as Row {
            if !inner.rows.is_live(r) {
                inner.bank.remove(r);
            }
        }
        // Episodes in the blob but not in the vectors were deleted since.
        for (id, a) in attrs {
            if a.is_some() {
                inner.lexical.remove(id);
            }
        }
        inner.seq = vs.seq;
        let mut replayed = 0;
        let mut rebuild = from_seq.is_none();
        if let Some(bseq) = from_seq {
            let ch = self.store.changes_since(bseq).await?;
            if ch.reset {
                rebuild = true;
            } else {
                for &id in &ch.deleted {
                    inner.delete(id);
                }
                let mut want: Vec<DocId> = ch.upserted.clone();
                want.extend(missing.iter().copied());
                want.sort_unstable();
                want.dedup();
                replayed = want.len();
                self.refetch(&mut inner, &want).await?;
                // The index holds the blob's rows: drop the rows gone since, add the new ones,
                // re-route the changed ones.
                let live: Vec<Row> = inner.rows.live_rows().collect();
                let moved: Vec<Row> = want
                    .iter()
                    .filter_map(|&id| inner.rows.row_of(id))
                    .collect();
                inner.bank.reconcile_index(&live, &moved);
                inner.seq = inner.seq.max(ch.seq);
                if inner.lexical.len() != inner.rows.live_count() {
                    rebuild = true;
                }
            }
        }
        if rebuild {
            // The change log does not cover the blob's index either: built afresh below.
            inner.bank.drop_index();
            inner.lexical = LexicalIndex::new();
            let ids: Vec<DocId> = inner.rows.live_rows().map(|r| inner.rows.id(r)).collect();
            replayed = ids.len().max(1);
            self.refetch(&mut inner, &ids).await?;
            if !self.apply_changes(&mut inner).await? {
                return Ok(None);
            }
        }
        let index_from_blob = index_from_blob && inner.bank.has_index();
        inner.ensure_index();
        self.load_report.set(LoadReport {
            index_from_blob,
            index: inner.bank.has_index(),
            from_blob: !rebuild,
            refetched: if rebuild {
                inner.rows.live_count()
            } else {
                replayed
            },
            episodes: inner.rows.live_count(),
        });
        Ok(Some((inner, replayed)))
    }

    /// Read `ids`' records and make the indexes hold them (absent ones are deleted).
    async fn refetch(&self, inner: &mut Inner, ids: &[DocId]) -> Result<()> {
        for chunk in ids.chunks(FETCH_CHUNK) {
            let eps = self.store.get_many(chunk).await?;
            let mut present = Vec::with_capacity(eps.len());
            for (id, e) in chunk.iter().zip(eps) {
                match e {
                    Some(e) => present.push(e),
                    None => {
                        inner.delete(*id);
                    }
                }
            }
            inner.upsert(present, self.dims()).await?;
        }
        Ok(())
    }

    /// Apply every change committed after `inner.seq` (by anyone). `false` when the change log
    /// no longer reaches back that far (or the store was cleared): the caller reloads.
    async fn apply_changes(&self, inner: &mut Inner) -> Result<bool> {
        self.notices.forced.set(false);
        let ch = self.store.changes_since(inner.seq).await?;
        if ch.reset {
            return Ok(false);
        }
        if ch.seq <= inner.seq {
            return Ok(true);
        }
        for &id in &ch.deleted {
            inner.delete(id);
        }
        self.refetch(inner, &ch.upserted).await?;
        inner.dirty_rows += ch.upserted.len() + ch.deleted.len();
        inner.dirty_ops += 1;
        inner.seq = ch.seq;
        Ok(true)
    }

    /// [`Self::apply_changes`], reloading everything when the log does not reach back.
    async fn catch_up(&self, inner: &mut Inner) -> Result<()> {
        if !self.apply_changes(inner).await? {
            let (fresh, _) = self.load().await?;
            let (dr, dops) = (inner.dirty_rows, inner.dirty_ops);
            *inner = fresh;
            inner.dirty_rows = dr + inner.rows.live_count();
            inner.dirty_ops = dops + 1;
        }
        Ok(())
    }

    /// Apply other tabs' writes now (recall does this by itself when it learns of them).
    pub async fn sync(&self) -> Result<()> {
        let _g = self.lock.lock().await;
        let mut inner = self.take()?;
        if self.behind(&inner) {
            self.catch_up(&mut inner).await?;
            self.maybe_persist(&mut inner).await;
            self.update_counts(&inner);
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Persistence of the derived indexes

    async fn persist(&self, inner: &mut Inner) -> Result<()> {
        let dims = self.dims();
        let index = inner.bank.index_bytes();
        let bytes = persist::encode(
            dims,
            inner.rows.row_order(),
            &inner.lexical,
            index.as_deref(),
        );
        self.store
            .put_blob(persist::BLOB_NAME, persist::BLOB_VERSION, inner.seq, &bytes)
            .await?;
        self.blob_bytes.set(bytes.len() as u64);
        inner.dirty_ops = 0;
        inner.dirty_rows = 0;
        Ok(())
    }

    /// Persist when enough changed since the last blob: 256 write operations (the store keeps
    /// 1,024 change records, so a reopen can always replay instead of rebuilding) or a quarter
    /// of the episodes (at least 1,024). A failed persist is not an error of the write that
    /// triggered it (the blob is derived; it is retried later).
    async fn maybe_persist(&self, inner: &mut Inner) {
        let _ = inner.maybe_compact(&self.compute, self.dims()).await;
        inner.ensure_index();
        let live = inner.rows.live_count();
        if inner.dirty_ops >= 256 || inner.dirty_rows >= (live / 4).max(1024) {
            let _ = self.persist(inner).await;
        }
    }

    /// Write the engine blob now if anything changed since the last one.
    pub async fn flush(&self) -> Result<()> {
        let _g = self.lock.lock().await;
        let mut inner = self.take()?;
        if inner.dirty_ops > 0 || inner.dirty_rows > 0 {
            self.persist(&mut inner).await?;
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Writes

    /// Remember one episode; returns its id.
    pub async fn remember(&self, m: Memory) -> Result<DocId> {
        let ids = self.remember_batch(vec![m], true).await?;
        Ok(ids[0])
    }

    /// Remember a batch atomically (all or nothing); returns the ids in order.
    pub async fn remember_many(&self, items: Vec<Memory>) -> Result<Vec<DocId>> {
        self.remember_batch(items, false).await
    }

    async fn remember_batch(&self, items: Vec<Memory>, single: bool) -> Result<Vec<DocId>> {
        let dims = self.dims();
        let now = now_ms();
        let prefix = |i: usize| {
            if single {
                String::new()
            } else {
                format!("episodes[{i}]")
            }
        };
        let field = |i: usize, f: &str| {
            if single {
                f.to_string()
            } else {
                format!("episodes[{i}].{f}")
            }
        };
        // Texts without an embedding: one batch through the embedder.
        let need: Vec<usize> = (0..items.len())
            .filter(|&i| items[i].embedding.is_none())
            .collect();
        let mut computed: Vec<Option<Vec<f32>>> = vec![None; items.len()];
        if let Some(&first) = need.first() {
            for &i in &need {
                crate::store::episode::check_text(&items[i].text, &field(i, "text"))?;
            }
            let Some(e) = &self.embedder else {
                return Err(MnemoError::NoEmbedder {
                    field: field(first, "embedding"),
                });
            };
            let texts: Vec<&str> = need.iter().map(|&i| items[i].text.as_str()).collect();
            for (&i, v) in need.iter().zip(e.embed(&texts).await?) {
                computed[i] = Some(v);
            }
        }
        let mut eps = Vec::with_capacity(items.len());
        let mut rows = Vec::with_capacity(items.len());
        for (i, (m, c)) in items.into_iter().zip(computed).enumerate() {
            let embedding = match (m.embedding, c) {
                (Some(e), _) | (None, Some(e)) => e,
                (None, None) => {
                    return Err(MnemoError::NoEmbedder {
                        field: field(i, "embedding"),
                    })
                }
            };
            let ep = NewEpisode {
                namespace: m.namespace,
                role: m.role,
                text: m.text,
                event_time: Some(norm_time(m.time.unwrap_or(now))),
                embedding,
                metadata: m.meta,
                importance: Some(m.importance.unwrap_or(DEFAULT_IMPORTANCE)),
                tags: m.tags,
            };
            validate_new_in(&ep, dims, || prefix(i))?;
            rows.push(NewRow {
                id: 0,
                namespace: ep.namespace.clone(),
                time: ep.event_time.unwrap_or(now),
                search: search_vector(&ep.embedding),
                attrs: Attrs {
                    importance: ep.importance.unwrap_or(DEFAULT_IMPORTANCE),
                    tags: ep.tags.clone(),
                    bytes: record_bytes(
                        &ep.namespace,
                        &ep.role,
                        &ep.text,
                        &ep.metadata,
                        &ep.tags,
                        dims,
                    ),
                },
                text: ep.text.clone(),
            });
            eps.push(ep);
        }
        if eps.is_empty() {
            return Ok(Vec::new());
        }
        let n = eps.len();
        let _g = self.lock.lock().await;
        let mut inner = self.take()?;
        let before = inner.seq;
        let ids = self.store.put_many(eps).await?;
        if self.store.stats().seq == before + 1 && !self.notices.forced.get() {
            for (r, &id) in rows.iter_mut().zip(&ids) {
                r.id = id;
            }
            inner.insert(rows).await?;
            inner.seq = before + 1;
            inner.dirty_rows += n;
            inner.dirty_ops += 1;
        } else {
            self.catch_up(&mut inner).await?;
        }
        self.maybe_persist(&mut inner).await;
        self.update_counts(&inner);
        Ok(ids)
    }

    /// Change an episode (text, role, metadata, importance, tags, embedding). When the text
    /// changes without a new embedding and the engine has an embedder, the embedding is
    /// recomputed. `NOT_FOUND` if there is no such episode.
    pub async fn update(&self, id: DocId, mut patch: Patch) -> Result<()> {
        if let (Some(t), None, Some(h)) = (&patch.text, &patch.embedding, &self.embedder) {
            crate::store::episode::check_text(t, "text")?;
            patch.embedding = Some(h.embed_one(t).await?);
        }
        validate_patch(&patch, self.dims())?;
        let _g = self.lock.lock().await;
        let mut inner = self.take()?;
        // The store plans a write against the state this connection last saw; an id another tab
        // created since is NOT_FOUND there until the state is re-read: re-read and retry once.
        if let Err(e) = self.store.update(id, patch.clone()).await {
            match e {
                StoreError::NotFound { .. } => {
                    self.store.seq().await?;
                    self.store.update(id, patch).await?;
                }
                e => return Err(e.into()),
            }
        }
        self.catch_up(&mut inner).await?;
        self.maybe_persist(&mut inner).await;
        self.update_counts(&inner);
        Ok(())
    }

    /// Forget episodes (atomically; `NOT_FOUND` and nothing deleted if one is missing).
    pub async fn forget_many(&self, ids: &[DocId]) -> Result<()> {
        let _g = self.lock.lock().await;
        let mut inner = self.take()?;
        let before = inner.seq;
        if let Err(e) = self.store.delete_many(ids).await {
            match e {
                // See `update`: a stale view of the store; re-read and retry once.
                StoreError::NotFound { .. } => {
                    self.store.seq().await?;
                    self.store.delete_many(ids).await?;
                }
                e => return Err(e.into()),
            }
        }
        if self.store.stats().seq == before + 1 && !self.notices.forced.get() {
            for &id in ids {
                inner.delete(id);
            }
            inner.seq = before + 1;
            inner.dirty_rows += ids.len();
            inner.dirty_ops += 1;
        } else {
            self.catch_up(&mut inner).await?;
        }
        self.maybe_persist(&mut inner).await;
        self.update_counts(&inner);
        Ok(())
    }

    /// Forget one episode.
    pub async fn forget(&self, id: DocId) -> Result<()> {
        self.forget_many(&[id]).await
    }

    /// Forget every episode of a namespace; returns how many (`NOT_FOUND` if it has none).
    pub async fn forget_namespace(&self, namespace: &str) -> Result<usize> {
        let _g = self.lock.lock().await;
        let mut inner = self.take()?;
        let before = inner.seq;
        let n = self.store.delete_namespace(namespace).await?;
        let ns = inner.rows.namespace_id(namespace);
        let local: Vec<Row> = ns.map_or_else(Vec::new, |ns| inner.rows.namespace_rows(ns));
        if self.store.stats().seq == before + 1 && !self.notices.forced.get() && local.len() == n {
            for r in local {
                let id = inner.rows.id(r);
                inner.delete(id);
            }
            inner.seq = before + 1;
            inner.dirty_rows += n;
            inner.dirty_ops += 1;
        } else {
            self.catch_up(&mut inner).await?;
        }
        self.maybe_persist(&mut inner).await;
        self.update_counts(&inner);
        Ok(n)
    }

    /// The whole store as a portable file (the store's export format).
    pub async fn export(&self) -> Result<Vec<u8>> {
        Ok(self.store.export().await?)
    }

    /// Import an export into this engine's store (validated whole first; nothing written on
    /// error) and index it.
    pub async fn import(&self, bytes: &[u8]) -> Result<ImportReport> {
        let _g = self.lock.lock().await;
        let mut inner = self.take()?;
        let r = self.store.import(bytes).await?;
        self.catch_up(&mut inner).await?;
        self.maybe_persist(&mut inner).await;
        self.update_counts(&inner);
        Ok(r)
    }

    /// Persist the derived indexes if needed and close the store; later calls fail with
    /// `STORE_CLOSED`.
    pub async fn close(&self) -> Result<()> {
        let _g = self.lock.lock().await;
        if let Ok(mut inner) = self.take() {
            if inner.dirty_ops > 0 || inner.dirty_rows > 0 {
                let _ = self.persist(&mut inner).await;
            }
        }
        self.store.on_remote_change(None);
        self.store.close();
        Ok(())
    }

    /// Delete the whole store (every other connection is closed and told).
    pub async fn destroy(&self) -> Result<()> {
        let _g = self.lock.lock().await;
        self.store.on_remote_change(None);
        Ok(self.store.destroy().await?)
    }

    // -----------------------------------------------------------------------------------------
    // Recall

    /// Recall: the `k` best episodes for the query under the filters, fused from vector,
    /// lexical, recency and importance evidence. Deterministic for a given store state; a
    /// deleted episode is never returned.
    pub async fn recall(&self, q: &RecallQuery) -> Result<Vec<RecallHit>> {
        if q.k == 0 || q.k > MAX_K {
            return Err(MnemoError::invalid(
                "k",
                format!("must be in 1..={MAX_K}, got {}", q.k),
            ));
        }
        let dims = self.dims();
        if let Some(e) = &q.embedding {
            if e.len() != dims {
                return Err(MnemoError::DimensionMismatch {
                    field: "embedding".into(),
                    expected: dims,
                    got: e.len(),
                });
            }
            if let Some(i) = e.iter().position(|v| !v.is_finite()) {
                return Err(MnemoError::Store(StoreError::NonFinite {
                    field: "embedding".into(),
                    index: i,
                }));
            }
        }
        for (name, v) in [("since", q.filter.since), ("until", q.filter.until)] {
            if v.is_some_and(f64::is_nan) {
                return Err(MnemoError::invalid(name, "must be a number"));
            }
        }
        if q.text
            .as_ref()
            .is_some_and(|t| t.len() > crate::store::MAX_TEXT_BYTES)
        {
            return Err(MnemoError::invalid(
                "text",
                format!("longer than {} bytes", crate::store::MAX_TEXT_BYTES),
            ));
        }
        let cfg = FusionConfig {
            weights: q.weights.unwrap_or(self.weights),
            recency: Recency {
                half_life_ms: q.half_life_ms.unwrap_or(self.opts.half_life_ms),
            },
            now_ms: q.now_ms.unwrap_or_else(now_ms),
            vector_norm: VectorNorm::MaxScaled,
            lexical_norm: LexicalNorm::MaxScaled,
        };
        cfg.validate()?;
        let qvec: Option<Vec<f32>> = match (&q.embedding, &q.text, &self.embedder) {
            (Some(e), _, _) => Some(e.clone()),
            (None, Some(t), Some(h)) if cfg.weights.vector > 0.0 => Some(h.embed_one(t).await?),
            _ => None,
        };
        for attempt in 0..4 {
            // One read of the store's state, so another tab's write committed before this call is
            // seen even if its notice has not arrived yet.
            self.store.seq().await?;
            let ranked = {
                let _g = self.lock.lock().await;
                let mut inner = self.take()?;
                if self.behind(&inner) {
                    self.catch_up(&mut inner).await?;
                    self.maybe_persist(&mut inner).await;
                    self.update_counts(&inner);
                }
                self.rank(&mut inner, q, &cfg, qvec.as_deref()).await?
            };
            if !q.payload || ranked.is_empty() {
                return Ok(ranked.into_iter().map(|r| hit(r, None)).collect());
            }
            let ids: Vec<DocId> = ranked.iter().map(|r| r.id).collect();
            let eps = self.fetch_payloads(&ids).await?;
            if eps.iter().all(Option::is_some) || attempt == 3 {
                return Ok(ranked
                    .into_iter()
                    .zip(eps)
                    .filter_map(|(r, e)| e.map(|e| hit(r, Some(e))))
                    .collect());
            }
            // A hit was deleted by another connection since the indexes were brought up to date.
            self.notices.forced.set(true);
        }
        unreachable!("the last attempt returns")
    }

    /// The records (text, role, metadata, tags) of `ids`, `None` where an episode is gone.
    ///
    /// Records only (`Store::get_records`): `Store::get_many` would also read every vector
    /// segment holding a hit, which dominated recall latency on IndexedDB.
    async fn fetch_payloads(&self, ids: &[DocId]) -> Result<Vec<Option<HitPayload>>> {
        Ok(self
            .store
            .get_records(ids)
            .await?
            .into_iter()
            .map(|r| {
                r.map(|r| HitPayload {
                    text: r.text,
                    role: r.role,
                    meta: r.metadata,
                    tags: r.tags,
                })
            })
            .collect())
    }

    /// Rank under the lock: candidates, exact re-scoring, fusion, threshold check.
    async fn rank(
        &self,
        inner: &mut Inner,
        q: &RecallQuery,
        cfg: &FusionConfig,
        qvec: Option<&[f32]>,
    ) -> Result<Vec<Ranked>> {
        let Inner {
            rows,
            bank,
            lexical,
            contexts,
            ..
        } = inner;
        let allowed = rows.allowed(&q.filter);
        if allowed.rows.is_empty() {
            return Ok(Vec::new());
        }
        let w = cfg.weights;
        let k = q.k;
        // The search vector, with the fading context mixed in when asked.
        let qv: Option<Vec<f32>> = match qvec {
            None => None,
            Some(e) => {
                let sv = search_vector(e);
                if q.context {
                    let scope = allowed
                        .namespaces
                        .iter()
                        .map(|&ns| (ns, ns_rows_fn(rows, bank, ns)))
                        .collect();
                    Some(contexts.mix_query(&sv, scope)?)
                } else {
                    Some(sv)
                }
            }
        };
        // Lexical queries, one per namespace in scope (BM25 statistics are per namespace).
        let lexq: Vec<(u32, LexicalQuery<'_>)> = match &q.text {
            Some(t) => allowed
                .namespaces
                .iter()
                .map(|&n| (n, lexical.query(rows.namespace_name(n), t)))
                .filter(|(_, lq)| !lq.is_empty())
                .collect(),
            None => Vec::new(),
        };
        let lex_of: HashMap<u32, usize> =
            lexq.iter().enumerate().map(|(i, (n, _))| (*n, i)).collect();
        let use_vec = qv.is_some() && w.vector > 0.0;
        let use_lex = !lexq.is_empty() && w.lexical > 0.0;
        if !use_vec && !use_lex && (qv.is_some() || q.text.is_some()) {
            return Ok(Vec::new());
        }
        let allow_id = |id: DocId| rows.row_of(id).is_some_and(|r| allowed.contains(r));
        let id_of = |r: Row| rows.id(r);
        let exact_bound = true; // max-scaled parts (the engine's normalisations)
        let mut depth = q
            .depth
            .unwrap_or(
                crate::engine::recall::DEFAULT_DEPTH_MIN
                    .max(crate::engine::recall::DEPTH_FACTOR.saturating_mul(k)),
            )
            .max(k)
            .max(1);
        let eps_f32 = 1e-6 + self.dims() as f64 * 1.2e-7;
        loop {
            let mut cand_rows: Vec<Row> = Vec::new();
            let mut vec_cut: Option<f64> = None;
            let mut path_exact = true;
            if use_vec {
                let c = bank
                    .search(
                        qv.as_deref().expect("use_vec"),
                        depth,
                        &allowed,
                        q.fetch.unwrap_or(self.opts.fetch),
                        &id_of,
                    )
                    .await?;
                self.last_path.set(c.path);
                path_exact = c.path.exact();
                if allowed.len() > depth {
                    vec_cut = c.hits.last().map(|h| h.1 as f64 + eps_f32);
                }
                cand_rows.extend(c.hits.iter().map(|h| h.0));
            } else if !use_lex {
                cand_rows.extend(allowed.rows.iter().copied());
            }
            let mut lex_cut: Option<f64> = None;
            if use_lex {
                let mut merged: Vec<LexHit> = Vec::new();
                let mut truncated = false;
                for (_, lq) in &lexq {
                    let h = lq.top_k(depth, Allow::Predicate(&allow_id));
                    truncated |= h.len() == depth;
                    merged.extend(h);
                }
                crate::sort::sort_by(&mut merged, by_score_then_id);
                if merged.len() > depth {
                    truncated = true;
                    merged.truncate(depth);
                }
                if truncated && merged.len() == depth {
                    lex_cut = merged.last().map(|h| h.score);
                }
                cand_rows.extend(merged.iter().filter_map(|h| rows.row_of(h.id)));
            }
            crate::sort::sort(&mut cand_rows);
            cand_rows.dedup();
            let cands: Vec<Candidate> = cand_rows
                .iter()
                .map(|&r| {
                    let id = rows.id(r);
                    let bm25 = lex_of
                        .get(&rows.ns_index(r))
                        .and_then(|&i| lexq[i].1.score(id));
                    Candidate {
                        id,
                        cosine: if use_vec {
                            qv.as_deref().map(|v| dot_f64(v, &bank.row(r)))
                        } else {
                            None
                        },
                        bm25,
                        time_ms: rows.time(r),
                        importance: rows.importance(r) as f64,
                    }
                })
                .collect();
            let hits = fuse(&cands, cfg)?;
            let covered = vec_cut.is_none() && lex_cut.is_none();
            let done = covered || !exact_bound || !path_exact || {
                let probe = Candidate {
                    id: DocId::MAX,
                    cosine: if use_vec {
                        vec_cut.or(Some(f64::NEG_INFINITY))
                    } else {
                        None
                    },
                    bm25: lex_cut,
                    time_ms: 0.0,
                    importance: 0.0,
                };
                let mut with_probe = cands.clone();
                with_probe.push(probe);
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
                let (max_rec, max_imp) = if w.recency > 0.0 || w.importance > 0.0 {
                    allowed.rows.iter().fold((0.0f64, 0.0f64), |(a, b), &r| {
                        (
                            a.max(cfg.recency.part(rows.time(r), cfg.now_ms)),
                            b.max((rows.importance(r) as f64).clamp(0.0, 1.0)),
                        )
                    })
                } else {
                    (0.0, 0.0)
                };
                let bound =
                    w.vector * vp + w.lexical * lp + w.recency * max_rec + w.importance * max_imp;
                hits.len() >= k && hits[k - 1].score > bound
            };
            if done || depth >= allowed.len() {
                if !use_vec {
                    self.last_path.set(VectorPath::CpuExact);
                }
                return Ok(hits
                    .into_iter()
                    .take(k)
                    .map(|h| {
                        let r = rows.row_of(h.id).expect("candidates are live rows");
                        Ranked {
                            id: h.id,
                            score: h.score,
                            parts: h.parts,
                            namespace: rows.namespace(r).to_string(),
                            time: rows.time(r),
                            importance: rows.importance(r),
                        }
                    })
                    .collect());
            }
            depth = depth.saturating_mul(4);
        }
    }
}

/// The live `(id, search vector)` rows of namespace `ns` in id order, computed on demand.
fn ns_rows_fn<'a>(rows: &'a RowTable, bank: &'a VectorBank, ns: u32) -> context::RowsFn<'a> {
    Box::new(move || {
        rows.namespace_rows(ns)
            .into_iter()
            .map(|r| (rows.id(r), bank.row(r)))
            .collect()
    })
}

fn hit(r: Ranked, payload: Option<HitPayload>) -> RecallHit {
    RecallHit {
        id: r.id,
        score: r.score,
        parts: r.parts,
        namespace: r.namespace,
        time: r.time,
        importance: r.importance,
        payload,
    }
}
