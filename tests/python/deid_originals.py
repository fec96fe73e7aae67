"""Every element value of DICOM files, read with pydicom, for the leak search of
cli/tests/cli/anonymise_cli.rs.

    python deid_originals.py FILE...

prints JSON: {file: [[tag, vr, private, value], ...]}, tag as "GGGGEEEE", one row per value of
every element at any depth (file meta group, sequences and private elements included); a
multi-valued element gives one row per value and one for the whole value. Binary values of
private or unknown (UN/OB) elements are given as text when they decode as printable Latin-1.
Pixel data and other bulk binary values are left out. Files pydicom cannot read map to null.
"""

import json
import sys

import pydicom

TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM",
            "UC", "UI", "UR", "UT"}


def as_text(raw):
    try:
        s = raw.decode("latin-1")
    except Exception:
        return None
    s = s.strip("\x00 ")
    if s and all(c.isprintable() for c in s):
        return s
    return None


def rows(ds, out):
    for elem in ds:
        tag = f"{elem.tag.group:04X}{elem.tag.element:04X}"
        if elem.VR == "SQ":
            for item in elem.value or []:
                rows(item, out)
            continue
        if elem.tag in (0x7FE00010, 0x7FE00008, 0x7FE00009):
            continue
        private = elem.tag.is_private
        values = []
        if elem.VR in TEXT_VRS:
            v = elem.value
            if v is None:
                continue
            if isinstance(v, (list, tuple, pydicom.multival.MultiValue)):
                parts = [str(x) for x in v]
                values = parts + ["\\".join(parts)]
            else:
                values = [str(v)]
        elif isinstance(elem.value, (bytes, bytearray)) and elem.VR in ("UN", "OB", "OW"):
            if len(elem.value) <= 1024:
                t = as_text(bytes(elem.value))
                if t:
                    values = [t] + t.split("\\")
        for v in values:
            v = v.strip("\x00 ")
            if v:
                out.append([tag, elem.VR, private, v])


def main():
    result = {}
    for path in sys.argv[1:]:
        try:
            ds = pydicom.dcmread(path, force=True)
            out = []
            if getattr(ds, "file_meta", None) is not None:
                rows(ds.file_meta, out)
            rows(ds, out)
            result[path] = out
        except Exception:
            result[path] = None
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
