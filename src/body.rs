//! The patient's body outline from the CT alone, for any body region and any model: the
//! library's built-in External.
//!
//! Per acquired slice, in parallel:
//!
//! 1. threshold: voxels above [`BodyOptions::threshold_hu`] (air is about −1000 HU, lung
//!    parenchyma −900…−500, fat about −100), then holes filled: lungs, airways and bowel gas
//!    enclosed by the body become part of it, so a thin chest wall over a lung is part of a thick
//!    mass and survives the next step;
//! 2. opening (erosion then dilation) with a box of half-width [`BodyOptions::opening_mm`]: thin
//!    objects — the couch's carbon-fibre shell, immobilisation masks and boards, cables, sheets —
//!    and thin bridges between them and the body vanish.
//!
//! Then in 3-D: the largest 6-connected component of the opened mask is the body core (the
//! couch and anything else not joined to the patient by a thick bridge are separate components);
//! the core is dilated back by the same box and intersected with the filled threshold mask, which
//! restores the skin exactly where the opening eroded it (no smoothing of the skin line), and
//! holes are filled per slice once more.
//!
//! The steps above run on a grid of about 3 mm in-plane cells (block means of the CT); the skin
//! is then placed at the CT's own resolution: in the one-cell band along the coarse outline a
//! voxel is body when it is above the threshold. The result is a binary mask on the CT grid. A CT without any voxel above the threshold (a
//! phantom of air) gives an empty mask, not an error: the caller decides what that means.

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::postprocess::{Connectivity, FillHoles, PostprocessOptions, postprocess_label};
use crate::volume::{Geometry, HuRef, HuSample, Volume, with_hu};

/// Parameters of [`body_mask`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BodyOptions {
    /// Voxels above this value (HU) are body candidates. Default −400.
    pub threshold_hu: f32,
    /// Half-width of the opening box, mm (objects thinner than about twice this are removed when
    /// they are not part of the body core). Default 5 mm.
    pub opening_mm: f64,
}

impl Default for BodyOptions {
    fn default() -> Self {
        Self {
            threshold_hu: -400.0,
            opening_mm: 5.0,
        }
    }
}

/// Box half-widths in voxels along the slice's columns and rows for `mm`.
fn radius_voxels(mm: f64, spacing: [f64; 3]) -> [usize; 2] {
    let r = |s: f64| {
        if s > 0.0 && mm > 0.0 {
            (mm / s).round().clamp(0.0, 64.0) as usize
        } else {
            0
        }
    };
    [r(spacing[0]), r(spacing[1])]
}

/// `out[t]` = AND (`erode`) or OR of `src[t - r ..= t + r]` for a line of 0/1 values; outside
/// the line counts as background. `out` and `src` have the same length. Written as whole-line
/// passes over shifted slices (vectorised), `2r + 1` of them.
fn morph_line(out: &mut [u8], src: &[u8], r: usize, erode: bool) {
    let n = out.len().min(src.len());
    let (Some(out), Some(src)) = (out.get_mut(..n), src.get(..n)) else {
        return;
    };
    if !erode || r == 0 {
        out.copy_from_slice(src);
        for d in 1..=r.min(n.saturating_sub(1)) {
            // Neighbours at distance d on either side.
            if let (Some(o), Some(s)) = (out.get_mut(d..), src.get(..n - d)) {
                o.iter_mut().zip(s).for_each(|(o, &v)| *o |= v);
            }
            if let (Some(o), Some(s)) = (out.get_mut(..n - d), src.get(d..)) {
                o.iter_mut().zip(s).for_each(|(o, &v)| *o |= v);
            }
        }
        return;
    }
    // Only voxels whose whole window lies in the line can stay: r..n - r.
    out.fill(0);
    let Some(mid) = out.get_mut(r..n.saturating_sub(r).max(r)) else {
        return;
    };
    mid.fill(1);
    for d in 0..=2 * r {
        if let Some(s) = src.get(d..d + mid.len()) {
            mid.iter_mut().zip(s).for_each(|(o, &v)| *o &= v);
        }
    }
}

