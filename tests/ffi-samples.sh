#!/usr/bin/env bash
# The C API from the outside, as a vendor uses it (called by tests/run-all.sh after
# `cargo build --lib` and `cargo build --bin autocontour`):
#
# 1. include/autocontour.h compiles as C99 and C++17, bindings/cpp/autocontour.hpp as C++17,
#    all with -Wall -Wextra -Werror -pedantic;
# 2. examples/c/segment.c under Valgrind memcheck on a synthetic phantom (0 errors, 0 bytes
#    definitely lost), then on the RIDER CT;
# 3. examples/cpp/segment.cpp built with CMake against a staged SDK prefix (find_package), and
#    the pkg-config file checked;
# 4. examples/csharp/Segment.cs built with Mono's mcs and run with mono;
# 5. the C, C++ and C# RTSTRUCTs compared with the CLI's for the same CT and model: identical
#    apart from UIDs, dates and times.
#
# Needs: cc, c++, cmake, pkg-config, valgrind, mcs + mono, and target/pyenv (pydicom).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
tdir=${CARGO_TARGET_DIR:-$root/target}
case "$tdir" in /*) ;; *) tdir="$root/$tdir" ;; esac
lib="$tdir/debug"
out="$tdir/ffi-samples"
ort="${AUTOCONTOUR_ORT_LIB:-$root/target/onnxruntime/libonnxruntime.so.1.31.1}"
ct="$root/target/testdata/rider/ct"
model="$root/models/test/tiny-unet"
warn=(-Wall -Wextra -Werror -pedantic)
rm -rf "$out"
mkdir -p "$out"
export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

echo "-- header: C99 and C++17"
cc -std=c99 "${warn[@]}" -Iinclude -x c -fsyntax-only include/autocontour.h
c++ -std=c++17 "${warn[@]}" -Iinclude -x c++ -fsyntax-only include/autocontour.h
c++ -std=c++17 "${warn[@]}" -Iinclude -Ibindings/cpp -x c++ -fsyntax-only bindings/cpp/autocontour.hpp

echo "-- C sample under Valgrind (synthetic phantom, 64 x 64 x 40)"
cc -std=c99 "${warn[@]}" -g -Iinclude examples/c/segment.c -L"$lib" -lautocontour \
  -o "$out/segment_c"
"$tdir/debug/autocontour" phantom "$out/phantom" --seed ffi-samples >/dev/null
valgrind --tool=memcheck --error-exitcode=99 --leak-check=full \
  --errors-for-leak-kinds=definite --show-leak-kinds=definite \
  --suppressions=tests/valgrind.supp --log-file="$out/valgrind.log" \
  "$out/segment_c" "$out/phantom/ct" "$model" "$out/phantom-c.dcm" "$ort" >/dev/null || {
  status=$?
  cat "$out/valgrind.log"
  echo "error: the C sample failed under Valgrind (exit $status)" >&2
  exit 1
}
grep -E "ERROR SUMMARY|definitely lost|All heap blocks" "$out/valgrind.log"
grep -q "ERROR SUMMARY: 0 errors" "$out/valgrind.log"

echo "-- C sample on the RIDER CT"
"$out/segment_c" "$ct" "$model" "$out/rider-c.dcm" "$ort"

echo "-- C++ sample (CMake, find_package(autocontour CONFIG))"
bindings/cpp/stage-sdk.sh "$lib" "$out/sdk"
PKG_CONFIG_PATH="$out/sdk/lib/pkgconfig" pkg-config --cflags --libs autocontour
c++ -std=c++17 "${warn[@]}" $(PKG_CONFIG_PATH="$out/sdk/lib/pkgconfig" pkg-config --cflags autocontour) \
  -fsyntax-only examples/cpp/segment.cpp
cmake -S examples/cpp -B "$out/cpp-build" -DCMAKE_PREFIX_PATH="$out/sdk" \
  -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$out/cpp-build" -j 2 >/dev/null
"$out/cpp-build/segment_cpp" "$ct" "$model" "$out/rider-cpp.dcm" "$ort"

echo "-- C# sample (mcs + mono)"
mcs -nologo -warnaserror -target:library -doc:"$out/Autocontour.xml" \
  -out:"$out/Autocontour.dll" bindings/csharp/Autocontour.cs
mcs -nologo -warnaserror -r:"$out/Autocontour.dll" -out:"$out/segment.exe" \
  examples/csharp/Segment.cs
mono "$out/segment.exe" "$ct" "$model" "$out/rider-cs.dcm" "$ort"

echo "-- CLI on the same CT"
"$tdir/debug/autocontour" --ort-lib "$ort" segment "$ct" --model "$model" --out "$out/cli" \
  --no-preview >/dev/null

echo "-- RTSTRUCTs identical apart from UIDs, dates and times"
python - "$out/cli/rtstruct.dcm" "$out/rider-c.dcm" "$out/rider-cpp.dcm" "$out/rider-cs.dcm" <<'EOF'
import sys
import pydicom

def canonical(path):
    ds = pydicom.dcmread(path)
    # Everything that must differ between runs: new UIDs (not the referenced CT's), dates, times.
    fresh = {ds.SOPInstanceUID, ds.SeriesInstanceUID, ds.file_meta.MediaStorageSOPInstanceUID}
    def blank(d):
        for el in d:
            if el.VR == "SQ":
                for item in el.value:
                    blank(item)
            elif el.VR in ("DA", "TM", "DT"):
                el.value = ""
            elif el.VR == "UI" and el.value in fresh:
                el.value = "1.2.3"
    blank(ds)
    blank(ds.file_meta)
    return ds

ref_path, *others = sys.argv[1:]
ref = canonical(ref_path)
n_contours = sum(len(r.ContourSequence) for r in ref.ROIContourSequence if "ContourSequence" in r)
for p in others:
    ds = canonical(p)
    if ds != ref or ds.file_meta != ref.file_meta:
        diff = [e.keyword for e in ref if e.tag not in ds or ds[e.tag] != e]
        sys.exit(f"{p} differs from the CLI's {ref_path}: {diff}")
print(f"identical to the CLI's RTSTRUCT ({len(ref.StructureSetROISequence)} ROIs, "
      f"{n_contours} contours): {', '.join(others)}")
EOF
echo "ffi samples passed"
