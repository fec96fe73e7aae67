#!/usr/bin/env bash
# The C API from the outside, as a vendor uses it (called by tests/run-all.sh after
# `cargo build --lib --bins`: target/debug/libautocontour.so from capi/, the CLI from cli/):
#
# 1. include/autocontour.h compiles as C99 and C++17, bindings/cpp/autocontour.hpp as C++17,
#    all with -Wall -Wextra -Werror -pedantic;
# 2. examples/c/segment.c under Valgrind memcheck on a synthetic phantom (0 errors, 0 bytes
#    definitely lost), under ASan + UBSan with leak detection (no reports), then on the RIDER CT;
# 3. examples/cpp/segment.cpp built with CMake against a staged SDK prefix (find_package), and
#    the pkg-config file checked;
# 4. examples/csharp/Segment.cs built with Mono's mcs and run with mono;
# 5. the C, C++ and C# RTSTRUCTs compared with the CLI's for the same CT and model: identical
#    apart from UIDs, dates and times.
#
# Needs: cc (gcc, with its ASan/UBSan runtimes), c++, cmake, pkg-config, valgrind, mcs + mono, and target/pyenv (pydicom).
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

echo "-- C sample under AddressSanitizer + UndefinedBehaviorSanitizer (phantom)"
# The C side is instrumented; the Rust library and ONNX Runtime are not, but ASan's allocator and
# LeakSanitizer see their heap too (leaks anywhere, and C-side misuse of library pointers).
cc -std=c99 "${warn[@]}" -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
  -fno-sanitize-recover=undefined -Iinclude examples/c/segment.c -L"$lib" -lautocontour \
  -o "$out/segment_c_asan"
ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  "$out/segment_c_asan" "$out/phantom/ct" "$model" "$out/phantom-c-asan.dcm" "$ort" \
  >"$out/asan.log" 2>&1 || {
  status=$?
  cat "$out/asan.log"
  echo "error: the C sample failed under ASan/UBSan (exit $status)" >&2
  exit 1
}
if grep -qE "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$out/asan.log"; then
  cat "$out/asan.log"
  echo "error: sanitizer reports for the C sample" >&2
  exit 1
fi
echo "no ASan, LSan or UBSan reports"

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
# Byte comparison with what must differ between runs masked: the new UIDs (`2.25.<digits>`, with
# their length field) and the values of the date/time attributes. Parsing ~100 MB RTSTRUCTs
# (random-weight model: many contours) with pydicom takes minutes; this takes seconds.
import re, struct, sys

DATE_TIME_TAGS = [(0x0008, 0x0012), (0x0008, 0x0013), (0x0008, 0x0020), (0x0008, 0x0021),
                  (0x0008, 0x0023), (0x0008, 0x0030), (0x0008, 0x0031), (0x0008, 0x0033),
                  (0x3006, 0x0008), (0x3006, 0x0009)]

def canonical(path):
    data = open(path, "rb").read()
    assert data[128:132] == b"DICM", f"{path}: not a DICOM file"
    # File meta (explicit VR LE): skip its group length, mask its fresh UIDs with their VR and
    # 2-byte length (a `2.25.<decimal>` UID's length varies from run to run).
    (meta_len,) = struct.unpack_from("<I", data, 132 + 8)
    meta, body = data[144:144 + meta_len], data[144 + meta_len:]
    meta = re.sub(rb"(?s)UI..2\.25\.[0-9]+\x00?", b"UI<uid>", meta)
    # Data set (implicit VR LE): mask fresh UIDs with their 4-byte length, and date/time values.
    body = re.sub(rb"(?s).{4}2\.25\.[0-9]+\x00?", b"<uid>", body)
    for g, e in DATE_TIME_TAGS:
        tag = struct.pack("<HH", g, e)
        # Replace length and value by a marker (an element's tag bytes never occur in the
        # decimal strings of ContourData).
        out, pos = [], 0
        for m in re.finditer(re.escape(tag) + rb"(.{4})", body, flags=re.S):
            if m.start() < pos:
                continue
            (n,) = struct.unpack("<I", m.group(1))
            if n > 32:
                continue  # not a date/time element
            out.append(body[pos:m.start()] + tag + b"<dt>")
            pos = m.end() + n
        out.append(body[pos:])
        body = b"".join(out)
    return meta, body

ref_path, *others = sys.argv[1:]
ref = canonical(ref_path)
for p in others:
    got = canonical(p)
    for part, a, b in (("file meta", ref[0], got[0]), ("data set", ref[1], got[1])):
        if a != b:
            i = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
            sys.exit(f"{p} differs from the CLI's {ref_path} in the {part} at byte {i}: "
                     f"{a[max(0, i - 40):i + 40]!r} vs {b[max(0, i - 40):i + 40]!r}")
print(f"identical to the CLI's RTSTRUCT apart from UIDs, dates and times "
      f"({len(ref[1])} bytes compared): {', '.join(others)}")
EOF
echo "ffi samples passed"
