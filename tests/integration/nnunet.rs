//! Imported nnU-Net v2 models against nnU-Net itself.
//!
//! 1. Each preprocessing and export step against the nnunetv2 2.8.1 function it mirrors, on the
//!    small arrays `tests/nnunet/make_unit_refs.py` fed to nnU-Net (`tests/nnunet/unit/`).
//! 2. The whole prediction of the trained fixture (`tests/nnunet/package`, 2 folds) on its
//!    held-out CT against `nnUNetPredictor`'s label maps (`tests/nnunet/ref/`), for fold 0 and
//!    the 2-fold ensemble, with mirroring on and off: ≥ 99.9 % of the voxels with the same
//!    label and per-structure Dice ≥ 0.995.
//! 3. Mutations of the preprocessing (another spline order, no separate-z, another target
//!    spacing, float32 instead of the exact Gaussian…) are caught by the same comparison.

use autocontour_test_support as common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use autocontour::infer::{InferOptions, predict};
use autocontour::model::{Model, ModelOptions};
use autocontour::nifti::{read_nifti_image, read_nifti_labels};
use autocontour::nnunet::resample::{ResampleKind, resample_channel};
use autocontour::nnunet::{nonzero_bbox, normalize, spec::Norm, window, zscore};
use autocontour::volume::Volume;
use half::f16;
use serde_json::Value;

fn dir() -> PathBuf {
    common::root().join("tests/nnunet")
}

// ------------------------------------------------------------------------------ .npy files

/// A numpy array read from a `.npy` file (v1/v2, little-endian, C order), as f64.
struct Npy {
    shape: Vec<usize>,
    dtype: String,
    data: Vec<f64>,
}

fn npy(name: &str) -> Npy {
    let path = dir().join("unit").join(name);
    let b = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&b[..6], b"\x93NUMPY", "{name}: not a .npy file");
    let (hlen, start) = if b[6] == 1 {
        (u16::from_le_bytes([b[8], b[9]]) as usize, 10)
    } else {
        (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12)
    };
    let header = std::str::from_utf8(&b[start..start + hlen]).unwrap();
    assert!(
        header.contains("'fortran_order': False"),
        "{name}: {header}"
    );
    let descr = header
        .split("'descr': '")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap();
    let shape_s = header
        .split("'shape': (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap();
    let shape: Vec<usize> = shape_s
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let raw = &b[start + hlen..];
    let data: Vec<f64> = match descr {
        "<f4" => raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
        "<f2" => raw
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes(c.try_into().unwrap()).to_f64())
            .collect(),
        "<f8" => raw
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        "|i1" => raw.iter().map(|&v| v as i8 as f64).collect(),
        "|b1" | "|u1" => raw.iter().map(|&v| v as f64).collect(),
        other => panic!("{name}: dtype {other}"),
    };
    assert_eq!(data.len(), shape.iter().product::<usize>(), "{name}");
    Npy {
        shape,
        dtype: descr.to_string(),
        data,
    }
}

