//! `Kernels` methods for the memory-fetch kernels (top-k, gather) (a separate `#[wasm_bindgen] impl Kernels` block).
//!
//! Also the `FlatBank` class: a resident bank (GPU copy + CPU mirror) that appends, updates and
//! masks rows without re-uploading, and answers top-k on either path. Only conversions live here;
//! the logic is `crate::kernels::fetch`.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Float32Array, Object, Reflect, Uint32Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::errors::{invalid_input, to_js_error, JsError2};
use super::kernels::Kernels;
use crate::kernels::fetch::{
    self, BankFormat, FetchPath, FlatBank, FlatBankOptions, GatherIds, GpuCopyBench, TopkOptions,
    TopkResult, Tuning,
};
use crate::kernels::KernelError;

#[wasm_bindgen(typescript_custom_section)]
const TS_FETCH: &'static str = r#"
/** Options of `kernels.topk`. */
export interface TopkOptions {
  /** Allow-mask over bank rows: bit `i % 32` of word `i / 32` set = row `i` may be returned. At least ceil(N / 32) words. */
  mask?: Uint32Array;
  /** How the bank is stored for the scan: `'f32'` (default, exact), `'f16'` or `'int8'` (per-row scale). */
  format?: 'f32' | 'f16' | 'int8';
}
/**
 * Top-k results, `[B, k]` row-major, best first (higher score, then lower row id). Slots beyond
 * the number of allowed rows hold id 0xFFFFFFFF and score -Infinity.
 */
export interface TopkResult {
  ids: Uint32Array;
  scores: Float32Array;
  /** B */
  queries: number;
  k: number;
}
/** Options of `kernels.gather`. */
export interface GatherOptions {
  format?: 'f32' | 'f16' | 'int8';
  /** Rows per id (id i selects rows i*block .. i*block+block-1). Default 1. */
  block?: number;
}
/** Options of `kernels.flatBank`. */
export interface FlatBankOptions {
  format?: 'f32' | 'f16' | 'int8';
  /** Rows to allocate up front (the bank grows as needed). */
  capacity?: number;
  /** Keep a CPU copy so the CPU path can answer (default true; always on without WebGPU). */
  cpuMirror?: boolean;
  /** `path: 'auto'` uses WebGPU for banks of at least this many bytes (default 16 MiB). */
  autoGpuMinBytes?: number;
}
/** Options of `FlatBank.topk`. */
export interface BankTopkOptions {
  mask?: Uint32Array;
  /** `'auto'` (default), `'gpu'` or `'cpu'`. */
  path?: 'auto' | 'gpu' | 'cpu';
}
/** Options of `FlatBank.gather`. */
export interface BankGatherOptions {
  block?: number;
  path?: 'auto' | 'gpu' | 'cpu';
}
"#;

#[wasm_bindgen]
extern "C" {
    /// Options of `kernels.topk`.
    #[wasm_bindgen(typescript_type = "TopkOptions")]
    pub type TopkOptionsJs;
    /// Result of a top-k.
    #[wasm_bindgen(typescript_type = "TopkResult")]
    pub type TopkResultJs;
    /// Options of `kernels.gather`.
    #[wasm_bindgen(typescript_type = "GatherOptions")]
    pub type GatherOptionsJs;
    /// Options of `kernels.flatBank`.
    #[wasm_bindgen(typescript_type = "FlatBankOptions")]
    pub type FlatBankOptionsJs;
    /// Options of `FlatBank.topk`.
    #[wasm_bindgen(typescript_type = "BankTopkOptions")]
    pub type BankTopkOptionsJs;
    /// Options of `FlatBank.gather`.
    #[wasm_bindgen(typescript_type = "BankGatherOptions")]
    pub type BankGatherOptionsJs;
}

fn kerr(e: KernelError) -> JsValue {
    JsError2::from(e).into()
}

/// `options[key]`, or `None` when options or the key are undefined/null.
fn opt(options: Option<&JsValue>, key: &str) -> Result<Option<JsValue>, JsValue> {
    let Some(o) = options else {
        return Ok(None);
    };
    if o.is_undefined() || o.is_null() {
        return Ok(None);
    }
    let v = Reflect::get(o, &JsValue::from_str(key))?;
    Ok((!v.is_undefined() && !v.is_null()).then_some(v))
}

