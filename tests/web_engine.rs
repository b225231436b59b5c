//! The memory engine in headless Chromium on real IndexedDB: the same named cases as natively
//! (`tests/engine_mnemo.rs`) and the model-based test (two connections, reopens, every recall
//! against the brute-force oracle), plus the model-based test with the engine on the WebGPU
//! device (random `backend: auto | webgpu | cpu` per recall: the GPU flat top-k runs in the
//! browser and every recall still equals the oracle).
#![cfg(target_arch = "wasm32")]

use mnemo::engine::mnemo::testing::{cases, model_run, model_run_on, EngineModelConfig};
use mnemo::store::testing::IdbFactory;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// The IndexedDB factory, waiting 5 ms to settle.
const FACTORY: IdbFactory = IdbFactory(5);

macro_rules! web_case {
    ($name:ident) => {
        #[wasm_bindgen_test]
        async fn $name() {
            cases::$name(&FACTORY).await;
        }
    };
}

mnemo::engine_cases!(web_case);

#[wasm_bindgen_test]
async fn model_based_on_indexeddb() {
    model_run(
        &FACTORY,
        "engine-model",
        EngineModelConfig {
            seed: 42,
            steps: 250,
            reopen_every: 61,
            dims: 8,
        },
    )
    .await;
}

#[wasm_bindgen_test]
async fn model_based_on_webgpu() {
    let gpu = mnemo::testing::require_gpu().await;
    model_run_on(
        &FACTORY,
        "engine-model-gpu",
        EngineModelConfig {
            seed: 43,
            steps: 150,
            reopen_every: 53,
            dims: 8,
        },
        gpu,
    )
    .await;
}
