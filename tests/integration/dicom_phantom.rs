//! The synthetic phantom survives a write → load round trip in every orientation: geometry,
//! HU values, and the structure found at known patient points (left lung at +x, LPS).

use autocontour::dicom::{LoadOptions, load_series};
use autocontour_test_support::phantom::{
    Orientation, Phantom, PhantomSpec, PhantomSyntax, STRUCTURES, hu_of, label_at_offset,
};

fn spec(o: Orientation) -> PhantomSpec {
    PhantomSpec {
        orientation: o,
        // Not a cube, not centred at the origin, anisotropic: mixing up axes shows.
        size: [60, 56, 44],
        spacing: [4.2, 4.6, 4.5],
        center: [12.5, -30.25, 250.0],
        seed: None,
    }
}

/// Loads the written series and checks it against the analytic phantom.
fn round_trip(o: Orientation, syntax: PhantomSyntax) {
    let tmp = tempfile::tempdir().unwrap();
    let ph = Phantom::new(spec(o)).unwrap();
    ph.write_series(&tmp.path().join("ct"), syntax).unwrap();
    ph.write_labels(tmp.path()).unwrap();
    // Load the folder (labels.raw/json are ignored as non-DICOM).
    let s = load_series(tmp.path(), None, &LoadOptions::default()).unwrap();
    let g = *s.volume.geometry();
    let pg = ph.geometry();
    assert_eq!(g.size, pg.size, "{o:?}");
    for a in 0..3 {
        assert!((g.spacing[a] - pg.spacing[a]).abs() < 1e-6, "{o:?} spacing");
        assert!((g.origin[a] - pg.origin[a]).abs() < 1e-6, "{o:?} origin");
        for r in 0..3 {
            assert!((g.direction[r][a] - pg.direction[r][a]).abs() < 1e-9);
        }
    }
    assert_eq!(s.series_uid, ph.uids.series);
    // Slices come out along the normal whatever the Instance Numbers say.
    let n = g.axis(2);
    for w in s.slices.windows(2) {
        let d: f64 = (0..3)
            .map(|r| (w[1].position[r] - w[0].position[r]) * n[r])
            .sum();
        assert!(d > 0.0);
    }
    // Every voxel: HU as written.
    for (a, b) in s.volume.to_f32().data().iter().zip(ph.hu.data()) {
        assert_eq!(*a, f32::from(*b), "{o:?}");
    }
    // Every voxel, independently of the writer's indexing: the analytic structure at the
    // voxel centre computed from the *loaded* geometry. Voxel centres within 1e-4 mm of a
    // boundary are ambiguous and skipped.
    let c = ph.spec.center;
    let [ni, nj, nk] = g.size;
    let mut checked = 0usize;
    for k in 0..nk {
        for j in 0..nj {
            for i in 0..ni {
                let p = g.index_to_patient([i as f64, j as f64, k as f64]);
                let d = [p[0] - c[0], p[1] - c[1], p[2] - c[2]];
                let l = label_at_offset(d);
                let ambiguous = [[1e-4, 1e-4, 1e-4], [-1e-4, -1e-4, -1e-4]]
                    .iter()
                    .any(|e| label_at_offset([d[0] + e[0], d[1] + e[1], d[2] + e[2]]) != l);
                if ambiguous {
                    continue;
                }
                let hu = s.volume.get(i, j, k).unwrap();
                assert_eq!(
                    hu,
                    f32::from(hu_of(l)),
                    "{o:?} voxel ({i},{j},{k}) at {p:?}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > ni * nj * nk * 9 / 10);
    // Known patient points: the nearest voxel holds the known structure.
    for (label, p) in ph.landmarks() {
        let idx = g.patient_to_index(p).map(|x| x.round() as usize);
        let hu = s.volume.get(idx[0], idx[1], idx[2]).unwrap();
        let name = STRUCTURES[label as usize].name;
        assert_eq!(hu, f32::from(hu_of(label)), "{o:?}: {name} at {p:?}");
    }
    // The patient's left lung is at larger x (LPS) than the right one in every orientation.
    let left = g.patient_to_index([c[0] + 40.0, c[1] - 5.0, c[2] + 15.0]);
    let lv = s
        .volume
        .get(
            left[0].round() as usize,
            left[1].round() as usize,
            left[2].round() as usize,
        )
        .unwrap();
    assert_eq!(lv, -800.0, "{o:?}: left lung not at +x");
    // The label file matches the phantom.
    let raw = std::fs::read(tmp.path().join("labels.raw")).unwrap();
    assert_eq!(raw, ph.labels.data());
}

#[test]
fn axial_hfs_round_trips() {
    round_trip(Orientation::AxialHfs, PhantomSyntax::ImplicitLittle);
}

#[test]
fn axial_ffs_round_trips() {
    round_trip(Orientation::AxialFfs, PhantomSyntax::ImplicitLittle);
}

#[test]
fn negated_row_round_trips() {
    round_trip(Orientation::NegatedRow, PhantomSyntax::ImplicitLittle);
}

#[test]
fn negated_col_round_trips() {
    round_trip(Orientation::NegatedCol, PhantomSyntax::ImplicitLittle);
}

#[test]
fn coronal_round_trips() {
    round_trip(Orientation::Coronal, PhantomSyntax::ImplicitLittle);
}

#[test]
fn sagittal_round_trips() {
    round_trip(Orientation::Sagittal, PhantomSyntax::ImplicitLittle);
}

#[test]
fn explicit_little_endian_round_trips() {
    round_trip(Orientation::Coronal, PhantomSyntax::ExplicitLittle);
}

#[test]
fn explicit_big_endian_round_trips() {
    round_trip(Orientation::NegatedCol, PhantomSyntax::ExplicitBig);
}

#[test]
fn deflated_round_trips() {
    round_trip(Orientation::Sagittal, PhantomSyntax::Deflated);
}

#[test]
fn ffs_instance_numbers_run_against_the_normal() {
    let ph = Phantom::new(spec(Orientation::AxialFfs)).unwrap();
    let nk = ph.geometry().size[2];
    assert_eq!(ph.instance_number(0), nk);
    assert_eq!(ph.instance_number(nk - 1), 1);
    // Identity IOP: k runs along +z (towards the head) although the patient is feet first.
    assert_eq!(ph.geometry().axis(2), [0.0, 0.0, 1.0]);
}

/// How the loader stores HU: `i16` for an integral rescale whose values all fit, `f32` when one
/// slice has a fractional slope or one voxel's HU is beyond ±32767, with the same HU either way
/// (the other slices' values unchanged, the altered ones as the rescale gives them).
#[test]
fn hu_storage_follows_the_rescale_and_the_range() {
    use autocontour::volume::HuVolume;
    use dicom_core::value::PrimitiveValue;
    use dicom_core::{DataElement, VR};
    use dicom_dictionary_std::tags;

    for syntax in [PhantomSyntax::ImplicitLittle, PhantomSyntax::ExplicitBig] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ct");
        let ph = Phantom::new(PhantomSpec {
            size: [20, 16, 6],
            ..spec(Orientation::AxialHfs)
        })
        .unwrap();
        let files = ph.write_series(&dir, syntax).unwrap();
        let load = || load_series(&dir, None, &LoadOptions::default()).unwrap();
        let base = load();
        assert!(matches!(base.volume, HuVolume::I16(_)), "{syntax:?}");
        let base_hu = base.volume.to_f32();
        let [ni, nj, _] = base_hu.geometry().size;
        let plane = ni * nj;
        // The file of volume slice k.
        let k = 2;
        let name = format!("CT{:05}.dcm", ph.instance_number(k));
        let path = files
            .iter()
            .find(|p| p.file_name().unwrap().to_string_lossy() == name)
            .unwrap()
            .clone();
        let original = std::fs::read(&path).unwrap();
        let stored = |obj: &dicom_object::FileDicomObject<dicom_object::InMemDicomObject>| {
            obj.element(tags::PIXEL_DATA)
                .unwrap()
                .to_multi_int::<u16>()
                .unwrap()
        };

        // 1. A fractional slope on one slice: f32, that slice rescaled by it.
        let mut obj = dicom_object::open_file(&path).unwrap();
        let raw = stored(&obj);
        obj.put(DataElement::new(
            tags::RESCALE_SLOPE,
            VR::DS,
            PrimitiveValue::from("0.5"),
        ));
        obj.write_to_file(&path).unwrap();
        let s = load();
        assert!(matches!(s.volume, HuVolume::F32(_)), "{syntax:?}");
        let hu = s.volume.to_f32();
        for (n, (&got, &was)) in hu.data().iter().zip(base_hu.data()).enumerate() {
            let want = if n / plane == k {
                (f64::from(raw[n % plane]) * 0.5 - 1024.0) as f32
            } else {
                was
            };
            assert_eq!(got, want, "{syntax:?} voxel {n}");
        }

        // 2. An integral rescale but one voxel at 64511 HU (stored 65535): f32, exact.
        std::fs::write(&path, &original).unwrap();
        let mut obj = dicom_object::open_file(&path).unwrap();
        let mut px = stored(&obj);
        px[5] = u16::MAX;
        obj.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::U16(px.into()),
        ));
        obj.write_to_file(&path).unwrap();
        let s = load();
        assert!(matches!(s.volume, HuVolume::F32(_)), "{syntax:?}");
        let hu = s.volume.to_f32();
        for (n, (&got, &was)) in hu.data().iter().zip(base_hu.data()).enumerate() {
            let want = if n == k * plane + 5 { 64511.0 } else { was };
            assert_eq!(got, want, "{syntax:?} voxel {n}");
        }

        // 3. Back to the written file: i16 again, the same values.
        std::fs::write(&path, &original).unwrap();
        let s = load();
        assert!(matches!(s.volume, HuVolume::I16(_)));
        assert_eq!(s.volume.to_f32(), base_hu);
    }
}
