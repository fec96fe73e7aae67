//! A direct Implicit VR Little Endian encoder for the objects the SDK writes.
//!
//! dicom-object writes a data set by turning it into tokens (cloning every value, the megabytes
//! of Contour Data included) and converting each text value through a character-set encoder one
//! byte at a time. The SDK's RT Structure Sets are mostly Contour Data text, so this encoder
//! writes the same bytes directly: the value's UTF-8 bytes (the objects declare `ISO_IR 192`,
//! and the VRs that use the default repertoire hold ASCII), padded to even length as
//! dicom-parser pads them, sequences and items with undefined length and delimiters, as
//! dicom-parser's default writer strategy does. Anything it does not handle exactly that way
//! (another character set, a non-ASCII default-repertoire value, an encapsulated pixel data
//! sequence, a DS or IS held as binary numbers) is [`Unsupported`], and the caller falls back to
//! dicom-object. The tests compare its output with dicom-object's byte for byte.

use dicom_core::value::{PrimitiveValue, Value};
use dicom_core::{Tag, VR};
use dicom_object::InMemDicomObject;

/// The object holds something this encoder does not write exactly as dicom-object would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unsupported;

const SPECIFIC_CHARACTER_SET: Tag = Tag(0x0008, 0x0005);
const UNDEFINED: u32 = 0xFFFF_FFFF;

/// Appends `obj`'s data set in Implicit VR Little Endian to `out`. The top-level object must
/// declare Specific Character Set `ISO_IR 192` before any text that is not default-repertoire
/// (items inherit it).
pub(crate) fn implicit_le(obj: &InMemDicomObject, out: &mut Vec<u8>) -> Result<(), Unsupported> {
    let utf8 = match obj.get(SPECIFIC_CHARACTER_SET).map(|e| e.value()) {
        Some(Value::Primitive(PrimitiveValue::Str(s))) => s.trim() == "ISO_IR 192",
        Some(Value::Primitive(PrimitiveValue::Strs(v))) => {
            v.len() == 1 && v.first().is_some_and(|s| s.trim() == "ISO_IR 192")
        }
        _ => false,
    };
    if !utf8 {
        return Err(Unsupported);
    }
    dataset(obj, out, 0)
}

/// The number of bytes [`implicit_le`] appends for `obj` (when it is supported), so the output
/// buffer is allocated once instead of growing, and copying, as the data set is written.
pub(crate) fn implicit_le_len(obj: &InMemDicomObject) -> usize {
    let mut n = 0usize;
    for e in obj {
        n = n.saturating_add(match e.value() {
            Value::Primitive(PrimitiveValue::Str(s)) => 8 + s.len() + s.len() % 2,
            Value::Primitive(PrimitiveValue::Strs(v)) => {
                let len = v.iter().map(|s| s.len()).sum::<usize>() + v.len().saturating_sub(1);
                8 + len + len % 2
            }
            Value::Primitive(v) => {
                let len = v.calculate_byte_len();
                8 + len + len % 2
            }
            Value::Sequence(seq) => {
                16 + seq
                    .items()
                    .iter()
                    .map(|i| 16usize.saturating_add(implicit_le_len(i)))
                    .fold(0usize, usize::saturating_add)
            }
            Value::PixelSequence(_) => 0,
        });
    }
    n
}

