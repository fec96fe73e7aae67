//! Where the integration tests find things: the repository, the fetched data, ONNX Runtime, the
//! Python reference environment, the built CLI and C library; and `dciodvfy`.

use std::path::{Path, PathBuf};

/// Repository (workspace) root.
pub fn root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(Path::to_path_buf).unwrap_or(here)
}

/// The cargo profile folder the running test was built into (`target/debug`, `target/release`):
/// the test executable lives in its `deps/` folder.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("path of the running test executable");
    let deps = exe.parent().expect("test executable has a folder");
    deps.parent().unwrap_or(deps).to_path_buf()
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

/// The `autocontour` CLI of the same build profile as the running test. `cargo test` at the
/// workspace root builds it (the CLI crate is a default member); alone:
/// `cargo build -p autocontour-cli`.
pub fn cli() -> PathBuf {
    let p = profile_dir().join(format!("autocontour{}", std::env::consts::EXE_SUFFIX));
    assert!(
        p.exists(),
        "{} is missing: build the CLI first (cargo build -p autocontour-cli)",
        p.display()
    );
    p
}

/// The C library (`libautocontour.so` / `.dylib` / `autocontour.dll`) of the same build profile
/// as the running test. `cargo test` at the workspace root builds it; alone:
/// `cargo build -p autocontour-capi`.
pub fn cdylib() -> PathBuf {
    let name = format!(
        "{}autocontour{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let p = profile_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: build the C library first (cargo build -p autocontour-capi)",
        p.display()
    );
    p
}

/// The Python of the test environment (`target/pyenv`, made by tests/run-all.sh with
/// tests/requirements.txt; `AUTOCONTOUR_PYTHON` overrides it).
pub fn python() -> PathBuf {
    let p = std::env::var_os("AUTOCONTOUR_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/pyenv/bin/python"));
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

/// Model options for tests: the fetched ONNX Runtime ([`ort_lib`]) and 2 threads.
pub fn model_options() -> autocontour::model::ModelOptions {
    autocontour::model::ModelOptions {
        runtime: autocontour::runtime::RuntimeOptions {
            library: Some(ort_lib()),
        },
        threads: 2,
        ..autocontour::model::ModelOptions::default()
    }
}
