//! Site profiles and the audit log on RIDER with the default model: the RT Structure Set has
//! exactly the profile's names, colours and types, passes dciodvfy, and plastimatch reads the
//! same masks as without the profile; bad profiles are named errors before any inference; the
//! CLI appends one audit line per case, failed cases included.

use autocontour_test_support as common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use autocontour::dicom::{CtSeries, LoadOptions, load_series};
use autocontour::infer::InferOptions;
use autocontour::model::Model;
use autocontour::pipeline::{Segmentation, segment};
use autocontour::profile::SiteProfile;
use autocontour::rtstruct::read_rtstruct;

fn model() -> &'static Model {
    static M: OnceLock<Model> = OnceLock::new();
    M.get_or_init(|| {
        Model::open(
            &common::root().join("models/thorax-basic"),
            &common::model_options(),
        )
        .unwrap()
    })
}

fn rider() -> &'static (CtSeries, Segmentation) {
    static R: OnceLock<(CtSeries, Segmentation)> = OnceLock::new();
    R.get_or_init(|| {
        let ct = load_series(&common::require("rider/ct"), None, &LoadOptions::default()).unwrap();
        let seg = segment(model(), &ct, &InferOptions::default()).unwrap();
        (ct, seg)
    })
}

fn example() -> PathBuf {
    common::root().join("profiles/example-tg263.toml")
}

/// plastimatch's masks of an RT Structure Set, by ROI name (voxel values 0/1).
fn plastimatch_masks(rs: &Path, dir: &Path) -> Vec<(String, Vec<u8>)> {
    let out = Command::new("plastimatch")
        .arg("convert")
        .arg("--input")
        .arg(rs)
        .arg("--referenced-ct")
        .arg(common::require("rider/ct"))
        .arg("--output-prefix")
        .arg(dir)
        .output()
        .expect("plastimatch (apt plastimatch)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "mha"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, common::read_mha(&p).2)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn tg263_profile_on_rider() {
    let (ct, seg) = rider();
    let profile = SiteProfile::load(&example())
        .unwrap()
        .resolve(&model().manifest)
        .unwrap();
    let mut profiled = seg.clone();
    profiled.apply_profile(profile);
    let t = tempfile::tempdir().unwrap();
    let plain_rs = t.path().join("plain.dcm");
    let prof_rs = t.path().join("profiled.dcm");
    seg.write_rtstruct(model(), ct, &plain_rs, &Default::default())
        .unwrap();
    profiled
        .write_rtstruct(model(), ct, &prof_rs, &Default::default())
        .unwrap();

    // exactly the profile's names, colours and types
    let rs = read_rtstruct(&prof_rs).unwrap();
    let got: Vec<(String, Option<[u8; 3]>, String)> = rs
        .rois
        .iter()
        .map(|r| {
            (
                r.name.clone(),
                r.color,
                r.interpreted_type.clone().unwrap_or_default(),
            )
        })
        .collect();
    let want = vec![
        (
            "External_AI".to_string(),
            Some([0, 255, 0]),
            "EXTERNAL".to_string(),
        ),
        (
            "Lung_L_AI".to_string(),
            Some([255, 255, 0]),
            "ORGAN".to_string(),
        ),
        (
            "Lung_R_AI".to_string(),
            Some([0, 255, 255]),
            "ORGAN".to_string(),
        ),
    ];
    assert_eq!(got, want);
    let report = common::dciodvfy(&prof_rs);
    assert!(!report.contains("Error"), "dciodvfy:\n{report}");
    let obj = dicom_object::open_file(&prof_rs).unwrap();
    let text = |tag| {
        obj.element(tag)
            .unwrap()
            .to_str()
            .unwrap()
            .trim()
            .to_string()
    };
    use dicom_dictionary_std::tags;
    assert_eq!(text(tags::STRUCTURE_SET_LABEL), "AI_THORAX");
    assert_eq!(text(tags::STRUCTURE_SET_NAME), "Auto contours thorax");
    assert_eq!(
        text(tags::SERIES_DESCRIPTION),
        "autocontour thorax-basic (unapproved)"
    );
    assert_eq!(text(tags::APPROVAL_STATUS), "UNAPPROVED");

    // plastimatch reads the same masks (Dice 1.0: identical voxels)
    let a = plastimatch_masks(&plain_rs, &t.path().join("pm_plain"));
    let b = plastimatch_masks(&prof_rs, &t.path().join("pm_profiled"));
    assert_eq!(a.len(), 3);
    assert_eq!(b.len(), 3);
    for ((na, ma), (nb, mb)) in a.iter().zip(&b) {
        assert_eq!(format!("{na}_AI"), *nb);
        let differ = ma.iter().zip(mb).filter(|(x, y)| x != y).count();
        assert_eq!(differ, 0, "{na}: {differ} voxels differ");
    }
}

#[test]
fn a_subset_leaves_structures_out_but_keeps_the_external_whole() {
    let (ct, seg) = rider();
    let t = tempfile::tempdir().unwrap();
    let path = t.path().join("p.toml");
    std::fs::write(
        &path,
        "name = \"lungs only\"\n[[model]]\nname = \"thorax-basic\"\ninclude = [\"External\", \"Lung_L\"]\n",
    )
    .unwrap();
    let p = SiteProfile::load(&path)
        .unwrap()
        .resolve(&model().manifest)
        .unwrap();
    let mut s = seg.clone();
    s.apply_profile(p);
    let rs_path = t.path().join("rs.dcm");
    s.write_rtstruct(model(), ct, &rs_path, &Default::default())
        .unwrap();
    let rs = read_rtstruct(&rs_path).unwrap();
    let names: Vec<&str> = rs.rois.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["External", "Lung_L"]);
    // the External's contours are the same as without the profile
    let plain = t.path().join("plain.dcm");
    seg.write_rtstruct(model(), ct, &plain, &Default::default())
        .unwrap();
    let ext = |p: &Path| {
        read_rtstruct(p)
            .unwrap()
            .roi("External")
            .unwrap()
            .contours
            .clone()
    };
    assert_eq!(ext(&rs_path), ext(&plain));
}

