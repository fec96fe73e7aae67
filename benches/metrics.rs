//! Surface metrics (Dice, Hausdorff, HD95, ASSD, surface Dice: `metrics::compare_masks`) on
//! real 512×512×236 masks of the RIDER Lung CT:
//!
//! * `rider_gtv`: GTVp_test_man vs GTVp_test_auto from the DICOM SEG;
//! * `body_outline`: the CT thresholded at −500 HU vs at −300 HU (a large structure).
//!
//!     python3 tests/setup/fetch.py rider && cargo bench --bench metrics
//!
//! Side by side with DeepMind surface-distance and SimpleITK: benches/compare/metrics_compare.py.

#[path = "../tests/metrics_common/seg.rs"]
mod seg;

use std::path::PathBuf;

use autocontour::dicom::{LoadOptions, load_series};
use autocontour::metrics::compare_masks;
use criterion::{Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/testdata/rider");
    if !root.join("seg.dcm").exists() {
        eprintln!(
            "{} missing: run python3 tests/setup/fetch.py rider",
            root.display()
        );
        return;
    }
    let ct = load_series(&root.join("ct"), None, &LoadOptions::default()).unwrap();
    let g = *ct.volume.geometry();
    let masks = seg::read_binary_seg(&root.join("seg.dcm"), &g);
    let (man, auto) = (&masks["GTVp_test_man"], &masks["GTVp_test_auto"]);
    let body =
        |hu: f32| -> Vec<u8> { ct.volume.data().iter().map(|&v| u8::from(v > hu)).collect() };
    let (b500, b300) = (body(-500.0), body(-300.0));

    let mut group = c.benchmark_group("metrics");
    group.sample_size(10);
    group.bench_function("rider_gtv", |b| {
        b.iter(|| compare_masks(man, auto, &g, 1.0).unwrap())
    });
    group.bench_function("body_outline", |b| {
        b.iter(|| compare_masks(&b500, &b300, &g, 1.0).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
