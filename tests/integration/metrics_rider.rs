//! RIDER Lung CT: GTVp_test_man (reference) vs GTVp_test_auto (test) from the dcmqi DICOM SEG.
//! Dice, Hausdorff, HD95, mean distances, ASSD and surface Dice equal DeepMind's
//! `surface-distance` on the same masks to 1e-6 relative. Both sides read the SEG on their own:
//! here a small binary-SEG frame reader (tests/metrics_common/seg.rs), in Python pydicom + numpy; frames go to CT
//! slices by Per-Frame Functional Groups Image Position (Patient) against the CT geometry.
//!
//! Behind the `slow-tests` feature (loads the whole CT in a debug build):
//! `cargo test --features slow-tests --test metrics_rider`; tests/run-all.sh runs it.
#![cfg(feature = "slow-tests")]

use autocontour_test_support as common;
use autocontour_test_support::reference as metrics_common;

use autocontour::dicom::{LoadOptions, load_series};
use std::io::Write;
use std::path::Path;
use std::process::Command;

use autocontour::metrics::{OverlapCounts, compare_masks};
use autocontour::volume::Geometry;
use autocontour_test_support::seg::read_binary_seg;
use metrics_common::{close, reference};

/// Writes a mask as a MetaImage (.mha) that plastimatch reads.
fn write_mha(path: &Path, mask: &[u8], g: &Geometry) {
    let mut f = std::fs::File::create(path).unwrap();
    let [sx, sy, sz] = g.spacing;
    let [nx, ny, nz] = g.size;
    write!(
        f,
        "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n\
         TransformMatrix = 1 0 0 0 1 0 0 0 1\nOffset = 0 0 0\nElementSpacing = {sx} {sy} {sz}\n\
         DimSize = {nx} {ny} {nz}\nElementType = MET_UCHAR\nElementDataFile = LOCAL\n"
    )
    .unwrap();
    f.write_all(mask).unwrap();
}

#[test]
fn rider_gtv_pair_matches_deepmind_surface_distance() {
    let ct = common::require("rider/ct");
    let seg = common::require("rider/seg.dcm");
    let series = load_series(&ct, None, &LoadOptions::default()).unwrap();
    let g = *series.volume.geometry();
    let masks = read_binary_seg(&seg, &g);
    let (man, auto) = (&masks["GTVp_test_man"], &masks["GTVp_test_auto"]);
    let tol = 1.0;
    let m = compare_masks(man, auto, &g, tol).unwrap();
    let r = reference(&[
        "rider".as_ref(),
        seg.as_os_str(),
        ct.as_os_str(),
        "1.0".as_ref(),
    ]);
    let voxel: f64 = g.spacing.iter().product();
    assert_eq!(
        (m.reference_volume_mm3 / voxel).round() as u64,
        r["reference_voxels"].as_u64().unwrap()
    );
    assert_eq!(
        (m.test_volume_mm3 / voxel).round() as u64,
        r["test_voxels"].as_u64().unwrap()
    );
    close("dice", m.dice, &r["dice"]);
    close("hausdorff", m.hausdorff_mm, &r["hausdorff_mm"]);
    close("hd95", m.hd95_mm, &r["hd95_mm"]);
    close("assd", m.assd_mm, &r["assd_mm"]);
    close(
        "mean man→auto",
        m.mean_distance_reference_to_test_mm,
        &r["mean_reference_to_test_mm"],
    );
    close(
        "mean auto→man",
        m.mean_distance_test_to_reference_mm,
        &r["mean_test_to_reference_mm"],
    );
    close("surface dice", m.surface_dice, &r["surface_dice"]);
    // The pair is a real, imperfect agreement (DATA.md: Dice ≈ 0.91).
    assert!(m.dice > 0.85 && m.dice < 0.95, "{}", m.dice);

    // plastimatch `dice` on the same masks: TP/FN/FP voxel counts exactly, Dice to its 6 digits.
    let dir = tempfile::tempdir().unwrap();
    let (pr, pt) = (dir.path().join("man.mha"), dir.path().join("auto.mha"));
    write_mha(&pr, man, &g);
    write_mha(&pt, auto, &g);
    let out = Command::new("plastimatch")
        .arg("dice")
        .args([&pr, &pt])
        .output()
        .expect("plastimatch not found: apt-get install plastimatch (.ci/run installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |k: &str| -> f64 {
        text.lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix(k)
                    .map(|v| v.trim().parse::<f64>().unwrap())
            })
            .unwrap_or_else(|| panic!("no {k} in plastimatch output:\n{text}"))
    };
    let c = OverlapCounts::count(man, auto, g.size).unwrap();
    assert_eq!(field("TP:") as u64, c.both);
    assert_eq!(field("FN:") as u64, c.reference - c.both);
    assert_eq!(field("FP:") as u64, c.test - c.both);
    assert!(
        (field("DICE:") - m.dice).abs() <= 5e-7,
        "{} vs {}",
        field("DICE:"),
        m.dice
    );
}
