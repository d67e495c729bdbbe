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
//! # Safety model
//!
//! A memory map shows the file as it is on disk *now*. The crate relies on this contract: **a file is not
//! rewritten in place or truncated while a response is still reading its mapping.** Replace files by writing
//! a new one and renaming it over the old (the usual deploy): in-flight responses keep reading the old inode,
//! and the cache notices the new one (device, inode, length, mtime, ctime) under its revalidation policy.
//! Only one `unsafe` block exists, where the file is mapped; see its SAFETY comment.
//!
//! # Platform and MSRV
//!
//! Unix (Linux first: the hints are Linux's `madvise` values, ignored where unsupported). Rust 1.85, edition 2024.
#![deny(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod cache;
mod error;
mod http;
mod integrations;
mod mmap;
mod resolve;
mod service;

pub use cache::{CacheStats, MmapCache, MmapCacheBuilder, Revalidate};
pub use error::MmapError;
pub use http::body::{DEFAULT_CHUNK_SIZE, MmapBody};
pub use mmap::config::MmapConfig;
pub use mmap::file::{DEFAULT_SMALL_FILE_THRESHOLD, MmapFile};
#[cfg(target_os = "linux")]
pub use mmap::guard::{caught_faults as sigbus_faults_caught, sigbus_protection_active};
pub use mmap::identity::FileIdentity;
pub use resolve::{CidResolver, DirResolver, Rejection, Resolution, Resolve, ResolvedFile};
pub use service::{
    DEFAULT_MAX_RANGES, FallThrough, FallThroughBody, FallThroughFuture, MmapServe, MmapServeLayer,
    ResponseFuture,
};

/// The README's code blocks, compiled (and run where they do not need a server) by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
