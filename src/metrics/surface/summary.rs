//! The summary: surface points of both directions as sorted lists ([`surface_distances`],
//! [`SurfaceDistances`]) with Hausdorff, HD95, mean distances, ASSD and surface Dice over them,
//! or streamed per-direction sums and an area-histogram percentile ([`summaries_in`]) for
//! `compare_masks`.

use rayon::prelude::*;
use serde::Serialize;

use super::directed::{LOCAL_BUDGET, SliceSurfels, directed_any, zbuf_for};
use super::scan::{BBox, Packed, check_inputs, surfel_area_table, union_bbox};
use crate::error::Result;

/// One surface element: its distance to the other surface and its area.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SurfacePoint {
    /// Distance to the nearest surface point of the other mask, mm (`INFINITY` when the other
    /// mask is empty).
    pub distance_mm: f64,
    /// Area of the surface element, mm².
    pub area_mm2: f64,
}

/// Surface points of both masks with their distances to the other surface, each list sorted by
/// (distance, area) as DeepMind's `compute_surface_distances` returns them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SurfaceDistances {
    /// Points of the reference surface, distances to the test surface.
    pub reference_to_test: Vec<SurfacePoint>,
    /// Points of the test surface, distances to the reference surface.
    pub test_to_reference: Vec<SurfacePoint>,
}

/// Surface points of both masks and their distances to the other surface, as DeepMind's
/// `compute_surface_distances(mask_gt=reference, mask_pred=test, spacing_mm)` with the arrays
/// indexed (slice, row, column).
///
/// `reference` and `test` are slice-major masks (non-zero = inside) on a grid of
/// `size = [columns, rows, slices]` with `spacing = [column, row, slice]` mm. When both masks are
/// empty both lists are empty; when one is empty the other's points are all at `INFINITY`.
pub fn surface_distances(
    reference: &[u8],
    test: &[u8],
    size: [usize; 3],
    spacing: [f64; 3],
) -> Result<SurfaceDistances> {
    surface_distances_with(reference, test, size, spacing, LOCAL_BUDGET)
}

/// [`surface_distances`] with the local-search budget per slice in reads per thousand corners
/// (see [`LOCAL_BUDGET`]; 0 sends every point through the row and column passes).
pub(super) fn surface_distances_with(
    reference: &[u8],
    test: &[u8],
    size: [usize; 3],
    spacing: [f64; 3],
    local_budget: usize,
) -> Result<SurfaceDistances> {
    check_inputs(reference, test, size, spacing)?;
    let Some(bbox) = union_bbox(reference, test, size) else {
        return Ok(SurfaceDistances::default());
    };
    let (r, t) = Packed::pair(reference, test, size, bbox);
    let mut zbuf = zbuf_for(bbox)?;
    let areas = surfel_area_table(spacing);
    let points = |slices: Vec<SliceSurfels>| {
        let mut v: Vec<SurfacePoint> = slices
            .iter()
            .flat_map(|s| s.distance.iter().zip(&s.code))
            .map(|(&d, &c)| SurfacePoint {
                distance_mm: d,
                area_mm2: areas[usize::from(c)],
            })
            .collect();
        v.par_sort_unstable_by(|a, b| {
            a.distance_mm
                .total_cmp(&b.distance_mm)
                .then(a.area_mm2.total_cmp(&b.area_mm2))
        });
        v
    };
    let reference_to_test = points(directed_any(&r, &t, spacing, &mut zbuf, local_budget));
    let test_to_reference = points(directed_any(&t, &r, spacing, &mut zbuf, local_budget));
    Ok(SurfaceDistances {
        reference_to_test,
        test_to_reference,
    })
}

/// The statistics of one direction that [`compare_masks`](crate::metrics::compare_masks) reports, computed without
/// sorting or keeping a list of points.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct DirectedSummary {
    /// Number of surface points.
    pub points: usize,
    /// Total surface area, mm².
    pub area: f64,
    /// Σ distance · area.
    pub weighted_sum: f64,
    /// Largest distance (`INFINITY` when the other mask is empty, 0 without points).
    pub max: f64,
    /// Area of the points within the tolerance.
    pub within: f64,
    /// Area-weighted percentile (DeepMind's definition; `INFINITY` without points).
    pub percentile: f64,
}