fn cases() -> Vec<Value> {
    let text = std::fs::read_to_string(dir().join("unit/index.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["cases"].as_array().unwrap().clone()
}

fn arr3(v: &Value) -> [f64; 3] {
    let a: Vec<f64> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    [a[0], a[1], a[2]]
}

fn shape3(v: &[usize]) -> [usize; 3] {
    [v[0], v[1], v[2]]
}

// ------------------------------------------------------------------------------ 1. unit cases

#[test]
fn resampling_matches_nnunet() {
    let mut n = 0;
    for c in cases()
        .iter()
        .filter(|c| c["function"] == "resample_data_or_seg_to_shape")
    {
        let name = c["name"].as_str().unwrap();
        let x = npy(c["input"]["file"].as_str().unwrap());
        let want = npy(c["output"]["file"].as_str().unwrap());
        let kw = &c["kwargs"];
        let kind = ResampleKind {
            order: kw["order"].as_u64().unwrap() as usize,
            order_z: kw["order_z"].as_u64().unwrap() as usize,
            force_separate_z: kw["force_separate_z"].as_bool(),
            anisotropy_threshold: 3.0,
        };
        let cur = arr3(&c["current_spacing"]);
        let new = arr3(&c["new_spacing"]);
        let out: Vec<usize> = c["new_shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let out = shape3(&out);
        let ish = shape3(&x.shape[1..]);
        let vox: usize = ish.iter().product();
        let ovox: usize = out.iter().product();
        assert_eq!(want.shape[1..], out[..], "{name}");
        let mut worst = 0f64;
        let mut differing = 0usize;
        for ch in 0..x.shape[0] {
            let inp = &x.data[ch * vox..(ch + 1) * vox];
            let exp = &want.data[ch * ovox..(ch + 1) * ovox];
            let got: Vec<f64> = match x.dtype.as_str() {
                "<f2" => {
                    let h: Vec<f16> = inp.iter().map(|&v| f16::from_f64(v)).collect();
                    resample_channel(
                        &h,
                        ish,
                        out,
                        cur,
                        new,
                        &kind,
                        |v: f16| v.to_f64(),
                        f16::from_f64,
                    )
                    .unwrap()
                    .into_iter()
                    .map(|v| v.to_f64())
                    .collect()
                }
                _ => {
                    let f: Vec<f32> = inp.iter().map(|&v| v as f32).collect();
                    resample_channel(
                        &f,
                        ish,
                        out,
                        cur,
                        new,
                        &kind,
                        |v: f32| v as f64,
                        |v| v as f32,
                    )
                    .unwrap()
                    .into_iter()
                    .map(|v| v as f64)
                    .collect()
                }
            };
            for (g, e) in got.iter().zip(exp) {
                let d = (g - e).abs();
                if d > 0.0 {
                    differing += 1;
                }
                worst = worst.max(d / e.abs().max(1.0));
            }
        }
        // scipy's arithmetic is reproduced operation by operation: equal, or one rounding step
        // of the stored type (float32 or float16) apart.
        let tol = if x.dtype == "<f2" { 1e-3 } else { 1e-6 };
        assert!(
            worst <= tol,
            "{name}: worst relative difference {worst:e} ({differing} values differ)"
        );
        eprintln!("{name}: {differing} values differ, worst {worst:e}");
        n += 1;
    }
    assert_eq!(n, 11, "every resampling case was checked");
}

#[test]
fn normalisation_matches_nnunet() {
    for c in cases().iter() {
        let f = c["function"].as_str().unwrap();
        if !f.ends_with("Normalization.run") {
            continue;
        }
        let name = c["name"].as_str().unwrap();
        let x = npy(c["input"]["file"].as_str().unwrap());
        let want = npy(c["output"]["file"].as_str().unwrap());
        let mut d: Vec<f32> = x.data.iter().map(|&v| v as f32).collect();
        if f == "CTNormalization.run" {
            let p = &c["intensityproperties"];
            let norm = Norm::Ct {
                lo: p["percentile_00_5"].as_f64().unwrap() as f32,
                hi: p["percentile_99_5"].as_f64().unwrap() as f32,
                mean: p["mean"].as_f64().unwrap() as f32,
                std: p["std"].as_f64().unwrap().max(1e-8) as f32,
            };
            normalize(&mut d, shape3(&x.shape), norm);
            let same = d
                .iter()
                .zip(&want.data)
                .filter(|(a, b)| **a as f64 == **b)
                .count();
            assert_eq!(same, d.len(), "{name}: CTNormalization must be exact");
        } else {
            let mask: Option<Vec<bool>> = c["use_mask_for_norm"].as_bool().unwrap().then(|| {
                let seg = npy(&format!("{name}_seg.npy"));
                seg.data.iter().map(|&v| v >= 0.0).collect()
            });
            zscore(&mut d, mask.as_deref());
            let worst = d
                .iter()
                .zip(&want.data)
                .map(|(a, b)| (*a as f64 - b).abs())
                .fold(0.0, f64::max);
            // numpy's float32 pairwise mean/std vs float64 statistics here
            assert!(worst < 1e-5, "{name}: worst difference {worst}");
        }
    }
}

#[test]
fn tiles_gaussian_crop_and_padding_match_nnunet() {
    for c in cases() {
        let name = c["name"].as_str().unwrap().to_string();
        match c["function"].as_str().unwrap() {
            "compute_steps_for_sliding_window" => {
                for s in c["cases"].as_array().unwrap() {
                    let img: Vec<usize> = serde_json::from_value(s["image_size"].clone()).unwrap();
                    let tile: Vec<usize> = serde_json::from_value(s["tile_size"].clone()).unwrap();
                    let step = s["tile_step_size"].as_f64().unwrap();
                    let want: Vec<Vec<usize>> = serde_json::from_value(s["steps"].clone()).unwrap();
                    let got: Vec<Vec<usize>> = (0..3)
                        .map(|a| {
                            autocontour::infer::tiling::tile_starts(img[a], tile[a], step).unwrap()
                        })
                        .collect();
                    assert_eq!(got, want, "{name}: {img:?} / {tile:?}");
                }
            }
            "compute_gaussian" => {
                let tile: Vec<usize> =
                    serde_json::from_value(c["kwargs"]["tile_size"].clone()).unwrap();
                let want = npy(c["output"]["file"].as_str().unwrap());
                let g = window::gaussian(
                    shape3(&tile),
                    c["kwargs"]["sigma_scale"].as_f64().unwrap(),
                    c["kwargs"]["value_scaling_factor"].as_f64().unwrap(),
                )
                .unwrap();
                let differ = g
                    .iter()
                    .zip(&want.data)
                    .filter(|(a, b)| a.to_f64() != **b)
                    .count();
                assert_eq!(
                    differ,
                    0,
                    "{name}: {differ} of {} float16 weights differ",
                    g.len()
                );
            }
            "crop_to_nonzero" => {
                let x = npy(c["input"]["file"].as_str().unwrap());
                let sh = shape3(&x.shape[1..]);
                let vox: usize = sh.iter().product();
                // any channel nonzero
                let any: Vec<f32> = (0..vox)
                    .map(|i| {
                        if (0..x.shape[0]).any(|ch| x.data[ch * vox + i] != 0.0) {
                            1.0
                        } else {
                            0.0
                        }
                    })
                    .collect();
                let bb = nonzero_bbox(&any, sh);
                let want: Vec<[usize; 2]> = serde_json::from_value(c["bbox"].clone()).unwrap();
                assert_eq!(bb.to_vec(), want, "{name}");
            }
            "pad_nd_image" => {
                let patch: Vec<usize> = serde_json::from_value(c["patch_size"].clone()).unwrap();
                let inp: Vec<usize> = serde_json::from_value(c["input_shape"].clone()).unwrap();
                let want: Vec<[usize; 2]> =
                    serde_json::from_value(c["revert_slicer"].clone()).unwrap();
                for a in 0..3 {
                    let s = inp[a + 1];
                    let padded = s.max(patch[a]);
                    let lo = (padded - s) / 2;
                    assert_eq!([lo, lo + s], want[a + 1], "{name} axis {a}");
                }
            }
            _ => {}
        }
    }
}

#[test]
fn regions_are_painted_as_nnunet_paints_them() {
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("unit/regions.json")).unwrap())
            .unwrap();
    let order: Vec<u32> = serde_json::from_value(meta["regions_class_order"].clone()).unwrap();
    let logits = npy("regions_logits.npy");
    let want = npy("regions_seg.npy");
    let vox: usize = logits.shape[1..].iter().product();
    let mut labels = vec![0u8; vox];
    for (c, &paint) in order.iter().enumerate() {
        let ch: Vec<f32> = logits.data[c * vox..(c + 1) * vox]
            .iter()
            .map(|&v| v as f32)
            .collect();
        autocontour::nnunet::paint_region(&mut labels, &ch, paint);
    }
    let differ = labels
        .iter()
        .zip(&want.data)
        .filter(|(a, b)| **a as f64 != **b)
        .count();
    assert_eq!(
        differ, 0,
        "{differ} of {vox} voxels differ from LabelManager's"
    );
    assert!((1..=3).all(|v| labels.contains(&v)));
}

// ------------------------------------------------------------------------------ 2. end to end

fn heldout() -> &'static Volume<f32> {
    static CT: OnceLock<Volume<f32>> = OnceLock::new();
    CT.get_or_init(|| read_nifti_image(&dir().join("heldout_ct.nii.gz")).unwrap())
}

