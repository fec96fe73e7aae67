//! Model packages: `model.onnx` + `model.json` (schema documented in `models/MANIFEST.md`), loaded
//! into an ONNX Runtime session on the execution provider the caller chose.
//!
//! Loading checks, in order: the manifest parses and is self-consistent, the ONNX file's SHA-256
//! matches the manifest, ONNX Runtime loads it, and the graph agrees with the manifest (tensor
//! names, rank 5, one input channel, output channels = labels, element types). Each failure is a
//! named [`Error`].

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::runtime::{self, RuntimeOptions};

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
                (((hu as f64).clamp(clip[0], clip[1]) - mean) / std) as f32
            }
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
        })?;
        m.validate(origin)?;
        Ok(m)
    }

    fn validate(&self, origin: &Path) -> Result<()> {
        let bad = |reason: String| Error::InvalidManifest {
            path: origin.to_path_buf(),
            reason,
        };
        if self.schema_version != SCHEMA_VERSION {
            return Err(bad(format!(
                "schema_version {} is not supported (this SDK reads {SCHEMA_VERSION})",
                self.schema_version
            )));
        }
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

    /// Number of output channels (labels including background).
    pub fn num_classes(&self) -> usize {
        self.labels.len()
    }
}

/// Execution provider the caller asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Device {
    /// CPU.
    Cpu,
    /// NVIDIA CUDA on this device id.
    Cuda(i32),
    /// NVIDIA TensorRT on this device id (with CUDA, then CPU behind it).
    TensorRt(i32),
}

impl std::str::FromStr for Device {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim().to_ascii_lowercase();
        let (kind, id) = match s.split_once(':') {
            Some((k, n)) => (
                k.to_string(),
                n.parse::<i32>()
                    .map_err(|_| Error::InvalidArgument(format!("device id in {s:?}")))?,
            ),
            None => (s.clone(), 0),
        };
        match kind.as_str() {
            "cpu" => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda(id)),
            "tensorrt" | "trt" => Ok(Device::TensorRt(id)),
            _ => Err(Error::InvalidArgument(format!(
                "device {s:?}: expected cpu, cuda[:N] or tensorrt[:N]"
            ))),
        }
    }
}

/// What to do when the requested execution provider cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Fallback {
    /// Fall back to the CPU and report it in [`Model::execution`].
    ToCpu,
    /// Fail with [`Error::ExecutionProvider`].
    Fail,
}

/// Options for opening a model.
#[derive(Debug, Clone)]
pub struct ModelOptions {
    /// Where ONNX Runtime is.
    pub runtime: RuntimeOptions,
    /// Execution provider.
    pub device: Device,
    /// CPU threads for ONNX Runtime's intra-op pool (0 = ONNX Runtime's default). Idle pool
    /// threads block rather than spin, so the engine's own stages between calls get the cores.
    pub threads: usize,
    /// Behaviour when `device` is unavailable.
    pub fallback: Fallback,
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions {
            runtime: RuntimeOptions::default(),
            device: Device::Cpu,
            threads: 0,
            fallback: Fallback::ToCpu,
        }
    }
}

/// Which execution provider runs, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Execution {
    /// What the caller asked for.
    pub requested: Device,
    /// What runs: `CPU`, `CUDA:0`, `TensorRT:0`.
    pub provider: String,
    /// Set when the request could not be met and the CPU runs instead: the reason.
    pub fallback_reason: Option<String>,
}

/// A loaded model package, ready to run.
pub struct Model {
    /// The manifest.
    pub manifest: Manifest,
    /// The package folder.
    pub dir: PathBuf,
    /// Which execution provider runs.
    pub execution: Execution,
    pub(crate) session: Mutex<ort::session::Session>,
    /// Batch size the graph accepts (1 when its batch axis is fixed to 1).
    pub(crate) max_batch: usize,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("name", &self.manifest.name)
            .field("version", &self.manifest.version)
            .field("dir", &self.dir)
            .field("execution", &self.execution)
            .finish()
    }
}

/// Hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(buf.get(..n).unwrap_or(&[]));
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn ort_err(path: &Path) -> impl Fn(ort::Error) -> Error + '_ {
    move |e| Error::ModelLoad {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

impl Model {
    /// Opens the package in `dir` (`model.json` + the ONNX file it names).
    pub fn open(dir: &Path, options: &ModelOptions) -> Result<Model> {
        let manifest_path = dir.join("model.json");
        let text = std::fs::read_to_string(&manifest_path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::ModelNotFound {
                path: manifest_path.clone(),
            },
            _ => Error::io(&manifest_path, e),
        })?;
        let manifest = Manifest::parse(&text, &manifest_path)?;
        let onnx_path = dir.join(&manifest.onnx.file);
        if !onnx_path.exists() {
            return Err(Error::ModelNotFound { path: onnx_path });
        }
        let digest = sha256_file(&onnx_path)?;
        if !digest.eq_ignore_ascii_case(&manifest.onnx.sha256) {
            return Err(Error::ModelHashMismatch {
                path: onnx_path,
                expected: manifest.onnx.sha256.clone(),
                found: digest,
            });
        }
        let env = runtime::environment(&options.runtime)?;
        let (session, execution) = build_session(&env, &onnx_path, options)?;
        let max_batch = check_graph(&session, &manifest, &onnx_path)?;
        log::info!(
            "model {} {} loaded from {} on {}",
            manifest.name,
            manifest.version,
            dir.display(),
            execution.provider
        );
        Ok(Model {
            manifest,
            dir: dir.to_path_buf(),
            execution,
            session: Mutex::new(session),
            max_batch,
        })
    }
}

fn build_session(
    env: &ort::environment::Environment,
    onnx: &Path,
    options: &ModelOptions,
) -> Result<(ort::session::Session, Execution)> {
    use ort::ep::{self, ExecutionProvider};
    let err = ort_err(onnx);
    let base = || -> Result<ort::session::builder::SessionBuilder> {
        let mut b = ort::session::Session::builder(env).map_err(&err)?;
        if options.threads > 0 {
            b = b
                .with_intra_threads(options.threads)
                .map_err(|e| err(e.into()))?;
        }
        b = b.with_inter_threads(1).map_err(|e| err(e.into()))?;
        // Idle intra-op threads block instead of spinning: the engine's own stages run between
        // ONNX Runtime calls on the same cores, and spinning workers took CPU from them and from
        // each other (measured in README "Performance": both got faster without it).
        b = b.with_intra_op_spinning(false).map_err(|e| err(e.into()))?;
        Ok(b)
    };
    let cpu = |reason: Option<String>| -> Result<(ort::session::Session, Execution)> {
        let s = base()?.commit_from_file(onnx).map_err(&err)?;
        Ok((
            s,
            Execution {
                requested: options.device.clone(),
                provider: "CPU".into(),
                fallback_reason: reason,
            },
        ))
    };
    let attempt = match options.device {
        Device::Cpu => return cpu(None),
        Device::Cuda(id) => {
            let available = ep::CUDA::is_available().unwrap_or(false);
            if !available {
                Err("the ONNX Runtime library has no CUDA execution provider".to_string())
            } else {
                base()
                    .and_then(|b| {
                        b.with_execution_providers([ep::CUDA::default()
                            .with_device_id(id)
                            .build()
                            .error_on_failure()])
                            .map_err(|e| err(e.into()))?
                            .commit_from_file(onnx)
                            .map_err(&err)
                    })
                    .map(|s| (s, format!("CUDA:{id}")))
                    .map_err(|e| e.to_string())
            }
        }
        Device::TensorRt(id) => {
            let available = ep::TensorRT::is_available().unwrap_or(false);
            if !available {
                Err("the ONNX Runtime library has no TensorRT execution provider".to_string())
            } else {
                base()
                    .and_then(|b| {
                        b.with_execution_providers([
                            ep::TensorRT::default()
                                .with_device_id(id)
                                .build()
                                .error_on_failure(),
                            ep::CUDA::default().with_device_id(id).build(),
                        ])
                        .map_err(|e| err(e.into()))?
                        .commit_from_file(onnx)
                        .map_err(&err)
                    })
                    .map(|s| (s, format!("TensorRT:{id}")))
                    .map_err(|e| e.to_string())
            }
        }
    };
    match attempt {
        Ok((s, provider)) => Ok((
            s,
            Execution {
                requested: options.device.clone(),
                provider,
                fallback_reason: None,
            },
        )),
        Err(reason) => match options.fallback {
            Fallback::ToCpu => {
                log::warn!(
                    "{:?} unavailable ({reason}); running on the CPU",
                    options.device
                );
                cpu(Some(reason))
            }
            Fallback::Fail => Err(Error::ExecutionProvider {
                requested: format!("{:?}", options.device),
                reason,
            }),
        },
    }
}

