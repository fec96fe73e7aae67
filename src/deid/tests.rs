use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use super::*;
use crate::dicom::write::{CT_IMAGE_STORAGE, EXPLICIT_VR_LE, item, put, put_seq, put_v};

fn key(seed: u8) -> SiteKey {
    let bytes: Vec<u8> = (0..32u8)
        .map(|i| i.wrapping_mul(37).wrapping_add(seed))
        .collect();
    SiteKey::new(&bytes).unwrap()
}

/// A CT-like instance of patient `pid` with the identifying attributes, a private block, an
/// overlay, an attribute off the list, and UIDs two sequence levels deep.
fn instance(pid: &str, sop: &str, referenced: &str) -> InMemDicomObject {
    let mut o = InMemDicomObject::new_empty();
    put(&mut o, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 100");
    put(&mut o, tags::SOP_CLASS_UID, VR::UI, CT_IMAGE_STORAGE);
    put(&mut o, tags::SOP_INSTANCE_UID, VR::UI, sop);
    put(&mut o, tags::STUDY_DATE, VR::DA, "20060920");
    put(&mut o, tags::STUDY_TIME, VR::TM, "093833");
    put(
        &mut o,
        tags::ACQUISITION_DATE_TIME,
        VR::DT,
        "20060920093136.5+0100",
    );
    put(&mut o, tags::ACCESSION_NUMBER, VR::SH, "1542750798412803");
    put(&mut o, tags::MODALITY, VR::CS, "CT");
    put(&mut o, tags::INSTITUTION_NAME, VR::LO, "General Hospital");
    put(&mut o, tags::REFERRING_PHYSICIAN_NAME, VR::PN, "Who^Doctor");
    put(
        &mut o,
        tags::STUDY_DESCRIPTION,
        VR::LO,
        "CHEST for Jane Roe",
    );
    put(&mut o, tags::PATIENT_NAME, VR::PN, "Roe^Jane");
    put(&mut o, tags::PATIENT_ID, VR::LO, pid);
    put(&mut o, tags::PATIENT_BIRTH_DATE, VR::DA, "19461119");
    put(&mut o, tags::PATIENT_SEX, VR::CS, "F");
    put(&mut o, tags::PATIENT_AGE, VR::AS, "059Y");
    put(&mut o, Tag(0x0013, 0x0010), VR::LO, "CTP");
    put(&mut o, Tag(0x0013, 0x1010), VR::LO, "Jane Roe private");
    put(&mut o, tags::SLICE_THICKNESS, VR::DS, "1.25");
    put(&mut o, tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3.4.100");
    put(&mut o, tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3.4.200");
    put(&mut o, tags::FRAME_OF_REFERENCE_UID, VR::UI, "1.2.3.4.300");
    put(
        &mut o,
        tags::IMAGE_POSITION_PATIENT,
        VR::DS,
        "-146.7\\-155.3\\-35",
    );
    put_v(&mut o, tags::ROWS, VR::US, PrimitiveValue::from(2u16));
    put_v(&mut o, tags::COLUMNS, VR::US, PrimitiveValue::from(2u16));
    put_v(
        &mut o,
        Tag(0x6000, 0x3000),
        VR::OW,
        PrimitiveValue::U8(vec![1, 2, 3, 4].into()),
    );
    // Source Image Sequence → item → Referenced Image Sequence → item with the UID, plus a
    // private element and an unknown one inside the items.
    let inner = item(|i| {
        put(i, tags::REFERENCED_SOP_CLASS_UID, VR::UI, CT_IMAGE_STORAGE);
        put(i, tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, referenced);
        put(i, Tag(0x0009, 0x1001), VR::LO, "private inside");
        put(i, tags::PATIENT_COMMENTS, VR::LT, "comment inside");
    });
    let outer = item(|i| {
        put(i, tags::REFERENCED_SOP_CLASS_UID, VR::UI, CT_IMAGE_STORAGE);
        put(i, tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, referenced);
        put_seq(i, tags::REFERENCED_IMAGE_SEQUENCE, vec![inner]);
    });
    put_seq(&mut o, tags::SOURCE_IMAGE_SEQUENCE, vec![outer]);
    put_seq(
        &mut o,
        tags::ICON_IMAGE_SEQUENCE,
        vec![item(|i| put(i, tags::ROWS, VR::US, "1"))],
    );
    put_v(
        &mut o,
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U16(vec![1, 2, 3, 4].into()),
    );
    o
}

fn text(o: &InMemDicomObject, tag: Tag) -> String {
    text_of(o, tag).unwrap_or_else(|| panic!("{tag} missing"))
}

fn nested_uid(o: &InMemDicomObject) -> (String, String) {
    let outer = &o
        .get(tags::SOURCE_IMAGE_SEQUENCE)
        .unwrap()
        .value()
        .items()
        .unwrap()[0];
    let inner = &outer
        .get(tags::REFERENCED_IMAGE_SEQUENCE)
        .unwrap()
        .value()
        .items()
        .unwrap()[0];
    (
        text(outer, tags::REFERENCED_SOP_INSTANCE_UID),
        text(inner, tags::REFERENCED_SOP_INSTANCE_UID),
    )
}

#[test]
fn short_equal_and_missing_keys_are_refused() {
    assert!(matches!(
        SiteKey::new(&[7u8; 31][..]),
        Err(Error::InvalidSiteKey { .. })
    ));
    assert!(matches!(
        SiteKey::new(&[0u8; 64][..]),
        Err(Error::InvalidSiteKey { .. })
    ));
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short.key");
    std::fs::write(&short, b"password").unwrap();
    let err = SiteKey::from_file(&short).unwrap_err();
    assert!(matches!(&err, Error::InvalidSiteKey { path: Some(p), .. } if p == &short));
    assert!(err.to_string().contains("at least 32"), "{err}");
    assert!(matches!(
        SiteKey::from_file(&dir.path().join("absent.key")),
        Err(Error::Io { .. })
    ));
    let good = dir.path().join("site.key");
    std::fs::write(&good, (0..32u8).collect::<Vec<_>>()).unwrap();
    assert!(SiteKey::locate(Some(&good)).is_ok());
    // The key's bytes never show in Debug.
    assert_eq!(format!("{:?}", key(1)), "SiteKey(32 bytes)");
}

#[test]
fn uid_pseudonyms_are_keyed_consistent_and_valid() {
    let (a, b) = (key(1), key(2));
    let u = "1.3.6.1.4.1.9328.50.1.46030624428924902770242306232464606217";
    let p = pseudonym_uid(&a, u);
    assert_eq!(p, pseudonym_uid(&a, u));
    assert_eq!(
        p,
        pseudonym_uid(&a, &format!("{u}\0")),
        "padding is ignored"
    );
    assert_ne!(p, pseudonym_uid(&b, u), "another key, another UID");
    assert_ne!(p, pseudonym_uid(&a, "1.3.6.1.4.1.9328.50.1.1"));
    assert!(p.starts_with("2.25.") && p.len() <= 44, "{p}");
    assert!(p[5..].bytes().all(|c| c.is_ascii_digit()) && !p[5..].starts_with('0'));
    // The UUID's version (8) and variant (10) bits.
    let n: u128 = p[5..].parse().unwrap();
    assert_eq!((n >> 76) & 0xf, 8);
    assert_eq!((n >> 62) & 0x3, 0b10);
    assert!(is_registered_uid("1.2.840.10008.5.1.4.1.1.2"));
    assert!(!is_registered_uid(u));
    let id = patient_pseudonym(&a, "RIDER-1129164940");
    assert_eq!(id.len(), 19);
    assert_ne!(id, patient_pseudonym(&b, "RIDER-1129164940"));
}

#[test]
fn dates_shift_by_a_keyed_per_patient_offset() {
    assert_eq!(shift_date("20000301", -1).as_deref(), Some("20000229"));
    assert_eq!(shift_date("19000301", -1).as_deref(), Some("19000228"));
    assert_eq!(shift_date("2006.09.20", -365).as_deref(), Some("20050920"));
    assert_eq!(shift_date("20060920", 0).as_deref(), Some("20060920"));
    for bad in [
        "", "2006", "200609", "20061301", "20060931", "2006092A", "20060229",
    ] {
        assert_eq!(shift_date(bad, -400), None, "{bad}");
    }
    assert_eq!(
        shift_datetime("20060920093136.5+0100", -1).as_deref(),
        Some("20060919093136.5+0100")
    );
    assert_eq!(shift_datetime("2006", -1), None);
    let (a, b) = (key(1), key(2));
    let mut offsets = std::collections::HashSet::new();
    for pid in 0..200 {
        let d = date_offset_days(&a, &format!("patient {pid}"));
        assert!((DATE_OFFSET_RANGE.0..=DATE_OFFSET_RANGE.1).contains(&d));
        offsets.insert(d);
    }
    assert!(offsets.len() > 150, "offsets spread: {}", offsets.len());
    assert_eq!(date_offset_days(&a, "P1"), date_offset_days(&a, "P1"));
    assert_ne!(
        (0..8)
            .map(|i| date_offset_days(&a, &i.to_string()))
            .collect::<Vec<_>>(),
        (0..8)
            .map(|i| date_offset_days(&b, &i.to_string()))
            .collect::<Vec<_>>()
    );
}

#[test]
fn allow_list_keeps_geometry_replaces_identity_and_drops_the_rest() {
    let p = Pseudonymiser::new(key(1));
    let mut o = instance("PID-1", "1.2.3.4.1001", "1.2.3.4.1002");
    let report = p.pseudonymise(&mut o).unwrap();
    // Kept.
    assert_eq!(text(&o, tags::SLICE_THICKNESS), "1.25");
    assert_eq!(text(&o, tags::MODALITY), "CT");
    assert_eq!(text(&o, tags::SOP_CLASS_UID), CT_IMAGE_STORAGE);
    assert_eq!(text(&o, tags::STUDY_TIME), "093833");
    assert!(o.get(tags::PIXEL_DATA).is_some());
    // Replaced, emptied, shifted.
    let pseudonym = patient_pseudonym(&key(1), "PID-1");
    assert_eq!(text(&o, tags::PATIENT_NAME), format!("{pseudonym}^"));
    assert_eq!(text(&o, tags::PATIENT_ID), pseudonym);
    for t in [
        tags::PATIENT_BIRTH_DATE,
        tags::PATIENT_SEX,
        tags::ACCESSION_NUMBER,
        tags::REFERRING_PHYSICIAN_NAME,
    ] {
        assert_eq!(text(&o, t), "", "{t} emptied");
    }
    let offset = date_offset_days(&key(1), "PID-1");
    assert_eq!(report.date_offset_days, offset);
    assert_eq!(
        text(&o, tags::STUDY_DATE),
        shift_date("20060920", offset).unwrap()
    );
    assert!(
        text(&o, tags::ACQUISITION_DATE_TIME).ends_with("093136.5+0100"),
        "time of day kept"
    );
    assert_eq!(
        text(&o, tags::SOP_INSTANCE_UID),
        pseudonym_uid(&key(1), "1.2.3.4.1001")
    );
    // Removed: private tags, overlay, icon, free text, attributes off the list.
    for t in [
        Tag(0x0013, 0x0010),
        Tag(0x0013, 0x1010),
        Tag(0x6000, 0x3000),
        tags::ICON_IMAGE_SEQUENCE,
        tags::INSTITUTION_NAME,
        tags::STUDY_DESCRIPTION,
        tags::PATIENT_AGE,
    ] {
        assert!(o.get(t).is_none(), "{t} removed");
    }
    // Nested sequences: UIDs replaced at both depths, unlisted elements gone.
    let want = pseudonym_uid(&key(1), "1.2.3.4.1002");
    assert_eq!(nested_uid(&o), (want.clone(), want.clone()));
    let outer = &o
        .get(tags::SOURCE_IMAGE_SEQUENCE)
        .unwrap()
        .value()
        .items()
        .unwrap()[0];
    let inner = &outer
        .get(tags::REFERENCED_IMAGE_SEQUENCE)
        .unwrap()
        .value()
        .items()
        .unwrap()[0];
    assert!(inner.get(Tag(0x0009, 0x1001)).is_none());
    assert!(inner.get(tags::PATIENT_COMMENTS).is_none());
    // The de-identification attributes.
    assert_eq!(text(&o, tags::PATIENT_IDENTITY_REMOVED), "YES");
    assert_eq!(
        text(&o, tags::LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED),
        "MODIFIED"
    );
    let codes: Vec<String> = o
        .get(tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE)
        .unwrap()
        .value()
        .items()
        .unwrap()
        .iter()
        .map(|i| text(i, tags::CODE_VALUE))
        .collect();
    assert_eq!(codes, ["113100", "113107"]);
    assert!(DEIDENTIFICATION_METHOD.len() <= 64);
    // The report: originals for re-identification, every replaced UID.
    assert_eq!(report.original.patient_id.as_deref(), Some("PID-1"));
    assert_eq!(report.original.patient_name.as_deref(), Some("Roe^Jane"));
    assert_eq!(
        report.original.study_instance_uid.as_deref(),
        Some("1.2.3.4.100")
    );
    assert_eq!(
        report.uids.get(&want).map(String::as_str),
        Some("1.2.3.4.1002")
    );
    assert_eq!(report.uids.len(), 5, "{:?}", report.uids);
    assert!(report.removed >= 9);
}

#[test]
fn uids_and_dates_are_consistent_across_instances_of_a_patient() {
    let p = Pseudonymiser::new(key(3));
    // Instance 2 references instance 1: the reference must land on instance 1's new UID.
    let mut one = instance("PID-7", "1.2.3.4.1", "1.2.3.4.9");
    let mut two = instance("PID-7", "1.2.3.4.2", "1.2.3.4.1");
    p.pseudonymise(&mut one).unwrap();
    p.pseudonymise(&mut two).unwrap();
    assert_eq!(nested_uid(&two).0, text(&one, tags::SOP_INSTANCE_UID));
    for t in [
        tags::STUDY_INSTANCE_UID,
        tags::SERIES_INSTANCE_UID,
        tags::FRAME_OF_REFERENCE_UID,
        tags::STUDY_DATE,
        tags::PATIENT_ID,
    ] {
        assert_eq!(text(&one, t), text(&two, t), "{t}");
    }
    // Another patient: another pseudonym (and, with this key, another date offset).
    let mut other = instance("PID-8", "1.2.3.4.3", "1.2.3.4.1");
    p.pseudonymise(&mut other).unwrap();
    assert_ne!(text(&one, tags::PATIENT_ID), text(&other, tags::PATIENT_ID));
    // Same UIDs under another key: all different.
    let mut again = instance("PID-7", "1.2.3.4.1", "1.2.3.4.9");
    Pseudonymiser::new(key(4)).pseudonymise(&mut again).unwrap();
    for t in [
        tags::SOP_INSTANCE_UID,
        tags::STUDY_INSTANCE_UID,
        tags::PATIENT_ID,
    ] {
        assert_ne!(text(&one, t), text(&again, t), "{t}");
    }
}

#[test]
fn un_values_and_unparseable_dates_never_pass_through() {
    let p = Pseudonymiser::new(key(1));
    let mut o = InMemDicomObject::new_empty();
    put(&mut o, tags::SOP_INSTANCE_UID, VR::UI, "1.2.3.4.5");
    // A UID and a date the parser could not type, a sequence hidden in UN, a bad date.
    o.put(DataElement::new(
        tags::SERIES_INSTANCE_UID,
        VR::UN,
        PrimitiveValue::U8(b"1.2.3.4.6\0".to_vec().into()),
    ));
    o.put(DataElement::new(
        tags::REFERENCED_IMAGE_SEQUENCE,
        VR::UN,
        PrimitiveValue::U8(vec![0xFE, 0xFF, 0x00, 0xE0].into()),
    ));
    put(&mut o, tags::CONTENT_DATE, VR::DA, "2006-09-20");
    p.pseudonymise(&mut o).unwrap();
    let series = o.get(tags::SERIES_INSTANCE_UID).unwrap();
    assert_eq!(series.vr(), VR::UI);
    assert_eq!(
        text(&o, tags::SERIES_INSTANCE_UID),
        pseudonym_uid(&key(1), "1.2.3.4.6")
    );
    assert!(o.get(tags::REFERENCED_IMAGE_SEQUENCE).is_none());
    assert_eq!(text(&o, tags::CONTENT_DATE), "");
}

#[test]
fn file_meta_follows_the_new_instance_uid() {
    let p = Pseudonymiser::new(key(1));
    let file = instance("PID-1", "1.2.3.4.1001", "1.2.3.4.1002")
        .with_meta(
            dicom_object::FileMetaTableBuilder::new()
                .transfer_syntax(EXPLICIT_VR_LE)
                .source_application_entity_title("HOSPITAL_PACS"),
        )
        .unwrap();
    let (out, report) = p.pseudonymise_file(file, Path::new("x.dcm")).unwrap();
    let new_uid = pseudonym_uid(&key(1), "1.2.3.4.1001");
    assert_eq!(out.meta().media_storage_sop_instance_uid(), new_uid);
    assert_eq!(out.meta().media_storage_sop_class_uid(), CT_IMAGE_STORAGE);
    assert_eq!(out.meta().transfer_syntax(), EXPLICIT_VR_LE);
    assert_eq!(out.meta().source_application_entity_title(), None);
    assert_eq!(
        report.pseudonymised.sop_instance_uid.as_deref(),
        Some(new_uid.as_str())
    );
    // Round trip through bytes.
    let mut buf = Vec::new();
    out.write_all(&mut buf).unwrap();
    let back = crate::dicom::read_bytes(Path::new("back"), &buf).unwrap();
    assert_eq!(
        back.opt_str(tags::PATIENT_ID),
        report.pseudonymised.patient_id
    );
}

#[test]
fn a_result_of_pseudonymised_instances_is_reidentified() {
    let p = Pseudonymiser::new(key(5));
    let mut ct = instance("PID-9", "1.2.3.4.11", "1.2.3.4.12");
    let report = p.pseudonymise(&mut ct).unwrap();
    // A structure set made from the pseudonymised CT: copies its patient and study, references
    // its frame of reference, study, series and instance, and has UIDs of its own.
    let mut rs = InMemDicomObject::new_empty();
    for t in [
        tags::PATIENT_NAME,
        tags::PATIENT_ID,
        tags::PATIENT_BIRTH_DATE,
        tags::STUDY_DATE,
        tags::STUDY_INSTANCE_UID,
        tags::PATIENT_IDENTITY_REMOVED,
        tags::DEIDENTIFICATION_METHOD,
    ] {
        rs.put(ct.get(t).unwrap().clone());
    }
    put(&mut rs, tags::SOP_INSTANCE_UID, VR::UI, "2.25.1");
    put(&mut rs, tags::SERIES_INSTANCE_UID, VR::UI, "2.25.2");
    let image = item(|i| {
        put(i, tags::REFERENCED_SOP_CLASS_UID, VR::UI, CT_IMAGE_STORAGE);
        put(
            i,
            tags::REFERENCED_SOP_INSTANCE_UID,
            VR::UI,
            text(&ct, tags::SOP_INSTANCE_UID),
        );
    });
    let series = item(|i| {
        put(
            i,
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            text(&ct, tags::SERIES_INSTANCE_UID),
        );
        put_seq(i, tags::CONTOUR_IMAGE_SEQUENCE, vec![image]);
    });
    let frame = item(|i| {
        put(
            i,
            tags::FRAME_OF_REFERENCE_UID,
            VR::UI,
            text(&ct, tags::FRAME_OF_REFERENCE_UID),
        );
        put_seq(i, tags::RT_REFERENCED_SERIES_SEQUENCE, vec![series]);
    });
    put_seq(
        &mut rs,
        tags::REFERENCED_FRAME_OF_REFERENCE_SEQUENCE,
        vec![frame],
    );

    let restored = reidentify(&mut rs, &report.uids, &report.original);
    assert_eq!(restored, 4);
    assert_eq!(text(&rs, tags::STUDY_INSTANCE_UID), "1.2.3.4.100");
    assert_eq!(
        text(&rs, tags::SOP_INSTANCE_UID),
        "2.25.1",
        "its own UIDs stay"
    );
    assert_eq!(text(&rs, tags::PATIENT_NAME), "Roe^Jane");
    assert_eq!(text(&rs, tags::PATIENT_ID), "PID-9");
    assert_eq!(text(&rs, tags::PATIENT_BIRTH_DATE), "19461119");
    assert_eq!(text(&rs, tags::STUDY_DATE), "20060920");
    assert!(rs.get(tags::PATIENT_IDENTITY_REMOVED).is_none());
    assert!(rs.get(tags::DEIDENTIFICATION_METHOD).is_none());
    let frame = &rs
        .get(tags::REFERENCED_FRAME_OF_REFERENCE_SEQUENCE)
        .unwrap()
        .value()
        .items()
        .unwrap()[0];
    assert_eq!(text(frame, tags::FRAME_OF_REFERENCE_UID), "1.2.3.4.300");
    let series = &frame
        .get(tags::RT_REFERENCED_SERIES_SEQUENCE)
        .unwrap()
        .value()
        .items()
        .unwrap()[0];
    assert_eq!(text(series, tags::SERIES_INSTANCE_UID), "1.2.3.4.200");
    let image = &series
        .get(tags::CONTOUR_IMAGE_SEQUENCE)
        .unwrap()
        .value()
        .items()
        .unwrap()[0];
    assert_eq!(text(image, tags::REFERENCED_SOP_INSTANCE_UID), "1.2.3.4.11");
}
