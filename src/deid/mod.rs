//! Pseudonymisation of DICOM data sets before they reach the model or leave the site.
//!
//! An allow-list in the spirit of PS3.15 Annex E (Basic Application Confidentiality Profile with
//! the Retain Longitudinal Temporal Information with Modified Dates Option): every element, at
//! any depth, is kept only when [`rules::RULES`] lists it, and then handled by its
//! [`Action`]. Everything else (private attributes, overlays, curves, icon images, digital
//! signatures, free text, unknown attributes) is removed.
//!
//! The pseudonyms are keyed with a site secret ([`SiteKey`], at least [`MIN_KEY_BYTES`] bytes)
//! through HMAC-SHA-256, so only the key holder can link a pseudonym to an original value:
//!
//! * UIDs: [`pseudonym_uid`], `2.25.` + the decimal form of a UUID built from the first 128 bits
//!   of HMAC(key, `uid` ‖ original), the same for the same UID in every file and sequence;
//! * the patient: [`patient_pseudonym`] for Patient's Name and Patient ID;
//! * dates: shifted by [`date_offset_days`], a per-patient offset of −3650 … −365 days derived
//!   from the key and the Patient ID; times of day are kept.
//!
//! [`Pseudonymiser::pseudonymise`] works on a data set in memory (a gateway's received
//! instance) and returns a [`Report`] holding what re-identification needs (the original
//! identifying attributes and every replaced UID); [`Pseudonymiser::pseudonymise_file`] also
//! rebuilds the file meta group; [`Pseudonymiser::pseudonymise_folder`] is the batch form of
//! `autocontour anonymise`; [`reidentify`] puts the originals back on a result made from
//! pseudonymised instances. Burned-in text in the pixels is not removed. See
//! `docs/deidentification.md`.
//!
//! ```no_run
//! use autocontour::deid::{Pseudonymiser, SiteKey};
//! let key = SiteKey::locate(None)?; // $AUTOCONTOUR_DEID_KEY_FILE
//! let p = Pseudonymiser::new(key);
//! let report = p.pseudonymise_folder("in".as_ref(), "out".as_ref())?;
//! println!("{} files written", report.written.len());
//! # Ok::<(), autocontour::Error>(())
//! ```

mod folder;
pub mod rules;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dicom_core::header::Header as _;
use dicom_core::value::{DataSetSequence, PrimitiveValue, Value};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub use folder::{FolderReport, WrittenFile};
pub use rules::{Action, RULES, Rule, rule_for};

/// Deepest sequence nesting walked (files read from disk were already held to the
/// `max_sequence_depth` limit; this bounds the recursion for objects built in memory too).
const MAX_SEQUENCE_DEPTH: usize = crate::limits::SEQUENCE_DEPTH_CEILING as usize;
use crate::dicom::write::{code_item, put, put_seq, with_file_meta};
use crate::error::{Error, Result};

/// Fewest bytes a site key may have (256 bits, the HMAC-SHA-256 block's security level).
pub const MIN_KEY_BYTES: usize = 32;

/// Environment variable naming the site key file when none is given explicitly.
pub const KEY_FILE_ENV: &str = "AUTOCONTOUR_DEID_KEY_FILE";

/// Largest key file read (a key is a few dozen bytes; a large file is a wrong path).
const MAX_KEY_FILE_BYTES: u64 = 4096;

/// Earliest and latest date offsets, days (see [`date_offset_days`]).
pub const DATE_OFFSET_RANGE: (i64, i64) = (-3650, -365);

/// De-identification Method (0012,0063) written into every output (a Long String, ≤ 64
/// characters).
pub const DEIDENTIFICATION_METHOD: &str =
    "autocontour allow-list: PS3.15 E Basic + Rtn Long Modif Dates";

/// The site's secret for HMAC-SHA-256. Its bytes are never printed (`Debug` shows the length).
#[derive(Clone)]
pub struct SiteKey {
    mac: Hmac<Sha256>,
    len: usize,
}

impl std::fmt::Debug for SiteKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SiteKey({} bytes)", self.len)
    }
}

