//! The C API's buffer entry points, called as a C host calls them; the first input byte picks one:
//!
//! - 0: `ac_rtstruct_open_buffer` on the rest, then every ROI and contour read and every ROI
//!   rasterised onto a small synthetic CT series (`ac_rtstruct_rasterise`);
//! - 1: `ac_series_builder_add_buffer` with up to three buffers (the rest cut at `FF FE FF FE`),
//!   then `ac_series_builder_build` and the series' getters;
//! - 2: `ac_compare_masks` with a geometry (sizes, spacing, tolerance) and two masks taken from the
//!   rest, a length that may disagree with the geometry.
//!
//! Every call must return a status; every handle is freed, and `ac_live_handle_count` is back to
//! where it was.
#![no_main]
use std::ffi::{CString, c_char};
use std::ptr::{null, null_mut};
use std::sync::OnceLock;

/// The C library's sources (capi/src), compiled into this target so that its code is
/// instrumented like the rest (its crate builds only a cdylib and a staticlib, and an rlib of it
/// would collide with the SDK crate's, which has the same library name).
#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../../capi/src/lib.rs"]
mod capi;
// `$crate::boundary` and `$crate::status` in the C library's macros resolve from this root.
use capi::{boundary, status};

use capi as c;
use libfuzzer_sys::fuzz_target;

#[path = "common/split.rs"]
mod split;

/// A 32 × 32 × 8 phantom CT loaded once, to rasterise onto.
fn series() -> usize {
    static SERIES: OnceLock<usize> = OnceLock::new();
    *SERIES.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ac-fuzz-capi-{}", std::process::id()));
        let spec = autocontour_test_support::phantom::PhantomSpec {
            size: [32, 32, 8],
            seed: Some("fuzz".into()),
            ..Default::default()
        };
        autocontour_test_support::phantom::Phantom::new(spec)
            .and_then(|p| {
                p.write_series(
                    &dir,
                    autocontour_test_support::phantom::PhantomSyntax::ImplicitLittle,
                )
            })
            .expect("phantom written");
        let path = CString::new(dir.to_string_lossy().as_bytes()).expect("path");
        let mut s = null_mut();
        // SAFETY: valid strings and out pointer.
        let st = unsafe { c::ac_series_load_dir(path.as_ptr(), null(), &mut s) };
        assert_eq!(st as u32, 0, "phantom series loads");
        let _ = std::fs::remove_dir_all(&dir);
        s as usize
    })
}

fn check(st: c::ac_status) {
    // A status, never a panic across the boundary (that would abort): any code is fine here,
    // but a message must exist for a failure.
    if st as u32 != 0 {
        let m = c::ac_last_error_message();
        assert!(!m.is_null());
    }
}

fn rtstruct(data: &[u8]) {
    let series = series() as *const c::ac_series;
    let mut h = null_mut();
    // SAFETY: data/len describe a live slice; out pointers valid.
    unsafe {
        let st = c::ac_rtstruct_open_buffer(data.as_ptr(), data.len(), &mut h);
        check(st);
        if h.is_null() {
            return;
        }
        let mut n = 0usize;
        check(c::ac_rtstruct_roi_count(h, &mut n));
        for i in 0..n.min(64) {
            let mut roi: c::ac_roi = std::mem::zeroed();
            check(c::ac_rtstruct_roi(h, i, &mut roi));
            for k in 0..roi.contour_count.min(256) {
                let mut ct: c::ac_roi_contour = std::mem::zeroed();
                check(c::ac_rtstruct_contour(h, i, k, &mut ct));
                if !ct.points.is_null() {
                    let pts = std::slice::from_raw_parts(ct.points, 3 * ct.point_count);
                    std::hint::black_box(pts.iter().sum::<f64>());
                }
            }
            if !roi.name.is_null() {
                let mut found = 0usize;
                check(c::ac_rtstruct_find_roi(h, roi.name, &mut found));
            }
            let mut mask = null_mut();
            check(c::ac_rtstruct_rasterise(h, i, series, &mut mask));
            if !mask.is_null() {
                let (mut d, mut len) = (null(), 0usize);
                check(c::ac_buffer_data(mask, &mut d, &mut len));
                assert_eq!(len, 32 * 32 * 8);
                check(c::ac_buffer_free(mask));
            }
        }
        let name = CString::new("no such ROI").expect("name");
        let mut found = 0usize;
        check(c::ac_rtstruct_find_roi(
            h,
            name.as_ptr() as *const c_char,
            &mut found,
        ));
        assert_eq!(c::ac_rtstruct_free(h) as u32, 0);
    }
}

fn builder(data: &[u8]) {
    let parts = split::three_parts(data);
    // SAFETY: buffers are live slices; out pointers valid; handles freed once.
    unsafe {
        let mut b = null_mut();
        assert_eq!(c::ac_series_builder_new(&mut b) as u32, 0);
        for p in &parts {
            check(c::ac_series_builder_add_buffer(
                b,
                p.as_ptr(),
                p.len(),
                null(),
            ));
        }
        let mut opts: c::ac_load_options = std::mem::zeroed();
        check(c::ac_load_options_init(&mut opts));
        opts.max_voxels = 1 << 22;
        let mut s = null_mut();
        check(c::ac_series_builder_build(b, null(), &opts, &mut s));
        if !s.is_null() {
            let mut g: c::ac_geometry = std::mem::zeroed();
            check(c::ac_series_geometry(s, &mut g));
            let (mut d, mut len) = (null(), 0usize);
            check(c::ac_series_voxels(s, &mut d, &mut len));
            assert_eq!(len, g.size.iter().product::<usize>());
            let mut uid = null();
            check(c::ac_series_uid(s, &mut uid));
            assert_eq!(c::ac_series_free(s) as u32, 0);
        }
        assert_eq!(c::ac_series_builder_free(b) as u32, 0);
    }
}

fn compare(data: &[u8]) {
    let Some((head, rest)) = data.split_at_checked(4 + 3 * 8 + 8) else {
        return;
    };
    let size = [
        head[0] as usize % 17,
        head[1] as usize % 17,
        head[2] as usize % 9,
    ];
    let f = |i: usize| f64::from_le_bytes(head[4 + 8 * i..12 + 8 * i].try_into().unwrap_or([0; 8]));
    let mut g = c::ac_geometry {
        size,
        spacing: [f(0), f(1), f(2)],
        ..Default::default()
    };
    g.direction = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
    let tolerance = f(3);
    // The length the host claims: the geometry's, or off by the low bits of byte 3.
    let want = size.iter().product::<usize>();
    let len = if head[3] & 0x80 == 0 {
        want
    } else {
        want ^ (head[3] as usize & 7)
    };
    if rest.len() < 2 * len {
        return;
    }
    let (reference, test) = rest.split_at(len);
    let mut m: c::ac_metrics = unsafe { std::mem::zeroed() };
    // SAFETY: both masks hold at least `len` bytes.
    check(unsafe {
        c::ac_compare_masks(
            reference.as_ptr(),
            test.as_ptr(),
            len,
            &g,
            tolerance,
            &mut m,
        )
    });
}

fuzz_target!(|data: &[u8]| {
    let _ = series();
    let live = c::ac_live_handle_count();
    match data.split_first() {
        Some((0, rest)) => rtstruct(rest),
        Some((1, rest)) => builder(rest),
        Some((2, rest)) => compare(rest),
        _ => {}
    }
    assert_eq!(c::ac_live_handle_count(), live, "a handle leaked");
});
