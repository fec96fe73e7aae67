//! `autocontour evaluate`: test structure sets against reference ones on a CT grid, with
//! inter-observer variability when there are several references.
//!
//! Every ROI is rasterised onto the CT grid (`rtstruct::rasterise_roi`), matched by structure
//! name (`metrics::names`, or explicit `--match TEST=REF` pairs), and compared with
//! `metrics::compare_masks`. With several references the test is compared with their majority
//! vote, and each observer with the majority vote of the others.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use autocontour::dicom::{CtSeries, LoadOptions, load_series, load_series_grid};
use autocontour::metrics::names::structure_key;
use autocontour::metrics::study::majority_vote;
use autocontour::metrics::{Comparison, compare_masks};

use crate::plots;
use autocontour::rtstruct::{
    RasterOptions, RtStruct, RtStructRoi, check_frame_of_reference, rasterise_roi, read_rtstruct,
};
use autocontour::volume::Geometry;
use autocontour::{Error, Result};

use crate::error::{CliError, CliResult};
use serde::Serialize;

/// Margin around the outlines in `worst_slice.png`, mm.
const OVERLAY_MARGIN_MM: f64 = 15.0;

/// Arguments of `autocontour evaluate`.
#[derive(clap::Args)]
pub struct EvaluateArgs {
    /// CT folder: the grid every structure set is rasterised on.
    pub ct: PathBuf,
    /// Reference RT Structure Set (an observer); repeat for several observers.
    #[arg(long = "ref", value_name = "RTSTRUCT", required = true)]
    pub references: Vec<PathBuf>,
    /// Test RT Structure Set (e.g. auto-contours); repeatable. May be omitted with ≥ 2
    /// references (inter-observer variability only).
    #[arg(long = "test", value_name = "RTSTRUCT")]
    pub tests: Vec<PathBuf>,
    /// Pair a test ROI with a reference ROI explicitly, `TEST_NAME=REF_NAME` (names matched
    /// through the synonym table); repeatable. When given, only these pairs are evaluated.
    #[arg(long = "match", value_name = "TEST=REF")]
    pub matches: Vec<String>,
    /// Only these structures (reference names, synonym table applies), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub structures: Vec<String>,
    /// Surface Dice tolerance, mm.
    #[arg(long, default_value_t = 2.0)]
    pub tolerance: f64,
    /// Write every row to this CSV file.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Write the rows and the inputs to this JSON file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Series Instance UID when the CT folder holds several series.
    #[arg(long)]
    pub uid: Option<String>,
    /// Write PNG plots into this folder (created if needed): `bland_altman_volume.png`
    /// (test − reference volume against their mean, bias and ±1.96 SD limits),
    /// `box_dice.png` and `box_hd95.png` (per structure, test and observer rows across
    /// cases), `worst_slice.png` (the CT slice where the lowest-Dice contour disagrees most
    /// with its reference, zoomed to both outlines with a 15 mm margin, and a legend) and
    /// `worst_slice_full.png` (the same slice whole).
    #[arg(long, value_name = "DIR")]
    pub plots: Option<PathBuf>,
}

/// One comparison: a test contour (or an observer) against its reference.
#[derive(Debug, Serialize)]
pub struct Row {
    /// Structure (the reference ROI name).
    pub structure: String,
    /// `test` or `observer` (inter-observer variability).
    pub kind: &'static str,
    /// The structure set the evaluated contour comes from.
    pub source: String,
    /// The evaluated ROI's name in that file.
    pub roi: String,
    /// What it was compared with.
    pub reference: String,
    /// The metrics.
    #[serde(flatten)]
    pub metrics: Comparison,
}

/// A structure to evaluate: its reference name and key, and which ROI in each file is it.
struct Structure {
    name: String,
    ref_key: String,
    test_key: String,
}

/// Index of the first ROI of `rs` whose name has key `key` (warns when several do).
fn find_roi(rs: &RtStruct, key: &str) -> Option<usize> {
    let hits: Vec<usize> = rs
        .rois
        .iter()
        .enumerate()
        .filter(|(_, r)| structure_key(&r.name) == key)
        .map(|(i, _)| i)
        .collect();
    if hits.len() > 1 {
        log::warn!(
            "{}: {} ROIs match structure '{key}'; using '{}'",
            rs.path.display(),
            hits.len(),
            hits.first()
                .and_then(|&i| rs.rois.get(i))
                .map_or("", |r| r.name.as_str())
        );
    }
    hits.first().copied()
}

