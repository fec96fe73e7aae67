//! The scan: one pass over both masks for the overlap counts and the bounding box of their
//! union ([`scan`], [`union_bbox`]), the crop to that box ([`Cropped`]) packed one bit per voxel
//! ([`Packed`]), and the surface elements: which corners of a corner row are surface points
//! ([`surface_bits`]), their neighbourhood codes ([`code_at`]) and the area of each code
//! ([`surfel_area_table`]).

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::metrics::overlap::OverlapCounts;
use crate::metrics::tables::NEIGHBOUR_CODE_TO_NORMALS;

/// Voxel bounding box `[lo, hi)` per axis, in (slice, row, column) order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BBox {
    /// First voxel index per axis.
    pub lo: [usize; 3],
    /// One past the last voxel index per axis.
    pub hi: [usize; 3],
}

impl BBox {
    /// Voxels per axis (slice, row, column).
    pub fn extent(&self) -> [usize; 3] {
        [
            self.hi[0] - self.lo[0],
            self.hi[1] - self.lo[1],
            self.hi[2] - self.lo[2],
        ]
    }
}

/// Voxel spacings the metrics accept, mm: 1 nm to 1 km.
pub(crate) const SPACING_RANGE_MM: (f64, f64) = (1e-6, 1e6);

/// Checks a mask pair against `size = [columns, rows, slices]` and the spacing.
pub(crate) fn check_inputs(
    reference: &[u8],
    test: &[u8],
    size: [usize; 3],
    spacing: [f64; 3],
) -> Result<()> {
    let n = size[0]
        .checked_mul(size[1])
        .and_then(|x| x.checked_mul(size[2]))
        .ok_or_else(|| Error::InvalidArgument(format!("mask grid {size:?} overflows")))?;
    for (name, m) in [("reference", reference), ("test", test)] {
        if m.len() != n {
            return Err(Error::InvalidArgument(format!(
                "{name} mask has {} voxels, grid {size:?} needs {n}",
                m.len()
            )));
        }
    }
    if spacing.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        return Err(Error::InvalidArgument(format!(
            "mask spacing {spacing:?} must be finite and positive"
        )));
    }
    // Squared distances over the whole grid must stay finite and far from underflow.
    if spacing
        .iter()
        .any(|s| !(SPACING_RANGE_MM.0..=SPACING_RANGE_MM.1).contains(s))
    {
        return Err(Error::InvalidArgument(format!(
            "mask spacing {spacing:?} mm is outside {:e}..{:e} mm",
            SPACING_RANGE_MM.0, SPACING_RANGE_MM.1
        )));
    }
    Ok(())
}

/// Bounding box of the voxels non-zero in `a` or `b` on a grid of `size = [columns, rows,
/// slices]`, or `None` when both are empty or either mask's length does not match the grid.
pub fn union_bbox(a: &[u8], b: &[u8], size: [usize; 3]) -> Option<BBox> {
    let n = size[0].checked_mul(size[1])?.checked_mul(size[2])?;
    if a.len() != n || b.len() != n {
        return None;
    }
    scan(a, b, size).1
}

/// Whether any byte is non-zero: an OR reduction over 256-byte blocks, which the compiler
/// vectorises, stopping at the first non-zero block.
#[inline]
fn any_set(bytes: &[u8]) -> bool {
    let mut blocks = bytes.chunks_exact(256);
    for b in &mut blocks {
        if b.iter().fold(0u8, |a, &v| a | v) != 0 {
            return true;
        }
    }
    blocks.remainder().iter().any(|&v| v != 0)
}

/// Non-zero counts of one row: (`a`, `b`, both), in `u32` lanes so the loop vectorises.
#[inline]
fn row_counts(ra: &[u8], rb: &[u8]) -> (u64, u64, u64) {
    let (mut ca, mut cb, mut cab) = (0u32, 0u32, 0u32);
    for (&x, &y) in ra.iter().zip(rb) {
        let (x, y) = (u32::from(x != 0), u32::from(y != 0));
        ca += x;
        cb += y;
        cab += x & y;
    }
    (u64::from(ca), u64::from(cb), u64::from(cab))
}

