//! The SIGBUS guard's costs, through the public API (`cargo bench --bench guard`), in the `mmap` group:
//!
//! - `open_map_register_1m`: `MmapFile::new` on a 1 MiB file and its drop: open, fstat, mmap, register with
//!   the guard, then unregister and munmap (the guard's own share, one compare-exchange and one store, was
//!   3-6 ns per pair on one thread when the unit tests still timed it);
//! - `sigbus_protection_active`: the check made before mapping a file that may change (one `sigaction`);
//! - `contained_fault`: one read of a page past the end of a mapped file that was truncated after mapping:
//!   the kernel's SIGBUS, the handler's registry scan and its zero-page `mmap`, and the read running again.
//!   Set-up (writing, mapping and truncating a fresh file) stays outside the timed closure.

use std::fs::OpenOptions;
use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use mmap_serve::MmapFile;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

#[path = "support/fixture.rs"]
mod support;
use support::fixture;

fn guard(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let one = fixture(dir.path(), "one.bin", MIB);
    let mut g = c.benchmark_group("mmap");

    let probe = MmapFile::new(&one).expect("map");
    assert!(
        probe.is_mapped() && mmap_serve::sigbus_protection_active(),
        "a 1 MiB file is mapped, under protection"
    );
    drop(probe);
    g.bench_function("open_map_register_1m", |b| {
        b.iter(|| MmapFile::new(black_box(&one)).expect("map"))
    });
    g.bench_function("sigbus_protection_active", |b| {
        b.iter(mmap_serve::sigbus_protection_active)
    });

    // 256 KiB truncated to 128 KiB: above the small-file threshold, so mapped; the read at 192 KiB faults.
    let (len, kept) = (256 * KIB, 128 * KIB);
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let path = dir.path().join("truncated.bin");
    let caught = mmap_serve::sigbus_faults_caught();
    g.bench_function("contained_fault", |b| {
        b.iter_batched(
            || {
                std::fs::write(&path, &data).expect("write");
                let file = MmapFile::new(&path).expect("map");
                assert!(file.is_mapped(), "mapped, so the read faults");
                let bytes = file.bytes();
                OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(kept))
                    .expect("truncate");
                (file, bytes)
            },
            |(file, bytes)| {
                black_box(bytes[black_box(kept as usize + 64 * KIB as usize)]);
                (file, bytes)
            },
            BatchSize::PerIteration,
        )
    });
    assert!(
        mmap_serve::sigbus_faults_caught() > caught,
        "the reads past the new end were contained faults"
    );
    g.finish();
}

criterion_group!(benches, guard);
criterion_main!(benches);
