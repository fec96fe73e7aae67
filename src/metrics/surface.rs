//! Surface distances following DeepMind's `surface-distance` library exactly.
//!
//! * Surface elements ("surfels") sit at voxel **corners**: every corner gets the 8-bit code of
//!   its 2×2×2 neighbourhood of voxels (kernel `[[[128, 64], [32, 16]], [[8, 4], [2, 1]]]` over
//!   slice, row, column); corners whose code is neither 0 nor 255 are surface points.
//! * Each surface point carries the area (mm²) of its marching-cubes triangles, from the
//!   library's normal table scaled by the spacing ([`super::tables`]).
//! * The distance of a surface point of one mask is the exact Euclidean distance (mm) to the
//!   nearest surface point of the other mask, on the corner grid.
//! * Both masks are cropped to the bounding box of their union plus one corner before anything
//!   else, as the library does; the result does not depend on the crop.
//!
//! Distances are computed with a memory-lean separable transform: one pass along the slice axis
//! stored as `u16` voxel counts (2 bytes per corner of the crop), then per slice the row and
//! column passes in a slice-sized buffer, evaluated only at the surface points of the other
//! mask. Work is spread over the rayon thread pool.

use rayon::prelude::*;
use serde::Serialize;

use super::distance::Envelope;
use super::tables::NEIGHBOUR_CODE_TO_NORMALS;
use crate::error::{Error, Result};

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

/// Voxel bounding box `[lo, hi)` per axis, in (slice, row, column) order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct BBox {
    pub lo: [usize; 3],
    pub hi: [usize; 3],
}

impl BBox {
    /// Voxels per axis (slice, row, column).
    pub fn extent(&self) -> [usize; 3] {
        [
            self.hi[0] - self.lo[0],
            self.hi[1] - self.lo[1],
            self.hi[2] - self.lo[2],
        ]
    }
}

/// Checks a mask pair against `size = [columns, rows, slices]` and the spacing.
pub(crate) fn check_inputs(
    reference: &[u8],
    test: &[u8],
    size: [usize; 3],
    spacing: [f64; 3],
) -> Result<()> {
    let n = size[0]
        .checked_mul(size[1])
        .and_then(|x| x.checked_mul(size[2]))
        .ok_or_else(|| Error::InvalidArgument(format!("mask grid {size:?} overflows")))?;
    for (name, m) in [("reference", reference), ("test", test)] {
        if m.len() != n {
            return Err(Error::InvalidArgument(format!(
                "{name} mask has {} voxels, grid {size:?} needs {n}",
                m.len()
            )));
        }
    }
    if spacing.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        return Err(Error::InvalidArgument(format!(
            "mask spacing {spacing:?} must be finite and positive"
        )));
    }
    Ok(())
}

/// Bounding box of the voxels non-zero in `a` or `b`, or `None` when both are empty.
pub(crate) fn union_bbox(a: &[u8], b: &[u8], size: [usize; 3]) -> Option<BBox> {
    scan(a, b, size).1
}

/// Whether any byte of a row is non-zero (an OR reduction the compiler vectorises).
#[inline]
fn any_set(row: &[u8]) -> bool {
    let mut acc = 0u8;
    for chunk in row.chunks(64) {
        acc |= chunk.iter().fold(0u8, |x, &v| x | v);
    }
    acc != 0
}

/// Non-zero counts of one row: (`a`, `b`, both), in `u32` lanes so the loop vectorises.
#[inline]
fn row_counts(ra: &[u8], rb: &[u8]) -> (u64, u64, u64) {
    let (mut ca, mut cb, mut cab) = (0u32, 0u32, 0u32);
    for (&x, &y) in ra.iter().zip(rb) {
        let (x, y) = (u32::from(x != 0), u32::from(y != 0));
        ca += x;
        cb += y;
        cab += x & y;
    }
    (u64::from(ca), u64::from(cb), u64::from(cab))
}

