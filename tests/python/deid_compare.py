"""Attribute actions of `autocontour anonymise` against pydicom deid's default recipe.

    python deid_compare.py ORIGINAL.dcm OURS.dcm [--check] [--markdown]

De-identifies ORIGINAL with deid (the `deid` package, its default `deid.dicom` recipe, private
tags removed) and compares, attribute by attribute (top level), what each tool did: kept,
removed, emptied, replaced, added. Prints the table of every attribute; --markdown prints only
the differences as the Markdown table of docs/deidentification.md. With --check, exits 1 when
an attribute differs without a documented reason below, or when a documented difference no
longer occurs (so the documentation cannot drift).
"""

import sys
import types

# deid imports matplotlib for pixel cleaning, which is not used here.
try:
    import matplotlib  # noqa: F401
except ImportError:
    stub = types.ModuleType("matplotlib")
    stub.use = lambda *a, **k: None
    stub.pyplot = types.ModuleType("matplotlib.pyplot")
    sys.modules["matplotlib"] = stub
    sys.modules["matplotlib.pyplot"] = stub.pyplot

import logging  # noqa: E402

import pydicom  # noqa: E402
from deid.dicom import replace_identifiers  # noqa: E402

logging.getLogger("deid").setLevel(logging.ERROR)

# keyword → (deid's action, ours, why ours differs). Every difference must be listed here.
DOCUMENTED = {
    "InstanceCreationDate": ("removed", "replaced",
                             "Retain Longitudinal Modified Dates: shifted by the patient's "
                             "offset, not removed (deid's recipe removes every *Date)"),
    "StudyDate": ("removed", "replaced", "as Instance Creation Date (type 2)"),
    "ContentDate": ("removed", "replaced", "as Instance Creation Date"),
    "PerformedProcedureStepStartDate": ("removed", "replaced", "as Instance Creation Date"),
    "InstanceCreationTime": ("removed", "kept",
                             "the offset is whole days, so the time of day is kept (not "
                             "identifying without the date); deid removes every *Time"),
    "StudyTime": ("removed", "kept", "as Instance Creation Time (type 2; empty in this input)"),
    "ContentTime": ("removed", "kept", "as Instance Creation Time (empty in this input)"),
    "PerformedProcedureStepStartTime": ("removed", "kept", "as Instance Creation Time"),
    "ExposureTime": ("removed", "kept",
                     "an acquisition parameter (ms), not a time of day; deid's endswith:Time "
                     "pattern removes it; Annex E does not list it"),
    "RevolutionTime": ("removed", "kept", "as Exposure Time"),
    "SOPClassUID": ("removed", "kept",
                    "a registered SOP class, not an identifier; deid's contains:UID removes it "
                    "(type 1: the output is no longer a valid CT image)"),
    "SOPInstanceUID": ("removed", "replaced",
                       "Annex E: U, keyed HMAC pseudonym, consistent across files; deid "
                       "removes every *UID (type 1)"),
    "StudyInstanceUID": ("removed", "replaced", "as SOP Instance UID"),
    "SeriesInstanceUID": ("removed", "replaced", "as SOP Instance UID"),
    "FrameOfReferenceUID": ("removed", "replaced", "as SOP Instance UID"),
    "AccessionNumber": ("removed", "emptied", "Annex E: Z; type 2, so present and empty"),
    "ReferringPhysicianName": ("removed", "kept",
                               "Annex E: Z; type 2, so present and empty (empty in this input)"),
    "StudyID": ("removed", "kept", "as Referring Physician's Name"),
    "PatientName": ("removed", "replaced",
                    "type 2: the keyed patient pseudonym (Annex E: Z or D), so one patient "
                    "stays one patient under one key"),
    "PatientID": ("removed", "replaced", "as Patient's Name"),
    "PatientBirthDate": ("removed", "emptied", "Annex E: Z; type 2, so present and empty"),
    "IssuerOfPatientID": ("added", "absent",
                          "deid's default recipe adds its own issuer (STARR); ours adds "
                          "nothing that is not de-identification metadata"),
    "DeidentificationMethod": ("kept", "replaced",
                               "names the method applied now; the input's named an earlier one"),
    "DeidentificationMethodCodeSequence": ("absent", "added", "Annex E: codes 113100 and 113107"),
    "LongitudinalTemporalInformationModified": ("absent", "added",
                                                "Annex E: MODIFIED under the option"),
    "ContrastBolusAgent": ("kept", "removed",
                           "Annex E: D (free text); the Contrast/Bolus module is conditional, "
                           "so the attribute is removed (empty in this input)"),
    "PositionReferenceIndicator": ("kept", "emptied",
                                   "free text (LO) that Annex E does not list; type 2, so "
                                   "emptied: the allow-list keeps no free text"),
}


