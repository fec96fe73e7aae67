//! Breaking real DICOM files on purpose: the edits the named-error corpora (the CLI's
//! `cli/tests/cli/bad_inputs.rs` and the C API's `capi/abi-tests/tests/ffi.rs`) make to copies of
//! a CT series or an RT Structure Set, in one place so that both corpora break files the same way.

use std::path::{Path, PathBuf};

use dicom_core::value::{DataSetSequence, PrimitiveValue};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{InMemDicomObject, open_file};

/// Rewrites a DICOM file with `edit` applied to its data set (file meta kept).
pub fn edit(path: &Path, edit: impl FnOnce(&mut InMemDicomObject)) {
    let mut obj = open_file(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    edit(&mut obj);
    obj.write_to_file(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Puts a text element.
pub fn put_str(o: &mut InMemDicomObject, tag: Tag, vr: VR, v: &str) {
    o.put(DataElement::new(tag, vr, v));
}

/// Puts a US element.
pub fn put_us(o: &mut InMemDicomObject, tag: Tag, v: u16) {
    o.put(DataElement::new(tag, VR::US, PrimitiveValue::from(v)));
}

/// A text element's value as the file holds it.
fn text(path: &Path, tag: Tag) -> String {
    let o = open_file(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    o.element(tag)
        .map_err(|e| e.to_string())
        .and_then(|e| e.to_str().map(|s| s.to_string()).map_err(|e| e.to_string()))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Gives `slice` the Image Position (Patient) of `from`: two slices at one position.
pub fn duplicate_position(from: &Path, slice: &Path) {
    let pos = text(from, tags::IMAGE_POSITION_PATIENT);
    edit(slice, |o| {
        put_str(o, tags::IMAGE_POSITION_PATIENT, VR::DS, &pos)
    });
}

/// Shifts slice k of `slices` by `k × mm` along the rows (y): a sheared stack, as a gantry tilt
/// gives.
pub fn shear(slices: &[PathBuf], mm: f64) {
    for (k, p) in slices.iter().enumerate() {
        edit(p, |o| {
            let pos = o
                .element(tags::IMAGE_POSITION_PATIENT)
                .map_err(|e| e.to_string())
                .and_then(|e| e.to_multi_float64().map_err(|e| e.to_string()))
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let v = format!("{}\\{}\\{}", pos[0], pos[1] + mm * k as f64, pos[2]);
            put_str(o, tags::IMAGE_POSITION_PATIENT, VR::DS, &v);
        });
    }
}

/// Flips the Pixel Representation (0 ↔ 1) of one slice.
pub fn flip_pixel_representation(slice: &Path) {
    let pr: u16 = text(slice, tags::PIXEL_REPRESENTATION)
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", slice.display()));
    edit(slice, |o| put_us(o, tags::PIXEL_REPRESENTATION, 1 - pr));
}

/// Adds a Referenced Image Sequence whose items nest `depth` sequences deep.
pub fn nest_sequences(slice: &Path, depth: usize) {
    edit(slice, |o| {
        let mut inner = InMemDicomObject::new_empty();
        for _ in 1..depth {
            let mut item = InMemDicomObject::new_empty();
            item.put(DataElement::new(
                tags::REFERENCED_IMAGE_SEQUENCE,
                VR::SQ,
                DataSetSequence::from(vec![inner]),
            ));
            inner = item;
        }
        o.put(DataElement::new(
            tags::REFERENCED_IMAGE_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(vec![inner]),
        ));
    });
}

/// Appends to an RT Structure Set's Structure Set ROI Sequence a copy of its first item named
/// `Copy`: two ROIs with one ROI Number.
pub fn duplicate_roi_number(rtstruct: &Path) {
    edit(rtstruct, |o| {
        let mut items = o
            .element(tags::STRUCTURE_SET_ROI_SEQUENCE)
            .ok()
            .and_then(|e| e.items())
            .map(<[InMemDicomObject]>::to_vec)
            .unwrap_or_default();
        let mut copy = items
            .first()
            .cloned()
            .expect("a StructureSetROISequence item to copy");
        put_str(&mut copy, tags::ROI_NAME, VR::LO, "Copy");
        items.push(copy);
        o.put(DataElement::new(
            tags::STRUCTURE_SET_ROI_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(items),
        ));
    });
}
