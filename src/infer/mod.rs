//! Inference: CT volume → model grid → tiles through ONNX Runtime → blended class scores →
//! label map on the CT grid.
//!
//! Memory: class scores are accumulated at model resolution only (`classes × model voxels ×
//! 4 bytes`, checked against [`InferOptions::memory_limit_bytes`] before allocating) and brought
//! back to the CT grid one CT slice at a time, so full-resolution float scores for all classes
//! are never held.
//!
//! Determinism: tiles run in a fixed order and are accumulated in that order; the same inputs,
//! model and execution provider give the same labels.

pub mod grid;
pub mod tiling;
pub mod uncertainty;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result, cause};
use crate::model::{Blending, DType, Model, OutputKind, ResampleOutput};
use crate::volume::{Geometry, HuRef, Volume};

pub use grid::ModelGrid;

/// A progress report: the stage and how far it is, 0–1 (monotone within a run).
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// `preprocess`, `inference` or `resample`.
    pub stage: &'a str,
    /// Overall fraction done, 0–1.
    pub fraction: f64,
}

/// A handle to cancel a running inference from another thread.
///
/// Cancellation is checked between tiles; a tile already inside ONNX Runtime is stopped through
/// ONNX Runtime's run termination. The run then fails with [`Error::Cancelled`].
#[derive(Clone, Default)]
pub struct CancelToken {
    inner: Arc<CancelInner>,
}

#[derive(Default)]
struct CancelInner {
    flag: AtomicBool,
    current: Mutex<Option<Arc<ort::session::RunOptions>>>,
}

impl CancelToken {
    /// A fresh token, not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests cancellation. Safe from any thread, any number of times.
    pub fn cancel(&self) {
        self.inner.flag.store(true, Ordering::SeqCst);
        let current = self
            .inner
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(r) = current
            && let Err(e) = r.terminate()
        {
            log::warn!("could not terminate the running ONNX Runtime call: {e}");
        }
    }

    /// True once [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.inner.flag.load(Ordering::SeqCst)
    }

    fn set_current(&self, r: Option<Arc<ort::session::RunOptions>>) {
        *self.inner.current.lock().unwrap_or_else(|p| p.into_inner()) = r;
    }
}

/// Options for one inference run.
pub struct InferOptions<'a> {
    /// Largest allowed size of the model-resolution score accumulators, bytes (default 8 GiB).
    pub memory_limit_bytes: u64,
    /// Tiles per ONNX Runtime call (0: as many as the graph's batch axis allows, at most 4).
    pub batch: usize,
    /// Called with monotone progress.
    pub progress: Option<&'a (dyn Fn(Progress<'_>) + Sync)>,
    /// Cancellation handle.
    pub cancel: Option<CancelToken>,
    /// Keep the per-class probabilities on the model grid in [`Prediction::probabilities`]
    /// (not available for nnU-Net packages).
    pub keep_probabilities: bool,
    /// Run without the manifest's mirroring test-time augmentation.
    pub disable_mirroring: bool,
}

impl Default for InferOptions<'_> {
    fn default() -> Self {
        InferOptions {
            memory_limit_bytes: 8 << 30,
            batch: 0,
            progress: None,
            cancel: None,
            keep_probabilities: false,
            disable_mirroring: false,
        }
    }
}

/// Seconds spent per stage.
///
/// The four totals (`preprocess_s`, `inference_s`, `ort_run_s`, `resample_s`) are what the CLI,
/// the C API and the summaries report; the other fields split them into the engine's own steps,
/// so that everything outside ONNX Runtime can be told apart. `inference_s` minus the steps inside
/// it is the per-call overhead (run options, tensor views, progress).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    /// Reorientation, resampling and normalisation, padding.
    pub preprocess_s: f64,
    /// The tile loop, ONNX Runtime included.
    pub inference_s: f64,
    /// Inside ONNX Runtime's `Run` only.
    pub ort_run_s: f64,
    /// Normalisation by the weight sum, argmax and confidence on the model grid, scores back to
    /// the CT grid and argmax there (and the kept probabilities when asked for).
    pub resample_s: f64,
    /// In `preprocess_s`: reorientation, trilinear resampling to the model spacing and
    /// normalisation, done in one pass.
    pub model_grid_s: f64,
    /// In `preprocess_s`: padding the model-grid image up to the patch size.
    pub pad_s: f64,
    /// In `inference_s`: the blending weight sum over all tiles.
    pub weights_s: f64,
    /// In `inference_s`: copying tiles out of the image, mirrored copies for TTA.
    pub tile_gather_s: f64,
    /// In `inference_s`: `f32` ↔ `f16` conversion, the finite-output check, summing mirrored
    /// outputs.
    pub convert_s: f64,
    /// In `inference_s`: weighted accumulation of the tile outputs (Gaussian or centre crop).
    pub blend_s: f64,
    /// In `resample_s`: division by the weight sum (and cropping away the padding).
    pub normalize_s: f64,
    /// In `resample_s`: argmax and per-class confidence on the model grid.
    pub confidence_s: f64,
    /// In `resample_s`: scores back to the CT grid with argmax, one fused pass.
    pub back_resample_s: f64,
    /// In `resample_s`: per-class probabilities kept on the model grid (only when asked for).
    pub probabilities_s: f64,
}

/// The outcome of inference on one CT.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// Label map on the CT grid (0 = background, n = manifest label n).
    pub labels: Volume<u8>,
    /// Per label: mean model probability of that label over the model-grid voxels assigned to
    /// it (`None` when none were).
    pub confidence: Vec<Option<f64>>,
    /// Per label: entropy and margin of the model's probabilities inside the voxels it won on the
    /// model grid and along their boundary (`None` when it won none).
    pub uncertainty: Vec<Option<uncertainty::ClassUncertainty>>,
    /// The model grid used.
    pub grid: ModelGrid,
    /// Per-class probabilities on the model grid, `[class][z][y][x]` (only with
    /// [`InferOptions::keep_probabilities`]).
    pub probabilities: Option<Vec<f32>>,
    /// Number of tiles (before mirroring).
    pub tiles: usize,
    /// Network evaluations (tiles × mirror combinations).
    pub evaluations: usize,
    /// Time per stage.
    pub timings: Timings,
}

