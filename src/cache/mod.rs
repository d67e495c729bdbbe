//! [`MmapCache`]: shared mappings on quick_cache, opened once per concurrent miss and revalidated by policy;
//! no HTTP decisions.
//!
//! The cache keeps an [`Entry`] per file: the [`MmapFile`] handlers get, plus what serving needs to know
//! about it (validators formatted once, when it was last checked, which root it was verified beneath).

use std::fmt;
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use quick_cache::sync::{Cache, GuardResult};
use quick_cache::{DefaultHashBuilder, OptionsBuilder};

mod builder;
mod entry;
mod missing;
mod revalidate;
mod store;
#[cfg(test)]
mod tests;
mod watch;

pub use builder::{DEFAULT_HEAP_BYTES, MmapCacheBuilder};
pub(crate) use entry::Entry;
pub use revalidate::Revalidate;
pub(crate) use store::FrameCounters;

use builder::Settings;
use entry::Watch;
use missing::Missing;
use revalidate::{clock, is_due, seen_changed, unchanged};
use store::{Counters, Evictions, Weigh, key_of};
use watch::Watcher;

use crate::mmap::heap::HeapBudget;
use crate::{MmapConfig, MmapError, MmapFile};

/// A snapshot of a cache's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Lookups answered by a cached mapping (including ones confirmed by a revalidation check).
    pub hits: u64,
    /// Lookups that opened the file, including re-opens of files found changed.
    pub misses: u64,
    /// Cached mappings found changed on disk and replaced.
    pub stale: u64,
    /// Mappings pushed out to respect the cache's bounds.
    pub evictions: u64,
    /// Files currently cached.
    pub entries: u64,
    /// Bytes of the cached files that are memory-mapped (small files read into memory are not counted).
    pub mapped_bytes: u64,
    /// Bytes of small files read into memory that this cache's files hold now, cached or still sent by a
    /// response (at most [`MmapCacheBuilder::heap_bytes`](crate::MmapCacheBuilder::heap_bytes)).
    pub heap_bytes: u64,
    /// Frames of mappings that response bodies found in memory (one `mincore`) and sent at once.
    pub frames_resident: u64,
    /// Frames of mappings that were not in memory and were brought in off the workers before being
    /// sent (or cannot be checked: see [`MmapBody`](crate::MmapBody)).
    pub frames_brought_in: u64,
    /// Nanoseconds response bodies spent waiting for bring-ins, summed over bodies (time the body was ready
    /// to send its next frame and had to wait; a read-ahead that finished in time adds nothing).
    pub bring_in_wait_nanos: u64,
    /// Cached files watched for changes now ([`Revalidate::Watch`]), with no change reported since opened.
    pub watched: u64,
    /// Files that were to be watched and could not be (the watch limit, a network or FUSE filesystem, a path
    /// through a symbolic link, a platform without inotify): they are revalidated by time instead.
    pub watch_failures: u64,
    /// Cached files found changed by a watch event, or by the check made as their watch was added.
    pub changes_seen: u64,
}

