//! [`MmapCacheBuilder`]: the settings of an [`MmapCache`]; it builds the store and nothing else.

use std::sync::Arc;

use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, OptionsBuilder};

use super::store::{Counters, Evictions, Weigh};
use super::{MmapCache, Revalidate};
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

/// Settings for an [`MmapCache`]; made by [`MmapCache::builder`].
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
    pub fn revalidation(mut self, revalidation: Revalidate) -> Self {
        self.settings.revalidation = revalidation;
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

fn default_shards() -> usize {
    std::thread::available_parallelism().map_or(4, |n| n.get() * 4)
}
