//! The cache's behaviour through its API: hits, bounds, spellings, revalidation, concurrency.

use super::*;
use std::fs;
use std::path::PathBuf;
use std::time::Duration;

fn write(dir: &Path, name: &str, len: usize, seed: u8) -> PathBuf {
    let path = dir.join(name);
    fs::write(
        &path,
        (0..len)
            .map(|i| (i as u8).wrapping_add(seed))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    path
}

#[test]
fn a_hit_reuses_the_mapping() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "a", 1 << 20, 0);
    let cache = MmapCache::new(10);
    let a = cache.get_or_create(&p).unwrap();
    let b = cache.get_or_create(&p).unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    let s = cache.stats();
    assert_eq!(
        (s.hits, s.misses, s.entries, s.mapped_bytes),
        (1, 1, 1, 1 << 20)
    );
}

#[test]
fn the_file_count_bound_holds_and_evictions_are_counted() {
    let d = tempfile::tempdir().unwrap();
    let cache = MmapCache::new(4);
    for i in 0..20 {
        cache
            .get_or_create(write(d.path(), &format!("f{i}"), 100, 0))
            .unwrap();
    }
    assert!(cache.len() <= 4, "{} entries", cache.len());
    assert!(cache.stats().evictions >= 16);
}

#[test]
fn the_byte_budget_holds() {
    let d = tempfile::tempdir().unwrap();
    let cache = MmapCache::builder()
        .max_files(100)
        .max_bytes(4 << 20)
        .build();
    for i in 0..10 {
        cache
            .get_or_create(write(d.path(), &format!("f{i}"), 1 << 20, 0))
            .unwrap();
    }
    let s = cache.stats();
    assert!(s.mapped_bytes <= 4 << 20, "{s:?}");
    assert!(s.entries >= 1 && s.evictions >= 6, "{s:?}");
    // A file larger than the whole budget is served, not kept.
    let huge = write(d.path(), "huge", 5 << 20, 0);
    assert_eq!(cache.get_or_create(&huge).unwrap().size(), 5 << 20);
    assert!(cache.stats().mapped_bytes <= 4 << 20);
}

#[test]
fn eviction_leaves_live_slices_intact() {
    let d = tempfile::tempdir().unwrap();
    let cache = MmapCache::new(1);
    let first = write(d.path(), "first", 1 << 20, 7);
    let slice = cache
        .get_or_create(&first)
        .unwrap()
        .range(1000..2000)
        .unwrap();
    for i in 0..10 {
        cache
            .get_or_create(write(d.path(), &format!("o{i}"), 1 << 20, 0))
            .unwrap();
    }
    cache.clear();
    let expected: Vec<u8> = (1000..2000).map(|i| (i as u8).wrapping_add(7)).collect();
    assert_eq!(slice, expected);
}

#[test]
fn every_spelling_of_a_path_finds_one_entry() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "f", 100, 0);
    let cache = MmapCache::new(10);
    let first = cache.get_or_create(&p).unwrap();
    let dir = d.path().display().to_string();
    for spelling in [
        format!("{dir}//f"),
        format!("{dir}/./f"),
        format!("{dir}/f/."),
    ] {
        let again = cache.get_if_fresh(Path::new(&spelling), Revalidate::Never);
        assert!(again.is_some_and(|f| Arc::ptr_eq(&f, &first)), "{spelling}");
    }
    assert!(cache.remove(Path::new(&format!("{dir}//./f"))));
    assert!(cache.is_empty());
    assert_eq!(key_of(Path::new("/a//b/./c/")), &b"/a/b/c"[..]);
    assert_eq!(key_of(Path::new("./a")), &b"./a"[..]);
    assert_eq!(key_of(Path::new("/")), &b"/"[..]);
}

#[test]
fn a_due_mapping_on_a_local_filesystem_is_checked_without_blocking() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "f", 1 << 20, 1);
    let cache = MmapCache::builder()
        .revalidation(Revalidate::Always)
        .build();
    let file = cache.get_or_create(&p).unwrap();
    assert!(file.is_mapped());
    // procfs is not a local disk filesystem; the temp dir is (ext4, tmpfs, overlayfs... on any CI runner).
    assert!(!on_local(std::path::Path::new("/proc/self/status")));
    assert!(
        file.checks_inline(),
        "the temp dir is on a local filesystem"
    );
    let again = cache
        .get_if_fresh(&p, Revalidate::Always)
        .expect("checked inline, unchanged");
    assert!(Arc::ptr_eq(&file, &again));
    // Replaced: the inline check sees it and leaves the re-mapping to the blocking path.
    let tmp = write(d.path(), "f.tmp", 1 << 20, 2);
    fs::rename(&tmp, &p).unwrap();
    assert!(cache.get_if_fresh(&p, Revalidate::Always).is_none());
    assert_eq!(cache.get_or_create(&p).unwrap().range(0..1).unwrap()[0], 2);
    // Read into memory, not mapped: nothing holds the path's entries, so the check is left to the caller.
    let small = write(d.path(), "small", 100, 3);
    assert!(!cache.get_or_create(&small).unwrap().checks_inline());
    assert!(cache.get_if_fresh(&small, Revalidate::Always).is_none());
}

fn on_local(path: &Path) -> bool {
    crate::mmap::file::on_local_filesystem(&fs::File::open(path).unwrap())
}

