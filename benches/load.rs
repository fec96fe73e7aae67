//! Loading the RIDER Lung CT (236 slices of 512², implicit VR LE) into HU with geometry.
//!
//!     python3 tests/setup/fetch.py rider && cargo bench --bench load
//!
//! Side by side with pydicom+numpy and SimpleITK: benches/compare/load_compare.py.

use std::path::PathBuf;

use autocontour::dicom::{LoadOptions, discover, load_series};
use criterion::{Criterion, criterion_group, criterion_main};

fn rider() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/testdata/rider/ct")
}

fn bench(c: &mut Criterion) {
    let dir = rider();
    if !dir.exists() {
        eprintln!(
            "{} missing: run python3 tests/setup/fetch.py rider",
            dir.display()
        );
        return;
    }
    let mut g = c.benchmark_group("rider_ct");
    g.sample_size(10);
    g.bench_function("discover", |b| b.iter(|| discover(&dir).unwrap()));
    g.bench_function("load_series", |b| {
        b.iter(|| load_series(&dir, None, &LoadOptions::default()).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
