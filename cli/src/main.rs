//! `autocontour` command-line tool. Run `autocontour --help`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};

mod anonymise;
mod convert;
mod error;
mod evaluate;
mod gateway;
mod models;
mod nnunet;
mod plots;
mod preview;
mod queue;
mod segment;

use autocontour::dicom::{LoadOptions, discover, load_series};
use autocontour::runtime::{self, RuntimeOptions};
use autocontour::volume::{HuSample, HuVolume};
use error::{CliError, CliResult};

#[derive(Parser)]
#[command(
    name = "autocontour",
    version,
    about = "Auto-contouring for radiotherapy CT",
    after_help = "Exit status: 0 success; 1 the run failed (error: … on stderr; in a batch, any \
                  case failed); 2 a usage mistake (a bad option value or combination)."
)]
struct Cli {
    /// ONNX Runtime shared library to load (default: $AUTOCONTOUR_ORT_LIB, then next to this
    /// executable).
    #[arg(long, global = true, value_name = "PATH")]
    ort_lib: Option<PathBuf>,
    /// More log output (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Change a resource limit for this run, e.g. `--limit max_files_scanned=50000` or
    /// `--limit max_file_bytes=512MiB` (repeatable: give them all before, or all after, the
    /// subcommand; `autocontour limits` lists them).
    #[arg(long = "limit", global = true, value_name = "NAME=VALUE")]
    limits: Vec<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the DICOM series under a folder; with --load, load one and print its geometry.
    Series {
        /// Folder to scan (recursively).
        dir: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Load a series (the largest usable CT unless --uid) and print its geometry.
        #[arg(long)]
        load: bool,
        /// Series Instance UID to load.
        #[arg(long)]
        uid: Option<String>,
        /// Largest allowed slice-gap deviation from the median, mm.
        #[arg(long, default_value_t = 0.1)]
        gap_tolerance: f64,
    },
    /// Segment CT series with a model package: RT Structure Set, preview PNG, JSON summary.
    Segment(segment::SegmentArgs),
    /// Consume segmentation jobs from a RabbitMQ queue (one loaded model, jobs acknowledged once
    /// their outputs are durable; docs/queue.md).
    Worker(queue::worker::WorkerArgs),
    /// Queue one segmentation job per CT folder on RabbitMQ and follow them to the end.
    Submit(queue::submit::SubmitArgs),
    /// Run a DICOM node: receive CT series (C-STORE), segment each complete series, send the RT
    /// Structure Set to a destination (docs/gateway.md); `gateway --config F status` lists the
    /// spool.
    Gateway(gateway::GatewayArgs),
    /// Segment a NIfTI CT into a NIfTI label map on its grid (no DICOM; JSON summary on stdout).
    Predict(nnunet::PredictArgs),
    /// Import a model trained elsewhere as a model package.
    Import {
        #[command(subcommand)]
        what: nnunet::ImportCommand,
    },
    /// Rasterise an RT Structure Set on a CT grid: a NIfTI label map (+ JSON sidecar) or one
    /// NIfTI mask per ROI in a folder.
    RtstructToMask(convert::ToMaskArgs),
    /// Contour a label map (NIfTI, or labels.raw + labels.json) on a CT grid into an RT
    /// Structure Set.
    MaskToRtstruct(convert::ToRtstructArgs),
    /// Write a label map (NIfTI, or labels.raw + labels.json) on a CT as a DICOM Segmentation
    /// (one binary segment per label; names and colours as for mask-to-rtstruct).
    MaskToSeg(convert::ToRtstructArgs),
    /// Compare test structure sets with reference ones (Dice, HD95, ASSD, surface Dice…).
    Evaluate(evaluate::EvaluateArgs),
    /// Pseudonymise every DICOM file under a folder with the site key (allow-list, keyed UIDs,
    /// per-patient date shift); see docs/deidentification.md.
    #[command(alias = "anonymize")]
    Anonymise(anonymise::AnonymiseArgs),
    /// Load ONNX Runtime, print its version and path; optionally run a model once on zeros.
    OrtCheck {
        /// An ONNX model to open and run once with zero inputs.
        #[arg(long)]
        model: Option<PathBuf>,
    },
    /// Print the resource limits in force (the defaults, changed by --limit), one NAME=VALUE
    /// per line.
    Limits,
    /// Write a synthetic CT phantom series (<out>/ct/) and its labels (<out>/labels.raw/.json).
    Phantom {
        /// Output folder.
        out: PathBuf,
        /// axial-hfs, axial-ffs, negated-row, negated-col, coronal or sagittal.
        #[arg(long, default_value = "axial-hfs")]
        orientation: String,
        /// Column, row and slice spacing, mm.
        #[arg(long, value_delimiter = ',', default_values_t = [4.0, 4.0, 5.0])]
        spacing: Vec<f64>,
        /// Columns, rows, slices.
        #[arg(long, value_delimiter = ',', default_values_t = [64usize, 64, 40])]
        size: Vec<usize>,
        /// Patient position of the phantom centre, mm (LPS).
        #[arg(long, value_delimiter = ',', default_values_t = [0.0, 0.0, 0.0], allow_hyphen_values = true)]
        center: Vec<f64>,
        /// implicit-le, explicit-le, explicit-be or deflate.
        #[arg(long, default_value = "implicit-le")]
        transfer_syntax: String,
        /// Seed for reproducible UIDs.
        #[arg(long)]
        seed: Option<String>,
    },
}

