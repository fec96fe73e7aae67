//! A preview PNG of a segmentation: axial, coronal and sagittal planes through the centre of the
//! segmented structures, CT in a thorax window, each structure's outline in its colour, and a
//! legend with volumes and review flags.
//!
//! Panels are sampled in patient millimetres (nearest voxel), so they show true proportions for
//! any CT orientation. Display conventions (radiological): axial seen from the feet — patient
//! right on the image left, anterior at the top; coronal seen from the front — patient right on
//! the left, head at the top; sagittal seen from the patient's left — anterior on the left, head
//! at the top. Letters at the panel edges name the patient directions.

use std::path::Path;

use font8x8::UnicodeFonts;

use autocontour::pipeline::StructureSummary;
use autocontour::plausibility::Flag;

/// Colour of review marks: flagged legend entries, case flags, dashes in flagged outlines.
const REVIEW: [u8; 3] = [255, 190, 60];
use autocontour::volume::{HuRef, Volume};
use autocontour::{Error, Result};

/// Size of one panel, display pixels.
const PANEL: usize = 420;
const GAP: usize = 8;
const FONT: usize = 2; // 8x8 glyphs drawn at 2x

struct Canvas {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

impl Canvas {
    fn new(w: usize, h: usize) -> Self {
        Canvas {
            w,
            h,
            px: vec![0; w * h * 3],
        }
    }
    fn set(&mut self, x: usize, y: usize, c: [u8; 3]) {
        if x < self.w && y < self.h {
            let o = (y * self.w + x) * 3;
            if let Some(p) = self.px.get_mut(o..o + 3) {
                p.copy_from_slice(&c);
            }
        }
    }
    fn rect(&mut self, x: usize, y: usize, w: usize, h: usize, c: [u8; 3]) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.set(xx, yy, c);
            }
        }
    }
    fn text(&mut self, x: usize, y: usize, s: &str, c: [u8; 3]) {
        let mut cx = x;
        for ch in s.chars() {
            let glyph = font8x8::BASIC_FONTS
                .get(ch)
                .or_else(|| font8x8::BASIC_FONTS.get('?'))
                .unwrap_or([0; 8]);
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) != 0 {
                        self.rect(cx + col * FONT, y + row * FONT, FONT, FONT, c);
                    }
                }
            }
            cx += 8 * FONT;
        }
    }
}

/// A plane through `centre` spanned by patient unit vectors `u` (display right) and `v`
/// (display down), `half` mm each side.
struct Plane {
    centre: [f64; 3],
    u: [f64; 3],
    v: [f64; 3],
    half: f64,
    marks: [&'static str; 4], // left, right, top, bottom
}

/// CT grey level in the thorax overview window (level −300, width 1600); also used by the
/// evaluation overlay (`metrics::plots`).
pub(crate) fn window(hu: f32) -> u8 {
    // thorax overview: level -300, width 1600
    let t = ((hu + 1100.0) / 1600.0).clamp(0.0, 1.0);
    (t * 255.0) as u8
}

/// How outlines are drawn: colour per label, and which labels are flagged (dashed).
struct Outlines<'a> {
    colors: &'a [[u8; 3]],
    flagged: &'a [bool],
}

