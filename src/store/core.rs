//! `Store`: the episodic store over any [`Backend`]. Validates input, plans each operation as
//! one read-only snapshot and one conditional read-write commit, and retries when another
//! connection wrote in between (optimistic concurrency on the state's change sequence).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap, HashSet};

use super::backend::{
    Backend, CommitOutcome, Durability, EpisodeRow, NoticeListener, NsScan, ReadRequest,
    ReadResult, SegmentSource, WriteSet,
};
use super::codec::{
    copy_f32s, decode_record, encode_record, segment_header, state_seq, Blob, Change, ChangeKind,
    EpisodeRecord, Header, SegInfo, Segment, SegmentView, State, RECORD_VERSION,
    SEGMENT_VECTORS_OFFSET,
};
use super::episode::{
    check_namespace, norm_time, now_ms, validate_new, validate_patch, Episode, NewEpisode, Patch,
    DEFAULT_IMPORTANCE, MAX_DIMS, MAX_ID,
};
use super::error::{Result, StoreError};
use super::export::{decode_all, ExportWriter};
use super::lock::AsyncLock;
use super::plan::{build, plan, NewRows};

/// How often a write is re-planned when other connections keep committing before it.
const MAX_ATTEMPTS: u32 = 64;
/// Change records kept by default (older ones are pruned; a reader that far behind reloads).
pub const DEFAULT_CHANGE_RETENTION: u64 = 1024;