/// Binary erosion (`erode`) or dilation of one `ni × nj` slice of 0/1 values with a box of
/// half-widths `r` (columns, rows); outside the slice counts as background. The box is separable:
/// rows first, then columns, the column pass on whole rows at a time. `scratch` is reused.
fn morph_slice(
    slice: &mut [u8],
    ni: usize,
    nj: usize,
    r: [usize; 2],
    erode: bool,
    scratch: &mut Vec<u8>,
) {
    let plane = ni * nj;
    let Some(slice) = slice.get_mut(..plane) else {
        return;
    };
    if ni == 0 || nj == 0 {
        return;
    }
    scratch.clear();
    scratch.extend_from_slice(slice);
    if r[0] > 0 {
        for (o, s) in slice.chunks_exact_mut(ni).zip(scratch.chunks_exact(ni)) {
            morph_line(o, s, r[0], erode);
        }
        scratch.copy_from_slice(slice);
    }
    if r[1] == 0 {
        return;
    }
    let rows: Vec<&[u8]> = scratch.chunks_exact(ni).collect();
    for (j, o) in slice.chunks_exact_mut(ni).enumerate() {
        let (lo, hi) = (j.saturating_sub(r[1]), (j + r[1]).min(nj - 1));
        if erode && (j < r[1] || j + r[1] >= nj) {
            o.fill(0);
            continue;
        }
        let Some(window) = rows.get(lo..=hi) else {
            continue;
        };
        let Some((first, others)) = window.split_first() else {
            continue;
        };
        o.copy_from_slice(first);
        for row in others {
            if erode {
                o.iter_mut().zip(row.iter()).for_each(|(o, &v)| *o &= v);
            } else {
                o.iter_mut().zip(row.iter()).for_each(|(o, &v)| *o |= v);
            }
        }
    }
}

/// The body outline of `ct` (HU): 1 inside the body, 0 outside. See the module documentation.
///
/// ```no_run
/// use autocontour::body::{BodyOptions, body_mask};
/// # fn f(ct: &autocontour::dicom::CtSeries) -> autocontour::Result<()> {
/// let body = body_mask(&ct.volume, &BodyOptions::default())?;
/// let voxels = body.data().iter().filter(|&&v| v != 0).count();
/// # Ok(()) }
/// ```
pub fn body_mask<'a>(ct: impl Into<HuRef<'a>>, opts: &BodyOptions) -> Result<Volume<u8>> {
    let ct = ct.into();
    let coarse = coarse_body(ct, opts)?;
    refine_body(ct, &coarse, opts)
}

/// The body outline on the coarse grid (about [`COARSE_MM`] in-plane cells, the CT's slices),
/// before [`refine_body`] places the skin at the CT's resolution. Cheap enough to compute before
/// inference; the applicability checks measure the body on it.
#[derive(Debug, Clone)]
pub struct CoarseBody {
    /// The outline on the coarse grid (1 body, 0 outside).
    pub mask: Volume<u8>,
    /// The coarse grid's HU (block means of the CT).
    pub hu: Volume<f32>,
    /// CT voxels per coarse cell along columns and rows.
    pub stride: [usize; 2],
}

/// Computes the outline on the coarse grid; see [`body_mask`].
pub fn coarse_body<'a>(ct: impl Into<HuRef<'a>>, opts: &BodyOptions) -> Result<CoarseBody> {
    with_hu!(ct.into(), v => coarse_body_of(v, opts))
}

fn coarse_body_of<T: HuSample>(ct: &Volume<T>, opts: &BodyOptions) -> Result<CoarseBody> {
    if !opts.threshold_hu.is_finite() || !opts.opening_mm.is_finite() || opts.opening_mm < 0.0 {
        return Err(Error::InvalidArgument(format!(
            "body outline: threshold {} HU and opening {} mm must be finite (opening ≥ 0)",
            opts.threshold_hu, opts.opening_mm
        )));
    }
    let g = *ct.geometry();
    let stride = [0, 1].map(|a| {
        if g.spacing[a] > 0.0 {
            (COARSE_MM / g.spacing[a]).floor().clamp(1.0, 16.0) as usize
        } else {
            1
        }
    });
    let hu = if stride == [1, 1] {
        ct.hu_f32()
    } else {
        block_mean(ct, stride)?
    };
    let mask = body_mask_grid(&hu, opts)?;
    Ok(CoarseBody { mask, hu, stride })
}

/// The outline at the CT's resolution from `coarse` (made from the same `ct`).
pub fn refine_body<'a>(
    ct: impl Into<HuRef<'a>>,
    coarse: &CoarseBody,
    opts: &BodyOptions,
) -> Result<Volume<u8>> {
    with_hu!(ct.into(), v => refine_body_of(v, coarse, opts))
}

