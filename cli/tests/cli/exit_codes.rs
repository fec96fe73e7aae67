//! Exit status of the CLI: 2 for usage mistakes (ours and clap's), 1 for failed runs.

use std::process::Command;

fn status(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_autocontour"))
        .args(args)
        .env_remove("AUTOCONTOUR_ORT_LIB")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn usage_mistakes_exit_2_and_failed_runs_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ph");
    let out = out.to_str().unwrap();
    // Ours: a bad option value.
    let (code, err) = status(&["phantom", out, "--size", "4,4"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.starts_with("error: --size needs three"), "{err}");
    let (code, err) = status(&["phantom", out, "--orientation", "diagonal"]);
    assert_eq!(code, Some(2), "{err}");
    // clap's: an unknown option.
    let (code, err) = status(&["series", out, "--no-such-option"]);
    assert_eq!(code, Some(2), "{err}");
    // A failed run: the folder does not exist.
    let missing = dir.path().join("missing");
    let (code, err) = status(&["series", missing.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}
