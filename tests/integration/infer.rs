//! The inference engine against an independent Python reference (numpy + scipy + onnxruntime)
//! on a real CT crop, plus model-loading failures and cancellation.

use autocontour_test_support as common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use autocontour::Error;
use autocontour::dicom::{LoadOptions, load_series};
use autocontour::infer::{CancelToken, InferOptions, predict};
use autocontour::model::{Model, ModelOptions};
use autocontour::volume::Volume;

fn options() -> ModelOptions {
    common::model_options()
}

fn rider_crop() -> &'static Volume<f32> {
    static CROP: OnceLock<Volume<f32>> = OnceLock::new();
    CROP.get_or_init(|| {
        let s = load_series(&common::require("rider/ct"), None, &LoadOptions::default()).unwrap();
        // A block through the right lung, mediastinum and left lung.
        s.volume
            .to_f32()
            .crop([96, 150, 100], [416, 330, 160])
            .unwrap()
    })
}

fn write_crop(v: &Volume<f32>, dir: &Path) -> PathBuf {
    let g = v.geometry();
    let json = dir.join("ct.json");
    let geom = serde_json::json!({
        "size": g.size, "origin": g.origin, "spacing": g.spacing, "direction": g.direction
    });
    std::fs::write(&json, geom.to_string()).unwrap();
    let bytes: Vec<u8> = v.data().iter().flat_map(|f| f.to_le_bytes()).collect();
    std::fs::write(dir.join("ct.f32"), bytes).unwrap();
    json
}

fn compare_with_reference(pkg: &str, tolerance: f32) {
    compare_dir(
        pkg,
        &common::root().join("models/test").join(pkg),
        tolerance,
    );
}

#[test]
#[ignore = "debugging aid: AUTOCONTOUR_DEBUG_PKG=<dir>"]
fn debug_package() {
    let d = PathBuf::from(std::env::var("AUTOCONTOUR_DEBUG_PKG").unwrap());
    compare_dir("debug", &d, 1e-4);
}

fn compare_dir(pkg: &str, model_dir: &Path, tolerance: f32) {
    let dir = tempfile::tempdir().unwrap();
    let crop = rider_crop();
    let json = write_crop(crop, dir.path());
    let model_dir = model_dir.to_path_buf();
    let model = Model::open(&model_dir, &options()).unwrap();
    let opts = InferOptions {
        keep_probabilities: true,
        batch: std::env::var("AUTOCONTOUR_DEBUG_BATCH")
            .ok()
            .and_then(|b| b.parse().ok())
            .unwrap_or(0),
        ..InferOptions::default()
    };
    let pred = predict(&model, crop, &opts).unwrap();
    let ours = pred.probabilities.unwrap();

    let out = dir.path().join("ref.f32");
    let run = Command::new(common::python())
        .arg(common::root().join("tests/python/infer_reference.py"))
        .arg(&model_dir)
        .arg(&json)
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "reference failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let zyx = pred.grid.zyx();
    assert_eq!(info["model_grid_zyx"], serde_json::json!(zyx), "model grid");
    assert_eq!(info["tiles"], serde_json::json!(pred.tiles), "tile count");
    let theirs: Vec<f32> = std::fs::read(&out)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(theirs.len(), ours.len());
    let max = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    eprintln!("{pkg}: {} tiles, max |Δp| = {max:e}", pred.tiles);
    assert!(
        max <= tolerance,
        "{pkg}: max abs probability difference {max}"
    );
    // The label map covers the CT grid and uses more than one class.
    assert_eq!(pred.labels.geometry(), crop.geometry());
    let used = (0..3u8).filter(|c| pred.labels.data().contains(c)).count();
    assert!(used >= 2);
}

#[test]
fn gaussian_float32_lps_matches_reference() {
    compare_with_reference("tiny-unet", 1e-4);
}

