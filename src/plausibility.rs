//! Anatomical plausibility and model applicability: checks that every model gets, driven by its
//! manifest's rules ([`crate::model::rules`]), never by structure names in the engine.
//!
//! Before inference, [`check_applicability`] looks at the CT: Body Part Examined, the body's
//! extent along the patient's head–feet axis, the fraction of body voxels at lung density, and
//! whether there is a body at all. After inference and postprocessing, [`check_structures`]:
//!
//! * replaces the model's External by the library's body outline when the manifest asks for it
//!   (`"external": "builtin"`, [`crate::body`]);
//! * clips every structure to its container (its `inside`, or the External under
//!   `organs_inside_external`), measuring what was removed;
//! * counts air voxels claimed by `solid` structures;
//! * measures, for lateral structures, the fraction of voxels across the body's mid-sagittal
//!   plane (DICOM LPS: +x is the patient's left, whatever the orientation or patient position),
//!   and finds swapped left/right pairs (flagged, never renamed);
//! * finds structures cut by the first or last slice along the head–feet axis, and expected
//!   structures that came out empty.
//!
//! Every finding above its threshold is a [`Flag`]: a stable machine-readable [`FlagCode`] and a
//! sentence a clinician understands.

use rayon::prelude::*;
use serde::Serialize;

use crate::body::{BodyOptions, CoarseBody, Span, coarse_body};
use crate::dicom::CtSeries;
use crate::error::{Error, Result};
use crate::model::{ExternalSource, Manifest, Rules, Side};
use crate::postprocess::{next_of, run_end};
use crate::volume::{Geometry, HuRef, HuSample, Volume, with_hu};

/// Machine-readable kind of a review flag. The snake_case names ([`FlagCode::as_str`]) are
/// stable: they appear in summary JSON and through the C API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagCode {
    /// The structure has no voxel.
    Empty,
    /// Mean model probability inside the structure below the engine's threshold.
    LowConfidence,
    /// Volume outside the manifest's expected range.
    VolumeOutOfRange,
    /// More than the allowed fraction lay outside its container and was removed.
    OutsideContainer,
    /// A solid organ holds more air voxels than allowed.
    AirInSolidOrgan,
    /// A lateral structure lies (partly) on the wrong side of the body.
    WrongSide,
    /// A left/right pair is mirrored: the left one lies to the right of the right one.
    SwappedPair,
    /// The structure touches the first or last slice along the head–feet axis.
    Truncated,
    /// The model was uncertain inside or along the boundary of the structure.
    Uncertain,
    /// A structure the model must find came out empty (case flag).
    ExpectedMissing,
    /// Body Part Examined is not a region the model covers (case flag).
    BodyPartMismatch,
    /// The body is shorter along the head–feet axis than the model needs (case flag).
    ScanTooShort,
    /// The image content does not look like the region the model covers (case flag).
    ContentMismatch,
    /// No body was found in the CT (case flag).
    NoBody,
}

impl FlagCode {
    /// The stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            FlagCode::Empty => "empty",
            FlagCode::LowConfidence => "low_confidence",
            FlagCode::VolumeOutOfRange => "volume_out_of_range",
            FlagCode::OutsideContainer => "outside_container",
            FlagCode::AirInSolidOrgan => "air_in_solid_organ",
            FlagCode::WrongSide => "wrong_side",
            FlagCode::SwappedPair => "swapped_pair",
            FlagCode::Truncated => "truncated",
            FlagCode::Uncertain => "uncertain",
            FlagCode::ExpectedMissing => "expected_missing",
            FlagCode::BodyPartMismatch => "body_part_mismatch",
            FlagCode::ScanTooShort => "scan_too_short",
            FlagCode::ContentMismatch => "content_mismatch",
            FlagCode::NoBody => "no_body",
        }
    }
}

impl std::fmt::Display for FlagCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A review flag: what kind, and a sentence for the clinician.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Flag {
    /// Machine-readable kind.
    pub code: FlagCode,
    /// What was found, in words.
    pub message: String,
}

impl Flag {
    /// A flag.
    pub fn new(code: FlagCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Flag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// What to do when the CT does not suit the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnMismatch {
    /// Segment anyway and raise case flags.
    #[default]
    Flag,
    /// Refuse with [`Error::NotApplicable`] before inference (CT checks), or after it when an
    /// expected structure is missing.
    Refuse,
}

/// What the CT looks like, measured on the body outline's coarse grid ([`crate::body`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CtFacts {
    /// Body Part Examined (0018,0015), if the CT has it.
    pub body_part: Option<String>,
    /// Extent of the body along the patient's head–feet axis, mm (0 without a body).
    pub body_length_mm: f64,
    /// Fraction of body voxels at lung density (−950…−600 HU).
    pub lung_fraction: f64,
    /// Body volume, ml.
    pub body_volume_ml: f64,
    /// Patient x (LPS, mm) of the body's centroid: the mid-sagittal plane.
    pub midline_x_mm: Option<f64>,
}

/// Patient coordinate `row` (0 = x, 2 = z) of voxel (i, j, k) as `base + di·i + dj·j + dk·k`.
fn coordinate_coefficients(g: &Geometry, row: usize) -> [f64; 4] {
    let r = row.min(2);
    [
        g.origin[r],
        g.direction[r][0] * g.spacing[0],
        g.direction[r][1] * g.spacing[1],
        g.direction[r][2] * g.spacing[2],
    ]
}

