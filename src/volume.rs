//! Voxel volumes with their place in the patient.
//!
//! Conventions (DICOM patient coordinate system, LPS, millimetres):
//!
//! * voxel index `(i, j, k)` = (column, row, slice); data are stored slice-major, then row, then
//!   column: `index = (k * rows + j) * cols + i`;
//! * `origin` is Image Position (Patient) of the first slice (`k = 0`), i.e. the centre of voxel
//!   `(0, 0, 0)`;
//! * `direction` columns are the row cosine (direction of increasing `i`), the column cosine
//!   (increasing `j`) and the slice normal (increasing `k`), the last being the normalised cross
//!   product of the first two, with slices sorted so that `k` grows along it;
//! * `spacing` = (column spacing, row spacing, slice gap) in mm;
//! * patient point = `origin + direction · diag(spacing) · (i, j, k)`.

use serde::Serialize;

use crate::error::{Error, Result};

/// Position, spacing and orientation of a voxel grid in the patient frame (LPS, mm).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Geometry {
    /// Voxels along i (columns), j (rows), k (slices).
    pub size: [usize; 3],
    /// Patient position of the centre of voxel (0, 0, 0), mm.
    pub origin: [f64; 3],
    /// Distance between voxel centres along i, j, k, mm.
    pub spacing: [f64; 3],
    /// Row-major 3×3 matrix whose columns are the unit axes of i, j and k in the patient frame.
    pub direction: [[f64; 3]; 3],
}

impl Geometry {
    /// Creates a geometry, checking sizes, spacings and that the direction is orthonormal.
    pub fn new(
        size: [usize; 3],
        origin: [f64; 3],
        spacing: [f64; 3],
        direction: [[f64; 3]; 3],
    ) -> Result<Self> {
        if size.contains(&0) {
            return Err(Error::InvalidArgument(format!(
                "volume size {size:?} has an empty axis"
            )));
        }
        if spacing.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(Error::InvalidArgument(format!(
                "spacing {spacing:?} must be finite and positive"
            )));
        }
        let g = Geometry {
            size,
            origin,
            spacing,
            direction,
        };
        for a in 0..3 {
            let n = dot(g.axis(a), g.axis(a)).sqrt();
            if (n - 1.0).abs() > 1e-3 {
                return Err(Error::InvalidArgument(format!(
                    "direction axis {a} has length {n:.4}, expected 1"
                )));
            }
            for b in (a + 1)..3 {
                let d = dot(g.axis(a), g.axis(b));
                if d.abs() > 1e-3 {
                    return Err(Error::InvalidArgument(format!(
                        "direction axes {a} and {b} are not orthogonal (dot {d:.4})"
                    )));
                }
            }
        }
        Ok(g)
    }

    /// Unit vector of voxel axis `a` (0 = i, 1 = j, 2 = k) in the patient frame.
    pub fn axis(&self, a: usize) -> [f64; 3] {
        let a = a.min(2);
        [
            self.direction[0][a],
            self.direction[1][a],
            self.direction[2][a],
        ]
    }

    /// Number of voxels.
    pub fn voxel_count(&self) -> usize {
        self.size[0] * self.size[1] * self.size[2]
    }

    /// Patient position (mm) of a continuous voxel index.
    pub fn index_to_patient(&self, idx: [f64; 3]) -> [f64; 3] {
        let mut p = self.origin;
        for (a, &v) in idx.iter().enumerate() {
            let ax = self.axis(a);
            for r in 0..3 {
                p[r] += ax[r] * self.spacing[a] * v;
            }
        }
        p
    }

    /// Continuous voxel index of a patient position (mm).
    pub fn patient_to_index(&self, p: [f64; 3]) -> [f64; 3] {
        let d = [
            p[0] - self.origin[0],
            p[1] - self.origin[1],
            p[2] - self.origin[2],
        ];
        let mut idx = [0.0; 3];
        for (a, v) in idx.iter_mut().enumerate() {
            *v = dot(self.axis(a), d) / self.spacing[a];
        }
        idx
    }

    /// Flat index of voxel (i, j, k), or `None` outside the grid.
    pub fn flat_index(&self, i: usize, j: usize, k: usize) -> Option<usize> {
        let [ni, nj, nk] = self.size;
        (i < ni && j < nj && k < nk).then(|| (k * nj + j) * ni + i)
    }

    /// Physical extent: spacing × size per axis, mm.
    pub fn extent_mm(&self) -> [f64; 3] {
        [
            self.spacing[0] * self.size[0] as f64,
            self.spacing[1] * self.size[1] as f64,
            self.spacing[2] * self.size[2] as f64,
        ]
    }
}

/// Dot product of two 3-vectors.
pub fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Cross product of two 3-vectors.
pub fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

/// A voxel grid of values with its geometry. CT volumes hold Hounsfield units as `f32`.
#[derive(Debug, Clone, PartialEq)]
pub struct Volume<T> {
    geometry: Geometry,
    data: Vec<T>,
}