fn opt_format(options: Option<&JsValue>) -> Result<BankFormat, JsValue> {
    match opt(options, "format")? {
        None => Ok(BankFormat::F32),
        Some(v) => {
            let s = v
                .as_string()
                .ok_or_else(|| invalid_input("format must be 'f32', 'f16' or 'int8'"))?;
            BankFormat::parse(&s).ok_or_else(|| {
                invalid_input(format!("format must be 'f32', 'f16' or 'int8', got {s:?}"))
            })
        }
    }
}

fn opt_mask(options: Option<&JsValue>) -> Result<Option<Vec<u32>>, JsValue> {
    match opt(options, "mask")? {
        None => Ok(None),
        Some(v) => v
            .dyn_into::<Uint32Array>()
            .map(|a| Some(a.to_vec()))
            .map_err(|_| invalid_input("mask must be a Uint32Array")),
    }
}

fn opt_path(options: Option<&JsValue>) -> Result<FetchPath, JsValue> {
    match opt(options, "path")? {
        None => Ok(FetchPath::Auto),
        Some(v) => {
            let s = v
                .as_string()
                .ok_or_else(|| invalid_input("path must be 'auto', 'gpu' or 'cpu'"))?;
            FetchPath::parse(&s).ok_or_else(|| {
                invalid_input(format!("path must be 'auto', 'gpu' or 'cpu', got {s:?}"))
            })
        }
    }
}

fn opt_usize(options: Option<&JsValue>, key: &str, default: usize) -> Result<usize, JsValue> {
    match opt(options, key)? {
        None => Ok(default),
        Some(v) => match v.as_f64() {
            Some(x) if x >= 0.0 && x.fract() == 0.0 && x <= u32::MAX as f64 => Ok(x as usize),
            _ => Err(invalid_input(format!(
                "{key} must be a non-negative integer"
            ))),
        },
    }
}

/// Undocumented launch tuning for the benchmark page (`_rowsPerInvocation`, `_queriesPerPass`,
/// `_multiQueryScan`, `_f16IntegerDecode`); absent keys keep the defaults.
fn opt_tuning(options: Option<&JsValue>) -> Result<Tuning, JsValue> {
    let num = |key: &str| -> Result<Option<usize>, JsValue> {
        opt(options, key)?
            .is_some()
            .then(|| opt_usize(options, key, 0))
            .transpose()
    };
    let flag = |key: &str| -> Result<Option<bool>, JsValue> {
        opt(options, key)?
            .map(|v| {
                v.as_bool()
                    .ok_or_else(|| invalid_input(format!("{key} must be a boolean")))
            })
            .transpose()
    };
    Ok(Tuning {
        rows_per_invocation: num("_rowsPerInvocation")?,
        queries_per_pass: num("_queriesPerPass")?,
        multi_query_scan: flag("_multiQueryScan")?,
        f16_integer_decode: flag("_f16IntegerDecode")?,
        ..Tuning::default()
    })
}

fn result_js(r: &TopkResult) -> Result<TopkResultJs, JsValue> {
    let o = Object::new();
    Reflect::set(&o, &"ids".into(), &Uint32Array::from(&r.ids[..]))?;
    Reflect::set(&o, &"scores".into(), &Float32Array::from(&r.scores[..]))?;
    Reflect::set(&o, &"queries".into(), &JsValue::from(r.queries as u32))?;
    Reflect::set(&o, &"k".into(), &JsValue::from(r.k as u32))?;
    Ok(JsValue::from(o).unchecked_into())
}

/// Milliseconds from the page's (or worker's) `performance.now()`.
fn now_ms() -> f64 {
    let perf = Reflect::get(&js_sys::global(), &"performance".into()).ok();
    perf.and_then(|p| p.dyn_into::<web_sys::Performance>().ok())
        .map(|p| p.now())
        .unwrap_or_else(js_sys::Date::now)
}

#[wasm_bindgen]
impl Kernels {
    /// The `k` best rows of `bank` (`[N, dims]`) for each query (`[B, dims]`) by dot product:
    /// `{ ids: Uint32Array, scores: Float32Array }`, `[B, k]` row-major, best first (higher
    /// score, then lower row id). Unfilled slots (fewer than k allowed rows) hold id 0xFFFFFFFF
    /// and score -Infinity. `k` is 1..=256. Errors: `INVALID_INPUT` (k, empty query, format),
    /// `DIMENSION_MISMATCH`, `SHAPE_MISMATCH` (bank, mask), `NON_FINITE`.
    pub async fn topk(
        &self,
        bank: Vec<f32>,
        dims: usize,
        queries: Vec<f32>,
        k: usize,
        options: Option<TopkOptionsJs>,
    ) -> Result<TopkResultJs, JsValue> {
        let o: Option<JsValue> = options.map(Into::into);
        let format = opt_format(o.as_ref())?;
        let mask = opt_mask(o.as_ref())?;
        let compute = self.compute.clone();
        let opts = TopkOptions {
            mask: mask.as_deref(),
            format,
        };
        let r = fetch::topk(&compute, &bank, dims, &queries, k, opts)
            .await
            .map_err(kerr)?;
        result_js(&r)
    }