fn render_panel(
    canvas: &mut Canvas,
    ox: usize,
    oy: usize,
    ct: HuRef<'_>,
    labels: &Volume<u8>,
    outlines: &Outlines<'_>,
    plane: &Plane,
) {
    let (colors, flagged) = (outlines.colors, outlines.flagged);
    let g = ct.geometry();
    let step = 2.0 * plane.half / PANEL as f64;
    let mut lab = vec![0u8; PANEL * PANEL];
    for y in 0..PANEL {
        for x in 0..PANEL {
            let a = (x as f64 + 0.5) * step - plane.half;
            let b = (y as f64 + 0.5) * step - plane.half;
            let p = [
                plane.centre[0] + a * plane.u[0] + b * plane.v[0],
                plane.centre[1] + a * plane.u[1] + b * plane.v[1],
                plane.centre[2] + a * plane.u[2] + b * plane.v[2],
            ];
            let idx = g.patient_to_index(p);
            let r = [idx[0].round(), idx[1].round(), idx[2].round()];
            let inside = (0..3).all(|d| r[d] >= 0.0 && r[d] < g.size[d] as f64);
            let (gray, l) = if inside {
                let (i, j, k) = (r[0] as usize, r[1] as usize, r[2] as usize);
                (
                    ct.get(i, j, k).map(window).unwrap_or(0),
                    labels.get(i, j, k).copied().unwrap_or(0),
                )
            } else {
                (0, 0)
            };
            if let Some(s) = lab.get_mut(y * PANEL + x) {
                *s = l;
            }
            canvas.set(ox + x, oy + y, [gray, gray, gray]);
        }
    }
    // Outlines: a pixel of label l > 0 with a 4-neighbour of background or of a lower label, so
    // where two structures touch only the higher label's outline is drawn (no double lines).
    for y in 0..PANEL {
        for x in 0..PANEL {
            let l = lab.get(y * PANEL + x).copied().unwrap_or(0);
            if l == 0 {
                continue;
            }
            let edge = [(1i64, 0i64), (-1, 0), (0, 1), (0, -1)]
                .iter()
                .any(|&(dx, dy)| {
                    let (nx, ny) = (x as i64 + dx, y as i64 + dy);
                    if nx < 0 || ny < 0 || nx >= PANEL as i64 || ny >= PANEL as i64 {
                        return true;
                    }
                    lab.get(ny as usize * PANEL + nx as usize)
                        .is_some_and(|&n| n < l)
                });
            if edge {
                let mut c = colors.get(l as usize).copied().unwrap_or([255, 255, 0]);
                // A flagged structure's outline is dashed with the review colour.
                if flagged.get(l as usize) == Some(&true) && ((x + y) / 4) % 2 == 1 {
                    c = REVIEW;
                }
                canvas.set(ox + x, oy + y, c);
            }
        }
    }
    let white = [230, 230, 230];
    let mid = PANEL / 2 - 4 * FONT;
    canvas.text(ox + 4, oy + mid, plane.marks[0], white);
    canvas.text(ox + PANEL - 8 * FONT - 4, oy + mid, plane.marks[1], white);
    canvas.text(ox + mid, oy + 4, plane.marks[2], white);
    canvas.text(ox + mid, oy + PANEL - 8 * FONT - 4, plane.marks[3], white);
}

/// Sums of the (i, j, k) indices of the non-zero voxels of a label map (i fastest, rows of
/// `ni`, slices of `ni × nj`) and their count; slices summed in parallel.
fn labelled_sums(data: &[u8], ni: usize, nj: usize) -> ([f64; 3], usize) {
    use rayon::prelude::*;
    data.par_chunks((ni * nj).max(1))
        .enumerate()
        .map(|(k, slice)| {
            let (mut si, mut sj, mut n) = (0u64, 0u64, 0u64);
            for (j, row) in slice.chunks(ni.max(1)).enumerate() {
                let (ri, rn) = row_sums(row);
                si += ri;
                sj += rn * j as u64;
                n += rn;
            }
            ([si as f64, sj as f64, (n * k as u64) as f64], n as usize)
        })
        .reduce(
            || ([0.0; 3], 0),
            |(a, n), (b, m)| ([a[0] + b[0], a[1] + b[1], a[2] + b[2]], n + m),
        )
}

/// The sum of the positions of the non-zero bytes of `row` and their count. Runs of 256 bytes
/// are summed in 16-bit lanes (positions below 256 add up to at most 32,640), which the
/// compiler vectorises; each run's sums are then offset by its start.
fn row_sums(row: &[u8]) -> (u64, u64) {
    const RUN: usize = 256;
    let (mut sum, mut count) = (0u64, 0u64);
    for (r, run) in row.chunks(RUN).enumerate() {
        let (mut s, mut m) = (0u16, 0u16);
        for (i, &l) in run.iter().enumerate() {
            let on = u16::from(l != 0);
            s = s.wrapping_add((i as u16) & on.wrapping_neg());
            m += on;
        }
        sum += u64::from(s) + (r * RUN) as u64 * u64::from(m);
        count += u64::from(m);
    }
    (sum, count)
}

