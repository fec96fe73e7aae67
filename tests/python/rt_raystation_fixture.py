#!/usr/bin/env python3
"""Writes an RT Structure Set the way RayStation exports them, on a given CT, with analytic
reference masks (numpy, independent of autocontour) for tests/integration/rtstruct_rider.rs.

    rt_raystation_fixture.py CT_DIR OUT.dcm REF.raw

The file: Part 10 with preamble, Explicit VR Little Endian, Specific Character Set ISO_IR 100
with a non-ASCII ROI name ("Lunge_Öst", written as Latin-1), Manufacturer "RaySearch
Laboratories"; ROI numbers not starting at 1 and not in order, ROI Contour Sequence in another
order than the Structure Set ROI Sequence; contours WITHOUT Contour Image Sequence; the GTV's
contours lie 0.3 slice gaps off their slice (matching must go by position within half a slice);
a hole written as a separate CLOSED_PLANAR contour (even-odd / XOR); two contours per slice;
a POINT ROI (one point, RT ROI Interpreted Type MARKER); an ROI whose ROI Contour item has no
Contour Sequence; an ROI with no ROI Contour item at all; RT ROI Observations with ROI Physical
Properties (REL_ELEC_DENSITY); Referenced Frame of Reference -> RT Referenced Study -> Series ->
Contour Image Sequence listing every slice.

REF.raw: one uint8 volume per area ROI (External, Lunge_Öst, GTV, in that order), slice-major
`index = (k*rows + j)*cols + i` in CT slice order along the normal: 1 where the voxel centre lies
inside the analytic shape (ellipse, annulus, two discs) on the slices the ROI covers. JSON on
stdout describes the ROIs (number, name, kind, slices, point).
"""
import json
import sys

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from ct_headers import load_ct

RTSTRUCT_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"


def fmt(v):
    return float(f"{v:.4f}")


