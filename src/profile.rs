//! Site profiles: how a clinic wants a model's structures named, coloured, typed and selected,
//! how its structure sets are labelled, and the audit trail of each case.
//!
//! A profile is a TOML (`.toml`) or JSON file (documented with a commented example in
//! `docs/profiles.md`, `profiles/example-tg263.toml`):
//!
//! ```toml
//! name = "Example clinic, thorax"
//!
//! [[model]]
//! name = "thorax-basic"        # the model's manifest name
//! versions = ">=0.2, <1"       # semver range of the model's version (absent: any)
//! include = ["External", "Lung_L", "Lung_R"]   # model structures to write (absent: all)
//! suffix = "_AI"               # added to every written name (prefix = "…" too)
//! structure_set_label = "AI_THORAX"
//! series_description = "Auto contours (unapproved)"
//! approval_status = "UNAPPROVED"
//!
//! [model.structures.External]
//! name = "BODY"
//! color = [0, 255, 0]
//! type = "EXTERNAL"
//! ```
//!
//! [`SiteProfile::load`] parses the file; [`SiteProfile::resolve`] checks it against a model
//! before any inference and reports every problem at once ([`Error::InvalidProfile`]): no
//! entry for the model, structures the model lacks, two structures given one name, names over
//! 16 characters or with characters outside TG-263's set (letters, digits, `_`, `^`, `~`, `-`)
//! when `tg263` is on (the default), unknown RT ROI Interpreted Types, a bad approval status.
//! [`tg263_name`] gives the TG-263 name of common structure names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::Manifest;

/// A site profile as loaded.
#[derive(Debug, Clone)]
pub struct SiteProfile {
    /// The file it came from.
    pub path: PathBuf,
    /// Hex SHA-256 of the file's bytes (recorded in audit lines).
    pub sha256: String,
    /// The profile's contents.
    pub spec: ProfileSpec,
}

/// The profile file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSpec {
    /// Profile name (recorded in audit lines).
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// One entry per model (matched by name and version range, first match wins).
    #[serde(rename = "model")]
    pub models: Vec<ModelProfile>,
}

/// What the site wants for one model.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelProfile {
    /// The model's manifest name.
    pub name: String,
    /// Semver range of model versions this entry applies to (absent: any version).
    #[serde(default)]
    pub versions: Option<String>,
    /// Model structures to write (absent: all of them).
    #[serde(default)]
    pub include: Option<Vec<String>>,
    /// Per model structure name: the site's name, colour and type.
    #[serde(default)]
    pub structures: BTreeMap<String, StructureProfile>,
    /// Added before every written name.
    #[serde(default)]
    pub prefix: String,
    /// Added after every written name.
    #[serde(default)]
    pub suffix: String,
    /// Structure Set Label (16 characters at most).
    #[serde(default)]
    pub structure_set_label: Option<String>,
    /// Structure Set Name.
    #[serde(default)]
    pub structure_set_name: Option<String>,
    /// Series Description of the RT Structure Set and SEG.
    #[serde(default)]
    pub series_description: Option<String>,
    /// Approval Status: `UNAPPROVED` (default), `APPROVED` or `REJECTED`.
    #[serde(default)]
    pub approval_status: Option<String>,
    /// Check written names against TG-263's rules (≤ 16 characters; letters, digits, `_`, `^`,
    /// `~`, `-`). Default on.
    #[serde(default = "yes")]
    pub tg263: bool,
}

fn yes() -> bool {
    true
}

/// One structure's site settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StructureProfile {
    /// The site's name (before prefix and suffix).
    #[serde(default)]
    pub name: Option<String>,
    /// Display colour.
    #[serde(default)]
    pub color: Option<[u8; 3]>,
    /// RT ROI Interpreted Type.
    #[serde(default, rename = "type")]
    pub rt_roi_type: Option<String>,
}

/// A profile resolved against one model: what to write per label.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedProfile {
    /// Profile name.
    pub name: String,
    /// Hex SHA-256 of the profile file.
    pub sha256: String,
    /// Per manifest label index (0 = background, `None`): the written name, colour and type;
    /// `None` for a structure that is not written.
    pub structures: Vec<Option<ProfiledStructure>>,
    /// Structure Set Label.
    pub structure_set_label: Option<String>,
    /// Structure Set Name.
    pub structure_set_name: Option<String>,
    /// Series Description.
    pub series_description: Option<String>,
    /// Approval Status.
    pub approval_status: String,
}

/// How one structure is written.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfiledStructure {
    /// ROI Name.
    pub name: String,
    /// Display colour (`None`: the model's).
    pub color: Option<[u8; 3]>,
    /// RT ROI Interpreted Type (`None`: the model's).
    pub rt_roi_type: Option<String>,
}

