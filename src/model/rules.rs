//! The manifest's plausibility and applicability rules (`"plausibility"` block and the per-label
//! `side`, `inside` and `solid` fields): what the engine checks after inference, and before it,
//! for any model. Nothing here names a structure: every rule comes from the model package.
//!
//! ```json
//! "plausibility": {
//!   "external": "builtin",
//!   "organs_inside_external": true,
//!   "max_removed_fraction": 0.05,
//!   "laterality_from_names": true,
//!   "applicability": {
//!     "body_parts": ["CHEST", "THORAX", "LUNG"],
//!     "min_scan_length_mm": 120,
//!     "lung_fraction": [0.03, 0.7],
//!     "expected_structures": ["Lung_L", "Lung_R"]
//!   },
//!   "max_mean_entropy": 0.35
//! }
//! ```
//!
//! See `models/MANIFEST.md` for every field and its default.

use serde::{Deserialize, Serialize};

use super::manifest::{LabelSpec, Manifest};

/// Where the External (body outline) comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExternalSource {
    /// The model's own `EXTERNAL` label, as predicted (the region it encloses is the body).
    #[default]
    Model,
    /// The library's body outline from the CT ([`crate::body::body_mask`]); the model's
    /// `EXTERNAL` label, if any, is replaced by it.
    Builtin,
}

/// Patient side of a lateral structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The patient's left (+x in DICOM LPS).
    Left,
    /// The patient's right (−x in LPS).
    Right,
}

/// The manifest's `"plausibility"` block. Every field is optional; an absent block still runs the
/// checks that need no rule (empty structures, expected volume, structures cut by the scan's
/// ends).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// Source of the External. Default `model`.
    #[serde(default)]
    pub external: ExternalSource,
    /// Body outline threshold, HU (builtin External and the applicability checks). Default −400.
    #[serde(default = "default_body_threshold")]
    pub body_threshold_hu: f32,
    /// Body outline opening half-width, mm. Default 5.
    #[serde(default = "default_opening")]
    pub body_opening_mm: f64,
    /// Every structure that is not `EXTERNAL` lies inside the External (as if each had
    /// `"inside": "<the EXTERNAL label>"`). Default false.
    #[serde(default)]
    pub organs_inside_external: bool,
    /// A structure clipped to its container loses at most this fraction of its voxels without a
    /// flag. Default 0.05.
    #[serde(default = "default_removed")]
    pub max_removed_fraction: f64,
    /// Voxels below this HU are air for `solid` structures. Default −500.
    #[serde(default = "default_air_hu")]
    pub air_hu: f32,
    /// A `solid` structure may hold at most this fraction of air voxels without a flag.
    /// Default 0.02.
    #[serde(default = "default_air_fraction")]
    pub max_air_fraction: f64,
    /// Structures named `*_L` / `*_R` (also `*_Left` / `*_Right`, any case) are left / right
    /// structures unless their label sets `side`. Default false.
    #[serde(default)]
    pub laterality_from_names: bool,
    /// A lateral structure may have at most this fraction of its voxels across the body's
    /// mid-sagittal plane without a flag. Default 0.1.
    #[serde(default = "default_wrong_side")]
    pub max_wrong_side_fraction: f64,
    /// What the model needs of a CT.
    #[serde(default)]
    pub applicability: Option<Applicability>,
    /// Flag a structure whose mean normalised softmax entropy (0–1) inside it is above this.
    #[serde(default)]
    pub max_mean_entropy: Option<f64>,
    /// Flag a structure whose mean normalised entropy along its boundary is above this.
    #[serde(default)]
    pub max_boundary_entropy: Option<f64>,
}

fn default_body_threshold() -> f32 {
    -400.0
}
fn default_opening() -> f64 {
    5.0
}
fn default_removed() -> f64 {
    0.05
}
fn default_air_hu() -> f32 {
    -500.0
}
fn default_air_fraction() -> f64 {
    0.02
}
fn default_wrong_side() -> f64 {
    0.1
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            external: ExternalSource::Model,
            body_threshold_hu: default_body_threshold(),
            body_opening_mm: default_opening(),
            organs_inside_external: false,
            max_removed_fraction: default_removed(),
            air_hu: default_air_hu(),
            max_air_fraction: default_air_fraction(),
            laterality_from_names: false,
            max_wrong_side_fraction: default_wrong_side(),
            applicability: None,
            max_mean_entropy: None,
            max_boundary_entropy: None,
        }
    }
}

/// What the model needs of a CT, checked before inference (body part, scan length, image
/// content) and after it (expected structures).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Applicability {
    /// Accepted values of Body Part Examined (0018,0015), compared case-insensitively; empty or
    /// absent: any. A CT without the attribute is not refused for it.
    #[serde(default)]
    pub body_parts: Vec<String>,
    /// Minimum extent of the body along the patient's head–feet axis, mm.
    #[serde(default)]
    pub min_scan_length_mm: Option<f64>,
    /// Accepted range of the fraction of body voxels at lung density (−950…−600 HU).
    #[serde(default)]
    pub lung_fraction: Option<[f64; 2]>,
    /// Structures that must not come out empty.
    #[serde(default)]
    pub expected_structures: Vec<String>,
}

