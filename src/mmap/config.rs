//! [`MmapConfig`]: access-pattern hints applied to each new mapping; plain data, it maps nothing itself.

/// How a mapping is expected to be read, turned into `madvise(2)` hints and `MAP_POPULATE`.
///
/// Hints are advice: where the platform or the file system does not support one (for example transparent huge
/// pages for page-cache files on most kernels), it is silently ignored and the mapping works as usual. Files
/// that are not mapped (empty, or below the cache's small-file threshold) ignore the configuration.
///
/// When both `sequential_access` and `random_access` are set, `random_access` wins: it is the hint that
/// protects the page cache from useless read-ahead.
///
/// # Examples
///
/// ```
/// use mmap_serve::MmapConfig;
/// let streaming = MmapConfig::sequential();
/// assert!(streaming.sequential_access && !streaming.random_access);
/// let custom = MmapConfig { use_hugepages: true, sequential_access: false, random_access: true, populate: true };
/// assert_ne!(custom, MmapConfig::default());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct MmapConfig {
    /// Ask for transparent huge pages (`MADV_HUGEPAGE`); useful for multi-megabyte files read at random.
    pub use_hugepages: bool,
    /// Expect front-to-back reads (`MADV_SEQUENTIAL`): aggressive read-ahead, pages dropped early.
    pub sequential_access: bool,
    /// Expect scattered reads (`MADV_RANDOM`): no read-ahead beyond the touched page.
    pub random_access: bool,
    /// Fault the whole file in when mapping it (`MAP_POPULATE`): slower open, no page faults afterwards.
    pub populate: bool,
}

impl MmapConfig {
    /// Hints for streaming whole files (downloads, video).
    pub fn sequential() -> Self {
        Self {
            sequential_access: true,
            ..Self::default()
        }
    }

    /// Hints for scattered reads (tensor slicing, Range requests into large files).
    pub fn random() -> Self {
        Self {
            random_access: true,
            ..Self::default()
        }
    }

    /// Random access with transparent huge pages, for large files read all over.
    pub fn hugepages() -> Self {
        Self {
            use_hugepages: true,
            random_access: true,
            ..Self::default()
        }
    }

    /// The `madvise` hints this configuration asks for, in the order they are applied.
    pub(crate) fn advice(&self) -> impl Iterator<Item = memmap2::Advice> {
        let pattern = if self.random_access {
            Some(memmap2::Advice::Random)
        } else if self.sequential_access {
            Some(memmap2::Advice::Sequential)
        } else {
            None
        };
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let huge = self.use_hugepages.then_some(memmap2::Advice::HugePage);
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let huge = None;
        pattern.into_iter().chain(huge)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memmap2::Advice;

    #[test]
    fn default_asks_for_nothing() {
        assert_eq!(MmapConfig::default().advice().count(), 0);
        assert!(!MmapConfig::default().populate);
    }

    #[test]
    fn named_constructors_set_their_hint() {
        assert!(matches!(
            MmapConfig::sequential().advice().collect::<Vec<_>>()[..],
            [Advice::Sequential]
        ));
        assert!(matches!(
            MmapConfig::random().advice().collect::<Vec<_>>()[..],
            [Advice::Random]
        ));
        assert!(matches!(
            MmapConfig::hugepages().advice().collect::<Vec<_>>()[..],
            [Advice::Random, Advice::HugePage]
        ));
    }

    #[test]
    fn random_wins_over_sequential() {
        let both = MmapConfig {
            sequential_access: true,
            random_access: true,
            ..MmapConfig::default()
        };
        assert!(matches!(
            both.advice().collect::<Vec<_>>()[..],
            [Advice::Random]
        ));
    }
}
