//! The fallback of [`Confinement::open`](super::Confinement::open): resolving beneath the root one name at a
//! time, in user space, without a window for a swapped-in symbolic link.
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

use std::ffi::{CString, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, Path, PathBuf};

use super::{client_error, not_found};

/// How many symbolic links one open may expand before it counts as a loop (Linux's `MAXSYMLINKS`).
pub(super) const MAX_LINK_EXPANSIONS: u32 = 40;

/// Flags of a directory opened only to look names up in it: on Linux `O_PATH`, which needs no read
/// permission (the kernel's own path walk needs none either).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(super) const SEARCH_FLAGS: i32 = libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC;
/// Flags of a directory opened only to look names up in it (needing read permission, lacking `O_PATH`).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(super) const SEARCH_FLAGS: i32 = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;

/// Opens `path` beneath the directory `root`, one component at a time.
///
/// `path` is relative to `root`; an absolute `path` is treated as the target of an absolute link (it must
/// start with the canonical path of `root`). `root_path` is the root as configured, used only when the path of
/// the `root` descriptor cannot be read from `/proc`.
///
/// # Errors
///
/// `NotFound` for anything missing, outside the root, a refused or looping link, or a component that is not a
/// directory; `EACCES` and resource errors (`EMFILE`, `ENFILE`, `ENOMEM`) unchanged.
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
        return Err(not_found());
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
                    self.entered.pop().ok_or_else(not_found)?;
                    continue;
                }
                Step::Name(name) => CString::new(name.into_vec()).map_err(|_| not_found())?,
            };
            let is_last = self.pending.is_empty();
            let opened = if is_last {
                // Look before opening: only a regular file is opened (the inode looked at, where /proc
                // allows); a link is expanded below.
                match sys::look(self.current(), &name) {
                    Ok((libc::S_IFLNK, _)) => Err(io::Error::from_raw_os_error(libc::ELOOP)),
                    Ok((libc::S_IFREG, located)) => {
                        super::reopen_or(located.as_ref(), || sys::open_file(self.current(), &name))
                            .map(Opened::File)
                    }
                    Ok((libc::S_IFDIR, _)) => return Err(io::ErrorKind::IsADirectory.into()),
                    // A FIFO, socket or device: never opened.
                    Ok(_) => return Err(not_found()),
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
                        return Err(not_found());
                    }
                    // Not a link after all (a file used as a directory), or no longer one: missing.
                    let target = sys::read_link(self.current(), &name).map_err(client_error)?;
                    self.expansions += 1;
                    if self.expansions > MAX_LINK_EXPANSIONS {
                        return Err(not_found());
                    }
                    self.splice(Path::new(&target))?;
                }
                Err(e) => return Err(client_error(e)),
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
            let rest = target.strip_prefix(root).map_err(|_| not_found())?;
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
                Component::RootDir | Component::Prefix(_) => return Err(not_found()),
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
                .map_err(client_error)?;
            self.canonical_root = Some(path);
        }
        Ok(self.canonical_root.as_deref().expect("set just above"))
    }
}

/// `openat(2)` and `readlinkat(2)`, which std does not wrap.
#[allow(
    unsafe_code,
    reason = "openat and readlinkat have no wrapper in std; they are called through libc"
)]
mod sys {
    use std::ffi::{CStr, OsString};
    use std::fs::File;
    use std::io;
    use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStringExt;
    use std::path::PathBuf;

    use super::super::OPEN_FLAGS;
    use super::SEARCH_FLAGS;

    /// Opens the directory `name` in `dir`; a link (even to a directory) fails with `ENOTDIR`.
    pub(super) fn open_dir(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
        let fd = openat(dir, name, SEARCH_FLAGS | libc::O_NOFOLLOW)?;
        // SAFETY: `openat` just returned `fd` as a new descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// Opens `name` in `dir` to be served; a link fails (`ELOOP` on Linux and macOS, `EMLINK` on FreeBSD).
    pub(super) fn open_file(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<File> {
        let fd = openat(dir, name, OPEN_FLAGS | libc::O_NOFOLLOW)?;
        // SAFETY: `openat` just returned `fd` as a new descriptor that nothing else owns.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// The file type bits (`S_IFMT`) of `name` in `dir`, a link's own rather than its target's, looked at
    /// without opening anything, and on Linux the `O_PATH` descriptor they were read from (for reopening
    /// that very inode); elsewhere `fstatat(AT_SYMLINK_NOFOLLOW)`.
    pub(super) fn look(
        dir: BorrowedFd<'_>,
        name: &CStr,
    ) -> io::Result<(libc::mode_t, Option<File>)> {
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::fs::MetadataExt;
            let fd = openat(dir, name, libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC)?;
            // SAFETY: `openat` just returned `fd` as a new descriptor that nothing else owns.
            let located = unsafe { File::from_raw_fd(fd) };
            let mode = located.metadata()?.mode() & libc::S_IFMT;
            Ok((mode, Some(located)))
        }
        #[cfg(not(target_os = "linux"))]
        {
            let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
            // SAFETY: `dir` is an open descriptor and `name` a NUL-terminated string, both outliving the
            // call; `stat` is a writable `struct stat` the kernel fills in when it returns 0.
            let rc = unsafe {
                libc::fstatat(
                    dir.as_raw_fd(),
                    name.as_ptr(),
                    stat.as_mut_ptr(),
                    libc::AT_SYMLINK_NOFOLLOW,
                )
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `fstatat` returned 0, so it initialized `stat`.
            Ok((unsafe { stat.assume_init() }.st_mode & libc::S_IFMT, None))
        }
    }

    /// Whether an open with `O_NOFOLLOW` may have failed because the name is a link.
    pub(super) fn may_be_link(e: &io::Error) -> bool {
        matches!(
            e.raw_os_error(),
            Some(libc::ENOTDIR | libc::ELOOP | libc::EMLINK)
        )
    }

    fn openat(dir: BorrowedFd<'_>, name: &CStr, flags: i32) -> io::Result<i32> {
        // SAFETY: `dir` is an open descriptor borrowed for the call and `name` a NUL-terminated string that
        // outlives it; no mode is passed because `flags` never contains `O_CREAT` or `O_TMPFILE`.
        let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags) };
        if fd < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(fd)
        }
    }

    /// The target of the link `name` in `dir` (`EINVAL` if it is not a link).
    pub(super) fn read_link(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OsString> {
        let mut buf = Vec::<u8>::with_capacity(256);
        loop {
            // SAFETY: `dir` is an open descriptor and `name` a NUL-terminated string, both outliving the call;
            // the kernel writes at most `buf.capacity()` bytes to `buf`'s allocation, which `buf` owns.
            let n = unsafe {
                libc::readlinkat(
                    dir.as_raw_fd(),
                    name.as_ptr(),
                    buf.as_mut_ptr().cast(),
                    buf.capacity(),
                )
            };
            let Ok(n) = usize::try_from(n) else {
                return Err(io::Error::last_os_error());
            };
            if n < buf.capacity() {
                // SAFETY: the kernel initialized the first `n` bytes, and `n` is within the capacity.
                unsafe { buf.set_len(n) };
                return Ok(OsString::from_vec(buf));
            }
            // Possibly truncated: retry with more room (targets are at most `PATH_MAX` on Linux).
            if buf.capacity() >= 1 << 16 {
                return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
            }
            buf.reserve(buf.capacity() * 2);
        }
    }

    /// The path of the directory `dir` refers to, as the kernel records it.
    #[cfg(target_os = "linux")]
    pub(super) fn path_of(dir: BorrowedFd<'_>) -> io::Result<PathBuf> {
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
