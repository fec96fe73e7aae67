//! Series discovery and CT loading from in-memory buffers: the input is cut into up to three
//! slices (at 0xFF 0xFE 0xFF 0xFE markers), so several mutated slices meet in one load, which
//! decodes their pixel data (every decoder path the transfer syntaxes reach).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common/split.rs"]
mod split;

fuzz_target!(|data: &[u8]| {
    let parts = split::three_parts(data);
    let buffers: Vec<(String, &[u8])> = parts
        .iter()
        .enumerate()
        .map(|(n, b)| (format!("slice {n}"), *b))
        .collect();
    let opts = autocontour::dicom::LoadOptions {
        // keep each run small: a claimed 65535 × 65535 grid must be refused, not allocated
        max_voxels: 1 << 22,
        ..Default::default()
    };
    let _ = autocontour::dicom::load_series_buffers(&buffers, None, &opts);
});
