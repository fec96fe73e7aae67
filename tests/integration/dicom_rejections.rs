//! Every named rejection of the CT loader, each provoked by a generated series (a phantom with
//! slices deleted, copied or altered) or a real file, asserting the error kind.

use autocontour_test_support as common;

use std::path::{Path, PathBuf};

use autocontour::Error;
use autocontour::dicom::{LoadOptions, discover, load_series, load_series_files};
use autocontour_test_support::phantom::{Orientation, Phantom, PhantomSpec, PhantomSyntax};
use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::tags;

struct Series {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    files: Vec<PathBuf>,
}

fn phantom(o: Orientation) -> Series {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ct");
    let ph = Phantom::new(PhantomSpec {
        orientation: o,
        size: [16, 12, 10],
        ..PhantomSpec::default()
    })
    .unwrap();
    let files = ph
        .write_series(&dir, PhantomSyntax::ImplicitLittle)
        .unwrap();
    Series {
        _tmp: tmp,
        dir,
        files,
    }
}

fn alter(path: &Path, f: impl FnOnce(&mut dicom_object::InMemDicomObject)) {
    let mut obj = dicom_object::open_file(path).unwrap();
    f(&mut obj);
    obj.write_to_file(path).unwrap();
}

fn put(obj: &mut dicom_object::InMemDicomObject, tag: Tag, vr: VR, v: PrimitiveValue) {
    obj.put(DataElement::new(tag, vr, v));
}

fn strs(v: &[&str]) -> PrimitiveValue {
    PrimitiveValue::Strs(v.iter().map(|s| s.to_string()).collect())
}

fn load(dir: &Path) -> autocontour::Result<autocontour::dicom::CtSeries> {
    load_series(dir, None, &LoadOptions::default())
}

fn ipp_of(path: &Path) -> Vec<f64> {
    let obj = dicom_object::open_file(path).unwrap();
    obj.element(tags::IMAGE_POSITION_PATIENT)
        .unwrap()
        .to_multi_float64()
        .unwrap()
}

fn set_ipp(path: &Path, p: &[f64]) {
    let v: Vec<String> = p.iter().map(|x| format!("{x:.4}")).collect();
    let v: Vec<&str> = v.iter().map(|s| s.as_str()).collect();
    alter(path, |o| {
        put(o, tags::IMAGE_POSITION_PATIENT, VR::DS, strs(&v))
    });
}

#[test]
fn intact_phantom_loads() {
    let s = phantom(Orientation::AxialHfs);
    let ct = load(&s.dir).unwrap();
    assert_eq!(ct.volume.geometry().size, [16, 12, 10]);
    assert!(ct.skipped.is_empty());
}

#[test]
fn missing_slice_is_irregular_spacing() {
    let s = phantom(Orientation::Coronal);
    std::fs::remove_file(&s.files[4]).unwrap();
    match load(&s.dir) {
        Err(Error::IrregularSpacing {
            path,
            gap_mm,
            median_mm,
            ..
        }) => {
            assert_eq!(path, s.files[5]);
            assert!((gap_mm - 10.0).abs() < 1e-6 && (median_mm - 5.0).abs() < 1e-6);
        }
        other => panic!("expected IrregularSpacing, got {:?}", other.err()),
    }
    // A caller that opts in to a larger tolerance gets the volume.
    let lax = LoadOptions {
        gap_tolerance_mm: 6.0,
        ..LoadOptions::default()
    };
    assert!(load_series(&s.dir, None, &lax).is_ok());
}

#[test]
fn uneven_gap_is_irregular_spacing_but_jitter_is_tolerated() {
    let s = phantom(Orientation::AxialHfs);
    let mut p = ipp_of(&s.files[3]);
    p[2] += 0.05; // within 0.1 mm
    set_ipp(&s.files[3], &p);
    assert!(load(&s.dir).is_ok());
    p[2] += 0.4;
    set_ipp(&s.files[3], &p);
    assert!(matches!(load(&s.dir), Err(Error::IrregularSpacing { .. })));
}

