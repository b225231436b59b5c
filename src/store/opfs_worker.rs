//! The journal's entry writer in a dedicated worker (wasm32): [`Courier`].
//!
//! A page cannot write an Origin Private File System file synchronously: `createWritable()`
//! writes a swap file through the browser process and moves it into place on `close()`, about
//! 13–20 ms for a 1.6 MB entry here, and the close is what a durable write waits on last. A
//! dedicated worker can use `createSyncAccessHandle()`, which writes the file in place from the
//! worker's thread (5–8 ms for the same entry, `flush()` included; 11 ms beside an IndexedDB
//! commit of the same size against 17–18 ms for the writable). So the journal's **pending
//! entries** (`p-<n>`, written beside the commit, renamed after it) go through one small worker
//! per thread, created from a `Blob` URL of [`SRC`]; snapshots and every other file keep the
//! writable path on the calling thread (their atomic replace matters: a snapshot is written under
//! its final name). A pending file is never replayed, so writing it in place (a kill can leave
//! it half-written) changes nothing a replay sees.
//!
//! The protocol is one message per operation, `[id, op, dir, name, to, buffer]` (the entry's
//! bytes transferred, not copied), answered by `[id, 1, value]` or `[id, 0, error]` (the worker's
//! `DOMException` itself, which survives `postMessage`, so a `QuotaExceededError` stays typed).
//! The worker keeps the spare's open handle (its lock protects the file from the clean-up of stray
//! pending files, as the spare's open writable does on the other path) and the handle a write
//! used, for the rename. The worker starts at a directory's first pending write (a store that only
//! reads never starts it). Where workers, `Blob` URLs (a strict `worker-src` content security
//! policy) or sync access handles are missing, or the worker does not answer its probe within
//! [`PROBE_MS`], the journal uses the writable path; a worker that dies later fails its calls and
//! the directory falls back the same way.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures_channel::oneshot;
use js_sys::{Array, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Blob, BlobPropertyBag, Event, MessageEvent, Url, Worker};

/// The worker's script. `dir` is `"<key>|<path>"`: the directory is resolved from the OPFS root
/// along `path` and cached under the whole string (each open directory has its own key, so a
/// store deleted and created again is never written through a stale handle). Operations run one
/// after another, in the order posted. Ops: 0 probe (are sync access handles there?), 1 open a
/// spare, 2 write a whole file (through the spare's handle when one is open) and flush it, 5 the
/// same without the flush (relaxed stores), 3 rename the file last written, 4 forget the
/// directory (close and remove its open spares; never creates it: a forget may arrive after the
/// store deleted its directory).
/// Errors go back as they are (a `DOMException` survives `postMessage`).
const SRC: &str = "const D=new Map,O=new Map,L=new Map;let q=Promise.resolve();\
async function dir(p){let d=D.get(p);if(!d){d=await navigator.storage.getDirectory();\
for(const s of p.slice(p.indexOf('|')+1).split('/'))d=await d.getDirectoryHandle(s,{create:true});\
D.set(p,d)}return d}\
async function open(d,n){const f=await d.getFileHandle(n,{create:true});return[f,await f.createSyncAccessHandle()]}\
async function run(o,p,n,t,b){const k=p+'/'+n;\
if(o==0)return typeof FileSystemFileHandle=='function'&&'createSyncAccessHandle'in FileSystemFileHandle.prototype;\
const d=o==4?D.get(p):await dir(p);\
if(o==1)O.set(k,await open(d,n));\
else if(o==2||o==5){const e=O.get(k)||await open(d,n);O.delete(k);\
try{const a=new Uint8Array(b);e[1].truncate(0);\
if(e[1].write(a,{at:0})!==a.length)throw new DOMException('short write','QuotaExceededError');\
if(o==2)e[1].flush()}finally{e[1].close()}L.set(k,e[0])}\
else if(o==3){const f=L.get(k)||await d.getFileHandle(n);L.delete(k);await f.move(t)}\
else{for(const[x,e]of O)if(x.startsWith(p+'/')){O.delete(x);e[1].close();\
if(d)await d.removeEntry(x.slice(p.length+1)).catch(()=>{})}\
for(const x of L.keys())if(x.startsWith(p+'/'))L.delete(x);D.delete(p)}return!0}\
onmessage=({data:[i,o,p,n,t,b]})=>{q=q.then(()=>run(o,p,n,t,b)).then(r=>postMessage([i,1,r]),\
e=>{try{postMessage([i,0,e])}catch{postMessage([i,0,String(e)])}})}";

/// The operations of [`SRC`].
#[derive(Clone, Copy)]
pub(crate) enum Op {
    Probe = 0,
    Open = 1,
    Write = 2,
    Move = 3,
    Forget = 4,
    WriteLazy = 5,
}

type Reply = std::result::Result<JsValue, JsValue>;

/// What the message and error handlers share with the callers.
#[derive(Default)]
struct Shared {
    waiting: RefCell<Vec<(u32, oneshot::Sender<Reply>)>>,
    dead: Cell<bool>,
}

impl Shared {
    /// The caller waiting on call `id`.
    fn take(&self, id: u32) -> Option<oneshot::Sender<Reply>> {
        let mut w = self.waiting.borrow_mut();
        let at = w.iter().position(|(i, _)| *i == id)?;
        Some(w.swap_remove(at).1)
    }

