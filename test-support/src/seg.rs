//! A small, honest binary DICOM SEG frame reader for tests and benches (not library code: it
//! panics on anything unexpected). Frames go to CT slices by Per-Frame Functional Groups Image
//! Position (Patient) against the CT geometry; bits are packed LSB first, frame after frame.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;

use autocontour::volume::Geometry;
use dicom_dictionary_std::tags;
use dicom_object::{InMemDicomObject, open_file};

fn first_item(obj: &InMemDicomObject, tag: dicom_core::Tag) -> &InMemDicomObject {
    obj.element(tag)
        .unwrap_or_else(|e| panic!("{tag}: {e}"))
        .items()
        .and_then(|i| i.first())
        .unwrap_or_else(|| panic!("{tag}: empty sequence"))
}

/// Binary SEG → one slice-major mask per SegmentDescription on the CT grid.
pub fn read_binary_seg(path: &Path, g: &Geometry) -> HashMap<String, Vec<u8>> {
    let obj = open_file(path).unwrap();
    let int = |t| obj.element(t).unwrap().to_int::<usize>().unwrap();
    assert_eq!(int(tags::BITS_ALLOCATED), 1, "binary SEG expected");
    let (rows, cols, frames) = (
        int(tags::ROWS),
        int(tags::COLUMNS),
        int(tags::NUMBER_OF_FRAMES),
    );
    assert_eq!(
        [cols, rows],
        [g.size[0], g.size[1]],
        "SEG and CT sizes differ"
    );
    let mut names = HashMap::new();
    for s in obj
        .element(tags::SEGMENT_SEQUENCE)
        .unwrap()
        .items()
        .unwrap()
    {
        let n = s
            .element(tags::SEGMENT_NUMBER)
            .unwrap()
            .to_int::<u16>()
            .unwrap();
        let d = s
            .element(tags::SEGMENT_DESCRIPTION)
            .unwrap()
            .to_str()
            .unwrap();
        names.insert(n, d.trim().to_string());
    }
    let bits = obj.element(tags::PIXEL_DATA).unwrap().to_bytes().unwrap();
    let plane = rows * cols;
    assert!(bits.len() * 8 >= frames * plane, "pixel data too short");
    let per_frame = obj
        .element(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
        .unwrap()
        .items()
        .unwrap();
    assert_eq!(per_frame.len(), frames);
    let mut masks: HashMap<String, Vec<u8>> = HashMap::new();
    for (f, fg) in per_frame.iter().enumerate() {
        let num = first_item(fg, tags::SEGMENT_IDENTIFICATION_SEQUENCE)
            .element(tags::REFERENCED_SEGMENT_NUMBER)
            .unwrap()
            .to_int::<u16>()
            .unwrap();
        let ipp = first_item(fg, tags::PLANE_POSITION_SEQUENCE)
            .element(tags::IMAGE_POSITION_PATIENT)
            .unwrap()
            .to_multi_float64()
            .unwrap();
        let idx = g.patient_to_index([ipp[0], ipp[1], ipp[2]]);
        let k = idx[2].round();
        assert!(
            idx[0].abs() < 1e-3 && idx[1].abs() < 1e-3 && (idx[2] - k).abs() < 1e-3,
            "frame {f} at {ipp:?} is not on a CT slice (index {idx:?})"
        );
        let k = k as usize;
        assert!(k < g.size[2], "frame {f} beyond the CT");
        let mask = masks
            .entry(names[&num].clone())
            .or_insert_with(|| vec![0; g.voxel_count()]);
        for p in 0..plane {
            let b = f * plane + p;
            if (bits[b / 8] >> (b % 8)) & 1 == 1 {
                mask[k * plane + p] = 1;
            }
        }
    }
    masks
}
