#!/usr/bin/env python3
"""Unit-test references for the engine's re-implementation of nnU-Net v2's inference steps, made
with nnunetv2 2.8.1's own functions on small arrays (run by tests/nnunet/make_fixture.sh, step
`unit`; seconds, no training, no model needed):

    target/nnunet/venv/bin/python tests/nnunet/make_unit_refs.py --out tests/nnunet/unit

Writes tests/nnunet/unit/index.json (one entry per case: the function, its arguments, and the
.npy files holding inputs and outputs) and the .npy files (little-endian, C order). Arrays are in
nnU-Net's layout: data [C, a0, a1, a2] (the three spatial axes in the order the function gets them).

Cases:
- resample_*: nnunetv2.preprocessing.resampling.default_resampling.resample_data_or_seg_to_shape
  with the plans' kwargs (data: order 3, order_z 0; logits: order 1, order_z 0; force_separate_z
  None, threshold 3): isotropic order 3 (up and down), separate-z along axes 0, 1 and 2, logits
  order 1 in float16 (nnU-Net hands the predictor's fp16 logits to it and gets fp16 back),
  anisotropic logits (order 1 in-plane, order 0 along the low-resolution axis), same shape
  (returned unchanged), and two spacings where two axes share the largest spacing (no separate z).
- ct_normalization / zscore_*: CTNormalization / ZScoreNormalization .run (float32).
- steps: compute_steps_for_sliding_window (note np.round = round half to even: 97/64/0.5 -> 16).
- gaussian_*: compute_gaussian (32x40x48 is the fixture's patch in nnU-Net's transposed order,
  40x48x32 the same patch in [z, y, x]; the two maps are transposes of each other)(patch, sigma_scale=1/8, value_scaling_factor=10, dtype=float16)
  as the predictor calls it (the returned float16 map, zeros already replaced).
- crop_*: crop_to_nonzero (bbox half-open [lo, hi) per axis, the cropped data and the seg with -1
  outside the hole-filled nonzero mask).
- pad_*: acvl_utils pad_nd_image(image, patch, 'constant', {'value': 0}, True) as the predictor
  calls it (content centred, the odd voxel after).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)

from acvl_utils.cropping_and_padding.padding import pad_nd_image  # noqa: E402
from nnunetv2.inference.sliding_window_prediction import compute_gaussian, compute_steps_for_sliding_window  # noqa: E402
from nnunetv2.preprocessing.cropping.cropping import crop_to_nonzero  # noqa: E402
from nnunetv2.preprocessing.normalization.default_normalization_schemes import (  # noqa: E402
    CTNormalization, ZScoreNormalization)
from nnunetv2.preprocessing.resampling.default_resampling import (  # noqa: E402
    compute_new_shape, determine_do_sep_z_and_axis, resample_data_or_seg_to_shape)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/nnunet/unit")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for f in out.glob("*.npy"):
        f.unlink()
    rng = np.random.default_rng(20261127)
    cases = []

    def save(name, arr):
        arr = np.ascontiguousarray(arr)
        np.save(out / f"{name}.npy", arr)
        return {"file": f"{name}.npy", "dtype": str(arr.dtype), "shape": list(arr.shape)}

    # ------------------------------------------------------------------ resampling
    def smooth(shape, c=1, dtype=np.float32, scale=100.0):
        """Smooth random field with sharp steps (so order-3 overshoot and the clip show)."""
        from scipy import ndimage

        a = ndimage.gaussian_filter(rng.normal(size=(c, *shape)), (0, 1.0, 1.0, 1.0)) * scale
        a[:, : shape[0] // 2] += 3 * scale  # a step edge
        return a.astype(dtype)

    data_kw = {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None}
    logit_kw = {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None}
    res_cases = [
        ("resample_data_iso_up", (7, 9, 11), 1, np.float32, (2.0, 2.0, 2.0), (1.5, 1.3, 1.7), data_kw),
        ("resample_data_iso_down", (12, 10, 14), 1, np.float32, (1.0, 1.2, 0.9), (1.6, 1.5, 1.4), data_kw),
        ("resample_data_sepz_axis0", (6, 12, 10), 1, np.float32, (5.0, 1.0, 1.0), (3.0, 1.5, 1.2), data_kw),
        ("resample_data_sepz_axis1", (10, 5, 9), 1, np.float32, (1.5, 6.0, 1.5), (4.0, 3.5, 3.0), data_kw),
        ("resample_data_sepz_axis2", (11, 9, 4), 1, np.float32, (1.2, 1.0, 4.0), (1.0, 1.5, 2.5), data_kw),
        ("resample_data_sepz_target_aniso", (8, 10, 9), 1, np.float32, (1.0, 1.0, 1.0), (4.0, 1.2, 1.1), data_kw),
        ("resample_data_two_lowres_axes", (6, 6, 14), 1, np.float32, (4.0, 4.0, 1.0), (3.0, 3.0, 1.5), data_kw),
        ("resample_data_same_shape", (5, 6, 7), 1, np.float32, (1.0, 1.0, 1.0), (1.0, 1.0, 1.0), data_kw),
        ("resample_logits_iso_fp16", (9, 8, 10), 3, np.float16, (4.0, 3.5, 3.0), (3.0, 2.9, 3.3), logit_kw),
        ("resample_logits_sepz_fp16", (12, 6, 11), 3, np.float16, (4.0, 3.5, 3.0), (1.5, 6.0, 1.5), logit_kw),
        ("resample_logits_float32", (7, 8, 6), 2, np.float32, (2.0, 2.0, 2.0), (1.3, 2.6, 1.8), logit_kw),
    ]
    for name, shape, c, dtype, cur_sp, new_sp, kw in res_cases:
        x = smooth(shape, c, dtype, scale=100.0 if kw is data_kw else 3.0)
        if name.endswith("same_shape"):
            new_shape = list(shape)
        else:
            new_shape = [int(v) for v in compute_new_shape(shape, cur_sp, new_sp)]
        y = resample_data_or_seg_to_shape(x.copy(), new_shape, cur_sp, new_sp, **kw)
        sep, axis = determine_do_sep_z_and_axis(kw["force_separate_z"], cur_sp, new_sp, 3)
        cases.append({"name": name, "function": "resample_data_or_seg_to_shape",
                      "kwargs": kw, "current_spacing": list(cur_sp), "new_spacing": list(new_sp),
                      "new_shape": new_shape, "separate_z": bool(sep), "axis": None if axis is None else int(axis),
                      "input": save(f"{name}_in", x), "output": save(f"{name}_out", np.asarray(y))})

    # ------------------------------------------------------------------ normalisation
    props = {"mean": -158.16641235351562, "std": 359.7229309082031, "percentile_00_5": -978.0,
             "percentile_99_5": 644.0, "max": 2817.0, "min": -2141.0, "median": 10.0}
    hu = rng.normal(-200, 600, size=(6, 7, 8)).astype(np.float32)
    hu.flat[:6] = [-978.0, 644.0, -3024.0, 3071.0, 0.0, -978.5]
    y = CTNormalization(use_mask_for_norm=False, intensityproperties=props).run(hu.copy(), None)
    cases.append({"name": "ct_normalization", "function": "CTNormalization.run", "intensityproperties": props,
                  "input": save("ct_normalization_in", hu), "output": save("ct_normalization_out", y)})
    img = rng.normal(50, 30, size=(5, 6, 7)).astype(np.float32)
    y = ZScoreNormalization(use_mask_for_norm=False, intensityproperties={}).run(img.copy(), None)
    cases.append({"name": "zscore_nomask", "function": "ZScoreNormalization.run", "use_mask_for_norm": False,
                  "input": save("zscore_nomask_in", img), "output": save("zscore_nomask_out", y)})
    seg = np.where(rng.random((5, 6, 7)) < 0.3, -1, 0).astype(np.int8)
    y = ZScoreNormalization(use_mask_for_norm=True, intensityproperties={}).run(img.copy(), seg)
    cases.append({"name": "zscore_mask", "function": "ZScoreNormalization.run", "use_mask_for_norm": True,
                  "input": save("zscore_mask_in", img), "seg": save("zscore_mask_seg", seg),
                  "output": save("zscore_mask_out", y)})

    # ------------------------------------------------------------------ sliding-window steps
    steps = []
    for image, tile, step in [((60, 40, 98), (32, 40, 48), 0.5), ((97, 64, 65), (64, 64, 64), 0.5),
                              ((110, 128, 200), (64, 64, 64), 0.5), ((33, 47, 81), (32, 40, 48), 0.5),
                              ((300, 200, 129), (128, 128, 128), 0.5), ((50, 50, 50), (32, 32, 32), 0.7),
                              ((50, 81, 161), (32, 32, 32), 0.25), ((75, 76, 77), (30, 40, 50), 1.0)]:
        steps.append({"image_size": list(image), "tile_size": list(tile), "tile_step_size": step,
                      "steps": [[int(s) for s in ax] for ax in compute_steps_for_sliding_window(image, tile, step)]})
    cases.append({"name": "steps", "function": "compute_steps_for_sliding_window", "cases": steps})

    # ------------------------------------------------------------------ Gaussian
    for patch in [(32, 40, 48), (40, 48, 32), (5, 9, 4), (7, 6, 8)]:
        compute_gaussian.cache_clear()
        g = compute_gaussian(tuple(patch), sigma_scale=1. / 8, value_scaling_factor=10,
                             device=torch.device("cpu")).numpy()
        name = "gaussian_" + "x".join(map(str, patch))
        cases.append({"name": name, "function": "compute_gaussian",
                      "kwargs": {"tile_size": list(patch), "sigma_scale": 0.125, "value_scaling_factor": 10,
                                 "dtype": "float16"},
                      "min": float(g.min()), "max": float(g.max()), "zeros_replaced": int((g == g.min()).sum()),
                      "output": save(name, g)})

    # ------------------------------------------------------------------ crop to nonzero
    a = rng.normal(0, 100, size=(1, 9, 11, 12)).astype(np.float32)
    a[a == 0] = 1
    a[:, :2] = 0  # two zero slices at the start of axis 0
    a[:, :, -3:] = 0  # three zero rows at the end of axis 1
    a[:, 4, 5, 6] = 0  # interior zero voxel: filled by binary_fill_holes, stays in the mask
    a[:, 5, 3:7, 2:5] = 0  # interior zero block
    a[:, :, :, 0] = 0  # zero first plane of axis 2...
    a[:, 6, 4, 0] = 7.0  # ...except one voxel: bbox keeps axis 2 from 0
    d, s, bbox = crop_to_nonzero(a.copy(), None)
    cases.append({"name": "crop_nonzero", "function": "crop_to_nonzero", "input": save("crop_nonzero_in", a),
                  "bbox": [[int(lo), int(hi)] for lo, hi in bbox], "cropped": save("crop_nonzero_cropped", d),
                  "seg": save("crop_nonzero_seg", s)})
    b = np.zeros((1, 4, 5, 6), np.float32)
    d, s, bbox = crop_to_nonzero(b.copy(), None)
    cases.append({"name": "crop_all_zero", "function": "crop_to_nonzero", "input": save("crop_all_zero_in", b),
                  "bbox": [[int(lo), int(hi)] for lo, hi in bbox], "seg": save("crop_all_zero_seg", s),
                  "note": "empty mask: the bbox is the whole image"})
    m = np.zeros((2, 6, 7, 8), np.float32)
    m[0, 1:3, 2:4, 3:5] = 5
    m[1, 2:5, 1:2, 4:7] = -2
    d, s, bbox = crop_to_nonzero(m.copy(), None)
    cases.append({"name": "crop_two_channels", "function": "crop_to_nonzero", "input": save("crop_two_channels_in", m),
                  "bbox": [[int(lo), int(hi)] for lo, hi in bbox], "seg": save("crop_two_channels_seg", s),
                  "note": "mask = any channel != 0"})

    # ------------------------------------------------------------------ padding
    for shape, patch in [((1, 26, 60, 98), (32, 40, 48)), ((2, 5, 6, 7), (8, 6, 10))]:
        x = rng.normal(size=shape).astype(np.float32)
        y, slicer = pad_nd_image(torch.from_numpy(x), patch, "constant", {"value": 0}, True, None)
        name = "pad_" + "x".join(map(str, shape[1:]))
        cases.append({"name": name, "function": "pad_nd_image", "patch_size": list(patch),
                      "input_shape": list(shape), "output_shape": list(y.shape),
                      "revert_slicer": [[sl.start or 0, sl.stop if sl.stop is not None else n]
                                        for sl, n in zip(slicer, y.shape)]})

    import nnunetv2
    import scipy
    import skimage
    from importlib.metadata import version

    index = {"generator": "tests/nnunet/make_unit_refs.py",
             "versions": {"nnunetv2": version("nnunetv2"), "numpy": np.__version__, "scipy": scipy.__version__,
                          "scikit-image": skimage.__version__, "torch": torch.__version__},
             "cases": cases}
    (out / "index.json").write_text(json.dumps(index, indent=1, default=lambda o: o.item()) + "\n")
    total = sum(f.stat().st_size for f in out.iterdir())
    print(f"{len(cases)} cases, {total / 1024:.0f} KiB -> {out}")


if __name__ == "__main__":
    main()
