#!/usr/bin/env python3
"""Held-out evaluation of a model package with the reference inference (infer_reference.py).

    python models/training/evaluate.py [--model models/thorax-basic] [--ct target/testdata/rider/ct]
        [--data target/train-data] [--phantoms 8] [--threads 2] [--out models/training/eval_report]

1. Real CT: the whole RIDER CT goes through infer_reference (DICOM -> LPS -> 4 mm -> tiles ->
   back to the 0.576 x 0.576 x 1.25 mm grid -> argmax -> postprocessing from the manifest); the
   scores are computed on the held-out caudal slab only (rider_split.json: never seen in training,
   15 mm away from any training crop) against the rule labels from prepare.py.
2. Synthetic: new phantoms from a seed not used in training, scored on the 4 mm grid.

Metrics per structure: Dice; HD95 in mm = max of the two directed 95th percentiles of the
distances from the surface voxels of one mask to the surface of the other (voxel-based surfaces,
exact Euclidean distance transform with the anisotropic spacing; not area-weighted). On the slab,
the faces where the slab is cut are not counted as surface. Writes <out>.json and <out>.md.
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
import prepare  # noqa: E402


def surface(m, cut_z):
    if cut_z:  # the slab faces are not surface: replicate the end slices before eroding
        mp = np.pad(m, ((1, 1), (0, 0), (0, 0)), mode="edge")
        er = ndimage.binary_erosion(mp, ndimage.generate_binary_structure(3, 1), border_value=0)
        er = er[1:-1]
        # the padded slices were copies, so erosion at z ends only reflects x/y neighbours
    else:
        er = ndimage.binary_erosion(m, ndimage.generate_binary_structure(3, 1), border_value=0)
    return m & ~er


def scores(pred, gt, spacing, cut_z=False):
    inter = np.count_nonzero(pred & gt)
    s = np.count_nonzero(pred) + np.count_nonzero(gt)
    dice = 2 * inter / s if s else 1.0
    if not pred.any() or not gt.any():
        return {"dice": dice, "hd95_mm": None, "vol_pred_ml": 0.0, "vol_ref_ml": 0.0}
    # distances only need the bounding box of both masks (+2 voxels): much cheaper EDTs
    zz, yy, xx = np.nonzero(pred | gt)
    box = tuple(slice(max(0, a.min() - 2), b + 3) for a, b in ((zz, zz.max()), (yy, yy.max()), (xx, xx.max())))
    if cut_z:
        box = (slice(0, pred.shape[0]),) + box[1:]
    pred, gt = pred[box], gt[box]
    sp_, sg = surface(pred, cut_z), surface(gt, cut_z)
    dt_g = ndimage.distance_transform_edt(~sg, sampling=spacing)
    dt_p = ndimage.distance_transform_edt(~sp_, sampling=spacing)
    hd95 = max(np.percentile(dt_g[sp_], 95), np.percentile(dt_p[sg], 95))
    v = float(np.prod(spacing)) / 1000
    return {"dice": float(dice), "hd95_mm": float(hd95), "vol_pred_ml": float(np.count_nonzero(pred) * v),
            "vol_ref_ml": float(np.count_nonzero(gt) * v)}


OUTLINE = "Body outline"


def outline(lab):
    """The body outline an RT External contour encloses: every non-background voxel, holes filled
    per slice (the External label itself excludes the lungs and trachea: labels are exclusive)."""
    return np.stack([ndimage.binary_fill_holes(s) for s in lab > 0])


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/thorax-basic")
    ap.add_argument("--ct", default="target/testdata/rider/ct")
    ap.add_argument("--data", default="target/train-data")
    ap.add_argument("--phantoms", type=int, default=8)
    ap.add_argument("--phantom-seed", type=int, default=777)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="models/training/eval_report")
    ap.add_argument("--png", default="target/train-data/eval_rider.png")
    args = ap.parse_args(argv)
    manifest = ref.load_manifest(args.model)
    names = [lab["name"] for lab in manifest["labels"]]
    session = ref.make_session(args.model, manifest, args.threads)
    report = {"model": manifest["name"], "version": manifest["version"], "sha256": manifest["onnx"]["sha256"]}

    # ---- real CT, held-out slab
    t0 = time.time()
    hu, geom = ref.load_ct(args.ct)
    t1 = time.time()
    hu_lps, sp = ref.to_lps(hu, geom)
    raw = ref.predict_lps(session, hu_lps, sp, manifest)
    t2 = time.time()
    post = ref.postprocess(raw, manifest)
    t3 = time.time()
    split = json.load(open(os.path.join(args.data, "rider_split.json")))
    gt = np.load(os.path.join(args.data, "rider_labels_lps.npy"))
    k0, k1 = split["holdout_slices"]
    real = {}
    for kind, lab in (("postprocessed", post), ("raw", raw)):
        real[kind] = {names[c]: scores(lab[k0:k1] == c, gt[k0:k1] == c, sp, cut_z=True)
                      for c in range(1, len(names))}
        real[kind][OUTLINE] = scores(outline(lab[k0:k1]), gt[k0:k1] > 0, sp, cut_z=True)
    report["rider_holdout"] = {
        "slices": [k0, k1], "z_mm": split["z_mm_holdout"], "scores": real,
        "timing_s": {"load_dicom": round(t1 - t0, 2), "inference_threads": args.threads,
                     "inference": round(t2 - t1, 2), "postprocess": round(t3 - t2, 2)},
    }
    # whole-volume agreement (includes the training slab; for information only)
    report["rider_whole_volume_not_held_out"] = {
        names[c]: round(2 * np.count_nonzero((post == c) & (gt == c))
                        / max(1, np.count_nonzero(post == c) + np.count_nonzero(gt == c)), 4)
        for c in range(1, len(names))}
    if args.png:
        nz = hu_lps.shape[0]
        prepare.overlay_png(args.png, hu_lps, post, [k1 // 4, k1 // 2, 3 * k1 // 4, int(nz * 0.6), nz - 5], sp)

    # ---- synthetic phantoms (unseen seed)
    rng = np.random.default_rng(args.phantom_seed)
    ph = {n: [] for n in names[1:] + [OUTLINE]}
    for _ in range(args.phantoms):
        img, lab = prepare.phantom(rng)
        pr = ref.postprocess(ref.predict_lps(session, img, np.array([4.0, 4.0, 4.0]), manifest), manifest)
        for c in range(1, len(names)):
            ph[names[c]].append(scores(pr == c, lab == c, np.array([4.0, 4.0, 4.0])))
        ph[OUTLINE].append(scores(outline(pr), lab > 0, np.array([4.0, 4.0, 4.0])))
    report["phantoms"] = {
        "n": args.phantoms, "seed": args.phantom_seed,
        "scores": {n: {"dice_mean": float(np.mean([s["dice"] for s in v])),
                       "dice_min": float(np.min([s["dice"] for s in v])),
                       "hd95_mm_mean": float(np.mean([s["hd95_mm"] for s in v if s["hd95_mm"] is not None]))
                       if any(s["hd95_mm"] is not None for s in v) else None}
                   for n, v in ph.items()},
    }
    with open(args.out + ".json", "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    lines = [
        f"# Held-out evaluation: {manifest['name']} {manifest['version']}",
        "",
        f"Model sha256 `{manifest['onnx']['sha256']}`.",
        "",
        f"Command: `python models/training/evaluate.py --model {args.model} "
        f"--threads {args.threads}` (reference inference, ONNX Runtime CPU).",
        "",
        f"## RIDER Lung CT, held-out caudal slab (slices {k0}-{k1 - 1} of 236, z {split['z_mm_holdout'][0]:.1f} "
        f"to {split['z_mm_holdout'][1]:.1f} mm), one patient",
        "",
        "| Structure | Dice (postprocessed) | HD95 mm | Dice (raw argmax) | HD95 mm (raw) | volume pred / ref ml |",
        "|---|---|---|---|---|---|",
    ]
    for n in names[1:] + [OUTLINE]:
        a, b = real["postprocessed"][n], real["raw"][n]
        f2 = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
        lines.append(f"| {n} | {a['dice']:.4f} | {f2(a['hd95_mm'])} | {b['dice']:.4f} | {f2(b['hd95_mm'])} | "
                     f"{a['vol_pred_ml']:.1f} / {a['vol_ref_ml']:.1f} |")
    tm = report["rider_holdout"]["timing_s"]
    lines += ["", "External is the label as the model outputs it (labels are mutually exclusive, so it is "
              "the body minus the other structures); Body outline is what an RT External contour "
              "encloses: all non-background voxels with holes filled per slice, against the rule "
              "labels' body mask.", "", f"Timing on this 2-core machine (shared): DICOM load {tm['load_dicom']} s, inference "
              f"({args.threads} threads, whole CT, resampling + {manifest['patch_size']} tiles + back) "
              f"{tm['inference']} s, postprocessing {tm['postprocess']} s.", "",
              "Whole-volume Dice (includes the training slab, not a held-out figure): "
              + ", ".join(f"{k} {v:.4f}" for k, v in report["rider_whole_volume_not_held_out"].items()), "",
              f"## Synthetic phantoms ({args.phantoms}, seed {args.phantom_seed}, not used in training), 4 mm grid", "",
              "| Structure | Dice mean | Dice min | HD95 mm mean |", "|---|---|---|---|"]
    for n, v in report["phantoms"]["scores"].items():
        hd = "n/a" if v["hd95_mm_mean"] is None else f"{v['hd95_mm_mean']:.2f}"
        lines.append(f"| {n} | {v['dice_mean']:.4f} | {v['dice_min']:.4f} | {hd} |")
    with open(args.out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
