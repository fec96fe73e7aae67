//! `autocontour rtstruct-to-mask` and `autocontour mask-to-rtstruct`: conversions between RT
//! Structure Sets and label maps (NIfTI-1, or the phantom's `labels.raw` + `labels.json`) on a
//! CT grid.

use rayon::prelude::*;
use std::path::{Path, PathBuf};

use autocontour::contour::ContourOptions;
use autocontour::dicom::{CtSeries, LoadOptions, load_series_grid};
use autocontour::nifti::{check_same_grid, read_nifti_labels, write_nifti_labels};
use autocontour::rtstruct::{
    OutputInfo, RasterOptions, RoiKind, RoiSpec, RtStructRoi, check_frame_of_reference,
    rasterise_roi, read_rtstruct, rois_from_labels, write_rtstruct,
};
use autocontour::volume::{Geometry, Volume};
use autocontour::{Error, Result};

use crate::error::{CliError, CliResult};

/// Arguments of `autocontour rtstruct-to-mask`.
#[derive(clap::Args)]
pub struct ToMaskArgs {
    /// The RT Structure Set file.
    pub rtstruct: PathBuf,
    /// The CT folder whose grid the masks are drawn on.
    #[arg(long, value_name = "DIR")]
    pub ct: PathBuf,
    /// A `.nii.gz`/`.nii` file (one label map, label n = n-th ROI, JSON sidecar beside it) or a
    /// folder (one 0/1 mask per ROI and labels.json).
    #[arg(long, value_name = "FILE|DIR")]
    pub out: PathBuf,
    /// Series Instance UID of the CT when the folder holds several series.
    #[arg(long)]
    pub uid: Option<String>,
}

/// Arguments of `autocontour mask-to-rtstruct`.
#[derive(clap::Args)]
pub struct ToRtstructArgs {
    /// The label map: `.nii.gz`/`.nii`, or `labels.raw` with `labels.json` beside it.
    pub mask: PathBuf,
    /// The CT folder the label map lies on (same grid).
    #[arg(long, value_name = "DIR")]
    pub ct: PathBuf,
    /// The file to write (`mask-to-rtstruct`: an RT Structure Set; `mask-to-seg`: a DICOM SEG).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// ROI names for labels 1, 2, 3… (default: the JSON sidecar's names, else label_N).
    #[arg(long, value_delimiter = ',')]
    pub names: Vec<String>,
    /// Series Instance UID of the CT when the folder holds several series.
    #[arg(long)]
    pub uid: Option<String>,
}

const PALETTE: [[u8; 3]; 8] = [
    [255, 0, 0],
    [0, 200, 0],
    [0, 0, 255],
    [255, 200, 0],
    [0, 200, 200],
    [200, 0, 200],
    [255, 128, 0],
    [128, 128, 255],
];

fn is_nifti(p: &Path) -> bool {
    let n = p
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    n.ends_with(".nii") || n.ends_with(".nii.gz")
}

/// `x.nii.gz` / `x.nii` / `x.raw` → `x.json`.
fn sidecar(p: &Path) -> PathBuf {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lower = name.to_lowercase();
    let stem = [".nii.gz", ".nii", ".raw"]
        .iter()
        .find(|s| lower.ends_with(*s))
        .map(|s| &name[..name.len() - s.len()])
        .unwrap_or(&name);
    p.with_file_name(format!("{stem}.json"))
}

/// What the sidecar JSON says about one rasterised ROI (both `rtstruct-to-mask` layouts): a JSON
/// object the caller adds its layout's fields to.
fn roi_entry(roi: &RtStructRoi, voxels: usize, voxel_ml: f64) -> serde_json::Value {
    serde_json::json!({
        "name": roi.name,
        "roi_number": roi.number,
        "color": roi.color,
        "interpreted_type": roi.interpreted_type,
        "kind": roi.kind().as_str(),
        "points": roi.points(),
        "voxels": voxels,
        "volume_ml": voxels as f64 * voxel_ml,
    })
}

