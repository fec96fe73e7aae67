//! What the DICOM writers (RT Structure Set in `rtstruct`, Segmentation in `seg`) share.
//!
//! * UIDs: transfer syntaxes, SOP classes, the SDK's implementation class; [`new_uid`] for new
//!   instances, series and dimension organisations.
//! * The date and time of writing ([`now_utc`]), element helpers ([`put`], [`put_v`],
//!   [`put_seq`], [`item`], [`lo`], [`code_item`], [`image_ref`]).
//! * The modules every object derived from a CT carries: Patient, General Study and Frame of
//!   Reference copied from the CT ([`put_patient_study_frame`], [`COPIED`]), the new series
//!   ([`put_series`]), the software versions ([`software_versions`]) and who made the file
//!   ([`OutputInfo`]).
//! * Decimal String formatting with a given number of decimals ([`format_ds_decimals`],
//!   [`push_ds_decimals`]; [`format_ds`] is the RT Structure Set's 3 decimals).
//! * The file meta group ([`with_file_meta`]) and the atomic write ([`write_object`]).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use dicom_core::value::{DataSetSequence, PrimitiveValue};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileDicomObject, FileMetaTableBuilder, InMemDicomObject};
use sha2::{Digest, Sha256};

use super::CtSeries;
use crate::error::{Error, Result};

/// Implicit VR Little Endian transfer syntax (the RT Structure Set's: large Contour Data
/// overflows explicit VR's 64 KB lengths).
pub const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";
/// Explicit VR Little Endian transfer syntax (the Segmentation's).
pub const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
/// CT Image Storage SOP Class UID, assumed for CT slices whose SOP Class UID is empty.
pub const CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
/// RT Structure Set Storage SOP Class UID.
pub const RTSTRUCT_SOP_CLASS: &str = "1.2.840.10008.5.1.4.1.1.481.3";
/// Segmentation Storage SOP Class UID.
pub const SEG_SOP_CLASS: &str = "1.2.840.10008.5.1.4.1.1.66.4";
/// Detached Study Management SOP Class, the customary class of RT Referenced Study items.
pub const STUDY_SOP_CLASS: &str = "1.2.840.10008.3.1.2.3.1";
/// The SDK's implementation class UID (file meta group); its 2.25 root is fixed for this SDK.
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.231440186361853392453446563306208133125";

/// What the file says about who made it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OutputInfo {
    /// Model name (Manufacturer's Model Name, Software Versions, ROI Generation Description).
    pub model_name: String,
    /// Model version.
    pub model_version: String,
    /// SHA-256 of the model file, hex.
    pub model_sha256: String,
    /// Structure Set Label (default `autocontour`).
    pub label: Option<String>,
    /// Series Description (default `autocontour <model name>`).
    pub series_description: Option<String>,
    /// Structure Set Name (RT Structure Set only; absent by default).
    pub structure_set_name: Option<String>,
    /// Approval Status (RT Structure Set only; default `UNAPPROVED`).
    pub approval_status: Option<String>,
    /// When set, the object's SOP Instance, Series Instance (and Dimension Organization) UIDs
    /// are derived from this key ([`derived_uid`]) instead of being new: writing the same job
    /// again gives objects with the same UIDs, which a PACS or TPS stores as a replacement
    /// rather than a second copy.
    pub uid_key: Option<String>,
}

/// A coded concept (Code Sequence Macro: e.g. an FMA or SNOMED code), written as an RT ROI
/// Identification Code or a Segmented Property Type. Also known as `rtstruct::RoiCode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Code {
    /// Code Value.
    pub value: String,
    /// Coding Scheme Designator (e.g. `FMA`, `SCT`).
    pub scheme: String,
    /// Code Meaning.
    pub meaning: String,
}

// ---- Decimal String ----

/// Decimals of the RT Structure Set's Decimal Strings (coordinates in mm to ≤ 3 decimals).
pub const RTSTRUCT_DS_DECIMALS: usize = 3;

