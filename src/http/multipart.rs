//! `multipart/byteranges` framing for a 206 answering several ranges (RFC 9110 §14.6): pure layout, no I/O,
//! no `Response`.
//!
//! The body is planned up front: every framing byte (delimiters and part headers) lives in one buffer, and
//! the data of each part is a range of the representation, so the body can be streamed as zero-copy
//! [`Bytes`] pieces and its exact length is known before the first byte is sent.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::ops::Range;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use ::http::HeaderValue;
use bytes::Bytes;

use super::fields::{decimal_len, write_decimal};

/// Length of every [`Boundary`], in characters.
const BOUNDARY_LEN: usize = 2 * U64_BASE36_LEN;
/// Base-36 digits needed for any `u64` (36^13 > 2^64).
const U64_BASE36_LEN: usize = 13;
/// The alphabet of a boundary: safe in a boundary and in an unquoted parameter value (RFC 2046 §5.1.1).
const BASE36: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// Opens every part: `CRLF "--" boundary` (RFC 2046 §5.1.1).
const DELIMITER_START: &[u8] = b"\r\n--";
/// Ends a delimiter line or a header line.
const CRLF: &[u8] = b"\r\n";
/// The part's Content-Type header name and separator.
const CONTENT_TYPE: &[u8] = b"Content-Type: ";
/// The part's Content-Range header name, separator and range unit (RFC 9110 §14.4).
const CONTENT_RANGE: &[u8] = b"Content-Range: bytes ";
/// Ends the last header line and the header block.
const HEADERS_END: &[u8] = b"\r\n\r\n";
/// Turns the last delimiter into the close delimiter: `"--" CRLF`.
const CLOSE_END: &[u8] = b"--\r\n";
/// The response's Content-Type before the boundary (RFC 9110 §14.6).
const MEDIA_TYPE: &[u8] = b"multipart/byteranges; boundary=";

/// A per-response boundary string, unique within the process and unpredictable across processes.
///
/// It is 26 characters of `[0-9a-z]`: 13 encode a process-wide counter masked by a process-random key
/// (a bijection, so two boundaries of one process never repeat), 13 encode a keyed hash of that counter
/// (unpredictable without the process's random keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Boundary {
    /// Always ASCII `[0-9a-z]`.
    text: [u8; BOUNDARY_LEN],
}

impl Boundary {
    /// Draws the next boundary of this process.
    pub(crate) fn new() -> Self {
        /// The process's random hash keys and counter mask, drawn once.
        static SEED: OnceLock<(RandomState, u64)> = OnceLock::new();
        /// How many boundaries this process has drawn.
        static COUNTER: AtomicU64 = AtomicU64::new(0);

        let (keys, mask) = SEED.get_or_init(|| {
            let keys = RandomState::new();
            let mask = keys.hash_one("multipart boundary mask");
            (keys, mask)
        });
        let serial = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut text = [0u8; BOUNDARY_LEN];
        let (secret, unique) = text.split_at_mut(U64_BASE36_LEN);
        write_base36(secret, keys.hash_one(serial));
        write_base36(unique, serial ^ mask);
        Self { text }
    }

    /// The boundary as text, without the leading `--`.
    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.text).expect("a boundary is made of ASCII digits and letters")
    }
}

/// Writes `value` in base 36, most significant digit first, zero-padded to fill `out`.
fn write_base36(out: &mut [u8], mut value: u64) {
    for digit in out.iter_mut().rev() {
        *digit = BASE36[(value % 36) as usize];
        value /= 36;
    }
}

/// A planned multipart/byteranges body: every framing byte in one buffer, the data as ranges of the file.
///
/// Pieces alternate framing and data: part header 0, data 0, part header 1, data 1, …, close delimiter.
#[derive(Debug, Clone)]
pub(crate) struct Multipart {
    /// Every part header back to back, then the close delimiter; after them (not part of the body), the
    /// response's Content-Type and Content-Length values, so that they cost no allocation of their own.
    framing: Bytes,
    /// Where the body's framing ends in `framing`, and where the Content-Type value ends after it.
    framing_end: usize,
    content_type_end: usize,
    /// Where each part's header ends in `framing`, and the part's bytes in the representation.
    parts: Vec<Part>,
    /// Sum of the data lengths (saturating).
    data_len: u64,
}

