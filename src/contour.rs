//! Planar contours from label maps, in patient millimetres.
//!
//! # Boundary convention: voxel-edge tracing
//!
//! Each slice `k` of a label map is contoured in its own (i, j) index plane. A voxel `(i, j)`
//! covers the square `[i − ½, i + ½] × [j − ½, j + ½]`; contours run along the edges between
//! voxels inside the structure and voxels outside (or beyond the grid), so their vertices sit on
//! voxel corners. The area enclosed by a slice's contours (outer loops positive, holes negative)
//! therefore equals **exactly** the number of voxels × the in-plane voxel area. Every index
//! point `(x, y, k)` is then mapped to the patient frame with the volume's
//! [`Geometry`], so any orientation the loader accepts (axial, sagittal,
//! coronal, oblique, flipped) is contoured in the plane of its slices.
//!
//! Within a slice, the structure is taken as 4-connected: two voxels that touch only at a corner
//! get two contours that share that corner (the background is then 8-connected, so a hole
//! touching the outside at a corner is not a hole).
//!
//! # Holes
//!
//! [`HoleEncoding::Keyhole`] (default) joins each hole to the contour around it with a
//! zero-width cut, giving one `CLOSED_PLANAR` polygon per connected piece, which every TPS
//! accepts. The cut runs straight along −j from the hole's top edge, a quarter voxel from the
//! voxel-corner lines, through voxels of the structure only, so it adds no area and does not
//! pass through any voxel centre. [`HoleEncoding::Separate`] writes holes as separate
//! `CLOSED_PLANAR` contours (readers combine a slice's contours even-odd) and
//! [`HoleEncoding::Xor`] does the same with the `CLOSEDPLANAR_XOR` geometric type.
//!
//! # Simplification
//!
//! Only collinear vertices are removed unless [`ContourOptions::tolerance_mm`] is positive; then
//! each polygon is simplified with Douglas–Peucker at that tolerance (in-plane mm), keeping the
//! keyhole cut vertices fixed. Polygons with fewer than 3 points are dropped.

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::volume::{Geometry, Volume};

/// How holes inside a structure are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HoleEncoding {
    /// One polygon per connected piece; holes joined by a zero-width cut (`CLOSED_PLANAR`).
    #[default]
    Keyhole,
    /// Holes as separate `CLOSED_PLANAR` contours on the same slice.
    Separate,
    /// Holes as separate contours of type `CLOSEDPLANAR_XOR`.
    Xor,
}

/// Options for [`contours_for_label`] and [`trace_slice`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ContourOptions {
    /// Hole encoding (default keyhole).
    pub holes: HoleEncoding,
    /// Douglas–Peucker tolerance in mm; `0.0` (default) removes collinear vertices only.
    pub tolerance_mm: f64,
}

/// DICOM Contour Geometric Type of a closed contour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeometricType {
    /// `CLOSED_PLANAR`.
    ClosedPlanar,
    /// `CLOSEDPLANAR_XOR` (combined with the slice's other contours by exclusive or).
    ClosedPlanarXor,
}

impl GeometricType {
    /// The DICOM code string.
    pub fn as_str(self) -> &'static str {
        match self {
            GeometricType::ClosedPlanar => "CLOSED_PLANAR",
            GeometricType::ClosedPlanarXor => "CLOSEDPLANAR_XOR",
        }
    }
}

/// One closed planar contour on slice `slice` of a grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Contour {
    /// Slice index `k` the contour lies on.
    pub slice: usize,
    /// Vertices in patient coordinates (LPS, mm); the polygon closes implicitly.
    pub points: Vec<[f64; 3]>,
    /// How it combines with the slice's other contours.
    pub geometric_type: GeometricType,
}

/// A polygon traced on one slice, vertices in continuous (i, j) index coordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct SlicePolygon {
    /// Vertices (i, j); closes implicitly.
    pub points: Vec<[f64; 2]>,
    /// False for the outer boundary of a piece (or a keyholed piece), true for a separate hole.
    pub is_hole: bool,
}

/// Signed shoelace area of a closed polygon. Outer contours traced here are positive in (i, j).
pub fn polygon_area(points: &[[f64; 2]]) -> f64 {
    let n = points.len();
    let mut s = 0.0;
    for a in 0..n {
        let p = points[a];
        let q = points[(a + 1) % n];
        s += p[0] * q[1] - q[0] * p[1];
    }
    s / 2.0
}

// Edge directions in the vertex grid (x right = +i, y down = +j).
const E: u8 = 1;
const S: u8 = 2;
const W: u8 = 4;
const N: u8 = 8;

fn step(d: u8) -> (i64, i64) {
    match d {
        E => (1, 0),
        S => (0, 1),
        W => (-1, 0),
        _ => (0, -1),
    }
}

/// The turn that keeps wrapping the same voxel (keeps the structure 4-connected).
fn inward(d: u8) -> u8 {
    match d {
        E => S,
        S => W,
        W => N,
        _ => E,
    }
}