fn safe(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() { "roi".into() } else { s }
}

fn json_write(path: &Path, v: &serde_json::Value) -> CliResult<()> {
    let text = serde_json::to_string_pretty(v)?;
    Ok(std::fs::write(path, text + "\n").map_err(|e| Error::io(path, e))?)
}

/// The CT's grid, slices and header, without decoding its pixels (the conversions only draw or
/// read contours on it).
fn load_ct_grid(dir: &Path, uid: Option<&str>) -> Result<(Geometry, CtSeries)> {
    load_series_grid(dir, uid, &LoadOptions::default())
}

/// Non-zero values of a mask, counted in parallel.
fn count_nonzero(data: &[u8]) -> usize {
    data.par_chunks(1 << 16)
        .map(|c| c.iter().filter(|&&v| v != 0).count())
        .sum()
}

/// Runs `rtstruct-to-mask`.
pub fn to_mask(args: ToMaskArgs) -> CliResult<()> {
    let (g, ct) = load_ct_grid(&args.ct, args.uid.as_deref())?;
    let rs = read_rtstruct(&args.rtstruct)?;
    check_frame_of_reference(&rs, &ct.frame_of_reference_uid)?;
    let opts = RasterOptions {
        slices: Some(&ct.slices),
    };
    let mut masks = Vec::with_capacity(rs.rois.len());
    for roi in &rs.rois {
        let m = rasterise_roi(roi, &g, &opts)?;
        let voxels = count_nonzero(m.data());
        match roi.kind() {
            RoiKind::Area if voxels == 0 => log::warn!(
                "ROI '{}' has no voxel on the CT grid ({} contours)",
                roi.name,
                roi.contours.len()
            ),
            RoiKind::Points => log::info!(
                "ROI '{}' is a point of interest ({} points): listed, not rasterised",
                roi.name,
                roi.points().len()
            ),
            RoiKind::Open => log::warn!(
                "ROI '{}' has only open contours: listed, not rasterised",
                roi.name
            ),
            RoiKind::Empty => log::info!("ROI '{}' has no contour", roi.name),
            RoiKind::Area => {}
        }
        masks.push((roi, m, voxels));
    }
    let voxel_ml = g.spacing.iter().product::<f64>() / 1000.0;
    if is_nifti(&args.out) {
        if masks.len() > 255 {
            return Err(CliError::Usage(format!(
                "{} ROIs do not fit a u8 label map; write a folder instead",
                masks.len()
            )));
        }
        if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        // Paint the largest first so that smaller ROIs inside larger ones (organs in the body)
        // stay visible where ROIs overlap.
        let mut order: Vec<usize> = (0..masks.len()).collect();
        order.sort_by_key(|&n| std::cmp::Reverse(masks[n].2));
        let mut data = vec![0u8; g.voxel_count()];
        for &n in &order {
            let label = (n + 1) as u8;
            data.par_chunks_mut(1 << 16)
                .zip(masks[n].1.data().par_chunks(1 << 16))
                .for_each(|(d, m)| {
                    for (d, &m) in d.iter_mut().zip(m) {
                        if m != 0 {
                            *d = label;
                        }
                    }
                });
        }
        let histogram = data
            .par_chunks(1 << 16)
            .fold(
                || vec![0usize; 256],
                |mut h, c| {
                    for &v in c {
                        if let Some(n) = h.get_mut(v as usize) {
                            *n += 1;
                        }
                    }
                    h
                },
            )
            .reduce(
                || vec![0usize; 256],
                |mut a, b| {
                    for (x, y) in a.iter_mut().zip(b) {
                        *x += y;
                    }
                    a
                },
            );
        let labels: Vec<serde_json::Value> = masks
            .iter()
            .enumerate()
            .map(|(n, (roi, _, voxels))| {
                let label = (n + 1) as u8;
                let shown = histogram.get(label as usize).copied().unwrap_or(0);
                let mut e = roi_entry(roi, *voxels, voxel_ml);
                e["label"] = label.into();
                e["voxels_in_map"] = shown.into();
                e
            })
            .collect();
        let vol = Volume::new(g, data)?;
        write_nifti_labels(&args.out, &vol, "autocontour rtstruct-to-mask")?;
        let side = sidecar(&args.out);
        json_write(
            &side,
            &serde_json::json!({
                "file": args.out.file_name().map(|n| n.to_string_lossy().into_owned()),
                "rtstruct": args.rtstruct,
                "ct_series_uid": ct.series_uid,
                "frame_of_reference_uid": ct.frame_of_reference_uid,
                "overlaps": "where ROIs overlap, the smaller ROI's label is kept (voxels_in_map < voxels)",
                "labels": labels,
            }),
        )?;
        println!(
            "wrote {} ROIs to {} (labels: {})",
            masks.len(),
            args.out.display(),
            side.display()
        );
    } else {
        std::fs::create_dir_all(&args.out).map_err(|e| Error::io(&args.out, e))?;
        // one file per ROI, compressed in parallel
        let labels: Vec<serde_json::Value> = masks
            .par_iter()
            .enumerate()
            .map(|(n, (roi, m, voxels))| {
                let file = format!("{:02}_{}.nii.gz", n + 1, safe(&roi.name));
                write_nifti_labels(&args.out.join(&file), m, &roi.name)?;
                let mut e = roi_entry(roi, *voxels, voxel_ml);
                e["label"] = 1.into();
                e["file"] = file.into();
                Ok(e)
            })
            .collect::<Result<_>>()?;
        let side = args.out.join("labels.json");
        json_write(
            &side,
            &serde_json::json!({
                "rtstruct": args.rtstruct,
                "ct_series_uid": ct.series_uid,
                "frame_of_reference_uid": ct.frame_of_reference_uid,
                "masks": labels,
            }),
        )?;
        println!(
            "wrote {} masks to {} (index: {})",
            masks.len(),
            args.out.display(),
            side.display()
        );
    }
    Ok(())
}

