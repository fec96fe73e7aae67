#!/usr/bin/env python3
"""Data preparation: rule-based reference labels for the RIDER CT, the held-out split, and
synthetic phantoms. Writes target/train-data/ (git-ignored).

Labels (uint8): 0 Background, 1 External, 2 Lung_L, 3 Lung_R, 4 Trachea. The rules are written
down in models/training/README.md ("Labelling rules"); this file is their only implementation.

    python models/training/prepare.py [--ct target/testdata/rider/ct] [--out target/train-data]
        [--phantoms 48] [--png]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
from scipy import ndimage

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import infer_reference as ref  # noqa: E402

LABELS = ["Background", "External", "Lung_L", "Lung_R", "Trachea"]
MODEL_SPACING = (4.0, 4.0, 4.0)  # z, y, x (mm)
HOLDOUT_FRACTION = 0.30  # caudal fraction of the RIDER slices held out for evaluation
MARGIN_MM = 15.0  # gap between the held-out slab and any training voxel


def disk(radius_px: float) -> np.ndarray:
    r = int(np.ceil(radius_px))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return (yy * yy + xx * xx) <= radius_px * radius_px


def per_slice(fn, m):
    return np.stack([fn(s) for s in m])


def largest_components(mask, n=1, structure=None):
    cc, k = ndimage.label(mask, structure)
    if k == 0:
        return [np.zeros_like(mask)] * n, []
    sizes = np.bincount(cc.ravel())[1:]
    order = np.argsort(sizes)[::-1]
    comps = [cc == (1 + i) for i in order[:n]]
    return comps, sizes[order]


def closing_padded(m, structure, iterations):
    """Binary closing that does not erode at the array border (edge-replicated padding)."""
    p = iterations + 1
    mp = np.pad(m, p, mode="edge")
    return ndimage.binary_closing(mp, structure, iterations=iterations)[p:-p, p:-p, p:-p]


def label_ct(hu: np.ndarray, spacing_zyx) -> np.ndarray:
    """Rule labels on an LPS [z, y, x] HU array. See README "Labelling rules"."""
    sz, sy, sx = spacing_zyx
    px = 0.5 * (sy + sx)
    # ---- External
    body = hu > -500.0
    body = per_slice(lambda s: ndimage.binary_opening(s, disk(3.0 / px)), body)  # 3 mm: wires, thin couch
    (body,), _ = largest_components(body, 1)
    body = per_slice(ndimage.binary_fill_holes, body)
    # ---- air inside the body
    air = (hu < -400.0) & body
    air = per_slice(lambda s: ndimage.binary_opening(s, disk(1.0 / px)), air)
    # ---- airway: trachea tracked slice by slice from the top (cranial) slice downwards
    max_area = 600.0 / (sy * sx)  # mm^2 -> px: a bronchus cross-section is smaller than this
    airway = np.zeros_like(air)
    body_cx = []
    for z in range(hu.shape[0]):
        ys, xs = np.nonzero(body[z])
        body_cx.append((xs.mean(), ys.mean()) if len(xs) else (hu.shape[2] / 2, hu.shape[1] / 2))
    top = hu.shape[0] - 1
    cc, k = ndimage.label(air[top])
    prev = np.zeros_like(air[top])
    if k:
        best, best_d = None, 1e9
        cx, cy = body_cx[top]
        for i in range(1, k + 1):
            c = cc == i
            area = c.sum()
            if area < 20.0 / (sy * sx) or area > max_area:
                continue
            ys, xs = np.nonzero(c)
            d = abs(xs.mean() - cx) * sx  # closest to the mid-line
            if d < best_d and d < 30.0:
                best, best_d = c, d
        if best is not None:
            prev = best
            airway[top] = best
    for z in range(top - 1, -1, -1):
        if not prev.any():
            break
        cc, k = ndimage.label(air[z])
        grow = ndimage.binary_dilation(prev, disk(2.0 / px))
        cur = np.zeros_like(prev)
        for i in np.unique(cc[grow & (cc > 0)]):
            c = cc == i
            if c.sum() <= max_area:
                cur |= c
        airway[z] = cur
        prev = cur
    # ---- lungs: the two largest 3-D air components once the airway is removed
    lung_air = air & ~ndimage.binary_dilation(airway, ndimage.generate_binary_structure(3, 1), iterations=2)
    comps, sizes = largest_components(lung_air, 3)
    vox_ml = sz * sy * sx / 1000.0
    lungs = [c for c, s in zip(comps, sizes) if s * vox_ml > 100.0]
    midx = np.median([c[0] for c in body_cx])
    if len(lungs) == 1:  # lungs touch: split at the body mid-line
        both = lungs[0]
        xs = np.arange(hu.shape[2])[None, None, :]
        lungs = [both & (xs >= midx), both & (xs < midx)]
    lungs = lungs[:2]
    cent = [np.nonzero(c)[2].mean() for c in lungs]
    left, right = (lungs[0], lungs[1]) if cent[0] > cent[1] else (lungs[1], lungs[0])  # +x = left
    ball = ndimage.generate_binary_structure(3, 1)
    out = np.zeros(hu.shape, np.uint8)
    out[body] = 1
    for idx, m in ((2, left), (3, right)):
        m = closing_padded(m, ball, 2)
        m = per_slice(ndimage.binary_fill_holes, m)  # vessels inside the lung belong to it
        (m,), _ = largest_components(m, 1)
        out[m & body & (out == 1)] = idx
    tr = airway & body & (out == 1)
    if tr.any():
        (tr,), _ = largest_components(closing_padded(tr, ball, 1), 1)
        out[tr & (out == 1)] = 4
    return out


# ----------------------------------------------------------------------------- model grid

def to_model_grid(hu, lab, spacing_zyx, target=MODEL_SPACING):
    mshape = ref.resampled_shape(hu.shape, spacing_zyx, target)
    scale = np.asarray(target) / np.asarray(spacing_zyx)
    img = ref.resample_linear(hu, mshape, scale)
    onehot = np.stack([ref.resample_linear((lab == c).astype(np.float32), mshape, scale)
                       for c in range(len(LABELS))])
    return img, onehot.argmax(0).astype(np.uint8)


# ----------------------------------------------------------------------------- phantoms

def phantom(rng: np.random.Generator, shape=(64, 96, 96), sp=4.0):
    """A synthetic thorax on the model grid (LPS, [z, y, x], 4 mm): HU image + labels."""
    nz, ny, nx = shape
    z, y, x = np.meshgrid(np.arange(nz) * sp, np.arange(ny) * sp, np.arange(nx) * sp, indexing="ij")
    cz, cy, cx = nz * sp * rng.uniform(0.4, 0.6), ny * sp * rng.uniform(0.45, 0.55), nx * sp * rng.uniform(0.45, 0.55)
    img = np.full(shape, -1000.0, np.float32)
    lab = np.zeros(shape, np.uint8)
    # body: elliptic cylinder whose radii change slowly along z
    ax_ = rng.uniform(120, 175) * (1 + 0.08 * np.sin((z - cz) / rng.uniform(60, 150)))
    ay_ = rng.uniform(80, 120) * (1 + 0.05 * np.cos((z - cz) / rng.uniform(60, 150)))
    r_body = ((x - cx) / ax_) ** 2 + ((y - cy) / ay_) ** 2
    body = r_body <= 1.0
    img[body] = rng.uniform(-110, -70)  # fat
    muscle = r_body <= (1 - rng.uniform(0.08, 0.2)) ** 2
    img[muscle] = rng.uniform(30, 55)
    lab[body] = 1
    # lungs: two ellipsoids with lumpy surfaces, left lung at +x
    zt = cz + rng.uniform(40, 90)  # lung apex
    zb = cz - rng.uniform(50, 110)  # lung base
    lz = 0.5 * (zt - zb)
    lzc = 0.5 * (zt + zb)
    lungs = []
    for side in (+1, -1):
        lcx = cx + side * ax_ * rng.uniform(0.38, 0.5)
        lcy = cy + rng.uniform(-10, 15)
        rx = ax_ * rng.uniform(0.28, 0.38)
        ry = ay_ * rng.uniform(0.55, 0.75)
        noise = ndimage.gaussian_filter(rng.normal(size=shape), 4) * 6
        r = ((x - lcx) / rx) ** 2 + ((y - lcy) / ry) ** 2 + ((z - lzc) / lz) ** 2 + noise * 0.1
        m = (r <= 1.0) & muscle
        lungs.append(m)
    heart_c = (cx + rng.uniform(5, 35), cy - rng.uniform(0, 25), zb + rng.uniform(20, 45))
    heart = ((x - heart_c[0]) / rng.uniform(45, 65)) ** 2 + ((y - heart_c[1]) / rng.uniform(40, 55)) ** 2 \
        + ((z - heart_c[2]) / rng.uniform(40, 60)) ** 2 <= 1
    for i, m in enumerate(lungs):
        m &= ~heart
        img[m] = rng.uniform(-880, -780)
        lab[m] = 2 if i == 0 else 3
    # vessels inside lungs (part of the lung label)
    ves = (ndimage.gaussian_filter(rng.normal(size=shape), 1.2) > 0.22) & (lungs[0] | lungs[1])
    img[ves] = rng.uniform(-100, 60)
    img[heart & muscle] = rng.uniform(30, 60)
    # trachea: mid-line tube from the top down to the carina, then two bronchi
    tr_c = (cx + rng.uniform(-8, 8), cy - ay_ * rng.uniform(0.1, 0.3))
    carina = lzc + rng.uniform(0, 0.4) * lz
    rt = rng.uniform(7, 10)
    tube = (((x - tr_c[0]) ** 2 + (y - tr_c[1]) ** 2) <= rt ** 2) & (z >= carina)
    t = np.clip((carina - z) / 40.0, 0, 1)
    for side in (+1, -1):
        bx = tr_c[0] + side * t * 40
        tube |= (((x - bx) ** 2 + (y - tr_c[1]) ** 2) <= (rt * 0.75) ** 2) & (z < carina) & (z > carina - 40)
    tube &= muscle
    wall = ndimage.binary_dilation(tube, iterations=1) & ~tube
    img[wall & (lab != 2) & (lab != 3)] = rng.uniform(20, 80)
    img[tube] = rng.uniform(-1000, -950)
    lab[tube & (lab == 1)] = 4
    lab[tube & (lab >= 2) & (lab <= 3)] = lab[tube & (lab >= 2) & (lab <= 3)]  # bronchi inside lung stay lung
    # vertebra + ribs
    vb = (((x - cx) / 18) ** 2 + ((y - (cy + ay_ * 0.6)) / 16) ** 2) <= 1
    img[vb & body] = rng.uniform(250, 500)
    ring = (np.abs(np.sqrt(r_body) - rng.uniform(0.85, 0.92)) < 0.02) & (np.sin(z / rng.uniform(8, 12)) > 0.3)
    img[ring & (lab == 1)] = rng.uniform(400, 900)
    # bowel / stomach gas below the lungs (background-free air that is NOT lung)
    for _ in range(rng.integers(0, 4)):
        g = (cx + rng.uniform(-80, 80), cy + rng.uniform(-50, 30), zb - rng.uniform(10, 60))
        gm = ((x - g[0]) ** 2 + (y - g[1]) ** 2 + ((z - g[2]) * 1.5) ** 2) <= rng.uniform(8, 25) ** 2
        gm &= muscle & (lab == 1)
        img[gm] = rng.uniform(-1000, -900)
    # table below the patient (posterior = +y), separated by an air gap
    ty = cy + ay_.max() + rng.uniform(6, 25)
    table = (y >= ty) & (y <= ty + rng.uniform(5, 15)) & (np.abs(x - cx) < rng.uniform(150, 230))
    img[table & ~body] = rng.uniform(-300, 200)
    # field-of-view circle (scanner reconstruction circle) in some phantoms
    if rng.random() < 0.5:
        fr = rng.uniform(0.8, 1.2) * max(ax_.max(), 130)
        out_fov = ((x - cx) ** 2 + (y - cy) ** 2) > fr ** 2
        img[out_fov] = -3024
        lab[out_fov] = 0
    img = ndimage.gaussian_filter(img, rng.uniform(0.3, 0.8))
    img += rng.normal(0, rng.uniform(5, 40), shape).astype(np.float32)
    return img.astype(np.float32), lab


# ----------------------------------------------------------------------------- PNG check

def overlay_png(path, hu, lab, zs, spacing_zyx):
    from PIL import Image

    colours = np.array([[0, 0, 0], [0, 200, 0], [255, 80, 80], [80, 140, 255], [255, 220, 0]], np.uint8)

    def win(a):
        return (np.clip((a + 1100) / 1600, 0, 1) * 255).astype(np.uint8)

    def edge(m):
        return m & ~ndimage.binary_erosion(m)

    def render(img2d, lab2d):
        rgb = np.repeat(win(img2d)[..., None], 3, axis=2)
        for c in range(1, len(LABELS)):
            e = edge(lab2d == c)
            rgb[e] = colours[c]
        return rgb

    tiles = [render(hu[z], lab[z]) for z in zs]
    h = max(t.shape[0] for t in tiles)
    row = np.concatenate([np.pad(t, ((0, h - t.shape[0]), (0, 0), (0, 0))) for t in tiles], 1)
    cy = hu.shape[1] // 2
    cor = render(hu[::-1, cy, :], lab[::-1, cy, :])
    cx = int(np.nonzero(lab == 4)[2].mean()) if (lab == 4).any() else hu.shape[2] // 2
    sag = render(hu[::-1, :, cx], lab[::-1, :, cx])
    fz = spacing_zyx[0] / spacing_zyx[1]
    cor = np.array(Image.fromarray(cor).resize((cor.shape[1], int(cor.shape[0] * fz))))
    fz2 = spacing_zyx[0] / spacing_zyx[2]
    sag = np.array(Image.fromarray(sag).resize((sag.shape[1], int(sag.shape[0] * fz2))))
    h2 = max(cor.shape[0], sag.shape[0])
    row2 = np.concatenate([np.pad(a, ((0, h2 - a.shape[0]), (0, 0), (0, 0))) for a in (cor, sag)], 1)
    w = max(row.shape[1], row2.shape[1])
    pad = lambda a: np.pad(a, ((0, 0), (0, w - a.shape[1]), (0, 0)))  # noqa: E731
    Image.fromarray(np.concatenate([pad(row), pad(row2)], 0)).save(path)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--ct", default="target/testdata/rider/ct")
    ap.add_argument("--out", default="target/train-data")
    ap.add_argument("--phantoms", type=int, default=48)
    ap.add_argument("--seed", type=int, default=20261127)
    ap.add_argument("--png", action="store_true", help="write overlay PNGs for a visual check")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()
    hu, geom = ref.load_ct(args.ct)
    hu_lps, sp = ref.to_lps(hu, geom)
    lab = label_ct(hu_lps, sp)
    t1 = time.time()
    vox_ml = float(np.prod(sp)) / 1000
    vols = {LABELS[c]: round(float(np.count_nonzero(lab == c) * vox_ml), 1) for c in range(1, len(LABELS))}
    print(f"RIDER labelled in {t1 - t0:.0f} s: {vols}")
    nz = hu_lps.shape[0]
    n_hold = int(round(HOLDOUT_FRACTION * nz))  # caudal slices (z ascending: first ones)
    margin = int(np.ceil(MARGIN_MM / sp[0]))
    split = {"holdout_slices": [0, n_hold], "train_slices": [n_hold + margin, nz],
             "z_mm_holdout": [float(geom["origin"][2]), float(geom["origin"][2] + (n_hold - 1) * sp[0])],
             "spacing_zyx": [float(s) for s in sp], "volumes_ml": vols}
    np.save(os.path.join(args.out, "rider_hu_lps.npy"), hu_lps.astype(np.int16))
    np.save(os.path.join(args.out, "rider_labels_lps.npy"), lab)
    with open(os.path.join(args.out, "rider_split.json"), "w") as f:
        json.dump(split, f, indent=1)
    if args.png:
        zs = [n_hold // 2, n_hold + margin + 10, int(nz * 0.55), int(nz * 0.7), nz - 5]
        overlay_png(os.path.join(args.out, "rider_labels.png"), hu_lps, lab, zs, sp)
    rng = np.random.default_rng(args.seed)
    ph_img, ph_lab = [], []
    for i in range(args.phantoms):
        im, lb = phantom(rng)
        ph_img.append(im.astype(np.int16) if False else np.clip(im, -3024, 3071).astype(np.int16))
        ph_lab.append(lb)
        if args.png and i < 3:
            overlay_png(os.path.join(args.out, f"phantom{i}.png"), im, lb, [15, 30, 40, 50], (4.0, 4.0, 4.0))
    np.save(os.path.join(args.out, "phantom_hu.npy"), np.stack(ph_img))
    np.save(os.path.join(args.out, "phantom_labels.npy"), np.stack(ph_lab))
    print(f"{args.phantoms} phantoms in {time.time() - t1:.0f} s -> {args.out}")


if __name__ == "__main__":
    main()
