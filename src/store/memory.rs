//! The in-memory backend: the same records as IndexedDB, kept in ordered maps. Natively it runs
//! the whole store (and its tests); several connections can share one store's data
//! ([`MemoryBackend::connect`]) to model two tabs, including notices, upgrades elsewhere, an
//! optional byte quota and injected faults. Its journal ([`MemoryJournal`]) is a map of files
//! beside the tables, which [`MemoryBackend::wipe_database`] keeps (a model of the browser
//! discarding the database but not the Origin Private File System).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::{Rc, Weak};

use super::backend::{
    parts_len, Backend, BytesCursor, CommitOutcome, Fault, JournalDir, NoticeListener, ReadRequest,
    ReadResult, SegPart, SegmentMeta, WriteSet, SCHEMA_VERSION,
};
use super::codec::{state_seq, NsPage, PageKey};
use super::error::{Result, StoreError};

/// Total order on finite f64 times matching IndexedDB number keys (`-0 == 0`).
#[derive(Debug, Clone, Copy)]
struct Time(f64);
impl PartialEq for Time {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o).is_eq()
    }
}
impl Eq for Time {}
impl PartialOrd for Time {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Time {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0)
    }
}

#[derive(Debug, Clone, Default)]
struct PageRow {
    keys: Vec<PageKey>,
    bytes: Vec<u8>,
}

/// An index entry: namespace, first time, last time, rows, page key (IndexedDB's order of the
/// `[ns, tmin, tmax, n]` keys, then the primary key).
type IndexKey = (String, Time, Time, u32, u64);

#[derive(Clone, Default)]
struct Tables {
    meta: BTreeMap<&'static str, Vec<u8>>,
    pages: BTreeMap<u64, PageRow>,
    index: BTreeSet<IndexKey>,
    segments: BTreeMap<u64, Vec<u8>>,
    changes: BTreeMap<u64, Vec<u8>>,
    blobs: BTreeMap<String, Vec<u8>>,
    /// Episode records of the legacy (schema 1) layout.
    legacy: BTreeMap<u64, Vec<u8>>,
}

fn index_key(k: &PageKey, lo: u64) -> IndexKey {
    (k.namespace.clone(), Time(k.tmin), Time(k.tmax), k.n, lo)
}

impl Tables {
    fn bytes(&self) -> usize {
        self.meta.values().map(Vec::len).sum::<usize>()
            + self
                .pages
                .values()
                .map(|r| {
                    r.bytes.len() + r.keys.iter().map(|k| k.namespace.len() + 20).sum::<usize>()
                })
                .sum::<usize>()
            + self.segments.values().map(Vec::len).sum::<usize>()
            + self.changes.values().map(Vec::len).sum::<usize>()
            + self
                .blobs
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
            + self.legacy.values().map(Vec::len).sum::<usize>()
    }

    fn delete_page(&mut self, lo: u64) {
        if let Some(r) = self.pages.remove(&lo) {
            for k in &r.keys {
                self.index.remove(&index_key(k, lo));
            }
        }
    }

    /// The segment records `w` puts, assembled from their parts against the tables as they are
    /// before `w` (a part naming a missing segment or bytes past its end: corrupt).
    fn resolve(&self, w: &WriteSet) -> Result<Vec<(u64, Vec<u8>)>> {
        w.put_segments
            .iter()
            .map(|(k, parts)| {
                let mut b = Vec::with_capacity(parts_len(parts));
                for p in parts {
                    match p {
                        SegPart::Bytes(x) => b.extend_from_slice(x),
                        SegPart::Old { key, start, end } => {
                            let src = self
                                .segments
                                .get(key)
                                .and_then(|s| s.get(*start..*end))
                                .ok_or_else(|| {
                                    StoreError::corrupt(
                                        format!("segment {key}"),
                                        format!("no bytes {start}..{end} to rewrite from"),
                                    )
                                })?;
                            b.extend_from_slice(src);
                        }
                    }
                }
                Ok((*k, b))
            })
            .collect()
    }

