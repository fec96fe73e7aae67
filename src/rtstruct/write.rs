//! RT Structure Set writer.

use std::path::Path;

use dicom_core::VR;
use dicom_dictionary_std::tags;
use dicom_object::{FileDicomObject, InMemDicomObject};
use rayon::prelude::*;

use crate::contour::{Contour, ContourOptions, contours_where_each, label_set};
use crate::dicom::write::{
    Code as RoiCode, DsPoints, IMPLICIT_VR_LE, OutputInfo, RTSTRUCT_DS_DECIMALS,
    RTSTRUCT_SOP_CLASS, STUDY_SOP_CLASS, code_item, image_ref, item, lo, now_utc, output_uid, put,
    put_patient_study_frame, put_seq, put_series, software_versions, sop_class_or_ct,
    with_file_meta, write_object,
};
use crate::dicom::{CtSeries, SliceRef};
use crate::error::{Error, Result};
use crate::volume::Volume;

/// How one structure is described in the RT Structure Set, independent of any model format.
#[derive(Debug, Clone, PartialEq)]
pub struct RoiSpec {
    /// ROI Number (unique in the file, ≥ 1).
    pub number: u32,
    /// ROI Name.
    pub name: String,
    /// ROI Display Color (RGB).
    pub color: [u8; 3],
    /// RT ROI Interpreted Type (`ORGAN`, `EXTERNAL`, `PTV`, `CTV`, `GTV`, `AVOIDANCE`…).
    pub interpreted_type: String,
    /// Optional coded concept.
    pub code: Option<RoiCode>,
}

/// An ROI and its contours (which may be empty: the ROI is still written).
#[derive(Debug, Clone, PartialEq)]
pub struct RoiContours {
    /// Description.
    pub spec: RoiSpec,
    /// Contours on the CT grid's slices.
    pub contours: Vec<Contour>,
}

/// Contours of the given labels of a label map, one [`RoiContours`] per spec, in spec order
/// (all labels traced in one pass over the label map).
pub fn rois_from_labels(
    labels: &Volume<u8>,
    specs: &[(u8, RoiSpec)],
    opts: &ContourOptions,
) -> Result<Vec<RoiContours>> {
    let sets: Vec<_> = specs
        .iter()
        .map(|&(label, _)| label_set(|v| v == label))
        .collect();
    let contours = contours_where_each(labels, &sets, opts)?;
    Ok(specs
        .iter()
        .zip(contours)
        .map(|((_, spec), contours)| RoiContours {
            spec: spec.clone(),
            contours,
        })
        .collect())
}

/// Builds the RT Structure Set object (with its file meta group) for `rois` drawn on `ct`.
pub fn build_rtstruct(
    ct: &CtSeries,
    rois: &[RoiContours],
    info: &OutputInfo,
) -> Result<FileDicomObject<InMemDicomObject>> {
    check_roi_numbers(rois)?;
    check_point_limits(rois)?;
    let sop_uid = output_uid(info, "rtstruct.sop", &ct.series_uid);
    let series_uid = output_uid(info, "rtstruct.series", &sop_uid);
    let (date, time) = now_utc();
    let mut o = InMemDicomObject::new_empty();
    crate::dicom::write::put_sop_common(&mut o, RTSTRUCT_SOP_CLASS, &sop_uid, &date, &time);
    put_patient_study_frame(&mut o, ct);
    // RT Series
    put_series(&mut o, "RTSTRUCT", &series_uid, "", &date, &time, info);
    put(&mut o, tags::OPERATORS_NAME, VR::PN, "");
    put_equipment(&mut o, info);
    put_structure_set(&mut o, info, &date, &time);
    put_seq(
        &mut o,
        tags::REFERENCED_FRAME_OF_REFERENCE_SEQUENCE,
        vec![referenced_frame(ct)],
    );
    put_rois(&mut o, ct, rois, info)?;
    // Approval
    put(
        &mut o,
        tags::APPROVAL_STATUS,
        VR::CS,
        info.approval_status.as_deref().unwrap_or("UNAPPROVED"),
    );
    with_file_meta(o, IMPLICIT_VR_LE, "RTSTRUCT")
}

/// ROI numbers must be non-zero and unique.
fn check_roi_numbers(rois: &[RoiContours]) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for r in rois {
        if r.spec.number == 0 || !seen.insert(r.spec.number) {
            return Err(Error::InvalidArgument(format!(
                "ROI number {} of '{}' is zero or used twice",
                r.spec.number, r.spec.name
            )));
        }
    }
    Ok(())
}

