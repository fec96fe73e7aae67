//! One DICOM file from memory (with or without preamble and file meta): parsing must return a
//! value or a named error, never panic, overflow the stack or allocate what the input claims.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = autocontour::dicom::read_bytes(std::path::Path::new("fuzz.dcm"), data);
});
