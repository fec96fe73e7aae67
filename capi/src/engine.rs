//! Engine (ONNX Runtime + execution options), model packages and CT series.

use std::ffi::{CString, c_char};
use std::path::{Path, PathBuf};

use super::boundary::{FfiError, boundary, try_opt_str, try_out, try_str};
use super::handle::{Handle, get, register, release};
use super::status::ac_status;
use autocontour::dicom::{CtSeries, LoadOptions, load_series};
use autocontour::model::{Device, Fallback, Model, ModelOptions};
use autocontour::runtime::{RuntimeOptions, ensure_loaded};
use autocontour::volume::{Geometry, HuVolume};

/// What `ac_engine_options.fallback` asks for when the requested execution provider (device)
/// cannot run.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ac_fallback {
    /// Fall back to the CPU; the result reports it (`ac_result_execution`).
    Cpu = 0,
    /// Fail with `AC_STATUS_EXECUTION_PROVIDER`.
    Fail = 1,
}

/// Options for `ac_engine_new`. Fill with `ac_engine_options_init()` first, then set fields;
/// strings are only read during `ac_engine_new` (the engine keeps copies).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ac_engine_options {
    /// Path of the ONNX Runtime shared library (UTF-8), or NULL: the environment variable
    /// `AUTOCONTOUR_ORT_LIB`, then `libonnxruntime.so.1` next to the executable. ONNX Runtime is
    /// loaded once per process: a later engine naming another file fails with
    /// `AC_STATUS_ORT_ALREADY_LOADED`.
    pub ort_library: *const c_char,
    /// Execution provider: `"cpu"` (NULL means this), `"cuda"`, `"cuda:N"`, `"tensorrt:N"`.
    pub device: *const c_char,
    /// CPU threads for ONNX Runtime's intra-op pool; 0 = ONNX Runtime's default.
    pub threads: u32,
    /// An `ac_fallback` value: what happens when `device` cannot run.
    pub fallback: u32,
    /// Upper bound for the inference score buffers, bytes; 0 = the default (8 GiB). A CT that
    /// would need more fails with `AC_STATUS_MEMORY_LIMIT` before allocating.
    pub memory_limit_bytes: u64,
}

impl Default for ac_engine_options {
    fn default() -> Self {
        ac_engine_options {
            ort_library: std::ptr::null(),
            device: std::ptr::null(),
            threads: 0,
            fallback: ac_fallback::Cpu as u32,
            memory_limit_bytes: 0,
        }
    }
}

/// An engine: ONNX Runtime loaded, plus execution options shared by the models opened with it.
///
/// Threading: immutable after creation; any call taking `const ac_engine*` may run on any
/// thread, concurrently. Free it once, when no other call uses it (models opened from it stay
/// valid after it is freed).
pub struct ac_engine {
    _private: [u8; 0],
}

pub(crate) struct Engine {
    options: ModelOptions,
    pub(crate) memory_limit_bytes: u64,
    ort_version: CString,
}

impl Handle for ac_engine {
    type Body = Engine;
    const NAME: &'static str = "ac_engine";
}

/// A model package opened for inference (`model.json` + its ONNX file, hash checked).
///
/// Threading: shareable. Any number of threads may run `ac_segment` on one model at once (runs
/// of the ONNX session are serialised inside; pre- and postprocessing run in parallel).
pub struct ac_model {
    _private: [u8; 0],
}

pub(crate) struct ModelBody {
    pub(crate) model: Model,
    pub(crate) memory_limit_bytes: u64,
    name: CString,
    version: CString,
}

impl Handle for ac_model {
    type Body = ModelBody;
    const NAME: &'static str = "ac_model";
}

/// A CT series loaded into memory (HU volume, geometry, and the DICOM references an RT Structure
/// Set needs).
///
/// Threading: immutable; any call taking `const ac_series*` may run on any thread, concurrently
/// (e.g. several models segmenting one series).
pub struct ac_series {
    _private: [u8; 0],
}

pub(crate) struct SeriesBody {
    pub(crate) ct: CtSeries,
    uid: CString,
    /// The voxels as `f32` for `ac_series_voxels` when the series holds `i16` (made on the
    /// first call, kept while the series lives).
    voxels_f32: std::sync::OnceLock<Vec<f32>>,
}

impl Handle for ac_series {
    type Body = SeriesBody;
    const NAME: &'static str = "ac_series";
}

impl SeriesBody {
    pub(crate) fn new(ct: CtSeries) -> Self {
        SeriesBody {
            uid: cstring(&ct.series_uid),
            ct,
            voxels_f32: std::sync::OnceLock::new(),
        }
    }
}

impl ac_geometry {
    /// The library's geometry for a C one (sizes, spacings and direction checked).
    pub(crate) fn to_geometry(self) -> autocontour::Result<Geometry> {
        let d = &self.direction;
        Geometry::new(
            self.size,
            self.origin,
            self.spacing,
            [[d[0], d[1], d[2]], [d[3], d[4], d[5]], [d[6], d[7], d[8]]],
        )
    }
}

