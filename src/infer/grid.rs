//! The model grid: the CT reoriented (nearest axis permutation and flips) and resampled to the
//! model's spacing, and the separable index maps between the two grids.
//!
//! Convention (also in `models/MANIFEST.md`): the model grid's first voxel centre is a CT voxel
//! centre; along each axis the model has exactly the target spacing, `n' = ⌊(n − 1)·s/s'⌋ + 1`
//! voxels, and model index `c'` samples CT index `c = c'·s'/s` (mirrored when the axis is
//! flipped). Because reorientation only permutes and flips axes, the map is separable: each
//! model axis depends on one CT axis only.

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::model::{Normalization, Orientation, Spacing};
use crate::volume::{Geometry, HuRef, HuSample, Volume, with_hu};

/// One model axis: which CT axis it runs along, in which direction, at which spacing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AxisMap {
    /// CT voxel axis (0 = i, 1 = j, 2 = k).
    pub ct_axis: usize,
    /// True when the model axis runs against the CT axis.
    pub flipped: bool,
    /// CT voxels along that axis.
    pub ct_len: usize,
    /// Model voxels along this axis.
    pub len: usize,
    /// CT index step per model voxel (s' / s).
    pub step: f64,
}

impl AxisMap {
    /// Continuous CT index of model index `m`.
    #[inline]
    pub fn to_ct(&self, m: f64) -> f64 {
        let c = m * self.step;
        if self.flipped {
            (self.ct_len as f64 - 1.0) - c
        } else {
            c
        }
    }

    /// Continuous model index of CT index `c`.
    #[inline]
    pub fn to_model(&self, c: f64) -> f64 {
        let c = if self.flipped {
            (self.ct_len as f64 - 1.0) - c
        } else {
            c
        };
        c / self.step
    }
}

/// The model grid of one CT.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelGrid {
    /// Model axes x, y, z (array order is z, y, x).
    pub axes: [AxisMap; 3],
    /// Geometry of the model grid in the patient frame (i = model x, j = model y, k = model z).
    pub geometry: Geometry,
}

/// Chooses, for each patient axis, the CT axis closest to it (best permutation overall).
pub(crate) fn lps_permutation(ct: &Geometry) -> [(usize, bool); 3] {
    const PERMS: [[usize; 3]; 6] = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    let mut best = (f64::NEG_INFINITY, [0usize, 1, 2]);
    for p in PERMS {
        // patient axis r uses CT axis p[r]; direction[r][a] = component r of CT axis a.
        let score: f64 = (0..3).map(|r| ct.direction[r][p[r]].abs()).sum();
        if score > best.0 + 1e-12 {
            best = (score, p);
        }
    }
    let p = best.1;
    [
        (p[0], ct.direction[0][p[0]] < 0.0),
        (p[1], ct.direction[1][p[1]] < 0.0),
        (p[2], ct.direction[2][p[2]] < 0.0),
    ]
}

impl ModelGrid {
    /// Builds the model grid for a CT geometry.
    pub fn new(ct: &Geometry, orientation: Orientation, spacing: Spacing) -> Result<ModelGrid> {
        let perm = match orientation {
            Orientation::Lps => lps_permutation(ct),
            Orientation::Native => [(0, false), (1, false), (2, false)],
            Orientation::Ras => {
                let [x, y, z] = lps_permutation(ct);
                [(x.0, !x.1), (y.0, !y.1), z]
            }
        };
        let mut axes = [AxisMap {
            ct_axis: 0,
            flipped: false,
            ct_len: 1,
            len: 1,
            step: 1.0,
        }; 3];
        for (m, &(a, flipped)) in perm.iter().enumerate() {
            let n = ct.size[a];
            let s = ct.spacing[a];
            let target = match spacing {
                Spacing::Mm(t) => t[m],
                Spacing::Native(_) => s,
            };
            let step = target / s;
            let len = (((n as f64 - 1.0) / step) + 1e-6).floor() + 1.0;
            if !(step.is_finite() && step > 0.0 && len <= MAX_AXIS_VOXELS as f64) {
                return Err(Error::InvalidArgument(format!(
                    "model grid: {target} mm along model axis {m} over {n} CT voxels of {s} mm gives {len} voxels (at most {MAX_AXIS_VOXELS})"
                )));
            }
            let len = len as usize;
            axes[m] = AxisMap {
                ct_axis: a,
                flipped,
                ct_len: n,
                len,
                step,
            };
        }
        // Geometry: origin = patient position of model index 0; axis m = ±CT axis.
        let mut idx0 = [0.0; 3];
        for ax in &axes {
            idx0[ax.ct_axis] = ax.to_ct(0.0);
        }
        let origin = ct.index_to_patient(idx0);
        let mut direction = [[0.0; 3]; 3];
        let mut spacing_m = [0.0; 3];
        for (m, ax) in axes.iter().enumerate() {
            let d = ct.axis(ax.ct_axis);
            let sign = if ax.flipped { -1.0 } else { 1.0 };
            for r in 0..3 {
                direction[r][m] = sign * d[r];
            }
            spacing_m[m] = ax.step * ct.spacing[ax.ct_axis];
        }
        let geometry = Geometry::new(
            [axes[0].len, axes[1].len, axes[2].len],
            origin,
            spacing_m,
            direction,
        )
        .map_err(|e| Error::InvalidArgument(format!("model grid: {e}")))?;
        Ok(ModelGrid { axes, geometry })
    }

    /// Model size as `[z, y, x]`.
    pub fn zyx(&self) -> [usize; 3] {
        [self.axes[2].len, self.axes[1].len, self.axes[0].len]
    }

