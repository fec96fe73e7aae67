#!/usr/bin/env python3
"""Writes the small test model packages under models/test/ (committed, so CI needs no generator).

    python3 models/test/make_test_models.py      # needs numpy and onnx

tiny-unet/     a 2-level 3-D U-Net-shaped network with fixed-seed random weights, 3 classes,
               dynamic batch and spatial axes, float32, LPS at 4 mm, Gaussian blending.
tiny-unet-tta/ the same graph with mirroring over x and centre-crop blending at 3 mm native
               orientation, float16 input/output (exercises the other manifest paths).

Weights are random: the networks are for testing the engine (tiling, blending, resampling,
mirroring, dtypes) against the Python reference, not for segmenting anything.
"""
import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent


def conv(name, x, w, b, out, stride=1, pad=1):
    return [helper.make_node("Conv", [x, w, b], [out], name=name, kernel_shape=list(w_shape[name][2:]),
                             strides=[stride] * 3, pads=[pad] * 6)]


w_shape = {}


def build(dtype):
    rng = np.random.default_rng(20261127)
    inits = []

    def param(name, shape, scale):
        arr = (rng.standard_normal(shape) * scale).astype(np.float32)
        inits.append(numpy_helper.from_array(arr, name))
        w_shape[name.replace("_w", "")] = shape
        return name

    nodes = []
    x_in = "image"
    if dtype == "float16":
        nodes.append(helper.make_node("Cast", ["image"], ["x32"], to=TensorProto.FLOAT))
        x_in = "x32"
    c = 4
    param("enc1_w", (c, 1, 3, 3, 3), 0.4)
    inits.append(numpy_helper.from_array(rng.standard_normal(c).astype(np.float32) * 0.1, "enc1_b"))
    nodes += conv("enc1", x_in, "enc1_w", "enc1_b", "e1")
    nodes.append(helper.make_node("LeakyRelu", ["e1"], ["e1a"], alpha=0.01))
    param("down_w", (2 * c, c, 3, 3, 3), 0.3)
    inits.append(numpy_helper.from_array(rng.standard_normal(2 * c).astype(np.float32) * 0.1, "down_b"))
    nodes += conv("down", "e1a", "down_w", "down_b", "d1", stride=2)
    nodes.append(helper.make_node("LeakyRelu", ["d1"], ["d1a"], alpha=0.01))
    up_w = (rng.standard_normal((2 * c, c, 2, 2, 2)) * 0.3).astype(np.float32)
    inits.append(numpy_helper.from_array(up_w, "up_w"))
    inits.append(numpy_helper.from_array(np.zeros(c, np.float32), "up_b"))
    nodes.append(helper.make_node("ConvTranspose", ["d1a", "up_w", "up_b"], ["u1"], kernel_shape=[2, 2, 2],
                                  strides=[2, 2, 2]))
    nodes.append(helper.make_node("Concat", ["u1", "e1a"], ["cat"], axis=1))
    param("head_w", (3, 2 * c, 1, 1, 1), 0.8)
    inits.append(numpy_helper.from_array(np.array([0.5, 0.0, -0.2], np.float32), "head_b"))
    nodes += conv("head", "cat", "head_w", "head_b", "l32" if dtype == "float16" else "logits", pad=0)
    if dtype == "float16":
        nodes.append(helper.make_node("Cast", ["l32"], ["logits"], to=TensorProto.FLOAT16))
    et = TensorProto.FLOAT16 if dtype == "float16" else TensorProto.FLOAT
    inp = helper.make_tensor_value_info("image", et, ["n", 1, "z", "y", "x"])
    out = helper.make_tensor_value_info("logits", et, ["n", 3, "z", "y", "x"])
    graph = helper.make_graph(nodes, "tiny_unet", [inp], [out], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="autocontour-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def write(pkg, dtype, manifest):
    d = HERE / pkg
    d.mkdir(exist_ok=True)
    model = build(dtype)
    onnx.save(model, d / "model.onnx")
    digest = hashlib.sha256((d / "model.onnx").read_bytes()).hexdigest()
    manifest["onnx"]["sha256"] = digest
    (d / "model.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {d} ({(d / 'model.onnx').stat().st_size} bytes, sha256 {digest[:12]}…)")


LABELS = [
    {"index": 0, "name": "Background"},
    {"index": 1, "name": "Alpha", "color": [255, 0, 0], "rt_roi_type": "ORGAN"},
    {"index": 2, "name": "Beta", "color": [0, 0, 255], "rt_roi_type": "ORGAN"},
]

write("tiny-unet", "float32", {
    "schema_version": 1, "name": "tiny-unet", "version": "1.0.0",
    "description": "Random-weight test network (not a segmentation model).",
    "onnx": {"file": "model.onnx", "sha256": "", "input": "image", "output": "logits", "dtype": "float32"},
    "orientation": "LPS", "spacing_mm": [4.0, 4.0, 4.0],
    "normalization": {"kind": "ct_window", "level": -300.0, "width": 1600.0, "range": [-1.0, 1.0]},
    "patch_size": [16, 32, 32], "tile_step": 0.5, "blending": "gaussian", "mirror_axes": [],
    "output_kind": "logits", "resample_output": "logits_linear", "labels": LABELS,
})
write("tiny-unet-tta", "float16", {
    "schema_version": 1, "name": "tiny-unet-tta", "version": "1.0.0",
    "description": "Random-weight test network, float16, mirroring TTA, centre-crop blending.",
    "onnx": {"file": "model.onnx", "sha256": "", "input": "image", "output": "logits", "dtype": "float16"},
    "orientation": "native", "spacing_mm": [3.0, 3.0, 3.0],
    "normalization": {"kind": "ct_zscore", "clip": [-1000.0, 1500.0], "mean": -400.0, "std": 500.0},
    "patch_size": [16, 32, 32], "tile_step": 0.5, "blending": "center_crop", "mirror_axes": [2],
    "output_kind": "logits", "resample_output": "argmax_nearest", "labels": LABELS,
})
