//! `Kernels` methods for the hierarchical and product-key lookups (a separate `#[wasm_bindgen]
//! impl Kernels` block), and the `HierIndex` class: a built hierarchical index held in wasm
//! memory, searchable synchronously on the CPU path or through `kernels.hierSearch` on WebGPU.

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::errors::{invalid_input, to_js_error};
use super::kernels::Kernels;
use crate::kernels::hier::{self, gpu_search::HierGpu, HierConfig, HierError, SearchOptions};

#[wasm_bindgen(typescript_custom_section)]
const TS_HIER: &'static str = r#"
/** Options of `Kernels.hierBuild`. Every field is optional; defaults come from the row count. */
export interface HierBuildOptions {
  /** Children per internal node at build time (2..=256). */
  branching?: number;
  /** Levels of internal nodes at build time (1..=8). */
  depth?: number;
  /** A leaf over this many rows is split in two. */
  maxLeaf?: number;
  /** k-means iterations per level (default 8). */
  iterations?: number;
  /** Seed of the sampling and initialisation (same seed and data: same index). */
  seed?: number;
  /** Row ids (one per bank row; default: the row number). */
  ids?: Uint32Array;
}
/** Options of a hierarchical search. */
export interface HierSearchOptions {
  /** Nodes kept per level (default: about 1/16 of the leaves, at least 8). Larger: better recall, more bytes read. */
  beam?: number;
  /** Allow-mask: bit `id` (little-endian words) must be set for row `id` to be returned. */
  mask?: Uint32Array;
}
/** Results: row-major `[B, k]`, best first (ties: lower id); empty slots are id 0xFFFFFFFF, score -Infinity. */
export interface HierSearchResult {
  ids: Uint32Array;
  scores: Float32Array;
  /** Which path ran. */
  backend: 'webgpu' | 'cpu';
  /** Bytes of centroids and rows read (CPU path; 0 when measured on the GPU). */
  bytesRead: number;
}
/** Output of `Kernels.productKeyLookup`. */
export interface PkmResult {
  /** Weighted sums of the selected value rows, `[B, valueDims]`. */
  output: Float32Array;
  /** Selected memory slots, `[B, k]`, best first. */
  ids: Uint32Array;
  /** Softmax weights of the slots, `[B, k]`. */
  weights: Float32Array;
  /** Combined scores of the slots, `[B, k]`. */
  scores: Float32Array;
}
/** Shape and size of a hierarchical index. */
export interface HierIndexStats {
  rows: number; dims: number; leaves: number; internal_nodes: number; height: number;
  max_leaf_rows: number; min_leaf_rows: number; max_fanout: number; branching: number;
  max_leaf: number; bytes: number; default_beam: number;
}
"#;

#[wasm_bindgen]
extern "C" {
    /// Options of `hierBuild`.
    #[wasm_bindgen(typescript_type = "HierBuildOptions")]
    pub type HierBuildOptions;
    /// Options of a hierarchical search.
    #[wasm_bindgen(typescript_type = "HierSearchOptions")]
    pub type HierSearchOptions;
    /// Result of a hierarchical search.
    #[wasm_bindgen(typescript_type = "HierSearchResult")]
    pub type HierSearchResultJs;
    /// Result of a product-key lookup.
    #[wasm_bindgen(typescript_type = "PkmResult")]
    pub type PkmResultJs;
    /// Index statistics.
    #[wasm_bindgen(typescript_type = "HierIndexStats")]
    pub type HierIndexStatsJs;
}

fn hier_err(e: HierError) -> JsValue {
    to_js_error(e.code(), &e.to_string())
}

fn busy() -> JsValue {
    to_js_error(
        "INDEX_BUSY",
        "the index is in use by a pending hierSearch; await it before changing the index",
    )
}

fn field(obj: &JsValue, key: &str) -> Result<Option<JsValue>, JsValue> {
    if obj.is_undefined() || obj.is_null() {
        return Ok(None);
    }
    let v = js_sys::Reflect::get(obj, &JsValue::from_str(key))?;
    Ok((!v.is_undefined() && !v.is_null()).then_some(v))
}

