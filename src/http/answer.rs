//! What a GET or HEAD of a representation gets (RFC 9110 §13.2.2, then §14.2): preconditions and ranges
//! decided together, as plain data; no I/O, no `Response`.

use std::ops::Range;

use ::http::Method;
use ::http::header::{self, HeaderMap};

use super::multipart::{Boundary, Multipart, multipart_length};
use super::preconditions::{Precondition, Validators, evaluate_preconditions};
use super::range::{RangePlan, plan_ranges};

/// The answer to a GET or HEAD of a representation, before any header is rendered.
#[derive(Debug, Clone)]
pub(crate) enum Answer {
    /// 412 Precondition Failed (§13.2.2 steps 1, 2 and 4).
    PreconditionFailed,
    /// 304 Not Modified (§13.2.2 step 3 or 4).
    NotModified,
    /// 200 with the whole representation.
    Full,
    /// 206 with one part: a non-empty range inside the representation.
    Single(Range<u64>),
    /// 206 `multipart/byteranges`, laid out; never larger than the whole representation (§14.2 lets a
    /// server ignore Range, and the 200 is then both smaller and correct).
    Multi(Multipart),
    /// 416 Range Not Satisfiable.
    Unsatisfiable,
}

/// The facts about a representation that the answer depends on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Selected<'a> {
    /// Its validators, for the preconditions.
    pub(crate) validators: Validators<'a>,
    /// Its length in bytes.
    pub(crate) len: u64,
    /// Its Content-Type value, which every part of a multipart answer repeats.
    pub(crate) content_type: &'a [u8],
}

/// Decides the answer to `method` (GET or HEAD; the caller answers others) with request `headers` for the
/// representation `selected`; at most `max_ranges` range-specs are honoured.
pub(crate) fn answer(
    method: &Method,
    headers: &HeaderMap,
    selected: &Selected<'_>,
    max_ranges: usize,
) -> Answer {
    let range_applies = match evaluate_preconditions(method, headers, &selected.validators) {
        Precondition::Failed => return Answer::PreconditionFailed,
        Precondition::NotModified => return Answer::NotModified,
        Precondition::Proceed { range_applies } => range_applies,
    };
    // §14.2: GET is the only method range handling is defined for; HEAD gets the 200 headers. Range is a
    // singleton field: two field lines combine into an invalid ranges-specifier, which is ignored.
    let mut lines = headers.get_all(header::RANGE).iter();
    let range = match (lines.next(), lines.next()) {
        (Some(only), None) if method == Method::GET && range_applies => only,
        _ => return Answer::Full,
    };
    let len = selected.len;
    match plan_ranges(range.as_bytes(), len, max_ranges) {
        RangePlan::Full => Answer::Full,
        RangePlan::Single(part) => Answer::Single(part),
        RangePlan::Unsatisfiable => Answer::Unsatisfiable,
        RangePlan::Multi(parts) => {
            let boundary = Boundary::new();
            let ct = selected.content_type;
            if multipart_length(&parts, len, ct, boundary.as_str().len()) > len {
                Answer::Full
            } else {
                Answer::Multi(Multipart::new(&parts, len, ct, boundary))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::http::HeaderValue;
    use std::time::{Duration, UNIX_EPOCH};

    fn run(method: Method, headers: &[(&'static str, &'static str)]) -> Answer {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(*k, HeaderValue::from_static(v));
        }
        let selected = Selected {
            validators: Validators {
                etag: b"\"tag\"",
                etag_is_ours: true,
                last_modified: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
                last_modified_value: Some(b"Tue, 14 Nov 2023 22:13:20 GMT"),
                strong_date_from: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_001)),
            },
            len: 1000,
            content_type: b"application/x-test",
        };
        answer(&method, &map, &selected, 1024)
    }

    #[test]
    fn a_plain_get_and_head_get_the_whole_representation() {
        assert!(matches!(run(Method::GET, &[]), Answer::Full));
        assert!(matches!(run(Method::HEAD, &[]), Answer::Full));
    }

    #[test]
    fn head_ignores_range() {
        assert!(matches!(
            run(Method::HEAD, &[("range", "bytes=0-9")]),
            Answer::Full
        ));
    }

    #[test]
    fn a_single_range_is_one_part() {
        assert!(
            matches!(run(Method::GET, &[("range", "bytes=10-19")]), Answer::Single(ref r) if *r == (10..20))
        );
    }

    #[test]
    fn multipart_is_refused_when_larger_than_the_whole() {
        let many: &'static str = "bytes=0-0,2-2,4-4,6-6,8-8,10-10,12-12,14-14,16-16,18-18,20-20";
        assert!(matches!(run(Method::GET, &[("range", many)]), Answer::Full));
        let Answer::Multi(layout) = run(Method::GET, &[("range", "bytes=0-99,500-599")]) else {
            panic!("two ranges well inside the file are a multipart answer");
        };
        assert!(layout.content_length() <= 1000);
        assert!(
            layout
                .content_type()
                .to_str()
                .expect("ascii")
                .starts_with("multipart/byteranges; boundary=")
        );
    }

    #[test]
    fn two_range_field_lines_are_an_invalid_range_and_ignored() {
        let two = [("range", "bytes=0-9"), ("range", "bytes=20-29")];
        assert!(matches!(run(Method::GET, &two), Answer::Full));
    }

    #[test]
    fn a_range_past_the_end_is_unsatisfiable() {
        assert!(matches!(
            run(Method::GET, &[("range", "bytes=1000-")]),
            Answer::Unsatisfiable
        ));
    }

    #[test]
    fn a_matching_if_none_match_is_not_modified() {
        assert!(matches!(
            run(Method::GET, &[("if-none-match", "\"tag\"")]),
            Answer::NotModified
        ));
    }

    #[test]
    fn failed_preconditions_are_412_and_if_range_mismatch_sends_the_whole() {
        assert!(matches!(
            run(Method::GET, &[("if-match", "\"other\"")]),
            Answer::PreconditionFailed
        ));
        let other = [("range", "bytes=0-9"), ("if-range", "\"other\"")];
        assert!(matches!(run(Method::GET, &other), Answer::Full));
        let same = [("range", "bytes=0-9"), ("if-range", "\"tag\"")];
        assert!(matches!(run(Method::GET, &same), Answer::Single(ref r) if *r == (0..10)));
    }
}
