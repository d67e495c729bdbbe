//! The mapping of one file and its registration with the SIGBUS guard: the crate's only `unsafe` outside the
//! guard itself; no HTTP, no cache policy, no reads of the mapped bytes.
//!
//! A [`Mapping`] moves into a single [`Bytes`] owner at once ([`map`] returns both), so every slice handed out
//! is an O(1) slice of that owner and none outlives the map; the raw address goes to the guard's registry and
//! nowhere else.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use memmap2::{Mmap, MmapOptions};

use super::config::MmapConfig;
use super::residency::{Residency, ask_for, bring_in, exact_for, is_resident, populate};
use crate::MmapError;

/// A mapping and what guards it. Fields drop in order: the registration goes before the map is unmapped.
#[derive(Debug)]
pub(crate) struct Mapping {
    #[cfg(target_os = "linux")]
    registration: Option<super::guard::Registration>,
    map: Mmap,
    /// Whether the guard was active and the mapping registered with it when it was made.
    protected: bool,
    /// Whether `mincore` tells the truth about this file's pages (see `residency::exact_for`).
    exact_residency: bool,
}

impl Mapping {
    /// Whether a truncation under the mapping was caught: its tail now reads as zeros.
    pub(crate) fn is_poisoned(&self) -> bool {
        #[cfg(target_os = "linux")]
        if self.registration.as_ref().is_some_and(|r| r.is_poisoned()) {
            return true;
        }
        false
    }

    /// Whether the guard protected the mapping when it was made (see [`map`]).
    pub(crate) fn is_protected(&self) -> bool {
        self.protected
    }

    /// Where `frame` starts in the mapping, when it is a non-empty slice of it (address arithmetic only).
    fn offset_of(&self, frame: &[u8]) -> Option<usize> {
        let offset = (frame.as_ptr() as usize).checked_sub(self.map.as_ptr() as usize)?;
        (!frame.is_empty() && offset + frame.len() <= self.map.len()).then_some(offset)
    }

    /// Whether the pages of `frame` and of the `tail` bytes after it (as far as the mapping goes) are in
    /// memory: one `mincore` call for up to 2 MiB.
    pub(crate) fn residency(&self, frame: &[u8], tail: usize) -> Residency {
        match self.span(frame, tail) {
            None => Residency::Unmapped,
            Some((offset, len)) if self.exact_residency && is_resident(&self.map, offset, len) => {
                Residency::Resident
            }
            Some(_) => Residency::Cold,
        }
    }

    /// Brings the pages of `frame` and of the `tail` bytes after it (as far as the mapping goes) into memory
    /// (blocking: see `residency::bring_in`); nothing for a frame that is not a slice of the mapping.
    ///
    /// # Errors
    ///
    /// `UnexpectedEof` when the file was truncated under the range.
    pub(crate) fn bring_in(&self, frame: &[u8], tail: usize) -> std::io::Result<()> {
        match self.span(frame, tail) {
            Some((offset, len)) => bring_in(&self.map, offset, len),
            None => Ok(()),
        }
    }

    /// Asks for the pages of `frame` and of the `tail` bytes after it to be read, without waiting for them
    /// (see `residency::ask_for`); nothing for a frame that is not a slice of the mapping.
    pub(crate) fn ask_for(&self, frame: &[u8], tail: usize) {
        if let Some((offset, len)) = self.span(frame, tail) {
            ask_for(&self.map, offset, len);
        }
    }

    /// Faults in the pages of `frame` and of the `tail` bytes after it, waiting for reads asked for before
    /// (blocking: see `residency::populate`).
    ///
    /// # Errors
    ///
    /// `UnexpectedEof` when the file was truncated under the range.
    pub(crate) fn populate(&self, frame: &[u8], tail: usize) -> std::io::Result<()> {
        match self.span(frame, tail) {
            Some((offset, len)) => populate(&self.map, offset, len),
            None => Ok(()),
        }
    }

    /// Where `frame` and the `tail` bytes after it (as far as the mapping goes) lie in the mapping.
    fn span(&self, frame: &[u8], tail: usize) -> Option<(usize, usize)> {
        let offset = self.offset_of(frame)?;
        Some((offset, (frame.len() + tail).min(self.map.len() - offset)))
    }
}

