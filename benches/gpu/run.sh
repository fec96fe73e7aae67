#!/usr/bin/env bash
# Runs on the lent GPU machine after ONNX Runtime's CUDA build is unpacked in ~/ortgpu and its
# libraries are on LD_LIBRARY_PATH (see README.md). For float32 and float16: writes the model
# (traced on CUDA, seconds), then segments a RIDER-sized phantom CT three times in one process
# with the CUDA provider (run 0 includes cuDNN's warm-up; runs 1-2 are the steady state) and
# prints one JSON line per run. No CPU run: at ~1.3 TFLOP per 128^3 patch and 147 patches it
# would take minutes of the device budget (a 128^3 patch takes 5 s on 2 cores of the dev VM).
set -euo pipefail
cd "$(dirname "$0")/../.."
ORT=${ORT:-$HOME/ortgpu/lib/libonnxruntime.so.1.31.1}
BIN=${BIN:-target/gpu}   # stripped copies of the release binaries (README.md, step 1)
# Dry run on a machine without a GPU: DEVICE=cpu SIZE=128,128,40 ORT=<CPU libonnxruntime>
DEVICE=${DEVICE:-cuda:0}
SIZE=${SIZE:-512,512,236}
smi() { if command -v nvidia-smi >/dev/null; then nvidia-smi "$@"; fi; }
work=$(mktemp -d)
smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
t0=$(date +%s)
"$BIN/autocontour" phantom "$work/ct-src" --size "$SIZE" --spacing 0.576172,0.576172,1.25 --seed 1 >/dev/null
echo "phantom written in $(( $(date +%s) - t0 )) s"
for dt in float16 float32; do
  python3 benches/gpu/make_unet32m.py "$work/unet-$dt" "$dt" 2>&1 | grep -v -i warn || true
  echo "== $dt on $DEVICE"
  AUTOCONTOUR_ORT_LIB=$ORT AUTOCONTOUR_DEVICE=$DEVICE AUTOCONTOUR_REPEAT=3 \
    timeout 150 "$BIN/segment" "$work/ct-src/ct" "$work/unet-$dt" "$work/rt-$dt.dcm" 16 \
    || echo "segment failed or timed out (rc $?)"
done
smi --query-gpu=name,memory.used,memory.total --format=csv