#[test]
fn duplicate_position_is_duplicate_slice() {
    let s = phantom(Orientation::NegatedRow);
    let copy = s.dir.join("copy.dcm");
    std::fs::copy(&s.files[2], &copy).unwrap();
    alter(&copy, |o| {
        put(o, tags::SOP_INSTANCE_UID, VR::UI, "2.25.12345".into());
    });
    match load(&s.dir) {
        Err(Error::DuplicateSlice { path, other, .. }) => {
            let pair = [path, other];
            assert!(
                pair.contains(&copy) && pair.contains(&s.files[2]),
                "{pair:?}"
            );
        }
        other => panic!("expected DuplicateSlice, got {:?}", other.err()),
    }
}

#[test]
fn rotated_slice_is_mixed_orientation() {
    let s = phantom(Orientation::AxialHfs);
    alter(&s.files[6], |o| {
        put(
            o,
            tags::IMAGE_ORIENTATION_PATIENT,
            VR::DS,
            strs(&["0.999848", "0.017452", "0", "-0.017452", "0.999848", "0"]),
        )
    });
    match load(&s.dir) {
        Err(Error::MixedOrientation { path, .. }) => assert_eq!(path, s.files[6]),
        other => panic!("expected MixedOrientation, got {:?}", other.err()),
    }
}

#[test]
fn sheared_stack_is_gantry_tilt() {
    let s = phantom(Orientation::AxialHfs);
    for (k, f) in s.files.iter().enumerate() {
        let mut p = ipp_of(f);
        p[1] += 0.5 * k as f64; // 0.5 mm per slice along y: a 5.7° tilt
        set_ipp(f, &p);
    }
    assert!(matches!(load(&s.dir), Err(Error::GantryTilt { .. })));
}

#[test]
fn other_rows_or_spacing_is_mixed_size() {
    let s = phantom(Orientation::Sagittal);
    alter(&s.files[1], |o| {
        put(o, tags::ROWS, VR::US, PrimitiveValue::from(13u16))
    });
    assert!(matches!(
        load(&s.dir),
        Err(Error::MixedSize { what: "Rows", .. })
    ));
    let s = phantom(Orientation::Sagittal);
    alter(&s.files[7], |o| {
        put(o, tags::PIXEL_SPACING, VR::DS, strs(&["4.5", "4"]))
    });
    assert!(matches!(
        load(&s.dir),
        Err(Error::MixedSize {
            what: "PixelSpacing",
            ..
        })
    ));
}

#[test]
fn localizer_is_skipped_and_reported() {
    let s = phantom(Orientation::AxialHfs);
    let scout = s.dir.join("scout.dcm");
    std::fs::copy(&s.files[0], &scout).unwrap();
    alter(&scout, |o| {
        put(o, tags::SOP_INSTANCE_UID, VR::UI, "2.25.777".into());
        put(
            o,
            tags::IMAGE_TYPE,
            VR::CS,
            strs(&["ORIGINAL", "PRIMARY", "LOCALIZER"]),
        );
        put(
            o,
            tags::IMAGE_ORIENTATION_PATIENT,
            VR::DS,
            strs(&["1", "0", "0", "0", "0", "-1"]),
        );
    });
    let ct = load(&s.dir).unwrap();
    assert_eq!(ct.volume.geometry().size[2], 10);
    assert_eq!(ct.skipped.len(), 1);
    assert_eq!(ct.skipped[0].0, scout);
    let d = discover(&s.dir).unwrap();
    assert_eq!(d.series[0].skipped.len(), 1);
    assert!(d.series[0].unusable.is_none());
}

