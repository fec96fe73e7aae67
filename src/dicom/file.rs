//! Opening one DICOM file robustly and reading typed attributes with named errors.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{
    DefaultDicomObject, FileMetaTable, FileMetaTableBuilder, InMemDicomObject, OpenFileOptions,
};
use dicom_transfer_syntax_registry::TransferSyntaxIndex as _;

use super::prescan::{self, Refusal, Start};
use super::write::IMPLICIT_VR_LE;
use crate::error::{Cause, Error, Result, cause};

/// One DICOM file, parsed, with the path it came from.
pub struct DicomFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// The dataset with its file meta group (synthesised when the file had none).
    pub obj: DefaultDicomObject,
}

fn has_dicm_magic(path: &Path) -> Result<bool> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut buf = [0u8; 132];
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    if len < 132 {
        return Ok(false);
    }
    f.read_exact(&mut buf).map_err(|e| Error::io(path, e))?;
    Ok(&buf[128..132] == b"DICM")
}

/// True when the first bytes look like a bare dataset (a group 0008 element, implicit or
/// explicit little endian), as written by old software that omits preamble and file meta.
fn looks_like_bare_dataset(path: &Path) -> Result<bool> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut buf = [0u8; 8];
    if f.read_exact(&mut buf).is_err() {
        return Ok(false);
    }
    let group = u16::from_le_bytes([buf[0], buf[1]]);
    Ok(matches!(group, 0x0002 | 0x0008))
}

/// Where the data set of a file that begins with `head` (its first bytes, up to 132) starts, as
/// the readers below take it; `None` when it is none of those (dicom-object refuses it).
fn start_of(head: &[u8]) -> Option<Start> {
    if head.get(128..132) == Some(&b"DICM"[..]) {
        Some(Start::Meta(132))
    } else if head.starts_with(b"DICM") {
        Some(Start::Meta(4))
    } else {
        match head.get(..2).map(|b| u16::from_le_bytes([b[0], b[1]])) {
            Some(0x0002) => Some(Start::Meta(0)),
            Some(0x0008) if head.len() >= 8 => Some(Start::BareImplicit),
            _ => None,
        }
    }
}

/// What the pre-scan learnt of an RT Structure Set held in memory (little endian, not deflated,
/// accepted by the walk): see [`contour_data_headers`].
pub(crate) struct ContourDataHeaders {
    /// Explicit VR (else implicit).
    pub explicit: bool,
    /// Where the data set starts, after any preamble and file meta group.
    pub data_start: u64,
    /// Whether the file has a file meta group that dicom-object accepts (false: a bare data set).
    pub meta_ok: bool,
    /// Where each Contour Data element's header starts.
    pub at: Vec<u64>,
}

/// Where the Contour Data elements of an RT Structure Set held in memory start, where its data
/// set starts and whether it is explicit VR (little endian only; `None` for other encodings or
/// data the walk refuses).
pub(crate) fn contour_data_headers(bytes: &[u8]) -> Option<ContourDataHeaders> {
    let start = start_of(bytes.get(..132).unwrap_or(bytes))?;
    let (syntax, data_start, at) = prescan::contour_data_headers(bytes, start)?;
    let explicit = match syntax {
        prescan::Syntax::ImplicitLe => false,
        prescan::Syntax::ExplicitLe => true,
        prescan::Syntax::ExplicitBe => return None,
    };
    // The file meta group as dicom-object reads it (the same preamble rules as `read_bytes`),
    // and its transfer syntax as dicom-object looks it up: it must be the syntax the walk took
    // (the walk also reads transfer syntaxes dicom-object refuses, to bound what they allocate).
    let meta = match start {
        Start::Meta(132) => bytes
            .get(128..)
            .and_then(|b| FileMetaTable::from_reader(b).ok()),
        Start::Meta(4) => FileMetaTable::from_reader(bytes).ok(),
        Start::Meta(_) => {
            FileMetaTable::from_reader(std::io::Read::chain(&b"DICM"[..], bytes)).ok()
        }
        Start::BareImplicit => None,
    };
    let meta_ok = meta
        .as_ref()
        .and_then(|m| {
            dicom_transfer_syntax_registry::TransferSyntaxRegistry.get(m.transfer_syntax())
        })
        .is_some_and(|ts| {
            let uid = ts.uid();
            let implicit = uid == IMPLICIT_VR_LE;
            !prescan::DEFLATED.contains(&uid)
                && uid != prescan::EXPLICIT_VR_BE
                && implicit != explicit
        });
    Some(ContourDataHeaders {
        explicit,
        data_start,
        meta_ok,
        at,
    })
}