/// One pass over both masks: the overlap counts and the bounding box of their union (`None`
/// when both are empty). Empty rows cost one OR reduction each; only rows with voxels are
/// counted and searched. Inputs must have passed [`check_inputs`].
pub(crate) fn scan(a: &[u8], b: &[u8], size: [usize; 3]) -> (OverlapCounts, Option<BBox>) {
    let [ni, nj, nk] = size;
    let plane = ni * nj;
    if plane == 0 || nk == 0 {
        return (OverlapCounts::default(), None);
    }
    let merge_box = |x: Option<BBox>, y: Option<BBox>| match (x, y) {
        (Some(x), Some(y)) => Some(BBox {
            lo: [
                x.lo[0].min(y.lo[0]),
                x.lo[1].min(y.lo[1]),
                x.lo[2].min(y.lo[2]),
            ],
            hi: [
                x.hi[0].max(y.hi[0]),
                x.hi[1].max(y.hi[1]),
                x.hi[2].max(y.hi[2]),
            ],
        }),
        (x, None) => x,
        (None, y) => y,
    };
    a.par_chunks(plane)
        .zip(b.par_chunks(plane))
        .enumerate()
        .map(|(k, (sa, sb))| {
            let mut c = OverlapCounts::default();
            let mut bb: Option<BBox> = None;
            if !any_set(sa) && !any_set(sb) {
                return (c, bb);
            }
            for (j, (ra, rb)) in sa.chunks(ni).zip(sb.chunks(ni)).enumerate() {
                let (sa_, sb_) = (any_set(ra), any_set(rb));
                if !(sa_ || sb_) {
                    continue;
                }
                let (x, y, xy) = row_counts(ra, rb);
                c.reference += x;
                c.test += y;
                c.both += xy;
                let hit = |(x, y): (&u8, &u8)| (x | y) != 0;
                let Some(first) = ra.iter().zip(rb).position(hit) else {
                    continue;
                };
                let last = ra.iter().zip(rb).rposition(hit).unwrap_or(first);
                let b = bb.get_or_insert(BBox {
                    lo: [k, j, first],
                    hi: [k + 1, j + 1, last + 1],
                });
                b.lo[2] = b.lo[2].min(first);
                b.hi[2] = b.hi[2].max(last + 1);
                b.hi[1] = j + 1;
            }
            (c, bb)
        })
        .reduce(
            || (OverlapCounts::default(), None),
            |(c1, b1), (c2, b2)| {
                (
                    OverlapCounts {
                        reference: c1.reference + c2.reference,
                        test: c1.test + c2.test,
                        both: c1.both + c2.both,
                    },
                    merge_box(b1, b2),
                )
            },
        )
}

/// A mask seen through the crop: voxel coordinates relative to the bounding box.
pub(super) struct Cropped<'a> {
    mask: &'a [u8],
    /// Full grid columns and rows.
    ni: usize,
    nj: usize,
    bbox: BBox,
    /// Crop extent (slice, row, column).
    pub(super) ext: [usize; 3],
}

impl<'a> Cropped<'a> {
    /// `mask` on a grid of `size = [columns, rows, slices]`, cropped to `bbox`.
    pub(super) fn new(mask: &'a [u8], size: [usize; 3], bbox: BBox) -> Self {
        Cropped {
            mask,
            ni: size[0],
            nj: size[1],
            bbox,
            ext: bbox.extent(),
        }
    }

    /// Row `y` of slice `z` in crop coordinates (may be −1 or the extent: then `None`).
    pub(super) fn row(&self, z: isize, y: isize) -> Option<&'a [u8]> {
        let z = usize::try_from(z).ok().filter(|&z| z < self.ext[0])?;
        let y = usize::try_from(y).ok().filter(|&y| y < self.ext[1])?;
        let start =
            ((z + self.bbox.lo[0]) * self.nj + y + self.bbox.lo[1]) * self.ni + self.bbox.lo[2];
        self.mask.get(start..start + self.ext[2])
    }

    /// Neighbourhood code of corner (cz, cy, cx), DeepMind's bit order.
    #[cfg(test)]
    pub(super) fn code(&self, cz: usize, cy: usize, cx: usize) -> u8 {
        let mut code = 0u8;
        for a in 0..2usize {
            for b in 0..2usize {
                let Some(row) =
                    self.row(cz as isize + a as isize - 1, cy as isize + b as isize - 1)
                else {
                    continue;
                };
                for c in 0..2usize {
                    let x = (cx + c).wrapping_sub(1);
                    if row.get(x).is_some_and(|&v| v != 0) {
                        code |= 1 << (7 - (4 * a + 2 * b + c));
                    }
                }
            }
        }
        code
    }
}

