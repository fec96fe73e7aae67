#!/usr/bin/env python3
"""Import a trained nnU-Net v2 model into an autocontour model package.

    import_nnunet.py <trained model folder> --out <package dir> [--folds 0 1]
        [--checkpoint checkpoint_final.pth] [--fp16] [--name NAME] [--version X.Y.Z]
        [--orientation native|LPS|RAS] [--label-meta labels.json] [--force]

<trained model folder> is the folder nnU-Net writes under nnUNet_results, named
<Trainer>__<Plans>__<configuration>, e.g. Dataset901_Thorax/nnUNetTrainer__nnUNetPlans__3d_fullres:
it holds plans.json, dataset.json and fold_<k>/<checkpoint>. Written to --out:

    model.json     the manifest (models/MANIFEST.md schema 1 + "pipeline": "nnunet_v2" and an
                   "nnunet" block; see models/importers/nnunet/README.md, last section)
    fold_<k>.onnx  one network per fold, opset 17, input "image" [N, 1, Z, Y, X], output "logits"
                   [N, K, Z, Y, X], dynamic N/Z/Y/X. Z, Y, X are the axes of nnU-Net's image array
                   as read by its reader (SimpleITK order: slice, row, column); nnU-Net's
                   transpose_forward/backward are built into the graph (Transpose nodes), so the
                   engine tiles in [z, y, x] and never transposes.

What it does: reads plans.json and dataset.json, loads each fold's checkpoint, builds the network
with nnU-Net's own code (the trainer's build_network_architecture, enable_deep_supervision=False,
exactly as nnUNetPredictor does), loads the weights strictly, exports each fold to ONNX, runs the
ONNX graph (onnxruntime, CPU) and the PyTorch network on the same random tile and prints the
maximum absolute difference, then writes the package atomically: everything goes into a
temporary folder beside --out that is renamed at the end; on any error nothing is left at --out.

Custom trainers must be importable, as for nnUNetPredictor: installed in nnunetv2's
training/nnUNetTrainer/ tree, or in a folder named by the environment variable nnUNet_extTrainer.

Exit status (each error prints "error[NAME]: message" on stderr, naming the file or field):
    0  package written
    2  usage error (argparse)
   10  MISSING_PLANS            plans.json missing or not JSON
   11  MISSING_DATASET_JSON     dataset.json missing or not JSON
   12  MISSING_FOLD             fold_<k>/ folder missing
   13  MISSING_CHECKPOINT       fold_<k>/<checkpoint> missing or unreadable
   14  STATE_DICT_MISMATCH      checkpoint weights do not fit the network the plans describe
   15  UNSUPPORTED_NORMALIZATION  a channel's scheme is not CTNormalization or ZScoreNormalization
   16  CASCADE_UNSUPPORTED      3d_cascade_fullres / configuration with previous_stage
   17  UNKNOWN_TRAINER          the checkpoint's trainer class cannot be found
   18  UNKNOWN_NETWORK_CLASS    the plans' network_class_name (or an op it names) cannot be imported
   19  BAD_PLANS                a field the engine needs is missing or malformed (named)
   20  UNSUPPORTED_RESAMPLING   resampling function other than resample_data_or_seg_to_shape
   21  UNSUPPORTED_READER       image_reader_writer other than SimpleITKIO / NibabelIO / NibabelIOWithReorient
   22  UNSUPPORTED_INPUT        not exactly one input channel, or not a 3-D configuration
   23  ONNX_MISMATCH            ONNX and PyTorch outputs differ by more than the tolerance
   24  OUT_EXISTS               --out exists (use --force to replace it)
   25  UNSUPPORTED_COMPONENT    a custom preprocessor_name (not DefaultPreprocessor) or label_manager
                                (not LabelManager) in plans.json
    1  any other failure (a traceback is printed)
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import inspect
import json
import os
import pydoc
import shutil
import sys
import tempfile
import traceback
import warnings
from pathlib import Path

EXIT = {
    "MISSING_PLANS": 10,
    "MISSING_DATASET_JSON": 11,
    "MISSING_FOLD": 12,
    "MISSING_CHECKPOINT": 13,
    "STATE_DICT_MISMATCH": 14,
    "UNSUPPORTED_NORMALIZATION": 15,
    "CASCADE_UNSUPPORTED": 16,
    "UNKNOWN_TRAINER": 17,
    "UNKNOWN_NETWORK_CLASS": 18,
    "BAD_PLANS": 19,
    "UNSUPPORTED_RESAMPLING": 20,
    "UNSUPPORTED_READER": 21,
    "UNSUPPORTED_INPUT": 22,
    "ONNX_MISMATCH": 23,
    "OUT_EXISTS": 24,
    "UNSUPPORTED_COMPONENT": 25,
}

SUPPORTED_NORMALIZATION = {"CTNormalization", "ZScoreNormalization"}
SUPPORTED_RESAMPLING = "resample_data_or_seg_to_shape"
# reader -> manifest orientation implied by the reader (None: the array as stored in the file)
SUPPORTED_READERS = {"SimpleITKIO": None, "NibabelIO": None, "NibabelIOWithReorient": "RAS"}
PALETTE = [(0, 200, 0), (255, 80, 80), (80, 140, 255), (255, 220, 0), (200, 80, 255), (0, 220, 220),
           (255, 150, 0), (150, 255, 100), (255, 100, 200), (120, 120, 255)]
EXTERNAL_NAMES = {"external", "body", "skin", "outline", "body_outline"}


class ImportFailure(Exception):
    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name = name
        self.message = message


def fail(name: str, message: str):
    raise ImportFailure(name, message)


def log(msg: str):
    print(msg, flush=True)


# ----------------------------------------------------------------------------- reading

def load_json_file(path: Path, err: str) -> dict:
    if not path.is_file():
        fail(err, f"{path} not found")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        fail(err, f"{path} is not readable JSON: {e}")


def need(d: dict, key: str, where: str):
    if not isinstance(d, dict) or key not in d:
        fail("BAD_PLANS", f"field '{key}' missing in {where}")
    return d[key]


def dumps(obj, indent=0) -> str:
    """JSON with 2-space indentation, lists of scalars kept on one line."""
    pad, pad1 = "  " * indent, "  " * (indent + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{pad1}{json.dumps(str(k))}: {dumps(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, (list, tuple)):
        if all(not isinstance(v, (dict, list, tuple)) for v in obj):
            return "[" + ", ".join(json.dumps(v) for v in obj) + "]"
        return "[\n" + ",\n".join(pad1 + dumps(v, indent + 1) for v in obj) + "\n" + pad + "]"
    return json.dumps(obj)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def configuration_from_folder(model_dir: Path):
    parts = model_dir.name.split("__")
    return parts if len(parts) == 3 else (None, None, None)


def load_checkpoint(path: Path):
    import torch

    if not path.is_file():
        fail("MISSING_CHECKPOINT", f"{path} not found")
    try:
        ckpt = torch.load(str(path), map_location=torch.device("cpu"), weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unpickling error is a bad checkpoint
        fail("MISSING_CHECKPOINT", f"{path} is not a readable torch checkpoint: {type(e).__name__}: {e}")
    if not isinstance(ckpt, dict) or "network_weights" not in ckpt:
        fail("MISSING_CHECKPOINT", f"{path} has no 'network_weights' (not an nnU-Net v2 checkpoint)")
    return ckpt


# ----------------------------------------------------------------------------- checks

def check_plans(plans: dict, cfg_name: str, plans_path: Path):
    """Validate what the engine needs; return (plans_manager, configuration_manager)."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    where = str(plans_path)
    configs = need(plans, "configurations", where)
    if cfg_name not in configs:
        fail("BAD_PLANS", f"configuration '{cfg_name}' not in {where} 'configurations' "
                          f"(has: {', '.join(configs)})")
    raw_cfg = configs[cfg_name]
    if cfg_name == "3d_cascade_fullres" or raw_cfg.get("previous_stage"):
        fail("CASCADE_UNSUPPORTED",
             f"configuration '{cfg_name}' in {where} is a cascade stage (previous_stage="
             f"{raw_cfg.get('previous_stage')!r}); only single-stage configurations (3d_fullres, "
             f"3d_lowres without next stage use) can be imported")
    for key in ("transpose_forward", "transpose_backward", "foreground_intensity_properties_per_channel",
                "image_reader_writer"):
        need(plans, key, where)
    try:
        pm = PlansManager(plans)
        cm = pm.get_configuration(cfg_name)
        c = cm.configuration
    except ImportFailure:
        raise
    except Exception as e:  # noqa: BLE001
        fail("BAD_PLANS", f"{where}: configuration '{cfg_name}' cannot be resolved: {type(e).__name__}: {e}")
    cwhere = f"{where} configurations['{cfg_name}']"
    if c.get("previous_stage"):
        fail("CASCADE_UNSUPPORTED", f"{cwhere} has previous_stage={c['previous_stage']!r} (cascade)")
    for key in ("patch_size", "spacing", "normalization_schemes", "use_mask_for_norm", "architecture",
                "resampling_fn_data", "resampling_fn_data_kwargs", "resampling_fn_probabilities",
                "resampling_fn_probabilities_kwargs"):
        need(c, key, cwhere)
    if len(c["patch_size"]) != 3 or len(c["spacing"]) != 3:
        fail("UNSUPPORTED_INPUT", f"{cwhere}: patch_size {c['patch_size']} / spacing {c['spacing']} are not 3-D "
                                  f"(2d configurations are not supported)")
    tf, tb = plans["transpose_forward"], plans["transpose_backward"]
    if sorted(tf) != [0, 1, 2] or [tf.index(i) for i in range(3)] != list(tb):
        fail("BAD_PLANS", f"{where}: transpose_forward {tf} / transpose_backward {tb} are not inverse permutations")
    for key in ("resampling_fn_data", "resampling_fn_probabilities"):
        if c[key] != SUPPORTED_RESAMPLING:
            fail("UNSUPPORTED_RESAMPLING", f"{cwhere} '{key}' is '{c[key]}'; only '{SUPPORTED_RESAMPLING}' "
                                           f"is implemented by the engine")
    for key in ("resampling_fn_data_kwargs", "resampling_fn_probabilities_kwargs"):
        kw = c[key]
        for k in ("order", "order_z"):
            if k not in kw:
                fail("BAD_PLANS", f"field '{k}' missing in {cwhere}['{key}']")
        if kw.get("is_seg", False):
            fail("UNSUPPORTED_RESAMPLING", f"{cwhere}['{key}'] has is_seg=true")
    if c.get("preprocessor_name", "DefaultPreprocessor") != "DefaultPreprocessor":
        fail("UNSUPPORTED_COMPONENT", f"{cwhere} preprocessor_name '{c['preprocessor_name']}': only "
                                      f"DefaultPreprocessor's steps are implemented by the engine")
    if plans.get("label_manager", "LabelManager") != "LabelManager":
        fail("UNSUPPORTED_COMPONENT", f"{where} label_manager '{plans['label_manager']}': only LabelManager "
                                      f"(softmax/argmax, or sigmoid regions) is implemented by the engine")
    reader = plans["image_reader_writer"]
    if reader not in SUPPORTED_READERS:
        fail("UNSUPPORTED_READER", f"{where} image_reader_writer '{reader}': supported are "
                                   f"{', '.join(SUPPORTED_READERS)}")
    return pm, cm