struct Reporter<'a> {
    f: Option<&'a (dyn Fn(Progress<'_>) + Sync)>,
    last: f64,
}

impl Reporter<'_> {
    fn report(&mut self, stage: &str, fraction: f64) {
        let fraction = fraction.clamp(self.last, 1.0);
        self.last = fraction;
        if let Some(f) = self.f {
            f(Progress { stage, fraction });
        }
    }
}

pub(crate) fn check_cancel(c: &Option<CancelToken>) -> Result<()> {
    if c.as_ref().is_some_and(|c| c.is_cancelled()) {
        return Err(Error::Cancelled);
    }
    Ok(())
}

/// All subsets of the mirror axes (the empty one first), as nnU-Net's mirroring TTA.
fn mirror_sets(axes: &[usize]) -> Vec<Vec<usize>> {
    let mut uniq: Vec<usize> = axes.to_vec();
    uniq.sort_unstable();
    uniq.dedup();
    let n = uniq.len();
    (0..(1usize << n))
        .map(|mask| {
            (0..n)
                .filter(|b| mask & (1 << b) != 0)
                .filter_map(|b| uniq.get(b).copied())
                .collect()
        })
        .collect()
}

/// Calls `f(dst, src)` with the start offsets of every row of a `[z][y][x]` block of size `p`
/// and of the row it comes from when the block is mirrored along `axes` (0 = z, 1 = y,
/// otherwise x). Returns whether rows are mirrored too (x in `axes`): the caller then reads the
/// source row backwards.
fn mirrored_rows(p: [usize; 3], axes: &[usize], mut f: impl FnMut(usize, usize)) -> bool {
    let [pz, py, px] = p;
    let (fz, fy) = (axes.contains(&0), axes.contains(&1));
    for z in 0..pz {
        let sz = if fz { pz - 1 - z } else { z };
        for y in 0..py {
            let sy = if fy { py - 1 - y } else { y };
            f((z * py + y) * px, (sz * py + sy) * px);
        }
    }
    axes.iter().any(|&a| a > 1)
}

/// `dst = src` mirrored along `axes`, for each `[z][y][x]` block of size `p` in the two slices.
pub(crate) fn mirror_copy(dst: &mut [f32], src: &[f32], p: [usize; 3], axes: &[usize]) {
    let pv = p[0] * p[1] * p[2];
    let px = p[2];
    for (d, s) in dst.chunks_mut(pv.max(1)).zip(src.chunks(pv.max(1))) {
        let mut rev = false;
        rev |= mirrored_rows(p, axes, |di, si| {
            if let (Some(d), Some(s)) = (d.get_mut(di..di + px), s.get(si..si + px)) {
                d.copy_from_slice(s);
            }
        });
        if rev {
            for row in d.chunks_mut(px.max(1)) {
                row.reverse();
            }
        }
    }
}

/// `sum (+)= out` with `out` mirrored back along `axes`, per `[z][y][x]` block of size `p`;
/// `first` overwrites instead of adding.
fn mirror_add<T: Copy + Into<f32>>(
    sum: &mut [f32],
    out: &[T],
    p: [usize; 3],
    axes: &[usize],
    first: bool,
) {
    let pv = p[0] * p[1] * p[2];
    let px = p[2];
    let rev = axes.iter().any(|&a| a > 1);
    for (d, s) in sum.chunks_mut(pv.max(1)).zip(out.chunks(pv.max(1))) {
        mirrored_rows(p, axes, |di, si| {
            let (Some(d), Some(s)) = (d.get_mut(di..di + px), s.get(si..si + px)) else {
                return;
            };
            match (first, rev) {
                (true, false) => d.iter_mut().zip(s).for_each(|(d, &s)| *d = s.into()),
                (true, true) => d
                    .iter_mut()
                    .zip(s.iter().rev())
                    .for_each(|(d, &s)| *d = s.into()),
                (false, false) => d.iter_mut().zip(s).for_each(|(d, &s)| *d += s.into()),
                (false, true) => d
                    .iter_mut()
                    .zip(s.iter().rev())
                    .for_each(|(d, &s)| *d += s.into()),
            }
        });
    }
}

/// Tile geometry shared by the gather and blend steps.
#[derive(Clone, Copy)]
struct TileGeom {
    patch: [usize; 3],
    padded: [usize; 3],
}

impl TileGeom {
    /// Calls `f(grid_offset, patch_offset)` for the start of every row of the tile at `t`.
    fn rows(&self, t: [usize; 3], mut f: impl FnMut(usize, usize)) {
        let [pz, py, px] = self.patch;
        for z in 0..pz {
            for y in 0..py {
                let gi = ((t[0] + z) * self.padded[1] + t[1] + y) * self.padded[2] + t[2];
                f(gi, (z * py + y) * px);
            }
        }
    }
}

/// The blending weights of the tile at `t` (`[z][y][x]` over the patch): the shared Gaussian
/// map, or the tile's centre-crop weights built in `buf`.
fn tile_weights<'a>(
    buf: &'a mut Vec<f32>,
    gauss: Option<&'a [f32]>,
    t: [usize; 3],
    g: TileGeom,
    strides: [usize; 3],
) -> &'a [f32] {
    if let Some(gm) = gauss {
        return gm;
    }
    let [pz, py, px] = g.patch;
    let wz = tiling::center_crop_weights(t[0], pz, g.padded[0], strides[0]);
    let wy = tiling::center_crop_weights(t[1], py, g.padded[1], strides[1]);
    let wx = tiling::center_crop_weights(t[2], px, g.padded[2], strides[2]);
    buf.clear();
    for &a in &wz {
        for &b in &wy {
            buf.extend(wx.iter().map(|&c| a * b * c));
        }
    }
    buf
}