    /// An error unless this grid is one [`ModelGrid::new`] could have made for a CT of geometry
    /// `ct`: each CT axis used by exactly one model axis, with the CT's length along it, at
    /// least one model voxel per axis (at most [`MAX_AXIS_VOXELS`]), positive finite steps and
    /// a `geometry` of the axes' lengths. The functions that map between the grids check it, so
    /// a grid built by hand, or made for another CT, is refused instead of read out of bounds.
    pub fn check(&self, ct: &Geometry) -> Result<()> {
        let bad = |why: String| Err(Error::InvalidArgument(format!("model grid: {why}")));
        let mut used = [false; 3];
        for (m, ax) in self.axes.iter().enumerate() {
            let Some(u) = used.get_mut(ax.ct_axis).filter(|u| !**u) else {
                return bad(format!(
                    "model axis {m} runs along CT axis {}, which is not a CT axis or is taken",
                    ax.ct_axis
                ));
            };
            *u = true;
            let ct_len = ct.size.get(ax.ct_axis).copied().unwrap_or(0);
            if ax.ct_len != ct_len {
                return bad(format!(
                    "model axis {m} expects {} CT voxels along CT axis {}, the CT has {ct_len}",
                    ax.ct_len, ax.ct_axis
                ));
            }
            if ax.len == 0 || ax.len > MAX_AXIS_VOXELS || !(ax.step.is_finite() && ax.step > 0.0) {
                return bad(format!(
                    "model axis {m} has {} voxels at a step of {} CT voxels",
                    ax.len, ax.step
                ));
            }
        }
        let lens = [self.axes[0].len, self.axes[1].len, self.axes[2].len];
        if self.geometry.size != lens {
            return bad(format!(
                "geometry of size {:?} for axes of {lens:?} voxels",
                self.geometry.size
            ));
        }
        if crate::volume::checked_product(&lens).is_none() {
            return bad(format!("{lens:?} voxels overflow"));
        }
        Ok(())
    }
}

/// Most voxels a model grid may have along one axis.
pub const MAX_AXIS_VOXELS: usize = 1 << 20;

/// An error unless `len` values are `classes` (1–256, the labels are bytes) values per voxel of
/// `grid`.
fn check_per_voxel(len: usize, classes: usize, grid: &ModelGrid, what: &str) -> Result<()> {
    let vox = grid.geometry.voxel_count();
    if !(1..=256).contains(&classes) || classes.checked_mul(vox) != Some(len) {
        return Err(Error::InvalidArgument(format!(
            "{what}: {len} values for {classes} classes on a model grid of {vox} voxels (1 to 256 classes)"
        )));
    }
    Ok(())
}

/// Linear interpolation taps along one axis: for each output index, (lower index, weight of the
/// upper neighbour). Indices are clamped to the input.
fn taps(len: usize, in_len: usize, f: impl Fn(f64) -> f64) -> Vec<(usize, f32)> {
    (0..len)
        .map(|m| {
            let c = f(m as f64).clamp(0.0, (in_len.max(1) - 1) as f64);
            let lo = (c.floor() as usize).min(in_len.saturating_sub(2));
            let w = (c - lo as f64) as f32;
            (lo, w.clamp(0.0, 1.0))
        })
        .collect()
}

/// Resamples and normalises the CT onto the model grid; returns `[z][y][x]` values.
///
/// # Errors
/// [`Error::InvalidArgument`] when `grid` was not made for the CT's geometry
/// ([`ModelGrid::check`]).
pub fn resample_to_model<'a>(
    ct: impl Into<HuRef<'a>>,
    grid: &ModelGrid,
    norm: &Normalization,
) -> Result<Vec<f32>> {
    let ct = ct.into();
    grid.check(ct.geometry())?;
    Ok(with_hu!(ct, v => resample_to_model_of(v, grid, norm)))
}

fn resample_to_model_of<T: HuSample>(
    ct: &Volume<T>,
    grid: &ModelGrid,
    norm: &Normalization,
) -> Vec<f32> {
    let g = ct.geometry();
    let [nx, ny, nz] = [grid.axes[0].len, grid.axes[1].len, grid.axes[2].len];
    let tx = taps(nx, grid.axes[0].ct_len, |m| grid.axes[0].to_ct(m));
    let ty = taps(ny, grid.axes[1].ct_len, |m| grid.axes[1].to_ct(m));
    let tz = taps(nz, grid.axes[2].ct_len, |m| grid.axes[2].to_ct(m));
    // Strides of the CT array for each model axis.
    let ct_stride = [1usize, g.size[0], g.size[0] * g.size[1]];
    let sx = ct_stride[grid.axes[0].ct_axis];
    let sy = ct_stride[grid.axes[1].ct_axis];
    let sz = ct_stride[grid.axes[2].ct_axis];
    // Step to the upper neighbour, 0 when the axis has one voxel.
    let ux = if grid.axes[0].ct_len > 1 { sx } else { 0 };
    let uy = if grid.axes[1].ct_len > 1 { sy } else { 0 };
    let uz = if grid.axes[2].ct_len > 1 { sz } else { 0 };
    let data = ct.data();
    let at = |i: usize| data.get(i).map(|&v| norm.apply(v.hu())).unwrap_or(0.0);
    let mut out = vec![0f32; nx * ny * nz];
    out.par_chunks_mut((nx * ny).max(1))
        .enumerate()
        .for_each(|(z, plane)| {
            let Some(&(z0, wz)) = tz.get(z) else { return };
            for (y, row) in plane.chunks_mut(nx.max(1)).enumerate() {
                let Some(&(y0, wy)) = ty.get(y) else { return };
                for (x, o) in row.iter_mut().enumerate() {
                    let Some(&(x0, wx)) = tx.get(x) else { return };
                    let b = z0 * sz + y0 * sy + x0 * sx;
                    let c00 = at(b) * (1.0 - wx) + at(b + ux) * wx;
                    let c01 = at(b + uy) * (1.0 - wx) + at(b + uy + ux) * wx;
                    let c10 = at(b + uz) * (1.0 - wx) + at(b + uz + ux) * wx;
                    let c11 = at(b + uz + uy) * (1.0 - wx) + at(b + uz + uy + ux) * wx;
                    let c0 = c00 * (1.0 - wy) + c01 * wy;
                    let c1 = c10 * (1.0 - wy) + c11 * wy;
                    *o = c0 * (1.0 - wz) + c1 * wz;
                }
            }
        });
    out
}

