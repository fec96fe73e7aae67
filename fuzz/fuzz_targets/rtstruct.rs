//! An RT Structure Set from memory, then every ROI rasterised onto a small grid.
#![no_main]
use libfuzzer_sys::fuzz_target;

use autocontour::rtstruct::{RasterOptions, rasterise_roi, read_rtstruct_bytes};
use autocontour::volume::Geometry;

fuzz_target!(|data: &[u8]| {
    let Ok(rs) = read_rtstruct_bytes(std::path::Path::new("fuzz.dcm"), data) else {
        return;
    };
    let Ok(g) = Geometry::new(
        [32, 32, 8],
        [-16.0, -16.0, -4.0],
        [1.0, 1.0, 1.0],
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
    ) else {
        return;
    };
    for roi in &rs.rois {
        let _ = rasterise_roi(roi, &g, &RasterOptions::default());
    }
});
