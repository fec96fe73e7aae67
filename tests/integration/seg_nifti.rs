//! DICOM SEG and NIfTI label-map output, and the rtstruct-to-mask / mask-to-rtstruct CLI, on a
//! small phantom: checked with dciodvfy (dicom3tools), pydicom and SimpleITK.

use autocontour_test_support as common;

use std::path::{Path, PathBuf};
use std::process::Command;

use autocontour::dicom::{LoadOptions, load_series};
use autocontour::nifti::{read_nifti_labels, write_nifti_labels};
use autocontour::rtstruct::OutputInfo;
use autocontour::seg::{SegSegment, write_seg};
use autocontour_test_support::phantom::{
    Orientation, Phantom, PhantomSpec, PhantomSyntax, STRUCTURES,
};

fn phantom(dir: &Path, o: Orientation) -> Phantom {
    let ph = Phantom::new(PhantomSpec {
        orientation: o,
        size: [30, 26, 12],
        spacing: [6.0, 6.5, 8.0],
        center: [12.5, -30.25, 250.0],
        seed: None,
    })
    .unwrap();
    ph.write_series(&dir.join("ct"), PhantomSyntax::ImplicitLittle)
        .unwrap();
    ph.write_labels(dir).unwrap();
    ph
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `dciodvfy` finds no error in `seg`, then `tests/python/seg_nifti_check.py` reads it (pydicom)
/// and `nii` (SimpleITK) on `ct`: its JSON summary, in which every frame sits on its Source
/// Image, and the folder holding `seg_labels.raw` and `nifti_labels.raw`.
fn independent_read_back(
    seg: &Path,
    ct: &Path,
    nii: &Path,
    tmp: &Path,
) -> (serde_json::Value, PathBuf) {
    let report = common::dciodvfy(seg);
    assert!(
        !report.contains("Error"),
        "dciodvfy reports errors:\n{report}"
    );
    let out = tmp.join("py");
    std::fs::create_dir_all(&out).unwrap();
    let summary = run(Command::new(common::python())
        .arg(common::root().join("tests/python/seg_nifti_check.py"))
        .arg(seg)
        .arg(ct)
        .arg(nii)
        .arg(&out));
    let summary: serde_json::Value = serde_json::from_str(summary.trim()).unwrap();
    assert_eq!(summary["bad_positions"], 0, "{summary}");
    (summary, out)
}

#[test]
fn seg_and_nifti_read_back_by_independent_tools() {
    let tmp = tempfile::tempdir().unwrap();
    let ph = phantom(tmp.path(), Orientation::NegatedRow);
    let ct = load_series(&tmp.path().join("ct"), None, &LoadOptions::default()).unwrap();
    let g = *ct.volume.geometry();
    assert_eq!(g.size, ph.geometry().size);
    let segments: Vec<SegSegment> = STRUCTURES[1..]
        .iter()
        .map(|s| SegSegment {
            label: s.label,
            name: s.name.to_string(),
            color: [200, 40 * s.label, 0],
            code: None,
        })
        .collect();
    let info = OutputInfo {
        model_name: "phantom".into(),
        model_version: "1".into(),
        ..OutputInfo::default()
    };
    let seg = tmp.path().join("seg.dcm");
    write_seg(&seg, &ct, &ph.labels, &segments, &info).unwrap();
    let nii = tmp.path().join("labels.nii.gz");
    write_nifti_labels(&nii, &ph.labels, "phantom").unwrap();
    assert_eq!(read_nifti_labels(&nii).unwrap().data(), ph.labels.data());

    let (summary, out) = independent_read_back(&seg, &tmp.path().join("ct"), &nii, tmp.path());
    assert_eq!(summary["segments"].as_array().unwrap().len(), 5);
    // Frames only where a segment is present.
    let expected_frames: usize = segments
        .iter()
        .map(|s| {
            (0..g.size[2])
                .filter(|&k| ph.labels.slice(k).unwrap().contains(&s.label))
                .count()
        })
        .sum();
    assert_eq!(summary["frames"], expected_frames);
    // pydicom's frames, placed by their Source Image, give back the label map.
    let from_seg = std::fs::read(out.join("seg_labels.raw")).unwrap();
    assert!(
        from_seg == ph.labels.data(),
        "SEG frames differ from the mask"
    );
    // SimpleITK reads the same voxels and puts them at our LPS points.
    let from_nii = std::fs::read(out.join("nifti_labels.raw")).unwrap();
    assert!(from_nii == ph.labels.data(), "NIfTI voxels differ");
    for (key, p) in summary["nifti_lps"].as_object().unwrap() {
        let idx: Vec<f64> = key.split(',').map(|v| v.parse().unwrap()).collect();
        let want = g.index_to_patient([idx[0], idx[1], idx[2]]);
        for a in 0..3 {
            let got = p[a].as_f64().unwrap();
            assert!((got - want[a]).abs() < 1e-3, "{key}: {p} vs {want:?}");
        }
    }
}

/// `autocontour mask-to-seg`: the phantom's label map as a DICOM SEG that dciodvfy accepts and
/// pydicom reads back voxel for voxel.
#[test]
fn cli_mask_to_seg_reads_back() {
    let tmp = tempfile::tempdir().unwrap();
    let ph = phantom(tmp.path(), Orientation::AxialHfs);
    let ct = tmp.path().join("ct");
    let seg = tmp.path().join("out").join("seg.dcm");
    let text = run(Command::new(common::cli())
        .arg("mask-to-seg")
        .arg(tmp.path().join("labels.raw"))
        .arg("--ct")
        .arg(&ct)
        .arg("--out")
        .arg(&seg));
    assert!(text.contains("lung_left"), "{text}");
    let nii = tmp.path().join("labels.nii.gz");
    write_nifti_labels(&nii, &ph.labels, "phantom").unwrap();
    let (summary, out) = independent_read_back(&seg, &ct, &nii, tmp.path());
    assert_eq!(
        summary["segments"].as_array().unwrap().len(),
        5,
        "{summary}"
    );
    let from_seg = std::fs::read(out.join("seg_labels.raw")).unwrap();
    assert!(
        from_seg == ph.labels.data(),
        "SEG frames differ from the label map"
    );
}

#[test]
fn cli_mask_to_rtstruct_and_back() {
    let tmp = tempfile::tempdir().unwrap();
    let ph = phantom(tmp.path(), Orientation::AxialFfs);
    let ct = tmp.path().join("ct");
    let rs = tmp.path().join("rs.dcm");
    let text = run(Command::new(common::cli())
        .arg("mask-to-rtstruct")
        .arg(tmp.path().join("labels.raw"))
        .arg("--ct")
        .arg(&ct)
        .arg("--out")
        .arg(&rs));
    assert!(text.contains("lung_left"), "{text}");
    let nii = tmp.path().join("back.nii.gz");
    run(Command::new(common::cli())
        .arg("rtstruct-to-mask")
        .arg(&rs)
        .arg("--ct")
        .arg(&ct)
        .arg("--out")
        .arg(&nii));
    let back = read_nifti_labels(&nii).unwrap();
    let side: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("back.json")).unwrap())
            .unwrap();
    let names: Vec<&str> = side["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["body", "lung_left", "lung_right", "tube", "ring"]);
    // ROI n of the structure set is label n of the phantom: the round trip is voxel-exact.
    let diff = back
        .data()
        .iter()
        .zip(ph.labels.data())
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(
        diff, 0,
        "{diff} voxels differ after label map → RTSTRUCT → label map"
    );

    // Folder output: one 0/1 mask per ROI.
    let dir = tmp.path().join("masks");
    run(Command::new(common::cli())
        .arg("rtstruct-to-mask")
        .arg(&rs)
        .arg("--ct")
        .arg(&ct)
        .arg("--out")
        .arg(&dir));
    let lung = read_nifti_labels(&dir.join("02_lung_left.nii.gz")).unwrap();
    assert!(
        lung.data()
            .iter()
            .zip(ph.labels.data())
            .all(|(&m, &l)| (m == 1) == (l == 2))
    );

    // --names, and a grid that is not the CT's is refused with a reason.
    let rs2 = tmp.path().join("rs2.dcm");
    run(Command::new(common::cli())
        .arg("mask-to-rtstruct")
        .arg(&nii)
        .args(["--names", "Body,LungL,LungR,Tube,Ring", "--ct"])
        .arg(&ct)
        .arg("--out")
        .arg(&rs2));
    let names2: Vec<String> = autocontour::rtstruct::read_rtstruct(&rs2)
        .unwrap()
        .rois
        .iter()
        .map(|r| r.name.clone())
        .collect();
    assert_eq!(names2, ["Body", "LungL", "LungR", "Tube", "Ring"]);
    let other = tempfile::tempdir().unwrap();
    let ph2 = Phantom::new(PhantomSpec {
        orientation: Orientation::AxialFfs,
        size: [30, 26, 12],
        spacing: [6.0, 6.5, 8.0],
        center: [0.0, 0.0, 0.0],
        seed: None,
    })
    .unwrap();
    let shifted = other.path().join("shifted.nii");
    write_nifti_labels(&shifted, &ph2.labels, "").unwrap();
    let out = Command::new(common::cli())
        .arg("mask-to-rtstruct")
        .arg(&shifted)
        .arg("--ct")
        .arg(&ct)
        .arg("--out")
        .arg(other.path().join("x.dcm"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not on the CT grid") && err.contains("origin"),
        "{err}"
    );
}

#[test]
fn segment_writes_seg_and_nifti_on_request() {
    let tmp = tempfile::tempdir().unwrap();
    let ph = phantom(tmp.path(), Orientation::AxialHfs);
    let out = tmp.path().join("out");
    run(Command::new(common::cli())
        .arg("segment")
        .arg(tmp.path().join("ct"))
        .arg("--model")
        .arg(common::root().join("models/test/tiny-unet"))
        .arg("--out")
        .arg(&out)
        .args([
            "--no-preview",
            "--seg",
            "--nifti",
            "--threads",
            "2",
            "--ort-lib",
        ])
        .arg(common::ort_lib()));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert!(
        summary["outputs"]["seg"]
            .as_str()
            .unwrap()
            .ends_with("seg.dcm")
    );
    let labels = read_nifti_labels(&out.join("labels.nii.gz")).unwrap();
    autocontour::nifti::check_same_grid(labels.geometry(), ph.geometry(), &out).unwrap();
    let side: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("labels.json")).unwrap()).unwrap();
    let n = side["labels"].as_array().unwrap().len();
    assert_eq!(n, summary["structures"].as_array().unwrap().len());
    let text = run(Command::new(common::python())
        .arg("-c")
        .arg(
            "import sys, pydicom\n\
             ds = pydicom.dcmread(sys.argv[1])\n\
             print(len(ds.SegmentSequence), int(ds.NumberOfFrames), int(ds.pixel_array.sum()))",
        )
        .arg(out.join("seg.dcm")));
    let v: Vec<usize> = text
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!(v[0], n);
    // Every labelled voxel is in exactly one frame (the label map is exclusive).
    assert_eq!(v[2], labels.data().iter().filter(|&&l| l != 0).count());
    assert!(v[1] > 0);
}

