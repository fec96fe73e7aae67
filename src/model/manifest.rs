//! `model.json`: the manifest of a model package (schema in `models/MANIFEST.md`), parsed and
//! checked for consistency before any ONNX Runtime work.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, cause};

/// The manifest schema version this SDK reads.
pub const SCHEMA_VERSION: u32 = 1;

/// `model.json`: everything the trainer knew that inference needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Must equal [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Model name, written into outputs (e.g. `thorax-basic`).
    pub name: String,
    /// Model version, written into outputs.
    pub version: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// The ONNX graph and its tensors.
    pub onnx: OnnxSpec,
    /// Axis convention of the model's input: `LPS` or `native`.
    pub orientation: Orientation,
    /// Voxel spacing `[x, y, z]` mm, or the string `"native"`.
    pub spacing_mm: Spacing,
    /// Intensity normalisation.
    pub normalization: Normalization,
    /// Tile size `[z, y, x]` at model spacing.
    pub patch_size: [usize; 3],
    /// Tile step as a fraction of the patch (0 < step ≤ 1).
    pub tile_step: f64,
    /// How overlapping tiles are combined.
    pub blending: Blending,
    /// Mirroring test-time augmentation axes (0 = z, 1 = y, 2 = x).
    #[serde(default)]
    pub mirror_axes: Vec<usize>,
    /// What the output tensor holds.
    pub output_kind: OutputKind,
    /// How outputs return to the CT grid.
    pub resample_output: ResampleOutput,
    /// One entry per output channel; index 0 is background.
    pub labels: Vec<LabelSpec>,
    /// Plausibility and applicability rules (see [`super::rules`]); absent: defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plausibility: Option<super::rules::Rules>,
    /// Which prediction pipeline the package needs (absent: the engine's own, described by the
    /// fields above).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<Pipeline>,
    /// For `"pipeline": "nnunet_v2"`: everything nnU-Net's predictor uses (see
    /// [`crate::nnunet`]); the top-level fields then only approximate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nnunet: Option<crate::nnunet::NnunetSpec>,
}

/// A prediction pipeline other than the engine's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pipeline {
    /// An imported nnU-Net v2 model: `nnUNetPredictor`'s preprocessing, sliding window and
    /// export reproduced by [`crate::nnunet`].
    #[serde(rename = "nnunet_v2")]
    NnunetV2,
}

/// The ONNX file and its tensors.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnnxSpec {
    /// File name relative to the package folder.
    pub file: String,
    /// Hex SHA-256 of the file.
    pub sha256: String,
    /// Input tensor name (`[N, 1, Z, Y, X]`).
    pub input: String,
    /// Output tensor name (`[N, C, Z, Y, X]`).
    pub output: String,
    /// Element type of input and output.
    pub dtype: DType,
}

/// Tensor element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// 32-bit float.
    Float32,
    /// 16-bit float (`half`).
    Float16,
}

/// Axis convention of the model input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Orientation {
    /// X to the patient's left, Y posterior, Z head (nearest axis permutation and flips).
    #[serde(rename = "LPS")]
    Lps,
    /// The CT's own voxel axes.
    #[serde(rename = "native")]
    Native,
    /// As `LPS` with X and Y flipped: X to the patient's right, Y anterior, Z head (what a
    /// canonical-RAS NIfTI reader gives).
    #[serde(rename = "RAS")]
    Ras,
}

/// Target spacing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Spacing {
    /// `[x, y, z]` mm.
    Mm([f64; 3]),
    /// `"native"`: no resampling.
    Native(NativeTag),
}

/// The literal string `"native"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NativeTag {
    /// `"native"`.
    #[serde(rename = "native")]
    Native,
}

/// Intensity normalisation of HU values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Normalization {
    /// InnerEye: clip to `level ± width/2`, map linearly onto `range`.
    CtWindow {
        /// Window centre, HU.
        level: f64,
        /// Window width, HU.
        width: f64,
        /// Output range `[lo, hi]`.
        range: [f64; 2],
    },
    /// nnU-Net CTNormalization: clip to `[clip[0], clip[1]]`, then `(x − mean) / std`.
    CtZscore {
        /// Clip bounds (the training set's 0.5 and 99.5 percentiles in nnU-Net).
        clip: [f64; 2],
        /// Mean after clipping.
        mean: f64,
        /// Standard deviation after clipping.
        std: f64,
    },
    /// nnU-Net ZScoreNormalization: the image's own mean and standard deviation (inside the
    /// nonzero mask when `use_mask_for_norm`). Only for `nnunet_v2` packages, where the
    /// `nnunet` block governs.
    ZscoreImage {
        /// Statistics and normalisation inside the hole-filled nonzero mask only.
        #[serde(default)]
        use_mask_for_norm: bool,
    },
}

