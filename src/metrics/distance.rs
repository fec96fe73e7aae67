//! Exact Euclidean distance transform with anisotropic spacing.
//!
//! Separable algorithm of Felzenszwalb & Huttenlocher ("Distance transforms of sampled
//! functions", Theory of Computing 8, 2012): one pass per axis, each computing the lower
//! envelope of the parabolas `f(p) + (h·(q − p))²` along a line, which gives the exact squared
//! Euclidean distance on a grid with spacing `h` per axis. Same result as Maurer's algorithm
//! and as `scipy.ndimage.distance_transform_edt(…, sampling=…)`, up to floating-point rounding.

use rayon::prelude::*;

use crate::error::{Error, Result};

/// One parabola of the lower envelope: root `q`, value `f` there, `g = f / h² + q²`, and the
/// left end of its interval as the fraction `num / den` (`den > 0`; −∞ for the first), so
/// that building and evaluating need no division.
#[derive(Debug, Clone, Copy)]
struct Site {
    q: f64,
    f: f64,
    g: f64,
    num: f64,
    den: f64,
}

/// Reusable buffer for the 1-D lower envelope of parabolas `f(p) + (h·(q − p))²`.
#[derive(Default)]
pub(crate) struct Envelope {
    sites: Vec<Site>,
}

impl Envelope {
    /// Starts a new envelope.
    #[inline]
    pub(crate) fn clear(&mut self) {
        self.sites.clear();
    }

    /// Adds the parabola rooted at `q` with value `f` (finite); roots must come in increasing
    /// order. `inv_h2` is `1 / h²` for the sample spacing `h`.
    #[inline]
    pub(crate) fn push(&mut self, q: usize, f: f64, inv_h2: f64) {
        let qf = q as f64;
        let g = f * inv_h2 + qf * qf;
        // The new parabola wins right of s = (g − top.g) / (2 (q − top.q)); the top one is
        // hidden when s ≤ its own left end num / den (both denominators positive).
        let (mut num, mut den) = (f64::NEG_INFINITY, 1.0);
        while let Some(top) = self.sites.last() {
            let (sn, sd) = (g - top.g, 2.0 * (qf - top.q));
            if sn * top.den > top.num * sd {
                (num, den) = (sn, sd);
                break;
            }
            self.sites.pop();
        }
        self.sites.push(Site {
            q: qf,
            f,
            g,
            num,
            den,
        });
    }

    /// True when no parabola has been added.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.sites.is_empty()
    }

    /// Builds the lower envelope of `f` (squared distances; `INFINITY` = no site) for sample
    /// spacing `h`. Returns false when `f` has no finite value.
    pub(crate) fn build(&mut self, f: &[f64], h: f64) -> bool {
        self.clear();
        let inv_h2 = 1.0 / (h * h);
        for (q, &fq) in f.iter().enumerate() {
            if fq.is_finite() {
                self.push(q, fq, inv_h2);
            }
        }
        !self.is_empty()
    }

    /// Evaluates the envelope at the increasing indices produced by `qs`, calling `out(q, d²)`
    /// with `d² = f(p) + h²·(q − p)²` for the nearest root `p`; `INFINITY` when empty.
    #[inline]
    pub(crate) fn eval_sorted(
        &self,
        h: f64,
        qs: impl Iterator<Item = usize>,
        mut out: impl FnMut(usize, f64),
    ) {
        let h2 = h * h;
        let mut k = 0usize;
        let sites = self.sites.as_slice();
        for q in qs {
            let qf = q as f64;
            while let Some(next) = sites.get(k + 1) {
                if next.num < qf * next.den {
                    k += 1;
                } else {
                    break;
                }
            }
            match sites.get(k) {
                Some(s) => {
                    let d = qf - s.q;
                    out(q, s.f + h2 * d * d);
                }
                None => out(q, f64::INFINITY),
            }
        }
    }

    /// Evaluates the envelope at every index of `out`: `out[q] = d²` (see
    /// [`Envelope::eval_sorted`]).
    #[inline]
    pub(crate) fn eval_all(&self, h: f64, out: &mut [f64]) {
        let h2 = h * h;
        let mut k = 0usize;
        let sites = self.sites.as_slice();
        let Some(mut cur) = sites.first().copied() else {
            out.fill(f64::INFINITY);
            return;
        };
        for (q, o) in out.iter_mut().enumerate() {
            let qf = q as f64;
            while let Some(next) = sites.get(k + 1) {
                if next.num < qf * next.den {
                    k += 1;
                    cur = *next;
                } else {
                    break;
                }
            }
            let d = qf - cur.q;
            *o = cur.f + h2 * d * d;
        }
    }
}

/// In-place 1-D squared distance transform of one line: `f[q] ← min_p f[p] + (h·(q − p))²`.
pub(crate) fn edt_line(f: &mut [f64], h: f64, env: &mut Envelope) {
    if !env.build(f, h) {
        f.fill(f64::INFINITY);
        return;
    }
    env.eval_all(h, f);
}