/// Checks the graph against the manifest; returns the largest batch the graph accepts.
fn check_graph(session: &ort::session::Session, m: &Manifest, path: &Path) -> Result<usize> {
    use ort::value::TensorElementType as T;
    use ort::value::ValueType;
    let bad = |reason: String| Error::ModelMismatch {
        path: path.to_path_buf(),
        reason,
    };
    let want = match m.onnx.dtype {
        DType::Float32 => T::Float32,
        DType::Float16 => T::Float16,
    };
    let input = session
        .inputs()
        .iter()
        .find(|i| i.name() == m.onnx.input)
        .ok_or_else(|| {
            bad(format!(
                "no input named {:?} (graph inputs: {:?})",
                m.onnx.input,
                session
                    .inputs()
                    .iter()
                    .map(|i| i.name())
                    .collect::<Vec<_>>()
            ))
        })?;
    if session.inputs().len() != 1 {
        return Err(bad(format!(
            "graph has {} inputs; exactly one image input is supported",
            session.inputs().len()
        )));
    }
    let output = session
        .outputs()
        .iter()
        .find(|o| o.name() == m.onnx.output)
        .ok_or_else(|| {
            bad(format!(
                "no output named {:?} (graph outputs: {:?})",
                m.onnx.output,
                session
                    .outputs()
                    .iter()
                    .map(|o| o.name())
                    .collect::<Vec<_>>()
            ))
        })?;
    let dims = |v: &ValueType, what: &str| -> Result<Vec<i64>> {
        match v {
            ValueType::Tensor { ty, shape, .. } => {
                if *ty != want {
                    return Err(bad(format!(
                        "{what} element type is {ty:?}, manifest says {:?}",
                        m.onnx.dtype
                    )));
                }
                if shape.len() != 5 {
                    return Err(bad(format!(
                        "{what} has rank {} (shape {:?}); [N, C, Z, Y, X] expected",
                        shape.len(),
                        &shape[..]
                    )));
                }
                Ok(shape.iter().copied().collect())
            }
            other => Err(bad(format!("{what} is not a tensor: {other:?}"))),
        }
    };
    let ins = dims(input.dtype(), "input")?;
    let outs = dims(output.dtype(), "output")?;
    if let Some(&c) = ins.get(1)
        && c > 0
        && c != 1
    {
        return Err(bad(format!("input has {c} channels; 1 expected")));
    }
    if let Some(&c) = outs.get(1)
        && c > 0
        && c as usize != m.num_classes()
    {
        return Err(bad(format!(
            "output has {c} channels but the manifest lists {} labels",
            m.num_classes()
        )));
    }
    for (a, (&d, &p)) in ins.iter().skip(2).zip(m.patch_size.iter()).enumerate() {
        if d > 0 && d as usize != p {
            return Err(bad(format!(
                "input axis {} is fixed to {d} but patch_size says {p}",
                a + 2
            )));
        }
    }
    let batch = ins.first().copied().unwrap_or(1);
    Ok(if batch > 0 { batch as usize } else { 4 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> String {
        r#"{
          "schema_version": 1, "name": "t", "version": "1",
          "onnx": {"file": "model.onnx", "sha256": "00000000000000000000000000000000000000000000000000000000000000aa",
                   "input": "image", "output": "logits", "dtype": "float32"},
          "orientation": "LPS", "spacing_mm": [4.0, 4.0, 4.0],
          "normalization": {"kind": "ct_window", "level": 50, "width": 600, "range": [-1, 1]},
          "patch_size": [8, 8, 8], "tile_step": 0.5, "blending": "gaussian", "mirror_axes": [],
          "output_kind": "logits", "resample_output": "logits_linear",
          "labels": [{"index": 0, "name": "Background"},
                     {"index": 1, "name": "External", "rt_roi_type": "EXTERNAL", "fill_holes": "2d"}]
        }"#
        .to_string()
    }

    #[test]
    fn parses_and_normalises() {
        let m = Manifest::parse(&sample(), Path::new("model.json")).unwrap();
        assert_eq!(m.labels[1].fill_holes, FillHoles::TwoD);
        assert_eq!(m.labels[1].connectivity, 6);
        assert_eq!(m.spacing_mm, Spacing::Mm([4.0, 4.0, 4.0]));
        // InnerEye window: level 50, width 600 -> [-250, 350] -> [-1, 1]
        assert_eq!(m.normalization.apply(-1000.0), -1.0);
        assert_eq!(m.normalization.apply(50.0), 0.0);
        assert_eq!(m.normalization.apply(350.0), 1.0);
        assert_eq!(m.normalization.apply(2000.0), 1.0);
        let z = Normalization::CtZscore {
            clip: [-1000.0, 1000.0],
            mean: 100.0,
            std: 50.0,
        };
        assert_eq!(z.apply(200.0), 2.0);
        assert_eq!(z.apply(5000.0), 18.0);
    }

    #[test]
    fn native_spacing_parses() {
        let s = sample().replace("[4.0, 4.0, 4.0]", "\"native\"");
        let m = Manifest::parse(&s, Path::new("model.json")).unwrap();
        assert_eq!(m.spacing_mm, Spacing::Native(NativeTag::Native));
    }

    #[test]
    fn rejects_inconsistent_manifests() {
        for (from, to) in [
            ("\"schema_version\": 1", "\"schema_version\": 2"),
            ("\"tile_step\": 0.5", "\"tile_step\": 0"),
            ("[8, 8, 8]", "[8, 0, 8]"),
            ("\"index\": 1", "\"index\": 2"),
            ("\"mirror_axes\": []", "\"mirror_axes\": [3]"),
            ("\"width\": 600", "\"width\": 0"),
            ("\"blending\": \"gaussian\"", "\"blending\": \"mean\""),
            ("\"version\": \"1\",", "\"version\": \"1\", \"extra\": 1,"),
        ] {
            let s = sample().replace(from, to);
            assert_ne!(s, sample(), "{from}");
            let e = Manifest::parse(&s, Path::new("model.json")).unwrap_err();
            assert!(matches!(e, Error::InvalidManifest { .. }), "{from}: {e}");
        }
    }

    #[test]
    fn parses_devices() {
        assert_eq!("cpu".parse::<Device>().unwrap(), Device::Cpu);
        assert_eq!("cuda".parse::<Device>().unwrap(), Device::Cuda(0));
        assert_eq!("CUDA:1".parse::<Device>().unwrap(), Device::Cuda(1));
        assert_eq!("tensorrt:2".parse::<Device>().unwrap(), Device::TensorRt(2));
        assert!("tpu".parse::<Device>().is_err());
        assert!("cuda:x".parse::<Device>().is_err());
    }
}
