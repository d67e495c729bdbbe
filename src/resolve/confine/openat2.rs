//! `openat2(2)` with `RESOLVE_BENEATH`, through rustix: resolution and open in one kernel call; what a failure
//! means is the caller's, this only says whether the call is offered at all.

use std::fs::File;
use std::io;
use std::os::fd::BorrowedFd;
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Opens `below_root` relative to the directory `root` with `flags`, without ever leaving it.
pub(super) fn open_beneath(
    root: BorrowedFd<'_>,
    below_root: &Path,
    follow_symlinks: bool,
    flags: OFlags,
) -> io::Result<File> {
    let relative = if below_root.as_os_str().is_empty() {
        Path::new(".")
    } else {
        below_root
    };
    let mut resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    if !follow_symlinks {
        resolve |= ResolveFlags::NO_SYMLINKS;
    }
    // A name with a NUL byte fails with `EINVAL` before any call, as `std::fs::File::open` refuses it.
    let fd = rustix::fs::openat2(root, relative, flags, Mode::empty(), resolve)?;
    Ok(File::from(fd))
}

/// Whether the kernel (or a seccomp filter) does not offer `openat2`.
pub(super) fn is_unsupported(e: &io::Error) -> bool {
    matches!(
        Errno::from_io_error(e),
        Some(Errno::NOSYS | Errno::PERM | Errno::TOOBIG)
    )
}