    /// Apply up to `limit` of the write set's operations (with its segments `segs` resolved), in
    /// the order IndexedDB would.
    fn apply(&mut self, w: &WriteSet, segs: &[(u64, Vec<u8>)], limit: usize) {
        let mut left = limit;
        let mut step = || {
            if left == 0 {
                false
            } else {
                left -= 1;
                true
            }
        };
        if w.clear && step() {
            self.pages.clear();
            self.index.clear();
            self.segments.clear();
            self.changes.clear();
            self.blobs.clear();
        }
        if w.clear_legacy && step() {
            self.legacy.clear();
        }
        for &k in &w.delete_pages {
            if step() {
                self.delete_page(k);
            }
        }
        for &k in &w.delete_segments {
            if step() {
                self.segments.remove(&k);
            }
        }
        if let Some(below) = w.prune_changes_below {
            if step() {
                self.changes = self.changes.split_off(&below);
            }
        }
        if let Some(name) = &w.delete_blob {
            if step() {
                self.blobs.remove(name);
            }
        }
        for r in &w.put_pages {
            if step() {
                self.delete_page(r.lo);
                for k in &r.keys {
                    self.index.insert(index_key(k, r.lo));
                }
                self.pages.insert(
                    r.lo,
                    PageRow {
                        keys: r.keys.clone(),
                        bytes: r.bytes.clone(),
                    },
                );
            }
        }
        for (k, b) in segs {
            if step() {
                self.segments.insert(*k, b.clone());
            }
        }
        if let Some((k, b)) = &w.put_change {
            if step() {
                self.changes.insert(*k, b.clone());
            }
        }
        if let Some((k, b)) = &w.put_blob {
            if step() {
                self.blobs.insert(k.clone(), b.clone());
            }
        }
        if let Some(h) = &w.header {
            if step() {
                self.meta.insert("header", h.clone());
            }
        }
        if let Some(s) = &w.state {
            if step() {
                self.meta.insert("state", s.clone());
            }
        }
    }
}

#[derive(Default)]
struct Shared {
    tables: Tables,
    version: u32,
    quota: Option<usize>,
    conns: Vec<Weak<Conn>>,
    /// The data was wiped ([`MemoryBackend::wipe_database`]); the next connection reports it.
    wiped: bool,
    /// Journal files (`None`: journal off).
    journal: Option<MemoryJournal>,
}

/// The in-memory journal directory: named files in a map shared by every connection, with an
/// optional byte quota (a write over it fails with `QUOTA_EXCEEDED` and changes nothing).
#[derive(Clone, Default)]
pub struct MemoryJournal {
    files: Rc<RefCell<BTreeMap<String, Vec<u8>>>>,
    quota: Rc<Cell<Option<usize>>>,
    counter: Rc<Cell<u64>>,
}

impl MemoryJournal {
    /// Bytes of every file.
    pub fn bytes(&self) -> usize {
        self.files.borrow().values().map(Vec::len).sum()
    }

    /// Limit the journal's bytes (`None`: unlimited).
    pub fn set_quota(&self, bytes: Option<usize>) {
        self.quota.set(bytes);
    }

    /// Every file's bytes (tests of "delete really deletes").
    pub fn raw_dump(&self) -> Vec<Vec<u8>> {
        self.files.borrow().values().cloned().collect()
    }

    /// Every file name.
    pub fn names(&self) -> Vec<String> {
        self.files.borrow().keys().cloned().collect()
    }

    /// Replace a file's bytes behind the store's back (tests of damaged journals).
    #[doc(hidden)]
    pub fn poke(&self, name: &str, bytes: Option<Vec<u8>>) {
        match bytes {
            Some(b) => self.files.borrow_mut().insert(name.to_string(), b),
            None => self.files.borrow_mut().remove(name),
        };
    }
}

impl JournalDir for MemoryJournal {
    async fn list(&self) -> Result<Vec<String>> {
        Ok(self.names())
    }
    async fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.files.borrow().get(name).cloned())
    }
    async fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        if let Some(q) = self.quota.get() {
            let old = self.files.borrow().get(name).map_or(0, Vec::len);
            if self.bytes() - old + bytes.len() > q {
                return Err(StoreError::QuotaExceeded(format!(
                    "journal file {name}: {} bytes over the {q}-byte quota",
                    bytes.len()
                )));
            }
        }
        self.files
            .borrow_mut()
            .insert(name.to_string(), bytes.to_vec());
        Ok(())
    }
    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        let mut f = self.files.borrow_mut();
        let b = f
            .remove(from)
            .ok_or_else(|| StoreError::Backend(format!("journal file {from} not found")))?;
        f.insert(to.to_string(), b);
        Ok(())
    }
    async fn remove(&self, name: &str) -> Result<()> {
        self.files.borrow_mut().remove(name);
        Ok(())
    }
    fn unique(&self) -> u64 {
        self.counter.set(self.counter.get() + 1);
        self.counter.get()
    }
}

