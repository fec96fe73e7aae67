//! The public grid arithmetic of inference, called with arbitrary arguments: tiling, Gaussian
//! maps, mirroring, nnU-Net's resampling (scipy's zoom, skimage's resize), cropping and
//! normalisation, the model grid and the way back to the CT grid, class uncertainty. Shapes stay
//! small (at most 12 voxels per axis) so every call is cheap; everything else (spacings, steps,
//! orders, axes, lengths that do not match the shape, non-finite values) is the fuzzer's.
#![no_main]
use arbitrary::{Arbitrary, Unstructured};
use autocontour::infer::{grid, tiling, uncertainty};
use autocontour::model::{Normalization, Orientation, OutputKind, Spacing};
use autocontour::nnunet::{self, resample, spec::Norm, window};
use autocontour::volume::{Geometry, Volume};
use half::f16;
use libfuzzer_sys::fuzz_target;

/// A small extent: 0..=12.
fn dim(u: &mut Unstructured) -> arbitrary::Result<usize> {
    Ok(usize::from(u8::arbitrary(u)? % 13))
}

fn shape3(u: &mut Unstructured) -> arbitrary::Result<[usize; 3]> {
    Ok([dim(u)?, dim(u)?, dim(u)?])
}

/// A length near `n`: usually `n`, sometimes a little off.
fn len_near(u: &mut Unstructured, n: usize) -> arbitrary::Result<usize> {
    Ok(match u8::arbitrary(u)? % 8 {
        0 => n.saturating_sub(1),
        1 => n + 1,
        2 => 0,
        _ => n,
    })
}

fn floats(u: &mut Unstructured, n: usize) -> arbitrary::Result<Vec<f32>> {
    (0..n).map(|_| f32::arbitrary(u)).collect()
}

fn spacing3(u: &mut Unstructured) -> arbitrary::Result<[f64; 3]> {
    Ok([f64::arbitrary(u)?, f64::arbitrary(u)?, f64::arbitrary(u)?])
}

