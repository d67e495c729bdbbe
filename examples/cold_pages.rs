//! `cold_pages`: how fast each way of bringing evicted pages of a mapped file into memory is, on this machine's
//! disk: the experiment behind the bring-in of `MmapBody` (its numbers are in `src/body/residency.rs`).
//!
//! ```sh
//! cargo run --release --example cold_pages -- [FILE] [READS_PER_THREAD]
//! ```
//!
//! Writes (once) a 1 GiB file at `FILE` (an existing file is used when it is 1 GiB long, refused otherwise) (default: `cold_pages.bin` in the temp directory, which must not be a
//! tmpfs: eviction needs a real disk), then for each method and for 1 and 16 threads: evicts the file from
//! the page cache (`posix_fadvise(POSIX_FADV_DONTNEED)`, no root needed), maps it afresh and reads random
//! 64 KiB-aligned ranges of 64 KiB (fresh offsets for each run). Methods:
//!
//! - `touch`: read one byte of every page through the mapping (what hyper's `write` does to a cold slice);
//! - `touch_random`: the same on a mapping advised `MADV_RANDOM` (`MmapConfig::random`);
//! - `populate`: `madvise(MADV_POPULATE_READ)` on the range, mapping advised `MADV_RANDOM`;
//! - `willneed_populate`: `madvise(MADV_WILLNEED)` then `MADV_POPULATE_READ`, mapping advised `MADV_RANDOM`;
//! - `pread`: one `pread(2)` of 64 KiB into a buffer.
//!
//! It prints reads per second and the median and p99 latency of one read. The disk is shared and noisy:
//! compare methods within one run. Then what a worker pays after a bring-in, on resident pages: one
//! `mincore` of 4 KiB, 64 KiB and 1 MiB, and the copy of 64 KiB out of the mapping into a buffer (what the
//! kernel does for `writev` of a frame into a socket), first right after the bring-in and then again.

use std::error::Error;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use memmap2::{Advice, Mmap, MmapOptions};

const FILE_LEN: u64 = 1 << 30;
const READ: usize = 64 * 1024;
const PAGE: usize = 4096;

#[derive(Clone, Copy, Debug)]
enum Method {
    Touch,
    TouchRandom,
    Populate,
    WillneedPopulate,
    Pread,
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("cold_pages.bin"));
    let reads: usize = args.next().map_or(Ok(64), |n| n.parse())?;
    let file = Arc::new(fixture(&path)?);
    println!("| method | threads | reads/s | p50 | p99 |\n|---|---:|---:|---:|---:|");
    let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ std::process::id() as u64;
    for threads in [1, 16] {
        for method in [
            Method::Touch,
            Method::TouchRandom,
            Method::Populate,
            Method::WillneedPopulate,
            Method::Pread,
        ] {
            seed = seed.wrapping_add(0x1234_5678_9ABC_DEF1);
            let (rate, p50, p99) = run(&file, method, threads, reads, seed)?;
            println!(
                "| {method:?} | {threads} | {rate:.0} | {:.2} ms | {:.2} ms |",
                p50.as_secs_f64() * 1e3,
                p99.as_secs_f64() * 1e3
            );
        }
    }
    mincore_cost(&file)?;
    copy_cost(&file, reads.max(200), seed)?;
    Ok(())
}

/// What the copy of a 64 KiB frame out of the mapping costs (the kernel's copy for `writev`, done here by
/// `copy_from_slice`): the mean over `reads` random ranges, each brought in as the body does
/// (`willneed_populate`), copied once, then copied again.
fn copy_cost(file: &File, reads: usize, mut rng: u64) -> Result<(), Box<dyn Error>> {
    rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::DontNeed)?;
    // SAFETY: as in `run`: the program's own fixture, never written while mapped, the map outlives its use.
    let map = unsafe { MmapOptions::new().map(file)? };
    map.advise(Advice::Random)?;
    let mut buf = vec![0u8; READ];
    let (mut first, mut again) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..reads {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let at = (rng % (FILE_LEN / READ as u64)) as usize * READ;
        read(&map, file, Method::WillneedPopulate, at, &mut buf)?;
        for total in [&mut first, &mut again] {
            let t0 = Instant::now();
            buf.copy_from_slice(&map[at..at + READ]);
            std::hint::black_box(&mut buf);
            *total += t0.elapsed();
        }
    }
    let us = |total: Duration| total.as_secs_f64() * 1e6 / reads as f64;
    println!(
        "copy of 64 KiB just brought in: {:.1} us the first time, {:.1} us again",
        us(first),
        us(again)
    );
    Ok(())
}

