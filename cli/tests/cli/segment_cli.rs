//! `autocontour segment` end to end on the real RIDER CT: outputs exist, are readable by
//! independent tools, and the default model puts each lung on its own side of the patient.

use autocontour_test_support as common;

use std::path::Path;
use std::process::Command;

fn segment(model: &Path, out: &Path) -> serde_json::Value {
    let run = Command::new(common::cli())
        .arg("segment")
        .arg(common::require("rider/ct"))
        .arg("--model")
        .arg(model)
        .arg("--out")
        .arg(out)
        .args(["--threads", "2", "--ort-lib"])
        .arg(common::ort_lib())
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "segment failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    for f in ["rtstruct.dcm", "preview.png", "summary.json"] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let png = std::fs::read(out.join("preview.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn segments_rider_with_the_test_model_and_pydicom_reads_the_rtstruct() {
    let out = tempfile::tempdir().unwrap();
    let s = segment(&common::root().join("models/test/tiny-unet"), out.path());
    assert_eq!(s["model"]["name"], "tiny-unet");
    assert_eq!(s["execution"]["provider"], "CPU");
    assert_eq!(s["structures"].as_array().unwrap().len(), 2);
    let py = Command::new(common::python())
        .arg("-c")
        .arg(
            "import sys, pydicom\n\
             ds = pydicom.dcmread(sys.argv[1])\n\
             assert ds.Modality == 'RTSTRUCT'\n\
             assert ds.file_meta.TransferSyntaxUID == '1.2.840.10008.1.2'\n\
             names = [r.ROIName for r in ds.StructureSetROISequence]\n\
             assert names == ['Alpha', 'Beta'], names\n\
             refs = ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0]\n\
             imgs = refs.RTReferencedSeriesSequence[0].ContourImageSequence\n\
             assert len(imgs) == 236, len(imgs)\n\
             print('ok', len(ds.ROIContourSequence))",
        )
        .arg(out.path().join("rtstruct.dcm"))
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "pydicom check failed: {}{}",
        String::from_utf8_lossy(&py.stdout),
        String::from_utf8_lossy(&py.stderr)
    );
}

#[test]
fn default_model_puts_each_lung_on_its_side() {
    let model = common::root().join("models/thorax-basic");
    if !model.join("model.json").exists() {
        panic!("models/thorax-basic is missing");
    }
    let out = tempfile::tempdir().unwrap();
    segment(&model, out.path());
    // Read the RTSTRUCT back with the project's reader and compare lung centroids in patient x
    // (LPS: +x is the patient's left). The RIDER scan is feet-first with an identity
    // orientation: a loader that trusted Patient Position would swap them.
    let rs = autocontour::rtstruct::read_rtstruct(&out.path().join("rtstruct.dcm")).unwrap();
    let centroid_x = |name: &str| -> f64 {
        let roi = rs.roi(name).unwrap_or_else(|| panic!("{name} missing"));
        let (mut sum, mut n) = (0.0, 0usize);
        for c in &roi.contours {
            for p in &c.points {
                sum += p[0];
                n += 1;
            }
        }
        assert!(n > 0, "{name} has no contour points");
        sum / n as f64
    };
    let (left, right) = (centroid_x("Lung_L"), centroid_x("Lung_R"));
    assert!(
        left > right + 50.0,
        "Lung_L x {left:.1} should be left (+x) of Lung_R x {right:.1}"
    );
}

