//! `autocontour anonymise` end to end, checked by independent tools: on a RIDER subset and on
//! the whole pydicom test corpus, no original value of an identifying attribute (names, IDs,
//! dates, UIDs, free text, private and sequence values; collected with pydicom) appears in
//! `dcmdump +L` of any output or in its path; `dciodvfy` finds no error in the RIDER outputs
//! that it did not find in the inputs; the pseudonymised CT loads to the same volume; and the
//! attribute actions agree with pydicom `deid` apart from the documented differences
//! (tests/python/deid_compare.py, docs/deidentification.md).

use autocontour_test_support as common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use autocontour::deid::{Action, rule_for};
use dicom_core::Tag;

/// A fixed test key (32 bytes, not all equal).
fn write_key(dir: &Path, seed: u8) -> PathBuf {
    let p = dir.join(format!("site{seed}.key"));
    let bytes: Vec<u8> = (0..32u8)
        .map(|i| i.wrapping_mul(73).wrapping_add(seed))
        .collect();
    std::fs::write(&p, bytes).unwrap();
    p
}

fn anonymise(input: &Path, output: &Path, key: &Path) -> (Output, serde_json::Value) {
    let run = Command::new(common::cli())
        .arg("anonymise")
        .arg(input)
        .arg(output)
        .arg("--key-file")
        .arg(key)
        .arg("--json")
        .env_remove("AUTOCONTOUR_DEID_KEY_FILE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let json = serde_json::from_slice(&run.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON summary ({e}): {}{stderr}",
            String::from_utf8_lossy(&run.stdout)
        )
    });
    (run, json)
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_symlink() {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                v.push(p);
            }
        }
    }
    v.sort();
    v
}

/// Attributes that identify and must never be on the allow-list as kept.
const MUST_NOT_KEEP: &[(u16, u16)] = &[
    (0x0008, 0x0018), // SOP Instance UID
    (0x0008, 0x0020), // Study Date
    (0x0008, 0x0050), // Accession Number
    (0x0008, 0x0080), // Institution Name
    (0x0008, 0x0090), // Referring Physician's Name
    (0x0008, 0x1030), // Study Description
    (0x0008, 0x103E), // Series Description
    (0x0008, 0x1155), // Referenced SOP Instance UID
    (0x0010, 0x0010), // Patient's Name
    (0x0010, 0x0020), // Patient ID
    (0x0010, 0x0030), // Patient's Birth Date
    (0x0010, 0x1000), // Other Patient IDs
    (0x0010, 0x4000), // Patient Comments
    (0x0020, 0x000D), // Study Instance UID
    (0x0020, 0x000E), // Series Instance UID
    (0x0020, 0x0010), // Study ID
    (0x0020, 0x0052), // Frame of Reference UID
    (0x0020, 0x4000), // Image Comments
];

