//! Range requests (RFC 9110 §14): single, multipart, 416, coalescing, HEAD and empty files.

use http::{Method, StatusCode};

use crate::common::{
    Fixture, boundary_of, content_length, get, request, send, text, verify_multipart,
    verify_single, verify_whole,
};

const LEN: u64 = 10_000;
const OCTET_STREAM: &str = "application/octet-stream";

/// A fixture with `f.bin` of [`LEN`] bytes.
fn fixture() -> Fixture {
    let fx = Fixture::new();
    fx.file("f.bin", LEN);
    fx
}

#[tokio::test]
async fn a_single_range_is_206_with_content_range_and_exactly_its_bytes() {
    let fx = fixture();
    for (range, expected) in [
        ("bytes=10-19", 10..20),
        ("bytes=0-0", 0..1),
        ("bytes=9999-9999", 9999..10_000),
        ("bytes=0-9999", 0..10_000),
        ("Bytes=10-19", 10..20),
        ("bytes=007-0008", 7..9),
    ] {
        let (status, headers, body) = send(fx.serve(), get("/f.bin", &[("range", range)])).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(verify_single(&headers, &body, LEN), expected, "{range}");
        assert_eq!(text(&headers, "content-type"), OCTET_STREAM);
        assert_eq!(text(&headers, "accept-ranges"), "bytes");
        assert!(headers.get("etag").is_some() && headers.get("last-modified").is_some());
    }
}

#[tokio::test]
async fn an_open_ended_range_runs_to_the_end() {
    let fx = fixture();
    let (status, headers, body) =
        send(fx.serve(), get("/f.bin", &[("range", "bytes=9990-")])).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(text(&headers, "content-range"), "bytes 9990-9999/10000");
    assert_eq!(verify_single(&headers, &body, LEN), 9990..10_000);
}

#[tokio::test]
async fn a_suffix_range_selects_the_last_bytes() {
    let fx = fixture();
    for (range, expected) in [
        ("bytes=-10", 9990..10_000),
        ("bytes=-1", 9999..10_000),
        ("bytes=-10000", 0..10_000),
        ("bytes=-50000", 0..10_000),
    ] {
        let (status, headers, body) = send(fx.serve(), get("/f.bin", &[("range", range)])).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(verify_single(&headers, &body, LEN), expected, "{range}");
    }
}

#[tokio::test]
async fn a_range_past_the_end_is_clamped() {
    let fx = fixture();
    let (status, headers, body) =
        send(fx.serve(), get("/f.bin", &[("range", "bytes=9995-50000")])).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(text(&headers, "content-range"), "bytes 9995-9999/10000");
    assert_eq!(content_length(&headers), 5);
    assert_eq!(verify_single(&headers, &body, LEN), 9995..10_000);
}

#[tokio::test]
async fn an_invalid_range_header_is_ignored() {
    let fx = fixture();
    let invalid = [
        "bytes=abc",
        "bytes=5-2",
        "bytes=0-9,5-2",
        "bytes=0-9,x",
        "items=0-9",
        "bytes 0-9",
        "bytes=",
        "bytes=,",
        "bytes=--1",
        "bytes=1-2-3",
        "bytes=-",
        "bytes=+1-2",
        "bytes=0x10-0x20",
        "bytes=1 - 2",
        "=0-9",
    ];
    for range in invalid {
        let (status, headers, body) = send(fx.serve(), get("/f.bin", &[("range", range)])).await;
        verify_whole(status, &headers, &body, LEN, range);
    }
    // Field values need not be text: obs-text bytes are invalid here too.
    for raw in [&b"bytes=0-9\xff"[..], b"bytes=\xc3\xa9-9", b"\xffbytes=0-9"] {
        let request = http::Request::get("/f.bin")
            .header(
                "range",
                http::HeaderValue::from_bytes(raw).expect("obs-text is allowed"),
            )
            .body(())
            .expect("valid");
        let (status, headers, body) = send(fx.serve(), request).await;
        verify_whole(status, &headers, &body, LEN, &String::from_utf8_lossy(raw));
    }
}