/// A traced loop in quarter-voxel-corner units (corner (x, y) ↦ (4x, 4y)); `anchor` marks
/// keyhole cut vertices that simplification must keep.
#[derive(Clone)]
struct Loop {
    pts: Vec<(i64, i64, bool)>,
    area2: i64,
}

fn area2(pts: &[(i64, i64, bool)]) -> i64 {
    let n = pts.len();
    let mut s = 0i64;
    for a in 0..n {
        let p = pts[a];
        let q = pts[(a + 1) % n];
        s += p.0 * q.1 - q.0 * p.1;
    }
    s
}

/// The runs (maximal stretches of `true` along x) of each row of a `w × h` mask: `(x0, x1)`
/// with `x1` exclusive, and the index of each row's first run (plus a final sentinel).
fn mask_runs(mask: &[bool], w: usize, h: usize) -> (Vec<(usize, usize)>, Vec<usize>) {
    let mut runs = Vec::new();
    let mut row_start = Vec::with_capacity(h + 1);
    for row in mask.chunks(w.max(1)).take(h) {
        row_start.push(runs.len());
        let mut x = 0;
        while x < row.len() {
            match row.get(x..).and_then(|r| r.iter().position(|&b| b)) {
                Some(off) => x += off,
                None => break,
            }
            let s = x;
            x += row
                .get(x..)
                .and_then(|r| r.iter().position(|&b| !b))
                .unwrap_or(row.len() - x);
            runs.push((s, x));
        }
    }
    while row_start.len() < h {
        row_start.push(runs.len());
    }
    row_start.push(runs.len());
    (runs, row_start)
}

/// Calls `f(x)` for every x of `run` not covered by `others` (sorted, disjoint runs).
fn for_each_uncovered(run: (usize, usize), others: &[(usize, usize)], mut f: impl FnMut(usize)) {
    let (a, b) = run;
    // first run of `others` that may overlap: the first ending after a
    let from = others.partition_point(|o| o.1 <= a);
    let mut at = a;
    for &(c, d) in others.get(from..).unwrap_or(&[]) {
        if c >= b {
            break;
        }
        for x in at..c.max(at) {
            f(x);
        }
        at = at.max(d);
    }
    for x in at..b {
        f(x);
    }
}

/// Traces every boundary loop of a `w × h` mask given by its runs ([`mask_runs`]); returns loops
/// with their component label. Edges and components are found on runs, so the work follows the
/// boundary, not the area.
fn trace_loops(
    runs: &[(usize, usize)],
    row_start: &[usize],
    w: usize,
    h: usize,
) -> Vec<(u32, Loop)> {
    let vw = w + 1;
    let mut out = vec![0u8; vw * (h + 1)];
    let row = |y: usize| -> &[(usize, usize)] {
        let a = row_start.get(y).copied().unwrap_or(0);
        let b = row_start.get(y + 1).copied().unwrap_or(a);
        runs.get(a..b).unwrap_or(&[])
    };
    // vertices with an edge, to visit in row-major order without scanning the vertex grid
    let mut starts: Vec<usize> = Vec::with_capacity(4 * runs.len());
    let mut set = |v: usize, d: u8| {
        if let Some(o) = out.get_mut(v) {
            if *o == 0 {
                starts.push(v);
            }
            *o |= d;
        }
    };
    for y in 0..h {
        let above: &[(usize, usize)] = if y > 0 { row(y - 1) } else { &[] };
        let below: &[(usize, usize)] = if y + 1 < h { row(y + 1) } else { &[] };
        for &(a, b) in row(y) {
            // left and right ends of the run
            set((y + 1) * vw + a, N);
            set(y * vw + b, S);
            // top and bottom edges where the neighbouring row is outside
            for_each_uncovered((a, b), above, |x| set(y * vw + x, E));
            for_each_uncovered((a, b), below, |x| set((y + 1) * vw + x + 1, W));
        }
    }
    // 4-connected components of the runs (union-find; a run overlapping one of the row above)
    let mut parent: Vec<usize> = (0..runs.len()).collect();
    for y in 1..h {
        let (first, prev_first) = (
            row_start.get(y).copied().unwrap_or(0),
            row_start.get(y - 1).copied().unwrap_or(0),
        );
        let prev = row(y - 1);
        for (n, &(a, b)) in row(y).iter().enumerate() {
            let from = prev.partition_point(|o| o.1 <= a);
            for (m, &(c, _)) in prev.iter().enumerate().skip(from) {
                if c >= b {
                    break;
                }
                crate::postprocess::union(&mut parent, first + n, prev_first + m);
            }
        }
    }
    let fg_comp = |x: i64, y: i64, parent: &mut Vec<usize>| -> u32 {
        if x < 0 || y < 0 || x as usize >= w || y as usize >= h {
            return 0;
        }
        let (x, y) = (x as usize, y as usize);
        let r = row(y);
        let at = r.partition_point(|o| o.1 <= x);
        match r.get(at) {
            Some(&(a, _)) if a <= x => {
                let first = row_start.get(y).copied().unwrap_or(0);
                crate::postprocess::find(parent, first + at) as u32 + 1
            }
            _ => 0,
        }
    };
    let mut used = vec![0u8; out.len()];
    let mut loops = Vec::new();
    starts.sort_unstable();
    for v0 in starts {
        while out[v0] & !used[v0] != 0 {
            let free = out[v0] & !used[v0];
            let d0 = free & free.wrapping_neg();
            let (x0, y0) = ((v0 % vw) as i64, (v0 / vw) as i64);
            // The voxel on the structure side of the first edge gives the component.
            let (px, py) = match d0 {
                E => (x0, y0),
                S => (x0 - 1, y0),
                W => (x0 - 1, y0 - 1),
                _ => (x0, y0 - 1),
            };
            let label = fg_comp(px, py, &mut parent);
            let mut pts = Vec::new();
            let (mut x, mut y, mut d) = (x0, y0, d0);
            // Each edge is visited once; the bound guards against a malformed edge set.
            for _ in 0..=4 * w * h + 4 {
                used[y as usize * vw + x as usize] |= d;
                let (dx, dy) = step(d);
                x += dx;
                y += dy;
                let bits = out[y as usize * vw + x as usize];
                let nd = if bits.count_ones() == 1 {
                    bits
                } else if bits & inward(d) != 0 {
                    inward(d)
                } else {
                    bits & bits.wrapping_neg()
                };
                if nd != d {
                    pts.push((4 * x, 4 * y, false));
                }
                d = nd;
                if (x, y) == (x0, y0) && d == d0 {
                    break;
                }
                if nd == 0 {
                    break;
                }
            }
            let a2 = area2(&pts);
            loops.push((label, Loop { pts, area2: a2 }));
        }
    }
    loops
}

