//! Keeping an opened file beneath a root directory, symbolic links included.
//!
//! Resolvers check URL paths lexically and do no I/O; what the path means on disk (symbolic links, a root
//! that is itself a link) is decided here, in blocking code the service runs inside
//! `tokio::task::spawn_blocking` just before it opens the file.
//!
//! # Races
//!
//! On Linux 5.6 and later, [`Confinement::open`] resolves and opens in one `openat2(2)` call with
//! `RESOLVE_BENEATH` (and `RESOLVE_NO_SYMLINKS` when links are refused): a directory swapped for a link
//! between two steps cannot lead outside, because there are no two steps. Where `openat2` is unavailable, and
//! for paths crossing an absolute link (which `RESOLVE_BENEATH` always refuses), [`Confinement::check`]
//! canonicalizes and compares, then the canonical target is opened: someone able to write beneath the root
//! could swap a checked component for a link in between. That fallback protects against links the operator or
//! the content left in the tree, not against a concurrent attacker with write access to it.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// Flags every served file is opened with: read-only, and never blocking on a FIFO or becoming a terminal.
const OPEN_FLAGS: i32 = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;

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
    /// On Linux 5.6 and later this is one `openat2(2)` call relative to the root with `RESOLVE_BENEATH` (and
    /// `RESOLVE_NO_SYMLINKS` when links are refused): the kernel resolves and opens in one step, so a link
    /// swapped in concurrently cannot lead outside. Where `openat2` is missing or filtered (`ENOSYS`, `EPERM`),
    /// or `path` is not lexically beneath the configured root, or the path crosses an absolute symbolic link
    /// (which `RESOLVE_BENEATH` always refuses, even when it points inside the root), it falls back to
    /// [`check`](Self::check) and opening the canonical target.
    ///
    /// The file is opened non-blocking without a controlling terminal; the caller refuses anything that is not
    /// a regular file.
    ///
    /// # Errors
    ///
    /// As [`check`](Self::check): `NotFound` for a missing file and for any escape; resource errors (`EMFILE`,
    /// `ENFILE`, `ENOMEM`) unchanged, so that they can be answered with 503.
    pub(crate) fn open(&self, path: &Path) -> io::Result<File> {
        #[cfg(target_os = "linux")]
        if let Ok(below_root) = path.strip_prefix(&self.root) {
            match openat2::open_beneath(&self.root, below_root, self.follow_symlinks) {
                Ok(file) => return Ok(file),
                Err(e) if openat2::is_unsupported(&e) => {}
                // RESOLVE_BENEATH refuses every absolute link, even one to a file inside the root: let the
                // canonical check decide those.
                Err(e) if self.follow_symlinks && e.raw_os_error() == Some(libc::EXDEV) => {}
                Err(e) => return Err(openat2::client_error(e)),
            }
        }
        let target = self.check(path)?;
        OpenOptions::new()
            .read(true)
            .custom_flags(OPEN_FLAGS & !libc::O_RDONLY & !libc::O_CLOEXEC)
            .open(target)
    }

    /// Returns the path to open: the canonical target of `path`, guaranteed (as of this call) to lie under
    /// the canonical root.
    ///
    /// This does blocking file-system I/O; call it off the async executor. The root is canonicalized on
    /// every call rather than once, so that a root which is a symbolic link may be switched atomically to a
    /// new tree (the usual way to deploy one) and the next request sees it. A relative root is resolved
    /// against the current working directory at the time of the call.
    ///
    /// With `follow_symlinks`, `path` may be any path whose target (all links followed) lies beneath the
    /// canonical root. Without it, `path` must be lexically beneath the configured root (the root followed
    /// by plain names, as [`DirResolver`](super::DirResolver) builds it), and no component after the root may
    /// be a symbolic link; the root itself may be one.
    ///
    /// # Errors
    ///
    /// - `io::ErrorKind::NotFound` when the target is missing, lies outside the root, crosses a refused
    ///   symbolic link, or cannot be resolved for any other reason (a component not a directory, a loop,
    ///   no permission, a name too long). These all look the same, so that a client cannot learn anything
    ///   about the file system outside the root.
    /// - The error of canonicalizing the root itself, unchanged, when the root cannot be resolved (it is the
    ///   operator's configuration, not the client's input).
    pub(crate) fn check(&self, path: &Path) -> io::Result<PathBuf> {
        let root = fs::canonicalize(&self.root)?;
        if self.follow_symlinks {
            let target = fs::canonicalize(path).map_err(|_| not_found())?;
            // `starts_with` compares whole components: `/srv/www2` is not beneath `/srv/www`.
            if target.starts_with(&root) {
                Ok(target)
            } else {
                Err(not_found())
            }
        } else {
            let below_root = path.strip_prefix(&self.root).map_err(|_| not_found())?;
            walk_without_symlinks(root, below_root)
        }
    }
}

#[cfg(target_os = "linux")]
mod openat2;

/// Appends the plain names of `below_root` to the canonical `root` one at a time, refusing any component
/// that is a symbolic link, is missing, or is not a plain name.
fn walk_without_symlinks(root: PathBuf, below_root: &Path) -> io::Result<PathBuf> {
    let mut target = root;
    for component in below_root.components() {
        match component {
            Component::Normal(name) => {
                target.push(name);
                let metadata = fs::symlink_metadata(&target).map_err(|_| not_found())?;
                if metadata.file_type().is_symlink() {
                    return Err(not_found());
                }
            }
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(not_found());
            }
        }
    }
    Ok(target)
}

/// The one error a client-facing failure turns into, whatever its cause.
fn not_found() -> io::Error {
    io::ErrorKind::NotFound.into()
}

#[cfg(test)]
mod tests;