fn open(pkg: &Path, folds: &[u32]) -> Model {
    Model::open(
        pkg,
        &ModelOptions {
            folds: Some(folds.to_vec()),
            ..common::model_options()
        },
    )
    .unwrap()
}

/// Voxels that differ and per-label Dice against a reference label map.
fn agreement(ours: &[u8], reference: &[u8]) -> (usize, BTreeMap<u8, f64>) {
    assert_eq!(ours.len(), reference.len());
    let differ = ours.iter().zip(reference).filter(|(a, b)| a != b).count();
    let mut dice = BTreeMap::new();
    for l in 1..=ours.iter().chain(reference).copied().max().unwrap_or(0) {
        let a = ours.iter().filter(|&&v| v == l).count();
        let b = reference.iter().filter(|&&v| v == l).count();
        let both = ours
            .iter()
            .zip(reference)
            .filter(|(x, y)| **x == l && **y == l)
            .count();
        if a + b > 0 {
            dice.insert(l, 2.0 * both as f64 / (a + b) as f64);
        }
    }
    (differ, dice)
}

fn run(model: &Model, mirror: bool) -> Vec<u8> {
    let opts = InferOptions {
        disable_mirroring: !mirror,
        ..InferOptions::default()
    };
    predict(model, heldout(), &opts).unwrap().labels.into_data()
}

