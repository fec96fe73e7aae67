//! Reading RT Structure Sets: ROIs, and masks rasterised onto a loaded series' grid.

use std::ffi::{CString, c_char};
use std::path::Path;

use super::boundary::{FfiError, boundary, try_out, try_str};
use super::engine::{ac_series, cstring};
use super::handle::{Handle, get, register, release};
use super::segment::ac_buffer;
use super::status::ac_status;
use autocontour::rtstruct::{
    RasterOptions, RtStruct, check_frame_of_reference, rasterise_roi, read_rtstruct,
    read_rtstruct_bytes,
};

/// An RT Structure Set read from a file or a memory buffer: its ROIs and their contours.
///
/// Threading: immutable; every call taking `const ac_rtstruct*` may run on any thread,
/// concurrently. Strings it hands out stay valid until `ac_rtstruct_free`.
pub struct ac_rtstruct {
    _private: [u8; 0],
}

pub(crate) struct RtStructBody {
    rs: RtStruct,
    names: Vec<CString>,
    types: Vec<CString>,
    /// Per ROI, per contour: Contour Geometric Type and referenced SOP Instance UID.
    contour_strings: Vec<Vec<(CString, CString)>>,
}

impl Handle for ac_rtstruct {
    type Body = RtStructBody;
    const NAME: &'static str = "ac_rtstruct";
}

/// One ROI of an RT Structure Set, as reported by `ac_rtstruct_roi`. Strings are owned by the
/// `ac_rtstruct` and valid until `ac_rtstruct_free`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ac_roi {
    /// ROI Name (UTF-8).
    pub name: *const c_char,
    /// ROI Number (referenced by the file's other sequences).
    pub number: i64,
    /// ROI Display Color, RGB (valid when `has_color`).
    pub color: [u8; 3],
    /// Whether the file gives a display colour.
    pub has_color: bool,
    /// RT ROI Interpreted Type (`ORGAN`, `GTV`, `EXTERNAL`...); an empty string when absent.
    pub interpreted_type: *const c_char,
    /// Number of contours (all slices, all geometric types).
    pub contour_count: usize,
}

/// One contour of an ROI read from an RT Structure Set, as reported by `ac_rtstruct_contour`.
/// Pointers are owned by the `ac_rtstruct` and valid until `ac_rtstruct_free`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ac_roi_contour {
    /// Contour Geometric Type as written in the file (`CLOSED_PLANAR`, `CLOSEDPLANAR_XOR`,
    /// `OPEN_PLANAR`, `OPEN_NONPLANAR`, `POINT`), UTF-8.
    pub geometric_type: *const c_char,
    /// Number of points (1 for a `POINT`; may be 0 for a contour without Contour Data).
    pub point_count: usize,
    /// `3 * point_count` doubles: x, y, z of each point in the DICOM patient frame (LPS), mm,
    /// in the file's order (a closed polygon's last point joins its first).
    pub points: *const f64,
    /// Referenced SOP Instance UID of the contour's Contour Image Sequence (its first item); an
    /// empty string when the file gives none (RayStation often omits it).
    pub referenced_sop_instance_uid: *const c_char,
}

fn wrap(rs: RtStruct) -> RtStructBody {
    RtStructBody {
        contour_strings: rs
            .rois
            .iter()
            .map(|r| {
                r.contours
                    .iter()
                    .map(|c| {
                        (
                            cstring(&c.geometric_type),
                            cstring(c.referenced_sop_instance_uid.as_deref().unwrap_or("")),
                        )
                    })
                    .collect()
            })
            .collect(),
        names: rs.rois.iter().map(|r| cstring(&r.name)).collect(),
        types: rs
            .rois
            .iter()
            .map(|r| cstring(r.interpreted_type.as_deref().unwrap_or("")))
            .collect(),
        rs,
    }
}

