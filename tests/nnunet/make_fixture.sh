#!/usr/bin/env bash
# Build the nnU-Net v2 test fixture for autocontour (issue 14) from scratch, on the CPU.
#
#   tests/nnunet/make_fixture.sh [--from STEP] [--to STEP]   # STEP: venv data plan train import refs unit
#
# Everything heavy lives under target/nnunet/ (git-ignored); only small results are copied into
# tests/nnunet/ (committed). Never run in CI: the committed outputs are what the tests use.
#
# Steps:
#   venv    python3 -m venv target/nnunet/venv; pip install -r models/importers/nnunet/requirements.txt
#           (torch's PyPI wheel pulls the nvidia-* wheels, ~3 GB; the venv is ~7.6 GB).
#           The trainer tests/nnunet/trainers/nnUNetTrainer_AcTiny.py is found by nnU-Net through
#           nnUNet_extTrainer (set below); nothing is copied into the installed package.
#   data    python3 tests/setup/fetch.py rider; Dataset901_Thorax -> target/nnunet/raw (~1 min)
#   plan    nnUNetv2_plan_and_preprocess -d 901 --no_pp (fingerprint + plans), then shrink the
#           3d_fullres network/patch in nnUNetPlans.json (make_fixture.py edit-plans), then
#           nnUNetv2_preprocess -d 901 -c 3d_fullres
#   train   nnUNetv2_train 901 3d_fullres {0,1} -tr nnUNetTrainer_AcTiny -device cpu, both folds at once
#           (30 epochs x 20 iterations each, seeded; measured: 84 min wall for both folds on the
#           2-core dev VM at load average 6-8 from other builds, 75 CPU-minutes in all)
#   import  models/importers/nnunet/import_nnunet.py -> tests/nnunet/package (folds 0 and 1);
#           the model's plans.json and dataset.json -> tests/nnunet/model_meta/ (test_import_errors.py)
#   refs    nnUNetPredictor on the held-out CT (fold 0 / folds 0+1, mirroring off / on)
#           -> tests/nnunet/ref/*.nii.gz (+ stages_fold0_nomirror.npz, summary.json)
#   unit    tests/nnunet/make_unit_refs.py -> tests/nnunet/unit/, then tests/nnunet/spec_check.py
#           (numpy/scipy re-implementation vs the references) and tests/nnunet/test_import_errors.py
#
# Reproducibility: the dataset (seed 20261127), the plans edit, the split (nnU-Net's own
# seed 12345) and the trainer's seeds (AC_TRAIN_SEED + fold) are fixed, and data augmentation
# runs in the main process (nnUNet_n_proc_DA=0). torch's CPU kernels may still differ between
# machines/CPU types in the last bits, so the weights are reproducible in method; the committed
# ONNX files are the reference, and refs/unit are regenerated from them by the later steps.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
FROM=venv TO=unit
while [[ $# -gt 0 ]]; do
  case $1 in
    --from) FROM=$2; shift 2 ;;
    --to) TO=$2; shift 2 ;;
    *) echo "usage: $0 [--from STEP] [--to STEP]" >&2; exit 2 ;;
  esac
done
STEPS=(venv data plan train import refs unit)
run_step() {  # run_step NAME: true when NAME lies between --from and --to
  local s seen=0
  for s in "${STEPS[@]}"; do
    [[ $s == "$FROM" ]] && seen=1
    if [[ $s == "$1" ]]; then [[ $seen == 1 ]]; return; fi
    [[ $s == "$TO" ]] && seen=0
  done
  return 1
}

VENV=$ROOT/target/nnunet/venv
PY="nice -n 10 $VENV/bin/python"
export PATH=$VENV/bin:$PATH
export nnUNet_raw=$ROOT/target/nnunet/raw
export nnUNet_preprocessed=$ROOT/target/nnunet/preprocessed
export nnUNet_results=$ROOT/target/nnunet/results
export nnUNet_n_proc_DA=0 nnUNet_def_n_proc=1 nnUNet_compile=f
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
export AC_TRAIN_SEED=20261127
export nnUNet_extTrainer=$ROOT/tests/nnunet/trainers
MODEL=$nnUNet_results/Dataset901_Thorax/nnUNetTrainer_AcTiny__nnUNetPlans__3d_fullres
HELDOUT=$nnUNet_raw/Dataset901_Thorax/imagesTs/Thorax_900_0000.nii.gz

if run_step venv; then
  [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
  nice -n 10 "$VENV/bin/pip" install -q -r models/importers/nnunet/requirements.txt
fi

if run_step data; then
  python3 tests/setup/fetch.py rider
  $PY tests/nnunet/make_fixture.py dataset --raw "$nnUNet_raw" --ct target/testdata/rider/ct
fi

if run_step plan; then
  rm -rf "$nnUNet_preprocessed/Dataset901_Thorax"
  # (the planner calls torch.set_num_threads(nnUNet_n_proc_DA), which fails for 0)
  nnUNet_n_proc_DA=1 nice -n 10 nnUNetv2_plan_and_preprocess -d 901 --verify_dataset_integrity --no_pp -npfp 1
  $PY tests/nnunet/make_fixture.py edit-plans --plans "$nnUNet_preprocessed/Dataset901_Thorax/nnUNetPlans.json"
  nice -n 10 nnUNetv2_preprocess -d 901 -c 3d_fullres -np 1
fi

if run_step train; then
  rm -rf "$MODEL"
  # the two folds in parallel, one thread each (2 cores); logs in target/nnunet/train_fold<k>.log
  pids=()
  for fold in 0 1; do
    nice -n 10 nnUNetv2_train 901 3d_fullres $fold -tr nnUNetTrainer_AcTiny -device cpu \
      > "$ROOT/target/nnunet/train_fold$fold.log" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || { echo "training failed, see target/nnunet/train_fold*.log" >&2; exit 1; }; done
fi

if run_step import; then
  rm -rf tests/nnunet/package
  mkdir -p tests/nnunet/model_meta
  cp "$MODEL/plans.json" "$MODEL/dataset.json" tests/nnunet/model_meta/
  $PY models/importers/nnunet/import_nnunet.py "$MODEL" --out tests/nnunet/package --folds 0 1 \
    --name nnunet-thorax-fixture --version 0.1.0 --label-meta tests/nnunet/label_meta.json
  # fold 0 exported as a float16 graph (--fp16): the engine's float16 input/output path
  $PY models/importers/nnunet/import_nnunet.py "$MODEL" --out tests/nnunet/package_fp16 --folds 0 --fp16 \
    --name nnunet-thorax-fixture-fp16 --version 0.1.0 --label-meta tests/nnunet/label_meta.json --force
fi

if run_step refs; then
  cp "$HELDOUT" tests/nnunet/heldout_ct.nii.gz
  cp "$nnUNet_raw/Dataset901_Thorax/labelsTs/Thorax_900.nii.gz" tests/nnunet/heldout_rule_labels.nii.gz
  rm -rf tests/nnunet/ref
  $PY tests/nnunet/make_fixture.py refs --model "$MODEL" --ct "$ROOT/tests/nnunet/heldout_ct.nii.gz" --out tests/nnunet/ref
fi

if run_step unit; then
  $PY tests/nnunet/make_unit_refs.py --out tests/nnunet/unit
  $PY tests/nnunet/spec_check.py
  $PY tests/nnunet/test_import_errors.py
fi
echo "fixture done"
