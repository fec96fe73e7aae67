#!/usr/bin/env python3
"""Writes a model package with a ~32M-parameter InnerEye-style 3-D U-Net (random weights) for the
GPU speed check: <out>/model.onnx + model.json, float32 or float16.

    python make_unet32m.py <out_dir> [float32|float16]

Needs torch and onnx (both on the lent GPU machine). Architecture: 5 levels, widths
38-76-152-304-608 (32.9M parameters), two 3x3x3 conv + BatchNorm + ReLU per level, strided conv
down, transposed conv up, skip concatenation, 1x1x1 head with 5 classes; patch 128^3 at native
spacing (about 1.3 TFLOP per patch).
"""
import hashlib
import json
import sys
from pathlib import Path

import torch
from torch import nn


def block(cin, cout):
    return nn.Sequential(nn.Conv3d(cin, cout, 3, padding=1), nn.BatchNorm3d(cout), nn.ReLU(inplace=True),
                         nn.Conv3d(cout, cout, 3, padding=1), nn.BatchNorm3d(cout), nn.ReLU(inplace=True))


class UNet3D(nn.Module):
    def __init__(self, widths=(38, 76, 152, 304, 608), classes=5):
        super().__init__()
        self.enc = nn.ModuleList()
        self.down = nn.ModuleList()
        cin = 1
        for i, w in enumerate(widths):
            self.enc.append(block(cin, w))
            if i < len(widths) - 1:
                self.down.append(nn.Conv3d(w, w, 2, stride=2))
            cin = w
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for w_hi, w_lo in zip(widths[::-1][:-1], widths[::-1][1:]):
            self.up.append(nn.ConvTranspose3d(w_hi, w_lo, 2, stride=2))
            self.dec.append(block(2 * w_lo, w_lo))
        self.head = nn.Conv3d(widths[0], classes, 1)

    def forward(self, x):
        skips = []
        for i, enc in enumerate(self.enc):
            x = enc(x)
            if i < len(self.down):
                skips.append(x)
                x = self.down[i](x)
        for up, dec in zip(self.up, self.dec):
            x = dec(torch.cat([up(x), skips.pop()], 1))
        return self.head(x)


def main():
    out = Path(sys.argv[1])
    dtype = sys.argv[2] if len(sys.argv) > 2 else "float32"
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    net = UNet3D().eval()
    params = sum(p.numel() for p in net.parameters())
    # Traced at 32^3 (spatial axes dynamic; the engine feeds 128^3 patches): a 128^3 trace in
    # float16 takes over 15 minutes on a CPU. On the GPU machine the trace runs on CUDA.
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    net = net.to(dev)
    x = torch.zeros(1, 1, 32, 32, 32, device=dev)
    if dtype == "float16":
        net = net.half()
        x = x.half()
    axes = {0: "n", 2: "z", 3: "y", 4: "x"}
    with torch.no_grad():
        torch.onnx.export(net, x, out / "model.onnx", input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": axes, "logits": axes}, opset_version=17, dynamo=False)
    sha = hashlib.sha256((out / "model.onnx").read_bytes()).hexdigest()
    labels = [{"index": 0, "name": "Background"}] + [
        {"index": i, "name": f"S{i}", "rt_roi_type": "ORGAN"} for i in range(1, 5)]
    manifest = {
        "schema_version": 1, "name": f"unet32m-{dtype}", "version": "0", "description": f"{params} parameters, random",
        "onnx": {"file": "model.onnx", "sha256": sha, "input": "image", "output": "logits", "dtype": dtype},
        "orientation": "LPS", "spacing_mm": "native",
        "normalization": {"kind": "ct_window", "level": 50.0, "width": 600.0, "range": [-1.0, 1.0]},
        "patch_size": [128, 128, 128], "tile_step": 0.5, "blending": "gaussian", "mirror_axes": [],
        "output_kind": "logits", "resample_output": "logits_linear", "labels": labels,
    }
    (out / "model.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"{out}: {params / 1e6:.1f}M parameters, {dtype}")


if __name__ == "__main__":
    main()
