//! Postprocessing of one label of a label map: connected components (6 or 26 connectivity),
//! keeping the largest or those above a size fraction, and hole filling per axial slice or in
//! 3-D. Mutual exclusivity holds throughout: voxels removed from a label become background, and
//! hole filling only claims background voxels, never another structure's.
//!
//! Components are found on runs (maximal stretches along i) joined by union–find, so the cost
//! follows the number of runs rather than voxels; slices are scanned in parallel.

use rayon::prelude::*;

use crate::error::Result;
use crate::volume::Volume;

/// Voxel connectivity for components.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Connectivity {
    /// Face neighbours.
    #[default]
    Six,
    /// Face, edge and corner neighbours.
    TwentySix,
}

/// Hole filling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FillHoles {
    /// None.
    #[default]
    None,
    /// Per axial (k) slice: background regions not connected (4-connectivity) to the slice
    /// border and enclosed by the label.
    Slice2d,
    /// In 3-D: background regions not connected (6-connectivity) to the volume border.
    Volume3d,
}

/// What to do to one label.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PostprocessOptions {
    /// Keep only the largest component.
    pub largest_component: bool,
    /// Component connectivity.
    pub connectivity: Connectivity,
    /// Drop components smaller than this fraction of the largest.
    pub min_component_fraction: Option<f64>,
    /// Hole filling, applied after component selection.
    pub fill_holes: FillHoles,
}

/// What postprocessing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PostprocessReport {
    /// Components found before selection.
    pub components: usize,
    /// Voxels removed (set to background).
    pub removed_voxels: usize,
    /// Background voxels claimed by hole filling.
    pub filled_voxels: usize,
}

#[derive(Clone, Copy)]
struct Run {
    k: usize,
    j: usize,
    i0: usize,
    i1: usize, // exclusive
}

/// Union-find root of `x`, halving the path on the way.
pub(crate) fn find(parent: &mut [usize], mut x: usize) -> usize {
    while let Some(&p) = parent.get(x) {
        if p == x {
            break;
        }
        let gp = parent.get(p).copied().unwrap_or(p);
        if let Some(slot) = parent.get_mut(x) {
            *slot = gp;
        }
        x = gp;
    }
    x
}

fn union(parent: &mut [usize], a: usize, b: usize) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    if ra != rb {
        let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
        if let Some(slot) = parent.get_mut(hi) {
            *slot = lo;
        }
    }
}

/// Runs of `label` per row, rows in (k, j) order; returns runs and the index of the first run
/// of each row (`row_start[k * nj + j]`, with a final sentinel).
fn runs_of(v: &Volume<u8>, label: u8) -> (Vec<Run>, Vec<usize>) {
    let [ni, nj, nk] = v.geometry().size;
    let per_slice: Vec<Vec<Run>> = (0..nk)
        .into_par_iter()
        .map(|k| {
            let mut out = Vec::new();
            let Some(slice) = v.slice(k) else {
                return out;
            };
            for (j, row) in slice.chunks(ni.max(1)).enumerate() {
                let mut i = 0;
                while i < row.len() {
                    if row.get(i) == Some(&label) {
                        let s = i;
                        while row.get(i) == Some(&label) {
                            i += 1;
                        }
                        out.push(Run { k, j, i0: s, i1: i });
                    } else {
                        i += 1;
                    }
                }
            }
            out
        })
        .collect();
    let runs: Vec<Run> = per_slice.into_iter().flatten().collect();
    let mut row_start = vec![0usize; nj * nk + 1];
    let mut r = 0;
    for (row, slot) in row_start.iter_mut().enumerate().take(nj * nk) {
        while runs.get(r).is_some_and(|x| x.k * nj + x.j < row) {
            r += 1;
        }
        *slot = r;
    }
    if let Some(last) = row_start.last_mut() {
        *last = runs.len();
    }
    (runs, row_start)
}

