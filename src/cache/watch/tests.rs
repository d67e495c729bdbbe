//! The watch's own rules: its thread ends with the cache, its watches leave with their entries (an inode's with
//! the last mapped file of it), a refused watch falls back to timed revalidation, and a directory moved on the
//! path is seen.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cache::{MmapCache, Revalidate};
use crate::testing::pattern;

const HOUR: Duration = Duration::from_secs(3600);
const WATCH: Revalidate = Revalidate::Watch { fallback: HOUR };

fn write(dir: &Path, name: &str, len: usize) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, pattern(len)).unwrap();
    path
}

fn watching() -> MmapCache {
    MmapCache::builder().revalidation(WATCH).build()
}

#[test]
fn dropping_the_cache_ends_its_thread_and_frees_its_watches() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "f", 1 << 20);
    let cache = watching();
    let file = cache.get_or_create(&p).unwrap();
    assert_eq!(cache.stats().watched, 1);
    let shared = Arc::downgrade(cache.watcher_for_tests().unwrap().shared());
    drop(cache);
    assert!(
        shared.upgrade().is_none(),
        "the thread (joined by the cache's drop) and the entries released the watch"
    );
    assert_eq!(
        file.range(0..4).unwrap(),
        pattern(4),
        "the mapping lives on"
    );
}

#[test]
fn watches_leave_with_their_entries() {
    let d = tempfile::tempdir().unwrap();
    let cache = watching();
    // Every file is written before the first watch: a directory watch would otherwise report the later
    // files' creation, and an event the thread reads only after the file was cached marks it changed
    // (harmless, one extra revalidation, but then not counted as quietly watched).
    let paths: Vec<_> = (0..3)
        .map(|i| write(d.path(), &format!("f{i}"), 100))
        .collect();
    for path in &paths {
        cache.get_or_create(path).unwrap();
    }
    let counts = || {
        let watcher = cache.watcher_for_tests().unwrap();
        watcher.shared().lock().table.counts()
    };
    let (dirs, files) = counts();
    assert_eq!(files, 3);
    assert!(dirs >= 2, "the directory and those above it: {dirs}");
    assert_eq!(cache.stats().watched, 3);
    cache.clear();
    assert_eq!(counts(), (0, 0));
}

#[test]
fn catch_up_applies_the_changes_queued_before_it_on_the_callers_thread() {
    use std::os::unix::fs::FileExt;
    use std::sync::atomic::Ordering;
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "f", 1 << 20);
    let cache = watching();
    let old = cache.get_or_create(&p).unwrap();
    let paused = &cache.watcher_for_tests().unwrap().shared().paused;
    paused.store(true, Ordering::Relaxed);
    // A rename over the path: the entry is replaced, the old mapping finishes what it sends.
    fs::rename(write(d.path(), "g", 2 << 20), &p).unwrap();
    cache.catch_up();
    assert_eq!(cache.stats().changes_seen, 1);
    let new = cache.get_or_create(&p).unwrap();
    assert_eq!(new.size(), 2 << 20, "the new version is served");
    assert!(!old.is_poisoned(), "replaced, not changed");
    // A write in place: the mapping is poisoned.
    let writer = fs::OpenOptions::new().write(true).open(&p).unwrap();
    writer.write_all_at(&[0xAB; 16], 1000).unwrap();
    cache.catch_up();
    assert!(new.is_poisoned(), "the write poisons the mapping");
    assert_eq!(cache.stats().changes_seen, 2);
    paused.store(false, Ordering::Relaxed);
}

#[test]
fn a_refused_watch_falls_back_to_timed_revalidation_and_is_counted() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "f", 1 << 20);
    let next = write(d.path(), "g", 2 << 20);
    let fallback = Duration::from_millis(300);
    let cache = MmapCache::builder()
        .revalidation(Revalidate::Watch { fallback })
        .build();
    let refuse = &cache.watcher_for_tests().unwrap().shared().refuse;
    refuse.store(true, std::sync::atomic::Ordering::Relaxed);
    let old = cache.get_or_create(&p).unwrap();
    let opened = Instant::now();
    let s = cache.stats();
    assert_eq!((s.watched, s.watch_failures), (0, 1));
    fs::rename(&next, &p).unwrap();
    let again = cache.get_or_create(&p).unwrap();
    if opened.elapsed() < fallback {
        assert!(
            Arc::ptr_eq(&old, &again),
            "unwatched and checked just now: served as cached until the fallback interval passes"
        );
    }
    std::thread::sleep(fallback);
    assert_eq!(cache.get_or_create(&p).unwrap().size(), 2 << 20);
    let s = cache.stats();
    assert_eq!((s.stale, s.changes_seen, s.watch_failures), (1, 0, 2));
}

