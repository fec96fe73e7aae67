//! The RIDER Lung CT (real patient, feet first, identity orientation) loads with exact geometry.

use autocontour_test_support as common;

use autocontour::dicom::{LoadOptions, discover, load_series, load_series_grid};

const CT_UID: &str = "1.3.6.1.4.1.9328.50.1.83304264089411327530730818890072724533";

#[test]
fn discovers_ct_rtstruct_and_seg() {
    let dir = common::require("rider");
    let s = discover(&dir).unwrap();
    assert_eq!(s.series.len(), 3);
    let ct = s.default_series().expect("a usable CT");
    assert_eq!(ct.uid, CT_UID);
    assert_eq!(ct.slices, 236);
    assert_eq!(ct.size, Some([512, 512, 236]));
    let m: Vec<&str> = s.series.iter().map(|x| x.modality.as_str()).collect();
    assert!(m.contains(&"RTSTRUCT") && m.contains(&"SEG"), "{m:?}");
}

#[test]
fn loads_rider_ct_geometry_and_hu() {
    let dir = common::require("rider/ct");
    let s = load_series(&dir, None, &LoadOptions::default()).unwrap();
    let g = s.volume.geometry();
    assert_eq!(g.size, [512, 512, 236]);
    assert!((g.spacing[0] - 0.576172).abs() < 1e-6);
    assert!((g.spacing[1] - 0.576172).abs() < 1e-6);
    assert!((g.spacing[2] - 1.25).abs() < 1e-9);
    // Feet first, yet IOP is the identity: slices sorted along +z from -328.75 to -35.0.
    assert_eq!(g.axis(2), [0.0, 0.0, 1.0]);
    assert!((g.origin[2] - -328.75).abs() < 1e-6);
    let last = g.index_to_patient([0.0, 0.0, 235.0]);
    assert!((last[2] - -35.0).abs() < 1e-6);
    assert_eq!(s.slices.len(), 236);
    for w in s.slices.windows(2) {
        assert!(w[1].position[2] > w[0].position[2]);
    }
    // Rescale intercept -1024 applied: air around the patient reads about -1000 HU or below.
    let corner = s.volume.get(5, 5, 100).unwrap();
    assert!(corner < -900.0, "corner voxel {corner} HU");
    // Integral rescale, every HU within ±32767: held as 16-bit integers (124 MB, not 247).
    assert!(matches!(s.volume, autocontour::volume::HuVolume::I16(_)));
    assert_eq!(s.volume.data_bytes(), 512 * 512 * 236 * 2);
}

#[test]
fn grid_only_load_matches_the_full_load() {
    let dir = common::require("rider/ct");
    let full = load_series(&dir, None, &LoadOptions::default()).unwrap();
    let (grid, s) = load_series_grid(&dir, None, &LoadOptions::default()).unwrap();
    assert_eq!(&grid, full.volume.geometry());
    assert_eq!(s.volume.len(), 1);
    assert_eq!(s.volume.geometry().origin, grid.origin);
    assert_eq!(s.series_uid, full.series_uid);
    assert_eq!(s.frame_of_reference_uid, full.frame_of_reference_uid);
    let uids = |x: &autocontour::dicom::CtSeries| {
        x.slices
            .iter()
            .map(|r| r.sop_instance_uid.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(uids(&s), uids(&full));
}