fn refine_body_of<T: HuSample>(
    ct: &Volume<T>,
    coarse: &CoarseBody,
    opts: &BodyOptions,
) -> Result<Volume<u8>> {
    coarse.check_grid(ct.geometry())?;
    let g = *ct.geometry();
    let [ni, nj, _] = g.size;
    let plane = (ni * nj).max(1);
    let threshold = opts.threshold_hu;
    let mut out = vec![0u8; ct.data().len()];
    out.par_chunks_mut(plane)
        .zip(ct.data().par_chunks(plane))
        .enumerate()
        .for_each(|(k, (o, s))| {
            coarse.spans(k, ni, nj, |j, i0, i1, span| {
                let r = j * ni + i0..j * ni + i1;
                let (Some(o), Some(s)) = (o.get_mut(r.clone()), s.get(r)) else {
                    return;
                };
                match span {
                    Span::Outside => {}
                    Span::Inside => o.fill(1),
                    Span::Band => {
                        for (x, &h) in o.iter_mut().zip(s) {
                            *x = u8::from(h.hu() > threshold);
                        }
                    }
                }
            });
        });
    Volume::new(g, out)
}

/// Where a stretch of a CT row lies relative to the coarse outline ([`CoarseBody::spans`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Span {
    /// Cells whose 3 × 3 in-plane neighbourhood holds no body: outside the body.
    Outside,
    /// Cells whose 3 × 3 neighbourhood is all body: inside the body.
    Inside,
    /// The one-cell band along the coarse outline: body where the CT is above the threshold.
    Band,
}

impl CoarseBody {
    /// An error unless this coarse grid was made from a CT of geometry `ct`.
    pub(crate) fn check_grid(&self, ct: &Geometry) -> Result<()> {
        let [ni, nj, nk] = ct.size;
        let [ci, cj, ck] = self.mask.geometry().size;
        let [si, sj] = self.stride;
        if si == 0
            || sj == 0
            || ck != nk
            || ci != ni.div_ceil(si)
            || cj != nj.div_ceil(sj)
            || self.mask.data().len() != ci * cj * ck
        {
            return Err(Error::InvalidArgument(format!(
                "body outline: coarse grid {:?} (cells of {:?} voxels) was not made from a CT of {:?}",
                self.mask.geometry().size,
                self.stride,
                ct.size
            )));
        }
        Ok(())
    }

    /// The refined outline of CT slice `k` (`ni × nj` voxels, the grid [`Self::check_grid`]
    /// accepted) as maximal stretches of rows: `f(j, i0, i1, span)` for voxels `i0..i1` of row
    /// `j`, every voxel of the slice exactly once, rows in order. With cells of one voxel
    /// (`stride` [1, 1]) there is no band: the coarse outline is the outline.
    pub(crate) fn spans(
        &self,
        k: usize,
        ni: usize,
        nj: usize,
        mut f: impl FnMut(usize, usize, usize, Span),
    ) {
        let [ci, cj, _] = self.mask.geometry().size;
        let cplane = ci * cj;
        let cells = self
            .mask
            .data()
            .get(k * cplane..(k + 1) * cplane)
            .unwrap_or(&[]);
        if cells.len() != cplane || cplane == 0 || cells.iter().all(|&v| v == 0) {
            for j in 0..nj {
                f(j, 0, ni, Span::Outside);
            }
            return;
        }
        // 0 outside, 1 band, 2 inside, per cell: the 3 × 3 dilation plus the 3 × 3 erosion of
        // the coarse mask (outside the grid counts as no body).
        let mut states: Vec<u8> = cells.iter().map(|&v| u8::from(v != 0)).collect();
        if self.stride == [1, 1] {
            states.iter_mut().for_each(|v| *v *= 2);
        } else {
            let mut scratch = Vec::with_capacity(cplane);
            let mut inside = states.clone();
            morph_slice(&mut states, ci, cj, [1, 1], false, &mut scratch);
            morph_slice(&mut inside, ci, cj, [1, 1], true, &mut scratch);
            states.iter_mut().zip(&inside).for_each(|(s, &e)| *s += e);
        }
        let [si, sj] = self.stride.map(|s| s.max(1));
        for j in 0..nj {
            let row = states.get((j / sj) * ci..(j / sj + 1) * ci).unwrap_or(&[]);
            let mut x = 0;
            while x < row.len() {
                let st = row.get(x).copied().unwrap_or(0);
                let x0 = x;
                while row.get(x) == Some(&st) {
                    x += 1;
                }
                let (i0, i1) = ((x0 * si).min(ni), (x * si).min(ni));
                let span = match st {
                    0 => Span::Outside,
                    2 => Span::Inside,
                    _ => Span::Band,
                };
                if i1 > i0 {
                    f(j, i0, i1, span);
                }
            }
        }
    }
}

