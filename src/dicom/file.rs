//! Opening one DICOM file robustly and reading typed attributes with named errors.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, FileMetaTableBuilder, InMemDicomObject, OpenFileOptions};
use dicom_transfer_syntax_registry::TransferSyntaxIndex as _;

use crate::error::{Error, Result};

/// One DICOM file, parsed, with the path it came from.
pub struct DicomFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// The dataset with its file meta group (synthesised when the file had none).
    pub obj: DefaultDicomObject,
}

const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";

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

fn open(path: &Path, until: Option<Tag>) -> Result<DefaultDicomObject> {
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
        });
    }
    let ts = dicom_transfer_syntax_registry::TransferSyntaxRegistry
        .get(IMPLICIT_VR_LE)
        .ok_or_else(|| Error::NotDicom {
            path: path.to_path_buf(),
            reason: "implicit VR little endian is not registered".into(),
        })?;
    let ds = InMemDicomObject::read_dataset_with_ts(BufReader::new(f), ts).map_err(|e| {
        Error::NotDicom {
            path: path.to_path_buf(),
            reason: format!("no preamble or file meta, and not implicit VR little endian: {e}"),
        }
    })?;
    ds.with_meta(FileMetaTableBuilder::new().transfer_syntax(IMPLICIT_VR_LE))
        .map_err(|e| Error::NotDicom {
            path: path.to_path_buf(),
            reason: format!("no file meta and no SOP Class/Instance UID to make one: {e}"),
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

/// `Keyword (gggg,eeee)` for messages.
pub(crate) fn tag_name(tag: Tag) -> String {
    use dicom_core::dictionary::DataDictionary;
    let name = dicom_dictionary_std::StandardDataDictionary
        .by_tag(tag)
        .map(|e| e.alias)
        .unwrap_or("?");
    format!("{name} ({:04X},{:04X})", tag.group(), tag.element())
}

impl DicomFile {
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
            .map_err(|err| self.invalid(tag, err.to_string()))?;
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
            .map_err(|err| self.invalid(tag, err.to_string()))
    }

    /// An optional unsigned integer attribute.
    pub fn opt_u32(&self, tag: Tag) -> Result<Option<u32>> {
        match self.obj.element_opt(tag).ok().flatten() {
            None => Ok(None),
            Some(e) if e.value().multiplicity() == 0 => Ok(None),
            Some(e) => e
                .to_int::<u32>()
                .map(Some)
                .map_err(|err| self.invalid(tag, err.to_string())),
        }
    }

    /// The error for a missing attribute of this file.
    pub fn missing(&self, tag: Tag) -> Error {
        Error::MissingTag {
            path: self.path.clone(),
            tag: tag_name(tag),
        }
    }

    /// The error for an unusable attribute of this file.
    pub fn invalid(&self, tag: Tag, reason: impl Into<String>) -> Error {
        Error::InvalidTag {
            path: self.path.clone(),
            tag: tag_name(tag),
            reason: reason.into(),
        }
    }
}
