#!/usr/bin/env python3
"""Independent reference for decoded pixel data: pydicom (with pylibjpeg-libjpeg, -openjpeg, -rle).

    pixel_reference.py OUT_DIR DIR_OR_FILE...

For every DICOM file with pixel data and one sample per pixel that pydicom can decode, writes the
stored values (before Rescale Slope/Intercept; all frames) as little-endian float64 to
OUT_DIR/<n>.f64 and lists each file in OUT_DIR/manifest.json with its transfer syntax, modality,
shape and status ("decoded", or why not). tests/integration/dicom_pixels.rs compares its own decoder with it.
"""
import json
import os
import sys

import numpy as np
import pydicom


def files_of(args):
    for a in args:
        if os.path.isdir(a):
            for name in sorted(os.listdir(a)):
                p = os.path.join(a, name)
                if os.path.isfile(p):
                    yield p
        else:
            yield a


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    entries = []
    for n, path in enumerate(files_of(sys.argv[2:])):
        e = {"path": os.path.abspath(path)}
        entries.append(e)
        try:
            ds = pydicom.dcmread(path, force=True)
        except Exception as err:  # noqa: BLE001 - any parse failure is a skip reason
            e["status"] = f"not readable by pydicom: {err}"
            continue
        if "PixelData" not in ds:
            e["status"] = "no pixel data"
            continue
        meta = getattr(ds, "file_meta", None)
        e["transfer_syntax"] = str(getattr(meta, "TransferSyntaxUID", "")) if meta else ""
        e["modality"] = str(ds.get("Modality", ""))
        spp = int(ds.get("SamplesPerPixel", 1))
        if spp != 1:
            e["status"] = f"{spp} samples per pixel"
            continue
        try:
            arr = ds.pixel_array
        except Exception as err:  # noqa: BLE001
            e["status"] = f"pydicom cannot decode: {type(err).__name__}: {err}"
            continue
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        rows, cols = int(ds.Rows), int(ds.Columns)
        arr = np.asarray(arr).reshape(frames, rows, cols)
        e.update(status="decoded", frames=frames, rows=rows, cols=cols,
                 data=f"{n}.f64", dtype=str(arr.dtype))
        arr.astype("<f8").tofile(os.path.join(out, f"{n}.f64"))
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(entries, f, indent=1)


if __name__ == "__main__":
    main()
