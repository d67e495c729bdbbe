//! The body: zero-copy frames of at most the chunk size, cut from the mapping, with an exact size hint.

use std::ops::Range;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;
use mmap_serve::{DEFAULT_CHUNK_SIZE, MmapServe, Revalidate};
use tower::ServiceExt;

use crate::common::{
    Fixture, content_length, get, pattern, request, send_frames, text, verify_multipart,
};

/// Above the small-file threshold (64 KiB), so the file is memory-mapped rather than read.
const LEN: u64 = 300_000;

/// The whole file as the service's cache holds it: every frame of a response should point into this.
fn mapping(serve: &MmapServe<mmap_serve::DirResolver>, fx: &Fixture, name: &str) -> Bytes {
    let file = serve
        .cache()
        .get_if_fresh(fx.root().join(name), Revalidate::Never)
        .expect("the service cached the file");
    assert!(file.is_mapped(), "{name} is large enough to be mapped");
    file.bytes()
}

/// Where `frame` starts inside `base`, if it is a slice of it.
fn offset_in(base: &Bytes, frame: &Bytes) -> Option<Range<u64>> {
    let start = (frame.as_ptr() as usize).checked_sub(base.as_ptr() as usize)?;
    (start + frame.len() <= base.len()).then(|| start as u64..(start + frame.len()) as u64)
}

#[tokio::test]
async fn frames_of_a_200_are_chunk_sized_slices_of_the_mapping() {
    let fx = Fixture::new();
    fx.file("big.bin", LEN);
    let serve = fx.serve().chunk_size(4096);
    let (head, hint, frames) = send_frames(serve.clone(), get("/big.bin", &[])).await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(hint, Some(LEN));
    let base = mapping(&serve, &fx, "big.bin");
    assert_eq!(frames.len(), LEN.div_ceil(4096) as usize);
    let mut at = 0;
    for frame in &frames {
        assert!(!frame.is_empty() && frame.len() <= 4096);
        assert_eq!(
            offset_in(&base, frame),
            Some(at..at + frame.len() as u64),
            "frame is the mapping's bytes at {at}, not a copy"
        );
        at += frame.len() as u64;
    }
    assert!(frames.concat() == pattern(0..LEN));
}

