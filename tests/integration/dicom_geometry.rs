//! Per-voxel patient coordinates and HU match pydicom + numpy (tests/python/voxel_reference.py)
//! on the real RIDER CT (feet first, identity orientation) and on phantoms in every orientation.

use autocontour_test_support as common;

use std::path::Path;
use std::process::Command;

use autocontour::dicom::{CtSeries, LoadOptions, load_series};
use autocontour_test_support::phantom::{Orientation, Phantom, PhantomSpec, PhantomSyntax};

fn reference(dir: &Path) -> Vec<serde_json::Value> {
    let py = common::root().join("target/pyenv/bin/python");
    assert!(
        py.exists(),
        "{} missing: run tests/run-all.sh",
        py.display()
    );
    let out = tempfile::NamedTempFile::new().unwrap();
    let ok = Command::new(py)
        .arg(common::root().join("tests/python/voxel_reference.py"))
        .arg(dir)
        .arg(out.path())
        .status()
        .unwrap()
        .success();
    assert!(ok, "voxel_reference.py failed on {}", dir.display());
    serde_json::from_slice(&std::fs::read(out.path()).unwrap()).unwrap()
}

/// Compares every reference voxel with the loaded volume; returns the Patient Positions seen.
fn compare(s: &CtSeries, reference: &[serde_json::Value]) -> Vec<String> {
    let g = s.volume.geometry();
    assert_eq!(reference.len(), s.slices.len());
    let mut positions = Vec::new();
    for e in reference {
        let uid = e["sop_instance_uid"].as_str().unwrap();
        let k = s
            .slices
            .iter()
            .position(|x| x.sop_instance_uid == uid)
            .unwrap_or_else(|| panic!("{uid} not in the loaded series"));
        positions.push(e["patient_position"].as_str().unwrap().to_string());
        for v in e["voxels"].as_array().unwrap() {
            let (i, j) = (v["i"].as_u64().unwrap(), v["j"].as_u64().unwrap());
            let want: Vec<f64> = v["patient"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            let got = g.index_to_patient([i as f64, j as f64, k as f64]);
            for a in 0..3 {
                assert!(
                    (got[a] - want[a]).abs() < 1e-4,
                    "slice {k} ({uid}) voxel ({i},{j}): ours {got:?}, pydicom {want:?}"
                );
            }
            let hu = s.volume.get(i as usize, j as usize, k).unwrap();
            assert_eq!(
                f64::from(hu),
                v["hu"].as_f64().unwrap(),
                "HU at ({i},{j},{k})"
            );
        }
    }
    positions
}

#[test]
fn rider_voxels_match_pydicom() {
    let dir = common::require("rider/ct");
    let s = load_series(&dir, None, &LoadOptions::default()).unwrap();
    let positions = compare(&s, &reference(&dir));
    // The scan is feet first; geometry still comes from IPP/IOP (k runs towards the head).
    assert!(positions.iter().all(|p| p == "FFS"), "{positions:?}");
    assert_eq!(s.volume.geometry().axis(2), [0.0, 0.0, 1.0]);
}

#[test]
fn phantom_voxels_match_pydicom_in_every_orientation() {
    for o in Orientation::ALL {
        let tmp = tempfile::tempdir().unwrap();
        let ph = Phantom::new(PhantomSpec {
            orientation: o,
            size: [24, 20, 16],
            spacing: [3.5, 4.25, 6.0],
            center: [-7.0, 15.5, -120.0],
            seed: None,
        })
        .unwrap();
        ph.write_series(tmp.path(), PhantomSyntax::ImplicitLittle)
            .unwrap();
        let s = load_series(tmp.path(), None, &LoadOptions::default()).unwrap();
        compare(&s, &reference(tmp.path()));
    }
}
