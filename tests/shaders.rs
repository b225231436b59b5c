//! Every `shaders/*.wgsl` is registered in `mnemo::shaders` (minified by `build.rs`), and both the
//! file and its minified form parse and validate with naga under WebGPU's capabilities. Plain
//! `cargo test`, no GPU needed.
#![cfg(not(target_arch = "wasm32"))]

use std::path::Path;

#[test]
fn every_wgsl_file_is_registered() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .expect("shaders/ exists")
        .filter_map(|e| {
            let p = e.ok()?.path();
            if p.extension()? != "wgsl" {
                return None;
            }
            Some(p.file_stem()?.to_string_lossy().into_owned())
        })
        .collect();
    on_disk.sort();
    let mut registered: Vec<String> = mnemo::shaders::all().map(|(n, _)| n.to_string()).collect();
    registered.sort();
    assert_eq!(
        on_disk, registered,
        "shaders/ and mnemo::shaders::all() differ"
    );
    for (name, src) in mnemo::shaders::all() {
        let file = std::fs::read_to_string(dir.join(format!("{name}.wgsl"))).unwrap();
        assert_eq!(
            mnemo::wgsl_minify::minify(&file),
            src,
            "{name}: registered source differs from the minified file"
        );
        assert!(
            !src.contains("//") && src.len() < file.len(),
            "{name}: the registered source is not minified"
        );
    }
}

#[test]
fn every_shader_validates_with_webgpu_capabilities() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut checked = 0;
    for (name, min) in mnemo::shaders::all() {
        let file = std::fs::read_to_string(dir.join(format!("{name}.wgsl"))).unwrap();
        for src in [file.as_str(), min] {
            validate(name, src);
            checked += 1;
        }
    }
    println!("validated {checked} shaders (files and minified forms)");
    assert!(checked > 0);
}

/// Parse and validate one WGSL source with naga under WebGPU's capabilities.
fn validate(name: &str, src: &str) {
    let module = naga::front::wgsl::parse_str(src)
        .unwrap_or_else(|e| panic!("{name}.wgsl does not parse:\n{}", e.emit_to_string(src)));
    // `quantizeToF16`, `pack2x16float` and `unpack2x16float` are core WGSL in WebGPU; naga
    // gates them behind SHADER_FLOAT16_IN_FLOAT32, which wgpu grants on every adapter with
    // the WebGPU-compliant downlevel flag SHADER_F16_IN_F32.
    let mut validator = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default() | naga::valid::Capabilities::SHADER_FLOAT16_IN_FLOAT32,
    );
    validator
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name}.wgsl does not validate:\n{}", e.emit_to_string(src)));
}
