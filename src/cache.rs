//! [`MmapCache`]: shared mappings on quick_cache, opened once per concurrent miss and revalidated by policy.

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use quick_cache::sync::{Cache, GuardResult};
use quick_cache::{DefaultHashBuilder, Lifecycle, OptionsBuilder, Weighter};

use crate::mmap::file::DEFAULT_SMALL_FILE_THRESHOLD;
use crate::mmap::identity::FileIdentity;
use crate::{MmapConfig, MmapError, MmapFile};

/// When a cached mapping is compared with the file on disk before it is used again.
///
/// A check is one `stat(2)` of the path; when the device, inode, length, mtime or ctime differ from the
/// mapping's, the file is re-opened and re-mapped, and responses already in flight finish from the old mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
}

/// A bounded, shared cache of [`MmapFile`]s keyed by path.
///
/// - **Bounds**: at most `max_files` files and, when a byte budget is set, at most that many bytes of cached
///   files. With a budget each entry weighs `max(size, budget / max_files)` against it, which keeps both bounds.
///   A file larger than the budget is still served, just not kept.
/// - **One open per miss**: concurrent lookups of the same missing path wait for a single open and map.
/// - **Revalidation**: cached entries are compared with the disk under a [`Revalidate`] policy.
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
    files: Cache<Vec<u8>, Arc<MmapFile>, Weigh, DefaultHashBuilder, Evictions>,
    settings: Settings,
    counters: Arc<Counters>,
}

#[derive(Debug, Clone, Copy)]
struct Settings {
    max_files: usize,
    max_bytes: Option<u64>,
    config: MmapConfig,
    small_file_threshold: u64,
    revalidate: Revalidate,
}

#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    stale: AtomicU64,
    evictions: AtomicU64,
}

impl MmapCache {
    /// A cache of at most `max_files` files with default settings (see [`MmapCacheBuilder`]).
    pub fn new(max_files: usize) -> Self {
        Self::builder().max_files(max_files).build()
    }

    /// A builder for a cache with a byte budget, mapping hints, a small-file threshold or a revalidation policy.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mmap_serve::{MmapCache, MmapConfig, Revalidate};
    /// let cache = MmapCache::builder()
    ///     .max_files(10_000)
    ///     .max_bytes(64 << 30)
    ///     .config(MmapConfig::random())
    ///     .revalidate(Revalidate::Every(Duration::from_millis(250)))
    ///     .build();
    /// assert!(cache.is_empty());
    /// ```
    pub fn builder() -> MmapCacheBuilder {
        MmapCacheBuilder {
            settings: Settings {
                max_files: 1024,
                max_bytes: None,
                config: MmapConfig::default(),
                small_file_threshold: DEFAULT_SMALL_FILE_THRESHOLD,
                revalidate: Revalidate::default(),
            },
        }
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
        self.get_or_create_with(path.as_ref(), self.settings.revalidate)
    }

    /// As [`get_or_create`](Self::get_or_create), under `revalidate` instead of the cache's policy.
    ///
    /// # Errors
    ///
    /// As [`get_or_create`](Self::get_or_create).
    pub fn get_or_create_with(
        &self,
        path: &Path,
        revalidate: Revalidate,
    ) -> Result<Arc<MmapFile>, MmapError> {
        self.get_or_open(path, revalidate, |cache| {
            cache.open_uncached(path, revalidate)
        })
    }

