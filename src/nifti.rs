//! NIfTI-1 label maps (`.nii` / `.nii.gz`): writing a [`Volume<u8>`] with its patient geometry
//! and reading label maps back (for `mask-to-rtstruct`).
//!
//! NIfTI's world frame is RAS+ (x to the patient's left is *negative*), DICOM's is LPS+. The
//! affine written is therefore `diag(-1, -1, 1) · [direction · diag(spacing) | origin]`: voxel
//! `(i, j, k)` of the file is voxel `(i, j, k)` of the volume (i fastest, then j, then k — the
//! layout of [`crate::volume`]), and the sform maps it to the RAS position of our LPS point
//! (`x_ras = -x_lps`, `y_ras = -y_lps`, `z_ras = z_lps`). The same rigid part is written as the
//! qform (with `qfac = pixdim[0] = ±1`); both codes are 1 (scanner anatomical). Units are mm.
//!
//! Reading accepts little- or big-endian single-file NIfTI-1 (`n+1`), gzipped or not, with
//! integer or float voxels that hold whole numbers 0–255 (after `scl_slope`/`scl_inter`). The
//! grid comes from the sform when its code is positive, else the qform.
//!
//! A file that is not such a label map is an [`Error::InvalidNifti`] naming the field; a
//! volume too large for NIfTI-1 (a dimension over 32767) an [`Error::NiftiTooLarge`]. A label
//! map off the CT grid ([`check_same_grid`]) is an [`Error::NotOnCtGrid`].

use std::io::{Read, Write};
use std::path::Path;

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use crate::error::{Error, Result, cause};
use crate::volume::{Geometry, Volume};

const HEADER_LEN: usize = 348;
/// Header plus the 4-byte extension flag.
const DATA_OFFSET: usize = 352;
const DT_UINT8: i16 = 2;

/// The 4×4 RAS affine (rows x, y, z; last row `0 0 0 1` omitted) of a geometry.
pub fn ras_affine(g: &Geometry) -> [[f64; 4]; 3] {
    let mut m = [[0.0; 4]; 3];
    for (r, row) in m.iter_mut().enumerate() {
        let sign = if r < 2 { -1.0 } else { 1.0 };
        for (a, v) in row.iter_mut().take(3).enumerate() {
            *v = sign * g.direction[r][a] * g.spacing[a];
        }
        row[3] = sign * g.origin[r];
    }
    m
}

/// Quaternion (b, c, d) and qfac of a rotation matrix whose columns are unit vectors
/// (nifti1_io's `mat44_to_quatern` for an orthonormal matrix).
fn quaternion(r: [[f64; 3]; 3]) -> ([f64; 3], f64) {
    let mut r = r;
    let det = r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1])
        - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
        + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0]);
    let qfac = if det < 0.0 {
        for row in &mut r {
            row[2] = -row[2];
        }
        -1.0
    } else {
        1.0
    };
    let a = r[0][0] + r[1][1] + r[2][2] + 1.0;
    let (mut qa, mut b, mut c, mut d);
    if a > 0.5 {
        qa = 0.5 * a.sqrt();
        b = 0.25 * (r[2][1] - r[1][2]) / qa;
        c = 0.25 * (r[0][2] - r[2][0]) / qa;
        d = 0.25 * (r[1][0] - r[0][1]) / qa;
    } else {
        let xd = 1.0 + r[0][0] - (r[1][1] + r[2][2]);
        let yd = 1.0 + r[1][1] - (r[0][0] + r[2][2]);
        let zd = 1.0 + r[2][2] - (r[0][0] + r[1][1]);
        if xd > 1.0 {
            b = 0.5 * xd.sqrt();
            c = 0.25 * (r[0][1] + r[1][0]) / b;
            d = 0.25 * (r[0][2] + r[2][0]) / b;
            qa = 0.25 * (r[2][1] - r[1][2]) / b;
        } else if yd > 1.0 {
            c = 0.5 * yd.sqrt();
            b = 0.25 * (r[0][1] + r[1][0]) / c;
            d = 0.25 * (r[1][2] + r[2][1]) / c;
            qa = 0.25 * (r[0][2] - r[2][0]) / c;
        } else {
            d = 0.5 * zd.sqrt();
            b = 0.25 * (r[0][2] + r[2][0]) / d;
            c = 0.25 * (r[1][2] + r[2][1]) / d;
            qa = 0.25 * (r[1][0] - r[0][1]) / d;
        }
        if qa < 0.0 {
            qa = -qa;
            b = -b;
            c = -c;
            d = -d;
        }
    }
    let _ = qa;
    ([b, c, d], qfac)
}