/// Position, spacing and orientation of a voxel grid in the DICOM patient frame (LPS, mm).
///
/// Voxel (i, j, k) = (column, row, slice); data are slice-major: `index = (k*rows + j)*cols + i`.
/// patient = origin + direction * diag(spacing) * (i, j, k).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ac_geometry {
    /// Voxels along i (columns), j (rows), k (slices).
    pub size: [usize; 3],
    /// Patient position of the centre of voxel (0, 0, 0), mm (Image Position (Patient) of the
    /// first slice).
    pub origin: [f64; 3],
    /// Distance between voxel centres along i, j, k, mm.
    pub spacing: [f64; 3],
    /// Row-major 3x3 matrix (`direction[3*row + col]`) whose columns are the unit vectors of the
    /// i, j and k axes in the patient frame.
    pub direction: [f64; 9],
}

impl From<&Geometry> for ac_geometry {
    fn from(g: &Geometry) -> Self {
        let mut direction = [0.0; 9];
        for (r, row) in g.direction.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                if let Some(d) = direction.get_mut(3 * r + c) {
                    *d = *v;
                }
            }
        }
        ac_geometry {
            size: g.size,
            origin: g.origin,
            spacing: g.spacing,
            direction,
        }
    }
}

/// A C string copy of `s` (interior NULs, impossible in DICOM UIDs and manifest names, become
/// spaces).
pub(crate) fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', " ")).unwrap_or_default()
}

/// Fills `options` with the defaults: ONNX Runtime from `AUTOCONTOUR_ORT_LIB` or next to the
/// executable, CPU, ONNX Runtime's default thread count, fall back to the CPU, 8 GiB memory limit.
///
/// Returns `AC_STATUS_NULL_ARGUMENT` when `options` is NULL. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_engine_options_init(options: *mut ac_engine_options) -> ac_status {
    boundary("ac_engine_options_init", || {
        *try_out!(options, "options") = ac_engine_options::default();
        Ok(())
    })
}

/// Creates an engine: loads ONNX Runtime (checked: present, complete, really ONNX Runtime,
/// version >= 1.22) and validates the options. `options` may be NULL for the defaults.
///
/// On success `*out` receives a new engine, to be freed with `ac_engine_free`; on failure `*out`
/// is left untouched. Errors: `AC_STATUS_ORT_*`, `AC_STATUS_INVALID_ARGUMENT` (unknown device or
/// fallback), `AC_STATUS_INVALID_UTF8`. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_engine_new(
    options: *const ac_engine_options,
    out: *mut *mut ac_engine,
) -> ac_status {
    boundary("ac_engine_new", || {
        let out = try_out!(out, "out");
        // SAFETY: NULL means defaults; otherwise the caller promises a valid struct.
        let o = unsafe { options.as_ref() }.copied().unwrap_or_default();
        let library = try_opt_str!(o.ort_library, "options->ort_library").map(PathBuf::from);
        let device: Device = try_opt_str!(o.device, "options->device")
            .unwrap_or("cpu")
            .parse()?;
        let fallback = match o.fallback {
            0 => Fallback::ToCpu,
            1 => Fallback::Fail,
            n => {
                return Err(FfiError::new(
                    ac_status::InvalidArgument,
                    format!(
                        "options->fallback is {n}: expected AC_FALLBACK_CPU (0) or AC_FALLBACK_FAIL (1)"
                    ),
                ));
            }
        };
        let runtime = RuntimeOptions { library };
        let info = ensure_loaded(&runtime)?;
        let engine = Engine {
            options: ModelOptions {
                runtime,
                device,
                threads: o.threads as usize,
                fallback,
                // nnU-Net packages: every fold the package lists.
                folds: None,
            },
            memory_limit_bytes: if o.memory_limit_bytes == 0 {
                autocontour::infer::InferOptions::default().memory_limit_bytes
            } else {
                o.memory_limit_bytes
            },
            ort_version: cstring(&info.version),
        };
        *out = register::<ac_engine>(engine);
        Ok(())
    })
}

/// Sets `*version` to the version string of the loaded ONNX Runtime (e.g. `"1.31.1"`), valid
/// while the engine lives. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_engine_ort_version(
    engine: *const ac_engine,
    version: *mut *const c_char,
) -> ac_status {
    boundary("ac_engine_ort_version", || {
        let out = try_out!(version, "version");
        let e = get(engine, "engine")?;
        // The CString lives in the registry's Arc until ac_engine_free.
        *out = e.ort_version.as_ptr();
        Ok(())
    })
}

/// Frees an engine. NULL is a no-op (`AC_STATUS_OK`); a freed or foreign handle returns
/// `AC_STATUS_INVALID_HANDLE` / `AC_STATUS_WRONG_HANDLE_TYPE` and changes nothing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_engine_free(engine: *mut ac_engine) -> ac_status {
    boundary("ac_engine_free", || release(engine, "engine"))
}

