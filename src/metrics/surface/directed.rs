//! The directed distances: from every surface point of one mask to the other mask's surface,
//! one corner slice at a time ([`directed_any`]).
//!
//! 1. Pass 1 ([`slice_axis_pass`]): per corner of the crop, the distance in corners along the
//!    slice axis to the other surface, in a buffer shared by both directions ([`ZBuf`]).
//! 2. Per slice, its surface points ([`slice_points`]), each settled by the exact local search
//!    in the slice's pass-1 values while the slice's budget lasts ([`local_search`]).
//! 3. The points left take the separable passes ([`fallback_passes`]): grouped by column, the
//!    row pass (lower envelope of parabolas, stored transposed) and the column pass at those
//!    points only.

use rayon::prelude::*;

use super::scan::{BBox, Packed, code_at, corner_rows, surface_bits};
use super::search::{BlockMin, ZCount, ZPlane, z_table};
use crate::error::{Error, Result};
use crate::metrics::distance::Envelope;

/// Surface points of one corner slice of the `from` mask with their distances, in column
/// order (rows ascending within a column).
#[derive(Default)]
pub(super) struct SliceSurfels {
    /// Distance to the other surface, mm.
    pub(super) distance: Vec<f64>,
    /// Neighbourhood code (area index).
    pub(super) code: Vec<u8>,
}

/// Per-thread buffers of the per-slice passes.
struct SliceScratch<Z> {
    /// Surface bits of one corner row.
    sbits: Vec<u64>,
    /// Surface points of the slice: (column, row, neighbourhood code), row-major.
    pts: Vec<(u32, u32, u8)>,
    /// Points the local search left: (column, row, index in the slice's output).
    fallback: Vec<(u32, u32, u32)>,
    bmin: BlockMin<Z>,
    env: Envelope,
    /// Pass-2 result of one slice, transposed: [column][row].
    ht: Vec<f64>,
    block: Vec<f64>,
}

impl<Z> SliceScratch<Z> {
    /// Buffers for packed rows of `wpr` words.
    fn new(wpr: usize) -> Self {
        SliceScratch {
            sbits: vec![0u64; wpr],
            pts: Vec::new(),
            fallback: Vec::new(),
            bmin: BlockMin::default(),
            env: Envelope::default(),
            ht: Vec::new(),
            block: Vec::new(),
        }
    }
}

/// Rows per block of the transposing row pass (8 `f64` = one cache line per column).
const BLOCK: usize = 8;

/// Local-search budget per slice, in values and blocks read per thousand corners of the slice
/// (20 000: twenty reads per corner). Past it the slice's remaining points take the row and
/// column passes (a lower envelope of parabolas per row: about 20 ns per corner on the
/// development VM, where a read costs a few ns), so a slice whose points are all far from the
/// other surface costs a bounded multiple of what it would without the local search. Tuned
/// with `cargo bench --bench metrics` on the RIDER pairs, where no slice runs out.
pub(super) const LOCAL_BUDGET: usize = 20_000;

/// Distances from the surface points of `from` to the nearest surface point of `to`.
/// `zbuf` holds one count per corner of the crop; one entry of the result per corner slice.
fn directed<Z: ZCount>(
    from: &Packed,
    to: &Packed,
    spacing: [f64; 3],
    zbuf: &mut [Z],
    local_budget: usize,
) -> Vec<SliceSurfels> {
    let [ez, ey, ex] = from.ext;
    let (cz, cy, cx) = (ez + 1, ey + 1, ex + 1);
    let wpr = from.words_per_row();
    slice_axis_pass(to, zbuf, cz, cx);
    let zbuf: &[Z] = zbuf;
    let ztab = z_table(spacing[2], cz);
    let (sx2, sy2) = (spacing[0] * spacing[0], spacing[1] * spacing[1]);
    // Per slice: the surface points of `from`, each settled by a local search in the slice's
    // pass-1 values where the budget allows; for the rest, pass 2 along the rows (contiguous in
    // `zbuf`), then pass 3 along the columns, only in columns holding such points and only at
    // them.
    (0..cz)
        .into_par_iter()
        .map_init(
            || SliceScratch::new(wpr),
            |sc, z| {
                slice_points(from, z, cy, sc);
                if sc.pts.is_empty() {
                    return SliceSurfels::default();
                }
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
                let mut out = local_search(&plane, sc, local_budget);
                if !sc.fallback.is_empty() {
                    fallback_passes(&plane, [spacing[0], spacing[1]], sc, &mut out.distance);
                }
                out
            },
        )
        .collect()
}

