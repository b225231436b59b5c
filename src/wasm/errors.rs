//! Typed Rust errors to JS `Error` objects with a stable `code` property.

use wasm_bindgen::prelude::*;

use crate::{GpuError, KernelError};

/// A JS `Error` with `message`, `name = "MnemoError"` and a stable `code`.
pub fn to_js_error(code: &str, message: &str) -> JsValue {
    let err = js_sys::Error::new(message);
    err.set_name("MnemoError");
    let _ = js_sys::Reflect::set(&err, &JsValue::from_str("code"), &JsValue::from_str(code));
    err.into()
}

impl From<KernelError> for JsError2 {
    fn from(e: KernelError) -> Self {
        JsError2(to_js_error(e.code(), &e.to_string()))
    }
}

impl From<GpuError> for JsError2 {
    fn from(e: GpuError) -> Self {
        JsError2(to_js_error(e.code(), &e.to_string()))
    }
}

/// A converted error, ready to be thrown.
pub struct JsError2(pub JsValue);

impl From<JsError2> for JsValue {
    fn from(e: JsError2) -> JsValue {
        e.0
    }
}

/// `INVALID_INPUT` with `message`.
#[cfg(feature = "js-kernels")]
pub fn invalid_input(message: impl AsRef<str>) -> JsValue {
    to_js_error("INVALID_INPUT", message.as_ref())
}

/// A JS `Error` for a retrieval-core error (`code` from [`crate::engine::EngineError::code`]).
impl From<crate::engine::EngineError> for JsError2 {
    fn from(e: crate::engine::EngineError) -> Self {
        JsError2(to_js_error(e.code(), &e.to_string()))
    }
}

/// A JS `Error` for an engine error: `code` from [`crate::engine::MnemoError::code`] (the store's,
/// the retrieval core's or the kernels' code when it wraps one of theirs) and, for validation
/// errors, `field` naming the offending input (e.g. `episodes[2].embedding`).
pub fn mnemo_error(e: &crate::engine::MnemoError) -> JsValue {
    let v = to_js_error(e.code(), &e.to_string());
    if let Some(f) = e.field() {
        let _ = js_sys::Reflect::set(&v, &JsValue::from_str("field"), &JsValue::from_str(f));
    }
    v
}

impl From<crate::engine::MnemoError> for JsError2 {
    fn from(e: crate::engine::MnemoError) -> Self {
        JsError2(mnemo_error(&e))
    }
}
