#!/usr/bin/env python3
"""Named errors of models/importers/nnunet/import_nnunet.py, on malformed model folders made here
(no training; well under 30 s on 2 cores once torch is imported).

    target/nnunet/venv/bin/python tests/nnunet/test_import_errors.py [-v]

A valid nnU-Net model folder is synthesised in a temporary directory from the fixture's committed
plans.json and dataset.json (tests/nnunet/model_meta/) plus a checkpoint holding the freshly
initialised weights of nnU-Net's own network for those plans (trainer nnUNetTrainer, so no custom
trainer is needed). Each case breaks one thing and checks: the exit status, the error name in
stderr ("error[NAME]: ..."), that the message names the file or field, and that nothing was
written at --out (and no temporary folder is left beside it). One valid import checks the happy
path. Most cases call import_nnunet.main() in this process (torch is imported once); two run the
real command line in a subprocess to check the process exit status end to end (two cases,
both failing before torch is imported, so they stay fast).
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
META = ROOT / "tests" / "nnunet" / "model_meta"
IMPORTER = ROOT / "models" / "importers" / "nnunet" / "import_nnunet.py"
sys.path.insert(0, str(IMPORTER.parent))
os.environ.setdefault("OMP_NUM_THREADS", "1")
for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
    os.environ.setdefault(k, tempfile.gettempdir())

import import_nnunet as imp  # noqa: E402


def make_checkpoint(plans: dict, dataset_json: dict, path: Path, trainer="nnUNetTrainer", configuration="3d_fullres",
                    arch_override=None):
    import torch
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    torch.manual_seed(0)
    cfg = plans["configurations"]["3d_fullres"]
    arch = copy.deepcopy(arch_override or cfg["architecture"])
    n_out = len([k for k in dataset_json["labels"] if k != "ignore"])
    net = get_network_from_plans(arch["network_class_name"], arch["arch_kwargs"], arch["_kw_requires_import"],
                                 1, n_out, allow_init=True, deep_supervision=False)
    ckpt = {"network_weights": net.state_dict(), "trainer_name": trainer,
            "init_args": {"plans": None, "configuration": configuration, "fold": 0, "dataset_json": None},
            "inference_allowed_mirroring_axes": (1, 2), "current_epoch": 1}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)


class ImportErrors(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="nnunet_import_test_"))
        cls.plans = json.loads((META / "plans.json").read_text())
        cls.dataset = json.loads((META / "dataset.json").read_text())
        cls.good = cls.make_folder("good")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def make_folder(cls, name, plans=None, dataset=None, ckpt_kwargs=None, folds=(0,)):
        d = cls.tmp / name / "nnUNetTrainer__nnUNetPlans__3d_fullres"
        d.mkdir(parents=True)
        plans = cls.plans if plans is None else plans
        dataset = cls.dataset if dataset is None else dataset
        (d / "plans.json").write_text(json.dumps(plans))
        (d / "dataset.json").write_text(json.dumps(dataset))
        for f in folds:
            make_checkpoint(cls.plans, cls.dataset, d / f"fold_{f}" / "checkpoint_final.pth", **(ckpt_kwargs or {}))
        return d

    @classmethod
    def variant(cls, name, edit_plans=None, edit_dataset=None, ckpt_kwargs=None):
        """Copy of the good folder with plans/dataset edited (checkpoint kept or remade)."""
        d = cls.tmp / name / cls.good.name
        shutil.copytree(cls.good, d)
        if edit_plans:
            p = copy.deepcopy(cls.plans)
            edit_plans(p)
            (d / "plans.json").write_text(json.dumps(p))
        if edit_dataset:
            j = copy.deepcopy(cls.dataset)
            edit_dataset(j)
            (d / "dataset.json").write_text(json.dumps(j))
        if ckpt_kwargs:
            make_checkpoint(cls.plans, cls.dataset, d / "fold_0" / "checkpoint_final.pth", **ckpt_kwargs)
        return d

    def run_inproc(self, folder, *extra, out=None):
        out = out or (self.tmp / f"out_{self.id().split('.')[-1]}")
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = imp.main([str(folder), "--out", str(out), *extra])
        return rc, err.getvalue(), out

    def run_cli(self, folder, *extra, out=None):
        out = out or (self.tmp / f"out_{self.id().split('.')[-1]}")
        p = subprocess.run([sys.executable, str(IMPORTER), str(folder), "--out", str(out), *extra],
                           capture_output=True, text=True, timeout=300)
        return p.returncode, p.stderr, out

    def check(self, result, name, *needles, out_existed=False):
        rc, err, out = result
        self.assertEqual(rc, imp.EXIT[name], f"exit {rc}, expected {imp.EXIT[name]} ({name}); stderr: {err}")
        self.assertIn(f"error[{name}]", err)
        for n in needles:
            self.assertIn(n, err, f"message should name {n!r}: {err}")
        if not out_existed:
            self.assertFalse(out.exists(), f"{out} was written")
        leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
        self.assertEqual(leftovers, [], "temporary folder left beside --out")

    # ------------------------------------------------------------------ missing files
    def test_missing_plans(self):
        d = self.variant("no_plans")
        (d / "plans.json").unlink()
        self.check(self.run_cli(d), "MISSING_PLANS", "plans.json")

    def test_plans_not_json(self):
        d = self.variant("bad_plans_json")
        (d / "plans.json").write_text("{not json")
        self.check(self.run_inproc(d), "MISSING_PLANS", "plans.json")

    def test_missing_dataset_json(self):
        d = self.variant("no_dataset")
        (d / "dataset.json").unlink()
        self.check(self.run_inproc(d), "MISSING_DATASET_JSON", "dataset.json")

    def test_missing_fold(self):
        self.check(self.run_cli(self.good, "--folds", "0", "3"), "MISSING_FOLD", "fold_3")

    def test_missing_checkpoint(self):
        d = self.variant("no_ckpt")
        (d / "fold_0" / "checkpoint_final.pth").unlink()
        self.check(self.run_inproc(d, "--folds", "0"), "MISSING_CHECKPOINT", "checkpoint_final.pth")

    def test_checkpoint_other_name(self):
        self.check(self.run_inproc(self.good, "--folds", "0", "--checkpoint", "checkpoint_best.pth"),
                   "MISSING_CHECKPOINT", "checkpoint_best.pth")

    def test_garbage_checkpoint(self):
        d = self.variant("garbage_ckpt")
        (d / "fold_0" / "checkpoint_final.pth").write_bytes(b"\x00not a checkpoint" * 10)
        self.check(self.run_inproc(d), "MISSING_CHECKPOINT", "checkpoint_final.pth")

    # ------------------------------------------------------------------ content errors
    def test_state_dict_mismatch(self):
        def smaller(p):
            p["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]["features_per_stage"] = [8, 16, 32, 48]
        d = self.variant("mismatch", edit_plans=smaller)
        self.check(self.run_inproc(d), "STATE_DICT_MISMATCH", "checkpoint_final.pth", "another shape")

    def test_unknown_normalization(self):
        def norm(p):
            p["configurations"]["3d_fullres"]["normalization_schemes"] = ["RescaleTo01Normalization"]
        self.check(self.run_inproc(self.variant("norm", edit_plans=norm)), "UNSUPPORTED_NORMALIZATION",
                   "RescaleTo01Normalization", "plans.json")

    def test_cascade_configuration(self):
        def cascade(p):
            p["configurations"]["3d_lowres"] = copy.deepcopy(p["configurations"]["3d_fullres"])
            p["configurations"]["3d_lowres"]["next_stage"] = "3d_cascade_fullres"
            p["configurations"]["3d_cascade_fullres"] = {"inherits_from": "3d_fullres", "previous_stage": "3d_lowres"}
        d = self.variant("cascade", edit_plans=cascade, ckpt_kwargs={"configuration": "3d_cascade_fullres"})
        self.check(self.run_inproc(d), "CASCADE_UNSUPPORTED", "3d_cascade_fullres")

    def test_previous_stage_field(self):
        def prev(p):
            p["configurations"]["3d_fullres"]["previous_stage"] = "3d_lowres"
        self.check(self.run_inproc(self.variant("prev", edit_plans=prev)), "CASCADE_UNSUPPORTED", "previous_stage")

    def test_unknown_trainer(self):
        d = self.variant("trainer", ckpt_kwargs={"trainer": "nnUNetTrainer_NotInstalledAnywhere"})
        self.check(self.run_inproc(d), "UNKNOWN_TRAINER", "nnUNetTrainer_NotInstalledAnywhere")

    def test_unknown_network_class(self):
        def arch(p):
            p["configurations"]["3d_fullres"]["architecture"]["network_class_name"] = \
                "dynamic_network_architectures.architectures.unet.NoSuchUNet"
        self.check(self.run_inproc(self.variant("arch", edit_plans=arch)), "UNKNOWN_NETWORK_CLASS", "NoSuchUNet")

    def test_missing_intensity_properties(self):
        def drop(p):
            del p["foreground_intensity_properties_per_channel"]
        self.check(self.run_inproc(self.variant("noprops", edit_plans=drop)), "BAD_PLANS",
                   "foreground_intensity_properties_per_channel")

    def test_missing_patch_size(self):
        def drop(p):
            del p["configurations"]["3d_fullres"]["patch_size"]
        self.check(self.run_inproc(self.variant("nopatch", edit_plans=drop)), "BAD_PLANS", "patch_size")

    def test_unsupported_resampling(self):
        def torchres(p):
            p["configurations"]["3d_fullres"]["resampling_fn_data"] = "resample_torch_fornnunet"
        self.check(self.run_inproc(self.variant("resamp", edit_plans=torchres)), "UNSUPPORTED_RESAMPLING",
                   "resample_torch_fornnunet")

    def test_unsupported_reader(self):
        def reader(p):
            p["image_reader_writer"] = "NaturalImage2DIO"
        self.check(self.run_inproc(self.variant("reader", edit_plans=reader)), "UNSUPPORTED_READER",
                   "NaturalImage2DIO")

    def test_custom_preprocessor(self):
        def pre(p):
            p["configurations"]["3d_fullres"]["preprocessor_name"] = "MyPreprocessor"
        self.check(self.run_inproc(self.variant("pre", edit_plans=pre)), "UNSUPPORTED_COMPONENT", "MyPreprocessor")

    def test_two_channels(self):
        def two(j):
            j["channel_names"] = {"0": "CT", "1": "PET"}
        def two_p(p):
            p["configurations"]["3d_fullres"]["normalization_schemes"] = ["CTNormalization", "ZScoreNormalization"]
            p["configurations"]["3d_fullres"]["use_mask_for_norm"] = [False, False]
            p["foreground_intensity_properties_per_channel"]["1"] = \
                p["foreground_intensity_properties_per_channel"]["0"]
        self.check(self.run_inproc(self.variant("twoch", edit_plans=two_p, edit_dataset=two)), "UNSUPPORTED_INPUT",
                   "input channels")

    def test_out_exists(self):
        out = self.tmp / "already_there"
        out.mkdir()
        (out / "keep.txt").write_text("x")
        self.check(self.run_inproc(self.good, out=out), "OUT_EXISTS", str(out), out_existed=True)
        self.assertEqual(sorted(p.name for p in out.iterdir()), ["keep.txt"])

    # ------------------------------------------------------------------ happy paths
    def test_region_labels(self):
        """Region-based dataset.json: channels are regions, painted in regions_class_order."""
        regions = {"background": 0, "Body": [1, 2, 3], "Lungs": [2, 3], "Lung_R": 3}
        dataset = dict(self.dataset, labels=regions, regions_class_order=[1, 2, 3])
        d = self.tmp / "regions" / self.good.name
        d.mkdir(parents=True)
        (d / "plans.json").write_text(json.dumps(self.plans))
        (d / "dataset.json").write_text(json.dumps(dataset))
        # three heads (one per region) instead of four labels
        make_checkpoint(self.plans, {"labels": {"a": 1, "b": 2, "c": 3}}, d / "fold_0" / "checkpoint_final.pth")
        rc, err, out = self.run_inproc(d)
        self.assertEqual(rc, 0, err)
        m = json.loads((out / "model.json").read_text())
        info = m["nnunet"]["labels"]
        self.assertTrue(info["has_regions"])
        self.assertEqual(info["inference_nonlin"], "sigmoid")
        self.assertEqual(info["regions_class_order"], [1, 2, 3])
        self.assertEqual([r["labels"] for r in info["regions"]], [[1, 2, 3], [2, 3], [3]])
        self.assertEqual([r["name"] for r in info["regions"]], ["Body", "Lungs", "Lung_R"])
        self.assertEqual([(e["index"], e["name"]) for e in m["labels"]],
                         [(0, "Background"), (1, "Body"), (2, "Lungs"), (3, "Lung_R")])

    def test_resenc_import(self):
        """ResidualEncoderUNet (nnU-Net's ResEnc presets) builds, exports and matches PyTorch."""
        plans = copy.deepcopy(self.plans)
        arch = plans["configurations"]["3d_fullres"]["architecture"]
        ak = arch["arch_kwargs"]
        arch["network_class_name"] = "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet"
        ak["n_blocks_per_stage"] = [1, 2, 2, 2]
        del ak["n_conv_per_stage"]
        d = self.tmp / "resenc" / self.good.name
        d.mkdir(parents=True)
        (d / "plans.json").write_text(json.dumps(plans))
        (d / "dataset.json").write_text(json.dumps(self.dataset))
        make_checkpoint(self.plans, self.dataset, d / "fold_0" / "checkpoint_final.pth", arch_override=arch)
        rc, err, out = self.run_inproc(d)
        self.assertEqual(rc, 0, err)
        m = json.loads((out / "model.json").read_text())
        self.assertLess(m["nnunet"]["folds"][0]["onnx_check"]["max_abs_diff"], 1e-3)

    def test_wrong_head_count(self):
        """A checkpoint with another number of output channels than dataset.json implies."""
        d = self.variant("heads")
        make_checkpoint(self.plans, {"labels": {"a": 1, "b": 2}}, d / "fold_0" / "checkpoint_final.pth")
        self.check(self.run_inproc(d), "STATE_DICT_MISMATCH", "another shape")

    def test_valid_import(self):
        rc, err, out = self.run_inproc(self.good, "--folds", "0")
        self.assertEqual(rc, 0, err)
        m = json.loads((out / "model.json").read_text())
        self.assertEqual(m["pipeline"], "nnunet_v2")
        self.assertEqual(m["nnunet"]["folds"][0]["file"], "fold_0.onnx")
        self.assertTrue((out / "fold_0.onnx").is_file())
        self.assertEqual(m["nnunet"]["transpose_forward"], self.plans["transpose_forward"])
        self.assertLess(m["nnunet"]["folds"][0]["onnx_check"]["max_abs_diff"], 1e-3)
        self.assertEqual(sorted(p.name for p in out.iterdir()), ["fold_0.onnx", "model.json"])


if __name__ == "__main__":
    unittest.main()
