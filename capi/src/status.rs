//! Status codes of the C API and the mapping from [`autocontour::Error`] to them.

use std::ffi::c_char;

use autocontour::Error;

/// The result of every C API call that can fail.
///
/// The numbers are part of the ABI: a code is never reused or renumbered, new codes get new
/// numbers. `AC_STATUS_OK` (0) is success; everything else is a failure, and
/// `ac_last_error_message()` then holds a message naming what and where (file, tag, argument).
/// Codes 1-99 are mistakes in the call itself (NULL pointer, bad handle, invalid UTF-8...);
/// 100-199 ONNX Runtime loading; 200-299 files and DICOM; 300-399 series geometry; 400-499 models
/// and inference. Turn any code into text with `ac_status_str()`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ac_status {
    /// Success.
    Ok = 0,
    /// A required pointer argument (input or output) was NULL.
    NullArgument = 1,
    /// A string argument is not valid UTF-8.
    InvalidUtf8 = 2,
    /// The handle is not a live object of this library: already freed, never created, or garbage.
    InvalidHandle = 3,
    /// The handle is a live object of another type (e.g. an `ac_series*` passed as `ac_model*`).
    WrongHandleType = 4,
    /// A bug inside the library was caught at the API boundary (a Rust panic); the call had no
    /// effect on its outputs. Please report it with the message.
    Panic = 5,
    /// An argument is out of range or inconsistent.
    InvalidArgument = 6,
    /// An index argument is past the end (e.g. a structure index >= the structure count).
    IndexOutOfRange = 7,
    /// `ac_set_log_callback()`: another logger is already installed in this process through Rust's
    /// `log` facade (e.g. by a Rust host), so log records cannot be forwarded.
    LoggerInUse = 8,

    /// No ONNX Runtime library path given, `AUTOCONTOUR_ORT_LIB` unset, none next to the program.
    OrtNotConfigured = 100,
    /// The ONNX Runtime library file given does not exist.
    OrtNotFound = 101,
    /// The ONNX Runtime file exists but cannot be loaded as a shared library (truncated, wrong
    /// architecture, missing dependencies).
    OrtLoad = 102,
    /// The library is not ONNX Runtime (no usable `OrtGetApiBase`).
    OrtNotOrt = 103,
    /// The ONNX Runtime library is older than this SDK needs.
    OrtTooOld = 104,
    /// ONNX Runtime was already loaded in this process from another file.
    OrtAlreadyLoaded = 105,
    /// ONNX Runtime reported an error.
    Ort = 106,

    /// Reading or writing a file failed.
    Io = 200,
    /// A file could not be parsed as DICOM.
    NotDicom = 201,
    /// A required DICOM attribute is absent or empty.
    MissingTag = 202,
    /// A DICOM attribute is present but unusable.
    InvalidTag = 203,
    /// Pixel data could not be decoded.
    PixelData = 204,
    /// The folder holds no usable CT series.
    NoSeries = 205,
    /// The Series Instance UID asked for is not in the folder.
    SeriesNotFound = 206,
    /// The series is not CT.
    NotCt = 207,
    /// No ROI of that name in the RT Structure Set (`ac_rtstruct_find_roi`).
    RoiNotFound = 208,

    /// Slices do not share one orientation.
    MixedOrientation = 300,
    /// Slices do not share rows, columns or pixel spacing.
    MixedSize = 301,
    /// Two slices share one position.
    DuplicateSlice = 302,
    /// Slice gaps are irregular (missing or uneven slices).
    IrregularSpacing = 303,
    /// Slices do not step along the slice normal (gantry tilt or sheared stack).
    GantryTilt = 304,
    /// The volume exceeds the voxel limit.
    TooLarge = 305,
    /// A multi-frame image where single-frame slices are required.
    MultiFrame = 306,

    /// The model package (`model.json` or its ONNX file) is missing.
    ModelNotFound = 400,
    /// `model.json` is malformed or inconsistent.
    InvalidManifest = 401,
    /// The ONNX file does not match the manifest's SHA-256.
    ModelHashMismatch = 402,
    /// ONNX Runtime cannot load the model file.
    ModelLoad = 403,
    /// The model graph disagrees with its manifest.
    ModelMismatch = 404,
    /// The requested execution provider is unavailable and fallback was not allowed.
    ExecutionProvider = 405,
    /// Running the model failed.
    Inference = 406,
    /// The model produced NaN or infinite values.
    NonFiniteOutput = 407,
    /// A memory limit would be exceeded.
    MemoryLimit = 408,
    /// The run was cancelled through its `ac_cancel_token`.
    Cancelled = 409,
    /// The CT does not suit the model (body region, scan length, no body, expected structures
    /// missing) and the segment options asked to refuse such cases
    /// (`AC_ON_MISMATCH_REFUSE`); the message lists each reason.
    NotApplicable = 410,
}

