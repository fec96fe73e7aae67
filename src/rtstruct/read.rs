//! RT Structure Set reader and rasteriser.
//!
//! # Rasterisation convention
//!
//! A voxel belongs to an ROI when its **centre** lies inside the ROI's contours on that slice,
//! all contours of the slice taken together by the even-odd rule (so holes written as separate
//! contours, `CLOSEDPLANAR_XOR` contours and keyholes all subtract). A centre exactly on an
//! edge counts as inside for edges on its left or bottom side in (i, j) (half-open rule). Each
//! contour is placed on the slice nearest to its mean position along the slice normal and is
//! used only when that is within half a slice gap; its Contour Image reference is not trusted
//! (real files have missing or wrong references), a disagreement is logged at debug level.
//! `POINT` and `OPEN_PLANAR` contours are skipped; [`RtStructRoi::kind`] tells areas from points
//! of interest, open curves and empty ROIs, which are all listed.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use rayon::prelude::*;

use crate::dicom::SliceRef;
use crate::error::{Error, Result};
use crate::volume::{Geometry, Volume};

/// One contour as stored in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct RtStructContour {
    /// Contour Geometric Type (`CLOSED_PLANAR`, `CLOSEDPLANAR_XOR`, `OPEN_PLANAR`, `POINT`…).
    pub geometric_type: String,
    /// Contour Data, patient mm.
    pub points: Vec<[f64; 3]>,
    /// The first Referenced SOP Instance UID of its Contour Image Sequence, if any.
    pub referenced_sop_instance_uid: Option<String>,
}

/// One ROI with its contours (possibly none).
#[derive(Debug, Clone, PartialEq)]
pub struct RtStructRoi {
    /// ROI Number.
    pub number: i64,
    /// ROI Name (empty when absent).
    pub name: String,
    /// ROI Display Color.
    pub color: Option<[u8; 3]>,
    /// RT ROI Interpreted Type, when an observation gives one.
    pub interpreted_type: Option<String>,
    /// Referenced Frame of Reference UID of the ROI.
    pub frame_of_reference_uid: Option<String>,
    /// Contours.
    pub contours: Vec<RtStructContour>,
}

/// What an ROI's contours describe, for callers that list or rasterise ROIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoiKind {
    /// No contour at all: an ROI Contour item without Contour Sequence, or no ROI Contour
    /// item (RayStation and Eclipse list empty structures this way). Rasterises to nothing.
    Empty,
    /// Only `POINT` contours: a point of interest (marker, isocentre, reference point). Not an
    /// area: [`rasterise_roi`] gives an empty mask; the points are in [`RtStructRoi::points`].
    Points,
    /// Contours, but none closed (`OPEN_PLANAR`, `OPEN_NONPLANAR`): not rasterised either.
    Open,
    /// At least one `CLOSED_PLANAR` / `CLOSEDPLANAR_XOR` contour: an area, rasterised.
    Area,
}

impl RoiKind {
    /// Lower-case name used in JSON output: `empty`, `points`, `open`, `area`.
    pub fn as_str(self) -> &'static str {
        match self {
            RoiKind::Empty => "empty",
            RoiKind::Points => "points",
            RoiKind::Open => "open",
            RoiKind::Area => "area",
        }
    }
}

fn is_closed(geometric_type: &str) -> bool {
    matches!(geometric_type, "CLOSED_PLANAR" | "CLOSEDPLANAR_XOR")
}

impl RtStructRoi {
    /// Whether the ROI is an area, points of interest, open curves or empty (see [`RoiKind`]).
    pub fn kind(&self) -> RoiKind {
        if self.contours.is_empty() {
            RoiKind::Empty
        } else if self
            .contours
            .iter()
            .any(|c| is_closed(&c.geometric_type) && c.points.len() >= 3)
        {
            RoiKind::Area
        } else if self.contours.iter().all(|c| c.geometric_type == "POINT") {
            RoiKind::Points
        } else {
            RoiKind::Open
        }
    }

    /// The points of its `POINT` contours (patient mm), in file order.
    pub fn points(&self) -> Vec<[f64; 3]> {
        self.contours
            .iter()
            .filter(|c| c.geometric_type == "POINT")
            .flat_map(|c| c.points.iter().copied())
            .collect()
    }
}

/// A parsed RT Structure Set.
#[derive(Debug, Clone, PartialEq)]
pub struct RtStruct {
    /// The file read.
    pub path: PathBuf,
    /// SOP Instance UID.
    pub sop_instance_uid: Option<String>,
    /// The first Referenced Frame of Reference UID.
    pub frame_of_reference_uid: Option<String>,
    /// The first referenced image series UID.
    pub referenced_series_uid: Option<String>,
    /// ROIs in Structure Set ROI Sequence order.
    pub rois: Vec<RtStructRoi>,
}

impl RtStruct {
    /// The ROI with this name (exact match, then case-insensitive).
    pub fn roi(&self, name: &str) -> Option<&RtStructRoi> {
        self.rois
            .iter()
            .find(|r| r.name == name)
            .or_else(|| self.rois.iter().find(|r| r.name.eq_ignore_ascii_case(name)))
    }
}

/// What the reader needs of a data set or sequence item. Two sources give it: dicom-object's
/// parsed tree, and the direct walk over the file's bytes ([`super::direct`]); the structure
/// set is assembled from either by the same code ([`assemble`]).
pub(super) trait Source: Sized + Sync {
    /// Whether the element is present.
    fn has(&self, tag: Tag) -> bool;
    /// A string element's value without leading and trailing spaces and NULs; `None` when
    /// absent, empty or not text.
    fn text(&self, tag: Tag) -> Option<String>;
    /// A sequence's items (none when absent or not a sequence).
    fn items(&self, tag: Tag) -> &[Self];
    /// The Contour Data of a Contour Sequence item.
    fn contour_data(&self) -> ContourValue<'_>;
    /// The number of values its Contour Data holds, counted without converting any.
    fn declared_values(&self) -> u64;

    /// The first value of an integer string.
    fn int(&self, tag: Tag) -> Option<i64> {
        self.text(tag)?.split('\\').next()?.trim().parse().ok()
    }
}

