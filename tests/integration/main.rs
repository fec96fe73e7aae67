//! The library's integration tests, one module per area, linked into one test binary
//! (`cargo test --test integration [FILTER]`): one link and one binary instead of one per file.

mod contour_orientations;
mod dicom_geometry;
mod dicom_phantom;
mod dicom_pixels;
mod dicom_rejections;
mod infer;
mod metrics_rider;
mod metrics_study;
mod metrics_surface;
mod nnunet;
mod plausibility;
mod profile;
mod rider;
mod rtstruct_rider;
mod runtime;
mod seg_nifti;