/// Joins `hole` into `outer` with a zero-width cut. Returns false (leaving `outer` untouched)
/// when no edge of `outer` lies straight above the hole, which tracing never produces.
fn keyhole(outer: &mut Vec<(i64, i64, bool)>, hole: &[(i64, i64, bool)]) -> bool {
    let n = hole.len();
    // The hole's topmost horizontal edge, leftmost first.
    let mut best: Option<(i64, i64, usize)> = None;
    for t in 0..n {
        let a = hole[t];
        let b = hole[(t + 1) % n];
        if a.1 == b.1 {
            let key = (a.1, a.0.min(b.0), t);
            if best.is_none_or(|k| (key.0, key.1) < (k.0, k.1)) {
                best = Some(key);
            }
        }
    }
    let Some((hy, hxmin, t)) = best else {
        return false;
    };
    let cx = hxmin + 1;
    // The nearest horizontal edge of the outer polygon above the cut point.
    let m = outer.len();
    let mut hit: Option<(i64, usize)> = None;
    for s in 0..m {
        let a = outer[s];
        let b = outer[(s + 1) % m];
        if a.1 == b.1
            && a.1 < hy
            && a.0.min(b.0) < cx
            && cx < a.0.max(b.0)
            && hit.is_none_or(|(y, _)| a.1 > y)
        {
            hit = Some((a.1, s));
        }
    }
    let Some((py, s)) = hit else {
        return false;
    };
    let hc = (cx, hy, true);
    let hp = (cx, py, true);
    let mut seq = Vec::with_capacity(n + 4);
    seq.push(hp);
    seq.push(hc);
    for u in 1..=n {
        seq.push(hole[(t + u) % n]);
    }
    seq.push(hc);
    seq.push(hp);
    let tail = outer.split_off(s + 1);
    outer.extend(seq);
    outer.extend(tail);
    true
}

/// Douglas–Peucker on an open chain of in-plane mm points; marks kept indices.
fn dp_chain(p: &[[f64; 2]], a: usize, b: usize, tol: f64, keep: &mut [bool]) {
    let mut stack = vec![(a, b)];
    while let Some((a, b)) = stack.pop() {
        if b <= a + 1 {
            continue;
        }
        let (pa, pb) = (p[a], p[b % p.len()]);
        let (dx, dy) = (pb[0] - pa[0], pb[1] - pa[1]);
        let len = (dx * dx + dy * dy).sqrt();
        let mut far = (0.0, a);
        for (c, q) in p.iter().enumerate().take(b).skip(a + 1) {
            let d = if len > 0.0 {
                ((q[0] - pa[0]) * dy - (q[1] - pa[1]) * dx).abs() / len
            } else {
                ((q[0] - pa[0]).powi(2) + (q[1] - pa[1]).powi(2)).sqrt()
            };
            if d > far.0 {
                far = (d, c);
            }
        }
        if far.0 > tol {
            keep[far.1] = true;
            stack.push((a, far.1));
            stack.push((far.1, b));
        }
    }
}

