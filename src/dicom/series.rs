//! Series discovery and CT volume loading with exact geometry.
//!
//! Geometry comes from Image Position (Patient) and Image Orientation (Patient) alone; Patient
//! Position (HFS/FFS…) and Instance Number are never used to place or order slices.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use rayon::prelude::*;
use serde::Serialize;

use super::file::{DicomFile, read_file, read_header, ts_label};
use super::write::{EXPLICIT_VR_LE, IMPLICIT_VR_LE};
use crate::error::{Error, Result};
use crate::volume::{Geometry, HuVolume, Volume, cross, dot};

/// How strictly a series is checked when loaded.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Largest allowed difference between a slice gap and the median gap, mm (default 0.1).
    pub gap_tolerance_mm: f64,
    /// Largest in-plane offset between neighbouring slices before the stack counts as tilted or
    /// sheared, mm (default 0.05).
    pub tilt_tolerance_mm: f64,
    /// Largest number of voxels a volume may have; checked before any pixel is decoded
    /// (default: the process's `max_voxels` limit, [`crate::limits`]; 1024 × 1024 × 2048 unless
    /// the host changed it).
    pub max_voxels: u64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            gap_tolerance_mm: 0.1,
            tilt_tolerance_mm: 0.05,
            max_voxels: crate::limits::limits().max_voxels,
        }
    }
}

/// One slice of a loaded series, in volume order (k).
#[derive(Debug, Clone, Serialize)]
pub struct SliceRef {
    /// The file it came from.
    pub path: PathBuf,
    /// SOP Instance UID (referenced by RT Structure Sets).
    pub sop_instance_uid: String,
    /// SOP Class UID.
    pub sop_class_uid: String,
    /// Image Position (Patient), mm.
    pub position: [f64; 3],
}

/// A CT series loaded into Hounsfield units with everything later stages need to reference it.
pub struct CtSeries {
    /// HU values, slice-major (see [`crate::volume`]): `i16` when every slice's rescale is
    /// integral and every voxel's HU fits (nearly every CT), `f32` otherwise.
    pub volume: HuVolume,
    /// Slices in volume order.
    pub slices: Vec<SliceRef>,
    /// Series Instance UID.
    pub series_uid: String,
    /// Study Instance UID.
    pub study_uid: String,
    /// Frame of Reference UID.
    pub frame_of_reference_uid: String,
    /// The first slice's attributes without pixel data (patient, study, equipment modules).
    pub header: InMemDicomObject,
    /// Files of the series that were skipped (localisers), with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

/// What discovery learnt about one series in a folder.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesInfo {
    /// Series Instance UID (or a synthesised key starting with `no-uid:` when empty).
    pub uid: String,
    /// Modality (CT, MR, RTSTRUCT…).
    pub modality: String,
    /// Series Description, if any.
    pub description: Option<String>,
    /// Frame of Reference UID, if any.
    pub frame_of_reference_uid: Option<String>,
    /// Study Instance UID, if any.
    pub study_uid: Option<String>,
    /// All files of the series.
    pub files: Vec<PathBuf>,
    /// Image slices that would form the volume (localisers excluded).
    pub slices: usize,
    /// Columns × rows × slices, when known.
    pub size: Option<[usize; 3]>,
    /// Column spacing, row spacing (mm), and the median slice gap when known.
    pub spacing: Option<[f64; 3]>,
    /// Image Orientation (Patient) of the first slice.
    pub orientation: Option<[f64; 6]>,
    /// `None` when the series can be loaded as a CT volume; otherwise why not.
    pub unusable: Option<String>,
    /// Files skipped inside the series (localisers), with the reason.
    pub skipped: Vec<String>,
}

/// The result of scanning a folder.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesSummary {
    /// The folder scanned.
    pub root: PathBuf,
    /// Every series found, largest usable CT first.
    pub series: Vec<SeriesInfo>,
    /// Files that are not DICOM (or could not be parsed), with the reason.
    pub ignored: Vec<String>,
}

impl SeriesSummary {
    /// The series a default load takes: the usable CT with most slices.
    pub fn default_series(&self) -> Option<&SeriesInfo> {
        self.series
            .iter()
            .find(|s| s.unusable.is_none() && s.modality == "CT")
    }
}

struct Header {
    file: DicomFile,
    series_uid: String,
    modality: String,
    is_localizer: bool,
    /// Parsed whole from memory (pixel data included); `file.path` is only a name.
    in_memory: bool,
}

/// Lists the files under `dir`; more than the `max_files_scanned` limit ([`crate::limits`]: a
/// mount of a whole archive) is refused.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    let max = usize::try_from(crate::limits::limits().max_files_scanned).unwrap_or(usize::MAX);
    walk_from(dir, out, &mut seen, max)
}

/// Recursive scan; every folder is entered once by its canonical path, so symbolic links that
/// form a loop (or point back up the tree) are not followed round.
fn walk_from(
    dir: &Path,
    out: &mut Vec<PathBuf>,
    seen: &mut std::collections::HashSet<PathBuf>,
    max: usize,
) -> Result<()> {
    let canonical = std::fs::canonicalize(dir).map_err(|e| Error::io(dir, e))?;
    if !seen.insert(canonical) {
        log::info!("{}: already scanned (a symbolic link loop?)", dir.display());
        return Ok(());
    }
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut entries: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect::<Vec<_>>();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk_from(&p, out, seen, max)?;
        } else if out.len() >= max {
            return Err(Error::LimitExceeded {
                limit: "max_files_scanned",
                value: out.len() as u64 + 1,
                max: max as u64,
                place: format!(
                    "{}: files under the folder (point at one series' folder)",
                    dir.display()
                ),
            });
        } else if p.file_name().is_some_and(|n| {
            // Bytes, not `to_str`: a name that is not UTF-8 is read like any other.
            let n = n.as_encoded_bytes();
            !n.eq_ignore_ascii_case(b"DICOMDIR") && !n.starts_with(b".")
        }) {
            out.push(p);
        }
    }
    Ok(())
}

/// A file of a folder scan that gave no header.
struct Unread {
    path: PathBuf,
    error: Error,
    /// It starts like DICOM (magic, file meta or a bare data set) but did not parse: a corrupt
    /// or truncated file, not a stray non-DICOM one (or a DICOMDIR).
    dicom_like: bool,
    /// Its Series Instance UID, when the element walk got that far.
    series_uid: Option<String>,
}

