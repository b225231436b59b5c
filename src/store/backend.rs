//! The backend trait: the small surface a storage engine must offer the store.
//!
//! The store core plans every operation as plain data: a [`ReadRequest`] (everything one
//! read-only transaction fetches) and a [`WriteSet`] (everything one read-write transaction
//! writes, applied only if the change sequence is still the one the plan was made from). A
//! backend runs each as ONE transaction and does nothing else inside it: no decoding, no planning,
//! no awaiting of anything but its own requests. Conflicts (another connection wrote in between)
//! come back as [`CommitOutcome::Conflict`] and the store re-plans.
//!
//! Both backends store the same bytes ([`super::codec`]); they differ only in where they keep them.

use std::rc::Rc;

use super::codec::{NsPage, PageKey};
use super::error::{Result, StoreError};

/// The schema version of the database layout (the IndexedDB version number). Opening a database
/// written by a newer schema fails with `SCHEMA_TOO_NEW`. Version 2: episode records in pages
/// (object store `pages` with the multi-entry `[namespace, time]` index), segments as `Blob`s;
/// a version-1 database is upgraded on open (see [`super::Store::open`]).
pub const SCHEMA_VERSION: u32 = 2;

/// How hard a write is flushed before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Flushed to disk before the write resolves (IndexedDB `durability: 'strict'`). Default:
    /// an acknowledged write survives a crash of the browser or the machine.
    #[default]
    Strict,
    /// Handed to the OS before the write resolves (`'relaxed'`): survives a crash of the
    /// browser, may be lost on a power cut. Faster on some platforms.
    Relaxed,
}

impl Durability {
    /// From `'strict'` / `'relaxed'`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "strict" => Some(Durability::Strict),
            "relaxed" => Some(Durability::Relaxed),
            _ => None,
        }
    }
}

/// The `[namespace, time]` index entries of one namespace whose first time is at most `to`, in
/// index order (first time, last time, rows, page key).
#[derive(Debug, Clone, PartialEq)]
pub struct NsPages {
    /// The namespace.
    pub namespace: String,
    /// Highest first time (inclusive); `f64::INFINITY` for every page of the namespace.
    pub to: f64,
}

/// What one read-only transaction fetches. The header and the state record are always read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadRequest {
    /// Page records by key (missing ones are left out).
    pub pages: Vec<u64>,
    /// Whole segment records by key (missing ones are left out).
    pub segments: Vec<u64>,
    /// The header and tail of segment records, by key, with the bytes of vectors between them
    /// (from the directory): ids, times and namespaces without the vectors.
    pub segment_tails: Vec<(u64, usize)>,
    /// Byte ranges `(key, start, end)` of segment records (single vectors).
    pub segment_ranges: Vec<(u64, usize, usize)>,
    /// Every page record, in key order.
    pub all_pages: bool,
    /// Every segment record, in key order.
    pub all_segments: bool,
    /// Index entries of a namespace.
    pub ns_pages: Option<NsPages>,
    /// Every episode record of the legacy (schema 1) layout, in id order.
    pub legacy_episodes: bool,
    /// Change records with sequence > this.
    pub changes_after: Option<u64>,
    /// An engine blob by name.
    pub blob: Option<String>,
}

/// What a [`ReadRequest`] returned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadResult {
    /// The header record.
    pub header: Option<Vec<u8>>,
    /// The state record.
    pub state: Option<Vec<u8>>,
    /// Page records found (requested or all), by key, in key order.
    pub pages: Vec<(u64, Vec<u8>)>,
    /// Segment records found (requested or all), by key, in key order.
    pub segments: Vec<(u64, Vec<u8>)>,
    /// Segment headers and tails found, by key, in key order.
    pub segment_tails: Vec<(u64, SegmentMeta)>,
    /// The requested ranges, in request order (`None`: no such segment).
    pub segment_ranges: Vec<Option<Vec<u8>>>,
    /// The namespace's index entries, in index order.
    pub ns_pages: Vec<NsPage>,
    /// Legacy episode records, in id order (when asked).
    pub legacy_episodes: Vec<Vec<u8>>,
    /// Change records `(seq, bytes)`, increasing.
    pub changes: Vec<(u64, Vec<u8>)>,
    /// The blob.
    pub blob: Option<Vec<u8>>,
}