#[test]
fn non_ct_is_not_ct() {
    let s = phantom(Orientation::AxialHfs);
    for f in &s.files {
        alter(f, |o| put(o, tags::MODALITY, VR::CS, "MR".into()));
    }
    assert!(matches!(
        load_series_files(&s.files, &LoadOptions::default()),
        Err(Error::NotCt { .. })
    ));
    assert!(matches!(load(&s.dir), Err(Error::NoSeries { .. })));
    let d = discover(&s.dir).unwrap();
    assert!(d.series[0].unusable.as_deref().unwrap().contains("not CT"));
}

#[test]
fn multi_frame_is_refused_by_name() {
    let s = phantom(Orientation::AxialHfs);
    alter(&s.files[0], |o| {
        put(o, tags::NUMBER_OF_FRAMES, VR::IS, "2".into())
    });
    assert!(matches!(
        load(&s.dir),
        Err(Error::MultiFrame { frames: 2, .. })
    ));
    // A real Enhanced CT object (pydicom's corpus).
    let ect = common::require("pydicom-data/eCT_Supplemental.dcm");
    assert!(matches!(
        load_series_files(&[ect], &LoadOptions::default()),
        Err(Error::MultiFrame { frames: 2, .. })
    ));
}

#[test]
fn missing_position_is_missing_tag() {
    let s = phantom(Orientation::AxialHfs);
    alter(&s.files[5], |o| {
        o.remove_element(tags::IMAGE_POSITION_PATIENT);
    });
    match load(&s.dir) {
        Err(Error::MissingTag { path, tag }) => {
            assert_eq!(path, s.files[5]);
            assert!(tag.contains("ImagePositionPatient"), "{tag}");
        }
        other => panic!("expected MissingTag, got {:?}", other.err()),
    }
}

#[test]
fn non_orthogonal_orientation_is_invalid_tag() {
    let s = phantom(Orientation::AxialHfs);
    for f in &s.files {
        alter(f, |o| {
            put(
                o,
                tags::IMAGE_ORIENTATION_PATIENT,
                VR::DS,
                strs(&["1", "0", "0", "0.5", "0.866", "0"]),
            )
        });
    }
    assert!(matches!(
        load_series_files(&s.files, &LoadOptions::default()),
        Err(Error::InvalidTag { .. })
    ));
}

#[test]
fn truncated_pixels_are_pixel_data_error() {
    let s = phantom(Orientation::AxialHfs);
    alter(&s.files[3], |o| {
        put(
            o,
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::U16(vec![0u16; 100].into()),
        )
    });
    match load(&s.dir) {
        Err(Error::PixelData { path, .. }) => assert_eq!(path, s.files[3]),
        other => panic!("expected PixelData, got {:?}", other.err()),
    }
}

#[test]
fn over_the_limit_is_too_large() {
    let s = phantom(Orientation::AxialHfs);
    let small = LoadOptions {
        max_voxels: 1000,
        ..LoadOptions::default()
    };
    assert!(matches!(
        load_series(&s.dir, None, &small),
        Err(Error::TooLarge {
            voxels: 1920,
            limit: 1000
        })
    ));
}

#[test]
fn unknown_uid_is_series_not_found() {
    let s = phantom(Orientation::AxialHfs);
    assert!(matches!(
        load_series(&s.dir, Some("1.2.3"), &LoadOptions::default()),
        Err(Error::SeriesNotFound { .. })
    ));
}

#[test]
fn garbage_file_is_not_dicom() {
    let s = phantom(Orientation::AxialHfs);
    let junk = s.dir.join("junk.dcm");
    std::fs::write(&junk, vec![0x55u8; 4000]).unwrap();
    // In a folder it is ignored (and listed); given explicitly it is an error.
    assert!(load(&s.dir).is_ok());
    assert!(
        discover(&s.dir)
            .unwrap()
            .ignored
            .iter()
            .any(|m| m.contains("junk.dcm"))
    );
    assert!(matches!(
        load_series_files(&[junk], &LoadOptions::default()),
        Err(Error::NotDicom { .. })
    ));
}