def normalization_blocks(pm, cm, dataset_json: dict, plans_path: Path):
    schemes = cm.normalization_schemes
    masks = cm.use_mask_for_norm
    props = pm.foreground_intensity_properties_per_channel
    names = dataset_json.get("channel_names", dataset_json.get("modality", {}))
    out = []
    for c, scheme in enumerate(schemes):
        if scheme not in SUPPORTED_NORMALIZATION:
            fail("UNSUPPORTED_NORMALIZATION",
                 f"{plans_path}: channel {c} ({names.get(str(c), '?')}) uses normalization '{scheme}'; "
                 f"supported: {', '.join(sorted(SUPPORTED_NORMALIZATION))}")
        block = {"channel": c, "channel_name": names.get(str(c)), "scheme": scheme,
                 "use_mask_for_norm": bool(masks[c]) if c < len(masks) else False}
        if scheme == "CTNormalization":
            p = props.get(str(c))
            if p is None:
                fail("BAD_PLANS", f"field 'foreground_intensity_properties_per_channel[\"{c}\"]' missing in {plans_path}")
            for k in ("mean", "std", "percentile_00_5", "percentile_99_5"):
                if k not in p:
                    fail("BAD_PLANS", f"field 'foreground_intensity_properties_per_channel[\"{c}\"].{k}' missing "
                                      f"in {plans_path}")
            block.update({"kind": "ct_zscore", "clip": [float(p["percentile_00_5"]), float(p["percentile_99_5"])],
                          "mean": float(p["mean"]), "std": float(p["std"])})
        else:
            block.update({"kind": "zscore_image"})
        out.append(block)
    return out


