"""CT series headers for the Python reference scripts (pydicom, no pixel data)."""
import os

import numpy as np
import pydicom


def load_ct(ct_dir):
    """Headers of every image in ct_dir (files without ImagePositionPatient skipped), sorted
    along the slice normal; returns (datasets, ImageOrientationPatient, normal)."""
    dss = []
    for name in sorted(os.listdir(ct_dir)):
        try:
            ds = pydicom.dcmread(os.path.join(ct_dir, name), force=True, stop_before_pixels=True)
        except Exception:
            continue
        if "ImagePositionPatient" in ds:
            dss.append(ds)
    iop = np.array(dss[0].ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    dss.sort(key=lambda d: float(np.dot(normal, np.array(d.ImagePositionPatient, float))))
    return dss, iop, normal
