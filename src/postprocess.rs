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

pub(crate) fn union(parent: &mut [usize], a: usize, b: usize) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    if ra != rb {
        let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
        if let Some(slot) = parent.get_mut(hi) {
            *slot = lo;
        }
    }
}

/// The runs of one label in (k, j, i) order, with the index of the first run of every row
/// (`row_start[k * nj + j]`, plus a final sentinel).
struct LabelRuns {
    runs: Vec<Run>,
    row_start: Vec<usize>,
}

impl LabelRuns {
    fn new(runs: Vec<Run>, nj: usize, nk: usize) -> Self {
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
        LabelRuns { runs, row_start }
    }

    /// The runs of row `row` (`k * nj + j`).
    fn row(&self, row: usize) -> &[Run] {
        let a = self.row_start.get(row).copied().unwrap_or(0);
        let b = self.row_start.get(row + 1).copied().unwrap_or(a);
        self.runs.get(a..b).unwrap_or(&[])
    }
}

/// The end of the run of `l` that starts at `i` in `row`: whole chunks of 16 compared at once
/// (vectorised), then voxel by voxel.
pub(crate) fn run_end(row: &[u8], mut i: usize, l: u8) -> usize {
    while let Some(c) = row.get(i..i + 16) {
        if c.iter().fold(0u8, |a, &v| a | (v ^ l)) != 0 {
            break;
        }
        i += 16;
    }
    while row.get(i) == Some(&l) {
        i += 1;
    }
    i
}

/// The first position from `i` on where `row` holds `l` (`row.len()` when none): whole chunks of
/// 16 tested at once (vectorised), then voxel by voxel.
pub(crate) fn next_of(row: &[u8], mut i: usize, l: u8) -> usize {
    while let Some(c) = row.get(i..i + 16) {
        if c.iter().fold(0u8, |a, &v| a | u8::from(v == l)) != 0 {
            break;
        }
        i += 16;
    }
    while row.get(i).is_some_and(|&v| v != l) {
        i += 1;
    }
    i
}

/// One pass over the label map: the runs (maximal stretches along i) of every label in
/// `wanted`, slices scanned in parallel. Entry `n` of the result holds `wanted[n]`'s runs.
fn runs_of_labels(v: &Volume<u8>, wanted: &[u8]) -> Vec<LabelRuns> {
    let [ni, nj, nk] = v.geometry().size;
    let mut slot_of = [usize::MAX; 256];
    for (n, &l) in wanted.iter().enumerate() {
        if let Some(s) = slot_of.get_mut(l as usize)
            && *s == usize::MAX
        {
            *s = n;
        }
    }
    let per_slice: Vec<Vec<Vec<Run>>> = (0..nk)
        .into_par_iter()
        .map(|k| {
            let mut out: Vec<Vec<Run>> = vec![Vec::new(); wanted.len()];
            let Some(slice) = v.slice(k) else {
                return out;
            };
            for (j, row) in slice.chunks(ni.max(1)).enumerate() {
                // background skipped and runs measured 16 voxels at a time
                let mut i = run_end(row, 0, 0);
                while let Some(&l) = row.get(i) {
                    let s = i;
                    i = run_end(row, i, l);
                    let slot = slot_of.get(l as usize).copied().unwrap_or(usize::MAX);
                    if let Some(list) = out.get_mut(slot) {
                        list.push(Run { k, j, i0: s, i1: i });
                    }
                    i = run_end(row, i, 0);
                }
            }
            out
        })
        .collect();
    let mut by_label: Vec<Vec<Run>> = vec![Vec::new(); wanted.len()];
    for slice in per_slice {
        for (dst, src) in by_label.iter_mut().zip(slice) {
            dst.extend(src);
        }
    }
    by_label
        .into_iter()
        .map(|runs| LabelRuns::new(runs, nj, nk))
        .collect()
}

