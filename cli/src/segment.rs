//! `autocontour segment`: CT folders in; RT Structure Set, preview PNG and JSON summary out.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use crate::preview::write_preview;
use autocontour::audit::{AuditOutput, AuditRecord};
use autocontour::contour::ContourOptions;
use autocontour::dicom::{LoadOptions, load_series};
use autocontour::infer::{InferOptions, Progress};
use autocontour::io::OutputSet;
use autocontour::model::{Device, Fallback, Model, ModelOptions};
use autocontour::pipeline::segment_with;
use autocontour::plausibility::OnMismatch;
use autocontour::profile::{ResolvedProfile, SiteProfile};
use autocontour::runtime::RuntimeOptions;
use autocontour::{Error, Result};

use crate::error::{CliError, CliResult};

/// Arguments of `autocontour segment`.
#[derive(clap::Args)]
pub struct SegmentArgs {
    /// CT folders, one case each.
    pub inputs: Vec<PathBuf>,
    /// A text file listing more CT folders, one per line (# comments allowed).
    #[arg(long, value_name = "FILE")]
    pub list: Option<PathBuf>,
    /// Model package folder (default: $AUTOCONTOUR_MODEL, then the bundled models/thorax-basic).
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Output folder. One case: files directly in it; several: one subfolder per case and
    /// summary.csv.
    #[arg(long, default_value = "autocontour-out")]
    pub out: PathBuf,
    /// Execution provider: cpu, cuda[:N] or tensorrt[:N].
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Fail instead of falling back to the CPU when the device is unavailable.
    #[arg(long)]
    pub no_fallback: bool,
    /// CPU threads for ONNX Runtime (0: its default).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Cases processed at the same time.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Series Instance UID to use when a folder holds several series.
    #[arg(long)]
    pub uid: Option<String>,
    /// Skip the preview PNG.
    #[arg(long)]
    pub no_preview: bool,
    /// Also write the label map as a DICOM Segmentation (seg.dcm).
    #[arg(long)]
    pub seg: bool,
    /// Also write the label map as NIfTI (labels.nii.gz, labels.json).
    #[arg(long)]
    pub nifti: bool,
    /// A CT that does not suit the model (body region, scan length, no body, expected
    /// structures missing): `flag` segments it and raises case flags, `refuse` fails the case
    /// with a named error and writes nothing.
    #[arg(long, value_enum, default_value_t = MismatchArg::Flag)]
    pub on_mismatch: MismatchArg,
    /// nnU-Net packages: the folds to ensemble (default: every fold in the package).
    #[arg(long, num_args = 1.., value_name = "FOLD")]
    pub folds: Option<Vec<u32>>,
    /// Run without the model's test-time mirroring (faster, usually slightly less accurate).
    #[arg(long)]
    pub no_mirroring: bool,
    /// Site profile (TOML or JSON): structure names, colours, types, subset, structure set
    /// label, approval status (docs/profiles.md). Checked against the model before any case.
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Append one JSON line per case (succeeded or failed) to this file.
    #[arg(long, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    /// Derive the RTSTRUCT's and SEG's UIDs from (series, model, options) instead of making new
    /// ones: segmenting the same series again replaces the previous objects in a PACS or TPS
    /// instead of adding copies.
    #[arg(long)]
    pub stable_uids: bool,
}

impl SegmentArgs {
    /// The per-case options of these arguments.
    pub fn case_options(&self) -> CaseOptions {
        CaseOptions {
            uid: self.uid.clone(),
            on_mismatch: self.on_mismatch,
            no_mirroring: self.no_mirroring,
            seg: self.seg,
            nifti: self.nifti,
            no_preview: self.no_preview,
            stable_uids: self.stable_uids,
            folds: self.folds.clone(),
        }
    }
}

