//! The SIGBUS guard: surviving a file that is truncated under a live mapping, and knowing that it happened.
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
//! registry. When the kernel raises SIGBUS for an access fault (`BUS_ADRERR`, or `BUS_MCEERR_AR` for a hardware
//! memory error) at an address inside a registered mapping, the handler:
//!
//! 1. marks that registration poisoned ([`Registration::is_poisoned`]),
//! 2. replaces the pages from the faulting page to the end of the mapping with read-only anonymous zero pages,
//!    in one `mmap(MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS)` call, keeping `errno` (if that fails because
//!    splitting the mapping would exceed `vm.max_map_count`, it replaces the whole mapping, and if even that
//!    fails, it unmaps a reserve page kept for this moment and tries again),
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
//! # Registry and races
//!
//! The registry is [`CAPACITY`] slots of four atomics: a sequence word, start, end and the poisoned flag. The
//! two low bits of the sequence word are the slot's state (free, claimed, live); each transition adds one, so
//! the word also counts generations and never repeats. Registering claims a free slot with one
//! compare-exchange, starting at a per-thread rotating hint, writes the range, then publishes it; unregistering
//! is one store. The handler reads each slot like a seqlock (sequence, range, sequence again) and trusts a range
//! only if the slot was live and unchanged across the read. It never waits, so it cannot deadlock against a
//! registration it interrupted.
//!
//! A range read from a live slot belongs to a mapping that is still mapped, because a mapping unregisters
//! before it unmaps: the handler can only map zero pages over the mapping that faulted. The one remaining
//! window, a slot that is unregistered (and its mapping unmapped and the address reused) between the handler's
//! check and its `mmap`, needs a thread to read a mapping while it is being dropped, which is already a
//! use-after-free in the caller.
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

use std::cell::{Cell, UnsafeCell};
use std::fmt;
use std::mem::{self, MaybeUninit};
use std::ptr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};

use libc::{c_int, c_void, siginfo_t};

/// How many mappings can be registered at once; [`Registration::new`] returns `None` beyond it. As many as
/// Linux lets a process have by default (`vm.max_map_count` is 65,530), so that a cache bounded only by the
/// kernel never runs out of slots; the registry is 2 MiB of zero-initialised static memory, and a fault scans
/// it whole.
pub(crate) const CAPACITY: usize = 65536;
const _: () = assert!(CAPACITY.is_power_of_two());

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
            Ok(handler) if handler == our_handler() => Protection::Active,
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
    CAUGHT.load(Ordering::Relaxed)
}

/// A mapping registered with the handler; unregisters on drop (must be dropped BEFORE the mapping is unmapped).
#[derive(Debug)]
pub(crate) struct Registration {
    /// Index of the slot this registration holds.
    index: usize,
    /// The slot's sequence word while this registration is live (state bits = `LIVE`).
    seq: u64,
}

// Registrations move between threads with the mappings they guard.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Registration>();
};

