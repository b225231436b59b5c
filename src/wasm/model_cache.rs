//! The text encoder's weight cache in IndexedDB: an app passes a model's files once
//! (`embedder: { model, weights, vocab }`), later opens load them from here
//! (`embedder: { model }`).
//!
//! Database `mnemo-models` (version 1), object store `models`, one record per model name:
//! `{ model, weights: Blob, vocab: Blob, bytes, savedAt }`. The files are kept as `Blob`s, made
//! from the caller's bytes on the JS side (no copy through wasm memory) or taken as they are when
//! the caller gave a `Blob` or a URL (the fetched response's `Blob`); they reach wasm memory once,
//! when the model is parsed.
//!
//! "Nothing but IndexedDB requests is awaited inside a transaction": [`put`] issues one `put`
//! request and awaits only the transaction's `complete` / `abort`; [`get`] and [`delete`] await
//! only their one request. Reading a `Blob`'s bytes (`arrayBuffer()`) happens after [`get`]
//! returned, outside any transaction.

use std::cell::RefCell;
use std::rc::Rc;

use futures_channel::oneshot;
use js_sys::{Object, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Blob, Event, IdbDatabase, IdbFactory, IdbOpenDbRequest, IdbRequest, IdbTransaction};

use crate::encoder::EncoderError;

/// The cache's database name.
pub const DB_NAME: &str = "mnemo-models";
const STORE: &str = "models";
const VERSION: u32 = 1;

/// A cached model's files.
pub struct Cached {
    /// `model.safetensors`.
    pub weights: Blob,
    /// `vocab.txt`.
    pub vocab: Blob,
}

fn cache_err(ctx: &str, e: &JsValue) -> EncoderError {
    let msg = if let Some(d) = e.dyn_ref::<web_sys::DomException>() {
        format!("{}: {}", d.name(), d.message())
    } else if let Some(x) = e.dyn_ref::<js_sys::Error>() {
        String::from(x.message())
    } else {
        e.as_string().unwrap_or_else(|| format!("{e:?}"))
    };
    EncoderError::Cache(format!("{ctx}: {msg}"))
}

fn factory() -> Result<IdbFactory, EncoderError> {
    let v = Reflect::get(&js_sys::global(), &JsValue::from_str("indexedDB"))
        .map_err(|e| cache_err("indexedDB", &e))?;
    v.dyn_into::<IdbFactory>()
        .map_err(|_| EncoderError::Cache("IndexedDB is not available in this context".into()))
}

type Sender = Rc<RefCell<Option<oneshot::Sender<Result<JsValue, JsValue>>>>>;

fn send(s: &Sender, v: Result<JsValue, JsValue>) {
    if let Some(tx) = s.borrow_mut().take() {
        let _ = tx.send(v);
    }
}

/// One request's outcome (its `result`, or its `error`).
async fn settle(req: &IdbRequest) -> Result<JsValue, JsValue> {
    let (tx, rx) = oneshot::channel();
    let s: Sender = Rc::new(RefCell::new(Some(tx)));
    let (s1, s2, r1, r2) = (s.clone(), s, req.clone(), req.clone());
    let ok = Closure::<dyn FnMut(Event)>::new(move |_e: Event| {
        send(&s1, Ok(r1.result().unwrap_or(JsValue::UNDEFINED)));
    });
    let err = Closure::<dyn FnMut(Event)>::new(move |e: Event| {
        e.stop_propagation();
        let v = r2.error().ok().flatten().map(JsValue::from);
        send(&s2, Err(v.unwrap_or(JsValue::UNDEFINED)));
    });
    req.set_onsuccess(Some(ok.as_ref().unchecked_ref()));
    req.set_onerror(Some(err.as_ref().unchecked_ref()));
    let out = rx
        .await
        .unwrap_or_else(|_| Err(JsValue::from_str("request dropped")));
    req.set_onsuccess(None);
    req.set_onerror(None);
    out
}

/// The transaction's end: `Ok` on `complete`, its error on `abort`. Listens from creation, so
/// it sees events fired before it is awaited.
struct Done {
    rx: oneshot::Receiver<Result<JsValue, JsValue>>,
    tx: IdbTransaction,
    _complete: Closure<dyn FnMut(Event)>,
    _abort: Closure<dyn FnMut(Event)>,
}

impl Done {
    fn new(tx: &IdbTransaction) -> Done {
        let (sender, rx) = oneshot::channel();
        let s: Sender = Rc::new(RefCell::new(Some(sender)));
        let (s1, s2, t2) = (s.clone(), s, tx.clone());
        let complete = Closure::<dyn FnMut(Event)>::new(move |_e: Event| {
            send(&s1, Ok(JsValue::UNDEFINED));
        });
        let abort = Closure::<dyn FnMut(Event)>::new(move |_e: Event| {
            let v = t2.error().map(JsValue::from);
            send(&s2, Err(v.unwrap_or(JsValue::UNDEFINED)));
        });
        tx.set_oncomplete(Some(complete.as_ref().unchecked_ref()));
        tx.set_onabort(Some(abort.as_ref().unchecked_ref()));
        Done {
            rx,
            tx: tx.clone(),
            _complete: complete,
            _abort: abort,
        }
    }

    async fn wait(self) -> Result<(), JsValue> {
        let r = (&mut { self.rx })
            .await
            .unwrap_or_else(|_| Err(JsValue::from_str("transaction dropped")));
        self.tx.set_oncomplete(None);
        self.tx.set_onabort(None);
        r.map(|_| ())
    }
}