impl ac_status {
    /// The status for a library error. Exhaustive on purpose: a new [`Error`] variant does not
    /// compile until it is given a code here.
    pub fn from_error(e: &Error) -> ac_status {
        use ac_status as S;
        match e {
            Error::OrtNotConfigured { .. } => S::OrtNotConfigured,
            Error::OrtNotFound { .. } => S::OrtNotFound,
            Error::OrtLoad { .. } => S::OrtLoad,
            Error::OrtNotOrt { .. } => S::OrtNotOrt,
            Error::OrtTooOld { .. } => S::OrtTooOld,
            Error::OrtAlreadyLoaded { .. } => S::OrtAlreadyLoaded,
            Error::Ort(_) => S::Ort,
            Error::Io { .. } => S::Io,
            Error::NotDicom { .. } => S::NotDicom,
            Error::MissingTag { .. } => S::MissingTag,
            Error::InvalidTag { .. } => S::InvalidTag,
            Error::PixelData { .. } => S::PixelData,
            Error::NoSeries { .. } => S::NoSeries,
            Error::SeriesNotFound { .. } => S::SeriesNotFound,
            Error::NotCt { .. } => S::NotCt,
            Error::MixedOrientation { .. } => S::MixedOrientation,
            Error::MixedSize { .. } => S::MixedSize,
            Error::DuplicateSlice { .. } => S::DuplicateSlice,
            Error::IrregularSpacing { .. } => S::IrregularSpacing,
            Error::GantryTilt { .. } => S::GantryTilt,
            Error::TooLarge { .. } => S::TooLarge,
            Error::MultiFrame { .. } => S::MultiFrame,
            Error::ModelNotFound { .. } => S::ModelNotFound,
            Error::InvalidManifest { .. } => S::InvalidManifest,
            Error::ModelHashMismatch { .. } => S::ModelHashMismatch,
            Error::ModelLoad { .. } => S::ModelLoad,
            Error::ModelMismatch { .. } => S::ModelMismatch,
            Error::ExecutionProvider { .. } => S::ExecutionProvider,
            Error::Inference { .. } => S::Inference,
            Error::NonFiniteOutput { .. } => S::NonFiniteOutput,
            Error::MemoryLimit { .. } => S::MemoryLimit,
            Error::Cancelled => S::Cancelled,
            Error::NotApplicable { .. } => S::NotApplicable,
            Error::InvalidArgument(_) => S::InvalidArgument,
        }
    }

    /// Every status, for tests and `ac_status_str`.
    pub const ALL: [ac_status; 43] = {
        use ac_status as S;
        [
            S::Ok,
            S::NullArgument,
            S::InvalidUtf8,
            S::InvalidHandle,
            S::WrongHandleType,
            S::Panic,
            S::InvalidArgument,
            S::IndexOutOfRange,
            S::LoggerInUse,
            S::OrtNotConfigured,
            S::OrtNotFound,
            S::OrtLoad,
            S::OrtNotOrt,
            S::OrtTooOld,
            S::OrtAlreadyLoaded,
            S::Ort,
            S::Io,
            S::NotDicom,
            S::MissingTag,
            S::InvalidTag,
            S::PixelData,
            S::NoSeries,
            S::SeriesNotFound,
            S::NotCt,
            S::RoiNotFound,
            S::MixedOrientation,
            S::MixedSize,
            S::DuplicateSlice,
            S::IrregularSpacing,
            S::GantryTilt,
            S::TooLarge,
            S::MultiFrame,
            S::ModelNotFound,
            S::InvalidManifest,
            S::ModelHashMismatch,
            S::ModelLoad,
            S::ModelMismatch,
            S::ExecutionProvider,
            S::Inference,
            S::NonFiniteOutput,
            S::MemoryLimit,
            S::Cancelled,
            S::NotApplicable,
        ]
    };

