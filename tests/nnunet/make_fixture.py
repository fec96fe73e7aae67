#!/usr/bin/env python3
"""Python steps of tests/nnunet/make_fixture.sh (run that script, not this one, unless you know
which step you want). Every step is deterministic given its seed; paths are relative to the
repository root.

    make_fixture.py dataset      --raw target/nnunet/raw          # Dataset901_Thorax (NIfTI)
    make_fixture.py edit-plans   --plans <nnUNetPlans.json>       # tiny network, fixed patch
    make_fixture.py install-trainer   # optional: copy the trainer into nnunetv2 (else nnUNet_extTrainer)
    make_fixture.py refs         --model <trained folder> --ct <held-out.nii.gz> --out tests/nnunet/ref

Dataset901_Thorax
-----------------
Labels 0 background, 1 External, 2 Lung_L, 3 Lung_R (models/training/prepare.py's rule labels;
Trachea is merged into External). Arrays are LPS [z, y, x] (SimpleITK order, identity direction).

Training cases (imagesTr/labelsTr):
- Thorax_000..005: synthetic phantoms (prepare.py:phantom, seed --seed), made on a 4 mm grid
  with different sizes, then resampled to spacing (z, y, x) = (3.5, 3.0, 4.0) mm (image linear,
  labels nearest);
- Thorax_006: RIDER training slab (slices 83..235, i.e. prepare.py's training slab), whole field
  of view, resampled to (3.5, 3.0, 4.0);
- Thorax_007: RIDER slices 120..235, in-plane crop, at (2.5, 2.0, 2.0) mm: a case that nnU-Net's
  preprocessing resamples.
The median spacing (3.5, 3.0, 4.0) becomes the 3d_fullres target spacing. Its largest spacing is
on x (array axis 2), so nnU-Net plans transpose_forward = [2, 0, 1], transpose_backward =
[1, 2, 0]: the fixture exercises a non-trivial transpose on purpose.

Held-out CT (imagesTs/Thorax_900_0000.nii.gz, copied to tests/nnunet/heldout_ct.nii.gz): RIDER's
held-out caudal slab (slices 0..70, never used for training; 15 mm gap to the training slab),
resampled to (z, y, x) = (6.0, 1.5, 1.5) mm, so max/min spacing = 4 > 3 and nnU-Net resamples it
with the separate-z rule (in-plane order 3, then order 0 along the slice axis; logits back with
order 1 in-plane, order 0 along it). Then a band of exact zeros is written on its border (first 4
rows, last 3 columns, last slice) so that crop_to_nonzero really crops. Its rule labels go to
labelsTs/ (for a sanity Dice only).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
TRAIN_SPACING = (3.5, 3.0, 4.0)  # z, y, x (mm); all exactly representable in float32
ALT_SPACING = (2.5, 2.0, 2.0)
HELDOUT_SPACING = (6.0, 1.5, 1.5)
LABELS = {"background": 0, "External": 1, "Lung_L": 2, "Lung_R": 3}


# ----------------------------------------------------------------------------- helpers

def resample(arr: np.ndarray, sp_old, sp_new, order: int) -> np.ndarray:
    """Voxel-centre aligned resampling (align_corners=False), size round(n * s_old / s_new)."""
    from scipy import ndimage

    shape = [max(1, int(round(n * so / sn))) for n, so, sn in zip(arr.shape, sp_old, sp_new)]
    coords = np.meshgrid(*[(np.arange(m) + 0.5) * (sn / so) - 0.5 for m, so, sn in zip(shape, sp_old, sp_new)],
                         indexing="ij")
    return ndimage.map_coordinates(arr.astype(np.float32), coords, order=order, mode="nearest")


def write_nifti(path: Path, arr: np.ndarray, spacing_zyx, origin_xyz=(0.0, 0.0, 0.0)):
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(arr)
    img.SetSpacing([float(s) for s in spacing_zyx[::-1]])
    img.SetOrigin([float(o) for o in origin_xyz])
    sitk.WriteImage(img, str(path), True)


# ----------------------------------------------------------------------------- dataset

def cmd_dataset(args):
    sys.path.insert(0, str(ROOT / "models" / "training"))
    import infer_reference as ref  # noqa: E402
    import prepare  # noqa: E402

    ds = Path(args.raw) / "Dataset901_Thorax"
    if ds.exists():
        shutil.rmtree(ds)
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        (ds / sub).mkdir(parents=True)

    rng = np.random.default_rng(args.seed)
    shapes = [(56, 88, 88), (48, 80, 96), (60, 96, 90), (52, 84, 84), (64, 92, 100), (50, 90, 80)]
    case = 0
    for shape in shapes:
        img, lab = prepare.phantom(rng, shape=shape, sp=4.0)
        lab[lab == 4] = 1
        img = np.clip(resample(img, (4.0,) * 3, TRAIN_SPACING, 1), -3024, 3071)
        lab = resample(lab, (4.0,) * 3, TRAIN_SPACING, 0)
        write_nifti(ds / "imagesTr" / f"Thorax_{case:03d}_0000.nii.gz", np.round(img).astype(np.int16), TRAIN_SPACING)
        write_nifti(ds / "labelsTr" / f"Thorax_{case:03d}.nii.gz", lab.astype(np.uint8), TRAIN_SPACING)
        print(f"phantom {case}: {img.shape}", flush=True)
        case += 1

    hu, geom = ref.load_ct(args.ct)
    hu, sp = ref.to_lps(hu, geom)
    origin = np.asarray(geom["origin"], float)
    lab = prepare.label_ct(hu, sp)
    lab[lab == 4] = 1
    nz = hu.shape[0]
    n_hold = int(round(prepare.HOLDOUT_FRACTION * nz))
    margin = int(np.ceil(prepare.MARGIN_MM / sp[0]))
    print(f"RIDER {hu.shape} spacing {sp}; held-out slices 0..{n_hold - 1}, training from {n_hold + margin}",
          flush=True)

    def crop_case(z0, z1, y0, y1, x0, x1, spacing, name, images, labels):
        h = hu[z0:z1, y0:y1, x0:x1]
        l_ = lab[z0:z1, y0:y1, x0:x1]
        hi = np.clip(np.round(resample(h, sp, spacing, 1)), -3024, 3071).astype(np.int16)
        li = resample(l_, sp, spacing, 0).astype(np.uint8)
        # origin of the first voxel centre of the resampled grid (LPS, identity direction)
        off = [(0.5 * sn / so - 0.5) * so for so, sn in zip(sp, spacing)]  # in mm, z y x
        org = origin + np.array([x0 * sp[2] + off[2], y0 * sp[1] + off[1], z0 * sp[0] + off[0]])
        write_nifti(ds / images / f"{name}_0000.nii.gz", hi, spacing, org)
        write_nifti(ds / labels / f"{name}.nii.gz", li, spacing, org)
        print(f"{name}: {hi.shape} at {spacing}", flush=True)
        return hi, li, org

    ny, nx = hu.shape[1:]
    crop_case(n_hold + margin, nz, 0, ny, 0, nx, TRAIN_SPACING, "Thorax_006", "imagesTr", "labelsTr")
    crop_case(120, nz, 40, ny - 40, 60, nx - 60, ALT_SPACING, "Thorax_007", "imagesTr", "labelsTr")
    hi, li, org = crop_case(0, n_hold, 0, ny, 0, nx, HELDOUT_SPACING, "Thorax_900", "imagesTs", "labelsTs")
    # exact zeros on the border: crop_to_nonzero must crop them away
    hi[:, :4, :] = 0
    hi[:, :, -3:] = 0
    hi[-1, :, :] = 0
    li[:, :4, :] = 0
    li[:, :, -3:] = 0
    li[-1, :, :] = 0
    write_nifti(ds / "imagesTs" / "Thorax_900_0000.nii.gz", hi, HELDOUT_SPACING, org)
    write_nifti(ds / "labelsTs" / "Thorax_900.nii.gz", li, HELDOUT_SPACING, org)

    dataset_json = {
        "channel_names": {"0": "CT"},
        "labels": LABELS,
        "numTraining": case + 2,
        "file_ending": ".nii.gz",
        "name": "Thorax",
        "description": "autocontour nnU-Net test fixture: synthetic phantoms + RIDER Lung CT (CC BY 4.0, TCIA) "
                       "with rule-based labels (models/training/prepare.py)",
        "reference": "tests/nnunet/make_fixture.sh",
        "licence": "CC BY 4.0 (RIDER Lung CT, TCIA, doi:10.7937/k9/tcia.2015.u1x8a5nr)",
    }
    (ds / "dataset.json").write_text(json.dumps(dataset_json, indent=2))
    print(f"dataset -> {ds}")


# ----------------------------------------------------------------------------- plans

def cmd_edit_plans(args):
    """Shrink the 3d_fullres network so that one fold's ONNX is ~1.4 MB and a tile is cheap."""
    p = Path(args.plans)
    plans = json.loads(p.read_text())
    cfg = plans["configurations"]["3d_fullres"]
    tf = plans["transpose_forward"]
    print("planned:", json.dumps({"transpose_forward": tf, "spacing": cfg["spacing"],
                                  "patch_size": cfg["patch_size"], "batch_size": cfg["batch_size"],
                                  "features": cfg["architecture"]["arch_kwargs"]["features_per_stage"]}))
    zyx_patch = (40, 48, 32)  # z, y, x voxels at (3.5, 3.0, 4.0) mm = 140 x 144 x 128 mm
    cfg["patch_size"] = [zyx_patch[a] for a in tf]  # nnU-Net's transposed axis order
    cfg["batch_size"] = 2
    ak = cfg["architecture"]["arch_kwargs"]
    n = 4
    ak["n_stages"] = n
    ak["features_per_stage"] = [8, 16, 32, 64]
    ak["kernel_sizes"] = [[3, 3, 3]] * n
    ak["strides"] = [[1, 1, 1]] + [[2, 2, 2]] * (n - 1)
    ak["n_conv_per_stage"] = [2] * n
    ak["n_conv_per_stage_decoder"] = [2] * (n - 1)
    # other configurations would be planned for the big default network: drop them
    plans["configurations"] = {"3d_fullres": cfg}
    p.write_text(json.dumps(plans, indent=4))
    print("edited:", json.dumps({"patch_size": cfg["patch_size"], "arch": ak["features_per_stage"]}))