fn uint_field(obj: &JsValue, key: &str, max: f64) -> Result<Option<usize>, JsValue> {
    match field(obj, key)? {
        None => Ok(None),
        Some(v) => {
            let n = v
                .as_f64()
                .filter(|n| n.fract() == 0.0 && *n >= 0.0 && *n <= max)
                .ok_or_else(|| invalid_input(format!("{key} must be an integer in 0..={max}")))?;
            Ok(Some(n as usize))
        }
    }
}

fn u32_array_field(obj: &JsValue, key: &str) -> Result<Option<Vec<u32>>, JsValue> {
    match field(obj, key)? {
        None => Ok(None),
        Some(v) => {
            let a = v
                .dyn_into::<js_sys::Uint32Array>()
                .map_err(|_| invalid_input(format!("{key} must be a Uint32Array")))?;
            Ok(Some(a.to_vec()))
        }
    }
}

/// Parsed search options (owned, so they can cross an `await`).
struct SearchArgs {
    beam: Option<usize>,
    mask: Option<Vec<u32>>,
}

impl SearchArgs {
    fn parse(options: Option<HierSearchOptions>) -> Result<SearchArgs, JsValue> {
        let o: JsValue = options.map_or(JsValue::UNDEFINED, Into::into);
        Ok(SearchArgs {
            beam: uint_field(&o, "beam", 1e9)?,
            mask: u32_array_field(&o, "mask")?,
        })
    }

    fn options(&self, k: usize) -> SearchOptions<'_> {
        SearchOptions {
            k,
            beam: self.beam,
            mask: self.mask.as_deref(),
        }
    }
}

fn result_object(
    r: &hier::SearchResult,
    backend: crate::Backend,
) -> Result<HierSearchResultJs, JsValue> {
    let o = js_sys::Object::new();
    js_sys::Reflect::set(
        &o,
        &"ids".into(),
        &js_sys::Uint32Array::from(r.ids.as_slice()),
    )?;
    js_sys::Reflect::set(
        &o,
        &"scores".into(),
        &js_sys::Float32Array::from(r.scores.as_slice()),
    )?;
    js_sys::Reflect::set(&o, &"backend".into(), &backend.as_str().into())?;
    js_sys::Reflect::set(
        &o,
        &"bytesRead".into(),
        &JsValue::from_f64(r.stats.bytes_read as f64),
    )?;
    Ok(o.unchecked_into())
}

/// A hierarchical (k-means tree) index over a memory bank, held in wasm memory. Build it with
/// `kernels.hierBuild`, load it with `HierIndex.fromBytes`.
#[wasm_bindgen(js_name = HierIndex)]
pub struct HierIndexJs {
    inner: Rc<RefCell<hier::HierIndex>>,
    mirror: Rc<RefCell<Option<HierGpu>>>,
}

impl HierIndexJs {
    fn wrap(index: hier::HierIndex) -> HierIndexJs {
        HierIndexJs {
            inner: Rc::new(RefCell::new(index)),
            mirror: Rc::new(RefCell::new(None)),
        }
    }
}

#[wasm_bindgen(js_class = HierIndex)]
impl HierIndexJs {
    /// Search on the CPU path, synchronously: the top `k` rows for each query of `queries`
    /// (`[B, dims]`).
    pub fn search(
        &self,
        queries: &[f32],
        k: usize,
        options: Option<HierSearchOptions>,
    ) -> Result<HierSearchResultJs, JsValue> {
        let args = SearchArgs::parse(options)?;
        let r = self
            .inner
            .try_borrow()
            .map_err(|_| busy())?
            .search(queries, &args.options(k))
            .map_err(hier_err)?;
        result_object(&r, crate::Backend::Cpu)
    }