    /// The worker failed (its script did not load, or it died): fail every call waiting.
    fn fail_all(&self) {
        self.dead.set(true);
        let waiting = std::mem::take(&mut *self.waiting.borrow_mut());
        for (_, tx) in waiting {
            let _ = tx.send(Err(gone()));
        }
    }
}

fn gone() -> JsValue {
    JsValue::from_str("the journal worker is gone")
}

/// The journal worker of this thread and its pending calls.
pub(crate) struct Courier {
    worker: Worker,
    next: Cell<u32>,
    shared: Rc<Shared>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_error: Closure<dyn FnMut(Event)>,
}

thread_local! {
    /// Use the worker at all (tests turn it off to run the writable path).
    static ENABLED: Cell<bool> = const { Cell::new(true) };
    static COURIER: RefCell<Option<Rc<Courier>>> = const { RefCell::new(None) };
}

/// Let directories opened from now on write their entries through the worker (the default) or
/// not (`false`: the writable path only). For tests and comparisons.
pub fn set_enabled(on: bool) {
    ENABLED.with(|e| e.set(on));
}

impl Courier {
    /// This thread's worker (started on first use, again after one died), if it answers the probe
    /// with sync access handles; `None` (the writable path) otherwise or when turned off.
    pub(crate) async fn get() -> Option<Rc<Courier>> {
        if !ENABLED.with(Cell::get) {
            return None;
        }
        let (c, fresh) = COURIER.with(|c| {
            let mut c = c.borrow_mut();
            let fresh = c.as_ref().is_none_or(|w| w.dead());
            if fresh {
                *c = Courier::spawn().ok().map(Rc::new);
            }
            c.clone().map(|c| (c, fresh))
        })?;
        if fresh {
            // A new worker that neither answers nor fails (it should not happen) must not hang a
            // write. (A running one may be busy with a long write: no limit there.)
            let (s, id) = (c.shared.clone(), c.next.get());
            wasm_bindgen_futures::spawn_local(async move {
                super::opfs::sleep_ms(PROBE_MS).await;
                if s.take(id).is_some() {
                    s.fail_all();
                }
            });
        }
        let probe = c.call(Op::Probe, "", "", "", None).await;
        (probe.ok()?.as_bool() == Some(true)).then_some(c)
    }

    fn spawn() -> std::result::Result<Courier, JsValue> {
        let bag = BlobPropertyBag::new();
        bag.set_type("text/javascript");
        let blob = Blob::new_with_str_sequence_and_options(&Array::of1(&SRC.into()), &bag)?;
        let url = Url::create_object_url_with_blob(&blob)?;
        let worker = Worker::new(&url);
        // The worker's script is fetched from the URL when it is constructed (the URL's blob
        // entry is resolved then), so it can go now.
        let _ = Url::revoke_object_url(&url);
        let worker = worker?;
        let shared = Rc::new(Shared::default());
        let s = shared.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
            let m: Array = ev.data().unchecked_into();
            if let Some(tx) = s.take(m.get(0).as_f64().unwrap_or(-1.0) as u32) {
                let _ = tx.send(if m.get(1).as_f64() == Some(1.0) {
                    Ok(m.get(2))
                } else {
                    Err(m.get(2))
                });
            }
        });
        let s = shared.clone();
        let on_error = Closure::<dyn FnMut(Event)>::new(move |_: Event| s.fail_all());
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        Ok(Courier {
            worker,
            next: Cell::new(0),
            shared,
            _on_message: on_message,
            _on_error: on_error,
        })
    }

    /// The worker failed: callers use the writable path.
    pub(crate) fn dead(&self) -> bool {
        self.shared.dead.get()
    }

    /// Run `op` on the file `name` of the directory `dir` (`"<key>|<path>"`) in the worker;
    /// `bytes` are transferred (the array's buffer is detached here).
    pub(crate) async fn call(
        &self,
        op: Op,
        dir: &str,
        name: &str,
        to: &str,
        bytes: Option<&Uint8Array>,
    ) -> Reply {
        let id = self.next.get();
        self.next.set(id.wrapping_add(1));
        let (tx, rx) = oneshot::channel();
        self.shared.waiting.borrow_mut().push((id, tx));
        if let Err(e) = self.post(id, op, dir, name, to, bytes) {
            self.shared.take(id);
            return Err(e);
        }
        rx.await.unwrap_or_else(|_| Err(gone()))
    }

    /// Post `op` without waiting for its answer.
    pub(crate) fn send(&self, op: Op, dir: &str) {
        let _ = self.post(u32::MAX, op, dir, "", "", None);
    }

    fn post(
        &self,
        id: u32,
        op: Op,
        dir: &str,
        name: &str,
        to: &str,
        bytes: Option<&Uint8Array>,
    ) -> std::result::Result<(), JsValue> {
        if self.dead() {
            return Err(gone());
        }
        let msg = Array::of5(
            &id.into(),
            &(op as u32).into(),
            &dir.into(),
            &name.into(),
            &to.into(),
        );
        let transfer = Array::new();
        if let Some(b) = bytes {
            msg.push(b);
            transfer.push(&b.buffer());
        }
        self.worker.post_message_with_transfer(&msg, &transfer)
    }
}

/// How long the probe waits for the worker's first answer.
const PROBE_MS: i32 = 5_000;
