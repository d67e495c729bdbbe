//! Range request planning (RFC 9110 §14): from a raw `Range` field value and a representation length to
//! what the response must be (200, 206 single part, 206 multipart/byteranges or 416); pure, no `Response`.
//!
//! Everything here is pure and allocation-bounded: the header is scanned in place, no string is built per
//! range-spec, and the only allocation is the output `Vec` of a multi-part plan.
//!
//! # Why the syntax is parsed here and not by `http-range-header`
//!
//! The crate's design named `http-range-header`. Its 0.4 (tower-http's) rejects what RFC 9110 §14.1 allows
//! (whitespace, leading zeros, overlaps). Its 1.0 parses those, and was tried as this module's parser (issue
//! 12): `parse_range_header_with_max_ranges` and `ParsedRanges::into_ranges`, never `validate`, with this
//! module's satisfiability, coalescing, client order and `max_ranges` kept. It gets the unit's case
//! (`Bytes=`), leading zeros, `-0` and OWS around list elements right, but it answers these otherwise than
//! RFC 9110, each pinned by a test below:
//! - more than 15 empty list elements are an error (§5.6.1.2 lets a list carry them);
//! - a position of more than 30 characters is an error (§14.1.1 is `1*DIGIT`: `bytes=0-` and 40 zeros);
//! - both positions of an int-range past `u64::MAX` saturate before the reversal check, so
//!   `bytes=18446744073709551616-18446744073709551615` is valid to it (§14.1.1: invalid);
//! - OWS before or after the whole field value is an error, and it takes `&str` (a UTF-8 pass first).
//!
//! Keeping this module's answers took a pre-check (one scan for 15 empty elements or a 20-digit run) and,
//! for what it flags, a normalising copy: split, trim, skip empties, strip zeros, compare reversed long
//! numbers exactly. That copy is a second tokenizer, this parser minus its digit accumulation, and a second
//! path to get wrong: the first try normalised `bytes 1844…-…` (no `=`) into a valid header, which the
//! service property test caught. What it cost, measured (`N=300 bench/instructions.sh`, callgrind, and
//! `tests/allocations.rs`):
//! - `range_4k` 9,406 → 10,086 instructions per request (+7.2%), `multipart_3` 16,391 → 17,635 (+7.6%);
//!   `plan_ranges` alone 558 → 1,238 per call, 690 of them inside the crate;
//! - one more allocation on every range request, one range or many (its `Vec` of specs): 4 KiB range
//!   5 → 6, 3 ranges 8 → 9, 416 4 → 5.
//!
//! That is more than twice the ~3% a range request may pay for a parser, for no behaviour gained, so this
//! ~90-line parser stays (the brief allowed "write your own where the crate is wrong for us, and say why").

use std::cmp::Ordering;
use std::ops::Range;

use ::http::HeaderValue;

use super::fields::{ShortValue, trim_ows};

/// What RFC 9110 §14.2 decides for a Range header on a GET of a representation of `len` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RangePlan {
    /// Ignore the Range header and answer 200 with the whole representation.
    Full,
    /// 206 with one part; half-open byte range, non-empty, inside 0..len.
    Single(Range<u64>),
    /// 206 multipart/byteranges; >= 2 parts, each non-empty and inside 0..len, pairwise disjoint and non-adjacent.
    Multi(Vec<Range<u64>>),
    /// 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Decides how to answer a `Range: {header}` request for a representation of `len` bytes.