fn read_headers(files: &[PathBuf]) -> (Vec<Header>, Vec<Unread>) {
    let results: Vec<std::result::Result<Header, Box<Unread>>> = files
        .par_iter()
        .map(|p| match read_header(p) {
            Ok(f) => header_of(f, false).map_err(|error| {
                Box::new(Unread {
                    path: p.clone(),
                    error,
                    dicom_like: false,
                    series_uid: None,
                })
            }),
            Err(error) => {
                let (dicom_like, series_uid) = match &error {
                    Error::Io { .. } => (true, None),
                    // An empty file among the slices: an interrupted transfer, as likely as not.
                    _ if std::fs::metadata(p).is_ok_and(|m| m.len() == 0) => (true, None),
                    _ => super::file::sniff(p),
                };
                Err(Box::new(Unread {
                    path: p.clone(),
                    error,
                    dicom_like,
                    series_uid,
                }))
            }
        })
        .collect();
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for r in results {
        match r {
            Ok(h) => ok.push(h),
            Err(e) => bad.push(*e),
        }
    }
    (ok, bad)
}

/// Refuses the load of series `key` when files that look like DICOM but cannot be read may belong
/// to it (their Series Instance UID is `key`'s or unknown): without them the volume could lack
/// slices at an end, or blame a neighbour for a gap. Unreadable files of another series are only
/// logged; files that do not look like DICOM are ignored. With `key` `None` (no series could be
/// chosen) every unreadable DICOM file may be the series' own; when all of them broke a resource
/// limit, that limit's error is the answer.
fn check_unreadable(dir: &Path, key: Option<&str>, unread: Vec<Unread>) -> Result<()> {
    let mut files = Vec::new();
    for u in unread {
        match (&u.series_uid, u.dicom_like, key) {
            (_, false, _) => log::debug!("{}: ignored ({})", u.path.display(), u.error),
            (Some(uid), true, Some(key)) if uid != key => log::warn!(
                "{}: unreadable file of another series ({uid}) ignored: {}",
                u.path.display(),
                u.error
            ),
            _ => files.push(u),
        }
    }
    if files.is_empty() {
        return Ok(());
    }
    if key.is_none()
        && files
            .iter()
            .all(|u| matches!(u.error, Error::LimitExceeded { .. }))
    {
        return Err(files.swap_remove(0).error);
    }
    Err(Error::UnreadableFiles {
        path: dir.to_path_buf(),
        files: files
            .into_iter()
            .map(|u| (u.path, u.error.to_string()))
            .collect(),
    })
}

fn header_of(file: DicomFile, in_memory: bool) -> Result<Header> {
    if file
        .obj
        .meta()
        .media_storage_sop_class_uid()
        .trim_end_matches('\0')
        == "1.2.840.10008.1.3.10"
    {
        return Err(Error::NotDicom {
            path: file.path.clone(),
            reason: "a DICOMDIR (media directory), ignored".into(),
            source: None,
        });
    }
    let modality = file
        .opt_str(tags::MODALITY)
        .unwrap_or_else(|| "?".into())
        .to_uppercase();
    let image_type = file.opt_str(tags::IMAGE_TYPE).unwrap_or_default();
    let is_localizer = image_type.to_uppercase().contains("LOCALIZER");
    let series_uid = file.opt_str(tags::SERIES_INSTANCE_UID).unwrap_or_else(|| {
        // Fallback key for files without a Series Instance UID.
        format!(
            "no-uid:{}:{}:{}",
            file.opt_str(tags::STUDY_INSTANCE_UID).unwrap_or_default(),
            file.opt_str(tags::FRAME_OF_REFERENCE_UID)
                .unwrap_or_default(),
            modality
        )
    });
    Ok(Header {
        file,
        series_uid,
        modality,
        is_localizer,
        in_memory,
    })
}

fn group(headers: Vec<Header>) -> BTreeMap<String, Vec<Header>> {
    let mut map: BTreeMap<String, Vec<Header>> = BTreeMap::new();
    for h in headers {
        map.entry(h.series_uid.clone()).or_default().push(h);
    }
    map
}

/// Scans `dir` recursively (any file names; DICOMDIR ignored) and lists every series.
pub fn discover(dir: &Path) -> Result<SeriesSummary> {
    let mut files = Vec::new();
    walk(dir, &mut files)?;
    let (headers, ignored) = read_headers(&files);
    let ignored: Vec<String> = ignored.iter().map(|u| u.error.to_string()).collect();
    let mut series: Vec<SeriesInfo> = group(headers)
        .into_iter()
        .map(|(uid, hs)| describe(uid, &hs))
        .collect();
    series.sort_by(|a, b| {
        let ka = (a.unusable.is_none() && a.modality == "CT", a.slices);
        let kb = (b.unusable.is_none() && b.modality == "CT", b.slices);
        kb.cmp(&ka).then_with(|| a.uid.cmp(&b.uid))
    });
    Ok(SeriesSummary {
        root: dir.to_path_buf(),
        series,
        ignored,
    })
}

fn describe(uid: String, hs: &[Header]) -> SeriesInfo {
    let first = hs.first();
    let modality = first.map(|h| h.modality.clone()).unwrap_or_default();
    let images: Vec<&Header> = hs.iter().filter(|h| !h.is_localizer).collect();
    let skipped: Vec<String> = hs
        .iter()
        .filter(|h| h.is_localizer)
        .map(|h| format!("{}: localizer image skipped", h.file.path.display()))
        .collect();
    let mut info = SeriesInfo {
        uid,
        modality: modality.clone(),
        description: first.and_then(|h| h.file.opt_str(tags::SERIES_DESCRIPTION)),
        frame_of_reference_uid: first.and_then(|h| h.file.opt_str(tags::FRAME_OF_REFERENCE_UID)),
        study_uid: first.and_then(|h| h.file.opt_str(tags::STUDY_INSTANCE_UID)),
        files: hs.iter().map(|h| h.file.path.clone()).collect(),
        slices: images.len(),
        size: None,
        spacing: None,
        orientation: None,
        unusable: None,
        skipped,
    };
    if modality != "CT" {
        info.unusable = Some(format!("modality {modality} is not CT"));
        return info;
    }
    match plan(&images, &LoadOptions::default()) {
        Ok(p) => {
            info.size = Some(p.geometry.size);
            info.spacing = Some(p.geometry.spacing);
            info.orientation = Some(p.iop);
        }
        Err(e) => info.unusable = Some(e.to_string()),
    }
    info
}

