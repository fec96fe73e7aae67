//! A bounded, iterative walk over a DICOM file's element stream, run before dicom-object parses
//! the file.
//!
//! dicom-object reads nested sequences recursively and allocates each value as its header
//! declares: a file with sequences nested thousands of levels deep overflows the stack (which
//! aborts the whole process, not just the call), and one element claiming 4 GB makes it reserve
//! 4 GB before it notices the file is short. This walk reads element headers only (values are
//! skipped, nothing is allocated from a declared length) with an explicit stack, following the
//! grammar dicom-parser uses (explicit/implicit VR little endian, explicit VR big endian,
//! defined- and undefined-length sequences and items with their delimiters, encapsulated pixel
//! data fragments, any other undefined-length element read as a sequence), and refuses:
//!
//! - sequences nested deeper than the `max_sequence_depth` limit ([`crate::limits`]);
//! - any element, item or fragment whose declared length is larger than the bytes left in the
//!   file (a corrupt length, or a truncated file);
//! - for Deflated Explicit VR Little Endian, a data set that inflates to more than
//!   the `max_inflated_bytes` limit (the inflated stream is walked the same way as it is inflated, so
//!   nothing is held in memory).
//!
//! What it cannot make sense of otherwise (no magic, an unknown transfer syntax, a file that ends
//! between two elements) it leaves to dicom-object, which then reports its own error.

use std::io::{self, Read, Seek};

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::{Tag, VR};

const UNDEFINED: u32 = 0xFFFF_FFFF;
const ITEM: (u16, u16) = (0xFFFE, 0xE000);
const ITEM_DELIMITER: (u16, u16) = (0xFFFE, 0xE00D);
const SEQUENCE_DELIMITER: (u16, u16) = (0xFFFE, 0xE0DD);
const PIXEL_DATA: (u16, u16) = (0x7FE0, 0x0010);

const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";
pub(crate) const EXPLICIT_VR_BE: &str = "1.2.840.10008.1.2.2";
pub(crate) const DEFLATED: [&str; 2] = ["1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.4.95"];

/// Why a file was refused, or could not be read while walking it.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The file breaks a limit or its lengths do not fit; the sentence says which and where.
    Refused(String),
    /// The file breaks one of the process's resource limits ([`crate::limits`]).
    Limit {
        /// The limit's name.
        limit: &'static str,
        /// What the file asks for.
        value: u64,
        /// The limit in force.
        max: u64,
        /// Where in the file, and what was counted.
        at: String,
    },
    /// Reading the file failed (not a property of its content).
    Io(io::Error),
}

impl From<io::Error> for Refusal {
    fn from(e: io::Error) -> Self {
        Refusal::Io(e)
    }
}

type Scan<T> = std::result::Result<T, Refusal>;

/// Where the data set starts, as the readers in `file.rs` decide it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// File meta group (explicit VR little endian) at this offset, then the data set in the
    /// transfer syntax it names.
    Meta(u64),
    /// A bare implicit VR little endian data set at offset 0.
    BareImplicit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Syntax {
    ImplicitLe,
    ExplicitLe,
    ExplicitBe,
}

/// A source whose reads can be skipped forward (and, before inflation, back).
pub(crate) trait Input: Read {
    /// Moves `n` bytes forward (negative: back; plain sources only).
    fn skip(&mut self, n: i64) -> io::Result<()>;
}

impl<R: Read + Seek> Input for io::BufReader<R> {
    fn skip(&mut self, n: i64) -> io::Result<()> {
        self.seek_relative(n)
    }
}

impl Input for io::Cursor<&[u8]> {
    fn skip(&mut self, n: i64) -> io::Result<()> {
        self.seek(io::SeekFrom::Current(n)).map(|_| ())
    }
}

