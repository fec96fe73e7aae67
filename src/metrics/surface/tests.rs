//! Surface distances against a brute force straight from the definitions, and the documented
//! values of empty masks.

use super::directed::LOCAL_BUDGET;
use super::scan::{BBox, Cropped, surfel_area_table};
use super::summary::{SurfaceDistances, SurfacePoint, surface_distances, surface_distances_with};

/// Brute force on the full (uncropped) corner grid, straight from the definitions.
fn brute(a: &[u8], b: &[u8], size: [usize; 3], sp: [f64; 3]) -> SurfaceDistances {
    let [ni, nj, nk] = size;
    let full = BBox {
        lo: [0, 0, 0],
        hi: [nk, nj, ni],
    };
    let ca = Cropped::new(a, size, full);
    let cb = Cropped::new(b, size, full);
    let areas = surfel_area_table(sp);
    let pts = |c: &Cropped<'_>| {
        let mut v = Vec::new();
        for z in 0..=nk {
            for y in 0..=nj {
                for x in 0..=ni {
                    let code = c.code(z, y, x);
                    if code != 0 && code != 255 {
                        v.push(([z, y, x], areas[usize::from(code)]));
                    }
                }
            }
        }
        v
    };
    let (pa, pb) = (pts(&ca), pts(&cb));
    let dist = |from: &[([usize; 3], f64)], to: &[([usize; 3], f64)]| {
        let mut out: Vec<SurfacePoint> = from
            .iter()
            .map(|(p, area)| {
                let d = to
                    .iter()
                    .map(|(q, _)| {
                        let dz = (p[0] as f64 - q[0] as f64) * sp[2];
                        let dy = (p[1] as f64 - q[1] as f64) * sp[1];
                        let dx = (p[2] as f64 - q[2] as f64) * sp[0];
                        (dz * dz + dy * dy + dx * dx).sqrt()
                    })
                    .fold(f64::INFINITY, f64::min);
                SurfacePoint {
                    distance_mm: d,
                    area_mm2: *area,
                }
            })
            .collect();
        out.sort_by(|a, b| {
            a.distance_mm
                .total_cmp(&b.distance_mm)
                .then(a.area_mm2.total_cmp(&b.area_mm2))
        });
        out
    };
    SurfaceDistances {
        reference_to_test: dist(&pa, &pb),
        test_to_reference: dist(&pb, &pa),
    }
}

fn ball(size: [usize; 3], c: [f64; 3], r: f64) -> Vec<u8> {
    let [ni, nj, nk] = size;
    let mut m = vec![0u8; ni * nj * nk];
    for k in 0..nk {
        for j in 0..nj {
            for i in 0..ni {
                let d = [i as f64 - c[0], j as f64 - c[1], (k as f64 - c[2]) * 2.0];
                if d[0] * d[0] + d[1] * d[1] + d[2] * d[2] <= r * r {
                    m[(k * nj + j) * ni + i] = 1;
                }
            }
        }
    }
    m
}

#[test]
fn cropped_lean_transform_equals_brute_force() {
    let size = [14, 12, 9];
    let sp = [0.6, 0.8, 1.5];
    let a = ball(size, [6.0, 5.0, 4.0], 4.2);
    let mut b = ball(size, [7.5, 6.0, 4.5], 3.6);
    b[(8 * 12 + 11) * 14 + 13] = 1; // an outlier at the far corner of the grid
    // Every point through the full passes (0), local search alone (MAX), and mixtures.
    assert_equals_brute_force(
        &a,
        &b,
        size,
        sp,
        &[0, 30, 200, 1000, LOCAL_BUDGET, usize::MAX],
        3.0,
    );
}

/// Far points: slices wider than the single-value rings, so the block search (and, with
/// small budgets, the fallback passes) settles most distances. Compared with brute force.
#[test]
fn block_search_and_fallback_equal_brute_force() {
    let size = [46, 38, 6];
    let sp = [0.57, 0.83, 1.9];
    let a = ball(size, [14.0, 15.0, 2.5], 9.0);
    let mut b = ball(size, [16.0, 17.0, 2.0], 7.5);
    // Specks of `b` far from `a` in every direction, and a bar along the far edge.
    for (i, j, k) in [(44, 2, 0), (40, 35, 5), (2, 36, 3), (30, 5, 1), (45, 20, 4)] {
        b[(k * 38 + j) * 46 + i] = 1;
    }
    for i in 20..46 {
        b[(3 * 38 + 37) * 46 + i] = 1;
    }
    assert_equals_brute_force(
        &a,
        &b,
        size,
        sp,
        &[0, 500, 5000, LOCAL_BUDGET, usize::MAX],
        15.0,
    );
}

/// Rows wider than one 64-bit word of the packed masks: shapes and specks across the word
/// boundaries (corners 63/64 and 127/128) and at the last column. Compared with brute force.
#[test]
fn rows_across_packed_words_equal_brute_force() {
    let size = [131, 9, 5];
    let sp = [0.58, 0.7, 1.3];
    let mut a = ball(size, [64.0, 4.0, 2.0], 3.5);
    let mut b = ball(size, [62.5, 4.5, 2.0], 3.0);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for (i, v) in a.iter_mut().chain(b.iter_mut()).enumerate() {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let x = i % size[0];
        let near_boundary = [62, 63, 64, 65, 126, 127, 128, 130].contains(&x);
        if (seed >> 40).is_multiple_of(if near_boundary { 3 } else { 40 }) {
            *v = 1;
        }
    }
    assert_equals_brute_force(&a, &b, size, sp, &[0, 500, LOCAL_BUDGET, usize::MAX], 0.5);
}