/// Holds the contours to the `max_contour_points_per_roi` and `max_contour_points_total` limits
/// ([`crate::limits`]) before anything is formatted: a structure set no reader would accept is
/// not written.
fn check_point_limits(rois: &[RoiContours]) -> Result<()> {
    let limits = crate::limits::limits();
    let mut total: u64 = 0;
    for r in rois {
        let points: u64 = r.contours.iter().map(|c| c.points.len() as u64).sum();
        crate::limits::check(
            "max_contour_points_per_roi",
            points,
            limits.max_contour_points_per_roi,
            || {
                format!(
                    "RT Structure Set being written: contour points of ROI '{}'",
                    r.spec.name
                )
            },
        )?;
        total = total.saturating_add(points);
    }
    crate::limits::check(
        "max_contour_points_total",
        total,
        limits.max_contour_points_total,
        || "RT Structure Set being written: contour points of all ROIs".to_string(),
    )
}

/// General Equipment: manufacturer, the model as Manufacturer's Model Name, software versions.
fn put_equipment(o: &mut InMemDicomObject, info: &OutputInfo) {
    put(o, tags::MANUFACTURER, VR::LO, "autocontour");
    put(
        o,
        tags::MANUFACTURER_MODEL_NAME,
        VR::LO,
        lo(&info.model_name),
    );
    put(o, tags::SOFTWARE_VERSIONS, VR::LO, software_versions(info));
}

/// Structure Set: label (`info`'s, else `autocontour`, at most 16 characters), date, time,
/// instance number.
fn put_structure_set(o: &mut InMemDicomObject, info: &OutputInfo, date: &str, time: &str) {
    let label = info.label.clone().unwrap_or_else(|| "autocontour".into());
    put(
        o,
        tags::STRUCTURE_SET_LABEL,
        VR::SH,
        label.chars().take(16).collect::<String>(),
    );
    if let Some(name) = info.structure_set_name.as_deref().filter(|n| !n.is_empty()) {
        put(o, tags::STRUCTURE_SET_NAME, VR::LO, lo(name));
    }
    put(o, tags::STRUCTURE_SET_DATE, VR::DA, date);
    put(o, tags::STRUCTURE_SET_TIME, VR::TM, time);
    put(o, tags::INSTANCE_NUMBER, VR::IS, "1");
}

/// The Referenced Frame of Reference item: the CT's frame → its study → its series → every CT
/// slice in the Contour Image Sequence.
fn referenced_frame(ct: &CtSeries) -> InMemDicomObject {
    let images: Vec<InMemDicomObject> = ct
        .slices
        .iter()
        .map(|s| image_ref(sop_class_or_ct(&s.sop_class_uid), &s.sop_instance_uid))
        .collect();
    let series = item(|it| {
        put(
            it,
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            ct.series_uid.as_str(),
        );
        put_seq(it, tags::CONTOUR_IMAGE_SEQUENCE, images);
    });
    let study = item(|it| {
        put(it, tags::REFERENCED_SOP_CLASS_UID, VR::UI, STUDY_SOP_CLASS);
        put(
            it,
            tags::REFERENCED_SOP_INSTANCE_UID,
            VR::UI,
            ct.study_uid.as_str(),
        );
        put_seq(it, tags::RT_REFERENCED_SERIES_SEQUENCE, vec![series]);
    });
    item(|it| {
        put(
            it,
            tags::FRAME_OF_REFERENCE_UID,
            VR::UI,
            ct.frame_of_reference_uid.as_str(),
        );
        put_seq(it, tags::RT_REFERENCED_STUDY_SEQUENCE, vec![study]);
    })
}

/// Structure Set ROI, ROI Contour and RT ROI Observations sequences: one item each per ROI, in
/// order.
fn put_rois(
    o: &mut InMemDicomObject,
    ct: &CtSeries,
    rois: &[RoiContours],
    info: &OutputInfo,
) -> Result<()> {
    let generation = lo(&format!(
        "autocontour {} {} {}",
        crate::VERSION,
        info.model_name,
        info.model_version
    ));
    let mut ss_rois = Vec::with_capacity(rois.len());
    let mut roi_contours = Vec::with_capacity(rois.len());
    let mut observations = Vec::with_capacity(rois.len());
    for (n, roi) in rois.iter().enumerate() {
        ss_rois.push(structure_set_roi(ct, roi, &generation));
        roi_contours.push(roi_contour(ct, roi)?);
        observations.push(observation(n, roi));
    }
    put_seq(o, tags::STRUCTURE_SET_ROI_SEQUENCE, ss_rois);
    put_seq(o, tags::ROI_CONTOUR_SEQUENCE, roi_contours);
    put_seq(o, tags::RTROI_OBSERVATIONS_SEQUENCE, observations);
    Ok(())
}

/// The Structure Set ROI item: number, frame of reference, name, AUTOMATIC generation with
/// `generation` as its description.
fn structure_set_roi(ct: &CtSeries, roi: &RoiContours, generation: &str) -> InMemDicomObject {
    item(|it| {
        put(it, tags::ROI_NUMBER, VR::IS, roi.spec.number.to_string());
        put(
            it,
            tags::REFERENCED_FRAME_OF_REFERENCE_UID,
            VR::UI,
            ct.frame_of_reference_uid.as_str(),
        );
        put(it, tags::ROI_NAME, VR::LO, lo(&roi.spec.name));
        put(it, tags::ROI_GENERATION_ALGORITHM, VR::CS, "AUTOMATIC");
        put(it, tags::ROI_GENERATION_DESCRIPTION, VR::LO, generation);
    })
}