/// Connected components of `label`: for each run its component id (dense, 0-based) and the
/// voxel count per component.
fn components(v: &Volume<u8>, label: u8, conn: Connectivity) -> (Vec<Run>, Vec<usize>, Vec<usize>) {
    let [_, nj, nk] = v.geometry().size;
    let (runs, row_start) = runs_of(v, label);
    let mut parent: Vec<usize> = (0..runs.len()).collect();
    let reach = match conn {
        Connectivity::Six => 0usize,
        Connectivity::TwentySix => 1,
    };
    // neighbouring rows already visited: (dj, dk) with dk = -1 or (dk = 0, dj = -1)
    let neighbours: &[(isize, isize)] = match conn {
        Connectivity::Six => &[(-1, 0), (0, -1)],
        Connectivity::TwentySix => &[(-1, 0), (-1, -1), (0, -1), (1, -1)],
    };
    for (n, run) in runs.iter().enumerate() {
        for &(dj, dk) in neighbours {
            let (j, k) = (run.j as isize + dj, run.k as isize + dk);
            if j < 0 || k < 0 || j as usize >= nj || k as usize >= nk {
                continue;
            }
            let row = k as usize * nj + j as usize;
            let (a, b) = (
                row_start.get(row).copied().unwrap_or(0),
                row_start.get(row + 1).copied().unwrap_or(0),
            );
            for m in a..b {
                let Some(o) = runs.get(m) else { break };
                // overlap of [i0 - reach, i1 + reach) with [o.i0, o.i1)
                if o.i0 < run.i1 + reach && run.i0 < o.i1 + reach {
                    union(&mut parent, n, m);
                }
            }
        }
    }
    let mut id_of_root = vec![usize::MAX; runs.len()];
    let mut ids = vec![0usize; runs.len()];
    let mut sizes: Vec<usize> = Vec::new();
    for n in 0..runs.len() {
        let r = find(&mut parent, n);
        let id = match id_of_root.get(r).copied() {
            Some(id) if id != usize::MAX => id,
            _ => {
                sizes.push(0);
                let id = sizes.len() - 1;
                if let Some(slot) = id_of_root.get_mut(r) {
                    *slot = id;
                }
                id
            }
        };
        if let Some(slot) = ids.get_mut(n) {
            *slot = id;
        }
        if let (Some(s), Some(run)) = (sizes.get_mut(id), runs.get(n)) {
            *s += run.i1 - run.i0;
        }
    }
    (runs, ids, sizes)
}

/// Applies `opts` to `label` in place and reports what changed.
pub fn postprocess_label(
    labels: &mut Volume<u8>,
    label: u8,
    opts: &PostprocessOptions,
) -> Result<PostprocessReport> {
    let mut report = PostprocessReport::default();
    if label == 0 {
        return Ok(report);
    }
    if opts.largest_component || opts.min_component_fraction.is_some() {
        let (runs, ids, sizes) = components(labels, label, opts.connectivity);
        report.components = sizes.len();
        let largest = sizes.iter().copied().max().unwrap_or(0);
        let first_largest = sizes.iter().position(|&s| s == largest);
        let keep: Vec<bool> = sizes
            .iter()
            .enumerate()
            .map(|(id, &s)| {
                if opts.largest_component {
                    Some(id) == first_largest
                } else {
                    let f = opts.min_component_fraction.unwrap_or(0.0);
                    s as f64 >= f * largest as f64
                }
            })
            .collect();
        let [ni, nj, _] = labels.geometry().size;
        let data = labels.data_mut();
        for (run, id) in runs.iter().zip(&ids) {
            if keep.get(*id).copied().unwrap_or(true) {
                continue;
            }
            let start = (run.k * nj + run.j) * ni;
            if let Some(seg) = data.get_mut(start + run.i0..start + run.i1) {
                seg.fill(0);
                report.removed_voxels += run.i1 - run.i0;
            }
        }
    }
    report.filled_voxels = match opts.fill_holes {
        FillHoles::None => 0,
        FillHoles::Slice2d => fill_holes_2d(labels, label),
        FillHoles::Volume3d => fill_holes_3d(labels, label),
    };
    Ok(report)
}