    /// The file cached under `key`, made by `open` on a miss (a confined resolver opens it beneath its root);
    /// revalidation compares the identity of `key` on disk.
    pub(crate) fn get_or_open(
        &self,
        key: &Path,
        revalidate: Revalidate,
        open: impl FnOnce(&Self) -> Result<MmapFile, MmapError>,
    ) -> Result<Arc<MmapFile>, MmapError> {
        let path = key;
        let mut open = Some(open);
        // The stale mapping this lookup removed, if any: its successor learns whether they share a date.
        let mut replaced: Option<Arc<MmapFile>> = None;
        loop {
            let cached = match self.files.get_value_or_guard(&*key_of(path), None) {
                GuardResult::Value(file) => file,
                GuardResult::Guard(guard) => {
                    self.counters.misses.fetch_add(1, Ordering::Relaxed);
                    // A call reaches a guard at most once: it returns right after.
                    let open = open.take().expect("one open per lookup");
                    let file = Arc::new(open(self)?);
                    if let Some(earlier) = &replaced {
                        file.note_predecessor(earlier);
                    }
                    file.set_checked_at(clock());
                    if keeps(&file) {
                        // Refused only when the cache was changed under the guard; the file is still good.
                        let _ = guard.insert(Arc::clone(&file));
                    }
                    return Ok(file);
                }
                // A lookup without a timeout waits for the guard holder instead.
                GuardResult::Timeout => continue,
            };
            if !is_due(&cached, revalidate) {
                self.counters.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(cached);
            }
            match std::fs::metadata(path) {
                Ok(m) if unchanged(&cached, &m, revalidate) => {
                    cached.set_checked_at(clock());
                    self.counters.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(cached);
                }
                Ok(_) => {
                    self.counters.stale.fetch_add(1, Ordering::Relaxed);
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

    /// The cached file at `path` if it needs no revalidation now under `revalidate`, or passes one that cannot
    /// block; never reads from a disk.
    ///
    /// This is the non-blocking fast path for async callers: on `None`, fall back to
    /// [`get_or_create_with`](Self::get_or_create_with) on a blocking thread. A revalidation that is due is made
    /// here (one `stat` of the path) only for a mapped file on a local filesystem: the mapping holds the file
    /// open, which keeps every directory entry of its path in memory, so the `stat` waits for neither a disk
    /// nor a network. A hit is counted in the stats.
    pub fn get_if_fresh(&self, path: &Path, revalidate: Revalidate) -> Option<Arc<MmapFile>> {
        self.get_if_fresh_where(path, revalidate, |_| true)
    }

    /// As [`get_if_fresh`](Self::get_if_fresh), for an entry that also satisfies `accept`; a refused entry is
    /// not counted as a hit.
    pub(crate) fn get_if_fresh_where(
        &self,
        path: &Path,
        revalidate: Revalidate,
        accept: impl FnOnce(&MmapFile) -> bool,
    ) -> Option<Arc<MmapFile>> {
        let file = self.files.get(&*key_of(path))?;
        if !accept(&file) {
            return None;
        }
        if is_due(&file, revalidate) {
            // The check is one stat, made here when it cannot wait on a disk or a network: the file is mapped
            // (its open description pins every directory entry the lookup walks, so none is read from disk)
            // on a local filesystem. Anything else, and any change, is left to the blocking caller.
            if !file.checks_inline() {
                return None;
            }
            match std::fs::metadata(path) {
                Ok(m) if unchanged(&file, &m, revalidate) => file.set_checked_at(clock()),
                _ => return None,
            }
        }
        self.counters.hits.fetch_add(1, Ordering::Relaxed);
        Some(file)
    }

    /// Caches `file` under `key`, replacing whatever was there.
    pub(crate) fn replace(&self, key: &Path, file: Arc<MmapFile>) {
        file.set_checked_at(clock());
        if keeps(&file) {
            self.files.insert(key_of(key).into_owned(), file);
        } else {
            self.files.remove(&*key_of(key));
        }
    }

    /// Drops the cached mapping of `path`, if any; returns whether there was one.
    pub fn remove(&self, path: &Path) -> bool {
        self.files.remove(&*key_of(path)).is_some()
    }

    /// The number of files cached.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether no file is cached.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Drops every cached mapping (slices still in use keep theirs alive until dropped).
    pub fn clear(&self) {
        self.files.clear();
    }

    /// The counters, and the entries and mapped bytes as of now (the latter two walk the cache).
    pub fn stats(&self) -> CacheStats {
        let (mut entries, mut mapped_bytes) = (0, 0);
        for (_, file) in self.files.iter() {
            entries += 1;
            if file.is_mapped() {
                mapped_bytes += file.size();
            }
        }
        CacheStats {
            hits: self.counters.hits.load(Ordering::Relaxed),
            misses: self.counters.misses.load(Ordering::Relaxed),
            stale: self.counters.stale.load(Ordering::Relaxed),
            evictions: self.counters.evictions.load(Ordering::Relaxed),
            entries,
            mapped_bytes,
        }
    }

    /// Opens `path` with this cache's settings without caching it; a file never revalidated is immutable
    /// (mapped even when the SIGBUS guard cannot protect the mapping).
    pub(crate) fn open_uncached(
        &self,
        path: &Path,
        revalidate: Revalidate,
    ) -> Result<MmapFile, MmapError> {
        MmapFile::open(
            path,
            self.settings.config,
            self.settings.small_file_threshold,
            revalidate == Revalidate::Never,
        )
    }

    /// Maps (or reads) an open `file` as `path` with this cache's settings, without caching it; immutable as
    /// in [`open_uncached`](Self::open_uncached).
    pub(crate) fn map_open_file(
        &self,
        path: &Path,
        file: std::fs::File,
        revalidate: Revalidate,
    ) -> Result<MmapFile, MmapError> {
        MmapFile::from_file(
            path,
            file,
            self.settings.config,
            self.settings.small_file_threshold,
            revalidate == Revalidate::Never,
        )
    }

    /// The mapping hints applied to new mappings.
    pub fn config(&self) -> MmapConfig {
        self.settings.config
    }

    /// The cache's revalidation policy.
    pub fn revalidation(&self) -> Revalidate {
        self.settings.revalidate
    }
}

impl fmt::Debug for MmapCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MmapCache")
            .field("settings", &self.settings)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Default for MmapCache {
    /// [`MmapCache::builder`]'s defaults: 1024 files, no byte budget.
    fn default() -> Self {
        Self::builder().build()
    }
}

/// Settings for an [`MmapCache`]; made by [`MmapCache::builder`].
#[derive(Debug, Clone)]
pub struct MmapCacheBuilder {
    settings: Settings,
}

impl MmapCacheBuilder {
    /// The most files kept at once. Default: 1024.
    pub fn max_files(mut self, max_files: usize) -> Self {
        self.settings.max_files = max_files;
        self
    }

    /// The most bytes of files kept at once (mapped or read). Default: no byte budget.
    pub fn max_bytes(mut self, max_bytes: u64) -> Self {
        self.settings.max_bytes = Some(max_bytes);
        self
    }

    /// Hints applied to every new mapping. Default: [`MmapConfig::default`] (no hints).
    pub fn config(mut self, config: MmapConfig) -> Self {
        self.settings.config = config;
        self
    }

    /// Files shorter than this are read into memory instead of mapped. Default: 64 KiB.
    pub fn small_file_threshold(mut self, bytes: u64) -> Self {
        self.settings.small_file_threshold = bytes;
        self
    }

    /// When cached mappings are compared with the disk. Default: [`Revalidate::Every`] one second.
    pub fn revalidate(mut self, revalidate: Revalidate) -> Self {
        self.settings.revalidate = revalidate;
        self
    }

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
        }
    }
}

/// Whether `cached` may keep being served as it is under `revalidate`: a mapping of a file that may change
/// needs the SIGBUS guard, registered and still active (one `sigaction` call, made only when a revalidation
/// is due anyway).
/// Whether `cached` may still be served for a path whose `stat` is `now`: the same regular file, not poisoned
/// (a fault it survived, such as an I/O error, makes a mapping stale even when the file looks the same), and
/// still safe to serve mapped (see [`still_safe`]): a file that may change, mapped while the SIGBUS guard was
/// there, is re-opened (and read on demand) once the guard is gone.
fn unchanged(cached: &MmapFile, now: &std::fs::Metadata, revalidate: Revalidate) -> bool {
    now.is_file()
        && !cached.is_poisoned()
        && FileIdentity::from_metadata(now) == *cached.identity()
        && still_safe(cached, revalidate)
}

fn still_safe(cached: &MmapFile, revalidate: Revalidate) -> bool {
    !cached.is_mapped()
        || revalidate == Revalidate::Never
        || (!cached.is_unprotected_mapping() && crate::mmap::file::protection_active())
}

/// Whether the cache keeps `file`: not one read on demand, which holds a descriptor (a cache of thousands of
/// them would run the process out of descriptors); each request for it opens it again instead.
fn keeps(file: &MmapFile) -> bool {
    !file.reads_on_demand()
}

/// The cache key of `path`: its bytes, normalised as `Path` compares paths (`a//b`, `a/./b` and `a/b/` are all
/// `a/b`), so that every spelling of a path finds one entry. Hashing bytes is a few nanoseconds where `Path`'s
/// own `Hash` walks the components; the walk happens here only for a path that needs it.
fn key_of(path: &Path) -> std::borrow::Cow<'_, [u8]> {
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
        let normal: std::path::PathBuf = path.components().collect();
        std::borrow::Cow::Owned(normal.into_os_string().into_encoded_bytes())
    } else {
        std::borrow::Cow::Borrowed(bytes)
    }
}

