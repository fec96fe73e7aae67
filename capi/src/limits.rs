//! The process's resource limits (`autocontour::limits`): how much one input may make the library
//! read, allocate or walk.

use super::boundary::{FfiError, boundary, try_out};
use super::status::ac_status;
use autocontour::limits::{Limits, limits, set_limits};

/// Resource limits for the whole process: every call that starts after `ac_limits_set` uses them.
/// An input over a limit fails with `AC_STATUS_LIMIT_EXCEEDED`, naming the limit, the value and
/// the file or ROI, before anything of that size is allocated. Fill with `ac_limits_get()` (the
/// limits in force; the defaults until changed), change fields, then `ac_limits_set()`. A zero
/// field is refused (`AC_STATUS_INVALID_ARGUMENT`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ac_limits {
    /// Most voxels (rows x columns x slices) a CT series may have: the default of
    /// `ac_load_options.max_voxels` (1024 x 1024 x 2048).
    pub max_voxels: u64,
    /// Largest DICOM file or buffer read, bytes (4 GiB).
    pub max_file_bytes: u64,
    /// Most files one folder scan lists (1,000,000).
    pub max_files_scanned: u64,
    /// Deepest nesting of DICOM sequences (64; at most 256).
    pub max_sequence_depth: u64,
    /// Largest data set a deflated DICOM file may inflate to, bytes (1 GiB).
    pub max_inflated_bytes: u64,
    /// Most contour points of one ROI of an RT Structure Set, read or written (20,000,000).
    pub max_contour_points_per_roi: u64,
    /// Most contour points of all ROIs of one RT Structure Set (100,000,000).
    pub max_contour_points_total: u64,
    /// Largest image a NIfTI header may declare, bytes (8 GiB).
    pub max_nifti_bytes: u64,
}

impl From<Limits> for ac_limits {
    fn from(l: Limits) -> Self {
        ac_limits {
            max_voxels: l.max_voxels,
            max_file_bytes: l.max_file_bytes,
            max_files_scanned: l.max_files_scanned,
            max_sequence_depth: l.max_sequence_depth,
            max_inflated_bytes: l.max_inflated_bytes,
            max_contour_points_per_roi: l.max_contour_points_per_roi,
            max_contour_points_total: l.max_contour_points_total,
            max_nifti_bytes: l.max_nifti_bytes,
        }
    }
}

impl From<ac_limits> for Limits {
    fn from(l: ac_limits) -> Self {
        Limits {
            max_voxels: l.max_voxels,
            max_file_bytes: l.max_file_bytes,
            max_files_scanned: l.max_files_scanned,
            max_sequence_depth: l.max_sequence_depth,
            max_inflated_bytes: l.max_inflated_bytes,
            max_contour_points_per_roi: l.max_contour_points_per_roi,
            max_contour_points_total: l.max_contour_points_total,
            max_nifti_bytes: l.max_nifti_bytes,
        }
    }
}

/// Fills `limits` with the limits in force (the defaults until `ac_limits_set` changed them).
/// Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_limits_get(limits_out: *mut ac_limits) -> ac_status {
    boundary("ac_limits_get", || {
        *try_out!(limits_out, "limits_out") = ac_limits::from(limits());
        Ok(())
    })
}

/// Replaces the process's limits; calls that start afterwards use them (calls already running
/// keep the ones they started with). A zero field, or `max_sequence_depth` over 256, returns
/// `AC_STATUS_INVALID_ARGUMENT` and changes nothing. Any thread; meant to be called once at
/// start-up.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_limits_set(limits_in: *const ac_limits) -> ac_status {
    boundary("ac_limits_set", || {
        // SAFETY: the caller promises a non-NULL pointer is a valid `ac_limits`.
        let Some(l) = (unsafe { limits_in.as_ref() }) else {
            return Err(FfiError::null("limits_in"));
        };
        set_limits(&Limits::from(*l))
            .map_err(|e| FfiError::new(ac_status::InvalidArgument, e.to_string()))
    })
}