/// Squared Euclidean distance (mm²) from every voxel to the nearest voxel where `features` is
/// non-zero, on a grid of `size = [columns, rows, slices]` stored slice-major
/// (see [`crate::volume`]) with `spacing = [column, row, slice]` in mm. Voxels are infinitely far
/// when there is no feature at all. Runs on all rayon threads.
///
/// Memory: 8 bytes per voxel for the result. The surface metrics do not use this function (they
/// need distances at surface points only and use a leaner variant), but it is the reference
/// transform of the module and is tested against brute force.
pub fn squared_edt(features: &[u8], size: [usize; 3], spacing: [f64; 3]) -> Result<Vec<f64>> {
    let [ni, nj, nk] = size;
    let n = ni
        .checked_mul(nj)
        .and_then(|x| x.checked_mul(nk))
        .ok_or_else(|| Error::InvalidArgument(format!("grid {size:?} overflows")))?;
    if features.len() != n {
        return Err(Error::InvalidArgument(format!(
            "distance transform: mask has {} voxels, grid {size:?} needs {n}",
            features.len()
        )));
    }
    if spacing.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        return Err(Error::InvalidArgument(format!(
            "distance transform: spacing {spacing:?} must be finite and positive"
        )));
    }
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut d: Vec<f64> = features
        .par_iter()
        .map(|&f| if f != 0 { 0.0 } else { f64::INFINITY })
        .collect();
    let plane = ni * nj;
    // Passes along i and j inside each slice.
    d.par_chunks_mut(plane).for_each(|s| {
        let mut env = Envelope::default();
        for row in s.chunks_mut(ni) {
            edt_line(row, spacing[0], &mut env);
        }
        let mut col = vec![0.0; nj];
        for i in 0..ni {
            for (j, c) in col.iter_mut().enumerate() {
                *c = s.get(j * ni + i).copied().unwrap_or(f64::INFINITY);
            }
            edt_line(&mut col, spacing[1], &mut env);
            for (j, c) in col.iter().enumerate() {
                if let Some(x) = s.get_mut(j * ni + i) {
                    *x = *c;
                }
            }
        }
    });
    // Pass along k, parallel over rows j (columns of one row are contiguous per slice).
    let rows: Vec<Vec<f64>> = (0..nj)
        .into_par_iter()
        .map(|j| {
            let mut env = Envelope::default();
            let mut line = vec![0.0; nk];
            let mut out = vec![0.0; nk * ni];
            for i in 0..ni {
                for (k, x) in line.iter_mut().enumerate() {
                    *x = d
                        .get(k * plane + j * ni + i)
                        .copied()
                        .unwrap_or(f64::INFINITY);
                }
                edt_line(&mut line, spacing[2], &mut env);
                for (k, x) in line.iter().enumerate() {
                    if let Some(o) = out.get_mut(k * ni + i) {
                        *o = *x;
                    }
                }
            }
            out
        })
        .collect();
    for (j, r) in rows.iter().enumerate() {
        for k in 0..nk {
            let dst = d.get_mut(k * plane + j * ni..k * plane + (j + 1) * ni);
            let src = r.get(k * ni..(k + 1) * ni);
            if let (Some(dst), Some(src)) = (dst, src) {
                dst.copy_from_slice(src);
            }
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute(features: &[u8], size: [usize; 3], sp: [f64; 3]) -> Vec<f64> {
        let [ni, nj, nk] = size;
        let pts: Vec<[usize; 3]> = (0..nk)
            .flat_map(|k| (0..nj).flat_map(move |j| (0..ni).map(move |i| [i, j, k])))
            .filter(|&[i, j, k]| features[(k * nj + j) * ni + i] != 0)
            .collect();
        let mut out = vec![f64::INFINITY; ni * nj * nk];
        for k in 0..nk {
            for j in 0..nj {
                for i in 0..ni {
                    let o = &mut out[(k * nj + j) * ni + i];
                    for p in &pts {
                        let d = [
                            (i as f64 - p[0] as f64) * sp[0],
                            (j as f64 - p[1] as f64) * sp[1],
                            (k as f64 - p[2] as f64) * sp[2],
                        ];
                        *o = o.min(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
                    }
                }
            }
        }
        out
    }

    /// Small deterministic pseudo-random generator (xorshift) for test patterns.
    fn pattern(n: usize, seed: u64, density: u64) -> Vec<u8> {
        let mut r = autocontour_test_support::XorShift::new(seed);
        (0..n).map(|_| u8::from(r.below(1000) < density)).collect()
    }

    #[test]
    fn matches_brute_force_anisotropic() {
        for (seed, density) in [(1u64, 5u64), (7, 50), (42, 300)] {
            let size = [13, 9, 7];
            let sp = [0.57, 0.91, 2.5];
            let f = pattern(13 * 9 * 7, seed, density);
            let got = squared_edt(&f, size, sp).unwrap();
            let want = brute(&f, size, sp);
            for (g, w) in got.iter().zip(&want) {
                if w.is_infinite() {
                    assert!(g.is_infinite());
                } else {
                    assert!((g - w).abs() <= 1e-9 * w.max(1.0), "{g} vs {w}");
                }
            }
        }
    }

    #[test]
    fn no_features_is_infinite_and_bad_input_errors() {
        let d = squared_edt(&[0; 8], [2, 2, 2], [1.0; 3]).unwrap();
        assert!(d.iter().all(|x| x.is_infinite()));
        assert!(squared_edt(&[0; 7], [2, 2, 2], [1.0; 3]).is_err());
        assert!(squared_edt(&[0; 8], [2, 2, 2], [1.0, 0.0, 1.0]).is_err());
    }
}
