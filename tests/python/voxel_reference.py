#!/usr/bin/env python3
"""Independent reference for voxel positions and HU: pydicom + numpy, per file.

    voxel_reference.py SERIES_DIR OUT.json

For every file of the folder (one CT series), writes its SOP Instance UID, Patient Position and,
for a few pixels (i = column, j = row), the patient position computed from that file's own
Image Position/Orientation (Patient) and Pixel Spacing (DICOM PS3.3 C.7.6.2.1.1):

    P = IPP + i * PixelSpacing[1] * row_cosine + j * PixelSpacing[0] * column_cosine

and the HU there (stored value * RescaleSlope + RescaleIntercept). Nothing is sorted: the Rust
test must find each file's slice itself.
"""
import json
import os
import sys

import numpy as np
import pydicom


def main():
    src, out = sys.argv[1], sys.argv[2]
    entries = []
    for name in sorted(os.listdir(src)):
        path = os.path.join(src, name)
        if not os.path.isfile(path):
            continue
        ds = pydicom.dcmread(path, force=True)
        if "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
            # Files without meta (RIDER's) are implicit VR little endian, as read.
            ds.file_meta = getattr(ds, "file_meta", pydicom.dataset.FileMetaDataset())
            ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
        if "PixelData" not in ds:
            continue  # not an image (RIDER's folder holds a LICENSE file)
        rows, cols = int(ds.Rows), int(ds.Columns)
        ipp = np.array([float(v) for v in ds.ImagePositionPatient])
        iop = np.array([float(v) for v in ds.ImageOrientationPatient])
        row_spacing, col_spacing = (float(v) for v in ds.PixelSpacing)
        hu = ds.pixel_array.astype(np.float64) * float(ds.get("RescaleSlope", 1)) + float(
            ds.get("RescaleIntercept", 0))
        voxels = []
        for i, j in [(0, 0), (cols - 1, 0), (0, rows - 1), (123 % cols, 321 % rows),
                     (cols // 2, rows // 2)]:
            p = ipp + i * col_spacing * iop[:3] + j * row_spacing * iop[3:]
            voxels.append({"i": i, "j": j, "patient": p.tolist(), "hu": float(hu[j, i])})
        entries.append({
            "sop_instance_uid": str(ds.SOPInstanceUID),
            "patient_position": str(ds.get("PatientPosition", "")),
            "voxels": voxels,
        })
    with open(out, "w") as f:
        json.dump(entries, f)


if __name__ == "__main__":
    main()
