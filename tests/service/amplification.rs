//! Range requests that try to make the server work or send more than the file: refused or bounded
//! (RFC 9110 §14.2 lets a server ignore Range; the crate's rule is never more than the file plus framing).

use http::StatusCode;
use mmap_serve::{DEFAULT_MAX_RANGES, DirResolver, MmapServe};

use crate::common::{Fixture, get, send, text, verify_multipart, verify_single, verify_whole};

const LEN: u64 = 10_000;
const OCTET_STREAM: &str = "application/octet-stream";

/// A fixture with `f.bin` of [`LEN`] bytes.
fn fixture() -> Fixture {
    let fx = Fixture::new();
    fx.file("f.bin", LEN);
    fx
}

/// `bytes=` followed by `count` disjoint ranges of `width` bytes, `stride` apart.
fn spread(count: u64, width: u64, stride: u64) -> String {
    let specs: Vec<String> = (0..count)
        .map(|i| format!("{}-{}", i * stride, i * stride + width - 1))
        .collect();
    format!("bytes={}", specs.join(","))
}

#[tokio::test]
async fn a_multipart_answer_larger_than_the_file_is_refused_with_200() {
    let fx = Fixture::new();
    fx.file("small.bin", 1000);
    // Eleven one-byte parts cost more framing than the 1000-byte file.
    let many = "bytes=0-0,2-2,4-4,6-6,8-8,10-10,12-12,14-14,16-16,18-18,20-20";
    let (status, headers, body) = send(fx.serve(), get("/small.bin", &[("range", many)])).await;
    verify_whole(status, &headers, &body, 1000, many);
    // Two parts of the same file still fit.
    let (status, headers, body) =
        send(fx.serve(), get("/small.bin", &[("range", "bytes=0-0,2-2")])).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    verify_multipart(&headers, &body, 1000, OCTET_STREAM);
    assert!(body.len() <= 1000);
}

#[tokio::test]
async fn more_ranges_than_the_default_limit_get_200() {
    assert_eq!(DEFAULT_MAX_RANGES, 1024);
    let fx = Fixture::new();
    let len = 2_000_000;
    fx.file("big.bin", len);
    let at_limit = spread(1024, 10, 1000);
    let (status, headers, body) = send(fx.serve(), get("/big.bin", &[("range", &at_limit)])).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        verify_multipart(&headers, &body, len, OCTET_STREAM).len(),
        1024
    );

    let over = spread(1025, 10, 1000);
    let (status, headers, body) = send(fx.serve(), get("/big.bin", &[("range", &over)])).await;
    verify_whole(status, &headers, &body, len, "1025 ranges");
}

#[tokio::test]
async fn the_max_ranges_setter_is_respected() {
    let fx = fixture();
    for (max, range, partial) in [
        (2, "bytes=0-9,100-109", true),
        (2, "bytes=0-9,100-109,200-209", false),
        (1, "bytes=0-9", true),
        (1, "bytes=0-9,100-109", false),
        // The limit counts range-specs as sent, before overlapping ones are merged.
        (1, "bytes=0-9,0-9", false),
        (0, "bytes=0-9", false),
    ] {
        let serve = fx.serve().max_ranges(max);
        let (status, headers, body) = send(serve, get("/f.bin", &[("range", range)])).await;
        let why = format!("max_ranges({max}), {range}");
        if partial {
            assert_eq!(status, StatusCode::PARTIAL_CONTENT, "{why}");
        } else {
            verify_whole(status, &headers, &body, LEN, &why);
        }
    }
}

#[tokio::test]
async fn ten_thousand_members_over_the_limit_are_answered_200() {
    // How long it takes is a figure, not a rule: `cargo bench --bench amplification`.
    let fx = fixture();
    let header = spread(10_000, 1, 1);
    let (status, headers, body) = send(fx.serve(), get("/f.bin", &[("range", &header)])).await;
    verify_whole(status, &headers, &body, LEN, "10,000 members");
}