/// The 352-byte little-endian NIfTI-1 header (with the empty extension flag) for a `u8` volume.
pub fn header_bytes(g: &Geometry, description: &str) -> Result<Vec<u8>> {
    let mut h = vec![0u8; DATA_OFFSET];
    let put_i16 = |h: &mut Vec<u8>, off: usize, v: i16| {
        h[off..off + 2].copy_from_slice(&v.to_le_bytes());
    };
    let put_f32 = |h: &mut Vec<u8>, off: usize, v: f64| {
        h[off..off + 4].copy_from_slice(&(v as f32).to_le_bytes());
    };
    h[0..4].copy_from_slice(&(HEADER_LEN as i32).to_le_bytes());
    h[38] = b'r';
    let mut dims = [3i16, 0, 0, 0, 1, 1, 1, 1];
    for a in 0..3 {
        dims[a + 1] =
            i16::try_from(g.size[a]).map_err(|_| Error::NiftiTooLarge { size: g.size })?;
    }
    for (n, d) in dims.iter().enumerate() {
        put_i16(&mut h, 40 + 2 * n, *d);
    }
    put_i16(&mut h, 70, DT_UINT8);
    put_i16(&mut h, 72, 8);
    let r: [[f64; 3]; 3] = std::array::from_fn(|row| {
        let sign = if row < 2 { -1.0 } else { 1.0 };
        std::array::from_fn(|a| sign * g.direction[row][a])
    });
    let (q, qfac) = quaternion(r);
    let pixdim = [
        qfac,
        g.spacing[0],
        g.spacing[1],
        g.spacing[2],
        1.0,
        1.0,
        1.0,
        1.0,
    ];
    for (n, p) in pixdim.iter().enumerate() {
        put_f32(&mut h, 76 + 4 * n, *p);
    }
    put_f32(&mut h, 108, DATA_OFFSET as f64);
    put_f32(&mut h, 112, 1.0); // scl_slope
    h[123] = 2; // xyzt_units: mm
    let d: Vec<u8> = description.bytes().take(79).collect();
    h[148..148 + d.len()].copy_from_slice(&d);
    put_i16(&mut h, 252, 1); // qform_code: scanner
    put_i16(&mut h, 254, 1); // sform_code: scanner
    let m = ras_affine(g);
    for (n, v) in q
        .iter()
        .chain([m[0][3], m[1][3], m[2][3]].iter())
        .enumerate()
    {
        put_f32(&mut h, 256 + 4 * n, *v);
    }
    for (row, vals) in m.iter().enumerate() {
        for (c, v) in vals.iter().enumerate() {
            put_f32(&mut h, 280 + 16 * row + 4 * c, *v);
        }
    }
    h[344..348].copy_from_slice(b"n+1\0");
    Ok(h)
}

fn is_gz(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
}

/// A label map as NIfTI-1 (`u8`) file bytes in memory, gzipped when `gzip`: the same bytes
/// [`write_nifti_labels`] writes to a `.nii` / `.nii.gz` path.
pub fn nifti_labels_bytes(labels: &Volume<u8>, description: &str, gzip: bool) -> Result<Vec<u8>> {
    let mut out = header_bytes(labels.geometry(), description)?;
    if gzip {
        let mut e = GzEncoder::new(Vec::new(), Compression::new(6));
        let io = |e: std::io::Error| Error::io("gzip in memory", e);
        e.write_all(&out).map_err(io)?;
        e.write_all(labels.data()).map_err(io)?;
        out = e.finish().map_err(io)?;
    } else {
        out.extend_from_slice(labels.data());
    }
    Ok(out)
}