fn simplify(pts: Vec<(i64, i64, bool)>, sx: f64, sy: f64, tol: f64) -> Vec<(i64, i64, bool)> {
    let n = pts.len();
    if tol <= 0.0 || n < 4 {
        return pts;
    }
    let mm: Vec<[f64; 2]> = pts
        .iter()
        .map(|p| [p.0 as f64 * sx / 4.0, p.1 as f64 * sy / 4.0])
        .collect();
    let mut keep: Vec<bool> = pts.iter().map(|p| p.2).collect();
    let mut anchors: Vec<usize> = (0..n).filter(|&i| keep[i]).collect();
    if anchors.is_empty() {
        let far = (1..n)
            .max_by(|&a, &b| {
                let da = (mm[a][0] - mm[0][0]).powi(2) + (mm[a][1] - mm[0][1]).powi(2);
                let db = (mm[b][0] - mm[0][0]).powi(2) + (mm[b][1] - mm[0][1]).powi(2);
                da.total_cmp(&db)
            })
            .unwrap_or(0);
        anchors = vec![0, far];
    }
    for &a in &anchors {
        keep[a] = true;
    }
    // Extend the point list by one turn so chains can wrap around.
    let mut ext = mm.clone();
    ext.extend_from_slice(&mm);
    let mut keep_ext = vec![false; 2 * n];
    for w in 0..anchors.len() {
        let a = anchors[w];
        let b = if w + 1 < anchors.len() {
            anchors[w + 1]
        } else {
            anchors[0] + n
        };
        dp_chain(&ext, a, b, tol, &mut keep_ext);
    }
    for (i, k) in keep_ext.iter().enumerate() {
        if *k {
            keep[i % n] = true;
        }
    }
    pts.into_iter()
        .zip(keep)
        .filter_map(|(p, k)| k.then_some(p))
        .collect()
}

/// Traces the contours of one 2-D mask (`cols × rows`, row-major) in (i, j) index coordinates.
///
/// `spacing` is the in-plane (column, row) spacing in mm, used only by the tolerance.
pub fn trace_slice(
    mask: &[bool],
    cols: usize,
    rows: usize,
    spacing: [f64; 2],
    opts: &ContourOptions,
) -> Result<Vec<SlicePolygon>> {
    if mask.len() != cols * rows {
        return Err(Error::InvalidArgument(format!(
            "mask has {} values, {cols}×{rows} needs {}",
            mask.len(),
            cols * rows
        )));
    }
    let (runs, row_start) = mask_runs(mask, cols, rows);
    Ok(trace_runs_at(
        &runs,
        &row_start,
        cols,
        rows,
        [0, 0],
        spacing,
        opts,
    ))
}

/// [`trace_slice`] of a mask given by its runs ([`mask_runs`]) that is the `cols × rows` window
/// at column `offset[0]`, row `offset[1]` of a larger slice with nothing outside the window:
/// polygons in the larger slice's (i, j) coordinates, identical to tracing the whole slice.
fn trace_runs_at(
    runs: &[(usize, usize)],
    row_start: &[usize],
    cols: usize,
    rows: usize,
    offset: [usize; 2],
    spacing: [f64; 2],
    opts: &ContourOptions,
) -> Vec<SlicePolygon> {
    let (dx, dy) = (4 * offset[0] as i64, 4 * offset[1] as i64);
    let mut loops = trace_loops(runs, row_start, cols, rows);
    if dx != 0 || dy != 0 {
        for (_, l) in loops.iter_mut() {
            for p in l.pts.iter_mut() {
                p.0 += dx;
                p.1 += dy;
            }
        }
    }
    let ncomp = loops.iter().map(|(c, _)| *c).max().unwrap_or(0) as usize;
    let mut outer: Vec<Option<Loop>> = vec![None; ncomp + 1];
    let mut holes: Vec<Vec<Loop>> = vec![Vec::new(); ncomp + 1];
    let mut order = Vec::new();
    for (c, l) in loops {
        let c = c as usize;
        if l.area2 > 0 && outer[c].is_none() {
            order.push(c);
            outer[c] = Some(l);
        } else if l.area2 < 0 {
            holes[c].push(l);
        } else {
            log::debug!("dropping a degenerate traced loop (component {c})");
        }
    }
    let mut result = Vec::new();
    let to_poly = |pts: Vec<(i64, i64, bool)>, is_hole: bool| -> Option<SlicePolygon> {
        let pts = simplify(pts, spacing[0], spacing[1], opts.tolerance_mm);
        (pts.len() >= 3).then(|| SlicePolygon {
            points: pts
                .iter()
                .map(|p| [p.0 as f64 / 4.0 - 0.5, p.1 as f64 / 4.0 - 0.5])
                .collect(),
            is_hole,
        })
    };
    for c in order {
        let Some(o) = outer[c].take() else { continue };
        let mut hs = std::mem::take(&mut holes[c]);
        match opts.holes {
            HoleEncoding::Keyhole => {
                hs.sort_by_key(|h| {
                    h.pts
                        .iter()
                        .map(|p| (p.1, p.0))
                        .min()
                        .unwrap_or((i64::MAX, i64::MAX))
                });
                let mut poly = o.pts;
                let mut separate = Vec::new();
                for h in hs {
                    if !keyhole(&mut poly, &h.pts) {
                        log::warn!("keyhole cut not found; writing a hole as its own contour");
                        separate.push(h);
                    }
                }
                result.extend(to_poly(poly, false));
                for h in separate {
                    result.extend(to_poly(h.pts, true));
                }
            }
            HoleEncoding::Separate | HoleEncoding::Xor => {
                result.extend(to_poly(o.pts, false));
                for h in hs {
                    result.extend(to_poly(h.pts, true));
                }
            }
        }
    }
    // Holes whose component had no outer loop cannot occur; any left are kept as contours.
    for hs in holes {
        for h in hs {
            result.extend(to_poly(h.pts, true));
        }
    }
    result
}

