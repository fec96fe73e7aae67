#!/usr/bin/env python3
"""Side by side, same masks, same machine, one script run:

(a) masks -> RT Structure Set file, 5 structures on the RIDER Lung CT grid (236 x 512 x 512):
    autocontour's CLI `mask-to-rtstruct` (whole process: read the label map, load the CT, trace,
    write) vs rt-utils (`RTStructBuilder.create_new` + `add_roi` x 5 + `save`, whole process
    including reading the same label map with numpy).
(b) RT Structure Set -> masks, the 5-structure file written by (a): autocontour's CLI
    `rtstruct-to-mask` vs `plastimatch convert` (one mask per structure, and one label image)
    and rt-utils (`RTStructBuilder.create_from` + `get_roi_mask_by_name` per ROI, painted into
    one label map written raw).

Wall time and peak RSS of each tool (GNU time, `apt install time`), each in a fresh child
process; best of --runs. The structures (not timed): Body (HU > -500, largest 3-D component, holes filled per
slice), Bones (HU > 250 inside the body, components of >= 1 ml, holes filled per slice), Lung_L / Lung_R (air inside the body, components
above 10 % of the largest, split at the body's mid-line), GTV (segment 1 of the RIDER DICOM SEG,
read by pydicom: tests/python/rt_seg_to_raw.py). Painted in that order into one exclusive label
map (labels 1..5) saved as `labels.raw` + `labels.json`; rt-utils gets `labels == n` per
structure. Each output is checked (not timed): every file is rasterised back by our reader and
compared with the masks (Dice), and the two rasterisations of (b) are compared with each other.

    cargo build --release
    target/pyenv/bin/pip install -r benches/compare/requirements.txt   # rt-utils, OpenCV
    target/pyenv/bin/python benches/compare/rtstruct_compare.py [--runs 1] [--json]

The CLI binary is taken from $AUTOCONTOUR_BIN or target/release/autocontour; work files go to
target/tmp/rtstruct_compare/.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pydicom
from scipy import ndimage

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CT = os.path.join(ROOT, "target/testdata/rider/ct")
SEG = os.path.join(ROOT, "target/testdata/rider/seg.dcm")
NAMES = ["Body", "Bones", "Lung_L", "Lung_R", "GTV"]

RT_UTILS = r"""
import json, sys, numpy as np
from rt_utils import RTStructBuilder
raw, ct, out = sys.argv[1:4]
meta = json.load(open(raw[:-4] + ".json"))
ni, nj, nk = meta["size"]
labels = np.fromfile(raw, np.uint8).reshape(nk, nj, ni)
rt = RTStructBuilder.create_new(dicom_series_path=ct)
for e in meta["labels"]:
    # rt-utils wants (rows, columns, slices), slices in its own ascending order (same as ours
    # for this axial head-first CT).
    mask = np.ascontiguousarray((labels == e["label"]).transpose(1, 2, 0))
    rt.add_roi(mask=mask, color=e["color"], name=e["name"])
rt.save(out)
"""

RT_UTILS_READ = r"""
import sys, numpy as np
from rt_utils import RTStructBuilder
ct, rs, out = sys.argv[1:4]
rt = RTStructBuilder.create_from(dicom_series_path=ct, rt_struct_path=rs)
labels = None
for v, name in enumerate(rt.get_roi_names(), start=1):
    # rt-utils gives (rows, columns, slices); the label map is (slices, rows, columns).
    m = rt.get_roi_mask_by_name(name).transpose(2, 0, 1)
    if labels is None:
        labels = np.zeros(m.shape, np.uint8)
    labels[m] = v