/// Looks at the CT on the body outline's coarse grid: body part, body length, lung fraction,
/// midline. Returns the coarse outline too, for the builtin External.
pub fn ct_facts(ct: &CtSeries, rules: &Rules) -> Result<(CtFacts, CoarseBody)> {
    let body_part = ct
        .header
        .get(dicom_dictionary_std::tags::BODY_PART_EXAMINED)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).trim().to_string())
        .filter(|s| !s.is_empty());
    let cb = coarse_body(&ct.volume, &body_options(rules))?;
    let (body, coarse) = (&cb.mask, &cb.hu);
    let g = *coarse.geometry();
    let [ni, nj, _] = g.size;
    let (cx, cz) = (
        coordinate_coefficients(&g, 0),
        coordinate_coefficients(&g, 2),
    );
    let plane = (ni * nj).max(1);
    // Per slice: (body voxels, lung voxels, Σx, min z, max z).
    let (n, lung, sx, zmin, zmax) = body
        .data()
        .par_chunks(plane)
        .zip(coarse.data().par_chunks(plane))
        .enumerate()
        .map(|(k, (b, hu))| {
            let mut acc = (0usize, 0usize, 0f64, f64::INFINITY, f64::NEG_INFINITY);
            for (p, (&m, &h)) in b.iter().zip(hu).enumerate() {
                if m == 0 {
                    continue;
                }
                let (i, j) = ((p % ni) as f64, (p / ni) as f64);
                let kf = k as f64;
                acc.0 += 1;
                acc.1 += usize::from((-950.0..=-600.0).contains(&h));
                acc.2 += cx[0] + cx[1] * i + cx[2] * j + cx[3] * kf;
                let z = cz[0] + cz[1] * i + cz[2] * j + cz[3] * kf;
                acc.3 = acc.3.min(z);
                acc.4 = acc.4.max(z);
            }
            acc
        })
        .reduce(
            || (0, 0, 0.0, f64::INFINITY, f64::NEG_INFINITY),
            |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2, a.3.min(b.3), a.4.max(b.4)),
        );
    let voxel_ml = g.spacing.iter().product::<f64>() / 1000.0;
    let facts = CtFacts {
        body_part,
        body_length_mm: if n > 0 { zmax - zmin } else { 0.0 },
        lung_fraction: if n > 0 { lung as f64 / n as f64 } else { 0.0 },
        body_volume_ml: n as f64 * voxel_ml,
        midline_x_mm: (n > 0).then(|| sx / n as f64),
    };
    Ok((facts, cb))
}

fn body_options(rules: &Rules) -> BodyOptions {
    BodyOptions {
        threshold_hu: rules.body_threshold_hu,
        opening_mm: rules.body_opening_mm,
    }
}

/// Case flags from the CT alone (before inference): no body, body part, scan length, content.
pub fn applicability_flags(facts: &CtFacts, rules: &Rules) -> Vec<Flag> {
    let mut flags = Vec::new();
    if facts.midline_x_mm.is_none() {
        flags.push(Flag::new(
            FlagCode::NoBody,
            format!(
                "no body found in the CT (no connected region above {} HU)",
                rules.body_threshold_hu
            ),
        ));
        return flags;
    }
    let Some(a) = &rules.applicability else {
        return flags;
    };
    if let Some(part) = &facts.body_part
        && !a.body_parts.is_empty()
        && !a.body_parts.iter().any(|p| p.eq_ignore_ascii_case(part))
    {
        flags.push(Flag::new(
            FlagCode::BodyPartMismatch,
            format!(
                "the CT's Body Part Examined is {part}; the model covers {}",
                a.body_parts.join(", ")
            ),
        ));
    }
    if let Some(min) = a.min_scan_length_mm
        && facts.body_length_mm < min
    {
        flags.push(Flag::new(
            FlagCode::ScanTooShort,
            format!(
                "the scan covers {:.0} mm of the body head to feet; the model needs at least {min:.0} mm",
                facts.body_length_mm
            ),
        ));
    }
    if let Some([lo, hi]) = a.lung_fraction
        && !(lo..=hi).contains(&facts.lung_fraction)
    {
        flags.push(Flag::new(
            FlagCode::ContentMismatch,
            format!(
                "{:.1} % of the body is at lung density; the model expects {:.1}–{:.1} % (is this the region the model was trained on?)",
                100.0 * facts.lung_fraction,
                100.0 * lo,
                100.0 * hi
            ),
        ));
    }
    flags
}

/// Runs the CT checks and applies `mode`: the case flags, or [`Error::NotApplicable`].
/// Also returns the coarse body outline, for [`check_structures`].
pub fn check_applicability(
    ct: &CtSeries,
    manifest: &Manifest,
    mode: OnMismatch,
) -> Result<(CtFacts, Vec<Flag>, CoarseBody)> {
    let rules = manifest.rules();
    let t = std::time::Instant::now();
    let (facts, coarse) = ct_facts(ct, &rules)?;
    log::debug!(
        "applicability: CT facts in {:.3} s",
        t.elapsed().as_secs_f64()
    );
    let flags = applicability_flags(&facts, &rules);
    if mode == OnMismatch::Refuse && !flags.is_empty() {
        return Err(not_applicable(manifest, &flags));
    }
    Ok((facts, flags, coarse))
}

fn not_applicable(manifest: &Manifest, flags: &[Flag]) -> Error {
    Error::NotApplicable {
        model: manifest.name.clone(),
        reasons: flags
            .iter()
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// What the structure checks found for one label.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StructureCheck {
    /// Voxels after the checks (clipping included).
    pub voxels: usize,
    /// Voxels removed because they lay outside the structure's container.
    pub removed_outside_container: usize,
    /// Air voxels (below the manifest's `air_hu`) in a `solid` structure.
    pub air_voxels: usize,
    /// Fraction of a lateral structure's voxels on the wrong side of the midline.
    pub wrong_side_fraction: Option<f64>,
    /// Patient x (LPS, mm) of the structure's centroid.
    pub centroid_x_mm: Option<f64>,
    /// Whether it touches the first or last slice along the head–feet axis.
    pub truncated: bool,
    /// Flags raised.
    pub flags: Vec<Flag>,
}

/// What [`check_structures`] did and found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StructureChecks {
    /// Per manifest label (index 0, background, stays default).
    pub labels: Vec<StructureCheck>,
    /// Case flags raised after inference (expected structures missing).
    pub case_flags: Vec<Flag>,
    /// Where the External came from.
    pub external: Option<ExternalSource>,
    /// Body voxels on the CT grid (builtin body, or the region the model's External encloses).
    pub body_voxels: usize,
}

