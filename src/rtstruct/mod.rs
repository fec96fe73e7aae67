//! DICOM RT Structure Set: writing contours of a label map, reading structure sets (expert
//! contours, other vendors' files) and rasterising them onto a CT grid.
//!
//! * [`write_rtstruct`] / [`build_rtstruct`]: one ROI per [`RoiSpec`], Implicit VR Little
//!   Endian, references to every CT slice, written to a temporary file and renamed.
//! * [`read_rtstruct`]: ROIs with their contours, from files with or without preamble.
//! * [`rasterise_roi`]: a contour set to a mask on a CT grid (voxel centre inside, even-odd).

mod direct;
mod read;
mod write;

pub use read::{
    RasterOptions, RoiKind, RtStruct, RtStructContour, RtStructRoi, check_frame_of_reference,
    rasterise_roi, read_rtstruct, read_rtstruct_bytes,
};
#[doc(hidden)]
pub use read::{read_by_direct_walk, read_rtstruct_bytes_via_parser};
pub use write::{RoiContours, RoiSpec, build_rtstruct, rois_from_labels, write_rtstruct};

/// Shared with the SEG writer; re-exported from [`crate::dicom::write`] for existing callers.
pub use crate::dicom::write::{Code as RoiCode, OutputInfo, format_ds, new_uid};