/// Opens the model package in folder `dir` (`model.json` and the ONNX file it names; the file's
/// SHA-256 and the graph's inputs/outputs are checked against the manifest) on the engine's
/// execution provider.
///
/// On success `*out` receives a new model, freed with `ac_model_free`. Errors:
/// `AC_STATUS_MODEL_*`, `AC_STATUS_INVALID_MANIFEST`, `AC_STATUS_EXECUTION_PROVIDER`. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_model_open(
    engine: *const ac_engine,
    dir: *const c_char,
    out: *mut *mut ac_model,
) -> ac_status {
    boundary("ac_model_open", || {
        let out = try_out!(out, "out");
        let dir = try_str!(dir, "dir");
        let e = get(engine, "engine")?;
        let model = Model::open(Path::new(dir), &e.options)?;
        let body = ModelBody {
            name: cstring(&model.manifest.name),
            version: cstring(&model.manifest.version),
            model,
            memory_limit_bytes: e.memory_limit_bytes,
        };
        *out = register::<ac_model>(body);
        Ok(())
    })
}

/// Sets `*name` and `*version` (either may be NULL if not wanted) to the model's name and
/// version from its manifest, valid while the model lives. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_model_info(
    model: *const ac_model,
    name: *mut *const c_char,
    version: *mut *const c_char,
) -> ac_status {
    boundary("ac_model_info", || {
        let m = get(model, "model")?;
        // SAFETY: optional outputs; the caller promises non-NULL ones are writable.
        if let Some(n) = unsafe { name.as_mut() } {
            *n = m.name.as_ptr();
        }
        // SAFETY: as above.
        if let Some(v) = unsafe { version.as_mut() } {
            *v = m.version.as_ptr();
        }
        Ok(())
    })
}

/// Frees a model. NULL is a no-op. Results made with it stay valid. A call still running on
/// another thread keeps the model alive until it returns.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_model_free(model: *mut ac_model) -> ac_status {
    boundary("ac_model_free", || release(model, "model"))
}

/// Loads a CT series from the folder `dir` (searched recursively, any file names). With
/// `series_uid` NULL the largest usable CT series is taken; otherwise the series with that
/// Series Instance UID.
///
/// Slices are sorted along the slice normal; irregular gaps, duplicates, mixed orientation or
/// size, gantry tilt and multi-frame images are refused with their own status and a message
/// naming the file. On success `*out` receives a new series, freed with `ac_series_free`.
/// Uses the default `ac_load_options`; `ac_series_load_dir_with_options` takes others.
/// Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_series_load_dir(
    dir: *const c_char,
    series_uid: *const c_char,
    out: *mut *mut ac_series,
) -> ac_status {
    boundary("ac_series_load_dir", || {
        let out = try_out!(out, "out");
        let dir = try_str!(dir, "dir");
        let uid = try_opt_str!(series_uid, "series_uid");
        let ct = load_series(Path::new(dir), uid, &LoadOptions::default())?;
        *out = register::<ac_series>(SeriesBody::new(ct));
        Ok(())
    })
}

/// Writes the series' voxel grid to `*geometry`. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_series_geometry(
    series: *const ac_series,
    geometry: *mut ac_geometry,
) -> ac_status {
    boundary("ac_series_geometry", || {
        let out = try_out!(geometry, "geometry");
        let s = get(series, "series")?;
        *out = ac_geometry::from(s.ct.volume.geometry());
        Ok(())
    })
}

/// Sets `*uid` to the Series Instance UID, valid while the series lives. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_series_uid(
    series: *const ac_series,
    uid: *mut *const c_char,
) -> ac_status {
    boundary("ac_series_uid", || {
        let out = try_out!(uid, "uid");
        let s = get(series, "series")?;
        *out = s.uid.as_ptr();
        Ok(())
    })
}

/// Gives a view of the CT voxels in Hounsfield units: `*data` points to `*len` floats laid out
/// as described for `ac_geometry`, valid while the series lives. Read only. Any thread. A
/// series whose HU are integers within ±32767 (nearly every CT) is held as 16-bit integers;
/// the first call then makes the float copy (4 bytes a voxel), kept until the series is freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_series_voxels(
    series: *const ac_series,
    data: *mut *const f32,
    len: *mut usize,
) -> ac_status {
    boundary("ac_series_voxels", || {
        let data = try_out!(data, "data");
        let len = try_out!(len, "len");
        let s = get(series, "series")?;
        let v: &[f32] = match &s.ct.volume {
            HuVolume::F32(v) => v.data(),
            HuVolume::I16(_) => s
                .voxels_f32
                .get_or_init(|| s.ct.volume.to_f32().into_data()),
        };
        *data = v.as_ptr();
        *len = v.len();
        Ok(())
    })
}

/// Frees a series. NULL is a no-op. Results made from it keep what they need.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_series_free(series: *mut ac_series) -> ac_status {
    boundary("ac_series_free", || release(series, "series"))
}
