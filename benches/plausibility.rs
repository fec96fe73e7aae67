//! The plausibility checks of `segment` on the RIDER Lung CT (512 × 512 × 236, 0.576 × 0.576 ×
//! 1.25 mm) with the default model's rules (`models/thorax-basic`: builtin External, organs
//! inside it, laterality from names, applicability):
//!
//! * `ct_facts`: the applicability checks before inference (block means, the body outline on
//!   the coarse grid, body length, lung fraction, midline);
//! * `coarse_body`: the part of `ct_facts` that makes the outline on the coarse grid;
//! * `check_structures_builtin_external`: the checks after postprocessing with the builtin body
//!   as the External (skin placed at the CT's resolution, containment, statistics, flags);
//! * `check_structures_model_external`: the same with the model's own External (containment by
//!   the label map, statistics, flags): the difference to the above is the builtin body;
//! * `body_mask`: the body outline as a full-resolution mask (the `body` module's public call;
//!   the pipeline does not materialise it).
//!
//! The label map stands in for the model's: External = CT above −400 HU (couch included), lungs
//! = body voxels at −950…−600 HU split at the midline.
//!
//!     python3 tests/setup/fetch.py rider && cargo bench --bench plausibility

use std::path::{Path, PathBuf};

use autocontour::body::{BodyOptions, body_mask, coarse_body};
use autocontour::dicom::{CtSeries, LoadOptions, load_series};
use autocontour::model::Manifest;
use autocontour::plausibility::{check_structures, ct_facts};
use autocontour::volume::Volume;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rider() -> PathBuf {
    root().join("target/testdata/rider/ct")
}

fn manifest(external: &str) -> Manifest {
    let path = root().join("models/thorax-basic/model.json");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(r#""external": "builtin""#, external);
    Manifest::parse(&text, &path).unwrap()
}

/// A label map like the model's: External above −400 HU, lungs split at `midline_x` (patient x).
fn labels(ct: &CtSeries, midline_x: f64) -> Volume<u8> {
    let g = *ct.volume.geometry();
    let [ni, nj, _] = g.size;
    let data = ct
        .volume
        .to_f32()
        .data()
        .iter()
        .enumerate()
        .map(|(p, &h)| {
            let (i, j, k) = (p % ni, (p / ni) % nj, p / (ni * nj));
            let x = g.index_to_patient([i as f64, j as f64, k as f64])[0];
            if (-950.0..=-600.0).contains(&h) && (40..ni - 40).contains(&i) && j > 100 && j < 400 {
                // Patient left is +x (LPS): Lung_L = 2, Lung_R = 3.
                if x > midline_x { 2 } else { 3 }
            } else {
                u8::from(h > -400.0)
            }
        })
        .collect();
    Volume::new(g, data).unwrap()
}

fn bench(c: &mut Criterion) {
    let dir = rider();
    if !dir.exists() {
        eprintln!(
            "{} missing: run python3 tests/setup/fetch.py rider (plausibility bench skipped)",
            dir.display()
        );
        return;
    }
    let ct = load_series(&dir, None, &LoadOptions::default()).unwrap();
    let builtin = manifest(r#""external": "builtin""#);
    let model = manifest(r#""external": "model""#);
    let rules = builtin.rules();
    let (facts, coarse) = ct_facts(&ct, &rules).unwrap();
    let mid = facts.midline_x_mm;
    let map = labels(&ct, mid.unwrap_or(0.0));
    report_once(&ct, &builtin, &map, mid, &coarse);

    let mut g = c.benchmark_group("rider_plausibility");
    g.sample_size(10);
    g.bench_function("ct_facts", |b| b.iter(|| ct_facts(&ct, &rules).unwrap()));
    g.bench_function("coarse_body", |b| {
        b.iter(|| coarse_body(&ct.volume, &BodyOptions::default()).unwrap())
    });
    g.bench_function("check_structures_builtin_external", |b| {
        b.iter_batched(
            || map.clone(),
            |mut l| check_structures(&mut l, &ct.volume, &builtin, mid, Some(&coarse)).unwrap(),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("check_structures_model_external", |b| {
        b.iter_batched(
            || map.clone(),
            |mut l| check_structures(&mut l, &ct.volume, &model, mid, None).unwrap(),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("body_mask", |b| {
        b.iter(|| body_mask(&ct.volume, &BodyOptions::default()).unwrap())
    });
    g.finish();
}

/// What the benched calls find, once (a sanity check that the data is what it should be).
fn report_once(
    ct: &CtSeries,
    m: &Manifest,
    map: &Volume<u8>,
    mid: Option<f64>,
    coarse: &autocontour::body::CoarseBody,
) {
    let mut l = map.clone();
    let c = check_structures(&mut l, &ct.volume, m, mid, Some(coarse)).unwrap();
    let voxels: Vec<usize> = c.labels.iter().map(|s| s.voxels).collect();
    eprintln!(
        "{}: body {} voxels, structures {:?}, flags {}",
        Path::new(&rider()).display(),
        c.body_voxels,
        voxels,
        c.labels.iter().map(|s| s.flags.len()).sum::<usize>() + c.case_flags.len()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
