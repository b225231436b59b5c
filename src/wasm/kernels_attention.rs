//! `Kernels` methods for the attention kernels (a separate `#[wasm_bindgen] impl Kernels` block):
//! `attention` (tiled prefill), `decodeAttention` (flash-decoding), `sparseAttention`
//! (block-sparse) and `matmul` (the benchmark's peak reference). Option objects are parsed here;
//! semantics and layouts are documented in `crate::kernels::attention`.

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::errors::{invalid_input, JsError2};
use super::kernels::Kernels;
use crate::kernels::attention::{self as attn, AttentionArgs, SparseParams};

#[wasm_bindgen(typescript_custom_section)]
const TS_ATTENTION_OPTIONS: &'static str = r#"
/**
 * Options of `kernels.attention` and `kernels.decodeAttention`. Layouts are row-major and
 * token-major; the scale is 1/sqrt(headDim). Query head h reads kv head h / (heads / kvHeads).
 * Causal alignment: the queries are the last Tq positions of the keys (query i sits at
 * position i + Tk - Tq and sees keys j <= i + Tk - Tq). Rows that see no key are zeros.
 */
export interface AttentionOptions {
  /** Queries `[Tq, heads, headDim]`. */
  q: Float32Array;
  /** Keys `[Tk, kvHeads, headDim]`. */
  k: Float32Array;
  /** Values `[Tk, kvHeads, headDim]`. */
  v: Float32Array;
  /** Query heads. */
  heads: number;
  /** Key/value heads; must divide `heads` (grouped-query attention). Default: `heads`. */
  kvHeads?: number;
  /** Head dimension, 1..=128. */
  headDim: number;
  /** Causal masking (queries aligned to the last positions). Default: false. */
  causal?: boolean;
  /** Key padding mask `[Tk]`, one byte per key: non-zero keeps the key, 0 ignores it for every query and head. */
  mask?: Uint8Array;
  /** Benchmarking: run the GPU kernel this many times in one submission (same output). Default 1. */
  repeat?: number;
}
/**
 * Options of `kernels.sparseAttention`: each (query, head) attends the keys of its local window
 * (positions pos - window + 1 ..= pos) and of the `topBlocks` key blocks whose (quantised,
 * integer) mean key scores highest against its query, ties going to the lower block index.
 */
export interface SparseAttentionOptions extends AttentionOptions {
  /** Keys per block (>= 1). */
  blockSize: number;
  /** Blocks selected per (query, head), 0..=32. */
  topBlocks: number;
  /** Local window in positions (0 = none). Default 0. */
  window?: number;
}
/** Result of the attention kernels. */
export interface AttentionResult {
  /** `[Tq, heads, headDim]`. */
  out: Float32Array;
}
/** Options of `kernels.matmul`: C[m, n] = A[m, k] B[k, n], row-major. */
export interface MatmulOptions {
  a: Float32Array;
  b: Float32Array;
  m: number;
  k: number;
  n: number;
  /** Benchmarking: run the GPU kernel this many times in one submission. Default 1. */
  repeat?: number;
}
/** Result of `kernels.matmul`. */
export interface MatmulResult {
  /** `[m, n]`. */
  out: Float32Array;
}
"#;

#[wasm_bindgen]
extern "C" {
    /// Options of `attention` / `decodeAttention`.
    #[wasm_bindgen(typescript_type = "AttentionOptions")]
    pub type AttentionOptions;
    /// Options of `sparseAttention`.
    #[wasm_bindgen(typescript_type = "SparseAttentionOptions")]
    pub type SparseAttentionOptions;
    /// `{ out }`.
    #[wasm_bindgen(typescript_type = "AttentionResult")]
    pub type AttentionResult;
    /// Options of `matmul`.
    #[wasm_bindgen(typescript_type = "MatmulOptions")]
    pub type MatmulOptions;
    /// `{ out }`.
    #[wasm_bindgen(typescript_type = "MatmulResult")]
    pub type MatmulResult;
}

fn field(o: &JsValue, name: &str) -> Result<JsValue, JsValue> {
    if !o.is_object() {
        return Err(invalid_input("options must be an object"));
    }
    js_sys::Reflect::get(o, &JsValue::from_str(name))
}

fn f32_array(o: &JsValue, name: &str) -> Result<Vec<f32>, JsValue> {
    field(o, name)?
        .dyn_into::<js_sys::Float32Array>()
        .map(|a| a.to_vec())
        .map_err(|_| invalid_input(format!("{name} must be a Float32Array")))
}

fn opt_u8_array(o: &JsValue, name: &str) -> Result<Option<Vec<u8>>, JsValue> {
    let v = field(o, name)?;
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    v.dyn_into::<js_sys::Uint8Array>()
        .map(|a| Some(a.to_vec()))
        .map_err(|_| invalid_input(format!("{name} must be a Uint8Array (one byte per key)")))
}

fn count(o: &JsValue, name: &str, default: Option<usize>) -> Result<usize, JsValue> {
    let v = field(o, name)?;
    if v.is_undefined() {
        return default.ok_or_else(|| invalid_input(format!("{name} is required")));
    }
    match v.as_f64() {
        Some(x) if x >= 0.0 && x.fract() == 0.0 && x <= u32::MAX as f64 => Ok(x as usize),
        _ => Err(invalid_input(format!(
            "{name} must be a non-negative integer"
        ))),
    }
}

