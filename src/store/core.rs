//! `Store`: the episodic store over any [`Backend`]. Validates input, plans each operation as
//! read-only snapshots and one conditional read-write commit, and retries when another
//! connection wrote in between (optimistic concurrency on the state's change sequence).
//!
//! Episode records live in pages (many records per stored record, keyed by their first id, with
//! one `[namespace, first time, last time, rows]` index entry per namespace per page); vectors in
//! segments. A batch of any size therefore writes O(1) records: a page or two, a segment or two,
//! the change record and the state.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::task::Poll;

use super::backend::{
    Backend, CommitOutcome, Durability, JournalDir, NoticeListener, NsPages, PageRecord,
    ReadRequest, ReadResult, SegmentCursor, SegmentMeta, VecSink, VectorSink, WriteSet,
};
use super::codec::{
    copy_f32s, decode_record, encode_record, page_weight, record_len, record_ns_time,
    segment_header, state_seq, Blob, Change, ChangeKind, EpisodeRecord, Header, NsPage, PageInfo,
    PageView, SegInfo, Segment, SegmentView, State, DEFAULT_PAGE_CAPACITY, PAGE_HEADER_BYTES,
    SEGMENT_VECTORS_OFFSET, STORE_FORMAT,
};
use super::episode::{
    check_namespace, norm_time, now_ms, validate_new, validate_new_in, validate_patch, Episode,
    NewEpisode, Patch, DEFAULT_IMPORTANCE, MAX_DIMS, MAX_ID,
};
use super::error::{Result, StoreError};
use super::export::{decode_all, ExportWriter};
use super::journal::{
    self, file_name, pending_name, should_compact, Entry, FileKind, Listing, Replayed,
    SnapshotWriter, Upsert,
};
use super::lock::AsyncLock;
use super::plan::{
    build, build_pages, plan, plan_units, Layout, NewRows, PageRow, Policy, SplitRows, UnitIn,
};

/// How often a write is re-planned when other connections keep committing before it.
const MAX_ATTEMPTS: u32 = 64;
/// Change records kept by default (older ones are pruned; a reader that far behind reloads).
pub const DEFAULT_CHANGE_RETENTION: u64 = 1024;

/// The default rows per segment for `dims`: about 8 MiB of vectors, within `64..=16384`. Large
/// segments make a full load fast (a segment record costs the browser a few milliseconds to
/// open, whatever its size); they cost little to write, because a rewrite composes the new
/// record from slices of the old ones, and reads of single rows read only their bytes.
pub fn default_segment_capacity(dims: usize) -> usize {
    ((8 << 20) / (4 * dims.max(1))).clamp(64, 16384)
}

/// Options of [`Store::open`].
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Embedding dimension: required to create a store; when given for an existing store it must
    /// match.
    pub dims: Option<usize>,
    /// Flush policy of writes (default strict).
    pub durability: Durability,
    /// Rows per segment for a new store (default [`default_segment_capacity`]); fixed at creation.
    pub segment_capacity: Option<usize>,
    /// Bytes per page of episode records for a new store (default 256 KiB; a record larger than
    /// the capacity gets a page of its own); fixed at creation.
    pub page_capacity: Option<usize>,
    /// Change records to keep (default [`DEFAULT_CHANGE_RETENTION`]).
    pub change_retention: Option<u64>,
}

/// A namespace scan over an event-time range.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanQuery {
    /// The namespace.
    pub namespace: String,
    /// Lowest event time, inclusive (default: no bound).
    pub from: Option<f64>,
    /// Highest event time, inclusive (default: no bound).
    pub to: Option<f64>,
    /// Most episodes returned.
    pub limit: Option<usize>,
    /// Newest first (default oldest first). Ties in time are ordered by id.
    pub reverse: bool,
}

impl ScanQuery {
    /// Everything in `namespace`, oldest first.
    pub fn namespace(ns: impl Into<String>) -> Self {
        ScanQuery {
            namespace: ns.into(),
            from: None,
            to: None,
            limit: None,
            reverse: false,
        }
    }
}

/// Every stored vector, packed for search: row `i` is episode `ids[i]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VectorSet {
    /// Dimension.
    pub dims: usize,
    /// The change sequence this snapshot reflects (feed it to [`Store::changes_since`]).
    pub seq: u64,
    /// Ids, increasing.
    pub ids: Vec<u64>,
    /// `ids.len() * dims` values, row-major (empty from [`Store::load_vectors_into`], whose sink
    /// received them).
    pub vectors: Vec<f32>,
    /// Distinct namespaces.
    pub namespaces: Vec<String>,
    /// Per row, an index into `namespaces`.
    pub namespace_of: Vec<u32>,
    /// Per row, the event time.
    pub event_time: Vec<f64>,
}

impl VectorSet {
    /// Rows.
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    /// No rows.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    /// The vector of row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.dims..(i + 1) * self.dims]
    }
}

/// Builds a [`VectorSet`] from segments: ids, times and namespaces here, vectors into a sink.
#[derive(Default)]
struct VectorSetBuilder {
    vs: VectorSet,
    ns_map: HashMap<String, u32>,
    /// Rows announced by the state (`load_vectors_into`): the sink holds this many.
    expected: usize,
}

impl VectorSetBuilder {
    fn ns_map(&mut self, namespaces: &[&str]) -> Vec<u32> {
        namespaces
            .iter()
            .map(|s| match self.ns_map.get(*s) {
                Some(&k) => k,
                None => {
                    let k = self.vs.namespaces.len() as u32;
                    self.vs.namespaces.push(s.to_string());
                    self.ns_map.insert(s.to_string(), k);
                    k
                }
            })
            .collect()
    }

    /// Append the ids, times and namespaces of a segment whose vectors went to the sink.
    fn append_meta(&mut self, m: &SegmentMeta) -> Result<()> {
        let what = || format!("segment {}", m.key);
        let (dims, n, n_ns, _) = segment_header(&m.head).map_err(|e| e.corrupt(what()))?;
        if dims != self.vs.dims || self.vs.ids.len() + n > self.expected {
            return Err(StoreError::corrupt(
                what(),
                "bad dims or more rows than the state lists",
            ));
        }
        let v =
            SegmentView::from_parts(dims, n, n_ns, &[], &m.tail).map_err(|e| e.corrupt(what()))?;
        let map = self.ns_map(&v.namespaces);
        self.vs.ids.extend(v.ids());
        self.vs.event_time.extend(v.times());
        self.vs
            .namespace_of
            .extend(v.ns_idx().map(|k| map[k as usize]));
        Ok(())
    }
}

/// What changed since a sequence number (see [`Store::changes_since`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// The store's sequence now.
    pub seq: u64,
    /// The change log no longer reaches back that far, or the store was cleared: reload
    /// everything ([`Store::load_vectors`]) instead of applying the lists.
    pub reset: bool,
    /// Ids put or updated since (load them with [`Store::load_rows`] / [`Store::get_many`]).
    pub upserted: Vec<u64>,
    /// Ids deleted since.
    pub deleted: Vec<u64>,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// Episodes imported.
    pub imported: usize,
    /// Their ids in this store, in file order.
    pub ids: Vec<u64>,
    /// True if the file's ids could not be kept (they were at or below ids this store already
    /// issued) and fresh ids were assigned in the same order.
    pub remapped: bool,
}

/// Counters of the cached state (no I/O).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreStats {
    /// Change sequence.
    pub seq: u64,
    /// Live episodes.
    pub live: u64,
    /// Segment records.
    pub segments: usize,
    /// Page records.
    pub pages: usize,
    /// Next id to be issued.
    pub next_id: u64,
}

/// What a store restored from its journal on open ([`Store::recovery`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Live episodes restored.
    pub episodes: usize,
    /// The journal's last sequence (the restored store continues after it).
    pub seq: u64,
    /// Journal files replayed (a snapshot and the entries after it).
    pub files: usize,
    /// Journal entries not replayed because a sequence before them is missing or damaged (a tab
    /// stopped between a commit and its entry, or an entry's write failed after its commit): the
    /// replay stops at the first gap, so the store restored is the one as of a committed sequence.
    pub gaps: u64,
    /// Files that did not parse and were skipped.
    pub skipped: usize,
}

/// The journal bookkeeping of one connection.
#[derive(Debug, Default)]
struct JournalState {
    /// Entries after the last snapshot this connection knows of, and their bytes.
    entries: usize,
    entry_bytes: u64,
    /// Their estimated obsolete bytes (rows deleted or rewritten since the snapshot).
    dead: u64,
    /// That snapshot's bytes.
    snap_bytes: u64,
    /// A write committed without its entry (the entry's write or its rename failed): write a
    /// snapshot before the next entry (a replay stops at the missing sequence until one covers
    /// it).
    behind: bool,
    /// A compaction is due (handed to the compaction hook, which runs it later).
    due: bool,
    /// A compaction is running.
    compacting: bool,
}

/// Runs a due compaction later ([`Store::set_compaction_hook`]).
pub type CompactionHook = std::rc::Rc<dyn Fn()>;

/// The journal's part of a restore commit: the sequence and next id to continue from, and the
/// header to write when the database has none.
struct Restore {
    seq: u64,
    next_id: u64,
    header: Option<Vec<u8>>,
}

/// One write, planned against whatever state is current when it is attempted.
struct Mutation {
    kind: ChangeKind,
    rows: Vec<Episode>,
    preserve_ids: bool,
    deleted: Vec<u64>,
    patch: Option<(u64, Patch)>,
    /// Replace everything with `rows` (ids kept) at the journal's sequence.
    restore: Option<Restore>,
}

impl Mutation {
    /// A write that changes no episode: the deferred segment merges ([`Store::tidy`]).
    fn tidy() -> Self {
        Mutation {
            kind: ChangeKind::Update,
            rows: Vec::new(),
            preserve_ids: false,
            deleted: Vec::new(),
            patch: None,
            restore: None,
        }
    }

    fn is_tidy(&self) -> bool {
        self.rows.is_empty()
            && self.deleted.is_empty()
            && self.patch.is_none()
            && self.restore.is_none()
    }
}

enum Attempt<T> {
    Done(T),
    Stale,
}

