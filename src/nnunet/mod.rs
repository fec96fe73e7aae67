//! Imported nnU-Net v2 models (`"pipeline": "nnunet_v2"` packages, written by
//! `models/importers/nnunet/import_nnunet.py`): the prediction of `nnUNetPredictor` (nnunetv2
//! 2.8.1) reproduced step by step, so that a package gives the label map nnU-Net gives.
//!
//! On the CT's voxel array `[z][y][x]` (reoriented first when the package's orientation is
//! `LPS`/`RAS`):
//!
//! 1. crop to the box of nonzero voxels (nnU-Net's `crop_to_nonzero`);
//! 2. normalise (CTNormalization in float32, or the image's own z-score);
//! 3. resample to the configuration's spacing ([`resample`]: cubic B-spline as scipy's `zoom`,
//!    nnU-Net's separate-z rule for anisotropic spacing, shape rounded half to even);
//! 4. sliding window per fold ([`window`]: nnU-Net's tile starts, float16 Gaussian, mirroring,
//!    float16 accumulators), folds averaged in float16;
//! 5. logits back to the cropped CT box (linear, nearest along the low-resolution axis), stored
//!    in float16;
//! 6. argmax (first maximum wins), or for region-based models sigmoid > 0.5 painted in
//!    `regions_class_order`; uncropped into a background label map.
//!
//! The network runs in ONNX Runtime; its float32 convolutions round differently from PyTorch's
//! in the last bits, which the float16 accumulators can turn into whole float16 steps: label
//! maps agree with `nnUNetPredictor` on all but a few voxels where two classes tie (measured in
//! `tests/integration/nnunet.rs`), not bit for bit.

pub mod resample;
pub mod spec;
pub mod window;

use std::time::Instant;

use half::f16;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::infer::{
    InferOptions, ModelGrid, Prediction, Progress, Timings, ort_failure, uncertainty,
};
use crate::model::{Model, Orientation, OutputKind, Spacing};
use crate::volume::{Geometry, HuRef, HuSample, Volume, with_hu};

pub use spec::NnunetSpec;
use spec::Norm;

/// Model axis `m` (0 = x, 1 = y, 2 = z) reads CT axis `.0`, against it when `.1`.
type Perm = [(usize, bool); 3];

fn perm_for(ct: &Geometry, orientation: Orientation) -> Perm {
    match orientation {
        Orientation::Native => [(0, false), (1, false), (2, false)],
        Orientation::Lps => crate::infer::grid::lps_permutation(ct),
        Orientation::Ras => {
            let [x, y, z] = crate::infer::grid::lps_permutation(ct);
            [(x.0, !x.1), (y.0, !y.1), z]
        }
    }
}

/// CT flat index of model voxel `(z, y, x)`.
fn ct_index(perm: &Perm, size: [usize; 3], zyx: [usize; 3]) -> usize {
    let mut ijk = [0usize; 3];
    for (m, &(a, flipped)) in perm.iter().enumerate() {
        let v = zyx[2 - m];
        ijk[a] = if flipped { size[a] - 1 - v } else { v };
    }
    (ijk[2] * size[1] + ijk[1]) * size[0] + ijk[0]
}

/// Sizes `[z, y, x]` and spacings `[z, y, x]` of the reoriented array.
fn oriented_dims(perm: &Perm, g: &Geometry) -> ([usize; 3], [f64; 3]) {
    (
        [g.size[perm[2].0], g.size[perm[1].0], g.size[perm[0].0]],
        [
            g.spacing[perm[2].0],
            g.spacing[perm[1].0],
            g.spacing[perm[0].0],
        ],
    )
}

/// Half-open box `[lo, hi)` per axis of the nonzero voxels (the whole array when none is).
/// Hole filling, which nnU-Net applies to the mask first, cannot change the box.
pub fn nonzero_bbox<T: HuSample>(data: &[T], shape: [usize; 3]) -> [[usize; 2]; 3] {
    let [nz, ny, nx] = shape;
    let plane = (ny * nx).max(1);
    let parts: Vec<Option<[[usize; 2]; 3]>> = data
        .par_chunks(plane)
        .enumerate()
        .map(|(z, p)| {
            let mut b: Option<[[usize; 2]; 3]> = None;
            for (y, row) in p.chunks(nx.max(1)).enumerate() {
                let first = row.iter().position(|&v| v.hu() != 0.0);
                let last = row.iter().rposition(|&v| v.hu() != 0.0);
                if let (Some(f), Some(l)) = (first, last) {
                    let bb = b.get_or_insert([[z, z + 1], [y, y + 1], [f, l + 1]]);
                    bb[1][1] = y + 1;
                    bb[2][0] = bb[2][0].min(f);
                    bb[2][1] = bb[2][1].max(l + 1);
                }
            }
            b
        })
        .collect();
    let mut out: Option<[[usize; 2]; 3]> = None;
    for b in parts.into_iter().flatten() {
        match &mut out {
            None => out = Some(b),
            Some(o) => {
                for a in 0..3 {
                    o[a][0] = o[a][0].min(b[a][0]);
                    o[a][1] = o[a][1].max(b[a][1]);
                }
            }
        }
    }
    out.unwrap_or([[0, nz], [0, ny], [0, nx]])
}

