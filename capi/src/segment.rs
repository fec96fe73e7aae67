//! Segmentation: cancel tokens, `ac_segment`, results and memory buffers.

use std::ffi::{CString, c_char, c_void};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use dicom_object::{FileDicomObject, InMemDicomObject};

use super::boundary::{FfiError, boundary, try_opt_str, try_out, try_str};
use super::engine::{ModelBody, SeriesBody, ac_geometry, ac_model, ac_series, cstring};
use super::handle::{Handle, get, get_opt, register, release};
use super::status::ac_status;
use autocontour::audit::{AuditOutput, AuditRecord};
use autocontour::contour::{Contour, ContourOptions};
use autocontour::infer::{CancelToken, InferOptions, Progress};
use autocontour::nifti::{nifti_labels_bytes, write_nifti_labels};
use autocontour::pipeline::{Segmentation, StructureSummary, segment_with};
use autocontour::plausibility::{Flag, OnMismatch};
use autocontour::profile::SiteProfile;
use autocontour::rtstruct::{RoiContours, build_rtstruct, write_rtstruct};
use autocontour::seg::{build_seg, write_seg};

/// A cancellation flag for `ac_segment`.
///
/// Threading: `ac_cancel_token_cancel` may be called from any thread at any time, also while a
/// segmentation using the token runs on another thread; that run then returns
/// `AC_STATUS_CANCELLED` soon (checked between tiles; a tile inside ONNX Runtime is terminated).
/// A token stays cancelled; use a new one for the next run.
pub struct ac_cancel_token {
    _private: [u8; 0],
}

impl Handle for ac_cancel_token {
    type Body = CancelToken;
    const NAME: &'static str = "ac_cancel_token";
}

/// The outcome of `ac_segment`: label map, structures, execution provider, timings. It keeps the
/// model and series it was made from alive, so it can write an RT Structure Set on its own.
///
/// Threading: immutable; every `const ac_result*` getter may run on any thread, concurrently.
/// Pointers it hands out (names, label map) stay valid until `ac_result_free`.
pub struct ac_result {
    _private: [u8; 0],
}

pub(crate) struct ResultBody {
    seg: Segmentation,
    model: Arc<ModelBody>,
    series: Arc<SeriesBody>,
    names: Vec<CString>,
    roi_types: Vec<CString>,
    flags: Vec<CString>,
    /// Per structure, each flag's (code, message).
    pub(crate) structure_flags: Vec<Vec<(CString, CString)>>,
    /// Case flags' (code, message).
    pub(crate) case_flags: Vec<(CString, CString)>,
    provider: CString,
    fallback_reason: Option<CString>,
    /// The RT Structure Set's ROIs and contours, made on first use and kept.
    rois: OnceLock<Result<Vec<RoiContours>, FfiError>>,
    /// The case's audit record (outputs added as they are written) and the log it is appended
    /// to when the result is freed.
    audit: Mutex<AuditRecord>,
    audit_log: Option<std::path::PathBuf>,
}

impl Drop for ResultBody {
    fn drop(&mut self) {
        if let Some(log) = &self.audit_log {
            let record = self.audit.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = record.append_to(log) {
                log::error!("audit log {}: {e}", log.display());
            }
        }
    }
}

impl ResultBody {
    /// Adds a written file to the case's audit record.
    fn record_output(&self, kind: &str, path: &str, uid: Option<String>) {
        self.audit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .outputs
            .push(AuditOutput {
                kind: kind.into(),
                path: path.into(),
                sop_instance_uid: uid,
            });
    }

    /// The ROIs and contours of the RT Structure Set (computed once; concurrent first calls
    /// wait for the one computing).
    fn rois(&self) -> Result<&[RoiContours], FfiError> {
        self.rois
            .get_or_init(|| {
                self.seg
                    .rtstruct_rois(&self.model.model, &ContourOptions::default())
                    .map_err(FfiError::from)
            })
            .as_deref()
            .map_err(Clone::clone)
    }

    /// Structure `index` (as numbered by `ac_result_structure`), or
    /// `AC_STATUS_INDEX_OUT_OF_RANGE`.
    fn structure(&self, index: usize) -> Result<&StructureSummary, FfiError> {
        self.seg
            .structures
            .get(index)
            .ok_or_else(|| structure_range(index, self.seg.structures.len()))
    }

