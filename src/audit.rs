//! The audit trail: one JSON line per case (which model made which contours, when, from which
//! series, with which profile, and what came out or what failed), appended to a file the host
//! chooses.
//!
//! Each line is written with a single `write` on a file opened for appending, under an
//! exclusive lock, then synced: concurrent writers (threads or processes on a local file system)
//! never interleave inside a line. A process killed during its write, or a power loss, can leave
//! the last line cut (the kernel may stop a write between pages); the next append removes it
//! first. A reader should skip a last line without its newline.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::Model;
use crate::pipeline::Segmentation;

/// One output file of a case.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AuditOutput {
    /// `rtstruct`, `seg`, `nifti`, …
    pub kind: String,
    /// Where it was written.
    pub path: PathBuf,
    /// Its SOP Instance UID (DICOM outputs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sop_instance_uid: Option<String>,
}

/// The model of a case.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AuditModel {
    /// Manifest name.
    pub name: String,
    /// Manifest version.
    pub version: String,
    /// SHA-256 of the ONNX file (of `bundle.json` for a bundle).
    pub sha256: String,
}

/// The profile of a case.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AuditProfile {
    /// Profile name.
    pub name: String,
    /// SHA-256 of the profile file.
    pub sha256: String,
}

/// One audit line.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AuditRecord {
    /// UTC, RFC 3339 with seconds.
    pub time_utc: String,
    /// SDK version.
    pub sdk_version: String,
    /// `ok` or `failed`.
    pub status: String,
    /// For a failure: the error's name (`NotApplicable`, `InvalidProfile`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// For a failure: the error's message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The input (a CT folder, a file), when the host gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<PathBuf>,
    /// Series Instance UID of the CT (once loaded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series_uid: Option<String>,
    /// The model.
    pub model: AuditModel,
    /// The site profile, if one was used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<AuditProfile>,
    /// Execution provider that ran (`CPU`, `CUDA:0`…).
    pub execution_provider: String,
    /// Review flags: case flags and per-structure flags, as `code` or `structure: code`.
    pub flags: Vec<String>,
    /// Files written.
    pub outputs: Vec<AuditOutput>,
    /// Seconds from the start of the case to the record.
    pub duration_s: f64,
}

/// The name of an error's variant (`Error::NotApplicable { .. }` → `NotApplicable`).
pub fn error_code(e: &Error) -> String {
    let d = format!("{e:?}");
    d.split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or("Error")
        .to_string()
}

fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = crate::dicom::write::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

impl AuditRecord {
    fn base(model: &Model, duration_s: f64) -> AuditRecord {
        AuditRecord {
            time_utc: now_utc(),
            sdk_version: crate::VERSION.to_string(),
            status: "ok".into(),
            error_code: None,
            error: None,
            input: None,
            series_uid: None,
            model: AuditModel {
                name: model.manifest.name.clone(),
                version: model.manifest.version.clone(),
                sha256: model.manifest.onnx.sha256.clone(),
            },
            profile: None,
            execution_provider: model.execution.provider.clone(),
            flags: Vec::new(),
            outputs: Vec::new(),
            duration_s,
        }
    }

    /// The record of a case that succeeded.
    pub fn success(
        model: &Model,
        seg: &Segmentation,
        series_uid: &str,
        outputs: Vec<AuditOutput>,
        duration_s: f64,
    ) -> AuditRecord {
        let mut r = Self::base(model, duration_s);
        r.series_uid = Some(series_uid.to_string());
        r.execution_provider = seg.execution.provider.clone();
        r.profile = seg.profile.as_ref().map(|p| AuditProfile {
            name: p.name.clone(),
            sha256: p.sha256.clone(),
        });
        r.flags = seg
            .case_flags
            .iter()
            .map(|f| f.code.as_str().to_string())
            .chain(seg.written_structures().flat_map(|s| {
                s.flags
                    .iter()
                    .map(move |f| format!("{}: {}", s.name, f.code.as_str()))
            }))
            .collect();
        r.outputs = outputs;
        r
    }

    /// The record of a case that failed.
    pub fn failure(
        model: &Model,
        error: &Error,
        series_uid: Option<&str>,
        duration_s: f64,
    ) -> AuditRecord {
        let mut r = Self::base(model, duration_s);
        r.status = "failed".into();
        r.error_code = Some(error_code(error));
        r.error = Some(error.to_string());
        r.series_uid = series_uid.map(str::to_string);
        r
    }

    /// With the input the host gave.
    pub fn with_input(mut self, input: &Path) -> AuditRecord {
        self.input = Some(input.to_path_buf());
        self
    }

    /// With the profile (for a failure after the profile was resolved).
    pub fn with_profile(mut self, name: &str, sha256: &str) -> AuditRecord {
        self.profile = Some(AuditProfile {
            name: name.into(),
            sha256: sha256.into(),
        });
        self
    }

    /// The record as one line of JSON (no newline).
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self)
            .map_err(|e| Error::InvalidArgument(format!("audit record: {e}")))
    }

    /// Appends the record to `path` as one line (created if missing), with one `write` and a
    /// sync, holding an exclusive lock on the file. A line cut by a writer killed during its
    /// `write` (the kernel may stop a write between pages) is removed first, so the file holds
    /// whole lines and at most one cut last line.
    pub fn append_to(&self, path: &Path) -> Result<()> {
        let mut line = self.to_json()?;
        line.push('\n');
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        f.lock().map_err(|e| Error::io(path, e))?;
        drop_cut_line(&mut f).map_err(|e| Error::io(path, e))?;
        let n = f.write(line.as_bytes()).map_err(|e| Error::io(path, e))?;
        if n != line.len() {
            return Err(Error::io(
                path,
                std::io::Error::new(
                    std::io::ErrorKind::WriteZero,
                    format!("audit line: {n} of {} bytes written", line.len()),
                ),
            ));
        }
        f.sync_data().map_err(|e| Error::io(path, e))
    }
}

/// Truncates a file after its last newline when it does not end with one (a line cut by a
/// killed writer).
fn drop_cut_line(f: &mut std::fs::File) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut last = [0u8; 1];
    f.seek(SeekFrom::Start(len - 1))?;
    f.read_exact(&mut last)?;
    if last[0] == b'\n' {
        return Ok(());
    }
    // Scan back for the last newline.
    let mut buf = [0u8; 4096];
    let mut end = len;
    let keep = loop {
        if end == 0 {
            break 0;
        }
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            break start + i as u64 + 1;
        }
        end = start;
    };
    log::warn!(
        "audit log: removing a line cut by a killed writer ({} bytes)",
        len - keep
    );
    f.set_len(keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_variant_names() {
        assert_eq!(error_code(&Error::Cancelled), "Cancelled");
        assert_eq!(
            error_code(&Error::InvalidArgument("x".into())),
            "InvalidArgument"
        );
        assert_eq!(
            error_code(&Error::InvalidProfile {
                path: "p".into(),
                problems: vec![]
            }),
            "InvalidProfile"
        );
    }

    #[test]
    fn utc_time_is_rfc3339() {
        let t = now_utc();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T');
    }
}
