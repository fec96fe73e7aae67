//! A loaded model package: the ONNX file checked against its manifest and its SHA-256, opened in
//! an ONNX Runtime session on the requested execution provider.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::device::{Device, Execution, Fallback, ModelOptions};
use super::manifest::{DType, Manifest};
use crate::error::{Error, Result, cause};
use crate::runtime;

/// Most intra-op threads a model may ask ONNX Runtime for.
pub const MAX_THREADS: usize = 1024;

/// A loaded model package, ready to run.
pub struct Model {
    /// The manifest.
    pub manifest: Manifest,
    /// The package folder.
    pub dir: PathBuf,
    /// Which execution provider runs.
    pub execution: Execution,
    /// One session per graph: the package's, or one per nnU-Net fold; none for a bundle.
    pub(crate) sessions: Vec<Mutex<ort::session::Session>>,
    /// Batch size the graph accepts (1 when its batch axis is fixed to 1).
    pub(crate) max_batch: usize,
    /// nnU-Net packages: the folds loaded, in order.
    pub folds: Vec<u32>,
    /// Bundles (`bundle.json`): the part models, run one after another, and where each part's
    /// labels go in the bundle's label map.
    pub parts: Vec<super::bundle::Part>,
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
        source: e,
    }
}

impl Model {
    /// Opens the package in `dir` (`model.json` + the ONNX file it names), or the bundle in
    /// `dir` (`bundle.json` and its parts, see [`super::bundle`]).
    pub fn open(dir: &Path, options: &ModelOptions) -> Result<Model> {
        if options.threads > MAX_THREADS {
            return Err(Error::InvalidArgument(format!(
                "{} threads requested; at most {MAX_THREADS} (0: ONNX Runtime's default, one per core)",
                options.threads
            )));
        }
        if dir.join(super::bundle::BUNDLE_FILE).is_file() {
            return super::bundle::open(dir, options);
        }
        let manifest_path = dir.join("model.json");
        let text = std::fs::read_to_string(&manifest_path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::ModelNotFound {
                path: manifest_path.clone(),
            },
            _ => Error::io(&manifest_path, e),
        })?;
        let manifest = Manifest::parse(&text, &manifest_path)?;
        // The graphs to load: the manifest's one, or the selected nnU-Net folds.
        let (graphs, folds) = match &manifest.nnunet {
            None => {
                if options.folds.is_some() {
                    return Err(Error::InvalidArgument(format!(
                        "folds were selected but {} is not an nnU-Net package",
                        dir.display()
                    )));
                }
                (
                    vec![(manifest.onnx.file.clone(), manifest.onnx.sha256.clone())],
                    Vec::new(),
                )
            }
            Some(spec) => {
                let wanted: Vec<u32> = match &options.folds {
                    Some(f) if f.is_empty() => {
                        return Err(Error::InvalidArgument("an empty fold list".into()));
                    }
                    Some(f) => f.clone(),
                    None => spec.folds.iter().map(|f| f.fold).collect(),
                };
                let mut graphs = Vec::new();
                for (i, &w) in wanted.iter().enumerate() {
                    if wanted[..i].contains(&w) {
                        return Err(Error::InvalidArgument(format!("fold {w} selected twice")));
                    }
                    let Some(f) = spec.folds.iter().find(|f| f.fold == w) else {
                        return Err(Error::InvalidArgument(format!(
                            "fold {w} is not in {} (folds: {:?})",
                            manifest_path.display(),
                            spec.folds.iter().map(|f| f.fold).collect::<Vec<_>>()
                        )));
                    };
                    graphs.push((f.file.clone(), f.sha256.clone()));
                }
                (graphs, wanted)
            }
        };
        let env = runtime::environment(&options.runtime)?;
        let mut sessions = Vec::new();
        let mut execution = None;
        let mut max_batch = usize::MAX;
        for (file, sha) in &graphs {
            let onnx_path = dir.join(file);
            if !onnx_path.exists() {
                return Err(Error::ModelNotFound { path: onnx_path });
            }
            let digest = sha256_file(&onnx_path)?;
            if !digest.eq_ignore_ascii_case(sha) {
                return Err(Error::ModelHashMismatch {
                    path: onnx_path,
                    expected: sha.clone(),
                    found: digest,
                });
            }
            let (session, ex) = build_session(&env, &onnx_path, options)?;
            max_batch = max_batch.min(check_graph(&session, &manifest, &onnx_path)?);
            execution.get_or_insert(ex);
            sessions.push(Mutex::new(session));
        }
        let Some(execution) = execution else {
            return Err(Error::ModelNotFound {
                path: dir.join(&manifest.onnx.file),
            });
        };
        log::info!(
            "model {} {} loaded from {} on {}{}",
            manifest.name,
            manifest.version,
            dir.display(),
            execution.provider,
            if folds.is_empty() {
                String::new()
            } else {
                format!(" (nnU-Net folds {folds:?})")
            }
        );
        Ok(Model {
            manifest,
            dir: dir.to_path_buf(),
            execution,
            sessions,
            max_batch,
            folds,
            parts: Vec::new(),
        })
    }

    /// Number of graphs an nnU-Net package runs per CT (1 for other packages, 0 for bundles).
    pub fn fold_count(&self) -> usize {
        self.sessions.len()
    }

    /// The session of fold number `i` (0-based position in [`Model::folds`]).
    pub(crate) fn fold_session(
        &self,
        i: usize,
    ) -> Result<std::sync::MutexGuard<'_, ort::session::Session>> {
        self.sessions
            .get(i)
            .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()))
            .ok_or_else(|| Error::InvalidArgument(format!("no ONNX Runtime session {i}")))
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
                Err((
                    "the ONNX Runtime library has no CUDA execution provider".to_string(),
                    None,
                ))
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
                    .map_err(|e| (e.to_string(), cause(e)))
            }
        }
        Device::TensorRt(id) => {
            let available = ep::TensorRT::is_available().unwrap_or(false);
            if !available {
                Err((
                    "the ONNX Runtime library has no TensorRT execution provider".to_string(),
                    None,
                ))
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
                    .map_err(|e| (e.to_string(), cause(e)))
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
        Err((reason, source)) => match options.fallback {
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
                source,
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
        && c as usize != m.output_channels()
    {
        return Err(bad(format!(
            "output has {c} channels but the manifest says {}",
            m.output_channels()
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
