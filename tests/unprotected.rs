//! Without SIGBUS protection (another library replaced the crate's handler), files that may change are read
//! with `pread` instead of mapped: same answers, and a truncation or rewrite under a response ends it early
//! instead of killing the process or completing it with wrong bytes. Immutable files are still mapped.
//!
//! Runs in a child process, because it changes the process's SIGBUS action.
#![cfg(target_os = "linux")]

mod common;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use common::child;
use http::StatusCode;
use http_body::Body;
use http_body_util::BodyExt;
use mmap_serve::{DirResolver, MmapServe, Resolution, ResolvedFile};
use tower::ServiceExt;

const LEN: u64 = 8 << 20;

/// What another library does: installs its own SIGBUS action over the crate's (here the default one).
fn replace_the_sigbus_handler() {
    // SAFETY: SIG_DFL is a valid disposition for SIGBUS; no handler code is involved.
    #[allow(unsafe_code)]
    let previous = unsafe { libc::signal(libc::SIGBUS, libc::SIG_DFL) };
    assert_ne!(previous, libc::SIG_ERR, "signal");
}

/// GETs `uri`, runs `meddle` after the first frame, then drains: (Content-Length, bytes received, error).
async fn download_while(
    serve: &MmapServe<DirResolver>,
    uri: &str,
    meddle: impl FnOnce(),
) -> (u64, Vec<u8>, Option<std::io::Error>) {
    let response = serve
        .clone()
        .oneshot(common::get(uri, &[]))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    let length = common::content_length(response.headers());
    let mut body = response.into_body();
    assert_eq!(body.size_hint().exact(), Some(length));
    let mut received = Vec::new();
    let mut meddle = Some(meddle);
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => received.extend_from_slice(&frame.into_data().expect("data")),
            Err(e) => return (length, received, Some(e)),
        }
        if let Some(meddle) = meddle.take() {
            meddle();
        }
    }
    (length, received, None)
}

fn cached(serve: &MmapServe<DirResolver>, path: &Path) -> std::sync::Arc<mmap_serve::MmapFile> {
    serve
        .cache()
        .get_if_fresh(path, mmap_serve::Revalidate::Never)
        .expect("cached")
}

