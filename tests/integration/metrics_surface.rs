//! Surface metrics against DeepMind's `surface-distance` (PyPI) on fixed synthetic masks with
//! anisotropic spacing: Dice, Hausdorff, HD95, mean distances, ASSD and surface Dice agree to
//! 1e-6 relative, surface point counts and areas too. The reference runs in
//! `tests/python/metrics_reference.py` under target/pyenv (tests/run-all.sh installs it).

use autocontour_test_support::reference as metrics_common;

use std::path::{Path, PathBuf};

use autocontour::metrics::{compare_masks, surface_distances};
use autocontour::volume::Geometry;
use metrics_common::{close, reference};

struct Case {
    name: &'static str,
    size: [usize; 3],
    spacing: [f64; 3],
    tolerance_mm: f64,
    reference: Vec<u8>,
    test: Vec<u8>,
}

fn grid(size: [usize; 3], f: impl Fn(f64, f64, f64) -> bool) -> Vec<u8> {
    let [ni, nj, nk] = size;
    let mut m = Vec::with_capacity(ni * nj * nk);
    for k in 0..nk {
        for j in 0..nj {
            for i in 0..ni {
                m.push(u8::from(f(i as f64, j as f64, k as f64)));
            }
        }
    }
    m
}

fn noise(size: [usize; 3], seed: u64, permille: u64, lo: [usize; 3], hi: [usize; 3]) -> Vec<u8> {
    let mut r = autocontour_test_support::XorShift::new(seed);
    let [ni, nj, nk] = size;
    let mut m = vec![0u8; ni * nj * nk];
    for k in lo[2]..hi[2] {
        for j in lo[1]..hi[1] {
            for i in lo[0]..hi[0] {
                m[(k * nj + j) * ni + i] = u8::from(r.below(1000) < permille);
            }
        }
    }
    m
}

fn cases() -> Vec<Case> {
    let s1 = [40, 36, 22];
    let ell = |c: [f64; 3], r: [f64; 3]| {
        move |i: f64, j: f64, k: f64| {
            ((i - c[0]) / r[0]).powi(2) + ((j - c[1]) / r[1]).powi(2) + ((k - c[2]) / r[2]).powi(2)
                <= 1.0
        }
    };
    let s2 = [30, 28, 16];
    let hollow_box = |lo: [f64; 3], hi: [f64; 3]| {
        move |i: f64, j: f64, k: f64| {
            let inside =
                i >= lo[0] && i < hi[0] && j >= lo[1] && j < hi[1] && k >= lo[2] && k < hi[2];
            let hole = i >= lo[0] + 3.0
                && i < hi[0] - 3.0
                && j >= lo[1] + 3.0
                && j < hi[1] - 3.0
                && k >= lo[2] + 2.0
                && k < hi[2] - 2.0;
            inside && !hole
        }
    };
    let s3 = [24, 20, 12];
    vec![
        Case {
            name: "ellipsoids",
            size: s1,
            spacing: [0.9, 0.7, 2.5],
            tolerance_mm: 1.0,
            reference: grid(s1, ell([19.0, 17.0, 10.0], [12.0, 9.0, 6.0])),
            test: grid(s1, ell([21.5, 16.0, 11.0], [10.0, 11.0, 5.0])),
        },
        Case {
            name: "hollow boxes",
            size: s2,
            spacing: [0.576172, 0.576172, 1.25],
            tolerance_mm: 2.0,
            reference: grid(s2, hollow_box([4.0, 5.0, 3.0], [22.0, 20.0, 12.0])),
            test: grid(s2, hollow_box([6.0, 4.0, 2.0], [25.0, 21.0, 13.0])),
        },
        Case {
            name: "random noise",
            size: s3,
            spacing: [1.1, 0.8, 3.0],
            tolerance_mm: 1.5,
            reference: noise(s3, 17, 300, [2, 3, 1], [20, 18, 10]),
            test: noise(s3, 99, 200, [4, 1, 2], [22, 16, 11]),
        },
        Case {
            name: "touching the grid border",
            size: s3,
            spacing: [0.5, 0.5, 2.0],
            tolerance_mm: 1.0,
            reference: grid(s3, |i, j, k| i < 8.0 && j < 9.0 && k < 5.0),
            test: grid(s3, |i, j, k| {
                i > 3.0 && j > 2.0 && k > 1.0 && (i + j) < 30.0
            }),
        },
        Case {
            name: "single slice against a far blob",
            size: s3,
            spacing: [0.8, 0.8, 2.5],
            tolerance_mm: 3.0,
            reference: grid(s3, |i, j, k| {
                k == 4.0 && (4.0..15.0).contains(&i) && j > 6.0
            }),
            test: grid(s3, |i, j, k| {
                (i - 18.0).powi(2) + (j - 5.0).powi(2) + (k - 9.0).powi(2) < 9.0
            }),
        },
        Case {
            name: "empty reference",
            size: s3,
            spacing: [1.0, 1.0, 2.0],
            tolerance_mm: 1.0,
            reference: vec![0; s3.iter().product()],
            test: grid(s3, |i, j, k| {
                i > 5.0 && i < 9.0 && j > 5.0 && j < 8.0 && k > 3.0 && k < 6.0
            }),
        },
    ]
}

