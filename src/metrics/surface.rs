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
//! only. Both give the same exact distances. Surface corners are found on the fly from the
//! masks, row by row. Work is spread over the rayon thread pool.
//!
//! [`surface_distances`] returns every point, sorted. `compare_masks` instead streams the sums
//! it needs and finds the percentile with an area histogram, holding one direction's
//! distances (8 bytes) and neighbourhood codes (1 byte) per surface point at a time.

use rayon::prelude::*;
use serde::Serialize;

use super::distance::Envelope;
use super::tables::NEIGHBOUR_CODE_TO_NORMALS;
use crate::error::{Error, Result};

/// One surface element: its distance to the other surface and its area.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SurfacePoint {
    /// Distance to the nearest surface point of the other mask, mm (`INFINITY` when the other
    /// mask is empty).
    pub distance_mm: f64,
    /// Area of the surface element, mm².
    pub area_mm2: f64,
}

/// Surface points of both masks with their distances to the other surface, each list sorted by
/// (distance, area) as DeepMind's `compute_surface_distances` returns them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SurfaceDistances {
    /// Points of the reference surface, distances to the test surface.
    pub reference_to_test: Vec<SurfacePoint>,
    /// Points of the test surface, distances to the reference surface.
    pub test_to_reference: Vec<SurfacePoint>,
}

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
pub(crate) fn scan(
    a: &[u8],
    b: &[u8],
    size: [usize; 3],
) -> (super::overlap::OverlapCounts, Option<BBox>) {
    use super::overlap::OverlapCounts;
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
struct Cropped<'a> {
    mask: &'a [u8],
    /// Full grid columns and rows.
    ni: usize,
    nj: usize,
    bbox: BBox,
    /// Crop extent (slice, row, column).
    ext: [usize; 3],
}

impl<'a> Cropped<'a> {
    fn new(mask: &'a [u8], size: [usize; 3], bbox: BBox) -> Self {
        Cropped {
            mask,
            ni: size[0],
            nj: size[1],
            bbox,
            ext: bbox.extent(),
        }
    }

    /// Row `y` of slice `z` in crop coordinates (may be −1 or the extent: then `None`).
    fn row(&self, z: isize, y: isize) -> Option<&'a [u8]> {
        let z = usize::try_from(z).ok().filter(|&z| z < self.ext[0])?;
        let y = usize::try_from(y).ok().filter(|&y| y < self.ext[1])?;
        let start =
            ((z + self.bbox.lo[0]) * self.nj + y + self.bbox.lo[1]) * self.ni + self.bbox.lo[2];
        self.mask.get(start..start + self.ext[2])
    }

    /// Neighbourhood code of corner (cz, cy, cx), DeepMind's bit order.
    #[cfg(test)]
    fn code(&self, cz: usize, cy: usize, cx: usize) -> u8 {
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

/// Distance along the slice axis in corners, stored per corner of the crop: `u8` when the crop
/// has at most 254 corner slices (then a real count, at most 253, never reaches `u8::MAX`),
/// `u16` otherwise.
/// `INF` = no surface point of the other mask in that column.
trait ZCount: Copy + Ord + Send + Sync + 'static {
    const ZERO: Self;
    const INF: Self;
    /// One more slice; saturates at `INF`, which stays `INF`.
    fn inc(self) -> Self;
    fn count(self) -> usize;
}

impl ZCount for u8 {
    const ZERO: Self = 0;
    const INF: Self = u8::MAX;
    #[inline]
    fn inc(self) -> Self {
        self.saturating_add(1)
    }
    #[inline]
    fn count(self) -> usize {
        usize::from(self)
    }
}

impl ZCount for u16 {
    const ZERO: Self = 0;
    const INF: Self = u16::MAX;
    #[inline]
    fn inc(self) -> Self {
        self.saturating_add(1)
    }
    #[inline]
    fn count(self) -> usize {
        usize::from(self)
    }
}

/// Reusable row buffers for [`surface_row`].
struct RowScratch {
    or4: Vec<u8>,
    and4: Vec<u8>,
}

impl RowScratch {
    fn new(ex: usize) -> Self {
        RowScratch {
            or4: vec![0; ex],
            and4: vec![0; ex],
        }
    }
}

/// Marks the surface corners of corner row (`z`, `y`) of a cropped mask: `out[x]` (length
/// `ex + 1`) becomes 1 where the 2×2×2 neighbourhood of corner `x` is neither empty nor full,
/// else 0. Returns whether any corner of the row is a surface point.
fn surface_row(m: &Cropped<'_>, z: usize, y: usize, s: &mut RowScratch, out: &mut [u8]) -> bool {
    let (z, y) = (z as isize, y as isize);
    let rows = [
        m.row(z - 1, y - 1),
        m.row(z - 1, y),
        m.row(z, y - 1),
        m.row(z, y),
    ];
    s.or4.fill(0);
    s.and4.fill(1);
    for r in rows {
        match r {
            Some(r) => {
                for ((o, a), &v) in s.or4.iter_mut().zip(s.and4.iter_mut()).zip(r) {
                    let v = u8::from(v != 0);
                    *o |= v;
                    *a &= v;
                }
            }
            None => s.and4.fill(0),
        }
    }
    if !any_set(&s.or4) {
        out.fill(0);
        return false;
    }
    // Corner x sees voxels x − 1 and x of each row; outside the crop is background (so the
    // first and last corners are never inside all eight voxels).
    if let (Some(o), Some(&v)) = (out.first_mut(), s.or4.first()) {
        *o = v;
    }
    if let (Some(o), Some(&v)) = (out.last_mut(), s.or4.last()) {
        *o = v;
    }
    if let Some(inner) = out.get_mut(1..s.or4.len()) {
        for ((o, ow), aw) in inner
            .iter_mut()
            .zip(s.or4.windows(2))
            .zip(s.and4.windows(2))
        {
            *o = (ow[0] | ow[1]) & !(aw[0] & aw[1]) & 1;
        }
    }
    true
}

