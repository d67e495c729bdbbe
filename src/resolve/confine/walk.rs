//! The fallback of [`Confinement::open`](super::Confinement::open): resolving beneath the root one name at a
//! time, in user space; the kernel never follows a link for it and `..` is never looked up on disk.
//!
//! The walk holds a descriptor of every directory it has entered, starting with the root's, and looks up each
//! name with `openat(2)` relative to the last of them, with `O_NOFOLLOW`: a name is never a path, so the
//! kernel follows no link on the walk's behalf. A name that turns out to be a link is read with
//! `readlinkat(2)` and its target resolved by the walk itself, under the same rules:
//!
//! - `..` returns to the directory descriptor entered before (the walk keeps them on a stack) and fails at
//!   the root: like `RESOLVE_BENEATH`, a path that climbs above the root is refused, not clamped to it. The
//!   parent is never looked up on disk, so a directory moved elsewhere meanwhile cannot lead `..` outside.
//! - A relative target is spliced in front of the names still to resolve, from the directory holding the link.
//! - An absolute target must lexically start with the root's canonical path (the path of the root descriptor
//!   the walk holds); the rest is resolved from the root descriptor. Anything else is refused.
//! - At most [`MAX_LINK_EXPANSIONS`] links per open, as the kernel's `ELOOP` limit.
//!
//! Since every lookup starts from a descriptor the walk reached from the root by names it checked, replacing
//! any component with a link at any moment changes nothing: the link is either seen and resolved by these
//! rules, or the lookup fails (the path then answers as missing).

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{FileType, OFlags};

use super::{confine_error, refused};

/// How many symbolic links one open may expand before it counts as a loop (Linux's `MAXSYMLINKS`).
pub(super) const MAX_LINK_EXPANSIONS: u32 = 40;

/// Flags of a directory opened only to look names up in it: on Linux `O_PATH`, which needs no read
/// permission (the kernel's own path walk needs none either).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(super) const SEARCH_FLAGS: OFlags =
    OFlags::PATH.union(OFlags::DIRECTORY).union(OFlags::CLOEXEC);
/// Flags of a directory opened only to look names up in it (needing read permission, lacking `O_PATH`).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(super) const SEARCH_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC);

/// Opens `path` beneath the directory `root`, one component at a time.
///
/// `path` is relative to `root`; an absolute `path` is treated as the target of an absolute link (it must
/// start with the canonical path of `root`). `root_path` is the root as configured, used only when the path of
/// the `root` descriptor cannot be read from `/proc`.
///
/// # Errors
///
/// As [`Confinement::open`](super::Confinement::open): the walk's own refusals (outside the root, a refused
/// link, too many links, not a regular file) are [`refused`](super::refused), a directory `IsADirectory`, and
/// system call errors pass through [`confine_error`](super::confine_error).
pub(super) fn open_beneath(
    root: BorrowedFd<'_>,
    root_path: &Path,
    path: &Path,
    follow_symlinks: bool,
) -> io::Result<File> {
    let mut walk = Walk {
        root,
        root_path,
        canonical_root: None,
        entered: Vec::new(),
        pending: Vec::new(),
        expansions: 0,
        follow_symlinks,
    };
    if path.is_absolute() && !follow_symlinks {
        return Err(refused());
    }
    walk.splice(path)?;
    walk.run()
}

/// One component still to resolve.
enum Step {
    /// A plain name: no `/`, not `.` or `..`.
    Name(OsString),
    /// `..`.
    Parent,
}

/// What looking up one name found, when it was not a link.
enum Opened {
    /// The last component, opened to be served.
    File(File),
    /// A directory to continue from.
    Dir(OwnedFd),
}

/// The state of one walk.
struct Walk<'a> {
    /// Where the walk starts, and where `..` stops.
    root: BorrowedFd<'a>,
    /// The root as configured, for the fallback of [`Walk::canonical_root`].
    root_path: &'a Path,
    /// The canonical path of `root`, read on the first absolute link.
    canonical_root: Option<PathBuf>,
    /// The directories entered below `root`, innermost last.
    entered: Vec<OwnedFd>,
    /// The components still to resolve, next one last.
    pending: Vec<Step>,
    /// How many links this walk has expanded.
    expansions: u32,
    /// Whether links may be followed at all.
    follow_symlinks: bool,
}

