//! Whether any process has a file open for writing at the moment its identity is taken, asked of the kernel
//! with a read lease that is released at once; no HTTP, no cache policy, no reads of the file.
//!
//! # Why
//!
//! A file being written (copied into place, downloaded, recreated after a delete) has no final version yet:
//! a mapping made now has an intermediate length and identity, and the writer's next bytes land in it
//! through the page cache. When no later write happens while a response is sent, no inotify event and no
//! `stat` can tell that response's bytes from the labels it carries. Only the kernel knows that the file is
//! still open for writing, and one interface asks it exactly: `fcntl(fd, F_SETLEASE, F_RDLCK)` fails with
//! `EAGAIN` while any process (this one included) has the inode open for writing or mapped writable
//! (`check_conflicting_open` in the kernel's `fs/locks.c`).
//!
//! # How
//!
//! [`metadata_and_writers`] takes the read lease, takes the file's metadata (`fstat`) while it holds it, and
//! releases it (`F_UNLCK`): three `fcntl` calls and the `fstat` the caller needed anyway. While the lease is
//! held no process can open the file for writing or truncate it (the kernel makes such an `open` wait until
//! the lease is released, or fail with `EWOULDBLOCK` under `O_NONBLOCK`), so the identity taken is one no
//! writer was changing; it is held for that one `fstat`, never longer (the brief window a writer may wait,
//! normally well under a microsecond, is the cost of exactness). A writer that opens the file afterwards is
//! seen as any later change is: the cache's watch, the poison flag, the final re-check of a body.
//!
//! A writer that meets the lease makes the kernel signal the lease holder, with `SIGIO` by default, whose
//! default action ends the process (measured here: a child holding a lease died of signal 29 when another
//! process opened the file for writing). So the descriptor's signal is first set to `SIGURG` (`F_SETSIG`),
//! whose default action is to ignore it: a program that handles `SIGURG` itself may see a spurious one,
//! with `si_code` `POLL_MSG`, when a writer arrives during those microseconds.
//!
//! # When the kernel will not say
//!
//! A lease needs the file's owner or `CAP_LEASE`, leases enabled (`/proc/sys/fs/leases-enable`), and a
//! filesystem that grants them (NFS, for one, refuses them). When it is refused for any of these reasons the
//! answer is [`Writers::Unknown`]: the caller behaves as it did before this check existed (the watch, the
//! poison flag and the final re-check still apply), the refusal is counted
//! ([`writer_checks_refused`]) and logged once. Platforms other than Linux always answer `Unknown`.
//!
//! # Why `unsafe`, and here
//!
//! Neither rustix (1.1, nor its main branch as of this writing) nor nix (0.31) wraps `F_SETLEASE` or
//! `F_SETSIG`, so the calls go through `libc::fcntl`, in one `unsafe` block whose commands are limited to
//! these two integer-argument ones. The check belongs to the mapping's change safety (it decides whether a
//! mapping can ever be served whole), hence `mmap/`, beside `map.rs`.

use std::fs::{File, Metadata};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

/// What the kernel said about writers of a file while its metadata was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    not(target_os = "linux"),
    allow(dead_code, reason = "only Linux has leases to tell")
)]
pub(crate) enum Writers {
    /// No process had the file open for writing.
    None,
    /// Some process (this one included) had it open for writing, or mapped writable: it is being written.
    Present,
    /// Not known: the lease was refused (see the module docs), or the platform has no leases.
    Unknown,
}

/// How many checks the kernel refused, process-wide.
static REFUSED: AtomicU64 = AtomicU64::new(0);

/// How many times this process could not learn whether a file it opened was open for writing elsewhere.
///
/// Each file the crate opens is checked for writers first (Linux: a read lease, taken and released at once):
/// a file being written when it is opened is never served whole, since its length and ETag are not those
/// of any final version. The kernel grants such a lease only to the file's owner or a process with
/// `CAP_LEASE`, with leases enabled (`/proc/sys/fs/leases-enable`), on filesystems that support them (NFS
/// does not). Every refusal is counted here and the first one logged: for those files a write in progress
/// is caught only as any other change is (the cache's watch, the bodies' checks), so a response that ends
/// before the writer's next write can still complete with the labels of an unfinished file. Always 0 for a
/// server that owns the files it serves; every open counts on platforms other than Linux.
///
/// # Examples
///
/// ```
/// # let d = tempfile::tempdir()?; let path = d.path().join("w.bin"); std::fs::write(&path, vec![1u8; 1 << 20])?;
/// let before = mmap_serve::writer_checks_refused();
/// let f = mmap_serve::MmapFile::new(&path)?; // a file this process owns
/// # #[cfg(target_os = "linux")]
/// assert_eq!(mmap_serve::writer_checks_refused(), before);
/// assert!(!f.opened_while_written());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn writer_checks_refused() -> u64 {
    REFUSED.load(Ordering::Relaxed)
}