/// A bounded, shared cache of [`MmapFile`]s keyed by path.
///
/// - **Bounds**: at most `max_files` files and, when a byte budget is set, at most that many bytes of cached
///   files. With a budget each entry weighs `max(size, budget / max_files)` against it, which keeps both bounds.
///   A file larger than the budget is still served, just not kept.
/// - **One open per miss**: concurrent lookups of the same missing path wait for a single open and map.
/// - **Revalidation**: cached entries are compared with the disk under a [`Revalidate`] policy. Under
///   [`Revalidate::Watch`] (the default on Linux) the cache watches every file it holds with inotify, and a
///   hit makes no system call until an event reports a change: a file rewritten, truncated, deleted or
///   replaced by rename is re-mapped by the next request after the event (a rewrite or truncation also
///   poisons the old mapping, so responses still sending it fail at their next frame). The events are read
///   by one thread per cache, named `mmap-serve-watch`, started with the first watched file and joined when
///   the cache is dropped; it holds one inotify instance and a watch per file and per directory above them.
///   What the watch does not see, and when it falls back to timed checks, is told at [`Revalidate::Watch`].
/// - **Eviction** only drops the cache's reference: a mapping is unmapped when its last `Bytes` is dropped.
/// - **Keys** are paths as `Path` compares them (`a//b` and `a/./b` are `a/b`); a file read on demand (no
///   SIGBUS protection, see [`MmapFile::reads_on_demand`]) is not kept, since it holds a descriptor.
///
/// Lookups that miss or revalidate do blocking file-system work; from async code call them in
/// `tokio::task::spawn_blocking`, or use [`get_if_fresh`](Self::get_if_fresh), which never blocks.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use mmap_serve::MmapCache;
/// # let d = tempfile::tempdir()?; let path = d.path().join("t.bin"); std::fs::write(&path, vec![9u8; 1 << 20])?;
/// let cache = Arc::new(MmapCache::new(100));
/// let a = cache.get_or_create(&path)?;
/// let b = cache.get_or_create(&path)?;
/// assert!(Arc::ptr_eq(&a, &b));
/// assert_eq!(cache.len(), 1);
/// let stats = cache.stats();
/// assert_eq!((stats.hits, stats.misses, stats.mapped_bytes), (1, 1, 1 << 20));
/// cache.clear();
/// assert!(cache.is_empty());
/// assert_eq!(a.range(0..4)?, &[9u8; 4][..], "slices outlive the cache entry");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MmapCache {
    /// Keyed by the path's bytes: hashing them is a few nanoseconds, where `Path`'s own `Hash` walks its
    /// components.
    files: Cache<Vec<u8>, Arc<Entry>, Weigh, DefaultHashBuilder, Evictions>,
    settings: Settings,
    counters: Arc<Counters>,
    /// The change watch, started with the first file cached under [`Revalidate::Watch`]; None when it could
    /// not be (every such file is then revalidated by time). Dropped after `files`, whose entries hold their
    /// watches.
    watcher: OnceLock<Option<Watcher>>,
    /// Paths found missing (precompressed sidecars), remembered for the revalidation interval.
    missing: Missing,
    /// The bytes of small files its files may hold on the heap.
    heap: Arc<HeapBudget>,
}

impl MmapCache {
    /// A cache of at most `max_files` files with default settings (see [`MmapCacheBuilder`]).
    pub fn new(max_files: usize) -> Self {
        Self::builder().max_files(max_files).build()
    }

    /// A builder for a cache with a byte budget, mapping hints, a small-file threshold or a revalidation policy.
    pub fn builder() -> MmapCacheBuilder {
        MmapCacheBuilder::default()
    }

    /// The file at `path`: the cached mapping when it is current, otherwise opened, mapped and cached.
    ///
    /// Blocking (see the type's docs). Revalidates under the cache's [`Revalidate`] policy.
    ///
    /// # Errors
    ///
    /// The errors of [`MmapFile::new`]; a cached file that has since disappeared gives
    /// [`MmapError::FileNotFound`] and leaves the cache.
    pub fn get_or_create(&self, path: impl AsRef<Path>) -> Result<Arc<MmapFile>, MmapError> {
        self.get_or_create_with(path, self.settings.revalidation)
    }

    /// As [`get_or_create`](Self::get_or_create), under `revalidation` instead of the cache's policy.
    ///
    /// # Errors
    ///
    /// As [`get_or_create`](Self::get_or_create).
    pub fn get_or_create_with(
        &self,
        path: impl AsRef<Path>,
        revalidation: Revalidate,
    ) -> Result<Arc<MmapFile>, MmapError> {
        let entry = self.entry(path.as_ref(), revalidation)?;
        Ok(Arc::clone(entry.file()))
    }