    /// The contours of structure `index` (as numbered by `ac_result_structure`).
    fn structure_contours(&self, index: usize) -> Result<&[Contour], FfiError> {
        let s = self.structure(index)?;
        let rois = self.rois()?;
        Ok(rois
            .iter()
            .find(|r| r.spec.number == u32::from(s.label))
            .map_or(&[][..], |r| r.contours.as_slice()))
    }
}

/// The error for a structure index past the end of `n` structures.
fn structure_range(index: usize, n: usize) -> FfiError {
    FfiError::new(
        ac_status::IndexOutOfRange,
        format!("structure index {index} is past the end ({n} structures)"),
    )
}

impl Handle for ac_result {
    type Body = ResultBody;
    const NAME: &'static str = "ac_result";
}

/// A byte buffer owned by the library (e.g. an RT Structure Set in memory). Read it with
/// `ac_buffer_data`, free it with `ac_buffer_free` (never with C `free`).
///
/// Threading: immutable; readable from any thread.
pub struct ac_buffer {
    _private: [u8; 0],
}

impl Handle for ac_buffer {
    type Body = Vec<u8>;
    const NAME: &'static str = "ac_buffer";
}

/// Progress callback for `ac_segment`: `user_data` as given, `stage` one of `"preprocess"`,
/// `"inference"`, `"resample"` (NUL-terminated, valid only during the call), `fraction` the
/// overall progress 0-1, never decreasing. Called on the thread that called `ac_segment`.
/// It must not unwind (no C++ exception may leave it).
pub type ac_progress_callback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, stage: *const c_char, fraction: f64)>;

/// One segmented structure, as reported by `ac_result_structure`. The strings are owned by the
/// result and valid until `ac_result_free`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ac_structure {
    /// Structure name from the model manifest (UTF-8).
    pub name: *const c_char,
    /// RT ROI Interpreted Type (`ORGAN`, `EXTERNAL`...).
    pub rt_roi_type: *const c_char,
    /// Review flags' sentences joined by `"; "`, an empty string when none; each flag's code and
    /// sentence apart: `ac_result_flag`.
    pub flags: *const c_char,
    /// Value of this structure in the label map.
    pub label: u8,
    /// Display colour, RGB.
    pub color: [u8; 3],
    /// Voxels in the final label map.
    pub voxels: u64,
    /// Volume in millilitres.
    pub volume_ml: f64,
    /// Mean model probability over the structure (valid when `has_confidence`).
    pub confidence: f64,
    /// Whether `confidence` is known (false when the structure is empty).
    pub has_confidence: bool,
}

/// One contour of a structure, as reported by `ac_result_contour`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ac_contour {
    /// Index k (0-based) of the CT slice / label-map plane it lies on.
    pub slice: usize,
    /// Number of points (at least 3).
    pub point_count: usize,
    /// `3 * point_count` doubles: x, y, z of each point in the DICOM patient frame (LPS), mm.
    /// Owned by the result, valid until `ac_result_free`. The polygon is closed (the last point
    /// joins the first; it is not repeated).
    pub points: *const f64,
}

/// Seconds spent per stage of one `ac_segment` call.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ac_timings {
    /// Reorientation, resampling to the model grid, normalisation.
    pub preprocess_s: f64,
    /// The tile loop, ONNX Runtime included.
    pub inference_s: f64,
    /// Inside ONNX Runtime's `Run` only.
    pub ort_run_s: f64,
    /// Scores back to the CT grid and argmax.
    pub resample_s: f64,
    /// Postprocessing (largest component, hole filling).
    pub postprocess_s: f64,
}

/// Creates a cancellation token (not cancelled), freed with `ac_cancel_token_free`. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_cancel_token_new(out: *mut *mut ac_cancel_token) -> ac_status {
    boundary("ac_cancel_token_new", || {
        let out = try_out!(out, "out");
        *out = register::<ac_cancel_token>(CancelToken::new());
        Ok(())
    })
}

/// Cancels every run using `token`. Any thread, any time, any number of times.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_cancel_token_cancel(token: *const ac_cancel_token) -> ac_status {
    boundary("ac_cancel_token_cancel", || {
        get(token, "token")?.cancel();
        Ok(())
    })
}

/// Sets `*cancelled` to whether `token` was cancelled. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_cancel_token_is_cancelled(
    token: *const ac_cancel_token,
    cancelled: *mut bool,
) -> ac_status {
    boundary("ac_cancel_token_is_cancelled", || {
        let out = try_out!(cancelled, "cancelled");
        *out = get(token, "token")?.is_cancelled();
        Ok(())
    })
}

