//! An RT Structure Set from memory, then every ROI rasterised onto a small grid. Where the
//! direct walk reads the bytes, dicom-object's parser must give the same structure set (or the
//! same error).
#![no_main]
use libfuzzer_sys::fuzz_target;

use autocontour::rtstruct::{
    RasterOptions, rasterise_roi, read_by_direct_walk, read_rtstruct_bytes,
    read_rtstruct_bytes_via_parser,
};
use autocontour::volume::Geometry;

fuzz_target!(|data: &[u8]| {
    let name = std::path::Path::new("fuzz.dcm");
    let read = read_rtstruct_bytes(name, data);
    if read_by_direct_walk(data) {
        match (&read, &read_rtstruct_bytes_via_parser(name, data)) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "direct walk and parser differ"),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
            (a, b) => panic!("direct walk {a:?}, parser {b:?}"),
        }
    }
    let Ok(rs) = read else {
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
