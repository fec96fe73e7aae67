#!/usr/bin/env python3
"""Independent read-back of our DICOM SEG (highdicom) and NIfTI label map (nibabel, SimpleITK)
on a real CT, for tests/integration/seg_nifti.rs.

    seg_nifti_rider_check.py SEG CT_DIR NIFTI LABELS.raw

LABELS.raw is our label map (u8, index (k*rows + j)*cols + i, CT slices in order along the
normal); segment n of the SEG must hold label n. Prints JSON:

* highdicom: the SEG decoded per CT instance (get_pixels_by_source_instance, segments combined)
  and as a volume (get_volume: each of its slices on a CT slice, its slice axis in whichever
  direction highdicom chose, rows and columns the CT's), voxels differing from ours;
* nibabel / SimpleITK: voxels differing, and the largest distance (mm) between the point they
  give a voxel (nibabel's RAS affine turned to LPS; SimpleITK's physical point is LPS) and the
  CT's own position of that voxel centre (IPP + i·Δc·row cosine + j·Δr·column cosine).
"""
import json
import sys

import highdicom as hd
import nibabel as nib
import numpy as np
import SimpleITK as sitk

from ct_headers import load_ct


def main():
    seg_path, ct_dir, nii_path, raw_path = sys.argv[1:5]
    cts, iop, normal = load_ct(ct_dir)
    u, v = iop[:3], iop[3:]
    rows, cols, nk = int(cts[0].Rows), int(cts[0].Columns), len(cts)
    dr, dc = float(cts[0].PixelSpacing[0]), float(cts[0].PixelSpacing[1])
    ipps = np.array([np.array(d.ImagePositionPatient, float) for d in cts])
    ours = np.fromfile(raw_path, np.uint8).reshape(nk, rows, cols)

    def ct_point(i, j, k):
        return ipps[k] + i * dc * u + j * dr * v

    out = {}
    seg = hd.seg.segread(seg_path)
    numbers = [int(s.SegmentNumber) for s in seg.SegmentSequence]
    px = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=[d.SOPInstanceUID for d in cts],
        segment_numbers=numbers,
        combine_segments=True,
        assert_missing_frames_are_empty=True,
    )
    vol = seg.get_volume(combine_segments=True)
    arr = np.asarray(vol.array)  # (slice, row, column)
    # Each slice of highdicom's volume must sit on a CT slice (highdicom picks the direction of
    # its slice axis itself), its rows and columns on the CT's.
    origin, step = vol.affine[:3, 3], vol.affine[:3, 0]
    pos = origin[None, :] + np.arange(arr.shape[0])[:, None] * step[None, :]
    dist = np.linalg.norm(pos[:, None, :] - ipps[None, :, :], axis=2)
    ks = dist.argmin(axis=1)
    covered = np.zeros(nk, bool)
    covered[ks] = True
    gap = float(np.median(np.diff(ipps @ normal)))
    out["highdicom"] = {
        "segments": [{"number": n, "label": str(s.SegmentLabel)}
                     for n, s in zip(numbers, seg.SegmentSequence)],
        "frames": int(seg.NumberOfFrames),
        "mismatch": int((px.astype(np.int64) != ours).sum()),
        "volume_shape": list(arr.shape),
        "volume_slice_sign": float(np.sign(np.dot(step, normal))),
        "volume_position_error_mm": float(dist.min(axis=1).max()),
        "volume_axes_error_mm": float(max(
            np.abs(np.abs(np.dot(step, normal)) - gap),
            np.abs(vol.affine[:3, 1] - v * dr).max(),
            np.abs(vol.affine[:3, 2] - u * dc).max())),
        "volume_mismatch": int((arr.astype(np.int64) != ours[ks]).sum())
        + int(ours[~covered].astype(np.int64).sum()),
    }

    samples = [(0, 0, 0), (cols - 1, 0, 0), (0, rows - 1, nk - 1), (cols - 1, rows - 1, nk - 1),
               (cols // 3, rows // 2, nk // 2)]
    img = nib.load(nii_path)
    data = np.asarray(img.dataobj).transpose(2, 1, 0)
    err = 0.0
    for i, j, k in samples:
        ras = img.affine @ np.array([i, j, k, 1.0])
        lps = ras[:3] * np.array([-1.0, -1.0, 1.0])
        err = max(err, float(np.linalg.norm(lps - ct_point(i, j, k))))
    out["nibabel"] = {
        "shape": list(data.shape),
        "mismatch": int((data.astype(np.int64) != ours).sum()) if data.shape == ours.shape
        else -1,
        "max_error_mm": err,
        "sform_code": int(img.header["sform_code"]),
        "qform_code": int(img.header["qform_code"]),
        "qform_sform_max_diff": float(np.abs(img.get_qform() - img.get_sform()).max()),
    }

    s_img = sitk.ReadImage(nii_path)
    s_arr = sitk.GetArrayFromImage(s_img)  # (k, j, i)
    err = 0.0
    for i, j, k in samples:
        p = np.array(s_img.TransformIndexToPhysicalPoint((i, j, k)))
        err = max(err, float(np.linalg.norm(p - ct_point(i, j, k))))
    out["simpleitk"] = {
        "mismatch": int((s_arr.astype(np.int64) != ours).sum()) if s_arr.shape == ours.shape
        else -1,
        "max_error_mm": err,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
