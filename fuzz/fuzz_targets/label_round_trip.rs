//! Label map → contours → RT Structure Set bytes → reader → rasterised masks, on phantom CT
//! series in each of the six orientations the loader accepts (built and loaded once). The input
//! picks the orientation, the number of labels (1–4) and every voxel's label; contours are
//! traced exactly (no tolerance), so every ROI read back must rasterise to exactly the voxels of
//! its label, through the direct walk and through dicom-object's parser alike. A difference is
//! a finding (a panic with both masks' voxel counts and the first voxel that differs).
#![no_main]
use std::path::Path;
use std::sync::OnceLock;

use autocontour::contour::ContourOptions;
use autocontour::dicom::{CtSeries, LoadOptions, load_series};
use autocontour::rtstruct::{
    OutputInfo, RasterOptions, RoiSpec, build_rtstruct, rasterise_roi, read_rtstruct_bytes,
    read_rtstruct_bytes_via_parser, rois_from_labels,
};
use autocontour::volume::Volume;
use autocontour_test_support::phantom::{Orientation, Phantom, PhantomSpec, PhantomSyntax};
use libfuzzer_sys::fuzz_target;

/// Columns, rows, slices of every phantom: small enough for thousands of runs a second, odd and
/// unequal so that a transposed axis shows.
const SIZE: [usize; 3] = [11, 9, 4];

fn series() -> &'static [CtSeries] {
    static SERIES: OnceLock<Vec<CtSeries>> = OnceLock::new();
    SERIES.get_or_init(|| {
        Orientation::ALL
            .iter()
            .map(|&orientation| {
                let dir = std::env::temp_dir().join(format!(
                    "ac-fuzz-round-trip-{}-{}",
                    std::process::id(),
                    orientation.name()
                ));
                let spec = PhantomSpec {
                    orientation,
                    size: SIZE,
                    spacing: [0.9765625, 1.25, 2.5],
                    center: [12.5, -30.25, 101.0],
                    seed: Some(format!("fuzz-round-trip-{}", orientation.name())),
                };
                Phantom::new(spec)
                    .and_then(|p| p.write_series(&dir, PhantomSyntax::ImplicitLittle))
                    .expect("phantom written");
                let ct = load_series(&dir, None, &LoadOptions::default()).expect("phantom loads");
                let _ = std::fs::remove_dir_all(&dir);
                ct
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&head, voxels)) = data.split_first() else {
        return;
    };
    let all = series();
    let Some(ct) = all.get(usize::from(head) % all.len()) else {
        return;
    };
    let labels_n = 1 + (head >> 4) % 4;
    let g = *ct.volume.geometry();
    let n = g.voxel_count();
    // The input's bytes (repeated, so short inputs fill the grid too) modulo labels + 1.
    let labels: Vec<u8> = (0..n)
        .map(|i| {
            if voxels.is_empty() {
                0
            } else {
                voxels[i % voxels.len()] % (labels_n + 1)
            }
        })
        .collect();
    let map = Volume::new(g, labels.clone()).expect("label map on the CT grid");
    let specs: Vec<(u8, RoiSpec)> = (1..=labels_n)
        .map(|l| {
            (
                l,
                RoiSpec {
                    number: u32::from(l),
                    name: format!("ROI {l}"),
                    color: [200, 100, 50],
                    interpreted_type: "ORGAN".into(),
                    code: None,
                },
            )
        })
        .collect();
    let rois = rois_from_labels(&map, &specs, &ContourOptions::default()).expect("contours");
    let obj = build_rtstruct(ct, &rois, &OutputInfo::default()).expect("structure set built");
    let bytes = autocontour::dicom::write::encode_file(&obj).expect("structure set encoded");
    let name = Path::new("fuzz-round-trip.dcm");
    let walked = read_rtstruct_bytes(name, &bytes).expect("read back by the direct walk");
    let parsed = read_rtstruct_bytes_via_parser(name, &bytes).expect("read back by the parser");
    for (label, spec) in &specs {
        let want: Vec<u8> = labels.iter().map(|&v| u8::from(v == *label)).collect();
        for (how, rs) in [("walk", &walked), ("parser", &parsed)] {
            let roi = rs.roi(&spec.name).expect("ROI read back");
            let got = rasterise_roi(
                roi,
                &g,
                &RasterOptions {
                    slices: Some(&ct.slices),
                },
            )
            .expect("rasterised");
            if got.data() != &want[..] {
                let first = want
                    .iter()
                    .zip(got.data())
                    .position(|(a, b)| a != b)
                    .unwrap_or(0);
                panic!(
                    "{how}: label {label} on {:?}: {} voxels written, {} read back; first difference at voxel {first} of {SIZE:?}",
                    g.direction,
                    want.iter().filter(|&&v| v == 1).count(),
                    got.data().iter().filter(|&&v| v == 1).count()
                );
            }
        }
    }
});