    /// Add rows: `ids` (new ids) and their `vectors` (`[ids.length, dims]`). Rows join their
    /// nearest leaf; full leaves split.
    pub fn insert(&self, ids: &[u32], vectors: &[f32]) -> Result<(), JsValue> {
        self.inner
            .try_borrow_mut()
            .map_err(|_| busy())?
            .insert(ids, vectors)
            .map_err(hier_err)
    }

    /// Remove rows by id.
    pub fn remove(&self, ids: &[u32]) -> Result<(), JsValue> {
        self.inner
            .try_borrow_mut()
            .map_err(|_| busy())?
            .remove(ids)
            .map_err(hier_err)
    }

    /// The vectors of `ids`, `[ids.length, dims]` (zeros for unknown ids).
    pub fn gather(&self, ids: &[u32]) -> Vec<f32> {
        self.inner.borrow().gather(ids)
    }

    /// Versioned bytes of the index; with `withVectors = false` (default `true`) only the
    /// structure is written and `fromBytes` needs the bank.
    #[wasm_bindgen(js_name = toBytes)]
    pub fn to_bytes(&self, with_vectors: Option<bool>) -> Vec<u8> {
        self.inner.borrow().to_bytes(with_vectors.unwrap_or(true))
    }

    /// Load bytes written by `toBytes`; `bank` (`[N, dims]`, row id = bank row) supplies the
    /// vectors when the bytes hold none. Corrupt bytes throw `INDEX_CORRUPT`.
    #[wasm_bindgen(js_name = fromBytes)]
    pub fn from_bytes(bytes: &[u8], bank: Option<Vec<f32>>) -> Result<HierIndexJs, JsValue> {
        hier::HierIndex::from_bytes(bytes, bank.as_deref())
            .map(HierIndexJs::wrap)
            .map_err(hier_err)
    }

    /// A fresh build over the current rows (auto configuration for the current size).
    pub fn rebuild(&self) -> Result<HierIndexJs, JsValue> {
        self.inner
            .borrow()
            .rebuild(None)
            .map(HierIndexJs::wrap)
            .map_err(hier_err)
    }

    /// Shape and size.
    pub fn stats(&self) -> Result<HierIndexStatsJs, JsValue> {
        Ok(serde_wasm_bindgen::to_value(&self.inner.borrow().stats())?.unchecked_into())
    }

    /// Rows in the index.
    #[wasm_bindgen(getter)]
    pub fn size(&self) -> usize {
        self.inner.borrow().len()
    }

    /// Dimensions.
    #[wasm_bindgen(getter)]
    pub fn dims(&self) -> usize {
        self.inner.borrow().dims()
    }

    /// `'webgpu'` or `'cpu'`: which path built the index.
    #[wasm_bindgen(js_name = builtOn)]
    pub fn built_on(&self) -> String {
        self.inner.borrow().built_on().as_str().to_string()
    }
}

#[wasm_bindgen]
impl Kernels {
    /// Build a hierarchical index over `bank` (`[N, dims]`): on WebGPU (k-means assignment and
    /// centroid update kernels) when this `Kernels` runs there and the bank fits one binding,
    /// otherwise on the CPU path.
    #[wasm_bindgen(js_name = hierBuild)]
    pub async fn hier_build(
        &self,
        bank: Vec<f32>,
        dims: usize,
        options: Option<HierBuildOptions>,
    ) -> Result<HierIndexJs, JsValue> {
        let o: JsValue = options.map_or(JsValue::UNDEFINED, Into::into);
        let n = bank.len().checked_div(dims).unwrap_or(0);
        let mut cfg = HierConfig::auto(n);
        let branching = uint_field(&o, "branching", 1e6)?;
        let depth = uint_field(&o, "depth", 1e6)?;
        if branching.is_some() || depth.is_some() {
            cfg = HierConfig::with_shape(
                n,
                branching.unwrap_or(cfg.branching),
                depth.unwrap_or(cfg.depth),
            );
        }
        if let Some(v) = uint_field(&o, "maxLeaf", 1e9)? {
            cfg.max_leaf = v;
        }
        if let Some(v) = uint_field(&o, "iterations", 1e6)? {
            cfg.iterations = v;
        }
        if let Some(v) = uint_field(&o, "seed", 9_007_199_254_740_991.0)? {
            cfg.seed = v as u64;
        }
        let ids = u32_array_field(&o, "ids")?;
        let compute = self.compute.clone();
        hier::gpu::build(&compute, &bank, dims, ids.as_deref(), Some(cfg))
            .await
            .map(HierIndexJs::wrap)
            .map_err(hier_err)
    }