def value_of(ds, tag):
    if tag not in ds:
        return None
    e = ds[tag]
    if e.VR == "SQ":
        return "<sequence of %d>" % len(e.value or [])
    v = e.value
    if v is None:
        return ""
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    return str(v).strip("\x00 ")


def action(before, after):
    if before is None and after is None:
        return "absent"
    if before is None:
        return "added"
    if after is None:
        return "removed"
    if after == before:
        return "kept"
    if after == "":
        return "emptied"
    return "replaced"


def keyword(tag):
    try:
        return pydicom.datadict.keyword_for_tag(tag) or f"({tag.group:04X},{tag.element:04X})"
    except Exception:
        return str(tag)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    check = "--check" in sys.argv
    markdown = "--markdown" in sys.argv
    original, ours_path = args
    src = pydicom.dcmread(original)
    theirs = replace_identifiers([original], save=False, remove_private=True)[0]
    ours = pydicom.dcmread(ours_path)
    tags = sorted(set(src.keys()) | set(theirs.keys()) | set(ours.keys()))
    rows = []
    for tag in tags:
        if tag.is_private or tag.element == 0 or tag == 0x7FE00010:
            continue
        b = value_of(src, tag)
        a_theirs = action(b, value_of(theirs, tag))
        a_ours = action(b, value_of(ours, tag))
        rows.append((tag, keyword(tag), a_theirs, a_ours))
    undocumented, stale = [], []
    seen = set()
    for tag, kw, t, o in rows:
        doc = DOCUMENTED.get(kw)
        if t != o:
            seen.add(kw)
            if doc is None or (doc[0], doc[1]) != (t, o):
                undocumented.append((kw, t, o))
    for kw, (t, o, _why) in DOCUMENTED.items():
        if t != o and kw not in seen:
            stale.append(kw)
    # Private attributes: both remove them all.
    private_src = sum(1 for e in src if e.tag.is_private)
    private_theirs = sum(1 for e in theirs if e.tag.is_private)
    private_ours = sum(1 for e in ours if e.tag.is_private)
    if markdown:
        print("| Attribute | deid | autocontour | Why |")
        print("|---|---|---|---|")
        for tag, kw, t, o in rows:
            if t != o:
                why = DOCUMENTED.get(kw, (None, None, "UNDOCUMENTED"))[2]
                print(f"| {kw} ({tag.group:04X},{tag.element:04X}) | {t} | {o} | {why} |")
    else:
        print(f"{'attribute':<42} {'deid':<9} {'ours':<9}")
        for tag, kw, t, o in rows:
            mark = "" if t == o else "  <- differs"
            print(f"{kw:<42} {t:<9} {o:<9}{mark}")
        same = sum(1 for r in rows if r[2] == r[3])
        print(f"{len(rows)} attributes: {same} same action, {len(rows) - same} differ; "
              f"private: input {private_src}, deid {private_theirs}, ours {private_ours}")
    ok = True
    if undocumented:
        print("UNDOCUMENTED differences:", undocumented)
        ok = False
    if stale:
        print("documented differences that no longer occur:", stale)
        ok = False
    if private_theirs or private_ours:
        print("private attributes left")
        ok = False
    if check and not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