#[tokio::test]
async fn frames_of_a_206_are_slices_of_the_mapping_at_the_range() {
    let fx = Fixture::new();
    fx.file("big.bin", LEN);
    let serve = fx.serve().chunk_size(1000);
    let (head, hint, frames) = send_frames(
        serve.clone(),
        get("/big.bin", &[("range", "bytes=5000-104999")]),
    )
    .await;
    assert_eq!(head.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(hint, Some(100_000));
    let base = mapping(&serve, &fx, "big.bin");
    // Contiguous slices of the mapping, at most 1000 bytes each, the last 4 KiB of the body in frames of
    // their own (held back for the final checks).
    let mut next = 5000;
    for frame in &frames {
        let at = offset_in(&base, frame).expect("a slice of the mapping");
        assert_eq!(at.start, next);
        assert!(frame.len() <= 1000);
        next = at.end;
    }
    assert_eq!(next, 105_000);
}

#[tokio::test]
async fn multipart_frames_are_chunk_sized_and_every_data_byte_comes_from_the_mapping() {
    let fx = Fixture::new();
    fx.file("big.bin", LEN);
    let serve = fx.serve().chunk_size(512);
    let range = "bytes=0-9999,100000-100099,200000-";
    let (head, hint, frames) =
        send_frames(serve.clone(), get("/big.bin", &[("range", range)])).await;
    assert_eq!(head.status, StatusCode::PARTIAL_CONTENT);
    let body = frames.concat();
    assert_eq!(hint, Some(body.len() as u64));
    let parts = verify_multipart(&head.headers, &body, LEN, "application/octet-stream");
    let data_len: u64 = parts.iter().map(|p| p.end - p.start).sum();

    let base = mapping(&serve, &fx, "big.bin");
    let mut from_mapping = 0;
    for frame in &frames {
        assert!(!frame.is_empty() && frame.len() <= 512);
        if let Some(at) = offset_in(&base, frame) {
            assert!(
                parts.iter().any(|p| p.start <= at.start && at.end <= p.end),
                "mapped frame {at:?} lies inside a requested part"
            );
            from_mapping += frame.len() as u64;
        }
    }
    assert_eq!(
        from_mapping, data_len,
        "all part data is sent from the mapping"
    );
}

#[tokio::test]
async fn chunk_size_zero_sends_one_frame() {
    let fx = Fixture::new();
    fx.file("big.bin", LEN);
    let serve = fx.serve().chunk_size(0);
    let (_, _, frames) = send_frames(serve.clone(), get("/big.bin", &[])).await;
    assert_eq!(frames.len(), 1);
    assert_eq!(
        offset_in(&mapping(&serve, &fx, "big.bin"), &frames[0]),
        Some(0..LEN)
    );
}

#[tokio::test]
async fn the_default_chunk_size_is_one_mebibyte() {
    assert_eq!(DEFAULT_CHUNK_SIZE, 1 << 20);
    let fx = Fixture::new();
    let len = 3 * (1 << 20) + 5;
    fx.file("huge.bin", len);
    let (_, _, frames) = send_frames(fx.serve(), get("/huge.bin", &[])).await;
    let sizes: Vec<usize> = frames.iter().map(Bytes::len).collect();
    // The last 4 KiB are held back in a frame of their own, sent once the file has been re-checked.
    assert_eq!(sizes, [1 << 20, 1 << 20, (1 << 20) + 5 - 4096, 4096]);
}

#[tokio::test]
async fn the_size_hint_is_exact_before_and_during_streaming() {
    let fx = Fixture::new();
    fx.file("big.bin", LEN);
    let serve = fx.serve().chunk_size(10_000);
    let requests = [
        (get("/big.bin", &[]), StatusCode::OK),
        (
            get("/big.bin", &[("range", "bytes=100-50099")]),
            StatusCode::PARTIAL_CONTENT,
        ),
        (
            get("/big.bin", &[("range", "bytes=0-20000,100000-150000")]),
            StatusCode::PARTIAL_CONTENT,
        ),
        (
            get("/big.bin", &[("range", "bytes=999999-")]),
            StatusCode::RANGE_NOT_SATISFIABLE,
        ),
        (
            get("/big.bin", &[("if-match", "\"nope\"")]),
            StatusCode::PRECONDITION_FAILED,
        ),
        (get("/missing.bin", &[]), StatusCode::NOT_FOUND),
        (
            request(Method::POST, "/big.bin", &[]),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
    ];
    for (req, expected) in requests {
        let why = format!("{} {}", req.method(), req.uri());
        let response = serve.clone().oneshot(req).await.expect("infallible");
        assert_eq!(response.status(), expected, "{why}");
        let length = content_length(response.headers());
        let mut body = response.into_body();
        assert_eq!(body.size_hint().exact(), Some(length), "{why}");
        let mut remaining = length;
        while let Some(frame) = body.frame().await {
            let data = frame.expect("infallible").into_data().expect("data");
            remaining -= data.len() as u64;
            assert_eq!(body.size_hint().exact(), Some(remaining), "{why}");
        }
        assert_eq!(remaining, 0, "{why}");
        assert!(body.is_end_stream(), "{why}");
    }
}

#[tokio::test]
async fn head_and_304_bodies_are_empty_at_once() {
    let fx = Fixture::new();
    fx.file("big.bin", LEN);
    let serve = fx.serve();
    let head = serve
        .clone()
        .oneshot(request(Method::HEAD, "/big.bin", &[]))
        .await
        .expect("infallible");
    assert_eq!(content_length(head.headers()), LEN);
    assert!(head.body().is_end_stream());
    assert_eq!(head.body().size_hint().exact(), Some(0));

    let etag = text(head.headers(), "etag").to_owned();
    let not_modified = serve
        .oneshot(get("/big.bin", &[("if-none-match", &etag)]))
        .await
        .expect("infallible");
    assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED);
    assert!(not_modified.body().is_end_stream());
    assert_eq!(not_modified.body().size_hint().exact(), Some(0));
}

/// Takes the first frame of a `GET /big.bin` with `range`, truncates the file, then drains the rest:
/// returns whether the body ended with an error (it must), and the bytes received after the first frame.
#[cfg(target_os = "linux")]
async fn truncate_after_first_frame(
    serve: MmapServe<mmap_serve::DirResolver>,
    path: &std::path::Path,
    range: &str,
) -> bool {
    let mut request = get("/big.bin", &[]);
    if !range.is_empty() {
        request
            .headers_mut()
            .insert("range", range.parse().expect("header"));
    }
    let response = serve.oneshot(request).await.expect("infallible");
    assert!(response.status().is_success());
    let mut body = response.into_body();
    let first = body
        .frame()
        .await
        .expect("a first frame")
        .expect("no error yet");
    let first = first.into_data().expect("data");
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open")
        .set_len(0)
        .expect("truncate");
    // Read the frame's bytes in user space, as a TLS layer would: past the new end that is a SIGBUS, which
    // the guard turns into zero pages and a poisoned mapping.
    std::hint::black_box(first.iter().map(|b| u64::from(*b)).sum::<u64>());
    loop {
        match body.frame().await {
            None => return false,
            Some(Err(_)) => return true,
            Some(Ok(_)) => {}
        }
    }
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_multipart_body_fails_when_the_file_is_truncated_under_it() {
    let fx = Fixture::new();
    let path = fx.file("big.bin", 4 << 20);
    let serve = fx.serve().chunk_size(4096);
    assert!(truncate_after_first_frame(serve, &path, "bytes=0-99,2000000-3999999").await);
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_body_that_fits_one_chunk_still_holds_its_end_back_and_fails_on_truncation() {
    let fx = Fixture::new();
    let path = fx.file("big.bin", 512 << 10);
    assert!(truncate_after_first_frame(fx.serve(), &path, "").await);
}
