//! Surface distances following DeepMind's `surface-distance` library exactly.
//!
//! * Surface elements ("surfels") sit at voxel **corners**: every corner gets the 8-bit code of
//!   its 2×2×2 neighbourhood of voxels (kernel `[[[128, 64], [32, 16]], [[8, 4], [2, 1]]]` over
//!   slice, row, column); corners whose code is neither 0 nor 255 are surface points.
//! * Each surface point carries the area (mm²) of its marching-cubes triangles, from the
//!   library's normal table scaled by the spacing (`metrics/tables.rs`).
//! * The distance of a surface point of one mask is the exact Euclidean distance (mm) to the
//!   nearest surface point of the other mask, on the corner grid.
//! * Both masks are cropped to the bounding box of their union plus one corner before anything
//!   else, as the library does; the result does not depend on the crop.
//!
//! Distances are computed with a memory-lean separable transform, one direction at a time: a
//! pass along the slice axis to the other mask's surface, stored as corner counts (`u8` when the
//! crop spans at most 253 slices, else `u16`: 1 or 2 bytes per corner of the crop),
//! then per slice an exact local search around each surface point in that slice's pass-1
//! values (`min zsq(y', x') + sy²(y − y')² + sx²(x − x')²`): the point's neighbours first, then
//! rings of 4×4 blocks, skipping every block whose minimum plus its distance to the point cannot
//! beat the best value found, and stopping at the ring no value can beat. Points near the other
//! surface (most of them) settle after a handful of reads. Should a slice's points read more than
//! a budget, its remaining points take the separable passes instead: the row pass (lower envelope
//! of parabolas, written transposed in blocks of 8 rows) and the column pass at those points
//! only. Both give the same exact distances. Both masks are packed one bit per voxel of the crop
//! first (`scan::Packed`); surface corners and their codes are found from those bits, 64
//! corners per word, row by row. A point on the other surface (pass-1 count 0) settles with one
//! read. Work is spread over the rayon thread pool.
//!
//! [`surface_distances`] returns every point, sorted. `compare_masks` instead streams the sums
//! it needs and finds the percentile with an area histogram, holding one direction's
//! distances (8 bytes) and neighbourhood codes (1 byte) per surface point at a time.
//!
//! Four stages, one file each: `scan` (bounding box, overlap counts, the crop, the packed masks
//! and the surface elements), `search` (the pass-1 plane of a slice and the exact local search), `directed`
//! (pass 1, the local search per slice and the separable fallback passes) and `summary` (the
//! sorted point lists and Hausdorff, HD95, ASSD and surface Dice, or streamed summaries).

mod directed;
mod scan;
mod search;
mod summary;
#[cfg(test)]
mod tests;

pub use scan::{BBox, surfel_area_table, union_bbox};
pub(crate) use scan::{check_inputs, scan};
pub(crate) use summary::{DirectedSummary, summaries_in};
pub use summary::{
    SurfaceDistances, SurfacePoint, directed_mean, directed_percentile, surface_distances,
};
