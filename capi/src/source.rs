//! CT series from a folder with load options, and from DICOM files the host holds in memory.

use std::ffi::c_char;
use std::path::Path;
use std::sync::Mutex;

use super::boundary::{FfiError, boundary, try_opt_str, try_out, try_str};
use super::engine::{SeriesBody, ac_series};
use super::handle::{Handle, get, register, release};
use super::status::ac_status;
use autocontour::dicom::{LoadOptions, load_series, load_series_buffers};

/// How strictly a series is checked when loaded (`ac_series_load_dir_with_options`,
/// `ac_series_builder_build`). Fill with `ac_load_options_init()` first, then set fields.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ac_load_options {
    /// Largest allowed difference between a slice gap and the median gap, mm (default 0.1);
    /// larger differences (a missing slice, uneven spacing) fail with
    /// `AC_STATUS_IRREGULAR_SPACING`.
    pub gap_tolerance_mm: f64,
    /// Largest in-plane offset between neighbouring slices before the stack counts as tilted or
    /// sheared (`AC_STATUS_GANTRY_TILT`), mm (default 0.05).
    pub tilt_tolerance_mm: f64,
    /// Largest number of voxels a volume may have, checked before any pixel is decoded
    /// (`AC_STATUS_TOO_LARGE`); default: the process's `max_voxels` limit (`ac_limits`), 1024 x
    /// 1024 x 2048 unless changed.
    pub max_voxels: u64,
}

impl From<&LoadOptions> for ac_load_options {
    fn from(o: &LoadOptions) -> Self {
        ac_load_options {
            gap_tolerance_mm: o.gap_tolerance_mm,
            tilt_tolerance_mm: o.tilt_tolerance_mm,
            max_voxels: o.max_voxels,
        }
    }
}

/// The library's options for C ones (NULL: the defaults), checked.
fn load_options(p: *const ac_load_options) -> Result<LoadOptions, FfiError> {
    // SAFETY: NULL means defaults; otherwise the caller promises a valid struct.
    let Some(o) = (unsafe { p.as_ref() }) else {
        return Ok(LoadOptions::default());
    };
    let tolerance = |v: f64, name: &str| {
        if v.is_finite() && v >= 0.0 {
            Ok(v)
        } else {
            Err(FfiError::new(
                ac_status::InvalidArgument,
                format!("options->{name} is {v}: expected a finite value >= 0 (mm)"),
            ))
        }
    };
    if o.max_voxels == 0 {
        return Err(FfiError::new(
            ac_status::InvalidArgument,
            "options->max_voxels is 0",
        ));
    }
    Ok(LoadOptions {
        gap_tolerance_mm: tolerance(o.gap_tolerance_mm, "gap_tolerance_mm")?,
        tilt_tolerance_mm: tolerance(o.tilt_tolerance_mm, "tilt_tolerance_mm")?,
        max_voxels: o.max_voxels,
    })
}

/// Fills `options` with the defaults: gap tolerance 0.1 mm, tilt tolerance 0.05 mm, and the
/// process's `max_voxels` limit (`ac_limits_get`; 1024 x 1024 x 2048 unless changed). Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_load_options_init(options: *mut ac_load_options) -> ac_status {
    boundary("ac_load_options_init", || {
        *try_out!(options, "options") = ac_load_options::from(&LoadOptions::default());
        Ok(())
    })
}

/// Like `ac_series_load_dir`, with `options` (NULL: the defaults) saying how strictly the series
/// is checked. Out-of-range options return `AC_STATUS_INVALID_ARGUMENT`. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_series_load_dir_with_options(
    dir: *const c_char,
    series_uid: *const c_char,
    options: *const ac_load_options,
    out: *mut *mut ac_series,
) -> ac_status {
    boundary("ac_series_load_dir_with_options", || {
        let out = try_out!(out, "out");
        let dir = try_str!(dir, "dir");
        let uid = try_opt_str!(series_uid, "series_uid");
        let opts = load_options(options)?;
        let ct = load_series(Path::new(dir), uid, &opts)?;
        *out = register::<ac_series>(SeriesBody::new(ct));
        Ok(())
    })
}

/// Collects DICOM files a host already holds in memory (from a PACS query, an archive, its own
/// database) and loads them as one `ac_series`, without touching the disk.
///
/// Use: `ac_series_builder_new`, `ac_series_builder_add_buffer` once per file (the bytes are
/// copied: the host may free its buffer when the call returns), `ac_series_builder_build`, then
/// `ac_series_builder_free`.
///
/// Threading: `ac_series_builder_add_buffer` takes `ac_series_builder*`: one thread at a time
/// per builder (calls are serialised inside, so a mistake cannot corrupt it, but the order of
/// buffers from racing threads is unspecified; it does not affect the series). Different
/// builders are independent.
pub struct ac_series_builder {
    _private: [u8; 0],
}

