"""Independent read-back of our DICOM SEG (pydicom) and NIfTI label map (SimpleITK).

usage: seg_nifti_check.py SEG CT_DIR NIFTI OUT_DIR

Writes OUT_DIR/seg_labels.raw and OUT_DIR/nifti_labels.raw (u8, index (k*rows+j)*cols+i, CT
slice order by position along the normal), and prints JSON with what was checked: every frame's
Source Image is the CT slice at the frame's Image Position (Patient), and SimpleITK's physical
point (LPS) of voxels of the NIfTI file.
"""
import json
import os
import sys

import numpy as np
import pydicom
import SimpleITK as sitk

seg_path, ct_dir, nii_path, out = sys.argv[1:5]
cts = []
for name in sorted(os.listdir(ct_dir)):
    ds = pydicom.dcmread(os.path.join(ct_dir, name), stop_before_pixels=True)
    cts.append(ds)
iop = np.array(cts[0].ImageOrientationPatient, float)
normal = np.cross(iop[:3], iop[3:])
cts.sort(key=lambda d: float(np.dot(normal, np.array(d.ImagePositionPatient, float))))
by_uid = {d.SOPInstanceUID: k for k, d in enumerate(cts)}
rows, cols = int(cts[0].Rows), int(cts[0].Columns)

seg = pydicom.dcmread(seg_path)
assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4", seg.SOPClassUID
assert seg.Modality == "SEG" and seg.SegmentationType == "BINARY"
assert seg.FrameOfReferenceUID == cts[0].FrameOfReferenceUID
assert seg.StudyInstanceUID == cts[0].StudyInstanceUID
assert seg.PatientID == cts[0].PatientID
shared = seg.SharedFunctionalGroupsSequence[0]
assert np.allclose(
    np.array(shared.PlaneOrientationSequence[0].ImageOrientationPatient, float), iop, atol=1e-4
)
frames = seg.pixel_array.reshape(int(seg.NumberOfFrames), rows, cols)
number_to_label = {}
segments = []
for s in seg.SegmentSequence:
    assert s.SegmentAlgorithmType == "AUTOMATIC"
    segments.append({"number": int(s.SegmentNumber), "label": s.SegmentLabel,
                     "lab": [int(v) for v in s.RecommendedDisplayCIELabValue]})
labels = np.zeros((len(cts), rows, cols), np.uint8)
bad = 0
for f, pf in enumerate(seg.PerFrameFunctionalGroupsSequence):
    src = pf.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
    k = by_uid[src]
    ipp = np.array(pf.PlanePositionSequence[0].ImagePositionPatient, float)
    if not np.allclose(ipp, np.array(cts[k].ImagePositionPatient, float), atol=1e-3):
        bad += 1
    n = int(pf.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
    labels[k][frames[f] != 0] = n
labels.tofile(os.path.join(out, "seg_labels.raw"))

img = sitk.ReadImage(nii_path)
arr = sitk.GetArrayFromImage(img)  # (k, j, i)
arr.astype(np.uint8).tofile(os.path.join(out, "nifti_labels.raw"))
points = {}
for idx in [(0, 0, 0), (3, 5, 2), (img.GetSize()[0] - 1, img.GetSize()[1] - 1, img.GetSize()[2] - 1)]:
    points["%d,%d,%d" % idx] = list(img.TransformIndexToPhysicalPoint(idx))
print(json.dumps({"frames": int(seg.NumberOfFrames), "segments": segments, "bad_positions": bad,
                  "nifti_size": list(img.GetSize()), "nifti_lps": points}))