#[test]
fn a_file_replaced_by_rename_is_remapped() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "f", 1 << 20, 1);
    let cache = MmapCache::builder()
        .revalidation(Revalidate::Always)
        .build();
    let old = cache.get_or_create(&p).unwrap();
    let in_flight = old.bytes();
    let tmp = write(d.path(), "f.tmp", 2 << 20, 2);
    fs::rename(&tmp, &p).unwrap();
    let new = cache.get_or_create(&p).unwrap();
    assert_eq!(new.size(), 2 << 20);
    assert_ne!(new.etag(), old.etag());
    assert_eq!(new.range(0..1).unwrap()[0], 2);
    assert_eq!(
        in_flight[0], 1,
        "the old inode keeps serving in-flight responses"
    );
    assert_eq!(cache.stats().stale, 1);
    assert_eq!(cache.len(), 1);
}

#[test]
fn a_file_rewritten_in_place_is_remapped() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "f", 100_000, 1);
    let cache = MmapCache::builder()
        .revalidation(Revalidate::Always)
        .build();
    let old = cache.get_or_create(&p).unwrap();
    let old_etag = old.etag().to_string();
    drop(old); // the in-place rewrite below is exactly what the safety model forbids under a live slice
    let f = fs::File::options().write(true).open(&p).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0xAB; 16], 0).unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(3))
        .unwrap();
    let new = cache.get_or_create(&p).unwrap();
    assert_eq!(new.range(0..2).unwrap(), &[0xAB, 0xAB][..]);
    assert_ne!(new.etag(), old_etag);
}

#[test]
fn a_deleted_file_leaves_the_cache_with_not_found() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "f", 100, 0);
    let cache = MmapCache::builder()
        .revalidation(Revalidate::Always)
        .build();
    cache.get_or_create(&p).unwrap();
    fs::remove_file(&p).unwrap();
    assert!(matches!(
        cache.get_or_create(&p),
        Err(MmapError::FileNotFound(_))
    ));
    assert!(cache.is_empty());
}

#[test]
fn never_and_every_policies() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "f", 100, 0);
    let cache = MmapCache::builder().revalidation(Revalidate::Never).build();
    let old = cache.get_or_create(&p).unwrap();
    fs::rename(write(d.path(), "g", 200, 0), &p).unwrap();
    assert!(
        Arc::ptr_eq(&old, &cache.get_or_create(&p).unwrap()),
        "never re-checks"
    );
    let every = Revalidate::Every(Duration::from_millis(50));
    assert!(cache.get_if_fresh(&p, every).is_some(), "checked just now");
    std::thread::sleep(Duration::from_millis(60));
    assert!(cache.get_if_fresh(&p, every).is_none(), "due for a check");
    assert_eq!(cache.get_or_create_with(&p, every).unwrap().size(), 200);
    assert!(cache.get_if_fresh(&p, every).is_some());
    assert!(cache.get_if_fresh(&p, Revalidate::Always).is_none());
}

#[test]
fn concurrent_misses_open_the_file_once() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "f", 8 << 20, 0);
    let cache = Arc::new(MmapCache::builder().revalidation(Revalidate::Never).build());
    let barrier = Arc::new(std::sync::Barrier::new(16));
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let (cache, barrier, p) = (Arc::clone(&cache), Arc::clone(&barrier), p.clone());
            std::thread::spawn(move || {
                barrier.wait();
                cache.get_or_create(&p).unwrap()
            })
        })
        .collect();
    let files: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(files.iter().all(|f| Arc::ptr_eq(f, &files[0])));
    let s = cache.stats();
    assert_eq!((s.misses, s.hits), (1, 15));
}

#[test]
fn errors_are_not_cached() {
    let d = tempfile::tempdir().unwrap();
    let cache = MmapCache::new(10);
    let p = d.path().join("later");
    assert!(matches!(
        cache.get_or_create(&p),
        Err(MmapError::FileNotFound(_))
    ));
    assert!(matches!(
        cache.get_or_create(d.path()),
        Err(MmapError::IsADirectory(_))
    ));
    assert!(cache.is_empty());
    write(d.path(), "later", 10, 0);
    assert_eq!(cache.get_or_create(&p).unwrap().size(), 10);
}

#[test]
fn settings_reach_new_mappings() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "f", 1000, 0);
    let cache = MmapCache::builder()
        .small_file_threshold(0)
        .config(MmapConfig::random())
        .build();
    assert!(cache.get_or_create(&p).unwrap().is_mapped());
    assert_eq!(cache.config(), MmapConfig::random());
    assert_eq!(cache.revalidation(), Revalidate::default());
}

#[test]
fn small_files_stay_on_the_heap_within_its_budget_and_are_mapped_past_it() {
    let d = tempfile::tempdir().unwrap();
    let cache = MmapCache::builder().heap_bytes(10_000).build();
    let paths: Vec<PathBuf> = (0..3)
        .map(|i| write(d.path(), &format!("s{i}"), 4096, i))
        .collect();
    let first = cache.get_or_create(&paths[0]).unwrap();
    let second = cache.get_or_create(&paths[1]).unwrap();
    let third = cache.get_or_create(&paths[2]).unwrap();
    assert!(
        !first.is_mapped() && !second.is_mapped(),
        "8 KiB of 10,000 bytes on the heap"
    );
    assert!(third.is_mapped(), "no room left: mapped");
    assert_eq!(cache.stats().heap_bytes, 8192);
    assert_eq!(&third.bytes()[..], &fs::read(&paths[2]).unwrap()[..]);

    // A share is given back when the last holder of the file lets go, whether the cache or a response.
    assert!(cache.remove(&paths[0]));
    assert_eq!(cache.stats().heap_bytes, 8192, "still held here");
    drop(first);
    assert_eq!(cache.stats().heap_bytes, 4096);
    let again = write(d.path(), "s3", 4096, 9);
    assert!(
        !cache.get_or_create(&again).unwrap().is_mapped(),
        "room again"
    );
    assert_eq!(cache.stats().heap_bytes, 8192);
}