#[test]
fn center_crop_mirrored_native_zscore_float32_matches_reference() {
    // The float32 graph with the other manifest options (a 3 mm grid, so several tiles per axis
    // with half-to-even rounded starts).
    let dir = tempfile::tempdir().unwrap();
    let src = common::root().join("models/test");
    std::fs::copy(
        src.join("tiny-unet/model.onnx"),
        dir.path().join("model.onnx"),
    )
    .unwrap();
    let f32_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("tiny-unet/model.json")).unwrap())
            .unwrap();
    let mut tta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(src.join("tiny-unet-tta/model.json")).unwrap(),
    )
    .unwrap();
    tta["onnx"] = f32_json["onnx"].clone();
    std::fs::write(dir.path().join("model.json"), tta.to_string()).unwrap();
    compare_dir("tta-float32", dir.path(), 1e-4);
}

#[test]
fn float16_graph_matches_reference_within_half_precision() {
    // float16 logits carry ~1e-3 relative precision; inputs that differ in the last f32 bit can
    // round to neighbouring f16 values, so the bound is set by f16's epsilon (9.8e-4), not 1e-4.
    compare_with_reference("tiny-unet-tta", 2e-3);
}

#[test]
fn deterministic() {
    let model = Model::open(&common::root().join("models/test/tiny-unet"), &options()).unwrap();
    let a = predict(&model, rider_crop(), &InferOptions::default()).unwrap();
    let b = predict(&model, rider_crop(), &InferOptions::default()).unwrap();
    assert_eq!(a.labels.data(), b.labels.data());
}

#[test]
fn progress_is_monotone_and_cancellation_is_named() {
    let model = Model::open(&common::root().join("models/test/tiny-unet"), &options()).unwrap();
    let seen = std::sync::Mutex::new(Vec::new());
    let token = CancelToken::new();
    let cb = |p: autocontour::infer::Progress<'_>| {
        seen.lock().unwrap().push((p.stage.to_string(), p.fraction));
    };
    let pred = predict(
        &model,
        rider_crop(),
        &InferOptions {
            progress: Some(&cb),
            ..InferOptions::default()
        },
    )
    .unwrap();
    let seen = seen.into_inner().unwrap();
    assert!(seen.windows(2).all(|w| w[1].1 >= w[0].1), "{seen:?}");
    assert_eq!(seen.last().unwrap().1, 1.0);
    assert!(pred.tiles > 1);

    // Cancel from the progress callback after the first inference report.
    let t2 = token.clone();
    let cancel_cb = move |p: autocontour::infer::Progress<'_>| {
        if p.stage == "inference" {
            t2.cancel();
        }
    };
    let r = predict(
        &model,
        rider_crop(),
        &InferOptions {
            progress: Some(&cancel_cb),
            cancel: Some(token),
            ..InferOptions::default()
        },
    );
    assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");
}

#[test]
fn broken_packages_give_named_errors() {
    let src = common::root().join("models/test/tiny-unet");
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path();
    let copy = |json: &str, onnx: &[u8]| {
        std::fs::write(pkg.join("model.json"), json).unwrap();
        std::fs::write(pkg.join("model.onnx"), onnx).unwrap();
    };
    let json = std::fs::read_to_string(src.join("model.json")).unwrap();
    let onnx = std::fs::read(src.join("model.onnx")).unwrap();

    // missing package
    let e = Model::open(&dir.path().join("nothing"), &options()).unwrap_err();
    assert!(matches!(e, Error::ModelNotFound { .. }), "{e}");
    // hash mismatch
    let mut tampered = onnx.clone();
    let n = tampered.len() - 10;
    tampered[n] ^= 0xff;
    copy(&json, &tampered);
    let e = Model::open(pkg, &options()).unwrap_err();
    assert!(matches!(e, Error::ModelHashMismatch { .. }), "{e}");
    // corrupt ONNX whose hash the manifest agrees with
    let garbage = b"not an onnx graph at all".to_vec();
    let digest = {
        std::fs::write(pkg.join("model.onnx"), &garbage).unwrap();
        autocontour::model::sha256_file(&pkg.join("model.onnx")).unwrap()
    };
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let sha = v["onnx"]["sha256"].as_str().unwrap().to_string();
    copy(&json.replace(&sha, &digest), &garbage);
    let e = Model::open(pkg, &options()).unwrap_err();
    assert!(matches!(e, Error::ModelLoad { .. }), "{e}");
    // manifest inconsistent with the graph: wrong output name, wrong label count, wrong dtype
    for (from, to) in [
        ("\"output\": \"logits\"", "\"output\": \"scores\""),
        (
            "{\n      \"index\": 2,",
            "{\n      \"index\": 3, \"name\": \"Gamma\"\n    },\n    {\n      \"index\": 2,",
        ),
        ("\"dtype\": \"float32\"", "\"dtype\": \"float16\""),
    ] {
        let j = json.replace(from, to);
        assert_ne!(j, json, "{from}");
        copy(&j, &onnx);
        let e = Model::open(pkg, &options()).unwrap_err();
        assert!(
            matches!(
                e,
                Error::ModelMismatch { .. } | Error::InvalidManifest { .. }
            ),
            "{from}: {e}"
        );
    }
    // invalid JSON
    copy("{ not json", &onnx);
    let e = Model::open(pkg, &options()).unwrap_err();
    assert!(matches!(e, Error::InvalidManifest { .. }), "{e}");
}

