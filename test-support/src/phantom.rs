//! A synthetic CT phantom with known anatomy, written as a real DICOM CT series in any
//! orientation, with its ground-truth label map.
//!
//! The phantom is defined analytically in the patient frame (LPS, mm) around a centre point `c`:
//!
//! | label | name         | HU    | shape (offsets from `c`, mm)                                        |
//! |-------|--------------|-------|----------------------------------------------------------------------|
//! | 0     | `background` | −1000 | everything else                                                      |
//! | 1     | `body`       | 40    | ellipsoid, semi-axes 90 (x) × 65 (y) × 85 (z)                        |
//! | 2     | `lung_left`  | −800  | ellipsoid at (+40, −5, +15), semi-axes 28 × 35 × 45 (patient's left) |
//! | 3     | `lung_right` | −700  | ellipsoid at (−40, −5, +15), semi-axes 32 × 38 × 50                  |
//! | 4     | `tube`       | 300   | cylinder along z at (0, +35), radius 8, z from −50 to +50            |
//! | 5     | `ring`       | 150   | annulus along z at (0, −25, −40), radii 7…19, half-height 10 (a hole)|
//!
//! Later rows win where shapes overlap; the ring's hole is `body`. A voxel's label is the label
//! of its centre. Stored values are HU + 1024 (unsigned 16 bit, Rescale Intercept −1024), so the
//! loaded HU volume equals [`Phantom::hu`] exactly.
//!
//! Slices are numbered along the slice normal (`k`), exactly as
//! [`load_series`](autocontour::dicom::load_series) orders them, so the label volume and a loaded
//! series share one [`Geometry`]. Instance Numbers and file names follow the acquisition order,
//! which for [`Orientation::AxialFfs`] runs against `k`.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use serde::Serialize;
use sha2::{Digest, Sha256};

use autocontour::dicom::write::format_ds_decimals;
use autocontour::volume::{Geometry, Volume, cross};
use autocontour::{Error, Result};

/// One structure of the phantom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Structure {
    /// Value in the label map.
    pub label: u8,
    /// Short name (also the ROI name other modules use).
    pub name: &'static str,
    /// Hounsfield units written for it.
    pub hu: i16,
}

/// The phantom's structures, indexed by label.
pub const STRUCTURES: [Structure; 6] = [
    Structure {
        label: 0,
        name: "background",
        hu: -1000,
    },
    Structure {
        label: 1,
        name: "body",
        hu: 40,
    },
    Structure {
        label: 2,
        name: "lung_left",
        hu: -800,
    },
    Structure {
        label: 3,
        name: "lung_right",
        hu: -700,
    },
    Structure {
        label: 4,
        name: "tube",
        hu: 300,
    },
    Structure {
        label: 5,
        name: "ring",
        hu: 150,
    },
];

/// How the slices of the written series are oriented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Orientation {
    /// Axial, head first supine: rows along +x, columns along +y, IOP `1\0\0\0\1\0`.
    AxialHfs,
    /// Axial with Patient Position FFS but an identity IOP (as the RIDER CT), slices acquired
    /// from head to feet (Instance Numbers run against the normal). Geometry must come from
    /// IPP/IOP alone.
    AxialFfs,
    /// Axial with the row cosine negated: IOP `-1\0\0\0\1\0` (normal −z).
    NegatedRow,
    /// Axial with the column cosine negated: IOP `1\0\0\0\-1\0` (normal −z).
    NegatedCol,
    /// Coronal: IOP `1\0\0\0\0\-1` (normal +y).
    Coronal,
    /// Sagittal: IOP `0\1\0\0\0\-1` (normal −x).
    Sagittal,
}

impl Orientation {
    /// Every orientation, in CLI-name order.
    pub const ALL: [Orientation; 6] = [
        Orientation::AxialHfs,
        Orientation::AxialFfs,
        Orientation::NegatedRow,
        Orientation::NegatedCol,
        Orientation::Coronal,
        Orientation::Sagittal,
    ];