/// A Contour Data value as the source holds it.
pub(super) enum ContourValue<'a> {
    /// No Contour Data.
    Absent,
    /// The value's bytes: decimal strings separated by backslashes ([`contour_points`]).
    Raw(Cow<'a, [u8]>),
    /// Already converted by the parser (or its error).
    Numbers(std::result::Result<Vec<f64>, String>),
}

impl Source for InMemDicomObject {
    fn has(&self, tag: Tag) -> bool {
        self.get(tag).is_some()
    }

    fn text(&self, tag: Tag) -> Option<String> {
        let e = self.get(tag)?;
        let s = e.to_str().ok()?;
        let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
        (!s.is_empty()).then(|| s.to_string())
    }

    fn items(&self, tag: Tag) -> &[Self] {
        self.get(tag).and_then(|e| e.items()).unwrap_or(&[])
    }

    fn contour_data(&self) -> ContourValue<'_> {
        if let Some(e) = self.get(tags::CONTOUR_DATA) {
            ContourValue::Numbers(e.to_multi_float64().map_err(|err| err.to_string()))
        } else if let Some(e) = self.get(CONTOUR_DATA_RAW) {
            match e.to_bytes() {
                Ok(b) => ContourValue::Raw(b),
                Err(err) => ContourValue::Numbers(Err(err.to_string())),
            }
        } else {
            ContourValue::Absent
        }
    }

    fn declared_values(&self) -> u64 {
        if let Some(e) = self.get(CONTOUR_DATA_RAW) {
            e.to_bytes().map_or(0, |b| raw_values(&b))
        } else if let Some(e) = self.get(tags::CONTOUR_DATA) {
            u64::from(e.value().multiplicity())
        } else {
            0
        }
    }
}

/// The number of values in a Contour Data value's bytes: its backslashes plus one, none when it
/// holds only padding.
pub(super) fn raw_values(b: &[u8]) -> u64 {
    if b.iter().any(|c| !c.is_ascii_whitespace() && *c != 0) {
        b.iter().filter(|&&c| c == b'\\').count() as u64 + 1
    } else {
        0
    }
}

/// Reads an RT Structure Set (with or without preamble and file meta).
pub fn read_rtstruct(path: &Path) -> Result<RtStruct> {
    let t = std::time::Instant::now();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    log::debug!(
        "{}: {} bytes read in {:.3} s",
        path.display(),
        bytes.len(),
        t.elapsed().as_secs_f64()
    );
    parse(path, Cow::Owned(bytes))
}

/// Reads an RT Structure Set held in memory; `name` stands for the path in messages and in
/// [`RtStruct::path`].
pub fn read_rtstruct_bytes(name: &Path, bytes: &[u8]) -> Result<RtStruct> {
    parse(name, Cow::Borrowed(bytes))
}

/// [`read_rtstruct_bytes`] through dicom-object's parsed tree only, never the direct walk: the
/// reference the direct walk is checked against (tests and the `rtstruct` fuzz target).
#[doc(hidden)]
pub fn read_rtstruct_bytes_via_parser(name: &Path, bytes: &[u8]) -> Result<RtStruct> {
    let headers = crate::dicom::contour_data_headers(bytes);
    parse_rtstruct(parse_tree(name, bytes.to_vec(), headers.as_ref())?)
}

/// Whether [`read_rtstruct_bytes`] reads these bytes by the direct walk (else by dicom-object's
/// parser); for tests.
#[doc(hidden)]
pub fn read_by_direct_walk(bytes: &[u8]) -> bool {
    direct_root(bytes, crate::dicom::contour_data_headers(bytes).as_ref()).is_some()
}

/// The data set by the direct walk, where the file allows it ([`super::direct`]).
fn direct_root<'a>(
    bytes: &'a [u8],
    headers: Option<&crate::dicom::ContourDataHeaders>,
) -> Option<super::direct::Item<'a>> {
    let h = headers.filter(|h| h.meta_ok)?;
    super::direct::walk(bytes, h.explicit, h.data_start)
}

/// dicom-object's parse of a structure set whose bytes are ours to retag
/// ([`hide_contour_data`]); the bytes go once parsed (the tree holds its own copy of every
/// value, so the two are not held while the contours are converted).
fn parse_tree(
    name: &Path,
    mut bytes: Vec<u8>,
    headers: Option<&crate::dicom::ContourDataHeaders>,
) -> Result<crate::dicom::DicomFile> {
    if let Some(h) = headers {
        hide_contour_data(&mut bytes, h);
    }
    crate::dicom::read_bytes(name, &bytes)
}

/// Parses a structure set. Little-endian files with a file meta group whose data set holds only
/// what the direct walk reads as dicom-object would ([`super::direct`]) are read straight from
/// their bytes; any other file, and any file the direct walk stops on or that then fails, is
/// parsed by dicom-object (on a copy of the bytes when they are borrowed).
fn parse(name: &Path, bytes: Cow<'_, [u8]>) -> Result<RtStruct> {
    crate::dicom::check_file_size(name, bytes.len() as u64)?;
    let t = std::time::Instant::now();
    let headers = crate::dicom::contour_data_headers(&bytes);
    let scanned = t.elapsed().as_secs_f64();
    if let Some(root) = direct_root(&bytes, headers.as_ref()) {
        let walked = t.elapsed().as_secs_f64();
        match assemble(name, &root) {
            Ok(rs) => {
                log::debug!(
                    "{}: pre-scan {scanned:.3} s, direct walk {:.3} s, contours {:.3} s",
                    name.display(),
                    walked - scanned,
                    t.elapsed().as_secs_f64() - walked
                );
                return Ok(rs);
            }
            // A file that fails is parsed again by dicom-object, whose reading of the values
            // (their character set too) gives the error.
            Err(e) => log::debug!("{}: {e}; parsed again by dicom-object", name.display()),
        }
    }
    let file = parse_tree(name, bytes.into_owned(), headers.as_ref())?;
    let parsed = t.elapsed().as_secs_f64();
    let rs = parse_rtstruct(file)?;
    log::debug!(
        "{}: pre-scan {scanned:.3} s, DICOM parse {:.3} s, contours {:.3} s",
        name.display(),
        parsed - scanned,
        t.elapsed().as_secs_f64() - parsed
    );
    Ok(rs)
}

