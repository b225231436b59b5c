//! The store in headless Chromium on real IndexedDB: the same contract suite as natively
//! (`tests/store_contract.rs`), and the model-based test with reopens between steps.
#![cfg(target_arch = "wasm32")]

use mnemo::store::idb::IdbBackend;
use mnemo::store::testing::{contract, model_run, Factory, IdbFactory, ModelConfig};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// The IndexedDB factory, waiting 20 ms to settle.
const FACTORY: IdbFactory = IdbFactory(20);

macro_rules! web_case {
    ($name:ident) => {
        #[wasm_bindgen_test]
        async fn $name() {
            contract::$name(&FACTORY).await;
        }
    };
}

mnemo::store_contract_cases!(web_case);

#[wasm_bindgen_test]
async fn model_based_indexeddb_with_reopens() {
    let t0 = js_sys::Date::now();
    model_run(
        &FACTORY,
        "model",
        ModelConfig {
            seed: 7,
            steps: 300,
            reopen_every: 20,
            full_check_every: 25,
            tidy: false,
        },
    )
    .await;
    web_sys::console::log_1(
        &format!(
            "model on IndexedDB: 300 steps in {:.0} ms",
            js_sys::Date::now() - t0
        )
        .into(),
    );
}

#[wasm_bindgen_test]
async fn model_based_indexeddb_deferred_merges() {
    // Writes defer their segment merges to tidies run at random steps (as the JS `Store` does
    // once writes pause).
    model_run(
        &FACTORY,
        "model-tidy",
        ModelConfig {
            seed: 8,
            steps: 150,
            reopen_every: 30,
            full_check_every: 25,
            tidy: true,
        },
    )
    .await;
}

/// The JS-array sink (segment blobs streamed straight into one `Float32Array`, as `loadVectors`
/// does) gives exactly the wasm-side load, over blob segments and legacy `ArrayBuffer` ones.
#[wasm_bindgen_test]
async fn js_vector_sink_matches_the_wasm_load() {
    use mnemo::rng::Rng;
    use mnemo::store::idb::JsVectorSink;
    use mnemo::store::testing::{episode, legacy_fixture};
    use mnemo::store::{OpenOptions, Store};
    let dims = 37; // odd: rows do not align with anything
    let mut rng = Rng::new(3);
    let eps: Vec<_> = (0..200)
        .map(|i| episode(&mut rng, ["a", "b"][i % 2], &format!("v{i}"), dims))
        .collect();
    // Legacy segments (ArrayBuffer values), then new ones (Blob values) after the upgrade.
    let fx = legacy_fixture(dims, 16, &eps[..100], &[3, 50]);
    FACTORY.install_legacy("sink", &fx).await;
    let s = Store::open(
        IdbBackend::open("sink").await.unwrap(),
        OpenOptions::default(),
    )
    .await
    .unwrap();
    s.put_many(eps[100..].to_vec()).await.unwrap();
    let want = s.load_vectors().await.unwrap();
    assert_eq!(want.len(), 198);
    let mut sink = JsVectorSink::default();
    let got = s.load_vectors_into(&mut sink).await.unwrap();
    let arr = sink.into_array().expect("array");
    assert_eq!(got.ids, want.ids);
    assert_eq!(got.namespace_of, want.namespace_of);
    assert_eq!(arr.to_vec(), want.vectors);
    s.destroy().await.unwrap();
}

/// Here (Chromium: sync access handles in workers) the journal's pending entries go through its
/// worker; the journal case also passes with the worker turned off (the writable path that pages
/// without workers, or with a strict content security policy, use).
#[wasm_bindgen_test]
async fn journal_worker_is_used_and_the_writable_path_still_works() {
    use mnemo::store::opfs::OpfsDir;
    use mnemo::store::opfs_worker::set_enabled;
    let d = OpfsDir::open("t-journal-worker").await.expect("OPFS");
    assert!(
        d.uses_worker().await,
        "pending entries should be written by the worker here"
    );
    d.release();
    OpfsDir::delete("t-journal-worker").await.expect("delete");
    set_enabled(false);
    let off = OpfsDir::open("t-journal-worker").await.expect("OPFS");
    assert!(
        !off.uses_worker().await,
        "turned off, the worker is not used"
    );
    off.release();
    OpfsDir::delete("t-journal-worker").await.expect("delete");
    contract::journal_restores_a_discarded_database(&FACTORY).await;
    set_enabled(true);
}