    /// The CLI name (`axial-hfs`, `axial-ffs`, `negated-row`, `negated-col`, `coronal`,
    /// `sagittal`).
    pub fn name(self) -> &'static str {
        match self {
            Orientation::AxialHfs => "axial-hfs",
            Orientation::AxialFfs => "axial-ffs",
            Orientation::NegatedRow => "negated-row",
            Orientation::NegatedCol => "negated-col",
            Orientation::Coronal => "coronal",
            Orientation::Sagittal => "sagittal",
        }
    }

    /// Image Orientation (Patient): row cosine then column cosine.
    pub fn iop(self) -> [f64; 6] {
        match self {
            Orientation::AxialHfs | Orientation::AxialFfs => [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
            Orientation::NegatedRow => [-1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
            Orientation::NegatedCol => [1.0, 0.0, 0.0, 0.0, -1.0, 0.0],
            Orientation::Coronal => [1.0, 0.0, 0.0, 0.0, 0.0, -1.0],
            Orientation::Sagittal => [0.0, 1.0, 0.0, 0.0, 0.0, -1.0],
        }
    }

    /// Patient Position written into the files.
    pub fn patient_position(self) -> &'static str {
        match self {
            Orientation::AxialFfs => "FFS",
            _ => "HFS",
        }
    }
}

impl FromStr for Orientation {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Orientation::ALL
            .into_iter()
            .find(|o| o.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Orientation::ALL.iter().map(|o| o.name()).collect();
                Error::InvalidArgument(format!(
                    "unknown phantom orientation {s:?}; expected one of {}",
                    names.join(", ")
                ))
            })
    }
}

/// Transfer syntax of the written files (uncompressed ones; dicom-rs encodes them natively).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PhantomSyntax {
    /// Implicit VR Little Endian (1.2.840.10008.1.2), the default.
    ImplicitLittle,
    /// Explicit VR Little Endian (1.2.840.10008.1.2.1).
    ExplicitLittle,
    /// Explicit VR Big Endian (1.2.840.10008.1.2.2, retired but still met).
    ExplicitBig,
    /// Deflated Explicit VR Little Endian (1.2.840.10008.1.2.1.99).
    Deflated,
}

impl PhantomSyntax {
    /// Transfer syntax UID.
    pub fn uid(self) -> &'static str {
        match self {
            PhantomSyntax::ImplicitLittle => uids::IMPLICIT_VR_LITTLE_ENDIAN,
            PhantomSyntax::ExplicitLittle => uids::EXPLICIT_VR_LITTLE_ENDIAN,
            PhantomSyntax::ExplicitBig => "1.2.840.10008.1.2.2",
            PhantomSyntax::Deflated => uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
        }
    }
}

impl FromStr for PhantomSyntax {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "implicit-le" => Ok(PhantomSyntax::ImplicitLittle),
            "explicit-le" => Ok(PhantomSyntax::ExplicitLittle),
            "explicit-be" => Ok(PhantomSyntax::ExplicitBig),
            "deflate" => Ok(PhantomSyntax::Deflated),
            _ => Err(Error::InvalidArgument(format!(
                "unknown transfer syntax {s:?}; expected implicit-le, explicit-le, explicit-be or deflate"
            ))),
        }
    }
}

/// What to build: grid size, spacing, orientation and where the phantom sits.
#[derive(Debug, Clone, Serialize)]
pub struct PhantomSpec {
    /// Slice orientation.
    pub orientation: Orientation,
    /// Columns, rows, slices.
    pub size: [usize; 3],
    /// Column spacing (along a row), row spacing (along a column), slice gap; mm.
    pub spacing: [f64; 3],
    /// Patient position of the phantom's centre, which is also the grid's centre, mm.
    pub center: [f64; 3],
    /// Seed for the UIDs; the same seed gives the same UIDs. `None`: unique per call.
    pub seed: Option<String>,
}