fn parse_match(m: &str) -> CliResult<(String, String)> {
    match m.split_once('=') {
        Some((t, r)) if !t.trim().is_empty() && !r.trim().is_empty() => {
            Ok((t.trim().to_string(), r.trim().to_string()))
        }
        _ => Err(CliError::Usage(format!(
            "--match '{m}': expected TEST_NAME=REF_NAME"
        ))),
    }
}

/// The structures to evaluate, in reference order.
fn structures(args: &EvaluateArgs, refs: &[RtStruct]) -> CliResult<Vec<Structure>> {
    let mut out: Vec<Structure> = Vec::new();
    if !args.matches.is_empty() {
        for m in &args.matches {
            let (t, r) = parse_match(m)?;
            out.push(Structure {
                name: r.clone(),
                ref_key: structure_key(&r),
                test_key: structure_key(&t),
            });
        }
    } else {
        for rs in refs {
            for roi in &rs.rois {
                let key = structure_key(&roi.name);
                if !out.iter().any(|s| s.ref_key == key) {
                    out.push(Structure {
                        name: roi.name.clone(),
                        test_key: key.clone(),
                        ref_key: key,
                    });
                }
            }
        }
    }
    if !args.structures.is_empty() {
        let wanted: Vec<String> = args.structures.iter().map(|s| structure_key(s)).collect();
        out.retain(|s| wanted.contains(&s.ref_key));
    }
    // A reference ROI named explicitly must exist in some reference file.
    for s in &out {
        if !refs.iter().any(|rs| find_roi(rs, &s.ref_key).is_some()) {
            return Err(CliError::Usage(format!(
                "no reference structure set has a ROI matching '{}'",
                s.name
            )));
        }
    }
    Ok(out)
}

/// Reads the structure sets, one after the other (each parsed file is held until the end, so
/// reading them in parallel would raise the peak memory).
fn read_all(paths: &[PathBuf], ct: &CtSeries) -> Result<Vec<RtStruct>> {
    paths
        .iter()
        .map(|p| {
            let rs = read_rtstruct(p)?;
            check_frame_of_reference(&rs, &ct.frame_of_reference_uid)?;
            Ok(rs)
        })
        .collect()
}

/// One ROI rasterised onto the CT grid, its time logged at `-vv`.
fn rasterise(roi: &RtStructRoi, g: &Geometry, opts: &RasterOptions<'_>) -> Result<Vec<u8>> {
    let t = std::time::Instant::now();
    let mask = rasterise_roi(roi, g, opts)?.into_data();
    log::debug!(
        "evaluate: {} rasterised in {:.3} s",
        roi.name,
        t.elapsed().as_secs_f64()
    );
    Ok(mask)
}

/// The lowest-Dice comparison (test rows first, observer rows when there is no test), with its
/// masks, for the overlay plot.
struct Worst {
    dice: f64,
    row: usize,
    reference: Vec<u8>,
    test: Vec<u8>,
}

impl Worst {
    /// Keeps (`row`, masks) when it is the first of its kind or has a lower Dice; test rows
    /// replace observer rows.
    fn offer(slot: &mut Option<Worst>, rows: &[Row], row: usize, reference: &[u8], test: &[u8]) {
        let Some(r) = rows.get(row) else { return };
        let dice = r.metrics.dice;
        let better = match slot.as_ref().and_then(|w| rows.get(w.row).map(|o| (w, o))) {
            None => true,
            Some((w, old)) => {
                (r.kind == "test" && old.kind != "test") || (r.kind == old.kind && dice < w.dice)
            }
        };
        if better {
            *slot = Some(Worst {
                dice,
                row,
                reference: reference.to_vec(),
                test: test.to_vec(),
            });
        }
    }
}

/// What [`evaluate_all`] found: the rows, the structures that could not be evaluated, the CT,
/// and the worst pair when plots were asked for.
struct Evaluation {
    rows: Vec<Row>,
    missing: Vec<String>,
    ct: CtSeries,
    worst: Option<Worst>,
}

