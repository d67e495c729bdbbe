//! `Revalidate::Watch`: a change is known when it happens. Every test uses a fallback interval of an hour, so
//! only the watch can explain a change being seen; each waits for the event with a bounded poll (failing after
//! 10 s), never for a wall-clock bound.
#![cfg(target_os = "linux")]

mod common;

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use http_body_util::BodyExt;
use mmap_serve::{DirResolver, MmapCache, MmapError, MmapServe, Revalidate};
use tower::ServiceExt;

use common::{Fixture, get, pattern, request, text};

const WATCH: Revalidate = Revalidate::Watch {
    fallback: Duration::from_secs(3600),
};

/// Mapped, not read into memory.
const LEN: usize = 1 << 20;

fn watching() -> MmapCache {
    MmapCache::builder().revalidation(WATCH).build()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    path
}

/// Has the cache apply every event already queued (the change just made), then asserts that the watch has
/// reported `n` changes in all.
fn changes_seen(cache: &MmapCache, n: u64) {
    cache.catch_up();
    let seen = cache.stats().changes_seen;
    assert!(seen >= n, "{seen} changes seen, {n} expected");
}

#[test]
fn the_default_policy_on_linux_is_the_watch() {
    assert_eq!(
        Revalidate::default(),
        Revalidate::Watch {
            fallback: Duration::from_secs(1)
        }
    );
    assert_eq!(MmapCache::default().revalidation(), Revalidate::default());
}

#[test]
fn a_rename_over_the_path_maps_the_new_file_without_poisoning_the_old() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "m.bin", &pattern(0..LEN as u64));
    let cache = watching();
    let old = cache.get_or_create(&p).unwrap();
    assert!(old.is_mapped());
    assert_eq!(cache.stats().watched, 1);
    let in_flight = old.bytes();
    let staging = write(d.path(), "m.bin.new", &vec![7u8; 2 * LEN]);
    fs::rename(&staging, &p).unwrap();
    changes_seen(&cache, 1);
    let new = cache.get_or_create(&p).unwrap();
    assert_eq!(new.size(), 2 * LEN as u64);
    assert_eq!(new.range(0..1).unwrap()[0], 7);
    assert_ne!(new.etag(), old.etag());
    assert!(
        !old.is_poisoned(),
        "the old inode is intact: in-flight bodies finish"
    );
    assert!(in_flight == pattern(0..LEN as u64));
    let s = cache.stats();
    assert_eq!((s.stale, s.watched, s.watch_failures), (1, 1, 0));
}

#[test]
fn an_in_place_rewrite_poisons_the_old_mapping() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "m.bin", &pattern(0..LEN as u64));
    let cache = watching();
    let old = cache.get_or_create(&p).unwrap();
    let f = fs::File::options().write(true).open(&p).unwrap();
    f.write_all_at(&[0xAB; 4096], 0).unwrap();
    changes_seen(&cache, 1);
    assert!(old.is_poisoned(), "in-flight bodies fail their next frame");
    let new = cache.get_or_create(&p).unwrap();
    assert!(!Arc::ptr_eq(&old, &new));
    assert_eq!(new.range(0..2).unwrap(), &[0xAB, 0xAB][..]);
}

#[test]
fn a_truncation_poisons_the_old_mapping() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "m.bin", &pattern(0..LEN as u64));
    let cache = watching();
    let old = cache.get_or_create(&p).unwrap();
    fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(LEN as u64 / 2)
        .unwrap();
    changes_seen(&cache, 1);
    assert!(old.is_poisoned());
    assert_eq!(cache.get_or_create(&p).unwrap().size(), LEN as u64 / 2);
}

#[test]
fn a_deleted_file_is_not_found() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "m.bin", &pattern(0..LEN as u64));
    let cache = watching();
    let old = cache.get_or_create(&p).unwrap();
    fs::remove_file(&p).unwrap();
    changes_seen(&cache, 1);
    assert!(cache.get_if_fresh(&p, WATCH).is_none());
    assert!(matches!(
        cache.get_or_create(&p),
        Err(MmapError::FileNotFound(_))
    ));
    assert!(cache.is_empty());
    assert!(!old.is_poisoned(), "unlinked, not changed");
}

