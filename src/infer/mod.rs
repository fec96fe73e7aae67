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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::{Blending, DType, Model, OutputKind, ResampleOutput};
use crate::volume::{Geometry, Volume};

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
    /// Keep the per-class probabilities on the model grid in [`Prediction::probabilities`].
    pub keep_probabilities: bool,
}

impl Default for InferOptions<'_> {
    fn default() -> Self {
        InferOptions {
            memory_limit_bytes: 8 << 30,
            batch: 0,
            progress: None,
            cancel: None,
            keep_probabilities: false,
        }
    }
}

/// Seconds spent per stage.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    /// Reorientation, resampling and normalisation.
    pub preprocess_s: f64,
    /// The tile loop, ONNX Runtime included.
    pub inference_s: f64,
    /// Inside ONNX Runtime's `Run` only.
    pub ort_run_s: f64,
    /// Scores back to the CT grid and argmax.
    pub resample_s: f64,
}

/// The outcome of inference on one CT.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// Label map on the CT grid (0 = background, n = manifest label n).
    pub labels: Volume<u8>,
    /// Per label: mean model probability of that label over the model-grid voxels assigned to
    /// it (`None` when none were).
    pub confidence: Vec<Option<f64>>,
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

fn check_cancel(c: &Option<CancelToken>) -> Result<()> {
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

/// Flips a `[channels][z][y][x]` block in place along the given axes (0 = z, 1 = y, 2 = x).
fn flip(block: &mut [f32], channels: usize, p: [usize; 3], axes: &[usize]) {
    let [pz, py, px] = p;
    let vol = pz * py * px;
    for c in 0..channels {
        let Some(b) = block.get_mut(c * vol..(c + 1) * vol) else {
            return;
        };
        for &a in axes {
            match a {
                0 => {
                    for z in 0..pz / 2 {
                        for yx in 0..py * px {
                            b.swap(z * py * px + yx, (pz - 1 - z) * py * px + yx);
                        }
                    }
                }
                1 => {
                    for z in 0..pz {
                        for y in 0..py / 2 {
                            for x in 0..px {
                                b.swap((z * py + y) * px + x, (z * py + (py - 1 - y)) * px + x);
                            }
                        }
                    }
                }
                _ => {
                    for row in b.chunks_mut(px.max(1)) {
                        row.reverse();
                    }
                }
            }
        }
    }
}

/// Runs `model` on a CT volume (HU) and returns the label map on the CT grid.
pub fn predict(model: &Model, ct: &Volume<f32>, opts: &InferOptions<'_>) -> Result<Prediction> {
    let m = &model.manifest;
    let classes = m.num_classes();
    let mut rep = Reporter {
        f: opts.progress,
        last: 0.0,
    };
    let mut timings = Timings::default();
    rep.report("preprocess", 0.0);
    check_cancel(&opts.cancel)?;

    // 1. model grid, resample + normalise
    let t0 = Instant::now();
    let grid = ModelGrid::new(ct.geometry(), m.orientation, m.spacing_mm)?;
    let [sz, sy, sx] = grid.zyx();
    let patch = m.patch_size;
    let padded = [sz.max(patch[0]), sy.max(patch[1]), sx.max(patch[2])];
    let pad_lo = [
        (padded[0] - sz) / 2,
        (padded[1] - sy) / 2,
        (padded[2] - sx) / 2,
    ];
    let pvox = padded[0] * padded[1] * padded[2];
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
    let image = grid::resample_to_model(ct, &grid, &m.normalization);
    let image = if padded == [sz, sy, sx] {
        image
    } else {
        let mut out = vec![0f32; pvox];
        for z in 0..sz {
            for y in 0..sy {
                let src = (z * sy + y) * sx;
                let dst = ((z + pad_lo[0]) * padded[1] + y + pad_lo[1]) * padded[2] + pad_lo[2];
                if let (Some(d), Some(s)) = (out.get_mut(dst..dst + sx), image.get(src..src + sx)) {
                    d.copy_from_slice(s);
                }
            }
        }
        out
    };
    timings.preprocess_s = t0.elapsed().as_secs_f64();
    rep.report("preprocess", 0.05);
    check_cancel(&opts.cancel)?;

    // 2. tiles
    let t1 = Instant::now();
    let starts: Vec<Vec<usize>> = (0..3)
        .map(|a| tiling::tile_starts(padded[a], patch[a], m.tile_step))
        .collect();
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
    let strides: Vec<usize> = (0..3)
        .map(|a| ((patch[a] as f64 * m.tile_step).round_ties_even() as usize).max(1))
        .collect();
    let pv = patch[0] * patch[1] * patch[2];
    let mut acc = vec![0f32; classes * pvox];
    let mut wsum = vec![0f32; pvox];
    let mirrors = mirror_sets(&m.mirror_axes);
    let batch = if opts.batch > 0 {
        opts.batch.min(model.max_batch)
    } else {
        model.max_batch.min(4)
    }
    .max(1);
    let run_options = Arc::new(
        ort::session::RunOptions::new()
            .map_err(|e| Error::Ort(format!("creating run options: {e}")))?,
    );
    if let Some(c) = &opts.cancel {
        c.set_current(Some(run_options.clone()));
    }
    let result = (|| -> Result<usize> {
        let mut evaluations = 0usize;
        let total = tiles.len().max(1) * mirrors.len();
        let mut done = 0usize;
        let mut session = model.session.lock().unwrap_or_else(|p| p.into_inner());
        for (chunk_no, chunk) in tiles.chunks(batch).enumerate() {
            // gather input tiles
            let mut input = vec![0f32; chunk.len() * pv];
            for (b, t) in chunk.iter().enumerate() {
                for z in 0..patch[0] {
                    for y in 0..patch[1] {
                        let src = ((t[0] + z) * padded[1] + t[1] + y) * padded[2] + t[2];
                        let dst = b * pv + (z * patch[1] + y) * patch[2];
                        if let (Some(d), Some(s)) = (
                            input.get_mut(dst..dst + patch[2]),
                            image.get(src..src + patch[2]),
                        ) {
                            d.copy_from_slice(s);
                        }
                    }
                }
            }
            let mut sum = vec![0f32; chunk.len() * classes * pv];
            for axes in &mirrors {
                check_cancel(&opts.cancel)?;
                let mut x = input.clone();
                if !axes.is_empty() {
                    for b in 0..chunk.len() {
                        if let Some(blk) = x.get_mut(b * pv..(b + 1) * pv) {
                            flip(blk, 1, patch, axes);
                        }
                    }
                }
                let tr = Instant::now();
                let mut out = run_tiles(
                    &mut session,
                    model,
                    &run_options,
                    x,
                    chunk.len(),
                    patch,
                    classes,
                    chunk_no * batch,
                )?;
                timings.ort_run_s += tr.elapsed().as_secs_f64();
                if opts.cancel.as_ref().is_some_and(|c| c.is_cancelled()) {
                    return Err(Error::Cancelled);
                }
                let bad = out.iter().filter(|v| !v.is_finite()).count();
                if bad > 0 {
                    return Err(Error::NonFiniteOutput {
                        tile: chunk_no * batch,
                        count: bad,
                    });
                }
                if !axes.is_empty() {
                    for b in 0..chunk.len() {
                        if let Some(blk) = out.get_mut(b * classes * pv..(b + 1) * classes * pv) {
                            flip(blk, classes, patch, axes);
                        }
                    }
                }
                for (s, o) in sum.iter_mut().zip(&out) {
                    *s += o;
                }
                evaluations += chunk.len();
                done += chunk.len();
                rep.report("inference", 0.05 + 0.85 * done as f64 / total as f64);
            }
            let scale = 1.0 / mirrors.len() as f32;
            // accumulate with weights
            for (b, t) in chunk.iter().enumerate() {
                let wz: Vec<f32>;
                let wy: Vec<f32>;
                let wx: Vec<f32>;
                let crop = gauss.is_none();
                if crop {
                    wz = tiling::center_crop_weights(t[0], patch[0], padded[0], strides[0]);
                    wy = tiling::center_crop_weights(t[1], patch[1], padded[1], strides[1]);
                    wx = tiling::center_crop_weights(t[2], patch[2], padded[2], strides[2]);
                } else {
                    wz = Vec::new();
                    wy = Vec::new();
                    wx = Vec::new();
                }
                for z in 0..patch[0] {
                    for y in 0..patch[1] {
                        for x in 0..patch[2] {
                            let pi = (z * patch[1] + y) * patch[2] + x;
                            let w = match &gauss {
                                Some(g) => g.get(pi).copied().unwrap_or(0.0),
                                None => {
                                    wz.get(z).copied().unwrap_or(0.0)
                                        * wy.get(y).copied().unwrap_or(0.0)
                                        * wx.get(x).copied().unwrap_or(0.0)
                                }
                            };
                            if w == 0.0 {
                                continue;
                            }
                            let gi = ((t[0] + z) * padded[1] + t[1] + y) * padded[2] + t[2] + x;
                            if let Some(ws) = wsum.get_mut(gi) {
                                *ws += w;
                            }
                            for c in 0..classes {
                                let v =
                                    sum.get((b * classes + c) * pv + pi).copied().unwrap_or(0.0);
                                if let Some(a) = acc.get_mut(c * pvox + gi) {
                                    *a += v * scale * w;
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(evaluations)
    })();
    if let Some(c) = &opts.cancel {
        c.set_current(None);
    }
    let evaluations = result?;
    timings.inference_s = t1.elapsed().as_secs_f64();
    check_cancel(&opts.cancel)?;

    // 3. normalise by weights, crop the padding away
    let t2 = Instant::now();
    let vox = sz * sy * sx;
    let mut scores = vec![0f32; classes * vox];
    for c in 0..classes {
        for z in 0..sz {
            for y in 0..sy {
                for x in 0..sx {
                    let gi =
                        ((z + pad_lo[0]) * padded[1] + y + pad_lo[1]) * padded[2] + x + pad_lo[2];
                    let w = wsum.get(gi).copied().unwrap_or(0.0);
                    let v = acc.get(c * pvox + gi).copied().unwrap_or(0.0);
                    if let Some(s) = scores.get_mut(c * vox + (z * sy + y) * sx + x) {
                        *s = if w > 0.0 { v / w } else { 0.0 };
                    }
                }
            }
        }
    }
    drop(acc);
    drop(wsum);
    let (model_labels, confidence) = argmax_and_confidence(&scores, classes, vox, m.output_kind);
    rep.report("resample", 0.92);
    let labels = match m.resample_output {
        ResampleOutput::LogitsLinear => {
            grid::scores_to_ct_labels(&scores, classes, &grid, ct.geometry())
        }
        ResampleOutput::ArgmaxNearest => {
            grid::labels_to_ct_nearest(&model_labels, &grid, ct.geometry())
        }
    };
    let probabilities = opts
        .keep_probabilities
        .then(|| to_probabilities(&scores, classes, vox, m.output_kind));
    timings.resample_s = t2.elapsed().as_secs_f64();
    rep.report("resample", 1.0);
    Ok(Prediction {
        labels: Volume::new(*ct.geometry(), labels)?,
        confidence,
        grid,
        probabilities,
        tiles: tiles.len(),
        evaluations,
        timings,
    })
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
fn argmax_and_confidence(
    scores: &[f32],
    classes: usize,
    vox: usize,
    kind: OutputKind,
) -> (Vec<u8>, Vec<Option<f64>>) {
    let mut labels = vec![0u8; vox];
    let mut sums = vec![0f64; classes];
    let mut counts = vec![0usize; classes];
    let mut p = vec![0f64; classes];
    for (v, l) in labels.iter_mut().enumerate() {
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
    let conf = sums
        .iter()
        .zip(&counts)
        .map(|(s, &n)| (n > 0).then(|| s / n as f64))
        .collect();
    (labels, conf)
}

#[allow(clippy::too_many_arguments)]
fn run_tiles(
    session: &mut ort::session::Session,
    model: &Model,
    run_options: &ort::session::RunOptions,
    x: Vec<f32>,
    n: usize,
    patch: [usize; 3],
    classes: usize,
    first_tile: usize,
) -> Result<Vec<f32>> {
    let m = &model.manifest;
    let shape = vec![n, 1, patch[0], patch[1], patch[2]];
    let fail = |reason: String| Error::Inference {
        tile: first_tile,
        reason,
    };
    let input: ort::value::DynValue = match m.onnx.dtype {
        DType::Float32 => ort::value::Tensor::from_array((shape, x))
            .map_err(|e| fail(e.to_string()))?
            .into_dyn(),
        DType::Float16 => {
            let h: Vec<half::f16> = x.into_iter().map(half::f16::from_f32).collect();
            ort::value::Tensor::from_array((shape, h))
                .map_err(|e| fail(e.to_string()))?
                .into_dyn()
        }
    };
    let outputs = session
        .run_with_options(ort::inputs![m.onnx.input.as_str() => input], run_options)
        .map_err(|e| {
            if run_options_cancelled(&e) {
                Error::Cancelled
            } else {
                fail(e.to_string())
            }
        })?;
    let value = outputs
        .get(m.onnx.output.as_str())
        .ok_or_else(|| fail(format!("no output named {:?}", m.onnx.output)))?;
    let want = [n, classes, patch[0], patch[1], patch[2]];
    let (data, dims): (Vec<f32>, Vec<i64>) = match m.onnx.dtype {
        DType::Float32 => {
            let (s, d) = value
                .try_extract_tensor::<f32>()
                .map_err(|e| fail(e.to_string()))?;
            (d.to_vec(), s.iter().copied().collect())
        }
        DType::Float16 => {
            let (s, d) = value
                .try_extract_tensor::<half::f16>()
                .map_err(|e| fail(e.to_string()))?;
            (
                d.iter().map(|v| v.to_f32()).collect(),
                s.iter().copied().collect(),
            )
        }
    };
    if dims.len() != 5 || dims.iter().zip(want.iter()).any(|(&a, &b)| a != b as i64) {
        return Err(fail(format!(
            "output shape {dims:?}, expected {want:?} (the model must keep the patch size)"
        )));
    }
    Ok(data)
}

fn run_options_cancelled(e: &ort::Error) -> bool {
    let s = e.to_string().to_ascii_lowercase();
    s.contains("terminat") || s.contains("cancel")
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

    #[test]
    fn flip_twice_is_identity() {
        let p = [3, 4, 5];
        let orig: Vec<f32> = (0..2 * 60).map(|v| v as f32).collect();
        let mut b = orig.clone();
        flip(&mut b, 2, p, &[0, 1, 2]);
        assert_ne!(b, orig);
        // x flip moves (0,0,0) to (0,0,4)
        let mut c = orig.clone();
        flip(&mut c, 2, p, &[2]);
        assert_eq!(c[0], 4.0);
        flip(&mut b, 2, p, &[0, 1, 2]);
        assert_eq!(b, orig);
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