/// The default rows per segment for `dims`: about 2 MiB of vectors, within `16..=4096`.
pub fn default_segment_capacity(dims: usize) -> usize {
    ((2 << 20) / (4 * dims.max(1))).clamp(16, 4096)
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
    /// `ids.len() * dims` values, row-major.
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

#[derive(Default)]
struct VectorSetBuilder {
    vs: VectorSet,
    ns_map: HashMap<String, u32>,
    filter: Option<HashSet<u64>>,
    scratch: Vec<u8>,
}

impl VectorSetBuilder {
    /// Append a segment from wherever the backend holds it: the vectors are copied once, straight
    /// into the packed matrix; only the small tail (ids, times, namespaces) goes through a scratch
    /// buffer.
    fn append_source(&mut self, key: u64, src: &dyn SegmentSource) -> Result<()> {
        let what = || format!("segment {key}");
        let len = src.byte_len();
        if self.filter.is_some() || len < SEGMENT_VECTORS_OFFSET {
            let mut all = std::mem::take(&mut self.scratch);
            all.resize(len, 0);
            src.read(0, &mut all);
            let r = self.append(key, &all);
            self.scratch = all;
            return r;
        }
        let mut head = [0u8; SEGMENT_VECTORS_OFFSET];
        src.read(0, &mut head);
        let (dims, n, n_ns, vbytes) = segment_header(&head).map_err(|e| e.corrupt(what()))?;
        if dims != self.vs.dims || SEGMENT_VECTORS_OFFSET + vbytes > len {
            return Err(StoreError::corrupt(what(), "bad dims or length"));
        }
        let mut tail = std::mem::take(&mut self.scratch);
        tail.resize(len - SEGMENT_VECTORS_OFFSET - vbytes, 0);
        src.read(SEGMENT_VECTORS_OFFSET + vbytes, &mut tail);
        let r = (|| {
            let v = SegmentView::from_parts(dims, n, n_ns, &[], &tail)
                .map_err(|e| e.corrupt(what()))?;
            let start = self.vs.vectors.len();
            self.vs.vectors.resize(start + n * dims, 0.0);
            src.read_f32(SEGMENT_VECTORS_OFFSET, &mut self.vs.vectors[start..]);
            self.push_attrs(&v);
            Ok(())
        })();
        self.scratch = tail;
        r
    }

    fn push_attrs(&mut self, v: &SegmentView<'_>) {
        let map: Vec<u32> = v
            .namespaces
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
            .collect();
        self.vs.ids.extend(v.ids());
        self.vs.event_time.extend(v.times());
        self.vs
            .namespace_of
            .extend(v.ns_idx().map(|k| map[k as usize]));
    }

    fn append(&mut self, key: u64, bytes: &[u8]) -> Result<()> {
        let v = SegmentView::parse(bytes).map_err(|e| e.corrupt(format!("segment {key}")))?;
        let dims = self.vs.dims;
        if v.dims != dims {
            return Err(StoreError::corrupt(
                format!("segment {key}"),
                format!("dims {} in a store of {dims}", v.dims),
            ));
        }
        let map: Vec<u32> = v
            .namespaces
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
            .collect();
        match &self.filter {
            None => {
                let start = self.vs.vectors.len();
                self.vs.vectors.resize(start + v.n * dims, 0.0);
                copy_f32s(v.vector_bytes, &mut self.vs.vectors[start..]);
                self.vs.ids.extend(v.ids());
                self.vs.event_time.extend(v.times());
                self.vs
                    .namespace_of
                    .extend(v.ns_idx().map(|k| map[k as usize]));
            }
            Some(want) => {
                for (i, ((id, t), k)) in v.ids().zip(v.times()).zip(v.ns_idx()).enumerate() {
                    if want.contains(&id) {
                        let start = self.vs.vectors.len();
                        self.vs.vectors.resize(start + dims, 0.0);
                        copy_f32s(
                            &v.vector_bytes[i * dims * 4..(i + 1) * dims * 4],
                            &mut self.vs.vectors[start..],
                        );
                        self.vs.ids.push(id);
                        self.vs.event_time.push(t);
                        self.vs.namespace_of.push(map[k as usize]);
                    }
                }
            }
        }
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
    /// Next id to be issued.
    pub next_id: u64,
}

/// One write, planned against whatever state is current when it is attempted.
struct Mutation {
    kind: ChangeKind,
    rows: Vec<Episode>,
    preserve_ids: bool,
    deleted: Vec<u64>,
    patch: Option<(u64, Patch)>,
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
}

fn decode_state(res: &ReadResult) -> Result<State> {
    match &res.state {
        Some(b) => State::decode(b).map_err(|e| e.corrupt("state")),
        None => Err(StoreError::corrupt("state", "missing")),
    }
}

impl<B: Backend> Store<B> {
    /// Open the store on `backend`, creating it (with `opts.dims`) if it is empty.
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
        let retention = opts
            .change_retention
            .unwrap_or(DEFAULT_CHANGE_RETENTION)
            .max(1);
        for _ in 0..MAX_ATTEMPTS {
            let res = backend.read(&ReadRequest::default()).await?;
            if let Some(h) = &res.header {
                let header = Header::decode(h).map_err(|e| e.corrupt("header"))?;
                if header.format > RECORD_VERSION as u32 {
                    return Err(StoreError::SchemaTooNew {
                        found: header.format,
                        supported: RECORD_VERSION as u32,
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
                return Ok(Store {
                    backend,
                    header,
                    state: RefCell::new(state),
                    lock: AsyncLock::default(),
                    durability: opts.durability,
                    retention,
                    closed: Cell::new(false),
                });
            }
            let dims = opts.dims.ok_or_else(|| {
                StoreError::invalid("dims", "dims is required to create a new store")
            })?;
            let header = Header {
                format: RECORD_VERSION as u32,
                dims,
                segment_capacity: opts
                    .segment_capacity
                    .unwrap_or_else(|| default_segment_capacity(dims)),
                created: now_ms(),
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
                return Ok(Store {
                    backend,
                    header,
                    state: RefCell::new(state),
                    lock: AsyncLock::default(),
                    durability: opts.durability,
                    retention,
                    closed: Cell::new(false),
                });
            }
        }
        Err(StoreError::Conflict(MAX_ATTEMPTS))
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

    /// Counters of the last state this connection saw (no I/O).
    pub fn stats(&self) -> StoreStats {
        let s = self.state.borrow();
        StoreStats {
            seq: s.seq,
            live: s.live,
            segments: s.segs.len(),
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

    /// Re-read the state record into the cache.
    async fn refresh(&self) -> Result<State> {
        let res = self.read(&ReadRequest::default()).await?;
        let st = decode_state(&res)?;
        *self.state.borrow_mut() = st.clone();
        Ok(st)
    }

    fn episode_from(
        &self,
        rec: EpisodeRecord,
        segs: &HashMap<u64, Segment>,
        st: &State,
    ) -> Result<Episode> {
        let id = rec.id;
        let seg = st
            .seg_of(id)
            .and_then(|i| segs.get(&st.segs[i].lo))
            .ok_or_else(|| {
                StoreError::corrupt(format!("episode {id}"), "no segment holds its vector")
            })?;
        let row = seg.find(id).ok_or_else(|| {
            StoreError::corrupt(format!("episode {id}"), "its segment lacks the row")
        })?;
        let v = seg.vector(row).to_vec();
        Ok(rec.into_episode(v))
    }

    // -----------------------------------------------------------------------------------------
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
            validate_new(ep, self.dims(), &format!("episodes[{i}]"))?;
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
        };
        self.mutate(&m).await.map(|_| ())
    }

    /// Delete every episode of a namespace; returns how many. `NOT_FOUND` if it has none.
    pub async fn delete_namespace(&self, namespace: &str) -> Result<usize> {
        check_namespace(namespace, "namespace")?;
        let _g = self.lock.lock().await;
        for _ in 0..MAX_ATTEMPTS {
            let res = self
                .read(&ReadRequest {
                    namespace_ids: Some(namespace.to_string()),
                    ..Default::default()
                })
                .await?;
            let st = decode_state(&res)?;
            *self.state.borrow_mut() = st.clone();
            if res.namespace_ids.is_empty() {
                return Err(StoreError::NotFound {
                    what: format!("namespace {namespace:?}"),
                });
            }
            let n = res.namespace_ids.len();
            let m = Mutation {
                kind: ChangeKind::Delete,
                rows: Vec::new(),
                preserve_ids: false,
                deleted: res.namespace_ids,
                patch: None,
            };
            if let Attempt::Done(_) = self.attempt(&st, &m).await? {
                return Ok(n);
            }
        }
        Err(StoreError::Conflict(MAX_ATTEMPTS))
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
                segs: Vec::new(),
            };
            let ws = WriteSet {
                expect_seq: Some(st.seq),
                state: Some(new.encode()),
                clear: true,
                put_change: Some((seq, Change::new(ChangeKind::Clear, []).encode())),
                durability: self.durability,
                ..Default::default()
            };
            match self.backend.commit(ws).await? {
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

    /// Plan `m` against `st`, read what the plan needs, commit if `st` is still current.
    async fn attempt(&self, st: &State, m: &Mutation) -> Result<Attempt<(Vec<u64>, bool)>> {
        let dims = self.dims();
        let cap = self.segment_capacity();
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
        let layout = plan(st, cap, &m.deleted, &patch_vec, &new_ids)?;

        // Read what the plan needs (old segments, the record to patch).
        let patch_ids: Vec<u64> = m.patch.iter().map(|(id, _)| *id).collect();
        let mut old: HashMap<u64, Segment> = HashMap::new();
        let mut patched: Option<EpisodeRecord> = None;
        if !layout.reads.is_empty() || !patch_ids.is_empty() {
            let res = self
                .read(&ReadRequest {
                    segments: layout.reads.clone(),
                    episodes: patch_ids.clone(),
                    ..Default::default()
                })
                .await?;
            if state_seq(res.state.as_deref()) != st.seq {
                *self.state.borrow_mut() = decode_state(&res)?;
                return Ok(Attempt::Stale);
            }
            for (k, b) in &res.segments {
                old.insert(
                    *k,
                    Segment::decode(b).map_err(|e| e.corrupt(format!("segment {k}")))?,
                );
            }
            if let Some((id, p)) = &m.patch {
                let b = res.episodes[0]
                    .as_ref()
                    .ok_or_else(|| StoreError::NotFound {
                        what: format!("episode {id}"),
                    })?;
                let mut rec = decode_record(b).map_err(|e| e.corrupt(format!("episode {id}")))?;
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
                patched = Some(rec);
            }
        }

        // Assemble the new segments.
        let new_rows = NewRows {
            ids: new_ids.clone(),
            namespaces: m.rows.iter().map(|r| r.namespace.as_str()).collect(),
            times: m.rows.iter().map(|r| r.event_time).collect(),
            vectors: m.rows.iter().map(|r| r.embedding.as_slice()).collect(),
        };
        let deleted: HashSet<u64> = m.deleted.iter().copied().collect();
        let mut updated: HashMap<u64, &[f32]> = HashMap::new();
        if let Some((id, p)) = &m.patch {
            if let Some(e) = &p.embedding {
                updated.insert(*id, e.as_slice());
            }
        }
        let built = build(&layout, dims, &old, &new_rows, &deleted, &updated)?;

        // The write set.
        let seq = st.seq + 1;
        let live = st.live + new_ids.len() as u64 - deleted.len() as u64;
        let mut new_state = State {
            seq,
            next_id: new_ids
                .last()
                .map_or(st.next_id, |&l| l + 1)
                .max(st.next_id),
            live,
            changes_floor: st.changes_floor,
            segs: layout.segs.clone(),
        };
        let mut ws = WriteSet {
            expect_seq: Some(st.seq),
            durability: self.durability,
            delete_episodes: m.deleted.clone(),
            delete_segments: layout.delete_keys.clone(),
            put_segments: built.iter().map(|(k, s)| (*k, s.encode())).collect(),
            ..Default::default()
        };
        ws.put_episodes.reserve(m.rows.len());
        for (r, &id) in m.rows.iter().zip(&new_ids) {
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
            ws.put_episodes.push(EpisodeRow {
                id,
                namespace: r.namespace.clone(),
                time: r.event_time,
                bytes: encode_record(&rec),
            });
        }
        let mut changed: Vec<u64> = new_ids.clone();
        if let Some((id, p)) = &m.patch {
            changed.push(*id);
            match patched {
                Some(rec) => ws.put_episodes.push(EpisodeRow {
                    id: *id,
                    namespace: rec.namespace.clone(),
                    time: rec.event_time,
                    bytes: encode_record(&rec),
                }),
                None => {
                    // Nothing read: only possible for an empty patch; still check existence.
                    let _ = p;
                    return Err(StoreError::NotFound {
                        what: format!("episode {id}"),
                    });
                }
            }
        }
        changed.extend(m.deleted.iter().copied());
        ws.put_change = Some((seq, Change::new(m.kind, changed).encode()));
        if seq >= st.changes_floor + self.retention + 64 {
            let below = seq - self.retention + 1;
            ws.prune_changes_below = Some(below);
            new_state.changes_floor = below;
        }
        ws.state = Some(new_state.encode());
        match self.backend.commit(ws).await? {
            CommitOutcome::Committed => {
                *self.state.borrow_mut() = new_state;
                Ok(Attempt::Done((new_ids, remapped)))
            }
            CommitOutcome::Conflict { .. } => Ok(Attempt::Stale),
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
        for _ in 0..MAX_ATTEMPTS {
            let st = self.state.borrow().clone();
            let keys: Vec<u64> = ids
                .iter()
                .filter_map(|&id| st.seg_of(id).map(|i| st.segs[i].lo))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let res = self
                .read(&ReadRequest {
                    episodes: ids.to_vec(),
                    segments: keys,
                    ..Default::default()
                })
                .await?;
            if state_seq(res.state.as_deref()) != st.seq {
                *self.state.borrow_mut() = decode_state(&res)?;
                continue;
            }
            let segs = decode_segments(&res)?;
            let mut out = Vec::with_capacity(ids.len());
            for (id, b) in ids.iter().zip(&res.episodes) {
                match b {
                    None => out.push(None),
                    Some(b) => {
                        let rec =
                            decode_record(b).map_err(|e| e.corrupt(format!("episode {id}")))?;
                        out.push(Some(self.episode_from(rec, &segs, &st)?));
                    }
                }
            }
            return Ok(out);
        }
        Err(StoreError::Conflict(MAX_ATTEMPTS))
    }

    /// Episodes of a namespace within an event-time range, in `[time, id]` order.
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
        let scan = NsScan {
            namespace: q.namespace.clone(),
            from: norm_time(q.from.unwrap_or(f64::NEG_INFINITY)),
            to: norm_time(q.to.unwrap_or(f64::INFINITY)),
            limit: q.limit,
            reverse: q.reverse,
        };
        if scan.from > scan.to || q.limit == Some(0) {
            return Ok(Vec::new());
        }
        for _ in 0..MAX_ATTEMPTS {
            let res = self
                .read(&ReadRequest {
                    scan: Some(scan.clone()),
                    ..Default::default()
                })
                .await?;
            let st = decode_state(&res)?;
            *self.state.borrow_mut() = st.clone();
            let recs = res
                .scan
                .iter()
                .map(|b| decode_record(b).map_err(|e| e.corrupt("scanned episode")))
                .collect::<Result<Vec<_>>>()?;
            if recs.is_empty() {
                return Ok(Vec::new());
            }
            let keys: Vec<u64> = recs
                .iter()
                .filter_map(|r| st.seg_of(r.id).map(|i| st.segs[i].lo))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let res2 = self
                .read(&ReadRequest {
                    segments: keys,
                    ..Default::default()
                })
                .await?;
            if state_seq(res2.state.as_deref()) != st.seq {
                continue;
            }
            let segs = decode_segments(&res2)?;
            return recs
                .into_iter()
                .map(|r| self.episode_from(r, &segs, &st))
                .collect();
        }
        Err(StoreError::Conflict(MAX_ATTEMPTS))
    }

    /// Episodes stored, in all namespaces (`None`) or in one.
    pub async fn count(&self, namespace: Option<&str>) -> Result<u64> {
        match namespace {
            None => Ok(self.refresh().await?.live),
            Some(ns) => {
                check_namespace(ns, "namespace")?;
                let res = self
                    .read(&ReadRequest {
                        count_namespace: Some(ns.to_string()),
                        ..Default::default()
                    })
                    .await?;
                *self.state.borrow_mut() = decode_state(&res)?;
                Ok(res.count)
            }
        }
    }

    /// The store's change sequence now.
    pub async fn seq(&self) -> Result<u64> {
        Ok(self.refresh().await?.seq)
    }

    /// Every vector, packed (one read of the segment records: cost bounded by bytes).
    pub async fn load_vectors(&self) -> Result<VectorSet> {
        self.load(None).await
    }

    /// The vectors of `ids` that exist (e.g. the `upserted` of [`Store::changes_since`]), in id
    /// order.
    pub async fn load_rows(&self, ids: &[u64]) -> Result<VectorSet> {
        self.load(Some(ids)).await
    }

    async fn load(&self, ids: Option<&[u64]>) -> Result<VectorSet> {
        self.check_open()?;
        let dims = self.dims();
        let hint = self.state.borrow().live as usize;
        let mut b = VectorSetBuilder::default();
        b.vs.dims = dims;
        match ids {
            None => {
                b.vs.vectors.reserve(hint * dims);
                b.vs.ids.reserve(hint);
                b.vs.event_time.reserve(hint);
                b.vs.namespace_of.reserve(hint);
                let state = self
                    .backend
                    .read_all_segments(&mut |k, src| b.append_source(k, src))
                    .await?;
                let st = State::decode(state.as_deref().unwrap_or_default())
                    .map_err(|e| e.corrupt("state"))?;
                b.vs.seq = st.seq;
                *self.state.borrow_mut() = st;
                Ok(b.vs)
            }
            Some(ids) => {
                b.filter = Some(ids.iter().copied().collect());
                for _ in 0..MAX_ATTEMPTS {
                    let st = self.state.borrow().clone();
                    let keys: Vec<u64> = ids
                        .iter()
                        .filter_map(|&id| st.seg_of(id).map(|i| st.segs[i].lo))
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect();
                    let res = self
                        .read(&ReadRequest {
                            segments: keys,
                            ..Default::default()
                        })
                        .await?;
                    if state_seq(res.state.as_deref()) != st.seq {
                        *self.state.borrow_mut() = decode_state(&res)?;
                        continue;
                    }
                    for (k, bytes) in &res.segments {
                        b.append(*k, bytes)?;
                    }
                    b.vs.seq = st.seq;
                    return Ok(b.vs);
                }
                Err(StoreError::Conflict(MAX_ATTEMPTS))
            }
        }
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
        let mut up: BTreeSet<u64> = BTreeSet::new();
        let mut del: BTreeSet<u64> = BTreeSet::new();
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
        out.deleted = del.into_iter().collect();
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
        let res = self
            .read(&ReadRequest {
                all_episodes: true,
                all_segments: true,
                ..Default::default()
            })
            .await?;
        *self.state.borrow_mut() = decode_state(&res)?;
        let dims = self.dims();
        let mut w = ExportWriter::new(dims);
        let mut seg_iter = res.segments.iter();
        let mut cur: Option<Segment> = None;
        let mut row = 0usize;
        for b in &res.all_episodes {
            let rec = decode_record(b).map_err(|e| e.corrupt("episode"))?;
            // Merge-join: records and segment rows are both in increasing id order.
            loop {
                if let Some(s) = &cur {
                    while row < s.len() && s.ids[row] < rec.id {
                        row += 1;
                    }
                    if row < s.len() {
                        break;
                    }
                }
                let (k, sb) = seg_iter.next().ok_or_else(|| {
                    StoreError::corrupt(
                        format!("episode {}", rec.id),
                        "no segment holds its vector",
                    )
                })?;
                cur = Some(Segment::decode(sb).map_err(|e| e.corrupt(format!("segment {k}")))?);
                row = 0;
            }
            let s = cur
                .as_ref()
                .ok_or_else(|| StoreError::corrupt("export", "no segment"))?;
            if s.ids[row] != rec.id {
                return Err(StoreError::corrupt(
                    format!("episode {}", rec.id),
                    "no segment holds its vector",
                ));
            }
            w.record(&rec, s.vector(row));
        }
        Ok(w.finish())
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

    /// Check every invariant against the stored records (tests): each episode has exactly one
    /// segment row with its namespace and time, the directory matches the segments, the live
    /// count matches, the segment count stays within its bound. Returns the segment count.
    #[doc(hidden)]
    pub async fn check_integrity(&self) -> Result<usize> {
        let res = self
            .read(&ReadRequest {
                all_episodes: true,
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
        if res.all_episodes.len() != rows.len() || st.live as usize != rows.len() {
            return bad(format!(
                "{} episode records, {} segment rows, live count {}",
                res.all_episodes.len(),
                rows.len(),
                st.live
            ));
        }
        for b in &res.all_episodes {
            let r = decode_record(b).map_err(|e| e.corrupt("episode"))?;
            match rows.get(&r.id) {
                Some((ns, t)) if *ns == r.namespace && t.to_bits() == r.event_time.to_bits() => {}
                _ => return bad(format!("episode {} has no matching segment row", r.id)),
            }
            if r.id >= st.next_id {
                return bad(format!(
                    "episode {} at or above next id {}",
                    r.id, st.next_id
                ));
            }
        }
        let n = rows.len() as f64;
        let bound =
            (5.4 * n / cap as f64) as usize + (usize::BITS - cap.leading_zeros()) as usize + 3;
        if st.segs.len() > bound {
            return bad(format!(
                "{} segments for {} rows exceeds the bound {bound}",
                st.segs.len(),
                rows.len()
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
}

fn decode_segments(res: &ReadResult) -> Result<HashMap<u64, Segment>> {
    res.segments
        .iter()
        .map(|(k, b)| {
            Segment::decode(b)
                .map(|s| (*k, s))
                .map_err(|e| e.corrupt(format!("segment {k}")))
        })
        .collect()
}
