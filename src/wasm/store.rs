//! JS bindings of the episodic store: the `Store` class over IndexedDB. Thin: converts JS values
//! to the core types (`Float32Array` embeddings, plain objects, JSON metadata), calls
//! [`crate::store::Store`], converts back, and turns `StoreError`s into `Error`s with `code` (and
//! `field` for validation errors). The engine (`Mnemo`) wraps this later.

use std::rc::Rc;

use js_sys::{
    Array, Float32Array, Float64Array, Function, Object, Reflect, Uint32Array, Uint8Array,
};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::errors::{to_js_error, JsError2};
use crate::store::idb::{IdbBackend, JsVectorSink};
use crate::store::{
    Durability, Episode, Metadata, NewEpisode, OpenOptions, Patch, ScanQuery, StoreError, VectorSet,
};

type Core = crate::store::Store<IdbBackend>;

/// A pause in writes this long (ms) runs the segment merges the writes before it deferred.
const TIDY_IDLE_MS: i32 = 400;

#[wasm_bindgen(typescript_custom_section)]
const TS_STORE: &'static str = r#"
/** Options of `Store.open`. */
export interface StoreOptions {
  /** Embedding dimension: required to create a store; checked against an existing one. */
  dims?: number;
  /** `'strict'` (default: flushed to disk before a write resolves) or `'relaxed'`. */
  durability?: 'strict' | 'relaxed';
  /** Rows per packed vector segment of a new store (default about 8 MiB of vectors). */
  segmentCapacity?: number;
  /** Bytes per page of episode records of a new store (default 256 KiB). */
  pageCapacity?: number;
}
/** An episode to store (`id` and `insertTime` are assigned by the store). */
export interface NewEpisode {
  namespace: string;
  text: string;
  embedding: Float32Array;
  role?: string;
  /** Milliseconds since the epoch; default: the insert time. */
  eventTime?: number;
  /** A JSON object. */
  metadata?: Record<string, unknown>;
  /** In [0, 1]; default 0.5. */
  importance?: number;
  tags?: string[];
}
/** A stored episode. */
export interface Episode extends Required<NewEpisode> {
  id: number;
  insertTime: number;
}
/** Fields of `update`; absent fields stay. */
export interface EpisodePatch {
  role?: string;
  text?: string;
  metadata?: Record<string, unknown>;
  importance?: number;
  embedding?: Float32Array;
  tags?: string[];
}
/** A scan of one namespace over an event-time range (inclusive). */
export interface ScanOptions {
  namespace: string;
  from?: number;
  to?: number;
  limit?: number;
  /** Newest first. */
  reverse?: boolean;
}
/** Every vector, packed: row i is episode ids[i]. */
export interface VectorSet {
  dims: number;
  seq: number;
  ids: Float64Array;
  vectors: Float32Array;
  namespaces: string[];
  namespaceOf: Uint32Array;
  eventTime: Float64Array;
}
/** What changed since a sequence number. */
export interface Changes {
  seq: number;
  /** Reload everything (`loadVectors`) instead of applying the lists. */
  reset: boolean;
  upserted: number[];
  deleted: number[];
}
"#;

#[wasm_bindgen]
extern "C" {
    /// `StoreOptions`.
    #[wasm_bindgen(typescript_type = "StoreOptions")]
    pub type StoreOptionsJs;
    /// `NewEpisode`.
    #[wasm_bindgen(typescript_type = "NewEpisode")]
    pub type NewEpisodeJs;
    /// `NewEpisode[]`.
    #[wasm_bindgen(typescript_type = "NewEpisode[]")]
    pub type NewEpisodesJs;
    /// `EpisodePatch`.
    #[wasm_bindgen(typescript_type = "EpisodePatch")]
    pub type PatchJs;
    /// `ScanOptions`.
    #[wasm_bindgen(typescript_type = "ScanOptions")]
    pub type ScanJs;
    /// `Episode | undefined`.
    #[wasm_bindgen(typescript_type = "Episode | undefined")]
    pub type MaybeEpisodeJs;
    /// `Episode[]`.
    #[wasm_bindgen(typescript_type = "Episode[]")]
    pub type EpisodesJs;
    /// `(Episode | undefined)[]`.
    #[wasm_bindgen(typescript_type = "(Episode | undefined)[]")]
    pub type MaybeEpisodesJs;
    /// `VectorSet`.
    #[wasm_bindgen(typescript_type = "VectorSet")]
    pub type VectorSetJs;
    /// `Changes`.
    #[wasm_bindgen(typescript_type = "Changes")]
    pub type ChangesJs;
    /// `number[]`.
    #[wasm_bindgen(typescript_type = "number[]")]
    pub type IdsJs;
}

