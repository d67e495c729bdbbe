//! The registry of guarded mappings: fixed, lock-free slots that the signal handler can read without
//! waiting; it makes no system call and never touches a mapping's bytes.
//!
//! # Slots and races
//!
//! The registry is [`CAPACITY`] slots of four atomics: a sequence word, start, end and the poisoned flag,
//! 32 bytes each with padding, so 2 MiB of zero-initialised static memory (in `.bss`: pages are touched as
//! slots get used, and all of them by a fault's scan). The two low bits of the sequence word are the slot's
//! state (free, claimed, live); each transition adds one, so the word also counts generations and never
//! repeats. Registering claims a free slot with one compare-exchange, starting at a per-thread rotating hint,
//! writes the range, then publishes it; unregistering is one store. The handler reads each slot like a seqlock
//! (sequence, range, sequence again) and trusts a range only if the slot was live and unchanged across the
//! read. It never waits, so it cannot deadlock against a registration it interrupted.
//!
//! A range read from a live slot belongs to a mapping that is still mapped, because a mapping unregisters
//! before it unmaps: the handler can only map zero pages over the mapping that faulted. The one remaining
//! window, a slot that is unregistered (and its mapping unmapped and the address reused) between the handler's
//! check and its `mmap`, needs a thread to read a mapping while it is being dropped, which is already a
//! use-after-free in the caller.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};

/// How many mappings can be registered at once; [`Registration::new`] returns `None` beyond it. As many as
/// Linux lets a process have by default (`vm.max_map_count` is 65,530), so that a cache bounded only by the
/// kernel never runs out of slots; the registry is 2 MiB (65,536 slots of 32 bytes) of zero-initialised static
/// memory, and a fault scans it whole.
pub(crate) const CAPACITY: usize = 65536;
const _: () = assert!(CAPACITY.is_power_of_two());
const _: () = assert!(
    size_of::<Slot>() == 32,
    "the registry's size in the docs: 2 MiB"
);

/// A mapping registered with the handler; unregisters on drop (must be dropped BEFORE the mapping is unmapped).
#[derive(Debug)]
pub(crate) struct Registration {
    /// Index of the slot this registration holds.
    pub(super) index: usize,
    /// The slot's sequence word while this registration is live (state bits = `LIVE`).
    pub(super) seq: u64,
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
        if len == 0 || !super::installed() {
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
            super::reserve::replenish();
        }
        // Live -> free of the next generation. Only the owner leaves the live state, so a plain store is enough.
        slot.seq
            .store(self.seq + (FREE + 4 - LIVE), Ordering::Release);
    }
}

/// Mask of the state bits in `Slot::seq`; each transition adds one: free -> claimed -> live -> free (+2).
pub(super) const STATE_MASK: u64 = 0b11;
pub(super) const FREE: u64 = 0;
pub(super) const LIVE: u64 = 2;

/// One registered mapping: `[start, end)` is meaningful only while `seq`'s state is `LIVE`.
#[repr(align(32))]
pub(super) struct Slot {
    pub(super) seq: AtomicU64,
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
    pub(super) fn live_range_holding(&self, addr: usize) -> Option<(usize, usize)> {
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

    /// Marks the mapping poisoned, before the handler replaces any page: a reader that sees a zero page
    /// afterwards also sees the flag.
    pub(super) fn poison(&self) {
        self.poisoned.store(true, Ordering::SeqCst);
    }
}

/// The live slot whose range holds `addr`, and that range; lock-free and async-signal-safe (loads only).
pub(super) fn live_slot_holding(addr: usize) -> Option<(&'static Slot, (usize, usize))> {
    REGISTRY
        .iter()
        .find_map(|slot| Some(slot).zip(slot.live_range_holding(addr)))
}

/// The registry: 2 MiB of zeroed memory, touched only as slots get used (and whole by a fault's scan).
pub(super) static REGISTRY: [Slot; CAPACITY] = [const { Slot::new() }; CAPACITY];
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
