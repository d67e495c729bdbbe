//! Criterion benchmarks, one group per layer.
//!
//! `cargo bench --bench http_benchmarks -- mmap` measures the mmap core: a cache hit, a cache miss on a 1 MiB
//! file, 4 KiB and 1 MiB range slices, and a mapped range against `File::read_at` of the same bytes.

use std::fs::File;
use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mmap_serve::{MmapCache, Revalidate};

const MIB: u64 = 1 << 20;

fn fixture(dir: &Path, name: &str, len: u64) -> PathBuf {
    let path = dir.join(name);
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, data).expect("write fixture");
    path
}

fn mmap(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let one = fixture(dir.path(), "one.bin", MIB);
    let big = fixture(dir.path(), "big.bin", 64 * MIB);
    let cache = MmapCache::new(100);
    let mut g = c.benchmark_group("mmap");

    cache.get_or_create(&one).expect("map");
    g.bench_function("cache_hit", |b| {
        b.iter(|| cache.get_or_create(black_box(&one)))
    });
    g.bench_function("cache_hit_fresh", |b| {
        b.iter(|| cache.get_if_fresh(black_box(&one), Revalidate::default()))
    });
    g.bench_function("cache_miss_1m", |b| {
        b.iter_batched(
            || cache.remove(&one),
            |_| cache.get_or_create(black_box(&one)).expect("map"),
            BatchSize::PerIteration,
        )
    });

    let file = cache.get_or_create(&big).expect("map");
    for (name, len) in [("range_4k", 4096), ("range_1m", MIB)] {
        g.bench_function(name, |b| {
            let mut offset = 0;
            b.iter(|| {
                offset = (offset + 7 * 4096 + 123) % (64 * MIB - len);
                file.range(black_box(offset..offset + len))
                    .expect("in bounds")
            })
        });
    }

    let handle = File::open(&big).expect("open");
    for (label, len) in [("1m", MIB), ("64m", 64 * MIB)] {
        g.throughput(Throughput::Bytes(len));
        g.bench_with_input(BenchmarkId::new("mapped_range", label), &len, |b, &len| {
            b.iter(|| file.range(black_box(0..len)).expect("in bounds"))
        });
        let mut buf = vec![0u8; len as usize];
        g.bench_with_input(BenchmarkId::new("read_at", label), &len, |b, _| {
            b.iter(|| handle.read_exact_at(black_box(&mut buf), 0).expect("read"))
        });
    }
    g.finish();
}

criterion_group!(benches, mmap);
criterion_main!(benches);