/// Connected components of a label's runs: for each run its component id (dense, 0-based) and
/// the voxel count per component.
fn components(
    lr: &LabelRuns,
    nj: usize,
    nk: usize,
    conn: Connectivity,
) -> (Vec<usize>, Vec<usize>) {
    components_in_slabs(lr, nj, nk, conn, rayon::current_num_threads())
}

/// [`components`] with the slices cut into `slabs` slabs of consecutive slices: union-find in
/// each slab in parallel (a run is linked to the runs it touches in the row before it and in the
/// slice before it, within the slab), then the runs of each slab's first slice to the slice
/// before, then ids in run order. A component's id is the order of its first run, so the ids are
/// the same for any number of slabs.
fn components_in_slabs(
    lr: &LabelRuns,
    nj: usize,
    nk: usize,
    conn: Connectivity,
    slabs: usize,
) -> (Vec<usize>, Vec<usize>) {
    let runs = &lr.runs;
    let mut parent = vec![0usize; runs.len()];
    let reach = match conn {
        Connectivity::Six => 0usize,
        Connectivity::TwentySix => 1,
    };
    // neighbouring rows already visited: (dj, dk) with dk = -1 or (dk = 0, dj = -1)
    let neighbours: &[(isize, isize)] = match conn {
        Connectivity::Six => &[(-1, 0), (0, -1)],
        Connectivity::TwentySix => &[(-1, 0), (-1, -1), (0, -1), (1, -1)],
    };
    // Links run `n` to the runs it touches in the neighbouring rows whose slice is in
    // `ks`; `parent` holds the entries from run `base` on.
    let link = |parent: &mut [usize], base: usize, n: usize, ks: std::ops::Range<usize>| {
        let Some(run) = runs.get(n) else { return };
        for &(dj, dk) in neighbours {
            let (j, k) = (run.j as isize + dj, run.k as isize + dk);
            if j < 0 || k < 0 || j as usize >= nj || !ks.contains(&(k as usize)) {
                continue;
            }
            let row = k as usize * nj + j as usize;
            let first = lr.row_start.get(row).copied().unwrap_or(0);
            for (m, o) in lr.row(row).iter().enumerate() {
                // overlap of [i0 - reach, i1 + reach) with [o.i0, o.i1)
                if o.i0 < run.i1 + reach && run.i0 < o.i1 + reach {
                    union(parent, n - base, first + m - base);
                }
            }
        }
    };
    let first_run_of_slice = |k: usize| lr.row_start.get(k * nj).copied().unwrap_or(runs.len());
    let slab = nk.div_ceil(slabs.clamp(1, nk.max(1))).max(1);
    let cuts: Vec<usize> = (0..nk).step_by(slab).skip(1).collect();
    // 1. Each slab on its own.
    let mut parts: Vec<(usize, usize, &mut [usize])> = Vec::with_capacity(cuts.len() + 1);
    let mut rest: &mut [usize] = &mut parent;
    let (mut k0, mut base) = (0, 0);
    for &k1 in cuts.iter().chain(std::iter::once(&nk)) {
        let end = first_run_of_slice(k1).max(base);
        let len = (end - base).min(rest.len());
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(len);
        parts.push((k0, base, head));
        rest = tail;
        (k0, base) = (k1, end);
    }
    parts.into_par_iter().for_each(|(k0, base, slab_parent)| {
        // parents as indices within the slab while it is linked, global again after
        slab_parent.iter_mut().enumerate().for_each(|(i, p)| *p = i);
        let k1 = (k0 + slab).min(nk);
        for n in base..base + slab_parent.len() {
            link(slab_parent, base, n, k0..k1);
        }
        slab_parent.iter_mut().for_each(|p| *p += base);
    });
    // 2. Each slab's first slice to the slice before it.
    for &k in &cuts {
        for n in first_run_of_slice(k)..first_run_of_slice(k + 1) {
            link(&mut parent, 0, n, k - 1..k);
        }
    }
    // 3. Dense ids in run order.
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
    (ids, sizes)
}

