//! Whether a range of a mapped file is in memory (`cachestat(2)` or `mincore(2)`), and bringing it in
//! (`madvise(2)`): the system calls only; where they run (a Tokio worker or the blocking pool) is the body's business, not this module's.
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
//! 64 KiB, 2.0 us for 1 MiB, which is mostly the cost of entering the kernel on this virtual machine. Asked of
//! the file instead, through the descriptor a mapped file keeps, `cachestat` (Linux 6.5) walks only the page
//! cache's tree: 0.46 us for 4 KiB and 0.84 us for 64 KiB where `mincore` took 1.37 and 1.35 us in a quieter
//! run of the example, but 7.6 us for 1 MiB (it counts each entry): ranges up to 64 KiB ask [`cached`],
//! longer ones [`is_resident`].
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
//! resident; `cachestat` refuses them with `EPERM`). [`exact_for`] says which case a file is in when it is mapped; the caller must treat a mapping
//! whose residency is not exact as cold.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

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

/// The `cachestat` system call (Linux 6.5), whose number is the generic table's on these architectures; other
/// targets ask `mincore` only.
#[cfg(all(
    target_os = "linux",
    any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        target_arch = "riscv64",
        target_arch = "loongarch64",
        target_arch = "x86",
        target_arch = "arm",
        target_arch = "powerpc64",
        target_arch = "s390x"
    )
))]
const SYS_CACHESTAT: Option<libc::c_long> = Some(451);
#[cfg(not(all(
    target_os = "linux",
    any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        target_arch = "riscv64",
        target_arch = "loongarch64",
        target_arch = "x86",
        target_arch = "arm",
        target_arch = "powerpc64",
        target_arch = "s390x"
    )
)))]
const SYS_CACHESTAT: Option<libc::c_long> = None;

/// Set once the kernel has answered `cachestat` with `ENOSYS` (older than 6.5, or filtered by seccomp).
static NO_CACHESTAT: AtomicBool = AtomicBool::new(false);

/// `struct cachestat_range` of `linux/mman.h`.
#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

/// `struct cachestat` of `linux/mman.h`.
#[repr(C)]
#[derive(Default)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// The longest range asked of `cachestat`: it counts the page cache's entries one by one, so past a few dozen
/// pages `mincore` is cheaper (`cold_pages`, resident pages: 0.46 against 1.37 us for 4 KiB, 0.84 against
/// 1.35 us for 64 KiB, 7.6 against 1.1 us for 1 MiB).
const CACHESTAT_AT_MOST: usize = 64 * 1024;

/// Whether every page of `file`'s bytes `offset..offset + len` (`len` > 0) is in the page cache now, asked of
/// the file (`cachestat(2)`: a walk of the page cache's tree, where `mincore` also takes the memory-map lock
/// and walks the page tables; measured by `perf record` of `serve` under random 4 KiB ranges: 7.5% of the
/// server's CPU against `mincore`'s 10.8%). `None` for a range longer than `CACHESTAT_AT_MOST` and where the
/// kernel cannot answer (no `cachestat`; `EPERM`, for the same files whose page cache `mincore` hides): the
/// caller asks `mincore` then.
pub(crate) fn cached(file: &File, offset: usize, len: usize) -> Option<bool> {
    use std::os::fd::AsRawFd;
    debug_assert!(len > 0);
    let number = SYS_CACHESTAT?;
    if len > CACHESTAT_AT_MOST || NO_CACHESTAT.load(Ordering::Relaxed) {
        return None;
    }
    #[cfg(test)]
    CHECKS.with(|checks| checks.set(checks.get() + 1));
    let range = CachestatRange {
        off: offset as u64,
        len: len as u64,
    };
    let mut stat = Cachestat::default();
    // SAFETY: `cachestat(fd, range, stat, flags)` reads one `struct cachestat_range` from `range` and writes
    // one `struct cachestat` into `stat`, both live locals with the kernel's layout (`repr(C)`, five and two
    // `u64`s); it reads no other memory of the process. The descriptor is borrowed from `file` for the call.
    let status = unsafe {
        libc::syscall(
            number,
            file.as_raw_fd(),
            &range as *const CachestatRange,
            &mut stat as *mut Cachestat,
            0u32,
        )
    };
    if status != 0 {
        if io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
            NO_CACHESTAT.store(true, Ordering::Relaxed);
        }
        return None;
    }
    // The pages the kernel counts: those `offset..offset + len` touches (its first and last page indices).
    let page = page_size() as u64;
    let pages = (range.off + range.len - 1) / page - range.off / page + 1;
    Some(stat.nr_cache == pages)
}

/// Brings `map[offset..offset + len]` into memory: one read-ahead request for the whole range
/// (`MADV_WILLNEED`), then the pages faulted in (`MADV_POPULATE_READ`). Blocking: it waits for the disk, so
/// callers on an async runtime run it on the blocking pool.
///
/// # Errors
///
/// [`io::ErrorKind::UnexpectedEof`] when part of the range is past the file's end now (it was truncated).
pub(crate) fn bring_in(map: &Mmap, offset: usize, len: usize) -> io::Result<()> {
    // Advice: a failure (an unusual file system) changes nothing but speed.
    let _ = map.advise_range(Advice::WillNeed, offset, len);
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
    fn the_page_cache_asked_of_the_file_agrees_with_the_mapping() {
        let (dir, file, map) = mapped(5 << 20);
        if SYS_CACHESTAT.is_none() {
            return;
        }
        std::hint::black_box(map[3 << 20]);
        let Some(resident) = cached(&file, 3 << 20, 1) else {
            eprintln!("skipped: no cachestat(2) on this kernel");
            return;
        };
        assert!(resident, "a page just read");
        assert!(
            cached(&file, 0, 64 << 10).unwrap(),
            "written a moment ago, never evicted"
        );
        assert_eq!(cached(&file, 0, 5 << 20), None, "long ranges are mincore's");
        // Evicted (not on a tmpfs, whose pages stay): neither call calls any page of it resident.
        file.sync_all().expect("fsync");
        rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed).expect("fadvise");
        let on_tmpfs =
            rustix::fs::statfs(dir.path()).is_ok_and(|s| s.f_type as u64 as u32 == 0x0102_1994);
        if !on_tmpfs && !is_resident(&map, 1 << 20, 1) {
            assert_eq!(cached(&file, 1 << 20, 1), Some(false));
            // One page read back alone (no read-around on a mapping advised random), the next still out: a
            // range of both is not in memory.
            let _ = map.advise(Advice::Random);
            std::hint::black_box(map[(1 << 20) - 1]);
            assert_eq!(cached(&file, (1 << 20) - 1, 1), Some(true), "read back");
            if !is_resident(&map, 1 << 20, 1) {
                assert_eq!(
                    cached(&file, (1 << 20) - 1, 2),
                    Some(false),
                    "one of two pages"
                );
            }
        }
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