/// How one case is segmented and what is written for it (`segment` and `worker`; the `options`
/// of a queued job).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaseOptions {
    /// Series Instance UID to use when the folder holds several series.
    pub uid: Option<String>,
    /// What a CT that does not suit the model gets.
    pub on_mismatch: MismatchArg,
    /// Run without test-time mirroring.
    pub no_mirroring: bool,
    /// Also write seg.dcm.
    pub seg: bool,
    /// Also write labels.nii.gz and labels.json.
    pub nifti: bool,
    /// Skip preview.png.
    pub no_preview: bool,
    /// Output UIDs derived from [`CaseOptions::job_key`] instead of new ones.
    pub stable_uids: bool,
    /// The nnU-Net folds the model was opened with (part of the job key).
    pub folds: Option<Vec<u32>>,
}

impl CaseOptions {
    /// The canonical text of the options that change the outputs' content (the job key's
    /// options part, see `Segmentation::job_key`).
    pub fn key_text(&self) -> String {
        format!(
            "on_mismatch={:?};mirroring={};folds={:?};uid={}",
            self.on_mismatch,
            !self.no_mirroring,
            self.folds,
            self.uid.as_deref().unwrap_or("")
        )
    }
}

/// `--on-mismatch` values.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum MismatchArg {
    /// Segment and raise case flags.
    #[default]
    Flag,
    /// Refuse the case (exit status 1, no output files).
    Refuse,
}

/// Where the default model package is.
pub fn default_model() -> PathBuf {
    if let Some(p) = std::env::var_os("AUTOCONTOUR_MODEL").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .as_deref()
        .and_then(Path::parent)
    {
        for c in [
            dir.join("models/thorax-basic"),
            dir.join("../share/autocontour/models/thorax-basic"),
        ] {
            if c.join("model.json").exists() {
                return c;
            }
        }
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/thorax-basic")
}

struct CaseOutcome {
    name: String,
    input: PathBuf,
    result: CliResult<serde_json::Value>,
    seconds: f64,
}

/// The CT folders given on the command line, then those of `--list` (one per line, `#`
/// comments); a usage error when there are none.
pub fn case_inputs(inputs: &[PathBuf], list: Option<&Path>) -> CliResult<Vec<PathBuf>> {
    let mut inputs = inputs.to_vec();
    if let Some(list) = list {
        let text = std::fs::read_to_string(list).map_err(|e| Error::io(list, e))?;
        inputs.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(PathBuf::from),
        );
    }
    if inputs.is_empty() {
        return Err(CliError::Usage(
            "no CT folder given (pass folders or --list FILE)".into(),
        ));
    }
    Ok(inputs)
}

