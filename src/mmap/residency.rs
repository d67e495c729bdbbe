//! Whether a range of a mapping is in memory (`mincore(2)`), and bringing it in (`madvise(2)`): the system
//! calls only; where they run (a Tokio worker or the blocking pool) is the body's business, not this module's.
//!
//! # Why `MADV_WILLNEED` then `MADV_POPULATE_READ`
//!
//! A range brought in page fault by page fault is many small synchronous disk reads; `MADV_POPULATE_READ`
//! alone is exactly that on a mapping advised `MADV_RANDOM` (no fault read-around). `MADV_WILLNEED` first
//! asks for the whole range in one read-ahead request the disk can queue with others, and the populate then
//! only waits for it and maps the pages. Measured with `cargo run --release --example cold_pages` (1 GiB file
//! on this machine's virtual disk, evicted with `posix_fadvise(POSIX_FADV_DONTNEED)` before each row, random
//! 64 KiB-aligned reads of 64 KiB, 48 reads per thread; three runs, the disk is shared and noisy, and run 2
//! overlapped another developer's disk load; latencies from run 3):
//!
//! | method | threads | reads/s, runs 1, 2, 3 | p50 | p99 |
//! |---|---:|---:|---:|---:|
//! | touch every page (what `write` of a cold slice does) | 1 | 158, 23, 134 | 8.1 ms | 13 ms |
//! | touch, mapping advised `MADV_RANDOM` | 1 | 911, 204, 707 | 0.98 ms | 7.2 ms |
//! | `MADV_POPULATE_READ` (`MADV_RANDOM` mapping) | 1 | 19, 27, 18 | 55 ms | 114 ms |
//! | `MADV_WILLNEED` + `MADV_POPULATE_READ` | 1 | 3,935, 52, 3,438 | 0.18 ms | 0.31 ms |
//! | one `pread` of 64 KiB | 1 | 7,251, 25, 4,467 | 0.21 ms | 0.41 ms |
//! | touch every page | 16 | 568, 533, 730 | 0.01 ms | 238 ms |
//! | touch, `MADV_RANDOM` | 16 | 1,038, 2,698, 3,384 | 4.5 ms | 12 ms |
//! | `MADV_POPULATE_READ` | 16 | 253, 196, 922 | 7.1 ms | 47 ms |
//! | `MADV_WILLNEED` + `MADV_POPULATE_READ` | 16 | 12,622, 2,001, 9,904 | 1.4 ms | 4.1 ms |
//! | one `pread` of 64 KiB | 16 | 11,997, 490, 10,633 | 1.4 ms | 2.7 ms |
//!
//! With 16 at once (the queue depth a pread server such as tower-http's `ServeDir` reaches), WILLNEED +
//! POPULATE_READ keeps up with `pread` (0.9-1.05x in the two undisturbed runs) and is 3-20x faster than
//! faulting, and it leaves the pages mapped for the zero-copy send that follows, where a `pread` would copy
//! them into a buffer of its own. POPULATE_READ alone is the slowest of all: with read-around off it reads
//! page by page.
//!
//! The check on the worker is one `mincore` per frame: on resident pages, measured by the same example
//! (mean of 20,000 calls, on the 2-core machine while it also ran a benchmark): 2.5 us for 4 KiB, 1.5 us for
//! 64 KiB, 2.0 us for 1 MiB, which is mostly the cost of entering the kernel on this virtual machine. On
//! another 2-core VM (AMD EPYC, Linux 6.18; a C loop over random pages of a resident 1 GiB file) it took
//! 1.4-1.6 us for 1 to 32 pages, where a system call that does nothing took 0.22-0.26 us and an `fstat`
//! 0.52-0.62 us: besides the entry, each call allocates and frees a page for its result, takes the mmap lock
//! and finds the mapping. So a multipart body asks about the parts close after a part in the same call
//! (`body::check_with_nearby_parts`).
//!
//! # Why not `cachestat(2)`
//!
//! Asked of the file's descriptor instead of the mapping, `cachestat` (Linux 6.5) is cheaper on resident
//! pages (0.46 against 1.37 us for 4 KiB, 0.84 against 1.35 us for 64 KiB in one run of a C loop here; a
//! `perf record` of `serve` under random 4 KiB ranges put it at 7.5% of the server's CPU where `mincore` took
//! 10.8%). But it counts every page the page cache's tree holds, including pages whose read is still in
//! flight, where `mincore` reports only pages that are up to date. A frame whose pages another request's
//! read-ahead is still reading would then be called resident, and the worker's `writev` would wait for that
//! read: exactly the stall this check exists to prevent. With it, `bench/cold.sh` (C1: 16 clients of random
//! 64 KiB ranges of an evicted file, 2 rounds of 10 s, `SERVERS="mmap-serve nginx_aio" WORKLOADS="c1 c3"`)
//! put mmap-serve at 0.84x [0.77-0.92] of nginx `aio threads` instead of 1.10x [0.97-1.24] without, and a
//! round's hot-file probe p99 at 12 ms. So only `mincore` is asked.
//!
//! `MADV_POPULATE_READ` (Linux 5.14) fails with `EFAULT` where a read would raise SIGBUS (the file was
//! truncated under the mapping): [`bring_in`] reports that as [`io::ErrorKind::UnexpectedEof`]. On older
//! kernels (`EINVAL`) the pages are touched instead, on the same (blocking) thread, where the SIGBUS guard
//! contains a fault like any other.
//!
//! # Exactness
//!
//! `mincore` tells the truth about the page cache only for files the process owns or may open for writing
//! (Linux 5.0 hides the page-cache state of other files, a side channel, and reports every page of them
//! resident). [`exact_for`] says which case a file is in when it is mapped; the caller must treat a mapping
//! whose residency is not exact as cold.

