//! The store's contract suite on the in-memory backend (the same cases run in Chromium on
//! IndexedDB in `tests/web_store.rs`).
#![cfg(not(target_arch = "wasm32"))]

use mnemo::store::testing::{contract, MemoryFactory};

macro_rules! native_case {
    ($name:ident) => {
        #[test]
        fn $name() {
            pollster::block_on(contract::$name(&MemoryFactory::default()));
        }
    };
}

mnemo::store_contract_cases!(native_case);