#[test]
fn unavailable_gpu_falls_back_or_fails_as_asked() {
    use autocontour::model::{Device, Fallback};
    let src = common::root().join("models/test/tiny-unet");
    let mut o = options();
    o.device = Device::Cuda(0);
    let m = Model::open(&src, &o).unwrap();
    // The CPU-only wheel has no CUDA provider: the fallback is reported, never silent.
    assert_eq!(m.execution.provider, "CPU");
    assert!(m.execution.fallback_reason.is_some());
    o.fallback = Fallback::Fail;
    let e = Model::open(&src, &o).unwrap_err();
    assert!(matches!(e, Error::ExecutionProvider { .. }), "{e}");
}

#[test]
fn cancel_from_another_thread_stops_the_run() {
    let model = Model::open(&common::root().join("models/test/tiny-unet"), &options()).unwrap();
    // The full RIDER CT at the test network's 4 mm grid: many tiles. The first progress report
    // of the inference stage waits until another thread has cancelled (two barriers), so the
    // cancel lands in the middle of the run however fast the machine is.
    let s = load_series(&common::require("rider/ct"), None, &LoadOptions::default()).unwrap();
    let token = CancelToken::new();
    let (met, cancelled) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
    let first = std::sync::atomic::AtomicBool::new(true);
    let cb = |p: autocontour::infer::Progress<'_>| {
        if p.stage == "inference" && first.swap(false, std::sync::atomic::Ordering::SeqCst) {
            met.wait();
            cancelled.wait();
        }
    };
    let cancelled_at = std::sync::Mutex::new(None);
    let r = std::thread::scope(|sc| {
        let t = token.clone();
        let (met, cancelled) = (&met, &cancelled);
        let cancelled_at = &cancelled_at;
        sc.spawn(move || {
            met.wait();
            *cancelled_at.lock().unwrap() = Some(std::time::Instant::now());
            t.cancel();
            cancelled.wait();
        });
        predict(
            &model,
            &s.volume,
            &InferOptions {
                progress: Some(&cb),
                cancel: Some(token.clone()),
                ..InferOptions::default()
            },
        )
    });
    assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");
    if let Some(at) = *cancelled_at.lock().unwrap() {
        // Reported, not asserted: timing belongs to benchmarks, not tests.
        eprintln!("cancel latency: {:.1} ms", at.elapsed().as_secs_f64() * 1e3);
    }
    // The model stays usable after a cancelled run.
    assert!(predict(&model, rider_crop(), &InferOptions::default()).is_ok());
}

#[test]
fn memory_limit_is_checked_before_allocating() {
    let model = Model::open(&common::root().join("models/test/tiny-unet"), &options()).unwrap();
    let r = predict(
        &model,
        rider_crop(),
        &InferOptions {
            memory_limit_bytes: 1 << 10,
            ..InferOptions::default()
        },
    );
    assert!(matches!(r, Err(Error::MemoryLimit { .. })), "{r:?}");
}