#[test]
fn absurd_rescale_is_refused_naming_the_slice() {
    for (tag, value, needle) in [
        (tags::RESCALE_SLOPE, "1e300", "1e300"),
        (tags::RESCALE_SLOPE, "NaN", "non-finite"),
        (tags::RESCALE_INTERCEPT, "1e200", "beyond"),
    ] {
        let s = phantom(Orientation::AxialHfs);
        alter(&s.files[4], |o| put(o, tag, VR::DS, strs(&[value])));
        match load(&s.dir) {
            Err(e @ Error::InvalidTag { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(&s.files[4].display().to_string()), "{msg}");
                assert!(msg.contains(needle), "{msg}");
            }
            other => panic!("{value}: expected InvalidTag, got {:?}", other.err()),
        }
    }
}

#[test]
fn gap_tolerance_must_be_a_finite_number() {
    let s = phantom(Orientation::AxialHfs);
    for t in [f64::NAN, f64::INFINITY, -1.0] {
        let o = LoadOptions {
            gap_tolerance_mm: t,
            ..LoadOptions::default()
        };
        assert!(
            matches!(
                load_series(&s.dir, None, &o),
                Err(Error::InvalidArgument(_))
            ),
            "{t}"
        );
    }
}

#[test]
fn symlink_loops_are_scanned_once() {
    let s = phantom(Orientation::AxialHfs);
    std::os::unix::fs::symlink(&s.dir, s.dir.join("loop")).unwrap();
    std::os::unix::fs::symlink(s.dir.parent().unwrap(), s.dir.join("up")).unwrap();
    let t = std::time::Instant::now();
    let summary = discover(&s.dir).unwrap();
    assert_eq!(summary.series.len(), 1);
    assert_eq!(summary.series[0].slices, s.files.len());
    let ct = load(&s.dir).unwrap();
    assert_eq!(ct.slices.len(), s.files.len());
    assert!(t.elapsed().as_secs() < 10);
}

/// An RT Structure Set whose two ROIs share an ROI Number is refused by name: contours are
/// matched to ROIs by number, so it cannot be read faithfully.
#[test]
fn duplicate_roi_numbers_are_refused() {
    use autocontour::contour::ContourOptions;
    use autocontour::rtstruct::{
        OutputInfo, RoiSpec, build_rtstruct, read_rtstruct_bytes, rois_from_labels,
    };
    let s = phantom(Orientation::AxialHfs);
    let ct = load(&s.dir).unwrap();
    let g = *ct.volume.geometry();
    let mut labels = vec![0u8; g.voxel_count()];
    for (i, l) in labels.iter_mut().enumerate() {
        *l = match i % (g.size[0] * g.size[1]) {
            v if v % g.size[0] < 4 => 1,
            v if v % g.size[0] > 10 => 2,
            _ => 0,
        };
    }
    let labels = autocontour::volume::Volume::new(g, labels).unwrap();
    let spec = |n: u32, name: &str| RoiSpec {
        number: n,
        name: name.into(),
        color: [255, 0, 0],
        interpreted_type: "ORGAN".into(),
        code: None,
    };
    let rois = rois_from_labels(
        &labels,
        &[(1, spec(1, "A")), (2, spec(2, "B"))],
        &ContourOptions::default(),
    )
    .unwrap();
    let mut obj = build_rtstruct(&ct, &rois, &OutputInfo::default()).unwrap();
    // give the second ROI (and its contours) the first one's number
    for seq in [
        tags::STRUCTURE_SET_ROI_SEQUENCE,
        tags::ROI_CONTOUR_SEQUENCE,
        tags::RTROI_OBSERVATIONS_SEQUENCE,
    ] {
        let mut items = obj.element(seq).unwrap().items().unwrap().to_vec();
        let tag = if seq == tags::STRUCTURE_SET_ROI_SEQUENCE {
            tags::ROI_NUMBER
        } else {
            tags::REFERENCED_ROI_NUMBER
        };
        items[1].put(DataElement::new(tag, VR::IS, strs(&["1"])));
        obj.put(DataElement::new(
            seq,
            VR::SQ,
            dicom_core::value::DataSetSequence::from(items),
        ));
    }
    let mut bytes = Vec::new();
    obj.write_all(&mut bytes).unwrap();
    let e = read_rtstruct_bytes(Path::new("dup.dcm"), &bytes).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("ROI number 1 is used by \"A\" and \"B\""),
        "{msg}"
    );
}