/// Largest number of decimals the fast path of [`push_ds_decimals`] takes (10^decimals · |v| <
/// 10^12 must stay exact enough; beyond this every value goes through float formatting).
const FAST_MAX_DECIMALS: usize = 9;

/// Formats a Decimal String value with [`RTSTRUCT_DS_DECIMALS`] (3) decimals:
/// [`format_ds_decimals`]`(v, 3)`.
pub fn format_ds(v: f64) -> Result<String> {
    format_ds_decimals(v, RTSTRUCT_DS_DECIMALS)
}

/// Formats a Decimal String value: rounded to at most `decimals` decimals, trailing zeros (and a
/// trailing point) dropped, `-0` written as `0`, at most 16 characters. A value that does not
/// fit 16 characters with `decimals` decimals gets fewer (never exponent form); a value whose
/// integer part alone does not fit, or a NaN or infinity, is an error.
pub fn format_ds_decimals(v: f64, decimals: usize) -> Result<String> {
    let mut s = String::with_capacity(12);
    push_ds_decimals(&mut s, v, decimals)?;
    Ok(s)
}

/// Appends [`format_ds`]`(v)` to `out`.
pub fn push_ds(out: &mut String, v: f64) -> Result<()> {
    push_ds_decimals(out, v, RTSTRUCT_DS_DECIMALS)
}

/// Appends [`format_ds_decimals`]`(v, decimals)` to `out`. Fast path without float formatting (a
/// quarter of the CPU time of writing a large structure set went to `format!("{v:.3}")`): with
/// x = v·10^decimals, when |x| < 10¹² and x is not within 10⁻³ of a rounding tie, the product's
/// error (≤ ½ ulp < 10⁻⁴) cannot move it across the tie, so rounding the product gives the same
/// digits as formatting the exact binary value; other values take the `format!` path. The fast
/// path's text has at most 14 characters, so it always fits.
pub fn push_ds_decimals(out: &mut String, v: f64, decimals: usize) -> Result<()> {
    let mut buf = [0u8; FAST_LEN];
    match ds_fast(&mut buf, v, decimals) {
        // ASCII digits, sign and point only.
        Some(n) => out.push_str(std::str::from_utf8(buf.get(..n).unwrap_or(&[])).unwrap_or("")),
        None => out.push_str(&format_ds_slow(v, decimals)?),
    }
    Ok(())
}

/// Appends [`format_ds_decimals`]`(v, decimals)` to a byte buffer (Contour Data is built as
/// bytes, then checked as UTF-8 once).
pub fn push_ds_decimals_bytes(out: &mut Vec<u8>, v: f64, decimals: usize) -> Result<()> {
    let mut buf = [0u8; FAST_LEN];
    match ds_fast(&mut buf, v, decimals) {
        Some(n) => out.extend_from_slice(buf.get(..n).unwrap_or(&[])),
        None => out.extend_from_slice(format_ds_slow(v, decimals)?.as_bytes()),
    }
    Ok(())
}

/// Appends Decimal Strings of one `decimals` setting to a byte buffer like
/// [`push_ds_decimals_bytes`], keeping the last value's text per coordinate axis: a value equal
/// (bit for bit) to the previous one on the same axis is copied, not formatted again. Contour
/// Data repeats a lot: every point of an axial contour has the slice's z, and consecutive
/// vertices of a voxel-edge contour share x or y.
#[derive(Debug, Clone)]
pub struct DsPoints {
    decimals: usize,
    last: [Option<(u64, usize, [u8; FAST_LEN])>; 3],
}

impl DsPoints {
    /// Formats with at most `decimals` decimals ([`format_ds_decimals`]).
    pub fn new(decimals: usize) -> Self {
        DsPoints {
            decimals,
            last: [None; 3],
        }
    }