/// Neighbourhood code (DeepMind's bit order: 128 for voxel (z−1, y−1, x−1) down to 1 for
/// (z, y, x)) of corner `x` given the four voxel rows around corner row (z, y).
#[inline]
fn code_at(rows: &[Option<&[u8]>; 4], x: usize) -> u8 {
    let mut code = 0u8;
    for (r, row) in rows.iter().enumerate() {
        let Some(row) = row else { continue };
        let shift = 6 - 2 * r as u32;
        if x > 0 && row.get(x - 1).is_some_and(|&v| v != 0) {
            code |= 2 << shift;
        }
        if row.get(x).is_some_and(|&v| v != 0) {
            code |= 1 << shift;
        }
    }
    code
}

/// Surface points of one corner slice of the `from` mask with their distances, in column
/// order (rows ascending within a column).
#[derive(Default)]
struct SliceSurfels {
    /// Distance to the other surface, mm.
    distance: Vec<f64>,
    /// Neighbourhood code (area index).
    code: Vec<u8>,
}

/// Squared distance (mm²) along the slice axis for the counts `0..cz` (a lookup beyond, i.e.
/// `INF`, reads as `INFINITY`).
fn z_table(sz: f64, cz: usize) -> Vec<f64> {
    (0..cz)
        .map(|d| {
            let dz = d as f64 * sz;
            dz * dz
        })
        .collect()
}

/// Per-thread buffers of the per-slice passes.
struct SliceScratch {
    rows: RowScratch,
    srow: Vec<u8>,
    pts: Vec<(u32, u32, u8)>,
    /// Points the local search left: (column, row, index in the slice's output).
    fallback: Vec<(u32, u32, u32)>,
    bmin: BlockMin,
    env: Envelope,
    /// Pass-2 result of one slice, transposed: [column][row].
    ht: Vec<f64>,
    block: Vec<f64>,
}

/// Rows per block of the transposing row pass (8 `f64` = one cache line per column).
const BLOCK: usize = 8;

/// Local-search budget per slice, in values and blocks read per thousand corners of the slice
/// (20 000: twenty reads per corner). Past it the slice's remaining points take the row and
/// column passes (a lower envelope of parabolas per row: about 20 ns per corner on the
/// development VM, where a read costs a few ns), so a slice whose points are all far from the
/// other surface costs a bounded multiple of what it would without the local search. Tuned
/// with `cargo bench --bench metrics` on the RIDER pairs, where no slice runs out.
const LOCAL_BUDGET: usize = 20_000;

/// Square rings of single values searched around a point before the search moves to blocks.
const CELL_RINGS: usize = 1;

/// Side of the blocks (in corners) whose minimum value lets the search skip them whole.
const BLOCK_SIDE: usize = 4;

/// The pass-1 values of one corner slice, read as squared distances (mm²) along the slice axis.
struct ZPlane<'a, Z: ZCount> {
    zbuf: &'a [Z],
    ztab: &'a [f64],
    z: usize,
    cz: usize,
    cy: usize,
    cx: usize,
    sx2: f64,
    sy2: f64,
}

/// Per-block minima of one slice's values (squared mm), blocks of `BLOCK_SIDE`² corners,
/// row-major; filled on first use in a slice.
#[derive(Default)]
struct BlockMin {
    ready: bool,
    nbx: usize,
    nby: usize,
    min: Vec<f64>,
}