/// Frees a token. NULL is a no-op. A run still using it keeps it alive until it returns.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_cancel_token_free(token: *mut ac_cancel_token) -> ac_status {
    boundary("ac_cancel_token_free", || release(token, "token"))
}

static RUN_COUNTER: AtomicU64 = AtomicU64::new(0);

/// What `ac_segment_options.on_mismatch` does with a CT that does not suit the model (body
/// region, scan length, no body, expected structures missing).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ac_on_mismatch {
    /// Segment anyway; the result carries case flags (`ac_result_case_flag`).
    Flag = 0,
    /// Fail with `AC_STATUS_NOT_APPLICABLE`; the message lists each reason.
    Refuse = 1,
}

/// Options of `ac_segment_with_options`. Fill with `ac_segment_options_init()` first, then set
/// fields.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ac_segment_options {
    /// An `ac_on_mismatch` value. Default `AC_ON_MISMATCH_FLAG`.
    pub on_mismatch: u32,
    /// A site profile file (TOML or JSON, UTF-8 path; docs/profiles.md), or NULL (default):
    /// structure names, colours, types and subset, structure set label, approval status. It is
    /// checked against the model before inference (`AC_STATUS_INVALID_PROFILE`).
    pub profile_path: *const c_char,
    /// A file to append the case's audit line to (one JSON line), or NULL (default). A failed
    /// segmentation appends its line (with the error's name) before returning; a successful
    /// one when its result is freed, with every output written through the result.
    pub audit_log_path: *const c_char,
}

/// Fills `options` with the defaults (`on_mismatch` = `AC_ON_MISMATCH_FLAG`). Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_segment_options_init(options: *mut ac_segment_options) -> ac_status {
    boundary("ac_segment_options_init", || {
        *try_out!(options, "options") = ac_segment_options {
            on_mismatch: ac_on_mismatch::Flag as u32,
            profile_path: std::ptr::null(),
            audit_log_path: std::ptr::null(),
        };
        Ok(())
    })
}

/// Segments `series` with `model`: inference on the engine's execution provider, then the
/// manifest's postprocessing and plausibility rules. Blocks until done. Same as
/// `ac_segment_with_options` with the default options.
///
/// `progress` (may be NULL) is called with `user_data` on this thread. `cancel` (may be NULL) lets
/// another thread stop the run (`AC_STATUS_CANCELLED`). On success `*out` receives a new result,
/// freed with `ac_result_free`; on failure `*out` is untouched. The same inputs on the same
/// execution provider give the same label map. Many threads may segment with one model at once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_segment(
    model: *const ac_model,
    series: *const ac_series,
    progress: ac_progress_callback,
    user_data: *mut c_void,
    cancel: *const ac_cancel_token,
    out: *mut *mut ac_result,
) -> ac_status {
    boundary("ac_segment", || {
        segment_impl(
            model,
            series,
            std::ptr::null(),
            progress,
            user_data,
            cancel,
            out,
        )
    })
}

/// `ac_segment` with `options` (NULL: the defaults): `on_mismatch` chooses between case flags and
/// `AC_STATUS_NOT_APPLICABLE` for a CT that does not suit the model. An `on_mismatch` value
/// outside `ac_on_mismatch` returns `AC_STATUS_INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_segment_with_options(
    model: *const ac_model,
    series: *const ac_series,
    options: *const ac_segment_options,
    progress: ac_progress_callback,
    user_data: *mut c_void,
    cancel: *const ac_cancel_token,
    out: *mut *mut ac_result,
) -> ac_status {
    boundary("ac_segment_with_options", || {
        segment_impl(model, series, options, progress, user_data, cancel, out)
    })
}

fn flag_strings(flags: &[Flag]) -> Vec<(CString, CString)> {
    flags
        .iter()
        .map(|f| (cstring(f.code.as_str()), cstring(&f.message)))
        .collect()
}