/// Whether a mapping made now would be protected against truncation: the SIGBUS guard is installed and still
/// the process's handler (one `sigaction` call). Never on platforms without the guard.
pub(crate) fn protection_active() -> bool {
    #[cfg(target_os = "linux")]
    return super::guard::install();
    #[cfg(not(target_os = "linux"))]
    false
}

/// The `Bytes` owner: every slice of a mapped file holds the mapping through this.
struct SharedMapping(Arc<Mapping>);

impl AsRef<[u8]> for SharedMapping {
    fn as_ref(&self) -> &[u8] {
        &self.0.map
    }
}

/// Maps `file` (`len` bytes, as `fstat` said), registered with the SIGBUS guard; `None` when the mapping could
/// not be protected and the file is not `immutable` (the caller reads it on demand instead).
pub(crate) fn map(
    path: &Path,
    file: &File,
    len: usize,
    config: MmapConfig,
    immutable: bool,
) -> Result<Option<(Bytes, Arc<Mapping>)>, MmapError> {
    let guarded = protection_active();
    if !immutable && !guarded {
        warn_unprotected();
        return Ok(None);
    }
    let mut options = MmapOptions::new();
    options.len(len);
    if config.populate {
        options.populate();
    }
    // SAFETY: the invariant is that while any slice of the map is alive its bytes do not change and the file
    // is not shortened below `len`. What this block guarantees towards it: (1) `file` is open read-only and the
    // map is read-only, so no Rust code writes through it (the SIGBUS guard may replace pages past a new end of
    // file with zero pages, outside Rust's view, which is what poisons the mapping below). (2) The map moves
    // at once into a `Mapping` reachable only through the `Arc`s returned below (the `Bytes` owner and the
    // caller's handle): no slice can outlive it, and the only raw address that leaves this module goes to the
    // guard's registry, which never dereferences it outside the fault handler. (3) `len` is the length `fstat`
    // reported for this descriptor just before, so the map does not extend past the end of the file as opened.
    // (4) A truncation while a slice is alive faults only in pages the guard, active just above, is told about
    // before any byte is read; a file that may change is never used through an unprotected mapping (it is read
    // with pread instead), only immutable ones are. (5) What remains, a rewrite in place, is the contract
    // stated in the crate's safety model; bodies re-check the file before their last bytes, and the cache
    // re-maps changed files.
    let map = unsafe { options.map(file) }.map_err(|e| MmapError::from_io(path, e))?;
    // SAFETY: `Registration::new` requires a live mapping of exactly `ptr..ptr + len` that stays mapped until
    // the registration is dropped: the range is exactly `map`'s, a read-only mapping this function owns, and
    // the registration is stored in the same `Mapping`, declared before `map`, so it is dropped (unregistered)
    // before the map is unmapped. Replacing pages after a fault with zero pages is what this crate wants: the
    // body then sees the poison flag.
    #[cfg(target_os = "linux")]
    let registration = unsafe { super::guard::Registration::new(map.as_ptr(), map.len()) };
    #[cfg(target_os = "linux")]
    if registration.is_none() {
        warn_unprotected();
        if !immutable {
            // The registry is full (or the guard went away in between): unmapped here, read on demand.
            return Ok(None);
        }
    }
    for advice in config.advice() {
        // Hints are advice: an unsupported one (EINVAL on file-backed huge pages, say) changes nothing.
        let _ = map.advise(advice);
    }
    #[cfg(target_os = "linux")]
    let protected = guarded && registration.is_some();
    #[cfg(not(target_os = "linux"))]
    let protected = false;
    let mapping = Arc::new(Mapping {
        #[cfg(target_os = "linux")]
        registration,
        map,
        protected,
        exact_residency: exact_for(file),
    });
    Ok(Some((
        Bytes::from_owner(SharedMapping(Arc::clone(&mapping))),
        mapping,
    )))
}

/// Says once per process that a mapping could not be protected against truncation, why, and what is done.
fn warn_unprotected() {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        #[cfg(target_os = "linux")]
        let why = super::guard::protection().to_string();
        #[cfg(not(target_os = "linux"))]
        let why = "no SIGBUS guard on this platform";
        tracing::warn!(
            protection = %why,
            "mmap-serve: mappings cannot be protected against truncation (SIGBUS); files that may change are \
             read with pread instead, immutable ones are still mapped"
        );
    });
}
