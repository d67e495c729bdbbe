//! [`MmapFile`]: one file's bytes, mapped (or read, when small) once and handed out as zero-copy `Bytes`; no
//! HTTP and no cache policy here, and no `unsafe` (the mapping itself is made in `map.rs`).

use std::any::Any;
use std::fs::{File, Metadata, OpenOptions};
use std::io::Read;
use std::ops::Range;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use super::config::MmapConfig;
use super::descriptors::{self, Kept};
use super::heap::{HeapBudget, HeapShare};
use super::identity::FileIdentity;
use super::map::{Mapping, map};
use super::pread::PreadFile;
use super::residency::Residency;
use super::writers::{Writers, metadata_and_writers};
use crate::MmapError;
use bytes::Bytes;

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
/// threshold ([`DEFAULT_SMALL_FILE_THRESHOLD`] unless the cache sets another) are read once into memory, within
/// the cache's heap budget ([`MmapCacheBuilder::heap_bytes`](crate::MmapCacheBuilder::heap_bytes)), and mapped
/// past it. The API is the same in all three cases.
///
/// A file that may change is mapped only while the process's SIGBUS guard can protect the mapping (see
/// [`sigbus_protection_active`](crate::sigbus_protection_active)); when it cannot, the file is kept open and
/// read on demand with `pread(2)` instead ([`reads_on_demand`](Self::reads_on_demand)): slower, a copy per
/// read, but a truncation can then only shorten a response, never kill the process.
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
    content: Content,
    /// The mapping behind a `Content::Memory` that is mapped, for the poison flag (None for heap files).
    mapping: Option<Arc<Mapping>>,
    /// Set when a response found the file changed under it, or from the start when it was opened while being
    /// written: it is never served again.
    changed: AtomicBool,
    /// Another process had the file open for writing when its identity was taken.
    opened_while_written: bool,
    identity: FileIdentity,
    /// Mapped from a local filesystem: a revalidation `stat` of the path never waits for a disk or a network.
    checks_inline: bool,
    /// The mapped file's descriptor, kept (within the process's share: `descriptors.rs`) for the `fstat` of a
    /// body's last check; None for heap and immutable files, and past the share.
    descriptor: Option<Kept>,
    /// The share of the cache's heap budget a small file read into memory takes, given back when it is dropped.
    #[allow(dead_code, reason = "held for its drop")]
    heap_share: Option<HeapShare>,
    /// What must live exactly as long as this file: the cache's watch on its inode (see [`MmapFile::attach`]).
    attached: OnceLock<Attachment>,
}

/// Something kept alive by an [`MmapFile`], never looked into here: the cache's watch on the file's inode,
/// which must outlive the cache's entry for as long as any response still sends the file.
pub(crate) struct Attachment(
    #[allow(dead_code, reason = "held for its drop")] Box<dyn Any + Send + Sync>,
);