/// One slice with another Pixel Representation (its -1024 would read as 64,512) or another
/// Bits Allocated is refused naming it; 1-bit CT data is refused.
#[test]
fn mixed_pixel_encoding_is_refused() {
    let s = phantom(Orientation::AxialHfs);
    alter(&s.files[5], |o| {
        put(
            o,
            tags::PIXEL_REPRESENTATION,
            VR::US,
            PrimitiveValue::from(1u16),
        )
    });
    match load(&s.dir) {
        Err(Error::MixedSize { path, what, .. }) => {
            assert_eq!(path, s.files[5]);
            assert_eq!(what, "PixelRepresentation");
        }
        other => panic!("expected MixedSize, got {:?}", other.err()),
    }
    let s = phantom(Orientation::AxialHfs);
    for f in &s.files {
        alter(f, |o| {
            put(o, tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(1u16))
        });
    }
    match load(&s.dir) {
        Err(e @ Error::InvalidTag { .. }) => assert!(e.to_string().contains("1 bits"), "{e}"),
        other => panic!("expected InvalidTag, got {:?}", other.err()),
    }
}

/// A DICOM file as bytes: preamble, file meta (implicit VR little endian), then `body`.
fn dicom_bytes(body: &[u8]) -> Vec<u8> {
    fn meta_el(out: &mut Vec<u8>, element: u16, vr: &[u8; 2], value: &[u8]) {
        out.extend_from_slice(&[0x02, 0x00]);
        out.extend_from_slice(&element.to_le_bytes());
        out.extend_from_slice(vr);
        if vr == b"OB" {
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        } else {
            out.extend_from_slice(&(value.len() as u16).to_le_bytes());
        }
        out.extend_from_slice(value);
    }
    let mut meta = Vec::new();
    meta_el(&mut meta, 0x0001, b"OB", &[0, 1]);
    meta_el(&mut meta, 0x0002, b"UI", b"1.2.840.10008.5.1.4.1.1.7\0");
    meta_el(&mut meta, 0x0003, b"UI", b"2.25.424242\0");
    meta_el(&mut meta, 0x0010, b"UI", b"1.2.840.10008.1.2\0");
    let mut v = vec![0u8; 128];
    v.extend_from_slice(b"DICM");
    meta_el(&mut v, 0x0000, b"UL", &(meta.len() as u32).to_le_bytes());
    v.extend_from_slice(&meta);
    v.extend_from_slice(body);
    v
}