#[tokio::test(flavor = "current_thread")]
async fn without_sigbus_protection_changing_files_are_read_with_pread_and_never_lie() {
    if !child::in_child(
        "without_sigbus_protection_changing_files_are_read_with_pread_and_never_lie",
    ) {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    let big = common::net::pattern_file(root, "big.bin", LEN as usize);
    let serve = MmapServe::new(DirResolver::new(root));

    // Protected: mapped.
    let (status, _, body) = common::send(serve.clone(), common::get("/big.bin", &[])).await;
    assert_eq!((status, body.len() as u64), (StatusCode::OK, LEN));
    assert!(mmap_serve::sigbus_protection_active());
    assert!(cached(&serve, &big).is_mapped());

    replace_the_sigbus_handler();
    assert!(!mmap_serve::sigbus_protection_active());

    // The cached mapping is dropped at its next revalidation; the file is read on demand from then on, and
    // not kept in the cache (it holds a descriptor).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, headers, body) = common::send(serve.clone(), common::get("/big.bin", &[])).await;
    common::verify_whole(status, &headers, &body, LEN, "read on demand");
    assert!(
        serve
            .cache()
            .get_if_fresh(&big, mmap_serve::Revalidate::Never)
            .is_none(),
        "a file read on demand is not cached"
    );
    let etag = common::text(&headers, "etag").to_string();

    // Same RFC 9110 answers as from a mapping.
    let (status, headers, body) = common::send(
        serve.clone(),
        common::get("/big.bin", &[("range", "bytes=5000000-5004095")]),
    )
    .await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        common::verify_single(&headers, &body, LEN),
        5_000_000..5_004_096
    );
    let (status, headers, body) = common::send(
        serve.clone(),
        common::get("/big.bin", &[("range", "bytes=0-9,4000000-4999999,-10")]),
    )
    .await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    let parts = common::verify_multipart(&headers, &body, LEN, "application/octet-stream");
    assert_eq!(parts, [0..10, 4_000_000..5_000_000, LEN - 10..LEN]);
    let (status, _, _) = common::send(
        serve.clone(),
        common::get("/big.bin", &[("if-none-match", &etag)]),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);

    // Files read on demand leave no descriptor behind once their responses are done.
    let open_fds = || std::fs::read_dir("/proc/self/fd").expect("fds").count();
    let before = open_fds();
    for i in 0..50 {
        common::net::pattern_file(root, &format!("many/{i}.bin"), 100_000);
        let uri = format!("/many/{i}.bin");
        let (status, _, body) = common::send(serve.clone(), common::get(&uri, &[])).await;
        assert_eq!((status, body.len()), (StatusCode::OK, 100_000));
    }
    assert!(
        open_fds() < before + 5,
        "{before} -> {} descriptors",
        open_fds()
    );

    // Rewritten in place (same length, new mtime) under a response: it fails before its end.
    let (length, received, error) = download_while(&serve, "/big.bin", || {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&big)
            .expect("open");
        std::os::unix::fs::FileExt::write_all_at(&f, &[0xEE; 4096], LEN - 4096).expect("write");
        f.set_modified(std::time::SystemTime::now() + Duration::from_secs(5))
            .expect("mtime");
    })
    .await;
    assert!(error.is_some(), "a rewritten file must not complete");
    assert!((received.len() as u64) < length);
    assert_eq!(received, common::pattern(0..received.len() as u64));

    // Truncated under a response: short body, an error, the process lives; the next request sees it at once.
    common::net::pattern_file(root, "big.bin", LEN as usize);
    let (length, received, error) = download_while(&serve, "/big.bin", || {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&big)
            .expect("open")
            .set_len(1 << 20)
            .expect("truncate");
    })
    .await;
    assert_eq!(length, LEN);
    let error = error.expect("a truncated file must not complete");
    assert!(
        error.to_string().contains("changed while being served"),
        "{error}"
    );
    assert!((received.len() as u64) < LEN && received.len() <= 1 << 20);
    assert_eq!(received, common::pattern(0..received.len() as u64));
    let (status, headers, _) = common::send(serve.clone(), common::get("/big.bin", &[])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(common::content_length(&headers), 1 << 20);

    // An immutable (content-addressed) file is still mapped: it is never truncated.
    let blob = common::net::pattern_file(root, "blob.bin", 1 << 20);
    let immutable = MmapServe::with_cache(
        {
            let blob = blob.clone();
            move |_: &http::request::Parts| {
                std::future::ready(Resolution::File(
                    ResolvedFile::new(blob.clone()).immutable(true),
                ))
            }
        },
        std::sync::Arc::clone(serve.cache()),
    );
    let (status, _, body) = common::send(immutable, common::get("/blob", &[])).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, Bytes::from(common::pattern(0..1 << 20)))
    );
    assert!(cached(&serve, &blob).is_mapped());
    // The same file asked for as one that may change is not served from that unprotected mapping.
    let stale = serve.cache().stats().stale;
    let (status, _, body) = common::send(serve.clone(), common::get("/blob.bin", &[])).await;
    assert_eq!((status, body.len()), (StatusCode::OK, 1 << 20));
    assert_eq!(serve.cache().stats().stale, stale + 1);
    assert!(
        serve
            .cache()
            .get_if_fresh(&blob, mmap_serve::Revalidate::Never)
            .is_none()
    );

    // The public core API falls back the same way.
    let f = mmap_serve::MmapFile::new(&big).expect("open");
    assert!(f.reads_on_demand());
    assert_eq!(f.range(10..20).expect("read"), common::pattern(10..20));
    assert!(f.range(0..(2 << 20)).is_err());
}
