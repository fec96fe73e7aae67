//! DICOM Segmentation (SEG) writer: a label map as a binary Segmentation Storage object.
//!
//! * One segment per [`SegSegment`] (segment number = its position, from 1), algorithm type
//!   `AUTOMATIC`, algorithm name from the caller, recommended display colour as CIELab.
//! * Frames are written **only for slices where the segment has voxels**, ordered by segment,
//!   then by CT slice (volume order). A segment without voxels is still described in the Segment
//!   Sequence but has no frame; a label map without any voxel of any segment is an error (a SEG
//!   needs at least one frame).
//! * Every frame carries Plane Position (the exact Image Position (Patient) of its CT slice),
//!   Derivation Image / Source Image (the CT slice's SOP Instance UID, Spatial Locations
//!   Preserved `YES`) and Segment
//!   Identification; Plane Orientation and Pixel Measures are shared. Dimension Organization:
//!   (Referenced Segment Number, Image Position (Patient)).
//! * Patient and study attributes are copied from the CT, the Frame of Reference is the CT's.
//! * Explicit VR Little Endian, 1-bit pixels packed across frames; written atomically.

use std::path::Path;

use dicom_core::value::PrimitiveValue;
use dicom_core::{Tag, VR, dicom_value};
use dicom_dictionary_std::tags;
use dicom_object::{FileDicomObject, InMemDicomObject};

use crate::dicom::CtSeries;
use crate::dicom::write::{
    Code, EXPLICIT_VR_LE, OutputInfo, code_item, format_ds, image_ref, item, lo, now_utc,
    output_uid, put, put_patient_study_frame, put_seq, put_series, put_v, software_versions,
    sop_class_or_ct, with_file_meta, write_object,
};
use crate::error::{Error, Result};
use crate::volume::Volume;

/// Segmentation Storage SOP Class UID.
pub use crate::dicom::write::SEG_SOP_CLASS;

/// One segment: which label of the map it is, and how it is described.
#[derive(Debug, Clone, PartialEq)]
pub struct SegSegment {
    /// Label value in the label map.
    pub label: u8,
    /// Segment Label.
    pub name: String,
    /// Display colour (RGB), written as Recommended Display CIELab Value.
    pub color: [u8; 3],
    /// Segmented Property Type; `None` writes SCT 85756007 "Tissue".
    pub code: Option<Code>,
}

fn ds_list(v: &[f64]) -> Result<String> {
    Ok(v.iter()
        .map(|x| format_ds(*x))
        .collect::<Result<Vec<_>>>()?
        .join("\\"))
}