    /// The cached file at `path` if it needs no revalidation now under `revalidation`, or passes one that
    /// cannot block; never reads from a disk.
    ///
    /// This is the non-blocking fast path for async callers: on `None`, fall back to
    /// [`get_or_create_with`](Self::get_or_create_with) on a blocking thread. A revalidation that is due is made
    /// here (one `stat` of the path) only for a mapped file on a local filesystem: the mapping holds the file
    /// open, which keeps every directory entry of its path in memory, so the `stat` waits for neither a disk
    /// nor a network. Under [`Revalidate::Watch`] a watched file with no change reported is a hit with no
    /// check at all, whether mapped or not. A hit is counted in the stats.
    pub fn get_if_fresh(
        &self,
        path: impl AsRef<Path>,
        revalidation: Revalidate,
    ) -> Option<Arc<MmapFile>> {
        let entry = self.fresh_entry(path.as_ref(), revalidation, 0)?;
        Some(Arc::clone(entry.file()))
    }

    /// The entry of the file at `path`, opened and cached when it is missing or stale (blocking).
    pub(crate) fn entry(
        &self,
        path: &Path,
        revalidation: Revalidate,
    ) -> Result<Arc<Entry>, MmapError> {
        let (entry, _) = self.get_or_open(path, revalidation, |cache| {
            cache.open_uncached(path, revalidation)
        })?;
        Ok(entry)
    }

    /// The cached entry of `path` if it is fresh under `revalidation` (see [`get_if_fresh`](Self::get_if_fresh))
    /// and, when `confined_to` is not 0, was verified beneath that confinement; a refused entry is not counted
    /// as a hit.
    pub(crate) fn fresh_entry(
        &self,
        path: &Path,
        revalidation: Revalidate,
        confined_to: u64,
    ) -> Option<Arc<Entry>> {
        let entry = self.files.get(&*key_of(path))?;
        if confined_to != 0 && entry.confined_to() != confined_to {
            return None;
        }
        if is_due(&entry, revalidation) {
            if seen_changed(&entry, revalidation) {
                return None;
            }
            // The check is one stat, made here when it cannot wait on a disk or a network: the file is mapped
            // (its open description pins every directory entry the lookup walks, so none is read from disk)
            // on a local filesystem. Anything else, and any change, is left to the blocking caller.
            if !entry.file().checks_inline() {
                return None;
            }
            match std::fs::metadata(path) {
                Ok(m) if unchanged(&entry, &m, revalidation) => entry.set_checked_at(clock()),
                _ => return None,
            }
        }
        Counters::count(&self.counters.hits);
        Some(entry)
    }

    /// The entry of `path` as the file `open` finds beneath a root (tagged `tag`, not 0), blocking.
    ///
    /// A confined file is served only once the cached mapping is known to be the very file that opening
    /// beneath the root names: a cache shared with an unconfined resolver or handler may hold a mapping of the
    /// same path opened through a link that leaves the root, and that mapping must not leak through here.
    pub(crate) fn entry_beneath(
        &self,
        path: &Path,
        revalidation: Revalidate,
        tag: u64,
        open: impl Fn() -> io::Result<File>,
    ) -> Result<Arc<Entry>, MmapError> {
        let open_beneath = |cache: &Self| -> Result<MmapFile, MmapError> {
            let file = open().map_err(|e| MmapError::from_io(path, e))?;
            cache.map_open_file(path, file, revalidation)
        };
        // On an error nothing stale stays behind: revalidation already removed a changed entry, and a failed
        // open inserted none (removing the key here could only drop an entry another request just cached).
        let (entry, opened_here) = self.get_or_open(path, revalidation, open_beneath)?;
        if opened_here || entry.confined_to() == tag {
            entry.set_confined_to(tag);
            return Ok(entry);
        }
        // Cached by another route (an unconfined resolver or handler sharing the cache): serve it only if it is
        // the very file that opening beneath the root finds now.
        let beneath = open_beneath(self)?;
        if beneath.identity() == entry.file().identity() {
            entry.set_confined_to(tag);
            Ok(entry)
        } else {
            // Replace it, so that the next confined request is a plain hit.
            let beneath = self.new_entry(beneath, path, revalidation);
            beneath.set_confined_to(tag);
            self.replace(path, Arc::clone(&beneath));
            Ok(beneath)
        }
    }