impl<Z: ZCount> ZPlane<'_, Z> {
    /// Row `y`'s values from column `lo` to `hi` inclusive (`hi < cx`).
    #[inline]
    fn row(&self, y: usize, lo: usize, hi: usize) -> &[Z] {
        let s = (y * self.cz + self.z) * self.cx;
        self.zbuf.get(s + lo..=s + hi).unwrap_or(&[])
    }

    /// Squared distance (mm²) of a pass-1 count; `INFINITY` for `Z::INF`.
    #[inline]
    fn zsq(&self, d: Z) -> f64 {
        self.ztab.get(d.count()).copied().unwrap_or(f64::INFINITY)
    }

    /// Lowers `best` to the smallest `zsq + sx²(x − x')² + ry2` over columns `lo..=hi` of row
    /// `yy`; returns the values read.
    #[inline]
    fn scan_row(&self, yy: usize, lo: usize, hi: usize, x: f64, ry2: f64, best: &mut f64) -> usize {
        let vals = self.row(yy, lo, hi);
        for (xx, &c) in (lo..).zip(vals) {
            if c != Z::INF {
                let d = xx as f64 - x;
                let v = self.zsq(c) + self.sx2 * d * d + ry2;
                if v < *best {
                    *best = v;
                }
            }
        }
        vals.len()
    }

    fn fill_blocks(&self, b: &mut BlockMin) {
        b.nbx = self.cx.div_ceil(BLOCK_SIDE);
        b.nby = self.cy.div_ceil(BLOCK_SIDE);
        b.min.clear();
        b.min.resize(b.nbx * b.nby, f64::INFINITY);
        for y in 0..self.cy {
            let Some(dst) = b.min.get_mut((y / BLOCK_SIDE) * b.nbx..) else {
                break;
            };
            for (m, chunk) in dst
                .iter_mut()
                .zip(self.row(y, 0, self.cx - 1).chunks(BLOCK_SIDE))
            {
                if let Some(&c) = chunk.iter().min() {
                    *m = m.min(self.zsq(c));
                }
            }
        }
        b.ready = true;
    }

    /// Exact squared distance (mm²) from corner (`x`, `y`) of this slice to the `to` surface:
    /// `min over (y', x') of zsq(y', x') + sy²(y − y')² + sx²(x − x')²`.
    ///
    /// First square rings of growing radius r around the point, until no value of ring r can
    /// beat the best found (`min(sx², sy²)·r² ≥ best`); past `CELL_RINGS` rings, rings of blocks
    /// whose minimum plus their distance to the point bounds all their values, so far points
    /// read few values. Adds the values and blocks read to `spent` and gives up (`None`) once
    /// it passes `limit`.
    fn nearest(
        &self,
        x: usize,
        y: usize,
        blocks: &mut BlockMin,
        limit: usize,
        spent: &mut usize,
    ) -> Option<f64> {
        let (cy, cx) = (self.cy, self.cx);
        if x >= cx || y >= cy {
            return None;
        }
        let mut best = self
            .row(y, x, x)
            .first()
            .map_or(f64::INFINITY, |&c| self.zsq(c));
        let min2 = self.sx2.min(self.sy2);
        let (xf, yf) = (x as f64, y as f64);
        let reach = cy.max(cx);
        for r in 1..=reach.min(CELL_RINGS) {
            let rf = r as f64;
            if min2 * rf * rf >= best {
                return Some(best);
            }
            // Rows y − r and y + r, columns within the bound that is left after the row step.
            let ry2 = self.sy2 * rf * rf;
            if ry2 < best {
                let w = (((best - ry2) / self.sx2).sqrt() as usize)
                    .saturating_add(1)
                    .min(r);
                let (lo, hi) = (x.saturating_sub(w), (x + w).min(cx - 1));
                for yy in [y.checked_sub(r), Some(y + r).filter(|&v| v < cy)]
                    .into_iter()
                    .flatten()
                {
                    *spent += self.scan_row(yy, lo, hi, xf, ry2, &mut best);
                }
            }
            // Columns x − r and x + r, rows strictly inside the ring.
            let rx2 = self.sx2 * rf * rf;
            if rx2 >= best {
                continue;
            }
            let w = (((best - rx2) / self.sy2).sqrt() as usize)
                .saturating_add(1)
                .min(r - 1);
            let (lo, hi) = (y.saturating_sub(w), (y + w).min(cy - 1));
            for xx in [x.checked_sub(r), Some(x + r).filter(|&v| v < cx)]
                .into_iter()
                .flatten()
            {
                for yy in lo..=hi {
                    let d = yy as f64 - yf;
                    let Some(&c) = self.row(yy, xx, xx).first() else {
                        continue;
                    };
                    *spent += 1;
                    if c != Z::INF {
                        let v = self.zsq(c) + rx2 + self.sy2 * d * d;
                        if v < best {
                            best = v;
                        }
                    }
                }
            }
        }
        if reach <= CELL_RINGS {
            return Some(best); // the rings covered the whole slice
        }
        let r0 = CELL_RINGS as f64;
        if min2 * (r0 + 1.0) * (r0 + 1.0) >= best {
            return Some(best);
        }
        // Rings of blocks around the point's block. Blocks inside the square already searched
        // are skipped; a block at ring rb ≥ 1 is at least (rb − 1)·BLOCK_SIDE + 1 corners away.
        if *spent > limit {
            return None;
        }
        if !blocks.ready {
            self.fill_blocks(blocks);
            *spent += blocks.min.len();
        }
        let (bx0, by0) = (x / BLOCK_SIDE, y / BLOCK_SIDE);
        let (nbx, nby) = (blocks.nbx, blocks.nby);
        for rb in 0..=nbx.max(nby) {
            if rb > 0 {
                let g = ((rb - 1) * BLOCK_SIDE + 1) as f64;
                if min2 * g * g >= best {
                    break;
                }
            }
            if *spent > limit {
                return None;
            }
            let (ylo, yhi) = (by0.saturating_sub(rb), (by0 + rb).min(nby - 1));
            let (xlo, xhi) = (bx0.saturating_sub(rb), (bx0 + rb).min(nbx - 1));
            for by in ylo..=yhi {
                if by + rb == by0 || by == by0 + rb {
                    for bx in xlo..=xhi {
                        self.search_block(by, bx, x, y, blocks, &mut best, spent);
                    }
                } else {
                    for bx in [bx0.checked_sub(rb), Some(bx0 + rb).filter(|&b| b < nbx)]
                        .into_iter()
                        .flatten()
                    {
                        self.search_block(by, bx, x, y, blocks, &mut best, spent);
                    }
                }
            }
        }
        Some(best)
    }

    /// Scans block (`by`, `bx`) for point (`x`, `y`) when its lower bound can beat `best` and
    /// it is not inside the square the single-value rings already searched.
    #[allow(clippy::too_many_arguments)]
    fn search_block(
        &self,
        by: usize,
        bx: usize,
        x: usize,
        y: usize,
        blocks: &BlockMin,
        best: &mut f64,
        spent: &mut usize,
    ) {
        *spent += 1;
        let Some(&m) = blocks.min.get(by * blocks.nbx + bx) else {
            return;
        };
        let (y0, x0) = (by * BLOCK_SIDE, bx * BLOCK_SIDE);
        let (y1, x1) = (
            (y0 + BLOCK_SIDE).min(self.cy) - 1,
            (x0 + BLOCK_SIDE).min(self.cx) - 1,
        );
        let inside = |lo: usize, hi: usize, c: usize| lo + CELL_RINGS >= c && hi <= c + CELL_RINGS;
        if inside(y0, y1, y) && inside(x0, x1, x) {
            return;
        }
        let gap = |lo: usize, hi: usize, c: usize| {
            if c < lo {
                (lo - c) as f64
            } else if c > hi {
                (c - hi) as f64
            } else {
                0.0
            }
        };
        let (gy, gx) = (gap(y0, y1, y), gap(x0, x1, x));
        if m + self.sx2 * gx * gx + self.sy2 * gy * gy >= *best {
            return;
        }
        let (xf, yf) = (x as f64, y as f64);
        for yy in y0..=y1 {
            let d = yy as f64 - yf;
            let ry2 = self.sy2 * d * d;
            if ry2 < *best {
                *spent += self.scan_row(yy, x0, x1, xf, ry2, best);
            }
        }
    }
}

