#!/usr/bin/env python3
"""Re-implements the steps written down in models/importers/nnunet/README.md ("What
nnUNetPredictor does") with numpy/scipy only - no nnunetv2, no skimage, no torch - and checks them
against the references nnU-Net's own functions made (tests/nnunet/unit/, make_unit_refs.py); then
runs the held-out CT through the whole prediction driven by tests/nnunet/package/model.json alone,
in [z, y, x] (the ONNX graphs hold nnU-Net's transposes), with onnxruntime for the network, and
compares each stage with tests/nnunet/ref/ (nnUNetPredictor's own arrays and label maps). If this
passes, the README's description and the manifest are enough to re-implement nnU-Net's
prediction; the Rust engine can follow the same functions line by line.

Expected (and what "ok" means): exact equality for every unit case, the bounding box, the
preprocessed image and the float16-logits -> label-map step; for the sliding window with ONNX
Runtime, argmax agreement > 99.9 % (ONNX Runtime's convolutions round differently from PyTorch's in
the last bits, and nnU-Net's float16 accumulators make that visible); end to end, at most 0.1 % of
the voxels differ.

    target/pyenv/bin/python tests/nnunet/spec_check.py   # numpy, scipy, SimpleITK, onnxruntime
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

HERE = Path(__file__).resolve().parent
UNIT = HERE / "unit"


# ----------------------------------------------------------------------------- the spec

def new_shape(shape, old_sp, new_sp):
    return [int(round(o / n * s)) for o, n, s in zip(old_sp, new_sp, shape)]  # round half to even


def sep_z(cur, new, force=None, thr=3.0):
    def lowres(sp):
        sp = np.asarray(sp, float)
        return np.where(max(sp) / sp == 1)[0]

    if force is not None:
        axis = lowres(cur) if force else None
        do = bool(force)
    elif max(cur) / min(cur) > thr:
        do, axis = True, lowres(cur)
    elif max(new) / min(new) > thr:
        do, axis = True, lowres(new)
    else:
        do, axis = False, None
    if axis is not None:
        if len(axis) != 1:
            return False, None
        axis = int(axis[0])
    return do, axis


def resize(x, shape, order):
    """skimage.transform.resize(x, shape, order, mode='edge', anti_aliasing=False), float64."""
    x = x.astype(np.float64)
    zoom = [n / o for n, o in zip(shape, x.shape)]
    y = ndimage.zoom(x, zoom, order=order, mode="nearest", grid_mode=True)
    return np.clip(y, x.min(), x.max())


def resample(data, shape, cur, new, order, order_z=0, force=None):
    """default_resampling.resample_data_or_seg_to_shape for images / logits (is_seg False)."""
    shape = list(shape)
    if list(data.shape[1:]) == shape:
        return data
    do, axis = sep_z(cur, new, force)
    out = np.zeros((data.shape[0], *shape), dtype=data.dtype)
    for c in range(data.shape[0]):
        x = data[c].astype(np.float64)
        if not do:
            out[c] = resize(x, shape, order)
            continue
        inplane = [s for a, s in enumerate(shape) if a != axis]
        tmp_shape = list(shape)
        tmp_shape[axis] = x.shape[axis]
        tmp = np.zeros(tmp_shape)
        for i in range(x.shape[axis]):
            sl = [slice(None)] * 3
            sl[axis] = i
            tmp[tuple(sl)] = resize(x[tuple(sl)], inplane, order)
        if x.shape[axis] != shape[axis]:
            grid = np.meshgrid(*[(np.arange(n) + 0.5) * (o / n) - 0.5 for n, o in zip(shape, tmp.shape)],
                               indexing="ij")
            out[c] = ndimage.map_coordinates(tmp, np.array(grid), order=order_z, mode="nearest")
        else:
            out[c] = tmp
    return out


def ct_norm(x, p):
    f = np.float32
    y = np.clip(x.astype(f), f(p["percentile_00_5"]), f(p["percentile_99_5"]))
    return ((y - f(p["mean"])) / f(max(p["std"], 1e-8))).astype(f)


def steps(size, tile, step):
    out = []
    for s, t in zip(size, tile):
        n = int(np.ceil((s - t) / (t * step))) + 1
        d = (s - t) / (n - 1) if n > 1 else 0
        out.append([int(np.round(d * i)) for i in range(n)])  # np.round: half to even
    return out


def gaussian(patch, sigma_scale=1 / 8, scale=10.0):
    """compute_gaussian, with scipy's float64 operation order (so the float16 cast agrees bit for
    bit): per axis the kernel phi = exp((-0.5 / sigma^2) * x^2), x = -r..r, r = int(4 sigma + 0.5),
    divided by its (numpy pairwise) sum; filtering a unit impulse at patch // 2 along axes 0, 1, 2
    gives ((k0[i] * k1[j]) * k2[l]) (zero beyond r); then / (max / 10), cast to float16 THROUGH
    float32 (torch's .to(float16) on a float64 tensor rounds twice; a direct float64 -> float16
    rounding differs in 8 of the 61440 values of the fixture's patch), zeros replaced by the
    smallest non-zero float16 value."""
    ks = []
    for p in patch:
        s = p * sigma_scale
        r = int(4.0 * float(s) + 0.5)
        x = np.arange(-r, r + 1)
        phi = np.exp(-0.5 / (s * s) * x ** 2)
        phi = phi / phi.sum()
        c = p // 2
        k = np.zeros(p)
        for i in range(p):
            if abs(i - c) <= r:
                k[i] = phi[i - c + r]
        ks.append(k)
    g = (ks[0][:, None] * ks[1][None, :])[:, :, None] * ks[2][None, None, :]
    g = g / (g.max() / scale)
    g = g.astype(np.float32).astype(np.float16)  # torch's float64 -> float16 cast rounds via float32
    g[g == 0] = g[g > 0].min()
    return g


def sliding_window(sess, data, patch, loop_axes, mirror_axes=()):
    """nnUNetPredictor's sliding window on [C, z, y, x] data with a package ONNX graph: pad with 0
    (d // 2 before), tiles per compute_steps, loop over the axes in loop_axes order (outermost
    first), mirroring = mean of logits over all axis combinations, Gaussian weights, float16
    accumulators (each add rounded to float16), float16 division, padding cropped."""
    import itertools

    shape = data.shape[1:]
    pad = [max(0, p - s) for p, s in zip(patch, shape)]
    padw = [(0, 0)] + [(d // 2, d - d // 2) for d in pad]
    x = np.pad(data, padw, constant_values=0).astype(np.float32)
    size = x.shape[1:]
    st = steps(size, patch, 0.5)
    g = gaussian(tuple(patch))
    acc = None
    wsum = np.zeros(size, np.float16)
    combos = [c for i in range(len(mirror_axes)) for c in itertools.combinations(mirror_axes, i + 1)]
    for idx in itertools.product(*[st[a] for a in loop_axes]):
        start = [0, 0, 0]
        for a, v in zip(loop_axes, idx):
            start[a] = v
        sl = tuple(slice(s0, s0 + p) for s0, p in zip(start, patch))
        tile = x[(slice(None), *sl)][None]
        pred = sess.run(None, {"image": tile})[0][0].astype(np.float32)
        for c in combos:
            ax = tuple(a + 2 for a in c)
            pred += np.flip(sess.run(None, {"image": np.ascontiguousarray(np.flip(tile, ax))})[0], ax)[0]
        if combos:
            pred /= np.float32(len(combos) + 1)
        pred *= g.astype(np.float32)
        if acc is None:
            acc = np.zeros((pred.shape[0], *size), np.float16)
        acc[(slice(None), *sl)] = (acc[(slice(None), *sl)].astype(np.float32) + pred).astype(np.float16)
        wsum[sl] = (wsum[sl].astype(np.float32) + g.astype(np.float32)).astype(np.float16)
    acc = (acc.astype(np.float32) / wsum.astype(np.float32)).astype(np.float16)
    return acc[(slice(None), *[slice(b, b + s) for (b, _), s in zip(padw[1:], shape)])]


def crop_bbox(data):
    mask = np.any(data != 0, axis=0)
    mask = ndimage.binary_fill_holes(mask)
    if not mask.any():
        return [[0, n] for n in mask.shape]
    bb = []
    for a in range(3):
        idx = np.nonzero(mask.any(axis=tuple(b for b in range(3) if b != a)))[0]
        bb.append([int(idx[0]), int(idx[-1]) + 1])
    return bb


# ----------------------------------------------------------------------------- the held-out CT

def heldout_checks(report, stages, manifest, ct):
    """The whole prediction driven by the package's model.json alone, in [z, y, x] (the ONNX
    graphs hold the transposes), against nnU-Net's stages and label maps."""
    import SimpleITK as sitk

    m = json.loads(manifest.read_text())
    nn = m["nnunet"]
    tb = nn["transpose_backward"]
    to_zyx = [0, *[b + 1 for b in tb]]  # transposed axes -> [z, y, x], for nnU-Net's arrays
    z = np.load(stages)
    img = sitk.ReadImage(str(ct))
    raw = sitk.GetArrayFromImage(img).astype(np.float32)[None]
    sp = list(img.GetSpacing())[::-1]  # [sz, sy, sx]
    bb = crop_bbox(raw)
    data = raw[(slice(None), *[slice(a, b) for a, b in bb])]
    target = nn["spacing_zyx"]
    ns = new_shape(data.shape[1:], sp, target)
    nm = nn["normalization"][0]
    data = ct_norm(data, {"percentile_00_5": nm["clip"][0], "percentile_99_5": nm["clip"][1],
                          "mean": nm["mean"], "std": nm["std"]})
    rd = nn["resampling"]["data"]
    data = resample(data, ns, sp, target, rd["order"], rd["order_z"], rd["force_separate_z"])
    ref_bb = [list(map(int, z["bbox"][a])) for a in tb]
    report("heldout bbox", bb == ref_bb, f"{bb} vs {ref_bb}")
    ref = z["preprocessed"].transpose(to_zyx)
    ok = data.shape == ref.shape
    report("heldout preprocessed", ok and np.array_equal(data, ref),
           f"shape {data.shape} vs {ref.shape}" + (f", max diff {np.max(np.abs(data - ref))}" if ok else ""))

    rl = nn["resampling"]["logits"]
    shape_cropped = data.shape  # noqa: F841

    def to_labels(logits16):
        back = resample(logits16, [b - a for a, b in bb], target, sp, rl["order"], rl["order_z"],
                        rl["force_separate_z"])
        seg = np.zeros(raw.shape[1:], np.uint8)
        seg[tuple(slice(a, b) for a, b in bb)] = back.argmax(0)
        return seg

    # float16 logits -> label map, from nnU-Net's own logits
    seg = to_labels(z["logits_fp16"].transpose(to_zyx))
    n = int(np.sum(seg != z["segmentation"]))
    report("heldout logits -> label map", n == 0, f"{n} voxels differ")

    try:
        import onnxruntime as ort
    except ImportError:
        print("skip: onnxruntime not installed (sliding window and end-to-end checks)")
        return
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sessions = {f["fold"]: ort.InferenceSession(str(manifest.parent / f["file"]), so,
                                                providers=["CPUExecutionProvider"]) for f in nn["folds"]}
    patch = nn["patch_size_zyx"]
    loop = nn["tile_loop_axes_zyx"]
    cache = {}

    def fold_logits(fold, mirror):
        if (fold, mirror) not in cache:
            axes = nn["mirroring"]["axes_zyx"] if mirror else []
            cache[(fold, mirror)] = sliding_window(sessions[fold], data, patch, loop, axes)
        return cache[(fold, mirror)]

    mine = fold_logits(0, False)
    ref_l = z["logits_fp16"].transpose(to_zyx)
    diff = np.abs(mine.astype(np.float32) - ref_l.astype(np.float32))
    agree = float(np.mean(mine.argmax(0) == ref_l.argmax(0)))
    report("heldout sliding window (onnxruntime, fold 0, no mirroring)", agree > 0.999,
           f"max |diff| {diff.max():.4g}, {int(np.sum(mine != ref_l))} of {mine.size} float16 values "
           f"differ, argmax agreement {agree:.6f}")
    # end to end: every reference label map
    for name, folds, mirror in [("fold0_nomirror", [0], False), ("fold0_mirror", [0], True),
                                ("folds01_nomirror", [0, 1], False), ("folds01_mirror", [0, 1], True)]:
        acc = None
        for f in folds:
            lg = fold_logits(f, mirror)
            acc = lg.copy() if acc is None else (acc.astype(np.float32) + lg.astype(np.float32)).astype(np.float16)
        if len(folds) > 1:
            acc = (acc.astype(np.float32) / np.float32(len(folds))).astype(np.float16)
        seg = to_labels(acc)
        ref_seg = sitk.GetArrayFromImage(sitk.ReadImage(str(HERE / "ref" / f"{name}.nii.gz")))
        n = int(np.sum(seg != ref_seg))
        report(f"end to end {name} (onnxruntime)", n <= 0.001 * seg.size,
               f"{n} of {seg.size} voxels differ ({100 * n / seg.size:.4f} %)")