/// The identifying values of each input file, read with pydicom: values (≥ 4 characters) of
/// every element with a text VR or of any private element, at any depth, except registered
/// UIDs, times of day (kept by design), values of attributes the allow-list keeps as they are,
/// and values contained in one of those in the same file (a private `TOSHIBA` cannot be told
/// apart from the kept Manufacturer `TOSHIBA_MEC`). PN values are also split into their
/// components.
fn identifying_values(files: &[PathBuf]) -> BTreeMap<PathBuf, BTreeSet<String>> {
    for &(g, e) in MUST_NOT_KEEP {
        let kept = rule_for(Tag(g, e)).is_some_and(|r| r.action == Action::Keep);
        assert!(!kept, "({g:04X},{e:04X}) must not be kept");
    }
    let mut out = BTreeMap::new();
    for chunk in files.chunks(200) {
        let py = Command::new(common::python())
            .arg(common::root().join("tests/python/deid_originals.py"))
            .args(chunk)
            .output()
            .unwrap();
        assert!(
            py.status.success(),
            "{}",
            String::from_utf8_lossy(&py.stderr)
        );
        let v: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&py.stdout).unwrap();
        for (path, rows) in v {
            let Some(rows) = rows.as_array() else {
                continue;
            };
            let mut kept = BTreeSet::new();
            let mut candidates = BTreeSet::new();
            for row in rows {
                let tag = row[0].as_str().unwrap();
                let vr = row[1].as_str().unwrap();
                let private = row[2].as_bool().unwrap();
                let value = row[3].as_str().unwrap().to_string();
                let t = Tag(
                    u16::from_str_radix(&tag[..4], 16).unwrap(),
                    u16::from_str_radix(&tag[4..], 16).unwrap(),
                );
                let keep = !private
                    && t.group() != 0x0002
                    && rule_for(t).is_some_and(|r| r.action == Action::Keep);
                if keep {
                    kept.insert(value);
                    continue;
                }
                let identifying = private
                    || matches!(
                        vr,
                        "AE" | "AS"
                            | "DA"
                            | "DT"
                            | "LO"
                            | "LT"
                            | "PN"
                            | "SH"
                            | "ST"
                            | "UC"
                            | "UI"
                            | "UR"
                            | "UT"
                    );
                if !identifying || value.starts_with("1.2.840.10008.") {
                    continue;
                }
                if vr == "PN" {
                    for part in value.split(['^', '=']) {
                        candidates.insert(part.trim().to_string());
                    }
                }
                candidates.insert(value);
            }
            let searched: BTreeSet<String> = candidates
                .into_iter()
                .filter(|c| c.chars().count() >= 4 && !kept.iter().any(|k| k.contains(c.as_str())))
                .collect();
            out.insert(PathBuf::from(path), searched);
        }
    }
    out
}