/// One pass over both masks: the overlap counts and the bounding box of their union (`None`
/// when both are empty). Empty rows cost one OR reduction each; only rows with voxels are
/// counted and searched. Inputs must have passed [`check_inputs`].
pub(crate) fn scan(
    a: &[u8],
    b: &[u8],
    size: [usize; 3],
) -> (super::overlap::OverlapCounts, Option<BBox>) {
    use super::overlap::OverlapCounts;
    let [ni, nj, nk] = size;
    let plane = ni * nj;
    if plane == 0 || nk == 0 {
        return (OverlapCounts::default(), None);
    }
    let merge_box = |x: Option<BBox>, y: Option<BBox>| match (x, y) {
        (Some(x), Some(y)) => Some(BBox {
            lo: [
                x.lo[0].min(y.lo[0]),
                x.lo[1].min(y.lo[1]),
                x.lo[2].min(y.lo[2]),
            ],
            hi: [
                x.hi[0].max(y.hi[0]),
                x.hi[1].max(y.hi[1]),
                x.hi[2].max(y.hi[2]),
            ],
        }),
        (x, None) => x,
        (None, y) => y,
    };
    a.par_chunks(plane)
        .zip(b.par_chunks(plane))
        .enumerate()
        .map(|(k, (sa, sb))| {
            let mut c = OverlapCounts::default();
            let mut bb: Option<BBox> = None;
            for (j, (ra, rb)) in sa.chunks(ni).zip(sb.chunks(ni)).enumerate() {
                let (sa_, sb_) = (any_set(ra), any_set(rb));
                if !(sa_ || sb_) {
                    continue;
                }
                let (x, y, xy) = row_counts(ra, rb);
                c.reference += x;
                c.test += y;
                c.both += xy;
                let hit = |(x, y): (&u8, &u8)| (x | y) != 0;
                let Some(first) = ra.iter().zip(rb).position(hit) else {
                    continue;
                };
                let last = ra.iter().zip(rb).rposition(hit).unwrap_or(first);
                let b = bb.get_or_insert(BBox {
                    lo: [k, j, first],
                    hi: [k + 1, j + 1, last + 1],
                });
                b.lo[2] = b.lo[2].min(first);
                b.hi[2] = b.hi[2].max(last + 1);
                b.hi[1] = j + 1;
            }
            (c, bb)
        })
        .reduce(
            || (OverlapCounts::default(), None),
            |(c1, b1), (c2, b2)| {
                (
                    OverlapCounts {
                        reference: c1.reference + c2.reference,
                        test: c1.test + c2.test,
                        both: c1.both + c2.both,
                    },
                    merge_box(b1, b2),
                )
            },
        )
}

/// A mask seen through the crop: voxel coordinates relative to the bounding box.
struct Cropped<'a> {
    mask: &'a [u8],
    /// Full grid columns and rows.
    ni: usize,
    nj: usize,
    bbox: BBox,
    /// Crop extent (slice, row, column).
    ext: [usize; 3],
}

impl<'a> Cropped<'a> {
    fn new(mask: &'a [u8], size: [usize; 3], bbox: BBox) -> Self {
        Cropped {
            mask,
            ni: size[0],
            nj: size[1],
            bbox,
            ext: bbox.extent(),
        }
    }

    /// Row `y` of slice `z` in crop coordinates (may be −1 or the extent: then `None`).
    fn row(&self, z: isize, y: isize) -> Option<&'a [u8]> {
        let z = usize::try_from(z).ok().filter(|&z| z < self.ext[0])?;
        let y = usize::try_from(y).ok().filter(|&y| y < self.ext[1])?;
        let start =
            ((z + self.bbox.lo[0]) * self.nj + y + self.bbox.lo[1]) * self.ni + self.bbox.lo[2];
        self.mask.get(start..start + self.ext[2])
    }

    /// Neighbourhood code of corner (cz, cy, cx), DeepMind's bit order.
    fn code(&self, cz: usize, cy: usize, cx: usize) -> u8 {
        let mut code = 0u8;
        for a in 0..2usize {
            for b in 0..2usize {
                let Some(row) =
                    self.row(cz as isize + a as isize - 1, cy as isize + b as isize - 1)
                else {
                    continue;
                };
                for c in 0..2usize {
                    let x = (cx + c).wrapping_sub(1);
                    if row.get(x).is_some_and(|&v| v != 0) {
                        code |= 1 << (7 - (4 * a + 2 * b + c));
                    }
                }
            }
        }
        code
    }
}

