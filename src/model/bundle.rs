//! Bundles: several model packages run one after another on the same CT and merged into one
//! label map and one structure set (for example the part models of a TotalSegmentator-style
//! model, or an organ model plus a body-outline model).
//!
//! A bundle is a folder with `bundle.json` (schema in `models/MANIFEST.md`, "Bundles"):
//!
//! ```json
//! {
//!   "schema_version": 1,
//!   "name": "thorax-two-part", "version": "1.0.0",
//!   "parts": [
//!     {"package": "parts/body", "structures": {"External": "BODY"}, "folds": [0]},
//!     {"package": "parts/lungs", "structures": {"Lung_L": "Lung_L", "Lung_R": "Lung_R"}}
//!   ]
//! }
//! ```
//!
//! - `package`: the part's package folder, relative to the bundle folder (or absolute); a part
//!   is a model package (`model.json`, an nnU-Net import included), not another bundle.
//! - `structures`: which of the part's structures to keep and their names in the bundle (part
//!   name → bundle name); absent: all of them under their own names.
//! - `folds`: for nnU-Net parts, the folds to ensemble (absent: all).
//! - an optional `plausibility` block (as in a manifest) whose rules name bundle structures.
//!
//! The bundle's labels are the parts' kept structures in part order, then in each part's label
//! order. Where parts overlap, the later part's structure takes the voxel (parts are painted in
//! order): list containers (External) before the organs they contain, as a single model's
//! label map has External first and the organs inside it. Postprocessing follows label order
//! too, as for a single model. The CT is loaded once; each part
//! runs its own preprocessing and network; the plausibility checks, postprocessing, contours and
//! the RT Structure Set are done once on the merged label map.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::device::ModelOptions;
use super::manifest::{LabelSpec, Manifest, OnnxSpec};
use super::session::{Model, sha256_file};
use crate::error::{Error, Result, cause};

