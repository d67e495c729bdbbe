//! The SIGBUS guard: survives a file truncated under a live mapping and says that it happened; it maps no
//! file and knows nothing of HTTP or of the cache.
//!
//! # The problem
//!
//! When another process shortens a mapped file, the pages past the new end leave the mapping and the next read
//! of one of them raises SIGBUS, whose default action kills the whole process, with every other client's request.
//!
//! # What the guard does
//!
//! [`install`] puts one process-wide SIGBUS handler in place (`SA_SIGINFO | SA_ONSTACK`), remembering the
//! handler it replaces. [`Registration::new`] records a mapping's address range in a fixed-size, lock-free
//! registry (`registry.rs`). When the kernel raises SIGBUS for an access fault (`BUS_ADRERR`, or
//! `BUS_MCEERR_AR` for a hardware memory error) at an address inside a registered mapping, the handler
//! (`handler.rs`):
//!
//! 1. marks that registration poisoned ([`Registration::is_poisoned`]),
//! 2. replaces the pages from the faulting page to the end of the mapping with read-only anonymous zero pages,
//!    in one `mmap(MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS)` call, keeping `errno` (if that fails because
//!    splitting the mapping would exceed `vm.max_map_count`, it replaces the whole mapping, and if even that
//!    fails, it unmaps a reserve page kept for this moment (`reserve.rs`) and tries again),
//! 3. returns, so the faulting read runs again and reads zeros.
//!
//! Pages before the faulting one keep the file's bytes. Every other SIGBUS (an address the crate does not own,
//! a signal sent with `kill`, an alignment fault) goes to the handler that was installed before ours, or gets
//! the default action: real bugs still crash, with the signal that caused them.
//!
//! # What callers must do
//!
//! - Register a mapping before any of its bytes are read, and drop the [`Registration`] before the mapping is
//!   unmapped (in a struct, declare the `Registration` field before the mapping: fields drop in order).
//! - Check [`Registration::is_poisoned`] *after* reading: if it is still `false`, the bytes read came from the
//!   file (zeros only appear after the flag is set). A poisoned mapping must never be served again.
//! - Treat `EFAULT` from a system call that reads the mapping (`write`, `writev`, `send` of a mapped slice) as the
//!   same event: the kernel copies from the mapping itself, hits the missing page, and fails the call instead of
//!   raising SIGBUS, so the registration is *not* poisoned in that case.
//! - Ask [`sigbus_protection_active`] (or [`protection`], which says why not) before relying on it: if
//!   `sigaction` failed or another library installed its own SIGBUS handler after ours, mappings of files that
//!   may change are not protected, and the caller should read them with `pread` instead.
//!
//! # Limits
//!
//! - The handler runs on the alternate signal stack when the thread has one (threads started by `std` do) and
//!   otherwise on the thread's own stack, which is fine: beyond the kernel's signal frame (`AT_MINSIGSTKSZ`,
//!   3,376 bytes on the machine measured) it needs under 256 bytes, and it calls no allocator.
//! - In a Rust program the previous action is usually `std`'s stack-overflow handler. For a SIGBUS sent with
//!   `kill`, that handler resets SIGBUS to `SIG_DFL` and returns, so the process lives on unprotected; the
//!   guard reports it ([`Protection::Replaced`] with handler `0`).
//! - `MAP_POPULATE` does not prevent the fault (truncation removes resident pages from every mapping), and
//!   the guard handles it the same way. Mappings of hugetlbfs files are untested: a partial replacement is
//!   not huge-page aligned and fails, and the handler falls back to replacing the whole mapping.
//! - A SIGBUS raised while the thread blocks SIGBUS, or inside another SIGBUS handler, kills the process: the
//!   kernel does not deliver a blocked synchronous fault.
//! - When chaining, the previous handler's `sa_mask` is applied; its `SA_NODEFER` and `SA_RESETHAND` flags are not
//!   emulated. If another thread changes the SIGBUS action while [`install`] runs, the handler chains to the
//!   action seen just before installing.
//! - Linux only: it relies on Linux `si_code` values and glibc's `__errno_location`.
//!
//! # Why libc, not rustix
//!
//! The rest of the crate makes system calls through rustix's safe wrappers. This module calls libc, because
//! rustix offers none of its calls safely with the features the crate enables (`fs` only):
//!
//! - `sigaction` and `pthread_sigmask` (installing, querying, chaining, dying): rustix has them only as the
//!   `unsafe` `runtime::kernel_sigaction`/`kernel_sigprocmask`, which bypass libc's own signal bookkeeping and
//!   are meant for programs without libc;
//! - `mmap(MAP_FIXED)` and `munmap` in the handler, and the reserve page's `mmap`: `unsafe` in rustix as well
//!   (`rustix::mm`, a feature the crate does not enable), so they would add no safety; and the handler must save
//!   and restore glibc's `errno` around them (`__errno_location`), which only libc reaches;
//! - `sysconf(_SC_PAGESIZE)`: `rustix::param::page_size` would be safe, but needs rustix's `param` feature;
//! - `raise`, `write` and `_exit` (tests' handlers) must be async-signal-safe libc calls.
//!
//! Every `unsafe` block still carries its own SAFETY comment.

mod handler;
mod registry;
mod reserve;
#[cfg(test)]
mod tests;

use std::fmt;
use std::mem;
use std::ptr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use libc::c_int;

#[allow(
    unused_imports,
    reason = "the registry's size is part of the guard's interface; only its tests name it today"
)]
pub(crate) use registry::CAPACITY;
pub(crate) use registry::Registration;