impl SiteKey {
    /// A key from its bytes: at least [`MIN_KEY_BYTES`], not all the same byte (a file of zeros
    /// is a mistake, not a secret); otherwise [`Error::InvalidSiteKey`].
    pub fn new(bytes: &[u8]) -> Result<Self> {
        Self::checked(bytes, None)
    }

    fn checked(bytes: &[u8], path: Option<&Path>) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidSiteKey {
            path: path.map(Path::to_path_buf),
            reason,
        };
        if bytes.len() < MIN_KEY_BYTES {
            return Err(invalid(format!(
                "{} bytes; a site key needs at least {MIN_KEY_BYTES} (make one with `head -c 32 /dev/urandom > site.key`)",
                bytes.len()
            )));
        }
        if bytes.iter().all(|&b| Some(&b) == bytes.first()) {
            return Err(invalid("every byte is the same; use random bytes".into()));
        }
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(bytes)
            .map_err(|e| invalid(format!("HMAC-SHA-256 refuses the key: {e}")))?;
        Ok(SiteKey {
            mac,
            len: bytes.len(),
        })
    }

    /// Reads a key file: its bytes, as they are, are the key.
    pub fn from_file(path: &Path) -> Result<Self> {
        use std::io::Read;
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut bytes = Vec::new();
        f.take(MAX_KEY_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(path, e))?;
        if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
            return Err(Error::InvalidSiteKey {
                path: Some(path.to_path_buf()),
                reason: format!("larger than {MAX_KEY_FILE_BYTES} bytes; is it the key file?"),
            });
        }
        Self::checked(&bytes, Some(path))
    }

    /// The key from `explicit` when given, else from the file named by [`KEY_FILE_ENV`];
    /// [`Error::SiteKeyMissing`] when neither is set.
    pub fn locate(explicit: Option<&Path>) -> Result<Self> {
        if let Some(p) = explicit {
            return Self::from_file(p);
        }
        match std::env::var_os(KEY_FILE_ENV) {
            Some(p) if !p.is_empty() => Self::from_file(Path::new(&p)),
            _ => Err(Error::SiteKeyMissing { env: KEY_FILE_ENV }),
        }
    }

    /// HMAC-SHA-256 of `domain`, a zero byte and `data` (the domain keeps the pseudonyms of
    /// UIDs, patients and date offsets apart).
    fn mac(&self, domain: &str, data: &str) -> [u8; 32] {
        let mut m = self.mac.clone();
        m.update(domain.as_bytes());
        m.update(&[0]);
        m.update(data.as_bytes());
        m.finalize().into_bytes().into()
    }
}

/// A value as compared and hashed: without the padding (NUL, spaces) DICOM allows around it.
fn trimmed(s: &str) -> &str {
    s.trim_matches(|c: char| c == '\0' || c.is_whitespace())
}

/// Whether `uid` is a registered DICOM UID (SOP classes, transfer syntaxes, coding schemes…),
/// which identifies nothing and is kept.
pub fn is_registered_uid(uid: &str) -> bool {
    trimmed(uid).starts_with("1.2.840.10008.")
}

/// The pseudonym of a UID under `key`: `2.25.` followed by the decimal form of a UUID whose 128
/// bits are the first 16 bytes of HMAC-SHA-256(key, `uid` ‖ 0 ‖ uid), with the RFC 9562 version
/// (8, custom) and variant bits set, as the `2.25` arc (ISO/IEC 9834-8) requires a UUID. The same
/// UID gives the same pseudonym in every file; without the key it cannot be confirmed from the
/// original. Padding around `uid` is ignored. At most 44 characters.
pub fn pseudonym_uid(key: &SiteKey, uid: &str) -> String {
    let d = key.mac("uid", trimmed(uid));
    let mut b = [0u8; 16];
    b.copy_from_slice(d.get(..16).unwrap_or(&[0; 16]));
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    format!("2.25.{}", u128::from_be_bytes(b))
}

/// The patient's pseudonym under `key`: `AC-` followed by the first 16 hexadecimal digits (64
/// bits) of HMAC-SHA-256(key, `patient` ‖ 0 ‖ Patient ID). It becomes the Patient ID, and the
/// family name of Patient's Name (`AC-…^`). The same Patient ID gives the same pseudonym in
/// every study.
pub fn patient_pseudonym(key: &SiteKey, patient_id: &str) -> String {
    let d = key.mac("patient", trimmed(patient_id));
    let mut s = String::from("AC-");
    for b in d.iter().take(8) {
        s.push_str(&format!("{b:02X}"));
    }
    s
}