/// One implicit VR little endian element.
fn implicit_el(out: &mut Vec<u8>, group: u16, element: u16, len: u32, value: &[u8]) {
    out.extend_from_slice(&group.to_le_bytes());
    out.extend_from_slice(&element.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(value);
}

/// Secondary-capture header elements, then `levels` undefined-length sequences, each in an
/// item of the one before, closed again.
fn nested_sequences(levels: usize, series_uid: &str) -> Vec<u8> {
    let mut b = Vec::new();
    let uid = |s: &str| {
        let mut v = s.as_bytes().to_vec();
        if v.len() % 2 == 1 {
            v.push(0);
        }
        v
    };
    for (el, v) in [
        (0x0016u16, uid("1.2.840.10008.5.1.4.1.1.7")),
        (0x0018, uid("2.25.424242")),
        (0x0060, b"OT".to_vec()),
    ] {
        implicit_el(&mut b, 0x0008, el, v.len() as u32, &v);
    }
    for _ in 0..levels {
        implicit_el(&mut b, 0x0008, 0x1115, u32::MAX, &[]);
        implicit_el(&mut b, 0xFFFE, 0xE000, u32::MAX, &[]);
    }
    for _ in 0..levels {
        implicit_el(&mut b, 0xFFFE, 0xE00D, 0, &[]);
        implicit_el(&mut b, 0xFFFE, 0xE0DD, 0, &[]);
    }
    let s = uid(series_uid);
    implicit_el(&mut b, 0x0020, 0x000E, s.len() as u32, &s);
    dicom_bytes(&b)
}

/// Sequences nested 5000 deep overflowed dicom-object's recursive parser's stack and aborted the
/// process; they are refused by name before parsing (the `max_sequence_depth` limit). 64 levels
/// (the default limit) still parse, on rayon's threads too (a folder scan).
#[test]
fn deep_sequence_nesting_is_refused_before_parsing() {
    use autocontour::dicom::{read_bytes, read_file, read_header};
    let tmp = tempfile::tempdir().unwrap();
    let deep = tmp.path().join("deep.dcm");
    let bytes = nested_sequences(5000, "2.25.1");
    std::fs::write(&deep, &bytes).unwrap();
    for r in [
        read_file(&deep).map(|_| ()),
        read_header(&deep).map(|_| ()),
        read_bytes(Path::new("deep"), &bytes).map(|_| ()),
    ] {
        match r {
            Err(
                e @ Error::LimitExceeded {
                    limit: "max_sequence_depth",
                    value: 65,
                    max: 64,
                    ..
                },
            ) => {
                let text = e.to_string();
                assert!(
                    text.contains("deep") && text.contains("(0008,1115)"),
                    "{text}"
                )
            }
            other => panic!("expected LimitExceeded, got {other:?}"),
        }
    }
    let summary = discover(tmp.path()).unwrap();
    assert!(summary.series.is_empty());
    assert!(
        summary
            .ignored
            .iter()
            .any(|m| m.contains("max_sequence_depth")),
        "{:?}",
        summary.ignored
    );
    // At the limit it parses (64 nested sequences), in a folder scan on rayon's threads.
    let ok = tmp.path().join("ok.dcm");
    std::fs::write(&ok, nested_sequences(64, "2.25.2")).unwrap();
    std::fs::remove_file(&deep).unwrap();
    let summary = discover(tmp.path()).unwrap();
    assert_eq!(summary.series.len(), 1, "{:?}", summary.ignored);
    assert!(read_file(&ok).is_ok());
}

/// The highest `max_sequence_depth` a host may set (`limits::SEQUENCE_DEPTH_CEILING`) is safe:
/// dicom-object's recursive parser reads that many levels on a thread with the default 2 MiB
/// stack (rayon's and `std::thread`'s), with room to spare (twice as deep).
#[test]
fn the_sequence_depth_ceiling_parses_on_a_default_stack() {
    use autocontour::limits::SEQUENCE_DEPTH_CEILING;
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("ceiling.dcm");
    std::fs::write(
        &path,
        nested_sequences(2 * SEQUENCE_DEPTH_CEILING as usize, "2.25.3"),
    )
    .unwrap();
    let parsed = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            dicom_object::OpenFileOptions::new()
                .open_file(&path)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .unwrap()
        .join()
        .expect("the parser thread ended without overflowing its stack");
    parsed.unwrap();
}

/// A real slice whose Pixel Data length claims 0xFFFFFFF0 bytes made the loader reserve ~4 GB
/// before noticing the file is short; it is refused by name first, without the allocation.
#[test]
fn huge_element_length_is_refused_before_allocating() {
    let src = common::require("rider/ct").join("1-001.dcm");
    let mut bytes = std::fs::read(&src).unwrap();
    // Implicit VR little endian: (7FE0,0010), then a 32-bit length.
    let at = bytes
        .windows(4)
        .rposition(|w| w == [0xE0, 0x7F, 0x10, 0x00])
        .unwrap();
    bytes[at + 4..at + 8].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.dcm");
    std::fs::write(&bad, &bytes).unwrap();
    let t = std::time::Instant::now();
    for r in [
        autocontour::dicom::read_file(&bad).map(|_| ()),
        autocontour::dicom::read_header(&bad).map(|_| ()),
        autocontour::dicom::read_bytes(&bad, &bytes).map(|_| ()),
        load_series_files(std::slice::from_ref(&bad), &LoadOptions::default()).map(|_| ()),
    ] {
        match r {
            Err(e @ Error::NotDicom { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("bad.dcm"), "{msg}");
                assert!(
                    msg.contains(&format!(
                        "element (7FE0,0010) at byte {at} declares 4294967280 bytes but only {} remain",
                        bytes.len() - at - 8
                    )),
                    "{msg}"
                );
            }
            other => panic!("expected NotDicom, got {other:?}"),
        }
    }
    assert!(t.elapsed().as_secs_f64() < 2.0, "{:?}", t.elapsed());
}

fn truncate(path: &Path, len: usize) {
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..len]).unwrap();
}