/// Counts a refused check, and says once per process why and what it means.
fn refused(error: &io::Error) {
    REFUSED.fetch_add(1, Ordering::Relaxed);
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        tracing::warn!(
            %error,
            "mmap-serve: cannot ask the kernel whether a file is open for writing (a read lease was refused: \
             not the file's owner and no CAP_LEASE, leases disabled, or a filesystem without leases); such \
             files are checked for changes as before, and a file still being written may be served with the \
             labels of an unfinished version"
        );
    });
}

/// `file`'s metadata (`fstat`), and whether any process had it open for writing when it was taken (see the
/// module docs). `file` must be open read-only: the crate opens every file it serves so.
///
/// # Errors
///
/// Only the `fstat`'s: a refused check is [`Writers::Unknown`], not an error.
pub(crate) fn metadata_and_writers(file: &File) -> io::Result<(Metadata, Writers)> {
    #[cfg(target_os = "linux")]
    return linux::metadata_and_writers(file);
    #[cfg(not(target_os = "linux"))]
    {
        refused(&io::Error::from(io::ErrorKind::Unsupported));
        Ok((file.metadata()?, Writers::Unknown))
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::fs::{File, Metadata};
    use std::io;
    use std::os::fd::{AsFd, AsRawFd};

    use super::{Writers, refused};

    /// `F_SETSIG`, which the libc crate does not define for Linux: 10 in the kernel's `asm-generic/fcntl.h`,
    /// which these architectures use; others (parisc has 13) are not checked, the lease is never taken there.
    #[cfg(any(
        target_arch = "x86",
        target_arch = "x86_64",
        target_arch = "aarch64",
        target_arch = "arm",
        target_arch = "riscv32",
        target_arch = "riscv64",
        target_arch = "powerpc",
        target_arch = "powerpc64",
        target_arch = "s390x",
        target_arch = "loongarch64"
    ))]
    const F_SETSIG: Option<libc::c_int> = Some(10);
    #[cfg(not(any(
        target_arch = "x86",
        target_arch = "x86_64",
        target_arch = "aarch64",
        target_arch = "arm",
        target_arch = "riscv32",
        target_arch = "riscv64",
        target_arch = "powerpc",
        target_arch = "powerpc64",
        target_arch = "s390x",
        target_arch = "loongarch64"
    )))]
    const F_SETSIG: Option<libc::c_int> = None;

    /// The `fcntl` commands this module makes, each with its integer argument.
    #[derive(Clone, Copy)]
    enum Command {
        /// `F_SETSIG`: the signal sent to the descriptor's owner (for a lease: when it is broken).
        SetSignal(libc::c_int),
        /// `F_SETLEASE` with `F_RDLCK` or `F_UNLCK`.
        SetLease(libc::c_int),
        /// `F_GETLEASE`: the lease held, or the one it is being broken to (`F_UNLCK` once a writer waits).
        #[cfg(test)]
        GetLease,
    }

    fn fcntl(file: &File, command: Command) -> io::Result<libc::c_int> {
        let (cmd, arg) = match command {
            Command::SetSignal(signal) => (
                F_SETSIG.ok_or_else(|| io::Error::from(io::ErrorKind::Unsupported))?,
                signal,
            ),
            Command::SetLease(lease) => (libc::F_SETLEASE, lease),
            #[cfg(test)]
            Command::GetLease => (libc::F_GETLEASE, 0),
        };
        let fd = file.as_fd();
        // SAFETY: `fcntl` is variadic; F_SETSIG and F_SETLEASE (the commands `Command` can name, with
        // F_GETLEASE in tests) take one `int` argument or none, an `int` is passed, and none of them reads or
        // writes memory of this process. `fd` is borrowed from `file` for the call, so it names an open
        // descriptor throughout. None changes what Rust relies on about the descriptor: the signal number and
        // the lease belong to the open file description, and every lease taken is released by
        // `with_read_lease` before it returns.
        let done = unsafe { libc::fcntl(fd.as_raw_fd(), cmd, arg) };
        if done == -1 {
            Err(io::Error::last_os_error())
        } else {
            Ok(done)
        }
    }

    /// Runs `held` while `file` (open read-only) holds a read lease: no process has the file open for
    /// writing meanwhile, and one that opens it waits until `held` has returned. Released before returning.
    ///
    /// # Errors
    ///
    /// When the lease was not taken: `EAGAIN` when the file is open for writing (or a writer is waiting),
    /// `EACCES`, `EINVAL` or `ENOLCK` when leases are refused, `Unsupported` where the signal cannot be set.
    fn with_read_lease<T>(file: &File, held: impl FnOnce() -> T) -> io::Result<T> {
        // A writer meeting the lease signals its holder: SIGURG, ignored by default, instead of SIGIO, which
        // would end the process. No lease is taken unless the signal was set.
        fcntl(file, Command::SetSignal(libc::SIGURG))?;
        fcntl(file, Command::SetLease(libc::F_RDLCK))?;
        let done = held();
        if let Err(error) = fcntl(file, Command::SetLease(libc::F_UNLCK)) {
            // Only a lease already gone fails to be removed; the descriptor's close would remove any other.
            tracing::error!(%error, "mmap-serve: releasing a read lease failed");
        }
        Ok(done)
    }

    pub(super) fn metadata_and_writers(file: &File) -> io::Result<(Metadata, Writers)> {
        // Held for this one fstat: no writer can open the file meanwhile.
        match with_read_lease(file, || file.metadata()) {
            Ok(metadata) => Ok((metadata?, Writers::None)),
            // The kernel's answer to a read lease on a file open for writing, or about to be (a lease break
            // in progress): fs/locks.c, check_conflicting_open and generic_add_lease.
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                Ok((file.metadata()?, Writers::Present))
            }
            // EACCES (not the owner, no CAP_LEASE), EINVAL (no leases on this filesystem, or disabled), ENOLCK,
            // or no F_SETSIG here; EINVAL also for what is not a regular file, which the caller refuses: not
            // counted.
            Err(e) => {
                let metadata = file.metadata()?;
                if metadata.is_file() {
                    refused(&e);
                }
                Ok((metadata, Writers::Unknown))
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_writer_meeting_the_lease_waits_for_it_and_its_signal_is_harmless() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("f");
            std::fs::write(&path, [1u8; 10]).unwrap();
            let reader = File::open(&path).unwrap();
            let released = std::sync::atomic::AtomicBool::new(false);
            std::thread::scope(|s| {
                let writer = with_read_lease(&reader, || {
                    // Started under the lease: its open breaks it (F_GETLEASE then reports the F_UNLCK it is
                    // being broken to), and the kernel signals this process: with SIGIO it would end here.
                    let writer = s.spawn(|| {
                        let opened = std::fs::OpenOptions::new().write(true).open(&path);
                        (
                            opened.is_ok(),
                            released.load(std::sync::atomic::Ordering::SeqCst),
                        )
                    });
                    let start = std::time::Instant::now();
                    while fcntl(&reader, Command::GetLease).unwrap() != libc::F_UNLCK {
                        assert!(
                            start.elapsed().as_secs() < 10,
                            "the writer never met the lease"
                        );
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                    released.store(true, std::sync::atomic::Ordering::SeqCst);
                    writer
                })
                .unwrap();
                assert_eq!(
                    writer.join().unwrap(),
                    (true, true),
                    "the writer opened the file, once the lease was released"
                );
            });
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    fn file(len: usize) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![3u8; len]).unwrap();
        (dir, path)
    }

    #[test]
    fn a_file_open_for_writing_anywhere_is_being_written_and_not_once_closed() {
        let (_d, path) = file(100);
        let check = || metadata_and_writers(&File::open(&path).unwrap()).unwrap();
        assert_eq!(check().1, Writers::None);
        let writer = OpenOptions::new().append(true).open(&path).unwrap();
        let (metadata, writers) = check();
        assert_eq!(writers, Writers::Present);
        assert_eq!(metadata.len(), 100, "the metadata is taken all the same");
        drop(writer);
        assert_eq!(check().1, Writers::None);
    }

    #[test]
    fn the_lease_is_released_at_once() {
        let (_d, path) = file(100);
        let reader = File::open(&path).unwrap();
        assert_eq!(metadata_and_writers(&reader).unwrap().1, Writers::None);
        // A held read lease would make this open wait (up to lease-break-time, 45 s) and fail with
        // EWOULDBLOCK under O_NONBLOCK; released, it opens at once.
        use std::os::unix::fs::OpenOptionsExt;
        let writer = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path);
        assert!(writer.is_ok(), "{writer:?}");
        drop(reader);
    }
}