/// `acc[c] += src[c] · scale · w` over the tile at `t`, every class in parallel (each voxel's
/// sum still takes the tiles in order). `acc` is `[class][padded grid]`, `src` `[class][patch]`.
fn blend_tile(acc: &mut [f32], src: &[f32], w: &[f32], scale: f32, t: [usize; 3], g: TileGeom) {
    let pvox = g.padded[0] * g.padded[1] * g.padded[2];
    let pv = g.patch[0] * g.patch[1] * g.patch[2];
    let px = g.patch[2];
    acc.par_chunks_mut(pvox.max(1))
        .zip(src.par_chunks(pv.max(1)))
        .for_each(|(a, s)| {
            g.rows(t, |gi, pi| {
                if let (Some(a), Some(s), Some(w)) = (
                    a.get_mut(gi..gi + px),
                    s.get(pi..pi + px),
                    w.get(pi..pi + px),
                ) {
                    for ((a, &s), &w) in a.iter_mut().zip(s).zip(w) {
                        *a += s * scale * w;
                    }
                }
            });
        });
}

/// Runs `model` on a CT volume (HU) and returns the label map on the CT grid.
///
/// 1. `prepare`: the model grid, resampled and normalised in one pass, padded to the patch.
/// 2. `run_tiles`: tiles in batches through ONNX Runtime, with mirroring, blended into the
///    class-score accumulators; cancellation between tiles and inside ONNX Runtime.
/// 3. `finish`: scores normalised by the weight sum, argmax and confidence, labels back on the
///    CT grid, the probabilities when asked for.
///
/// `ct` is a [`HuVolume`](crate::volume::HuVolume) (as loaded), a `Volume<i16>` or a
/// `Volume<f32>`, borrowed.
pub fn predict<'a>(
    model: &Model,
    ct: impl Into<HuRef<'a>>,
    opts: &InferOptions<'_>,
) -> Result<Prediction> {
    let ct = ct.into();
    if !model.parts.is_empty() {
        return predict_bundle(model, ct, opts);
    }
    if let Some(spec) = &model.manifest.nnunet {
        if opts.keep_probabilities {
            return Err(Error::InvalidArgument(
                "probabilities are not kept for nnU-Net packages".into(),
            ));
        }
        return crate::nnunet::predict(model, spec, ct, opts);
    }
    let mut rep = Reporter {
        f: opts.progress,
        last: 0.0,
    };
    let mut timings = Timings::default();
    rep.report("preprocess", 0.0);
    check_cancel(&opts.cancel)?;
    let ModelInput { grid, pad, image } = prepare(model, ct, opts, &mut timings)?;
    rep.report("preprocess", 0.05);
    check_cancel(&opts.cancel)?;
    let blended = run_tiles(model, image, pad, opts, &mut rep, &mut timings)?;
    check_cancel(&opts.cancel)?;
    finish(model, ct, opts, grid, blended, &mut rep, timings)
}

/// A bundle: every part in order on the same CT, their labels merged (a later part's structure
/// overwrites an earlier part's where both claim a voxel), confidence and uncertainty taken from the part that owns the
/// structure, timings and tile counts summed.
fn predict_bundle(model: &Model, ct: HuRef<'_>, opts: &InferOptions<'_>) -> Result<Prediction> {
    let n = model.parts.len();
    let classes = model.manifest.num_classes();
    let mut labels = vec![0u8; ct.geometry().voxel_count()];
    let mut confidence = vec![None; classes];
    let mut uncertainty = vec![None; classes];
    let mut timings = Timings::default();
    let (mut tiles, mut evaluations) = (0, 0);
    let mut grid = None;
    for (i, part) in model.parts.iter().enumerate() {
        let scaled = |p: Progress<'_>| {
            if let Some(f) = opts.progress {
                f(Progress {
                    stage: p.stage,
                    fraction: (i as f64 + p.fraction) / n as f64,
                });
            }
        };
        let popts = InferOptions {
            memory_limit_bytes: opts.memory_limit_bytes,
            batch: opts.batch,
            progress: Some(&scaled),
            cancel: opts.cancel.clone(),
            keep_probabilities: false,
            disable_mirroring: opts.disable_mirroring,
        };
        let p = predict(&part.model, ct, &popts)?;
        for (dst, &src) in labels.iter_mut().zip(p.labels.data()) {
            let mapped = part.remap.get(src as usize).copied().unwrap_or(0);
            if mapped != 0 {
                *dst = mapped;
            }
        }
        for (pl, &bl) in part.remap.iter().enumerate() {
            if bl != 0 {
                let b = bl as usize;
                if let (Some(c), Some(u)) = (confidence.get_mut(b), uncertainty.get_mut(b)) {
                    *c = p.confidence.get(pl).copied().flatten();
                    *u = p.uncertainty.get(pl).cloned().flatten();
                }
            }
        }
        let t = &p.timings;
        timings.preprocess_s += t.preprocess_s;
        timings.inference_s += t.inference_s;
        timings.ort_run_s += t.ort_run_s;
        timings.resample_s += t.resample_s;
        tiles += p.tiles;
        evaluations += p.evaluations;
        grid.get_or_insert(p.grid);
    }
    let grid = grid.ok_or_else(|| Error::InvalidArgument("a bundle without parts".into()))?;
    Ok(Prediction {
        labels: Volume::new(*ct.geometry(), labels)?,
        confidence,
        uncertainty,
        grid,
        probabilities: None,
        tiles,
        evaluations,
        timings,
    })
}

/// The model-grid image and where it sits in its padded box.
struct ModelInput {
    /// The model grid.
    grid: ModelGrid,
    /// Sizes and offset of the padding.
    pad: Padding,
    /// The normalised image on the padded grid, `[z][y][x]`.
    image: Vec<f32>,
}

/// The model grid (`size`, `[z, y, x]`) inside its box padded up to the patch size.
#[derive(Clone, Copy)]
struct Padding {
    /// The model grid.
    size: [usize; 3],
    /// The padded box: at least the patch on every axis.
    padded: [usize; 3],
    /// Where the grid starts in the box.
    lo: [usize; 3],
}

impl Padding {
    /// Voxels of the padded box.
    fn voxels(&self) -> usize {
        self.padded[0] * self.padded[1] * self.padded[2]
    }

    /// True when the box is the grid itself.
    fn none(&self) -> bool {
        self.padded == self.size
    }

    /// Offset in the box of the start of grid row (`z`, `y`).
    fn row_start(&self, z: usize, y: usize) -> usize {
        ((z + self.lo[0]) * self.padded[1] + y + self.lo[1]) * self.padded[2] + self.lo[2]
    }
}

