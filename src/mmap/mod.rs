//! The memory-mapping core: no HTTP, no cache policy.
//!
//! # Safety model
//!
//! Mapping a file makes its bytes an immutable `[u8]` to Rust while the file stays shared with every other
//! process on the machine. This crate relies on one invariant: **while any `Bytes` into a mapping is alive,
//! the mapped bytes do not change and the file is not shortened below the mapped length.** It cannot enforce
//! that for files it does not own, so it narrows the window:
//!
//! - the `unsafe` blocks outside the SIGBUS guard are the mapping and its registration (`map.rs`: the map
//!   moves at once into a single [`bytes::Bytes`] owner, and every slice handed out is an O(1) slice of it,
//!   so no slice outlives the map), and two system calls without a safe wrapper: `mincore` (`residency.rs`)
//!   and the write check's `fcntl` (`writers.rs`);
//! - empty files are never mapped, small files are read into memory, and the cache compares a file's identity
//!   (device, inode, length, mtime, ctime) with the disk under its revalidation policy, so a file replaced by
//!   rename or rewritten in place is re-mapped for new requests while in-flight ones finish on the old inode;
//! - a file that may change is mapped only while the SIGBUS guard (`guard/`) can protect the mapping; when
//!   it cannot (the handler was refused or replaced, or its registry is full), the file is read on demand with
//!   `pread` (`pread.rs`) instead, so a truncation can only shorten a response;
//! - a file that another process has open for writing when it is opened (`writers.rs` asks the kernel, with
//!   a read lease released at once) is never served whole: its length and identity are those of no final
//!   version, so every body of it ends with an error, and the next request opens it again;
//! - what remains is a file truncated or rewritten in place while a response is still reading the old
//!   mapping. Deploy by writing a new file and renaming it over the old one, never by rewriting in place.
pub(crate) mod config;
pub(crate) mod descriptors;
pub(crate) mod file;
#[cfg(target_os = "linux")]
#[allow(
    unsafe_code,
    reason = "installing a signal handler and remapping pages inside it cannot be done in safe Rust"
)]
pub(crate) mod guard;
pub(crate) mod heap;
pub(crate) mod identity;
#[allow(
    unsafe_code,
    reason = "mapping a file is unsafe: see the SAFETY comments in `map`"
)]
pub(crate) mod map;
pub(crate) mod pread;
#[allow(
    unsafe_code,
    reason = "mincore(2) has no safe wrapper in rustix: see the SAFETY comment in `residency`"
)]
pub(crate) mod residency;
#[allow(
    unsafe_code,
    reason = "F_SETLEASE and F_SETSIG have no safe wrapper in rustix or nix: see the SAFETY comment in `writers`"
)]
pub(crate) mod writers;
