//! `embedder: { model: 'all-MiniLM-L6-v2', weights, vocab, backend, cache }` of `Mnemo.open`:
//! parses the option object, gets the model's files (the caller's bytes, `Blob`s, a URL on the
//! page's origin, or the IndexedDB cache of [`super::model_cache`]), loads the
//! [`TextEncoder`] and caches the files for the next open. Also the static
//! `Mnemo.modelCached` / `Mnemo.deleteModel` helpers' logic.
//!
//! A model loaded in this JS realm is shared by every engine that loads it from the cache while
//! it is alive (a `Weak` per model), so two memories opened on one page do not hold two copies.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use js_sys::{ArrayBuffer, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::Blob;

use super::errors::mnemo_error;
use super::model_cache;
use crate::encoder::{EncoderError, TextEncoder};
use crate::engine::mnemo::{EncoderPath, MnemoError};

/// Where a model file comes from.
pub(crate) enum Source {
    /// Bytes the caller passed (`Uint8Array` / `ArrayBuffer`).
    Bytes(Uint8Array),
    /// A `Blob` (or `File`) the caller passed.
    Blob(Blob),
    /// Text the caller passed (the vocabulary).
    Text(String),
    /// A URL to fetch (same origin only).
    Url(String),
}

/// The parsed `embedder` object.
pub(crate) struct EncoderSpec {
    model: String,
    weights: Option<Source>,
    vocab: Option<Source>,
    /// Where the encoder runs.
    pub path: EncoderPath,
    cache: bool,
}

fn invalid(field: &str, reason: &str) -> JsValue {
    mnemo_error(&MnemoError::invalid(field, reason))
}

fn enc_err(e: EncoderError) -> JsValue {
    mnemo_error(&MnemoError::Encoder(e))
}