#[tokio::test]
async fn no_satisfiable_range_is_416_with_the_current_length() {
    let fx = fixture();
    for range in [
        "bytes=10000-",
        "bytes=10000-10000",
        "bytes=50000-60000",
        "bytes=-0",
        "bytes=10000-,20000-30000,-0",
    ] {
        let (status, headers, body) = send(fx.serve(), get("/f.bin", &[("range", range)])).await;
        assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(text(&headers, "content-range"), "bytes */10000", "{range}");
        assert!(body.is_empty(), "{range}");
    }
}

#[tokio::test]
async fn several_ranges_are_a_verified_multipart_byteranges() {
    let fx = fixture();
    let (status, headers, body) = send(
        fx.serve(),
        get("/f.bin", &[("range", "bytes=0-99,200-299,9900-")]),
    )
    .await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    let parts = verify_multipart(&headers, &body, LEN, OCTET_STREAM);
    assert_eq!(parts, [0..100, 200..300, 9900..10_000]);
    assert!(headers.get("etag").is_some() && headers.get("last-modified").is_some());
}

/// RFC 9110 §14.1.1 puts no bound on a position's digits and §5.6.1.2 lets a list carry empty elements;
/// `http-range-header` 1.0 rejects more than 30 digits or 15 empty elements, and saturates both positions
/// of an int-range past `u64::MAX` before comparing them (see the module doc of `src/http/range.rs`).
#[tokio::test]
async fn long_positions_and_many_empty_list_elements_are_read_as_the_rfc_says() {
    let fx = fixture();
    let zeros = "0".repeat(40);
    let nines = "9".repeat(40);
    let empties = ",".repeat(20);
    let singles = [
        (format!("bytes=0-{zeros}9"), 0..10),
        (format!("bytes={zeros}10-{zeros}19"), 10..20),
        (format!("bytes=-{nines}"), 0..10_000),
        (format!("bytes=9990-{nines}"), 9990..10_000),
    ];
    for (range, expected) in singles {
        let (status, headers, body) = send(fx.serve(), get("/f.bin", &[("range", &range)])).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(verify_single(&headers, &body, LEN), expected, "{range}");
    }

    let range = format!("bytes=0-1{empties}100-199{empties}");
    let (status, headers, body) = send(fx.serve(), get("/f.bin", &[("range", &range)])).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT, "{range}");
    let parts = verify_multipart(&headers, &body, LEN, OCTET_STREAM);
    assert_eq!(parts, [0..2, 100..200]);

    // Reversed, though both positions are past u64::MAX: invalid, so the Range is ignored (§14.2).
    let reversed = "bytes=18446744073709551616-18446744073709551615";
    let (status, headers, body) = send(fx.serve(), get("/f.bin", &[("range", reversed)])).await;
    verify_whole(status, &headers, &body, LEN, reversed);
}

#[tokio::test]
async fn each_part_repeats_the_files_content_type() {
    let fx = Fixture::new();
    fx.file("doc.json", LEN);
    let (status, headers, body) = send(
        fx.serve(),
        get("/doc.json", &[("range", "bytes=0-9,100-109")]),
    )
    .await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    verify_multipart(&headers, &body, LEN, "application/json");
}

#[tokio::test]
async fn disjoint_ranges_keep_the_clients_order() {
    let fx = fixture();
    let (status, headers, body) = send(
        fx.serve(),
        get("/f.bin", &[("range", "bytes=5000-5099,0-9,-10")]),
    )
    .await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    let parts = verify_multipart(&headers, &body, LEN, OCTET_STREAM);
    assert_eq!(parts, [5000..5100, 0..10, 9990..10_000]);
}

