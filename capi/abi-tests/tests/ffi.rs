//! The C API as a host sees it: the built cdylib (`libautocontour.so` beside the test binary's
//! `deps/` folder) is loaded with libloading and called through C function pointers.
//!
//! Crash cases (NULL pointers, double free, wrong handle type, invalid UTF-8, cancel mid-run,
//! use after free) each run in a child process (this test binary re-executed with
//! `AC_FFI_CASE=<case>`), so an abort or a segfault fails the test instead of killing the run.

use autocontour_test_support as common;

use std::ffi::{CStr, CString, c_char, c_void};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::ptr::{null, null_mut};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use autocontour_test_support::corrupt::{
    duplicate_position, duplicate_roi_number, edit, flip_pixel_representation, nest_sequences,
    put_str, put_us, shear,
};
use autocontour_test_support::phantom::{Phantom, PhantomSpec, PhantomSyntax};

use autocontour_abi_tests::*;

type Status = ac_status;
const OK: Status = AC_STATUS_OK;
const NULL_ARGUMENT: Status = AC_STATUS_NULL_ARGUMENT;
const INVALID_UTF8: Status = AC_STATUS_INVALID_UTF8;
const INVALID_HANDLE: Status = AC_STATUS_INVALID_HANDLE;
const WRONG_HANDLE_TYPE: Status = AC_STATUS_WRONG_HANDLE_TYPE;
const INDEX_OUT_OF_RANGE: Status = AC_STATUS_INDEX_OUT_OF_RANGE;
const NO_SERIES: Status = AC_STATUS_NO_SERIES;
const MODEL_NOT_FOUND: Status = AC_STATUS_MODEL_NOT_FOUND;
const CANCELLED: Status = AC_STATUS_CANCELLED;

type Geometry = ac_geometry;
type Structure = ac_structure;
type LoadOptions = ac_load_options;
type ContourC = ac_contour;
type RoiC = ac_roi;
type RoiContourC = ac_roi_contour;
type Metrics = ac_metrics;
type EngineOptions = ac_engine_options;
type Api = Autocontour;

/// `libautocontour.so` of the same build as this test binary (`target/<profile>/`), refused when
/// older than a source it was built from (`cargo test` builds it, but a stale copy from another
/// build would test old code).
fn cdylib_path() -> PathBuf {
    let p = common::cdylib();
    let dir = p.parent().expect("cdylib folder");
    let stale =
        "run `cargo build -p autocontour-capi` (same profile and target dir) before these tests";
    let built = std::fs::metadata(&p)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| panic!("{} is missing: {stale}", p.display()));
    let dep_info = std::fs::read_to_string(dir.join("libautocontour.d")).unwrap_or_default();
    let sources: Vec<PathBuf> = dep_info
        .lines()
        .next()
        .and_then(|l| l.split_once(": "))
        .map(|(_, deps)| deps.split_whitespace().map(PathBuf::from).collect())
        .unwrap_or_default();
    for src in sources {
        if let Ok(t) = std::fs::metadata(&src).and_then(|m| m.modified()) {
            assert!(
                built >= t,
                "{} is older than {}: {stale}",
                p.display(),
                src.display()
            );
        }
    }
    p
}

/// The C API, resolved from the cdylib through the bindings bindgen generated from the header.
fn api() -> &'static Api {
    static API: OnceLock<Api> = OnceLock::new();
    API.get_or_init(|| {
        // SAFETY: loading our own library; its initialisers are trivial, and every symbol has the
        // signature the header (and so the generated bindings) declares.
        unsafe { Autocontour::new(cdylib_path()) }
            .expect("load the cdylib and every function of the header")
    })
}

fn cstr(p: *const c_char) -> String {
    assert!(!p.is_null());
    // SAFETY: the library returns NUL-terminated strings.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

fn last_error() -> String {
    // SAFETY: C call without arguments.
    cstr(unsafe { api().ac_last_error_message() })
}

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// Asserts a status, showing the library's message when it differs.
#[track_caller]
fn expect(status: Status, want: Status) {
    if status != want {
        // SAFETY: any integer is accepted.
        let text = cstr(unsafe { api().ac_status_str(status) });
        panic!(
            "status {status} ({text}), expected {want}: {}",
            last_error()
        );
    }
}

fn tiny_model() -> CString {
    c(common::root()
        .join("models/test/tiny-unet")
        .to_str()
        .unwrap())
}

/// A small synthetic CT (64 × 64 × 40 voxels) written once per process.
fn phantom_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        let spec = PhantomSpec {
            seed: Some("ffi".into()),
            ..PhantomSpec::default()
        };
        Phantom::new(spec)
            .unwrap()
            .write_series(d.path(), PhantomSyntax::ImplicitLittle)
            .unwrap();
        d
    })
    .path()
}

struct Session {
    engine: *mut ac_engine,
    model: *mut ac_model,
    series: *mut ac_series,
}

fn open_session() -> Session {
    let a = api();
    let ort = c(common::ort_lib().to_str().unwrap());
    // SAFETY: C calls with valid pointers throughout.
    unsafe {
        let mut o: EngineOptions = std::mem::zeroed();
        expect(a.ac_engine_options_init(&mut o), OK);
        o.ort_library = ort.as_ptr();
        o.threads = 1;
        let mut engine = null_mut();
        expect(a.ac_engine_new(&o, &mut engine), OK);
        let mut v = null();
        expect(a.ac_engine_ort_version(engine, &mut v), OK);
        assert!(cstr(v).starts_with("1."), "{}", cstr(v));
        let mut model = null_mut();
        expect(
            a.ac_model_open(engine, tiny_model().as_ptr(), &mut model),
            OK,
        );
        let dir = c(phantom_dir().to_str().unwrap());
        let mut series = null_mut();
        expect(a.ac_series_load_dir(dir.as_ptr(), null(), &mut series), OK);
        Session {
            engine,
            model,
            series,
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let a = api();
        // SAFETY: handles from open_session, freed once.
        unsafe {
            expect(a.ac_series_free(self.series), OK);
            expect(a.ac_model_free(self.model), OK);
            expect(a.ac_engine_free(self.engine), OK);
        }
    }
}

/// Segments and returns the label map and the structures' (name, voxels).
fn segment_once(s: &Session) -> (Vec<u8>, Vec<(String, u64)>) {
    let a = api();
    // SAFETY: valid handles and out pointers.
    unsafe {
        let mut r = null_mut();
        expect(
            a.ac_segment(s.model, s.series, None, null_mut(), null_mut(), &mut r),
            OK,
        );
        let (mut data, mut len) = (null(), 0usize);
        let mut g = Geometry::default();
        expect(a.ac_result_labels(r, &mut g, &mut data, &mut len), OK);
        assert_eq!(len, g.size.iter().product::<usize>());
        let labels = std::slice::from_raw_parts(data, len).to_vec();
        let mut n = 0usize;
        expect(a.ac_result_structure_count(r, &mut n), OK);
        let mut structures = Vec::new();
        for i in 0..n {
            let mut st: Structure = std::mem::zeroed();
            expect(a.ac_result_structure(r, i, &mut st), OK);
            structures.push((cstr(st.name), st.voxels));
        }
        let mut st: Structure = std::mem::zeroed();
        expect(a.ac_result_structure(r, n, &mut st), INDEX_OUT_OF_RANGE);
        expect(a.ac_result_free(r), OK);
        (labels, structures)
    }
}

#[test]
fn version_and_status_strings() {
    let a = api();
    // SAFETY: C calls without pointer arguments.
    unsafe {
        assert_eq!(cstr(a.ac_version()), autocontour::VERSION);
        assert!(cstr(a.ac_status_str(0)).starts_with("AC_STATUS_OK"));
        assert!(cstr(a.ac_status_str(409)).starts_with("AC_STATUS_CANCELLED"));
        assert_eq!(cstr(a.ac_status_str(u32::MAX)), "unknown status");
    }
}

#[test]
fn segments_writes_rtstruct_and_frees_everything() {
    let a = api();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rs.dcm");
    {
        let s = open_session();
        let mut g = Geometry::default();
        // SAFETY: valid handles and out pointers.
        unsafe {
            expect(a.ac_series_geometry(s.series, &mut g), OK);
            assert_eq!(g.size, [64, 64, 40]);
            assert_eq!(g.spacing, [4.0, 4.0, 5.0]);

            static CALLS: AtomicU32 = AtomicU32::new(0);
            unsafe extern "C" fn progress(ud: *mut c_void, stage: *const c_char, f: f64) {
                assert_eq!(ud as usize, 42);
                assert!(!stage.is_null() && (0.0..=1.0).contains(&f));
                CALLS.fetch_add(1, Ordering::SeqCst);
            }
            let mut r = null_mut();
            expect(
                a.ac_segment(
                    s.model,
                    s.series,
                    Some(progress),
                    42 as *mut c_void,
                    null_mut(),
                    &mut r,
                ),
                OK,
            );
            assert!(CALLS.load(Ordering::SeqCst) >= 2);
            let (mut provider, mut reason) = (null(), std::ptr::dangling::<c_char>());
            expect(a.ac_result_execution(r, &mut provider, &mut reason), OK);
            assert_eq!(cstr(provider), "CPU");
            assert!(reason.is_null());
            let path = c(out.to_str().unwrap());
            expect(a.ac_result_write_rtstruct(r, path.as_ptr()), OK);
            let mut buf = null_mut();
            expect(a.ac_result_rtstruct_buffer(r, &mut buf), OK);
            let (mut data, mut len) = (null(), 0usize);
            expect(a.ac_buffer_data(buf, &mut data, &mut len), OK);
            let mem = std::slice::from_raw_parts(data, len);
            let file = std::fs::read(&out).unwrap();
            assert_eq!(&mem[128..132], b"DICM");
            // Fresh UIDs (of varying length) per call: compare the parsed contents.
            let from_mem =
                autocontour::rtstruct::read_rtstruct_bytes(Path::new("mem"), mem).unwrap();
            let from_file = autocontour::rtstruct::read_rtstruct_bytes(&out, &file).unwrap();
            assert_eq!(
                from_mem.rois, from_file.rois,
                "same RTSTRUCT in memory and on disk (UIDs aside)"
            );
            expect(a.ac_buffer_free(buf), OK);
            expect(a.ac_result_free(r), OK);
        }
    }
    let rs = autocontour::rtstruct::read_rtstruct(&out).expect("the RTSTRUCT reads back");
    assert_eq!(rs.rois.len(), 2, "one ROI per tiny-unet structure");
}

#[test]
fn log_records_reach_the_callback_only_when_asked() {
    static RECORDS: std::sync::Mutex<Vec<(u32, String, String)>> =
        std::sync::Mutex::new(Vec::new());
    unsafe extern "C" fn on_log(
        ud: *mut c_void,
        level: u32,
        target: *const c_char,
        msg: *const c_char,
    ) {
        assert_eq!(ud as usize, 7);
        RECORDS
            .lock()
            .unwrap()
            .push((level, cstr(target), cstr(msg)));
    }
    let a = api();
    // SAFETY: a valid callback; levels checked by the library.
    unsafe {
        expect(a.ac_set_log_callback(Some(on_log), 7 as *mut c_void, 9), 6);
        expect(a.ac_set_log_callback(Some(on_log), 7 as *mut c_void, 3), OK);
    }
    drop(open_session());
    // SAFETY: turning forwarding off.
    unsafe { expect(a.ac_set_log_callback(None, null_mut(), 0), OK) };
    let records = RECORDS.lock().unwrap().clone();
    assert!(
        records
            .iter()
            .any(|(l, t, m)| *l == 3 && t.starts_with("autocontour") && m.contains("tiny-unet")),
        "no info record about the model: {records:?}"
    );
    assert!(
        records.iter().all(|(l, _, _)| (1..=3).contains(l)),
        "{records:?}"
    );
}

/// 8 threads × 2 segmentations on one model give the same label map as a single run.
#[test]
fn eight_threads_share_one_model() {
    let s = open_session();
    let reference = segment_once(&s);
    assert!(
        reference.0.iter().any(|&l| l != 0),
        "tiny-unet labels something"
    );
    let (model, series) = (s.model as usize, s.series as usize);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(move || {
                    let s = Session {
                        engine: null_mut(),
                        model: model as *mut ac_model,
                        series: series as *mut ac_series,
                    };
                    let out = (segment_once(&s), segment_once(&s));
                    std::mem::forget(s); // owned by the outer session
                    out
                })
            })
            .collect();
        for h in handles {
            let (x, y) = h.join().expect("thread");
            assert!(
                x == reference && y == reference,
                "outputs differ between threads"
            );
        }
    });
}