def cmd_install_trainer(args):
    import nnunetv2

    dst = Path(nnunetv2.__path__[0]) / "training" / "nnUNetTrainer" / "variants" / "autocontour"
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "__init__.py").write_text("")
    shutil.copy(Path(__file__).parent / "trainers" / "nnUNetTrainer_AcTiny.py", dst / "nnUNetTrainer_AcTiny.py")
    print(f"trainer -> {dst}")


# ----------------------------------------------------------------------------- references

def cmd_refs(args):
    """nnUNetPredictor label maps for the held-out CT, plus intermediate arrays of one run."""
    import torch

    torch.set_num_threads(1)
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = [("fold0_nomirror", (0,), False), ("fold0_mirror", (0,), True),
            ("folds01_nomirror", (0, 1), False), ("folds01_mirror", (0, 1), True)]
    summary = {}
    for name, folds, mirror in runs:
        pred = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=mirror,
                               perform_everything_on_device=False, device=torch.device("cpu"),
                               verbose=False, allow_tqdm=False)
        pred.initialize_from_trained_model_folder(args.model, use_folds=folds, checkpoint_name=args.checkpoint)
        tmp = out / f".{name}"
        tmp.mkdir(exist_ok=True)
        pred.predict_from_files([[args.ct]], [str(tmp / name)], save_probabilities=False, overwrite=True,
                                num_processes_preprocessing=1, num_processes_segmentation_export=1)
        shutil.move(str(tmp / f"{name}.nii.gz"), out / f"{name}.nii.gz")
        shutil.rmtree(tmp)
        import SimpleITK as sitk

        seg = sitk.GetArrayFromImage(sitk.ReadImage(str(out / f"{name}.nii.gz")))
        summary[name] = {"folds": list(folds), "mirroring": mirror,
                         "allowed_mirroring_axes": list(pred.allowed_mirroring_axes or []),
                         "voxels_per_label": {str(k): int((seg == k).sum()) for k in np.unique(seg)}}
        print(name, summary[name], flush=True)

    # intermediate arrays for fold 0 without mirroring, through nnU-Net's own steps
    pred = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False,
                           perform_everything_on_device=False, device=torch.device("cpu"),
                           verbose=False, allow_tqdm=False)
    pred.initialize_from_trained_model_folder(args.model, use_folds=(0,), checkpoint_name=args.checkpoint)
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
    from nnunetv2.inference.export_prediction import convert_predicted_logits_to_segmentation_with_correct_shape

    pp = DefaultPreprocessor(verbose=False)
    data, _, props = pp.run_case([args.ct], None, pred.plans_manager, pred.configuration_manager, pred.dataset_json)
    logits = pred.predict_logits_from_preprocessed_data(torch.from_numpy(data)).cpu().numpy()
    seg = convert_predicted_logits_to_segmentation_with_correct_shape(
        logits, pred.plans_manager, pred.configuration_manager, pred.label_manager, props)
    ref_seg = np.asarray(__import__("SimpleITK").GetArrayFromImage(
        __import__("SimpleITK").ReadImage(str(out / "fold0_nomirror.nii.gz"))))
    assert np.array_equal(seg, ref_seg), "step-by-step run differs from predict_from_files"
    np.savez_compressed(out / "stages_fold0_nomirror.npz",
                        preprocessed=data.astype(np.float32),  # [C, transposed axes], after crop/normalise/resample
                        logits_fp16=logits,  # [K, transposed axes] as nnU-Net holds them (fp16)
                        bbox=np.asarray(props["bbox_used_for_cropping"], np.int64),  # [[lo, hi) per transposed axis]
                        shape_before_cropping=np.asarray(props["shape_before_cropping"], np.int64),
                        shape_after_cropping=np.asarray(props["shape_after_cropping_and_before_resampling"], np.int64),
                        spacing=np.asarray(props["spacing"], np.float64),
                        segmentation=seg.astype(np.uint8))
    summary["stages_fold0_nomirror.npz"] = {
        "preprocessed_shape": list(data.shape), "logits_dtype": str(logits.dtype),
        "bbox_transposed": [list(map(int, b)) for b in props["bbox_used_for_cropping"]],
        "shape_before_cropping_transposed": list(map(int, props["shape_before_cropping"])),
        "shape_after_cropping_transposed": list(map(int, props["shape_after_cropping_and_before_resampling"])),
        "spacing_zyx": list(map(float, props["spacing"])),
    }
    # the README's sliding-window description, run with this PyTorch network, must give nnU-Net's
    # float16 logits bit for bit (spec_check.py runs the same function with onnxruntime)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import spec_check

    tf, tb = pred.plans_manager.transpose_forward, pred.plans_manager.transpose_backward
    net = pred.network.eval()
    net.load_state_dict(pred.list_of_parameters[0])

    class TorchSession:
        def run(self, _names, feed):
            x = torch.from_numpy(np.ascontiguousarray(feed["image"])).permute(0, 1, *[2 + a for a in tf])
            with torch.no_grad():
                y = net(x.contiguous())
            return [y.permute(0, 1, *[2 + a for a in tb]).numpy()]

    zyx = [0, *[1 + b for b in tb]]
    patch = [pred.configuration_manager.patch_size[tf.index(a)] for a in range(3)]
    mine = spec_check.sliding_window(TorchSession(), data.transpose(zyx), patch, tf)
    n_diff = int(np.sum(mine != logits.transpose(zyx)))
    summary["sliding_window_spec_with_torch"] = {"float16_values_differing": n_diff, "of": int(mine.size)}
    print(f"README sliding-window spec with the PyTorch network: {n_diff} of {mine.size} float16 logits differ")
    (out / "summary.json").write_text(json.dumps(summary, indent=1))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("dataset")
    a.add_argument("--raw", default="target/nnunet/raw")
    a.add_argument("--ct", default="target/testdata/rider/ct")
    a.add_argument("--seed", type=int, default=20261127)
    a = sub.add_parser("edit-plans")
    a.add_argument("--plans", required=True)
    sub.add_parser("install-trainer")
    a = sub.add_parser("refs")
    a.add_argument("--model", required=True)
    a.add_argument("--ct", required=True)
    a.add_argument("--out", default="tests/nnunet/ref")
    a.add_argument("--checkpoint", default="checkpoint_final.pth")
    args = ap.parse_args(argv)
    {"dataset": cmd_dataset, "edit-plans": cmd_edit_plans, "install-trainer": cmd_install_trainer,
     "refs": cmd_refs}[args.cmd](args)


if __name__ == "__main__":
    main()
