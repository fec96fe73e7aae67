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
use crate::volume::{Geometry, Volume};

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
fn lps_permutation(ct: &Geometry) -> [(usize, bool); 3] {
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
            let len = (((n as f64 - 1.0) / step) + 1e-6).floor() as usize + 1;
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
pub fn resample_to_model(ct: &Volume<f32>, grid: &ModelGrid, norm: &Normalization) -> Vec<f32> {
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
    let at = |i: usize| data.get(i).map(|&v| norm.apply(v)).unwrap_or(0.0);
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
/// class at each CT voxel, then argmax. Trilinear interpolation is separable, so each CT slice
/// first interpolates the model grid along the axis that runs with the CT's slices (one plane
/// per class), then each CT row along the axis of the rows, then each voxel along the last axis.
/// Never holds more than one plane of scores per thread.
pub fn scores_to_ct_labels(
    scores: &[f32],
    classes: usize,
    grid: &ModelGrid,
    ct: &Geometry,
) -> Vec<u8> {
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

/// Nearest-neighbour label transfer from the model grid (`[z][y][x]` labels) to the CT grid.
pub fn labels_to_ct_nearest(labels: &[u8], grid: &ModelGrid, ct: &Geometry) -> Vec<u8> {
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
    let [ci, cj, ck] = ct.size;
    let mut out = vec![0u8; ci * cj * ck];
    out.par_chunks_mut((ci * cj).max(1))
        .enumerate()
        .for_each(|(k, slice)| {
            let kk = idx[2].get(k).copied().unwrap_or(0);
            for (j, row) in slice.chunks_mut(ci.max(1)).enumerate() {
                let jj = idx[1].get(j).copied().unwrap_or(0);
                for (i, o) in row.iter_mut().enumerate() {
                    let ii = idx[0].get(i).copied().unwrap_or(0);
                    *o = labels.get(ii + jj + kk).copied().unwrap_or(0);
                }
            }
        });
    out
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
        let labels = scores_to_ct_labels(&scores, classes, &grid, &g);
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
        let m = resample_to_model(&v, &grid, &norm);
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