/// sRGB (0–255) to DICOM scaled CIELab (D65): L 0–100 → 0–65535, a and b −128–127 → 0–65535.
pub fn rgb_to_dicom_lab(rgb: [u8; 3]) -> [u16; 3] {
    let lin = |c: u8| {
        let c = f64::from(c) / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    let [r, g, b] = rgb.map(lin);
    let x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047;
    let y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
    let z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883;
    let f = |t: f64| {
        if t > 216.0 / 24389.0 {
            t.cbrt()
        } else {
            (24389.0 / 27.0 * t + 16.0) / 116.0
        }
    };
    let (fx, fy, fz) = (f(x), f(y), f(z));
    let l = 116.0 * fy - 16.0;
    let a = 500.0 * (fx - fy);
    let bb = 200.0 * (fy - fz);
    let scale = |v: f64, lo: f64, hi: f64| {
        (((v - lo) / (hi - lo)).clamp(0.0, 1.0) * 65535.0).round() as u16
    };
    [
        scale(l, 0.0, 100.0),
        scale(a, -128.0, 127.0),
        scale(bb, -128.0, 127.0),
    ]
}

/// Builds the SEG object for `segments` of `labels` (which must lie on the CT grid).
pub fn build_seg(
    ct: &CtSeries,
    labels: &Volume<u8>,
    segments: &[SegSegment],
    info: &OutputInfo,
) -> Result<FileDicomObject<InMemDicomObject>> {
    let (rows, cols) = check_grid(ct, labels, segments)?;
    let frames = frames_of(labels, segments)?;
    let pixels = pack_frames(labels, segments, &frames);

    let sop_uid = output_uid(info, "seg.sop", &ct.series_uid);
    let series_uid = output_uid(info, "seg.series", &sop_uid);
    let dim_uid = output_uid(info, "seg.dimension-organization", &series_uid);
    let (date, time) = now_utc();
    let mut o = InMemDicomObject::new_empty();
    put_sop_common(&mut o, &sop_uid, &date, &time);
    put_patient_study_frame(&mut o, ct);
    let desc = put_series(&mut o, "SEG", &series_uid, "901", &date, &time, info);
    put_equipment(&mut o, info);
    put_image(&mut o, &date, &time);
    put_segmentation_image(&mut o, info, &desc, rows, cols, frames.len());
    put_segment_sequence(&mut o, segments, info)?;
    put_dimension_organization(&mut o, &dim_uid);
    put_shared_groups(&mut o, labels)?;
    put_per_frame_groups(&mut o, ct, &frames)?;
    put_common_instance_reference(&mut o, ct, &frames)?;
    put_v(
        &mut o,
        tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::from(pixels),
    );
    with_file_meta(o, EXPLICIT_VR_LE, "SEG")
}

/// One frame: (segment number from 1, CT slice index).
type Frame = (usize, usize);

/// Checks that `labels` lie on the CT grid and that there are segments; returns (Rows,
/// Columns).
fn check_grid(ct: &CtSeries, labels: &Volume<u8>, segments: &[SegSegment]) -> Result<(u16, u16)> {
    let g = labels.geometry();
    let cg = ct.volume.geometry();
    if g.size != cg.size || ct.slices.len() != g.size[2] {
        return Err(Error::NotOnCtGrid {
            what: "SEG".into(),
            detail: format!(
                "size {:?} vs CT {:?} ({} slices)",
                g.size,
                cg.size,
                ct.slices.len()
            ),
        });
    }
    if segments.is_empty() {
        return Err(Error::InvalidArgument(
            "a SEG needs at least one segment".into(),
        ));
    }
    let [cols, rows, _] = g.size;
    match (u16::try_from(rows), u16::try_from(cols)) {
        (Ok(r), Ok(c)) => Ok((r, c)),
        _ => Err(Error::InvalidArgument(format!(
            "{cols}x{rows} slices do not fit DICOM Rows/Columns"
        ))),
    }
}

/// The frames to write: per segment in order, the slices where it has voxels. A segment without
/// voxels gets a warning and no frame; no frame at all is an error.
fn frames_of(labels: &Volume<u8>, segments: &[SegSegment]) -> Result<Vec<Frame>> {
    let nk = labels.geometry().size[2];
    let mut frames: Vec<Frame> = Vec::new();
    for (s, seg) in segments.iter().enumerate() {
        let mut any = false;
        for k in 0..nk {
            if let Some(sl) = labels.slice(k)
                && sl.contains(&seg.label)
            {
                frames.push((s + 1, k));
                any = true;
            }
        }
        if !any {
            log::warn!(
                "SEG: segment '{}' (label {}) has no voxels; described without frames",
                seg.name,
                seg.label
            );
        }
    }
    if frames.is_empty() {
        return Err(Error::InvalidArgument(
            "no segment has any voxel; a SEG needs at least one frame".into(),
        ));
    }
    Ok(frames)
}

/// Pixel Data: one bit per pixel, frames one after the other without padding between them (the
/// bits of a frame may start mid-byte), least significant bit first, padded to an even length.
fn pack_frames(labels: &Volume<u8>, segments: &[SegSegment], frames: &[Frame]) -> Vec<u8> {
    let [cols, rows, _] = labels.geometry().size;
    let plane = rows * cols;
    let nbits = frames.len() * plane;
    let mut pixels = vec![0u8; nbits.div_ceil(8).next_multiple_of(2)];
    for (f, &(s, k)) in frames.iter().enumerate() {
        let (Some(seg), Some(sl)) = (segments.get(s - 1), labels.slice(k)) else {
            continue;
        };
        let base = f * plane;
        for (p, &v) in sl.iter().enumerate() {
            if v == seg.label {
                let bit = base + p;
                if let Some(byte) = pixels.get_mut(bit / 8) {
                    *byte |= 1 << (bit % 8);
                }
            }
        }
    }
    pixels
}

/// SOP Common (character set, class, instance, creation date and time) and the Image Type.
fn put_sop_common(o: &mut InMemDicomObject, sop_uid: &str, date: &str, time: &str) {
    crate::dicom::write::put_sop_common(o, SEG_SOP_CLASS, sop_uid, date, time);
    put(o, tags::IMAGE_TYPE, VR::CS, "DERIVED\\PRIMARY");
}

/// Enhanced General Equipment: manufacturer, model name (the model's, else `autocontour`),
/// device serial number, software versions.
fn put_equipment(o: &mut InMemDicomObject, info: &OutputInfo) {
    put(o, tags::MANUFACTURER, VR::LO, "autocontour");
    let model_name = if info.model_name.trim().is_empty() {
        "autocontour".to_string()
    } else {
        lo(info.model_name.trim())
    };
    put(o, tags::MANUFACTURER_MODEL_NAME, VR::LO, model_name);
    put(o, tags::DEVICE_SERIAL_NUMBER, VR::LO, "0");
    put(o, tags::SOFTWARE_VERSIONS, VR::LO, software_versions(info));
}

/// General Image / Multi-frame Functional Groups: instance number, content date and time.
fn put_image(o: &mut InMemDicomObject, date: &str, time: &str) {
    put(o, tags::INSTANCE_NUMBER, VR::IS, "1");
    put(o, tags::CONTENT_DATE, VR::DA, date);
    put(o, tags::CONTENT_TIME, VR::TM, time);
}

/// Segmentation Image (without its Segment Sequence) and Image Pixel: content identification
/// (label from `info`, else `AUTOCONTOUR`, as a CS; description = the series description),
/// 1-bit monochrome pixels of `rows` × `cols`, BINARY segmentation, `frames` frames.
fn put_segmentation_image(
    o: &mut InMemDicomObject,
    info: &OutputInfo,
    desc: &str,
    rows: u16,
    cols: u16,
    frames: usize,
) {
    let label: String = info
        .label
        .clone()
        .unwrap_or_else(|| "AUTOCONTOUR".into())
        .to_uppercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(16)
        .collect();
    put(o, tags::CONTENT_LABEL, VR::CS, label);
    put(o, tags::CONTENT_DESCRIPTION, VR::LO, lo(desc.trim()));
    put(o, tags::CONTENT_CREATOR_NAME, VR::PN, "");
    put_v(o, tags::SAMPLES_PER_PIXEL, VR::US, dicom_value!(U16, [1]));
    put(o, tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2");
    put_v(o, tags::ROWS, VR::US, dicom_value!(U16, [rows]));
    put_v(o, tags::COLUMNS, VR::US, dicom_value!(U16, [cols]));
    put_v(o, tags::BITS_ALLOCATED, VR::US, dicom_value!(U16, [1]));
    put_v(o, tags::BITS_STORED, VR::US, dicom_value!(U16, [1]));
    put_v(o, tags::HIGH_BIT, VR::US, dicom_value!(U16, [0]));
    put_v(
        o,
        tags::PIXEL_REPRESENTATION,
        VR::US,
        dicom_value!(U16, [0]),
    );
    put(o, tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00");
    put(o, tags::SEGMENTATION_TYPE, VR::CS, "BINARY");
    put(o, tags::NUMBER_OF_FRAMES, VR::IS, frames.to_string());
}

/// Segment Sequence: one item per segment, numbered from 1, AUTOMATIC with the model as the
/// algorithm, category "Anatomical Structure", the segment's property type (or "Tissue") and
/// its colour as CIELab.
fn put_segment_sequence(
    o: &mut InMemDicomObject,
    segments: &[SegSegment],
    info: &OutputInfo,
) -> Result<()> {
    let algorithm = lo(format!("{} {}", info.model_name, info.model_version).trim());
    let algorithm = if algorithm.is_empty() {
        "autocontour".to_string()
    } else {
        algorithm
    };
    let mut seg_items = Vec::with_capacity(segments.len());
    for (s, seg) in segments.iter().enumerate() {
        let number = u16::try_from(s + 1)
            .map_err(|_| Error::InvalidArgument("more than 65535 segments".into()))?;
        seg_items.push(item(|it| {
            put_v(
                it,
                tags::SEGMENT_NUMBER,
                VR::US,
                dicom_value!(U16, [number]),
            );
            put(it, tags::SEGMENT_LABEL, VR::LO, lo(&seg.name));
            put(it, tags::SEGMENT_ALGORITHM_TYPE, VR::CS, "AUTOMATIC");
            put(it, tags::SEGMENT_ALGORITHM_NAME, VR::LO, algorithm.as_str());
            put_seq(
                it,
                tags::SEGMENTED_PROPERTY_CATEGORY_CODE_SEQUENCE,
                vec![code_item("123037004", "SCT", "Anatomical Structure")],
            );
            let ty = match &seg.code {
                Some(c) => code_item(&c.value, &c.scheme, &c.meaning),
                None => code_item("85756007", "SCT", "Tissue"),
            };
            put_seq(it, tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE, vec![ty]);
            let lab = rgb_to_dicom_lab(seg.color);
            put_v(
                it,
                tags::RECOMMENDED_DISPLAY_CIE_LAB_VALUE,
                VR::US,
                dicom_value!(U16, [lab[0], lab[1], lab[2]]),
            );
        }));
    }
    put_seq(o, tags::SEGMENT_SEQUENCE, seg_items);
    Ok(())
}

/// Multi-frame Dimension: one organisation `dim_uid`, indexed by segment, then position.
fn put_dimension_organization(o: &mut InMemDicomObject, dim_uid: &str) {
    put_seq(
        o,
        tags::DIMENSION_ORGANIZATION_SEQUENCE,
        vec![item(|it| {
            put(it, tags::DIMENSION_ORGANIZATION_UID, VR::UI, dim_uid)
        })],
    );
    let dim = |index: Tag, group: Tag, label: &str| {
        item(|it| {
            put(it, tags::DIMENSION_ORGANIZATION_UID, VR::UI, dim_uid);
            put_v(
                it,
                tags::DIMENSION_INDEX_POINTER,
                VR::AT,
                dicom_value!(Tags, [index]),
            );
            put_v(
                it,
                tags::FUNCTIONAL_GROUP_POINTER,
                VR::AT,
                dicom_value!(Tags, [group]),
            );
            put(it, tags::DIMENSION_DESCRIPTION_LABEL, VR::LO, label);
        })
    };
    put_seq(
        o,
        tags::DIMENSION_INDEX_SEQUENCE,
        vec![
            dim(
                tags::REFERENCED_SEGMENT_NUMBER,
                tags::SEGMENT_IDENTIFICATION_SEQUENCE,
                "ReferencedSegmentNumber",
            ),
            dim(
                tags::IMAGE_POSITION_PATIENT,
                tags::PLANE_POSITION_SEQUENCE,
                "ImagePositionPatient",
            ),
        ],
    );
}

/// Shared Functional Groups: Plane Orientation (the grid's row and column directions) and Pixel
/// Measures (pixel spacing, slice thickness = spacing between slices = the slice spacing).
fn put_shared_groups(o: &mut InMemDicomObject, labels: &Volume<u8>) -> Result<()> {
    let g = labels.geometry();
    let (r, c) = (g.axis(0), g.axis(1));
    let iop = ds_list(&[r[0], r[1], r[2], c[0], c[1], c[2]])?;
    let spacing = ds_list(&[g.spacing[1], g.spacing[0]])?;
    let thickness = format_ds(g.spacing[2])?;
    let shared = item(|it| {
        put_seq(
            it,
            tags::PLANE_ORIENTATION_SEQUENCE,
            vec![item(|p| {
                put(p, tags::IMAGE_ORIENTATION_PATIENT, VR::DS, iop.as_str())
            })],
        );
        put_seq(
            it,
            tags::PIXEL_MEASURES_SEQUENCE,
            vec![item(|p| {
                put(p, tags::PIXEL_SPACING, VR::DS, spacing.as_str());
                put(p, tags::SLICE_THICKNESS, VR::DS, thickness.as_str());
                put(p, tags::SPACING_BETWEEN_SLICES, VR::DS, thickness.as_str());
            })],
        );
    });
    put_seq(o, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, vec![shared]);
    Ok(())
}

/// The CT slice of a frame, as a named error when the index is past the series (it never is
/// once [`check_grid`] passed).
fn frame_slice(ct: &CtSeries, k: usize) -> Result<&crate::dicom::SliceRef> {
    ct.slices.get(k).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "SEG frame on slice {k} but the CT has {} slices",
            ct.slices.len()
        ))
    })
}

