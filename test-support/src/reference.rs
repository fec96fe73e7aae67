//! The metrics integration tests' Python reference (`tests/python/metrics_reference.py`) and
//! value comparison.

use std::process::Command;

use serde_json::Value;

use crate::paths as common;

/// Runs the reference script and parses its JSON output.
pub fn reference(args: &[&std::ffi::OsStr]) -> Value {
    let script = common::root().join("tests/python/metrics_reference.py");
    let out = Command::new(common::python())
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "reference failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Asserts `ours` equals the reference value `theirs` to 1e-6 relative ("inf" / "nan" strings
/// stand for non-finite values).
pub fn close(what: &str, ours: f64, theirs: &Value) {
    match theirs {
        Value::String(s) if s == "inf" => assert!(ours == f64::INFINITY, "{what}: {ours} vs inf"),
        Value::String(s) => panic!("{what}: reference gave {s}, ours {ours}"),
        v => {
            let t = v.as_f64().unwrap();
            let tol = 1e-6 * t.abs().max(1e-12);
            assert!(
                (ours - t).abs() <= tol,
                "{what}: ours {ours} vs reference {t}"
            );
        }
    }
}