/// An unusable CLI input file.
fn input_err(path: &Path, reason: impl Into<String>) -> CliError {
    CliError::Input {
        path: path.to_path_buf(),
        reason: reason.into(),
        source: None,
    }
}

fn read_json(path: &Path) -> CliResult<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| CliError::Input {
        path: path.to_path_buf(),
        reason: format!("not valid JSON: {e}"),
        source: Some(e),
    })
}

fn triple(v: &serde_json::Value, key: &str, path: &Path) -> CliResult<[f64; 3]> {
    let a = v[key]
        .as_array()
        .filter(|a| a.len() == 3)
        .ok_or_else(|| input_err(path, format!("'{key}' must be 3 numbers")))?;
    let mut out = [0.0; 3];
    for (o, x) in out.iter_mut().zip(a) {
        *o = x
            .as_f64()
            .ok_or_else(|| input_err(path, format!("'{key}' must be 3 numbers")))?;
    }
    Ok(out)
}

/// Reads `labels.raw` with the geometry in the `labels.json` beside it (the phantom's format).
fn read_raw(raw: &Path) -> CliResult<Volume<u8>> {
    let side = sidecar(raw);
    let meta = read_json(&side)?;
    let size = triple(&meta, "size", &side)?;
    if size.iter().any(|s| *s < 1.0 || s.fract() != 0.0) {
        return Err(input_err(
            &side,
            format!("size {size:?} is not three positive integers"),
        ));
    }
    let origin = triple(&meta, "origin", &side)?;
    let spacing = triple(&meta, "spacing", &side)?;
    let rows = meta["direction"]
        .as_array()
        .filter(|a| a.len() == 3)
        .ok_or_else(|| input_err(&side, "'direction' must be 3x3"))?;
    let mut direction = [[0.0; 3]; 3];
    for (r, row) in rows.iter().enumerate() {
        let wrap = serde_json::json!({ "d": row });
        direction[r] = triple(&wrap, "d", &side)?;
    }
    let g = Geometry::new(size.map(|s| s as usize), origin, spacing, direction)?;
    let data = std::fs::read(raw).map_err(|e| Error::io(raw, e))?;
    if data.len() != g.voxel_count() {
        return Err(input_err(
            raw,
            format!(
                "{} bytes, expected {} (size {:?})",
                data.len(),
                g.voxel_count(),
                g.size
            ),
        ));
    }
    Ok(Volume::new(g, data)?)
}