impl std::fmt::Debug for Attachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Attachment")
    }
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
        Self::open(
            path.as_ref(),
            config,
            DEFAULT_SMALL_FILE_THRESHOLD,
            None,
            false,
        )
    }

    /// Opens `path`; files shorter than `small_file_threshold` bytes are read instead of mapped, while `heap`
    /// (the cache's budget for such copies; none: no bound) has room for them. An
    /// `immutable` file (content-addressed: never rewritten or truncated) is mapped even when the mapping
    /// cannot be protected against truncation; any other is then read on demand.
    ///
    /// Blocking: callers on an async runtime run this in `spawn_blocking`.
    pub(crate) fn open(
        path: &Path,
        config: MmapConfig,
        small_file_threshold: u64,
        heap: Option<&Arc<HeapBudget>>,
        immutable: bool,
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
        Self::from_file(path, file, config, small_file_threshold, heap, immutable)
    }

    /// Maps (or reads) `file`, already open for reading, as the file at `path`.
    ///
    /// Checks the descriptor itself: the path may have been swapped for something else since it was looked at.
    pub(crate) fn from_file(
        path: &Path,
        file: File,
        config: MmapConfig,
        small_file_threshold: u64,
        heap: Option<&Arc<HeapBudget>>,
        immutable: bool,
    ) -> Result<Self, MmapError> {
        let err = |e| MmapError::from_io(path, e);
        // The identity is taken while the kernel confirms that no process has the file open for writing.
        let (metadata, writers) = metadata_and_writers(&file).map_err(err)?;
        check_regular(path, &metadata)?;
        let identity = FileIdentity::from_metadata(&metadata);
        let len = usize::try_from(identity.len()).map_err(|_| MmapError::Io {
            path: path.display().to_string(),
            source: std::io::Error::other("file too large to map on this platform"),
        })?;
        // Being written: no version of it is final yet. Its bodies end with an error (it is poisoned from the
        // start, and mapped even when small, so that every body of it is watched); an empty one, whose body
        // has no frame to end that way, is refused with 503 and Retry-After.
        let being_written = writers == Writers::Present;
        if being_written && len == 0 {
            return Err(MmapError::BeingWritten(path.display().to_string()));
        }
        let mut mapping = None;
        let mut checks_inline = false;
        let mut descriptor = None;
        let mut heap_share = None;
        let small = len > 0 && identity.len() < small_file_threshold && !being_written;
        let on_heap = small
            && match heap {
                None => true,
                Some(budget) => {
                    heap_share = budget.reserve(identity.len());
                    heap_share.is_some()
                }
            };
        let content = if len == 0 {
            Content::Memory(Bytes::new())
        } else if on_heap {
            Content::Memory(read_exactly(path, file, len)?)
        } else {
            match map(path, &file, len, config, immutable)? {
                Some((bytes, mapped)) => {
                    mapping = Some(mapped);
                    checks_inline = on_local_filesystem(&file);
                    if !immutable {
                        // For the bodies' last check (`still_matches`), within the process's share.
                        descriptor = descriptors::keep(file);
                    }
                    Content::Memory(bytes)
                }
                None => Content::Pread(Arc::new(PreadFile::new(file, identity.len()))),
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            content,
            mapping,
            changed: AtomicBool::new(being_written),
            opened_while_written: being_written,
            identity,
            checks_inline,
            descriptor,
            heap_share,
            attached: OnceLock::new(),
        })
    }

    /// The file's length in bytes, as it was when opened.
    pub fn size(&self) -> u64 {
        self.content.len()
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.size() == 0
    }

    /// The whole file as zero-copy [`Bytes`].
    ///
    /// Synchronous and lazy: for a mapped file nothing is read here, and the first touch of a page that is not
    /// in the page cache (a server writing the bytes, a handler reading them) waits for the disk on the thread
    /// that touches it, an async worker included. From async code, [`range_resident`](Self::range_resident)
    /// or a body built with [`MmapBody::file_range`](crate::MmapBody::file_range) bring cold pages in off the
    /// workers first.
    ///
    /// For a file [read on demand](Self::reads_on_demand) this reads the whole file now, into a buffer of its
    /// own (a blocking read); if that fails (the file was shortened since it was opened), it logs why and
    /// returns no bytes. A file rewritten in place while it is read is not detected here; the service's
    /// bodies re-check the file before their last frame.
    pub fn bytes(&self) -> Bytes {
        match &self.content {
            Content::Memory(data) => data.clone(),
            Content::Pread(file) => file.read(0..file.len()).unwrap_or_else(|e| {
                tracing::warn!(path = %self.path.display(), error = %e, "mmap-serve: reading the file failed");
                Bytes::new()
            }),
        }
    }

    /// The bytes in `range` (half-open: `start..end`), zero-copy.
    ///
    /// Synchronous, as [`bytes`](Self::bytes): touching cold bytes of the slice blocks the touching thread
    /// on the disk; [`range_resident`](Self::range_resident) is the async form that never does. For a file
    /// [read on demand](Self::reads_on_demand) this reads the range now (a blocking `pread`).
    ///
    /// # Errors
    ///
    /// [`MmapError::InvalidRange`] when `start > end` or `end > size()`.
    pub fn range(&self, range: Range<u64>) -> Result<Bytes, MmapError> {
        self.check_range(&range)?;
        let Range { start, end } = range;
        match &self.content {
            // Both bounds are <= size(), which came from a usize.
            Content::Memory(data) => Ok(data.slice(start as usize..end as usize)),
            Content::Pread(file) => file
                .read(start..end)
                .map_err(|e| MmapError::from_io(&self.path, e)),
        }
    }

    /// `Ok` when `range` lies inside the file, else the [`MmapError::InvalidRange`] that says how it does not.
    pub(crate) fn check_range(&self, range: &Range<u64>) -> Result<(), MmapError> {
        let Range { start, end } = *range;
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
        Ok(())
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

    /// Whether another process had the file open for writing (or mapped writable) when it was opened: its
    /// length and validators are then those of an unfinished file, so it is [poisoned](Self::is_poisoned) from
    /// the start. Every response body of it ends with an error before its first byte, and a cache opens it
    /// again at its next lookup, until the writer has closed it. Linux asks the kernel with a read lease,
    /// released at once; where the kernel refuses one (see [`writer_checks_refused`](crate::writer_checks_refused))
    /// and on other platforms this is always false.
    ///
    /// A file kept open for writing (a log a process appends to, a file a database holds open read-write) is
    /// therefore never served whole while it stays open, even between writes: serve a copy of it instead.
    ///
    /// Opening an *empty* file that is being written fails instead: [`MmapError::BeingWritten`] (503 with
    /// `Retry-After`), since an empty body has no frame to end with an error.
    ///
    /// `MmapServe` answers the requests about such a file that would get no content (HEAD, 304, 412, 416)
    /// with 503 Service Unavailable and `Retry-After: 1` instead, since their labels (length, ETag) would be
    /// those of an unfinished version.
    ///
    /// # Examples
    ///
    /// ```
    /// # let d = tempfile::tempdir()?; let path = d.path().join("w.bin"); std::fs::write(&path, vec![1u8; 1 << 20])?;
    /// let writer = std::fs::OpenOptions::new().append(true).open(&path)?; // a download still in progress
    /// let f = mmap_serve::MmapFile::new(&path)?;
    /// # #[cfg(target_os = "linux")] {
    /// assert!(f.opened_while_written() && f.is_poisoned());
    /// drop(writer);
    /// assert!(!mmap_serve::MmapFile::new(&path)?.opened_while_written());
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn opened_while_written(&self) -> bool {
        self.opened_while_written
    }

    /// Whether the bytes come from a memory map (false for empty and small files, which live on the heap, and
    /// for files read on demand).
    pub fn is_mapped(&self) -> bool {
        self.mapping.is_some()
    }

    /// Whether the file is read with `pread(2)` when its bytes are asked for, instead of mapped: a file that
    /// may change, at a time the SIGBUS guard could not protect a mapping of it (see the type's docs).
    pub fn reads_on_demand(&self) -> bool {
        matches!(self.content, Content::Pread(_))
    }

    /// Whether the bytes can no longer be trusted: the file was truncated under the mapping (the pages past its
    /// new end now read as zeros), a response found it changed, or it was [being written](Self::opened_while_written)
    /// when it was opened. A poisoned file is never served again by the cache, and every response body of it
    /// ends with an error; files read into memory are poisoned only in the last case.
    pub fn is_poisoned(&self) -> bool {
        self.changed.load(Ordering::Relaxed)
            || self.mapping.as_ref().is_some_and(|m| m.is_poisoned())
    }

    /// Whether the bytes served are still the file's: for a mapping, one `fstat` of the mapped inode through
    /// its kept descriptor (which also sees an in-place change to an inode no longer at the path), or one `stat`
    /// of the path past the process's share of descriptors; for a file read on demand, one `fstat` of its
    /// descriptor; always true for files read into memory, whose bytes are a private copy. Marks the file
    /// changed when they are not.
    pub(crate) fn still_matches(&self) -> bool {
        let same = !self.is_poisoned()
            && match (&self.content, &self.mapping, &self.descriptor) {
                (Content::Pread(file), _, _) => file.still_matches(&self.identity),
                (Content::Memory(_), Some(_), Some(kept)) => kept
                    .file()
                    .metadata()
                    .is_ok_and(|m| self.identity.still_describes(&m)),
                (Content::Memory(_), Some(_), None) => {
                    still_describes_path(&self.path, &self.identity)
                }
                (Content::Memory(_), None, _) => true,
            };
        if !same {
            self.mark_changed();
        }
        same
    }

    /// Marks the file as changed under a response (a failed check or a short read): it is never served again
    /// from the cache, whose next lookup opens it afresh.
    pub(crate) fn mark_changed(&self) {
        self.changed.store(true, Ordering::Relaxed);
    }

    /// Keeps `keep` alive as long as this file, and drops it with the file's last handle (a response body's, or
    /// the cache entry's); the first attachment stays, a later one is returned.
    #[cfg_attr(
        not(target_os = "linux"),
        allow(dead_code, reason = "only the Linux watch attaches to files")
    )]
    pub(crate) fn attach(
        &self,
        keep: Box<dyn Any + Send + Sync>,
    ) -> Result<(), Box<dyn Any + Send + Sync>> {
        self.attached
            .set(Attachment(keep))
            .map_err(|Attachment(keep)| keep)
    }

    /// Whether the bytes are a mapping the SIGBUS guard did not protect when it was made (an immutable file,
    /// mapped while the guard was refused or replaced). Such a mapping must not serve a request for a file that
    /// may change.
    pub(crate) fn is_unprotected_mapping(&self) -> bool {
        self.mapping.as_ref().is_some_and(|m| !m.is_protected())
    }

    /// Whether the pages of `frame` and of the `tail` bytes after it are in memory (one `mincore`; see
    /// `residency`): `Unmapped` for a file that is not mapped or a frame that is not a slice of this file's
    /// mapping.
    pub(crate) fn residency(&self, frame: &[u8], tail: usize) -> Residency {
        self.mapping
            .as_ref()
            .map_or(Residency::Unmapped, |m| m.residency(frame, tail))
    }

    /// The mapping behind the bytes, for bringing frames of it in on another thread (None when not mapped).
    pub(crate) fn mapping(&self) -> Option<&Arc<Mapping>> {
        self.mapping.as_ref()
    }

    /// Where the bytes are, for the response body.
    pub(crate) fn content(&self) -> &Content {
        &self.content
    }

    /// Whether a response must watch the file while it sends it: its bytes are not a private copy.
    pub(crate) fn is_shared(&self) -> bool {
        self.mapping.is_some() || self.reads_on_demand()
    }

    /// Which file this is: device, inode, length and timestamps when it was opened.
    pub fn identity(&self) -> &FileIdentity {
        &self.identity
    }

    /// The modification time of the file when it was opened.
    pub fn modified(&self) -> SystemTime {
        self.identity.modified()
    }

    /// The strong ETag of the file as opened, quoted, as sent in the `ETag` header: see
    /// [`FileIdentity::etag`].
    pub fn etag(&self) -> String {
        self.identity.etag()
    }

    /// The `Last-Modified` header value (an IMF-fixdate, RFC 9110 §5.6.7) of the file as opened: its
    /// modification time in whole seconds, or the time of this call if the file claims a time in the future
    /// (RFC 9110 §8.8.2.1).
    pub fn last_modified(&self) -> String {
        httpdate::fmt_http_date(self.identity.modified().min(SystemTime::now()))
    }

    /// Whether a revalidation of this file may `stat` its path on the async executor: it is mapped (the mapping
    /// holds the file open, which pins the directory entries a lookup of its path walks, so none has to be read
    /// from disk) from a local filesystem (no network or FUSE daemon to wait for).
    pub(crate) fn checks_inline(&self) -> bool {
        self.checks_inline
    }
}