/// Stage 1: the model grid, its memory check (accumulators for every class plus the image and
/// the weights), the CT resampled and normalised onto it, and the padding up to the patch size.
fn prepare(
    model: &Model,
    ct: HuRef<'_>,
    opts: &InferOptions<'_>,
    timings: &mut Timings,
) -> Result<ModelInput> {
    let m = &model.manifest;
    let classes = m.num_classes();
    let t0 = Instant::now();
    let grid = ModelGrid::new(ct.geometry(), m.orientation, m.spacing_mm)?;
    let [sz, sy, sx] = grid.zyx();
    let patch = m.patch_size;
    let padded = [sz.max(patch[0]), sy.max(patch[1]), sx.max(patch[2])];
    let pad = Padding {
        size: [sz, sy, sx],
        padded,
        lo: [
            (padded[0] - sz) / 2,
            (padded[1] - sy) / 2,
            (padded[2] - sx) / 2,
        ],
    };
    let pvox = pad.voxels();
    let acc_bytes = (classes as u64 + 2) * pvox as u64 * 4;
    if acc_bytes > opts.memory_limit_bytes {
        return Err(Error::MemoryLimit {
            what: format!(
                "score accumulators for {classes} classes on a {}×{}×{} model grid",
                padded[2], padded[1], padded[0]
            ),
            needed_bytes: acc_bytes,
            limit_bytes: opts.memory_limit_bytes,
        });
    }
    let image = grid::resample_to_model(ct, &grid, &m.normalization)?;
    timings.model_grid_s = t0.elapsed().as_secs_f64();
    let tp = Instant::now();
    let image = if pad.none() {
        image
    } else {
        let mut out = vec![0f32; pvox];
        for z in 0..sz {
            for y in 0..sy {
                let src = (z * sy + y) * sx;
                let dst = pad.row_start(z, y);
                if let (Some(d), Some(s)) = (out.get_mut(dst..dst + sx), image.get(src..src + sx)) {
                    d.copy_from_slice(s);
                }
            }
        }
        out
    };
    timings.pad_s = tp.elapsed().as_secs_f64();
    timings.preprocess_s = t0.elapsed().as_secs_f64();
    Ok(ModelInput { grid, pad, image })
}

/// The outcome of stage 2.
struct Blended {
    /// Where the model grid sits in the padded box.
    pad: Padding,
    /// Weighted class scores, `[class][padded box]`.
    acc: Vec<f32>,
    /// The weight sum over all tiles, `[padded box]`.
    wsum: Vec<f32>,
    /// Number of tiles.
    tiles: usize,
    /// Network evaluations (tiles × mirror combinations).
    evaluations: usize,
}

/// Most network evaluations (tiles × mirror combinations) one prediction may run: a CT and a
/// tile step that need more are refused before any work (a tiny `tile_step` would otherwise
/// run for hours).
pub const MAX_NETWORK_EVALUATIONS: usize = 1_000_000;

/// Refuses a tiling of `per_axis` tiles per axis with `mirrors` evaluations per tile above
/// [`MAX_NETWORK_EVALUATIONS`].
pub(crate) fn check_evaluations(
    per_axis: impl Iterator<Item = usize>,
    mirrors: usize,
) -> Result<()> {
    let total = per_axis
        .chain(std::iter::once(mirrors.max(1)))
        .try_fold(1usize, |a, n| a.checked_mul(n))
        .unwrap_or(usize::MAX);
    if total > MAX_NETWORK_EVALUATIONS {
        return Err(Error::InvalidArgument(format!(
            "the tiling needs {total} network evaluations (at most {MAX_NETWORK_EVALUATIONS}): the model's tile step is too small for this CT"
        )));
    }
    Ok(())
}

/// Tile positions and blending weights on the padded box.
struct Tiling {
    /// Start `[z, y, x]` of every tile, in run order.
    tiles: Vec<[usize; 3]>,
    geom: TileGeom,
    /// The shared Gaussian map (`None`: centre-crop weights per tile).
    gauss: Option<Vec<f32>>,
    /// Tile step per axis, voxels.
    strides: [usize; 3],
}

impl Tiling {
    /// nnU-Net's tile positions over `padded` for the manifest's patch and step; refused when
    /// the network would run more than [`MAX_NETWORK_EVALUATIONS`] times.
    fn new(m: &crate::model::Manifest, padded: [usize; 3], mirrors: usize) -> Result<Self> {
        let patch = m.patch_size;
        let starts: Vec<Vec<usize>> = (0..3)
            .map(|a| tiling::tile_starts(padded[a], patch[a], m.tile_step))
            .collect::<Result<_>>()?;
        check_evaluations(starts.iter().map(Vec::len), mirrors)?;
        let mut tiles = Vec::new();
        for &z in &starts[0] {
            for &y in &starts[1] {
                for &x in &starts[2] {
                    tiles.push([z, y, x]);
                }
            }
        }
        let gauss = match m.blending {
            Blending::Gaussian => Some(tiling::gaussian_map(patch)),
            Blending::CenterCrop => None,
        };
        let strides =
            [0, 1, 2].map(|a| ((patch[a] as f64 * m.tile_step).round_ties_even() as usize).max(1));
        Ok(Tiling {
            tiles,
            geom: TileGeom { patch, padded },
            gauss,
            strides,
        })
    }

    /// The weights of the tile at `t` (see [`tile_weights`]).
    fn weights<'a>(&'a self, buf: &'a mut Vec<f32>, t: [usize; 3]) -> &'a [f32] {
        tile_weights(buf, self.gauss.as_deref(), t, self.geom, self.strides)
    }

    /// The weight sum over the padded box: it depends on the tile positions only, so all
    /// tiles, in order, up front.
    fn weight_sum(&self) -> Vec<f32> {
        let geom = self.geom;
        let px = geom.patch[2];
        let mut wsum = zeros_written(geom.padded[0] * geom.padded[1] * geom.padded[2]);
        let mut wbuf = Vec::new();
        for &t in &self.tiles {
            let w = self.weights(&mut wbuf, t);
            geom.rows(t, |gi, pi| {
                if let (Some(d), Some(s)) = (wsum.get_mut(gi..gi + px), w.get(pi..pi + px)) {
                    d.iter_mut().zip(s).for_each(|(d, &s)| *d += s);
                }
            });
        }
        wsum
    }
}

