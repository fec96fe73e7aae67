//! The batch form: every DICOM file under a folder pseudonymised into another folder.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{Pseudonymiser, Report, output_path};
use crate::dicom::{read_file, read_header, sniff, write::write_object};
use crate::error::{Error, Result};

/// Media Storage Directory Storage: a DICOMDIR, whose records repeat identifying attributes and
/// the original file names; it is not copied.
const DICOMDIR_SOP_CLASS: &str = "1.2.840.10008.1.3.10";

/// One pseudonymised file.
#[derive(Debug, Clone)]
pub struct WrittenFile {
    /// The file read.
    pub input: PathBuf,
    /// The file written (`<output>/<series pseudonym>/<instance pseudonym>.dcm`).
    pub output: PathBuf,
    /// What was done, with the original identifying attributes (identifying data: see
    /// [`Report`]).
    pub report: Report,
}

/// What [`Pseudonymiser::pseudonymise_folder`] did.
#[derive(Debug, Clone, Default)]
pub struct FolderReport {
    /// Every file written, in input path order.
    pub written: Vec<WrittenFile>,
    /// Files left out on purpose (not DICOM, a DICOMDIR, a hidden or temporary file, a second
    /// copy of an instance), with why.
    pub skipped: Vec<(PathBuf, String)>,
    /// DICOM files (or files that start like DICOM) that could not be read, pseudonymised or
    /// written, with why. A batch with any is a failed batch.
    pub failed: Vec<(PathBuf, String)>,
    /// Distinct series written.
    pub series: usize,
    /// Input files skipped because an earlier file (in path order) has the same SOP Instance
    /// UID: one instance is written once.
    pub duplicates: usize,
}

enum Outcome {
    Written(Box<WrittenFile>),
    Skipped(PathBuf, String),
    Failed(PathBuf, String),
}

