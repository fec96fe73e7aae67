//! A NIfTI-1 file (plain or, when it starts with the gzip magic, gzipped) read as a label map and
//! as an image. The reader takes a path, so each input goes through a file of this process.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let gz = data.starts_with(&[0x1f, 0x8b]);
    let path = std::env::temp_dir().join(format!(
        "ac-fuzz-{}.nii{}",
        std::process::id(),
        if gz { ".gz" } else { "" }
    ));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let _ = autocontour::nifti::read_nifti_labels(&path);
    let _ = autocontour::nifti::read_nifti_image(&path);
    let _ = std::fs::remove_file(&path);
});
