//! The whole job in one call: CT series → model → label map → per-structure summary → RT
//! Structure Set. Each step is the public function of its own module; this module only strings
//! them together and keeps the figures a reviewer needs.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::contour::ContourOptions;
use crate::dicom::CtSeries;
use crate::error::Result;
use crate::infer::uncertainty::ClassUncertainty;
use crate::infer::{InferOptions, Timings, predict};
use crate::model::{Execution, Model};
use crate::plausibility::{
    CtFacts, Flag, FlagCode, OnMismatch, check_applicability, check_structures, refuse_after,
};
use crate::profile::ResolvedProfile;
use crate::rtstruct::{OutputInfo, RoiCode, RoiContours, RoiSpec, write_rtstruct};
use crate::volume::Volume;

/// A structure's confidence below this is flagged for review.
pub const LOW_CONFIDENCE: f64 = 0.85;

/// What the pipeline found for one structure.
#[derive(Debug, Clone, Serialize)]
pub struct StructureSummary {
    /// Label value in the label map.
    pub label: u8,
    /// Structure name from the manifest.
    pub name: String,
    /// Display colour.
    pub color: [u8; 3],
    /// RT ROI Interpreted Type.
    pub rt_roi_type: String,
    /// Voxels in the final label map.
    pub voxels: usize,
    /// Volume, ml.
    pub volume_ml: f64,
    /// Mean model probability over the voxels the model assigned to it (model grid).
    pub confidence: Option<f64>,
    /// Voxels removed by postprocessing (small components).
    pub removed_voxels: usize,
    /// Voxels added by postprocessing (filled holes).
    pub filled_voxels: usize,
    /// Voxels removed because they lay outside the structure's container (plausibility rules).
    pub removed_outside_container: usize,
    /// Entropy and margin of the model's probabilities inside the structure and along its
    /// boundary (model grid).
    pub uncertainty: Option<ClassUncertainty>,
    /// Fraction of a lateral structure on the wrong side of the body's midline.
    pub wrong_side_fraction: Option<f64>,
    /// Review flags (code and sentence): empty, low confidence, volume out of range, outside its
    /// container, air in a solid organ, wrong side, swapped pair, truncated, uncertain.
    pub flags: Vec<Flag>,
}

/// Timings per stage, seconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StageTimings {
    /// Inference stages.
    #[serde(flatten)]
    pub infer: Timings,
    /// Postprocessing.
    pub postprocess_s: f64,
    /// Applicability (before inference) and plausibility checks (after postprocessing).
    pub checks_s: f64,
}

/// The result of segmenting one CT.
#[derive(Debug, Clone)]
pub struct Segmentation {
    /// Label map on the CT grid.
    pub labels: Volume<u8>,
    /// One entry per structure (manifest labels 1..n), in label order.
    pub structures: Vec<StructureSummary>,
    /// Which execution provider ran.
    pub execution: Execution,
    /// Seconds per stage.
    pub timings: StageTimings,
    /// Model name, version and ONNX SHA-256.
    pub model: (String, String, String),
    /// Case flags: the CT does not suit the model, expected structures missing.
    pub case_flags: Vec<Flag>,
    /// What the applicability checks saw in the CT.
    pub ct_facts: CtFacts,
    /// The site profile applied ([`Segmentation::apply_profile`]), if any.
    pub profile: Option<ResolvedProfile>,
    /// When set, the RT Structure Set's and SEG's UIDs are derived from this key instead of
    /// being new ([`OutputInfo::uid_key`]); [`Segmentation::job_key`] gives a key for
    /// (series, model, options).
    pub output_uid_key: Option<String>,
}

/// Default display colours for labels without one.
const PALETTE: [[u8; 3]; 8] = [
    [0, 200, 0],
    [230, 80, 60],
    [60, 120, 230],
    [240, 200, 40],
    [180, 80, 200],
    [40, 200, 200],
    [240, 140, 30],
    [150, 150, 150],
];

/// Segments a loaded CT series with a model: inference, then the manifest's postprocessing and
/// plausibility rules. CT/model mismatches are case flags ([`segment_with`] can refuse them).
pub fn segment(model: &Model, ct: &CtSeries, opts: &InferOptions<'_>) -> Result<Segmentation> {
    segment_with(model, ct, opts, OnMismatch::Flag)
}