    /// Search `index` on this `Kernels`' path: WebGPU (the whole fetch in one submission; the
    /// index is mirrored on the device on first use and after changes) or the CPU path.
    /// `result.backend` says which ran (the CPU path also serves k or beam over 256).
    #[wasm_bindgen(js_name = hierSearch)]
    // Deliberate: the index stays borrowed across the GPU await; mutations meanwhile use
    // `try_borrow_mut` and get INDEX_BUSY instead of panicking.
    #[allow(clippy::await_holding_refcell_ref)]
    pub async fn hier_search(
        &self,
        index: &HierIndexJs,
        queries: Vec<f32>,
        k: usize,
        options: Option<HierSearchOptions>,
    ) -> Result<HierSearchResultJs, JsValue> {
        let args = SearchArgs::parse(options)?;
        let compute = self.compute.clone();
        let inner = index.inner.clone();
        let mirror_cell = index.mirror.clone();
        // The index stays borrowed while the GPU works: a JS `insert`/`remove` on it meanwhile
        // gets INDEX_BUSY instead of a conflicting mutable borrow.
        let guard = inner.try_borrow().map_err(|_| busy())?;
        let mut mirror = mirror_cell.try_borrow_mut().ok().and_then(|mut m| m.take());
        let r = hier::gpu_search::search(&compute, &guard, &mut mirror, &queries, &args.options(k))
            .await;
        drop(guard);
        if let Ok(mut m) = mirror_cell.try_borrow_mut() {
            *m = mirror;
        }
        let (res, backend) = r.map_err(hier_err)?;
        result_object(&res, backend)
    }

    /// Product-key lookup (PKM / UltraMem): `queries` `[B, dims]` split in halves, top-`k` of
    /// each half against `keys1` (`[n1, dims/2]`) and `keys2` (`[n2, dims - dims/2]`), best `k`
    /// of the k² combinations, softmax, weighted sum of the selected rows of `values`
    /// (`[n1·n2, valueDims]`). `k` is 1..=32.
    #[wasm_bindgen(js_name = productKeyLookup)]
    #[allow(clippy::too_many_arguments)]
    pub async fn product_key_lookup(
        &self,
        queries: Vec<f32>,
        dims: usize,
        keys1: Vec<f32>,
        keys2: Vec<f32>,
        values: Vec<f32>,
        value_dims: usize,
        k: usize,
    ) -> Result<PkmResultJs, JsValue> {
        let compute = self.compute.clone();
        let args = hier::pkm::PkmArgs {
            queries: &queries,
            dims,
            keys1: &keys1,
            keys2: &keys2,
            values: &values,
            value_dims,
            k,
        };
        let out = hier::pkm::pkm(&compute, &args).await.map_err(hier_err)?;
        let o = js_sys::Object::new();
        js_sys::Reflect::set(
            &o,
            &"output".into(),
            &js_sys::Float32Array::from(out.output.as_slice()),
        )?;
        js_sys::Reflect::set(
            &o,
            &"ids".into(),
            &js_sys::Uint32Array::from(out.ids.as_slice()),
        )?;
        js_sys::Reflect::set(
            &o,
            &"weights".into(),
            &js_sys::Float32Array::from(out.weights.as_slice()),
        )?;
        js_sys::Reflect::set(
            &o,
            &"scores".into(),
            &js_sys::Float32Array::from(out.scores.as_slice()),
        )?;
        Ok(o.unchecked_into())
    }
}
