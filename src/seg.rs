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
    Code, EXPLICIT_VR_LE, OutputInfo, code_item, format_ds, image_ref, item, lo, new_uid, now_utc,
    put, put_patient_study_frame, put_seq, put_series, put_v, software_versions, sop_class_or_ct,
    with_file_meta, write_object,
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
    let g = *labels.geometry();
    let cg = ct.volume.geometry();
    if g.size != cg.size || ct.slices.len() != g.size[2] {
        return Err(Error::InvalidArgument(format!(
            "label map {:?} is not on the CT grid {:?} ({} slices)",
            g.size,
            cg.size,
            ct.slices.len()
        )));
    }
    if segments.is_empty() {
        return Err(Error::InvalidArgument(
            "a SEG needs at least one segment".into(),
        ));
    }
    let [cols, rows, nk] = g.size;
    let (rows16, cols16) = match (u16::try_from(rows), u16::try_from(cols)) {
        (Ok(r), Ok(c)) => (r, c),
        _ => {
            return Err(Error::InvalidArgument(format!(
                "{cols}x{rows} slices do not fit DICOM Rows/Columns"
            )));
        }
    };
    let plane = rows * cols;
    // Frames: (segment number, slice k)
    let mut frames: Vec<(usize, usize)> = Vec::new();
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
    let nbits = frames.len() * plane;
    let mut pixels = vec![0u8; nbits.div_ceil(8).next_multiple_of(2)];
    for (f, &(s, k)) in frames.iter().enumerate() {
        let label = segments[s - 1].label;
        let base = f * plane;
        if let Some(sl) = labels.slice(k) {
            for (p, &v) in sl.iter().enumerate() {
                if v == label {
                    let bit = base + p;
                    pixels[bit / 8] |= 1 << (bit % 8);
                }
            }
        }
    }

    let sop_uid = new_uid(&ct.series_uid);
    let series_uid = new_uid(&sop_uid);
    let dim_uid = new_uid(&series_uid);
    let (date, time) = now_utc();
    let mut o = InMemDicomObject::new_empty();
    put(&mut o, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
    put(&mut o, tags::IMAGE_TYPE, VR::CS, "DERIVED\\PRIMARY");
    put(&mut o, tags::SOP_CLASS_UID, VR::UI, SEG_SOP_CLASS);
    put(&mut o, tags::SOP_INSTANCE_UID, VR::UI, sop_uid.as_str());
    put(&mut o, tags::INSTANCE_CREATION_DATE, VR::DA, date.as_str());
    put(&mut o, tags::INSTANCE_CREATION_TIME, VR::TM, time.as_str());
    put_patient_study_frame(&mut o, ct);
    // Segmentation Series
    let desc = put_series(&mut o, "SEG", &series_uid, "901", &date, &time, info);
    // Enhanced General Equipment
    put(&mut o, tags::MANUFACTURER, VR::LO, "autocontour");
    let model_name = if info.model_name.trim().is_empty() {
        "autocontour".to_string()
    } else {
        lo(info.model_name.trim())
    };
    put(
        &mut o,
        tags::MANUFACTURER_MODEL_NAME,
        VR::LO,
        model_name.as_str(),
    );
    put(&mut o, tags::DEVICE_SERIAL_NUMBER, VR::LO, "0");
    put(
        &mut o,
        tags::SOFTWARE_VERSIONS,
        VR::LO,
        software_versions(info),
    );
    // General Image / Multi-frame Functional Groups
    put(&mut o, tags::INSTANCE_NUMBER, VR::IS, "1");
    put(&mut o, tags::CONTENT_DATE, VR::DA, date.as_str());
    put(&mut o, tags::CONTENT_TIME, VR::TM, time.as_str());
    // Segmentation Image
    let label: String = info
        .label
        .clone()
        .unwrap_or_else(|| "AUTOCONTOUR".into())
        .to_uppercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(16)
        .collect();
    put(&mut o, tags::CONTENT_LABEL, VR::CS, label.as_str());
    put(&mut o, tags::CONTENT_DESCRIPTION, VR::LO, lo(desc.trim()));
    put(&mut o, tags::CONTENT_CREATOR_NAME, VR::PN, "");
    put_v(
        &mut o,
        tags::SAMPLES_PER_PIXEL,
        VR::US,
        dicom_value!(U16, [1]),
    );
    put(
        &mut o,
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        "MONOCHROME2",
    );
    put_v(&mut o, tags::ROWS, VR::US, dicom_value!(U16, [rows16]));
    put_v(&mut o, tags::COLUMNS, VR::US, dicom_value!(U16, [cols16]));
    put_v(&mut o, tags::BITS_ALLOCATED, VR::US, dicom_value!(U16, [1]));
    put_v(&mut o, tags::BITS_STORED, VR::US, dicom_value!(U16, [1]));
    put_v(&mut o, tags::HIGH_BIT, VR::US, dicom_value!(U16, [0]));
    put_v(
        &mut o,
        tags::PIXEL_REPRESENTATION,
        VR::US,
        dicom_value!(U16, [0]),
    );
    put(&mut o, tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00");
    put(&mut o, tags::SEGMENTATION_TYPE, VR::CS, "BINARY");
    put(
        &mut o,
        tags::NUMBER_OF_FRAMES,
        VR::IS,
        frames.len().to_string(),
    );

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
    put_seq(&mut o, tags::SEGMENT_SEQUENCE, seg_items);

    // Dimension Organization: segment, then position.
    put_seq(
        &mut o,
        tags::DIMENSION_ORGANIZATION_SEQUENCE,
        vec![item(|it| {
            put(
                it,
                tags::DIMENSION_ORGANIZATION_UID,
                VR::UI,
                dim_uid.as_str(),
            )
        })],
    );
    let dim = |index: Tag, group: Tag, label: &str| {
        item(|it| {
            put(
                it,
                tags::DIMENSION_ORGANIZATION_UID,
                VR::UI,
                dim_uid.as_str(),
            );
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
        &mut o,
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

    // Shared functional groups.
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
    put_seq(
        &mut o,
        tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE,
        vec![shared],
    );

    let mut per_frame = Vec::with_capacity(frames.len());
    for &(s, k) in &frames {
        let slice = &ct.slices[k];
        let ipp = ds_list(&slice.position)?;
        let seg_no = s as u16;
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
    put_seq(
        &mut o,
        tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE,
        per_frame,
    );

    // Common Instance Reference: every CT slice a frame derives from.
    let mut used: Vec<usize> = frames.iter().map(|&(_, k)| k).collect();
    used.sort_unstable();
    used.dedup();
    let refs: Vec<InMemDicomObject> = used
        .iter()
        .map(|&k| {
            let sl = &ct.slices[k];
            image_ref(sop_class_or_ct(&sl.sop_class_uid), &sl.sop_instance_uid)
        })
        .collect();
    put_seq(
        &mut o,
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
    put_v(
        &mut o,
        tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::from(pixels),
    );

    with_file_meta(o, EXPLICIT_VR_LE, "SEG")
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