impl LabelSpec {
    /// The structure's side: its `side` field, else (with `laterality_from_names`) its name's
    /// `_L` / `_R` / `_Left` / `_Right` suffix.
    pub fn lateral_side(&self, rules: &Rules) -> Option<Side> {
        if self.side.is_some() || !rules.laterality_from_names {
            return self.side;
        }
        let lower = self.name.to_ascii_lowercase();
        if lower.ends_with("_l") || lower.ends_with("_left") {
            Some(Side::Left)
        } else if lower.ends_with("_r") || lower.ends_with("_right") {
            Some(Side::Right)
        } else {
            None
        }
    }

    /// Whether this structure is the External.
    pub fn is_external(&self) -> bool {
        self.rt_roi_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("EXTERNAL"))
    }
}

/// Finds a label by name (exact, then case-insensitive).
fn label_by_name<'a>(m: &'a Manifest, name: &str) -> Option<&'a LabelSpec> {
    m.labels
        .iter()
        .skip(1)
        .find(|l| l.name == name)
        .or_else(|| {
            m.labels
                .iter()
                .skip(1)
                .find(|l| l.name.eq_ignore_ascii_case(name))
        })
}

impl Manifest {
    /// The rules in force: the manifest's block, or the defaults.
    pub fn rules(&self) -> Rules {
        self.plausibility.clone().unwrap_or_default()
    }

    /// The label of the `EXTERNAL` structure, if the model has one.
    pub fn external_label(&self) -> Option<usize> {
        self.labels
            .iter()
            .skip(1)
            .find(|l| l.is_external())
            .map(|l| l.index)
    }

    /// For each label, the label it must lie inside (its `inside`, or the External under
    /// `organs_inside_external`); `None` for background, the External itself and free labels.
    /// Checked when the manifest is parsed.
    pub fn containers(&self) -> Vec<Option<usize>> {
        let rules = self.rules();
        let ext = self.external_label();
        self.labels
            .iter()
            .map(|l| {
                if l.index == 0 || l.is_external() {
                    return None;
                }
                if let Some(outer) = &l.inside {
                    return label_by_name(self, outer).map(|o| o.index);
                }
                if rules.organs_inside_external {
                    ext
                } else {
                    None
                }
            })
            .collect()
    }

    /// Checks the rules against the labels: named structures exist, thresholds are in range,
    /// containment has no cycle. Returns the reason of the first problem.
    pub(crate) fn check_rules(&self) -> std::result::Result<(), String> {
        let rules = self.rules();
        let fraction = |name: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("plausibility.{name} = {v} must be within 0–1"))
            }
        };
        fraction("max_removed_fraction", rules.max_removed_fraction)?;
        fraction("max_air_fraction", rules.max_air_fraction)?;
        fraction("max_wrong_side_fraction", rules.max_wrong_side_fraction)?;
        if let Some(v) = rules.max_mean_entropy {
            fraction("max_mean_entropy", v)?;
        }
        if let Some(v) = rules.max_boundary_entropy {
            fraction("max_boundary_entropy", v)?;
        }
        let finite = rules.body_threshold_hu.is_finite()
            && rules.body_opening_mm.is_finite()
            && rules.body_opening_mm >= 0.0
            && rules.air_hu.is_finite();
        if !finite {
            return Err("plausibility: body_threshold_hu, body_opening_mm (≥ 0) and air_hu must be finite numbers".into());
        }
        if rules.organs_inside_external
            && self.external_label().is_none()
            && rules.external == ExternalSource::Model
        {
            return Err(
                "plausibility.organs_inside_external needs an EXTERNAL label or \"external\": \"builtin\""
                    .into(),
            );
        }
        for l in self.labels.iter().skip(1) {
            if let Some(outer) = &l.inside {
                let Some(o) = label_by_name(self, outer) else {
                    return Err(format!(
                        "label {} ({}) is \"inside\": \"{outer}\", which the model does not have",
                        l.index, l.name
                    ));
                };
                if o.index == l.index {
                    return Err(format!(
                        "label {} ({}) cannot be inside itself",
                        l.index, l.name
                    ));
                }
            }
        }
        // Containment must be a forest: following `inside` from any label ends.
        let containers = self.containers();
        for start in 1..self.labels.len() {
            let mut at = start;
            for _ in 0..self.labels.len() {
                match containers.get(at).copied().flatten() {
                    Some(next) if next == start => {
                        return Err(format!(
                            "contradictory containment: label {start} ({}) ends up inside itself",
                            self.labels
                                .get(start)
                                .map(|l| l.name.as_str())
                                .unwrap_or("?")
                        ));
                    }
                    Some(next) => at = next,
                    None => break,
                }
            }
        }
        if let Some(a) = &rules.applicability {
            for name in &a.expected_structures {
                if label_by_name(self, name).is_none() {
                    return Err(format!(
                        "plausibility.applicability.expected_structures names \"{name}\", which the model does not have"
                    ));
                }
            }
            if let Some([lo, hi]) = a.lung_fraction
                && !(0.0 <= lo && lo <= hi && hi <= 1.0)
            {
                return Err(format!(
                    "plausibility.applicability.lung_fraction [{lo}, {hi}] must satisfy 0 ≤ lo ≤ hi ≤ 1"
                ));
            }
            if let Some(v) = a.min_scan_length_mm
                && !(v.is_finite() && v >= 0.0)
            {
                return Err(format!(
                    "plausibility.applicability.min_scan_length_mm = {v} must be ≥ 0"
                ));
            }
        }
        Ok(())
    }
}
