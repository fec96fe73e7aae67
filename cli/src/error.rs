//! The CLI's own error type: mistakes in the command line apart from what the SDK reports.
//!
//! Exit status (also in `autocontour --help` and docs/cli.md): 0 success; 1 the run failed (an
//! SDK error, an unusable CLI input file, a failed case of a batch); 2 a usage mistake (a bad
//! option value or combination; clap's own parse errors exit with 2 as well).

use std::path::PathBuf;
use std::process::ExitCode;

/// Result alias of the CLI.
pub type CliResult<T> = std::result::Result<T, CliError>;

/// Everything the CLI reports.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A mistake in the command line: a bad option value or combination (exit status 2).
    #[error("{0}")]
    Usage(String),
    /// A file only the CLI reads (the phantom's `labels.json` / `labels.raw`, a label map with
    /// nothing to contour) is unusable.
    #[error("{}: {reason}", path.display())]
    Input {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
        /// The JSON parser's error, when the file does not parse.
        #[source]
        source: Option<serde_json::Error>,
    },
    /// Some cases of a batch failed (each was reported as it failed, and in summary.csv).
    #[error("{failed} case(s) failed")]
    CasesFailed {
        /// How many.
        failed: usize,
    },
    /// Some files of `anonymise` failed (each was listed as it failed).
    #[error("{failed} DICOM file(s) could not be anonymised")]
    FilesFailed {
        /// How many.
        failed: usize,
    },
    /// Writing a JSON output failed.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A failure reported by the SDK.
    #[error(transparent)]
    Sdk(#[from] autocontour::Error),
    /// The nnU-Net importer failed (it printed `error[NAME]: …`); its exit status is kept.
    #[error("the nnU-Net importer failed (exit status {code}; see its error above)")]
    Importer {
        /// The importer's exit status.
        code: i32,
    },
    /// The message broker (RabbitMQ) refused or lost an operation.
    #[error("broker: cannot {what}: {reason}")]
    Broker {
        /// What was attempted, and on what.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// A queued batch ended with failed jobs, or did not end in time.
    #[error("{0}")]
    Batch(String),
}

impl CliError {
    /// A short name of the error for events and logs: the SDK's error variant, or the CLI's.
    pub fn code(&self) -> String {
        match self {
            CliError::Sdk(e) => autocontour::audit::error_code(e),
            CliError::Usage(_) => "Usage".into(),
            CliError::Input { .. } => "CliInput".into(),
            CliError::CasesFailed { .. } => "CasesFailed".into(),
            CliError::FilesFailed { .. } => "FilesFailed".into(),
            CliError::Json(_) => "Json".into(),
            CliError::Importer { .. } => "Importer".into(),
            CliError::Broker { .. } => "Broker".into(),
            CliError::Batch(_) => "Batch".into(),
        }
    }
}

impl CliError {
    /// Exit status for a usage mistake.
    pub const USAGE_EXIT: u8 = 2;
    /// Exit status for a failed run.
    pub const FAILURE_EXIT: u8 = 1;

    /// The process exit status for this error.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            CliError::Usage(_) => Self::USAGE_EXIT,
            CliError::Importer { code } => u8::try_from(*code)
                .ok()
                .filter(|&c| c != 0)
                .unwrap_or(Self::FAILURE_EXIT),
            _ => Self::FAILURE_EXIT,
        })
    }
}