impl Registration {
    /// Registers [ptr, ptr+len); None when the registry is full (then the caller must not rely on protection).
    ///
    /// Installs the handler first if needed, and also returns `None` when it cannot be installed or when `len`
    /// is zero (nothing to protect). When the registry has room it costs one compare-exchange (register plus
    /// unregister: 3-6 ns on one thread); a full registry costs a scan of all slots.
    ///
    /// # Safety
    ///
    /// - `[ptr, ptr + len)` lies in one read-only mapping that the caller owns, and every page overlapping that
    ///   range belongs to it (true for a `memmap2::Mmap`, whose pointer and length are used as they are);
    /// - the mapping stays mapped until the returned `Registration` is dropped;
    /// - the caller accepts that, after a fault in the range, the handler replaces the pages from the faulting
    ///   one to the end of the mapping with read-only zero pages; [`Registration::is_poisoned`] then says so.
    pub(crate) unsafe fn new(ptr: *const u8, len: usize) -> Option<Self> {
        let start = ptr as usize;
        let end = start.checked_add(len)?;
        if len == 0 || !installed() {
            return None;
        }
        let hint = next_hint();
        for offset in 0..CAPACITY {
            let index = hint.wrapping_add(offset) & (CAPACITY - 1);
            let slot = &REGISTRY[index];
            let seq = slot.seq.load(Ordering::Relaxed);
            if seq & STATE_MASK != FREE
                || slot
                    .seq
                    .compare_exchange(seq, seq + 1, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            // Seqlock writer: the claimed (odd-state) word is ordered before the range stores.
            fence(Ordering::Release);
            slot.start.store(start, Ordering::Relaxed);
            slot.end.store(end, Ordering::Relaxed);
            slot.poisoned.store(false, Ordering::Relaxed);
            slot.seq.store(seq + 2, Ordering::Release);
            return Some(Self {
                index,
                seq: seq + 2,
            });
        }
        None
    }

    /// Whether a fault inside this mapping was caught (its tail is now zero pages: the bytes are wrong).
    ///
    /// Read it after reading the bytes: `false` then means the bytes read came from the file.
    pub(crate) fn is_poisoned(&self) -> bool {
        REGISTRY[self.index].poisoned.load(Ordering::Acquire)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let slot = &REGISTRY[self.index];
        if slot.poisoned.load(Ordering::Relaxed) {
            // The handler may have spent the reserve page on this mapping.
            replenish_reserve();
        }
        // Live -> free of the next generation. Only the owner leaves the live state, so a plain store is enough.
        slot.seq
            .store(self.seq + (FREE + 4 - LIVE), Ordering::Release);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Registry

/// Mask of the state bits in `Slot::seq`; each transition adds one: free -> claimed -> live -> free (+2).
const STATE_MASK: u64 = 0b11;
const FREE: u64 = 0;
const LIVE: u64 = 2;

/// One registered mapping: `[start, end)` is meaningful only while `seq`'s state is `LIVE`.
#[repr(align(32))]
struct Slot {
    seq: AtomicU64,
    start: AtomicUsize,
    end: AtomicUsize,
    poisoned: AtomicBool,
}

impl Slot {
    const fn new() -> Self {
        Self {
            seq: AtomicU64::new(FREE),
            start: AtomicUsize::new(0),
            end: AtomicUsize::new(0),
            poisoned: AtomicBool::new(false),
        }
    }

    /// The live range holding `addr`, read as a seqlock reader: `None` unless live and unchanged during the read.
    fn live_range_holding(&self, addr: usize) -> Option<(usize, usize)> {
        let seq = self.seq.load(Ordering::Acquire);
        if seq & STATE_MASK != LIVE {
            return None;
        }
        let start = self.start.load(Ordering::Relaxed);
        let end = self.end.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        let unchanged = self.seq.load(Ordering::Relaxed) == seq;
        (unchanged && start <= addr && addr < end).then_some((start, end))
    }
}

/// The registry: 256 KiB of zeroed memory, touched only as slots get used.
static REGISTRY: [Slot; CAPACITY] = [const { Slot::new() }; CAPACITY];
/// Faults caught in registered mappings.
static CAUGHT: AtomicU64 = AtomicU64::new(0);
/// Where the next thread's registrations start looking for a free slot.
static HINT: AtomicUsize = AtomicUsize::new(0);
/// How far apart consecutive threads start (odd, so they cover every slot before meeting again).
const THREAD_SPREAD: usize = CAPACITY / 16 + 1;

thread_local! {
    /// Where this thread's next registration starts looking (`usize::MAX`: not chosen yet). A per-thread hint
    /// keeps threads on their own cache lines: with one shared counter, two threads paid 10-60 ns per pair
    /// instead of 5-16 ns (measured on 2 cores).
    static NEXT: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The slot index (before masking) this thread's next registration tries first.
fn next_hint() -> usize {
    NEXT.with(|next| {
        let mut hint = next.get();
        if hint == usize::MAX {
            hint = HINT.fetch_add(THREAD_SPREAD, Ordering::Relaxed);
        }
        next.set(hint.wrapping_add(1));
        hint
    })
}

// ---------------------------------------------------------------------------------------------------------------
// Installation

/// The outcome of the one installation attempt (`Err` holds `errno`).
static INSTALLED: OnceLock<Result<(), c_int>> = OnceLock::new();
/// The system page size, read at installation (`sysconf` is not async-signal-safe).
static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);
/// A one-page mapping the handler can unmap when the process has used up `vm.max_map_count` and no `mmap`
/// succeeds (0: none held). It is shared anonymous memory, so it never merges with a neighbour and unmapping
/// it always lowers the count by one. The handler spends it only on a mapping it poisons, so the drop of a
/// poisoned registration replenishes it (checking it on every registration cost 10 ns per pair).
static RESERVE: AtomicUsize = AtomicUsize::new(0);
/// The SIGBUS action that was in place before ours.
static PREVIOUS: Previous = Previous {
    action: UnsafeCell::new(MaybeUninit::uninit()),
    ready: AtomicBool::new(false),
};

/// The previous action, written once before `ready` is set and before our handler is installed.
struct Previous {
    action: UnsafeCell<MaybeUninit<libc::sigaction>>,
    ready: AtomicBool,
}

// SAFETY: `action` is written only by `install_handler`, which `INSTALLED` runs at most once, before `ready` is
// stored with Release; it is read only after an Acquire load of `ready` returns true, and never written again.
unsafe impl Sync for Previous {}

impl Previous {
    fn get(&self) -> Option<&libc::sigaction> {
        // SAFETY: see the `Sync` impl: once `ready` is true, `action` is initialised and immutable.
        self.ready
            .load(Ordering::Acquire)
            .then(|| unsafe { (*self.action.get()).assume_init_ref() })
    }
}

/// Installs the handler on first use; whether it is installed (not whether it is still the active one).
fn installed() -> bool {
    INSTALLED.get_or_init(install_handler).is_ok()
}

fn install_handler() -> Result<(), c_int> {
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    match usize::try_from(page) {
        Ok(page) if page.is_power_of_two() => PAGE_SIZE.store(page, Ordering::Relaxed),
        _ => return Err(libc::EINVAL),
    }
    replenish_reserve();
    // SAFETY: an all-zero `sigaction` is a valid value (SIG_DFL, empty mask, no flags).
    let mut previous: libc::sigaction = unsafe { mem::zeroed() };
    // SAFETY: a null new action only queries; `previous` is a valid place for the old one.
    if unsafe { libc::sigaction(libc::SIGBUS, ptr::null(), &mut previous) } != 0 {
        return Err(last_errno());
    }
    // SAFETY: this function runs at most once (inside `INSTALLED`), and the handler that reads `action` is not
    // installed yet, so nothing reads it concurrently.
    unsafe { (*PREVIOUS.action.get()).write(previous) };
    PREVIOUS.ready.store(true, Ordering::Release);

    // SAFETY: as above, all-zero is a valid `sigaction`.
    let mut action: libc::sigaction = unsafe { mem::zeroed() };
    action.sa_sigaction = our_handler();
    action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
    // SAFETY: `sa_mask` is a valid sigset_t to empty; `on_sigbus` has the SA_SIGINFO signature and is
    // async-signal-safe; the old action is not needed (it was read above).
    let installed = unsafe {
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGBUS, &action, ptr::null_mut())
    };
    if installed != 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// Maps a new reserve page if none is held (a no-op costing one load when one is).
fn replenish_reserve() {
    if RESERVE.load(Ordering::Relaxed) != 0 {
        return;
    }
    let page = PAGE_SIZE.load(Ordering::Relaxed);
    let flags = libc::MAP_SHARED | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
    // SAFETY: a new inaccessible mapping at an address the kernel chooses; nothing else refers to it.
    let reserve = unsafe { libc::mmap(ptr::null_mut(), page, libc::PROT_NONE, flags, -1, 0) };
    if reserve == libc::MAP_FAILED {
        return;
    }
    let kept = RESERVE.compare_exchange(0, reserve as usize, Ordering::Relaxed, Ordering::Relaxed);
    if kept.is_err() {
        // SAFETY: another thread stored its own reserve first; this one is ours alone.
        unsafe { libc::munmap(reserve, page) };
    }
}

/// Unmaps the reserve page, if one is held, to make room for one mapping; async-signal-safe.
fn release_reserve(page: usize) -> bool {
    let reserve = RESERVE.swap(0, Ordering::Relaxed);
    // SAFETY: `reserve` is a page mapped by `replenish_reserve` that only the swap above could take.
    reserve != 0 && unsafe { libc::munmap(reserve as *mut c_void, page) } == 0
}

/// The current SIGBUS action (handler address, `SIG_DFL` or `SIG_IGN`), or `errno`.
fn current_action() -> Result<usize, c_int> {
    // SAFETY: all-zero is a valid `sigaction`; a null new action only queries.
    let mut current: libc::sigaction = unsafe { mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::sigaction(libc::SIGBUS, ptr::null(), &mut current) } != 0 {
        return Err(last_errno());
    }
    Ok(current.sa_sigaction)
}

fn our_handler() -> libc::sighandler_t {
    on_sigbus as extern "C" fn(c_int, *mut siginfo_t, *mut c_void) as libc::sighandler_t
}

fn last_errno() -> c_int {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EINVAL)
}

// ---------------------------------------------------------------------------------------------------------------
// The handler: async-signal-safe, no allocation, no locks, no panics.

extern "C" fn on_sigbus(signum: c_int, info: *mut siginfo_t, context: *mut c_void) {
    if !info.is_null() {
        // SAFETY: with SA_SIGINFO the kernel passes a valid siginfo_t; for SIGBUS it carries the sigfault fields.
        let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
        if code == libc::BUS_ADRERR || code == libc::BUS_MCEERR_AR {
            let hit = REGISTRY
                .iter()
                .find_map(|slot| Some(slot).zip(slot.live_range_holding(addr)));
            if let Some((slot, (start, end))) = hit {
                if contain(slot, start, end, addr) {
                    return;
                }
            }
        }
    }
    // SAFETY: these are the arguments the kernel passed to this handler.
    unsafe { forward(signum, info, context) }
}

/// Poisons `slot` and puts zero pages from `addr`'s page to the end of `[start, end)`; false if no `mmap` worked.
fn contain(slot: &Slot, start: usize, end: usize, addr: usize) -> bool {
    // Poison first: a reader that sees a zero page afterwards also sees the flag.
    slot.poisoned.store(true, Ordering::SeqCst);
    CAUGHT.fetch_add(1, Ordering::Relaxed);
    let page = PAGE_SIZE.load(Ordering::Relaxed);
    let Some(stop) = end.checked_next_multiple_of(page) else {
        return false;
    };
    let down = |a: usize| a & !(page - 1);
    // SAFETY: glibc's errno location for this thread is always valid.
    let errno = unsafe { libc::__errno_location() };
    // SAFETY: as above.
    let saved = unsafe { *errno };
    // Splitting the mapping fails once `vm.max_map_count` is reached; replacing all of it does not split, but
    // fails too when the count is already past the limit (mmap checks `count > max` first): then give back the
    // reserve page and try again.
    let replace = || zero_fill(down(addr), stop) || zero_fill(down(start), stop);
    let replaced = replace() || (release_reserve(page) && replace());
    // SAFETY: as above.
    unsafe { *errno = saved };
    replaced
}

/// Replaces `[from, to)` with read-only anonymous zero pages.
fn zero_fill(from: usize, to: usize) -> bool {
    // SAFETY: `[from, to)` is the page-rounded tail of a range read from a live slot, so by the
    // `Registration::new` contract it lies in a read-only mapping that its owner keeps mapped while registered and
    // whose pages the owner allows us to replace. MAP_FIXED replaces exactly those pages and nothing else.
    let mapped = unsafe {
        libc::mmap(
            from as *mut c_void,
            to - from,
            libc::PROT_READ,
            libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    mapped != libc::MAP_FAILED
}

/// Gives a SIGBUS that is not ours to the previous action, as the kernel would have.
///
/// # Safety
///
/// Must be called from the SIGBUS handler with the arguments the kernel passed to it.
unsafe fn forward(signum: c_int, info: *mut siginfo_t, context: *mut c_void) {
    // SAFETY: `info` comes from the kernel (valid, or checked for null here).
    let code = (!info.is_null()).then(|| unsafe { (*info).si_code });
    // si_code > 0: raised by the kernel for a fault, which repeats when the handler returns.
    let fault = code.is_some_and(|code| code > 0);
    let Some(previous) = PREVIOUS.get() else {
        return die(signum, fault);
    };
    match previous.sa_sigaction {
        libc::SIG_DFL => die(signum, fault),
        // A fault cannot be ignored (the kernel kills for it); a sent signal that was ignored stays ignored.
        libc::SIG_IGN if fault => die(signum, fault),
        libc::SIG_IGN => {}
        handler if handler == our_handler() => die(signum, fault),
        handler => {
            // Run it with the mask it asked for; restore ours afterwards.
            // SAFETY: all-zero is a valid sigset_t, and the masks are valid sigset_t values.
            let mut saved: libc::sigset_t = unsafe { mem::zeroed() };
            // SAFETY: as above.
            unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &previous.sa_mask, &mut saved) };
            if previous.sa_flags & libc::SA_SIGINFO != 0 {
                // SAFETY: with SA_SIGINFO, a handler address is a function of this signature, installed by
                // someone who expects to be called like this for SIGBUS.
                let handler = unsafe {
                    mem::transmute::<usize, extern "C" fn(c_int, *mut siginfo_t, *mut c_void)>(
                        handler,
                    )
                };
                handler(signum, info, context);
            } else {
                // SAFETY: without SA_SIGINFO, a handler address is a plain `void (*)(int)`.
                let handler = unsafe { mem::transmute::<usize, extern "C" fn(c_int)>(handler) };
                handler(signum);
            }
            // SAFETY: `saved` holds the mask read above.
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &saved, ptr::null_mut()) };
        }
    }
}