#[test]
fn a_directory_moved_on_the_path_is_seen() {
    let d = tempfile::tempdir().unwrap();
    let served = d.path().join("data");
    fs::create_dir_all(served.join("models")).unwrap();
    let p = write(&served.join("models"), "m.bin", 1 << 20);
    let cache = watching();
    let old = cache.get_or_create(&p).unwrap();
    // The directory swap deploy, two levels above the file.
    let next = d.path().join("data.next");
    fs::create_dir_all(next.join("models")).unwrap();
    write(&next.join("models"), "m.bin", 2 << 20);
    fs::rename(&served, d.path().join("data.old")).unwrap();
    fs::rename(&next, &served).unwrap();
    cache.catch_up();
    assert_eq!(
        cache.get_or_create(&p).unwrap().size(),
        2 << 20,
        "the new tree is served"
    );
    assert!(
        !old.is_poisoned(),
        "moved, not changed: in-flight bodies finish"
    );
    assert!(cache.stats().changes_seen >= 1);
    assert_eq!(cache.stats().watched, 1, "the new file is watched in turn");
}

#[test]
fn a_directory_first_watched_above_a_file_is_watched_for_its_own_files_too() {
    let d = tempfile::tempdir().unwrap();
    fs::create_dir(d.path().join("sub")).unwrap();
    let deep = write(&d.path().join("sub"), "a.bin", 1 << 20);
    let near = write(d.path(), "b.bin", 1 << 20);
    let cache = watching();
    cache.get_or_create(&deep).unwrap(); // the temp dir: watched only for its own move
    let old = cache.get_or_create(&near).unwrap(); // now for its names too
    fs::rename(write(d.path(), "b.new", 2 << 20), &near).unwrap();
    cache.catch_up();
    assert_eq!(
        cache.get_or_create(&near).unwrap().size(),
        2 << 20,
        "the rename over b.bin is seen"
    );
    assert!(!old.is_poisoned());
    assert_eq!(cache.stats().watched, 2);
}

#[test]
fn a_path_through_a_symbolic_link_is_revalidated_by_time() {
    let d = tempfile::tempdir().unwrap();
    fs::create_dir(d.path().join("release-1")).unwrap();
    write(&d.path().join("release-1"), "m.bin", 1 << 20);
    std::os::unix::fs::symlink("release-1", d.path().join("current")).unwrap();
    write(d.path(), "real.bin", 1 << 20);
    std::os::unix::fs::symlink("real.bin", d.path().join("link.bin")).unwrap();
    let cache = watching();
    cache.get_or_create(d.path().join("current/m.bin")).unwrap();
    cache.get_or_create(d.path().join("link.bin")).unwrap();
    let s = cache.stats();
    assert_eq!((s.watched, s.watch_failures), (0, 2));
    // Nothing of the refused watches is left behind.
    let watcher = cache.watcher_for_tests().unwrap();
    assert_eq!(watcher.shared().lock().table.counts().1, 0);
}

#[test]
fn a_mapped_file_keeps_its_inode_watched_after_its_entry_is_gone() {
    use std::os::unix::fs::FileExt;
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "f", 1 << 20);
    let cache = watching();
    let file = cache.get_or_create(&p).unwrap();
    let writer = fs::OpenOptions::new().write(true).open(&p).unwrap();
    let counts = || {
        let watcher = cache.watcher_for_tests().unwrap();
        watcher.shared().lock().table.counts()
    };
    // The entry leaves (evicted, removed, or replaced after a rename): a response may still send the file.
    cache.clear();
    assert_eq!(counts().1, 1, "the inode is still watched for the file");
    writer.write_all_at(&[0xAB; 16], 1000).unwrap();
    cache.catch_up();
    assert!(
        file.is_poisoned(),
        "the write poisons the file no entry holds"
    );
    drop(file);
    assert_eq!(
        counts(),
        (0, 0),
        "the file's last handle released the watch"
    );
}