/// RT ROI Interpreted Type's defined terms (PS3.3 C.8.8.8).
pub const RT_ROI_TYPES: &[&str] = &[
    "EXTERNAL",
    "PTV",
    "CTV",
    "GTV",
    "TREATED_VOLUME",
    "IRRAD_VOLUME",
    "BOLUS",
    "AVOIDANCE",
    "ORGAN",
    "MARKER",
    "REGISTRATION",
    "ISOCENTER",
    "CONTRAST_AGENT",
    "CAVITY",
    "BRACHY_CHANNEL",
    "BRACHY_ACCESSORY",
    "BRACHY_SRC_APP",
    "BRACHY_CHNL_SHLD",
    "SUPPORT",
    "FIXATION",
    "DOSE_REGION",
    "CONTROL",
    "DOSE_MEASUREMENT",
];

/// TG-263 names of common structure names (case-insensitive lookup of the model's name); the
/// default model's structures and common organs at risk.
pub const TG263: &[(&str, &str)] = &[
    ("external", "External"),
    ("body", "External"),
    ("skin", "Skin"),
    ("lung_l", "Lung_L"),
    ("left lung", "Lung_L"),
    ("lung_r", "Lung_R"),
    ("right lung", "Lung_R"),
    ("lungs", "Lungs"),
    ("heart", "Heart"),
    ("esophagus", "Esophagus"),
    ("oesophagus", "Esophagus"),
    ("trachea", "Trachea"),
    ("spinal cord", "SpinalCord"),
    ("spinalcord", "SpinalCord"),
    ("spinal_cord", "SpinalCord"),
    ("liver", "Liver"),
    ("kidney_l", "Kidney_L"),
    ("kidney_r", "Kidney_R"),
    ("spleen", "Spleen"),
    ("stomach", "Stomach"),
    ("bladder", "Bladder"),
    ("rectum", "Rectum"),
    ("brain", "Brain"),
    ("brainstem", "Brainstem"),
    ("parotid_l", "Parotid_L"),
    ("parotid_r", "Parotid_R"),
    ("mandible", "Bone_Mandible"),
    ("femur_l", "Femur_Head_L"),
    ("femur_r", "Femur_Head_R"),
    ("breast_l", "Breast_L"),
    ("breast_r", "Breast_R"),
    ("great vessels", "GreatVes"),
    ("aorta", "A_Aorta"),
];

/// The TG-263 name of a common structure name, if the table has it.
pub fn tg263_name(name: &str) -> Option<&'static str> {
    let key = name.trim().to_ascii_lowercase();
    TG263.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// The TG-263 rules a written name breaks (empty when none).
pub fn tg263_problems(name: &str) -> Vec<String> {
    let mut p = Vec::new();
    if name.is_empty() {
        p.push("is empty".into());
    }
    if name.chars().count() > 16 {
        p.push(format!(
            "has {} characters (TG-263: 16 at most)",
            name.chars().count()
        ));
    }
    let bad: String = name
        .chars()
        .filter(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '^' | '~' | '-')))
        .collect();
    if !bad.is_empty() {
        p.push(format!(
            "has characters TG-263 does not allow: {bad:?} (letters, digits, _ ^ ~ - only)"
        ));
    }
    if let Some(side) = name.strip_suffix("_L").or_else(|| name.strip_suffix("_R"))
        && side.is_empty()
    {
        p.push("is only a laterality suffix".into());
    }
    p
}

