//! The in-memory backend: the same records as IndexedDB, kept in ordered maps. Natively it runs
//! the whole store (and its tests); several connections can share one store's data
//! ([`MemoryBackend::connect`]) to model two tabs, including notices, upgrades elsewhere, an
//! optional byte quota and injected faults.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::{Rc, Weak};

use super::backend::{
    Backend, CommitOutcome, Fault, NoticeListener, ReadRequest, ReadResult, SegmentSource,
    WriteSet, SCHEMA_VERSION,
};
use super::codec::state_seq;
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
struct Row {
    ns: String,
    time: f64,
    bytes: Vec<u8>,
}

#[derive(Clone, Default)]
struct Tables {
    meta: BTreeMap<&'static str, Vec<u8>>,
    episodes: BTreeMap<u64, Row>,
    index: BTreeSet<(String, Time, u64)>,
    segments: BTreeMap<u64, Vec<u8>>,
    changes: BTreeMap<u64, Vec<u8>>,
    blobs: BTreeMap<String, Vec<u8>>,
}

impl Tables {
    fn bytes(&self) -> usize {
        self.meta.values().map(Vec::len).sum::<usize>()
            + self
                .episodes
                .values()
                .map(|r| r.bytes.len() + r.ns.len() + 16)
                .sum::<usize>()
            + self.segments.values().map(Vec::len).sum::<usize>()
            + self.changes.values().map(Vec::len).sum::<usize>()
            + self
                .blobs
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
    }

    fn delete_episode(&mut self, id: u64) {
        if let Some(r) = self.episodes.remove(&id) {
            self.index.remove(&(r.ns, Time(r.time), id));
        }
    }

    /// Apply up to `limit` of the write set's operations, in the order IndexedDB would.
    fn apply(&mut self, w: &WriteSet, limit: usize) {
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
            self.episodes.clear();
            self.index.clear();
            self.segments.clear();
            self.changes.clear();
            self.blobs.clear();
        }
        for &id in &w.delete_episodes {
            if step() {
                self.delete_episode(id);
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
        for r in &w.put_episodes {
            if step() {
                self.delete_episode(r.id);
                self.index.insert((r.namespace.clone(), Time(r.time), r.id));
                self.episodes.insert(
                    r.id,
                    Row {
                        ns: r.namespace.clone(),
                        time: r.time,
                        bytes: r.bytes.clone(),
                    },
                );
            }
        }
        for (k, b) in &w.put_segments {
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
}

impl Default for MemoryBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryBackend {
    /// A new, empty store with one connection.
    pub fn new() -> Self {
        let shared = Rc::new(RefCell::new(Shared {
            version: SCHEMA_VERSION,
            ..Default::default()
        }));
        let conn = Rc::new(Conn::default());
        shared.borrow_mut().conns.push(Rc::downgrade(&conn));
        MemoryBackend { shared, conn }
    }

    /// Another connection to the same data. Fails with `SCHEMA_TOO_NEW` if the data was
    /// upgraded past [`SCHEMA_VERSION`].
    pub fn connect(&self) -> Result<Self> {
        let v = self.shared.borrow().version;
        if v > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found: v,
                supported: SCHEMA_VERSION,
            });
        }
        let conn = Rc::new(Conn::default());
        self.shared.borrow_mut().conns.push(Rc::downgrade(&conn));
        Ok(MemoryBackend {
            shared: self.shared.clone(),
            conn,
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
        out.extend(t.episodes.values().map(|r| r.bytes.clone()));
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
        out.episodes = req
            .episodes
            .iter()
            .map(|id| t.episodes.get(id).map(|r| r.bytes.clone()))
            .collect();
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
        if req.all_episodes {
            out.all_episodes = t.episodes.values().map(|r| r.bytes.clone()).collect();
        }
        if let Some(s) = &req.scan {
            let lo = (s.namespace.clone(), Time(s.from), 0u64);
            let hi = (s.namespace.clone(), Time(s.to), u64::MAX);
            let limit = s.limit.unwrap_or(usize::MAX);
            let ids: Vec<u64> = if s.reverse {
                t.index
                    .range(lo..=hi)
                    .rev()
                    .take(limit)
                    .map(|k| k.2)
                    .collect()
            } else {
                t.index.range(lo..=hi).take(limit).map(|k| k.2).collect()
            };
            out.scan = ids
                .iter()
                .filter_map(|id| t.episodes.get(id).map(|r| r.bytes.clone()))
                .collect();
        }
        if let Some(ns) = &req.namespace_ids {
            let lo = (ns.clone(), Time(f64::NEG_INFINITY), 0u64);
            let hi = (ns.clone(), Time(f64::INFINITY), u64::MAX);
            let mut ids: Vec<u64> = t.index.range(lo..=hi).map(|k| k.2).collect();
            ids.sort_unstable();
            out.namespace_ids = ids;
        }
        if let Some(ns) = &req.count_namespace {
            let lo = (ns.clone(), Time(f64::NEG_INFINITY), 0u64);
            let hi = (ns.clone(), Time(f64::INFINITY), u64::MAX);
            out.count = t.index.range(lo..=hi).count() as u64;
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

    async fn read_all_segments(
        &self,
        visit: &mut dyn FnMut(u64, &dyn SegmentSource) -> Result<()>,
    ) -> Result<Option<Vec<u8>>> {
        self.check_open()?;
        // Snapshot first (as the IndexedDB backend does: the transaction completes, then the
        // visitor runs), so a visitor may call back into the store.
        let (state, segs) = {
            let sh = self.shared.borrow();
            (
                sh.tables.meta.get("state").cloned(),
                sh.tables
                    .segments
                    .iter()
                    .map(|(k, v)| (*k, v.clone()))
                    .collect::<Vec<_>>(),
            )
        };
        for (k, v) in &segs {
            visit(*k, v)?;
        }
        Ok(state)
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
            if let Some(Fault::AbortAfter(n)) = self.conn.fault.take() {
                // Apply part of the batch to a scratch copy, then abort: nothing reaches the data.
                let mut scratch = sh.tables.clone();
                scratch.apply(&w, n);
                return Err(StoreError::Aborted(format!(
                    "fault injected after {n} of {} writes",
                    w.ops()
                )));
            }
            if let Some(q) = sh.quota {
                let mut next = sh.tables.clone();
                next.apply(&w, usize::MAX);
                let used = next.bytes();
                if used > q {
                    return Err(StoreError::QuotaExceeded(format!(
                        "the write needs {used} bytes, the quota is {q}"
                    )));
                }
                sh.tables = next;
            } else {
                sh.tables.apply(&w, usize::MAX);
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
        Ok(())
    }

    fn inject_fault(&self, fault: Fault) {
        self.conn.fault.set(Some(fault));
    }
}