/// Sets the process's resource limits from `--limit NAME=VALUE` arguments (a bad name or value
/// is a usage mistake).
fn apply_limits(specs: &[String]) -> CliResult<()> {
    if specs.is_empty() {
        return Ok(());
    }
    let mut l = autocontour::limits::limits();
    for spec in specs {
        l.set_from_str(spec)
            .map_err(|e| CliError::Usage(format!("--limit: {e}")))?;
    }
    autocontour::limits::set_limits(&l).map_err(|e| CliError::Usage(format!("--limit: {e}")))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => log::LevelFilter::Warn,
        1 => log::LevelFilter::Info,
        _ => log::LevelFilter::Debug,
    };
    env_logger::Builder::new()
        .filter_level(level)
        .format_target(false)
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

fn run(cli: Cli) -> CliResult<()> {
    let rt = RuntimeOptions {
        library: cli.ort_lib.clone(),
    };
    apply_limits(&cli.limits)?;
    match cli.command {
        Command::Limits => {
            for (name, value) in autocontour::limits::limits().entries() {
                println!("{name}={value}");
            }
            Ok(())
        }
        Command::Series {
            dir,
            json,
            load,
            uid,
            gap_tolerance,
        } => {
            if load || uid.is_some() {
                let opts = LoadOptions {
                    gap_tolerance_mm: gap_tolerance,
                    ..LoadOptions::default()
                };
                let t0 = Instant::now();
                let s = load_series(&dir, uid.as_deref(), &opts)?;
                let secs = t0.elapsed().as_secs_f64();
                print_loaded(&s, secs, json)?;
            } else {
                let summary = discover(&dir)?;
                if json {
                    println!("{}", to_json(&summary)?);
                } else {
                    print_summary(&summary);
                }
            }
            Ok(())
        }
        Command::Phantom {
            out,
            orientation,
            spacing,
            size,
            center,
            transfer_syntax,
            seed,
        } => write_phantom(
            &out,
            &orientation,
            &spacing,
            &size,
            &center,
            &transfer_syntax,
            seed,
        ),
        Command::Segment(args) => segment::run(args, rt),
        Command::Worker(args) => queue::worker::run(args, rt),
        Command::Submit(args) => queue::submit::run(args),
        Command::Gateway(args) => gateway::run(args, rt),
        Command::Predict(args) => nnunet::predict_cmd(args, rt),
        Command::Import { what } => nnunet::import_cmd(what),
        Command::RtstructToMask(args) => convert::to_mask(args),
        Command::MaskToRtstruct(args) => convert::to_rtstruct(args),
        Command::MaskToSeg(args) => convert::to_seg(args),
        Command::Evaluate(args) => evaluate::run(args),
        Command::Anonymise(args) => anonymise::run(args),
        Command::OrtCheck { model } => {
            let info = runtime::ensure_loaded(&rt)?;
            println!(
                "ONNX Runtime {} loaded from {}",
                info.version,
                info.path.display()
            );
            if let Some(m) = model {
                for (name, shape) in runtime::run_once_on_zeros(&runtime::environment(&rt)?, &m)? {
                    println!("output {name}: {shape:?}");
                }
            }
            Ok(())
        }
    }
}

fn triple<T: Copy>(v: &[T], what: &str) -> CliResult<[T; 3]> {
    match v {
        [a, b, c] => Ok([*a, *b, *c]),
        _ => Err(CliError::Usage(format!(
            "--{what} needs three comma-separated values"
        ))),
    }
}

fn write_phantom(
    out: &std::path::Path,
    orientation: &str,
    spacing: &[f64],
    size: &[usize],
    center: &[f64],
    syntax: &str,
    seed: Option<String>,
) -> CliResult<()> {
    use autocontour_test_support::phantom::{Phantom, PhantomSpec, PhantomSyntax};
    let usage = |e: autocontour::Error| CliError::Usage(e.to_string());
    let spec = PhantomSpec {
        orientation: orientation.parse().map_err(usage)?,
        size: triple(size, "size")?,
        spacing: triple(spacing, "spacing")?,
        center: triple(center, "center")?,
        seed,
    };
    let syntax: PhantomSyntax = syntax.parse().map_err(usage)?;
    let ph = Phantom::new(spec)?;
    let files = ph.write_series(&out.join("ct"), syntax)?;
    ph.write_labels(out)?;
    println!(
        "wrote {} slices to {} and labels to {}",
        files.len(),
        out.join("ct").display(),
        out.join("labels.raw").display()
    );
    Ok(())
}