/// Runs the evaluation, keeping the worst pair's masks when `keep_worst`.
fn evaluate_all(args: &EvaluateArgs, keep_worst: bool) -> CliResult<Evaluation> {
    if args.tests.is_empty() && args.references.len() < 2 {
        return Err(CliError::Usage(
            "evaluate needs at least one --test, or two or more --ref for inter-observer variability"
                .into(),
        ));
    }
    if !(args.tolerance.is_finite() && args.tolerance >= 0.0) {
        return Err(CliError::Usage(format!(
            "--tolerance {} must be finite and ≥ 0",
            args.tolerance
        )));
    }
    // The HU voxels are needed only for the plots' CT slice; otherwise the grid is enough.
    let t = std::time::Instant::now();
    let (g, ct) = if args.plots.is_some() {
        let ct = load_series(&args.ct, args.uid.as_deref(), &LoadOptions::default())?;
        (*ct.volume.geometry(), ct)
    } else {
        load_series_grid(&args.ct, args.uid.as_deref(), &LoadOptions::default())?
    };
    log::debug!("evaluate: CT grid in {:.3} s", t.elapsed().as_secs_f64());
    let t = std::time::Instant::now();
    // The reference and test structure sets are read side by side (each file's contours are
    // converted in parallel as well); a reference error is reported first.
    let (refs, tests) = rayon::join(
        || read_all(&args.references, &ct),
        || read_all(&args.tests, &ct),
    );
    let (refs, tests) = (refs?, tests?);
    log::debug!(
        "evaluate: structure sets read in {:.3} s",
        t.elapsed().as_secs_f64()
    );
    let opts = RasterOptions {
        slices: Some(&ct.slices),
    };
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    let mut worst: Option<Worst> = None;
    for s in structures(args, &refs)? {
        // Reference observers that have the structure: (file index, ROI name, mask).
        let mut observers: Vec<(usize, String, Vec<u8>)> = Vec::new();
        for (i, rs) in refs.iter().enumerate() {
            let Some(roi) = find_roi(rs, &s.ref_key).and_then(|r| rs.rois.get(r)) else {
                missing.push(format!(
                    "{}: reference {} has no '{}'",
                    s.name,
                    rs.path.display(),
                    s.name
                ));
                continue;
            };
            let mask = rasterise(roi, &g, &opts)?;
            observers.push((i, roi.name.clone(), mask));
        }
        let n = observers.len();
        let fused;
        let (reference, ref_label): (&[u8], String) = match observers.as_slice() {
            [] => continue,
            [(i, name, m)] => (m, format!("{}:{name}", label(&args.references, *i))),
            _ => {
                let all: Vec<&[u8]> = observers.iter().map(|o| o.2.as_slice()).collect();
                fused = majority_vote(&all)?;
                (&fused, format!("majority of {n} references"))
            }
        };
        if n >= 2 {
            for (idx, (i, name, m)) in observers.iter().enumerate() {
                let others: Vec<&[u8]> = observers
                    .iter()
                    .enumerate()
                    .filter(|(o, _)| *o != idx)
                    .map(|(_, o)| o.2.as_slice())
                    .collect();
                let maj = majority_vote(&others)?;
                rows.push(Row {
                    structure: s.name.clone(),
                    kind: "observer",
                    source: label(&args.references, *i),
                    roi: name.clone(),
                    reference: format!("majority of the other {}", n - 1),
                    metrics: compare_masks(&maj, m, &g, args.tolerance)?,
                });
                if keep_worst {
                    Worst::offer(&mut worst, &rows, rows.len() - 1, &maj, m);
                }
            }
        }
        for (i, rs) in tests.iter().enumerate() {
            let Some(roi) = find_roi(rs, &s.test_key).and_then(|r| rs.rois.get(r)) else {
                missing.push(format!(
                    "{}: test {} has no matching ROI",
                    s.name,
                    rs.path.display()
                ));
                continue;
            };
            let mask = rasterise(roi, &g, &opts)?;
            let t = std::time::Instant::now();
            let metrics = compare_masks(reference, &mask, &g, args.tolerance)?;
            log::debug!(
                "evaluate: {} compared in {:.3} s",
                roi.name,
                t.elapsed().as_secs_f64()
            );
            rows.push(Row {
                structure: s.name.clone(),
                kind: "test",
                source: label(&args.tests, i),
                roi: roi.name.clone(),
                reference: ref_label.clone(),
                metrics,
            });
            if keep_worst {
                Worst::offer(&mut worst, &rows, rows.len() - 1, reference, &mask);
            }
        }
    }
    Ok(Evaluation {
        rows,
        missing,
        ct,
        worst,
    })
}