/// Maps a slice polygon to the patient frame.
pub fn to_patient(geometry: &Geometry, k: usize, poly: &SlicePolygon) -> Vec<[f64; 3]> {
    poly.points
        .iter()
        .map(|p| geometry.index_to_patient([p[0], p[1], k as f64]))
        .collect()
}

/// Contours of every voxel equal to `label`, slice by slice (in parallel), in patient mm.
pub fn contours_for_label(
    labels: &Volume<u8>,
    label: u8,
    opts: &ContourOptions,
) -> Result<Vec<Contour>> {
    contours_where(labels, |v| v == label, opts)
}

/// Contours of every voxel whose label satisfies `inside` (for example `|l| l != 0`, the union
/// of all structures), slice by slice in parallel, in patient mm. Each slice is traced inside
/// the bounding box of its voxels, so the work follows the structure's extent, not the grid's.
pub fn contours_where(
    labels: &Volume<u8>,
    inside: impl Fn(u8) -> bool + Sync,
    opts: &ContourOptions,
) -> Result<Vec<Contour>> {
    Ok(contours_where_each(labels, &[label_set(inside)], opts)?
        .into_iter()
        .next()
        .unwrap_or_default())
}

/// A set of label values: entry `v` tells whether label `v` belongs to it ([`label_set`]).
pub type LabelSet = [bool; 256];

/// The labels `v` with `inside(v)`, as a [`LabelSet`] for [`contours_where_each`].
pub fn label_set(inside: impl Fn(u8) -> bool) -> LabelSet {
    let mut set = [false; 256];
    for (v, t) in set.iter_mut().enumerate() {
        *t = inside(v as u8);
    }
    set
}

/// [`contours_where`] for several label sets in one pass over the label map: each slice's rows
/// are split into runs of equal labels once, and every set's runs are merged from those. One
/// list of contours per set, in the order given (each as [`contours_where`] gives it).
pub fn contours_where_each(
    labels: &Volume<u8>,
    sets: &[LabelSet],
    opts: &ContourOptions,
) -> Result<Vec<Vec<Contour>>> {
    let g = *labels.geometry();
    let [cols, _, slices] = g.size;
    let per_slice: Vec<Vec<Vec<Contour>>> = (0..slices)
        .into_par_iter()
        .map(|k| {
            let Some(sl) = labels.slice(k) else {
                return vec![Vec::new(); sets.len()];
            };
            // runs of equal labels of every row (full width), once for all sets
            let mut segments = Vec::new();
            let mut seg_start = Vec::with_capacity(sl.len() / cols.max(1) + 1);
            for row in sl.chunks(cols.max(1)) {
                seg_start.push(segments.len());
                label_segments(row, &mut segments);
            }
            seg_start.push(segments.len());
            let mut runs = Vec::new();
            let mut run_start = Vec::with_capacity(seg_start.len());
            sets.iter()
                .map(|table| {
                    runs.clear();
                    run_start.clear();
                    for w in seg_start.windows(2) {
                        run_start.push(runs.len());
                        let row = w
                            .first()
                            .zip(w.get(1))
                            .and_then(|(&a, &b)| segments.get(a..b))
                            .unwrap_or(&[]);
                        runs_in(row, table, &mut runs);
                    }
                    run_start.push(runs.len());
                    trace_slice_runs(&runs, &run_start, &g, k, opts)
                })
                .collect()
        })
        .collect();
    let mut out: Vec<Vec<Contour>> = vec![Vec::new(); sets.len()];
    for slice in per_slice {
        for (all, c) in out.iter_mut().zip(slice) {
            all.extend(c);
        }
    }
    Ok(out)
}