fn check_against(name: &str, labels: &[u8]) {
    let reference = read_nifti_labels(&dir().join("ref").join(format!("{name}.nii.gz"))).unwrap();
    assert_eq!(reference.geometry().size, heldout().geometry().size);
    let (differ, dice) = agreement(labels, reference.data());
    let n = labels.len();
    eprintln!(
        "{name}: {differ} of {n} voxels differ ({:.4} %), Dice {dice:?}",
        100.0 * differ as f64 / n as f64
    );
    assert!(
        differ as f64 <= 0.001 * n as f64,
        "{name}: {differ} of {n} voxels differ"
    );
    for (l, d) in dice {
        assert!(d >= 0.995, "{name}: label {l} Dice {d}");
    }
}

#[test]
fn fold0_agrees_with_nnunet_predictor() {
    let model = open(&dir().join("package"), &[0]);
    check_against("fold0_nomirror", &run(&model, false));
    check_against("fold0_mirror", &run(&model, true));
}

/// Fold 0 imported with `--fp16` (a float16 graph, half the size): the engine feeds it float16
/// tiles; against nnU-Net's float32 prediction the label map stays inside the same tolerance
/// (272 of 582,135 voxels differ when this was written).
#[test]
fn float16_graph_agrees_with_nnunet_predictor() {
    let model = open(&dir().join("package_fp16"), &[0]);
    assert_eq!(
        model.manifest.onnx.dtype,
        autocontour::model::DType::Float16
    );
    check_against("fold0_nomirror", &run(&model, false));
}

#[test]
fn two_fold_ensemble_agrees_with_nnunet_predictor() {
    let model = open(&dir().join("package"), &[0, 1]);
    assert_eq!(model.folds, vec![0, 1]);
    check_against("folds01_nomirror", &run(&model, false));
    check_against("folds01_mirror", &run(&model, true));
}

// ------------------------------------------------------------------------------ 3. mutations

/// A change to a package's model.json.
type Edit = Box<dyn Fn(&mut Value)>;

/// The package with one manifest field changed (the ONNX files linked, not copied).
fn mutated(edit: impl Fn(&mut Value)) -> tempfile::TempDir {
    let src = dir().join("package");
    let t = tempfile::tempdir().unwrap();
    for f in ["fold_0.onnx", "fold_1.onnx"] {
        std::os::unix::fs::symlink(src.join(f), t.path().join(f)).unwrap();
    }
    let mut m: Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("model.json")).unwrap()).unwrap();
    edit(&mut m);
    std::fs::write(
        t.path().join("model.json"),
        serde_json::to_string_pretty(&m).unwrap(),
    )
    .unwrap();
    t
}

