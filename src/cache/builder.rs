//! [`MmapCacheBuilder`]: the settings of an [`MmapCache`](crate::MmapCache), gathered; building the cache
//! from them is the cache's own business.

use super::revalidate::Revalidate;
use crate::mmap::config::MmapConfig;
use crate::mmap::file::DEFAULT_SMALL_FILE_THRESHOLD;

/// What a cache is built with.
#[derive(Debug, Clone, Copy)]
pub(super) struct Settings {
    pub(super) max_files: usize,
    pub(super) max_bytes: Option<u64>,
    pub(super) config: MmapConfig,
    pub(super) small_file_threshold: u64,
    pub(super) heap_bytes: u64,
    pub(super) revalidation: Revalidate,
}

/// The default of [`MmapCacheBuilder::heap_bytes`]: 4 MiB.
pub const DEFAULT_HEAP_BYTES: u64 = 4 << 20;

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_files: 1024,
            max_bytes: None,
            config: MmapConfig::default(),
            small_file_threshold: DEFAULT_SMALL_FILE_THRESHOLD,
            heap_bytes: DEFAULT_HEAP_BYTES,
            revalidation: Revalidate::default(),
        }
    }
}

/// Settings for an [`MmapCache`](crate::MmapCache); made by
/// [`MmapCache::builder`](crate::MmapCache::builder).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mmap_serve::{MmapCache, MmapConfig, Revalidate};
/// let cache = MmapCache::builder()
///     .max_files(10_000)
///     .max_bytes(64 << 30)
///     .config(MmapConfig::random())
///     .revalidation(Revalidate::Every(Duration::from_millis(250)))
///     .build();
/// assert!(cache.is_empty());
/// assert_eq!(cache.revalidation(), Revalidate::Every(Duration::from_millis(250)));
/// ```
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct MmapCacheBuilder {
    pub(super) settings: Settings,
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

    /// Files shorter than this are read into memory instead of mapped, while the heap budget
    /// ([`heap_bytes`](Self::heap_bytes)) has room. Default: 64 KiB.
    pub fn small_file_threshold(mut self, bytes: u64) -> Self {
        self.settings.small_file_threshold = bytes;
        self
    }

    /// The most bytes of small files held on the heap at once by this cache's files, cached or still being
    /// sent; past it, small files are mapped like larger ones (their bytes stay in the page cache, not in the
    /// process's anonymous memory). Default: [`DEFAULT_HEAP_BYTES`], 4 MiB.
    ///
    /// A file on the heap is the fastest to serve (no system call per response: its private copy cannot
    /// change under a response), and it is where a cache's memory goes: without a bound, 16,384 cached files
    /// of 57 KB held 943 MiB.
    ///
    /// ```
    /// use mmap_serve::MmapCache;
    /// let dir = tempfile::tempdir()?;
    /// std::fs::write(dir.path().join("a.txt"), b"hello")?;
    /// let cache = MmapCache::builder().heap_bytes(0).build();
    /// let file = cache.get_or_create(dir.path().join("a.txt"))?;
    /// assert!(file.is_mapped(), "no room on the heap: mapped");
    /// assert_eq!(cache.stats().heap_bytes, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn heap_bytes(mut self, bytes: u64) -> Self {
        self.settings.heap_bytes = bytes;
        self
    }

    /// When cached mappings are compared with the disk, or watched for changes. Default:
    /// [`Revalidate::default`], on Linux [`Revalidate::Watch`] with a one-second fallback, elsewhere
    /// [`Revalidate::Every`] one second.
    pub fn revalidation(mut self, revalidation: Revalidate) -> Self {
        self.settings.revalidation = revalidation;
        self
    }
}