/// The patient's date offset under `key`, days, in [`DATE_OFFSET_RANGE`] (−3650 … −365): from
/// HMAC-SHA-256(key, `date-offset` ‖ 0 ‖ Patient ID). Every date of the patient moves by it, so
/// intervals between the patient's studies are kept; shifted dates always lie in the past.
pub fn date_offset_days(key: &SiteKey, patient_id: &str) -> i64 {
    let d = key.mac("date-offset", trimmed(patient_id));
    let mut b = [0u8; 8];
    b.copy_from_slice(d.get(..8).unwrap_or(&[0; 8]));
    let (lo, hi) = DATE_OFFSET_RANGE;
    let span = (hi - lo + 1) as u64;
    lo + (u64::from_be_bytes(b) % span) as i64
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days-from-civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `date` (DA `YYYYMMDD`, or the old `YYYY.MM.DD`) moved by `days`, as `YYYYMMDD`; `None` when it
/// is not a valid full date (it is then emptied, never kept).
pub fn shift_date(date: &str, days: i64) -> Option<String> {
    let digits: String = trimmed(date).chars().filter(|&c| c != '.').collect();
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let y: i64 = digits.get(0..4)?.parse().ok()?;
    let m: i64 = digits.get(4..6)?.parse().ok()?;
    let d: i64 = digits.get(6..8)?.parse().ok()?;
    if !(1..=12).contains(&m) || d < 1 {
        return None;
    }
    let days_in_month =
        days_from_civil(y + i64::from(m == 12), m % 12 + 1, 1) - days_from_civil(y, m, 1);
    if d > days_in_month {
        return None;
    }
    let (y, m, d) = crate::dicom::write::civil_from_days(days_from_civil(y, m, d) + days);
    (0..=9999)
        .contains(&y)
        .then(|| format!("{y:04}{m:02}{d:02}"))
}

/// A DT value (`YYYYMMDD[HHMMSS[.F…]][&ZZXX]`) with its date part moved by `days` and the rest
/// (time of day, fraction, UTC offset) kept; `None` when it does not start with a full date
/// (values of year or month precision are emptied).
pub fn shift_datetime(dt: &str, days: i64) -> Option<String> {
    let t = trimmed(dt);
    let date = t.get(..8)?;
    let rest = t.get(8..)?;
    let shifted = shift_date(date, days)?;
    Some(format!("{shifted}{rest}"))
}

/// The identifying attributes of one instance, as found in its top-level data set (absent or
/// empty ones are `None`). A [`Report`] holds the original ones, so a gateway can put them back
/// on its results, and the pseudonymised ones.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    /// Patient's Name (0010,0010).
    pub patient_name: Option<String>,
    /// Patient ID (0010,0020).
    pub patient_id: Option<String>,
    /// Patient's Birth Date (0010,0030).
    pub patient_birth_date: Option<String>,
    /// Patient's Sex (0010,0040).
    pub patient_sex: Option<String>,
    /// Study Instance UID (0020,000D).
    pub study_instance_uid: Option<String>,
    /// Series Instance UID (0020,000E).
    pub series_instance_uid: Option<String>,
    /// SOP Instance UID (0008,0018).
    pub sop_instance_uid: Option<String>,
    /// Frame of Reference UID (0020,0052).
    pub frame_of_reference_uid: Option<String>,
    /// Study Date (0008,0020).
    pub study_date: Option<String>,
    /// Study Time (0008,0030).
    pub study_time: Option<String>,
    /// Study ID (0020,0010).
    pub study_id: Option<String>,
    /// Accession Number (0008,0050).
    pub accession_number: Option<String>,
    /// Referring Physician's Name (0008,0090).
    pub referring_physician_name: Option<String>,
    /// Study Description (0008,1030).
    pub study_description: Option<String>,
    /// Series Description (0008,103E).
    pub series_description: Option<String>,
}