/// Each change to a preprocessing or export step moves the label map outside the tolerance
/// the agreement tests allow (> 0.1 % of the voxels, or a structure's Dice < 0.995).
#[test]
fn preprocessing_mutations_are_caught() {
    let reference = read_nifti_labels(&dir().join("ref/fold0_nomirror.nii.gz")).unwrap();
    let mutations: Vec<(&str, Edit)> = vec![
        (
            "image resampling order 3 -> 1",
            Box::new(|m| m["nnunet"]["resampling"]["data"]["order"] = 1.into()),
        ),
        (
            "no separate-z resampling of the image",
            Box::new(|m| m["nnunet"]["resampling"]["data"]["force_separate_z"] = false.into()),
        ),
        (
            "logits resampling order 1 -> 0",
            Box::new(|m| m["nnunet"]["resampling"]["logits"]["order"] = 0.into()),
        ),
        (
            "CT normalisation mean +20 HU",
            Box::new(|m| {
                let v = m["nnunet"]["normalization"][0]["mean"].as_f64().unwrap();
                m["nnunet"]["normalization"][0]["mean"] = (v + 20.0).into();
            }),
        ),
        (
            "target spacing z 3.5 -> 3.0 mm",
            Box::new(|m| m["nnunet"]["spacing_zyx"][0] = 3.0.into()),
        ),
        (
            "Gaussian sigma patch/8 -> patch/4",
            Box::new(|m| m["nnunet"]["gaussian"]["sigma_scale"] = 0.25.into()),
        ),
        (
            "tile step 0.5 -> 1.0",
            Box::new(|m| m["nnunet"]["sliding_window"]["tile_step"] = 1.0.into()),
        ),
    ];
    let mut missed = Vec::new();
    for (name, edit) in &mutations {
        let pkg = mutated(edit);
        let model = open(pkg.path(), &[0]);
        let labels = run(&model, false);
        let (differ, dice) = agreement(&labels, reference.data());
        let worst = dice.values().copied().fold(1.0, f64::min);
        eprintln!("mutation {name}: {differ} voxels differ, worst Dice {worst:.5}");
        if differ as f64 <= 0.001 * labels.len() as f64 && worst >= 0.995 {
            missed.push(*name);
        }
    }
    assert!(missed.is_empty(), "mutations not caught: {missed:?}");
}

/// Packages the engine cannot run faithfully are refused with named errors before any
/// inference: the message names the field.
#[test]
fn unsupported_or_broken_packages_are_named_errors() {
    let opts = |folds: Option<Vec<u32>>| ModelOptions {
        folds,
        ..common::model_options()
    };
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "no nnunet block",
            Box::new(|m| {
                m.as_object_mut().unwrap().remove("nnunet");
            }),
            "without an \"nnunet\" block",
        ),
        (
            "unknown pipeline",
            Box::new(|m| m["pipeline"] = "nnunet_v3".into()),
            "nnunet_v3",
        ),
        (
            "no pipeline",
            Box::new(|m| {
                m.as_object_mut().unwrap().remove("pipeline");
            }),
            "without \"pipeline\"",
        ),
        (
            "unknown normalisation",
            Box::new(|m| m["nnunet"]["normalization"][0]["kind"] = "rescale_to_01".into()),
            "rescale_to_01",
        ),
        (
            "other resampling",
            Box::new(|m| m["nnunet"]["resampling"]["function"] = "resample_torch_fornnunet".into()),
            "resample_torch_fornnunet",
        ),
        (
            "float32 accumulators",
            Box::new(|m| m["nnunet"]["accumulator_dtype"] = "float32".into()),
            "accumulator_dtype",
        ),
        (
            "two channels",
            Box::new(|m| m["nnunet"]["num_input_channels"] = 2.into()),
            "num_input_channels",
        ),
        (
            "heads vs labels",
            Box::new(|m| m["nnunet"]["labels"]["num_segmentation_heads"] = 5.into()),
            "num_segmentation_heads",
        ),
        (
            "fold file escapes",
            Box::new(|m| m["nnunet"]["folds"][1]["file"] = "../fold_1.onnx".into()),
            "plain file name",
        ),
    ];
    for (name, edit, needle) in &cases {
        let pkg = mutated(edit);
        let e = Model::open(pkg.path(), &opts(None)).unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(e, autocontour::Error::InvalidManifest { .. }),
            "{name}: {msg}"
        );
        assert!(msg.contains(needle), "{name}: {msg}");
    }
    // a fold that is not in the package, a fold file whose hash does not match
    let pkg = mutated(|_| {});
    let e = Model::open(pkg.path(), &opts(Some(vec![3]))).unwrap_err();
    assert!(e.to_string().contains("fold 3 is not in"), "{e}");
    let pkg = mutated(|m| m["nnunet"]["folds"][1]["file"] = "fold_0.onnx".into());
    let e = Model::open(pkg.path(), &opts(Some(vec![1]))).unwrap_err();
    assert!(
        matches!(e, autocontour::Error::ModelHashMismatch { .. }),
        "{e}"
    );
    // folds for a package that is not an nnU-Net one
    let e = Model::open(
        &common::root().join("models/thorax-basic"),
        &opts(Some(vec![0])),
    )
    .unwrap_err();
    assert!(e.to_string().contains("not an nnU-Net package"), "{e}");
}