/// Where [`hide_contour_data`] moves Contour Data: a private tag the dictionary does not know.
const CONTOUR_DATA_RAW: Tag = Tag(0x3007, 0x1050);

/// Contour Data is most of a structure set (millions of numbers), and the DICOM parser makes
/// one string per number. Before parsing, each Contour Data (3006,0050) element header found by
/// the pre-scan is retagged [`CONTOUR_DATA_RAW`] (and, in explicit VR, marked `LT`, a VR with
/// the same header layout and a single value), so the parser keeps each contour's text whole;
/// [`contour_points`] splits it. Only little-endian data sets that are not deflated are
/// retagged (false otherwise: the file is parsed as it is).
fn hide_contour_data(bytes: &mut [u8], headers: &crate::dicom::ContourDataHeaders) -> bool {
    let explicit = headers.explicit;
    let mut any = false;
    for &pos in &headers.at {
        let Ok(pos) = usize::try_from(pos) else {
            continue;
        };
        if explicit && bytes.get(pos + 4..pos + 6) != Some(&b"DS"[..]) {
            continue;
        }
        if let Some(h) = bytes.get_mut(pos..pos + 4) {
            h[..2].copy_from_slice(&CONTOUR_DATA_RAW.0.to_le_bytes());
            h[2..].copy_from_slice(&CONTOUR_DATA_RAW.1.to_le_bytes());
            any = true;
        }
        if explicit && let Some(vr) = bytes.get_mut(pos + 4..pos + 6) {
            vr.copy_from_slice(b"LT");
        }
    }
    any
}

/// Why a Contour Data value gives no points.
enum BadContour {
    /// A value that is not a decimal string (the reason).
    Text(String),
    /// This many values: not a multiple of three, or not all finite.
    Values(usize),
}

/// The points of a Contour Data value: decimal strings separated by backslashes (spaces and NUL
/// padding around them ignored), taken three at a time.
fn contour_points(raw: &[u8]) -> std::result::Result<Vec<[f64; 3]>, BadContour> {
    let text = trim_padding(raw);
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let mut out: Vec<[f64; 3]> = Vec::with_capacity(text.len() / 24 + 1);
    let (mut p, mut k, mut n, mut finite) = ([0.0; 3], 0usize, 0usize, true);
    for v in text.split(|&c| c == b'\\') {
        let x = number(trim_padding(v)).map_err(BadContour::Text)?;
        finite &= x.is_finite();
        if let Some(slot) = p.get_mut(k) {
            *slot = x;
        }
        k += 1;
        n += 1;
        if k == 3 {
            out.push(p);
            k = 0;
        }
    }
    if k != 0 || !finite {
        return Err(BadContour::Values(n));
    }
    Ok(out)
}

/// One decimal string: [`decimal_fast`], else `str::parse`.
fn number(v: &[u8]) -> std::result::Result<f64, String> {
    match decimal_fast(v) {
        Some(x) => Ok(x),
        None => std::str::from_utf8(v)
            .ok()
            .and_then(|t| t.parse::<f64>().ok())
            .ok_or_else(|| format!("{:?} is not a decimal string", String::from_utf8_lossy(v))),
    }
}

/// `v` without leading and trailing spaces and NULs.
fn trim_padding(mut v: &[u8]) -> &[u8] {
    let pad = |c: &u8| *c == b' ' || *c == 0;
    while let [first, rest @ ..] = v
        && pad(first)
    {
        v = rest;
    }
    while let [rest @ .., last] = v
        && pad(last)
    {
        v = rest;
    }
    v
}

/// `-?digits[.digits]` with at most 15 digits in all, converted exactly as
/// `str::parse::<f64>` converts it: the digits as an integer below 2⁵³ divided by an exact
/// power of ten is one correctly rounded operation (the fast path of correctly rounded decimal
/// parsing). `None` for anything else (exponents, a plus sign, more digits), which takes
/// `str::parse`.
fn decimal_fast(v: &[u8]) -> Option<f64> {
    const POW10: [f64; 16] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ];
    // signs vary from number to number: no branch on them
    let neg = v.first() == Some(&b'-');
    let d = v.get(usize::from(neg)..).unwrap_or_default();
    // at most 15 digits and a point: the digits as an integer stay below 10¹⁵ < 2⁵³
    if d.len() > 16 {
        return None;
    }
    let mut m: u64 = 0;
    let mut point: Option<usize> = None;
    for (i, &c) in d.iter().enumerate() {
        let digit = c.wrapping_sub(b'0');
        if digit < 10 {
            m = m * 10 + u64::from(digit);
        } else if c == b'.' && point.is_none() {
            point = Some(i);
        } else {
            return None;
        }
    }
    let digits = d.len() - usize::from(point.is_some());
    if digits == 0 || digits > 15 {
        return None;
    }
    let decimals = point.map_or(0, |p| d.len() - p - 1);
    let x = m as f64 / *POW10.get(decimals)?;
    Some(if neg { -x } else { x })
}

fn parse_rtstruct(file: crate::dicom::DicomFile) -> Result<RtStruct> {
    let obj: &InMemDicomObject = &file.obj;
    assemble(&file.path, obj)
}

