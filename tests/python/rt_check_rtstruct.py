#!/usr/bin/env python3
"""Independent checks of an RT Structure Set with pydicom, for the RTSTRUCT tests.

    rt_check_rtstruct.py RTSTRUCT.dcm CT_DIR

Reads the file and the CT series with pydicom and prints a JSON summary; exits non-zero (with
the reason) when the file breaks a rule: not Implicit VR Little Endian, bytes after the last
element, a DS value longer than 16 characters, a Contour Image Sequence that does not list
every CT instance, a contour whose referenced image is not a CT slice or lies off the contour's
plane by more than half a slice, an ROI without an observation, or ROI numbers that do not match.
"""
import json
import os
import sys

import pydicom
from pydicom.filereader import data_element_generator


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def main():
    path, ct_dir = sys.argv[1:3]
    ds = pydicom.dcmread(path)
    if ds.file_meta.TransferSyntaxUID != "1.2.840.10008.1.2":
        fail(f"transfer syntax {ds.file_meta.TransferSyntaxUID}")
    # No trailing bytes: walking the top-level elements ends exactly at the end of the file.
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        pydicom.filereader.read_preamble(f, False)
        pydicom.filereader._read_file_meta_info(f)  # explicit VR LE group 0002
        last = None
        for el in data_element_generator(f, True, True):
            if last is not None and el.tag <= last:
                fail(f"element {el.tag} after {last}: not ascending (trailing garbage?)")
            last = el.tag
        if f.tell() != size:
            fail(f"{size - f.tell()} bytes after the last element")
    ct = {}
    for name in sorted(os.listdir(ct_dir)):
        try:
            c = pydicom.dcmread(os.path.join(ct_dir, name), stop_before_pixels=True)
        except pydicom.errors.InvalidDicomError:
            continue  # LICENSE and other non-DICOM files
        if c.get("Modality") == "CT":
            ct[c.SOPInstanceUID] = c
    first = next(iter(ct.values()))
    normal = [
        first.ImageOrientationPatient[1] * first.ImageOrientationPatient[5]
        - first.ImageOrientationPatient[2] * first.ImageOrientationPatient[4],
        first.ImageOrientationPatient[2] * first.ImageOrientationPatient[3]
        - first.ImageOrientationPatient[0] * first.ImageOrientationPatient[5],
        first.ImageOrientationPatient[0] * first.ImageOrientationPatient[4]
        - first.ImageOrientationPatient[1] * first.ImageOrientationPatient[3],
    ]
    pos = {u: sum(float(a) * b for a, b in zip(c.ImagePositionPatient, normal)) for u, c in ct.items()}
    gaps = sorted(pos.values())
    half = min(b - a for a, b in zip(gaps, gaps[1:])) / 2 if len(gaps) > 1 else 1.0

    if ds.Modality != "RTSTRUCT" or ds.SOPClassUID != "1.2.840.10008.5.1.4.1.1.481.3":
        fail("not an RT Structure Set")
    for kw in ("PatientName", "PatientID", "StudyInstanceUID"):
        if str(getattr(ds, kw, "")) != str(getattr(first, kw, "")):
            fail(f"{kw} not copied from the CT")
    ref = ds.ReferencedFrameOfReferenceSequence[0]
    if ref.FrameOfReferenceUID != first.FrameOfReferenceUID:
        fail("frame of reference differs from the CT")
    series = ref.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    if series.SeriesInstanceUID != first.SeriesInstanceUID:
        fail("referenced series is not the CT")
    listed = {i.ReferencedSOPInstanceUID for i in series.ContourImageSequence}
    if listed != set(ct):
        fail(f"Contour Image Sequence lists {len(listed)} instances, the CT has {len(ct)}")
    numbers = [int(r.ROINumber) for r in ds.StructureSetROISequence]
    if [int(r.ReferencedROINumber) for r in ds.ROIContourSequence] != numbers:
        fail("ROI Contour Sequence does not follow the ROI numbers")
    if sorted(int(o.ReferencedROINumber) for o in ds.RTROIObservationsSequence) != sorted(numbers):
        fail("RT ROI Observations do not cover every ROI")
    rois = []
    for s, rc, ob in zip(ds.StructureSetROISequence, ds.ROIContourSequence,
                         ds.RTROIObservationsSequence):
        npts = 0
        contours = getattr(rc, "ContourSequence", [])
        for c in contours:
            raw = c["ContourData"].value
            for v in raw:
                if len(str(v.original_string if hasattr(v, "original_string") else v)) > 16:
                    fail(f"DS value {v!r} longer than 16 characters")
            if len(raw) != 3 * int(c.NumberOfContourPoints) or int(c.NumberOfContourPoints) < 3:
                fail("NumberOfContourPoints does not match ContourData")
            u = c.ContourImageSequence[0].ReferencedSOPInstanceUID
            if u not in ct:
                fail(f"contour references {u}, not a CT slice")
            z = [sum(float(raw[3 * p + a]) * normal[a] for a in range(3)) for p in range(len(raw) // 3)]
            if max(abs(v - pos[u]) for v in z) > half:
                fail(f"contour of ROI {s.ROIName} lies off its referenced slice")
            npts += int(c.NumberOfContourPoints)
        rois.append({
            "number": int(s.ROINumber), "name": str(s.ROIName),
            "algorithm": str(s.ROIGenerationAlgorithm),
            "color": [int(v) for v in rc.ROIDisplayColor],
            "type": str(ob.RTROIInterpretedType),
            "contours": len(contours), "points": npts,
        })
    print(json.dumps({
        "charset": str(ds.SpecificCharacterSet),
        "manufacturer": str(ds.Manufacturer),
        "software_versions": [str(v) for v in (ds.SoftwareVersions if isinstance(ds.SoftwareVersions, pydicom.multival.MultiValue) else [ds.SoftwareVersions])],
        "rois": rois,
    }))


if __name__ == "__main__":
    main()
