//! The named-error corpus: hostile or broken inputs made from a phantom CT (and the test model),
//! each run through the CLI as a user would. Every case must end with exit status 1 (2 for a
//! usage mistake), an error that names the problem (and the file, where there is one), nothing
//! written in the output folder, and a peak resident memory (the CLI's own, from `wait4` in a
//! small launcher process, [`LAUNCHER`])
//! under [`MAX_RSS_MB`]. Each case's time and memory are printed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;

use autocontour_test_support::corrupt::{
    duplicate_position, duplicate_roi_number, edit, flip_pixel_representation, nest_sequences,
    put_str, put_us, shear,
};
use autocontour_test_support::procs::phantom_ct;

/// Peak resident memory any case may reach, MB (a 64 × 64 × 40 phantom and the tiny test model).
const MAX_RSS_MB: f64 = 200.0;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The phantom's slices, written once.
fn base() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        phantom_ct(&d.path().join("ph"), "bad-inputs", &[]);
        d
    })
    .path()
    .join("ph")
    .leak()
}

/// A fresh copy of the phantom's CT folder under `dir`; returns it and its slices, sorted.
fn ct_copy(dir: &Path) -> (PathBuf, Vec<PathBuf>) {
    let ct = dir.join("ct");
    std::fs::create_dir_all(&ct).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(base().join("ct"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let copies = files
        .iter()
        .map(|f| {
            let to = ct.join(f.file_name().unwrap());
            std::fs::copy(f, &to).unwrap();
            to
        })
        .collect();
    (ct, copies)
}

/// A copy of the test model under `dir`, for the cases that break it.
fn model_copy(dir: &Path) -> PathBuf {
    let m = dir.join("model");
    std::fs::create_dir_all(&m).unwrap();
    for f in ["model.json", "model.onnx"] {
        std::fs::copy(root().join("models/test/tiny-unet").join(f), m.join(f)).unwrap();
    }
    m
}

fn tiny_model() -> String {
    root()
        .join("models/test/tiny-unet")
        .to_string_lossy()
        .into_owned()
}

struct Outcome {
    code: Option<i32>,
    stderr: String,
    rss_mb: f64,
    secs: f64,
}

/// Starts the CLI (`argv[1:]`, stdout to /dev/null, stderr inherited), waits for it with
/// `wait4` and prints its peak RSS in kB; exits as the CLI did (re-raising its signal).
///
/// The CLI is started from this small Python process rather than from the test binary: on Linux
/// a child's `ru_maxrss` also counts the address space it was forked or spawned from (exec keeps
/// the high-water mark of the old one), so a child of the test binary, whose memory grows with
/// the other tests running beside this one, would read as large as the test binary's peak.
const LAUNCHER: &str = r#"
import os, signal, sys
pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ,
                     file_actions=[(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)])
_, status, usage = os.wait4(pid, 0)
print(usage.ru_maxrss, flush=True)
if os.WIFSIGNALED(status):
    signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
    os.kill(os.getpid(), os.WTERMSIG(status))
sys.exit(os.WEXITSTATUS(status))
"#;

/// Runs the CLI with `args` through [`LAUNCHER`], which gives its own peak RSS.
fn run(args: &[String]) -> Outcome {
    let t = Instant::now();
    let out = Command::new("python3")
        .arg("-c")
        .arg(LAUNCHER)
        .arg(env!("CARGO_BIN_EXE_autocontour"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("python3 (the tests' reference environment) to start the CLI");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let kb: f64 = stdout
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "the launcher gave no peak RSS: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    Outcome {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        rss_mb: kb / 1024.0,
        secs: t.elapsed().as_secs_f64(),
    }
}

/// One case: what it does to the inputs (in its own folder), the command, and what the error
/// must say.
struct Case {
    name: &'static str,
    /// Prepares the inputs in `dir`; returns the arguments (the output folder is `dir/out`).
    make: fn(&Path) -> Vec<String>,
    /// Expected exit status.
    code: i32,
    /// Texts the error must contain.
    says: &'static [&'static str],
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// `segment <ct> --model tiny --out <dir>/out` plus `extra`.
fn segment(dir: &Path, ct: &Path, extra: &[&str]) -> Vec<String> {
    let mut a = vec![
        "segment".into(),
        s(ct),
        "--model".into(),
        tiny_model(),
        "--out".into(),
        s(&dir.join("out")),
        "--threads".into(),
        "1".into(),
    ];
    a.extend(extra.iter().map(|x| x.to_string()));
    a
}

/// [`segment`] with the model folder `model` instead of the test model.
fn segment_model(dir: &Path, ct: &Path, model: &Path) -> Vec<String> {
    let mut a = segment(dir, ct, &[]);
    a[3] = s(model);
    a
}

/// `rtstruct-to-mask <rs> --ct <ct> --out <dir>/out` plus `extra`.
fn to_mask(dir: &Path, rs: &Path, ct: &Path, extra: &[&str]) -> Vec<String> {
    let mut a = vec![
        "rtstruct-to-mask".into(),
        s(rs),
        "--ct".into(),
        s(ct),
        "--out".into(),
        s(&dir.join("out")),
    ];
    a.extend(extra.iter().map(|x| x.to_string()));
    a
}

/// `mask-to-rtstruct <mask> --ct <ct> --out <dir>/out/rs.dcm`.
fn to_rtstruct(dir: &Path, mask: &Path, ct: &Path) -> Vec<String> {
    vec![
        "mask-to-rtstruct".into(),
        s(mask),
        "--ct".into(),
        s(ct),
        "--out".into(),
        s(&dir.join("out").join("rs.dcm")),
    ]
}

/// An RT Structure Set for the phantom, written by `mask-to-rtstruct` from its labels.
fn phantom_rtstruct(dir: &Path, ct: &Path) -> PathBuf {
    let rs = dir.join("rs.dcm");
    let o = run(&[
        "mask-to-rtstruct".into(),
        s(&base().join("labels.raw")),
        "--ct".into(),
        s(ct),
        "--out".into(),
        s(&rs),
    ]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    rs
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "empty folder",
            make: |d| {
                std::fs::create_dir_all(d.join("ct")).unwrap();
                segment(d, &d.join("ct"), &[])
            },
            code: 1,
            says: &["no usable CT series"],
        },
        Case {
            name: "symbolic-link loops and no CT",
            make: |d| {
                let ct = d.join("ct");
                std::fs::create_dir_all(ct.join("a/b")).unwrap();
                std::os::unix::fs::symlink(&ct, ct.join("a/b/loop")).unwrap();
                std::os::unix::fs::symlink(&ct, ct.join("self")).unwrap();
                std::os::unix::fs::symlink(ct.join("a"), ct.join("a/b/up")).unwrap();
                segment(d, &ct, &[])
            },
            code: 1,
            says: &["no usable CT series"],
        },
        Case {
            name: "missing folder",
            make: |d| segment(d, &d.join("nowhere"), &[]),
            code: 1,
            says: &["nowhere"],
        },
        Case {
            name: "zero-byte last slice",
            make: |d| {
                let (ct, f) = ct_copy(d);
                std::fs::write(f.last().unwrap(), b"").unwrap();
                segment(d, &ct, &[])
            },
            code: 1,
            says: &["CT00040.dcm", "0 bytes"],
        },
        Case {
            name: "truncated last slice",
            make: |d| {
                let (ct, f) = ct_copy(d);
                let p = f.last().unwrap();
                let b = std::fs::read(p).unwrap();
                std::fs::write(p, &b[..b.len() / 2]).unwrap();
                segment(d, &ct, &[])
            },
            code: 1,
            says: &["CT00040.dcm"],
        },
        Case {
            name: "truncated middle slice",
            make: |d| {
                let (ct, f) = ct_copy(d);
                let p = &f[20];
                let b = std::fs::read(p).unwrap();
                std::fs::write(p, &b[..b.len() - 100]).unwrap();
                segment(d, &ct, &[])
            },
            code: 1,
            says: &["CT00021.dcm"],
        },
        Case {
            name: "pixel data length claims 4 GB",
            make: |d| {
                let (ct, f) = ct_copy(d);
                let p = &f[5];
                let mut b = std::fs::read(p).unwrap();
                let at = b
                    .windows(4)
                    .rposition(|w| w == [0xE0, 0x7F, 0x10, 0x00])
                    .unwrap();
                b[at + 4..at + 8].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
                std::fs::write(p, &b).unwrap();
                segment(d, &ct, &[])
            },
            code: 1,
            says: &["CT00006.dcm", "4294967280"],
        },
        Case {
            name: "missing slice",
            make: |d| {
                let (ct, f) = ct_copy(d);
                std::fs::remove_file(&f[17]).unwrap();
                segment(d, &ct, &[])
            },
            code: 1,
            says: &["gap"],
        },
        Case {
            name: "duplicate slice position",
            make: |d| {
                let (ct, f) = ct_copy(d);
                duplicate_position(&f[3], &f[4]);
                segment(d, &ct, &[])
            },
            code: 1,
            says: &["CT00004.dcm", "CT00005.dcm"],
        },
        Case {
            name: "one slice with other rows",
            make: |d| {
                let (ct, f) = ct_copy(d);
                edit(&f[9], |o| put_us(o, tags::ROWS, 32));
                segment(d, &ct, &[])
            },
            code: 1,
            says: &["CT00010.dcm"],
        },
        Case {
            name: "bits allocated 1",
            make: |d| {
                let (ct, f) = ct_copy(d);
                for p in &f {
                    edit(p, |o| put_us(o, tags::BITS_ALLOCATED, 1));
                }
                segment(d, &ct, &[])
            },
            code: 1,
            says: &["CT00001.dcm", "BitsAllocated", "1 bits"],
        },
        Case {
            name: "rescale slope 1e300",
            make: |d| {
                let (ct, f) = ct_copy(d);
                edit(&f[12], |o| put_str(o, tags::RESCALE_SLOPE, VR::DS, "1e300"));
                segment(d, &ct, &[])
            },
            code: 1,
            says: &["CT00013.dcm", "Rescale"],
        },
        Case {
            name: "rescale slope 0",
            make: |d| {
                let (ct, f) = ct_copy(d);
                edit(&f[0], |o| put_str(o, tags::RESCALE_SLOPE, VR::DS, "0"));
                segment(d, &ct, &[])
            },
            code: 1,
            says: &["CT00001.dcm", "Rescale"],
        },
        Case {
            name: "pixel representation changed on one slice",
            make: |d| {
                let (ct, f) = ct_copy(d);
                flip_pixel_representation(&f[7]);
                segment(d, &ct, &[])
            },
            code: 1,
            says: &["CT00008.dcm"],
        },
        Case {
            name: "modality MR",
            make: |d| {
                let (ct, f) = ct_copy(d);
                for p in &f {
                    edit(p, |o| put_str(o, tags::MODALITY, VR::CS, "MR"));
                }
                segment(d, &ct, &[])
            },
            code: 1,
            says: &["modality MR", "not CT"],
        },
        Case {
            name: "one slice rotated",
            make: |d| {
                let (ct, f) = ct_copy(d);
                edit(&f[15], |o| {
                    put_str(
                        o,
                        tags::IMAGE_ORIENTATION_PATIENT,
                        VR::DS,
                        "0\\1\\0\\1\\0\\0",
                    )
                });
                segment(d, &ct, &[])
            },
            code: 1,
            says: &["CT00016.dcm", "ImageOrientationPatient", "differs"],
        },
        Case {
            name: "orientation not orthogonal",
            make: |d| {
                let (ct, f) = ct_copy(d);
                for p in &f {
                    edit(p, |o| {
                        put_str(
                            o,
                            tags::IMAGE_ORIENTATION_PATIENT,
                            VR::DS,
                            "1\\0\\0\\1\\0\\0",
                        )
                    });
                }
                segment(d, &ct, &[])
            },
            code: 1,
            says: &["ImageOrientationPatient"],
        },
        Case {
            name: "missing image position",
            make: |d| {
                let (ct, f) = ct_copy(d);
                edit(&f[2], |o| {
                    o.remove_element(tags::IMAGE_POSITION_PATIENT);
                });
                segment(d, &ct, &[])
            },
            code: 1,
            says: &["CT00003.dcm", "ImagePositionPatient"],
        },
        Case {
            name: "sheared stack (gantry tilt)",
            make: |d| {
                let (ct, f) = ct_copy(d);
                shear(&f, 0.5);
                segment(d, &ct, &[])
            },
            code: 1,
            says: &["tilt"],
        },
        Case {
            name: "unknown series UID",
            make: |d| {
                let (ct, _) = ct_copy(d);
                segment(d, &ct, &["--uid", "1.2.3.4"])
            },
            code: 1,
            says: &["1.2.3.4"],
        },
        Case {
            name: "gap tolerance NaN",
            make: |d| {
                let (ct, _) = ct_copy(d);
                vec![
                    "series".into(),
                    s(&ct),
                    "--load".into(),
                    "--gap-tolerance".into(),
                    "NaN".into(),
                ]
            },
            code: 1,
            says: &["NaN"],
        },
        Case {
            name: "files over max_file_bytes",
            make: |d| {
                let (ct, _) = ct_copy(d);
                segment(d, &ct, &["--limit", "max_file_bytes=2k"])
            },
            code: 1,
            says: &["CT00001.dcm", "max_file_bytes = 2000"],
        },
        Case {
            name: "series over max_voxels",
            make: |d| {
                let (ct, _) = ct_copy(d);
                segment(d, &ct, &["--limit", "max_voxels=10k"])
            },
            code: 1,
            says: &["163840", "10000"],
        },
        Case {
            name: "folder over max_files_scanned",
            make: |d| {
                let (ct, _) = ct_copy(d);
                segment(d, &ct, &["--limit", "max_files_scanned=10"])
            },
            code: 1,
            says: &["max_files_scanned = 10"],
        },
        Case {
            name: "sequences nested too deep",
            make: |d| {
                let (ct, f) = ct_copy(d);
                nest_sequences(&f[30], 71);
                segment(d, &ct, &[])
            },
            code: 1,
            says: &["CT00031.dcm", "max_sequence_depth"],
        },
        Case {
            name: "model folder missing",
            make: |d| {
                let (ct, _) = ct_copy(d);
                let mut a = segment(d, &ct, &[]);
                a[3] = s(&d.join("no-model"));
                a
            },
            code: 1,
            says: &["no-model"],
        },
        Case {
            name: "model.json not JSON",
            make: |d| {
                let (ct, _) = ct_copy(d);
                let m = model_copy(d);
                std::fs::write(m.join("model.json"), b"{ not json").unwrap();
                segment_model(d, &ct, &m)
            },
            code: 1,
            says: &["model.json"],
        },
        Case {
            name: "ONNX file corrupted (hash mismatch)",
            make: |d| {
                let (ct, _) = ct_copy(d);
                let m = model_copy(d);
                let p = m.join("model.onnx");
                let mut b = std::fs::read(&p).unwrap();
                let n = b.len();
                b[n / 2] ^= 0xFF;
                std::fs::write(&p, &b).unwrap();
                segment_model(d, &ct, &m)
            },
            code: 1,
            says: &["model.onnx", "SHA-256"],
        },
        Case {
            name: "ONNX file missing",
            make: |d| {
                let (ct, _) = ct_copy(d);
                let m = model_copy(d);
                std::fs::remove_file(m.join("model.onnx")).unwrap();
                segment_model(d, &ct, &m)
            },
            code: 1,
            says: &["model.onnx"],
        },
        Case {
            name: "tile step too small",
            make: |d| {
                let (ct, _) = ct_copy(d);
                let m = model_copy(d);
                let p = m.join("model.json");
                let mut j: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
                j["tile_step"] = serde_json::json!(0.0001);
                std::fs::write(&p, serde_json::to_vec(&j).unwrap()).unwrap();
                segment_model(d, &ct, &m)
            },
            code: 1,
            says: &["tile"],
        },
        Case {
            name: "ONNX Runtime library missing",
            make: |d| {
                let (ct, _) = ct_copy(d);
                let mut a = segment(d, &ct, &[]);
                a.extend(["--ort-lib".into(), s(&d.join("libonnxruntime.so"))]);
                a
            },
            code: 1,
            says: &["libonnxruntime.so"],
        },
        Case {
            name: "ONNX Runtime library not a library",
            make: |d| {
                let (ct, _) = ct_copy(d);
                let lib = d.join("libonnxruntime.so");
                std::fs::write(&lib, b"not an ELF file").unwrap();
                let mut a = segment(d, &ct, &[]);
                a.extend(["--ort-lib".into(), s(&lib)]);
                a
            },
            code: 1,
            says: &["libonnxruntime.so"],
        },
        Case {
            name: "output folder below a file",
            make: |d| {
                let (ct, _) = ct_copy(d);
                std::fs::write(d.join("file"), b"x").unwrap();
                let mut a = segment(d, &ct, &[]);
                a[5] = s(&d.join("file").join("out"));
                a
            },
            code: 1,
            says: &["file"],
        },
        Case {
            name: "threads 100000",
            make: |d| {
                let (ct, _) = ct_copy(d);
                let mut a = segment(d, &ct, &[]);
                a[7] = "100000".into();
                a
            },
            code: 1,
            says: &["100000"],
        },
        Case {
            name: "RT Structure Set that is not DICOM",
            make: |d| {
                let (ct, _) = ct_copy(d);
                let rs = d.join("rs.dcm");
                std::fs::write(&rs, vec![0x42u8; 4096]).unwrap();
                to_mask(d, &rs, &ct, &[])
            },
            code: 1,
            says: &["rs.dcm"],
        },
        Case {
            name: "RT Structure Set with too many contour points",
            make: |d| {
                let (ct, _) = ct_copy(d);
                let rs = phantom_rtstruct(d, &ct);
                to_mask(d, &rs, &ct, &["--limit", "max_contour_points_per_roi=50"])
            },
            code: 1,
            says: &["rs.dcm", "max_contour_points_per_roi = 50"],
        },
        Case {
            name: "RT Structure Set with a non-numeric contour",
            make: |d| {
                let (ct, _) = ct_copy(d);
                let rs = phantom_rtstruct(d, &ct);
                let mut b = std::fs::read(&rs).unwrap();
                // The first Contour Data value's first digit becomes a letter.
                let tag = [0x06u8, 0x30, 0x50, 0x00];
                let at = b.windows(4).position(|w| w == tag).unwrap() + 8;
                let digit = b[at..].iter().position(|c| c.is_ascii_digit()).unwrap();
                b[at + digit] = b'x';
                std::fs::write(&rs, &b).unwrap();
                to_mask(d, &rs, &ct, &[])
            },
            code: 1,
            says: &["rs.dcm", "ContourData"],
        },
        Case {
            name: "evaluate against a truncated RT Structure Set",
            make: |d| {
                let (ct, _) = ct_copy(d);
                let rs = phantom_rtstruct(d, &ct);
                let b = std::fs::read(&rs).unwrap();
                std::fs::write(&rs, &b[..b.len() / 3]).unwrap();
                vec![
                    "evaluate".into(),
                    s(&ct),
                    "--ref".into(),
                    s(&rs),
                    "--test".into(),
                    s(&rs),
                    "--json".into(),
                    s(&d.join("out").join("ev.json")),
                ]
            },
            code: 1,
            says: &["rs.dcm"],
        },
        Case {
            name: "NIfTI label map on another grid",
            make: |d| {
                let (ct, _) = ct_copy(d);
                let other = d.join("other");
                phantom_ct(&other, "bad-inputs-other", &["--size", "32,32,20"]);
                to_rtstruct(d, &other.join("labels.raw"), &ct)
            },
            code: 1,
            says: &["grid"],
        },
        Case {
            name: "NIfTI header declaring 32767³ voxels",
            make: |d| {
                let (ct, _) = ct_copy(d);
                let mut h = vec![0u8; 352];
                h[0..4].copy_from_slice(&348i32.to_le_bytes());
                for (i, v) in [3i16, 32767, 32767, 32767, 1, 1, 1, 1].iter().enumerate() {
                    h[40 + 2 * i..42 + 2 * i].copy_from_slice(&v.to_le_bytes());
                }
                h[70..72].copy_from_slice(&2i16.to_le_bytes());
                h[72..74].copy_from_slice(&8i16.to_le_bytes());
                for (i, v) in [1.0f32, 1.0, 1.0, 1.0].iter().enumerate() {
                    h[76 + 4 * i..80 + 4 * i].copy_from_slice(&v.to_le_bytes());
                }
                h[108..112].copy_from_slice(&352f32.to_le_bytes());
                h[344..348].copy_from_slice(b"n+1\0");
                let nii = d.join("huge.nii");
                std::fs::write(&nii, &h).unwrap();
                to_rtstruct(d, &nii, &ct)
            },
            code: 1,
            says: &["huge.nii", "max_nifti_bytes"],
        },
        Case {
            name: "NIfTI file truncated",
            make: |d| {
                let (ct, _) = ct_copy(d);
                let nii = d.join("short.nii");
                std::fs::write(&nii, vec![0u8; 100]).unwrap();
                to_rtstruct(d, &nii, &ct)
            },
            code: 1,
            says: &["short.nii"],
        },
        Case {
            name: "one slice with 8 bits allocated",
            make: |d| {
                let (ct, f) = ct_copy(d);
                edit(&f[11], |o| {
                    put_us(o, tags::BITS_ALLOCATED, 8);
                    put_us(o, tags::BITS_STORED, 8);
                    put_us(o, tags::HIGH_BIT, 7);
                });
                segment(d, &ct, &[])
            },
            code: 1,
            says: &["CT00012.dcm"],
        },
        Case {
            name: "one slice with 3 samples per pixel",
            make: |d| {
                let (ct, f) = ct_copy(d);
                edit(&f[13], |o| put_us(o, tags::SAMPLES_PER_PIXEL, 3));
                segment(d, &ct, &[])
            },
            code: 1,
            says: &["CT00014.dcm", "SamplesPerPixel"],
        },
        Case {
            name: "rescale intercept not a number",
            make: |d| {
                let (ct, f) = ct_copy(d);
                edit(&f[6], |o| {
                    put_str(o, tags::RESCALE_INTERCEPT, VR::DS, "abc")
                });
                segment(d, &ct, &[])
            },
            code: 1,
            says: &["CT00007.dcm", "RescaleIntercept"],
        },
        Case {
            name: "pixel spacing zero",
            make: |d| {
                let (ct, f) = ct_copy(d);
                for p in &f {
                    edit(p, |o| put_str(o, tags::PIXEL_SPACING, VR::DS, "0\\0"));
                }
                segment(d, &ct, &[])
            },
            code: 1,
            says: &["PixelSpacing"],
        },
        Case {
            name: "one slice with other pixel spacing",
            make: |d| {
                let (ct, f) = ct_copy(d);
                edit(&f[25], |o| put_str(o, tags::PIXEL_SPACING, VR::DS, "3\\3"));
                segment(d, &ct, &[])
            },
            code: 1,
            says: &["CT00026.dcm", "PixelSpacing"],
        },
        Case {
            name: "rows 0",
            make: |d| {
                let (ct, f) = ct_copy(d);
                for p in &f {
                    edit(p, |o| put_us(o, tags::ROWS, 0));
                }
                segment(d, &ct, &[])
            },
            code: 1,
            says: &["Rows"],
        },
        Case {
            name: "missing rows",
            make: |d| {
                let (ct, f) = ct_copy(d);
                edit(&f[1], |o| {
                    o.remove_element(tags::ROWS);
                });
                segment(d, &ct, &[])
            },
            code: 1,
            says: &["CT00002.dcm", "Rows"],
        },
        Case {
            name: "missing pixel data",
            make: |d| {
                let (ct, f) = ct_copy(d);
                edit(&f[33], |o| {
                    o.remove_element(tags::PIXEL_DATA);
                });
                segment(d, &ct, &[])
            },
            code: 1,
            says: &["CT00034.dcm", "PixelData"],
        },
        Case {
            name: "pixel data shorter than rows x columns",
            make: |d| {
                let (ct, f) = ct_copy(d);
                edit(&f[35], |o| {
                    o.put(DataElement::new(
                        tags::PIXEL_DATA,
                        VR::OW,
                        PrimitiveValue::U16(vec![0u16; 100].into()),
                    ));
                });
                segment(d, &ct, &[])
            },
            code: 1,
            says: &["CT00036.dcm"],
        },
        Case {
            name: "two frames per slice",
            make: |d| {
                let (ct, f) = ct_copy(d);
                for p in &f {
                    edit(p, |o| put_str(o, tags::NUMBER_OF_FRAMES, VR::IS, "2"));
                }
                segment(d, &ct, &[])
            },
            code: 1,
            says: &["frame"],
        },
        Case {
            name: "unknown transfer syntax",
            make: |d| {
                let (ct, f) = ct_copy(d);
                let p = &f[38];
                let mut b = std::fs::read(p).unwrap();
                let ts = b"1.2.840.10008.1.2\0";
                let at = b.windows(ts.len()).position(|w| w == ts).unwrap();
                b[at..at + ts.len()].copy_from_slice(b"1.2.840.99999.9.9\0");
                std::fs::write(p, &b).unwrap();
                segment(d, &ct, &[])
            },
            code: 1,
            says: &["CT00039.dcm"],
        },
        Case {
            name: "deflated series over max_inflated_bytes",
            make: |d| {
                let ct = phantom_ct(
                    &d.join("ph"),
                    "bad-inputs-deflate",
                    &["--transfer-syntax", "deflate"],
                );
                segment(d, &ct, &["--limit", "max_inflated_bytes=2k"])
            },
            code: 1,
            says: &["max_inflated_bytes = 2000"],
        },
        Case {
            name: "deflated slice cut short",
            make: |d| {
                let ct = phantom_ct(
                    &d.join("ph"),
                    "bad-inputs-deflate-cut",
                    &["--transfer-syntax", "deflate"],
                );
                let p = ct.join("CT00020.dcm");
                let b = std::fs::read(&p).unwrap();
                std::fs::write(&p, &b[..b.len() * 2 / 3]).unwrap();
                segment(d, &ct, &[])
            },
            code: 1,
            says: &["CT00020.dcm"],
        },
        Case {
            name: "limit of zero",
            make: |d| {
                let (ct, _) = ct_copy(d);
                segment(d, &ct, &["--limit", "max_sequence_depth=0"])
            },
            code: 2,
            says: &["max_sequence_depth is 0"],
        },
        Case {
            name: "unknown limit",
            make: |d| {
                let (ct, _) = ct_copy(d);
                segment(d, &ct, &["--limit", "max_bananas=3"])
            },
            code: 2,
            says: &["unknown limit 'max_bananas'"],
        },
        Case {
            name: "threads not a number",
            make: |d| {
                let (ct, _) = ct_copy(d);
                let mut a = segment(d, &ct, &[]);
                a[7] = "many".into();
                a
            },
            code: 2,
            says: &["many"],
        },
        Case {
            name: "site profile that does not parse",
            make: |d| {
                let (ct, _) = ct_copy(d);
                let prof = d.join("site.toml");
                std::fs::write(&prof, b"[[structure\nname = ").unwrap();
                segment(d, &ct, &["--profile", &s(&prof)])
            },
            code: 1,
            says: &["site.toml"],
        },
        Case {
            name: "label map without its JSON sidecar",
            make: |d| {
                let (ct, _) = ct_copy(d);
                let raw = d.join("labels.raw");
                std::fs::copy(base().join("labels.raw"), &raw).unwrap();
                to_rtstruct(d, &raw, &ct)
            },
            code: 1,
            says: &["labels.json"],
        },
        Case {
            name: "evaluate with a missing reference file",
            make: |d| {
                let (ct, _) = ct_copy(d);
                let rs = phantom_rtstruct(d, &ct);
                vec![
                    "evaluate".into(),
                    s(&ct),
                    "--ref".into(),
                    s(&d.join("missing.dcm")),
                    "--test".into(),
                    s(&rs),
                    "--json".into(),
                    s(&d.join("out").join("ev.json")),
                ]
            },
            code: 1,
            says: &["missing.dcm"],
        },
        Case {
            name: "RT Structure Set with a duplicate ROI number",
            make: |d| {
                let (ct, _) = ct_copy(d);
                let rs = phantom_rtstruct(d, &ct);
                duplicate_roi_number(&rs);
                to_mask(d, &rs, &ct, &[])
            },
            code: 1,
            says: &["rs.dcm", "ROI"],
        },
        Case {
            name: "RT Structure Set over the total contour-point limit",
            make: |d| {
                let (ct, _) = ct_copy(d);
                let rs = phantom_rtstruct(d, &ct);
                vec![
                    "--limit".into(),
                    "max_contour_points_total=100".into(),
                    "rtstruct-to-mask".into(),
                    s(&rs),
                    "--ct".into(),
                    s(&ct),
                    "--out".into(),
                    s(&d.join("out")),
                ]
            },
            code: 1,
            says: &["rs.dcm", "max_contour_points_total = 100"],
        },
    ]
}

#[test]
fn every_bad_input_is_a_named_error_with_nothing_written() {
    let mut failures = Vec::new();
    let all = cases();
    for case in &all {
        let tmp = tempfile::tempdir().unwrap();
        let args = (case.make)(tmp.path());
        let o = run(&args);
        let out = tmp.path().join("out");
        let written: Vec<PathBuf> = std::fs::read_dir(&out)
            .map(|rd| rd.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        let first = o
            .stderr
            .lines()
            .find(|l| l.starts_with("error:"))
            .unwrap_or("");
        println!(
            "{:<48} exit {:?}  {:>5.2} s  {:>6.1} MB  {}",
            case.name, o.code, o.secs, o.rss_mb, first
        );
        let mut why = Vec::new();
        if o.code != Some(case.code) {
            why.push(format!("exit {:?}, expected {}", o.code, case.code));
        }
        if first.is_empty() {
            why.push("no `error:` line".to_string());
        }
        for text in case.says {
            if !o.stderr.contains(text) {
                why.push(format!("the error does not say {text:?}"));
            }
        }
        if !written.is_empty() {
            why.push(format!("wrote {written:?}"));
        }
        if o.rss_mb > MAX_RSS_MB {
            why.push(format!("peak RSS {:.1} MB", o.rss_mb));
        }
        if !why.is_empty() {
            failures.push(format!("{}: {}\n{}", case.name, why.join("; "), o.stderr));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}