#[test]
fn batch_continues_past_a_failed_case() {
    let out = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let list = out.path().join("cases.txt");
    std::fs::write(
        &list,
        format!("# one bad case, one good\n{}\n", empty.path().display()),
    )
    .unwrap();
    let run = Command::new(common::cli())
        .arg("segment")
        .arg(common::require("rider/ct"))
        .arg("--list")
        .arg(&list)
        .arg("--model")
        .arg(common::root().join("models/test/tiny-unet"))
        .arg("--out")
        .arg(out.path())
        .args(["--no-preview", "--ort-lib"])
        .arg(common::ort_lib())
        .output()
        .unwrap();
    assert_eq!(
        run.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let csv = std::fs::read_to_string(out.path().join("summary.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(
        rows[0].starts_with("case,input,status,error,seconds,Alpha_ml,Beta_ml"),
        "{csv}"
    );
    assert!(
        rows.iter()
            .any(|r| r.starts_with("ct,") && r.contains(",ok,")),
        "{csv}"
    );
    assert!(
        rows.iter()
            .any(|r| r.contains(",failed,") && r.contains("no usable CT series")),
        "{csv}"
    );
    assert!(out.path().join("ct/rtstruct.dcm").exists());
}

/// Writes a synthetic CT phantom of `size` (columns,rows,slices) into `dir` with the CLI.
fn phantom(dir: &Path, size: &str) {
    let made = Command::new(common::cli())
        .args(["phantom", "--size", size])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
}

/// `segment <ct> --out <out>` with the tiny test model on 2 threads.
fn tiny_segment(ct: &Path, out: &Path) -> Command {
    let mut c = Command::new(common::cli());
    c.arg("segment")
        .arg(ct)
        .arg("--model")
        .arg(common::root().join("models/test/tiny-unet"))
        .arg("--out")
        .arg(out)
        .args(["--threads", "2", "--ort-lib"])
        .arg(common::ort_lib());
    c
}

/// The outputs of `segment` replace the previous ones together: a later output that cannot be
/// written (here `seg.dcm`, where a folder stands) leaves the previous rtstruct.dcm and
/// summary.json untouched and no temporary file; temporary files orphaned by a killed run are
/// removed by the next run into that folder.
#[test]
fn outputs_are_replaced_together_or_not_at_all() {
    let tmp = tempfile::tempdir().unwrap();
    let ph = tmp.path().join("ph");
    let out = tmp.path().join("out");
    let run = |extra: &[&str]| {
        tiny_segment(&ph.join("ct"), &out)
            .arg("--no-preview")
            .args(extra)
            .output()
            .unwrap()
    };
    phantom(&ph, "32,32,12");
    let first = run(&[]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    // Mark the previous outputs (a rerun may write identical bytes: UIDs are derived).
    for f in ["rtstruct.dcm", "summary.json"] {
        let mut b = std::fs::read(out.join(f)).unwrap();
        b.extend_from_slice(b"previous");
        std::fs::write(out.join(f), b).unwrap();
    }
    let before: Vec<Vec<u8>> = ["rtstruct.dcm", "summary.json"]
        .iter()
        .map(|f| std::fs::read(out.join(f)).unwrap())
        .collect();
    std::fs::create_dir_all(out.join("seg.dcm/in-the-way")).unwrap();
    let failed = run(&["--seg"]);
    assert_eq!(failed.status.code(), Some(1));
    let after: Vec<Vec<u8>> = ["rtstruct.dcm", "summary.json"]
        .iter()
        .map(|f| std::fs::read(out.join(f)).unwrap())
        .collect();
    assert!(before == after, "a previous output was replaced");
    let names = || -> Vec<String> {
        std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert!(
        !names().iter().any(|n| n.starts_with(".ac-tmp.")),
        "{:?}",
        names()
    );
    // A run killed mid-write left a temporary file (its process is gone): the next run removes
    // it, and with the obstacle gone replaces every output.
    let orphan = out.join(".ac-tmp.4294967294.1.0.rtstruct.dcm");
    std::fs::write(&orphan, b"partial").unwrap();
    std::fs::remove_dir_all(out.join("seg.dcm")).unwrap();
    let ok = run(&["--seg"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(!orphan.exists());
    assert!(out.join("seg.dcm").is_file());
    assert!(std::fs::read(out.join("summary.json")).unwrap() != before[1]);
    assert!(std::fs::read(out.join("rtstruct.dcm")).unwrap() != before[0]);
}

/// `segment` killed with SIGKILL at points spread over its run (loading, inference, writing,
/// the renames) and beyond its end: every output is afterwards either the previous file, byte for byte, or a
/// complete new one (a DICOM file that parses, JSON that parses) or none, never a partial one; a new
/// summary.json (renamed last) means every other output is new too; and the next run removes
/// the temporary files the killed one left.
#[test]
fn kill_9_leaves_previous_or_complete_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let ph = tmp.path().join("ph");
    let out = tmp.path().join("out");
    phantom(&ph, "64,64,40");
    let command = || {
        let mut c = tiny_segment(&ph.join("ct"), &out);
        c.arg("--seg")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        c
    };
    let outputs = ["rtstruct.dcm", "seg.dcm", "preview.png", "summary.json"];
    let t = std::time::Instant::now();
    assert!(command().status().unwrap().success());
    let full = t.elapsed();
    // Kills spread over 1.5 times an undisturbed run, so the last runs end by themselves. On a
    // machine busier than during that first run (other tests run beside this one) the steps go
    // on, up to 3 times the run, until one run has ended by itself.
    const STEPS: u32 = 24;
    let (mut kills, mut completed) = (0, 0);
    for i in 1..=2 * STEPS {
        if i > STEPS && completed > 0 {
            break;
        }
        // Mark the previous outputs (a rerun writes identical bytes: UIDs are derived).
        let before: Vec<Vec<u8>> = outputs
            .iter()
            .map(|f| {
                let mut b = std::fs::read(out.join(f)).unwrap();
                b.extend_from_slice(format!("previous {i}").as_bytes());
                std::fs::write(out.join(f), &b).unwrap();
                b
            })
            .collect();
        let mut child = command().spawn().unwrap();
        std::thread::sleep(full.mul_f64(1.5 * f64::from(i) / f64::from(STEPS)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
        let mut new = Vec::new();
        for (f, old) in outputs.iter().zip(&before) {
            // none is allowed: a kill between moving the previous file aside and renaming the
            // new one into place
            let Ok(now) = std::fs::read(out.join(f)) else {
                new.push(false);
                continue;
            };
            if &now == old {
                new.push(false);
                continue;
            }
            new.push(true);
            match *f {
                "summary.json" => {
                    serde_json::from_slice::<serde_json::Value>(&now)
                        .unwrap_or_else(|e| panic!("kill {i}: {f} is partial: {e}"));
                }
                "preview.png" => {
                    assert_eq!(&now[..8], b"\x89PNG\r\n\x1a\n", "kill {i}: {f}");
                    assert_eq!(
                        &now[now.len() - 8..][4..],
                        b"\xaeB`\x82",
                        "kill {i}: {f} is cut"
                    );
                }
                _ => {
                    dicom_object::open_file(out.join(f))
                        .unwrap_or_else(|e| panic!("kill {i}: {f} is partial: {e}"));
                }
            }
        }
        if new[3] {
            assert!(
                new.iter().all(|&n| n),
                "kill {i}: a new summary.json but {new:?}"
            );
        }
        if new.iter().all(|&n| n) {
            completed += 1;
        }
        println!("kill at {i}/{STEPS} of 1.5 × {full:?}: new outputs {new:?}");
    }
    assert!(
        kills > 0 && completed > 0,
        "the kills did not span the run: {kills} killed, {completed} ended with new outputs"
    );
    // The next run removes what the killed runs left and replaces every output.
    assert!(command().status().unwrap().success());
    let left: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".ac-tmp."))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