/// Distances from the surface points of `from` to the nearest surface point of `to`.
/// `zbuf` holds one count per corner of the crop; one entry of the result per corner slice.
fn directed<Z: ZCount>(
    from: &Cropped<'_>,
    to: &Cropped<'_>,
    spacing: [f64; 3],
    zbuf: &mut [Z],
    local_budget: usize,
) -> Vec<SliceSurfels> {
    let [ez, ey, ex] = from.ext;
    let (cz, cy, cx) = (ez + 1, ey + 1, ex + 1);
    let (sx, sy, sz) = (spacing[0], spacing[1], spacing[2]);
    // Pass 1: distance in corners along the slice axis to the `to` surface, layout
    // [cy][cz][cx], parallel over rows; the surface rows of `to` are made on the fly.
    zbuf.par_chunks_mut(cz * cx)
        .enumerate()
        .for_each(|(y, col)| {
            let mut scratch = RowScratch::new(ex);
            let mut srow = vec![0u8; cx];
            for z in 0..cz {
                let hit = surface_row(to, z, y, &mut scratch, &mut srow);
                let (before, rest) = col.split_at_mut(z * cx);
                let Some(cur) = rest.get_mut(..cx) else { break };
                match before
                    .get(before.len().saturating_sub(cx)..)
                    .filter(|_| z > 0)
                {
                    Some(p) if hit => {
                        for ((c, &pv), &s) in cur.iter_mut().zip(p).zip(&srow) {
                            *c = if s != 0 { Z::ZERO } else { pv.inc() };
                        }
                    }
                    Some(p) => {
                        for (c, &pv) in cur.iter_mut().zip(p) {
                            *c = pv.inc();
                        }
                    }
                    None => {
                        for (c, &s) in cur.iter_mut().zip(&srow) {
                            *c = if s != 0 { Z::ZERO } else { Z::INF };
                        }
                    }
                }
            }
            for z in (0..cz.saturating_sub(1)).rev() {
                let (head, tail) = col.split_at_mut((z + 1) * cx);
                let (Some(cur), Some(next)) = (head.get_mut(z * cx..), tail.get(..cx)) else {
                    continue;
                };
                for (c, &n) in cur.iter_mut().zip(next) {
                    *c = (*c).min(n.inc());
                }
            }
        });
    let zbuf: &[Z] = zbuf;
    let ztab = z_table(sz, cz);
    let (sx2, sy2, inv_sx2) = (sx * sx, sy * sy, 1.0 / (sx * sx));
    // Per slice: the surface points of `from`, each settled by a local search in the slice's
    // pass-1 values where the budget allows; for the rest, pass 2 along the rows (contiguous in
    // `zbuf`), then pass 3 along the columns, only in columns holding such points and only at
    // them.
    (0..cz)
        .into_par_iter()
        .map_init(
            || SliceScratch {
                rows: RowScratch::new(ex),
                srow: vec![0u8; cx],
                pts: Vec::new(),
                fallback: Vec::new(),
                bmin: BlockMin::default(),
                env: Envelope::default(),
                ht: Vec::new(),
                block: Vec::new(),
            },
            |sc, z| {
                let SliceScratch {
                    rows: scratch,
                    srow,
                    pts,
                    fallback,
                    bmin,
                    env,
                    ht,
                    block,
                } = sc;
                // Surface points of this slice: (column, row, code), row-major.
                pts.clear();
                for y in 0..cy {
                    if !surface_row(from, z, y, scratch, srow) {
                        continue;
                    }
                    let (zi, yi) = (z as isize, y as isize);
                    let rows = [
                        from.row(zi - 1, yi - 1),
                        from.row(zi - 1, yi),
                        from.row(zi, yi - 1),
                        from.row(zi, yi),
                    ];
                    for (x0, chunk) in srow.chunks(8).enumerate() {
                        if chunk.iter().all(|&v| v == 0) {
                            continue;
                        }
                        for (dx, &v) in chunk.iter().enumerate() {
                            if v != 0 {
                                let x = x0 * 8 + dx;
                                pts.push((x as u32, y as u32, code_at(&rows, x)));
                            }
                        }
                    }
                }
                if pts.is_empty() {
                    return SliceSurfels::default();
                }
                // Local search first: most points lie close to the other surface, so a few
                // rings of pass-1 values around them settle their distance exactly. Points
                // left when the slice's budget runs out take the full row and column passes.
                let plane = ZPlane {
                    zbuf,
                    ztab: &ztab,
                    z,
                    cz,
                    cy,
                    cx,
                    sx2,
                    sy2,
                };
                let limit = local_budget.saturating_mul(cy * cx) / 1000;
                let mut spent = 0usize;
                bmin.ready = false;
                let mut out = SliceSurfels {
                    distance: Vec::with_capacity(pts.len()),
                    code: Vec::with_capacity(pts.len()),
                };
                fallback.clear();
                for &(x, y, code) in pts.iter() {
                    let d2 = if spent < limit {
                        plane.nearest(x as usize, y as usize, bmin, limit, &mut spent)
                    } else {
                        None
                    };
                    match d2 {
                        Some(d2) => out.distance.push(d2.sqrt()),
                        None => {
                            fallback.push((x, y, out.distance.len() as u32));
                            out.distance.push(f64::INFINITY);
                        }
                    }
                    out.code.push(code);
                }
                if fallback.is_empty() {
                    return out;
                }
                // Group the remaining points by column (counting sort keeps rows ascending).
                let mut start = vec![0usize; cx + 1];
                for &(x, _, _) in fallback.iter() {
                    if let Some(s) = start.get_mut(x as usize + 1) {
                        *s += 1;
                    }
                }
                for x in 0..cx {
                    let prev = start.get(x).copied().unwrap_or(0);
                    if let Some(s) = start.get_mut(x + 1) {
                        *s += prev;
                    }
                }
                let mut fill = start.clone();
                let mut by_col = vec![(0u32, 0u32); fallback.len()];
                for &(x, y, slot) in fallback.iter() {
                    if let Some(p) = fill.get_mut(x as usize) {
                        if let Some(entry) = by_col.get_mut(*p) {
                            *entry = (y, slot);
                        }
                        *p += 1;
                    }
                }
                // Pass 2: rows of this slice, h[y][x] = min_p zsq(p) + sx²(x − p)², stored
                // transposed (ht[x][y]) through blocks of 8 rows so that pass 3 reads columns.
                ht.clear();
                ht.resize(cy * cx, f64::INFINITY);
                block.resize(BLOCK * cx, f64::INFINITY);
                for y0 in (0..cy).step_by(BLOCK) {
                    let rows = BLOCK.min(cy - y0);
                    let mut any = false;
                    for (r, row) in block.chunks_mut(cx).take(rows).enumerate() {
                        env.clear();
                        for (x, &d) in plane.row(y0 + r, 0, cx - 1).iter().enumerate() {
                            if d != Z::INF {
                                env.push(x, plane.zsq(d), inv_sx2);
                            }
                        }
                        if env.is_empty() {
                            row.fill(f64::INFINITY);
                        } else {
                            env.eval_all(sx, row);
                            any = true;
                        }
                    }
                    if !any {
                        continue;
                    }
                    for (x, dst) in ht.chunks_mut(cy).enumerate() {
                        if let Some(dst) = dst.get_mut(y0..y0 + rows) {
                            for (r, d) in dst.iter_mut().enumerate() {
                                *d = block.get(r * cx + x).copied().unwrap_or(f64::INFINITY);
                            }
                        }
                    }
                }
                // Pass 3: along the columns, at the remaining points only. The value at the
                // point itself bounds the answer, so only rows within that bound can improve on
                // it: scan them when that is cheaper than the column's lower envelope.
                let mut put = |slot: u32, d2: f64| {
                    if let Some(d) = out.distance.get_mut(slot as usize) {
                        *d = d2.sqrt();
                    }
                };
                for (x, col) in ht.chunks(cy).enumerate() {
                    let (a, b) = (
                        start.get(x).copied().unwrap_or(0),
                        start.get(x + 1).copied().unwrap_or(0),
                    );
                    let Some(group) = by_col.get(a..b).filter(|g| !g.is_empty()) else {
                        continue;
                    };
                    let at = |y: usize| col.get(y).copied().unwrap_or(f64::INFINITY);
                    let mut cost = 0usize;
                    for &(y, _) in group {
                        let bound = at(y as usize);
                        cost = cost.saturating_add(if bound.is_finite() {
                            2 * ((bound / sy2).sqrt() as usize) + 3
                        } else {
                            usize::MAX
                        });
                    }
                    if cost < 2 * cy {
                        for &(y, slot) in group {
                            let y = y as usize;
                            let bound = at(y);
                            let w = ((bound / sy2).sqrt() as usize).saturating_add(1);
                            let lo = y.saturating_sub(w);
                            let mut best = bound;
                            for (yy, &v) in col.iter().enumerate().take(y + w + 1).skip(lo) {
                                let d = yy as f64 - y as f64;
                                let v = v + sy2 * d * d;
                                if v < best {
                                    best = v;
                                }
                            }
                            put(slot, best);
                        }
                    } else if env.build(col, sy) {
                        let mut slots = group.iter().map(|&(_, s)| s);
                        env.eval_sorted(sy, group.iter().map(|&(y, _)| y as usize), |_, d2| {
                            if let Some(slot) = slots.next() {
                                put(slot, d2);
                            }
                        });
                    }
                    // No finite value in the column: the points keep their INFINITY.
                }
                out
            },
        )
        .collect()
}

