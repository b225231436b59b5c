//! Browser tests of the JS API of the hierarchical index and the product-key lookup
//! (`Kernels.hierBuild` / `hierSearch` / `productKeyLookup`, the `HierIndex` class) on WebGPU
//! (SwiftShader) and on the CPU path: results, persistence, incremental changes, masks, and typed
//! errors with their codes.
#![cfg(target_arch = "wasm32")]

use mnemo::kernels::hier::synth::{clustered, Clustered};
use mnemo::kernels::hier::topk::NO_ID;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn get(o: &JsValue, key: &str) -> JsValue {
    js_sys::Reflect::get(o, &key.into()).unwrap()
}

fn code_of<T>(r: Result<T, JsValue>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => get(&e, "code").as_string().unwrap_or_default(),
    }
}

#[wasm_bindgen_test]
async fn js_api_hier_and_pkm() {
    let (n, d) = (400, 16);
    let (bank, qs) = clustered(&Clustered::new(n, d, 4), 3);
    for prefer in ["webgpu", "cpu"] {
        let opts = js_sys::Object::new();
        js_sys::Reflect::set(&opts, &"prefer".into(), &prefer.into()).unwrap();
        let k = mnemo::wasm::Kernels::create(Some(opts.unchecked_into()))
            .await
            .unwrap();
        let build_opts = js_sys::Object::new();
        js_sys::Reflect::set(&build_opts, &"branching".into(), &6.into()).unwrap();
        js_sys::Reflect::set(&build_opts, &"depth".into(), &2.into()).unwrap();
        js_sys::Reflect::set(&build_opts, &"iterations".into(), &2.into()).unwrap();
        let idx = k
            .hier_build(bank.clone(), d, Some(build_opts.unchecked_into()))
            .await
            .unwrap();
        assert_eq!(idx.size(), n);
        assert_eq!(idx.built_on(), prefer);
        // Synchronous CPU search and the Kernels search agree (k = 5, default beam).
        let cpu = idx.search(&qs, 5, None).unwrap();
        let via = k.hier_search(&idx, qs.clone(), 5, None).await.unwrap();
        assert_eq!(get(&via, "backend").as_string().unwrap(), prefer);
        let a = js_sys::Uint32Array::from(get(&cpu, "ids")).to_vec();
        let b = js_sys::Uint32Array::from(get(&via, "ids")).to_vec();
        assert_eq!(a.len(), 15);
        assert_eq!(a, b, "{prefer}: hierSearch vs HierIndex.search");
        // Round trip through bytes, incremental changes, masks.
        let bytes = idx.to_bytes(None);
        let back = mnemo_hier_from_bytes(&bytes);
        let again =
            js_sys::Uint32Array::from(get(&back.search(&qs, 5, None).unwrap(), "ids")).to_vec();
        assert_eq!(again, a);
        back.insert(&[5000], &qs[..d]).unwrap();
        let top = js_sys::Uint32Array::from(get(&back.search(&qs[..d], 1, None).unwrap(), "ids"))
            .to_vec();
        assert_eq!(top, vec![5000]);
        back.remove(&[5000]).unwrap();
        let so = js_sys::Object::new();
        js_sys::Reflect::set(
            &so,
            &"mask".into(),
            &js_sys::Uint32Array::new_with_length(13),
        )
        .unwrap();
        let none = back.search(&qs, 2, Some(so.unchecked_into())).unwrap();
        let ids = js_sys::Uint32Array::from(get(&none, "ids")).to_vec();
        assert!(ids.iter().all(|&i| i == NO_ID));
        // Typed errors.
        assert_eq!(code_of(idx.search(&qs, 0, None)), "INVALID_INPUT");
        assert_eq!(
            code_of(idx.search(&qs[..d - 1], 1, None)),
            "DIMENSION_MISMATCH"
        );
        assert_eq!(code_of(idx.remove(&[99_999])), "UNKNOWN_ID");
        assert_eq!(code_of(idx.insert(&[1], &qs[..d])), "DUPLICATE_ID");
        let mut bad = bytes.clone();
        bad[30] ^= 0xFF;
        let e = mnemo_hier_from_bytes_err(&bad);
        assert_eq!(code_of::<()>(Err(e)), "INDEX_CORRUPT");
        let bo = js_sys::Object::new();
        js_sys::Reflect::set(&bo, &"mask".into(), &JsValue::from_str("nope")).unwrap();
        assert_eq!(
            code_of(idx.search(&qs, 1, Some(bo.unchecked_into()))),
            "INVALID_INPUT"
        );
        // Product keys.
        let pk = k
            .product_key_lookup(
                vec![1.0, 2.0],
                2,
                vec![1.0, -1.0],
                vec![0.5, 1.0],
                vec![0.0, 1.0, 2.0, 3.0],
                1,
                1,
            )
            .await
            .unwrap();
        assert_eq!(js_sys::Uint32Array::from(get(&pk, "ids")).to_vec(), vec![1]);
        assert_eq!(
            js_sys::Float32Array::from(get(&pk, "output")).to_vec(),
            vec![1.0]
        );
        let e = k
            .product_key_lookup(
                vec![1.0, 2.0],
                2,
                vec![1.0, -1.0],
                vec![0.5, 1.0],
                vec![0.0; 3],
                1,
                1,
            )
            .await;
        assert_eq!(code_of(e), "SHAPE_MISMATCH");
    }
}

fn mnemo_hier_from_bytes(bytes: &[u8]) -> mnemo::wasm::HierIndex {
    mnemo::wasm::HierIndex::from_bytes(bytes, None).unwrap()
}

fn mnemo_hier_from_bytes_err(bytes: &[u8]) -> JsValue {
    match mnemo::wasm::HierIndex::from_bytes(bytes, None) {
        Ok(_) => panic!("corrupt bytes loaded"),
        Err(e) => e,
    }
}