#[tokio::test]
async fn unsatisfiable_members_are_dropped() {
    let fx = fixture();
    let (status, headers, body) =
        send(fx.serve(), get("/f.bin", &[("range", "bytes=0-9,20000-")])).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(verify_single(&headers, &body, LEN), 0..10);

    let (status, headers, body) = send(
        fx.serve(),
        get("/f.bin", &[("range", "bytes=0-9,20000-,-0,100-109")]),
    )
    .await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        verify_multipart(&headers, &body, LEN, OCTET_STREAM),
        [0..10, 100..110]
    );
}

#[tokio::test]
async fn multipart_boundaries_differ_between_responses() {
    let fx = fixture();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..20 {
        let (_, headers, body) =
            send(fx.serve(), get("/f.bin", &[("range", "bytes=0-9,100-109")])).await;
        verify_multipart(&headers, &body, LEN, OCTET_STREAM);
        let boundary = boundary_of(text(&headers, "content-type"));
        // Two part delimiters and the close delimiter, and nowhere else.
        let occurrences = body
            .windows(boundary.len())
            .filter(|w| *w == boundary.as_bytes())
            .count();
        assert_eq!(occurrences, 3);
        assert!(seen.insert(boundary), "a boundary was reused");
    }
}

#[tokio::test]
async fn overlapping_ranges_are_coalesced_into_one_part() {
    let fx = fixture();
    for (range, expected) in [
        ("bytes=0-99,50-149", 0..150),
        ("bytes=50-149,0-99", 0..150),
        ("bytes=0-0,0-0,0-0", 0..1),
        ("bytes=-100,9000-", 9000..10_000),
        ("bytes=0-9,10-19", 0..20),
        ("bytes=100-199,0-,5-6", 0..10_000),
    ] {
        let (status, headers, body) = send(fx.serve(), get("/f.bin", &[("range", range)])).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(verify_single(&headers, &body, LEN), expected, "{range}");
    }
    let (status, headers, body) = send(
        fx.serve(),
        get("/f.bin", &[("range", "bytes=0-9,5-14,100-109,105-199")]),
    )
    .await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        verify_multipart(&headers, &body, LEN, OCTET_STREAM),
        [0..15, 100..200]
    );
}

#[tokio::test]
async fn range_is_ignored_on_head() {
    let fx = fixture();
    for range in ["bytes=0-9", "bytes=0-9,100-109", "bytes=50000-"] {
        let head = request(Method::HEAD, "/f.bin", &[("range", range)]);
        let (status, headers, body) = send(fx.serve(), head).await;
        assert_eq!(status, StatusCode::OK, "{range}");
        assert_eq!(content_length(&headers), LEN, "{range}");
        assert!(headers.get("content-range").is_none(), "{range}");
        assert_eq!(text(&headers, "content-type"), OCTET_STREAM, "{range}");
        assert!(body.is_empty(), "{range}");
    }
}

#[tokio::test]
async fn an_empty_file_is_200_with_length_0_and_bytes_0_is_416() {
    let fx = Fixture::new();
    fx.file("empty.bin", 0);
    let (status, headers, body) = send(fx.serve(), get("/empty.bin", &[])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_length(&headers), 0);
    assert!(body.is_empty());
    assert!(headers.get("etag").is_some());

    for range in ["bytes=0-", "bytes=0-0", "bytes=-0"] {
        let (status, headers, body) =
            send(fx.serve(), get("/empty.bin", &[("range", range)])).await;
        assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(text(&headers, "content-range"), "bytes */0", "{range}");
        assert!(body.is_empty());
    }
    // A non-zero suffix is satisfiable on an empty representation (§14.1.1), but no 206 can describe zero
    // bytes: the empty 200.
    let (status, headers, body) =
        send(fx.serve(), get("/empty.bin", &[("range", "bytes=-5")])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_length(&headers), 0);
    assert!(body.is_empty());

    let (status, headers, body) = send(fx.serve(), request(Method::HEAD, "/empty.bin", &[])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_length(&headers), 0);
    assert!(body.is_empty());
}
