//! Criterion benches of every stage of `segment` that is not ONNX Runtime, on the RIDER Lung CT
//! (512 × 512 × 236, 0.576 × 0.576 × 1.25 mm) with the default model (`models/thorax-basic`):
//!
//! * `postprocess`: the manifest's postprocessing of all labels (largest component, 2-D hole
//!   filling) on the model's raw label map;
//! * `postprocess_body_mask`: the largest 6-connected component of CT > −500 HU with holes
//!   filled per axial slice (the mask `benches/compare/stages_compare.py` gives scipy.ndimage
//!   and cc3d);
//! * `contours`: the ROIs' contours (organs and the External's union of all structures);
//! * `rtstruct_encode`: the RT Structure Set built and encoded into memory (`encode_file`, as
//!   `segment` writes it);
//! * `rtstruct_write`: contours + encoding + the atomic file write (what `segment` times as
//!   `rtstruct`);
//! * `rtstruct_read`: the written file read back (`read_rtstruct`);
//! * `rasterise`: every ROI of it rasterised onto the CT grid (what `evaluate` does).
//!
//! The label map is the model's own (one inference at start-up), so the contours and the file
//! are those `segment` writes.
//!
//!     python3 tests/setup/fetch.py ort rider
//!     AUTOCONTOUR_ORT_LIB=$PWD/target/onnxruntime/libonnxruntime.so.1.31.1 cargo bench --bench stages

use std::path::PathBuf;

use autocontour::contour::ContourOptions;
use autocontour::dicom::write::encode_file;
use autocontour::dicom::{LoadOptions, load_series};
use autocontour::infer::{InferOptions, predict};
use autocontour::model::{Model, ModelOptions};
use autocontour::pipeline::{postprocess_labels, segment};
use autocontour::postprocess::{FillHoles, PostprocessOptions, postprocess_label};
use autocontour::rtstruct::{RasterOptions, build_rtstruct, rasterise_roi, read_rtstruct};
use autocontour::runtime::RuntimeOptions;
use autocontour::volume::Volume;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bench(c: &mut Criterion) {
    let dir = root().join("target/testdata/rider/ct");
    let lib = root().join("target/onnxruntime/libonnxruntime.so.1.31.1");
    if !dir.exists() || !lib.exists() {
        eprintln!(
            "{} or {} missing: run python3 tests/setup/fetch.py ort rider (stages bench skipped)",
            dir.display(),
            lib.display()
        );
        return;
    }
    let ct = load_series(&dir, None, &LoadOptions::default()).unwrap();
    let model = Model::open(
        &root().join("models/thorax-basic"),
        &ModelOptions {
            runtime: RuntimeOptions { library: Some(lib) },
            threads: 2,
            ..ModelOptions::default()
        },
    )
    .unwrap();
    let raw = predict(&model, &ct.volume, &InferOptions::default())
        .unwrap()
        .labels;
    let seg = segment(&model, &ct, &InferOptions::default()).unwrap();
    let opts = ContourOptions::default();
    let rois = seg.rtstruct_rois(&model, &opts).unwrap();
    let points: usize = rois
        .iter()
        .flat_map(|r| &r.contours)
        .map(|c| c.points.len())
        .sum();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("rtstruct.dcm");
    seg.write_rtstruct(&model, &ct, &path, &opts).unwrap();
    eprintln!(
        "RIDER: {} ROIs, {points} contour points, RTSTRUCT {} bytes",
        rois.len(),
        std::fs::metadata(&path).unwrap().len()
    );
    let rs = read_rtstruct(&path).unwrap();

    let body: Vec<u8> = ct
        .volume
        .to_f32()
        .data()
        .iter()
        .map(|&h| u8::from(h > -500.0))
        .collect();
    let body = Volume::new(*ct.volume.geometry(), body).unwrap();
    let body_opts = PostprocessOptions {
        largest_component: true,
        fill_holes: FillHoles::Slice2d,
        ..PostprocessOptions::default()
    };
    let mut once = body.clone();
    postprocess_label(&mut once, 1, &body_opts).unwrap();
    eprintln!(
        "body mask postprocessed: {} voxels",
        once.data().iter().filter(|&&v| v == 1).count()
    );

    let mut g = c.benchmark_group("rider_stages");
    g.sample_size(10);
    g.bench_function("postprocess_body_mask", |b| {
        b.iter_batched(
            || body.clone(),
            |mut l| postprocess_label(&mut l, 1, &body_opts).unwrap(),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("postprocess", |b| {
        b.iter_batched(
            || raw.clone(),
            |mut l| postprocess_labels(&model.manifest, &mut l).unwrap(),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("contours", |b| {
        b.iter(|| seg.rtstruct_rois(&model, &opts).unwrap())
    });
    g.bench_function("rtstruct_encode", |b| {
        b.iter(|| {
            let obj = build_rtstruct(&ct, &rois, &seg.output_info()).unwrap();
            encode_file(&obj).unwrap()
        })
    });
    g.bench_function("rtstruct_write", |b| {
        b.iter(|| seg.write_rtstruct(&model, &ct, &path, &opts).unwrap())
    });
    g.bench_function("rtstruct_read", |b| {
        b.iter(|| read_rtstruct(&path).unwrap())
    });
    let raster = RasterOptions {
        slices: Some(&ct.slices),
    };
    g.bench_function("rasterise", |b| {
        b.iter(|| {
            rs.rois
                .iter()
                .map(|r| rasterise_roi(r, ct.volume.geometry(), &raster).unwrap())
                .collect::<Vec<_>>()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