// ------------------------------------------------------------------------------ 4. bundles

fn write_bundle(parts: serde_json::Value, plausibility: Option<Value>) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let mut b = serde_json::json!({
        "schema_version": 1, "name": "two-part", "version": "1.0.0", "parts": parts
    });
    if let Some(p) = plausibility {
        b["plausibility"] = p;
    }
    std::fs::write(t.path().join("bundle.json"), b.to_string()).unwrap();
    t
}

fn plain_options() -> ModelOptions {
    common::model_options()
}

/// The default model (its External as BODY) and an nnU-Net part (lungs, fold 0) on the
/// held-out CT: one label map, the lungs exactly the nnU-Net part's (painted last), BODY the
/// default model's External wherever the lungs are not.
#[test]
fn bundle_merges_an_nnunet_part_and_a_plain_part() {
    let thorax = common::root().join("models/thorax-basic");
    let b = write_bundle(
        serde_json::json!([
            {"package": thorax, "structures": {"External": "BODY"}},
            {"package": dir().join("package"), "structures": {"Lung_L": "Lung_L", "Lung_R": "Lung_R"}, "folds": [0]}
        ]),
        None,
    );
    let bundle = Model::open(b.path(), &plain_options()).unwrap();
    let names: Vec<&str> = bundle
        .manifest
        .labels
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(names, ["Background", "BODY", "Lung_L", "Lung_R"]);
    let merged = run(&bundle, false);
    let nn = run(&open(&dir().join("package"), &[0]), false);
    let th = run(&Model::open(&thorax, &plain_options()).unwrap(), false);
    let expected: Vec<u8> = nn
        .iter()
        .zip(&th)
        .map(|(&a, &b)| match (a, b) {
            (2, _) => 2,
            (3, _) => 3,
            (_, 1) => 1,
            _ => 0,
        })
        .collect();
    let differ = merged.iter().zip(&expected).filter(|(a, b)| a != b).count();
    assert_eq!(differ, 0, "{differ} voxels differ from the parts run alone");
    assert!(merged.contains(&1) && merged.contains(&3));
}

/// The default model split into two parts on RIDER (one CT load), with the default model's
/// plausibility rules given to the bundle: the same label map as the model alone with its labels
/// renumbered (builtin External included), and one RT Structure Set with the bundle's names.
#[test]
fn bundle_on_rider_gives_one_structure_set() {
    use autocontour::dicom::{LoadOptions, load_series};
    use autocontour::pipeline::segment;
    let thorax = common::root().join("models/thorax-basic");
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(thorax.join("model.json")).unwrap()).unwrap();
    let rules = manifest["plausibility"].clone();
    let b = write_bundle(
        serde_json::json!([
            {"package": thorax, "structures": {"External": "BODY"}},
            {"package": thorax, "structures": {"Lung_L": "Lung_L", "Lung_R": "Lung_R"}}
        ]),
        Some(rules),
    );
    let ct = load_series(&common::require("rider/ct"), None, &LoadOptions::default()).unwrap();
    let bundle = Model::open(b.path(), &plain_options()).unwrap();
    let plain = Model::open(&thorax, &plain_options()).unwrap();
    let sb = segment(&bundle, &ct, &InferOptions::default()).unwrap();
    let sp = segment(&plain, &ct, &InferOptions::default()).unwrap();
    let renumber = [0u8, 1, 2, 3]; // External, Lung_L, Lung_R → BODY, Lung_L, Lung_R
    let differ = sb
        .labels
        .data()
        .iter()
        .zip(sp.labels.data())
        .filter(|(a, b)| **a != renumber[**b as usize])
        .count();
    assert_eq!(differ, 0);
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("rtstruct.dcm");
    sb.write_rtstruct(&bundle, &ct, &path, &Default::default())
        .unwrap();
    let rs = autocontour::rtstruct::read_rtstruct(&path).unwrap();
    for name in ["Lung_L", "Lung_R", "BODY"] {
        let kind = rs.roi(name).map(|r| r.kind());
        assert_eq!(kind, Some(autocontour::rtstruct::RoiKind::Area), "{name}");
    }
    assert_eq!(rs.rois.len(), 3);
}