/// Stage 2: the weight sum, then every batch of tiles of `image` (the padded model-grid image)
/// through the model (each mirror combination), blended into the accumulators. The run options
/// that let [`CancelToken`] stop a running call are registered with the token for the duration
/// of the loop. The image and the loop's buffers are freed before it returns.
fn run_tiles(
    model: &Model,
    image: Vec<f32>,
    pad: Padding,
    opts: &InferOptions<'_>,
    rep: &mut Reporter<'_>,
    timings: &mut Timings,
) -> Result<Blended> {
    let m = &model.manifest;
    let t1 = Instant::now();
    let mirrors = if opts.disable_mirroring {
        1
    } else {
        mirror_sets(&m.mirror_axes).len()
    };
    let tiling = Tiling::new(m, pad.padded, mirrors)?;
    let tw = Instant::now();
    let wsum = tiling.weight_sum();
    timings.weights_s = tw.elapsed().as_secs_f64();
    let run_options = Arc::new(
        ort::session::RunOptions::new().map_err(|e| Error::ort("creating run options", e))?,
    );
    if let Some(c) = &opts.cancel {
        c.set_current(Some(run_options.clone()));
    }
    let mut tl = TileLoop::new(model, &image, &tiling, &run_options, opts);
    let result = tl.run(rep, timings);
    if let Some(c) = &opts.cancel {
        c.set_current(None);
    }
    let evaluations = result?;
    let acc = tl.into_scores();
    drop(image);
    timings.inference_s = t1.elapsed().as_secs_f64();
    Ok(Blended {
        pad,
        acc,
        wsum,
        tiles: tiling.tiles.len(),
        evaluations,
    })
}

/// The tile loop: what it reads, the accumulators it fills, and the buffers every batch reuses
/// (the gathered tiles, their mirrored copy, the f16 copy the graph reads, the mirrored outputs'
/// sum). ONNX Runtime reads the inputs in place and its output is read in place too, so nothing
/// else is copied.
struct TileLoop<'a> {
    model: &'a Model,
    image: &'a [f32],
    tiling: &'a Tiling,
    run_options: &'a ort::session::RunOptions,
    cancel: &'a Option<CancelToken>,
    classes: usize,
    /// Tiles per ONNX Runtime call.
    batch: usize,
    /// Mirror combinations, the identity first.
    mirrors: Vec<Vec<usize>>,
    /// One f32 evaluation per tile: outputs are blended straight from ONNX Runtime's buffer.
    direct: bool,
    /// Weighted class scores, `[class][padded box]`.
    acc: Vec<f32>,
    input: Vec<f32>,
    mirrored: Vec<f32>,
    input_f16: Vec<half::f16>,
    sum: Vec<f32>,
    /// Centre-crop weights of the current tile.
    wbuf: Vec<f32>,
}

impl<'a> TileLoop<'a> {
    fn new(
        model: &'a Model,
        image: &'a [f32],
        tiling: &'a Tiling,
        run_options: &'a ort::session::RunOptions,
        opts: &'a InferOptions<'_>,
    ) -> Self {
        let m = &model.manifest;
        let classes = m.num_classes();
        let g = tiling.geom;
        let pv = g.patch[0] * g.patch[1] * g.patch[2];
        let mirrors = if opts.disable_mirroring {
            mirror_sets(&[])
        } else {
            mirror_sets(&m.mirror_axes)
        };
        let batch = if opts.batch > 0 {
            opts.batch.min(model.max_batch)
        } else {
            model.max_batch.min(4)
        }
        .max(1);
        let direct = mirrors.len() == 1 && m.onnx.dtype == DType::Float32;
        TileLoop {
            model,
            image,
            tiling,
            run_options,
            cancel: &opts.cancel,
            classes,
            batch,
            acc: zeros_written(classes * g.padded[0] * g.padded[1] * g.padded[2]),
            input: vec![0f32; batch * pv],
            mirrored: if mirrors.len() > 1 {
                vec![0f32; batch * pv]
            } else {
                Vec::new()
            },
            input_f16: match m.onnx.dtype {
                DType::Float16 => vec![half::f16::ZERO; batch * pv],
                DType::Float32 => Vec::new(),
            },
            sum: if direct {
                Vec::new()
            } else {
                vec![0f32; batch * classes * pv]
            },
            mirrors,
            direct,
            wbuf: Vec::new(),
        }
    }

    /// The accumulated scores (the buffers are dropped).
    fn into_scores(self) -> Vec<f32> {
        self.acc
    }

    /// Runs every batch; returns the number of network evaluations.
    fn run(&mut self, rep: &mut Reporter<'_>, timings: &mut Timings) -> Result<usize> {
        let model = self.model;
        let tiling = self.tiling;
        let mut evaluations = 0usize;
        let total = tiling.tiles.len().max(1) * self.mirrors.len();
        let mut session = model.fold_session(0)?;
        for (chunk_no, chunk) in tiling.tiles.chunks(self.batch).enumerate() {
            let first_tile = chunk_no * self.batch;
            self.gather(chunk, timings);
            for mi in 0..self.mirrors.len() {
                check_cancel(self.cancel)?;
                self.evaluate(&mut session, chunk, first_tile, mi, timings)?;
                evaluations += chunk.len();
                rep.report("inference", 0.05 + 0.85 * evaluations as f64 / total as f64);
            }
            if !self.direct {
                self.blend_sum(chunk, timings);
            }
        }
        Ok(evaluations)
    }

    /// Copies the tiles of `chunk` out of the image into the input buffer.
    fn gather(&mut self, chunk: &[[usize; 3]], timings: &mut Timings) {
        let tt = Instant::now();
        let g = self.tiling.geom;
        let (pv, px) = (g.patch[0] * g.patch[1] * g.patch[2], g.patch[2]);
        let image = self.image;
        for (b, &t) in chunk.iter().enumerate() {
            let Some(blk) = self.input.get_mut(b * pv..(b + 1) * pv) else {
                continue;
            };
            g.rows(t, |gi, pi| {
                if let (Some(d), Some(s)) = (blk.get_mut(pi..pi + px), image.get(gi..gi + px)) {
                    d.copy_from_slice(s);
                }
            });
        }
        timings.tile_gather_s += tt.elapsed().as_secs_f64();
    }

