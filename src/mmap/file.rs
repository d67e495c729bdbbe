//! [`MmapFile`]: one file's bytes, mapped (or read, when small) once and handed out as zero-copy `Bytes`.

use std::fs::{File, Metadata, OpenOptions};
use std::io::Read;
use std::ops::Range;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::SystemTime;

use bytes::Bytes;
use memmap2::{Mmap, MmapOptions};

use super::config::MmapConfig;
use super::identity::{FileIdentity, FileValidators};
use crate::MmapError;

/// Files smaller than this many bytes are read into memory instead of mapped, unless configured otherwise.
///
/// Mapping costs a few microseconds and a VMA; for a handful of pages a copy is cheaper and cannot fault.
pub const DEFAULT_SMALL_FILE_THRESHOLD: u64 = 64 * 1024;

/// A file's bytes, memory-mapped and shared, with the identity and validators of the file they came from.
///
/// The whole content lives in one [`Bytes`]: for a mapped file its owner is the mapping itself, so
/// [`bytes`](Self::bytes), [`range`](Self::range) and [`multi_range`](Self::multi_range) are O(1) reference-counted
/// slices, never copies, and the mapping stays alive until the last slice is dropped, even after the
/// `MmapFile` and any cache holding it are gone. Empty files are never mapped; files below the small-file
/// threshold ([`DEFAULT_SMALL_FILE_THRESHOLD`] unless the cache sets another) are read once into memory. The API
/// is the same in all three cases.
///
/// Read the crate's safety model (the `mmap` section of the crate docs) for what happens when another
/// process changes a mapped file.
///
/// # Examples
///
/// ```
/// use mmap_serve::MmapFile;
/// # let d = tempfile::tempdir()?; let path = d.path().join("w.bin");
/// # std::fs::write(&path, (0..200_000u32).map(|i| i as u8).collect::<Vec<_>>())?;
/// let f = MmapFile::new(&path)?;
/// assert_eq!(f.size(), 200_000);
/// assert!(f.is_mapped());
/// let part = f.range(1000..1016)?;
/// assert_eq!(part[0], (1000 % 256) as u8);
/// let parts = f.multi_range(&[0..4, 100_000..100_004])?;
/// assert_eq!(parts.len(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct MmapFile {
    path: PathBuf,
    data: Bytes,
    mapped: bool,
    /// The mapping behind `data`, for the poison flag and identity re-checks (None for heap files).
    mapping: Option<Arc<Mapping>>,
    identity: FileIdentity,
    validators: FileValidators,
    /// When the identity was last confirmed against the disk, in the cache clock's nanoseconds.
    checked_at: AtomicU64,
    /// The confinement (a resolver's root, as a tag; 0 for none) this file was last verified beneath.
    confined_to: AtomicU64,
}

impl MmapFile {
    /// Opens and maps the file at `path` with the default [`MmapConfig`].
    ///
    /// # Errors
    ///
    /// [`MmapError::FileNotFound`], [`MmapError::PermissionDenied`], [`MmapError::IsADirectory`],
    /// [`MmapError::NotAFile`] for FIFOs, sockets and devices (never opened in a way that could block), and
    /// [`MmapError::Exhausted`] or [`MmapError::Io`] when the system refuses to open or map it.
    pub fn new(path: impl AsRef<Path>) -> Result<Self, MmapError> {
        Self::with_config(path, MmapConfig::default())
    }

    /// Opens and maps the file at `path`, applying `config`'s hints to the mapping.
    ///
    /// # Errors
    ///
    /// As [`MmapFile::new`].
    pub fn with_config(path: impl AsRef<Path>, config: MmapConfig) -> Result<Self, MmapError> {
        Self::open(path.as_ref(), config, DEFAULT_SMALL_FILE_THRESHOLD)
    }