/// Runs `mask-to-rtstruct`.
pub fn to_rtstruct(args: ToRtstructArgs) -> CliResult<()> {
    let labels = read_label_map(&args.mask)?;
    // The writer needs the grid, slice list and header, not the HU voxels.
    let (grid, ct) = load_ct_grid(&args.ct, args.uid.as_deref())?;
    check_same_grid(labels.geometry(), &grid, &args.mask)?;
    let specs = label_specs(&args, &labels)?;
    let rois = rois_from_labels(&labels, &specs, &ContourOptions::default())?;
    let info = OutputInfo {
        model_name: "mask-to-rtstruct".into(),
        model_version: String::new(),
        model_sha256: String::new(),
        series_description: Some("autocontour mask-to-rtstruct".into()),
        ..OutputInfo::default()
    };
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let uid = write_rtstruct(&args.out, &ct, &rois, &info)?;
    println!(
        "wrote {} ROIs to {} (SOP Instance UID {uid})",
        rois.len(),
        args.out.display()
    );
    for r in &rois {
        println!(
            "  {:>3} {:<20} {} contours",
            r.spec.number,
            r.spec.name,
            r.contours.len()
        );
    }
    Ok(())
}

/// Runs `mask-to-seg`: the label map as a DICOM Segmentation (one binary segment per label) on
/// the CT, with the names and colours `mask-to-rtstruct` would give the ROIs.
pub fn to_seg(args: ToRtstructArgs) -> CliResult<()> {
    let labels = read_label_map(&args.mask)?;
    // The SEG writer checks the label map against the loaded CT volume.
    let ct =
        autocontour::dicom::load_series(&args.ct, args.uid.as_deref(), &LoadOptions::default())?;
    check_same_grid(labels.geometry(), ct.volume.geometry(), &args.mask)?;
    let segments: Vec<autocontour::seg::SegSegment> = label_specs(&args, &labels)?
        .into_iter()
        .map(|(label, s)| autocontour::seg::SegSegment {
            label,
            name: s.name,
            color: s.color,
            code: None,
        })
        .collect();
    let info = OutputInfo {
        model_name: "mask-to-seg".into(),
        model_version: String::new(),
        model_sha256: String::new(),
        series_description: Some("autocontour mask-to-seg".into()),
        ..OutputInfo::default()
    };
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let uid = autocontour::seg::write_seg(&args.out, &ct, &labels, &segments, &info)?;
    println!(
        "wrote {} segments to {} (SOP Instance UID {uid})",
        segments.len(),
        args.out.display()
    );
    for sg in &segments {
        println!("  {:>3} {}", sg.label, sg.name);
    }
    Ok(())
}

/// A label map from `.nii`/`.nii.gz` or `labels.raw` + `labels.json`.
fn read_label_map(mask: &Path) -> CliResult<Volume<u8>> {
    Ok(if is_nifti(mask) {
        read_nifti_labels(mask)?
    } else {
        read_raw(mask)?
    })
}