/// Copies a library buffer's bytes and frees it.
/// A site profile and an audit log through `ac_segment_with_options`: names from the profile,
/// a left-out structure not written, the audit record with the RTSTRUCT's SOP Instance UID,
/// appended when the result is freed; an invalid profile is `AC_STATUS_INVALID_PROFILE` with a
/// failure line in the log.
#[test]
fn profile_and_audit_log_through_the_c_api() {
    let a = api();
    let s = open_session();
    let t = tempfile::tempdir().unwrap();
    let profile = t.path().join("p.toml");
    std::fs::write(
        &profile,
        "name = \"ffi\"\n[[model]]\nname = \"tiny-unet\"\ninclude = [\"Alpha\"]\nsuffix = \"_AI\"\n\
         approval_status = \"UNAPPROVED\"\n[model.structures.Alpha]\nname = \"Organ\"\ncolor = [1, 2, 3]\n",
    )
    .unwrap();
    let log = t.path().join("audit.jsonl");
    let rs = t.path().join("rs.dcm");
    let (pc, lc, rc) = (
        c(profile.to_str().unwrap()),
        c(log.to_str().unwrap()),
        c(rs.to_str().unwrap()),
    );
    // SAFETY: valid handles, options and out pointers.
    unsafe {
        let mut o: ac_segment_options = std::mem::zeroed();
        expect(a.ac_segment_options_init(&mut o), OK);
        assert!(o.profile_path.is_null() && o.audit_log_path.is_null());
        o.profile_path = pc.as_ptr();
        o.audit_log_path = lc.as_ptr();
        let mut r = null_mut();
        expect(
            a.ac_segment_with_options(s.model, s.series, &o, None, null_mut(), null_mut(), &mut r),
            OK,
        );
        let mut st: Structure = std::mem::zeroed();
        expect(a.ac_result_structure(r, 0, &mut st), OK);
        assert_eq!(cstr(st.name), "Organ_AI");
        let (mut w0, mut w1) = (false, true);
        expect(a.ac_result_structure_written(r, 0, &mut w0), OK);
        expect(a.ac_result_structure_written(r, 1, &mut w1), OK);
        assert!(w0 && !w1);
        expect(a.ac_result_write_rtstruct(r, rc.as_ptr()), OK);
        let mut b = null_mut();
        expect(a.ac_result_audit_record(r, &mut b), OK);
        let rec: serde_json::Value = serde_json::from_slice(&take_buffer(b)).unwrap();
        assert_eq!(rec["status"], "ok");
        assert_eq!(rec["profile"]["name"], "ffi");
        assert_eq!(rec["outputs"][0]["kind"], "rtstruct");
        assert!(
            !log.exists(),
            "the line is appended when the result is freed"
        );
        expect(a.ac_result_free(r), OK);
        let rtstruct = autocontour::rtstruct::read_rtstruct(&rs).unwrap();
        let names: Vec<&str> = rtstruct.rois.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names, ["Organ_AI"]);
        assert_eq!(rtstruct.rois[0].color, Some([1, 2, 3]));
        let line: serde_json::Value =
            serde_json::from_str(std::fs::read_to_string(&log).unwrap().trim()).unwrap();
        assert_eq!(
            line["outputs"][0]["sop_instance_uid"].as_str(),
            rtstruct.sop_instance_uid.as_deref()
        );

        // an invalid profile: refused before inference, a failure line appended
        std::fs::write(
            &profile,
            "name = \"bad\"\n[[model]]\nname = \"tiny-unet\"\ninclude = [\"Gamma\"]\n",
        )
        .unwrap();
        let mut r = null_mut();
        expect(
            a.ac_segment_with_options(s.model, s.series, &o, None, null_mut(), null_mut(), &mut r),
            AC_STATUS_INVALID_PROFILE,
        );
        assert!(r.is_null());
        assert!(last_error().contains("Gamma"), "{}", last_error());
        let text = std::fs::read_to_string(&log).unwrap();
        let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert_eq!(last["status"], "failed");
        assert_eq!(last["error_code"], "InvalidProfile");
    }
}

fn take_buffer(b: *mut ac_buffer) -> Vec<u8> {
    let a = api();
    // SAFETY: a live buffer handle; its bytes are copied before it is freed.
    unsafe {
        let (mut data, mut len) = (null(), 0usize);
        expect(a.ac_buffer_data(b, &mut data, &mut len), OK);
        let v = std::slice::from_raw_parts(data, len).to_vec();
        expect(a.ac_buffer_free(b), OK);
        v
    }
}

fn rust_geometry(g: &Geometry) -> autocontour::volume::Geometry {
    let d = g.direction;
    autocontour::volume::Geometry::new(
        g.size,
        g.origin,
        g.spacing,
        [[d[0], d[1], d[2]], [d[3], d[4], d[5]], [d[6], d[7], d[8]]],
    )
    .unwrap()
}