/// One bit per corner: is it a surface point? Slices of `words` u64 each.
struct Bits {
    words: usize,
    cx: usize,
    data: Vec<u64>,
}

impl Bits {
    fn get(&self, cz: usize, cy: usize, cx: usize) -> bool {
        let b = cy * self.cx + cx;
        self.data
            .get(cz * self.words + b / 64)
            .is_some_and(|w| (w >> (b % 64)) & 1 == 1)
    }

    fn slice(&self, cz: usize) -> &[u64] {
        self.data
            .get(cz * self.words..(cz + 1) * self.words)
            .unwrap_or(&[])
    }
}

/// Marks the surface corners of a cropped mask.
fn surface_bits(m: &Cropped<'_>) -> Bits {
    let [ez, ey, ex] = m.ext;
    let (cz, cy, cx) = (ez + 1, ey + 1, ex + 1);
    let words = (cy * cx).div_ceil(64);
    let mut data = vec![0u64; words * cz];
    data.par_chunks_mut(words.max(1))
        .enumerate()
        .for_each(|(z, out)| {
            let mut or4 = vec![0u8; ex];
            let mut and4 = vec![0u8; ex];
            for y in 0..cy {
                or4.fill(0);
                and4.fill(1);
                for (dz, dy) in [(1, 1), (1, 0), (0, 1), (0, 0)] {
                    match m.row(z as isize - dz, y as isize - dy) {
                        Some(r) => {
                            for ((o, a), &v) in or4.iter_mut().zip(and4.iter_mut()).zip(r) {
                                let v = u8::from(v != 0);
                                *o |= v;
                                *a &= v;
                            }
                        }
                        None => and4.fill(0),
                    }
                }
                for x in 0..cx {
                    let (o0, a0) = match x.checked_sub(1) {
                        Some(p) => (
                            or4.get(p).copied().unwrap_or(0),
                            and4.get(p).copied().unwrap_or(0),
                        ),
                        None => (0, 0),
                    };
                    let o = o0 | or4.get(x).copied().unwrap_or(0);
                    let a = a0 & and4.get(x).copied().unwrap_or(0);
                    if o != 0 && a == 0 {
                        let b = y * cx + x;
                        if let Some(w) = out.get_mut(b / 64) {
                            *w |= 1 << (b % 64);
                        }
                    }
                }
            }
        });
    Bits { words, cx, data }
}

