#!/usr/bin/env python3
"""Train the thorax-basic 3D U-Net on CPU (or CUDA when present).

Inputs: target/train-data/ from prepare.py. Output: target/train-run/checkpoint.pt (+ log.csv).

    python models/training/train.py [--minutes 35] [--threads 2] [--seed 1]

Training data per step (batch 2): random [32, 64, 64] crops at 4 mm from
- the RIDER CT's training slab (cranial 70 % minus a 15 mm margin; never the held-out slab),
  resampled to 4 mm through a random affine (scale 0.85-1.15 per axis, rotation about z of
  +-10 degrees, shift), precomputed as --variants volumes and refreshed during training;
- the synthetic phantoms (probability --phantom-p);
then mirrored along x with the Lung_L/Lung_R labels swapped (p = 0.5; the lung at +x is always
Lung_L), HU scaled by 0.93-1.07 and shifted by +-40 HU, Gaussian noise sigma 0-30 HU.
Loss: cross-entropy + soft Dice (foreground classes). Adam, lr 3e-3 with a poly(0.9) decay over
the time budget.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import infer_reference as ref  # noqa: E402
from unet import UNet3D  # noqa: E402

N_CLASSES = 5
SPACING = np.array([4.0, 4.0, 4.0])  # z, y, x
PATCH = (32, 64, 64)
WIDTHS = (8, 16, 32, 64)
NORM = {"kind": "ct_window", "level": -300.0, "width": 1600.0, "range": [-1.0, 1.0]}


def affine_variant(hu, lab, sp_native, rng):
    """Resample the native LPS slab onto a 4 mm grid through a random scale/rotation."""
    scale = rng.uniform(0.85, 1.15, 3)
    ang = np.deg2rad(rng.uniform(-10, 10))
    # output voxel (z, y, x) at 4 mm -> physical (mm) -> inverse affine -> native index
    ext = (np.array(hu.shape) - 1) * sp_native
    out_shape = tuple(int(e / s) + 1 for e, s in zip(ext * scale, SPACING))
    c_out = (np.array(out_shape) - 1) * SPACING / 2
    c_in = ext / 2 + rng.uniform(-10, 10, 3) * np.array([0, 1, 1])
    rot = np.array([[1, 0, 0], [0, math.cos(ang), -math.sin(ang)], [0, math.sin(ang), math.cos(ang)]])
    # p_in = c_in + R @ diag(1/scale) @ (p_out - c_out); index = p / sp
    mat = np.diag(1 / sp_native) @ rot @ np.diag(1 / scale) @ np.diag(SPACING)
    off = (c_in - rot @ np.diag(1 / scale) @ c_out) / sp_native
    img = ndimage.affine_transform(hu, mat, off, output_shape=out_shape, order=1, mode="constant", cval=-1024.0)
    prob = np.stack([ndimage.affine_transform((lab == c).astype(np.float32), mat, off, output_shape=out_shape,
                                              order=1, mode="constant", cval=float(c == 0))
                     for c in range(N_CLASSES)])
    return img.astype(np.float32), prob.argmax(0).astype(np.uint8)


def random_crop(img, lab, rng, fg_bias=0.5):
    shp = np.array(img.shape)
    pad = [(0, max(0, p - s)) for s, p in zip(shp, PATCH)]
    if any(p[1] for p in pad):
        img = np.pad(img, pad, constant_values=-1024)
        lab = np.pad(lab, pad, constant_values=0)
        shp = np.array(img.shape)
    if rng.random() < fg_bias:  # centre on a random lung/trachea voxel
        idx = np.flatnonzero(lab >= 2)
        if len(idx):
            c = np.array(np.unravel_index(rng.choice(idx), lab.shape))
            start = np.clip(c - np.array(PATCH) // 2 + rng.integers(-8, 9, 3), 0, shp - PATCH)
        else:
            start = np.array([rng.integers(0, s - p + 1) for s, p in zip(shp, PATCH)])
    else:
        start = np.array([rng.integers(0, s - p + 1) for s, p in zip(shp, PATCH)])
    sl = tuple(slice(s, s + p) for s, p in zip(start, PATCH))
    return img[sl], lab[sl]


def augment(img, lab, rng):
    if rng.random() < 0.5:  # mirror x, swap left/right labels
        img = img[:, :, ::-1]
        lab = lab[:, :, ::-1].copy()
        l2, l3 = lab == 2, lab == 3
        lab[l2], lab[l3] = 3, 2
    img = img * rng.uniform(0.93, 1.07) + rng.uniform(-40, 40)
    img = img + rng.normal(0, rng.uniform(0, 30), img.shape)
    return ref.normalise(img.astype(np.float32), NORM), np.ascontiguousarray(lab)


def dice_loss(logits, target):
    p = torch.softmax(logits, 1)
    oh = F.one_hot(target, N_CLASSES).permute(0, 4, 1, 2, 3).float()
    dims = (0, 2, 3, 4)
    inter = (p * oh).sum(dims)
    den = p.sum(dims) + oh.sum(dims)
    d = (2 * inter + 1e-5) / (den + 1e-5)
    return 1 - d[1:].mean()


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="target/train-data")
    ap.add_argument("--out", default="target/train-run")
    ap.add_argument("--minutes", type=float, default=35.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--variants", type=int, default=12)
    ap.add_argument("--phantom-p", type=float, default=0.3)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    torch.set_num_threads(args.threads)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    split = json.load(open(os.path.join(args.data, "rider_split.json")))
    k0, k1 = split["train_slices"]
    hu = np.load(os.path.join(args.data, "rider_hu_lps.npy"))[k0:k1].astype(np.float32)
    lab = np.load(os.path.join(args.data, "rider_labels_lps.npy"))[k0:k1]
    sp_native = np.array(split["spacing_zyx"])
    ph_img = np.load(os.path.join(args.data, "phantom_hu.npy")).astype(np.float32)
    ph_lab = np.load(os.path.join(args.data, "phantom_labels.npy"))
    t0 = time.time()
    variants = [affine_variant(hu, lab, sp_native, rng) for _ in range(args.variants)]
    print(f"{len(variants)} RIDER variants in {time.time() - t0:.0f} s, shapes {variants[0][0].shape}", flush=True)

    model = UNet3D(N_CLASSES, WIDTHS).to(dev)
    cl = torch.channels_last_3d if dev.type == "cpu" else torch.contiguous_format
    model = model.to(memory_format=cl)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=1e-5)
    ckpt = os.path.join(args.out, "checkpoint.pt")
    step = 0
    if args.resume and os.path.exists(ckpt):
        st = torch.load(ckpt, map_location=dev)
        model.load_state_dict(st["model"])
        step = st["step"]
    log = open(os.path.join(args.out, "log.csv"), "a")
    budget = args.minutes * 60
    start = time.time()
    last_save = start
    ema = None
    while True:
        el = time.time() - start
        if el > budget:
            break
        lr = args.lr * (1 - el / budget) ** 0.9
        for g in opt.param_groups:
            g["lr"] = lr
        xs, ys = [], []
        for b in range(2):
            if rng.random() < args.phantom_p:
                i = rng.integers(len(ph_img))
                im, lb = random_crop(ph_img[i], ph_lab[i], rng)
            else:
                im, lb = random_crop(*variants[rng.integers(len(variants))], rng)
            im, lb = augment(im, lb, rng)
            xs.append(im)
            ys.append(lb)
        x = torch.from_numpy(np.stack(xs)[:, None]).to(dev).to(memory_format=cl)
        y = torch.from_numpy(np.stack(ys).astype(np.int64)).to(dev)
        model.train()
        opt.zero_grad()
        out = model(x)
        loss = F.cross_entropy(out, y) + dice_loss(out, y)
        loss.backward()
        opt.step()
        step += 1
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        if step % 10 == 0:
            print(f"step {step} t {el:.0f}s loss {ema:.4f} lr {lr:.2e}", flush=True)
            log.write(f"{step},{el:.1f},{ema:.5f},{lr:.3e}\n")
            log.flush()
        if step % 25 == 0 and len(variants) > 2:  # refresh one augmented RIDER variant
            variants[rng.integers(len(variants))] = affine_variant(hu, lab, sp_native, rng)
        if time.time() - last_save > 120:
            torch.save({"model": model.state_dict(), "step": step, "widths": WIDTHS}, ckpt + ".tmp")
            os.replace(ckpt + ".tmp", ckpt)
            last_save = time.time()
    torch.save({"model": model.state_dict(), "step": step, "widths": WIDTHS}, ckpt + ".tmp")
    os.replace(ckpt + ".tmp", ckpt)
    print(f"done: {step} steps in {(time.time() - start) / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
