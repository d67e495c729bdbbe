//! A file being written is never served whole (issue 14): a file some process has open for writing when the
//! service opens it has no final version yet, so every body of it ends with an error (whatever its length,
//! one frame included), an empty one is a 503 with Retry-After, and once the writer has closed it the next
//! request is served whole, with the new labels, watched or not. Where the kernel refuses to say (a read
//! lease refused), files are served as before and the refusal is counted.
#![cfg(target_os = "linux")]

mod common;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use mmap_serve::{DirResolver, MmapCache, MmapError, MmapFile, MmapServe, Revalidate};
use tower::ServiceExt;

use common::{Fixture, child, get, pattern, text};

const HOUR: Duration = Duration::from_secs(3600);

/// The policies a file being written must be handled under: watched (the default), and timed with an interval
/// no test outlasts, so that only the check at open can explain what is seen.
const POLICIES: [Revalidate; 2] = [
    Revalidate::Watch { fallback: HOUR },
    Revalidate::Every(HOUR),
];

fn serve(fx: &Fixture, policy: Revalidate) -> MmapServe<DirResolver> {
    let cache = Arc::new(MmapCache::builder().revalidation(policy).build());
    MmapServe::with_cache(DirResolver::new(fx.root()), cache)
}

/// A writer still at work on `path`: open for appending, as a download or a copy in progress is.
fn writer(path: &std::path::Path) -> File {
    OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open for writing")
}

/// GETs `uri` with `headers`: the status, the header fields, what the body yielded, and whether it ended
/// with an error instead of completing.
async fn fetch(
    serve: &MmapServe<DirResolver>,
    uri: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Vec<u8>, bool) {
    let response = serve
        .clone()
        .oneshot(get(uri, headers))
        .await
        .expect("infallible");
    let (parts, mut body) = response.into_parts();
    let mut received = Vec::new();
    let mut failed = false;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => received.extend_from_slice(&frame.into_data().expect("data")),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    (parts.status, parts.headers, received, failed)
}

/// A request of each body kind: (name, Range, expected status).
fn cases(len: u64) -> [(&'static str, Option<String>, StatusCode); 4] {
    [
        ("full", None, StatusCode::OK),
        (
            "one frame",
            Some("bytes=0-99".into()),
            StatusCode::PARTIAL_CONTENT,
        ),
        (
            "long range",
            Some(format!("bytes=10-{}", len - 10)),
            StatusCode::PARTIAL_CONTENT,
        ),
        (
            "multi-range",
            Some(format!("bytes=0-9,{}-{}", len / 2, len / 2 + 9)),
            StatusCode::PARTIAL_CONTENT,
        ),
    ]
}

#[tokio::test]
async fn a_file_open_for_writing_is_never_served_whole() {
    // Mapped (1 MiB) and small (read into memory when not being written) files, under both policies.
    for len in [1 << 20, 5_000u64] {
        for policy in POLICIES {
            let fx = Fixture::new();
            let path = fx.file("w.bin", len);
            let serve = serve(&fx, policy);
            let held = writer(&path);
            for (name, range, status) in cases(len) {
                let headers: Vec<(&str, &str)> =
                    range.iter().map(|r| ("range", r.as_str())).collect();
                let (got, fields, received, failed) = fetch(&serve, "/w.bin", &headers).await;
                let what = format!("{name} of {len} bytes under {policy:?}");
                assert_eq!(got, status, "{what}");
                assert!(
                    failed,
                    "{what}: the body ends with an error, never completes"
                );
                assert!(
                    (received.len() as u64) < common::content_length(&fields),
                    "{what}"
                );
            }
            drop(held);
        }
    }
}

#[tokio::test]
async fn once_the_writer_closes_the_next_request_is_served_whole_with_the_new_labels() {
    for policy in POLICIES {
        let fx = Fixture::new();
        let path = fx.file("w.bin", 600_000);
        let serve = serve(&fx, policy);
        let mut held = writer(&path);
        let (_, during, _, failed) = fetch(&serve, "/w.bin", &[]).await;
        assert!(failed, "{policy:?}");
        assert_eq!(text(&during, "content-length"), "600000");
        // The writer finishes its work: more bytes, then it closes the file.
        held.write_all(&pattern(600_000..1_000_000)).unwrap();
        drop(held);
        let (status, after, body, failed) = fetch(&serve, "/w.bin", &[]).await;
        assert_eq!(status, StatusCode::OK, "{policy:?}");
        assert!(!failed, "{policy:?}: served whole");
        assert_eq!(text(&after, "content-length"), "1000000", "{policy:?}");
        assert_ne!(text(&after, "etag"), text(&during, "etag"), "{policy:?}");
        assert!(body == pattern(0..1_000_000), "{policy:?}");
        // A writer that closes without writing: the labels seen while it was open were the final ones.
        // (A writer that opens a file already cached is a change only once it writes: see tests/watch.rs.)
        let path = fx.file("v.bin", 600_000);
        let held = writer(&path);
        let (_, during, _, failed) = fetch(&serve, "/v.bin", &[("range", "bytes=0-9")]).await;
        assert!(failed);
        drop(held);
        let (status, after, body, failed) =
            fetch(&serve, "/v.bin", &[("range", "bytes=0-9")]).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT);
        assert!(
            !failed,
            "{policy:?}: re-opened once the writer closed, not kept poisoned"
        );
        assert_eq!(text(&after, "etag"), text(&during, "etag"));
        assert_eq!(body, pattern(0..10));
    }
}

