//! DICOM input: reading files (with or without preamble and file meta), discovering series in a
//! folder, and loading a CT series into a [`Volume`](crate::volume::Volume) with exact geometry;
//! [`mod@write`] holds what the DICOM writers (RT Structure Set, Segmentation) share.

mod encode;
mod file;
mod prescan;
mod series;
pub mod write;

pub(crate) use file::{
    ContourDataHeaders, check_file_size, contour_data_headers, invalid_tag, missing_tag, sniff,
};
pub use file::{DicomFile, StoredPixels, read_bytes, read_file, read_header};
pub(crate) use prescan::long_vr;
pub use series::{
    CtSeries, LoadOptions, SeriesInfo, SeriesSummary, SliceRef, discover, load_series,
    load_series_buffers, load_series_files, load_series_grid,
};