/// Brings per-class scores on the model grid (`[c][z][y][x]`) back to the CT grid: trilinear per
/// class at each CT voxel, then argmax (the first class wins ties).
///
/// Trilinear interpolation is separable: each CT slice interpolates the model grid along the
/// axis that runs with the CT's slices (one plane per class), then along the axis of the rows,
/// then along the last axis. Never holds more than one plane of scores per thread.
///
/// Most model cells (the box between 2 × 2 × 2 neighbouring model voxels) lie inside one
/// structure: the same class wins at all 8 corners by a clear margin. A trilinear value is a
/// convex combination of the corners, so that class wins everywhere inside the cell, and the CT
/// voxels in it take that label without interpolation. The margin ([`PURE_CELL_MARGIN`] × (1 +
/// the largest |score|)) is far above the rounding error of the three interpolation steps in
/// `f32`, so the labels are exactly those of interpolating every voxel; voxels in the other
/// cells are interpolated one by one.
///
/// # Errors
/// [`Error::InvalidArgument`] when `grid` was not made for `ct` ([`ModelGrid::check`]), or
/// `scores` is not `classes` (1–256) values per model voxel.
pub fn scores_to_ct_labels(
    scores: &[f32],
    classes: usize,
    grid: &ModelGrid,
    ct: &Geometry,
) -> Result<Vec<u8>> {
    grid.check(ct)?;
    check_per_voxel(scores.len(), classes, grid, "scores back to the CT grid")?;
    let b = BackMap::new(grid, ct);
    let pure = pure_cells(scores, classes, &b);
    let [ci, cj, _] = ct.size;
    let cells_per_plane = b.cells[1] * b.cells[0];
    let mut out = vec![0u8; ct.voxel_count()];
    out.par_chunks_mut((ci * cj).max(1))
        .enumerate()
        .for_each_init(Vec::new, |plane, (k, slice)| {
            let Some(&(k0, wk)) = b.tk.get(k) else { return };
            let pure_plane = pure
                .get(k0 * cells_per_plane..(k0 + 1) * cells_per_plane)
                .unwrap_or(&[]);
            // plane[c][a1][a0]: scores interpolated along the slice axis, built on first need
            // in the thread's buffer (reused across slices: no allocation per slice)
            let mut plane_ready = false;
            // the row's spans, shared by the CT rows in one cell row
            let mut spans: Vec<Span> = Vec::new();
            let mut spans_of = usize::MAX;
            let (mut lo, mut hi) = (vec![0f32; classes], vec![0f32; classes]);
            for (j, out_row) in slice.chunks_mut(ci.max(1)).enumerate() {
                let Some(&(j0, wj)) = b.tj.get(j) else { return };
                if spans_of != j0 {
                    let pure_row = pure_plane
                        .get(j0 * b.cells[0]..(j0 + 1) * b.cells[0])
                        .unwrap_or(&[]);
                    b.spans(pure_row, &mut spans);
                    spans_of = j0;
                }
                for span in &spans {
                    let Some(dst) = out_row.get_mut(span.start..span.end) else {
                        continue;
                    };
                    if span.label != MIXED {
                        dst.fill(span.label);
                        continue;
                    }
                    if !plane_ready {
                        interpolate_plane(scores, classes, &b, k0, wk, plane);
                        plane_ready = true;
                    }
                    let i1 = if b.l0 > 1 { span.i0 + 1 } else { span.i0 };
                    b.row_values(plane, j0, wj, span.i0, &mut lo);
                    b.row_values(plane, j0, wj, i1, &mut hi);
                    let wi = b.ti.get(span.start..span.end).unwrap_or(&[]);
                    for (o, &(_, wi)) in dst.iter_mut().zip(wi) {
                        let mut best = (f32::NEG_INFINITY, 0u8);
                        for (c, (&lo, &hi)) in lo.iter().zip(&hi).enumerate() {
                            let v = lo + wi * (hi - lo);
                            if v > best.0 {
                                best = (v, c as u8);
                            }
                        }
                        *o = best.1;
                    }
                }
            }
        });
    Ok(out)
}

/// A cell whose corners do not agree on one class by a clear margin (a 256th class, which a
/// `u8` label map cannot tell apart from this marker, is always interpolated).
const MIXED: u8 = u8::MAX;

/// Relative margin by which one class must win at all 8 corners of a model cell for the whole
/// cell to take its label without interpolation (see [`scores_to_ct_labels`]).
pub const PURE_CELL_MARGIN: f32 = 1e-4;

/// CT voxels `start..end` along the CT's first axis: all in pure cells of one `label`, or all in
/// the mixed cell starting at model index `i0`.
struct Span {
    start: usize,
    end: usize,
    i0: usize,
    label: u8,
}