impl Walk<'_> {
    /// The directory the next name is looked up in.
    fn current(&self) -> BorrowedFd<'_> {
        self.entered.last().map_or(self.root, AsFd::as_fd)
    }

    /// Resolves the pending components and opens what they name.
    fn run(mut self) -> io::Result<File> {
        while let Some(step) = self.pending.pop() {
            let name = match step {
                Step::Parent => {
                    // Above the root is outside it.
                    self.entered.pop().ok_or_else(refused)?;
                    continue;
                }
                Step::Name(name) => name,
            };
            let is_last = self.pending.is_empty();
            let opened = if is_last {
                // Look before opening: only a regular file is opened (the inode looked at, where /proc
                // allows); a link is expanded below.
                match sys::look(self.current(), &name) {
                    Ok((FileType::Symlink, _)) => Err(rustix::io::Errno::LOOP.into()),
                    Ok((FileType::RegularFile, located)) => {
                        super::reopen_or(located.as_ref(), || sys::open_file(self.current(), &name))
                            .map(Opened::File)
                    }
                    Ok((FileType::Directory, _)) => return Err(io::ErrorKind::IsADirectory.into()),
                    // A FIFO, socket or device: never opened.
                    Ok(_) => return Err(refused()),
                    Err(e) => Err(e),
                }
            } else {
                sys::open_dir(self.current(), &name).map(Opened::Dir)
            };
            match opened {
                Ok(Opened::File(file)) => return Ok(file),
                Ok(Opened::Dir(dir)) => self.entered.push(dir),
                Err(e) if sys::may_be_link(&e) => {
                    if !self.follow_symlinks {
                        return Err(refused());
                    }
                    let target = match sys::read_link(self.current(), &name) {
                        Ok(target) => target,
                        // Not a link after all (a file used as a directory), or no longer one: the open's
                        // error stands.
                        Err(not_a_link)
                            if rustix::io::Errno::from_io_error(&not_a_link)
                                == Some(rustix::io::Errno::INVAL) =>
                        {
                            return Err(confine_error(e));
                        }
                        Err(other) => return Err(confine_error(other)),
                    };
                    self.expansions += 1;
                    if self.expansions > MAX_LINK_EXPANSIONS {
                        return Err(refused());
                    }
                    self.splice(Path::new(&target))?;
                }
                Err(e) => return Err(confine_error(e)),
            }
        }
        // The path ends at a directory (nothing below the root, or a last `..`): not a file to serve.
        Err(io::ErrorKind::IsADirectory.into())
    }

    /// Puts the components of `target` in front of those still pending; an absolute `target` restarts from
    /// the root once its canonical path is stripped.
    fn splice(&mut self, target: &Path) -> io::Result<()> {
        let rest = if target.is_absolute() {
            let root = self.canonical_root()?;
            // Lexical, whole components: `/srv/www2` is not beneath `/srv/www`; a `..` in the rest is resolved
            // by the walk and cannot climb above the root.
            let rest = target.strip_prefix(root).map_err(|_| refused())?;
            self.entered.clear();
            rest
        } else {
            target
        };
        let first_new = self.pending.len();
        for component in rest.components() {
            match component {
                Component::Normal(name) => self.pending.push(Step::Name(name.to_owned())),
                Component::ParentDir => self.pending.push(Step::Parent),
                Component::CurDir => {}
                // Only the head of an absolute path, which `strip_prefix` removed.
                Component::RootDir | Component::Prefix(_) => return Err(refused()),
            }
        }
        self.pending[first_new..].reverse();
        Ok(())
    }

    /// The canonical path of the root descriptor, read once.
    ///
    /// Without `/proc`, the configured root is canonicalized instead; if it was switched to another tree since
    /// it was opened, an absolute link may be judged against the wrong path, but what follows is still
    /// resolved from the root descriptor, so that can only refuse or misdirect within the root, never escape.
    fn canonical_root(&mut self) -> io::Result<&Path> {
        if self.canonical_root.is_none() {
            let path = sys::path_of(self.root)
                .or_else(|_| std::fs::canonicalize(self.root_path))
                .map_err(confine_error)?;
            self.canonical_root = Some(path);
        }
        Ok(self.canonical_root.as_deref().expect("set just above"))
    }
}

