//! Opening a file only if it lies beneath a root, symbolic links included: blocking I/O, never on the executor,
//! and no HTTP answer (failures stay `io::Error`s for the service's one classification, `MmapError::from_io`).
//!
//! Resolvers check URL paths lexically and do no I/O; what the path means on disk (symbolic links, a root
//! that is itself a link) is decided here, in blocking code the service runs inside
//! `tokio::task::spawn_blocking` just before it opens the file.
//!
//! # Races
//!
//! Whoever can write beneath the root may replace any directory on the way to a file with a symbolic link
//! while a request is being resolved. [`Confinement::open`] is built so that this never leads outside:
//!
//! - On Linux 5.6 and later it resolves and opens in one `openat2(2)` call with `RESOLVE_BENEATH` (and
//!   `RESOLVE_NO_SYMLINKS` when links are refused): there is no moment between checking and opening.
//! - Where `openat2` is unavailable or filtered, and for paths crossing an absolute link (which
//!   `RESOLVE_BENEATH` always refuses, even one pointing inside the root), a walk in user space
//!   ([`walk`]) looks up one name at a time relative to a directory descriptor it holds, never follows a link
//!   for the kernel's path lookup, and resolves every link target itself by the same rules. A link swapped in
//!   at any moment is either seen and judged, or makes the lookup fail; it is never followed unchecked.
//!
//! Both ways give the same answers: `..` may not climb above the root, a link may point anywhere beneath it
//! (an absolute one must start with the root's canonical path), and every refusal looks like a missing file.
//! Neither defends against a writer outside the root (one who can move the root's directories elsewhere while
//! a request walks them); that is beyond what the root's owner hands out.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

/// Flags every served file is opened with: read-only, and never blocking on a FIFO or becoming a terminal.
const OPEN_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY)
    .union(OFlags::CLOEXEC);

/// A root that a file must stay beneath once symbolic links are resolved.
#[derive(Debug, Clone)]
pub(crate) struct Confinement {
    /// The root as configured: possibly relative, possibly a symbolic link.
    pub(super) root: Arc<Path>,
    /// Whether links below the root may be followed (to targets that are still beneath it).
    pub(super) follow_symlinks: bool,
}

impl Confinement {
    /// Confines to `root`, following links below it if `follow_symlinks`.
    pub(super) fn new(root: Arc<Path>, follow_symlinks: bool) -> Self {
        Self {
            root,
            follow_symlinks,
        }
    }