/// Every file under `dir`, sorted; folders entered once by their canonical path, so symbolic
/// link loops are not followed round. Hidden files are returned apart.
fn walk(dir: &Path, files: &mut Vec<PathBuf>, hidden: &mut Vec<PathBuf>) -> Result<()> {
    let mut seen = HashSet::new();
    let max_files = crate::limits::limits().max_files_scanned;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let canonical = std::fs::canonicalize(&d).map_err(|e| Error::io(&d, e))?;
        if !seen.insert(canonical) {
            log::info!("{}: already scanned (a symbolic link loop?)", d.display());
            continue;
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&d)
            .map_err(|e| Error::io(&d, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for p in entries.into_iter().rev() {
            if p.is_dir() {
                stack.push(p);
            } else if (files.len() + hidden.len()) as u64 >= max_files {
                return Err(Error::LimitExceeded {
                    limit: "max_files_scanned",
                    value: (files.len() + hidden.len()) as u64 + 1,
                    max: max_files,
                    place: format!("{}: files under the folder", dir.display()),
                });
            } else if p
                .file_name()
                .is_some_and(|n| n.as_encoded_bytes().starts_with(b"."))
            {
                hidden.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    hidden.sort();
    Ok(())
}

pub(super) fn run(p: &Pseudonymiser, input: &Path, output: &Path) -> Result<FolderReport> {
    let in_c = std::fs::canonicalize(input).map_err(|e| Error::io(input, e))?;
    if !in_c.is_dir() {
        return Err(Error::InvalidArgument(format!(
            "{}: not a folder",
            input.display()
        )));
    }
    std::fs::create_dir_all(output).map_err(|e| Error::io(output, e))?;
    let out_c = std::fs::canonicalize(output).map_err(|e| Error::io(output, e))?;
    if out_c.starts_with(&in_c) {
        return Err(Error::InvalidArgument(format!(
            "the output folder {} lies inside the input folder {}",
            output.display(),
            input.display()
        )));
    }
    let (mut files, mut hidden) = (Vec::new(), Vec::new());
    walk(input, &mut files, &mut hidden)?;
    // Files holding the same SOP Instance UID are one instance: the first in path order is
    // written, the others skipped (decided before writing, so the result does not depend on
    // which thread finishes first).
    let uids: Vec<Option<String>> = files.par_iter().map(|f| sop_uid(f)).collect();
    let mut first: HashMap<String, &PathBuf> = HashMap::new();
    let outcomes: Vec<Outcome> = files
        .iter()
        .zip(uids)
        .map(|(f, uid)| match uid {
            Some(u) => match first.get(&u) {
                Some(earlier) => Some(Outcome::Skipped(
                    f.clone(),
                    format!(
                        "duplicate: the same SOP Instance UID as {} (written once)",
                        earlier.display()
                    ),
                )),
                None => {
                    first.insert(u, f);
                    None
                }
            },
            None => None,
        })
        .collect::<Vec<_>>()
        .into_par_iter()
        .zip(files.par_iter())
        .map(|(decided, f)| match decided {
            Some(o) => o,
            None => one(p, f, output),
        })
        .collect();
    let mut report = FolderReport::default();
    for h in hidden {
        log::info!("{}: skipped (hidden or temporary file)", h.display());
        report
            .skipped
            .push((h, "hidden or temporary file".to_string()));
    }
    let mut series = BTreeSet::new();
    for o in outcomes {
        match o {
            Outcome::Written(w) => {
                if let Some(s) = &w.report.pseudonymised.series_instance_uid {
                    series.insert(s.clone());
                }
                report.written.push(*w);
            }
            Outcome::Skipped(f, why) => {
                if why.starts_with("duplicate") {
                    report.duplicates += 1;
                }
                log::info!("{}: skipped ({why})", f.display());
                report.skipped.push((f, why));
            }
            Outcome::Failed(f, why) => {
                log::warn!("{}: failed: {why}", f.display());
                report.failed.push((f, why));
            }
        }
    }
    report.series = series.len();
    Ok(report)
}

/// The SOP Instance UID of a file (from the data set, else the file meta group), read up to the
/// pixel data; `None` when the file does not parse (its full read reports why) or is a
/// DICOMDIR (skipped as such).
fn sop_uid(path: &Path) -> Option<String> {
    let f = read_header(path).ok()?;
    if super::trimmed(f.obj.meta().media_storage_sop_class_uid()) == DICOMDIR_SOP_CLASS {
        return None;
    }
    // As the pseudonymiser reads it (a UN value's bytes as text), so the pseudonyms agree.
    let uid = super::text_of(&f.obj, dicom_dictionary_std::tags::SOP_INSTANCE_UID)
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| {
            super::trimmed(f.obj.meta().media_storage_sop_instance_uid()).to_string()
        });
    (!uid.is_empty()).then_some(uid)
}

/// Reads, pseudonymises and writes one file.
fn one(p: &Pseudonymiser, path: &Path, out: &Path) -> Outcome {
    let file = match read_file(path) {
        Ok(f) => f,
        Err(Error::NotDicom { reason, .. }) => {
            let (dicom_like, _) = sniff(path);
            return if dicom_like {
                Outcome::Failed(path.to_path_buf(), format!("unreadable DICOM: {reason}"))
            } else {
                Outcome::Skipped(path.to_path_buf(), "not DICOM".to_string())
            };
        }
        Err(e) => return Outcome::Failed(path.to_path_buf(), e.to_string()),
    };
    let class = file
        .obj
        .meta()
        .media_storage_sop_class_uid()
        .trim_end_matches(['\0', ' '])
        .to_string();
    if class == DICOMDIR_SOP_CLASS {
        return Outcome::Skipped(
            path.to_path_buf(),
            "a DICOMDIR (its records repeat identifying data and the original file names)".into(),
        );
    }
    let (obj, report) = match p.pseudonymise_file(file.obj, path) {
        Ok(r) => r,
        Err(Error::Pseudonymise { reason, .. }) => {
            return Outcome::Failed(path.to_path_buf(), format!("cannot pseudonymise: {reason}"));
        }
        Err(e) => return Outcome::Failed(path.to_path_buf(), e.to_string()),
    };
    let dest = output_path(out, &report);
    if let Some(dir) = dest.parent()
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        return Outcome::Failed(path.to_path_buf(), Error::io(dir, e).to_string());
    }
    match write_object(&dest, &obj) {
        Ok(_) => Outcome::Written(Box::new(WrittenFile {
            input: path.to_path_buf(),
            output: dest,
            report,
        })),
        Err(e) => Outcome::Failed(path.to_path_buf(), e.to_string()),
    }
}
