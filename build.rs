//! Build script: minifies every `shaders/*.wgsl` into `$OUT_DIR/shaders/` (comments and blank
//! space removed, `src/wgsl_minify.rs`), which `src/shaders.rs` compiles into the binary.

#[path = "src/wgsl_minify.rs"]
#[allow(dead_code)]
mod wgsl_minify;

use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("shaders");
    std::fs::create_dir_all(&out).expect("create $OUT_DIR/shaders");
    println!("cargo:rerun-if-changed=src/wgsl_minify.rs");
    println!("cargo:rerun-if-changed=shaders");
    for entry in std::fs::read_dir(dir.join("shaders")).expect("read shaders/") {
        let path = entry.expect("shaders/ entry").path();
        if path.extension().is_some_and(|e| e == "wgsl") {
            println!("cargo:rerun-if-changed={}", path.display());
            let src = std::fs::read_to_string(&path).expect("read a shader");
            let name = path.file_name().expect("file name");
            std::fs::write(out.join(name), wgsl_minify::minify(&src)).expect("write a shader");
        }
    }
}