impl Default for PhantomSpec {
    /// 64 × 64 × 40 voxels of 4 × 4 × 5 mm, axial HFS, centred at (0, 0, 0).
    fn default() -> Self {
        PhantomSpec {
            orientation: Orientation::AxialHfs,
            size: [64, 64, 40],
            spacing: [4.0, 4.0, 5.0],
            center: [0.0; 3],
            seed: None,
        }
    }
}

/// The built phantom: geometry, labels and HU on the grid of the series it writes.
#[derive(Debug, Clone)]
pub struct Phantom {
    /// What it was built from.
    pub spec: PhantomSpec,
    /// Ground-truth labels (see [`STRUCTURES`]), on the loaded series' grid.
    pub labels: Volume<u8>,
    /// Hounsfield units, as a loader must return them.
    pub hu: Volume<i16>,
    /// Study, series and frame-of-reference UIDs written.
    pub uids: PhantomUids,
}

/// UIDs shared by all slices of a written phantom.
#[derive(Debug, Clone, Serialize)]
pub struct PhantomUids {
    /// Study Instance UID.
    pub study: String,
    /// Series Instance UID.
    pub series: String,
    /// Frame of Reference UID.
    pub frame_of_reference: String,
}

/// Label of the analytic phantom at `offset` = patient point − phantom centre (mm).
pub fn label_at_offset(d: [f64; 3]) -> u8 {
    let ell = |c: [f64; 3], r: [f64; 3]| {
        let q: f64 = (0..3).map(|a| ((d[a] - c[a]) / r[a]).powi(2)).sum();
        q <= 1.0
    };
    let radial = |cx: f64, cy: f64| ((d[0] - cx).powi(2) + (d[1] - cy).powi(2)).sqrt();
    let r_ring = radial(0.0, -25.0);
    if (7.0..=19.0).contains(&r_ring) && (d[2] + 40.0).abs() <= 10.0 {
        return 5;
    }
    if radial(0.0, 35.0) <= 8.0 && d[2].abs() <= 50.0 {
        return 4;
    }
    if ell([-40.0, -5.0, 15.0], [32.0, 38.0, 50.0]) {
        return 3;
    }
    if ell([40.0, -5.0, 15.0], [28.0, 35.0, 45.0]) {
        return 2;
    }
    if ell([0.0; 3], [90.0, 65.0, 85.0]) {
        return 1;
    }
    0
}

/// A point well inside each structure (offsets from the centre, mm), at least 4 mm from any
/// boundary; label 1 (`body`) is given twice, the second time in the ring's hole.
pub const LANDMARK_OFFSETS: [(u8, [f64; 3]); 7] = [
    (0, [-85.0, 60.0, 0.0]),
    (1, [0.0, -50.0, 30.0]),
    (2, [40.0, -5.0, 15.0]),
    (3, [-40.0, -5.0, 15.0]),
    (4, [0.0, 35.0, 0.0]),
    (5, [13.0, -25.0, -40.0]),
    (1, [0.0, -25.0, -40.0]),
];

static UNIQUE: AtomicU64 = AtomicU64::new(0);

