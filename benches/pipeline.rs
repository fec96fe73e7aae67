//! Criterion benches of the pipeline stages that are ours (not ONNX Runtime's) on a RIDER-sized
//! grid (512 × 512 × 236, 0.576 × 0.576 × 1.25 mm): resampling to a 4 mm model grid, bringing
//! 5-class scores back with per-class trilinear interpolation + argmax (noise: every model cell
//! a boundary; smooth: organ-like, most cells inside one structure), and postprocessing a
//! body-sized label (largest component + 2-D hole filling). Synthetic data keeps the bench free
//! of downloads; `benches/compare/infer_compare.py` measures the whole job on the real CT.

use criterion::{Criterion, criterion_group, criterion_main};

use autocontour::infer::grid::{ModelGrid, resample_to_model, scores_to_ct_labels};
use autocontour::model::{Normalization, Orientation, Spacing};
use autocontour::postprocess::{FillHoles, PostprocessOptions, postprocess_label};
use autocontour::volume::{Geometry, Volume};

fn geometry() -> Geometry {
    Geometry::new(
        [512, 512, 236],
        [-147.0, -155.0, -328.75],
        [0.576172, 0.576172, 1.25],
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
    )
    .unwrap()
}

fn body(g: &Geometry) -> Vec<u8> {
    let [ni, nj, nk] = g.size;
    let mut v = vec![0u8; ni * nj * nk];
    for k in 0..nk {
        for j in 0..nj {
            for i in 0..ni {
                let (x, y) = (i as f64 - 256.0, j as f64 - 256.0);
                let e = (x / 220.0).powi(2) + (y / 160.0).powi(2);
                let lung = ((x.abs() - 100.0) / 60.0).powi(2) + (y / 90.0).powi(2) < 1.0;
                v[(k * nj + j) * ni + i] = u8::from(e < 1.0 && !lung);
            }
        }
    }
    v
}

fn bench(c: &mut Criterion) {
    let g = geometry();
    let hu: Vec<f32> = body(&g)
        .iter()
        .map(|&b| if b == 1 { 40.0 } else { -1000.0 })
        .collect();
    let ct = Volume::new(g, hu).unwrap();
    let norm = Normalization::CtWindow {
        level: -300.0,
        width: 1600.0,
        range: [-1.0, 1.0],
    };
    let grid = ModelGrid::new(&g, Orientation::Lps, Spacing::Mm([4.0, 4.0, 4.0])).unwrap();
    let mut group = c.benchmark_group("rider_grid");
    group.sample_size(10);
    group.bench_function("resample_to_4mm_model_grid", |b| {
        b.iter(|| resample_to_model(&ct, &grid, &norm))
    });
    let classes = 5;
    let mvox = grid.geometry.voxel_count();
    let scores: Vec<f32> = (0..classes * mvox)
        .map(|n| ((n * 7919) % 1000) as f32 / 1000.0)
        .collect();
    group.bench_function("scores_back_to_ct_argmax_5_classes_noise", |b| {
        b.iter(|| scores_to_ct_labels(&scores, classes, &grid, &g))
    });
    // Organ-like scores: smooth fields with curved boundaries, so most model cells are inside
    // one structure (the case the engine meets; the noise above makes every cell a boundary).
    let [mz, my, mx] = grid.zyx();
    let mut smooth = vec![0f32; classes * mvox];
    for z in 0..mz {
        for y in 0..my {
            for x in 0..mx {
                let v = (z * my + y) * mx + x;
                let (fx, fy) = (x as f32 / mx as f32 - 0.5, y as f32 / my as f32 - 0.5);
                let body = 1.0 - 4.0 * (fx * fx + 2.0 * fy * fy);
                smooth[v] = -body;
                smooth[mvox + v] = body - 0.2;
                for c in 2..classes {
                    let cx = -0.3 + 0.2 * (c - 2) as f32;
                    let d = (fx - cx).powi(2) + fy.powi(2) + (z as f32 / mz as f32 - 0.5).powi(2);
                    smooth[c * mvox + v] = 0.5 - 20.0 * d;
                }
            }
        }
    }
    group.bench_function("scores_back_to_ct_argmax_5_classes_smooth", |b| {
        b.iter(|| scores_to_ct_labels(&smooth, classes, &grid, &g))
    });
    let labels = Volume::new(g, body(&g)).unwrap();
    group.bench_function("postprocess_body_largest_component_fill2d", |b| {
        b.iter_batched(
            || labels.clone(),
            |mut l| {
                postprocess_label(
                    &mut l,
                    1,
                    &PostprocessOptions {
                        largest_component: true,
                        fill_holes: FillHoles::Slice2d,
                        ..Default::default()
                    },
                )
                .unwrap()
            },
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
