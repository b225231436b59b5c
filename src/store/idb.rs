//! The IndexedDB backend (wasm32): thin bindings over `web-sys`.
//!
//! **Only IndexedDB requests are awaited inside a transaction, by construction.** A transaction
//! is a [`Tx`]; its only awaitable operations are [`Req`] (one IndexedDB request) and
//! [`Tx::done`] (the `complete` / `abort` event). Everything else a transaction carries is plain
//! data computed before it opens: the backend's transaction routines ([`IdbBackend::read`],
//! `read_all_segments` and [`IdbBackend::commit`]) take a finished [`ReadRequest`] /
//! [`WriteSet`], issue its requests and await only those. Results are converted once every
//! request has returned (a read-only transaction has nothing to commit, so its `complete` is not
//! awaited); a commit resolves only after `complete`.
//! The optimistic sequence check in `commit` (compare the stored sequence with the expected one)
//! is the only logic between two requests, and it does not await.
//!
//! A write resolves after the transaction's `complete` event, with `durability: 'strict'` by
//! default. Other connections get a `BroadcastChannel` notice after each commit. A
//! `versionchange` (another tab upgrading or deleting the database) closes this connection at
//! once and every later call reports why.
//!
//! Schema version 2 ([`SCHEMA_VERSION`]): object stores `meta` (header, state), `pages` (episode
//! records packed many per record: `{k, b}` by first id, `b` the encoded page, `k` one
//! `[namespace, first time, last time, rows]` key per namespace of the page, indexed by the
//! multi-entry index `ns_t`), `segments` (packed vectors by first id: a write's new segment
//! as an `ArrayBuffer`, a merged segment as a `Blob`; see [`segment_value`]),
//! `changes` (by sequence) and `blobs` (engine blobs by name); the other values are
//! `ArrayBuffer`s of the [`super::codec`] encodings. A version-1 database keeps its `episodes`
//! store (one `{ns, t, b}` record per episode) until the store core has moved its records into
//! pages (see [`super::Store::open`]); its segments may still be `ArrayBuffer`s, which read the
//! same.
//!
//! **Segments are read after their transaction.** A `getAll` of the segments returns the
//! merged segments' `Blob` handles at once; their bytes are read afterwards, outside the transaction (a `Blob` stays
//! readable after its transaction ended), a few at a time, and each is handed on as soon as it
//! arrived. Reading `Blob`s is several times faster in Chromium than `ArrayBuffer` values of the
//! same size, which IndexedDB itself wraps into blobs above 64 KiB and unwraps one by one before
//! a request succeeds.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use js_sys::{Array, ArrayBuffer, Float32Array, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    Blob, BroadcastChannel, DomException, Event, IdbCursor, IdbDatabase, IdbFactory,
    IdbIndexParameters, IdbKeyRange, IdbObjectStore, IdbOpenDbRequest, IdbRequest, IdbTransaction,
    IdbTransactionMode, IdbVersionChangeEvent, MessageEvent, ReadableStreamByobReader,
};

use super::backend::{
    check_segment, Backend, CommitOutcome, Durability, Fault, NoticeListener, ReadRequest,
    ReadResult, SegPart, SegmentCursor, SegmentMeta, SegmentSource, VectorSink, WriteSet,
    SCHEMA_VERSION,
};
use super::codec::{state_seq, NsPage, PageKey};
use super::error::{Result, StoreError};
use super::opfs::OpfsDir;

const META: &str = "meta";
const PAGES: &str = "pages";
const SEGMENTS: &str = "segments";
const CHANGES: &str = "changes";
const BLOBS: &str = "blobs";
/// The schema-1 store of one record per episode (kept until its records moved into pages).
const LEGACY_EPISODES: &str = "episodes";
const NS_INDEX: &str = "ns_t";
const STORES: [&str; 5] = [META, PAGES, SEGMENTS, CHANGES, BLOBS];
/// Segments up to this size are read whole when only their header and tail are asked for.
const SMALL_SEGMENT_BYTES: u32 = 256 << 10;
/// Segment `Blob` streams a full load keeps open ahead of the one it reads.
const STREAMS_AHEAD: usize = 16;
/// Bytes of the staging buffer a full load streams segment `Blob`s through when its sink is not a
/// JS array (a wasm `Vec`): reused for every chunk, so it is touched once.
const STAGING_BYTES: u32 = 1 << 20;
/// How long an open / delete waits for other connections to close before failing with
/// `STORE_BLOCKED`.
const BLOCKED_TIMEOUT_MS: i32 = 3000;

fn js_err(ctx: &str, e: &JsValue) -> StoreError {
    if let Some(d) = e.dyn_ref::<DomException>() {
        let (name, msg) = (d.name(), d.message());
        return match name.as_str() {
            "QuotaExceededError" => StoreError::QuotaExceeded(format!("{ctx}: {name} {msg}")),
            "AbortError" => StoreError::Aborted(format!("{ctx}: {msg}")),
            _ => StoreError::Backend(format!("{ctx}: {name}: {msg}")),
        };
    }
    StoreError::Backend(format!("{ctx}: {e:?}"))
}

/// The `indexedDB` factory of the current global (window or worker).
fn idb_factory() -> Result<IdbFactory> {
    let v = Reflect::get(&js_sys::global(), &JsValue::from_str("indexedDB"))
        .map_err(|e| js_err("indexedDB", &e))?;
    if v.is_undefined() || v.is_null() {
        return Err(StoreError::Backend(
            "IndexedDB is not available in this context".into(),
        ));
    }
    v.dyn_into::<IdbFactory>()
        .map_err(|_| StoreError::Backend("indexedDB is not an IDBFactory".into()))
}

// ---------------------------------------------------------------------------------------------
// Event slots: one JS callback per event, waking the awaiting future.

#[derive(Default)]
struct Slot {
    fired: Option<std::result::Result<JsValue, JsValue>>,
    waker: Option<Waker>,
}

type SlotRef = Rc<RefCell<Slot>>;

fn fire(slot: &SlotRef, v: std::result::Result<JsValue, JsValue>) {
    let w = {
        let mut s = slot.borrow_mut();
        s.fired = Some(v);
        s.waker.take()
    };
    if let Some(w) = w {
        w.wake();
    }
}