/// The builtin body as the External, in one pass that also places the skin at the CT's
/// resolution ([`CoarseBody::spans`]: the full-resolution body mask is never materialised):
/// voxels of the labels marked in `inner` outside the body become background (counted per label),
/// the External label (`ext`, if the model has one; with `None` nothing changes) becomes exactly
/// the body voxels no other structure holds. `coarse` must have passed
/// [`CoarseBody::check_grid`] for `ct`. Returns (removed voxels per label, body voxels).
fn apply_builtin_external<T: HuSample>(
    labels: &mut Volume<u8>,
    ct: &Volume<T>,
    coarse: &CoarseBody,
    threshold: f32,
    ext: Option<u8>,
    inner: &[bool],
) -> (Vec<usize>, usize) {
    let n = inner.len();
    let [ni, nj, _] = labels.geometry().size;
    let plane = (ni * nj).max(1);
    let is_inner = |v: u8| inner.get(v as usize) == Some(&true);
    // One voxel outside the body: the External and the contained labels are removed.
    let outside = |v: &mut u8, removed: &mut [usize]| {
        if *v == 0 {
            return;
        }
        if Some(*v) == ext {
            *v = 0;
        } else if is_inner(*v) {
            if let Some(c) = removed.get_mut(*v as usize) {
                *c += 1;
            }
            *v = 0;
        }
    };
    labels
        .data_mut()
        .par_chunks_mut(plane)
        .zip(ct.data().par_chunks(plane))
        .enumerate()
        .fold(
            || (vec![0usize; n], 0usize),
            |(mut removed, mut body), (k, (l, hu))| {
                coarse.spans(k, ni, nj, |j, i0, i1, span| {
                    let r = j * ni + i0..j * ni + i1;
                    let Some(l) = l.get_mut(r.clone()) else {
                        return;
                    };
                    match span {
                        Span::Inside => {
                            body += l.len();
                            if let Some(e) = ext {
                                l.iter_mut().for_each(|v| *v = if *v == 0 { e } else { *v });
                            }
                        }
                        Span::Outside => {
                            // Mostly air with no label: a vectorised test first.
                            if !all_zero(l) {
                                l.iter_mut().for_each(|v| outside(v, &mut removed));
                            }
                        }
                        Span::Band => {
                            // Chunks of 32 voxels all above or all below the threshold (most
                            // of the band: air or tissue) are settled like inside or outside
                            // spans; a vectorised count decides.
                            let hu = hu.get(r).unwrap_or(&[]);
                            for (l, hu) in l.chunks_mut(32).zip(hu.chunks(32)) {
                                let above = hu
                                    .iter()
                                    .fold(0u32, |a, &h| a + u32::from(h.hu() > threshold));
                                if above as usize == l.len() {
                                    body += l.len();
                                    if let Some(e) = ext {
                                        l.iter_mut()
                                            .for_each(|v| *v = if *v == 0 { e } else { *v });
                                    }
                                    continue;
                                }
                                if above == 0 && l.len() == hu.len() && all_zero(l) {
                                    continue;
                                }
                                for (v, &h) in l.iter_mut().zip(hu) {
                                    if h.hu() > threshold {
                                        body += 1;
                                        if *v == 0
                                            && let Some(e) = ext
                                        {
                                            *v = e;
                                        }
                                    } else {
                                        outside(v, &mut removed);
                                    }
                                }
                            }
                        }
                    }
                });
                (removed, body)
            },
        )
        .reduce(
            || (vec![0usize; n], 0),
            |(mut a, x), (b, y)| {
                a.iter_mut().zip(b).for_each(|(p, q)| *p += q);
                (a, x + y)
            },
        )
}

/// Whether every byte of `s` is 0, 32 at a time (vectorised, unlike a short-circuiting `any`).
fn all_zero(s: &[u8]) -> bool {
    s.chunks(32).all(|c| c.iter().fold(0u8, |a, &v| a | v) == 0)
}

/// In one slice (`ni` columns, `nj` rows): the voxels of the labels marked in `inner` that are
/// not enclosed by `container` — reachable from the slice border (4-connectivity) without
/// crossing a `container` voxel — are set to background. Works on runs of non-container voxels
/// joined by union–find, so the cost is one scan of the slice plus the number of runs.
/// Returns (removed voxels per label, voxels enclosed by the container including itself).
fn clip_slice(
    slice: &mut [u8],
    ni: usize,
    nj: usize,
    container: u8,
    inner: &[bool],
) -> (Vec<usize>, usize) {
    let mut removed = vec![0usize; inner.len()];
    let is_inner = |v: u8| inner.get(v as usize) == Some(&true);
    if ni == 0 || nj == 0 {
        return (removed, 0);
    }
    // Runs of non-container voxels: (row, i0, i1), rows in order; row_start per row.
    let mut runs: Vec<(usize, usize, usize)> = Vec::new();
    let mut row_start = Vec::with_capacity(nj + 1);
    let mut container_voxels = 0usize;
    for (j, row) in slice.chunks(ni).enumerate() {
        row_start.push(runs.len());
        let mut i = 0;
        while i < row.len() {
            if row.get(i) == Some(&container) {
                let e = run_end(row, i, container);
                container_voxels += e - i;
                i = e;
                continue;
            }
            let s = i;
            i = next_of(row, i, container);
            runs.push((j, s, i));
        }
    }
    row_start.push(runs.len());
    let mut parent: Vec<usize> = (0..runs.len()).collect();
    for j in 1..nj {
        let (a0, a1) = (
            row_start.get(j - 1).copied().unwrap_or(0),
            row_start.get(j).copied().unwrap_or(0),
        );
        let b1 = row_start.get(j + 1).copied().unwrap_or(a1);
        let mut m = a0;
        for n in a1..b1 {
            let Some(&(_, i0, i1)) = runs.get(n) else {
                break;
            };
            while runs.get(m).is_some_and(|r| r.2 <= i0) && m < a1 {
                m += 1;
            }
            let mut q = m;
            while q < a1 {
                let Some(&(_, p0, p1)) = runs.get(q) else {
                    break;
                };
                if p0 >= i1 {
                    break;
                }
                if p1 > i0 {
                    let (ra, rb) = (
                        crate::postprocess::find(&mut parent, n),
                        crate::postprocess::find(&mut parent, q),
                    );
                    if ra != rb
                        && let Some(slot) = parent.get_mut(ra.max(rb))
                    {
                        *slot = ra.min(rb);
                    }
                }
                q += 1;
            }
        }
    }
    let mut outside = vec![false; runs.len()];
    for (n, &(j, i0, i1)) in runs.iter().enumerate() {
        if j == 0 || j + 1 == nj || i0 == 0 || i1 == ni {
            let r = crate::postprocess::find(&mut parent, n);
            if let Some(o) = outside.get_mut(r) {
                *o = true;
            }
        }
    }
    let mut enclosed = container_voxels;
    for (n, &(j, i0, i1)) in runs.iter().enumerate() {
        let r = crate::postprocess::find(&mut parent, n);
        if outside.get(r) != Some(&true) {
            enclosed += i1 - i0;
            continue;
        }
        if let Some(seg) = slice.get_mut(j * ni + i0..j * ni + i1) {
            for v in seg.iter_mut() {
                if is_inner(*v) {
                    if let Some(c) = removed.get_mut(*v as usize) {
                        *c += 1;
                    }
                    *v = 0;
                }
            }
        }
    }
    (removed, enclosed)
}

