//! [`Revalidate`]: when a cached mapping is compared with the disk (or trusted to its watch), and the
//! comparison itself; no file-system I/O here (the caller takes the `stat`), no HTTP.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::entry::{Entry, Watch};
use crate::mmap::identity::FileIdentity;
use crate::mmap::map::protection_active;

/// When a cached mapping is compared with the file on disk before it is used again.
///
/// A check is one `stat(2)` of the path; when the device, inode, length, mtime or ctime differ from the
/// mapping's, the file is re-opened and re-mapped, and responses already in flight finish from the old mapping.
/// Under [`Watch`](Self::Watch) the kernel reports changes instead, and a hit makes no check at all.
///
/// The default is the strongest policy the platform gives: `Watch { fallback: 1 s }` on Linux,
/// `Every(1 s)` elsewhere.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mmap_serve::{MmapCache, Revalidate};
/// # let d = tempfile::tempdir()?; let path = d.path().join("m.bin"); std::fs::write(&path, vec![1u8; 1 << 20])?;
/// let policy = Revalidate::Watch { fallback: Duration::from_secs(1) };
/// let cache = MmapCache::builder().revalidation(policy).build();
/// let old = cache.get_or_create(&path)?;
/// // The deploy: a new version written beside the old one and renamed over it.
/// std::fs::write(d.path().join("m.new"), vec![2u8; 1 << 20])?;
/// std::fs::rename(d.path().join("m.new"), &path)?;
/// # #[cfg(target_os = "linux")] {
/// // The watch reports it within moments, long before the fallback interval would; `catch_up` waits
/// // for those moments (a process reading its own writes).
/// cache.catch_up();
/// let new = cache.get_or_create(&path)?;
/// assert_eq!(new.range(0..1)?[0], 2);
/// assert_eq!(old.range(0..1)?[0], 1, "the old inode still serves what was in flight");
/// assert!(cache.stats().changes_seen >= 1);
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Revalidate {
    /// Check on every use: always the current file, at the cost of a `stat` per request.
    Always,
    /// Check at most once per interval per file: a replaced file is noticed within the interval.
    Every(Duration),
    /// Never check: for immutable, content-addressed files whose name is their content.
    ///
    /// Files under this policy count as immutable everywhere: they are mapped even when the SIGBUS guard
    /// cannot protect the mapping (see [`sigbus_protection_active`](crate::sigbus_protection_active)), so a
    /// truncation of one would kill the process. Do not use it to save `stat` calls on files that may change.
    Never,
    /// Watch each cached file for changes (Linux inotify) and check none while no change is reported; a file
    /// that cannot be watched is checked at most once per `fallback` instead.
    ///
    /// A write, truncation or attribute change of the mapped file, a rename over its path, its deletion or
    /// move, and a move of a directory on its path mark the cached entry changed as the kernel reports them
    /// (typically within microseconds; see the cache's docs for the thread that reads the events): the next
    /// request re-opens the file. A write or truncation also poisons the old mapping, so responses still
    /// sending it fail at their next frame; a file replaced by rename is not poisoned, and its responses
    /// finish from the old inode.
    ///
    /// Not watched, so revalidated every `fallback` (and counted in
    /// [`CacheStats::watch_failures`](crate::CacheStats::watch_failures)): files on network or FUSE
    /// filesystems (whose changes made elsewhere the kernel never hears of), paths through a symbolic link,
    /// files beyond the watch limit (`/proc/sys/fs/inotify/max_user_watches`), and every file on platforms
    /// other than Linux. Writes through a shared writable mapping are seen only when the writer closes the
    /// file.
    Watch {
        /// How often a file that cannot be watched is checked.
        fallback: Duration,
    },
}

impl Default for Revalidate {
    /// Watched, checked at most once a second where a watch cannot be added (Linux); elsewhere at most once a
    /// second.
    fn default() -> Self {
        let second = Duration::from_secs(1);
        if cfg!(target_os = "linux") {
            Self::Watch { fallback: second }
        } else {
            Self::Every(second)
        }
    }
}

/// Whether `entry` must be compared with the disk before it is served under `revalidate`.
pub(super) fn is_due(entry: &Entry, revalidate: Revalidate) -> bool {
    let file = entry.file();
    if file.is_poisoned() {
        // Never served again from the cache: the check that follows finds it changed and re-maps it.
        return true;
    }
    if revalidate != Revalidate::Never && file.is_unprotected_mapping() {
        // Mapped unprotected for an immutable request; this one may change: the check replaces it.
        return true;
    }
    match revalidate {
        Revalidate::Always => true,
        Revalidate::Never => false,
        Revalidate::Every(interval) => elapsed(entry, interval),
        // A watched file is checked only once an event reported a change: one load, no clock.
        Revalidate::Watch { fallback } => match entry.watch() {
            Watch::Quiet => false,
            Watch::Changed => true,
            Watch::Unwatched => elapsed(entry, fallback),
        },
    }
}

/// Whether `interval` has passed since `entry` was last checked.
fn elapsed(entry: &Entry, interval: Duration) -> bool {
    let interval = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX);
    clock().saturating_sub(entry.checked_at()) >= interval
}

/// Whether a watch reported that `entry` changed: it is replaced without a `stat`.
pub(super) fn seen_changed(entry: &Entry, revalidate: Revalidate) -> bool {
    matches!(revalidate, Revalidate::Watch { .. }) && entry.watch() == Watch::Changed
}

/// Whether `entry` may still be served for a path whose `stat` is `now`: the same regular file, not poisoned
/// (a fault it survived, such as an I/O error, makes a mapping stale even when the file looks the same), and
/// still safe to serve mapped (see [`still_safe`]).
pub(super) fn unchanged(entry: &Entry, now: &std::fs::Metadata, revalidate: Revalidate) -> bool {
    let file = entry.file();
    now.is_file()
        && !file.is_poisoned()
        && FileIdentity::from_metadata(now) == *file.identity()
        && still_safe(entry, revalidate)
}

/// Whether `entry` may keep being served as it is under `revalidate`: a mapping of a file that may change
/// needs the SIGBUS guard, registered and still active (one `sigaction` call, made only when a revalidation is
/// due anyway), so a file mapped while the guard was there is re-opened (and read on demand) once it is gone.
fn still_safe(entry: &Entry, revalidate: Revalidate) -> bool {
    let file = entry.file();
    !file.is_mapped()
        || revalidate == Revalidate::Never
        || (!file.is_unprotected_mapping() && protection_active())
}

/// Nanoseconds since the first call, from the monotonic clock (a vDSO read, not a syscall).
pub(super) fn clock() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}