fn store_err(e: StoreError) -> JsValue {
    let v = to_js_error(e.code(), &e.to_string());
    if let Some(f) = e.field() {
        let _ = Reflect::set(&v, &JsValue::from_str("field"), &JsValue::from_str(f));
    }
    v
}

impl From<StoreError> for JsError2 {
    fn from(e: StoreError) -> Self {
        JsError2(store_err(e))
    }
}

fn invalid(field: &str, reason: &str) -> JsValue {
    store_err(StoreError::invalid(field, reason))
}

/// Where a field is: an option or a lone episode (`None`), or episode `i` of a batch. Field names
/// are built only for an error (a valid batch of 1,000 formats none).
type At = Option<usize>;

fn name(at: At, f: &str) -> String {
    match at {
        None => f.to_string(),
        Some(i) => format!("episodes[{i}].{f}"),
    }
}

thread_local! {
    /// Property names read from every episode object, made into JS strings once (a batch of
    /// 1,000 episodes would otherwise create 8,000 of them).
    static KEYS: Vec<(&'static str, JsValue)> = [
        "namespace", "role", "text", "eventTime", "embedding", "metadata", "importance", "tags",
    ]
    .iter()
    .map(|k| (*k, JsValue::from_str(k)))
    .collect();
}

fn get(o: &JsValue, key: &str) -> JsValue {
    let cached = KEYS.with(|keys| {
        keys.iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| Reflect::get(o, v))
    });
    cached
        .unwrap_or_else(|| Reflect::get(o, &JsValue::from_str(key)))
        .unwrap_or(JsValue::UNDEFINED)
}

fn opt_string(o: &JsValue, key: &str, at: At) -> Result<Option<String>, JsValue> {
    let v = get(o, key);
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    v.as_string()
        .map(Some)
        .ok_or_else(|| invalid(&name(at, key), "must be a string"))
}

fn req_string(o: &JsValue, key: &str, at: At) -> Result<String, JsValue> {
    opt_string(o, key, at)?.ok_or_else(|| invalid(&name(at, key), "is required"))
}

fn opt_number(o: &JsValue, key: &str, at: At) -> Result<Option<f64>, JsValue> {
    let v = get(o, key);
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    v.as_f64()
        .map(Some)
        .ok_or_else(|| invalid(&name(at, key), "must be a number"))
}

fn opt_embedding(o: &JsValue, key: &str, at: At) -> Result<Option<Vec<f32>>, JsValue> {
    let v = get(o, key);
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    v.dyn_ref::<Float32Array>()
        .map(|a| Some(a.to_vec()))
        .ok_or_else(|| invalid(&name(at, key), "must be a Float32Array"))
}

fn opt_metadata(o: &JsValue, at: At) -> Result<Option<Metadata>, JsValue> {
    let v = get(o, "metadata");
    if v.is_undefined() {
        return Ok(None);
    }
    let field = || name(at, "metadata");
    if !v.is_object() || Array::is_array(&v) || v.is_function() {
        return Err(invalid(&field(), "metadata must be a JSON object"));
    }
    let text = js_sys::JSON::stringify(&v)
        .map_err(|_| invalid(&field(), "metadata is not serializable as JSON (cycle?)"))?;
    let text: String = text.into();
    Metadata::parse(&text).map(Some).map_err(|e| {
        store_err(match e {
            StoreError::InvalidInput { reason, .. } => StoreError::InvalidInput {
                field: field(),
                reason,
            },
            other => other,
        })
    })
}