/// A crop of more than 254 slices takes 2-byte slice-axis counts: blobs near both ends of 300
/// slices, so some distances span more than 255 slices. Compared with brute force.
#[test]
fn crops_of_more_than_254_slices_equal_brute_force() {
    let size = [7, 6, 300];
    let sp = [0.9, 0.8, 0.5];
    let mut a = vec![0u8; 7 * 6 * 300];
    let mut b = a.clone();
    let at = |i: usize, j: usize, k: usize| (k * 6 + j) * 7 + i;
    for k in 0..4 {
        for (i, j) in [(1, 1), (2, 1), (2, 2), (3, 3)] {
            a[at(i, j, k)] = 1;
        }
    }
    for k in 285..300 {
        for (i, j) in [(4, 4), (5, 4), (4, 3)] {
            b[at(i, j, k)] = 1;
        }
    }
    // One voxel of `b` in the middle, so both kinds of distance occur.
    b[at(2, 2, 150)] = 1;
    assert_equals_brute_force(&a, &b, size, sp, &[0, LOCAL_BUDGET, usize::MAX], 70.0);
}

/// [`surface_distances_with`] at each local-search budget equals [`brute`] (distances to
/// 1e-9 mm, areas to 1e-12 mm², sorted the same), and its Hausdorff exceeds `min_hd`.
fn assert_equals_brute_force(
    a: &[u8],
    b: &[u8],
    size: [usize; 3],
    sp: [f64; 3],
    budgets: &[usize],
    min_hd: f64,
) {
    let want = brute(a, b, size, sp);
    for &budget in budgets {
        let got = surface_distances_with(a, b, size, sp, budget).unwrap();
        for (g, w) in [
            (&got.reference_to_test, &want.reference_to_test),
            (&got.test_to_reference, &want.test_to_reference),
        ] {
            assert_eq!(g.len(), w.len());
            for (g, w) in g.iter().zip(w) {
                assert!(
                    (g.distance_mm - w.distance_mm).abs() < 1e-9,
                    "{budget}: {g:?} {w:?}"
                );
                assert!(
                    (g.area_mm2 - w.area_mm2).abs() < 1e-12,
                    "{budget}: {g:?} {w:?}"
                );
            }
        }
        assert!(got.hausdorff() > min_hd, "{}", got.hausdorff());
    }
}

#[test]
fn identical_masks_have_zero_distance_and_unit_surface_dice() {
    let size = [10, 10, 6];
    let a = ball(size, [5.0, 5.0, 3.0], 3.0);
    let s = surface_distances(&a, &a, size, [1.0, 1.0, 2.0]).unwrap();
    assert_eq!(s.hausdorff(), 0.0);
    assert_eq!(s.robust_hausdorff(95.0), 0.0);
    assert_eq!(s.assd(), 0.0);
    assert_eq!(s.surface_dice(0.0), 1.0);
}

#[test]
fn single_voxel_surface_area_is_the_cube_surface_as_deepmind() {
    // DeepMind's marching-cubes surfels of one isolated voxel: 8 corner triangles of
    // area √3/8 each in unit spacing.
    let size = [3, 3, 3];
    let mut a = vec![0u8; 27];
    a[13] = 1;
    let s = surface_distances(&a, &a, size, [1.0; 3]).unwrap();
    let area: f64 = s.reference_to_test.iter().map(|p| p.area_mm2).sum();
    assert_eq!(s.reference_to_test.len(), 8);
    assert!((area - 8.0 * 3f64.sqrt() / 8.0).abs() < 1e-12, "{area}");
}

#[test]
fn empty_masks_give_documented_values() {
    let size = [4, 4, 4];
    let e = vec![0u8; 64];
    let mut one = vec![0u8; 64];
    one[21] = 1;
    let both = surface_distances(&e, &e, size, [1.0; 3]).unwrap();
    assert!(both.both_empty());
    assert_eq!(both.hausdorff(), 0.0);
    assert_eq!(both.robust_hausdorff(95.0), 0.0);
    assert_eq!(both.assd(), 0.0);
    assert_eq!(both.surface_dice(1.0), 1.0);
    let half = surface_distances(&one, &e, size, [1.0; 3]).unwrap();
    assert!(half.hausdorff().is_infinite());
    assert!(half.robust_hausdorff(95.0).is_infinite());
    assert!(half.assd().is_infinite());
    assert_eq!(half.surface_dice(1.0), 0.0);
    let (m1, m2) = half.mean_distances();
    assert!(m1.is_infinite() && m2.is_infinite());
    assert!(surface_distances(&one, &e[..63], size, [1.0; 3]).is_err());
}

/// The streamed summaries are the same to the last bit whatever the number of threads: sums
/// are added in slice order, not in the order the work was split.
#[test]
fn summaries_do_not_depend_on_the_thread_count() {
    let size = [40, 36, 30];
    let sp = [0.7, 0.7, 2.5];
    let a = ball(size, [19.0, 17.0, 15.0], 14.0);
    let mut b = ball(size, [20.5, 18.0, 14.5], 12.5);
    b[(29 * 36 + 35) * 40 + 39] = 1;
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                let bbox = super::union_bbox(&a, &b, size);
                super::summaries_in(&a, &b, size, sp, bbox, 95.0, 1.0)
                    .unwrap()
                    .unwrap()
            })
    };
    let one = run(1);
    for threads in [2, 3, 7] {
        let (rt, tr) = run(threads);
        for (x, y) in [(one.0, rt), (one.1, tr)] {
            assert_eq!(x.points, y.points);
            for (u, v) in [
                (x.area, y.area),
                (x.weighted_sum, y.weighted_sum),
                (x.within, y.within),
                (x.percentile, y.percentile),
                (x.max, y.max),
            ] {
                assert_eq!(u.to_bits(), v.to_bits(), "{threads} threads");
            }
        }
    }
}