impl<T> Volume<T> {
    /// Wraps `data` (slice-major, see module docs); its length must match the geometry.
    pub fn new(geometry: Geometry, data: Vec<T>) -> Result<Self> {
        if data.len() != geometry.voxel_count() {
            return Err(Error::InvalidArgument(format!(
                "volume data has {} values, geometry {:?} needs {}",
                data.len(),
                geometry.size,
                geometry.voxel_count()
            )));
        }
        Ok(Volume { geometry, data })
    }

    /// The grid.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// All values, slice-major.
    pub fn data(&self) -> &[T] {
        &self.data
    }

    /// All values, mutable.
    pub fn data_mut(&mut self) -> &mut [T] {
        &mut self.data
    }

    /// Consumes the volume, returning its values.
    pub fn into_data(self) -> Vec<T> {
        self.data
    }

    /// Value at (i, j, k), or `None` outside.
    pub fn get(&self, i: usize, j: usize, k: usize) -> Option<&T> {
        self.geometry
            .flat_index(i, j, k)
            .and_then(|n| self.data.get(n))
    }

    /// A sub-volume `[lo, hi)` per axis (i, j, k) with its geometry (origin moved to `lo`).
    pub fn crop(&self, lo: [usize; 3], hi: [usize; 3]) -> Result<Volume<T>>
    where
        T: Copy,
    {
        let g = &self.geometry;
        for a in 0..3 {
            if lo[a] >= hi[a] || hi[a] > g.size[a] {
                return Err(Error::InvalidArgument(format!(
                    "crop [{lo:?}, {hi:?}) outside volume {:?}",
                    g.size
                )));
            }
        }
        let size = [hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]];
        let mut data = Vec::with_capacity(size[0] * size[1] * size[2]);
        for k in lo[2]..hi[2] {
            for j in lo[1]..hi[1] {
                let start = (k * g.size[1] + j) * g.size[0] + lo[0];
                let row = self
                    .data
                    .get(start..start + size[0])
                    .ok_or_else(|| Error::InvalidArgument("crop outside the data".to_string()))?;
                data.extend_from_slice(row);
            }
        }
        let origin = g.index_to_patient([lo[0] as f64, lo[1] as f64, lo[2] as f64]);
        let geometry = Geometry::new(size, origin, g.spacing, g.direction)?;
        Volume::new(geometry, data)
    }

    /// One axial (k) slice, row-major.
    pub fn slice(&self, k: usize) -> Option<&[T]> {
        let n = self.geometry.size[0] * self.geometry.size[1];
        self.data.get(k * n..(k + 1) * n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> [[f64; 3]; 3] {
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    }

    #[test]
    fn index_patient_round_trip_oblique() {
        let s = std::f64::consts::FRAC_1_SQRT_2;
        // i along (s, s, 0), j along (0, 0, -1), k = i × j = (-s, s, 0)
        let d = [[s, 0.0, -s], [s, 0.0, s], [0.0, -1.0, 0.0]];
        let g = Geometry::new([10, 20, 30], [5.0, -3.0, 100.0], [0.5, 0.7, 2.0], d).unwrap();
        let idx = [3.0, 7.5, 11.0];
        let p = g.index_to_patient(idx);
        let back = g.patient_to_index(p);
        for a in 0..3 {
            assert!((back[a] - idx[a]).abs() < 1e-9);
        }
        // voxel (1,0,0) is one column step along the row cosine
        let p1 = g.index_to_patient([1.0, 0.0, 0.0]);
        assert!((p1[0] - (5.0 + 0.5 * s)).abs() < 1e-12);
        assert!((p1[1] - (-3.0 + 0.5 * s)).abs() < 1e-12);
    }

    #[test]
    fn rejects_bad_geometry() {
        assert!(Geometry::new([0, 1, 1], [0.0; 3], [1.0; 3], identity()).is_err());
        assert!(Geometry::new([1, 1, 1], [0.0; 3], [1.0, -1.0, 1.0], identity()).is_err());
        let skew = [[1.0, 0.5, 0.0], [0.0, 0.866, 0.0], [0.0, 0.0, 1.0]];
        assert!(Geometry::new([1, 1, 1], [0.0; 3], [1.0; 3], skew).is_err());
    }

    #[test]
    fn volume_layout() {
        let g = Geometry::new([2, 3, 4], [0.0; 3], [1.0; 3], identity()).unwrap();
        let v = Volume::new(g, (0..24).collect::<Vec<i32>>()).unwrap();
        assert_eq!(v.get(1, 2, 3), Some(&23));
        assert_eq!(v.get(1, 0, 1), Some(&7));
        assert_eq!(v.get(2, 0, 0), None);
        assert_eq!(v.slice(1).unwrap(), &[6, 7, 8, 9, 10, 11]);
        assert!(Volume::new(g, vec![0i32; 5]).is_err());
    }
}