/// The contours of slice `k` from the runs of every row of its mask (full width; `all_start`
/// holds each row's first run and a final sentinel, as [`mask_runs`] gives them): traced inside
/// the box the runs span.
fn trace_slice_runs(
    all_runs: &[(usize, usize)],
    all_start: &[usize],
    g: &Geometry,
    k: usize,
    opts: &ContourOptions,
) -> Vec<Contour> {
    let gtype = match opts.holes {
        HoleEncoding::Xor => GeometricType::ClosedPlanarXor,
        _ => GeometricType::ClosedPlanar,
    };
    let rows_with = |(j, w): (usize, &[usize])| (w.first() != w.get(1)).then_some(j);
    let Some(j0) = all_start.windows(2).enumerate().find_map(rows_with) else {
        return Vec::new();
    };
    let j1 = all_start
        .windows(2)
        .enumerate()
        .rev()
        .find_map(rows_with)
        .map_or(j0 + 1, |j| j + 1);
    let i0 = all_runs.iter().map(|r| r.0).min().unwrap_or(0);
    let i1 = all_runs.iter().map(|r| r.1).max().unwrap_or(0);
    let (w, h) = (i1 - i0, j1 - j0);
    let base = all_start.get(j0).copied().unwrap_or(0);
    let runs: Vec<(usize, usize)> = all_runs
        .get(base..)
        .unwrap_or(&[])
        .iter()
        .map(|&(a, b)| (a - i0, b - i0))
        .collect();
    let row_start: Vec<usize> = all_start
        .get(j0..=j1)
        .unwrap_or(&[])
        .iter()
        .map(|&n| n - base)
        .collect();
    let polys = trace_runs_at(
        &runs,
        &row_start,
        w,
        h,
        [i0, j0],
        [g.spacing[0], g.spacing[1]],
        opts,
    );
    polys
        .iter()
        .map(|p| Contour {
            slice: k,
            points: to_patient(g, k, p),
            geometric_type: gtype,
        })
        .collect()
}

/// Appends to `out` the runs of equal values of `row`, `(i0, i1, value)` with `i1` exclusive,
/// which together cover the row. Stretches of 32 values equal to the current one (background,
/// a structure's interior) are passed at once by a comparison the compiler vectorises, so the
/// cost follows the boundaries more than the row's length.
fn label_segments(row: &[u8], out: &mut Vec<(usize, usize, u8)>) {
    const CHUNK: usize = 32;
    let Some(&first) = row.first() else {
        return;
    };
    let (mut start, mut cur) = (0, first);
    let mut i = 0;
    while i < row.len() {
        if let Some(c) = row.get(i..i + CHUNK)
            && c.iter().fold(true, |a, &v| a & (v == cur))
        {
            i += CHUNK;
            continue;
        }
        let end = (i + CHUNK).min(row.len());
        for (n, &v) in row.get(i..end).unwrap_or(&[]).iter().enumerate() {
            if v != cur {
                out.push((start, i + n, cur));
                (start, cur) = (i + n, v);
            }
        }
        i = end;
    }
    out.push((start, row.len(), cur));
}