    /// Rows of `bank` (`[N, dims]`) selected by `ids` (each id selects `block` consecutive rows),
    /// as one row-major `Float32Array` `[ids.length * block, dims]`; id 0xFFFFFFFF and rows past
    /// the end give zeros. On WebGPU the copy runs on the GPU.
    pub async fn gather(
        &self,
        bank: Vec<f32>,
        dims: usize,
        ids: Vec<u32>,
        options: Option<GatherOptionsJs>,
    ) -> Result<Vec<f32>, JsValue> {
        let o: Option<JsValue> = options.map(Into::into);
        let format = opt_format(o.as_ref())?;
        let block = opt_usize(o.as_ref(), "block", 1)?;
        let n = crate::kernels::rows_of("bank", &bank, dims).map_err(kerr)?;
        let fopts = FlatBankOptions {
            format,
            capacity: n,
            cpu_mirror: self.compute.gpu_context().is_none(),
            ..FlatBankOptions::default()
        };
        let mut fb = FlatBank::new(&self.compute, dims, fopts).map_err(kerr)?;
        fb.append(&bank).await.map_err(kerr)?;
        if fb.has_gpu() {
            let rows = fb
                .gather_gpu(GatherIds::Host(&ids), block)
                .await
                .map_err(kerr)?;
            rows.read().await.map_err(kerr)
        } else {
            fb.gather_cpu(&ids, block).map_err(kerr)
        }
    }

    /// A resident bank of `dims`-dimensional rows (see `FlatBank`).
    #[wasm_bindgen(js_name = flatBank)]
    pub fn flat_bank(
        &self,
        dims: usize,
        options: Option<FlatBankOptionsJs>,
    ) -> Result<FlatBankJs, JsValue> {
        let o: Option<JsValue> = options.map(Into::into);
        let defaults = FlatBankOptions::default();
        let cpu_mirror = match opt(o.as_ref(), "cpuMirror")? {
            None => true,
            Some(v) => v
                .as_bool()
                .ok_or_else(|| invalid_input("cpuMirror must be a boolean"))?,
        };
        let fopts = FlatBankOptions {
            format: opt_format(o.as_ref())?,
            capacity: opt_usize(o.as_ref(), "capacity", 0)?,
            cpu_mirror,
            auto_gpu_min_bytes: opt_usize(
                o.as_ref(),
                "autoGpuMinBytes",
                defaults.auto_gpu_min_bytes,
            )?,
            tuning: opt_tuning(o.as_ref())?,
            ..defaults
        };
        let bank = FlatBank::new(&self.compute, dims, fopts).map_err(kerr)?;
        Ok(FlatBankJs {
            inner: Rc::new(RefCell::new(bank)),
        })
    }

    /// Benchmark helper: milliseconds per run of the plain copy kernel over `bytes` (median
    /// of `reps` runs after a warm-up; each run is `inner` copies in one submission).
    #[doc(hidden)]
    #[wasm_bindgen(js_name = benchGpuCopy)]
    pub async fn bench_gpu_copy(
        &self,
        bytes: f64,
        reps: usize,
        inner: usize,
    ) -> Result<Vec<f64>, JsValue> {
        let bench = GpuCopyBench::new(&self.compute, bytes as u64).map_err(kerr)?;
        bench.run(1).await.map_err(kerr)?;
        let mut times = Vec::with_capacity(reps);
        for _ in 0..reps {
            let t0 = now_ms();
            bench.run(inner.max(1)).await.map_err(kerr)?;
            times.push((now_ms() - t0) / inner.max(1) as f64);
        }
        Ok(times)
    }

    /// Benchmark helper: milliseconds per memcpy of `bytes` inside wasm memory, `reps` samples.
    #[doc(hidden)]
    #[wasm_bindgen(js_name = benchMemcpy)]
    pub fn bench_memcpy(&self, bytes: usize, reps: usize) -> Vec<f64> {
        let src = vec![1u8; bytes];
        let mut dst = vec![0u8; bytes];
        dst.copy_from_slice(&src);
        let mut times = Vec::with_capacity(reps);
        for _ in 0..reps {
            let t0 = now_ms();
            dst.copy_from_slice(std::hint::black_box(&src));
            std::hint::black_box(&dst);
            times.push(now_ms() - t0);
        }
        times
    }

