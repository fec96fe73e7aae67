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

/// The product of `dims` (the elements of an array of that shape), `None` when it overflows.
pub(crate) fn checked_product(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |a, &b| a.checked_mul(b))
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

    /// Number of voxels (`usize::MAX` when the product overflows, which no allocation can hold).
    pub fn voxel_count(&self) -> usize {
        checked_product(&self.size).unwrap_or(usize::MAX)
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

/// A CT sample type: how a volume stores Hounsfield units. Implemented for `f32` (any
/// rescale) and `i16` (integral HU within ±32 767, the usual CT); sealed.
pub trait HuSample:
    Copy + Default + Send + Sync + PartialEq + std::fmt::Debug + 'static + sealed::Sealed
{
    /// The value in HU, exactly (every `i16` is an `f32`).
    fn hu(self) -> f32;
    /// `v` as the borrowed volume of its storage.
    fn volume_ref(v: &Volume<Self>) -> HuRef<'_>;
}

impl HuSample for f32 {
    #[inline(always)]
    fn hu(self) -> f32 {
        self
    }
    fn volume_ref(v: &Volume<f32>) -> HuRef<'_> {
        HuRef::F32(v)
    }
}

impl HuSample for i16 {
    #[inline(always)]
    fn hu(self) -> f32 {
        f32::from(self)
    }
    fn volume_ref(v: &Volume<i16>) -> HuRef<'_> {
        HuRef::I16(v)
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for i16 {}
}

/// A CT volume in Hounsfield units, stored as `i16` where every voxel's HU is an integer within
/// ±32 767 (the rescale of nearly every CT), as `f32` otherwise. Both hold the same values: an
/// `i16` voxel is its HU exactly. Half the memory of `f32` for the usual CT; the functions that
/// read HU ([`crate::infer::predict`], [`crate::body::body_mask`],
/// [`crate::plausibility::check_structures`]…) take either through [`HuRef`].
///
/// ```
/// use autocontour::volume::{Geometry, HuVolume, Volume};
/// let g = Geometry::new([2, 1, 1], [0.0; 3], [1.0; 3], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])?;
/// let ct = HuVolume::from(Volume::new(g, vec![-1000i16, 40])?);
/// assert_eq!(ct.get(1, 0, 0), Some(40.0));
/// assert_eq!(ct.to_f32().data(), &[-1000.0, 40.0]);
/// # Ok::<(), autocontour::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum HuVolume {
    /// Integral HU within the range of `i16`.
    I16(Volume<i16>),
    /// Any HU.
    F32(Volume<f32>),
}

/// A borrowed CT volume in HU, either storage: what the functions that read a CT take. Made
/// with `.into()` from `&HuVolume`, `&Volume<i16>` or `&Volume<f32>`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HuRef<'a> {
    /// Integral HU within the range of `i16`.
    I16(&'a Volume<i16>),
    /// Any HU.
    F32(&'a Volume<f32>),
}

/// Runs `$body` with `$v` bound to the `&Volume<T>` (`T: HuSample`) inside a [`HuRef`]: one
/// monomorphised copy per storage.
macro_rules! with_hu {
    ($r:expr, $v:ident => $body:expr) => {
        match $r {
            $crate::volume::HuRef::I16($v) => $body,
            $crate::volume::HuRef::F32($v) => $body,
        }
    };
}
pub(crate) use with_hu;

impl From<Volume<i16>> for HuVolume {
    fn from(v: Volume<i16>) -> Self {
        HuVolume::I16(v)
    }
}

impl From<Volume<f32>> for HuVolume {
    fn from(v: Volume<f32>) -> Self {
        HuVolume::F32(v)
    }
}

impl<'a> From<&'a HuVolume> for HuRef<'a> {
    fn from(v: &'a HuVolume) -> Self {
        v.as_ref()
    }
}

impl<'a, T: HuSample> From<&'a Volume<T>> for HuRef<'a> {
    fn from(v: &'a Volume<T>) -> Self {
        T::volume_ref(v)
    }
}

