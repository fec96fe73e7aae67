#!/usr/bin/env python3
"""Independent reference for src/metrics: DeepMind surface-distance (PyPI `surface-distance`).

    metrics_reference.py masks CASES.json      # synthetic masks written by tests/integration/metrics_surface.rs
    metrics_reference.py rider SEG CT_DIR TOL  # RIDER GTVp_test_man vs GTVp_test_auto from the SEG

Prints one JSON object per case. Masks are numpy arrays indexed (slice, row, column) with
spacing (slice, row, column) mm, the same order the Rust side uses. The SEG is read with pydicom
and numpy alone: frames are mapped to CT slices by Per-Frame Functional Groups Image Position
(Patient) projected on the CT slice normal.
"""
import json
import sys
from pathlib import Path

import numpy as np

# surface-distance 0.1 uses np.Inf / np.NaN, removed in numpy 2; it only touches them when a
# mask is empty. Shim them so the library runs unchanged on the pinned numpy.
if not hasattr(np, "Inf"):
    np.Inf = np.inf
if not hasattr(np, "NaN"):
    np.NaN = np.nan

import surface_distance as sd  # noqa: E402


def finite(x):
    x = float(x)
    if np.isnan(x):
        return "nan"
    if np.isinf(x):
        return "inf"
    return x


def metrics(ref, test, spacing, tol):
    s = sd.compute_surface_distances(ref, test, spacing)
    both = np.concatenate([s["distances_gt_to_pred"], s["distances_pred_to_gt"]])
    areas = np.concatenate([s["surfel_areas_gt"], s["surfel_areas_pred"]])
    m_rt, m_tr = sd.compute_average_surface_distance(s)
    return {
        "reference_voxels": int(ref.sum()),
        "test_voxels": int(test.sum()),
        "dice": finite(sd.compute_dice_coefficient(ref, test)),
        "reference_surface_points": int(len(s["distances_gt_to_pred"])),
        "test_surface_points": int(len(s["distances_pred_to_gt"])),
        "reference_area_mm2": finite(np.sum(s["surfel_areas_gt"])),
        "test_area_mm2": finite(np.sum(s["surfel_areas_pred"])),
        "hausdorff_mm": finite(sd.compute_robust_hausdorff(s, 100)),
        "max_distance_mm": finite(both.max()) if len(both) else "nan",
        "hd95_mm": finite(sd.compute_robust_hausdorff(s, 95)),
        "mean_reference_to_test_mm": finite(m_rt),
        "mean_test_to_reference_mm": finite(m_tr),
        # ASSD: area-weighted mean over both surfaces (the definition src/metrics documents).
        "assd_mm": finite(np.sum(both * areas) / np.sum(areas)) if len(both) else "nan",
        "surface_dice": finite(sd.compute_surface_dice_at_tolerance(s, tol)),
        "tolerance_mm": tol,
    }


def cases(path):
    spec = json.loads(Path(path).read_text())
    base = Path(path).parent
    out = []
    for c in spec["cases"]:
        shape = tuple(c["shape"])  # (slices, rows, columns)
        ref = np.fromfile(base / c["reference"], dtype=np.uint8).reshape(shape) != 0
        test = np.fromfile(base / c["test"], dtype=np.uint8).reshape(shape) != 0
        r = metrics(ref, test, tuple(c["spacing"]), c["tolerance_mm"])
        r["name"] = c["name"]
        out.append(r)
    return out


def read_rider(seg_path, ct_dir):
    import pydicom

    cts = [
        pydicom.dcmread(p, stop_before_pixels=True, force=True)
        for p in sorted(Path(ct_dir).iterdir())
        if p.is_file()
    ]
    cts = [c for c in cts if "ImagePositionPatient" in c]
    iop = np.array(cts[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    pos = sorted(float(np.dot(normal, np.array(c.ImagePositionPatient, dtype=float))) for c in cts)
    dz = float(np.median(np.diff(pos)))
    rows, cols = int(cts[0].Rows), int(cts[0].Columns)
    ps = [float(v) for v in cts[0].PixelSpacing]  # row spacing, column spacing

    seg = pydicom.dcmread(seg_path)
    frames = seg.pixel_array  # (frames, rows, columns), unpacked by pydicom
    names = {int(s.SegmentNumber): str(s.SegmentDescription) for s in seg.SegmentSequence}
    masks = {n: np.zeros((len(pos), rows, cols), dtype=bool) for n in names.values()}
    for f, fg in enumerate(seg.PerFrameFunctionalGroupsSequence):
        num = int(fg.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        ipp = np.array(fg.PlanePositionSequence[0].ImagePositionPatient, dtype=float)
        k = int(round((float(np.dot(normal, ipp)) - pos[0]) / dz))
        masks[names[num]][k] |= frames[f] != 0
    return masks, (dz, ps[0], ps[1])


def main():
    mode = sys.argv[1]
    if mode == "masks":
        print(json.dumps(cases(sys.argv[2])))
    elif mode == "rider":
        masks, spacing = read_rider(sys.argv[2], sys.argv[3])
        r = metrics(masks["GTVp_test_man"], masks["GTVp_test_auto"], spacing, float(sys.argv[4]))
        r["spacing"] = spacing
        print(json.dumps(r))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