impl<R: Read> Input for flate2::read::DeflateDecoder<R> {
    fn skip(&mut self, n: i64) -> io::Result<()> {
        let want = u64::try_from(n).map_err(|_| io::Error::other("cannot seek back"))?;
        let got = io::copy(&mut self.by_ref().take(want), &mut io::sink())?;
        if got < want {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }
}

/// Walks a file of `len` bytes from `start`. `Ok(())` means dicom-object may parse it.
pub(crate) fn scan<R: Input>(r: R, len: u64, start: Start) -> Scan<()> {
    walk(r, len, start, false).0
}

/// The top-level Series Instance UID of a file that may not parse, as far as a walk gets before
/// it stops (an unknown transfer syntax is walked as explicit VR little endian).
pub(crate) fn series_uid<R: Input>(r: R, len: u64, start: Start) -> Option<String> {
    walk(r, len, start, true).1
}

fn walk<R: Input>(r: R, len: u64, start: Start, sniff: bool) -> (Scan<()>, Option<String>) {
    let limits = crate::limits::limits();
    let mut s = Scanner {
        r,
        pos: 0,
        end: len,
        inflated: false,
        max_depth: limits.max_sequence_depth,
        max_inflated: limits.max_inflated_bytes,
        series_uid: None,
        contour_data: None,
        syntax: None,
    };
    let result = s.run(start, sniff);
    (result, s.series_uid)
}

/// The byte offsets of the headers of every Contour Data (3006,0050) element of a data set held
/// in memory, with its transfer syntax and the offset where the data set starts; `None` when the
/// walk refuses the data or the data set is deflated (its bytes are not the file's).
pub(crate) fn contour_data_headers(bytes: &[u8], start: Start) -> Option<(Syntax, u64, Vec<u64>)> {
    let limits = crate::limits::limits();
    let mut s = Scanner {
        r: std::io::Cursor::new(bytes),
        pos: 0,
        end: bytes.len() as u64,
        inflated: false,
        max_depth: limits.max_sequence_depth,
        max_inflated: limits.max_inflated_bytes,
        series_uid: None,
        contour_data: Some(Vec::new()),
        syntax: None,
    };
    s.run(start, false).ok()?;
    let (syntax, data_start) = s.syntax?;
    Some((syntax, data_start, s.contour_data?))
}

impl<R: Input> Scanner<R> {
    fn run(&mut self, start: Start, sniff: bool) -> Scan<()> {
        let s = self;
        match start {
            Start::BareImplicit => s.dataset(Syntax::ImplicitLe),
            Start::Meta(offset) => {
                s.r.skip(i64::try_from(offset).map_err(io::Error::other)?)?;
                s.pos = offset;
                let Some(ts) = s.meta()? else {
                    return Ok(());
                };
                if DEFLATED.contains(&ts.as_str()) {
                    let mut inner = Scanner {
                        r: flate2::read::DeflateDecoder::new(&mut s.r),
                        pos: 0,
                        end: s.max_inflated,
                        inflated: true,
                        max_depth: s.max_depth,
                        max_inflated: s.max_inflated,
                        series_uid: None,
                        contour_data: None,
                        syntax: None,
                    };
                    let result = inner.dataset(Syntax::ExplicitLe);
                    s.series_uid = inner.series_uid;
                    return result;
                }
                let syntax = match ts.as_str() {
                    IMPLICIT_VR_LE => Syntax::ImplicitLe,
                    EXPLICIT_VR_BE => Syntax::ExplicitBe,
                    other => {
                        use dicom_transfer_syntax_registry::TransferSyntaxIndex as _;
                        if !sniff
                            && dicom_transfer_syntax_registry::TransferSyntaxRegistry
                                .get(other)
                                .is_none()
                        {
                            // dicom-object refuses it by name.
                            return Ok(());
                        }
                        // Every other standard transfer syntax is explicit VR little endian.
                        Syntax::ExplicitLe
                    }
                };
                s.dataset(syntax)
            }
        }
    }
}

enum Kind {
    Sequence,
    Item,
    Fragments,
}

struct Frame {
    kind: Kind,
    /// Where a defined-length sequence or item ends; `None` until its delimiter.
    end: Option<u64>,
}

struct Scanner<R> {
    r: R,
    pos: u64,
    /// The file's length, or (inflated) the most bytes the data set may inflate to.
    end: u64,
    inflated: bool,
    /// The `max_sequence_depth` and `max_inflated_bytes` limits, read once per walk.
    max_depth: u64,
    max_inflated: u64,
    /// The top-level Series Instance UID, once walked past.
    series_uid: Option<String>,
    /// When collecting: where each Contour Data element's header starts.
    contour_data: Option<Vec<u64>>,
    /// The syntax of the (not inflated) data set walked, and where the data set starts.
    syntax: Option<(Syntax, u64)>,
}

/// VRs whose explicit-VR header has two reserved bytes and a 32-bit length (unknown VRs too,
/// which dicom-parser reads as UN).
pub(crate) fn long_vr(vr: [u8; 2]) -> bool {
    !matches!(
        &vr,
        b"AE"
            | b"AS"
            | b"AT"
            | b"CS"
            | b"DA"
            | b"DS"
            | b"DT"
            | b"FL"
            | b"FD"
            | b"IS"
            | b"LO"
            | b"LT"
            | b"PN"
            | b"SH"
            | b"SL"
            | b"SS"
            | b"ST"
            | b"TM"
            | b"UI"
            | b"UL"
            | b"US"
    )
}

/// The size of one value of a binary VR whose values have a fixed size.
fn value_size(vr: VR) -> Option<u32> {
    match vr {
        VR::US | VR::SS | VR::OW => Some(2),
        VR::UL | VR::SL | VR::FL | VR::AT | VR::OL | VR::OF => Some(4),
        VR::FD | VR::OD | VR::SV | VR::UV | VR::OV => Some(8),
        _ => None,
    }
}

fn tag_text(t: (u16, u16)) -> String {
    format!("({:04X},{:04X})", t.0, t.1)
}

impl<R: Input> Scanner<R> {
    fn remaining(&self) -> u64 {
        self.end.saturating_sub(self.pos)
    }