fn segment_impl(
    model: *const ac_model,
    series: *const ac_series,
    options: *const ac_segment_options,
    progress: ac_progress_callback,
    user_data: *mut c_void,
    cancel: *const ac_cancel_token,
    out: *mut *mut ac_result,
) -> Result<(), FfiError> {
    let out = try_out!(out, "out");
    let m = get(model, "model")?;
    let s = get(series, "series")?;
    let token = get_opt(cancel, "cancel")?;
    // SAFETY: optional input; the caller promises a non-NULL pointer is readable.
    let o = unsafe { options.as_ref() };
    let (profile_path, audit_log) = match o {
        Some(o) => (
            try_opt_str!(o.profile_path, "options->profile_path"),
            try_opt_str!(o.audit_log_path, "options->audit_log_path").map(std::path::PathBuf::from),
        ),
        None => (None, None),
    };
    let on_mismatch = match o.map(|o| o.on_mismatch) {
        None | Some(0) => OnMismatch::Flag,
        Some(1) => OnMismatch::Refuse,
        Some(n) => {
            return Err(FfiError::new(
                ac_status::InvalidArgument,
                format!(
                    "options->on_mismatch is {n}: expected AC_ON_MISMATCH_FLAG (0) or AC_ON_MISMATCH_REFUSE (1)"
                ),
            ));
        }
    };
    // The user data pointer is only handed back to the caller's callback, on this thread.
    let ud = user_data as usize;
    let report = move |p: Progress<'_>| {
        if let Some(cb) = progress {
            let stage = cstring(p.stage);
            // SAFETY: the caller gave this callback and its user data for this call.
            unsafe { cb(ud as *mut c_void, stage.as_ptr(), p.fraction) };
        }
    };
    let opts = InferOptions {
        memory_limit_bytes: m.memory_limit_bytes,
        progress: progress.is_some().then_some(&report as _),
        cancel: token.map(|t| (*t).clone()),
        ..InferOptions::default()
    };
    let run = RUN_COUNTER.fetch_add(1, Ordering::Relaxed);
    log::debug!(
        "ac_segment run {run}: {} on {}",
        m.model.manifest.name,
        s.ct.series_uid
    );
    let started = std::time::Instant::now();
    let mut profile_id = None;
    let outcome = (|| {
        let profile = match profile_path {
            Some(p) => {
                let p = SiteProfile::load(Path::new(p))?.resolve(&m.model.manifest)?;
                profile_id = Some((p.name.clone(), p.sha256.clone()));
                Some(p)
            }
            None => None,
        };
        let mut seg = segment_with(&m.model, &s.ct, &opts, on_mismatch)?;
        if let Some(p) = profile {
            seg.apply_profile(p);
        }
        Ok::<_, autocontour::Error>(seg)
    })();
    let seg = match outcome {
        Ok(seg) => seg,
        Err(e) => {
            if let Some(log) = &audit_log {
                let mut r = AuditRecord::failure(
                    &m.model,
                    &e,
                    Some(&s.ct.series_uid),
                    started.elapsed().as_secs_f64(),
                );
                if let Some((name, sha)) = &profile_id {
                    r = r.with_profile(name, sha);
                }
                if let Err(le) = r.append_to(log) {
                    log::error!("audit log {}: {le}", log.display());
                }
            }
            return Err(e.into());
        }
    };
    let audit = AuditRecord::success(
        &m.model,
        &seg,
        &s.ct.series_uid,
        Vec::new(),
        started.elapsed().as_secs_f64(),
    );
    let body = ResultBody {
        names: seg.structures.iter().map(|x| cstring(&x.name)).collect(),
        roi_types: seg
            .structures
            .iter()
            .map(|x| cstring(&x.rt_roi_type))
            .collect(),
        flags: seg
            .structures
            .iter()
            .map(|x| {
                let m: Vec<&str> = x.flags.iter().map(|f| f.message.as_str()).collect();
                cstring(&m.join("; "))
            })
            .collect(),
        structure_flags: seg
            .structures
            .iter()
            .map(|x| flag_strings(&x.flags))
            .collect(),
        case_flags: flag_strings(&seg.case_flags),
        provider: cstring(&seg.execution.provider),
        rois: OnceLock::new(),
        fallback_reason: seg.execution.fallback_reason.as_deref().map(cstring),
        audit: Mutex::new(audit),
        audit_log,
        seg,
        model: m,
        series: s,
    };
    *out = register::<ac_result>(body);
    Ok(())
}