/// [`clip_slice`] over every slice, in parallel: the labels marked in `inner` keep only what
/// `container` encloses in each slice. Returns (removed voxels per label, enclosed voxels).
fn clip_outside(labels: &mut Volume<u8>, container: u8, inner: &[bool]) -> (Vec<usize>, usize) {
    let [ni, nj, _] = labels.geometry().size;
    let plane = (ni * nj).max(1);
    labels
        .data_mut()
        .par_chunks_mut(plane)
        .map(|slice| clip_slice(slice, ni, nj, container, inner))
        .reduce(
            || (vec![0usize; inner.len()], 0),
            |(mut a, x), (b, y)| {
                a.iter_mut().zip(b).for_each(|(p, q)| *p += q);
                (a, x + y)
            },
        )
}

/// How many `i` in `[i0, i1)` put `x = base + step · i` on the wrong side of `mid` for `side`
/// (left: x < mid; right: x > mid).
fn count_wrong_side(i0: usize, i1: usize, base: f64, step: f64, mid: f64, side: Side) -> usize {
    let wrong = |i: usize| {
        let x = base + step * i as f64;
        match side {
            Side::Left => x < mid,
            Side::Right => x > mid,
        }
    };
    if i1 <= i0 {
        return 0;
    }
    // x is monotonic in i: the wrong voxels are a prefix or a suffix; find the boundary by
    // bisection on the predicate.
    let (first, last) = (wrong(i0), wrong(i1 - 1));
    if first == last {
        return if first { i1 - i0 } else { 0 };
    }
    let (mut lo, mut hi) = (i0, i1 - 1); // wrong(lo) == first, wrong(hi) == last
    while hi - lo > 1 {
        let m = lo + (hi - lo) / 2;
        if wrong(m) == first {
            lo = m;
        } else {
            hi = m;
        }
    }
    if first { lo + 1 - i0 } else { i1 - hi }
}

/// Base name of a lateral structure (suffix `_L`, `_R`, `_Left`, `_Right` removed, lower case).
fn pair_base(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    for suffix in ["_left", "_right", "_l", "_r"] {
        if let Some(b) = lower.strip_suffix(suffix) {
            return b.to_string();
        }
    }
    lower
}

/// Checks (and clips) the label map after postprocessing: see the module documentation.
/// `ct` is the CT in HU on the label map's grid; `midline_x_mm` the body's mid-sagittal plane
/// (from [`ct_facts`]; `None` skips the laterality checks); `coarse` the coarse body outline of
/// `ct` from [`ct_facts`] (computed here when `None` and the builtin External is asked for).
pub fn check_structures<'a>(
    labels: &mut Volume<u8>,
    ct: impl Into<HuRef<'a>>,
    manifest: &Manifest,
    midline_x_mm: Option<f64>,
    coarse: Option<&CoarseBody>,
) -> Result<StructureChecks> {
    with_hu!(ct.into(), v => check_structures_of(labels, v, manifest, midline_x_mm, coarse))
}

