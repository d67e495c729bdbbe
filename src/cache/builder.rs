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
    pub(super) revalidation: Revalidate,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_files: 1024,
            max_bytes: None,
            config: MmapConfig::default(),
            small_file_threshold: DEFAULT_SMALL_FILE_THRESHOLD,
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

    /// Files shorter than this are read into memory instead of mapped. Default: 64 KiB.
    pub fn small_file_threshold(mut self, bytes: u64) -> Self {
        self.settings.small_file_threshold = bytes;
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