fn refusal(path: &Path, r: Refusal) -> Error {
    match r {
        Refusal::Refused(reason) => Error::NotDicom {
            path: path.to_path_buf(),
            reason,
            source: None,
        },
        Refusal::Limit {
            limit,
            value,
            max,
            at,
        } => Error::LimitExceeded {
            limit,
            value,
            max,
            place: format!("{}: {at}", path.display()),
        },
        Refusal::Io(e) => Error::io(path, e),
    }
}

/// Refuses a file (or buffer) of `len` bytes over the `max_file_bytes` limit.
pub(crate) fn check_file_size(path: &Path, len: u64) -> Result<()> {
    crate::limits::check(
        "max_file_bytes",
        len,
        crate::limits::limits().max_file_bytes,
        || format!("{}: file size in bytes", path.display()),
    )
}

/// Walks the file's element headers without recursion or allocation (see `prescan`): refuses a
/// file over the `max_file_bytes` limit, sequences nested deeper than `max_sequence_depth`
/// ([`crate::limits`]) and lengths past the end of the file before dicom-object, which would
/// overflow the stack or allocate what a length claims, sees the file.
fn prescan_file(path: &Path) -> Result<()> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    check_file_size(path, len)?;
    if len == 0 {
        return Err(Error::NotDicom {
            path: path.to_path_buf(),
            reason: "the file is empty (0 bytes; an interrupted transfer?)".into(),
            source: None,
        });
    }
    let mut head = Vec::with_capacity(132);
    (&f).take(132)
        .read_to_end(&mut head)
        .map_err(|e| Error::io(path, e))?;
    let Some(start) = start_of(&head) else {
        return Ok(());
    };
    (&f).seek(SeekFrom::Start(0))
        .map_err(|e| Error::io(path, e))?;
    prescan::scan(BufReader::with_capacity(1 << 16, f), len, start).map_err(|r| refusal(path, r))
}