labels.tofile(out)
"""


def measure(cmd, work):
    """Runs cmd in a child; returns (wall seconds, peak RSS MiB of that child).

    The peak RSS comes from GNU time (`/usr/bin/time -f %M`), a small process between us and
    the tool: Linux counts in a child's peak RSS the memory of the process it was forked from.
    """
    out = os.path.join(work, "time.txt")
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", out] + cmd,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{cmd} failed:\n{p.stderr.decode(errors='replace')}")
    with open(out) as f:
        rss_kib = int(f.read().split()[-1])
    return wall, rss_kib / 1024.0


def load_ct():
    dss = []
    for f in os.listdir(CT):
        if not f.endswith(".dcm"):
            continue
        dss.append(pydicom.dcmread(os.path.join(CT, f), force=True))
    iop = np.array(dss[0].ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    dss.sort(key=lambda d: float(np.dot(normal, np.array(d.ImagePositionPatient, float))))
    hu = np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in dss])
    gaps = np.diff([np.dot(normal, np.array(d.ImagePositionPatient, float)) for d in dss])
    grid = {
        "size": [int(dss[0].Columns), int(dss[0].Rows), len(dss)],
        "origin": [float(v) for v in dss[0].ImagePositionPatient],
        "spacing": [float(dss[0].PixelSpacing[1]), float(dss[0].PixelSpacing[0]),
                    float(np.median(gaps))],
        # Rows of the matrix whose columns are the i, j, k axes.
        "direction": np.column_stack([iop[:3], iop[3:], normal]).tolist(),
    }
    return hu.astype(np.float32), grid


def make_labels(hu, grid, work):
    body = hu > -500
    lab, n = ndimage.label(body)
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    body = lab == sizes.argmax()
    for k in range(body.shape[0]):
        body[k] = ndimage.binary_fill_holes(body[k])
    air = body & (hu <= -500)
    lab, n = ndimage.label(air)
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    keep = np.flatnonzero(sizes >= 0.1 * sizes.max())
    lungs = np.isin(lab, keep)
    for k in range(lungs.shape[0]):
        lungs[k] = ndimage.binary_fill_holes(lungs[k])
    lungs &= body
    # Patient left is +x; the i axis runs along +x on this CT (row cosine (1, 0, 0)).
    cols = np.flatnonzero(body.any(axis=(0, 1)))
    mid = (cols[0] + cols[-1]) // 2
    left = np.zeros_like(lungs)
    left[:, :, mid:] = lungs[:, :, mid:]
    right = lungs & ~left
    # Bones as a planning system would keep them: components of at least 1 ml, holes filled
    # per slice (a raw threshold gives tens of thousands of one-voxel islands).
    bones = body & (hu > 250)
    lab, n = ndimage.label(bones)
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    voxel_ml = float(np.prod(grid["spacing"])) / 1000.0
    bones = np.isin(lab, np.flatnonzero(sizes * voxel_ml >= 1.0))
    for k in range(bones.shape[0]):
        bones[k] = ndimage.binary_fill_holes(bones[k])
    # GTV: segment 1 of the RIDER SEG, read by pydicom and placed on this grid.
    with open(os.path.join(work, "grid.json"), "w") as f:
        json.dump(grid, f)
    raw = os.path.join(work, "seg.raw")
    subprocess.run([sys.executable, os.path.join(ROOT, "tests/python/rt_seg_to_raw.py"), SEG,
                    os.path.join(work, "grid.json"), raw], check=True, stdout=subprocess.DEVNULL)
    n = hu.size
    gtv = np.fromfile(raw, np.uint8)[:n].reshape(hu.shape) != 0
    labels = np.zeros(hu.shape, np.uint8)
    for v, m in enumerate([body, bones, left, right, gtv], start=1):
        labels[m] = v
    colors = [[0, 255, 0], [255, 255, 200], [0, 128, 255], [255, 128, 0], [255, 0, 0]]
    meta = dict(grid)
    meta["labels"] = [{"label": v + 1, "name": NAMES[v], "color": colors[v]} for v in range(5)]
    labels.tofile(os.path.join(work, "labels.raw"))
    with open(os.path.join(work, "labels.json"), "w") as f:
        json.dump(meta, f)
    return labels


def read_mha(path):
    with open(path, "rb") as f:
        data = f.read()
    head, pos = {}, 0
    while True:
        end = data.index(b"\n", pos)
        k, v = data[pos:end].decode().split("=", 1)
        pos = end + 1
        head[k.strip()] = v.strip()
        if k.strip() == "ElementDataFile":
            break
    assert head.get("CompressedData", "False") == "False"
    dims = [int(x) for x in head["DimSize"].split()]
    return np.frombuffer(data[pos:], np.uint8).reshape(dims[::-1])


def read_nifti(path):
    import nibabel as nib
    img = nib.load(path)
    return np.asarray(img.dataobj).transpose(2, 1, 0)  # (i, j, k) -> (k, j, i)


def dice(a, b):
    a, b = a != 0, b != 0
    s = int(a.sum()) + int(b.sum())
    return 1.0 if s == 0 else 2.0 * int((a & b).sum()) / s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--prepare", metavar="DIR", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.prepare:
        hu, grid = load_ct()
        make_labels(hu, grid, a.prepare)
        return
    exe = os.environ.get("AUTOCONTOUR_BIN", os.path.join(ROOT, "target/release/autocontour"))
    work = os.path.join(ROOT, "target/tmp/rtstruct_compare")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    # The masks are made in a child process: peak RSS of a child counts the memory of the
    # process it was forked from, so this one stays small until the timings are done.
    subprocess.run([sys.executable, os.path.abspath(__file__), "--prepare", work], check=True)
    raw = os.path.join(work, "labels.raw")

    ours_rs = os.path.join(work, "ours.dcm")
    rtu_rs = os.path.join(work, "rt_utils.dcm")
    write = {
        "autocontour mask-to-rtstruct": [exe, "mask-to-rtstruct", raw, "--ct", CT, "--out",
                                         ours_rs],
        "rt-utils": [sys.executable, "-c", RT_UTILS, raw, CT, rtu_rs],
    }
    ours_dir = os.path.join(work, "ours_masks")
    ours_nii = os.path.join(work, "ours_labels.nii")
    pm_prefix = os.path.join(work, "pm_masks")
    pm_ss = os.path.join(work, "pm_ss.nrrd")
    read = {
        "autocontour rtstruct-to-mask (folder, .nii.gz per ROI)": [
            exe, "rtstruct-to-mask", ours_rs, "--ct", CT, "--out", ours_dir],
        "autocontour rtstruct-to-mask (one .nii label map)": [
            exe, "rtstruct-to-mask", ours_rs, "--ct", CT, "--out", ours_nii],
        "plastimatch convert --output-prefix (.mha per ROI)": [
            "plastimatch", "convert", "--input", ours_rs, "--referenced-ct", CT,
            "--output-prefix", pm_prefix],
        "plastimatch convert --output-ss-img": [
            "plastimatch", "convert", "--input", ours_rs, "--referenced-ct", CT,
            "--output-ss-img", pm_ss],
        "rt-utils create_from + get_roi_mask_by_name (one raw label map)": [
            sys.executable, "-c", RT_UTILS_READ, CT, ours_rs, os.path.join(work, "rtu_labels.raw")],
    }
    results = {}
    for group in (write, read):
        for name, cmd in group.items():
            runs = [measure(cmd, work) for _ in range(a.runs)]
            results[name] = {"wall_s": min(r[0] for r in runs),
                             "peak_rss_mib": max(r[1] for r in runs)}

    # Checks (not timed). Both structure sets rasterised by our reader; (b)'s outputs compared.
    meta = json.load(open(os.path.join(work, "labels.json")))
    ni, nj, nk = meta["size"]
    labels = np.fromfile(raw, np.uint8).reshape(nk, nj, ni)
    voxels = {NAMES[v - 1]: int((labels == v).sum()) for v in range(1, 6)}
    checks = {}
    for tag, rs in [("ours", ours_rs), ("rt-utils", rtu_rs)]:
        out = os.path.join(work, f"check_{tag}")
        subprocess.run([exe, "rtstruct-to-mask", rs, "--ct", CT, "--out", out], check=True,
                       stdout=subprocess.DEVNULL)
        meta = json.load(open(os.path.join(out, "labels.json")))
        checks[f"{tag} file rasterised vs mask (Dice)"] = {
            m["name"]: round(dice(read_nifti(os.path.join(out, m["file"])),
                                  labels == NAMES.index(m["name"]) + 1), 5)
            for m in meta["masks"]}
    d = {}
    for v, name in enumerate(NAMES, start=1):
        ours = read_nifti(os.path.join(ours_dir, f"{v:02d}_{name}.nii.gz"))
        pm = read_mha(os.path.join(pm_prefix, f"{name}.mha"))
        d[name] = round(dice(ours, pm), 5)
    checks["rtstruct-to-mask vs plastimatch (Dice)"] = d
    rtu = np.fromfile(os.path.join(work, "rtu_labels.raw"), np.uint8).reshape(nk, nj, ni)
    checks["rt-utils reading ours vs the masks (Dice)"] = {
        name: round(dice(rtu == v, labels == v), 5) for v, name in enumerate(NAMES, start=1)}
    contours = {}
    for tag, rs in [("ours", ours_rs), ("rt-utils", rtu_rs)]:
        ds = pydicom.dcmread(rs)
        contours[tag] = {
            "contours": sum(len(getattr(c, "ContourSequence", [])) for c in ds.ROIContourSequence),
            "points": sum(len(ci.ContourData) // 3 for c in ds.ROIContourSequence
                          for ci in getattr(c, "ContourSequence", [])),
            "bytes": os.path.getsize(rs),
        }
    checks["files"] = contours

    load = os.getloadavg()
    report = {"voxels": voxels, "results": results, "checks": checks,
              "load_average": [round(x, 2) for x in load], "cpus": os.cpu_count()}
    if a.json:
        print(json.dumps(report, indent=1))
        return
    print(f"5 structures on the RIDER grid, voxels: {voxels}")
    ow = results["autocontour mask-to-rtstruct"]
    for name in write:
        r = results[name]
        print(f"  write  {name:55s} {r['wall_s']:7.2f} s  {r['peak_rss_mib']:7.0f} MiB"
              f"  ({r['wall_s'] / ow['wall_s']:.1f}x ours)")
    orr = results["autocontour rtstruct-to-mask (folder, .nii.gz per ROI)"]
    for name in read:
        r = results[name]
        print(f"  read   {name:55s} {r['wall_s']:7.2f} s  {r['peak_rss_mib']:7.0f} MiB"
              f"  ({r['wall_s'] / orr['wall_s']:.1f}x ours/folder)")
    for k, v in checks.items():
        print(f"  {k}: {v}")
    print(f"  load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