/// Reads the RT Structure Set file `path` (with or without preamble and file meta; Modality
/// must be RTSTRUCT when present). On success `*out` receives a new `ac_rtstruct`, freed with
/// `ac_rtstruct_free`. Errors: `AC_STATUS_IO`, `AC_STATUS_NOT_DICOM`, `AC_STATUS_MISSING_TAG`,
/// `AC_STATUS_INVALID_TAG` (with the file and attribute in the message). Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_rtstruct_open(
    path: *const c_char,
    out: *mut *mut ac_rtstruct,
) -> ac_status {
    boundary("ac_rtstruct_open", || {
        let out = try_out!(out, "out");
        let path = try_str!(path, "path");
        let rs = read_rtstruct(Path::new(path))?;
        *out = register::<ac_rtstruct>(wrap(rs));
        Ok(())
    })
}

/// Like `ac_rtstruct_open`, from `len` bytes at `data` (a whole DICOM file held in memory; read
/// during the call, not kept). Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_rtstruct_open_buffer(
    data: *const u8,
    len: usize,
    out: *mut *mut ac_rtstruct,
) -> ac_status {
    boundary("ac_rtstruct_open_buffer", || {
        let out = try_out!(out, "out");
        if data.is_null() {
            return Err(FfiError::null("data"));
        }
        // SAFETY: non-NULL; the caller promises `len` readable bytes at `data`.
        let bytes = unsafe { std::slice::from_raw_parts(data, len) };
        let rs = read_rtstruct_bytes(Path::new("RTSTRUCT buffer"), bytes)?;
        *out = register::<ac_rtstruct>(wrap(rs));
        Ok(())
    })
}

/// Sets `*count` to the number of ROIs (Structure Set ROI Sequence order). Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_rtstruct_roi_count(
    rtstruct: *const ac_rtstruct,
    count: *mut usize,
) -> ac_status {
    boundary("ac_rtstruct_roi_count", || {
        let out = try_out!(count, "count");
        *out = get(rtstruct, "rtstruct")?.rs.rois.len();
        Ok(())
    })
}

fn roi_range(index: usize, n: usize) -> FfiError {
    FfiError::new(
        ac_status::IndexOutOfRange,
        format!("ROI index {index} is past the end ({n} ROIs)"),
    )
}

/// Writes ROI number `index` (0-based, < count, in the file's order) to `*roi`; an index past
/// the end returns `AC_STATUS_INDEX_OUT_OF_RANGE`. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_rtstruct_roi(
    rtstruct: *const ac_rtstruct,
    index: usize,
    roi: *mut ac_roi,
) -> ac_status {
    boundary("ac_rtstruct_roi", || {
        let out = try_out!(roi, "roi");
        let b = get(rtstruct, "rtstruct")?;
        let n = b.rs.rois.len();
        let r = b.rs.rois.get(index).ok_or_else(|| roi_range(index, n))?;
        let name = b.names.get(index).ok_or_else(|| roi_range(index, n))?;
        let ty = b.types.get(index).ok_or_else(|| roi_range(index, n))?;
        *out = ac_roi {
            name: name.as_ptr(),
            number: r.number,
            color: r.color.unwrap_or([0; 3]),
            has_color: r.color.is_some(),
            interpreted_type: ty.as_ptr(),
            contour_count: r.contours.len(),
        };
        Ok(())
    })
}