/// A page record to put: its key, its index entries and its bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct PageRecord {
    /// Key (first id of the page's range).
    pub lo: u64,
    /// `[namespace, time]` index entries (one per namespace of the page).
    pub keys: Vec<PageKey>,
    /// The encoded page.
    pub bytes: Vec<u8>,
}

/// A piece of a segment record to write.
#[derive(Debug, Clone, PartialEq)]
pub enum SegPart {
    /// New bytes.
    Bytes(Vec<u8>),
    /// Bytes `start..end` of the stored segment `key` as it is before this write (which may
    /// delete or replace it): a segment is rewritten without copying the vectors it keeps
    /// through wasm memory (IndexedDB composes the new `Blob` from slices of the old ones).
    Old {
        /// The stored segment.
        key: u64,
        /// First byte.
        start: usize,
        /// One past the last byte.
        end: usize,
    },
}

/// The byte length of a segment record written from `parts`, given the stored lengths.
pub fn parts_len(parts: &[SegPart]) -> usize {
    parts
        .iter()
        .map(|p| match p {
            SegPart::Bytes(b) => b.len(),
            SegPart::Old { start, end, .. } => end - start,
        })
        .sum()
}

/// Everything one read-write transaction writes, in this order: clears, deletes, puts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteSet {
    /// Apply only if the stored state's sequence equals this (`None`: no check; used for blobs,
    /// which do not touch the state).
    pub expect_seq: Option<u64>,
    /// The new state record.
    pub state: Option<Vec<u8>>,
    /// The header record (creation and layout upgrade only).
    pub header: Option<Vec<u8>>,
    /// Empty the pages, segments, changes and blobs first.
    pub clear: bool,
    /// Empty the legacy (schema 1) episode records.
    pub clear_legacy: bool,
    /// Page records to delete.
    pub delete_pages: Vec<u64>,
    /// Page records to put.
    pub put_pages: Vec<PageRecord>,
    /// Segment records to delete.
    pub delete_segments: Vec<u64>,
    /// Segment records to put, each assembled from parts.
    pub put_segments: Vec<(u64, Vec<SegPart>)>,
    /// The change record of this write `(seq, bytes)`.
    pub put_change: Option<(u64, Vec<u8>)>,
    /// Delete change records with sequence < this.
    pub prune_changes_below: Option<u64>,
    /// An engine blob to put.
    pub put_blob: Option<(String, Vec<u8>)>,
    /// An engine blob to delete.
    pub delete_blob: Option<String>,
    /// Flush policy.
    pub durability: Durability,
}

impl WriteSet {
    /// Number of individual record writes (for fault injection).
    pub fn ops(&self) -> usize {
        self.state.is_some() as usize
            + self.header.is_some() as usize
            + self.clear as usize
            + self.clear_legacy as usize
            + self.delete_pages.len()
            + self.put_pages.len()
            + self.delete_segments.len()
            + self.put_segments.len()
            + self.put_change.is_some() as usize
            + self.prune_changes_below.is_some() as usize
            + self.put_blob.is_some() as usize
            + self.delete_blob.is_some() as usize
    }
}

/// Result of a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Written and flushed per the durability.
    Committed,
    /// The state's sequence was `found`, not the expected one: nothing was written.
    Conflict {
        /// The sequence found.
        found: u64,
    },
}

/// A fault to inject into the next commit (tests of atomicity on both backends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Issue this many of the commit's writes, then abort the transaction.
    AbortAfter(usize),
}

/// The bytes of one stored segment record, wherever they live.
pub trait SegmentSource: std::any::Any {
    /// Length in bytes.
    fn byte_len(&self) -> usize;
    /// Copy bytes `offset..offset + dst.len()` into `dst` (the caller keeps it in bounds).
    fn read(&self, offset: usize, dst: &mut [u8]);
    /// Copy little-endian f32 values starting at byte `offset` into `dst`.
    fn read_f32(&self, offset: usize, dst: &mut [f32]);
    /// Copy `n` little-endian f32 values starting at byte `offset` into `dst`, which has room for
    /// at least `n` values that may be uninitialised; afterwards they are initialised.
    ///
    /// # Safety
    /// `dst` must be valid for writes of `n` f32.
    unsafe fn read_f32_raw(&self, offset: usize, dst: *mut f32, n: usize) {
        // Default: through an initialised slice (the IndexedDB source overrides it).
        std::ptr::write_bytes(dst, 0, n);
        self.read_f32(offset, std::slice::from_raw_parts_mut(dst, n));
    }
    /// As `Any`, so an outer layer can reach a backend's own source type (the JS bindings copy
    /// straight from a segment's `ArrayBuffer` into a JS array).
    fn as_any(&self) -> &dyn std::any::Any;
}

