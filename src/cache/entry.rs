//! [`Entry`]: what the cache keeps per file — the mapping, its validators formatted once, the revalidation
//! clock, the watch state, the confinement tag and what it learnt from its predecessor; no I/O and no HTTP
//! decisions.

use std::any::Any;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::HeaderValue;

use super::watch::Registration;
use crate::mmap::file::MmapFile;
use crate::mmap::identity::FileIdentity;

/// One cached file: the mapping (shared with the handlers that asked for it) and the cache's bookkeeping.
#[derive(Debug)]
pub(crate) struct Entry {
    file: Arc<MmapFile>,
    validators: Validators,
    /// When the identity was last confirmed against the disk, in the cache clock's nanoseconds.
    checked_at: AtomicU64,
    /// The confinement (a resolver's root, as a tag; 0 for none) this file was last verified beneath.
    confined_to: AtomicU64,
    /// Set when this mapping replaced one of an earlier version with the same Last-Modified second: that date
    /// then names two versions, and is never a strong validator.
    date_ambiguous: AtomicBool,
    /// What the cache's watch knows of the file: a [`Watch`] as a byte, so a hit reads it with one load.
    watch: AtomicU8,
    /// The file's watches, held while the entry lives (dropping it removes the watches no other entry uses).
    registration: OnceLock<Registration>,
    /// What a resolver derived from this mapping's bytes (a parsed index), made once and dropped with the
    /// entry: a changed file gets a new entry, and so a new attachment.
    attachment: OnceLock<Box<dyn Any + Send + Sync>>,
    /// Whether the content matches the first digest a resolver asked for: set once, read with one load.
    verdict: OnceLock<Verdict>,
    /// The verdicts for further digests (a file that resolvers name by more than one hash: rare), each held
    /// only to look one up or add one.
    other_verdicts: Mutex<Vec<Verdict>>,
    /// Held while the content is hashed, so that one request hashes and concurrent ones wait for its verdict.
    hashing: Mutex<()>,
}

/// Locks `mutex`; a panic while it was held (none is expected) left its data whole, so it is used as it is.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What hashing an entry's content found for one expected digest (a multihash code and digest).
#[derive(Debug)]
pub(crate) struct Verdict {
    code: u64,
    digest: Box<[u8]>,
    matches: bool,
}

impl Verdict {
    fn is_for(&self, code: u64, digest: &[u8]) -> bool {
        self.code == code && *self.digest == *digest
    }
}

/// What the cache's watch knows of an entry's file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Watch {
    /// Not watched (never asked for, or the watch could not be added): revalidated by time.
    Unwatched = 0,
    /// Watched, and no event has reported a change since the file was opened.
    Quiet = 1,
    /// An event (or the check made when the watch was added) reported that the path or the file changed.
    Changed = 2,
}

impl Entry {
    /// An entry for `file`, its validators formatted as of now, checked at `now` by the cache's clock.
    pub(crate) fn new(file: MmapFile, now: u64) -> Self {
        Self {
            validators: Validators::new(file.identity(), SystemTime::now()),
            file: Arc::new(file),
            checked_at: AtomicU64::new(now),
            confined_to: AtomicU64::new(0),
            date_ambiguous: AtomicBool::new(false),
            watch: AtomicU8::new(Watch::Unwatched as u8),
            registration: OnceLock::new(),
            attachment: OnceLock::new(),
            verdict: OnceLock::new(),
            other_verdicts: Mutex::new(Vec::new()),
            hashing: Mutex::new(()),
        }
    }