/// Applies `opts` to `label` in place and reports what changed.
///
/// The work is proportional to the label's runs and the bounding box of its voxels, not the
/// grid: one scan finds the runs, components and holes are found on runs.
pub fn postprocess_label(
    labels: &mut Volume<u8>,
    label: u8,
    opts: &PostprocessOptions,
) -> Result<PostprocessReport> {
    let reports = postprocess_labels(labels, &[(label, *opts)])?;
    Ok(reports.into_iter().next().unwrap_or_default())
}

/// Applies each `(label, options)` in order, in place, with one scan of the label map for all
/// of them; returns one report per entry. Equivalent to calling [`postprocess_label`] for each
/// entry in turn (processing one label never changes another label's voxels, only background).
pub fn postprocess_labels(
    labels: &mut Volume<u8>,
    todo: &[(u8, PostprocessOptions)],
) -> Result<Vec<PostprocessReport>> {
    let wanted: Vec<u8> = todo.iter().map(|(l, _)| *l).collect();
    let mut all = runs_of_labels(labels, &wanted);
    let mut reports = Vec::with_capacity(todo.len());
    for (n, (label, opts)) in todo.iter().enumerate() {
        let mut report = PostprocessReport::default();
        // a label listed twice gets the first entry's runs; later entries rescan
        let first = wanted.iter().position(|l| l == label) == Some(n);
        let lr = match all.get_mut(n) {
            Some(lr) if first && *label != 0 => {
                std::mem::replace(lr, LabelRuns::new(Vec::new(), 0, 0))
            }
            _ if *label != 0 => runs_of_labels(labels, &[*label])
                .pop()
                .unwrap_or_else(|| LabelRuns::new(Vec::new(), 0, 0)),
            _ => {
                reports.push(report);
                continue;
            }
        };
        let lr = select_components(labels, lr, opts, &mut report);
        report.filled_voxels = match opts.fill_holes {
            FillHoles::None => 0,
            FillHoles::Slice2d => fill_holes_2d(labels, *label, &lr),
            FillHoles::Volume3d => fill_holes_3d(labels, *label, &lr),
        };
        reports.push(report);
    }
    Ok(reports)
}

/// Component selection on a label's runs: sets the dropped components' voxels to background
/// and returns the runs that remain.
fn select_components(
    labels: &mut Volume<u8>,
    lr: LabelRuns,
    opts: &PostprocessOptions,
    report: &mut PostprocessReport,
) -> LabelRuns {
    if !(opts.largest_component || opts.min_component_fraction.is_some()) {
        return lr;
    }
    let [ni, nj, nk] = labels.geometry().size;
    let (ids, sizes) = components(&lr, nj, nk, opts.connectivity);
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
    if keep.iter().all(|&k| k) {
        return lr;
    }
    let data = labels.data_mut();
    let mut kept = Vec::with_capacity(lr.runs.len());
    for (run, id) in lr.runs.iter().zip(&ids) {
        if keep.get(*id).copied().unwrap_or(true) {
            kept.push(*run);
            continue;
        }
        let start = (run.k * nj + run.j) * ni;
        if let Some(seg) = data.get_mut(start + run.i0..start + run.i1) {
            seg.fill(0);
            report.removed_voxels += run.i1 - run.i0;
        }
    }
    LabelRuns::new(kept, nj, nk)
}

/// The stretches of a row's `[i0, i1)` not covered by `runs` (sorted, disjoint).
fn gaps(runs: &[Run], i0: usize, i1: usize, out: &mut Vec<(usize, usize)>) {
    out.clear();
    let mut at = i0;
    for r in runs {
        if r.i0 > at {
            out.push((at, r.i0));
        }
        at = at.max(r.i1);
    }
    if at < i1 {
        out.push((at, i1));
    }
}