    /// One network evaluation of the batch `chunk` under mirror combination `mi`: the input
    /// ([`input_tensor`](Self::input_tensor)), the run, then the output
    /// ([`accumulate`](Self::accumulate)).
    fn evaluate(
        &mut self,
        session: &mut ort::session::Session,
        chunk: &[[usize; 3]],
        first_tile: usize,
        mi: usize,
        timings: &mut Timings,
    ) -> Result<()> {
        let (model, run_options) = (self.model, self.run_options);
        let onnx = &model.manifest.onnx;
        let tensor = self.input_tensor(chunk.len(), mi, first_tile, timings)?;
        let tr = Instant::now();
        // A run stopped by `CancelToken::cancel` (ONNX Runtime's run termination) fails; the
        // token, not the error's text, says that it was a cancellation.
        let outputs =
            session.run_with_options(ort::inputs![onnx.input.as_str() => tensor], run_options);
        timings.ort_run_s += tr.elapsed().as_secs_f64();
        check_cancel(self.cancel)?;
        let outputs = outputs.map_err(|e| ort_failure(first_tile, e))?;
        let value = outputs.get(onnx.output.as_str()).ok_or_else(|| {
            inference_failure(first_tile, format!("no output named {:?}", onnx.output))
        })?;
        self.accumulate(value, chunk, first_tile, mi, timings)
    }

    /// The batch's input (`n` tiles) as the graph reads it: the gathered tiles, mirrored along
    /// the axes of mirror combination `mi` when it has any, converted to `f16` for an `f16`
    /// graph. The tensor views the loop's buffers; nothing is allocated.
    fn input_tensor(
        &mut self,
        n: usize,
        mi: usize,
        first_tile: usize,
        timings: &mut Timings,
    ) -> Result<ort::session::SessionInputValue<'_>> {
        let patch = self.tiling.geom.patch;
        let pv = patch[0] * patch[1] * patch[2];
        let axes: &[usize] = self.mirrors.get(mi).map_or(&[], |a| a.as_slice());
        let buffer = || inference_failure(first_tile, "tile buffer".into());
        let tt = Instant::now();
        let x: &[f32] = if axes.is_empty() {
            self.input.get(..n * pv).unwrap_or(&[])
        } else {
            let (Some(d), Some(s)) = (self.mirrored.get_mut(..n * pv), self.input.get(..n * pv))
            else {
                return Err(buffer());
            };
            mirror_copy(d, s, patch, axes);
            d
        };
        timings.tile_gather_s += tt.elapsed().as_secs_f64();
        let shape = [n, 1, patch[0], patch[1], patch[2]];
        let tc = Instant::now();
        Ok(match self.model.manifest.onnx.dtype {
            DType::Float32 => ort::value::TensorRef::from_array_view((shape, x))
                .map_err(|e| ort_failure(first_tile, e))?
                .into(),
            DType::Float16 => {
                let h = self.input_f16.get_mut(..n * pv).ok_or_else(buffer)?;
                h.convert_from_f32_slice(x);
                timings.convert_s += tc.elapsed().as_secs_f64();
                ort::value::TensorRef::from_array_view((shape, &*h))
                    .map_err(|e| ort_failure(first_tile, e))?
                    .into()
            }
        })
    }

    /// Checks the output of the batch `chunk` under mirror combination `mi` (shape `[n, classes,
    /// patch]`, every value finite), then blends it straight into the accumulators (`direct`)
    /// or adds it, mirrored back, to the batch's sum (overwriting it for the first
    /// combination).
    fn accumulate(
        &mut self,
        value: &ort::value::DynValue,
        chunk: &[[usize; 3]],
        first_tile: usize,
        mi: usize,
        timings: &mut Timings,
    ) -> Result<()> {
        let TileLoop {
            model,
            tiling,
            classes,
            direct,
            mirrors,
            acc,
            sum,
            wbuf,
            ..
        } = self;
        let (classes, direct) = (*classes, *direct);
        let patch = tiling.geom.patch;
        let pv = patch[0] * patch[1] * patch[2];
        let axes: &[usize] = mirrors.get(mi).map_or(&[], |a| a.as_slice());
        let want = [chunk.len(), classes, patch[0], patch[1], patch[2]];
        let check_dims = |dims: &[i64]| {
            if dims.len() != 5 || dims.iter().zip(want.iter()).any(|(&a, &b)| a != b as i64) {
                Err(inference_failure(
                    first_tile,
                    format!(
                        "output shape {dims:?}, expected {want:?} (the model must keep the patch size)"
                    ),
                ))
            } else {
                Ok(())
            }
        };
        let tc = Instant::now();
        let first = mi == 0;
        let bad = match model.manifest.onnx.dtype {
            DType::Float32 => {
                let (s, d) = value
                    .try_extract_tensor::<f32>()
                    .map_err(|e| ort_failure(first_tile, e))?;
                check_dims(s)?;
                let bad = d.iter().filter(|v| !v.is_finite()).count();
                if bad == 0 {
                    if direct {
                        timings.convert_s += tc.elapsed().as_secs_f64();
                        let tb = Instant::now();
                        for (b, &t) in chunk.iter().enumerate() {
                            let src = d
                                .get(b * classes * pv..(b + 1) * classes * pv)
                                .unwrap_or(&[]);
                            let w = tiling.weights(wbuf, t);
                            blend_tile(acc, src, w, 1.0, t, tiling.geom);
                        }
                        timings.blend_s += tb.elapsed().as_secs_f64();
                    } else {
                        mirror_add(sum, d, patch, axes, first);
                        timings.convert_s += tc.elapsed().as_secs_f64();
                    }
                }
                bad
            }
            DType::Float16 => {
                let (s, d) = value
                    .try_extract_tensor::<half::f16>()
                    .map_err(|e| ort_failure(first_tile, e))?;
                check_dims(s)?;
                let bad = d.iter().filter(|v| !v.is_finite()).count();
                if bad == 0 {
                    mirror_add(sum, d, patch, axes, first);
                }
                timings.convert_s += tc.elapsed().as_secs_f64();
                bad
            }
        };
        if bad > 0 {
            return Err(Error::NonFiniteOutput {
                tile: first_tile,
                count: bad,
            });
        }
        Ok(())
    }

    /// Blends the batch's summed (mirrored) outputs into the accumulators, each scaled by one
    /// over the number of mirror combinations.
    fn blend_sum(&mut self, chunk: &[[usize; 3]], timings: &mut Timings) {
        let tb = Instant::now();
        let tiling = self.tiling;
        let g = tiling.geom;
        let pv = g.patch[0] * g.patch[1] * g.patch[2];
        let classes = self.classes;
        let scale = 1.0 / self.mirrors.len() as f32;
        for (b, &t) in chunk.iter().enumerate() {
            let src = self
                .sum
                .get(b * classes * pv..(b + 1) * classes * pv)
                .unwrap_or(&[]);
            let w = tiling.weights(&mut self.wbuf, t);
            blend_tile(&mut self.acc, src, w, scale, t, g);
        }
        timings.blend_s += tb.elapsed().as_secs_f64();
    }
}