fn run(u: &mut Unstructured) -> arbitrary::Result<()> {
    match u8::arbitrary(u)? % 8 {
        0 => {
            let (size, patch) = (usize::arbitrary(u)? % 4096, usize::arbitrary(u)? % 4096);
            let step = f64::arbitrary(u)?;
            let _ = tiling::tile_starts(size, patch, step);
            let _ = tiling::center_crop_weights(
                usize::arbitrary(u)? % 4096,
                patch,
                size,
                usize::arbitrary(u)?,
            );
            let _ = tiling::gaussian_map(shape3(u)?);
        }
        1 => {
            let patch = shape3(u)?;
            let _ = window::gaussian(patch, f64::arbitrary(u)?, f64::arbitrary(u)?);
            let axes: Vec<usize> = Vec::arbitrary(u)?;
            let mirrors = window::mirror_combinations(&axes[..axes.len().min(4)]);
            let gaussian: Vec<f16> = {
                let n = len_near(u, patch.iter().product())?;
                floats(u, n)?.into_iter().map(f16::from_f32).collect()
            };
            let w = window::Window {
                patch,
                step: f64::arbitrary(u)?,
                loop_axes: [
                    usize::from(u8::arbitrary(u)? % 4),
                    usize::from(u8::arbitrary(u)? % 4),
                    usize::from(u8::arbitrary(u)? % 4),
                ],
                mirrors: &mirrors,
                gaussian: &gaussian,
                channels: usize::from(u8::arbitrary(u)? % 4),
            };
            let shape = shape3(u)?;
            let _ = w.tiles(shape);
            let data = {
                let n = len_near(u, shape.iter().product())?;
                floats(u, n)?
            };
            let out_len = len_near(u, w.channels * patch.iter().product::<usize>())?;
            let value = f32::arbitrary(u)?;
            let _ = w.run(
                &data,
                shape,
                &mut |t| Ok(vec![t.first().copied().unwrap_or(value); out_len]),
                &mut |_, _| Ok(()),
            );
            let folds: Vec<Vec<f16>> = (0..u8::arbitrary(u)? % 3)
                .map(|_| {
                    let n = len_near(u, 8)?;
                    Ok(floats(u, n)?.into_iter().map(f16::from_f32).collect())
                })
                .collect::<arbitrary::Result<_>>()?;
            let _ = window::ensemble(folds);
        }
        2 => {
            let shape = shape3(u)?;
            let (old, new) = (spacing3(u)?, spacing3(u)?);
            let _ = resample::new_shape(shape, old, new);
            let kind = resample::ResampleKind {
                order: usize::from(u8::arbitrary(u)? % 7),
                order_z: usize::from(u8::arbitrary(u)? % 7),
                force_separate_z: Option::<bool>::arbitrary(u)?,
                anisotropy_threshold: f64::arbitrary(u)?,
            };
            let _ = resample::separate_z(old, new, &kind);
            let out = shape3(u)?;
            let data = {
                let n = len_near(u, shape.iter().product())?;
                floats(u, n)?
            };
            let _ =
                resample::resample_channel(&data, shape, out, old, new, &kind, f64::from, |v| {
                    v as f32
                });
        }
        3 => {
            let rank = usize::from(u8::arbitrary(u)? % 5);
            let shape: Vec<usize> = (0..rank)
                .map(|_| dim(u))
                .collect::<arbitrary::Result<_>>()?;
            let out: Vec<usize> = (0..len_near(u, rank)?)
                .map(|_| dim(u))
                .collect::<arbitrary::Result<_>>()?;
            let n = len_near(u, shape.iter().product())?;
            let x: Vec<f64> = (0..n)
                .map(|_| f64::arbitrary(u))
                .collect::<arbitrary::Result<_>>()?;
            let order = usize::from(u8::arbitrary(u)? % 7);
            let _ = resample::zoom(&x, &shape, &out, order);
            let _ = resample::resize(&x, &shape, &out, order);
        }
        4 => {
            let shape = shape3(u)?;
            let mut data = {
                let n = len_near(u, shape.iter().product())?;
                floats(u, n)?
            };
            let _ = nnunet::nonzero_bbox(&data, shape);
            let _ = nnunet::nonzero_mask_filled(&data, shape);
            let norm = if bool::arbitrary(u)? {
                Norm::Ct {
                    lo: f32::arbitrary(u)?,
                    hi: f32::arbitrary(u)?,
                    mean: f32::arbitrary(u)?,
                    std: f32::arbitrary(u)?,
                }
            } else {
                Norm::Image {
                    use_mask: bool::arbitrary(u)?,
                }
            };
            nnunet::normalize(&mut data, shape, norm);
            let mask: Vec<bool> = (0..len_near(u, data.len())?)
                .map(|_| bool::arbitrary(u))
                .collect::<arbitrary::Result<_>>()?;
            nnunet::zscore(&mut data, Some(&mask));
            let n = data.len();
            let mut labels = vec![0u8; len_near(u, n)?];
            let mut best = vec![f32::NEG_INFINITY; len_near(u, n)?];
            nnunet::argmax_step(&mut labels, &mut best, &data, u8::arbitrary(u)?);
            nnunet::paint_region(&mut labels, &data, u32::arbitrary(u)?);
        }
        5 | 6 => {
            let size = shape3(u)?;
            let direction = if bool::arbitrary(u)? {
                [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
            } else {
                [spacing3(u)?, spacing3(u)?, spacing3(u)?]
            };
            let Ok(ct) = Geometry::new(size, spacing3(u)?, spacing3(u)?, direction) else {
                return Ok(());
            };
            let orientation = match u8::arbitrary(u)? % 3 {
                0 => Orientation::Lps,
                1 => Orientation::Ras,
                _ => Orientation::Native,
            };
            let spacing = Spacing::Mm(spacing3(u)?);
            let Ok(g) = grid::ModelGrid::new(&ct, orientation, spacing) else {
                return Ok(());
            };
            // A grid whose model side is huge is the caller's request; keep the calls cheap.
            if g.zyx().iter().product::<usize>() > 1 << 16 {
                return Ok(());
            }
            let hu = floats(u, ct.voxel_count())?;
            let Ok(vol) = Volume::new(ct, hu) else {
                return Ok(());
            };
            let norm = if bool::arbitrary(u)? {
                Normalization::CtWindow {
                    level: f64::arbitrary(u)?,
                    width: f64::arbitrary(u)?,
                    range: [f64::arbitrary(u)?, f64::arbitrary(u)?],
                }
            } else {
                Normalization::CtZscore {
                    clip: [f64::arbitrary(u)?, f64::arbitrary(u)?],
                    mean: f64::arbitrary(u)?,
                    std: f64::arbitrary(u)?,
                }
            };
            to_model_and_back(u, &vol, &g, &norm)?;
        }
        _ => {
            // A model grid built by hand: public fields, nothing checked between them.
            let ct = Geometry::new(
                shape3(u)?,
                [0.0; 3],
                [1.0; 3],
                [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
            );
            let Ok(ct) = ct else { return Ok(()) };
            let axis = |u: &mut Unstructured| -> arbitrary::Result<grid::AxisMap> {
                Ok(grid::AxisMap {
                    ct_axis: usize::from(u8::arbitrary(u)? % 4),
                    flipped: bool::arbitrary(u)?,
                    ct_len: dim(u)?,
                    len: dim(u)?,
                    step: f64::arbitrary(u)?,
                })
            };
            let axes = [axis(u)?, axis(u)?, axis(u)?];
            // Usually a geometry of the axes' lengths, so the other invariants are what varies.
            let lens = axes.map(|a| a.len.max(1));
            let size = if bool::arbitrary(u)? { lens } else { ct.size };
            let Ok(geometry) = Geometry::new(size, [0.0; 3], [2.0; 3], ct.direction) else {
                return Ok(());
            };
            let g = grid::ModelGrid { axes, geometry };
            let hu = floats(u, ct.voxel_count())?;
            let Ok(vol) = Volume::new(ct, hu) else {
                return Ok(());
            };
            let norm = Normalization::CtWindow {
                level: 0.0,
                width: 400.0,
                range: [0.0, 1.0],
            };
            to_model_and_back(u, &vol, &g, &norm)?;
        }
    }
    Ok(())
}

/// The CT onto the model grid, scores and labels of arbitrary lengths back to the CT grid, and
/// the class uncertainty of those scores.
fn to_model_and_back(
    u: &mut Unstructured,
    vol: &Volume<f32>,
    g: &grid::ModelGrid,
    norm: &Normalization,
) -> arbitrary::Result<()> {
    let ct = *vol.geometry();
    let _ = grid::resample_to_model(vol, g, norm);
    let classes = usize::from(u8::arbitrary(u)? % 4);
    let model_vox: usize = g.zyx().iter().product();
    let scores = {
        let n = len_near(u, classes * model_vox)?;
        floats(u, n)?
    };
    let _ = grid::scores_to_ct_labels(&scores, classes, g, &ct);
    let labels: Vec<u8> = (0..len_near(u, model_vox)?)
        .map(|_| u8::arbitrary(u))
        .collect::<arbitrary::Result<_>>()?;
    let _ = grid::labels_to_ct_nearest(&labels, g, &ct);
    let kind = if bool::arbitrary(u)? {
        OutputKind::Logits
    } else {
        OutputKind::Probabilities
    };
    let _ = uncertainty::class_uncertainty(&scores, classes, g.zyx(), &labels, kind);
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