pub fn run(args: SegmentArgs, runtime: RuntimeOptions) -> CliResult<()> {
    let inputs = case_inputs(&args.inputs, args.list.as_deref())?;
    let device: Device = args
        .device
        .parse()
        .map_err(|e: Error| CliError::Usage(e.to_string()))?;
    let model_dir = args.model.clone().unwrap_or_else(default_model);
    let opts = ModelOptions {
        runtime,
        device,
        threads: args.threads,
        fallback: if args.no_fallback {
            Fallback::Fail
        } else {
            Fallback::ToCpu
        },
        folds: args.folds.clone(),
    };
    let t = Instant::now();
    let model = Model::open(&model_dir, &opts)?;
    log::debug!(
        "model {} opened in {:.3} s",
        model_dir.display(),
        t.elapsed().as_secs_f64()
    );
    let profile = match &args.profile {
        Some(p) => Some(SiteProfile::load(p)?.resolve(&model.manifest)?),
        None => None,
    };
    if let Some(reason) = &model.execution.fallback_reason {
        eprintln!("note: running on the CPU: {reason}");
    }
    std::fs::create_dir_all(&args.out).map_err(|e| Error::io(&args.out, e))?;
    let batch = inputs.len() > 1;
    let names = case_names(&inputs);
    let queue = Mutex::new(inputs.iter().cloned().zip(names).collect::<Vec<_>>());
    let outcomes = Mutex::new(Vec::new());
    let tty = std::io::stderr().is_terminal();
    let case_opts = args.case_options();
    let jobs = args.jobs.clamp(1, inputs.len());
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                loop {
                    let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop();
                    let Some((input, name)) = next else { break };
                    let out = if batch {
                        args.out.join(&name)
                    } else {
                        args.out.clone()
                    };
                    let t = Instant::now();
                    let result = run_case(
                        &model,
                        profile.as_ref(),
                        &input,
                        &out,
                        &name,
                        &case_opts,
                        tty && jobs == 1,
                    );
                    if let Err(e) = &result {
                        eprintln!("{name}: error: {e}");
                    }
                    if let Some(log) = &args.audit_log {
                        let record = match &result {
                            Ok((_, record)) => record.clone(),
                            Err(e) => {
                                let secs = t.elapsed().as_secs_f64();
                                let r = match e {
                                    CliError::Sdk(e) => AuditRecord::failure(&model, e, None, secs),
                                    other => {
                                        let mut r = AuditRecord::failure(
                                            &model,
                                            &Error::InvalidArgument(other.to_string()),
                                            None,
                                            secs,
                                        );
                                        r.error_code = Some("CliInput".into());
                                        r.error = Some(other.to_string());
                                        r
                                    }
                                }
                                .with_input(&input);
                                match &profile {
                                    Some(p) => r.with_profile(&p.name, &p.sha256),
                                    None => r,
                                }
                            }
                        };
                        if let Err(e) = record.append_to(log) {
                            eprintln!("{name}: error: audit log: {e}");
                        }
                    }
                    let result = result.map(|(summary, _)| summary);
                    outcomes
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(CaseOutcome {
                            name,
                            input,
                            result,
                            seconds: t.elapsed().as_secs_f64(),
                        });
                }
            });
        }
    });
    let mut outcomes = outcomes.into_inner().unwrap_or_else(|p| p.into_inner());
    outcomes.sort_by(|a, b| a.name.cmp(&b.name));
    let failed = outcomes.iter().filter(|o| o.result.is_err()).count();
    if batch {
        write_csv(&args.out.join("summary.csv"), &outcomes)?;
        println!(
            "{} cases, {} failed; summary: {}",
            outcomes.len(),
            failed,
            args.out.join("summary.csv").display()
        );
    }
    match outcomes.into_iter().find_map(|o| o.result.err()) {
        Some(e) if !batch => Err(e),
        Some(_) => Err(CliError::CasesFailed { failed }),
        None => Ok(()),
    }
}

pub fn case_names(inputs: &[PathBuf]) -> Vec<String> {
    let mut seen = std::collections::HashMap::new();
    inputs
        .iter()
        .map(|p| {
            let base = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "case".into());
            let n = seen.entry(base.clone()).or_insert(0usize);
            *n += 1;
            if *n == 1 { base } else { format!("{base}-{n}") }
        })
        .collect()
}

