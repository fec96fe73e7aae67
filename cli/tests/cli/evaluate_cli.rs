//! `autocontour evaluate` end to end on the RIDER Lung CT and its Varian RT Structure Set.
//!
//! * One reference: GTVp_test_man vs GTVp_test_auto paired with `--match`; the CLI's numbers
//!   equal `metrics::compare_masks` on our rasterised masks, and its Dice is within 0.002 of the
//!   Dice of the same pair read from the DICOM SEG (an independent segmentation of the same
//!   contours: DATA.md gives Dice ≈ 0.9995 between rasterised RTSTRUCT and SEG).
//! * Three observers (the RTSTRUCT twice and a written file whose "GTVp test man" holds the
//!   auto contour, matched by the synonym rule): majority vote reference and inter-observer rows.
//! * `--plots`: the PNGs are written, decode, and have the documented sizes.

use autocontour_test_support as common;

use std::path::Path;
use std::process::Command;

use autocontour::contour::{Contour, GeometricType};
use autocontour::dicom::{LoadOptions, load_series};
use autocontour::metrics::study::majority_vote;
use autocontour::metrics::{OverlapCounts, compare_masks};
use autocontour::rtstruct::{
    OutputInfo, RasterOptions, RoiContours, RoiSpec, rasterise_roi, read_rtstruct, write_rtstruct,
};
use autocontour_test_support::seg::read_binary_seg;