/// Receives the vectors of a full load ([`super::Store::load_vectors_into`]): told the total row
/// count first, then written in order, segment by segment (or chunk by chunk). The default,
/// `Vec<f32>`-backed [`VecSink`] is what [`super::Store::load_vectors`] uses; on wasm32 the
/// IndexedDB backend streams segment bytes straight into a JS array
/// (`idb::JsVectorSink`) instead.
pub trait VectorSink: std::any::Any {
    /// Make room for `rows` rows of `dims` values (called once, before any write).
    fn begin(&mut self, rows: usize, dims: usize) -> Result<()>;
    /// The dimension given to `begin`.
    fn dims(&self) -> usize;
    /// Values the sink holds (`rows * dims` after `begin`).
    fn capacity(&self) -> usize;
    /// Copy `count` little-endian f32 from `src`, starting at byte `byte_offset`, to values
    /// `at..at + count`. Writes arrive in order (`at` is where the previous write ended); a write
    /// past the capacity is an error.
    fn write(
        &mut self,
        at: usize,
        src: &dyn SegmentSource,
        byte_offset: usize,
        count: usize,
    ) -> Result<()>;
    /// As `Any` (a backend may recognise its own sink type and fill it directly).
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any;
}

/// A [`VectorSink`] into a `Vec<f32>` (reserved once, written without zero-filling first).
#[derive(Debug, Default)]
pub struct VecSink {
    dims: usize,
    /// The packed vectors.
    pub vectors: Vec<f32>,
}