/// The bundle manifest's file name.
pub const BUNDLE_FILE: &str = "bundle.json";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleSpec {
    schema_version: u32,
    name: String,
    version: String,
    #[serde(default)]
    description: String,
    parts: Vec<PartSpec>,
    #[serde(default)]
    plausibility: Option<super::rules::Rules>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartSpec {
    package: PathBuf,
    #[serde(default)]
    structures: Option<BTreeMap<String, String>>,
    #[serde(default)]
    folds: Option<Vec<u32>>,
}

/// One part of a bundle.
#[derive(Debug)]
pub struct Part {
    /// The part's model.
    pub model: Model,
    /// Per part label index: the bundle label it becomes (0: dropped).
    pub remap: Vec<u8>,
}

fn bad(path: &Path, reason: String) -> Error {
    Error::InvalidManifest {
        path: path.to_path_buf(),
        reason,
        source: None,
    }
}

/// Opens a bundle folder: every part, and the merged manifest.
pub(crate) fn open(dir: &Path, options: &ModelOptions) -> Result<Model> {
    let path = dir.join(BUNDLE_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let spec: BundleSpec = serde_json::from_str(&text).map_err(|e| Error::InvalidManifest {
        path: path.clone(),
        reason: e.to_string(),
        source: cause(e),
    })?;
    if spec.schema_version != super::manifest::SCHEMA_VERSION {
        return Err(bad(
            &path,
            format!("schema_version {} is not supported", spec.schema_version),
        ));
    }
    if spec.parts.is_empty() {
        return Err(bad(&path, "a bundle needs at least one part".into()));
    }
    if options.folds.is_some() {
        return Err(Error::InvalidArgument(format!(
            "{}: a bundle selects folds per part (\"folds\" in bundle.json), not for the whole bundle",
            path.display()
        )));
    }
    let mut parts = Vec::new();
    let mut labels: Vec<LabelSpec> = vec![LabelSpec {
        index: 0,
        name: "Background".into(),
        color: None,
        rt_roi_type: None,
        largest_component: false,
        connectivity: 6,
        fill_holes: Default::default(),
        min_component_fraction: None,
        expected_volume_ml: None,
        code: None,
        side: None,
        inside: None,
        solid: false,
    }];
    for (pi, p) in spec.parts.iter().enumerate() {
        let pdir = dir.join(&p.package);
        if pdir.join(BUNDLE_FILE).is_file() {
            return Err(bad(
                &path,
                format!(
                    "part {pi} ({}) is itself a bundle; list its parts instead",
                    p.package.display()
                ),
            ));
        }
        let popts = ModelOptions {
            folds: p.folds.clone(),
            ..options.clone()
        };
        let model = Model::open(&pdir, &popts)?;
        let m = &model.manifest;
        if let Some(map) = &p.structures
            && let Some(missing) = map
                .keys()
                .find(|k| !m.labels.iter().skip(1).any(|l| &l.name == *k))
        {
            return Err(bad(
                &path,
                format!(
                    "part {pi} ({}): the package has no structure {missing:?} (it has {:?})",
                    p.package.display(),
                    m.labels.iter().skip(1).map(|l| &l.name).collect::<Vec<_>>()
                ),
            ));
        }
        let mut remap = vec![0u8; m.labels.len()];
        // Part names → bundle names, for the `inside` references of the kept structures.
        let renamed: BTreeMap<&str, String> = m
            .labels
            .iter()
            .skip(1)
            .filter_map(|l| match &p.structures {
                None => Some((l.name.as_str(), l.name.clone())),
                Some(map) => map.get(&l.name).map(|n| (l.name.as_str(), n.clone())),
            })
            .collect();
        for l in m.labels.iter().skip(1) {
            let Some(new_name) = renamed.get(l.name.as_str()) else {
                continue;
            };
            if labels.iter().any(|x| &x.name == new_name) {
                return Err(bad(
                    &path,
                    format!("structure name {new_name:?} appears twice in the bundle"),
                ));
            }
            let index = labels.len();
            if index > 255 {
                return Err(bad(&path, "more than 255 structures".into()));
            }
            if let Some(r) = remap.get_mut(l.index) {
                *r = index as u8;
            }
            let mut spec = l.clone();
            spec.index = index;
            spec.name = new_name.clone();
            // A container kept by the same part under a new name; otherwise resolved by
            // name among all the bundle's structures below.
            spec.inside = l.inside.as_ref().map(|i| {
                renamed
                    .get(i.as_str())
                    .cloned()
                    .unwrap_or_else(|| i.clone())
            });
            labels.push(spec);
        }
        parts.push(Part { model, remap });
    }
    if labels.len() < 2 {
        return Err(bad(&path, "the parts keep no structure".into()));
    }
    let names: Vec<String> = labels.iter().map(|l| l.name.clone()).collect();
    for l in labels.iter_mut() {
        if l.inside.as_ref().is_some_and(|i| !names.contains(i)) {
            log::info!(
                "bundle {}: {} lies inside {:?} in its part, which the bundle does not keep",
                path.display(),
                l.name,
                l.inside
            );
            l.inside = None;
        }
    }
    let first = parts
        .first()
        .map(|p| p.model.manifest.clone())
        .ok_or_else(|| bad(&path, "no part".into()))?;
    // The top-level model fields are the first part's (they describe no single network here);
    // `onnx` names bundle.json and its SHA-256, which identifies the bundle in outputs.
    let manifest = Manifest {
        name: spec.name,
        version: spec.version,
        description: spec.description,
        onnx: OnnxSpec {
            file: BUNDLE_FILE.into(),
            sha256: sha256_file(&path)?,
            ..first.onnx.clone()
        },
        labels,
        plausibility: spec.plausibility,
        pipeline: None,
        nnunet: None,
        mirror_axes: Vec::new(),
        ..first
    };
    manifest.validate_structures(&path)?;
    let execution = parts
        .first()
        .map(|p| p.model.execution.clone())
        .ok_or_else(|| bad(&path, "no part".into()))?;
    log::info!(
        "bundle {} {} from {}: {} parts, {} structures",
        manifest.name,
        manifest.version,
        dir.display(),
        parts.len(),
        manifest.labels.len() - 1
    );
    Ok(Model {
        manifest,
        dir: dir.to_path_buf(),
        execution,
        sessions: Vec::new(),
        max_batch: 1,
        folds: Vec::new(),
        parts,
    })
}
