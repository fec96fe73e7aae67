//! Per-structure uncertainty on the model grid: the normalised softmax entropy
//! `H(p) / ln(classes)` (0 = certain, 1 = uniform), averaged over the voxels each class wins and
//! over its boundary voxels (those with a 6-neighbour of another class), and the mean margin
//! between the winning and the second probability.

use rayon::prelude::*;
use serde::Serialize;

use crate::model::OutputKind;

/// Uncertainty of one structure (class) on the model grid.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClassUncertainty {
    /// Mean normalised entropy over the voxels the class wins, 0–1.
    pub mean_entropy: f64,
    /// Mean normalised entropy over its boundary voxels, 0–1 (`None` without boundary voxels).
    pub boundary_entropy: Option<f64>,
    /// Mean margin (winning probability minus the runner-up) over its voxels, 0–1.
    pub mean_margin: f64,
}

/// Probabilities of one voxel from its scores (softmax for logits, renormalised otherwise).
fn probabilities(
    scores: &[f32],
    classes: usize,
    vox: usize,
    v: usize,
    kind: OutputKind,
    p: &mut [f64],
) {
    for (c, pc) in p.iter_mut().enumerate().take(classes) {
        *pc = scores.get(c * vox + v).copied().unwrap_or(0.0) as f64;
    }
    match kind {
        OutputKind::Logits => {
            let mx = p.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mut s = 0.0;
            for x in p.iter_mut() {
                *x = (*x - mx).exp();
                s += *x;
            }
            if s > 0.0 {
                p.iter_mut().for_each(|x| *x /= s);
            }
        }
        OutputKind::Probabilities => {
            let s: f64 = p.iter().map(|x| x.max(0.0)).sum();
            p.iter_mut()
                .for_each(|x| *x = if s > 0.0 { x.max(0.0) / s } else { 0.0 });
        }
    }
}

/// Per class (index = class), the uncertainty of the voxels it wins in `labels` (`[z][y][x]` of
/// `dims`), `None` for a class that wins no voxel. `scores` is `[class][voxel]`.
pub fn class_uncertainty(
    scores: &[f32],
    classes: usize,
    dims: [usize; 3],
    labels: &[u8],
    kind: OutputKind,
) -> Vec<Option<ClassUncertainty>> {
    let [nz, ny, nx] = dims;
    let vox = nz * ny * nx;
    let norm = if classes > 1 {
        (classes as f64).ln()
    } else {
        1.0
    };
    #[derive(Clone, Default)]
    struct Acc {
        n: usize,
        h: f64,
        margin: f64,
        nb: usize,
        hb: f64,
    }
    let plane = (ny * nx).max(1);
    let acc = labels
        .par_chunks(plane)
        .enumerate()
        .fold(
            || (vec![Acc::default(); classes], vec![0f64; classes]),
            |(mut acc, mut p), (z, slice)| {
                for (q, &l) in slice.iter().enumerate() {
                    let v = z * plane + q;
                    if v >= vox {
                        break;
                    }
                    probabilities(scores, classes, vox, v, kind, &mut p);
                    let h: f64 = -p
                        .iter()
                        .filter(|&&x| x > 0.0)
                        .map(|&x| x * x.ln())
                        .sum::<f64>()
                        / norm;
                    let (mut best, mut second) = (0f64, 0f64);
                    for &x in p.iter() {
                        if x > best {
                            second = best;
                            best = x;
                        } else if x > second {
                            second = x;
                        }
                    }
                    let (y, x) = (q / nx.max(1), q % nx.max(1));
                    let neighbour = |dz: isize, dy: isize, dx: isize| {
                        let (zz, yy, xx) = (z as isize + dz, y as isize + dy, x as isize + dx);
                        if zz < 0
                            || yy < 0
                            || xx < 0
                            || zz as usize >= nz
                            || yy as usize >= ny
                            || xx as usize >= nx
                        {
                            return None;
                        }
                        labels
                            .get((zz as usize * ny + yy as usize) * nx + xx as usize)
                            .copied()
                    };
                    let boundary = [
                        (-1, 0, 0),
                        (1, 0, 0),
                        (0, -1, 0),
                        (0, 1, 0),
                        (0, 0, -1),
                        (0, 0, 1),
                    ]
                    .iter()
                    .any(|&(a, b, c)| neighbour(a, b, c).is_some_and(|o| o != l));
                    if let Some(a) = acc.get_mut(l as usize) {
                        a.n += 1;
                        a.h += h;
                        a.margin += best - second;
                        if boundary {
                            a.nb += 1;
                            a.hb += h;
                        }
                    }
                }
                (acc, p)
            },
        )
        .map(|(a, _)| a)
        .reduce(
            || vec![Acc::default(); classes],
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(b) {
                    x.n += y.n;
                    x.h += y.h;
                    x.margin += y.margin;
                    x.nb += y.nb;
                    x.hb += y.hb;
                }
                a
            },
        );
    acc.into_iter()
        .map(|a| {
            (a.n > 0).then(|| ClassUncertainty {
                mean_entropy: a.h / a.n as f64,
                boundary_entropy: (a.nb > 0).then(|| a.hb / a.nb as f64),
                mean_margin: a.margin / a.n as f64,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certain_and_uniform_voxels() {
        // 1 × 1 × 4 voxels, 2 classes (logits): two certain class-1 voxels, then two uniform
        // voxels won by class 0 (ties go to the first class).
        let scores = [
            -20.0f32, -20.0, 0.0, 0.0, // class 0
            20.0, 20.0, 0.0, 0.0, // class 1
        ];
        let labels = [1u8, 1, 0, 0];
        let u = class_uncertainty(&scores, 2, [1, 1, 4], &labels, OutputKind::Logits);
        let c1 = u[1].unwrap();
        assert!(c1.mean_entropy < 1e-6, "{c1:?}");
        assert!((c1.mean_margin - 1.0).abs() < 1e-6);
        let c0 = u[0].unwrap();
        assert!((c0.mean_entropy - 1.0).abs() < 1e-9, "{c0:?}");
        assert!(c0.mean_margin.abs() < 1e-9);
        // Boundary: voxel 1 (class 1) touches voxel 2 (class 0).
        assert!(c1.boundary_entropy.unwrap() < 1e-6);
        assert!((c0.boundary_entropy.unwrap() - 1.0).abs() < 1e-9);
        // A class without voxels.
        let u = class_uncertainty(&scores, 2, [1, 1, 4], &[0, 0, 0, 0], OutputKind::Logits);
        assert!(u[1].is_none());
    }
}