/// The ROI Contour item: display colour, the contours with at least 3 points (no Contour
/// Sequence when there are none) and the ROI number.
fn roi_contour(ct: &CtSeries, roi: &RoiContours) -> Result<InMemDicomObject> {
    let mut rc = InMemDicomObject::new_empty();
    let [r, g, b] = roi.spec.color;
    put(
        &mut rc,
        tags::ROI_DISPLAY_COLOR,
        VR::IS,
        format!("{r}\\{g}\\{b}"),
    );
    // Contour items are formatted in parallel (Contour Data is most of the file), kept in order.
    let items: Vec<Option<InMemDicomObject>> = roi
        .contours
        .par_iter()
        .enumerate()
        .map(|(c_idx, c)| {
            let slice = ct.slices.get(c.slice).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "contour of ROI '{}' lies on slice {} but the CT has {}",
                    roi.spec.name,
                    c.slice,
                    ct.slices.len()
                ))
            })?;
            if c.points.len() < 3 {
                return Ok(None);
            }
            contour_item(c, c_idx + 1, slice).map(Some)
        })
        .collect::<Result<_>>()?;
    let items: Vec<InMemDicomObject> = items.into_iter().flatten().collect();
    if !items.is_empty() {
        put_seq(&mut rc, tags::CONTOUR_SEQUENCE, items);
    }
    put(
        &mut rc,
        tags::REFERENCED_ROI_NUMBER,
        VR::IS,
        roi.spec.number.to_string(),
    );
    Ok(rc)
}

/// One Contour Sequence item: the CT slice it lies on, geometric type, number of points,
/// `number`, and Contour Data (x\y\z per point, each a DS of at most 3 decimals).
fn contour_item(c: &Contour, number: usize, slice: &SliceRef) -> Result<InMemDicomObject> {
    let mut bytes = Vec::with_capacity(c.points.len() * 3 * 9);
    let mut ds = DsPoints::new(RTSTRUCT_DS_DECIMALS);
    for p in &c.points {
        ds.push_point(&mut bytes, p)?;
    }
    // Digits, signs, points and backslashes: ASCII.
    let data = String::from_utf8(bytes)
        .map_err(|e| Error::InvalidArgument(format!("Contour Data is not text: {e}")))?;
    Ok(item(|it| {
        put_seq(
            it,
            tags::CONTOUR_IMAGE_SEQUENCE,
            vec![image_ref(
                sop_class_or_ct(&slice.sop_class_uid),
                &slice.sop_instance_uid,
            )],
        );
        put(
            it,
            tags::CONTOUR_GEOMETRIC_TYPE,
            VR::CS,
            c.geometric_type.as_str(),
        );
        put(
            it,
            tags::NUMBER_OF_CONTOUR_POINTS,
            VR::IS,
            c.points.len().to_string(),
        );
        put(it, tags::CONTOUR_NUMBER, VR::IS, number.to_string());
        put(it, tags::CONTOUR_DATA, VR::DS, data);
    }))
}

/// The RT ROI Observations item of the `n`-th ROI (0-based): observation number, ROI number,
/// the identification code when there is one, interpreted type, empty interpreter.
fn observation(n: usize, roi: &RoiContours) -> InMemDicomObject {
    item(|ob| {
        put(ob, tags::OBSERVATION_NUMBER, VR::IS, (n + 1).to_string());
        put(
            ob,
            tags::REFERENCED_ROI_NUMBER,
            VR::IS,
            roi.spec.number.to_string(),
        );
        if let Some(code) = &roi.spec.code {
            put_seq(
                ob,
                tags::RTROI_IDENTIFICATION_CODE_SEQUENCE,
                vec![code_item(&code.value, &code.scheme, &code.meaning)],
            );
        }
        put(
            ob,
            tags::RTROI_INTERPRETED_TYPE,
            VR::CS,
            roi.spec.interpreted_type.trim().to_uppercase(),
        );
        put(ob, tags::ROI_INTERPRETER, VR::PN, "");
    })
}

/// Builds and writes the RT Structure Set to `path`: written to a temporary file beside it,
/// flushed, then renamed, so a failure never leaves a partial file. Returns the SOP Instance
/// UID.
pub fn write_rtstruct(
    path: &Path,
    ct: &CtSeries,
    rois: &[RoiContours],
    info: &OutputInfo,
) -> Result<String> {
    let t = std::time::Instant::now();
    let obj = build_rtstruct(ct, rois, info)?;
    log::debug!(
        "RTSTRUCT: data set built in {:.3} s",
        t.elapsed().as_secs_f64()
    );
    write_object(path, &obj)
}