fn opt_tags(o: &JsValue, at: At) -> Result<Option<Vec<String>>, JsValue> {
    let v = get(o, "tags");
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    if !Array::is_array(&v) {
        return Err(invalid(&name(at, "tags"), "must be an array of strings"));
    }
    Array::from(&v)
        .iter()
        .enumerate()
        .map(|(i, t)| {
            t.as_string()
                .ok_or_else(|| invalid(&format!("{}[{i}]", name(at, "tags")), "must be a string"))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn new_episode(o: &JsValue, at: At) -> Result<NewEpisode, JsValue> {
    if !o.is_object() {
        return Err(invalid(
            &at.map_or_else(|| "episode".to_string(), |i| format!("episodes[{i}]")),
            "must be an object",
        ));
    }
    Ok(NewEpisode {
        namespace: req_string(o, "namespace", at)?,
        role: opt_string(o, "role", at)?.unwrap_or_default(),
        text: req_string(o, "text", at)?,
        event_time: opt_number(o, "eventTime", at)?,
        embedding: opt_embedding(o, "embedding", at)?
            .ok_or_else(|| invalid(&name(at, "embedding"), "is required (a Float32Array)"))?,
        metadata: opt_metadata(o, at)?.unwrap_or_default(),
        importance: opt_number(o, "importance", at)?.map(|v| v as f32),
        tags: opt_tags(o, at)?.unwrap_or_default(),
    })
}

fn set(o: &Object, k: &str, v: &JsValue) {
    let _ = Reflect::set(o, &JsValue::from_str(k), v);
}

fn episode_js(e: &Episode) -> JsValue {
    let o = Object::new();
    set(&o, "id", &JsValue::from_f64(e.id as f64));
    set(&o, "namespace", &JsValue::from_str(&e.namespace));
    set(&o, "role", &JsValue::from_str(&e.role));
    set(&o, "text", &JsValue::from_str(&e.text));
    set(&o, "eventTime", &JsValue::from_f64(e.event_time));
    set(&o, "insertTime", &JsValue::from_f64(e.insert_time));
    set(
        &o,
        "embedding",
        &Float32Array::from(e.embedding.as_slice()).into(),
    );
    let meta = js_sys::JSON::parse(e.metadata.as_str()).unwrap_or_else(|_| Object::new().into());
    set(&o, "metadata", &meta);
    set(&o, "importance", &JsValue::from_f64(e.importance as f64));
    let tags: Array = e.tags.iter().map(|t| JsValue::from_str(t)).collect();
    set(&o, "tags", &tags);
    o.into()
}

fn ids_js(ids: &[u64]) -> Array {
    ids.iter().map(|&i| JsValue::from_f64(i as f64)).collect()
}

fn ids_from(v: &JsValue, field: &str) -> Result<Vec<u64>, JsValue> {
    if !Array::is_array(v) && !v.is_instance_of::<Float64Array>() {
        return Err(invalid(field, "must be an array of ids"));
    }
    let it: Vec<JsValue> = if Array::is_array(v) {
        Array::from(v).iter().collect()
    } else {
        v.unchecked_ref::<Float64Array>()
            .to_vec()
            .into_iter()
            .map(JsValue::from_f64)
            .collect()
    };
    it.iter()
        .enumerate()
        .map(|(i, x)| id_from(x, &format!("{field}[{i}]")))
        .collect()
}

fn id_from(v: &JsValue, field: &str) -> Result<u64, JsValue> {
    match v.as_f64() {
        Some(x) if x >= 0.0 && x.fract() == 0.0 && x <= crate::store::episode::MAX_ID as f64 => {
            Ok(x as u64)
        }
        _ => Err(invalid(field, "an id must be a non-negative integer")),
    }
}

fn vectors_js(v: &VectorSet, vectors: Option<Float32Array>) -> JsValue {
    let o = Object::new();
    set(&o, "dims", &JsValue::from_f64(v.dims as f64));
    set(&o, "seq", &JsValue::from_f64(v.seq as f64));
    let ids: Vec<f64> = v.ids.iter().map(|&i| i as f64).collect();
    set(&o, "ids", &Float64Array::from(ids.as_slice()).into());
    let vectors = vectors.unwrap_or_else(|| Float32Array::from(v.vectors.as_slice()));
    set(&o, "vectors", &vectors.into());
    let ns: Array = v.namespaces.iter().map(|s| JsValue::from_str(s)).collect();
    set(&o, "namespaces", &ns);
    set(
        &o,
        "namespaceOf",
        &Uint32Array::from(v.namespace_of.as_slice()).into(),
    );
    set(
        &o,
        "eventTime",
        &Float64Array::from(v.event_time.as_slice()).into(),
    );
    o.into()
}

/// The episodic store on IndexedDB.
#[wasm_bindgen]
pub struct Store {
    inner: Rc<Core>,
}

#[wasm_bindgen]
impl Store {
    /// `null`, or what the browser said when it discarded this store's data before this open
    /// (`"total: <message>"`; Chromium deletes an IndexedDB backing store it finds corrupt and
    /// reopens it empty), followed, when the store restored itself from its journal, by
    /// `"; restored from the journal: <n> episodes up to sequence <seq>"` (also when the database
    /// was missing or behind its journal without the browser saying so).
    #[wasm_bindgen(getter, js_name = dataLoss)]
    pub fn data_loss(&self) -> Option<String> {
        let lost = self.inner.backend().data_loss();
        match self.inner.recovery() {
            Some(r) => Some(format!(
                "{}; restored from the journal: {} episodes up to sequence {}{}",
                lost.as_deref()
                    .unwrap_or("total: the database was missing or behind its journal"),
                r.episodes,
                r.seq,
                if r.gaps > 0 {
                    format!(
                        " ({} later journal entries not replayed: a sequence before them is missing)",
                        r.gaps
                    )
                } else {
                    String::new()
                }
            )),
            None => lost,
        }
    }

    /// `'opfs'` when the store keeps its journal (a second copy of every committed write, from
    /// which it restores itself if the browser discards its database) in the Origin Private File
    /// System, `'off'` where that is not available (the store works as before, without it).
    #[wasm_bindgen(getter)]
    pub fn journal(&self) -> String {
        if self.inner.journal_on() {
            "opfs"
        } else {
            "off"
        }
        .to_string()
    }

    /// Open (or create, with `options.dims`) the store `name` in this origin's IndexedDB.
    pub async fn open(name: String, options: Option<StoreOptionsJs>) -> Result<Store, JsValue> {
        let mut opts = OpenOptions::default();
        if let Some(o) = options {
            let o: JsValue = o.into();
            if let Some(d) = opt_number(&o, "dims", None)? {
                if d < 1.0 || d.fract() != 0.0 {
                    return Err(invalid("dims", "dims must be a positive integer"));
                }
                opts.dims = Some(d as usize);
            }
            if let Some(d) = opt_string(&o, "durability", None)? {
                opts.durability = Durability::parse(&d)
                    .ok_or_else(|| invalid("durability", "must be 'strict' or 'relaxed'"))?;
            }
            if let Some(c) = opt_number(&o, "segmentCapacity", None)? {
                opts.segment_capacity = Some(c.max(0.0) as usize);
            }
            if let Some(c) = opt_number(&o, "pageCapacity", None)? {
                opts.page_capacity = Some(c.max(0.0) as usize);
            }
        }
        let backend = IdbBackend::open(&name).await.map_err(store_err)?;
        let core = Rc::new(Core::open(backend, opts).await.map_err(store_err)?);
        // Journal compactions run as their own task, after the write that made them due.
        let weak = Rc::downgrade(&core);
        core.set_compaction_hook(Some(Rc::new(move || {
            if let Some(c) = weak.upgrade() {
                wasm_bindgen_futures::spawn_local(async move {
                    let _ = c.compact_due().await;
                });
            }
        })));
        // Segment merges are deferred out of writes and run once writes pause for
        // TIDY_IDLE_MS (each write that leaves merges due restarts the wait).
        let weak = Rc::downgrade(&core);
        let generation = Rc::new(std::cell::Cell::new(0u64));
        core.set_tidy_hook(Some(Rc::new(move || {
            let g = generation.get().wrapping_add(1);
            generation.set(g);
            let (weak, generation) = (weak.clone(), generation.clone());
            wasm_bindgen_futures::spawn_local(async move {
                crate::store::opfs::sleep_ms(TIDY_IDLE_MS).await;
                if generation.get() != g {
                    return;
                }
                if let Some(c) = weak.upgrade() {
                    let _ = c.tidy().await;
                }
            });
        })));
        Ok(Store { inner: core })
    }

    /// Delete the store `name` (other tabs holding it open are closed and told).
    #[wasm_bindgen(js_name = deleteStore)]
    pub async fn delete_store(name: String) -> Result<(), JsValue> {
        IdbBackend::delete_database(&name).await.map_err(store_err)
    }

    /// The store's name.
    #[wasm_bindgen(getter)]
    pub fn name(&self) -> String {
        self.inner.backend().store_name().to_string()
    }

    /// Embedding dimension.
    #[wasm_bindgen(getter)]
    pub fn dims(&self) -> usize {
        self.inner.dims()
    }

    /// Store one episode; resolves to its id.
    pub async fn put(&self, episode: NewEpisodeJs) -> Result<f64, JsValue> {
        let e = new_episode(&episode.into(), None)?;
        let s = self.inner.clone();
        s.put(e).await.map(|id| id as f64).map_err(store_err)
    }

    /// Store a batch atomically (all or nothing); resolves to the ids in order.
    #[wasm_bindgen(js_name = putMany)]
    pub async fn put_many(&self, episodes: NewEpisodesJs) -> Result<IdsJs, JsValue> {
        let v: JsValue = episodes.into();
        if !Array::is_array(&v) {
            return Err(invalid("episodes", "must be an array"));
        }
        let eps = Array::from(&v)
            .iter()
            .enumerate()
            .map(|(i, e)| new_episode(&e, Some(i)))
            .collect::<Result<Vec<_>, _>>()?;
        let s = self.inner.clone();
        let ids = s.put_many(eps).await.map_err(store_err)?;
        Ok(ids_js(&ids).unchecked_into())
    }

    /// One episode, or `undefined`.
    pub async fn get(&self, id: f64) -> Result<MaybeEpisodeJs, JsValue> {
        let id = id_from(&JsValue::from_f64(id), "id")?;
        let s = self.inner.clone();
        Ok(match s.get(id).await.map_err(store_err)? {
            Some(e) => episode_js(&e).unchecked_into(),
            None => JsValue::UNDEFINED.unchecked_into(),
        })
    }

    /// Several episodes, aligned with `ids` (`undefined` where missing).
    #[wasm_bindgen(js_name = getMany)]
    pub async fn get_many(&self, ids: IdsJs) -> Result<MaybeEpisodesJs, JsValue> {
        let ids = ids_from(&ids.into(), "ids")?;
        let s = self.inner.clone();
        let got = s.get_many(&ids).await.map_err(store_err)?;
        let out: Array = got
            .iter()
            .map(|e| e.as_ref().map_or(JsValue::UNDEFINED, episode_js))
            .collect();
        Ok(out.unchecked_into())
    }

    /// Change text / role / metadata / importance / embedding / tags of an episode.
    pub async fn update(&self, id: f64, patch: PatchJs) -> Result<(), JsValue> {
        let id = id_from(&JsValue::from_f64(id), "id")?;
        let p: JsValue = patch.into();
        if !p.is_object() {
            return Err(invalid("patch", "must be an object"));
        }
        let patch = Patch {
            role: opt_string(&p, "role", None)?,
            text: opt_string(&p, "text", None)?,
            metadata: opt_metadata(&p, None)?,
            importance: opt_number(&p, "importance", None)?.map(|v| v as f32),
            embedding: opt_embedding(&p, "embedding", None)?,
            tags: opt_tags(&p, None)?,
        };
        let s = self.inner.clone();
        s.update(id, patch).await.map_err(store_err)
    }

    /// Delete one episode (its text, metadata and vector bytes are removed).
    pub async fn delete(&self, id: f64) -> Result<(), JsValue> {
        let id = id_from(&JsValue::from_f64(id), "id")?;
        let s = self.inner.clone();
        s.delete(id).await.map_err(store_err)
    }

    /// Delete several episodes atomically (`NOT_FOUND`, nothing deleted, if one is missing).
    #[wasm_bindgen(js_name = deleteMany)]
    pub async fn delete_many(&self, ids: IdsJs) -> Result<(), JsValue> {
        let ids = ids_from(&ids.into(), "ids")?;
        let s = self.inner.clone();
        s.delete_many(&ids).await.map_err(store_err)
    }

    /// Delete every episode of a namespace; resolves to how many.
    #[wasm_bindgen(js_name = deleteNamespace)]
    pub async fn delete_namespace(&self, namespace: String) -> Result<f64, JsValue> {
        let s = self.inner.clone();
        s.delete_namespace(&namespace)
            .await
            .map(|n| n as f64)
            .map_err(store_err)
    }

    /// Episodes of a namespace in an event-time range, oldest first (or newest with `reverse`).
    pub async fn scan(&self, options: ScanJs) -> Result<EpisodesJs, JsValue> {
        let o: JsValue = options.into();
        let limit = opt_number(&o, "limit", None)?;
        let q = ScanQuery {
            namespace: req_string(&o, "namespace", None)?,
            from: opt_number(&o, "from", None)?,
            to: opt_number(&o, "to", None)?,
            limit: limit.map(|l| l.max(0.0) as usize),
            reverse: get(&o, "reverse").is_truthy(),
        };
        let s = self.inner.clone();
        let eps = s.scan(&q).await.map_err(store_err)?;
        let out: Array = eps.iter().map(episode_js).collect();
        Ok(out.unchecked_into())
    }

    /// Episodes stored (all, or in `namespace`).
    pub async fn count(&self, namespace: Option<String>) -> Result<f64, JsValue> {
        let s = self.inner.clone();
        s.count(namespace.as_deref())
            .await
            .map(|n| n as f64)
            .map_err(store_err)
    }

    /// The whole store as a portable file.
    pub async fn export(&self) -> Result<Uint8Array, JsValue> {
        let s = self.inner.clone();
        let b = s.export().await.map_err(store_err)?;
        Ok(Uint8Array::from(b.as_slice()))
    }

    /// Import an export (validated whole first; nothing written on error).
    pub async fn import(&self, bytes: Uint8Array) -> Result<JsValue, JsValue> {
        let b = bytes.to_vec();
        let s = self.inner.clone();
        let r = s.import(&b).await.map_err(store_err)?;
        let o = Object::new();
        set(&o, "imported", &JsValue::from_f64(r.imported as f64));
        set(&o, "ids", &ids_js(&r.ids));
        set(&o, "remapped", &JsValue::from_bool(r.remapped));
        Ok(o.into())
    }

    /// Delete everything (ids keep increasing).
    pub async fn clear(&self) -> Result<(), JsValue> {
        let s = self.inner.clone();
        s.clear().await.map_err(store_err)
    }

    /// Run now the segment merges that writes deferred (they also run by themselves once writes
    /// pause for 400 ms): afterwards the next cold open reads the fewest records. Writes nothing
    /// when nothing is due.
    pub async fn tidy(&self) -> Result<(), JsValue> {
        let s = self.inner.clone();
        s.tidy().await.map_err(store_err)
    }

    /// Close this connection.
    pub fn close(&self) {
        self.inner.close();
    }

    /// Delete the whole store.
    pub async fn destroy(&self) -> Result<(), JsValue> {
        let s = self.inner.clone();
        s.destroy().await.map_err(store_err)
    }

    /// The change sequence now.
    pub async fn seq(&self) -> Result<f64, JsValue> {
        let s = self.inner.clone();
        s.seq().await.map(|n| n as f64).map_err(store_err)
    }

    /// What changed after sequence `after` (see `onChange`).
    #[wasm_bindgen(js_name = changesSince)]
    pub async fn changes_since(&self, after: f64) -> Result<ChangesJs, JsValue> {
        let after = id_from(&JsValue::from_f64(after), "after")?;
        let s = self.inner.clone();
        let c = s.changes_since(after).await.map_err(store_err)?;
        let o = Object::new();
        set(&o, "seq", &JsValue::from_f64(c.seq as f64));
        set(&o, "reset", &JsValue::from_bool(c.reset));
        set(&o, "upserted", &ids_js(&c.upserted));
        set(&o, "deleted", &ids_js(&c.deleted));
        Ok(JsValue::from(o).unchecked_into())
    }

    /// Every vector, packed (`ids`, `vectors` [N * dims], namespaces, event times, `seq`).
    #[wasm_bindgen(js_name = loadVectors)]
    pub async fn load_vectors(&self) -> Result<VectorSetJs, JsValue> {
        let s = self.inner.clone();
        let mut sink = JsVectorSink::default();
        let v = s.load_vectors_into(&mut sink).await.map_err(store_err)?;
        Ok(vectors_js(&v, sink.into_array()).unchecked_into())
    }

    /// The vectors of `ids` that exist (e.g. `changes.upserted`).
    #[wasm_bindgen(js_name = loadRows)]
    pub async fn load_rows(&self, ids: IdsJs) -> Result<VectorSetJs, JsValue> {
        let ids = ids_from(&ids.into(), "ids")?;
        let s = self.inner.clone();
        let v = s.load_rows(&ids).await.map_err(store_err)?;
        Ok(vectors_js(&v, None).unchecked_into())
    }

    /// `callback(seq)` after another tab commits a write (`null` to stop).
    #[wasm_bindgen(js_name = onChange)]
    pub fn on_change(&self, callback: Option<Function>) {
        self.inner.on_remote_change(callback.map(|f| {
            Rc::new(move |seq: u64| {
                let _ = f.call1(&JsValue::NULL, &JsValue::from_f64(seq as f64));
            }) as Rc<dyn Fn(u64)>
        }));
    }

    /// `callback(error)` when this connection is closed from outside (another tab upgraded or
    /// deleted the store): `error.code` is `STORE_UPGRADED_ELSEWHERE` /
    /// `STORE_DESTROYED_ELSEWHERE`. Every later call rejects with that error.
    #[wasm_bindgen(js_name = onClose)]
    pub fn on_close(&self, callback: Option<Function>) {
        self.inner.backend().set_close_listener(callback.map(|f| {
            Rc::new(move |e: StoreError| {
                let _ = f.call1(&JsValue::NULL, &store_err(e));
            }) as Rc<dyn Fn(StoreError)>
        }));
    }

    /// Persist an engine blob (`bytes`) under `name` with its format `version` and the store
    /// `seq` it reflects.
    #[wasm_bindgen(js_name = putBlob)]
    pub async fn put_blob(
        &self,
        name: String,
        version: u32,
        seq: f64,
        bytes: Uint8Array,
    ) -> Result<(), JsValue> {
        let seq = id_from(&JsValue::from_f64(seq), "seq")?;
        let b = bytes.to_vec();
        let s = self.inner.clone();
        s.put_blob(&name, version, seq, &b).await.map_err(store_err)
    }

    /// The engine blob `name`: `{ version, seq, bytes }` or `undefined`.
    #[wasm_bindgen(js_name = getBlob)]
    pub async fn get_blob(&self, name: String) -> Result<JsValue, JsValue> {
        let s = self.inner.clone();
        Ok(match s.get_blob(&name).await.map_err(store_err)? {
            None => JsValue::UNDEFINED,
            Some(b) => {
                let o = Object::new();
                set(&o, "version", &JsValue::from_f64(b.version as f64));
                set(&o, "seq", &JsValue::from_f64(b.seq as f64));
                set(&o, "bytes", &Uint8Array::from(b.bytes.as_slice()).into());
                o.into()
            }
        })
    }

    /// Delete the engine blob `name`.
    #[wasm_bindgen(js_name = deleteBlob)]
    pub async fn delete_blob(&self, name: String) -> Result<(), JsValue> {
        let s = self.inner.clone();
        s.delete_blob(&name).await.map_err(store_err)
    }

    /// Counters this connection last saw: `{ seq, live, segments, pages, nextId, tidyDue }` (no I/O;
    /// `tidyDue`: segment merges deferred by writes wait for a pause or `tidy()`).
    pub fn stats(&self) -> JsValue {
        let st = self.inner.stats();
        let o = Object::new();
        set(&o, "seq", &JsValue::from_f64(st.seq as f64));
        set(&o, "live", &JsValue::from_f64(st.live as f64));
        set(&o, "segments", &JsValue::from_f64(st.segments as f64));
        set(&o, "pages", &JsValue::from_f64(st.pages as f64));
        set(&o, "nextId", &JsValue::from_f64(st.next_id as f64));
        set(&o, "tidyDue", &JsValue::from_bool(self.inner.tidy_due()));
        o.into()
    }
}
