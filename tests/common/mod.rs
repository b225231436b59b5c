//! Helpers shared by the native tests that read the evaluation data in `../shared/eval` (not part
//! of the repository): where it is, and the LoCoMo files' formats (raw little-endian f32 banks,
//! JSON lines with a `conv` field); and where the all-MiniLM-L6-v2 weights from `make setup` are.
//!
//! Without the data a test prints where it looked and checks nothing, since a clone elsewhere may
//! not have it; `MNEMO_REQUIRE_EVAL=1` turns that into a failure.
#![allow(dead_code)] // each test binary uses a subset

use std::path::{Path, PathBuf};

/// `$MNEMO_EVAL_DIR`, default `../shared/eval` next to the crate.
pub fn eval_root() -> PathBuf {
    std::env::var_os("MNEMO_EVAL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/eval"))
}

/// The LoCoMo folder when every file in `needs` is there; otherwise says so (or panics under
/// `MNEMO_REQUIRE_EVAL=1`) and returns `None`.
pub fn locomo_dir(test: &str, needs: &[&str]) -> Option<PathBuf> {
    eval_dir("locomo", test, needs)
}

/// The folder `sub` of the evaluation data (`locomo`, `minilm`) when every file in `needs` is
/// there; otherwise says so (or panics under `MNEMO_REQUIRE_EVAL=1`) and returns `None`.
pub fn eval_dir(sub: &str, test: &str, needs: &[&str]) -> Option<PathBuf> {
    let dir = eval_root().join(sub);
    if let Some(missing) = needs.iter().find(|f| !dir.join(f).exists()) {
        let msg = format!(
            "WARNING: {test}: {sub} data not found ({} missing; set MNEMO_EVAL_DIR): not checked",
            dir.join(missing).display()
        );
        if std::env::var_os("MNEMO_REQUIRE_EVAL").is_some_and(|v| v == "1") {
            panic!("{msg} (MNEMO_REQUIRE_EVAL=1)");
        }
        println!("{msg}");
        return None;
    }
    Some(dir)
}

/// A raw little-endian f32 file.
pub fn read_f32(p: &Path) -> Vec<f32> {
    std::fs::read(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// The `conv` field of every line of a LoCoMo JSON-lines file.
pub fn conv_of(p: &Path) -> Vec<u32> {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["conv"].as_u64().expect("conv field") as u32
        })
        .collect()
}

/// The all-MiniLM-L6-v2 files from `make setup`: `$MNEMO_MINILM_DIR`, default `.cache/minilm`.
pub fn minilm_dir() -> PathBuf {
    std::env::var_os("MNEMO_MINILM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/minilm"))
}

/// One file of the MiniLM weights; panics naming `make setup` when it is missing (the encoder
/// tests need the weights: they are fetched by the set-up, never skipped).
pub fn weights_file(name: &str) -> Vec<u8> {
    let p = minilm_dir().join(name);
    std::fs::read(&p).unwrap_or_else(|e| {
        panic!(
            "all-MiniLM-L6-v2 weights missing: {} ({e}). Run `make setup` (it fetches them into \
             .cache/minilm) or set MNEMO_MINILM_DIR.",
            p.display()
        )
    })
}
