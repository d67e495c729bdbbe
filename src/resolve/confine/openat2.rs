//! `openat2(2)` with `RESOLVE_BENEATH`: resolution and open in one kernel call.
#![allow(
    unsafe_code,
    reason = "openat2 has no wrapper in std or libc; it is called with libc::syscall"
)]

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `struct open_how` of `<linux/openat2.h>` (version 0, 24 bytes).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Opens `below_root` relative to the directory `root` with `flags`, without ever leaving it.
pub(super) fn open_beneath(
    root: BorrowedFd<'_>,
    below_root: &Path,
    follow_symlinks: bool,
    flags: i32,
) -> io::Result<File> {
    let relative = if below_root.as_os_str().is_empty() {
        Path::new(".")
    } else {
        below_root
    };
    let name = CString::new(relative.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::NotFound))?;
    let mut resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
    if !follow_symlinks {
        resolve |= libc::RESOLVE_NO_SYMLINKS;
    }
    let how = OpenHow {
        flags: flags as u64,
        mode: 0,
        resolve,
    };
    // SAFETY: `root` is an open directory descriptor, `name` a NUL-terminated string, and `how` a valid
    // `open_how` whose size is passed with it; all three outlive the call, which writes to none of them.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            name.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(fd)
        .map_err(|_| io::Error::other("openat2 returned an invalid descriptor"))?;
    // SAFETY: the kernel just returned `fd` as a new descriptor that nothing else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Whether the kernel (or a seccomp filter) does not offer `openat2`.
pub(super) fn is_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSYS | libc::EPERM | libc::E2BIG)
    )
}
