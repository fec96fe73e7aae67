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
/// and inference; 500-599 pseudonymisation. Turn any code into text with `ac_status_str()`.
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
    /// A file is not a NIfTI-1 label map the SDK reads (too short, wrong magic, not 3-D, not
    /// integer labels, truncated, unusable affine); the message names the field.
    InvalidNifti = 209,
    /// The volume is too large for a NIfTI-1 file (a dimension over 32767).
    NiftiTooLarge = 210,
    /// Files in the folder that look like DICOM cannot be read and may belong to the series
    /// being loaded (a truncated or corrupt slice); the message lists each with its reason.
    UnreadableFiles = 211,
    /// An input claims more than a resource limit allows (`ac_limits_set`): the message names
    /// the limit, the value and the file or ROI. Nothing of that size was allocated.
    LimitExceeded = 212,

    /// Slices do not share one orientation.
    MixedOrientation = 300,
    /// Slices do not share rows, columns, pixel spacing or the stored-value encoding (bits
    /// allocated and stored, pixel representation, samples per pixel).
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
    /// A label map does not lie on the CT grid it is used with (size, spacing, axes or origin).
    NotOnCtGrid = 307,

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
    /// A site profile does not parse or does not fit the model; the message lists every problem.
    InvalidProfile = 411,

    // 500-599: pseudonymisation
    /// No site key for pseudonymisation was given (no key file, `AUTOCONTOUR_DEID_KEY_FILE`
    /// unset).
    SiteKeyMissing = 500,
    /// The site key is unusable (under 32 bytes, every byte the same, or not a key file).
    InvalidSiteKey = 501,
    /// An instance could not be pseudonymised; the message says which and why.
    Pseudonymise = 502,
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
            Error::Ort { .. } => S::Ort,
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
            Error::NotOnCtGrid { .. } => S::NotOnCtGrid,
            Error::MultiFrame { .. } => S::MultiFrame,
            Error::InvalidNifti { .. } => S::InvalidNifti,
            Error::NiftiTooLarge { .. } => S::NiftiTooLarge,
            Error::UnreadableFiles { .. } => S::UnreadableFiles,
            Error::LimitExceeded { .. } => S::LimitExceeded,
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
            Error::InvalidProfile { .. } => S::InvalidProfile,
            Error::SiteKeyMissing { .. } => S::SiteKeyMissing,
            Error::InvalidSiteKey { .. } => S::InvalidSiteKey,
            Error::Pseudonymise { .. } => S::Pseudonymise,
            Error::InvalidArgument(_) => S::InvalidArgument,
        }
    }
}

/// The one table of status texts: each `ac_status` variant with its `AC_STATUS_…` name and short
/// description. From it come [`ac_status::ALL`] (every status, in this order) and the text of
/// [`ac_status_str`]; the text's `match` is exhaustive and denies unreachable arms, so a variant
/// missing from the table, listed twice or unknown does not compile, and a test checks that
/// each text starts with its variant's C name.
///
/// The enum itself stays written out above (cbindgen does not expand macros, and the header
/// must show every code with its doc comment).
macro_rules! status_table {
    ($($variant:ident => $text:literal,)*) => {
        /// Number of statuses.
        const STATUS_COUNT: usize = [$(ac_status::$variant as u32),*].len();

        impl ac_status {
            /// Every status, for tests and `ac_status_str`.
            pub const ALL: [ac_status; STATUS_COUNT] = [$(ac_status::$variant),*];

            /// `AC_STATUS_…` name and a short description, NUL-terminated.
            #[deny(unreachable_patterns)]
            fn text(self) -> &'static str {
                match self {
                    $(ac_status::$variant => concat!($text, "\0"),)*
                }
            }
        }

        /// The Rust names of the variants, in table order.
        #[cfg(test)]
        const STATUS_NAMES: [&str; STATUS_COUNT] = [$(stringify!($variant)),*];
    };
}