    /// The entry cached under `key`, made from what `open` returns on a miss, and whether this call opened it;
    /// revalidation compares the identity of `key` on disk.
    fn get_or_open(
        &self,
        key: &Path,
        revalidation: Revalidate,
        open: impl FnOnce(&Self) -> Result<MmapFile, MmapError>,
    ) -> Result<(Arc<Entry>, bool), MmapError> {
        let path = key;
        let mut open = Some(open);
        // The stale entry this lookup removed, if any: its successor learns whether they share a date.
        let mut replaced: Option<Arc<Entry>> = None;
        loop {
            let cached = match self.files.get_value_or_guard(&*key_of(path), None) {
                GuardResult::Value(entry) => entry,
                GuardResult::Guard(guard) => {
                    Counters::count(&self.counters.misses);
                    // A call reaches a guard at most once: it returns right after.
                    let open = open.take().expect("one open per lookup");
                    let entry = self.new_entry(open(self)?, path, revalidation);
                    if let Some(earlier) = &replaced {
                        entry.note_predecessor(earlier);
                    }
                    if keeps(entry.file()) {
                        // Refused only when the cache was changed under the guard; the file is still good.
                        let _ = guard.insert(Arc::clone(&entry));
                    }
                    return Ok((entry, true));
                }
                // A lookup without a timeout waits for the guard holder instead.
                GuardResult::Timeout => continue,
            };
            if !is_due(&cached, revalidation) {
                Counters::count(&self.counters.hits);
                return Ok((cached, false));
            }
            if seen_changed(&cached, revalidation) {
                // Reported changed: re-opened without a `stat` (which could only confirm it).
                Counters::count(&self.counters.stale);
                self.files
                    .remove_if(&*key_of(path), |v| Arc::ptr_eq(v, &cached));
                replaced = Some(cached);
                continue;
            }
            match std::fs::metadata(path) {
                Ok(m) if unchanged(&cached, &m, revalidation) => {
                    cached.set_checked_at(clock());
                    Counters::count(&self.counters.hits);
                    return Ok((cached, false));
                }
                Ok(_) => {
                    Counters::count(&self.counters.stale);
                    self.files
                        .remove_if(&*key_of(path), |v| Arc::ptr_eq(v, &cached));
                    replaced = Some(cached);
                    // Go round again: this (or a concurrent) lookup opens the new file once.
                }
                Err(e) => {
                    self.files
                        .remove_if(&*key_of(path), |v| Arc::ptr_eq(v, &cached));
                    return Err(MmapError::from_io(path, e));
                }
            }
        }
    }

    /// A new entry for `file`, opened as `path`: watched when `revalidation` asks for it and the cache keeps
    /// the file (a failure to watch is counted, and the entry is then revalidated by time).
    fn new_entry(&self, file: MmapFile, path: &Path, revalidation: Revalidate) -> Arc<Entry> {
        let entry = Arc::new(Entry::new(file, clock()));
        if matches!(revalidation, Revalidate::Watch { .. }) && keeps(entry.file()) {
            let watched = self.watcher().is_some_and(|w| w.watch(&entry, path));
            if !watched {
                Counters::count(&self.counters.watch_failures);
            }
        }
        entry
    }

    /// The change watch, started on first use.
    fn watcher(&self) -> Option<&Watcher> {
        self.watcher
            .get_or_init(|| match Watcher::start(Arc::clone(&self.counters)) {
                Ok(watcher) => Some(watcher),
                Err(error) => {
                    if error.kind() != io::ErrorKind::Unsupported {
                        tracing::warn!(%error, "mmap-serve: cannot watch cached files; they are revalidated by time");
                    }
                    None
                }
            })
            .as_ref()
    }

