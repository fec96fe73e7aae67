//! Resource limits from the command line: `autocontour limits` and `--limit NAME=VALUE`, and
//! inputs over a limit refused by name (exit 1) with nothing written.

use std::path::Path;
use std::process::Command;

use autocontour_test_support::procs::phantom_ct;

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_autocontour"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn limits_lists_defaults_and_changes_and_refuses_bad_ones() {
    let (code, out, err) = run(&["limits"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.lines().count(), 8, "{out}");
    for line in [
        "max_voxels=2147483648",
        "max_file_bytes=4294967296",
        "max_files_scanned=1000000",
        "max_sequence_depth=64",
        "max_contour_points_per_roi=20000000",
    ] {
        assert!(out.lines().any(|l| l == line), "{line} missing from\n{out}");
    }
    let (code, out, err) = run(&[
        "limits",
        "--limit",
        "max_files_scanned=5k",
        "--limit",
        "max_file_bytes=1MiB",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("max_files_scanned=5000\n"), "{out}");
    assert!(out.contains("max_file_bytes=1048576\n"), "{out}");
    // Before the subcommand too.
    let (code, out, err) = run(&["--limit", "max_sequence_depth=32", "limits"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("max_sequence_depth=32\n"), "{out}");
    // Usage mistakes: unknown name, zero, not a number, a depth the parser cannot take.
    for (bad, says) in [
        ("max_files=3", "unknown limit 'max_files'"),
        ("max_voxels=0", "max_voxels is 0"),
        ("max_voxels=lots", "not a whole number"),
        ("max_sequence_depth=1000", "at most 256"),
    ] {
        let (code, _, err) = run(&["limits", "--limit", bad]);
        assert_eq!(code, Some(2), "{bad}: {err}");
        assert!(err.contains(says), "{bad}: {err}");
    }
}

#[test]
fn inputs_over_a_limit_are_refused_by_name_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let ct = phantom_ct(&tmp.path().join("ph"), "limits-cli", &[]);
    let labels = tmp.path().join("ph").join("labels.raw");
    let files = std::fs::read_dir(&ct).unwrap().count();
    assert!(files > 3);

    // More files under the folder than allowed.
    let (code, _, err) = run(&["series", s(&ct), "--limit", "max_files_scanned=3"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{}: files under the folder (point at one series' folder): 4 is over the limit \
             max_files_scanned = 3",
            ct.display()
        )),
        "{err}"
    );

    // Slices larger than allowed: each is named with its size.
    let (code, _, err) = run(&["series", s(&ct), "--load", "--limit", "max_file_bytes=1k"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("file size in bytes") && err.contains("over the limit max_file_bytes = 1000"),
        "{err}"
    );

    // A volume over the voxel limit (the limit is also the load options' default).
    let (code, _, err) = run(&["series", s(&ct), "--load", "--limit", "max_voxels=1000"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("exceeds the limit of 1000"), "{err}");

    // Writing: more contour points than allowed → no RT Structure Set.
    let rs = tmp.path().join("rs.dcm");
    let (code, _, err) = run(&[
        "mask-to-rtstruct",
        s(&labels),
        "--ct",
        s(&ct),
        "--out",
        s(&rs),
        "--limit",
        "max_contour_points_total=10",
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("contour points of all ROIs")
            && err.contains("over the limit max_contour_points_total = 10"),
        "{err}"
    );
    assert!(!rs.exists());

    // Reading: the same structure set, written without the limit, refused with it.
    let (code, _, err) = run(&[
        "mask-to-rtstruct",
        s(&labels),
        "--ct",
        s(&ct),
        "--out",
        s(&rs),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let masks = tmp.path().join("masks.nii.gz");
    let (code, _, err) = run(&[
        "rtstruct-to-mask",
        s(&rs),
        "--ct",
        s(&ct),
        "--out",
        s(&masks),
        "--limit",
        "max_contour_points_per_roi=10",
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("{}: contour points of ROI 1", rs.display()))
            && err.contains("over the limit max_contour_points_per_roi = 10"),
        "{err}"
    );
    assert!(!masks.exists());
    let (code, _, err) = run(&[
        "rtstruct-to-mask",
        s(&rs),
        "--ct",
        s(&ct),
        "--out",
        s(&masks),
    ]);
    assert_eq!(code, Some(0), "{err}");
}