/// The structure set held by a parsed data set `obj` of the file `path`.
fn assemble<S: Source>(path: &Path, obj: &S) -> Result<RtStruct> {
    let invalid = |tag: Tag, reason: String| crate::dicom::invalid_tag(path, tag, reason);
    if let Some(m) = obj.text(tags::MODALITY)
        && m != "RTSTRUCT"
    {
        return Err(invalid(tags::MODALITY, format!("{m} is not RTSTRUCT")));
    }
    if !obj.has(tags::STRUCTURE_SET_ROI_SEQUENCE) && !obj.has(tags::ROI_CONTOUR_SEQUENCE) {
        return Err(crate::dicom::missing_tag(
            path,
            tags::STRUCTURE_SET_ROI_SEQUENCE,
        ));
    }
    let mut frame = None;
    let mut series = None;
    for f in obj.items(tags::REFERENCED_FRAME_OF_REFERENCE_SEQUENCE) {
        frame = frame.or_else(|| f.text(tags::FRAME_OF_REFERENCE_UID));
        for st in f.items(tags::RT_REFERENCED_STUDY_SEQUENCE) {
            for se in st.items(tags::RT_REFERENCED_SERIES_SEQUENCE) {
                series = series.or_else(|| se.text(tags::SERIES_INSTANCE_UID));
            }
        }
    }
    let mut rois: Vec<RtStructRoi> = Vec::new();
    let mut by_number: HashMap<i64, usize> = HashMap::new();
    for (n, it) in obj
        .items(tags::STRUCTURE_SET_ROI_SEQUENCE)
        .iter()
        .enumerate()
    {
        let number = it.int(tags::ROI_NUMBER).ok_or_else(|| {
            invalid(
                tags::ROI_NUMBER,
                format!(
                    "item {} of StructureSetROISequence has no ROI Number",
                    n + 1
                ),
            )
        })?;
        let name = it.text(tags::ROI_NAME).unwrap_or_default();
        if let Some(&other) = by_number.get(&number) {
            // Contours are matched to ROIs by number: two ROIs with one number cannot be told
            // apart (one would read empty, the other as both).
            return Err(invalid(
                tags::ROI_NUMBER,
                format!(
                    "ROI number {number} is used by {:?} and {name:?} (items {} and {} of StructureSetROISequence)",
                    rois.get(other).map(|r| r.name.as_str()).unwrap_or(""),
                    other + 1,
                    n + 1
                ),
            ));
        }
        by_number.insert(number, rois.len());
        rois.push(RtStructRoi {
            number,
            name,
            color: None,
            interpreted_type: None,
            frame_of_reference_uid: it.text(tags::REFERENCED_FRAME_OF_REFERENCE_UID),
            contours: Vec::new(),
        });
    }
    let limits = crate::limits::limits();
    let mut points_of_roi: HashMap<usize, u64> = HashMap::new();
    let mut points_total: u64 = 0;
    for (n, it) in obj.items(tags::ROI_CONTOUR_SEQUENCE).iter().enumerate() {
        let Some(number) = it.int(tags::REFERENCED_ROI_NUMBER) else {
            log::warn!(
                "{}: item {} of ROIContourSequence has no Referenced ROI Number; skipped",
                path.display(),
                n + 1
            );
            continue;
        };
        let idx = match by_number.get(&number) {
            Some(&i) => i,
            None => {
                log::warn!(
                    "{}: ROI contour {number} has no StructureSetROISequence item",
                    path.display()
                );
                by_number.insert(number, rois.len());
                rois.push(RtStructRoi {
                    number,
                    name: String::new(),
                    color: None,
                    interpreted_type: None,
                    frame_of_reference_uid: None,
                    contours: Vec::new(),
                });
                rois.len() - 1
            }
        };
        let color = it.text(tags::ROI_DISPLAY_COLOR).and_then(|s| {
            let v: Vec<u8> = s
                .split('\\')
                .filter_map(|x| x.trim().parse::<f64>().ok())
                .map(|x| x.clamp(0.0, 255.0) as u8)
                .collect();
            (v.len() == 3).then(|| [v[0], v[1], v[2]])
        });
        // The points the Contour Data elements hold, counted from their separators before any
        // is converted, against the `max_contour_points_*` limits.
        let contour_items = it.items(tags::CONTOUR_SEQUENCE);
        let points: u64 = contour_items
            .par_iter()
            .map(|ci| ci.declared_values().div_ceil(3))
            .sum();
        let of_roi = points_of_roi.entry(idx).or_insert(0);
        *of_roi = of_roi.saturating_add(points);
        crate::limits::check(
            "max_contour_points_per_roi",
            *of_roi,
            limits.max_contour_points_per_roi,
            || format!("{}: contour points of ROI {number}", path.display()),
        )?;
        points_total = points_total.saturating_add(points);
        crate::limits::check(
            "max_contour_points_total",
            points_total,
            limits.max_contour_points_total,
            || format!("{}: contour points of all ROIs", path.display()),
        )?;
        // Contour Data converted to points in parallel (most of a structure set's bytes)
        let contours: Vec<Option<RtStructContour>> = contour_items
            .par_iter()
            .enumerate()
            .map(|(c, ci)| {
                let points = match ci.contour_data() {
                    ContourValue::Absent => return Ok(None),
                    ContourValue::Raw(b) => contour_points(&b),
                    ContourValue::Numbers(n) => n.map_err(BadContour::Text).and_then(|v| {
                        let finite = v.iter().all(|x| x.is_finite());
                        (v.len() % 3 == 0 && finite)
                            .then(|| v.chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect())
                            .ok_or(BadContour::Values(v.len()))
                    }),
                };
                let points = points.map_err(|err| {
                    let reason = match err {
                        BadContour::Text(err) => format!("ROI {number} contour {}: {err}", c + 1),
                        BadContour::Values(n) => format!(
                            "ROI {number} contour {}: {n} values, not finite (x, y, z) triplets",
                            c + 1
                        ),
                    };
                    invalid(tags::CONTOUR_DATA, reason)
                })?;
                let referenced = ci
                    .items(tags::CONTOUR_IMAGE_SEQUENCE)
                    .first()
                    .and_then(|r| r.text(tags::REFERENCED_SOP_INSTANCE_UID));
                Ok(Some(RtStructContour {
                    geometric_type: ci
                        .text(tags::CONTOUR_GEOMETRIC_TYPE)
                        .unwrap_or_else(|| "CLOSED_PLANAR".into()),
                    points,
                    referenced_sop_instance_uid: referenced,
                }))
            })
            // every contour's result, then the first error in file order (the same error
            // whichever thread met which contour first)
            .collect::<Vec<Result<_>>>()
            .into_iter()
            .collect::<Result<_>>()?;
        if let Some(r) = rois.get_mut(idx) {
            r.color = color.or(r.color);
            r.contours.extend(contours.into_iter().flatten());
        }
    }
    for it in obj.items(tags::RTROI_OBSERVATIONS_SEQUENCE) {
        if let (Some(number), Some(t)) = (
            it.int(tags::REFERENCED_ROI_NUMBER),
            it.text(tags::RTROI_INTERPRETED_TYPE),
        ) && let Some(r) = by_number.get(&number).and_then(|&i| rois.get_mut(i))
        {
            r.interpreted_type = Some(t);
        }
    }
    Ok(RtStruct {
        path: path.to_path_buf(),
        sop_instance_uid: obj.text(tags::SOP_INSTANCE_UID),
        frame_of_reference_uid: frame,
        referenced_series_uid: series,
        rois,
    })
}

