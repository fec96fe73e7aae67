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
use crate::volume::{Geometry, Volume};

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

/// 1-D binary erosion (`erode`) or dilation of `line` (stride `stride`, `n` elements) with a
/// window of half-width `r`; outside the line counts as background. `prefix` is scratch.
fn morph_line(
    data: &mut [u8],
    start: usize,
    stride: usize,
    n: usize,
    r: usize,
    erode: bool,
    prefix: &mut Vec<u32>,
) {
    if r == 0 || n == 0 {
        return;
    }
    prefix.clear();
    prefix.push(0);
    let mut acc = 0u32;
    for t in 0..n {
        acc += u32::from(data.get(start + t * stride).copied().unwrap_or(0) != 0);
        prefix.push(acc);
    }
    for t in 0..n {
        let lo = t.saturating_sub(r);
        let hi = (t + r + 1).min(n);
        let count = prefix.get(hi).copied().unwrap_or(0) - prefix.get(lo).copied().unwrap_or(0);
        let on = if erode {
            // Outside the line is background: a window that leaves the line erodes.
            t >= r && t + r < n && count as usize == 2 * r + 1
        } else {
            count > 0
        };
        if let Some(v) = data.get_mut(start + t * stride) {
            *v = u8::from(on);
        }
    }
}

/// Binary erosion or dilation of one `ni × nj` slice with a box of half-widths `r`.
fn morph_slice(slice: &mut [u8], ni: usize, nj: usize, r: [usize; 2], erode: bool) {
    let mut prefix = Vec::with_capacity(ni.max(nj) + 1);
    for j in 0..nj {
        morph_line(slice, j * ni, 1, ni, r[0], erode, &mut prefix);
    }
    for i in 0..ni {
        morph_line(slice, i, ni, nj, r[1], erode, &mut prefix);
    }
}

/// The body outline of `ct` (HU): 1 inside the body, 0 outside. See the module documentation.
///
/// ```no_run
/// use autocontour::body::{BodyOptions, body_mask};
/// # fn f(ct: &autocontour::volume::Volume<f32>) -> autocontour::Result<()> {
/// let body = body_mask(ct, &BodyOptions::default())?;
/// let voxels = body.data().iter().filter(|&&v| v != 0).count();
/// # Ok(()) }
/// ```
pub fn body_mask(ct: &Volume<f32>, opts: &BodyOptions) -> Result<Volume<u8>> {
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
pub fn coarse_body(ct: &Volume<f32>, opts: &BodyOptions) -> Result<CoarseBody> {
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
        ct.clone()
    } else {
        block_mean(ct, stride)?
    };
    let mask = body_mask_grid(&hu, opts)?;
    Ok(CoarseBody { mask, hu, stride })
}

/// The outline at the CT's resolution from `coarse` (made from the same `ct`).
pub fn refine_body(
    ct: &Volume<f32>,
    coarse: &CoarseBody,
    opts: &BodyOptions,
) -> Result<Volume<u8>> {
    if coarse.stride == [1, 1] {
        return Ok(coarse.mask.clone());
    }
    let [ni, nj, nk] = ct.geometry().size;
    let [ci, cj, ck] = coarse.mask.geometry().size;
    if ck != nk || ci != ni.div_ceil(coarse.stride[0]) || cj != nj.div_ceil(coarse.stride[1]) {
        return Err(Error::InvalidArgument(format!(
            "body outline: coarse grid {:?} was not made from a CT of {:?}",
            coarse.mask.geometry().size,
            ct.geometry().size
        )));
    }
    refine(ct, &coarse.mask, coarse.stride, opts.threshold_hu)
}

/// In-plane cell size (mm) of the grid the outline's topology is computed on; the skin is then
/// placed at the CT's own resolution by [`refine_body`].
pub const COARSE_MM: f64 = 3.0;