/// Per-frame Functional Groups, one item per frame: Derivation Image (the CT slice as source,
/// Spatial Locations Preserved), Frame Content (dimension index values: segment, slice number
/// from 1), Plane Position (the slice's exact Image Position (Patient)) and Segment
/// Identification.
fn put_per_frame_groups(o: &mut InMemDicomObject, ct: &CtSeries, frames: &[Frame]) -> Result<()> {
    let mut per_frame = Vec::with_capacity(frames.len());
    for &(s, k) in frames {
        let slice = frame_slice(ct, k)?;
        let ipp = ds_list(&slice.position)?;
        let seg_no = u16::try_from(s).unwrap_or(u16::MAX);
        let k32 = u32::try_from(k + 1).unwrap_or(u32::MAX);
        let source = item(|src| {
            put(
                src,
                tags::REFERENCED_SOP_CLASS_UID,
                VR::UI,
                sop_class_or_ct(&slice.sop_class_uid),
            );
            put(
                src,
                tags::REFERENCED_SOP_INSTANCE_UID,
                VR::UI,
                slice.sop_instance_uid.as_str(),
            );
            put_seq(
                src,
                tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE,
                vec![code_item(
                    "121322",
                    "DCM",
                    "Source image for image processing operation",
                )],
            );
            // The frame is the CT slice's own grid: readers such as highdicom place frames by
            // their source image only when this says so.
            put(src, tags::SPATIAL_LOCATIONS_PRESERVED, VR::CS, "YES");
        });
        per_frame.push(item(|it| {
            put_seq(
                it,
                tags::DERIVATION_IMAGE_SEQUENCE,
                vec![item(|d| {
                    put_seq(d, tags::SOURCE_IMAGE_SEQUENCE, vec![source]);
                    put_seq(
                        d,
                        tags::DERIVATION_CODE_SEQUENCE,
                        vec![code_item("113076", "DCM", "Segmentation")],
                    );
                })],
            );
            put_seq(
                it,
                tags::FRAME_CONTENT_SEQUENCE,
                vec![item(|f| {
                    put_v(
                        f,
                        tags::DIMENSION_INDEX_VALUES,
                        VR::UL,
                        dicom_value!(U32, [u32::from(seg_no), k32]),
                    )
                })],
            );
            put_seq(
                it,
                tags::PLANE_POSITION_SEQUENCE,
                vec![item(|p| {
                    put(p, tags::IMAGE_POSITION_PATIENT, VR::DS, ipp.as_str())
                })],
            );
            put_seq(
                it,
                tags::SEGMENT_IDENTIFICATION_SEQUENCE,
                vec![item(|p| {
                    put_v(
                        p,
                        tags::REFERENCED_SEGMENT_NUMBER,
                        VR::US,
                        dicom_value!(U16, [seg_no]),
                    )
                })],
            );
        }));
    }
    put_seq(o, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, per_frame);
    Ok(())
}