# ----------------------------------------------------------------------------- checks

def main() -> int:
    idx = json.loads((UNIT / "index.json").read_text())
    bad = 0

    def report(name, ok, detail=""):
        nonlocal bad
        bad += 0 if ok else 1
        print(f"{'ok  ' if ok else 'FAIL'} {name} {detail}")

    for c in idx["cases"]:
        f = c["function"]
        if f == "resample_data_or_seg_to_shape":
            x = np.load(UNIT / c["input"]["file"])
            ref = np.load(UNIT / c["output"]["file"])
            kw = c["kwargs"]
            y = resample(x, c["new_shape"], c["current_spacing"], c["new_spacing"], kw["order"], kw["order_z"],
                         kw["force_separate_z"])
            d = float(np.max(np.abs(y.astype(np.float64) - ref.astype(np.float64)))) if y.shape == ref.shape else None
            report(c["name"], y.shape == ref.shape and y.dtype == ref.dtype and d == 0.0,
                   f"max diff {d} dtype {y.dtype}/{ref.dtype}")
        elif f == "CTNormalization.run":
            x = np.load(UNIT / c["input"]["file"])
            ref = np.load(UNIT / c["output"]["file"])
            y = ct_norm(x, c["intensityproperties"])
            report(c["name"], np.array_equal(y, ref), f"max diff {np.max(np.abs(y - ref))}")
        elif f == "compute_steps_for_sliding_window":
            ok = all(steps(s["image_size"], s["tile_size"], s["tile_step_size"]) == s["steps"] for s in c["cases"])
            report(c["name"], ok)
        elif f == "compute_gaussian":
            ref = np.load(UNIT / c["output"]["file"])
            g = gaussian(tuple(c["kwargs"]["tile_size"]))
            n = int(np.sum(g != ref))
            report(c["name"], n == 0, f"{n} of {g.size} float16 values differ")
        elif f == "crop_to_nonzero":
            x = np.load(UNIT / c["input"]["file"])
            report(c["name"], crop_bbox(x) == c["bbox"], f"{crop_bbox(x)} vs {c['bbox']}")

    stages = HERE / "ref" / "stages_fold0_nomirror.npz"
    manifest = HERE / "package" / "model.json"
    ct = HERE / "heldout_ct.nii.gz"
    if stages.is_file() and ct.is_file() and manifest.is_file():
        heldout_checks(report, stages, manifest, ct)
    else:
        print("skip: tests/nnunet/ref/stages_fold0_nomirror.npz, package/model.json or heldout_ct.nii.gz missing")
    print("all ok" if bad == 0 else f"{bad} FAILED")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