/// RIDER from in-memory buffers equals RIDER from its folder; load options; the RIDER RTSTRUCT
/// read through the C API equals the Rust reader's view, its GTVs rasterise to the Rust masks,
/// and the C metrics equal `metrics::compare_masks` on them.
#[test]
fn rider_buffers_rtstruct_reading_and_metrics() {
    const TOO_LARGE: Status = 305;
    const INVALID_ARGUMENT: Status = 6;
    const SERIES_NOT_FOUND: Status = 206;
    const NOT_DICOM: Status = 201;
    const ROI_NOT_FOUND: Status = 208;
    let a = api();
    let ct_dir = common::require("rider/ct");
    let rs_path = common::require("rider/rtstruct.dcm");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&ct_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "dcm")) // not the LICENSE file
        .collect();
    files.sort();
    let rs_bytes = std::fs::read(&rs_path).unwrap();
    // SAFETY: C calls with valid pointers and live handles throughout.
    unsafe {
        let dir = c(ct_dir.to_str().unwrap());
        let mut folder = null_mut();
        expect(a.ac_series_load_dir(dir.as_ptr(), null(), &mut folder), OK);
        let mut g_folder = Geometry::default();
        expect(a.ac_series_geometry(folder, &mut g_folder), OK);
        assert_eq!(g_folder.size, [512, 512, 236]);

        // The same files as buffers, in reverse order, with the RTSTRUCT among them (another
        // series: ignored). Each buffer is dropped right after the call: the builder copies.
        let mut b = null_mut();
        expect(a.ac_series_builder_new(&mut b), OK);
        for f in files.iter().rev() {
            let bytes = std::fs::read(f).unwrap();
            let name = c(&f.file_name().unwrap().to_string_lossy());
            expect(
                a.ac_series_builder_add_buffer(b, bytes.as_ptr(), bytes.len(), name.as_ptr()),
                OK,
            );
        }
        expect(
            a.ac_series_builder_add_buffer(b, rs_bytes.as_ptr(), rs_bytes.len(), null()),
            OK,
        );
        let mut n = 0usize;
        expect(a.ac_series_builder_count(b, &mut n), OK);
        assert_eq!(n, files.len() + 1);
        let mut opts: LoadOptions = std::mem::zeroed();
        expect(a.ac_load_options_init(&mut opts), OK);
        assert_eq!(
            (
                opts.gap_tolerance_mm,
                opts.tilt_tolerance_mm,
                opts.max_voxels
            ),
            (0.1, 0.05, 1024 * 1024 * 2048)
        );
        let mut mem = null_mut();
        expect(a.ac_series_builder_build(b, null(), &opts, &mut mem), OK);
        let mut g_mem = Geometry::default();
        expect(a.ac_series_geometry(mem, &mut g_mem), OK);
        assert_eq!(g_mem, g_folder, "same geometry from buffers and folder");
        let (mut v1, mut n1, mut v2, mut n2) = (null(), 0usize, null(), 0usize);
        expect(a.ac_series_voxels(folder, &mut v1, &mut n1), OK);
        expect(a.ac_series_voxels(mem, &mut v2, &mut n2), OK);
        assert_eq!(n1, n2);
        assert!(
            std::slice::from_raw_parts(v1, n1) == std::slice::from_raw_parts(v2, n2),
            "same HU volume from buffers and folder"
        );
        let (mut u1, mut u2) = (null(), null());
        expect(a.ac_series_uid(folder, &mut u1), OK);
        expect(a.ac_series_uid(mem, &mut u2), OK);
        assert_eq!(cstr(u1), cstr(u2));
        expect(a.ac_series_free(mem), OK);

        // Load options: a voxel limit below the CT's size, a bad tolerance, a missing UID.
        let mut small = opts;
        small.max_voxels = 1000;
        let mut h = null_mut();
        expect(
            a.ac_series_builder_build(b, null(), &small, &mut h),
            TOO_LARGE,
        );
        expect(
            a.ac_series_load_dir_with_options(dir.as_ptr(), null(), &small, &mut h),
            TOO_LARGE,
        );
        let mut bad = opts;
        bad.gap_tolerance_mm = -1.0;
        expect(
            a.ac_series_builder_build(b, null(), &bad, &mut h),
            INVALID_ARGUMENT,
        );
        assert!(
            last_error().contains("gap_tolerance_mm"),
            "{}",
            last_error()
        );
        let nowhere = c("1.2.3.4");
        expect(
            a.ac_series_builder_build(b, nowhere.as_ptr(), null(), &mut h),
            SERIES_NOT_FOUND,
        );
        // A buffer that is not DICOM fails the build, named.
        let junk = b"certainly not a DICOM file";
        expect(
            a.ac_series_builder_add_buffer(b, junk.as_ptr(), junk.len(), null()),
            OK,
        );
        expect(
            a.ac_series_builder_build(b, null(), null(), &mut h),
            NOT_DICOM,
        );
        let want = format!("buffer #{}", files.len() + 2);
        assert!(last_error().contains(&want), "{}", last_error());
        assert!(h.is_null());
        expect(a.ac_series_builder_free(b), OK);

        // RTSTRUCT reading, from the file and from memory, against the Rust reader.
        let rust = autocontour::rtstruct::read_rtstruct(&rs_path).unwrap();
        let p = c(rs_path.to_str().unwrap());
        let (mut from_file, mut from_mem) = (null_mut(), null_mut());
        expect(a.ac_rtstruct_open(p.as_ptr(), &mut from_file), OK);
        expect(
            a.ac_rtstruct_open_buffer(rs_bytes.as_ptr(), rs_bytes.len(), &mut from_mem),
            OK,
        );
        for rs in [from_file, from_mem] {
            let mut n = 0usize;
            expect(a.ac_rtstruct_roi_count(rs, &mut n), OK);
            assert_eq!(n, rust.rois.len());
            for (i, want) in rust.rois.iter().enumerate() {
                let mut roi: RoiC = std::mem::zeroed();
                expect(a.ac_rtstruct_roi(rs, i, &mut roi), OK);
                assert_eq!(cstr(roi.name), want.name);
                assert_eq!(roi.number, want.number);
                assert_eq!(roi.has_color.then_some(roi.color), want.color);
                assert_eq!(
                    cstr(roi.interpreted_type),
                    want.interpreted_type.clone().unwrap_or_default()
                );
                assert_eq!(roi.contour_count, want.contours.len());
                // Every contour's points, type and referenced image equal the Rust reader's.
                for (k, wc) in want.contours.iter().enumerate() {
                    let mut rc: RoiContourC = std::mem::zeroed();
                    expect(a.ac_rtstruct_contour(rs, i, k, &mut rc), OK);
                    assert_eq!(cstr(rc.geometric_type), wc.geometric_type);
                    assert_eq!(
                        cstr(rc.referenced_sop_instance_uid),
                        wc.referenced_sop_instance_uid.clone().unwrap_or_default()
                    );
                    let pts = std::slice::from_raw_parts(rc.points, 3 * rc.point_count);
                    let flat: Vec<f64> = wc.points.iter().flatten().copied().collect();
                    assert_eq!(pts, flat.as_slice(), "ROI {i} contour {k}");
                }
                let mut rc: RoiContourC = std::mem::zeroed();
                expect(
                    a.ac_rtstruct_contour(rs, i, want.contours.len(), &mut rc),
                    INDEX_OUT_OF_RANGE,
                );
            }
            let mut roi: RoiC = std::mem::zeroed();
            expect(a.ac_rtstruct_roi(rs, n, &mut roi), INDEX_OUT_OF_RANGE);
            let mut rc: RoiContourC = std::mem::zeroed();
            expect(a.ac_rtstruct_contour(rs, n, 0, &mut rc), INDEX_OUT_OF_RANGE);
        }
        // Without the 128-byte preamble, and without "DICM" too (file meta first): the same.
        for skip in [128, 132] {
            let mut bare = null_mut();
            let rest = &rs_bytes[skip..];
            expect(
                a.ac_rtstruct_open_buffer(rest.as_ptr(), rest.len(), &mut bare),
                OK,
            );
            let mut n_bare = 0usize;
            expect(a.ac_rtstruct_roi_count(bare, &mut n_bare), OK);
            assert_eq!(n_bare, rust.rois.len());
            expect(a.ac_rtstruct_free(bare), OK);
        }
        let mut idx = 0usize;
        let lower = c("gtvp_test_man");
        expect(
            a.ac_rtstruct_find_roi(from_mem, lower.as_ptr(), &mut idx),
            OK,
        );
        assert_eq!(rust.rois[idx].name, "GTVp_test_man");
        let none = c("Spinal cord");
        expect(
            a.ac_rtstruct_find_roi(from_mem, none.as_ptr(), &mut idx),
            ROI_NOT_FOUND,
        );
        assert!(last_error().contains("GTVp_test_auto"), "{}", last_error());

        // Rasterised GTVs equal the Rust masks; C metrics equal the Rust metrics.
        let g = rust_geometry(&g_folder);
        let mut masks = Vec::new();
        for name in ["GTVp_test_man", "GTVp_test_auto"] {
            let nm = c(name);
            expect(a.ac_rtstruct_find_roi(from_file, nm.as_ptr(), &mut idx), OK);
            let mut m = null_mut();
            expect(a.ac_rtstruct_rasterise(from_file, idx, folder, &mut m), OK);
            let mask = take_buffer(m);
            let want = autocontour::rtstruct::rasterise_roi(
                rust.roi(name).unwrap(),
                &g,
                &autocontour::rtstruct::RasterOptions::default(),
            )
            .unwrap();
            assert!(
                mask == want.data(),
                "{name}: C mask differs from the Rust mask"
            );
            assert!(mask.contains(&1));
            masks.push(mask);
        }
        let mut m = Metrics::default();
        expect(
            a.ac_compare_masks(
                masks[0].as_ptr(),
                masks[1].as_ptr(),
                masks[0].len(),
                &g_folder,
                1.0,
                &mut m,
            ),
            OK,
        );
        let want = autocontour::metrics::compare_masks(&masks[0], &masks[1], &g, 1.0).unwrap();
        assert_eq!(
            m,
            Metrics {
                reference_volume_mm3: want.reference_volume_mm3,
                test_volume_mm3: want.test_volume_mm3,
                volume_difference_mm3: want.volume_difference_mm3,
                dice: want.dice,
                jaccard: want.jaccard,
                hausdorff_mm: want.hausdorff_mm,
                hd95_mm: want.hd95_mm,
                mean_distance_reference_to_test_mm: want.mean_distance_reference_to_test_mm,
                mean_distance_test_to_reference_mm: want.mean_distance_test_to_reference_mm,
                assd_mm: want.assd_mm,
                surface_dice: want.surface_dice,
                tolerance_mm: 1.0,
            }
        );
        assert!(m.dice > 0.5 && m.dice < 1.0 && m.hd95_mm > 0.0, "{m:?}");
        println!("RIDER GTVp_test_man vs GTVp_test_auto through ac_compare_masks: {m:?}");
        expect(
            a.ac_compare_masks(
                masks[0].as_ptr(),
                masks[1].as_ptr(),
                masks[0].len() - 1,
                &g_folder,
                1.0,
                &mut m,
            ),
            INVALID_ARGUMENT,
        );
        expect(
            a.ac_compare_masks(
                masks[0].as_ptr(),
                masks[1].as_ptr(),
                masks[0].len(),
                &g_folder,
                f64::NAN,
                &mut m,
            ),
            INVALID_ARGUMENT,
        );
        expect(a.ac_rtstruct_free(from_file), OK);
        expect(a.ac_rtstruct_free(from_mem), OK);
        expect(a.ac_series_free(folder), OK);
    }
}

