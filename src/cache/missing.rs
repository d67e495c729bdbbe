//! Remembered absences: paths found missing (a precompressed sidecar that was never made), kept for the
//! revalidation interval so that a missing file costs one open attempt per interval rather than one per
//! request; no I/O of its own, no HTTP.
//!
//! static-web-server #617 is the failure this prevents: with precompressed variants on, every request for a
//! file without sidecars stat'ed each missing sidecar again. Here the first attempt notes the path, and
//! lookups within the interval skip it with one hash lookup and no system call.

use std::path::Path;
use std::time::Duration;

use quick_cache::sync::Cache;

use super::revalidate::{Revalidate, clock};
use super::store::key_of;

/// One remembered absence.
#[derive(Debug, Clone, Copy)]
struct Absence {
    /// The confinement it was found missing beneath (0: none): another root, or another symbolic-link rule,
    /// may find the path.
    tag: u64,
    /// When, in the cache clock's nanoseconds.
    at: u64,
}

/// Paths found missing, bounded like the cache they belong to (least recently used go first).
pub(super) struct Missing {
    paths: Cache<Vec<u8>, Absence>,
}

impl Missing {
    /// Room for `capacity` paths.
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            paths: Cache::new(capacity.max(1)),
        }
    }

    /// Whether `path` was found missing beneath `tag` recently enough to skip it under `revalidation`:
    /// within the interval of [`Revalidate::Every`], within the fallback of [`Revalidate::Watch`] (absences
    /// are not watched), never under [`Revalidate::Always`], and until the entry is dropped under
    /// [`Revalidate::Never`].
    pub(super) fn is_known(&self, path: &Path, tag: u64, revalidation: Revalidate) -> bool {
        let interval = match revalidation {
            Revalidate::Always => return false,
            Revalidate::Never => Duration::MAX,
            Revalidate::Every(interval) | Revalidate::Watch { fallback: interval } => interval,
        };
        let Some(absence) = self.paths.get(&*key_of(path)) else {
            return false;
        };
        let interval = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX);
        absence.tag == tag && clock().saturating_sub(absence.at) < interval
    }

    /// Notes that `path` is missing beneath `tag`, as of now.
    pub(super) fn note(&self, path: &Path, tag: u64) {
        let absence = Absence { tag, at: clock() };
        self.paths.insert(key_of(path).into_owned(), absence);
    }

    /// Forgets what is known of `path`.
    pub(super) fn forget(&self, path: &Path) {
        self.paths.remove(&*key_of(path));
    }

    /// Forgets everything.
    pub(super) fn clear(&self) {
        self.paths.clear();
    }
}

impl std::fmt::Debug for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Missing")
            .field("paths", &self.paths.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn an_absence_is_known_for_the_interval_beneath_its_confinement_only() {
        let missing = Missing::new(8);
        let path = Path::new("/srv/app.js.gz");
        assert!(!missing.is_known(path, 7, Revalidate::Every(SECOND)));
        missing.note(path, 7);
        assert!(missing.is_known(path, 7, Revalidate::Every(SECOND)));
        assert!(missing.is_known(
            Path::new("/srv//app.js.gz"),
            7,
            Revalidate::Watch { fallback: SECOND }
        ));
        assert!(missing.is_known(path, 7, Revalidate::Never));
        assert!(
            !missing.is_known(path, 8, Revalidate::Every(SECOND)),
            "another root"
        );
        assert!(!missing.is_known(path, 7, Revalidate::Always));
        assert!(!missing.is_known(path, 7, Revalidate::Every(Duration::ZERO)));
        missing.forget(path);
        assert!(!missing.is_known(path, 7, Revalidate::Never));
    }

    #[test]
    fn an_absence_expires() {
        let missing = Missing::new(8);
        let path = Path::new("/srv/a.br");
        missing.note(path, 0);
        let interval = Duration::from_millis(20);
        std::thread::sleep(interval * 2);
        assert!(!missing.is_known(path, 0, Revalidate::Every(interval)));
        missing.note(path, 0);
        missing.clear();
        assert!(!missing.is_known(path, 0, Revalidate::Never));
    }
}
