//! How entries sit in quick_cache: their keys, weights, eviction bookkeeping and counters; no I/O, no policy.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use quick_cache::{Lifecycle, Weighter};

use super::entry::Entry;

/// The cache's counters, shared with its eviction hook.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) hits: AtomicU64,
    pub(super) misses: AtomicU64,
    pub(super) stale: AtomicU64,
    pub(super) evictions: AtomicU64,
    /// Shared with the bodies of the responses served from this cache.
    pub(super) frames: Arc<FrameCounters>,
    /// Files that were to be watched and could not be: revalidated by time instead.
    pub(super) watch_failures: AtomicU64,
    /// Cached files a watch event (or the check made as the watch was added) found changed.
    pub(super) changes_seen: AtomicU64,
}

/// What the bodies of one cache's responses count about the residency of the frames they send.
#[derive(Debug, Default)]
pub(crate) struct FrameCounters {
    /// Mapped frames whose pages were all in memory when checked: sent from the worker at once.
    pub(crate) resident: AtomicU64,
    /// Mapped frames brought in off the workers before they were sent.
    pub(crate) brought_in: AtomicU64,
    /// Nanoseconds bodies spent waiting for bring-ins (a read-ahead that finished in time adds nothing).
    pub(crate) wait_nanos: AtomicU64,
}

impl Counters {
    pub(super) fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The cache key of `path`: its bytes, normalised as `Path` compares paths (`a//b`, `a/./b` and `a/b/` are all
/// `a/b`), so that every spelling of a path finds one entry. Hashing bytes is a few nanoseconds where `Path`'s
/// own `Hash` walks the components; the walk happens here only for a path that needs it.
pub(super) fn key_of(path: &Path) -> Cow<'_, [u8]> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    // What components() would normalise away: an empty or `.` name after a separator (`//`, `/./`, a trailing
    // `/` or `/.`), in anything longer than `/`.
    let needs_walk = bytes.len() > 1
        && bytes
            .split(|&b| b == b'/')
            .skip(1)
            .any(|name| name.is_empty() || name == b".");
    if needs_walk {
        let normal: PathBuf = path.components().collect();
        Cow::Owned(normal.into_os_string().into_encoded_bytes())
    } else {
        Cow::Borrowed(bytes)
    }
}

/// Each entry weighs 1 (count bound only) or `max(size, floor)` against a byte budget.
#[derive(Debug, Clone)]
pub(super) struct Weigh {
    pub(super) floor: Option<u64>,
}

impl Weighter<Vec<u8>, Arc<Entry>> for Weigh {
    fn weight(&self, _: &Vec<u8>, entry: &Arc<Entry>) -> u64 {
        match self.floor {
            None => 1,
            Some(floor) => entry.file().size().max(floor),
        }
    }
}

/// Counts evictions and drops evicted mappings after the shard lock is released (munmap is a syscall).
#[derive(Debug, Clone)]
pub(super) struct Evictions(pub(super) Arc<Counters>);

impl Lifecycle<Vec<u8>, Arc<Entry>> for Evictions {
    type RequestState = Vec<Arc<Entry>>;

    fn on_evict(&self, evicted: &mut Self::RequestState, _: Vec<u8>, entry: Arc<Entry>) {
        Counters::count(&self.0.evictions);
        evicted.push(entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_normalised_as_path_compares() {
        assert_eq!(key_of(Path::new("/a//b/./c/")), &b"/a/b/c"[..]);
        assert_eq!(key_of(Path::new("./a")), &b"./a"[..]);
        assert_eq!(key_of(Path::new("/")), &b"/"[..]);
        assert_eq!(key_of(Path::new("/a/b")), &b"/a/b"[..]);
    }
}
