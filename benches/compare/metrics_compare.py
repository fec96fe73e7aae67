#!/usr/bin/env python3
"""Side by side: HD95 + ASSD + surface Dice (and Dice, Hausdorff) on two real mask pairs of the
RIDER Lung CT grid (236 x 512 x 512, 0.576 x 0.576 x 1.25 mm), same machine, same run:

* autocontour `metrics::compare_masks`: best of N calls in one process (the bench's memory
  mode, which also reports the peak memory), and the criterion median of
  `cargo bench --bench metrics` for reference;
* DeepMind surface-distance 0.1 (compute_surface_distances + robust Hausdorff 95 + average
  surface distance + surface Dice at 1 mm + Dice), best of N;
* SimpleITK HausdorffDistanceImageFilter (Hausdorff + average Hausdorff), best of N.

Pairs: `rider_gtv` = GTVp_test_man vs GTVp_test_auto from the DICOM SEG; `body_outline` = CT
> -500 HU vs CT > -300 HU.

    target/pyenv/bin/python benches/compare/metrics_compare.py [--runs 3] [--no-cargo]

Without --no-cargo it first runs `cargo bench --bench metrics` (release build) and reads
criterion's estimates from $CARGO_TARGET_DIR (or target/)/criterion/metrics/, then runs the
bench's memory mode (AC_METRICS_MEMORY=<pair>: one call's peak RSS above the resident set
before it, i.e. above the two input masks) for each pair. The mask grid is
512 x 512 x 236 = 61.9 MB.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests/python"))
from metrics_reference import read_rider, sd  # noqa: E402  (sd: surface_distance, shimmed)


def ct_hu(ct_dir):
    import pydicom

    dss = []
    for p in sorted(Path(ct_dir).iterdir()):
        ds = pydicom.dcmread(p, force=True)
        if "ImagePositionPatient" in ds:
            dss.append(ds)
    iop = np.array(dss[0].ImageOrientationPatient, dtype=float)
    n = np.cross(iop[:3], iop[3:])
    dss.sort(key=lambda ds: float(np.dot(n, np.array(ds.ImagePositionPatient, dtype=float))))
    return np.stack(
        [ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for ds in dss]
    ).astype(np.float32)


def best(f, runs):
    t = []
    for _ in range(runs):
        t0 = time.perf_counter()
        out = f()
        t.append(time.perf_counter() - t0)
    return min(t), out


def deepmind(a, b, spacing):
    s = sd.compute_surface_distances(a, b, spacing)
    return {
        "dice": float(sd.compute_dice_coefficient(a, b)),
        "hausdorff": float(sd.compute_robust_hausdorff(s, 100)),
        "hd95": float(sd.compute_robust_hausdorff(s, 95)),
        "mean_distances": [float(x) for x in sd.compute_average_surface_distance(s)],
        "surface_dice_1mm": float(sd.compute_surface_dice_at_tolerance(s, 1.0)),
    }


def simpleitk(a, b, spacing):
    import SimpleITK as sitk

    ia = sitk.GetImageFromArray(a.astype(np.uint8))
    ib = sitk.GetImageFromArray(b.astype(np.uint8))
    for im in (ia, ib):
        im.SetSpacing((spacing[2], spacing[1], spacing[0]))
    f = sitk.HausdorffDistanceImageFilter()
    f.Execute(ia, ib)
    return {"hausdorff": f.GetHausdorffDistance(), "average_hausdorff": f.GetAverageHausdorffDistance()}


def criterion_median_s(name):
    tdir = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    p = tdir / "criterion" / "metrics" / name / "new" / "estimates.json"
    if not p.exists():
        return None
    return json.loads(p.read_text())["median"]["point_estimate"] / 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-cargo", action="store_true")
    args = ap.parse_args()
    memory = {}
    if not args.no_cargo:
        subprocess.run(["cargo", "bench", "--bench", "metrics"], cwd=ROOT, check=True)
        for name in ("rider_gtv", "body_outline"):
            env = dict(os.environ, AC_METRICS_MEMORY=name, AC_METRICS_REPEAT=str(args.runs))
            out = subprocess.run(
                ["cargo", "bench", "--bench", "metrics"], cwd=ROOT, env=env, check=True,
                capture_output=True, text=True,
            ).stdout
            memory[name] = [l for l in out.splitlines() if l.startswith(name)]

    data = ROOT / "target/testdata/rider"
    masks, spacing = read_rider(data / "seg.dcm", data / "ct")
    hu = ct_hu(data / "ct")
    pairs = {
        "rider_gtv": (masks["GTVp_test_man"], masks["GTVp_test_auto"]),
        "body_outline": (hu > -500, hu > -300),
    }
    print(f"grid {hu.shape} spacing {spacing} mm; best of {args.runs}; {os.cpu_count()} CPUs")
    print(f"{'pair':14} {'autocontour':>12} {'surface-distance':>17} {'ratio':>7} {'SimpleITK':>10} {'ratio':>7} {'criterion median':>17}")
    for name, (a, b) in pairs.items():
        t_dm, r_dm = best(lambda: deepmind(a, b, spacing), args.runs)
        t_sitk, r_sitk = best(lambda: simpleitk(a, b, spacing), args.runs)
        median = criterion_median_s(name)
        ours = None
        for line in memory.get(name, []):
            m = re.search(r"best of \d+ ([0-9.]+) s wall", line)
            if m:
                ours = float(m.group(1))
        ours = ours or median
        o = f"{ours:.4f} s" if ours else "n/a"
        med = f"{median:.4f} s" if median else "n/a"
        rd = f"{t_dm / ours:.1f}x" if ours else "n/a"
        rs = f"{t_sitk / ours:.1f}x" if ours else "n/a"
        print(f"{name:14} {o:>12} {t_dm:>15.3f} s {rd:>7} {t_sitk:>8.3f} s {rs:>7} {med:>17}")
        print(f"  surface-distance: {json.dumps(r_dm)}")
        print(f"  SimpleITK:        {json.dumps(r_sitk)}")
        for line in memory.get(name, []):
            print(f"  autocontour:      {line}")


if __name__ == "__main__":
    main()