/// What can be told about a file that did not parse: whether it starts like DICOM (the `DICM`
/// magic, a file meta group or a bare data set), and its Series Instance UID when the element
/// walk gets that far. `(false, None)` when it cannot be read at all.
pub(crate) fn sniff(path: &Path) -> (bool, Option<String>) {
    let Ok(f) = File::open(path) else {
        return (false, None);
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut head = Vec::with_capacity(132);
    if (&f).take(132).read_to_end(&mut head).is_err() || (&f).seek(SeekFrom::Start(0)).is_err() {
        return (false, None);
    }
    match start_of(&head) {
        Some(start) => (
            true,
            prescan::series_uid(BufReader::with_capacity(1 << 16, f), len, start),
        ),
        None => (false, None),
    }
}

fn open(path: &Path, until: Option<Tag>) -> Result<DefaultDicomObject> {
    prescan_file(path)?;
    let magic = has_dicm_magic(path)?;
    if magic || !looks_like_bare_dataset(path)? {
        let mut opts = OpenFileOptions::new().read_preamble(if magic {
            ReadPreamble::Always
        } else {
            ReadPreamble::Auto
        });
        if let Some(t) = until {
            opts = opts.read_until(t);
        }
        return opts.open_file(path).map_err(|e| Error::NotDicom {
            path: path.to_path_buf(),
            reason: e.to_string(),
            source: cause(e),
        });
    }
    // A bare dataset: no preamble, no meta. If it starts with a meta group, let the normal
    // reader take it without a preamble.
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut first = [0u8; 2];
    f.read_exact(&mut first).map_err(|e| Error::io(path, e))?;
    f.seek(SeekFrom::Start(0)).map_err(|e| Error::io(path, e))?;
    if u16::from_le_bytes(first) == 0x0002 {
        let mut opts = OpenFileOptions::new().read_preamble(ReadPreamble::Never);
        if let Some(t) = until {
            opts = opts.read_until(t);
        }
        return opts.open_file(path).map_err(|e| Error::NotDicom {
            path: path.to_path_buf(),
            reason: e.to_string(),
            source: cause(e),
        });
    }
    let ts = dicom_transfer_syntax_registry::TransferSyntaxRegistry
        .get(IMPLICIT_VR_LE)
        .ok_or_else(|| Error::NotDicom {
            path: path.to_path_buf(),
            reason: "implicit VR little endian is not registered".into(),
            source: None,
        })?;
    let ds = InMemDicomObject::read_dataset_with_ts(BufReader::new(f), ts).map_err(|e| {
        Error::NotDicom {
            path: path.to_path_buf(),
            reason: format!("no preamble or file meta, and not implicit VR little endian: {e}"),
            source: cause(e),
        }
    })?;
    ds.with_meta(FileMetaTableBuilder::new().transfer_syntax(IMPLICIT_VR_LE))
        .map_err(|e| Error::NotDicom {
            path: path.to_path_buf(),
            reason: format!("no file meta and no SOP Class/Instance UID to make one: {e}"),
            source: cause(e),
        })
}

/// Reads a whole DICOM file, pixel data included.
pub fn read_file(path: &Path) -> Result<DicomFile> {
    Ok(DicomFile {
        path: path.to_path_buf(),
        obj: open(path, None)?,
    })
}

/// Reads a DICOM file up to (not including) its pixel data.
pub fn read_header(path: &Path) -> Result<DicomFile> {
    Ok(DicomFile {
        path: path.to_path_buf(),
        obj: open(path, Some(tags::PIXEL_DATA))?,
    })
}

/// Parses a whole DICOM file held in memory (pixel data included): with preamble, without it
/// (starting at `DICM` or right at the file meta group), or a bare implicit VR little endian data
/// set without file meta, as [`read_file`] does for a path. `name` stands for the path in messages and in
/// [`DicomFile::path`] (e.g. `buffer #3`).
pub fn read_bytes(name: &Path, bytes: &[u8]) -> Result<DicomFile> {
    let not_dicom = |reason: String, source: Option<Cause>| Error::NotDicom {
        path: name.to_path_buf(),
        reason,
        source,
    };
    check_file_size(name, bytes.len() as u64)?;
    if let Some(start) = start_of(bytes.get(..132).unwrap_or(bytes)) {
        prescan::scan(std::io::Cursor::new(bytes), bytes.len() as u64, start)
            .map_err(|r| refusal(name, r))?;
    }
    let magic = bytes.get(128..132) == Some(&b"DICM"[..]);
    let group = bytes.get(..2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let obj = if magic || bytes.starts_with(b"DICM") {
        // With preamble, or without it (the magic code first).
        let preamble = if magic {
            ReadPreamble::Always
        } else {
            ReadPreamble::Never
        };
        OpenFileOptions::new()
            .read_preamble(preamble)
            .from_reader(bytes)
            .map_err(|e| not_dicom(e.to_string(), cause(e)))?
    } else if group == Some(0x0002) {
        // File meta group without the magic code in front: supply it.
        OpenFileOptions::new()
            .read_preamble(ReadPreamble::Never)
            .from_reader(std::io::Read::chain(&b"DICM"[..], bytes))
            .map_err(|e| not_dicom(e.to_string(), cause(e)))?
    } else if group == Some(0x0008) && bytes.len() >= 8 {
        let ts = dicom_transfer_syntax_registry::TransferSyntaxRegistry
            .get(IMPLICIT_VR_LE)
            .ok_or_else(|| not_dicom("implicit VR little endian is not registered".into(), None))?;
        InMemDicomObject::read_dataset_with_ts(bytes, ts)
            .map_err(|e| {
                not_dicom(
                    format!("no preamble or file meta, and not implicit VR little endian: {e}"),
                    cause(e),
                )
            })?
            .with_meta(FileMetaTableBuilder::new().transfer_syntax(IMPLICIT_VR_LE))
            .map_err(|e| {
                not_dicom(
                    format!("no file meta and no SOP Class/Instance UID to make one: {e}"),
                    cause(e),
                )
            })?
    } else {
        return Err(not_dicom(
            format!(
                "{} bytes without the DICM magic, a file meta group or a bare data set",
                bytes.len()
            ),
            None,
        ));
    };
    Ok(DicomFile {
        path: name.to_path_buf(),
        obj,
    })
}

/// Stored pixel values of every frame of one file, before Rescale Slope/Intercept.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPixels {
    /// Rows per frame.
    pub rows: u32,
    /// Columns per frame.
    pub cols: u32,
    /// Number of frames.
    pub frames: u32,
    /// Values, frame after frame, each row-major.
    pub values: Vec<f64>,
}

/// How stored samples sit in decoded (native little-endian) pixel bytes.
#[derive(Debug, Clone, Copy)]
struct SampleLayout {
    bits_allocated: u16,
    bits_stored: u16,
    high_bit: u16,
    signed: bool,
    /// 32-bit samples of an explicit big-endian file read as OW: the parser swapped each
    /// 16-bit word, so the two halves are in the wrong order.
    swap_halves: bool,
}

impl SampleLayout {
    /// The first `count` samples as numbers: bits `high_bit − bits_stored + 1 ..= high_bit` of
    /// each sample, sign-extended when signed (as pydicom and the standard read them).
    fn to_f64(self, bytes: &[u8], count: usize) -> std::result::Result<Vec<f64>, String> {
        let ba = u32::from(self.bits_allocated);
        let bs = u32::from(self.bits_stored);
        let hb = u32::from(self.high_bit);
        if !matches!(ba, 1 | 8 | 16 | 32) {
            return Err(format!("BitsAllocated {ba} is not 1, 8, 16 or 32"));
        }
        if bs == 0 || bs > ba || hb >= ba || hb + 1 < bs {
            return Err(format!(
                "BitsStored {bs} / HighBit {hb} do not fit BitsAllocated {ba}"
            ));
        }
        let need = (count * ba as usize).div_ceil(8);
        if bytes.len() < need {
            return Err(format!(
                "pixel data holds {} bytes, {count} samples of {ba} bits need {need}",
                bytes.len()
            ));
        }
        let shift = hb + 1 - bs;
        let convert = |raw: u32| -> f64 {
            let v = if bs == 32 {
                raw
            } else {
                (raw >> shift) & ((1u32 << bs) - 1)
            };
            if self.signed && v & (1u32 << (bs - 1)) != 0 {
                f64::from(v) - 2f64.powi(bs as i32)
            } else {
                f64::from(v)
            }
        };
        let b = bytes.get(..need).unwrap_or(&[]);
        Ok(match ba {
            // dicom-pixeldata expands native 1-bit data to one byte (0 or 255) per sample.
            1 if bytes.len() >= count => bytes
                .iter()
                .take(count)
                .map(|&x| f64::from(u8::from(x != 0)))
                .collect(),
            1 => (0..count)
                .map(|n| f64::from((b.get(n / 8).copied().unwrap_or(0) >> (n % 8)) & 1))
                .collect(),
            8 => b.iter().map(|&x| convert(u32::from(x))).collect(),
            16 => b
                .chunks_exact(2)
                .map(|c| convert(u32::from(u16::from_le_bytes([c[0], c[1]]))))
                .collect(),
            _ if self.swap_halves => b
                .chunks_exact(4)
                .map(|c| convert(u32::from_le_bytes([c[2], c[3], c[0], c[1]])))
                .collect(),
            _ => b
                .chunks_exact(4)
                .map(|c| convert(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
        })
    }
}

/// Names the transfer syntax for messages: `UID (name)`.
pub(crate) fn ts_label(uid: &str) -> String {
    match dicom_transfer_syntax_registry::TransferSyntaxRegistry.get(uid) {
        Some(ts) => format!("{uid} {}", ts.name()),
        None => format!("{uid} (unknown)"),
    }
}

/// Why a transfer syntax known to fail cannot be decoded, in words for the user.
fn known_limitation(
    ts: &str,
    bits_stored: Option<u32>,
    bits_allocated: Option<u32>,
) -> Option<&'static str> {
    match ts {
        // dicom-rs' RLE decoder handles 8- and 16-bit samples only.
        "1.2.840.10008.1.2.5" if bits_allocated.is_some_and(|b| b > 16) => {
            Some("RLE Lossless with 32 bits allocated is not supported")
        }
        // jpeg-decoder (dicom-pixeldata's JPEG backend) has no 12-bit DCT support.
        "1.2.840.10008.1.2.4.51" if bits_stored.is_some_and(|b| b > 8) => Some(
            "JPEG extended 12-bit is not supported by the JPEG decoder; convert the series to \
             an uncompressed or lossless transfer syntax",
        ),
        _ => None,
    }
}

/// The error for a required attribute missing from the file `path` ([`DicomFile::missing`]).
pub(crate) fn missing_tag(path: &Path, tag: Tag) -> Error {
    Error::MissingTag {
        path: path.to_path_buf(),
        tag: tag_name(tag),
    }
}

/// The error for an unusable attribute of the file `path` ([`DicomFile::invalid`]).
pub(crate) fn invalid_tag(path: &Path, tag: Tag, reason: impl Into<String>) -> Error {
    Error::InvalidTag {
        path: path.to_path_buf(),
        tag: tag_name(tag),
        reason: reason.into(),
        source: None,
    }
}

pub(crate) fn tag_name(tag: Tag) -> String {
    use dicom_core::dictionary::DataDictionary;
    let name = dicom_dictionary_std::StandardDataDictionary
        .by_tag(tag)
        .map(|e| e.alias)
        .unwrap_or("?");
    format!("{name} ({:04X},{:04X})", tag.group(), tag.element())
}

impl DicomFile {
    /// Decodes the pixel data: stored values of every frame (no rescale, no VOI).
    /// Only single-sample (grayscale) images; failures are [`Error::PixelData`] naming the
    /// file and transfer syntax.
    pub fn stored_pixels(&self) -> Result<StoredPixels> {
        use dicom_pixeldata::{PixelDecoder, PixelRepresentation};
        let ts = self.transfer_syntax();
        let bits_stored = self.opt_u32(tags::BITS_STORED)?;
        let bits_allocated = self.opt_u32(tags::BITS_ALLOCATED)?;
        let pixel_err = |reason: String, source: Option<Cause>| {
            let reason = match known_limitation(&ts, bits_stored, bits_allocated) {
                Some(why) => format!("{why} ({reason})"),
                None => reason,
            };
            Error::PixelData {
                path: self.path.clone(),
                transfer_syntax: ts_label(&ts),
                reason,
                source,
            }
        };
        let spp = self.opt_u32(tags::SAMPLES_PER_PIXEL)?.unwrap_or(1);
        if spp != 1 {
            return Err(self.invalid(
                tags::SAMPLES_PER_PIXEL,
                format!("{spp} samples per pixel; only grayscale (1) is read"),
            ));
        }
        if self
            .obj
            .element_opt(tags::PIXEL_DATA)
            .ok()
            .flatten()
            .is_none()
        {
            return Err(self.missing(tags::PIXEL_DATA));
        }
        let decoded = self
            .obj
            .decode_pixel_data()
            .map_err(|e| pixel_err(e.to_string(), cause(e)))?;
        let (rows, cols, frames) = (
            decoded.rows(),
            decoded.columns(),
            decoded.number_of_frames(),
        );
        let count = rows as usize * cols as usize * frames as usize;
        let layout = SampleLayout {
            bits_allocated: decoded.bits_allocated(),
            bits_stored: decoded.bits_stored(),
            high_bit: decoded.high_bit(),
            signed: decoded.pixel_representation() == PixelRepresentation::Signed,
            swap_halves: ts == "1.2.840.10008.1.2.2"
                && self
                    .obj
                    .element_opt(tags::PIXEL_DATA)
                    .ok()
                    .flatten()
                    .is_some_and(|e| e.vr() == dicom_core::VR::OW),
        };
        let values = layout
            .to_f64(decoded.data(), count)
            .map_err(|reason| pixel_err(reason, None))?;
        Ok(StoredPixels {
            rows,
            cols,
            frames,
            values,
        })
    }

    /// Transfer syntax UID from the file meta group.
    pub fn transfer_syntax(&self) -> String {
        self.obj
            .meta()
            .transfer_syntax()
            .trim_end_matches('\0')
            .to_string()
    }

    /// A string attribute, trimmed; `None` when absent or empty.
    pub fn opt_str(&self, tag: Tag) -> Option<String> {
        let e = self.obj.element_opt(tag).ok()??;
        let s = e.to_str().ok()?;
        let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
        (!s.is_empty()).then(|| s.to_string())
    }

    /// A required string attribute.
    pub fn req_str(&self, tag: Tag) -> Result<String> {
        self.opt_str(tag).ok_or_else(|| self.missing(tag))
    }

    /// Several numbers (DS/FL/FD/IS…) of an attribute; `None` when absent or empty.
    pub fn opt_f64s(&self, tag: Tag) -> Result<Option<Vec<f64>>> {
        let Some(e) = self.obj.element_opt(tag).ok().flatten() else {
            return Ok(None);
        };
        if e.value().multiplicity() == 0 {
            return Ok(None);
        }
        let v = e
            .to_multi_float64()
            .map_err(|err| self.invalid_because(tag, err))?;
        if v.iter().any(|x| !x.is_finite()) {
            return Err(self.invalid(tag, format!("non-finite value in {v:?}")));
        }
        Ok(Some(v))
    }

    /// Exactly `n` numbers of a required attribute.
    pub fn req_f64s(&self, tag: Tag, n: usize) -> Result<Vec<f64>> {
        let v = self.opt_f64s(tag)?.ok_or_else(|| self.missing(tag))?;
        if v.len() != n {
            return Err(self.invalid(tag, format!("expected {n} values, found {}", v.len())));
        }
        Ok(v)
    }

    /// One number of an optional attribute.
    pub fn opt_f64(&self, tag: Tag) -> Result<Option<f64>> {
        Ok(self.opt_f64s(tag)?.and_then(|v| v.first().copied()))
    }

    /// A required unsigned integer attribute (US/IS).
    pub fn req_u32(&self, tag: Tag) -> Result<u32> {
        let e = self
            .obj
            .element_opt(tag)
            .ok()
            .flatten()
            .ok_or_else(|| self.missing(tag))?;
        if e.value().multiplicity() == 0 {
            return Err(self.missing(tag));
        }
        e.to_int::<u32>()
            .map_err(|err| self.invalid_because(tag, err))
    }

    /// An optional unsigned integer attribute.
    pub fn opt_u32(&self, tag: Tag) -> Result<Option<u32>> {
        match self.obj.element_opt(tag).ok().flatten() {
            None => Ok(None),
            Some(e) if e.value().multiplicity() == 0 => Ok(None),
            Some(e) => e
                .to_int::<u32>()
                .map(Some)
                .map_err(|err| self.invalid_because(tag, err)),
        }
    }

    /// The error for a missing attribute of this file.
    pub fn missing(&self, tag: Tag) -> Error {
        missing_tag(&self.path, tag)
    }

    /// The error for an unusable attribute of this file.
    pub fn invalid(&self, tag: Tag, reason: impl Into<String>) -> Error {
        invalid_tag(&self.path, tag, reason)
    }

    /// The error for an attribute whose value could not be converted: `err`'s message as the
    /// reason, `err` as the source.
    fn invalid_because(
        &self,
        tag: Tag,
        err: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error::InvalidTag {
            path: self.path.clone(),
            tag: tag_name(tag),
            reason: err.to_string(),
            source: cause(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(ba: u16, bs: u16, hb: u16, signed: bool) -> SampleLayout {
        SampleLayout {
            bits_allocated: ba,
            bits_stored: bs,
            high_bit: hb,
            signed,
            swap_halves: false,
        }
    }

    #[test]
    fn samples_are_masked_and_sign_extended() {
        // 12 bits stored in 16, signed: 0x0FFF is -1, 0xF800 has junk above bit 11.
        let b = [0xFF, 0x0F, 0x00, 0xF0, 0x00, 0x08];
        assert_eq!(
            layout(16, 12, 11, true).to_f64(&b, 3).unwrap(),
            vec![-1.0, 0.0, -2048.0]
        );
        assert_eq!(
            layout(16, 12, 11, false).to_f64(&b, 3).unwrap(),
            vec![4095.0, 0.0, 2048.0]
        );
        // 32-bit unsigned and signed.
        let b = 0xFFFF_FFFEu32.to_le_bytes();
        assert_eq!(
            layout(32, 32, 31, false).to_f64(&b, 1).unwrap(),
            vec![4294967294.0]
        );
        assert_eq!(layout(32, 32, 31, true).to_f64(&b, 1).unwrap(), vec![-2.0]);
        // 1 bit, least significant bit first.
        assert_eq!(
            layout(1, 1, 0, false).to_f64(&[0b0000_0101], 4).unwrap(),
            vec![1.0, 0.0, 1.0, 0.0]
        );
    }

    #[test]
    fn bad_layouts_and_short_data_are_errors() {
        assert!(layout(12, 12, 11, false).to_f64(&[0; 8], 2).is_err());
        assert!(layout(16, 17, 16, false).to_f64(&[0; 8], 2).is_err());
        assert!(layout(16, 12, 11, false).to_f64(&[0; 3], 2).is_err());
    }
}