/// Surfel area (mm²) per neighbourhood code for `spacing = [column, row, slice]`, as
/// DeepMind's `create_table_neighbour_code_to_surface_area` with spacing (slice, row, column).
pub fn surfel_area_table(spacing: [f64; 3]) -> [f64; 256] {
    let s = [spacing[2], spacing[1], spacing[0]];
    let mut t = [0.0; 256];
    for (area, normals) in t.iter_mut().zip(NEIGHBOUR_CODE_TO_NORMALS.iter()) {
        let mut sum = 0.0;
        for n in normals.iter() {
            let v = [n[0] * s[1] * s[2], n[1] * s[0] * s[2], n[2] * s[0] * s[1]];
            sum += (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
        }
        *area = sum;
    }
    t
}

/// A cropped mask packed one bit per voxel, built once per comparison: bit `x + 1` of a row
/// is voxel `x` of the crop row; bit 0 and the bits past the row are 0 (background), so the
/// two voxels `x − 1` and `x` around corner `x` are bits `x` and `x + 1`.
pub(super) struct Packed {
    words: Vec<u64>,
    /// Words per row: enough for bits `0..=ex + 1`.
    wpr: usize,
    /// Crop extent (slice, row, column).
    pub(super) ext: [usize; 3],
}

/// Bit `i` of the result is set when byte `i` of `v` is non-zero (SWAR: each byte's "non-zero"
/// lands in its top bit, then one multiplication gathers the eight top bits).
#[inline]
fn nonzero_bits(v: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let top = (((v & LOW7).wrapping_add(LOW7)) | v) & !LOW7;
    top.wrapping_mul(0x0002_0408_1020_4081) >> 56
}

impl Packed {
    /// Packs the crop of `m`, slices in parallel.
    pub(super) fn new(m: &Cropped<'_>) -> Self {
        let [ez, ey, ex] = m.ext;
        let wpr = (ex + 2).div_ceil(64);
        let mut words = vec![0u64; ez * ey * wpr];
        if wpr > 0 && ey > 0 {
            words
                .par_chunks_mut(ey * wpr)
                .enumerate()
                .for_each(|(z, slice)| {
                    for (y, dst) in slice.chunks_mut(wpr).enumerate() {
                        if let Some(src) = m.row(z as isize, y as isize) {
                            pack_row(src, dst);
                        }
                    }
                });
        }
        Packed {
            words,
            wpr,
            ext: m.ext,
        }
    }

    /// The reference and test masks of a comparison, each cropped to `bbox` (on a grid of
    /// `size = [columns, rows, slices]`) and packed, side by side.
    pub(super) fn pair(
        reference: &[u8],
        test: &[u8],
        size: [usize; 3],
        bbox: BBox,
    ) -> (Packed, Packed) {
        rayon::join(
            || Packed::new(&Cropped::new(reference, size, bbox)),
            || Packed::new(&Cropped::new(test, size, bbox)),
        )
    }

    /// Words per row.
    pub(super) fn words_per_row(&self) -> usize {
        self.wpr
    }

    /// Row `y` of slice `z` (may be −1 or the extent: then `None`).
    #[inline]
    pub(super) fn row(&self, z: isize, y: isize) -> Option<&[u64]> {
        let z = usize::try_from(z).ok().filter(|&z| z < self.ext[0])?;
        let y = usize::try_from(y).ok().filter(|&y| y < self.ext[1])?;
        let start = (z * self.ext[1] + y) * self.wpr;
        self.words.get(start..start + self.wpr)
    }
}

/// Packs one row of voxels into `dst` (zeroed, long enough): voxel `x` to bit `x + 1`.
fn pack_row(src: &[u8], dst: &mut [u64]) {
    let mut chunks = src.chunks_exact(8);
    for (i, c) in (&mut chunks).enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        let bits = nonzero_bits(u64::from_le_bytes(b));
        if bits == 0 {
            continue;
        }
        let p = 8 * i + 1;
        let (w, s) = (p / 64, p % 64);
        if let Some(d) = dst.get_mut(w) {
            *d |= bits << s;
        }
        if s > 56
            && let Some(d) = dst.get_mut(w + 1)
        {
            *d |= bits >> (64 - s);
        }
    }
    let base = src.len() - chunks.remainder().len();
    for (i, &v) in chunks.remainder().iter().enumerate() {
        if v != 0 {
            let p = base + i + 1;
            if let Some(d) = dst.get_mut(p / 64) {
                *d |= 1 << (p % 64);
            }
        }
    }
}