impl SiteProfile {
    /// Reads a profile (`.toml`, else JSON).
    pub fn load(path: &Path) -> Result<SiteProfile> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let text = std::str::from_utf8(&bytes).map_err(|e| Error::InvalidProfile {
            path: path.to_path_buf(),
            problems: vec![format!("not UTF-8 text: {e}")],
        })?;
        let is_toml = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
        let spec: ProfileSpec = if is_toml {
            toml::from_str(text).map_err(|e| Error::InvalidProfile {
                path: path.to_path_buf(),
                problems: vec![e.to_string().trim().to_string()],
            })?
        } else {
            serde_json::from_str(text).map_err(|e| Error::InvalidProfile {
                path: path.to_path_buf(),
                problems: vec![e.to_string()],
            })?
        };
        use sha2::{Digest, Sha256};
        let sha256 = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(SiteProfile {
            path: path.to_path_buf(),
            sha256,
            spec,
        })
    }

    /// The profile's entry for a model, checked against it; every problem is listed.
    pub fn resolve(&self, m: &Manifest) -> Result<ResolvedProfile> {
        let err = |problems: Vec<String>| Error::InvalidProfile {
            path: self.path.clone(),
            problems,
        };
        let mut problems = Vec::new();
        let mut entry = None;
        for (i, e) in self.spec.models.iter().enumerate() {
            if e.name != m.name {
                continue;
            }
            let matches = match &e.versions {
                None => true,
                Some(r) => match semver::VersionReq::parse(r) {
                    Ok(req) => semver::Version::parse(&m.version)
                        .map(|v| req.matches(&v))
                        .unwrap_or(false),
                    Err(e2) => {
                        problems.push(format!("model entry {i}: versions {r:?}: {e2}"));
                        false
                    }
                },
            };
            if matches {
                entry = Some(e);
                break;
            }
        }
        let Some(e) = entry else {
            problems.push(format!(
                "no [[model]] entry for {} {} (entries: {})",
                m.name,
                m.version,
                self.spec
                    .models
                    .iter()
                    .map(|e| format!("{} {}", e.name, e.versions.as_deref().unwrap_or("*")))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            return Err(err(problems));
        };
        let model_names: Vec<&str> = m.labels.iter().skip(1).map(|l| l.name.as_str()).collect();
        let lacks = |what: &str, n: &str| {
            format!(
                "{what} {n:?}: the model {} has no such structure (it has {})",
                m.name,
                model_names.join(", ")
            )
        };
        if let Some(inc) = &e.include {
            for n in inc {
                if !model_names.contains(&n.as_str()) {
                    problems.push(lacks("include", n));
                }
            }
        }
        for n in e.structures.keys() {
            if !model_names.contains(&n.as_str()) {
                problems.push(lacks("structures", n));
            }
        }
        let mut structures = vec![None];
        let mut written: BTreeMap<String, String> = BTreeMap::new();
        for l in m.labels.iter().skip(1) {
            let included = e
                .include
                .as_ref()
                .is_none_or(|inc| inc.iter().any(|n| n == &l.name));
            if !included {
                structures.push(None);
                continue;
            }
            let s = e.structures.get(&l.name);
            let base = s
                .and_then(|s| s.name.clone())
                .unwrap_or_else(|| l.name.clone());
            let name = format!("{}{}{}", e.prefix, base, e.suffix);
            if let Some(prev) = written.insert(name.to_ascii_uppercase(), l.name.clone()) {
                problems.push(format!(
                    "{} and {} would both be written as {name:?}",
                    prev, l.name
                ));
            }
            if name.contains('\\') || name.chars().any(|c| c.is_control()) {
                problems.push(format!(
                    "{name:?} (for {}): backslashes and control characters cannot be written",
                    l.name
                ));
            } else if name.chars().count() > 64 {
                problems.push(format!("{name:?} (for {}): over 64 characters", l.name));
            }
            if e.tg263 {
                for p in tg263_problems(&name) {
                    problems.push(format!("{name:?} (for {}) {p}", l.name));
                }
            }
            let rt_roi_type = s.and_then(|s| s.rt_roi_type.clone());
            if let Some(t) = &rt_roi_type
                && !RT_ROI_TYPES.contains(&t.as_str())
            {
                problems.push(format!(
                    "type {t:?} (for {}) is not an RT ROI Interpreted Type ({})",
                    l.name,
                    RT_ROI_TYPES.join(", ")
                ));
            }
            structures.push(Some(ProfiledStructure {
                name,
                color: s.and_then(|s| s.color),
                rt_roi_type,
            }));
        }
        if structures.iter().all(Option::is_none) {
            problems.push("no structure is written (include is empty)".into());
        }
        let approval = e
            .approval_status
            .clone()
            .unwrap_or_else(|| "UNAPPROVED".into());
        if !matches!(approval.as_str(), "UNAPPROVED" | "APPROVED" | "REJECTED") {
            problems.push(format!(
                "approval_status {approval:?}: UNAPPROVED, APPROVED or REJECTED"
            ));
        }
        if let Some(l) = &e.structure_set_label
            && (l.chars().count() > 16 || l.contains('\\') || l.trim().is_empty())
        {
            problems.push(format!(
                "structure_set_label {l:?}: 1 to 16 characters, no backslash"
            ));
        }
        for (what, v) in [
            ("structure_set_name", &e.structure_set_name),
            ("series_description", &e.series_description),
        ] {
            if let Some(v) = v
                && (v.chars().count() > 64 || v.contains('\\'))
            {
                problems.push(format!("{what} {v:?}: 64 characters at most, no backslash"));
            }
        }
        if !problems.is_empty() {
            return Err(err(problems));
        }
        Ok(ResolvedProfile {
            name: self.spec.name.clone(),
            sha256: self.sha256.clone(),
            structures,
            structure_set_label: e.structure_set_label.clone(),
            structure_set_name: e.structure_set_name.clone(),
            series_description: e.series_description.clone(),
            approval_status: approval,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tg263_rules() {
        assert!(tg263_problems("Lung_L").is_empty());
        assert!(tg263_problems("SpinalCord_PRV05").is_empty());
        assert_eq!(tg263_problems("Left Lung").len(), 1);
        assert_eq!(tg263_problems("A_Very_Long_Structure_Name").len(), 1);
        assert_eq!(tg263_problems("_L").len(), 1);
        assert_eq!(tg263_name("LUNG_L"), Some("Lung_L"));
        assert_eq!(tg263_name("spinal cord"), Some("SpinalCord"));
        assert_eq!(tg263_name("unknown"), None);
    }
}