impl HuVolume {
    /// The borrowed form the HU readers take.
    pub fn as_ref(&self) -> HuRef<'_> {
        match self {
            HuVolume::I16(v) => HuRef::I16(v),
            HuVolume::F32(v) => HuRef::F32(v),
        }
    }

    /// The grid.
    pub fn geometry(&self) -> &Geometry {
        self.as_ref().geometry()
    }

    /// HU at (i, j, k), or `None` outside.
    pub fn get(&self, i: usize, j: usize, k: usize) -> Option<f32> {
        self.as_ref().get(i, j, k)
    }

    /// The values as `f32` (a copy; the same values either way).
    pub fn to_f32(&self) -> Volume<f32> {
        self.as_ref().to_f32()
    }

    /// Number of voxels.
    pub fn len(&self) -> usize {
        self.as_ref().len()
    }

    /// Whether the volume has no voxel (never, for a volume made by [`Volume::new`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of voxel data (2 or 4 per voxel).
    pub fn data_bytes(&self) -> usize {
        match self {
            HuVolume::I16(v) => v.data().len() * 2,
            HuVolume::F32(v) => v.data().len() * 4,
        }
    }
}

impl<'a> HuRef<'a> {
    /// The grid.
    pub fn geometry(self) -> &'a Geometry {
        with_hu!(self, v => v.geometry())
    }

    /// HU at (i, j, k), or `None` outside.
    pub fn get(self, i: usize, j: usize, k: usize) -> Option<f32> {
        with_hu!(self, v => v.get(i, j, k).map(|h| h.hu()))
    }

    /// HU of the voxel at flat index `n` (slice-major), or `None` past the end.
    pub fn at(self, n: usize) -> Option<f32> {
        with_hu!(self, v => v.data().get(n).map(|h| h.hu()))
    }

    /// Number of voxels.
    pub fn len(self) -> usize {
        with_hu!(self, v => v.data().len())
    }

    /// Whether the volume has no voxel.
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// The values as `f32` (a copy).
    pub fn to_f32(self) -> Volume<f32> {
        with_hu!(self, v => v.hu_f32())
    }
}

impl<T: HuSample> Volume<T> {
    /// The HU as `f32` (a copy, converted in parallel).
    pub fn hu_f32(&self) -> Volume<f32> {
        Volume {
            geometry: self.geometry,
            data: hu_to_f32(&self.data),
        }
    }
}

/// `data` converted to `f32`, in parallel.
fn hu_to_f32<T: HuSample>(data: &[T]) -> Vec<f32> {
    use rayon::prelude::*;
    let mut out = vec![0f32; data.len()];
    out.par_chunks_mut(1 << 16)
        .zip(data.par_chunks(1 << 16))
        .for_each(|(o, s)| {
            for (o, h) in o.iter_mut().zip(s) {
                *o = h.hu();
            }
        });
    out
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

    #[test]
    fn hu_volume_reads_the_same_values_either_way() {
        let g = Geometry::new([3, 2, 2], [0.0; 3], [1.0; 3], identity()).unwrap();
        let ints: Vec<i16> = vec![-32768, -1024, -1, 0, 1, 40, 1000, 3071, 32767, -2000, 7, 8];
        let a = HuVolume::from(Volume::new(g, ints.clone()).unwrap());
        let b =
            HuVolume::from(Volume::new(g, ints.iter().map(|&v| f32::from(v)).collect()).unwrap());
        assert_eq!(a.to_f32(), b.to_f32());
        assert_eq!(a.data_bytes() * 2, b.data_bytes());
        for (n, &v) in ints.iter().enumerate() {
            let (i, j, k) = (n % 3, (n / 3) % 2, n / 6);
            assert_eq!(a.get(i, j, k), Some(f32::from(v)));
            assert_eq!(a.get(i, j, k), b.get(i, j, k));
            assert_eq!(a.as_ref().at(n), b.as_ref().at(n));
        }
        assert_eq!(a.get(3, 0, 0), None);
    }
}
