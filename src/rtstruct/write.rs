//! RT Structure Set writer.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileDicomObject, FileMetaTableBuilder, InMemDicomObject};
use sha2::{Digest, Sha256};

use crate::contour::{Contour, ContourOptions, contours_for_label};
use crate::dicom::CtSeries;
use crate::error::{Error, Result};
use crate::volume::Volume;

const RTSTRUCT_SOP_CLASS: &str = "1.2.840.10008.5.1.4.1.1.481.3";
const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";
/// Detached Study Management SOP Class, the customary class of RT Referenced Study items.
const STUDY_SOP_CLASS: &str = "1.2.840.10008.3.1.2.3.1";
const CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
/// The 2.25 root of the implementation class UID is fixed for this SDK.
const IMPLEMENTATION_CLASS_UID: &str = "2.25.231440186361853392453446563306208133125";

/// A coded concept for an ROI (e.g. an FMA or SNOMED code), written in RT ROI Identification
/// Code Sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoiCode {
    /// Code Value.
    pub value: String,
    /// Coding Scheme Designator (e.g. `FMA`, `SCT`).
    pub scheme: String,
    /// Code Meaning.
    pub meaning: String,
}

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

/// What the file says about who made it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OutputInfo {
    /// Model name (Manufacturer's Model Name, Software Versions, ROI Generation Description).
    pub model_name: String,
    /// Model version.
    pub model_version: String,
    /// SHA-256 of the model file, hex.
    pub model_sha256: String,
    /// Structure Set Label (default `autocontour`).
    pub label: Option<String>,
    /// Series Description (default `autocontour <model name>`).
    pub series_description: Option<String>,
}

/// Formats a Decimal String value: at most 3 decimals, no trailing zeros, at most 16 chars.
pub fn format_ds(v: f64) -> Result<String> {
    let mut s = String::with_capacity(12);
    push_ds(&mut s, v)?;
    Ok(s)
}

/// Appends [`format_ds`]`(v)` to `out`. Fast path without float formatting (a quarter of the
/// CPU time of writing a large structure set went to `format!("{v:.3}")`): when |v| < 10⁹ and
/// v·1000 is not within 10⁻³ of a rounding tie, the product's error (≤ ½ ulp < 10⁻⁴) cannot move
/// it across the tie, so rounding the product gives the same digits as formatting the exact
/// binary value; other values take the `format!` path.
pub(crate) fn push_ds(out: &mut String, v: f64) -> Result<()> {
    use std::fmt::Write as _;
    let x = v * 1000.0;
    if x.is_finite() && x.abs() < 1e12 {
        let floor = x.floor();
        let frac = x - floor;
        if (frac - 0.5).abs() > 1e-3 {
            let q = if frac > 0.5 { floor + 1.0 } else { floor } as i64;
            let a = q.unsigned_abs();
            if q < 0 {
                out.push('-');
            }
            let _ = write!(out, "{}", a / 1000);
            let mut f = a % 1000;
            if f != 0 {
                out.push('.');
                let mut digits = 3;
                while f.is_multiple_of(10) {
                    f /= 10;
                    digits -= 1;
                }
                let _ = write!(out, "{f:0digits$}");
            }
            return Ok(());
        }
    }
    out.push_str(&format_ds_slow(v)?);
    Ok(())
}

fn format_ds_slow(v: f64) -> Result<String> {
    if !v.is_finite() {
        return Err(Error::InvalidArgument(format!(
            "cannot write {v} as a DICOM decimal string"
        )));
    }
    let mut s = format!("{v:.3}");
    if s.contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    if s == "-0" {
        s = "0".into();
    }
    if s.len() > 16 {
        return Err(Error::InvalidArgument(format!(
            "{v} does not fit a 16-character DICOM decimal string"
        )));
    }
    Ok(s)
}

