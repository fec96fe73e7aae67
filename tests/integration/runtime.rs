//! ONNX Runtime loading by path: the real library from the PyPI wheel, and named errors for a
//! missing, corrupt, foreign or too-old library (from the library API and from the CLI).

use autocontour_test_support as common;

use std::path::{Path, PathBuf};
use std::process::Command;

use autocontour::Error;
use autocontour::runtime::{self, RuntimeOptions};

/// Builds a shared library from C source with the system C compiler.
fn build_so(dir: &Path, name: &str, src: &str) -> PathBuf {
    let c = dir.join(format!("{name}.c"));
    let so = dir.join(format!("{name}.so"));
    std::fs::write(&c, src).unwrap();
    let st = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&so)
        .arg(&c)
        .status()
        .expect("a C compiler (cc) is needed for this test");
    assert!(st.success(), "cc failed");
    so
}

#[test]
fn runs_a_real_model_with_the_wheel_library() {
    let lib = common::ort_lib();
    let opts = RuntimeOptions {
        library: Some(lib.clone()),
    };
    let info = runtime::ensure_loaded(&opts).expect("load ONNX Runtime");
    assert_eq!(info.version, runtime::TESTED_ORT_VERSION);
    // Same library again: fine. Another library: named error.
    runtime::ensure_loaded(&opts).unwrap();
    let other = RuntimeOptions {
        library: Some("/elsewhere/libonnxruntime.so".into()),
    };
    assert!(matches!(
        runtime::ensure_loaded(&other),
        Err(Error::OrtAlreadyLoaded { .. })
    ));

    let env = runtime::environment(&opts).unwrap();
    let model = common::root().join("tests/fixtures/tiny_affine.onnx");
    let mut session = ort::session::Session::builder(&env)
        .unwrap()
        .commit_from_file(&model)
        .unwrap();
    let x: Vec<f32> = (0..64).map(|v| v as f32 * 0.5 - 3.0).collect();
    let t = ort::value::Tensor::from_array((vec![1usize, 1, 4, 4, 4], x.clone())).unwrap();
    let out = session.run(ort::inputs!["x" => t]).unwrap();
    let (_, y) = out["y"].try_extract_tensor::<f32>().unwrap();
    for (a, b) in x.iter().zip(y) {
        assert_eq!(*b, 2.0 * a + 1.0);
    }
}

#[test]
fn too_old_library_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let so = build_so(
        dir.path(),
        "libfakeort_old",
        r#"
        typedef struct { const void* (*GetApi)(unsigned); const char* (*GetVersionString)(void); } OrtApiBase;
        static const void* get_api(unsigned v) { (void)v; return 0; }
        static const char* version(void) { return "1.16.3"; }
        static const OrtApiBase base = { get_api, version };
        const OrtApiBase* OrtGetApiBase(void) { return &base; }
        "#,
    );
    match runtime::probe_library(&so) {
        Err(Error::OrtTooOld {
            found, required, ..
        }) => {
            assert_eq!(found, "1.16.3");
            assert_eq!(required, "1.22");
        }
        other => panic!("expected OrtTooOld, got {other:?}"),
    }
}

#[test]
fn foreign_library_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let so = build_so(
        dir.path(),
        "libnotort",
        "int not_onnxruntime(void) { return 42; }\n",
    );
    assert!(matches!(
        runtime::probe_library(&so),
        Err(Error::OrtNotOrt { .. })
    ));
    // A library whose OrtGetApiBase returns NULL is refused too, not dereferenced.
    let so = build_so(
        dir.path(),
        "libnullort",
        "const void* OrtGetApiBase(void) { return 0; }\n",
    );
    assert!(matches!(
        runtime::probe_library(&so),
        Err(Error::OrtNotOrt { .. })
    ));
}

fn cli_fails_cleanly(args: &[&str], expect: &str) {
    let out = Command::new(common::cli())
        .args(args)
        .env_remove("AUTOCONTOUR_ORT_LIB")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure for {args:?}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "panic trace: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "want one line, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(lines[0].contains(expect), "{stderr} lacks {expect:?}");
}

#[test]
fn cli_reports_missing_and_corrupt_library_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("libonnxruntime.so.1");
    cli_fails_cleanly(
        &["ort-check", "--ort-lib", missing.to_str().unwrap()],
        "ONNX Runtime library not found",
    );
    let corrupt = dir.path().join("libonnxruntime.so.1.31.1");
    // A truncated copy of the real library: what a broken download or disk leaves behind.
    let real = std::fs::read(common::ort_lib()).unwrap();
    std::fs::write(&corrupt, &real[..real.len() / 3]).unwrap();
    cli_fails_cleanly(
        &["ort-check", "--ort-lib", corrupt.to_str().unwrap()],
        "ONNX Runtime library could not be loaded",
    );
    cli_fails_cleanly(&["ort-check"], "ONNX Runtime library not configured");
}

#[test]
fn cli_runs_a_model() {
    let out = Command::new(common::cli())
        .args(["ort-check", "--ort-lib"])
        .arg(common::ort_lib())
        .arg("--model")
        .arg(common::root().join("tests/fixtures/tiny_affine.onnx"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ONNX Runtime 1.31.1"), "{stdout}");
    assert!(stdout.contains("output y: [1, 1, 4, 4, 4]"), "{stdout}");
}