    fn place(&self, at: u64) -> String {
        if self.inflated {
            format!("byte {at} of the inflated data set")
        } else {
            format!("byte {at}")
        }
    }

    /// Fills `buf`; `Ok(false)` when fewer than 4 bytes are left (the end of the data set, as
    /// dicom-parser takes it).
    fn header(&mut self, buf: &mut [u8]) -> Scan<bool> {
        let mut got = 0;
        while got < buf.len() {
            if !self.inflated && self.remaining() == 0 {
                break;
            }
            let Some(rest) = buf.get_mut(got..) else {
                break;
            };
            match self.r.read(rest) {
                Ok(0) => break,
                Ok(n) => {
                    got += n;
                    self.pos += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.read_error(e)),
            }
        }
        if got < 4 {
            return Ok(false);
        }
        if got < buf.len() {
            return Err(Refusal::Refused(format!(
                "truncated element header at {}",
                self.place(self.pos - got as u64)
            )));
        }
        Ok(true)
    }

    fn read_error(&self, e: io::Error) -> Refusal {
        if self.inflated {
            Refusal::Refused(format!(
                "the deflated data set does not inflate ({e}) near {}",
                self.place(self.pos)
            ))
        } else {
            Refusal::Io(e)
        }
    }

    /// Refuses a declared length that does not fit in what is left.
    fn check_len(&self, what: &str, tag: (u16, u16), at: u64, len: u32) -> Scan<()> {
        let len = u64::from(len);
        if len <= self.remaining() {
            return Ok(());
        }
        if self.inflated {
            return Err(Refusal::Limit {
                limit: "max_inflated_bytes",
                value: self.pos.saturating_add(len),
                max: self.max_inflated,
                at: format!(
                    "{what} {} at {} declares {len} bytes; inflated data set bytes",
                    tag_text(tag),
                    self.place(at)
                ),
            });
        }
        Err(Refusal::Refused({
            format!(
                "{what} {} at {} declares {len} bytes but only {} remain in the file (a corrupt \
                 length or a truncated file)",
                tag_text(tag),
                self.place(at),
                self.remaining()
            )
        }))
    }

