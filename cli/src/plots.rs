//! PNG plots of an evaluation study, drawn with `plotters` into an RGB buffer and written with
//! the `png` crate (no system fonts or image libraries: text uses the DejaVu Sans font embedded
//! in the library, `cli/src/fonts/`, licence beside it).
//!
//! * [`write_bland_altman`]: differences (test − reference) against means of paired measures
//!   (volumes, or any other), with the bias and the ±1.96 SD limits of agreement
//!   ([`super::study::bland_altman`]).
//! * [`write_box_plot`]: one box per structure and group (e.g. `test` and `observer`) of a metric
//!   across cases; box statistics from `autocontour::metrics::study::box_stats` (quartiles as `numpy.percentile`'s default
//!   linear interpolation, Tukey whiskers at the most extreme values within 1.5 IQR of the box,
//!   as matplotlib's `boxplot`; values beyond are drawn as outliers).
//! * [`write_overlay`]: one axial CT slice (thorax window), whole or zoomed to the contours
//!   ([`OverlayView`]), with the reference and test outlines in two colours and a legend;
//!   [`worst_slice`] picks the slice where the masks disagree most.
//!
//! Plot sizes are fixed: [`PLOT_SIZE`] for the charts; the overlay is the slice (or the zoomed
//! part, longer side [`ZOOM_SIDE`]) at square display pixels plus a legend band of
//! [`LEGEND_HEIGHT`] pixels.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use autocontour::metrics::study::{BoxStats, bland_altman, box_stats};
use autocontour::volume::HuRef;
use autocontour::{Error, Result};

/// Width and height of the Bland-Altman and box plots, pixels.
pub const PLOT_SIZE: (u32, u32) = (900, 600);
/// Height of the legend band under the overlay image, pixels.
pub const LEGEND_HEIGHT: u32 = 80;

static FONT: &[u8] = include_bytes!("fonts/DejaVuSans.ttf");
static REGISTER: Once = Once::new();
const FAMILY: &str = "sans-serif";

/// Registers the embedded font with plotters (once per process).
fn fonts() {
    REGISTER.call_once(|| {
        if plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_err() {
            log::warn!("plots: the embedded font could not be loaded; text will be missing");
        }
    });
}

/// Colours for structures or groups, in order.
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// A plotting error as an I/O error on the file being drawn.
fn plot_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::io(
        path,
        std::io::Error::other(format!("drawing the plot: {e}")),
    )
}

