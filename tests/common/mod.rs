//! Helpers shared by the integration tests: where the fetched data and ONNX Runtime live.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The test-data cache filled by `python3 tests/setup/fetch.py`.
pub fn testdata() -> PathBuf {
    std::env::var_os("AUTOCONTOUR_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/testdata"))
}

/// A fetched item, or a failing test that says how to fetch it. Tests do not silently skip:
/// CI fetches everything first.
pub fn require(rel: &str) -> PathBuf {
    let p = testdata().join(rel);
    assert!(
        p.exists(),
        "{} is missing: run `python3 tests/setup/fetch.py` first (needs the package registry)",
        p.display()
    );
    p
}

/// The ONNX Runtime library fetched by `tests/setup/fetch.py ort` (or AUTOCONTOUR_ORT_LIB).
pub fn ort_lib() -> PathBuf {
    let p = std::env::var_os("AUTOCONTOUR_ORT_LIB")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/onnxruntime/libonnxruntime.so.1.31.1"));
    let p = if p.is_absolute() { p } else { root().join(p) };
    assert!(
        p.exists(),
        "ONNX Runtime not found at {}: run `python3 tests/setup/fetch.py ort` first",
        p.display()
    );
    p
}

/// The CLI binary built for these tests.
pub fn cli() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_autocontour"))
}

/// The Python of the test environment (target/pyenv, made by tests/run-all.sh).
pub fn python() -> PathBuf {
    let p = root().join("target/pyenv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run tests/run-all.sh once (it creates the venv with tests/requirements.txt)",
        p.display()
    );
    p
}

/// `dciodvfy` (Debian dicom3tools) on `file`: its whole report, stdout and stderr together.
pub fn dciodvfy(file: &Path) -> String {
    let v = std::process::Command::new("dciodvfy")
        .arg(file)
        .output()
        .expect("dciodvfy (apt dicom3tools)");
    format!(
        "{}{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    )
}
