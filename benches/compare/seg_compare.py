#!/usr/bin/env python3
"""Side by side, same masks, same machine, one script run: a 5-structure label map on the RIDER
Lung CT grid (the masks of rtstruct_compare.py: Body, Bones, Lung_L, Lung_R, GTV) written as a
DICOM Segmentation (binary, one segment per structure):

    autocontour `mask-to-seg` (whole process: read the label map, load the CT, write the SEG)
    highdicom `Segmentation(...)` + `save_as` (whole process, including reading the CT with
    pydicom and the label map with numpy)

Wall time and peak RSS of each (GNU time), each in a fresh child process. Both files are read
back by pydicom (frames counted per Referenced Segment Number) and compared with the label map
(not timed).

    cargo build --release
    target/pyenv/bin/python benches/compare/seg_compare.py

The CLI binary is taken from $AUTOCONTOUR_BIN or target/release/autocontour; work files go to
target/tmp/seg_compare/.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import rtstruct_compare as rc  # noqa: E402

HIGHDICOM = r"""
import json, os, sys, numpy as np, pydicom, highdicom as hd
from pydicom.sr.codedict import codes
raw, ct, out = sys.argv[1:4]
meta = json.load(open(raw[:-4] + ".json"))
ni, nj, nk = meta["size"]
labels = np.fromfile(raw, np.uint8).reshape(nk, nj, ni)
dss = [pydicom.dcmread(os.path.join(ct, f)) for f in os.listdir(ct) if f.endswith(".dcm")]
dss.sort(key=lambda d: float(d.ImagePositionPatient[2]))
descs = [hd.seg.SegmentDescription(
    segment_number=e["label"], segment_label=e["name"],
    segmented_property_category=codes.SCT.Tissue, segmented_property_type=codes.SCT.Tissue,
    algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL) for e in meta["labels"]]
seg = hd.seg.Segmentation(
    source_images=dss, pixel_array=labels, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
    segment_descriptions=descs, series_instance_uid=hd.UID(), series_number=99,
    sop_instance_uid=hd.UID(), instance_number=1, manufacturer="highdicom",
    manufacturer_model_name="seg_compare", software_versions=hd.__version__,
    device_serial_number="1")
seg.save_as(out)
"""

READ_BACK = r"""
import json, sys, numpy as np, pydicom
ds = pydicom.dcmread(sys.argv[1])
px = ds.pixel_array.reshape(int(ds.NumberOfFrames), int(ds.Rows), int(ds.Columns))
count = {}
for f, item in zip(px, ds.PerFrameFunctionalGroupsSequence):
    n = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
    count[n] = count.get(n, 0) + int((f > 0).sum())
print(json.dumps({str(k): v for k, v in sorted(count.items())}))
"""


def main():
    exe = os.environ.get("AUTOCONTOUR_BIN", os.path.join(rc.ROOT, "target/release/autocontour"))
    work = os.path.join(rc.ROOT, "target/tmp/seg_compare")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    subprocess.run([sys.executable, rc.__file__, "--prepare", work], check=True)
    raw = os.path.join(work, "labels.raw")
    ours = os.path.join(work, "ours.dcm")
    theirs = os.path.join(work, "highdicom.dcm")
    runs = {
        "autocontour mask-to-seg": [exe, "mask-to-seg", raw, "--ct", rc.CT, "--out", ours],
        "highdicom Segmentation + save_as": [sys.executable, "-c", HIGHDICOM, raw, rc.CT, theirs],
    }
    results = {name: rc.measure(cmd, work) for name, cmd in runs.items()}
    meta = json.load(open(raw[:-4] + ".json"))
    ni, nj, nk = meta["size"]
    labels = np.fromfile(raw, np.uint8).reshape(nk, nj, ni)
    want = {e["label"]: int((labels == e["label"]).sum()) for e in meta["labels"]}
    for tag, path in (("ours", ours), ("highdicom", theirs)):
        p = subprocess.run([sys.executable, "-c", READ_BACK, path], capture_output=True, text=True)
        got = json.loads(p.stdout) if p.returncode == 0 else p.stderr.strip()[-300:]
        same = isinstance(got, dict) and all(got.get(str(k)) == v for k, v in want.items())
        print(f"  {tag} read back by pydicom, voxels per segment: {got}"
              f" ({'equal to the label map' if same else 'DIFFERENT'})")
        print(f"  {tag} file: {os.path.getsize(path)} bytes")
    print(f"  label map voxels per segment: {want}")
    o = results["autocontour mask-to-seg"]
    for name, (wall, rss) in results.items():
        print(f"  {name:40s} {wall:7.2f} s {rss:7.0f} MiB  ({wall / o[0]:.1f}x ours)")
    load = os.getloadavg()
    print(f"  load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