/// `np.clip(x, lo, hi)` for one value: `lo` below it, `hi` above it, `x` otherwise (NaN stays
/// NaN). The same as `clamp` when `lo ≤ hi` (what `Manifest::parse` and the nnU-Net spec check
/// accept), without `clamp`'s panic on bounds built otherwise.
#[inline]
pub(crate) fn np_clip<T: PartialOrd>(x: T, lo: T, hi: T) -> T {
    if x < lo {
        lo
    } else if x > hi {
        hi
    } else {
        x
    }
}

impl Normalization {
    /// Applies the normalisation to one HU value.
    #[inline]
    pub fn apply(&self, hu: f32) -> f32 {
        match *self {
            Normalization::CtWindow {
                level,
                width,
                range,
            } => {
                let lo = level - width / 2.0;
                let t = ((hu as f64 - lo) / width).clamp(0.0, 1.0);
                (range[0] + t * (range[1] - range[0])) as f32
            }
            Normalization::CtZscore { clip, mean, std } => {
                ((np_clip(hu as f64, clip[0], clip[1]) - mean) / std) as f32
            }
            // Per-image statistics: refused by `Manifest::parse` outside nnU-Net packages,
            // which normalise in `crate::nnunet`.
            Normalization::ZscoreImage { .. } => hu,
        }
    }
}

/// How overlapping tiles are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Blending {
    /// nnU-Net Gaussian importance map (σ = patch/8, zeros clamped to the smallest positive).
    Gaussian,
    /// InnerEye style: each tile contributes only its central part (edges at the image border).
    CenterCrop,
}

/// What the output tensor holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// Unnormalised class scores.
    Logits,
    /// Per-class probabilities.
    Probabilities,
}

/// How outputs come back to the CT grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResampleOutput {
    /// Per-class values interpolated linearly at each CT voxel, then argmax.
    LogitsLinear,
    /// Argmax at model resolution, then nearest neighbour (coarser).
    ArgmaxNearest,
}

/// Hole filling of a structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FillHoles {
    /// None.
    #[default]
    None,
    /// Per axial slice.
    #[serde(rename = "2d")]
    TwoD,
    /// In 3-D.
    #[serde(rename = "3d")]
    ThreeD,
}

/// A coded concept for a structure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Code {
    /// Coding scheme designator (FMA, SCT…).
    pub scheme: String,
    /// Code value.
    pub value: String,
    /// Code meaning.
    pub meaning: String,
}

/// One output channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSpec {
    /// Channel index (0 = background).
    pub index: usize,
    /// Structure name (ROI Name).
    pub name: String,
    /// Display colour RGB.
    #[serde(default)]
    pub color: Option<[u8; 3]>,
    /// RTROIInterpretedType (ORGAN, EXTERNAL, PTV…).
    #[serde(default)]
    pub rt_roi_type: Option<String>,
    /// Keep only the largest connected component.
    #[serde(default)]
    pub largest_component: bool,
    /// 6 or 26.
    #[serde(default = "default_connectivity")]
    pub connectivity: u8,
    /// Hole filling.
    #[serde(default)]
    pub fill_holes: FillHoles,
    /// Drop components smaller than this fraction of the largest.
    #[serde(default)]
    pub min_component_fraction: Option<f64>,
    /// Plausible volume range, ml.
    #[serde(default)]
    pub expected_volume_ml: Option<[f64; 2]>,
    /// Coded concept.
    #[serde(default)]
    pub code: Option<Code>,
    /// The patient's side this structure lies on (`left` / `right`), checked against the CT's
    /// geometry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side: Option<super::rules::Side>,
    /// Name of the structure this one lies inside (clipped to it, removal measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inside: Option<String>,
    /// A solid organ: air voxels inside it are counted and flagged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub solid: bool,
}

fn default_connectivity() -> u8 {
    6
}