/// Encodes an RGB buffer as PNG at `path` (written to a temporary file and renamed).
fn write_png(path: &Path, rgb: &[u8], w: u32, h: u32) -> Result<()> {
    autocontour::io::write_atomically(path, |f| {
        let mut enc = png::Encoder::new(std::io::BufWriter::new(f), w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().map_err(std::io::Error::other)?;
        writer
            .write_image_data(rgb)
            .map_err(std::io::Error::other)?;
        writer.finish().map_err(std::io::Error::other)
    })
}

/// Draws with `draw` on a white canvas of `size` and writes it to `path`.
fn render(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> Result<()>,
) -> Result<()> {
    fonts();
    let mut buf = vec![255u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        draw(&root)?;
        root.present().map_err(|e| plot_err(path, e))?;
    }
    write_png(path, &buf, size.0, size.1)
}

/// One box of [`write_box_plot`]: a structure, a group within it and the values.
#[derive(Debug, Clone)]
pub struct BoxSeries {
    /// Category on the x axis (the structure).
    pub structure: String,
    /// Group within the category (e.g. `test`, `observer`), one colour each.
    pub group: String,
    /// The values (non-finite ones are left out and counted in the caption).
    pub values: Vec<f64>,
}

/// Writes box plots of `series` (one box per structure and group) to `path` as a
/// [`PLOT_SIZE`] PNG with `title` and the y axis labelled `y_label`.
pub fn write_box_plot(path: &Path, title: &str, y_label: &str, series: &[BoxSeries]) -> Result<()> {
    let mut structures: Vec<&str> = Vec::new();
    let mut groups: Vec<&str> = Vec::new();
    for s in series {
        if !structures.contains(&s.structure.as_str()) {
            structures.push(&s.structure);
        }
        if !groups.contains(&s.group.as_str()) {
            groups.push(&s.group);
        }
    }
    let stats: Vec<(usize, usize, BoxStats)> = series
        .iter()
        .filter_map(|s| {
            let i = structures.iter().position(|&x| x == s.structure)?;
            let g = groups.iter().position(|&x| x == s.group)?;
            Some((i, g, box_stats(&s.values)?))
        })
        .collect();
    let excluded: usize = series
        .iter()
        .map(|s| s.values.iter().filter(|v| !v.is_finite()).count())
        .sum();
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for (_, _, b) in &stats {
        for v in b
            .outliers
            .iter()
            .chain([&b.lower_whisker, &b.upper_whisker])
        {
            lo = lo.min(*v);
            hi = hi.max(*v);
        }
    }
    if !(lo.is_finite() && hi.is_finite()) {
        (lo, hi) = (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(1e-3 * hi.abs().max(1.0));
    let (lo, hi) = (lo - pad, hi + pad);
    let caption = if excluded > 0 {
        format!("{title} ({excluded} non-finite values left out)")
    } else {
        title.to_string()
    };
    let n = structures.len().max(1);
    let ng = groups.len().max(1);
    render(path, PLOT_SIZE, |root| {
        let e = |x| plot_err(path, x);
        root.fill(&WHITE).map_err(e)?;
        let mut chart = ChartBuilder::on(root)
            .caption(&caption, (FAMILY, 22))
            .margin(16)
            .x_label_area_size(70)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), lo..hi)
            .map_err(e)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .disable_x_axis()
            .y_desc(y_label)
            .label_style((FAMILY, 15))
            .draw()
            .map_err(e)?;
        let width = 0.7 / ng as f64;
        for (i, g, b) in &stats {
            let c = colour(*g);
            let x = *i as f64 - 0.35 + width * (*g as f64 + 0.5);
            let (x0, x1) = (x - width * 0.4, x + width * 0.4);
            let area = chart.plotting_area();
            area.draw(&Rectangle::new(
                [(x0, b.q1), (x1, b.q3)],
                c.mix(0.25).filled(),
            ))
            .map_err(e)?;
            area.draw(&Rectangle::new([(x0, b.q1), (x1, b.q3)], c.stroke_width(2)))
                .map_err(e)?;
            area.draw(&PathElement::new(
                vec![(x0, b.median), (x1, b.median)],
                BLACK.stroke_width(2),
            ))
            .map_err(e)?;
            for (from, to) in [(b.q1, b.lower_whisker), (b.q3, b.upper_whisker)] {
                area.draw(&PathElement::new(
                    vec![(x, from), (x, to)],
                    c.stroke_width(1),
                ))
                .map_err(e)?;
                area.draw(&PathElement::new(
                    vec![(x - width * 0.2, to), (x + width * 0.2, to)],
                    c.stroke_width(1),
                ))
                .map_err(e)?;
            }
            for &o in &b.outliers {
                area.draw(&Circle::new((x, o), 3, c.stroke_width(1)))
                    .map_err(e)?;
            }
        }
        // Structure names under the axis, group legend at the top right.
        let label = (FAMILY, 15).into_font().color(&BLACK);
        for (i, s) in structures.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(i as f64, lo));
            let text = s.to_string();
            let half = (text.chars().count() as i32 * 4).min(60);
            root.draw(&Text::new(text, (px - half, py + 10), label.clone()))
                .map_err(e)?;
        }
        if ng > 1 {
            let (px, py) = chart.backend_coord(&(n as f64 - 0.5, hi));
            for (g, name) in groups.iter().enumerate() {
                let y = py + 8 + 22 * g as i32;
                root.draw(&Rectangle::new(
                    [(px - 150, y), (px - 136, y + 14)],
                    colour(g).filled(),
                ))
                .map_err(e)?;
                root.draw(&Text::new(name.to_string(), (px - 130, y), label.clone()))
                    .map_err(e)?;
            }
        }
        Ok(())
    })
}