/// A file's path as given on the command line.
fn label(paths: &[PathBuf], i: usize) -> String {
    paths
        .get(i)
        .map_or_else(String::new, |p| p.display().to_string())
}

/// Runs `autocontour evaluate`.
pub fn run(args: EvaluateArgs) -> CliResult<()> {
    let ev = evaluate_all(&args, args.plots.is_some())?;
    let (rows, missing) = (&ev.rows, &ev.missing);
    print!("{}", table(rows));
    for m in missing {
        println!("not evaluated: {m}");
    }
    if let Some(p) = &args.csv {
        write_file(p, &csv(rows))?;
    }
    if let Some(p) = &args.json {
        let v = serde_json::json!({
            "ct": args.ct,
            "references": args.references,
            "tests": args.tests,
            "tolerance_mm": args.tolerance,
            "rows": rows,
            "not_evaluated": missing,
        });
        let text = serde_json::to_string_pretty(&v)?;
        write_file(p, &text)?;
    }
    if let Some(dir) = &args.plots {
        for p in write_plots(dir, &ev)? {
            println!("plot: {}", p.display());
        }
    }
    Ok(())
}

/// Writes the PNG plots of `--plots` into `dir`; returns the files written.
fn write_plots(dir: &Path, ev: &Evaluation) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let rows = &ev.rows;
    let mut written = Vec::new();
    // Bland-Altman of volumes (cc): test rows, or the observers when there is no test.
    let kind = if rows.iter().any(|r| r.kind == "test") {
        "test"
    } else {
        "observer"
    };
    let pairs: Vec<plots::Pair> = rows
        .iter()
        .filter(|r| r.kind == kind)
        .map(|r| plots::Pair {
            label: r.structure.clone(),
            reference: r.metrics.reference_volume_mm3 / 1000.0,
            test: r.metrics.test_volume_mm3 / 1000.0,
        })
        .collect();
    let p = dir.join("bland_altman_volume.png");
    plots::write_bland_altman(&p, &format!("Volume, {kind} vs reference"), "cc", &pairs)?;
    written.push(p);
    // Box plots per structure and kind.
    for (file, title, label, get) in [
        (
            "box_dice.png",
            "Dice per structure",
            "Dice",
            (|c: &Comparison| c.dice) as fn(&Comparison) -> f64,
        ),
        ("box_hd95.png", "HD95 per structure", "HD95 (mm)", |c| {
            c.hd95_mm
        }),
    ] {
        let mut series: Vec<plots::BoxSeries> = Vec::new();
        for r in rows {
            match series
                .iter_mut()
                .find(|s| s.structure == r.structure && s.group == r.kind)
            {
                Some(s) => s.values.push(get(&r.metrics)),
                None => series.push(plots::BoxSeries {
                    structure: r.structure.clone(),
                    group: r.kind.to_string(),
                    values: vec![get(&r.metrics)],
                }),
            }
        }
        let p = dir.join(file);
        plots::write_box_plot(&p, title, label, &series)?;
        written.push(p);
    }
    // The worst contour's most different slice.
    if let Some(w) = &ev.worst
        && let Some(r) = rows.get(w.row)
    {
        let g = ev.ct.volume.geometry();
        match plots::worst_slice(&w.reference, &w.test, g.size) {
            Some(k) => {
                let z = g.index_to_patient([0.0, 0.0, k as f64]);
                let labels = plots::OverlayLabels {
                    title: format!(
                        "{}: slice {k} (z {:.1} mm), Dice {:.4} over the volume",
                        r.structure, z[2], w.dice
                    ),
                    reference: format!("reference: {}", file_name(&r.reference)),
                    test: format!("{}: {} ({})", r.kind, r.roi, file_name(&r.source)),
                };
                for (file, view) in [
                    (
                        "worst_slice.png",
                        plots::OverlayView::Contours {
                            margin_mm: OVERLAY_MARGIN_MM,
                        },
                    ),
                    ("worst_slice_full.png", plots::OverlayView::WholeSlice),
                ] {
                    let p = dir.join(file);
                    plots::write_overlay(
                        &p,
                        &ev.ct.volume,
                        &w.reference,
                        &w.test,
                        k,
                        view,
                        &labels,
                    )?;
                    written.push(p);
                }
            }
            None => log::info!("plots: the masks agree on every slice; no overlay written"),
        }
    }
    Ok(written)
}

