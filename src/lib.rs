//! Serve large files over HTTP from shared memory maps, with exact RFC 9110 semantics.
//!
//! `mmap-serve` is for Rust web services that hand out large binary blobs — model weights and tensors,
//! datasets, IPFS blocks, video — and need fast random access to them through HTTP Range requests.
//!
//! # The mmap core
//!
//! - [`MmapFile`] maps one file (or reads it, when it is small) and hands out its bytes as zero-copy
//!   [`bytes::Bytes`] slices of the mapping.
//! - [`MmapCache`] keeps mappings shared between requests: bounded by file count and bytes, one open per
//!   concurrent miss, revalidated against the disk under a [`Revalidate`] policy.
//! - [`MmapConfig`] turns access-pattern hints into `madvise(2)` and `MAP_POPULATE`.
//! - [`MmapError`] says what went wrong and which HTTP status it deserves.
//!
//! ```
//! use std::sync::Arc;
//! use mmap_serve::{MmapCache, MmapError, MmapFile};
//! # let d = tempfile::tempdir()?; let path = d.path().join("tensor.bin"); std::fs::write(&path, vec![1u8; 1 << 20])?;
//! let cache = Arc::new(MmapCache::new(100));
//! let f: Arc<MmapFile> = cache.get_or_create(&path)?;
//! let rows = f.multi_range(&[0..1024, 10240..11264])?;
//! assert_eq!(rows[1].len(), 1024);
//! assert!(matches!(f.range(0..(2 << 20)), Err(MmapError::InvalidRange(_))));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What blocks, and where
//!
//! A mapping is read lazily: a page not in the page cache is read from disk when something first touches it,
//! on whatever thread touches it. The crate keeps that thread off Tokio's workers:
//!
//! - [`MmapServe`] opens, maps and revalidates on the blocking pool (see its docs);
//! - every [`MmapBody`] over a mapping checks each frame's pages with `mincore(2)` before yielding it (on the
//!   worker: at most one system call per frame, none for the parts of a multipart body checked with a part
//!   close before them, no allocation), sends a resident frame at once, and brings a cold one
//!   in first on the crate's bring-in threads (`MADV_WILLNEED` + `MADV_POPULATE_READ`; the cold frames of all
//!   bodies are taken up to 64 at a time, so the disk sees them together; one thread named
//!   `mmap-serve-bring-in`, started on the first cold frame, and up to 3 more for a backlog or while every
//!   one waits for a slow read, which `mmap-serve-bring-in-watch` looks for every 5 ms while frames wait),
//!   reading up to four frames ahead while the server sends the current one; a frame whose response was
//!   dropped before its turn is not read; a truncation found there ends the body with an error instead of
//!   a SIGBUS;
//! - [`MmapServe`] hands a response to the server only once the first frame of its body is in memory, so
//!   hyper writes the head and the first bytes together (with a cold first frame it would write the head
//!   alone, and the bytes in a second `writev` after the bring-in);
//! - for handlers, [`MmapFile::range_resident`] is the async form of [`MmapFile::range`], and
//!   [`MmapBody::file_range`] the body of a range with the same property; [`MmapFile::range`] and
//!   [`MmapFile::bytes`] stay synchronous slices, whose cold pages block whoever touches them.
//!
//! What a worker may still wait for: the `mincore` walk itself, and a page evicted again between the check
//! and the server's `write` (see [`MmapBody`], "Cold pages"). [`CacheStats`] count the frames sent resident
//! and brought in, and the time bodies waited.
//!
//! # Safety model
//!
//! A memory map shows the file as it is on disk *now*, so a server built on one has two ways to go wrong:
//! another process truncates a mapped file (the next read of a page past the new end raises SIGBUS, which
//! kills the process), or rewrites it in place (the "immutable" bytes change under a response). In plain
//! words, this is what the crate does about each:
//!
//! - **Truncation does not crash the process** (Linux). Every mapping is registered, before any byte of it is
//!   read, with a process-wide SIGBUS handler that acts only on faults inside registered mappings: it replaces
//!   the missing pages with zero pages and marks the mapping poisoned, and the read goes on. Every other SIGBUS
//!   goes to the handler that was there before (or kills the process, as it would have), so real bugs still
//!   crash. [`sigbus_protection_active`] says whether the handler is installed and still the active one.
//!   When it is not (`sigaction` refused it, another library replaced it, or more than 65,536 mappings are
//!   live at once), the crate logs it once and stops mapping files that may change: it keeps them open and
//!   reads each frame with `pread` on a blocking thread ([`MmapFile::reads_on_demand`]), where a truncation
//!   only shortens the read. Mappings made before protection was lost are replaced at their next
//!   revalidation. Immutable files (a resolver's [`ResolvedFile::immutable`], or a cache that never
//!   revalidates) are still mapped: they are never truncated.
//! - **A changed file ends the response early.** A body checks the poison flag before every frame, and before
//!   its last frame, whatever its length, re-checks that the file is still the one it mapped: same inode,
//!   length, modification and change times (one `fstat` of the mapped inode through the descriptor a mapped
//!   file keeps, within a quarter of the process's descriptor limit; past that, one `stat` of the path). A
//!   write in place sets those times when it begins, while its inotify event comes only once it ends. A body
//!   longer than 4 KiB holds its last 4 KiB back for that check. Bodies of immutable files skip it.
//!   On a mismatch the body ends with an error, the server aborts the connection, and the client sees fewer
//!   bytes than `Content-Length`: a failed download rather than a corrupt complete one. Poisoned and changed
//!   mappings leave the cache; the next request maps the file afresh.
//! - **A file being written is never served whole** (Linux). When a file is opened, the kernel is asked
//!   whether any process has it open for writing (a read lease, taken for one `fstat` and released at once:
//!   [`MmapFile::opened_while_written`]); if one has, the file's length and ETag are those of no final
//!   version, so every body of it ends with an error and the next request opens it again, until the writer
//!   has closed it (an empty one answers 503 with `Retry-After`). Where the kernel refuses a lease (not the
//!   file's owner and no `CAP_LEASE`, NFS), this is counted in [`writer_checks_refused`] and the checks
//!   below are what remains.
//! - **Replacing a file by rename is the supported deploy.** Responses in flight finish from the old inode; new
//!   requests see the new file (and its new ETag) as soon as the cache's watch reports the rename (Linux,
//!   [`Revalidate::Watch`], the default), or within the cache's revalidation interval where there is no watch.
//!   A watched file rewritten or truncated in place is poisoned when the event arrives, so its in-flight
//!   responses abort at their next frame without waiting for a re-check; the inode stays watched while any
//!   response still sends it, so a write to an inode already renamed over counts too.
//!
//! `unsafe` lives only under `src/mmap/`: the mapping and its registration with the guard (`mmap/map.rs`,
//! each block with its own SAFETY comment), the signal handler (`mmap/guard/`), with its own invariants, and
//! two system calls no safe wrapper offers: `mincore` (`mmap/residency.rs`) and the write check's `fcntl`
//! lease (`mmap/writers.rs`).
//! Everything else, the confinement's `openat2` and `readlinkat` included, goes through safe wrappers.
//!
//! # How a request flows
//!
//! The source tree is the path of a request, and no module reaches back up it:
//!
//! 1. `service/` — [`MmapServe`] (or the layer, [`MmapServeLayer`]) checks the target and Host field and asks
//!    the [resolver](Resolve) which file the request means;
//! 2. `resolve/` — [`DirResolver`], [`CidResolver`] or yours names a [`ResolvedFile`], lexically, without I/O;
//! 3. `cache/` — [`MmapCache`] hands over the mapping and its validators: at once when it is cached and
//!    fresh, otherwise after an open (confined beneath the resolver's root when it has one) on a blocking
//!    thread;
//! 4. `http/` — pure RFC 9110 decisions: preconditions (§13.2.2), then ranges (§14), as plain data;
//! 5. `service/respond` renders that decision into a `Response` whose body is an [`MmapBody`];
//! 6. `body/` — the body yields zero-copy slices of the mapping and does every I/O a body needs (`pread`
//!    frames, the final re-check of the file).
//!
//! # Features
//!
//! - `axum` (default): `IntoResponse` for [`MmapError`], so axum handlers can return
//!   `Result<Response, MmapError>`.
//! - `fuzzing`: not API; exposes the header logic to the fuzz targets in `fuzz/`.
//!
//! No feature changes how a request is answered: CID validation, for one, always uses the `cid` crate.
//!
//! # Platform and MSRV
//!
//! Unix (Linux first: the hints are Linux's `madvise` values, ignored where unsupported). Rust 1.85, edition 2024.
#![deny(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod body;
mod cache;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod __fuzz {
    //! Not API: entry points for `fuzz/`.
    pub use crate::fuzzing::*;
}
#[cfg(feature = "fuzzing")]
mod fuzzing;
mod http;
mod integrations;
mod mmap;
mod resolve;
mod service;
#[cfg(test)]
mod testing;

pub use body::{DEFAULT_CHUNK_SIZE, MmapBody, ResidentRange};
pub use cache::{CacheStats, DEFAULT_HEAP_BYTES, MmapCache, MmapCacheBuilder, Revalidate};
pub use error::MmapError;
pub use http::encoding::ContentCoding;
pub use mmap::config::MmapConfig;
pub use mmap::file::{DEFAULT_SMALL_FILE_THRESHOLD, MmapFile};
#[cfg(target_os = "linux")]
pub use mmap::guard::{caught_faults as sigbus_faults_caught, sigbus_protection_active};
pub use mmap::identity::FileIdentity;
pub use mmap::writers::writer_checks_refused;
pub use resolve::{
    CidResolver, ContentDigest, DirResolver, NeverPending, Rejection, Resolution, Resolve,
    ResolvedFile, Resolving, ResolvingFuture, SafetensorsFuture, SafetensorsResolver,
};
pub use service::{
    DEFAULT_MAX_RANGES, FallThrough, FallThroughBody, FallThroughFuture, MmapServe,
    MmapServeFuture, MmapServeLayer,
};

/// The README's code blocks, compiled (and run where they do not need a server) by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