#[test]
fn inconsistent_profiles_are_named_errors_listing_every_problem() {
    let t = tempfile::tempdir().unwrap();
    let path = t.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"name = "bad"
[[model]]
name = "thorax-basic"
include = ["External", "Lung_L", "Lung_R", "Heart"]
approval_status = "MAYBE"
[model.structures.Lung_L]
name = "Lung"
[model.structures.Lung_R]
name = "Lung"
[model.structures.External]
name = "Patient outline body"
type = "SKIN"
[model.structures.Liver]
name = "Liver"
"#,
    )
    .unwrap();
    let e = SiteProfile::load(&path)
        .unwrap()
        .resolve(&model().manifest)
        .unwrap_err();
    let autocontour::Error::InvalidProfile { problems, .. } = &e else {
        panic!("{e}");
    };
    let all = problems.join("\n");
    for needle in [
        "include \"Heart\"",
        "structures \"Liver\"",
        "both be written as \"Lung\"",
        "20 characters",
        "does not allow: \"  \"",
        "\"SKIN\"",
        "approval_status \"MAYBE\"",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
    // no entry for this model / version
    std::fs::write(
        &path,
        "name = \"x\"\n[[model]]\nname = \"thorax-basic\"\nversions = \">=5\"\n",
    )
    .unwrap();
    let e = SiteProfile::load(&path)
        .unwrap()
        .resolve(&model().manifest)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("no [[model]] entry for thorax-basic"),
        "{e}"
    );
    // a file that does not parse
    std::fs::write(&path, "name = \n").unwrap();
    assert!(matches!(
        SiteProfile::load(&path),
        Err(autocontour::Error::InvalidProfile { .. })
    ));
}

fn cli() -> Command {
    let mut c = Command::new(common::cli());
    c.arg("--ort-lib").arg(common::ort_lib());
    c
}

