//! The `nnunet` block of an imported nnU-Net v2 package's `model.json` (written by
//! `models/importers/nnunet/import_nnunet.py`; schema in `models/importers/nnunet/README.md`):
//! the fields the engine reads, checked before any ONNX Runtime work. Fields the importer
//! records for people (versions, checkpoint hashes, ONNX checks) are kept as they are.

use serde::{Deserialize, Serialize};

use super::resample::ResampleKind;

/// The `nnunet` block.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NnunetSpec {
    /// Must be true: the ONNX graphs take `[z, y, x]` and hold nnU-Net's transposes.
    pub transposes_in_onnx: bool,
    /// The configuration's spacing, `[z, y, x]` mm.
    pub spacing_zyx: [f64; 3],
    /// The configuration's patch, `[z, y, x]`.
    pub patch_size_zyx: [usize; 3],
    /// Tile loop order, outermost first, `[z, y, x]` axes.
    #[serde(default = "default_loop")]
    pub tile_loop_axes_zyx: [usize; 3],
    /// Crop to the nonzero box before preprocessing (nnU-Net always does).
    pub crop_to_nonzero: bool,
    /// Per input channel (exactly one: the CT).
    pub normalization: Vec<ChannelNormalization>,
    /// Image and logits resampling.
    pub resampling: Resampling,
    /// Tile step.
    pub sliding_window: SlidingWindow,
    /// Gaussian blending weights.
    pub gaussian: Gaussian,
    /// `float16` (what nnU-Net 2.8.1 uses on every device).
    pub accumulator_dtype: String,
    /// Test-time mirroring.
    pub mirroring: Mirroring,
    /// One ONNX graph per fold.
    pub folds: Vec<Fold>,
    /// `mean_logits`.
    pub ensemble: String,
    /// Labels or regions.
    pub labels: NnLabels,
    /// Must be 1.
    pub num_input_channels: usize,
    /// Everything else the importer recorded (versions, source, checks), kept verbatim.
    #[serde(flatten)]
    pub recorded: serde_json::Map<String, serde_json::Value>,
}

fn default_loop() -> [usize; 3] {
    [0, 1, 2]
}

/// Normalisation of one input channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChannelNormalization {
    /// `ct_zscore` (CTNormalization) or `zscore_image` (ZScoreNormalization).
    pub kind: String,
    /// nnU-Net's class name.
    #[serde(default)]
    pub scheme: String,
    /// ZScoreNormalization inside the nonzero mask only.
    #[serde(default)]
    pub use_mask_for_norm: bool,
    /// CTNormalization: the foreground 0.5 and 99.5 percentiles.
    #[serde(default)]
    pub clip: Option<[f64; 2]>,
    /// CTNormalization: foreground mean.
    #[serde(default)]
    pub mean: Option<f64>,
    /// CTNormalization: foreground standard deviation.
    #[serde(default)]
    pub std: Option<f64>,
    /// Other recorded fields (channel number and name).
    #[serde(flatten)]
    pub recorded: serde_json::Map<String, serde_json::Value>,
}

/// `resampling`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Resampling {
    /// `resample_data_or_seg_to_shape`.
    pub function: String,
    /// max/min spacing above which one axis is resampled separately.
    pub separate_z_anisotropy_threshold: f64,
    /// Image resampling.
    pub data: ResampleArgs,
    /// Logits back to the CT grid.
    pub logits: ResampleArgs,
    /// `float16`: the resampled logits are stored (and compared) in float16.
    pub logits_dtype: String,
}

/// `resampling_fn_*_kwargs`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ResampleArgs {
    /// Spline order.
    pub order: usize,
    /// Spline order along the low-resolution axis.
    pub order_z: usize,
    /// `null`, `true`, `false`.
    #[serde(default)]
    pub force_separate_z: Option<bool>,
}

impl Resampling {
    /// The image's resampling.
    pub fn data_kind(&self) -> ResampleKind {
        self.kind(self.data)
    }

    /// The logits' resampling.
    pub fn logits_kind(&self) -> ResampleKind {
        self.kind(self.logits)
    }

    fn kind(&self, a: ResampleArgs) -> ResampleKind {
        ResampleKind {
            order: a.order,
            order_z: a.order_z,
            force_separate_z: a.force_separate_z,
            anisotropy_threshold: self.separate_z_anisotropy_threshold,
        }
    }
}

/// `sliding_window`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SlidingWindow {
    /// Fraction of the patch (0.5).
    pub tile_step: f64,
    /// Recorded rule name.
    #[serde(flatten)]
    pub recorded: serde_json::Map<String, serde_json::Value>,
}

