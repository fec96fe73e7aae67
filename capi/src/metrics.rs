//! Comparing two masks: overlap and surface-distance metrics.

use super::boundary::{FfiError, boundary, try_out};
use super::engine::ac_geometry;
use super::status::ac_status;
use autocontour::metrics::{Comparison, compare_masks};

/// Metrics of a test mask against a reference mask (`ac_compare_masks`). Definitions follow
/// DeepMind's surface-distance library: surface elements at voxel corners weighted by their
/// area, exact Euclidean distances in mm with the grid's spacing.
///
/// Empty masks: both empty gives Dice = Jaccard = surface Dice = 1 and every distance 0; exactly
/// one empty gives Dice = Jaccard = surface Dice = 0 and every distance `INFINITY`. Never NaN.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ac_metrics {
    /// Reference volume, mm^3.
    pub reference_volume_mm3: f64,
    /// Test volume, mm^3.
    pub test_volume_mm3: f64,
    /// Test minus reference volume, mm^3.
    pub volume_difference_mm3: f64,
    /// Dice similarity coefficient, 0-1.
    pub dice: f64,
    /// Jaccard index (intersection over union), 0-1.
    pub jaccard: f64,
    /// Hausdorff distance (largest surface distance either way), mm.
    pub hausdorff_mm: f64,
    /// 95 % Hausdorff distance (larger of the two area-weighted 95th percentiles), mm.
    pub hd95_mm: f64,
    /// Area-weighted mean distance from the reference surface to the test surface, mm.
    pub mean_distance_reference_to_test_mm: f64,
    /// Area-weighted mean distance from the test surface to the reference surface, mm.
    pub mean_distance_test_to_reference_mm: f64,
    /// Average symmetric surface distance (area-weighted over both surfaces), mm.
    pub assd_mm: f64,
    /// Surface Dice at `tolerance_mm`, 0-1.
    pub surface_dice: f64,
    /// The surface Dice tolerance used, mm.
    pub tolerance_mm: f64,
}

impl From<&Comparison> for ac_metrics {
    fn from(c: &Comparison) -> Self {
        ac_metrics {
            reference_volume_mm3: c.reference_volume_mm3,
            test_volume_mm3: c.test_volume_mm3,
            volume_difference_mm3: c.volume_difference_mm3,
            dice: c.dice,
            jaccard: c.jaccard,
            hausdorff_mm: c.hausdorff_mm,
            hd95_mm: c.hd95_mm,
            mean_distance_reference_to_test_mm: c.mean_distance_reference_to_test_mm,
            mean_distance_test_to_reference_mm: c.mean_distance_test_to_reference_mm,
            assd_mm: c.assd_mm,
            surface_dice: c.surface_dice,
            tolerance_mm: c.tolerance_mm,
        }
    }
}

/// Compares a test mask with a reference mask on the same grid: `reference` and `test` each
/// point to `len` bytes (non-zero = inside) laid out as described for `ac_geometry`, and `len`
/// must equal `size[0] * size[1] * size[2]` of `*geometry` (only its size and spacing matter).
/// `tolerance_mm` (finite, >= 0) is the surface Dice tolerance. Writes `*metrics` on success.
///
/// Typical inputs: two `ac_rtstruct_rasterise` masks on one series, or a rasterised ROI against
/// `ac_result_labels` == label. Errors: `AC_STATUS_INVALID_ARGUMENT` (length, geometry or
/// tolerance). Any thread; the inputs are only read during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_compare_masks(
    reference: *const u8,
    test: *const u8,
    len: usize,
    geometry: *const ac_geometry,
    tolerance_mm: f64,
    metrics: *mut ac_metrics,
) -> ac_status {
    boundary("ac_compare_masks", || {
        let out = try_out!(metrics, "metrics");
        if reference.is_null() {
            return Err(FfiError::null("reference"));
        }
        if test.is_null() {
            return Err(FfiError::null("test"));
        }
        // SAFETY: the caller promises a valid struct when non-NULL.
        let g = unsafe { geometry.as_ref() }.ok_or_else(|| FfiError::null("geometry"))?;
        let g = g.to_geometry()?;
        let voxels = g.size.iter().try_fold(1usize, |a, &s| a.checked_mul(s));
        if voxels != Some(len) {
            return Err(FfiError::new(
                ac_status::InvalidArgument,
                format!(
                    "argument `len` is {len}, but the geometry has {:?} = {} voxels",
                    g.size,
                    voxels.map_or("too many".to_string(), |v| v.to_string())
                ),
            ));
        }
        // SAFETY: non-NULL; the caller promises `len` readable bytes at each.
        let (r, t) = unsafe {
            (
                std::slice::from_raw_parts(reference, len),
                std::slice::from_raw_parts(test, len),
            )
        };
        let c = compare_masks(r, t, &g, tolerance_mm)?;
        *out = ac_metrics::from(&c);
        Ok(())
    })
}
