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

use super::error::Result;

/// The schema version of the database layout (the IndexedDB version number). Opening a database
/// written by a newer schema fails with `SCHEMA_TOO_NEW`.
pub const SCHEMA_VERSION: u32 = 1;

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

/// A scan of one namespace over an event-time range (the `[namespace, time]` index).
#[derive(Debug, Clone, PartialEq)]
pub struct NsScan {
    /// The namespace.
    pub namespace: String,
    /// Lowest event time, inclusive.
    pub from: f64,
    /// Highest event time, inclusive.
    pub to: f64,
    /// Most records returned.
    pub limit: Option<usize>,
    /// Newest first.
    pub reverse: bool,
}

/// What one read-only transaction fetches. The header and the state record are always read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadRequest {
    /// Episode records by id (missing ones come back as `None`).
    pub episodes: Vec<u64>,
    /// Segment records by key (missing ones are left out).
    pub segments: Vec<u64>,
    /// Every episode record, in id order.
    pub all_episodes: bool,
    /// Every segment record, in key order.
    pub all_segments: bool,
    /// Records of a namespace in `[namespace, time]` order.
    pub scan: Option<NsScan>,
    /// The ids of every episode of a namespace.
    pub namespace_ids: Option<String>,
    /// Count the episodes of a namespace.
    pub count_namespace: Option<String>,
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
    /// Episode records, aligned with the request's ids.
    pub episodes: Vec<Option<Vec<u8>>>,
    /// Segment records found (requested or all), by key, in key order.
    pub segments: Vec<(u64, Vec<u8>)>,
    /// Every episode record, in id order (when asked).
    pub all_episodes: Vec<Vec<u8>>,
    /// The scan's records.
    pub scan: Vec<Vec<u8>>,
    /// The namespace's ids, increasing.
    pub namespace_ids: Vec<u64>,
    /// The namespace's count.
    pub count: u64,
    /// Change records `(seq, bytes)`, increasing.
    pub changes: Vec<(u64, Vec<u8>)>,
    /// The blob.
    pub blob: Option<Vec<u8>>,
}

/// An episode record to put, with the fields the `[namespace, time]` index needs.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeRow {
    /// Key.
    pub id: u64,
    /// Index field.
    pub namespace: String,
    /// Index field (event time).
    pub time: f64,
    /// The encoded record.
    pub bytes: Vec<u8>,
}

/// Everything one read-write transaction writes, in this order: clear, deletes, puts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteSet {
    /// Apply only if the stored state's sequence equals this (`None`: no check; used for blobs,
    /// which do not touch the state).
    pub expect_seq: Option<u64>,
    /// The new state record.
    pub state: Option<Vec<u8>>,
    /// The header record (creation only).
    pub header: Option<Vec<u8>>,
    /// Empty the episodes, segments, changes and blobs first.
    pub clear: bool,
    /// Episode records to delete.
    pub delete_episodes: Vec<u64>,
    /// Episode records to put.
    pub put_episodes: Vec<EpisodeRow>,
    /// Segment records to delete.
    pub delete_segments: Vec<u64>,
    /// Segment records to put.
    pub put_segments: Vec<(u64, Vec<u8>)>,
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
            + self.delete_episodes.len()
            + self.put_episodes.len()
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
pub trait SegmentSource {
    /// Length in bytes.
    fn byte_len(&self) -> usize;
    /// Copy bytes `offset..offset + dst.len()` into `dst` (the caller keeps it in bounds).
    fn read(&self, offset: usize, dst: &mut [u8]);
    /// Copy little-endian f32 values starting at byte `offset` into `dst`.
    fn read_f32(&self, offset: usize, dst: &mut [f32]);
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

    /// One read-only transaction over every segment, handing each `(key, bytes)` to `visit` in key
    /// order once every request of the transaction has returned; returns the state record of the
    /// same snapshot. The bytes stay where the backend has them (wasm memory, or a JS
    /// `ArrayBuffer`), so the visitor copies vectors straight into their destination.
    async fn read_all_segments(
        &self,
        visit: &mut dyn FnMut(u64, &dyn SegmentSource) -> Result<()>,
    ) -> Result<Option<Vec<u8>>>;

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
}