    /// Opens `path`; files shorter than `small_file_threshold` bytes are read instead of mapped.
    ///
    /// Blocking: callers on an async runtime run this in `spawn_blocking`.
    pub(crate) fn open(
        path: &Path,
        config: MmapConfig,
        small_file_threshold: u64,
    ) -> Result<Self, MmapError> {
        let err = |e| MmapError::from_io(path, e);
        // Look before opening: opening a device can have side effects, and a FIFO can block.
        let metadata = std::fs::metadata(path).map_err(err)?;
        check_regular(path, &metadata)?;
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .map_err(err)?;
        Self::from_file(path, file, config, small_file_threshold)
    }

    /// Maps (or reads) `file`, already open for reading, as the file at `path`.
    ///
    /// Checks the descriptor itself: the path may have been swapped for something else since it was looked at.
    pub(crate) fn from_file(
        path: &Path,
        file: File,
        config: MmapConfig,
        small_file_threshold: u64,
    ) -> Result<Self, MmapError> {
        let err = |e| MmapError::from_io(path, e);
        let metadata = file.metadata().map_err(err)?;
        check_regular(path, &metadata)?;
        let identity = FileIdentity::from_metadata(&metadata);
        let len = usize::try_from(identity.len()).map_err(|_| MmapError::Io {
            path: path.display().to_string(),
            source: std::io::Error::other("file too large to map on this platform"),
        })?;
        let mut mapping_slot = None;
        let (data, mapped) = if len == 0 {
            (Bytes::new(), false)
        } else if identity.len() < small_file_threshold {
            (read_exactly(path, file, len)?, false)
        } else {
            let (bytes, mapping) = map(path, file, len, config)?;
            mapping_slot = Some(mapping);
            (bytes, true)
        };
        Ok(Self {
            path: path.to_path_buf(),
            data,
            mapped,
            mapping: mapping_slot,
            validators: FileValidators::new(&identity, SystemTime::now()),
            identity,
            checked_at: AtomicU64::new(0),
            confined_to: AtomicU64::new(0),
        })
    }

