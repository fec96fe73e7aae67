//! Surface metrics (Dice, Hausdorff, HD95, ASSD, surface Dice: `metrics::compare_masks`) on
//! real 512×512×236 masks of the RIDER Lung CT:
//!
//! * `rider_gtv`: GTVp_test_man vs GTVp_test_auto from the DICOM SEG;
//! * `body_outline`: the CT thresholded at −500 HU vs at −300 HU (a large structure).
//!
//!     python3 tests/setup/fetch.py rider && cargo bench --bench metrics
//!
//! Side by side with DeepMind surface-distance and SimpleITK: benches/compare/metrics_compare.py.
//!
//! Memory mode: `AC_METRICS_MEMORY=body_outline cargo bench --bench metrics` (or `rider_gtv`)
//! skips criterion, frees the CT, resets the process's peak RSS (Linux `clear_refs`), runs
//! `compare_masks` once and prints the time, the resident set before the call (the two masks and
//! the rest of the process) and the peak during it.

use std::path::PathBuf;
use std::time::Instant;

use autocontour::dicom::{LoadOptions, load_series};
use autocontour::metrics::compare_masks;
use autocontour::volume::Geometry;
use criterion::Criterion;

struct Pairs {
    geometry: Geometry,
    gtv: (Vec<u8>, Vec<u8>),
    body: (Vec<u8>, Vec<u8>),
}

fn load() -> Option<Pairs> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/testdata/rider");
    if !root.join("seg.dcm").exists() {
        eprintln!(
            "{} missing: run python3 tests/setup/fetch.py rider",
            root.display()
        );
        return None;
    }
    let ct = load_series(&root.join("ct"), None, &LoadOptions::default()).unwrap();
    let geometry = *ct.volume.geometry();
    let mut masks =
        autocontour_test_support::seg::read_binary_seg(&root.join("seg.dcm"), &geometry);
    let gtv = (
        masks.remove("GTVp_test_man").unwrap(),
        masks.remove("GTVp_test_auto").unwrap(),
    );
    let hu = ct.volume.to_f32();
    let body = |t: f32| -> Vec<u8> { hu.data().iter().map(|&v| u8::from(v > t)).collect() };
    let body = (body(-500.0), body(-300.0));
    Some(Pairs {
        geometry,
        gtv,
        body,
    })
}

/// `VmRSS` and `VmHWM` of this process in kB (0 where unavailable).
fn rss_kb() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// User + system CPU time of this process, seconds (clock ticks of 1/100 s).
fn cpu_s() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = s.rsplit(')').next().unwrap_or("");
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    f.iter().sum::<f64>() / 100.0
}

fn memory(p: &Pairs, which: &str) {
    let (a, b) = if which == "body_outline" {
        (&p.body.0, &p.body.1)
    } else {
        (&p.gtv.0, &p.gtv.1)
    };
    // Warm the thread pool and the page cache of the code, then measure a fresh call.
    let _ = compare_masks(&p.gtv.0, &p.gtv.1, &p.geometry, 1.0).unwrap();
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let (before, _) = rss_kb();
    let t = Instant::now();
    let c = compare_masks(a, b, &p.geometry, 1.0).unwrap();
    let secs = t.elapsed().as_secs_f64();
    let (_, peak) = rss_kb();
    // Then the best wall time and the mean CPU time of a few more calls.
    let n: usize = std::env::var("AC_METRICS_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let (mut best, cpu0) = (f64::INFINITY, cpu_s());
    for _ in 0..n {
        let t = Instant::now();
        let _ = compare_masks(a, b, &p.geometry, 1.0).unwrap();
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "{which}: best of {n} {best:.4} s wall, {:.4} s CPU per call",
        (cpu_s() - cpu0) / n.max(1) as f64
    );
    let grid = p.geometry.voxel_count() as f64 / 1e6;
    println!(
        "{which}: {secs:.4} s; mask grid {grid:.1} MB; RSS before {:.1} MB (two masks {:.1} MB), peak during {:.1} MB, above before {:.1} MB ({:.2}x the grid)",
        before as f64 / 1e3,
        2.0 * grid,
        peak as f64 / 1e3,
        (peak.saturating_sub(before)) as f64 / 1e3,
        (peak.saturating_sub(before)) as f64 / 1e3 / grid
    );
    println!(
        "  dice {:.6} hd {:.4} hd95 {:.4} assd {:.4} sdice@1 {:.6}",
        c.dice, c.hausdorff_mm, c.hd95_mm, c.assd_mm, c.surface_dice
    );
}

fn main() {
    let Some(p) = load() else { return };
    if let Ok(which) = std::env::var("AC_METRICS_MEMORY") {
        env_logger::init();
        memory(&p, &which);
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("metrics");
    group.sample_size(10);
    group.bench_function("rider_gtv", |b| {
        b.iter(|| compare_masks(&p.gtv.0, &p.gtv.1, &p.geometry, 1.0).unwrap())
    });
    group.bench_function("body_outline", |b| {
        b.iter(|| compare_masks(&p.body.0, &p.body.1, &p.geometry, 1.0).unwrap())
    });
    group.finish();
    c.final_summary();
}
