//! The direct RT Structure Set walk: the elements the reader needs, read straight from the
//! file's bytes, without dicom-object's tree.
//!
//! Most of a structure set is Contour Sequence items (hundreds of thousands of elements in a
//! large one). dicom-object makes an owned value, a dictionary lookup and a map entry for each;
//! this walk keeps every value as a slice of the file and Contour Data as its text, converted
//! later in parallel. It runs only after the pre-scan has accepted the file (every length within
//! the file, nesting within the limit) and only for little-endian data sets that are not
//! deflated, behind a file meta group dicom-object accepts.
//!
//! It is a fast path, not a second parser with its own rules: wherever dicom-object could read a
//! value differently from the plain bytes (another character set, a string VR it would split,
//! an unexpected VR, elements out of order, a nested character set, undefined-length values
//! other than sequences, anything not laid out as the grammar says) the walk gives up and the
//! file is parsed by dicom-object. What it does read gives the same [`RtStruct`] as dicom-object
//! (checked on every structure set of the tests and by the `rtstruct` fuzz target). A file whose
//! structure set fails (a broken number, a limit) is parsed again by dicom-object, so the error
//! is the parser's, with its decoding of the value.
//!
//! [`RtStruct`]: super::RtStruct

use dicom_core::Tag;
use dicom_dictionary_std::tags;

use super::read::{ContourValue, Source, raw_values};

/// One data set or sequence item: its elements in ascending tag order.
pub(super) struct Item<'a> {
    elems: Vec<Elem<'a>>,
}

struct Elem<'a> {
    tag: Tag,
    val: Val<'a>,
}

enum Val<'a> {
    /// A value's bytes.
    Bytes(&'a [u8]),
    /// A sequence's items.
    Seq(Vec<Item<'a>>),
}

impl<'a> Item<'a> {
    fn get(&self, tag: Tag) -> Option<&Val<'a>> {
        let i = self.elems.binary_search_by(|e| e.tag.cmp(&tag)).ok()?;
        self.elems.get(i).map(|e| &e.val)
    }
}

impl Source for Item<'_> {
    fn has(&self, tag: Tag) -> bool {
        self.get(tag).is_some()
    }

    fn text(&self, tag: Tag) -> Option<String> {
        let Some(Val::Bytes(b)) = self.get(tag) else {
            return None;
        };
        // checked while walking: ASCII, or UTF-8 under ISO_IR 192
        let s = std::str::from_utf8(b).ok()?;
        let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
        (!s.is_empty()).then(|| s.to_string())
    }

    fn items(&self, tag: Tag) -> &[Self] {
        match self.get(tag) {
            Some(Val::Seq(items)) => items,
            _ => &[],
        }
    }

    fn contour_data(&self) -> ContourValue<'_> {
        match self.get(tags::CONTOUR_DATA) {
            Some(Val::Bytes(b)) => ContourValue::Raw(std::borrow::Cow::Borrowed(b)),
            // a sequence under this tag: dicom-object has no numbers for it either
            Some(Val::Seq(_)) => ContourValue::Numbers(Ok(Vec::new())),
            None => ContourValue::Absent,
        }
    }

    fn declared_values(&self) -> u64 {
        match self.get(tags::CONTOUR_DATA) {
            Some(Val::Bytes(b)) => raw_values(b),
            _ => 0,
        }
    }
}

/// Sequences the reader looks into; in implicit VR they are sequences even with a defined
/// length (the dictionary says so), every other defined-length value is kept as bytes.
const SEQUENCES: [Tag; 8] = [
    tags::REFERENCED_FRAME_OF_REFERENCE_SEQUENCE,
    tags::RT_REFERENCED_STUDY_SEQUENCE,
    tags::RT_REFERENCED_SERIES_SEQUENCE,
    tags::CONTOUR_IMAGE_SEQUENCE,
    tags::STRUCTURE_SET_ROI_SEQUENCE,
    tags::ROI_CONTOUR_SEQUENCE,
    tags::CONTOUR_SEQUENCE,
    tags::RTROI_OBSERVATIONS_SEQUENCE,
];