#[derive(Default)]
struct Conn {
    closed: RefCell<Option<StoreError>>,
    listener: RefCell<Option<NoticeListener>>,
    fault: Cell<Option<Fault>>,
}

/// An in-memory store connection. Cloning gives the same connection; [`connect`](Self::connect)
/// gives another connection to the same data (a second "tab").
#[derive(Clone)]
pub struct MemoryBackend {
    shared: Rc<RefCell<Shared>>,
    conn: Rc<Conn>,
    /// This connection's view of the journal (a clone of the shared one, taken when it opened).
    journal: Option<MemoryJournal>,
    /// What the data loss this connection was told about at open, if any.
    data_loss: Option<String>,
}

impl Default for MemoryBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryBackend {
    /// A new, empty store with one connection.
    pub fn new() -> Self {
        let mut b = Self::without_journal();
        let j = MemoryJournal::default();
        b.shared.borrow_mut().journal = Some(j.clone());
        b.journal = Some(j);
        b
    }

    /// A new, empty store with one connection and no journal (the store then says its journal
    /// is off, as in a browser without the Origin Private File System).
    pub fn without_journal() -> Self {
        let shared = Rc::new(RefCell::new(Shared {
            version: SCHEMA_VERSION,
            ..Default::default()
        }));
        let conn = Rc::new(Conn::default());
        shared.borrow_mut().conns.push(Rc::downgrade(&conn));
        MemoryBackend {
            shared,
            conn,
            journal: None,
            data_loss: None,
        }
    }

    /// The journal directory, if any.
    pub fn journal_dir(&self) -> Option<MemoryJournal> {
        self.shared.borrow().journal.clone()
    }

    /// Model the browser discarding the database (as Chromium does with a backing store it finds
    /// corrupt): every table is emptied and every connection closed, the journal is kept. Connect
    /// again to reopen; [`Backend::data_loss`] of that connection reports it.
    pub fn wipe_database(&self) {
        let mut sh = self.shared.borrow_mut();
        for c in sh.conns.iter().filter_map(Weak::upgrade) {
            c.closed.borrow_mut().get_or_insert(StoreError::Closed);
        }
        sh.conns.clear();
        sh.tables = Tables::default();
        sh.wiped = true;
    }

