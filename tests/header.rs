//! Fails when `include/autocontour.h` differs from what cbindgen generates from `src/ffi/`.
//!
//! Regenerate the committed header with:
//!     cargo test --test header -- --ignored regenerate

use std::path::{Path, PathBuf};

/// Names of the crate's `pub const`s outside the C API (without the `AC_` prefix): cbindgen
/// would export every one of them as a macro.
fn rust_only_consts(dir: &Path, out: &mut Vec<String>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read src/")
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_only_consts(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&p).expect("read source");
            for line in text.lines() {
                if let Some(rest) = line.trim_start().strip_prefix("pub const ") {
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() && !name.starts_with("AC_") {
                        out.push(name);
                    }
                }
            }
        }
    }
}

fn generate() -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut builder = cbindgen::Builder::new()
        .with_crate(&root)
        .with_config(config);
    let mut rust_only = Vec::new();
    rust_only_consts(&root.join("src"), &mut rust_only);
    for name in rust_only {
        builder = builder.exclude_item(name);
    }
    let bindings = builder
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

/// Every macro, type and function the header declares carries the `ac_` / `AC_` prefix (cbindgen
/// exports any `pub const` of the crate; `generate` leaves out those without `AC_`, and other
/// Rust-only items go to `exclude` in cbindgen.toml).
#[test]
fn header_names_are_prefixed() {
    let fresh = generate();
    let mut bad = Vec::new();
    for line in fresh.lines() {
        let name = if let Some(rest) = line.strip_prefix("#define ") {
            rest.split_whitespace().next()
        } else if let Some(rest) = line.strip_prefix("} ") {
            rest.strip_suffix(';')
        } else if let Some(rest) = line.strip_prefix("typedef struct ") {
            rest.split_whitespace().next().filter(|n| *n != "{")
        } else if let Some(rest) = line.strip_prefix("typedef ")
            && let Some((_, after)) = rest.split_once("(*")
        {
            after.split(')').next()
        } else if !line.starts_with([' ', '/', '#', '}']) && line.contains('(') {
            line.split('(')
                .next()
                .and_then(|l| l.rsplit([' ', '*']).next())
        } else {
            None
        };
        if let Some(n) = name
            && !(n.starts_with("ac_") || n.starts_with("AC_") || n == "AUTOCONTOUR_H")
        {
            bad.push(n.to_string());
        }
    }
    assert!(
        bad.is_empty(),
        "names without the ac_/AC_ prefix in the header: {bad:?} (add them to `exclude` in cbindgen.toml)"
    );
}

#[test]
#[ignore = "writes include/autocontour.h; run on purpose"]
fn regenerate() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    std::fs::write(root.join("include/autocontour.h"), generate()).expect("write header");
}