use std::fs::File;
use std::io;

use memmap2::{Advice, Mmap};

#[cfg(test)]
thread_local! {
    /// A test's count of the residency checks made on its thread.
    pub(crate) static CHECKS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The pages one `mincore` call looks at: 512 pages (2 MiB of 4 KiB pages), a stack buffer that covers a
/// frame of the default 1 MiB chunk size, however it is aligned, in one call.
const WINDOW: usize = 512;

/// Where a frame's bytes are, as far as the worker about to send them is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Residency {
    /// Not a slice of a mapping (heap bytes, multipart framing): nothing to check.
    Unmapped,
    /// Every page is in memory now.
    Resident,
    /// Some page is not, or it cannot be known (see [`exact_for`]): bring the range in before sending it.
    Cold,
}

fn page_size() -> usize {
    rustix::param::page_size()
}

/// Whether `mincore` on a mapping of `file` reports the page cache as it is (see the module's docs): the
/// process owns the file or may write to it. Conservative: `false` when it cannot tell.
pub(crate) fn exact_for(file: &File) -> bool {
    use rustix::fs::{Access, AtFlags};
    let owner =
        rustix::fs::fstat(file).is_ok_and(|st| st.st_uid == rustix::process::geteuid().as_raw());
    owner
        || rustix::fs::accessat(
            file,
            "",
            Access::WRITE_OK,
            AtFlags::EMPTY_PATH | AtFlags::EACCESS,
        )
        .is_ok()
}

/// Whether every page of `map[offset..offset + len]` is in memory now (`len` > 0, inside the map). One
/// `mincore` call per 2 MiB, no allocation; `false` on any error (the caller then brings the range in, which
/// is always safe).
pub(crate) fn is_resident(map: &Mmap, offset: usize, len: usize) -> bool {
    debug_assert!(len > 0 && offset + len <= map.len());
    #[cfg(test)]
    CHECKS.with(|checks| checks.set(checks.get() + 1));
    let page = page_size();
    let base = map.as_ptr() as usize;
    let start = (base + offset) & !(page - 1);
    let end = base + offset + len;
    // Most frames of a hot path are a few pages: a small buffer is cheaper to zero than the window.
    if end - start <= SMALL * page {
        resident_in(start, end, page, &mut [0u8; SMALL])
    } else {
        resident_in(start, end, page, &mut [0u8; WINDOW])
    }
}

/// The pages a small residency check looks at with one small buffer.
const SMALL: usize = 16;