/// A review flag, as reported by `ac_result_flag` and `ac_result_case_flag`. The strings are
/// owned by the result and valid until `ac_result_free`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ac_flag {
    /// Stable machine-readable code (`empty`, `low_confidence`, `volume_out_of_range`,
    /// `outside_container`, `air_in_solid_organ`, `wrong_side`, `swapped_pair`, `truncated`,
    /// `uncertain`; case flags: `expected_missing`, `body_part_mismatch`, `scan_too_short`,
    /// `content_mismatch`, `no_body`).
    pub code: *const c_char,
    /// What was found, as a sentence for the clinician (UTF-8).
    pub message: *const c_char,
}

/// Sets `*count` to the number of review flags of structure `structure_index` (as numbered by
/// `ac_result_structure`). Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_result_flag_count(
    result: *const ac_result,
    structure_index: usize,
    count: *mut usize,
) -> ac_status {
    boundary("ac_result_flag_count", || {
        let out = try_out!(count, "count");
        let r = get(result, "result")?;
        *out = r
            .structure_flags
            .get(structure_index)
            .ok_or_else(|| structure_range(structure_index, r.structure_flags.len()))?
            .len();
        Ok(())
    })
}

/// Writes flag `flag_index` of structure `structure_index` to `*flag`. Indices past the end
/// return `AC_STATUS_INDEX_OUT_OF_RANGE`. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_result_flag(
    result: *const ac_result,
    structure_index: usize,
    flag_index: usize,
    flag: *mut ac_flag,
) -> ac_status {
    boundary("ac_result_flag", || {
        let out = try_out!(flag, "flag");
        let r = get(result, "result")?;
        let (code, message) = r
            .structure_flags
            .get(structure_index)
            .and_then(|f| f.get(flag_index))
            .ok_or_else(|| {
                FfiError::new(
                    ac_status::IndexOutOfRange,
                    format!("no flag {flag_index} on structure {structure_index}"),
                )
            })?;
        *out = ac_flag {
            code: code.as_ptr(),
            message: message.as_ptr(),
        };
        Ok(())
    })
}

/// Sets `*count` to the number of case flags: the CT does not suit the model, expected
/// structures missing. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_result_case_flag_count(
    result: *const ac_result,
    count: *mut usize,
) -> ac_status {
    boundary("ac_result_case_flag_count", || {
        let out = try_out!(count, "count");
        *out = get(result, "result")?.case_flags.len();
        Ok(())
    })
}

/// Writes case flag `index` to `*flag`; an index past the end returns
/// `AC_STATUS_INDEX_OUT_OF_RANGE`. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_result_case_flag(
    result: *const ac_result,
    index: usize,
    flag: *mut ac_flag,
) -> ac_status {
    boundary("ac_result_case_flag", || {
        let out = try_out!(flag, "flag");
        let r = get(result, "result")?;
        let n = r.case_flags.len();
        let (code, message) = r.case_flags.get(index).ok_or_else(|| {
            FfiError::new(
                ac_status::IndexOutOfRange,
                format!("case flag index {index} is past the end ({n} flags)"),
            )
        })?;
        *out = ac_flag {
            code: code.as_ptr(),
            message: message.as_ptr(),
        };
        Ok(())
    })
}

/// Uncertainty of one structure on the model grid, as reported by `ac_result_uncertainty`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ac_uncertainty {
    /// Mean normalised softmax entropy over the structure's voxels, 0 (certain) to 1 (uniform).
    pub mean_entropy: f64,
    /// Mean normalised entropy over its boundary voxels (valid when `has_boundary_entropy`).
    pub boundary_entropy: f64,
    /// Mean margin between the winning and the second probability, 0-1.
    pub mean_margin: f64,
    /// Whether `boundary_entropy` is known.
    pub has_boundary_entropy: bool,
    /// Whether the structure has voxels on the model grid (otherwise all values are 0).
    pub known: bool,
}

/// Writes the uncertainty of structure `index` to `*uncertainty`; an index past the end returns
/// `AC_STATUS_INDEX_OUT_OF_RANGE`. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_result_uncertainty(
    result: *const ac_result,
    index: usize,
    uncertainty: *mut ac_uncertainty,
) -> ac_status {
    boundary("ac_result_uncertainty", || {
        let out = try_out!(uncertainty, "uncertainty");
        let r = get(result, "result")?;
        let s = r.structure(index)?;
        *out = match s.uncertainty {
            Some(u) => ac_uncertainty {
                mean_entropy: u.mean_entropy,
                boundary_entropy: u.boundary_entropy.unwrap_or(0.0),
                mean_margin: u.mean_margin,
                has_boundary_entropy: u.boundary_entropy.is_some(),
                known: true,
            },
            None => ac_uncertainty::default(),
        };
        Ok(())
    })
}