async fn open() -> Result<IdbDatabase, EncoderError> {
    let r: IdbOpenDbRequest = factory()?
        .open_with_u32(DB_NAME, VERSION)
        .map_err(|e| cache_err("open", &e))?;
    let r2 = r.clone();
    let upgrade = Closure::<dyn FnMut(Event)>::new(move |_e: Event| {
        if let Ok(db) = r2.result().and_then(|v| v.dyn_into::<IdbDatabase>()) {
            if !db.object_store_names().contains(STORE) {
                let _ = db.create_object_store(STORE);
            }
        }
    });
    r.set_onupgradeneeded(Some(upgrade.as_ref().unchecked_ref()));
    let v = settle(&r).await;
    r.set_onupgradeneeded(None);
    let db: IdbDatabase = v
        .map_err(|e| cache_err("open", &e))?
        .dyn_into()
        .map_err(|_| EncoderError::Cache("open: not a database".into()))?;
    // Never block another tab's delete or upgrade of the cache.
    let d2 = db.clone();
    let on_vc = Closure::<dyn FnMut(Event)>::new(move |_e: Event| d2.close());
    db.set_onversionchange(Some(on_vc.as_ref().unchecked_ref()));
    on_vc.forget();
    Ok(db)
}

fn transaction(
    db: &IdbDatabase,
    mode: web_sys::IdbTransactionMode,
) -> Result<IdbTransaction, EncoderError> {
    db.transaction_with_str_and_mode(STORE, mode)
        .map_err(|e| cache_err("transaction", &e))
}

/// The cached files of `model`, if any.
pub async fn get(model: &str) -> Result<Option<Cached>, EncoderError> {
    let db = open().await?;
    let out = async {
        let tx = transaction(&db, web_sys::IdbTransactionMode::Readonly)?;
        let os = tx
            .object_store(STORE)
            .map_err(|e| cache_err("objectStore", &e))?;
        let req = os
            .get(&JsValue::from_str(model))
            .map_err(|e| cache_err("get", &e))?;
        // The only await inside the transaction: its one request.
        let v = settle(&req).await.map_err(|e| cache_err("get", &e))?;
        if v.is_undefined() || v.is_null() {
            return Ok(None);
        }
        let blob = |k: &str| {
            Reflect::get(&v, &JsValue::from_str(k))
                .ok()
                .and_then(|b| b.dyn_into::<Blob>().ok())
        };
        Ok(match (blob("weights"), blob("vocab")) {
            (Some(weights), Some(vocab)) => Some(Cached { weights, vocab }),
            _ => None, // a record of another layout: as if absent
        })
    }
    .await;
    db.close();
    out
}

/// Cache `model`'s files (replacing what was there). Resolves after the transaction completed.
pub async fn put(model: &str, weights: &Blob, vocab: &Blob) -> Result<(), EncoderError> {
    let db = open().await?;
    let out = async {
        let tx = transaction(&db, web_sys::IdbTransactionMode::Readwrite)?;
        let done = Done::new(&tx);
        let rec = Object::new();
        let set = |k: &str, v: &JsValue| Reflect::set(&rec, &JsValue::from_str(k), v);
        let _ = set("model", &JsValue::from_str(model));
        let _ = set("weights", weights);
        let _ = set("vocab", vocab);
        let _ = set("bytes", &JsValue::from_f64(weights.size()));
        let _ = set("savedAt", &JsValue::from_f64(js_sys::Date::now()));
        let os = tx
            .object_store(STORE)
            .map_err(|e| cache_err("objectStore", &e))?;
        if let Err(e) = os.put_with_key(&rec, &JsValue::from_str(model)) {
            let _ = tx.abort();
            return Err(cache_err("put", &e));
        }
        // The only await inside the transaction: its end (the put's failure aborts it).
        done.wait().await.map_err(|e| cache_err("put", &e))
    }
    .await;
    db.close();
    out
}

/// Remove `model` from the cache; resolves to whether it was there.
pub async fn delete(model: &str) -> Result<bool, EncoderError> {
    let db = open().await?;
    let out = async {
        let tx = transaction(&db, web_sys::IdbTransactionMode::Readwrite)?;
        let done = Done::new(&tx);
        let os = tx
            .object_store(STORE)
            .map_err(|e| cache_err("objectStore", &e))?;
        let key = JsValue::from_str(model);
        let count = os
            .count_with_key(&key)
            .map_err(|e| cache_err("count", &e))?;
        // Fire and forget: its failure aborts the transaction, which `done` reports.
        os.delete(&key).map_err(|e| cache_err("delete", &e))?;
        // Awaited inside the transaction: the count request, then the transaction's end.
        let n = settle(&count).await.map_err(|e| cache_err("count", &e))?;
        done.wait().await.map_err(|e| cache_err("delete", &e))?;
        Ok(n.as_f64().unwrap_or(0.0) > 0.0)
    }
    .await;
    db.close();
    out
}

/// Whether `model` is cached (a count, no Blob read).
pub async fn contains(model: &str) -> Result<bool, EncoderError> {
    let db = open().await?;
    let out = async {
        let tx = transaction(&db, web_sys::IdbTransactionMode::Readonly)?;
        let os = tx
            .object_store(STORE)
            .map_err(|e| cache_err("objectStore", &e))?;
        let req = os
            .count_with_key(&JsValue::from_str(model))
            .map_err(|e| cache_err("count", &e))?;
        let n = settle(&req).await.map_err(|e| cache_err("count", &e))?;
        Ok(n.as_f64().unwrap_or(0.0) > 0.0)
    }
    .await;
    db.close();
    out
}