#[tokio::test]
async fn an_empty_file_being_written_is_503_with_retry_after() {
    let fx = Fixture::new();
    let path = fx.file("new.bin", 0);
    let serve = fx.serve();
    let mut held = writer(&path);
    let (status, fields, _, _) = fetch(&serve, "/new.bin", &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(text(&fields, "retry-after"), "1");
    #[cfg(target_os = "linux")]
    assert!(
        matches!(MmapFile::new(&path), Err(MmapError::BeingWritten(_))),
        "its own error, not a shortage of resources"
    );
    held.write_all(&pattern(0..100)).unwrap();
    drop(held);
    let (status, _, body, failed) = fetch(&serve, "/new.bin", &[]).await;
    assert_eq!((status, failed), (StatusCode::OK, false));
    assert_eq!(body, pattern(0..100));
    // Empty and finished is an empty file: 200.
    fx.file("empty.bin", 0);
    let (status, fields, _, failed) = fetch(&serve, "/empty.bin", &[]).await;
    assert_eq!((status, failed), (StatusCode::OK, false));
    assert_eq!(text(&fields, "content-length"), "0");
}

#[test]
fn a_file_opened_directly_while_written_is_poisoned_and_says_why() {
    let fx = Fixture::new();
    let path = fx.file("w.bin", 1 << 20);
    let held = writer(&path);
    let f = MmapFile::new(&path).unwrap();
    assert!(f.opened_while_written() && f.is_poisoned());
    assert_eq!(f.range(0..4).unwrap(), pattern(0..4), "the bytes are there");
    drop(held);
    let f = MmapFile::new(&path).unwrap();
    assert!(!f.opened_while_written() && !f.is_poisoned());
}

const REFUSED: &str = "a_refused_lease_leaves_files_served_as_before_and_is_counted";
const REFUSED_FILE: &str = "MMAP_SERVE_TEST_LEASE_FILE";

/// In the child (as `nobody`): a root-owned file, which this user may read but not lease.
async fn refused_lease_child() {
    let path = std::env::var_os(REFUSED_FILE).expect("the parent names the file");
    let path = std::path::PathBuf::from(path);
    let before = mmap_serve::writer_checks_refused();
    let f = MmapFile::new(&path).unwrap();
    assert!(!f.opened_while_written() && !f.is_poisoned());
    assert_eq!(mmap_serve::writer_checks_refused(), before + 1);
    let root = path.parent().unwrap().to_path_buf();
    let serve = MmapServe::new(DirResolver::new(root));
    let (status, _, body, failed) = fetch(&serve, "/r.bin", &[]).await;
    assert_eq!((status, failed), (StatusCode::OK, false));
    assert!(body == pattern(0..1 << 20));
    assert!(
        mmap_serve::writer_checks_refused() > before + 1,
        "the service's open too"
    );
}

#[tokio::test]
async fn a_refused_lease_leaves_files_served_as_before_and_is_counted() {
    if child::is_child(REFUSED) {
        return refused_lease_child().await;
    }
    if !rustix::process::geteuid().is_root() {
        // A file this user does not own, if the system has a readable one (its lease is refused: EACCES).
        let foreign = ["/etc/passwd", "/etc/hostname", "/etc/os-release"]
            .into_iter()
            .map(std::path::Path::new)
            .find(|p| {
                use std::os::unix::fs::MetadataExt;
                std::fs::metadata(p).is_ok_and(|m| {
                    m.is_file() && m.uid() != rustix::process::geteuid().as_raw() && m.len() > 0
                }) && File::open(p).is_ok()
            });
        let Some(foreign) = foreign else {
            eprintln!("skipping {REFUSED}: no readable file owned by another user");
            return;
        };
        let before = mmap_serve::writer_checks_refused();
        let f = MmapFile::new(foreign).unwrap();
        assert!(!f.opened_while_written());
        assert!(mmap_serve::writer_checks_refused() > before);
        return;
    }
    // Root holds CAP_LEASE: re-run as `nobody`, on a file root owns.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("r.bin");
    std::fs::write(&path, pattern(0..1 << 20)).unwrap();
    let output = child::rerun(REFUSED)
        .env(REFUSED_FILE, &path)
        .env("TMPDIR", dir.path())
        .uid(65534)
        .gid(65534)
        .output();
    match output {
        Ok(output) => child::assert_passed(&output),
        Err(e) => eprintln!("skipping {REFUSED}: could not re-run the test as nobody ({e})"),
    }
}

// --- An in-place change to an inode no longer at the path counts as a change. -----------------------------

#[tokio::test]
async fn a_write_to_an_inode_renamed_over_fails_the_bodies_still_sending_it() {
    use std::os::unix::fs::FileExt;
    const LEN: u64 = 4 << 20;
    let fx = Fixture::new();
    let path = fx.file("m.bin", LEN);
    let cache = Arc::new(
        MmapCache::builder()
            .revalidation(Revalidate::Watch { fallback: HOUR })
            .build(),
    );
    let serve = MmapServe::with_cache(DirResolver::new(fx.root()), Arc::clone(&cache))
        .chunk_size(256 << 10);
    let response = serve
        .clone()
        .oneshot(get("/m.bin", &[]))
        .await
        .expect("infallible");
    let old_etag = text(response.headers(), "etag").to_owned();
    let mut body = response.into_body();
    let first = body.frame().await.expect("a frame").expect("data");
    let mut received = first.into_data().expect("data").to_vec();
    // What the body holds: the cached file of the old inode (a hit on the same mapping).
    let old = cache.get_or_create(&path).unwrap();
    assert!(!old.is_poisoned());
    // A process that opened the old inode (after it was mapped) and keeps it: a log rotation's writer, a
    // copy into place that was renamed before it finished, an editor's buffer.
    let late_writer = OpenOptions::new().write(true).open(&path).unwrap();
    // The deploy: a new version renamed over the path, served as soon as the watch reports it; the cache
    // drops its entry of the old inode.
    let staging = fx.write("m.bin.new", &vec![9u8; 1 << 20]);
    std::fs::rename(&staging, &path).unwrap();
    cache.catch_up();
    let (status, fields, _, failed) = fetch(&serve, "/m.bin", &[("range", "bytes=0-0")]).await;
    assert_eq!((status, failed), (StatusCode::PARTIAL_CONTENT, false));
    assert_ne!(text(&fields, "etag"), old_etag, "the rename was seen");
    assert!(
        !old.is_poisoned(),
        "replaced, not changed: in-flight bodies may finish"
    );
    // Now the old inode is rewritten in place, where the in-flight body has yet to read.
    late_writer
        .write_all_at(&vec![0xEE; 1 << 20], LEN - (1 << 20))
        .unwrap();
    cache.catch_up();
    assert!(
        old.is_poisoned(),
        "the write to the old inode poisons its mapping"
    );
    let mut failed = false;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => received.extend_from_slice(&frame.into_data().expect("data")),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "the body of the old inode ends with an error");
    assert!((received.len() as u64) < LEN);
    assert!(
        received == pattern(0..received.len() as u64),
        "every byte sent is the old version's"
    );
    // And the new version is served whole, unaffected.
    let (status, _, body, failed) = fetch(&serve, "/m.bin", &[]).await;
    assert_eq!((status, failed), (StatusCode::OK, false));
    assert!(body == vec![9u8; 1 << 20]);
}

#[tokio::test]
async fn answers_without_content_about_a_file_being_written_are_503_with_retry_after() {
    let fx = Fixture::new();
    let path = fx.file("w.bin", 1 << 20);
    let serve = fx.serve();
    let held = writer(&path);
    let head = serve
        .clone()
        .oneshot(common::request(http::Method::HEAD, "/w.bin", &[]))
        .await
        .expect("infallible");
    assert_eq!(head.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(text(head.headers(), "retry-after"), "1");
    for (name, value) in [
        ("if-none-match", "*"),
        ("if-match", "\"nope\""),
        ("range", "bytes=9999999-"),
    ] {
        let (status, fields, _, _) = fetch(&serve, "/w.bin", &[(name, value)]).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{name}");
        assert_eq!(text(&fields, "retry-after"), "1");
    }
    drop(held);
    let head = serve
        .clone()
        .oneshot(common::request(http::Method::HEAD, "/w.bin", &[]))
        .await
        .expect("infallible");
    assert_eq!(head.status(), StatusCode::OK);
}
