//! `Kernels`: the compute kernels for JS, on WebGPU or the CPU path.

use wasm_bindgen::prelude::*;

use super::errors::{invalid_input, JsError2};
use crate::{kernels, Compute, Prefer};

#[wasm_bindgen(typescript_custom_section)]
const TS_KERNEL_OPTIONS: &'static str = r#"
/** Options of `Kernels.create`. */
export interface KernelsOptions {
  /** `'webgpu'` (default) uses WebGPU when an adapter exists and falls back to the CPU; `'cpu'` always uses the CPU path. */
  prefer?: 'webgpu' | 'cpu';
}
/** What the WebGPU adapter reported about itself. */
export interface AdapterInfo {
  name: string;
  api: string;
  device_type: string;
  driver: string;
  vendor: number;
}
"#;

#[wasm_bindgen]
extern "C" {
    /// Options object of `Kernels.create`.
    #[wasm_bindgen(typescript_type = "KernelsOptions")]
    pub type KernelsOptions;
    /// Adapter information object.
    #[wasm_bindgen(typescript_type = "AdapterInfo | undefined")]
    pub type AdapterInfoJs;
}

/// Compute kernels on WebGPU, or on the CPU path when WebGPU is missing or not wanted.
#[wasm_bindgen]
pub struct Kernels {
    pub(crate) compute: Compute,
}

#[wasm_bindgen]
impl Kernels {
    /// Acquire a WebGPU device (or choose the CPU path). Never rejects for a missing GPU: check
    /// `backend()` to see which path was taken and `fallbackReason()` for why.
    pub async fn create(options: Option<KernelsOptions>) -> Result<Kernels, JsValue> {
        let prefer = match options {
            None => Prefer::Gpu,
            Some(o) => {
                let v = js_sys::Reflect::get(&o, &JsValue::from_str("prefer"))?;
                if v.is_undefined() {
                    Prefer::Gpu
                } else {
                    let s = v
                        .as_string()
                        .ok_or_else(|| invalid_input("prefer must be 'webgpu' or 'cpu'"))?;
                    Prefer::parse(&s).ok_or_else(|| {
                        invalid_input(format!("prefer must be 'webgpu' or 'cpu', got {s:?}"))
                    })?
                }
            }
        };
        Ok(Kernels {
            compute: Compute::new(prefer).await,
        })
    }

    /// `'webgpu'` or `'cpu'`: which path the kernels run on.
    pub fn backend(&self) -> String {
        self.compute.backend().as_str().to_string()
    }

    /// The adapter's self-description, or `undefined` on the CPU path.
    #[wasm_bindgen(js_name = adapterInfo)]
    pub fn adapter_info(&self) -> Result<AdapterInfoJs, JsValue> {
        match self.compute.adapter_info() {
            None => Ok(JsValue::UNDEFINED.unchecked_into()),
            Some(info) => Ok(serde_wasm_bindgen::to_value(info)?.unchecked_into()),
        }
    }

    /// Why WebGPU was not used although it was preferred, or `undefined`.
    #[wasm_bindgen(js_name = fallbackReason)]
    pub fn fallback_reason(&self) -> Option<String> {
        self.compute.fallback_reason().map(str::to_string)
    }

    /// Dot-product scores of `queries` (`[B, dims]`) against `bank` (`[N, dims]`), row-major
    /// `[B, N]`.
    pub async fn scores(
        &self,
        bank: Vec<f32>,
        dims: usize,
        queries: Vec<f32>,
    ) -> Result<Vec<f32>, JsValue> {
        let compute = self.compute.clone();
        kernels::scores::scores(&compute, &bank, dims, &queries)
            .await
            .map_err(|e| JsError2::from(e).into())
    }
}
