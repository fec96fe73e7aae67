//! The whole job in one call: CT series → model → label map → per-structure summary → RT
//! Structure Set. Each step is the public function of its own module; this module only strings
//! them together and keeps the figures a reviewer needs.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::contour::ContourOptions;
use crate::dicom::CtSeries;
use crate::error::Result;
use crate::infer::{InferOptions, Timings, predict};
use crate::model::{Execution, Model};
use crate::rtstruct::{
    OutputInfo, RoiCode, RoiContours, RoiSpec, rois_from_labels, write_rtstruct,
};
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
    /// Review flags: low confidence, volume outside the manifest's expected range, empty.
    pub flags: Vec<String>,
}

/// Timings per stage, seconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StageTimings {
    /// Inference stages.
    #[serde(flatten)]
    pub infer: Timings,
    /// Postprocessing.
    pub postprocess_s: f64,
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

/// Segments a loaded CT series with a model: inference, then the manifest's postprocessing.
pub fn segment(model: &Model, ct: &CtSeries, opts: &InferOptions<'_>) -> Result<Segmentation> {
    let pred = predict(model, &ct.volume, opts)?;
    let m = &model.manifest;
    let t = Instant::now();
    let mut labels = pred.labels;
    let mut changes = vec![(0usize, 0usize); m.labels.len()];
    for spec in m.labels.iter().skip(1) {
        let label = spec.index as u8;
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
        let r = crate::postprocess::postprocess_label(&mut labels, label, &pp)?;
        if let Some(c) = changes.get_mut(spec.index) {
            *c = (r.removed_voxels, r.filled_voxels);
        }
    }
    let postprocess_s = t.elapsed().as_secs_f64();

    let g = *labels.geometry();
    let voxel_ml = g.spacing[0] * g.spacing[1] * g.spacing[2] / 1000.0;
    let mut counts = vec![0usize; m.labels.len()];
    for &l in labels.data() {
        if let Some(c) = counts.get_mut(l as usize) {
            *c += 1;
        }
    }
    let structures = m
        .labels
        .iter()
        .skip(1)
        .map(|spec| {
            let voxels = counts.get(spec.index).copied().unwrap_or(0);
            let volume_ml = voxels as f64 * voxel_ml;
            let confidence = pred.confidence.get(spec.index).copied().flatten();
            let mut flags = Vec::new();
            if voxels == 0 {
                flags.push("empty".to_string());
            }
            if let Some(c) = confidence
                && c < LOW_CONFIDENCE
            {
                flags.push(format!("low confidence {c:.2} < {LOW_CONFIDENCE}"));
            }
            if let Some([lo, hi]) = spec.expected_volume_ml
                && (volume_ml < lo || volume_ml > hi)
            {
                flags.push(format!(
                    "volume {volume_ml:.0} ml outside the expected {lo:.0}–{hi:.0} ml"
                ));
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
                flags,
            }
        })
        .collect();
    Ok(Segmentation {
        labels,
        structures,
        execution: model.execution.clone(),
        timings: StageTimings {
            infer: pred.timings,
            postprocess_s,
        },
        model: (m.name.clone(), m.version.clone(), m.onnx.sha256.clone()),
    })
}

impl Segmentation {
    /// ROI descriptions for the RT Structure Set, one per structure (empty ones included).
    pub fn roi_specs(&self, model: &Model) -> Vec<(u8, RoiSpec)> {
        self.structures
            .iter()
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
        let rois = self.rtstruct_rois(model, contour)?;
        write_rtstruct(path, ct, &rois, &self.output_info())
    }

    /// Model name, version and hash for the outputs (RTSTRUCT, SEG) of this segmentation.
    pub fn output_info(&self) -> OutputInfo {
        OutputInfo {
            model_name: self.model.0.clone(),
            model_version: self.model.1.clone(),
            model_sha256: self.model.2.clone(),
            label: None,
            series_description: None,
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
        let mut rois = rois_from_labels(&self.labels, &organs, contour)?;
        if !external.is_empty() {
            // The label map is mutually exclusive, so the body label excludes the organs inside
            // it; an EXTERNAL ROI must enclose them: contour the union of all structures.
            let union: Vec<u8> = self
                .labels
                .data()
                .iter()
                .map(|&l| u8::from(l != 0))
                .collect();
            let union = Volume::new(*self.labels.geometry(), union)?;
            let ext = external
                .into_iter()
                .map(|(_, spec)| (1u8, spec))
                .collect::<Vec<_>>();
            rois.extend(rois_from_labels(&union, &ext, contour)?);
        }
        rois.sort_by_key(|r| r.spec.number);
        Ok(rois)
    }
}
