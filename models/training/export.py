#!/usr/bin/env python3
"""Export a training checkpoint to the model package models/thorax-basic/ (ONNX + model.json).

    python models/training/export.py [--ckpt target/train-run/checkpoint.pt] [--out models/thorax-basic]

ONNX opset 17, input "image" [N, 1, Z, Y, X], output "logits" [N, 5, Z, Y, X] with dynamic batch
and spatial axes (each a multiple of 8). The ONNX output is checked against PyTorch with
onnxruntime on a random and on a patch-sized input (max abs difference printed and stored in
models/training/export_check.json); the SHA-256 of model.onnx goes into model.json.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train import N_CLASSES, NORM, PATCH, SPACING, WIDTHS  # noqa: E402
from unet import UNet3D  # noqa: E402

VERSION = "0.2.0"

LABELS = [
    {"index": 0, "name": "Background"},
    {"index": 1, "name": "External", "color": [0, 200, 0], "rt_roi_type": "EXTERNAL",
     "largest_component": True, "connectivity": 6, "fill_holes": "2d",
     "expected_volume_ml": [3000, 80000]},
    {"index": 2, "name": "Lung_L", "color": [230, 80, 80], "rt_roi_type": "ORGAN",
     "largest_component": True, "connectivity": 6, "fill_holes": "2d",
     "expected_volume_ml": [500, 5000],
     "code": {"scheme": "FMA", "value": "7310", "meaning": "Left lung"}},
    {"index": 3, "name": "Lung_R", "color": [80, 140, 255], "rt_roi_type": "ORGAN",
     "largest_component": True, "connectivity": 6, "fill_holes": "2d",
     "expected_volume_ml": [500, 5500],
     "code": {"scheme": "FMA", "value": "7309", "meaning": "Right lung"}},
    {"index": 4, "name": "Trachea", "color": [255, 220, 0], "rt_roi_type": "ORGAN",
     "largest_component": True, "connectivity": 26, "fill_holes": "none",
     "expected_volume_ml": [5, 80],
     "code": {"scheme": "FMA", "value": "7394", "meaning": "Trachea"}},
]


class MergedHead(torch.nn.Module):
    """The network followed by a channel selection in which some classes absorb others:
    logit(target) = logsumexp(target, sources...), so softmax(target) after the merge is the sum
    of the merged classes' probabilities before it."""

    def __init__(self, net, keep, merges):
        super().__init__()
        self.net = net
        self.keep = keep
        self.merges = merges

    def forward(self, x):
        out = self.net(x)
        chans = []
        for i in self.keep:
            if i in self.merges:
                chans.append(torch.logsumexp(out[:, [i] + self.merges[i]], dim=1, keepdim=True))
            else:
                chans.append(out[:, i:i + 1])
        return torch.cat(chans, dim=1)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", default="target/train-run/checkpoint.pt")
    ap.add_argument("--out", default="models/thorax-basic")
    ap.add_argument("--drop", nargs="*", default=[],
                    help="label names whose output channels are removed from the exported graph "
                         "(the 1x1x1 head is sliced; the remaining channels are unchanged)")
    ap.add_argument("--merge", nargs="*", default=[], metavar="SOURCE=TARGET",
                    help="fold a label into another: TARGET's exported logit becomes "
                         "logsumexp(TARGET, SOURCE) (the sum of their softmax probabilities) and "
                         "SOURCE's channel is removed, so its voxels go to TARGET, not to the "
                         "runner-up class")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    st = torch.load(args.ckpt, map_location="cpu")
    model = UNet3D(N_CLASSES, tuple(st.get("widths", WIDTHS)))
    model.load_state_dict(st["model"])
    merges = {}
    for m in args.merge:
        src, _, dst = m.partition("=")
        by_name = {lab["name"]: lab["index"] for lab in LABELS}
        if src not in by_name or dst not in by_name or src == dst:
            raise SystemExit(f"--merge {m}: expected SOURCE=TARGET with two different label names")
        merges.setdefault(by_name[dst], []).append(by_name[src])
    merged_away = {lab["name"] for lab in LABELS if any(lab["index"] in v for v in merges.values())}
    keep = [lab for lab in LABELS if lab["name"] not in args.drop and lab["name"] not in merged_away]
    if merges:
        model = MergedHead(model, [lab["index"] for lab in keep], merges)
    elif len(keep) != len(LABELS):
        idx = [lab["index"] for lab in keep]
        head = torch.nn.Conv3d(model.head.in_channels, len(idx), 1)
        with torch.no_grad():
            head.weight.copy_(model.head.weight[idx])
            head.bias.copy_(model.head.bias[idx])
        model.head = head
        keep = [dict(lab, index=i) for i, lab in enumerate(keep)]
    model.eval()
    os.makedirs(args.out, exist_ok=True)
    onnx_path = os.path.join(args.out, "model.onnx")
    if not merges:
        keep_labels = keep
    else:
        keep_labels = [dict(lab, index=i) for i, lab in enumerate(keep)]
    keep = keep_labels
    x = torch.randn(1, 1, *PATCH)
    torch.onnx.export(
        model, (x,), onnx_path, opset_version=17, input_names=["image"], output_names=["logits"],
        dynamic_axes={"image": {0: "n", 2: "z", 3: "y", 4: "x"}, "logits": {0: "n", 2: "z", 3: "y", 4: "x"}},
        do_constant_folding=True, dynamo=False,
    )
    import onnx
    import onnxruntime as ort

    onnx.checker.check_model(onnx.load(onnx_path))
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    diffs = {}
    for name, shape in (("patch", (1, 1, *PATCH)), ("other", (2, 1, 40, 56, 72))):
        xi = torch.rand(*shape) * 2 - 1
        with torch.no_grad():
            ref_out = model(xi).numpy()
        got = sess.run(["logits"], {"image": xi.numpy()})[0]
        diffs[name] = float(np.abs(ref_out - got).max())
        print(f"ONNX vs PyTorch {name} {list(shape)}: max abs diff {diffs[name]:.2e}")
        assert diffs[name] < 1e-3, diffs
    sha = hashlib.sha256(open(onnx_path, "rb").read()).hexdigest()
    manifest = {
        "schema_version": 1,
        "name": "thorax-basic",
        "version": VERSION,
        "description": "Small 3D U-Net (4 levels, widths 8-64, InstanceNorm, LeakyReLU) for "
                       + ", ".join(lab["name"] for lab in keep[1:]) +
                       " on thorax CT at 4 mm. Trained by models/training on "
                       "one real CT (RIDER Lung CT, CC BY 4.0) with rule-based labels plus synthetic "
                       "phantoms. Not for clinical use.",
        "onnx": {"file": "model.onnx", "sha256": sha, "input": "image", "output": "logits",
                 "dtype": "float32"},
        "orientation": "LPS",
        "spacing_mm": [float(SPACING[2]), float(SPACING[1]), float(SPACING[0])],
        "normalization": NORM,
        "patch_size": list(PATCH),
        "tile_step": 0.5,
        "blending": "gaussian",
        "mirror_axes": [],
        "output_kind": "logits",
        "resample_output": "logits_linear",
        "labels": keep,
    }
    with open(os.path.join(args.out, "model.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "export_check.json"), "w") as f:
        json.dump({"checkpoint_steps": int(st.get("step", 0)), "onnx_sha256": sha, "dropped_labels": args.drop, "merged_labels": args.merge,
                   "onnx_vs_pytorch_max_abs_diff": diffs, "torch": torch.__version__,
                   "onnxruntime": ort.__version__, "opset": 17}, f, indent=2)
        f.write("\n")
    print(f"wrote {onnx_path} ({os.path.getsize(onnx_path) / 1e6:.2f} MB, sha256 {sha[:16]}...) and model.json")


if __name__ == "__main__":
    main()