fn check_structures_of<T: HuSample>(
    labels: &mut Volume<u8>,
    ct: &Volume<T>,
    manifest: &Manifest,
    midline_x_mm: Option<f64>,
    coarse: Option<&CoarseBody>,
) -> Result<StructureChecks> {
    if labels.geometry().size != ct.geometry().size {
        return Err(Error::InvalidArgument(format!(
            "plausibility checks: label map {:?} and CT {:?} differ in size",
            labels.geometry().size,
            ct.geometry().size
        )));
    }
    let rules = manifest.rules();
    let n_labels = manifest.labels.len();
    let mut out = StructureChecks {
        labels: vec![StructureCheck::default(); n_labels],
        ..Default::default()
    };
    let ext = manifest.external_label().and_then(|l| u8::try_from(l).ok());
    let containers = manifest.containers();

    // 1. Timing of the steps (debug log).
    let t = std::time::Instant::now();
    let lap =
        |what: &str| log::debug!("plausibility: {what} at {:.3} s", t.elapsed().as_secs_f64());

    // 2. Containment, outermost containers first (depth order in the containment forest); all
    // structures inside one container are clipped in one pass over the slices.
    let computed;
    let body = if rules.external == ExternalSource::Builtin {
        out.external = Some(ExternalSource::Builtin);
        let opts = body_options(&rules);
        let c = match coarse {
            Some(c) => c,
            None => {
                computed = coarse_body(ct, &opts)?;
                &computed
            }
        };
        c.check_grid(ct.geometry())?;
        Some((c, opts.threshold_hu))
    } else {
        if ext.is_some() {
            out.external = Some(ExternalSource::Model);
        }
        None
    };
    let depth = |mut l: usize| {
        let mut d = 0;
        while let Some(Some(c)) = containers.get(l) {
            l = *c;
            d += 1;
            if d > n_labels {
                break;
            }
        }
        d
    };
    let mut builtin_applied = false;
    let mut outers: Vec<usize> = containers.iter().flatten().copied().collect();
    outers.sort_by_key(|&c| (depth(c), c));
    outers.dedup();
    for c in outers {
        let inner: Vec<bool> = (0..n_labels)
            .map(|l| containers.get(l).copied().flatten() == Some(c))
            .collect();
        let removed = match (&body, Some(c) == ext.map(usize::from)) {
            // The builtin body is the External: clip to the mask.
            (Some((b, threshold)), true) => {
                builtin_applied = true;
                let (removed, body_voxels) =
                    apply_builtin_external(labels, ct, b, *threshold, ext, &inner);
                out.body_voxels = body_voxels;
                removed
            }
            _ => {
                let Ok(cu) = u8::try_from(c) else { continue };
                let (removed, enclosed) = clip_outside(labels, cu, &inner);
                if Some(c) == ext.map(usize::from) {
                    out.body_voxels = enclosed;
                }
                removed
            }
        };
        for (l, r) in removed.into_iter().enumerate() {
            if let Some(s) = out.labels.get_mut(l) {
                s.removed_outside_container += r;
            }
        }
    }

    lap("containment");
    // 3. A builtin body the containment did not use still becomes the External label (without
    // one, it is only counted).
    if let (Some((b, threshold)), false) = (&body, builtin_applied) {
        let (_, body_voxels) =
            apply_builtin_external(labels, ct, b, *threshold, ext, &vec![false; n_labels]);
        out.body_voxels = body_voxels;
    }

    // 4. One pass for the statistics: counts, air, centroid x, wrong side, ends touched.
    let g = *labels.geometry();
    let [ni, nj, nk] = g.size;
    let sides: Vec<Option<Side>> = manifest
        .labels
        .iter()
        .map(|l| l.lateral_side(&rules))
        .collect();
    let solid: Vec<bool> = manifest.labels.iter().map(|l| l.solid).collect();
    let cx = coordinate_coefficients(&g, 0);
    // The index axis closest to the patient's head–feet axis, and its ends.
    let z_axis = (0..3)
        .max_by(|&a, &b| g.direction[2][a].abs().total_cmp(&g.direction[2][b].abs()))
        .unwrap_or(2);
    let n_end = g.size[z_axis].saturating_sub(1);
    let air_hu = rules.air_hu;
    let plane = (ni * nj).max(1);
    #[derive(Clone, Default)]
    struct Acc {
        n: usize,
        air: usize,
        sx: f64,
        wrong: usize,
        ends: bool,
    }
    let acc: Vec<Acc> = labels
        .data()
        .par_chunks(plane)
        .zip(ct.data().par_chunks(plane))
        .enumerate()
        .fold(
            || vec![Acc::default(); n_labels],
            |mut acc, (k, (ls, hu))| {
                // Runs of one label along a row: x is linear in i, so a run's sum of x and its
                // count on the wrong side are arithmetic; only solid labels look at each voxel.
                for (j, (row, hrow)) in ls.chunks(ni.max(1)).zip(hu.chunks(ni.max(1))).enumerate() {
                    let mut i = 0;
                    while i < row.len() {
                        let l = row.get(i).copied().unwrap_or(0);
                        let i0 = i;
                        i = run_end(row, i, l);
                        if l == 0 {
                            continue;
                        }
                        let Some(a) = acc.get_mut(l as usize) else {
                            continue;
                        };
                        let len = i - i0;
                        a.n += len;
                        if solid.get(l as usize) == Some(&true) {
                            a.air += hrow
                                .get(i0..i)
                                .map_or(0, |h| h.iter().filter(|&&v| v.hu() < air_hu).count());
                        }
                        let base = cx[0] + cx[2] * j as f64 + cx[3] * k as f64;
                        a.sx += len as f64 * base + cx[1] * (i0 + i - 1) as f64 * len as f64 / 2.0;
                        if let (Some(Some(side)), Some(mid)) = (sides.get(l as usize), midline_x_mm)
                        {
                            a.wrong += count_wrong_side(i0, i, base, cx[1], mid, *side);
                        }
                        let c = [i0, j, k][z_axis];
                        let c_last = [i - 1, j, k][z_axis];
                        if c == 0 || c_last == n_end {
                            a.ends = true;
                        }
                    }
                }
                acc
            },
        )
        .reduce(
            || vec![Acc::default(); n_labels],
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(b) {
                    x.n += y.n;
                    x.air += y.air;
                    x.sx += y.sx;
                    x.wrong += y.wrong;
                    x.ends |= y.ends;
                }
                a
            },
        );
    let _ = nk;

    lap("statistics");
    // 5. Flags per structure.
    for (l, spec) in manifest.labels.iter().enumerate().skip(1) {
        let (Some(a), Some(s)) = (acc.get(l), out.labels.get_mut(l)) else {
            continue;
        };
        s.voxels = a.n;
        s.air_voxels = a.air;
        s.truncated = a.ends;
        s.centroid_x_mm = (a.n > 0).then(|| a.sx / a.n as f64);
        let before = a.n + s.removed_outside_container;
        if s.removed_outside_container > 0 && before > 0 {
            let f = s.removed_outside_container as f64 / before as f64;
            if f > rules.max_removed_fraction {
                let container = containers
                    .get(l)
                    .copied()
                    .flatten()
                    .and_then(|c| manifest.labels.get(c))
                    .map(|c| c.name.as_str())
                    .unwrap_or("its container");
                s.flags.push(Flag::new(
                    FlagCode::OutsideContainer,
                    format!(
                        "{:.0} % of {} ({} voxels) lay outside {container} and was removed",
                        100.0 * f,
                        spec.name,
                        s.removed_outside_container
                    ),
                ));
            }
        }
        if spec.solid && a.n > 0 {
            let f = a.air as f64 / a.n as f64;
            if f > rules.max_air_fraction {
                s.flags.push(Flag::new(
                    FlagCode::AirInSolidOrgan,
                    format!(
                        "{:.1} % of {} is air (below {} HU), which a solid organ cannot hold",
                        100.0 * f,
                        spec.name,
                        rules.air_hu
                    ),
                ));
            }
        }
        if let (Some(Some(side)), true, Some(_)) = (sides.get(l), a.n > 0, midline_x_mm) {
            let f = a.wrong as f64 / a.n as f64;
            s.wrong_side_fraction = Some(f);
            if f > rules.max_wrong_side_fraction {
                let (own, other) = match side {
                    Side::Left => ("left", "right"),
                    Side::Right => ("right", "left"),
                };
                s.flags.push(Flag::new(
                    FlagCode::WrongSide,
                    format!(
                        "{:.0} % of {} (a {own} structure) lies on the patient's {other} side",
                        100.0 * f,
                        spec.name
                    ),
                ));
            }
        }
        // The External always meets the ends of a partial scan: not a finding.
        if a.ends && !spec.is_external() {
            s.flags.push(Flag::new(
                FlagCode::Truncated,
                format!(
                    "{} touches the first or last slice: it may extend beyond the scan",
                    spec.name
                ),
            ));
        }
    }

    // 6. Swapped pairs: a left structure to the right of its right partner.
    for (l, left) in manifest.labels.iter().enumerate().skip(1) {
        if sides.get(l) != Some(&Some(Side::Left)) {
            continue;
        }
        let base = pair_base(&left.name);
        for (r, right) in manifest.labels.iter().enumerate().skip(1) {
            if sides.get(r) != Some(&Some(Side::Right)) || pair_base(&right.name) != base {
                continue;
            }
            let (Some(xl), Some(xr)) = (
                out.labels.get(l).and_then(|s| s.centroid_x_mm),
                out.labels.get(r).and_then(|s| s.centroid_x_mm),
            ) else {
                continue;
            };
            if xl < xr {
                let msg = format!(
                    "{} and {} look swapped: the left one's centre is {:.0} mm to the patient's right of the right one's",
                    left.name,
                    right.name,
                    xr - xl
                );
                for idx in [l, r] {
                    if let Some(s) = out.labels.get_mut(idx) {
                        s.flags.push(Flag::new(FlagCode::SwappedPair, msg.clone()));
                    }
                }
            }
        }
    }

    // 7. Expected structures.
    if let Some(a) = &rules.applicability {
        for name in &a.expected_structures {
            let found = manifest
                .labels
                .iter()
                .enumerate()
                .skip(1)
                .find(|(_, l)| l.name.eq_ignore_ascii_case(name))
                .and_then(|(i, _)| acc.get(i))
                .is_some_and(|a| a.n > 0);
            if !found {
                out.case_flags.push(Flag::new(
                    FlagCode::ExpectedMissing,
                    format!("{name} was expected but not found"),
                ));
            }
        }
    }
    Ok(out)
}