/// Options for [`rasterise_roi`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RasterOptions<'a> {
    /// The CT slices (volume order), only used to log contours whose Contour Image reference
    /// disagrees with their position.
    pub slices: Option<&'a [SliceRef]>,
}

/// Rasterises an ROI onto a grid: 1 inside, 0 outside (see the module docs for the rule).
pub fn rasterise_roi(
    roi: &RtStructRoi,
    geometry: &Geometry,
    opts: &RasterOptions<'_>,
) -> Result<Volume<u8>> {
    let [cols, rows, nk] = geometry.size;
    let mut by_slice: BTreeMap<usize, Vec<Vec<[f64; 2]>>> = BTreeMap::new();
    let uid_to_k: HashMap<&str, usize> = opts
        .slices
        .map(|s| {
            s.iter()
                .enumerate()
                .map(|(k, r)| (r.sop_instance_uid.as_str(), k))
                .collect()
        })
        .unwrap_or_default();
    // contours mapped to the grid in parallel, then each slice filled in place in parallel
    let mapped: Vec<Option<(usize, Vec<[f64; 2]>)>> = roi
        .contours
        .par_iter()
        .enumerate()
        .map(|(n, c)| {
            if !is_closed(&c.geometric_type) {
                log::debug!(
                    "ROI '{}': contour {} is {}, not closed; skipped",
                    roi.name,
                    n + 1,
                    c.geometric_type
                );
                return None;
            }
            if c.points.len() < 3 {
                return None;
            }
            // The in-plane indices kept, the slice index summed on the way (no second list).
            let mut zsum = 0.0;
            let plane: Vec<[f64; 2]> = c
                .points
                .iter()
                .map(|p| {
                    let [i, j, k] = geometry.patient_to_index(*p);
                    zsum += k;
                    [i, j]
                })
                .collect();
            let kz = zsum / plane.len() as f64;
            let k = kz.round();
            if (kz - k).abs() > 0.5 + 1e-6 || k < 0.0 || k >= nk as f64 {
                log::debug!(
                    "ROI '{}': contour {} at slice position {kz:.2} is off the grid; skipped",
                    roi.name,
                    n + 1
                );
                return None;
            }
            let k = k as usize;
            if let Some(r) = c.referenced_sop_instance_uid.as_deref()
                && let Some(&rk) = uid_to_k.get(r)
                && rk != k
            {
                log::debug!(
                    "ROI '{}': contour {} references slice {rk} but lies on slice {k}",
                    roi.name,
                    n + 1
                );
            }
            Some((k, plane))
        })
        .collect();
    for (k, poly) in mapped.into_iter().flatten() {
        by_slice.entry(k).or_default().push(poly);
    }
    let mut data = vec![0u8; geometry.voxel_count()];
    let plane = cols * rows;
    data.par_chunks_mut(plane.max(1))
        .enumerate()
        .for_each(|(k, dst)| {
            if let Some(polys) = by_slice.get(&k) {
                fill_even_odd_into(polys, cols, rows, dst);
            }
        });
    Volume::new(*geometry, data)
}

/// Even-odd scanline fill at voxel centres of polygons in (i, j) index coordinates.
#[cfg(test)]
pub(crate) fn fill_even_odd(polys: &[Vec<[f64; 2]>], cols: usize, rows: usize) -> Vec<u8> {
    let mut out = vec![0u8; cols * rows];
    fill_even_odd_into(polys, cols, rows, &mut out);
    out
}

/// `x.ceil()` without a call into libm (the baseline x86-64 target has no rounding
/// instruction). It equals `ceil` within the `i64` range (beyond 2⁵³ every value is an integer).
/// Beyond that range the saturated cast still lies on the same side of every grid index, and NaN
/// gives 0: once clamped to the grid, as every caller does, the result is `ceil`'s.
#[inline]
fn ceil_grid(x: f64) -> f64 {
    let t = x as i64 as f64;
    if t < x { t + 1.0 } else { t }
}

/// `dst[i]` = XOR of `src[..=i]` for bytes 0 and 1, eight bytes at a time (a prefix XOR
/// within a little-endian word is three shifts; the parity so far is carried between words).
fn prefix_parity(src: &[u8], dst: &mut [u8]) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let mut inside = 0u64;
    let mut d8 = dst.chunks_exact_mut(8);
    let mut s8 = src.chunks_exact(8);
    for (d, s) in (&mut d8).zip(&mut s8) {
        let mut b = [0u8; 8];
        b.copy_from_slice(s);
        let mut x = u64::from_le_bytes(b);
        x ^= x << 8;
        x ^= x << 16;
        x ^= x << 32;
        x ^= inside * ONES;
        d.copy_from_slice(&x.to_le_bytes());
        inside = x >> 56;
    }
    let mut inside = inside as u8;
    for (v, &t) in d8.into_remainder().iter_mut().zip(s8.remainder()) {
        inside ^= t;
        *v = inside;
    }
}

