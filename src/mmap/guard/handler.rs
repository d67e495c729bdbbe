//! The SIGBUS handler: async-signal-safe, so no allocation, no lock, no panic, and no call that is not
//! async-signal-safe; it changes no memory but the faulting mapping's tail, the registry's poison flag and
//! the reserve page.
//!
//! A fault inside a live registered range is contained: the slot is poisoned, the pages from the faulting
//! one to the end of the mapping become read-only zero pages, `errno` is kept, and the read runs again.
//! Anything else is forwarded to the action that was in place before ours, as the kernel would have
//! delivered it, or gets the default action.

use std::cell::UnsafeCell;
use std::mem::{self, MaybeUninit};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use libc::{c_int, c_void, siginfo_t};

use super::registry::{self, Slot};
use super::reserve;

/// Faults caught in registered mappings.
pub(super) static CAUGHT: AtomicU64 = AtomicU64::new(0);

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

// SAFETY: `action` is written only by `remember_previous`, whose contract is that it runs at most once and
// before our handler is installed, before `ready` is stored with Release; it is read only after an Acquire
// load of `ready` returns true, and never written again, so shared references never meet a write.
unsafe impl Sync for Previous {}

impl Previous {
    fn get(&self) -> Option<&libc::sigaction> {
        self.ready.load(Ordering::Acquire).then(|| {
            // SAFETY: `ready` is true only after `remember_previous` initialised `action` (Release/Acquire
            // on `ready`), and nothing writes it afterwards, so it is initialised and immutable.
            unsafe { (*self.action.get()).assume_init_ref() }
        })
    }
}

/// Keeps the SIGBUS action that our handler replaces, for [`forward`].
///
/// # Safety
///
/// Called at most once in the process, before our handler is installed (so before anything reads it).
pub(super) unsafe fn remember_previous(action: libc::sigaction) {
    // SAFETY: by the contract, no other call writes `action` and no reader exists yet (readers check `ready`,
    // which is still false), so this exclusive write races nothing.
    unsafe { (*PREVIOUS.action.get()).write(action) };
    PREVIOUS.ready.store(true, Ordering::Release);
}

/// Our handler's address, as `sigaction` stores it.
pub(super) fn our_handler() -> libc::sighandler_t {
    on_sigbus as extern "C" fn(c_int, *mut siginfo_t, *mut c_void) as libc::sighandler_t
}

extern "C" fn on_sigbus(signum: c_int, info: *mut siginfo_t, context: *mut c_void) {
    if !info.is_null() {
        // SAFETY: with SA_SIGINFO the kernel passes a valid siginfo_t (checked for null anyway); for SIGBUS it
        // carries the sigfault fields that `si_addr` reads.
        let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
        if code == libc::BUS_ADRERR || code == libc::BUS_MCEERR_AR {
            if let Some((slot, (start, end))) = registry::live_slot_holding(addr) {
                if contain(slot, start, end, addr) {
                    return;
                }
            }
        }
    }
    // SAFETY: called from the SIGBUS handler with the arguments the kernel passed to it.
    unsafe { forward(signum, info, context) }
}

/// Poisons `slot` and puts zero pages from `addr`'s page to the end of `[start, end)`; false if no `mmap` worked.
fn contain(slot: &Slot, start: usize, end: usize, addr: usize) -> bool {
    // Poison first: a reader that sees a zero page afterwards also sees the flag.
    slot.poison();
    CAUGHT.fetch_add(1, Ordering::Relaxed);
    let page = super::PAGE_SIZE.load(Ordering::Relaxed);
    let Some(stop) = end.checked_next_multiple_of(page) else {
        return false;
    };
    let down = |a: usize| a & !(page - 1);
    // SAFETY: `__errno_location` has no preconditions; glibc returns this thread's errno, valid for the
    // thread's lifetime.
    let errno = unsafe { libc::__errno_location() };
    // SAFETY: `errno` points at this thread's errno (valid, aligned, only this thread touches it).
    let saved = unsafe { *errno };
    // Splitting the mapping fails once `vm.max_map_count` is reached; replacing all of it does not split, but
    // fails too when the count is already past the limit (mmap checks `count > max` first): then give back the
    // reserve page and try again.
    let replace = || zero_fill(down(addr), stop) || zero_fill(down(start), stop);
    let replaced = replace() || (reserve::release(page) && replace());
    // SAFETY: `errno` still points at this thread's errno; restoring it hides the failed calls from the code
    // the signal interrupted.
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
    // SAFETY: `info` is the kernel's siginfo for this signal (by the contract), read only when not null.
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
            // SAFETY: `libc::sigset_t` is a plain C bit set for which all-zero (the empty set) is valid.
            let mut saved: libc::sigset_t = unsafe { mem::zeroed() };
            // SAFETY: `previous.sa_mask` is the valid sigset_t the kernel gave us for the previous action, and
            // `saved` a valid, writable sigset_t for the old mask; pthread_sigmask is async-signal-safe.
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
                // SAFETY: without SA_SIGINFO, a handler address (neither SIG_DFL nor SIG_IGN, matched above)
                // is a plain `void (*)(int)`.
                let handler = unsafe { mem::transmute::<usize, extern "C" fn(c_int)>(handler) };
                handler(signum);
            }
            // SAFETY: `saved` holds the valid mask pthread_sigmask stored above; a null old mask asks for
            // nothing back.
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &saved, ptr::null_mut()) };
        }
    }
}

/// Takes the default action: restore SIG_DFL, then let the fault repeat, or re-raise a sent signal (it stays
/// pending while the handler runs and terminates the process as it returns).
fn die(signum: c_int, fault: bool) {
    // SAFETY: `libc::sigaction` is a plain C struct for which all-zero is a valid value: SIG_DFL, an empty
    // mask, no flags.
    let default: libc::sigaction = unsafe { mem::zeroed() };
    // SAFETY: `default` is a valid sigaction that outlives the call and names no handler; a null old action
    // asks for nothing back; sigaction is async-signal-safe.
    unsafe { libc::sigaction(signum, &default, ptr::null_mut()) };
    if !fault {
        // SAFETY: raise takes a signal number and is async-signal-safe; it has no memory-safety preconditions.
        unsafe { libc::raise(signum) };
    }
}
