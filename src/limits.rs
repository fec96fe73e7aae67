//! Resource limits: how much any one input may make the library read, allocate or walk.
//!
//! Everything the library reads comes from outside (scanners, PACS, other vendors' structure
//! sets, NIfTI files, model packages). Each reader checks what a file *claims* against these
//! limits before it allocates or recurses, and refuses the input with
//! [`Error::LimitExceeded`], which names the limit, the value the
//! input asked for and the file or place.
//!
//! The limits are process-wide: a host sets them once at start-up ([`set_limits`]; from C
//! `ac_limits_set`, from the CLI `--limit NAME=VALUE`), and every call that starts afterwards uses
//! them. They bound what one input may cost, which is a property of the host process (its memory
//! and time budget), not of one call. [`LoadOptions::default`](crate::dicom::LoadOptions) takes
//! its voxel limit from [`Limits::max_voxels`]; a caller may still pass a smaller or larger one
//! per call.
//!
//! | limit | default | checked |
//! |---|---|---|
//! | `max_voxels` | 1024 × 1024 × 2048 | rows × columns × slices of a CT series, before any pixel is decoded |
//! | `max_file_bytes` | 4 GiB | size of one DICOM file or buffer, before it is parsed |
//! | `max_files_scanned` | 1,000,000 | files listed under one folder scan (series discovery, `anonymise`) |
//! | `max_sequence_depth` | 64 (at most 256) | nesting of DICOM sequences, before the recursive parser sees the file |
//! | `max_inflated_bytes` | 1 GiB | what a Deflated Explicit VR Little Endian data set may inflate to |
//! | `max_contour_points_per_roi` | 20,000,000 | points of one ROI read from or written to an RT Structure Set |
//! | `max_contour_points_total` | 100,000,000 | points of all ROIs of one RT Structure Set |
//! | `max_nifti_bytes` | 8 GiB | image bytes a NIfTI header declares, before reading (and inflating) it |
//!
//! ```
//! use autocontour::limits::{Limits, limits, set_limits};
//!
//! let mut l = limits();
//! l.max_files_scanned = 50_000;
//! set_limits(&l)?;
//! assert_eq!(limits().max_files_scanned, 50_000);
//! # set_limits(&Limits::default())?;
//! # Ok::<(), autocontour::Error>(())
//! ```

use std::sync::RwLock;

use crate::{Error, Result};

/// Deepest sequence nesting [`Limits::max_sequence_depth`] may be raised to: dicom-object parses
/// sequences recursively, and a thread's default stack holds a few hundred levels, not thousands.
pub const SEQUENCE_DEPTH_CEILING: u64 = 256;

/// The limits in force for the process. See the [module](self) for what each bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest number of voxels (rows × columns × slices) a CT series may have; the default of
    /// [`LoadOptions::max_voxels`](crate::dicom::LoadOptions::max_voxels).
    pub max_voxels: u64,
    /// Largest DICOM file (or in-memory buffer) read, bytes.
    pub max_file_bytes: u64,
    /// Most files one folder scan lists before it is refused.
    pub max_files_scanned: u64,
    /// Deepest nesting of DICOM sequences (each sequence inside an item of another counts one
    /// level); at most [`SEQUENCE_DEPTH_CEILING`].
    pub max_sequence_depth: u64,
    /// Largest data set a deflated DICOM file may inflate to, bytes.
    pub max_inflated_bytes: u64,
    /// Most contour points one ROI of an RT Structure Set may have (read or written).
    pub max_contour_points_per_roi: u64,
    /// Most contour points of all ROIs of one RT Structure Set (read or written).
    pub max_contour_points_total: u64,
    /// Largest image a NIfTI header may declare, bytes (voxels × bytes per voxel).
    pub max_nifti_bytes: u64,
}

/// The defaults (the table in the [module](self) docs).
const DEFAULT: Limits = Limits {
    max_voxels: 1024 * 1024 * 2048,
    max_file_bytes: 4 << 30,
    max_files_scanned: 1_000_000,
    max_sequence_depth: 64,
    max_inflated_bytes: 1 << 30,
    max_contour_points_per_roi: 20_000_000,
    max_contour_points_total: 100_000_000,
    max_nifti_bytes: 8 << 30,
};

impl Default for Limits {
    fn default() -> Self {
        DEFAULT
    }
}