/// Runs [`directed`] with the narrowest slice-axis count type the crop allows.
fn directed_any(
    from: &Cropped<'_>,
    to: &Cropped<'_>,
    spacing: [f64; 3],
    zbuf: &mut ZBuf,
    local_budget: usize,
) -> Vec<SliceSurfels> {
    match zbuf {
        ZBuf::U8(b) => directed(from, to, spacing, b, local_budget),
        ZBuf::U16(b) => directed(from, to, spacing, b, local_budget),
    }
}

/// The slice-axis pass buffer, shared by both directions.
enum ZBuf {
    U8(Vec<u8>),
    U16(Vec<u16>),
}

/// Checks the crop and allocates the slice-axis buffer for it.
fn zbuf_for(bbox: BBox) -> Result<ZBuf> {
    let [ez, ey, ex] = bbox.extent();
    let cz = ez + 1;
    if cz >= usize::from(u16::MAX) {
        return Err(Error::InvalidArgument(format!(
            "surface distances: {ez} slices in the bounding box; at most {} supported",
            u16::MAX - 2
        )));
    }
    let n = cz * (ey + 1) * (ex + 1);
    Ok(if cz < usize::from(u8::MAX) {
        ZBuf::U8(vec![0; n])
    } else {
        ZBuf::U16(vec![0; n])
    })
}

/// Surface points of both masks and their distances to the other surface, as DeepMind's
/// `compute_surface_distances(mask_gt=reference, mask_pred=test, spacing_mm)` with the arrays
/// indexed (slice, row, column).
///
/// `reference` and `test` are slice-major masks (non-zero = inside) on a grid of
/// `size = [columns, rows, slices]` with `spacing = [column, row, slice]` mm. When both masks are
/// empty both lists are empty; when one is empty the other's points are all at `INFINITY`.
pub fn surface_distances(
    reference: &[u8],
    test: &[u8],
    size: [usize; 3],
    spacing: [f64; 3],
) -> Result<SurfaceDistances> {
    surface_distances_with(reference, test, size, spacing, LOCAL_BUDGET)
}

/// [`surface_distances`] with the local-search budget per slice in reads per thousand corners
/// (see [`LOCAL_BUDGET`]; 0 sends every point through the row and column passes).
fn surface_distances_with(
    reference: &[u8],
    test: &[u8],
    size: [usize; 3],
    spacing: [f64; 3],
    local_budget: usize,
) -> Result<SurfaceDistances> {
    check_inputs(reference, test, size, spacing)?;
    let Some(bbox) = union_bbox(reference, test, size) else {
        return Ok(SurfaceDistances::default());
    };
    let r = Cropped::new(reference, size, bbox);
    let t = Cropped::new(test, size, bbox);
    let mut zbuf = zbuf_for(bbox)?;
    let areas = surfel_area_table(spacing);
    let points = |slices: Vec<SliceSurfels>| {
        let mut v: Vec<SurfacePoint> = slices
            .iter()
            .flat_map(|s| s.distance.iter().zip(&s.code))
            .map(|(&d, &c)| SurfacePoint {
                distance_mm: d,
                area_mm2: areas[usize::from(c)],
            })
            .collect();
        v.par_sort_unstable_by(|a, b| {
            a.distance_mm
                .total_cmp(&b.distance_mm)
                .then(a.area_mm2.total_cmp(&b.area_mm2))
        });
        v
    };
    let reference_to_test = points(directed_any(&r, &t, spacing, &mut zbuf, local_budget));
    let test_to_reference = points(directed_any(&t, &r, spacing, &mut zbuf, local_budget));
    Ok(SurfaceDistances {
        reference_to_test,
        test_to_reference,
    })
}