/// Surfel area (mm²) per neighbourhood code for `spacing = [column, row, slice]`, as
/// DeepMind's `create_table_neighbour_code_to_surface_area` with spacing (slice, row, column).
pub fn surfel_area_table(spacing: [f64; 3]) -> [f64; 256] {
    let s = [spacing[2], spacing[1], spacing[0]];
    let mut t = [0.0; 256];
    for (area, normals) in t.iter_mut().zip(NEIGHBOUR_CODE_TO_NORMALS.iter()) {
        let mut sum = 0.0;
        for n in normals.iter() {
            let v = [n[0] * s[1] * s[2], n[1] * s[0] * s[2], n[2] * s[0] * s[1]];
            sum += (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
        }
        *area = sum;
    }
    t
}

/// Distances from the surface points of `from` to the nearest surface point of `to_bits`.
fn directed(
    from: &Cropped<'_>,
    from_bits: &Bits,
    to_bits: &Bits,
    spacing: [f64; 3],
    areas: &[f64; 256],
    zbuf: &mut [u16],
) -> Vec<SurfacePoint> {
    let [ez, ey, ex] = from.ext;
    let (cz, cy, cx) = (ez + 1, ey + 1, ex + 1);
    let (sx, sy, sz) = (spacing[0], spacing[1], spacing[2]);
    // Pass 1: distance in corners along the slice axis, layout [cy][cz][cx].
    zbuf.par_chunks_mut(cz * cx)
        .enumerate()
        .for_each(|(y, col)| {
            for z in 0..cz {
                for x in 0..cx {
                    let v = if to_bits.get(z, y, x) {
                        0
                    } else if z == 0 {
                        u16::MAX
                    } else {
                        match col.get((z - 1) * cx + x) {
                            Some(&p) if p != u16::MAX => p + 1,
                            _ => u16::MAX,
                        }
                    };
                    if let Some(c) = col.get_mut(z * cx + x) {
                        *c = v;
                    }
                }
            }
            for z in (0..cz.saturating_sub(1)).rev() {
                for x in 0..cx {
                    let next = col.get((z + 1) * cx + x).copied().unwrap_or(u16::MAX);
                    if next != u16::MAX
                        && let Some(c) = col.get_mut(z * cx + x)
                        && next + 1 < *c
                    {
                        *c = next + 1;
                    }
                }
            }
        });
    let zbuf: &[u16] = zbuf;
    // Per slice: pass 2 along the rows (contiguous in `zbuf`), then pass 3 along the columns,
    // evaluated only in columns holding surface points of `from`, and only at those points.
    let per_slice: Vec<Vec<SurfacePoint>> = (0..cz)
        .into_par_iter()
        .map(|z| {
            let bits = from_bits.slice(z);
            if bits.iter().all(|&w| w == 0) {
                return Vec::new();
            }
            let mut env = Envelope::default();
            let mut h = vec![f64::INFINITY; cy * cx];
            let mut f = vec![f64::INFINITY; cx];
            for y in 0..cy {
                let start = (y * cz + z) * cx;
                let (Some(src), Some(row)) =
                    (zbuf.get(start..start + cx), h.get_mut(y * cx..(y + 1) * cx))
                else {
                    continue;
                };
                let mut any = false;
                for (o, &d) in f.iter_mut().zip(src) {
                    *o = if d == u16::MAX {
                        f64::INFINITY
                    } else {
                        any = true;
                        let dz = f64::from(d) * sz;
                        dz * dz
                    };
                }
                if any && env.build(&f, sx) {
                    env.eval_sorted(&f, sx, 0..cx, |x, d2| {
                        if let Some(v) = row.get_mut(x) {
                            *v = d2;
                        }
                    });
                }
            }
            // Surface points of this slice grouped by column (counting sort), rows ascending.
            let mut start = vec![0usize; cx + 1];
            let mut npts = 0usize;
            let set = |b: usize| bits.get(b / 64).is_some_and(|w| (w >> (b % 64)) & 1 == 1);
            for (w, &word) in bits.iter().enumerate() {
                let mut word = word;
                while word != 0 {
                    let b = w * 64 + word.trailing_zeros() as usize;
                    word &= word - 1;
                    if let Some(s) = start.get_mut(b % cx + 1) {
                        *s += 1;
                        npts += 1;
                    }
                }
            }
            for x in 0..cx {
                let prev = start.get(x).copied().unwrap_or(0);
                if let Some(s) = start.get_mut(x + 1) {
                    *s += prev;
                }
            }
            let mut fill = start.clone();
            let mut ys = vec![0usize; npts];
            for y in 0..cy {
                for x in 0..cx {
                    if set(y * cx + x)
                        && let Some(p) = fill.get_mut(x)
                    {
                        if let Some(slot) = ys.get_mut(*p) {
                            *slot = y;
                        }
                        *p += 1;
                    }
                }
            }
            let mut out = Vec::with_capacity(npts);
            const BLOCK: usize = 8;
            let mut cols = vec![f64::INFINITY; BLOCK * cy];
            for x0 in (0..cx).step_by(BLOCK) {
                let x1 = (x0 + BLOCK).min(cx);
                let (lo, hi) = (
                    start.get(x0).copied().unwrap_or(0),
                    start.get(x1).copied().unwrap_or(0),
                );
                if lo == hi {
                    continue;
                }
                // Gather the block's columns (one cache line of each row at a time).
                for y in 0..cy {
                    if let Some(src) = h.get(y * cx + x0..y * cx + x1) {
                        for (c, &v) in src.iter().enumerate() {
                            if let Some(d) = cols.get_mut(c * cy + y) {
                                *d = v;
                            }
                        }
                    }
                }
                for x in x0..x1 {
                    let (a, b) = (
                        start.get(x).copied().unwrap_or(0),
                        start.get(x + 1).copied().unwrap_or(0),
                    );
                    let Some(rows) = ys.get(a..b).filter(|r| !r.is_empty()) else {
                        continue;
                    };
                    let c = x - x0;
                    let col = cols.get(c * cy..(c + 1) * cy).unwrap_or(&[]);
                    let area = |y: usize| areas[usize::from(from.code(z, y, x))];
                    if env.build(col, sy) {
                        env.eval_sorted(col, sy, rows.iter().copied(), |y, d2| {
                            out.push(SurfacePoint {
                                distance_mm: d2.sqrt(),
                                area_mm2: area(y),
                            });
                        });
                    } else {
                        out.extend(rows.iter().map(|&y| SurfacePoint {
                            distance_mm: f64::INFINITY,
                            area_mm2: area(y),
                        }));
                    }
                }
            }
            out
        })
        .collect();
    let mut all: Vec<SurfacePoint> = per_slice.into_iter().flatten().collect();
    all.par_sort_unstable_by(|a, b| {
        a.distance_mm
            .total_cmp(&b.distance_mm)
            .then(a.area_mm2.total_cmp(&b.area_mm2))
    });
    all
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
    check_inputs(reference, test, size, spacing)?;
    surface_distances_in(
        reference,
        test,
        size,
        spacing,
        union_bbox(reference, test, size),
    )
}

/// [`surface_distances`] on checked inputs with the union bounding box already known.
pub(crate) fn surface_distances_in(
    reference: &[u8],
    test: &[u8],
    size: [usize; 3],
    spacing: [f64; 3],
    bbox: Option<BBox>,
) -> Result<SurfaceDistances> {
    let Some(bbox) = bbox else {
        return Ok(SurfaceDistances::default());
    };
    let r = Cropped::new(reference, size, bbox);
    let t = Cropped::new(test, size, bbox);
    let [ez, ey, ex] = bbox.extent();
    if ez + 1 >= usize::from(u16::MAX) {
        return Err(Error::InvalidArgument(format!(
            "surface distances: {ez} slices in the bounding box; at most {} supported",
            u16::MAX - 2
        )));
    }
    let areas = surfel_area_table(spacing);
    let (rb, tb) = rayon::join(|| surface_bits(&r), || surface_bits(&t));
    let mut zbuf = vec![0u16; (ez + 1) * (ey + 1) * (ex + 1)];
    let reference_to_test = directed(&r, &rb, &tb, spacing, &areas, &mut zbuf);
    let test_to_reference = directed(&t, &tb, &rb, spacing, &areas, &mut zbuf);
    log::debug!(
        "surface distances: crop {:?}, {} reference and {} test surface points",
        bbox.extent(),
        reference_to_test.len(),
        test_to_reference.len()
    );
    Ok(SurfaceDistances {
        reference_to_test,
        test_to_reference,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let got = surface_distances(&a, &b, size, sp).unwrap();
        let want = brute(&a, &b, size, sp);
        assert_eq!(got.reference_to_test.len(), want.reference_to_test.len());
        assert_eq!(got.test_to_reference.len(), want.test_to_reference.len());
        for (g, w) in got
            .reference_to_test
            .iter()
            .zip(&want.reference_to_test)
            .chain(got.test_to_reference.iter().zip(&want.test_to_reference))
        {
            assert!((g.distance_mm - w.distance_mm).abs() < 1e-9, "{g:?} {w:?}");
            assert!((g.area_mm2 - w.area_mm2).abs() < 1e-12, "{g:?} {w:?}");
        }
        assert!(got.hausdorff() > 3.0, "{}", got.hausdorff());
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
}
