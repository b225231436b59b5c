//! The memory engine natively on the in-memory store backend: the model-based test (random
//! remember / forget / update / recall sequences from two connections, with reopens, every recall
//! against a brute-force oracle) and the named cases of `mnemo::engine::mnemo::testing`.
#![cfg(not(target_arch = "wasm32"))]

use mnemo::engine::mnemo::testing::{cases, model_run, EngineModelConfig};
use mnemo::store::testing::MemoryFactory;

#[test]
fn model_based_two_connections_with_reopens() {
    for seed in 1..=6u64 {
        let f = MemoryFactory::default();
        pollster::block_on(model_run(
            &f,
            "model",
            EngineModelConfig {
                seed,
                steps: 1500,
                reopen_every: 113,
                dims: 8,
            },
        ));
    }
}

macro_rules! native_case {
    ($name:ident) => {
        #[test]
        fn $name() {
            pollster::block_on(cases::$name(&MemoryFactory::default()));
        }
    };
}

mnemo::engine_cases!(native_case);