static UID_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A new UID under the `2.25` root: the decimal form of a random-like 128-bit UUID (version 4
/// layout) hashed from the time, the process, a counter and `seed`.
pub fn new_uid(seed: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut h = Sha256::new();
    h.update(now.to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(UID_COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    h.update(seed.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    format!("2.25.{}", u128::from_be_bytes(b))
}

/// (date YYYYMMDD, time HHMMSS) in UTC.
pub(crate) fn now_utc() -> (String, String) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        format!("{y:04}{m:02}{d:02}"),
        format!("{:02}{:02}{:02}", tod / 3600, (tod / 60) % 60, tod % 60),
    )
}

fn put(obj: &mut InMemDicomObject, tag: Tag, vr: VR, value: impl Into<String>) {
    obj.put(DataElement::new(tag, vr, value.into()));
}

fn put_seq(obj: &mut InMemDicomObject, tag: Tag, items: Vec<InMemDicomObject>) {
    obj.put(DataElement::new(tag, VR::SQ, DataSetSequence::from(items)));
}

/// Truncates to `n` characters (LO is 64).
fn lo(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Contours of the given labels of a label map, one [`RoiContours`] per spec, in spec order.
pub fn rois_from_labels(
    labels: &Volume<u8>,
    specs: &[(u8, RoiSpec)],
    opts: &ContourOptions,
) -> Result<Vec<RoiContours>> {
    specs
        .iter()
        .map(|(label, spec)| {
            Ok(RoiContours {
                spec: spec.clone(),
                contours: contours_for_label(labels, *label, opts)?,
            })
        })
        .collect()
}

/// The series module shared by the RTSTRUCT and SEG writers: modality, the new series UID and
/// number, date and time, and the description (`info`'s, else "autocontour <model>"), which is
/// returned.
pub(crate) fn put_series(
    o: &mut InMemDicomObject,
    modality: &str,
    series_uid: &str,
    series_number: &str,
    date: &str,
    time: &str,
    info: &OutputInfo,
) -> String {
    put(o, tags::MODALITY, VR::CS, modality);
    put(o, tags::SERIES_INSTANCE_UID, VR::UI, series_uid);
    put(o, tags::SERIES_NUMBER, VR::IS, series_number);
    put(o, tags::SERIES_DATE, VR::DA, date);
    put(o, tags::SERIES_TIME, VR::TM, time);
    let desc = info
        .series_description
        .clone()
        .unwrap_or_else(|| format!("autocontour {}", info.model_name));
    put(o, tags::SERIES_DESCRIPTION, VR::LO, lo(desc.trim()));
    desc
}

/// Writes the Patient, General Study and Frame of Reference modules of `ct` into `o`: the
/// attributes in [`COPIED`] (type 2 ones created empty when the CT lacks them), the Study
/// Instance UID, the CT's Frame of Reference UID and its Position Reference Indicator. Shared by
/// every object the SDK derives from a CT (RT Structure Set, Segmentation).
pub(crate) fn put_patient_study_frame(o: &mut InMemDicomObject, ct: &CtSeries) {
    for &(tag, vr, type2) in COPIED {
        match ct.header.get(tag) {
            Some(e) => {
                o.put(e.clone());
            }
            None if type2 => put(o, tag, vr, ""),
            None => {}
        }
    }
    put(o, tags::STUDY_INSTANCE_UID, VR::UI, ct.study_uid.as_str());
    put(
        o,
        tags::FRAME_OF_REFERENCE_UID,
        VR::UI,
        ct.frame_of_reference_uid.as_str(),
    );
    match ct.header.get(tags::POSITION_REFERENCE_INDICATOR) {
        Some(e) => {
            o.put(e.clone());
        }
        None => put(o, tags::POSITION_REFERENCE_INDICATOR, VR::LO, ""),
    }
}

/// Patient and General Study attributes copied from the CT.
pub(crate) const COPIED: &[(Tag, VR, bool)] = &[
    (tags::PATIENT_NAME, VR::PN, true),
    (tags::PATIENT_ID, VR::LO, true),
    (tags::ISSUER_OF_PATIENT_ID, VR::LO, false),
    (tags::PATIENT_BIRTH_DATE, VR::DA, true),
    (tags::PATIENT_BIRTH_TIME, VR::TM, false),
    (tags::PATIENT_SEX, VR::CS, true),
    (tags::OTHER_PATIENT_NAMES, VR::PN, false),
    (tags::PATIENT_COMMENTS, VR::LT, false),
    (tags::PATIENT_IDENTITY_REMOVED, VR::CS, false),
    (tags::DEIDENTIFICATION_METHOD, VR::LO, false),
    (tags::STUDY_DATE, VR::DA, true),
    (tags::STUDY_TIME, VR::TM, true),
    (tags::REFERRING_PHYSICIAN_NAME, VR::PN, true),
    (tags::STUDY_ID, VR::SH, true),
    (tags::ACCESSION_NUMBER, VR::SH, true),
    (tags::STUDY_DESCRIPTION, VR::LO, false),
];

fn image_ref(class: &str, uid: &str) -> InMemDicomObject {
    let mut o = InMemDicomObject::new_empty();
    put(&mut o, tags::REFERENCED_SOP_CLASS_UID, VR::UI, class);
    put(&mut o, tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, uid);
    o
}

/// Builds the RT Structure Set object (with its file meta group) for `rois` drawn on `ct`.
pub fn build_rtstruct(
    ct: &CtSeries,
    rois: &[RoiContours],
    info: &OutputInfo,
) -> Result<FileDicomObject<InMemDicomObject>> {
    let nslices = ct.slices.len();
    let mut seen = std::collections::HashSet::new();
    for r in rois {
        if r.spec.number == 0 || !seen.insert(r.spec.number) {
            return Err(Error::InvalidArgument(format!(
                "ROI number {} of '{}' is zero or used twice",
                r.spec.number, r.spec.name
            )));
        }
    }
    let sop_uid = new_uid(&ct.series_uid);
    let series_uid = new_uid(&sop_uid);
    let (date, time) = now_utc();
    let mut o = InMemDicomObject::new_empty();
    put(&mut o, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
    put(&mut o, tags::SOP_CLASS_UID, VR::UI, RTSTRUCT_SOP_CLASS);
    put(&mut o, tags::SOP_INSTANCE_UID, VR::UI, sop_uid.as_str());
    put(&mut o, tags::INSTANCE_CREATION_DATE, VR::DA, date.as_str());
    put(&mut o, tags::INSTANCE_CREATION_TIME, VR::TM, time.as_str());
    put_patient_study_frame(&mut o, ct);
    // RT Series
    put_series(&mut o, "RTSTRUCT", &series_uid, "", &date, &time, info);
    put(&mut o, tags::OPERATORS_NAME, VR::PN, "");
    // General Equipment
    put(&mut o, tags::MANUFACTURER, VR::LO, "autocontour");
    put(
        &mut o,
        tags::MANUFACTURER_MODEL_NAME,
        VR::LO,
        lo(&info.model_name),
    );
    let versions = [
        format!("autocontour {}", crate::VERSION),
        format!("{} {}", info.model_name, info.model_version),
        info.model_sha256.clone(),
    ];
    let versions: Vec<String> = versions
        .iter()
        .map(|v| lo(v.trim().trim_matches('\\')))
        .filter(|v| !v.is_empty())
        .collect();
    put(&mut o, tags::SOFTWARE_VERSIONS, VR::LO, versions.join("\\"));
    // Structure Set
    let label = info.label.clone().unwrap_or_else(|| "autocontour".into());
    put(
        &mut o,
        tags::STRUCTURE_SET_LABEL,
        VR::SH,
        label.chars().take(16).collect::<String>(),
    );
    put(&mut o, tags::STRUCTURE_SET_DATE, VR::DA, date.as_str());
    put(&mut o, tags::STRUCTURE_SET_TIME, VR::TM, time.as_str());
    put(&mut o, tags::INSTANCE_NUMBER, VR::IS, "1");

    let images: Vec<InMemDicomObject> = ct
        .slices
        .iter()
        .map(|s| image_ref(sop_class(&s.sop_class_uid), &s.sop_instance_uid))
        .collect();
    let mut series = InMemDicomObject::new_empty();
    put(
        &mut series,
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        ct.series_uid.as_str(),
    );
    put_seq(&mut series, tags::CONTOUR_IMAGE_SEQUENCE, images);
    let mut study = InMemDicomObject::new_empty();
    put(
        &mut study,
        tags::REFERENCED_SOP_CLASS_UID,
        VR::UI,
        STUDY_SOP_CLASS,
    );
    put(
        &mut study,
        tags::REFERENCED_SOP_INSTANCE_UID,
        VR::UI,
        ct.study_uid.as_str(),
    );
    put_seq(
        &mut study,
        tags::RT_REFERENCED_SERIES_SEQUENCE,
        vec![series],
    );
    let mut frame = InMemDicomObject::new_empty();
    put(
        &mut frame,
        tags::FRAME_OF_REFERENCE_UID,
        VR::UI,
        ct.frame_of_reference_uid.as_str(),
    );
    put_seq(&mut frame, tags::RT_REFERENCED_STUDY_SEQUENCE, vec![study]);
    put_seq(
        &mut o,
        tags::REFERENCED_FRAME_OF_REFERENCE_SEQUENCE,
        vec![frame],
    );

    let generation = lo(&format!(
        "autocontour {} {} {}",
        crate::VERSION,
        info.model_name,
        info.model_version
    ));
    let mut ss_rois = Vec::new();
    let mut roi_contours = Vec::new();
    let mut observations = Vec::new();
    for (n, roi) in rois.iter().enumerate() {
        let number = roi.spec.number.to_string();
        let mut s = InMemDicomObject::new_empty();
        put(&mut s, tags::ROI_NUMBER, VR::IS, number.as_str());
        put(
            &mut s,
            tags::REFERENCED_FRAME_OF_REFERENCE_UID,
            VR::UI,
            ct.frame_of_reference_uid.as_str(),
        );
        put(&mut s, tags::ROI_NAME, VR::LO, lo(&roi.spec.name));
        put(&mut s, tags::ROI_GENERATION_ALGORITHM, VR::CS, "AUTOMATIC");
        put(
            &mut s,
            tags::ROI_GENERATION_DESCRIPTION,
            VR::LO,
            generation.as_str(),
        );
        ss_rois.push(s);

        let mut rc = InMemDicomObject::new_empty();
        let [r, g, b] = roi.spec.color;
        put(
            &mut rc,
            tags::ROI_DISPLAY_COLOR,
            VR::IS,
            format!("{r}\\{g}\\{b}"),
        );
        let mut items = Vec::with_capacity(roi.contours.len());
        for (c_idx, c) in roi.contours.iter().enumerate() {
            let slice = ct.slices.get(c.slice).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "contour of ROI '{}' lies on slice {} but the CT has {nslices}",
                    roi.spec.name, c.slice
                ))
            })?;
            if c.points.len() < 3 {
                continue;
            }
            let mut data = String::with_capacity(c.points.len() * 3 * 9);
            for (p_idx, p) in c.points.iter().enumerate() {
                for (a, v) in p.iter().enumerate() {
                    if p_idx > 0 || a > 0 {
                        data.push('\\');
                    }
                    push_ds(&mut data, *v)?;
                }
            }
            let mut it = InMemDicomObject::new_empty();
            put_seq(
                &mut it,
                tags::CONTOUR_IMAGE_SEQUENCE,
                vec![image_ref(
                    sop_class(&slice.sop_class_uid),
                    &slice.sop_instance_uid,
                )],
            );
            put(
                &mut it,
                tags::CONTOUR_GEOMETRIC_TYPE,
                VR::CS,
                c.geometric_type.as_str(),
            );
            put(
                &mut it,
                tags::NUMBER_OF_CONTOUR_POINTS,
                VR::IS,
                c.points.len().to_string(),
            );
            put(
                &mut it,
                tags::CONTOUR_NUMBER,
                VR::IS,
                (c_idx + 1).to_string(),
            );
            put(&mut it, tags::CONTOUR_DATA, VR::DS, data);
            items.push(it);
        }
        if !items.is_empty() {
            put_seq(&mut rc, tags::CONTOUR_SEQUENCE, items);
        }
        put(
            &mut rc,
            tags::REFERENCED_ROI_NUMBER,
            VR::IS,
            number.as_str(),
        );
        roi_contours.push(rc);

        let mut ob = InMemDicomObject::new_empty();
        put(
            &mut ob,
            tags::OBSERVATION_NUMBER,
            VR::IS,
            (n + 1).to_string(),
        );
        put(
            &mut ob,
            tags::REFERENCED_ROI_NUMBER,
            VR::IS,
            number.as_str(),
        );
        if let Some(code) = &roi.spec.code {
            let mut ci = InMemDicomObject::new_empty();
            put(&mut ci, tags::CODE_VALUE, VR::SH, code.value.as_str());
            put(
                &mut ci,
                tags::CODING_SCHEME_DESIGNATOR,
                VR::SH,
                code.scheme.as_str(),
            );
            put(&mut ci, tags::CODE_MEANING, VR::LO, lo(&code.meaning));
            put_seq(&mut ob, tags::RTROI_IDENTIFICATION_CODE_SEQUENCE, vec![ci]);
        }
        put(
            &mut ob,
            tags::RTROI_INTERPRETED_TYPE,
            VR::CS,
            roi.spec.interpreted_type.trim().to_uppercase(),
        );
        put(&mut ob, tags::ROI_INTERPRETER, VR::PN, "");
        observations.push(ob);
    }
    put_seq(&mut o, tags::STRUCTURE_SET_ROI_SEQUENCE, ss_rois);
    put_seq(&mut o, tags::ROI_CONTOUR_SEQUENCE, roi_contours);
    put_seq(&mut o, tags::RTROI_OBSERVATIONS_SEQUENCE, observations);
    // Approval
    put(&mut o, tags::APPROVAL_STATUS, VR::CS, "UNAPPROVED");

    o.with_meta(
        FileMetaTableBuilder::new()
            .transfer_syntax(IMPLICIT_VR_LE)
            .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
            .implementation_version_name(format!("AC_{}", crate::VERSION)),
    )
    .map_err(|e| Error::InvalidArgument(format!("cannot build the RTSTRUCT file meta: {e}")))
}