/// In-plane cell size (mm) of the grid the outline's topology is computed on; the skin is then
/// placed at the CT's own resolution by [`refine_body`].
pub const COARSE_MM: f64 = 3.0;

/// Mean HU of `stride[0] × stride[1]` in-plane blocks (slices unchanged), with its geometry.
fn block_mean<T: HuSample>(ct: &Volume<T>, stride: [usize; 2]) -> Result<Volume<f32>> {
    let g = *ct.geometry();
    let [ni, nj, nk] = g.size;
    let (ci, cj) = (ni.div_ceil(stride[0]), nj.div_ceil(stride[1]));
    let mut spacing = g.spacing;
    spacing[0] *= stride[0] as f64;
    spacing[1] *= stride[1] as f64;
    // The coarse voxel centre is the block's centre.
    let shift = g.index_to_patient([
        (stride[0] as f64 - 1.0) / 2.0,
        (stride[1] as f64 - 1.0) / 2.0,
        0.0,
    ]);
    let cg = Geometry::new([ci, cj, nk], shift, spacing, g.direction)?;
    let plane = (ni * nj).max(1);
    // Row blocks summed with the block width known at compile time for the usual strides (CT
    // pixels of 0.35–1.5 mm): the sums are the same, in the same order, only unrolled.
    let add_row: fn(&[T], &mut [f32], usize) = match stride[0] {
        2 => add_row_blocks::<T, 2>,
        3 => add_row_blocks::<T, 3>,
        4 => add_row_blocks::<T, 4>,
        5 => add_row_blocks::<T, 5>,
        6 => add_row_blocks::<T, 6>,
        7 => add_row_blocks::<T, 7>,
        8 => add_row_blocks::<T, 8>,
        _ => add_row_blocks_any,
    };
    let mut out = vec![0f32; ci * cj * nk];
    out.par_chunks_mut((ci * cj).max(1))
        .zip(ct.data().par_chunks(plane))
        .for_each(|(o, s)| {
            for (cjj, orow) in o.chunks_mut(ci.max(1)).enumerate() {
                orow.fill(0.0);
                let rows = (cjj * stride[1]..((cjj + 1) * stride[1]).min(nj))
                    .filter_map(|j| s.get(j * ni..(j + 1) * ni));
                let mut n_rows = 0usize;
                for row in rows {
                    add_row(row, orow, stride[0]);
                    n_rows += 1;
                }
                for (c, x) in orow.iter_mut().enumerate() {
                    // Voxels in the block: its rows times its width (the last block may be
                    // narrower).
                    let width = ((c + 1) * stride[0]).min(ni).saturating_sub(c * stride[0]);
                    let n = n_rows * width;
                    *x = if n > 0 { *x / n as f32 } else { -1000.0 };
                }
            }
        });
    Volume::new(cg, out)
}

/// Adds the sums of `row`'s blocks of `S` voxels (the last one possibly shorter) to `sums`.
fn add_row_blocks<T: HuSample, const S: usize>(row: &[T], sums: &mut [f32], _stride: usize) {
    let blocks = row.chunks_exact(S);
    let rest = blocks.remainder();
    let full = row.len() / S;
    for (b, sum) in blocks.zip(sums.iter_mut()) {
        *sum += b.iter().map(|h| h.hu()).sum::<f32>();
    }
    if !rest.is_empty()
        && let Some(sum) = sums.get_mut(full)
    {
        *sum += rest.iter().map(|h| h.hu()).sum::<f32>();
    }
}

/// [`add_row_blocks`] for any block width.
fn add_row_blocks_any<T: HuSample>(row: &[T], sums: &mut [f32], stride: usize) {
    for (b, sum) in row.chunks(stride.max(1)).zip(sums.iter_mut()) {
        *sum += b.iter().map(|h| h.hu()).sum::<f32>();
    }
}