/// `dcmdump +L` of a file without its pixel data line, and each line without the tag and VR in
/// front and the comment (keyword, length) after, so only values are searched.
fn dump_values(file: &Path) -> String {
    dump(file)
        .lines()
        .filter(|l| !l.trim_start().starts_with("(7fe0,0010)") && !l.starts_with('#'))
        .map(|l| {
            let l = match l.rfind(" #") {
                Some(at) => &l[..at],
                None => l,
            };
            // "(gggg,eeee) VR value": drop the tag and the VR.
            let l = l.trim_start();
            if l.starts_with('(') && l.get(11..12) == Some(" ") {
                l.get(15..).unwrap_or("")
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `dcmdump +L` of a file, as dcmtk prints it.
fn dump(file: &Path) -> String {
    let d = Command::new("dcmdump")
        .arg("+L")
        .arg(file)
        .output()
        .expect("dcmdump (apt dcmtk)");
    assert!(
        d.status.success(),
        "dcmdump {}: {}",
        file.display(),
        String::from_utf8_lossy(&d.stderr)
    );
    String::from_utf8_lossy(&d.stdout).into_owned()
}

/// Whether `value` is in a dump: as text, or as the bytes dcmdump prints for a value it cannot
/// show as text (UN, OB: `39\32\30…`).
fn found(dump: &str, value: &str) -> bool {
    let hex: Vec<String> = value.bytes().map(|b| format!("{b:02x}")).collect();
    dump.contains(value) || dump.contains(&hex.join("\\"))
}

/// Searches every output's values and path for its input's identifying values; returns the
/// number of values searched.
fn assert_no_leak(written: &[(PathBuf, PathBuf)], out_root: &Path) -> usize {
    let inputs: Vec<PathBuf> = written.iter().map(|(i, _)| i.clone()).collect();
    let originals = identifying_values(&inputs);
    let mut searched = 0;
    for (input, output) in written {
        let Some(values) = originals.get(input) else {
            continue;
        };
        let text = dump_values(output);
        let rel = output.strip_prefix(out_root).unwrap().display().to_string();
        for v in values {
            searched += 1;
            assert!(
                !found(&text, v),
                "{} → {}: original value {v:?} is still in the output:\n{}",
                input.display(),
                output.display(),
                text.lines()
                    .filter(|l| l.contains(v.as_str()))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            assert!(!rel.contains(v.as_str()), "{v:?} in the output path {rel}");
        }
    }
    searched
}

fn written_pairs(json: &serde_json::Value) -> Vec<(PathBuf, PathBuf)> {
    json["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                PathBuf::from(f["input"].as_str().unwrap()),
                PathBuf::from(f["output"].as_str().unwrap()),
            )
        })
        .collect()
}

/// `dciodvfy`'s error lines, with the values it quotes removed (they change by design).
fn dciodvfy_errors(file: &Path) -> BTreeSet<String> {
    common::dciodvfy(file)
        .lines()
        .filter(|l| l.starts_with("Error"))
        .map(|l| match l.find(" value=") {
            Some(at) => l[..at].to_string(),
            None => l.to_string(),
        })
        .collect()
}

#[test]
fn anonymises_a_rider_subset_without_leaks_and_dciodvfy_clean() {
    let rider = common::require("rider/ct");
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    let sub = input.join("series");
    std::fs::create_dir_all(&sub).unwrap();
    let mut slices: Vec<PathBuf> = std::fs::read_dir(&rider)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "dcm"))
        .collect();
    slices.sort();
    let chosen: Vec<PathBuf> = slices.iter().take(12).cloned().collect();
    for s in &chosen {
        std::fs::copy(s, sub.join(s.file_name().unwrap())).unwrap();
    }
    // A symbolic link loop, a non-DICOM file naming the patient, a hidden temporary file.
    std::os::unix::fs::symlink(&input, sub.join("loop")).unwrap();
    std::fs::write(input.join("notes.txt"), "RIDER-1129164940 296698\n").unwrap();
    std::fs::write(input.join(".partial.dcm"), b"x").unwrap();
    let key = write_key(tmp.path(), 1);
    let out = tmp.path().join("out");
    let (run, json) = anonymise(&input, &out, &key);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(json["written"], 12, "{json}");
    assert_eq!(json["series"], 1);
    assert_eq!(json["skipped"].as_array().unwrap().len(), 2, "{json}");
    assert!(json["failed"].as_array().unwrap().is_empty());
    let written = written_pairs(&json);
    let outputs = files_under(&out);
    assert_eq!(
        outputs.len(),
        12,
        "only the pseudonymised files: {outputs:?}"
    );

    // 1. No original identifying value anywhere in the outputs. The search itself finds every
    // one of them in the input's own dump (so a miss is not a formatting difference).
    let (first_in, _) = &written[0];
    let originals = identifying_values(std::slice::from_ref(first_in));
    let own = dump_values(first_in);
    let values = &originals[first_in];
    assert!(values.len() >= 10, "{values:?}");
    for v in values {
        assert!(found(&own, v), "{v:?} not found in the input's own dump");
    }
    let searched = assert_no_leak(&written, &out);
    assert!(searched >= 12 * 10, "{searched} values searched");

    // 2. dciodvfy: no error that the input did not already have.
    for (i, o) in &written {
        let before = dciodvfy_errors(i);
        let after = dciodvfy_errors(o);
        let new: Vec<_> = after.difference(&before).collect();
        assert!(
            new.is_empty(),
            "{}: new dciodvfy errors {new:?}",
            o.display()
        );
    }

    // 3. The de-identification attributes, read by dcmtk.
    let dump = dump(&written[0].1);
    for want in [
        "(0012,0062) CS [YES]",
        "(0028,0303) CS [MODIFIED]",
        "[113100]",
        "[113107]",
        "(0010,0010) PN [AC-",
    ] {
        assert!(dump.contains(want), "{want} missing:\n{dump}");
    }

    // 4. Same volume, geometry and slice order (the model sees the same CT).
    let opts = autocontour::dicom::LoadOptions::default();
    let a = autocontour::dicom::load_series(&sub, None, &opts).unwrap();
    let b = autocontour::dicom::load_series(&out, None, &opts).unwrap();
    assert_eq!(a.volume.geometry(), b.volume.geometry());
    assert!(a.volume == b.volume, "voxels differ");
    assert_ne!(a.series_uid, b.series_uid);

    // 5. Deterministic under one key; another key gives other names.
    let (_, again) = anonymise(&input, &tmp.path().join("out2"), &key);
    let names = |j: &serde_json::Value, root: &Path| -> BTreeSet<PathBuf> {
        written_pairs(j)
            .into_iter()
            .map(|(_, o)| o.strip_prefix(root).unwrap().to_path_buf())
            .collect()
    };
    assert_eq!(names(&json, &out), names(&again, &tmp.path().join("out2")));
    let (_, other) = anonymise(&input, &tmp.path().join("out3"), &write_key(tmp.path(), 2));
    assert!(names(&json, &out).is_disjoint(&names(&other, &tmp.path().join("out3"))));
}

#[test]
fn refuses_to_run_without_a_usable_key() {
    let tmp = tempfile::tempdir().unwrap();
    let run = Command::new(common::cli())
        .arg("anonymise")
        .arg(tmp.path())
        .arg(tmp.path().join("out"))
        .env_remove("AUTOCONTOUR_DEID_KEY_FILE")
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("no site key"), "{err}");
    let short = tmp.path().join("short.key");
    std::fs::write(&short, b"0123456789").unwrap();
    let run = Command::new(common::cli())
        .arg("anonymise")
        .arg(tmp.path())
        .arg(tmp.path().join("out"))
        .env("AUTOCONTOUR_DEID_KEY_FILE", &short)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("invalid site key") && err.contains("10 bytes"),
        "{err}"
    );
    assert!(!tmp.path().join("out").exists());
}