impl VectorSink for VecSink {
    fn begin(&mut self, rows: usize, dims: usize) -> Result<()> {
        self.dims = dims;
        self.vectors = Vec::new();
        let n = rows
            .checked_mul(dims)
            .ok_or_else(|| StoreError::Backend(format!("{rows} x {dims} vectors are too many")))?;
        self.vectors
            .try_reserve_exact(n)
            .map_err(|_| StoreError::Backend(format!("cannot allocate {rows} x {dims} vectors")))
    }
    fn dims(&self) -> usize {
        self.dims
    }
    fn capacity(&self) -> usize {
        self.vectors.capacity()
    }
    fn write(
        &mut self,
        at: usize,
        src: &dyn SegmentSource,
        byte_offset: usize,
        count: usize,
    ) -> Result<()> {
        if at != self.vectors.len() || at + count > self.vectors.capacity() {
            return Err(StoreError::corrupt(
                "segments",
                "vectors out of order or past the row count",
            ));
        }
        if byte_offset + count * 4 > src.byte_len() {
            return Err(StoreError::corrupt("segments", "vectors past the record"));
        }
        // SAFETY: `at + count <= capacity`; `read_f32_raw` initialises all `count` values.
        unsafe {
            src.read_f32_raw(byte_offset, self.vectors.as_mut_ptr().add(at), count);
            self.vectors.set_len(at + count);
        }
        Ok(())
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

/// One segment of a full load: its key, its fixed header and its tail (ids, times, namespaces:
/// everything but the vectors, which went to the sink).
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentMeta {
    /// The segment's key.
    pub key: u64,
    /// Its first [`super::codec::SEGMENT_VECTORS_OFFSET`] bytes.
    pub head: [u8; 16],
    /// The bytes after its vectors.
    pub tail: Vec<u8>,
}

/// The segments of one snapshot, read in key order after their transaction completed
/// ([`Backend::read_all_segments`]).
#[allow(async_fn_in_trait)]
pub trait SegmentCursor {
    /// Read the next segment: its vectors are written to `sink` from value `at` on (checked
    /// against the sink's dims and capacity first), the rest is returned. `None` at the end.
    async fn next(&mut self, sink: &mut dyn VectorSink, at: usize) -> Result<Option<SegmentMeta>>;
}

/// The vector bytes of `head`'s segment: checks its dims against the sink's and its size against
/// `len` and the sink's capacity from `at` (before anything is written).
pub fn check_segment(
    key: u64,
    head: &[u8; 16],
    len: usize,
    sink: &dyn VectorSink,
    at: usize,
) -> Result<usize> {
    let what = || format!("segment {key}");
    let (dims, n, _, vbytes) = super::codec::segment_header(head).map_err(|e| e.corrupt(what()))?;
    if dims != sink.dims() || 16 + vbytes > len {
        return Err(StoreError::corrupt(what(), "bad dims or length"));
    }
    if at + n * dims > sink.capacity() {
        return Err(StoreError::corrupt(
            what(),
            "more rows than the state lists",
        ));
    }
    Ok(vbytes)
}

/// A [`SegmentCursor`] over segment records held as bytes (the memory backend).
#[derive(Debug, Default)]
pub struct BytesCursor {
    segs: std::vec::IntoIter<(u64, Vec<u8>)>,
}

impl BytesCursor {
    /// Over `segs`, in order.
    pub fn new(segs: Vec<(u64, Vec<u8>)>) -> Self {
        BytesCursor {
            segs: segs.into_iter(),
        }
    }
}

impl SegmentCursor for BytesCursor {
    async fn next(&mut self, sink: &mut dyn VectorSink, at: usize) -> Result<Option<SegmentMeta>> {
        let Some((key, b)) = self.segs.next() else {
            return Ok(None);
        };
        if b.len() < 16 {
            return Err(StoreError::corrupt(
                format!("segment {key}"),
                "shorter than its header",
            ));
        }
        let mut head = [0u8; 16];
        head.copy_from_slice(&b[..16]);
        let vbytes = check_segment(key, &head, b.len(), sink, at)?;
        sink.write(at, &b, 16, vbytes / 4)?;
        Ok(Some(SegmentMeta {
            key,
            head,
            tail: b[16 + vbytes..].to_vec(),
        }))
    }
}

impl SegmentSource for Vec<u8> {
    fn byte_len(&self) -> usize {
        self.len()
    }
    fn read(&self, offset: usize, dst: &mut [u8]) {
        dst.copy_from_slice(&self[offset..offset + dst.len()]);
    }
    fn read_f32(&self, offset: usize, dst: &mut [f32]) {
        super::codec::copy_f32s(&self[offset..offset + dst.len() * 4], dst);
    }
    unsafe fn read_f32_raw(&self, offset: usize, dst: *mut f32, n: usize) {
        let src = &self[offset..offset + n * 4];
        std::ptr::copy_nonoverlapping(src.as_ptr(), dst.cast::<u8>(), n * 4);
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// A flat directory of files outside the database, where the store keeps its journal (a second
/// copy of every committed write: see [`super::journal`]). The Origin Private File System in the
/// browser (`idb::OpfsDir`), a map in memory ([`super::memory::MemoryJournal`]).
///
/// Every method is one or a few file-system calls; none is ever awaited inside a database
/// transaction (the store calls them between transactions).
#[allow(async_fn_in_trait)]
pub trait JournalDir {
    /// The names of the files, in any order.
    async fn list(&self) -> Result<Vec<String>>;
    /// The bytes of `name` (`None`: no such file).
    async fn read(&self, name: &str) -> Result<Option<Vec<u8>>>;
    /// Create or replace `name` with `bytes`, atomically: afterwards the file holds exactly
    /// `bytes`, or, when this fails (`QUOTA_EXCEEDED`, ...), what it held before (or nothing).
    async fn write(&self, name: &str, bytes: &[u8]) -> Result<()>;
    /// [`write`](Self::write) for a store whose writes are `relaxed`: the bytes need not have
    /// reached the device when this returns (a crash of the browser keeps them, a power loss
    /// may not), as for the database's own relaxed commits. By default the same as `write`.
    async fn write_relaxed(&self, name: &str, bytes: &[u8]) -> Result<()> {
        self.write(name, bytes).await
    }
    /// Rename `from` to `to` (no bytes are copied; `to` does not exist).
    async fn rename(&self, from: &str, to: &str) -> Result<()>;
    /// Delete `name` (no error if it does not exist).
    async fn remove(&self, name: &str) -> Result<()>;
    /// Delete pending file `name` found by the clean-up after a snapshot, unless it may still be
    /// another connection's entry between its write and its rename. By default the same as
    /// `remove` (one connection per directory); the OPFS directory keeps files written in the
    /// last [`STRAY_MIN_AGE_MS`] (another tab's entry is unlocked in that window).
    async fn remove_stray(&self, name: &str) -> Result<()> {
        self.remove(name).await
    }
    /// A number no other connection is likely to draw, and no other call of this one (names of
    /// pending files; the OPFS directory hands out the number of a file it opened ahead).
    fn unique(&self) -> u64;
}

/// A pending journal file younger than this (by its last modification) is never removed as a
/// stray: another connection may have written it and not renamed it yet (its commit still
/// running, or its tab frozen in the background in between). Ten minutes: a stray of a
/// connection that died waits for a later clean-up, which costs only its bytes meanwhile.
pub const STRAY_MIN_AGE_MS: f64 = 600_000.0;

/// Whether a pending file last modified at `modified_ms` is old enough, at `now_ms`, to be a
/// stray (both in milliseconds of the same clock; a file from the future is not).
pub fn is_stale_pending(modified_ms: f64, now_ms: f64) -> bool {
    now_ms - modified_ms >= STRAY_MIN_AGE_MS
}

/// Called with the new sequence when another connection committed a write.
pub type NoticeListener = Rc<dyn Fn(u64)>;

/// A storage backend: one connection to one store's data.
///
/// Every method is one transaction (or none). `async fn` in this trait is fine: the store is
/// single-threaded (wasm32) and its futures are never sent across threads.
#[allow(async_fn_in_trait)]
pub trait Backend {
    /// `"memory"` or `"indexeddb"`.
    fn kind(&self) -> &'static str;

    /// One read-only transaction.
    async fn read(&self, req: &ReadRequest) -> Result<ReadResult>;

    /// The segments' reader of [`read_all_segments`](Backend::read_all_segments).
    type Segments: SegmentCursor;

    /// One read-only transaction over the state and every segment: returns, once every request
    /// of the transaction has returned, the state record and a cursor over the segments (key
    /// order). The cursor reads their bytes after the transaction (IndexedDB: from the segment
    /// `Blob`s, streamed straight into the sink), so a full load touches each vector byte once.
    async fn read_all_segments(&self) -> Result<(Option<Vec<u8>>, Self::Segments)>;

    /// One read-write transaction: check the sequence, then write; resolves after the
    /// transaction completed (durably, per `w.durability`). On success other connections get a
    /// notice.
    async fn commit(&self, w: WriteSet) -> Result<CommitOutcome>;

    /// Receive notices of other connections' commits (`None` removes the listener).
    fn set_notice_listener(&self, f: Option<NoticeListener>);

    /// Close this connection; later calls fail with `STORE_CLOSED`.
    fn close(&self);

    /// Delete the whole store (every connection to it is closed).
    async fn destroy(&self) -> Result<()>;

    /// Inject a fault into the next commit.
    fn inject_fault(&self, fault: Fault);

    /// The journal directory's type.
    type Journal: JournalDir;

    /// Where this store's journal lives (`None`: no journal; the store works without one, but a
    /// database the browser discards is then lost). [`Backend::destroy`] deletes it too.
    fn journal(&self) -> Option<&Self::Journal>;

    /// What the platform said when it discarded this database's data before this connection
    /// opened (`"total: <message>"`), if it did.
    fn data_loss(&self) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_files_are_strays_only_once_old() {
        let now = 1.8e12;
        assert!(!is_stale_pending(now, now));
        assert!(!is_stale_pending(now - STRAY_MIN_AGE_MS + 1.0, now));
        assert!(is_stale_pending(now - STRAY_MIN_AGE_MS, now));
        assert!(is_stale_pending(0.0, now));
        assert!(
            !is_stale_pending(now + 5_000.0, now),
            "a file from the future is live"
        );
    }
}
