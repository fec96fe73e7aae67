//! The one error type of the library.
//!
//! Every failure names what went wrong and where (file, tag, slice). The C API maps each
//! variant to a stable status code with an exhaustive `match` (the `autocontour-capi` crate's
//! `status.rs`), so adding a variant without deciding its code does not compile. For that reason
//! the enum is not `#[non_exhaustive]`: a new variant is a semver-visible change.
//!
//! Causes are kept: where a failure comes from another error (an `io::Error`, an
//! `ort::Error`, a dicom-rs or serde_json error…), the variant holds it as its
//! [`source`](std::error::Error::source) ([`Cause`] where a variant may or may not have one).
//! Messages stay complete on their own: they include the cause's text, so a host that prints
//! only the message (the C API's last error, the CLI) loses nothing, and a program that wants
//! the cause itself walks `source()`.

use std::path::PathBuf;

/// The underlying error of a failure, for variants that have one only sometimes.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, with enough context to act on it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // ---- ONNX Runtime loading ----
    /// No library path given, `AUTOCONTOUR_ORT_LIB` unset, nothing next to the executable.
    #[error(
        "ONNX Runtime library not configured: pass its path (--ort-lib, engine options) or set AUTOCONTOUR_ORT_LIB (looked next to the executable: {tried})"
    )]
    OrtNotConfigured {
        /// The places that were looked at.
        tried: String,
    },
    /// The given ONNX Runtime library file does not exist.
    #[error("ONNX Runtime library not found: {path}")]
    OrtNotFound {
        /// The path that was given.
        path: PathBuf,
    },
    /// The file exists but could not be loaded as a shared library.
    #[error("ONNX Runtime library could not be loaded from {path}: {reason}")]
    OrtLoad {
        /// The library file.
        path: PathBuf,
        /// What the dynamic loader (or ONNX Runtime's initialisation) said.
        reason: String,
        /// The loader's or ONNX Runtime's error, when there is one.
        #[source]
        source: Option<Cause>,
    },
    /// The file is a shared library but not ONNX Runtime (no usable `OrtGetApiBase`).
    #[error("{path} is not an ONNX Runtime library (no usable OrtGetApiBase)")]
    OrtNotOrt {
        /// The library file.
        path: PathBuf,
    },
    /// The library is ONNX Runtime but older than the SDK needs.
    #[error("ONNX Runtime at {path} is version {found}; autocontour needs {required} or newer")]
    OrtTooOld {
        /// The library file.
        path: PathBuf,
        /// The version it reports.
        found: String,
        /// The minimum accepted.
        required: String,
    },
    /// ONNX Runtime was already loaded from another file in this process.
    #[error(
        "ONNX Runtime is already loaded from {loaded}; cannot load {requested} in the same process"
    )]
    OrtAlreadyLoaded {
        /// The library in use.
        loaded: PathBuf,
        /// The one asked for now.
        requested: PathBuf,
    },
    /// An error reported by ONNX Runtime itself.
    #[error("ONNX Runtime: {reason}")]
    Ort {
        /// What was being done, and ONNX Runtime's message.
        reason: String,
        /// ONNX Runtime's error (`ort::Error`), when there is one.
        #[source]
        source: Option<Cause>,
    },

    // ---- files and DICOM ----
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be parsed as DICOM.
    #[error("{path}: not a readable DICOM file: {reason}")]
    NotDicom {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
        /// The parser's error, when there is one.
        #[source]
        source: Option<Cause>,
    },
    /// A required attribute is absent or empty.
    #[error("{path}: missing required attribute {tag}")]
    MissingTag {
        /// The file.
        path: PathBuf,
        /// Keyword and tag, e.g. `ImagePositionPatient (0020,0032)`.
        tag: String,
    },
    /// An attribute is present but its value is unusable.
    #[error("{path}: invalid {tag}: {reason}")]
    InvalidTag {
        /// The file.
        path: PathBuf,
        /// Keyword and tag.
        tag: String,
        /// What is wrong with it.
        reason: String,
        /// The value conversion's error, when there is one.
        #[source]
        source: Option<Cause>,
    },
    /// Pixel data could not be decoded (unsupported transfer syntax or corrupt stream).
    #[error("{path}: cannot decode pixel data ({transfer_syntax}): {reason}")]
    PixelData {
        /// The file.
        path: PathBuf,
        /// Transfer syntax UID and name.
        transfer_syntax: String,
        /// What the decoder said.
        reason: String,
        /// The decoder's error, when there is one.
        #[source]
        source: Option<Cause>,
    },
    /// The folder holds no usable CT series.
    #[error("{path}: no usable CT series found{detail}")]
    NoSeries {
        /// The folder searched.
        path: PathBuf,
        /// Why candidates were rejected (starts with `: ` when non-empty).
        detail: String,
    },
    /// Files in the folder that look like DICOM (the `DICM` magic, a file meta group or a bare
    /// data set) but cannot be read, and may belong to the series being loaded (their Series
    /// Instance UID is that series' or could not be read): loading without them could give a
    /// volume with slices missing at an end, so the load is refused and every one is listed.
    #[error(
        "{}: {} DICOM file(s) cannot be read and may belong to the series; repair them or move them out of the folder: {}",
        path.display(),
        files.len(),
        list_files(files)
    )]
    UnreadableFiles {
        /// The folder loaded.
        path: PathBuf,
        /// Each file and why it cannot be read.
        files: Vec<(PathBuf, String)>,
    },
    /// The series UID asked for is not in the folder.
    #[error("series {uid} not found under {path}")]
    SeriesNotFound {
        /// The folder searched.
        path: PathBuf,
        /// The Series Instance UID asked for.
        uid: String,
    },
    /// The series is not a CT image series.
    #[error("series {uid}: modality {modality} is not CT")]
    NotCt {
        /// Series Instance UID.
        uid: String,
        /// The modality found.
        modality: String,
    },

    // ---- geometry ----
    /// Slices do not share one orientation.
    #[error("{path}: ImageOrientationPatient {found} differs from the series' {expected}")]
    MixedOrientation {
        /// The offending file.
        path: PathBuf,
        /// Its orientation.
        found: String,
        /// The series orientation.
        expected: String,
    },
    /// Slices do not share rows, columns, pixel spacing or the stored-value encoding (bits
    /// allocated and stored, pixel representation, samples per pixel).
    #[error("{path}: {what} {found} differs from the series' {expected}")]
    MixedSize {
        /// The offending file.
        path: PathBuf,
        /// Which attribute (Rows, Columns, PixelSpacing, BitsAllocated, BitsStored,
        /// PixelRepresentation, SamplesPerPixel).
        what: &'static str,
        /// Its value.
        found: String,
        /// The series value.
        expected: String,
    },
    /// Two slices at the same position along the normal.
    #[error("{path}: duplicate slice position {position_mm:.3} mm along the normal (also {other})")]
    DuplicateSlice {
        /// One file.
        path: PathBuf,
        /// The other file.
        other: PathBuf,
        /// The shared position.
        position_mm: f64,
    },
    /// The gap between two neighbouring slices differs from the median.
    #[error(
        "{path}: slice gap {gap_mm:.3} mm differs from the series' {median_mm:.3} mm by more than {tolerance_mm} mm (missing or irregular slices)"
    )]
    IrregularSpacing {
        /// The file after the gap.
        path: PathBuf,
        /// The gap found.
        gap_mm: f64,
        /// The median gap.
        median_mm: f64,
        /// The tolerance applied.
        tolerance_mm: f64,
    },
    /// Slice positions do not step along the slice normal (gantry tilt or sheared stack).
    #[error(
        "{path}: slice offset is {off_normal_mm:.3} mm off the slice normal (gantry tilt or sheared stack)"
    )]
    GantryTilt {
        /// The offending file.
        path: PathBuf,
        /// The in-plane component of its step from the previous slice.
        off_normal_mm: f64,
    },
    /// The volume would exceed the configured limit.
    #[error("volume of {voxels} voxels exceeds the limit of {limit}")]
    TooLarge {
        /// Voxels the series would need.
        voxels: u64,
        /// The configured limit.
        limit: u64,
    },
    /// An input claims more than a resource limit allows (see [`crate::limits`]): a file larger
    /// than `max_file_bytes`, sequences nested deeper than `max_sequence_depth`, more contour
    /// points than `max_contour_points_per_roi`… Refused before anything of that size was
    /// allocated or walked.
    #[error("{place}: {value} is over the limit {limit} = {max}")]
    LimitExceeded {
        /// The limit's name, as in [`crate::limits::Limits::entries`] and the CLI's `--limit`.
        limit: &'static str,
        /// What the input needs or claims.
        value: u64,
        /// The limit in force.
        max: u64,
        /// The file (and where in it) or the ROI, and what was counted.
        place: String,
    },
    /// A label map (or other per-voxel input) does not lie on the CT grid it is used with.
    #[error("{what}: the label map is not on the CT grid: {detail}")]
    NotOnCtGrid {
        /// The label map (file name or description).
        what: String,
        /// How the grids differ (size, spacing, axes, origin).
        detail: String,
    },
    /// A multi-frame object where single-frame slices are required.
    #[error(
        "{path}: multi-frame image ({frames} frames, e.g. Enhanced CT) is not supported; export the series as single-frame CT Image Storage"
    )]
    MultiFrame {
        /// The file.
        path: PathBuf,
        /// Its NumberOfFrames.
        frames: u32,
    },

    // ---- NIfTI ----
    /// A file is not a NIfTI-1 label map this SDK reads (see `nifti`): too short, wrong
    /// magic, not 3-D, not integer labels, truncated data, unusable affine…
    #[error("{path}: invalid NIfTI {field}: {reason}")]
    InvalidNifti {
        /// The file.
        path: PathBuf,
        /// The header field or part (`sizeof_hdr`, `magic`, `dim`, `datatype`, `affine`,
        /// `data`…).
        field: String,
        /// What is wrong with it.
        reason: String,
        /// The underlying error (e.g. the geometry built from the affine), when there is one.
        #[source]
        source: Option<Cause>,
    },
    /// A volume too large for a NIfTI-1 file (each dimension is at most 32767).
    #[error("NIfTI-1 dimensions are at most 32767; the volume is {size:?}")]
    NiftiTooLarge {
        /// The volume's size (columns, rows, slices).
        size: [usize; 3],
    },

    // ---- models and inference ----
    /// The model package or its ONNX file is missing.
    #[error("model file not found: {path}")]
    ModelNotFound {
        /// The missing file.
        path: PathBuf,
    },
    /// `model.json` is malformed or inconsistent.
    #[error("{path}: invalid model manifest: {reason}")]
    InvalidManifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
        /// The JSON parser's error, when the file does not parse.
        #[source]
        source: Option<Cause>,
    },
    /// The ONNX file does not match the manifest's SHA-256.
    #[error("{path}: SHA-256 {found} does not match the manifest's {expected}")]
    ModelHashMismatch {
        /// The ONNX file.
        path: PathBuf,
        /// From the manifest.
        expected: String,
        /// Of the file.
        found: String,
    },
    /// ONNX Runtime could not load the model file (corrupt or unsupported graph).
    #[error("{path}: ONNX Runtime cannot load the model: {source}")]
    ModelLoad {
        /// The ONNX file.
        path: PathBuf,
        /// ONNX Runtime's error.
        #[source]
        source: ort::Error,
    },
    /// The graph disagrees with the manifest (names, rank, channels, element type).
    #[error("{path}: model graph does not match its manifest: {reason}")]
    ModelMismatch {
        /// The ONNX file.
        path: PathBuf,
        /// The disagreement.
        reason: String,
    },
    /// The requested execution provider cannot run and the caller chose not to fall back.
    #[error("execution provider {requested} unavailable: {reason}")]
    ExecutionProvider {
        /// What was asked for.
        requested: String,
        /// Why it cannot run.
        reason: String,
        /// ONNX Runtime's error when it failed to start the provider (none when the library
        /// simply lacks it).
        #[source]
        source: Option<Cause>,
    },
    /// Running the model failed.
    #[error("inference failed at tile {tile}: {reason}")]
    Inference {
        /// Tile number (0-based).
        tile: usize,
        /// ONNX Runtime's message or the problem found in the output.
        reason: String,
        /// ONNX Runtime's error, when the failure is one.
        #[source]
        source: Option<Cause>,
    },
    /// The model produced NaN or infinite values.
    #[error("model output holds {count} NaN/infinite values (tile {tile})")]
    NonFiniteOutput {
        /// Tile number.
        tile: usize,
        /// How many values.
        count: usize,
    },
    /// A memory limit would be exceeded.
    #[error("{what} needs {needed_bytes} bytes, over the limit of {limit_bytes}")]
    MemoryLimit {
        /// What would be allocated.
        what: String,
        /// Bytes needed.
        needed_bytes: u64,
        /// The configured limit.
        limit_bytes: u64,
    },
    /// The caller cancelled the run.
    #[error("cancelled")]
    Cancelled,
    /// The CT does not suit the model (wrong body region, too short a scan, no body, expected
    /// structures missing) and the caller asked to refuse such cases.
    #[error("the CT does not suit model {model}: {reasons}")]
    NotApplicable {
        /// Model name.
        model: String,
        /// The applicability flags, `code: sentence` joined by `; `.
        reasons: String,
    },
    /// A site profile does not parse or does not fit the model (every problem listed).
    #[error("{}: invalid site profile: {}", path.display(), problems.join("; "))]
    InvalidProfile {
        /// The profile file.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<String>,
    },

    // ---- pseudonymisation ----
    /// No site key was given for pseudonymisation (no key file, and the environment variable
    /// naming one is unset).
    #[error(
        "no site key for pseudonymisation: pass --key-file or set {env} (make one with `head -c 32 /dev/urandom > site.key`)"
    )]
    SiteKeyMissing {
        /// The environment variable that was looked at.
        env: &'static str,
    },
    /// The site key is unusable: too short (under 32 bytes), every byte the same, or a file
    /// too large to be a key.
    #[error("{}invalid site key: {reason}", path.as_ref().map(|p| format!("{}: ", p.display())).unwrap_or_default())]
    InvalidSiteKey {
        /// The key file, when the key came from one.
        path: Option<PathBuf>,
        /// What is wrong with it.
        reason: String,
    },
    /// An instance could not be pseudonymised (e.g. it has no SOP Instance UID anywhere).
    #[error("{}: cannot pseudonymise: {reason}", path.display())]
    Pseudonymise {
        /// The file (or the name the caller gave the data set).
        path: PathBuf,
        /// Why.
        reason: String,
    },

    // ---- caller mistakes ----
    /// An argument is out of range or inconsistent.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// An [`Error::Ort`] for a failed ONNX Runtime call: `what` was being done, then ONNX
    /// Runtime's message; the `ort::Error` is kept as the source.
    pub fn ort(what: impl std::fmt::Display, source: ort::Error) -> Self {
        Error::Ort {
            reason: format!("{what}: {source}"),
            source: Some(Box::new(source)),
        }
    }
}

/// `path (reason); …` for the first ten files, then how many more.
fn list_files(files: &[(PathBuf, String)]) -> String {
    let mut parts: Vec<String> = files
        .iter()
        .take(10)
        .map(|(p, why)| format!("{} ({why})", p.display()))
        .collect();
    if files.len() > 10 {
        parts.push(format!("and {} more", files.len() - 10));
    }
    parts.join("; ")
}

/// `e` boxed as a [`Cause`].
pub(crate) fn cause(e: impl std::error::Error + Send + Sync + 'static) -> Option<Cause> {
    Some(Box::new(e))
}