/// The separable map from CT voxels back to model cells.
struct BackMap {
    /// Interpolation taps per CT index along the CT axes i, j, k: (model index, weight).
    ti: Vec<(usize, f32)>,
    tj: Vec<(usize, f32)>,
    tk: Vec<(usize, f32)>,
    /// Runs of CT voxels along i that share one model cell: (start, end, model index).
    runs: Vec<(usize, usize, usize)>,
    /// Model lengths along the model axes that run with CT i and j.
    l0: usize,
    l1: usize,
    /// Model strides (in the `[z][y][x]` array) of the axes that run with CT i, j, k.
    s: [usize; 3],
    /// Step to the upper neighbour along those axes (0 where the axis has one voxel).
    up: [usize; 3],
    /// Cells along those axes.
    cells: [usize; 3],
    model_vox: usize,
}

impl BackMap {
    fn new(grid: &ModelGrid, ct: &Geometry) -> BackMap {
        let [nx, ny, nz] = [grid.axes[0].len, grid.axes[1].len, grid.axes[2].len];
        let model_len = [nx, ny, nz];
        let model_stride = [1usize, nx, nx * ny];
        // For each CT axis: which model axis runs along it.
        let mut model_axis_of = [0usize; 3];
        for (m, ax) in grid.axes.iter().enumerate() {
            model_axis_of[ax.ct_axis] = m;
        }
        let taps_of = |a: usize| {
            let m = model_axis_of[a];
            let ax = grid.axes[m];
            taps(ct.size[a], model_len[m], |c| ax.to_model(c))
        };
        let (ti, tj, tk) = (taps_of(0), taps_of(1), taps_of(2));
        let len = model_axis_of.map(|m| model_len[m]);
        let s = model_axis_of.map(|m| model_stride[m]);
        let up = [0, 1, 2].map(|a| if len[a] > 1 { s[a] } else { 0 });
        let cells = len.map(|l| l.saturating_sub(1).max(1));
        let mut runs: Vec<(usize, usize, usize)> = Vec::new();
        for (i, &(i0, _)) in ti.iter().enumerate() {
            match runs.last_mut() {
                Some(r) if r.2 == i0 => r.1 = i + 1,
                _ => runs.push((i, i + 1, i0)),
            }
        }
        BackMap {
            ti,
            tj,
            tk,
            runs,
            l0: len[0],
            l1: len[1],
            s,
            up,
            cells,
            model_vox: nx * ny * nz,
        }
    }

    /// The spans of a CT row whose cells along i are `pure_row`: neighbouring pure cells of one
    /// label merged, each mixed cell on its own.
    fn spans(&self, pure_row: &[u8], spans: &mut Vec<Span>) {
        spans.clear();
        for &(start, end, i0) in &self.runs {
            let label = pure_row.get(i0).copied().unwrap_or(MIXED);
            match spans.last_mut() {
                Some(s) if label != MIXED && s.label == label && s.end == start => s.end = end,
                _ => spans.push(Span {
                    start,
                    end,
                    i0,
                    label,
                }),
            }
        }
    }

    /// Every class's score interpolated along the row axis at model column `a0` of `plane`
    /// (the same arithmetic, value for value, as interpolating the whole row).
    fn row_values(&self, plane: &[f32], j0: usize, wj: f32, a0: usize, out: &mut [f32]) {
        let (l0, l1) = (self.l0, self.l1);
        let j1 = if l1 > 1 { j0 + 1 } else { j0 };
        for (c, o) in out.iter_mut().enumerate() {
            let lo = plane.get((c * l1 + j0) * l0 + a0).copied().unwrap_or(0.0);
            let hi = plane.get((c * l1 + j1) * l0 + a0).copied().unwrap_or(lo);
            *o = lo + wj * (hi - lo);
        }
    }
}

/// Per model cell (indexed `[k][j][i]` along the model axes that run with CT k, j, i): the class
/// that wins at all 8 corners by [`PURE_CELL_MARGIN`] × (1 + the largest |score| anywhere), or
/// [`MIXED`]. Holds one byte per model voxel and one per cell.
fn pure_cells(scores: &[f32], classes: usize, b: &BackMap) -> Vec<u8> {
    const CHUNK: usize = 8192;
    let vol = b.model_vox;
    let [c0, c1, c2] = b.cells;
    let mut out = vec![MIXED; c0 * c1 * c2];
    let Some(scores) = scores.get(..classes * vol) else {
        return out;
    };
    // max is exact, so the parallel reduction does not depend on the thread count
    let max_abs = scores
        .par_chunks(CHUNK)
        .map(|c| c.iter().fold(0f32, |m, v| m.max(v.abs())))
        .reduce(|| 0f32, f32::max);
    let margin = PURE_CELL_MARGIN * (1.0 + max_abs);
    // per model voxel: the class that wins by the margin, or MIXED
    let mut winner = vec![MIXED; vol];
    winner
        .par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(n, chunk)| {
            for (o, v) in chunk.iter_mut().zip(n * CHUNK..) {
                let mut first = (f32::NEG_INFINITY, 0usize);
                let mut second = f32::NEG_INFINITY;
                for c in 0..classes {
                    let s = scores.get(c * vol + v).copied().unwrap_or(0.0);
                    if s > first.0 {
                        second = first.0;
                        first = (s, c);
                    } else if s > second {
                        second = s;
                    }
                }
                if first.0 - second > margin && first.1 < MIXED as usize {
                    *o = first.1 as u8;
                }
            }
        });
    out.par_chunks_mut((c0 * c1).max(1))
        .enumerate()
        .for_each(|(k0, plane)| {
            for (j0, row) in plane.chunks_mut(c0.max(1)).enumerate() {
                for (i0, o) in row.iter_mut().enumerate() {
                    let base = i0 * b.s[0] + j0 * b.s[1] + k0 * b.s[2];
                    let at = |d: usize| winner.get(base + d).copied().unwrap_or(MIXED);
                    let c = at(0);
                    let mut same = true;
                    for dk in [0, b.up[2]] {
                        for dj in [0, b.up[1]] {
                            for di in [0, b.up[0]] {
                                same &= at(dk + dj + di) == c;
                            }
                        }
                    }
                    if same {
                        *o = c;
                    }
                }
            }
        });
    out
}