#[test]
fn a_rewrite_keeping_size_and_mtime_is_seen() {
    // What `cp -p` does: the same length written in place, then the old mtime restored.
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "m.bin", &pattern(0..LEN as u64));
    let mtime = fs::metadata(&p).unwrap().modified().unwrap();
    let cache = watching();
    let old = cache.get_or_create(&p).unwrap();
    let f = fs::File::options().write(true).open(&p).unwrap();
    f.write_all_at(&vec![3u8; LEN], 0).unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);
    changes_seen(&cache, 1);
    assert!(old.is_poisoned());
    let new = cache.get_or_create(&p).unwrap();
    assert_eq!((new.size(), new.modified()), (old.size(), old.modified()));
    assert_ne!(new.etag(), old.etag(), "the ctime tells them apart");
    assert_eq!(new.range(0..1).unwrap()[0], 3);
}

#[test]
fn a_quiet_watch_answers_a_hit_without_a_check() {
    // A file read into memory cannot be checked without blocking (its path's directory entries are not
    // pinned by a mapping), so `get_if_fresh` declines it whenever a check is due; under a quiet watch none is.
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "small.txt", b"hello");
    let cache = watching();
    let file = cache.get_or_create(&p).unwrap();
    assert!(!file.is_mapped());
    assert!(cache.get_if_fresh(&p, Revalidate::Always).is_none());
    let hit = cache.get_if_fresh(&p, WATCH).expect("a hit, no check");
    assert!(Arc::ptr_eq(&file, &hit));
    // And the small file's replacement is seen too.
    fs::rename(write(d.path(), "next.txt", b"world!"), &p).unwrap();
    changes_seen(&cache, 1);
    assert!(cache.get_if_fresh(&p, WATCH).is_none());
    assert_eq!(cache.get_or_create(&p).unwrap().bytes(), &b"world!"[..]);
}

/// The reproduction in issue 14, as a service: a cached 64 MiB file truncated, then rewritten in place. Once the
/// watch has reported each change, the next response answers the new length and ETag, with the new bytes.
#[tokio::test]
async fn a_truncated_then_rewritten_file_answers_its_new_length_and_etag() {
    const BIG: u64 = 64 << 20;
    const SHORT: u64 = 1 << 20;
    let fx = Fixture::new();
    let path = fx.file("big.bin", BIG);
    let cache = Arc::new(watching());
    let serve = MmapServe::with_cache(DirResolver::new(fx.root()), Arc::clone(&cache));

    let first = serve
        .clone()
        .oneshot(get("/big.bin", &[("range", "bytes=0-0")]))
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::PARTIAL_CONTENT);
    let etag_a = text(first.headers(), "etag").to_owned();
    drop(first);

    fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(SHORT)
        .unwrap();
    changes_seen(&cache, 1);
    let head = serve
        .clone()
        .oneshot(request(http::Method::HEAD, "/big.bin", &[]))
        .await
        .unwrap();
    assert_eq!(text(head.headers(), "content-length"), SHORT.to_string());
    let etag_b = text(head.headers(), "etag").to_owned();
    assert_ne!(etag_b, etag_a);

    // Rewritten in place, same inode: what `head -c ... > big.bin` does.
    let new_bytes: Vec<u8> = (0..BIG).map(|i| (i % 239) as u8).collect();
    fs::write(&path, &new_bytes).unwrap();
    changes_seen(&cache, 2);
    // Every response from here on is the new version's. One may still abort: a mapping made in the moment
    // the writer's last event is in flight is poisoned by it (a safe error: the next request maps it again).
    let mut aborted = 0;
    loop {
        let response = serve.clone().oneshot(get("/big.bin", &[])).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(text(response.headers(), "content-length"), BIG.to_string());
        let etag_c = text(response.headers(), "etag").to_owned();
        assert!(etag_c != etag_a && etag_c != etag_b, "{etag_c}");
        match response.into_body().collect().await {
            Ok(body) => {
                assert!(body.to_bytes() == new_bytes, "the new file's bytes");
                break;
            }
            Err(_) => {
                aborted += 1;
                assert!(aborted < 100, "the new version never completes");
            }
        }
    }
    let s = cache.stats();
    assert_eq!((s.watch_failures, s.watched), (0, 1));
}