/// Summaries of both directions (reference → test, test → reference) for `percent` and
/// `tolerance_mm`; `None` when both masks are empty. One direction's points are held at a time.
pub(crate) fn summaries_in(
    reference: &[u8],
    test: &[u8],
    size: [usize; 3],
    spacing: [f64; 3],
    bbox: Option<BBox>,
    percent: f64,
    tolerance_mm: f64,
) -> Result<Option<(DirectedSummary, DirectedSummary)>> {
    let Some(bbox) = bbox else {
        return Ok(None);
    };
    let (r, t) = Packed::pair(reference, test, size, bbox);
    let mut zbuf = zbuf_for(bbox)?;
    let areas = surfel_area_table(spacing);
    let rt = summarise(
        &directed_any(&r, &t, spacing, &mut zbuf, LOCAL_BUDGET),
        &areas,
        percent,
        tolerance_mm,
    );
    let tr = summarise(
        &directed_any(&t, &r, spacing, &mut zbuf, LOCAL_BUDGET),
        &areas,
        percent,
        tolerance_mm,
    );
    log::debug!(
        "surface distances: crop {:?}, {} reference and {} test surface points",
        bbox.extent(),
        rt.points,
        tr.points
    );
    Ok(Some((rt, tr)))
}

/// One direction's statistics from its points. Sums are taken per slice in parallel, then
/// added in slice order, so the result does not depend on how the work was split.
fn summarise(
    slices: &[SliceSurfels],
    areas: &[f64; 256],
    percent: f64,
    tolerance_mm: f64,
) -> DirectedSummary {
    let mut s = slices
        .par_iter()
        .map(|sl| {
            let mut s = DirectedSummary::default();
            for (&d, &c) in sl.distance.iter().zip(&sl.code) {
                let a = areas[usize::from(c)];
                s.points += 1;
                s.area += a;
                s.weighted_sum += d * a;
                s.max = s.max.max(d);
                if d <= tolerance_mm {
                    s.within += a;
                }
            }
            s
        })
        .collect::<Vec<_>>()
        .into_iter()
        .fold(DirectedSummary::default(), |a, b| DirectedSummary {
            points: a.points + b.points,
            area: a.area + b.area,
            weighted_sum: a.weighted_sum + b.weighted_sum,
            max: a.max.max(b.max),
            within: a.within + b.within,
            percentile: 0.0,
        });
    s.percentile = weighted_percentile(slices, areas, percent, s.area, s.max, s.points);
    s
}

/// Slice groups of the percentile histogram (each its own histogram of up to 512 KiB).
const HISTOGRAM_GROUPS: usize = 8;

/// DeepMind's area-weighted percentile (the first distance, in ascending order, at which the
/// cumulative area fraction reaches `percent / 100`) without sorting every point: a histogram
/// of the areas over distance bins (about 8 points per bin, at most 65 536 bins) finds the bin
/// where the fraction is reached, and only that bin's points are sorted. Same value as
/// [`directed_percentile`] on the sorted list, up to the order of the floating-point sums.
fn weighted_percentile(
    slices: &[SliceSurfels],
    areas: &[f64; 256],
    percent: f64,
    total: f64,
    max: f64,
    points: usize,
) -> f64 {
    if points == 0 || !max.is_finite() {
        return f64::INFINITY;
    }
    if max <= 0.0 {
        return 0.0;
    }
    // About 8 points per bin (64 to 65 536 bins); one histogram per group of slices (a fixed
    // number of groups, added in order: the sums do not depend on the thread count).
    let bins = (points / 8).clamp(64, 1 << 16);
    let scale = bins as f64 / max;
    let bin = |d: f64| ((d * scale) as usize).min(bins - 1);
    let per_group = slices.len().div_ceil(HISTOGRAM_GROUPS).max(1);
    let hist = slices
        .par_chunks(per_group)
        .map(|group| {
            let mut h = vec![0.0f64; bins];
            for sl in group {
                for (&d, &c) in sl.distance.iter().zip(&sl.code) {
                    if let Some(x) = h.get_mut(bin(d)) {
                        *x += areas[usize::from(c)];
                    }
                }
            }
            h
        })
        .collect::<Vec<_>>()
        .into_iter()
        .reduce(|mut a, b| {
            for (x, y) in a.iter_mut().zip(&b) {
                *x += y;
            }
            a
        })
        .unwrap_or_else(|| vec![0.0f64; bins]);
    let target = percent / 100.0;
    let mut cum = 0.0;
    let mut found = None;
    for (b, &a) in hist.iter().enumerate() {
        if a > 0.0 && (cum + a) / total >= target {
            found = Some(b);
            break;
        }
        cum += a;
    }
    let Some(b) = found else {
        return max;
    };
    let mut members: Vec<(f64, f64)> = slices
        .iter()
        .flat_map(|sl| sl.distance.iter().zip(&sl.code))
        .filter(|&(&d, _)| bin(d) == b)
        .map(|(&d, &c)| (d, areas[usize::from(c)]))
        .collect();
    members.sort_unstable_by(|x, y| x.0.total_cmp(&y.0).then(x.1.total_cmp(&y.1)));
    for &(d, a) in &members {
        cum += a;
        if cum / total >= target {
            return d;
        }
    }
    members.last().map_or(max, |m| m.0)
}