/// Writes a label map as NIfTI-1 (`u8`), gzipped when `path` ends in `.gz`; atomically.
pub fn write_nifti_labels(path: &Path, labels: &Volume<u8>, description: &str) -> Result<()> {
    let header = header_bytes(labels.geometry(), description)?;
    let gz = is_gz(path);
    crate::io::write_atomically(path, |f| {
        let mut w = std::io::BufWriter::new(f);
        if gz {
            let mut e = GzEncoder::new(&mut w, Compression::new(6));
            e.write_all(&header)?;
            e.write_all(labels.data())?;
            e.finish()?;
        } else {
            w.write_all(&header)?;
            w.write_all(labels.data())?;
        }
        w.flush()
    })
}

fn bad(path: &Path, field: &str, reason: impl Into<String>) -> Error {
    Error::InvalidNifti {
        path: path.to_path_buf(),
        field: field.into(),
        reason: reason.into(),
        source: None,
    }
}

/// `vox_offset + voxels × bytes per voxel` from a NIfTI-1 header (either byte order), or
/// `None` when the header is not one (the full parse then says what is wrong).
fn declared_len(h: &[u8]) -> Option<u64> {
    let le = match h.get(0..4)?.try_into().ok().map(i32::from_le_bytes)? {
        348 => true,
        v if v.swap_bytes() == 348 => false,
        _ => return None,
    };
    let i16_at = |o: usize| -> Option<i64> {
        let b: [u8; 2] = h.get(o..o + 2)?.try_into().ok()?;
        Some(i64::from(if le {
            i16::from_le_bytes(b)
        } else {
            i16::from_be_bytes(b)
        }))
    };
    let ndim = i16_at(40)?;
    if !(1..=7).contains(&ndim) {
        return None;
    }
    let mut voxels: u64 = 1;
    for n in 1..=ndim as usize {
        let d = i16_at(40 + 2 * n)?;
        if d < 1 {
            return None;
        }
        voxels = voxels.checked_mul(d as u64)?;
    }
    let width: u64 = match i16_at(70)? {
        2 | 256 => 1,
        4 | 512 => 2,
        8 | 768 | 16 => 4,
        64 => 8,
        _ => return None,
    };
    let b: [u8; 4] = h.get(108..112)?.try_into().ok()?;
    let offset = f64::from(if le {
        f32::from_le_bytes(b)
    } else {
        f32::from_be_bytes(b)
    });
    if !(0.0..1e9).contains(&offset) {
        return None;
    }
    voxels.checked_mul(width)?.checked_add(offset as u64)
}

/// Reads a NIfTI-1 label map (see the module docs for what is accepted) into a volume whose
/// geometry is in DICOM LPS.
pub fn read_nifti_labels(path: &Path) -> Result<Volume<u8>> {
    read_voxels(path, "label maps", |idx, v| {
        if !(0.0..=255.0).contains(&v) || v.fract() != 0.0 {
            return Err(bad(
                path,
                "data",
                format!("voxel {idx} is {v}, not a label 0-255"),
            ));
        }
        Ok(v as u8)
    })
}

/// Reads a 3-D NIfTI-1 image (a CT in HU, for example) of any integer or float type into a
/// float32 volume whose geometry is in DICOM LPS; `scl_slope`/`scl_inter` are applied. Voxel
/// `(i, j, k)` of the file is voxel `(i, j, k)` of the volume, so the array is the one a NIfTI
/// reader such as SimpleITK gives (`[k][j][i]`). A NaN or infinite voxel is an error.
pub fn read_nifti_image(path: &Path) -> Result<Volume<f32>> {
    read_voxels(path, "images", |idx, v| {
        let f = v as f32;
        if !f.is_finite() {
            return Err(bad(path, "data", format!("voxel {idx} is {v}")));
        }
        Ok(f)
    })
}