/// The statistics of one direction that [`super::compare_masks`] reports, computed without
/// sorting or keeping a list of points.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct DirectedSummary {
    /// Number of surface points.
    pub points: usize,
    /// Total surface area, mm².
    pub area: f64,
    /// Σ distance · area.
    pub weighted_sum: f64,
    /// Largest distance (`INFINITY` when the other mask is empty, 0 without points).
    pub max: f64,
    /// Area of the points within the tolerance.
    pub within: f64,
    /// Area-weighted percentile (DeepMind's definition; `INFINITY` without points).
    pub percentile: f64,
}

/// Summaries of both directions (reference → test, test → reference) for `percent` and
/// `tolerance_mm`; `None` when both masks are empty. One direction's points are held at a time.
pub(crate) fn summaries_in(
    reference: &[u8],
    test: &[u8],
    size: [usize; 3],
    spacing: [f64; 3],
    bbox: Option<BBox>,
    percent: f64,
    tolerance_mm: f64,
) -> Result<Option<(DirectedSummary, DirectedSummary)>> {
    let Some(bbox) = bbox else {
        return Ok(None);
    };
    let r = Cropped::new(reference, size, bbox);
    let t = Cropped::new(test, size, bbox);
    let mut zbuf = zbuf_for(bbox)?;
    let areas = surfel_area_table(spacing);
    let rt = summarise(
        &directed_any(&r, &t, spacing, &mut zbuf, LOCAL_BUDGET),
        &areas,
        percent,
        tolerance_mm,
    );
    let tr = summarise(
        &directed_any(&t, &r, spacing, &mut zbuf, LOCAL_BUDGET),
        &areas,
        percent,
        tolerance_mm,
    );
    log::debug!(
        "surface distances: crop {:?}, {} reference and {} test surface points",
        bbox.extent(),
        rt.points,
        tr.points
    );
    Ok(Some((rt, tr)))
}

/// One direction's statistics from its points (per slice, in any order).
fn summarise(
    slices: &[SliceSurfels],
    areas: &[f64; 256],
    percent: f64,
    tolerance_mm: f64,
) -> DirectedSummary {
    let mut s = slices
        .par_iter()
        .map(|sl| {
            let mut s = DirectedSummary::default();
            for (&d, &c) in sl.distance.iter().zip(&sl.code) {
                let a = areas[usize::from(c)];
                s.points += 1;
                s.area += a;
                s.weighted_sum += d * a;
                s.max = s.max.max(d);
                if d <= tolerance_mm {
                    s.within += a;
                }
            }
            s
        })
        .reduce(DirectedSummary::default, |a, b| DirectedSummary {
            points: a.points + b.points,
            area: a.area + b.area,
            weighted_sum: a.weighted_sum + b.weighted_sum,
            max: a.max.max(b.max),
            within: a.within + b.within,
            percentile: 0.0,
        });
    s.percentile = weighted_percentile(slices, areas, percent, s.area, s.max, s.points);
    s
}

/// DeepMind's area-weighted percentile (the first distance, in ascending order, at which the
/// cumulative area fraction reaches `percent / 100`) without sorting every point: a histogram
/// of the areas over distance bins (about 8 points per bin, at most 65 536 bins) finds the bin
/// where the fraction is reached, and only that bin's points are sorted. Same value as [`directed_percentile`] on the sorted list, up to
/// the order of the floating-point sums.
fn weighted_percentile(
    slices: &[SliceSurfels],
    areas: &[f64; 256],
    percent: f64,
    total: f64,
    max: f64,
    points: usize,
) -> f64 {
    if points == 0 || !max.is_finite() {
        return f64::INFINITY;
    }
    if max <= 0.0 {
        return 0.0;
    }
    // About 8 points per bin (64 to 65 536 bins); one histogram per thread.
    let bins = (points / 8).clamp(64, 1 << 16);
    let scale = bins as f64 / max;
    let bin = |d: f64| ((d * scale) as usize).min(bins - 1);
    let per_thread = slices.len().div_ceil(rayon::current_num_threads().max(1));
    let hist = slices
        .par_iter()
        .with_min_len(per_thread.max(1))
        .fold(
            || vec![0.0f64; bins],
            |mut h, sl| {
                for (&d, &c) in sl.distance.iter().zip(&sl.code) {
                    if let Some(x) = h.get_mut(bin(d)) {
                        *x += areas[usize::from(c)];
                    }
                }
                h
            },
        )
        .reduce(
            || vec![0.0f64; bins],
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(&b) {
                    *x += y;
                }
                a
            },
        );
    let target = percent / 100.0;
    let mut cum = 0.0;
    let mut found = None;
    for (b, &a) in hist.iter().enumerate() {
        if a > 0.0 && (cum + a) / total >= target {
            found = Some(b);
            break;
        }
        cum += a;
    }
    let Some(b) = found else {
        return max;
    };
    let mut members: Vec<(f64, f64)> = slices
        .iter()
        .flat_map(|sl| sl.distance.iter().zip(&sl.code))
        .filter(|&(&d, _)| bin(d) == b)
        .map(|(&d, &c)| (d, areas[usize::from(c)]))
        .collect();
    members.sort_unstable_by(|x, y| x.0.total_cmp(&y.0).then(x.1.total_cmp(&y.1)));
    for &(d, a) in &members {
        cum += a;
        if cum / total >= target {
            return d;
        }
    }
    members.last().map_or(max, |m| m.0)
}

/// Area-weighted percentile of one direction as DeepMind's `compute_robust_hausdorff`: the
/// first distance whose cumulative area fraction reaches `percent / 100`. `INFINITY` when empty.
pub fn directed_percentile(points: &[SurfacePoint], percent: f64) -> f64 {
    let total: f64 = points.iter().map(|p| p.area_mm2).sum();
    let target = percent / 100.0;
    let mut cum = 0.0;
    for p in points {
        cum += p.area_mm2;
        if cum / total >= target {
            return p.distance_mm;
        }
    }
    points.last().map_or(f64::INFINITY, |p| p.distance_mm)
}

