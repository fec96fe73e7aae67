#!/usr/bin/env python3
"""Side by side: load the RIDER CT (236 x 512 x 512) into HU with autocontour's CLI (release
build), pydicom + numpy, and SimpleITK's ImageSeriesReader. Wall time and peak RSS of each,
measured in a fresh child process, same machine, same run; best of N runs.

    cargo build --release && target/pyenv/bin/python benches/compare/load_compare.py [--runs 3]

The CLI binary is taken from $AUTOCONTOUR_BIN or target/release/autocontour.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CT = os.path.join(ROOT, "target/testdata/rider/ct")

PYDICOM = r"""
import os, sys, numpy as np, pydicom
d = sys.argv[1]
dss = []
for f in os.listdir(d):
    if not f.endswith(".dcm"):
        continue  # RIDER's folder also holds a LICENSE file
    ds = pydicom.dcmread(os.path.join(d, f), force=True)  # RIDER files have no file meta
    ds.file_meta = getattr(ds, "file_meta", pydicom.dataset.FileMetaDataset())
    ds.file_meta.setdefault("TransferSyntaxUID", pydicom.uid.ImplicitVRLittleEndian)
    dss.append(ds)
n = np.cross([float(x) for x in dss[0].ImageOrientationPatient[:3]],
             [float(x) for x in dss[0].ImageOrientationPatient[3:]])
dss.sort(key=lambda ds: float(np.dot(n, [float(x) for x in ds.ImagePositionPatient])))
vol = np.empty((len(dss), dss[0].Rows, dss[0].Columns), np.float32)
for k, ds in enumerate(dss):
    vol[k] = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
print(vol.shape, float(vol.mean()))
"""

SITK = r"""
import sys, SimpleITK as sitk
r = sitk.ImageSeriesReader()
r.SetFileNames(r.GetGDCMSeriesFileNames(sys.argv[1]))
r.SetOutputPixelType(sitk.sitkFloat32)
img = r.Execute()
a = sitk.GetArrayViewFromImage(img)
print(img.GetSize(), float(a.mean()))
"""


def measure(cmd):
    """Runs cmd in a child; returns (wall seconds, peak RSS MiB of that child)."""
    t0 = time.perf_counter()
    # wait4 gives the rusage of exactly this child.
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"{cmd[0]} failed: {p.stderr.read().decode()}")
    return wall, ru.ru_maxrss / 1024.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    exe = os.environ.get("AUTOCONTOUR_BIN", os.path.join(ROOT, "target/release/autocontour"))
    tools = {
        "autocontour": [exe, "series", CT, "--load"],
        "pydicom+numpy": [sys.executable, "-c", PYDICOM, CT],
        "SimpleITK": [sys.executable, "-c", SITK, CT],
    }
    results = {}
    for name, cmd in tools.items():
        runs = [measure(cmd) for _ in range(a.runs)]
        results[name] = {"wall_s": min(r[0] for r in runs), "peak_rss_mib": max(r[1] for r in runs)}
    hu_mib = 512 * 512 * 236 * 4 / 2**20
    ours = results["autocontour"]
    for name, r in results.items():
        r["time_ratio_vs_autocontour"] = r["wall_s"] / ours["wall_s"]
    out = {"cpus": os.cpu_count(), "hu_volume_mib": hu_mib, "results": results,
           "autocontour_rss_over_volume": ours["peak_rss_mib"] / hu_mib}
    if a.json:
        print(json.dumps(out, indent=1))
        return
    print(f"RIDER CT 512x512x236, {os.cpu_count()} CPUs, best of {a.runs}; HU volume f32 = {hu_mib:.0f} MiB")
    for name, r in results.items():
        print(f"  {name:<14} {r['wall_s']:7.2f} s  {r['peak_rss_mib']:7.0f} MiB  "
              f"({r['time_ratio_vs_autocontour']:.2f}x autocontour's time)")
    print(f"  autocontour peak RSS / volume = {out['autocontour_rss_over_volume']:.2f}")


if __name__ == "__main__":
    main()
