//! Property: for any file size and any Range header, valid or not, the answer is 200, 206 or 416 as RFC 9110
//! §14 says, and every byte of a 206 is the file's byte at that offset.
//!
//! Expectations come from a reference model written here from the RFC, not from the crate's planner.

use std::ops::Range;

use http::StatusCode;
use proptest::prelude::*;

use crate::common::{Fixture, get, pattern, send, text, verify_multipart, verify_single};

/// One range-spec as generated (always valid on its own).
#[derive(Debug, Clone)]
enum Spec {
    /// `first-last` (first <= last) or `first-`.
    Int(u64, Option<u64>),
    /// `-suffix`.
    Suffix(u64),
}

impl Spec {
    fn render(&self) -> String {
        match self {
            Spec::Int(first, Some(last)) => format!("{first}-{last}"),
            Spec::Int(first, None) => format!("{first}-"),
            Spec::Suffix(n) => format!("-{n}"),
        }
    }

    /// RFC 9110 §14.1.1-§14.1.2: the bytes this spec selects in a `len`-byte file, if it is satisfiable.
    fn selects(&self, len: u64) -> Option<Range<u64>> {
        match *self {
            Spec::Int(first, last) if first < len => {
                Some(first..last.map_or(len, |last| last.min(len - 1) + 1))
            }
            Spec::Int(..) => None,
            Spec::Suffix(n) if n > 0 && len > 0 => Some(len - n.min(len)..len),
            Spec::Suffix(_) => None,
        }
    }
}

/// Ways to make a header invalid (RFC 9110 §14.2 lets the server ignore it: 200).
#[derive(Debug, Clone)]
enum Corruption {
    WrongUnit,
    Reversed,
    Junk,
    SpaceInside,
    NoEquals,
    EmptySet,
    DoubleDash,
}

/// A byte position for a file of `len` bytes: mostly inside it, sometimes right at its end, rarely huge.
fn position(len: u64) -> impl Strategy<Value = u64> {
    prop_oneof![
        8 => 0..len + len / 4 + 2,
        2 => (0u64..3).prop_map(move |d| (len + d).saturating_sub(1)),
        1 => Just(u64::MAX),
    ]
}

/// A range-spec whose positions mostly fall inside a file of `len` bytes, sometimes at or past its end.
fn spec(len: u64) -> impl Strategy<Value = Spec> {
    prop_oneof![
        3 => (position(len), position(len)).prop_map(|(a, b)| Spec::Int(a.min(b), Some(a.max(b)))),
        // Short ranges: many disjoint parts, where multipart framing can outweigh the data.
        3 => (position(len), 0u64..20).prop_map(|(a, w)| Spec::Int(a, Some(a.saturating_add(w)))),
        1 => position(len).prop_map(|first| Spec::Int(first, None)),
        1 => position(len).prop_map(Spec::Suffix),
    ]
}

/// A file length and up to seven range-specs for it.
fn file_and_specs() -> impl Strategy<Value = (u64, Vec<Spec>)> {
    prop_oneof![
        1 => Just(0u64),
        1 => Just(1u64),
        4 => 2u64..300,
        4 => 300u64..5000,
    ]
    .prop_flat_map(|len| (Just(len), prop::collection::vec(spec(len), 1..8)))
}

fn separator() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![",", ",", ", ", " , ", ",\t", ",,", ", ,"])
}

fn corruption() -> impl Strategy<Value = Corruption> {
    prop::sample::select(vec![
        Corruption::WrongUnit,
        Corruption::Reversed,
        Corruption::Junk,
        Corruption::SpaceInside,
        Corruption::NoEquals,
        Corruption::EmptySet,
        Corruption::DoubleDash,
    ])
}

/// Renders the specs as a Range header, corrupted if asked.
fn render(
    specs: &[Spec],
    separators: &[&str],
    corruption: Option<&Corruption>,
    at: usize,
) -> String {
    let mut elements: Vec<String> = specs.iter().map(Spec::render).collect();
    let mut unit = "bytes=";
    if let Some(corruption) = corruption {
        let at = at % (elements.len() + 1);
        match corruption {
            Corruption::WrongUnit => unit = "items=",
            Corruption::NoEquals => unit = "bytes ",
            Corruption::Reversed => elements.insert(at, "7-3".to_owned()),
            Corruption::Junk => elements.insert(at, "x".to_owned()),
            Corruption::SpaceInside => elements.insert(at, "1 -2".to_owned()),
            Corruption::DoubleDash => elements.insert(at, "--4".to_owned()),
            Corruption::EmptySet => elements.clear(),
        }
    }
    let mut header = unit.to_owned();
    for (i, element) in elements.iter().enumerate() {
        if i > 0 {
            header.push_str(separators[i % separators.len()]);
        }
        header.push_str(element);
    }
    header
}