fn read_voxels<T>(
    path: &Path,
    what: &str,
    convert: impl Fn(usize, f64) -> Result<T>,
) -> Result<Volume<T>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader: Box<dyn Read> = if is_gz(path) {
        Box::new(GzDecoder::new(std::io::BufReader::new(file)))
    } else {
        Box::new(std::io::BufReader::new(file))
    };
    // The header first; then no more bytes than it declares (a small .nii.gz that inflates to
    // gigabytes is read only as far as its header's image needs, and a header that declares
    // more than the `max_nifti_bytes` limit is refused before anything is allocated).
    let mut bytes = Vec::with_capacity(DATA_OFFSET);
    (&mut reader)
        .take(HEADER_LEN as u64)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if let Some(need) = declared_len(&bytes) {
        crate::limits::check(
            "max_nifti_bytes",
            need,
            crate::limits::limits().max_nifti_bytes,
            || format!("{}: bytes of image the header declares", path.display()),
        )?;
        reader
            .take(need.saturating_sub(HEADER_LEN as u64))
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(path, e))?;
    }
    if bytes.len() < HEADER_LEN {
        return Err(bad(
            path,
            "header",
            format!("{} bytes: too short for a NIfTI-1 header", bytes.len()),
        ));
    }
    let le = match (
        i32::from_le_bytes(bytes[0..4].try_into().unwrap_or_default()),
        i32::from_be_bytes(bytes[0..4].try_into().unwrap_or_default()),
    ) {
        (348, _) => true,
        (_, 348) => false,
        (v, _) => return Err(bad(path, "sizeof_hdr", format!("{v}, expected 348"))),
    };
    if &bytes[344..347] != b"n+1" {
        return Err(bad(path, "magic", "not a single-file NIfTI-1 image (n+1)"));
    }
    let i16_at = |o: usize| {
        let b = [bytes[o], bytes[o + 1]];
        if le {
            i16::from_le_bytes(b)
        } else {
            i16::from_be_bytes(b)
        }
    };
    let f32_at = |o: usize| {
        let b = [bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]];
        f64::from(if le {
            f32::from_le_bytes(b)
        } else {
            f32::from_be_bytes(b)
        })
    };
    let ndim = i16_at(40);
    if !(1..=7).contains(&ndim) {
        return Err(bad(path, "dim[0]", format!("{ndim}")));
    }
    let mut size = [1usize; 3];
    for n in 1..=ndim as usize {
        let d = i16_at(40 + 2 * n);
        if d < 1 {
            return Err(bad(path, "dim", format!("dim[{n}] = {d}")));
        }
        if n <= 3 {
            size[n - 1] = d as usize;
        } else if d != 1 {
            return Err(bad(
                path,
                "dim",
                format!("dim[{n}] = {d}: only 3-D {what} are supported"),
            ));
        }
    }
    let datatype = i16_at(70);
    let width = match datatype {
        2 | 256 => 1,
        4 | 512 => 2,
        8 | 768 | 16 => 4,
        64 => 8,
        other => {
            return Err(bad(
                path,
                "datatype",
                format!("{other} is not an integer or float type supported for {what}"),
            ));
        }
    };
    let offset = f32_at(108);
    if offset.is_nan() || offset < HEADER_LEN as f64 || offset.fract() != 0.0 {
        return Err(bad(path, "vox_offset", format!("{offset}")));
    }
    let offset = offset as usize;
    let n = size[0] * size[1] * size[2];
    let end = offset
        .checked_add(n.saturating_mul(width))
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| {
            bad(
                path,
                "data",
                format!(
                    "{} voxels of {width} bytes from offset {offset} do not fit {} bytes",
                    n,
                    bytes.len()
                ),
            )
        })?;
    let (slope, inter) = match (f32_at(112), f32_at(116)) {
        (s, i) if s != 0.0 && s.is_finite() && i.is_finite() => (s, i),
        _ => (1.0, 0.0),
    };
    let raw = &bytes[offset..end];
    let mut data = Vec::with_capacity(n);
    for (idx, c) in raw.chunks_exact(width).enumerate() {
        let v: f64 = match (datatype, le) {
            (2, _) => f64::from(c[0]),
            (256, _) => f64::from(c[0] as i8),
            (4, true) => f64::from(i16::from_le_bytes([c[0], c[1]])),
            (4, false) => f64::from(i16::from_be_bytes([c[0], c[1]])),
            (512, true) => f64::from(u16::from_le_bytes([c[0], c[1]])),
            (512, false) => f64::from(u16::from_be_bytes([c[0], c[1]])),
            (8, true) => f64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            (8, false) => f64::from(i32::from_be_bytes([c[0], c[1], c[2], c[3]])),
            (768, true) => f64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            (768, false) => f64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]])),
            (16, true) => f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            (16, false) => f64::from(f32::from_be_bytes([c[0], c[1], c[2], c[3]])),
            (_, true) => f64::from_le_bytes(c.try_into().unwrap_or_default()),
            (_, false) => f64::from_be_bytes(c.try_into().unwrap_or_default()),
        };
        data.push(convert(idx, v * slope + inter)?);
    }
    let affine: [[f64; 4]; 3] = if i16_at(254) > 0 {
        std::array::from_fn(|r| std::array::from_fn(|c| f32_at(280 + 16 * r + 4 * c)))
    } else if i16_at(252) > 0 {
        let [b, c, d] = [f32_at(256), f32_at(260), f32_at(264)];
        let a = (1.0 - (b * b + c * c + d * d)).max(0.0).sqrt();
        let qfac = if f32_at(76) < 0.0 { -1.0 } else { 1.0 };
        let rot = [
            [
                a * a + b * b - c * c - d * d,
                2.0 * (b * c - a * d),
                2.0 * (b * d + a * c),
            ],
            [
                2.0 * (b * c + a * d),
                a * a + c * c - b * b - d * d,
                2.0 * (c * d - a * b),
            ],
            [
                2.0 * (b * d - a * c),
                2.0 * (c * d + a * b),
                a * a + d * d - c * c - b * b,
            ],
        ];
        let px = [f32_at(80), f32_at(84), f32_at(88) * qfac];
        let off = [f32_at(268), f32_at(272), f32_at(276)];
        std::array::from_fn(|r| {
            let mut row = [0.0; 4];
            for a in 0..3 {
                row[a] = rot[r][a] * px[a];
            }
            row[3] = off[r];
            row
        })
    } else {
        return Err(bad(
            path,
            "sform_code/qform_code",
            "both 0: the file does not say where its voxels are",
        ));
    };
    let mut spacing = [0.0; 3];
    let mut direction = [[0.0; 3]; 3];
    for a in 0..3 {
        let col: [f64; 3] = std::array::from_fn(|r| {
            let sign = if r < 2 { -1.0 } else { 1.0 };
            sign * affine[r][a]
        });
        let norm = (col[0] * col[0] + col[1] * col[1] + col[2] * col[2]).sqrt();
        if !(norm.is_finite() && norm > 0.0) {
            return Err(bad(path, "affine", format!("axis {a} has length {norm}")));
        }
        spacing[a] = norm;
        for r in 0..3 {
            direction[r][a] = col[r] / norm;
        }
    }
    let origin = [-affine[0][3], -affine[1][3], affine[2][3]];
    let g = Geometry::new(size, origin, spacing, direction).map_err(|e| Error::InvalidNifti {
        path: path.to_path_buf(),
        field: "affine".into(),
        reason: e.to_string(),
        source: cause(e),
    })?;
    Volume::new(g, data)
}

