//! The descriptors kept open beside mappings, within a share of the process's descriptor limit; no system
//! call but `getrlimit`, no policy of which file keeps one (that is `file.rs`'s).
//!
//! A body's last check asks whether the mapped file changed. With the file's descriptor that is one `fstat`
//! of the mapped inode itself (about 0.5 us on the 2-core virtual machine of the benchmarks); without it, one
//! `stat` of the path (1.1-1.5 us: the path walk), which cannot see an in-place change to an inode that is no
//! longer at the path. The descriptors cost the process's descriptor limit, which its connections need too,
//! so at most a quarter of the soft `RLIMIT_NOFILE` (as it is when a file is opened) is kept: 256 of the usual
//! default 1,024, 16,384 of 65,536. Files opened past that share check their path instead.

use std::fs::File;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Descriptors kept by every mapped file alive in the process.
static KEPT: AtomicUsize = AtomicUsize::new(0);

/// A descriptor kept open for the life of a mapped file, counted against the share.
#[derive(Debug)]
pub(crate) struct Kept {
    file: File,
    count: &'static AtomicUsize,
}

impl Kept {
    /// The open file.
    pub(crate) fn file(&self) -> &File {
        &self.file
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `file`, kept when the process keeps fewer than a quarter of its soft descriptor limit; `None` otherwise
/// (the file is closed when the caller drops it).
pub(crate) fn keep(file: File) -> Option<Kept> {
    keep_within(file, share_of_limit(), &KEPT)
}

/// A quarter of the soft `RLIMIT_NOFILE` (none when the limit is unlimited or unknown: 1,024 assumed).
fn share_of_limit() -> usize {
    let current = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    let limit = current.map_or(1024, |n| usize::try_from(n).unwrap_or(usize::MAX));
    limit / 4
}

fn keep_within(file: File, share: usize, count: &'static AtomicUsize) -> Option<Kept> {
    count
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < share).then_some(n + 1)
        })
        .ok()
        .map(|_| Kept { file, count })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_more_than_the_share_is_kept_and_a_dropped_one_frees_its_place() {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let open = || File::open("/dev/null").expect("open /dev/null");
        let first = keep_within(open(), 2, &COUNT).expect("first");
        let second = keep_within(open(), 2, &COUNT).expect("second");
        assert!(keep_within(open(), 2, &COUNT).is_none(), "past the share");
        assert_eq!(COUNT.load(Ordering::Relaxed), 2);
        drop(first);
        let third = keep_within(open(), 2, &COUNT).expect("a freed place");
        drop((second, third));
        assert_eq!(COUNT.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn the_share_is_a_quarter_of_the_soft_limit() {
        let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .expect("a finite soft limit in tests");
        assert_eq!(share_of_limit() as u64, soft / 4);
    }
}
