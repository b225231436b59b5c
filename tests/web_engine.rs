//! The memory engine in headless Chromium on real IndexedDB: the same named cases as natively
//! (`tests/engine_mnemo.rs`) and the model-based test (two connections, reopens, every recall
//! against the brute-force oracle), plus the engine on the WebGPU device.
#![cfg(target_arch = "wasm32")]

use mnemo::engine::mnemo::testing::{cases, model_run, EngineModelConfig};
use mnemo::store::idb::{simulate_upgrade, IdbBackend};
use mnemo::store::testing::Factory;
use mnemo::store::StoreError;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

struct IdbFactory;

async fn sleep_ms(ms: i32) {
    let p = js_sys::Promise::new(&mut |resolve, _| {
        let f: js_sys::Function =
            js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("setTimeout"))
                .unwrap()
                .into();
        f.call2(&JsValue::NULL, &resolve, &JsValue::from(ms))
            .unwrap();
    });
    wasm_bindgen_futures::JsFuture::from(p).await.unwrap();
}

impl Factory for IdbFactory {
    type B = IdbBackend;
    async fn fresh(&self, name: &str) -> IdbBackend {
        IdbBackend::delete_database(name)
            .await
            .expect("delete database");
        IdbBackend::open(name).await.expect("open database")
    }
    async fn connect(&self, name: &str) -> Result<IdbBackend, StoreError> {
        IdbBackend::open(name).await
    }
    async fn upgrade_elsewhere(&self, name: &str, version: u32) {
        simulate_upgrade(name, version)
            .await
            .expect("upgrade elsewhere");
    }
    async fn settle(&self) {
        sleep_ms(5).await;
    }
    async fn raw_bytes(&self, name: &str) -> Vec<Vec<u8>> {
        let b = IdbBackend::open(name).await.expect("open for dump");
        let out = b.raw_dump().await.expect("raw dump");
        mnemo::store::Backend::close(&b);
        out
    }
}

macro_rules! web_case {
    ($name:ident) => {
        #[wasm_bindgen_test]
        async fn $name() {
            cases::$name(&IdbFactory).await;
        }
    };
}

mnemo::engine_cases!(web_case);

#[wasm_bindgen_test]
async fn model_based_on_indexeddb() {
    model_run(
        &IdbFactory,
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