/// Files of the pydicom corpus that are not anonymised, and why (the reason's start): not DICOM,
/// DICOMDIRs, files the SDK's reader refuses (truncated, corrupt lengths, unsupported encodings
/// without file meta), and data sets with no SOP Instance UID anywhere.
const PYDICOM_NOT_WRITTEN: &[(&str, &str)] = &[
    (".complete", "hidden or temporary file"),
    ("ExplVR_BigEndNoMeta.dcm", "not DICOM"),
    (
        "ExplVR_LitEndNoMeta.dcm",
        "unreadable DICOM: element (0008,0005)",
    ),
    ("MR_truncated.dcm", "unreadable DICOM: element (7FE0,0010)"),
    ("README.txt", "not DICOM"),
    ("SC_rgb_jpeg.dcm", "unreadable DICOM: element (0008,0008)"),
    ("UN_sequence.dcm", "unreadable DICOM: element (0008,1115)"),
    ("crayons.icc", "not DICOM"),
    ("dicomdirtests/DICOMDIR", "a DICOMDIR"),
    ("dicomdirtests/DICOMDIR-bigEnd", "a DICOMDIR"),
    ("dicomdirtests/DICOMDIR-empty.dcm", "a DICOMDIR"),
    ("dicomdirtests/DICOMDIR-implicit", "a DICOMDIR"),
    (
        "dicomdirtests/DICOMDIR-nooffset",
        "unreadable DICOM: item (FFFE,E000)",
    ),
    ("dicomdirtests/DICOMDIR-nopatient", "a DICOMDIR"),
    ("dicomdirtests/DICOMDIR-reordered", "a DICOMDIR"),
    ("dicomdirtests/README.txt", "not DICOM"),
    ("dicomdirtests/TINY_ALPHA/DICOMDIR", "a DICOMDIR"),
    ("dicomdirtests/TINY_ALPHA/README", "not DICOM"),
    (
        "empty_charset_LEI.dcm",
        "cannot pseudonymise: no SOP Instance UID",
    ),
    (
        "meta_missing_tsyntax.dcm",
        "unreadable DICOM: Could not parse meta group",
    ),
    (
        "nested_priv_SQ.dcm",
        "cannot pseudonymise: no SOP Instance UID",
    ),
    ("no_meta.dcm", "not DICOM"),
    (
        "no_meta_group_length.dcm",
        "unreadable DICOM: Could not parse meta group",
    ),
    ("rtplan.dump", "not DICOM"),
    (
        "rtplan_truncated.dcm",
        "unreadable DICOM: sequence (300A,00B0)",
    ),
    ("rtstruct.dump", "not DICOM"),
    ("test1.json", "not DICOM"),
    ("test_PN.json", "not DICOM"),
    ("zipMR.gz", "not DICOM"),
];

