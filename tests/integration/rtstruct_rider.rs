//! RT Structure Sets on the real RIDER Lung CT, checked against independent tools:
//! the RIDER DICOM SEG (read by pydicom), pydicom, `dciodvfy` (dicom3tools) and plastimatch.

use autocontour_test_support as common;

use std::path::{Path, PathBuf};
use std::process::Command;

use autocontour::contour::{ContourOptions, polygon_area};
use autocontour::dicom::{CtSeries, LoadOptions, load_series};
use autocontour::postprocess::{Connectivity, FillHoles, PostprocessOptions, postprocess_label};
use autocontour::rtstruct::{
    OutputInfo, RasterOptions, RoiSpec, rasterise_roi, read_rtstruct, rois_from_labels,
    write_rtstruct,
};
use autocontour::volume::{Geometry, Volume};

fn python() -> PathBuf {
    let venv = common::root().join("target/pyenv/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn dice(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let (mut inter, mut sa, mut sb) = (0usize, 0usize, 0usize);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x != 0, y != 0);
        inter += (x && y) as usize;
        sa += x as usize;
        sb += y as usize;
    }
    if sa + sb == 0 {
        1.0
    } else {
        2.0 * inter as f64 / (sa + sb) as f64
    }
}

fn grid_json(g: &Geometry, path: &Path) {
    let j = serde_json::json!({
        "size": g.size, "origin": g.origin, "spacing": g.spacing, "direction": g.direction,
    });
    std::fs::write(path, j.to_string()).unwrap();
}

fn rider_ct() -> CtSeries {
    load_series(&common::require("rider/ct"), None, &LoadOptions::default()).unwrap()
}

/// Our reader + rasteriser on the Varian RTSTRUCT against the dcmqi SEG of the same tumours
/// (labels swapped between the two files, see DATA.md), SEG read by pydicom.
#[test]
fn rider_rtstruct_rasterises_to_the_seg() {
    let ct = rider_ct();
    let g = *ct.volume.geometry();
    let rs = read_rtstruct(&common::require("rider/rtstruct.dcm")).unwrap();
    assert_eq!(
        rs.frame_of_reference_uid.as_deref(),
        Some(ct.frame_of_reference_uid.as_str())
    );
    let names: Vec<&str> = rs.rois.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["GTVp_test_auto", "GTVp_test_man"]);
    assert_eq!(rs.roi("GTVp_test_man").unwrap().contours.len(), 83);
    assert_eq!(rs.roi("GTVp_test_auto").unwrap().contours.len(), 69);

    let tmp = tempfile::tempdir().unwrap();
    grid_json(&g, &tmp.path().join("grid.json"));
    let raw = tmp.path().join("seg.raw");
    let info = run(Command::new(python())
        .arg(common::root().join("tests/python/rt_seg_to_raw.py"))
        .arg(common::require("rider/seg.dcm"))
        .arg(tmp.path().join("grid.json"))
        .arg(&raw));
    let segs: serde_json::Value = serde_json::from_str(info.trim()).unwrap();
    let seg_data = std::fs::read(&raw).unwrap();
    let n = g.voxel_count();
    assert_eq!(seg_data.len(), 2 * n);
    let seg_of = |desc: &str| {
        let i = segs
            .as_array()
            .unwrap()
            .iter()
            .position(|s| s["description"] == desc)
            .unwrap();
        &seg_data[i * n..(i + 1) * n]
    };
    let opts = RasterOptions {
        slices: Some(&ct.slices),
    };
    for (roi, seg) in [
        ("GTVp_test_man", "GTVp_test_auto"),
        ("GTVp_test_auto", "GTVp_test_man"),
    ] {
        let mask = rasterise_roi(rs.roi(roi).unwrap(), &g, &opts).unwrap();
        let d = dice(mask.data(), seg_of(seg));
        let voxels = mask.data().iter().filter(|&&v| v != 0).count();
        eprintln!("RTSTRUCT {roi} vs SEG {seg}: Dice {d:.5} ({voxels} voxels)");
        assert!(voxels > 1000);
        assert!(d >= 0.999, "{roi}: Dice {d}");
    }
}