/// One pair of [`write_bland_altman`]: a label (colour group, e.g. the structure) and the
/// reference and test measures.
#[derive(Debug, Clone)]
pub struct Pair {
    /// Group of the point (one colour and legend entry each).
    pub label: String,
    /// Reference measure.
    pub reference: f64,
    /// Test measure.
    pub test: f64,
}

/// Writes a Bland-Altman plot of `pairs` to `path` as a [`PLOT_SIZE`] PNG: test − reference
/// against their mean, in `unit`, with the bias and ±1.96 SD limits of agreement when there are
/// at least two finite pairs. Returns those statistics (`None` with fewer pairs).
pub fn write_bland_altman(
    path: &Path,
    title: &str,
    unit: &str,
    pairs: &[Pair],
) -> Result<Option<autocontour::metrics::study::BlandAltman>> {
    let pairs: Vec<&Pair> = pairs
        .iter()
        .filter(|p| p.reference.is_finite() && p.test.is_finite())
        .collect();
    let tests: Vec<f64> = pairs.iter().map(|p| p.test).collect();
    let refs: Vec<f64> = pairs.iter().map(|p| p.reference).collect();
    let ba = bland_altman(&tests, &refs).ok();
    let pts: Vec<(f64, f64)> = pairs
        .iter()
        .map(|p| ((p.test + p.reference) / 2.0, p.test - p.reference))
        .collect();
    let mut labels: Vec<&str> = Vec::new();
    for p in &pairs {
        if !labels.contains(&p.label.as_str()) {
            labels.push(&p.label);
        }
    }
    let (mut x0, mut x1) = (f64::INFINITY, f64::NEG_INFINITY);
    let (mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in &pts {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if let Some(b) = &ba {
        (y0, y1) = (y0.min(b.lower_loa), y1.max(b.upper_loa));
    }
    if !(x0.is_finite() && x1.is_finite()) {
        (x0, x1, y0, y1) = (0.0, 1.0, -1.0, 1.0);
    }
    y0 = y0.min(0.0);
    y1 = y1.max(0.0);
    let px = ((x1 - x0) * 0.08).max(1e-3 * x1.abs().max(1.0));
    let py = ((y1 - y0) * 0.12).max(1e-3 * y1.abs().max(1.0));
    let (x0, x1, y0, y1) = (x0 - px, x1 + px, y0 - py, y1 + py);
    let caption = match &ba {
        Some(b) => format!(
            "{title}: bias {:.3}, limits {:.3} to {:.3} {unit} (n = {})",
            b.bias, b.lower_loa, b.upper_loa, b.n
        ),
        None => format!("{title} (n = {}: no limits of agreement)", pts.len()),
    };
    render(path, PLOT_SIZE, |root| {
        let e = |x| plot_err(path, x);
        root.fill(&WHITE).map_err(e)?;
        let mut chart = ChartBuilder::on(root)
            .caption(&caption, (FAMILY, 20))
            .margin(16)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc(format!("mean of test and reference ({unit})"))
            .y_desc(format!("test − reference ({unit})"))
            .label_style((FAMILY, 15))
            .draw()
            .map_err(e)?;
        if let Some(b) = &ba {
            let blue = RGBColor(31, 119, 180);
            chart
                .draw_series(LineSeries::new(
                    vec![(x0, b.bias), (x1, b.bias)],
                    blue.stroke_width(2),
                ))
                .map_err(e)?
                .label(format!("bias {:.3}", b.bias))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], blue));
            for (v, name) in [(b.upper_loa, "+1.96 SD"), (b.lower_loa, "−1.96 SD")] {
                chart
                    .draw_series(DashedLineSeries::new(
                        vec![(x0, v), (x1, v)],
                        8,
                        6,
                        RED.stroke_width(1),
                    ))
                    .map_err(e)?
                    .label(format!("{name} {v:.3}"))
                    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RED));
            }
        }
        for (g, name) in labels.iter().enumerate() {
            let c = colour(g);
            chart
                .draw_series(
                    pairs
                        .iter()
                        .zip(&pts)
                        .filter(|(p, _)| p.label == *name)
                        .map(|(_, &xy)| Circle::new(xy, 5, c.filled())),
                )
                .map_err(e)?
                .label(name.to_string())
                .legend(move |(x, y)| Circle::new((x + 9, y), 5, c.filled()));
        }
        chart
            .configure_series_labels()
            .label_font((FAMILY, 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(e)?;
        Ok(())
    })?;
    Ok(ba)
}