/// Area-weighted mean distance of one direction (`NaN`-free: `INFINITY` when empty).
pub fn directed_mean(points: &[SurfacePoint]) -> f64 {
    let (num, den) = points.iter().fold((0.0, 0.0), |(n, d), p| {
        (n + p.distance_mm * p.area_mm2, d + p.area_mm2)
    });
    if den > 0.0 { num / den } else { f64::INFINITY }
}

impl SurfaceDistances {
    /// True when both masks were empty.
    pub fn both_empty(&self) -> bool {
        self.reference_to_test.is_empty() && self.test_to_reference.is_empty()
    }

    /// Robust Hausdorff distance at `percent` (95 for HD95): the larger of the two directed
    /// area-weighted percentiles. 0 when both masks are empty, `INFINITY` when one is.
    pub fn robust_hausdorff(&self, percent: f64) -> f64 {
        if self.both_empty() {
            return 0.0;
        }
        directed_percentile(&self.reference_to_test, percent)
            .max(directed_percentile(&self.test_to_reference, percent))
    }

    /// Hausdorff distance: the largest surface-point distance in either direction. 0 when both
    /// masks are empty, `INFINITY` when one is.
    pub fn hausdorff(&self) -> f64 {
        if self.both_empty() {
            return 0.0;
        }
        let last = |v: &[SurfacePoint]| v.last().map_or(f64::INFINITY, |p| p.distance_mm);
        last(&self.reference_to_test).max(last(&self.test_to_reference))
    }

    /// Area-weighted mean distance (reference → test, test → reference), as DeepMind's
    /// `compute_average_surface_distance`. 0 when both masks are empty, `INFINITY` when one is.
    pub fn mean_distances(&self) -> (f64, f64) {
        if self.both_empty() {
            return (0.0, 0.0);
        }
        (
            directed_mean(&self.reference_to_test),
            directed_mean(&self.test_to_reference),
        )
    }

    /// Average symmetric surface distance: the area-weighted mean over the surface points of
    /// both masks, `(Σ_ref d·a + Σ_test d·a) / (Σ_ref a + Σ_test a)`. 0 when both masks are
    /// empty, `INFINITY` when one is.
    pub fn assd(&self) -> f64 {
        if self.both_empty() {
            return 0.0;
        }
        if self.reference_to_test.is_empty() || self.test_to_reference.is_empty() {
            return f64::INFINITY;
        }
        let all = self.reference_to_test.iter().chain(&self.test_to_reference);
        let (num, den) = all.fold((0.0, 0.0), |(n, d), p| {
            (n + p.distance_mm * p.area_mm2, d + p.area_mm2)
        });
        num / den
    }

    /// Fraction of each surface area within `tolerance_mm` of the other surface (reference,
    /// test), as DeepMind's `compute_surface_overlap_at_tolerance`. 1 when both masks are
    /// empty; 0 for the non-empty side when one is (the empty side reports 0 as well).
    pub fn surface_overlap(&self, tolerance_mm: f64) -> (f64, f64) {
        if self.both_empty() {
            return (1.0, 1.0);
        }
        let frac = |v: &[SurfacePoint]| {
            let total: f64 = v.iter().map(|p| p.area_mm2).sum();
            let within: f64 = v
                .iter()
                .filter(|p| p.distance_mm <= tolerance_mm)
                .map(|p| p.area_mm2)
                .sum();
            if total > 0.0 { within / total } else { 0.0 }
        };
        (frac(&self.reference_to_test), frac(&self.test_to_reference))
    }