/// Mean HU of `stride[0] × stride[1]` in-plane blocks (slices unchanged), with its geometry.
fn block_mean(ct: &Volume<f32>, stride: [usize; 2]) -> Result<Volume<f32>> {
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
    let mut out = vec![0f32; ci * cj * nk];
    out.par_chunks_mut((ci * cj).max(1))
        .zip(ct.data().par_chunks(plane))
        .for_each(|(o, s)| {
            let mut sums = vec![0f32; ci];
            let mut counts = vec![0u32; ci];
            for cjj in 0..cj {
                sums.fill(0.0);
                counts.fill(0);
                for j in cjj * stride[1]..((cjj + 1) * stride[1]).min(nj) {
                    let Some(row) = s.get(j * ni..(j + 1) * ni) else {
                        continue;
                    };
                    for ((block, sum), n) in row
                        .chunks(stride[0])
                        .zip(sums.iter_mut())
                        .zip(counts.iter_mut())
                    {
                        *sum += block.iter().sum::<f32>();
                        *n += block.len() as u32;
                    }
                }
                for (c, (sum, n)) in sums.iter().zip(&counts).enumerate() {
                    if let Some(x) = o.get_mut(cjj * ci + c) {
                        *x = if *n > 0 { sum / *n as f32 } else { -1000.0 };
                    }
                }
            }
        });
    Volume::new(cg, out)
}

/// The outline at the CT's resolution from the coarse one: voxels of coarse cells whose 3 × 3
/// in-plane neighbourhood is all body are body, all outside is outside; in the one-cell band
/// where the coarse outline changes, a voxel is body when it is above the threshold, which puts
/// the skin where the CT shows it.
fn refine(
    ct: &Volume<f32>,
    coarse: &Volume<u8>,
    stride: [usize; 2],
    threshold: f32,
) -> Result<Volume<u8>> {
    let g = *ct.geometry();
    let [ni, nj, _] = g.size;
    let [ci, cj, _] = coarse.geometry().size;
    let plane = (ni * nj).max(1);
    let cplane = (ci * cj).max(1);
    let mut out = vec![0u8; ct.data().len()];
    out.par_chunks_mut(plane)
        .zip(ct.data().par_chunks(plane))
        .zip(coarse.data().par_chunks(cplane))
        .for_each(|((o, s), c)| {
            if !c.contains(&1) {
                return;
            }
            let cell = |x: isize, y: isize| -> u8 {
                if x < 0 || y < 0 || x as usize >= ci || y as usize >= cj {
                    return 0;
                }
                c.get(y as usize * ci + x as usize).copied().unwrap_or(0)
            };
            // 0 outside, 1 band, 2 inside, per coarse cell.
            let state: Vec<u8> = (0..cj)
                .flat_map(|y| (0..ci).map(move |x| (x, y)))
                .map(|(x, y)| {
                    let (x, y) = (x as isize, y as isize);
                    let mut n = 0;
                    for dy in -1..=1 {
                        for dx in -1..=1 {
                            n += cell(x + dx, y + dy);
                        }
                    }
                    match n {
                        0 => 0,
                        9 => 2,
                        _ => 1,
                    }
                })
                .collect();
            for (j, (orow, srow)) in o.chunks_mut(ni.max(1)).zip(s.chunks(ni.max(1))).enumerate() {
                let cy = j / stride[1];
                let states = state.get(cy * ci..(cy + 1) * ci).unwrap_or(&[]);
                for ((ob, sb), &st) in orow
                    .chunks_mut(stride[0])
                    .zip(srow.chunks(stride[0]))
                    .zip(states)
                {
                    match st {
                        2 => ob.fill(1),
                        0 => {}
                        _ => {
                            for (x, &h) in ob.iter_mut().zip(sb) {
                                *x = u8::from(h > threshold);
                            }
                        }
                    }
                }
            }
        });
    Volume::new(g, out)
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
    core.par_chunks_mut(plane).for_each(|s| {
        if s.contains(&1) {
            morph_slice(s, ni, nj, r, true);
            morph_slice(s, ni, nj, r, false);
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
        .for_each(|(s, t)| {
            if s.contains(&1) {
                morph_slice(s, ni, nj, [r[0] + 1, r[1] + 1], false);
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
        let mut d = vec![0, 1, 1, 1, 1, 1, 0, 1, 0, 0];
        let mut p = Vec::new();
        morph_line(&mut d, 0, 1, 10, 1, true, &mut p);
        assert_eq!(d, vec![0, 0, 1, 1, 1, 0, 0, 0, 0, 0]);
        morph_line(&mut d, 0, 1, 10, 1, false, &mut p);
        assert_eq!(d, vec![0, 1, 1, 1, 1, 1, 0, 0, 0, 0]);
        // Erosion at the border: outside counts as background.
        let mut e = vec![1, 1, 1, 1];
        morph_line(&mut e, 0, 1, 4, 1, true, &mut p);
        assert_eq!(e, vec![0, 1, 1, 0]);
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