/// Gives the label map: `*geometry` (may be NULL) receives its grid (the CT's), `*data` points to
/// `*len` bytes (0 = background, n = the structure whose `label` is n), slice-major as described
/// for `ac_geometry`, valid until `ac_result_free`. Read only. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_result_labels(
    result: *const ac_result,
    geometry: *mut ac_geometry,
    data: *mut *const u8,
    len: *mut usize,
) -> ac_status {
    boundary("ac_result_labels", || {
        let data = try_out!(data, "data");
        let len = try_out!(len, "len");
        let r = get(result, "result")?;
        // SAFETY: optional output; the caller promises a non-NULL pointer is writable.
        if let Some(g) = unsafe { geometry.as_mut() } {
            *g = ac_geometry::from(r.seg.labels.geometry());
        }
        let v = r.seg.labels.data();
        *data = v.as_ptr();
        *len = v.len();
        Ok(())
    })
}

/// Sets `*count` to the number of structures (the model's labels without background). Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_result_structure_count(
    result: *const ac_result,
    count: *mut usize,
) -> ac_status {
    boundary("ac_result_structure_count", || {
        let out = try_out!(count, "count");
        *out = get(result, "result")?.seg.structures.len();
        Ok(())
    })
}

/// Writes structure number `index` (0-based, < count) to `*structure`; an index past the end
/// returns `AC_STATUS_INDEX_OUT_OF_RANGE`. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_result_structure(
    result: *const ac_result,
    index: usize,
    structure: *mut ac_structure,
) -> ac_status {
    boundary("ac_result_structure", || {
        let out = try_out!(structure, "structure");
        let r = get(result, "result")?;
        let n = r.seg.structures.len();
        let range = || structure_range(index, n);
        let s = r.structure(index)?;
        let name = r.names.get(index).ok_or_else(range)?;
        let roi_type = r.roi_types.get(index).ok_or_else(range)?;
        let flags = r.flags.get(index).ok_or_else(range)?;
        *out = ac_structure {
            name: name.as_ptr(),
            rt_roi_type: roi_type.as_ptr(),
            flags: flags.as_ptr(),
            label: s.label,
            color: s.color,
            voxels: s.voxels as u64,
            volume_ml: s.volume_ml,
            confidence: s.confidence.unwrap_or(f64::NAN),
            has_confidence: s.confidence.is_some(),
        };
        Ok(())
    })
}

/// Reports which execution provider ran: `*provider` (`"CPU"`, `"CUDA:0"`, `"TensorRT:0"`) and,
/// when the requested device could not run and the CPU ran instead, `*fallback_reason` (set to
/// NULL otherwise; pass NULL if not wanted). Strings valid until `ac_result_free`. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_result_execution(
    result: *const ac_result,
    provider: *mut *const c_char,
    fallback_reason: *mut *const c_char,
) -> ac_status {
    boundary("ac_result_execution", || {
        let provider = try_out!(provider, "provider");
        let r = get(result, "result")?;
        *provider = r.provider.as_ptr();
        // SAFETY: optional output; the caller promises a non-NULL pointer is writable.
        if let Some(f) = unsafe { fallback_reason.as_mut() } {
            *f = r
                .fallback_reason
                .as_ref()
                .map_or(std::ptr::null(), |c| c.as_ptr());
        }
        Ok(())
    })
}

/// Writes the seconds spent per stage to `*timings`. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_result_timings(
    result: *const ac_result,
    timings: *mut ac_timings,
) -> ac_status {
    boundary("ac_result_timings", || {
        let out = try_out!(timings, "timings");
        let r = get(result, "result")?;
        let t = &r.seg.timings;
        *out = ac_timings {
            preprocess_s: t.infer.preprocess_s,
            inference_s: t.infer.inference_s,
            ort_run_s: t.infer.ort_run_s,
            resample_s: t.infer.resample_s,
            postprocess_s: t.postprocess_s,
        };
        Ok(())
    })
}