    /// Applies every change to a watched file that the kernel has reported and the watch has not yet applied:
    /// once this returns, a change made to a watched file before the call is known to the cache (its entry is
    /// replaced at the next lookup, and bodies still sending the old version fail their final check).
    ///
    /// The watch applies changes on its own within microseconds (see [`Revalidate::Watch`]); a process that
    /// writes or renames files it also serves calls this after the change to read its own writes at once.
    /// Blocking: one non-blocking read of the inotify queue and, for each change it reports, at most one `stat`.
    /// Files revalidated by time (a refused watch, other platforms, [`Revalidate::Every`]) are not affected:
    /// nothing is pending for them.
    ///
    /// # Examples
    ///
    /// ```
    /// use mmap_serve::MmapCache;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?; let path = dir.path().join("weights.bin");
    /// std::fs::write(&path, b"version 1")?;
    /// let cache = MmapCache::default();
    /// assert_eq!(&cache.get_or_create(&path)?.bytes()[..], b"version 1");
    /// std::fs::write(path.with_extension("new"), b"version 2")?;
    /// std::fs::rename(path.with_extension("new"), &path)?;
    /// cache.catch_up();
    /// assert_eq!(&cache.get_or_create(&path)?.bytes()[..], b"version 2");
    /// # Ok(()) }
    /// ```
    pub fn catch_up(&self) {
        if let Some(Some(watcher)) = self.watcher.get() {
            watcher.catch_up();
        }
    }

    /// The watch's shared state, for a test that it is freed with the cache.
    #[cfg(all(test, target_os = "linux"))]
    fn watcher_for_tests(&self) -> Option<&Watcher> {
        self.watcher()
    }

    /// Caches `entry` under `key`, replacing whatever was there.
    fn replace(&self, key: &Path, entry: Arc<Entry>) {
        if keeps(entry.file()) {
            self.files.insert(key_of(key).into_owned(), entry);
        } else {
            self.files.remove(&*key_of(key));
        }
    }

    /// Drops the cached mapping of `path`, if any, and what is remembered of it (that it was missing);
    /// returns whether there was a mapping.
    pub fn remove(&self, path: impl AsRef<Path>) -> bool {
        self.missing.forget(path.as_ref());
        self.files.remove(&*key_of(path.as_ref())).is_some()
    }

    /// Whether `path` was found missing beneath the confinement `tag` (0: none) recently enough to skip it
    /// under `revalidation` (see `Missing::is_known`): no system call.
    pub(crate) fn known_missing(&self, path: &Path, tag: u64, revalidation: Revalidate) -> bool {
        self.missing.is_known(path, tag, revalidation)
    }

    /// Remembers that `path` is missing beneath `tag`, as of now.
    pub(crate) fn note_missing(&self, path: &Path, tag: u64) {
        self.missing.note(path, tag);
    }

    /// The number of files cached.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether no file is cached.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Drops every cached mapping (slices still in use keep theirs alive until dropped), and forgets which
    /// paths were found missing.
    pub fn clear(&self) {
        self.files.clear();
        self.missing.clear();
    }

    /// The counters, and the entries and mapped bytes as of now (the latter two walk the cache).
    pub fn stats(&self) -> CacheStats {
        let (mut entries, mut mapped_bytes, mut watched) = (0, 0, 0);
        for (_, entry) in self.files.iter() {
            entries += 1;
            if entry.file().is_mapped() {
                mapped_bytes += entry.file().size();
            }
            if entry.watch() == Watch::Quiet {
                watched += 1;
            }
        }
        CacheStats {
            entries,
            mapped_bytes,
            watched,
            ..self.counters()
        }
    }

    /// The counters alone: no walk of the entries.
    fn counters(&self) -> CacheStats {
        let c = &self.counters;
        CacheStats {
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            stale: c.stale.load(Ordering::Relaxed),
            evictions: c.evictions.load(Ordering::Relaxed),
            entries: 0,
            mapped_bytes: 0,
            heap_bytes: self.heap.used(),
            frames_resident: c.frames.resident.load(Ordering::Relaxed),
            frames_brought_in: c.frames.brought_in.load(Ordering::Relaxed),
            bring_in_wait_nanos: c.frames.wait_nanos.load(Ordering::Relaxed),
            watched: 0,
            watch_failures: c.watch_failures.load(Ordering::Relaxed),
            changes_seen: c.changes_seen.load(Ordering::Relaxed),
        }
    }