/// [`body_mask`] on `ct`'s own grid.
fn body_mask_grid(ct: &Volume<f32>, opts: &BodyOptions) -> Result<Volume<u8>> {
    if !opts.threshold_hu.is_finite() || !opts.opening_mm.is_finite() || opts.opening_mm < 0.0 {
        return Err(Error::InvalidArgument(format!(
            "body outline: threshold {} HU and opening {} mm must be finite (opening ≥ 0)",
            opts.threshold_hu, opts.opening_mm
        )));
    }
    let g = *ct.geometry();
    let [ni, nj, _] = g.size;
    let plane = (ni * nj).max(1);
    let r = radius_voxels(opts.opening_mm, g.spacing);
    let threshold = opts.threshold_hu;

    // 1–2. Threshold, holes filled, and opening per slice; keep the filled slices for the
    // restoration.
    let thr: Vec<u8> = ct
        .data()
        .par_iter()
        .map(|&v| u8::from(v > threshold))
        .collect();
    let mut filled = Volume::new(g, thr)?;
    postprocess_label(
        &mut filled,
        1,
        &PostprocessOptions {
            largest_component: false,
            connectivity: Connectivity::Six,
            min_component_fraction: None,
            fill_holes: FillHoles::Slice2d,
        },
    )?;
    let mut thr = filled.into_data();
    let mut core = thr.clone();
    core.par_chunks_mut(plane)
        .for_each_init(Vec::new, |scratch, s| {
            if s.contains(&1) {
                morph_slice(s, ni, nj, r, true, scratch);
                morph_slice(s, ni, nj, r, false, scratch);
            }
        });

    // 3. Largest 6-connected component of the opened mask.
    let mut core = Volume::new(g, core)?;
    postprocess_label(
        &mut core,
        1,
        &PostprocessOptions {
            largest_component: true,
            connectivity: Connectivity::Six,
            min_component_fraction: None,
            fill_holes: FillHoles::None,
        },
    )?;

    // 4. Dilate the core back and keep only thresholded voxels: the skin as the CT shows it.
    let mut restored = core.into_data();
    restored
        .par_chunks_mut(plane)
        .zip(thr.par_chunks_mut(plane))
        .for_each_init(Vec::new, |scratch, (s, t)| {
            if s.contains(&1) {
                morph_slice(s, ni, nj, [r[0] + 1, r[1] + 1], false, scratch);
                for (a, &b) in s.iter_mut().zip(t.iter()) {
                    *a &= b;
                }
            } else {
                s.fill(0);
            }
        });
    drop(thr);

    // 5. Holes per slice, then the largest component again (the restoration may have touched a
    // separate object within the box of the body).
    let mut body = Volume::new(g, restored)?;
    postprocess_label(
        &mut body,
        1,
        &PostprocessOptions {
            largest_component: true,
            connectivity: Connectivity::Six,
            min_component_fraction: None,
            fill_holes: FillHoles::Slice2d,
        },
    )?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::xorshift;
    use crate::volume::Geometry;

    fn geom(size: [usize; 3], spacing: [f64; 3]) -> Geometry {
        Geometry {
            size,
            origin: [0.0; 3],
            spacing,
            direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        }
    }

    /// Dice of a mask against the truth, with the false-positive and false-negative counts.
    fn dice_fp_fn(mask: &[u8], truth: &[u8]) -> (f64, usize, usize) {
        let (mut tp, mut fp, mut fneg) = (0usize, 0usize, 0usize);
        for (&b, &t) in mask.iter().zip(truth) {
            match (b != 0, t != 0) {
                (true, true) => tp += 1,
                (true, false) => fp += 1,
                (false, true) => fneg += 1,
                _ => {}
            }
        }
        (2.0 * tp as f64 / (2 * tp + fp + fneg) as f64, fp, fneg)
    }

    #[test]
    fn morphology_on_a_line() {
        let d = vec![0, 1, 1, 1, 1, 1, 0, 1, 0, 0];
        let mut e = vec![0; 10];
        morph_line(&mut e, &d, 1, true);
        assert_eq!(e, vec![0, 0, 1, 1, 1, 0, 0, 0, 0, 0]);
        let mut o = vec![0; 10];
        morph_line(&mut o, &e, 1, false);
        assert_eq!(o, vec![0, 1, 1, 1, 1, 1, 0, 0, 0, 0]);
        // Erosion at the border: outside counts as background.
        let mut b = vec![0; 4];
        morph_line(&mut b, &[1, 1, 1, 1], 1, true);
        assert_eq!(b, vec![0, 1, 1, 0]);
        // A window wider than the line.
        morph_line(&mut b, &[1, 1, 1, 1], 2, true);
        assert_eq!(b, vec![0, 0, 0, 0]);
        morph_line(&mut b, &[0, 0, 0, 1], 7, false);
        assert_eq!(b, vec![1, 1, 1, 1]);
    }

    /// The box erosion and dilation of a slice equal the definition (every / any voxel of the
    /// box inside the slice; outside is background) on random slices, radii 0–4.
    #[test]
    fn morphology_of_a_slice_matches_the_definition() {
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        for (ni, nj) in [(1usize, 1usize), (7, 5), (13, 9), (4, 11)] {
            for r in [[0usize, 0usize], [1, 0], [0, 2], [1, 1], [2, 3], [4, 1]] {
                for erode in [true, false] {
                    let src: Vec<u8> = (0..ni * nj)
                        .map(|_| u8::from(!next().is_multiple_of(3)))
                        .collect();
                    let mut got = src.clone();
                    morph_slice(&mut got, ni, nj, r, erode, &mut Vec::new());
                    for j in 0..nj {
                        for i in 0..ni {
                            let (mut all, mut any) = (true, false);
                            for y in j as isize - r[1] as isize..=(j + r[1]) as isize {
                                for x in i as isize - r[0] as isize..=(i + r[0]) as isize {
                                    let v =
                                        if x < 0 || y < 0 || x >= ni as isize || y >= nj as isize {
                                            0
                                        } else {
                                            src[y as usize * ni + x as usize]
                                        };
                                    all &= v == 1;
                                    any |= v == 1;
                                }
                            }
                            let want = u8::from(if erode { all } else { any });
                            assert_eq!(
                                got[j * ni + i],
                                want,
                                "{ni}×{nj} r {r:?} erode {erode} at ({i}, {j})"
                            );
                        }
                    }
                }
            }
        }
    }

    /// A body (ellipse with a low-density hole) on a thin couch plate that touches it: the
    /// outline keeps the body and its hole, drops the couch.
    #[test]
    fn removes_a_touching_couch_and_keeps_holes() {
        let (ni, nj, nk) = (80usize, 70usize, 6usize);
        let g = geom([ni, nj, nk], [2.0, 2.0, 3.0]);
        let mut hu = vec![-1000f32; ni * nj * nk];
        let mut truth = vec![0u8; ni * nj * nk];
        for k in 0..nk {
            for j in 0..nj {
                for i in 0..ni {
                    let p = (k * nj + j) * ni + i;
                    let (x, y) = (i as f64 - 40.0, j as f64 - 30.0);
                    let body = (x / 30.0).powi(2) + (y / 20.0).powi(2) <= 1.0;
                    let lung = ((x - 10.0) / 8.0).powi(2) + (y / 8.0).powi(2) <= 1.0;
                    if body {
                        hu[p] = if lung { -850.0 } else { 20.0 };
                        truth[p] = 1;
                    }
                    // Couch: 2 rows (4 mm) right under the body, wider than it.
                    if (50..52).contains(&j) && (2..78).contains(&i) {
                        hu[p] = 200.0;
                    }
                }
            }
        }
        let ct = Volume::new(g, hu).unwrap();
        let body = body_mask(&ct, &BodyOptions::default()).unwrap();
        let (dice, fp, fneg) = dice_fp_fn(body.data(), &truth);
        assert!(dice > 0.97, "dice {dice} (fp {fp}, fn {fneg})");
        // The couch ends are far from the body: none of them is kept.
        for k in 0..nk {
            for i in [3usize, 76] {
                assert_eq!(body.get(i, 50, k), Some(&0), "couch at i {i} k {k}");
            }
        }
    }

    /// Body-sized ellipses (thorax, head, pelvis) with lungs or bone inside, on a couch that
    /// touches the body or lies 6 mm below it, head-first and feet-first (slices reversed),
    /// supine and prone (the couch on the anterior side): Dice ≥ 0.98 against the analytic body,
    /// and nothing kept at the couch's far ends.
    #[test]
    fn phantoms_of_three_regions_with_a_couch() {
        // (name, semi-axes x/y mm, inner structure HU)
        let regions = [
            ("thorax", [170.0, 110.0], -800.0),
            ("head", [75.0, 92.0], 35.0),
            ("pelvis", [180.0, 120.0], 400.0),
        ];
        for (name, [ax, ay], inner_hu) in regions {
            for gap_mm in [0.0, 6.0] {
                for feet_first in [false, true] {
                    for prone in [false, true] {
                        // 2 mm voxels, and 0.7 mm (the outline's coarse grid plus the skin
                        // refinement) for the thorax on a touching couch.
                        let fine = name == "thorax" && gap_mm == 0.0 && !feet_first;
                        for s in if fine { vec![2.0, 0.7] } else { vec![2.0] } {
                            let (ni, nj, nk) = (
                                ((2.0 * ax + 60.0) / s) as usize,
                                ((2.0 * ay + 80.0) / s) as usize,
                                8,
                            );
                            let mut direction = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
                            if feet_first {
                                direction = [[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]];
                            }
                            let g = Geometry {
                                size: [ni, nj, nk],
                                origin: [0.0; 3],
                                spacing: [s, s, 3.0],
                                direction,
                            };
                            let (cx, cy) = (ni as f64 * s / 2.0, nj as f64 * s / 2.0);
                            let mut hu = vec![-1000f32; ni * nj * nk];
                            let mut truth = vec![0u8; ni * nj * nk];
                            // The couch is under the back: +y supine, -y prone (rows grow along +y).
                            let couch_y = |y: f64| {
                                let d = if prone { -(y - cy) } else { y - cy };
                                d >= ay + gap_mm && d < ay + gap_mm + 6.0
                            };
                            for k in 0..nk {
                                for j in 0..nj {
                                    for i in 0..ni {
                                        let p = (k * nj + j) * ni + i;
                                        let (x, y) = (
                                            i as f64 * s + s / 2.0 - cx,
                                            j as f64 * s + s / 2.0 - cy,
                                        );
                                        let q = (x / ax).powi(2) + (y / ay).powi(2);
                                        if q <= 1.0 {
                                            truth[p] = 1;
                                            let inner = ((x.abs() - ax / 2.5) / (ax / 4.0)).powi(2)
                                                + (y / (ay / 2.0)).powi(2)
                                                <= 1.0;
                                            hu[p] = if inner { inner_hu } else { 30.0 };
                                        } else if couch_y(y + cy - cy) && x.abs() < ax + 25.0 {
                                            hu[p] = 250.0;
                                        }
                                    }
                                }
                            }
                            let ct = Volume::new(g, hu).unwrap();
                            let body = body_mask(&ct, &BodyOptions::default()).unwrap();
                            let (dice, fp, fneg) = dice_fp_fn(body.data(), &truth);
                            let case = format!(
                                "{name} gap {gap_mm} feet_first {feet_first} prone {prone} spacing {s}"
                            );
                            assert!(dice >= 0.98, "{case}: Dice {dice:.4} (fp {fp}, fn {fneg})");
                        }
                    }
                }
            }
        }
    }

    /// Block means equal the plain sums in the same order (row by row, block by block), bit for
    /// bit, for every block width (the unrolled ones and the general one), on sizes that are not
    /// multiples of the block and HU that are not integers.
    #[test]
    fn block_means_are_the_plain_means_bit_for_bit() {
        let mut next = xorshift(7);
        for stride in [
            [1usize, 3usize],
            [2, 2],
            [3, 1],
            [4, 5],
            [5, 5],
            [6, 4],
            [7, 7],
            [8, 3],
        ]
        .into_iter()
        .chain([[9, 2], [16, 16]])
        {
            let (ni, nj, nk) = (37usize, 23usize, 2usize);
            let g = geom([ni, nj, nk], [0.5, 0.5, 1.0]);
            let hu: Vec<f32> = (0..ni * nj * nk)
                .map(|_| (next() % 40_000) as f32 / 7.0 - 2500.0)
                .collect();
            let ct = Volume::new(g, hu.clone()).unwrap();
            let got = block_mean(&ct, stride).unwrap();
            let (ci, cj) = (ni.div_ceil(stride[0]), nj.div_ceil(stride[1]));
            assert_eq!(got.geometry().size, [ci, cj, nk]);
            for k in 0..nk {
                for cy in 0..cj {
                    for cx in 0..ci {
                        let (mut sum, mut n) = (0f32, 0u32);
                        for j in cy * stride[1]..((cy + 1) * stride[1]).min(nj) {
                            let row = &hu[(k * nj + j) * ni..(k * nj + j + 1) * ni];
                            let block = &row[cx * stride[0]..((cx + 1) * stride[0]).min(ni)];
                            sum += block.iter().sum::<f32>();
                            n += block.len() as u32;
                        }
                        let want = sum / n as f32;
                        let v = *got.get(cx, cy, k).unwrap();
                        assert_eq!(v.to_bits(), want.to_bits(), "{stride:?} ({cx}, {cy}, {k})");
                    }
                }
            }
        }
    }

    /// The refined outline equals its definition on random coarse outlines: voxels of cells
    /// whose 3 × 3 neighbourhood (outside the grid: no body) is all body are body, all outside
    /// are not, and in between a voxel is body when it is above the threshold; with cells of one
    /// voxel the coarse outline itself.
    #[test]
    fn refined_outline_matches_the_definition() {
        let mut next = xorshift(11);
        for (stride, size) in [
            ([3usize, 2usize], [29usize, 17usize, 3usize]),
            ([5, 5], [52, 41, 2]),
            ([1, 1], [9, 8, 2]),
        ] {
            let g = geom(size, [0.6, 0.6, 1.0]);
            let [ni, nj, nk] = size;
            let hu: Vec<f32> = (0..ni * nj * nk)
                .map(|_| {
                    if next().is_multiple_of(2) {
                        30.0
                    } else {
                        -900.0
                    }
                })
                .collect();
            let ct = Volume::new(g, hu.clone()).unwrap();
            let (ci, cj) = (ni.div_ceil(stride[0]), nj.div_ceil(stride[1]));
            // Mostly body in the middle, random at the edges; the last slice empty.
            let mut cells = vec![0u8; ci * cj * nk];
            for k in 0..nk - 1 {
                for y in 0..cj {
                    for x in 0..ci {
                        let centre = x > 0 && y > 0 && x + 1 < ci && y + 1 < cj;
                        cells[(k * cj + y) * ci + x] = u8::from(
                            (centre && !next().is_multiple_of(5)) || next().is_multiple_of(4),
                        );
                    }
                }
            }
            let cg = geom(
                [ci, cj, nk],
                [0.6 * stride[0] as f64, 0.6 * stride[1] as f64, 1.0],
            );
            let coarse = CoarseBody {
                mask: Volume::new(cg, cells.clone()).unwrap(),
                hu: Volume::new(cg, vec![0.0; ci * cj * nk]).unwrap(),
                stride,
            };
            let got = refine_body(&ct, &coarse, &BodyOptions::default()).unwrap();
            let cell = |x: isize, y: isize, k: usize| -> u8 {
                if x < 0 || y < 0 || x as usize >= ci || y as usize >= cj {
                    0
                } else {
                    cells[(k * cj + y as usize) * ci + x as usize]
                }
            };
            for k in 0..nk {
                for j in 0..nj {
                    for i in 0..ni {
                        let (x, y) = ((i / stride[0]) as isize, (j / stride[1]) as isize);
                        let n: u8 = (-1..=1)
                            .flat_map(|dy| (-1..=1).map(move |dx| (dx, dy)))
                            .map(|(dx, dy)| cell(x + dx, y + dy, k))
                            .sum();
                        let p = (k * nj + j) * ni + i;
                        let want = if stride == [1, 1] {
                            cell(x, y, k)
                        } else {
                            match n {
                                0 => 0,
                                9 => 1,
                                _ => u8::from(hu[p] > -400.0),
                            }
                        };
                        assert_eq!(got.data()[p], want, "{stride:?} at ({i}, {j}, {k})");
                    }
                }
            }
            // A coarse grid of another CT is a named error, not a panic.
            let other = Volume::new(
                geom([ni + stride[0], nj, nk], [0.6; 3]),
                vec![0.0; (ni + stride[0]) * nj * nk],
            )
            .unwrap();
            assert!(refine_body(&other, &coarse, &BodyOptions::default()).is_err());
        }
    }

    #[test]
    fn air_only_gives_an_empty_mask() {
        let g = geom([16, 16, 3], [1.0, 1.0, 1.0]);
        let ct = Volume::new(g, vec![-1000f32; 16 * 16 * 3]).unwrap();
        let body = body_mask(&ct, &BodyOptions::default()).unwrap();
        assert!(body.data().iter().all(|&v| v == 0));
        assert!(
            body_mask(
                &ct,
                &BodyOptions {
                    threshold_hu: f32::NAN,
                    opening_mm: 5.0
                }
            )
            .is_err()
        );
    }
}