/// Applies `mode` to the case flags raised after inference.
pub fn refuse_after(manifest: &Manifest, flags: &[Flag], mode: OnMismatch) -> Result<()> {
    let refusing: Vec<Flag> = flags
        .iter()
        .filter(|f| f.code == FlagCode::ExpectedMissing)
        .cloned()
        .collect();
    if mode == OnMismatch::Refuse && !refusing.is_empty() {
        return Err(not_applicable(manifest, &refusing));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// A manifest with an External, a left/right pair and a solid organ, and `rules` as the
    /// plausibility block.
    fn manifest(rules: &str) -> Manifest {
        let text = format!(
            r#"{{
          "schema_version": 1, "name": "t", "version": "1",
          "onnx": {{"file": "model.onnx", "sha256": "{}",
                   "input": "image", "output": "logits", "dtype": "float32"}},
          "orientation": "LPS", "spacing_mm": [4.0, 4.0, 4.0],
          "normalization": {{"kind": "ct_window", "level": 50, "width": 600, "range": [-1, 1]}},
          "patch_size": [8, 8, 8], "tile_step": 0.5, "blending": "gaussian",
          "output_kind": "logits", "resample_output": "logits_linear",
          "labels": [{{"index": 0, "name": "Background"}},
                     {{"index": 1, "name": "External", "rt_roi_type": "EXTERNAL"}},
                     {{"index": 2, "name": "Kidney_L"}},
                     {{"index": 3, "name": "Kidney_R"}},
                     {{"index": 4, "name": "Liver", "solid": true}}],
          "plausibility": {rules}
        }}"#,
            "ab".repeat(32)
        );
        Manifest::parse(&text, Path::new("model.json")).unwrap()
    }

    const RULES: &str = r#"{"organs_inside_external": true, "laterality_from_names": true,
        "applicability": {"expected_structures": ["Liver"]}}"#;

    /// A 40 × 30 × 6 grid, 2 mm voxels, with `direction`; the body is an ellipse centred in each
    /// slice; returns (labels, CT) with the body at 40 HU.
    fn scene(direction: [[f64; 3]; 3]) -> (Volume<u8>, Volume<f32>) {
        let g = Geometry::new([40, 30, 6], [0.0; 3], [2.0, 2.0, 2.0], direction).unwrap();
        let mut labels = vec![0u8; g.voxel_count()];
        let mut hu = vec![-1000f32; g.voxel_count()];
        for k in 0..6 {
            for j in 0..30 {
                for i in 0..40 {
                    let (x, y) = (i as f64 - 19.5, j as f64 - 14.5);
                    if (x / 16.0).powi(2) + (y / 12.0).powi(2) <= 1.0 {
                        let p = (k * 30 + j) * 40 + i;
                        labels[p] = 1;
                        hu[p] = 40.0;
                    }
                }
            }
        }
        (Volume::new(g, labels).unwrap(), Volume::new(g, hu).unwrap())
    }

    /// Paints `label` on a box [i0, i1) × [j0, j1) × slices [k0, k1).
    fn paint(v: &mut Volume<u8>, label: u8, i: [usize; 2], j: [usize; 2], k: [usize; 2]) {
        let [ni, nj, _] = v.geometry().size;
        for kk in k[0]..k[1] {
            for jj in j[0]..j[1] {
                for ii in i[0]..i[1] {
                    v.data_mut()[(kk * nj + jj) * ni + ii] = label;
                }
            }
        }
    }

    /// Patient x of the midline of `v` (the body is centred in each slice).
    fn midline(v: &Volume<u8>) -> f64 {
        v.geometry().index_to_patient([19.5, 14.5, 2.5])[0]
    }

    const IDENTITY: [[f64; 3]; 3] = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];

    fn codes(flags: &[Flag]) -> Vec<FlagCode> {
        flags.iter().map(|f| f.code).collect()
    }

    #[test]
    fn wrong_side_counts_match_brute_force() {
        for (base, step, mid) in [
            (-10.0, 1.0, 0.0),
            (10.0, -1.0, 0.0),
            (3.0, 0.0, 0.0),
            (-3.0, 0.0, 0.0),
            (-4.5, 0.7, 1.2),
        ] {
            for side in [Side::Left, Side::Right] {
                for (i0, i1) in [(0usize, 30usize), (5, 6), (12, 12), (0, 1), (14, 29)] {
                    let brute = (i0..i1)
                        .filter(|&i| {
                            let x = base + step * i as f64;
                            match side {
                                Side::Left => x < mid,
                                Side::Right => x > mid,
                            }
                        })
                        .count();
                    assert_eq!(
                        count_wrong_side(i0, i1, base, step, mid, side),
                        brute,
                        "{base} {step} {mid} {side:?} [{i0}, {i1})"
                    );
                }
            }
        }
    }

    #[test]
    fn run_scans_at_chunk_edges() {
        for len in [1usize, 15, 16, 17, 31, 32, 33, 70] {
            // A run of 5s, one 6, more 5s.
            let mut row = vec![5u8; len];
            row.push(6);
            row.extend([5u8; 20]);
            for start in (0..len).step_by(3) {
                assert_eq!(run_end(&row, start, 5), len, "len {len} start {start}");
            }
            assert_eq!(run_end(&row, len, 6), len + 1);
            for start in (0..=len).step_by(3) {
                assert_eq!(next_of(&row, start, 6), len, "len {len} start {start}");
            }
            assert_eq!(next_of(&row, len + 1, 6), row.len());
            assert_eq!(next_of(&row, row.len(), 6), row.len());
            assert_eq!(run_end(&row, len + 1, 5), row.len());
            assert_eq!(run_end(&row, row.len(), 5), row.len());
            let mut z = vec![0u8; len];
            assert!(all_zero(&z));
            z[len - 1] = 1;
            assert!(!all_zero(&z));
        }
        assert!(all_zero(&[]));
    }

    #[test]
    fn clip_slice_keeps_what_the_container_encloses() {
        // 7 × 7: a ring of 1 with a 2 inside it and a 2 outside it.
        #[rustfmt::skip]
        let mut s = vec![
            2, 0, 0, 0, 0, 0, 0,
            0, 1, 1, 1, 1, 1, 0,
            0, 1, 0, 0, 0, 1, 0,
            0, 1, 0, 2, 0, 1, 0,
            0, 1, 0, 0, 0, 1, 0,
            0, 1, 1, 1, 1, 1, 0,
            0, 0, 0, 0, 0, 2, 2,
        ];
        let (removed, enclosed) = clip_slice(&mut s, 7, 7, 1, &[false, false, true]);
        assert_eq!(removed, vec![0, 0, 3]);
        assert_eq!(enclosed, 25);
        assert_eq!(s[3 * 7 + 3], 2, "the enclosed voxel stays");
        assert_eq!((s[0], s[6 * 7 + 5], s[6 * 7 + 6]), (0, 0, 0));
        // A gap in the ring: nothing is enclosed any more.
        let mut t = s.clone();
        t[7 + 3] = 0;
        let (removed, _) = clip_slice(&mut t, 7, 7, 1, &[false, false, true]);
        assert_eq!(removed, vec![0, 0, 1]);
    }

    #[test]
    fn a_plausible_case_raises_no_flag() {
        let m = manifest(RULES);
        let (mut labels, ct) = scene(IDENTITY);
        // Patient left is +x: Kidney_L at high i, Kidney_R at low i; the liver in between.
        paint(&mut labels, 2, [26, 30], [12, 17], [1, 5]);
        paint(&mut labels, 3, [9, 13], [12, 17], [1, 5]);
        paint(&mut labels, 4, [17, 23], [8, 12], [1, 5]);
        let mid = midline(&labels);
        let c = check_structures(&mut labels, &ct, &m, Some(mid), None).unwrap();
        for (l, s) in c.labels.iter().enumerate().skip(1) {
            assert!(s.flags.is_empty(), "label {l}: {:?}", s.flags);
        }
        assert!(c.case_flags.is_empty(), "{:?}", c.case_flags);
        assert_eq!(c.labels[2].wrong_side_fraction, Some(0.0));
        assert_eq!(c.labels[4].voxels, 6 * 4 * 4);
    }

    #[test]
    fn organ_outside_the_body_is_clipped_and_flagged() {
        let m = manifest(RULES);
        let (mut labels, ct) = scene(IDENTITY);
        paint(&mut labels, 4, [17, 23], [8, 12], [1, 5]);
        // A "liver" in the air in front of the body, 2 × 2 × 4 voxels.
        paint(&mut labels, 4, [0, 2], [0, 2], [1, 5]);
        let before = labels.data().iter().filter(|&&v| v == 4).count();
        let mid = midline(&labels);
        let c = check_structures(&mut labels, &ct, &m, Some(mid), None).unwrap();
        let after = labels.data().iter().filter(|&&v| v == 4).count();
        assert_eq!(before - after, 16);
        assert_eq!(c.labels[4].removed_outside_container, 16);
        assert_eq!(codes(&c.labels[4].flags), vec![FlagCode::OutsideContainer]);
        // Entirely outside: clipped to nothing, the case flag says the liver is missing.
        let (mut labels, ct) = scene(IDENTITY);
        paint(&mut labels, 4, [0, 2], [0, 2], [1, 5]);
        let mid = midline(&labels);
        let c = check_structures(&mut labels, &ct, &m, Some(mid), None).unwrap();
        assert_eq!(c.labels[4].voxels, 0);
        assert_eq!(codes(&c.case_flags), vec![FlagCode::ExpectedMissing]);
        assert!(refuse_after(&m, &c.case_flags, OnMismatch::Flag).is_ok());
        assert!(matches!(
            refuse_after(&m, &c.case_flags, OnMismatch::Refuse),
            Err(Error::NotApplicable { .. })
        ));
    }

    /// Swapped kidneys are flagged (never renamed), in every orientation: identity, feet-first
    /// (z reversed, x reversed as scanners write FFS), x reversed (a flipped acquisition).
    #[test]
    fn swapped_sides_are_flagged_in_any_orientation() {
        let orientations = [
            IDENTITY,
            [[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]],
            [[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]],
        ];
        for d in orientations {
            let m = manifest(RULES);
            let (mut labels, ct) = scene(d);
            // Patient left is +x: with axis i along -x, high i is the patient's right.
            let left_high_i = d[0][0] > 0.0;
            let (hi_box, lo_box) = ([26, 30], [9, 13]);
            let (correct_l, correct_r) = if left_high_i {
                (hi_box, lo_box)
            } else {
                (lo_box, hi_box)
            };
            paint(&mut labels, 2, correct_l, [12, 17], [1, 5]);
            paint(&mut labels, 3, correct_r, [12, 17], [1, 5]);
            paint(&mut labels, 4, [17, 23], [8, 12], [1, 5]);
            let mid = midline(&labels);
            let c = check_structures(&mut labels.clone(), &ct, &m, Some(mid), None).unwrap();
            assert!(
                c.labels[2].flags.is_empty() && c.labels[3].flags.is_empty(),
                "{d:?}: {:?}",
                c.labels
            );
            // Now swapped.
            let (_, ct) = scene(d);
            let (mut swapped, _) = scene(d);
            paint(&mut swapped, 2, correct_r, [12, 17], [1, 5]);
            paint(&mut swapped, 3, correct_l, [12, 17], [1, 5]);
            paint(&mut swapped, 4, [17, 23], [8, 12], [1, 5]);
            let c = check_structures(&mut swapped, &ct, &m, Some(mid), None).unwrap();
            for l in [2, 3] {
                assert_eq!(
                    codes(&c.labels[l].flags),
                    vec![FlagCode::WrongSide, FlagCode::SwappedPair],
                    "{d:?} label {l}"
                );
            }
            assert_eq!(c.labels[2].wrong_side_fraction, Some(1.0));
        }
    }

    #[test]
    fn air_in_a_solid_organ_and_truncation_are_flagged() {
        let m = manifest(RULES);
        let (mut labels, mut ct) = scene(IDENTITY);
        // The liver reaches the first slice, and a quarter of it is air.
        paint(&mut labels, 4, [17, 23], [8, 12], [0, 4]);
        for k in 0..4 {
            for j in 8..12 {
                for i in 17..19 {
                    ct.data_mut()[(k * 30 + j) * 40 + i] = -900.0;
                }
            }
        }
        let mid = midline(&labels);
        let c = check_structures(&mut labels, &ct, &m, Some(mid), None).unwrap();
        let got = codes(&c.labels[4].flags);
        assert!(got.contains(&FlagCode::AirInSolidOrgan), "{got:?}");
        assert!(got.contains(&FlagCode::Truncated), "{got:?}");
        assert_eq!(c.labels[4].air_voxels, 32);
        // The External always meets the ends of the scan: no truncation flag for it.
        assert!(c.labels[1].flags.is_empty());
    }

    #[test]
    fn builtin_external_replaces_the_models() {
        let m = manifest(r#"{"external": "builtin", "organs_inside_external": true}"#);
        let (mut labels, ct) = scene(IDENTITY);
        // The model's External misses half the body; an organ pokes out into the air.
        for v in labels.data_mut().iter_mut().step_by(2) {
            if *v == 1 {
                *v = 0;
            }
        }
        paint(&mut labels, 4, [0, 2], [0, 2], [1, 5]);
        let mid = midline(&labels);
        let c = check_structures(&mut labels, &ct, &m, Some(mid), None).unwrap();
        assert_eq!(c.external, Some(ExternalSource::Builtin));
        let body = ct.data().iter().filter(|&&h| h > -400.0).count();
        assert_eq!(labels.data().iter().filter(|&&v| v == 1).count(), body);
        assert_eq!(c.labels[4].voxels, 0);
        assert_eq!(c.body_voxels, body);
    }

    /// The builtin External applied in one pass with the skin placement equals applying the
    /// full-resolution body mask ([`crate::body::body_mask`]) voxel by voxel: same label map,
    /// same removed counts, same body voxels; for a CT whose outline has a band (0.6 mm voxels,
    /// cells of 5), with organs partly outside the body and External voxels on a couch.
    #[test]
    fn builtin_external_in_one_pass_equals_the_full_mask() {
        let m = manifest(r#"{"external": "builtin", "organs_inside_external": true}"#);
        let (ni, nj, nk) = (120usize, 90usize, 4usize);
        let g = Geometry::new([ni, nj, nk], [0.0; 3], [0.6, 0.6, 2.0], IDENTITY).unwrap();
        let mut hu = vec![-1000f32; g.voxel_count()];
        let mut labels = vec![0u8; g.voxel_count()];
        let mut next = crate::test_rng::xorshift(0x9e37_79b9_7f4a_7c15);
        for k in 0..nk {
            for j in 0..nj {
                for i in 0..ni {
                    let p = (k * nj + j) * ni + i;
                    let (x, y) = (i as f64 - 60.0, j as f64 - 40.0);
                    let q = (x / 45.0).powi(2) + (y / 30.0).powi(2);
                    // A skin with some noise, a couch under the body.
                    if q <= 1.0 || (q <= 1.08 && next().is_multiple_of(2)) {
                        hu[p] = 30.0;
                    } else if (78..80).contains(&j) {
                        hu[p] = 250.0;
                    }
                    // The model's External: the body and the couch; organs in boxes that
                    // cross the skin.
                    labels[p] = u8::from(hu[p] > -400.0);
                    if (20..50).contains(&i) && (25..60).contains(&j) {
                        labels[p] = 2 + u8::from(next().is_multiple_of(7));
                    }
                    if (90..110).contains(&i) && (30..50).contains(&j) {
                        labels[p] = 4;
                    }
                }
            }
        }
        let ct = Volume::new(g, hu).unwrap();
        let mut one_pass = Volume::new(g, labels.clone()).unwrap();
        let c = check_structures(&mut one_pass, &ct, &m, None, None).unwrap();
        // The same by the full-resolution mask.
        let body = crate::body::body_mask(&ct, &body_options(&m.rules())).unwrap();
        let mut removed = vec![0usize; 5];
        for (v, &b) in labels.iter_mut().zip(body.data()) {
            if b != 0 {
                if *v == 0 {
                    *v = 1;
                }
            } else if *v != 0 {
                if *v != 1 {
                    removed[*v as usize] += 1;
                }
                *v = 0;
            }
        }
        assert_eq!(one_pass.data(), &labels[..]);
        let got: Vec<usize> = c
            .labels
            .iter()
            .map(|s| s.removed_outside_container)
            .collect();
        assert_eq!(got, removed);
        assert!(removed[2] > 0 && removed[4] > 0, "{removed:?}");
        assert_eq!(
            c.body_voxels,
            body.data().iter().filter(|&&v| v != 0).count()
        );
    }

    #[test]
    fn applicability_flags_from_ct_facts() {
        let m = manifest(
            r#"{"applicability": {"body_parts": ["CHEST"], "min_scan_length_mm": 150,
                "lung_fraction": [0.05, 0.6]}}"#,
        );
        let rules = m.rules();
        let good = CtFacts {
            body_part: Some("chest".into()),
            body_length_mm: 300.0,
            lung_fraction: 0.2,
            body_volume_ml: 20000.0,
            midline_x_mm: Some(0.0),
        };
        assert!(applicability_flags(&good, &rules).is_empty());
        let head = CtFacts {
            body_part: Some("HEAD".into()),
            body_length_mm: 120.0,
            lung_fraction: 0.0,
            ..good.clone()
        };
        assert_eq!(
            codes(&applicability_flags(&head, &rules)),
            vec![
                FlagCode::BodyPartMismatch,
                FlagCode::ScanTooShort,
                FlagCode::ContentMismatch
            ]
        );
        let air = CtFacts {
            midline_x_mm: None,
            body_length_mm: 0.0,
            ..good
        };
        assert_eq!(
            codes(&applicability_flags(&air, &rules)),
            vec![FlagCode::NoBody]
        );
    }

    #[test]
    fn bad_rules_are_named_manifest_errors() {
        let parse = |labels_extra: &str, rules: &str| {
            let text = format!(
                r#"{{"schema_version": 1, "name": "t", "version": "1",
                "onnx": {{"file": "m.onnx", "sha256": "{}", "input": "i", "output": "o", "dtype": "float32"}},
                "orientation": "LPS", "spacing_mm": [4.0, 4.0, 4.0],
                "normalization": {{"kind": "ct_window", "level": 50, "width": 600, "range": [-1, 1]}},
                "patch_size": [8, 8, 8], "tile_step": 0.5, "blending": "gaussian",
                "output_kind": "logits", "resample_output": "logits_linear",
                "labels": [{{"index": 0, "name": "Background"}},
                           {{"index": 1, "name": "A"{labels_extra}}},
                           {{"index": 2, "name": "B", "inside": "A"}}],
                "plausibility": {rules}}}"#,
                "ab".repeat(32)
            );
            Manifest::parse(&text, Path::new("model.json"))
        };
        assert!(parse("", "{}").is_ok());
        for (extra, rules) in [
            (r#", "inside": "B""#, "{}"),
            (r#", "inside": "Nope""#, "{}"),
            (r#", "inside": "A""#, "{}"),
            (
                "",
                r#"{"applicability": {"expected_structures": ["Heart"]}}"#,
            ),
            ("", r#"{"organs_inside_external": true}"#),
            ("", r#"{"max_removed_fraction": 2}"#),
        ] {
            let e = parse(extra, rules).unwrap_err();
            assert!(
                matches!(e, Error::InvalidManifest { .. }),
                "{extra} {rules}: {e}"
            );
        }
    }
}
