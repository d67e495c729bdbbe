//! The mmap core as the original guide shows it, through the public API only.

use std::sync::Arc;

use mmap_serve::{MmapCache, MmapConfig, MmapError, MmapFile, Revalidate};

fn fixture(len: usize) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tensor.bin");
    std::fs::write(&path, (0..len).map(|i| (i % 251) as u8).collect::<Vec<_>>()).unwrap();
    (dir, path)
}

#[test]
#[allow(
    clippy::useless_vec,
    reason = "the guide's code, as users will paste it"
)]
fn the_guides_api_compiles_and_works() -> Result<(), MmapError> {
    let (_dir, path) = fixture(200_000);
    let f = MmapFile::new(&path)?;
    assert_eq!(f.size(), 200_000);
    assert!(!f.is_empty());
    assert_eq!(f.bytes().len(), 200_000);
    let part = f.range(0..1024)?;
    assert_eq!(part[1000], (1000 % 251) as u8);
    let parts = f.multi_range(&vec![0..1024, 10240..11264, 102400..103424])?;
    assert_eq!(parts.iter().map(|p| p.len()).sum::<usize>(), 3 * 1024);
    assert_eq!(parts[2][0], (102400 % 251) as u8);

    let cache = Arc::new(MmapCache::new(100));
    let f = cache.get_or_create(&path)?;
    assert_eq!((cache.len(), cache.is_empty()), (1, false));
    cache.clear();
    assert!(cache.is_empty());

    let configs = [
        MmapConfig::sequential(),
        MmapConfig::random(),
        MmapConfig::hugepages(),
        MmapConfig::default(),
        MmapConfig {
            use_hugepages: true,
            sequential_access: false,
            random_access: true,
            populate: true,
        },
    ];
    for c in configs {
        assert_eq!(MmapFile::with_config(&path, c)?.range(5..6)?[0], 5);
    }

    match f.range(0..1_000_000) {
        Err(MmapError::InvalidRange(msg)) => assert!(msg.contains("1000000")),
        other => panic!("expected InvalidRange, got {other:?}"),
    }
    match MmapFile::new(path.with_extension("missing")) {
        Err(MmapError::FileNotFound(path)) => assert!(path.to_string().ends_with(".missing")),
        other => panic!("expected FileNotFound, got {other:?}"),
    }
    Ok(())
}

#[test]
fn many_threads_share_one_mapping_and_read_correct_bytes() {
    let (_dir, path) = fixture(4 << 20);
    let cache = Arc::new(
        MmapCache::builder()
            .revalidation(Revalidate::Always)
            .build(),
    );
    std::thread::scope(|s| {
        for t in 0..8u64 {
            let (cache, path) = (Arc::clone(&cache), &path);
            s.spawn(move || {
                for i in 0..200u64 {
                    let f = cache.get_or_create(path).unwrap();
                    let start = (t * 1_000_003 + i * 4099) % (4 << 20);
                    let end = (start + 4096).min(4 << 20);
                    let got = f.range(start..end).unwrap();
                    assert!(got.iter().zip(start..).all(|(b, i)| *b == (i % 251) as u8));
                }
            });
        }
    });
    let s = cache.stats();
    assert_eq!(s.misses, 1, "{s:?}");
    assert_eq!(s.hits, 8 * 200 - 1);
}