/// Slice (index along the slice axis) where `reference` and `test` (slice-major masks on a grid
/// of `size = [columns, rows, slices]`) differ in the most voxels; `None` when they agree
/// everywhere or the sizes do not match.
pub fn worst_slice(reference: &[u8], test: &[u8], size: [usize; 3]) -> Option<usize> {
    let plane = size[0].checked_mul(size[1])?;
    if plane == 0 || reference.len() != test.len() || reference.len() != plane * size[2] {
        return None;
    }
    let (k, n) = reference
        .chunks(plane)
        .zip(test.chunks(plane))
        .map(|(a, b)| {
            a.iter()
                .zip(b)
                .filter(|(x, y)| (**x != 0) != (**y != 0))
                .count()
        })
        .enumerate()
        .max_by_key(|&(k, n)| (n, std::cmp::Reverse(k)))?;
    (n > 0).then_some(k)
}

/// What [`write_overlay`] writes in its legend.
#[derive(Debug, Clone)]
pub struct OverlayLabels {
    /// First legend line (e.g. structure, slice and Dice).
    pub title: String,
    /// Name of the reference contour (green).
    pub reference: String,
    /// Name of the test contour (magenta).
    pub test: String,
}

/// Reference and test outline colours of [`write_overlay`].
const REF_COLOUR: [u8; 3] = [40, 220, 60];
const TEST_COLOUR: [u8; 3] = [255, 60, 200];

/// Which part of the slice [`write_overlay`] draws.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OverlayView {
    /// The whole slice, at square display pixels of the finer in-plane spacing (one pixel per
    /// voxel along that axis).
    WholeSlice,
    /// The bounding box of both outlines on the slice, widened by `margin_mm` on every side
    /// and to at least [`ZOOM_MIN_MM`] across (within the slice), scaled up so that its longer
    /// side is [`ZOOM_SIDE`] pixels (never below one pixel per voxel). Falls back to the whole
    /// slice when neither mask has a voxel there.
    Contours {
        /// Margin around the outlines, mm.
        margin_mm: f64,
    },
}

/// Smallest width and height of a [`OverlayView::Contours`] view, mm.
pub const ZOOM_MIN_MM: f64 = 50.0;
/// Longer side of a [`OverlayView::Contours`] view, pixels.
pub const ZOOM_SIDE: usize = 640;

/// The voxel window `[i0, i1) × [j0, j1)` of slice `slice` that `view` shows.
fn view_window(
    view: OverlayView,
    masks: [&[u8]; 2],
    size: [usize; 3],
    spacing: [f64; 3],
    slice: usize,
) -> [usize; 4] {
    let [ni, nj, _] = size;
    let whole = [0, ni, 0, nj];
    let OverlayView::Contours { margin_mm } = view else {
        return whole;
    };
    let plane = ni * nj;
    let [a, b] = masks.map(|m| m.get(slice * plane..(slice + 1) * plane).unwrap_or(&[]));
    if a.len() != plane || b.len() != plane {
        return whole;
    }
    let Some(bb) = autocontour::metrics::surface::union_bbox(a, b, [ni, nj, 1]) else {
        return whole;
    };
    // BBox axes are (slice, row, column).
    let [i0, i1, j0, j1] = [bb.lo[2], bb.hi[2], bb.lo[1], bb.hi[1]];
    // Widen one axis by the margin and to the minimum size, centred, kept inside the slice.
    let widen = |lo: usize, hi: usize, n: usize, sp: f64| -> (usize, usize) {
        let margin = (margin_mm.max(0.0) / sp).ceil() as usize;
        let (mut lo, mut hi) = (lo.saturating_sub(margin), (hi + margin).min(n));
        let want = ((ZOOM_MIN_MM / sp).ceil() as usize).min(n);
        if hi - lo < want {
            let grow = want - (hi - lo);
            lo = lo.saturating_sub(grow / 2 + grow % 2);
            hi = (lo + want).min(n);
            lo = hi.saturating_sub(want);
        }
        (lo, hi)
    };
    let (i0, i1) = widen(i0, i1, ni, spacing[0]);
    let (j0, j1) = widen(j0, j1, nj, spacing[1]);
    [i0, i1, j0, j1]
}

