#!/usr/bin/env python3
"""Side by side, one run, one machine: our engine vs a numpy + onnxruntime pipeline vs MONAI's
sliding_window_inference with an onnxruntime predictor, same model, same CT, CPU.

    python benches/compare/infer_compare.py [--ct DIR] [--model DIR] [--threads N] [--exe PATH]

Needs: a release build of the example (`cargo build --release --example segment`; --exe points
at another build of it), and a Python
with numpy, scipy, pydicom, onnxruntime (target/pyenv has them); MONAI's column needs torch and
monai (skipped with a note when missing). Each pipeline runs in its own process so its peak RSS
(ru_maxrss) is its own. Every pipeline starts from the DICOM folder and ends with a label map on
the CT grid; ours also writes the RTSTRUCT (its time is reported separately).

"non-ORT %" is the share of a pipeline's inference wall time (model grid + tiles + back to the CT
grid) spent outside ONNX Runtime's run calls; for ours it is printed a second time with the
postprocessing (largest component, hole filling: a step the peers do not do) counted in, and
our engine's own steps are listed one by one. The machine's load average is printed with the
results: the figures are only comparable within one run.
"""
import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests/python"))

CHILD = r'''
import json, resource, sys, time
sys.path.insert(0, {refdir!r})
import numpy as np
import pydicom
from pathlib import Path
import infer_reference as ref
import onnxruntime as ort
from scipy.ndimage import map_coordinates

mode, ct_dir, model_dir, threads = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
t0 = time.perf_counter()
files = [pydicom.dcmread(p) for p in sorted(ct_dir.glob("*.dcm"))]
files = [f for f in files if "PixelData" in f]
iop = np.array(files[0].ImageOrientationPatient, float)
normal = np.cross(iop[:3], iop[3:])
files.sort(key=lambda f: float(np.dot(np.array(f.ImagePositionPatient, float), normal)))
ct = np.stack([f.pixel_array.astype(np.float32) * float(f.RescaleSlope) + float(f.RescaleIntercept) for f in files])
ps = [float(v) for v in files[0].PixelSpacing]
pos = [np.dot(np.array(f.ImagePositionPatient, float), normal) for f in files]
gap = float(np.median(np.diff(pos)))
geom = dict(size=[ct.shape[2], ct.shape[1], ct.shape[0]], spacing=[ps[1], ps[0], gap],
            direction=[[iop[0], iop[3], normal[0]], [iop[1], iop[4], normal[1]], [iop[2], iop[5], normal[2]]])
t_load = time.perf_counter() - t0
manifest = json.loads((model_dir / "model.json").read_text())
t1 = time.perf_counter()
axes = ref.model_axes(geom, manifest)
img = ref.resample(ct, axes, manifest["normalization"])
t_pre = time.perf_counter() - t1
so = ort.SessionOptions(); so.intra_op_num_threads = threads
sess = ort.InferenceSession(str(model_dir / manifest["onnx"]["file"]), so, providers=["CPUExecutionProvider"])
t2 = time.perf_counter()
ort_s = 0.0
classes = len(manifest["labels"])
patch = manifest["patch_size"]
if mode == "numpy":
    import itertools
    sz, sy, sx = img.shape
    padded = [max(a, b) for a, b in zip(img.shape, patch)]
    lo = [(p - s) // 2 for p, s in zip(padded, img.shape)]
    pimg = np.zeros(padded, np.float32)
    pimg[lo[0]:lo[0]+sz, lo[1]:lo[1]+sy, lo[2]:lo[2]+sx] = img
    acc = np.zeros([classes] + padded, np.float32); wsum = np.zeros(padded, np.float32)
    g = ref.gaussian(patch)
    st = [ref.steps(padded[a], patch[a], manifest["tile_step"]) for a in range(3)]
    for z, y, x in itertools.product(*st):
        tile = pimg[z:z+patch[0], y:y+patch[1], x:x+patch[2]]
        tr = time.perf_counter()
        out = sess.run(None, {{manifest["onnx"]["input"]: tile[None, None]}})[0][0]
        ort_s += time.perf_counter() - tr
        acc[:, z:z+patch[0], y:y+patch[1], x:x+patch[2]] += out * g
        wsum[z:z+patch[0], y:y+patch[1], x:x+patch[2]] += g
    scores = (acc / wsum)[:, lo[0]:lo[0]+sz, lo[1]:lo[1]+sy, lo[2]:lo[2]+sx]
else:
    import torch
    from monai.inferers import sliding_window_inference
    torch.set_num_threads(threads)
    def predictor(x):
        global ort_s
        tr = time.perf_counter()
        y = sess.run(None, {{manifest["onnx"]["input"]: x.numpy()}})[0]
        ort_s += time.perf_counter() - tr
        return torch.from_numpy(y)
    with torch.no_grad():
        scores = sliding_window_inference(torch.from_numpy(img)[None, None], roi_size=patch, sw_batch_size=4,
                                          predictor=predictor, overlap=1 - manifest["tile_step"], mode="gaussian",
                                          sigma_scale=0.125, padding_mode="constant", cval=0.0)[0].numpy()
t_inf = time.perf_counter() - t2
t3 = time.perf_counter()
# back to the CT grid: per-class linear interpolation at every CT voxel, then argmax (slab-wise)
coords_ct = []
for a in range(3):
    m = [i for i, ax in enumerate(axes) if ax["ct_axis"] == a][0]
    ax = axes[m]
    c = np.arange(geom["size"][a], dtype=np.float64)
    if ax["flipped"]:
        c = (ax["n"] - 1) - c
    coords_ct.append((m, c / ax["step"]))
labels = np.zeros(ct.shape, np.uint8)
by_model = {{m: c for m, c in coords_ct}}
for k0 in range(0, ct.shape[0], 16):
    k1 = min(k0 + 16, ct.shape[0])
    kk, jj, ii = np.meshgrid(np.arange(k0, k1), np.arange(ct.shape[1]), np.arange(ct.shape[2]), indexing="ij")
    ct_idx = {{0: ii, 1: jj, 2: kk}}
    # model array is [z][y][x] = model axes 2, 1, 0
    mc = []
    for m in (2, 1, 0):
        a = axes[m]["ct_axis"]
        c = ct_idx[a].astype(np.float64)
        if axes[m]["flipped"]:
            c = (axes[m]["n"] - 1) - c
        mc.append(c / axes[m]["step"])
    mc = np.stack(mc)
    best = None
    for c in range(classes):
        v = map_coordinates(scores[c], mc, order=1, mode="nearest")
        if best is None:
            best = v; labels[k0:k1] = 0
        else:
            better = v > best
            labels[k0:k1][better] = c
            best = np.maximum(best, v)
t_res = time.perf_counter() - t3
print(json.dumps(dict(load_s=t_load, preprocess_s=t_pre, inference_s=t_inf, ort_run_s=ort_s, resample_s=t_res,
                      total_s=time.perf_counter() - t0,
                      peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      voxels=[int((labels == c).sum()) for c in range(classes)])))
'''