/// `n` zeros for an accumulator that is added to (`+=`), written once in parallel. A fresh
/// large allocation is mapped lazily: read first, each page would map the shared zero page and
/// then take a second, copy-on-write fault (and a TLB flush on every core) at its first write;
/// written first, it takes one fault, shared by the threads.
fn zeros_written(n: usize) -> Vec<f32> {
    let mut v = vec![0f32; n];
    v.par_chunks_mut(1 << 16).for_each(|c| c.fill(0.0));
    v
}

/// An [`Error::Inference`] at the batch starting with tile `tile`, for a problem found by the
/// engine.
fn inference_failure(tile: usize, reason: String) -> Error {
    Error::Inference {
        tile,
        reason,
        source: None,
    }
}

/// An [`Error::Inference`] at the batch starting with tile `tile` for an ONNX Runtime error,
/// kept as the source.
pub(crate) fn ort_failure(tile: usize, e: ort::Error) -> Error {
    Error::Inference {
        tile,
        reason: e.to_string(),
        source: cause(e),
    }
}

/// Stage 3: scores normalised by the weight sum with the padding cropped away (in place when
/// there is none), argmax and confidence on the model grid, labels back on the CT grid (from
/// the scores or the model-grid labels, as the manifest says), the probabilities when asked
/// for, and the prediction with its timings.
fn finish(
    model: &Model,
    ct: HuRef<'_>,
    opts: &InferOptions<'_>,
    grid: ModelGrid,
    blended: Blended,
    rep: &mut Reporter<'_>,
    mut timings: Timings,
) -> Result<Prediction> {
    let m = &model.manifest;
    let classes = m.num_classes();
    let Blended {
        pad,
        acc,
        wsum,
        tiles,
        evaluations,
    } = blended;
    let t2 = Instant::now();
    let [sz, sy, sx] = pad.size;
    let vox = sz * sy * sx;
    let scores = normalize_scores(acc, &wsum, classes, pad);
    drop(wsum);
    timings.normalize_s = t2.elapsed().as_secs_f64();
    let tc = Instant::now();
    let (model_labels, confidence) = argmax_and_confidence(&scores, classes, vox, m.output_kind);
    let uncertainty = uncertainty::class_uncertainty(
        &scores,
        classes,
        [sz, sy, sx],
        &model_labels,
        m.output_kind,
    );
    timings.confidence_s = tc.elapsed().as_secs_f64();
    rep.report("resample", 0.92);
    let tb = Instant::now();
    let labels = match m.resample_output {
        ResampleOutput::LogitsLinear => {
            grid::scores_to_ct_labels(&scores, classes, &grid, ct.geometry())?
        }
        ResampleOutput::ArgmaxNearest => {
            grid::labels_to_ct_nearest(&model_labels, &grid, ct.geometry())?
        }
    };
    timings.back_resample_s = tb.elapsed().as_secs_f64();
    let tq = Instant::now();
    let probabilities = opts
        .keep_probabilities
        .then(|| to_probabilities(&scores, classes, vox, m.output_kind));
    timings.probabilities_s = tq.elapsed().as_secs_f64();
    timings.resample_s = t2.elapsed().as_secs_f64();
    rep.report("resample", 1.0);
    Ok(Prediction {
        labels: Volume::new(*ct.geometry(), labels)?,
        confidence,
        uncertainty,
        grid,
        probabilities,
        tiles,
        evaluations,
        timings,
    })
}

/// `acc / wsum` per voxel (0 where no tile weighs), `[class][model grid]`: in place when there
/// is no padding (the accumulators become the scores), else cropped into a new buffer.
fn normalize_scores(mut acc: Vec<f32>, wsum: &[f32], classes: usize, pad: Padding) -> Vec<f32> {
    let [sz, sy, sx] = pad.size;
    if pad.none() {
        acc.par_chunks_mut(sx.max(1))
            .enumerate()
            .for_each(|(r, row)| {
                let o = (r % (sz * sy)) * sx;
                if let Some(w) = wsum.get(o..o + sx) {
                    for (v, &w) in row.iter_mut().zip(w) {
                        *v = if w > 0.0 { *v / w } else { 0.0 };
                    }
                }
            });
        return acc;
    }
    let pvox = pad.voxels();
    let mut scores = vec![0f32; classes * sz * sy * sx];
    scores
        .par_chunks_mut(sx.max(1))
        .enumerate()
        .for_each(|(r, row)| {
            let (c, z, y) = (r / (sz * sy), (r / sy) % sz, r % sy);
            let gi = pad.row_start(z, y);
            if let (Some(w), Some(a)) = (
                wsum.get(gi..gi + sx),
                acc.get(c * pvox + gi..c * pvox + gi + sx),
            ) {
                for ((s, &w), &v) in row.iter_mut().zip(w).zip(a) {
                    *s = if w > 0.0 { v / w } else { 0.0 };
                }
            }
        });
    scores
}

