//! `autocontour anonymise <in> <out>`: every DICOM file under a folder pseudonymised with the
//! site key (see `autocontour::deid` and docs/deidentification.md).

use std::path::PathBuf;

use autocontour::deid::{KEY_FILE_ENV, Pseudonymiser, SiteKey};

use crate::error::{CliError, CliResult};

/// Options of `autocontour anonymise`.
#[derive(clap::Args)]
pub struct AnonymiseArgs {
    /// Folder to read (recursively).
    input: PathBuf,
    /// Folder to write: <out>/<new series UID>/<new SOP instance UID>.dcm (must not lie inside
    /// the input folder).
    output: PathBuf,
    /// The site key file (at least 32 random bytes: `head -c 32 /dev/urandom > site.key`);
    /// default: the file named by $AUTOCONTOUR_DEID_KEY_FILE.
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// Print the summary as JSON (counts, each input file with its output, skipped and failed
    /// inputs).
    #[arg(long)]
    json: bool,
}

/// Runs the subcommand: exit status 1 when any DICOM file failed (each is listed).
pub fn run(args: AnonymiseArgs) -> CliResult<()> {
    let key = SiteKey::locate(args.key_file.as_deref())?;
    log::debug!(
        "site key from {}",
        match &args.key_file {
            Some(p) => p.display().to_string(),
            None => format!("${KEY_FILE_ENV}"),
        }
    );
    let t0 = std::time::Instant::now();
    let report = Pseudonymiser::new(key).pseudonymise_folder(&args.input, &args.output)?;
    let secs = t0.elapsed().as_secs_f64();
    if args.json {
        // Input paths are the caller's own; no original DICOM value is printed.
        let listed = |v: &[(PathBuf, String)]| -> Vec<serde_json::Value> {
            v.iter()
                .map(|(p, why)| serde_json::json!({"path": p, "reason": why}))
                .collect()
        };
        let v = serde_json::json!({
            "written": report.written.len(),
            "series": report.series,
            "duplicates": report.duplicates,
            "files": report
                .written
                .iter()
                .map(|w| serde_json::json!({"input": w.input, "output": w.output}))
                .collect::<Vec<_>>(),
            "skipped": listed(&report.skipped),
            "failed": listed(&report.failed),
            "seconds": secs,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for (p, why) in &report.failed {
            eprintln!("failed: {}: {why}", p.display());
        }
        println!(
            "anonymised {} file(s) in {} series into {} ({:.1} s); skipped {}; failed {}",
            report.written.len(),
            report.series,
            args.output.display(),
            secs,
            report.skipped.len(),
            report.failed.len()
        );
    }
    if report.failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::FilesFailed {
            failed: report.failed.len(),
        })
    }
}