/// Writes the preview of `labels` over `ct` to `path` (PNG).
pub fn write_preview<'a>(
    path: &Path,
    ct: impl Into<HuRef<'a>>,
    labels: &Volume<u8>,
    structures: &[StructureSummary],
    case_flags: &[Flag],
    title: &str,
) -> Result<()> {
    let ct = ct.into();
    let g = *ct.geometry();
    // centre: centroid of all labelled voxels (the volume centre when nothing is labelled)
    let [ni, nj, _] = g.size;
    let (sum, n) = labelled_sums(labels.data(), ni, nj);
    let centre_idx = if n > 0 {
        [sum[0] / n as f64, sum[1] / n as f64, sum[2] / n as f64]
    } else {
        [
            (g.size[0] as f64 - 1.0) / 2.0,
            (g.size[1] as f64 - 1.0) / 2.0,
            (g.size[2] as f64 - 1.0) / 2.0,
        ]
    };
    let centre = g.index_to_patient(centre_idx);
    let ext = g.extent_mm();
    let half = ext.iter().copied().fold(0.0, f64::max) / 2.0;
    let planes = [
        Plane {
            centre,
            u: [1.0, 0.0, 0.0],
            v: [0.0, 1.0, 0.0],
            half,
            marks: ["R", "L", "A", "P"],
        },
        Plane {
            centre,
            u: [1.0, 0.0, 0.0],
            v: [0.0, 0.0, -1.0],
            half,
            marks: ["R", "L", "H", "F"],
        },
        Plane {
            centre,
            u: [0.0, 1.0, 0.0],
            v: [0.0, 0.0, -1.0],
            half,
            marks: ["A", "P", "H", "F"],
        },
    ];
    let mut colors = vec![[0u8; 3]; 256];
    let mut flagged = vec![false; 256];
    for s in structures {
        if let Some(c) = colors.get_mut(s.label as usize) {
            *c = s.color;
        }
        if let Some(f) = flagged.get_mut(s.label as usize) {
            *f = !s.flags.is_empty();
        }
    }
    let line = 8 * FONT + 6;
    let header = line * (1 + case_flags.len()) + 4;
    let legend = line * (structures.len() + 1) + 8;
    let w = 3 * PANEL + 4 * GAP;
    let h = header + PANEL + 2 * GAP + legend;
    let mut canvas = Canvas::new(w, h);
    canvas.rect(0, 0, w, h, [20, 20, 28]);
    canvas.text(GAP, 4, title, [240, 240, 240]);
    for (n, f) in case_flags.iter().enumerate() {
        canvas.text(GAP, 4 + line * (n + 1), &format!("! {}", f.message), REVIEW);
    }
    for (n, plane) in planes.iter().enumerate() {
        render_panel(
            &mut canvas,
            GAP + n * (PANEL + GAP),
            header,
            ct,
            labels,
            &Outlines {
                colors: &colors,
                flagged: &flagged,
            },
            plane,
        );
    }
    let mut y = header + PANEL + GAP + 4;
    for s in structures {
        canvas.rect(GAP, y, 8 * FONT, 8 * FONT, s.color);
        let conf = s
            .confidence
            .map(|c| format!("conf {c:.2}"))
            .unwrap_or_else(|| "conf -".into());
        // Short review marks; the full reasons are in the JSON summary.
        let marks: Vec<&str> = s.flags.iter().map(|f| f.code.as_str()).collect();
        let flag = if marks.is_empty() {
            String::new()
        } else {
            format!("  ! {}", marks.join(", "))
        };
        let text = format!("{:<12} {:>9.1} ml  {conf}{flag}", s.name, s.volume_ml);
        let color = if s.flags.is_empty() {
            [230, 230, 230]
        } else {
            REVIEW
        };
        canvas.text(GAP + 8 * FONT + 8, y, &text, color);
        y += line;
    }
    canvas.text(
        GAP,
        y,
        "autocontour preview - not for clinical use",
        [150, 150, 150],
    );

    autocontour::io::write_atomically(path, |f| {
        let mut enc = png::Encoder::new(std::io::BufWriter::new(f), w as u32, h as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Fast);
        let mut writer = enc.write_header().map_err(std::io::Error::other)?;
        writer
            .write_image_data(&canvas.px)
            .map_err(std::io::Error::other)?;
        writer.finish().map_err(std::io::Error::other)
    })
    .map_err(|e| match e {
        Error::Io { .. } => e,
        other => Error::InvalidArgument(format!("writing preview {}: {other}", path.display())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Index sums and counts equal a plain loop, for rows shorter and longer than a 256-byte
    /// run, rows that end inside a run, and every byte set (the largest run sums).
    #[test]
    fn labelled_sums_equal_a_plain_loop() {
        let mut rng = autocontour_test_support::XorShift::new(0x9e37_79b9_7f4a_7c15);
        for (ni, nj, nk, density) in [
            (1, 1, 1, 2),
            (7, 3, 2, 2),
            (255, 4, 3, 3),
            (256, 2, 2, 1),
            (257, 5, 2, 4),
            (700, 3, 4, 2),
            (1030, 2, 3, 1),
        ] {
            let data: Vec<u8> = (0..ni * nj * nk)
                .map(|_| {
                    let r = rng.next_u64();
                    if density == 1 || r.is_multiple_of(density) {
                        (r >> 8) as u8 | 1
                    } else {
                        0
                    }
                })
                .collect();
            let (mut want, mut n) = ([0.0f64; 3], 0usize);
            for (v, &l) in data.iter().enumerate() {
                if l != 0 {
                    let (i, j, k) = (v % ni, v / ni % nj, v / (ni * nj));
                    want[0] += i as f64;
                    want[1] += j as f64;
                    want[2] += k as f64;
                    n += 1;
                }
            }
            assert_eq!(labelled_sums(&data, ni, nj), (want, n), "{ni}×{nj}×{nk}");
        }
    }
}