/// The direct walk over a structure set's bytes reads what dicom-object's parser reads: the
/// RIDER structure set as published, rewritten by pydicom in explicit VR little endian (with
/// defined lengths and with undefined ones), and pydicom's `rtstruct.dcm` (no file meta: read by
/// the parser).
#[test]
fn direct_walk_equals_the_parser_on_real_structure_sets() {
    use autocontour::rtstruct::{
        read_by_direct_walk, read_rtstruct_bytes, read_rtstruct_bytes_via_parser,
    };
    let rider = common::require("rider/rtstruct.dcm");
    let tmp = tempfile::tempdir().unwrap();
    let script = "import sys, pydicom\n\
        from pydicom.uid import ExplicitVRLittleEndian\n\
        for name, undefined in [('evrle.dcm', False), ('evrle-undef.dcm', True)]:\n\
        \x20   d = pydicom.dcmread(sys.argv[1])\n\
        \x20   for e in d.iterall():\n\
        \x20       if e.VR == 'SQ':\n\
        \x20           e.is_undefined_length = undefined\n\
        \x20   d.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian\n\
        \x20   d.save_as(sys.argv[2] + '/' + name, implicit_vr=False, little_endian=True, enforce_file_format=True)\n";
    run(Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(&rider)
        .arg(tmp.path()));
    let mut files = vec![
        (rider, true),
        (common::require("pydicom/rtstruct.dcm"), false),
    ];
    for name in ["evrle.dcm", "evrle-undef.dcm"] {
        files.push((tmp.path().join(name), true));
    }
    for (path, direct) in files {
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(read_by_direct_walk(&bytes), direct, "{}", path.display());
        let fast = read_rtstruct_bytes(&path, &bytes).unwrap();
        let tree = read_rtstruct_bytes_via_parser(&path, &bytes).unwrap();
        assert!(!fast.rois.is_empty(), "{}", path.display());
        assert_eq!(fast, tree, "{}", path.display());
    }
}

/// Fuzz findings of the direct walk (`rtstruct` target, differential check): each reads the
/// same through the direct walk and through the parser.
#[test]
fn direct_walk_fuzz_findings_read_as_the_parser_reads_them() {
    use autocontour::rtstruct::{
        read_by_direct_walk, read_rtstruct_bytes, read_rtstruct_bytes_via_parser,
    };
    // A file meta group whose Transfer Syntax UID has NULs, spaces and tabs before the UID:
    // dicom-object does not know it and refuses the file; the pre-scan trims it on both sides
    // and walked the data set, so the direct walk read what the parser refuses.
    let path = common::root().join("tests/fixtures/fuzz/meta-transfer-syntax-leading-padding.dcm");
    let bytes = std::fs::read(&path).unwrap();
    assert!(!read_by_direct_walk(&bytes));
    let fast = read_rtstruct_bytes(&path, &bytes).unwrap_err().to_string();
    let tree = read_rtstruct_bytes_via_parser(&path, &bytes)
        .unwrap_err()
        .to_string();
    assert_eq!(fast, tree);
    assert!(fast.contains("transfer syntax"), "{fast}");
}

/// pydicom's `rtstruct.dcm` has no preamble and no file meta; its contours match pydicom's.
#[test]
fn reads_rtstruct_without_preamble_like_pydicom() {
    let path = common::require("pydicom/rtstruct.dcm");
    let rs = read_rtstruct(&path).unwrap();
    let script = "import sys, json, pydicom\n\
        ds = pydicom.dcmread(sys.argv[1], force=True)\n\
        names = {int(r.ROINumber): str(r.ROIName) for r in ds.StructureSetROISequence}\n\
        out = []\n\
        for rc in ds.ROIContourSequence:\n\
        \x20   cs = getattr(rc, 'ContourSequence', [])\n\
        \x20   out.append([names[int(rc.ReferencedROINumber)], len(cs), sum(float(v) for c in cs for v in c.ContourData)])\n\
        print(json.dumps(out))\n";
    let text = run(Command::new(python()).arg("-c").arg(script).arg(&path));
    let want: Vec<(String, usize, f64)> = serde_json::from_str(text.trim()).unwrap();
    assert!(!want.is_empty());
    for (name, count, sum) in want {
        let roi = rs
            .roi(&name)
            .unwrap_or_else(|| panic!("ROI {name} missing"));
        assert_eq!(roi.contours.len(), count, "{name}");
        let ours: f64 = roi
            .contours
            .iter()
            .flat_map(|c| c.points.iter().flatten())
            .sum();
        assert!(
            (ours - sum).abs() < 1e-6 * (1.0 + sum.abs()),
            "{name}: {ours} vs {sum}"
        );
    }
}

