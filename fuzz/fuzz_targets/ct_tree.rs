//! Structure-aware CT series: one to three slices built with `arbitrary` as DICOM element trees
//! (file meta, the CT attributes the loader reads, extra elements and nested sequences, native or
//! encapsulated pixel data with valid or broken RLE streams) in any of the transfer syntaxes, then
//! encoded byte by byte (lengths may lie) and loaded as one series with `load_series_buffers`.
//! A byte fuzzer rarely gets past the parser with geometry, pixel module and pixel data
//! consistent; this one starts there and bends each part.
#![no_main]
use std::io::Write;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Syntax {
    ImplicitLittle,
    ExplicitLittle,
    ExplicitBig,
    Deflated,
    Rle,
    JpegBaseline,
    JpegLossless,
    JpegLs,
    Jpeg2000,
}

impl Syntax {
    fn uid(self) -> &'static str {
        match self {
            Syntax::ImplicitLittle => "1.2.840.10008.1.2",
            Syntax::ExplicitLittle => "1.2.840.10008.1.2.1",
            Syntax::ExplicitBig => "1.2.840.10008.1.2.2",
            Syntax::Deflated => "1.2.840.10008.1.2.1.99",
            Syntax::Rle => "1.2.840.10008.1.2.5",
            Syntax::JpegBaseline => "1.2.840.10008.1.2.4.50",
            Syntax::JpegLossless => "1.2.840.10008.1.2.4.70",
            Syntax::JpegLs => "1.2.840.10008.1.2.4.80",
            Syntax::Jpeg2000 => "1.2.840.10008.1.2.4.90",
        }
    }
    fn encapsulated(self) -> bool {
        !matches!(
            self,
            Syntax::ImplicitLittle
                | Syntax::ExplicitLittle
                | Syntax::ExplicitBig
                | Syntax::Deflated
        )
    }
}

/// A decimal string value: mostly a number, sometimes any text.
#[derive(Arbitrary, Debug, Clone)]
enum Num {
    Small(i8),
    Float(f64),
    Text(String),
}