    /// Where a sequence or item of length `len` that starts here ends: `None` for an undefined
    /// length (it ends at its delimiter); a defined length must fit in what is left.
    fn frame_end(&self, what: &str, tag: (u16, u16), at: u64, len: u32) -> Scan<Option<u64>> {
        if len == UNDEFINED {
            return Ok(None);
        }
        self.check_len(what, tag, at, len)?;
        Ok(Some(self.pos + u64::from(len)))
    }

    fn skip(&mut self, len: u32) -> Scan<()> {
        self.r
            .skip(i64::from(len))
            .map_err(|e| self.read_error(e))?;
        self.pos += u64::from(len);
        Ok(())
    }

    /// Walks the file meta group (explicit VR little endian, group 0002); returns its Transfer
    /// Syntax UID, `None` when it has none.
    fn meta(&mut self) -> Scan<Option<String>> {
        let mut ts = None;
        // Where the group ends by its File Meta Information Group Length: dicom-object reads
        // elements (of any group) until that many bytes are consumed, so the walk does too.
        let mut group_end: Option<u64> = None;
        loop {
            if group_end.is_some_and(|end| self.pos >= end) {
                return Ok(ts);
            }
            let at = self.pos;
            let mut head = [0u8; 8];
            if !self.header(&mut head)? {
                return Ok(ts);
            }
            let tag = (
                u16::from_le_bytes([head[0], head[1]]),
                u16::from_le_bytes([head[2], head[3]]),
            );
            if tag.0 != 0x0002 && group_end.is_none() {
                // The data set starts here.
                self.r.skip(-8)?;
                self.pos -= 8;
                return Ok(ts);
            }
            let vr = [head[4], head[5]];
            let len = if tag.0 == 0xFFFE {
                // dicom-object's explicit-VR header decoder reads every group FFFE tag as an
                // item or delimiter: the tag, then a 4-byte length, no VR
                u32::from_le_bytes([head[4], head[5], head[6], head[7]])
            } else if long_vr(vr) {
                let mut l = [0u8; 4];
                if !self.header(&mut l)? {
                    return Ok(ts);
                }
                u32::from_le_bytes(l)
            } else {
                u32::from(u16::from_le_bytes([head[6], head[7]]))
            };
            if len == UNDEFINED {
                return Err(Refusal::Refused(format!(
                    "file meta element {} at {} has an undefined length",
                    tag_text(tag),
                    self.place(at)
                )));
            }
            self.check_len("file meta element", tag, at, len)?;
            if tag == (0x0002, 0x0000) && group_end.is_none() && len == 4 {
                // dicom-object takes any VR here as long as the length is 4
                let mut l = [0u8; 4];
                if !self.header(&mut l)? {
                    return Ok(ts);
                }
                group_end = Some(self.pos + u64::from(u32::from_le_bytes(l)));
                continue;
            }
            if tag == (0x0002, 0x0010) {
                // dicom-object reads the whole value, however long (a UID has at most 64
                // characters, but padding may follow), and trims the padding; so does the walk,
                // keeping at most 256 bytes (longer content names no transfer syntax).
                let mut kept = Vec::with_capacity(len.min(256) as usize);
                let mut long = false;
                let mut buf = [0u8; 4096];
                let mut left = u64::from(len);
                while left > 0 {
                    let n = usize::try_from(left.min(4096)).unwrap_or(4096);
                    let chunk = buf.get_mut(..n).unwrap_or(&mut []);
                    self.r.read_exact(chunk)?;
                    for &b in chunk.iter() {
                        if kept.len() < 256 {
                            kept.push(b);
                        } else if b != 0 && !b.is_ascii_whitespace() {
                            long = true;
                        }
                    }
                    left -= n as u64;
                }
                self.pos += u64::from(len);
                let s = String::from_utf8_lossy(&kept);
                let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
                ts = Some(if long {
                    format!("{s}… (over 256 characters)")
                } else {
                    s.to_string()
                });
            } else {
                self.skip(len)?;
            }
        }
    }