#[tokio::test]
async fn ten_thousand_members_within_a_raised_limit_are_served_exactly() {
    let fx = Fixture::new();
    let len = 10_000_000;
    fx.file("big.bin", len);
    let serve = MmapServe::new(DirResolver::new(fx.root())).max_ranges(10_000);

    let disjoint = spread(10_000, 200, 1000);
    let (status, headers, body) =
        send(serve.clone(), get("/big.bin", &[("range", &disjoint)])).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    let parts = verify_multipart(&headers, &body, len, OCTET_STREAM);
    assert_eq!(parts.len(), 10_000);
    assert!(
        parts
            .iter()
            .enumerate()
            .all(|(i, p)| p.start == i as u64 * 1000 && p.end == p.start + 200)
    );

    // The same member 10,000 times is one range.
    let same = format!("bytes={}", vec!["5-104"; 10_000].join(","));
    let (status, headers, body) = send(serve, get("/big.bin", &[("range", &same)])).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(verify_single(&headers, &body, len), 5..105);
}

#[tokio::test]
async fn huge_numbers_are_bounded_and_correct() {
    let fx = fixture();
    let nines = "9".repeat(30);
    let max = u64::MAX.to_string();
    let above_max = "18446744073709551616";
    let cases: Vec<(String, Option<std::ops::Range<u64>>, StatusCode)> = vec![
        (
            format!("bytes=0-{max}"),
            Some(0..LEN),
            StatusCode::PARTIAL_CONTENT,
        ),
        (
            format!("bytes=10-{above_max}"),
            Some(10..LEN),
            StatusCode::PARTIAL_CONTENT,
        ),
        (
            format!("bytes=-{max}"),
            Some(0..LEN),
            StatusCode::PARTIAL_CONTENT,
        ),
        (
            format!("bytes={max}-"),
            None,
            StatusCode::RANGE_NOT_SATISFIABLE,
        ),
        (
            format!("bytes={max}-{max}"),
            None,
            StatusCode::RANGE_NOT_SATISFIABLE,
        ),
        (
            format!("bytes={above_max}-"),
            None,
            StatusCode::RANGE_NOT_SATISFIABLE,
        ),
        (
            format!("bytes=0-{nines}"),
            Some(0..LEN),
            StatusCode::PARTIAL_CONTENT,
        ),
        (
            format!("bytes=-{nines}"),
            Some(0..LEN),
            StatusCode::PARTIAL_CONTENT,
        ),
        (
            format!("bytes={nines}-"),
            None,
            StatusCode::RANGE_NOT_SATISFIABLE,
        ),
        (
            format!("bytes={nines}-{nines}"),
            None,
            StatusCode::RANGE_NOT_SATISFIABLE,
        ),
        // Leading zeros do not make a number large.
        (
            format!("bytes={}10-{}19", "0".repeat(28), "0".repeat(28)),
            Some(10..20),
            StatusCode::PARTIAL_CONTENT,
        ),
        // Oversized numbers still order correctly: first > last is an invalid range-spec (ignored)…
        (format!("bytes={nines}-1"), None, StatusCode::OK),
        (format!("bytes=1{nines}-{nines}"), None, StatusCode::OK),
        (format!("bytes={above_max}-{max}"), None, StatusCode::OK),
        // …while first <= last is valid and merely unsatisfiable.
        (
            format!("bytes={nines}-1{nines}"),
            None,
            StatusCode::RANGE_NOT_SATISFIABLE,
        ),
    ];
    for (range, expected, status_expected) in cases {
        let (status, headers, body) = send(fx.serve(), get("/f.bin", &[("range", &range)])).await;
        assert_eq!(status, status_expected, "{range}");
        match status {
            StatusCode::PARTIAL_CONTENT => {
                assert_eq!(
                    Some(verify_single(&headers, &body, LEN)),
                    expected,
                    "{range}"
                )
            }
            StatusCode::OK => verify_whole(status, &headers, &body, LEN, &range),
            _ => assert_eq!(text(&headers, "content-range"), "bytes */10000", "{range}"),
        }
    }
}