/// The limits' names as the CLI's `--limit NAME=VALUE` and the docs spell them, with a getter
/// and a setter for each.
type Field = (&'static str, fn(&Limits) -> u64, fn(&mut Limits, u64));

const FIELDS: [Field; 8] = [
    ("max_voxels", |l| l.max_voxels, |l, v| l.max_voxels = v),
    (
        "max_file_bytes",
        |l| l.max_file_bytes,
        |l, v| l.max_file_bytes = v,
    ),
    (
        "max_files_scanned",
        |l| l.max_files_scanned,
        |l, v| l.max_files_scanned = v,
    ),
    (
        "max_sequence_depth",
        |l| l.max_sequence_depth,
        |l, v| l.max_sequence_depth = v,
    ),
    (
        "max_inflated_bytes",
        |l| l.max_inflated_bytes,
        |l, v| l.max_inflated_bytes = v,
    ),
    (
        "max_contour_points_per_roi",
        |l| l.max_contour_points_per_roi,
        |l, v| l.max_contour_points_per_roi = v,
    ),
    (
        "max_contour_points_total",
        |l| l.max_contour_points_total,
        |l, v| l.max_contour_points_total = v,
    ),
    (
        "max_nifti_bytes",
        |l| l.max_nifti_bytes,
        |l, v| l.max_nifti_bytes = v,
    ),
];

impl Limits {
    /// Every limit as `(name, value)`, in the order of the table in the [module](self) docs.
    pub fn entries(&self) -> Vec<(&'static str, u64)> {
        FIELDS.iter().map(|(n, get, _)| (*n, get(self))).collect()
    }

    /// Sets the limit called `name` (as in [`Limits::entries`]) to `value`, unchecked until
    /// [`Limits::check`] / [`set_limits`].
    pub fn set(&mut self, name: &str, value: u64) -> Result<()> {
        let (_, _, put) = FIELDS.iter().find(|(n, _, _)| *n == name).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "unknown limit '{name}'; the limits are {}",
                FIELDS.map(|f| f.0).join(", ")
            ))
        })?;
        put(self, value);
        Ok(())
    }

    /// Parses `NAME=VALUE` (the CLI's `--limit`): the value is an integer, optionally with a
    /// `k`, `M`, `G` (powers of 1000) or `KiB`, `MiB`, `GiB` (powers of 1024) suffix.
    pub fn set_from_str(&mut self, spec: &str) -> Result<()> {
        let (name, value) = spec.split_once('=').ok_or_else(|| {
            Error::InvalidArgument(format!("limit '{spec}': expected NAME=VALUE"))
        })?;
        let v = parse_amount(value.trim()).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "limit '{spec}': '{value}' is not a whole number (suffixes k, M, G, KiB, MiB, GiB)"
            ))
        })?;
        self.set(name.trim(), v)
    }

    /// Refuses a zero limit (it would refuse every input) and a sequence depth above
    /// [`SEQUENCE_DEPTH_CEILING`].
    pub fn check(&self) -> Result<()> {
        for (name, v) in self.entries() {
            if v == 0 {
                return Err(Error::InvalidArgument(format!(
                    "limit {name} is 0: every input would be refused"
                )));
            }
        }
        if self.max_sequence_depth > SEQUENCE_DEPTH_CEILING {
            return Err(Error::InvalidArgument(format!(
                "limit max_sequence_depth is {}: at most {SEQUENCE_DEPTH_CEILING} (the DICOM \
                 parser recurses once per level)",
                self.max_sequence_depth
            )));
        }
        Ok(())
    }
}

fn parse_amount(s: &str) -> Option<u64> {
    let units: [(&str, u64); 6] = [
        ("KiB", 1 << 10),
        ("MiB", 1 << 20),
        ("GiB", 1 << 30),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
    ];
    let (digits, scale) = units
        .iter()
        .find_map(|(u, m)| s.strip_suffix(u).map(|d| (d, *m)))
        .unwrap_or((s, 1));
    let digits: String = digits.trim().chars().filter(|c| *c != '_').collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(scale)
}

static LIMITS: RwLock<Limits> = RwLock::new(DEFAULT);

/// The limits in force now.
pub fn limits() -> Limits {
    // A writer cannot panic while holding the lock (it only copies a value), so a poisoned lock
    // still holds a whole `Limits`.
    *LIMITS.read().unwrap_or_else(|e| e.into_inner())
}

/// Replaces the process's limits after checking them ([`Limits::check`]); calls that start
/// afterwards use them. Any thread.
pub fn set_limits(l: &Limits) -> Result<()> {
    l.check()?;
    *LIMITS.write().unwrap_or_else(|e| e.into_inner()) = *l;
    log::info!("resource limits: {:?}", l);
    Ok(())
}

/// Refuses `value` above the limit `name` (whose current value is `max`): the error names the
/// limit, both numbers and `place` (a file, a ROI).
pub(crate) fn check(
    name: &'static str,
    value: u64,
    max: u64,
    place: impl FnOnce() -> String,
) -> Result<()> {
    if value > max {
        return Err(Error::LimitExceeded {
            limit: name,
            value,
            max,
            place: place(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_values_and_suffixes_parse() {
        let mut l = Limits::default();
        l.set_from_str("max_files_scanned=50_000").unwrap();
        l.set_from_str("max_file_bytes=512MiB").unwrap();
        l.set_from_str("max_voxels = 2G").unwrap();
        assert_eq!(l.max_files_scanned, 50_000);
        assert_eq!(l.max_file_bytes, 512 << 20);
        assert_eq!(l.max_voxels, 2_000_000_000);
        for bad in [
            "max_files_scanned",
            "max_files=3",
            "max_voxels=-1",
            "max_voxels=1.5G",
            "max_voxels=99999999999999999999",
            "max_voxels=20000000000000GiB",
            "max_voxels=",
        ] {
            let e = l.clone().set_from_str(bad).unwrap_err();
            assert!(matches!(e, Error::InvalidArgument(_)), "{bad}: {e}");
        }
        assert_eq!(l.entries().len(), 8);
    }

    #[test]
    fn zero_and_too_deep_are_refused() {
        let l = Limits {
            max_nifti_bytes: 0,
            ..Limits::default()
        };
        assert!(
            l.check()
                .unwrap_err()
                .to_string()
                .contains("max_nifti_bytes")
        );
        let mut l = Limits {
            max_sequence_depth: SEQUENCE_DEPTH_CEILING + 1,
            ..Limits::default()
        };
        assert!(l.check().is_err());
        l.max_sequence_depth = SEQUENCE_DEPTH_CEILING;
        assert!(l.check().is_ok());
    }

    #[test]
    fn check_names_the_limit_and_the_place() {
        let e = check("max_file_bytes", 11, 10, || "a.dcm".into()).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("max_file_bytes") && text.contains("a.dcm"),
            "{text}"
        );
        assert!(check("max_file_bytes", 10, 10, || unreachable!()).is_ok());
    }
}