/// Structures drawn on the RIDER CT: the lungs (air below −500 HU inside the body outline,
/// components above 10 % of the largest, holes filled per slice), the body (HU > −500, largest
/// component, holes filled per slice, minus the lungs: a structure with two holes per slice), a
/// ring with a hole, and an empty structure.
fn rider_labels(ct: &CtSeries) -> Volume<u8> {
    let g = *ct.volume.geometry();
    let hu = ct.volume.to_f32().into_data();
    let body: Vec<u8> = hu.iter().map(|&v| u8::from(v > -500.0)).collect();
    let mut outline = Volume::new(g, body).unwrap();
    postprocess_label(
        &mut outline,
        1,
        &PostprocessOptions {
            largest_component: true,
            connectivity: Connectivity::Six,
            fill_holes: FillHoles::Slice2d,
            ..Default::default()
        },
    )
    .unwrap();
    let air: Vec<u8> = hu
        .iter()
        .zip(outline.data())
        .map(|(&v, &o)| u8::from(o == 1 && v <= -500.0))
        .collect();
    let mut lungs = Volume::new(g, air).unwrap();
    postprocess_label(
        &mut lungs,
        1,
        &PostprocessOptions {
            min_component_fraction: Some(0.1),
            connectivity: Connectivity::Six,
            fill_holes: FillHoles::Slice2d,
            ..Default::default()
        },
    )
    .unwrap();
    let mut labels: Vec<u8> = outline.data().to_vec();
    for (l, &m) in labels.iter_mut().zip(lungs.data()) {
        if m == 1 {
            *l = 2;
        }
    }
    // A ring (outer radius 40 mm, inner 20 mm) around the grid centre, slices 100..140.
    let [ni, nj, _] = g.size;
    for k in 100..140 {
        for j in 0..nj {
            for i in 0..ni {
                let dx = (i as f64 - ni as f64 / 2.0) * g.spacing[0];
                let dy = (j as f64 - nj as f64 / 2.0) * g.spacing[1];
                let r = (dx * dx + dy * dy).sqrt();
                if (20.0..=40.0).contains(&r) {
                    labels[(k * nj + j) * ni + i] = 3;
                }
            }
        }
    }
    Volume::new(g, labels).unwrap()
}

fn specs() -> Vec<(u8, RoiSpec)> {
    let s = |number: u32, name: &str, color, t: &str| RoiSpec {
        number,
        name: name.into(),
        color,
        interpreted_type: t.into(),
        code: None,
    };
    vec![
        (1, s(1, "Body", [0, 255, 0], "EXTERNAL")),
        (2, s(2, "Lungs", [0, 128, 255], "ORGAN")),
        (3, s(3, "Ring", [255, 0, 0], "AVOIDANCE")),
        (4, s(4, "Empty", [255, 255, 0], "ORGAN")),
    ]
}