fn to_json<T: serde::Serialize>(v: &T) -> CliResult<String> {
    Ok(serde_json::to_string_pretty(v)?)
}

fn print_summary(s: &autocontour::dicom::SeriesSummary) {
    println!("{} series under {}", s.series.len(), s.root.display());
    for info in &s.series {
        let size = info
            .size
            .map(|z| format!("{}x{}x{}", z[0], z[1], z[2]))
            .unwrap_or_else(|| "-".into());
        let spacing = info
            .spacing
            .map(|p| format!("{:.4}x{:.4}x{:.4} mm", p[0], p[1], p[2]))
            .unwrap_or_else(|| "-".into());
        let status = match &info.unusable {
            None => "usable".to_string(),
            Some(r) => format!("not usable: {r}"),
        };
        println!(
            "  {} {:<8} {:>4} files  {size:<12} {spacing:<26} {}  [{status}]",
            info.uid,
            info.modality,
            info.files.len(),
            info.description.as_deref().unwrap_or("")
        );
        for s in &info.skipped {
            println!("      {s}");
        }
    }
    if !s.ignored.is_empty() {
        println!(
            "  {} files ignored (not DICOM or unreadable)",
            s.ignored.len()
        );
    }
}

fn print_loaded(s: &autocontour::dicom::CtSeries, secs: f64, json: bool) -> CliResult<()> {
    let g = s.volume.geometry();
    // HU range and mean, per slice in parallel (f32 within a slice, f64 across slices).
    use rayon::prelude::*;
    let plane = (g.size[0] * g.size[1]).max(1);
    fn range_and_sum<T: HuSample>(data: &[T], plane: usize) -> (f32, f32, f64) {
        data.par_chunks(plane)
            .map(|c| {
                let (mut lo, mut hi, mut sum) = (f32::INFINITY, f32::NEG_INFINITY, 0f32);
                for &v in c {
                    let v = v.hu();
                    lo = lo.min(v);
                    hi = hi.max(v);
                    sum += v;
                }
                (lo, hi, sum as f64)
            })
            .reduce(
                || (f32::INFINITY, f32::NEG_INFINITY, 0f64),
                |a, b| (a.0.min(b.0), a.1.max(b.1), a.2 + b.2),
            )
    }
    let (lo, hi, sum) = match &s.volume {
        HuVolume::I16(v) => range_and_sum(v.data(), plane),
        HuVolume::F32(v) => range_and_sum(v.data(), plane),
    };
    let mean = sum / s.volume.len().max(1) as f64;
    let last = g.index_to_patient([0.0, 0.0, (g.size[2].saturating_sub(1)) as f64]);
    if json {
        let v = serde_json::json!({
            "series_uid": s.series_uid,
            "study_uid": s.study_uid,
            "frame_of_reference_uid": s.frame_of_reference_uid,
            "geometry": g,
            "last_slice_origin": last,
            "hu": {"min": lo, "max": hi, "mean": mean},
            "slices": s.slices.len(),
            "skipped": s.skipped.iter().map(|(p, w)| format!("{}: {w}", p.display())).collect::<Vec<_>>(),
            "load_seconds": secs,
        });
        println!("{}", to_json(&v)?);
        return Ok(());
    }
    println!("series     {}", s.series_uid);
    println!(
        "size       {} x {} x {} voxels (columns x rows x slices)",
        g.size[0], g.size[1], g.size[2]
    );
    println!(
        "spacing    {:.6} x {:.6} x {:.6} mm",
        g.spacing[0], g.spacing[1], g.spacing[2]
    );
    println!(
        "origin     ({:.3}, {:.3}, {:.3}) mm (LPS, first slice)",
        g.origin[0], g.origin[1], g.origin[2]
    );
    println!(
        "last slice ({:.3}, {:.3}, {:.3}) mm",
        last[0], last[1], last[2]
    );
    for (name, a) in [("i (columns)", 0), ("j (rows)", 1), ("k (slices)", 2)] {
        let d = g.axis(a);
        println!("axis {name:<11} ({:+.4}, {:+.4}, {:+.4})", d[0], d[1], d[2]);
    }
    println!("HU         min {lo:.0}, max {hi:.0}, mean {mean:.2}");
    if !s.skipped.is_empty() {
        println!("skipped    {} localizer image(s)", s.skipped.len());
    }
    println!("loaded in  {secs:.2} s");
    Ok(())
}