/// `gaussian`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Gaussian {
    /// σ = patch · sigma_scale (1/8).
    pub sigma_scale: f64,
    /// The map is scaled to this maximum (10).
    pub value_scaling_factor: f64,
    /// Recorded cast description.
    #[serde(flatten)]
    pub recorded: serde_json::Map<String, serde_json::Value>,
}

/// `mirroring`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Mirroring {
    /// Allowed axes, `[z, y, x]` indices, in nnU-Net's order.
    pub axes_zyx: Vec<usize>,
    /// Recorded transposed axes and rules.
    #[serde(flatten)]
    pub recorded: serde_json::Map<String, serde_json::Value>,
}

/// One fold's graph.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fold {
    /// Fold number.
    pub fold: u32,
    /// File in the package.
    pub file: String,
    /// Hex SHA-256 of the file.
    pub sha256: String,
    /// Recorded checkpoint and ONNX check.
    #[serde(flatten)]
    pub recorded: serde_json::Map<String, serde_json::Value>,
}

/// `labels`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NnLabels {
    /// Region-based training (sigmoid outputs painted in `regions_class_order`).
    pub has_regions: bool,
    /// Output channels of the network.
    pub num_segmentation_heads: usize,
    /// For regions: the label value painted for each channel, in painting order.
    #[serde(default)]
    pub regions_class_order: Option<Vec<u32>>,
    /// Recorded label tables.
    #[serde(flatten)]
    pub recorded: serde_json::Map<String, serde_json::Value>,
}

/// The normalisation the engine applies to the cropped image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Norm {
    /// CTNormalization in float32.
    Ct {
        /// Lower clip.
        lo: f32,
        /// Upper clip.
        hi: f32,
        /// Mean.
        mean: f32,
        /// max(std, 1e-8).
        std: f32,
    },
    /// ZScoreNormalization: the image's own mean and std.
    Image {
        /// Inside the hole-filled nonzero mask only.
        use_mask: bool,
    },
}