fn sop_class(s: &str) -> &str {
    if s.is_empty() { CT_IMAGE_STORAGE } else { s }
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
    let obj = build_rtstruct(ct, rois, info)?;
    let uid = obj
        .meta()
        .media_storage_sop_instance_uid()
        .trim_end_matches('\0')
        .to_string();
    crate::io::write_atomically(path, |f| {
        obj.write_all(f)
            .map_err(|e| std::io::Error::other(e.to_string()))
    })?;
    Ok(uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ds_formatting() {
        assert_eq!(format_ds(1.0).unwrap(), "1");
        assert_eq!(format_ds(-0.0004).unwrap(), "0");
        assert_eq!(format_ds(-12.34567).unwrap(), "-12.346");
        assert_eq!(format_ds(123456789.125).unwrap(), "123456789.125");
        assert_eq!(format_ds(1e15).unwrap().len(), 16);
        assert!(format_ds(1e16).is_err());
        assert!(format_ds(f64::NAN).is_err());
        assert!(format_ds(f64::INFINITY).is_err());
    }

    /// The fast path gives exactly the text of `format!("{v:.3}")` (trimmed).
    #[test]
    fn ds_fast_path_matches_float_formatting() {
        let mut rng = autocontour_test_support::XorShift::new(0x2545_f491_4f6c_dd1d);
        let mut next = || rng.next_u64();
        let mut values = vec![
            0.0005,
            -0.0005,
            1.0005,
            -2.0005,
            0.0015,
            123.4565,
            -0.0,
            0.0001,
            0.999_999_9,
            -0.999_5,
            999_999_999.999,
            -999_999_999.999_4,
            1e9,
            0.1,
            0.2,
            0.3,
            511.5,
            -250.25,
        ];
        for _ in 0..200_000 {
            let r = next();
            let scale = 10f64.powi((r % 13) as i32 - 3);
            let u = (next() >> 11) as f64 / (1u64 << 53) as f64;
            let v = (u - 0.5) * 2.0 * scale;
            values.push(v);
            // Grid-like values: voxel positions as a CT writes them.
            values.push(-250.0 + (r % 512) as f64 * 0.976_562_5);
            values.push((v * 1000.0).round() / 1000.0 + 0.0005);
        }
        for v in values {
            let mut fast = String::new();
            push_ds(&mut fast, v).unwrap();
            assert_eq!(fast, format_ds_slow(v).unwrap(), "{v:e}");
        }
    }

    #[test]
    fn uids_are_unique_and_valid() {
        let a = new_uid("x");
        let b = new_uid("x");
        assert_ne!(a, b);
        for u in [a, b] {
            assert!(u.starts_with("2.25.") && u.len() <= 64);
            assert!(u.chars().all(|c| c.is_ascii_digit() || c == '.'));
            assert!(!u[5..].starts_with('0'));
        }
    }

    #[test]
    fn civil_date_is_plausible() {
        let (d, t) = now_utc();
        assert_eq!(d.len(), 8);
        assert_eq!(t.len(), 6);
        assert!(d.as_str() >= "20240101");
    }
}
