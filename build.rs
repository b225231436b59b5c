//! Build script: minifies every `shaders/*.wgsl` into `$OUT_DIR/shaders/` (comments and blank
//! space removed, `src/wgsl_minify.rs`), which `src/shaders.rs` compiles into the binary; and
//! writes `$OUT_DIR/lower_runs.rs`, the run-length table of `char::to_lowercase` that
//! `src/engine/lower.rs` uses (from this toolchain's own `std`, so the same Unicode version).

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
    write_lower_runs(&out.parent().expect("OUT_DIR").join("lower_runs.rs"));
}

/// `LOWER_RUNS`: every non-ASCII character whose lowercase is one other character, as runs
/// `(start | (stride - 1) << 21 | (len - 1) << 22, delta)`: the characters `start + i * stride`
/// (`i < len`, stride 1 or 2, len <= 1024) lowercase to themselves plus `delta`. The only
/// character whose lowercase is longer, U+0130, is handled in `src/engine/lower.rs`.
fn write_lower_runs(path: &std::path::Path) {
    let mut runs: Vec<(u32, u32, u32, i64)> = Vec::new(); // start, stride, len, delta
    for c in (0x80u32..=0x10FFFF).filter_map(char::from_u32) {
        let mut l = c.to_lowercase();
        let first = l.next().expect("a lowercase");
        if l.next().is_some() {
            assert_eq!(c, '\u{130}', "a new multi-character lowercase");
            continue;
        }
        if first == c {
            continue;
        }
        let (c, delta) = (c as u32, first as i64 - c as i64);
        if let Some(r) = runs.last_mut() {
            let next = r.0 + r.1 * r.2;
            let stride_ok = (r.2 == 1 && c - r.0 <= 2) || c == next;
            if r.3 == delta && stride_ok && r.2 < 1024 {
                if r.2 == 1 {
                    r.1 = c - r.0;
                }
                r.2 += 1;
                continue;
            }
        }
        runs.push((c, 1, 1, delta));
    }
    let mut src = format!("static LOWER_RUNS: [(u32, i32); {}] = [\n", runs.len());
    for (start, stride, len, delta) in runs {
        assert!(stride == 1 || stride == 2);
        let a = start | (stride - 1) << 21 | (len - 1) << 22;
        src.push_str(&format!("    ({a:#x}, {delta}),\n"));
    }
    src.push_str("];\n");
    std::fs::write(path, src).expect("write lower_runs.rs");
}