/// [`fill_even_odd`] into `out` (a zeroed `cols × rows` slice).
fn fill_even_odd_into(polys: &[Vec<[f64; 2]>], cols: usize, rows: usize, out: &mut [u8]) {
    // Edges (x1, y1, x2, y2), then bucketed by the first row they cross (counting sort).
    let mut edges: Vec<[f64; 4]> = Vec::new();
    for p in polys {
        let n = p.len();
        for a in 0..n {
            let (p1, p2) = (p[a], p[(a + 1) % n]);
            if p1[1] != p2[1] {
                edges.push([p1[0], p1[1], p2[0], p2[1]]);
            }
        }
    }
    // First row centre j with j >= lo (half-open [lo, hi)); `rows` (left out) when none on the
    // grid.
    let first_row = |e: &[f64; 4]| {
        let j0 = ceil_grid(e[1].min(e[3])).max(0.0);
        if j0 < rows as f64 { j0 as usize } else { rows }
    };
    let (start, by_row) = crate::bucket::by_key(
        rows,
        edges
            .iter()
            .enumerate()
            .map(|(e, edge)| (first_row(edge), e as u32)),
    );
    // Even-odd by parity instead of sorting each row's crossings: a voxel centre i lies inside
    // when an odd number of crossings have ceil(x) <= i (ceil and the clamp to [0, cols] keep
    // the crossings' order, so this fills exactly the spans [ceil(x0), ceil(x1)),
    // [ceil(x2), ceil(x3))… of the sorted crossings). An unpaired last crossing (an odd count)
    // is left out, as the pairing leaves it out.
    let mut active: Vec<u32> = Vec::new();
    let mut toggles = vec![0u8; cols + 1];
    for (j, row) in out.chunks_exact_mut(cols.max(1)).enumerate().take(rows) {
        let y = j as f64;
        let (a, b) = (
            start.get(j).copied().unwrap_or(0),
            start.get(j + 1).copied().unwrap_or(0),
        );
        active.extend_from_slice(by_row.get(a..b).unwrap_or(&[]));
        active.retain(|&e| edges.get(e as usize).is_some_and(|e| y < e[1].max(e[3])));
        if active.is_empty() {
            continue;
        }
        let (mut lo, mut hi) = (cols, 0usize);
        let mut last: Option<(f64, usize)> = None;
        for &e in &active {
            let Some(&[x1, y1, x2, y2]) = edges.get(e as usize) else {
                continue;
            };
            let x = x1 + (y - y1) / (y2 - y1) * (x2 - x1);
            let c = ceil_grid(x).clamp(0.0, cols as f64) as usize;
            if let Some(t) = toggles.get_mut(c) {
                *t ^= 1;
            }
            lo = lo.min(c);
            hi = hi.max(c);
            if last.is_none_or(|(m, _)| x.total_cmp(&m).is_gt()) {
                last = Some((x, c));
            }
        }
        if active.len() % 2 == 1
            && let Some((_, c)) = last
            && let Some(t) = toggles.get_mut(c)
        {
            *t ^= 1;
        }
        // The running parity written to every voxel of the span (the row is zero outside it).
        let hi = hi.min(cols);
        if let (Some(src), Some(dst)) = (toggles.get(lo..hi), row.get_mut(lo..hi)) {
            prefix_parity(src, dst);
        }
        if let Some(t) = toggles.get_mut(lo..=hi) {
            t.fill(0);
        }
    }
}

/// The even-odd fill by sorting each row's crossings and filling between pairs: the reference
/// the parity fill is checked against.
#[cfg(test)]
fn fill_even_odd_sorted(polys: &[Vec<[f64; 2]>], cols: usize, rows: usize) -> Vec<u8> {
    let mut out = vec![0u8; cols * rows];
    for (j, row) in out.chunks_exact_mut(cols.max(1)).enumerate().take(rows) {
        let y = j as f64;
        let mut xs = Vec::new();
        for p in polys {
            let n = p.len();
            for a in 0..n {
                let (p1, p2) = (p[a], p[(a + 1) % n]);
                let (lo, hi) = (p1[1].min(p2[1]), p1[1].max(p2[1]));
                if p1[1] != p2[1] && y >= lo.ceil().max(0.0) && y < hi {
                    xs.push(p1[0] + (y - p1[1]) / (p2[1] - p1[1]) * (p2[0] - p1[0]));
                }
            }
        }
        xs.sort_by(f64::total_cmp);
        for pair in xs.chunks_exact(2) {
            let a = pair[0].ceil().max(0.0);
            let b = pair[1].ceil().min(cols as f64);
            if a < b {
                row[a as usize..b as usize].fill(1);
            }
        }
    }
    out
}

