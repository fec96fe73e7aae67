//! The exact local search: a corner slice's pass-1 values (distances along the slice axis to
//! the other surface, [`ZCount`]) read as squared millimetres ([`ZPlane`]), and the search for
//! the nearest value around a surface point ([`ZPlane::nearest`]): square rings of single
//! values, then rings of blocks whose minimum bounds all their values ([`BlockMin`]), stopping
//! at the ring no value can beat.

/// Distance along the slice axis in corners, stored per corner of the crop: `u8` when the crop
/// has at most 254 corner slices (then a real count, at most 253, never reaches `u8::MAX`),
/// `u16` otherwise.
/// `INF` = no surface point of the other mask in that column.
pub(super) trait ZCount: Copy + Ord + Send + Sync + 'static {
    /// The count of a surface corner itself.
    const ZERO: Self;
    /// No surface point in the column.
    const INF: Self;
    /// One more slice; saturates at `INF`, which stays `INF`.
    fn inc(self) -> Self;
    /// The count as an index (of the squared-distance table).
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

/// Squared distance (mm²) along the slice axis for the counts `0..cz` (a lookup beyond, i.e.
/// `INF`, reads as `INFINITY`).
pub(super) fn z_table(sz: f64, cz: usize) -> Vec<f64> {
    (0..cz)
        .map(|d| {
            let dz = d as f64 * sz;
            dz * dz
        })
        .collect()
}

/// Square rings of single values searched around a point before the search moves to blocks.
const CELL_RINGS: usize = 1;

/// Side of the blocks (in corners) whose minimum value lets the search skip them whole.
const BLOCK_SIDE: usize = 4;

/// The pass-1 values of one corner slice, read as squared distances (mm²) along the slice axis.
pub(super) struct ZPlane<'a, Z: ZCount> {
    /// Pass-1 counts of the whole crop, `[cy][cz][cx]`.
    pub(super) zbuf: &'a [Z],
    /// Squared distance per count ([`z_table`]).
    pub(super) ztab: &'a [f64],
    /// The corner slice.
    pub(super) z: usize,
    /// Corner slices, rows and columns of the crop.
    pub(super) cz: usize,
    pub(super) cy: usize,
    pub(super) cx: usize,
    /// Squared column and row spacing, mm².
    pub(super) sx2: f64,
    pub(super) sy2: f64,
}

/// Per-block minima of one slice's values (squared mm), blocks of `BLOCK_SIDE`² corners,
/// row-major; filled on first use in a slice.
pub(super) struct BlockMin<Z> {
    /// Filled for the current slice.
    pub(super) ready: bool,
    nbx: usize,
    nby: usize,
    min: Vec<f64>,
    /// Element-wise minimum of one band of `BLOCK_SIDE` rows.
    band: Vec<Z>,
}

impl<Z> Default for BlockMin<Z> {
    fn default() -> Self {
        BlockMin {
            ready: false,
            nbx: 0,
            nby: 0,
            min: Vec::new(),
            band: Vec::new(),
        }
    }
}

impl<Z: ZCount> ZPlane<'_, Z> {
    /// Row `y`'s values from column `lo` to `hi` inclusive (`hi < cx`).
    #[inline]
    pub(super) fn row(&self, y: usize, lo: usize, hi: usize) -> &[Z] {
        let s = (y * self.cz + self.z) * self.cx;
        self.zbuf.get(s + lo..=s + hi).unwrap_or(&[])
    }

    /// Squared distance (mm²) of a pass-1 count; `INFINITY` for `Z::INF`.
    #[inline]
    pub(super) fn zsq(&self, d: Z) -> f64 {
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

    /// Block minima: per band of `BLOCK_SIDE` rows, the element-wise minimum count of its rows,
    /// then the minimum of each block's columns as a squared distance (counts and squared
    /// distances order alike).
    fn fill_blocks(&self, b: &mut BlockMin<Z>) {
        b.nbx = self.cx.div_ceil(BLOCK_SIDE);
        b.nby = self.cy.div_ceil(BLOCK_SIDE);
        b.min.clear();
        b.min.resize(b.nbx * b.nby, f64::INFINITY);
        for (by, dst) in b.min.chunks_mut(b.nbx).enumerate() {
            let y0 = by * BLOCK_SIDE;
            b.band.clear();
            b.band.extend_from_slice(self.row(y0, 0, self.cx - 1));
            for y in y0 + 1..(y0 + BLOCK_SIDE).min(self.cy) {
                for (m, &c) in b.band.iter_mut().zip(self.row(y, 0, self.cx - 1)) {
                    *m = (*m).min(c);
                }
            }
            for (m, chunk) in dst.iter_mut().zip(b.band.chunks(BLOCK_SIDE)) {
                if let Some(&c) = chunk.iter().min() {
                    *m = self.zsq(c);
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
    /// read few values. `bound` is strictly above the answer when finite (the caller's bound
    /// from a neighbouring point, [`INFINITY`](f64::INFINITY) when none): values and blocks
    /// that cannot beat it are skipped from the start, and the value that does is still found,
    /// so the answer is the same. Adds the values and blocks read to `spent` and gives up
    /// (`None`) once it passes `limit`.
    pub(super) fn nearest(
        &self,
        x: usize,
        y: usize,
        blocks: &mut BlockMin<Z>,
        limit: usize,
        spent: &mut usize,
        bound: f64,
    ) -> Option<f64> {
        let (cy, cx) = (self.cy, self.cx);
        if x >= cx || y >= cy {
            return None;
        }
        let mut best = self
            .row(y, x, x)
            .first()
            .map_or(f64::INFINITY, |&c| self.zsq(c))
            .min(bound);
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
        blocks: &BlockMin<Z>,
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