/// Label map → our RTSTRUCT → dciodvfy, pydicom, plastimatch and our own reader.
#[test]
#[cfg_attr(
    not(feature = "slow-tests"),
    ignore = "slow in debug builds: run with --features slow-tests"
)]
fn rider_round_trip_through_independent_tools() {
    let t0 = std::time::Instant::now();
    let ct = rider_ct();
    let g = *ct.volume.geometry();
    eprintln!("CT loaded: {:.1} s", t0.elapsed().as_secs_f64());
    let labels = rider_labels(&ct);
    eprintln!("labels made: {:.1} s", t0.elapsed().as_secs_f64());
    let rois = rois_from_labels(&labels, &specs(), &ContourOptions::default()).unwrap();
    eprintln!("contours traced: {:.1} s", t0.elapsed().as_secs_f64());

    // Voxel-edge tracing: each slice's contour area equals its voxel area exactly (in mm²,
    // computed from the patient coordinates in the plane of the slice).
    let pixel = g.spacing[0] * g.spacing[1];
    for (label, roi) in [1u8, 2, 3].iter().zip(&rois) {
        let mut area = vec![0.0; g.size[2]];
        for c in &roi.contours {
            let plane: Vec<[f64; 2]> = c
                .points
                .iter()
                .map(|p| {
                    let d = [p[0] - g.origin[0], p[1] - g.origin[1], p[2] - g.origin[2]];
                    let u = autocontour::volume::dot(g.axis(0), d);
                    let v = autocontour::volume::dot(g.axis(1), d);
                    [u, v]
                })
                .collect();
            area[c.slice] += polygon_area(&plane);
        }
        for (k, a) in area.iter().enumerate() {
            let voxels = labels
                .slice(k)
                .unwrap()
                .iter()
                .filter(|&&v| v == *label)
                .count();
            assert!(
                (a - voxels as f64 * pixel).abs() < 1e-6 * (1.0 + a.abs()),
                "label {label} slice {k}: area {a} vs {} voxels",
                voxels
            );
        }
    }

    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("rtstruct.dcm");
    let info = OutputInfo {
        model_name: "rider-threshold".into(),
        model_version: "1.0".into(),
        model_sha256: "0".repeat(64),
        ..Default::default()
    };
    write_rtstruct(&out, &ct, &rois, &info).unwrap();
    eprintln!("RTSTRUCT written: {:.1} s", t0.elapsed().as_secs_f64());
    if let Some(keep) = std::env::var_os("AUTOCONTOUR_KEEP_RTSTRUCT") {
        std::fs::copy(&out, keep).unwrap();
    }
    // No temporary file left behind.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    // The direct encoder gives dicom-object's bytes exactly, for this 5-ROI structure set.
    let obj = autocontour::rtstruct::build_rtstruct(&ct, &rois, &info).unwrap();
    let mut reference = Vec::new();
    obj.write_all(&mut reference).unwrap();
    let direct = autocontour::dicom::write::encode_file(&obj).unwrap();
    assert!(
        direct == reference,
        "direct encoding differs from dicom-object's"
    );

    // dciodvfy (dicom3tools): no errors.
    let report = common::dciodvfy(&out);
    eprintln!("dciodvfy ({:.1} s):\n{report}", t0.elapsed().as_secs_f64());
    assert!(
        !report.contains("Error"),
        "dciodvfy reports errors:\n{report}"
    );

    // pydicom: structure and references.
    let summary = run(Command::new(python())
        .arg(common::root().join("tests/python/rt_check_rtstruct.py"))
        .arg(&out)
        .arg(common::require("rider/ct")));
    let summary: serde_json::Value = serde_json::from_str(summary.trim()).unwrap();
    let rois_py = summary["rois"].as_array().unwrap();
    assert_eq!(rois_py.len(), 4);
    assert_eq!(rois_py[3]["name"], "Empty");
    assert_eq!(rois_py[3]["contours"], 0);
    assert_eq!(rois_py[0]["type"], "EXTERNAL");
    assert_eq!(rois_py[2]["color"], serde_json::json!([255, 0, 0]));
    assert!(rois_py.iter().all(|r| r["algorithm"] == "AUTOMATIC"));
    assert_eq!(summary["manufacturer"], "autocontour");
    assert_eq!(summary["charset"], "ISO_IR 192");

    // plastimatch rasterises it back on the CT grid.
    let pm = tmp.path().join("pm");
    run(Command::new("plastimatch")
        .arg("convert")
        .arg("--input")
        .arg(&out)
        .arg("--referenced-ct")
        .arg(common::require("rider/ct"))
        .arg("--output-prefix")
        .arg(&pm));
    eprintln!("plastimatch done: {:.1} s", t0.elapsed().as_secs_f64());
    let our = read_rtstruct(&out).unwrap();
    for (label, spec) in specs() {
        let truth: Vec<u8> = labels
            .data()
            .iter()
            .map(|&v| u8::from(v == label))
            .collect();
        let roi = our.roi(&spec.name).unwrap();
        let back = rasterise_roi(roi, &g, &RasterOptions::default()).unwrap();
        assert_eq!(
            back.data(),
            &truth[..],
            "our reader does not give back {}",
            spec.name
        );
        let mha = pm.join(format!("{}.mha", spec.name));
        if label == 4 && !mha.exists() {
            continue; // plastimatch writes no image for an ROI without contours
        }
        let (dims, offset, data) = common::read_mha(&mha);
        assert_eq!(dims, g.size.to_vec());
        for a in 0..3 {
            assert!(
                (offset[a] - g.origin[a]).abs() < 1e-3,
                "{offset:?} vs {:?}",
                g.origin
            );
        }
        let d = dice(&data, &truth);
        eprintln!("plastimatch {}: Dice {d:.5}", spec.name);
        if label == 4 {
            assert!(data.iter().all(|&v| v == 0));
        } else {
            assert!(d >= 0.99, "{}: Dice {d}", spec.name);
        }
    }
}