/// The four voxel rows around corner row (`z`, `y`): (z − 1, y − 1), (z − 1, y), (z, y − 1),
/// (z, y); `None` outside the crop.
#[inline]
pub(super) fn corner_rows(m: &Packed, z: usize, y: usize) -> [Option<&[u64]>; 4] {
    let (z, y) = (z as isize, y as isize);
    [
        m.row(z - 1, y - 1),
        m.row(z - 1, y),
        m.row(z, y - 1),
        m.row(z, y),
    ]
}

/// Marks the surface corners of corner row (`z`, `y`): bit `x` of `out` (one word per word of
/// a packed row) becomes 1 where the 2×2×2 neighbourhood of corner `x` is neither empty nor
/// full. Returns whether any corner of the row is a surface point.
pub(super) fn surface_bits(m: &Packed, z: usize, y: usize, out: &mut [u64]) -> bool {
    let rows = corner_rows(m, z, y);
    let all = rows.iter().all(Option::is_some);
    let mut any = 0u64;
    for (w, o) in out.iter_mut().enumerate() {
        let (mut or, mut and) = (0u64, u64::MAX);
        for r in rows.iter().flatten() {
            let p = r.get(w).copied().unwrap_or(0);
            let next = r.get(w + 1).copied().unwrap_or(0);
            // Bit x of `sh` is bit x + 1 of the row: voxel x next to voxel x − 1.
            let sh = (p >> 1) | (next << 63);
            or |= p | sh;
            and &= p & sh;
        }
        *o = if all { or & !and } else { or };
        any |= *o;
    }
    any != 0
}

/// Neighbourhood code (DeepMind's bit order: 128 for voxel (z−1, y−1, x−1) down to 1 for
/// (z, y, x)) of corner `x` given the four packed voxel rows around its corner row
/// ([`corner_rows`]).
#[inline]
pub(super) fn code_at(rows: &[Option<&[u64]>; 4], x: usize) -> u8 {
    // Bits x and x + 1 of a row are voxels x − 1 and x, which weigh 2 and 1 in the code.
    const SWAP: [u8; 4] = [0, 2, 1, 3];
    let (i, s) = (x / 64, x % 64);
    let mut code = 0u8;
    for (r, row) in rows.iter().enumerate() {
        let Some(row) = row else { continue };
        let lo = row.get(i).copied().unwrap_or(0) >> s;
        let hi = if s == 63 {
            row.get(i + 1).copied().unwrap_or(0) << 1
        } else {
            0
        };
        let pair = ((lo | hi) & 3) as usize;
        code |= SWAP.get(pair).copied().unwrap_or(0) << (6 - 2 * r);
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonzero_bits_marks_exactly_the_non_zero_bytes() {
        // Every 8-byte pattern over values that stress the SWAR carries.
        let vals = [0u8, 1, 0x7f, 0x80, 0xff];
        let mut pattern = [0usize; 8];
        loop {
            let bytes: [u8; 8] = std::array::from_fn(|i| vals[pattern[i]]);
            let want = bytes
                .iter()
                .enumerate()
                .fold(0u64, |a, (i, &b)| a | (u64::from(b != 0) << i));
            assert_eq!(nonzero_bits(u64::from_le_bytes(bytes)), want, "{bytes:?}");
            let Some(i) = pattern.iter().position(|&p| p + 1 < vals.len()) else {
                break;
            };
            pattern[i] += 1;
            pattern[..i].fill(0);
        }
    }

    #[test]
    fn packed_rows_hold_the_cropped_voxels_one_bit_further() {
        let vals = [0u8, 1, 0x7f, 0x80, 0xff, 2];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for ex in [1usize, 7, 8, 9, 55, 56, 57, 62, 63, 64, 65, 127, 130] {
            let size = [ex + 5, 3, 2];
            let m: Vec<u8> = (0..size[0] * size[1] * size[2])
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    vals[(seed >> 33) as usize % vals.len()]
                })
                .collect();
            let bbox = BBox {
                lo: [1, 1, 3],
                hi: [2, 3, 3 + ex],
            };
            let c = Cropped::new(&m, size, bbox);
            let p = Packed::new(&c);
            for y in 0..2isize {
                let bytes = c.row(0, y).unwrap();
                let bits = p.row(0, y).unwrap();
                for b in 0..bits.len() * 64 {
                    let want = b >= 1 && bytes.get(b - 1).is_some_and(|&v| v != 0);
                    assert_eq!((bits[b / 64] >> (b % 64)) & 1 == 1, want, "ex {ex} bit {b}");
                }
            }
            assert!(p.row(1, 0).is_none() && p.row(0, 2).is_none() && p.row(-1, 0).is_none());
        }
    }
}
