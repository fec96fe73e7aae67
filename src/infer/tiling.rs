//! nnU-Net sliding-window tiling and importance maps.

use super::MAX_NETWORK_EVALUATIONS;
use crate::{Error, Result};

/// Tile start positions along one axis (nnU-Net `compute_steps_for_sliding_window`):
/// `n = ceil((size − patch) / (patch · step)) + 1` tiles, spread evenly, the last flush with the
/// border; positions rounded half to even like numpy's `np.round`. One tile at 0 when `size` ≤
/// `patch` (the caller pads up to the patch first).
///
/// # Errors
/// [`Error::InvalidArgument`] for an empty patch, a step that is not a positive finite number,
/// or more than [`MAX_NETWORK_EVALUATIONS`] tiles along the axis (checked before any
/// allocation).
///
/// ```
/// use autocontour::infer::tiling::tile_starts;
/// assert_eq!(tile_starts(200, 128, 0.5)?, vec![0, 36, 72]);
/// assert!(tile_starts(200, 128, 0.0).is_err());
/// # Ok::<(), autocontour::Error>(())
/// ```
pub fn tile_starts(size: usize, patch: usize, step: f64) -> Result<Vec<usize>> {
    if patch == 0 || !(step.is_finite() && step > 0.0) {
        return Err(Error::InvalidArgument(format!(
            "tiling: a patch of {patch} voxels at step {step} (a patch of at least one voxel and a positive step are needed)"
        )));
    }
    if size <= patch {
        return Ok(vec![0]);
    }
    let target = patch as f64 * step;
    let n = ((size - patch) as f64 / target).ceil() + 1.0;
    if n.is_nan() || n > MAX_NETWORK_EVALUATIONS as f64 {
        return Err(Error::InvalidArgument(format!(
            "tiling: {size} voxels in patches of {patch} at step {step} need {n} tiles along one axis (at most {MAX_NETWORK_EVALUATIONS})"
        )));
    }
    let n = n as usize;
    let max_start = (size - patch) as f64;
    let actual = if n > 1 {
        max_start / (n - 1) as f64
    } else {
        0.0
    };
    Ok((0..n)
        .map(|i| (actual * i as f64).round_ties_even() as usize)
        .collect())
}

/// nnU-Net's Gaussian importance map over a patch `[z, y, x]`: a unit impulse at the centre
/// (index `p / 2`) blurred with σ = p/8 (kernel truncated at 4σ like scipy), scaled so the
/// maximum is 10, zeros replaced by the smallest positive value.
pub fn gaussian_map(patch: [usize; 3]) -> Vec<f32> {
    let one_d = |p: usize| -> Vec<f64> {
        let sigma = p as f64 / 8.0;
        let c = (p / 2) as f64;
        let radius = (4.0 * sigma + 0.5).floor();
        (0..p)
            .map(|i| {
                let d = i as f64 - c;
                if sigma <= 0.0 {
                    if d == 0.0 { 1.0 } else { 0.0 }
                } else if d.abs() > radius {
                    0.0
                } else {
                    (-0.5 * d * d / (sigma * sigma)).exp()
                }
            })
            .collect()
    };
    let (gz, gy, gx) = (one_d(patch[0]), one_d(patch[1]), one_d(patch[2]));
    let mut out = Vec::with_capacity(patch.iter().product());
    let mut max = 0f64;
    for z in &gz {
        for y in &gy {
            for x in &gx {
                let v = z * y * x;
                max = max.max(v);
                out.push(v);
            }
        }
    }
    let mut min_pos = f64::INFINITY;
    for v in out.iter_mut() {
        *v = if max > 0.0 { *v / max * 10.0 } else { 1.0 };
        if *v > 0.0 {
            min_pos = min_pos.min(*v);
        }
    }
    out.into_iter()
        .map(|v| if v > 0.0 { v as f32 } else { min_pos as f32 })
        .collect()
}

/// Weight along one axis for InnerEye-style centre cropping: 1 inside the central part of the
/// tile (the margins are half the overlap with the neighbours), 0 outside; a tile touching the
/// image border keeps its margin on that side.
pub fn center_crop_weights(start: usize, patch: usize, size: usize, stride: usize) -> Vec<f32> {
    let margin = patch.saturating_sub(stride) / 2;
    let lo = if start == 0 { 0 } else { margin };
    let hi = if start + patch >= size {
        patch
    } else {
        patch - margin
    };
    (0..patch)
        .map(|i| if i >= lo && i < hi { 1.0 } else { 0.0 })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_match_nnunet() {
        // nnU-Net: image 200, patch 128, step 0.5 -> ceil(72/64)+1 = 3 steps: 0, 36, 72
        assert_eq!(tile_starts(200, 128, 0.5).unwrap(), vec![0, 36, 72]);
        assert_eq!(tile_starts(128, 128, 0.5).unwrap(), vec![0]);
        assert_eq!(tile_starts(100, 128, 0.5).unwrap(), vec![0]);
        // 512, 160, 0.5: ceil(352/80)+1 = 6, actual 70.4 -> 0,70,141,211,282,352
        assert_eq!(
            tile_starts(512, 160, 0.5).unwrap(),
            vec![0, 70, 141, 211, 282, 352]
        );
        let s = tile_starts(300, 64, 0.8).unwrap();
        assert_eq!(*s.last().unwrap(), 236);
        // 25 voxels, patch 16: actual step 4.5 rounds to 4 (half to even), as np.round does.
        assert_eq!(tile_starts(25, 16, 0.5).unwrap(), vec![0, 4, 9]);
        // Refused, not a panic or an allocation of every tile: an empty patch, a step that is
        // not positive and finite, more tiles than the network may run.
        assert!(tile_starts(200, 0, 0.5).is_err());
        for step in [0.0, -0.5, f64::NAN, f64::INFINITY] {
            assert!(tile_starts(200, 16, step).is_err(), "step {step}");
        }
        let err = tile_starts(1 << 30, 2, 1e-9).unwrap_err().to_string();
        assert!(err.contains("tiles along one axis"), "{err}");
        assert_eq!(tile_starts(10, 16, 1e-300).unwrap(), vec![0]);
    }

    #[test]
    fn gaussian_is_centred_and_positive() {
        let g = gaussian_map([8, 16, 16]);
        assert_eq!(g.len(), 8 * 16 * 16);
        let centre = (4 * 16 + 8) * 16 + 8;
        assert_eq!(g[centre], 10.0);
        assert!(g.iter().all(|&v| v > 0.0 && v <= 10.0));
        assert!(g[0] < g[centre] / 100.0);
    }

    #[test]
    fn center_crop_covers_the_image() {
        let size = 100;
        let patch = 32;
        let starts = tile_starts(size, patch, 0.5).unwrap();
        let stride = 16;
        let mut cover = vec![0.0f32; size];
        for &s in &starts {
            for (i, w) in center_crop_weights(s, patch, size, stride)
                .iter()
                .enumerate()
            {
                cover[s + i] += w;
            }
        }
        assert!(cover.iter().all(|&c| c > 0.0), "{cover:?}");
    }
}