def main():
    ct_dir, out_path, ref_path = sys.argv[1:4]
    cts, iop, normal = load_ct(ct_dir)
    rows, cols = int(cts[0].Rows), int(cts[0].Columns)
    dr = float(cts[0].PixelSpacing[0])  # between rows (along the column cosine)
    dc = float(cts[0].PixelSpacing[1])  # between columns (along the row cosine)
    u, v = iop[:3], iop[3:]
    ipps = [np.array(d.ImagePositionPatient, float) for d in cts]
    gap = float(np.median(np.diff([np.dot(normal, p) for p in ipps])))
    nk = len(cts)
    # In-plane coordinates (mm along u and v from the first slice's IPP) of voxel centres.
    jj, ii = np.mgrid[0:rows, 0:cols]
    xu, xv = ii * dc, jj * dr
    cu, cv = (cols - 1) * dc / 2, (rows - 1) * dr / 2

    def to_patient(k, pu, pv, dz=0.0):
        p = ipps[k] + pu * u + pv * v + dz * gap * normal
        return [fmt(x) for x in p]

    def circle(k, c, r, n, dz=0.0, clockwise=False):
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        if clockwise:
            t = -t
        pts = []
        for a in t:
            pts += to_patient(k, c[0] + r * np.cos(a), c[1] + r * np.sin(a), dz)
        return pts

    def ellipse(k, c, ra, rb, n):
        pts = []
        for a in np.linspace(0, 2 * np.pi, n, endpoint=False):
            pts += to_patient(k, c[0] + ra * np.cos(a), c[1] + rb * np.sin(a))
        return pts

    # Shapes (mm in the slice plane), slices chosen on the middle of the scan.
    k0 = nk // 4
    ext = dict(c=(cu, cv), ra=150.0, rb=100.0, ks=range(k0, nk - k0))
    lung = dict(c=(cu + 60.0, cv - 10.0), ro=55.0, ri=22.0, ks=range(k0 + 10, k0 + 70))
    gtv = dict(c1=(cu - 60.0, cv - 35.0), c2=(cu - 60.0, cv + 35.0), r=15.0,
               ks=range(k0 + 20, k0 + 45), dz=0.3)

    ref = np.zeros((3, nk, rows, cols), np.uint8)
    e_in = ((xu - ext["c"][0]) / ext["ra"]) ** 2 + ((xv - ext["c"][1]) / ext["rb"]) ** 2 <= 1
    rl = np.hypot(xu - lung["c"][0], xv - lung["c"][1])
    l_in = (rl <= lung["ro"]) & (rl >= lung["ri"])
    g_in = (np.hypot(xu - gtv["c1"][0], xv - gtv["c1"][1]) <= gtv["r"]) | (
        np.hypot(xu - gtv["c2"][0], xv - gtv["c2"][1]) <= gtv["r"])
    for k in ext["ks"]:
        ref[0, k] = e_in
    for k in lung["ks"]:
        ref[1, k] = l_in
    for k in gtv["ks"]:
        ref[2, k] = g_in

    def contour(pts, kind="CLOSED_PLANAR"):
        c = Dataset()
        c.ContourGeometricType = kind
        c.NumberOfContourPoints = len(pts) // 3
        c.ContourData = pts
        return c  # no ContourImageSequence, as RayStation often writes

    contours = {
        7: [contour(ellipse(k, ext["c"], ext["ra"], ext["rb"], 240)) for k in ext["ks"]],
        3: [c for k in lung["ks"] for c in (
            contour(circle(k, lung["c"], lung["ro"], 200)),
            contour(circle(k, lung["c"], lung["ri"], 120, clockwise=True)))],
        12: [c for k in gtv["ks"] for c in (
            contour(circle(k, gtv["c1"], gtv["r"], 90, dz=gtv["dz"])),
            contour(circle(k, gtv["c2"], gtv["r"], 90, dz=gtv["dz"])))],
        1: [contour(to_patient(nk // 2, cu, cv), "POINT")],
    }
    point = to_patient(nk // 2, cu, cv)
    # (number, name, interpreted type, colour); numbers not from 1, not in order.
    rois = [
        (7, "External", "EXTERNAL", [0, 255, 0]),
        (3, "Lunge_Öst", "ORGAN", [0, 128, 255]),
        (12, "GTV", "GTV", [255, 0, 0]),
        (1, "Ref_Point", "MARKER", [255, 255, 0]),
        (5, "Empty_ROI", "ORGAN", [128, 0, 128]),
        (20, "Not_Contoured", "AVOIDANCE", [0, 255, 255]),
    ]

    ct0 = cts[0]
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = RTSTRUCT_CLASS
    ds.SOPInstanceUID = generate_uid()
    ds.StudyDate = ct0.get("StudyDate", "")
    ds.StudyTime = ct0.get("StudyTime", "")
    ds.AccessionNumber = ""
    ds.Modality = "RTSTRUCT"
    ds.Manufacturer = "RaySearch Laboratories"
    ds.ReferringPhysicianName = ""
    ds.StationName = "RSWS01"
    ds.SeriesDescription = "RS: Approved Structure Set"
    ds.ManufacturerModelName = "RayStation"
    ds.PatientName = ct0.get("PatientName", "")
    ds.PatientID = ct0.get("PatientID", "")
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.SoftwareVersions = "12.0.100.0"
    ds.StudyInstanceUID = ct0.StudyInstanceUID
    ds.SeriesInstanceUID = generate_uid()
    ds.StudyID = ct0.get("StudyID", "")
    ds.SeriesNumber = 1
    ds.OperatorsName = ""
    ds.InstanceNumber = 1
    ds.FrameOfReferenceUID = ct0.FrameOfReferenceUID
    ds.PositionReferenceIndicator = ""
    ds.StructureSetLabel = "RS: Approved"
    ds.StructureSetName = "CT 1"
    ds.StructureSetDate = "20260101"
    ds.StructureSetTime = "120000"

    images = Sequence()
    for d in cts:
        it = Dataset()
        it.ReferencedSOPClassUID = d.SOPClassUID
        it.ReferencedSOPInstanceUID = d.SOPInstanceUID
        images.append(it)
    se = Dataset()
    se.SeriesInstanceUID = ct0.SeriesInstanceUID
    se.ContourImageSequence = images
    st = Dataset()
    st.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    st.ReferencedSOPInstanceUID = ct0.StudyInstanceUID
    st.RTReferencedSeriesSequence = Sequence([se])
    fr = Dataset()
    fr.FrameOfReferenceUID = ct0.FrameOfReferenceUID
    fr.RTReferencedStudySequence = Sequence([st])
    ds.ReferencedFrameOfReferenceSequence = Sequence([fr])

    ssroi = Sequence()
    for number, name, _, _ in rois:
        it = Dataset()
        it.ROINumber = number
        it.ReferencedFrameOfReferenceUID = ct0.FrameOfReferenceUID
        it.ROIName = name
        it.ROIGenerationAlgorithm = "SEMIAUTOMATIC"
        ssroi.append(it)
    ds.StructureSetROISequence = ssroi

    rcs = Sequence()
    by_number = {r[0]: r for r in rois}
    for number in [3, 12, 7, 1, 5]:  # another order; ROI 20 has no item at all
        it = Dataset()
        it.ROIDisplayColor = by_number[number][3]
        if number in contours:
            it.ContourSequence = Sequence(contours[number])
        it.ReferencedROINumber = number
        rcs.append(it)
    ds.ROIContourSequence = rcs

    obs = Sequence()
    for n, (number, name, kind, _) in enumerate(rois):
        it = Dataset()
        it.ObservationNumber = n + 1
        it.ReferencedROINumber = number
        it.ROIObservationLabel = name
        it.RTROIInterpretedType = kind
        it.ROIInterpreter = ""
        if kind == "EXTERNAL":
            pp = Dataset()
            pp.ROIPhysicalProperty = "REL_ELEC_DENSITY"
            pp.ROIPhysicalPropertyValue = 1.0
            it.ROIPhysicalPropertiesSequence = Sequence([pp])
        obs.append(it)
    ds.RTROIObservationsSequence = obs
    ds.ApprovalStatus = "APPROVED"
    ds.ReviewDate = "20260101"
    ds.ReviewTime = "121500"
    ds.ReviewerName = "Doe^Jane"

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RTSTRUCT_CLASS
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = "1.2.752.243.1.1.20230101"
    meta.ImplementationVersionName = "RayStation12"
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    ds.save_as(out_path, enforce_file_format=True)
    ref.tofile(ref_path)

    # The file as written: Latin-1 name, explicit VR.
    raw = open(out_path, "rb").read()
    assert "Lunge_Öst".encode("latin-1") in raw
    back = pydicom.dcmread(out_path)
    assert back.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    print(json.dumps({
        "gap": gap,
        "rois": [{"number": r[0], "name": r[1], "type": r[2],
                  "contours": len(contours.get(r[0], []))} for r in rois],
        "area_rois": ["External", "Lunge_Öst", "GTV"],
        "slices": {"External": [ext["ks"][0], ext["ks"][-1]],
                   "Lunge_Öst": [lung["ks"][0], lung["ks"][-1]],
                   "GTV": [gtv["ks"][0], gtv["ks"][-1]]},
        "point": point,
        "point_slice": nk // 2,
    }, ensure_ascii=False))


if __name__ == "__main__":
    main()