    /// Appends `point` as `x\y\z`, with a leading backslash unless `out` is empty.
    pub fn push_point(&mut self, out: &mut Vec<u8>, point: &[f64; 3]) -> Result<()> {
        for (v, last) in point.iter().zip(self.last.iter_mut()) {
            if !out.is_empty() {
                out.push(b'\\');
            }
            let bits = v.to_bits();
            if let Some((b, n, text)) = last
                && *b == bits
            {
                push_short(out, text, *n);
                continue;
            }
            let mut text = [0u8; FAST_LEN];
            match ds_fast(&mut text, *v, self.decimals) {
                Some(n) => {
                    push_short(out, &text, n);
                    *last = Some((bits, n, text));
                }
                None => out.extend_from_slice(format_ds_slow(*v, self.decimals)?.as_bytes()),
            }
        }
        Ok(())
    }
}

/// Appends the first `n` bytes of `text`, a fast-path text (at most 14 bytes): one fixed
/// 16-byte copy, which compiles to a move instead of a call, then the length cut back.
fn push_short(out: &mut Vec<u8>, text: &[u8; FAST_LEN], n: usize) {
    let at = out.len();
    match text.first_chunk::<16>() {
        Some(head) if n <= 16 => {
            out.extend_from_slice(head);
            out.truncate(at + n);
        }
        _ => out.extend_from_slice(text.get(..n).unwrap_or(&[])),
    }
}

/// Room for the fast path's text: a sign, 12 integer digits, a point and the decimals.
const FAST_LEN: usize = 32;

/// The fast path of [`push_ds_decimals`] into `buf`: the number of bytes written, or `None`
/// when `v` needs the `format!` path.
fn ds_fast(buf: &mut [u8; FAST_LEN], v: f64, decimals: usize) -> Option<usize> {
    if decimals > FAST_MAX_DECIMALS {
        return None;
    }
    let pow = 10u64.pow(decimals as u32);
    let x = v * pow as f64;
    if !(x.is_finite() && x.abs() < 1e12) {
        return None;
    }
    // floor(x) without libm's `floor` (a call on baseline x86-64): truncation toward zero,
    // one less for a negative non-integer; exact for |x| < 10¹².
    let t = x as i64;
    let floor = if t as f64 > x { t - 1 } else { t };
    let frac = x - floor as f64;
    if (frac - 0.5).abs() <= 1e-3 {
        return None;
    }
    let q = if frac > 0.5 { floor + 1 } else { floor };
    let a = q.unsigned_abs();
    let mut n = 0;
    if q < 0 {
        *buf.get_mut(n)? = b'-';
        n += 1;
    }
    n = put_digits(buf, n, a / pow, 1)?;
    let mut f = a % pow;
    if f != 0 {
        *buf.get_mut(n)? = b'.';
        n += 1;
        let mut digits = decimals;
        while f.is_multiple_of(10) {
            f /= 10;
            digits -= 1;
        }
        n = put_digits(buf, n, f, digits)?;
    }
    Some(n)
}

/// Writes the decimal digits of `n` at `buf[at..]`, left-padded with zeros to at least `width`
/// digits; the new end, or `None` when they do not fit.
fn put_digits(buf: &mut [u8; FAST_LEN], at: usize, mut n: u64, width: usize) -> Option<usize> {
    let mut tmp = [b'0'; 20];
    let mut i = tmp.len();
    while n > 0 || tmp.len() - i < width.min(tmp.len()) {
        i -= 1;
        *tmp.get_mut(i)? = b'0' + (n % 10) as u8;
        n /= 10;
        if i == 0 {
            break;
        }
    }
    let digits = tmp.get(i..)?;
    let end = at + digits.len();
    buf.get_mut(at..end)?.copy_from_slice(digits);
    Some(end)
}

/// [`format_ds_decimals`] through `format!`, taking fewer decimals while the text is too long.
fn format_ds_slow(v: f64, decimals: usize) -> Result<String> {
    if !v.is_finite() {
        return Err(Error::InvalidArgument(format!(
            "cannot write {v} as a DICOM decimal string"
        )));
    }
    for d in (0..=decimals).rev() {
        let mut s = format!("{v:.d$}");
        if s.contains('.') {
            while s.ends_with('0') {
                s.pop();
            }
            if s.ends_with('.') {
                s.pop();
            }
        }
        if s == "-0" {
            s = "0".into();
        }
        if s.len() <= 16 {
            return Ok(s);
        }
    }
    Err(Error::InvalidArgument(format!(
        "{v} does not fit a 16-character DICOM decimal string"
    )))
}