/// Writes contour `k` (0-based, < the ROI's `contour_count`, in the file's order) of ROI number
/// `roi_index` to `*contour`: its geometric type, points in patient mm and referenced CT image.
/// An index past the end returns `AC_STATUS_INDEX_OUT_OF_RANGE`. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_rtstruct_contour(
    rtstruct: *const ac_rtstruct,
    roi_index: usize,
    k: usize,
    contour: *mut ac_roi_contour,
) -> ac_status {
    boundary("ac_rtstruct_contour", || {
        let out = try_out!(contour, "contour");
        let b = get(rtstruct, "rtstruct")?;
        let n = b.rs.rois.len();
        let r =
            b.rs.rois
                .get(roi_index)
                .ok_or_else(|| roi_range(roi_index, n))?;
        let past = || {
            FfiError::new(
                ac_status::IndexOutOfRange,
                format!(
                    "contour index {k} is past the end (ROI {roi_index} '{}' has {} contours)",
                    r.name,
                    r.contours.len()
                ),
            )
        };
        let c = r.contours.get(k).ok_or_else(past)?;
        let (ty, uid) = b
            .contour_strings
            .get(roi_index)
            .and_then(|v| v.get(k))
            .ok_or_else(past)?;
        *out = ac_roi_contour {
            geometric_type: ty.as_ptr(),
            point_count: c.points.len(),
            // `[f64; 3]` has the layout of three consecutive doubles.
            points: c.points.as_ptr().cast::<f64>(),
            referenced_sop_instance_uid: uid.as_ptr(),
        };
        Ok(())
    })
}

/// Sets `*index` to the index of the ROI named `name`: an exact match first, then one ignoring
/// ASCII case. No such ROI returns `AC_STATUS_ROI_NOT_FOUND`. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_rtstruct_find_roi(
    rtstruct: *const ac_rtstruct,
    name: *const c_char,
    index: *mut usize,
) -> ac_status {
    boundary("ac_rtstruct_find_roi", || {
        let out = try_out!(index, "index");
        let name = try_str!(name, "name");
        let b = get(rtstruct, "rtstruct")?;
        let rois = &b.rs.rois;
        let found = rois
            .iter()
            .position(|r| r.name == name)
            .or_else(|| rois.iter().position(|r| r.name.eq_ignore_ascii_case(name)));
        *out = found.ok_or_else(|| {
            let names: Vec<&str> = rois.iter().map(|r| r.name.as_str()).collect();
            FfiError::new(
                ac_status::RoiNotFound,
                format!(
                    "no ROI named '{name}' in {} (ROIs: {})",
                    b.rs.path.display(),
                    names.join(", ")
                ),
            )
        })?;
        Ok(())
    })
}

/// Rasterises ROI `index` onto the voxel grid of `series`: `*mask` receives a new `ac_buffer` of
/// `cols * rows * slices` bytes laid out as described for `ac_geometry`, 1 inside and 0
/// outside, freed with `ac_buffer_free`.
///
/// Rule: each closed planar contour is placed on the slice nearest to it (by position, so
/// missing or wrong Contour Image references do not matter) and filled even-odd at voxel
/// centres (holes and keyholes come out as holes); open contours and points are skipped, so such
/// an ROI gives an empty mask; contours off the grid are skipped. A Frame of Reference UID that
/// differs from the series' is logged as a warning (many files carry a wrong one). Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_rtstruct_rasterise(
    rtstruct: *const ac_rtstruct,
    index: usize,
    series: *const ac_series,
    mask: *mut *mut ac_buffer,
) -> ac_status {
    boundary("ac_rtstruct_rasterise", || {
        let out = try_out!(mask, "mask");
        let b = get(rtstruct, "rtstruct")?;
        let s = get(series, "series")?;
        let n = b.rs.rois.len();
        let roi = b.rs.rois.get(index).ok_or_else(|| roi_range(index, n))?;
        if let Err(e) = check_frame_of_reference(&b.rs, &s.ct.frame_of_reference_uid) {
            log::warn!("{e}");
        }
        let opts = RasterOptions {
            slices: Some(&s.ct.slices),
        };
        let m = rasterise_roi(roi, s.ct.volume.geometry(), &opts)?;
        *out = register::<ac_buffer>(m.into_data());
        Ok(())
    })
}

/// Frees an RT Structure Set. NULL is a no-op. Masks made from it stay valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_rtstruct_free(rtstruct: *mut ac_rtstruct) -> ac_status {
    boundary("ac_rtstruct_free", || release(rtstruct, "rtstruct"))
}