fn flag(o: &JsValue, name: &str) -> Result<bool, JsValue> {
    let v = field(o, name)?;
    if v.is_undefined() {
        return Ok(false);
    }
    v.as_bool()
        .ok_or_else(|| invalid_input(format!("{name} must be a boolean")))
}

/// The owned inputs of an attention call.
struct Parsed {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    causal: bool,
    mask: Option<Vec<u8>>,
    repeat: u32,
}

impl Parsed {
    fn from_js(o: &JsValue) -> Result<Parsed, JsValue> {
        let heads = count(o, "heads", None)?;
        Ok(Parsed {
            q: f32_array(o, "q")?,
            k: f32_array(o, "k")?,
            v: f32_array(o, "v")?,
            heads,
            kv_heads: count(o, "kvHeads", Some(heads))?,
            head_dim: count(o, "headDim", None)?,
            causal: flag(o, "causal")?,
            mask: opt_u8_array(o, "mask")?,
            repeat: count(o, "repeat", Some(1))?.clamp(1, 1000) as u32,
        })
    }

    fn args(&self) -> AttentionArgs<'_> {
        AttentionArgs {
            q: &self.q,
            k: &self.k,
            v: &self.v,
            heads: self.heads,
            kv_heads: self.kv_heads,
            head_dim: self.head_dim,
            causal: self.causal,
            mask: self.mask.as_deref(),
        }
    }
}

fn result(out: Vec<f32>) -> Result<JsValue, JsValue> {
    let obj = js_sys::Object::new();
    let arr = js_sys::Float32Array::from(out.as_slice());
    js_sys::Reflect::set(&obj, &JsValue::from_str("out"), &arr)?;
    Ok(obj.into())
}

fn kernel_err(e: crate::KernelError) -> JsValue {
    JsError2::from(e).into()
}

#[wasm_bindgen]
impl Kernels {
    /// Tiled softmax attention (prefill): `{ out }` with `out` `[Tq, heads, headDim]`. See
    /// `AttentionOptions` for layouts, masking and the causal alignment. Errors carry a `code`
    /// (`SHAPE_MISMATCH`, `INVALID_INPUT`, `NON_FINITE`, `GPU_*`).
    pub async fn attention(&self, options: AttentionOptions) -> Result<AttentionResult, JsValue> {
        let p = Parsed::from_js(&options)?;
        let out = match self.compute.gpu_context() {
            Some(ctx) => attn::attention_gpu_repeated(ctx, &p.args(), p.repeat).await,
            None => attn::attention_cpu(&p.args()),
        }
        .map_err(kernel_err)?;
        Ok(result(out)?.unchecked_into())
    }

    /// Attention of one query (or a few) against a long KV cache, split over the keys with a
    /// combine pass (flash-decoding). Same options, layouts and results as `attention`.
    #[wasm_bindgen(js_name = decodeAttention)]
    pub async fn decode_attention(
        &self,
        options: AttentionOptions,
    ) -> Result<AttentionResult, JsValue> {
        let p = Parsed::from_js(&options)?;
        let out = match self.compute.gpu_context() {
            Some(ctx) => attn::decode_attention_gpu_repeated(ctx, &p.args(), p.repeat).await,
            None => attn::attention_cpu(&p.args()),
        }
        .map_err(kernel_err)?;
        Ok(result(out)?.unchecked_into())
    }

    /// Block-sparse attention: local window plus the `topBlocks` best key blocks per (query,
    /// head). The GPU and the CPU path select exactly the same blocks.
    #[wasm_bindgen(js_name = sparseAttention)]
    pub async fn sparse_attention(
        &self,
        options: SparseAttentionOptions,
    ) -> Result<AttentionResult, JsValue> {
        let p = Parsed::from_js(&options)?;
        let sp = SparseParams {
            block_size: count(&options, "blockSize", None)?,
            top_blocks: count(&options, "topBlocks", None)?,
            window: count(&options, "window", Some(0))?,
        };
        let out = attn::sparse_attention(&self.compute, &p.args(), &sp)
            .await
            .map_err(kernel_err)?;
        Ok(result(out)?.unchecked_into())
    }

    /// Tiled matmul `C = A B` (`[m, k] x [k, n]`, row-major): the reference kernel the
    /// attention benchmarks measure the adapter's peak with.
    pub async fn matmul(&self, options: MatmulOptions) -> Result<MatmulResult, JsValue> {
        let a = f32_array(&options, "a")?;
        let b = f32_array(&options, "b")?;
        let (m, k, n) = (
            count(&options, "m", None)?,
            count(&options, "k", None)?,
            count(&options, "n", None)?,
        );
        let repeat = count(&options, "repeat", Some(1))?.clamp(1, 1000) as u32;
        let out = match self.compute.gpu_context() {
            Some(ctx) => attn::matmul::matmul_gpu(ctx, &a, &b, m, k, n, repeat).await,
            None => attn::matmul::matmul_cpu(&a, &b, m, k, n),
        }
        .map_err(kernel_err)?;
        Ok(result(out)?.unchecked_into())
    }
}
