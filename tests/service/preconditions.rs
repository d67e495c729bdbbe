//! Conditional requests, in the order of RFC 9110 §13.2.2, and If-Range (§13.1.5).

use http::{HeaderValue, Method, StatusCode};
use mmap_serve::{DirResolver, MmapServe, Resolution, ResolvedFile};

use crate::common::{Fixture, MTIME_HTTP, get, pattern, request, send, text, verify_single};

const LEN: u64 = 1000;

/// A one-second step either side of the fixture's Last-Modified.
const BEFORE: &str = "Tue, 14 Nov 2023 22:13:19 GMT";
const AFTER: &str = "Tue, 14 Nov 2023 22:13:21 GMT";

/// A fixture with `f.bin`, and the strong ETag the service sends for it.
async fn fixture() -> (Fixture, String) {
    let fx = Fixture::new();
    fx.file("f.bin", LEN);
    let (status, headers, _) = send(fx.serve(), get("/f.bin", &[])).await;
    assert_eq!(status, StatusCode::OK);
    let etag = text(&headers, "etag").to_owned();
    assert!(!etag.starts_with("W/"), "the file's own ETag is strong");
    (fx, etag)
}

/// The status of a GET of `/f.bin` with `headers`, after checking the body fits the status.
async fn status_of(fx: &Fixture, headers: &[(&str, &str)]) -> StatusCode {
    let (status, response_headers, body) = send(fx.serve(), get("/f.bin", headers)).await;
    match status {
        StatusCode::OK => assert!(body == pattern(0..LEN), "a 200 sends the whole file"),
        StatusCode::PARTIAL_CONTENT => {
            verify_single(&response_headers, &body, LEN);
        }
        StatusCode::NOT_MODIFIED | StatusCode::PRECONDITION_FAILED => {
            assert!(body.is_empty(), "{status} has no content")
        }
        other => panic!("unexpected {other}"),
    }
    status
}

/// `W/` + our opaque-tag: the same tag, weak.
fn weak(etag: &str) -> String {
    format!("W/{etag}")
}

#[tokio::test]
async fn if_match_with_the_current_strong_etag_proceeds() {
    let (fx, etag) = fixture().await;
    assert_eq!(status_of(&fx, &[("if-match", &etag)]).await, StatusCode::OK);
}

#[tokio::test]
async fn if_match_with_another_etag_is_412() {
    let (fx, _) = fixture().await;
    for other in ["\"other\"", "\"\"", "\"1-0000000000000000\""] {
        let status = status_of(&fx, &[("if-match", other)]).await;
        assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{other}");
    }
}

#[tokio::test]
async fn if_match_star_proceeds() {
    let (fx, _) = fixture().await;
    assert_eq!(status_of(&fx, &[("if-match", "*")]).await, StatusCode::OK);
}

#[tokio::test]
async fn if_match_holds_when_any_list_member_matches() {
    let (fx, etag) = fixture().await;
    let list = format!("\"a\", {etag} ,\"b\"");
    assert_eq!(status_of(&fx, &[("if-match", &list)]).await, StatusCode::OK);
    // The members may also come as separate field lines.
    let lines = [("if-match", "\"a\""), ("if-match", etag.as_str())];
    assert_eq!(status_of(&fx, &lines).await, StatusCode::OK);
    let without = "\"a\", \"b\"";
    assert_eq!(
        status_of(&fx, &[("if-match", without)]).await,
        StatusCode::PRECONDITION_FAILED
    );
}

#[tokio::test]
async fn if_match_uses_strong_comparison_so_a_weak_tag_is_412() {
    let (fx, etag) = fixture().await;
    let status = status_of(&fx, &[("if-match", &weak(&etag))]).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
}

#[tokio::test]
async fn if_unmodified_since_before_last_modified_is_412() {
    let (fx, _) = fixture().await;
    let status = status_of(&fx, &[("if-unmodified-since", BEFORE)]).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
}