#[test]
fn anonymises_the_pydicom_corpus_or_names_why_not() {
    let corpus = common::require("pydicom");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (run, json) = anonymise(&corpus, &out, &write_key(tmp.path(), 3));
    let inputs = files_under(&corpus);
    let written = written_pairs(&json);
    let skipped = json["skipped"].as_array().unwrap();
    let failed = json["failed"].as_array().unwrap();
    assert_eq!(
        written.len() + skipped.len() + failed.len(),
        inputs.len(),
        "every file accounted for: {json}"
    );
    for f in skipped.iter().chain(failed) {
        assert!(!f["reason"].as_str().unwrap().is_empty(), "{f}");
    }
    let mut not_written: Vec<(String, String)> = skipped
        .iter()
        .chain(failed)
        .map(|f| {
            let p = Path::new(f["path"].as_str().unwrap());
            (
                p.strip_prefix(&corpus).unwrap().display().to_string(),
                f["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    not_written.sort();
    // Second copies of an instance (the corpus holds some files in several encodings).
    let duplicates = not_written
        .iter()
        .filter(|(_, why)| why.starts_with("duplicate: the same SOP Instance UID as "))
        .count();
    assert_eq!(json["duplicates"], duplicates);
    assert!(duplicates > 0);
    not_written.retain(|(_, why)| !why.starts_with("duplicate"));
    let distinct: BTreeSet<&PathBuf> = written.iter().map(|(_, o)| o).collect();
    assert_eq!(distinct.len(), written.len(), "one output per instance");
    for (name, why) in &not_written {
        eprintln!("not written: {name}: {why}");
    }
    for (name, start) in PYDICOM_NOT_WRITTEN {
        assert!(
            not_written
                .iter()
                .any(|(n, why)| n == name && why.starts_with(start)),
            "{name} should be left out with {start:?}"
        );
    }
    assert_eq!(
        not_written.len(),
        PYDICOM_NOT_WRITTEN.len(),
        "unexpected files left out: {not_written:?}"
    );
    assert_eq!(run.status.success(), failed.is_empty());
    let searched = assert_no_leak(&written, &out);
    eprintln!(
        "pydicom corpus: {} written, {} left out, {duplicates} duplicates, {searched} identifying values searched",
        written.len(),
        not_written.len()
    );
}

#[test]
fn attribute_actions_match_pydicom_deid_apart_from_the_documented_differences() {
    let slice = common::require("rider/ct").join("1-001.dcm");
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::copy(&slice, input.join("1-001.dcm")).unwrap();
    let out = tmp.path().join("out");
    let (run, json) = anonymise(&input, &out, &write_key(tmp.path(), 4));
    assert!(run.status.success());
    let ours = &written_pairs(&json)[0].1;
    let mut cmd = Command::new(common::python());
    cmd.arg(common::root().join("tests/python/deid_compare.py"))
        .arg(&slice)
        .arg(ours)
        .arg("--check");
    // A local install of deid beside the shared environment, when there is one.
    let local = common::root().join("target/deid-py");
    if local.exists() {
        cmd.env("PYTHONPATH", local);
    }
    let cmp = cmd.output().unwrap();
    assert!(
        cmp.status.success(),
        "{}{}",
        String::from_utf8_lossy(&cmp.stdout),
        String::from_utf8_lossy(&cmp.stderr)
    );
}

/// What a gateway does: pseudonymise a CT, contour the pseudonymised CT into an RT Structure
/// Set, put the originals back with `deid::reidentify`; the result then references the original
/// CT (frame of reference, series, every contoured slice), names the original patient, holds no
/// pseudonym, and `dciodvfy` finds no error in it.
#[test]
fn a_structure_set_of_the_pseudonymised_ct_is_reidentified_onto_the_original() {
    use autocontour::deid::{Pseudonymiser, SiteKey, reidentify};
    use autocontour::rtstruct::{
        OutputInfo, RoiSpec, build_rtstruct, read_rtstruct, rois_from_labels,
    };
    let rider = common::require("rider/ct");
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    let mut slices: Vec<PathBuf> = std::fs::read_dir(&rider)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "dcm"))
        .collect();
    slices.sort();
    for s in slices.iter().skip(100).take(8) {
        std::fs::copy(s, input.join(s.file_name().unwrap())).unwrap();
    }
    let key = SiteKey::from_file(&write_key(tmp.path(), 5)).unwrap();
    let out = tmp.path().join("out");
    let report = Pseudonymiser::new(key)
        .pseudonymise_folder(&input, &out)
        .unwrap();
    assert_eq!(report.written.len(), 8);
    // The gateway's table: every UID replaced in the series, and the CT's identity.
    let mut uids = BTreeMap::new();
    for w in &report.written {
        uids.extend(w.report.uids.clone());
    }
    let original = report.written[0].report.original.clone();

    let opts = autocontour::dicom::LoadOptions::default();
    let pseudo = autocontour::dicom::load_series(&out, None, &opts).unwrap();
    let ct = autocontour::dicom::load_series(&input, None, &opts).unwrap();
    // Body: everything above -300 HU.
    let labels = autocontour::volume::Volume::new(
        *pseudo.volume.geometry(),
        pseudo
            .volume
            .to_f32()
            .data()
            .iter()
            .map(|&hu| u8::from(hu > -300.0))
            .collect(),
    )
    .unwrap();
    let spec = RoiSpec {
        number: 1,
        name: "Body".into(),
        color: [0, 255, 0],
        interpreted_type: "EXTERNAL".into(),
        code: None,
    };
    let rois = rois_from_labels(&labels, &[(1, spec)], &Default::default()).unwrap();
    let mut rs = build_rtstruct(&pseudo, &rois, &OutputInfo::default()).unwrap();
    let restored = reidentify(&mut rs, &uids, &original);
    assert!(restored >= 8 + 3, "{restored} UIDs restored");
    let path = tmp.path().join("rtstruct.dcm");
    autocontour::dicom::write::write_object(&path, &rs).unwrap();

    let back = read_rtstruct(&path).unwrap();
    assert_eq!(
        back.frame_of_reference_uid.as_deref(),
        Some(ct.frame_of_reference_uid.as_str())
    );
    assert_eq!(
        back.referenced_series_uid.as_deref(),
        Some(ct.series_uid.as_str())
    );
    let originals: BTreeSet<&str> = ct
        .slices
        .iter()
        .map(|s| s.sop_instance_uid.as_str())
        .collect();
    let contours = &back.rois[0].contours;
    assert!(!contours.is_empty());
    for c in contours {
        let r = c.referenced_sop_instance_uid.as_deref().unwrap();
        assert!(originals.contains(r), "{r} is not an original CT instance");
    }
    let dump = dump(&path);
    assert!(dump.contains("(0010,0020) LO [RIDER-1129164940]"), "{dump}");
    assert!(!dump.contains("AC-"), "a patient pseudonym is left");
    for pseudonym in uids.keys() {
        assert!(!dump.contains(pseudonym.as_str()), "{pseudonym} is left");
    }
    let errors = dciodvfy_errors(&path);
    assert!(errors.is_empty(), "{errors:?}");
}