    /// Benchmark helper: milliseconds per plain read of `bytes` inside wasm memory (one core,
    /// eight independent 4-lane sums per 128 bytes: what a read-only scan could reach at best),
    /// `reps` samples.
    #[doc(hidden)]
    #[wasm_bindgen(js_name = benchRead)]
    pub fn bench_read(&self, bytes: usize, reps: usize) -> Vec<f64> {
        let buf = vec![1.0f32; bytes / 4];
        let mut times = Vec::with_capacity(reps);
        for _ in 0..reps {
            let t0 = now_ms();
            std::hint::black_box(plain_read(std::hint::black_box(&buf)));
            times.push(now_ms() - t0);
        }
        times
    }
}

/// The sum of `v` in eight 4-lane accumulators (order irrelevant: a bandwidth probe).
#[cfg(target_feature = "simd128")]
fn plain_read(v: &[f32]) -> f32 {
    use core::arch::wasm32::*;
    let mut acc = [f32x4_splat(0.0); 8];
    let mut blocks = v.chunks_exact(32);
    for b in &mut blocks {
        for (j, a) in acc.iter_mut().enumerate() {
            // SAFETY: `b` holds 32 f32s, so the 16 bytes at 4 * j are in bounds; wasm loads need
            // no alignment.
            *a = f32x4_add(*a, unsafe {
                v128_load(b.as_ptr().add(4 * j) as *const v128)
            });
        }
    }
    let s = acc.iter().fold(f32x4_splat(0.0), |s, a| f32x4_add(s, *a));
    f32x4_extract_lane::<0>(s)
        + f32x4_extract_lane::<1>(s)
        + f32x4_extract_lane::<2>(s)
        + f32x4_extract_lane::<3>(s)
        + blocks.remainder().iter().sum::<f32>()
}

/// The sum of `v` (a bandwidth probe; scalar without `simd128`).
#[cfg(not(target_feature = "simd128"))]
fn plain_read(v: &[f32]) -> f32 {
    v.iter().sum()
}

/// A resident memory bank for top-k: rows on the GPU (when WebGPU is available) and a CPU mirror;
/// appends and updates upload only the changed rows, `remove` masks a row. Row ids are append
/// indices and stay stable. Calls must not overlap a pending `append`/`setRow` (error `BUSY`).
#[wasm_bindgen(js_name = FlatBank)]
pub struct FlatBankJs {
    inner: Rc<RefCell<FlatBank>>,
}

fn busy() -> JsValue {
    to_js_error(
        "BUSY",
        "the bank is being updated by a pending call; await it first",
    )
}

// The async methods hold a `RefCell` borrow across their awaits on purpose: borrows are taken
// with `try_borrow(_mut)`, so an overlapping call gets a `BUSY` error instead of a panic, and
// concurrent queries (shared borrows) are allowed.
#[allow(clippy::await_holding_refcell_ref)]
#[wasm_bindgen(js_class = FlatBank)]
impl FlatBankJs {
    /// Append rows (`[m, dims]`); resolves to the id of the first appended row.
    pub async fn append(&self, rows: Vec<f32>) -> Result<u32, JsValue> {
        let inner = self.inner.clone();
        let mut bank = inner.try_borrow_mut().map_err(|_| busy())?;
        let r = bank.append(&rows).await.map_err(kerr)?;
        Ok(r.start as u32)
    }

    /// Replace row `i`'s values (one row uploaded). Does not change whether it is live.
    #[wasm_bindgen(js_name = setRow)]
    pub async fn set_row(&self, i: usize, values: Vec<f32>) -> Result<(), JsValue> {
        let inner = self.inner.clone();
        let mut bank = inner.try_borrow_mut().map_err(|_| busy())?;
        bank.set_row(i, &values).await.map_err(kerr)
    }

    /// Mask row `i` out of later results; `true` if it was live.
    pub fn remove(&self, i: usize) -> Result<bool, JsValue> {
        let mut bank = self.inner.try_borrow_mut().map_err(|_| busy())?;
        bank.remove(i).map_err(kerr)
    }

    /// Undo `remove(i)`; `true` if it was removed.
    pub fn restore(&self, i: usize) -> Result<bool, JsValue> {
        let mut bank = self.inner.try_borrow_mut().map_err(|_| busy())?;
        bank.restore(i).map_err(kerr)
    }