fn get(o: &JsValue, key: &str) -> JsValue {
    Reflect::get(o, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

fn source(v: JsValue, field: &str, text_ok: bool) -> Result<Option<Source>, JsValue> {
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    if let Some(a) = v.dyn_ref::<Uint8Array>() {
        return Ok(Some(Source::Bytes(a.clone())));
    }
    if let Some(b) = v.dyn_ref::<ArrayBuffer>() {
        return Ok(Some(Source::Bytes(Uint8Array::new(b))));
    }
    if let Some(b) = v.dyn_ref::<Blob>() {
        return Ok(Some(Source::Blob(b.clone())));
    }
    if let Some(s) = v.as_string() {
        return Ok(Some(if text_ok {
            Source::Text(s)
        } else {
            Source::Url(s)
        }));
    }
    if text_ok {
        Err(invalid(
            field,
            "must be the text of vocab.txt (a string), a Uint8Array, an ArrayBuffer or a Blob",
        ))
    } else {
        Err(invalid(
            field,
            "must be a Uint8Array, an ArrayBuffer, a Blob or a URL string",
        ))
    }
}

impl EncoderSpec {
    /// Parse `{ model, weights?, vocab?, backend?, cache? }` (the caller checked it is an object).
    pub(crate) fn parse(o: &JsValue) -> Result<EncoderSpec, JsValue> {
        let model = get(o, "model")
            .as_string()
            .ok_or_else(|| invalid("embedder.model", "is required (a string)"))?;
        if model != TextEncoder::ALL_MINILM_L6_V2 {
            return Err(invalid(
                "embedder.model",
                &format!(
                    "unknown model {model:?}: the built-in encoder is '{}'",
                    TextEncoder::ALL_MINILM_L6_V2
                ),
            ));
        }
        let weights = source(get(o, "weights"), "embedder.weights", false)?;
        let vocab = source(get(o, "vocab"), "embedder.vocab", true)?;
        match (&weights, &vocab) {
            (Some(_), None) => {
                return Err(invalid(
                    "embedder.vocab",
                    "is required with embedder.weights (the model's vocab.txt)",
                ))
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "embedder.weights",
                    "is required with embedder.vocab (the model's model.safetensors)",
                ))
            }
            _ => {}
        }
        let b = get(o, "backend");
        let path = if b.is_undefined() || b.is_null() {
            EncoderPath::Auto
        } else {
            b.as_string()
                .and_then(|s| EncoderPath::parse(&s))
                .ok_or_else(|| invalid("embedder.backend", "must be 'auto', 'webgpu' or 'cpu'"))?
        };
        let c = get(o, "cache");
        let cache = c.is_undefined() || c.is_null() || c.is_truthy();
        Ok(EncoderSpec {
            model,
            weights,
            vocab,
            path,
            cache,
        })
    }

    /// The encoder: from the given files (then cached unless `cache: false`), or from the cache
    /// (`MODEL_NOT_CACHED` when absent).
    pub(crate) async fn load(self) -> Result<Rc<TextEncoder>, JsValue> {
        let (Some(w), Some(v)) = (self.weights, self.vocab) else {
            if let Some(e) = shared(&self.model) {
                return Ok(e);
            }
            let c = model_cache::get(&self.model)
                .await
                .map_err(enc_err)?
                .ok_or_else(|| {
                    enc_err(EncoderError::NotCached {
                        model: self.model.clone(),
                    })
                })?;
            let weights = blob_bytes(&c.weights).await?;
            let vocab = blob_text(&c.vocab).await?;
            let e = Rc::new(
                TextEncoder::all_minilm_l6_v2(&vocab, &weights)
                    .map_err(|e| enc_err(stale_cache(e)))?,
            );
            remember(&self.model, &e);
            return Ok(e);
        };
        // Bytes go to wasm straight from the caller's array; Blobs (given or fetched) are read.
        let (w_blob, w_bytes) = file(w, "embedder.weights").await?;
        let (v_blob, v_bytes) = file(v, "embedder.vocab").await?;
        let w_bytes = match w_bytes {
            Some(b) => b,
            None => blob_bytes(&w_blob).await?,
        };
        let vocab = match v_bytes {
            Some(b) => {
                String::from_utf8(b).map_err(|_| invalid("embedder.vocab", "is not UTF-8 text"))?
            }
            None => blob_text(&v_blob).await?,
        };
        let e = Rc::new(TextEncoder::all_minilm_l6_v2(&vocab, &w_bytes).map_err(enc_err)?);
        drop(w_bytes);
        // Cache only files that parsed: a bad file never reaches the cache.
        if self.cache {
            model_cache::put(&self.model, &w_blob, &v_blob)
                .await
                .map_err(enc_err)?;
        }
        remember(&self.model, &e);
        Ok(e)
    }
}

/// A cached file that no longer parses (another version wrote it, or it was damaged): say so.
fn stale_cache(e: EncoderError) -> EncoderError {
    match e {
        EncoderError::Safetensors { reason } => EncoderError::Safetensors {
            reason: format!("cached weights: {reason} (pass weights and vocab again)"),
        },
        e => e,
    }
}

thread_local! {
    static LOADED: RefCell<Vec<(String, Weak<TextEncoder>)>> = const { RefCell::new(Vec::new()) };
}

fn shared(model: &str) -> Option<Rc<TextEncoder>> {
    LOADED.with(|l| {
        l.borrow()
            .iter()
            .find(|(m, _)| m == model)
            .and_then(|(_, w)| w.upgrade())
    })
}

fn remember(model: &str, e: &Rc<TextEncoder>) {
    LOADED.with(|l| {
        let mut l = l.borrow_mut();
        l.retain(|(m, w)| m != model && w.strong_count() > 0);
        l.push((model.to_string(), Rc::downgrade(e)));
    });
}

/// Forget the shared copy of `model` (after `Mnemo.deleteModel`).
pub(crate) fn forget_shared(model: &str) {
    LOADED.with(|l| l.borrow_mut().retain(|(m, _)| m != model));
}