fn evaluate(args: &[&std::ffi::OsStr], json: &Path) -> serde_json::Value {
    let out = Command::new(common::cli())
        .arg("evaluate")
        .arg(common::require("rider/ct"))
        .args(args)
        .arg("--json")
        .arg(json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "evaluate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("structure"), "{text}");
    serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap()
}

fn close(name: &str, got: &serde_json::Value, want: f64) {
    let g = got.as_f64().unwrap_or_else(|| panic!("{name}: {got}"));
    assert!(
        (g - want).abs() <= 1e-9 * want.abs().max(1.0),
        "{name}: {g} vs {want}"
    );
}

#[test]
fn rider_pair_and_three_observers() {
    let rs_path = common::require("rider/rtstruct.dcm");
    let dir = tempfile::tempdir().unwrap();

    // --- one reference, explicit pairing ---
    let j = evaluate(
        &[
            "--ref".as_ref(),
            rs_path.as_os_str(),
            "--test".as_ref(),
            rs_path.as_os_str(),
            "--match".as_ref(),
            "GTVp_test_auto=GTVp_test_man".as_ref(),
            "--tolerance".as_ref(),
            "1".as_ref(),
            "--csv".as_ref(),
            dir.path().join("out.csv").as_os_str(),
            "--plots".as_ref(),
            dir.path().join("plots1").as_os_str(),
        ],
        &dir.path().join("one.json"),
    );
    let rows = j["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{j}");
    let row = &rows[0];
    assert_eq!(row["structure"], "GTVp_test_man");
    assert_eq!(row["roi"], "GTVp_test_auto");
    assert_eq!(row["kind"], "test");

    let ct = load_series(&common::require("rider/ct"), None, &LoadOptions::default()).unwrap();
    let g = *ct.volume.geometry();
    let rs = read_rtstruct(&rs_path).unwrap();
    let opts = RasterOptions {
        slices: Some(&ct.slices),
    };
    let raster = |name: &str| {
        rasterise_roi(rs.roi(name).unwrap(), &g, &opts)
            .unwrap()
            .into_data()
    };
    let (man, auto) = (raster("GTVp_test_man"), raster("GTVp_test_auto"));
    let m = compare_masks(&man, &auto, &g, 1.0).unwrap();
    close("dice", &row["dice"], m.dice);
    close("hd95", &row["hd95_mm"], m.hd95_mm);
    close("assd", &row["assd_mm"], m.assd_mm);
    close("surface dice", &row["surface_dice"], m.surface_dice);
    close(
        "volume",
        &row["reference_volume_mm3"],
        m.reference_volume_mm3,
    );
    let seg = read_binary_seg(&common::require("rider/seg.dcm"), &g);
    let seg_dice = OverlapCounts::count(&seg["GTVp_test_man"], &seg["GTVp_test_auto"], g.size)
        .unwrap()
        .dice();
    assert!(
        (m.dice - seg_dice).abs() < 2e-3,
        "RTSTRUCT Dice {} vs SEG Dice {seg_dice}",
        m.dice
    );
    let csv = std::fs::read_to_string(dir.path().join("out.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2, "{csv}");
    // Plots: decodable PNGs of the documented sizes (no pixel checks).
    let p1 = dir.path().join("plots1");
    for f in ["bland_altman_volume.png", "box_dice.png", "box_hd95.png"] {
        assert_eq!(png_size(&p1.join(f)), (900, 600), "{f}");
    }
    // The overlays: the whole 512×512 slice (square pixels) and the view zoomed to the GTV
    // outlines (longer side 640 pixels), each plus the 80-pixel legend band.
    assert_eq!(png_size(&p1.join("worst_slice_full.png")), (512, 512 + 80));
    let (w, h) = png_size(&p1.join("worst_slice.png"));
    assert!(w.max(h - 80) == 640 && w.min(h - 80) >= 200, "{w}×{h}");

    // --- three observers: the RTSTRUCT twice, and one whose "GTVp test man" is the auto ROI ---
    let auto_roi = rs.roi("GTVp_test_auto").unwrap();
    let contours = auto_roi
        .contours
        .iter()
        .filter_map(|c| {
            let k = g.patient_to_index(*c.points.first()?)[2].round();
            Some(Contour {
                slice: k as usize,
                points: c.points.clone(),
                geometric_type: GeometricType::ClosedPlanar,
            })
        })
        .collect();
    let other = dir.path().join("observer_b.dcm");
    let spec = RoiSpec {
        number: 1,
        name: "GTVp test man".into(),
        color: [255, 0, 0],
        interpreted_type: "GTV".into(),
        code: None,
    };
    write_rtstruct(
        &other,
        &ct,
        &[RoiContours { spec, contours }],
        &OutputInfo::default(),
    )
    .unwrap();
    let b = rasterise_roi(
        &read_rtstruct(&other).unwrap().rois[0],
        &g,
        &RasterOptions::default(),
    )
    .unwrap()
    .into_data();
    assert_eq!(b, auto, "written observer rasterises like the source ROI");

    let j = evaluate(
        &[
            "--ref".as_ref(),
            rs_path.as_os_str(),
            "--ref".as_ref(),
            other.as_os_str(),
            "--ref".as_ref(),
            rs_path.as_os_str(),
            "--test".as_ref(),
            rs_path.as_os_str(),
            "--structures".as_ref(),
            "gtvp-test-man".as_ref(),
            "--plots".as_ref(),
            dir.path().join("plots3").as_os_str(),
        ],
        &dir.path().join("three.json"),
    );
    let rows = j["rows"].as_array().unwrap();
    let kinds: Vec<&str> = rows.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["observer", "observer", "observer", "test"], "{j}");
    // Observer 1 (man) against majority(auto, man) = auto ∩ man (a tie is background).
    let both: Vec<u8> = man.iter().zip(&auto).map(|(&x, &y)| x & y).collect();
    let want = compare_masks(&both, &man, &g, 2.0).unwrap();
    close("observer 1 dice", &rows[0]["dice"], want.dice);
    assert_eq!(rows[0]["reference"], "majority of the other 2");
    // Observer 2 (auto) against majority(man, man) = man.
    let want = compare_masks(&man, &auto, &g, 2.0).unwrap();
    close("observer 2 dice", &rows[1]["dice"], want.dice);
    close("observer 2 hd95", &rows[1]["hd95_mm"], want.hd95_mm);
    // The test (man from the RTSTRUCT) against the majority of all three = man: Dice 1.
    let fused = majority_vote(&[&man, &auto, &man]).unwrap();
    assert_eq!(fused, man);
    close("test dice", &rows[3]["dice"], 1.0);
    assert_eq!(rows[3]["reference"], "majority of 3 references");
    // Box plots with two groups (observer, test); the test agrees with its reference on every
    // slice, so there is no worst slice to draw.
    let p3 = dir.path().join("plots3");
    for f in ["bland_altman_volume.png", "box_dice.png", "box_hd95.png"] {
        assert_eq!(png_size(&p3.join(f)), (900, 600), "{f}");
    }
    assert!(!p3.join("worst_slice.png").exists());
    assert!(!p3.join("worst_slice_full.png").exists());
}

/// Decodes a PNG fully and returns its size.
fn png_size(path: &Path) -> (u32, u32) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert!(
        buf.iter().any(|&v| v != buf[0]),
        "{}: blank image",
        path.display()
    );
    (info.width, info.height)
}