/// Takes the default action: restore SIG_DFL, then let the fault repeat, or re-raise a sent signal (it stays
/// pending while the handler runs and terminates the process as it returns).
fn die(signum: c_int, fault: bool) {
    // SAFETY: all-zero is SIG_DFL with an empty mask; sigaction and raise are async-signal-safe.
    unsafe {
        let default: libc::sigaction = mem::zeroed();
        libc::sigaction(signum, &default, ptr::null_mut());
        if !fault {
            libc::raise(signum);
        }
    }
}

#[cfg(test)]
mod tests {
    //! Faults are process-wide, so every scenario that faults or changes the SIGBUS action runs in a child: the
    //! test re-runs this test binary on itself alone, and the parent judges the child's exit status and output.

    use std::fs::{File, OpenOptions};
    use std::hint::black_box;
    use std::io::Write as _;
    use std::os::unix::process::ExitStatusExt as _;
    use std::path::Path;
    use std::process::{Command, Output};
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::time::{Duration, Instant};

    use memmap2::{Mmap, MmapOptions};

    use super::*;

    const MIB: usize = 1 << 20;
    const PAGE: usize = 4096;
    /// Set in a child to the full name of the test it must run.
    const CHILD_ENV: &str = "MMAP_SERVE_GUARD_CHILD";
    /// Printed by a child whose scenario ran to its end.
    const DONE: &str = "GUARD-CHILD-DONE";
    const ZEROS: [u8; PAGE] = [0; PAGE];