/// Holes of one axial slice, found on runs inside the bounding box of the label's runs
/// `rows` (row `j` of the slice holds `rows[j - j0]`): the non-label stretches of each row
/// (gaps), joined 4-connectedly; gaps not connected to the box's edge are holes. Everything
/// outside the box is connected to the slice border without crossing the label, so this
/// equals a flood fill from the slice border. Returns the holes as (row, i0, i1).
fn holes_in_box(rows: &[&[Run]], j0: usize, i0: usize, i1: usize) -> Vec<(usize, usize, usize)> {
    let h = rows.len();
    let mut gap_rows: Vec<Vec<(usize, usize)>> = Vec::with_capacity(h);
    let mut buf = Vec::new();
    for r in rows {
        gaps(r, i0, i1, &mut buf);
        gap_rows.push(buf.clone());
    }
    let start: Vec<usize> = gap_rows
        .iter()
        .scan(0usize, |acc, g| {
            let s = *acc;
            *acc += g.len();
            Some(s)
        })
        .collect();
    let total: usize = gap_rows.iter().map(|g| g.len()).sum();
    let mut parent: Vec<usize> = (0..total).collect();
    let mut outside = vec![false; total];
    for (y, g) in gap_rows.iter().enumerate() {
        let base = start.get(y).copied().unwrap_or(0);
        for (n, &(a, b)) in g.iter().enumerate() {
            if (y == 0 || y + 1 == h || a == i0 || b == i1)
                && let Some(o) = outside.get_mut(base + n)
            {
                *o = true;
            }
            if y == 0 {
                continue;
            }
            let (Some(prev), Some(&pbase)) = (gap_rows.get(y - 1), start.get(y - 1)) else {
                continue;
            };
            for (m, &(c, d)) in prev.iter().enumerate() {
                if c < b && a < d {
                    union(&mut parent, base + n, pbase + m);
                }
            }
        }
    }
    for n in 0..total {
        if outside.get(n) == Some(&true) {
            let r = find(&mut parent, n);
            if let Some(o) = outside.get_mut(r) {
                *o = true;
            }
        }
    }
    let mut holes = Vec::new();
    for (y, g) in gap_rows.iter().enumerate() {
        let base = start.get(y).copied().unwrap_or(0);
        for (n, &(a, b)) in g.iter().enumerate() {
            let r = find(&mut parent, base + n);
            if outside.get(r) == Some(&false) {
                holes.push((j0 + y, a, b));
            }
        }
    }
    holes
}

/// Sets the background voxels of `seg` to `label`; returns how many.
fn claim_background(seg: &mut [u8], label: u8) -> usize {
    let mut filled = 0;
    for v in seg.iter_mut() {
        if *v == 0 {
            *v = label;
            filled += 1;
        }
    }
    filled
}