/// Pass 1: distance in corners along the slice axis to the `to` surface, layout
/// `[cy][cz][cx]`, parallel over rows; the surface rows of `to` are made on the fly. A forward
/// sweep counts from the surface below, a backward sweep takes the nearer one above.
fn slice_axis_pass<Z: ZCount>(to: &Packed, zbuf: &mut [Z], cz: usize, cx: usize) {
    let wpr = to.words_per_row();
    zbuf.par_chunks_mut(cz * cx)
        .enumerate()
        .for_each(|(y, col)| {
            let mut sbits = vec![0u64; wpr];
            for z in 0..cz {
                let hit = surface_bits(to, z, y, &mut sbits);
                let (before, rest) = col.split_at_mut(z * cx);
                let Some(cur) = rest.get_mut(..cx) else { break };
                let prev = before
                    .get(before.len().saturating_sub(cx)..)
                    .filter(|_| z > 0);
                match prev {
                    Some(p) => {
                        for (c, &pv) in cur.iter_mut().zip(p) {
                            *c = pv.inc();
                        }
                    }
                    None => cur.fill(Z::INF),
                }
                if hit {
                    for_each_bit(&sbits, |x| {
                        if let Some(c) = cur.get_mut(x) {
                            *c = Z::ZERO;
                        }
                    });
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
}

/// Calls `f` with the index of every set bit of `words`, in ascending order.
#[inline]
fn for_each_bit(words: &[u64], mut f: impl FnMut(usize)) {
    for (i, &w) in words.iter().enumerate() {
        let mut w = w;
        while w != 0 {
            f(i * 64 + w.trailing_zeros() as usize);
            w &= w - 1;
        }
    }
}

/// The surface points of corner slice `z` of `from` (`cy` corner rows) into `sc.pts`:
/// (column, row, neighbourhood code), row-major.
fn slice_points<Z>(from: &Packed, z: usize, cy: usize, sc: &mut SliceScratch<Z>) {
    let SliceScratch { sbits, pts, .. } = sc;
    pts.clear();
    for y in 0..cy {
        if !surface_bits(from, z, y, sbits) {
            continue;
        }
        let rows = corner_rows(from, z, y);
        for_each_bit(sbits, |x| {
            pts.push((x as u32, y as u32, code_at(&rows, x)));
        });
    }
}

/// Local search first: most points lie close to the other surface, so a few rings of pass-1
/// values around them settle their distance exactly. The slice's points in `sc.pts` get their
/// distances in the result; those left when the slice's budget (`local_budget` reads per
/// thousand corners) runs out get `INFINITY` there and an entry in `sc.fallback`.
fn local_search<Z: ZCount>(
    plane: &ZPlane<'_, Z>,
    sc: &mut SliceScratch<Z>,
    local_budget: usize,
) -> SliceSurfels {
    let SliceScratch {
        pts,
        fallback,
        bmin,
        ..
    } = sc;
    let limit = local_budget.saturating_mul(plane.cy * plane.cx) / 1000;
    let mut spent = 0usize;
    bmin.ready = false;
    let mut out = SliceSurfels {
        distance: Vec::with_capacity(pts.len()),
        code: Vec::with_capacity(pts.len()),
    };
    fallback.clear();
    // The previous point's distance plus the step to this one bounds this one's (triangle
    // inequality); raised by 1e-9 relative, far above the rounding of the sum, so the bound is
    // strictly above the exact answer and the search still finds it.
    let mut prev: Option<(u32, u32, f64)> = None;
    for &(x, y, code) in pts.iter() {
        out.code.push(code);
        // On the other surface (most points): distance 0, one read.
        if plane.row(y as usize, x as usize, x as usize).first() == Some(&Z::ZERO) {
            spent += 1;
            prev = Some((x, y, 0.0));
            out.distance.push(0.0);
            continue;
        }
        let bound = match prev {
            Some((px, py, pd)) => {
                let (dx, dy) = (f64::from(x) - f64::from(px), f64::from(y) - f64::from(py));
                let b = pd + (plane.sx2 * dx * dx + plane.sy2 * dy * dy).sqrt();
                b * b * (1.0 + 1e-9)
            }
            _ => f64::INFINITY,
        };
        let d2 = if spent < limit {
            plane.nearest(x as usize, y as usize, bmin, limit, &mut spent, bound)
        } else {
            None
        };
        let d = d2.map(f64::sqrt);
        prev = d.map(|d| (x, y, d));
        if d.is_none() {
            fallback.push((x, y, out.distance.len() as u32));
        }
        out.distance.push(d.unwrap_or(f64::INFINITY));
    }
    out
}

/// The separable passes for the points in `sc.fallback`, written into `distance` (mm) at their
/// slots: grouped by column, pass 2 along the rows of the slice, pass 3 along the columns at
/// those points only. `spacing` is (column, row) mm.
fn fallback_passes<Z: ZCount>(
    plane: &ZPlane<'_, Z>,
    spacing: [f64; 2],
    sc: &mut SliceScratch<Z>,
    distance: &mut [f64],
) {
    let (start, by_col) = group_by_column(&sc.fallback, plane.cx);
    row_pass(plane, spacing[0], sc);
    column_pass(
        &sc.ht,
        plane.cy,
        spacing[1],
        &start,
        &by_col,
        &mut sc.env,
        distance,
    );
}

/// The points grouped by column (a counting sort, which keeps rows ascending): `start[x]..
/// start[x + 1]` of the second list are column `x`'s (row, slot) pairs.
fn group_by_column(fallback: &[(u32, u32, u32)], cx: usize) -> (Vec<usize>, Vec<(u32, u32)>) {
    crate::bucket::by_key(
        cx,
        fallback.iter().map(|&(x, y, slot)| (x as usize, (y, slot))),
    )
}

/// Pass 2: rows of this slice, h[y][x] = min_p zsq(p) + sx²(x − p)², stored transposed
/// (`sc.ht[x][y]`) through blocks of 8 rows so that pass 3 reads columns.
fn row_pass<Z: ZCount>(plane: &ZPlane<'_, Z>, sx: f64, sc: &mut SliceScratch<Z>) {
    let (cy, cx) = (plane.cy, plane.cx);
    let inv_sx2 = 1.0 / (sx * sx);
    let SliceScratch { env, ht, block, .. } = sc;
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
}

/// Pass 3: along the columns of `ht` (`cy` rows each), at the grouped points only. The value at
/// the point itself bounds the answer, so only rows within that bound can improve on it: scan
/// them when that is cheaper than the column's lower envelope. Points in a column without any
/// finite value keep their `INFINITY`.
fn column_pass(
    ht: &[f64],
    cy: usize,
    sy: f64,
    start: &[usize],
    by_col: &[(u32, u32)],
    env: &mut Envelope,
    distance: &mut [f64],
) {
    let sy2 = sy * sy;
    let mut put = |slot: u32, d2: f64| {
        if let Some(d) = distance.get_mut(slot as usize) {
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
                ((bound / sy2).sqrt() as usize)
                    .saturating_mul(2)
                    .saturating_add(3)
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
                for (yy, &v) in col
                    .iter()
                    .enumerate()
                    .take(y.saturating_add(w).saturating_add(1))
                    .skip(lo)
                {
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
    }
}

/// Runs [`directed`] with the narrowest slice-axis count type the crop allows.
pub(super) fn directed_any(
    from: &Packed,
    to: &Packed,
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
pub(super) enum ZBuf {
    /// At most 254 corner slices.
    U8(Vec<u8>),
    /// More.
    U16(Vec<u16>),
}

/// Checks the crop and allocates the slice-axis buffer for it.
pub(super) fn zbuf_for(bbox: BBox) -> Result<ZBuf> {
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
