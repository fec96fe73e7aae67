#!/usr/bin/env python3
"""Independent reader of a binary DICOM SEG (pydicom + numpy) for the RTSTRUCT tests.

    rt_seg_to_raw.py SEG.dcm GRID.json OUT.raw

GRID.json holds the CT grid as autocontour's Geometry (size, origin, spacing, direction). Each
SEG frame is placed by its own Image Position (Patient) projected on the grid axes; frames must
lie on the grid's planes with the grid's in-plane layout. OUT.raw receives one uint8 volume per
segment (segment 1 first), each slice-major `index = (k*rows + j)*cols + i`; segment numbers and
labels are printed as JSON on stdout.
"""
import json
import sys

import numpy as np
import pydicom


def main():
    seg_path, grid_path, out_path = sys.argv[1:4]
    grid = json.load(open(grid_path))
    ni, nj, nk = grid["size"]
    origin = np.array(grid["origin"], float)
    spacing = np.array(grid["spacing"], float)
    d = np.array(grid["direction"], float)  # columns are the i, j, k axes
    ds = pydicom.dcmread(seg_path)
    assert ds.Modality == "SEG", ds.Modality
    assert ds.SegmentationType == "BINARY", ds.SegmentationType
    assert (ds.Rows, ds.Columns) == (nj, ni), (ds.Rows, ds.Columns, ni, nj)
    frames = ds.pixel_array.reshape(int(ds.NumberOfFrames), ds.Rows, ds.Columns)
    segs = [int(s.SegmentNumber) for s in ds.SegmentSequence]
    out = np.zeros((len(segs), nk, nj, ni), np.uint8)
    shared = ds.SharedFunctionalGroupsSequence[0]
    iop = [float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient]
    assert np.allclose(iop[:3], d[:, 0], atol=1e-4) and np.allclose(iop[3:], d[:, 1], atol=1e-4)
    for n, f in enumerate(ds.PerFrameFunctionalGroupsSequence):
        seg = int(f.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        ipp = np.array([float(v) for v in f.PlanePositionSequence[0].ImagePositionPatient])
        idx = d.T @ (ipp - origin) / spacing
        r = np.round(idx)
        assert np.all(np.abs(idx - r) < 0.01), f"frame {n} at {ipp} is off the grid ({idx})"
        assert r[0] == 0 and r[1] == 0, f"frame {n} is shifted in-plane ({idx})"
        k = int(r[2])
        assert 0 <= k < nk, f"frame {n} lies outside the grid (k = {k})"
        out[segs.index(seg), k] |= frames[n].astype(np.uint8)
    out.tofile(out_path)
    print(json.dumps([
        {"number": int(s.SegmentNumber), "label": str(s.SegmentLabel),
         "description": str(getattr(s, "SegmentDescription", ""))}
        for s in ds.SegmentSequence
    ]))


if __name__ == "__main__":
    main()