/// Whether `file` lives on a local filesystem (by its `statfs` magic), where a `stat` of a name whose file is
/// open waits for neither a disk nor a network. Network and FUSE filesystems (NFS, SMB, Ceph, Lustre, 9p,
/// sshfs, object-store mounts), and anything not listed, are not: their metadata may need a round trip.
#[cfg(target_os = "linux")]
pub(crate) fn on_local_filesystem(file: &File) -> bool {
    // linux/magic.h
    const LOCAL: [u32; 11] = [
        0xEF53,      // ext2, ext3, ext4
        0x5846_5342, // xfs
        0x9123_683E, // btrfs
        0x0102_1994, // tmpfs
        0x8584_58F6, // ramfs
        0x794C_7630, // overlayfs
        0xF2F5_2010, // f2fs
        0x2FC1_2FC1, // zfs
        0xCA45_1A4E, // bcachefs
        0x7371_7368, // squashfs
        0xE0F5_E1E2, // erofs
    ];
    match rustix::fs::fstatfs(file) {
        // f_type is a signed word on some targets: its low 32 bits are the magic.
        Ok(stat) => LOCAL.contains(&(stat.f_type as u64 as u32)),
        Err(_) => false,
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn on_local_filesystem(_: &File) -> bool {
    false
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

/// Where a file's bytes are.
#[derive(Debug, Clone)]
pub(crate) enum Content {
    /// All of them in memory: a mapping (protected, or of an immutable file) or a heap copy of a small file.
    Memory(Bytes),
    /// Read on demand: the file may change and a mapping of it could not be protected.
    Pread(Arc<PreadFile>),
}

impl Content {
    /// The length of the file, as it was when opened.
    pub(crate) fn len(&self) -> u64 {
        match self {
            Self::Memory(data) => data.len() as u64,
            Self::Pread(file) => file.len(),
        }
    }
}

/// Whether the mapped inode still has `identity`'s content, judged by one `stat` of `path`: the check of a
/// mapped file that keeps no descriptor (past the process's share, `descriptors.rs`). When `path` now names
/// another file, or none, the mapped inode was replaced or unlinked — the supported deploy — and this check
/// cannot see it any more: a later write to that inode is caught by the cache's watch, which lasts as long as
/// the mapped file (see `cache/watch`), and not at all without one. When `path` names the same inode with
/// another length or times, it was rewritten in place or truncated.
fn still_describes_path(path: &Path, identity: &FileIdentity) -> bool {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(path) {
        Ok(m) if (m.dev(), m.ino()) == (identity.dev(), identity.ino()) => {
            identity.still_describes(&m)
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    use crate::testing::pattern;

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
        let f = MmapFile::open(&small, MmapConfig::default(), 0, None, false).unwrap();
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
        let f = MmapFile::open(&path, MmapConfig::default(), 0, None, false).unwrap();
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
    fn the_last_check_sees_an_in_place_change_to_an_inode_renamed_over() {
        use std::os::unix::fs::FileExt;
        let (dir, path) = file_with(100_000);
        let file = MmapFile::new(&path).unwrap();
        assert!(
            file.is_shared() && file.descriptor.is_some(),
            "mapped, descriptor kept"
        );
        assert!(file.still_matches());
        // A writer that opened the old inode, a new version renamed over the path, then a write to the old inode:
        // the path now names an intact file, but the bytes mapped changed.
        let writer = fs::OpenOptions::new().write(true).open(&path).unwrap();
        let new = dir.path().join("new.bin");
        fs::write(&new, pattern(100_000)).unwrap();
        fs::rename(&new, &path).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20)); // past the filesystem's timestamp tick
        writer.write_all_at(&[0xEE; 16], 0).unwrap();
        assert!(!file.still_matches(), "the mapped inode changed");
    }

    #[test]
    fn only_mapped_files_that_may_change_keep_a_descriptor() {
        let (dir, path) = file_with(100_000);
        let immutable = MmapFile::open(
            &path,
            MmapConfig::default(),
            DEFAULT_SMALL_FILE_THRESHOLD,
            None,
            true,
        )
        .unwrap();
        assert!(
            immutable.is_shared() && immutable.descriptor.is_none(),
            "never re-checked"
        );
        fs::write(dir.path().join("small.bin"), pattern(100)).unwrap();
        let small = MmapFile::new(dir.path().join("small.bin")).unwrap();
        assert!(
            !small.is_shared() && small.descriptor.is_none(),
            "a private copy"
        );
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
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
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