/// Whether the process-wide SIGBUS handler is installed and still the active one.
///
/// `false` before the first mapping is registered (or the crate installs the handler), when `sigaction` refused the
/// handler, and when another library installed its own SIGBUS handler after this crate's. In those cases a file
/// truncated while it is mapped still kills the process, so files that may change should be read, not mapped.
/// Each call asks the kernel for the current action (one `sigaction` system call).
///
/// # Examples
///
/// ```
/// // Protection is installed with the first mapping; until then it is not active.
/// let active: bool = mmap_serve::sigbus_protection_active();
/// # let _ = active;
/// ```
pub fn sigbus_protection_active() -> bool {
    protection() == Protection::Active
}

/// Installs the handler once (idempotent, thread-safe); returns whether protection is active afterwards.
///
/// The first call installs the handler and remembers the previous action; later calls only report.
pub(crate) fn install() -> bool {
    installed();
    sigbus_protection_active()
}

/// Where SIGBUS protection stands, and the words to log about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protection {
    /// Nothing has installed the handler yet.
    NotInstalled,
    /// `sigaction` or `sysconf` failed with this `errno`; the handler is not installed.
    Unavailable { errno: c_int },
    /// The handler is installed and the kernel calls it for SIGBUS.
    Active,
    /// The handler was installed, but the current SIGBUS action is another one (`0` is `SIG_DFL`, `1` is
    /// `SIG_IGN`, anything else a handler's address): faults in registered mappings are no longer caught.
    Replaced { handler: usize },
}

/// Reports whether protection is active, and if not, why; asks the kernel for the current SIGBUS action.
pub(crate) fn protection() -> Protection {
    match INSTALLED.get() {
        None => Protection::NotInstalled,
        Some(Err(errno)) => Protection::Unavailable { errno: *errno },
        Some(Ok(())) => match current_action() {
            Ok(handler) if handler == handler::our_handler() => Protection::Active,
            Ok(handler) => Protection::Replaced { handler },
            Err(errno) => Protection::Unavailable { errno },
        },
    }
}

impl fmt::Display for Protection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotInstalled => f.write_str("sigbus protection is not installed yet"),
            Self::Unavailable { errno } => write!(
                f,
                "sigbus protection is unavailable ({}): a file truncated while mapped would kill the process",
                std::io::Error::from_raw_os_error(*errno)
            ),
            Self::Active => f.write_str("sigbus protection is active"),
            Self::Replaced { handler } => write!(
                f,
                "sigbus protection was lost: another SIGBUS action ({handler:#x}) replaced this crate's handler, \
                 so a file truncated while mapped would kill the process"
            ),
        }
    }
}

/// How many faults the handler has caught and contained since the process started.
pub fn caught_faults() -> u64 {
    handler::CAUGHT.load(Ordering::Relaxed)
}

// ---------------------------------------------------------------------------------------------------------------
// Installation

/// The outcome of the one installation attempt (`Err` holds `errno`).
static INSTALLED: OnceLock<Result<(), c_int>> = OnceLock::new();
/// The system page size, read at installation (`sysconf` is not async-signal-safe, so the handler reads this).
static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);

/// Installs the handler on first use; whether it is installed (not whether it is still the active one).
fn installed() -> bool {
    INSTALLED.get_or_init(install_handler).is_ok()
}

fn install_handler() -> Result<(), c_int> {
    // SAFETY: sysconf takes an integer and returns one; it has no memory-safety preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    match usize::try_from(page) {
        Ok(page) if page.is_power_of_two() => PAGE_SIZE.store(page, Ordering::Relaxed),
        _ => return Err(libc::EINVAL),
    }
    reserve::replenish();
    // SAFETY: `libc::sigaction` is a plain C struct for which all-zero is a valid value (SIG_DFL, an empty
    // mask, no flags).
    let mut previous: libc::sigaction = unsafe { mem::zeroed() };
    // SAFETY: a null new action makes this a query that changes nothing; `previous` is a valid, writable
    // `sigaction` that outlives the call, for the kernel to store the current action in.
    if unsafe { libc::sigaction(libc::SIGBUS, ptr::null(), &mut previous) } != 0 {
        return Err(last_errno());
    }
    // SAFETY: this function runs at most once (inside `INSTALLED`), and our handler, the only reader of the
    // previous action, is installed only below, after this call.
    unsafe { handler::remember_previous(previous) };

    // SAFETY: `libc::sigaction` is a plain C struct for which all-zero is a valid value; every field that
    // matters is set below.
    let mut action: libc::sigaction = unsafe { mem::zeroed() };
    action.sa_sigaction = handler::our_handler();
    action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
    // SAFETY: `sa_mask` is a valid, writable sigset_t for sigemptyset to clear.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    // SAFETY: `action` is a valid sigaction that outlives the call; its handler has the SA_SIGINFO signature
    // and is async-signal-safe (see `handler.rs`); a null old action asks for nothing back (it was read above).
    if unsafe { libc::sigaction(libc::SIGBUS, &action, ptr::null_mut()) } != 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// The current SIGBUS action (handler address, `SIG_DFL` or `SIG_IGN`), or `errno`.
fn current_action() -> Result<usize, c_int> {
    // SAFETY: `libc::sigaction` is a plain C struct for which all-zero is a valid value.
    let mut current: libc::sigaction = unsafe { mem::zeroed() };
    // SAFETY: a null new action makes this a query that changes nothing; `current` is a valid, writable
    // `sigaction` that outlives the call.
    if unsafe { libc::sigaction(libc::SIGBUS, ptr::null(), &mut current) } != 0 {
        return Err(last_errno());
    }
    Ok(current.sa_sigaction)
}

fn last_errno() -> c_int {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EINVAL)
}