/// Contours through the C API equal the RTSTRUCT's; SEG, RTSTRUCT and NIfTI in memory equal
/// the files written to paths.
#[test]
fn contours_and_outputs_in_memory_match_files() {
    let a = api();
    let dir = tempfile::tempdir().unwrap();
    let s = open_session();
    // SAFETY: C calls with valid pointers and live handles throughout.
    unsafe {
        let mut r = null_mut();
        expect(
            a.ac_segment(s.model, s.series, None, null_mut(), null_mut(), &mut r),
            OK,
        );
        let mut g = Geometry::default();
        let (mut data, mut len) = (null(), 0usize);
        expect(a.ac_result_labels(r, &mut g, &mut data, &mut len), OK);
        let labels = std::slice::from_raw_parts(data, len).to_vec();
        let geometry = rust_geometry(&g);

        let rs_path = dir.path().join("rs.dcm");
        let p = c(rs_path.to_str().unwrap());
        expect(a.ac_result_write_rtstruct(r, p.as_ptr()), OK);
        let file_rs = autocontour::rtstruct::read_rtstruct(&rs_path).unwrap();

        let mut n = 0usize;
        expect(a.ac_result_structure_count(r, &mut n), OK);
        let mut total = 0;
        for i in 0..n {
            let mut st: Structure = std::mem::zeroed();
            expect(a.ac_result_structure(r, i, &mut st), OK);
            let roi = file_rs.roi(&cstr(st.name)).unwrap();
            let mut count = 0usize;
            expect(a.ac_result_contour_count(r, i, &mut count), OK);
            assert_eq!(count, roi.contours.len(), "{}", cstr(st.name));
            if st.voxels > 0 {
                assert!(count > 0, "{} has voxels but no contour", cstr(st.name));
            }
            for (k, want) in roi.contours.iter().enumerate() {
                let mut ct = ContourC {
                    slice: 0,
                    point_count: 0,
                    points: null(),
                };
                expect(a.ac_result_contour(r, i, k, &mut ct), OK);
                assert!(ct.point_count >= 3);
                let pts = std::slice::from_raw_parts(ct.points, 3 * ct.point_count);
                assert_eq!(ct.point_count, want.points.len());
                for (p, q) in pts.chunks_exact(3).zip(&want.points) {
                    for d in 0..3 {
                        // The file holds them with 3 decimals.
                        assert!((p[d] - q[d]).abs() <= 5.01e-4, "{p:?} vs {q:?}");
                    }
                    let idx = geometry.patient_to_index([p[0], p[1], p[2]]);
                    assert!(
                        (idx[2] - ct.slice as f64).abs() < 1e-6,
                        "{idx:?} on {}",
                        ct.slice
                    );
                    // On the boundary of this structure's voxels (edge tracing), inside the grid.
                    assert!(idx[0] >= -0.5 - 1e-9 && idx[0] <= g.size[0] as f64 - 0.5 + 1e-9);
                    assert!(idx[1] >= -0.5 - 1e-9 && idx[1] <= g.size[1] as f64 - 0.5 + 1e-9);
                }
                total += 1;
            }
            let mut ct: ContourC = std::mem::zeroed();
            expect(
                a.ac_result_contour(r, i, count, &mut ct),
                INDEX_OUT_OF_RANGE,
            );
        }
        assert!(total > 0, "tiny-unet contours something");
        assert!(labels.iter().any(|&l| l != 0));
        let mut count = 0usize;
        expect(
            a.ac_result_contour_count(r, n, &mut count),
            INDEX_OUT_OF_RANGE,
        );

        // RTSTRUCT in memory: same ROIs and contours as the file.
        let mut buf = null_mut();
        expect(a.ac_result_rtstruct_buffer(r, &mut buf), OK);
        let mem = take_buffer(buf);
        let mem_rs = autocontour::rtstruct::read_rtstruct_bytes(Path::new("mem"), &mem).unwrap();
        assert_eq!(mem_rs.rois, file_rs.rois);
        assert_ne!(
            mem_rs.sop_instance_uid, file_rs.sop_instance_uid,
            "fresh UIDs"
        );

        // SEG: same frames, segments and pixel data.
        let seg_path = dir.path().join("seg.dcm");
        let p = c(seg_path.to_str().unwrap());
        expect(a.ac_result_write_seg(r, p.as_ptr()), OK);
        let mut buf = null_mut();
        expect(a.ac_result_seg_buffer(r, &mut buf), OK);
        let mem = take_buffer(buf);
        assert_eq!(&mem[128..132], b"DICM");
        let file_obj = dicom_object::open_file(&seg_path).unwrap();
        let mem_obj = dicom_object::OpenFileOptions::new()
            .read_preamble(dicom_object::file::ReadPreamble::Always)
            .from_reader(&mem[..])
            .unwrap();
        use dicom_dictionary_std::tags;
        for tag in [
            tags::SOP_CLASS_UID,
            tags::NUMBER_OF_FRAMES,
            tags::ROWS,
            tags::COLUMNS,
            tags::SERIES_DESCRIPTION,
            tags::FRAME_OF_REFERENCE_UID,
            tags::PIXEL_DATA,
        ] {
            let x = file_obj.element(tag).unwrap().to_bytes().unwrap();
            let y = mem_obj.element(tag).unwrap().to_bytes().unwrap();
            assert!(x == y, "SEG {tag:?} differs between file and buffer");
        }
        let segments = |o: &dicom_object::DefaultDicomObject| {
            o.element(tags::SEGMENT_SEQUENCE)
                .unwrap()
                .items()
                .unwrap()
                .iter()
                .map(|it| {
                    it.element(tags::SEGMENT_LABEL)
                        .unwrap()
                        .to_str()
                        .unwrap()
                        .to_string()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(segments(&file_obj), segments(&mem_obj));
        assert_eq!(segments(&mem_obj).len(), n);

        // NIfTI: the exact bytes of the file, plain and gzipped.
        for (name, gz) in [("labels.nii", false), ("labels.nii.gz", true)] {
            let path = dir.path().join(name);
            let p = c(path.to_str().unwrap());
            expect(a.ac_result_write_nifti(r, p.as_ptr()), OK);
            let mut buf = null_mut();
            expect(a.ac_result_nifti_buffer(r, gz, &mut buf), OK);
            let mem = take_buffer(buf);
            assert!(
                mem == std::fs::read(&path).unwrap(),
                "{name}: buffer != file"
            );
            if !gz {
                assert_eq!(mem.len(), 352 + labels.len());
                assert!(mem[352..] == labels[..]);
            }
        }
        let back =
            autocontour::nifti::read_nifti_labels(&dir.path().join("labels.nii.gz")).unwrap();
        assert!(back.data() == &labels[..]);
        expect(a.ac_result_free(r), OK);
    }
}

// ---- crash cases, each in a child process ----

const CASES: &[&str] = &[
    "null_pointers",
    "double_free",
    "wrong_handle_type",
    "invalid_utf8",
    "use_after_free",
    "cancel_mid_run",
    "limits",
];

#[test]
fn crash_cases_return_a_status() {
    let exe = std::env::current_exe().unwrap();
    for case in CASES {
        let out = Command::new(&exe)
            .args([
                "--exact",
                "child_case",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("AC_FFI_CASE", case)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && text.contains(&format!("case {case} ok")),
            "case {case} failed ({:?}):\n{text}",
            out.status
        );
    }
}

#[test]
#[ignore = "run by crash_cases_return_a_status in a child process"]
fn child_case() {
    let case = std::env::var("AC_FFI_CASE").expect("AC_FFI_CASE");
    let a = api();
    // SAFETY: every call below passes what the case says (NULL, freed or foreign handles,
    // bad strings): the library must answer each with a status.
    unsafe {
        match case.as_str() {
            "null_pointers" => {
                expect(a.ac_engine_options_init(null_mut()), NULL_ARGUMENT);
                expect(a.ac_engine_new(null(), null_mut()), NULL_ARGUMENT);
                expect(
                    a.ac_model_open(null_mut(), null(), null_mut()),
                    NULL_ARGUMENT,
                );
                let mut h: *mut c_void = null_mut();
                expect(
                    a.ac_model_open(null_mut(), tiny_model().as_ptr(), (&raw mut h).cast()),
                    NULL_ARGUMENT,
                );
                assert!(h.is_null(), "outputs untouched on failure");
                expect(
                    a.ac_series_load_dir(null(), null(), (&raw mut h).cast()),
                    NULL_ARGUMENT,
                );
                expect(
                    a.ac_segment(
                        null_mut(),
                        null_mut(),
                        None,
                        null_mut(),
                        null_mut(),
                        (&raw mut h).cast(),
                    ),
                    NULL_ARGUMENT,
                );
                expect(a.ac_series_geometry(null_mut(), null_mut()), NULL_ARGUMENT);
                expect(
                    a.ac_result_labels(null_mut(), null_mut(), null_mut(), null_mut()),
                    NULL_ARGUMENT,
                );
                expect(a.ac_cancel_token_cancel(null_mut()), NULL_ARGUMENT);
                expect(
                    a.ac_buffer_data(null_mut(), null_mut(), null_mut()),
                    NULL_ARGUMENT,
                );
                expect(a.ac_load_options_init(null_mut()), NULL_ARGUMENT);
                expect(a.ac_series_builder_new(null_mut()), NULL_ARGUMENT);
                let mut b = null_mut();
                expect(a.ac_series_builder_new(&mut b), OK);
                expect(
                    a.ac_series_builder_add_buffer(b, null(), 10, null()),
                    NULL_ARGUMENT,
                );
                expect(
                    a.ac_series_builder_add_buffer(b, b"x".as_ptr(), 0, null()),
                    6,
                );
                expect(
                    a.ac_series_builder_build(b, null(), null(), null_mut()),
                    NULL_ARGUMENT,
                );
                expect(
                    a.ac_series_builder_build(b, null(), null(), (&raw mut h).cast()),
                    NO_SERIES,
                );
                expect(a.ac_series_builder_free(b), OK);
                expect(
                    a.ac_rtstruct_open(null(), (&raw mut h).cast()),
                    NULL_ARGUMENT,
                );
                expect(
                    a.ac_rtstruct_open_buffer(null(), 5, (&raw mut h).cast()),
                    NULL_ARGUMENT,
                );
                expect(
                    a.ac_rtstruct_roi_count(null_mut(), null_mut()),
                    NULL_ARGUMENT,
                );
                expect(
                    a.ac_rtstruct_rasterise(null_mut(), 0, null_mut(), (&raw mut h).cast()),
                    NULL_ARGUMENT,
                );
                expect(
                    a.ac_result_contour(null_mut(), 0, 0, &mut std::mem::zeroed()),
                    NULL_ARGUMENT,
                );
                expect(
                    a.ac_result_seg_buffer(null_mut(), (&raw mut h).cast()),
                    NULL_ARGUMENT,
                );
                expect(
                    a.ac_result_nifti_buffer(null_mut(), true, (&raw mut h).cast()),
                    NULL_ARGUMENT,
                );
                let g = Geometry::default();
                expect(
                    a.ac_compare_masks(null(), null(), 0, &g, 1.0, &mut Metrics::default()),
                    NULL_ARGUMENT,
                );
                expect(
                    a.ac_compare_masks(b"x".as_ptr(), b"x".as_ptr(), 1, null(), 1.0, null_mut()),
                    NULL_ARGUMENT,
                );
                for st in [
                    a.ac_engine_free(null_mut()),
                    a.ac_model_free(null_mut()),
                    a.ac_series_free(null_mut()),
                    a.ac_result_free(null_mut()),
                    a.ac_cancel_token_free(null_mut()),
                    a.ac_buffer_free(null_mut()),
                    a.ac_series_builder_free(null_mut()),
                    a.ac_rtstruct_free(null_mut()),
                ] {
                    expect(st, OK);
                }
                assert!(last_error().contains("is NULL"), "{}", last_error());
                // Garbage bytes as an RTSTRUCT: a status, not a crash.
                let junk = [0x08u8, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x01];
                let st = a.ac_rtstruct_open_buffer(junk.as_ptr(), junk.len(), (&raw mut h).cast());
                assert!(st == 201 || st == 202 || st == 203, "status {st}");
                assert!(h.is_null(), "outputs untouched on failure");
            }
            "double_free" => {
                let mut t = null_mut();
                expect(a.ac_cancel_token_new(&mut t), OK);
                expect(a.ac_cancel_token_free(t), OK);
                expect(a.ac_cancel_token_free(t), INVALID_HANDLE);
                assert!(last_error().contains("not a live"), "{}", last_error());
                let s = open_session();
                let mut r = null_mut();
                expect(
                    a.ac_segment(s.model, s.series, None, null_mut(), null_mut(), &mut r),
                    OK,
                );
                expect(a.ac_result_free(r), OK);
                expect(a.ac_result_free(r), INVALID_HANDLE);
                let m = s.model;
                drop(s);
                expect(a.ac_model_free(m), INVALID_HANDLE);
                assert_eq!(a.ac_live_handle_count(), 0, "nothing leaked");
            }
            "wrong_handle_type" => {
                let mut t = null_mut();
                expect(a.ac_cancel_token_new(&mut t), OK);
                let mut r = null_mut();
                expect(
                    a.ac_segment(t.cast(), t.cast(), None, null_mut(), null_mut(), &mut r),
                    WRONG_HANDLE_TYPE,
                );
                expect(a.ac_model_free(t.cast()), WRONG_HANDLE_TYPE);
                expect(a.ac_series_free(t.cast()), WRONG_HANDLE_TYPE);
                let mut g = Geometry::default();
                expect(a.ac_series_geometry(t.cast(), &mut g), WRONG_HANDLE_TYPE);
                expect(
                    a.ac_series_builder_add_buffer(t.cast(), b"x".as_ptr(), 1, null()),
                    WRONG_HANDLE_TYPE,
                );
                let mut n = 0usize;
                expect(a.ac_rtstruct_roi_count(t.cast(), &mut n), WRONG_HANDLE_TYPE);
                expect(
                    a.ac_result_contour_count(t.cast(), 0, &mut n),
                    WRONG_HANDLE_TYPE,
                );
                expect(a.ac_rtstruct_free(t.cast()), WRONG_HANDLE_TYPE);
                assert!(last_error().contains("ac_cancel_token"), "{}", last_error());
                // A garbage pointer, never handed out.
                expect(
                    a.ac_cancel_token_cancel(0xdead_beef_usize as *const ac_cancel_token),
                    INVALID_HANDLE,
                );
                expect(a.ac_result_free(8 as *mut ac_result), INVALID_HANDLE);
                expect(a.ac_cancel_token_free(t), OK);
            }
            "invalid_utf8" => {
                let bad = b"/tmp/\xff\xfe-ct\0";
                let mut h = null_mut();
                expect(
                    a.ac_series_load_dir(bad.as_ptr().cast(), null(), &mut h),
                    INVALID_UTF8,
                );
                assert!(last_error().contains("`dir`"), "{}", last_error());
                let s = open_session();
                expect(
                    a.ac_model_open(s.engine, bad.as_ptr().cast(), (&raw mut h).cast()),
                    INVALID_UTF8,
                );
                let good = c(phantom_dir().to_str().unwrap());
                expect(
                    a.ac_series_load_dir(good.as_ptr(), bad.as_ptr().cast(), &mut h),
                    INVALID_UTF8,
                );
                let mut r = null_mut();
                expect(
                    a.ac_segment(s.model, s.series, None, null_mut(), null_mut(), &mut r),
                    OK,
                );
                expect(
                    a.ac_result_write_rtstruct(r, bad.as_ptr().cast()),
                    INVALID_UTF8,
                );
                expect(a.ac_result_free(r), OK);
                // Named errors for paths that do not exist.
                let nowhere = c("/nonexistent/autocontour");
                expect(
                    a.ac_model_open(s.engine, nowhere.as_ptr(), (&raw mut h).cast()),
                    MODEL_NOT_FOUND,
                );
                let empty = tempfile::tempdir().unwrap();
                let e = c(empty.path().to_str().unwrap());
                expect(a.ac_series_load_dir(e.as_ptr(), null(), &mut h), NO_SERIES);
                assert!(h.is_null());
            }
            "use_after_free" => {
                let s = open_session();
                let mut r = null_mut();
                expect(
                    a.ac_segment(s.model, s.series, None, null_mut(), null_mut(), &mut r),
                    OK,
                );
                expect(a.ac_result_free(r), OK);
                let mut n = 0usize;
                expect(a.ac_result_structure_count(r, &mut n), INVALID_HANDLE);
                let path = c("/tmp/never-written.dcm");
                expect(a.ac_result_write_rtstruct(r, path.as_ptr()), INVALID_HANDLE);
                assert!(!Path::new("/tmp/never-written.dcm").exists());
            }
            "cancel_mid_run" => {
                let s = open_session();
                let mut t = null_mut();
                expect(a.ac_cancel_token_new(&mut t), OK);
                static IN_INFERENCE: AtomicBool = AtomicBool::new(false);
                static CANCELLED_FLAG: AtomicBool = AtomicBool::new(false);
                // Blocks the run inside its first inference report until the other thread has
                // cancelled, so the cancel lands mid-run every time.
                unsafe extern "C" fn progress(_: *mut c_void, stage: *const c_char, _: f64) {
                    // SAFETY: the library passes a NUL-terminated stage name.
                    let stage = unsafe { CStr::from_ptr(stage) };
                    if stage.to_bytes() == b"inference" {
                        IN_INFERENCE.store(true, Ordering::SeqCst);
                        while !CANCELLED_FLAG.load(Ordering::SeqCst) {
                            std::thread::yield_now();
                        }
                    }
                }
                let token = t as usize;
                let canceller = std::thread::spawn(move || {
                    while !IN_INFERENCE.load(Ordering::SeqCst) {
                        std::thread::yield_now();
                    }
                    // A live token handle (inside the case's unsafe block).
                    let st = api().ac_cancel_token_cancel(token as *const ac_cancel_token);
                    CANCELLED_FLAG.store(true, Ordering::SeqCst);
                    st
                });
                let mut r = null_mut();
                let st = a.ac_segment(s.model, s.series, Some(progress), null_mut(), t, &mut r);
                expect(canceller.join().unwrap(), OK);
                expect(st, CANCELLED);
                assert!(r.is_null());
                // An already cancelled token stops the next run at once.
                expect(
                    a.ac_segment(s.model, s.series, None, null_mut(), t, &mut r),
                    CANCELLED,
                );
                expect(a.ac_cancel_token_free(t), OK);
            }
            // The process-wide limits (a child process, so other tests keep the defaults).
            "limits" => {
                const LIMIT_EXCEEDED: Status = 212;
                const INVALID_ARGUMENT: Status = 6;
                let mut l: ac_limits = std::mem::zeroed();
                expect(a.ac_limits_get(&mut l), OK);
                assert_eq!(l.max_sequence_depth, 64);
                assert_eq!(l.max_voxels, 1024 * 1024 * 2048);
                assert_eq!(l.max_contour_points_total, 100_000_000);
                expect(a.ac_limits_get(null_mut()), NULL_ARGUMENT);
                expect(a.ac_limits_set(null()), NULL_ARGUMENT);
                // Refused settings change nothing.
                let mut bad = l;
                bad.max_file_bytes = 0;
                expect(a.ac_limits_set(&bad), INVALID_ARGUMENT);
                assert!(
                    last_error().contains("max_file_bytes is 0"),
                    "{}",
                    last_error()
                );
                bad = l;
                bad.max_sequence_depth = 257;
                expect(a.ac_limits_set(&bad), INVALID_ARGUMENT);
                let mut now: ac_limits = std::mem::zeroed();
                expect(a.ac_limits_get(&mut now), OK);
                assert_eq!(now.max_file_bytes, l.max_file_bytes);
                assert_eq!(now.max_sequence_depth, 64);

                // The load options' voxel default follows the limit.
                let mut small = l;
                small.max_voxels = 1000;
                expect(a.ac_limits_set(&small), OK);
                let mut lo = LoadOptions::default();
                expect(a.ac_load_options_init(&mut lo), OK);
                assert_eq!(lo.max_voxels, 1000);
                expect(a.ac_limits_set(&l), OK);

                // A buffer over max_file_bytes, by name.
                let first = std::fs::read_dir(phantom_dir())
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .min()
                    .unwrap();
                let bytes = std::fs::read(&first).unwrap();
                let mut tight = l;
                tight.max_file_bytes = (bytes.len() - 1) as u64;
                expect(a.ac_limits_set(&tight), OK);
                let mut b = null_mut();
                expect(a.ac_series_builder_new(&mut b), OK);
                let name = c("slice-1");
                expect(
                    a.ac_series_builder_add_buffer(b, bytes.as_ptr(), bytes.len(), name.as_ptr()),
                    OK,
                );
                let mut series = null_mut();
                let st = a.ac_series_builder_build(b, null(), null(), &mut series);
                assert!(series.is_null());
                let msg = last_error();
                assert!(
                    msg.contains("slice-1") && msg.contains("max_file_bytes"),
                    "status {st}: {msg}"
                );
                expect(a.ac_series_builder_free(b), OK);

                // An RT Structure Set over the contour-point limit, from memory.
                let rs = std::fs::read(common::require("rider/rtstruct.dcm")).unwrap();
                let mut few = l;
                few.max_contour_points_per_roi = 10;
                expect(a.ac_limits_set(&few), OK);
                let mut h = null_mut();
                expect(
                    a.ac_rtstruct_open_buffer(rs.as_ptr(), rs.len(), &mut h),
                    LIMIT_EXCEEDED,
                );
                assert!(h.is_null());
                assert!(
                    last_error().contains("over the limit max_contour_points_per_roi = 10"),
                    "{}",
                    last_error()
                );
                // Back to the defaults: the same buffer reads.
                expect(a.ac_limits_set(&l), OK);
                expect(a.ac_rtstruct_open_buffer(rs.as_ptr(), rs.len(), &mut h), OK);
                expect(a.ac_rtstruct_free(h), OK);
            }
            "stress" => stress(a),
            "bad_inputs" => bad_inputs(a),
            other => panic!("unknown case {other}"),
        }
    }
    println!("case {case} ok");
}

// ---- concurrency stress: many threads over shared engines, models, a series and results ----

/// What one segmentation gives a host, compared across threads: the label map, the structures,
/// every contour's points, and the NIfTI bytes (deterministic, unlike the RTSTRUCT's UIDs).
#[derive(PartialEq, Debug)]
struct Outputs {
    labels: Vec<u8>,
    structures: Vec<(String, u64)>,
    contours: Vec<Vec<(usize, Vec<f64>)>>,
    nifti: Vec<u8>,
}

/// Reads everything `Outputs` holds from a live result (not freed).
fn outputs(r: *const ac_result) -> Outputs {
    let a = api();
    // SAFETY: a live result handle; out pointers valid; handed-out pointers copied at once.
    unsafe {
        let (mut data, mut len) = (null(), 0usize);
        let mut g = Geometry::default();
        expect(a.ac_result_labels(r, &mut g, &mut data, &mut len), OK);
        let labels = std::slice::from_raw_parts(data, len).to_vec();
        let mut n = 0usize;
        expect(a.ac_result_structure_count(r, &mut n), OK);
        let mut structures = Vec::new();
        let mut contours = Vec::new();
        for i in 0..n {
            let mut st: Structure = std::mem::zeroed();
            expect(a.ac_result_structure(r, i, &mut st), OK);
            structures.push((cstr(st.name), st.voxels));
            let mut k = 0usize;
            expect(a.ac_result_contour_count(r, i, &mut k), OK);
            let mut these = Vec::new();
            for j in 0..k {
                let mut ct: ContourC = std::mem::zeroed();
                expect(a.ac_result_contour(r, i, j, &mut ct), OK);
                let pts = std::slice::from_raw_parts(ct.points, 3 * ct.point_count).to_vec();
                these.push((ct.slice, pts));
            }
            contours.push(these);
        }
        let mut buf = null_mut();
        expect(a.ac_result_nifti_buffer(r, false, &mut buf), OK);
        Outputs {
            labels,
            structures,
            contours,
            nifti: take_buffer(buf),
        }
    }
}

/// Handles shared between the stress threads (raw pointers are not `Send`; the C API says they
/// may be used from any thread).
#[derive(Clone, Copy)]
struct Shared(usize);
impl Shared {
    fn of<T>(p: *mut T) -> Self {
        Shared(p as usize)
    }
    fn get<T>(self) -> *mut T {
        self.0 as *mut T
    }
}

static LOG_RECORDS: AtomicU32 = AtomicU32::new(0);
static LOG_THREADS: std::sync::Mutex<Vec<std::thread::ThreadId>> =
    std::sync::Mutex::new(Vec::new());

unsafe extern "C" fn stress_log(
    _: *mut c_void,
    level: u32,
    target: *const c_char,
    msg: *const c_char,
) {
    assert!((1..=4).contains(&level));
    // SAFETY: the library passes NUL-terminated strings valid during the call.
    let (t, m) = unsafe { (CStr::from_ptr(target), CStr::from_ptr(msg)) };
    assert!(!t.to_bytes().is_empty() && !m.to_bytes().is_empty());
    LOG_RECORDS.fetch_add(1, Ordering::Relaxed);
    let id = std::thread::current().id();
    let mut ids = LOG_THREADS.lock().unwrap();
    if !ids.contains(&id) {
        ids.push(id);
    }
}

/// 8 threads over two engines and three models (one of them freed while threads segment with
/// it, the engine of two of them freed while they run), one series, and results read by every
/// thread at once and freed by threads other than their makers; runs cancelled from other
/// threads; the log callback called from all of them. Every output equals the single-thread
/// reference, every status is one the API promises, and no handle is left at the end. Run under
/// ThreadSanitizer by `tests/sanitizers/tsan.sh`.
fn stress(a: &Api) {
    const THREADS: usize = 8;
    const ROUNDS: usize = 4;
    let ort = c(common::ort_lib().to_str().unwrap());
    // SAFETY: every call gets live handles (or handles freed on purpose, where the API promises
    // a status) and valid out pointers.
    unsafe {
        expect(a.ac_set_log_callback(Some(stress_log), null_mut(), 4), OK);
        let mut o: EngineOptions = std::mem::zeroed();
        expect(a.ac_engine_options_init(&mut o), OK);
        o.ort_library = ort.as_ptr();
        o.threads = 1;
        let (mut e0, mut e1) = (null_mut(), null_mut());
        expect(a.ac_engine_new(&o, &mut e0), OK);
        expect(a.ac_engine_new(&o, &mut e1), OK);
        let mut models = [null_mut(); 3];
        for (m, e) in models.iter_mut().zip([e0, e1, e1]) {
            expect(a.ac_model_open(e, tiny_model().as_ptr(), m), OK);
        }
        let dir = c(phantom_dir().to_str().unwrap());
        let mut series = null_mut();
        expect(a.ac_series_load_dir(dir.as_ptr(), null(), &mut series), OK);
        let mut r = null_mut();
        expect(
            a.ac_segment(models[0], series, None, null_mut(), null_mut(), &mut r),
            OK,
        );
        let reference = outputs(r);
        expect(a.ac_result_free(r), OK);
        // One result nobody has read yet: its contours are traced by whichever thread asks
        // first, while the others ask too.
        let mut fresh = null_mut();
        expect(
            a.ac_segment(models[1], series, None, null_mut(), null_mut(), &mut fresh),
            OK,
        );

        // A series builder filled by every thread at once (its calls are serialised inside),
        // then built: the same series as from the folder.
        let mut builder = null_mut();
        expect(a.ac_series_builder_new(&mut builder), OK);
        let mut slices: Vec<PathBuf> = std::fs::read_dir(phantom_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        slices.sort();
        let builder_s = Shared::of(builder);

        let (models_s, series_s, fresh_s) = (
            models.map(Shared::of),
            Shared::of(series),
            Shared::of(fresh),
        );
        let (e1_s, doomed) = (Shared::of(e1), Shared::of(models[2]));
        let handoff = std::sync::Mutex::new(Vec::<Shared>::new());
        let tokens: Vec<Shared> = (0..THREADS)
            .map(|_| {
                let mut t = null_mut();
                expect(a.ac_cancel_token_new(&mut t), OK);
                Shared::of(t)
            })
            .collect();
        let started = std::sync::Barrier::new(THREADS + 1);
        let (cancelled, freed_model_seen, done) =
            (AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0));
        std::thread::scope(|scope| {
            for i in 0..THREADS {
                let (reference, handoff, tokens, started) =
                    (&reference, &handoff, &tokens, &started);
                let slices = &slices;
                let (cancelled, freed_model_seen, done) = (&cancelled, &freed_model_seen, &done);
                scope.spawn(move || {
                    let a = api();
                    started.wait();
                    for f in slices.iter().skip(i).step_by(THREADS) {
                        let bytes = std::fs::read(f).unwrap();
                        let name = c(&f.to_string_lossy());
                        expect(
                            a.ac_series_builder_add_buffer(
                                builder_s.get(),
                                bytes.as_ptr(),
                                bytes.len(),
                                name.as_ptr(),
                            ),
                            OK,
                        );
                    }
                    assert_eq!(
                        outputs(fresh_s.get()),
                        *reference,
                        "shared result, thread {i}"
                    );
                    for round in 0..ROUNDS {
                        // The doomed model: OK while it lives, an invalid handle once freed.
                        let model = if round == 0 && i % 2 == 0 {
                            doomed
                        } else {
                            models_s[(i + round) % 2]
                        };
                        // In the last round odd threads run with their token, which the thread
                        // before them cancels at some point.
                        let last = round == ROUNDS - 1;
                        let token = if last && i % 2 == 1 {
                            tokens[i].get()
                        } else {
                            null_mut()
                        };
                        if last && i % 2 == 0 {
                            std::thread::sleep(std::time::Duration::from_millis(2 * i as u64));
                            expect(a.ac_cancel_token_cancel(tokens[i + 1].get()), OK);
                        }
                        let mut r = null_mut();
                        let st = a.ac_segment(
                            model.get(),
                            series_s.get(),
                            None,
                            null_mut(),
                            token,
                            &mut r,
                        );
                        match st {
                            OK => {
                                assert_eq!(outputs(r), *reference, "thread {i} round {round}");
                                done.fetch_add(1, Ordering::Relaxed);
                                let mut rs = null_mut();
                                expect(a.ac_result_rtstruct_buffer(r, &mut rs), OK);
                                let bytes = take_buffer(rs);
                                let mut h = null_mut();
                                expect(
                                    a.ac_rtstruct_open_buffer(bytes.as_ptr(), bytes.len(), &mut h),
                                    OK,
                                );
                                let mut n = 0usize;
                                expect(a.ac_rtstruct_roi_count(h, &mut n), OK);
                                assert_eq!(n, reference.structures.len());
                                expect(a.ac_rtstruct_free(h), OK);
                                // Freed by another thread: hand it over, free one handed over.
                                let mut q = handoff.lock().unwrap();
                                q.push(Shared::of(r));
                                if q.len() > 1 {
                                    let other: *mut ac_result = q.remove(0).get();
                                    drop(q);
                                    expect(a.ac_result_free(other), OK);
                                }
                            }
                            CANCELLED if !token.is_null() => {
                                assert!(r.is_null());
                                cancelled.fetch_add(1, Ordering::Relaxed);
                            }
                            INVALID_HANDLE if model.0 == doomed.0 => {
                                assert!(r.is_null());
                                freed_model_seen.fetch_add(1, Ordering::Relaxed);
                            }
                            other => expect(other, OK),
                        }
                    }
                });
            }
            started.wait();
            // While the threads run: the engine of two models, then one of those models, freed.
            expect(a.ac_engine_free(e1_s.get()), OK);
            std::thread::sleep(std::time::Duration::from_millis(20));
            expect(a.ac_model_free(doomed.get()), OK);
        });
        let mut n = 0usize;
        expect(a.ac_series_builder_count(builder, &mut n), OK);
        assert_eq!(n, slices.len());
        let mut built = null_mut();
        expect(
            a.ac_series_builder_build(builder, null(), null(), &mut built),
            OK,
        );
        expect(a.ac_series_builder_free(builder), OK);
        let voxels = |s: *mut ac_series| {
            let (mut data, mut len) = (null(), 0usize);
            expect(a.ac_series_voxels(s, &mut data, &mut len), OK);
            std::slice::from_raw_parts(data, len).to_vec()
        };
        assert!(
            voxels(built) == voxels(series),
            "built series differs from the folder's"
        );
        expect(a.ac_series_free(built), OK);
        for r in handoff.into_inner().unwrap() {
            expect(a.ac_result_free(r.get()), OK);
        }
        for t in tokens {
            expect(a.ac_cancel_token_free(t.get()), OK);
        }
        expect(a.ac_result_free(fresh), OK);
        expect(a.ac_model_free(models[0]), OK);
        expect(a.ac_model_free(models[1]), OK);
        expect(a.ac_model_free(models[2]), INVALID_HANDLE);
        expect(a.ac_series_free(series), OK);
        expect(a.ac_engine_free(e0), OK);
        expect(a.ac_set_log_callback(None, null_mut(), 0), OK);
        assert_eq!(a.ac_live_handle_count(), 0, "every handle freed");
        let threads = LOG_THREADS.lock().unwrap().len();
        println!(
            "stress: {THREADS} threads x {ROUNDS} rounds; {} runs identical to the reference, {} cancelled, {} refused on the freed model, {} log records from {threads} threads",
            done.load(Ordering::Relaxed),
            cancelled.load(Ordering::Relaxed),
            freed_model_seen.load(Ordering::Relaxed),
            LOG_RECORDS.load(Ordering::Relaxed)
        );
        assert!(threads > 1, "log records from one thread only");
    }
}

#[test]
fn stress_threads_share_engines_models_and_results() {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(&exe)
        .args([
            "--exact",
            "child_case",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("AC_FFI_CASE", "stress")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("case stress ok"),
        "stress case failed ({:?}):\n{text}",
        out.status
    );
}

// ---- the named-error corpus through the C API ----

/// A copy of the phantom's slices in `dir`, sorted, with `f` applied to them.
fn broken_series(dir: &Path, f: impl FnOnce(&[PathBuf])) -> PathBuf {
    let ct = dir.join("ct");
    std::fs::create_dir_all(&ct).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(phantom_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let copies: Vec<PathBuf> = files
        .iter()
        .map(|p| {
            let to = ct.join(p.file_name().unwrap());
            std::fs::copy(p, &to).unwrap();
            to
        })
        .collect();
    f(&copies);
    ct
}

/// Peak resident memory of the whole test process any bad-input case may reach, MB (as the
/// CLI's named-error corpus: a 64 × 64 × 40 phantom, the tiny test model, ONNX Runtime loaded).
const BAD_INPUT_MAX_RSS_MB: f64 = 200.0;

/// Starts a new peak-RSS window: Linux resets the process's high-water mark (VmHWM) to the
/// current resident set on `5` written to `/proc/self/clear_refs`; false where it cannot.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", b"5").is_ok()
}

/// The process's peak resident set since the last [`reset_peak_rss`] (VmHWM), MB.
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status");
    kb / 1024.0
}

/// Runs one bad-input case: prints its time and the process's peak RSS during it, and fails
/// when the peak is over [`BAD_INPUT_MAX_RSS_MB`].
fn measured<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let fresh = reset_peak_rss();
    let t = std::time::Instant::now();
    let out = f();
    let (secs, mb) = (t.elapsed().as_secs_f64(), peak_rss_mb());
    println!(
        "{what:<40} {secs:>5.2} s  peak {mb:>6.1} MB{}",
        if fresh { "" } else { " (process peak)" }
    );
    assert!(
        mb <= BAD_INPUT_MAX_RSS_MB,
        "{what}: peak RSS {mb:.1} MB > {BAD_INPUT_MAX_RSS_MB} MB"
    );
    out
}

/// Broken series, model packages and structure sets give their own status through the C API, a
/// message naming the file, no handle, and a peak memory under [`BAD_INPUT_MAX_RSS_MB`] (run in
/// a child process, so that other tests' memory does not count).
#[test]
fn bad_inputs_give_their_own_status_through_the_c_api() {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(&exe)
        .args([
            "--exact",
            "child_case",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("AC_FFI_CASE", "bad_inputs")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(
        out.status.success() && text.contains("case bad_inputs ok"),
        "bad-input case failed ({:?}):\n{text}",
        out.status
    );
}

/// The bad-input cases, in the child process.
fn bad_inputs(a: &Api) {
    use dicom_dictionary_std::tags;
    type Break = fn(&[PathBuf]);
    let series_cases: Vec<(&str, Break, Status, Option<usize>)> = vec![
        (
            "zero-byte slice",
            |f| std::fs::write(f.last().unwrap(), b"").unwrap(),
            AC_STATUS_UNREADABLE_FILES,
            Some(39),
        ),
        (
            "truncated slice",
            |f| {
                let b = std::fs::read(&f[20]).unwrap();
                std::fs::write(&f[20], &b[..b.len() - 100]).unwrap();
            },
            AC_STATUS_UNREADABLE_FILES,
            Some(20),
        ),
        (
            "missing slice",
            |f| std::fs::remove_file(&f[17]).unwrap(),
            AC_STATUS_IRREGULAR_SPACING,
            None,
        ),
        (
            "other rows on one slice",
            |f| {
                edit(&f[9], |o| {
                    put_us(o, tags::ROWS, 32u16);
                })
            },
            AC_STATUS_MIXED_SIZE,
            Some(9),
        ),
        (
            "one slice rotated",
            |f| {
                edit(&f[15], |o| {
                    put_str(
                        o,
                        tags::IMAGE_ORIENTATION_PATIENT,
                        dicom_core::VR::DS,
                        "0\\1\\0\\1\\0\\0",
                    )
                })
            },
            AC_STATUS_MIXED_ORIENTATION,
            Some(15),
        ),
        (
            "missing image position",
            |f| {
                edit(&f[2], |o| {
                    o.remove_element(tags::IMAGE_POSITION_PATIENT);
                })
            },
            AC_STATUS_MISSING_TAG,
            Some(2),
        ),
        (
            "rescale slope 0",
            |f| {
                edit(&f[0], |o| {
                    put_str(o, tags::RESCALE_SLOPE, dicom_core::VR::DS, "0")
                })
            },
            AC_STATUS_INVALID_TAG,
            Some(0),
        ),
        (
            "modality MR",
            |f| {
                for p in f {
                    edit(p, |o| put_str(o, tags::MODALITY, dicom_core::VR::CS, "MR"));
                }
            },
            AC_STATUS_NO_SERIES,
            None,
        ),
        (
            "two frames per slice",
            |f| {
                for p in f {
                    edit(p, |o| {
                        put_str(o, tags::NUMBER_OF_FRAMES, dicom_core::VR::IS, "2")
                    });
                }
            },
            AC_STATUS_MULTI_FRAME,
            Some(0),
        ),
        (
            "bits allocated 1",
            |f| {
                for p in f {
                    edit(p, |o| {
                        put_us(o, tags::BITS_ALLOCATED, 1u16);
                    });
                }
            },
            AC_STATUS_INVALID_TAG,
            Some(0),
        ),
        (
            "rescale slope 1e300",
            |f| {
                edit(&f[12], |o| {
                    put_str(o, tags::RESCALE_SLOPE, dicom_core::VR::DS, "1e300")
                })
            },
            AC_STATUS_INVALID_TAG,
            Some(12),
        ),
        (
            "pixel representation changed on one slice",
            |f| flip_pixel_representation(&f[7]),
            AC_STATUS_MIXED_SIZE,
            Some(7),
        ),
        (
            "duplicate slice position",
            |f| duplicate_position(&f[3], &f[4]),
            AC_STATUS_DUPLICATE_SLICE,
            Some(4),
        ),
        (
            "sheared stack (gantry tilt)",
            |f| shear(f, 0.5),
            AC_STATUS_GANTRY_TILT,
            None,
        ),
        (
            "sequences nested too deep",
            |f| nest_sequences(&f[30], 71),
            // the slice cannot be read: the series is refused naming it (and the limit)
            AC_STATUS_UNREADABLE_FILES,
            Some(30),
        ),
        (
            "rows and columns 65535 in a small file",
            |f| {
                for p in f {
                    edit(p, |o| {
                        for t in [tags::ROWS, tags::COLUMNS] {
                            put_us(o, t, 65535u16);
                        }
                    });
                }
            },
            AC_STATUS_TOO_LARGE,
            None,
        ),
        (
            "pixel data length claims 4 GB",
            |f| {
                let mut b = std::fs::read(&f[5]).unwrap();
                let at = b
                    .windows(4)
                    .rposition(|w| w == [0xE0, 0x7F, 0x10, 0x00])
                    .unwrap();
                b[at + 4..at + 8].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
                std::fs::write(&f[5], &b).unwrap();
            },
            AC_STATUS_UNREADABLE_FILES,
            Some(5),
        ),
    ];
    for (what, brk, want, file) in series_cases {
        let tmp = tempfile::tempdir().unwrap();
        let mut names = Vec::new();
        let ct = broken_series(tmp.path(), |f| {
            names = f
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect();
            brk(f)
        });
        let dir = c(ct.to_str().unwrap());
        let mut series = null_mut();
        // SAFETY: valid strings and output pointer.
        let st = measured(what, || unsafe {
            a.ac_series_load_dir(dir.as_ptr(), null(), &mut series)
        });
        let msg = last_error();
        assert_eq!(st, want, "{what}: {msg}");
        assert!(series.is_null(), "{what}: a handle despite the error");
        if let Some(i) = file {
            assert!(
                msg.contains(&names[i]),
                "{what}: the message does not name {}: {msg}",
                names[i]
            );
        }
    }

    // Model packages.
    type BreakModel = fn(&Path);
    let model_cases: Vec<(&str, BreakModel, Status)> = vec![
        (
            "model.json not JSON",
            |m| std::fs::write(m.join("model.json"), b"{ not json").unwrap(),
            AC_STATUS_INVALID_MANIFEST,
        ),
        (
            "ONNX file corrupted",
            |m| {
                let p = m.join("model.onnx");
                let mut b = std::fs::read(&p).unwrap();
                let n = b.len();
                b[n / 2] ^= 0xFF;
                std::fs::write(&p, &b).unwrap();
            },
            AC_STATUS_MODEL_HASH_MISMATCH,
        ),
        (
            "ONNX file missing",
            |m| std::fs::remove_file(m.join("model.onnx")).unwrap(),
            AC_STATUS_MODEL_NOT_FOUND,
        ),
    ];
    let s = open_session();
    for (what, brk, want) in model_cases {
        let tmp = tempfile::tempdir().unwrap();
        let m = tmp.path().join("model");
        std::fs::create_dir_all(&m).unwrap();
        let src = PathBuf::from(tiny_model().to_str().unwrap());
        for f in ["model.json", "model.onnx"] {
            std::fs::copy(src.join(f), m.join(f)).unwrap();
        }
        brk(&m);
        let dir = c(m.to_str().unwrap());
        let mut model = null_mut();
        // SAFETY: a live engine, valid strings and output pointer.
        let st = measured(what, || unsafe {
            a.ac_model_open(s.engine, dir.as_ptr(), &mut model)
        });
        let msg = last_error();
        assert_eq!(st, want, "{what}: {msg}");
        assert!(model.is_null(), "{what}");
        assert!(msg.contains("model"), "{what}: {msg}");
    }
    drop(s);

    // Structure sets: not DICOM, truncated.
    let tmp = tempfile::tempdir().unwrap();
    let junk = tmp.path().join("junk.dcm");
    std::fs::write(&junk, vec![0x42u8; 4096]).unwrap();
    let rs = std::fs::read(common::require("rider/rtstruct.dcm")).unwrap();
    let cut = tmp.path().join("cut.dcm");
    std::fs::write(&cut, &rs[..rs.len() / 3]).unwrap();
    for (p, name) in [(&junk, "junk.dcm"), (&cut, "cut.dcm")] {
        let path = c(p.to_str().unwrap());
        let mut h = null_mut();
        // SAFETY: valid string and output pointer.
        let st = measured(name, || unsafe {
            a.ac_rtstruct_open(path.as_ptr(), &mut h)
        });
        let msg = last_error();
        assert_eq!(st, AC_STATUS_NOT_DICOM, "{name}: {msg}");
        assert!(h.is_null() && msg.contains(name), "{name}: {msg}");
    }
    // A duplicate ROI Number: contours could not be told apart, so the file is refused.
    let dup = tmp.path().join("duplicate-roi-number.dcm");
    std::fs::copy(common::require("rider/rtstruct.dcm"), &dup).unwrap();
    duplicate_roi_number(&dup);
    let path = c(dup.to_str().unwrap());
    let mut h = null_mut();
    // SAFETY: valid string and output pointer.
    let st = measured("duplicate ROI number", || unsafe {
        a.ac_rtstruct_open(path.as_ptr(), &mut h)
    });
    let msg = last_error();
    assert_eq!(st, AC_STATUS_INVALID_TAG, "{msg}");
    assert!(
        h.is_null() && msg.contains("duplicate-roi-number.dcm") && msg.contains("ROI number"),
        "{msg}"
    );
}

/// Every function the header declares has a row in docs/c-api.md's per-function threading
/// table, and the table names no function the header lacks.
#[test]
fn every_function_has_a_threading_row() {
    let header = std::fs::read_to_string(common::root().join("include/autocontour.h")).unwrap();
    let mut declared: Vec<String> = header
        .lines()
        .filter(|l| !l.starts_with([' ', '/', '#', '}', '\t']) && l.contains('('))
        .filter_map(|l| {
            let name = l.split('(').next()?.rsplit([' ', '*']).next()?;
            name.starts_with("ac_").then(|| name.to_string())
        })
        .collect();
    declared.sort();
    assert!(declared.len() > 50, "{declared:?}");
    let docs = std::fs::read_to_string(common::root().join("docs/c-api.md")).unwrap();
    let table = docs
        .split("### Per function")
        .nth(1)
        .and_then(|t| t.split("\n### ").next())
        .expect("docs/c-api.md has a 'Per function' section");
    let mut rows: Vec<String> = table
        .lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| {
            let first = l.split('|').nth(1).unwrap_or("");
            first
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    rows.sort();
    assert_eq!(
        rows, declared,
        "docs/c-api.md threading table vs include/autocontour.h"
    );
}