/// The layout of one part.
#[derive(Debug, Clone)]
struct Part {
    /// End of this part's header in the framing buffer (it starts where the previous one ends).
    header_end: usize,
    /// The part's bytes in the representation; non-empty and inside `0..len`.
    data: Range<u64>,
}

impl Multipart {
    /// Lays out `parts` of a representation of `len` bytes with media type `content_type`.
    ///
    /// Each part gets a Content-Range (RFC 9110 §14.6) and, when `content_type` is a non-empty valid field
    /// value, a Content-Type line. Parts are clamped to `0..len` and those left empty are skipped, so a
    /// malformed list cannot produce a malformed body ([`plan_ranges`](super::range::plan_ranges) never
    /// produces such parts). Allocates exactly twice: the framing buffer (which also holds the response's
    /// Content-Type and Content-Length values) and the part table.
    pub(crate) fn new(
        parts: &[Range<u64>],
        len: u64,
        content_type: &[u8],
        boundary: Boundary,
    ) -> Self {
        let boundary_text = boundary.as_str().as_bytes();
        let content_type = part_content_type(content_type);
        let framing_len = framing_length(parts, len, content_type, boundary_text.len());
        // The two header values after the framing: the media type, and up to 20 digits of length.
        let values_len = sum(&[MEDIA_TYPE.len(), boundary_text.len(), 20]);
        // If the framing cannot fit in memory the Vec's own growth reports it; never over-reserve.
        let capacity = framing_len.saturating_add(values_len);
        let mut framing = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
        let mut layout = Vec::with_capacity(parts.iter().filter_map(|p| clamp(p, len)).count());
        let mut data_len = 0u64;
        for data in parts.iter().filter_map(|part| clamp(part, len)) {
            write_part_header(&mut framing, boundary_text, content_type, &data, len);
            data_len = data_len.saturating_add(data.end - data.start);
            layout.push(Part {
                header_end: framing.len(),
                data,
            });
        }
        framing.extend_from_slice(DELIMITER_START);
        framing.extend_from_slice(boundary_text);
        framing.extend_from_slice(CLOSE_END);
        let framing_end = framing.len();
        framing.extend_from_slice(MEDIA_TYPE);
        framing.extend_from_slice(boundary_text);
        let content_type_end = framing.len();
        let content_length = u64::try_from(framing_end)
            .unwrap_or(u64::MAX)
            .saturating_add(data_len);
        write_decimal(&mut framing, content_length);
        Self {
            framing: Bytes::from(framing),
            framing_end,
            content_type_end,
            parts: layout,
            data_len,
        }
    }

    /// Exact Content-Length of the body.
    pub(crate) fn content_length(&self) -> u64 {
        u64::try_from(self.framing_end)
            .unwrap_or(u64::MAX)
            .saturating_add(self.data_len)
    }

    /// `multipart/byteranges; boundary=...` for the response Content-Type (a slice of the framing buffer).
    pub(crate) fn content_type(&self) -> HeaderValue {
        let value = self.framing.slice(self.framing_end..self.content_type_end);
        HeaderValue::from_maybe_shared(value)
            .expect("a media type with an alphanumeric boundary is a valid field value")
    }

    /// [`content_length`](Self::content_length) as a header value (a slice of the framing buffer).
    pub(crate) fn content_length_value(&self) -> HeaderValue {
        HeaderValue::from_maybe_shared(self.framing.slice(self.content_type_end..))
            .expect("decimal digits are a valid field value")
    }

    /// Number of pieces the body is made of (framing and data interleaved, closing delimiter last).
    #[cfg(test)]
    pub(crate) fn piece_count(&self) -> usize {
        2 * self.parts.len() + 1
    }