/// What the residency check costs a worker on resident pages: the mean time of one `mincore` call over a
/// 4 KiB, a 64 KiB and a 1 MiB range.
fn mincore_cost(file: &File) -> Result<(), Box<dyn Error>> {
    // SAFETY: as in `run`: the program's own fixture, never written while mapped, the map outlives its use.
    let map = unsafe { MmapOptions::new().len(2 << 20).map(file)? };
    map.advise_range(Advice::PopulateRead, 0, 2 << 20)?;
    let mut vec = [0u8; 512];
    for len in [4096, 64 << 10, 1 << 20] {
        let calls = 20_000;
        let start = Instant::now();
        for _ in 0..calls {
            // SAFETY: `mincore` writes `len / 4096 <= 256` bytes into `vec` (512 bytes) and reads no memory;
            // the range is page-aligned and inside `map`, alive for the loop.
            let status = unsafe {
                libc::mincore(
                    map.as_ptr() as *mut libc::c_void,
                    len,
                    vec.as_mut_ptr().cast(),
                )
            };
            assert_eq!(status, 0);
            std::hint::black_box(&vec);
        }
        let each = start.elapsed().as_secs_f64() / calls as f64;
        println!(
            "mincore of {} KiB resident: {:.2} us per call",
            len >> 10,
            each * 1e6
        );
    }
    Ok(())
}

/// The 1 GiB file at `path`, written and synced when it is missing. An existing file of another length is
/// refused, never overwritten: it may be anyone's.
fn fixture(path: &PathBuf) -> Result<File, Box<dyn Error>> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() == FILE_LEN => {}
        Ok(meta) => {
            return Err(format!(
                "{} is {} bytes, not 1 GiB: pass a path where the example may write its own file",
                path.display(),
                meta.len()
            )
            .into());
        }
        Err(_) => {
            let mut out = File::create_new(path)?;
            let chunk: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
            for _ in 0..FILE_LEN / chunk.len() as u64 {
                out.write_all(&chunk)?;
            }
            out.sync_all()?;
        }
    }
    let file = File::open(path)?;
    let fs = rustix::fs::fstatfs(&file)?;
    if fs.f_type as u64 as u32 == 0x0102_1994 {
        return Err(
            "the file is on a tmpfs, which cannot be evicted: pass a path on a disk".into(),
        );
    }
    Ok(file)
}

/// Reads/s, p50 and p99 of `reads` random reads per thread on `threads` threads, the file evicted first.
fn run(
    file: &Arc<File>,
    method: Method,
    threads: usize,
    reads: usize,
    seed: u64,
) -> Result<(f64, Duration, Duration), Box<dyn Error>> {
    rustix::fs::fadvise(&**file, 0, None, rustix::fs::Advice::DontNeed)?;
    // SAFETY: the file is this program's own fixture, open read-only and never written while mapped; the map
    // lives until the end of this function, and every read below stays inside it.
    let map = Arc::new(unsafe { MmapOptions::new().map(&**file)? });
    if !matches!(method, Method::Touch) {
        map.advise(Advice::Random)?;
    }
    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (map, file) = (Arc::clone(&map), Arc::clone(file));
            std::thread::spawn(move || {
                let mut rng = seed ^ ((t as u64 + 1) * 0xA24B_AED4_963E_E407);
                let mut buf = vec![0u8; READ];
                let mut times = Vec::with_capacity(reads);
                for _ in 0..reads {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let at = (rng % (FILE_LEN / READ as u64)) as usize * READ;
                    let t0 = Instant::now();
                    read(&map, &file, method, at, &mut buf).expect("read");
                    times.push(t0.elapsed());
                }
                times
            })
        })
        .collect();
    let mut times: Vec<Duration> = workers
        .into_iter()
        .flat_map(|w| w.join().expect("worker"))
        .collect();
    let elapsed = start.elapsed();
    times.sort();
    let pick = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    Ok((
        times.len() as f64 / elapsed.as_secs_f64(),
        pick(0.5),
        pick(0.99),
    ))
}

fn read(map: &Mmap, file: &File, method: Method, at: usize, buf: &mut [u8]) -> std::io::Result<()> {
    match method {
        Method::Touch | Method::TouchRandom => {
            let mut sum = 0u8;
            for page in (at..at + READ).step_by(PAGE) {
                sum = sum.wrapping_add(std::hint::black_box(map[page]));
            }
            std::hint::black_box(sum);
        }
        Method::Populate => map.advise_range(Advice::PopulateRead, at, READ)?,
        Method::WillneedPopulate => {
            map.advise_range(Advice::WillNeed, at, READ)?;
            map.advise_range(Advice::PopulateRead, at, READ)?;
        }
        Method::Pread => file.read_exact_at(buf, at as u64)?,
    }
    Ok(())
}
