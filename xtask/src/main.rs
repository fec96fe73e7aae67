//! Project tasks, run as `cargo xtask <task>` (alias in `.cargo/config.toml`).
//!
//! - `cargo xtask header`: regenerate `include/autocontour.h` from the C ABI crate (`capi/`)
//!   with cbindgen and `capi/cbindgen.toml`.
//! - `cargo xtask header --verify`: fail (exit status 1) when the committed header differs from a
//!   fresh generation, or when the header declares a name without the `ac_` / `AC_` prefix. CI
//!   runs this.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn root() -> PathBuf {
    // xtask/ sits in the workspace root.
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(Path::to_path_buf).unwrap_or(here)
}

fn generate(root: &Path) -> Result<String, String> {
    let capi = root.join("capi");
    let config = cbindgen::Config::from_file(capi.join("cbindgen.toml"))
        .map_err(|e| format!("capi/cbindgen.toml: {e}"))?;
    let bindings = cbindgen::Builder::new()
        .with_crate(&capi)
        .with_config(config)
        .generate()
        .map_err(|e| format!("cbindgen could not generate the header from capi/: {e}"))?;
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).map_err(|e| format!("generated header is not UTF-8: {e}"))
}

/// Names the header declares that lack the `ac_` / `AC_` prefix.
fn unprefixed(header: &str) -> Vec<String> {
    let mut bad = Vec::new();
    for line in header.lines() {
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
    bad
}

fn header(verify: bool) -> Result<(), String> {
    let root = root();
    let path = root.join("include/autocontour.h");
    let fresh = generate(&root)?;
    let bad = unprefixed(&fresh);
    if !bad.is_empty() {
        return Err(format!(
            "the C ABI declares names without the ac_/AC_ prefix: {bad:?}"
        ));
    }
    if verify {
        let committed =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if committed != fresh {
            let first = committed
                .lines()
                .zip(fresh.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(committed.lines().count().min(fresh.lines().count()));
            return Err(format!(
                "include/autocontour.h is stale (first difference at line {}): run `cargo xtask header` and commit it",
                first + 1
            ));
        }
        println!("include/autocontour.h is up to date");
    } else {
        std::fs::write(&path, fresh).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["header"] => header(false),
        ["header", "--verify"] => header(true),
        _ => Err("usage: cargo xtask header [--verify]".to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