/// nnU-Net's `create_nonzero_mask`: nonzero voxels with their holes filled (background not
/// 6-connected to the array's border becomes foreground).
pub fn nonzero_mask_filled(data: &[f32], shape: [usize; 3]) -> Vec<bool> {
    let [nz, ny, nx] = shape;
    crate::postprocess::reachable_from_border([nx, ny, nz], |p| {
        data.get(p).is_some_and(|&v| v == 0.0)
    })
    .into_iter()
    .map(|outside| !outside)
    .collect()
}

/// Normalises the cropped image in place as nnU-Net's scheme does (float32).
pub fn normalize(data: &mut [f32], shape: [usize; 3], norm: Norm) {
    match norm {
        Norm::Ct { lo, hi, mean, std } => data.par_iter_mut().for_each(|v| {
            *v = (crate::model::manifest::np_clip(*v, lo, hi) - mean) / std;
        }),
        Norm::Image { use_mask } => {
            let mask = use_mask.then(|| nonzero_mask_filled(data, shape));
            zscore(data, mask.as_deref());
        }
    }
}

/// nnU-Net's ZScoreNormalization: `(x − mean) / max(std, 1e-8)` with the mean and (population)
/// standard deviation of the voxels where `mask` is true (all voxels without a mask); voxels
/// outside the mask are left as they are. Statistics in float64, the result in float32.
pub fn zscore(data: &mut [f32], mask: Option<&[bool]>) {
    let inside = |i: usize| mask.is_none_or(|m| m.get(i).copied().unwrap_or(false));
    let (mut n, mut s) = (0usize, 0f64);
    for (i, &v) in data.iter().enumerate() {
        if inside(i) {
            n += 1;
            s += v as f64;
        }
    }
    if n == 0 {
        return;
    }
    let mean = s / n as f64;
    let var = data
        .iter()
        .enumerate()
        .filter(|(i, _)| inside(*i))
        .map(|(_, &v)| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / n as f64;
    let (mean, std) = (mean as f32, (var.sqrt().max(1e-8)) as f32);
    for (i, v) in data.iter_mut().enumerate() {
        if inside(i) {
            *v = (*v - mean) / std;
        }
    }
}

/// One channel of the argmax over channels: voxels where `values` beats `best` take `channel`
/// (channels in increasing order, so the first maximum wins, as numpy's and torch's argmax).
pub fn argmax_step(labels: &mut [u8], best: &mut [f32], values: &[f32], channel: u8) {
    labels
        .par_iter_mut()
        .zip(best.par_iter_mut())
        .zip(values.par_iter())
        .for_each(|((l, b), &v)| {
            if v > *b {
                *b = v;
                *l = channel;
            }
        });
}

/// One region of a region-based model (`LabelManager.convert_probabilities_to_segmentation`):
/// voxels whose float32 sigmoid of the logit exceeds 0.5 are painted `value`; called for the
/// channels in `regions_class_order` order, later regions overwrite earlier ones.
pub fn paint_region(labels: &mut [u8], logits: &[f32], value: u32) {
    let paint = value.min(255) as u8;
    labels
        .par_iter_mut()
        .zip(logits.par_iter())
        .for_each(|(l, &x)| {
            if 1.0f32 / (1.0 + (-x).exp()) > 0.5 {
                *l = paint;
            }
        });
}

/// The CT in the model's axis order (`shape`, `[z, y, x]`), cropped to its non-zero box as
/// nnU-Net crops: the cropped `f32` values and the box (`[z, y, x]`, `[start, end)`). `native`:
/// `perm` is the identity (the CT's own order, read in place).
fn oriented_crop<T: HuSample>(
    ct: &Volume<T>,
    perm: &Perm,
    native: bool,
    shape: [usize; 3],
) -> (Vec<f32>, [[usize; 2]; 3]) {
    let g = *ct.geometry();
    let oriented: std::borrow::Cow<'_, [T]> = if native {
        std::borrow::Cow::Borrowed(ct.data())
    } else {
        let [_, ny, nx] = shape;
        let src = ct.data();
        let v: Vec<T> = (0..shape.iter().product::<usize>())
            .into_par_iter()
            .map(|f| {
                let zyx = [f / (ny * nx), (f / nx) % ny, f % nx];
                src.get(ct_index(perm, g.size, zyx))
                    .copied()
                    .unwrap_or_default()
            })
            .collect();
        std::borrow::Cow::Owned(v)
    };
    // 1. crop
    let bb = nonzero_bbox(&oriented, shape);
    let cshape = [0, 1, 2].map(|a| bb[a][1] - bb[a][0]);
    let mut data = Vec::with_capacity(cshape.iter().product());
    for z in bb[0][0]..bb[0][1] {
        for y in bb[1][0]..bb[1][1] {
            let s = (z * shape[1] + y) * shape[2];
            data.extend(
                oriented
                    .get(s + bb[2][0]..s + bb[2][1])
                    .unwrap_or(&[])
                    .iter()
                    .map(|v| v.hu()),
            );
        }
    }
    drop(oriented);
    (data, bb)
}