/// Bundles that cannot be merged are named errors naming bundle.json.
#[test]
fn bundle_errors_are_named() {
    let thorax = common::root().join("models/thorax-basic");
    let cases = [
        (serde_json::json!([]), "at least one part"),
        (
            serde_json::json!([{"package": thorax, "structures": {"Liver": "Liver"}}]),
            "no structure \"Liver\"",
        ),
        (
            serde_json::json!([{"package": thorax}, {"package": thorax, "structures": {"Lung_L": "Lung_L"}}]),
            "appears twice",
        ),
        (
            serde_json::json!([{"package": thorax, "structures": {}}]),
            "keep no structure",
        ),
        (
            serde_json::json!([{"package": thorax, "bogus": 1}]),
            "bogus",
        ),
    ];
    for (parts, needle) in cases {
        let b = write_bundle(parts, None);
        let e = Model::open(b.path(), &plain_options()).unwrap_err();
        assert!(
            matches!(e, autocontour::Error::InvalidManifest { .. }),
            "{e}"
        );
        assert!(
            e.to_string().contains(needle) && e.to_string().contains("bundle.json"),
            "{e}"
        );
    }
    // a part that is itself a bundle
    let inner = write_bundle(serde_json::json!([{"package": thorax}]), None);
    let outer = write_bundle(serde_json::json!([{"package": inner.path()}]), None);
    let e = Model::open(outer.path(), &plain_options()).unwrap_err();
    assert!(e.to_string().contains("is itself a bundle"), "{e}");
}

// ------------------------------------------------------------------------------ 5. the CLI

/// `autocontour predict`: NIfTI in, NIfTI label map out, as nnUNetv2_predict.
#[test]
fn cli_predict_writes_nnunets_label_map() {
    let out = tempfile::tempdir().unwrap();
    let labels = out.path().join("labels.nii.gz");
    let o = std::process::Command::new(common::cli())
        .arg("predict")
        .arg(dir().join("heldout_ct.nii.gz"))
        .args(["--model"])
        .arg(dir().join("package"))
        .arg("--out")
        .arg(&labels)
        .args([
            "--folds",
            "0",
            "--no-mirroring",
            "--threads",
            "2",
            "--ort-lib",
        ])
        .arg(common::ort_lib())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["model"]["folds"], serde_json::json!([0]));
    assert_eq!(summary["mirroring"], false);
    let ours = read_nifti_labels(&labels).unwrap();
    assert_eq!(ours.geometry().size, heldout().geometry().size);
    check_against("fold0_nomirror", ours.data());
}

/// `autocontour import nnunet` runs the importer and keeps its named error and exit status;
/// nothing is written. (An empty results folder fails before the importer needs torch.)
#[test]
fn cli_import_reports_the_importers_named_error() {
    let t = tempfile::tempdir().unwrap();
    let model = t
        .path()
        .join("Dataset1_X/nnUNetTrainer__nnUNetPlans__3d_fullres");
    std::fs::create_dir_all(&model).unwrap();
    let out = t.path().join("pkg");
    let o = std::process::Command::new(common::cli())
        .args(["import", "nnunet"])
        .arg(&model)
        .arg("--python")
        .arg(common::python())
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(12), "{stderr}");
    assert!(stderr.contains("error[MISSING_FOLD]"), "{stderr}");
    assert!(!out.exists());
}

/// Runaway settings are refused before any work: a tile step under one voxel, a Gaussian wider
/// than any kernel the engine builds, absurd thread counts.
#[test]
fn runaway_settings_are_refused() {
    let pkg = mutated(|m| m["nnunet"]["sliding_window"]["tile_step"] = 1e-9.into());
    let e = Model::open(pkg.path(), &plain_options()).unwrap_err();
    assert!(e.to_string().contains("under one voxel"), "{e}");
    let pkg = mutated(|m| m["nnunet"]["gaussian"]["sigma_scale"] = 1e300.into());
    let e = Model::open(pkg.path(), &plain_options()).unwrap_err();
    assert!(e.to_string().contains("nnunet.gaussian.sigma_scale"), "{e}");
    let pkg = mutated(|m| m["tile_step"] = 1e-9.into());
    let e = Model::open(pkg.path(), &plain_options()).unwrap_err();
    assert!(e.to_string().contains("under one voxel"), "{e}");
    let e = Model::open(
        &dir().join("package"),
        &ModelOptions {
            threads: 100_000,
            ..plain_options()
        },
    )
    .unwrap_err();
    assert!(matches!(e, autocontour::Error::InvalidArgument(_)), "{e}");
}
