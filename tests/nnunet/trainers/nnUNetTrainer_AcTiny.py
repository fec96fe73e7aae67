"""A short nnU-Net v2 trainer for the autocontour test fixture (tests/nnunet/make_fixture.sh).

nnU-Net 2.8.1 finds trainers by class name inside its own package (nnunetv2/training/nnUNetTrainer/,
searched recursively by nnunetv2.utilities.find_objects.recursive_find_trainer_class_by_name) and,
when not found there, in the folders listed in the environment variable nnUNet_extTrainer
(os.pathsep-separated; new in 2.x). make_fixture.sh sets nnUNet_extTrainer=<repo>/tests/nnunet/trainers
(this folder holds nothing else, because every module in it is imported during the search).
The alternative is to copy this file into <site-packages>/nnunetv2/training/nnUNetTrainer/
(`make_fixture.py install-trainer` does that). Inference (nnUNetPredictor, and the importer, which
builds the network through the trainer's build_network_architecture) needs the class too.

What differs from nnUNetTrainer:
- 30 epochs of 20 iterations (nnUNetTrainer: 1000 x 250; override with AC_TRAIN_EPOCHS /
  AC_TRAIN_ITERS), 2 validation iterations per epoch,
  initial learning rate 1e-2 as nnUNetTrainer (poly schedule over the 30 epochs);
- light data augmentation: random mirroring along the allowed axes only (no rotation, scaling,
  elastic deformation, noise, blur, intensity or low-resolution transforms), patches cropped at
  the patch size. nnU-Net's full augmentation costs about a second of CPU per batch here, which
  on a 2-core machine shared with Rust builds made 600 iterations take hours; this is a test
  fixture, not a clinical model;
- seeded (numpy, torch, random) from AC_TRAIN_SEED (default 20261127) + fold;
- test-time mirroring only along the axes that are not the patient's left-right axis: the
  fixture's labels are lateralised (Lung_L / Lung_R), and mirroring left-right during training
  would teach the network the opposite side's label. The left-right axis is the SimpleITK x axis
  (array axis 2 before nnU-Net's transpose_forward); after the transpose it sits at
  transpose_forward.index(2). Data augmentation mirrors along the same allowed axes only.
"""
import os
import random
from typing import List, Tuple

import numpy as np
import torch
from batchgeneratorsv2.transforms.spatial.mirroring import MirrorTransform
from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer


class nnUNetTrainer_AcTiny(nnUNetTrainer):
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        seed = int(os.environ.get('AC_TRAIN_SEED', '20261127')) + int(fold if fold != 'all' else 99)
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = int(os.environ.get('AC_TRAIN_EPOCHS', '30'))
        self.num_iterations_per_epoch = int(os.environ.get('AC_TRAIN_ITERS', '20'))
        self.num_val_iterations_per_epoch = 2
        self.save_every = 1000  # only checkpoint_final.pth (and checkpoint_best.pth) are written

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        rotation_for_DA, do_dummy_2d_data_aug, initial_patch_size, mirror_axes = \
            super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        lr_axis = list(self.plans_manager.transpose_forward).index(2)
        mirror_axes = tuple(a for a in mirror_axes if a != lr_axis)
        self.inference_allowed_mirroring_axes = mirror_axes
        self.print_to_log_file(f'mirror axes (no left-right): {mirror_axes}')
        initial_patch_size = self.configuration_manager.patch_size  # no spatial augmentation margin
        return rotation_for_DA, do_dummy_2d_data_aug, initial_patch_size, mirror_axes

    @staticmethod
    def get_training_transforms(patch_size, rotation_for_DA, deep_supervision_scales, mirror_axes: Tuple[int, ...],
                                do_dummy_2d_data_aug: bool, use_mask_for_norm: List[bool] = None,
                                is_cascaded: bool = False, foreground_labels=None, regions=None,
                                ignore_label: int = None):
        rest = nnUNetTrainer.get_validation_transforms(deep_supervision_scales, is_cascaded, foreground_labels,
                                                       regions, ignore_label)
        transforms = [MirrorTransform(allowed_axes=mirror_axes)] if mirror_axes else []
        return ComposeTransforms(transforms + list(rest.transforms))