/// Runs an nnU-Net package on a CT volume (HU): the label map on the CT grid, confidence and
/// uncertainty per label on the model grid (softmax of the ensembled logits; none for
/// region-based models).
pub fn predict<'a>(
    model: &Model,
    spec: &NnunetSpec,
    ct: impl Into<HuRef<'a>>,
    opts: &InferOptions<'_>,
) -> Result<Prediction> {
    let ct = ct.into();
    let m = &model.manifest;
    let report = |stage: &str, fraction: f64| {
        if let Some(f) = opts.progress {
            f(Progress { stage, fraction });
        }
    };
    let cancelled = || crate::infer::check_cancel(&opts.cancel);
    let mut timings = Timings::default();
    let t0 = Instant::now();
    report("preprocess", 0.0);
    let g = *ct.geometry();
    let perm = perm_for(&g, m.orientation);
    let (shape, spacing) = oriented_dims(&perm, &g);
    let native = perm == [(0, false), (1, false), (2, false)];
    let (mut data, bb) = with_hu!(ct, v => oriented_crop(v, &perm, native, shape));
    let cshape = [0, 1, 2].map(|a| bb[a][1] - bb[a][0]);
    // 2. normalise
    let norm = spec.norm().map_err(|reason| Error::InvalidManifest {
        path: model.dir.join("model.json"),
        reason,
        source: None,
    })?;
    normalize(&mut data, cshape, norm);
    // 3. resample
    let target = spec.spacing_zyx;
    let mshape = resample::new_shape(cshape, spacing, target)?;
    let classes = spec.labels.num_segmentation_heads;
    let mvox: usize = mshape.iter().product();
    let padded: [usize; 3] = [0, 1, 2].map(|a| mshape[a].max(spec.patch_size_zyx[a]));
    let pvox: u64 = padded.iter().map(|&v| v as u64).product();
    // float16 accumulators for every channel and fold, the weights, the float32 image.
    let need = pvox * (classes as u64 * 2 * (model.fold_count() as u64).min(2) + 2 + 4);
    if need > opts.memory_limit_bytes {
        return Err(Error::MemoryLimit {
            what: format!(
                "nnU-Net logits for {classes} channels on a {}×{}×{} grid",
                padded[2], padded[1], padded[0]
            ),
            needed_bytes: need,
            limit_bytes: opts.memory_limit_bytes,
        });
    }
    let image = resample::resample_channel(
        &data,
        cshape,
        mshape,
        spacing,
        target,
        &spec.resampling.data_kind(),
        |v| v as f64,
        |v| v as f32,
    )?;
    drop(data);
    timings.model_grid_s = t0.elapsed().as_secs_f64();
    timings.preprocess_s = timings.model_grid_s;
    cancelled()?;
    report("preprocess", 0.05);
    // 4. sliding window per fold, folds averaged
    let t1 = Instant::now();
    let mirrors = if opts.disable_mirroring {
        Vec::new()
    } else {
        window::mirror_combinations(&spec.mirroring.axes_zyx)
    };
    let gauss = window::gaussian(
        spec.patch_size_zyx,
        spec.gaussian.sigma_scale,
        spec.gaussian.value_scaling_factor,
    )?;
    let win = window::Window {
        patch: spec.patch_size_zyx,
        step: spec.sliding_window.tile_step,
        loop_axes: spec.tile_loop_axes_zyx,
        mirrors: &mirrors,
        gaussian: &gauss,
        channels: classes,
    };
    let folds = model.fold_count();
    let mut per_fold = Vec::with_capacity(folds);
    let mut stats = window::WindowStats::default();
    let mut ort_s = 0.0;
    for fi in 0..folds {
        let mut session = model.fold_session(fi)?;
        let onnx = &m.onnx;
        let p = spec.patch_size_zyx;
        let half = m.onnx.dtype == crate::model::DType::Float16;
        let mut tile16: Vec<f16> = Vec::new();
        // The network on one tile: float32 in and out (a float16 graph, from the importer's
        // --fp16, gets the tile rounded to float16 and its output widened back to float32).
        let mut net = |tile: &[f32]| -> Result<Vec<f32>> {
            let shape = [1usize, 1, p[0], p[1], p[2]];
            let tensor: ort::session::SessionInputValue<'_> = if half {
                tile16.clear();
                tile16.extend(tile.iter().map(|&v| f16::from_f32(v)));
                ort::value::TensorRef::from_array_view((shape, &tile16[..]))
                    .map_err(|e| ort_failure(0, e))?
                    .into()
            } else {
                ort::value::TensorRef::from_array_view((shape, tile))
                    .map_err(|e| ort_failure(0, e))?
                    .into()
            };
            let tr = Instant::now();
            let out = session
                .run(ort::inputs![onnx.input.as_str() => tensor])
                .map_err(|e| ort_failure(0, e))?;
            ort_s += tr.elapsed().as_secs_f64();
            let v = out
                .get(onnx.output.as_str())
                .ok_or_else(|| Error::Inference {
                    tile: 0,
                    reason: format!("no output named {:?}", onnx.output),
                    source: None,
                })?;
            if half {
                let (_, data) = v
                    .try_extract_tensor::<f16>()
                    .map_err(|e| ort_failure(0, e))?;
                Ok(data.iter().map(|x| x.to_f32()).collect())
            } else {
                let (_, data) = v
                    .try_extract_tensor::<f32>()
                    .map_err(|e| ort_failure(0, e))?;
                Ok(data.to_vec())
            }
        };
        let total = folds;
        let mut between = |n: usize, of: usize| -> Result<()> {
            cancelled()?;
            report(
                "inference",
                0.05 + 0.85 * (fi as f64 + n as f64 / of.max(1) as f64) / total as f64,
            );
            Ok(())
        };
        let (logits, s) = win.run(&image, mshape, &mut net, &mut between)?;
        stats.tiles = s.tiles;
        stats.evaluations += s.evaluations;
        per_fold.push(logits);
    }
    drop(image);
    let logits = window::ensemble(per_fold);
    timings.inference_s = t1.elapsed().as_secs_f64();
    timings.ort_run_s = ort_s;
    cancelled()?;
    report("resample", 0.9);
    // confidence and uncertainty on the model grid
    let t2 = Instant::now();
    let regions = spec
        .labels
        .has_regions
        .then(|| spec.labels.regions_class_order.clone().unwrap_or_default());
    let num_labels = m.num_classes();
    let (confidence, uncertainty) = if regions.is_none() {
        let scores: Vec<f32> = logits.par_iter().map(|v| v.to_f32()).collect();
        let (model_labels, conf) =
            crate::infer::argmax_and_confidence(&scores, classes, mvox, OutputKind::Logits);
        let unc = uncertainty::class_uncertainty(
            &scores,
            classes,
            mshape,
            &model_labels,
            OutputKind::Logits,
        );
        (conf, unc)
    } else {
        (vec![None; num_labels], vec![None; num_labels])
    };
    timings.confidence_s = t2.elapsed().as_secs_f64();
    // 5.–6. logits back to the cropped box one channel at a time (stored in float16 as nnU-Net
    // does, or float32), reduced at once to the argmax (first maximum wins) or the painted
    // regions, so that only one channel is ever resampled in memory.
    let tb = Instant::now();
    let cvox: usize = cshape.iter().product();
    let kind = spec.resampling.logits_kind();
    let keep16 = spec.resampling.logits_dtype == "float16";
    let mut best = vec![f32::NEG_INFINITY; cvox];
    let mut cropped = vec![0u8; cvox];
    for c in 0..classes {
        let ch = logits.get(c * mvox..(c + 1) * mvox).unwrap_or(&[]);
        let r = resample::resample_channel(
            ch,
            mshape,
            cshape,
            target,
            spacing,
            &kind,
            |v: f16| v.to_f64(),
            |v| {
                if keep16 {
                    f16::from_f64(v).to_f32()
                } else {
                    v as f32
                }
            },
        )?;
        match &regions {
            None => argmax_step(&mut cropped, &mut best, &r, c as u8),
            Some(order) => paint_region(&mut cropped, &r, order.get(c).copied().unwrap_or(0)),
        }
        cancelled()?;
    }
    drop(logits);
    drop(best);
    let mut oriented_labels = vec![0u8; shape.iter().product()];
    for z in 0..cshape[0] {
        for y in 0..cshape[1] {
            let s = (z * cshape[1] + y) * cshape[2];
            let d = ((z + bb[0][0]) * shape[1] + y + bb[1][0]) * shape[2] + bb[2][0];
            if let (Some(dst), Some(src)) = (
                oriented_labels.get_mut(d..d + cshape[2]),
                cropped.get(s..s + cshape[2]),
            ) {
                dst.copy_from_slice(src);
            }
        }
    }
    let labels = if native {
        oriented_labels
    } else {
        let mut out = vec![0u8; g.voxel_count()];
        let [_, ny, nx] = shape;
        for (f, &l) in oriented_labels.iter().enumerate() {
            let zyx = [f / (ny * nx), (f / nx) % ny, f % nx];
            if let Some(d) = out.get_mut(ct_index(&perm, g.size, zyx)) {
                *d = l;
            }
        }
        out
    };
    if let Some(&bad) = labels.iter().find(|&&l| l as usize >= num_labels) {
        return Err(Error::Inference {
            tile: 0,
            reason: format!("label value {bad} is not one of the manifest's {num_labels} labels"),
            source: None,
        });
    }
    timings.back_resample_s = tb.elapsed().as_secs_f64();
    timings.resample_s = t2.elapsed().as_secs_f64();
    report("resample", 1.0);
    let grid = model_grid(&g, m.orientation, target)?;
    Ok(Prediction {
        labels: Volume::new(g, labels)?,
        confidence: pad_to(confidence, num_labels),
        uncertainty: pad_to(uncertainty, num_labels),
        grid,
        probabilities: None,
        tiles: stats.tiles,
        evaluations: stats.evaluations,
        timings,
    })
}