/// String elements the reader uses, with whether a backslash (several values) may occur.
const TEXTS: [(Tag, bool); 12] = [
    (tags::SOP_INSTANCE_UID, false),
    (tags::MODALITY, false),
    (tags::REFERENCED_SOP_INSTANCE_UID, false),
    (tags::SERIES_INSTANCE_UID, false),
    (tags::FRAME_OF_REFERENCE_UID, false),
    (tags::ROI_NUMBER, true),
    (tags::REFERENCED_FRAME_OF_REFERENCE_UID, false),
    (tags::ROI_NAME, false),
    (tags::ROI_DISPLAY_COLOR, true),
    (tags::CONTOUR_GEOMETRIC_TYPE, false),
    (tags::REFERENCED_ROI_NUMBER, true),
    (tags::RTROI_INTERPRETED_TYPE, false),
];

/// String VRs: dicom-object keeps their bytes as text.
const STRING_VRS: [&[u8; 2]; 16] = [
    b"AE", b"AS", b"CS", b"DA", b"DS", b"DT", b"IS", b"LO", b"LT", b"PN", b"SH", b"ST", b"TM",
    b"UC", b"UI", b"UT",
];

const ITEM: Tag = Tag(0xFFFE, 0xE000);
const ITEM_END: Tag = Tag(0xFFFE, 0xE00D);
const SEQUENCE_END: Tag = Tag(0xFFFE, 0xE0DD);
const UNDEFINED: u32 = u32::MAX;

/// Deeper than the `max_sequence_depth` limit can allow (the pre-scan refuses deeper files).
const MAX_DEPTH: usize = 600;

/// The data set of `bytes` from `start` to the end, or `None` where dicom-object is needed.
pub(super) fn walk(bytes: &[u8], explicit: bool, start: u64) -> Option<Item<'_>> {
    let start = usize::try_from(start).ok()?;
    let mut w = Walker {
        b: bytes,
        pos: start,
        explicit,
        utf8: false,
        depth: 0,
    };
    let root = w.data_set(bytes.len(), true, false)?;
    (w.pos == bytes.len()).then_some(root)
}

struct Walker<'a> {
    b: &'a [u8],
    pos: usize,
    explicit: bool,
    /// The Specific Character Set is ISO_IR 192 (text may be UTF-8); otherwise text must be ASCII.
    utf8: bool,
    depth: usize,
}

impl<'a> Walker<'a> {
    fn u16_at(&self, at: usize) -> Option<u16> {
        let b = self.b.get(at..at.checked_add(2)?)?;
        Some(u16::from_le_bytes(b.try_into().ok()?))
    }

    fn u32_at(&self, at: usize) -> Option<u32> {
        let b = self.b.get(at..at.checked_add(4)?)?;
        Some(u32::from_le_bytes(b.try_into().ok()?))
    }

    /// Tag, VR (explicit VR only) and length of the element at `pos`; moves past the header.
    fn header(&mut self) -> Option<(Tag, Option<[u8; 2]>, u32)> {
        let at = self.pos;
        let tag = Tag(self.u16_at(at)?, self.u16_at(at + 2)?);
        if tag.group() == 0xFFFE || !self.explicit {
            // items and delimiters carry no VR in either syntax
            let len = self.u32_at(at + 4)?;
            self.pos = at + 8;
            return Some((tag, None, len));
        }
        let vr: [u8; 2] = self.b.get(at + 4..at + 6)?.try_into().ok()?;
        // the pre-scan's header layout rule (the two reserved bytes and a 32-bit length)
        let (len, next) = if crate::dicom::long_vr(vr) {
            (self.u32_at(at + 8)?, at + 12)
        } else {
            (u32::from(self.u16_at(at + 6)?), at + 8)
        };
        self.pos = next;
        Some((tag, Some(vr), len))
    }