/// Per slice: background pixels not 4-connected to the border through non-label pixels.
fn fill_holes_2d(labels: &mut Volume<u8>, label: u8, lr: &LabelRuns) -> usize {
    let [ni, nj, _] = labels.geometry().size;
    labels
        .data_mut()
        .par_chunks_mut((ni * nj).max(1))
        .enumerate()
        .map(|(k, slice)| {
            let a = lr.row_start.get(k * nj).copied().unwrap_or(0);
            let b = lr.row_start.get((k + 1) * nj).copied().unwrap_or(a);
            let Some(runs) = lr.runs.get(a..b).filter(|r| !r.is_empty()) else {
                return 0;
            };
            let j0 = runs.first().map(|r| r.j).unwrap_or(0);
            let j1 = runs.last().map(|r| r.j + 1).unwrap_or(0);
            let i0 = runs.iter().map(|r| r.i0).min().unwrap_or(0);
            let i1 = runs.iter().map(|r| r.i1).max().unwrap_or(0);
            let rows: Vec<&[Run]> = (j0..j1).map(|j| lr.row(k * nj + j)).collect();
            let mut filled = 0;
            for (j, s, e) in holes_in_box(&rows, j0, i0, i1) {
                if let Some(seg) = slice.get_mut(j * ni + s..j * ni + e) {
                    filled += claim_background(seg, label);
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
/// Found on runs inside the label's 3-D bounding box, like [`holes_in_box`] with rows of
/// neighbouring slices joined as well.
fn fill_holes_3d(labels: &mut Volume<u8>, label: u8, lr: &LabelRuns) -> usize {
    let [ni, nj, _] = labels.geometry().size;
    let (Some(first), Some(last)) = (lr.runs.first(), lr.runs.last()) else {
        return 0;
    };
    let (k0, k1) = (first.k, last.k + 1);
    let j0 = lr.runs.iter().map(|r| r.j).min().unwrap_or(0);
    let j1 = lr.runs.iter().map(|r| r.j + 1).max().unwrap_or(0);
    let i0 = lr.runs.iter().map(|r| r.i0).min().unwrap_or(0);
    let i1 = lr.runs.iter().map(|r| r.i1).max().unwrap_or(0);
    let (h, d) = (j1 - j0, k1 - k0);
    // gaps of every box row, rows in (k, j) order
    let mut gap_list: Vec<(usize, usize)> = Vec::new();
    let mut row_first = Vec::with_capacity(h * d + 1);
    let mut buf = Vec::new();
    for k in k0..k1 {
        for j in j0..j1 {
            row_first.push(gap_list.len());
            gaps(lr.row(k * nj + j), i0, i1, &mut buf);
            gap_list.extend_from_slice(&buf);
        }
    }
    row_first.push(gap_list.len());
    let row = |y: usize, z: usize| -> std::ops::Range<usize> {
        let n = z * h + y;
        row_first.get(n).copied().unwrap_or(0)..row_first.get(n + 1).copied().unwrap_or(0)
    };
    let total = gap_list.len();
    let mut parent: Vec<usize> = (0..total).collect();
    let mut outside = vec![false; total];
    for z in 0..d {
        for y in 0..h {
            for n in row(y, z) {
                let Some(&(a, b)) = gap_list.get(n) else {
                    continue;
                };
                if (z == 0 || z + 1 == d || y == 0 || y + 1 == h || a == i0 || b == i1)
                    && let Some(o) = outside.get_mut(n)
                {
                    *o = true;
                }
                let mut join = |r: std::ops::Range<usize>| {
                    for m in r {
                        if let Some(&(c, e)) = gap_list.get(m)
                            && c < b
                            && a < e
                        {
                            union(&mut parent, n, m);
                        }
                    }
                };
                if y > 0 {
                    join(row(y - 1, z));
                }
                if z > 0 {
                    join(row(y, z - 1));
                }
            }
        }
    }
    for n in 0..total {
        if outside.get(n) == Some(&true) {
            let r = find(&mut parent, n);
            if let Some(o) = outside.get_mut(r) {
                *o = true;
            }
        }
    }
    let data = labels.data_mut();
    let mut filled = 0;
    for z in 0..d {
        for y in 0..h {
            let base = ((k0 + z) * nj + j0 + y) * ni;
            for n in row(y, z) {
                let Some(&(a, b)) = gap_list.get(n) else {
                    continue;
                };
                let r = find(&mut parent, n);
                if outside.get(r) == Some(&false)
                    && let Some(seg) = data.get_mut(base + a..base + b)
                {
                    filled += claim_background(seg, label);
                }
            }
        }
    }
    filled
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::xorshift;
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

    /// Voxel-by-voxel reference of `postprocess_label`: breadth-first components in scan
    /// order, flood fills from the slice or volume border.
    fn reference(v: &mut Volume<u8>, label: u8, o: &PostprocessOptions) -> PostprocessReport {
        let [ni, nj, nk] = v.geometry().size;
        let mut rep = PostprocessReport::default();
        let idx = |i: usize, j: usize, k: usize| (k * nj + j) * ni + i;
        if o.largest_component || o.min_component_fraction.is_some() {
            let d = v.data().to_vec();
            let mut comp = vec![usize::MAX; d.len()];
            let mut sizes = Vec::new();
            for p in 0..d.len() {
                if d[p] != label || comp[p] != usize::MAX {
                    continue;
                }
                let id = sizes.len();
                sizes.push(0usize);
                comp[p] = id;
                let mut q = vec![p];
                while let Some(x) = q.pop() {
                    sizes[id] += 1;
                    let (i, j, k) = (x % ni, (x / ni) % nj, x / (ni * nj));
                    for dk in -1i64..=1 {
                        for dj in -1i64..=1 {
                            for di in -1i64..=1 {
                                let manhattan = di.abs() + dj.abs() + dk.abs();
                                if manhattan == 0
                                    || (o.connectivity == Connectivity::Six && manhattan > 1)
                                {
                                    continue;
                                }
                                let (a, b, c) = (i as i64 + di, j as i64 + dj, k as i64 + dk);
                                if a < 0 || b < 0 || c < 0 {
                                    continue;
                                }
                                let (a, b, c) = (a as usize, b as usize, c as usize);
                                if a >= ni || b >= nj || c >= nk {
                                    continue;
                                }
                                let y = idx(a, b, c);
                                if d[y] == label && comp[y] == usize::MAX {
                                    comp[y] = id;
                                    q.push(y);
                                }
                            }
                        }
                    }
                }
            }
            rep.components = sizes.len();
            let largest = sizes.iter().copied().max().unwrap_or(0);
            let first = sizes.iter().position(|&s| s == largest);
            let data = v.data_mut();
            for p in 0..data.len() {
                if comp[p] == usize::MAX {
                    continue;
                }
                let keep = if o.largest_component {
                    Some(comp[p]) == first
                } else {
                    sizes[comp[p]] as f64 >= o.min_component_fraction.unwrap() * largest as f64
                };
                if !keep {
                    data[p] = 0;
                    rep.removed_voxels += 1;
                }
            }
        }
        let outside: Vec<bool> = match o.fill_holes {
            FillHoles::None => return rep,
            FillHoles::Volume3d => reachable_from_border([ni, nj, nk], |p| v.data()[p] != label),
            FillHoles::Slice2d => {
                let mut out = Vec::new();
                for k in 0..nk {
                    let s = v.slice(k).unwrap();
                    let mut o = vec![false; ni * nj];
                    let mut st: Vec<usize> = (0..ni * nj)
                        .filter(|&p| {
                            let (i, j) = (p % ni, p / ni);
                            i == 0 || j == 0 || i + 1 == ni || j + 1 == nj
                        })
                        .collect();
                    while let Some(p) = st.pop() {
                        if s[p] == label || o[p] {
                            continue;
                        }
                        o[p] = true;
                        let (i, j) = (p % ni, p / ni);
                        if i > 0 {
                            st.push(p - 1);
                        }
                        if i + 1 < ni {
                            st.push(p + 1);
                        }
                        if j > 0 {
                            st.push(p - ni);
                        }
                        if j + 1 < nj {
                            st.push(p + ni);
                        }
                    }
                    out.extend(o);
                }
                out
            }
        };
        for (x, o) in v.data_mut().iter_mut().zip(outside) {
            if *x == 0 && !o {
                *x = label;
                rep.filled_voxels += 1;
            }
        }
        rep
    }

    /// Components found slab by slab, for any number of slabs (more than the slices too), give
    /// the same ids and sizes as one slab (the plain scan), with both connectivities.
    #[test]
    fn components_do_not_depend_on_the_slabs() {
        let mut rnd = xorshift(0x9E3779B97F4A7C15u64);
        for case in 0..200 {
            let size = [
                2 + (rnd() % 20) as usize,
                2 + (rnd() % 12) as usize,
                1 + (rnd() % 12) as usize,
            ];
            let density = 10 + rnd() % 70;
            let bits: Vec<u8> = (0..size[0] * size[1] * size[2])
                .map(|_| u8::from(rnd() % 100 < density))
                .collect();
            let v = vol(size, |i, j, k| bits[(k * size[1] + j) * size[0] + i]);
            let lr = runs_of_labels(&v, &[1]).pop().unwrap();
            for conn in [Connectivity::Six, Connectivity::TwentySix] {
                let one = components_in_slabs(&lr, size[1], size[2], conn, 1);
                for slabs in 2..=size[2] + 2 {
                    assert_eq!(
                        components_in_slabs(&lr, size[1], size[2], conn, slabs),
                        one,
                        "case {case}, {slabs} slabs, {conn:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn runs_and_boxes_agree_with_voxel_reference() {
        let mut rnd = xorshift(0x2545F4914F6CDD1Du64);
        // voxels filled in 2-D and 3-D, removed: the cases must exercise every path
        let mut seen = [0usize; 3];
        for case in 0..400 {
            let size = [
                // every fourth case with rows wider than the 16-voxel steps of `run_end`
                3 + (rnd() % 12) as usize + if case % 4 == 0 { 30 } else { 0 },
                3 + (rnd() % 10) as usize,
                1 + (rnd() % 6) as usize,
            ];
            let density = rnd() % 90;
            let values: Vec<u8> = (0..size[0] * size[1] * size[2])
                .map(|_| {
                    let r = rnd();
                    if r % 100 < density {
                        1 + (r >> 8) as u8 % 3
                    } else {
                        0
                    }
                })
                .collect();
            let mut values = values;
            if case % 2 == 1 {
                // hollow boxes (closed shells: 2-D and 3-D holes) over sparse noise
                for v in values.iter_mut() {
                    if rnd() % 100 >= 8 {
                        *v = 0;
                    }
                }
                for _ in 0..1 + rnd() % 3 {
                    let l = 1 + (rnd() % 3) as u8;
                    let lo: Vec<usize> = size.iter().map(|&n| (rnd() as usize) % n).collect();
                    let hi: Vec<usize> = size
                        .iter()
                        .zip(&lo)
                        .map(|(&n, &a)| (a + 2 + (rnd() as usize) % 5).min(n - 1))
                        .collect();
                    for k in lo[2]..=hi[2] {
                        for j in lo[1]..=hi[1] {
                            for i in lo[0]..=hi[0] {
                                let shell = i == lo[0]
                                    || i == hi[0]
                                    || j == lo[1]
                                    || j == hi[1]
                                    || k == lo[2]
                                    || k == hi[2];
                                let p = (k * size[1] + j) * size[0] + i;
                                if shell {
                                    values[p] = l;
                                } else if rnd().is_multiple_of(5) {
                                    values[p] = 1 + (rnd() % 3) as u8;
                                } else {
                                    values[p] = 0;
                                }
                            }
                        }
                    }
                }
            }
            let v0 = vol(size, |i, j, k| values[(k * size[1] + j) * size[0] + i]);
            let opts = PostprocessOptions {
                largest_component: case % 3 == 0,
                connectivity: if case % 2 == 0 {
                    Connectivity::Six
                } else {
                    Connectivity::TwentySix
                },
                min_component_fraction: (case % 3 == 1).then_some(0.3),
                fill_holes: match case % 4 {
                    0 => FillHoles::Slice2d,
                    1 => FillHoles::Volume3d,
                    2 => FillHoles::None,
                    _ => FillHoles::Slice2d,
                },
            };
            // one label at a time, and all three in one call
            let mut expect = v0.clone();
            let mut reps = Vec::new();
            for l in 1..=3u8 {
                let mut one = expect.clone();
                let got = postprocess_label(&mut one, l, &opts).unwrap();
                let want = reference(&mut expect, l, &opts);
                assert_eq!(got, want, "case {case} label {l} {size:?}");
                assert_eq!(one.data(), expect.data(), "case {case} label {l}");
                match opts.fill_holes {
                    FillHoles::Slice2d => seen[0] += want.filled_voxels,
                    FillHoles::Volume3d => seen[1] += want.filled_voxels,
                    FillHoles::None => {}
                }
                seen[2] += want.removed_voxels;
                reps.push(want);
            }
            let mut all = v0.clone();
            let todo: Vec<_> = (1..=3u8).map(|l| (l, opts)).collect();
            assert_eq!(
                postprocess_labels(&mut all, &todo).unwrap(),
                reps,
                "case {case}"
            );
            assert_eq!(all.data(), expect.data(), "case {case}");
        }
        assert!(seen.iter().all(|&n| n > 50), "{seen:?}");
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