/// Softmax over classes (logits) or renormalisation (probabilities), `[class][voxel]`.
fn to_probabilities(scores: &[f32], classes: usize, vox: usize, kind: OutputKind) -> Vec<f32> {
    let mut out = vec![0f32; scores.len()];
    for v in 0..vox {
        let get = |c: usize| scores.get(c * vox + v).copied().unwrap_or(0.0) as f64;
        let vals: Vec<f64> = match kind {
            OutputKind::Logits => {
                let mx = (0..classes).map(get).fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = (0..classes).map(|c| (get(c) - mx).exp()).collect();
                let s: f64 = e.iter().sum();
                e.into_iter().map(|x| x / s).collect()
            }
            OutputKind::Probabilities => {
                let s: f64 = (0..classes).map(get).sum();
                (0..classes)
                    .map(|c| if s > 0.0 { get(c) / s } else { 0.0 })
                    .collect()
            }
        };
        for (c, p) in vals.into_iter().enumerate() {
            if let Some(o) = out.get_mut(c * vox + v) {
                *o = p as f32;
            }
        }
    }
    out
}

/// Argmax per model voxel and, per class, the mean probability of that class where it wins.
/// Runs over fixed chunks in parallel and adds the chunks' sums in order, so the result does
/// not depend on the thread count.
pub(crate) fn argmax_and_confidence(
    scores: &[f32],
    classes: usize,
    vox: usize,
    kind: OutputKind,
) -> (Vec<u8>, Vec<Option<f64>>) {
    const CHUNK: usize = 8192;
    let mut labels = vec![0u8; vox];
    let parts: Vec<(Vec<f64>, Vec<usize>)> = labels
        .par_chunks_mut(CHUNK)
        .enumerate()
        .map(|(n, chunk)| {
            let mut sums = vec![0f64; classes];
            let mut counts = vec![0usize; classes];
            let mut p = vec![0f64; classes];
            for (l, v) in chunk.iter_mut().zip(n * CHUNK..) {
                let mut best = (f64::NEG_INFINITY, 0usize);
                for (c, pc) in p.iter_mut().enumerate() {
                    let s = scores.get(c * vox + v).copied().unwrap_or(0.0) as f64;
                    *pc = s;
                    if s > best.0 {
                        best = (s, c);
                    }
                }
                let prob = match kind {
                    OutputKind::Logits => {
                        let denom: f64 = p.iter().map(|s| (s - best.0).exp()).sum();
                        1.0 / denom
                    }
                    OutputKind::Probabilities => {
                        let total: f64 = p.iter().sum();
                        if total > 0.0 { best.0 / total } else { 0.0 }
                    }
                };
                *l = best.1 as u8;
                if let (Some(s), Some(n)) = (sums.get_mut(best.1), counts.get_mut(best.1)) {
                    *s += prob;
                    *n += 1;
                }
            }
            (sums, counts)
        })
        .collect();
    let mut sums = vec![0f64; classes];
    let mut counts = vec![0usize; classes];
    for (s, c) in parts {
        sums.iter_mut().zip(s).for_each(|(a, b)| *a += b);
        counts.iter_mut().zip(c).for_each(|(a, b)| *a += b);
    }
    let conf = sums
        .iter()
        .zip(&counts)
        .map(|(s, &n)| (n > 0).then(|| s / n as f64))
        .collect();
    (labels, conf)
}

/// Geometry of the model grid for a CT, without running anything (for callers that plan
/// memory or show what the model will see).
pub fn model_grid(model: &Model, ct: &Geometry) -> Result<ModelGrid> {
    ModelGrid::new(ct, model.manifest.orientation, model.manifest.spacing_mm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_sets_are_all_subsets() {
        assert_eq!(mirror_sets(&[]), vec![Vec::<usize>::new()]);
        let s = mirror_sets(&[2, 0]);
        assert_eq!(s.len(), 4);
        assert!(s.contains(&vec![0, 2]));
    }

    /// Reference: element (z, y, x) of the mirrored block is element (z', y', x') of the
    /// original, with the axes in `axes` reversed.
    fn naive_mirror(src: &[f32], p: [usize; 3], axes: &[usize]) -> Vec<f32> {
        let pv = p[0] * p[1] * p[2];
        let mut out = vec![0.0; src.len()];
        for (i, o) in out.iter_mut().enumerate() {
            let (blk, r) = (i / pv, i % pv);
            let (z, y, x) = (r / (p[1] * p[2]), (r / p[2]) % p[1], r % p[2]);
            let z = if axes.contains(&0) { p[0] - 1 - z } else { z };
            let y = if axes.contains(&1) { p[1] - 1 - y } else { y };
            let x = if axes.contains(&2) { p[2] - 1 - x } else { x };
            *o = src[blk * pv + (z * p[1] + y) * p[2] + x];
        }
        out
    }

    #[test]
    fn mirrored_copies_and_sums_match_a_direct_flip() {
        let p = [3, 4, 5];
        let orig: Vec<f32> = (0..2 * 60).map(|v| v as f32).collect();
        for axes in mirror_sets(&[0, 1, 2]) {
            let want = naive_mirror(&orig, p, &axes);
            let mut got = vec![0.0; orig.len()];
            mirror_copy(&mut got, &orig, p, &axes);
            assert_eq!(got, want, "{axes:?}");
            let mut sum = vec![0.0; orig.len()];
            mirror_add(&mut sum, &orig, p, &axes, true);
            assert_eq!(sum, want, "{axes:?}");
            mirror_add(&mut sum, &orig, p, &axes, false);
            let twice: Vec<f32> = want.iter().map(|v| 2.0 * v).collect();
            assert_eq!(sum, twice, "{axes:?}");
        }
        // an x flip moves (0,0,0) to (0,0,4)
        let mut c = vec![0.0; orig.len()];
        mirror_copy(&mut c, &orig, p, &[2]);
        assert_eq!(c[4], 0.0);
        assert_eq!(c[0], 4.0);
    }

    #[test]
    fn confidence_of_logits() {
        // two voxels, two classes: logits (0, ln 3) -> p = 0.75 for class 1
        let s = [0.0, 2.0, (3f32).ln(), 0.0];
        let (l, c) = argmax_and_confidence(&s, 2, 2, OutputKind::Logits);
        assert_eq!(l, vec![1, 0]);
        assert!((c[1].unwrap() - 0.75).abs() < 1e-6);
        assert!(c[0].unwrap() > 0.88);
    }
}