    /// Rows appended (removed rows included).
    pub fn len(&self) -> Result<usize, JsValue> {
        Ok(self.inner.try_borrow().map_err(|_| busy())?.len())
    }

    /// Rows not removed.
    #[wasm_bindgen(js_name = liveCount)]
    pub fn live_count(&self) -> Result<usize, JsValue> {
        Ok(self.inner.try_borrow().map_err(|_| busy())?.live_count())
    }

    /// Storage format: `'f32'`, `'f16'` or `'int8'`.
    pub fn format(&self) -> Result<String, JsValue> {
        Ok(self
            .inner
            .try_borrow()
            .map_err(|_| busy())?
            .format()
            .as_str()
            .into())
    }

    /// Whether the rows are on the GPU.
    #[wasm_bindgen(js_name = hasGpu)]
    pub fn has_gpu(&self) -> Result<bool, JsValue> {
        Ok(self.inner.try_borrow().map_err(|_| busy())?.has_gpu())
    }

    /// GPU chunks allocated (banks over the storage-binding limit use several).
    #[wasm_bindgen(js_name = chunkCount)]
    pub fn chunk_count(&self) -> Result<usize, JsValue> {
        Ok(self.inner.try_borrow().map_err(|_| busy())?.chunk_count())
    }

    /// Bytes a full scan reads.
    #[wasm_bindgen(js_name = bankBytes)]
    pub fn bank_bytes(&self) -> Result<f64, JsValue> {
        Ok(self.inner.try_borrow().map_err(|_| busy())?.bank_bytes() as f64)
    }

    /// Bytes uploaded to the GPU since creation.
    #[wasm_bindgen(js_name = uploadedBytes)]
    pub fn uploaded_bytes(&self) -> Result<f64, JsValue> {
        Ok(self
            .inner
            .try_borrow()
            .map_err(|_| busy())?
            .uploaded_bytes() as f64)
    }

    /// The `k` best live rows for each query (`[B, dims]`), optionally restricted by `mask`, on
    /// `path` (`'auto'`, `'gpu'`, `'cpu'`). Same result format as `kernels.topk`.
    pub async fn topk(
        &self,
        queries: Vec<f32>,
        k: usize,
        options: Option<BankTopkOptionsJs>,
    ) -> Result<TopkResultJs, JsValue> {
        let o: Option<JsValue> = options.map(Into::into);
        let mask = opt_mask(o.as_ref())?;
        let path = opt_path(o.as_ref())?;
        let inner = self.inner.clone();
        let bank = inner.try_borrow().map_err(|_| busy())?;
        let r = bank
            .topk(&queries, k, mask.as_deref(), path)
            .await
            .map_err(kerr)?;
        result_js(&r)
    }

    /// Rows selected by `ids` (`block` rows per id), `[ids.length * block, dims]` (dequantised);
    /// on the GPU path the copy runs on the GPU and is read back.
    pub async fn gather(
        &self,
        ids: Vec<u32>,
        options: Option<BankGatherOptionsJs>,
    ) -> Result<Vec<f32>, JsValue> {
        let o: Option<JsValue> = options.map(Into::into);
        let block = opt_usize(o.as_ref(), "block", 1)?;
        let path = opt_path(o.as_ref())?;
        let inner = self.inner.clone();
        let bank = inner.try_borrow().map_err(|_| busy())?;
        match bank.resolve(path).map_err(kerr)? {
            FetchPath::Cpu => bank.gather_cpu(&ids, block).map_err(kerr),
            _ => {
                let rows = bank
                    .gather_gpu(GatherIds::Host(&ids), block)
                    .await
                    .map_err(kerr)?;
                rows.read().await.map_err(kerr)
            }
        }
    }

    /// Benchmark helper: milliseconds per GPU top-k with submission and readback amortised
    /// (`reps` complete top-k computations in one submission).
    #[doc(hidden)]
    #[wasm_bindgen(js_name = benchGpuScans)]
    pub async fn bench_gpu_scans(
        &self,
        queries: Vec<f32>,
        k: usize,
        reps: usize,
    ) -> Result<f64, JsValue> {
        let inner = self.inner.clone();
        let bank = inner.try_borrow().map_err(|_| busy())?;
        let t0 = now_ms();
        bank.bench_gpu_scans(&queries, k, reps.max(1))
            .await
            .map_err(kerr)?;
        Ok((now_ms() - t0) / reps.max(1) as f64)
    }
}