fn unreadable(r: autocontour::Result<autocontour::dicom::CtSeries>) -> Vec<PathBuf> {
    match r {
        Err(e @ Error::UnreadableFiles { .. }) => {
            let msg = e.to_string();
            let Error::UnreadableFiles { files, .. } = e else {
                unreachable!()
            };
            for (p, _) in &files {
                assert!(msg.contains(&p.display().to_string()), "{msg}");
            }
            files.into_iter().map(|(p, _)| p).collect()
        }
        other => panic!("expected UnreadableFiles, got {:?}", other.err()),
    }
}

/// A truncated slice at the end of the stack was skipped and a shorter volume loaded; one inside
/// the stack was refused blaming its neighbour (a gap). Both are refused naming the file itself,
/// whether the cut falls in the pixel data or in the header.
#[test]
fn truncated_slices_are_refused_by_name() {
    for (k, cut) in [(9, 1000), (9, 200), (0, 1000), (4, 1000), (4, 150)] {
        let s = phantom(Orientation::AxialHfs);
        // Which file is slice k along the normal (the phantom writes them in order).
        let f = s.files[k].clone();
        truncate(&f, cut);
        assert_eq!(
            unreadable(load(&s.dir)),
            vec![f.clone()],
            "slice {k} cut at {cut}"
        );
        // With the series asked for by UID too.
        let uid = discover(&s.dir).unwrap().series[0].uid.clone();
        assert_eq!(
            unreadable(load_series(&s.dir, Some(&uid), &LoadOptions::default())),
            vec![f]
        );
    }
}

