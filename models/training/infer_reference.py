#!/usr/bin/env python3
"""Reference inference for an autocontour model package (models/MANIFEST.md, schema 1).

numpy + scipy + pydicom + onnxruntime only. The Rust engine (src/model, src/infer) is tested
against this script, so every step is spelled out and kept simple:

1. load the CT series: slices sorted by the projection of Image Position (Patient) on the slice
   normal (row cosine x column cosine), HU = stored * slope + intercept;
2. reorient to LPS ("orientation": "LPS"): array axes [z, y, x] with x -> patient left,
   y -> posterior, z -> head, by axis permutation/flip only (nearest patient axis per voxel axis);
3. resample to spacing_mm with trilinear interpolation. Grid convention: the first voxel centre
   stays where it was (same origin), the new spacing is exactly spacing_mm, and the new size per
   axis is floor((n - 1) * s_old / s_new) + 1, so every new centre lies inside the old extent.
   Sample position of new voxel i' in old voxel units: i' * s_new / s_old;
4. normalise (ct_window or ct_zscore);
5. nnU-Net sliding window: per axis n_tiles = ceil((size - patch) / (patch * step)) + 1, starts
   spread evenly (start_i = round(i * (size - patch) / (n - 1))), last tile flush with the border;
   an axis smaller than the patch is padded at its end with the normalised value of -1024 HU
   (pad_value()) and cropped back afterwards; Gaussian importance map with centre c = patch // 2
   and sigma = patch / 8 per axis, normalised to max 1 (for even patch sizes this is exactly
   w = exp(-sum_a (i_a - c_a)^2 / (2 sigma_a^2)); zeros, if any, replaced by the smallest non-zero
   value); weighted logits and weights accumulated, divided at the end;
6. per-class logits resampled back to the LPS CT grid with trilinear interpolation (the inverse of
   step 3: old voxel i at position i * s_old / s_new in model voxels, clamped to the model grid),
   argmax; then undo the reorientation so the label map matches the CT's own voxel order.

Postprocessing (largest component, hole filling) is optional here (--postprocess) and follows the
manifest's per-label fields.

Usage:
    python infer_reference.py --model models/thorax-basic --ct target/testdata/rider/ct \
        --out target/tmp/rider_labels.npy [--threads 2] [--postprocess]
The output .npy is uint8 [slice, row, column] in the CT's sorted voxel order (the same order as
the Rust Volume: index = (k * rows + j) * cols + i).
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import json
import math
import os
import sys
import time

import numpy as np
from scipy import ndimage


# ----------------------------------------------------------------------------- loading

def load_ct(ct_dir: str):
    """Return (hu [k, j, i] float32, geometry dict) for the largest CT series in ct_dir."""
    import pydicom

    files = sorted(glob.glob(os.path.join(ct_dir, "**", "*"), recursive=True))
    series: dict[str, list] = {}
    for f in files:
        if not os.path.isfile(f):
            continue
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=False, force=True)
        except Exception:
            continue
        if "ImagePositionPatient" not in ds or "PixelData" not in ds:
            continue
        series.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append(ds)
    if not series:
        raise SystemExit(f"no CT images in {ct_dir}")
    slices = max(series.values(), key=len)
    iop = np.array([float(v) for v in slices[0].ImageOrientationPatient])
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    normal /= np.linalg.norm(normal)
    slices.sort(key=lambda d: float(np.dot(normal, [float(v) for v in d.ImagePositionPatient])))
    pos = np.array([[float(v) for v in d.ImagePositionPatient] for d in slices])
    proj = pos @ normal
    gaps = np.diff(proj)
    dz = float(np.median(gaps)) if len(gaps) else float(slices[0].get("SliceThickness", 1.0))
    ps = [float(v) for v in slices[0].PixelSpacing]
    hu = np.stack([
        d.pixel_array.astype(np.float32) * float(d.get("RescaleSlope", 1.0))
        + float(d.get("RescaleIntercept", 0.0))
        for d in slices
    ]).astype(np.float32)
    direction = np.stack([row / np.linalg.norm(row), col / np.linalg.norm(col), normal], axis=1)
    geom = {
        "origin": pos[0],
        "spacing": np.array([ps[1], ps[0], dz]),  # (col i, row j, slice k)
        "direction": direction,  # columns: i, j, k axis directions in LPS
    }
    return hu, geom


# ----------------------------------------------------------------------------- orientation

def lps_plan(direction: np.ndarray):
    """For voxel axes (i, j, k) find the LPS axis each runs along and its sign.

    Returns (perm, flip): the array [k, j, i] is transposed to [z, y, x] by `perm` (axes of the
    [k, j, i] array in the order z, y, x) and then flipped along the axes where flip is True.
    """
    # axis_of[v] = patient axis (0=x, 1=y, 2=z) of voxel axis v (0=i, 1=j, 2=k)
    absd = np.abs(direction)
    axis_of = [int(np.argmax(absd[:, v])) for v in range(3)]
    if sorted(axis_of) != [0, 1, 2]:
        raise SystemExit("oblique orientation: no unique nearest patient axis per voxel axis")
    sign_of = [float(np.sign(direction[axis_of[v], v])) for v in range(3)]
    # array axis index of voxel axis v in [k, j, i] is 2 - v
    perm = []
    flip = []
    for pat_axis in (2, 1, 0):  # z, y, x
        v = axis_of.index(pat_axis)
        perm.append(2 - v)
        flip.append(sign_of[v] < 0)
    return perm, flip


def to_lps(arr: np.ndarray, geom):
    perm, flip = lps_plan(geom["direction"])
    out = np.transpose(arr, perm)
    for ax, f in enumerate(flip):
        if f:
            out = np.flip(out, ax)
    sp = geom["spacing"]  # (i, j, k)
    sp_kji = [sp[2], sp[1], sp[0]]
    spacing_zyx = np.array([sp_kji[p] for p in perm])
    return np.ascontiguousarray(out), spacing_zyx


def from_lps(arr: np.ndarray, geom):
    perm, flip = lps_plan(geom["direction"])
    out = arr
    for ax, f in enumerate(flip):
        if f:
            out = np.flip(out, ax)
    inv = np.argsort(perm)
    return np.ascontiguousarray(np.transpose(out, inv))


# ----------------------------------------------------------------------------- resampling

def resampled_shape(shape, spacing_old, spacing_new):
    return tuple(int(math.floor((n - 1) * so / sn + 1e-6)) + 1
                 for n, so, sn in zip(shape, spacing_old, spacing_new))


def _linear_weights(n_out, scale, n_in):
    """Positions pos = i * scale clamped to [0, n_in - 1]; return (i0, i1, w1)."""
    pos = np.clip(np.arange(n_out, dtype=np.float64) * scale, 0.0, n_in - 1)
    i0 = np.floor(pos).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w1 = (pos - i0).astype(np.float32)
    return i0, i1, w1


def resample_linear(arr: np.ndarray, out_shape, scale):
    """Separable trilinear resampling of the last three axes.

    `scale[a]` = input voxels per output voxel along axis a (s_new / s_old going to the model grid,
    s_old / s_new coming back). Output voxel i samples input position i * scale[a], clamped.
    """
    out = arr.astype(np.float32, copy=False)
    nd = out.ndim
    for a in range(3):
        ax = nd - 3 + a
        n_in = out.shape[ax]
        i0, i1, w1 = _linear_weights(out_shape[a], scale[a], n_in)
        shp = [1] * nd
        shp[ax] = -1
        w1 = w1.reshape(shp)
        out = np.take(out, i0, axis=ax) * (1.0 - w1) + np.take(out, i1, axis=ax) * w1
    return out.astype(np.float32, copy=False)


# ----------------------------------------------------------------------------- normalisation

def normalise(hu: np.ndarray, norm: dict) -> np.ndarray:
    if norm["kind"] == "ct_window":
        lo = norm["level"] - norm["width"] / 2.0
        hi = norm["level"] + norm["width"] / 2.0
        r0, r1 = norm.get("range", [-1.0, 1.0])
        x = (np.clip(hu, lo, hi) - lo) / (hi - lo)
        return (x * (r1 - r0) + r0).astype(np.float32)
    if norm["kind"] == "ct_zscore":
        lo, hi = norm["clip"]
        return ((np.clip(hu, lo, hi) - norm["mean"]) / norm["std"]).astype(np.float32)
    raise SystemExit(f"unknown normalization {norm['kind']}")


def pad_value(norm: dict) -> float:
    """Normalised value used to pad images smaller than the patch: air (-1024 HU)."""
    return float(normalise(np.array([-1024.0], np.float32), norm)[0])


# ----------------------------------------------------------------------------- tiling

def tile_starts(size: int, patch: int, step: float):
    if size <= patch:
        return [0]
    n = int(math.ceil((size - patch) / (patch * step))) + 1
    last = size - patch
    # round half away from zero (as Rust's f64::round), not Python's round-half-to-even
    return [int(math.floor(i * last / (n - 1) + 0.5)) for i in range(n)]


def gaussian_importance(patch, sigma_scale=1.0 / 8):
    tmp = np.zeros(patch, np.float64)
    tmp[tuple(p // 2 for p in patch)] = 1.0
    g = ndimage.gaussian_filter(tmp, [p * sigma_scale for p in patch], mode="constant", cval=0)
    g = g / g.max()
    g = g.astype(np.float32)
    g[g == 0] = g[g > 0].min()
    return g


def sliding_window(session, image: np.ndarray, manifest: dict, n_classes: int) -> np.ndarray:
    patch = list(manifest["patch_size"])
    step = float(manifest["tile_step"])
    inp = manifest["onnx"]["input"]
    outn = manifest["onnx"]["output"]
    dtype = np.float16 if manifest["onnx"].get("dtype") == "float16" else np.float32
    # pad at the end of each axis to at least the patch size
    shape = image.shape
    pshape = [max(s, p) for s, p in zip(shape, patch)]
    if list(pshape) != list(shape):
        padded = np.full(pshape, pad_value(manifest["normalization"]), np.float32)
        padded[: shape[0], : shape[1], : shape[2]] = image
        image = padded
    if manifest.get("blending", "gaussian") == "gaussian":
        weight = gaussian_importance(patch)
    else:
        raise SystemExit("only gaussian blending is implemented in the reference")
    acc = np.zeros((n_classes, *pshape), np.float32)
    wsum = np.zeros(pshape, np.float32)
    mirror = manifest.get("mirror_axes", []) or []
    for z0 in tile_starts(pshape[0], patch[0], step):
        for y0 in tile_starts(pshape[1], patch[1], step):
            for x0 in tile_starts(pshape[2], patch[2], step):
                sl = (slice(z0, z0 + patch[0]), slice(y0, y0 + patch[1]), slice(x0, x0 + patch[2]))
                tile = image[sl][None, None].astype(dtype)
                out = session.run([outn], {inp: tile})[0].astype(np.float32)[0]
                n_tta = 1
                for ax in mirror:
                    flipped = np.flip(tile, axis=2 + ax).copy()
                    o = session.run([outn], {inp: flipped})[0].astype(np.float32)[0]
                    out += np.flip(o, axis=1 + ax)
                    n_tta += 1
                out /= n_tta
                acc[(slice(None),) + sl] += out * weight
                wsum[sl] += weight
    acc /= wsum
    return acc[:, : shape[0], : shape[1], : shape[2]]


# ----------------------------------------------------------------------------- postprocessing

def postprocess(labels: np.ndarray, manifest: dict) -> np.ndarray:
    out = labels.copy()
    for lab in manifest["labels"]:
        idx = lab["index"]
        if idx == 0:
            continue
        m = out == idx
        if not m.any():
            continue
        conn = lab.get("connectivity", 6)
        struct = ndimage.generate_binary_structure(3, 1 if conn == 6 else 3)
        if lab.get("largest_component", False):
            cc, n = ndimage.label(m, struct)
            if n > 1:
                sizes = np.bincount(cc.ravel())[1:]
                keep = np.zeros(n + 1, bool)
                keep[1 + int(np.argmax(sizes))] = True
                frac = lab.get("min_component_fraction")
                if frac is not None:
                    keep[1:] |= sizes >= frac * sizes.max()
                removed = m & ~keep[cc]
                out[removed] = 0
                m = m & keep[cc]
        fh = lab.get("fill_holes", "none")
        if fh == "2d":
            filled = np.stack([ndimage.binary_fill_holes(s) for s in m])
        elif fh == "3d":
            filled = ndimage.binary_fill_holes(m)
        else:
            filled = m
        # holes are filled only where no other structure lies (mutual exclusivity kept)
        out[filled & (out == 0)] = idx
    return out


# ----------------------------------------------------------------------------- driver

def load_manifest(model_dir: str) -> dict:
    with open(os.path.join(model_dir, "model.json")) as f:
        return json.load(f)


def make_session(model_dir: str, manifest: dict, threads: int = 2):
    import onnxruntime as ort

    path = os.path.join(model_dir, manifest["onnx"]["file"])
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    if digest != manifest["onnx"]["sha256"]:
        raise SystemExit(f"sha256 mismatch for {path}: {digest} != manifest")
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def predict_lps(session, hu_lps: np.ndarray, spacing_zyx, manifest: dict, return_logits=False):
    """HU array in LPS [z, y, x] with spacing (z, y, x) -> label map on the same grid."""
    n_classes = len(manifest["labels"])
    sp_model = manifest["spacing_mm"]
    if sp_model == "native":
        target = np.asarray(spacing_zyx, float)
    else:
        target = np.array([sp_model[2], sp_model[1], sp_model[0]], float)  # [x,y,z] -> z,y,x
    spacing_zyx = np.asarray(spacing_zyx, float)
    mshape = resampled_shape(hu_lps.shape, spacing_zyx, target)
    img = resample_linear(hu_lps, mshape, target / spacing_zyx)
    img = normalise(img, manifest["normalization"])
    logits = sliding_window(session, img, manifest, n_classes)
    if return_logits:
        return logits
    # back to the CT grid, class by class (memory bounded), running argmax
    best = np.full(hu_lps.shape, -np.inf, np.float32)
    labels = np.zeros(hu_lps.shape, np.uint8)
    for c in range(n_classes):
        up = resample_linear(logits[c], hu_lps.shape, spacing_zyx / target)
        better = up > best
        labels[better] = c
        best = np.where(better, up, best)
    return labels


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="model package folder (model.json + model.onnx)")
    ap.add_argument("--ct", required=True, help="CT series folder")
    ap.add_argument("--out", required=True, help="output .npy (uint8 [k, j, i])")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--postprocess", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.time()
    manifest = load_manifest(args.model)
    session = make_session(args.model, manifest, args.threads)
    hu, geom = load_ct(args.ct)
    t1 = time.time()
    hu_lps, sp = to_lps(hu, geom)
    labels = predict_lps(session, hu_lps, sp, manifest)
    if args.postprocess:
        labels = postprocess(labels, manifest)
    t2 = time.time()
    out = from_lps(labels, geom)
    np.save(args.out, out)
    vox_ml = float(np.prod(geom["spacing"])) / 1000.0
    print(f"load {t1 - t0:.1f} s, inference {t2 - t1:.1f} s, shape {out.shape}")
    for lab in manifest["labels"][1:]:
        print(f"  {lab['name']:<12} {np.count_nonzero(out == lab['index']) * vox_ml:9.1f} ml")


if __name__ == "__main__":
    sys.exit(main())