/// Per slice: background pixels not 4-connected to the border through non-label pixels.
fn fill_holes_2d(labels: &mut Volume<u8>, label: u8) -> usize {
    let [ni, nj, _] = labels.geometry().size;
    labels
        .data_mut()
        .par_chunks_mut((ni * nj).max(1))
        .map(|slice| {
            if !slice.contains(&label) {
                return 0;
            }
            let mut outside = vec![false; slice.len()];
            let mut stack = Vec::new();
            let seed = |i: usize, j: usize, outside: &mut Vec<bool>, stack: &mut Vec<usize>| {
                let p = j * ni + i;
                if slice.get(p).is_some_and(|&v| v != label) && outside.get(p) == Some(&false) {
                    outside[p] = true;
                    stack.push(p);
                }
            };
            for i in 0..ni {
                seed(i, 0, &mut outside, &mut stack);
                seed(i, nj - 1, &mut outside, &mut stack);
            }
            for j in 0..nj {
                seed(0, j, &mut outside, &mut stack);
                seed(ni - 1, j, &mut outside, &mut stack);
            }
            while let Some(p) = stack.pop() {
                let (i, j) = (p % ni, p / ni);
                if i > 0 {
                    seed(i - 1, j, &mut outside, &mut stack);
                }
                if i + 1 < ni {
                    seed(i + 1, j, &mut outside, &mut stack);
                }
                if j > 0 {
                    seed(i, j - 1, &mut outside, &mut stack);
                }
                if j + 1 < nj {
                    seed(i, j + 1, &mut outside, &mut stack);
                }
            }
            let mut filled = 0;
            for (v, o) in slice.iter_mut().zip(&outside) {
                if *v == 0 && !o {
                    *v = label;
                    filled += 1;
                }
            }
            filled
        })
        .sum()
}

/// Voxels of a `[ni, nj, nk]` grid (i fastest) reachable from its border through 6-connected
/// voxels where `passable` holds (the border voxels themselves included when passable).
pub(crate) fn reachable_from_border(
    size: [usize; 3],
    passable: impl Fn(usize) -> bool,
) -> Vec<bool> {
    let [ni, nj, nk] = size;
    let mut outside = vec![false; ni * nj * nk];
    let mut stack = Vec::new();
    let idx = |i: usize, j: usize, k: usize| (k * nj + j) * ni + i;
    let push = |p: usize, outside: &mut Vec<bool>, stack: &mut Vec<usize>| {
        if passable(p) && outside.get(p) == Some(&false) {
            outside[p] = true;
            stack.push(p);
        }
    };
    for k in 0..nk {
        for j in 0..nj {
            for i in 0..ni {
                if i == 0 || j == 0 || k == 0 || i + 1 == ni || j + 1 == nj || k + 1 == nk {
                    push(idx(i, j, k), &mut outside, &mut stack);
                }
            }
        }
    }
    while let Some(p) = stack.pop() {
        let (i, j, k) = (p % ni, (p / ni) % nj, p / (ni * nj));
        if i > 0 {
            push(p - 1, &mut outside, &mut stack);
        }
        if i + 1 < ni {
            push(p + 1, &mut outside, &mut stack);
        }
        if j > 0 {
            push(p - ni, &mut outside, &mut stack);
        }
        if j + 1 < nj {
            push(p + ni, &mut outside, &mut stack);
        }
        if k > 0 {
            push(p - ni * nj, &mut outside, &mut stack);
        }
        if k + 1 < nk {
            push(p + ni * nj, &mut outside, &mut stack);
        }
    }
    outside
}