/// Area-weighted percentile of one direction as DeepMind's `compute_robust_hausdorff`: the
/// first distance whose cumulative area fraction reaches `percent / 100`. `INFINITY` when empty.
pub fn directed_percentile(points: &[SurfacePoint], percent: f64) -> f64 {
    let total: f64 = points.iter().map(|p| p.area_mm2).sum();
    let target = percent / 100.0;
    let mut cum = 0.0;
    for p in points {
        cum += p.area_mm2;
        if cum / total >= target {
            return p.distance_mm;
        }
    }
    points.last().map_or(f64::INFINITY, |p| p.distance_mm)
}

/// Area-weighted mean distance of one direction (`NaN`-free: `INFINITY` when empty).
pub fn directed_mean(points: &[SurfacePoint]) -> f64 {
    let (num, den) = points.iter().fold((0.0, 0.0), |(n, d), p| {
        (n + p.distance_mm * p.area_mm2, d + p.area_mm2)
    });
    if den > 0.0 { num / den } else { f64::INFINITY }
}

impl SurfaceDistances {
    /// True when both masks were empty.
    pub fn both_empty(&self) -> bool {
        self.reference_to_test.is_empty() && self.test_to_reference.is_empty()
    }

    /// Robust Hausdorff distance at `percent` (95 for HD95): the larger of the two directed
    /// area-weighted percentiles. 0 when both masks are empty, `INFINITY` when one is.
    pub fn robust_hausdorff(&self, percent: f64) -> f64 {
        if self.both_empty() {
            return 0.0;
        }
        directed_percentile(&self.reference_to_test, percent)
            .max(directed_percentile(&self.test_to_reference, percent))
    }

    /// Hausdorff distance: the largest surface-point distance in either direction. 0 when both
    /// masks are empty, `INFINITY` when one is.
    pub fn hausdorff(&self) -> f64 {
        if self.both_empty() {
            return 0.0;
        }
        let last = |v: &[SurfacePoint]| v.last().map_or(f64::INFINITY, |p| p.distance_mm);
        last(&self.reference_to_test).max(last(&self.test_to_reference))
    }

    /// Area-weighted mean distance (reference → test, test → reference), as DeepMind's
    /// `compute_average_surface_distance`. 0 when both masks are empty, `INFINITY` when one is.
    pub fn mean_distances(&self) -> (f64, f64) {
        if self.both_empty() {
            return (0.0, 0.0);
        }
        (
            directed_mean(&self.reference_to_test),
            directed_mean(&self.test_to_reference),
        )
    }

    /// Average symmetric surface distance: the area-weighted mean over the surface points of
    /// both masks, `(Σ_ref d·a + Σ_test d·a) / (Σ_ref a + Σ_test a)`. 0 when both masks are
    /// empty, `INFINITY` when one is.
    pub fn assd(&self) -> f64 {
        if self.both_empty() {
            return 0.0;
        }
        if self.reference_to_test.is_empty() || self.test_to_reference.is_empty() {
            return f64::INFINITY;
        }
        let all = self.reference_to_test.iter().chain(&self.test_to_reference);
        let (num, den) = all.fold((0.0, 0.0), |(n, d), p| {
            (n + p.distance_mm * p.area_mm2, d + p.area_mm2)
        });
        num / den
    }

    /// Fraction of each surface area within `tolerance_mm` of the other surface (reference,
    /// test), as DeepMind's `compute_surface_overlap_at_tolerance`. 1 when both masks are
    /// empty; 0 for the non-empty side when one is (the empty side reports 0 as well).
    pub fn surface_overlap(&self, tolerance_mm: f64) -> (f64, f64) {
        if self.both_empty() {
            return (1.0, 1.0);
        }
        let frac = |v: &[SurfacePoint]| {
            let total: f64 = v.iter().map(|p| p.area_mm2).sum();
            let within: f64 = v
                .iter()
                .filter(|p| p.distance_mm <= tolerance_mm)
                .map(|p| p.area_mm2)
                .sum();
            if total > 0.0 { within / total } else { 0.0 }
        };
        (frac(&self.reference_to_test), frac(&self.test_to_reference))
    }

    /// Surface Dice at `tolerance_mm`, as DeepMind's `compute_surface_dice_at_tolerance`:
    /// overlapping area of both surfaces over their total area. 1 when both masks are empty, 0
    /// when one is.
    pub fn surface_dice(&self, tolerance_mm: f64) -> f64 {
        if self.both_empty() {
            return 1.0;
        }
        let (mut within, mut total) = (0.0, 0.0);
        for p in self.reference_to_test.iter().chain(&self.test_to_reference) {
            total += p.area_mm2;
            if p.distance_mm <= tolerance_mm {
                within += p.area_mm2;
            }
        }
        if total > 0.0 { within / total } else { 0.0 }
    }
}
