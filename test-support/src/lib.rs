//! Test support for the autocontour workspace: the synthetic CT phantom writer (also behind the
//! CLI's `phantom` subcommand), a small deterministic random generator, and helpers that the
//! integration tests share (where fetched data, ONNX Runtime, the built CLI and cdylib live;
//! `dciodvfy`), the Python metrics reference and a DICOM SEG reader for reference masks.
//!
//! Not part of the SDK: the C ABI crate does not depend on it.

pub mod corrupt;
pub mod mha;
pub mod paths;
pub mod phantom;
pub mod procs;
pub mod rabbitmq;
pub mod reference;
pub mod rng;
pub mod seg;

pub use mha::read_mha;
pub use paths::*;
pub use rng::XorShift;