def run_child(python, mode, ct, model, threads):
    code = CHILD.format(refdir=str(ROOT / "tests/python"))
    r = subprocess.run([python, "-c", code, mode, str(ct), str(model), str(threads)], capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ct", default=str(ROOT / "target/testdata/rider/ct"))
    ap.add_argument("--model", default=str(ROOT / "models/thorax-basic"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--python", default=str(ROOT / "target/pyenv/bin/python"), help="Python for the numpy pipeline")
    ap.add_argument("--monai-python", default=str(ROOT / "target/train-venv/bin/python"),
                    help="Python with torch + monai for the MONAI pipeline")
    ap.add_argument("--exe", default=str(ROOT / "target/release/examples/segment"),
                    help="the segment example's binary")
    a = ap.parse_args()
    exe = Path(a.exe)
    load_before = os.getloadavg()
    if not exe.exists():
        sys.exit("build it first: cargo build --release --example segment")
    env = dict(os.environ, AUTOCONTOUR_ORT_LIB=str(ROOT / "target/onnxruntime/libonnxruntime.so.1.31.1"))
    out = ROOT / "target/bench-rtstruct.dcm"
    r = subprocess.run([str(exe), a.ct, a.model, str(out), str(a.threads)], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(r.stderr)
    ours = json.loads(r.stdout.strip().splitlines()[-1])
    rows = {"autocontour (Rust)": ours, "numpy + onnxruntime": run_child(a.python, "numpy", a.ct, a.model, a.threads)}
    if Path(a.monai_python).exists():
        rows["MONAI sliding_window + onnxruntime"] = run_child(a.monai_python, "monai", a.ct, a.model, a.threads)
    else:
        rows["MONAI sliding_window + onnxruntime"] = {"error": f"{a.monai_python} not found (needs torch + monai)"}
    load_after = os.getloadavg()
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, {platform.platform()}; threads={a.threads}")
    print(f"load average (1, 5, 15 min): before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
          f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    print(f"CT: {a.ct}\nmodel: {a.model}\n")
    hdr = f"{'pipeline':<36}{'load':>7}{'pre':>7}{'infer':>8}{'ORT':>8}{'back':>7}{'total':>8}{'non-ORT %':>10}{'peak MB':>9}"
    print(hdr)
    for name, v in rows.items():
        if "error" in v:
            print(f"{name:<36} error: {v['error']}")
            continue
        work = v["preprocess_s"] + v["inference_s"] + v["resample_s"]
        non_ort = 100 * (work - v["ort_run_s"]) / work
        print(f"{name:<36}{v['load_s']:>7.2f}{v['preprocess_s']:>7.2f}{v['inference_s']:>8.2f}{v['ort_run_s']:>8.2f}"
              f"{v['resample_s']:>7.2f}{v['total_s']:>8.2f}{non_ort:>9.1f}%{v['peak_rss_mb']:>9.0f}")
    base = ours["total_s"]
    for name, v in rows.items():
        if "error" not in v and v is not ours:
            print(f"\n{name}: {v['total_s'] / base:.2f}x our wall time, {v['peak_rss_mb'] / ours['peak_rss_mb']:.2f}x our peak RSS")
    work = ours["preprocess_s"] + ours["inference_s"] + ours["resample_s"]
    with_pp = work + ours["postprocess_s"]
    print(f"\nours: RTSTRUCT written in {ours['rtstruct_s']:.2f} s (not in the other pipelines), postprocess {ours['postprocess_s']:.2f} s;"
          f" non-ORT share with postprocessing {100 * (with_pp - ours['ort_run_s']) / with_pp:.1f}%")
    st = ours.get("stages")
    if st:
        print(f"\nours, engine steps (s) of {work:.3f} s inference wall:")
        inner = ["model_grid_s", "pad_s", "weights_s", "tile_gather_s", "convert_s", "ort_run_s", "blend_s",
                 "normalize_s", "confidence_s", "back_resample_s", "probabilities_s"]
        for k in inner:
            print(f"  {k[:-2]:<16}{st[k]:>8.3f}  {100 * st[k] / work:5.1f}%")
        rest = work - sum(st[k] for k in inner)
        print(f"  {'other':<16}{rest:>8.3f}  {100 * rest / work:5.1f}%")


if __name__ == "__main__":
    main()