fn write_cases(dir: &Path, cases: &[Case]) -> PathBuf {
    let mut spec = Vec::new();
    for (n, c) in cases.iter().enumerate() {
        let r = format!("case{n}_ref.u8");
        let t = format!("case{n}_test.u8");
        std::fs::write(dir.join(&r), &c.reference).unwrap();
        std::fs::write(dir.join(&t), &c.test).unwrap();
        spec.push(serde_json::json!({
            "name": c.name,
            "shape": [c.size[2], c.size[1], c.size[0]],
            "spacing": [c.spacing[2], c.spacing[1], c.spacing[0]],
            "tolerance_mm": c.tolerance_mm,
            "reference": r,
            "test": t,
        }));
    }
    let p = dir.join("cases.json");
    std::fs::write(&p, serde_json::json!({ "cases": spec }).to_string()).unwrap();
    p
}

#[test]
fn synthetic_masks_match_deepmind_surface_distance() {
    let cases = cases();
    let dir = tempfile::tempdir().unwrap();
    let spec = write_cases(dir.path(), &cases);
    let refs = reference(&["masks".as_ref(), spec.as_os_str()]);
    let refs = refs.as_array().unwrap();
    assert_eq!(refs.len(), cases.len());
    for (c, r) in cases.iter().zip(refs) {
        let id = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        let g = Geometry::new(c.size, [0.0; 3], c.spacing, id).unwrap();
        let m = compare_masks(&c.reference, &c.test, &g, c.tolerance_mm).unwrap();
        let s = surface_distances(&c.reference, &c.test, c.size, c.spacing).unwrap();
        let name = c.name;
        assert_eq!(
            s.reference_to_test.len() as u64,
            r["reference_surface_points"].as_u64().unwrap(),
            "{name}: reference surface points"
        );
        assert_eq!(
            s.test_to_reference.len() as u64,
            r["test_surface_points"].as_u64().unwrap(),
            "{name}: test surface points"
        );
        let area = |v: &[autocontour::metrics::SurfacePoint]| v.iter().map(|p| p.area_mm2).sum();
        if !s.reference_to_test.is_empty() {
            close(
                &format!("{name}: reference area"),
                area(&s.reference_to_test),
                &r["reference_area_mm2"],
            );
        }
        close(
            &format!("{name}: test area"),
            area(&s.test_to_reference),
            &r["test_area_mm2"],
        );
        close(&format!("{name}: dice"), m.dice, &r["dice"]);
        close(
            &format!("{name}: hausdorff"),
            m.hausdorff_mm,
            &r["hausdorff_mm"],
        );
        close(&format!("{name}: hd95"), m.hd95_mm, &r["hd95_mm"]);
        close(
            &format!("{name}: surface dice"),
            m.surface_dice,
            &r["surface_dice"],
        );
        close(&format!("{name}: assd"), m.assd_mm, &r["assd_mm"]);
        close(
            &format!("{name}: mean test→ref"),
            m.mean_distance_test_to_reference_mm,
            &r["mean_test_to_reference_mm"],
        );
        if r["mean_reference_to_test_mm"] == "nan" {
            // DeepMind divides 0 by 0 for an empty reference; we document INFINITY.
            assert!(
                s.reference_to_test.is_empty()
                    && m.mean_distance_reference_to_test_mm.is_infinite()
            );
        } else {
            close(
                &format!("{name}: mean ref→test"),
                m.mean_distance_reference_to_test_mm,
                &r["mean_reference_to_test_mm"],
            );
            close(
                &format!("{name}: max distance"),
                m.hausdorff_mm,
                &r["max_distance_mm"],
            );
        }
        assert_eq!(
            (m.reference_volume_mm3 / c.spacing.iter().product::<f64>()).round() as u64,
            r["reference_voxels"].as_u64().unwrap()
        );
    }
}