/// [`segment`] with a choice of what a CT that does not suit the model gets: case flags, or
/// [`crate::Error::NotApplicable`] (before inference for the CT checks, after it for missing
/// expected structures).
pub fn segment_with(
    model: &Model,
    ct: &CtSeries,
    opts: &InferOptions<'_>,
    on_mismatch: OnMismatch,
) -> Result<Segmentation> {
    let m = &model.manifest;
    let tc = Instant::now();
    let (ct_facts, mut case_flags, coarse_body) = check_applicability(ct, m, on_mismatch)?;
    let mut checks_s = tc.elapsed().as_secs_f64();
    let pred = predict(model, &ct.volume, opts)?;
    let t = Instant::now();
    let mut labels = pred.labels;
    let changes = postprocess_labels(m, &mut labels)?;
    let postprocess_s = t.elapsed().as_secs_f64();

    let tc = Instant::now();
    let checks = check_structures(
        &mut labels,
        &ct.volume,
        m,
        ct_facts.midline_x_mm,
        Some(&coarse_body),
    )?;
    drop(coarse_body);
    case_flags.extend(checks.case_flags.iter().cloned());
    refuse_after(m, &checks.case_flags, on_mismatch)?;
    let rules = m.rules();

    let g = *labels.geometry();
    let voxel_ml = g.spacing[0] * g.spacing[1] * g.spacing[2] / 1000.0;
    let structures = m
        .labels
        .iter()
        .skip(1)
        .map(|spec| {
            let check = checks.labels.get(spec.index).cloned().unwrap_or_default();
            let voxels = check.voxels;
            let volume_ml = voxels as f64 * voxel_ml;
            let confidence = pred.confidence.get(spec.index).copied().flatten();
            let uncertainty = pred.uncertainty.get(spec.index).copied().flatten();
            let mut flags = Vec::new();
            if voxels == 0 {
                flags.push(Flag::new(
                    FlagCode::Empty,
                    format!("{} was not found", spec.name),
                ));
            }
            if let Some(c) = confidence
                && voxels > 0
                && c < LOW_CONFIDENCE
            {
                flags.push(Flag::new(
                    FlagCode::LowConfidence,
                    format!("low confidence {c:.2} < {LOW_CONFIDENCE}"),
                ));
            }
            if let Some([lo, hi]) = spec.expected_volume_ml
                && voxels > 0
                && (volume_ml < lo || volume_ml > hi)
            {
                flags.push(Flag::new(
                    FlagCode::VolumeOutOfRange,
                    format!("volume {volume_ml:.0} ml outside the expected {lo:.0}–{hi:.0} ml"),
                ));
            }
            flags.extend(check.flags.iter().cloned());
            if let Some(u) = uncertainty
                && voxels > 0
            {
                let inside = rules.max_mean_entropy.filter(|&t| u.mean_entropy > t);
                let edge = rules
                    .max_boundary_entropy
                    .zip(u.boundary_entropy)
                    .filter(|&(t, b)| b > t);
                if inside.is_some() || edge.is_some() {
                    flags.push(Flag::new(
                        FlagCode::Uncertain,
                        format!(
                            "the model was uncertain: mean entropy {:.2} inside, {} along the boundary",
                            u.mean_entropy,
                            u.boundary_entropy
                                .map(|b| format!("{b:.2}"))
                                .unwrap_or_else(|| "n/a".into())
                        ),
                    ));
                }
            }
            let (removed_voxels, filled_voxels) =
                changes.get(spec.index).copied().unwrap_or((0, 0));
            StructureSummary {
                label: spec.index as u8,
                name: spec.name.clone(),
                color: spec
                    .color
                    .unwrap_or(PALETTE[(spec.index - 1) % PALETTE.len()]),
                rt_roi_type: spec.rt_roi_type.clone().unwrap_or_else(|| "ORGAN".into()),
                voxels,
                volume_ml,
                confidence,
                removed_voxels,
                filled_voxels,
                removed_outside_container: check.removed_outside_container,
                uncertainty,
                wrong_side_fraction: check.wrong_side_fraction,
                flags,
            }
        })
        .collect();
    checks_s += tc.elapsed().as_secs_f64();
    Ok(Segmentation {
        labels,
        structures,
        execution: model.execution.clone(),
        timings: StageTimings {
            infer: pred.timings,
            postprocess_s,
            checks_s,
        },
        model: (m.name.clone(), m.version.clone(), m.onnx.sha256.clone()),
        case_flags,
        ct_facts,
        profile: None,
        output_uid_key: None,
    })
}