/// Scores of every class interpolated along the slice axis at model index `k0` + `wk`, into
/// `plane[c][a1][a0]` (resized to fit).
fn interpolate_plane(
    scores: &[f32],
    classes: usize,
    b: &BackMap,
    k0: usize,
    wk: f32,
    plane: &mut Vec<f32>,
) {
    let vol = b.model_vox;
    let (l0, l1) = (b.l0, b.l1);
    plane.resize(classes * l1 * l0, 0.0);
    for (n, row) in plane.chunks_mut(l0.max(1)).enumerate() {
        let (c, a1) = (n / l1.max(1), n % l1.max(1));
        let base = c * vol + k0 * b.s[2] + a1 * b.s[1];
        let (lo_end, hi_end) = (base + (l0 - 1) * b.s[0], base + b.up[2] + (l0 - 1) * b.s[0]);
        match (
            b.s[0],
            scores.get(base..=lo_end),
            scores.get(base + b.up[2]..=hi_end),
        ) {
            // the common case: the CT's rows run along the model's x axis
            (1, Some(lo), Some(hi)) => {
                for ((p, &lo), &hi) in row.iter_mut().zip(lo).zip(hi) {
                    *p = lo + wk * (hi - lo);
                }
            }
            _ => {
                for (a0, p) in row.iter_mut().enumerate() {
                    let i = base + a0 * b.s[0];
                    let lo = scores.get(i).copied().unwrap_or(0.0);
                    let hi = scores.get(i + b.up[2]).copied().unwrap_or(lo);
                    *p = lo + wk * (hi - lo);
                }
            }
        }
    }
}