/// Sorted union of `ranges`, overlapping and adjacent ones merged.
fn union(mut ranges: Vec<Range<u64>>) -> Vec<Range<u64>> {
    ranges.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<u64>> = Vec::new();
    for range in ranges {
        match merged.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => merged.push(range),
        }
    }
    merged
}

/// Per part: delimiter line with a 70-character boundary, Content-Type, Content-Range with 20-digit numbers,
/// blank line; plus the close delimiter. An upper bound on any sane framing, so a multipart answer this small
/// can't be refused as larger than the file.
fn generous_framing(parts: u64) -> u64 {
    parts * (4 + 70 + 2 + 40 + 21 + 3 * 20 + 2 + 4) + 4 + 70 + 4
}

fn check(len: u64, header: &str, specs: &[Spec], valid: bool, max_ranges: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let fx = Fixture::new();
    fx.file("f.bin", len);
    let serve = fx.serve().max_ranges(max_ranges);
    let (status, headers, body) = rt.block_on(send(serve, get("/f.bin", &[("range", header)])));

    let whole = |why: &str| {
        assert_eq!(status, StatusCode::OK, "{why}: Range {header:?}, len {len}");
        assert!(body == pattern(0..len), "{why}: whole file");
        assert_eq!(text(&headers, "content-length"), len.to_string());
    };
    if !valid {
        return whole("invalid header");
    }
    if specs.len() > max_ranges {
        return whole("more specs than max_ranges");
    }
    let selected: Vec<Range<u64>> = specs.iter().filter_map(|s| s.selects(len)).collect();
    let expected = union(selected);
    if expected.is_empty() {
        if len == 0 && specs.iter().any(|s| matches!(s, Spec::Suffix(n) if *n > 0)) {
            return whole("a non-zero suffix of an empty file");
        }
        assert_eq!(
            status,
            StatusCode::RANGE_NOT_SATISFIABLE,
            "Range {header:?}, len {len}"
        );
        assert_eq!(text(&headers, "content-range"), format!("bytes */{len}"));
        assert!(body.is_empty());
        return;
    }
    let data: u64 = expected.iter().map(|r| r.end - r.start).sum();
    let must_be_partial =
        expected.len() == 1 || data + generous_framing(expected.len() as u64) <= len;
    if status == StatusCode::OK && !must_be_partial {
        return whole("multipart refused as larger than the file");
    }
    assert_eq!(
        status,
        StatusCode::PARTIAL_CONTENT,
        "Range {header:?}, len {len}"
    );
    let sent = if headers.get("content-range").is_some() {
        vec![verify_single(&headers, &body, len)]
    } else {
        let parts = verify_multipart(&headers, &body, len, "application/octet-stream");
        assert!(parts.len() >= 2, "a multipart answer has several parts");
        assert!(
            body.len() as u64 <= len,
            "a multipart answer is never larger than the file"
        );
        parts
    };
    let sent_bytes: u64 = sent.iter().map(|r| r.end - r.start).sum();
    assert_eq!(sent_bytes, data, "no byte is sent twice: {sent:?}");
    assert_eq!(union(sent), expected, "exactly the requested bytes");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_range_header_gets_a_correct_200_206_or_416(
        (len, specs) in file_and_specs(),
        separators in prop::collection::vec(separator(), 1..4),
        corruption in prop::option::weighted(0.25, corruption()),
        at in any::<usize>(),
        max_ranges in prop::sample::select(vec![1usize, 2, 3, 1024]),
        padding in prop::sample::select(vec!["", " ", "\t"]),
    ) {
        let header = format!("{padding}{}{padding}", render(&specs, &separators, corruption.as_ref(), at));
        check(len, &header, &specs, corruption.is_none(), max_ranges);
    }
}