/// Whether every page of `start..end` (`start` page-aligned, the range inside one live mapping) is in
/// memory, asked `vec.len()` pages at a time.
fn resident_in(mut start: usize, end: usize, page: usize, vec: &mut [u8]) -> bool {
    while start < end {
        let pages = (end - start).div_ceil(page).min(vec.len());
        // SAFETY: `mincore` reads no memory of the process: it writes one byte per page of
        // `start..start + pages * page` into `vec`, which has room for `vec.len() >= pages` bytes. `start` is
        // page-aligned (rounded down by `is_resident`, then advanced by whole pages) and the range lies
        // inside the mapping `is_resident` borrows for this call, which stays mapped meanwhile: it starts at
        // or after the map's page-aligned base and ends at most one partial page past its length, inside
        // the same mapping's last page. Were the range not mapped, `mincore` would fail with ENOMEM and
        // write nothing.
        let status = unsafe {
            libc::mincore(
                start as *mut libc::c_void,
                pages * page,
                vec.as_mut_ptr().cast(),
            )
        };
        if status != 0 || vec[..pages].iter().any(|b| b & 1 == 0) {
            return false;
        }
        start += pages * page;
    }
    true
}

/// Brings `map[offset..offset + len]` into memory: one read-ahead request for the whole range
/// ([`ask_for`]), then the pages faulted in ([`populate`]). Blocking: it waits for the disk, so callers on
/// an async runtime run it off the workers.
///
/// # Errors
///
/// [`io::ErrorKind::UnexpectedEof`] when part of the range is past the file's end now (it was truncated).
pub(crate) fn bring_in(map: &Mmap, offset: usize, len: usize) -> io::Result<()> {
    ask_for(map, offset, len);
    populate(map, offset, len)
}

/// Asks for `map[offset..offset + len]` to be read into the page cache (`MADV_WILLNEED`: one read-ahead
/// request for the whole range), without waiting for it. It may still wait to queue the request (a full
/// disk queue, the file system's block map): callers on an async runtime run it off the workers.
pub(crate) fn ask_for(map: &Mmap, offset: usize, len: usize) {
    // Advice: a failure (an unusual file system) changes nothing but speed.
    let _ = map.advise_range(Advice::WillNeed, offset, len);
}

/// Faults the pages of `map[offset..offset + len]` in (`MADV_POPULATE_READ`), waiting for any read still in
/// flight, or reading them now (page by page on a mapping advised `MADV_RANDOM`: [`ask_for`] them first).
///
/// # Errors
///
/// [`io::ErrorKind::UnexpectedEof`] when part of the range is past the file's end now (it was truncated).
pub(crate) fn populate(map: &Mmap, offset: usize, len: usize) -> io::Result<()> {
    match map.advise_range(Advice::PopulateRead, offset, len) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EFAULT) => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the file is shorter than its mapping: it was truncated",
        )),
        // EINVAL before Linux 5.14, or EINTR/EAGAIN/ENOMEM: fault the pages by touching them, here.
        Err(_) => {
            touch(&map[offset..offset + len]);
            Ok(())
        }
    }
}

/// Reads one byte of every page of `bytes`, so that each is faulted in.
fn touch(bytes: &[u8]) {
    let mut sum = 0u8;
    for at in (0..bytes.len()).step_by(page_size()) {
        sum = sum.wrapping_add(std::hint::black_box(bytes[at]));
    }
    if let Some(&last) = bytes.last() {
        sum = sum.wrapping_add(std::hint::black_box(last));
    }
    std::hint::black_box(sum);
}

#[cfg(test)]
mod tests {
    use super::*;
    use memmap2::MmapOptions;

    fn mapped(len: usize) -> (tempfile::TempDir, File, Mmap) {
        let dir = tempfile::tempdir_in(std::env::temp_dir()).expect("temp dir");
        let path = dir.path().join("f");
        std::fs::write(&path, vec![5u8; len]).expect("write");
        let file = File::open(&path).expect("open");
        // SAFETY: the test's own file, never written or truncated while mapped.
        let map = unsafe { MmapOptions::new().map(&file) }.expect("map");
        (dir, file, map)
    }

    #[test]
    fn a_range_read_through_the_mapping_is_resident() {
        let (_d, file, map) = mapped(5 << 20);
        assert!(exact_for(&file), "the test owns its file");
        std::hint::black_box(map[3 << 20]);
        assert!(is_resident(&map, 3 << 20, 1));
        bring_in(&map, 1000, 4 << 20).expect("bring in");
        assert!(is_resident(&map, 1000, 4 << 20), "several windows");
    }

    #[test]
    fn a_truncated_range_is_an_eof_error_not_a_signal() {
        let (_d, file, map) = mapped(1 << 20);
        let path = _d.path().join("f");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len(4096))
            .expect("truncate");
        let err = bring_in(&map, 8192, 8192).expect_err("past the end");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        drop(file);
    }
}