/// Writes the RT Structure Set of `result` (one ROI per structure, empty ones included; contours
/// per slice in patient mm, holes as keyholes; the contours `ac_result_contour` gives) to the
/// file `path`. The file is written beside its destination and renamed, so a failure leaves no
/// partial file. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_result_write_rtstruct(
    result: *const ac_result,
    path: *const c_char,
) -> ac_status {
    boundary("ac_result_write_rtstruct", || {
        let path = try_str!(path, "path");
        let r = get(result, "result")?;
        let info = r.seg.output_info();
        let uid = write_rtstruct(Path::new(path), &r.series.ct, r.rois()?, &info)?;
        r.record_output("rtstruct", path, Some(uid));
        Ok(())
    })
}

/// A DICOM file object as file bytes (preamble, file meta, data set).
fn dicom_bytes(obj: &FileDicomObject<InMemDicomObject>, what: &str) -> Result<Vec<u8>, FfiError> {
    let mut bytes = Vec::new();
    obj.write_all(&mut bytes).map_err(|e| {
        FfiError::new(
            ac_status::InvalidArgument,
            format!("cannot encode the {what}: {e}"),
        )
    })?;
    Ok(bytes)
}

/// Like `ac_result_write_rtstruct`, but into memory: `*out` receives a new `ac_buffer` holding
/// the DICOM file (preamble, file meta, data set; the same bytes a file would hold, apart from
/// the fresh UIDs and creation time of each call), freed with `ac_buffer_free`. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_result_rtstruct_buffer(
    result: *const ac_result,
    out: *mut *mut ac_buffer,
) -> ac_status {
    boundary("ac_result_rtstruct_buffer", || {
        let out = try_out!(out, "out");
        let r = get(result, "result")?;
        let obj = build_rtstruct(&r.series.ct, r.rois()?, &r.seg.output_info())?;
        *out = register::<ac_buffer>(dicom_bytes(&obj, "RT Structure Set")?);
        Ok(())
    })
}

/// Writes the label map as a DICOM Segmentation (SEG, binary, one segment per structure with
/// its name, colour and code, frames referencing the CT slices) to the file `path`, atomically
/// like `ac_result_write_rtstruct`. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_result_write_seg(
    result: *const ac_result,
    path: *const c_char,
) -> ac_status {
    boundary("ac_result_write_seg", || {
        let path = try_str!(path, "path");
        let r = get(result, "result")?;
        let segments = r.seg.seg_segments(&r.model.model);
        let uid = write_seg(
            Path::new(path),
            &r.series.ct,
            &*r.seg.written_labels()?,
            &segments,
            &r.seg.output_info(),
        )?;
        r.record_output("seg", path, Some(uid));
        Ok(())
    })
}

/// Like `ac_result_write_seg`, but into memory: `*out` receives a new `ac_buffer` holding the
/// DICOM file, freed with `ac_buffer_free`. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_result_seg_buffer(
    result: *const ac_result,
    out: *mut *mut ac_buffer,
) -> ac_status {
    boundary("ac_result_seg_buffer", || {
        let out = try_out!(out, "out");
        let r = get(result, "result")?;
        let segments = r.seg.seg_segments(&r.model.model);
        let obj = build_seg(
            &r.series.ct,
            &*r.seg.written_labels()?,
            &segments,
            &r.seg.output_info(),
        )?;
        *out = register::<ac_buffer>(dicom_bytes(&obj, "SEG")?);
        Ok(())
    })
}

fn nifti_description(r: &ResultBody) -> String {
    format!("autocontour {}", r.seg.model.0)
}

/// Writes the label map as NIfTI-1 (`uint8`, voxel values as in `ac_result_labels`, affine from
/// the CT geometry converted to NIfTI's RAS) to the file `path`, gzipped when `path` ends in
/// `.gz`; atomically like `ac_result_write_rtstruct`. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_result_write_nifti(
    result: *const ac_result,
    path: *const c_char,
) -> ac_status {
    boundary("ac_result_write_nifti", || {
        let path = try_str!(path, "path");
        let r = get(result, "result")?;
        write_nifti_labels(
            Path::new(path),
            &*r.seg.written_labels()?,
            &nifti_description(&r),
        )?;
        r.record_output("nifti", path, None);
        Ok(())
    })
}

/// Like `ac_result_write_nifti`, but into memory, gzipped when `gzip` is true: `*out` receives a
/// new `ac_buffer` holding exactly the bytes the file (`.nii` or `.nii.gz`) would hold, freed
/// with `ac_buffer_free`. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_result_nifti_buffer(
    result: *const ac_result,
    gzip: bool,
    out: *mut *mut ac_buffer,
) -> ac_status {
    boundary("ac_result_nifti_buffer", || {
        let out = try_out!(out, "out");
        let r = get(result, "result")?;
        let bytes = nifti_labels_bytes(&*r.seg.written_labels()?, &nifti_description(&r), gzip)?;
        *out = register::<ac_buffer>(bytes);
        Ok(())
    })
}