impl Num {
    fn text(&self) -> String {
        match self {
            Num::Small(v) => v.to_string(),
            Num::Float(v) => format!("{v}"),
            Num::Text(t) => t.clone(),
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Dim {
    Small(u8),
    Any(u16),
}

impl Dim {
    fn get(self) -> u16 {
        match self {
            Dim::Small(v) => v as u16 % 24,
            Dim::Any(v) => v,
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
enum Pixels {
    /// Exactly the bytes the pixel module asks for (native), or one valid RLE frame of them.
    Fill(u8),
    /// Whatever bytes (native) or fragments (encapsulated).
    Raw(Vec<Vec<u8>>),
    /// No Pixel Data element.
    Missing,
}

#[derive(Arbitrary, Debug, Clone)]
enum Elem {
    Leaf {
        tag: (u16, u16),
        vr: [u8; 2],
        value: Vec<u8>,
    },
    Seq {
        tag: (u16, u16),
        items: Vec<Vec<Elem>>,
        undefined: bool,
    },
}

#[derive(Arbitrary, Debug, Clone)]
struct Slice {
    syntax: Syntax,
    preamble: bool,
    meta_length_lie: Option<u32>,
    modality_mr: bool,
    series: u8,
    instance: u16,
    rows: Dim,
    cols: Dim,
    samples: u8,
    bits_allocated: u8,
    bits_stored: u8,
    high_bit: u8,
    signed: u8,
    monochrome1: bool,
    slope: Option<Num>,
    intercept: Option<Num>,
    position: [Num; 3],
    z_step: Num,
    orientation: Option<[Num; 6]>,
    spacing: Option<[Num; 2]>,
    pixels: Pixels,
    /// Replaces the Pixel Data element's length (native) by this.
    pixel_length_lie: Option<u32>,
    extra: Vec<Elem>,
}

/// Encoder of one data set in one byte order and VR mode.
struct Enc {
    out: Vec<u8>,
    explicit: bool,
    big: bool,
}

fn long_vr(vr: [u8; 2]) -> bool {
    matches!(
        &vr,
        b"OB"
            | b"OW"
            | b"OF"
            | b"OD"
            | b"OL"
            | b"OV"
            | b"SQ"
            | b"UT"
            | b"UN"
            | b"UC"
            | b"UR"
            | b"SV"
            | b"UV"
    )
}

impl Enc {
    fn u16(&mut self, v: u16) {
        let b = if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.out.extend_from_slice(&b);
    }
    fn u32(&mut self, v: u32) {
        let b = if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.out.extend_from_slice(&b);
    }
    fn header(&mut self, tag: (u16, u16), vr: [u8; 2], len: u32) {
        self.u16(tag.0);
        self.u16(tag.1);
        if self.explicit {
            self.out.extend_from_slice(&vr);
            if long_vr(vr) {
                self.u16(0);
                self.u32(len);
            } else {
                self.u16(len as u16);
            }
        } else {
            self.u32(len);
        }
    }
    fn bytes(&mut self, tag: (u16, u16), vr: [u8; 2], value: &[u8]) {
        self.header(tag, vr, value.len() as u32);
        self.out.extend_from_slice(value);
    }
    fn text(&mut self, tag: (u16, u16), vr: [u8; 2], text: &str) {
        let mut v = text.as_bytes().to_vec();
        if v.len() % 2 == 1 {
            v.push(if &vr == b"UI" { 0 } else { b' ' });
        }
        self.bytes(tag, vr, &v);
    }
    fn us(&mut self, tag: (u16, u16), v: u16) {
        let b = if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.bytes(tag, *b"US", &b);
    }
    fn elem(&mut self, e: &Elem, depth: usize) {
        match e {
            Elem::Leaf { tag, vr, value } => self.bytes(*tag, *vr, value),
            Elem::Seq {
                tag,
                items,
                undefined,
            } => {
                if *undefined || depth > 8 {
                    self.header(*tag, *b"SQ", u32::MAX);
                    for item in items {
                        self.u16(0xFFFE);
                        self.u16(0xE000);
                        self.u32(u32::MAX);
                        for e in item {
                            self.elem(e, depth + 1);
                        }
                        self.u16(0xFFFE);
                        self.u16(0xE00D);
                        self.u32(0);
                    }
                    self.u16(0xFFFE);
                    self.u16(0xE0DD);
                    self.u32(0);
                } else {
                    let mut inner = Enc {
                        out: Vec::new(),
                        explicit: self.explicit,
                        big: self.big,
                    };
                    for item in items {
                        let mut body = Enc {
                            out: Vec::new(),
                            explicit: self.explicit,
                            big: self.big,
                        };
                        for e in item {
                            body.elem(e, depth + 1);
                        }
                        inner.u16(0xFFFE);
                        inner.u16(0xE000);
                        inner.u32(body.out.len() as u32);
                        inner.out.extend_from_slice(&body.out);
                    }
                    self.bytes(*tag, *b"SQ", &inner.out);
                }
            }
        }
    }
}

/// One RLE frame (DICOM PS3.5 Annex G) of `data` split into `segments` byte planes, literal runs.
fn rle_frame(data: &[u8], segments: usize) -> Vec<u8> {
    let mut planes: Vec<Vec<u8>> = Vec::new();
    let per = data.len() / segments.max(1);
    for s in 0..segments.clamp(1, 15) {
        let mut enc = Vec::new();
        let plane: Vec<u8> = (0..per)
            .map(|i| data.get(i * segments + s).copied().unwrap_or(0))
            .collect();
        for chunk in plane.chunks(128) {
            enc.push((chunk.len() - 1) as u8);
            enc.extend_from_slice(chunk);
        }
        if enc.len() % 2 == 1 {
            enc.push(0);
        }
        planes.push(enc);
    }
    let mut out = vec![0u8; 64];
    out[..4].copy_from_slice(&(planes.len() as u32).to_le_bytes());
    let mut offset = 64u32;
    for (i, p) in planes.iter().enumerate() {
        out[4 + 4 * i..8 + 4 * i].copy_from_slice(&offset.to_le_bytes());
        offset += p.len() as u32;
    }
    for p in planes {
        out.extend_from_slice(&p);
    }
    out
}

fn encode(s: &Slice, k: usize) -> Vec<u8> {
    let explicit = !matches!(s.syntax, Syntax::ImplicitLittle);
    let big = matches!(s.syntax, Syntax::ExplicitBig);
    let mut ds = Enc {
        out: Vec::new(),
        explicit,
        big,
    };
    let sop = format!("1.2.826.0.1.3680043.10.1.{}.{}", s.series % 3, s.instance);
    let series = format!("1.2.826.0.1.3680043.10.2.{}", s.series % 3);
    let (rows, cols) = (s.rows.get(), s.cols.get());
    let bits = s.bits_allocated;
    let z = s.z_step.text();
    let z: f64 = z.trim().parse::<f64>().unwrap_or(1.0) * k as f64;
    ds.text((0x0008, 0x0016), *b"UI", "1.2.840.10008.5.1.4.1.1.2");
    ds.text((0x0008, 0x0018), *b"UI", &sop);
    ds.text(
        (0x0008, 0x0060),
        *b"CS",
        if s.modality_mr { "MR" } else { "CT" },
    );
    ds.text((0x0010, 0x0020), *b"LO", "FUZZ");
    ds.text((0x0020, 0x000D), *b"UI", "1.2.826.0.1.3680043.10.3");
    ds.text((0x0020, 0x000E), *b"UI", &series);
    ds.text((0x0020, 0x0013), *b"IS", &s.instance.to_string());
    let p = &s.position;
    ds.text(
        (0x0020, 0x0032),
        *b"DS",
        &format!(
            "{}\\{}\\{}",
            p[0].text(),
            p[1].text(),
            z + p[2].text().trim().parse::<f64>().unwrap_or(0.0)
        ),
    );
    match &s.orientation {
        Some(o) => ds.text(
            (0x0020, 0x0037),
            *b"DS",
            &o.iter().map(Num::text).collect::<Vec<_>>().join("\\"),
        ),
        None => ds.text((0x0020, 0x0037), *b"DS", "1\\0\\0\\0\\1\\0"),
    }
    ds.text((0x0020, 0x0052), *b"UI", "1.2.826.0.1.3680043.10.4");
    ds.us((0x0028, 0x0002), s.samples as u16 % 4);
    ds.text(
        (0x0028, 0x0004),
        *b"CS",
        if s.monochrome1 {
            "MONOCHROME1"
        } else {
            "MONOCHROME2"
        },
    );
    ds.us((0x0028, 0x0010), rows);
    ds.us((0x0028, 0x0011), cols);
    match &s.spacing {
        Some(sp) => ds.text(
            (0x0028, 0x0030),
            *b"DS",
            &format!("{}\\{}", sp[0].text(), sp[1].text()),
        ),
        None => ds.text((0x0028, 0x0030), *b"DS", "0.7\\0.7"),
    }
    ds.us((0x0028, 0x0100), bits as u16);
    ds.us((0x0028, 0x0101), s.bits_stored as u16);
    ds.us((0x0028, 0x0102), s.high_bit as u16);
    ds.us((0x0028, 0x0103), s.signed as u16 % 3);
    if let Some(i) = &s.intercept {
        ds.text((0x0028, 0x1052), *b"DS", &i.text());
    }
    if let Some(sl) = &s.slope {
        ds.text((0x0028, 0x1053), *b"DS", &sl.text());
    }
    let mut extra = s.extra.clone();
    extra.retain(|e| match e {
        Elem::Leaf { tag, .. } | Elem::Seq { tag, .. } => tag.0 != 0x0002 && tag.0 != 0x7FE0,
    });
    for e in &extra {
        ds.elem(e, 0);
    }
    let want = rows as usize
        * cols as usize
        * (bits as usize).div_ceil(8)
        * (s.samples as usize % 4).max(1);
    let want = want.min(1 << 20);
    match (&s.pixels, s.syntax.encapsulated()) {
        (Pixels::Missing, _) => {}
        (native @ (Pixels::Fill(_) | Pixels::Raw(_)), false) => {
            let mut data: Vec<u8> = match native {
                Pixels::Fill(seed) => (0..want).map(|i| (i as u8).wrapping_mul(*seed)).collect(),
                Pixels::Raw(parts) => parts.concat(),
                _ => Vec::new(),
            };
            if data.len() % 2 == 1 {
                data.push(0);
            }
            ds.header(
                (0x7FE0, 0x0010),
                *b"OW",
                s.pixel_length_lie.unwrap_or(data.len() as u32),
            );
            ds.out.extend_from_slice(&data);
        }
        (pixels, true) => {
            let fragments = match pixels {
                Pixels::Fill(seed) => {
                    let data: Vec<u8> = (0..want).map(|i| (i as u8).wrapping_mul(*seed)).collect();
                    vec![rle_frame(
                        &data,
                        (bits as usize).div_ceil(8) * (s.samples as usize % 4).max(1),
                    )]
                }
                Pixels::Raw(parts) => parts.clone(),
                Pixels::Missing => Vec::new(),
            };
            ds.header((0x7FE0, 0x0010), *b"OB", u32::MAX);
            ds.u16(0xFFFE);
            ds.u16(0xE000);
            ds.u32(0);
            for mut f in fragments {
                if f.len() % 2 == 1 {
                    f.push(0);
                }
                ds.u16(0xFFFE);
                ds.u16(0xE000);
                ds.u32(f.len() as u32);
                ds.out.extend_from_slice(&f);
            }
            ds.u16(0xFFFE);
            ds.u16(0xE0DD);
            ds.u32(0);
        }
    }
    let body = if matches!(s.syntax, Syntax::Deflated) {
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        let _ = z.write_all(&ds.out);
        z.finish().unwrap_or_default()
    } else {
        ds.out
    };
    // File meta: always explicit VR little endian.
    let mut meta = Enc {
        out: Vec::new(),
        explicit: true,
        big: false,
    };
    meta.bytes((0x0002, 0x0001), *b"OB", &[0, 1]);
    meta.text((0x0002, 0x0002), *b"UI", "1.2.840.10008.5.1.4.1.1.2");
    meta.text((0x0002, 0x0003), *b"UI", &sop);
    meta.text((0x0002, 0x0010), *b"UI", s.syntax.uid());
    let mut out = Vec::new();
    if s.preamble {
        out.extend_from_slice(&[0u8; 128]);
    }
    out.extend_from_slice(b"DICM");
    let mut group = Enc {
        out: Vec::new(),
        explicit: true,
        big: false,
    };
    group.bytes(
        (0x0002, 0x0000),
        *b"UL",
        &s.meta_length_lie
            .unwrap_or(meta.out.len() as u32)
            .to_le_bytes(),
    );
    out.extend_from_slice(&group.out);
    out.extend_from_slice(&meta.out);
    out.extend_from_slice(&body);
    out
}

#[derive(Arbitrary, Debug)]
struct Input {
    first: Slice,
    more: Vec<Slice>,
}

fuzz_target!(|input: Input| {
    let slices: Vec<&Slice> = std::iter::once(&input.first)
        .chain(input.more.iter().take(2))
        .collect();
    let files: Vec<Vec<u8>> = slices
        .iter()
        .enumerate()
        .map(|(k, s)| encode(s, k))
        .collect();
    for f in &files {
        let _ = autocontour::dicom::read_bytes(std::path::Path::new("fuzz.dcm"), f);
    }
    let buffers: Vec<(String, &[u8])> = files
        .iter()
        .enumerate()
        .map(|(n, b)| (format!("slice {n}"), b.as_slice()))
        .collect();
    let opts = autocontour::dicom::LoadOptions {
        max_voxels: 1 << 22,
        ..Default::default()
    };
    let _ = autocontour::dicom::load_series_buffers(&buffers, None, &opts);
});
