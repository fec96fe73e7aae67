//! Generates Rust bindings from the committed `include/autocontour.h` with bindgen, in
//! dynamic-loading form: one struct (`Autocontour`) whose constructor opens the built cdylib by
//! path and resolves every function the header declares. The ABI tests call the library only
//! through it, so a signature that drifts from the header fails to compile or to load.
//!
//! Needs libclang (Debian: `libclang-dev`).

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let header = manifest.join("../../include/autocontour.h");
    println!("cargo:rerun-if-changed={}", header.display());
    let bindings = bindgen::Builder::default()
        .header(header.to_string_lossy())
        // The header's C path: enums are `uint32_t` typedefs plus named constants.
        .clang_arg("-std=c99")
        .allowlist_item("(ac|AC)_.*")
        .dynamic_library_name("Autocontour")
        .dynamic_link_require_all(true)
        .prepend_enum_name(false)
        .default_enum_style(bindgen::EnumVariation::Consts)
        .derive_default(true)
        .derive_debug(true)
        .derive_partialeq(true)
        .layout_tests(true)
        .generate()
        .expect("bindgen could not read include/autocontour.h (is libclang installed? Debian: libclang-dev)");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("write bindings.rs");
}