/// `openat(2)`, `readlinkat(2)` and `fstatat(2)` through rustix, which std does not offer relative to a
/// directory descriptor.
mod sys {
    use std::ffi::{OsStr, OsString};
    use std::fs::File;
    use std::io;
    use std::os::fd::{BorrowedFd, OwnedFd};
    use std::os::unix::ffi::OsStringExt;
    use std::path::PathBuf;

    use rustix::fs::{FileType, Mode, OFlags};
    use rustix::io::Errno;

    use super::super::OPEN_FLAGS;
    use super::SEARCH_FLAGS;

    /// Opens the directory `name` in `dir`; a link (even to a directory) fails with `ENOTDIR`.
    pub(super) fn open_dir(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
        Ok(rustix::fs::openat(
            dir,
            name,
            SEARCH_FLAGS | OFlags::NOFOLLOW,
            Mode::empty(),
        )?)
    }

    /// Opens `name` in `dir` to be served; a link fails (`ELOOP` on Linux and macOS, `EMLINK` on FreeBSD).
    pub(super) fn open_file(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<File> {
        let fd = rustix::fs::openat(dir, name, OPEN_FLAGS | OFlags::NOFOLLOW, Mode::empty())?;
        Ok(File::from(fd))
    }

    /// The type of `name` in `dir`, a link's own rather than its target's, looked at without opening
    /// anything, and on Linux the `O_PATH` descriptor it was read from (for reopening that very inode);
    /// elsewhere `fstatat(AT_SYMLINK_NOFOLLOW)`.
    pub(super) fn look(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<(FileType, Option<File>)> {
        #[cfg(target_os = "linux")]
        {
            let located = File::from(rustix::fs::openat(
                dir,
                name,
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?);
            let stat = rustix::fs::fstat(&located)?;
            Ok((FileType::from_raw_mode(stat.st_mode), Some(located)))
        }
        #[cfg(not(target_os = "linux"))]
        {
            let stat = rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)?;
            Ok((FileType::from_raw_mode(stat.st_mode as _), None))
        }
    }

    /// Whether an open with `O_NOFOLLOW` may have failed because the name is a link.
    pub(super) fn may_be_link(e: &io::Error) -> bool {
        matches!(
            Errno::from_io_error(e),
            Some(Errno::NOTDIR | Errno::LOOP | Errno::MLINK)
        )
    }

    /// The target of the link `name` in `dir` (`EINVAL` if it is not a link).
    pub(super) fn read_link(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OsString> {
        let target = rustix::fs::readlinkat(dir, name, Vec::new())?;
        Ok(OsString::from_vec(target.into_bytes()))
    }

    /// The path of the directory `dir` refers to, as the kernel records it.
    #[cfg(target_os = "linux")]
    pub(super) fn path_of(dir: BorrowedFd<'_>) -> io::Result<PathBuf> {
        use std::os::fd::AsRawFd;
        let path = std::fs::read_link(format!("/proc/self/fd/{}", dir.as_raw_fd()))?;
        if path.is_absolute() {
            Ok(path)
        } else {
            // An anonymous or otherwise unnamed object: not a directory path.
            Err(io::ErrorKind::NotFound.into())
        }
    }

    /// The path of the directory `dir` refers to: not available here, the caller canonicalizes the root.
    #[cfg(not(target_os = "linux"))]
    pub(super) fn path_of(_dir: BorrowedFd<'_>) -> io::Result<PathBuf> {
        Err(io::ErrorKind::Unsupported.into())
    }
}