/// Common Instance Reference: the CT series and every CT slice a frame derives from, in slice
/// order.
fn put_common_instance_reference(
    o: &mut InMemDicomObject,
    ct: &CtSeries,
    frames: &[Frame],
) -> Result<()> {
    let mut used: Vec<usize> = frames.iter().map(|&(_, k)| k).collect();
    used.sort_unstable();
    used.dedup();
    let refs = used
        .iter()
        .map(|&k| {
            let sl = frame_slice(ct, k)?;
            Ok(image_ref(
                sop_class_or_ct(&sl.sop_class_uid),
                &sl.sop_instance_uid,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    put_seq(
        o,
        tags::REFERENCED_SERIES_SEQUENCE,
        vec![item(|it| {
            put(
                it,
                tags::SERIES_INSTANCE_UID,
                VR::UI,
                ct.series_uid.as_str(),
            );
            put_seq(it, tags::REFERENCED_INSTANCE_SEQUENCE, refs);
        })],
    );
    Ok(())
}

/// Builds the SEG and writes it to `path` atomically. Returns its SOP Instance UID.
pub fn write_seg(
    path: &Path,
    ct: &CtSeries,
    labels: &Volume<u8>,
    segments: &[SegSegment],
    info: &OutputInfo,
) -> Result<String> {
    write_object(path, &build_seg(ct, labels, segments, info)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_of_white_and_red() {
        let w = rgb_to_dicom_lab([255, 255, 255]);
        assert!(w[0] > 65000, "{w:?}");
        assert!((i32::from(w[1]) - 32896).abs() < 200, "{w:?}");
        let r = rgb_to_dicom_lab([255, 0, 0]);
        // L* ≈ 53.2, a* ≈ 80.1, b* ≈ 67.2
        assert!((f64::from(r[0]) / 65535.0 * 100.0 - 53.2).abs() < 0.5);
        assert!((f64::from(r[1]) / 65535.0 * 255.0 - 128.0 - 80.1).abs() < 1.0);
        assert!((f64::from(r[2]) / 65535.0 * 255.0 - 128.0 - 67.2).abs() < 1.0);
    }
}
