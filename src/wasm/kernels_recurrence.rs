//! `Kernels` methods for the linear-recurrence kernels (a separate `#[wasm_bindgen] impl Kernels`
//! block): `kernels.linearRecurrence({ q, k, v, decay?, beta?, heads, dk, dv, scale?, state?,
//! form })`.

use js_sys::{Float32Array, Object, Reflect};
use wasm_bindgen::prelude::*;

use super::errors::{invalid_input, JsError2};
use super::kernels::Kernels;
use crate::kernels::recurrence::{linear_recurrence, Decay, Form, RecurrenceInput};
use crate::KernelError;

#[wasm_bindgen(typescript_custom_section)]
const TS_RECURRENCE: &'static str = r#"
/**
 * Options of `Kernels.linearRecurrence`. All arrays are row-major and token-major.
 * No decay and no beta: plain linear attention; scalar decay: RetNet / Mamba-2; vector decay:
 * GLA; beta alone: DeltaNet; beta with a decay: the gated delta rule.
 */
export interface LinearRecurrenceOptions {
  /** Queries `[T, heads, dk]`. */
  q: Float32Array;
  /** Keys `[T, heads, dk]` (L2-normalise them for the delta rule). */
  k: Float32Array;
  /** Values `[T, heads, dv]`. */
  v: Float32Array;
  /** Multiplicative decays in (0, 1]: `[T, heads]` (scalar) or `[T, heads, dk]` (vector). */
  decay?: Float32Array;
  /** Delta-rule write strengths `[T, heads]` (selects the delta rule). */
  beta?: Float32Array;
  heads: number;
  dk: number;
  dv: number;
  /** Output scale, default `1 / sqrt(dk)`. */
  scale?: number;
  /** Initial state `[heads, dk, dv]`, default zeros (carry `state` of the previous call). */
  state?: Float32Array;
  /** `'recurrent'` (token by token: decode, streaming) or `'chunked'` (prefill). */
  form: 'recurrent' | 'chunked';
}
/** Result of `Kernels.linearRecurrence`. */
export interface LinearRecurrenceResult {
  /** Outputs `[T, heads, dv]`. */
  out: Float32Array;
  /** State after the last token, `[heads, dk, dv]`. */
  state: Float32Array;
}
"#;

#[wasm_bindgen]
extern "C" {
    /// Options object of `Kernels.linearRecurrence`.
    #[wasm_bindgen(typescript_type = "LinearRecurrenceOptions")]
    pub type LinearRecurrenceOptions;
    /// Result object of `Kernels.linearRecurrence`.
    #[wasm_bindgen(typescript_type = "LinearRecurrenceResult")]
    pub type LinearRecurrenceResult;
}

fn field(o: &JsValue, name: &str) -> Result<JsValue, JsValue> {
    Reflect::get(o, &JsValue::from_str(name))
}

fn f32_array(o: &JsValue, name: &str, required: bool) -> Result<Option<Vec<f32>>, JsValue> {
    let v = field(o, name)?;
    if v.is_undefined() || v.is_null() {
        return if required {
            Err(invalid_input(format!(
                "{name} is required (a Float32Array)"
            )))
        } else {
            Ok(None)
        };
    }
    match v.dyn_ref::<Float32Array>() {
        Some(a) => Ok(Some(a.to_vec())),
        None => Err(invalid_input(format!("{name} must be a Float32Array"))),
    }
}

fn dim(o: &JsValue, name: &'static str) -> Result<usize, JsValue> {
    let v = field(o, name)?;
    match v.as_f64() {
        Some(x) if x.fract() == 0.0 && (1.0..=1_048_576.0).contains(&x) => Ok(x as usize),
        _ => Err(invalid_input(format!(
            "{name} must be a positive integer, got {v:?}"
        ))),
    }
}

#[wasm_bindgen]
impl Kernels {
    /// The linear recurrence (see `LinearRecurrenceOptions`): returns `{ out, state }`. Errors
    /// are `MnemoError`s with a `code` (`SHAPE_MISMATCH`, `NON_FINITE`, `INVALID_INPUT` for a
    /// decay outside (0, 1] or bad options, `GPU_*`).
    #[wasm_bindgen(js_name = linearRecurrence)]
    pub async fn linear_recurrence(
        &self,
        options: LinearRecurrenceOptions,
    ) -> Result<LinearRecurrenceResult, JsValue> {
        let o: &JsValue = options.as_ref();
        if !o.is_object() {
            return Err(invalid_input("linearRecurrence expects an options object"));
        }
        let q = f32_array(o, "q", true)?.unwrap_or_default();
        let k = f32_array(o, "k", true)?.unwrap_or_default();
        let v = f32_array(o, "v", true)?.unwrap_or_default();
        let decay = f32_array(o, "decay", false)?;
        let beta = f32_array(o, "beta", false)?;
        let state = f32_array(o, "state", false)?;
        let heads = dim(o, "heads")?;
        let dk = dim(o, "dk")?;
        let dv = dim(o, "dv")?;
        let scale = match field(o, "scale")? {
            s if s.is_undefined() || s.is_null() => None,
            s => Some(
                s.as_f64()
                    .ok_or_else(|| invalid_input("scale must be a number"))? as f32,
            ),
        };
        let form_v = field(o, "form")?;
        let form = match form_v.as_string() {
            Some(s) => Form::parse(&s).ok_or_else(|| {
                invalid_input(format!("form must be 'recurrent' or 'chunked', got {s:?}"))
            })?,
            None => return Err(invalid_input("form must be 'recurrent' or 'chunked'")),
        };
        // The decay's kind follows from its length: [T, heads] or [T, heads, dk].
        let t = q.len() / heads.saturating_mul(dk);
        let decay = match &decay {
            None => Decay::None,
            Some(d) if d.len() == t * heads => Decay::Scalar(d),
            Some(d) if Some(d.len()) == (t * heads).checked_mul(dk) => Decay::Vector(d),
            Some(d) => {
                return Err(JsError2::from(KernelError::Shape {
                    name: "decay",
                    expected: format!(
                        "T·heads = {} (scalar) or T·heads·dk = {} (vector) values",
                        t * heads,
                        (t * heads).saturating_mul(dk)
                    ),
                    got: d.len(),
                })
                .into())
            }
        };
        let input = RecurrenceInput {
            q: &q,
            k: &k,
            v: &v,
            decay,
            beta: beta.as_deref(),
            heads,
            dk,
            dv,
            scale,
            state: state.as_deref(),
        };
        let compute = self.compute.clone();
        let r = linear_recurrence(&compute, &input, form)
            .await
            .map_err(|e| JsValue::from(JsError2::from(e)))?;
        let obj = Object::new();
        Reflect::set(
            &obj,
            &JsValue::from_str("out"),
            &Float32Array::from(r.out.as_slice()),
        )?;
        Reflect::set(
            &obj,
            &JsValue::from_str("state"),
            &Float32Array::from(r.state.as_slice()),
        )?;
        Ok(JsValue::from(obj).unchecked_into())
    }
}