/// The geometry of a series and the order of its files, worked out from headers only.
struct Plan {
    geometry: Geometry,
    iop: [f64; 6],
    order: Vec<usize>,
}

fn fmt_vec(v: &[f64]) -> String {
    let parts: Vec<String> = v.iter().map(|x| format!("{x:.6}")).collect();
    format!("[{}]", parts.join(", "))
}

fn plan(images: &[&Header], opts: &LoadOptions) -> Result<Plan> {
    let first = images
        .first()
        .ok_or_else(|| Error::InvalidArgument("series has no image slices".into()))?;
    let f0 = &first.file;
    if let Some(frames) = f0.opt_u32(tags::NUMBER_OF_FRAMES)?
        && frames > 1
    {
        return Err(Error::MultiFrame {
            path: f0.path.clone(),
            frames,
        });
    }
    let iop_v = f0.req_f64s(tags::IMAGE_ORIENTATION_PATIENT, 6)?;
    let mut iop = [0.0; 6];
    iop.copy_from_slice(&iop_v);
    let row = normalise([iop[0], iop[1], iop[2]])
        .ok_or_else(|| f0.invalid(tags::IMAGE_ORIENTATION_PATIENT, "zero-length row cosine"))?;
    let col = normalise([iop[3], iop[4], iop[5]])
        .ok_or_else(|| f0.invalid(tags::IMAGE_ORIENTATION_PATIENT, "zero-length column cosine"))?;
    if dot(row, col).abs() > 1e-3 {
        return Err(f0.invalid(
            tags::IMAGE_ORIENTATION_PATIENT,
            format!(
                "row and column cosines are not orthogonal: {}",
                fmt_vec(&iop)
            ),
        ));
    }
    let normal = normalise(cross(row, col))
        .ok_or_else(|| f0.invalid(tags::IMAGE_ORIENTATION_PATIENT, "degenerate orientation"))?;
    let rows = f0.req_u32(tags::ROWS)?;
    let cols = f0.req_u32(tags::COLUMNS)?;
    let ps = f0.req_f64s(tags::PIXEL_SPACING, 2)?;
    if ps.iter().any(|&s| s <= 0.0) {
        return Err(f0.invalid(
            tags::PIXEL_SPACING,
            format!("non-positive spacing {}", fmt_vec(&ps)),
        ));
    }
    if rows == 0 || cols == 0 {
        return Err(f0.invalid(tags::ROWS, format!("image size {cols}×{rows}")));
    }

    let mut pos: Vec<(f64, usize, [f64; 3])> = Vec::with_capacity(images.len());
    for (n, h) in images.iter().enumerate() {
        let f = &h.file;
        if let Some(frames) = f.opt_u32(tags::NUMBER_OF_FRAMES)?
            && frames > 1
        {
            return Err(Error::MultiFrame {
                path: f.path.clone(),
                frames,
            });
        }
        let o = f.req_f64s(tags::IMAGE_ORIENTATION_PATIENT, 6)?;
        if o.iter().zip(iop.iter()).any(|(a, b)| (a - b).abs() > 1e-4) {
            return Err(Error::MixedOrientation {
                path: f.path.clone(),
                found: fmt_vec(&o),
                expected: fmt_vec(&iop),
            });
        }
        let r = f.req_u32(tags::ROWS)?;
        if r != rows {
            return Err(Error::MixedSize {
                path: f.path.clone(),
                what: "Rows",
                found: r.to_string(),
                expected: rows.to_string(),
            });
        }
        let c = f.req_u32(tags::COLUMNS)?;
        if c != cols {
            return Err(Error::MixedSize {
                path: f.path.clone(),
                what: "Columns",
                found: c.to_string(),
                expected: cols.to_string(),
            });
        }
        // The stored-value encoding must be the first slice's: a slice with another Pixel
        // Representation or Bits Allocated would decode to other numbers (62,512 HU for -1,024).
        for (tag, what) in [
            (tags::BITS_ALLOCATED, "BitsAllocated"),
            (tags::BITS_STORED, "BitsStored"),
            (tags::PIXEL_REPRESENTATION, "PixelRepresentation"),
            (tags::SAMPLES_PER_PIXEL, "SamplesPerPixel"),
        ] {
            let (a, b) = (f.opt_u32(tag)?, f0.opt_u32(tag)?);
            if a != b {
                let show = |v: Option<u32>| v.map_or("absent".to_string(), |v| v.to_string());
                return Err(Error::MixedSize {
                    path: f.path.clone(),
                    what,
                    found: show(a),
                    expected: show(b),
                });
            }
        }
        if n == 0
            && let Some(bits) = f.opt_u32(tags::BITS_ALLOCATED)?
            && !matches!(bits, 8 | 16 | 32)
        {
            return Err(f.invalid(
                tags::BITS_ALLOCATED,
                format!("{bits} bits per sample: a CT image has 8, 16 or 32"),
            ));
        }
        let p = f.req_f64s(tags::PIXEL_SPACING, 2)?;
        if p.iter().zip(ps.iter()).any(|(a, b)| (a - b).abs() > 1e-4) {
            return Err(Error::MixedSize {
                path: f.path.clone(),
                what: "PixelSpacing",
                found: fmt_vec(&p),
                expected: fmt_vec(&ps),
            });
        }
        let ipp = f.req_f64s(tags::IMAGE_POSITION_PATIENT, 3)?;
        let ipp = [ipp[0], ipp[1], ipp[2]];
        pos.push((dot(ipp, normal), n, ipp));
    }
    pos.sort_by(|a, b| a.0.total_cmp(&b.0));

    let gap = if pos.len() < 2 {
        let f = &first.file;
        let g = f
            .opt_f64(tags::SPACING_BETWEEN_SLICES)?
            .or(f.opt_f64(tags::SLICE_THICKNESS)?)
            .filter(|g| *g > 0.0)
            .unwrap_or(1.0);
        log::warn!(
            "{}: single-slice series; slice spacing taken as {g} mm",
            f.path.display()
        );
        g
    } else {
        let mut gaps = Vec::with_capacity(pos.len() - 1);
        for w in pos.windows(2) {
            let (a, b) = (&w[0], &w[1]);
            let g = b.0 - a.0;
            if g.abs() < 1e-3 {
                return Err(Error::DuplicateSlice {
                    path: images[b.1].file.path.clone(),
                    other: images[a.1].file.path.clone(),
                    position_mm: b.0,
                });
            }
            // In-plane part of the step: gantry tilt or shear.
            let step = [b.2[0] - a.2[0], b.2[1] - a.2[1], b.2[2] - a.2[2]];
            let inplane = [
                step[0] - g * normal[0],
                step[1] - g * normal[1],
                step[2] - g * normal[2],
            ];
            let off = dot(inplane, inplane).sqrt();
            if off > opts.tilt_tolerance_mm {
                return Err(Error::GantryTilt {
                    path: images[b.1].file.path.clone(),
                    off_normal_mm: off,
                });
            }
            gaps.push(g);
        }
        let median = median(&mut gaps.clone());
        for (n, w) in pos.windows(2).enumerate() {
            let g = gaps.get(n).copied().unwrap_or(median);
            if (g - median).abs() > opts.gap_tolerance_mm {
                return Err(Error::IrregularSpacing {
                    path: images[w[1].1].file.path.clone(),
                    gap_mm: g,
                    median_mm: median,
                    tolerance_mm: opts.gap_tolerance_mm,
                });
            }
        }
        median
    };

    let size = [cols as usize, rows as usize, pos.len()];
    let voxels = size.iter().map(|&s| s as u64).product::<u64>();
    if voxels > opts.max_voxels {
        return Err(Error::TooLarge {
            voxels,
            limit: opts.max_voxels,
        });
    }
    let origin = pos.first().map(|p| p.2).unwrap_or([0.0; 3]);
    let direction = [
        [row[0], col[0], normal[0]],
        [row[1], col[1], normal[1]],
        [row[2], col[2], normal[2]],
    ];
    // PixelSpacing is (row spacing = between rows = along j, column spacing = along i).
    let geometry = Geometry::new(size, origin, [ps[1], ps[0], gap], direction)?;
    Ok(Plan {
        geometry,
        iop,
        order: pos.iter().map(|p| p.1).collect(),
    })
}

fn normalise(v: [f64; 3]) -> Option<[f64; 3]> {
    let n = dot(v, v).sqrt();
    (n > 1e-6).then(|| [v[0] / n, v[1] / n, v[2] / n])
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Loads a CT series from `dir`: the one with Series Instance UID `uid`, or the largest usable
/// CT series when `uid` is `None`.
pub fn load_series(dir: &Path, uid: Option<&str>, opts: &LoadOptions) -> Result<CtSeries> {
    let t = std::time::Instant::now();
    let headers = chosen_headers(dir, uid, opts)?;
    log::debug!(
        "loading: {} headers read in {:.3} s",
        headers.len(),
        t.elapsed().as_secs_f64()
    );
    Ok(load_headers(headers, opts, true)?.series)
}

/// The headers of the series [`load_series`] loads from `dir`, after the unreadable-file check.
fn chosen_headers(dir: &Path, uid: Option<&str>, opts: &LoadOptions) -> Result<Vec<Header>> {
    let mut files = Vec::new();
    walk(dir, &mut files)?;
    let (headers, unread) = read_headers(&files);
    let mut groups = group(headers);
    let key = match pick(&groups, uid, dir, opts) {
        Ok(key) => key,
        // Nothing readable to load: the unreadable files are the better answer.
        Err(e) => {
            check_unreadable(dir, uid, unread)?;
            return Err(e);
        }
    };
    check_unreadable(dir, Some(&key), unread)?;
    Ok(groups.remove(&key).unwrap_or_default())
}

/// [`load_series`] without decoding any pixel data, for callers that need only the CT's grid,
/// slices, UIDs and header (drawing or reading contours on it): returns the grid and the series,
/// whose `volume` is a single voxel at the grid's origin. The same series is chosen and the same
/// geometry checks apply; pixel data is not read, so a slice whose pixels are corrupt is not
/// noticed here.
pub fn load_series_grid(
    dir: &Path,
    uid: Option<&str>,
    opts: &LoadOptions,
) -> Result<(Geometry, CtSeries)> {
    let ct = load_headers(chosen_headers(dir, uid, opts)?, opts, false)?;
    let grid = ct.grid;
    Ok((grid, ct.series))
}

/// The series to load from `groups`: the one with Series Instance UID `uid`, or the largest
/// usable CT series. `origin` names where the files came from in messages.
fn pick(
    groups: &BTreeMap<String, Vec<Header>>,
    uid: Option<&str>,
    origin: &Path,
    opts: &LoadOptions,
) -> Result<String> {
    let dir = origin;
    let key = match uid {
        Some(u) => {
            if !groups.contains_key(u) {
                return Err(Error::SeriesNotFound {
                    path: dir.to_path_buf(),
                    uid: u.to_string(),
                });
            }
            u.to_string()
        }
        None => {
            let mut best: Option<(usize, String)> = None;
            let mut reasons = Vec::new();
            for (k, hs) in groups {
                let modality = hs.first().map(|h| h.modality.as_str()).unwrap_or("");
                if modality != "CT" {
                    reasons.push(format!("series {k}: modality {modality}, not CT"));
                    continue;
                }
                let images: Vec<&Header> = hs.iter().filter(|h| !h.is_localizer).collect();
                match plan(&images, opts) {
                    Ok(_) => {
                        if best.as_ref().is_none_or(|b| images.len() > b.0) {
                            best = Some((images.len(), k.clone()));
                        }
                    }
                    Err(e) => reasons.push(format!("series {k}: {e}")),
                }
            }
            match best {
                Some((_, k)) => k,
                None => {
                    // A single CT series that fails: report its own error, not a summary.
                    let cts: Vec<&String> = groups
                        .iter()
                        .filter(|(_, hs)| hs.first().is_some_and(|h| h.modality == "CT"))
                        .map(|(k, _)| k)
                        .collect();
                    if cts.len() == 1
                        && let Some(k) = cts.first()
                    {
                        (*k).clone()
                    } else {
                        return Err(Error::NoSeries {
                            path: dir.to_path_buf(),
                            detail: if reasons.is_empty() {
                                String::new()
                            } else {
                                format!(": {}", reasons.join("; "))
                            },
                        });
                    }
                }
            }
        }
    };
    Ok(key)
}

/// Loads a CT series from DICOM files held in memory, `(name, bytes)` pairs: the one with Series
/// Instance UID `uid`, or the largest usable CT series, as [`load_series`] does for a folder.
/// Each name stands for a file path in messages and in [`SliceRef::path`] (e.g. `buffer #3`).
/// A buffer that is not DICOM fails the load (the caller chose it); objects of other series are
/// ignored.
pub fn load_series_buffers(
    buffers: &[(String, &[u8])],
    uid: Option<&str>,
    opts: &LoadOptions,
) -> Result<CtSeries> {
    let parsed: Vec<Result<Header>> = buffers
        .par_iter()
        .map(|(name, bytes)| header_of(super::file::read_bytes(Path::new(name), bytes)?, true))
        .collect();
    let headers = parsed.into_iter().collect::<Result<Vec<Header>>>()?;
    let mut groups = group(headers);
    let key = pick(&groups, uid, Path::new("the DICOM buffers"), opts)?;
    let headers = groups.remove(&key).unwrap_or_default();
    Ok(load_headers(headers, opts, true)?.series)
}

/// Loads exactly these files as one CT series (all must belong to the same series).
pub fn load_series_files(files: &[PathBuf], opts: &LoadOptions) -> Result<CtSeries> {
    let (headers, ignored) = read_headers(files);
    if let Some(first_bad) = ignored.into_iter().next() {
        return Err(first_bad.error);
    }
    let groups = group(headers);
    if groups.len() > 1 {
        return Err(Error::InvalidArgument(format!(
            "the files belong to {} different series",
            groups.len()
        )));
    }
    let headers = groups.into_values().next().unwrap_or_default();
    Ok(load_headers(headers, opts, true)?.series)
}

/// A loaded series and its grid (the volume holds one voxel when the pixels were not decoded).
struct Loaded {
    grid: Geometry,
    series: CtSeries,
}

fn load_headers(headers: Vec<Header>, opts: &LoadOptions, pixels: bool) -> Result<Loaded> {
    if !(opts.gap_tolerance_mm.is_finite() && opts.gap_tolerance_mm >= 0.0) {
        return Err(Error::InvalidArgument(format!(
            "gap tolerance {} mm: a finite number ≥ 0 is needed (NaN or infinity would turn the missing-slice check off)",
            opts.gap_tolerance_mm
        )));
    }
    let first = headers
        .first()
        .ok_or_else(|| Error::InvalidArgument("no DICOM files given".into()))?;
    if first.modality != "CT" {
        return Err(Error::NotCt {
            uid: first.series_uid.clone(),
            modality: first.modality.clone(),
        });
    }
    let skipped: Vec<(PathBuf, String)> = headers
        .iter()
        .filter(|h| h.is_localizer)
        .map(|h| (h.file.path.clone(), "localizer image".to_string()))
        .collect();
    for (p, why) in &skipped {
        log::info!("{}: skipped ({why})", p.display());
    }
    let images: Vec<&Header> = headers.iter().filter(|h| !h.is_localizer).collect();
    let plan = plan(&images, opts)?;
    let [nx, ny, _] = plan.geometry.size;

    let ordered: Vec<&Header> = plan
        .order
        .iter()
        .filter_map(|&i| images.get(i).copied())
        .collect();
    let t = std::time::Instant::now();
    let data = if pixels {
        Some(decode_series(
            &ordered,
            plan.geometry.voxel_count(),
            nx,
            ny,
        )?)
    } else {
        None
    };
    if let Some(d) = &data {
        log::debug!(
            "loading: pixel data of {} slices decoded in {:.3} s ({})",
            ordered.len(),
            t.elapsed().as_secs_f64(),
            match d {
                HuData::I16(_) => "integral HU, i16",
                HuData::F32(_) => "f32",
            }
        );
    }

    let mut slices = Vec::with_capacity(ordered.len());
    for h in &ordered {
        let f = &h.file;
        let ipp = f.req_f64s(tags::IMAGE_POSITION_PATIENT, 3)?;
        slices.push(SliceRef {
            path: f.path.clone(),
            sop_instance_uid: f.req_str(tags::SOP_INSTANCE_UID)?,
            sop_class_uid: f.req_str(tags::SOP_CLASS_UID)?,
            position: [ipp[0], ipp[1], ipp[2]],
        });
    }
    let f0 = ordered
        .first()
        .map(|h| &h.file)
        .ok_or_else(|| Error::InvalidArgument("series has no image slices".into()))?;
    let frame_of_reference_uid = f0.req_str(tags::FRAME_OF_REFERENCE_UID)?;
    let study_uid = f0.req_str(tags::STUDY_INSTANCE_UID)?;
    let series_uid = f0.req_str(tags::SERIES_INSTANCE_UID)?;
    let header = (*f0.obj).clone();
    let g = plan.geometry;
    let volume = match data {
        Some(HuData::I16(d)) => HuVolume::I16(Volume::new(g, d)?),
        Some(HuData::F32(d)) => HuVolume::F32(Volume::new(g, d)?),
        None => HuVolume::I16(Volume::new(
            Geometry::new([1, 1, 1], g.origin, g.spacing, g.direction)?,
            vec![0],
        )?),
    };
    Ok(Loaded {
        grid: g,
        series: CtSeries {
            volume,
            slices,
            series_uid,
            study_uid,
            frame_of_reference_uid,
            header,
            skipped,
        },
    })
}

/// Decoded voxels of a series, before they get their geometry.
enum HuData {
    I16(Vec<i16>),
    F32(Vec<f32>),
}

/// Decodes the slices `ordered` (each `nx × ny`, `voxels` in all) into HU: as `i16` when every
/// slice's Rescale Slope and Intercept are integers and every voxel's HU fits an `i16`, as
/// `f32` otherwise. A series whose rescale is integral but whose values overflow `i16` (padding
/// of −32 768 stored under an intercept of −1024, say) is decoded a second time, into `f32`.
fn decode_series(ordered: &[&Header], voxels: usize, nx: usize, ny: usize) -> Result<HuData> {
    let per_slice = (nx * ny).max(1);
    let integral = ordered
        .iter()
        .all(|h| rescale(&h.file).is_ok_and(|(s, i)| s.fract() == 0.0 && i.fract() == 0.0));
    if integral {
        let mut data = vec![0i16; voxels];
        let fits = data
            .par_chunks_mut(per_slice)
            .zip(ordered.par_iter())
            .map(|(out, h)| decode_header_slice(h, nx, ny, out))
            .try_reduce(|| true, |a, b| Ok(a && b))?;
        if fits {
            return Ok(HuData::I16(data));
        }
        log::debug!("loading: HU beyond the range of i16, decoding again as f32");
    }
    let mut data = vec![0f32; voxels];
    data.par_chunks_mut(per_slice)
        .zip(ordered.par_iter())
        .try_for_each(|(out, h)| decode_header_slice(h, nx, ny, out).map(|_| ()))?;
    Ok(HuData::F32(data))
}

/// One slice of the series into `out`, by the fastest path its file allows; `Ok(false)` when
/// some HU does not fit `T`.
fn decode_header_slice<T: HuOut>(h: &Header, nx: usize, ny: usize, out: &mut [T]) -> Result<bool> {
    if h.in_memory {
        return decode_parsed(&h.file, nx, ny, out);
    }
    if let Some(fits) = read_native_tail(&h.file, out)? {
        return Ok(fits);
    }
    decode_parsed(&read_file(&h.file.path)?, nx, ny, out)
}

/// A voxel type the loader decodes into: `f32` takes any HU, `i16` the integral HU within its
/// range (the rescale is integral when the loader asks for `i16`).
trait HuOut: Copy + Send + Sync {
    /// Stored values (as [`Native16`] reads them) → HU; `false` when some HU does not fit.
    fn from_native16(
        layout: &Native16,
        bytes: &[u8],
        slope: f64,
        intercept: f64,
        out: &mut [Self],
    ) -> bool;
    /// Decoded stored values → HU; `false` when some HU does not fit.
    fn from_values(values: &[f64], slope: f64, intercept: f64, out: &mut [Self]) -> bool;
}

impl HuOut for f32 {
    fn from_native16(
        layout: &Native16,
        bytes: &[u8],
        slope: f64,
        intercept: f64,
        out: &mut [f32],
    ) -> bool {
        layout.to_hu(bytes, slope, intercept, out);
        true
    }

    fn from_values(values: &[f64], slope: f64, intercept: f64, out: &mut [f32]) -> bool {
        for (o, &r) in out.iter_mut().zip(values) {
            *o = (r * slope + intercept) as f32;
        }
        true
    }
}

impl HuOut for i16 {
    fn from_native16(
        layout: &Native16,
        bytes: &[u8],
        slope: f64,
        intercept: f64,
        out: &mut [i16],
    ) -> bool {
        layout.to_hu_i16(bytes, slope, intercept, out)
    }

    fn from_values(values: &[f64], slope: f64, intercept: f64, out: &mut [i16]) -> bool {
        let mut fits = true;
        for (o, &r) in out.iter_mut().zip(values) {
            let h = r * slope + intercept;
            fits &= h.fract() == 0.0 && (f64::from(i16::MIN)..=f64::from(i16::MAX)).contains(&h);
            *o = h as i16;
        }
        fits
    }
}

/// Largest |HU| the rescale may produce for any stored value (CT is −1024 … a few 10⁴).
const MAX_ABS_HU: f64 = 1e6;

/// A number for a message: scientific notation when it is huge or tiny.
fn short(v: f64) -> String {
    if v != 0.0 && !(1e-4..1e6).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// Rescale Slope and Intercept of a slice, checked: finite, a non-zero slope, and HU within
/// ±[`MAX_ABS_HU`] for every 16-bit stored value (a slope of 1e300 would give ±inf/NaN HU).
fn rescale(f: &DicomFile) -> Result<(f64, f64)> {
    let slope = f.opt_f64(tags::RESCALE_SLOPE)?.unwrap_or(1.0);
    let intercept = f.opt_f64(tags::RESCALE_INTERCEPT)?.unwrap_or(0.0);
    if slope == 0.0 || !slope.is_finite() {
        return Err(f.invalid(tags::RESCALE_SLOPE, format!("slope is {slope}")));
    }
    if !intercept.is_finite() {
        return Err(f.invalid(tags::RESCALE_INTERCEPT, format!("intercept is {intercept}")));
    }
    if slope.abs() * 65536.0 + intercept.abs() > MAX_ABS_HU {
        return Err(f.invalid(
            tags::RESCALE_SLOPE,
            format!(
                "slope {} and intercept {} give values beyond ±{MAX_ABS_HU:e} HU",
                short(slope),
                short(intercept)
            ),
        ));
    }
    Ok((slope, intercept))
}

/// HU values of one fully parsed single-frame slice.
fn decode_parsed<T: HuOut>(f: &DicomFile, nx: usize, ny: usize, out: &mut [T]) -> Result<bool> {
    let path = &f.path;
    let (slope, intercept) = rescale(f)?;
    if let Some(fits) = decode_native_16(f, slope, intercept, out)? {
        return Ok(fits);
    }
    let px = f.stored_pixels()?;
    if px.values.len() != nx * ny || out.len() != px.values.len() {
        return Err(Error::PixelData {
            path: path.clone(),
            transfer_syntax: ts_label(&f.transfer_syntax()),
            reason: format!(
                "decoded {}×{}×{} samples, expected {nx}×{ny}",
                px.cols, px.rows, px.frames
            ),
            source: None,
        });
    }
    Ok(T::from_values(&px.values, slope, intercept, out))
}

/// The sample layout of an uncompressed little-endian, single-frame, 16-bit grayscale image,
/// the common CT case both fast paths below handle. `None` for anything else.
struct Native16 {
    explicit: bool,
    shift: u32,
    mask: u32,
    bits_stored: u32,
    signed: bool,
}

impl Native16 {
    fn of(f: &DicomFile) -> Result<Option<Native16>> {
        let explicit = match f.transfer_syntax().as_str() {
            IMPLICIT_VR_LE => false,
            EXPLICIT_VR_LE => true,
            _ => return Ok(None),
        };
        let ba = f.opt_u32(tags::BITS_ALLOCATED)?;
        let bs = f.opt_u32(tags::BITS_STORED)?.or(ba);
        let hb = f
            .opt_u32(tags::HIGH_BIT)?
            .or(bs.map(|b| b.saturating_sub(1)));
        let spp = f.opt_u32(tags::SAMPLES_PER_PIXEL)?.unwrap_or(1);
        let frames = f.opt_u32(tags::NUMBER_OF_FRAMES)?.unwrap_or(1);
        let signed = f.opt_u32(tags::PIXEL_REPRESENTATION)?.unwrap_or(0) == 1;
        let (Some(16), Some(bs), Some(hb)) = (ba, bs, hb) else {
            return Ok(None);
        };
        if spp != 1 || frames != 1 || bs == 0 || bs > 16 || hb >= 16 || hb + 1 < bs {
            return Ok(None);
        }
        Ok(Some(Native16 {
            explicit,
            shift: hb + 1 - bs,
            mask: if bs == 16 { 0xffff } else { (1u32 << bs) - 1 },
            bits_stored: bs,
            signed,
        }))
    }

    /// Stored values → HU, with the same masking and sign extension as
    /// [`DicomFile::stored_pixels`]. Every step is in 32-bit integers (the sign extension as
    /// `(v ^ sign) − sign`) and the rescale in `f64` from an `i32`, so the loop vectorises; the
    /// values are those of `(v as f64 * slope + intercept) as f32`.
    fn to_hu(&self, bytes: &[u8], slope: f64, intercept: f64, out: &mut [f32]) {
        // bits_stored is 1..=16 (checked in `of`), so sign and mask fit an i32.
        let sign = 1i32 << (self.bits_stored - 1);
        let flip = if self.signed { sign } else { 0 };
        let (shift, mask) = (self.shift, self.mask as i32);
        for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let raw = i32::from(u16::from_le_bytes([c[0], c[1]]));
            let v = (((raw >> shift) & mask) ^ flip) - flip;
            *o = (f64::from(v) * slope + intercept) as f32;
        }
    }

    /// [`to_hu`](Self::to_hu) into `i16` for an integral rescale: `v × slope + intercept` in
    /// 32-bit integers (|slope| × 65 536 + |intercept| ≤ [`MAX_ABS_HU`], checked by [`rescale`],
    /// so nothing overflows). Returns whether every HU fits an `i16` (`out` is not meaningful
    /// when it does not).
    fn to_hu_i16(&self, bytes: &[u8], slope: f64, intercept: f64, out: &mut [i16]) -> bool {
        if slope == 1.0 {
            return self.to_hu_i16_unit_slope(bytes, intercept as i32, out);
        }
        let sign = 1i32 << (self.bits_stored - 1);
        let flip = if self.signed { sign } else { 0 };
        let (shift, mask) = (self.shift, self.mask as i32);
        let (slope, intercept) = (slope as i32, intercept as i32);
        let (mut lo, mut hi) = (i32::MAX, i32::MIN);
        for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let raw = i32::from(u16::from_le_bytes([c[0], c[1]]));
            let v = (((raw >> shift) & mask) ^ flip) - flip;
            let h = v * slope + intercept;
            lo = lo.min(h);
            hi = hi.max(h);
            *o = h as i16;
        }
        lo >= i32::from(i16::MIN) && hi <= i32::from(i16::MAX)
    }

    /// [`to_hu_i16`](Self::to_hu_i16) for a slope of 1 (nearly every CT), in 16-bit lanes: the
    /// stored value's bits `v` (masked, sign-extended modulo 2¹⁶), the HU as `v + intercept`
    /// modulo 2¹⁶, and the range of the stored values tracked as `i16` keys that order them
    /// (signed: the value itself; unsigned: `v ^ 0x8000`). The HU all fit when the smallest and
    /// largest stored value plus the intercept do; then every `v + intercept` modulo 2¹⁶ is the
    /// HU itself.
    fn to_hu_i16_unit_slope(&self, bytes: &[u8], intercept: i32, out: &mut [i16]) -> bool {
        // bits_stored is 1..=16 and shift ≤ 15 (checked in `of`).
        let sign = 1u16 << (self.bits_stored - 1);
        let flip = if self.signed { sign } else { 0 };
        let key_flip: u16 = if self.signed { 0 } else { 0x8000 };
        let (shift, mask) = (self.shift, self.mask as u16);
        let add = intercept as u16;
        let (mut lo, mut hi) = (i16::MAX, i16::MIN);
        let mut n = 0usize;
        for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let raw = u16::from_le_bytes([c[0], c[1]]);
            let v = (((raw >> shift) & mask) ^ flip).wrapping_sub(flip);
            let key = (v ^ key_flip) as i16;
            lo = lo.min(key);
            hi = hi.max(key);
            *o = v.wrapping_add(add) as i16;
            n += 1;
        }
        if n == 0 {
            return true;
        }
        let value = |key: i16| -> i32 {
            if self.signed {
                i32::from(key)
            } else {
                i32::from(key as u16 ^ 0x8000)
            }
        };
        value(lo) + intercept >= i32::from(i16::MIN) && value(hi) + intercept <= i32::from(i16::MAX)
    }
}