/// A RayStation-style structure set (tests/python/rt_raystation_fixture.py: Explicit VR, ISO_IR
/// 100 with "Lunge_Öst", ROI numbers 7/3/12/1/5/20 out of order, no Contour Image references,
/// GTV contours 0.3 slice gaps off their slice, a hole as a separate contour, two contours per
/// slice, a POINT ROI, an ROI without Contour Sequence and one without ROI Contour item) on the
/// RIDER grid: ROIs listed as in the file, the point reported, not rasterised; each area ROI
/// against the fixture's analytic masks (numpy) and against plastimatch: Dice ≥ 0.99.
#[test]
fn raystation_style_structure_set() {
    use autocontour::rtstruct::RoiKind;
    let ct = rider_ct();
    let g = *ct.volume.geometry();
    let n = g.voxel_count();
    let tmp = tempfile::tempdir().unwrap();
    let rs_path = tmp.path().join("rs_raystation.dcm");
    let ref_path = tmp.path().join("ref.raw");
    let info = run(Command::new(python())
        .arg(common::root().join("tests/python/rt_raystation_fixture.py"))
        .arg(common::require("rider/ct"))
        .arg(&rs_path)
        .arg(&ref_path));
    let info: serde_json::Value = serde_json::from_str(info.trim()).unwrap();
    let reference = std::fs::read(&ref_path).unwrap();
    assert_eq!(reference.len(), 3 * n);

    let rs = read_rtstruct(&rs_path).unwrap();
    assert_eq!(
        rs.frame_of_reference_uid.as_deref(),
        Some(ct.frame_of_reference_uid.as_str())
    );
    assert_eq!(
        rs.referenced_series_uid.as_deref(),
        Some(ct.series_uid.as_str())
    );
    let listed: Vec<(i64, &str, Option<&str>, RoiKind)> = rs
        .rois
        .iter()
        .map(|r| {
            (
                r.number,
                r.name.as_str(),
                r.interpreted_type.as_deref(),
                r.kind(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            (7, "External", Some("EXTERNAL"), RoiKind::Area),
            (3, "Lunge_Öst", Some("ORGAN"), RoiKind::Area),
            (12, "GTV", Some("GTV"), RoiKind::Area),
            (1, "Ref_Point", Some("MARKER"), RoiKind::Points),
            (5, "Empty_ROI", Some("ORGAN"), RoiKind::Empty),
            (20, "Not_Contoured", Some("AVOIDANCE"), RoiKind::Empty),
        ]
    );
    for (roi, want) in rs.rois.iter().zip(info["rois"].as_array().unwrap()) {
        assert_eq!(
            roi.contours.len() as u64,
            want["contours"].as_u64().unwrap()
        );
        assert!(
            roi.contours
                .iter()
                .all(|c| c.referenced_sop_instance_uid.is_none())
        );
    }
    assert_eq!(rs.roi("Lunge_Öst").unwrap().color, Some([0, 128, 255]));
    assert_eq!(rs.roi("Not_Contoured").unwrap().color, None);
    let point = rs.roi("Ref_Point").unwrap().points();
    let want: Vec<f64> = serde_json::from_value(info["point"].clone()).unwrap();
    assert_eq!(point, [[want[0], want[1], want[2]]]);

    let opts = RasterOptions {
        slices: Some(&ct.slices),
    };
    for name in ["Ref_Point", "Empty_ROI", "Not_Contoured"] {
        let m = rasterise_roi(rs.roi(name).unwrap(), &g, &opts).unwrap();
        assert!(m.data().iter().all(|&v| v == 0), "{name} rasterised");
    }

    let pm = tmp.path().join("pm");
    run(Command::new("plastimatch")
        .arg("convert")
        .arg("--input")
        .arg(&rs_path)
        .arg("--referenced-ct")
        .arg(common::require("rider/ct"))
        .arg("--output-prefix")
        .arg(&pm)
        // plastimatch ORs overlapping contours unless told: a hole as a separate contour
        // needs XOR (our reader's even-odd rule).
        .arg("--xor-contours"));
    // plastimatch names its files by the raw (Latin-1) ROI name: find them by prefix.
    let pm_files: Vec<PathBuf> = std::fs::read_dir(&pm)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let plane = g.size[0] * g.size[1];
    for (a, name) in ["External", "Lunge_Öst", "GTV"].iter().enumerate() {
        let mask = rasterise_roi(rs.roi(name).unwrap(), &g, &opts).unwrap();
        let truth = &reference[a * n..(a + 1) * n];
        let d = dice(mask.data(), truth);
        // Exactly the slices the fixture drew on (the GTV's are 0.3 gaps off).
        let range = &info["slices"][*name];
        let (k0, k1) = (
            range[0].as_u64().unwrap() as usize,
            range[1].as_u64().unwrap() as usize,
        );
        for k in 0..g.size[2] {
            let any = mask.data()[k * plane..(k + 1) * plane].contains(&1);
            assert_eq!(any, (k0..=k1).contains(&k), "{name} slice {k}");
        }
        let prefix = name.split('_').next().unwrap();
        let mha = pm_files
            .iter()
            .find(|p| {
                let f = p.file_name().unwrap().to_string_lossy();
                f.starts_with(prefix) && f.ends_with(".mha")
            })
            .unwrap_or_else(|| panic!("no plastimatch image for {name} in {pm_files:?}"));
        let (dims, _, pm_data) = common::read_mha(mha);
        assert_eq!(dims, g.size.to_vec());
        let d_pm = dice(mask.data(), &pm_data);
        let d_pm_ref = dice(&pm_data, truth);
        eprintln!(
            "RayStation-style {name}: Dice vs analytic {d:.5}, vs plastimatch {d_pm:.5} \
             (plastimatch vs analytic {d_pm_ref:.5})"
        );
        assert!(d >= 0.99, "{name}: Dice vs analytic {d}");
        assert!(d_pm >= 0.99, "{name}: Dice vs plastimatch {d_pm}");
    }
    // Dice ≥ 0.99 on the ring also shows the hole was subtracted (it is 16 % of the disc).

    // The CLI lists every ROI with its kind and the point, and draws only the areas.
    let nii = tmp.path().join("labels.nii");
    run(Command::new(common::cli())
        .arg("rtstruct-to-mask")
        .arg(&rs_path)
        .arg("--ct")
        .arg(common::require("rider/ct"))
        .arg("--out")
        .arg(&nii));
    let side: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("labels.json")).unwrap())
            .unwrap();
    let kinds: Vec<(&str, &str, u64)> = side["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap(),
                l["kind"].as_str().unwrap(),
                l["voxels"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(kinds.len(), 6);
    assert_eq!(kinds[1].0, "Lunge_Öst");
    assert!(kinds[..3].iter().all(|k| k.1 == "area" && k.2 > 1000));
    assert_eq!(
        &kinds[3..],
        [
            ("Ref_Point", "points", 0),
            ("Empty_ROI", "empty", 0),
            ("Not_Contoured", "empty", 0)
        ]
    );
    assert_eq!(side["labels"][3]["points"][0][2].as_f64(), Some(want[2]));
}