/// An unreadable DICOM file of another series (its Series Instance UID readable) is only
/// logged; one of the same series is refused; a non-DICOM file is ignored as before.
#[test]
fn unreadable_files_of_other_series_are_ignored() {
    let s = phantom(Orientation::AxialHfs);
    let uid = discover(&s.dir).unwrap().series[0].uid.clone();
    // A slice of another series, truncated in its pixel data (its header, with the Series
    // Instance UID, is intact).
    let other = s.dir.join("other.dcm");
    std::fs::copy(&s.files[0], &other).unwrap();
    alter(&other, |o| {
        put(o, tags::SERIES_INSTANCE_UID, VR::UI, "2.25.999".into());
        put(o, tags::SOP_INSTANCE_UID, VR::UI, "2.25.998".into());
    });
    let n = std::fs::metadata(&other).unwrap().len() as usize;
    truncate(&other, n - 100);
    std::fs::write(s.dir.join("notes.txt"), b"not DICOM at all").unwrap();
    let ct = load(&s.dir).unwrap();
    assert_eq!(ct.slices.len(), 10);
    // Deep nesting stops the walk before the Series Instance UID: it may be this series'.
    let deep = s.dir.join("deep.dcm");
    std::fs::write(&deep, nested_sequences(5000, &uid)).unwrap();
    assert_eq!(unreadable(load(&s.dir)), vec![deep.clone()]);
    std::fs::remove_file(&deep).unwrap();
    // The same truncated slice of this series is refused.
    alter(&s.files[0], |o| {
        put(o, tags::SOP_INSTANCE_UID, VR::UI, "2.25.997".into());
    });
    let same = s.dir.join("same.dcm");
    std::fs::copy(&s.files[0], &same).unwrap();
    truncate(&same, n - 100);
    std::fs::remove_file(&s.files[0]).unwrap();
    assert_eq!(unreadable(load(&s.dir)), vec![same]);
}

/// A file whose name is not UTF-8 was skipped silently (and the gap blamed on a neighbour).
#[test]
fn non_utf8_file_names_are_read() {
    use std::os::unix::ffi::OsStrExt;
    let s = phantom(Orientation::AxialHfs);
    let odd = s
        .dir
        .join(std::ffi::OsStr::from_bytes(b"slice-\xff\xfe.dcm"));
    std::fs::rename(&s.files[4], &odd).unwrap();
    let ct = load(&s.dir).unwrap();
    assert_eq!(ct.slices.len(), 10);
    assert!(ct.slices.iter().any(|r| r.path == odd));
    assert_eq!(discover(&s.dir).unwrap().series[0].slices, 10);
}

/// Inputs the fuzz targets (`fuzz/`) found, kept as regressions. A 2 KB file whose file meta
/// group, by its group length, holds a non-group-0002 element: dicom-object reads the meta group
/// by that length, the pre-scan stopped at the foreign element and walked the data set out of
/// step, so an element claiming 1.2 GB further on reached the parser, which reserved it.
/// A 4 KB JPEG file whose Pixel Representation says UL with length 2: the parser read no value
/// and went on 2 bytes out of step, into an element claiming 825 MB.
#[test]
fn fuzz_regressions_are_refused_without_allocating() {
    for (file, says) in [
        ("meta-group-length-oom.dcm", "bytes"),
        ("odd-binary-length-oom.dcm", "not a multiple of 4"),
        // the group length element with VR DT instead of UL (dicom-object accepts any VR)
        ("meta-group-length-vr-oom.dcm", "bytes"),
        // a Transfer Syntax UID of 148 bytes, the UID then NUL padding: dicom-object trims it
        // and reads the data set, so the pre-scan must too (1.3 GB before)
        ("padded-transfer-syntax-oom.dcm", "bytes"),
        // no meta, implicit VR: (FFFE,0000) is a group length (UL) of length 1, which
        // dicom-parser reads as no value and then walks on out of step (4 GB before)
        ("group-fffe-length-oom.dcm", "not a multiple of 4"),
        // file meta group: (FFFE,00FF), which dicom-object's header decoder reads as an item
        // (a 4-byte length, no VR); read as VR + length the walk fell out of step and let a
        // 4 GB Transfer Syntax UID through (4.3 GB before)
        ("meta-group-fffe-length-oom.dcm", "declares"),
    ] {
        let path = common::root().join("tests/fixtures/fuzz").join(file);
        let bytes = std::fs::read(&path).unwrap();
        let e = autocontour::dicom::read_bytes(&path, &bytes)
            .err()
            .expect("a named refusal");
        let msg = e.to_string();
        assert!(
            matches!(e, autocontour::Error::NotDicom { .. }) && msg.contains(says),
            "{file}: {msg}"
        );
        assert!(autocontour::dicom::read_file(&path).is_err(), "{file}");
    }
}
