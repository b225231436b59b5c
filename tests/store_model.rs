//! Model-based test of the store on the in-memory backend: seeded random sequences of writes
//! and reads checked against a plain map after every step (thousands of steps, with reopens).
#![cfg(not(target_arch = "wasm32"))]

use mnemo::store::testing::{model_run, MemoryFactory, ModelConfig};

#[test]
fn model_based_memory_backend() {
    for seed in 1..=4u64 {
        let f = MemoryFactory::default();
        pollster::block_on(model_run(
            &f,
            "model",
            ModelConfig {
                seed,
                steps: 1500,
                reopen_every: 97,
                full_check_every: 25,
                tidy: false,
            },
        ));
    }
}

#[test]
fn model_based_memory_backend_deferred_merges() {
    // Writes defer their segment merges; tidies run at random steps.
    for seed in 11..=13u64 {
        let f = MemoryFactory::default();
        pollster::block_on(model_run(
            &f,
            "model-tidy",
            ModelConfig {
                seed,
                steps: 1500,
                reopen_every: 97,
                full_check_every: 25,
                tidy: true,
            },
        ));
    }
}
