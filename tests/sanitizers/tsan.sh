#!/usr/bin/env bash
# The C API's concurrency stress test under ThreadSanitizer.
#
#   tests/sanitizers/tsan.sh
#
# Builds the C library (`autocontour-capi`) and the ABI tests with `-Zsanitizer=thread` on the
# nightly toolchain, with the standard library rebuilt instrumented (`-Zbuild-std`, needs the
# nightly `rust-src` component), into target/tsan/, then runs the `stress` case of
# capi/abi-tests/tests/ffi.rs: 8 threads over two engines and three models, one series, results
# read by all threads at once and freed by threads other than their makers, runs cancelled from
# other threads, a model and an engine freed while threads use them, and the log callback called
# from every thread. ONNX Runtime is not instrumented (it runs with one intra-op thread, on the
# calling thread, under the library's per-session lock). Any data race report fails the run
# (`halt_on_error=1`, exit 66).
#
# Needs: the nightly toolchain with rust-src, libclang (bindgen, as for the ABI tests), ONNX
# Runtime from `python3 tests/setup/fetch.py ort`.
set -euo pipefail
cd "$(dirname "$0")/../.."
host=$(rustc +nightly -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Zsanitizer=thread"
export RUSTDOCFLAGS="-Zsanitizer=thread"
export CARGO_INCREMENTAL=0
export AUTOCONTOUR_ORT_LIB=${AUTOCONTOUR_ORT_LIB:-$PWD/target/onnxruntime/libonnxruntime.so.1.31.1}
python3 tests/setup/fetch.py ort >/dev/null
build=(-Zbuild-std --target "$host" --target-dir target/tsan)
echo "-- building the C library and the ABI tests with ThreadSanitizer (target/tsan)"
cargo +nightly build "${build[@]}" -p autocontour-capi --lib
# The test executable holds the ThreadSanitizer runtime; the library it loads with dlopen finds
# the runtime's symbols only when the executable exports them (-rdynamic on its link alone).
cargo +nightly rustc "${build[@]}" -p autocontour-abi-tests --test ffi --profile test -- -C link-arg=-rdynamic
exe=$(ls -t target/tsan/"$host"/debug/deps/ffi-* | grep -v '\.d$' | head -1)
echo "-- stress case under ThreadSanitizer: $exe"
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/tests/sanitizers/tsan.supp ${TSAN_OPTIONS:-}" AC_FFI_CASE=stress \
  "$exe" --exact child_case --ignored --nocapture --test-threads=1