/// Fastest path, using the header already read (up to Pixel Data): when the file is
/// [`Native16`] and its Pixel Data element is the last thing in the file, the element's own
/// header is checked right before the file's last `rows × columns × 2` bytes (tag (7FE0,0010)
/// and that exact length, implicit or explicit VR) and only those bytes are read, instead of
/// parsing the file a second time. Returns `Ok(false)` when the layout does not match exactly;
/// the caller then parses the whole file. `Some(fits)` otherwise: whether every HU fits `T`.
fn read_native_tail<T: HuOut>(h: &DicomFile, out: &mut [T]) -> Result<Option<bool>> {
    use std::io::{Read, Seek, SeekFrom};
    let Some(layout) = Native16::of(h)? else {
        return Ok(None);
    };
    let Ok((slope, intercept)) = rescale(h) else {
        // the full parse reports it
        return Ok(None);
    };
    let value_len = (out.len() * 2) as u64;
    let head_len: u64 = if layout.explicit { 12 } else { 8 };
    let path = &h.path;
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let size = f.metadata().map_err(|e| Error::io(path, e))?.len();
    if size < value_len + head_len {
        return Ok(None);
    }
    f.seek(SeekFrom::Start(size - value_len - head_len))
        .map_err(|e| Error::io(path, e))?;
    let mut head = [0u8; 12];
    let head = head.get_mut(..head_len as usize).unwrap_or(&mut []);
    f.read_exact(head).map_err(|e| Error::io(path, e))?;
    let len_field =
        |b: &[u8]| -> Option<u64> { Some(u64::from(u32::from_le_bytes(b.try_into().ok()?))) };
    let ok = head.get(..4) == Some(&[0xE0, 0x7F, 0x10, 0x00][..])
        && if layout.explicit {
            matches!(head.get(4..6), Some(b"OW") | Some(b"OB"))
                && head.get(6..8) == Some(&[0, 0][..])
                && head.get(8..12).and_then(len_field) == Some(value_len)
        } else {
            head.get(4..8).and_then(len_field) == Some(value_len)
        };
    if !ok {
        return Ok(None);
    }
    let mut bytes = vec![0u8; value_len as usize];
    f.read_exact(&mut bytes).map_err(|e| Error::io(path, e))?;
    Ok(Some(T::from_native16(
        &layout, &bytes, slope, intercept, out,
    )))
}