    /// In the parent: runs `name` alone in a child process and returns its output. In that child: runs `body`.
    fn in_child(name: &str, body: impl FnOnce()) -> Option<Output> {
        let module = module_path!();
        let module = module
            .split_once("::")
            .map_or(module, |(_crate, rest)| rest);
        let full = format!("{module}::{name}");
        if std::env::var(CHILD_ENV).as_deref() == Ok(full.as_str()) {
            no_core_dumps();
            println!(); // libtest has printed "test <name> ... " without a newline
            body();
            println!("{DONE}");
            return None;
        }
        let output = Command::new(std::env::current_exe().expect("the test binary knows its path"))
            .args([full.as_str(), "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &full)
            .output()
            .expect("the test binary can run itself");
        Some(output)
    }

    fn describe(output: &Output) -> String {
        format!(
            "status {:?}\n--- stdout\n{}--- stderr\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    }

    fn stdout_has(output: &Output, marker: &str) -> bool {
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .any(|line| line == marker)
    }

    fn assert_survived(output: &Output) {
        assert!(
            output.status.success() && stdout_has(output, DONE),
            "{}",
            describe(output)
        );
    }

    /// The child printed `reached` and then died of SIGBUS, before finishing.
    fn assert_killed_by_sigbus(output: &Output, reached: &str) {
        assert_eq!(
            output.status.signal(),
            Some(libc::SIGBUS),
            "{}",
            describe(output)
        );
        assert!(
            stdout_has(output, reached) && !stdout_has(output, DONE),
            "{}",
            describe(output)
        );
    }

    fn no_core_dumps() {
        let none = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `none` is a valid rlimit.
        unsafe { libc::setrlimit(libc::RLIMIT_CORE, &none) };
    }

    /// Byte `i` of every test file: recomputable for any offset.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    fn write_file(path: &Path, len: usize) {
        std::fs::write(path, pattern(len)).expect("the temp dir is writable");
    }

    fn map(path: &Path) -> Mmap {
        let file = File::open(path).expect("the file was just written");
        // SAFETY: test files live in a private temp dir; changing them under the map is what is being tested.
        unsafe { Mmap::map(&file) }.expect("the file can be mapped")
    }

    fn register(map: &[u8]) -> Registration {
        // SAFETY: `map` is a read-only file mapping the test owns, and every test drops the registration first.
        unsafe { Registration::new(map.as_ptr(), map.len()) }.expect("the registry has room")
    }

    #[derive(Clone, Copy)]
    enum Truncator {
        ThisThread,
        OtherThread,
        OtherProcess,
    }

    fn truncate(path: &Path, len: usize, by: Truncator) {
        let set_len = move |path: &Path| {
            let file = OpenOptions::new()
                .write(true)
                .open(path)
                .expect("the file exists");
            file.set_len(len as u64).expect("the file can be truncated");
        };
        match by {
            Truncator::ThisThread => set_len(path),
            Truncator::OtherThread => {
                let path = path.to_owned();
                std::thread::spawn(move || set_len(&path))
                    .join()
                    .expect("truncating thread");
            }
            Truncator::OtherProcess => {
                let status = Command::new("truncate")
                    .args(["-s", &len.to_string()])
                    .arg(path)
                    .status()
                    .expect("coreutils truncate runs");
                assert!(status.success());
            }
        }
    }

    /// Reads every byte: the first `kept` must be the file's, the rest zeros.
    fn assert_kept_then_zeros(map: &[u8], kept: usize) {
        assert!(
            map[..kept] == pattern(kept)[..],
            "bytes before the new end changed"
        );
        let first_nonzero = map[kept..]
            .chunks(PAGE)
            .position(|page| page != &ZEROS[..page.len()]);
        assert_eq!(first_nonzero, None, "a page past the new end is not zeros");
    }

    /// Maps a file of `len` bytes, registers it, touches every page, truncates it to `new_len` and reads all.
    fn truncation_scenario(len: usize, new_len: usize, by: Truncator, poisoned: bool) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("served.bin");
        write_file(&path, len);
        let map = map(&path);
        let registration = register(&map);
        assert!(sigbus_protection_active());
        black_box(map.chunks(PAGE).map(|page| page[0] as u64).sum::<u64>());
        truncate(&path, new_len, by);
        assert!(!registration.is_poisoned(), "nothing faulted yet");
        let caught = caught_faults();
        assert_kept_then_zeros(&map, new_len);
        assert_eq!(registration.is_poisoned(), poisoned);
        println!("caught faults: {}", caught_faults() - caught);
        drop(registration);
    }

    #[test]
    fn truncation_to_1mib_in_this_thread_is_contained() {
        let Some(out) = in_child("truncation_to_1mib_in_this_thread_is_contained", || {
            truncation_scenario(64 * MIB, MIB, Truncator::ThisThread, true);
        }) else {
            return;
        };
        assert_survived(&out);
        assert!(stdout_has(&out, "caught faults: 1"), "{}", describe(&out));
    }

    #[test]
    fn truncation_to_1mib_by_another_thread_is_contained() {
        let Some(out) = in_child("truncation_to_1mib_by_another_thread_is_contained", || {
            truncation_scenario(64 * MIB, MIB, Truncator::OtherThread, true);
        }) else {
            return;
        };
        assert_survived(&out);
    }

    #[test]
    fn truncation_to_1mib_by_another_process_is_contained() {
        let Some(out) = in_child("truncation_to_1mib_by_another_process_is_contained", || {
            truncation_scenario(64 * MIB, MIB, Truncator::OtherProcess, true);
        }) else {
            return;
        };
        assert_survived(&out);
    }

    #[test]
    fn truncation_to_0_in_this_thread_is_contained() {
        let Some(out) = in_child("truncation_to_0_in_this_thread_is_contained", || {
            truncation_scenario(64 * MIB, 0, Truncator::ThisThread, true);
        }) else {
            return;
        };
        assert_survived(&out);
    }

    #[test]
    fn truncation_to_0_by_another_process_is_contained() {
        let Some(out) = in_child("truncation_to_0_by_another_process_is_contained", || {
            truncation_scenario(64 * MIB, 0, Truncator::OtherProcess, true);
        }) else {
            return;
        };
        assert_survived(&out);
    }

    #[test]
    fn truncation_of_only_the_last_page_is_contained() {
        let Some(out) = in_child("truncation_of_only_the_last_page_is_contained", || {
            truncation_scenario(64 * MIB, 64 * MIB - PAGE, Truncator::OtherProcess, true);
        }) else {
            return;
        };
        assert_survived(&out);
    }

    #[test]
    fn truncation_removing_a_partial_last_page_is_contained() {
        let Some(out) = in_child(
            "truncation_removing_a_partial_last_page_is_contained",
            || {
                truncation_scenario(10 * PAGE + 123, 10 * PAGE, Truncator::ThisThread, true);
            },
        ) else {
            return;
        };
        assert_survived(&out);
    }

    /// No page leaves the mapping, so nothing faults: the tail reads as zeros and only the file's identity
    /// (its length) tells the caller. The guard is not the whole defence.
    #[test]
    fn truncation_within_the_last_page_does_not_fault() {
        let Some(out) = in_child("truncation_within_the_last_page_does_not_fault", || {
            truncation_scenario(64 * MIB, 64 * MIB - 100, Truncator::ThisThread, false);
        }) else {
            return;
        };
        assert_survived(&out);
        assert!(stdout_has(&out, "caught faults: 0"), "{}", describe(&out));
    }

    #[test]
    fn populated_mapping_is_contained_too() {
        let Some(out) = in_child("populated_mapping_is_contained_too", || {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("populated.bin");
            write_file(&path, 8 * MIB);
            let file = File::open(&path).expect("file");
            // SAFETY: a private temp file; truncating it under the map is the test.
            let map = unsafe { MmapOptions::new().populate().map(&file) }.expect("map");
            let registration = register(&map);
            truncate(&path, MIB, Truncator::ThisThread);
            assert_kept_then_zeros(&map, MIB);
            assert!(registration.is_poisoned());
        }) else {
            return;
        };
        assert_survived(&out);
    }

    /// With `vm.max_map_count` used up (`mmap` fails), neither replacement can map until the handler spends
    /// the reserve page.
    #[test]
    fn fault_with_map_count_used_up_is_contained() {
        let Some(out) = in_child("fault_with_map_count_used_up_is_contained", || {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("crowded.bin");
            write_file(&path, 4 * MIB);
            let map = map(&path);
            let registration = register(&map);
            truncate(&path, MIB, Truncator::ThisThread);
            let fillers = use_up_map_count();
            // SAFETY: this thread's errno location is valid.
            let errno = unsafe { libc::__errno_location() };
            // SAFETY: as above.
            unsafe { *errno = 4321 };
            black_box(map[2 * MIB]);
            // SAFETY: as above.
            let errno_after = unsafe { *errno };
            println!("filler mappings: {}", fillers.len());
            for page in fillers {
                // SAFETY: each filler is a one-page mapping made by `use_up_map_count`, used by nothing.
                unsafe { libc::munmap(page, PAGE) };
            }
            assert_eq!(errno_after, 4321, "errno survives the failed mmap calls");
            assert!(registration.is_poisoned());
            // Which replacement worked depends on the kernel's map-count checks; both contain the fault.
            let prefix_kept = map[..MIB] == pattern(MIB)[..];
            println!("prefix kept: {prefix_kept}");
            assert_kept_then_zeros(&map, if prefix_kept { MIB } else { 0 });
            assert_eq!(
                RESERVE.load(Ordering::Relaxed),
                0,
                "the reserve page was spent"
            );
            drop(registration);
            let replenished = RESERVE.load(Ordering::Relaxed) != 0;
            assert!(
                replenished,
                "dropping a poisoned registration replenishes the reserve"
            );
        }) else {
            return;
        };
        assert_survived(&out);
    }

    /// Maps one-page mappings that cannot merge (alternating protections) until `mmap` fails.
    fn use_up_map_count() -> Vec<*mut c_void> {
        let mut fillers = Vec::with_capacity(1 << 17);
        while fillers.len() < fillers.capacity() {
            let prot = [libc::PROT_READ, libc::PROT_NONE][fillers.len() % 2];
            let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
            // SAFETY: a fresh anonymous mapping at an address the kernel chooses.
            let page = unsafe { libc::mmap(ptr::null_mut(), PAGE, prot, flags, -1, 0) };
            if page == libc::MAP_FAILED {
                break;
            }
            fillers.push(page);
        }
        fillers
    }

    #[test]
    fn concurrent_readers_survive_truncation_by_another_thread() {
        let Some(out) = in_child(
            "concurrent_readers_survive_truncation_by_another_thread",
            || {
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().join("busy.bin");
                write_file(&path, 64 * MIB);
                let map = map(&path);
                let registration = register(&map);
                let truncated = AtomicBool::new(false);
                std::thread::scope(|scope| {
                    for _ in 0..2 {
                        scope.spawn(|| {
                            // Keep sweeping all pages; finish with one full sweep after the truncation.
                            loop {
                                let last = truncated.load(Ordering::Acquire);
                                black_box(map.chunks(PAGE).map(|page| page[0] as u64).sum::<u64>());
                                if last {
                                    break;
                                }
                            }
                        });
                    }
                    std::thread::sleep(Duration::from_millis(50));
                    truncate(&path, MIB, Truncator::ThisThread);
                    truncated.store(true, Ordering::Release);
                });
                assert!(registration.is_poisoned());
                assert_kept_then_zeros(&map, MIB);
                println!("caught faults: {}", caught_faults());
            },
        ) else {
            return;
        };
        assert_survived(&out);
    }

    /// Runs `scenario` on a thread whose alternate signal stack is `altstack` (`None`: disabled).
    fn on_thread_with_altstack(altstack: Option<usize>, scenario: impl FnOnce() + Send) {
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let mut memory = vec![0u8; altstack.unwrap_or(0)];
                let stack = libc::stack_t {
                    ss_sp: memory.as_mut_ptr().cast(),
                    ss_flags: if altstack.is_some() {
                        0
                    } else {
                        libc::SS_DISABLE
                    },
                    ss_size: memory.len(),
                };
                // SAFETY: `memory` outlives every use of the stack: it is disabled again before it is freed.
                assert_eq!(unsafe { libc::sigaltstack(&stack, ptr::null_mut()) }, 0);
                scenario();
                let disable = libc::stack_t {
                    ss_sp: ptr::null_mut(),
                    ss_flags: libc::SS_DISABLE,
                    ss_size: 0,
                };
                // SAFETY: disabling needs no memory.
                assert_eq!(unsafe { libc::sigaltstack(&disable, ptr::null_mut()) }, 0);
                drop(memory);
            });
        });
    }

    #[test]
    fn fault_on_a_thread_without_altstack_is_contained() {
        let Some(out) = in_child("fault_on_a_thread_without_altstack_is_contained", || {
            on_thread_with_altstack(None, || {
                truncation_scenario(4 * MIB, MIB, Truncator::ThisThread, true);
            });
        }) else {
            return;
        };
        assert_survived(&out);
    }

    #[test]
    fn fault_on_a_small_altstack_is_contained() {
        let Some(out) = in_child("fault_on_a_small_altstack_is_contained", || {
            // SAFETY: getauxval has no preconditions.
            let minimum = unsafe { libc::getauxval(libc::AT_MINSIGSTKSZ) } as usize;
            // The handler's own frames need under 256 bytes beyond the kernel's signal frame (measured, debug).
            let size = minimum.max(libc::MINSIGSTKSZ) + 1024;
            on_thread_with_altstack(Some(size), || {
                truncation_scenario(4 * MIB, MIB, Truncator::ThisThread, true);
            });
        }) else {
            return;
        };
        assert_survived(&out);
    }

    #[test]
    fn fault_in_an_unregistered_mapping_kills_with_sigbus() {
        let Some(out) = in_child("fault_in_an_unregistered_mapping_kills_with_sigbus", || {
            let dir = tempfile::tempdir().expect("temp dir");
            let (ours, foreign) = (dir.path().join("ours.bin"), dir.path().join("foreign.bin"));
            write_file(&ours, 4 * MIB);
            write_file(&foreign, 4 * MIB);
            let (ours_map, foreign_map) = (map(&ours), map(&foreign));
            let _registration = register(&ours_map);
            truncate(&foreign, MIB, Truncator::OtherProcess);
            println!("faulting");
            black_box(foreign_map[2 * MIB]);
        }) else {
            return;
        };
        assert_killed_by_sigbus(&out, "faulting");
    }

    #[test]
    fn fault_after_unregistering_kills_with_sigbus() {
        let Some(out) = in_child("fault_after_unregistering_kills_with_sigbus", || {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("dropped.bin");
            write_file(&path, 4 * MIB);
            let map = map(&path);
            drop(register(&map));
            truncate(&path, MIB, Truncator::ThisThread);
            println!("faulting");
            black_box(map[2 * MIB]);
        }) else {
            return;
        };
        assert_killed_by_sigbus(&out, "faulting");
    }

    extern "C" fn user_siginfo_handler(_: c_int, info: *mut siginfo_t, _: *mut c_void) {
        // SAFETY: the kernel's siginfo, passed on unchanged by the guard.
        let code = unsafe { (*info).si_code };
        let message: &[u8] = if code == libc::BUS_ADRERR {
            b"user handler: BUS_ADRERR\n"
        } else {
            b"user handler: other code\n"
        };
        // SAFETY: write and _exit are async-signal-safe; the buffer is valid.
        unsafe {
            libc::write(1, message.as_ptr().cast(), message.len());
            libc::_exit(42);
        }
    }

    extern "C" fn user_plain_handler(_: c_int) {
        let message = b"plain user handler\n";
        // SAFETY: write and _exit are async-signal-safe; the buffer is valid.
        unsafe {
            libc::write(1, message.as_ptr().cast(), message.len());
            libc::_exit(43);
        }
    }

    fn set_sigbus_action(handler: libc::sighandler_t, flags: c_int) {
        // SAFETY: all-zero is a valid sigaction; the handlers passed here fit `flags`.
        unsafe {
            let mut action: libc::sigaction = mem::zeroed();
            action.sa_sigaction = handler;
            action.sa_flags = flags;
            assert_eq!(libc::sigaction(libc::SIGBUS, &action, ptr::null_mut()), 0);
        }
    }

    /// Contains a fault in a registered mapping, then faults in an unregistered one.
    fn contained_then_foreign_fault() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (ours, foreign) = (dir.path().join("ours.bin"), dir.path().join("foreign.bin"));
        write_file(&ours, 4 * MIB);
        write_file(&foreign, 4 * MIB);
        let (ours_map, foreign_map) = (map(&ours), map(&foreign));
        let registration = register(&ours_map);
        truncate(&ours, MIB, Truncator::ThisThread);
        truncate(&foreign, MIB, Truncator::ThisThread);
        black_box(ours_map[2 * MIB]);
        assert!(registration.is_poisoned());
        println!("contained");
        black_box(foreign_map[2 * MIB]);
    }

    #[test]
    fn previous_siginfo_handler_receives_foreign_faults() {
        let Some(out) = in_child("previous_siginfo_handler_receives_foreign_faults", || {
            let handler = user_siginfo_handler as extern "C" fn(c_int, *mut siginfo_t, *mut c_void);
            set_sigbus_action(handler as libc::sighandler_t, libc::SA_SIGINFO);
            assert!(install());
            contained_then_foreign_fault();
        }) else {
            return;
        };
        assert_eq!(out.status.code(), Some(42), "{}", describe(&out));
        assert!(stdout_has(&out, "contained"), "{}", describe(&out));
        assert!(
            stdout_has(&out, "user handler: BUS_ADRERR"),
            "{}",
            describe(&out)
        );
    }

    #[test]
    fn previous_plain_handler_receives_foreign_faults() {
        let Some(out) = in_child("previous_plain_handler_receives_foreign_faults", || {
            let handler = user_plain_handler as extern "C" fn(c_int);
            set_sigbus_action(handler as libc::sighandler_t, 0);
            assert!(install());
            contained_then_foreign_fault();
        }) else {
            return;
        };
        assert_eq!(out.status.code(), Some(43), "{}", describe(&out));
        assert!(
            stdout_has(&out, "contained") && stdout_has(&out, "plain user handler"),
            "{}",
            describe(&out)
        );
    }

    #[test]
    fn sent_sigbus_with_default_previous_action_kills() {
        let Some(out) = in_child("sent_sigbus_with_default_previous_action_kills", || {
            set_sigbus_action(libc::SIG_DFL, 0);
            assert!(install());
            println!("raising");
            // SAFETY: raise has no memory-safety preconditions.
            unsafe { libc::raise(libc::SIGBUS) };
        }) else {
            return;
        };
        assert_killed_by_sigbus(&out, "raising");
    }

    #[test]
    fn ignored_previous_action_ignores_sent_sigbus_but_not_faults() {
        let Some(out) = in_child(
            "ignored_previous_action_ignores_sent_sigbus_but_not_faults",
            || {
                set_sigbus_action(libc::SIG_IGN, 0);
                assert!(install());
                // SAFETY: raise has no memory-safety preconditions.
                unsafe { libc::raise(libc::SIGBUS) };
                assert!(
                    sigbus_protection_active(),
                    "an ignored signal leaves the handler in place"
                );
                contained_then_foreign_fault();
            },
        ) else {
            return;
        };
        assert_killed_by_sigbus(&out, "contained");
    }

    #[test]
    fn replaced_handler_is_reported() {
        let Some(out) = in_child("replaced_handler_is_reported", || {
            assert_eq!(protection(), Protection::NotInstalled);
            assert!(!sigbus_protection_active());
            assert!(install());
            assert!(install(), "installing twice keeps it active");
            assert_eq!(protection(), Protection::Active);
            let handler = user_plain_handler as extern "C" fn(c_int);
            set_sigbus_action(handler as libc::sighandler_t, 0);
            assert!(!sigbus_protection_active());
            assert!(
                !install(),
                "install does not fight another library for the signal"
            );
            let status = protection();
            assert_eq!(
                status,
                Protection::Replaced {
                    handler: handler as usize
                }
            );
            println!("{status}");
        }) else {
            return;
        };
        assert_survived(&out);
        assert!(String::from_utf8_lossy(&out.stdout).contains("sigbus protection was lost"));
    }

    #[test]
    fn full_registry_refuses_until_a_slot_frees() {
        let Some(out) = in_child("full_registry_refuses_until_a_slot_frees", || {
            let pages = MmapOptions::new()
                .len(CAPACITY * PAGE)
                .map_anon()
                .expect("anon map");
            let pages = pages.make_read_only().expect("read-only");
            let mut registrations: Vec<_> = pages.chunks(PAGE).map(register).collect();
            // SAFETY: as in `register`; it is refused, so nothing is registered.
            assert!(unsafe { Registration::new(pages.as_ptr(), PAGE) }.is_none());
            let freed = registrations.swap_remove(1234).index;
            let again = register(&pages[..PAGE]);
            assert_eq!(again.index, freed);
            drop(again);
            drop(registrations);
        }) else {
            return;
        };
        assert_survived(&out);
    }

    #[test]
    fn empty_and_overflowing_ranges_are_refused() {
        // SAFETY: both are refused before anything is registered.
        unsafe {
            assert!(Registration::new(ptr::dangling(), 0).is_none());
            assert!(Registration::new(usize::MAX as *const u8, 2).is_none());
        }
    }

    #[test]
    fn unregistering_frees_the_slot_for_the_next_generation() {
        let pages = MmapOptions::new().len(PAGE).map_anon().expect("anon map");
        let pages = pages.make_read_only().expect("read-only");
        let registration = register(&pages);
        let (index, seq) = (registration.index, registration.seq);
        assert_eq!(seq & STATE_MASK, LIVE);
        assert!(!registration.is_poisoned());
        let inside = pages.as_ptr() as usize + 10;
        assert_eq!(
            REGISTRY[index].live_range_holding(inside).map(|(s, _)| s),
            Some(pages.as_ptr() as usize)
        );
        assert_eq!(REGISTRY[index].live_range_holding(inside + PAGE), None);
        drop(registration);
        assert_eq!(REGISTRY[index].live_range_holding(inside), None);
        assert!(
            REGISTRY[index].seq.load(Ordering::Relaxed) >= seq + 2,
            "generations only grow"
        );
    }

    /// The kernel, copying out of a truncated mapping for a system call, fails the call with EFAULT instead of
    /// raising SIGBUS: the registration is not poisoned, and the caller must treat the error as the same event.
    #[test]
    fn kernel_copies_from_a_truncated_mapping_fail_with_efault() {
        let Some(out) = in_child(
            "kernel_copies_from_a_truncated_mapping_fail_with_efault",
            || {
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().join("sent.bin");
                write_file(&path, 4 * PAGE);
                let map = map(&path);
                let registration = register(&map);
                truncate(&path, PAGE, Truncator::OtherProcess);
                let (mut socket, _peer) =
                    std::os::unix::net::UnixStream::pair().expect("socket pair");
                let sent = socket.write(&map[2 * PAGE..3 * PAGE]);
                assert_eq!(sent.map_err(|e| e.raw_os_error()), Err(Some(libc::EFAULT)));
                let mut sink = tempfile::tempfile().expect("temp file");
                let written = sink.write(&map[2 * PAGE..]);
                assert_eq!(
                    written.map_err(|e| e.raw_os_error()),
                    Err(Some(libc::EFAULT))
                );
                assert!(!registration.is_poisoned());
                assert_eq!(caught_faults(), 0);
            },
        ) else {
            return;
        };
        assert_survived(&out);
    }

    /// How the main crate composes it: one owner holding the registration before the map, behind `Bytes`.
    #[test]
    fn bytes_owner_keeps_registration_until_the_last_slice() {
        struct Guarded {
            registration: Registration, // dropped first: fields drop in declaration order
            map: Mmap,
        }
        struct Shared(Arc<Guarded>);
        impl AsRef<[u8]> for Shared {
            fn as_ref(&self) -> &[u8] {
                &self.0.map
            }
        }
        let Some(out) = in_child(
            "bytes_owner_keeps_registration_until_the_last_slice",
            || {
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().join("owned.bin");
                write_file(&path, 4 * MIB);
                let map = map(&path);
                let guarded = Arc::new(Guarded {
                    registration: register(&map),
                    map,
                });
                let index = guarded.registration.index;
                let body = bytes::Bytes::from_owner(Shared(Arc::clone(&guarded)));
                let tail = body.slice(3 * MIB..);
                drop(body);
                truncate(&path, MIB, Truncator::OtherProcess);
                assert!(tail.iter().all(|&b| b == 0));
                assert!(guarded.registration.is_poisoned());
                drop((guarded, tail));
                assert_eq!(
                    REGISTRY[index].seq.load(Ordering::Relaxed) & STATE_MASK,
                    FREE
                );
            },
        ) else {
            return;
        };
        assert_survived(&out);
    }

    /// Figures, not assertions: `cargo test --release measure_ -- --nocapture --test-threads=1`.
    #[test]
    fn measure_register_unregister_pair() {
        const PAIRS: u32 = 1_000_000;
        let pages = MmapOptions::new().len(PAGE).map_anon().expect("anon map");
        let pages = pages.make_read_only().expect("read-only");
        let pairs = || {
            let start = Instant::now();
            for _ in 0..PAIRS {
                drop(black_box(register(black_box(&pages))));
            }
            start.elapsed()
        };
        pairs();
        let one = pairs();
        let two = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..2).map(|_| scope.spawn(pairs)).collect();
            workers
                .into_iter()
                .map(|w| w.join().expect("worker"))
                .max()
                .expect("two workers")
        });
        println!(
            "register+unregister: {:.1} ns/pair on one thread, {:.1} ns/pair on each of two threads",
            one.as_nanos() as f64 / f64::from(PAIRS),
            two.as_nanos() as f64 / f64::from(PAIRS)
        );
        let start = Instant::now();
        for _ in 0..100_000 {
            black_box(sigbus_protection_active());
        }
        println!(
            "sigbus_protection_active: {:.1} ns/call",
            start.elapsed().as_nanos() as f64 / 1e5
        );
    }

    #[test]
    fn measure_contained_fault() {
        let Some(out) = in_child("measure_contained_fault", || {
            const FILES: usize = 200;
            let dir = tempfile::tempdir().expect("temp dir");
            let fault_times = |live_slots: usize| {
                let fillers = MmapOptions::new()
                    .len(live_slots.max(1) * PAGE)
                    .map_anon()
                    .expect("anon");
                let fillers = fillers.make_read_only().expect("read-only");
                let _held: Vec<_> = fillers
                    .chunks(PAGE)
                    .take(live_slots)
                    .map(register)
                    .collect();
                let maps: Vec<_> = (0..FILES)
                    .map(|i| {
                        let path = dir.path().join(format!("{live_slots}-{i}.bin"));
                        write_file(&path, 2 * PAGE);
                        let map = map(&path);
                        truncate(&path, PAGE, Truncator::ThisThread);
                        map
                    })
                    .collect();
                let registrations: Vec<_> = maps.iter().map(|m| register(m)).collect();
                let mut times: Vec<_> = maps
                    .iter()
                    .map(|map| {
                        let start = Instant::now();
                        black_box(map[PAGE]);
                        start.elapsed()
                    })
                    .collect();
                assert!(registrations.iter().all(Registration::is_poisoned));
                times.sort();
                (times[FILES / 2], times[FILES * 99 / 100])
            };
            for live in [0, CAPACITY - FILES] {
                let (median, p99) = fault_times(live);
                println!(
                    "contained fault with {} live slots: median {:.1} us, p99 {:.1} us",
                    live + FILES,
                    median.as_nanos() as f64 / 1e3,
                    p99.as_nanos() as f64 / 1e3
                );
            }
            let path = dir.path().join("big.bin");
            write_file(&path, 64 * MIB);
            let map = map(&path);
            let registration = register(&map);
            truncate(&path, MIB, Truncator::OtherProcess);
            let start = Instant::now();
            black_box(map.chunks(PAGE).map(|page| page[0] as u64).sum::<u64>());
            println!(
                "reading 64 MiB truncated to 1 MiB, one byte per page: {:.2} ms",
                start.elapsed().as_secs_f64() * 1e3
            );
            assert!(registration.is_poisoned());
        }) else {
            return;
        };
        assert_survived(&out);
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
}