/// Applies the manifest's postprocessing to every label of `labels` (largest component or size
/// fraction, hole filling), in label order; returns per label index the voxels removed and
/// filled (index 0, the background, is always `(0, 0)`).
pub fn postprocess_labels(
    m: &crate::model::Manifest,
    labels: &mut Volume<u8>,
) -> Result<Vec<(usize, usize)>> {
    let todo: Vec<(u8, crate::postprocess::PostprocessOptions)> = m
        .labels
        .iter()
        .skip(1)
        .map(|spec| {
            let pp = crate::postprocess::PostprocessOptions {
                largest_component: spec.largest_component,
                connectivity: if spec.connectivity == 26 {
                    crate::postprocess::Connectivity::TwentySix
                } else {
                    crate::postprocess::Connectivity::Six
                },
                min_component_fraction: spec.min_component_fraction,
                fill_holes: match spec.fill_holes {
                    crate::model::FillHoles::None => crate::postprocess::FillHoles::None,
                    crate::model::FillHoles::TwoD => crate::postprocess::FillHoles::Slice2d,
                    crate::model::FillHoles::ThreeD => crate::postprocess::FillHoles::Volume3d,
                },
            };
            (spec.index as u8, pp)
        })
        .collect();
    let reports = crate::postprocess::postprocess_labels(labels, &todo)?;
    let mut changes = vec![(0usize, 0usize); m.labels.len()];
    for (spec, r) in m.labels.iter().skip(1).zip(reports) {
        if let Some(c) = changes.get_mut(spec.index) {
            *c = (r.removed_voxels, r.filled_voxels);
        }
    }
    Ok(changes)
}

impl Segmentation {
    /// A key for this job: hex SHA-256 over the CT's Series Instance UID, the model's ONNX hash,
    /// the applied profile's hash and `options` (the caller's canonical text of every other
    /// option that changes the outputs). Set it as [`Segmentation::output_uid_key`] so that
    /// running the same job again writes objects with the same UIDs.
    pub fn job_key(&self, ct: &CtSeries, options: &str) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for part in [
            ct.series_uid.as_str(),
            self.model.2.as_str(),
            self.profile.as_ref().map_or("", |p| p.sha256.as_str()),
            options,
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Applies a site profile resolved for this model: structures take the profile's names,
    /// colours and types; structures it does not include are left out of every output (their
    /// voxels stay in [`Segmentation::labels`], so an External still encloses them); the
    /// structure set's label, name, series description and approval status come from it.
    pub fn apply_profile(&mut self, profile: ResolvedProfile) {
        for s in self.structures.iter_mut() {
            if let Some(Some(p)) = profile.structures.get(s.label as usize) {
                s.name = p.name.clone();
                if let Some(c) = p.color {
                    s.color = c;
                }
                if let Some(t) = &p.rt_roi_type {
                    s.rt_roi_type = t.clone();
                }
            }
        }
        self.profile = Some(profile);
    }

    /// Whether structure `label` is written (no profile, or the profile includes it).
    pub fn is_written(&self, label: u8) -> bool {
        self.profile.as_ref().is_none_or(|p| {
            p.structures
                .get(label as usize)
                .is_some_and(|s| s.is_some())
        })
    }

    /// The label map as written to SEG and NIfTI outputs: structures a profile leaves out
    /// become background (borrowed unchanged when nothing is left out).
    pub fn written_labels(&self) -> Result<std::borrow::Cow<'_, Volume<u8>>> {
        if self.structures.iter().all(|s| self.is_written(s.label)) {
            return Ok(std::borrow::Cow::Borrowed(&self.labels));
        }
        let kept: Vec<u8> = self
            .labels
            .data()
            .iter()
            .map(|&l| if self.is_written(l) { l } else { 0 })
            .collect();
        Ok(std::borrow::Cow::Owned(Volume::new(
            *self.labels.geometry(),
            kept,
        )?))
    }

    /// The structures written to outputs (all of them without a profile).
    pub fn written_structures(&self) -> impl Iterator<Item = &StructureSummary> {
        self.structures.iter().filter(|s| self.is_written(s.label))
    }