/// Checks that the file's frame of reference matches the CT's (a warning only: many files
/// carry none).
pub fn check_frame_of_reference(rs: &RtStruct, ct_frame: &str) -> Result<()> {
    match rs.frame_of_reference_uid.as_deref() {
        Some(f) if f != ct_frame => Err(Error::InvalidTag {
            path: rs.path.clone(),
            tag: "FrameOfReferenceUID (0020,0052)".into(),
            reason: format!("structure set is drawn on {f}, the CT is {ct_frame}"),
            source: None,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    /// The parity fill equals filling between sorted crossings, on random polygons (self-
    /// intersecting, overlapping, partly off the grid, with vertices on voxel centres).
    #[test]
    fn parity_fill_equals_sorted_fill() {
        let mut rng = autocontour_test_support::XorShift::new(0x51_7cc1_b727_220a);
        let (cols, rows) = (23usize, 19usize);
        for case in 0..3000 {
            let polys: Vec<Vec<[f64; 2]>> = (0..1 + case % 3)
                .map(|_| {
                    let n = 3 + (rng.next_u64() % 9) as usize;
                    (0..n)
                        .map(|_| {
                            let mut c = || {
                                let r = rng.next_u64();
                                let v = (r % 3000) as f64 / 100.0 - 3.0;
                                // A third of the vertices on whole voxel positions.
                                if r.is_multiple_of(3) { v.round() } else { v }
                            };
                            [c(), c()]
                        })
                        .collect()
                })
                .collect();
            assert_eq!(
                fill_even_odd(&polys, cols, rows),
                fill_even_odd_sorted(&polys, cols, rows),
                "{polys:?}"
            );
        }
    }

    /// `ceil_grid` is `ceil` wherever the fill uses it (then clamped to a grid), including
    /// values next to integers, beyond 2⁵³, beyond the `i64` range and NaN.
    #[test]
    fn ceil_grid_equals_ceil_on_the_grid() {
        let clamp = |v: f64| v.clamp(0.0, 600.0) as usize;
        let mut vals = vec![
            0.0,
            -0.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            -f64::MIN_POSITIVE,
            9.007_199_254_740_993e15,
            -9.007_199_254_740_993e15,
            9.3e18,
            -9.3e18,
            1e300,
            -1e300,
        ];
        for i in -3..600 {
            let v = f64::from(i);
            vals.extend([v, v.next_up(), v.next_down(), v + 0.5, v - 0.5]);
        }
        for v in vals {
            assert_eq!(clamp(super::ceil_grid(v)), clamp(v.ceil()), "{v}");
            if v.is_finite() && v.abs() < 9e18 {
                assert_eq!(super::ceil_grid(v), v.ceil(), "{v}");
            }
        }
    }

    /// The word-at-a-time prefix parity equals the running XOR, at every length and offset.
    #[test]
    fn prefix_parity_equals_running_xor() {
        let mut rng = autocontour_test_support::XorShift::new(0x2545_f491_4f6c_dd1d);
        for len in 0..70 {
            let src: Vec<u8> = (0..len).map(|_| (rng.next_u64() % 2) as u8).collect();
            let mut want = Vec::with_capacity(len);
            let mut p = 0u8;
            for &t in &src {
                p ^= t;
                want.push(p);
            }
            let mut got = vec![7u8; len];
            super::prefix_parity(&src, &mut got);
            assert_eq!(got, want, "{src:?}");
        }
    }

    /// The fast decimal path gives `str::parse`'s value bit for bit, and declines what it does
    /// not cover.
    #[test]
    fn decimal_fast_equals_str_parse() {
        let mut rng = autocontour_test_support::XorShift::new(0x9e37_79b9_7f4a_7c15);
        let mut texts: Vec<String> = [
            "0",
            "-0",
            "1.",
            ".5",
            "-0.000",
            "123456789012345",
            "0.1",
            "-12.345",
            "999.999",
            "0.30000000000000004",
            "1e3",
            "+1",
            "12345678901234567",
            "1.2.3",
            "",
            "-",
            "-.",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for _ in 0..200_000 {
            let r = rng.next_u64();
            let int = r % 100_000;
            let frac = (r >> 20) % 1_000_000;
            let decimals = ((r >> 45) % 7) as usize;
            let sign = if r >> 63 == 1 { "-" } else { "" };
            let f = format!("{frac:06}");
            texts.push(if decimals == 0 {
                format!("{sign}{int}")
            } else {
                format!("{sign}{int}.{}", &f[..decimals])
            });
        }
        for t in &texts {
            let parsed = t.parse::<f64>().ok();
            match decimal_fast(t.as_bytes()) {
                Some(x) => assert_eq!(Some(x.to_bits()), parsed.map(f64::to_bits), "{t}"),
                None => assert!(
                    t.contains(['e', '+']) || t.len() > 16 || parsed.is_none(),
                    "{t} declined"
                ),
            }
        }
        let points = |b: &[u8]| match contour_points(b) {
            Ok(p) => Ok(p),
            Err(BadContour::Text(t)) => Err(t),
            Err(BadContour::Values(n)) => Err(format!("{n} values")),
        };
        assert_eq!(
            points(b" 1\\-2.5 \\3e1\\.25\\0\\-0.0\0"),
            Ok(vec![[1.0, -2.5, 30.0], [0.25, 0.0, -0.0]])
        );
        assert!(points(b"1\\x").unwrap_err().contains("\"x\""));
        assert_eq!(points(b"1\\2\\3\\4"), Err("4 values".into()));
        assert_eq!(points(b"1\\2\\1e999"), Err("3 values".into()));
        assert_eq!(points(b" \0"), Ok(vec![]));
    }

    /// A minimal structure set with one ROI and `data` as its one contour's Contour Data, in
    /// the given transfer syntax.
    fn tiny_rtstruct(data: &str, ts: &str) -> Vec<u8> {
        tiny_named(data, ts, "Body", None)
    }

    /// [`tiny_rtstruct`] with this ROI name and Specific Character Set.
    fn tiny_named(data: &str, ts: &str, name: &str, charset: Option<&str>) -> Vec<u8> {
        tiny_contours(&[data], ts, name, charset)
    }

    /// A structure set with one ROI whose contours hold these Contour Data values.
    fn tiny_contours(datas: &[&str], ts: &str, name: &str, charset: Option<&str>) -> Vec<u8> {
        use crate::dicom::write::{item, put, put_seq, with_file_meta};
        use dicom_core::VR;
        let mut o = InMemDicomObject::new_empty();
        if let Some(cs) = charset {
            put(&mut o, tags::SPECIFIC_CHARACTER_SET, VR::CS, cs);
        }
        put(
            &mut o,
            tags::SOP_CLASS_UID,
            VR::UI,
            "1.2.840.10008.5.1.4.1.1.481.3",
        );
        put(&mut o, tags::SOP_INSTANCE_UID, VR::UI, "2.25.7");
        put(&mut o, tags::MODALITY, VR::CS, "RTSTRUCT");
        put_seq(
            &mut o,
            tags::STRUCTURE_SET_ROI_SEQUENCE,
            vec![item(|it| {
                put(it, tags::ROI_NUMBER, VR::IS, "1");
                put(it, tags::ROI_NAME, VR::LO, name);
            })],
        );
        let contours = datas
            .iter()
            .map(|data| {
                item(|it| {
                    put(it, tags::CONTOUR_GEOMETRIC_TYPE, VR::CS, "CLOSED_PLANAR");
                    put(it, tags::CONTOUR_DATA, VR::DS, *data);
                })
            })
            .collect::<Vec<_>>();
        put_seq(
            &mut o,
            tags::ROI_CONTOUR_SEQUENCE,
            vec![item(|it| {
                put_seq(it, tags::CONTOUR_SEQUENCE, contours);
                put(it, tags::REFERENCED_ROI_NUMBER, VR::IS, "1");
            })],
        );
        let obj = with_file_meta(o, ts, "RTSTRUCT").unwrap();
        let mut buf = Vec::new();
        obj.write_all(&mut buf).unwrap();
        buf
    }

    #[test]
    fn contour_data_is_read_whole_in_implicit_and_explicit_vr() {
        let data = "1.5\\-2\\3.25\\ 4 \\+5\\6E0\\7\\8.125\\-9";
        let want = vec![[1.5, -2.0, 3.25], [4.0, 5.0, 6.0], [7.0, 8.125, -9.0]];
        for ts in [
            crate::dicom::write::IMPLICIT_VR_LE,
            crate::dicom::write::EXPLICIT_VR_LE,
        ] {
            let bytes = tiny_rtstruct(data, ts);
            let mut copy = bytes.clone();
            let headers = crate::dicom::contour_data_headers(&copy).unwrap();
            assert!(
                hide_contour_data(&mut copy, &headers),
                "{ts}: Contour Data not found"
            );
            let rs = read_rtstruct_bytes(Path::new("tiny"), &bytes).unwrap();
            assert_eq!(rs.rois.len(), 1);
            assert_eq!(rs.rois[0].contours[0].points, want, "{ts}");
            // the parser's own path (nothing retagged) reads the same numbers
            let plain =
                parse_rtstruct(crate::dicom::read_bytes(Path::new("tiny"), &bytes).unwrap())
                    .unwrap();
            assert_eq!(plain.rois[0].contours[0].points, want, "{ts}");
        }
        // a broken number is named
        let bytes = tiny_rtstruct("1\\2\\x", crate::dicom::write::IMPLICIT_VR_LE);
        let e = read_rtstruct_bytes(Path::new("tiny"), &bytes)
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"x\"") && e.contains("contour 1"), "{e}");
    }

    #[test]
    fn direct_walk_reads_what_dicom_object_reads() {
        use crate::dicom::write::{EXPLICIT_VR_LE, IMPLICIT_VR_LE};
        let data = "1.5\\-2\\3.25\\ 4 \\+5\\6E0\\7\\8.125\\-9";
        // (name, character set, whether the direct walk takes it)
        let cases = [
            ("Body", None, true),
            ("Lung_L ", Some("ISO_IR 100"), true),
            ("Läsion", Some("ISO_IR 192"), true),
            // dicom-object's own decoding: Latin-1, several values, an unknown character set
            ("Läsion", Some("ISO_IR 100"), false),
            ("A\\B", None, false),
            ("Body", Some("ISO 2022 IR 87"), false),
        ];
        for ts in [IMPLICIT_VR_LE, EXPLICIT_VR_LE] {
            for (name, cs, direct) in cases {
                let bytes = tiny_named(data, ts, name, cs);
                assert_eq!(read_by_direct_walk(&bytes), direct, "{ts} {name:?} {cs:?}");
                let fast = read_rtstruct_bytes(Path::new("tiny"), &bytes).unwrap();
                let tree = read_rtstruct_bytes_via_parser(Path::new("tiny"), &bytes).unwrap();
                assert_eq!(fast, tree, "{ts} {name:?} {cs:?}");
            }
            // errors are the same as well: a file that fails is parsed again by dicom-object,
            // whose decoding names the value (the fuzz target found `-0.ÿ` in Latin-1, explicit
            // VR, named with a replacement character by the walk)
            for (data, cs) in [("1\\2\\x", None), ("1\\2\\-0.ÿ", Some("ISO_IR 100"))] {
                let bytes = tiny_named(data, ts, "Body", cs);
                assert!(read_by_direct_walk(&bytes), "{ts} {data}");
                let e = read_rtstruct_bytes(Path::new("tiny"), &bytes)
                    .unwrap_err()
                    .to_string();
                assert_eq!(
                    e,
                    read_rtstruct_bytes_via_parser(Path::new("tiny"), &bytes)
                        .unwrap_err()
                        .to_string()
                );
                assert!(e.contains("ROI 1 contour 1"), "{ts} {e}");
            }
        }
        // a data set cut short: the direct walk stops, the parser's error stands
        let bytes = tiny_rtstruct(data, IMPLICIT_VR_LE);
        let cut = &bytes[..bytes.len() - 7];
        assert!(!read_by_direct_walk(cut));
        assert!(read_rtstruct_bytes(Path::new("tiny"), cut).is_err());
    }

    /// Several broken contours: the error names the first in file order, whatever the number
    /// of threads and whichever thread converts which contour (the `rtstruct` fuzz target saw
    /// two runs name different contours).
    #[test]
    fn the_first_broken_contour_is_named() {
        // long contours up to the first broken one, short ones after it: a thread that starts
        // in the second half meets its broken contour long before the first is reached
        let long = vec!["1.25"; 30_000].join("\\");
        let mut datas = vec![long.as_str(); 100];
        datas.extend(vec!["1\\2\\3"; 100]);
        datas[99] = "1\\2\\x99";
        datas[101] = "1\\2\\x101";
        let bytes = tiny_contours(&datas, crate::dicom::write::IMPLICIT_VR_LE, "Body", None);
        for threads in [1, 2, 4] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            for _ in 0..5 {
                for read in [read_rtstruct_bytes, read_rtstruct_bytes_via_parser] {
                    let e = pool
                        .install(|| read(Path::new("tiny"), &bytes))
                        .unwrap_err()
                        .to_string();
                    assert!(e.contains("contour 100:") && e.contains("x99"), "{e}");
                }
            }
        }
    }

    use super::*;

    #[test]
    fn fill_square_and_hole() {
        let outer = vec![[0.5, 0.5], [4.5, 0.5], [4.5, 4.5], [0.5, 4.5]];
        let hole = vec![[1.5, 1.5], [1.5, 2.5], [2.5, 2.5], [2.5, 1.5]];
        let m = fill_even_odd(&[outer, hole], 6, 6);
        let count: usize = m.iter().map(|&v| v as usize).sum();
        assert_eq!(count, 16 - 1);
        assert_eq!(m[2 * 6 + 2], 0);
        assert_eq!(m[6 + 1], 1);
        assert_eq!(m[0], 0);
    }

    #[test]
    fn fill_clips_outside_grid() {
        let big = vec![[-10.0, -10.0], [10.0, -10.0], [10.0, 10.0], [-10.0, 10.0]];
        let m = fill_even_odd(&[big], 3, 2);
        assert!(m.iter().all(|&v| v == 1));
    }
}
