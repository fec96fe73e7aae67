//! Decoded pixels equal pydicom's (with pylibjpeg) on every single-channel file of the pydicom
//! corpora that pydicom can decode, whatever the transfer syntax. pydicom runs as the
//! independent reference (tests/python/pixel_reference.py in target/pyenv).

use autocontour_test_support as common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use autocontour::Error;
use autocontour::dicom::read_file;

fn python() -> PathBuf {
    let p = common::root().join("target/pyenv/bin/python");
    assert!(
        p.exists(),
        "{} missing: run tests/run-all.sh once (it creates the venv from tests/requirements.txt)",
        p.display()
    );
    p
}

/// Transfer syntaxes this build cannot decode, with the reason users see. Everything else that
/// pydicom decodes must decode here to the same values.
const NOT_SUPPORTED: &[(&str, &str)] = &[
    (
        "1.2.840.10008.1.2.4.51",
        "JPEG extended 12-bit is not supported",
    ),
    (
        "1.2.840.10008.1.2.5",
        "RLE Lossless with 32 bits allocated is not supported",
    ),
];

#[test]
fn stored_values_equal_pydicom_on_the_corpora() {
    let dirs = [common::require("pydicom"), common::require("pydicom-data")];
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(python())
        .arg(common::root().join("tests/python/pixel_reference.py"))
        .arg(out.path())
        .args(&dirs)
        .env("PYTHONWARNINGS", "ignore")
        .status()
        .unwrap();
    assert!(status.success(), "pixel_reference.py failed");
    let manifest: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(out.path().join("manifest.json")).unwrap()).unwrap();

    let mut equal: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut refused: Vec<String> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for e in &manifest {
        if e["status"] != "decoded" {
            continue;
        }
        let path = PathBuf::from(e["path"].as_str().unwrap());
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let ts = e["transfer_syntax"].as_str().unwrap_or("").to_string();
        let modality = e["modality"].as_str().unwrap_or("").to_string();
        let bytes = std::fs::read(out.path().join(e["data"].as_str().unwrap())).unwrap();
        let reference: Vec<f64> = bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let ours = read_file(&path).and_then(|f| f.stored_pixels());
        match ours {
            Ok(px) => {
                let shape = [px.frames as u64, px.rows as u64, px.cols as u64];
                let want = [
                    e["frames"].as_u64().unwrap(),
                    e["rows"].as_u64().unwrap(),
                    e["cols"].as_u64().unwrap(),
                ];
                if shape != want {
                    failures.push(format!("{name} ({ts}): shape {shape:?}, pydicom {want:?}"));
                    continue;
                }
                let diff = px
                    .values
                    .iter()
                    .zip(&reference)
                    .filter(|(a, b)| a != b)
                    .count();
                if diff > 0 {
                    let first = px
                        .values
                        .iter()
                        .zip(&reference)
                        .position(|(a, b)| a != b)
                        .unwrap();
                    failures.push(format!(
                        "{name} ({ts}, {modality}): {diff} of {} values differ; first at {first}: ours {} pydicom {}",
                        reference.len(),
                        px.values[first],
                        reference[first]
                    ));
                } else {
                    equal.entry(ts).or_default().push(name);
                }
            }
            Err(Error::PixelData {
                reason,
                transfer_syntax,
                ..
            }) if modality != "CT"
                && NOT_SUPPORTED
                    .iter()
                    .any(|(t, why)| transfer_syntax.starts_with(t) && reason.contains(why)) =>
            {
                refused.push(format!("{name}: {transfer_syntax}: {reason}"));
            }
            Err(err) => failures.push(format!("{name} ({ts}, {modality}): {err}")),
        }
    }
    for (ts, names) in &equal {
        println!("equal  {ts}: {}", names.join(", "));
    }
    for r in &refused {
        println!("named refusal  {r}");
    }
    assert!(
        failures.is_empty(),
        "differ from pydicom:\n{}",
        failures.join("\n")
    );
    // The corpora hold these syntaxes; each must have matched at least one file.
    for ts in [
        "1.2.840.10008.1.2",
        "1.2.840.10008.1.2.1",
        "1.2.840.10008.1.2.2",
        "1.2.840.10008.1.2.1.99",
        "1.2.840.10008.1.2.5",
        "1.2.840.10008.1.2.4.70",
        "1.2.840.10008.1.2.4.80",
        "1.2.840.10008.1.2.4.81",
        "1.2.840.10008.1.2.4.90",
        "1.2.840.10008.1.2.4.91",
    ] {
        assert!(equal.contains_key(ts), "no file of {ts} matched");
    }
}

#[test]
fn jpeg_extended_12_bit_is_a_named_error() {
    let f = read_file(&common::require("pydicom/JPGExtended.dcm")).unwrap();
    match f.stored_pixels() {
        Ok(px) => assert_eq!(px.rows * px.cols, 1024 * 256),
        Err(Error::PixelData {
            transfer_syntax,
            reason,
            ..
        }) => {
            assert!(transfer_syntax.starts_with("1.2.840.10008.1.2.4.51"));
            assert!(reason.contains("12-bit"), "{reason}");
        }
        Err(e) => panic!("unexpected error kind: {e}"),
    }
}