impl NnunetSpec {
    /// Checks everything the engine relies on; the error names the field.
    pub fn check(&self, num_labels: usize) -> Result<(), String> {
        if !self.transposes_in_onnx {
            return Err(
                "nnunet.transposes_in_onnx is false: this engine runs graphs that take [z, y, x] \
                 and hold nnU-Net's transposes (re-import with models/importers/nnunet)"
                    .into(),
            );
        }
        if self.num_input_channels != 1 || self.normalization.len() != 1 {
            return Err(format!(
                "nnunet.num_input_channels {} ({} normalisation entries): only one input channel (CT) is supported",
                self.num_input_channels,
                self.normalization.len()
            ));
        }
        self.norm()?;
        if self
            .spacing_zyx
            .iter()
            .any(|s| !(s.is_finite() && *s > 0.0))
        {
            return Err(format!(
                "nnunet.spacing_zyx {:?} must be positive",
                self.spacing_zyx
            ));
        }
        if self.patch_size_zyx.contains(&0)
            || self.patch_size_zyx.iter().product::<usize>() > 512 * 512 * 512
        {
            return Err(format!(
                "nnunet.patch_size_zyx {:?} is empty or implausibly large",
                self.patch_size_zyx
            ));
        }
        let mut l = self.tile_loop_axes_zyx;
        l.sort_unstable();
        if l != [0, 1, 2] {
            return Err(format!(
                "nnunet.tile_loop_axes_zyx {:?} must be a permutation of 0, 1, 2",
                self.tile_loop_axes_zyx
            ));
        }
        if !self.crop_to_nonzero {
            return Err("nnunet.crop_to_nonzero false: nnU-Net's DefaultPreprocessor always crops; other preprocessors are not supported".into());
        }
        let r = &self.resampling;
        if r.function != "resample_data_or_seg_to_shape" {
            return Err(format!(
                "nnunet.resampling.function {:?}: only resample_data_or_seg_to_shape is supported",
                r.function
            ));
        }
        for (what, a) in [("data", r.data), ("logits", r.logits)] {
            if a.order > 5 || a.order_z > 5 {
                return Err(format!(
                    "nnunet.resampling.{what}: spline orders {} / {} (0–5 supported)",
                    a.order, a.order_z
                ));
            }
        }
        if !(r.separate_z_anisotropy_threshold.is_finite()
            && r.separate_z_anisotropy_threshold > 0.0)
        {
            return Err(
                "nnunet.resampling.separate_z_anisotropy_threshold must be positive".into(),
            );
        }
        if r.logits_dtype != "float16" && r.logits_dtype != "float32" {
            return Err(format!(
                "nnunet.resampling.logits_dtype {:?}: float16 or float32",
                r.logits_dtype
            ));
        }
        let step = self.sliding_window.tile_step;
        if !(step > 0.0 && step <= 1.0) {
            return Err(format!(
                "nnunet.sliding_window.tile_step {step} must be in (0, 1]"
            ));
        }
        if let Some(&p) = self.patch_size_zyx.iter().min()
            && (p as f64) * step < 1.0
        {
            return Err(format!(
                "nnunet.sliding_window.tile_step {step} of a {p}-voxel patch axis is under one voxel"
            ));
        }
        let g = &self.gaussian;
        let positive = |v: f64| v > 0.0 && v.is_finite();
        if !(positive(g.sigma_scale) && positive(g.value_scaling_factor)) {
            return Err(
                "nnunet.gaussian: sigma_scale and value_scaling_factor must be positive".into(),
            );
        }
        let widest = self.patch_size_zyx.iter().copied().max().unwrap_or(0) as f64;
        if let Err(e) = super::window::kernel_radius(widest * g.sigma_scale) {
            return Err(format!(
                "nnunet.gaussian.sigma_scale {} on a {widest}-voxel patch axis: {e}",
                g.sigma_scale
            ));
        }
        if self.accumulator_dtype != "float16" {
            return Err(format!(
                "nnunet.accumulator_dtype {:?}: only float16 (nnU-Net 2.x) is supported",
                self.accumulator_dtype
            ));
        }
        let m = &self.mirroring.axes_zyx;
        if m.iter().any(|&a| a > 2) || (1..m.len()).any(|i| m[..i].contains(&m[i])) {
            return Err(format!(
                "nnunet.mirroring.axes_zyx {m:?}: distinct axes 0, 1, 2"
            ));
        }
        if self.folds.is_empty() {
            return Err("nnunet.folds is empty".into());
        }
        for f in &self.folds {
            if f.file.contains("..")
                || f.file.contains('/')
                || f.file.contains('\\')
                || std::path::Path::new(&f.file).is_absolute()
            {
                return Err(format!(
                    "nnunet.folds: fold {} file {:?} must be a plain file name inside the package",
                    f.fold, f.file
                ));
            }
            if f.sha256.len() != 64 || !f.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(format!(
                    "nnunet.folds: fold {} sha256 must be 64 hex digits",
                    f.fold
                ));
            }
        }
        if self.ensemble != "mean_logits" {
            return Err(format!(
                "nnunet.ensemble {:?}: only mean_logits is supported",
                self.ensemble
            ));
        }
        let nl = &self.labels;
        if nl.num_segmentation_heads < 1 || nl.num_segmentation_heads > 255 {
            return Err(format!(
                "nnunet.labels.num_segmentation_heads {}",
                nl.num_segmentation_heads
            ));
        }
        if nl.has_regions {
            let Some(order) = &nl.regions_class_order else {
                return Err("nnunet.labels: regions without regions_class_order".into());
            };
            if order.len() != nl.num_segmentation_heads {
                return Err(format!(
                    "nnunet.labels.regions_class_order has {} entries for {} output channels",
                    order.len(),
                    nl.num_segmentation_heads
                ));
            }
            if let Some(v) = order.iter().find(|&&v| v as usize >= num_labels || v == 0) {
                return Err(format!(
                    "nnunet.labels.regions_class_order paints value {v}, which is not one of the manifest's labels 1..{}",
                    num_labels.saturating_sub(1)
                ));
            }
        } else if nl.num_segmentation_heads != num_labels {
            return Err(format!(
                "nnunet.labels.num_segmentation_heads {} but the manifest lists {num_labels} labels",
                nl.num_segmentation_heads
            ));
        }
        Ok(())
    }

    /// The normalisation of the (single) input channel.
    pub fn norm(&self) -> Result<Norm, String> {
        let Some(n) = self.normalization.first() else {
            return Err("nnunet.normalization is empty".into());
        };
        match n.kind.as_str() {
            "ct_zscore" => {
                let (Some(clip), Some(mean), Some(std)) = (n.clip, n.mean, n.std) else {
                    return Err(
                        "nnunet.normalization[0]: ct_zscore needs clip, mean and std".into(),
                    );
                };
                if !(clip[0] <= clip[1] && mean.is_finite() && std.is_finite() && std >= 0.0) {
                    return Err(format!(
                        "nnunet.normalization[0]: clip {clip:?}, mean {mean}, std {std} are not usable"
                    ));
                }
                Ok(Norm::Ct {
                    lo: clip[0] as f32,
                    hi: clip[1] as f32,
                    mean: mean as f32,
                    std: std.max(1e-8) as f32,
                })
            }
            "zscore_image" => Ok(Norm::Image {
                use_mask: n.use_mask_for_norm,
            }),
            other => Err(format!(
                "nnunet.normalization[0].kind {other:?} ({}): ct_zscore and zscore_image are supported",
                n.scheme
            )),
        }
    }
}