status_table! {
    Ok => "AC_STATUS_OK: success",
    NullArgument => "AC_STATUS_NULL_ARGUMENT: a required pointer argument was NULL",
    InvalidUtf8 => "AC_STATUS_INVALID_UTF8: a string argument is not valid UTF-8",
    InvalidHandle => "AC_STATUS_INVALID_HANDLE: not a live handle (already freed, or never created)",
    WrongHandleType => "AC_STATUS_WRONG_HANDLE_TYPE: a handle of another type was passed",
    Panic => "AC_STATUS_PANIC: internal error caught at the API boundary",
    InvalidArgument => "AC_STATUS_INVALID_ARGUMENT: an argument is out of range",
    IndexOutOfRange => "AC_STATUS_INDEX_OUT_OF_RANGE: index past the end",
    LoggerInUse => "AC_STATUS_LOGGER_IN_USE: another logger is installed",
    OrtNotConfigured => "AC_STATUS_ORT_NOT_CONFIGURED: no ONNX Runtime library path",
    OrtNotFound => "AC_STATUS_ORT_NOT_FOUND: ONNX Runtime library file not found",
    OrtLoad => "AC_STATUS_ORT_LOAD: ONNX Runtime library cannot be loaded",
    OrtNotOrt => "AC_STATUS_ORT_NOT_ORT: the library is not ONNX Runtime",
    OrtTooOld => "AC_STATUS_ORT_TOO_OLD: ONNX Runtime is too old",
    OrtAlreadyLoaded => "AC_STATUS_ORT_ALREADY_LOADED: another ONNX Runtime is already loaded",
    Ort => "AC_STATUS_ORT: ONNX Runtime reported an error",
    Io => "AC_STATUS_IO: reading or writing a file failed",
    NotDicom => "AC_STATUS_NOT_DICOM: not a readable DICOM file",
    MissingTag => "AC_STATUS_MISSING_TAG: a required DICOM attribute is missing",
    InvalidTag => "AC_STATUS_INVALID_TAG: a DICOM attribute is unusable",
    PixelData => "AC_STATUS_PIXEL_DATA: pixel data cannot be decoded",
    NoSeries => "AC_STATUS_NO_SERIES: no usable CT series found",
    SeriesNotFound => "AC_STATUS_SERIES_NOT_FOUND: series UID not found",
    NotCt => "AC_STATUS_NOT_CT: the series is not CT",
    RoiNotFound => "AC_STATUS_ROI_NOT_FOUND: no ROI of that name",
    InvalidNifti => "AC_STATUS_INVALID_NIFTI: not a NIfTI-1 label map the SDK reads",
    NiftiTooLarge => "AC_STATUS_NIFTI_TOO_LARGE: the volume is too large for NIfTI-1",
    UnreadableFiles => "AC_STATUS_UNREADABLE_FILES: DICOM files that may belong to the series cannot be read",
    LimitExceeded => "AC_STATUS_LIMIT_EXCEEDED: an input exceeds a resource limit",
    MixedOrientation => "AC_STATUS_MIXED_ORIENTATION: slices differ in orientation",
    MixedSize => "AC_STATUS_MIXED_SIZE: slices differ in size or pixel spacing",
    DuplicateSlice => "AC_STATUS_DUPLICATE_SLICE: two slices share one position",
    IrregularSpacing => "AC_STATUS_IRREGULAR_SPACING: missing or uneven slices",
    GantryTilt => "AC_STATUS_GANTRY_TILT: gantry tilt or sheared stack",
    TooLarge => "AC_STATUS_TOO_LARGE: the volume exceeds the voxel limit",
    MultiFrame => "AC_STATUS_MULTI_FRAME: multi-frame images are not supported",
    NotOnCtGrid => "AC_STATUS_NOT_ON_CT_GRID: the label map is not on the CT grid",
    ModelNotFound => "AC_STATUS_MODEL_NOT_FOUND: model package file missing",
    InvalidManifest => "AC_STATUS_INVALID_MANIFEST: model.json is invalid",
    ModelHashMismatch => "AC_STATUS_MODEL_HASH_MISMATCH: ONNX file does not match its SHA-256",
    ModelLoad => "AC_STATUS_MODEL_LOAD: ONNX Runtime cannot load the model",
    ModelMismatch => "AC_STATUS_MODEL_MISMATCH: model graph does not match manifest",
    ExecutionProvider => "AC_STATUS_EXECUTION_PROVIDER: execution provider unavailable",
    Inference => "AC_STATUS_INFERENCE: running the model failed",
    NonFiniteOutput => "AC_STATUS_NON_FINITE_OUTPUT: model output holds NaN/Inf",
    MemoryLimit => "AC_STATUS_MEMORY_LIMIT: a memory limit would be exceeded",
    Cancelled => "AC_STATUS_CANCELLED: the run was cancelled",
    NotApplicable => "AC_STATUS_NOT_APPLICABLE: the CT does not suit the model",
    InvalidProfile => "AC_STATUS_INVALID_PROFILE: the site profile is invalid for this model",
    SiteKeyMissing => "AC_STATUS_SITE_KEY_MISSING: no site key for pseudonymisation",
    InvalidSiteKey => "AC_STATUS_INVALID_SITE_KEY: the site key is unusable",
    Pseudonymise => "AC_STATUS_PSEUDONYMISE: an instance cannot be pseudonymised",
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

    /// `NotOnCtGrid` → `NOT_ON_CT_GRID`, as cbindgen's ScreamingSnakeCase names the C constants.
    fn screaming_snake(name: &str) -> String {
        let mut out = String::new();
        let mut prev_lower = false;
        for c in name.chars() {
            if c.is_ascii_uppercase() && prev_lower {
                out.push('_');
            }
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
            out.push(c.to_ascii_uppercase());
        }
        out
    }

    /// Each text (from the one table) starts with its own variant's C name, and `ALL` lists
    /// the variants in the table's order.
    #[test]
    fn texts_name_their_status() {
        for (s, name) in ac_status::ALL.iter().zip(STATUS_NAMES) {
            let want = format!("AC_STATUS_{}: ", screaming_snake(name));
            assert!(s.text().starts_with(&want), "{name}: {}", s.text());
            assert!(s.text().ends_with('\0'));
        }
        assert_eq!(screaming_snake("InvalidUtf8"), "INVALID_UTF8");
    }

    #[test]
    fn numbers_are_stable() {
        assert_eq!(ac_status::Ok as u32, 0);
        assert_eq!(ac_status::InvalidHandle as u32, 3);
        assert_eq!(ac_status::Io as u32, 200);
        assert_eq!(ac_status::Cancelled as u32, 409);
        assert_eq!(ac_status::InvalidNifti as u32, 209);
        assert_eq!(ac_status::NiftiTooLarge as u32, 210);
        assert_eq!(ac_status::UnreadableFiles as u32, 211);
        assert_eq!(ac_status::LimitExceeded as u32, 212);
        assert_eq!(ac_status::NotOnCtGrid as u32, 307);
        assert_eq!(ac_status::SiteKeyMissing as u32, 500);
        assert_eq!(ac_status::InvalidSiteKey as u32, 501);
        assert_eq!(ac_status::Pseudonymise as u32, 502);
        assert_eq!(
            ac_status::from_error(&Error::SiteKeyMissing { env: "X" }),
            ac_status::SiteKeyMissing
        );
        assert_eq!(
            ac_status::from_error(&Error::Cancelled),
            ac_status::Cancelled
        );
    }
}