impl Identity {
    /// The identifying attributes of `obj`'s top level.
    pub fn of(obj: &InMemDicomObject) -> Identity {
        let s = |tag| text_of(obj, tag).filter(|v| !v.is_empty());
        Identity {
            patient_name: s(tags::PATIENT_NAME),
            patient_id: s(tags::PATIENT_ID),
            patient_birth_date: s(tags::PATIENT_BIRTH_DATE),
            patient_sex: s(tags::PATIENT_SEX),
            study_instance_uid: s(tags::STUDY_INSTANCE_UID),
            series_instance_uid: s(tags::SERIES_INSTANCE_UID),
            sop_instance_uid: s(tags::SOP_INSTANCE_UID),
            frame_of_reference_uid: s(tags::FRAME_OF_REFERENCE_UID),
            study_date: s(tags::STUDY_DATE),
            study_time: s(tags::STUDY_TIME),
            study_id: s(tags::STUDY_ID),
            accession_number: s(tags::ACCESSION_NUMBER),
            referring_physician_name: s(tags::REFERRING_PHYSICIAN_NAME),
            study_description: s(tags::STUDY_DESCRIPTION),
            series_description: s(tags::SERIES_DESCRIPTION),
        }
    }
}

/// What pseudonymising one instance did, and what re-identifying its results needs.
///
/// It holds identifying data (the original values): keep it where the originals may be, never
/// beside the pseudonymised output.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Report {
    /// The instance's identifying attributes before.
    pub original: Identity,
    /// The same attributes after.
    pub pseudonymised: Identity,
    /// Every UID replaced, anywhere in the data set and its file meta group: pseudonym →
    /// original.
    pub uids: BTreeMap<String, String>,
    /// The patient's date offset, days.
    pub date_offset_days: i64,
    /// Elements kept as they were (sequences counted once, their items' elements apart).
    pub kept: usize,
    /// Elements replaced, shifted or emptied.
    pub replaced: usize,
    /// Elements removed (not on the allow-list, or unusable: a date that does not parse is
    /// emptied and counted here too).
    pub removed: usize,
}

/// The text of a top-level string element, trimmed; `None` when absent or not text.
fn text_of(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let e = obj.get(tag)?;
    element_text(e.value()).map(|s| trimmed(&s).to_string())
}

/// The text of a primitive value: strings as they are (multiple values joined with `\`); the
/// bytes of a UN value when they are text; `None` otherwise.
fn element_text(v: &Value<InMemDicomObject, dicom_object::mem::InMemFragment>) -> Option<String> {
    match v {
        Value::Primitive(PrimitiveValue::U8(bytes)) => std::str::from_utf8(bytes)
            .ok()
            .map(|s| s.trim_end_matches(['\0', ' ']).to_string()),
        Value::Primitive(p) => Some(p.to_str().into_owned()),
        _ => None,
    }
}

/// Applies the allow-list with one site key. Cheap to clone; `Send + Sync`, so one value can
/// serve every thread of a gateway.
#[derive(Debug, Clone)]
pub struct Pseudonymiser {
    key: SiteKey,
}

/// State of one data set's pass.
struct Pass<'a> {
    key: &'a SiteKey,
    offset: i64,
    pseudonym: String,
    report: Report,
}