    /// Surface Dice at `tolerance_mm`, as DeepMind's `compute_surface_dice_at_tolerance`:
    /// overlapping area of both surfaces over their total area. 1 when both masks are empty, 0
    /// when one is.
    pub fn surface_dice(&self, tolerance_mm: f64) -> f64 {
        if self.both_empty() {
            return 1.0;
        }
        let (mut within, mut total) = (0.0, 0.0);
        for p in self.reference_to_test.iter().chain(&self.test_to_reference) {
            total += p.area_mm2;
            if p.distance_mm <= tolerance_mm {
                within += p.area_mm2;
            }
        }
        if total > 0.0 { within / total } else { 0.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute force on the full (uncropped) corner grid, straight from the definitions.
    fn brute(a: &[u8], b: &[u8], size: [usize; 3], sp: [f64; 3]) -> SurfaceDistances {
        let [ni, nj, nk] = size;
        let full = BBox {
            lo: [0, 0, 0],
            hi: [nk, nj, ni],
        };
        let ca = Cropped::new(a, size, full);
        let cb = Cropped::new(b, size, full);
        let areas = surfel_area_table(sp);
        let pts = |c: &Cropped<'_>| {
            let mut v = Vec::new();
            for z in 0..=nk {
                for y in 0..=nj {
                    for x in 0..=ni {
                        let code = c.code(z, y, x);
                        if code != 0 && code != 255 {
                            v.push(([z, y, x], areas[usize::from(code)]));
                        }
                    }
                }
            }
            v
        };
        let (pa, pb) = (pts(&ca), pts(&cb));
        let dist = |from: &[([usize; 3], f64)], to: &[([usize; 3], f64)]| {
            let mut out: Vec<SurfacePoint> = from
                .iter()
                .map(|(p, area)| {
                    let d = to
                        .iter()
                        .map(|(q, _)| {
                            let dz = (p[0] as f64 - q[0] as f64) * sp[2];
                            let dy = (p[1] as f64 - q[1] as f64) * sp[1];
                            let dx = (p[2] as f64 - q[2] as f64) * sp[0];
                            (dz * dz + dy * dy + dx * dx).sqrt()
                        })
                        .fold(f64::INFINITY, f64::min);
                    SurfacePoint {
                        distance_mm: d,
                        area_mm2: *area,
                    }
                })
                .collect();
            out.sort_by(|a, b| {
                a.distance_mm
                    .total_cmp(&b.distance_mm)
                    .then(a.area_mm2.total_cmp(&b.area_mm2))
            });
            out
        };
        SurfaceDistances {
            reference_to_test: dist(&pa, &pb),
            test_to_reference: dist(&pb, &pa),
        }
    }

    fn ball(size: [usize; 3], c: [f64; 3], r: f64) -> Vec<u8> {
        let [ni, nj, nk] = size;
        let mut m = vec![0u8; ni * nj * nk];
        for k in 0..nk {
            for j in 0..nj {
                for i in 0..ni {
                    let d = [i as f64 - c[0], j as f64 - c[1], (k as f64 - c[2]) * 2.0];
                    if d[0] * d[0] + d[1] * d[1] + d[2] * d[2] <= r * r {
                        m[(k * nj + j) * ni + i] = 1;
                    }
                }
            }
        }
        m
    }

    #[test]
    fn cropped_lean_transform_equals_brute_force() {
        let size = [14, 12, 9];
        let sp = [0.6, 0.8, 1.5];
        let a = ball(size, [6.0, 5.0, 4.0], 4.2);
        let mut b = ball(size, [7.5, 6.0, 4.5], 3.6);
        b[(8 * 12 + 11) * 14 + 13] = 1; // an outlier at the far corner of the grid
        // Every point through the full passes (0), local search alone (MAX), and mixtures.
        assert_equals_brute_force(
            &a,
            &b,
            size,
            sp,
            &[0, 30, 200, 1000, LOCAL_BUDGET, usize::MAX],
            3.0,
        );
    }

    /// Far points: slices wider than the single-value rings, so the block search (and, with
    /// small budgets, the fallback passes) settles most distances. Compared with brute force.
    #[test]
    fn block_search_and_fallback_equal_brute_force() {
        let size = [46, 38, 6];
        let sp = [0.57, 0.83, 1.9];
        let a = ball(size, [14.0, 15.0, 2.5], 9.0);
        let mut b = ball(size, [16.0, 17.0, 2.0], 7.5);
        // Specks of `b` far from `a` in every direction, and a bar along the far edge.
        for (i, j, k) in [(44, 2, 0), (40, 35, 5), (2, 36, 3), (30, 5, 1), (45, 20, 4)] {
            b[(k * 38 + j) * 46 + i] = 1;
        }
        for i in 20..46 {
            b[(3 * 38 + 37) * 46 + i] = 1;
        }
        assert_equals_brute_force(
            &a,
            &b,
            size,
            sp,
            &[0, 500, 5000, LOCAL_BUDGET, usize::MAX],
            15.0,
        );
    }

    /// [`surface_distances_with`] at each local-search budget equals [`brute`] (distances to
    /// 1e-9 mm, areas to 1e-12 mm², sorted the same), and its Hausdorff exceeds `min_hd`.
    fn assert_equals_brute_force(
        a: &[u8],
        b: &[u8],
        size: [usize; 3],
        sp: [f64; 3],
        budgets: &[usize],
        min_hd: f64,
    ) {
        let want = brute(a, b, size, sp);
        for &budget in budgets {
            let got = surface_distances_with(a, b, size, sp, budget).unwrap();
            for (g, w) in [
                (&got.reference_to_test, &want.reference_to_test),
                (&got.test_to_reference, &want.test_to_reference),
            ] {
                assert_eq!(g.len(), w.len());
                for (g, w) in g.iter().zip(w) {
                    assert!(
                        (g.distance_mm - w.distance_mm).abs() < 1e-9,
                        "{budget}: {g:?} {w:?}"
                    );
                    assert!(
                        (g.area_mm2 - w.area_mm2).abs() < 1e-12,
                        "{budget}: {g:?} {w:?}"
                    );
                }
            }
            assert!(got.hausdorff() > min_hd, "{}", got.hausdorff());
        }
    }

    #[test]
    fn identical_masks_have_zero_distance_and_unit_surface_dice() {
        let size = [10, 10, 6];
        let a = ball(size, [5.0, 5.0, 3.0], 3.0);
        let s = surface_distances(&a, &a, size, [1.0, 1.0, 2.0]).unwrap();
        assert_eq!(s.hausdorff(), 0.0);
        assert_eq!(s.robust_hausdorff(95.0), 0.0);
        assert_eq!(s.assd(), 0.0);
        assert_eq!(s.surface_dice(0.0), 1.0);
    }

    #[test]
    fn single_voxel_surface_area_is_the_cube_surface_as_deepmind() {
        // DeepMind's marching-cubes surfels of one isolated voxel: 8 corner triangles of
        // area √3/8 each in unit spacing.
        let size = [3, 3, 3];
        let mut a = vec![0u8; 27];
        a[13] = 1;
        let s = surface_distances(&a, &a, size, [1.0; 3]).unwrap();
        let area: f64 = s.reference_to_test.iter().map(|p| p.area_mm2).sum();
        assert_eq!(s.reference_to_test.len(), 8);
        assert!((area - 8.0 * 3f64.sqrt() / 8.0).abs() < 1e-12, "{area}");
    }

    #[test]
    fn empty_masks_give_documented_values() {
        let size = [4, 4, 4];
        let e = vec![0u8; 64];
        let mut one = vec![0u8; 64];
        one[21] = 1;
        let both = surface_distances(&e, &e, size, [1.0; 3]).unwrap();
        assert!(both.both_empty());
        assert_eq!(both.hausdorff(), 0.0);
        assert_eq!(both.robust_hausdorff(95.0), 0.0);
        assert_eq!(both.assd(), 0.0);
        assert_eq!(both.surface_dice(1.0), 1.0);
        let half = surface_distances(&one, &e, size, [1.0; 3]).unwrap();
        assert!(half.hausdorff().is_infinite());
        assert!(half.robust_hausdorff(95.0).is_infinite());
        assert!(half.assd().is_infinite());
        assert_eq!(half.surface_dice(1.0), 0.0);
        let (m1, m2) = half.mean_distances();
        assert!(m1.is_infinite() && m2.is_infinite());
        assert!(surface_distances(&one, &e[..63], size, [1.0; 3]).is_err());
    }
}