///
/// `max_ranges` bounds the number of range-specs a client may send; a header with more is ignored
/// (answered [`RangePlan::Full`]) to defuse amplification, and parsing stops as soon as the bound is passed.
///
/// Decisions:
/// - an invalid header (any syntax error, a reversed int-range, no range-spec at all) or a range unit other
///   than `bytes` yields [`RangePlan::Full`] (RFC 9110 §14.2: a server MAY ignore the Range header);
/// - optional whitespace is accepted around every list element (including right after `=`), never inside a
///   range-spec;
/// - for an empty representation (`len == 0`) no byte range can be sent, so a request naming a non-zero
///   suffix-range (which RFC 9110 §14.1.1 calls satisfiable even then) is answered with the empty 200, and
///   any other request with 416;
/// - satisfiable ranges that overlap or touch are sorted and merged; otherwise the client's order is kept.
pub(crate) fn plan_ranges(header: &[u8], len: u64, max_ranges: usize) -> RangePlan {
    // RFC 9110 §14.2: an unknown range unit or an invalid ranges-specifier is ignored.
    let Some(set) = byte_range_set(header) else {
        return RangePlan::Full;
    };

    // One pass: validate the whole set and collect what is satisfiable. The first range waits in `first`,
    // so that a single part (the common case) allocates nothing.
    let mut specs_seen = 0usize;
    let mut first = None;
    let mut many = Vec::new();
    let mut nonzero_suffix = false;
    for spec in specs(set) {
        specs_seen += 1;
        if specs_seen > max_ranges {
            // Too many ranges: ignoring the header is allowed (RFC 9110 §14.2) and bounds our work.
            return RangePlan::Full;
        }
        let Some(spec) = spec else {
            // RFC 9110 §14.2: one invalid range-spec makes the whole header invalid.
            return RangePlan::Full;
        };
        nonzero_suffix |= matches!(spec, Spec::Suffix(n) if n > 0);
        let Some(range) = spec.satisfiable(len) else {
            continue;
        };
        match &mut first {
            None => first = Some(range),
            Some(first) => {
                if many.is_empty() {
                    // At most one range per list element, and no more than `max_ranges` of them.
                    let elements = set.iter().filter(|&&b| b == b',').count() + 1;
                    many.reserve_exact(elements.min(max_ranges));
                    many.push(first.clone());
                }
                many.push(range);
            }
        }
    }
    if specs_seen == 0 {
        // RFC 9110 §14.1.1: `range-set = 1#range-spec`; an empty set is invalid.
        return RangePlan::Full;
    }

    match first {
        None if len == 0 && nonzero_suffix => {
            // RFC 9110 §14.1.1 calls a non-zero suffix-range satisfiable on an empty representation, but
            // no Content-Range can describe zero bytes: answer the (empty) whole representation instead.
            RangePlan::Full
        }
        // RFC 9110 §15.5.17: no satisfiable range at all -> 416.
        None => RangePlan::Unsatisfiable,
        // RFC 9110 §15.3.7.1: a single part, without multipart framing.
        Some(only) if many.is_empty() => RangePlan::Single(only),
        Some(_) => order_or_coalesce(set, len, many),
    }
}

/// `bytes {first}-{last}/{len}` for a non-empty half-open range (RFC 9110 §14.4).
///
/// An empty range (which [`plan_ranges`] never produces) is rendered as if it held its first byte, so that
/// the call cannot underflow.
pub(crate) fn content_range(range: &Range<u64>, len: u64) -> HeaderValue {
    let last = range.end.saturating_sub(1).max(range.start);
    let mut value = ShortValue::new();
    value.push(b"bytes ");
    value.push_decimal(range.start);
    value.push(b"-");
    value.push_decimal(last);
    value.push(b"/");
    value.push_decimal(len);
    value.to_header_value()
}

/// `bytes */{len}` (RFC 9110 §14.4, for 416).
pub(crate) fn unsatisfied_content_range(len: u64) -> HeaderValue {
    let mut value = ShortValue::new();
    value.push(b"bytes */");
    value.push_decimal(len);
    value.to_header_value()
}

/// One syntactically valid range-spec (RFC 9110 §14.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec {
    /// int-range `first-[last]`; an absent or oversized `last` saturates to `u64::MAX`.
    Int { first: u64, last: u64 },
    /// suffix-range `-length`.
    Suffix(u64),
}

impl Spec {
    /// The bytes this spec selects in a representation of `len` bytes, if it is satisfiable.
    fn satisfiable(self, len: u64) -> Option<Range<u64>> {
        match self {
            // RFC 9110 §14.1.1: satisfiable iff first-pos < length; last-pos is clamped to length - 1.
            Spec::Int { first, last } => (first < len).then(|| first..last.min(len - 1) + 1),
            // RFC 9110 §14.1.1/§14.1.2: a non-zero suffix selects the last min(suffix, length) bytes.
            Spec::Suffix(suffix) => (suffix > 0 && len > 0).then(|| len - suffix.min(len)..len),
        }
    }
}

/// The range-set of a `bytes=` ranges-specifier, or `None` for another unit or a malformed value.
fn byte_range_set(header: &[u8]) -> Option<&[u8]> {
    let header = trim_ows(header);
    let eq = header.iter().position(|&b| b == b'=')?;
    let (unit, rest) = header.split_at(eq);
    // RFC 9110 §14.1: range units are compared case-insensitively; only `bytes` is understood here.
    if !unit.eq_ignore_ascii_case(b"bytes") {
        return None;
    }
    rest.get(1..)
}

/// The range-specs of a range-set in order, `None` for a malformed one; empty list elements are skipped
/// (RFC 9110 §5.6.1.2).
fn specs(set: &[u8]) -> impl Iterator<Item = Option<Spec>> + '_ {
    set.split(|&b| b == b',')
        .map(trim_ows)
        .filter(|element| !element.is_empty())
        .map(parse_spec)
}