    /// Elements up to `end`: exactly to it (a defined length, or the top-level data set), or,
    /// for an undefined-length item (`delimited`), to its delimiter before `end`.
    fn data_set(&mut self, end: usize, top: bool, delimited: bool) -> Option<Item<'a>> {
        let mut elems: Vec<Elem<'a>> = Vec::new();
        while self.pos < end {
            let (tag, vr, len) = self.header()?;
            if tag == ITEM_END && delimited {
                return (len == 0).then_some(Item { elems });
            }
            if tag.group() == 0xFFFE {
                return None;
            }
            if elems.last().is_some_and(|e| e.tag >= tag) {
                return None; // out of order or repeated: dicom-object's map decides
            }
            if tag == tags::SPECIFIC_CHARACTER_SET {
                if !top {
                    return None;
                }
                let v = self.value(len, end)?;
                self.utf8 = match std::str::from_utf8(v).ok()?.trim_matches([' ', '\0']) {
                    "" | "ISO_IR 6" | "ISO_IR 100" => false,
                    "ISO_IR 192" => true,
                    _ => return None,
                };
                elems.push(Elem {
                    tag,
                    val: Val::Bytes(v),
                });
                continue;
            }
            let sequence = match vr {
                Some(vr) => &vr == b"SQ",
                None => len == UNDEFINED || SEQUENCES.contains(&tag),
            };
            let needed = SEQUENCES.contains(&tag);
            let text = TEXTS
                .iter()
                .find(|(t, _)| *t == tag)
                .map(|&(_, multi)| multi);
            if needed != sequence && (needed || text.is_some() || tag == tags::CONTOUR_DATA) {
                return None;
            }
            let val = if sequence && (needed || len == UNDEFINED) {
                Val::Seq(self.sequence(len, end)?)
            } else if sequence {
                // a defined-length sequence the reader does not look into
                Val::Bytes(self.value(len, end)?)
            } else {
                if len == UNDEFINED {
                    return None; // encapsulated data, or UN read as a sequence
                }
                let v = self.value(len, end)?;
                if let Some(multi) = text {
                    if vr.is_some_and(|vr| !STRING_VRS.contains(&&vr)) || !self.plain_text(v, multi)
                    {
                        return None;
                    }
                } else if tag == tags::CONTOUR_DATA && vr.is_some_and(|vr| &vr != b"DS") {
                    return None;
                }
                Val::Bytes(v)
            };
            elems.push(Elem { tag, val });
        }
        // a delimited item must end with its delimiter, a defined length exactly at `end`
        (!delimited && self.pos == end).then_some(Item { elems })
    }

    /// The `len` bytes of a value, within `end`.
    fn value(&mut self, len: u32, end: usize) -> Option<&'a [u8]> {
        let stop = self.pos.checked_add(usize::try_from(len).ok()?)?;
        if stop > end {
            return None;
        }
        let v = self.b.get(self.pos..stop)?;
        self.pos = stop;
        Some(v)
    }

    /// Text dicom-object reads as these very bytes: printable ASCII (and NUL padding), or
    /// UTF-8 under ISO_IR 192; a backslash only where several values are expected.
    fn plain_text(&self, v: &[u8], multi: bool) -> bool {
        let ascii = v
            .iter()
            .all(|&c| c == 0 || (0x20..0x7F).contains(&c) && (multi || c != b'\\'));
        ascii
            || self.utf8
                && std::str::from_utf8(v).is_ok_and(|s| {
                    s.chars().all(|c| !c.is_control() || c == '\0') && (multi || !s.contains('\\'))
                })
    }

    /// A sequence's items: `len` bytes, or up to its delimiter when undefined.
    fn sequence(&mut self, len: u32, end: usize) -> Option<Vec<Item<'a>>> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        let stop = if len == UNDEFINED {
            None
        } else {
            let s = self.pos.checked_add(usize::try_from(len).ok()?)?;
            (s <= end).then_some(s)?;
            Some(s)
        };
        let mut items = Vec::new();
        loop {
            if stop == Some(self.pos) {
                break;
            }
            let limit = stop.unwrap_or(end);
            if self.pos >= limit {
                return None;
            }
            let (tag, _, ilen) = self.header()?;
            if tag == SEQUENCE_END && stop.is_none() {
                if ilen != 0 {
                    return None;
                }
                break;
            }
            if tag != ITEM {
                return None;
            }
            let item = if ilen == UNDEFINED {
                self.data_set(limit, false, true)?
            } else {
                let iend = self.pos.checked_add(usize::try_from(ilen).ok()?)?;
                if iend > limit {
                    return None;
                }
                self.data_set(iend, false, false)?
            };
            items.push(item);
        }
        self.depth -= 1;
        Some(items)
    }
}
