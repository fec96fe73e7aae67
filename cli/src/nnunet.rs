//! `autocontour predict` (a NIfTI CT in, a NIfTI label map out: what `nnUNetv2_predict` does,
//! for side-by-side runs) and `autocontour import nnunet` (runs the Python importer).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use autocontour::Error;
use autocontour::infer::{InferOptions, predict};
use autocontour::model::{Device, Fallback, Model, ModelOptions};
use autocontour::nifti::{read_nifti_image, write_nifti_labels};
use autocontour::runtime::RuntimeOptions;

use crate::error::{CliError, CliResult};

/// Arguments of `autocontour predict`.
#[derive(clap::Args)]
pub struct PredictArgs {
    /// The CT as a NIfTI file (.nii or .nii.gz), in HU.
    pub input: PathBuf,
    /// Model package folder.
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// Output label map (.nii.gz or .nii), on the input's grid.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// nnU-Net packages: the folds to ensemble (default: every fold in the package).
    #[arg(long, num_args = 1.., value_name = "FOLD")]
    pub folds: Option<Vec<u32>>,
    /// Run without test-time mirroring.
    #[arg(long)]
    pub no_mirroring: bool,
    /// Execution provider: cpu, cuda[:N] or tensorrt[:N].
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// CPU threads for ONNX Runtime (0: its default).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

pub fn predict_cmd(args: PredictArgs, runtime: RuntimeOptions) -> CliResult<()> {
    let t0 = Instant::now();
    let device: Device = args
        .device
        .parse()
        .map_err(|e: Error| CliError::Usage(e.to_string()))?;
    let model = Model::open(
        &args.model,
        &ModelOptions {
            runtime,
            device,
            threads: args.threads,
            fallback: Fallback::ToCpu,
            folds: args.folds.clone(),
        },
    )?;
    let load_model_s = t0.elapsed().as_secs_f64();
    let t = Instant::now();
    let ct = read_nifti_image(&args.input)?;
    let read_s = t.elapsed().as_secs_f64();
    let pred = predict(
        &model,
        &ct,
        &InferOptions {
            disable_mirroring: args.no_mirroring,
            ..InferOptions::default()
        },
    )?;
    let t = Instant::now();
    let description = format!("{} {}", model.manifest.name, model.manifest.version);
    write_nifti_labels(&args.out, &pred.labels, &description)?;
    let write_s = t.elapsed().as_secs_f64();
    let mut counts = vec![0usize; model.manifest.num_classes()];
    for &l in pred.labels.data() {
        if let Some(c) = counts.get_mut(l as usize) {
            *c += 1;
        }
    }
    let summary = serde_json::json!({
        "input": args.input,
        "output": args.out,
        "model": { "name": model.manifest.name, "version": model.manifest.version, "folds": model.folds },
        "mirroring": !args.no_mirroring,
        "tiles": pred.tiles,
        "evaluations": pred.evaluations,
        "voxels_per_label": model.manifest.labels.iter().map(|l| (l.name.clone(), serde_json::Value::from(counts.get(l.index).copied().unwrap_or(0)))).collect::<serde_json::Map<_, _>>(),
        "timings_s": {
            "load_model": load_model_s,
            "read": read_s,
            "preprocess": pred.timings.preprocess_s,
            "inference": pred.timings.inference_s,
            "ort_run": pred.timings.ort_run_s,
            "resample": pred.timings.resample_s,
            "write": write_s,
            "total": t0.elapsed().as_secs_f64(),
        },
    });
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

/// `autocontour import` subcommands.
#[derive(clap::Subcommand)]
pub enum ImportCommand {
    /// An nnU-Net v2 trained model folder → a model package (runs
    /// models/importers/nnunet/import_nnunet.py; needs its Python environment, see
    /// models/importers/nnunet/README.md). Arguments after the folder are passed through:
    /// --out DIR (required), --folds 0 1 …, --checkpoint FILE, --fp16, --name, --version,
    /// --label-meta FILE, --force.
    Nnunet {
        /// The trained model folder (…/DatasetXXX_Name/Trainer__Plans__Configuration).
        folder: PathBuf,
        /// Python interpreter with the importer's requirements (default:
        /// $AUTOCONTOUR_NNUNET_PYTHON, then target/nnunet/venv/bin/python, then python3).
        #[arg(long, value_name = "PATH")]
        python: Option<PathBuf>,
        /// Importer options, passed through.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        rest: Vec<String>,
    },
}

/// Where the importer script is: beside the executable's share folder, or in the source tree.
fn importer_script() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .as_deref()
        .and_then(Path::parent)
    {
        candidates.push(dir.join("models/importers/nnunet/import_nnunet.py"));
        candidates.push(dir.join("../share/autocontour/models/importers/nnunet/import_nnunet.py"));
    }
    candidates.push(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../models/importers/nnunet/import_nnunet.py"),
    );
    candidates.into_iter().find(|p| p.is_file())
}

fn importer_python(explicit: Option<PathBuf>) -> PathBuf {
    if let Some(p) = explicit {
        return p;
    }
    if let Some(p) = std::env::var_os("AUTOCONTOUR_NNUNET_PYTHON").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/nnunet/venv/bin/python");
    if venv.is_file() {
        return venv;
    }
    PathBuf::from("python3")
}

pub fn import_cmd(cmd: ImportCommand) -> CliResult<()> {
    match cmd {
        ImportCommand::Nnunet {
            folder,
            python,
            rest,
        } => {
            let script = importer_script().ok_or_else(|| {
                CliError::Usage(
                    "models/importers/nnunet/import_nnunet.py not found next to the executable \
                     or in the source tree; run it directly with its Python environment"
                        .into(),
                )
            })?;
            let python = importer_python(python);
            let status = Command::new(&python)
                .arg(&script)
                .arg(&folder)
                .args(&rest)
                .status()
                .map_err(|e| CliError::Usage(format!("cannot run {}: {e}", python.display())))?;
            match status.code() {
                Some(0) => Ok(()),
                // The importer printed `error[NAME]: …`; keep its exit status (10–25, 1, 2).
                Some(code) => Err(CliError::Importer { code }),
                None => Err(CliError::Importer { code: 1 }),
            }
        }
    }
}