    /// The value of type `T` attached to this entry, if one is (no lock, no allocation: one load and a type
    /// check).
    pub(crate) fn attachment<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.attachment.get()?.downcast_ref()
    }

    /// The value of type `T` attached to this entry, made by `make` if none is yet (concurrent callers wait
    /// for one `make`); None when a value of another type holds the entry's one slot, and then `make` is not
    /// called.
    pub(crate) fn attach_with<T: Any + Send + Sync>(&self, make: impl FnOnce() -> T) -> Option<&T> {
        self.attachment
            .get_or_init(|| Box::new(make()))
            .downcast_ref()
    }

    /// Whether the content matches the digest `digest` of multihash `code`, if that is known; never waits for
    /// a hash (a verdict for a further digest is looked up under a lock held for the look-up only).
    pub(crate) fn verdict(&self, code: u64, digest: &[u8]) -> Option<bool> {
        match self.verdict.get() {
            Some(v) if v.is_for(code, digest) => Some(v.matches),
            _ => lock(&self.other_verdicts)
                .iter()
                .find(|v| v.is_for(code, digest))
                .map(|v| v.matches),
        }
    }

    /// Whether the content matches `digest` of multihash `code`, hashing it with `check` when no verdict is
    /// known yet; the verdict and whether this call made it (blocking: concurrent callers wait for the one
    /// that hashes). An error of `check` leaves no verdict, so a later call tries again.
    pub(crate) fn verdict_or_check<E>(
        &self,
        code: u64,
        digest: &[u8],
        check: impl FnOnce() -> Result<bool, E>,
    ) -> Result<(bool, bool), E> {
        if let Some(known) = self.verdict(code, digest) {
            return Ok((known, false));
        }
        let _hashing = lock(&self.hashing);
        if let Some(known) = self.verdict(code, digest) {
            return Ok((known, false)); // Hashed by the caller this one waited for.
        }
        let matches = check()?;
        let verdict = Verdict {
            code,
            digest: digest.into(),
            matches,
        };
        if let Err(verdict) = self.verdict.set(verdict) {
            lock(&self.other_verdicts).push(verdict);
        }
        Ok((matches, true))
    }

    /// What the watch knows of the file: one relaxed load (it orders nothing; a change seen a moment later is
    /// served a moment later).
    pub(crate) fn watch(&self) -> Watch {
        match self.watch.load(Ordering::Relaxed) {
            0 => Watch::Unwatched,
            1 => Watch::Quiet,
            _ => Watch::Changed,
        }
    }

    /// Records that the file is watched from now on, through `registration`.
    #[cfg_attr(
        not(target_os = "linux"),
        allow(dead_code, reason = "only the Linux watch marks entries")
    )]
    pub(super) fn set_watched(&self, registration: Registration) {
        // An entry is watched once, by the lookup that opened it; a second call would keep the first watches.
        let _ = self.registration.set(registration);
        let _ = self.watch.compare_exchange(
            Watch::Unwatched as u8,
            Watch::Quiet as u8,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// Records that a change was seen; returns whether this is the first since the file was opened.
    #[cfg_attr(
        not(target_os = "linux"),
        allow(dead_code, reason = "only the Linux watch marks entries")
    )]
    pub(super) fn set_changed(&self) -> bool {
        self.watch.swap(Watch::Changed as u8, Ordering::Relaxed) != Watch::Changed as u8
    }

    /// The mapped file.
    pub(crate) fn file(&self) -> &Arc<MmapFile> {
        &self.file
    }

    /// The HTTP validators of the file as it was mapped.
    pub(crate) fn validators(&self) -> &Validators {
        &self.validators
    }

    pub(crate) fn checked_at(&self) -> u64 {
        self.checked_at.load(Ordering::Relaxed)
    }

    pub(crate) fn set_checked_at(&self, now: u64) {
        self.checked_at.store(now, Ordering::Relaxed);
    }

    /// The tag of the confinement this file was last verified beneath (0: none).
    pub(crate) fn confined_to(&self) -> u64 {
        self.confined_to.load(Ordering::Relaxed)
    }

    pub(crate) fn set_confined_to(&self, tag: u64) {
        self.confined_to.store(tag, Ordering::Relaxed);
    }

    /// From when the Last-Modified date is a strong validator (RFC 9110 §8.8.2.2), or None for never.
    pub(crate) fn strong_date_from(&self) -> Option<SystemTime> {
        if self.date_ambiguous.load(Ordering::Relaxed) {
            None
        } else {
            self.validators.strong_date_from
        }
    }

    /// Records that this entry replaced `earlier` (an older version at the same path): when both have the same
    /// Last-Modified second, that date names two versions and is never strong.
    pub(crate) fn note_predecessor(&self, earlier: &Entry) {
        if earlier.validators.last_modified_time == self.validators.last_modified_time {
            self.date_ambiguous.store(true, Ordering::Relaxed);
        }
    }
}