    /// A non-zero digest of this confinement (root as configured, symlink policy), with which a cached
    /// mapping records the confinement it was last verified under.
    pub(crate) fn tag(&self) -> u64 {
        use std::os::unix::ffi::OsStrExt;
        // FNV-1a: deterministic, a few nanoseconds for a short root.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in self
            .root
            .as_os_str()
            .as_bytes()
            .iter()
            .chain([u8::from(self.follow_symlinks)].iter())
        {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        h.max(1)
    }

    /// Opens `path` for reading, guaranteed to lie beneath the root.
    ///
    /// This does blocking file-system I/O; call it off the async executor. The root is opened on every call
    /// rather than once, so that a root which is a symbolic link may be switched atomically to a new tree (the
    /// usual way to deploy one) and the next request sees it; a relative root is resolved against the current
    /// working directory at the time of the call. The root itself is followed if it is a link; below it:
    ///
    /// - With `follow_symlinks`, links are followed while their targets stay beneath the root (an absolute
    ///   target must start with the root's canonical path). `path` is normally the root followed by plain
    ///   names, as [`DirResolver`](super::DirResolver) builds it; an absolute `path` spelled another way is
    ///   accepted like an absolute link's target.
    /// - Without it, `path` must be lexically beneath the configured root and no component after the root may
    ///   be a symbolic link.
    ///
    /// On Linux 5.6 and later this is one `openat2(2)` call relative to the root with `RESOLVE_BENEATH` (and
    /// `RESOLVE_NO_SYMLINKS` when links are refused). Where `openat2` is missing or filtered (`ENOSYS`,
    /// `EPERM`, `E2BIG`), where `path` is not lexically beneath the configured root, and where the path
    /// crosses an absolute symbolic link (which `RESOLVE_BENEATH` always refuses), the [`walk`] resolves it one
    /// component at a time instead. Neither can be led outside by a link swapped in concurrently (see the
    /// module docs).
    ///
    /// Only a regular file is opened (non-blocking, without a controlling terminal): what the path names is
    /// looked at first (with `O_PATH`, or `fstatat` on the walk), so a directory, FIFO, socket or device is
    /// refused without ever being opened. The caller still checks the opened descriptor, which catches a file
    /// swapped for something else in between.
    ///
    /// # Errors
    ///
    /// Every way the path can fail to name a file beneath the root looks like a missing file
    /// (`io::ErrorKind::NotFound`), so that a client learns nothing about the file system outside the root:
    /// the target or the root is missing, lies outside the root, crosses a refused symbolic link, expands too
    /// many links, or cannot be resolved (a component not a directory, a name too long). A directory is
    /// `io::ErrorKind::IsADirectory`, a FIFO, socket or device `NotFound`.
    ///
    /// Every other failure is the operating system's error, unchanged, as an unconfined open of the same file
    /// would meet it (`EACCES`, `EMFILE`, `EAGAIN`, `EIO`, ...): the service's one classification,
    /// `MmapError::from_io`, then answers a confined file exactly as an unconfined one (403, 503, 500). See
    /// [`confine_error`].
    pub(crate) fn open(&self, path: &Path) -> io::Result<File> {
        let root = self.open_root()?;
        #[cfg(target_os = "linux")]
        if let Ok(below_root) = path.strip_prefix(&self.root) {
            let open = |flags| {
                openat2::open_beneath(root.as_fd(), below_root, self.follow_symlinks, flags)
            };
            // Look first (an `O_PATH` descriptor opens nothing), then open only a regular file: the very inode
            // looked at, through /proc.
            let looked = open(OFlags::PATH | OFlags::CLOEXEC).and_then(|located| {
                let metadata = located.metadata()?;
                only_regular(&metadata.file_type())?;
                reopen_or(Some(&located), || open(OPEN_FLAGS))
            });
            match looked {
                Ok(file) => return Ok(file),
                // `only_regular`'s verdict.
                Err(e) if e.raw_os_error().is_none() => return Err(e),
                Err(e) if openat2::is_unsupported(&e) => {}
                Err(e) => match Errno::from_io_error(&e) {
                    // RESOLVE_BENEATH refuses every absolute link, even one to a file inside the root: the
                    // walk decides those.
                    Some(Errno::XDEV) if self.follow_symlinks => {}
                    // The kernel could not rule out that a `..` raced a rename (or, from the open, a lease is
                    // held): the walk resolves `..` itself, and answers `EAGAIN` if it meets it too.
                    Some(Errno::AGAIN) => {}
                    _ => return Err(confine_error(e)),
                },
            }
        }
        self.walk_from(root.as_fd(), path)
    }

    /// [`open`](Self::open) without `openat2`, as on a kernel that lacks it.
    #[cfg(test)]
    fn open_by_walk(&self, path: &Path) -> io::Result<File> {
        self.walk_from(self.open_root()?.as_fd(), path)
    }

    /// The root directory, followed if it is a link, opened only to look names up in.
    fn open_root(&self) -> io::Result<OwnedFd> {
        rustix::fs::open(&*self.root, walk::SEARCH_FLAGS, Mode::empty())
            .map_err(|e| confine_error(e.into()))
    }

    /// Opens `path` beneath the directory `root` (this confinement's root, opened) by the [`walk`].
    fn walk_from(&self, root: BorrowedFd<'_>, path: &Path) -> io::Result<File> {
        let below_root = match path.strip_prefix(&self.root) {
            Ok(below_root) => below_root,
            // Another spelling (through a link to the root, say): resolved like an absolute link's target.
            Err(_) if path.is_absolute() && self.follow_symlinks => path,
            Err(_) => return Err(refused()),
        };
        walk::open_beneath(root, &self.root, below_root, self.follow_symlinks)
    }
}

#[cfg(target_os = "linux")]
mod openat2;

mod walk;

/// Opens for reading the inode that `located` (an `O_PATH` descriptor of a regular file) refers to, through
/// its `/proc/self/fd` entry: what was looked at is what gets opened, even if its name has since been given to
/// a FIFO or a device. Where `/proc` is not mounted (or `located` is `None`), `by_name` opens the name again;
/// the caller's check of the opened descriptor then refuses anything swapped in.
fn reopen_or(
    located: Option<&File>,
    by_name: impl FnOnce() -> io::Result<File>,
) -> io::Result<File> {
    #[cfg(target_os = "linux")]
    if let Some(located) = located {
        use std::os::fd::AsRawFd;
        let proc_path = format!("/proc/self/fd/{}", located.as_raw_fd());
        match rustix::fs::open(proc_path, OPEN_FLAGS, Mode::empty()) {
            Err(Errno::NOENT) => {}
            reopened => return Ok(File::from(reopened?)),
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = located;
    by_name()
}

/// `Ok` for a regular file; `IsADirectory` for a directory; [`refused`] for a FIFO, socket, device or link.
fn only_regular(file_type: &std::fs::FileType) -> io::Result<()> {
    if file_type.is_file() {
        Ok(())
    } else if file_type.is_dir() {
        Err(io::ErrorKind::IsADirectory.into())
    } else {
        Err(refused())
    }
}

/// A failed look-up or open as the confinement reports it.
///
/// Every way a path can fail to name a file beneath the root is [`refused`]: it leaves the root (`EXDEV`,
/// from `RESOLVE_BENEATH`), crosses a refused link or too many (`ELOOP`), or names nothing (`ENOENT`,
/// `ENOTDIR`, `ENAMETOOLONG`). Any other error is returned as it is: it is what an unconfined open would have
/// met. `MmapError::from_io` answers all of these but `EXDEV` with 404 anyway, so no confined answer differs
/// from an unconfined one except where the confinement refused (the tests sweep every errno).
fn confine_error(e: io::Error) -> io::Error {
    match Errno::from_io_error(&e) {
        Some(Errno::XDEV | Errno::LOOP | Errno::NOENT | Errno::NOTDIR | Errno::NAMETOOLONG) => {
            refused()
        }
        _ => e,
    }
}

/// What every refusal of the confinement turns into, whatever its cause: a missing file (404), exactly as
/// if nothing were there.
fn refused() -> io::Error {
    io::ErrorKind::NotFound.into()
}

#[cfg(test)]
mod tests;