/// Writes axial slice `slice` of `ct` (thorax window, level −300, width 1600) with the outlines
/// of the `reference` (green) and `test` (magenta) masks, both slice-major on the CT grid, to
/// `path` as a PNG: the part of the slice that `view` chooses, drawn as stored (columns to the
/// right, rows down) at square display pixels, with a legend band of [`LEGEND_HEIGHT`] pixels
/// under it. Returns the image size.
pub fn write_overlay<'a>(
    path: &Path,
    ct: impl Into<HuRef<'a>>,
    reference: &[u8],
    test: &[u8],
    slice: usize,
    view: OverlayView,
    labels: &OverlayLabels,
) -> Result<(u32, u32)> {
    let ct = ct.into();
    let g = ct.geometry();
    let [ni, nj, nk] = g.size;
    let plane = ni * nj;
    let n = plane * nk;
    if reference.len() != n || test.len() != n || slice >= nk || plane == 0 {
        return Err(Error::InvalidArgument(format!(
            "overlay: masks of {} and {} voxels, slice {slice}, for a CT grid {:?}",
            reference.len(),
            test.len(),
            g.size
        )));
    }
    let [i0, i1, j0, j1] = view_window(view, [reference, test], g.size, g.spacing, slice);
    let (vi, vj) = (i1 - i0, j1 - j0);
    let (sx, sy) = (g.spacing[0], g.spacing[1]);
    let mut px = sx.min(sy);
    if matches!(view, OverlayView::Contours { .. }) {
        px = px.min((vi as f64 * sx).max(vj as f64 * sy) / ZOOM_SIDE as f64);
    }
    let w = ((vi as f64 * sx / px).round() as usize).clamp(1, 4096);
    let h = ((vj as f64 * sy / px).round() as usize).clamp(1, 4096);
    let full_h = h + LEGEND_HEIGHT as usize;
    let base = slice * plane;
    // Display pixel → voxel (nearest).
    let ix = |x: usize| i0 + ((x as f64 + 0.5) * vi as f64 / w as f64) as usize;
    let iy = |y: usize| j0 + ((y as f64 + 0.5) * vj as f64 / h as f64) as usize;
    let voxel = |x: usize, y: usize| base + iy(y).min(nj - 1) * ni + ix(x).min(ni - 1);
    let mut buf = vec![0u8; w * full_h * 3];
    for y in 0..h {
        for x in 0..w {
            let v = crate::preview::window(ct.at(voxel(x, y)).unwrap_or(-1000.0));
            if let Some(p) = buf.get_mut((y * w + x) * 3..(y * w + x) * 3 + 3) {
                p.copy_from_slice(&[v, v, v]);
            }
        }
    }
    let inside = |m: &[u8], x: i64, y: i64| {
        x >= 0
            && y >= 0
            && (x as usize) < w
            && (y as usize) < h
            && m.get(voxel(x as usize, y as usize))
                .is_some_and(|&v| v != 0)
    };
    for (m, c) in [(reference, REF_COLOUR), (test, TEST_COLOUR)] {
        for y in 0..h as i64 {
            for x in 0..w as i64 {
                if inside(m, x, y)
                    && [(1, 0), (-1, 0), (0, 1), (0, -1)]
                        .iter()
                        .any(|&(dx, dy)| !inside(m, x + dx, y + dy))
                {
                    let o = (y as usize * w + x as usize) * 3;
                    if let Some(p) = buf.get_mut(o..o + 3) {
                        p.copy_from_slice(&c);
                    }
                }
            }
        }
    }
    fonts();
    let size = (w as u32, full_h as u32);
    {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        let e = |x| plot_err(path, x);
        let font = (FAMILY, 15).into_font().color(&WHITE);
        let y0 = h as i32 + 6;
        root.draw(&Text::new(labels.title.clone(), (8, y0), font.clone()))
            .map_err(e)?;
        for (line, (c, name)) in [(REF_COLOUR, &labels.reference), (TEST_COLOUR, &labels.test)]
            .into_iter()
            .enumerate()
        {
            let colour = RGBColor(c[0], c[1], c[2]);
            let y = y0 + 24 * (line as i32 + 1);
            root.draw(&Rectangle::new([(8, y + 2), (22, y + 16)], colour.filled()))
                .map_err(e)?;
            root.draw(&Text::new(name.clone(), (30, y), font.clone()))
                .map_err(e)?;
        }
        root.present().map_err(e)?;
    }
    write_png(path, &buf, size.0, size.1)?;
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zoomed_overlay_shows_the_contours_region() {
        use autocontour::volume::{Geometry, Volume};
        let id = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        let size = [100, 80, 3];
        let g = Geometry::new(size, [0.0; 3], [1.0, 1.0, 2.0], id).unwrap();
        let ct = Volume::new(g, vec![0.0f32; 100 * 80 * 3]).unwrap();
        let square = |i0: usize| {
            let mut m = vec![0u8; 100 * 80 * 3];
            for j in 30..40 {
                for i in i0..i0 + 10 {
                    m[(80 + j) * 100 + i] = 1;
                }
            }
            m
        };
        let (a, b) = (square(40), square(42));
        // Box i 40..52, j 30..40; margin 10 → i 30..62 (32), j 20..50 (30); widened to 50 mm:
        // i 21..71, j 10..60; scaled to 640 × 640.
        let window = |slice| {
            let view = OverlayView::Contours { margin_mm: 10.0 };
            view_window(view, [&a, &b], size, [1.0, 1.0, 2.0], slice)
        };
        assert_eq!(window(1), [21, 71, 10, 60]);
        assert_eq!(
            window(0),
            [0, 100, 0, 80],
            "no contour on the slice: whole slice"
        );
        let labels = OverlayLabels {
            title: "t".into(),
            reference: "r".into(),
            test: "s".into(),
        };
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("o.png");
        let view = OverlayView::Contours { margin_mm: 10.0 };
        let (w, h) = write_overlay(&p, &ct, &a, &b, 1, view, &labels).unwrap();
        assert_eq!((w, h), (640, 640 + LEGEND_HEIGHT));
        // The reference's left edge (voxel column 40 = window column 19): the first display
        // column whose centre maps into it, (x + 0.5) · 50 / 640 ≥ 19.
        let file = std::fs::File::open(&p).unwrap();
        let mut reader = png::Decoder::new(std::io::BufReader::new(file))
            .read_info()
            .unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        reader.next_frame(&mut buf).unwrap();
        let row = 35 - 10; // voxel row 35 → display rows 25·12.8 …
        let y = (row as f64 * 12.8 + 6.0) as usize;
        let green = (0..640)
            .find(|&x| buf[(y * 640 + x) * 3..(y * 640 + x) * 3 + 3] == REF_COLOUR)
            .unwrap();
        assert_eq!(green, (19.0f64 * 12.8 - 0.5).ceil() as usize);
        let whole = write_overlay(&p, &ct, &a, &b, 1, OverlayView::WholeSlice, &labels).unwrap();
        assert_eq!(whole, (100, 80 + LEGEND_HEIGHT));
    }

    #[test]
    fn worst_slice_is_the_most_different() {
        let size = [2, 2, 3];
        let a = vec![1u8; 12];
        let mut b = a.clone();
        b[4] = 0;
        b[8] = 0;
        b[9] = 0;
        assert_eq!(worst_slice(&a, &b, size), Some(2));
        assert_eq!(worst_slice(&a, &a, size), None);
        assert_eq!(worst_slice(&a, &b[..11], size), None);
    }
}