/// Label, name, colour and type of each label present in `labels` or named: `--names`, else
/// the sidecar's names ("labels" or the phantom's "structures"), else `label_N`.
fn label_specs(args: &ToRtstructArgs, labels: &Volume<u8>) -> CliResult<Vec<(u8, RoiSpec)>> {
    let mut known: Vec<(u8, String, Option<[u8; 3]>)> = Vec::new();
    let side = sidecar(&args.mask);
    if args.names.is_empty() && side.is_file() {
        let meta = read_json(&side)?;
        let list = meta["labels"]
            .as_array()
            .or_else(|| meta["structures"].as_array());
        for e in list.into_iter().flatten() {
            let (Some(l), Some(n)) = (e["label"].as_u64(), e["name"].as_str()) else {
                continue;
            };
            if l == 0 || l > 255 {
                continue;
            }
            let color = e["color"].as_array().and_then(|c| {
                let v: Vec<u8> = c
                    .iter()
                    .filter_map(|x| x.as_u64().and_then(|x| u8::try_from(x).ok()))
                    .collect();
                <[u8; 3]>::try_from(v).ok()
            });
            known.push((l as u8, n.to_string(), color));
        }
    }
    for (n, name) in args.names.iter().enumerate() {
        let l = u8::try_from(n + 1)
            .map_err(|_| CliError::Usage("--names lists more than 255 names".into()))?;
        known.push((l, name.trim().to_string(), None));
    }
    let mut present = [false; 256];
    for &v in labels.data() {
        present[v as usize] = true;
    }
    let mut specs = Vec::new();
    for l in 1..=255u8 {
        let entry = known.iter().find(|(k, _, _)| *k == l);
        if !present[l as usize] && entry.is_none() {
            continue;
        }
        let name = entry
            .map(|(_, n, _)| n.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("label_{l}"));
        let color = entry
            .and_then(|(_, _, c)| *c)
            .unwrap_or(PALETTE[(l as usize - 1) % PALETTE.len()]);
        let interpreted_type =
            if name.eq_ignore_ascii_case("body") || name.eq_ignore_ascii_case("external") {
                "EXTERNAL"
            } else {
                "ORGAN"
            };
        specs.push((
            l,
            RoiSpec {
                number: u32::from(l),
                name,
                color,
                interpreted_type: interpreted_type.into(),
                code: None,
            },
        ));
    }
    if specs.is_empty() {
        return Err(input_err(&args.mask, "the label map has no non-zero label"));
    }
    Ok(specs)
}

/// `segment --seg / --nifti`: writes `seg.dcm` and/or `labels.nii.gz` (+ `labels.json`) of a
/// segmentation into `out`, each staged in `outputs` (in place once it is committed). Returns
/// the final paths.
pub fn segment_outputs(
    seg: &autocontour::pipeline::Segmentation,
    model: &autocontour::model::Model,
    ct: &CtSeries,
    out: &Path,
    write_seg: bool,
    write_nifti: bool,
    outputs: &mut autocontour::io::OutputSet,
) -> CliResult<(Option<PathBuf>, Option<PathBuf>)> {
    let specs = seg.roi_specs(model);
    let seg_path = if write_seg {
        let segments: Vec<autocontour::seg::SegSegment> = specs
            .iter()
            .map(|(label, s)| autocontour::seg::SegSegment {
                label: *label,
                name: s.name.clone(),
                color: s.color,
                code: s.code.clone(),
            })
            .collect();
        let info = seg.output_info();
        let p = out.join("seg.dcm");
        autocontour::seg::write_seg(
            &outputs.stage(&p),
            ct,
            &*seg.written_labels()?,
            &segments,
            &info,
        )?;
        Some(p)
    } else {
        None
    };
    let nifti_path = if write_nifti {
        let p = out.join("labels.nii.gz");
        let description = format!("autocontour {}", seg.model.0);
        write_nifti_labels(&outputs.stage(&p), &*seg.written_labels()?, &description)?;
        let labels: Vec<serde_json::Value> = specs
            .iter()
            .map(|(label, s)| {
                serde_json::json!({
                    "label": label,
                    "name": s.name,
                    "color": s.color,
                    "interpreted_type": s.interpreted_type,
                })
            })
            .collect();
        json_write(
            &outputs.stage(&out.join("labels.json")),
            &serde_json::json!({
                "file": "labels.nii.gz",
                "ct_series_uid": ct.series_uid,
                "frame_of_reference_uid": ct.frame_of_reference_uid,
                "labels": labels,
            }),
        )?;
        Some(p)
    } else {
        None
    };
    Ok((seg_path, nifti_path))
}