    /// The counters the bodies of responses from this cache update.
    pub(crate) fn frame_counters(&self) -> &Arc<FrameCounters> {
        &self.counters.frames
    }

    /// Opens `path` with this cache's settings without caching it; a file never revalidated is immutable
    /// (mapped even when the SIGBUS guard cannot protect the mapping).
    fn open_uncached(&self, path: &Path, revalidation: Revalidate) -> Result<MmapFile, MmapError> {
        MmapFile::open(
            path,
            self.settings.config,
            self.settings.small_file_threshold,
            Some(&self.heap),
            revalidation == Revalidate::Never,
        )
    }

    /// Maps (or reads) an open `file` as `path` with this cache's settings, without caching it; immutable as
    /// in [`open_uncached`](Self::open_uncached).
    fn map_open_file(
        &self,
        path: &Path,
        file: File,
        revalidation: Revalidate,
    ) -> Result<MmapFile, MmapError> {
        MmapFile::from_file(
            path,
            file,
            self.settings.config,
            self.settings.small_file_threshold,
            Some(&self.heap),
            revalidation == Revalidate::Never,
        )
    }

    /// The mapping hints applied to new mappings.
    pub fn config(&self) -> MmapConfig {
        self.settings.config
    }

    /// The cache's revalidation policy.
    pub fn revalidation(&self) -> Revalidate {
        self.settings.revalidation
    }
}

impl fmt::Debug for MmapCache {
    /// Settings and counters; the entries are not walked (see [`MmapCache::stats`] for that).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.counters();
        f.debug_struct("MmapCache")
            .field("settings", &self.settings)
            .field("hits", &c.hits)
            .field("misses", &c.misses)
            .field("stale", &c.stale)
            .field("evictions", &c.evictions)
            .field("frames_resident", &c.frames_resident)
            .field("frames_brought_in", &c.frames_brought_in)
            .field("watch_failures", &c.watch_failures)
            .field("changes_seen", &c.changes_seen)
            .finish_non_exhaustive()
    }
}

impl Default for MmapCache {
    /// [`MmapCache::builder`]'s defaults: 1024 files, no byte budget.
    fn default() -> Self {
        Self::builder().build()
    }
}

impl MmapCacheBuilder {
    /// Builds the cache.
    pub fn build(self) -> MmapCache {
        // Mapped files are protected against truncation from the first one on (see `sigbus_protection_active`).
        #[cfg(target_os = "linux")]
        crate::mmap::guard::install();
        let s = self.settings;
        let counters = Arc::new(Counters::default());
        let files = s.max_files.max(1);
        let (weigh, capacity, shards) = match s.max_bytes {
            // One shard: quick_cache splits capacity between shards, and a large file must fit in one.
            Some(bytes) => (
                Weigh {
                    floor: Some((bytes / files as u64).max(1)),
                },
                bytes,
                1,
            ),
            None => (Weigh { floor: None }, s.max_files as u64, default_shards()),
        };
        let options = OptionsBuilder::new()
            .estimated_items_capacity(files)
            .weight_capacity(capacity)
            .shards(shards)
            .build()
            .expect("both required options are set");
        MmapCache {
            files: Cache::with_options(
                options,
                weigh,
                DefaultHashBuilder::default(),
                Evictions(Arc::clone(&counters)),
            ),
            settings: s,
            counters,
            watcher: OnceLock::new(),
            missing: Missing::new(files),
            heap: HeapBudget::new(s.heap_bytes),
        }
    }
}

fn default_shards() -> usize {
    std::thread::available_parallelism().map_or(4, |n| n.get() * 4)
}

/// Whether the cache keeps `file`: not one read on demand, which holds a descriptor (a cache of thousands of
/// them would run the process out of descriptors); each request for it opens it again instead.
fn keeps(file: &MmapFile) -> bool {
    !file.reads_on_demand()
}
