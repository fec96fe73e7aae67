#!/usr/bin/env bash
# Runs on the lent GPU machine after ONNX Runtime's CUDA build is unpacked in ~/ortgpu and its
# libraries are on LD_LIBRARY_PATH (see README.md). Prints one JSON line per run.
set -euo pipefail
cd "$(dirname "$0")/../.."
ORT=${ORT:-$HOME/ortgpu/lib/libonnxruntime.so.1.31.1}
work=$(mktemp -d)
target/release/autocontour phantom "$work/ct-src" --size 512,512,236 --spacing 0.576172,0.576172,1.25 --seed 1 >/dev/null
for dt in float32 float16; do
  python3 benches/gpu/make_unet32m.py "$work/unet-$dt" "$dt"
  for dev in cuda:0 cpu; do
    [ "$dev" = cpu ] && [ "$dt" = float16 ] && continue
    echo "== $dt on $dev"
    AUTOCONTOUR_ORT_LIB=$ORT AUTOCONTOUR_DEVICE=$dev \
      target/release/examples/segment "$work/ct-src/ct" "$work/unet-$dt" "$work/rt-$dt-$dev.dcm" 16
  done
done
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv
