//! Phantom CT series in every orientation the loader accepts (axial HFS/FFS, negated row or
//! column cosines, coronal, sagittal): label map → contours → RTSTRUCT file → our reader →
//! mask, and the contours in the file put each analytic landmark of the phantom inside the
//! right structure (so nothing is flipped or on the wrong side).

use autocontour::contour::ContourOptions;
use autocontour::dicom::{LoadOptions, load_series};
use autocontour::rtstruct::{
    OutputInfo, RasterOptions, RoiSpec, RtStructRoi, rasterise_roi, read_rtstruct,
    rois_from_labels, write_rtstruct,
};
use autocontour::volume::{cross, dot};
use autocontour_test_support::phantom::{
    Orientation, Phantom, PhantomSpec, PhantomSyntax, STRUCTURES,
};

/// Even-odd test of a patient point against an ROI's contours lying within `half` mm of it
/// along their own plane normal (Newell's method), using only the file's coordinates.
fn inside(roi: &RtStructRoi, p: [f64; 3], half: f64) -> bool {
    let mut c = false;
    for con in &roi.contours {
        let pts = &con.points;
        let mut n = [0.0; 3];
        for a in 0..pts.len() {
            let (u, v) = (pts[a], pts[(a + 1) % pts.len()]);
            n[0] += (u[1] - v[1]) * (u[2] + v[2]);
            n[1] += (u[2] - v[2]) * (u[0] + v[0]);
            n[2] += (u[0] - v[0]) * (u[1] + v[1]);
        }
        let len = dot(n, n).sqrt();
        let n = [n[0] / len, n[1] / len, n[2] / len];
        let d = [p[0] - pts[0][0], p[1] - pts[0][1], p[2] - pts[0][2]];
        if dot(n, d).abs() >= half {
            continue;
        }
        // In-plane basis.
        let helper = if n[0].abs() < 0.9 {
            [1.0, 0.0, 0.0]
        } else {
            [0.0, 1.0, 0.0]
        };
        let u = cross(n, helper);
        let ul = dot(u, u).sqrt();
        let u = [u[0] / ul, u[1] / ul, u[2] / ul];
        let v = cross(n, u);
        let proj = |q: [f64; 3]| [dot(u, q), dot(v, q)];
        let (x, y) = {
            let q = proj(p);
            (q[0], q[1])
        };
        let poly: Vec<[f64; 2]> = pts.iter().map(|&q| proj(q)).collect();
        for a in 0..poly.len() {
            let (p1, p2) = (poly[a], poly[(a + 1) % poly.len()]);
            if (p1[1] > y) != (p2[1] > y) {
                let xi = p1[0] + (y - p1[1]) / (p2[1] - p1[1]) * (p2[0] - p1[0]);
                if x < xi {
                    c = !c;
                }
            }
        }
    }
    c
}

#[test]
fn every_orientation_round_trips_on_the_right_side() {
    for orientation in Orientation::ALL {
        let phantom = Phantom::new(PhantomSpec {
            orientation,
            // Odd sizes put the centre on a voxel; 5 mm slices put every landmark within 2 mm of
            // exactly one slice plane.
            size: [49, 41, 31],
            spacing: [5.0, 5.5, 5.0],
            center: [10.0, -20.0, 30.0],
            seed: Some("contour-orientations".into()),
        })
        .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let ct_dir = tmp.path().join("ct");
        phantom
            .write_series(&ct_dir, PhantomSyntax::ImplicitLittle)
            .unwrap();
        let ct = load_series(&ct_dir, None, &LoadOptions::default()).unwrap();
        let g = *ct.volume.geometry();
        assert_eq!(g.size, phantom.geometry().size, "{orientation:?}");
        let labels = autocontour::volume::Volume::new(g, phantom.labels.data().to_vec()).unwrap();
        let specs: Vec<(u8, RoiSpec)> = STRUCTURES
            .iter()
            .filter(|s| s.label != 0)
            .map(|s| {
                (
                    s.label,
                    RoiSpec {
                        number: u32::from(s.label),
                        name: s.name.into(),
                        color: [200, 100, 50],
                        interpreted_type: "ORGAN".into(),
                        code: None,
                    },
                )
            })
            .collect();
        let rois = rois_from_labels(&labels, &specs, &ContourOptions::default()).unwrap();
        let path = tmp.path().join("rs.dcm");
        write_rtstruct(&path, &ct, &rois, &OutputInfo::default()).unwrap();
        let rs = read_rtstruct(&path).unwrap();
        for (label, spec) in &specs {
            let roi = rs.roi(&spec.name).unwrap();
            let back = rasterise_roi(
                roi,
                &g,
                &RasterOptions {
                    slices: Some(&ct.slices),
                },
            )
            .unwrap();
            let truth: Vec<u8> = labels
                .data()
                .iter()
                .map(|&v| u8::from(v == *label))
                .collect();
            let n = truth.iter().filter(|&&v| v == 1).count();
            assert!(n > 0, "{orientation:?} {}: empty", spec.name);
            assert_eq!(back.data(), &truth[..], "{orientation:?} {}", spec.name);
        }
        // Landmarks: inside exactly the structure they belong to.
        let half = g.spacing[2] / 2.0;
        for (label, p) in phantom.landmarks() {
            assert_eq!(phantom.label_at(p), label);
            for (l, spec) in &specs {
                let roi = rs.roi(&spec.name).unwrap();
                assert_eq!(
                    inside(roi, p, half),
                    *l == label,
                    "{orientation:?}: landmark {p:?} of label {label} vs ROI {}",
                    spec.name
                );
            }
        }
    }
}