fn header(out: &mut Vec<u8>, tag: Tag, len: u32) {
    out.extend_from_slice(&tag.0.to_le_bytes());
    out.extend_from_slice(&tag.1.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
}

fn dataset(obj: &InMemDicomObject, out: &mut Vec<u8>, depth: usize) -> Result<(), Unsupported> {
    // The SDK's own objects nest a few levels; deeper is not ours to encode.
    if depth > 16 {
        return Err(Unsupported);
    }
    for e in obj {
        let tag = e.header().tag;
        let vr = e.header().vr;
        match e.value() {
            Value::Primitive(v) => primitive(out, tag, vr, v)?,
            Value::Sequence(seq) => {
                header(out, tag, UNDEFINED);
                for item in seq.items() {
                    header(out, Tag(0xFFFE, 0xE000), UNDEFINED);
                    dataset(item, out, depth + 1)?;
                    header(out, Tag(0xFFFE, 0xE00D), 0);
                }
                header(out, Tag(0xFFFE, 0xE0DD), 0);
            }
            Value::PixelSequence(_) => return Err(Unsupported),
        }
    }
    Ok(())
}

/// VRs whose text dicom-parser encodes with the default character repertoire.
fn default_repertoire(vr: VR) -> bool {
    matches!(
        vr,
        VR::AE | VR::AS | VR::CS | VR::DA | VR::DS | VR::DT | VR::IS | VR::TM | VR::UI
    )
}

fn text_len(vr: VR, s: &str) -> Result<usize, Unsupported> {
    if default_repertoire(vr) && !s.is_ascii() {
        return Err(Unsupported);
    }
    Ok(s.len())
}

fn put_len(out: &mut Vec<u8>, tag: Tag, len: usize) -> Result<(), Unsupported> {
    header(out, tag, u32::try_from(len).map_err(|_| Unsupported)?);
    Ok(())
}

fn primitive(out: &mut Vec<u8>, tag: Tag, vr: VR, v: &PrimitiveValue) -> Result<(), Unsupported> {
    let text_pad = if vr == VR::UI { 0u8 } else { b' ' };
    match v {
        PrimitiveValue::Empty => header(out, tag, 0),
        PrimitiveValue::Str(s) => {
            let n = text_len(vr, s)?;
            put_len(out, tag, n + n % 2)?;
            out.extend_from_slice(s.as_bytes());
            if n % 2 == 1 {
                out.push(text_pad);
            }
        }
        PrimitiveValue::Strs(parts) => {
            let mut n = parts.len().saturating_sub(1);
            for p in parts.iter() {
                n += text_len(vr, p)?;
            }
            put_len(out, tag, n + n % 2)?;
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    out.push(b'\\');
                }
                out.extend_from_slice(p.as_bytes());
            }
            if n % 2 == 1 {
                out.push(text_pad);
            }
        }
        // dicom-parser writes binary DS/IS values as text; not ours.
        _ if matches!(vr, VR::DS | VR::IS) => return Err(Unsupported),
        PrimitiveValue::U8(b) => binary(out, tag, vr, b.len(), |o| o.extend_from_slice(b))?,
        PrimitiveValue::U16(v) => binary(out, tag, vr, v.len() * 2, |o| {
            v.iter().for_each(|x| o.extend_from_slice(&x.to_le_bytes()))
        })?,
        PrimitiveValue::I16(v) => binary(out, tag, vr, v.len() * 2, |o| {
            v.iter().for_each(|x| o.extend_from_slice(&x.to_le_bytes()))
        })?,
        PrimitiveValue::U32(v) => binary(out, tag, vr, v.len() * 4, |o| {
            v.iter().for_each(|x| o.extend_from_slice(&x.to_le_bytes()))
        })?,
        PrimitiveValue::I32(v) => binary(out, tag, vr, v.len() * 4, |o| {
            v.iter().for_each(|x| o.extend_from_slice(&x.to_le_bytes()))
        })?,
        PrimitiveValue::F32(v) => binary(out, tag, vr, v.len() * 4, |o| {
            v.iter().for_each(|x| o.extend_from_slice(&x.to_le_bytes()))
        })?,
        PrimitiveValue::F64(v) => binary(out, tag, vr, v.len() * 8, |o| {
            v.iter().for_each(|x| o.extend_from_slice(&x.to_le_bytes()))
        })?,
        _ => return Err(Unsupported),
    }
    Ok(())
}