/// The episodic store over a backend. Single-threaded; every method takes `&self`.
pub struct Store<B: Backend> {
    backend: B,
    header: Header,
    state: RefCell<State>,
    lock: AsyncLock,
    durability: Durability,
    retention: u64,
    closed: Cell<bool>,
    journal: RefCell<JournalState>,
    recovery: RefCell<Option<Recovery>>,
    compaction_hook: RefCell<Option<CompactionHook>>,
    /// Set: writes defer segment merges, and this runs [`Store::tidy`] later.
    tidy_hook: RefCell<Option<CompactionHook>>,
}

fn decode_state(res: &ReadResult) -> Result<State> {
    match &res.state {
        Some(b) => State::decode(b).map_err(|e| e.corrupt("state")),
        None => Err(StoreError::corrupt("state", "missing")),
    }
}

/// Decoded views of the pages of a read result, by key.
fn page_views(res: &ReadResult) -> Result<HashMap<u64, PageView<'_>>> {
    res.pages
        .iter()
        .map(|(k, b)| {
            PageView::parse(b)
                .map(|v| (*k, v))
                .map_err(|e| e.corrupt(format!("page {k}")))
        })
        .collect()
}

/// The sorted, distinct keys `key_of` finds for `ids`.
fn keys_of(ids: &[u64], key_of: impl Fn(u64) -> Option<u64>) -> Vec<u64> {
    // (A sorted `Vec`, not a `BTreeSet`: one fewer instance of the tree and its sort in wasm.)
    let mut keys: Vec<u64> = ids.iter().filter_map(|&id| key_of(id)).collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

impl<B: Backend> Store<B> {
    /// Open the store on `backend`, creating it (with `opts.dims`) if it is empty. A store in the
    /// legacy layout (schema 1: one record per episode) is upgraded here, in one conditional
    /// commit: its records are packed into pages and the legacy records are deleted.
    pub async fn open(backend: B, opts: OpenOptions) -> Result<Self> {
        if let Some(d) = opts.dims {
            if d == 0 || d > MAX_DIMS {
                return Err(StoreError::invalid(
                    "dims",
                    format!("dims must be in 1..={MAX_DIMS}, got {d}"),
                ));
            }
        }
        if let Some(c) = opts.segment_capacity {
            if c == 0 || c > 1 << 16 {
                return Err(StoreError::invalid(
                    "segmentCapacity",
                    format!("segment capacity must be in 1..=65536, got {c}"),
                ));
            }
        }
        if let Some(c) = opts.page_capacity {
            if c == 0 || c > 64 << 20 {
                return Err(StoreError::invalid(
                    "pageCapacity",
                    format!("page capacity must be in 1..=67108864 bytes, got {c}"),
                ));
            }
        }
        let retention = opts
            .change_retention
            .unwrap_or(DEFAULT_CHANGE_RETENTION)
            .max(1);
        let make = |backend: B, header: Header, state: State| Store {
            backend,
            header,
            state: RefCell::new(state),
            lock: AsyncLock::default(),
            durability: opts.durability,
            retention,
            closed: Cell::new(false),
            journal: RefCell::default(),
            recovery: RefCell::default(),
            compaction_hook: RefCell::default(),
            tidy_hook: RefCell::default(),
        };
        for _ in 0..MAX_ATTEMPTS {
            let res = backend.read(&ReadRequest::default()).await?;
            if let Some(h) = &res.header {
                let header = Header::decode(h).map_err(|e| e.corrupt("header"))?;
                if header.format > STORE_FORMAT {
                    return Err(StoreError::SchemaTooNew {
                        found: header.format,
                        supported: STORE_FORMAT,
                    });
                }
                if let Some(d) = opts.dims {
                    if d != header.dims {
                        return Err(StoreError::DimensionMismatch {
                            field: "dims".into(),
                            expected: header.dims,
                            got: d,
                        });
                    }
                }
                let state = decode_state(&res)?;
                if state.legacy || header.format < STORE_FORMAT {
                    let header = Header {
                        format: STORE_FORMAT,
                        page_capacity: DEFAULT_PAGE_CAPACITY,
                        ..header
                    };
                    match Self::upgrade_layout(&backend, &header, &state).await? {
                        Some(state) => {
                            let s = make(backend, header, state);
                            s.journal_open().await?;
                            return Ok(s);
                        }
                        None => continue,
                    }
                }
                let s = make(backend, header, state);
                s.journal_open().await?;
                return Ok(s);
            }
            // No database (new, or discarded by the browser): a journal that holds state means
            // the latter; restore it.
            if let Some(j) = backend.journal() {
                let l = Listing::parse(j.list().await?);
                if let Some(rep) = journal::load(j, &l).await? {
                    let header =
                        Header::decode(&rep.header).map_err(|e| e.corrupt("journal header"))?;
                    if let Some(d) = opts.dims {
                        if d != header.dims {
                            return Err(StoreError::DimensionMismatch {
                                field: "dims".into(),
                                expected: header.dims,
                                got: d,
                            });
                        }
                    }
                    let st = State {
                        seq: state_seq(res.state.as_deref()),
                        ..State::fresh()
                    };
                    let s = make(backend, header, st);
                    if !s.restore(rep, true).await? {
                        // Another connection committed first (restored, or created the store):
                        // start from its state (restoring over it if it is behind the journal).
                        s.refresh().await?;
                        s.journal_open().await?;
                    }
                    return Ok(s);
                }
            }
            let dims = opts.dims.ok_or_else(|| {
                StoreError::invalid("dims", "dims is required to create a new store")
            })?;
            let header = Header {
                format: STORE_FORMAT,
                dims,
                segment_capacity: opts
                    .segment_capacity
                    .unwrap_or_else(|| default_segment_capacity(dims)),
                created: now_ms(),
                page_capacity: opts.page_capacity.unwrap_or(DEFAULT_PAGE_CAPACITY),
            };
            let state = State {
                seq: 1,
                changes_floor: 2,
                ..State::fresh()
            };
            let ws = WriteSet {
                expect_seq: Some(0),
                header: Some(header.encode()),
                state: Some(state.encode()),
                durability: Durability::Strict,
                ..Default::default()
            };
            if backend.commit(ws).await? == CommitOutcome::Committed {
                let s = make(backend, header, state);
                s.journal_open().await?;
                return Ok(s);
            }
        }
        Err(StoreError::Conflict(MAX_ATTEMPTS))
    }

    /// Upgrade a legacy-layout store (state `st`, read a moment ago): read its episode records,
    /// pack them into pages, and commit pages, the new header and state, and the removal of the
    /// legacy records in one transaction, if nobody wrote in between (`None`: someone did, or
    /// upgraded it first; read again). Segments keep their format and are not rewritten.
    async fn upgrade_layout(backend: &B, header: &Header, st: &State) -> Result<Option<State>> {
        let res = backend
            .read(&ReadRequest {
                legacy_episodes: true,
                ..Default::default()
            })
            .await?;
        if state_seq(res.state.as_deref()) != st.seq {
            return Ok(None);
        }
        let mut rows: Vec<(u64, &str, f64, &[u8])> = Vec::with_capacity(res.legacy_episodes.len());
        for b in &res.legacy_episodes {
            let (ns, t) = record_ns_time(b).map_err(|e| e.corrupt("legacy episode"))?;
            let id = decode_record(b)
                .map_err(|e| e.corrupt("legacy episode"))?
                .id;
            rows.push((id, ns, t, b.as_slice()));
        }
        crate::sort::sort_by(&mut rows, |a, b| a.0.cmp(&b.0));
        if rows.windows(2).any(|w| w[0].0 == w[1].0) || rows.len() as u64 != st.live {
            return Err(StoreError::corrupt(
                "legacy episodes",
                format!("{} records for {} live episodes", rows.len(), st.live),
            ));
        }
        let new: Vec<(u64, usize)> = rows
            .iter()
            .map(|r| (r.0, page_weight(r.3.len()) as usize))
            .collect();
        let layout = plan_units(
            &[],
            header.page_capacity,
            &new,
            &SplitRows::new(),
            Policy::Counter,
        );
        let built = build_pages(
            &layout,
            &HashMap::new(),
            &rows,
            &HashSet::new(),
            &HashMap::new(),
        )?;
        let seq = st.seq + 1;
        let new_state = State {
            seq,
            pages: page_infos(&layout),
            legacy: false,
            ..st.clone()
        };
        let ws = WriteSet {
            expect_seq: Some(st.seq),
            header: Some(header.encode()),
            state: Some(new_state.encode()),
            clear_legacy: true,
            put_pages: built
                .into_iter()
                .map(|(lo, bytes, keys)| PageRecord { lo, keys, bytes })
                .collect(),
            // The content did not change: an update of no ids keeps the change log contiguous.
            put_change: Some((seq, Change::new(ChangeKind::Update, []).encode())),
            durability: Durability::Strict,
            ..Default::default()
        };
        Ok(match backend.commit(ws).await? {
            CommitOutcome::Committed => Some(new_state),
            CommitOutcome::Conflict { .. } => None,
        })
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Embedding dimension.
    pub fn dims(&self) -> usize {
        self.header.dims
    }

    /// Rows per segment.
    pub fn segment_capacity(&self) -> usize {
        self.header.segment_capacity
    }

    /// Bytes per page of episode records.
    pub fn page_capacity(&self) -> usize {
        self.header.page_capacity
    }

    /// Counters of the last state this connection saw (no I/O).
    pub fn stats(&self) -> StoreStats {
        let s = self.state.borrow();
        StoreStats {
            seq: s.seq,
            live: s.live,
            segments: s.segs.len(),
            pages: s.pages.len(),
            next_id: s.next_id,
        }
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.get() {
            Err(StoreError::Closed)
        } else {
            Ok(())
        }
    }

    async fn read(&self, req: &ReadRequest) -> Result<ReadResult> {
        self.check_open()?;
        self.backend.read(req).await
    }

    /// A read in the snapshot of `st`, naming segments as `st`'s directory describes them (`None`:
    /// the store moved on; the caller retries). Another connection may have rewritten a segment
    /// since `st`, so a segment the backend finds inconsistent with that directory is corruption
    /// only if the state has not moved.
    async fn read_in(&self, st: &State, req: &ReadRequest) -> Result<Option<ReadResult>> {
        let res = match self.read(req).await {
            Ok(r) => r,
            Err(e @ StoreError::Corrupt { .. }) => {
                let now = self.read(&ReadRequest::default()).await?;
                if state_seq(now.state.as_deref()) == st.seq {
                    return Err(e);
                }
                now
            }
            Err(e) => return Err(e),
        };
        if state_seq(res.state.as_deref()) != st.seq {
            *self.state.borrow_mut() = decode_state(&res)?;
            return Ok(None);
        }
        Ok(Some(res))
    }

    /// Re-read the state record into the cache.
    async fn refresh(&self) -> Result<State> {
        let res = self.read(&ReadRequest::default()).await?;
        let st = decode_state(&res)?;
        *self.state.borrow_mut() = st.clone();
        Ok(st)
    }

    /// The segment tails to read for `ids` at state `st`: `(key, vector bytes)` of each segment
    /// holding one of them.
    fn tails_for(&self, st: &State, ids: &[u64]) -> Vec<(u64, usize)> {
        let row = self.dims() * 4;
        let mut segs: Vec<usize> = ids.iter().filter_map(|&id| st.seg_of(id)).collect();
        crate::sort::sort(&mut segs);
        segs.dedup();
        segs.into_iter()
            .map(|i| (st.segs[i].lo, st.segs[i].n as usize * row))
            .collect()
    }

    /// Where the vectors of `ids` are, from the segment tails read (`tails`, with their
    /// directory): `(id, key, byte start, namespace, event time)` for each id found.
    fn locate(&self, st: &State, tails: &[(u64, SegmentMeta)], ids: &[u64]) -> Result<Vec<Place>> {
        let dims = self.dims();
        let views = tail_views(tails, dims)?;
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            let Some(i) = st.seg_of(id) else { continue };
            let key = st.segs[i].lo;
            let Some(v) = views.get(&key) else { continue };
            let seg_ids: Vec<u64> = v.ids().collect();
            if let Ok(row) = seg_ids.binary_search(&id) {
                let k = v.ns_idx().nth(row).unwrap_or(0) as usize;
                let ns = v.namespaces.get(k).copied().unwrap_or_default();
                let t = v.times().nth(row).unwrap_or(0.0);
                out.push((
                    id,
                    key,
                    SEGMENT_VECTORS_OFFSET + row * dims * 4,
                    ns.to_string(),
                    t,
                ));
            }
        }
        Ok(out)
    }

    /// The vectors at `places` (from [`Store::locate`]), read in the snapshot of `st` (`None`: the
    /// store moved on), by id.
    async fn vectors_at(
        &self,
        st: &State,
        places: &[Place],
    ) -> Result<Option<HashMap<u64, Vec<f32>>>> {
        if places.is_empty() {
            return Ok(Some(HashMap::new()));
        }
        let len = self.dims() * 4;
        let res = self
            .read(&ReadRequest {
                segment_ranges: places.iter().map(|p| (p.1, p.2, p.2 + len)).collect(),
                ..Default::default()
            })
            .await?;
        if state_seq(res.state.as_deref()) != st.seq {
            *self.state.borrow_mut() = decode_state(&res)?;
            return Ok(None);
        }
        let mut out = HashMap::with_capacity(places.len());
        for (p, b) in places.iter().zip(&res.segment_ranges) {
            let b = b
                .as_ref()
                .filter(|b| b.len() == len)
                .ok_or_else(|| StoreError::corrupt(format!("segment {}", p.1), "vector missing"))?;
            let mut v = vec![0f32; self.dims()];
            copy_f32s(b, &mut v);
            out.insert(p.0, v);
        }
        Ok(Some(out))
    }

    // -----------------------------------------------------------------------------------------
    // Writes    // -----------------------------------------------------------------------------------------
    // Writes

    /// Store one episode; returns its id.
    pub async fn put(&self, ep: NewEpisode) -> Result<u64> {
        validate_new(&ep, self.dims(), "")?;
        Ok(self.put_validated(vec![ep]).await?[0])
    }

    /// Store a batch atomically (one transaction: all or nothing); returns the ids in order.
    /// Every episode is validated first; a bad one fails the call naming `episodes[i].field`.
    pub async fn put_many(&self, eps: Vec<NewEpisode>) -> Result<Vec<u64>> {
        for (i, ep) in eps.iter().enumerate() {
            validate_new_in(ep, self.dims(), || format!("episodes[{i}]"))?;
        }
        if eps.is_empty() {
            self.check_open()?;
            return Ok(Vec::new());
        }
        self.put_validated(eps).await
    }

    async fn put_validated(&self, eps: Vec<NewEpisode>) -> Result<Vec<u64>> {
        let now = now_ms();
        let rows = eps
            .into_iter()
            .map(|e| Episode {
                id: 0,
                namespace: e.namespace,
                role: e.role,
                text: e.text,
                event_time: norm_time(e.event_time.unwrap_or(now)),
                insert_time: now,
                embedding: e.embedding,
                metadata: e.metadata,
                importance: e.importance.unwrap_or(DEFAULT_IMPORTANCE),
                tags: e.tags,
            })
            .collect();
        let m = Mutation {
            kind: ChangeKind::Put,
            rows,
            preserve_ids: false,
            deleted: Vec::new(),
            patch: None,
            restore: None,
        };
        Ok(self.mutate(&m).await?.0)
    }

    /// Change an existing episode (`NOT_FOUND` if there is none; nothing written on error).
    pub async fn update(&self, id: u64, patch: Patch) -> Result<()> {
        validate_patch(&patch, self.dims())?;
        let m = Mutation {
            kind: ChangeKind::Update,
            rows: Vec::new(),
            preserve_ids: false,
            deleted: Vec::new(),
            patch: Some((id, patch)),
            restore: None,
        };
        self.mutate(&m).await.map(|_| ())
    }

    /// Delete one episode: its record, text, metadata and vector bytes are removed.
    pub async fn delete(&self, id: u64) -> Result<()> {
        self.delete_many(&[id]).await
    }

    /// Delete several episodes atomically; `NOT_FOUND` (and nothing deleted) if any is missing.
    pub async fn delete_many(&self, ids: &[u64]) -> Result<()> {
        let mut d: Vec<u64> = ids.to_vec();
        d.sort_unstable();
        d.dedup();
        if d.is_empty() {
            self.check_open()?;
            return Ok(());
        }
        let m = Mutation {
            kind: ChangeKind::Delete,
            rows: Vec::new(),
            preserve_ids: false,
            deleted: d,
            patch: None,
            restore: None,
        };
        self.mutate(&m).await.map(|_| ())
    }

    /// Delete every episode of a namespace; returns how many. `NOT_FOUND` if it has none.
    pub async fn delete_namespace(&self, namespace: &str) -> Result<usize> {
        check_namespace(namespace, "namespace")?;
        let _g = self.lock.lock().await;
        for _ in 0..MAX_ATTEMPTS {
            let (st, ids) = match self.namespace_ids(namespace).await? {
                Some(x) => x,
                None => continue,
            };
            if ids.is_empty() {
                return Err(StoreError::NotFound {
                    what: format!("namespace {namespace:?}"),
                });
            }
            let n = ids.len();
            let m = Mutation {
                kind: ChangeKind::Delete,
                rows: Vec::new(),
                preserve_ids: false,
                deleted: ids,
                patch: None,
                restore: None,
            };
            if let Attempt::Done(_) = self.attempt(&st, &m).await? {
                return Ok(n);
            }
        }
        Err(StoreError::Conflict(MAX_ATTEMPTS))
    }

    /// The state and the ids (increasing) of every episode of `namespace`, from the index and the
    /// pages it lists (`None`: the store changed between the two reads).
    async fn namespace_ids(&self, namespace: &str) -> Result<Option<(State, Vec<u64>)>> {
        let res = self
            .read(&ReadRequest {
                ns_pages: Some(NsPages {
                    namespace: namespace.to_string(),
                    to: f64::INFINITY,
                }),
                ..Default::default()
            })
            .await?;
        let st = decode_state(&res)?;
        *self.state.borrow_mut() = st.clone();
        if res.ns_pages.is_empty() {
            return Ok(Some((st, Vec::new())));
        }
        let res2 = self
            .read(&ReadRequest {
                pages: res.ns_pages.iter().map(|p| p.lo).collect(),
                ..Default::default()
            })
            .await?;
        if state_seq(res2.state.as_deref()) != st.seq {
            return Ok(None);
        }
        let mut ids = Vec::new();
        for (k, p) in page_views(&res2)? {
            for i in 0..p.len() {
                let (ns, _) =
                    record_ns_time(p.record(i)).map_err(|e| e.corrupt(format!("page {k}")))?;
                if ns == namespace {
                    ids.push(p.id(i));
                }
            }
        }
        ids.sort_unstable();
        Ok(Some((st, ids)))
    }

    /// Delete everything (episodes, vectors, change log, engine blobs). Ids keep increasing.
    pub async fn clear(&self) -> Result<()> {
        self.check_open()?;
        let _g = self.lock.lock().await;
        for _ in 0..MAX_ATTEMPTS {
            let st = self.state.borrow().clone();
            let seq = st.seq + 1;
            let new = State {
                seq,
                next_id: st.next_id,
                live: 0,
                changes_floor: seq,
                ..State::fresh()
            };
            let ws = WriteSet {
                expect_seq: Some(st.seq),
                state: Some(new.encode()),
                clear: true,
                put_change: Some((seq, Change::new(ChangeKind::Clear, []).encode())),
                durability: self.durability,
                ..Default::default()
            };
            // Its journal file is an empty snapshot: every older file is deleted after it.
            let entry = Entry {
                seq,
                next_id: new.next_id,
                header: self.header.encode(),
                clear: true,
                ..Default::default()
            };
            match self
                .commit_journaled(ws, Some((FileKind::Snapshot, entry, 0)))
                .await?
            {
                CommitOutcome::Committed => {
                    *self.state.borrow_mut() = new;
                    return Ok(());
                }
                CommitOutcome::Conflict { .. } => {
                    self.refresh().await?;
                }
            }
        }
        Err(StoreError::Conflict(MAX_ATTEMPTS))
    }

    async fn mutate(&self, m: &Mutation) -> Result<(Vec<u64>, bool)> {
        self.check_open()?;
        let _g = self.lock.lock().await;
        for _ in 0..MAX_ATTEMPTS {
            let st = self.state.borrow().clone();
            match self.attempt(&st, m).await? {
                Attempt::Done(r) => return Ok(r),
                Attempt::Stale => {
                    self.refresh().await?;
                }
            }
        }
        Err(StoreError::Conflict(MAX_ATTEMPTS))
    }

    /// Read `pages` and segment tails in the snapshot of state `st`; `None` if the store moved on.
    async fn read_at(
        &self,
        st: &State,
        pages: Vec<u64>,
        segment_tails: Vec<(u64, usize)>,
    ) -> Result<Option<ReadResult>> {
        if pages.is_empty() && segment_tails.is_empty() {
            return Ok(Some(ReadResult::default()));
        }
        let Some(res) = self
            .read_in(
                st,
                &ReadRequest {
                    pages,
                    segment_tails,
                    ..Default::default()
                },
            )
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(res))
    }

    /// Plan `m` against `st`, read what the plan needs, commit if `st` is still current.
    async fn attempt(&self, st: &State, m: &Mutation) -> Result<Attempt<(Vec<u64>, bool)>> {
        // A restore replaces everything: plan it against an empty store at the same sequence.
        let empty;
        let st = match &m.restore {
            Some(_) => {
                empty = State {
                    seq: st.seq,
                    ..State::fresh()
                };
                &empty
            }
            None => st,
        };
        let dims = self.dims();
        let cap = self.segment_capacity();
        let pcap = self.page_capacity();
        // Ids of the new rows.
        let mut remapped = false;
        let new_ids: Vec<u64> = if m.rows.is_empty() {
            Vec::new()
        } else if m.preserve_ids && m.rows[0].id >= st.next_id {
            m.rows.iter().map(|r| r.id).collect()
        } else {
            remapped = m.preserve_ids;
            (st.next_id..st.next_id + m.rows.len() as u64).collect()
        };
        if new_ids.last().is_some_and(|&l| l > MAX_ID) {
            return Err(StoreError::Backend("episode ids exhausted".into()));
        }
        let patch_vec: Vec<u64> = match &m.patch {
            Some((id, p)) if p.embedding.is_some() => vec![*id],
            _ => Vec::new(),
        };
        let tidy = m.is_tidy();
        let defer = !tidy && self.tidy_hook.borrow().is_some();
        let policy = if defer {
            Policy::TieredDeferred
        } else {
            Policy::Tiered
        };
        let seg_layout = plan(&st.segs, cap, &m.deleted, &patch_vec, &new_ids, policy)?;
        if tidy && seg_layout.builds.is_empty() {
            // Nothing to merge (another connection's write or tidy did it): write nothing.
            return Ok(Attempt::Done((Vec::new(), false)));
        }

        // The new records, encoded once (pages copy them).
        let new_recs: Vec<Vec<u8>> = m
            .rows
            .iter()
            .zip(&new_ids)
            .map(|(r, &id)| encode_episode_record(r, id))
            .collect();
        let new_weights: Vec<(u64, usize)> = new_ids
            .iter()
            .zip(&new_recs)
            .map(|(&id, r)| (id, page_weight(r.len()) as usize))
            .collect();
        // Pages holding deleted or patched ids: they are rewritten (read them first).
        let touched: Vec<u64> = m
            .deleted
            .iter()
            .copied()
            .chain(m.patch.iter().map(|(id, _)| *id))
            .collect();
        let mut dirty: HashMap<usize, usize> = HashMap::new(); // page index -> deleted rows
        for &id in &touched {
            let i = st.page_of(id).ok_or_else(|| StoreError::NotFound {
                what: format!("episode {id}"),
            })?;
            *dirty.entry(i).or_default() += 0;
        }
        for &id in &m.deleted {
            if let Some(i) = st.page_of(id) {
                *dirty.entry(i).or_default() += 1;
            }
        }
        // First plan with the dirty pages' old weights (their exact ones need their bytes).
        let units = |exact: &HashMap<u64, usize>| -> Vec<UnitIn> {
            st.pages
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let gone = dirty.get(&i).copied();
                    UnitIn {
                        lo: p.lo,
                        hi: p.hi,
                        n: (p.n as usize).saturating_sub(gone.unwrap_or(0)),
                        w: exact.get(&p.lo).copied().unwrap_or(p.bytes as usize),
                        dirty: gone.is_some(),
                    }
                })
                .collect()
        };
        let first = plan_units(
            &units(&HashMap::new()),
            pcap,
            &new_weights,
            &SplitRows::new(),
            Policy::Counter,
        );
        let mut want_pages: Vec<u64> = first.reads.clone();
        want_pages.extend(dirty.keys().map(|&i| st.pages[i].lo));
        want_pages.sort_unstable();
        want_pages.dedup();
        let row_bytes = dims * 4;
        let seg_tails: Vec<(u64, usize)> = seg_layout
            .reads
            .iter()
            .filter_map(|k| {
                let i = st.segs.partition_point(|s| s.lo < *k);
                st.segs
                    .get(i)
                    .filter(|s| s.lo == *k)
                    .map(|s| (*k, s.n as usize * row_bytes))
            })
            .collect();
        let Some(mut res) = self.read_at(st, want_pages, seg_tails).await? else {
            return Ok(Attempt::Stale);
        };

        // The patched record, and the exact weights of the dirty pages.
        let deleted: HashSet<u64> = m.deleted.iter().copied().collect();
        let mut patched: HashMap<u64, Vec<u8>> = HashMap::new();
        let mut exact: HashMap<u64, usize> = HashMap::new();
        let mut split = SplitRows::new();
        {
            let views = page_views(&res)?;
            if let Some((id, p)) = &m.patch {
                let view = st
                    .page_of(*id)
                    .and_then(|i| views.get(&st.pages[i].lo))
                    .ok_or_else(|| StoreError::NotFound {
                        what: format!("episode {id}"),
                    })?;
                let row = view.find(*id).ok_or_else(|| StoreError::NotFound {
                    what: format!("episode {id}"),
                })?;
                let mut rec = decode_record(view.record(row))
                    .map_err(|e| e.corrupt(format!("episode {id}")))?;
                if let Some(v) = &p.role {
                    rec.role = v.clone();
                }
                if let Some(v) = &p.text {
                    rec.text = v.clone();
                }
                if let Some(v) = &p.metadata {
                    rec.metadata = v.clone();
                }
                if let Some(v) = p.importance {
                    rec.importance = v;
                }
                if let Some(v) = &p.tags {
                    rec.tags = v.clone();
                }
                patched.insert(*id, encode_record(&rec));
            }
            for &i in dirty.keys() {
                let lo = st.pages[i].lo;
                let Some(view) = views.get(&lo) else { continue };
                let mut rows = Vec::with_capacity(view.len());
                for r in 0..view.len() {
                    let id = view.id(r);
                    if deleted.contains(&id) {
                        continue;
                    }
                    let len = patched.get(&id).map_or(view.record(r).len(), Vec::len);
                    rows.push((id, page_weight(len) as usize));
                }
                let w = rows.iter().map(|r| r.1).sum::<usize>();
                exact.insert(lo, w);
                if w > pcap {
                    split.insert(lo, rows); // an update made it heavier than a page
                }
            }
        }
        // Plan again with the exact weights; read any further page that plan merges.
        let page_layout = plan_units(&units(&exact), pcap, &new_weights, &split, Policy::Counter);
        let have: HashSet<u64> = res.pages.iter().map(|p| p.0).collect();
        let missing: Vec<u64> = page_layout
            .reads
            .iter()
            .copied()
            .filter(|k| !have.contains(k))
            .collect();
        if !missing.is_empty() {
            let Some(more) = self.read_at(st, missing, Vec::new()).await? else {
                return Ok(Attempt::Stale);
            };
            res.pages.extend(more.pages);
        }

        // Assemble the new segments (as parts: the vectors they keep stay where they are) and
        // pages.
        let old = tail_views(&res.segment_tails, dims)?;
        let new_rows = NewRows {
            ids: new_ids.clone(),
            namespaces: m.rows.iter().map(|r| r.namespace.as_str()).collect(),
            times: m.rows.iter().map(|r| r.event_time).collect(),
            vectors: m.rows.iter().map(|r| r.embedding.as_slice()).collect(),
        };
        let mut updated: HashMap<u64, &[f32]> = HashMap::new();
        if let Some((id, p)) = &m.patch {
            if let Some(e) = &p.embedding {
                updated.insert(*id, e.as_slice());
            }
        }
        let built = build(&seg_layout, dims, &old, &new_rows, &deleted, &updated)?;
        let views = page_views(&res)?;
        let page_rows: Vec<PageRow<'_>> = m
            .rows
            .iter()
            .zip(&new_ids)
            .zip(&new_recs)
            .map(|((r, &id), b)| (id, r.namespace.as_str(), r.event_time, b.as_slice()))
            .collect();
        let pages = build_pages(&page_layout, &views, &page_rows, &deleted, &patched)?;

        // The write set.
        let seq = m
            .restore
            .as_ref()
            .map_or(st.seq + 1, |r| r.seq.max(st.seq + 1));
        let live = st.live + new_ids.len() as u64 - deleted.len() as u64;
        let mut new_state = State {
            seq,
            next_id: new_ids
                .last()
                .map_or(st.next_id, |&l| l + 1)
                .max(st.next_id)
                .max(m.restore.as_ref().map_or(0, |r| r.next_id)),
            live,
            // After a restore the change log starts over (readers behind it reload).
            changes_floor: if m.restore.is_some() {
                seq
            } else {
                st.changes_floor
            },
            segs: seg_layout.seg_infos(),
            pages: page_infos(&page_layout),
            legacy: false,
        };
        let mut ws = WriteSet {
            expect_seq: Some(st.seq),
            durability: self.durability,
            delete_pages: page_layout.delete_keys.clone(),
            put_pages: pages
                .into_iter()
                .map(|(lo, bytes, keys)| PageRecord { lo, keys, bytes })
                .collect(),
            delete_segments: seg_layout.delete_keys.clone(),
            put_segments: built,
            ..Default::default()
        };
        let mut changed: Vec<u64> = new_ids.clone();
        changed.extend(m.patch.iter().map(|(id, _)| *id));
        changed.extend(m.deleted.iter().copied());
        ws.put_change = Some((seq, Change::new(m.kind, changed).encode()));
        if seq >= st.changes_floor + self.retention + 64 {
            let below = seq - self.retention + 1;
            ws.prune_changes_below = Some(below);
            new_state.changes_floor = below;
        }
        ws.state = Some(new_state.encode());
        if let Some(r) = &m.restore {
            ws.clear = true;
            ws.header = r.header.clone();
            ws.durability = Durability::Strict;
        }
        // The journal entry: the rows as written (records, and vectors where they changed).
        let entry = self.backend.journal().map(|_| {
            let mut rewrites = 0;
            let mut upserts: Vec<Upsert> = m
                .rows
                .iter()
                .zip(new_recs)
                .map(|(r, record)| Upsert {
                    record,
                    vector: Some(r.embedding.clone()),
                })
                .collect();
            if let Some((id, p)) = &m.patch {
                if let Some(record) = patched.remove(id) {
                    upserts.push(Upsert {
                        record,
                        vector: p.embedding.clone(),
                    });
                    rewrites = 1;
                }
            }
            let kind = if m.restore.is_some() {
                FileKind::Snapshot
            } else {
                FileKind::Entry
            };
            let e = Entry {
                seq,
                next_id: new_state.next_id,
                header: self.header.encode(),
                clear: m.restore.is_some(),
                deleted: m.deleted.clone(),
                upserts,
            };
            (kind, e, rewrites)
        });
        match self.commit_journaled(ws, entry).await? {
            CommitOutcome::Committed => {
                *self.state.borrow_mut() = new_state;
                if seg_layout.deferred {
                    let hook = self.tidy_hook.borrow().clone();
                    if let Some(h) = hook {
                        h();
                    }
                }
                Ok(Attempt::Done((new_ids, remapped)))
            }
            CommitOutcome::Conflict { .. } => Ok(Attempt::Stale),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Journal

    /// Is this store keeping a journal (a second copy of its writes outside the database)?
    pub fn journal_on(&self) -> bool {
        self.backend.journal().is_some()
    }

    /// What this store restored from its journal when it opened (the database had been discarded
    /// or was behind its journal), if it did.
    pub fn recovery(&self) -> Option<Recovery> {
        self.recovery.borrow().clone()
    }

    /// Commit `ws`, with its journal entry: the entry is written under a pending name **while**
    /// the database commit runs (two independent tasks joined here; the transaction itself only
    /// ever awaits its own requests), and only once both completed is the entry renamed to its
    /// sequence (`e-<seq>`, or `s-<seq>` for an entry that replaces everything); then the write
    /// resolves. The call's result is the commit's: on a conflict or a failed commit the pending
    /// file is removed and nothing is written. A commit whose entry could not be written (e.g.
    /// `QUOTA_EXCEEDED` of the journal) or renamed stands and resolves, and the journal is marked
    /// behind: the next write writes a snapshot first, and until one covers it a replay stops at
    /// the missing sequence. Two connections can never both name an entry after the same
    /// sequence (the database's conditional commit decides which one committed it).
    /// `rewrites`: how many of the entry's last upserts rewrite existing rows (their bytes, and
    /// the deleted rows', make older journal bytes obsolete: the compaction policy counts them).
    async fn commit_journaled(
        &self,
        ws: WriteSet,
        entry: Option<(FileKind, Entry, usize)>,
    ) -> Result<CommitOutcome> {
        let (Some(j), Some((kind, e, rewrites))) = (self.backend.journal(), entry) else {
            return self.backend.commit(ws).await;
        };
        if self.journal.borrow().behind {
            // An earlier entry is missing: a snapshot first (it covers every committed write).
            if self.compact().await.is_ok() {
                self.journal.borrow_mut().behind = false;
            }
        }
        let dead = match kind {
            FileKind::Entry => self.obsolete_bytes(&e, rewrites),
            FileKind::Snapshot => 0,
        };
        let pending = pending_name(j.unique());
        // The commit is polled first: it issues its requests before the entry is encoded.
        let (committed, (written, len)) = join2(self.backend.commit(ws), async {
            let bytes = e.encode();
            let r = match self.durability {
                Durability::Strict => j.write(&pending, &bytes).await,
                Durability::Relaxed => j.write_relaxed(&pending, &bytes).await,
            };
            (r, bytes.len())
        })
        .await;
        let out = match committed {
            Ok(CommitOutcome::Committed) => CommitOutcome::Committed,
            other => {
                if written.is_ok() {
                    let _ = j.remove(&pending).await;
                }
                return other;
            }
        };
        let name = file_name(kind, e.seq, len, dead);
        let renamed = match written {
            Ok(()) => j.rename(&pending, &name).await,
            Err(err) => Err(err),
        };
        if renamed.is_err() {
            // Committed without its entry: the next write writes a snapshot first.
            let _ = j.remove(&pending).await;
            self.journal.borrow_mut().behind = true;
            return Ok(out);
        }
        match kind {
            FileKind::Snapshot => {
                let _ = self.journal_cleanup(e.seq, len as u64).await;
            }
            FileKind::Entry => {
                let compact = {
                    let mut js = self.journal.borrow_mut();
                    js.entries += 1;
                    js.entry_bytes += len as u64;
                    js.dead += dead;
                    should_compact(js.entries, js.entry_bytes, js.dead, js.snap_bytes)
                };
                if compact {
                    // A failed compaction loses nothing: the entries stay until the next one.
                    self.journal.borrow_mut().due = true;
                    let hook = self.compaction_hook.borrow().clone();
                    match hook {
                        Some(h) => h(),
                        None => {
                            let _ = self.compact_due().await;
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Estimated bytes of older journal files that entry `e` makes obsolete: the rows it deletes
    /// (at the journal's average live row) and the `rewrites` rows it rewrites (at their new size).
    fn obsolete_bytes(&self, e: &Entry, rewrites: usize) -> u64 {
        let rewritten: u64 = e
            .upserts
            .iter()
            .rev()
            .take(rewrites)
            .map(|u| (u.record.len() + u.vector.as_ref().map_or(0, |v| 4 * v.len())) as u64)
            .sum();
        if e.deleted.is_empty() {
            return rewritten;
        }
        let live_rows = self.state.borrow().live.max(1);
        let js = self.journal.borrow();
        let live_bytes = (js.snap_bytes + js.entry_bytes).saturating_sub(js.dead);
        rewritten + (live_bytes / live_rows).saturating_mul(e.deleted.len() as u64)
    }

    /// After a snapshot at `seq` (`bytes` long): delete the older snapshots and the entries it
    /// covers (this is when deleted text leaves the journal), and count what remains after it.
    async fn journal_cleanup(&self, seq: u64, bytes: u64) -> Result<()> {
        let Some(j) = self.backend.journal() else {
            return Ok(());
        };
        let l = Listing::parse(j.list().await?);
        for f in l.snapshots.iter().filter(|f| f.seq < seq) {
            j.remove(&f.name).await?;
        }
        for f in l.entries.iter().filter(|f| f.seq <= seq) {
            j.remove(&f.name).await?;
        }
        // Pending files left by connections that closed or died before renaming them. A live
        // connection's spare is open for writing, which locks it in OPFS (its removal fails and
        // is ignored); a written entry waiting for its rename is unlocked, and `remove_stray`
        // keeps it by its age.
        for p in &l.pending {
            let _ = j.remove_stray(p).await;
        }
        let after: Vec<_> = l.entries.iter().filter(|f| f.seq > seq).collect();
        let mut js = self.journal.borrow_mut();
        js.entries = after.len();
        js.entry_bytes = after.iter().map(|f| f.bytes).sum();
        js.dead = after.iter().map(|f| f.dead).sum();
        js.snap_bytes = bytes;
        Ok(())
    }

    /// Run due compactions with `hook` instead of inside the write that made them due (the JS
    /// bindings spawn [`Store::compact_due`] as a task, so a write is acknowledged without waiting
    /// for a snapshot of the whole store). A compaction reads one consistent snapshot of the
    /// database at some sequence and deletes only what that snapshot covers, so writes may go on
    /// meanwhile. `None`: compactions run inside the write (the default).
    pub fn set_compaction_hook(&self, hook: Option<CompactionHook>) {
        *self.compaction_hook.borrow_mut() = hook;
    }

    /// Defer segment merges out of writes (`Some`): a write then writes only its own rows (a
    /// batch of 1,000 is one segment record, not a rewrite of the last few), and when one leaves
    /// merges to do, `hook` is called; it should run [`Store::tidy`] once the store is idle (the
    /// JS bindings wait for a pause in writes). Without a tidy, merges still run inline once
    /// [`plan::DEFER_UNITS`](super::plan) small segments trail, so the record count stays bounded.
    /// `None` (the default): merges run inside the write that makes them due.
    /// When merges are already due (e.g. an earlier connection deferred them), `hook` is called
    /// at once.
    pub fn set_tidy_hook(&self, hook: Option<CompactionHook>) {
        *self.tidy_hook.borrow_mut() = hook.clone();
        if let Some(h) = hook {
            if self.tidy_due() {
                h();
            }
        }
    }

    /// Are segment merges waiting for [`Store::tidy`] (in the directory this connection last
    /// saw)?
    pub fn tidy_due(&self) -> bool {
        let st = self.state.borrow();
        plan(
            &st.segs,
            self.segment_capacity(),
            &[],
            &[],
            &[],
            Policy::Tiered,
        )
        .is_ok_and(|l| !l.builds.is_empty())
    }

    /// Run the segment merges that writes deferred, in a write of their own (atomic like any
    /// write; it changes no episode, so readers see the same store; other connections see a new
    /// sequence with an empty change). Writes nothing when nothing is due.
    pub async fn tidy(&self) -> Result<()> {
        self.mutate(&Mutation::tidy()).await.map(|_| ())
    }

    /// Run a compaction if one is due and none is running.
    pub async fn compact_due(&self) -> Result<()> {
        {
            let mut js = self.journal.borrow_mut();
            if !js.due || js.compacting || self.closed.get() {
                return Ok(());
            }
            js.compacting = true;
        }
        let r = self.compact().await;
        let mut js = self.journal.borrow_mut();
        js.compacting = false;
        if r.is_ok() {
            js.due = false;
        }
        r
    }

    /// Write a snapshot of the whole store (one read-only snapshot of the database) into the
    /// journal, then delete what it covers.
    pub async fn compact(&self) -> Result<()> {
        let Some(j) = self.backend.journal() else {
            return Ok(());
        };
        let mut w = SnapshotWriter::new(&self.header.encode());
        let st = self
            .for_each_row(|_, record, vector| {
                w.row(record, vector);
                Ok(())
            })
            .await?;
        let bytes = w.finish(st.seq, st.next_id);
        j.write(
            &file_name(FileKind::Snapshot, st.seq, bytes.len(), 0),
            &bytes,
        )
        .await?;
        self.journal_cleanup(st.seq, bytes.len() as u64).await
    }

    /// On open, with the database's state known: restore from the journal when it is ahead of
    /// the database (the database lost acknowledged writes), write a snapshot when it is behind
    /// (new journal, or a write committed without its entry), else just count its entries.
    async fn journal_open(&self) -> Result<()> {
        let Some(j) = self.backend.journal() else {
            return Ok(());
        };
        let l = Listing::parse(j.list().await?);
        let seq = self.state.borrow().seq;
        if l.tip() > seq {
            if let Some(rep) = journal::load(j, &l).await? {
                if !self.restore(rep, false).await? {
                    return Err(StoreError::Conflict(1));
                }
                return Ok(());
            }
        }
        let since = l.since_snapshot();
        *self.journal.borrow_mut() = JournalState {
            entries: since.entries,
            entry_bytes: since.entry_bytes,
            dead: since.dead,
            snap_bytes: since.snap_bytes,
            ..Default::default()
        };
        // Behind the database, no snapshot yet, or a missing sequence (a connection stopped
        // between its commit and its rename while others wrote on): a snapshot covers it.
        if l.tip() < seq || l.snapshots.is_empty() || since.gap {
            if let Err(e) = self.compact().await {
                if matches!(e, StoreError::Closed) {
                    return Err(e);
                }
                self.journal.borrow_mut().behind = true;
            }
        }
        Ok(())
    }

    /// Replace the database's content with what the journal replayed, in one commit (ids, next
    /// id kept; the sequence continues after the journal's), whose journal file is a snapshot.
    /// `false`: another connection committed first.
    async fn restore(&self, rep: Replayed, write_header: bool) -> Result<bool> {
        let st = self.state.borrow().clone();
        let (seq, next_id, files, gaps, skipped) =
            (rep.seq, rep.next_id, rep.files, rep.gaps, rep.skipped);
        let rows = rep.into_episodes();
        let episodes = rows.len();
        let m = Mutation {
            kind: ChangeKind::Put,
            rows,
            preserve_ids: true,
            deleted: Vec::new(),
            patch: None,
            restore: Some(Restore {
                seq: seq + 1,
                next_id,
                header: write_header.then(|| self.header.encode()),
            }),
        };
        let _g = self.lock.lock().await;
        match self.attempt(&st, &m).await? {
            Attempt::Done(_) => {
                *self.recovery.borrow_mut() = Some(Recovery {
                    episodes,
                    seq,
                    files,
                    gaps,
                    skipped,
                });
                Ok(true)
            }
            Attempt::Stale => Ok(false),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Reads

    /// One episode, or `None`.
    pub async fn get(&self, id: u64) -> Result<Option<Episode>> {
        Ok(self.get_many(&[id]).await?.pop().flatten())
    }

    /// Several episodes, aligned with `ids` (`None` where missing).
    pub async fn get_many(&self, ids: &[u64]) -> Result<Vec<Option<Episode>>> {
        self.check_open()?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        'attempt: for _ in 0..MAX_ATTEMPTS {
            let st = self.state.borrow().clone();
            let req = ReadRequest {
                pages: keys_of(ids, |id| st.page_of(id).map(|i| st.pages[i].lo)),
                segment_tails: self.tails_for(&st, ids),
                ..Default::default()
            };
            let Some(res) = self.read_in(&st, &req).await? else {
                continue;
            };
            let views = page_views(&res)?;
            let mut recs = Vec::with_capacity(ids.len());
            for &id in ids {
                let rec = st
                    .page_of(id)
                    .and_then(|i| views.get(&st.pages[i].lo))
                    .and_then(|v| v.find(id).map(|r| v.record(r)));
                recs.push(match rec {
                    None => None,
                    Some(b) => {
                        Some(decode_record(b).map_err(|e| e.corrupt(format!("episode {id}")))?)
                    }
                });
            }
            let found: Vec<u64> = recs.iter().flatten().map(|r| r.id).collect();
            let places = self.locate(&st, &res.segment_tails, &found)?;
            let Some(vecs) = self.vectors_at(&st, &places).await? else {
                continue 'attempt;
            };
            return recs
                .into_iter()
                .map(|r| r.map(|r| with_vector(r, &vecs)).transpose())
                .collect();
        }
        Err(StoreError::Conflict(MAX_ATTEMPTS))
    }

    /// The records of several episodes without their vectors (text, role, times, metadata,
    /// tags), aligned with `ids` (`None` where missing): one read of the pages holding them and no
    /// segment reads, for callers that keep the vectors elsewhere (the engine's recall).
    pub async fn get_records(&self, ids: &[u64]) -> Result<Vec<Option<EpisodeRecord>>> {
        self.check_open()?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        for _ in 0..MAX_ATTEMPTS {
            let st = self.state.borrow().clone();
            let res = self
                .read(&ReadRequest {
                    pages: keys_of(ids, |id| st.page_of(id).map(|i| st.pages[i].lo)),
                    ..Default::default()
                })
                .await?;
            if state_seq(res.state.as_deref()) != st.seq {
                *self.state.borrow_mut() = decode_state(&res)?;
                continue;
            }
            let views = page_views(&res)?;
            return ids
                .iter()
                .map(|&id| {
                    st.page_of(id)
                        .and_then(|i| views.get(&st.pages[i].lo))
                        .and_then(|v| v.find(id).map(|r| v.record(r)))
                        .map(|b| decode_record(b).map_err(|e| e.corrupt(format!("episode {id}"))))
                        .transpose()
                })
                .collect();
        }
        Err(StoreError::Conflict(MAX_ATTEMPTS))
    }

    /// Episodes of a namespace within an event-time range, in `[time, id]` order.
    ///
    /// The index lists the pages holding the namespace with the time span of its rows there;
    /// pages are read in span order (a few at a time when there is a limit) until the rows found
    /// cannot be displaced by any page left, then the vectors of the result are read.
    pub async fn scan(&self, q: &ScanQuery) -> Result<Vec<Episode>> {
        check_namespace(&q.namespace, "namespace")?;
        for (name, v) in [("from", q.from), ("to", q.to)] {
            if v.is_some_and(f64::is_nan) {
                return Err(StoreError::NonFinite {
                    field: name.into(),
                    index: 0,
                });
            }
        }
        self.check_open()?;
        let from = norm_time(q.from.unwrap_or(f64::NEG_INFINITY));
        let to = norm_time(q.to.unwrap_or(f64::INFINITY));
        if from > to || q.limit == Some(0) {
            return Ok(Vec::new());
        }
        let limit = q.limit.unwrap_or(usize::MAX);
        let before = |a: &(f64, u64), b: &(f64, u64)| {
            let o = a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
            if q.reverse {
                o.reverse()
            } else {
                o
            }
        };
        'attempt: for _ in 0..MAX_ATTEMPTS {
            let res = self
                .read(&ReadRequest {
                    ns_pages: Some(NsPages {
                        namespace: q.namespace.clone(),
                        to,
                    }),
                    ..Default::default()
                })
                .await?;
            let st = decode_state(&res)?;
            *self.state.borrow_mut() = st.clone();
            let mut cands: Vec<NsPage> = res
                .ns_pages
                .into_iter()
                .filter(|p| p.tmax >= from)
                .collect();
            if q.reverse {
                crate::sort::sort_by(&mut cands, |a, b| {
                    b.tmax.total_cmp(&a.tmax).then(b.lo.cmp(&a.lo))
                });
            } else {
                crate::sort::sort_by(&mut cands, |a, b| {
                    a.tmin.total_cmp(&b.tmin).then(a.lo.cmp(&b.lo))
                });
            }
            let mut found: Vec<((f64, u64), EpisodeRecord)> = Vec::new();
            let mut next = 0;
            let mut round = 0u32;
            while next < cands.len() {
                // Pages for this round: enough rows for the limit (doubling each round).
                let need = limit
                    .saturating_sub(found.len())
                    .max(1)
                    .saturating_mul(1 << round.min(16));
                let mut take = Vec::new();
                let mut rows = 0usize;
                while next < cands.len() && (take.is_empty() || rows < need) {
                    take.push(cands[next].lo);
                    rows += cands[next].n as usize;
                    next += 1;
                }
                round += 1;
                let Some(r) = self.read_at(&st, take, Vec::new()).await? else {
                    continue 'attempt;
                };
                for (k, v) in page_views(&r)? {
                    for i in 0..v.len() {
                        let b = v.record(i);
                        let (ns, t) =
                            record_ns_time(b).map_err(|e| e.corrupt(format!("page {k}")))?;
                        if ns == q.namespace && t >= from && t <= to {
                            let rec = decode_record(b)
                                .map_err(|e| e.corrupt(format!("episode {}", v.id(i))))?;
                            found.push(((t, v.id(i)), rec));
                        }
                    }
                }
                crate::sort::sort_by(&mut found, |a, b| before(&a.0, &b.0));
                found.truncate(limit);
                if found.len() == limit && next < cands.len() {
                    // Every row of the pages left is at or after (reverse: at or before) their
                    // first (last) time: stop once the last row kept is strictly earlier (later).
                    let last = found[limit - 1].0 .0;
                    let done = if q.reverse {
                        last > cands[next].tmax
                    } else {
                        last < cands[next].tmin
                    };
                    if done {
                        break;
                    }
                }
            }
            if found.is_empty() {
                return Ok(Vec::new());
            }
            let ids: Vec<u64> = found.iter().map(|f| f.0 .1).collect();
            let Some(r) = self
                .read_at(&st, Vec::new(), self.tails_for(&st, &ids))
                .await?
            else {
                continue 'attempt;
            };
            let places = self.locate(&st, &r.segment_tails, &ids)?;
            let Some(vecs) = self.vectors_at(&st, &places).await? else {
                continue 'attempt;
            };
            return found
                .into_iter()
                .map(|(_, rec)| with_vector(rec, &vecs))
                .collect();
        }
        Err(StoreError::Conflict(MAX_ATTEMPTS))
    }

    /// Episodes stored, in all namespaces (`None`) or in one (from the index: no page is read).
    pub async fn count(&self, namespace: Option<&str>) -> Result<u64> {
        match namespace {
            None => Ok(self.refresh().await?.live),
            Some(ns) => {
                check_namespace(ns, "namespace")?;
                let res = self
                    .read(&ReadRequest {
                        ns_pages: Some(NsPages {
                            namespace: ns.to_string(),
                            to: f64::INFINITY,
                        }),
                        ..Default::default()
                    })
                    .await?;
                *self.state.borrow_mut() = decode_state(&res)?;
                Ok(res.ns_pages.iter().map(|p| p.n as u64).sum())
            }
        }
    }

    /// The store's change sequence now.
    pub async fn seq(&self) -> Result<u64> {
        Ok(self.refresh().await?.seq)
    }

    /// Every vector, packed (one read of the segment records: cost bounded by bytes).
    pub async fn load_vectors(&self) -> Result<VectorSet> {
        let mut sink = VecSink::default();
        let mut vs = self.load_vectors_into(&mut sink).await?;
        vs.vectors = sink.vectors;
        Ok(vs)
    }

    /// Every vector, into `sink` (the returned set has everything but `vectors`): the vectors are
    /// copied once, from each segment's bytes straight to their place in the sink.
    pub async fn load_vectors_into(&self, sink: &mut dyn VectorSink) -> Result<VectorSet> {
        self.check_open()?;
        let dims = self.dims();
        let mut b = VectorSetBuilder::default();
        b.vs.dims = dims;
        let (state, mut cursor) = self.backend.read_all_segments().await?;
        let st =
            State::decode(state.as_deref().unwrap_or_default()).map_err(|e| e.corrupt("state"))?;
        let rows: usize = st.segs.iter().map(|s| s.n as usize).sum();
        b.expected = rows;
        b.vs.ids.reserve(rows);
        b.vs.event_time.reserve(rows);
        b.vs.namespace_of.reserve(rows);
        sink.begin(rows, dims)?;
        while let Some(m) = cursor.next(sink, b.vs.ids.len() * dims).await? {
            b.append_meta(&m)?;
        }
        if b.vs.ids.len() != b.expected {
            return Err(StoreError::corrupt(
                "segments",
                format!("{} rows, the state lists {}", b.vs.ids.len(), b.expected),
            ));
        }
        b.vs.seq = st.seq;
        *self.state.borrow_mut() = st;
        Ok(b.vs)
    }

    /// The vectors of `ids` that exist (e.g. the `upserted` of [`Store::changes_since`]), in id
    /// order.
    pub async fn load_rows(&self, ids: &[u64]) -> Result<VectorSet> {
        self.check_open()?;
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        for _ in 0..MAX_ATTEMPTS {
            let st = self.state.borrow().clone();
            let Some(res) = self
                .read_at(&st, Vec::new(), self.tails_for(&st, &ids))
                .await?
            else {
                continue;
            };
            let places = self.locate(&st, &res.segment_tails, &ids)?;
            let Some(mut vecs) = self.vectors_at(&st, &places).await? else {
                continue;
            };
            let mut b = VectorSetBuilder::default();
            b.vs.dims = self.dims();
            b.vs.seq = st.seq;
            for (id, _, _, ns, t) in places {
                let k = b.ns_map(&[ns.as_str()])[0];
                b.vs.ids.push(id);
                b.vs.event_time.push(t);
                b.vs.namespace_of.push(k);
                b.vs.vectors.extend(vecs.remove(&id).unwrap_or_default());
            }
            return Ok(b.vs);
        }
        Err(StoreError::Conflict(MAX_ATTEMPTS))
    }

    /// What changed after sequence `after` (from [`VectorSet::seq`] or a notice), consolidated:
    /// an id put then deleted is reported deleted.
    pub async fn changes_since(&self, after: u64) -> Result<Changes> {
        let res = self
            .read(&ReadRequest {
                changes_after: Some(after),
                ..Default::default()
            })
            .await?;
        let st = decode_state(&res)?;
        *self.state.borrow_mut() = st.clone();
        let mut out = Changes {
            seq: st.seq,
            ..Default::default()
        };
        if after >= st.seq {
            return Ok(out);
        }
        if after + 1 < st.changes_floor {
            out.reset = true;
            return Ok(out);
        }
        // Hash sets, sorted at the end (not `BTreeSet`s: one fewer tree instance in wasm).
        let mut up: HashSet<u64> = HashSet::new();
        let mut del: HashSet<u64> = HashSet::new();
        let mut expect = after + 1;
        for (seq, b) in &res.changes {
            if *seq > st.seq {
                break; // committed after the state was read in this snapshot: cannot happen
            }
            if *seq != expect {
                out.reset = true; // a gap (pruned concurrently): reload
                return Ok(out);
            }
            expect += 1;
            let c = Change::decode(b).map_err(|e| e.corrupt(format!("change {seq}")))?;
            match c.kind {
                ChangeKind::Put | ChangeKind::Update => {
                    for id in c.ids() {
                        del.remove(&id);
                        up.insert(id);
                    }
                }
                ChangeKind::Delete => {
                    for id in c.ids() {
                        up.remove(&id);
                        del.insert(id);
                    }
                }
                ChangeKind::Clear => {
                    out.reset = true;
                    return Ok(out);
                }
            }
        }
        if expect != st.seq + 1 {
            out.reset = true;
            return Ok(out);
        }
        out.upserted = up.into_iter().collect();
        out.upserted.sort_unstable();
        out.deleted = del.into_iter().collect();
        out.deleted.sort_unstable();
        Ok(out)
    }

    /// Call `f(seq)` whenever another connection (tab) commits a write (`None` to stop).
    pub fn on_remote_change(&self, f: Option<NoticeListener>) {
        self.backend.set_notice_listener(f);
    }

    // -----------------------------------------------------------------------------------------
    // Export / import

    /// The whole store as a portable file (see [`super::export`]).
    pub async fn export(&self) -> Result<Vec<u8>> {
        let mut w = ExportWriter::new(self.dims());
        self.for_each_row(|id, rec, vector| {
            let rec = decode_record(rec).map_err(|e| e.corrupt(format!("episode {id}")))?;
            w.record(&rec, vector);
            Ok(())
        })
        .await?;
        Ok(w.finish())
    }

    /// Call `f(id, record bytes, vector)` for every live row in id order, from one read-only
    /// snapshot (every page and segment); returns that snapshot's state.
    async fn for_each_row(
        &self,
        mut f: impl FnMut(u64, &[u8], &[f32]) -> Result<()>,
    ) -> Result<State> {
        let res = self
            .read(&ReadRequest {
                all_pages: true,
                all_segments: true,
                ..Default::default()
            })
            .await?;
        let st = decode_state(&res)?;
        if st.seq > self.state.borrow().seq {
            // (Never back: a compaction task may read while this connection commits.)
            *self.state.borrow_mut() = st.clone();
        }
        let mut seg_iter = res.segments.iter();
        let mut cur: Option<Segment> = None;
        let mut row = 0usize;
        for (k, b) in &res.pages {
            let page = PageView::parse(b).map_err(|e| e.corrupt(format!("page {k}")))?;
            for i in 0..page.len() {
                let id = page.id(i);
                // Merge-join: records and segment rows are both in increasing id order.
                loop {
                    if let Some(s) = &cur {
                        while row < s.len() && s.ids[row] < id {
                            row += 1;
                        }
                        if row < s.len() {
                            break;
                        }
                    }
                    let (k, sb) = seg_iter.next().ok_or_else(|| {
                        StoreError::corrupt(
                            format!("episode {}", id),
                            "no segment holds its vector",
                        )
                    })?;
                    cur = Some(Segment::decode(sb).map_err(|e| e.corrupt(format!("segment {k}")))?);
                    row = 0;
                }
                let s = cur
                    .as_ref()
                    .ok_or_else(|| StoreError::corrupt("export", "no segment"))?;
                if s.ids[row] != id {
                    return Err(StoreError::corrupt(
                        format!("episode {}", id),
                        "no segment holds its vector",
                    ));
                }
                f(id, page.record(i), s.vector(row))?;
            }
        }
        Ok(st)
    }

    /// Import an export: the whole file is parsed and validated first (truncated or corrupted
    /// input: `CORRUPT_IMPORT`, nothing written), then written in one transaction. Ids are kept
    /// when they are all above every id this store issued, else reassigned in order.
    pub async fn import(&self, bytes: &[u8]) -> Result<ImportReport> {
        let (summary, rows) = decode_all(bytes)?;
        if summary.dims != self.dims() {
            return Err(StoreError::DimensionMismatch {
                field: "import.dims".into(),
                expected: self.dims(),
                got: summary.dims,
            });
        }
        if rows.is_empty() {
            self.check_open()?;
            return Ok(ImportReport {
                imported: 0,
                ids: Vec::new(),
                remapped: false,
            });
        }
        let rows = rows
            .into_iter()
            .map(|mut r| {
                r.event_time = norm_time(r.event_time);
                r
            })
            .collect();
        let m = Mutation {
            kind: ChangeKind::Put,
            rows,
            preserve_ids: true,
            deleted: Vec::new(),
            patch: None,
            restore: None,
        };
        let (ids, remapped) = self.mutate(&m).await?;
        Ok(ImportReport {
            imported: ids.len(),
            ids,
            remapped,
        })
    }

    // -----------------------------------------------------------------------------------------
    // Engine blobs

    fn check_blob_name(name: &str) -> Result<()> {
        if name.is_empty() || name.len() > 256 {
            return Err(StoreError::invalid(
                "name",
                "a blob name must have 1..=256 bytes",
            ));
        }
        Ok(())
    }

    /// Persist an engine blob (e.g. a BM25 or vector index) under `name`, with the engine's
    /// format `version` and the store sequence `seq` it reflects. Replaces any previous one.
    pub async fn put_blob(&self, name: &str, version: u32, seq: u64, bytes: &[u8]) -> Result<()> {
        Self::check_blob_name(name)?;
        self.check_open()?;
        let blob = Blob {
            version,
            seq,
            bytes: bytes.to_vec(),
        };
        let ws = WriteSet {
            put_blob: Some((name.to_string(), blob.encode())),
            durability: self.durability,
            ..Default::default()
        };
        self.backend.commit(ws).await.map(|_| ())
    }

    /// The engine blob `name`, if any.
    pub async fn get_blob(&self, name: &str) -> Result<Option<Blob>> {
        Self::check_blob_name(name)?;
        let res = self
            .read(&ReadRequest {
                blob: Some(name.to_string()),
                ..Default::default()
            })
            .await?;
        res.blob
            .map(|b| Blob::decode(&b).map_err(|e| e.corrupt(format!("blob {name}"))))
            .transpose()
    }

    /// Delete the engine blob `name` (no error if absent).
    pub async fn delete_blob(&self, name: &str) -> Result<()> {
        Self::check_blob_name(name)?;
        self.check_open()?;
        let ws = WriteSet {
            delete_blob: Some(name.to_string()),
            durability: self.durability,
            ..Default::default()
        };
        self.backend.commit(ws).await.map(|_| ())
    }

    // -----------------------------------------------------------------------------------------
    // Lifecycle

    /// Close this connection; later calls fail with `STORE_CLOSED`.
    pub fn close(&self) {
        self.closed.set(true);
        self.backend.close();
    }

    /// Delete the whole store (every other connection is closed and told).
    pub async fn destroy(&self) -> Result<()> {
        self.closed.set(true);
        self.backend.destroy().await
    }

    /// Check every invariant against the stored records (tests): each episode record has exactly
    /// one segment row with its namespace and time, the directories match the segments and the
    /// pages, the index entries match the pages, the live count matches, the record counts stay
    /// within their bounds. Returns the segment count.
    #[doc(hidden)]
    pub async fn check_integrity(&self) -> Result<usize> {
        let res = self
            .read(&ReadRequest {
                all_pages: true,
                all_segments: true,
                ..Default::default()
            })
            .await?;
        let st = decode_state(&res)?;
        let bad = |m: String| Err(StoreError::corrupt("integrity", m));
        if st.segs.len() != res.segments.len() {
            return bad(format!(
                "directory lists {} segments, {} stored",
                st.segs.len(),
                res.segments.len()
            ));
        }
        let mut rows: HashMap<u64, (String, f64)> = HashMap::new();
        let cap = self.segment_capacity();
        for (info, (k, b)) in st.segs.iter().zip(&res.segments) {
            let s = Segment::decode(b).map_err(|e| e.corrupt(format!("segment {k}")))?;
            if info.lo != *k || info.n as usize != s.len() || s.is_empty() || s.len() > cap {
                return bad(format!("segment {k}: directory {info:?}, {} rows", s.len()));
            }
            if s.ids.windows(2).any(|w| w[0] >= w[1])
                || s.ids.first().is_some_and(|&f| f < info.lo)
                || s.ids.last().is_some_and(|&l| l >= info.hi)
            {
                return bad(format!("segment {k}: ids out of order or range"));
            }
            for i in 0..s.len() {
                rows.insert(s.ids[i], (s.namespace(i).to_string(), s.times[i]));
            }
        }
        if st.segs.windows(2).any(|w| w[0].hi > w[1].lo) {
            return bad("segment ranges overlap".into());
        }
        // Pages: directory, contents, and the index entries they imply.
        if st.pages.len() != res.pages.len() {
            return bad(format!(
                "directory lists {} pages, {} stored",
                st.pages.len(),
                res.pages.len()
            ));
        }
        if st.pages.windows(2).any(|w| w[0].hi > w[1].lo) {
            return bad("page ranges overlap".into());
        }
        let pcap = self.page_capacity();
        let mut records = 0usize;
        let mut weight = 0usize;
        let mut summaries: BTreeMap<String, Vec<(u64, f64, f64, u32)>> = BTreeMap::new();
        for (info, (k, b)) in st.pages.iter().zip(&res.pages) {
            let p = PageView::parse(b).map_err(|e| e.corrupt(format!("page {k}")))?;
            let mut w = 0usize;
            let mut per_ns: BTreeMap<String, (f64, f64, u32)> = BTreeMap::new();
            for i in 0..p.len() {
                let r = decode_record(p.record(i)).map_err(|e| e.corrupt("episode"))?;
                if r.id != p.id(i) || r.id < info.lo || r.id >= info.hi {
                    return bad(format!("page {k}: row {i} holds episode {}", r.id));
                }
                match rows.get(&r.id) {
                    Some((ns, t))
                        if *ns == r.namespace && t.to_bits() == r.event_time.to_bits() => {}
                    _ => return bad(format!("episode {} has no matching segment row", r.id)),
                }
                if r.id >= st.next_id {
                    return bad(format!(
                        "episode {} at or above next id {}",
                        r.id, st.next_id
                    ));
                }
                w += page_weight(p.record(i).len()) as usize;
                let e =
                    per_ns
                        .entry(r.namespace.clone())
                        .or_insert((r.event_time, r.event_time, 0));
                e.0 = e.0.min(r.event_time);
                e.1 = e.1.max(r.event_time);
                e.2 += 1;
            }
            if info.lo != *k
                || info.n as usize != p.len()
                || p.is_empty()
                || info.bytes as usize != w
            {
                return bad(format!(
                    "page {k}: directory {info:?}, {} rows of {w} bytes",
                    p.len()
                ));
            }
            if w > pcap && p.len() > 1 {
                return bad(format!("page {k}: {w} bytes over the capacity {pcap}"));
            }
            if b.len() != PAGE_HEADER_BYTES + w {
                return bad(format!("page {k}: {} bytes stored for {w}", b.len()));
            }
            records += p.len();
            weight += w;
            for (ns, (a, z, n)) in per_ns {
                summaries.entry(ns).or_default().push((*k, a, z, n));
            }
        }
        if records != rows.len() || st.live as usize != rows.len() {
            return bad(format!(
                "{records} episode records, {} segment rows, live count {}",
                rows.len(),
                st.live
            ));
        }
        for (ns, mut want) in summaries {
            let r = self
                .read(&ReadRequest {
                    ns_pages: Some(NsPages {
                        namespace: ns.clone(),
                        to: f64::INFINITY,
                    }),
                    ..Default::default()
                })
                .await?;
            if state_seq(r.state.as_deref()) != st.seq {
                return Err(StoreError::Conflict(1));
            }
            let mut got: Vec<(u64, f64, f64, u32)> = r
                .ns_pages
                .iter()
                .map(|p| (p.lo, p.tmin, p.tmax, p.n))
                .collect();
            got.sort_by_key(|g| g.0);
            want.sort_by_key(|g| g.0);
            if got != want {
                return bad(format!("index of {ns:?}: {got:?}, pages imply {want:?}"));
            }
        }
        let bound = |units: f64, cap: usize| {
            (5.4 * units / cap as f64) as usize + (usize::BITS - cap.leading_zeros()) as usize + 3
        };
        let n = rows.len() as f64;
        if st.segs.len() > bound(n, cap) {
            return bad(format!(
                "{} segments for {} rows exceeds the bound {}",
                st.segs.len(),
                rows.len(),
                bound(n, cap)
            ));
        }
        // (A record larger than the page capacity has a page of its own, of weight above it.)
        if st.pages.len() > bound(weight as f64, pcap) {
            return bad(format!(
                "{} pages for {records} records of {weight} bytes exceeds the bound {}",
                st.pages.len(),
                bound(weight as f64, pcap)
            ));
        }
        *self.state.borrow_mut() = st.clone();
        Ok(st.segs.len())
    }

    /// The segment directory of the cached state (tests, benches).
    #[doc(hidden)]
    pub fn directory(&self) -> Vec<SegInfo> {
        self.state.borrow().segs.clone()
    }

    /// The page directory of the cached state (tests, benches).
    #[doc(hidden)]
    pub fn page_directory(&self) -> Vec<PageInfo> {
        self.state.borrow().pages.clone()
    }
}

/// The page directory of a planned layout (weight = bytes).
fn page_infos(l: &Layout) -> Vec<PageInfo> {
    l.units
        .iter()
        .map(|u| PageInfo {
            lo: u.lo,
            hi: u.hi,
            n: u.n as u32,
            bytes: u.w as u32,
        })
        .collect()
}

/// The encoded record (everything but the embedding) of a new episode under `id`.
fn encode_episode_record(r: &Episode, id: u64) -> Vec<u8> {
    let rec = EpisodeRecord {
        id,
        namespace: r.namespace.clone(),
        role: r.role.clone(),
        text: r.text.clone(),
        event_time: r.event_time,
        insert_time: r.insert_time,
        metadata: r.metadata.clone(),
        importance: r.importance,
        tags: r.tags.clone(),
    };
    debug_assert_eq!(record_len(&rec), encode_record(&rec).len());
    encode_record(&rec)
}

/// Where an episode's vector is: `(id, segment key, byte start, namespace, event time)`.
type Place = (u64, u64, usize, String, f64);

/// Views (without vectors) of segment tails read, by key.
fn tail_views(tails: &[(u64, SegmentMeta)], dims: usize) -> Result<HashMap<u64, SegmentView<'_>>> {
    tails
        .iter()
        .map(|(k, m)| {
            let what = || format!("segment {k}");
            let (d, n, n_ns, _) = segment_header(&m.head).map_err(|e| e.corrupt(what()))?;
            if d != dims {
                return Err(StoreError::corrupt(
                    what(),
                    format!("dims {d} in a store of {dims}"),
                ));
            }
            SegmentView::from_parts(d, n, n_ns, &[], &m.tail)
                .map(|v| (*k, v))
                .map_err(|e| e.corrupt(what()))
        })
        .collect()
}

/// The episode of `rec` with its vector from `vecs`.
fn with_vector(rec: EpisodeRecord, vecs: &HashMap<u64, Vec<f32>>) -> Result<Episode> {
    let id = rec.id;
    let v = vecs.get(&id).cloned().ok_or_else(|| {
        StoreError::corrupt(format!("episode {id}"), "no segment holds its vector")
    })?;
    Ok(rec.into_episode(v))
}

/// Run two futures together on this thread (each polled when woken) until both are done.
async fn join2<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let (mut a, mut b) = (pin!(a), pin!(b));
    let (mut ra, mut rb) = (None, None);
    poll_fn(|cx| {
        if ra.is_none() {
            if let Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        match (ra.take(), rb.take()) {
            (Some(x), Some(y)) => Poll::Ready((x, y)),
            (x, y) => {
                (ra, rb) = (x, y);
                Poll::Pending
            }
        }
    })
    .await
}