/// Segments one case and writes its outputs into `out` (all or nothing): the summary JSON and
/// the audit record.
pub fn run_case(
    model: &Model,
    profile: Option<&ResolvedProfile>,
    input: &Path,
    out: &Path,
    name: &str,
    args: &CaseOptions,
    tty: bool,
) -> CliResult<(serde_json::Value, AuditRecord)> {
    let t_all = Instant::now();
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let t = Instant::now();
    let ct = load_series(input, args.uid.as_deref(), &LoadOptions::default())?;
    let load_s = t.elapsed().as_secs_f64();
    let last = Mutex::new((String::new(), -1i64));
    let report = |p: Progress<'_>| {
        let pct = (p.fraction * 100.0).round() as i64;
        let mut l = last.lock().unwrap_or_else(|e| e.into_inner());
        if tty {
            if pct != l.1 {
                eprint!("\r{name}: {:<10} {pct:>3}%", p.stage);
                if pct >= 100 {
                    eprintln!();
                }
            }
        } else if l.0 != p.stage || pct / 25 != l.1 / 25 {
            eprintln!("{name}: {} {pct}%", p.stage);
        }
        *l = (p.stage.to_string(), pct);
    };
    let mut seg = segment_with(
        model,
        &ct,
        &InferOptions {
            progress: Some(&report),
            disable_mirroring: args.no_mirroring,
            ..InferOptions::default()
        },
        match args.on_mismatch {
            MismatchArg::Flag => OnMismatch::Flag,
            MismatchArg::Refuse => OnMismatch::Refuse,
        },
    )?;
    if let Some(p) = profile {
        seg.apply_profile(p.clone());
    }
    let job_key = seg.job_key(&ct, &args.key_text());
    if args.stable_uids {
        seg.output_uid_key = Some(job_key.clone());
    }
    // Every output is written to a temporary name first and renamed into place together at the
    // end, summary.json last: a failure on the way leaves the previous outputs as they were.
    let mut outputs = OutputSet::new(out);
    let rtstruct = out.join("rtstruct.dcm");
    let rtstruct_tmp = outputs.stage(&rtstruct);
    let preview = out.join("preview.png");
    let preview_tmp = (!args.no_preview).then(|| outputs.stage(&preview));
    // The structure set and the preview are independent: written side by side, each timed.
    let (written, preview_s) = rayon::join(
        || {
            let t = Instant::now();
            seg.write_rtstruct(model, &ct, &rtstruct_tmp, &ContourOptions::default())
                .map(|sop| (sop, t.elapsed().as_secs_f64()))
        },
        || {
            let t = Instant::now();
            if let Some(tmp) = &preview_tmp {
                let title = format!(
                    "{} | {} {} | {}",
                    name, model.manifest.name, model.manifest.version, seg.execution.provider
                );
                write_preview(
                    tmp,
                    &ct.volume,
                    &seg.labels,
                    &seg.structures,
                    &seg.case_flags,
                    &title,
                )?;
            }
            Ok::<_, Error>(t.elapsed().as_secs_f64())
        },
    );
    let (sop, write_s) = written?;
    let preview_s = preview_s?;
    let (seg_path, nifti_path) =
        crate::convert::segment_outputs(&seg, model, &ct, out, args.seg, args.nifti, &mut outputs)?;
    let total_s = t_all.elapsed().as_secs_f64();
    let g = ct.volume.geometry();
    let summary = serde_json::json!({
        "case": name,
        "input": input,
        "series_uid": ct.series_uid,
        "job_key": job_key,
        "stable_uids": args.stable_uids,
        "geometry": g,
        "model": {
            "name": model.manifest.name,
            "version": model.manifest.version,
            "sha256": model.manifest.onnx.sha256,
            "dir": model.dir,
        },
        "execution": seg.execution,
        "structures": seg.written_structures().collect::<Vec<_>>(),
        "flagged": seg.written_structures().filter(|s| !s.flags.is_empty()).map(|s| &s.name).collect::<Vec<_>>(),
        "profile": seg.profile.as_ref().map(|p| serde_json::json!({"name": p.name, "sha256": p.sha256})),
        "case_flags": seg.case_flags,
        "ct": seg.ct_facts,
        "timings_s": {
            "load": load_s,
            "preprocess": seg.timings.infer.preprocess_s,
            "inference": seg.timings.infer.inference_s,
            "ort_run": seg.timings.infer.ort_run_s,
            "resample": seg.timings.infer.resample_s,
            "postprocess": seg.timings.postprocess_s,
            "checks": seg.timings.checks_s,
            "rtstruct": write_s,
            "preview": preview_s,
            "total": total_s,
        },
        "outputs": {
            "rtstruct": rtstruct,
            "rtstruct_sop_instance_uid": sop,
            "preview": if args.no_preview { None } else { Some(&preview) },
            "seg": seg_path,
            "nifti": nifti_path,
        },
    });
    let text = serde_json::to_string_pretty(&summary)?;
    let json_path = out.join("summary.json");
    autocontour::io::write_bytes_atomically(&outputs.stage(&json_path), (text + "\n").as_bytes())?;
    outputs.commit()?;
    println!(
        "{name}: {} structures in {total_s:.1} s",
        seg.structures.len()
    );
    for f in &seg.case_flags {
        println!("  ! {f}");
    }
    for s in seg.written_structures() {
        let conf = s
            .confidence
            .map(|c| format!("{c:.2}"))
            .unwrap_or_else(|| "-".into());
        let flags = if s.flags.is_empty() {
            String::new()
        } else {
            let f: Vec<String> = s.flags.iter().map(|f| f.to_string()).collect();
            format!("  [{}]", f.join("; "))
        };
        println!(
            "  {:<14} {:>10.1} ml  confidence {conf}{flags}",
            s.name, s.volume_ml
        );
    }
    println!("  RTSTRUCT {}", rtstruct.display());
    for (what, p) in [("SEG     ", &seg_path), ("NIfTI   ", &nifti_path)] {
        if let Some(p) = p {
            println!("  {what} {}", p.display());
        }
    }
    if !args.no_preview {
        println!("  preview  {}", preview.display());
    }
    println!("  summary  {}", json_path.display());
    let mut outputs = vec![AuditOutput {
        kind: "rtstruct".into(),
        path: rtstruct.clone(),
        sop_instance_uid: Some(sop.clone()),
    }];
    for (kind, p) in [("seg", &seg_path), ("nifti", &nifti_path)] {
        if let Some(p) = p {
            outputs.push(AuditOutput {
                kind: kind.into(),
                path: p.clone(),
                sop_instance_uid: None,
            });
        }
    }
    if !args.no_preview {
        outputs.push(AuditOutput {
            kind: "preview".into(),
            path: preview.clone(),
            sop_instance_uid: None,
        });
    }
    outputs.push(AuditOutput {
        kind: "summary".into(),
        path: json_path.clone(),
        sop_instance_uid: None,
    });
    let record =
        AuditRecord::success(model, &seg, &ct.series_uid, outputs, total_s).with_input(input);
    Ok((summary, record))
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn write_csv(path: &Path, outcomes: &[CaseOutcome]) -> Result<()> {
    let mut names: Vec<String> = Vec::new();
    for o in outcomes {
        if let Ok(v) = &o.result
            && let Some(arr) = v["structures"].as_array()
        {
            for s in arr {
                if let Some(n) = s["name"].as_str()
                    && !names.iter().any(|x| x == n)
                {
                    names.push(n.to_string());
                }
            }
        }
    }
    let mut out = String::from("case,input,status,error,seconds");
    for n in &names {
        out.push_str(&format!(",{}_ml", csv_field(n)));
    }
    out.push('\n');
    for o in outcomes {
        let (status, err) = match &o.result {
            Ok(_) => ("ok", String::new()),
            Err(e) => ("failed", e.to_string()),
        };
        out.push_str(&format!(
            "{},{},{status},{},{:.2}",
            csv_field(&o.name),
            csv_field(&o.input.display().to_string()),
            csv_field(&err),
            o.seconds
        ));
        for n in &names {
            let v = o.result.as_ref().ok().and_then(|v| {
                v["structures"]
                    .as_array()?
                    .iter()
                    .find(|s| s["name"].as_str() == Some(n.as_str()))?["volume_ml"]
                    .as_f64()
            });
            out.push_str(&match v {
                Some(x) => format!(",{x:.1}"),
                None => ",".into(),
            });
        }
        out.push('\n');
    }
    std::fs::write(path, out).map_err(|e| Error::io(path, e))
}