fn default_shards() -> usize {
    std::thread::available_parallelism().map_or(4, |n| n.get() * 4)
}

/// Each entry weighs 1 (count bound only) or `max(size, floor)` against a byte budget.
#[derive(Debug, Clone)]
struct Weigh {
    floor: Option<u64>,
}

impl Weighter<Vec<u8>, Arc<MmapFile>> for Weigh {
    fn weight(&self, _: &Vec<u8>, file: &Arc<MmapFile>) -> u64 {
        match self.floor {
            None => 1,
            Some(floor) => file.size().max(floor),
        }
    }
}

/// Counts evictions and drops evicted mappings after the shard lock is released (munmap is a syscall).
#[derive(Debug, Clone)]
struct Evictions(Arc<Counters>);

impl Lifecycle<Vec<u8>, Arc<MmapFile>> for Evictions {
    type RequestState = Vec<Arc<MmapFile>>;

    fn on_evict(&self, evicted: &mut Self::RequestState, _: Vec<u8>, file: Arc<MmapFile>) {
        self.0.evictions.fetch_add(1, Ordering::Relaxed);
        evicted.push(file);
    }
}

/// Nanoseconds since the first call, from the monotonic clock (a vDSO read, not a syscall).
fn clock() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn is_due(file: &MmapFile, revalidate: Revalidate) -> bool {
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
            clock().saturating_sub(file.checked_at()) >= interval
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::PathBuf;

    fn write(dir: &Path, name: &str, len: usize, seed: u8) -> PathBuf {
        let path = dir.join(name);
        fs::write(
            &path,
            (0..len)
                .map(|i| (i as u8).wrapping_add(seed))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        path
    }

    #[test]
    fn a_hit_reuses_the_mapping() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "a", 1 << 20, 0);
        let cache = MmapCache::new(10);
        let a = cache.get_or_create(&p).unwrap();
        let b = cache.get_or_create(&p).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let s = cache.stats();
        assert_eq!(
            (s.hits, s.misses, s.entries, s.mapped_bytes),
            (1, 1, 1, 1 << 20)
        );
    }

    #[test]
    fn the_file_count_bound_holds_and_evictions_are_counted() {
        let d = tempfile::tempdir().unwrap();
        let cache = MmapCache::new(4);
        for i in 0..20 {
            cache
                .get_or_create(write(d.path(), &format!("f{i}"), 100, 0))
                .unwrap();
        }
        assert!(cache.len() <= 4, "{} entries", cache.len());
        assert!(cache.stats().evictions >= 16);
    }

    #[test]
    fn the_byte_budget_holds() {
        let d = tempfile::tempdir().unwrap();
        let cache = MmapCache::builder()
            .max_files(100)
            .max_bytes(4 << 20)
            .build();
        for i in 0..10 {
            cache
                .get_or_create(write(d.path(), &format!("f{i}"), 1 << 20, 0))
                .unwrap();
        }
        let s = cache.stats();
        assert!(s.mapped_bytes <= 4 << 20, "{s:?}");
        assert!(s.entries >= 1 && s.evictions >= 6, "{s:?}");
        // A file larger than the whole budget is served, not kept.
        let huge = write(d.path(), "huge", 5 << 20, 0);
        assert_eq!(cache.get_or_create(&huge).unwrap().size(), 5 << 20);
        assert!(cache.stats().mapped_bytes <= 4 << 20);
    }

    #[test]
    fn eviction_leaves_live_slices_intact() {
        let d = tempfile::tempdir().unwrap();
        let cache = MmapCache::new(1);
        let first = write(d.path(), "first", 1 << 20, 7);
        let slice = cache
            .get_or_create(&first)
            .unwrap()
            .range(1000..2000)
            .unwrap();
        for i in 0..10 {
            cache
                .get_or_create(write(d.path(), &format!("o{i}"), 1 << 20, 0))
                .unwrap();
        }
        cache.clear();
        let expected: Vec<u8> = (1000..2000).map(|i| (i as u8).wrapping_add(7)).collect();
        assert_eq!(slice, expected);
    }

    #[test]
    fn every_spelling_of_a_path_finds_one_entry() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "f", 100, 0);
        let cache = MmapCache::new(10);
        let first = cache.get_or_create(&p).unwrap();
        let dir = d.path().display().to_string();
        for spelling in [
            format!("{dir}//f"),
            format!("{dir}/./f"),
            format!("{dir}/f/."),
        ] {
            let again = cache.get_if_fresh(Path::new(&spelling), Revalidate::Never);
            assert!(again.is_some_and(|f| Arc::ptr_eq(&f, &first)), "{spelling}");
        }
        assert!(cache.remove(Path::new(&format!("{dir}//./f"))));
        assert!(cache.is_empty());
        assert_eq!(key_of(Path::new("/a//b/./c/")), &b"/a/b/c"[..]);
        assert_eq!(key_of(Path::new("./a")), &b"./a"[..]);
        assert_eq!(key_of(Path::new("/")), &b"/"[..]);
    }

    #[test]
    fn a_due_mapping_on_a_local_filesystem_is_checked_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "f", 1 << 20, 1);
        let cache = MmapCache::builder().revalidate(Revalidate::Always).build();
        let file = cache.get_or_create(&p).unwrap();
        assert!(file.is_mapped());
        // procfs is not a local disk filesystem; the temp dir is (ext4, tmpfs, overlayfs... on any CI runner).
        assert!(!on_local(std::path::Path::new("/proc/self/status")));
        assert!(
            file.checks_inline(),
            "the temp dir is on a local filesystem"
        );
        let again = cache
            .get_if_fresh(&p, Revalidate::Always)
            .expect("checked inline, unchanged");
        assert!(Arc::ptr_eq(&file, &again));
        // Replaced: the inline check sees it and leaves the re-mapping to the blocking path.
        let tmp = write(d.path(), "f.tmp", 1 << 20, 2);
        fs::rename(&tmp, &p).unwrap();
        assert!(cache.get_if_fresh(&p, Revalidate::Always).is_none());
        assert_eq!(cache.get_or_create(&p).unwrap().range(0..1).unwrap()[0], 2);
        // Read into memory, not mapped: nothing holds the path's entries, so the check is left to the caller.
        let small = write(d.path(), "small", 100, 3);
        assert!(!cache.get_or_create(&small).unwrap().checks_inline());
        assert!(cache.get_if_fresh(&small, Revalidate::Always).is_none());
    }

    fn on_local(path: &Path) -> bool {
        crate::mmap::file::on_local_filesystem(&fs::File::open(path).unwrap())
    }

    #[test]
    fn a_file_replaced_by_rename_is_remapped() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "f", 1 << 20, 1);
        let cache = MmapCache::builder().revalidate(Revalidate::Always).build();
        let old = cache.get_or_create(&p).unwrap();
        let in_flight = old.bytes();
        let tmp = write(d.path(), "f.tmp", 2 << 20, 2);
        fs::rename(&tmp, &p).unwrap();
        let new = cache.get_or_create(&p).unwrap();
        assert_eq!(new.size(), 2 << 20);
        assert_ne!(new.etag(), old.etag());
        assert_eq!(new.range(0..1).unwrap()[0], 2);
        assert_eq!(
            in_flight[0], 1,
            "the old inode keeps serving in-flight responses"
        );
        assert_eq!(cache.stats().stale, 1);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_file_rewritten_in_place_is_remapped() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "f", 100_000, 1);
        let cache = MmapCache::builder().revalidate(Revalidate::Always).build();
        let old = cache.get_or_create(&p).unwrap();
        let old_etag = old.etag().to_string();
        drop(old); // the in-place rewrite below is exactly what the safety model forbids under a live slice
        let f = fs::File::options().write(true).open(&p).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, &[0xAB; 16], 0).unwrap();
        f.set_modified(std::time::SystemTime::now() + Duration::from_secs(3))
            .unwrap();
        let new = cache.get_or_create(&p).unwrap();
        assert_eq!(new.range(0..2).unwrap(), &[0xAB, 0xAB][..]);
        assert_ne!(new.etag(), old_etag);
    }

    #[test]
    fn a_deleted_file_leaves_the_cache_with_not_found() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "f", 100, 0);
        let cache = MmapCache::builder().revalidate(Revalidate::Always).build();
        cache.get_or_create(&p).unwrap();
        fs::remove_file(&p).unwrap();
        assert!(matches!(
            cache.get_or_create(&p),
            Err(MmapError::FileNotFound(_))
        ));
        assert!(cache.is_empty());
    }

    #[test]
    fn never_and_every_policies() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "f", 100, 0);
        let cache = MmapCache::builder().revalidate(Revalidate::Never).build();
        let old = cache.get_or_create(&p).unwrap();
        fs::rename(write(d.path(), "g", 200, 0), &p).unwrap();
        assert!(
            Arc::ptr_eq(&old, &cache.get_or_create(&p).unwrap()),
            "never re-checks"
        );
        let every = Revalidate::Every(Duration::from_millis(50));
        assert!(cache.get_if_fresh(&p, every).is_some(), "checked just now");
        std::thread::sleep(Duration::from_millis(60));
        assert!(cache.get_if_fresh(&p, every).is_none(), "due for a check");
        assert_eq!(cache.get_or_create_with(&p, every).unwrap().size(), 200);
        assert!(cache.get_if_fresh(&p, every).is_some());
        assert!(cache.get_if_fresh(&p, Revalidate::Always).is_none());
    }

    #[test]
    fn concurrent_misses_open_the_file_once() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "f", 8 << 20, 0);
        let cache = Arc::new(MmapCache::builder().revalidate(Revalidate::Never).build());
        let barrier = Arc::new(std::sync::Barrier::new(16));
        let handles: Vec<_> = (0..16)
            .map(|_| {
                let (cache, barrier, p) = (Arc::clone(&cache), Arc::clone(&barrier), p.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    cache.get_or_create(&p).unwrap()
                })
            })
            .collect();
        let files: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(files.iter().all(|f| Arc::ptr_eq(f, &files[0])));
        let s = cache.stats();
        assert_eq!((s.misses, s.hits), (1, 15));
    }

    #[test]
    fn errors_are_not_cached() {
        let d = tempfile::tempdir().unwrap();
        let cache = MmapCache::new(10);
        let p = d.path().join("later");
        assert!(matches!(
            cache.get_or_create(&p),
            Err(MmapError::FileNotFound(_))
        ));
        assert!(matches!(
            cache.get_or_create(d.path()),
            Err(MmapError::IsADirectory(_))
        ));
        assert!(cache.is_empty());
        write(d.path(), "later", 10, 0);
        assert_eq!(cache.get_or_create(&p).unwrap().size(), 10);
    }

    #[test]
    fn settings_reach_new_mappings() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "f", 1000, 0);
        let cache = MmapCache::builder()
            .small_file_threshold(0)
            .config(MmapConfig::random())
            .build();
        assert!(cache.get_or_create(&p).unwrap().is_mapped());
        assert_eq!(cache.config(), MmapConfig::random());
        assert_eq!(cache.revalidation(), Revalidate::default());
    }
}