/// The satisfiable ranges of an already validated range-set, in the client's order.
fn satisfiable_ranges(set: &[u8], len: u64) -> impl Iterator<Item = Range<u64>> + '_ {
    specs(set)
        .flatten()
        .filter_map(move |spec| spec.satisfiable(len))
}

/// Parses one non-empty list element as an int-range or a suffix-range (RFC 9110 §14.1.1).
fn parse_spec(element: &[u8]) -> Option<Spec> {
    let dash = element.iter().position(|&b| b == b'-')?;
    let (first, rest) = element.split_at(dash);
    let last = rest.get(1..)?;
    if first.is_empty() {
        // suffix-range = "-" suffix-length
        return Some(Spec::Suffix(parse_digits(last)?));
    }
    let first_pos = parse_digits(first)?;
    if last.is_empty() {
        // int-range without last-pos: through the end of the representation.
        return Some(Spec::Int {
            first: first_pos,
            last: u64::MAX,
        });
    }
    let last_pos = parse_digits(last)?;
    // RFC 9110 §14.1.1: an int-range with last-pos < first-pos is invalid. Compare the digit strings
    // exactly, so that two different oversized numbers are still ordered correctly.
    if compare_decimal(first, last) == Ordering::Greater {
        return None;
    }
    Some(Spec::Int {
        first: first_pos,
        last: last_pos,
    })
}

/// Parses `1*DIGIT`, saturating at `u64::MAX`.
fn parse_digits(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &b| {
        b.is_ascii_digit()
            .then(|| acc.saturating_mul(10).saturating_add(u64::from(b - b'0')))
    })
}