impl Manifest {
    /// Parses and checks a manifest. `origin` names the file in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self> {
        let m: Manifest = serde_json::from_str(text).map_err(|e| Error::InvalidManifest {
            path: origin.to_path_buf(),
            reason: e.to_string(),
            source: cause(e),
        })?;
        m.validate(origin)?;
        Ok(m)
    }

    /// The labels and the plausibility rules (what a bundle's merged manifest is checked for).
    pub(crate) fn validate_structures(&self, origin: &Path) -> Result<()> {
        let bad = |reason: String| Error::InvalidManifest {
            path: origin.to_path_buf(),
            reason,
            source: None,
        };
        if self.labels.len() < 2 {
            return Err(bad(
                "at least background and one structure are needed".into()
            ));
        }
        for (n, l) in self.labels.iter().enumerate() {
            if l.index != n {
                return Err(bad(format!(
                    "labels must be listed by index 0..{}: entry {n} has index {}",
                    self.labels.len(),
                    l.index
                )));
            }
            if l.name.trim().is_empty() {
                return Err(bad(format!("label {n} has an empty name")));
            }
            // ROI Name is a DICOM LO: at most 64 characters, no backslash or control character.
            if l.name.chars().count() > 64
                || l.name.contains('\\')
                || l.name.chars().any(char::is_control)
            {
                return Err(bad(format!(
                    "label {n} name {:?}: at most 64 characters, no backslash or control character",
                    l.name
                )));
            }
            if let Some(c) = &l.code {
                for (what, v, max) in [
                    ("code value", &c.value, 16),
                    ("coding scheme", &c.scheme, 16),
                    ("code meaning", &c.meaning, 64),
                ] {
                    if v.trim().is_empty()
                        || v.chars().count() > max
                        || v.contains('\\')
                        || v.chars().any(char::is_control)
                    {
                        return Err(bad(format!(
                            "label {}: {what} {v:?} must be 1 to {max} characters without a backslash",
                            l.name
                        )));
                    }
                }
            }
            if !matches!(l.connectivity, 6 | 26) {
                return Err(bad(format!(
                    "label {}: connectivity {} (must be 6 or 26)",
                    l.name, l.connectivity
                )));
            }
            if let Some(f) = l.min_component_fraction
                && !(0.0..=1.0).contains(&f)
            {
                return Err(bad(format!(
                    "label {}: min_component_fraction {f} outside [0, 1]",
                    l.name
                )));
            }
        }
        if self.labels.len() > 255 {
            return Err(bad("more than 255 labels".into()));
        }
        self.check_rules().map_err(bad)?;
        Ok(())
    }

    fn validate(&self, origin: &Path) -> Result<()> {
        let bad = |reason: String| Error::InvalidManifest {
            path: origin.to_path_buf(),
            reason,
            source: None,
        };
        if self.schema_version != SCHEMA_VERSION {
            return Err(bad(format!(
                "schema_version {} is not supported (this SDK reads {SCHEMA_VERSION})",
                self.schema_version
            )));
        }
        self.validate_structures(origin)?;
        if self.patch_size.contains(&0) {
            return Err(bad(format!("patch_size {:?} has a zero", self.patch_size)));
        }
        if self.patch_size.iter().product::<usize>() > 512 * 512 * 512 {
            return Err(bad(format!(
                "patch_size {:?} is implausibly large",
                self.patch_size
            )));
        }
        if !(self.tile_step > 0.0 && self.tile_step <= 1.0) {
            return Err(bad(format!(
                "tile_step {} must be in (0, 1]",
                self.tile_step
            )));
        }
        if let Some(&p) = self.patch_size.iter().min()
            && (p as f64) * self.tile_step < 1.0
        {
            return Err(bad(format!(
                "tile_step {} of a {p}-voxel patch axis is under one voxel",
                self.tile_step
            )));
        }
        if let Spacing::Mm(s) = self.spacing_mm
            && s.iter().any(|v| !(v.is_finite() && *v > 0.0))
        {
            return Err(bad(format!("spacing_mm {s:?} must be positive")));
        }
        if self.mirror_axes.iter().any(|&a| a > 2) {
            return Err(bad(format!(
                "mirror_axes {:?}: axes are 0, 1, 2",
                self.mirror_axes
            )));
        }
        match self.normalization {
            Normalization::CtWindow { width, range, .. } => {
                if width.is_nan() || width <= 0.0 || range[0] == range[1] {
                    return Err(bad("ct_window needs width > 0 and a non-empty range".into()));
                }
            }
            Normalization::CtZscore { clip, std, .. } => {
                if std.is_nan() || std <= 0.0 || clip[0] >= clip[1] {
                    return Err(bad("ct_zscore needs std > 0 and clip[0] < clip[1]".into()));
                }
            }
            Normalization::ZscoreImage { .. } => {
                if self.pipeline != Some(Pipeline::NnunetV2) {
                    return Err(bad(
                        "normalization zscore_image is only supported in nnunet_v2 packages".into(),
                    ));
                }
            }
        }
        match (self.pipeline, &self.nnunet) {
            (Some(Pipeline::NnunetV2), Some(spec)) => spec.check(self.labels.len()).map_err(bad)?,
            (Some(Pipeline::NnunetV2), None) => {
                return Err(bad(
                    "\"pipeline\": \"nnunet_v2\" without an \"nnunet\" block".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(bad(
                    "an \"nnunet\" block without \"pipeline\": \"nnunet_v2\"".into(),
                ));
            }
            (None, None) => {}
        }
        if self.onnx.sha256.len() != 64 || !self.onnx.sha256.chars().all(|c| c.is_ascii_hexdigit())
        {
            return Err(bad("onnx.sha256 must be 64 hex digits".into()));
        }
        if self.onnx.file.contains("..") || Path::new(&self.onnx.file).is_absolute() {
            return Err(bad(
                "onnx.file must be a plain file name inside the package".into(),
            ));
        }
        Ok(())
    }

    /// Number of labels including background.
    pub fn num_classes(&self) -> usize {
        self.labels.len()
    }

    /// Number of channels the network outputs: the labels, or for a region-based nnU-Net
    /// model its regions.
    pub fn output_channels(&self) -> usize {
        match &self.nnunet {
            Some(n) => n.labels.num_segmentation_heads,
            None => self.labels.len(),
        }
    }
}
