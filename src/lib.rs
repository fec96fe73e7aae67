//! # autocontour
//!
//! An embeddable auto-contouring SDK for radiotherapy CT. The data path runs one way:
//!
//! ```text
//! DICOM files ─▶ Series ─▶ Volume (HU, geometry) ─▶ model input ─▶ tiles ─▶ ONNX Runtime
//!   ─▶ label map ─▶ contours (patient mm) ─▶ RT Structure Set / SEG ─▶ host TPS
//! ```
//!
//! Modules, in data-path order: [`dicom`] (series discovery and loading), [`volume`]
//! ([`Volume`](volume::Volume) and [`Geometry`](volume::Geometry)), [`runtime`] (loading ONNX
//! Runtime by path). The C ABI is the `autocontour-capi` crate (`capi/`), described by
//! `include/autocontour.h`; the command-line tool is `autocontour-cli` (`cli/`).
//!
//! The library never installs a logger; it logs through the `log` facade.
//!
//! # Example: a CT folder to an RT Structure Set
//!
//! ```no_run
//! use std::path::Path;
//!
//! use autocontour::contour::ContourOptions;
//! use autocontour::dicom::{LoadOptions, load_series};
//! use autocontour::infer::InferOptions;
//! use autocontour::model::{Model, ModelOptions};
//! use autocontour::pipeline::segment;
//!
//! // ONNX Runtime by path: ModelOptions::runtime, or the AUTOCONTOUR_ORT_LIB variable.
//! let model = Model::open(Path::new("models/thorax-basic"), &ModelOptions::default())?;
//! let ct = load_series(Path::new("ct/"), None, &LoadOptions::default())?;
//! let seg = segment(&model, &ct, &InferOptions::default())?;
//! for s in &seg.structures {
//!     println!("{}: {:.1} ml, flags {:?}", s.name, s.volume_ml, s.flags);
//! }
//! for f in &seg.case_flags {
//!     println!("case: {f}");
//! }
//! seg.write_rtstruct(&model, &ct, Path::new("rtstruct.dcm"), &ContourOptions::default())?;
//! # Ok::<(), autocontour::Error>(())
//! ```

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod audit;
pub mod body;
mod bucket;
pub mod contour;
pub mod deid;
pub mod dicom;
pub mod error;
pub mod infer;
pub mod io;
pub mod limits;
pub mod metrics;
pub mod model;
pub mod nifti;
pub mod nnunet;
pub mod pipeline;
pub mod plausibility;
pub mod postprocess;
pub mod profile;
pub mod rtstruct;
pub mod runtime;
pub mod seg;
pub mod volume;

#[cfg(test)]
mod test_rng;

pub use error::{Error, Result};

/// The SDK version (`major.minor.patch`), from Cargo.toml.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