impl Pass<'_> {
    fn uid(&mut self, original: &str) -> String {
        let o = trimmed(original);
        if o.is_empty() || is_registered_uid(o) {
            return o.to_string();
        }
        let p = pseudonym_uid(self.key, o);
        self.report.uids.insert(p.clone(), o.to_string());
        p
    }

    /// The allow-list applied to one data set (the top level or a sequence item).
    fn data_set(&mut self, obj: InMemDicomObject, depth: usize) -> InMemDicomObject {
        let mut out = InMemDicomObject::new_empty();
        for elem in obj {
            let tag = elem.tag();
            let Some(rule) = rule_for(tag) else {
                log::trace!("{tag}: removed (not on the allow-list)");
                self.report.removed += 1;
                continue;
            };
            if let Some(e) = self.element(elem, rule, depth) {
                out.put(e);
            }
        }
        out
    }

    fn element(
        &mut self,
        elem: dicom_object::mem::InMemElement,
        rule: &Rule,
        depth: usize,
    ) -> Option<dicom_object::mem::InMemElement> {
        let tag = rule.tag;
        let vr = elem.vr();
        // A value the parser could not type (UN) is used only when it is plain text the rule can
        // handle; a sequence hidden in UN cannot be inspected, so it goes.
        let out_vr = if vr == VR::UN { rule.vr } else { vr };
        match rule.action {
            Action::Keep => match elem.into_value() {
                Value::Sequence(seq) => {
                    if depth >= MAX_SEQUENCE_DEPTH {
                        log::warn!(
                            "{tag}: sequence nested deeper than {MAX_SEQUENCE_DEPTH}: removed"
                        );
                        self.report.removed += 1;
                        return None;
                    }
                    self.report.kept += 1;
                    let items: Vec<InMemDicomObject> = seq
                        .into_items()
                        .into_iter()
                        .map(|i| self.data_set(i, depth + 1))
                        .collect();
                    Some(DataElement::new(tag, VR::SQ, DataSetSequence::from(items)))
                }
                _ if rule.vr == VR::SQ => {
                    log::debug!("{tag}: a sequence stored as {vr}: removed (cannot be inspected)");
                    self.report.removed += 1;
                    None
                }
                value => {
                    self.report.kept += 1;
                    Some(DataElement::new(tag, vr, value))
                }
            },
            Action::Empty => {
                self.report.replaced += 1;
                Some(DataElement::new(tag, out_vr, PrimitiveValue::Empty))
            }
            Action::Pseudonym => {
                self.report.replaced += 1;
                // As a person name: the pseudonym is the family name (a PN without `^` reads as
                // the retired form to dciodvfy).
                let value = if out_vr == VR::PN {
                    format!("{}^", self.pseudonym)
                } else {
                    self.pseudonym.clone()
                };
                Some(DataElement::new(tag, out_vr, value))
            }
            Action::Dummy(text) => {
                self.report.replaced += 1;
                Some(DataElement::new(tag, out_vr, text))
            }
            Action::Uid => {
                let Some(text) = element_text(elem.value()) else {
                    self.report.removed += 1;
                    return None;
                };
                let values: Vec<String> = text.split('\\').map(|u| self.uid(u)).collect();
                self.report.replaced += 1;
                Some(DataElement::new(tag, VR::UI, values.join("\\")))
            }
            Action::ShiftDate => {
                let Some(text) = element_text(elem.value()) else {
                    self.report.removed += 1;
                    return None;
                };
                if trimmed(&text).is_empty() {
                    self.report.kept += 1;
                    return Some(DataElement::new(tag, out_vr, PrimitiveValue::Empty));
                }
                let is_dt = out_vr == VR::DT;
                let shifted: Option<Vec<String>> = text
                    .split('\\')
                    .map(|v| {
                        if is_dt {
                            shift_datetime(v, self.offset)
                        } else {
                            shift_date(v, self.offset)
                        }
                    })
                    .collect();
                match shifted {
                    Some(v) => {
                        self.report.replaced += 1;
                        Some(DataElement::new(tag, out_vr, v.join("\\")))
                    }
                    None => {
                        log::debug!("{tag}: a date that does not parse: emptied");
                        self.report.removed += 1;
                        Some(DataElement::new(tag, out_vr, PrimitiveValue::Empty))
                    }
                }
            }
        }
    }
}

impl Pseudonymiser {
    /// A pseudonymiser with the site's key.
    pub fn new(key: SiteKey) -> Self {
        Pseudonymiser { key }
    }

    /// The key's UID pseudonym ([`pseudonym_uid`]).
    pub fn uid(&self, uid: &str) -> String {
        pseudonym_uid(&self.key, uid)
    }