def label_blocks(label_manager, dataset_json: dict, meta: dict):
    """(top-level labels list, nnunet label info)."""
    labels_raw = dataset_json["labels"]
    name_of_value = {}
    for name, v in labels_raw.items():
        if name == "ignore":
            continue
        if isinstance(v, (list, tuple)):
            if len(v) == 1:
                name_of_value.setdefault(int(v[0]), name)
        else:
            name_of_value.setdefault(int(v), name)
    entries = []
    info = {"has_regions": bool(label_manager.has_regions),
            "ignore_label": label_manager.ignore_label,
            "num_segmentation_heads": int(label_manager.num_segmentation_heads)}
    if label_manager.has_regions:
        order = list(label_manager.regions_class_order)
        regions = label_manager.foreground_regions
        info["regions_class_order"] = [int(x) for x in order]
        info["regions"] = []
        for ch, (reg, paint) in enumerate(zip(regions, order)):
            reg = [int(x) for x in (reg if isinstance(reg, (list, tuple)) else [reg])]
            rname = next((n for n, v in labels_raw.items()
                          if isinstance(v, (list, tuple)) and sorted(int(x) for x in v) == sorted(reg)),
                         name_of_value.get(int(paint), f"region_{ch}"))
            info["regions"].append({"channel": ch, "labels": reg, "paint_value": int(paint), "name": rname})
            name_of_value[int(paint)] = rname  # the label map value painted for this region
        info["inference_nonlin"] = "sigmoid"
        values = sorted(set([0] + [int(x) for x in order]))
    else:
        info["regions_class_order"] = None
        info["inference_nonlin"] = "softmax"
        values = [int(x) for x in label_manager.all_labels if x != label_manager.ignore_label]
        if values != list(range(len(values))):
            fail("BAD_PLANS", f"dataset.json labels {values} are not consecutive from 0")
    for i, v in enumerate(values):
        name = name_of_value.get(v, f"label_{v}")
        if v == 0:
            e = {"index": 0, "name": name if name != "background" else "Background"}
        else:
            e = {"index": v, "name": name, "color": list(PALETTE[(v - 1) % len(PALETTE)]),
                 "rt_roi_type": "EXTERNAL" if name.lower() in EXTERNAL_NAMES else "ORGAN",
                 "largest_component": False, "connectivity": 6, "fill_holes": "none"}
        e.update(meta.get(name, {}))
        e["index"] = v
        entries.append(e)
    info["dataset_json_labels"] = labels_raw
    return entries, info