fn make_uid(seed: &str, what: &str) -> String {
    let h = Sha256::digest(format!("{seed}/{what}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(h.get(..16).unwrap_or(&[0u8; 16]));
    // UUID-derived UIDs under 2.25 (ISO/IEC 9834-8): at most 39 digits.
    format!("2.25.{}", u128::from_be_bytes(b) >> 1)
}

/// A DS value: at most 16 characters (6 decimals, trailing zeros dropped; fewer decimals when
/// 6 do not fit), through the SDK's own Decimal String formatter.
fn ds(x: f64) -> Result<String> {
    format_ds_decimals(x, 6)
}

/// `x` as written to a DS (rounded to 6 decimals), or `x` itself when it cannot be written.
fn round6(x: f64) -> f64 {
    ds(x).ok().and_then(|s| s.parse().ok()).unwrap_or(x)
}

fn ds_multi(v: &[f64]) -> Result<PrimitiveValue> {
    Ok(PrimitiveValue::Strs(
        v.iter().map(|&x| ds(x)).collect::<Result<_>>()?,
    ))
}

impl Phantom {
    /// Builds the phantom on the grid described by `spec`.
    pub fn new(spec: PhantomSpec) -> Result<Phantom> {
        if spec.size.contains(&0) || spec.size.iter().any(|&n| n > 4096) {
            return Err(Error::InvalidArgument(format!(
                "phantom size {:?}: each axis must be 1…4096",
                spec.size
            )));
        }
        if spec.spacing.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(Error::InvalidArgument(format!(
                "phantom spacing {:?} must be finite and positive",
                spec.spacing
            )));
        }
        if spec.center.iter().any(|c| !c.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "phantom centre {:?} must be finite",
                spec.center
            )));
        }
        let iop = spec.orientation.iop();
        let row = [iop[0], iop[1], iop[2]];
        let col = [iop[3], iop[4], iop[5]];
        let normal = cross(row, col);
        let direction = [
            [row[0], col[0], normal[0]],
            [row[1], col[1], normal[1]],
            [row[2], col[2], normal[2]],
        ];
        let mut origin = spec.center;
        for (a, axis) in [row, col, normal].iter().enumerate() {
            let half = 0.5 * (spec.size[a] as f64 - 1.0) * spec.spacing[a];
            for r in 0..3 {
                origin[r] -= axis[r] * half;
            }
        }
        let origin = origin.map(round6);
        let spacing = spec.spacing.map(round6);
        let geometry = Geometry::new(spec.size, origin, spacing, direction)?;
        let n = geometry.voxel_count();
        let mut labels = Vec::with_capacity(n);
        let [ni, nj, nk] = spec.size;
        for k in 0..nk {
            for j in 0..nj {
                for i in 0..ni {
                    let p = geometry.index_to_patient([i as f64, j as f64, k as f64]);
                    let d = [
                        p[0] - spec.center[0],
                        p[1] - spec.center[1],
                        p[2] - spec.center[2],
                    ];
                    labels.push(label_at_offset(d));
                }
            }
        }
        let hu: Vec<i16> = labels.iter().map(|&l| hu_of(l)).collect();
        let seed = match &spec.seed {
            Some(s) => s.clone(),
            None => format!(
                "{:?}/{}/{}",
                std::time::SystemTime::now(),
                std::process::id(),
                UNIQUE.fetch_add(1, Ordering::Relaxed)
            ),
        };
        let uids = PhantomUids {
            study: make_uid(&seed, "study"),
            series: make_uid(&seed, "series"),
            frame_of_reference: make_uid(&seed, "for"),
        };
        Ok(Phantom {
            spec,
            labels: Volume::new(geometry, labels)?,
            hu: Volume::new(geometry, hu)?,
            uids,
        })
    }

    /// The grid (same as a loaded copy of the written series).
    pub fn geometry(&self) -> &Geometry {
        self.labels.geometry()
    }

    /// Ground-truth label at a patient point (mm), from the analytic shapes.
    pub fn label_at(&self, p: [f64; 3]) -> u8 {
        let c = self.spec.center;
        label_at_offset([p[0] - c[0], p[1] - c[1], p[2] - c[2]])
    }

    /// [`LANDMARK_OFFSETS`] as patient points: `(label, point)`.
    pub fn landmarks(&self) -> Vec<(u8, [f64; 3])> {
        let c = self.spec.center;
        LANDMARK_OFFSETS
            .iter()
            .map(|&(l, d)| (l, [c[0] + d[0], c[1] + d[1], c[2] + d[2]]))
            .collect()
    }

    /// Image Position (Patient) of slice `k` as written (rounded to the DS precision).
    pub fn slice_position(&self, k: usize) -> [f64; 3] {
        self.geometry()
            .index_to_patient([0.0, 0.0, k as f64])
            .map(round6)
    }

    /// The DICOM dataset of slice `k` (volume order), pixel data included.
    pub fn slice_dataset(&self, k: usize) -> Result<InMemDicomObject> {
        let g = *self.geometry();
        let [ni, nj, nk] = g.size;
        if k >= nk {
            return Err(Error::InvalidArgument(format!(
                "slice {k} of a {nk}-slice phantom"
            )));
        }
        let (rows, cols) = (
            u16::try_from(nj).map_err(|_| Error::InvalidArgument("too many rows".into()))?,
            u16::try_from(ni).map_err(|_| Error::InvalidArgument("too many columns".into()))?,
        );
        let o = self.spec.orientation;
        let instance = self.instance_number(k);
        let seed_uid = |what: &str| make_uid(&self.uids.series, what);
        let ipp = self.slice_position(k);
        let iop = o.iop();
        let normal = g.axis(2);
        let slice_location = ipp[0] * normal[0] + ipp[1] * normal[1] + ipp[2] * normal[2];
        let pixels: Vec<u16> = self
            .hu
            .slice(k)
            .unwrap_or(&[])
            .iter()
            .map(|&h| (i32::from(h) + 1024).clamp(0, 65535) as u16)
            .collect();

        let mut obj = InMemDicomObject::new_empty();
        let mut put = |tag, vr, v: PrimitiveValue| {
            obj.put(DataElement::new(tag, vr, v));
        };
        let s = |x: &str| PrimitiveValue::from(x);
        put(tags::SPECIFIC_CHARACTER_SET, VR::CS, s("ISO_IR 100"));
        put(
            tags::IMAGE_TYPE,
            VR::CS,
            PrimitiveValue::Strs(
                ["ORIGINAL", "PRIMARY", "AXIAL"]
                    .map(String::from)
                    .to_vec()
                    .into(),
            ),
        );
        put(tags::SOP_CLASS_UID, VR::UI, s(uids::CT_IMAGE_STORAGE));
        put(
            tags::SOP_INSTANCE_UID,
            VR::UI,
            s(&seed_uid(&format!("sop/{k}"))),
        );
        put(tags::STUDY_DATE, VR::DA, s("20260101"));
        put(tags::SERIES_DATE, VR::DA, s("20260101"));
        put(tags::CONTENT_DATE, VR::DA, s("20260101"));
        put(tags::STUDY_TIME, VR::TM, s("120000"));
        put(tags::SERIES_TIME, VR::TM, s("120000"));
        put(tags::CONTENT_TIME, VR::TM, s("120000"));
        put(tags::ACCESSION_NUMBER, VR::SH, PrimitiveValue::Empty);
        put(tags::MODALITY, VR::CS, s("CT"));
        put(tags::MANUFACTURER, VR::LO, s("autocontour phantom"));
        put(
            tags::REFERRING_PHYSICIAN_NAME,
            VR::PN,
            PrimitiveValue::Empty,
        );
        put(
            tags::SERIES_DESCRIPTION,
            VR::LO,
            s(&format!("autocontour phantom {}", o.name())),
        );
        put(tags::MANUFACTURER_MODEL_NAME, VR::LO, s("synthetic"));
        put(tags::PATIENT_NAME, VR::PN, s("PHANTOM^AUTOCONTOUR"));
        put(tags::PATIENT_ID, VR::LO, s("PHANTOM"));
        put(tags::PATIENT_BIRTH_DATE, VR::DA, PrimitiveValue::Empty);
        put(tags::PATIENT_SEX, VR::CS, s("O"));
        put(tags::SLICE_THICKNESS, VR::DS, s(&ds(g.spacing[2])?));
        put(tags::KVP, VR::DS, s("120"));
        put(tags::SOFTWARE_VERSIONS, VR::LO, s(autocontour::VERSION));
        put(tags::PATIENT_POSITION, VR::CS, s(o.patient_position()));
        put(tags::STUDY_INSTANCE_UID, VR::UI, s(&self.uids.study));
        put(tags::SERIES_INSTANCE_UID, VR::UI, s(&self.uids.series));
        put(tags::STUDY_ID, VR::SH, s("1"));
        put(tags::SERIES_NUMBER, VR::IS, s("1"));
        put(tags::ACQUISITION_NUMBER, VR::IS, s("1"));
        put(tags::INSTANCE_NUMBER, VR::IS, s(&instance.to_string()));
        put(tags::IMAGE_POSITION_PATIENT, VR::DS, ds_multi(&ipp)?);
        put(tags::IMAGE_ORIENTATION_PATIENT, VR::DS, ds_multi(&iop)?);
        put(
            tags::FRAME_OF_REFERENCE_UID,
            VR::UI,
            s(&self.uids.frame_of_reference),
        );
        put(
            tags::POSITION_REFERENCE_INDICATOR,
            VR::LO,
            PrimitiveValue::Empty,
        );
        put(tags::SLICE_LOCATION, VR::DS, s(&ds(slice_location)?));
        put(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1u16));
        put(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, s("MONOCHROME2"));
        put(tags::ROWS, VR::US, PrimitiveValue::from(rows));
        put(tags::COLUMNS, VR::US, PrimitiveValue::from(cols));
        put(
            tags::PIXEL_SPACING,
            VR::DS,
            ds_multi(&[g.spacing[1], g.spacing[0]])?,
        );
        put(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16u16));
        put(tags::BITS_STORED, VR::US, PrimitiveValue::from(16u16));
        put(tags::HIGH_BIT, VR::US, PrimitiveValue::from(15u16));
        put(
            tags::PIXEL_REPRESENTATION,
            VR::US,
            PrimitiveValue::from(0u16),
        );
        put(tags::WINDOW_CENTER, VR::DS, s("40"));
        put(tags::WINDOW_WIDTH, VR::DS, s("400"));
        put(tags::RESCALE_INTERCEPT, VR::DS, s("-1024"));
        put(tags::RESCALE_SLOPE, VR::DS, s("1"));
        put(tags::RESCALE_TYPE, VR::LO, s("HU"));
        put(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(pixels.into()));
        Ok(obj)
    }

    /// Instance Number of slice `k`: acquisition order, which is against the normal for
    /// [`Orientation::AxialFfs`].
    pub fn instance_number(&self, k: usize) -> usize {
        let nk = self.geometry().size[2];
        match self.spec.orientation {
            Orientation::AxialFfs => nk - k,
            _ => k + 1,
        }
    }

    /// Writes the series into `dir` (created if needed), one file per slice named
    /// `CT<instance number>.dcm`. Each file is written to a hidden temporary name and renamed.
    /// Returns the files in volume order.
    pub fn write_series(&self, dir: &Path, syntax: PhantomSyntax) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut files = Vec::with_capacity(self.geometry().size[2]);
        for k in 0..self.geometry().size[2] {
            let path = dir.join(format!("CT{:05}.dcm", self.instance_number(k)));
            let obj = self
                .slice_dataset(k)?
                .with_meta(FileMetaTableBuilder::new().transfer_syntax(syntax.uid()))
                .map_err(|e| write_err(&path, e))?;
            let tmp = dir.join(format!(".CT{:05}.dcm.tmp", self.instance_number(k)));
            obj.write_to_file(&tmp).map_err(|e| write_err(&tmp, e))?;
            std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
            files.push(path);
        }
        Ok(files)
    }

    /// Writes the label map as `labels.raw` (u8, slice-major: `index = (k·rows + j)·cols + i`)
    /// and `labels.json` (geometry, layout, structures, UIDs) into `dir`.
    pub fn write_labels(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let raw = dir.join("labels.raw");
        write_atomic(&raw, self.labels.data())?;
        let g = self.geometry();
        let meta = serde_json::json!({
            "file": "labels.raw",
            "dtype": "uint8",
            "layout": "index = (k * rows + j) * cols + i; i = column, j = row, k = slice along the normal",
            "size": g.size,
            "origin": g.origin,
            "spacing": g.spacing,
            "direction": g.direction,
            "frame": "DICOM patient (LPS), mm; patient = origin + direction · diag(spacing) · (i, j, k)",
            "orientation": self.spec.orientation.name(),
            "center": self.spec.center,
            "structures": STRUCTURES,
            "uids": self.uids,
        });
        let text = serde_json::to_string_pretty(&meta)
            .map_err(|e| Error::InvalidArgument(format!("labels.json: {e}")))?;
        write_atomic(&dir.join("labels.json"), text.as_bytes())
    }
}