    /// Another connection to the same data. Fails with `SCHEMA_TOO_NEW` if the data was
    /// upgraded past [`SCHEMA_VERSION`]; data of an older schema is upgraded (as IndexedDB's
    /// `upgradeneeded` does: the layout migration itself happens in [`super::Store::open`]).
    pub fn connect(&self) -> Result<Self> {
        let v = self.shared.borrow().version;
        if v > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found: v,
                supported: SCHEMA_VERSION,
            });
        }
        let mut sh = self.shared.borrow_mut();
        sh.version = SCHEMA_VERSION;
        let conn = Rc::new(Conn::default());
        sh.conns.push(Rc::downgrade(&conn));
        let data_loss = std::mem::take(&mut sh.wiped)
            .then(|| "total: the memory backend's data was wiped (test)".to_string());
        Ok(MemoryBackend {
            shared: self.shared.clone(),
            conn,
            journal: sh.journal.clone(),
            data_loss,
        })
    }

    /// Model another tab upgrading the schema to `new_version`: every open connection is closed
    /// and reports `STORE_UPGRADED_ELSEWHERE`.
    pub fn upgrade_elsewhere(&self, new_version: u32) {
        let mut sh = self.shared.borrow_mut();
        sh.version = new_version;
        for c in sh.conns.iter().filter_map(Weak::upgrade) {
            c.closed
                .borrow_mut()
                .get_or_insert(StoreError::UpgradedElsewhere { new_version });
        }
        sh.conns.clear();
    }

    /// Replace everything with a store in the legacy (schema 1) layout: the header and state
    /// records, one record per episode, and the segments (test fixtures of the upgrade path; see
    /// `testing::legacy_fixture`). Connect again to open it.
    #[doc(hidden)]
    pub fn install_legacy(
        &self,
        header: Vec<u8>,
        state: Vec<u8>,
        episodes: Vec<(u64, Vec<u8>)>,
        segments: Vec<(u64, Vec<u8>)>,
    ) {
        let mut sh = self.shared.borrow_mut();
        let mut t = Tables::default();
        t.meta.insert("header", header);
        t.meta.insert("state", state);
        t.legacy = episodes.into_iter().collect();
        t.segments = segments.into_iter().collect();
        sh.tables = t;
        sh.version = 1;
    }

    /// Limit the bytes stored (`None`: unlimited); a commit over it fails with
    /// `QUOTA_EXCEEDED` and writes nothing.
    pub fn set_quota(&self, bytes: Option<usize>) {
        self.shared.borrow_mut().quota = bytes;
    }

    /// Bytes stored (for quota tests).
    pub fn stored_bytes(&self) -> usize {
        self.shared.borrow().tables.bytes()
    }

    /// Every stored byte string (tests of "delete really deletes").
    pub fn raw_dump(&self) -> Vec<Vec<u8>> {
        let sh = self.shared.borrow();
        let t = &sh.tables;
        let mut out: Vec<Vec<u8>> = t.meta.values().cloned().collect();
        out.extend(t.pages.values().map(|r| r.bytes.clone()));
        out.extend(
            t.pages
                .values()
                .flat_map(|r| r.keys.iter().map(|k| k.namespace.as_bytes().to_vec())),
        );
        out.extend(t.legacy.values().cloned());
        out.extend(t.segments.values().cloned());
        out.extend(t.changes.values().cloned());
        out.extend(t.blobs.values().cloned());
        out
    }

    fn check_open(&self) -> Result<()> {
        match &*self.conn.closed.borrow() {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}

impl Backend for MemoryBackend {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn read(&self, req: &ReadRequest) -> Result<ReadResult> {
        self.check_open()?;
        let sh = self.shared.borrow();
        let t = &sh.tables;
        let mut out = ReadResult {
            header: t.meta.get("header").cloned(),
            state: t.meta.get("state").cloned(),
            ..Default::default()
        };
        if req.all_segments {
            out.segments = t.segments.iter().map(|(k, v)| (*k, v.clone())).collect();
        } else {
            let mut keys = req.segments.clone();
            keys.sort_unstable();
            keys.dedup();
            out.segments = keys
                .iter()
                .filter_map(|k| t.segments.get(k).map(|v| (*k, v.clone())))
                .collect();
        }
        for &(k, vbytes) in &req.segment_tails {
            if let Some(b) = t.segments.get(&k) {
                let mut head = [0u8; 16];
                if b.len() < 16 + vbytes {
                    return Err(StoreError::corrupt(
                        format!("segment {k}"),
                        "shorter than the directory says",
                    ));
                }
                head.copy_from_slice(&b[..16]);
                out.segment_tails.push((
                    k,
                    SegmentMeta {
                        key: k,
                        head,
                        tail: b[16 + vbytes..].to_vec(),
                    },
                ));
            }
        }
        out.segment_tails.sort_by_key(|t| t.0);
        out.segment_tails.dedup_by_key(|t| t.0);
        out.segment_ranges = req
            .segment_ranges
            .iter()
            .map(|&(k, a, z)| {
                t.segments
                    .get(&k)
                    .and_then(|b| b.get(a..z))
                    .map(<[u8]>::to_vec)
            })
            .collect();
        if req.all_pages {
            out.pages = t.pages.iter().map(|(k, v)| (*k, v.bytes.clone())).collect();
        } else {
            let mut keys = req.pages.clone();
            keys.sort_unstable();
            keys.dedup();
            out.pages = keys
                .iter()
                .filter_map(|k| t.pages.get(k).map(|v| (*k, v.bytes.clone())))
                .collect();
        }
        if let Some(q) = &req.ns_pages {
            let lo = (
                q.namespace.clone(),
                Time(f64::NEG_INFINITY),
                Time(f64::NEG_INFINITY),
                0u32,
                0u64,
            );
            let hi = (
                q.namespace.clone(),
                Time(q.to),
                Time(f64::INFINITY),
                u32::MAX,
                u64::MAX,
            );
            out.ns_pages = t
                .index
                .range(lo..=hi)
                .map(|(_, a, b, n, lo)| NsPage {
                    lo: *lo,
                    tmin: a.0,
                    tmax: b.0,
                    n: *n,
                })
                .collect();
        }
        if req.legacy_episodes {
            out.legacy_episodes = t.legacy.values().cloned().collect();
        }
        if let Some(after) = req.changes_after {
            out.changes = t
                .changes
                .range(after.saturating_add(1)..)
                .map(|(k, v)| (*k, v.clone()))
                .collect();
        }
        if let Some(name) = &req.blob {
            out.blob = t.blobs.get(name).cloned();
        }
        Ok(out)
    }

    type Segments = BytesCursor;

    async fn read_all_segments(&self) -> Result<(Option<Vec<u8>>, BytesCursor)> {
        self.check_open()?;
        // A snapshot (as the IndexedDB backend's cursor reads after its transaction).
        let sh = self.shared.borrow();
        let state = sh.tables.meta.get("state").cloned();
        let segs = sh
            .tables
            .segments
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        Ok((state, BytesCursor::new(segs)))
    }

    async fn commit(&self, w: WriteSet) -> Result<CommitOutcome> {
        self.check_open()?;
        let notify: Vec<Rc<Conn>>;
        let new_seq;
        {
            let mut sh = self.shared.borrow_mut();
            let found = state_seq(sh.tables.meta.get("state").map(Vec::as_slice));
            if let Some(expect) = w.expect_seq {
                if found != expect {
                    return Ok(CommitOutcome::Conflict { found });
                }
            }
            let segs = sh.tables.resolve(&w)?;
            if let Some(Fault::AbortAfter(n)) = self.conn.fault.take() {
                // Apply part of the batch to a scratch copy, then abort: nothing reaches the data.
                let mut scratch = sh.tables.clone();
                scratch.apply(&w, &segs, n);
                return Err(StoreError::Aborted(format!(
                    "fault injected after {n} of {} writes",
                    w.ops()
                )));
            }
            if let Some(q) = sh.quota {
                let mut next = sh.tables.clone();
                next.apply(&w, &segs, usize::MAX);
                let used = next.bytes();
                if used > q {
                    return Err(StoreError::QuotaExceeded(format!(
                        "the write needs {used} bytes, the quota is {q}"
                    )));
                }
                sh.tables = next;
            } else {
                sh.tables.apply(&w, &segs, usize::MAX);
            }
            new_seq = state_seq(sh.tables.meta.get("state").map(Vec::as_slice));
            sh.conns.retain(|c| c.strong_count() > 0);
            notify = sh
                .conns
                .iter()
                .filter_map(Weak::upgrade)
                .filter(|c| !Rc::ptr_eq(c, &self.conn))
                .collect();
        }
        if w.state.is_some() {
            for c in notify {
                let l = c.listener.borrow().clone();
                if let Some(l) = l {
                    l(new_seq);
                }
            }
        }
        Ok(CommitOutcome::Committed)
    }

    fn set_notice_listener(&self, f: Option<NoticeListener>) {
        *self.conn.listener.borrow_mut() = f;
    }

    fn close(&self) {
        self.conn
            .closed
            .borrow_mut()
            .get_or_insert(StoreError::Closed);
        let mut sh = self.shared.borrow_mut();
        sh.conns
            .retain(|c| c.upgrade().is_some_and(|c| !Rc::ptr_eq(&c, &self.conn)));
    }

    async fn destroy(&self) -> Result<()> {
        let mut sh = self.shared.borrow_mut();
        for c in sh.conns.iter().filter_map(Weak::upgrade) {
            let e = if Rc::ptr_eq(&c, &self.conn) {
                StoreError::Closed
            } else {
                StoreError::DestroyedElsewhere
            };
            c.closed.borrow_mut().get_or_insert(e);
        }
        sh.conns.clear();
        sh.tables = Tables::default();
        sh.version = SCHEMA_VERSION;
        if let Some(j) = &sh.journal {
            j.files.borrow_mut().clear();
        }
        Ok(())
    }

    fn inject_fault(&self, fault: Fault) {
        self.conn.fault.set(Some(fault));
    }

    type Journal = MemoryJournal;

    fn journal(&self) -> Option<&MemoryJournal> {
        self.journal.as_ref()
    }

    fn data_loss(&self) -> Option<String> {
        self.data_loss.clone()
    }
}