/// Orders two `1*DIGIT` strings by the numbers they denote, whatever their size.
fn compare_decimal(a: &[u8], b: &[u8]) -> Ordering {
    let a = strip_leading_zeros(a);
    let b = strip_leading_zeros(b);
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// `digits` without its leading `0`s.
fn strip_leading_zeros(digits: &[u8]) -> &[u8] {
    let zeros = digits.iter().take_while(|&&b| b == b'0').count();
    digits.get(zeros..).unwrap_or_default()
}

/// Keeps the client's order when no two ranges overlap or touch, else sorts and merges them
/// (RFC 9110 §14.2 allows coalescing "regardless of the order").
fn order_or_coalesce(set: &[u8], len: u64, mut ranges: Vec<Range<u64>>) -> RangePlan {
    if is_ascending_and_apart(&ranges) {
        return RangePlan::Multi(ranges);
    }
    ranges.sort_unstable_by_key(|range| range.start);
    if is_ascending_and_apart(&ranges) {
        // Nothing to merge: restore the client's order by re-reading the header into the same buffer.
        ranges.clear();
        ranges.extend(satisfiable_ranges(set, len));
        return RangePlan::Multi(ranges);
    }
    // Sorted by start: merge each range into the previous kept one when they overlap or are adjacent.
    ranges.dedup_by(|next, kept| {
        let touches = next.start <= kept.end;
        if touches {
            kept.end = kept.end.max(next.end);
        }
        touches
    });
    match ranges.as_slice() {
        [only] => RangePlan::Single(only.clone()),
        _ => RangePlan::Multi(ranges),
    }
}

/// Whether every range ends strictly before the next one starts (sorted, disjoint and non-adjacent).
fn is_ascending_and_apart(ranges: &[Range<u64>]) -> bool {
    ranges
        .windows(2)
        .all(|pair| matches!(pair, [a, b] if a.end < b.start))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use RangePlan::{Full, Multi, Single, Unsatisfiable};

    const MAX: u64 = u64::MAX;

    fn plan(header: &str, len: u64) -> RangePlan {
        plan_ranges(header.as_bytes(), len, 16)
    }

    fn check_table<H: AsRef<str> + std::fmt::Debug>(table: &[(H, u64, RangePlan)]) {
        for (header, len, expected) in table {
            assert_eq!(
                &plan(header.as_ref(), *len),
                expected,
                "Range: {header:?}, len {len}"
            );
        }
    }

    #[test]
    fn int_ranges_select_first_through_last_inclusive() {
        check_table(&[
            ("bytes=0-0", 10, Single(0..1)),
            ("bytes=0-9", 10, Single(0..10)),
            ("bytes=3-5", 10, Single(3..6)),
            ("bytes=9-9", 10, Single(9..10)),
            ("bytes=0-0", 1, Single(0..1)),
            ("bytes=007-0008", 10, Single(7..9)),
        ]);
    }

    #[test]
    fn last_pos_past_the_end_is_clamped() {
        check_table(&[
            ("bytes=0-10", 10, Single(0..10)),
            ("bytes=5-999999", 10, Single(5..10)),
            ("bytes=0-18446744073709551615", 10, Single(0..10)),
            ("bytes=0-18446744073709551616", 10, Single(0..10)),
            ("bytes=2-999999999999999999999999999999", 10, Single(2..10)),
            ("bytes=0-1", 1, Single(0..1)),
        ]);
    }

    #[test]
    fn open_ended_int_range_runs_to_the_end() {
        check_table(&[
            ("bytes=0-", 10, Single(0..10)),
            ("bytes=9-", 10, Single(9..10)),
            ("bytes=0-", 1, Single(0..1)),
            ("bytes=10-", 10, Unsatisfiable),
        ]);
    }

    #[test]
    fn suffix_ranges_select_the_tail() {
        check_table(&[
            ("bytes=-1", 10, Single(9..10)),
            ("bytes=-3", 10, Single(7..10)),
            ("bytes=-10", 10, Single(0..10)),
            ("bytes=-11", 10, Single(0..10)),
            ("bytes=-18446744073709551615", 10, Single(0..10)),
            ("bytes=-999999999999999999999999999999", 10, Single(0..10)),
            ("bytes=-1", 1, Single(0..1)),
        ]);
    }

    #[test]
    fn zero_suffix_and_first_pos_at_or_past_the_end_are_unsatisfiable() {
        check_table(&[
            ("bytes=-0", 10, Unsatisfiable),
            ("bytes=-000", 10, Unsatisfiable),
            ("bytes=10-10", 10, Unsatisfiable),
            ("bytes=10-20", 10, Unsatisfiable),
            ("bytes=1-1", 1, Unsatisfiable),
            ("bytes=18446744073709551615-", 10, Unsatisfiable),
            (
                "bytes=18446744073709551615-18446744073709551615",
                MAX,
                Unsatisfiable,
            ),
            ("bytes=999999999999999999999999999999-", 10, Unsatisfiable),
            ("bytes=999999999999999999999999999999-", MAX, Unsatisfiable),
            ("bytes=-0,10-,20-30", 10, Unsatisfiable),
        ]);
    }

    #[test]
    fn unsatisfiable_members_are_dropped() {
        check_table(&[
            ("bytes=20-30,2-3", 10, Single(2..4)),
            ("bytes=-0,2-3", 10, Single(2..4)),
            ("bytes=0-0,99-,5-5", 10, Multi(vec![0..1, 5..6])),
        ]);
    }

    #[test]
    fn u64_max_length_is_handled_without_overflow() {
        check_table(&[
            ("bytes=0-", MAX, Single(0..MAX)),
            ("bytes=-1", MAX, Single(MAX - 1..MAX)),
            ("bytes=-18446744073709551615", MAX, Single(0..MAX)),
            ("bytes=-999999999999999999999999999999", MAX, Single(0..MAX)),
            ("bytes=18446744073709551614-", MAX, Single(MAX - 1..MAX)),
            (
                "bytes=18446744073709551614-99999999999999999999",
                MAX,
                Single(MAX - 1..MAX),
            ),
        ]);
    }

    #[test]
    fn syntax_errors_make_the_whole_header_invalid() {
        check_table(&[
            ("", 10, Full),
            ("bytes", 10, Full),
            ("bytes=", 10, Full),
            ("bytes=,", 10, Full),
            ("bytes= , ,", 10, Full),
            ("=0-1", 10, Full),
            ("bytes=-", 10, Full),
            ("bytes=--1", 10, Full),
            ("bytes=1", 10, Full),
            ("bytes=a-b", 10, Full),
            ("bytes=0x1-2", 10, Full),
            ("bytes=1-0x2", 10, Full),
            ("bytes=+1-2", 10, Full),
            ("bytes=1-+2", 10, Full),
            ("bytes=-+1", 10, Full),
            ("bytes=1--2", 10, Full),
            ("bytes=1-2-3", 10, Full),
            ("bytes=1.5-2", 10, Full),
            ("bytes=0-1;2-3", 10, Full),
            ("bytes=0-1,x", 10, Full),
            ("bytes=0-1,2-3,garbage", 10, Full),
            ("bytes=0-1\0", 10, Full),
            ("bytes=0-1,\r\n2-3", 10, Full),
            ("bytes==0-1", 10, Full),
            ("bytes=0-1=", 10, Full),
        ]);
    }

    #[test]
    fn reversed_int_range_makes_the_whole_header_invalid() {
        check_table(&[
            ("bytes=5-4", 10, Full),
            ("bytes=1-0", 10, Full),
            ("bytes=0-1,5-4", 10, Full),
            ("bytes=50-40", 10, Full),
            ("bytes=999999999999999999999999999999-1", 10, Full),
            (
                "bytes=999999999999999999999999999999-999999999999999999999999999998",
                10,
                Full,
            ),
            (
                "bytes=999999999999999999999999999998-999999999999999999999999999999",
                10,
                Unsatisfiable,
            ),
            ("bytes=0010-10", 20, Single(10..11)),
        ]);
    }

    #[test]
    fn whitespace_is_allowed_only_around_list_elements() {
        check_table(&[
            ("bytes=0-1, 3-4", 10, Multi(vec![0..2, 3..5])),
            ("bytes=0-1 ,3-4", 10, Multi(vec![0..2, 3..5])),
            ("bytes=0-1 \t, \t3-4", 10, Multi(vec![0..2, 3..5])),
            ("bytes= 0-1", 10, Single(0..2)),
            ("  bytes=0-1  ", 10, Single(0..2)),
            ("bytes=0 -1", 10, Full),
            ("bytes=0- 1", 10, Full),
            ("bytes=- 1", 10, Full),
            ("bytes=1 2-3", 10, Full),
            ("bytes =0-1", 10, Full),
            (" bytes =0-1", 10, Full),
        ]);
    }

    #[test]
    fn range_unit_is_case_insensitive_and_only_bytes_is_understood() {
        check_table(&[
            ("BYTES=0-1", 10, Single(0..2)),
            ("Bytes=0-1", 10, Single(0..2)),
            ("bYtEs=-2", 10, Single(8..10)),
            ("items=0-1", 10, Full),
            ("byte=0-1", 10, Full),
            ("bytesx=0-1", 10, Full),
            ("none=0-1", 10, Full),
            ("bytés=0-1", 10, Full),
        ]);
    }

    #[test]
    fn non_ascii_and_garbage_are_ignored() {
        let cases: &[&[u8]] = &[
            b"\xff\xfe",
            b"bytes=\xff-1",
            b"bytes=0-\x80",
            b"bytes=\x00",
            b"\x00\x00\x00",
            "bytes=٣-٤".as_bytes(),
        ];
        for header in cases {
            assert_eq!(plan_ranges(header, 10, 16), Full, "{header:?}");
        }
    }

    #[test]
    fn empty_list_elements_are_ignored() {
        check_table(&[
            ("bytes=0-1,,3-4", 10, Multi(vec![0..2, 3..5])),
            ("bytes=,0-1", 10, Single(0..2)),
            ("bytes=0-1,", 10, Single(0..2)),
            ("bytes=, ,0-1, , ,3-4,,", 10, Multi(vec![0..2, 3..5])),
        ]);
    }

    // The next four tests pin what RFC 9110 says where `http-range-header` 1.0 answers otherwise (module doc).

    #[test]
    fn more_than_fifteen_empty_list_elements_are_still_ignored() {
        let sixteen = ",".repeat(16);
        let forty = " ,\t".repeat(40);
        check_table(&[
            (
                format!("bytes=0-1{sixteen}3-4"),
                10,
                Multi(vec![0..2, 3..5]),
            ),
            (format!("bytes={forty}-2{forty}"), 10, Single(8..10)),
            (format!("bytes={sixteen}0-0{sixteen}"), 10, Single(0..1)),
            (format!("bytes={sixteen}"), 10, Full),
        ]);
    }

    #[test]
    fn positions_of_any_length_are_read_exactly() {
        let zeros = "0".repeat(40);
        let nines = "9".repeat(40);
        check_table(&[
            (format!("bytes=0-{zeros}"), 10, Single(0..1)),
            (format!("bytes={zeros}-"), 10, Single(0..10)),
            (format!("bytes=0-{zeros}5"), 10, Single(0..6)),
            (format!("bytes={zeros}3-{zeros}4"), 10, Single(3..5)),
            (format!("bytes=-{zeros}2"), 10, Single(8..10)),
            (format!("bytes=-{zeros}"), 10, Unsatisfiable),
            (format!("bytes=-{nines}"), 10, Single(0..10)),
            (format!("bytes=2-{nines}"), 10, Single(2..10)),
            (format!("bytes={nines}-"), 10, Unsatisfiable),
            (format!("bytes={nines}-1"), 10, Full),
            (format!("bytes={zeros}x-1"), 10, Full),
        ]);
    }

    #[test]
    fn reversal_is_decided_exactly_past_u64_max() {
        let nines = "9".repeat(40);
        check_table(&[
            (
                "bytes=18446744073709551616-18446744073709551615".into(),
                10,
                Full,
            ),
            (
                "bytes=18446744073709551615-18446744073709551616".into(),
                10,
                Unsatisfiable,
            ),
            (
                "bytes=99999999999999999999-99999999999999999998".into(),
                MAX,
                Full,
            ),
            (
                "bytes=0-0,18446744073709551617-18446744073709551616".into(),
                10,
                Full,
            ),
            (format!("bytes={nines}1-{nines}0"), 10, Full),
            (format!("bytes={nines}0-{nines}1"), 10, Unsatisfiable),
        ]);
    }

    #[test]
    fn whitespace_around_the_field_value_is_not_part_of_it() {
        check_table(&[
            ("\tbytes=0-1", 10, Single(0..2)),
            ("bytes=0-1 \t", 10, Single(0..2)),
            ("bytes=0-1,3-4 ", 10, Multi(vec![0..2, 3..5])),
            ("bytes=0-1, \t", 10, Single(0..2)),
            // Without `=` there is no range unit, however the rest reads.
            ("bytes 18446744073709551615-18446744073709551615", 1, Full),
            ("bytes0-0", 10, Full),
        ]);
    }

    #[test]
    fn disjoint_ranges_keep_the_client_order() {
        check_table(&[
            ("bytes=0-1,5-6", 10, Multi(vec![0..2, 5..7])),
            ("bytes=5-6,0-1", 10, Multi(vec![5..7, 0..2])),
            ("bytes=8-,0-1,4-5", 10, Multi(vec![8..10, 0..2, 4..6])),
            ("bytes=-1,0-0", 10, Multi(vec![9..10, 0..1])),
            ("bytes=-2,0-6", 10, Multi(vec![8..10, 0..7])),
            ("bytes=-3,0-5", 10, Multi(vec![7..10, 0..6])),
        ]);
    }

    #[test]
    fn overlapping_or_adjacent_ranges_are_sorted_and_merged() {
        check_table(&[
            ("bytes=0-1,2-3", 10, Single(0..4)),
            ("bytes=2-3,0-1", 10, Single(0..4)),
            ("bytes=0-5,3-8", 10, Single(0..9)),
            ("bytes=0-0,0-0", 10, Single(0..1)),
            ("bytes=0-,-1", 10, Single(0..10)),
            ("bytes=-3,0-6", 10, Single(0..10)),
            // One overlap anywhere means everything is sorted, not just the touching pair.
            ("bytes=8-9,0-1,1-2", 10, Multi(vec![0..3, 8..10])),
            ("bytes=6-7,0-1,3-4,4-4", 10, Multi(vec![0..2, 3..5, 6..8])),
            ("bytes=0-3,1-2", 10, Single(0..4)),
        ]);
    }

    #[test]
    fn empty_representation_has_no_satisfiable_byte_range() {
        check_table(&[
            ("bytes=0-0", 0, Unsatisfiable),
            ("bytes=0-", 0, Unsatisfiable),
            ("bytes=-0", 0, Unsatisfiable),
            ("bytes=0-0,-0", 0, Unsatisfiable),
            ("bytes=-1", 0, Full),
            ("bytes=-999999999999999999999999999999", 0, Full),
            ("bytes=0-0,-5", 0, Full),
            ("bytes=5-4", 0, Full),
            ("items=-1", 0, Full),
        ]);
    }

    #[test]
    fn representation_of_one_byte() {
        check_table(&[
            ("bytes=0-0", 1, Single(0..1)),
            ("bytes=0-", 1, Single(0..1)),
            ("bytes=-1", 1, Single(0..1)),
            ("bytes=-5", 1, Single(0..1)),
            ("bytes=1-", 1, Unsatisfiable),
            ("bytes=0-0,-1", 1, Single(0..1)),
        ]);
    }

    #[test]
    fn max_ranges_counts_specs_not_empty_elements() {
        let five = "bytes=0-0,2-2,4-4,6-6,8-8";
        let expected = Multi(vec![0..1, 2..3, 4..5, 6..7, 8..9]);
        assert_eq!(plan_ranges(five.as_bytes(), 10, 5), expected);
        assert_eq!(plan_ranges(five.as_bytes(), 10, 4), Full);
        assert_eq!(
            plan_ranges(b"bytes=0-0,,,,,,,,2-2", 10, 2),
            Multi(vec![0..1, 2..3])
        );
        assert_eq!(plan_ranges(b"bytes=0-0,2-2,4-4", 10, 2), Full);
        // Unsatisfiable specs count too: the bound is on what the client sent.
        assert_eq!(plan_ranges(b"bytes=50-,60-,0-0", 10, 2), Full);
        assert_eq!(plan_ranges(b"bytes=0-0", 10, 1), Single(0..1));
        assert_eq!(plan_ranges(b"bytes=0-0", 10, 0), Full);
        // The bound stops parsing: a syntax error after it is never seen, the answer is Full anyway.
        assert_eq!(plan_ranges(b"bytes=0-0,2-2,oops", 10, 1), Full);
    }

    #[test]
    fn ten_thousand_members_are_cheap() {
        let mut header = String::from("bytes=");
        for i in 0..10_000u64 {
            if i > 0 {
                header.push(',');
            }
            header.push_str(&format!("{}-{}", i * 3, i * 3));
        }
        let len = 30_000;
        assert_eq!(plan_ranges(header.as_bytes(), len, 64), Full);
        match plan_ranges(header.as_bytes(), len, 10_000) {
            Multi(parts) => {
                assert_eq!(parts.len(), 10_000);
                assert_eq!(parts.first(), Some(&(0..1)));
                assert_eq!(parts.last(), Some(&(29_997..29_998)));
            }
            other => panic!("expected Multi, got {other:?}"),
        }
        assert_eq!(plan_ranges(header.as_bytes(), len, 9_999), Full);

        // Reversed order with one overlap: sorted and merged.
        let mut reversed = String::from("bytes=0-1");
        for i in (0..10_000u64).rev() {
            reversed.push_str(&format!(",{}-{}", i * 3, i * 3));
        }
        match plan_ranges(reversed.as_bytes(), len, 10_001) {
            Multi(parts) => {
                assert_eq!(parts.len(), 10_000);
                assert_eq!(parts.first(), Some(&(0..2)));
                assert!(is_ascending_and_apart(&parts));
            }
            other => panic!("expected Multi, got {other:?}"),
        }

        // Reversed order without overlap: the client's order is kept.
        let mut apart = String::from("bytes=");
        for i in (0..10_000u64).rev() {
            apart.push_str(&format!("{}-{},", i * 3, i * 3));
        }
        match plan_ranges(apart.as_bytes(), len, 10_000) {
            Multi(parts) => {
                assert_eq!(parts.len(), 10_000);
                assert_eq!(parts.first(), Some(&(29_997..29_998)));
                assert_eq!(parts.last(), Some(&(0..1)));
            }
            other => panic!("expected Multi, got {other:?}"),
        }
    }

    #[test]
    fn content_range_renders_inclusive_last_byte() {
        assert_eq!(content_range(&(0..1), 1), "bytes 0-0/1");
        assert_eq!(content_range(&(3..6), 10), "bytes 3-5/10");
        assert_eq!(
            content_range(&(0..MAX), MAX),
            "bytes 0-18446744073709551614/18446744073709551615"
        );
        // Never produced by plan_ranges, but must not underflow.
        assert_eq!(content_range(&(0..0), 0), "bytes 0-0/0");
        assert_eq!(
            content_range(&Range { start: 5, end: 2 }, 10),
            "bytes 5-5/10"
        );
    }

    #[test]
    fn unsatisfied_content_range_names_the_length() {
        assert_eq!(unsatisfied_content_range(0), "bytes */0");
        assert_eq!(unsatisfied_content_range(1234), "bytes */1234");
        assert_eq!(
            unsatisfied_content_range(MAX),
            "bytes */18446744073709551615"
        );
    }

    /// Checks every structural promise of a plan.
    fn assert_well_formed(plan: &RangePlan, len: u64, max_ranges: usize) {
        match plan {
            Full | Unsatisfiable => {}
            Single(range) => {
                assert!(
                    range.start < range.end && range.end <= len,
                    "{range:?} of {len}"
                );
            }
            Multi(ranges) => {
                assert!(
                    ranges.len() >= 2 && ranges.len() <= max_ranges,
                    "{ranges:?}"
                );
                let mut total = 0u64;
                for range in ranges {
                    assert!(
                        range.start < range.end && range.end <= len,
                        "{range:?} of {len}"
                    );
                    total += range.end - range.start;
                }
                assert!(total <= len);
                for (i, a) in ranges.iter().enumerate() {
                    for b in ranges.iter().skip(i + 1) {
                        assert!(a.end < b.start || b.end < a.start, "{a:?} touches {b:?}");
                    }
                }
            }
        }
    }

    /// Bytes covered by a plan, as a bit set (only for `len <= 128`).
    fn coverage(plan: &RangePlan) -> u128 {
        let mark = |range: &Range<u64>| (range.start..range.end).fold(0u128, |set, i| set | 1 << i);
        match plan {
            Full | Unsatisfiable => 0,
            Single(range) => mark(range),
            Multi(ranges) => ranges.iter().fold(0, |set, range| set | mark(range)),
        }
    }

    /// A valid range-spec drawn from small numbers: `(Some(first), last)` or `(None, Some(suffix))`.
    fn spec_strategy() -> impl Strategy<Value = (Option<u64>, Option<u64>)> {
        prop_oneof![
            (0u64..80, proptest::option::of(0u64..40))
                .prop_map(|(first, extra)| (Some(first), extra.map(|e| first + e))),
            (0u64..80).prop_map(|suffix| (None, Some(suffix))),
        ]
    }

    fn render(specs: &[(Option<u64>, Option<u64>)]) -> String {
        let items: Vec<String> = specs
            .iter()
            .map(|spec| match spec {
                (Some(first), Some(last)) => format!("{first}-{last}"),
                (Some(first), None) => format!("{first}-"),
                (None, Some(suffix)) => format!("-{suffix}"),
                (None, None) => String::new(),
            })
            .collect();
        format!("bytes={}", items.join(" , "))
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(
            header in proptest::collection::vec(any::<u8>(), 0..64),
            len in prop_oneof![Just(0u64), Just(1), 0u64..100, Just(MAX), any::<u64>()],
            max_ranges in 0usize..8,
        ) {
            let plan = plan_ranges(&header, len, max_ranges);
            assert_well_formed(&plan, len, max_ranges);
        }

        #[test]
        fn plans_from_range_like_text_are_well_formed(
            header in "[bB][yY][tT][eE][sS]=[ ,]{0,2}([0-9]{0,3}-?[0-9]{0,3}[ ,]{0,2}){0,8}",
            len in prop_oneof![Just(0u64), Just(1), 0u64..1000, Just(MAX)],
            max_ranges in 0usize..10,
        ) {
            let plan = plan_ranges(header.as_bytes(), len, max_ranges);
            assert_well_formed(&plan, len, max_ranges);
        }

        #[test]
        fn a_single_valid_int_range_is_taken_verbatim(len in 1u64.., a in any::<u64>(), b in any::<u64>()) {
            let (a, b) = (a % len, b % len);
            let (a, b) = (a.min(b), a.max(b));
            let header = format!("bytes={a}-{b}");
            prop_assert_eq!(plan_ranges(header.as_bytes(), len, 1), Single(a..b + 1));
        }

        #[test]
        fn plan_covers_exactly_the_satisfiable_bytes(
            specs in proptest::collection::vec(spec_strategy(), 1..8),
            len in 0u64..100,
        ) {
            let header = render(&specs);
            let plan = plan_ranges(header.as_bytes(), len, specs.len());
            assert_well_formed(&plan, len, specs.len());

            let mut expected = 0u128;
            let mut nonzero_suffix = false;
            let mut in_client_order = Vec::new();
            for spec in &specs {
                let range = match *spec {
                    (Some(first), last) => first..last.map_or(len, |last| (last + 1).min(len)),
                    (None, Some(suffix)) => {
                        nonzero_suffix |= suffix > 0;
                        len.saturating_sub(suffix)..len
                    }
                    (None, None) => 0..0,
                };
                expected |= (range.start..range.end).fold(0u128, |set, i| set | 1 << i);
                if range.start < range.end {
                    in_client_order.push(range);
                }
            }
            let apart = in_client_order.iter().enumerate().all(|(i, a)| {
                in_client_order.iter().skip(i + 1).all(|b| a.end < b.start || b.end < a.start)
            });
            if apart && in_client_order.len() >= 2 {
                prop_assert_eq!(&plan, &Multi(in_client_order.clone()));
            }
            if expected == 0 {
                let want = if len == 0 && nonzero_suffix { Full } else { Unsatisfiable };
                prop_assert_eq!(plan, want);
            } else {
                prop_assert_eq!(coverage(&plan), expected);
            }
        }

        #[test]
        fn too_many_specs_are_ignored(count in 2usize..40, len in 1u64..100) {
            let header = format!("bytes={}", vec!["0-0"; count].join(","));
            prop_assert_eq!(plan_ranges(header.as_bytes(), len, count - 1), Full);
            prop_assert_eq!(plan_ranges(header.as_bytes(), len, count), Single(0..1));
        }
    }
}