fn poll_slot(slot: &SlotRef, cx: &mut Context<'_>) -> Poll<std::result::Result<JsValue, JsValue>> {
    let mut s = slot.borrow_mut();
    match s.fired.take() {
        Some(v) => Poll::Ready(v),
        None => {
            s.waker = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

/// One IndexedDB request, awaitable: resolves with its `result` or its error. For a cursor,
/// await it again after `continue()` for the next position.
pub(crate) struct Req {
    req: IdbRequest,
    slot: SlotRef,
    _ok: Closure<dyn FnMut(Event)>,
    _err: Closure<dyn FnMut(Event)>,
}

impl Req {
    fn new(req: IdbRequest) -> Self {
        let slot: SlotRef = Rc::default();
        let (s1, s2) = (slot.clone(), slot.clone());
        let r1 = req.clone();
        let r2 = req.clone();
        let ok = Closure::<dyn FnMut(Event)>::new(move |_e: Event| {
            fire(&s1, Ok(r1.result().unwrap_or(JsValue::UNDEFINED)));
        });
        let err = Closure::<dyn FnMut(Event)>::new(move |e: Event| {
            // Handled here: keep the error from also reaching window.onerror. The transaction
            // still aborts (the error is not prevented), so nothing half-written commits.
            e.stop_propagation();
            let v = r2
                .error()
                .ok()
                .flatten()
                .map(JsValue::from)
                .unwrap_or(JsValue::UNDEFINED);
            fire(&s2, Err(v));
        });
        req.set_onsuccess(Some(ok.as_ref().unchecked_ref()));
        req.set_onerror(Some(err.as_ref().unchecked_ref()));
        Req {
            req,
            slot,
            _ok: ok,
            _err: err,
        }
    }
}

impl Future for Req {
    type Output = std::result::Result<JsValue, JsValue>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        poll_slot(&self.slot, cx)
    }
}

impl Drop for Req {
    fn drop(&mut self) {
        self.req.set_onsuccess(None);
        self.req.set_onerror(None);
    }
}

// ---------------------------------------------------------------------------------------------
// Transactions.

/// A live transaction over every object store. Its only awaitable operations are [`Req`]s and
/// [`Tx::done`]; there is no way to await anything else while it is open.
pub(crate) struct Tx {
    tx: IdbTransaction,
    done: SlotRef,
    _complete: Closure<dyn FnMut(Event)>,
    _abort: Closure<dyn FnMut(Event)>,
}

impl Tx {
    fn begin(
        db: &IdbDatabase,
        stores: &[&str],
        mode: IdbTransactionMode,
        durability: Durability,
    ) -> Result<Tx> {
        let names = Array::new();
        for s in stores {
            names.push(&JsValue::from_str(s));
        }
        // `db.transaction(names, mode, { durability })` (web-sys gates the options dictionary
        // behind its unstable APIs, so the call goes through Reflect).
        let opts = Object::new();
        let d = match durability {
            Durability::Strict => "strict",
            Durability::Relaxed => "relaxed",
        };
        let _ = Reflect::set(
            &opts,
            &JsValue::from_str("durability"),
            &JsValue::from_str(d),
        );
        let mode = match mode {
            IdbTransactionMode::Readwrite => "readwrite",
            _ => "readonly",
        };
        let f: js_sys::Function = Reflect::get(db, &JsValue::from_str("transaction"))
            .map_err(|e| js_err("transaction", &e))?
            .unchecked_into();
        let tx: IdbTransaction = f
            .call3(db, &names, &JsValue::from_str(mode), &opts)
            .map_err(|e| js_err("transaction", &e))?
            .unchecked_into();
        let done: SlotRef = Rc::default();
        let (d1, d2) = (done.clone(), done.clone());
        let t2 = tx.clone();
        let complete = Closure::<dyn FnMut(Event)>::new(move |_e: Event| {
            fire(&d1, Ok(JsValue::UNDEFINED));
        });
        let abort = Closure::<dyn FnMut(Event)>::new(move |_e: Event| {
            let err = t2.error().map(JsValue::from).unwrap_or(JsValue::UNDEFINED);
            fire(&d2, Err(err));
        });
        tx.set_oncomplete(Some(complete.as_ref().unchecked_ref()));
        tx.set_onabort(Some(abort.as_ref().unchecked_ref()));
        Ok(Tx {
            tx,
            done,
            _complete: complete,
            _abort: abort,
        })
    }

    fn store(&self, name: &str) -> Result<IdbObjectStore> {
        self.tx
            .object_store(name)
            .map_err(|e| js_err("objectStore", &e))
    }

    /// Abort (a no-op if already finished).
    fn abort(&self) {
        let _ = self.tx.abort();
    }

    /// Wait for `complete` (Ok) or `abort` (the transaction's error).
    async fn done(self, ctx: &str) -> Result<()> {
        let slot = self.done.clone();
        let r = std::future::poll_fn(|cx| poll_slot(&slot, cx)).await;
        r.map(|_| ()).map_err(|e| {
            if e.is_undefined() || e.is_null() {
                StoreError::Aborted(format!("{ctx}: transaction aborted"))
            } else {
                js_err(ctx, &e)
            }
        })
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        self.tx.set_oncomplete(None);
        self.tx.set_onabort(None);
    }
}

fn req(r: std::result::Result<IdbRequest, JsValue>, ctx: &str) -> Result<Req> {
    r.map(Req::new).map_err(|e| js_err(ctx, &e))
}

fn fire_and_forget(r: std::result::Result<IdbRequest, JsValue>, ctx: &str) -> Result<()> {
    r.map(|_| ()).map_err(|e| js_err(ctx, &e))
}

async fn value(r: Req, ctx: &str) -> Result<JsValue> {
    r.await.map_err(|e| js_err(ctx, &e))
}

fn buffer(bytes: &[u8]) -> JsValue {
    Uint8Array::from(bytes).buffer().into()
}

/// Bytes of an `ArrayBuffer` / typed array value (`None` for undefined).
fn bytes_of(v: &JsValue) -> Option<Vec<u8>> {
    if v.is_undefined() || v.is_null() {
        return None;
    }
    if let Some(ab) = v.dyn_ref::<ArrayBuffer>() {
        return Some(Uint8Array::new(ab).to_vec());
    }
    v.dyn_ref::<Uint8Array>().map(Uint8Array::to_vec)
}

/// The `b` bytes of a `{.., b}` value (a page, or a legacy episode record).
fn b_bytes(v: &JsValue) -> Option<Vec<u8>> {
    if v.is_undefined() || v.is_null() {
        return None;
    }
    bytes_of(&Reflect::get(v, &JsValue::from_str("b")).ok()?)
}

/// A `Blob` holding `bytes` (copied).
fn blob_of(bytes: &[u8]) -> Result<Blob> {
    blob_of_parts(&[bytes])
}

/// A `Blob` holding the concatenation of `parts` (copied once, by the `Blob` constructor).
fn blob_of_parts(parts: &[&[u8]]) -> Result<Blob> {
    let seq = Array::new_with_length(parts.len() as u32);
    for (i, p) in parts.iter().enumerate() {
        // SAFETY: the views only live until the Blob constructor below has copied them; creating
        // them and filling the JS array allocates nothing in wasm memory, which therefore cannot
        // grow (and detach them) in between.
        seq.set(i as u32, unsafe { Uint8Array::view(p) }.into());
    }
    Blob::new_with_u8_array_sequence(&seq).map_err(|e| js_err("Blob", &e))
}

/// Start reading a stored segment value: a `Blob`'s bytes (a promise), or an `ArrayBuffer` as
/// is (legacy values). Called only after the value's transaction returned every request.
fn start_read(v: &JsValue) -> Result<std::result::Result<Promise, ArrayBuffer>> {
    if let Some(b) = v.dyn_ref::<Blob>() {
        return Ok(Ok(b.array_buffer()));
    }
    v.clone()
        .dyn_into::<ArrayBuffer>()
        .map(Err)
        .map_err(|_| StoreError::corrupt("segment", "neither a Blob nor an ArrayBuffer"))
}

/// Finish a read started by [`start_read`].
async fn finish_read(r: std::result::Result<Promise, ArrayBuffer>) -> Result<ArrayBuffer> {
    match r {
        Err(ab) => Ok(ab),
        Ok(p) => JsFuture::from(p)
            .await
            .map_err(|e| js_err("reading a segment blob", &e))?
            .dyn_into::<ArrayBuffer>()
            .map_err(|_| StoreError::Backend("a blob read did not give an ArrayBuffer".into())),
    }
}

/// Every segment value's bytes, in order (read after the transaction, all at once).
async fn resolve_segments(vals: Vec<JsValue>) -> Result<Vec<Vec<u8>>> {
    let started = vals.iter().map(start_read).collect::<Result<Vec<_>>>()?;
    let mut out = Vec::with_capacity(started.len());
    for r in started {
        let ab = finish_read(r).await?;
        out.push(Uint8Array::new(&ab).to_vec());
    }
    Ok(out)
}

/// A slice being read: a `Blob` slice's promise, or bytes copied from an `ArrayBuffer`.
type Slice = std::result::Result<Promise, Vec<u8>>;

/// Start reading bytes `start..end` (`None`: to the end) of a stored segment value. Called only
/// after the value's transaction returned every request.
fn read_slice(v: &JsValue, start: usize, end: Option<usize>) -> Result<Slice> {
    if let Some(b) = v.dyn_ref::<Blob>() {
        let s = match end {
            Some(e) => b.slice_with_f64_and_f64(start as f64, e as f64),
            None => b.slice_with_f64(start as f64),
        }
        .map_err(|e| js_err("Blob.slice", &e))?;
        return Ok(Ok(s.array_buffer()));
    }
    let ab = v
        .dyn_ref::<ArrayBuffer>()
        .ok_or_else(|| StoreError::corrupt("segment", "neither a Blob nor an ArrayBuffer"))?;
    let len = ab.byte_length() as usize;
    let end = end.unwrap_or(len).min(len);
    let start = start.min(end);
    let mut out = vec![0u8; end - start];
    Uint8Array::new_with_byte_offset_and_length(ab, start as u32, (end - start) as u32)
        .copy_to(&mut out);
    Ok(Err(out))
}

/// Finish a read started by [`read_slice`].
async fn finish_slice(s: Slice) -> Result<Vec<u8>> {
    match s {
        Err(b) => Ok(b),
        Ok(p) => {
            let ab = finish_read(Ok(p)).await?;
            Ok(Uint8Array::new(&ab).to_vec())
        }
    }
}

/// Fresh segments of at least this many bytes are written as `Blob`s, smaller ones as
/// `ArrayBuffer`s: Chromium stores every `Blob`, however small, as a file of its own (one more
/// file per single `put`), while it keeps small values in its LevelDB and moves values above a
/// size threshold out to blob files anyway (its `IDBValueWrapper`).
const BLOB_SEGMENT_MIN: usize = 64 * 1024;

/// The value of a segment being written. A segment of new bytes only (the rows of a write) is,
/// from [`BLOB_SEGMENT_MIN`] bytes, one `Blob` built from views of its parts (one copy, into the
/// blob), and below that an `ArrayBuffer`. A 1.5 MiB `Blob` costs the page about half the time of
/// the same bytes as an `ArrayBuffer` inside `put` (IndexedDB serialises a large `ArrayBuffer`,
/// then wraps the result in a blob of its own) and its strict commit is no slower. A segment that keeps rows of older ones (a merge: segments the store rewrites) is a
/// `Blob` composed from slices of the old values, so the kept vectors never pass through wasm
/// memory; a full load reads `Blob`s faster than `ArrayBuffer`s. (`www/bench/store-raw.js`
/// measures reads of both.)
fn segment_value(
    parts: &[SegPart],
    old: &std::collections::HashMap<u64, JsValue>,
) -> Result<JsValue> {
    let fresh: Option<Vec<&[u8]>> = parts
        .iter()
        .map(|p| match p {
            SegPart::Bytes(b) => Some(&b[..]),
            SegPart::Old { .. } => None,
        })
        .collect();
    if let Some(bytes) = fresh {
        let len: usize = bytes.iter().map(|b| b.len()).sum();
        if len >= BLOB_SEGMENT_MIN {
            return Ok(blob_of_parts(&bytes)?.into());
        }
        let out = Uint8Array::new_with_length(len as u32);
        let mut at = 0u32;
        for b in bytes {
            let end = at + b.len() as u32;
            out.subarray(at, end).copy_from(b);
            at = end;
        }
        return Ok(out.buffer().into());
    }
    let seq = parts
        .iter()
        .map(|p| part_value(p, old))
        .collect::<Result<Array>>()?;
    Ok(Blob::new_with_blob_sequence(&seq)
        .map_err(|e| js_err("Blob", &e))?
        .into())
}

/// A JS value for a part of a segment being written: a `Blob` of new bytes, a slice of the old
/// segment `Blob`, or a view of a legacy `ArrayBuffer`.
fn part_value(p: &SegPart, old: &std::collections::HashMap<u64, JsValue>) -> Result<JsValue> {
    match p {
        SegPart::Bytes(b) => Ok(blob_of(b)?.into()),
        SegPart::Old { key, start, end } => {
            let v = old.get(key).ok_or_else(|| {
                StoreError::corrupt(format!("segment {key}"), "missing: cannot rewrite from it")
            })?;
            if let Some(b) = v.dyn_ref::<Blob>() {
                if *end as f64 > b.size() {
                    return Err(StoreError::corrupt(
                        format!("segment {key}"),
                        "shorter than the directory says",
                    ));
                }
                let s = b
                    .slice_with_f64_and_f64(*start as f64, *end as f64)
                    .map_err(|e| js_err("Blob.slice", &e))?;
                return Ok(s.into());
            }
            let ab = v.dyn_ref::<ArrayBuffer>().ok_or_else(|| {
                StoreError::corrupt(
                    format!("segment {key}"),
                    "neither a Blob nor an ArrayBuffer",
                )
            })?;
            if *end > ab.byte_length() as usize {
                return Err(StoreError::corrupt(
                    format!("segment {key}"),
                    "shorter than the directory says",
                ));
            }
            Ok(
                Uint8Array::new_with_byte_offset_and_length(
                    ab,
                    *start as u32,
                    (end - start) as u32,
                )
                .into(),
            )
        }
    }
}

/// A segment record as a JS `ArrayBuffer`: read in place, vectors copied straight to their
/// destination (wasm memory, or a JS array through [`JsSegment::buffer`]).
pub struct JsSegment(ArrayBuffer);

impl JsSegment {
    /// The segment's bytes.
    pub fn buffer(&self) -> &ArrayBuffer {
        &self.0
    }
}

impl SegmentSource for JsSegment {
    fn byte_len(&self) -> usize {
        self.0.byte_length() as usize
    }
    fn read(&self, offset: usize, dst: &mut [u8]) {
        Uint8Array::new_with_byte_offset_and_length(&self.0, offset as u32, dst.len() as u32)
            .copy_to(dst);
    }
    fn read_f32(&self, offset: usize, dst: &mut [f32]) {
        // SAFETY: `dst` has room for `dst.len()` values.
        unsafe { self.read_f32_raw(offset, dst.as_mut_ptr(), dst.len()) }
    }
    unsafe fn read_f32_raw(&self, offset: usize, dst: *mut f32, n: usize) {
        if offset.is_multiple_of(4) {
            js_sys::Float32Array::new_with_byte_offset_and_length(&self.0, offset as u32, n as u32)
                .raw_copy_to_ptr(dst);
        } else {
            let v =
                Uint8Array::new_with_byte_offset_and_length(&self.0, offset as u32, (n * 4) as u32);
            v.raw_copy_to_ptr(dst.cast::<u8>());
        }
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

fn key_u64(v: &JsValue) -> u64 {
    v.as_f64().unwrap_or(0.0) as u64
}

/// The `ns_t` index range of a namespace's pages whose first time is at most `to`.
fn ns_range(ns: &str, to: f64) -> Result<IdbKeyRange> {
    let lo = Array::of1(&JsValue::from_str(ns));
    let inf = JsValue::from_f64(f64::INFINITY);
    let hi = Array::of4(&JsValue::from_str(ns), &JsValue::from_f64(to), &inf, &inf);
    IdbKeyRange::bound(&lo, &hi).map_err(|e| js_err("key range", &e))
}

/// A page value: `{ k: [[ns, tmin, tmax, n], ...], b: ArrayBuffer }`.
fn page_value(keys: &[PageKey], bytes: &[u8]) -> JsValue {
    let k: Array = keys
        .iter()
        .map(|p| {
            JsValue::from(Array::of4(
                &JsValue::from_str(&p.namespace),
                &JsValue::from_f64(p.tmin),
                &JsValue::from_f64(p.tmax),
                &JsValue::from_f64(p.n as f64),
            ))
        })
        .collect();
    let o = Object::new();
    let _ = Reflect::set(&o, &JsValue::from_str("k"), &k);
    let _ = Reflect::set(&o, &JsValue::from_str("b"), &buffer(bytes));
    o.into()
}

/// An `ns_t` index key `[ns, tmin, tmax, n]` and its page key as an [`NsPage`].
fn ns_page(key: &JsValue, lo: &JsValue) -> Option<NsPage> {
    let a = key.dyn_ref::<Array>()?;
    Some(NsPage {
        lo: key_u64(lo),
        tmin: a.get(1).as_f64()?,
        tmax: a.get(2).as_f64()?,
        n: a.get(3).as_f64()? as u32,
    })
}

// ---------------------------------------------------------------------------------------------
// The backend.

/// Called with the reason when a connection is closed from outside.
pub type CloseListener = Rc<dyn Fn(StoreError)>;

/// A kept-alive JS event handler.
type Handler<E> = RefCell<Option<Closure<dyn FnMut(E)>>>;

struct Inner {
    name: String,
    db: IdbDatabase,
    /// The object stores every transaction covers ([`STORES`], plus the legacy episodes store
    /// while the database has one).
    stores: Vec<&'static str>,
    legacy: bool,
    closed: RefCell<Option<StoreError>>,
    listener: RefCell<Option<NoticeListener>>,
    close_listener: RefCell<Option<CloseListener>>,
    channel: Option<BroadcastChannel>,
    fault: Cell<Option<Fault>>,
    /// What the browser said when it discarded this database's data before this open
    /// (Chromium's non-standard `IDBVersionChangeEvent.dataLoss` / `dataLossMessage`).
    data_loss: Option<String>,
    /// This store's journal directory (`None`: no Origin Private File System here).
    journal: Option<OpfsDir>,
    _onversionchange: Handler<IdbVersionChangeEvent>,
    _onclose: Handler<Event>,
    _onmessage: Handler<MessageEvent>,
}

/// The last handle of a connection went away without `close()` (a `Store::open` that failed
/// after connecting, or a store dropped unclosed): close it now rather than at garbage
/// collection, so it does not hold off other tabs' upgrades and deletes, nor keep its journal's
/// spare file locked.
impl Drop for Inner {
    fn drop(&mut self) {
        self.db.set_onversionchange(None);
        self.db.set_onclose(None);
        if let Some(c) = &self.channel {
            c.set_onmessage(None);
        }
        self.shut();
    }
}

impl Inner {
    /// Close the connection, the notice channel and the journal's spare (what every way of
    /// closing does).
    fn shut(&self) {
        self.db.close();
        if let Some(c) = &self.channel {
            c.close();
        }
        if let Some(j) = &self.journal {
            j.release();
        }
    }
}

/// A connection to one store's IndexedDB database. Cloning gives the same connection.
#[derive(Clone)]
pub struct IdbBackend {
    inner: Rc<Inner>,
}

/// The IndexedDB database name of the store `name`.
pub fn database_name(name: &str) -> String {
    format!("mnemo:{name}")
}

/// Resolve with an open / delete request's outcome, failing with `STORE_BLOCKED` if it stays
/// blocked (other connections do not close) for [`BLOCKED_TIMEOUT_MS`].
async fn await_open(r: IdbOpenDbRequest, ctx: &str) -> Result<JsValue> {
    let slot: SlotRef = Rc::default();
    let settled = Rc::new(Cell::new(false));
    let gave_up = Rc::new(Cell::new(false));
    let (s1, st1, g1, r1) = (slot.clone(), settled.clone(), gave_up.clone(), r.clone());
    let ok = Closure::<dyn FnMut(Event)>::new(move |_e: Event| {
        let v = r1.result().unwrap_or(JsValue::UNDEFINED);
        if g1.get() {
            // The caller gave up long ago: close what the late open produced.
            if let Ok(db) = v.dyn_into::<IdbDatabase>() {
                db.close();
            }
            return;
        }
        st1.set(true);
        fire(&s1, Ok(v));
    });
    let (s2, st2, g2, r2) = (slot.clone(), settled.clone(), gave_up.clone(), r.clone());
    let err = Closure::<dyn FnMut(Event)>::new(move |e: Event| {
        e.prevent_default();
        if g2.get() {
            return;
        }
        st2.set(true);
        let v = r2
            .error()
            .ok()
            .flatten()
            .map(JsValue::from)
            .unwrap_or(JsValue::UNDEFINED);
        fire(&s2, Err(v));
    });
    let (s3, st3, g3) = (slot.clone(), settled.clone(), gave_up.clone());
    let blocked = Closure::<dyn FnMut(Event)>::new(move |_e: Event| {
        let (s4, st4, g4) = (s3.clone(), st3.clone(), g3.clone());
        let on_timeout = Closure::once_into_js(move || {
            if !st4.get() && !g4.get() {
                g4.set(true);
                fire(&s4, Err(JsValue::from_str(BLOCKED_MARK)));
            }
        });
        if let Some(f) = Reflect::get(&js_sys::global(), &JsValue::from_str("setTimeout"))
            .ok()
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
        {
            let _ = f.call2(
                &JsValue::NULL,
                &on_timeout,
                &JsValue::from(BLOCKED_TIMEOUT_MS),
            );
        }
    });
    r.set_onsuccess(Some(ok.as_ref().unchecked_ref()));
    r.set_onerror(Some(err.as_ref().unchecked_ref()));
    r.set_onblocked(Some(blocked.as_ref().unchecked_ref()));
    let v = std::future::poll_fn(|cx| poll_slot(&slot, cx)).await;
    if gave_up.get() {
        // Events may still arrive: keep the handlers alive.
        ok.forget();
        err.forget();
        blocked.forget();
        return Err(StoreError::Blocked(format!(
            "{ctx}: other connections did not close within {BLOCKED_TIMEOUT_MS} ms"
        )));
    }
    r.set_onsuccess(None);
    r.set_onerror(None);
    r.set_onblocked(None);
    v.map_err(|e| js_err(ctx, &e))
}

const BLOCKED_MARK: &str = "mnemo: blocked";

impl IdbBackend {
    /// `Some("total: <the browser's message>")` when the browser reported, as this connection
    /// opened, that it had discarded the database's data (Chromium deletes a backing store it
    /// finds corrupt and reopens it empty); `None` otherwise.
    pub fn data_loss(&self) -> Option<String> {
        self.inner.data_loss.clone()
    }

    /// Open (creating or upgrading) the database of the store `name`.
    pub async fn open(name: &str) -> Result<IdbBackend> {
        let factory = idb_factory()?;
        let dbname = database_name(name);
        let r = factory
            .open_with_u32(&dbname, SCHEMA_VERSION)
            .map_err(|e| js_err("open", &e))?;
        let upgrade_err: Rc<RefCell<Option<StoreError>>> = Rc::default();
        let ue = upgrade_err.clone();
        let data_loss: Rc<RefCell<Option<String>>> = Rc::default();
        let dl = data_loss.clone();
        let r2 = r.clone();
        let onupgrade =
            Closure::<dyn FnMut(IdbVersionChangeEvent)>::new(move |e: IdbVersionChangeEvent| {
                let prop = |k: &str| {
                    js_sys::Reflect::get(&e, &JsValue::from_str(k))
                        .ok()
                        .and_then(|v| v.as_string())
                };
                if let Some(amount) = prop("dataLoss").filter(|a| a != "none") {
                    let msg = prop("dataLossMessage").unwrap_or_default();
                    *dl.borrow_mut() = Some(format!("{amount}: {msg}"));
                }
                if let Err(err) = upgrade(&r2, e.old_version() as u32) {
                    *ue.borrow_mut() = Some(err);
                    if let Some(tx) = r2.transaction() {
                        let _ = tx.abort();
                    }
                }
            });
        r.set_onupgradeneeded(Some(onupgrade.as_ref().unchecked_ref()));
        let res = await_open(r.clone(), "open").await;
        r.set_onupgradeneeded(None);
        drop(onupgrade);
        if let Some(e) = upgrade_err.borrow_mut().take() {
            return Err(e);
        }
        let db: IdbDatabase = match res {
            Ok(v) => v.unchecked_into(),
            Err(StoreError::Backend(m)) if m.contains("VersionError") => {
                return Err(StoreError::SchemaTooNew {
                    found: current_version(&dbname).await.unwrap_or(0),
                    supported: SCHEMA_VERSION,
                })
            }
            Err(e) => return Err(e),
        };
        let journal = OpfsDir::open(&dbname).await.ok();
        let channel = BroadcastChannel::new(&format!("mnemo-store:{dbname}")).ok();
        let legacy = db.object_store_names().contains(LEGACY_EPISODES);
        let mut stores = STORES.to_vec();
        if legacy {
            stores.push(LEGACY_EPISODES);
        }
        let inner = Rc::new(Inner {
            name: dbname,
            db,
            stores,
            legacy,
            closed: RefCell::default(),
            listener: RefCell::default(),
            close_listener: RefCell::default(),
            channel,
            fault: Cell::default(),
            data_loss: data_loss.borrow_mut().take(),
            journal,
            _onversionchange: RefCell::default(),
            _onclose: RefCell::default(),
            _onmessage: RefCell::default(),
        });
        // Another tab upgrades or deletes the database: close at once, report why.
        let weak = Rc::downgrade(&inner);
        let onvc =
            Closure::<dyn FnMut(IdbVersionChangeEvent)>::new(move |e: IdbVersionChangeEvent| {
                if let Some(i) = weak.upgrade() {
                    i.shut();
                    let why = match e.new_version() {
                        Some(v) => StoreError::UpgradedElsewhere {
                            new_version: v as u32,
                        },
                        None => StoreError::DestroyedElsewhere,
                    };
                    i.closed.borrow_mut().get_or_insert(why.clone());
                    let l = i.close_listener.borrow().clone();
                    if let Some(l) = l {
                        l(why);
                    }
                }
            });
        inner
            .db
            .set_onversionchange(Some(onvc.as_ref().unchecked_ref()));
        *inner._onversionchange.borrow_mut() = Some(onvc);
        let weak = Rc::downgrade(&inner);
        let onclose = Closure::<dyn FnMut(Event)>::new(move |_e: Event| {
            if let Some(i) = weak.upgrade() {
                let why = StoreError::Backend("the browser closed the database connection".into());
                i.closed.borrow_mut().get_or_insert(why.clone());
                let l = i.close_listener.borrow().clone();
                if let Some(l) = l {
                    l(why);
                }
            }
        });
        inner.db.set_onclose(Some(onclose.as_ref().unchecked_ref()));
        *inner._onclose.borrow_mut() = Some(onclose);
        if let Some(c) = &inner.channel {
            let weak = Rc::downgrade(&inner);
            let onmsg = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
                if let Some(i) = weak.upgrade() {
                    let seq = e.data().as_f64().unwrap_or(0.0) as u64;
                    let l = i.listener.borrow().clone();
                    if let Some(l) = l {
                        l(seq);
                    }
                }
            });
            c.set_onmessage(Some(onmsg.as_ref().unchecked_ref()));
            *inner._onmessage.borrow_mut() = Some(onmsg);
        }
        Ok(IdbBackend { inner })
    }

    /// Call `f(reason)` when this connection is closed from outside: another tab upgraded or
    /// deleted the database (`STORE_UPGRADED_ELSEWHERE` / `STORE_DESTROYED_ELSEWHERE`), or the
    /// browser closed it.
    pub fn set_close_listener(&self, f: Option<CloseListener>) {
        *self.inner.close_listener.borrow_mut() = f;
    }

    /// The store name this connection was opened with (without the `mnemo:` prefix).
    pub fn store_name(&self) -> &str {
        self.inner
            .name
            .strip_prefix("mnemo:")
            .unwrap_or(&self.inner.name)
    }

    /// Delete the store `name`: its journal, then its database (waits for other connections to
    /// close). In this order, so a crash in between leaves the database (the next open writes a
    /// new journal), never a journal that would bring the deleted store back.
    pub async fn delete_database(name: &str) -> Result<()> {
        OpfsDir::delete(&database_name(name)).await?;
        discard_database(name).await
    }
}

/// Delete the database of the store `name` but not its journal: what Chromium does to a backing
/// store it finds corrupt (tests of the restore from the journal).
#[doc(hidden)]
pub async fn discard_database(name: &str) -> Result<()> {
    let factory = idb_factory()?;
    let r = factory
        .delete_database(&database_name(name))
        .map_err(|e| js_err("deleteDatabase", &e))?;
    await_open(r, "deleteDatabase").await.map(|_| ())
}

impl IdbBackend {
    /// Every stored byte string (tests of "delete really deletes"): every value's bytes (the
    /// bytes of segment `Blob`s too), and the namespaces of the page index keys.
    #[doc(hidden)]
    pub async fn raw_dump(&self) -> Result<Vec<Vec<u8>>> {
        self.check_open()?;
        let tx = self.begin(IdbTransactionMode::Readonly, Durability::Strict)?;
        let mut reqs = Vec::new();
        for s in self.inner.stores.clone() {
            reqs.push((s, req(tx.store(s)?.get_all(), "getAll")?));
        }
        let mut vals = Vec::new();
        for (s, r) in reqs {
            vals.push((s, value(r, "getAll").await?));
        }
        drop(tx);
        let mut out = Vec::new();
        for (s, v) in vals {
            let items: Vec<JsValue> = Array::from(&v).iter().collect();
            match s {
                SEGMENTS => out.extend(resolve_segments(items).await?),
                PAGES | LEGACY_EPISODES => {
                    for x in &items {
                        out.extend(b_bytes(x));
                        if let Ok(k) = Reflect::get(x, &JsValue::from_str("k")) {
                            for e in Array::from(&k).iter() {
                                let ns = Array::from(&e).get(0).as_string().unwrap_or_default();
                                out.push(ns.into_bytes());
                            }
                        }
                    }
                }
                _ => out.extend(items.iter().filter_map(bytes_of)),
            }
        }
        Ok(out)
    }

    fn check_open(&self) -> Result<()> {
        match &*self.inner.closed.borrow() {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// A transaction error, or the reason this connection was closed if it was.
    fn fail(&self, e: StoreError) -> StoreError {
        match &*self.inner.closed.borrow() {
            Some(c) => c.clone(),
            None => e,
        }
    }

    fn begin(&self, mode: IdbTransactionMode, d: Durability) -> Result<Tx> {
        self.check_open()?;
        Tx::begin(&self.inner.db, &self.inner.stores, mode, d).map_err(|e| self.fail(e))
    }
}

/// Create or migrate the object stores (runs inside the `versionchange` transaction, which is
/// synchronous here: no awaits).
fn upgrade(r: &IdbOpenDbRequest, old_version: u32) -> Result<()> {
    let db: IdbDatabase = r
        .result()
        .map_err(|e| js_err("upgrade", &e))?
        .unchecked_into();
    let e = |e: JsValue| js_err("upgrade", &e);
    if old_version < 1 {
        db.create_object_store(META).map_err(e)?;
        db.create_object_store(SEGMENTS).map_err(e)?;
        db.create_object_store(CHANGES).map_err(e)?;
        db.create_object_store(BLOBS).map_err(e)?;
    }
    if old_version < 2 {
        // Version 2: episode records in pages, one index entry per namespace per page. A
        // version-1 database keeps its `episodes` store; the store core moves its records into
        // pages (one transaction) when it opens the store.
        let pages = db.create_object_store(PAGES).map_err(e)?;
        let p = IdbIndexParameters::new();
        p.set_unique(false);
        p.set_multi_entry(true);
        pages
            .create_index_with_str_and_optional_parameters(NS_INDEX, "k", &p)
            .map_err(e)?;
    }
    // Later schema versions add their migrations here, each guarded by `old_version < N`.
    Ok(())
}

/// Write a store in the legacy layout (schema 1) under `name`, byte for byte as the schema-1
/// build did (test fixtures of the upgrade path): the database is deleted first, then created at
/// version 1 with that build's object stores.
#[doc(hidden)]
pub async fn write_legacy(
    name: &str,
    header: &[u8],
    state: &[u8],
    episodes: &[(u64, String, f64, Vec<u8>)],
    segments: &[(u64, Vec<u8>)],
) -> Result<()> {
    IdbBackend::delete_database(name).await?;
    let r = idb_factory()?
        .open_with_u32(&database_name(name), 1)
        .map_err(|e| js_err("open", &e))?;
    let r2 = r.clone();
    let onupgrade = Closure::<dyn FnMut(IdbVersionChangeEvent)>::new(move |_e| {
        let Ok(db) = r2.result().map(|v| v.unchecked_into::<IdbDatabase>()) else {
            return;
        };
        for s in [META, SEGMENTS, CHANGES, BLOBS] {
            let _ = db.create_object_store(s);
        }
        if let Ok(eps) = db.create_object_store(LEGACY_EPISODES) {
            let keypath = Array::of2(&JsValue::from_str("ns"), &JsValue::from_str("t"));
            let p = IdbIndexParameters::new();
            p.set_unique(false);
            let _ =
                eps.create_index_with_str_sequence_and_optional_parameters(NS_INDEX, &keypath, &p);
        }
    });
    r.set_onupgradeneeded(Some(onupgrade.as_ref().unchecked_ref()));
    let db: IdbDatabase = await_open(r.clone(), "open").await?.unchecked_into();
    r.set_onupgradeneeded(None);
    let stores = [META, LEGACY_EPISODES, SEGMENTS, CHANGES, BLOBS];
    let tx = Tx::begin(
        &db,
        &stores,
        IdbTransactionMode::Readwrite,
        Durability::Strict,
    )?;
    let meta = tx.store(META)?;
    fire_and_forget(
        meta.put_with_key(&buffer(header), &JsValue::from_str("header")),
        "put",
    )?;
    fire_and_forget(
        meta.put_with_key(&buffer(state), &JsValue::from_str("state")),
        "put",
    )?;
    let eps = tx.store(LEGACY_EPISODES)?;
    for (id, ns, t, b) in episodes {
        let o = Object::new();
        let _ = Reflect::set(&o, &JsValue::from_str("ns"), &JsValue::from_str(ns));
        let _ = Reflect::set(&o, &JsValue::from_str("t"), &JsValue::from_f64(*t));
        let _ = Reflect::set(&o, &JsValue::from_str("b"), &buffer(b));
        fire_and_forget(eps.put_with_key(&o, &JsValue::from_f64(*id as f64)), "put")?;
    }
    let segs = tx.store(SEGMENTS)?;
    for (k, b) in segments {
        fire_and_forget(
            segs.put_with_key(&buffer(b), &JsValue::from_f64(*k as f64)),
            "put",
        )?;
    }
    let r = tx.done("legacy fixture").await;
    db.close();
    r
}

/// The version of an existing database (opening it without a version).
async fn current_version(dbname: &str) -> Result<u32> {
    let r = idb_factory()?
        .open(dbname)
        .map_err(|e| js_err("open", &e))?;
    let v = await_open(r, "open").await?;
    let db: IdbDatabase = v.unchecked_into();
    let ver = db.version() as u32;
    db.close();
    Ok(ver)
}

/// A [`VectorSink`] into one JS `Float32Array`: a full load streams each segment `Blob`'s vector
/// bytes straight into it (a `ReadableStream` BYOB read per chunk), so every vector byte is
/// written once, into memory that is touched once; other sources are copied with `set`.
#[derive(Default)]
pub struct JsVectorSink {
    dims: usize,
    len: usize,
    dst: Option<Float32Array>,
}

impl JsVectorSink {
    /// The filled array (after a load; `None` before `begin`).
    pub fn into_array(self) -> Option<Float32Array> {
        self.dst
    }
}

impl VectorSink for JsVectorSink {
    fn begin(&mut self, rows: usize, dims: usize) -> Result<()> {
        let len = rows
            .checked_mul(dims)
            .filter(|&l| l <= (u32::MAX / 4) as usize)
            .ok_or_else(|| StoreError::Backend(format!("{rows} x {dims} vectors are too many")))?;
        self.dims = dims;
        self.len = len;
        self.dst = Some(Float32Array::new_with_length(len as u32));
        Ok(())
    }
    fn dims(&self) -> usize {
        self.dims
    }
    fn capacity(&self) -> usize {
        self.len
    }
    fn write(
        &mut self,
        at: usize,
        src: &dyn SegmentSource,
        byte_offset: usize,
        count: usize,
    ) -> Result<()> {
        let dst = self
            .dst
            .as_ref()
            .ok_or_else(|| StoreError::corrupt("segments", "vectors before the row count"))?;
        if at + count > self.len || byte_offset + count * 4 > src.byte_len() {
            return Err(StoreError::corrupt(
                "segments",
                "vectors past the row count",
            ));
        }
        match src.as_any().downcast_ref::<JsSegment>() {
            Some(seg) if byte_offset.is_multiple_of(4) => {
                let view = Float32Array::new_with_byte_offset_and_length(
                    seg.buffer(),
                    byte_offset as u32,
                    count as u32,
                );
                dst.set(&view, at as u32);
            }
            _ => {
                let mut tmp = vec![0f32; count];
                src.read_f32(byte_offset, &mut tmp);
                dst.subarray(at as u32, (at + count) as u32).copy_from(&tmp);
            }
        }
        Ok(())
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

/// A BYOB reader of a segment `Blob`.
struct BlobReader {
    reader: ReadableStreamByobReader,
    size: usize,
    /// Every byte was read (nothing to cancel).
    read: usize,
}

impl BlobReader {
    fn open(b: &Blob) -> Result<BlobReader> {
        let reader = ReadableStreamByobReader::new(&b.stream())
            .map_err(|e| js_err("blob stream reader", &e))?;
        Ok(BlobReader {
            reader,
            size: b.size() as usize,
            read: 0,
        })
    }

    /// Read up to `len` (> 0) next bytes into `buf` at `offset`; resolves with the buffer (the
    /// read transfers it: the old one is detached) and the bytes read (0 at the end).
    async fn read(
        &mut self,
        buf: &ArrayBuffer,
        offset: usize,
        len: usize,
    ) -> Result<(ArrayBuffer, usize)> {
        let view = Uint8Array::new_with_byte_offset_and_length(buf, offset as u32, len as u32);
        let r = JsFuture::from(self.reader.read_with_array_buffer_view(&view))
            .await
            .map_err(|e| js_err("reading a segment blob", &e))?;
        let v = Reflect::get(&r, &JsValue::from_str("value")).unwrap_or(JsValue::UNDEFINED);
        match v.dyn_into::<Uint8Array>() {
            Ok(v) => {
                let n = v.byte_length() as usize;
                self.read += n;
                Ok((v.buffer(), n))
            }
            Err(_) => Err(StoreError::Backend("a blob read gave no buffer".into())),
        }
    }

    /// Read exactly `len` next bytes into `buf` at `offset` (a shorter blob is corrupt).
    async fn read_exact(
        &mut self,
        mut buf: ArrayBuffer,
        offset: usize,
        len: usize,
    ) -> Result<ArrayBuffer> {
        let mut done = 0;
        while done < len {
            let (b, n) = self.read(&buf, offset + done, len - done).await?;
            buf = b;
            if n == 0 {
                return Err(StoreError::corrupt(
                    "segment",
                    "blob shorter than its header says",
                ));
            }
            done += n;
        }
        Ok(buf)
    }
}

impl Drop for BlobReader {
    fn drop(&mut self) {
        if self.read < self.size {
            // Stopped early (an error): let the browser stop reading the blob.
            let _ = self.reader.cancel();
        } else {
            self.reader.release_lock();
        }
    }
}

/// A read of a segment started ahead of its turn.
enum Ahead {
    /// A BYOB stream of its `Blob`.
    Stream(BlobReader),
    /// Its `Blob` read whole (no byte streams in this browser).
    Whole(Promise),
    /// A legacy `ArrayBuffer` value (nothing to start).
    Buffer,
}

/// Hand on a segment held whole in an `ArrayBuffer`.
fn whole_segment(
    key: u64,
    seg: JsSegment,
    sink: &mut dyn VectorSink,
    at: usize,
) -> Result<Option<SegmentMeta>> {
    let len = seg.byte_len();
    if len < 16 {
        return Err(StoreError::corrupt(
            format!("segment {key}"),
            "shorter than its header",
        ));
    }
    let mut head = [0u8; 16];
    seg.read(0, &mut head);
    let vbytes = check_segment(key, &head, len, sink, at)?;
    sink.write(at, &seg, 16, vbytes / 4)?;
    let mut tail = vec![0u8; len - 16 - vbytes];
    seg.read(16 + vbytes, &mut tail);
    Ok(Some(SegmentMeta { key, head, tail }))
}

/// The segments of one snapshot, read after their transaction ([`SegmentCursor`]): a segment
/// `Blob` is streamed (the streams of the next few are opened ahead, so the browser reads them
/// meanwhile), its vector bytes straight into a [`JsVectorSink`], or through a reused staging
/// buffer into any other sink; legacy `ArrayBuffer` values are copied from.
pub struct IdbSegments {
    segs: VecDeque<(u64, JsValue)>,
    /// Reads started of the first `readers.len()` segments of `segs`.
    readers: VecDeque<Ahead>,
    stage: Option<ArrayBuffer>,
}

impl IdbSegments {
    /// Open the streams of the next [`STREAMS_AHEAD`] segments.
    fn open_ahead(&mut self) -> Result<()> {
        while self.readers.len() < STREAMS_AHEAD && self.readers.len() < self.segs.len() {
            let v = &self.segs[self.readers.len()].1;
            let r = match v.dyn_ref::<Blob>() {
                // A browser whose Blob streams are not byte streams: read it whole instead.
                Some(b) => BlobReader::open(b)
                    .map(Ahead::Stream)
                    .unwrap_or_else(|_| Ahead::Whole(b.array_buffer())),
                None => Ahead::Buffer,
            };
            self.readers.push_back(r);
        }
        Ok(())
    }
}

impl SegmentCursor for IdbSegments {
    async fn next(&mut self, sink: &mut dyn VectorSink, at: usize) -> Result<Option<SegmentMeta>> {
        self.open_ahead()?;
        let Some((key, v)) = self.segs.pop_front() else {
            return Ok(None);
        };
        let ahead = self.readers.pop_front();
        self.open_ahead()?;
        let mut r = match ahead {
            Some(Ahead::Stream(r)) => r,
            whole => {
                // A legacy ArrayBuffer value, or a Blob read whole.
                let ab = match whole {
                    Some(Ahead::Whole(p)) => finish_read(Ok(p)).await?,
                    _ => v.dyn_into::<ArrayBuffer>().map_err(|_| {
                        StoreError::corrupt(
                            format!("segment {key}"),
                            "neither a Blob nor an ArrayBuffer",
                        )
                    })?,
                };
                return whole_segment(key, JsSegment(ab), sink, at);
            }
        };
        if r.size < 16 {
            return Err(StoreError::corrupt(
                format!("segment {key}"),
                "shorter than its header",
            ));
        }
        let small = r.read_exact(ArrayBuffer::new(16), 0, 16).await?;
        let mut head = [0u8; 16];
        Uint8Array::new(&small).copy_to(&mut head);
        let vbytes = check_segment(key, &head, r.size, sink, at)?;
        if vbytes > 0 {
            if let Some(js) = sink.as_any_mut().downcast_mut::<JsVectorSink>() {
                // Straight into the destination array.
                let dst = js.dst.take().ok_or_else(|| {
                    StoreError::corrupt("segments", "vectors before the row count")
                })?;
                let buf = r.read_exact(dst.buffer(), at * 4, vbytes).await;
                // The read transferred the buffer: keep the new one (the old is detached).
                let buf = buf?;
                js.dst = Some(Float32Array::new(&buf));
            } else {
                // Through the staging buffer, whole values at a time.
                let mut stage = self
                    .stage
                    .take()
                    .unwrap_or_else(|| ArrayBuffer::new(STAGING_BYTES));
                let (mut done, mut carry) = (0usize, 0usize);
                while done < vbytes {
                    let want = (vbytes - done).min(STAGING_BYTES as usize) - carry;
                    let (b, n) = r.read(&stage, carry, want).await?;
                    stage = b;
                    if n == 0 {
                        return Err(StoreError::corrupt(
                            format!("segment {key}"),
                            "blob shorter than its header says",
                        ));
                    }
                    let have = carry + n;
                    let whole = have / 4 * 4;
                    let src = JsSegment(stage);
                    sink.write(at + done / 4, &src, 0, whole / 4)?;
                    stage = src.0;
                    done += whole;
                    carry = have - whole;
                    if carry > 0 {
                        let u = Uint8Array::new(&stage);
                        u.copy_within(0, whole as i32, have as i32);
                    }
                }
                self.stage = Some(stage);
            }
        }
        let rest = r.size - 16 - vbytes;
        let mut tail = vec![0u8; rest];
        if rest > 0 {
            let b = r.read_exact(ArrayBuffer::new(rest as u32), 0, rest).await?;
            Uint8Array::new(&b).copy_to(&mut tail);
        }
        Ok(Some(SegmentMeta { key, head, tail }))
    }
}

/// Records requested by key (or all of them) in a read transaction.
enum Keyed {
    /// `getAllKeys` and `getAll`.
    All(Req, Req),
    /// One `get` per key.
    Some(Vec<u64>, Vec<Req>),
}

/// Request the records of `keys` (or all of them) of `os`.
fn keyed(os: &IdbObjectStore, all: bool, keys: &[u64], what: &str) -> Result<Keyed> {
    if all {
        return Ok(Keyed::All(
            req(os.get_all_keys(), what)?,
            req(os.get_all(), what)?,
        ));
    }
    let mut keys = keys.to_vec();
    keys.sort_unstable();
    keys.dedup();
    let reqs = keys
        .iter()
        .map(|&k| req(os.get(&JsValue::from_f64(k as f64)), what))
        .collect::<Result<Vec<_>>>()?;
    Ok(Keyed::Some(keys, reqs))
}

impl Keyed {
    /// Await the requests: `(key, value)` in key order (missing ones undefined).
    async fn wait(self) -> Result<Vec<(u64, JsValue)>> {
        match self {
            Keyed::All(k, v) => {
                let k = value(k, "keys").await?;
                let v = value(v, "values").await?;
                Ok(Array::from(&k)
                    .iter()
                    .zip(Array::from(&v).iter())
                    .map(|(k, v)| (key_u64(&k), v))
                    .collect())
            }
            Keyed::Some(keys, reqs) => {
                let mut out = Vec::with_capacity(keys.len());
                for (k, r) in keys.into_iter().zip(reqs) {
                    out.push((k, value(r, "get").await?));
                }
                Ok(out)
            }
        }
    }
}

impl Backend for IdbBackend {
    fn kind(&self) -> &'static str {
        "indexeddb"
    }

    async fn read(&self, rq: &ReadRequest) -> Result<ReadResult> {
        let run = async {
            let tx = self.begin(IdbTransactionMode::Readonly, Durability::Strict)?;
            let meta = tx.store(META)?;
            let pages = tx.store(PAGES)?;
            let segs = tx.store(SEGMENTS)?;
            // Issue every request first; then await them (all requests of one transaction).
            let header = req(meta.get(&JsValue::from_str("header")), "get header")?;
            let state = req(meta.get(&JsValue::from_str("state")), "get state")?;
            let page_reqs = keyed(&pages, rq.all_pages, &rq.pages, "pages")?;
            let seg_reqs = keyed(&segs, rq.all_segments, &rq.segments, "segments")?;
            let mut part_keys: Vec<u64> = rq
                .segment_tails
                .iter()
                .map(|t| t.0)
                .chain(rq.segment_ranges.iter().map(|r| r.0))
                .collect();
            part_keys.sort_unstable();
            part_keys.dedup();
            let part_reqs = keyed(&segs, false, &part_keys, "segments")?;
            let legacy = match (rq.legacy_episodes, self.inner.legacy) {
                (true, true) => Some(req(tx.store(LEGACY_EPISODES)?.get_all(), "episodes")?),
                _ => None,
            };
            let changes = match rq.changes_after {
                Some(after) => {
                    let range =
                        IdbKeyRange::lower_bound_with_open(&JsValue::from_f64(after as f64), true)
                            .map_err(|e| js_err("key range", &e))?;
                    Some((
                        req(
                            tx.store(CHANGES)?.get_all_keys_with_key(&range),
                            "change keys",
                        )?,
                        req(tx.store(CHANGES)?.get_all_with_key(&range), "changes")?,
                    ))
                }
                None => None,
            };
            let blob = match &rq.blob {
                Some(n) => Some(req(tx.store(BLOBS)?.get(&JsValue::from_str(n)), "blob")?),
                None => None,
            };
            // The namespace's index entries: walk a key cursor (each step is one request).
            let mut ns_pages = Vec::new();
            if let Some(q) = &rq.ns_pages {
                let index = pages.index(NS_INDEX).map_err(|e| js_err("index", &e))?;
                let range = ns_range(&q.namespace, q.to)?;
                let raw = index
                    .open_key_cursor_with_range(&range)
                    .map_err(|e| js_err("index cursor", &e))?;
                let mut cursor_req = Req::new(raw.clone());
                loop {
                    let c = value(cursor_req, "index cursor").await?;
                    if c.is_null() || c.is_undefined() {
                        break;
                    }
                    let c: IdbCursor = c.unchecked_into();
                    let key = c.key().map_err(|e| js_err("index key", &e))?;
                    let lo = c.primary_key().map_err(|e| js_err("index key", &e))?;
                    ns_pages.push((key, lo));
                    let next = Req::new(raw.clone());
                    c.continue_().map_err(|e| js_err("cursor", &e))?;
                    cursor_req = next;
                }
            }

            // Await the results (requests only).
            let header = value(header, "header").await?;
            let state = value(state, "state").await?;
            let page_vals = page_reqs.wait().await?;
            let seg_vals = seg_reqs.wait().await?;
            let part_vals = part_reqs.wait().await?;
            let legacy = match legacy {
                Some(r) => Some(value(r, "episodes").await?),
                None => None,
            };
            let changes = match changes {
                Some((k, v)) => Some((value(k, "change keys").await?, value(v, "changes").await?)),
                None => None,
            };
            let blob = match blob {
                Some(r) => Some(value(r, "blob").await?),
                None => None,
            };
            // Every request has returned: the snapshot is complete (a read-only transaction has
            // nothing to commit, so its `complete` event is not awaited). Convert; segment
            // `Blob`s are read now, outside the transaction.
            drop(tx);
            let mut out = ReadResult {
                header: bytes_of(&header),
                state: bytes_of(&state),
                ..Default::default()
            };
            out.pages = page_vals
                .into_iter()
                .filter_map(|(k, v)| b_bytes(&v).map(|b| (k, b)))
                .collect();
            let (seg_keys, seg_vals): (Vec<u64>, Vec<JsValue>) = seg_vals
                .into_iter()
                .filter(|(_, v)| !v.is_undefined() && !v.is_null())
                .unzip();
            out.segments = seg_keys
                .into_iter()
                .zip(resolve_segments(seg_vals).await?)
                .collect();
            // Headers, tails and ranges: slices of the segment Blobs, read at once.
            let by: std::collections::HashMap<u64, JsValue> = part_vals
                .into_iter()
                .filter(|(_, v)| !v.is_undefined() && !v.is_null())
                .collect();
            let mut tails = Vec::new();
            for &(k, vbytes) in &rq.segment_tails {
                if let Some(v) = by.get(&k) {
                    // A small segment is read whole (one read instead of two).
                    let small = v
                        .dyn_ref::<Blob>()
                        .is_some_and(|b| b.size() <= SMALL_SEGMENT_BYTES as f64);
                    tails.push(if small {
                        (k, vbytes, read_slice(v, 0, None)?, None)
                    } else {
                        (
                            k,
                            vbytes,
                            read_slice(v, 0, Some(16))?,
                            Some(read_slice(v, 16 + vbytes, None)?),
                        )
                    });
                }
            }
            let ranges = rq
                .segment_ranges
                .iter()
                .map(|&(k, a, z)| by.get(&k).map(|v| read_slice(v, a, Some(z))).transpose())
                .collect::<Result<Vec<_>>>()?;
            for (k, vbytes, head, tail) in tails {
                let mut head = finish_slice(head).await?;
                let tail = match tail {
                    Some(t) => finish_slice(t).await?,
                    None => head.get(16 + vbytes..).map(<[u8]>::to_vec).ok_or_else(|| {
                        StoreError::corrupt(
                            format!("segment {k}"),
                            "shorter than the directory says",
                        )
                    })?,
                };
                head.truncate(16);
                let head: [u8; 16] = head.as_slice().try_into().map_err(|_| {
                    StoreError::corrupt(format!("segment {k}"), "shorter than its header")
                })?;
                out.segment_tails
                    .push((k, SegmentMeta { key: k, head, tail }));
            }
            for r in ranges {
                out.segment_ranges.push(match r {
                    Some(r) => Some(finish_slice(r).await?),
                    None => None,
                });
            }
            out.ns_pages = ns_pages
                .iter()
                .filter_map(|(k, lo)| ns_page(k, lo))
                .collect();
            if let Some(v) = legacy {
                out.legacy_episodes = Array::from(&v).iter().filter_map(|x| b_bytes(&x)).collect();
            }
            if let Some((k, v)) = changes {
                out.changes = Array::from(&k)
                    .iter()
                    .zip(Array::from(&v).iter())
                    .filter_map(|(k, v)| bytes_of(&v).map(|b| (key_u64(&k), b)))
                    .collect();
            }
            if let Some(v) = blob {
                out.blob = bytes_of(&v);
            }
            Ok(out)
        };
        run.await.map_err(|e| self.fail(e))
    }

    type Segments = IdbSegments;

    async fn read_all_segments(&self) -> Result<(Option<Vec<u8>>, IdbSegments)> {
        let run = async {
            let tx = self.begin(IdbTransactionMode::Readonly, Durability::Strict)?;
            let state = req(tx.store(META)?.get(&JsValue::from_str("state")), "state")?;
            let segs = tx.store(SEGMENTS)?;
            let keys = req(segs.get_all_keys(), "segment keys")?;
            let vals = req(segs.get_all(), "segments")?;
            let state = value(state, "state").await?;
            let keys = value(keys, "segment keys").await?;
            let vals = value(vals, "segments").await?;
            // Every request has returned: the snapshot is complete (its `Blob`s stay readable;
            // the cursor reads them from here on). A read-only transaction has nothing to
            // commit: its `complete` is not awaited.
            drop(tx);
            let keys: Vec<u64> = Array::from(&keys).iter().map(|k| key_u64(&k)).collect();
            let vals: Vec<JsValue> = Array::from(&vals).iter().collect();
            if keys.len() != vals.len() {
                return Err(StoreError::corrupt("segments", "keys and values differ"));
            }
            Ok((
                bytes_of(&state),
                IdbSegments {
                    segs: keys.into_iter().zip(vals).collect(),
                    readers: VecDeque::new(),
                    stage: None,
                },
            ))
        };
        run.await.map_err(|e| self.fail(e))
    }

    async fn commit(&self, w: WriteSet) -> Result<CommitOutcome> {
        let run = async {
            let tx = self.begin(IdbTransactionMode::Readwrite, w.durability)?;
            let meta = tx.store(META)?;
            // The old segments the new ones are composed from (their Blob handles: no bytes).
            let mut old_keys: Vec<u64> = w
                .put_segments
                .iter()
                .flat_map(|(_, parts)| parts)
                .filter_map(|p| match p {
                    SegPart::Old { key, .. } => Some(*key),
                    SegPart::Bytes(_) => None,
                })
                .collect();
            old_keys.sort_unstable();
            old_keys.dedup();
            let old_reqs = if old_keys.is_empty() {
                None
            } else {
                Some(keyed(
                    &tx.store(SEGMENTS)?,
                    false,
                    &old_keys,
                    "old segments",
                )?)
            };
            // The conditional commit: the stored state must be at `expect_seq`.
            let state_req = match w.expect_seq {
                Some(_) => Some(req(meta.get(&JsValue::from_str("state")), "state")?),
                None => None,
            };
            let conflict = |st: JsValue| -> Option<u64> {
                let found = match st.dyn_ref::<ArrayBuffer>() {
                    Some(ab) if ab.byte_length() >= 8 => {
                        let mut b = [0u8; 8];
                        Uint8Array::new_with_byte_offset_and_length(ab, 0, 8).copy_to(&mut b);
                        state_seq(Some(&b))
                    }
                    _ => 0,
                };
                (Some(found) != w.expect_seq).then_some(found)
            };
            // Every write is issued before the state read returns, and the state is checked when
            // it does (a conflict aborts: nothing issued commits), so the read's round trip
            // overlaps the work of issuing them.
            let old: std::collections::HashMap<u64, JsValue> = match old_reqs {
                Some(r) => r.wait().await?.into_iter().collect(),
                None => Default::default(),
            };
            let pages = tx.store(PAGES)?;
            let segs = tx.store(SEGMENTS)?;
            let changes = tx.store(CHANGES)?;
            let blobs = tx.store(BLOBS)?;
            let fault_after = match self.inner.fault.take() {
                Some(Fault::AbortAfter(n)) => n,
                None => usize::MAX,
            };
            let mut budget = fault_after;
            let total = w.ops();
            let mut step = |ok: Result<()>| -> Result<bool> {
                ok?;
                if budget == 0 {
                    return Ok(false);
                }
                budget -= 1;
                Ok(true)
            };
            // Issue every write (fire and forget; a failure aborts the transaction). Any error
            // while issuing them aborts it here, so a half-issued batch never commits.
            let mut issue = || -> Result<bool> {
                let mut go =
                    |r: std::result::Result<IdbRequest, JsValue>, ctx: &str| -> Result<bool> {
                        if !step(Ok(()))? {
                            return Ok(false);
                        }
                        fire_and_forget(r, ctx)?;
                        Ok(true)
                    };
                macro_rules! op {
                    ($e:expr, $ctx:expr) => {
                        if !go($e, $ctx)? {
                            return Ok(true);
                        }
                    };
                }
                if w.clear {
                    op!(pages.clear(), "clear");
                    segs.clear().map_err(|e| js_err("clear", &e))?;
                    changes.clear().map_err(|e| js_err("clear", &e))?;
                    blobs.clear().map_err(|e| js_err("clear", &e))?;
                }
                if w.clear_legacy {
                    if self.inner.legacy {
                        op!(tx.store(LEGACY_EPISODES)?.clear(), "clear legacy");
                    } else {
                        // Nothing to clear; a harmless request keeps the count of writes (fault
                        // injection) equal to the memory backend's.
                        op!(pages.count(), "clear legacy (none)");
                    }
                }
                for &k in &w.delete_pages {
                    op!(pages.delete(&JsValue::from_f64(k as f64)), "delete page");
                }
                for &k in &w.delete_segments {
                    op!(segs.delete(&JsValue::from_f64(k as f64)), "delete segment");
                }
                if let Some(below) = w.prune_changes_below {
                    let range =
                        IdbKeyRange::upper_bound_with_open(&JsValue::from_f64(below as f64), true)
                            .map_err(|e| js_err("key range", &e))?;
                    op!(changes.delete(&range), "prune changes");
                }
                if let Some(n) = &w.delete_blob {
                    op!(blobs.delete(&JsValue::from_str(n)), "delete blob");
                }
                for r in &w.put_pages {
                    op!(
                        pages.put_with_key(
                            &page_value(&r.keys, &r.bytes),
                            &JsValue::from_f64(r.lo as f64)
                        ),
                        "put page"
                    );
                }
                for (k, parts) in &w.put_segments {
                    op!(
                        segs.put_with_key(
                            &segment_value(parts, &old)?,
                            &JsValue::from_f64(*k as f64)
                        ),
                        "put segment"
                    );
                }
                if let Some((k, b)) = &w.put_change {
                    op!(
                        changes.put_with_key(&buffer(b), &JsValue::from_f64(*k as f64)),
                        "put change"
                    );
                }
                if let Some((n, b)) = &w.put_blob {
                    op!(
                        blobs.put_with_key(&buffer(b), &JsValue::from_str(n)),
                        "put blob"
                    );
                }
                if let Some(h) = &w.header {
                    op!(
                        meta.put_with_key(&buffer(h), &JsValue::from_str("header")),
                        "put header"
                    );
                }
                if let Some(s) = &w.state {
                    op!(
                        meta.put_with_key(&buffer(s), &JsValue::from_str("state")),
                        "put state"
                    );
                }
                Ok(false)
            };
            let injected = match issue() {
                Ok(i) => i,
                Err(e) => {
                    tx.abort();
                    let _ = tx.done("write").await;
                    return Err(e);
                }
            };
            if let Some(sr) = state_req {
                if let Some(found) = conflict(value(sr, "state").await?) {
                    tx.abort();
                    let _ = tx.done("conflict").await;
                    return Ok(CommitOutcome::Conflict { found });
                }
            }
            if injected {
                tx.abort();
                let _ = tx.done("fault").await;
                return Err(StoreError::Aborted(format!(
                    "fault injected after {} of {total} writes",
                    fault_after
                )));
            }
            tx.done("commit").await?;
            Ok(CommitOutcome::Committed)
        };
        let out = run.await.map_err(|e| self.fail(e))?;
        if out == CommitOutcome::Committed && w.state.is_some() {
            if let (Some(c), Some(s)) = (&self.inner.channel, &w.state) {
                let _ = c.post_message(&JsValue::from_f64(state_seq(Some(s)) as f64));
            }
        }
        Ok(out)
    }

    fn set_notice_listener(&self, f: Option<NoticeListener>) {
        *self.inner.listener.borrow_mut() = f;
    }

    fn close(&self) {
        self.inner
            .closed
            .borrow_mut()
            .get_or_insert(StoreError::Closed);
        self.inner.shut();
    }

    async fn destroy(&self) -> Result<()> {
        self.close();
        let name = self.inner.name.clone();
        // The journal first (see `delete_database`).
        OpfsDir::delete(&name).await?;
        let r = idb_factory()?
            .delete_database(&name)
            .map_err(|e| js_err("deleteDatabase", &e))?;
        await_open(r, "deleteDatabase").await.map(|_| ())
    }

    fn inject_fault(&self, fault: Fault) {
        self.inner.fault.set(Some(fault));
    }

    type Journal = OpfsDir;

    fn journal(&self) -> Option<&OpfsDir> {
        self.inner.journal.as_ref()
    }

    fn data_loss(&self) -> Option<String> {
        self.inner.data_loss.clone()
    }
}

/// Open the database of the store `name` at schema `version` and close it again: what a newer
/// build in another tab does (tests of `STORE_UPGRADED_ELSEWHERE` / `SCHEMA_TOO_NEW`).
#[doc(hidden)]
pub async fn simulate_upgrade(name: &str, version: u32) -> Result<()> {
    let r = idb_factory()?
        .open_with_u32(&database_name(name), version)
        .map_err(|e| js_err("open", &e))?;
    let v = await_open(r, "open").await?;
    let db: IdbDatabase = v.unchecked_into();
    db.close();
    Ok(())
}
