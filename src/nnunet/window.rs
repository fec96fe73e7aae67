//! nnU-Net's sliding-window prediction (`nnUNetPredictor._internal_predict_sliding_window_return_logits`,
//! nnunetv2 2.8.1), with its float16 arithmetic: tile starts by `compute_steps_for_sliding_window`,
//! the Gaussian importance map of `compute_gaussian` cast to float16 through float32, mirroring
//! as the mean of the logits over every axis combination, float16 accumulators (each addition
//! rounded to float16) and the float16 division by the weight sum.

use half::f16;

use crate::error::{Error, Result};
use crate::infer::mirror_copy;
use crate::infer::tiling::tile_starts;

/// numpy's pairwise summation of a float64 array (`np.add.reduce`), so that the Gaussian's
/// normalisation rounds as scipy's does.
fn pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut r = 0.0;
        for &v in a {
            r += v;
        }
        r
    } else if n <= 128 {
        let mut r = [0f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i + 8 <= n {
            for (j, rj) in r.iter_mut().enumerate() {
                *rj += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            res += a[i];
            i += 1;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise_sum(&a[..n2]) + pairwise_sum(&a[n2..])
    }
}

/// Largest radius `int(4σ + 0.5)` of a Gaussian kernel [`gaussian`] builds (a kernel of 2²¹ + 1
/// float64 values, 16 MiB): σ up to 262,143 voxels.
pub const MAX_GAUSSIAN_RADIUS: usize = 1 << 20;

/// scipy's radius `int(4σ + 0.5)` of the Gaussian kernel for σ (voxels); an error for a σ that
/// is not positive or whose radius is above [`MAX_GAUSSIAN_RADIUS`].
pub(crate) fn kernel_radius(sigma: f64) -> Result<usize> {
    let radius = 4.0 * sigma + 0.5;
    if !(sigma > 0.0 && radius <= MAX_GAUSSIAN_RADIUS as f64) {
        return Err(Error::InvalidArgument(format!(
            "Gaussian importance map: σ = {sigma} voxels (positive, and a kernel radius 4σ + 0.5 of at most {MAX_GAUSSIAN_RADIUS})"
        )));
    }
    Ok(radius as usize)
}

/// scipy's 1-D Gaussian kernel for σ, radius `int(4σ + 0.5)`, normalised to sum 1.
fn kernel(sigma: f64) -> Result<Vec<f64>> {
    let r = kernel_radius(sigma)? as i64;
    let s2 = sigma * sigma;
    let phi: Vec<f64> = (-r..=r)
        .map(|x| (-0.5 / s2 * (x * x) as f64).exp())
        .collect();
    let sum = 0.0 + pairwise_sum(&phi);
    Ok(phi.into_iter().map(|v| v / sum).collect())
}

/// `compute_gaussian(patch, sigma_scale, value_scaling_factor)` as nnU-Net stores it: float16
/// (through float32), zeros replaced by the smallest non-zero value. `[z][y][x]`.
///
/// # Errors
/// [`Error::InvalidArgument`] for an empty patch axis, a `value_scaling` that is not positive
/// and finite, or a σ (`patch · sigma_scale`) that is not positive or whose kernel radius is
/// above [`MAX_GAUSSIAN_RADIUS`].
pub fn gaussian(patch: [usize; 3], sigma_scale: f64, value_scaling: f64) -> Result<Vec<f16>> {
    if patch.contains(&0) || !(value_scaling.is_finite() && value_scaling > 0.0) {
        return Err(Error::InvalidArgument(format!(
            "Gaussian importance map: patch {patch:?} and value scaling {value_scaling} (no empty axis, a positive scaling)"
        )));
    }
    let axis: Vec<Vec<f64>> = patch
        .iter()
        .map(|&p| {
            let sigma = p as f64 * sigma_scale;
            let k = kernel(sigma)?;
            let r = (k.len() / 2) as i64;
            let c = (p / 2) as i64;
            Ok((0..p as i64)
                .map(|i| {
                    let d = i - c;
                    if d.abs() <= r {
                        k.get((d + r) as usize).copied().unwrap_or(0.0)
                    } else {
                        0.0
                    }
                })
                .collect::<Vec<f64>>())
        })
        .collect::<Result<_>>()?;
    let (k0, k1, k2) = (&axis[0], &axis[1], &axis[2]);
    let voxels = crate::volume::checked_product(&patch).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "Gaussian importance map: patch {patch:?} overflows"
        ))
    })?;
    let mut g = Vec::with_capacity(voxels);
    for &a in k0 {
        for &b in k1 {
            for &c in k2 {
                g.push(a * b * c);
            }
        }
    }
    let max = g.iter().copied().fold(0.0, f64::max);
    let div = max / value_scaling;
    let mut h: Vec<f16> = g.iter().map(|&v| f16::from_f32((v / div) as f32)).collect();
    let min_pos = h
        .iter()
        .copied()
        .filter(|v| v.to_f32() > 0.0)
        .fold(f16::INFINITY, f16::min);
    for v in h.iter_mut() {
        if v.to_f32() == 0.0 {
            *v = min_pos;
        }
    }
    Ok(h)
}