#[tokio::test]
async fn if_unmodified_since_at_or_after_last_modified_proceeds() {
    let (fx, _) = fixture().await;
    for date in [MTIME_HTTP, AFTER] {
        let status = status_of(&fx, &[("if-unmodified-since", date)]).await;
        assert_eq!(status, StatusCode::OK, "{date}");
    }
}

#[tokio::test]
async fn if_unmodified_since_is_ignored_when_if_match_is_present() {
    let (fx, etag) = fixture().await;
    let headers = [("if-match", etag.as_str()), ("if-unmodified-since", BEFORE)];
    assert_eq!(status_of(&fx, &headers).await, StatusCode::OK);
}

#[tokio::test]
async fn if_none_match_with_the_etag_is_304_for_get_and_head() {
    let (fx, etag) = fixture().await;
    assert_eq!(
        status_of(&fx, &[("if-none-match", &etag)]).await,
        StatusCode::NOT_MODIFIED
    );
    let head = request(Method::HEAD, "/f.bin", &[("if-none-match", &etag)]);
    let (status, _, body) = send(fx.serve(), head).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
}

#[tokio::test]
async fn if_none_match_uses_weak_comparison() {
    let (fx, etag) = fixture().await;
    let status = status_of(&fx, &[("if-none-match", &weak(&etag))]).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn if_none_match_list_is_304_only_when_a_member_matches() {
    let (fx, etag) = fixture().await;
    let with = format!("\"a\",{etag}, W/\"b\"");
    assert_eq!(
        status_of(&fx, &[("if-none-match", &with)]).await,
        StatusCode::NOT_MODIFIED
    );
    let lines = [("if-none-match", "\"a\""), ("if-none-match", etag.as_str())];
    assert_eq!(status_of(&fx, &lines).await, StatusCode::NOT_MODIFIED);
    let without = "\"a\", W/\"b\"";
    assert_eq!(
        status_of(&fx, &[("if-none-match", without)]).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn if_none_match_star_is_304() {
    let (fx, _) = fixture().await;
    assert_eq!(
        status_of(&fx, &[("if-none-match", "*")]).await,
        StatusCode::NOT_MODIFIED
    );
}

#[tokio::test]
async fn if_modified_since_at_or_after_last_modified_is_304() {
    let (fx, _) = fixture().await;
    for date in [MTIME_HTTP, AFTER] {
        let status = status_of(&fx, &[("if-modified-since", date)]).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED, "{date}");
    }
}

#[tokio::test]
async fn if_modified_since_before_last_modified_is_200() {
    let (fx, _) = fixture().await;
    let status = status_of(&fx, &[("if-modified-since", BEFORE)]).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn if_modified_since_accepts_the_obsolete_date_formats() {
    let (fx, _) = fixture().await;
    // RFC 9110 §5.6.7: recipients accept rfc850-date and asctime-date too.
    for date in [
        "Tuesday, 14-Nov-23 22:13:20 GMT",
        "Tue Nov 14 22:13:20 2023",
    ] {
        let status = status_of(&fx, &[("if-modified-since", date)]).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED, "{date}");
    }
}

#[tokio::test]
async fn if_none_match_wins_over_if_modified_since() {
    let (fx, etag) = fixture().await;
    // A non-matching If-None-Match means "changed", whatever If-Modified-Since says.
    let changed = [("if-none-match", "\"old\""), ("if-modified-since", AFTER)];
    assert_eq!(status_of(&fx, &changed).await, StatusCode::OK);
    // And a matching one means "not modified" even with a date that says otherwise.
    let same = [
        ("if-none-match", etag.as_str()),
        ("if-modified-since", BEFORE),
    ];
    assert_eq!(status_of(&fx, &same).await, StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn if_match_is_evaluated_before_if_none_match() {
    let (fx, etag) = fixture().await;
    let headers = [("if-match", "\"other\""), ("if-none-match", etag.as_str())];
    assert_eq!(
        status_of(&fx, &headers).await,
        StatusCode::PRECONDITION_FAILED
    );
}

#[tokio::test]
async fn if_unmodified_since_is_evaluated_before_if_none_match() {
    let (fx, etag) = fixture().await;
    let headers = [
        ("if-unmodified-since", BEFORE),
        ("if-none-match", etag.as_str()),
    ];
    assert_eq!(
        status_of(&fx, &headers).await,
        StatusCode::PRECONDITION_FAILED
    );
}

#[tokio::test]
async fn malformed_dates_are_ignored() {
    let (fx, _) = fixture().await;
    // Each If-Modified-Since would give 304 if it were read as the date it resembles (after Last-Modified)…
    let modified_since = [
        "Tue, 14 Nov 2023 22:13:21 GMT, Tue, 14 Nov 2023 22:13:21 GMT",
        "Tue, 14 Nov 2023 22:13:21",
        "Tue, 14 Nov 2023 22:13:21 GMT garbage",
        "Tue, 14 Nov 2023 25:13:21 GMT",
        "1700000001",
        "tomorrow",
        "",
    ];
    for date in modified_since {
        let status = status_of(&fx, &[("if-modified-since", date)]).await;
        assert_eq!(status, StatusCode::OK, "If-Modified-Since {date:?}");
    }
    // …and each If-Unmodified-Since would give 412 (before Last-Modified).
    let unmodified_since = [
        "Tue, 14 Nov 2023 22:13:19 GMT, Tue, 14 Nov 2023 22:13:19 GMT",
        "Tue, 14 Nov 2023 22:13:19",
        "Tue, 14 Nov 2023 22:13:19 GMT garbage",
        "Tue, 32 Nov 2023 22:13:19 GMT",
        "1699999999",
        "yesterday",
        "",
    ];
    for date in unmodified_since {
        let status = status_of(&fx, &[("if-unmodified-since", date)]).await;
        assert_eq!(status, StatusCode::OK, "If-Unmodified-Since {date:?}");
    }
    // Two field lines are two members, not one date (§13.1.3, §13.1.4).
    let twice = [("if-modified-since", AFTER), ("if-modified-since", AFTER)];
    assert_eq!(status_of(&fx, &twice).await, StatusCode::OK);
    let twice = [
        ("if-unmodified-since", BEFORE),
        ("if-unmodified-since", BEFORE),
    ];
    assert_eq!(status_of(&fx, &twice).await, StatusCode::OK);
}

#[tokio::test]
async fn not_modified_carries_etag_and_cache_control_and_no_body() {
    let fx = Fixture::new();
    fx.file("f.bin", LEN);
    let serve = MmapServe::new(
        DirResolver::new(fx.root()).cache_control(HeaderValue::from_static("public, max-age=60")),
    );
    let (_, full, _) = send(serve.clone(), get("/f.bin", &[])).await;
    let etag = text(&full, "etag");
    let (status, headers, body) = send(serve, get("/f.bin", &[("if-none-match", etag)])).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    assert_eq!(text(&headers, "etag"), etag);
    assert_eq!(text(&headers, "cache-control"), "public, max-age=60");
    // §15.4.5: no representation metadata beyond what guides caches; Last-Modified only helps without an ETag.
    for field in ["last-modified", "content-type", "accept-ranges"] {
        assert!(headers.get(field).is_none(), "{field} on a 304");
    }
    // RFC 9110 §8.6: a Content-Length on a 304 may only repeat the 200's.
    if let Some(length) = headers.get("content-length") {
        assert_eq!(
            length,
            full.get("content-length").expect("200 has a length")
        );
    }
    assert!(headers.get("content-range").is_none());
}

#[tokio::test]
async fn preconditions_are_decided_before_range() {
    let (fx, etag) = fixture().await;
    let not_modified = [("if-none-match", etag.as_str()), ("range", "bytes=0-9")];
    assert_eq!(
        status_of(&fx, &not_modified).await,
        StatusCode::NOT_MODIFIED
    );
    let failed = [("if-match", "\"other\""), ("range", "bytes=0-9")];
    assert_eq!(
        status_of(&fx, &failed).await,
        StatusCode::PRECONDITION_FAILED
    );
    let holds = [("if-match", etag.as_str()), ("range", "bytes=0-9")];
    assert_eq!(status_of(&fx, &holds).await, StatusCode::PARTIAL_CONTENT);
    // §14.2: Range is only evaluated when the answer would otherwise be 200, so 304 and 412 beat 416.
    let unsatisfiable = [("if-none-match", etag.as_str()), ("range", "bytes=5000-")];
    assert_eq!(
        status_of(&fx, &unsatisfiable).await,
        StatusCode::NOT_MODIFIED
    );
    let unsatisfiable = [("if-match", "\"other\""), ("range", "bytes=5000-")];
    assert_eq!(
        status_of(&fx, &unsatisfiable).await,
        StatusCode::PRECONDITION_FAILED
    );
}

#[tokio::test]
async fn if_range_with_the_current_strong_etag_applies_the_range() {
    let (fx, etag) = fixture().await;
    let headers = [("range", "bytes=10-19"), ("if-range", etag.as_str())];
    let (status, response, body) = send(fx.serve(), get("/f.bin", &headers)).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(verify_single(&response, &body, LEN), 10..20);
}

#[tokio::test]
async fn if_range_with_another_etag_sends_the_whole_file() {
    let (fx, _) = fixture().await;
    let headers = [("range", "bytes=10-19"), ("if-range", "\"other\"")];
    assert_eq!(status_of(&fx, &headers).await, StatusCode::OK);
}

#[tokio::test]
async fn if_range_with_a_weak_etag_sends_the_whole_file() {
    let (fx, etag) = fixture().await;
    // §13.1.5: a weak entity-tag never matches, even when its opaque-tag is ours.
    let weak = weak(&etag);
    let headers = [("range", "bytes=10-19"), ("if-range", weak.as_str())];
    assert_eq!(status_of(&fx, &headers).await, StatusCode::OK);
}

#[tokio::test]
async fn if_range_with_the_exact_last_modified_applies_the_range() {
    let (fx, _) = fixture().await;
    let headers = [("range", "bytes=10-19"), ("if-range", MTIME_HTTP)];
    assert_eq!(status_of(&fx, &headers).await, StatusCode::PARTIAL_CONTENT);
}

#[tokio::test]
async fn if_range_with_another_date_sends_the_whole_file() {
    let (fx, _) = fixture().await;
    for date in [BEFORE, AFTER, "not a date"] {
        let headers = [("range", "bytes=10-19"), ("if-range", date)];
        assert_eq!(status_of(&fx, &headers).await, StatusCode::OK, "{date}");
    }
}

#[tokio::test]
async fn a_weak_etag_from_the_resolver_matches_weakly_only() {
    let fx = Fixture::new();
    let path = fx.file("f.bin", LEN);
    let serve = MmapServe::new(move |_: &http::request::Parts| {
        let file = ResolvedFile::new(path.clone()).etag(HeaderValue::from_static("W/\"v1\""));
        std::future::ready(Resolution::file(file))
    });
    let cases: [(&[(&str, &str)], StatusCode); 6] = [
        (&[], StatusCode::OK),
        (&[("if-none-match", "\"v1\"")], StatusCode::NOT_MODIFIED),
        (&[("if-none-match", "W/\"v1\"")], StatusCode::NOT_MODIFIED),
        (&[("if-match", "W/\"v1\"")], StatusCode::PRECONDITION_FAILED),
        (&[("if-match", "\"v1\"")], StatusCode::PRECONDITION_FAILED),
        (
            &[("range", "bytes=0-9"), ("if-range", "W/\"v1\"")],
            StatusCode::OK,
        ),
    ];
    for (headers, expected) in cases {
        let (status, response, _) = send(serve.clone(), get("/f", headers)).await;
        assert_eq!(status, expected, "{headers:?}");
        if status != StatusCode::PRECONDITION_FAILED {
            assert_eq!(text(&response, "etag"), "W/\"v1\"");
        }
    }
}

#[tokio::test]
async fn if_range_with_a_date_whose_second_is_not_over_sends_the_whole_file() {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};
    let second = |t: SystemTime| t.duration_since(UNIX_EPOCH).expect("after 1970").as_secs();
    let fx = Fixture::new();
    // §8.8.2.2: until the second a date names is over, another version may still get that date, so the
    // date is weak and If-Range with it is false. Tried until one attempt ends within the file's second (with
    // a tenth of a second to spare: file times lag the time of day by a clock tick).
    for attempt in 0..20 {
        let name = format!("fresh{attempt}.bin");
        let path = fx.root().join(&name);
        std::fs::write(&path, pattern(0..LEN)).expect("write");
        let modified = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .expect("mtime");
        let uri = format!("/{name}");
        let (_, full, _) = send(fx.serve(), get(&uri, &[])).await;
        let date = text(&full, "last-modified").to_owned();
        let headers = [("range", "bytes=10-19"), ("if-range", date.as_str())];
        let (status, _, body) = send(fx.serve(), get(&uri, &headers)).await;
        let settled =
            UNIX_EPOCH + Duration::from_secs(second(modified)) + Duration::from_millis(1_100);
        if SystemTime::now() >= settled {
            continue;
        }
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, pattern(0..LEN));
        // Once that second (and the tick) is over the date is strong, and the range applies.
        let wait = settled
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        tokio::time::sleep(wait + Duration::from_millis(20)).await;
        let (status, response, body) = send(fx.serve(), get(&uri, &headers)).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(verify_single(&response, &body, LEN), 10..20);
        return;
    }
    panic!("no attempt stayed within one second");
}

#[tokio::test]
async fn if_range_with_a_date_two_versions_share_sends_the_whole_file() {
    use mmap_serve::{MmapCache, Revalidate};
    use std::sync::Arc;
    let fx = Fixture::new();
    let path = fx.file("f.bin", LEN);
    let cache = MmapCache::builder()
        .revalidation(Revalidate::Always)
        .build();
    let serve = MmapServe::with_cache(DirResolver::new(fx.root()), Arc::new(cache));
    let (_, old, _) = send(serve.clone(), get("/f.bin", &[])).await;
    assert_eq!(text(&old, "last-modified"), MTIME_HTTP);
    // A new version renamed into place with the same modification second (as `cp -p` or rsync can leave it):
    // the old version's date now names both, so it is weak and a range "if unchanged since" it would splice
    // the old bytes with the new. The whole new file goes instead; the new ETag still applies a range.
    let replacement = fx.root().join("f.bin.new");
    let new_bytes: Vec<u8> = pattern(0..LEN).iter().map(|b| b ^ 0xff).collect();
    crate::common::write_with_mtime(&replacement, &new_bytes);
    std::fs::rename(&replacement, &path).expect("rename over");
    let headers = [("range", "bytes=10-19"), ("if-range", MTIME_HTTP)];
    let (status, new, body) = send(serve.clone(), get("/f.bin", &headers)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, new_bytes);
    assert_eq!(text(&new, "last-modified"), MTIME_HTTP);
    let etag = text(&new, "etag").to_owned();
    assert_ne!(etag, text(&old, "etag"));
    let headers = [("range", "bytes=10-19"), ("if-range", etag.as_str())];
    let (status, _, body) = send(serve, get("/f.bin", &headers)).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, new_bytes[10..20]);
}