/// Nearest-neighbour label transfer from the model grid (`[z][y][x]` labels) to the CT grid.
/// CT voxels along a row that pick the same model voxel are filled as one run.
///
/// # Errors
/// [`Error::InvalidArgument`] when `grid` was not made for `ct` ([`ModelGrid::check`]) or
/// `labels` is not one value per model voxel.
pub fn labels_to_ct_nearest(labels: &[u8], grid: &ModelGrid, ct: &Geometry) -> Result<Vec<u8>> {
    grid.check(ct)?;
    check_per_voxel(labels.len(), 1, grid, "labels back to the CT grid")?;
    let [nx, ny, nz] = [grid.axes[0].len, grid.axes[1].len, grid.axes[2].len];
    let mut model_axis_of = [0usize; 3];
    for (m, ax) in grid.axes.iter().enumerate() {
        model_axis_of[ax.ct_axis] = m;
    }
    let model_len = [nx, ny, nz];
    let model_stride = [1usize, nx, nx * ny];
    let idx: Vec<Vec<usize>> = (0..3)
        .map(|a| {
            let m = model_axis_of[a];
            let ax = grid.axes[m];
            (0..ct.size[a])
                .map(|c| {
                    let v = ax
                        .to_model(c as f64)
                        .round()
                        .clamp(0.0, (model_len[m] - 1) as f64);
                    v as usize * model_stride[m]
                })
                .collect()
        })
        .collect();
    // runs of CT voxels along i that read the same model voxel: (start, end, offset)
    let mut runs: Vec<(usize, usize, usize)> = Vec::new();
    for (i, &ii) in idx[0].iter().enumerate() {
        match runs.last_mut() {
            Some(r) if r.2 == ii => r.1 = i + 1,
            _ => runs.push((i, i + 1, ii)),
        }
    }
    let [ci, cj, ck] = ct.size;
    let mut out = vec![0u8; ci * cj * ck];
    out.par_chunks_mut((ci * cj).max(1))
        .enumerate()
        .for_each(|(k, slice)| {
            let kk = idx[2].get(k).copied().unwrap_or(0);
            for (j, row) in slice.chunks_mut(ci.max(1)).enumerate() {
                let jj = idx[1].get(j).copied().unwrap_or(0);
                for &(start, end, ii) in &runs {
                    if let Some(dst) = row.get_mut(start..end) {
                        dst.fill(labels.get(ii + jj + kk).copied().unwrap_or(0));
                    }
                }
            }
        });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NativeTag;

    fn geom(direction: [[f64; 3]; 3]) -> Geometry {
        Geometry::new([10, 8, 6], [100.0, -50.0, 20.0], [0.5, 0.5, 2.0], direction).unwrap()
    }

    #[test]
    fn lps_grid_of_identity_ct_is_resampled_only() {
        let g = geom([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]);
        let m = ModelGrid::new(&g, Orientation::Lps, Spacing::Mm([1.0, 1.0, 2.0])).unwrap();
        assert_eq!(m.geometry.size, [5, 4, 6]);
        assert_eq!(m.geometry.origin, g.origin);
        assert_eq!(m.geometry.spacing, [1.0, 1.0, 2.0]);
    }

    #[test]
    fn flipped_ct_axes_are_undone() {
        // Rows run to anterior (-y) and slices to feet (-z): the model grid must run +y, +z.
        let g = geom([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]]);
        let m = ModelGrid::new(&g, Orientation::Lps, Spacing::Native(NativeTag::Native)).unwrap();
        assert_eq!(m.geometry.axis(0), [1.0, 0.0, 0.0]);
        assert_eq!(m.geometry.axis(1), [0.0, 1.0, 0.0]);
        assert_eq!(m.geometry.axis(2), [0.0, 0.0, 1.0]);
        // Each model voxel sits on the CT voxel at the same patient point.
        for (mi, mj, mk) in [(0, 0, 0), (3, 5, 2), (9, 7, 5)] {
            let p = m
                .geometry
                .index_to_patient([mi as f64, mj as f64, mk as f64]);
            let c = g.patient_to_index(p);
            let mapped = [
                m.axes[0].to_ct(mi as f64),
                m.axes[1].to_ct(mj as f64),
                m.axes[2].to_ct(mk as f64),
            ];
            let mut by_ct = [0.0; 3];
            for (ax, v) in m.axes.iter().zip(mapped) {
                by_ct[ax.ct_axis] = v;
            }
            for a in 0..3 {
                assert!((c[a] - by_ct[a]).abs() < 1e-9, "{c:?} vs {by_ct:?}");
            }
        }
    }

    #[test]
    fn coronal_ct_is_permuted() {
        // Coronal: rows along +x, columns along -z, normal = x × -z = +y.
        let g = geom([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]);
        let m = ModelGrid::new(&g, Orientation::Lps, Spacing::Native(NativeTag::Native)).unwrap();
        assert_eq!(m.axes[1].ct_axis, 2);
        assert_eq!(m.axes[2].ct_axis, 1);
        assert!(m.axes[2].flipped);
        assert_eq!(m.geometry.axis(2), [0.0, 0.0, 1.0]);
    }

    /// Direct trilinear interpolation of class `c` at CT voxel (i, j, k), for checking the
    /// separable implementation.
    fn naive(scores: &[f32], grid: &ModelGrid, c: usize, ijk: [usize; 3]) -> f32 {
        let len = [grid.axes[0].len, grid.axes[1].len, grid.axes[2].len];
        let mut pos = [0.0f64; 3]; // model x, y, z
        for (m, ax) in grid.axes.iter().enumerate() {
            pos[m] = ax
                .to_model(ijk[ax.ct_axis] as f64)
                .clamp(0.0, (len[m] - 1) as f64);
        }
        let at = |x: usize, y: usize, z: usize| {
            scores[c * len[0] * len[1] * len[2] + (z * len[1] + y) * len[0] + x] as f64
        };
        let lo: Vec<usize> = (0..3)
            .map(|m| (pos[m].floor() as usize).min(len[m].saturating_sub(2)))
            .collect();
        let hi: Vec<usize> = (0..3).map(|m| (lo[m] + 1).min(len[m] - 1)).collect();
        let w: Vec<f64> = (0..3).map(|m| pos[m] - lo[m] as f64).collect();
        let mut v = 0.0;
        for dz in 0..2 {
            for dy in 0..2 {
                for dx in 0..2 {
                    let x = if dx == 0 { lo[0] } else { hi[0] };
                    let y = if dy == 0 { lo[1] } else { hi[1] };
                    let z = if dz == 0 { lo[2] } else { hi[2] };
                    let f = (if dx == 0 { 1.0 - w[0] } else { w[0] })
                        * (if dy == 0 { 1.0 - w[1] } else { w[1] })
                        * (if dz == 0 { 1.0 - w[2] } else { w[2] });
                    v += f * at(x, y, z);
                }
            }
        }
        v as f32
    }

    #[test]
    fn separable_back_resampling_equals_direct_trilinear() {
        // A coronal CT with flipped axes and anisotropic spacing, 3 classes of pseudo-random
        // scores: the argmax of the separable interpolation equals the direct one wherever the
        // two best classes are not within rounding of each other.
        let g = Geometry::new(
            [23, 17, 11],
            [3.0, -7.0, 40.0],
            [0.7, 1.1, 2.5],
            [[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]],
        )
        .unwrap();
        let grid = ModelGrid::new(&g, Orientation::Lps, Spacing::Mm([2.0, 3.0, 1.5])).unwrap();
        let classes = 3;
        let n = classes * grid.geometry.voxel_count();
        let mut state = 12345u64;
        let scores: Vec<f32> = (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 33) % 1000) as f32 / 100.0
            })
            .collect();
        let labels = scores_to_ct_labels(&scores, classes, &grid, &g).unwrap();
        let mut checked = 0;
        for k in 0..g.size[2] {
            for j in 0..g.size[1] {
                for i in 0..g.size[0] {
                    let mut v: Vec<(f32, usize)> = (0..classes)
                        .map(|c| (naive(&scores, &grid, c, [i, j, k]), c))
                        .collect();
                    v.sort_by(|a, b| b.0.total_cmp(&a.0));
                    if v[0].0 - v[1].0 > 1e-4 {
                        assert_eq!(labels[(k * g.size[1] + j) * g.size[0] + i] as usize, v[0].1);
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 4000, "{checked}");
    }

    /// The engine's earlier back-resampling, every voxel interpolated: the fast path must give
    /// exactly its labels.
    fn exact_labels(scores: &[f32], classes: usize, grid: &ModelGrid, ct: &Geometry) -> Vec<u8> {
        let [nx, ny, nz] = [grid.axes[0].len, grid.axes[1].len, grid.axes[2].len];
        let model_len = [nx, ny, nz];
        let model_stride = [1usize, nx, nx * ny];
        let vol = nx * ny * nz;
        // For each CT axis: which model axis runs along it.
        let mut model_axis_of = [0usize; 3];
        for (m, ax) in grid.axes.iter().enumerate() {
            model_axis_of[ax.ct_axis] = m;
        }
        let taps_of = |a: usize| {
            let m = model_axis_of[a];
            let ax = grid.axes[m];
            taps(ct.size[a], model_len[m], |c| ax.to_model(c))
        };
        let (ti, tj, tk) = (taps_of(0), taps_of(1), taps_of(2));
        let (m0, m1, m2) = (model_axis_of[0], model_axis_of[1], model_axis_of[2]);
        let (l0, l1) = (model_len[m0], model_len[m1]);
        let (s0, s1, s2) = (model_stride[m0], model_stride[m1], model_stride[m2]);
        let up2 = if model_len[m2] > 1 { s2 } else { 0 };
        let [ci, cj, ck] = ct.size;
        let mut out = vec![0u8; ci * cj * ck];
        out.par_chunks_mut((ci * cj).max(1))
            .enumerate()
            .for_each(|(k, slice)| {
                let Some(&(k0, wk)) = tk.get(k) else { return };
                // plane[c][a1][a0]: scores interpolated along the slice axis
                let mut plane = vec![0f32; classes * l1 * l0];
                for c in 0..classes {
                    for a1 in 0..l1 {
                        for a0 in 0..l0 {
                            let b = c * vol + k0 * s2 + a1 * s1 + a0 * s0;
                            let lo = scores.get(b).copied().unwrap_or(0.0);
                            let hi = scores.get(b + up2).copied().unwrap_or(lo);
                            if let Some(p) = plane.get_mut((c * l1 + a1) * l0 + a0) {
                                *p = lo + wk * (hi - lo);
                            }
                        }
                    }
                }
                let mut row = vec![0f32; classes * l0];
                for (j, out_row) in slice.chunks_mut(ci.max(1)).enumerate() {
                    let Some(&(j0, wj)) = tj.get(j) else { return };
                    let j1 = if l1 > 1 { j0 + 1 } else { j0 };
                    for c in 0..classes {
                        for a0 in 0..l0 {
                            let lo = plane.get((c * l1 + j0) * l0 + a0).copied().unwrap_or(0.0);
                            let hi = plane.get((c * l1 + j1) * l0 + a0).copied().unwrap_or(lo);
                            if let Some(r) = row.get_mut(c * l0 + a0) {
                                *r = lo + wj * (hi - lo);
                            }
                        }
                    }
                    for (i, o) in out_row.iter_mut().enumerate() {
                        let Some(&(i0, wi)) = ti.get(i) else { return };
                        let i1 = if l0 > 1 { i0 + 1 } else { i0 };
                        let mut best = (f32::NEG_INFINITY, 0u8);
                        for c in 0..classes {
                            let lo = row.get(c * l0 + i0).copied().unwrap_or(0.0);
                            let hi = row.get(c * l0 + i1).copied().unwrap_or(lo);
                            let v = lo + wi * (hi - lo);
                            if v > best.0 {
                                best = (v, c as u8);
                            }
                        }
                        *o = best.1;
                    }
                }
            });
        out
    }

    /// Smooth per-class fields with curved boundaries (plus near-ties planted at some model
    /// voxels) on an anisotropic, flipped, permuted grid.
    fn smooth_case(direction: [[f64; 3]; 3]) -> (Geometry, ModelGrid, Vec<f32>, usize) {
        let g = Geometry::new([61, 47, 23], [3.0, -7.0, 40.0], [0.7, 0.9, 2.5], direction).unwrap();
        let grid = ModelGrid::new(&g, Orientation::Lps, Spacing::Mm([2.0, 3.0, 4.0])).unwrap();
        let classes = 4;
        let [mz, my, mx] = grid.zyx();
        let vol = mx * my * mz;
        let mut scores = vec![0f32; classes * vol];
        for z in 0..mz {
            for y in 0..my {
                for x in 0..mx {
                    let v = (z * my + y) * mx + x;
                    let (fx, fy, fz) = (
                        x as f32 / mx as f32,
                        y as f32 / my as f32,
                        z as f32 / mz as f32,
                    );
                    let r = ((fx - 0.5).powi(2) + (fy - 0.5).powi(2) + (fz - 0.5).powi(2)).sqrt();
                    scores[v] = 3.0 * r - 0.6;
                    scores[vol + v] = 1.0 - 2.0 * r;
                    scores[2 * vol + v] = 2.0 * fx - 1.2 + 0.3 * (7.0 * fy).sin();
                    scores[3 * vol + v] = if v % 97 == 0 { scores[vol + v] } else { -5.0 };
                }
            }
        }
        (g, grid, scores, classes)
    }

    #[test]
    fn pure_cells_give_exactly_the_interpolated_labels() {
        for dir in [
            [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
            [[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]],
            [[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [-1.0, 0.0, 0.0]],
        ] {
            let (g, grid, scores, classes) = smooth_case(dir);
            let fast = scores_to_ct_labels(&scores, classes, &grid, &g).unwrap();
            let exact = exact_labels(&scores, classes, &grid, &g);
            assert_eq!(fast, exact, "{dir:?}");
            // the case exercises both paths: several labels, and pure cells
            let b = BackMap::new(&grid, &g);
            let pure = pure_cells(&scores, classes, &b);
            let n_pure = pure.iter().filter(|&&c| c != MIXED).count();
            assert!(
                n_pure > pure.len() / 3 && n_pure < pure.len(),
                "{n_pure} / {}",
                pure.len()
            );
            assert!((0..3u8).all(|c| fast.contains(&c)));
        }
        // random scores: nearly every cell mixed, still identical
        let g = geom([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]);
        let grid = ModelGrid::new(&g, Orientation::Lps, Spacing::Mm([1.0, 1.5, 2.0])).unwrap();
        let n = 3 * grid.geometry.voxel_count();
        let scores: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 / 100.0).collect();
        assert_eq!(
            scores_to_ct_labels(&scores, 3, &grid, &g).unwrap(),
            exact_labels(&scores, 3, &grid, &g)
        );
    }

    #[test]
    fn grids_not_made_for_the_ct_are_refused() {
        let (g, grid, scores, _) =
            smooth_case([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]);
        let vox = grid.geometry.voxel_count();
        let labels = vec![1u8; vox];
        let hu = Volume::new(g, vec![0f32; g.voxel_count()]).unwrap();
        let norm = Normalization::CtWindow {
            level: 0.0,
            width: 400.0,
            range: [0.0, 1.0],
        };
        let refused = |grid: &ModelGrid, ct: &Geometry, what: &str| {
            let errs = [
                resample_to_model(
                    &Volume::new(*ct, vec![0f32; ct.voxel_count()]).unwrap(),
                    grid,
                    &norm,
                )
                .map(drop),
                scores_to_ct_labels(&scores, 3, grid, ct).map(drop),
                labels_to_ct_nearest(&labels, grid, ct).map(drop),
            ];
            for e in errs {
                let e = e.expect_err(what).to_string();
                assert!(e.contains("model grid"), "{what}: {e}");
            }
        };
        // A CT axis out of range, and one taken twice.
        let mut bad = grid.clone();
        bad.axes[1].ct_axis = 3;
        refused(&bad, &g, "CT axis 3");
        let mut bad = grid.clone();
        bad.axes[1].ct_axis = bad.axes[0].ct_axis;
        refused(&bad, &g, "CT axis twice");
        // Empty model axis, a step of zero, a geometry of other lengths.
        let mut bad = grid.clone();
        bad.axes[2].len = 0;
        refused(&bad, &g, "empty axis");
        let mut bad = grid.clone();
        bad.axes[0].step = 0.0;
        refused(&bad, &g, "zero step");
        let mut bad = grid.clone();
        bad.geometry.size[0] += 1;
        refused(&bad, &g, "geometry");
        // The grid of this CT used with another CT.
        let mut other = g;
        other.size[grid.axes[0].ct_axis] += 2;
        refused(&grid, &other, "another CT");
        // Values that are not one (or `classes`) per model voxel, or no class at all.
        assert!(scores_to_ct_labels(&scores[1..], 3, &grid, &g).is_err());
        assert!(scores_to_ct_labels(&scores, 0, &grid, &g).is_err());
        assert!(labels_to_ct_nearest(&labels[1..], &grid, &g).is_err());
        // The grid as made is accepted.
        assert!(resample_to_model(&hu, &grid, &norm).is_ok());
        // ModelGrid::new refuses a spacing that would give more than MAX_AXIS_VOXELS voxels.
        let e = ModelGrid::new(&g, Orientation::Lps, Spacing::Mm([1e-12, 1.0, 1.0]));
        assert!(e.is_err_and(|e| e.to_string().contains("at most")));
        for t in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(ModelGrid::new(&g, Orientation::Lps, Spacing::Mm([t, 1.0, 1.0])).is_err());
        }
    }

    #[test]
    fn nearest_runs_match_per_voxel_lookup() {
        let (g, grid, scores, _) =
            smooth_case([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]);
        let vol = grid.geometry.voxel_count();
        let labels: Vec<u8> = (0..vol)
            .map(|v| (scores[v] > 0.0) as u8 + (scores[2 * vol + v] > 0.0) as u8)
            .collect();
        let got = labels_to_ct_nearest(&labels, &grid, &g).unwrap();
        let len = [grid.axes[0].len, grid.axes[1].len, grid.axes[2].len];
        for k in 0..g.size[2] {
            for j in 0..g.size[1] {
                for i in 0..g.size[0] {
                    let ijk = [i, j, k];
                    let mut m = [0usize; 3];
                    for (a, ax) in grid.axes.iter().enumerate() {
                        m[a] = ax
                            .to_model(ijk[ax.ct_axis] as f64)
                            .round()
                            .clamp(0.0, (len[a] - 1) as f64)
                            as usize;
                    }
                    let want = labels[(m[2] * len[1] + m[1]) * len[0] + m[0]];
                    assert_eq!(got[(k * g.size[1] + j) * g.size[0] + i], want);
                }
            }
        }
    }

    #[test]
    fn resample_round_trip_recovers_a_linear_ramp() {
        let g = Geometry::new(
            [9, 7, 5],
            [0.0; 3],
            [1.0, 1.0, 1.0],
            [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        )
        .unwrap();
        let mut data = Vec::new();
        for k in 0..5 {
            for j in 0..7 {
                for i in 0..9 {
                    data.push((i + 2 * j + 3 * k) as f32);
                }
            }
        }
        let v = Volume::new(g, data).unwrap();
        let grid = ModelGrid::new(&g, Orientation::Lps, Spacing::Mm([2.0, 2.0, 2.0])).unwrap();
        let norm = Normalization::CtZscore {
            clip: [-1e6, 1e6],
            mean: 0.0,
            std: 1.0,
        };
        let m = resample_to_model(&v, &grid, &norm).unwrap();
        // model (x, y, z) = CT (2x, 2y, 2z): ramp value 2x + 4y + 6z.
        let [mz, my, mx] = grid.zyx();
        assert_eq!([mz, my, mx], [3, 4, 5]);
        for z in 0..mz {
            for y in 0..my {
                for x in 0..mx {
                    let got = m[(z * my + y) * mx + x];
                    assert_eq!(got, (2 * x + 4 * y + 6 * z) as f32);
                }
            }
        }
    }
}