    /// Pseudonymises a data set in place: the allow-list applied at every depth, then Patient
    /// Identity Removed (YES), De-identification Method and its Code Sequence (113100, 113107)
    /// and Longitudinal Temporal Information Modified (MODIFIED) set. The patient's pseudonym
    /// and date offset come from the Patient ID, or, when it is empty, from the Study Instance
    /// UID (dates then stay consistent within the study only).
    pub fn pseudonymise(&self, obj: &mut InMemDicomObject) -> Result<Report> {
        let original = Identity::of(obj);
        let patient_key = original
            .patient_id
            .clone()
            .or_else(|| {
                original
                    .study_instance_uid
                    .as_ref()
                    .map(|u| format!("study:{u}"))
            })
            .unwrap_or_default();
        let mut pass = Pass {
            key: &self.key,
            offset: date_offset_days(&self.key, &patient_key),
            pseudonym: patient_pseudonym(&self.key, &patient_key),
            report: Report::default(),
        };
        pass.report.date_offset_days = pass.offset;
        let input = std::mem::replace(obj, InMemDicomObject::new_empty());
        let mut out = pass.data_set(input, 0);
        put(&mut out, tags::PATIENT_IDENTITY_REMOVED, VR::CS, "YES");
        put(
            &mut out,
            tags::DEIDENTIFICATION_METHOD,
            VR::LO,
            DEIDENTIFICATION_METHOD,
        );
        put_seq(
            &mut out,
            tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE,
            vec![
                code_item("113100", "DCM", "Basic Application Confidentiality Profile"),
                code_item(
                    "113107",
                    "DCM",
                    "Retain Longitudinal Temporal Information Modified Dates Option",
                ),
            ],
        );
        put(
            &mut out,
            tags::LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED,
            VR::CS,
            "MODIFIED",
        );
        pass.report.original = original;
        pass.report.pseudonymised = Identity::of(&out);
        *obj = out;
        Ok(pass.report)
    }

