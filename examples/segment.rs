//! Segments a CT folder with a model package through the Rust API and writes an RTSTRUCT.
//!
//!     cargo run --release --example segment -- <ct_dir> <model_dir> <out.dcm> [threads]
//!
//! `AUTOCONTOUR_DEVICE=cuda:0` (or `tensorrt:0`) picks the execution provider; the run fails
//! rather than falling back when it is unavailable. `AUTOCONTOUR_REPEAT=N` segments the series N
//! times with the same model (one session: the first run pays the provider's warm-up, e.g.
//! cuDNN's algorithm search; the later ones show the steady state).
//!
//! Prints a JSON line per run with the time per stage (`stages`: every step of the engine, see
//! `autocontour::infer::Timings`) and the process's peak resident memory, which
//! `benches/compare/infer_compare.py` reads (one run).

use std::path::PathBuf;
use std::time::Instant;

use autocontour::contour::ContourOptions;
use autocontour::dicom::{LoadOptions, load_series};
use autocontour::infer::InferOptions;
use autocontour::model::{Device, Fallback, Model, ModelOptions};
use autocontour::pipeline::segment;

fn peak_rss_mb() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [ct, model, out, rest @ ..] = args.as_slice() else {
        eprintln!("usage: segment <ct_dir> <model_dir> <out.dcm> [threads]");
        std::process::exit(2);
    };
    let threads = rest.first().map(|t| t.parse()).transpose()?.unwrap_or(0);
    let t0 = Instant::now();
    let device: Device = std::env::var("AUTOCONTOUR_DEVICE")
        .unwrap_or_else(|_| "cpu".into())
        .parse()?;
    let model = Model::open(
        &PathBuf::from(model),
        &ModelOptions {
            threads,
            device,
            fallback: Fallback::Fail,
            ..ModelOptions::default()
        },
    )?;
    let open_s = t0.elapsed().as_secs_f64();
    let t = Instant::now();
    let series = load_series(&PathBuf::from(ct), None, &LoadOptions::default())?;
    let load_s = t.elapsed().as_secs_f64();
    let repeat: usize = std::env::var("AUTOCONTOUR_REPEAT")
        .ok()
        .map(|r| r.parse())
        .transpose()?
        .unwrap_or(1);
    for run in 0..repeat.max(1) {
        let t_run = Instant::now();
        let seg = segment(&model, &series, &InferOptions::default())?;
        let t = Instant::now();
        seg.write_rtstruct(
            &model,
            &series,
            &PathBuf::from(out),
            &ContourOptions::default(),
        )?;
        let write_s = t.elapsed().as_secs_f64();
        if run == 0 {
            for s in &seg.structures {
                eprintln!("{:<12} {:>10.1} ml", s.name, s.volume_ml);
            }
        }
        let i = &seg.timings.infer;
        println!(
            "{}",
            serde_json::json!({
                "run": run,
                "open_model_s": open_s,
                "load_s": load_s,
                "preprocess_s": i.preprocess_s,
                "inference_s": i.inference_s,
                "ort_run_s": i.ort_run_s,
                "resample_s": i.resample_s,
                "stages": i,
                "postprocess_s": seg.timings.postprocess_s,
                "rtstruct_s": write_s,
                "segment_s": t_run.elapsed().as_secs_f64(),
                "total_s": t0.elapsed().as_secs_f64(),
                "peak_rss_mb": peak_rss_mb(),
                "provider": seg.execution.provider,
            })
        );
    }
    Ok(())
}