/// Sets `*count` to the number of contours of structure `structure_index` (numbered as by
/// `ac_result_structure`): the contours of its ROI in the RT Structure Set, all slices together,
/// ordered by slice. 0 for an empty structure. The contours are traced on the first call of
/// this, `ac_result_contour` or an RTSTRUCT writer, and kept by the result. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_result_contour_count(
    result: *const ac_result,
    structure_index: usize,
    count: *mut usize,
) -> ac_status {
    boundary("ac_result_contour_count", || {
        let out = try_out!(count, "count");
        let r = get(result, "result")?;
        *out = r.structure_contours(structure_index)?.len();
        Ok(())
    })
}

/// Writes contour `contour_index` (< `ac_result_contour_count`) of structure `structure_index`
/// to `*contour`: its slice, its point count and a pointer to its points, owned by the result
/// and valid until `ac_result_free`. The points are those of the RT Structure Set's Contour
/// Data: closed planar polygons in patient mm, holes joined to their outline by keyholes, an
/// `EXTERNAL` structure traced around the union of all structures. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_result_contour(
    result: *const ac_result,
    structure_index: usize,
    contour_index: usize,
    contour: *mut ac_contour,
) -> ac_status {
    boundary("ac_result_contour", || {
        let out = try_out!(contour, "contour");
        let r = get(result, "result")?;
        let list = r.structure_contours(structure_index)?;
        let c = list.get(contour_index).ok_or_else(|| {
            FfiError::new(
                ac_status::IndexOutOfRange,
                format!(
                    "contour index {contour_index} is past the end ({} contours in structure {structure_index})",
                    list.len()
                ),
            )
        })?;
        *out = ac_contour {
            slice: c.slice,
            point_count: c.points.len(),
            points: c.points.as_ptr().cast(),
        };
        Ok(())
    })
}

/// Sets `*written` to whether structure `structure_index` is written to the RT Structure Set,
/// SEG and NIfTI outputs: true unless the site profile of `ac_segment_options` leaves it out
/// (such a structure has no contours). Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_result_structure_written(
    result: *const ac_result,
    structure_index: usize,
    written: *mut bool,
) -> ac_status {
    boundary("ac_result_structure_written", || {
        let out = try_out!(written, "written");
        let r = get(result, "result")?;
        let s = r.structure(structure_index)?;
        *out = r.seg.is_written(s.label);
        Ok(())
    })
}

/// `*out` receives a new `ac_buffer` holding the case's audit record as one line of JSON (no
/// newline): time, series UID, model name/version/SHA-256, profile name/SHA-256, execution
/// provider, flags, the outputs written through this result so far (with SOP Instance UIDs),
/// duration. The same record is appended to `ac_segment_options.audit_log_path`, if set, when
/// the result is freed. Freed with `ac_buffer_free`. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_result_audit_record(
    result: *const ac_result,
    out: *mut *mut ac_buffer,
) -> ac_status {
    boundary("ac_result_audit_record", || {
        let out = try_out!(out, "out");
        let r = get(result, "result")?;
        let json = r
            .audit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .to_json()?;
        *out = register::<ac_buffer>(json.into_bytes());
        Ok(())
    })
}

/// Frees a result. NULL is a no-op. Pointers obtained from it become invalid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_result_free(result: *mut ac_result) -> ac_status {
    boundary("ac_result_free", || release(result, "result"))
}

/// Gives the contents of a buffer: `*data` points to `*len` bytes, valid until
/// `ac_buffer_free`. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_buffer_data(
    buffer: *const ac_buffer,
    data: *mut *const u8,
    len: *mut usize,
) -> ac_status {
    boundary("ac_buffer_data", || {
        let data = try_out!(data, "data");
        let len = try_out!(len, "len");
        let b = get(buffer, "buffer")?;
        *data = b.as_ptr();
        *len = b.len();
        Ok(())
    })
}

/// Frees a buffer made by the library. NULL is a no-op.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_buffer_free(buffer: *mut ac_buffer) -> ac_status {
    boundary("ac_buffer_free", || release(buffer, "buffer"))
}