# ----------------------------------------------------------------------------- network

def build_network(trainer_name: str, pm, cm, dataset_json: dict, n_in: int, n_out: int):
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    try:
        trainer_class = recursive_find_trainer_class_by_name(trainer_name)
    except Exception as e:  # noqa: BLE001 - nnU-Net raises RuntimeError / AssertionError
        fail("UNKNOWN_TRAINER", f"trainer class '{trainer_name}' (from the checkpoint) not found: install it "
                                f"under nnunetv2/training/nnUNetTrainer/ or point nnUNet_extTrainer at its folder "
                                f"({type(e).__name__}: {str(e)[:300]})")
    arch = cm.configuration["architecture"]
    cls_name = need(arch, "network_class_name", "plans configuration 'architecture'")
    if pydoc.locate(cls_name) is None:
        fail("UNKNOWN_NETWORK_CLASS", f"network_class_name '{cls_name}' in plans.json cannot be imported")
    for k in arch.get("_kw_requires_import", []):
        v = arch.get("arch_kwargs", {}).get(k)
        if v is not None and pydoc.locate(v) is None:
            fail("UNKNOWN_NETWORK_CLASS", f"arch_kwargs.{k} = '{v}' in plans.json cannot be imported")
    sig = inspect.signature(trainer_class.build_network_architecture)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if "plans_manager" in sig.parameters:
                net = trainer_class.build_network_architecture(pm, cm, n_in, n_out, enable_deep_supervision=False)
            else:
                net = trainer_class.build_network_architecture(
                    cm.network_arch_class_name, cm.network_arch_init_kwargs,
                    cm.network_arch_init_kwargs_req_import, n_in, n_out, enable_deep_supervision=False)
    except ImportFailure:
        raise
    except ImportError as e:
        fail("UNKNOWN_NETWORK_CLASS", f"network '{cls_name}' cannot be built: {e}")
    except Exception as e:  # noqa: BLE001
        fail("BAD_PLANS", f"network '{cls_name}' cannot be built from plans.json arch_kwargs: "
                          f"{type(e).__name__}: {e}")
    return net, trainer_class


