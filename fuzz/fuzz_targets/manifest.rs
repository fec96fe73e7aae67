//! A model manifest (model.json) parsed and validated.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = autocontour::model::Manifest::parse(text, std::path::Path::new("fuzz/model.json"));
    }
});
