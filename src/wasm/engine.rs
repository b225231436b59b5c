//! The `Mnemo` class: the memory engine for JS. Thin: converts option objects, `Float32Array`s
//! and plain objects into the core types of [`crate::engine::mnemo`], runs the caller's async
//! embedder when a call needs one, calls the engine, converts hits back, and turns errors into
//! `Error`s with a stable `code` (and `field` for validation errors).

use std::rc::{Rc, Weak};

use js_sys::{Array, Float32Array, Function, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

#[cfg(feature = "encoder")]
use super::embedder::EncoderSpec;
use super::errors::mnemo_error;
use crate::engine::fusion::Weights;
use crate::engine::mnemo::{
    ContextConfig, EmbedderKind, FetchPolicy, Filter, Memory, MnemoError, MnemoOptions, RecallHit,
    RecallQuery,
};
use crate::store::idb::IdbBackend;
use crate::store::{Durability, Metadata, Patch};
use crate::{Compute, Prefer};

type Core = crate::engine::Mnemo<IdbBackend>;

#[wasm_bindgen(typescript_custom_section)]
const TS_MNEMO: &'static str = r#"
/**
 * An embedder: `'hashed-ngrams'` (built in: no model, deterministic, hashed word and character
 * n-grams into `dims` buckets; lexical quality, good for demos and tests), an async function
 * that embeds a batch of texts (for instance with transformers.js) and resolves to one
 * `Float32Array` of `dims` values per text, or the built-in text encoder
 * (`{ model: 'all-MiniLM-L6-v2', weights, vocab }`, see `EncoderOptions`).
 */
export type Embedder = 'hashed-ngrams' | ((texts: string[]) => Promise<Float32Array[]> | Float32Array[]) | EncoderOptions;

/**
 * The built-in text encoder: all-MiniLM-L6-v2 sentence embeddings (384 dims, L2-normalised,
 * as sentence-transformers) computed by mnemo itself, on WebGPU or the CPU path. Pass the
 * model's files once (`weights` and `vocab`): they are cached in this origin's IndexedDB
 * (database `mnemo-models`), and a later open with `{ model }` alone loads them from there
 * (`MODEL_NOT_CACHED` if they are not). The store's `dims` must be 384 (the default with this
 * embedder; `DIMENSION_MISMATCH` otherwise).
 */
export interface EncoderOptions {
  /** The model: `'all-MiniLM-L6-v2'` (the only one built in). */
  model: 'all-MiniLM-L6-v2';
  /**
   * Its `model.safetensors` (f32, F16 or BF16): the bytes, a `Blob`, or a URL on the page's
   * origin (fetched with `mode: 'same-origin'`). Bad bytes reject with `ENCODER_BAD_WEIGHTS`,
   * `ENCODER_MISSING_TENSOR` or `ENCODER_TENSOR_MISMATCH` and are not cached. Requires `vocab`.
   */
  weights?: Uint8Array | ArrayBuffer | Blob | string;
  /** Its `vocab.txt`: the text (a string), its bytes, or a `Blob`. Requires `weights`. */
  vocab?: string | Uint8Array | ArrayBuffer | Blob;
  /**
   * Where the encoder runs: `'auto'` (default: WebGPU on a hardware adapter, else the CPU path;
   * on software adapters such as SwiftShader the GPU path is slower), `'webgpu'` (whenever the
   * engine has a device) or `'cpu'`.
   */
  backend?: 'auto' | 'webgpu' | 'cpu';
  /** Cache the given files in IndexedDB for later opens (default true). */
  cache?: boolean;
}

/** The engine's embedder, as reported by `stats()`. */
export interface EmbedderStats {
  /** `'hashed-ngrams'`, `'all-MiniLM-L6-v2'` or `'function'` (the caller's). */
  name: string;
  /** Where it runs (`null` for the caller's function). */
  backend: 'webgpu' | 'cpu' | null;
}

/** Weights of the four score parts (each part is in [0, 1]; `score = Σ weight · part`). */
export interface Weights {
  /** Weight of the cosine similarity (max-scaled: the best vector match gets 1). */
  vector?: number;
  /** Weight of BM25 (max-scaled: the best lexical match gets 1; 0 without a query word). */
  lexical?: number;
  /** Weight of recency: `0.5^(age / halfLife)` from the episode's `time`. */
  recency?: number;
  /** Weight of the episode's importance. */
  importance?: number;
}

/** Options of `Mnemo.open` (and `Mnemo.import`). */
export interface MnemoOptions {
  /** Embedding dimension: required to create a store (384 by default with the built-in encoder); checked against an existing one. */
  dims?: number;
  /**
   * Computes embeddings when `remember` / `recall` / `update` get text without one. Without an
   * embedder every `remember` must carry its `embedding`, and a text-only recall is lexical.
   */
  embedder?: Embedder;
  /** `'webgpu'` (default): use WebGPU when an adapter exists; `'cpu'`: never acquire a GPU. */
  prefer?: 'webgpu' | 'cpu';
  /**
   * Which path answers vector search: `'auto'` (default: per query — the hierarchical index when
   * the filter allows at least 250,000 episodes, else the exact flat top-k, on WebGPU only for a
   * hardware adapter and at least 16 MiB of allowed vectors: a WebGPU readback costs
   * milliseconds, so small stores stay on the CPU), `'webgpu'` (the exact flat top-k on the GPU
   * whenever there is one) or `'cpu'` (never the GPU). `stats().backend` / `stats().index` say
   * what ran last.
   */
  backend?: 'auto' | 'webgpu' | 'cpu';
  /**
   * Default fusion weights; missing fields keep their defaults. Default
   * `{ vector: 0.55, lexical: 0.45, recency: 0, importance: 0.05 }` (chosen on LoCoMo with
   * MiniLM embeddings), or `{ vector: 0.35, lexical: 0.65, recency: 0, importance: 0.05 }` with the
   * `'hashed-ngrams'` embedder.
   */
  weights?: Weights;
  /** Recency half-life in milliseconds (default 30 days). */
  halfLife?: number;
  /** Fading context (used by `recall({ context: true })`). */
  context?: ContextOptions;
  /** `'strict'` (default: flushed to disk before a write resolves) or `'relaxed'`. */
  durability?: 'strict' | 'relaxed';
}

/** Fading-context settings. */
export interface ContextOptions {
  /** Remembered messages after which one's weight in the context has halved (default 8). */
  halfLife?: number;
  /** Weight of the context mixed into the query embedding (default 0.2). */
  mix?: number;
}

/** Something to remember. */
export interface MemoryInput {
  /** The text (1..=65,536 bytes of UTF-8, not only whitespace). */
  text: string;
  /** Its embedding (`dims` values); computed by the embedder when absent. */
  embedding?: Float32Array;
  /** A conversation, user or agent (1..=256 bytes). Default `'default'`. */
  namespace?: string;
  /** When it happened, ms since the epoch. Default: now. */
  time?: number;
  /** Role or speaker (`'user'`, `'assistant'`, a name...). */
  role?: string;
  /** Any JSON object (<= 64 KiB as JSON). */
  meta?: Record<string, unknown>;
  /** In [0, 1] (default 0.5). */
  importance?: number;
  /** Labels for filtering (<= 64, each 1..=128 bytes). */
  tags?: string[];
}

/** Fields of `update`; absent fields stay as they are. Namespace and time cannot change. */
export interface MemoryPatch {
  /** New text (re-embedded by the embedder when no `embedding` is given). */
  text?: string;
  /** New embedding. */
  embedding?: Float32Array;
  /** New role. */
  role?: string;
  /** New metadata (replaces the whole object). */
  meta?: Record<string, unknown>;
  /** New importance. */
  importance?: number;
  /** New tags (replace the whole list). */
  tags?: string[];
}

/** A recall. Give `embedding`, `text`, both, or neither (then: most recent / important). */
export interface RecallOptions {
  /** Query embedding; computed from `text` by the embedder when absent. */
  embedding?: Float32Array;
  /** Query text (BM25, and the embedder). */
  text?: string;
  /** Hits wanted (1..=10000, default 10). */
  k?: number;
  /** Only this namespace (or these). Default: every namespace. */
  namespace?: string | string[];
  /** Only episodes with `time >= since`. */
  since?: number;
  /** Only episodes with `time <= until`. */
  until?: number;
  /** Only episodes carrying at least one of these tags. */
  tags?: string[];
  /** Weights for this query; missing fields keep the engine's. */
  weights?: Weights;
  /** Recency half-life for this query, ms. */
  halfLife?: number;
  /** "Now" for recency, ms since the epoch (default: the clock). */
  now?: number;
  /** Mix the namespaces' fading context into the query (off by default: it did not help on LoCoMo). */
  context?: boolean;
  /** Vector-search path for this query (see `MnemoOptions.backend`). */
  backend?: 'auto' | 'webgpu' | 'cpu';
  /** `false`: hits without `text`, `role`, `meta`, `tags` (no store read; for bulk ranking). */
  payload?: boolean;
}

/** The parts of a hit's score, each in [0, 1]; `score = Σ weight · part`. */
export interface ScoreParts {
  /** Cosine similarity, max-scaled over the candidates. */
  vector: number;
  /** BM25, max-scaled over the candidates (0 without a query word). */
  lexical: number;
  /** `0.5^(age / halfLife)`. */
  recency: number;
  /** The episode's importance. */
  importance: number;
}

/** One recalled memory. */
export interface RecallHit {
  /** Episode id (stable, increasing). */
  id: number;
  /** Fused score. */
  score: number;
  /** The text (absent with `payload: false`). */
  text?: string;
  /** Namespace. */
  namespace: string;
  /** When it happened, ms since the epoch. */
  time: number;
  /** Role (absent with `payload: false`). */
  role?: string;
  /** Metadata (absent with `payload: false`). */
  meta?: Record<string, unknown>;
  /** Tags (absent with `payload: false`). */
  tags?: string[];
  /** Importance. */
  importance: number;
  /** The score's parts. */
  parts: ScoreParts;
}

/** Counters of an open engine (no I/O). */
export interface MnemoStats {
  /** Episodes remembered (live). */
  count: number;
  /** Embedding dimension. */
  dims: number;
  /** Namespaces with episodes. */
  namespaces: number;
  /** Where the last recall's vector search ran. */
  backend: 'webgpu' | 'cpu';
  /** How the last recall found its vector candidates: `'flat'` (exact memory-fetch top-k), `'hierarchical'` (k-means tree index, approximate, large stores), `'exact'` (no vector search ran). */
  index: 'exact' | 'flat' | 'hierarchical';
  /** Whether a WebGPU device is available to the engine. */
  gpu: boolean;
  /** The WebGPU adapter, when there is one. */
  adapter: AdapterInfo | null;
  /** Estimated bytes the store holds for this engine (records, vectors, derived indexes). */
  bytesOnDisk: number;
  /** The store change sequence the in-memory indexes reflect. */
  seq: number;
  /** The embedder, if the engine was opened with one. */
  embedder: EmbedderStats | null;
}

/** What an import did. */
export interface ImportResult {
  /** Episodes imported. */
  imported: number;
  /** Their ids in this store, in file order. */
  ids: number[];
  /** True if the file's ids were taken already and fresh ones were assigned (same order). */
  remapped: boolean;
}
"#;

#[wasm_bindgen]
extern "C" {
    /// `MnemoOptions`.
    #[wasm_bindgen(typescript_type = "MnemoOptions")]
    pub type MnemoOptionsJs;
    /// `MemoryInput`.
    #[wasm_bindgen(typescript_type = "MemoryInput")]
    pub type MemoryInputJs;
    /// `MemoryInput[]`.
    #[wasm_bindgen(typescript_type = "MemoryInput[]")]
    pub type MemoryInputsJs;
    /// `MemoryPatch`.
    #[wasm_bindgen(typescript_type = "MemoryPatch")]
    pub type MemoryPatchJs;
    /// `RecallOptions`.
    #[wasm_bindgen(typescript_type = "RecallOptions")]
    pub type RecallOptionsJs;
    /// `RecallHit[]`.
    #[wasm_bindgen(typescript_type = "RecallHit[]")]
    pub type RecallHitsJs;
    /// `MnemoStats`.
    #[wasm_bindgen(typescript_type = "MnemoStats")]
    pub type MnemoStatsJs;
    /// `number[]`.
    #[wasm_bindgen(typescript_type = "number[]")]
    pub type IdArrayJs;
    /// `string[]`.
    #[wasm_bindgen(typescript_type = "string[]")]
    pub type TextArrayJs;
    /// `Float32Array[]`.
    #[wasm_bindgen(typescript_type = "Float32Array[]")]
    pub type VectorArrayJs;
    /// `ImportResult`.
    #[wasm_bindgen(typescript_type = "ImportResult")]
    pub type ImportResultJs;
    /// `() => void`.
    #[wasm_bindgen(typescript_type = "(() => void) | null | undefined")]
    pub type ChangeCallbackJs;
}

fn invalid(field: &str, reason: &str) -> JsValue {
    mnemo_error(&MnemoError::invalid(field, reason))
}

fn err(e: MnemoError) -> JsValue {
    mnemo_error(&e)
}

fn name(prefix: &str, f: &str) -> String {
    if prefix.is_empty() {
        f.to_string()
    } else {
        format!("{prefix}.{f}")
    }
}

fn get(o: &JsValue, key: &str) -> JsValue {
    Reflect::get(o, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

fn absent(v: &JsValue) -> bool {
    v.is_undefined() || v.is_null()
}

fn opt_string(o: &JsValue, key: &str, prefix: &str) -> Result<Option<String>, JsValue> {
    let v = get(o, key);
    if absent(&v) {
        return Ok(None);
    }
    v.as_string()
        .map(Some)
        .ok_or_else(|| invalid(&name(prefix, key), "must be a string"))
}

fn opt_number(o: &JsValue, key: &str, prefix: &str) -> Result<Option<f64>, JsValue> {
    let v = get(o, key);
    if absent(&v) {
        return Ok(None);
    }
    v.as_f64()
        .map(Some)
        .ok_or_else(|| invalid(&name(prefix, key), "must be a number"))
}

fn opt_embedding(o: &JsValue, key: &str, prefix: &str) -> Result<Option<Vec<f32>>, JsValue> {
    let v = get(o, key);
    if absent(&v) {
        return Ok(None);
    }
    v.dyn_ref::<Float32Array>()
        .map(|a| Some(a.to_vec()))
        .ok_or_else(|| invalid(&name(prefix, key), "must be a Float32Array"))
}

fn opt_meta(o: &JsValue, prefix: &str) -> Result<Option<Metadata>, JsValue> {
    let v = get(o, "meta");
    let field = name(prefix, "meta");
    if absent(&v) {
        return Ok(None);
    }
    if !v.is_object() || Array::is_array(&v) || v.is_function() {
        return Err(invalid(&field, "must be a JSON object"));
    }
    let text: String = js_sys::JSON::stringify(&v)
        .map_err(|_| invalid(&field, "is not serializable as JSON (cycle?)"))?
        .into();
    Metadata::parse_field(&text, &field)
        .map(Some)
        .map_err(|e| err(e.into()))
}

fn opt_strings(o: &JsValue, key: &str, prefix: &str) -> Result<Option<Vec<String>>, JsValue> {
    let v = get(o, key);
    if absent(&v) {
        return Ok(None);
    }
    let field = name(prefix, key);
    if !Array::is_array(&v) {
        return Err(invalid(&field, "must be an array of strings"));
    }
    Array::from(&v)
        .iter()
        .enumerate()
        .map(|(i, t)| {
            t.as_string()
                .ok_or_else(|| invalid(&format!("{field}[{i}]"), "must be a string"))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn id_from(x: f64, field: &str) -> Result<u64, JsValue> {
    if x >= 0.0 && x.fract() == 0.0 && x <= crate::store::episode::MAX_ID as f64 {
        Ok(x as u64)
    } else {
        Err(invalid(field, "an id must be a non-negative safe integer"))
    }
}

fn ids_from(v: &JsValue, field: &str) -> Result<Vec<u64>, JsValue> {
    if !Array::is_array(v) {
        return Err(invalid(field, "must be an array of ids"));
    }
    Array::from(v)
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let f = format!("{field}[{i}]");
            x.as_f64()
                .ok_or_else(|| invalid(&f, "must be a number"))
                .and_then(|n| id_from(n, &f))
        })
        .collect()
}

fn weights_from(v: &JsValue, field: &str, base: Weights) -> Result<Weights, JsValue> {
    if !v.is_object() {
        return Err(invalid(field, "must be an object"));
    }
    let mut w = base;
    for (key, slot) in [
        ("vector", &mut w.vector),
        ("lexical", &mut w.lexical),
        ("recency", &mut w.recency),
        ("importance", &mut w.importance),
    ] {
        if let Some(x) = opt_number(v, key, field)? {
            *slot = x;
        }
    }
    w.validate().map_err(|e| err(e.into()))?;
    Ok(w)
}

fn fetch_from(o: &JsValue, key: &str) -> Result<Option<FetchPolicy>, JsValue> {
    match opt_string(o, key, "")? {
        None => Ok(None),
        Some(s) => FetchPolicy::parse(&s)
            .map(Some)
            .ok_or_else(|| invalid(key, "must be 'auto', 'webgpu' or 'cpu'")),
    }
}

fn set(o: &Object, k: &str, v: &JsValue) {
    let _ = Reflect::set(o, &JsValue::from_str(k), v);
}

/// The caller's embedder, if it is a function.
#[derive(Clone)]
struct JsEmbedder(Function);

impl JsEmbedder {
    /// Embed `texts`: call the function, await a promise, check every vector.
    async fn embed(
        &self,
        texts: &[String],
        dims: usize,
        field: &str,
    ) -> Result<Vec<Vec<f32>>, JsValue> {
        let arr: Array = texts.iter().map(|t| JsValue::from_str(t)).collect();
        let failed = |m: String| err(MnemoError::Embedder(m));
        let mut out = self
            .0
            .call1(&JsValue::NULL, &arr)
            .map_err(|e| failed(format!("the embedder threw: {}", describe(&e))))?;
        if out.is_instance_of::<Promise>() {
            out = JsFuture::from(out.unchecked_into::<Promise>())
                .await
                .map_err(|e| failed(format!("the embedder rejected: {}", describe(&e))))?;
        }
        if !Array::is_array(&out) {
            return Err(failed(
                "the embedder must resolve to an array of Float32Array".into(),
            ));
        }
        let out = Array::from(&out);
        if out.length() as usize != texts.len() {
            return Err(failed(format!(
                "the embedder returned {} vectors for {} texts",
                out.length(),
                texts.len()
            )));
        }
        out.iter()
            .enumerate()
            .map(|(i, v)| {
                let a = v.dyn_into::<Float32Array>().map_err(|_| {
                    failed(format!("vector {i} of the embedder is not a Float32Array"))
                })?;
                if a.length() as usize != dims {
                    return Err(err(MnemoError::DimensionMismatch {
                        field: field.to_string(),
                        expected: dims,
                        got: a.length() as usize,
                    }));
                }
                Ok(a.to_vec())
            })
            .collect()
    }
}

fn describe(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|x| String::from(x.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| "unknown error".into())
}

/// Without the `encoder` feature (the package's default entry) there is no built-in encoder:
/// `embedder: { model }` gets `ENCODER_NOT_IN_BUILD`, naming the entry that has it.
#[cfg(not(feature = "encoder"))]
enum EncoderSpec {}

#[cfg(not(feature = "encoder"))]
impl EncoderSpec {
    fn parse(_: &JsValue) -> Result<EncoderSpec, JsValue> {
        let e = super::errors::to_js_error(
            "ENCODER_NOT_IN_BUILD",
            "embedder: the built-in text encoder is in the package's 'mnemo/encoder' entry \
             (import init, { Mnemo } from 'mnemo/encoder'); this entry has only 'hashed-ngrams' \
             and embedder functions",
        );
        let _ = Reflect::set(
            &e,
            &JsValue::from_str("field"),
            &JsValue::from_str("embedder"),
        );
        Err(e)
    }
}

/// Parsed `MnemoOptions`: the core options, the GPU preference, the caller's embedder function
/// and the built-in encoder to load.
type Parsed = (
    MnemoOptions,
    Prefer,
    Option<JsEmbedder>,
    Option<EncoderSpec>,
);

/// Parse `MnemoOptions`.
fn options_from(o: Option<MnemoOptionsJs>) -> Result<Parsed, JsValue> {
    let mut opts = MnemoOptions::default();
    let mut prefer = Prefer::Gpu;
    let mut js_embedder = None;
    let mut encoder = None;
    let Some(o) = o else {
        return Ok((opts, prefer, js_embedder, encoder));
    };
    let o: JsValue = o.into();
    if absent(&o) {
        return Ok((opts, prefer, js_embedder, encoder));
    }
    if !o.is_object() {
        return Err(invalid("options", "must be an object"));
    }
    if let Some(d) = opt_number(&o, "dims", "")? {
        if d < 1.0 || d.fract() != 0.0 {
            return Err(invalid("dims", "must be a positive integer"));
        }
        opts.dims = Some(d as usize);
    }
    let e = get(&o, "embedder");
    if let Some(f) = e.dyn_ref::<Function>() {
        js_embedder = Some(JsEmbedder(f.clone()));
    } else if let Some(s) = e.as_string() {
        if s != crate::engine::HashedNgrams::NAME {
            return Err(invalid("embedder", "must be 'hashed-ngrams' or a function"));
        }
        opts.embedder = EmbedderKind::HashedNgrams;
    } else if e.is_object() {
        encoder = Some(EncoderSpec::parse(&e)?);
    } else if !absent(&e) {
        return Err(invalid(
            "embedder",
            "must be 'hashed-ngrams', a function or { model: 'all-MiniLM-L6-v2', ... }",
        ));
    }
    if let Some(s) = opt_string(&o, "prefer", "")? {
        prefer = Prefer::parse(&s).ok_or_else(|| invalid("prefer", "must be 'webgpu' or 'cpu'"))?;
    }
    if let Some(f) = fetch_from(&o, "backend")? {
        opts.fetch = f;
    }
    let w = get(&o, "weights");
    if !absent(&w) {
        let base = opts.embedder.default_weights();
        opts.weights = Some(weights_from(&w, "weights", base)?);
    }
    if let Some(h) = opt_number(&o, "halfLife", "")? {
        opts.half_life_ms = h;
    }
    let c = get(&o, "context");
    if !absent(&c) {
        let mut cfg = ContextConfig::default();
        if let Some(h) = opt_number(&c, "halfLife", "context")? {
            cfg.half_life_turns = h as f32;
        }
        if let Some(m) = opt_number(&c, "mix", "context")? {
            cfg.mix = m as f32;
        }
        opts.context = cfg;
    }
    if let Some(d) = opt_string(&o, "durability", "")? {
        opts.durability = Durability::parse(&d)
            .ok_or_else(|| invalid("durability", "must be 'strict' or 'relaxed'"))?;
    }
    Ok((opts, prefer, js_embedder, encoder))
}

fn hit_js(h: &RecallHit) -> JsValue {
    let o = Object::new();
    set(&o, "id", &JsValue::from_f64(h.id as f64));
    set(&o, "score", &JsValue::from_f64(h.score));
    if let Some(p) = &h.payload {
        set(&o, "text", &JsValue::from_str(&p.text));
    }
    set(&o, "namespace", &JsValue::from_str(&h.namespace));
    set(&o, "time", &JsValue::from_f64(h.time));
    if let Some(p) = &h.payload {
        set(&o, "role", &JsValue::from_str(&p.role));
        let meta = js_sys::JSON::parse(p.meta.as_str()).unwrap_or_else(|_| Object::new().into());
        set(&o, "meta", &meta);
        let tags: Array = p.tags.iter().map(|t| JsValue::from_str(t)).collect();
        set(&o, "tags", &tags);
    }
    set(&o, "importance", &JsValue::from_f64(h.importance as f64));
    let parts = Object::new();
    set(&parts, "vector", &JsValue::from_f64(h.parts.vector));
    set(&parts, "lexical", &JsValue::from_f64(h.parts.lexical));
    set(&parts, "recency", &JsValue::from_f64(h.parts.recency));
    set(&parts, "importance", &JsValue::from_f64(h.parts.importance));
    set(&o, "parts", &parts);
    o.into()
}

/// The memory engine: remember / recall with hybrid ranking, persistent in IndexedDB, vector
/// search on WebGPU or the CPU path. Works on a page and in a dedicated worker.
#[wasm_bindgen]
pub struct Mnemo {
    core: Rc<Core>,
    embedder: Option<JsEmbedder>,
}

#[wasm_bindgen]
impl Mnemo {
    /// Open (or create, with `options.dims`) the memory `name` in this origin's IndexedDB.
    /// Loads the vectors and the persisted indexes (applying only the changes made since they
    /// were saved).
    pub async fn open(name: String, options: Option<MnemoOptionsJs>) -> Result<Mnemo, JsValue> {
        let (opts, prefer, embedder, encoder) = options_from(options)?;
        Self::open_with(&name, opts, prefer, embedder, encoder).await
    }

    async fn open_with(
        name: &str,
        opts: MnemoOptions,
        prefer: Prefer,
        embedder: Option<JsEmbedder>,
        encoder: Option<EncoderSpec>,
    ) -> Result<Mnemo, JsValue> {
        #[cfg(feature = "encoder")]
        let mut opts = opts;
        // The model first: bad weights fail before a store is created.
        #[cfg(feature = "encoder")]
        if let Some(spec) = encoder {
            let path = spec.path;
            opts.embedder = EmbedderKind::Encoder {
                encoder: spec.load().await?,
                path,
            };
        }
        #[cfg(not(feature = "encoder"))]
        if let Some(spec) = encoder {
            match spec {}
        }
        let backend = IdbBackend::open(name).await.map_err(|e| err(e.into()))?;
        let compute = Compute::new(prefer).await;
        let core = Core::open(backend, compute, opts).await.map_err(err)?;
        let core = Rc::new(core);
        // Other tabs' writes: catch up in the background as soon as their notice arrives.
        let weak: Weak<Core> = Rc::downgrade(&core);
        core.set_change_hook(Some(Rc::new(move |_seq| {
            if let Some(c) = weak.upgrade() {
                wasm_bindgen_futures::spawn_local(async move {
                    let _ = c.sync().await;
                });
            }
        })));
        Ok(Mnemo { core, embedder })
    }

    /// Delete the memory `name` (other tabs holding it open are closed and told).
    pub async fn destroy(name: String) -> Result<(), JsValue> {
        IdbBackend::delete_database(&name)
            .await
            .map_err(|e| err(e.into()))
    }

    /// Create (or open) the memory `name` and import an export into it (`dims` from the file).
    /// Resolves to the opened engine.
    #[wasm_bindgen(js_name = import)]
    pub async fn import_into(
        name: String,
        bytes: Uint8Array,
        options: Option<MnemoOptionsJs>,
    ) -> Result<Mnemo, JsValue> {
        let b = bytes.to_vec();
        let summary = crate::store::export::validate(&b, false).map_err(|e| err(e.into()))?;
        let (mut opts, prefer, embedder, encoder) = options_from(options)?;
        opts.dims = Some(summary.dims);
        let m = Self::open_with(&name, opts, prefer, embedder, encoder).await?;
        let core = m.core.clone();
        core.import(&b).await.map_err(err)?;
        Ok(m)
    }

    /// Embedding dimension.
    #[wasm_bindgen(getter)]
    pub fn dims(&self) -> usize {
        self.core.dims()
    }

    /// Whether the built-in encoder's files for `model` are cached in this origin's IndexedDB
    /// (so that `Mnemo.open(name, { embedder: { model } })` needs no `weights`).
    #[cfg(feature = "encoder")]
    #[wasm_bindgen(js_name = modelCached)]
    pub async fn model_cached(model: String) -> Result<bool, JsValue> {
        super::embedder::cached(&model).await
    }

    /// Remove the built-in encoder's cached files for `model`; resolves to whether they were
    /// there. Open engines keep their loaded model.
    #[cfg(feature = "encoder")]
    #[wasm_bindgen(js_name = deleteModel)]
    pub async fn delete_model(model: String) -> Result<bool, JsValue> {
        super::embedder::delete(&model).await
    }

    /// The embeddings of `texts` by the engine's embedder (the built-in encoder, hashed-ngrams or
    /// the caller's function; `NO_EMBEDDER` without one): one `Float32Array` of `dims` values
    /// per text, in order. Writes nothing.
    pub async fn embed(&self, texts: TextArrayJs) -> Result<VectorArrayJs, JsValue> {
        let v: JsValue = texts.into();
        if !Array::is_array(&v) {
            return Err(invalid("texts", "must be an array of strings"));
        }
        let texts: Vec<String> = Array::from(&v)
            .iter()
            .enumerate()
            .map(|(i, t)| {
                t.as_string()
                    .ok_or_else(|| invalid(&format!("texts[{i}]"), "must be a string"))
            })
            .collect::<Result<_, _>>()?;
        let vecs = if let Some(e) = &self.embedder {
            e.embed(&texts, self.core.dims(), "embedding").await?
        } else {
            let core = self.core.clone();
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            core.embed(&refs).await.map_err(err)?
        };
        let arr: Array = vecs
            .iter()
            .map(|v| JsValue::from(Float32Array::from(v.as_slice())))
            .collect();
        Ok(arr.unchecked_into())
    }

    async fn memories(&self, v: &JsValue, single: bool) -> Result<Vec<Memory>, JsValue> {
        let items: Vec<JsValue> = if single {
            vec![v.clone()]
        } else {
            if !Array::is_array(v) {
                return Err(invalid("memories", "must be an array"));
            }
            Array::from(v).iter().collect()
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, o) in items.iter().enumerate() {
            let prefix = if single {
                String::new()
            } else {
                format!("episodes[{i}]")
            };
            if !o.is_object() {
                return Err(invalid(
                    if single { "memory" } else { &prefix },
                    "must be an object",
                ));
            }
            let text = opt_string(o, "text", &prefix)?
                .ok_or_else(|| invalid(&name(&prefix, "text"), "is required"))?;
            out.push(Memory {
                text,
                embedding: opt_embedding(o, "embedding", &prefix)?,
                namespace: opt_string(o, "namespace", &prefix)?.unwrap_or_else(|| "default".into()),
                time: opt_number(o, "time", &prefix)?,
                role: opt_string(o, "role", &prefix)?.unwrap_or_default(),
                meta: opt_meta(o, &prefix)?.unwrap_or_default(),
                importance: opt_number(o, "importance", &prefix)?.map(|x| x as f32),
                tags: opt_strings(o, "tags", &prefix)?.unwrap_or_default(),
            });
        }
        // The caller's embedder for the texts without an embedding: one batch.
        if let Some(e) = &self.embedder {
            let need: Vec<usize> = (0..out.len())
                .filter(|&i| out[i].embedding.is_none())
                .collect();
            if !need.is_empty() {
                for &i in &need {
                    let f = if single {
                        "text".to_string()
                    } else {
                        format!("episodes[{i}].text")
                    };
                    crate::store::episode::check_text(&out[i].text, &f)
                        .map_err(|e| err(e.into()))?;
                }
                let texts: Vec<String> = need.iter().map(|&i| out[i].text.clone()).collect();
                let vecs = e.embed(&texts, self.core.dims(), "embedding").await?;
                for (i, v) in need.into_iter().zip(vecs) {
                    out[i].embedding = Some(v);
                }
            }
        }
        Ok(out)
    }

    /// Remember one memory; resolves to its id.
    pub async fn remember(&self, memory: MemoryInputJs) -> Result<f64, JsValue> {
        let items = self.memories(&memory.into(), true).await?;
        let core = self.core.clone();
        let id = core
            .remember(items.into_iter().next().expect("one"))
            .await
            .map_err(err)?;
        Ok(id as f64)
    }

    /// Remember a batch atomically (all or nothing); resolves to the ids in order.
    #[wasm_bindgen(js_name = rememberMany)]
    pub async fn remember_many(&self, memories: MemoryInputsJs) -> Result<IdArrayJs, JsValue> {
        let items = self.memories(&memories.into(), false).await?;
        let core = self.core.clone();
        let ids = core.remember_many(items).await.map_err(err)?;
        let arr: Array = ids.iter().map(|&i| JsValue::from_f64(i as f64)).collect();
        Ok(arr.unchecked_into())
    }

    /// Recall the `k` best memories for a query (see `RecallOptions`).
    pub async fn recall(&self, query: RecallOptionsJs) -> Result<RecallHitsJs, JsValue> {
        let o: JsValue = query.into();
        if !o.is_object() {
            return Err(invalid("query", "must be an object"));
        }
        let mut q = RecallQuery {
            embedding: opt_embedding(&o, "embedding", "")?,
            text: opt_string(&o, "text", "")?,
            ..Default::default()
        };
        if let Some(k) = opt_number(&o, "k", "")? {
            if k < 1.0 || k.fract() != 0.0 || k > crate::engine::mnemo::MAX_K as f64 {
                return Err(invalid("k", "must be an integer in 1..=10000"));
            }
            q.k = k as usize;
        }
        let ns = get(&o, "namespace");
        let mut filter = Filter::default();
        if let Some(s) = ns.as_string() {
            filter.namespaces = Some(vec![s]);
        } else if Array::is_array(&ns) {
            filter.namespaces = opt_strings(&o, "namespace", "")?;
        } else if !absent(&ns) {
            return Err(invalid(
                "namespace",
                "must be a string or an array of strings",
            ));
        }
        filter.since = opt_number(&o, "since", "")?;
        filter.until = opt_number(&o, "until", "")?;
        filter.tags = opt_strings(&o, "tags", "")?;
        q.filter = filter;
        let w = get(&o, "weights");
        if !absent(&w) {
            q.weights = Some(weights_from(&w, "weights", self.core.weights())?);
        }
        q.half_life_ms = opt_number(&o, "halfLife", "")?;
        q.now_ms = opt_number(&o, "now", "")?;
        q.context = get(&o, "context").is_truthy();
        q.fetch = fetch_from(&o, "backend")?;
        let p = get(&o, "payload");
        q.payload = absent(&p) || p.is_truthy();
        // Text without an embedding: the caller's embedder computes the query vector.
        let vector_weight = q.weights.unwrap_or(self.core.weights()).vector;
        if let (None, Some(t), Some(e)) = (&q.embedding, &q.text, &self.embedder) {
            if vector_weight > 0.0 {
                let v = e
                    .embed(std::slice::from_ref(t), self.core.dims(), "embedding")
                    .await?;
                q.embedding = v.into_iter().next();
            }
        }
        let core = self.core.clone();
        let hits = core.recall(&q).await.map_err(err)?;
        let arr: Array = hits.iter().map(hit_js).collect();
        Ok(arr.unchecked_into())
    }

    /// Change a memory (text, role, meta, importance, tags, embedding).
    pub async fn update(&self, id: f64, patch: MemoryPatchJs) -> Result<(), JsValue> {
        let id = id_from(id, "id")?;
        let p: JsValue = patch.into();
        if !p.is_object() {
            return Err(invalid("patch", "must be an object"));
        }
        let mut patch = Patch {
            role: opt_string(&p, "role", "")?,
            text: opt_string(&p, "text", "")?,
            metadata: opt_meta(&p, "")?,
            importance: opt_number(&p, "importance", "")?.map(|v| v as f32),
            embedding: opt_embedding(&p, "embedding", "")?,
            tags: opt_strings(&p, "tags", "")?,
        };
        if let (Some(t), None, Some(e)) = (&patch.text, &patch.embedding, &self.embedder) {
            crate::store::episode::check_text(t, "text").map_err(|e| err(e.into()))?;
            let v = e
                .embed(std::slice::from_ref(t), self.core.dims(), "embedding")
                .await?;
            patch.embedding = v.into_iter().next();
        }
        let core = self.core.clone();
        core.update(id, patch).await.map_err(err)
    }

    /// Forget a memory (its text, metadata and vector are deleted).
    pub async fn forget(&self, id: f64) -> Result<(), JsValue> {
        let id = id_from(id, "id")?;
        let core = self.core.clone();
        core.forget(id).await.map_err(err)
    }

    /// Forget several memories atomically (`NOT_FOUND`, nothing forgotten, if one is missing).
    #[wasm_bindgen(js_name = forgetMany)]
    pub async fn forget_many(&self, ids: IdArrayJs) -> Result<(), JsValue> {
        let ids = ids_from(&ids.into(), "ids")?;
        let core = self.core.clone();
        core.forget_many(&ids).await.map_err(err)
    }

    /// Forget every memory of a namespace; resolves to how many.
    #[wasm_bindgen(js_name = forgetNamespace)]
    pub async fn forget_namespace(&self, namespace: String) -> Result<f64, JsValue> {
        let core = self.core.clone();
        core.forget_namespace(&namespace)
            .await
            .map(|n| n as f64)
            .map_err(err)
    }

    /// Every memory as a portable file (`Uint8Array`; `Mnemo.import` reads it).
    pub async fn export(&self) -> Result<Uint8Array, JsValue> {
        let core = self.core.clone();
        let b = core.export().await.map_err(err)?;
        Ok(Uint8Array::from(b.as_slice()))
    }

    /// Import an export into this memory (validated whole first; nothing written on error).
    #[wasm_bindgen(js_name = importInto)]
    pub async fn import_bytes(&self, bytes: Uint8Array) -> Result<ImportResultJs, JsValue> {
        let b = bytes.to_vec();
        let core = self.core.clone();
        let r = core.import(&b).await.map_err(err)?;
        let o = Object::new();
        set(&o, "imported", &JsValue::from_f64(r.imported as f64));
        let ids: Array = r.ids.iter().map(|&i| JsValue::from_f64(i as f64)).collect();
        set(&o, "ids", &ids);
        set(&o, "remapped", &JsValue::from_bool(r.remapped));
        Ok(JsValue::from(o).unchecked_into())
    }

    /// Counters (no I/O): `{ count, dims, backend, adapter, bytesOnDisk, ... }`.
    pub fn stats(&self) -> Result<MnemoStatsJs, JsValue> {
        let s = self.core.stats();
        let o = Object::new();
        set(&o, "count", &JsValue::from_f64(s.count as f64));
        set(&o, "dims", &JsValue::from_f64(s.dims as f64));
        set(&o, "namespaces", &JsValue::from_f64(s.namespaces as f64));
        set(&o, "backend", &JsValue::from_str(s.backend.as_str()));
        set(&o, "index", &JsValue::from_str(s.path.as_str()));
        set(&o, "gpu", &JsValue::from_bool(s.gpu));
        let adapter = match &s.adapter {
            Some(a) => serde_wasm_bindgen::to_value(a)?,
            None => JsValue::NULL,
        };
        set(&o, "adapter", &adapter);
        set(
            &o,
            "bytesOnDisk",
            &JsValue::from_f64(s.bytes_on_disk as f64),
        );
        set(&o, "seq", &JsValue::from_f64(s.seq as f64));
        let embedder = if self.embedder.is_some() {
            let e = Object::new();
            set(&e, "name", &JsValue::from_str("function"));
            set(&e, "backend", &JsValue::NULL);
            e.into()
        } else if let Some(info) = self.core.embedder() {
            let e = Object::new();
            set(&e, "name", &JsValue::from_str(info.name));
            set(&e, "backend", &JsValue::from_str(info.backend.as_str()));
            e.into()
        } else {
            JsValue::NULL
        };
        set(&o, "embedder", &embedder);
        Ok(JsValue::from(o).unchecked_into())
    }

    /// Apply other tabs' writes now (recall also does it by itself).
    pub async fn sync(&self) -> Result<(), JsValue> {
        let core = self.core.clone();
        core.sync().await.map_err(err)
    }

    /// Save the derived indexes now (they are also saved periodically and on `close`).
    pub async fn flush(&self) -> Result<(), JsValue> {
        let core = self.core.clone();
        core.flush().await.map_err(err)
    }

    /// `callback()` after another tab's writes were applied to this engine (`null` to stop).
    #[wasm_bindgen(js_name = onChange)]
    pub fn on_change(&self, callback: ChangeCallbackJs) {
        let f: JsValue = callback.into();
        let weak: Weak<Core> = Rc::downgrade(&self.core);
        let f = f.dyn_into::<Function>().ok();
        self.core.set_change_hook(Some(Rc::new(move |_seq| {
            if let Some(c) = weak.upgrade() {
                let f = f.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    if c.sync().await.is_ok() {
                        if let Some(f) = f {
                            let _ = f.call0(&JsValue::NULL);
                        }
                    }
                });
            }
        })));
    }

    /// Save the derived indexes and close; later calls reject with `STORE_CLOSED`.
    pub async fn close(&self) -> Result<(), JsValue> {
        let core = self.core.clone();
        core.set_change_hook(None);
        core.close().await.map_err(err)
    }
}

/// LoCoMo evaluation helpers for the browser eval runner (`make eval`, feature `eval`; not in
/// the npm package): the turn / question parsing and turn times of [`crate::engine::locomo`] and
/// the metrics and tables of [`crate::engine::eval`], so the browser eval computes exactly what
/// the native one does.
#[cfg(feature = "eval")]
mod locomo_eval {
    use js_sys::{Array, Float32Array, Float64Array, Object, Uint32Array};
    use wasm_bindgen::prelude::*;

    use super::set;
    use crate::engine::eval::{
        max_abs_diff, metrics, outcome, standard_subsets, table, Metrics, Row,
    };
    use crate::engine::locomo::{parse_baselines, Locomo};
    use crate::engine::DocId;

    /// The parsed LoCoMo files.
    #[wasm_bindgen]
    pub struct LocomoEval {
        data: Locomo,
        rows: Vec<Row>,
        baselines: std::collections::BTreeMap<(String, String), Metrics>,
    }

    fn metrics_js(m: &Metrics) -> JsValue {
        let o = Object::new();
        set(&o, "n", &JsValue::from_f64(m.n as f64));
        set(&o, "any", &Float64Array::from(&m.any[..]).into());
        set(&o, "all", &Float64Array::from(&m.all[..]).into());
        set(&o, "mrr", &JsValue::from_f64(m.mrr));
        o.into()
    }

    #[wasm_bindgen]
    impl LocomoEval {
        /// Parse the four data files and `baseline_results.json`.
        pub fn parse(
            turns_jsonl: String,
            turns_f32: Vec<u8>,
            questions_jsonl: String,
            questions_f32: Vec<u8>,
            baselines_json: String,
        ) -> Result<LocomoEval, JsValue> {
            let data = Locomo::parse(&turns_jsonl, &turns_f32, &questions_jsonl, &questions_f32)
                .map_err(|e| super::err(e.into()))?;
            let baselines = parse_baselines(&baselines_json).map_err(|e| super::err(e.into()))?;
            Ok(LocomoEval {
                data,
                rows: Vec::new(),
                baselines,
            })
        }

        /// Embedding dimension.
        pub fn dims(&self) -> usize {
            self.data.dims
        }

        /// The turns: `{ conv: Uint32Array, namespace: string[], time: Float64Array, text: string[], role: string[] }`
        /// (time = session date + order within the session, as the native eval).
        pub fn turns(&self) -> JsValue {
            let t = &self.data.turns;
            let o = Object::new();
            let conv: Vec<u32> = t.iter().map(|x| x.conv).collect();
            set(&o, "conv", &Uint32Array::from(conv.as_slice()).into());
            let time: Vec<f64> = t.iter().map(|x| x.time_ms as f64).collect();
            set(&o, "time", &Float64Array::from(time.as_slice()).into());
            let ns: Array = t.iter().map(|x| JsValue::from_str(&x.sample_id)).collect();
            set(&o, "namespace", &ns);
            let text: Array = t.iter().map(|x| JsValue::from_str(&x.embed_text)).collect();
            set(&o, "text", &text);
            let role: Array = t.iter().map(|x| JsValue::from_str(&x.speaker)).collect();
            set(&o, "role", &role);
            o.into()
        }

        /// Turn embeddings, row-major `[turns, dims]`.
        #[wasm_bindgen(js_name = turnVectors)]
        pub fn turn_vectors(&self) -> Float32Array {
            Float32Array::from(self.data.turn_vectors.as_slice())
        }

        /// Question embeddings, row-major `[questions, dims]`.
        #[wasm_bindgen(js_name = questionVectors)]
        pub fn question_vectors(&self) -> Float32Array {
            Float32Array::from(self.data.question_vectors.as_slice())
        }

        /// The questions: `{ conv, category: Uint32Array, text: string[], now: Float64Array }`
        /// (`now` = the conversation's last turn time, when questions are asked).
        pub fn questions(&self) -> JsValue {
            let q = &self.data.questions;
            let o = Object::new();
            let conv: Vec<u32> = q.iter().map(|x| x.conv).collect();
            set(&o, "conv", &Uint32Array::from(conv.as_slice()).into());
            let cat: Vec<u32> = q.iter().map(|x| x.category as u32).collect();
            set(&o, "category", &Uint32Array::from(cat.as_slice()).into());
            let now: Vec<f64> = q
                .iter()
                .map(|x| self.data.end_time_ms(x.conv) as f64)
                .collect();
            set(&o, "now", &Float64Array::from(now.as_slice()).into());
            let text: Array = q.iter().map(|x| JsValue::from_str(&x.question)).collect();
            set(&o, "text", &text);
            o.into()
        }

        /// Score one method: `rankings` holds, question after question, the turn rows of its
        /// full ranking (`offsets[q]..offsets[q + 1]`). Adds a row per standard subset.
        pub fn score(
            &mut self,
            method: String,
            rankings: Vec<u32>,
            offsets: Vec<u32>,
        ) -> Result<(), JsValue> {
            let n = self.data.questions.len();
            if offsets.len() != n + 1 || offsets[n] as usize != rankings.len() {
                return Err(super::invalid("offsets", "one range per question"));
            }
            let outcomes: Vec<_> = self
                .data
                .questions
                .iter()
                .enumerate()
                .map(|(i, q)| {
                    let r: Vec<DocId> = rankings[offsets[i] as usize..offsets[i + 1] as usize]
                        .iter()
                        .map(|&x| x as DocId)
                        .collect();
                    outcome(&r, &q.evidence)
                })
                .collect();
            for s in standard_subsets() {
                let m = metrics(
                    outcomes
                        .iter()
                        .zip(&self.data.questions)
                        .filter(|(_, q)| s.contains(q.category))
                        .map(|(o, _)| o),
                );
                self.rows.push(Row {
                    subset: s.name.clone(),
                    method: method.clone(),
                    metrics: m,
                });
            }
            Ok(())
        }

        /// `{ subset, method, metrics }` of a scored method (or of a baseline: `baseline: cosine`,
        /// `baseline: bm25`, `baseline: hybrid_rrf`), or `undefined`.
        pub fn metrics(&self, subset: String, method: String) -> JsValue {
            if let Some(b) = method.strip_prefix("baseline: ") {
                return self
                    .baselines
                    .get(&(subset, b.to_string()))
                    .map_or(JsValue::UNDEFINED, metrics_js);
            }
            self.rows
                .iter()
                .find(|r| r.subset == subset && r.method == method)
                .map_or(JsValue::UNDEFINED, |r| metrics_js(&r.metrics))
        }

        /// Largest difference over the nine numbers between a scored method and a baseline.
        #[wasm_bindgen(js_name = maxDiff)]
        pub fn max_diff(&self, subset: String, method: String, baseline: String) -> f64 {
            let a = self
                .rows
                .iter()
                .find(|r| r.subset == subset && r.method == method);
            let b = self.baselines.get(&(subset.clone(), baseline));
            match (a, b) {
                (Some(a), Some(b)) => max_abs_diff(&a.metrics, b),
                _ => f64::NAN,
            }
        }

        /// The markdown table of `subsets` (baselines first, then the scored methods).
        pub fn table(&self, subsets: Vec<String>) -> String {
            let mut rows = Vec::new();
            for s in &subsets {
                for b in ["cosine", "bm25", "hybrid_rrf"] {
                    if let Some(m) = self.baselines.get(&(s.clone(), b.to_string())) {
                        rows.push(Row {
                            subset: s.clone(),
                            method: format!("baseline: {b}"),
                            metrics: *m,
                        });
                    }
                }
                rows.extend(self.rows.iter().filter(|r| &r.subset == s).cloned());
            }
            table(&rows)
        }
    }
}