/// Every non-empty combination of `axes` in `itertools.combinations` order (sizes 1, 2, 3).
pub fn mirror_combinations(axes: &[usize]) -> Vec<Vec<usize>> {
    let n = axes.len();
    let mut out = Vec::new();
    for size in 1..=n {
        let mut idx: Vec<usize> = (0..size).collect();
        loop {
            out.push(idx.iter().filter_map(|&i| axes.get(i).copied()).collect());
            // next combination in lexicographic order
            let mut i = size;
            let mut advanced = false;
            while i > 0 {
                i -= 1;
                if idx[i] != i + n - size {
                    idx[i] += 1;
                    for j in i + 1..size {
                        idx[j] = idx[j - 1] + 1;
                    }
                    advanced = true;
                    break;
                }
            }
            if !advanced {
                break;
            }
        }
    }
    out
}

/// The sliding window over one fold.
pub struct Window<'a> {
    /// The patch `[z, y, x]`.
    pub patch: [usize; 3],
    /// Tile step fraction.
    pub step: f64,
    /// Loop order, outermost first.
    pub loop_axes: [usize; 3],
    /// Mirror combinations (empty: no mirroring).
    pub mirrors: &'a [Vec<usize>],
    /// The float16 Gaussian over the patch.
    pub gaussian: &'a [f16],
    /// Output channels.
    pub channels: usize,
}

/// What the sliding window produced besides the logits.
#[derive(Debug, Clone, Copy, Default)]
pub struct WindowStats {
    /// Tiles.
    pub tiles: usize,
    /// Network evaluations (tiles × (1 + mirror combinations)).
    pub evaluations: usize,
}