    fn dataset(&mut self, syntax: Syntax) -> Scan<()> {
        if !self.inflated {
            self.syntax = Some((syntax, self.pos));
        }
        let dict = dicom_dictionary_std::StandardDataDictionary;
        let mut stack: Vec<Frame> = Vec::new();
        let mut depth = 0usize;
        loop {
            // Close the defined-length sequences and items that end here.
            while let Some(f) = stack.last() {
                match f.end {
                    Some(e) if self.pos >= e => {
                        if matches!(f.kind, Kind::Sequence) {
                            depth = depth.saturating_sub(1);
                        }
                        stack.pop();
                    }
                    _ => break,
                }
            }
            let at = self.pos;
            let mut head = [0u8; 8];
            if !self.header(&mut head)? {
                return Ok(());
            }
            let u16_at = |i: usize| match (syntax, head.get(i..i + 2)) {
                (Syntax::ExplicitBe, Some(b)) => u16::from_be_bytes([b[0], b[1]]),
                (_, Some(b)) => u16::from_le_bytes([b[0], b[1]]),
                (_, None) => 0,
            };
            let u32_of = |b: [u8; 4]| match syntax {
                Syntax::ExplicitBe => u32::from_be_bytes(b),
                _ => u32::from_le_bytes(b),
            };
            let tag = (u16_at(0), u16_at(2));
            let short_len = u32_of([head[4], head[5], head[6], head[7]]);
            match stack.last().map(|f| &f.kind) {
                Some(Kind::Sequence) => match tag {
                    ITEM => {
                        let end = self.frame_end("item", tag, at, short_len)?;
                        stack.push(Frame {
                            kind: Kind::Item,
                            end,
                        });
                    }
                    SEQUENCE_DELIMITER => {
                        depth = depth.saturating_sub(1);
                        stack.pop();
                    }
                    other => {
                        return Err(Refusal::Refused(format!(
                            "{} at {} where a sequence item was expected",
                            tag_text(other),
                            self.place(at)
                        )));
                    }
                },
                Some(Kind::Fragments) => match tag {
                    ITEM if short_len != UNDEFINED => {
                        self.check_len("pixel data fragment", tag, at, short_len)?;
                        self.skip(short_len)?;
                    }
                    SEQUENCE_DELIMITER => {
                        stack.pop();
                    }
                    other => {
                        return Err(Refusal::Refused(format!(
                            "{} with length {short_len:#X} at {} where an encapsulated pixel \
                             data fragment was expected",
                            tag_text(other),
                            self.place(at)
                        )));
                    }
                },
                Some(Kind::Item) | None => {
                    if tag == ITEM_DELIMITER {
                        if let Some(Frame {
                            kind: Kind::Item, ..
                        }) = stack.last()
                        {
                            stack.pop();
                        }
                        // Outside any item dicom-parser ignores it too.
                        continue;
                    }
                    let (vr, len) = match syntax {
                        // Items and delimiters have no VR, even in explicit VR; so has every
                        // group FFFE tag in explicit VR. In implicit VR dicom-parser looks the
                        // other FFFE tags up in the dictionary like any tag ((FFFE,0000) is a
                        // group length, UL), so the walk does too.
                        _ if tag.0 == 0xFFFE
                            && (syntax != Syntax::ImplicitLe
                                || tag == ITEM
                                || tag == SEQUENCE_DELIMITER) =>
                        {
                            (None, short_len)
                        }
                        Syntax::ImplicitLe => {
                            let vr = if tag == PIXEL_DATA {
                                Some(VR::OW)
                            } else {
                                dict.by_tag(Tag(tag.0, tag.1)).map(|e| e.vr().relaxed())
                            };
                            (vr, short_len)
                        }
                        Syntax::ExplicitLe | Syntax::ExplicitBe => {
                            let vr = [head[4], head[5]];
                            let len = if long_vr(vr) {
                                let mut l = [0u8; 4];
                                if !self.header(&mut l)? {
                                    return Err(Refusal::Refused(format!(
                                        "truncated element header at {}",
                                        self.place(at)
                                    )));
                                }
                                u32_of(l)
                            } else {
                                u32::from(u16_at(6))
                            };
                            (VR::from_binary(vr), len)
                        }
                    };
                    let sequence = vr == Some(VR::SQ) || (len == UNDEFINED && tag != PIXEL_DATA);
                    if sequence {
                        depth += 1;
                        if depth as u64 > self.max_depth {
                            return Err(Refusal::Limit {
                                limit: "max_sequence_depth",
                                value: depth as u64,
                                max: self.max_depth,
                                at: format!(
                                    "sequence {} at {}, nesting level",
                                    tag_text(tag),
                                    self.place(at)
                                ),
                            });
                        }
                        let end = self.frame_end("sequence", tag, at, len)?;
                        stack.push(Frame {
                            kind: Kind::Sequence,
                            end,
                        });
                    } else if len == UNDEFINED {
                        // Encapsulated pixel data: an offset table and fragments, as items.
                        stack.push(Frame {
                            kind: Kind::Fragments,
                            end: None,
                        });
                    } else if stack.is_empty() && tag == (0x0020, 0x000E) && len <= 64 {
                        self.check_len("element", tag, at, len)?;
                        let mut v = vec![0u8; len as usize];
                        self.r.read_exact(&mut v).map_err(|e| self.read_error(e))?;
                        self.pos += u64::from(len);
                        let uid = String::from_utf8_lossy(&v);
                        self.series_uid = Some(
                            uid.trim_matches(|c: char| c == '\0' || c.is_whitespace())
                                .to_string(),
                        );
                    } else {
                        self.check_len("element", tag, at, len)?;
                        // dicom-parser reads len / size values of a binary VR and leaves the
                        // rest unread, walking on out of step: refuse such an element by name.
                        if let Some(size) = vr.and_then(value_size)
                            && len % size != 0
                        {
                            return Err(Refusal::Refused(format!(
                                "element {} ({}) at {} has length {len}, not a multiple of {size}",
                                tag_text(tag),
                                vr.map(|v| v.to_string()).unwrap_or_default(),
                                self.place(at)
                            )));
                        }
                        if tag == (0x3006, 0x0050)
                            && !self.inflated
                            && let Some(found) = self.contour_data.as_mut()
                        {
                            found.push(at);
                        }
                        self.skip(len)?;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn le_item(tag: (u16, u16), len: u32) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&tag.0.to_le_bytes());
        v.extend_from_slice(&tag.1.to_le_bytes());
        v.extend_from_slice(&len.to_le_bytes());
        v
    }

    fn implicit(bytes: &[u8]) -> Scan<()> {
        scan(
            io::Cursor::new(bytes),
            bytes.len() as u64,
            Start::BareImplicit,
        )
    }

    fn nested(levels: usize, defined: bool) -> Vec<u8> {
        let mut v = le_item((0x0008, 0x0060), 2);
        v.extend_from_slice(b"CT");
        if defined {
            // Innermost first: each level wraps the bytes so far.
            let mut inner = le_item((0x0008, 0x0100), 2);
            inner.extend_from_slice(b"X ");
            for _ in 0..levels {
                let mut item = le_item(ITEM, inner.len() as u32);
                item.extend_from_slice(&inner);
                let mut seq = le_item((0x0008, 0x1115), item.len() as u32);
                seq.extend_from_slice(&item);
                inner = seq;
            }
            v.extend_from_slice(&inner);
        } else {
            for _ in 0..levels {
                v.extend(le_item((0x0008, 0x1115), UNDEFINED));
                v.extend(le_item(ITEM, UNDEFINED));
            }
            for _ in 0..levels {
                v.extend(le_item(ITEM_DELIMITER, 0));
                v.extend(le_item(SEQUENCE_DELIMITER, 0));
            }
        }
        v
    }

    fn refused(r: Scan<()>) -> String {
        match r {
            Err(Refusal::Refused(s)) => s,
            Err(Refusal::Limit {
                limit,
                value,
                max,
                at,
            }) => format!("{at}: {value} over {limit} = {max}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn nesting_up_to_the_limit_passes_and_deeper_is_refused() {
        for defined in [false, true] {
            assert!(implicit(&nested(64, defined)).is_ok());
            let why = refused(implicit(&nested(65, defined)));
            assert!(why.contains("65 over max_sequence_depth = 64"), "{why}");
        }
        // A hundred thousand levels: no recursion here, so no stack overflow.
        let why = refused(implicit(&nested(100_000, false)));
        assert!(why.contains("65 over max_sequence_depth"), "{why}");
    }

    #[test]
    fn lengths_past_the_end_are_refused() {
        let mut v = le_item((0x0008, 0x0060), 2);
        v.extend_from_slice(b"CT");
        v.extend(le_item((0x7FE0, 0x0010), 0xFFFF_FFF0));
        v.extend_from_slice(&[0; 100]);
        let why = refused(implicit(&v));
        assert!(
            why.contains("(7FE0,0010) at byte 10 declares 4294967280 bytes but only 100 remain"),
            "{why}"
        );
        // An item and a fragment too.
        let mut v = le_item((0x0008, 0x1115), UNDEFINED);
        v.extend(le_item(ITEM, 1000));
        assert!(refused(implicit(&v)).contains("item (FFFE,E000)"));
        let mut v = le_item((0x7FE0, 0x0010), UNDEFINED);
        v.extend(le_item(ITEM, 0));
        v.extend(le_item(ITEM, 50));
        assert!(refused(implicit(&v)).contains("pixel data fragment"));
        // A file that ends between two elements, or with fewer than 4 stray bytes, is left to
        // dicom-object.
        let mut v = le_item((0x0008, 0x0060), 2);
        v.extend_from_slice(b"CT\0\0");
        assert!(implicit(&v).is_ok());
    }

    #[test]
    fn explicit_big_endian_with_fragments() {
        // Explicit VR big endian: a US element, a sequence with one empty item, pixel fragments.
        let mut v = vec![0x00, 0x28, 0x00, 0x10, b'U', b'S', 0x00, 0x02, 0x02, 0x00];
        v.extend_from_slice(&[0x00, 0x08, 0x11, 0x15, b'S', b'Q', 0, 0]);
        v.extend_from_slice(&UNDEFINED.to_be_bytes());
        v.extend_from_slice(&[0xFF, 0xFE, 0xE0, 0x00, 0, 0, 0, 0]);
        v.extend_from_slice(&[0xFF, 0xFE, 0xE0, 0xDD, 0, 0, 0, 0]);
        v.extend_from_slice(&[0x7F, 0xE0, 0x00, 0x10, b'O', b'B', 0, 0]);
        v.extend_from_slice(&UNDEFINED.to_be_bytes());
        v.extend_from_slice(&[0xFF, 0xFE, 0xE0, 0x00, 0, 0, 0, 4, 1, 2, 3, 4]);
        v.extend_from_slice(&[0xFF, 0xFE, 0xE0, 0xDD, 0, 0, 0, 0]);
        let mut file = vec![0u8; 128];
        file.extend_from_slice(b"DICM");
        let ts = b"1.2.840.10008.1.2.2\0";
        file.extend_from_slice(&[0x02, 0x00, 0x10, 0x00, b'U', b'I']);
        file.extend_from_slice(&(ts.len() as u16).to_le_bytes());
        file.extend_from_slice(ts);
        let ok = [file.clone(), v.clone()].concat();
        assert!(scan(io::Cursor::new(&ok[..]), ok.len() as u64, Start::Meta(132)).is_ok());
        // The fragment now claims 0x04000004 bytes.
        let n = v.len();
        v[n - 16] = 4;
        let bad = [file, v].concat();
        let why = refused(scan(
            io::Cursor::new(&bad[..]),
            bad.len() as u64,
            Start::Meta(132),
        ));
        assert!(why.contains("pixel data fragment"), "{why}");
    }
}