    /// Pseudonymises a whole file: the data set as [`pseudonymise`](Self::pseudonymise) does,
    /// and a new file meta group (same transfer syntax; Media Storage SOP Class and Instance UID
    /// from the pseudonymised data set; the SDK as implementation; no source or private
    /// information). An instance without SOP Instance UID gets the pseudonym of the original
    /// meta group's Media Storage SOP Instance UID (and its class, when it has none).
    pub fn pseudonymise_file(
        &self,
        file: DefaultDicomObject,
        name: &Path,
    ) -> Result<(DefaultDicomObject, Report)> {
        let ts = trimmed(file.meta().transfer_syntax()).to_string();
        let meta_uid = trimmed(file.meta().media_storage_sop_instance_uid()).to_string();
        let meta_class = trimmed(file.meta().media_storage_sop_class_uid()).to_string();
        let mut obj = file.into_inner();
        if text_of(&obj, tags::SOP_INSTANCE_UID).is_none_or(|s| s.is_empty()) {
            if meta_uid.is_empty() {
                return Err(Error::Pseudonymise {
                    path: name.to_path_buf(),
                    reason: "no SOP Instance UID in the data set or the file meta group".into(),
                });
            }
            put(&mut obj, tags::SOP_INSTANCE_UID, VR::UI, meta_uid.as_str());
        }
        if text_of(&obj, tags::SOP_CLASS_UID).is_none_or(|s| s.is_empty()) {
            if meta_class.is_empty() {
                return Err(Error::Pseudonymise {
                    path: name.to_path_buf(),
                    reason: "no SOP Class UID in the data set or the file meta group".into(),
                });
            }
            put(&mut obj, tags::SOP_CLASS_UID, VR::UI, meta_class.as_str());
        }
        let mut report = self.pseudonymise(&mut obj)?;
        if !meta_uid.is_empty() && !is_registered_uid(&meta_uid) {
            report
                .uids
                .insert(pseudonym_uid(&self.key, &meta_uid), meta_uid.clone());
        }
        let file = with_file_meta(obj, &ts, "pseudonymised").map_err(|e| Error::Pseudonymise {
            path: name.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok((file, report))
    }

    /// Pseudonymises every DICOM file under `input` (recursively; symbolic link loops are
    /// entered once) into `output`, as `<output>/<new Series Instance UID>/<new SOP Instance
    /// UID>.dcm`, each written atomically, so no original identifier reaches a path. Files that
    /// are not DICOM are skipped, DICOM files that cannot be read or written are listed as failed;
    /// neither stops the run. `output` must not lie inside `input`.
    pub fn pseudonymise_folder(&self, input: &Path, output: &Path) -> Result<FolderReport> {
        folder::run(self, input, output)
    }
}

/// Puts the originals back on a result made from pseudonymised instances (an RT Structure Set or
/// a Segmentation of a pseudonymised CT): every UI value, at any depth, that `uids` maps
/// (pseudonym → original, the union of the series' [`Report::uids`]) is replaced by its original,
/// so references to the CT's study, series, frame of reference and instances point at the
/// originals again; the Patient and General Study attributes of `original` (the CT's
/// [`Report::original`]) replace the pseudonymised ones, and the de-identification attributes
/// copied from the CT (Patient Identity Removed, De-identification Method and its Code Sequence,
/// Longitudinal Temporal Information Modified) are removed. UIDs the result made itself (its own
/// SOP Instance and Series UIDs) are not in `uids` and stay. Returns how many UID values were
/// restored.
pub fn reidentify(
    obj: &mut InMemDicomObject,
    uids: &BTreeMap<String, String>,
    original: &Identity,
) -> usize {
    fn walk(obj: &mut InMemDicomObject, uids: &BTreeMap<String, String>, depth: usize) -> usize {
        let mut restored = 0;
        let input = std::mem::replace(obj, InMemDicomObject::new_empty());
        for elem in input {
            let tag = elem.tag();
            let vr = elem.vr();
            let e = match elem.into_value() {
                Value::Sequence(seq) if depth < MAX_SEQUENCE_DEPTH => {
                    let items: Vec<InMemDicomObject> = seq
                        .into_items()
                        .into_iter()
                        .map(|mut i| {
                            restored += walk(&mut i, uids, depth + 1);
                            i
                        })
                        .collect();
                    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
                }
                value if vr == VR::UI => match element_text(&value) {
                    Some(text) => {
                        let values: Vec<String> = text
                            .split('\\')
                            .map(|u| match uids.get(trimmed(u)) {
                                Some(o) => {
                                    restored += 1;
                                    o.clone()
                                }
                                None => trimmed(u).to_string(),
                            })
                            .collect();
                        DataElement::new(tag, VR::UI, values.join("\\"))
                    }
                    None => DataElement::new(tag, vr, value),
                },
                value => DataElement::new(tag, vr, value),
            };
            obj.put(e);
        }
        restored
    }
    let restored = walk(obj, uids, 0);
    let attributes = [
        (tags::PATIENT_NAME, VR::PN, &original.patient_name),
        (tags::PATIENT_ID, VR::LO, &original.patient_id),
        (
            tags::PATIENT_BIRTH_DATE,
            VR::DA,
            &original.patient_birth_date,
        ),
        (tags::PATIENT_SEX, VR::CS, &original.patient_sex),
        (tags::STUDY_DATE, VR::DA, &original.study_date),
        (tags::STUDY_TIME, VR::TM, &original.study_time),
        (tags::STUDY_ID, VR::SH, &original.study_id),
        (tags::ACCESSION_NUMBER, VR::SH, &original.accession_number),
        (
            tags::REFERRING_PHYSICIAN_NAME,
            VR::PN,
            &original.referring_physician_name,
        ),
        (tags::STUDY_DESCRIPTION, VR::LO, &original.study_description),
    ];
    for (tag, vr, value) in attributes {
        match value {
            Some(v) => put(obj, tag, vr, v.as_str()),
            // Absent or empty in the original: present and empty if the result has it.
            None if obj.get(tag).is_some() => put(obj, tag, vr, ""),
            None => {}
        }
    }
    for tag in [
        tags::PATIENT_IDENTITY_REMOVED,
        tags::DEIDENTIFICATION_METHOD,
        tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE,
        tags::LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED,
    ] {
        obj.remove_element(tag);
    }
    restored
}

/// The path of a pseudonymised instance under `out`: `<series>/<sop>.dcm`, both pseudonyms.
fn output_path(out: &Path, report: &Report) -> PathBuf {
    let series = report
        .pseudonymised
        .series_instance_uid
        .clone()
        .unwrap_or_else(|| "no-series".into());
    let sop = report
        .pseudonymised
        .sop_instance_uid
        .clone()
        .unwrap_or_else(|| "no-instance".into());
    out.join(series).join(format!("{sop}.dcm"))
}

#[cfg(test)]
mod tests;