impl Window<'_> {
    /// Tile starts over a padded box, in loop order (outermost axis first).
    pub fn tiles(&self, padded: [usize; 3]) -> Result<Vec<[usize; 3]>> {
        let st: Vec<Vec<usize>> = (0..3)
            .map(|a| tile_starts(padded[a], self.patch[a], self.step))
            .collect::<Result<_>>()?;
        crate::infer::check_evaluations(st.iter().map(Vec::len), 1 + self.mirrors.len())?;
        let [a0, a1, a2] = self.loop_axes;
        let mut sorted = self.loop_axes;
        sorted.sort_unstable();
        let (Some(s0), Some(s1), Some(s2), [0, 1, 2]) =
            (st.get(a0), st.get(a1), st.get(a2), sorted)
        else {
            return Err(Error::InvalidArgument(format!(
                "sliding window: loop order {:?} is not an order of the axes 0, 1 and 2",
                self.loop_axes
            )));
        };
        let mut out = Vec::new();
        for &i in s0 {
            for &j in s1 {
                for &k in s2 {
                    let mut t = [0usize; 3];
                    t[a0] = i;
                    t[a1] = j;
                    t[a2] = k;
                    out.push(t);
                }
            }
        }
        Ok(out)
    }

    /// Runs the window over `data` (`[z][y][x]` of `shape`, float32, normalised): pads with 0
    /// up to the patch (`d // 2` before), calls `net(tile)` for every tile and mirror
    /// combination (`tile` is `[1][z][y][x]` of the patch; the result `[channels][patch]`),
    /// blends in float16 and returns the float16 logits `[channels][shape]`, padding removed.
    /// `between` runs before each tile (cancellation, progress).
    pub fn run(
        &self,
        data: &[f32],
        shape: [usize; 3],
        net: &mut dyn FnMut(&[f32]) -> Result<Vec<f32>>,
        between: &mut dyn FnMut(usize, usize) -> Result<()>,
    ) -> Result<(Vec<f16>, WindowStats)> {
        let p = self.patch;
        let pv = p[0] * p[1] * p[2];
        let padded = [0, 1, 2].map(|a| shape[a].max(p[a]));
        let lo = [0, 1, 2].map(|a| (padded[a] - shape[a]) / 2);
        let pvox = padded[0] * padded[1] * padded[2];
        let mut img = vec![0f32; pvox];
        for z in 0..shape[0] {
            for y in 0..shape[1] {
                let s = (z * shape[1] + y) * shape[2];
                let d = ((z + lo[0]) * padded[1] + y + lo[1]) * padded[2] + lo[2];
                if let (Some(dst), Some(src)) =
                    (img.get_mut(d..d + shape[2]), data.get(s..s + shape[2]))
                {
                    dst.copy_from_slice(src);
                }
            }
        }
        let tiles = self.tiles(padded)?;
        let c = self.channels;
        let acc_len = c.checked_mul(pvox).ok_or_else(|| {
            Error::InvalidArgument(format!("{c} channels on a {padded:?} grid overflow"))
        })?;
        let mut acc = vec![f16::ZERO; acc_len];
        let mut wsum = vec![f16::ZERO; pvox];
        let gauss: Vec<f32> = self.gaussian.iter().map(|v| v.to_f32()).collect();
        let mut tile = vec![0f32; pv];
        let mut flipped = vec![0f32; pv];
        let mut back = vec![0f32; c * pv];
        let mut stats = WindowStats::default();
        let rows = |t: [usize; 3], f: &mut dyn FnMut(usize, usize)| {
            for z in 0..p[0] {
                for y in 0..p[1] {
                    f(
                        ((t[0] + z) * padded[1] + t[1] + y) * padded[2] + t[2],
                        (z * p[1] + y) * p[2],
                    );
                }
            }
        };
        for (n, &t) in tiles.iter().enumerate() {
            between(n, tiles.len())?;
            rows(t, &mut |gi, pi| {
                if let (Some(d), Some(s)) = (tile.get_mut(pi..pi + p[2]), img.get(gi..gi + p[2])) {
                    d.copy_from_slice(s);
                }
            });
            let mut pred = net(&tile)?;
            check_output(&pred, c * pv, n)?;
            stats.evaluations += 1;
            for axes in self.mirrors {
                mirror_copy(&mut flipped, &tile, p, axes);
                let out = net(&flipped)?;
                check_output(&out, c * pv, n)?;
                stats.evaluations += 1;
                mirror_copy(&mut back, &out, p, axes);
                pred.iter_mut().zip(&back).for_each(|(a, &b)| *a += b);
            }
            if !self.mirrors.is_empty() {
                let k = (self.mirrors.len() + 1) as f32;
                pred.iter_mut().for_each(|v| *v /= k);
            }
            for (ch, pc) in pred.chunks_mut(pv.max(1)).enumerate() {
                pc.iter_mut().zip(&gauss).for_each(|(v, &g)| *v *= g);
                let a = acc.get_mut(ch * pvox..(ch + 1) * pvox).unwrap_or(&mut []);
                rows(t, &mut |gi, pi| {
                    if let (Some(d), Some(s)) = (a.get_mut(gi..gi + p[2]), pc.get(pi..pi + p[2])) {
                        d.iter_mut()
                            .zip(s)
                            .for_each(|(d, &s)| *d = f16::from_f32(d.to_f32() + s));
                    }
                });
            }
            rows(t, &mut |gi, pi| {
                if let (Some(d), Some(s)) = (wsum.get_mut(gi..gi + p[2]), gauss.get(pi..pi + p[2]))
                {
                    d.iter_mut()
                        .zip(s)
                        .for_each(|(d, &s)| *d = f16::from_f32(d.to_f32() + s));
                }
            });
            stats.tiles += 1;
        }
        drop(img);
        // predicted_logits /= n_predictions (float16), then the padding cropped away.
        let vox = shape[0] * shape[1] * shape[2];
        let mut out = vec![f16::ZERO; c * vox];
        for ch in 0..c {
            let a = acc.get(ch * pvox..(ch + 1) * pvox).unwrap_or(&[]);
            let o = out.get_mut(ch * vox..(ch + 1) * vox).unwrap_or(&mut []);
            for z in 0..shape[0] {
                for y in 0..shape[1] {
                    let s = ((z + lo[0]) * padded[1] + y + lo[1]) * padded[2] + lo[2];
                    let d = (z * shape[1] + y) * shape[2];
                    if let (Some(dr), Some(ar), Some(wr)) = (
                        o.get_mut(d..d + shape[2]),
                        a.get(s..s + shape[2]),
                        wsum.get(s..s + shape[2]),
                    ) {
                        for ((d, &a), &w) in dr.iter_mut().zip(ar).zip(wr) {
                            *d = f16::from_f32(a.to_f32() / w.to_f32());
                        }
                    }
                }
            }
        }
        Ok((out, stats))
    }
}