/// The HTTP validators of a file, formatted (and checked as field values) once per mapping, so that serving
/// a request formats and checks nothing: each is cloned into the response as it is.
#[derive(Debug, Clone)]
pub(crate) struct Validators {
    /// The quoted strong ETag ([`FileIdentity::etag`]).
    pub(crate) etag: HeaderValue,
    /// Last-Modified as an IMF-fixdate (RFC 9110 §5.6.7).
    pub(crate) last_modified: HeaderValue,
    /// Last-Modified as a time, whole seconds.
    pub(crate) last_modified_time: SystemTime,
    /// The length in decimal, for a full response's Content-Length.
    pub(crate) length: HeaderValue,
    /// From when `last_modified` is a strong validator (RFC 9110 §8.8.2.2): once the second it names is over,
    /// no other version can get that date. A tenth of a second later, in fact: file times come from the
    /// kernel's coarse clock, a tick behind the time of day. None when the file claims a time in the future.
    strong_date_from: Option<SystemTime>,
}

impl Validators {
    /// Derives the validators of `identity`, as of `now`.
    ///
    /// RFC 9110 §8.8.2.1: a modification time in the future is replaced by the time of origination.
    pub(crate) fn new(identity: &FileIdentity, now: SystemTime) -> Self {
        let modified = identity.modified().min(now);
        let secs = modified
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last_modified_time = UNIX_EPOCH + Duration::from_secs(secs);
        // The three values in one buffer, each a slice of it: one allocation (and one more, shared, at the
        // first slice) where apart they took three, and three more when a response first cloned them (massif
        // on `serve`: about 230 bytes of each cached file's heap).
        let etag = identity.etag();
        let date = httpdate::fmt_http_date(last_modified_time);
        let length = identity.len().to_string();
        let mut text = String::with_capacity(etag.len() + date.len() + length.len());
        for part in [&etag, &date, &length] {
            text.push_str(part);
        }
        let all = Bytes::from(text);
        let (date_at, length_at) = (etag.len(), etag.len() + date.len());
        // Hex digits, letters, quotes, commas, colons, spaces and digits: valid field values.
        let value = |range: std::ops::Range<usize>| {
            HeaderValue::from_maybe_shared(all.slice(range)).expect("an ASCII validator")
        };
        let claims_future = identity.modified() > now;
        Self {
            etag: value(0..date_at),
            last_modified: value(date_at..length_at),
            last_modified_time,
            length: value(length_at..all.len()),
            strong_date_from: (!claims_future)
                .then(|| last_modified_time + Duration::from_millis(1_100)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_modified_is_whole_seconds_and_never_in_the_future() {
        let id = FileIdentity::from_parts(1, 2, 3, 1_700_000_000_900_000_000, 0);
        let v = Validators::new(&id, SystemTime::now());
        assert_eq!(
            v.last_modified_time,
            UNIX_EPOCH + Duration::from_secs(1_700_000_000)
        );
        assert_eq!(v.last_modified, "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(v.length, "3");
        assert_eq!(v.etag, id.etag().as_str());
        let now = UNIX_EPOCH + Duration::from_secs(1_600_000_000);
        let future = Validators::new(&id, now);
        assert_eq!(future.last_modified_time, now);
        assert_eq!(
            future.strong_date_from, None,
            "a date in the future is never strong"
        );
    }

    #[test]
    fn an_attachment_is_made_once_and_typed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("f");
        std::fs::write(&path, b"abc").expect("write");
        let entry = Entry::new(MmapFile::new(&path).expect("open"), 0);
        assert_eq!(entry.attachment::<u32>(), None);
        assert_eq!(entry.attach_with(|| 7u32), Some(&7));
        assert_eq!(
            entry.attach_with(|| -> u32 { panic!("made once") }),
            Some(&7)
        );
        assert_eq!(entry.attachment::<u32>(), Some(&7));
        assert_eq!(entry.attachment::<u64>(), None, "another type");
        assert_eq!(
            entry.attach_with(|| -> u64 { panic!("not made: the slot is taken") }),
            None
        );
    }

    #[test]
    fn times_before_the_epoch_do_not_panic() {
        let id = FileIdentity::from_parts(1, 2, 3, -5_000_000_000, i128::MIN / 2);
        let v = Validators::new(&id, SystemTime::now());
        assert_eq!(v.last_modified_time, UNIX_EPOCH);
    }
}
