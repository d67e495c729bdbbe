//! The reserve page: one spare mapping that the handler can give back when the process has used up
//! `vm.max_map_count`; it guards nothing and reads no registry.
//!
//! It is shared anonymous memory, so it never merges with a neighbour and unmapping it always lowers the
//! process's map count by one. The handler spends it only on a mapping it poisons, so the drop of a poisoned
//! registration replenishes it (checking it on every registration cost 10 ns per pair).

use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};

use libc::c_void;

/// The reserve page's address (0: none held).
pub(super) static RESERVE: AtomicUsize = AtomicUsize::new(0);

/// Maps a new reserve page if none is held (a no-op costing one load when one is). Not async-signal-safe
/// (it may race another thread's replenishing, and loses gracefully), so never called from the handler.
pub(super) fn replenish() {
    if RESERVE.load(Ordering::Relaxed) != 0 {
        return;
    }
    let page = super::PAGE_SIZE.load(Ordering::Relaxed);
    let flags = libc::MAP_SHARED | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
    // SAFETY: a new inaccessible mapping at an address the kernel chooses (no MAP_FIXED), so no existing
    // memory is affected and nothing else refers to the result.
    let reserve = unsafe { libc::mmap(ptr::null_mut(), page, libc::PROT_NONE, flags, -1, 0) };
    if reserve == libc::MAP_FAILED {
        return;
    }
    let kept = RESERVE.compare_exchange(0, reserve as usize, Ordering::Relaxed, Ordering::Relaxed);
    if kept.is_err() {
        // SAFETY: another thread stored its own reserve first, so the page mapped just above was never
        // published: this thread alone knows its address, and nothing reads it.
        unsafe { libc::munmap(reserve, page) };
    }
}

/// Unmaps the reserve page, if one is held, to make room for one mapping; async-signal-safe (one atomic swap
/// and one `munmap`). Returns whether a page was given back.
pub(super) fn release(page: usize) -> bool {
    let reserve = RESERVE.swap(0, Ordering::Relaxed);
    // SAFETY: a non-zero `reserve` is a page mapped by `replenish`, published once and taken by this swap
    // alone; it is PROT_NONE, so no reference into it exists, and unmapping it affects nothing else.
    reserve != 0 && unsafe { libc::munmap(reserve as *mut c_void, page) } == 0
}