    /// Piece `index` as zero-copy `Bytes`: framing pieces are slices of the one framing buffer, data pieces are
    /// `file.slice(range)` where `file` is the whole representation. Returns None past the end.
    ///
    /// Also returns `None` for a data piece that `file` is too short to hold (a caller passing another
    /// representation than the one planned), rather than panicking.
    #[cfg(test)]
    pub(crate) fn piece(&self, index: usize, file: &Bytes) -> Option<Bytes> {
        match self.piece_at(index)? {
            Piece::Framing(framing) => Some(framing),
            Piece::Data(data) => {
                let start = usize::try_from(data.start).ok()?;
                let end = usize::try_from(data.end).ok()?;
                (end <= file.len()).then(|| file.slice(start..end))
            }
        }
    }

    /// The range of the representation part `part` carries (piece `2 * part + 1`), None past the last part.
    pub(crate) fn part_data(&self, part: usize) -> Option<&Range<u64>> {
        self.parts.get(part).map(|p| &p.data)
    }

    /// Piece `index`: a slice of the framing buffer, or the range of the representation a part carries
    /// (non-empty, inside the planned length). Returns None past the end.
    pub(crate) fn piece_at(&self, index: usize) -> Option<Piece> {
        let part = index / 2;
        if index % 2 == 1 {
            return Some(Piece::Data(self.parts.get(part)?.data.clone()));
        }
        let start = match part.checked_sub(1) {
            Some(previous) => self.parts.get(previous)?.header_end,
            None => 0,
        };
        let end = match self.parts.get(part) {
            Some(this) => this.header_end,
            None if part == self.parts.len() => self.framing_end,
            None => return None,
        };
        Some(Piece::Framing(self.framing.slice(start..end)))
    }
}

/// One piece of a multipart body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    /// Delimiter and part headers (or the close delimiter): bytes of the framing buffer.
    Framing(Bytes),
    /// A part's data: a range of the representation.
    Data(Range<u64>),
}

/// Exact body length of `Multipart::new(parts, len, content_type, b)` for any boundary of the same length,
/// computed without allocating (the service compares it with `len` to refuse amplification).
pub(crate) fn multipart_length(
    parts: &[Range<u64>],
    len: u64,
    content_type: &[u8],
    boundary_len: usize,
) -> u64 {
    let content_type = part_content_type(content_type);
    let data = parts
        .iter()
        .filter_map(|part| clamp(part, len))
        .fold(0u64, |sum, data| sum.saturating_add(data.end - data.start));
    framing_length(parts, len, content_type, boundary_len).saturating_add(data)
}

/// The part as laid out: clamped to `0..len`, or `None` when nothing of it is left.
fn clamp(part: &Range<u64>, len: u64) -> Option<Range<u64>> {
    let end = part.end.min(len);
    (part.start < end).then_some(part.start..end)
}

/// The Content-Type to repeat in each part, or `None` to omit the line: empty, or not a valid field value
/// (RFC 9110 §5.5: no CR, LF, NUL or other controls but HTAB), which would break the framing.
fn part_content_type(content_type: &[u8]) -> Option<&[u8]> {
    let valid = |b: &u8| *b == b'\t' || (*b >= 0x20 && *b != 0x7f);
    (!content_type.is_empty() && content_type.iter().all(valid)).then_some(content_type)
}

/// Length of the framing buffer: every part header plus the close delimiter (saturating).
fn framing_length(
    parts: &[Range<u64>],
    len: u64,
    content_type: Option<&[u8]>,
    boundary_len: usize,
) -> u64 {
    let close = sum(&[DELIMITER_START.len(), boundary_len, CLOSE_END.len()]);
    parts
        .iter()
        .filter_map(|part| clamp(part, len))
        .fold(close, |total, data| {
            total.saturating_add(part_header_length(boundary_len, content_type, &data, len))
        })
}

/// Length of one part header as written by [`write_part_header`].
fn part_header_length(
    boundary_len: usize,
    content_type: Option<&[u8]>,
    data: &Range<u64>,
    len: u64,
) -> u64 {
    let content_type_line =
        content_type.map_or(0, |ct| sum(&[CONTENT_TYPE.len(), ct.len(), CRLF.len()]));
    sum(&[
        DELIMITER_START.len(),
        boundary_len,
        CRLF.len(),
        CONTENT_RANGE.len(),
        decimal_len(data.start),
        1,
        decimal_len(data.end - 1),
        1,
        decimal_len(len),
        HEADERS_END.len(),
    ])
    .saturating_add(content_type_line)
}