/// In 3-D: background voxels not 6-connected to the volume border through non-label voxels.
fn fill_holes_3d(labels: &mut Volume<u8>, label: u8) -> usize {
    let size = labels.geometry().size;
    let outside =
        reachable_from_border(size, |p| labels.data().get(p).is_some_and(|&v| v != label));
    let data = labels.data_mut();
    let mut filled = 0;
    for (v, o) in data.iter_mut().zip(&outside) {
        if *v == 0 && !o {
            *v = label;
            filled += 1;
        }
    }
    filled
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::Geometry;

    fn vol(size: [usize; 3], f: impl Fn(usize, usize, usize) -> u8) -> Volume<u8> {
        let g = Geometry::new(
            size,
            [0.0; 3],
            [1.0; 3],
            [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        )
        .unwrap();
        let mut d = Vec::new();
        for k in 0..size[2] {
            for j in 0..size[1] {
                for i in 0..size[0] {
                    d.push(f(i, j, k));
                }
            }
        }
        Volume::new(g, d).unwrap()
    }

    #[test]
    fn keeps_largest_component_six_vs_twenty_six() {
        // a 3x3x3 cube and a single voxel touching it only at a corner, plus a far voxel
        let mut v = vol([8, 8, 8], |i, j, k| {
            u8::from((1..4).contains(&i) && (1..4).contains(&j) && (1..4).contains(&k))
                | u8::from((i, j, k) == (4, 4, 4))
                | u8::from((i, j, k) == (7, 0, 7))
        });
        let mut v26 = v.clone();
        let r = postprocess_label(
            &mut v,
            1,
            &PostprocessOptions {
                largest_component: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(r.components, 3);
        assert_eq!(r.removed_voxels, 2);
        assert_eq!(v.data().iter().filter(|&&x| x == 1).count(), 27);
        let r = postprocess_label(
            &mut v26,
            1,
            &PostprocessOptions {
                largest_component: true,
                connectivity: Connectivity::TwentySix,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(r.components, 2);
        assert_eq!(r.removed_voxels, 1);
    }

    #[test]
    fn u_shape_is_one_component() {
        // a U in one slice: two columns joined at the bottom row, scanned top-down
        let mut v = vol([5, 5, 1], |i, j, _| u8::from(i == 0 || i == 4 || j == 4));
        let r = postprocess_label(
            &mut v,
            1,
            &PostprocessOptions {
                largest_component: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(r.components, 1);
        assert_eq!(r.removed_voxels, 0);
    }

    #[test]
    fn fraction_threshold() {
        let mut v = vol([20, 3, 1], |i, _, _| {
            u8::from(i < 10) | u8::from((12..15).contains(&i)) | u8::from(i == 19)
        });
        let r = postprocess_label(
            &mut v,
            1,
            &PostprocessOptions {
                min_component_fraction: Some(0.2),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(r.components, 3);
        assert_eq!(r.removed_voxels, 3); // the 1-wide strip (3 voxels) is < 20 % of 30
    }

    #[test]
    fn fills_holes_but_not_other_labels() {
        // ring of label 1 around a centre with one background voxel and one label-2 voxel
        let mut v = vol([7, 7, 3], |i, j, k| {
            if k != 1 {
                return 0;
            }
            let ring = (1..6).contains(&i) && (1..6).contains(&j);
            if (i, j) == (3, 3) {
                2
            } else if (i, j) == (3, 2) {
                0
            } else {
                u8::from(ring && !((2..5).contains(&i) && (2..5).contains(&j)))
            }
        });
        let before2 = v.data().iter().filter(|&&x| x == 2).count();
        let mut v3 = v.clone();
        let r = postprocess_label(
            &mut v,
            1,
            &PostprocessOptions {
                fill_holes: FillHoles::Slice2d,
                ..Default::default()
            },
        )
        .unwrap();
        // interior 3x3 = 9 voxels, one is label 2, so 8 background voxels are filled
        assert_eq!(r.filled_voxels, 8);
        assert_eq!(v.data().iter().filter(|&&x| x == 2).count(), before2);
        // in 3-D the hole is open above and below (slices 0 and 2 are background): no fill
        let r = postprocess_label(
            &mut v3,
            1,
            &PostprocessOptions {
                fill_holes: FillHoles::Volume3d,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(r.filled_voxels, 0);
    }
}