def load_weights(net, state: dict, ckpt_path: Path):
    import torch

    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shape = [f"{k}: checkpoint {tuple(state[k].shape)} vs plans {tuple(own[k].shape)}"
             for k in own if k in state and isinstance(state[k], torch.Tensor) and state[k].shape != own[k].shape]
    # nnU-Net may save torch.compile'd weights with an '_orig_mod.' prefix
    if missing and all(k.startswith("_orig_mod.") for k in state):
        return load_weights(net, {k[len("_orig_mod."):]: v for k, v in state.items()}, ckpt_path)
    if missing or unexpected or shape:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        if shape:
            parts.append(f"{len(shape)} with another shape (e.g. {'; '.join(shape[:3])})")
        fail("STATE_DICT_MISMATCH", f"{ckpt_path}: weights do not match the architecture in plans.json: "
                                    + "; ".join(parts))
    net.load_state_dict(state, strict=True)


class Transposed:
    """Factory for the export wrapper: [N,C,Z,Y,X] in, nnU-Net's transposed network inside."""

    @staticmethod
    def make(net, tf, tb):
        import torch

        class Wrapper(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.net = net
                self.fwd = [0, 1] + [2 + int(a) for a in tf]
                self.bwd = [0, 1] + [2 + int(a) for a in tb]
                self.identity = list(tf) == [0, 1, 2]

            def forward(self, image):
                if self.identity:
                    return self.net(image)
                return self.net(image.permute(*self.fwd)).permute(*self.bwd)

        return Wrapper().eval()


def export_fold(net, tf, tb, patch_zyx, n_in: int, path: Path, fp16: bool, seed: int):
    """Export one fold and compare ONNX Runtime with PyTorch on a random tile. Returns diff info."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch

    wrapper = Transposed.make(net, tf, tb)
    dummy = torch.zeros((1, n_in, *patch_zyx), dtype=torch.float32)
    dyn = {0: "n", 2: "z", 3: "y", 4: "x"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kwargs = dict(opset_version=17, input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": dyn, "logits": dyn}, do_constant_folding=True)
        if "dynamo" in inspect.signature(torch.onnx.export).parameters:
            kwargs["dynamo"] = False
        torch.onnx.export(wrapper, (dummy,), str(path), **kwargs)
    model = onnx.load(str(path))
    if fp16:
        from onnxruntime.transformers.float16 import convert_float_to_float16

        model = convert_float_to_float16(model, keep_io_types=False)
        onnx.save(model, str(path))
    onnx.checker.check_model(model)
    # random tile in normalised units (roughly what CT z-scores look like), fixed seed
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, size=(1, n_in, *patch_zyx)).astype(np.float32)
    with torch.no_grad():
        xt = torch.from_numpy(x).permute(0, 1, *[2 + int(a) for a in tf]).contiguous()
        ref = net(xt).permute(0, 1, *[2 + int(a) for a in tb]).contiguous().numpy()
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    try:
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        out = sess.run(["logits"], {"image": x.astype(np.float16) if fp16 else x})[0].astype(np.float32)
    except Exception as e:  # noqa: BLE001
        if fp16:
            log(f"  warning: the fp16 graph cannot run on onnxruntime's CPU provider here ({type(e).__name__}); "
                f"not checked against PyTorch")
            return {"max_abs_diff": None, "checked": False, "reason": f"{type(e).__name__}: {str(e)[:200]}"}
        raise
    if out.shape != ref.shape:
        fail("ONNX_MISMATCH", f"{path.name}: ONNX output shape {out.shape} != PyTorch {ref.shape}")
    diff = float(np.max(np.abs(out - ref)))
    scale = float(np.max(np.abs(ref)))
    tol = (2e-2 if fp16 else 1e-3) * max(1.0, scale)
    agree = float(np.mean(out.argmax(1) == ref.argmax(1)))
    info = {"max_abs_diff": diff, "max_abs_logit": scale, "tolerance": tol, "argmax_agreement": agree,
            "tile_zyx": list(patch_zyx), "seed": seed, "checked": True}
    if not np.isfinite(diff) or diff > tol:
        fail("ONNX_MISMATCH", f"{path.name}: max |ONNX - PyTorch| = {diff:.3g} > tolerance {tol:.3g}")
    return info


# ----------------------------------------------------------------------------- manifest

def to_zyx(values_transposed, tf):
    """nnU-Net keeps per-axis values in transposed order: value_b[j] belongs to array axis tf[j]."""
    out = [None] * 3
    for j, a in enumerate(tf):
        out[a] = values_transposed[j]
    return out


def build_manifest(args, model_dir, plans, dataset_json, pm, cm, trainer_name, cfg_name, plans_name,
                   mirror_axes_t, norm, labels, label_info, folds, fp16, versions):
    tf = [int(a) for a in plans["transpose_forward"]]
    tb = [int(a) for a in plans["transpose_backward"]]
    c = cm.configuration
    spacing_t = [float(s) for s in c["spacing"]]
    patch_t = [int(p) for p in c["patch_size"]]
    spacing_zyx = to_zyx(spacing_t, tf)
    patch_zyx = to_zyx(patch_t, tf)
    mirror_zyx = sorted(tf[m] for m in mirror_axes_t)
    reader = plans["image_reader_writer"]
    orientation = args.orientation or SUPPORTED_READERS[reader] or "native"
    dk = c["resampling_fn_data_kwargs"]
    lk = c["resampling_fn_probabilities_kwargs"]
    top_norm = {k: v for k, v in norm[0].items() if k in ("kind", "clip", "mean", "std")}
    if norm[0]["kind"] == "zscore_image":
        top_norm["use_mask_for_norm"] = norm[0]["use_mask_for_norm"]
    nn_block = {
        "nnunetv2_version": versions["nnunetv2"],
        "source": {"model_folder": model_dir.name, "dataset_name": plans.get("dataset_name"),
                   "trainer": trainer_name, "plans": plans_name, "configuration": cfg_name,
                   "checkpoint": args.checkpoint},
        "image_reader_writer": reader,
        "array_axes": ["z", "y", "x"],
        "transpose_forward": tf,
        "transpose_backward": tb,
        "transposes_in_onnx": True,
        "spacing": spacing_t,
        "spacing_zyx": spacing_zyx,
        "patch_size": patch_t,
        "patch_size_zyx": patch_zyx,
        "tile_loop_axes_zyx": tf,
        "crop_to_nonzero": True,
        "normalization": norm,
        "resampling": {
            "function": SUPPORTED_RESAMPLING,
            "separate_z_anisotropy_threshold": 3.0,
            "data": {"order": int(dk["order"]), "order_z": int(dk["order_z"]),
                     "force_separate_z": dk.get("force_separate_z")},
            "logits": {"order": int(lk["order"]), "order_z": int(lk["order_z"]),
                       "force_separate_z": lk.get("force_separate_z")},
            "logits_dtype": "float16",
        },
        "padding": {"mode": "constant", "value": 0.0, "below": "d // 2", "above": "d - d // 2"},
        "sliding_window": {"tile_step": 0.5, "rule": "compute_steps_for_sliding_window"},
        "gaussian": {"sigma_scale": 0.125, "value_scaling_factor": 10.0, "dtype": "float16",
                     "cast": "float64 -> float32 -> float16",
                     "zeros": "replaced by the smallest non-zero value after the cast"},
        "accumulator_dtype": "float16",
        "mirroring": {"axes": [int(m) for m in mirror_axes_t], "axes_zyx": mirror_zyx,
                      "combinations": "every non-empty subset of axes, itertools.combinations order",
                      "combine": "mean_logits"},
        "folds": folds,
        "ensemble": "mean_logits",
        "labels": label_info,
        "num_input_channels": 1,
        "channel_names": dataset_json.get("channel_names", dataset_json.get("modality")),
        "postprocessing": None,
        "import": {"date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                   "versions": versions, "fp16": fp16,
                   "plans_sha256": sha256(model_dir / "plans.json"),
                   "dataset_json_sha256": sha256(model_dir / "dataset.json")},
    }
    pp = model_dir / "postprocessing.pkl"
    if pp.is_file():
        nn_block["postprocessing"] = {"file": "postprocessing.pkl", "applied_by_nnUNetPredictor": False,
                                      "note": "nnUNetv2_apply_postprocessing is a separate step; not imported"}
    fold0 = folds[0]
    manifest = {
        "schema_version": 1,
        "pipeline": "nnunet_v2",
        "name": args.name or (plans.get("dataset_name") or model_dir.parent.name),
        "version": args.version,
        "description": args.description or (f"nnU-Net v2 {cfg_name} model ({trainer_name}, {plans_name}), "
                                             f"folds {[f['fold'] for f in folds]}, imported by "
                                             f"models/importers/nnunet/import_nnunet.py"),
        "onnx": {"file": fold0["file"], "sha256": fold0["sha256"], "input": "image", "output": "logits",
                 "dtype": "float16" if fp16 else "float32"},
        "orientation": orientation,
        "spacing_mm": spacing_zyx[::-1],
        "normalization": top_norm,
        "patch_size": patch_zyx,
        "tile_step": 0.5,
        "blending": "gaussian",
        "mirror_axes": mirror_zyx,
        "output_kind": "logits",
        "resample_output": "logits_linear",
        "labels": labels,
        "nnunet": nn_block,
    }
    return manifest


# ----------------------------------------------------------------------------- main

def run(args) -> Path:
    model_dir = Path(args.model_folder).resolve()
    out = Path(args.out).resolve()
    if out.exists() and not args.force:
        fail("OUT_EXISTS", f"{out} exists; pass --force to replace it")
    if not model_dir.is_dir():
        fail("MISSING_PLANS", f"{model_dir} is not a folder (expected <Trainer>__<Plans>__<configuration>)")
    plans_path = model_dir / "plans.json"
    plans = load_json_file(plans_path, "MISSING_PLANS")
    dataset_json = load_json_file(model_dir / "dataset.json", "MISSING_DATASET_JSON")
    if "labels" not in dataset_json:
        fail("MISSING_DATASET_JSON", f"{model_dir / 'dataset.json'}: field 'labels' missing")

    # all checkpoints first: a missing fold fails before any work
    ckpts = []
    for f in args.folds:
        fdir = model_dir / f"fold_{f}"
        if not fdir.is_dir():
            fail("MISSING_FOLD", f"{fdir} not found (folds in {model_dir.name}: "
                                 f"{sorted(p.name for p in model_dir.glob('fold_*')) or 'none'})")
        ckpts.append((f, fdir / args.checkpoint))
    for f, p in ckpts:
        if not p.is_file():
            fail("MISSING_CHECKPOINT", f"{p} not found (present: {sorted(q.name for q in p.parent.glob('*.pth'))})")

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    import nnunetv2
    import onnx
    import onnxruntime as ort
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels

    loaded = [(f, p, load_checkpoint(p)) for f, p in ckpts]
    f0, p0, c0 = loaded[0]
    trainer_name = c0.get("trainer_name")
    init_args = c0.get("init_args") or {}
    cfg_name = init_args.get("configuration")
    folder_trainer, plans_name, folder_cfg = configuration_from_folder(model_dir)
    if trainer_name is None or cfg_name is None:
        fail("MISSING_CHECKPOINT", f"{p0}: 'trainer_name' / 'init_args.configuration' missing")
    if folder_cfg and folder_cfg != cfg_name:
        log(f"warning: folder says configuration '{folder_cfg}', checkpoint says '{cfg_name}'; using the checkpoint")
    if cfg_name == "3d_cascade_fullres":
        fail("CASCADE_UNSUPPORTED", f"{p0}: configuration '3d_cascade_fullres' is a cascade stage")
    plans_name = plans.get("plans_name", plans_name)
    pm, cm = check_plans(plans, cfg_name, plans_path)
    norm = normalization_blocks(pm, cm, dataset_json, plans_path)
    try:
        n_in = determine_num_input_channels(pm, cm, dataset_json)
        label_manager = pm.get_label_manager(dataset_json)
        n_out = label_manager.num_segmentation_heads
    except Exception as e:  # noqa: BLE001
        fail("MISSING_DATASET_JSON", f"{model_dir / 'dataset.json'}: {type(e).__name__}: {e}")
    if n_in != 1 or len(norm) != 1:
        fail("UNSUPPORTED_INPUT", f"{n_in} input channels (dataset.json channel_names); the engine feeds one CT channel")
    meta = json.loads(Path(args.label_meta).read_text()) if args.label_meta else {}
    labels, label_info = label_blocks(label_manager, dataset_json, meta)

    mirror = c0.get("inference_allowed_mirroring_axes")
    mirror = [] if mirror is None else [int(m) for m in mirror]
    for f, p, c in loaded[1:]:
        if c.get("trainer_name") != trainer_name:
            fail("STATE_DICT_MISMATCH", f"{p}: trainer '{c.get('trainer_name')}' differs from fold {f0}'s '{trainer_name}'")
        m = c.get("inference_allowed_mirroring_axes")
        if (list(m) if m is not None else []) != mirror:
            log(f"warning: fold {f} allows mirroring axes {m}, fold {f0} {mirror}; nnUNetPredictor uses the first "
                f"fold's, and so does the package")

    versions = {"nnunetv2": getattr(nnunetv2, "__version__", None) or _dist_version("nnunetv2"),
                "torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": ort.__version__,
                "numpy": np.__version__, "python": sys.version.split()[0]}
    tf = [int(a) for a in plans["transpose_forward"]]
    tb = [int(a) for a in plans["transpose_backward"]]
    patch_zyx = to_zyx([int(p) for p in cm.patch_size], tf)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        folds = []
        for f, p, c in loaded:
            net, _ = build_network(trainer_name, pm, cm, dataset_json, n_in, n_out)
            load_weights(net, c["network_weights"], p)
            net.eval()
            fname = f"fold_{f}.onnx"
            log(f"fold {f}: exporting {p.relative_to(model_dir)} -> {fname}")
            info = export_fold(net, tf, tb, patch_zyx, n_in, tmp / fname, args.fp16, seed=1234 + int(f))
            if info.get("checked"):
                log(f"  ONNX vs PyTorch on a random {patch_zyx} tile: max abs diff {info['max_abs_diff']:.3g} "
                    f"(max |logit| {info['max_abs_logit']:.3g}, argmax agreement {info['argmax_agreement']:.6f})")
            folds.append({"fold": int(f) if str(f).isdigit() else f, "file": fname, "sha256": sha256(tmp / fname),
                          "size_bytes": (tmp / fname).stat().st_size, "checkpoint": f"fold_{f}/{args.checkpoint}",
                          "checkpoint_sha256": sha256(p), "epochs_trained": c.get("current_epoch"),
                          "onnx_check": info})
        manifest = build_manifest(args, model_dir, plans, dataset_json, pm, cm, trainer_name, cfg_name, plans_name,
                                  mirror, norm, labels, label_info, folds, args.fp16, versions)
        (tmp / "model.json").write_text(dumps(manifest) + "\n")
        os.chmod(tmp, 0o755)
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _dist_version(name):
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # noqa: BLE001
        return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="import_nnunet.py", description=__doc__[:__doc__.index("Exit status")].rstrip(),
                                 epilog=__doc__[__doc__.index("Exit status"):],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_folder", help="nnU-Net trained model folder <Trainer>__<Plans>__<configuration>")
    ap.add_argument("--out", required=True, help="package folder to write (atomically)")
    ap.add_argument("--folds", nargs="+", help="folds to include, e.g. 0 1, or all for fold_all (default: every "
                                                "fold_<k> but fold_all holding the checkpoint, as nnUNetPredictor "
                                                "does)")
    ap.add_argument("--checkpoint", default="checkpoint_final.pth", help="checkpoint file name in each fold folder")
    ap.add_argument("--fp16", action="store_true", help="convert each ONNX graph (weights, input, output) to float16")
    ap.add_argument("--name", help="package name (default: the dataset name)")
    ap.add_argument("--version", default="0.1.0", help="package version (default 0.1.0)")
    ap.add_argument("--description", help="free text for the manifest")
    ap.add_argument("--orientation", choices=["native", "LPS", "RAS"],
                    help="axes the training images were stored in (default: native, i.e. nnU-Net's behaviour: the "
                         "array as stored; RAS for NibabelIOWithReorient). See README")
    ap.add_argument("--label-meta", help="JSON {label name: {color, rt_roi_type, largest_component, ...}} merged "
                                         "into the manifest's labels")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--force", action="store_true", help="replace --out if it exists")
    args = ap.parse_args(argv)
    if args.folds is None:
        d = Path(args.model_folder)
        args.folds = sorted((p.name[len("fold_"):] for p in d.glob("fold_*")
                             if p.name != "fold_all" and (p / args.checkpoint).is_file()),
                            key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s))
        if not args.folds:
            print(f"error[MISSING_FOLD]: no fold_<k>/{args.checkpoint} in {d}", file=sys.stderr)
            return EXIT["MISSING_FOLD"]
    args.folds = [str(f) for f in args.folds]
    try:
        out = run(args)
    except ImportFailure as e:
        print(f"error[{e.name}]: {e.message}", file=sys.stderr)
        return EXIT[e.name]
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        print("error[INTERNAL]: unexpected failure (see the traceback above)", file=sys.stderr)
        return 1
    log(f"package -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