/// The RIDER CT with a body outline (HU > −500), the manual GTV of the RIDER RTSTRUCT (read by
/// our reader) and an empty segment: our SEG passes dciodvfy and highdicom decodes it to our
/// label map, per CT instance and as a volume placed on the CT slices; our NIfTI is read by
/// nibabel and SimpleITK as the same voxels at the CT's own voxel-centre positions (LPS vs RAS).
#[test]
fn rider_seg_and_nifti_read_by_highdicom_nibabel_simpleitk() {
    use autocontour::rtstruct::{RasterOptions, rasterise_roi, read_rtstruct};
    let ct = load_series(&common::require("rider/ct"), None, &LoadOptions::default()).unwrap();
    let g = *ct.volume.geometry();
    let rs = read_rtstruct(&common::require("rider/rtstruct.dcm")).unwrap();
    let gtv = rasterise_roi(
        rs.roi("GTVp_test_man").unwrap(),
        &g,
        &RasterOptions {
            slices: Some(&ct.slices),
        },
    )
    .unwrap();
    let data: Vec<u8> = ct
        .volume
        .to_f32()
        .data()
        .iter()
        .zip(gtv.data())
        .map(|(&hu, &t)| if t != 0 { 2 } else { u8::from(hu > -500.0) })
        .collect();
    let labels = autocontour::volume::Volume::new(g, data).unwrap();
    let segments: Vec<SegSegment> = [(1, "Body"), (2, "GTV"), (3, "Empty")]
        .iter()
        .map(|&(label, name)| SegSegment {
            label,
            name: name.into(),
            color: [255, 60 * label, 0],
            code: None,
        })
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let seg = tmp.path().join("seg.dcm");
    let info = OutputInfo {
        model_name: "rider-threshold".into(),
        model_version: "1".into(),
        ..OutputInfo::default()
    };
    write_seg(&seg, &ct, &labels, &segments, &info).unwrap();
    let nii = tmp.path().join("labels.nii.gz");
    write_nifti_labels(&nii, &labels, "rider").unwrap();
    let raw = tmp.path().join("labels.raw");
    std::fs::write(&raw, labels.data()).unwrap();

    let report = common::dciodvfy(&seg);
    assert!(
        !report.contains("Error"),
        "dciodvfy reports errors:\n{report}"
    );

    let text = run(Command::new(common::python())
        .arg(common::root().join("tests/python/seg_nifti_rider_check.py"))
        .arg(&seg)
        .arg(common::require("rider/ct"))
        .arg(&nii)
        .arg(&raw));
    let r: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    eprintln!("{r:#}");
    let hd = &r["highdicom"];
    let names: Vec<&str> = hd["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["label"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Body", "GTV", "Empty"]);
    assert_eq!(hd["mismatch"], 0, "highdicom per instance: {hd}");
    assert_eq!(hd["volume_mismatch"], 0, "highdicom volume: {hd}");
    assert!(
        hd["volume_position_error_mm"].as_f64().unwrap() < 1e-3,
        "{hd}"
    );
    assert!(hd["volume_axes_error_mm"].as_f64().unwrap() < 1e-3, "{hd}");
    for tool in ["nibabel", "simpleitk"] {
        let t = &r[tool];
        assert_eq!(t["mismatch"], 0, "{tool}: {t}");
        assert!(t["max_error_mm"].as_f64().unwrap() < 1e-3, "{tool}: {t}");
    }
    assert_eq!(r["nibabel"]["sform_code"], 1);
    assert_eq!(r["nibabel"]["qform_code"], 1);
    assert!(r["nibabel"]["qform_sform_max_diff"].as_f64().unwrap() < 1e-4);
}