/// Writes one part header: delimiter line, optional Content-Type, Content-Range, blank line.
fn write_part_header(
    out: &mut Vec<u8>,
    boundary: &[u8],
    content_type: Option<&[u8]>,
    data: &Range<u64>,
    len: u64,
) {
    out.extend_from_slice(DELIMITER_START);
    out.extend_from_slice(boundary);
    out.extend_from_slice(CRLF);
    if let Some(content_type) = content_type {
        out.extend_from_slice(CONTENT_TYPE);
        out.extend_from_slice(content_type);
        out.extend_from_slice(CRLF);
    }
    // RFC 9110 §14.4: `bytes first-last/complete-length`, last inclusive.
    out.extend_from_slice(CONTENT_RANGE);
    write_decimal(out, data.start);
    out.push(b'-');
    write_decimal(out, data.end - 1);
    out.push(b'/');
    write_decimal(out, len);
    out.extend_from_slice(HEADERS_END);
}

/// Saturating sum of lengths, as `u64`.
fn sum(lengths: &[usize]) -> u64 {
    lengths.iter().fold(0u64, |total, &n| {
        total.saturating_add(u64::try_from(n).unwrap_or(u64::MAX))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn boundary(text: &[u8; BOUNDARY_LEN]) -> Boundary {
        Boundary { text: *text }
    }

    fn sample_file(len: usize) -> Bytes {
        // Includes CR, LF and '-' so that data resembling framing is exercised.
        (0..len)
            .map(|i| b"ab\r\n--xyz0123"[i % 13])
            .collect::<Vec<u8>>()
            .into()
    }

    fn body(multipart: &Multipart, file: &Bytes) -> Vec<u8> {
        let mut out = Vec::new();
        for index in 0..multipart.piece_count() {
            out.extend_from_slice(
                &multipart
                    .piece(index, file)
                    .expect("index below piece_count"),
            );
        }
        assert!(multipart.piece(multipart.piece_count(), file).is_none());
        out
    }

    /// One part as read back: its header lines and its data.
    struct ParsedPart {
        headers: Vec<(String, String)>,
        data: Vec<u8>,
    }

    fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
        haystack
            .get(from..)?
            .windows(needle.len())
            .position(|window| window == needle)
            .map(|at| at + from)
    }

    /// A small, independent multipart reader (RFC 2046 §5.1.1): splits on `CRLF--boundary`, expects the
    /// close delimiter last, reads each part's header block and data.
    fn parse_multipart(body: &[u8], boundary: &str) -> Vec<ParsedPart> {
        let delimiter = format!("\r\n--{boundary}").into_bytes();
        let mut positions = Vec::new();
        let mut from = 0;
        while let Some(at) = find(body, &delimiter, from) {
            positions.push(at);
            from = at + delimiter.len();
        }
        assert_eq!(positions.first(), Some(&0), "body starts with a delimiter");
        let close = *positions.last().expect("a close delimiter");
        assert_eq!(
            &body[close + delimiter.len()..],
            b"--\r\n",
            "close delimiter ends the body"
        );

        positions
            .windows(2)
            .map(|pair| {
                let segment = &body[pair[0] + delimiter.len()..pair[1]];
                let segment = segment
                    .strip_prefix(b"\r\n")
                    .expect("delimiter line ends with CRLF");
                let split =
                    find(segment, b"\r\n\r\n", 0).expect("header block ends with a blank line");
                let headers = std::str::from_utf8(&segment[..split])
                    .expect("ASCII headers")
                    .split("\r\n")
                    .map(|line| {
                        let (name, value) = line.split_once(": ").expect("name: value");
                        (name.to_owned(), value.to_owned())
                    })
                    .collect();
                ParsedPart {
                    headers,
                    data: segment[split + 4..].to_vec(),
                }
            })
            .collect()
    }

    fn header<'a>(part: &'a ParsedPart, name: &str) -> Option<&'a str> {
        part.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Builds the body, parses it back, and checks every part against the file.
    fn check_round_trip(parts: &[Range<u64>], file: &Bytes, content_type: &[u8], b: Boundary) {
        let len = file.len() as u64;
        let multipart = Multipart::new(parts, len, content_type, b);
        let body = body(&multipart, file);
        let piece_total: u64 = (0..multipart.piece_count())
            .map(|i| multipart.piece(i, file).map_or(0, |p| p.len() as u64))
            .sum();
        assert_eq!(multipart.content_length(), body.len() as u64);
        assert_eq!(multipart.content_length(), piece_total);
        assert_eq!(
            multipart.content_length(),
            multipart_length(parts, len, content_type, b.as_str().len())
        );
        assert_eq!(multipart.piece_count(), 2 * parts.len() + 1);

        let parsed = parse_multipart(&body, b.as_str());
        assert_eq!(parsed.len(), parts.len());
        for (part, range) in parsed.iter().zip(parts) {
            let expected_range = format!("bytes {}-{}/{}", range.start, range.end - 1, len);
            assert_eq!(header(part, "content-range"), Some(expected_range.as_str()));
            let expected_type = std::str::from_utf8(content_type)
                .ok()
                .filter(|t| !t.is_empty());
            assert_eq!(header(part, "content-type"), expected_type);
            assert_eq!(part.data, &file[range.start as usize..range.end as usize]);
        }
    }

    #[test]
    fn body_parses_back_into_the_requested_slices() {
        let file = sample_file(1000);
        let b = boundary(b"0123456789abcdefghijklmnop");
        check_round_trip(&[0..10, 20..30], &file, b"application/octet-stream", b);
        check_round_trip(
            &[990..1000, 0..1, 500..501],
            &file,
            b"text/plain; charset=utf-8",
            b,
        );
        check_round_trip(
            std::slice::from_ref(&(0..999)),
            &file,
            b"application/x-safetensors",
            Boundary::new(),
        );
        check_round_trip(&[5..6, 7..8, 9..10, 11..1000], &file, b"", Boundary::new());
    }

    #[test]
    fn framing_is_byte_exact() {
        let file = Bytes::from_static(b"0123456789");
        let b = boundary(b"bbbbbbbbbbbbbbbbbbbbbbbbbb");
        let multipart = Multipart::new(&[0..2, 5..10], 10, b"text/plain", b);
        let expected = concat!(
            "\r\n--bbbbbbbbbbbbbbbbbbbbbbbbbb\r\n",
            "Content-Type: text/plain\r\n",
            "Content-Range: bytes 0-1/10\r\n\r\n",
            "01",
            "\r\n--bbbbbbbbbbbbbbbbbbbbbbbbbb\r\n",
            "Content-Type: text/plain\r\n",
            "Content-Range: bytes 5-9/10\r\n\r\n",
            "56789",
            "\r\n--bbbbbbbbbbbbbbbbbbbbbbbbbb--\r\n",
        );
        assert_eq!(body(&multipart, &file), expected.as_bytes());
        assert_eq!(multipart.content_length(), expected.len() as u64);
        assert_eq!(
            multipart.content_type(),
            "multipart/byteranges; boundary=bbbbbbbbbbbbbbbbbbbbbbbbbb"
        );
    }

    #[test]
    fn empty_content_type_omits_the_line() {
        let file = Bytes::from_static(b"0123456789");
        let b = boundary(b"bbbbbbbbbbbbbbbbbbbbbbbbbb");
        let multipart = Multipart::new(&[0..1, 9..10], 10, b"", b);
        let expected = concat!(
            "\r\n--bbbbbbbbbbbbbbbbbbbbbbbbbb\r\nContent-Range: bytes 0-0/10\r\n\r\n0",
            "\r\n--bbbbbbbbbbbbbbbbbbbbbbbbbb\r\nContent-Range: bytes 9-9/10\r\n\r\n9",
            "\r\n--bbbbbbbbbbbbbbbbbbbbbbbbbb--\r\n",
        );
        assert_eq!(body(&multipart, &file), expected.as_bytes());
    }

    #[test]
    fn content_type_that_would_break_framing_is_omitted() {
        let file = Bytes::from_static(b"0123456789");
        let b = boundary(b"bbbbbbbbbbbbbbbbbbbbbbbbbb");
        for bad in [
            &b"text/plain\r\nX-Injected: 1"[..],
            b"a\nb",
            b"a\0b",
            b"a\x7fb",
        ] {
            let with_bad = Multipart::new(&[0..1, 5..6], 10, bad, b);
            let without = Multipart::new(&[0..1, 5..6], 10, b"", b);
            assert_eq!(body(&with_bad, &file), body(&without, &file), "{bad:?}");
            assert_eq!(
                multipart_length(&[0..1, 5..6], 10, bad, BOUNDARY_LEN),
                without.content_length()
            );
        }
        // HTAB and obs-text are valid field-value bytes and are kept.
        let kept = Multipart::new(&[0..1, 5..6], 10, b"text/plain;\tq=\xe9", b);
        assert!(
            find(
                &body(&kept, &file),
                b"Content-Type: text/plain;\tq=\xe9\r\n",
                0
            )
            .is_some()
        );
    }

    #[test]
    fn malformed_parts_are_clamped_or_skipped_without_panicking() {
        let file = sample_file(10);
        let b = boundary(b"0123456789abcdefghijklmnop");
        let parts = [
            Range { start: 5, end: 2 },
            3..3,
            8..20,
            10..12,
            u64::MAX..u64::MAX,
            0..u64::MAX,
        ];
        let multipart = Multipart::new(&parts, 10, b"x/y", b);
        assert_eq!(multipart.piece_count(), 2 * 2 + 1);
        let parsed = parse_multipart(&body(&multipart, &file), b.as_str());
        let ranges: Vec<_> = parsed.iter().map(|p| header(p, "Content-Range")).collect();
        assert_eq!(ranges, [Some("bytes 8-9/10"), Some("bytes 0-9/10")]);
        assert_eq!(
            multipart.content_length(),
            multipart_length(&parts, 10, b"x/y", BOUNDARY_LEN)
        );
    }

    #[test]
    fn no_parts_yields_only_the_close_delimiter() {
        let b = boundary(b"0123456789abcdefghijklmnop");
        let multipart = Multipart::new(&[], 10, b"x/y", b);
        assert_eq!(multipart.piece_count(), 1);
        let close = multipart.piece(0, &Bytes::new()).expect("close delimiter");
        assert_eq!(close, "\r\n--0123456789abcdefghijklmnop--\r\n");
        assert_eq!(multipart.content_length(), close.len() as u64);
        assert_eq!(
            multipart_length(&[], 10, b"x/y", BOUNDARY_LEN),
            close.len() as u64
        );
    }

    #[test]
    fn pieces_past_the_end_or_beyond_a_short_file_are_none() {
        let b = boundary(b"0123456789abcdefghijklmnop");
        let multipart = Multipart::new(&[0..2, 8..10], 10, b"x/y", b);
        let file = sample_file(10);
        assert!(multipart.piece(5, &file).is_none());
        assert!(multipart.piece(6, &file).is_none());
        assert!(multipart.piece(usize::MAX, &file).is_none());
        let short = sample_file(9);
        assert!(multipart.piece(1, &short).is_some());
        assert!(multipart.piece(3, &short).is_none());
    }

    #[test]
    fn huge_offsets_render_in_full() {
        let len = u64::MAX;
        let parts = [0..1, u64::MAX - 1..u64::MAX];
        let b = boundary(b"0123456789abcdefghijklmnop");
        let multipart = Multipart::new(&parts, len, b"a/b", b);
        let framing = multipart.piece(2, &Bytes::new()).expect("second header");
        assert!(
            find(
                &framing,
                b"bytes 18446744073709551614-18446744073709551614/18446744073709551615\r\n",
                0
            )
            .is_some()
        );
        assert_eq!(
            multipart.content_length(),
            multipart_length(&parts, len, b"a/b", BOUNDARY_LEN)
        );
        // A pathological boundary length saturates instead of overflowing.
        assert_eq!(multipart_length(&parts, len, b"a/b", usize::MAX), u64::MAX);
    }

    #[test]
    fn framing_buffer_is_sized_exactly_up_front() {
        let b = boundary(b"0123456789abcdefghijklmnop");
        let parts = [0..1, 9..99, 1000..1001, 5000..9999];
        let ct = b"application/octet-stream";
        let multipart = Multipart::new(&parts, 10_000, ct, b);
        let expected = framing_length(&parts, 10_000, part_content_type(ct), BOUNDARY_LEN);
        assert_eq!(multipart.framing_end as u64, expected);
        assert_eq!(
            multipart.framing.len(),
            multipart.framing_end
                + MEDIA_TYPE.len()
                + BOUNDARY_LEN
                + decimal_len(multipart.content_length()),
        );
        assert_eq!(
            multipart.content_type(),
            format!("multipart/byteranges; boundary={}", b.as_str())
        );
        assert_eq!(
            multipart.content_length_value(),
            multipart.content_length().to_string().as_str()
        );
        assert_eq!(multipart.parts.capacity(), parts.len());
    }

    #[test]
    fn boundaries_are_unique_and_well_formed() {
        let mut seen = HashSet::with_capacity(100_000);
        for _ in 0..100_000 {
            let b = Boundary::new();
            let text = b.as_str();
            assert!((16..=32).contains(&text.len()));
            assert!(
                text.bytes()
                    .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()),
                "{text}"
            );
            assert!(seen.insert(text.to_owned()), "repeated boundary {text}");
        }
    }

    #[test]
    fn boundaries_are_unique_across_threads() {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| (0..10_000).map(|_| Boundary::new()).collect::<Vec<_>>())
            })
            .collect();
        let mut seen = HashSet::new();
        for handle in handles {
            for b in handle.join().expect("thread finished") {
                assert!(seen.insert(b.as_str().to_owned()));
            }
        }
    }

    /// Disjoint, non-adjacent parts of `0..len` in a shuffled order.
    fn disjoint_parts() -> impl Strategy<Value = (u64, Vec<Range<u64>>)> {
        (1u64..3000)
            .prop_flat_map(|len| (Just(len), proptest::collection::vec(0..len, 0..24)))
            .prop_flat_map(|(len, mut cuts)| {
                cuts.sort_unstable();
                cuts.dedup();
                let parts: Vec<Range<u64>> = cuts
                    .chunks_exact(2)
                    .map(|pair| pair[0]..pair[1] + 1)
                    .filter(|range| range.end <= len)
                    .collect();
                (Just(len), Just(parts).prop_shuffle())
            })
    }

    proptest! {
        #[test]
        fn random_disjoint_parts_round_trip(
            (len, parts) in disjoint_parts(),
            content_type in "[a-z]{0,8}(/[a-z0-9.+-]{1,12})?",
        ) {
            let file = sample_file(len as usize);
            check_round_trip(&parts, &file, content_type.as_bytes(), Boundary::new());
        }

        #[test]
        fn arbitrary_parts_never_panic_and_lengths_agree(
            len in prop_oneof![Just(0u64), 0u64..100, Just(u64::MAX)],
            parts in proptest::collection::vec((any::<u64>(), any::<u64>()), 0..8),
            small in proptest::collection::vec((0u64..120, 0u64..120), 0..8),
            content_type in proptest::collection::vec(any::<u8>(), 0..16),
        ) {
            let parts: Vec<Range<u64>> = parts.into_iter().chain(small).map(|(a, b)| a..b).collect();
            let multipart = Multipart::new(&parts, len, &content_type, Boundary::new());
            prop_assert_eq!(
                multipart.content_length(),
                multipart_length(&parts, len, &content_type, BOUNDARY_LEN)
            );
            let file = sample_file(len.min(100) as usize);
            for index in 0..=multipart.piece_count() {
                let _ = multipart.piece(index, &file);
            }
        }
    }
}
