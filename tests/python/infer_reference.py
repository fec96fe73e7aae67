#!/usr/bin/env python3
"""Independent reference of the inference engine: numpy + scipy + onnxruntime.

Reads a CT crop written by tests/integration/infer.rs (raw little-endian float32 HU in [k][j][i] order plus a
JSON geometry), runs a model package the way models/MANIFEST.md specifies (reorient to LPS or
native, resample with scipy's map_coordinates, normalise, pad, nnU-Net sliding window with a
scipy Gaussian importance map or centre cropping, mirroring TTA, softmax), and writes the
model-grid probabilities as raw float32 [class][z][y][x].

    python infer_reference.py <model_dir> <ct.json> <out.f32> <ort_lib_dir_unused>
"""
import itertools
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from scipy.ndimage import gaussian_filter, map_coordinates


def lps_axes(direction):
    d = np.array(direction)  # d[r][a]: component r of CT axis a
    best = None
    for p in itertools.permutations(range(3)):
        score = sum(abs(d[r][p[r]]) for r in range(3))
        if best is None or score > best[0] + 1e-12:
            best = (score, p)
    p = best[1]
    return [(p[r], d[r][p[r]] < 0) for r in range(3)]


def model_axes(geom, manifest):
    if manifest["orientation"] == "LPS":
        perm = lps_axes(geom["direction"])
    else:
        perm = [(0, False), (1, False), (2, False)]
    axes = []
    for m, (a, flipped) in enumerate(perm):
        n = geom["size"][a]
        s = geom["spacing"][a]
        sp = manifest["spacing_mm"]
        target = s if sp == "native" else sp[m]
        step = target / s
        length = int(np.floor((n - 1) / step + 1e-6)) + 1
        axes.append(dict(ct_axis=a, flipped=flipped, n=n, step=step, len=length))
    return axes


def normalise(hu, norm):
    if norm["kind"] == "ct_window":
        lo = norm["level"] - norm["width"] / 2
        t = np.clip((hu.astype(np.float64) - lo) / norm["width"], 0, 1)
        r0, r1 = norm["range"]
        return (r0 + t * (r1 - r0)).astype(np.float32)
    c0, c1 = norm["clip"]
    return ((np.clip(hu.astype(np.float64), c0, c1) - norm["mean"]) / norm["std"]).astype(np.float32)


def resample(ct_kji, axes, norm):
    vol = normalise(ct_kji, norm)  # [k][j][i]
    coords_by_model = []
    for ax in axes:
        c = np.arange(ax["len"]) * ax["step"]
        if ax["flipped"]:
            c = (ax["n"] - 1) - c
        coords_by_model.append(c)
    # model array [z][y][x]: model axis 2, 1, 0. Coordinates into vol [k][j][i] = CT axes 2, 1, 0.
    mz, my, mx = np.meshgrid(coords_by_model[2], coords_by_model[1], coords_by_model[0], indexing="ij")
    by_ct = {}
    for m, grid in zip((2, 1, 0), (mz, my, mx)):
        by_ct[axes[m]["ct_axis"]] = grid
    coords = np.stack([by_ct[2], by_ct[1], by_ct[0]])
    return map_coordinates(vol, coords, order=1, mode="nearest").astype(np.float32)


def steps(size, patch, step):
    if size <= patch:
        return [0]
    n = int(np.ceil((size - patch) / (patch * step))) + 1
    actual = (size - patch) / (n - 1)
    return [int(np.round(actual * i)) for i in range(n)]


def gaussian(patch):
    tmp = np.zeros(patch)
    tmp[tuple(p // 2 for p in patch)] = 1
    g = gaussian_filter(tmp, [p / 8 for p in patch], 0, mode="constant", cval=0)
    g = g / g.max() * 10
    g[g == 0] = g[g > 0].min()
    return g.astype(np.float32)


def crop_weights(start, patch, size, stride):
    margin = max(patch - stride, 0) // 2
    lo = 0 if start == 0 else margin
    hi = patch if start + patch >= size else patch - margin
    w = np.zeros(patch, np.float32)
    w[lo:hi] = 1
    return w


def main():
    model_dir, ct_json, out_path = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    manifest = json.loads((model_dir / "model.json").read_text())
    geom = json.loads(ct_json.read_text())
    ni, nj, nk = geom["size"]
    ct = np.fromfile(ct_json.with_suffix(".f32"), dtype="<f4").reshape(nk, nj, ni)
    axes = model_axes(geom, manifest)
    img = resample(ct, axes, manifest["normalization"])
    sz, sy, sx = img.shape
    patch = manifest["patch_size"]
    padded = [max(a, b) for a, b in zip(img.shape, patch)]
    lo = [(p - s) // 2 for p, s in zip(padded, img.shape)]
    pimg = np.zeros(padded, np.float32)
    pimg[lo[0]:lo[0] + sz, lo[1]:lo[1] + sy, lo[2]:lo[2] + sx] = img
    classes = len(manifest["labels"])
    acc = np.zeros([classes] + padded, np.float64)
    wsum = np.zeros(padded, np.float64)
    sess = ort.InferenceSession(str(model_dir / manifest["onnx"]["file"]), providers=["CPUExecutionProvider"])
    dt = np.float16 if manifest["onnx"]["dtype"] == "float16" else np.float32
    mirror = sorted(set(manifest.get("mirror_axes", [])))
    subsets = [s for r in range(len(mirror) + 1) for s in itertools.combinations(mirror, r)]
    g = gaussian(patch) if manifest["blending"] == "gaussian" else None
    strides = [max(int(round(p * manifest["tile_step"])), 1) for p in patch]
    st = [steps(padded[a], patch[a], manifest["tile_step"]) for a in range(3)]
    for z, y, x in itertools.product(*st):
        tile = pimg[z:z + patch[0], y:y + patch[1], x:x + patch[2]]
        total = np.zeros([classes] + patch, np.float32)
        for sub in subsets:
            t = np.flip(tile, axis=sub) if sub else tile
            out = sess.run([manifest["onnx"]["output"]],
                           {manifest["onnx"]["input"]: np.ascontiguousarray(t)[None, None].astype(dt)})[0]
            out = out[0].astype(np.float32)
            if sub:
                out = np.flip(out, axis=tuple(a + 1 for a in sub))
            total += out
        total /= len(subsets)
        if g is not None:
            w = g
        else:
            wz = crop_weights(z, patch[0], padded[0], strides[0])
            wy = crop_weights(y, patch[1], padded[1], strides[1])
            wx = crop_weights(x, patch[2], padded[2], strides[2])
            w = wz[:, None, None] * wy[None, :, None] * wx[None, None, :]
        acc[:, z:z + patch[0], y:y + patch[1], x:x + patch[2]] += total * w
        wsum[z:z + patch[0], y:y + patch[1], x:x + patch[2]] += w
    scores = acc / np.where(wsum > 0, wsum, 1)
    scores = scores[:, lo[0]:lo[0] + sz, lo[1]:lo[1] + sy, lo[2]:lo[2] + sx]
    if manifest["output_kind"] == "logits":
        e = np.exp(scores - scores.max(axis=0, keepdims=True))
        probs = e / e.sum(axis=0, keepdims=True)
    else:
        probs = scores / scores.sum(axis=0, keepdims=True)
    probs.astype("<f4").tofile(out_path)
    print(json.dumps({"model_grid_zyx": [sz, sy, sx], "tiles": len(list(itertools.product(*st)))}))


if __name__ == "__main__":
    main()