/// Checks that a label map lies on the CT grid (same size, and origin, spacing and axes equal
/// within NIfTI's single precision); `what` names the label map in the error.
pub fn check_same_grid(labels: &Geometry, ct: &Geometry, what: &Path) -> Result<()> {
    let mut problems = Vec::new();
    if labels.size != ct.size {
        problems.push(format!("size {:?} vs CT {:?}", labels.size, ct.size));
    }
    for a in 0..3 {
        let tol = 1e-3 * ct.spacing[a].max(1.0);
        if (labels.spacing[a] - ct.spacing[a]).abs() > tol {
            problems.push(format!(
                "spacing {:?} vs CT {:?}",
                labels.spacing, ct.spacing
            ));
            break;
        }
    }
    for a in 0..3 {
        let (x, y) = (labels.axis(a), ct.axis(a));
        if (0..3).any(|r| (x[r] - y[r]).abs() > 1e-3) {
            problems.push(format!("axis {a} {x:?} vs CT {y:?}"));
        }
    }
    let d = (0..3)
        .map(|r| (labels.origin[r] - ct.origin[r]).powi(2))
        .sum::<f64>()
        .sqrt();
    if d > 0.01 + 1e-6 * ct.origin.iter().map(|v| v.abs()).fold(0.0, f64::max) {
        problems.push(format!(
            "origin {:?} vs CT {:?} ({d:.3} mm apart)",
            labels.origin, ct.origin
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::NotOnCtGrid {
            what: what.display().to_string(),
            detail: problems.join("; "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oblique() -> Geometry {
        // Rows along -x (negated row cosine) and a slight rotation about z.
        let (s, c) = (0.2f64.sin(), 0.2f64.cos());
        let dir = [[-c, -s, 0.0], [-s, c, 0.0], [0.0, 0.0, -1.0]];
        // Column vectors: i = (-c, -s, 0), j = (-s, c, 0), k = (0, 0, -1).
        Geometry::new([5, 4, 3], [-120.5, 30.25, 800.0], [0.7, 0.8, 2.5], dir).unwrap()
    }

    #[test]
    fn round_trip_keeps_voxels_and_geometry() {
        let g = oblique();
        let data: Vec<u8> = (0..g.voxel_count()).map(|v| (v % 7) as u8).collect();
        let vol = Volume::new(g, data.clone()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        for name in ["l.nii.gz", "l.nii"] {
            let p = dir.path().join(name);
            write_nifti_labels(&p, &vol, "test").unwrap();
            let back = read_nifti_labels(&p).unwrap();
            assert_eq!(back.data(), &data[..]);
            check_same_grid(back.geometry(), &g, &p).unwrap();
        }
    }

    #[test]
    fn affine_maps_voxels_to_ras() {
        let g = oblique();
        let m = ras_affine(&g);
        let ijk = [2.0, 3.0, 1.0];
        let lps = g.index_to_patient(ijk);
        for r in 0..3 {
            let v = m[r][0] * ijk[0] + m[r][1] * ijk[1] + m[r][2] * ijk[2] + m[r][3];
            let want = if r < 2 { -lps[r] } else { lps[r] };
            assert!((v - want).abs() < 1e-9, "row {r}: {v} vs {want}");
        }
    }

    #[test]
    fn qform_alone_gives_the_same_grid() {
        let g = oblique();
        let vol = Volume::new(g, vec![1u8; g.voxel_count()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("q.nii");
        write_nifti_labels(&p, &vol, "").unwrap();
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[254..256].copy_from_slice(&0i16.to_le_bytes()); // sform_code = 0
        std::fs::write(&p, &bytes).unwrap();
        let back = read_nifti_labels(&p).unwrap();
        check_same_grid(back.geometry(), &g, &p).unwrap();
    }

    #[test]
    fn too_large_for_nifti_is_named() {
        let g = Geometry::new(
            [40_000, 1, 1],
            [0.0; 3],
            [1.0; 3],
            [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        )
        .unwrap();
        assert!(matches!(
            header_bytes(&g, ""),
            Err(Error::NiftiTooLarge {
                size: [40_000, 1, 1]
            })
        ));
    }

    #[test]
    fn rejects_non_labels_and_truncation() {
        let g = oblique();
        let vol = Volume::new(g, vec![3u8; g.voxel_count()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.nii");
        write_nifti_labels(&p, &vol, "").unwrap();
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 1]).unwrap();
        let e = read_nifti_labels(&p).unwrap_err();
        assert!(matches!(e, Error::InvalidNifti { .. }), "{e}");
        assert!(e.to_string().contains("do not fit"), "{e}");
        std::fs::write(&p, &bytes[..100]).unwrap();
        let e = read_nifti_labels(&p).unwrap_err();
        assert!(
            matches!(&e, Error::InvalidNifti { field, .. } if field == "header"),
            "{e}"
        );
    }
}