/// A file as a `Blob` (for the cache) and, when the caller passed bytes, those bytes.
async fn file(s: Source, field: &str) -> Result<(Blob, Option<Vec<u8>>), JsValue> {
    match s {
        Source::Bytes(a) => {
            let parts = js_sys::Array::of1(&a);
            let blob = Blob::new_with_u8_array_sequence(&parts)
                .map_err(|e| enc_err(EncoderError::Cache(format!("{field}: Blob: {e:?}"))))?;
            Ok((blob, Some(a.to_vec())))
        }
        Source::Text(t) => {
            let parts = js_sys::Array::of1(&JsValue::from_str(&t));
            let blob = Blob::new_with_str_sequence(&parts)
                .map_err(|e| enc_err(EncoderError::Cache(format!("{field}: Blob: {e:?}"))))?;
            Ok((blob, Some(t.into_bytes())))
        }
        Source::Blob(b) => Ok((b, None)),
        Source::Url(u) => Ok((fetch_blob(&u, field).await?, None)),
    }
}

/// `fetch(url, { mode: 'same-origin' })` → the response's `Blob`.
async fn fetch_blob(url: &str, field: &str) -> Result<Blob, JsValue> {
    let failed = |m: String| enc_err(EncoderError::Fetch(format!("{field} {url}: {m}")));
    let describe = |e: &JsValue| {
        e.dyn_ref::<js_sys::Error>()
            .map(|x| String::from(x.message()))
            .unwrap_or_else(|| format!("{e:?}"))
    };
    let global = js_sys::global();
    let fetch: js_sys::Function = Reflect::get(&global, &JsValue::from_str("fetch"))
        .ok()
        .and_then(|f| f.dyn_into().ok())
        .ok_or_else(|| failed("fetch is not available here".into()))?;
    let init = Object::new();
    let _ = Reflect::set(
        &init,
        &JsValue::from_str("mode"),
        &JsValue::from_str("same-origin"),
    );
    let p: Promise = fetch
        .call2(&global, &JsValue::from_str(url), &init)
        .map_err(|e| failed(describe(&e)))?
        .unchecked_into();
    let resp = JsFuture::from(p).await.map_err(|e| failed(describe(&e)))?;
    if !get(&resp, "ok").is_truthy() {
        let status = get(&resp, "status").as_f64().unwrap_or(0.0);
        return Err(failed(format!("HTTP {status}")));
    }
    let blob_fn: js_sys::Function = get(&resp, "blob").unchecked_into();
    let p: Promise = blob_fn
        .call0(&resp)
        .map_err(|e| failed(describe(&e)))?
        .unchecked_into();
    JsFuture::from(p)
        .await
        .map_err(|e| failed(describe(&e)))?
        .dyn_into::<Blob>()
        .map_err(|_| failed("the response is not a Blob".into()))
}

async fn blob_bytes(b: &Blob) -> Result<Vec<u8>, JsValue> {
    let ab = JsFuture::from(b.array_buffer())
        .await
        .map_err(|e| enc_err(EncoderError::Cache(format!("reading a Blob: {e:?}"))))?;
    Ok(Uint8Array::new(&ab).to_vec())
}

async fn blob_text(b: &Blob) -> Result<String, JsValue> {
    JsFuture::from(b.text())
        .await
        .map_err(|e| enc_err(EncoderError::Cache(format!("reading a Blob: {e:?}"))))?
        .as_string()
        .ok_or_else(|| enc_err(EncoderError::Cache("reading a Blob: not text".into())))
}

/// Whether `model` is in this origin's cache.
pub(crate) async fn cached(model: &str) -> Result<bool, JsValue> {
    model_cache::contains(model).await.map_err(enc_err)
}

/// Remove `model` from this origin's cache; whether it was there.
pub(crate) async fn delete(model: &str) -> Result<bool, JsValue> {
    forget_shared(model);
    model_cache::delete(model).await.map_err(enc_err)
}