fn write_file(p: &Path, text: &str) -> Result<()> {
    std::fs::write(p, text).map_err(|e| Error::Io {
        path: p.to_path_buf(),
        source: e,
    })
}

fn file_name(p: &str) -> &str {
    Path::new(p)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(p)
}

/// The terminal table.
fn table(rows: &[Row]) -> String {
    let mut s = String::new();
    let tol = rows.first().map_or(0.0, |r| r.metrics.tolerance_mm);
    let _ = writeln!(
        s,
        "{:<20} {:<8} {:<20} {:<20} {:>7} {:>7} {:>8} {:>8} {:>7} {:>8} {:>9} {:>9}",
        "structure",
        "kind",
        "source",
        "roi",
        "Dice",
        "Jaccard",
        "HD mm",
        "HD95 mm",
        "ASSD mm",
        format!("sDice@{tol}"),
        "ref cc",
        "test cc"
    );
    for r in rows {
        let m = &r.metrics;
        let _ = writeln!(
            s,
            "{:<20} {:<8} {:<20} {:<20} {:>7.4} {:>7.4} {:>8.2} {:>8.2} {:>7.3} {:>8.4} {:>9.2} {:>9.2}",
            r.structure,
            r.kind,
            file_name(&r.source),
            r.roi,
            m.dice,
            m.jaccard,
            m.hausdorff_mm,
            m.hd95_mm,
            m.assd_mm,
            m.surface_dice,
            m.reference_volume_mm3 / 1000.0,
            m.test_volume_mm3 / 1000.0
        );
    }
    s
}

/// Quotes a CSV field when needed (RFC 4180).
fn csv_field(f: &str) -> String {
    if f.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f.to_string()
    }
}

/// All rows as CSV; infinite distances are written `inf`.
fn csv(rows: &[Row]) -> String {
    let mut s = String::from(
        "structure,kind,source,roi,reference,dice,jaccard,hausdorff_mm,hd95_mm,\
         mean_distance_reference_to_test_mm,mean_distance_test_to_reference_mm,assd_mm,\
         surface_dice,tolerance_mm,reference_volume_mm3,test_volume_mm3,volume_difference_mm3\n",
    );
    for r in rows {
        let m = &r.metrics;
        let nums = [
            m.dice,
            m.jaccard,
            m.hausdorff_mm,
            m.hd95_mm,
            m.mean_distance_reference_to_test_mm,
            m.mean_distance_test_to_reference_mm,
            m.assd_mm,
            m.surface_dice,
            m.tolerance_mm,
            m.reference_volume_mm3,
            m.test_volume_mm3,
            m.volume_difference_mm3,
        ];
        let mut fields = vec![
            csv_field(&r.structure),
            r.kind.to_string(),
            csv_field(&r.source),
            csv_field(&r.roi),
            csv_field(&r.reference),
        ];
        fields.extend(nums.iter().map(|v| format!("{v}")));
        s.push_str(&fields.join(","));
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_pairs_parse() {
        assert_eq!(
            parse_match(" auto = man ").unwrap(),
            ("auto".to_string(), "man".to_string())
        );
        assert!(parse_match("auto").is_err());
        assert!(parse_match("=man").is_err());
    }

    #[test]
    fn csv_quotes_and_infinity() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("a\"b"), "\"a\"\"b\"");
        assert_eq!(format!("{}", f64::INFINITY), "inf");
    }
}