    /// ROI descriptions for the RT Structure Set, one per written structure (empty ones
    /// included).
    pub fn roi_specs(&self, model: &Model) -> Vec<(u8, RoiSpec)> {
        self.written_structures()
            .map(|s| {
                let code = model
                    .manifest
                    .labels
                    .get(s.label as usize)
                    .and_then(|l| l.code.clone())
                    .map(|c| RoiCode {
                        value: c.value,
                        scheme: c.scheme,
                        meaning: c.meaning,
                    });
                (
                    s.label,
                    RoiSpec {
                        number: s.label as u32,
                        name: s.name.clone(),
                        color: s.color,
                        interpreted_type: s.rt_roi_type.clone(),
                        code,
                    },
                )
            })
            .collect()
    }

    /// Writes the RT Structure Set for this segmentation of `ct` to `path` (atomically).
    /// Returns its SOP Instance UID.
    pub fn write_rtstruct(
        &self,
        model: &Model,
        ct: &CtSeries,
        path: &Path,
        contour: &ContourOptions,
    ) -> Result<String> {
        let t = Instant::now();
        let rois = self.rtstruct_rois(model, contour)?;
        log::debug!(
            "RTSTRUCT: contours of {} ROIs in {:.3} s",
            rois.len(),
            t.elapsed().as_secs_f64()
        );
        write_rtstruct(path, ct, &rois, &self.output_info())
    }

    /// Model name, version and hash for the outputs (RTSTRUCT, SEG) of this segmentation.
    pub fn output_info(&self) -> OutputInfo {
        OutputInfo {
            model_name: self.model.0.clone(),
            model_version: self.model.1.clone(),
            model_sha256: self.model.2.clone(),
            label: self
                .profile
                .as_ref()
                .and_then(|p| p.structure_set_label.clone()),
            series_description: self
                .profile
                .as_ref()
                .and_then(|p| p.series_description.clone()),
            structure_set_name: self
                .profile
                .as_ref()
                .and_then(|p| p.structure_set_name.clone()),
            approval_status: self.profile.as_ref().map(|p| p.approval_status.clone()),
            uid_key: self.output_uid_key.clone(),
        }
    }

    /// The SEG segments, one per structure (empty ones included).
    pub fn seg_segments(&self, model: &Model) -> Vec<crate::seg::SegSegment> {
        self.roi_specs(model)
            .into_iter()
            .map(|(label, s)| crate::seg::SegSegment {
                label,
                name: s.name,
                color: s.color,
                code: s.code,
            })
            .collect()
    }

    /// The ROIs and contours the RT Structure Set holds, sorted by ROI number (= label): one per
    /// structure, empty ones included; an `EXTERNAL` ROI contours the union of all structures
    /// so that it encloses the organs.
    pub fn rtstruct_rois(
        &self,
        model: &Model,
        contour: &ContourOptions,
    ) -> Result<Vec<RoiContours>> {
        let specs = self.roi_specs(model);
        let (external, organs): (Vec<_>, Vec<_>) = specs
            .into_iter()
            .partition(|(_, s)| s.interpreted_type.eq_ignore_ascii_case("EXTERNAL"));
        // The label map is mutually exclusive, so the body label excludes the organs inside it;
        // an EXTERNAL ROI must enclose them: it gets the contours of the union of all
        // structures. Organs and the union are traced in one pass over the label map.
        let mut sets: Vec<_> = organs
            .iter()
            .map(|&(label, _)| crate::contour::label_set(|v| v == label))
            .collect();
        if !external.is_empty() {
            sets.push(crate::contour::label_set(|v| v != 0));
        }
        let mut traced = crate::contour::contours_where_each(&self.labels, &sets, contour)?;
        let union_contours = if external.is_empty() {
            Vec::new()
        } else {
            traced.pop().unwrap_or_default()
        };
        let mut rois: Vec<RoiContours> = organs
            .into_iter()
            .zip(traced)
            .map(|((_, spec), contours)| RoiContours { spec, contours })
            .collect();
        let mut ext = external.into_iter();
        if let Some((_, spec)) = ext.next() {
            for (_, spec) in ext {
                rois.push(RoiContours {
                    spec,
                    contours: union_contours.clone(),
                });
            }
            rois.push(RoiContours {
                spec,
                contours: union_contours,
            });
        }
        rois.sort_by_key(|r| r.spec.number);
        Ok(rois)
    }
}