/// HU of a label (background for unknown labels).
pub fn hu_of(label: u8) -> i16 {
    STRUCTURES
        .get(usize::from(label))
        .map(|s| s.hu)
        .unwrap_or(-1000)
}

fn write_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::io(
        path,
        std::io::Error::other(format!("writing DICOM failed: {e}")),
    )
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    autocontour::io::write_bytes_atomically(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn landmarks_are_inside_their_structures_with_margin() {
        for (label, d) in LANDMARK_OFFSETS {
            // Points on a sphere of radius 4 mm around the landmark, and the landmark itself.
            for dx in [-1.0, 0.0, 1.0] {
                for dy in [-1.0, 0.0, 1.0] {
                    for dz in [-1.0, 0.0, 1.0] {
                        let n = f64::sqrt(dx * dx + dy * dy + dz * dz).max(1.0);
                        let q = [
                            d[0] + 4.0 * dx / n,
                            d[1] + 4.0 * dy / n,
                            d[2] + 4.0 * dz / n,
                        ];
                        assert_eq!(label_at_offset(q), label, "{d:?} + {dx},{dy},{dz}");
                    }
                }
            }
        }
    }

    #[test]
    fn ds_is_short_and_exact() {
        assert_eq!(ds(-126.0).unwrap(), "-126");
        assert_eq!(ds(0.5).unwrap(), "0.5");
        assert_eq!(ds(-0.0).unwrap(), "0");
        assert_eq!(ds(0.9765625).unwrap(), "0.976562");
        assert_eq!(ds(-123_456_789.123_456).unwrap(), "-123456789.12346");
    }

    #[test]
    fn grid_is_centred_and_k_follows_the_normal() {
        for o in Orientation::ALL {
            let p = Phantom::new(PhantomSpec {
                orientation: o,
                size: [8, 6, 5],
                seed: Some("t".into()),
                ..PhantomSpec::default()
            })
            .unwrap();
            let g = p.geometry();
            let mid = g.index_to_patient([3.5, 2.5, 2.0]);
            for v in mid {
                assert!(v.abs() < 1e-9, "{o:?}: centre at {mid:?}");
            }
            assert_eq!(Orientation::from_str(o.name()).unwrap(), o);
        }
        assert!(Orientation::from_str("oblique").is_err());
    }

    #[test]
    fn every_structure_is_present_and_left_lung_is_at_plus_x() {
        let p = Phantom::new(PhantomSpec::default()).unwrap();
        for s in STRUCTURES {
            assert!(p.labels.data().contains(&s.label), "{} missing", s.name);
        }
        let g = p.geometry();
        let idx = g
            .patient_to_index([40.0, -5.0, 15.0])
            .map(|x| x.round() as usize);
        assert_eq!(p.labels.get(idx[0], idx[1], idx[2]), Some(&2));
    }

    #[test]
    fn rejects_bad_specs() {
        for spec in [
            PhantomSpec {
                size: [0, 4, 4],
                ..PhantomSpec::default()
            },
            PhantomSpec {
                spacing: [1.0, f64::NAN, 1.0],
                ..PhantomSpec::default()
            },
        ] {
            assert!(matches!(Phantom::new(spec), Err(Error::InvalidArgument(_))));
        }
    }
}