    /// The file's length in bytes, as it was when opened.
    pub fn size(&self) -> u64 {
        self.data.len() as u64
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The whole file as zero-copy [`Bytes`].
    pub fn bytes(&self) -> Bytes {
        self.data.clone()
    }

    /// The bytes in `range` (half-open: `start..end`), zero-copy.
    ///
    /// # Errors
    ///
    /// [`MmapError::InvalidRange`] when `start > end` or `end > size()`.
    pub fn range(&self, range: Range<u64>) -> Result<Bytes, MmapError> {
        let Range { start, end } = range;
        if start > end {
            return Err(MmapError::InvalidRange(format!(
                "range {start}..{end} is reversed"
            )));
        }
        if end > self.size() {
            return Err(MmapError::InvalidRange(format!(
                "range {start}..{end} ends past the file's {} bytes",
                self.size()
            )));
        }
        // Both bounds are <= size(), which came from a usize.
        Ok(self.data.slice(start as usize..end as usize))
    }

    /// Several ranges at once, each as [`range`](Self::range) would return it, in the order given.
    ///
    /// # Errors
    ///
    /// [`MmapError::InvalidRange`] if any range is invalid; no slice is returned then.
    pub fn multi_range(&self, ranges: &[Range<u64>]) -> Result<Vec<Bytes>, MmapError> {
        ranges.iter().map(|r| self.range(r.clone())).collect()
    }

    /// The path this file was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the bytes come from a memory map (false for empty and small files, which live on the heap).
    pub fn is_mapped(&self) -> bool {
        self.mapped
    }

    /// Whether the mapped bytes can no longer be trusted: the file was truncated under the mapping (the pages
    /// past its new end now read as zeros) or a response found it changed. A poisoned file is never served
    /// again by the cache; files read into memory are never poisoned.
    pub fn is_poisoned(&self) -> bool {
        self.mapping.as_ref().is_some_and(|m| m.is_poisoned())
    }

    /// Whether the mapped bytes are still the file's (one `stat` of the path; always true for files read into
    /// memory, whose bytes are a private copy). Poisons the mapping when they are not.
    pub(crate) fn still_matches(&self) -> bool {
        self.mapping
            .as_ref()
            .is_none_or(|m| !m.is_poisoned() && m.still_matches(&self.path, &self.identity))
    }

    /// Which file this is: device, inode, length and timestamps when it was opened.
    pub fn identity(&self) -> &FileIdentity {
        &self.identity
    }

    /// The modification time of the file when it was opened.
    pub fn modified(&self) -> SystemTime {
        self.identity.modified()
    }

    /// The strong ETag, quoted, as sent in the `ETag` header.
    pub fn etag(&self) -> &str {
        // Built from ASCII in `FileIdentity::etag`.
        std::str::from_utf8(&self.validators.etag).unwrap_or_default()
    }

    /// The `Last-Modified` header value (IMF-fixdate).
    pub fn last_modified(&self) -> &str {
        std::str::from_utf8(&self.validators.last_modified).unwrap_or_default()
    }
    pub(crate) fn validators(&self) -> &FileValidators {
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
}

fn check_regular(path: &Path, metadata: &Metadata) -> Result<(), MmapError> {
    if metadata.is_dir() {
        Err(MmapError::IsADirectory(path.display().to_string()))
    } else if !metadata.is_file() {
        Err(MmapError::NotAFile(path.display().to_string()))
    } else {
        Ok(())
    }
}

/// Reads a small file whole; a length that disagrees with `fstat` means it changed while being read.
fn read_exactly(path: &Path, file: File, len: usize) -> Result<Bytes, MmapError> {
    let mut buf = Vec::with_capacity(len + 1);
    file.take(len as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| MmapError::from_io(path, e))?;
    if buf.len() != len {
        return Err(MmapError::Io {
            path: path.display().to_string(),
            source: std::io::Error::other("file changed size while being read"),
        });
    }
    Ok(Bytes::from(buf))
}

/// A mapping and what guards it. Fields drop in order: the registration goes before the map is unmapped.
#[derive(Debug)]
pub(crate) struct Mapping {
    #[cfg(target_os = "linux")]
    registration: Option<super::guard::Registration>,
    map: Mmap,
    /// Set when a response found the file changed under the mapping.
    changed: AtomicBool,
}

impl Mapping {
    /// Whether the mapping's bytes can no longer be trusted: a truncation was caught (the tail now reads as
    /// zeros) or a response saw the file change.
    pub(crate) fn is_poisoned(&self) -> bool {
        #[cfg(target_os = "linux")]
        if self.registration.as_ref().is_some_and(|r| r.is_poisoned()) {
            return true;
        }
        self.changed.load(Ordering::Relaxed)
    }

    /// Whether the mapped inode still has `identity`'s content, judged by one `stat` of `path` (no descriptor is
    /// kept per mapping: a cache of thousands of files must not hold thousands of them). When `path` now names
    /// another file, or none, the mapped inode was replaced or unlinked — the supported deploy — and its bytes
    /// are intact; when it names the same inode with another length or times, it was rewritten in place or
    /// truncated. Marks the mapping poisoned in that case.
    pub(crate) fn still_matches(&self, path: &Path, identity: &FileIdentity) -> bool {
        use std::os::unix::fs::MetadataExt;
        let same = match std::fs::metadata(path) {
            Ok(m) if (m.dev(), m.ino()) == (identity.dev(), identity.ino()) => {
                identity.still_describes(&m)
            }
            _ => true,
        };
        if !same {
            self.changed.store(true, Ordering::Relaxed);
        }
        same
    }
}

/// The `Bytes` owner: every slice of a mapped file holds the mapping through this.
struct SharedMapping(Arc<Mapping>);

impl AsRef<[u8]> for SharedMapping {
    fn as_ref(&self) -> &[u8] {
        &self.0.map
    }
}

fn map(
    path: &Path,
    file: File,
    len: usize,
    config: MmapConfig,
) -> Result<(Bytes, Arc<Mapping>), MmapError> {
    let mut options = MmapOptions::new();
    options.len(len);
    if config.populate {
        options.populate();
    }
    // SAFETY: (1) `file` is open read-only and the map is read-only, so nothing in this process writes through
    // it. (2) The map moves at once into a `Mapping` reachable only through an `Arc` owned by the `Bytes` made
    // below and by the `MmapFile`: no slice can outlive the mapping, and no raw pointer or `'static` reference
    // leaves this module. (3) `len` is the length `fstat` reported for this descriptor just before, so the
    // mapping does not extend past the end of the file as it was opened. (4) A file truncated while a slice is
    // alive raises SIGBUS on the next touch of a page past its new end: on Linux the mapping is registered with
    // the guard (mmap/guard.rs) before any byte is read, which turns that into zero pages and a poisoned flag
    // the body checks. (5) What remains, a rewrite in place, is the contract stated in the crate's safety model;
    // responses re-check the file's identity before their last bytes, and the cache re-maps changed files.
    let map = unsafe { options.map(&file) }.map_err(|e| MmapError::from_io(path, e))?;
    // SAFETY: the range is exactly `map`'s, a read-only mapping this function owns; the registration is stored
    // in the same `Mapping`, declared before `map`, so it is dropped (unregistered) before the map is unmapped;
    // replacing pages after a fault with zero pages is what this crate wants (the body then sees the poison).
    #[cfg(target_os = "linux")]
    let registration = unsafe { super::guard::Registration::new(map.as_ptr(), map.len()) };
    #[cfg(target_os = "linux")]
    if registration.is_none() {
        warn_unprotected();
    }
    for advice in config.advice() {
        // Hints are advice: an unsupported one (EINVAL on file-backed huge pages, say) changes nothing.
        let _ = map.advise(advice);
    }
    let mapping = Arc::new(Mapping {
        #[cfg(target_os = "linux")]
        registration,
        map,
        changed: AtomicBool::new(false),
    });
    Ok((
        Bytes::from_owner(SharedMapping(Arc::clone(&mapping))),
        mapping,
    ))
}

/// Says once per process that a mapping is not protected against truncation, and why.
#[cfg(target_os = "linux")]
fn warn_unprotected() {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        tracing::warn!(
            protection = %super::guard::protection(),
            "mmap-serve: a mapping is not protected against truncation (SIGBUS)"
        );
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    fn file_with(len: usize) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.bin");
        fs::write(&path, pattern(len)).unwrap();
        (dir, path)
    }

    #[test]
    fn large_files_are_mapped_and_small_ones_read() {
        let (_d, big) = file_with(1 << 20);
        let f = MmapFile::new(&big).unwrap();
        assert!(f.is_mapped());
        assert_eq!(f.bytes(), pattern(1 << 20));
        let (_d, small) = file_with(100);
        let f = MmapFile::new(&small).unwrap();
        assert!(!f.is_mapped());
        assert_eq!(f.bytes(), pattern(100));
        let f = MmapFile::open(&small, MmapConfig::default(), 0).unwrap();
        assert!(
            f.is_mapped(),
            "threshold 0 maps everything that is not empty"
        );
    }

    #[test]
    fn the_threshold_is_exclusive() {
        let (_d, path) = file_with(DEFAULT_SMALL_FILE_THRESHOLD as usize);
        assert!(MmapFile::new(&path).unwrap().is_mapped());
        let (_d, path) = file_with(DEFAULT_SMALL_FILE_THRESHOLD as usize - 1);
        assert!(!MmapFile::new(&path).unwrap().is_mapped());
    }

    #[test]
    fn empty_files_are_not_mapped() {
        let (_d, path) = file_with(0);
        let f = MmapFile::open(&path, MmapConfig::default(), 0).unwrap();
        assert!(f.is_empty() && !f.is_mapped());
        assert_eq!(f.size(), 0);
        assert!(f.bytes().is_empty());
        assert!(f.range(0..0).unwrap().is_empty());
        assert!(matches!(f.range(0..1), Err(MmapError::InvalidRange(_))));
    }

    #[test]
    fn ranges_at_the_edges() {
        let (_d, path) = file_with(100_000);
        let f = MmapFile::new(&path).unwrap();
        assert_eq!(f.range(0..1).unwrap(), pattern(1));
        assert_eq!(
            f.range(99_999..100_000).unwrap(),
            &pattern(100_000)[99_999..]
        );
        assert_eq!(f.range(0..100_000).unwrap().len(), 100_000);
        assert!(f.range(100_000..100_000).unwrap().is_empty());
        assert!(f.range(50..50).unwrap().is_empty());
    }

    #[test]
    #[allow(
        clippy::reversed_empty_ranges,
        reason = "reversed ranges are the input under test"
    )]
    fn reversed_and_overflowing_ranges_are_invalid() {
        let (_d, path) = file_with(100_000);
        let f = MmapFile::new(&path).unwrap();
        for bad in [
            10..5,
            0..100_001,
            100_000..100_001,
            99_999..u64::MAX,
            u64::MAX..u64::MAX,
            200_000..300_000,
        ] {
            assert!(
                matches!(f.range(bad.clone()), Err(MmapError::InvalidRange(_))),
                "{bad:?} should be invalid"
            );
        }
        let err = f.range(10..5).unwrap_err();
        assert_eq!(err.to_string(), "invalid range: range 10..5 is reversed");
    }

    #[test]
    fn multi_range_keeps_order_and_fails_whole() {
        let (_d, path) = file_with(200_000);
        let f = MmapFile::new(&path).unwrap();
        let all = pattern(200_000);
        let parts = f
            .multi_range(&[102_400..103_424, 0..1024, 10_240..11_264])
            .unwrap();
        assert_eq!(parts[0], &all[102_400..103_424]);
        assert_eq!(parts[1], &all[0..1024]);
        assert_eq!(parts[2], &all[10_240..11_264]);
        assert!(f.multi_range(&[0..10, 5..300_000]).is_err());
        assert!(f.multi_range(&[]).unwrap().is_empty());
    }

    #[test]
    fn slices_outlive_the_file_handle() {
        let (_d, path) = file_with(1 << 20);
        let slice = {
            let f = MmapFile::new(&path).unwrap();
            f.range(4096..8192).unwrap()
        };
        assert_eq!(slice, &pattern(1 << 20)[4096..8192]);
    }

    #[test]
    fn slices_point_into_the_mapping_without_copying() {
        let (_d, path) = file_with(1 << 20);
        let f = MmapFile::new(&path).unwrap();
        let whole = f.bytes();
        let part = f.range(4096..8192).unwrap();
        assert_eq!(whole.as_ptr(), f.bytes().as_ptr());
        assert_eq!(part.as_ptr(), whole[4096..].as_ptr());
    }

    #[test]
    fn directories_fifos_and_missing_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            MmapFile::new(dir.path()),
            Err(MmapError::IsADirectory(_))
        ));
        assert!(matches!(
            MmapFile::new(dir.path().join("nope")),
            Err(MmapError::FileNotFound(_))
        ));
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
        assert_eq!(rc, 0);
        assert!(matches!(MmapFile::new(&fifo), Err(MmapError::NotAFile(_))));
        assert!(matches!(
            MmapFile::new("/dev/null"),
            Err(MmapError::NotAFile(_))
        ));
    }

    #[test]
    fn every_config_maps_and_reads_the_same_bytes() {
        let (_d, path) = file_with(3 << 20);
        for config in [
            MmapConfig::default(),
            MmapConfig::sequential(),
            MmapConfig::random(),
            MmapConfig::hugepages(),
            MmapConfig {
                use_hugepages: true,
                sequential_access: true,
                random_access: true,
                populate: true,
            },
        ] {
            let f = MmapFile::with_config(&path, config).unwrap();
            assert!(f.is_mapped());
            assert_eq!(
                f.range(3_000_000..3_000_100).unwrap(),
                &pattern(3 << 20)[3_000_000..3_000_100]
            );
        }
    }

    #[test]
    fn validators_are_exposed() {
        let (_d, path) = file_with(10);
        let f = MmapFile::new(&path).unwrap();
        assert_eq!(f.etag(), f.identity().etag());
        assert!(f.last_modified().ends_with(" GMT"));
        assert_eq!(f.identity().len(), 10);
        assert_eq!(f.path(), path);
    }
}