fn pad_to<T: Clone>(mut v: Vec<Option<T>>, n: usize) -> Vec<Option<T>> {
    v.resize(n, None);
    v
}

/// The target-spacing grid over the whole CT, for [`Prediction::grid`] (nnU-Net's own grid
/// covers the nonzero box only, with its size rounded half to even).
fn model_grid(g: &Geometry, orientation: Orientation, zyx: [f64; 3]) -> Result<ModelGrid> {
    let o = match orientation {
        Orientation::Ras => Orientation::Lps,
        o => o,
    };
    ModelGrid::new(g, o, Spacing::Mm([zyx[2], zyx[1], zyx[0]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonzero_mask_fills_enclosed_zeros_only() {
        // 5 × 5 × 5: a hollow 3 × 3 × 3 shell around one zero voxel, zeros outside
        let shape = [5, 5, 5];
        let mut d = vec![0f32; 125];
        for z in 1..4 {
            for y in 1..4 {
                for x in 1..4 {
                    if (z, y, x) != (2, 2, 2) {
                        d[(z * 5 + y) * 5 + x] = -1000.0;
                    }
                }
            }
        }
        let m = nonzero_mask_filled(&d, shape);
        assert!(m[(2 * 5 + 2) * 5 + 2], "the enclosed zero is filled");
        assert_eq!(m.iter().filter(|&&v| v).count(), 27);
        assert!(!m[0]);
        assert_eq!(nonzero_bbox(&d, shape), [[1, 4], [1, 4], [1, 4]]);
    }

    #[test]
    fn ct_normalisation_clips_as_numpy_and_takes_any_bounds() {
        let norm = |lo, hi, d: &mut [f32]| {
            normalize(
                d,
                [1, 1, d.len()],
                Norm::Ct {
                    lo,
                    hi,
                    mean: 10.0,
                    std: 2.0,
                },
            )
        };
        let mut d = [-2000.0, 0.0, 50.0, 3000.0, f32::NAN];
        norm(-1000.0, 1000.0, &mut d);
        assert_eq!(d[..4], [-505.0, -5.0, 20.0, 495.0]);
        assert!(d[4].is_nan(), "np.clip keeps NaN");
        // Reversed or NaN bounds (refused when a spec is checked): no panic.
        let mut d = [0.0, 5.0];
        norm(1000.0, -1000.0, &mut d);
        assert_eq!(d, [495.0, 495.0]);
        let mut d = [0.0];
        norm(f32::NAN, f32::NAN, &mut d);
        assert_eq!(d, [-5.0]);
    }
}
