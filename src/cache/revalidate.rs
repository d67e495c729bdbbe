//! [`Revalidate`]: when a cached mapping is compared with the disk, and the comparison itself; no file-system
//! I/O here (the caller takes the `stat`), no HTTP.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::entry::Entry;
use crate::mmap::identity::FileIdentity;
use crate::mmap::map::protection_active;

/// When a cached mapping is compared with the file on disk before it is used again.
///
/// A check is one `stat(2)` of the path; when the device, inode, length, mtime or ctime differ from the
/// mapping's, the file is re-opened and re-mapped, and responses already in flight finish from the old mapping.
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
}

impl Default for Revalidate {
    /// At most once a second.
    fn default() -> Self {
        Self::Every(Duration::from_secs(1))
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
        Revalidate::Every(interval) => {
            let interval = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX);
            clock().saturating_sub(entry.checked_at()) >= interval
        }
    }
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