/// A NIfTI header that declares a huge image is refused before anything is allocated; a small
/// gzip stream that inflates far past its header's image is read only as far as the image.
#[test]
fn nifti_size_is_bounded_by_its_header() {
    use std::io::Write;
    let t = tempfile::tempdir().unwrap();
    let header = |dims: [i16; 3]| {
        let mut h = vec![0u8; 352];
        h[0..4].copy_from_slice(&348i32.to_le_bytes());
        for (i, d) in [3i16, dims[0], dims[1], dims[2], 1, 1, 1, 1]
            .iter()
            .enumerate()
        {
            h[40 + 2 * i..42 + 2 * i].copy_from_slice(&d.to_le_bytes());
        }
        h[70..72].copy_from_slice(&16i16.to_le_bytes()); // float32
        h[72..74].copy_from_slice(&32i16.to_le_bytes());
        for (i, v) in [1.0f32, 1.0, 1.0, 1.0].iter().enumerate() {
            h[76 + 4 * i..80 + 4 * i].copy_from_slice(&v.to_le_bytes());
        }
        h[108..112].copy_from_slice(&352f32.to_le_bytes());
        h[252..254].copy_from_slice(&1i16.to_le_bytes()); // qform_code
        h[344..348].copy_from_slice(b"n+1\0");
        h
    };
    // 32767³ float32 voxels declared in a few hundred bytes
    let huge = t.path().join("huge.nii");
    std::fs::write(&huge, header([32767, 32767, 32767])).unwrap();
    let e = autocontour::nifti::read_nifti_image(&huge).unwrap_err();
    assert!(e.to_string().contains("over the limit"), "{e}");
    // 4 × 4 × 4 declared, 200 MB of zeros after it in a 200 kB gzip stream
    let bomb = t.path().join("bomb.nii.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&bomb).unwrap(),
        flate2::Compression::best(),
    );
    gz.write_all(&header([4, 4, 4])).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..200 {
        gz.write_all(&zeros).unwrap();
    }
    gz.finish().unwrap();
    assert!(std::fs::metadata(&bomb).unwrap().len() < 1 << 20);
    let v = autocontour::nifti::read_nifti_image(&bomb).unwrap();
    assert_eq!(v.geometry().size, [4, 4, 4]);
    assert!(v.data().iter().all(|&x| x == 0.0));
}
