#!/usr/bin/env bash
# Runs every cargo-fuzz target of the project for a time budget, with seed corpora from the real
# files the tests fetch (the pydicom corpus, RIDER, the nnU-Net fixtures, the model manifests).
#
#   fuzz/run.sh [seconds per target, default 60] [target…]
#   FUZZ_JOBS=2 fuzz/run.sh 3600     # two targets at a time
#   FUZZ_BUILD=0 fuzz/run.sh 3600    # run the binaries already built
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Corpora grow under
# fuzz/corpus/<target>/ and crashes land in fuzz/artifacts/<target>/ (both ignored by git);
# a crash found is fixed and its input kept as a regression test (tests/integration/dicom_rejections.rs).
# Each run ends with libFuzzer's final statistics (executions, coverage).
set -euo pipefail
# Everything runs from main(), read whole before it starts: a long run is not disturbed when this
# file is edited meanwhile.
main() {
  cd "$(dirname "$0")/.."
  budget=${1:-60}
  shift || true
  targets=("$@")
  [ ${#targets[@]} -gt 0 ] || targets=(dicom_file ct_series ct_tree rtstruct nifti manifest capi_buffers grid_math label_round_trip)

  python3 tests/setup/fetch.py pydicom rider >/dev/null
  td=target/testdata
  seed() {
    local t=$1
    shift
    mkdir -p "fuzz/corpus/$t"
    for f in "$@"; do
      [ -f "$f" ] && cp "$f" "fuzz/corpus/$t/seed-$(basename "$f")"
    done
    return 0
  }
  small_dicom=$(find $td/pydicom -name '*.dcm' -size -64k | sort | sed -n 1,40p)
  rider_slice=$(find $td/rider/ct -name '*.dcm' | sort | sed -n 1p)
  # shellcheck disable=SC2086
  seed dicom_file $small_dicom "$rider_slice"
  # ct_series: three slices joined by the target's FF FE FF FE marker
  mkdir -p fuzz/corpus/ct_series
  python3 - "$td/pydicom/CT_small.dcm" fuzz/corpus/ct_series/seed-three-ct-small <<'PY'
import sys
one = open(sys.argv[1], "rb").read()
open(sys.argv[2], "wb").write(b"\xff\xfe\xff\xfe".join([one, one, one]))
PY
  seed ct_series "$td/pydicom/CT_small.dcm" "$td/pydicom/MR_small.dcm" "$td/pydicom/JPEG2000.dcm" \
    "$td/pydicom/MR_small_RLE.dcm" "$td/pydicom/MR_small_jpeg_ls_lossless.dcm"
  seed rtstruct "$td/pydicom/rtstruct.dcm" "$td/rider/rtstruct.dcm"
  # pydicom's rtstruct.dcm (a bare data set) behind a file meta group, in implicit and explicit
  # VR little endian: files the direct RT Structure Set walk reads (the bare one is parsed by
  # dicom-object only)
  python3 - "$td/pydicom/rtstruct.dcm" fuzz/corpus/rtstruct <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
def el(group, elem, vr, value):
    if len(value) % 2:
        value += b"\0"
    if vr in (b"OB", b"UN", b"SQ"):
        return struct.pack("<HH2sHI", group, elem, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", group, elem, vr, len(value)) + value
def meta(ts):
    body = (el(2, 1, b"OB", b"\0\1") + el(2, 2, b"UI", b"1.2.840.10008.5.1.4.1.1.481.3")
            + el(2, 3, b"UI", b"2.25.1") + el(2, 0x10, b"UI", ts))
    return bytes(128) + b"DICM" + el(2, 0, b"UL", struct.pack("<I", len(body))) + body
# implicit VR: the data set as it is
open(sys.argv[2] + "/seed-meta-implicit", "wb").write(meta(b"1.2.840.10008.1.2") + data)
# explicit VR: the same elements with a VR each (every element of this file is text or a
# sequence), walked element by element
SQ = {0x30060010, 0x30060012, 0x30060014, 0x30060016, 0x30060020, 0x30060039, 0x30060040,
      0x30060080, 0x300600A0, 0x300600B0, 0x00081032, 0x00081110, 0x00081115, 0x00081140}
def explicit(b, end):
    out, pos = b"", 0
    while pos < end:
        g, e, n = struct.unpack_from("<HHI", b, pos)
        pos += 8
        if g == 0xFFFE:
            out += struct.pack("<HHI", g, e, n)
            if e == 0xE000 and n != 0xFFFFFFFF:
                inner = explicit(b[pos:pos + n], n)
                out = out[:-4] + struct.pack("<I", len(inner)) + inner
                pos += n
            continue
        tag = (g << 16) | e
        if tag in SQ:
            if n == 0xFFFFFFFF:
                out += struct.pack("<HH2sHI", g, e, b"SQ", 0, n)
            else:
                inner = explicit(b[pos:pos + n], n)
                out += struct.pack("<HH2sHI", g, e, b"SQ", 0, len(inner)) + inner
                pos += n
            continue
        vr = b"DS" if tag == 0x30060050 else b"LO"
        value = b[pos:pos + n]
        pos += n
        if len(value) > 0xFFFF:
            return None
        out += struct.pack("<HH2sH", g, e, vr, len(value)) + value
    return out
ex = explicit(data, len(data))
if ex is not None:
    open(sys.argv[2] + "/seed-meta-explicit", "wb").write(meta(b"1.2.840.10008.1.2.1") + ex)
PY
  seed nifti tests/nnunet/heldout_rule_labels.nii.gz tests/nnunet/ref/fold0_mirror.nii.gz
  seed manifest models/thorax-basic/model.json tests/nnunet/package/model.json
  # capi_buffers: the first byte picks the entry point (0 RTSTRUCT buffer, 1 series builder, 2 masks)
  mkdir -p fuzz/corpus/capi_buffers fuzz/corpus/ct_tree fuzz/corpus/grid_math fuzz/corpus/label_round_trip
  python3 - "$td/pydicom" fuzz/corpus/capi_buffers <<'PY'
import pathlib, struct, sys
src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
rt = (src / "rtstruct.dcm").read_bytes()
ct = (src / "CT_small.dcm").read_bytes()
(out / "seed-rtstruct").write_bytes(b"\x00" + rt)
# the same behind a file meta group (the direct walk's files), made for the rtstruct target
for name in ("seed-meta-implicit", "seed-meta-explicit"):
    made = out.parent / "rtstruct" / name
    if made.exists():
        (out / ("seed-rtstruct-" + name[5:])).write_bytes(b"\x00" + made.read_bytes())
(out / "seed-three-ct-small").write_bytes(b"\x01" + b"\xff\xfe\xff\xfe".join([ct, ct, ct]))
geometry = bytes([8, 8, 4, 0]) + struct.pack("<4d", 1.0, 1.0, 2.5, 1.0)
(out / "seed-masks").write_bytes(b"\x02" + geometry + bytes(256) + bytes([1]) * 256)
PY

  # Build every target once (AddressSanitizer, as cargo fuzz does), then run the binaries, so a
  # long run is not rebuilt between targets. FUZZ_BUILD=0 runs the binaries already built.
  if [ "${FUZZ_BUILD:-1}" != 0 ]; then
    cargo +nightly fuzz build >target/fuzz-build.log 2>&1 || {
      tail -20 target/fuzz-build.log
      exit 3
    }
  fi
  bin=fuzz/target/$(rustc +nightly -vV | sed -n 's/^host: //p')/release

  mkdir -p target/fuzz-logs
  # GNU time, where installed, adds the CPU seconds the target had (a run shares the machine)
  timer=()
  [ -x /usr/bin/time ] && timer=(/usr/bin/time -f "cpu: user_s=%U sys_s=%S wall_s=%e max_rss_kb=%M")
  # One target: libFuzzer with the limits; a crash, leak, timeout (30 s), out-of-memory or an
  # input slower than 10 s (libFuzzer's slow-unit report) is a finding.
  run_one() {
    local t=$1 log=target/fuzz-logs/$1.log slow_before slow_after
    mkdir -p "fuzz/artifacts/$t"
    slow_before=$(find "fuzz/artifacts/$t" -name 'slow-unit-*' | wc -l)
    if ! "${timer[@]}" "$bin/$t" -artifact_prefix="fuzz/artifacts/$t/" \
      -max_total_time="$budget" -max_len=1048576 -rss_limit_mb=4096 -malloc_limit_mb=512 -timeout=30 \
      -report_slow_units=10 -print_final_stats=1 "fuzz/corpus/$t" >"$log" 2>&1; then
      echo "$t: FAILED (crash, leak, timeout or out-of-memory): see $log and fuzz/artifacts/$t/"
      grep -E "^==[0-9]+==|SUMMARY|Test unit written" "$log" | head -20 || true
      return 1
    fi
    slow_after=$(find "fuzz/artifacts/$t" -name 'slow-unit-*' | wc -l)
    echo "$t:"
    grep -E "^#[0-9]+[[:space:]]+DONE|^stat::number_of_executed_units|^stat::peak_rss_mb|^Done|^cpu: " "$log" || true
    if [ "$slow_after" -gt "$slow_before" ]; then
      echo "$t: FAILED: an input ran longer than 10 s (fuzz/artifacts/$t/slow-unit-*)"
      return 1
    fi
  }

  # FUZZ_JOBS targets at once (default 1): a long run on a machine with more cores.
  jobs_max=${FUZZ_JOBS:-1}
  pids=()
  for t in "${targets[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do sleep 1; done
    echo "== $t ($budget s)"
    run_one "$t" >"target/fuzz-logs/$t.summary" 2>&1 &
    pids+=($!)
  done
  status=0
  for k in "${!targets[@]}"; do
    wait "${pids[$k]}" || status=1
    cat "target/fuzz-logs/${targets[$k]}.summary"
  done
  exit $status
}
main "$@"