pub(crate) struct BuilderBody {
    buffers: Mutex<Vec<(String, Vec<u8>)>>,
}

impl Handle for ac_series_builder {
    type Body = BuilderBody;
    const NAME: &'static str = "ac_series_builder";
}

/// Creates an empty series builder, freed with `ac_series_builder_free`. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_series_builder_new(out: *mut *mut ac_series_builder) -> ac_status {
    boundary("ac_series_builder_new", || {
        let out = try_out!(out, "out");
        *out = register::<ac_series_builder>(BuilderBody {
            buffers: Mutex::new(Vec::new()),
        });
        Ok(())
    })
}

/// Adds one DICOM file held in memory: `len` bytes at `data` (with or without the 128-byte
/// preamble and file meta), copied. `name` (may be NULL) names the buffer in error messages and
/// stands for the file path (e.g. the SOP Instance UID or the host's file name); NULL gives
/// `"buffer #N"` (N counted from 1 in the order added).
///
/// Nothing is parsed yet: `ac_series_builder_build` reports bad buffers. `data` NULL returns
/// `AC_STATUS_NULL_ARGUMENT`, `len` 0 `AC_STATUS_INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_series_builder_add_buffer(
    builder: *mut ac_series_builder,
    data: *const u8,
    len: usize,
    name: *const c_char,
) -> ac_status {
    boundary("ac_series_builder_add_buffer", || {
        let b = get(builder, "builder")?;
        if data.is_null() {
            return Err(FfiError::null("data"));
        }
        if len == 0 {
            return Err(FfiError::new(
                ac_status::InvalidArgument,
                "argument `len` is 0: an empty buffer is not a DICOM file",
            ));
        }
        let name = try_opt_str!(name, "name").map(str::to_owned);
        // SAFETY: non-NULL; the caller promises `len` readable bytes at `data`.
        let bytes = unsafe { std::slice::from_raw_parts(data, len) }.to_vec();
        let mut list = b.buffers.lock().unwrap_or_else(|p| p.into_inner());
        let name = name.unwrap_or_else(|| format!("buffer #{}", list.len() + 1));
        list.push((name, bytes));
        Ok(())
    })
}

/// Sets `*count` to the number of buffers added so far. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_series_builder_count(
    builder: *const ac_series_builder,
    count: *mut usize,
) -> ac_status {
    boundary("ac_series_builder_count", || {
        let out = try_out!(count, "count");
        let b = get(builder, "builder")?;
        *out = b.buffers.lock().unwrap_or_else(|p| p.into_inner()).len();
        Ok(())
    })
}

/// Loads a CT series from the buffers added, exactly as `ac_series_load_dir_with_options` does
/// from a folder: with `series_uid` NULL the largest usable CT series among them, otherwise the
/// series with that Series Instance UID (`AC_STATUS_SERIES_NOT_FOUND` if absent). Objects of
/// other series (an RTSTRUCT, a scout) are ignored; a buffer that is not DICOM fails the call
/// with `AC_STATUS_NOT_DICOM` naming it. `options` NULL: the defaults.
///
/// The same files give the same volume and geometry as loading them from a folder. On success
/// `*out` receives a new series, freed with `ac_series_free`; the builder is unchanged (it may
/// be built again, or freed).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_series_builder_build(
    builder: *const ac_series_builder,
    series_uid: *const c_char,
    options: *const ac_load_options,
    out: *mut *mut ac_series,
) -> ac_status {
    boundary("ac_series_builder_build", || {
        let out = try_out!(out, "out");
        let b = get(builder, "builder")?;
        let uid = try_opt_str!(series_uid, "series_uid");
        let opts = load_options(options)?;
        let list = b.buffers.lock().unwrap_or_else(|p| p.into_inner());
        if list.is_empty() {
            return Err(FfiError::new(
                ac_status::NoSeries,
                "the builder holds no buffers (call ac_series_builder_add_buffer first)",
            ));
        }
        let views: Vec<(String, &[u8])> = list
            .iter()
            .map(|(n, b)| (n.clone(), b.as_slice()))
            .collect();
        let ct = load_series_buffers(&views, uid, &opts)?;
        *out = register::<ac_series>(SeriesBody::new(ct));
        Ok(())
    })
}

/// Frees a builder and the copies of its buffers. NULL is a no-op. Series built from it stay
/// valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_series_builder_free(builder: *mut ac_series_builder) -> ac_status {
    boundary("ac_series_builder_free", || release(builder, "builder"))
}