    /// `AC_STATUS_…` name and a short description, NUL-terminated.
    fn text(self) -> &'static str {
        use ac_status as S;
        match self {
            S::Ok => "AC_STATUS_OK: success\0",
            S::NullArgument => "AC_STATUS_NULL_ARGUMENT: a required pointer argument was NULL\0",
            S::InvalidUtf8 => "AC_STATUS_INVALID_UTF8: a string argument is not valid UTF-8\0",
            S::InvalidHandle => {
                "AC_STATUS_INVALID_HANDLE: not a live handle (already freed, or never created)\0"
            }
            S::WrongHandleType => {
                "AC_STATUS_WRONG_HANDLE_TYPE: a handle of another type was passed\0"
            }
            S::Panic => "AC_STATUS_PANIC: internal error caught at the API boundary\0",
            S::InvalidArgument => "AC_STATUS_INVALID_ARGUMENT: an argument is out of range\0",
            S::IndexOutOfRange => "AC_STATUS_INDEX_OUT_OF_RANGE: index past the end\0",
            S::LoggerInUse => "AC_STATUS_LOGGER_IN_USE: another logger is installed\0",
            S::OrtNotConfigured => "AC_STATUS_ORT_NOT_CONFIGURED: no ONNX Runtime library path\0",
            S::OrtNotFound => "AC_STATUS_ORT_NOT_FOUND: ONNX Runtime library file not found\0",
            S::OrtLoad => "AC_STATUS_ORT_LOAD: ONNX Runtime library cannot be loaded\0",
            S::OrtNotOrt => "AC_STATUS_ORT_NOT_ORT: the library is not ONNX Runtime\0",
            S::OrtTooOld => "AC_STATUS_ORT_TOO_OLD: ONNX Runtime is too old\0",
            S::OrtAlreadyLoaded => {
                "AC_STATUS_ORT_ALREADY_LOADED: another ONNX Runtime is already loaded\0"
            }
            S::Ort => "AC_STATUS_ORT: ONNX Runtime reported an error\0",
            S::Io => "AC_STATUS_IO: reading or writing a file failed\0",
            S::NotDicom => "AC_STATUS_NOT_DICOM: not a readable DICOM file\0",
            S::MissingTag => "AC_STATUS_MISSING_TAG: a required DICOM attribute is missing\0",
            S::InvalidTag => "AC_STATUS_INVALID_TAG: a DICOM attribute is unusable\0",
            S::PixelData => "AC_STATUS_PIXEL_DATA: pixel data cannot be decoded\0",
            S::NoSeries => "AC_STATUS_NO_SERIES: no usable CT series found\0",
            S::SeriesNotFound => "AC_STATUS_SERIES_NOT_FOUND: series UID not found\0",
            S::NotCt => "AC_STATUS_NOT_CT: the series is not CT\0",
            S::RoiNotFound => "AC_STATUS_ROI_NOT_FOUND: no ROI of that name\0",
            S::MixedOrientation => "AC_STATUS_MIXED_ORIENTATION: slices differ in orientation\0",
            S::MixedSize => "AC_STATUS_MIXED_SIZE: slices differ in size or pixel spacing\0",
            S::DuplicateSlice => "AC_STATUS_DUPLICATE_SLICE: two slices share one position\0",
            S::IrregularSpacing => "AC_STATUS_IRREGULAR_SPACING: missing or uneven slices\0",
            S::GantryTilt => "AC_STATUS_GANTRY_TILT: gantry tilt or sheared stack\0",
            S::TooLarge => "AC_STATUS_TOO_LARGE: the volume exceeds the voxel limit\0",
            S::MultiFrame => "AC_STATUS_MULTI_FRAME: multi-frame images are not supported\0",
            S::ModelNotFound => "AC_STATUS_MODEL_NOT_FOUND: model package file missing\0",
            S::InvalidManifest => "AC_STATUS_INVALID_MANIFEST: model.json is invalid\0",
            S::ModelHashMismatch => {
                "AC_STATUS_MODEL_HASH_MISMATCH: ONNX file does not match its SHA-256\0"
            }
            S::ModelLoad => "AC_STATUS_MODEL_LOAD: ONNX Runtime cannot load the model\0",
            S::ModelMismatch => "AC_STATUS_MODEL_MISMATCH: model graph does not match manifest\0",
            S::ExecutionProvider => {
                "AC_STATUS_EXECUTION_PROVIDER: execution provider unavailable\0"
            }
            S::Inference => "AC_STATUS_INFERENCE: running the model failed\0",
            S::NonFiniteOutput => "AC_STATUS_NON_FINITE_OUTPUT: model output holds NaN/Inf\0",
            S::MemoryLimit => "AC_STATUS_MEMORY_LIMIT: a memory limit would be exceeded\0",
            S::Cancelled => "AC_STATUS_CANCELLED: the run was cancelled\0",
            S::NotApplicable => "AC_STATUS_NOT_APPLICABLE: the CT does not suit the model\0",
        }
    }
}

/// Returns a static, NUL-terminated description of a status code (`"AC_STATUS_IO: reading or
/// writing a file failed"`), or `"unknown status"` for a number that is not a status.
///
/// Takes a plain integer so that any value from C is safe. Do not free the string. Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn ac_status_str(status: u32) -> *const c_char {
    ac_status::ALL
        .iter()
        .find(|s| **s as u32 == status)
        .map(|s| s.text())
        .unwrap_or("unknown status\0")
        .as_ptr()
        .cast()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::ffi::CStr;

    #[test]
    fn codes_are_unique_and_named() {
        let mut seen = HashSet::new();
        for s in ac_status::ALL.iter().skip(1) {
            seen.insert(*s as u32);
            // SAFETY: static NUL-terminated strings.
            let t = unsafe { CStr::from_ptr(ac_status_str(*s as u32)) }
                .to_str()
                .unwrap();
            assert!(t.starts_with("AC_STATUS_"), "{t}");
        }
        assert_eq!(seen.len(), ac_status::ALL.len() - 1);
        // SAFETY: as above.
        let t = unsafe { CStr::from_ptr(ac_status_str(12345)) };
        assert_eq!(t.to_str().unwrap(), "unknown status");
    }

    #[test]
    fn numbers_are_stable() {
        assert_eq!(ac_status::Ok as u32, 0);
        assert_eq!(ac_status::InvalidHandle as u32, 3);
        assert_eq!(ac_status::Io as u32, 200);
        assert_eq!(ac_status::Cancelled as u32, 409);
        assert_eq!(
            ac_status::from_error(&Error::Cancelled),
            ac_status::Cancelled
        );
    }
}