// ---- UIDs and time ----

static UID_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A new UID under the `2.25` root: the decimal form of a random-like 128-bit UUID (version 4
/// layout) hashed from the time, the process, a counter and `seed`.
pub fn new_uid(seed: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut h = Sha256::new();
    h.update(now.to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(UID_COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    h.update(seed.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    format!("2.25.{}", u128::from_be_bytes(b))
}

/// A UID under the `2.25` root derived from `key` and `role` alone: the decimal form of 128
/// bits of SHA-256 over both, laid out as an RFC 9562 version 8 (custom) UUID. The same
/// (`key`, `role`) always gives the same UID; different roles (`"rtstruct.sop"`,
/// `"rtstruct.series"`, …) give the UIDs of one job's objects.
///
/// ```
/// use autocontour::dicom::write::derived_uid;
/// let a = derived_uid("series 1.2.3 | model abc", "rtstruct.sop");
/// assert_eq!(a, derived_uid("series 1.2.3 | model abc", "rtstruct.sop"));
/// assert_ne!(a, derived_uid("series 1.2.3 | model abc", "rtstruct.series"));
/// assert!(a.starts_with("2.25.") && a.len() <= 64);
/// ```
pub fn derived_uid(key: &str, role: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"autocontour derived UID\0");
    h.update((key.len() as u64).to_le_bytes());
    h.update(key.as_bytes());
    h.update(role.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    format!("2.25.{}", u128::from_be_bytes(b))
}

/// The UID of `role` for an object written with `info`: [`derived_uid`] when the output has a
/// UID key, otherwise a new one seeded with `seed`.
pub fn output_uid(info: &OutputInfo, role: &str, seed: &str) -> String {
    match &info.uid_key {
        Some(key) => derived_uid(key, role),
        None => new_uid(seed),
    }
}

/// The proleptic Gregorian (year, month, day) of a day count since 1970-01-01 (Howard
/// Hinnant's civil-from-days).
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// (date YYYYMMDD, time HHMMSS) in UTC.
pub fn now_utc() -> (String, String) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let tod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    (
        format!("{y:04}{m:02}{d:02}"),
        format!("{:02}{:02}{:02}", tod / 3600, (tod / 60) % 60, tod % 60),
    )
}

// ---- element helpers ----

/// Puts a string-valued element (`value` as given: multiple values joined with `\`).
pub fn put(obj: &mut InMemDicomObject, tag: Tag, vr: VR, value: impl Into<String>) {
    obj.put(DataElement::new(tag, vr, value.into()));
}

/// SOP Common module of a derived object: UTF-8 character set, `sop_class`, `sop_uid`, creation
/// date and time.
pub fn put_sop_common(
    o: &mut InMemDicomObject,
    sop_class: &str,
    sop_uid: &str,
    date: &str,
    time: &str,
) {
    put(o, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
    put(o, tags::SOP_CLASS_UID, VR::UI, sop_class);
    put(o, tags::SOP_INSTANCE_UID, VR::UI, sop_uid);
    put(o, tags::INSTANCE_CREATION_DATE, VR::DA, date);
    put(o, tags::INSTANCE_CREATION_TIME, VR::TM, time);
}

/// Puts an element with a primitive (e.g. binary) value.
pub fn put_v(obj: &mut InMemDicomObject, tag: Tag, vr: VR, value: PrimitiveValue) {
    obj.put(DataElement::new(tag, vr, value));
}

/// Puts a sequence of `items`.
pub fn put_seq(obj: &mut InMemDicomObject, tag: Tag, items: Vec<InMemDicomObject>) {
    obj.put(DataElement::new(tag, VR::SQ, DataSetSequence::from(items)));
}

/// A new sequence item filled by `f`.
pub fn item(f: impl FnOnce(&mut InMemDicomObject)) -> InMemDicomObject {
    let mut o = InMemDicomObject::new_empty();
    f(&mut o);
    o
}

/// Truncates to 64 characters, the length of a Long String (LO).
pub fn lo(s: &str) -> String {
    s.chars().take(64).collect()
}

/// A Code Sequence Macro item: Code Value, Coding Scheme Designator, Code Meaning.
pub fn code_item(value: &str, scheme: &str, meaning: &str) -> InMemDicomObject {
    item(|o| {
        put(o, tags::CODE_VALUE, VR::SH, value);
        put(o, tags::CODING_SCHEME_DESIGNATOR, VR::SH, scheme);
        put(o, tags::CODE_MEANING, VR::LO, lo(meaning));
    })
}

/// `class`, or CT Image Storage when it is empty (a CT slice's SOP Class UID as referenced).
pub fn sop_class_or_ct(class: &str) -> &str {
    if class.is_empty() {
        CT_IMAGE_STORAGE
    } else {
        class
    }
}

/// An image reference item: Referenced SOP Class UID and Referenced SOP Instance UID.
pub fn image_ref(class: &str, uid: &str) -> InMemDicomObject {
    item(|o| {
        put(o, tags::REFERENCED_SOP_CLASS_UID, VR::UI, class);
        put(o, tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, uid);
    })
}

// ---- modules shared by every object derived from a CT ----

/// The series module shared by the RTSTRUCT and SEG writers: modality, the new series UID and
/// number, date and time, and the description (`info`'s, else `autocontour <model>`), which is
/// returned.
pub fn put_series(
    o: &mut InMemDicomObject,
    modality: &str,
    series_uid: &str,
    series_number: &str,
    date: &str,
    time: &str,
    info: &OutputInfo,
) -> String {
    put(o, tags::MODALITY, VR::CS, modality);
    put(o, tags::SERIES_INSTANCE_UID, VR::UI, series_uid);
    put(o, tags::SERIES_NUMBER, VR::IS, series_number);
    put(o, tags::SERIES_DATE, VR::DA, date);
    put(o, tags::SERIES_TIME, VR::TM, time);
    let desc = info
        .series_description
        .clone()
        .unwrap_or_else(|| format!("autocontour {}", info.model_name));
    put(o, tags::SERIES_DESCRIPTION, VR::LO, lo(desc.trim()));
    desc
}

/// Writes the Patient, General Study and Frame of Reference modules of `ct` into `o`: the
/// attributes in [`COPIED`] (type 2 ones created empty when the CT lacks them), the Study
/// Instance UID, the CT's Frame of Reference UID and its Position Reference Indicator. Shared by
/// every object the SDK derives from a CT (RT Structure Set, Segmentation).
pub fn put_patient_study_frame(o: &mut InMemDicomObject, ct: &CtSeries) {
    for &(tag, vr, type2) in COPIED {
        match ct.header.get(tag) {
            Some(e) => {
                o.put(e.clone());
            }
            None if type2 => put(o, tag, vr, ""),
            None => {}
        }
    }
    put(o, tags::STUDY_INSTANCE_UID, VR::UI, ct.study_uid.as_str());
    put(
        o,
        tags::FRAME_OF_REFERENCE_UID,
        VR::UI,
        ct.frame_of_reference_uid.as_str(),
    );
    match ct.header.get(tags::POSITION_REFERENCE_INDICATOR) {
        Some(e) => {
            o.put(e.clone());
        }
        None => put(o, tags::POSITION_REFERENCE_INDICATOR, VR::LO, ""),
    }
}

/// Patient and General Study attributes copied from the CT: (tag, VR, type 2 — written empty
/// when the CT lacks it).
pub const COPIED: &[(Tag, VR, bool)] = &[
    (tags::PATIENT_NAME, VR::PN, true),
    (tags::PATIENT_ID, VR::LO, true),
    (tags::ISSUER_OF_PATIENT_ID, VR::LO, false),
    (tags::PATIENT_BIRTH_DATE, VR::DA, true),
    (tags::PATIENT_BIRTH_TIME, VR::TM, false),
    (tags::PATIENT_SEX, VR::CS, true),
    (tags::OTHER_PATIENT_NAMES, VR::PN, false),
    (tags::PATIENT_COMMENTS, VR::LT, false),
    (tags::PATIENT_IDENTITY_REMOVED, VR::CS, false),
    (tags::DEIDENTIFICATION_METHOD, VR::LO, false),
    (tags::STUDY_DATE, VR::DA, true),
    (tags::STUDY_TIME, VR::TM, true),
    (tags::REFERRING_PHYSICIAN_NAME, VR::PN, true),
    (tags::STUDY_ID, VR::SH, true),
    (tags::ACCESSION_NUMBER, VR::SH, true),
    (tags::STUDY_DESCRIPTION, VR::LO, false),
];

/// Software Versions: the SDK's version, the model's name and version and its SHA-256, each
/// trimmed to an LO value, empty ones left out, joined with `\`.
pub fn software_versions(info: &OutputInfo) -> String {
    let versions: Vec<String> = [
        format!("autocontour {}", crate::VERSION),
        format!("{} {}", info.model_name, info.model_version),
        info.model_sha256.clone(),
    ]
    .iter()
    .map(|v| lo(v.trim().trim_matches('\\')))
    .filter(|v| !v.is_empty())
    .collect();
    versions.join("\\")
}

// ---- files ----

/// `o` with its file meta group: `transfer_syntax`, the SDK's implementation class UID and
/// version name. `what` names the object in the error (`RTSTRUCT`, `SEG`).
pub fn with_file_meta(
    o: InMemDicomObject,
    transfer_syntax: &str,
    what: &str,
) -> Result<FileDicomObject<InMemDicomObject>> {
    o.with_meta(
        FileMetaTableBuilder::new()
            .transfer_syntax(transfer_syntax)
            .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
            .implementation_version_name(format!("AC_{}", crate::VERSION)),
    )
    .map_err(|e| Error::InvalidArgument(format!("cannot build the {what} file meta: {e}")))
}

/// Writes `obj` to `path` through a buffer: to a temporary file beside it, flushed, then renamed,
/// so a failure never leaves a partial file. Returns its SOP Instance UID (from the file meta).
pub fn write_object(path: &Path, obj: &FileDicomObject<InMemDicomObject>) -> Result<String> {
    let uid = obj
        .meta()
        .media_storage_sop_instance_uid()
        .trim_end_matches('\0')
        .to_string();
    // Encoded into memory first, then written with one call.
    let t = std::time::Instant::now();
    let buf =
        encode_file(obj).map_err(|e| Error::InvalidArgument(format!("{}: {e}", path.display())))?;
    let encoded = t.elapsed().as_secs_f64();
    crate::io::write_bytes_atomically(path, &buf)?;
    log::debug!(
        "{}: {} bytes encoded in {encoded:.3} s, written and synced in {:.3} s",
        path.display(),
        buf.len(),
        t.elapsed().as_secs_f64() - encoded
    );
    Ok(uid)
}

/// The bytes of `obj` as a DICOM file: preamble, `DICM`, the file meta group (dicom-object's
/// encoder), then the data set. An Implicit VR Little Endian data set is encoded directly
/// (`encode::implicit_le`: the same bytes, without copying every value through dicom-object's
/// token stream and character-set encoder); anything else, or an object that encoder does not
/// cover, by dicom-object.
pub fn encode_file(obj: &FileDicomObject<InMemDicomObject>) -> Result<Vec<u8>> {
    let failed = |e: dicom_object::WriteError| {
        Error::InvalidArgument(format!("cannot encode the DICOM object: {e}"))
    };
    let mut buf = Vec::new();
    if obj.meta().transfer_syntax().trim_end_matches('\0') == IMPLICIT_VR_LE {
        // Preamble, magic and a file meta group of a few hundred bytes, then the data set.
        buf.reserve_exact(1024 + super::encode::implicit_le_len(obj));
        buf.extend_from_slice(&[0u8; 128]);
        buf.extend_from_slice(b"DICM");
        obj.write_meta(&mut buf).map_err(failed)?;
        if super::encode::implicit_le(obj, &mut buf).is_ok() {
            return Ok(buf);
        }
        buf.clear();
    }
    obj.write_all(&mut buf).map_err(failed)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ds_formatting() {
        assert_eq!(format_ds(1.0).unwrap(), "1");
        assert_eq!(format_ds(-0.0004).unwrap(), "0");
        assert_eq!(format_ds(-12.34567).unwrap(), "-12.346");
        assert_eq!(format_ds(123456789.125).unwrap(), "123456789.125");
        assert_eq!(format_ds(1e15).unwrap().len(), 16);
        assert!(format_ds(1e16).is_err());
        assert!(format_ds(f64::NAN).is_err());
        assert!(format_ds(f64::INFINITY).is_err());
    }

    #[test]
    fn ds_with_more_decimals_takes_fewer_when_too_long() {
        assert_eq!(format_ds_decimals(-126.0, 6).unwrap(), "-126");
        assert_eq!(format_ds_decimals(0.5, 6).unwrap(), "0.5");
        assert_eq!(format_ds_decimals(-0.0, 6).unwrap(), "0");
        assert_eq!(format_ds_decimals(0.9765625, 6).unwrap(), "0.976562");
        assert_eq!(
            format_ds_decimals(-123_456_789.123_456, 6).unwrap(),
            "-123456789.12346"
        );
        assert_eq!(
            format_ds_decimals(1234567890123.4567, 3).unwrap(),
            "1234567890123.46"
        );
        assert!(format_ds_decimals(1e16, 6).is_err());
    }

    /// The fast path gives exactly the text of `format!("{v:.N}")` (trimmed), for the RT
    /// Structure Set's 3 decimals and the phantom's 6.
    #[test]
    fn ds_fast_path_matches_float_formatting() {
        let mut rng = autocontour_test_support::XorShift::new(0x2545_f491_4f6c_dd1d);
        let mut next = || rng.next_u64();
        let mut values = vec![
            0.0005,
            -0.0005,
            1.0005,
            -2.0005,
            0.0015,
            123.4565,
            -0.0,
            0.0001,
            0.999_999_9,
            -0.999_5,
            999_999_999.999,
            -999_999_999.999_4,
            1e9,
            0.1,
            0.2,
            0.3,
            511.5,
            -250.25,
            -0.000_000_4,
            0.976_562_5,
        ];
        for _ in 0..200_000 {
            let r = next();
            let scale = 10f64.powi((r % 13) as i32 - 3);
            let u = (next() >> 11) as f64 / (1u64 << 53) as f64;
            let v = (u - 0.5) * 2.0 * scale;
            values.push(v);
            // Grid-like values: voxel positions as a CT writes them.
            values.push(-250.0 + (r % 512) as f64 * 0.976_562_5);
            values.push((v * 1000.0).round() / 1000.0 + 0.0005);
        }
        for decimals in [RTSTRUCT_DS_DECIMALS, 6] {
            for &v in &values {
                let mut fast = String::new();
                push_ds_decimals(&mut fast, v, decimals).unwrap();
                assert_eq!(
                    fast,
                    format_ds_slow(v, decimals).unwrap(),
                    "{v:e} ({decimals})"
                );
            }
        }
    }

    #[test]
    fn uids_are_unique_and_valid() {
        let a = new_uid("x");
        let b = new_uid("x");
        assert_ne!(a, b);
        for u in [a, b] {
            assert!(u.starts_with("2.25.") && u.len() <= 64);
            assert!(u.chars().all(|c| c.is_ascii_digit() || c == '.'));
            assert!(!u[5..].starts_with('0'));
        }
    }

    #[test]
    fn civil_date_is_plausible() {
        let (d, t) = now_utc();
        assert_eq!(d.len(), 8);
        assert_eq!(t.len(), 6);
        assert!(d.as_str() >= "20240101");
    }
}