fn check_output(out: &[f32], want: usize, tile: usize) -> Result<()> {
    if out.len() != want {
        return Err(Error::Inference {
            tile,
            reason: format!("the network returned {} values, {want} expected", out.len()),
            source: None,
        });
    }
    if let Some(i) = out.iter().position(|v| !v.is_finite()) {
        return Err(Error::Inference {
            tile,
            reason: format!("the network returned a non-finite value at element {i}"),
            source: None,
        });
    }
    Ok(())
}

/// The folds' float16 logits summed in float16 and divided by their number.
pub fn ensemble(mut folds: Vec<Vec<f16>>) -> Vec<f16> {
    let n = folds.len();
    let Some(mut acc) = (!folds.is_empty()).then(|| folds.remove(0)) else {
        return Vec::new();
    };
    for f in &folds {
        acc.iter_mut()
            .zip(f)
            .for_each(|(a, b)| *a = f16::from_f32(a.to_f32() + b.to_f32()));
    }
    if n > 1 {
        let k = n as f32;
        acc.iter_mut()
            .for_each(|a| *a = f16::from_f32(a.to_f32() / k));
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_match_nnunet() {
        // compute_steps_for_sliding_window examples (round half to even: 16.5 → 16)
        assert_eq!(tile_starts(97, 64, 0.5).unwrap(), vec![0, 16, 33]);
        assert_eq!(tile_starts(64, 64, 0.5).unwrap(), vec![0]);
        assert_eq!(tile_starts(40, 64, 0.5).unwrap(), vec![0]);
        assert_eq!(
            tile_starts(100, 32, 0.5).unwrap(),
            vec![0, 14, 27, 41, 54, 68]
        );
    }

    #[test]
    fn unusable_gaussians_and_loop_orders_are_refused() {
        assert_eq!(gaussian([4, 8, 8], 0.125, 10.0).unwrap().len(), 256);
        for (patch, sigma_scale, scaling) in [
            ([4, 0, 8], 0.125, 10.0),
            ([4, 8, 8], 0.0, 10.0),
            ([4, 8, 8], f64::NAN, 10.0),
            ([4, 8, 8], 1e300, 10.0),
            ([4, 8, 8], 0.125, 0.0),
            ([4, 8, 8], 0.125, f64::INFINITY),
        ] {
            assert!(
                gaussian(patch, sigma_scale, scaling).is_err(),
                "{patch:?} {sigma_scale} {scaling}"
            );
        }
        let g = gaussian([4, 8, 8], 0.125, 10.0).unwrap();
        let mut w = Window {
            patch: [4, 8, 8],
            step: 0.5,
            loop_axes: [0, 1, 2],
            mirrors: &[],
            gaussian: &g,
            channels: 2,
        };
        assert_eq!(w.tiles([8, 8, 8]).unwrap().len(), 3);
        for axes in [[0, 1, 3], [0, 0, 1]] {
            w.loop_axes = axes;
            let e = w.tiles([8, 8, 8]).unwrap_err().to_string();
            assert!(e.contains("loop order"), "{axes:?}: {e}");
        }
    }

    #[test]
    fn combinations_in_itertools_order() {
        assert_eq!(
            mirror_combinations(&[0, 1, 2]),
            vec![
                vec![0],
                vec![1],
                vec![2],
                vec![0, 1],
                vec![0, 2],
                vec![1, 2],
                vec![0, 1, 2]
            ]
        );
        assert!(mirror_combinations(&[]).is_empty());
    }

    #[test]
    fn flip_twice_is_identity() {
        let p = [2, 3, 4];
        let src: Vec<f32> = (0..48).map(|v| v as f32).collect();
        let mut a = vec![0f32; 48];
        let mut b = vec![0f32; 48];
        mirror_copy(&mut a, &src, p, &[0, 2]);
        assert_ne!(a, src);
        mirror_copy(&mut b, &a, p, &[0, 2]);
        assert_eq!(b, src);
    }

    #[test]
    fn ensemble_rounds_in_float16() {
        let a = vec![f16::from_f32(1.0), f16::from_f32(2.0)];
        let b = vec![f16::from_f32(2.0), f16::from_f32(3.0)];
        let e = ensemble(vec![a, b]);
        assert_eq!(e, vec![f16::from_f32(1.5), f16::from_f32(2.5)]);
    }
}
