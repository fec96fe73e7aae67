#!/usr/bin/env python3
"""Reference for region-based nnU-Net models: nnunetv2 2.8.1's
LabelManager.convert_logits_to_segmentation (sigmoid, > 0.5, painted in regions_class_order)
on small float16 logits, written to tests/nnunet/unit/regions_{logits,seg}.npy and
regions.json. Run with the fixture's venv (tests/nnunet/make_fixture.sh makes it):

    target/nnunet/venv/bin/python tests/nnunet/make_region_refs.py
"""
import json
from pathlib import Path

import numpy as np
from nnunetv2.utilities.label_handling.label_handling import LabelManager

UNIT = Path(__file__).resolve().parent / "unit"
labels = {"background": 0, "Body": [1, 2, 3], "Lungs": [2, 3], "Tumour": 3}
order = [1, 2, 3]
lm = LabelManager(label_dict=labels, regions_class_order=order)
assert lm.has_regions
rng = np.random.default_rng(7)
logits = (rng.normal(size=(3, 6, 7, 8)) * 3).astype(np.float16)
logits[:, 0, 0, :4] = np.array([0.0, 6e-8, 1.2e-7, 1.8e-7], dtype=np.float16)  # ties near 0.5
seg = np.asarray(lm.convert_logits_to_segmentation(logits)).astype(np.uint8)
np.save(UNIT / "regions_logits.npy", logits)
np.save(UNIT / "regions_seg.npy", seg)
(UNIT / "regions.json").write_text(json.dumps({
    "generator": "tests/nnunet/make_region_refs.py",
    "function": "LabelManager.convert_logits_to_segmentation",
    "label_dict": labels, "regions_class_order": order,
    "logits": "regions_logits.npy", "segmentation": "regions_seg.npy",
}, indent=1) + "\n")
print("labels painted:", {int(v): int((seg == v).sum()) for v in np.unique(seg)})
