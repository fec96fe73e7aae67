//! Pseudonymisation in the gateway (`[deid]` in gateway.toml): a complete series is
//! pseudonymised (`autocontour::deid`, keyed allow-list) before the model sees it, and its
//! results are re-identified before they are sent, so they reference the original CT and carry
//! the original patient and study.
//!
//! The re-identification record (`reid.json`: pseudonym → original UIDs, the original patient
//! and study attributes) is identifying data and stays in the series' spool folder, never in the
//! folder the model or the workers read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use autocontour::Error;
use autocontour::deid::{Identity, Pseudonymiser, reidentify};
use serde::{Deserialize, Serialize};

use super::spool::{Spool, instance_file_name};
use crate::error::{CliError, CliResult};

/// `[deid]`: pseudonymise series before segmentation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeidConfig {
    /// The site key (at least 32 bytes; `head -c 32 /dev/urandom > site.key`).
    pub key_file: PathBuf,
    /// Queue mode: the folder the workers see, where pseudonymised series and their results go
    /// (the spool, which holds the originals, is not shared with them).
    #[serde(default)]
    pub shared_dir: Option<PathBuf>,
}

/// What re-identifying a series' results needs (`reid.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Reid {
    /// The pseudonymised Series Instance UID (the model's input series).
    pub series_pseudonym: String,
    /// Every UID replaced in the series: pseudonym → original.
    pub uids: BTreeMap<String, String>,
    /// The original patient and study attributes (of the first instance).
    pub original: Identity,
}

/// Pseudonymises the instances of the series folder `dir` into `to` (created; one file per
/// instance, named by its pseudonymised SOP Instance UID) and records `dir/reid.json`.
pub fn pseudonymise_series(p: &Pseudonymiser, dir: &Path, to: &Path) -> CliResult<Reid> {
    std::fs::create_dir_all(to).map_err(|e| Error::io(to, e))?;
    let mut reid = Reid::default();
    let mut first = true;
    for f in Spool::instances(dir) {
        let file = autocontour::dicom::read_file(&f)?.obj;
        let (out, report) = p.pseudonymise_file(file, &f)?;
        let sop = report
            .pseudonymised
            .sop_instance_uid
            .clone()
            .unwrap_or_default();
        let path = to.join(instance_file_name(&sop));
        autocontour::dicom::write::write_object(&path, &out)?;
        if first {
            reid.original = report.original.clone();
            reid.series_pseudonym = report
                .pseudonymised
                .series_instance_uid
                .clone()
                .unwrap_or_default();
            first = false;
        }
        reid.uids.extend(report.uids);
    }
    if first {
        return Err(CliError::Input {
            path: dir.to_path_buf(),
            reason: "no instance to pseudonymise".into(),
            source: None,
        });
    }
    let text = serde_json::to_vec_pretty(&reid)?;
    autocontour::io::write_bytes_atomically(&dir.join("reid.json"), &text)?;
    Ok(reid)
}

/// Re-identifies `rtstruct.dcm` and `seg.dcm` found in `results` with `dir/reid.json`, writing
/// them into `out` (which may be `results`): references to the original CT, the original
/// patient and study. Returns how many files were written.
pub fn reidentify_results(dir: &Path, results: &Path, out: &Path) -> CliResult<usize> {
    let path = dir.join("reid.json");
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let reid: Reid = serde_json::from_slice(&bytes).map_err(|e| CliError::Input {
        path: path.clone(),
        reason: format!("not a re-identification record: {e}"),
        source: None,
    })?;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let mut n = 0;
    for name in ["rtstruct.dcm", "seg.dcm"] {
        let src = results.join(name);
        if !src.exists() {
            continue;
        }
        let file = autocontour::dicom::read_file(&src)?.obj;
        let ts = file
            .meta()
            .transfer_syntax()
            .trim_end_matches('\0')
            .to_string();
        let mut obj = file.into_inner();
        reidentify(&mut obj, &reid.uids, &reid.original);
        let file = autocontour::dicom::write::with_file_meta(obj, &ts, name)?;
        autocontour::dicom::write::write_object(&out.join(name), &file)?;
        n += 1;
    }
    Ok(n)
}
