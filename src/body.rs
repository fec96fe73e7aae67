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
//! The result is a binary mask on the CT grid. A CT without any voxel above the threshold (a
//! phantom of air) gives an empty mask, not an error: the caller decides what that means.

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::postprocess::{Connectivity, FillHoles, PostprocessOptions, postprocess_label};
use crate::volume::Volume;

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
        let (mut tp, mut fp, mut fneg) = (0, 0, 0);
        for (&b, &t) in body.data().iter().zip(&truth) {
            match (b, t) {
                (1, 1) => tp += 1,
                (1, 0) => fp += 1,
                (0, 1) => fneg += 1,
                _ => {}
            }
        }
        let dice = 2.0 * tp as f64 / (2 * tp + fp + fneg) as f64;
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
                        let s = 2.0;
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
                                    let (x, y) =
                                        (i as f64 * s + s / 2.0 - cx, j as f64 * s + s / 2.0 - cy);
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
                        let (mut tp, mut fp, mut fneg) = (0, 0, 0);
                        for (&b, &t) in body.data().iter().zip(&truth) {
                            match (b, t) {
                                (1, 1) => tp += 1,
                                (1, 0) => fp += 1,
                                (0, 1) => fneg += 1,
                                _ => {}
                            }
                        }
                        let dice = 2.0 * tp as f64 / (2 * tp + fp + fneg) as f64;
                        let case =
                            format!("{name} gap {gap_mm} feet_first {feet_first} prone {prone}");
                        assert!(dice >= 0.98, "{case}: Dice {dice:.4} (fp {fp}, fn {fneg})");
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
