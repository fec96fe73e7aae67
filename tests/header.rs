//! Fails when `include/autocontour.h` differs from what cbindgen generates from `src/ffi/`.
//!
//! Regenerate the committed header with:
//!     cargo test --test header -- --ignored regenerate

use std::path::PathBuf;

fn generate() -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(&root)
        .with_config(config)
        .generate()
        .expect("cbindgen failed to generate the header");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("header is UTF-8")
}

#[test]
fn header_is_up_to_date() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let committed = std::fs::read_to_string(root.join("include/autocontour.h"))
        .expect("include/autocontour.h is missing");
    let fresh = generate();
    if committed != fresh {
        let first = committed
            .lines()
            .zip(fresh.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(committed.lines().count().min(fresh.lines().count()));
        panic!(
            "include/autocontour.h is stale (first difference at line {}). Regenerate it with \
             `cargo test --test header -- --ignored regenerate` and commit it.",
            first + 1
        );
    }
}

#[test]
#[ignore = "writes include/autocontour.h; run on purpose"]
fn regenerate() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    std::fs::write(root.join("include/autocontour.h"), generate()).expect("write header");
}