/// Fast path on a fully parsed file: a [`Native16`] image converts straight from the Pixel Data
/// element's bytes into HU. Returns `Ok(None)` when the file is not that case, else whether
/// every HU fits `T`.
fn decode_native_16<T: HuOut>(
    f: &DicomFile,
    slope: f64,
    intercept: f64,
    out: &mut [T],
) -> Result<Option<bool>> {
    let Some(layout) = Native16::of(f)? else {
        return Ok(None);
    };
    let Some(e) = f.obj.element_opt(tags::PIXEL_DATA).ok().flatten() else {
        return Ok(None);
    };
    let Ok(bytes) = e.to_bytes() else {
        return Ok(None);
    };
    if bytes.len() < out.len() * 2 {
        return Ok(None);
    }
    Ok(Some(T::from_native16(
        &layout, &bytes, slope, intercept, out,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The implicit-VR [`Native16`] layout of `bits_stored` bits ending at `high_bit`.
    fn layout(bits_stored: u32, high_bit: u32, signed: bool) -> Native16 {
        Native16 {
            explicit: false,
            shift: high_bit + 1 - bits_stored,
            mask: if bits_stored == 16 {
                0xffff
            } else {
                (1u32 << bits_stored) - 1
            },
            bits_stored,
            signed,
        }
    }

    /// The integer sign extension of `to_hu` equals the 64-bit form it replaces, for every
    /// stored value of every bit layout, signed and unsigned, with a fractional rescale.
    #[test]
    fn to_hu_equals_the_64_bit_form() {
        let bytes: Vec<u8> = (0..=u16::MAX).flat_map(|v| v.to_le_bytes()).collect();
        let mut out = vec![0f32; 1 << 16];
        for bits_stored in 1..=16u32 {
            for high_bit in bits_stored - 1..16 {
                for signed in [false, true] {
                    let layout = layout(bits_stored, high_bit, signed);
                    let (slope, intercept) = (0.37, -1024.25);
                    layout.to_hu(&bytes, slope, intercept, &mut out);
                    let sign = 1u32 << (bits_stored - 1);
                    let full = 1i64 << bits_stored;
                    for (raw, &got) in (0..=u16::MAX).zip(&out) {
                        let v = (u32::from(raw) >> layout.shift) & layout.mask;
                        let v = if signed && v & sign != 0 {
                            i64::from(v) - full
                        } else {
                            i64::from(v)
                        };
                        let want = (v as f64 * slope + intercept) as f32;
                        assert_eq!(
                            got.to_bits(),
                            want.to_bits(),
                            "raw {raw}, {bits_stored} bits, high bit {high_bit}, signed {signed}"
                        );
                    }
                }
            }
        }
    }

    /// `to_hu_i16` gives the integral rescale's HU of every stored value of every bit layout,
    /// signed and unsigned, the same as the `f32` path, and says exactly when one does not fit.
    #[test]
    fn to_hu_i16_equals_the_f32_path_and_flags_overflow() {
        let mut out16 = vec![0i16; 1 << 16];
        let mut out32 = vec![0f32; 1 << 16];
        for bits_stored in 1..=16u32 {
            for high_bit in [bits_stored - 1, 15] {
                for signed in [false, true] {
                    let layout = layout(bits_stored, high_bit, signed);
                    for (slope, intercept) in [
                        (1.0, -1024.0),
                        (1.0, 0.0),
                        (1.0, 1000.0),
                        (1.0, -31000.0),
                        (2.0, -1000.0),
                        (-1.0, 7.0),
                    ] {
                        // One value per slice, to see each overflow on its own.
                        for raw in (0..=u16::MAX).step_by(97).chain([0x8000, 0xffff, 0x7fff]) {
                            let b = raw.to_le_bytes();
                            let fits = layout.to_hu_i16(&b, slope, intercept, &mut out16[..1]);
                            layout.to_hu(&b, slope, intercept, &mut out32[..1]);
                            let want = out32[0];
                            let in_range =
                                (f32::from(i16::MIN)..=f32::from(i16::MAX)).contains(&want);
                            assert_eq!(
                                fits, in_range,
                                "raw {raw} {bits_stored} bits signed {signed}"
                            );
                            if fits {
                                assert_eq!(f32::from(out16[0]), want, "raw {raw}");
                            }
                        }
                        // A whole row at once: fits only if every value does.
                        let bytes: Vec<u8> = (0..=u16::MAX).flat_map(|v| v.to_le_bytes()).collect();
                        let fits = layout.to_hu_i16(&bytes, slope, intercept, &mut out16);
                        layout.to_hu(&bytes, slope, intercept, &mut out32);
                        let all = out32
                            .iter()
                            .all(|v| (f32::from(i16::MIN)..=f32::from(i16::MAX)).contains(v));
                        assert_eq!(fits, all);
                        if fits {
                            assert!(out16.iter().zip(&out32).all(|(&a, &b)| f32::from(a) == b));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn from_values_i16_takes_only_integral_hu_in_range() {
        let mut out = [0i16; 4];
        assert!(i16::from_values(
            &[0.0, 1.0, -1.0, 4095.0],
            1.0,
            -1024.0,
            &mut out
        ));
        assert_eq!(out, [-1024, -1023, -1025, 3071]);
        assert!(!i16::from_values(&[0.5, 0.0, 0.0, 0.0], 1.0, 0.0, &mut out));
        assert!(!i16::from_values(
            &[-32768.0, 0.0, 0.0, 0.0],
            1.0,
            -1024.0,
            &mut out
        ));
        assert!(!i16::from_values(
            &[40000.0, 0.0, 0.0, 0.0],
            1.0,
            0.0,
            &mut out
        ));
        assert!(i16::from_values(
            &[32767.0, -32768.0, 0.0, 0.0],
            1.0,
            0.0,
            &mut out
        ));
    }

    #[test]
    fn median_even_odd() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }
}