/// A binary value of `n` bytes written by `f`, padded to even length as dicom-parser pads it (a
/// space for DA, DT, TM; otherwise NUL), the header giving the padded length.
fn binary(
    out: &mut Vec<u8>,
    tag: Tag,
    vr: VR,
    n: usize,
    f: impl FnOnce(&mut Vec<u8>),
) -> Result<(), Unsupported> {
    put_len(out, tag, n + n % 2)?;
    f(out);
    if n % 2 == 1 {
        out.push(if matches!(vr, VR::DA | VR::DT | VR::TM) {
            b' '
        } else {
            0
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dicom::write::{item, put, put_seq, put_v};
    use dicom_dictionary_std::tags;
    use dicom_transfer_syntax_registry::TransferSyntaxIndex as _;
    use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

    fn reference(obj: &InMemDicomObject) -> Vec<u8> {
        let ts = TransferSyntaxRegistry
            .get("1.2.840.10008.1.2")
            .expect("implicit VR LE");
        let mut buf = Vec::new();
        obj.write_dataset_with_ts(&mut buf, ts)
            .expect("dicom-object writes it");
        buf
    }

    fn ours(obj: &InMemDicomObject) -> Result<Vec<u8>, Unsupported> {
        let mut buf = Vec::new();
        implicit_le(obj, &mut buf)?;
        Ok(buf)
    }

    fn sample() -> InMemDicomObject {
        let mut o = InMemDicomObject::new_empty();
        put(&mut o, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
        put(&mut o, tags::SOP_INSTANCE_UID, VR::UI, "1.2.3");
        put(&mut o, tags::STUDY_DATE, VR::DA, "20261201");
        put(&mut o, tags::PATIENT_NAME, VR::PN, "Müller^Zoë");
        put(&mut o, tags::SERIES_DESCRIPTION, VR::LO, "odd");
        put(&mut o, tags::ACCESSION_NUMBER, VR::SH, "");
        put(&mut o, tags::IMAGE_TYPE, VR::CS, "DERIVED\\PRIMARY");
        o.put(dicom_core::DataElement::new(
            tags::SOFTWARE_VERSIONS,
            VR::LO,
            PrimitiveValue::Strs(["a".to_string(), "bc".to_string()].into_iter().collect()),
        ));
        put_v(&mut o, tags::ROWS, VR::US, PrimitiveValue::from(512u16));
        put_v(
            &mut o,
            tags::PIXEL_DATA,
            VR::OB,
            PrimitiveValue::U8([1u8, 2, 3].into_iter().collect()),
        );
        put_v(
            &mut o,
            tags::REFERENCED_SEGMENT_NUMBER,
            VR::US,
            PrimitiveValue::U16([1u16, 2].into_iter().collect()),
        );
        put_v(
            &mut o,
            Tag(0x0018, 0x9089),
            VR::FD,
            PrimitiveValue::F64([1.5f64, -2.0].into_iter().collect()),
        );
        let inner = item(|i| {
            put(i, tags::CODE_VALUE, VR::SH, "T-D3000");
            put(i, tags::CODE_MEANING, VR::LO, "Chest");
            put_seq(
                i,
                tags::CONTOUR_IMAGE_SEQUENCE,
                vec![item(|j| {
                    put(j, tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, "1.2.345");
                })],
            );
            put(i, tags::CONTOUR_DATA, VR::DS, "1\\-2.5\\3");
        });
        put_seq(
            &mut o,
            tags::ROI_CONTOUR_SEQUENCE,
            vec![inner, item(|_| {})],
        );
        put_seq(&mut o, tags::RTROI_OBSERVATIONS_SEQUENCE, vec![]);
        o
    }

    #[test]
    fn equals_dicom_objects_encoding() {
        let o = sample();
        let bytes = ours(&o).unwrap();
        assert_eq!(bytes, reference(&o));
        assert_eq!(implicit_le_len(&o), bytes.len());
    }

    #[test]
    fn what_it_cannot_match_is_unsupported() {
        // No UTF-8 declaration.
        let mut o = sample();
        put(&mut o, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 100");
        assert_eq!(ours(&o), Err(Unsupported));
        // Non-ASCII in a default-repertoire VR.
        let mut o = sample();
        put(&mut o, tags::MODALITY, VR::CS, "ü");
        assert_eq!(ours(&o), Err(Unsupported));
        // A DS held as binary numbers.
        let mut o = sample();
        put_v(
            &mut o,
            tags::SLICE_THICKNESS,
            VR::DS,
            PrimitiveValue::F64([1.0f64].into_iter().collect()),
        );
        assert_eq!(ours(&o), Err(Unsupported));
    }
}