#[test]
fn cli_profile_and_audit_log() {
    let t = tempfile::tempdir().unwrap();
    // a bad profile: refused before any case, nothing written
    let bad = t.path().join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"b\"\n[[model]]\nname = \"thorax-basic\"\ninclude = [\"Heart\"]\n",
    )
    .unwrap();
    let out1 = t.path().join("out1");
    let o = cli()
        .arg("segment")
        .arg(common::require("rider/ct"))
        .arg("--profile")
        .arg(&bad)
        .arg("--out")
        .arg(&out1)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("invalid site profile"));
    assert!(!out1.exists());

    // RIDER and an empty folder in one batch: two audit lines, one ok, one failed
    let empty = t.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let log = t.path().join("audit.jsonl");
    let out2 = t.path().join("out2");
    let o = cli()
        .arg("segment")
        .arg(common::require("rider/ct"))
        .arg(&empty)
        .arg("--profile")
        .arg(example())
        .arg("--audit-log")
        .arg(&log)
        .args(["--no-preview", "--threads", "2", "--out"])
        .arg(&out2)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    let ok = lines.iter().find(|l| l["status"] == "ok").unwrap();
    let failed = lines.iter().find(|l| l["status"] == "failed").unwrap();
    assert_eq!(ok["model"]["name"], "thorax-basic");
    assert_eq!(ok["model"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(ok["profile"]["name"], "Example clinic, thorax, TG-263");
    assert_eq!(ok["profile"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(ok["execution_provider"], "CPU");
    let rs = ok["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "rtstruct")
        .unwrap();
    let file = read_rtstruct(Path::new(rs["path"].as_str().unwrap())).unwrap();
    assert_eq!(
        file.sop_instance_uid.as_deref(),
        rs["sop_instance_uid"].as_str()
    );
    assert!(ok["series_uid"].as_str().unwrap().starts_with("1."));
    assert!(ok["duration_s"].as_f64().unwrap() > 0.0);
    assert!(
        failed["error_code"].as_str().is_some_and(|c| !c.is_empty()),
        "{failed}"
    );
    assert_eq!(failed["profile"]["name"], "Example clinic, thorax, TG-263");
}

#[test]
fn audit_lines_from_many_threads_stay_whole() {
    use autocontour::audit::AuditRecord;
    let t = tempfile::tempdir().unwrap();
    let log = t.path().join("a.jsonl");
    let e = autocontour::Error::Cancelled;
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..25 {
                    AuditRecord::failure(model(), &e, Some("1.2.3"), 0.5)
                        .append_to(&log)
                        .unwrap();
                }
            });
        }
    });
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().count(), 200);
    for l in text.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["error_code"], "Cancelled");
    }
}

/// kill -9 while a process appends audit lines: after the next append, every line in the file
/// is whole JSON (a cut line left by a kill is removed by that append). The writer is this test
/// binary re-executed (`AC_AUDIT_WRITER=<file>`), appending as fast as it can until killed.
#[test]
fn audit_log_survives_kill_9() {
    use autocontour::audit::AuditRecord;
    if let Some(path) = std::env::var_os("AC_AUDIT_WRITER") {
        let e = autocontour::Error::InvalidArgument("x".repeat(2000));
        let r = AuditRecord::failure(model(), &e, Some("1.2.3"), 0.1);
        loop {
            r.append_to(Path::new(&path)).unwrap();
        }
    }
    let t = tempfile::tempdir().unwrap();
    let log = t.path().join("audit.jsonl");
    let exe = std::env::current_exe().unwrap();
    for round in 0..5 {
        let mut child = Command::new(&exe)
            .args(["audit_log_survives_kill_9", "--exact", "--nocapture"])
            .env("AC_AUDIT_WRITER", &log)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300 + 150 * round));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    // The last kill may have cut a line; the next append removes it before writing.
    let e = autocontour::Error::InvalidArgument("after the kills".into());
    AuditRecord::failure(model(), &e, Some("1.2.3"), 0.1)
        .append_to(&log)
        .unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.ends_with('\n'), "the file ends inside a line");
    let n = text.lines().count();
    assert!(n > 0);
    for (i, l) in text.lines().enumerate() {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("line {i} of {n} is cut: {e}"));
        assert_eq!(v["status"], "failed");
    }
}