/// Appends to `out` the runs `(i0, i1)` of the values `v` with `table[v]` of one row given by
/// its runs of equal values ([`label_segments`]): neighbouring segments in the set merge.
fn runs_in(segments: &[(usize, usize, u8)], table: &[bool; 256], out: &mut Vec<(usize, usize)>) {
    let mut open: Option<(usize, usize)> = None;
    for &(a, b, v) in segments {
        if table[v as usize] {
            open = Some(open.map_or((a, b), |(s, _)| (s, b)));
        } else if let Some(r) = open.take() {
            out.push(r);
        }
    }
    out.extend(open);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(rows: &[&str]) -> (Vec<bool>, usize, usize) {
        let h = rows.len();
        let w = rows[0].len();
        let m = rows
            .iter()
            .flat_map(|r| r.bytes().map(|b| b == b'#'))
            .collect();
        (m, w, h)
    }

    fn total_area(p: &[SlicePolygon]) -> f64 {
        p.iter().map(|q| polygon_area(&q.points)).sum()
    }

    /// Even-odd point-in-polygon of all polygons together (the reader's rule).
    fn inside(polys: &[SlicePolygon], x: f64, y: f64) -> bool {
        let mut c = false;
        for p in polys {
            let n = p.points.len();
            for a in 0..n {
                let (p1, p2) = (p.points[a], p.points[(a + 1) % n]);
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

    fn check_exact(rows: &[&str], opts: &ContourOptions) -> Vec<SlicePolygon> {
        let (m, w, h) = mask(rows);
        let polys = trace_slice(&m, w, h, [1.0, 1.0], opts).unwrap();
        let count = m.iter().filter(|b| **b).count() as f64;
        assert_eq!(total_area(&polys), count, "area for {rows:?}");
        for y in 0..h {
            for x in 0..w {
                assert_eq!(
                    inside(&polys, x as f64, y as f64),
                    m[y * w + x],
                    "voxel ({x},{y}) of {rows:?}"
                );
            }
        }
        polys
    }

    #[test]
    fn square_has_four_corners() {
        let p = check_exact(
            &["....", ".##.", ".##.", "...."],
            &ContourOptions::default(),
        );
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].points.len(), 4);
        assert!(p[0].points.contains(&[0.5, 0.5]));
        assert!(p[0].points.contains(&[2.5, 2.5]));
    }

    #[test]
    fn ring_keyhole_is_one_polygon_with_exact_area() {
        let rows = ["#####", "#...#", "#.#.#", "#...#", "#####"];
        let p = check_exact(&rows, &ContourOptions::default());
        // ring (keyholed) + island inside the hole
        assert_eq!(p.len(), 2);
        assert!(p.iter().all(|q| !q.is_hole));
        for opt in [HoleEncoding::Separate, HoleEncoding::Xor] {
            let o = ContourOptions {
                holes: opt,
                ..Default::default()
            };
            let p = check_exact(&rows, &o);
            assert_eq!(p.len(), 3);
            assert_eq!(p.iter().filter(|q| q.is_hole).count(), 1);
        }
    }

    #[test]
    fn many_holes_diagonals_and_borders() {
        let cases: &[&[&str]] = &[
            &["##.", "#.#", ".##"],
            &["#.#.#", ".#.#.", "#.#.#"],
            &[
                "##########",
                "#..#.#...#",
                "#..###.#.#",
                "####.#...#",
                "#..#.#####",
                "#.##.#.#.#",
                "##########",
            ],
            &["###", "#.#", "###"],
            &["####", "#..#", "#.##", "####"],
            &["#####", "#.#.#", "##.##", "#.#.#", "#####"],
        ];
        for rows in cases {
            for holes in [HoleEncoding::Keyhole, HoleEncoding::Separate] {
                check_exact(
                    rows,
                    &ContourOptions {
                        holes,
                        ..Default::default()
                    },
                );
            }
        }
    }

    #[test]
    fn pseudo_random_masks_are_exact() {
        let mut s = 12345u64;
        for _ in 0..200 {
            let (w, h) = (9, 8);
            let mut rows = Vec::new();
            for _ in 0..h {
                let mut r = String::new();
                for _ in 0..w {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    r.push(if (s >> 33) % 100 < 60 { '#' } else { '.' });
                }
                rows.push(r);
            }
            let refs: Vec<&str> = rows.iter().map(|r| r.as_str()).collect();
            let p = check_exact(&refs, &ContourOptions::default());
            assert!(p.iter().all(|q| q.points.len() >= 4));
        }
    }

    #[test]
    fn tolerance_reduces_points_and_keeps_cuts() {
        // a disc of radius 20 with a hole of radius 6
        let n = 50;
        let mut m = vec![false; n * n];
        for y in 0..n {
            for x in 0..n {
                let r2 = (x as f64 - 25.0).powi(2) + (y as f64 - 25.0).powi(2);
                m[y * n + x] = r2 <= 400.0 && r2 > 36.0;
            }
        }
        let exact = trace_slice(&m, n, n, [1.0, 1.0], &ContourOptions::default()).unwrap();
        let simple = trace_slice(
            &m,
            n,
            n,
            [1.0, 1.0],
            &ContourOptions {
                tolerance_mm: 0.8,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(exact.len(), 1);
        assert_eq!(simple.len(), 1);
        assert!(simple[0].points.len() < exact[0].points.len() / 2);
        let (a, b) = (
            polygon_area(&exact[0].points),
            polygon_area(&simple[0].points),
        );
        assert!((a - b).abs() / a < 0.05, "{a} vs {b}");
    }

    #[test]
    fn cropped_tracing_equals_whole_slice_tracing() {
        // random blobs placed anywhere in a 40 × 30 slice (touching borders too): tracing the
        // bounding box (contours_for_label) gives the polygons of tracing the whole slice
        let g = Geometry::new(
            [40, 30, 1],
            [0.0; 3],
            [1.0; 3],
            [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        )
        .unwrap();
        let mut s = 99u64;
        for case in 0..100 {
            let mut next = || {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (s >> 33) as usize
            };
            let (x0, y0) = (next() % 40, next() % 30);
            let (bw, bh) = (1 + next() % 20, 1 + next() % 15);
            let mut data = vec![0u8; 40 * 30];
            for y in y0..(y0 + bh).min(30) {
                for x in x0..(x0 + bw).min(40) {
                    if next() % 100 < 65 {
                        data[y * 40 + x] = 1 + (next() % 2) as u8;
                    }
                }
            }
            let v = Volume::new(g, data.clone()).unwrap();
            for tol in [0.0, 0.7] {
                let opts = ContourOptions {
                    tolerance_mm: tol,
                    ..Default::default()
                };
                let mask: Vec<bool> = data.iter().map(|&l| l == 1).collect();
                let whole = trace_slice(&mask, 40, 30, [1.0, 1.0], &opts).unwrap();
                let cropped = contours_for_label(&v, 1, &opts).unwrap();
                assert_eq!(whole.len(), cropped.len(), "case {case}");
                for (a, b) in whole.iter().zip(&cropped) {
                    assert_eq!(to_patient(&g, 0, a), b.points, "case {case}");
                }
                let union = contours_where(&v, |l| l != 0, &opts).unwrap();
                let mask: Vec<bool> = data.iter().map(|&l| l != 0).collect();
                assert_eq!(
                    trace_slice(&mask, 40, 30, [1.0, 1.0], &opts).unwrap().len(),
                    union.len()
                );
            }
        }
    }

    /// Several label sets traced in one pass give, per set and slice, the polygons of tracing
    /// that set's mask alone with `trace_slice`.
    #[test]
    fn sets_traced_together_equal_each_mask_traced_alone() {
        let (w, h, d) = (37, 29, 5);
        let g = Geometry::new(
            [w, h, d],
            [-10.0, 4.0, 30.0],
            [0.8, 0.6, 2.5],
            [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        )
        .unwrap();
        let mut rng = autocontour_test_support::XorShift::new(0x5eed_0c0f_fee1_dead);
        for case in 0..40 {
            // blobs of labels 1..=3 on a background, one slice left empty
            let mut data = vec![0u8; w * h * d];
            for k in 0..d {
                if k == 2 && case % 2 == 0 {
                    continue;
                }
                for _ in 0..1 + rng.next_u64() % 4 {
                    let (x0, y0) = (rng.next_u64() as usize % w, rng.next_u64() as usize % h);
                    let (bw, bh) = (
                        1 + rng.next_u64() as usize % 20,
                        1 + rng.next_u64() as usize % 15,
                    );
                    let l = 1 + (rng.next_u64() % 3) as u8;
                    for y in y0..(y0 + bh).min(h) {
                        for x in x0..(x0 + bw).min(w) {
                            if rng.next_u64() % 100 < 70 {
                                data[(k * h + y) * w + x] = l;
                            }
                        }
                    }
                }
            }
            let v = Volume::new(g, data.clone()).unwrap();
            let preds: [&dyn Fn(u8) -> bool; 4] =
                [&|l| l == 1, &|l| l == 3, &|l| l != 0, &|l| l == 0];
            let sets = preds.map(label_set);
            for holes in [HoleEncoding::Keyhole, HoleEncoding::Xor] {
                let opts = ContourOptions {
                    holes,
                    ..Default::default()
                };
                let each = contours_where_each(&v, &sets, &opts).unwrap();
                assert_eq!(each.len(), sets.len());
                for (set, got) in preds.iter().zip(&each) {
                    let mut want = Vec::new();
                    for k in 0..d {
                        let slice = &data[k * w * h..(k + 1) * w * h];
                        let mask: Vec<bool> = slice.iter().map(|&l| set(l)).collect();
                        for p in trace_slice(&mask, w, h, [0.8, 0.6], &opts).unwrap() {
                            want.push(to_patient(&g, k, &p));
                        }
                    }
                    let got: Vec<_> = got.iter().map(|c| c.points.clone()).collect();
                    assert_eq!(got, want, "case {case}");
                }
            }
        }
    }

    #[test]
    fn segment_runs_match_a_plain_scan() {
        let mut s = 7u64;
        for case in 0..300 {
            let n = 1 + case % 150;
            let mut row = vec![0u8; n];
            let mut v = 0u8;
            for x in row.iter_mut() {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                if (s >> 33).is_multiple_of(40) {
                    v = ((s >> 40) % 4) as u8;
                }
                *x = v;
            }
            for table in [
                [false, true, false, false],
                [false, true, true, true],
                [true, false, false, true],
            ] {
                let mut t = [false; 256];
                t[..4].copy_from_slice(&table);
                let mut segments = Vec::new();
                label_segments(&row, &mut segments);
                // maximal runs of equal values that cover the row
                let mut end = 0;
                for (at, &(a, b, v)) in segments.iter().enumerate() {
                    assert!(a == end && b > a, "case {case}");
                    assert!(row[a..b].iter().all(|&x| x == v), "case {case}");
                    if at > 0 {
                        assert_ne!(segments[at - 1].2, v, "case {case}");
                    }
                    end = b;
                }
                assert_eq!(end, n, "case {case}");
                let mut got = Vec::new();
                runs_in(&segments, &t, &mut got);
                let mut want = Vec::new();
                let mut i = 0;
                while i < n {
                    if t[row[i] as usize] {
                        let a = i;
                        while i < n && t[row[i] as usize] {
                            i += 1;
                        }
                        want.push((a, i));
                    } else {
                        i += 1;
                    }
                }
                assert_eq!(got, want, "case {case}");
            }
        }
    }

    #[test]
    fn rejects_wrong_mask_size() {
        assert!(trace_slice(&[true; 5], 2, 2, [1.0, 1.0], &ContourOptions::default()).is_err());
    }
}
